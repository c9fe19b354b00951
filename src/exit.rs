//! Exit codes and how errors are printed: the whole chain once, no panic.

use ledger::LedgerError;
use std::process::ExitCode;

pub const FINDINGS: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const FAILURE: u8 = 3;
/// Genuine but out of date (a certificate whose person-year changed since
/// issue).
pub const CHANGED: u8 = 4;

/// Input the user can correct: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The command ran and found something (verify damage): exit 1. The report
/// was already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Findings(pub String);

/// The command checked something genuine that the log now states
/// otherwise (a certificate after a refund): exit 4. The report was
/// already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Changed(pub String);

pub fn report(result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else { return ExitCode::SUCCESS };
    let code = code_of(&error);
    eprintln!("error: {error:#}");
    ExitCode::from(code)
}

fn code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<BadInput>() {
            return BAD_INPUT;
        }
        if cause.is::<Findings>() {
            return FINDINGS;
        }
        if cause.is::<Changed>() {
            return CHANGED;
        }
        if let Some(ledger_error) = cause.downcast_ref::<LedgerError>() {
            return if ledger_error.is_rejection() { BAD_INPUT } else { FAILURE };
        }
    }
    FAILURE
}

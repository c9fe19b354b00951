//! Exit codes and how errors are printed: the whole chain once, no panic.

use ledger::LedgerError;
use operations::{Classified, Kind};
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

/// An operation's error, carrying its kind to `code_of`: every adapter
/// passes an operation's error through here (`.map_err(exit::classified)`).
pub fn classified<E: Classified>(error: E) -> anyhow::Error {
    let kind = error.kind();
    anyhow::Error::new(Kinded { kind, error: Box::new(error) })
}

/// An operation's error with its kind; reads as the error itself.
#[derive(Debug)]
struct Kinded {
    kind: Kind,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for Kinded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Kinded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The exit code of an operation's error kind.
pub fn code_of_kind(kind: Kind) -> u8 {
    match kind {
        Kind::BadInput | Kind::Refused | Kind::Conflict => BAD_INPUT,
        Kind::NotFound | Kind::Findings => FINDINGS,
        Kind::Changed => CHANGED,
        Kind::Unavailable | Kind::Failure => FAILURE,
    }
}

pub fn report(result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else { return ExitCode::SUCCESS };
    let code = code_of(&error);
    eprintln!("error: {error:#}");
    ExitCode::from(code)
}

fn code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(kinded) = cause.downcast_ref::<Kinded>() {
            return code_of_kind(kinded.kind);
        }
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

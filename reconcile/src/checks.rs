//! Self-checks of a statement before any matching: does it add up, are its
//! entries inside its period, do its declared totals hold, is any reference
//! given twice.

use crate::error::Location;
use crate::index::{receipt_key, FirstReceipts};
use crate::model::{ControlTotal, Direction, Period, Receipt, Statement};
use ledger::Date;
use std::fmt;

/// Receipts whose index slots are read ahead together.
const TOUCH_AHEAD: usize = 32;

/// One self-check a statement fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckFailure {
    /// Opening balance + Σ credits − Σ debits differs from the closing balance.
    Unbalanced { at: Location, opening_fen: i128, credits_fen: i128, debits_fen: i128, closing_fen: i128 },
    /// An entry booked outside the statement's period.
    OutsidePeriod { at: Location, booked_on: Date, period: Period },
    /// A total the file declares differs from what its detail adds up to.
    ControlTotal(ControlTotal),
    /// The same reference twice in one statement (same side and channel).
    DuplicateReference { at: Location, first: Location, reference: String },
}

impl CheckFailure {
    /// A fatal failure means the statement cannot be trusted, and none of
    /// its receipts is matched. A duplicate reference is not fatal: the
    /// second receipt is reported as a duplicate receipt by matching.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, CheckFailure::DuplicateReference { .. })
    }

    pub fn at(&self) -> &Location {
        match self {
            CheckFailure::Unbalanced { at, .. }
            | CheckFailure::OutsidePeriod { at, .. }
            | CheckFailure::DuplicateReference { at, .. } => at,
            CheckFailure::ControlTotal(total) => &total.at,
        }
    }
}

/// Fen as signed yuan, `-12.30`.
pub(crate) fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckFailure::Unbalanced { at, opening_fen, credits_fen, debits_fen, closing_fen } => write!(
                f,
                "{at}: opening {} + credits {} - debits {} = {}, but the closing balance is {}",
                yuan(*opening_fen),
                yuan(*credits_fen),
                yuan(*debits_fen),
                yuan(opening_fen + credits_fen - debits_fen),
                yuan(*closing_fen)
            ),
            CheckFailure::OutsidePeriod { at, booked_on, period } => {
                write!(f, "{at}: booked on {booked_on}, outside the statement period {} to {}", period.from, period.to)
            }
            CheckFailure::ControlTotal(total) => {
                let show = |value: i128| if total.is_count { value.to_string() } else { yuan(value) };
                write!(
                    f,
                    "{}: {} declares {}, the detail adds up to {}",
                    total.at,
                    total.what,
                    show(total.declared),
                    show(total.computed)
                )
            }
            CheckFailure::DuplicateReference { at, first, reference } => {
                write!(f, "{at}: reference {reference} already given at {first}")
            }
        }
    }
}

/// Runs every self-check of a statement; an empty list means it passes.
pub fn check_statement(statement: &Statement) -> Vec<CheckFailure> {
    let mut failures = Vec::new();
    if let Some(balances) = &statement.balances {
        let (mut credits_fen, mut debits_fen) = (0i128, 0i128);
        for receipt in &statement.receipts {
            match receipt.direction {
                Direction::Credit => credits_fen += i128::from(receipt.amount.fen()),
                Direction::Debit => debits_fen += i128::from(receipt.amount.fen()),
            }
        }
        let opening_fen = balances.opening.signed_fen();
        let closing_fen = balances.closing.signed_fen();
        if opening_fen + credits_fen - debits_fen != closing_fen {
            let at = balances.closing.at.clone();
            failures.push(CheckFailure::Unbalanced { at, opening_fen, credits_fen, debits_fen, closing_fen });
        }
    }
    if let Some(period) = statement.period {
        for receipt in statement.receipts.iter().filter(|r| !period.contains(r.booked_on)) {
            failures.push(CheckFailure::OutsidePeriod { at: receipt.at.clone(), booked_on: receipt.booked_on, period });
        }
    }
    for total in statement.control_totals.iter().filter(|t| t.declared != t.computed) {
        failures.push(CheckFailure::ControlTotal(total.clone()));
    }
    failures.extend(duplicate_references(statement));
    failures
}

fn duplicate_references(statement: &Statement) -> Vec<CheckFailure> {
    let mut first_receipts = FirstReceipts::with_capacity(statement.receipts.len());
    let mut failures = Vec::new();
    let all: Vec<&Receipt> = statement.receipts.iter().flat_map(|r| std::iter::once(r).chain(r.parts.iter())).collect();
    for group in all.chunks(TOUCH_AHEAD) {
        // Reading the table slots of a group first lets their cache misses overlap.
        let touched = group.iter().filter_map(|r| receipt_key(r)).map(|key| first_receipts.touch(key));
        std::hint::black_box(touched.fold(0u64, u64::wrapping_add));
        for &receipt in group {
            let Some(first) = first_receipts.first_or_insert(receipt) else { continue };
            failures.push(CheckFailure::DuplicateReference {
                at: receipt.at.clone(),
                first: first.at.clone(),
                reference: receipt.reference.clone().unwrap_or_default(),
            });
        }
    }
    failures
}

//! Receipts and statements, normalized from every input format.

use crate::error::Location;
use ledger::{Date, Money};
use std::fmt;
use std::sync::Arc;

/// Which way money moved on the receiving account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Money in: a premium paid (贷方).
    Credit,
    /// Money out: a refund, or the reversal of a payment (借方).
    Debit,
}

/// The side of the ledger a receipt or a ledger item belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// `PaymentReceived` events; credit receipts.
    Payment,
    /// `RefundIssued` events; debit receipts (refunds, reversals of payments).
    Refund,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Payment => "payment",
            Side::Refund => "refund",
        }
    }
}

impl Direction {
    pub fn side(self) -> Side {
        match self {
            Direction::Credit => Side::Payment,
            Direction::Debit => Side::Refund,
        }
    }
}

/// One movement of money as a bank or channel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The file it was read from.
    pub file: Arc<str>,
    /// Its line (CSV) or element (camt.053) in that file.
    pub at: Location,
    /// Order within the file, from 0: with `file`, the receipt's identity and
    /// the canonical order in which matching visits receipts.
    pub seq: u32,
    /// The payment channel (`wechat`, …) where the file says or the caller
    /// knows; `None` matches any channel.
    pub channel: Option<String>,
    /// The transaction reference: a channel reference (`channel_ref`) for a
    /// payment, a refund reference for a refund, a settlement reference for
    /// a batch. `None` where the source gives none.
    pub reference: Option<String>,
    /// For a refund or reversal: the reference of the payment it returns.
    pub original_reference: Option<String>,
    pub amount: Money,
    pub direction: Direction,
    /// A reversal (camt.053 `RvslInd`): the bank undid an earlier entry.
    pub reversal: bool,
    /// The business date (UTC+8) it was booked on.
    pub booked_on: Date,
    /// Identity number of the payer (or, for a refund, the payee), where the
    /// receipt carries one: upper-case, as the ledger writes identities.
    pub payer_id: Option<String>,
    /// The payer's name as the file gives it (缴费人名称), where it does:
    /// with a masked `payer_id`, the evidence of the weak rule.
    pub payer_name: Option<String>,
    /// The bank's or channel's settlement reference (camt.053
    /// `AcctSvcrRef`, a settlement batch column).
    pub settlement_ref: Option<String>,
    /// The payments one receipt settles (N:1): a batched camt.053 entry's
    /// `TxDtls`, or CSV rows grouped by settlement reference. Empty for a
    /// receipt of one payment. Parts sum to `amount` in a statement that
    /// passes its checks.
    pub parts: Vec<Receipt>,
}

impl Receipt {
    pub fn side(&self) -> Side {
        self.direction.side()
    }

    /// `file:location`, for messages.
    pub fn source(&self) -> String {
        format!("{}:{}", self.file, self.at)
    }

    pub fn is_batch(&self) -> bool {
        !self.parts.is_empty()
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match (self.direction, self.reversal) {
            (Direction::Credit, false) => "credit",
            (Direction::Debit, false) => "debit",
            (Direction::Credit, true) => "credit reversal",
            (Direction::Debit, true) => "debit reversal",
        };
        write!(
            f,
            "{} {} {} on {} ref {}",
            self.source(),
            direction,
            self.amount,
            self.booked_on,
            self.reference.as_deref().unwrap_or("(none)")
        )
    }
}

/// A balance of a statement; negative balances have `Direction::Debit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    pub amount: Money,
    pub direction: Direction,
    pub at: Location,
}

impl Balance {
    /// The balance in fen, negative for a debit balance.
    pub fn signed_fen(&self) -> i128 {
        match self.direction {
            Direction::Credit => i128::from(self.amount.fen()),
            Direction::Debit => -i128::from(self.amount.fen()),
        }
    }
}

/// Opening and closing balances (camt.053 `OPBD` and `CLBD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balances {
    pub opening: Balance,
    pub closing: Balance,
}

/// A total the file declares, next to what its detail adds up to: the
/// summary of a WeChat bill, the amount of a batched entry against its
/// `TxDtls`, the total of a settlement against its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlTotal {
    /// What is totalled, e.g. `应结订单总金额` or `entry amount`.
    pub what: String,
    pub at: Location,
    /// In fen (or a count, for counts).
    pub declared: i128,
    pub computed: i128,
    /// Money (shown in yuan) or a count.
    pub is_count: bool,
}

/// The period a statement covers, as business dates (UTC+8), inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

impl Period {
    pub fn contains(self, date: Date) -> bool {
        self.from <= date && date <= self.to
    }
}

/// One statement (or bill) of receipts, with what it declares about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub file: Arc<str>,
    /// The `Stmt` element of a camt.053 file; `Location::File` for CSV.
    pub at: Location,
    pub id: Option<String>,
    pub account: Option<String>,
    pub period: Option<Period>,
    pub balances: Option<Balances>,
    pub control_totals: Vec<ControlTotal>,
    pub receipts: Vec<Receipt>,
    /// Rows the file lists whose status says the money did not arrive (a
    /// batch return's failed debit, a status column's refused transfer):
    /// reported, never matched.
    pub not_received: Vec<NotReceived>,
}

impl Statement {
    /// The statement of a whole file that states no account, period,
    /// balances or control totals: what a reader then sets of those it has.
    pub fn of_file(file: Arc<str>, receipts: Vec<Receipt>) -> Statement {
        Statement {
            file,
            at: Location::File,
            id: None,
            account: None,
            period: None,
            balances: None,
            control_totals: Vec::new(),
            receipts,
            not_received: Vec::new(),
        }
    }
}

/// A row a file lists as not received: the receipt it would have been, and
/// why not in the file's words. One notion for every format, so that a
/// failed debit is reported the same way whichever file says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReceived {
    pub receipt: Receipt,
    /// What the file says, e.g. `failed with code 1001 (账户余额不足)` or
    /// `status 扣款失败`.
    pub status: String,
}

impl fmt::Display for NotReceived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let receipt = &self.receipt;
        let reference = receipt.reference.as_deref().unwrap_or("(none)");
        write!(f, "{} {} {} {}", receipt.source(), reference, receipt.amount, self.status)
    }
}

//! Reconciliation of bank and channel receipts with the ledger's payments
//! and refunds.
//!
//! Data flows one way: receipt bytes → a parser ([`parse_bytes`]: camt.053,
//! WeChat Pay bill, or any CSV through a [`Mapping`]) → [`Statement`]s of
//! normalized [`Receipt`]s → self-checks ([`check_statement`]) → matching
//! against [`LedgerPayment`]s ([`reconcile`]) → a [`Report`] of findings →
//! a [`Summary`] and the parts of a `ReconciliationRecorded` event.
//!
//! Nothing here reads the log or appends to it: the caller builds the
//! ledger side (with [`ledger_side()`] or [`LedgerPayment::from_event`] while
//! scanning) and appends the event. Amounts are whole fen, never floats.
//!
//! Reconcile one level at a time, so that one payment is never counted
//! twice:
//! 1. a channel's bill (WeChat Pay, Alipay) against that channel's payments
//!    and refunds only ([`ledger_side::of_channel`], `--channel`): other
//!    channels' payments are not in the bill and are no break of it;
//! 2. a bank's statement, notifications or batch return of the collection
//!    account against the ledger, for the payments that reach the account
//!    one by one (or as a batch whose parts are given).
//!
//! A channel's settlement into the bank account is a third comparison of
//! its own (channel against bank), not part of either: a payment that is in
//! a WeChat bill and again in the bank's settlement entry is one payment
//! seen twice.
//!
//! Files arrive compressed ([`container`]: gzip, zip) and in many formats:
//! camt.053/054, MT940, WeChat Pay and Alipay bills, batch-collection
//! returns ([`batch_return`]), CSV and Excel workbooks ([`excel`]) through a
//! mapping. Every format read by name, with the shipped mappings and
//! layouts, is in one list ([`presets::PRESETS`]). A row a file says was
//! not received (a failed debit, a refused transfer) is kept apart in
//! [`Statement::not_received`], whatever the format.
//!
//! ```
//! use reconcile::{parse_bytes, reconcile, summarize, Format, LedgerPayment, MatchOptions, Side};
//!
//! let bill = "交易时间,微信订单号,商户订单号,交易状态,应结订单金额,微信退款单号,商户退款单号,退款金额\n\
//!             `2024-11-01 12:00:00,`4200002456,`WX20241101120000777,`SUCCESS,`400.00,`0,`0,`0.00\n\
//!             总交易单数,应结订单总金额,退款总金额\n\
//!             `1,`400.00,`0.00\n";
//! let format = Format::WechatBill { channel: "wechat".into() };
//! let file = parse_bytes("wechat-20241101.csv", bill.as_bytes(), &format)?;
//! let ledger = vec![LedgerPayment {
//!     position: 24,
//!     kind: Side::Payment,
//!     channel: "wechat".into(),
//!     channel_ref: "WX20241101120000777".into(),
//!     refund_of: None,
//!     amount: "400.00".parse()?,
//!     person: "520523200112308406".into(),
//!     payer: None,
//!     business_date: "2024-11-01".parse()?,
//! }];
//! let report = reconcile(&file.statements, &ledger, &MatchOptions::default());
//! let summary = summarize(&report);
//! assert!(summary.is_clean());
//! let results = summary.result_counts()?; // ReconciliationRecorded::results
//! assert_eq!(results[0].kind, "receipts.matched_by_reference.payment");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod alipay;
pub mod batch_return;
pub mod camt053;
pub mod checks;
pub mod container;
pub mod csv_mapped;
pub mod detect;
pub mod error;
pub mod excel;
mod index;
pub mod input;
pub mod ledger_side;
pub mod matching;
pub mod model;
pub mod mt940;
pub mod presets;
mod rows;
pub mod summary;
pub mod table;
pub mod text;
pub mod wechat;

pub use alipay::parse_alipay_bill;
pub use batch_return::{parse_batch_return, Layout};
pub use camt053::parse_camt053;
pub use checks::{check_statement, CheckFailure};
pub use container::{unpack, unpack_within, Unpacked};
pub use csv_mapped::{parse_mapped_csv, ChannelSource, ColumnRef, Columns, DirectionValues, Mapping, StatusValues};
pub use detect::{detect, Detected};
pub use error::{Location, ReconcileError, Result, FORMATS_READ};
pub use excel::parse_mapped_excel;
pub use input::{
    detect_format, is_layout_file, parse_bytes, parse_path, read_file, read_layout_with_digest, read_mapping,
    read_mapping_with_digest, refuse_unread, Format, ParsedFile,
};
pub use ledger_side::{ledger_side, LedgerPayment};
pub use matching::{
    reconcile, reconcile_with_names, Finding, FindingKind, MatchOptions, Names, Refs, Report, Rule, StatementChecks,
    KIND_NAMES,
};
pub use model::{Balance, Balances, ControlTotal, Direction, NotReceived, Period, Receipt, Side, Statement};
pub use mt940::parse_mt940;
pub use presets::{preset, Definition, Preset, PRESETS};
pub use summary::{receipt_files, reconciliation_recorded, run_id, summarize, RunDefinition, Summary, SummaryRow};
pub use text::Encoding;
pub use wechat::parse_wechat_bill;

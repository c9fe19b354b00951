//! WeChat Pay merchant trade bill (微信支付交易账单) of every type: ALL,
//! SUCCESS (the download API's default, payments only, without the refund
//! columns) and REFUND (refunds only, with `退款申请时间`). A header row,
//! detail rows whose every field starts with a backtick (`` ` ``, so that
//! spreadsheets keep long numbers as text), then a summary header
//! (`总交易单数,应结订单总金额,…`) and one summary row. A gzip download is
//! unpacked before (see `container`).
//!
//! The fund-flow bill (资金账单: `记账时间,微信支付业务单号,资金流水单号,…`)
//! is refused: it lists the merchant account's movements under WeChat's
//! business and flow numbers, not the merchant order numbers the ledger
//! records, so every row would be a break. The trade bill of the same day
//! is the one to reconcile payments with; the fund flow belongs to the
//! settlement level (channel against bank), not to this one.
//!
//! Payment rows (`SUCCESS`) are credits of `应结订单金额` under the merchant
//! order number (`商户订单号`, the ledger's `channel_ref`); refund rows
//! (`REFUND`) are debits of `退款金额` under the merchant refund number
//! (`商户退款单号`), naming the order they refund. The payer's identity
//! number is looked for in `商户数据包` (attach), then in `商品名称`.

use crate::error::{Errors, Location, Result};
use crate::model::{ControlTotal, Direction, Receipt, Statement};
use crate::rows::{self, BillEntry, Row};
use crate::text;
use ledger::Money;
use std::collections::HashMap;
use std::sync::Arc;

const TIME: &str = "交易时间";
const MERCHANT_ID: &str = "商户号";
const WECHAT_ORDER: &str = "微信订单号";
const MERCHANT_ORDER: &str = "商户订单号";
const STATUS: &str = "交易状态";
const CURRENCY: &str = "货币种类";
const SETTLED: &str = "应结订单金额";
const WECHAT_REFUND: &str = "微信退款单号";
const MERCHANT_REFUND: &str = "商户退款单号";
const REFUNDED: &str = "退款金额";
const PRODUCT: &str = "商品名称";
const ATTACH: &str = "商户数据包";
const ORDER_AMOUNT: &str = "订单金额";
/// When a refund was asked for: a REFUND bill's time of the refund.
const REFUND_ASKED: &str = "退款申请时间";

/// Every bill type has these; the refund columns only ALL and REFUND bills.
const REQUIRED: [&str; 5] = [TIME, WECHAT_ORDER, MERCHANT_ORDER, STATUS, SETTLED];
const REFUND_COLUMNS: [&str; 3] = [WECHAT_REFUND, MERCHANT_REFUND, REFUNDED];

/// The header of the fund-flow bill (资金账单), recognised to refuse it.
pub const FUND_FLOW_MARKERS: [&str; 3] = ["记账时间", "微信支付业务单号", "资金流水单号"];
/// Why the fund-flow bill is refused, and what to download instead.
pub const FUND_FLOW_REFUSAL: &str = "a WeChat Pay fund-flow bill (资金账单), which lists account movements \
    under WeChat's own numbers, not the merchant order numbers payments are recorded under; \
    download the trade bill (交易账单, type ALL or SUCCESS) of the same day instead";

const SUMMARY_COUNT: &str = "总交易单数";
const SUMMARY_SETTLED: &str = "应结订单总金额";
const SUMMARY_REFUNDED: &str = "退款总金额";
const SUMMARY_ORDERS: &str = "订单总金额";

/// Parses a WeChat Pay trade bill (UTF-8). `channel` is the ledger's name
/// for the channel, normally `wechat`.
pub fn parse_wechat_bill(file: &str, bytes: &[u8], channel: &str) -> Result<Statement> {
    let errors = Errors { file };
    let text = text::decode(errors, bytes, text::Encoding::Utf8)?;
    let mut rows = rows::rows(errors, &text, b',');
    let header =
        rows.next().transpose()?.ok_or_else(|| errors.invalid(Location::Line(1), "the bill's header row", ""))?;
    let columns = Columns::from_header(errors, &header)?;
    let mut bill = Bill {
        errors,
        file: Arc::from(file),
        channel: channel.to_string(),
        columns,
        receipts: Vec::new(),
        account: None,
        settled_fen: 0,
        refunded_fen: 0,
        orders_fen: 0,
    };
    let mut last_line = header.line;
    let summary_header = loop {
        let Some(row) = rows.next().transpose()? else {
            return Err(errors.invalid(
                Location::Line(last_line + 1),
                "the summary header (总交易单数,应结订单总金额,…)",
                "",
            ));
        };
        last_line = row.line;
        if row.fields.get(0).map(str::trim) == Some(SUMMARY_COUNT) {
            break row;
        }
        if !row.is_blank() {
            bill.detail(&row)?;
        }
    };
    let Some(summary) = rows.next().transpose()? else {
        return Err(errors.invalid(Location::Line(summary_header.line + 1), "the summary row after its header", ""));
    };
    for row in rows {
        let row = row?;
        if !row.is_blank() {
            return Err(errors.invalid(
                Location::Line(row.line),
                "the end of the bill after its summary row",
                row.joined(),
            ));
        }
    }
    let control_totals = bill.control_totals(&summary_header, &summary)?;
    Ok(Statement { account: bill.account, control_totals, ..Statement::of_file(bill.file, bill.receipts) })
}

struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    fn from_header(errors: Errors<'_>, header: &Row) -> Result<Columns> {
        let names: Vec<String> = header.fields.iter().map(|name| name.trim().to_string()).collect();
        let index: HashMap<String, usize> = names.iter().enumerate().map(|(i, name)| (name.clone(), i)).collect();
        if FUND_FLOW_MARKERS.iter().all(|name| index.contains_key(*name)) {
            return Err(errors.malformed(Location::Line(header.line), format!("this is {FUND_FLOW_REFUSAL}")));
        }
        if let Some(missing) = REQUIRED.iter().find(|name| !index.contains_key(**name)) {
            return Err(errors.invalid(
                Location::Line(header.line),
                format!("a WeChat Pay bill header with the column `{missing}`"),
                header.joined(),
            ));
        }
        Ok(Columns { names, index })
    }
}

struct Bill<'f> {
    errors: Errors<'f>,
    file: Arc<str>,
    channel: String,
    columns: Columns,
    receipts: Vec<Receipt>,
    account: Option<String>,
    settled_fen: i128,
    refunded_fen: i128,
    orders_fen: i128,
}

impl Bill<'_> {
    fn field<'r>(&self, row: &'r Row, name: &str) -> Result<&'r str> {
        let Some(&index) = self.columns.index.get(name) else { return Ok("") };
        let at = || Location::Field { line: row.line, field: name.to_string() };
        let raw = row.fields.get(index).unwrap_or_default();
        raw.strip_prefix('`').ok_or_else(|| self.errors.invalid(at(), "a field starting with a backtick (`)", raw))
    }

    /// An amount; zero for a column the bill type does not have.
    fn money(&self, row: &Row, name: &str) -> Result<Money> {
        if !self.columns.index.contains_key(name) {
            return Ok(Money::ZERO);
        }
        let value = self.field(row, name)?;
        let at = Location::Field { line: row.line, field: name.to_string() };
        text::parse_amount(value, '.', false)
            .map(|(_, m)| m)
            .map_err(|expected| self.errors.invalid(at, expected, value))
    }

    fn reference(&self, row: &Row, name: &str) -> Result<Option<String>> {
        let value = self.field(row, name)?;
        let at = Location::Field { line: row.line, field: name.to_string() };
        text::reference(value).map_err(|expected| self.errors.invalid(at, expected, value))
    }

    /// A refund row in a bill without the refund columns (a SUCCESS bill
    /// holds payments only) cannot say what was refunded.
    fn require_refund_columns(&self, row: &Row) -> Result<()> {
        match REFUND_COLUMNS.iter().find(|name| !self.columns.index.contains_key(**name)) {
            Some(missing) => Err(self.errors.invalid(
                Location::Field { line: row.line, field: STATUS.into() },
                format!("SUCCESS (this bill has no `{missing}` column, as a SUCCESS bill)"),
                "REFUND",
            )),
            None => Ok(()),
        }
    }

    fn detail(&mut self, row: &Row) -> Result<()> {
        if row.fields.len() != self.columns.names.len() {
            return Err(self.errors.invalid(
                Location::Line(row.line),
                format!("{} fields, as in the header", self.columns.names.len()),
                format!("{} fields", row.fields.len()),
            ));
        }
        let status = self.field(row, STATUS)?;
        let time_column = match status == "REFUND" && self.columns.index.contains_key(REFUND_ASKED) {
            true => REFUND_ASKED,
            false => TIME,
        };
        let time = self.field(row, time_column)?;
        let booked_on = text::parse_business_date(time, None).map_err(|expected| {
            self.errors.invalid(Location::Field { line: row.line, field: time_column.into() }, expected, time)
        })?;
        let currency = self.field(row, CURRENCY)?;
        if !currency.is_empty() && currency != "CNY" {
            return Err(self.errors.invalid(
                Location::Field { line: row.line, field: CURRENCY.into() },
                "CNY",
                currency,
            ));
        }
        if self.account.is_none() {
            self.account = self.reference(row, MERCHANT_ID)?;
        }
        let settled = self.money(row, SETTLED)?;
        let refunded = self.money(row, REFUNDED)?;
        self.settled_fen += i128::from(settled.fen());
        self.refunded_fen += i128::from(refunded.fen());
        if self.columns.index.contains_key(ORDER_AMOUNT) {
            self.orders_fen += i128::from(self.money(row, ORDER_AMOUNT)?.fen());
        }
        let order = self.reference(row, MERCHANT_ORDER)?.or(self.reference(row, WECHAT_ORDER)?);
        let (direction, amount, reference, original_reference) = match status {
            "SUCCESS" => (Direction::Credit, settled, order, None),
            "REFUND" => {
                self.require_refund_columns(row)?;
                let refund = self.reference(row, MERCHANT_REFUND)?.or(self.reference(row, WECHAT_REFUND)?);
                (Direction::Debit, refunded, refund, order)
            }
            _ => {
                let at = Location::Field { line: row.line, field: STATUS.into() };
                return Err(self.errors.invalid(at, "SUCCESS or REFUND", status));
            }
        };
        let payer_id = text::find_identity(self.field(row, ATTACH)?).or(text::find_identity(self.field(row, PRODUCT)?));
        let settlement_ref = self.reference(row, WECHAT_ORDER)?;
        let entry = BillEntry { reference, original_reference, amount, direction, booked_on, payer_id, settlement_ref };
        rows::push_bill_entry(&mut self.receipts, self.errors, &self.file, &self.channel, row.line, entry)
    }

    /// The summary's figures against the sums of the detail rows.
    fn control_totals(&self, header: &Row, summary: &Row) -> Result<Vec<ControlTotal>> {
        let names: Vec<&str> = header.fields.iter().map(str::trim).collect();
        if summary.fields.len() != names.len() {
            return Err(self.errors.invalid(
                Location::Line(summary.line),
                format!("{} summary fields, as in the summary header", names.len()),
                format!("{} fields", summary.fields.len()),
            ));
        }
        let mut totals = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let (computed, is_count) = match *name {
                SUMMARY_COUNT => (self.receipts.len() as i128, true),
                SUMMARY_SETTLED => (self.settled_fen, false),
                SUMMARY_REFUNDED => (self.refunded_fen, false),
                SUMMARY_ORDERS if self.columns.index.contains_key(ORDER_AMOUNT) => (self.orders_fen, false),
                _ => continue,
            };
            let at = Location::Field { line: summary.line, field: (*name).to_string() };
            let raw = summary.fields.get(index).unwrap_or_default();
            let value = raw.strip_prefix('`').unwrap_or(raw);
            let declared = if is_count {
                value
                    .trim()
                    .parse::<u32>()
                    .map(i128::from)
                    .map_err(|_| self.errors.invalid(at.clone(), "a count", value))?
            } else {
                let (_, money) = text::parse_amount(value, '.', false)
                    .map_err(|expected| self.errors.invalid(at.clone(), expected, value))?;
                i128::from(money.fen())
            };
            totals.push(ControlTotal { what: (*name).to_string(), at, declared, computed, is_count });
        }
        Ok(totals)
    }
}

//! Alipay merchant bill (支付宝业务明细), as the merchant platform and the
//! bill download API give it: GBK text (UTF-8 read too), usually zipped
//! with its summary (业务汇总). `#` lines above the header (account,
//! period) and below the detail (`#-----业务明细列表结束-----`, the totals
//! `#交易合计：N笔，商家实收共：X元…`, `#退款合计：…`); fields padded with
//! tabs and spaces.
//!
//! A `交易` row is a credit of `商家实收（元）` under the merchant order
//! number (`商户订单号`, the ledger's `channel_ref`); a `退款` row (negative
//! amounts) a debit under the refund request number (`退款批次号/请求号`),
//! naming the order it refunds. The detail's footer totals and the summary's
//! `合计` row are control totals: a bill that does not add up is not matched.

use crate::error::{Errors, Location, Result};
use crate::model::{ControlTotal, Direction, Receipt, Statement};
use crate::rows::{self, BillEntry, Row};
use crate::text;
use ledger::Money;
use std::collections::HashMap;
use std::sync::Arc;

const ALIPAY_NO: &str = "支付宝交易号";
const MERCHANT_ORDER: &str = "商户订单号";
const KIND: &str = "业务类型";
const PRODUCT: &str = "商品名称";
const CREATED: &str = "创建时间";
const FINISHED: &str = "完成时间";
const ORDER_AMOUNT: &str = "订单金额（元）";
const RECEIVED: &str = "商家实收（元）";
const REFUND_REQUEST: &str = "退款批次号/请求号";
const NOTE: &str = "备注";

const REQUIRED: [&str; 4] = [ALIPAY_NO, MERCHANT_ORDER, KIND, CREATED];
/// The line that ends the detail list.
const END_OF_DETAIL: &str = "业务明细列表结束";

/// Parses an Alipay merchant bill's detail file; `summary` is its 汇总
/// file (name, bytes) when the zip had one. `channel` is the ledger's name
/// for the channel, normally `alipay`.
pub fn parse_alipay_bill(file: &str, bytes: &[u8], summary: Option<(&str, &[u8])>, channel: &str) -> Result<Statement> {
    let errors = Errors { file };
    let text = decode(errors, bytes)?;
    let mut bill = Bill {
        errors,
        file: Arc::from(file),
        channel: channel.to_string(),
        receipts: Vec::new(),
        account: None,
        n_payments: 0,
        n_refunds: 0,
        paid_fen: 0,
        refunded_fen: 0,
    };
    let mut header: Option<Columns> = None;
    let mut ended = false;
    let mut footer = Vec::new();
    for row in rows::rows(errors, &text, b',') {
        let row = row?;
        let first = row.fields.get(0).unwrap_or_default().trim();
        if first.starts_with('#') {
            ended |= header.is_some() && first.contains(END_OF_DETAIL);
            footer.push((row.line, row.joined()));
            continue;
        }
        if row.is_blank() {
            continue;
        }
        if ended {
            return Err(errors.invalid(
                Location::Line(row.line),
                "`#` lines after the end of the detail",
                row.joined(),
            ));
        }
        match &header {
            None => header = Some(Columns::from_header(errors, &row)?),
            Some(columns) => bill.detail(columns, &row)?,
        }
    }
    if header.is_none() {
        return Err(errors.invalid(Location::Line(1), "an Alipay bill header (支付宝交易号,商户订单号,…)", ""));
    }
    if !ended {
        let line = text::line_of(text.as_bytes(), text.len());
        return Err(
            errors.malformed(Location::Line(line), format!("the bill ends early, without `#…{END_OF_DETAIL}…`"))
        );
    }
    let mut control_totals = bill.footer_totals(&footer)?;
    if let Some((name, bytes)) = summary {
        control_totals.extend(bill.summary_totals(name, bytes)?);
    }
    Ok(Statement { account: bill.account, control_totals, ..Statement::of_file(bill.file, bill.receipts) })
}

/// GBK unless the file is valid UTF-8 (with or without a byte order mark).
fn decode<'b>(errors: Errors<'_>, bytes: &'b [u8]) -> Result<std::borrow::Cow<'b, str>> {
    match text::decode(errors, bytes, text::Encoding::Utf8) {
        Ok(text) => Ok(text),
        Err(_) => text::decode(errors, bytes, text::Encoding::Gbk),
    }
}

/// Whether a file's first line is an Alipay bill's (in GBK or UTF-8).
pub fn looks_like_alipay_bill(head: &[u8]) -> bool {
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let (gbk, _, _) = encoding_rs::GBK.encode("#支付宝");
    first_line.starts_with("#支付宝".as_bytes()) || first_line.starts_with(&gbk)
}

struct Columns {
    index: HashMap<String, usize>,
}

impl Columns {
    fn from_header(errors: Errors<'_>, header: &Row) -> Result<Columns> {
        let index: HashMap<String, usize> =
            header.fields.iter().enumerate().map(|(i, name)| (name.trim().to_string(), i)).collect();
        if let Some(missing) = REQUIRED.iter().find(|name| !index.contains_key(**name)) {
            return Err(errors.invalid(
                Location::Line(header.line),
                format!("an Alipay bill header with the column `{missing}`"),
                header.joined(),
            ));
        }
        if !index.contains_key(RECEIVED) && !index.contains_key(ORDER_AMOUNT) {
            return Err(errors.invalid(
                Location::Line(header.line),
                format!("an Alipay bill header with the column `{RECEIVED}` or `{ORDER_AMOUNT}`"),
                header.joined(),
            ));
        }
        Ok(Columns { index })
    }

    fn field<'r>(&self, row: &'r Row, name: &str) -> &'r str {
        self.index.get(name).and_then(|&i| row.fields.get(i)).unwrap_or_default().trim()
    }
}

struct Bill<'f> {
    errors: Errors<'f>,
    file: Arc<str>,
    channel: String,
    receipts: Vec<Receipt>,
    account: Option<String>,
    n_payments: i128,
    n_refunds: i128,
    /// Signed sums of `商家实收` as the file writes them (refunds negative).
    paid_fen: i128,
    refunded_fen: i128,
}

impl Bill<'_> {
    fn at(row: &Row, field: &str) -> Location {
        Location::Field { line: row.line, field: field.to_string() }
    }

    fn reference(&self, columns: &Columns, row: &Row, name: &str) -> Result<Option<String>> {
        let value = columns.field(row, name);
        text::reference(value).map_err(|expected| self.errors.invalid(Bill::at(row, name), expected, value))
    }

    /// `商家实收（元）` (or `订单金额（元）`), signed: refunds are negative.
    fn amount(&self, columns: &Columns, row: &Row) -> Result<(bool, Money)> {
        let name = if columns.index.contains_key(RECEIVED) { RECEIVED } else { ORDER_AMOUNT };
        let value = columns.field(row, name);
        text::parse_amount(value, '.', true)
            .map_err(|expected| self.errors.invalid(Bill::at(row, name), expected, value))
    }

    fn detail(&mut self, columns: &Columns, row: &Row) -> Result<()> {
        let time_column = if columns.field(row, FINISHED).is_empty() { CREATED } else { FINISHED };
        let time = columns.field(row, time_column);
        let booked_on = text::parse_business_date(time, None)
            .map_err(|expected| self.errors.invalid(Bill::at(row, time_column), expected, time))?;
        let (negative, amount) = self.amount(columns, row)?;
        let signed_fen = if negative { -i128::from(amount.fen()) } else { i128::from(amount.fen()) };
        let order = self.reference(columns, row, MERCHANT_ORDER)?;
        let alipay_no = self.reference(columns, row, ALIPAY_NO)?;
        let kind = columns.field(row, KIND);
        let (direction, reference, original_reference) = match kind {
            "交易" if negative => {
                let name = if columns.index.contains_key(RECEIVED) { RECEIVED } else { ORDER_AMOUNT };
                return Err(self.errors.invalid(
                    Bill::at(row, name),
                    "a positive amount for a 交易 row",
                    columns.field(row, name),
                ));
            }
            "交易" => {
                self.n_payments += 1;
                self.paid_fen += signed_fen;
                (Direction::Credit, order.or(alipay_no.clone()), None)
            }
            "退款" => {
                self.n_refunds += 1;
                self.refunded_fen += signed_fen;
                let request = self.reference(columns, row, REFUND_REQUEST)?;
                (Direction::Debit, request.or(alipay_no.clone()), order)
            }
            _ => return Err(self.errors.invalid(Bill::at(row, KIND), "交易 or 退款", kind)),
        };
        let payer_id =
            text::find_identity(columns.field(row, NOTE)).or(text::find_identity(columns.field(row, PRODUCT)));
        let entry = BillEntry {
            reference,
            original_reference,
            amount,
            direction,
            booked_on,
            payer_id,
            settlement_ref: alipay_no,
        };
        rows::push_bill_entry(&mut self.receipts, self.errors, &self.file, &self.channel, row.line, entry)
    }

    /// `#交易合计：4笔，商家实收共：1600.00元，…` and `#退款合计：1笔，商家实收退款共：-400.00元，…`.
    fn footer_totals(&mut self, footer: &[(u64, String)]) -> Result<Vec<ControlTotal>> {
        let mut totals = Vec::new();
        for (line, text) in footer {
            if let Some(account) = text.strip_prefix("#账号：[").and_then(|rest| rest.split(']').next()) {
                self.account = self.account.take().or(text::reference(account).ok().flatten());
            }
            let (label, count, sum) = if text.contains("#交易合计") {
                ("交易合计", self.n_payments, self.paid_fen)
            } else if text.contains("#退款合计") {
                ("退款合计", self.n_refunds, self.refunded_fen)
            } else {
                continue;
            };
            let at = Location::Field { line: *line, field: label.to_string() };
            let declared_count = number_before(text, "笔")
                .ok_or_else(|| self.errors.invalid(at.clone(), format!("`{label}：N笔`"), text))?;
            totals.push(ControlTotal {
                what: format!("{label} 笔数"),
                at: at.clone(),
                declared: declared_count,
                computed: count,
                is_count: true,
            });
            if let Some(declared) = amount_after(text, "商家实收") {
                // Refund totals are written with or without their sign.
                let (declared, sum) =
                    if label == "退款合计" { (declared.abs(), sum.abs()) } else { (declared, sum) };
                totals.push(ControlTotal {
                    what: format!("{label} 商家实收"),
                    at,
                    declared,
                    computed: sum,
                    is_count: false,
                });
            }
        }
        Ok(totals)
    }

    /// The summary file's `合计` row: order and refund counts, the net received.
    fn summary_totals(&self, name: &str, bytes: &[u8]) -> Result<Vec<ControlTotal>> {
        let errors = Errors { file: name };
        let text = decode(errors, bytes)?;
        let mut header: Option<Row> = None;
        for row in rows::rows(errors, &text, b',') {
            let row = row?;
            let first = row.fields.get(0).unwrap_or_default().trim();
            if first.starts_with('#') || row.is_blank() {
                continue;
            }
            let Some(names) = &header else {
                header = Some(row);
                continue;
            };
            if first != "合计" {
                continue;
            }
            let mut totals = Vec::new();
            for (index, column) in names.fields.iter().map(str::trim).enumerate() {
                let (computed, is_count) = match column {
                    "交易订单总笔数" => (self.n_payments, true),
                    "退款订单总笔数" => (self.n_refunds, true),
                    RECEIVED => (self.paid_fen + self.refunded_fen, false),
                    _ => continue,
                };
                let value = row.fields.get(index).unwrap_or_default().trim();
                let at = Location::Field { line: row.line, field: column.to_string() };
                let declared =
                    declared_value(value, is_count).ok_or_else(|| errors.invalid(at.clone(), "a number", value))?;
                totals.push(ControlTotal { what: format!("{name} {column}"), at, declared, computed, is_count });
            }
            return Ok(totals);
        }
        Err(errors.invalid(Location::File, "an Alipay summary with a `合计` row", ""))
    }
}

/// A count, or a signed amount in fen.
fn declared_value(value: &str, is_count: bool) -> Option<i128> {
    if is_count {
        return value.parse::<u32>().ok().map(i128::from);
    }
    let (negative, money) = text::parse_amount(value, '.', true).ok()?;
    let fen = i128::from(money.fen());
    Some(if negative { -fen } else { fen })
}

/// The number just before `unit` (`4笔` → 4).
fn number_before(text: &str, unit: &str) -> Option<i128> {
    let end = text.find(unit)?;
    let digits: String = text[..end].chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse::<u32>().ok().map(i128::from)
}

/// The signed amount in fen after `label共：` and before `元`.
fn amount_after(text: &str, label: &str) -> Option<i128> {
    let start = text.find(label)? + label.len();
    let rest = &text[start..];
    let rest = rest.split_once('：').map(|(_, r)| r)?;
    let value = rest.split('元').next()?;
    declared_value(value.trim(), false)
}

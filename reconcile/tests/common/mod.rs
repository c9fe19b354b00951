//! Shared test helpers: fixtures, the ledger side built from the demo facts,
//! and a plain view of findings for assertions.
#![allow(dead_code)]

use ledger::event::{PaymentReceived, RefundIssued};
use ledger::Date;
use reconcile::{Finding, FindingKind, LedgerPayment, Period, Side};

pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A receipt fixture's name (as errors show it) and bytes.
pub fn receipt_fixture(name: &str) -> (String, Vec<u8>) {
    let path = fixtures_dir().join("receipts").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    (name.to_string(), bytes)
}

pub fn receipt_text(name: &str) -> String {
    String::from_utf8(receipt_fixture(name).1).expect("UTF-8 fixture")
}

/// Payments and refunds of a facts file (JSON Lines, as `yibao import`
/// reads them), positioned by line after `first_position - 1`.
fn facts(path: &std::path::Path, first_position: u64) -> (Vec<LedgerPayment>, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut position = first_position;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut value: serde_json::Value = serde_json::from_str(line).expect("JSON fact");
        let object = value.as_object_mut().expect("fact object");
        let kind = object.remove("type").and_then(|t| t.as_str().map(str::to_string)).expect("type");
        object.remove("v");
        match kind.as_str() {
            "payment_received" => {
                let event: PaymentReceived = serde_json::from_value(value).expect("payment_received");
                out.push(LedgerPayment::payment(position, &event));
            }
            "refund_issued" => {
                let event: RefundIssued = serde_json::from_value(value).expect("refund_issued");
                out.push(LedgerPayment::refund(position, &event));
            }
            _ => {}
        }
        position += 1;
    }
    (out, position)
}

/// The demo's payments and refunds (positions = lines of facts.jsonl), then
/// those of fixtures/receipts/ledger-payments.jsonl (positions after them).
pub fn ledger_items() -> Vec<LedgerPayment> {
    let (mut items, next) = facts(&fixtures_dir().join("demo/facts.jsonl"), 1);
    let (more, _) = facts(&fixtures_dir().join("receipts/ledger-payments.jsonl"), next);
    items.extend(more);
    items
}

pub fn date(text: &str) -> Date {
    text.parse().expect("date")
}

pub fn period(from: &str, to: &str) -> Period {
    Period { from: date(from), to: date(to) }
}

/// A finding as plain text: kind, side, receipt locations, ledger references.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Plain {
    pub kind: String,
    pub side: Side,
    pub receipts: Vec<String>,
    pub ledger: Vec<String>,
}

pub fn plain(finding: &Finding<'_>) -> Plain {
    let mut receipts: Vec<String> = finding.receipts.iter().map(|r| r.source()).collect();
    receipts.sort();
    let mut ledger: Vec<String> = finding.ledger.iter().map(|p| format!("{}@{}", p.channel_ref, p.position)).collect();
    ledger.sort();
    Plain { kind: finding.kind.name().to_string(), side: finding.side, receipts, ledger }
}

pub fn plains(findings: &[Finding<'_>]) -> Vec<Plain> {
    let mut out: Vec<Plain> = findings.iter().map(plain).collect();
    out.sort();
    out
}

/// The findings of one kind.
pub fn of_kind<'r, 'a>(findings: &'r [Finding<'a>], kind: &str) -> Vec<&'r Finding<'a>> {
    findings.iter().filter(|f| f.kind.name() == kind).collect()
}

pub fn is_duplicate(kind: &FindingKind<'_>) -> bool {
    matches!(kind, FindingKind::DuplicateReceipt { .. })
}

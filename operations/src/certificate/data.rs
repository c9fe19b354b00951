//! What a certificate states: the data block, from which the visible part
//! is rendered and against which `verify` checks the log.

use crate::signed_head::SignedHead;
use ledger::{Date, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The data block's `format`.
pub const FORMAT: &str = "yibao-payment-certificate";
/// The data block's `version`: 2 may carry `proofs`; 1 (never any) is
/// still read.
pub const VERSION: u32 = 2;
/// The versions `verify` reads.
pub const VERSIONS_READ: [u32; 2] = [1, 2];
/// The first line of the bytes the office signs (`signed_bytes`).
pub const SIGNED_MAGIC: &str = "yibao payment certificate v2";

/// A certificate: `yibao certificate --format json` and
/// `GET /v1/certificates/{id_number}/{year}?format=json` give this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub format: String,
    pub version: u32,
    pub ledger_id: String,
    /// The ID, masked unless `full_id`.
    pub person: String,
    pub full_id: bool,
    /// IDs the person had before (a newborn's birth certificate), shown as `person` is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former: Vec<String>,
    pub name: String,
    pub region: String,
    pub region_name: String,
    pub coverage_year: u16,
    pub state: String,
    pub premium_due: Money,
    /// Money in by source: `self`, `other`, `collector`, `proxy`, `subsidy:FUNDER`.
    pub paid_by: BTreeMap<String, Money>,
    pub refunded: Money,
    pub net_received: Money,
    pub covered_from: Date,
    pub covered_until: Date,
    pub payments: Vec<Entry>,
    /// Beijing time of issue.
    pub issued_at: String,
    /// The log's head the certificate was issued at.
    pub head_position: u64,
    pub head_hash: String,
    /// Present when the office holds a signing key: what verifies the
    /// certificate without the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proofs: Option<Proofs>,
}

/// A certificate's offline proofs: the tree head at issue signed by the
/// office, each cited fact's record with its inclusion proof in that
/// tree, and the office's signature over every field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CertificateProofs)]
pub struct Proofs {
    /// Tree size = `head_position`.
    pub signed_head: SignedHead,
    /// The audit path of the head record (`head_hash`) in that tree, hex.
    pub head_path: Vec<String>,
    /// Every position the entries cite (a fact, a proxy application), in
    /// the entries' order.
    pub facts: Vec<FactProof>,
    /// SM2DSA (r ‖ s, hex) with the signed head's key over `signed_bytes`.
    pub signature: String,
}

/// One fact as the log stores it, and where it is in the signed tree:
/// SM3(`prev_hash` ‖ `stored`) is its chain hash, the tree's leaf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactProof {
    pub position: u64,
    /// The chain hash of the record before it, hex.
    pub prev_hash: String,
    /// The record's stored bytes (envelope and event), hex. They hold the
    /// fact whole, full ID numbers included.
    pub stored: String,
    /// The audit path, nearest the leaf first, hex.
    pub path: Vec<String>,
}

/// One fact that moved money, with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CertificateEntry)]
pub struct Entry {
    /// `payment`, `proxy`, `subsidy` or `refund`.
    pub kind: String,
    /// Who paid (`self`, `other`, `collector`, `proxy`), `funders`, or
    /// where a refund went.
    pub source: String,
    pub amount: Money,
    pub at: String,
    pub channel: String,
    pub reference: String,
    pub position: u64,
    pub hash: String,
    /// A proxy payment: the account holder (masked), and the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_position: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_hash: Option<String>,
    /// A subsidy: the parts by funder.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, Money>,
}

/// Every field a reader relies on, by name, as text (proofs aside): what
/// `verify` compares and the office signs. A new field of the certificate
/// is a compile error here until it is placed.
pub(super) fn fields(data: &Certificate) -> Vec<(String, String)> {
    let Certificate {
        format,
        version,
        ledger_id,
        person,
        full_id,
        former,
        name,
        region,
        region_name,
        coverage_year,
        state,
        premium_due,
        paid_by,
        refunded,
        net_received,
        covered_from,
        covered_until,
        payments,
        issued_at,
        head_position,
        head_hash,
        proofs: _,
    } = data;
    let mut out: Vec<(String, String)> = [
        ("format", format.clone()),
        ("version", version.to_string()),
        ("ledger_id", ledger_id.clone()),
        ("person", person.clone()),
        ("full_id", full_id.to_string()),
        ("former", former.join(", ")),
        ("name", name.clone()),
        ("region", region.clone()),
        ("region_name", region_name.clone()),
        ("coverage_year", coverage_year.to_string()),
        ("state", state.clone()),
        ("premium_due", premium_due.to_string()),
        ("paid_by", amounts(paid_by)),
        ("refunded", refunded.to_string()),
        ("net_received", net_received.to_string()),
        ("covered_from", covered_from.to_string()),
        ("covered_until", covered_until.to_string()),
        ("issued_at", issued_at.clone()),
        ("head_position", head_position.to_string()),
        ("head_hash", head_hash.clone()),
        ("payments", format!("{} fact(s)", payments.len())),
    ]
    .into_iter()
    .map(|(field, value)| (field.to_string(), value))
    .collect();
    for (index, entry) in payments.iter().enumerate() {
        out.extend(entry_fields(entry).into_iter().map(|(field, value)| (format!("payments[{index}].{field}"), value)));
    }
    out
}

fn entry_fields(entry: &Entry) -> Vec<(&'static str, String)> {
    let Entry {
        kind,
        source,
        amount,
        at,
        channel,
        reference,
        position,
        hash,
        payer,
        application_position,
        application_hash,
        parts,
    } = entry;
    vec![
        ("kind", kind.clone()),
        ("source", source.clone()),
        ("amount", amount.to_string()),
        ("at", at.clone()),
        ("channel", channel.clone()),
        ("reference", reference.clone()),
        ("position", position.to_string()),
        ("hash", hash.clone()),
        ("payer", payer.clone().unwrap_or_default()),
        ("application_position", application_position.map_or_else(String::new, |p| p.to_string())),
        ("application_hash", application_hash.clone().unwrap_or_default()),
        ("parts", amounts(parts)),
    ]
}

/// `self 400.00, subsidy:province 10.00`.
pub(super) fn amounts(by: &BTreeMap<String, Money>) -> String {
    by.iter().map(|(source, amount)| format!("{source} {amount}")).collect::<Vec<_>>().join(", ")
}

/// What the office signs: `SIGNED_MAGIC`, then every field of `fields`
/// as `name: value` a line (a backslash in a value written `\\`, a line
/// break `\n`), then the signed head's `tree_size`, `root` and `key_id`.
pub fn signed_bytes(data: &Certificate, head: &SignedHead) -> Vec<u8> {
    let mut text = format!("{SIGNED_MAGIC}\n");
    let head_fields = [
        ("signed_head.tree_size".to_string(), head.tree_size.to_string()),
        ("signed_head.root".to_string(), head.root.clone()),
        ("signed_head.key_id".to_string(), head.key_id.clone()),
    ];
    for (name, value) in fields(data).into_iter().chain(head_fields) {
        let value = value.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r");
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.into_bytes()
}

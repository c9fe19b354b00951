//! What a certificate states: the data block, from which the visible part
//! is rendered and against which `verify` checks the log.

use ledger::{Date, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The data block's `format`.
pub const FORMAT: &str = "yibao-payment-certificate";
/// The data block's `version`.
pub const VERSION: u32 = 1;

/// A certificate: `yibao certificate --format json` and
/// `GET /v1/certificates/{id_number}/{year}?format=json` give this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One fact that moved money, with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

//! Verifying a certificate with nothing but the document and the office's
//! public key: no ledger is opened.
//!
//! Checked, each failure named (`Unproven`, exit 1):
//! * the signed tree head: signed by the key, of the certificate's ledger,
//!   of the size of the head at issue;
//! * the office's signature over every field (`data::signed_bytes`);
//! * the head at issue (`head_hash`) is the signed tree's leaf there;
//! * each cited fact: its carried record hashes, with its previous hash,
//!   to the chain hash the entry names (SM3(prev ‖ stored)), the chain hash
//!   is a leaf of the signed tree (inclusion proof to the signed root), and
//!   the record decoded states what the entry prints (person, year, amount,
//!   reference, time, a proxy payment's application and holder);
//! * the totals add up from the entries; the printed part is the rendering
//!   of the data block; the issue time is not in the future.
//!
//! A certificate issued without a key carries no proofs: `NoProofs`.

use super::data::{signed_bytes, Certificate, Proofs};
use super::render::{extract, render, Format};
use super::verify::{check_entry, check_format, check_totals, first_difference, read_data, VerifyError};
use crate::keys::PublicKeyInfo;
use crate::proof::{parse_hash, InclusionProof};
use ledger::envelope::{chain_hash, decode_record};
use ledger::{BeijingTime, Envelope, UtcTime};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far an issue time may lie ahead of this machine's clock.
const CLOCK_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// A certificate whose proofs all verify with the public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedOffline {
    pub person: String,
    pub coverage_year: u16,
    /// Money facts proven in the signed tree.
    pub n_payments: usize,
    pub ledger_id: String,
    /// The signed tree's size: the head at issue.
    pub tree_size: u64,
    pub root: String,
    pub key_id: String,
    pub signed_at: String,
}

/// Verifies the certificate document `text` with the office's public key.
pub fn verify_offline(text: &str, key: &PublicKeyInfo) -> Result<VerifiedOffline, VerifyError> {
    let (format, block) = extract(text).ok_or(VerifyError::NoDataBlock)?;
    let data = read_data(block)?;
    let Some(proofs) = &data.proofs else { return Err(VerifyError::NoProofs) };
    let mut failures: Vec<String> = check_format(&data).into_iter().collect();
    failures.extend(check_head(&data, proofs, key));
    let (records, fact_failures) = proven_records(proofs);
    failures.extend(fact_failures);
    let lookup = |position: u64| Ok(records.get(&position).cloned());
    for (index, entry) in data.payments.iter().enumerate() {
        let field = format!("payments[{index}]");
        let unproven: Vec<u64> = std::iter::once(entry.position)
            .chain(entry.application_position)
            .filter(|position| !records.contains_key(position))
            .collect();
        if unproven.is_empty() {
            failures.extend(check_entry(&lookup, &data, entry, &field)?);
        } else {
            failures.extend(unproven.iter().map(|position| {
                format!("field `{field}.position`: position {position} has no proof in the signed tree")
            }));
        }
    }
    failures.extend(check_totals(&data));
    failures.extend(check_issued_at(&data));
    if format != Format::Json {
        if let Some(line) = first_difference(&render(&data, format), text) {
            failures.push(format!("the printed certificate differs from its data block at line {line}"));
        }
    }
    failures.dedup();
    if !failures.is_empty() {
        return Err(VerifyError::Unproven { failures });
    }
    Ok(VerifiedOffline {
        person: data.person.clone(),
        coverage_year: data.coverage_year,
        n_payments: data.payments.len(),
        ledger_id: data.ledger_id.clone(),
        tree_size: proofs.signed_head.tree_size,
        root: proofs.signed_head.root.clone(),
        key_id: key.key_id.clone(),
        signed_at: proofs.signed_head.signed_at.clone(),
    })
}

/// The signed head, the office's signature over the fields, and the head
/// at issue as the signed tree's leaf.
fn check_head(data: &Certificate, proofs: &Proofs, key: &PublicKeyInfo) -> Vec<String> {
    let head = &proofs.signed_head;
    let mut failures = Vec::new();
    if let Err(error) = head.check_signature(key) {
        failures.push(format!("signed head: {error}"));
    }
    if head.ledger_id != data.ledger_id {
        failures.push(format!(
            "signed head: of ledger {}, the certificate names ledger {}",
            head.ledger_id, data.ledger_id
        ));
    }
    if head.tree_size != data.head_position {
        failures.push(format!(
            "signed head: tree size {}, the certificate's head at issue is position {}",
            head.tree_size, data.head_position
        ));
    }
    if !key.verifies(&signed_bytes(data, head), &proofs.signature) {
        failures.push(format!(
            "signature: the office's signature over the certificate's fields does not verify with key {} (a field \
             was changed, or another key signed it)",
            key.key_id
        ));
    }
    let head_leaf = InclusionProof {
        position: data.head_position,
        chain_hash: data.head_hash.clone(),
        tree_size: head.tree_size,
        root: head.root.clone(),
        path: proofs.head_path.clone(),
    };
    if let Err(error) = head_leaf.verify() {
        failures
            .push(format!("field `head_hash`: not the signed tree's leaf at position {}: {error}", data.head_position));
    }
    failures
}

/// The records the certificate carries, each hashed and proven in the
/// signed tree: those that verify by position, and a failure for each
/// that does not.
fn proven_records(proofs: &Proofs) -> (BTreeMap<u64, Envelope>, Vec<String>) {
    let mut records = BTreeMap::new();
    let mut failures = Vec::new();
    for (index, fact) in proofs.facts.iter().enumerate() {
        let field = format!("proofs.facts[{index}]");
        let prev_hash = match parse_hash(&fact.prev_hash, "prev_hash") {
            Ok(hash) => hash,
            Err(error) => {
                failures.push(format!("field `{field}.prev_hash`: {error}"));
                continue;
            }
        };
        let Ok(stored) = hex::decode(&fact.stored) else {
            failures.push(format!("field `{field}.stored`: not hex"));
            continue;
        };
        let hash = chain_hash(&prev_hash, &stored);
        let inclusion = InclusionProof {
            position: fact.position,
            chain_hash: hex::encode(hash),
            tree_size: proofs.signed_head.tree_size,
            root: proofs.signed_head.root.clone(),
            path: fact.path.clone(),
        };
        if let Err(error) = inclusion.verify() {
            failures.push(format!(
                "field `{field}`: the record at position {} is not in the signed tree: {error}",
                fact.position
            ));
            continue;
        }
        match decode_record(&stored) {
            Ok((head, _)) if head.position != fact.position => failures.push(format!(
                "field `{field}.stored`: the record is of position {}, not {}",
                head.position, fact.position
            )),
            Ok((head, event)) => {
                records.insert(fact.position, Envelope { head, event, prev_hash, hash });
            }
            Err(error) => failures.push(format!("field `{field}.stored`: {error}")),
        }
    }
    (records, failures)
}

/// A time, and not ahead of this clock.
fn check_issued_at(data: &Certificate) -> Option<String> {
    match data.issued_at.parse::<BeijingTime>() {
        Err(why) => Some(format!("field `issued_at`: {why}")),
        Ok(issued) if issued.0 > UtcTime::now().0.saturating_add(CLOCK_SKEW_MICROS) => {
            Some(format!("field `issued_at`: {} is in the future", data.issued_at))
        }
        Ok(_) => None,
    }
}

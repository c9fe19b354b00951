//! Verifying a certificate document against the log.
//!
//! Checked, each failure naming its field (`Forged`, exit 1):
//! * the issuer: the ledger, and the head at issue (position and SM3);
//! * each money fact listed, at its position with its hash, person, year
//!   and amount (a proxy payment's application too);
//! * every field a reader relies on (name, masked ID, region, year, state,
//!   amounts by source, refunds, covered from/until, every payment line)
//!   against the certificate the log gives at the head at issue: the
//!   projections rebuilt from position 1 to that head and the person-year
//!   issued again;
//! * the issue time: not before the head at issue was recorded, not in the
//!   future;
//! * the printed part, line by line, against the rendering of the log's
//!   certificate (each difference named by the line's label), and against
//!   the certificate's own data block.
//!
//! A genuine certificate whose person-year the log now states otherwise (a
//! refund after issue, a policy amendment) is reported as changed since
//! issue (`Changed`, exit 4).

use super::data::{fields, Certificate, Entry, FORMAT, VERSIONS_READ};
use super::issue::{issue_from, record_at, IssueError};
use super::render::{extract, lines, printed_part, render, Format};
use crate::error::{Classified, Kind, StorageError};
use crate::Ledger;
use ledger::{BeijingTime, Envelope, Event, Identity, LogReader, Money, UtcTime};
use projections::coverage::{Coverage, MoneyKind};
use projections::family::Family;
use projections::Projection;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How far an issue time may lie ahead of this machine's clock.
const CLOCK_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;
/// Most differing printed lines reported one by one.
const MAX_PRINTED_DIFFERENCES: usize = 8;

/// A certificate that verifies and is still current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// As the certificate shows it.
    pub person: String,
    pub coverage_year: u16,
    /// Money facts found at their positions with their SM3 hashes.
    pub n_payments: usize,
    /// The head at issue, every field agreeing with the log there.
    pub head_position: u64,
    /// The log's head now.
    pub head_now: u64,
}

/// A genuine certificate the log now states otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangedSinceIssue {
    /// What verified, as of the head at issue.
    pub verified: Verified,
    /// Each field the log now gives otherwise, and each later money fact.
    pub changes: Vec<String>,
}

/// A certificate that does not verify, or verifying it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("no certificate data block: not a yibao certificate")]
    NoDataBlock,
    /// The data block is not a certificate's: `field` (a path, `payments[0].amount`) and why.
    #[error("the certificate's data block does not read")]
    DataBlock { field: String, reason: String },
    /// Forged or altered: each field (or printed line) that fails, and why.
    #[error("{} field(s) do not verify against the log", failures.len())]
    Forged { failures: Vec<String> },
    /// Checked offline: each check that fails, and why.
    #[error("{} check(s) fail with the public key", failures.len())]
    Unproven { failures: Vec<String> },
    /// Issued without a signing key: nothing to check offline.
    #[error("the certificate carries no proofs; ask the office for one issued with a signing key")]
    NoProofs,
    #[error("genuine, but the person-year changed since issue")]
    Changed(Box<ChangedSinceIssue>),
    /// Issuing again from the log failed (storage, or projections that
    /// disagree with the log).
    #[error(transparent)]
    Reissue(IssueError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for VerifyError {
    fn kind(&self) -> Kind {
        match self {
            VerifyError::NoDataBlock => Kind::BadInput,
            VerifyError::DataBlock { .. }
            | VerifyError::Forged { .. }
            | VerifyError::Unproven { .. }
            | VerifyError::NoProofs => Kind::Findings,
            VerifyError::Changed(_) => Kind::Changed,
            VerifyError::Reissue(error) => error.kind(),
            VerifyError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            VerifyError::DataBlock { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Verifies the certificate document `text` (text, HTML or the data block
/// alone) against the ledger.
pub fn verify(ledger: &Ledger, text: &str) -> Result<Verified, VerifyError> {
    let (format, block) = extract(text).ok_or(VerifyError::NoDataBlock)?;
    let data = read_data(block)?;
    let log: &dyn LogReader = ledger.log();
    let (failures, person) = check(log, &data, text, format)?;
    if !failures.is_empty() {
        return Err(VerifyError::Forged { failures });
    }
    let verified = Verified {
        person: data.person.clone(),
        coverage_year: data.coverage_year,
        n_payments: data.payments.len(),
        head_position: data.head_position,
        head_now: log.durable_head().position,
    };
    // A certificate without failures has its person.
    let Some(person) = person else { return Ok(verified) };
    let changes = since_issue(ledger, &data, &person)?;
    if changes.is_empty() {
        return Ok(verified);
    }
    Err(VerifyError::Changed(Box::new(ChangedSinceIssue { verified, changes })))
}

/// The data block's certificate, the field at fault named.
pub(super) fn read_data(block: &str) -> Result<Certificate, VerifyError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(block))
        .map_err(|e| VerifyError::DataBlock { field: e.path().to_string(), reason: e.inner().to_string() })
}

/// Every check of a certificate read from `text`: the failures, and the
/// person it is about when its money facts name them.
fn check(
    log: &dyn LogReader,
    data: &Certificate,
    text: &str,
    format: Format,
) -> Result<(Vec<String>, Option<Identity>), VerifyError> {
    let mut failures = check_against_log(log, data)?;
    // Another ledger, or a head the log does not hold: nothing to reissue at.
    let issuer_verified = !failures.iter().any(|failure| {
        ["field `format`", "field `ledger_id`", "field `head_"].iter().any(|field| failure.starts_with(field))
    });
    let person = certified_person(log, data)?;
    if person.is_none() {
        add_once(&mut failures, "person", format!("no money fact listed is about {}", data.person));
    }
    let years = listed_years(log, data)?;
    if years.iter().any(|&year| year != data.coverage_year) {
        let years: Vec<String> = years.iter().map(u16::to_string).collect();
        add_once(&mut failures, "coverage_year", format!("the money facts listed are of {}", years.join(", ")));
    }
    if let (true, Some(person)) = (issuer_verified, &person) {
        match reissue_at(log, data, person)? {
            Ok(expected) => {
                for (field, why) in differences(data, &expected, &["issued_at"], "the log at issue gives") {
                    add_once(&mut failures, &field, why);
                }
                if format != Format::Json {
                    failures.extend(check_printed(text, format, data, &expected));
                }
            }
            Err(why) => add_once(&mut failures, "state", why),
        }
    }
    for failure in check_totals(data) {
        // A field found against the log is not repeated.
        let field = failure.split_once(':').map_or(failure.as_str(), |(field, _)| field);
        if !failures.iter().any(|known| known.starts_with(field)) {
            failures.push(failure);
        }
    }
    failures.extend(check_issued_at(log, data)?);
    if format != Format::Json {
        if let Some(line) = first_difference(&render(data, format), text) {
            failures.push(format!("the printed certificate differs from its data block at line {line}"));
        }
    }
    failures.dedup();
    Ok((failures, person))
}

/// Adds a failure of `field` unless one is reported already.
fn add_once(failures: &mut Vec<String>, field: &str, why: String) {
    let prefix = format!("field `{field}`:");
    if !failures.iter().any(|failure| failure.starts_with(&prefix)) {
        failures.push(format!("{prefix} {why}"));
    }
}

/// The person the certificate is about: its ID when shown whole, else the
/// one its money facts name whose masked ID it shows.
fn certified_person(log: &dyn LogReader, data: &Certificate) -> Result<Option<Identity>, StorageError> {
    if data.full_id {
        return Ok(data.person.parse().ok());
    }
    for entry in &data.payments {
        for position in std::iter::once(entry.position).chain(entry.application_position) {
            let named = record_at(log, position)?.and_then(|envelope| subject(&envelope.event));
            if let Some(person) = named.filter(|person| same_person(data, person)) {
                return Ok(Some(person));
            }
        }
    }
    Ok(None)
}

/// The coverage years of the money facts listed, as the log holds them.
fn listed_years(log: &dyn LogReader, data: &Certificate) -> Result<BTreeSet<u16>, StorageError> {
    let mut years = BTreeSet::new();
    for entry in &data.payments {
        for position in std::iter::once(entry.position).chain(entry.application_position) {
            let year = record_at(log, position)?.and_then(|envelope| match envelope.event {
                Event::ProxySubmittedV1(e) => Some(e.coverage_year),
                Event::PaymentReceivedV1(e) => Some(e.coverage_year),
                Event::SubsidyGrantedV1(e) => Some(e.coverage_year),
                Event::RefundIssuedV1(e) => Some(e.coverage_year),
                _ => None,
            });
            years.extend(year);
        }
    }
    Ok(years)
}

/// The certificate the log gives at the certificate's head: coverage and
/// family rebuilt from position 1 to it, the person-year issued again.
/// `Err`: no certificate then, and why.
fn reissue_at(
    log: &dyn LogReader,
    data: &Certificate,
    person: &Identity,
) -> Result<Result<Certificate, String>, VerifyError> {
    let mut coverage = Coverage::new();
    let mut family = Family::new();
    log.scan(1, data.head_position, |envelope| {
        coverage.apply(&envelope);
        family.apply(&envelope);
        Ok(())
    })
    .map_err(StorageError::from)?;
    reissue(log, &coverage, &family, data, person)
}

fn reissue(
    log: &dyn LogReader,
    coverage: &Coverage,
    family: &Family,
    data: &Certificate,
    person: &Identity,
) -> Result<Result<Certificate, String>, VerifyError> {
    match issue_from(log, coverage, family, person, data.coverage_year, data.full_id) {
        // The log states the fields; the version read and the proofs
        // (checked offline, with the key) are the certificate's own.
        Ok(expected) => Ok(Ok(Certificate { version: data.version, proofs: data.proofs.clone(), ..expected })),
        Err(error @ (IssueError::NoPerson { .. } | IssueError::NotReceived(_) | IssueError::TooManyFacts { .. })) => {
            Ok(Err(error.to_string()))
        }
        Err(error) => Err(VerifyError::Reissue(error)),
    }
}

/// (field, why) for each field of `found` that `expected` states
/// otherwise, leaving out `skip`. `source` says where `expected` is from.
fn differences(found: &Certificate, expected: &Certificate, skip: &[&str], source: &str) -> Vec<(String, String)> {
    let expected: BTreeMap<String, String> = fields(expected).into_iter().collect();
    fields(found)
        .into_iter()
        .filter(|(field, _)| !skip.contains(&field.as_str()))
        .filter_map(|(field, value)| {
            // An entry the log does not give: counted under `payments`.
            let wanted = expected.get(&field)?;
            (*wanted != value).then(|| (field, format!("the certificate says `{value}`, {source} `{wanted}`")))
        })
        .collect()
}

/// The part people read: everything before the data block.
/// The printed part against the rendering of the log's certificate (with
/// the certificate's own issue time), line by line, each difference named
/// by its label.
fn check_printed(text: &str, format: Format, data: &Certificate, expected: &Certificate) -> Vec<String> {
    let expected = Certificate { issued_at: data.issued_at.clone(), ..expected.clone() };
    let rendered = render(&expected, format);
    let wanted: Vec<&str> = printed_part(&rendered, format).trim_end().lines().collect();
    let found: Vec<&str> = printed_part(text, format).trim_end().lines().collect();
    let labels: Vec<String> = lines(&expected).into_iter().map(|(label, _)| label).collect();
    let differing: Vec<usize> =
        (0..wanted.len().max(found.len())).filter(|&index| wanted.get(index) != found.get(index)).collect();
    let mut failures: Vec<String> = differing
        .iter()
        .take(MAX_PRINTED_DIFFERENCES)
        .map(|&index| {
            let (want, got) = (wanted.get(index).copied().unwrap_or(""), found.get(index).copied().unwrap_or(""));
            format!(
                "printed `{}` (line {}): the certificate prints `{}`, the log gives `{}`",
                printed_label(&labels, if want.is_empty() { got } else { want }),
                index + 1,
                got.trim(),
                want.trim()
            )
        })
        .collect();
    if differing.len() > MAX_PRINTED_DIFFERENCES {
        failures.push(format!("printed: {} more line(s) differ", differing.len() - MAX_PRINTED_DIFFERENCES));
    }
    failures
}

/// The label of a printed line: a certificate line's own (`person`,
/// `covered`, …), else the part of the certificate it is in.
fn printed_label(labels: &[String], line: &str) -> String {
    let labelled = labels
        .iter()
        .find(|label| line.starts_with(&format!("{label:<15} ")) || line.starts_with(&format!("<tr><th>{label}</th>")));
    if let Some(label) = labelled {
        return label.clone();
    }
    let line = line.trim_start();
    let payment_words =
        ["<li>", "log position ", "proxy ", "payment ", "subsidy ", "refund ", "self ", "other ", "collector "];
    if line.starts_with("issued ") || line.starts_with("<p>issued ") {
        "issued".into()
    } else if payment_words.iter().any(|word| line.starts_with(word)) {
        "payments".into()
    } else {
        "heading".into()
    }
}

/// The issue time: a time, not before the head at issue was recorded
/// (the time is shown to the second), not ahead of this clock.
fn check_issued_at(log: &dyn LogReader, data: &Certificate) -> Result<Vec<String>, StorageError> {
    let issued: BeijingTime = match data.issued_at.parse() {
        Ok(issued) => issued,
        Err(why) => return Ok(vec![format!("field `issued_at`: {why}")]),
    };
    let mut failures = Vec::new();
    if let Some(head) = record_at(log, data.head_position)? {
        if issued.0.saturating_add(1_000_000) <= head.head.recorded_at.0 {
            failures.push(format!(
                "field `issued_at`: {} is before the head at issue was recorded ({})",
                data.issued_at, head.head.recorded_at
            ));
        }
    }
    if issued.0 > UtcTime::now().0.saturating_add(CLOCK_SKEW_MICROS) {
        failures.push(format!("field `issued_at`: {} is in the future", data.issued_at));
    }
    Ok(failures)
}

/// What the log states now otherwise than the certificate: the fields that
/// differ (issue fields aside), and the money facts after the head.
fn since_issue(ledger: &Ledger, data: &Certificate, person: &Identity) -> Result<Vec<String>, VerifyError> {
    let now = ledger.projections_of_person(person, &[])?;
    let later = now
        .coverage
        .money_events(person, data.coverage_year)
        .into_iter()
        .filter(|event| event.position > data.head_position)
        .map(|event| {
            let what = match &event.kind {
                MoneyKind::Payment { source } => format!("payment ({source})"),
                MoneyKind::Subsidy { group, .. } => format!("subsidy ({group})"),
                MoneyKind::Refund { destination, .. } => format!("refund to {destination}"),
            };
            format!("later: {what} {} at position {}", event.amount, event.position)
        });
    let mut changes: Vec<String> = match reissue(ledger.log(), &now.coverage, &now.family, data, person)? {
        Ok(now) => differences(data, &now, &["issued_at", "head_position", "head_hash"], "the log now gives")
            .into_iter()
            .map(|(field, why)| format!("field `{field}`: {why}"))
            .collect(),
        Err(why) => vec![format!("no certificate now: {why}")],
    };
    changes.extend(later);
    Ok(changes)
}

/// The person a money fact is about (a proxy step names its application,
/// not the person: `None`; its submission names the member).
fn subject(event: &Event) -> Option<Identity> {
    match event {
        Event::ProxySubmittedV1(e) => Some(e.member.clone()),
        Event::PaymentReceivedV1(e) => Some(e.person.clone()),
        Event::SubsidyGrantedV1(e) => Some(e.person.clone()),
        Event::RefundIssuedV1(e) => Some(e.person.clone()),
        _ => None,
    }
}

pub(super) fn first_difference(expected: &str, found: &str) -> Option<usize> {
    let (mut a, mut b) = (expected.trim_end().lines(), found.trim_end().lines());
    let mut line = 0;
    loop {
        line += 1;
        match (a.next(), b.next()) {
            (None, None) => return None,
            (x, y) if x != y => return Some(line),
            _ => {}
        }
    }
}

fn check_against_log(log: &dyn LogReader, data: &Certificate) -> Result<Vec<String>, StorageError> {
    let mut failures = Vec::new();
    failures.extend(check_format(data));
    let ledger_id = log.ledger_id().to_string();
    if data.ledger_id != ledger_id {
        failures.push(format!("field `ledger_id`: issued by ledger {}, this is ledger {ledger_id}", data.ledger_id));
    }
    match record_at(log, data.head_position)? {
        None => failures.push(format!(
            "field `head_position`: the log has no position {} (head {})",
            data.head_position,
            log.durable_head().position
        )),
        Some(head) if hex::encode(head.hash) != data.head_hash => {
            failures.push(format!("field `head_hash`: the record at position {} has another hash", data.head_position))
        }
        Some(_) => {}
    }
    for (index, entry) in data.payments.iter().enumerate() {
        let field = format!("payments[{index}]");
        if entry.position > data.head_position {
            failures.push(format!("field `{field}.position`: {} is after the head at issue", entry.position));
        }
        failures.extend(check_entry(&|position| record_at(log, position), data, entry, &field)?);
    }
    Ok(failures)
}

/// A certificate's format and a version this reads.
pub(super) fn check_format(data: &Certificate) -> Option<String> {
    (data.format != FORMAT || !VERSIONS_READ.contains(&data.version)).then(|| {
        format!(
            "field `format`/`version`: `{} {}` is not {FORMAT} of version {}",
            data.format,
            data.version,
            VERSIONS_READ.map(|v| v.to_string()).join(" or ")
        )
    })
}

fn same_person(data: &Certificate, person: &Identity) -> bool {
    let shown = if data.full_id { person.to_string() } else { person.masked() };
    shown == data.person || data.former.contains(&shown)
}

/// The record at a position: the log's, or a certificate's proven one.
pub(super) type Records<'a> = &'a dyn Fn(u64) -> Result<Option<Envelope>, StorageError>;

/// One money fact listed against the record at its position.
pub(super) fn check_entry(
    records: Records<'_>,
    data: &Certificate,
    entry: &Entry,
    field: &str,
) -> Result<Vec<String>, StorageError> {
    let mut failures = Vec::new();
    let Some(envelope) = records(entry.position)? else {
        failures.push(format!("field `{field}.position`: the log has no position {}", entry.position));
        return Ok(failures);
    };
    if hex::encode(envelope.hash) != entry.hash {
        failures.push(format!("field `{field}.hash`: the record at position {} has another hash", entry.position));
    }
    let mut check = |ok: bool, name: &str, what: String| {
        if !ok {
            failures.push(format!("field `{field}.{name}`: {what}"));
        }
    };
    let year = data.coverage_year;
    match (&envelope.event, entry.kind.as_str()) {
        (Event::PaymentReceivedV1(e), "payment") => {
            check(
                same_person(data, &e.person) && e.coverage_year == year,
                "position",
                "a payment of another person-year".into(),
            );
            check(
                e.amount == entry.amount,
                "amount",
                format!("{} in the certificate, {} in the log", entry.amount, e.amount),
            );
            let same_ref = e.channel == entry.channel && e.channel_ref == entry.reference;
            check(same_ref, "reference", format!("the log says {}/{}", e.channel, e.channel_ref));
            check(e.paid_at.to_string() == entry.at, "at", format!("the log says {}", e.paid_at));
        }
        (Event::ProxyCreditedV1(e), "proxy") => {
            check(
                e.application_id == entry.reference,
                "reference",
                format!("the log says application {}", e.application_id),
            );
            check(e.at.to_string() == entry.at, "at", format!("the log says {}", e.at));
            failures.extend(check_application(records, data, entry, field)?);
        }
        (Event::SubsidyGrantedV1(e), "subsidy") => {
            check(
                same_person(data, &e.person) && e.coverage_year == year,
                "position",
                "a subsidy of another person-year".into(),
            );
            let total = e.parts.iter().try_fold(Money::ZERO, |sum, p| sum.checked_add(p.amount));
            check(total == Some(entry.amount), "amount", format!("{} in the certificate, not the log's", entry.amount));
        }
        (Event::RefundIssuedV1(e), "refund") => {
            check(
                same_person(data, &e.person) && e.coverage_year == year,
                "position",
                "a refund of another person-year".into(),
            );
            check(
                e.amount == entry.amount,
                "amount",
                format!("{} in the certificate, {} in the log", entry.amount, e.amount),
            );
        }
        (other, kind) => check(
            false,
            "kind",
            format!("`{kind}`, but position {} holds a {} fact", entry.position, other.type_name()),
        ),
    }
    Ok(failures)
}

/// A proxy payment: the application it credits, at its own position.
fn check_application(
    records: Records<'_>,
    data: &Certificate,
    entry: &Entry,
    field: &str,
) -> Result<Vec<String>, StorageError> {
    let mut failures = Vec::new();
    let (Some(position), Some(hash)) = (entry.application_position, &entry.application_hash) else {
        failures.push(format!("field `{field}.application_position`: missing for a proxy payment"));
        return Ok(failures);
    };
    let Some(envelope) = records(position)? else {
        failures.push(format!("field `{field}.application_position`: the log has no position {position}"));
        return Ok(failures);
    };
    if hex::encode(envelope.hash) != *hash {
        failures.push(format!("field `{field}.application_hash`: the record at position {position} has another hash"));
    }
    match &envelope.event {
        Event::ProxySubmittedV1(e) => {
            if e.application_id != entry.reference
                || !same_person(data, &e.member)
                || e.coverage_year != data.coverage_year
            {
                failures.push(format!("field `{field}.application_position`: another application or person-year"));
            }
            if e.amount != entry.amount {
                failures.push(format!(
                    "field `{field}.amount`: {} in the certificate, {} applied for in the log",
                    entry.amount, e.amount
                ));
            }
            if entry.payer.as_deref() != Some(e.holder.masked().as_str()) {
                failures.push(format!("field `{field}.payer`: the log names another account holder"));
            }
        }
        other => failures.push(format!(
            "field `{field}.application_position`: position {position} holds a {} fact",
            other.type_name()
        )),
    }
    Ok(failures)
}

/// The totals agree with the entries: paid by source, refunded, net.
pub(super) fn check_totals(data: &Certificate) -> Vec<String> {
    let mut failures = Vec::new();
    let mut by: BTreeMap<String, i64> = BTreeMap::new();
    let mut refunds = 0i64;
    for entry in &data.payments {
        match entry.kind.as_str() {
            "subsidy" => {
                for (funder, amount) in &entry.parts {
                    *by.entry(format!("subsidy:{funder}")).or_default() += amount.fen();
                }
            }
            "refund" => refunds += entry.amount.fen(),
            _ => *by.entry(entry.source.clone()).or_default() += entry.amount.fen(),
        }
    }
    let stated: BTreeMap<String, i64> = data.paid_by.iter().map(|(k, v)| (k.clone(), v.fen())).collect();
    if stated != by {
        failures.push("field `paid_by`: does not add up from the payments listed".to_string());
    }
    let paid: i64 = stated.values().sum();
    if paid - data.refunded.fen() != data.net_received.fen() {
        failures.push(format!(
            "field `net_received`: {} is not paid {} − refunded {}",
            data.net_received,
            Money::from_fen(paid).unwrap_or(Money::ZERO),
            data.refunded
        ));
    }
    if data.refunded.fen() > refunds {
        failures.push("field `refunded`: more than the refunds listed".to_string());
    }
    if data.net_received < data.premium_due || data.state != "received" {
        failures.push("field `state`: a certificate is for a received person-year, paid in full".to_string());
    }
    failures
}

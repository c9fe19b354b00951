//! `yibao certificate`: the payment certificate (参保缴费证明) of a received
//! person-year, and its verification against the log.
//!
//! A certificate is text or HTML for people, with a machine-readable data
//! block (JSON between BEGIN/END lines, or in a `<script
//! type="application/json">` element) from which the visible part is
//! rendered, or the data block alone (JSON). `verify` (in `verify.rs`)
//! checks every field of it against the log.

mod verify;

use crate::commands::open;
use crate::exit::{BadInput, Findings};
use crate::family::projections_at_head;
use crate::lookup::parse_identity;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ledger::{BeijingTime, Date, Envelope, Event, Identity, LogReader, Money, OpenMode};
use projections::coverage::{Coverage, CoverageState, MoneyEvent, MoneyKind, PersonYear};
use projections::family::Family;
use projections::Projection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FORMAT: &str = "yibao-payment-certificate";
const VERSION: u32 = 1;
const BEGIN: &str = "-----BEGIN YIBAO CERTIFICATE DATA-----";
const END: &str = "-----END YIBAO CERTIFICATE DATA-----";
const SCRIPT_OPEN: &str = r#"<script type="application/json" id="yibao-certificate-data">"#;
const SCRIPT_CLOSE: &str = "</script>";
/// Largest certificate file `verify` reads.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most payment events listed on one certificate.
const MAX_ENTRIES: usize = 256;

/// `yibao certificate ID --year Y` or `yibao certificate verify FILE`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CertificateArgs {
    #[command(subcommand)]
    command: Option<CertificateCommand>,
    /// ID number of the insured person.
    id: Option<String>,
    /// Coverage year.
    #[arg(long)]
    year: Option<u16>,
    /// text, html, or json (the data block alone).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print the whole ID number (default: masked, as `Identity::masked`).
    #[arg(long)]
    full_id: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CertificateCommand {
    /// Check a certificate against the log: every field and printed line
    /// against the certificate the log gives at the head at issue. Exit 1
    /// naming each failing field; exit 4 when genuine but the person-year
    /// changed since issue.
    Verify {
        /// The certificate (text, HTML or JSON).
        file: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Html,
    Json,
}

/// What a certificate states; the visible part is rendered from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateData {
    format: String,
    version: u32,
    ledger_id: String,
    person: String,
    full_id: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    former: Vec<String>,
    name: String,
    region: String,
    region_name: String,
    coverage_year: u16,
    state: String,
    premium_due: Money,
    paid_by: BTreeMap<String, Money>,
    refunded: Money,
    net_received: Money,
    covered_from: Date,
    covered_until: Date,
    payments: Vec<Entry>,
    issued_at: String,
    head_position: u64,
    head_hash: String,
}

/// One fact that moved money, with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// `payment`, `proxy`, `subsidy` or `refund`.
    kind: String,
    /// Who paid (`self`, `other`, `collector`, `proxy`), `funders`, or
    /// where a refund went.
    source: String,
    amount: Money,
    at: String,
    channel: String,
    reference: String,
    position: u64,
    hash: String,
    /// A proxy payment: the account holder (masked), and the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    application_position: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    application_hash: Option<String>,
    /// A subsidy: the parts by funder.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parts: BTreeMap<String, Money>,
}

pub fn run(data: &Path, args: CertificateArgs) -> Result<()> {
    if let Some(CertificateCommand::Verify { file }) = args.command {
        return verify::verify(data, &file);
    }
    let (Some(id), Some(year)) = (args.id, args.year) else {
        return Err(BadInput("give an ID number and --year (or `certificate verify FILE`)".into()).into());
    };
    let certificate = issue(data, &id, year, args.full_id)?;
    let text = render(&certificate, args.format);
    match args.out {
        Some(path) => {
            std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
            outln!("certificate for {} {year} written to {}", certificate.person, path.display());
        }
        None => out!("{text}"),
    }
    Ok(())
}

fn issue(data: &Path, id: &str, year: u16, full_id: bool) -> Result<CertificateData> {
    let identity = parse_identity(id)?;
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    issue_from(&log, &coverage, &family, &identity, year, full_id)
}

/// The certificate of a received person-year from projections at one log
/// position (the service's live ones, or the CLI's). Unknown person:
/// `Findings`; a year not received: `BadInput` saying its state.
pub fn issue_from(
    log: &dyn LogReader,
    coverage: &Coverage,
    family: &Family,
    identity: &Identity,
    year: u16,
    full_id: bool,
) -> Result<CertificateData> {
    let identity = identity.clone();
    // A known person has a view of every year (unpaid when nothing
    // happened), so only an unknown identity is "no person".
    let (Some(person), Some(view)) = (coverage.person(&identity), coverage.person_year(&identity, year)) else {
        return Err(Findings(format!("no person with ID {} in the ledger", identity.masked())).into());
    };
    let (Some(from), Some(until)) = (view.covered_from, view.covered_until) else {
        return Err(BadInput(not_received(&identity, &view)).into());
    };
    if view.state != CoverageState::Received {
        return Err(BadInput(not_received(&identity, &view)).into());
    }
    let show = |who: &Identity| if full_id { who.to_string() } else { who.masked() };
    let events = coverage.money_events(&identity, year);
    if events.len() > MAX_ENTRIES {
        return Err(
            BadInput(format!("{} money facts for the year: more than a certificate lists", events.len())).into()
        );
    }
    let payments = events.iter().map(|event| entry(log, family, event)).collect::<Result<Vec<Entry>>>()?;
    let region = person.region.map_or_else(String::new, |r| r.to_string());
    let region_name =
        person.region.and_then(|r| coverage.policy(r, year)).map_or_else(String::new, |p| p.region_name().to_string());
    Ok(CertificateData {
        format: FORMAT.into(),
        version: VERSION,
        ledger_id: log.ledger_id().to_string(),
        person: show(&person.current),
        full_id,
        former: person.former.iter().map(show).collect(),
        name: person.name.unwrap_or_default(),
        region,
        region_name,
        coverage_year: year,
        state: "received".into(),
        premium_due: view.premium_due.unwrap_or(view.net_received),
        paid_by: paid_by(&view),
        refunded: view.refunds.total,
        net_received: view.net_received,
        covered_from: from,
        covered_until: until,
        payments,
        issued_at: BeijingTime::now().to_string(),
        head_position: coverage.position(),
        head_hash: hex::encode(coverage.head_hash()),
    })
}

fn not_received(identity: &Identity, view: &PersonYear) -> String {
    let state = view.state.words();
    let mut why = format!(
        "no certificate for {} {}: the person-year is {state}, not received (参保缴费证明 is issued once the premium is paid in full and credited, 缴费到账成功)",
        identity.masked(),
        view.coverage_year
    );
    if view.in_flight != Money::ZERO {
        why.push_str(&format!("; {} is still in flight in a proxy application", view.in_flight));
    }
    if let Some(outstanding) = view.outstanding.filter(|o| *o != Money::ZERO) {
        why.push_str(&format!("; {outstanding} is outstanding"));
    }
    if view.excess != Money::ZERO {
        why.push_str(&format!("; {} above the premium is to be refunded first", view.excess));
    }
    why
}

/// Money in by source: `self`, `other`, `collector`, `proxy`, `subsidy:FUNDER`.
fn paid_by(view: &PersonYear) -> BTreeMap<String, Money> {
    let paid = &view.paid;
    let mut by: BTreeMap<String, Money> = paid
        .by_source()
        .into_iter()
        .filter(|(_, amount)| *amount != Money::ZERO)
        .map(|(source, amount)| (source.to_string(), amount))
        .collect();
    by.extend(paid.subsidy.iter().map(|(funder, amount)| (format!("subsidy:{funder}"), *amount)));
    by
}

fn record_at(log: &dyn LogReader, position: u64) -> Result<Option<Envelope>> {
    let mut found = None;
    if position == 0 || position > log.durable_head().position {
        return Ok(None);
    }
    log.scan(position, position, |envelope| {
        found = Some(envelope);
        Ok(())
    })?;
    Ok(found)
}

fn entry(log: &dyn LogReader, family: &Family, event: &MoneyEvent) -> Result<Entry> {
    let envelope = record_at(log, event.position)?
        .with_context(|| format!("the coverage projection names position {}, beyond the log", event.position))?;
    let hash = hex::encode(envelope.hash);
    let base = |kind: &str, source: &str, amount: Money, at: String, channel: &str, reference: &str| Entry {
        kind: kind.into(),
        source: source.into(),
        amount,
        at,
        channel: channel.into(),
        reference: reference.into(),
        position: event.position,
        hash: hash.clone(),
        payer: None,
        application_position: None,
        application_hash: None,
        parts: BTreeMap::new(),
    };
    let entry = match (&event.kind, &envelope.event) {
        (MoneyKind::Payment { source }, Event::PaymentReceivedV1(e)) => {
            base("payment", source, e.amount, e.paid_at.to_string(), &e.channel, &e.channel_ref)
        }
        (MoneyKind::Payment { .. }, Event::ProxyCreditedV1(e)) => {
            let application = family
                .application(&e.application_id)
                .with_context(|| format!("proxy application {} is not in the family projection", e.application_id))?;
            let submitted = record_at(log, application.submitted_position)?
                .with_context(|| format!("no record at position {}", application.submitted_position))?;
            let mut entry = base(
                "proxy",
                "proxy",
                application.amount,
                e.at.to_string(),
                "employee_personal_account",
                &e.application_id,
            );
            entry.payer = Some(application.holder.masked());
            entry.application_position = Some(application.submitted_position);
            entry.application_hash = Some(hex::encode(submitted.hash));
            entry
        }
        (MoneyKind::Subsidy { group, parts }, Event::SubsidyGrantedV1(e)) => {
            let mut entry = base("subsidy", "funders", event.amount, e.granted_on.to_string(), "subsidy", group);
            entry.parts = parts.clone();
            entry
        }
        (MoneyKind::Refund { destination, .. }, Event::RefundIssuedV1(e)) => {
            base("refund", destination, e.amount, e.refunded_at.to_string(), &e.payment.channel, &e.payment.channel_ref)
        }
        (_, other) => anyhow::bail!(
            "position {} holds a {} fact, not the money fact the coverage projection names",
            event.position,
            other.type_name()
        ),
    };
    Ok(entry)
}

/// The certificate as HTML (`html`) or text, with its data block.
pub fn render_as(data: &CertificateData, html: bool) -> String {
    render(data, if html { Format::Html } else { Format::Text })
}

fn render(data: &CertificateData, format: Format) -> String {
    match format {
        Format::Text => render_text(data),
        Format::Html => render_html(data),
        Format::Json => format!("{}\n", data_json(data)),
    }
}

fn data_json(data: &CertificateData) -> String {
    serde_json::to_string_pretty(data).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The human lines of a certificate: (label, value).
fn lines(data: &CertificateData) -> Vec<(String, String)> {
    let by = data.paid_by.iter().map(|(source, amount)| format!("{source} {amount}")).collect::<Vec<_>>().join(", ");
    vec![
        ("person".into(), format!("{}  {}", data.person, data.name)),
        ("region".into(), format!("{} {}", data.region, data.region_name)),
        ("coverage year".into(), data.coverage_year.to_string()),
        ("state".into(), format!("{} (已到账)", data.state)),
        ("premium due".into(), data.premium_due.to_string()),
        ("paid by".into(), by),
        ("refunded".into(), data.refunded.to_string()),
        ("net received".into(), data.net_received.to_string()),
        ("covered".into(), format!("{} until {}", data.covered_from, data.covered_until)),
    ]
}

fn entry_lines(entry: &Entry) -> (String, String) {
    let what = match entry.kind.as_str() {
        "proxy" => format!(
            "proxy {} {} from the employee personal account of {}, application {}",
            entry.amount,
            entry.at,
            entry.payer.as_deref().unwrap_or("?"),
            entry.reference
        ),
        "subsidy" => {
            let parts: Vec<String> = entry.parts.iter().map(|(f, a)| format!("{f} {a}")).collect();
            format!("subsidy {} {} group {} ({})", entry.amount, entry.at, entry.reference, parts.join(", "))
        }
        "refund" => format!(
            "refund {} {} of {}/{} to {}",
            entry.amount,
            entry.at,
            entry.channel,
            entry.reference,
            entry.source.replace('_', " ")
        ),
        _ => format!("{} {} {} via {} {}", entry.source, entry.amount, entry.at, entry.channel, entry.reference),
    };
    let mut place = format!("log position {} SM3 {}", entry.position, entry.hash);
    if let (Some(position), Some(hash)) = (entry.application_position, &entry.application_hash) {
        place.push_str(&format!("; application at position {position} SM3 {hash}"));
    }
    (what, place)
}

fn render_text(data: &CertificateData) -> String {
    let mut out = String::new();
    out.push_str("参保缴费证明 · Payment certificate\n");
    out.push_str("城乡居民基本医疗保险 (urban-rural resident basic medical insurance)\n\n");
    for (label, value) in lines(data) {
        out.push_str(&format!("{label:<15} {value}\n"));
    }
    out.push_str("\npayments, each with the log position and SM3 hash of its fact:\n");
    for entry in &data.payments {
        let (what, place) = entry_lines(entry);
        out.push_str(&format!("  {what}\n    {place}\n"));
    }
    out.push_str(&format!(
        "\nissued {} from ledger {} at log position {}, head SM3 {}\n",
        data.issued_at, data.ledger_id, data.head_position, data.head_hash
    ));
    out.push_str("check it against the ledger: yibao certificate verify FILE\n\n");
    out.push_str(&format!("{BEGIN}\n{}\n{END}\n", data_json(data)));
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn render_html(data: &CertificateData) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!(
        "<title>参保缴费证明 {} {}</title>\n</head>\n<body>\n",
        escape(&data.person),
        data.coverage_year
    ));
    out.push_str("<h1>参保缴费证明 · Payment certificate</h1>\n<p>城乡居民基本医疗保险</p>\n<table>\n");
    for (label, value) in lines(data) {
        out.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(&label), escape(&value)));
    }
    out.push_str("</table>\n<h2>payments</h2>\n<ul>\n");
    for entry in &data.payments {
        let (what, place) = entry_lines(entry);
        out.push_str(&format!("<li>{}<br><small>{}</small></li>\n", escape(&what), escape(&place)));
    }
    out.push_str(&format!(
        "</ul>\n<p>issued {} from ledger {} at log position {}, head SM3 {}</p>\n",
        escape(&data.issued_at),
        escape(&data.ledger_id),
        data.head_position,
        escape(&data.head_hash)
    ));
    // `<` never appears raw inside the script element, so `</script>` in a
    // name cannot end it.
    out.push_str(&format!("{SCRIPT_OPEN}\n{}\n{SCRIPT_CLOSE}\n", data_json(data).replace('<', "\\u003c")));
    out.push_str("</body>\n</html>\n");
    out
}

/// The data block of a certificate file, and the format it was in: a
/// file that is JSON is the data block alone.
fn extract(text: &str) -> Option<(Format, &str)> {
    if text.trim_start().starts_with('{') {
        return Some((Format::Json, text));
    }
    if let Some(start) = text.find(SCRIPT_OPEN) {
        let rest = &text[start + SCRIPT_OPEN.len()..];
        let end = rest.find(SCRIPT_CLOSE)?;
        return Some((Format::Html, &rest[..end]));
    }
    let start = text.find(BEGIN)?;
    let rest = &text[start + BEGIN.len()..];
    let end = rest.find(END)?;
    Some((Format::Text, &rest[..end]))
}

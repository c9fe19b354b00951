//! What an insurance office asks: a person's coverage, their history, the
//! unpaid list, and the hardship assessment (核定) it records.

use crate::commands::open;
use crate::exit::{BadInput, Findings};
use anyhow::{Context, Result};
use ledger::event::HardshipAssessed;
use ledger::{Date, Envelope, Event, Identity, LogReader, Money, OpenMode, RegionCode, UtcTime};
use operations::answers::UnpaidListed;
use projections::coverage::{source_words, Coverage, PersonYear};
use projections::family::Family;
use projections::Projection;
use std::collections::HashSet;
use std::path::Path;

/// The coverage projection, caught up with the log (`checkpoints.rs`).
pub fn coverage(data: &Path, log: &dyn LogReader) -> Result<Coverage> {
    operations::checkpoints::caught_up(data, log, u64::MAX).map_err(crate::exit::classified)
}

pub fn parse_identity(text: &str) -> Result<Identity> {
    text.parse().map_err(|e| BadInput(format!("ID number: {e}")).into())
}

/// `yibao coverage ID [--year Y] [--on DATE] [--json]`.
pub fn show(
    data: &Path,
    id: &str,
    year: Option<u16>,
    on: Option<Date>,
    json_out: bool,
    as_of: Option<UtcTime>,
) -> Result<()> {
    let identity = parse_identity(id)?;
    let log = open(data, OpenMode::Existing)?;
    let coverage = match as_of {
        // What was known then: a fresh rebuild of the facts recorded by then.
        Some(moment) => crate::replay_cmd::rebuild(&log, Some(moment))?.0.coverage,
        None => coverage(data, &log)?,
    };
    let Some(person) = coverage.person(&identity) else {
        return Err(Findings(format!("no person with ID {} in the ledger", identity.masked())).into());
    };
    let years = match year {
        Some(year) => vec![year],
        None => coverage.years_of(&identity),
    };
    if json_out {
        // The service's answer, the same bytes laid out for reading: one
        // form of the card, IDs masked.
        let body = crate::serve::lookup::answer(&coverage, &identity, year, on)
            .context("writing the coverage answer as JSON")?;
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let views: Vec<PersonYear> =
        years.iter().filter_map(|&year| coverage.person_year_as_of(&identity, year, on)).collect();
    let head = (coverage.position(), hex::encode(coverage.head_hash()));
    let name = person.name.as_deref().unwrap_or("(not registered)");
    let region = person.region.map_or("-".to_string(), |r| r.to_string());
    // No birth date beside the masked ID: the mask hides it.
    outln!("{} {name}, region {region}", person.current.masked());
    for former in &person.former {
        outln!("  formerly {}", former.masked());
    }
    if views.is_empty() {
        outln!("no coverage year recorded{}", year.map(|y| format!(" for {y}")).unwrap_or_default());
    }
    for view in &views {
        print_year(view, on);
    }
    outln!("answer reflects log position {}, head {}", head.0, head.1);
    Ok(())
}

fn money(amount: Option<Money>) -> String {
    amount.map_or("unknown".into(), |m| m.to_string())
}

fn print_year(view: &PersonYear, on: Option<Date>) {
    let class = view.payment_class.map(|c| format!(" ({})", c.replace('_', " "))).unwrap_or_default();
    outln!("\ncoverage year {}: {}{class}", view.coverage_year, view.state.words());
    outln!(
        "  due {}   received {}   outstanding {}",
        money(view.amount_due),
        view.net_received,
        money(view.outstanding)
    );
    let paid = &view.paid;
    let mut sources: Vec<String> = paid
        .by_source()
        .iter()
        .filter(|(_, amount)| *amount != Money::ZERO)
        .map(|(source, amount)| format!("{} {amount}", source_words(source)))
        .collect();
    sources.extend(paid.subsidy.iter().map(|(funder, amount)| format!("subsidy from {funder} {amount}")));
    if !sources.is_empty() {
        outln!("  paid by: {}", sources.join(", "));
    }
    if view.refunds.total != Money::ZERO {
        outln!("  refunded {}", view.refunds.total);
    }
    if view.in_flight != Money::ZERO {
        outln!("  in flight (proxy application) {}", view.in_flight);
    }
    if let Some(awaiting) = &view.awaiting {
        outln!("  awaiting policy: {awaiting} is not published");
    }
    match (view.covered_from, view.covered_until) {
        (Some(from), Some(until)) => outln!("  covered from {from} until {until}"),
        _ => outln!("  not covered"),
    }
    if let Some(day) = on {
        let covered = if view.is_covered_on(day) { "covered" } else { "NOT covered" };
        outln!("  on {day}: {covered}");
    }
    for note in &view.notes {
        outln!("  - {note}");
    }
}

/// `yibao unpaid --region CODE --year Y`: the reminder list, IDs masked.
pub fn unpaid(data: &Path, region: RegionCode, year: u16, json_out: bool) -> Result<()> {
    let log = open(data, OpenMode::Existing)?;
    let coverage = coverage(data, &log)?;
    let entries = coverage.unpaid(region, year);
    if json_out {
        let listed: Vec<UnpaidListed> = entries.iter().map(UnpaidListed::from).collect();
        outln!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    outln!("{:<20} {:<7} {:<18} {:>10} {:>12}  name", "ID", "region", "state", "due", "outstanding");
    for entry in &entries {
        outln!(
            "{:<20} {:<7} {:<18} {:>10} {:>12}  {}",
            entry.masked,
            entry.region,
            entry.state.words(),
            money(entry.amount_due),
            money(entry.outstanding),
            entry.name
        );
    }
    outln!("{} person(s) registered for {year} in {region} and not paid in full", entries.len());
    Ok(())
}

/// `yibao history ID`: every fact about the person, under every identity
/// they had, in log order.
pub fn history(data: &Path, id: &str) -> Result<()> {
    let identity = parse_identity(id)?;
    let log = open(data, OpenMode::Existing)?;
    let coverage = coverage(data, &log)?;
    // An account holder who is not insured here has bindings and proxy
    // applications, and no coverage record.
    let (current, identities): (Identity, HashSet<Identity>) = match coverage.person(&identity) {
        Some(person) => (person.current.clone(), std::iter::once(person.current).chain(person.former).collect()),
        None => (identity.clone(), HashSet::from([identity.clone()])),
    };
    let mut applications: HashSet<String> = HashSet::new();
    let mut n_facts = 0;
    log.scan(1, u64::MAX, |envelope| {
        if concerns(&envelope, &identities, &mut applications) {
            n_facts += 1;
            outln!(
                "{:>8}  {}  {:<24} {}",
                envelope.head.position,
                envelope.head.recorded_at,
                envelope.event.type_name(),
                operations::facts::summary(&envelope.event)
            );
        }
        Ok(())
    })?;
    if n_facts == 0 && coverage.person(&identity).is_none() {
        return Err(Findings(format!("no person with ID {} in the ledger", identity.masked())).into());
    }
    outln!("{n_facts} fact(s) about {}", current.masked());
    Ok(())
}

/// The facts about one of `identities` up to `upto`, in log order, read
/// through the ledger's stream index instead of a scan: the person streams
/// of every identity, the binding streams of every holder they are bound
/// to or are, and the streams of the proxy applications they are part of
/// (from `family`, which reflects the log at `upto`).
pub fn history_by_streams(
    log: &dyn LogReader,
    family: &Family,
    identities: &HashSet<Identity>,
    upto: u64,
) -> Result<Vec<Envelope>, ledger::LedgerError> {
    let mut streams: Vec<String> = Vec::new();
    for identity in identities {
        streams.push(ledger::event::person_stream(identity));
        streams.push(ledger::event::family_stream(identity));
        streams.extend(family.bindings_as_member(identity).map(|b| ledger::event::family_stream(&b.holder)));
        streams.extend(family.applications_of(identity).map(|a| ledger::event::proxy_stream(&a.application_id)));
    }
    let mut applications = HashSet::new();
    let mut facts = read_streams(log, streams, |e| e.head.position <= upto)?;
    // The same filter as the scan: a holder's stream also holds other members' bindings.
    facts.retain(|envelope| concerns(envelope, identities, &mut applications));
    Ok(facts)
}

/// The records of `streams` that `keep` accepts, in log order, each once.
fn read_streams(
    log: &dyn LogReader,
    mut streams: Vec<String>,
    keep: impl Fn(&Envelope) -> bool,
) -> Result<Vec<Envelope>, ledger::LedgerError> {
    streams.sort();
    streams.dedup();
    let mut facts: Vec<Envelope> = Vec::new();
    for stream in &streams {
        facts.extend(log.read_stream_blocking(stream)?.into_iter().filter(|e| keep(e)));
    }
    facts.sort_by_key(|e| e.head.position);
    facts.dedup_by_key(|e| e.head.position);
    Ok(facts)
}

/// What the coverage projection knew of one person at `moment`
/// (transaction time), folded from the facts recorded by then on the
/// person's streams (every identity `live` knows them by, their proxy
/// applications) and on every policy stream; the same answers for this
/// person as a rebuild of the whole log as of `moment`
/// (`replay::audit::rebuild_as_of`), at the cost of the person's facts.
/// Its position is the last of those facts, not the log's head then.
pub fn person_as_of(
    log: &dyn LogReader,
    live: &Coverage,
    family: &Family,
    person: &Identity,
    moment: ledger::UtcTime,
) -> Result<Coverage, ledger::LedgerError> {
    let identities: Vec<Identity> = match live.person(person) {
        Some(summary) => std::iter::once(summary.current).chain(summary.former).collect(),
        None => vec![person.clone()],
    };
    let mut streams: Vec<String> = Vec::new();
    for identity in &identities {
        streams.push(ledger::event::person_stream(identity));
        streams.extend(family.applications_of(identity).map(|a| ledger::event::proxy_stream(&a.application_id)));
    }
    streams.extend(live.policy_years().into_iter().map(|(region, year)| ledger::event::policy_stream(region, year)));
    let mut coverage = Coverage::new();
    for envelope in read_streams(log, streams, |e| e.head.recorded_at <= moment && e.head.position <= live.position())?
    {
        coverage.apply(&envelope);
    }
    Ok(coverage)
}

/// Whether a fact is about one of `identities`; proxy applications for them
/// are remembered so that their later steps are shown too.
pub(crate) fn concerns(
    envelope: &Envelope,
    identities: &HashSet<Identity>,
    applications: &mut HashSet<String>,
) -> bool {
    let is = |identity: &Identity| identities.contains(identity);
    match &envelope.event {
        Event::PersonRegisteredV1(e) => is(&e.person),
        Event::IdentityConvertedV1(e) => is(&e.from) || is(&e.to),
        Event::PreRegistrationVoidedV1(e) => is(&e.person),
        Event::HardshipCertifiedV1(e) => is(&e.person),
        Event::HardshipAssessedV1(e) => is(&e.person),
        Event::PaymentReceivedV1(e) => is(&e.person),
        Event::SubsidyGrantedV1(e) => is(&e.person),
        Event::RefundIssuedV1(e) => is(&e.person),
        Event::FamilyBindingCreatedV1(e) => is(&e.holder) || is(&e.member),
        Event::FamilyBindingRevokedV1(e) => is(&e.holder) || is(&e.member),
        Event::ProxySubmittedV1(e) => {
            let mine = is(&e.holder) || is(&e.member);
            if mine {
                applications.insert(e.application_id.clone());
            }
            mine
        }
        Event::ProxyProcessingV1(e) => applications.contains(&e.application_id),
        Event::ProxyCreditedV1(e) => applications.contains(&e.application_id),
        Event::ProxyFailedV1(e) => applications.contains(&e.application_id),
        Event::ProxyReturnedV1(e) => applications.contains(&e.application_id),
        Event::PolicyPublishedV1(_) | Event::PolicyAmendedV1(_) | Event::ReconciliationRecordedV1(_) => false,
    }
}

const ASSESS_FLAGS: crate::single::FlagNames =
    &[("person", "--id"), ("coverage_year", "--year"), ("group", "--group"), ("assessed_on", "--on")];

/// `yibao assess ID --year Y --group G...`: the insurance office's 核定 of
/// what a person in hardship groups owes, from the policy in the log (the
/// highest group applies, never the sum). Refused with the rule's reason
/// where the rules close the special path.
pub fn assess(data: &Path, id: &str, year: u16, groups: &[String], on: Option<Date>) -> Result<()> {
    let identity = parse_identity(id)?;
    let assessed_on = on.unwrap_or_else(Date::today);
    let log = open(data, OpenMode::Existing)?;
    let coverage = coverage(data, &log)?;
    let person = coverage
        .person(&identity)
        .filter(|p| p.registered)
        .ok_or_else(|| BadInput(format!("{} is not registered; register the person first", identity.masked())))?;
    let region = person.region.ok_or_else(|| BadInput("the registration names no region".into()))?;
    let policy = coverage.policy(region, year).ok_or_else(|| {
        BadInput(format!("no policy for region {region} and {year} in the log; `yibao policy load` it"))
    })?;
    let subsidy = policy
        .hardship_subsidy(groups)
        .map_err(|e| BadInput(format!("--group: {e}")))?
        .ok_or_else(|| BadInput("give at least one --group".into()))?;
    let assessment = HardshipAssessed {
        person: person.current.clone(),
        coverage_year: year,
        group: subsidy.group.clone(),
        subsidy: subsidy.amount,
        amount_due: subsidy.person_pays,
        assessed_on,
    };
    // The decision an import line or a request gets (`family::decide`); a
    // repeat is left to the log, which appends nothing.
    projections::family::assessment(&coverage, &assessment).map_err(|refusal| BadInput(refusal.reason))?;
    let event = Event::HardshipAssessedV1(assessment);
    let position = crate::single::append_event(&log, event, "cli:assess", ASSESS_FLAGS)?;
    outln!(
        "group {}: subsidy {}, the person pays {}; recorded at position {position}",
        subsidy.group,
        subsidy.amount,
        subsidy.person_pays
    );
    Ok(())
}

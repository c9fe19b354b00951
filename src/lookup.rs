//! What an insurance office asks, on the command line: a person's coverage,
//! their history, the unpaid list, and the hardship assessment (核定) it
//! records. Parses the flags, calls the operation
//! (`operations::coverage`), and prints its answer as text or JSON.

use crate::exit::{classified, BadInput};
use anyhow::Result;
use ledger::{Date, Identity, LogReader, Money, OpenMode, RegionCode, UtcTime};
use operations::coverage::{AssessError, AssessmentQuery, CoverageAnswer, CoverageQuery, YearEntry};
use operations::Ledger;
use operations::Location;
use operations::StorageError;
use projections::coverage::{source_words, Coverage};

/// The coverage projection, caught up with the log (`checkpoints.rs`).
pub fn coverage(location: &Location, log: &dyn LogReader) -> Result<Coverage> {
    operations::checkpoints::caught_up(&location.data, log, u64::MAX).map_err(classified)
}

pub fn parse_identity(text: &str) -> Result<Identity> {
    text.parse().map_err(|e| BadInput(format!("ID number: {e}")).into())
}

/// For the answers that only read: no writer, no indexes built.
fn open(location: &Location) -> Result<Ledger> {
    Ledger::open(location, OpenMode::Read).map_err(classified)
}

/// `yibao coverage ID [--year Y] [--on DATE] [--as-of MOMENT] [--json]`.
pub fn show(
    location: &Location,
    id: &str,
    year: Option<u16>,
    on: Option<Date>,
    json_out: bool,
    as_of: Option<UtcTime>,
) -> Result<()> {
    let query = CoverageQuery { person: parse_identity(id)?, year, on };
    let answer = open(location)?.coverage_of(&query, as_of).map_err(classified)?;
    if json_out {
        // The service's answer laid out for reading, keys in alphabetical
        // order as the service writes them.
        outln!("{}", serde_json::to_string_pretty(&serde_json::to_value(&answer)?)?);
        return Ok(());
    }
    print_card(&answer, year);
    Ok(())
}

fn print_card(answer: &CoverageAnswer, year: Option<u16>) {
    let person = &answer.person;
    let name = person.name.as_deref().unwrap_or("(not registered)");
    let region = person.region.map_or("-".to_string(), |r| r.to_string());
    // No birth date beside the masked ID: the mask hides it.
    outln!("{} {name}, region {region}", person.id);
    for former in &person.former {
        outln!("  formerly {former}");
    }
    if answer.years.is_empty() {
        outln!("no coverage year recorded{}", year.map(|y| format!(" for {y}")).unwrap_or_default());
    }
    for entry in &answer.years {
        print_year(entry);
    }
    outln!("answer reflects log position {}, head {}", answer.log_position, answer.head_hash);
}

fn money(amount: Option<Money>) -> String {
    amount.map_or("unknown".into(), |m| m.to_string())
}

fn print_year(entry: &YearEntry) {
    let view = &entry.year;
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
    if let Some((day, covered)) = entry.covered_on {
        let covered = if covered { "covered" } else { "NOT covered" };
        outln!("  on {day}: {covered}");
    }
    for note in &view.notes {
        outln!("  - {note}");
    }
}

/// `yibao unpaid --region CODE --year Y`: the reminder list, IDs masked.
pub fn unpaid(location: &Location, region: RegionCode, year: u16, json_out: bool) -> Result<()> {
    let listed = open(location)?.unpaid(region, year).map_err(classified)?;
    let entries = &listed.entries;
    if json_out {
        // The entries of the service's page: the whole list.
        outln!("{}", serde_json::to_string_pretty(entries)?);
        return Ok(());
    }
    outln!("{:<20} {:<7} {:<18} {:>10} {:>12}  name", "ID", "region", "state", "due", "outstanding");
    for entry in entries {
        outln!(
            "{:<20} {:<7} {:<18} {:>10} {:>12}  {}",
            entry.person,
            entry.region,
            entry.state.words(),
            money(entry.amount_due),
            money(entry.outstanding),
            entry.name
        );
    }
    outln!("{} person(s) registered for {year} in {region} and not paid in full", listed.n_total);
    Ok(())
}

/// `yibao history ID`: every fact about the person, under every identity
/// they had, in log order (through the stream index; `--scan`: a scan of
/// the whole log).
pub fn history(location: &Location, id: &str, scan: bool) -> Result<()> {
    let person = parse_identity(id)?;
    let ledger = open(location)?;
    let answer = if scan { ledger.history_scanned(&person) } else { ledger.history(&person) };
    let answer = answer.map_err(classified)?;
    for fact in &answer.facts {
        outln!("{:>8}  {}  {:<24} {}", fact.position, fact.recorded_at, fact.type_name, fact.summary);
    }
    outln!("{} fact(s) about {}", answer.facts.len(), answer.known_as);
    Ok(())
}

const ASSESS_FLAGS: crate::single::FlagNames =
    &[("person", "--id"), ("coverage_year", "--year"), ("group", "--group"), ("assessed_on", "--on")];

/// `yibao assess ID --year Y --group G...`: the insurance office's 核定 of
/// what a person in hardship groups owes, from the policy in the log (the
/// highest group applies, never the sum). Refused with the rule's reason
/// where the rules close the special path.
pub fn assess(location: &Location, id: &str, year: u16, groups: &[String], on: Option<Date>) -> Result<()> {
    let query = AssessmentQuery {
        person: parse_identity(id)?,
        coverage_year: year,
        groups: groups.to_vec(),
        assessed_on: on.unwrap_or_else(Date::today),
    };
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(classified)?;
    let _alone = location.decide_alone().map_err(|e| classified(StorageError::from(e)))?;
    let assessed = ledger.assess(&query, "cli:assess").map_err(assess_error)?;
    outln!(
        "group {}: subsidy {}, the person pays {}; recorded at position {}",
        assessed.group,
        assessed.subsidy,
        assessed.person_pays,
        assessed.position
    );
    Ok(())
}

/// Errors about a value a flag gave name the flag, as before the operation
/// existed; the rest keep their kind.
fn assess_error(error: AssessError) -> anyhow::Error {
    match error {
        AssessError::Group(reason) => BadInput(format!("--group: {reason}")).into(),
        AssessError::NoGroup => BadInput("give at least one --group".into()).into(),
        AssessError::Record(operations::RecordError::Field(field)) => {
            crate::single::field_error(ASSESS_FLAGS, field.field, field.reason)
        }
        other => classified(other),
    }
}

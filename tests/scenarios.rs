//! Coverage scenarios, data-driven: each `fixtures/scenarios/*.json` names a
//! rule (quoting domain.md or a seed), the policies to publish, facts in the
//! JSON Lines fact format (step by step, with optional policy amendments),
//! and what the coverage projection must show after each step. Adding a case
//! is adding a file.
//!
//! For every scenario the runner also checks, on the log it built: money
//! conservation in every expected view, two rebuilds from position 1 giving
//! equal digests, equal to the incremental fold's, and a checkpoint saved
//! after the first step, loaded and caught up giving the same digest.
//!
//! Family-account and refund scenarios add, per step: `decide` (what the
//! rules say of one fact: `append`, `repeat` or `refused`, with the field
//! and words of the reason), `batch` (a file of facts judged line by line
//! against the log plus its own earlier lines), `bindings`,
//! `family_account` (the personal account by year) and `stuck`. A scenario
//! with `"rules": true` also runs every step's facts through the import's
//! decision before appending them: its facts must all be allowed.

use ledger::event::{Event, HardshipAssessed, PolicyAmended, PolicyPublished};
use ledger::{Date, Identity, Money, NewEvent, OpenMode, RegionCode, SledLog};
use projections::coverage::Coverage;
use projections::family::{self, Family, Verdict};
use projections::policy::Policy;
use projections::Projection;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ACTOR: &str = "scenario";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    /// The sentence of domain.md or a seed the scenario checks.
    rule: String,
    /// File names in fixtures/policies, published before the first step.
    policies: Vec<String>,
    /// Every step's facts must pass the rules (`family::check_batch`).
    #[serde(default)]
    rules: bool,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    facts: Vec<Value>,
    #[serde(default)]
    amend: Vec<Amendment>,
    /// How many of this step's events (the first step's published policies
    /// included) the log must append, idempotent repeats not counted.
    appended: Option<usize>,
    #[serde(default)]
    expect: Vec<Value>,
    #[serde(default)]
    unpaid: Vec<UnpaidCheck>,
    #[serde(default)]
    check_assessment: Vec<AssessmentCheck>,
    #[serde(default)]
    person: Vec<Value>,
    #[serde(default)]
    ledger_notes_contain: Vec<String>,
    #[serde(default)]
    decide: Vec<DecideCheck>,
    #[serde(default)]
    batch: Vec<BatchCheck>,
    #[serde(default)]
    bindings: Vec<Value>,
    #[serde(default)]
    family_account: Vec<Value>,
    #[serde(default)]
    stuck: Vec<StuckCheck>,
}

/// What the rules say of one fact, against the log as it stands.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideCheck {
    fact: Value,
    /// `append`, `repeat` or `refused` (a fact that does not parse, e.g. a
    /// relation outside the enum, counts as refused).
    outcome: String,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    reason_contains: Vec<String>,
}

/// A file of facts judged as an import judges it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchCheck {
    facts: Vec<Value>,
    /// 1-based lines refused.
    refused_lines: Vec<usize>,
    #[serde(default)]
    reason_contains: Vec<String>,
}

/// `family::stuck` at a moment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StuckCheck {
    now: String,
    #[serde(default)]
    older_than_hours: Option<i64>,
    applications: Vec<String>,
    #[serde(default)]
    without_limit: Option<usize>,
}

/// A PolicyAmended: a fixture policy with text replaced (each `from` must
/// occur exactly once).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Amendment {
    policy: String,
    reason: String,
    replace: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpaidCheck {
    region: RegionCode,
    year: u16,
    persons: Vec<Identity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssessmentCheck {
    fact: Value,
    refused: bool,
    #[serde(default)]
    reason_contains: Option<String>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn scenarios() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("scenarios"))
        .expect("fixtures/scenarios")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for path in &paths {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let problems = check(path);
        if !problems.is_empty() {
            failures.push(format!("{file}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} scenarios failed:\n{}", failures.len(), paths.len(), failures.join("\n"));
    assert!(paths.len() >= 30, "expected at least 30 scenario files, found {}", paths.len());
}

/// Runs one scenario; returns what did not match.
fn check(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let scenario: Scenario = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!scenario.rule.trim().is_empty(), "{}: quote the rule", scenario.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("open log");
    let checkpoint = dir.path().join("coverage.checkpoint");
    let mut coverage = Coverage::default();
    let mut family = Family::default();
    let mut problems = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let policies = if index == 0 { &scenario.policies[..] } else { &[] };
        let events = step_events(policies, step, &scenario.name);
        let n_events = events.len();
        if scenario.rules {
            for refusal in family::check_batch(&family, &coverage, &events) {
                problems.push(format!(
                    "step {}: event {} refused by the rules: {}",
                    index + 1,
                    refusal.index + 1,
                    refusal.reason
                ));
            }
        }
        let outcome = log.append_blocking(events).unwrap_or_else(|e| panic!("{}: append: {e:#}", scenario.name));
        if let Some(expected) = step.appended {
            if outcome.n_appended != expected {
                problems.push(format!(
                    "step {}: appended {} of {n_events}, expected {expected}",
                    index + 1,
                    outcome.n_appended
                ));
            }
        }
        coverage.catch_up(&log).unwrap_or_else(|e| panic!("{}: catch up: {e}", scenario.name));
        family.catch_up(&log).unwrap_or_else(|e| panic!("{}: family catch up: {e}", scenario.name));
        if index == 0 {
            coverage.save(&checkpoint).expect("save checkpoint");
        }
        let at = |problem: String| format!("step {}: {problem}", index + 1);
        problems.extend(check_step(&coverage, step).into_iter().map(at));
        problems.extend(check_family_step(&family, &coverage, step).into_iter().map(at));
    }
    problems.extend(check_replays(&log, &coverage, &checkpoint));
    let mut rebuilt = Family::default();
    rebuilt.catch_up(&log).expect("family rebuild");
    if rebuilt != family {
        problems.push("the family projection rebuilt from position 1 differs from the incremental fold".into());
    }
    problems
}

/// The events of a step: policies (first step), facts, then amendments.
fn step_events(policies: &[String], step: &Step, name: &str) -> Vec<NewEvent> {
    let mut events: Vec<NewEvent> = policies.iter().map(|file| NewEvent::fact(published(file), ACTOR)).collect();
    for (index, fact) in step.facts.iter().enumerate() {
        let line = fact.to_string();
        let event = yibao::facts::parse_line(&line, index + 1, ACTOR).unwrap_or_else(|e| panic!("{name}: fact {e}"));
        events.push(event);
    }
    events.extend(step.amend.iter().map(|amendment| NewEvent::fact(amended(amendment), ACTOR)));
    events
}

fn policy_text(file: &str) -> (String, Policy) {
    let path = fixtures().join("policies").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let policy = Policy::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, policy)
}

fn published(file: &str) -> Event {
    let (document, policy) = policy_text(file);
    let (region, coverage_year) = policy.key();
    Event::PolicyPublishedV1(PolicyPublished { region, coverage_year, source: file.to_string(), document })
}

fn amended(amendment: &Amendment) -> Event {
    let (mut document, policy) = policy_text(&amendment.policy);
    for (from, to) in &amendment.replace {
        assert_eq!(
            document.matches(from.as_str()).count(),
            1,
            "amendment of {}: `{from}` must occur once",
            amendment.policy
        );
        document = document.replacen(from.as_str(), to, 1);
    }
    let (region, coverage_year) = policy.key();
    Event::PolicyAmendedV1(PolicyAmended {
        region,
        coverage_year,
        source: format!("{} (amended in a scenario)", amendment.policy),
        document,
        reason: amendment.reason.clone(),
    })
}

fn check_step(coverage: &Coverage, step: &Step) -> Vec<String> {
    let mut problems = Vec::new();
    for expectation in &step.expect {
        problems.extend(check_person_year(coverage, expectation));
    }
    for check in &step.unpaid {
        let listed = coverage.unpaid(check.region, check.year).expect("every figure is money");
        let found: Vec<Identity> = listed.into_iter().map(|e| e.person).collect();
        if found != check.persons {
            let list = |ids: &[Identity]| ids.iter().map(Identity::to_string).collect::<Vec<_>>().join(", ");
            problems.push(format!(
                "unpaid({}, {}): [{}], expected [{}]",
                check.region,
                check.year,
                list(&found),
                list(&check.persons)
            ));
        }
    }
    for check in &step.check_assessment {
        problems.extend(check_assessment(coverage, check));
    }
    for expectation in &step.person {
        problems.extend(check_person(coverage, expectation));
    }
    for wanted in &step.ledger_notes_contain {
        if !coverage.notes().iter().any(|note| note.contains(wanted.as_str())) {
            problems.push(format!("no ledger note contains `{wanted}`: {:?}", coverage.notes()));
        }
    }
    problems
}

/// `{"id", "year", "as_of"?, "covered_on"?, "notes_contain"?, "notes_lack"?,
/// ...fields of PersonYear to compare}`.
fn check_person_year(coverage: &Coverage, expectation: &Value) -> Vec<String> {
    let mut fields = expectation.as_object().cloned().expect("an expectation is an object");
    let id: Identity = take(&mut fields, "id").expect("expectation needs `id`");
    let year: u16 = take(&mut fields, "year").expect("expectation needs `year`");
    let as_of: Option<Date> = take(&mut fields, "as_of");
    let covered_on: BTreeMap<Date, bool> = take(&mut fields, "covered_on").unwrap_or_default();
    let notes: Vec<String> = take(&mut fields, "notes_contain").unwrap_or_default();
    let not_noted: Vec<String> = take(&mut fields, "notes_lack").unwrap_or_default();
    let context = format!("{id} {year}{}", as_of.map_or(String::new(), |d| format!(" as of {d}")));
    let view = match coverage.person_year_as_of(&id, year, as_of) {
        Ok(Some(view)) => view,
        Ok(None) => return vec![format!("{context}: person unknown")],
        Err(error) => return vec![format!("{context}: {error}")],
    };
    let actual = serde_json::to_value(&view).expect("views serialize");
    let mut problems = Vec::new();
    compare(&Value::Object(fields), &actual, "", &mut problems);
    for (date, expected) in covered_on {
        if view.is_covered_on(date) != expected
            || (year_of(date) == Some(year) && coverage.is_covered_on(&id, date) != Ok(expected))
        {
            problems.push(format!("covered on {date}: expected {expected}"));
        }
    }
    for wanted in notes {
        if !view.notes.iter().any(|note| note.contains(wanted.as_str())) {
            problems.push(format!("no note contains `{wanted}`: {:?}", view.notes));
        }
    }
    for unwanted in not_noted {
        if let Some(note) = view.notes.iter().find(|note| note.contains(unwanted.as_str())) {
            problems.push(format!("a note contains `{unwanted}`: {note}"));
        }
    }
    problems.extend(conservation(&view));
    if !problems.is_empty() {
        problems.push(format!("the view was {actual}"));
    }
    problems.into_iter().map(|p| format!("{context}: {p}")).collect()
}

fn year_of(date: Date) -> Option<u16> {
    u16::try_from(date.year()).ok()
}

/// Sources − refunds = net received; refunds never exceed payments.
fn conservation(view: &projections::coverage::PersonYear) -> Vec<String> {
    let paid = &view.paid;
    let sources = [paid.by_self, paid.by_other, paid.by_collector, paid.by_proxy, paid.subsidy_total];
    let sources_fen: i64 = sources.iter().map(|m| m.fen()).sum();
    let subsidy_fen: i64 = paid.subsidy.values().map(|m| m.fen()).sum();
    let refunds = &view.refunds;
    let refunds_fen = refunds.to_channel.fen() + refunds.to_personal_account.fen() + refunds.to_funders.fen();
    let mut problems = Vec::new();
    if sources_fen != paid.total.fen() || subsidy_fen != paid.subsidy_total.fen() || refunds_fen != refunds.total.fen()
    {
        problems.push("sums by source do not add up".to_string());
    }
    if paid.total.fen() - refunds.total.fen() != view.net_received.fen() || refunds.total > paid.total {
        problems.push(format!("money not conserved: {} − {} ≠ {}", paid.total, refunds.total, view.net_received));
    }
    problems
}

fn check_assessment(coverage: &Coverage, check: &AssessmentCheck) -> Vec<String> {
    let event = yibao::facts::parse_line(&check.fact.to_string(), 1, ACTOR).expect("assessment fact").event;
    let Event::HardshipAssessedV1(assessment) = event else {
        panic!("check_assessment needs a hardship_assessed fact")
    };
    let assessment: HardshipAssessed = assessment;
    let result = coverage.check_assessment(&assessment);
    let mut problems = Vec::new();
    if result.is_err() != check.refused {
        problems.push(format!(
            "check_assessment for {}: {result:?}, expected refused = {}",
            assessment.person, check.refused
        ));
    }
    if let (Err(refusal), Some(wanted)) = (&result, &check.reason_contains) {
        if !refusal.reason.contains(wanted.as_str()) {
            problems.push(format!("refusal `{}` does not contain `{wanted}`", refusal.reason));
        }
    }
    problems
}

/// `{"id", ...fields of PersonSummary}`, plus `"years"` for `years_of`.
fn check_person(coverage: &Coverage, expectation: &Value) -> Vec<String> {
    let mut fields = expectation.as_object().cloned().expect("a person check is an object");
    let id: Identity = take(&mut fields, "id").expect("person check needs `id`");
    let years: Option<Vec<u16>> = take(&mut fields, "years");
    let Some(summary) = coverage.person(&id) else { return vec![format!("person {id} unknown")] };
    let mut problems = Vec::new();
    compare(&Value::Object(fields), &serde_json::to_value(&summary).expect("summaries serialize"), "", &mut problems);
    if let Some(years) = years {
        if coverage.years_of(&id) != years {
            problems.push(format!("years_of: {:?}, expected {years:?}", coverage.years_of(&id)));
        }
    }
    problems.into_iter().map(|p| format!("person {id}: {p}")).collect()
}

fn take<T: serde::de::DeserializeOwned>(fields: &mut Map<String, Value>, key: &str) -> Option<T> {
    let value = fields.remove(key)?;
    Some(serde_json::from_value(value).unwrap_or_else(|e| panic!("field `{key}`: {e}")))
}

/// Every key of `expected` must be in `actual` with an equal value (objects
/// compared key by key, amounts as money: "280" equals "280.00").
fn compare(expected: &Value, actual: &Value, path: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(wanted), Value::Object(found)) => {
            for (key, value) in wanted {
                let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match found.get(key) {
                    Some(actual) => compare(value, actual, &here, problems),
                    None => problems.push(format!("`{here}`: no such field")),
                }
            }
        }
        (Value::String(wanted), Value::String(found)) if same_money(wanted, found) => {}
        _ if expected == actual => {}
        _ => problems.push(format!("`{path}`: {actual}, expected {expected}")),
    }
}

fn same_money(a: &str, b: &str) -> bool {
    matches!((a.parse::<Money>(), b.parse::<Money>()), (Ok(x), Ok(y)) if x == y)
}

/// Two rebuilds and a checkpoint caught up all equal the incremental fold.
fn check_replays(log: &SledLog, coverage: &Coverage, checkpoint: &Path) -> Vec<String> {
    let rebuild = || {
        let mut fresh = Coverage::default();
        fresh.catch_up(log).expect("rebuild");
        fresh
    };
    let (first, second) = (rebuild(), rebuild());
    let mut problems = Vec::new();
    if first.digest() != second.digest() || first.digest() != coverage.digest() {
        problems.push("rebuild digests differ from each other or from the incremental fold".to_string());
    }
    let mut loaded = Coverage::load(checkpoint).expect("load checkpoint");
    loaded.catch_up(log).expect("catch up from checkpoint");
    if loaded.digest() != coverage.digest() || loaded.position() != coverage.position() {
        problems.push("checkpoint + catch-up differs from the incremental fold".to_string());
    }
    problems
}

fn check_family_step(family: &Family, coverage: &Coverage, step: &Step) -> Vec<String> {
    let mut problems = Vec::new();
    for check in &step.decide {
        problems.extend(check_decide(family, coverage, check));
    }
    for check in &step.batch {
        problems.extend(check_batch(family, coverage, check));
    }
    for expectation in &step.bindings {
        problems.extend(check_binding(family, expectation));
    }
    for expectation in &step.family_account {
        problems.extend(check_account(family, expectation));
    }
    for check in &step.stuck {
        problems.extend(check_stuck(family, coverage, check));
    }
    problems
}

fn check_decide(family: &Family, coverage: &Coverage, check: &DecideCheck) -> Vec<String> {
    let line = check.fact.to_string();
    let context = format!("decide {}", check.fact.get("type").and_then(Value::as_str).unwrap_or("?"));
    let (outcome, field, reason) = match yibao::facts::parse_line(&line, 1, ACTOR) {
        Err(error) => ("refused", error.field, error.message),
        Ok(new) => match family::decide(family, coverage, &new.event) {
            Ok(Verdict::Append) => ("append", None, String::new()),
            Ok(Verdict::Repeat { what, .. }) => ("repeat", None, what),
            Err(refusal) => ("refused", refusal.field.map(str::to_string), refusal.reason),
        },
    };
    let mut problems = Vec::new();
    if outcome != check.outcome {
        problems.push(format!("{context}: {outcome} ({reason}), expected {} for {line}", check.outcome));
    }
    if check.field.is_some() && field != check.field {
        problems.push(format!("{context}: field {field:?}, expected {:?} ({reason})", check.field));
    }
    for wanted in &check.reason_contains {
        if !reason.contains(wanted.as_str()) {
            problems.push(format!("{context}: `{reason}` does not contain `{wanted}`"));
        }
    }
    problems
}

fn check_batch(family: &Family, coverage: &Coverage, check: &BatchCheck) -> Vec<String> {
    let events: Vec<NewEvent> = check
        .facts
        .iter()
        .enumerate()
        .map(|(index, fact)| {
            yibao::facts::parse_line(&fact.to_string(), index + 1, ACTOR).unwrap_or_else(|e| panic!("batch fact {e}"))
        })
        .collect();
    let refusals = family::check_batch(family, coverage, &events);
    let lines: Vec<usize> = refusals.iter().map(|r| r.index + 1).collect();
    let mut problems = Vec::new();
    if lines != check.refused_lines {
        problems.push(format!("batch: lines {lines:?} refused, expected {:?}: {refusals:?}", check.refused_lines));
    }
    for wanted in &check.reason_contains {
        if !refusals.iter().any(|r| r.reason.contains(wanted.as_str())) {
            problems.push(format!("batch: no refusal contains `{wanted}`: {refusals:?}"));
        }
    }
    problems
}

/// `{"holder", "member", "active", ...fields of the current period}`.
fn check_binding(family: &Family, expectation: &Value) -> Vec<String> {
    let mut fields = expectation.as_object().cloned().expect("a binding check is an object");
    let holder: Identity = take(&mut fields, "holder").expect("binding check needs `holder`");
    let member: Identity = take(&mut fields, "member").expect("binding check needs `member`");
    let active: Option<bool> = take(&mut fields, "active");
    let periods: Option<usize> = take(&mut fields, "periods");
    let context = format!("binding {holder} → {member}");
    let Some(binding) = family.binding(&holder, &member) else { return vec![format!("{context}: none")] };
    let mut problems = Vec::new();
    if let Some(active) = active.filter(|&a| a != binding.is_active()) {
        problems.push(format!("{context}: active is {}, expected {active}", binding.is_active()));
    }
    if let Some(n) = periods.filter(|&n| n != binding.periods.len()) {
        problems.push(format!("{context}: {} period(s), expected {n}", binding.periods.len()));
    }
    let current = serde_json::to_value(binding.current()).expect("periods serialize");
    compare(&Value::Object(fields), &current, "", &mut problems);
    problems.into_iter().map(|p| format!("{context}: {p}")).collect()
}

/// `{"holder", "year", ...fields of AccountYear}`; the account's law is
/// checked for every year.
fn check_account(family: &Family, expectation: &Value) -> Vec<String> {
    let mut fields = expectation.as_object().cloned().expect("an account check is an object");
    let holder: Identity = take(&mut fields, "holder").expect("account check needs `holder`");
    let year: u16 = take(&mut fields, "year").expect("account check needs `year`");
    let context = format!("account of {holder} {year}");
    let years = family.account(&holder);
    let mut problems = Vec::new();
    for y in &years {
        let law = y.credited.fen() - y.refunded.fen() + y.in_flight.fen() + y.awaiting_return.fen();
        if y.net.fen() != law || y.debited.fen() - y.returned.fen() != y.net.fen() {
            problems.push(format!("{context}: the account's law fails for {}: {y:?}", y.coverage_year));
        }
    }
    let Some(found) = years.iter().find(|y| y.coverage_year == year) else {
        problems.push(format!("{context}: no such year"));
        return problems;
    };
    compare(&Value::Object(fields), &serde_json::to_value(found).expect("accounts serialize"), "", &mut problems);
    problems.into_iter().map(|p| format!("{context}: {p}")).collect()
}

fn check_stuck(family: &Family, coverage: &Coverage, check: &StuckCheck) -> Vec<String> {
    let now: ledger::BeijingTime = check.now.parse().expect("stuck `now`");
    let (found, without_limit) = family::stuck(family, coverage, now, check.older_than_hours);
    let ids: Vec<&str> = found.iter().map(|s| s.application_id.as_str()).collect();
    let mut problems = Vec::new();
    if ids != check.applications {
        problems.push(format!("stuck at {}: {ids:?}, expected {:?}", check.now, check.applications));
    }
    if let Some(expected) = check.without_limit.filter(|&n| n != without_limit) {
        problems.push(format!("stuck at {}: {without_limit} without a limit, expected {expected}", check.now));
    }
    problems
}

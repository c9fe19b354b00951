//! The auditor's replay: every projection rebuilt from the log alone into
//! fresh state, as known at a moment of transaction time (`as_of`), and the
//! year's figures re-derived from it.

use crate::state_digest;
use ledger::{Date, Hash, LogReader, Money, RegionCode, Result, UtcTime};
use projections::coverage::{Coverage, CoverageState, MoneyOutOfRange, Paid, PersonYear};
use projections::{LedgerTotals, Projection};
use serde::Serialize;
use std::collections::BTreeMap;

/// The projections rebuilt from the log.
pub struct Rebuilt {
    pub coverage: Coverage,
    pub totals: LedgerTotals,
    /// The last folded record (0: none).
    pub position: u64,
    pub head_hash: Hash,
    pub n_events: u64,
}

/// Folds, into fresh projections, every record recorded at or before
/// `as_of` (every record when `None`). The live checkpoint is not touched.
pub fn rebuild_as_of(log: &dyn LogReader, as_of: Option<UtcTime>, progress: &mut dyn FnMut(u64)) -> Result<Rebuilt> {
    let mut coverage = Coverage::new();
    let mut totals = LedgerTotals::default();
    let mut position = 0;
    let mut head_hash = [0; 32];
    let mut n_events = 0u64;
    log.scan(1, log.durable_head().position, |envelope| {
        if as_of.is_some_and(|moment| envelope.head.recorded_at > moment) {
            return Ok(());
        }
        coverage.apply(&envelope);
        totals.apply(&envelope);
        position = envelope.head.position;
        head_hash = envelope.hash;
        n_events += 1;
        if n_events.is_multiple_of(65_536) {
            progress(n_events);
        }
        Ok(())
    })?;
    progress(n_events);
    Ok(Rebuilt { coverage, totals, position, head_hash, n_events })
}

impl Rebuilt {
    /// SM3 over the canonical form of every rebuilt projection: the one
    /// line two auditors compare.
    pub fn digest(&self) -> Hash {
        let parts = (self.coverage.digest(), state_digest(&self.totals));
        state_digest(&parts)
    }
}

/// Money received for the year, by source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Received {
    /// By source, as each person-year counts it; hardship subsidies by
    /// funder (province, city, county, medical assistance fund, …).
    #[serde(flatten)]
    pub paid: Paid,
    /// 财政补助 borne by government for persons who paid the individual part.
    pub fiscal_subsidy: Money,
}

/// Money that went back, by destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Returned {
    pub to_channel: Money,
    pub to_personal_account: Money,
    pub to_funders: Money,
    pub total: Money,
}

/// The year's figures for a region, re-derived from the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub coverage_year: u16,
    pub region: Option<RegionCode>,
    pub as_of: Option<UtcTime>,
    pub on: Option<Date>,
    pub position: u64,
    pub head_hash: String,
    pub n_events: u64,
    pub n_person_years: u64,
    pub persons_by_state: BTreeMap<String, u64>,
    pub received: Received,
    pub refunded: Returned,
    pub net: Money,
    pub outstanding: Money,
    /// Paid after the concentrated period (零星缴费).
    pub n_late_payers: u64,
    pub n_newborns: u64,
    pub hardship_groups: BTreeMap<String, u64>,
    /// Covered on `on` (when given).
    pub n_covered_on: Option<u64>,
    pub digest: String,
}

fn add(total: &mut Money, amount: Money) {
    *total = total.checked_add(amount).unwrap_or(*total);
}

/// The report of `coverage_year` in `region` (all when `None`), or the
/// first person-year with a figure that is no amount of money.
pub fn report(
    rebuilt: &Rebuilt,
    coverage_year: u16,
    region: Option<RegionCode>,
    on: Option<Date>,
) -> std::result::Result<AuditReport, MoneyOutOfRange> {
    let years = rebuilt.coverage.person_years(region, coverage_year, on)?;
    let mut report = AuditReport {
        coverage_year,
        region,
        as_of: None,
        on,
        position: rebuilt.position,
        head_hash: hex::encode(rebuilt.head_hash),
        n_events: rebuilt.n_events,
        n_person_years: years.len() as u64,
        persons_by_state: BTreeMap::new(),
        received: Received::default(),
        refunded: Returned::default(),
        net: Money::ZERO,
        outstanding: Money::ZERO,
        n_late_payers: 0,
        n_newborns: 0,
        hardship_groups: BTreeMap::new(),
        n_covered_on: on.map(|_| 0),
        digest: hex::encode(rebuilt.digest()),
    };
    for (_, year) in &years {
        tally(&mut report, year, on);
    }
    Ok(report)
}

/// Adds one person-year to the report.
fn tally(report: &mut AuditReport, year: &PersonYear, on: Option<Date>) {
    *report.persons_by_state.entry(year.state.name().to_string()).or_default() += 1;
    let received = &mut report.received;
    received.paid.add(&year.paid);
    if let Some(fiscal) = year.fiscal_subsidy.filter(|_| year.state == CoverageState::Received) {
        add(&mut received.fiscal_subsidy, fiscal);
    }
    add(&mut report.refunded.to_channel, year.refunds.to_channel);
    add(&mut report.refunded.to_personal_account, year.refunds.to_personal_account);
    add(&mut report.refunded.to_funders, year.refunds.to_funders);
    add(&mut report.refunded.total, year.refunds.total);
    add(&mut report.net, year.net_received);
    if let Some(outstanding) = year.outstanding {
        add(&mut report.outstanding, outstanding);
    }
    match year.payment_class {
        Some("sporadic") => report.n_late_payers += 1,
        Some(class) if class.starts_with("newborn") => report.n_newborns += 1,
        _ => {}
    }
    if let Some(split) = &year.subsidy_split {
        *report.hardship_groups.entry(split.group.clone()).or_default() += 1;
    }
    if let (Some(day), Some(n_covered)) = (on, report.n_covered_on.as_mut()) {
        if year.is_covered_on(day) {
            *n_covered += 1;
        }
    }
}

/// A person-year where the live projection and the rebuild disagree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Masked ID.
    pub person: String,
    pub coverage_year: u16,
    /// The fields that differ, with the live and the rebuilt value.
    pub fields: Vec<(String, String, String)>,
}

/// Compares every person-year of the year in the live projection with the
/// rebuilt one, field by field (notes aside).
pub fn drift(
    live: &Coverage,
    rebuilt: &Coverage,
    coverage_year: u16,
    region: Option<RegionCode>,
) -> std::result::Result<Vec<Drift>, MoneyOutOfRange> {
    let mut live_years: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (_, year) in live.person_years(region, coverage_year, None)? {
        live_years.insert(year.person.to_string(), comparable(&year));
    }
    let mut drifts = Vec::new();
    for (_, year) in rebuilt.person_years(region, coverage_year, None)? {
        let key = year.person.to_string();
        let rebuilt_value = comparable(&year);
        let live_value = live_years.remove(&key).unwrap_or(serde_json::Value::Null);
        if live_value != rebuilt_value {
            drifts.push(Drift {
                person: year.person.masked(),
                coverage_year,
                fields: differences(&live_value, &rebuilt_value),
            });
        }
    }
    for (key, live_value) in live_years {
        let person = key.parse::<ledger::Identity>().map(|id| id.masked()).unwrap_or(key);
        drifts.push(Drift { person, coverage_year, fields: differences(&live_value, &serde_json::Value::Null) });
    }
    Ok(drifts)
}

fn comparable(year: &PersonYear) -> serde_json::Value {
    let mut value = serde_json::to_value(year).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("notes");
    }
    value
}

fn differences(live: &serde_json::Value, rebuilt: &serde_json::Value) -> Vec<(String, String, String)> {
    let (Some(live), Some(rebuilt)) = (live.as_object(), rebuilt.as_object()) else {
        return vec![("person-year".into(), live.to_string(), rebuilt.to_string())];
    };
    let mut fields: Vec<String> = live.keys().chain(rebuilt.keys()).cloned().collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|field| {
            let (a, b) = (live.get(&field), rebuilt.get(&field));
            (a != b).then(|| {
                let show = |v: Option<&serde_json::Value>| v.map_or("-".into(), |v| v.to_string());
                (field, show(a), show(b))
            })
        })
        .collect()
}

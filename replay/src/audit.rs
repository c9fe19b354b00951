//! The auditor's replay: every projection rebuilt from the log alone into
//! fresh state, as known at a moment of transaction time (`as_of`), and the
//! year's figures re-derived from it.

use crate::state_digest;
use ledger::{Date, Hash, Identity, LogReader, Money, RegionCode, Result, UtcTime};
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
    /// Subsidies refunded, by the funder each went back to: a grant's
    /// refund goes back to that grant's own funders, in its split.
    pub to_funders_by_funder: BTreeMap<String, Money>,
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
/// first person-year with a figure that is no amount of money. The
/// person-years are tallied on all cores by partitions of persons, and the
/// partial tallies added in partition order: sums and counts, so the report
/// is the same on any number of threads.
pub fn report(
    rebuilt: &Rebuilt,
    coverage_year: u16,
    region: Option<RegionCode>,
    on: Option<Date>,
) -> std::result::Result<AuditReport, MoneyOutOfRange> {
    let partials =
        rebuilt
            .coverage
            .fold_person_years(region, coverage_year, None, Tally::default, |tally, _, year| tally.add(year, on))?;
    let mut tally = Tally::default();
    for partial in &partials {
        tally.merge(partial);
    }
    Ok(AuditReport {
        coverage_year,
        region,
        as_of: None,
        on,
        position: rebuilt.position,
        head_hash: hex::encode(rebuilt.head_hash),
        n_events: rebuilt.n_events,
        n_person_years: tally.n_person_years,
        persons_by_state: tally.persons_by_state.into_iter().map(|(state, n)| (state.to_string(), n)).collect(),
        received: tally.received,
        refunded: tally.refunded,
        net: tally.net,
        outstanding: tally.outstanding,
        n_late_payers: tally.n_late_payers,
        n_newborns: tally.n_newborns,
        hardship_groups: tally.hardship_groups,
        n_covered_on: on.map(|_| tally.n_covered_on),
        digest: hex::encode(rebuilt.digest()),
    })
}

/// The report's figures over some person-years.
#[derive(Default)]
struct Tally {
    n_person_years: u64,
    persons_by_state: BTreeMap<&'static str, u64>,
    received: Received,
    refunded: Returned,
    net: Money,
    outstanding: Money,
    n_late_payers: u64,
    n_newborns: u64,
    hardship_groups: BTreeMap<String, u64>,
    n_covered_on: u64,
}

impl Tally {
    /// Adds one person-year (counted covered when covered `on`).
    fn add(&mut self, year: &PersonYear, on: Option<Date>) {
        self.n_person_years += 1;
        *self.persons_by_state.entry(year.state.name()).or_default() += 1;
        self.received.paid.add(&year.paid);
        if let Some(fiscal) = year.fiscal_subsidy.filter(|_| year.state == CoverageState::Received) {
            add(&mut self.received.fiscal_subsidy, fiscal);
        }
        let refunds = &year.refunds;
        add(&mut self.refunded.to_channel, refunds.to_channel);
        add(&mut self.refunded.to_personal_account, refunds.to_personal_account);
        add(&mut self.refunded.to_funders, refunds.to_funders);
        add_by_funder(&mut self.refunded.to_funders_by_funder, &refunds.to_funders_by_funder);
        add(&mut self.refunded.total, refunds.total);
        add(&mut self.net, year.net_received);
        if let Some(outstanding) = year.outstanding {
            add(&mut self.outstanding, outstanding);
        }
        match year.payment_class {
            Some("sporadic") => self.n_late_payers += 1,
            Some(class) if class.starts_with("newborn") => self.n_newborns += 1,
            _ => {}
        }
        if let Some(split) = &year.subsidy_split {
            match self.hardship_groups.get_mut(&split.group) {
                Some(n) => *n += 1,
                None => {
                    self.hardship_groups.insert(split.group.clone(), 1);
                }
            }
        }
        if on.is_some_and(|day| year.is_covered_on(day)) {
            self.n_covered_on += 1;
        }
    }

    /// Adds another tally's figures.
    fn merge(&mut self, other: &Tally) {
        self.n_person_years += other.n_person_years;
        for (state, n) in &other.persons_by_state {
            *self.persons_by_state.entry(state).or_default() += n;
        }
        self.received.paid.add(&other.received.paid);
        add(&mut self.received.fiscal_subsidy, other.received.fiscal_subsidy);
        self.refunded.add(&other.refunded);
        add(&mut self.net, other.net);
        add(&mut self.outstanding, other.outstanding);
        self.n_late_payers += other.n_late_payers;
        self.n_newborns += other.n_newborns;
        for (group, n) in &other.hardship_groups {
            *self.hardship_groups.entry(group.clone()).or_default() += n;
        }
        self.n_covered_on += other.n_covered_on;
    }
}

impl Returned {
    fn add(&mut self, other: &Returned) {
        add(&mut self.to_channel, other.to_channel);
        add(&mut self.to_personal_account, other.to_personal_account);
        add(&mut self.to_funders, other.to_funders);
        add_by_funder(&mut self.to_funders_by_funder, &other.to_funders_by_funder);
        add(&mut self.total, other.total);
    }
}

fn add_by_funder(totals: &mut BTreeMap<String, Money>, amounts: &BTreeMap<String, Money>) {
    for (funder, amount) in amounts {
        match totals.get_mut(funder) {
            Some(total) => add(total, *amount),
            None => {
                totals.insert(funder.clone(), *amount);
            }
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
/// rebuilt one, field by field (notes aside). Equal person-years are
/// compared as values; only those that differ are put into words.
pub fn drift(
    live: &Coverage,
    rebuilt: &Coverage,
    coverage_year: u16,
    region: Option<RegionCode>,
) -> std::result::Result<Vec<Drift>, MoneyOutOfRange> {
    let mut live_years: BTreeMap<Identity, PersonYear> = live
        .person_years(region, coverage_year, None)?
        .into_iter()
        .map(|(_, year)| (year.person.clone(), without_notes(year)))
        .collect();
    let mut drifts = Vec::new();
    for (_, year) in rebuilt.person_years(region, coverage_year, None)? {
        let rebuilt_year = without_notes(year);
        match live_years.remove(&rebuilt_year.person) {
            Some(live_year) if live_year == rebuilt_year => {}
            live_year => drifts.push(Drift {
                person: rebuilt_year.person.masked(),
                coverage_year,
                fields: differences(&comparable(live_year.as_ref()), &comparable(Some(&rebuilt_year))),
            }),
        }
    }
    for (person, live_year) in live_years {
        drifts.push(Drift {
            person: person.masked(),
            coverage_year,
            fields: differences(&comparable(Some(&live_year)), &serde_json::Value::Null),
        });
    }
    Ok(drifts)
}

fn without_notes(mut year: PersonYear) -> PersonYear {
    year.notes.clear();
    year
}

fn comparable(year: Option<&PersonYear>) -> serde_json::Value {
    let mut value =
        year.map_or(serde_json::Value::Null, |year| serde_json::to_value(year).unwrap_or(serde_json::Value::Null));
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

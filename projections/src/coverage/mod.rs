//! 参保缴费状态: the coverage projection. Per person and coverage year: what
//! is due, who paid what, what went back, what is outstanding, the state of
//! the person-year and the days it covers.
//!
//! The fold keeps *facts* (payments, subsidies, refunds, proxy
//! applications, assessments, hardship groups) in a compact per-person
//! state (`state`); every figure is *derived* on demand (`view`) against the
//! policy the log carries now. So a payment that waited for an unpublished
//! figure (Guigang 2021 after 30 June) settles as soon as a PolicyAmended
//! publishes it, and a rebuild, a checkpoint plus catch-up and an
//! incremental fold all give the same answers and the same digest.
//!
//! Decisions (each is documented where it is made):
//! * A person is one record under every identity they had: an
//!   IdentityConverted maps the old and the new ID to the same person;
//!   lookups by either find them, [`PersonSummary::current`] is the newest.
//! * The premium due and the first covered day are those of the day the
//!   person-year became paid in full (the settling day), re-evaluated
//!   against the current policy at every question.
//! * Only the rule that closes Shanxi's special path is decided while
//!   folding (it depends on the order of facts): an assessment met after a
//!   normal-path payment is recorded as refused, never applied.
//! * Money that no rule lets buy the year (paid before collection opened,
//!   after the year) is kept: the premium due is zero and the year is
//!   overpaid, with a note, until it is refunded.
//! * An unpaid year shows the individual standard as due (the
//!   concentrated-period figure), or with `as_of` what a payment that day
//!   would owe. `as_of` answers "what was true on day D" for derived states
//!   (a lapsed pre-registration); "what did we know on D" is a fold up to a
//!   log position.

mod cache;
mod checkpoint;
mod describe;
mod flows;
mod fold;
mod live;
mod payments;
mod policies;
mod state;
mod states;
mod store;
mod subset;
mod view;
mod walk;

pub use crate::Tip;
pub use checkpoint::{CoverageError, CHECKPOINT_FORMAT_VERSION};
pub use live::Pending;
pub use payments::{MoneyEvent, MoneyKind, PaymentKind, RecordedRefund, Refundable, SUBSIDY_CHANNEL};
pub use state::MoneyOutOfRange;
pub use store::{Changed, Named, PersonStore, StoreError, DEFAULT_CHUNK_ENVELOPES};
pub use view::{source_words, CoverageState, Paid, PersonYear, Refunds, SplitView};
pub use walk::{with_threads, PERSONS_PER_PARTITION};

use crate::policy::Policy;
use crate::Projection;
use ledger::event::{EnrolmentBasis, HardshipAssessed};
use ledger::{Date, Envelope, Hash, Identity, Money, RegionCode};
use policies::PolicyBook;
use rustc_hash::FxHashMap;
use serde::Serialize;
use state::{PersonId, PersonState};

/// Most ledger-wide notes kept (unknown proxy applications, refused policy
/// documents); later ones are counted.
const MAX_LEDGER_NOTES: usize = 1_000;

/// The coverage projection. Queries take `&self`, do no I/O and derive the
/// answer from the person's compact state.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// The last record folded.
    tip: Tip,
    policies: PolicyBook,
    persons: Vec<PersonState>,
    /// Fx hashing: the keys are ID numbers from the log, and lookups are
    /// the hot path of an office's questions.
    ids: FxHashMap<Identity, PersonId>,
    /// Proxy application id → (member, coverage year).
    proxies: FxHashMap<Box<str>, (PersonId, u16)>,
    notes: Vec<String>,
    n_notes_dropped: u64,
    /// With tracking on (`track_touched`), the persons the fold changed
    /// since: what a per-person store writes back (`store.rs`).
    touched: Option<rustc_hash::FxHashSet<PersonId>>,
    /// Answers about "now" asked before (`cache.rs`); never stored.
    lookups: cache::Lookups,
}

/// Why the ledger should not record a hardship assessment (核定).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// A sentence for a person, quoting the rule.
    pub reason: String,
}

/// Who a person is, as registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersonSummary {
    /// The identity the person is known by now.
    pub current: Identity,
    /// Earlier identities (a newborn's other certificate before conversion).
    pub former: Vec<Identity>,
    pub registered: bool,
    pub name: Option<String>,
    pub region: Option<RegionCode>,
    pub birth_date: Option<Date>,
    pub registered_on: Option<Date>,
    pub basis: Option<EnrolmentBasis>,
    /// 预参保登记作废, as a fact said.
    pub voided_on: Option<Date>,
}

/// A registered person-year not (or no longer) paid in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnpaidEntry {
    pub person: Identity,
    /// The ID masked for listings (PIPL).
    pub masked: String,
    pub name: String,
    pub region: RegionCode,
    pub state: CoverageState,
    pub amount_due: Option<Money>,
    pub outstanding: Option<Money>,
}

impl Projection for Coverage {
    fn apply(&mut self, envelope: &Envelope) {
        // Each envelope once, in order: an older one was folded already.
        if self.tip.admits(envelope) {
            self.fold(envelope);
            #[cfg(feature = "failpoints")]
            crate::failpoints::after_folding(envelope.head.position);
            self.tip.advance(envelope);
        }
    }

    fn position(&self) -> u64 {
        self.tip.position
    }
}

impl Coverage {
    /// The whole projection, folded from position 1: it keeps the answers
    /// about now it was asked (`cache.rs`). `Coverage::default()` is the
    /// same without keeping them, for a coverage of a few persons read from
    /// the person store or a scratch copy.
    pub fn new() -> Coverage {
        Coverage { lookups: cache::Lookups::keeping(), ..Coverage::default() }
    }

    /// The hash of the last record folded (zeros before the first).
    pub fn head_hash(&self) -> Hash {
        self.tip.hash
    }

    /// The person-year as the log says now. `Ok(None)`: the identity is
    /// unknown. A known person has a view for any year (unpaid if nothing
    /// happened). A figure that is no amount of money is the error naming
    /// the person-year (see [`MoneyOutOfRange`]), never 0.00.
    pub fn person_year(&self, person: &Identity, coverage_year: u16) -> Result<Option<PersonYear>, MoneyOutOfRange> {
        self.person_year_as_of(person, coverage_year, None)
    }

    /// The person-year on day `as_of` (or now, with `None`): with a date,
    /// derived states apply (a pre-registration unpaid 3 months after birth
    /// is void), and an unpaid year shows what a payment on that day owes.
    /// Errors as [`Coverage::person_year`].
    pub fn person_year_as_of(
        &self,
        person: &Identity,
        coverage_year: u16,
        as_of: Option<Date>,
    ) -> Result<Option<PersonYear>, MoneyOutOfRange> {
        if as_of.is_none() {
            if let Some(view) = self.lookups.view(person, coverage_year) {
                return Ok(Some(view));
            }
        }
        let Some(id) = self.lookup(person) else { return Ok(None) };
        let view = view::derive(self, id, coverage_year, as_of, true)?;
        if as_of.is_none() {
            self.lookups.keep(person, &view, true);
        }
        Ok(Some(view))
    }

    /// Whether the person is covered on `date` (by the year of that date);
    /// an unknown person is not. Errors as [`Coverage::person_year`].
    pub fn is_covered_on(&self, person: &Identity, date: Date) -> Result<bool, MoneyOutOfRange> {
        let Ok(coverage_year) = u16::try_from(date.year()) else { return Ok(false) };
        if let Some(covered) = self.lookups.is_covered_on(person, coverage_year, date) {
            return Ok(covered);
        }
        let Some(id) = self.lookup(person) else { return Ok(false) };
        let view = view::derive(self, id, coverage_year, None, false)?;
        self.lookups.keep(person, &view, false);
        Ok(view.is_covered_on(date))
    }

    /// Coverage years with any fact for the person, ascending.
    pub fn years_of(&self, person: &Identity) -> Vec<u16> {
        self.lookup(person)
            .map_or_else(Vec::new, |id| self.persons[id as usize].years.iter().map(|y| y.coverage_year).collect())
    }

    /// Who the person is, found by any identity they had.
    pub fn person(&self, person: &Identity) -> Option<PersonSummary> {
        let state = &self.persons[self.lookup(person)? as usize];
        let registration = state.registration.as_ref();
        Some(PersonSummary {
            current: state.current.clone(),
            former: state.former.clone(),
            registered: registration.is_some(),
            name: registration.map(|r| r.name.to_string()),
            region: registration.map(|r| r.region),
            birth_date: registration.map(|r| r.birth_date),
            registered_on: registration.map(|r| r.registered_on),
            basis: registration.map(|r| r.basis.clone()),
            voided_on: state.voided_on,
        })
    }

    /// Registered person-years in `region` (a county, or every county of a
    /// prefecture or province code) not paid in full: unpaid, pending,
    /// partially paid, awaiting policy or refunded. Sorted by identity.
    /// A person-year of the region with a figure that is no amount of money
    /// makes it an error naming that person-year: a list that left it out
    /// (or listed it owing 0.00) would be wrong.
    pub fn unpaid(&self, region: RegionCode, coverage_year: u16) -> Result<Vec<UnpaidEntry>, MoneyOutOfRange> {
        let mut entries = Vec::new();
        for (id, person) in self.live_persons() {
            let Some(registration) = person.registration.as_ref() else { continue };
            if !policies::region_contains(region, registration.region) {
                continue;
            }
            let view = view::derive(self, id, coverage_year, None, false)?;
            if view.state.is_unpaid() {
                entries.push(UnpaidEntry {
                    person: person.current.clone(),
                    masked: person.current.masked(),
                    name: registration.name.to_string(),
                    region: registration.region,
                    state: view.state,
                    amount_due: view.amount_due,
                    outstanding: view.outstanding,
                });
            }
        }
        entries.sort_by(|a, b| a.person.cmp(&b.person));
        Ok(entries)
    }

    /// Every person-year of `coverage_year` for persons registered in
    /// `region` (all regions when `None`), with the person's registered
    /// region, as known on `as_of` (see [`Coverage::person_year_as_of`]).
    /// Sorted by identity (the drift check walks it; sums such as the
    /// auditor's report fold without sorting: [`Coverage::fold_person_years`]).
    /// A person-year with a figure that is no amount of money makes it an
    /// error naming that person-year (the first by identity): an audit
    /// never counts it as 0.00.
    pub fn person_years(
        &self,
        region: Option<RegionCode>,
        coverage_year: u16,
        as_of: Option<Date>,
    ) -> Result<Vec<(RegionCode, PersonYear)>, MoneyOutOfRange> {
        let mut ids: Vec<(&Identity, RegionCode, PersonId)> = self
            .live_persons()
            .filter_map(|(id, person)| Some((&person.current, walk::registered_within(person, region)?, id)))
            .collect();
        // Sorted before deriving: the views are large, their keys are not.
        ids.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let n_partitions = ids.len().div_ceil(PERSONS_PER_PARTITION);
        let parts = walk::in_partitions(n_partitions, |partition| {
            ids[walk::partition_range(partition, ids.len())]
                .iter()
                .map(|&(_, registered_in, id)| {
                    view::derive(self, id, coverage_year, as_of, false).map(|view| (registered_in, view))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let mut years = Vec::with_capacity(ids.len());
        for part in parts {
            years.extend(part?);
        }
        Ok(years)
    }

    /// The policy in force for `region` and year: the region's own, else its
    /// prefecture's, else its province's.
    pub fn policy(&self, region: RegionCode, coverage_year: u16) -> Option<&Policy> {
        self.policies.find(region, coverage_year).map(|entry| &entry.policy)
    }

    /// Ledger-wide notes: refused policy documents, proxy steps for unknown
    /// applications, identity merges.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Every person's record as the projection keeps it, encoded (bincode),
    /// under the identity they are known by now: the payload a per-person
    /// store holds (see `yibao-bench store`).
    pub fn encoded_persons(&self) -> impl Iterator<Item = (&Identity, bincode::Result<Vec<u8>>)> + '_ {
        self.persons
            .iter()
            .filter(|p| p.merged_into.is_none())
            .map(|person| (&person.current, bincode::serialize(person)))
    }

    /// Number of persons known (registered or not).
    pub fn n_persons(&self) -> usize {
        self.persons.iter().filter(|p| p.merged_into.is_none()).count()
    }

    /// The position of `assessment` when it is the one in force for its
    /// person-year (the same group, figures and day): recording it again
    /// changes nothing.
    pub fn assessment_in_force(&self, assessment: &HardshipAssessed) -> Option<u64> {
        let id = self.lookup(&assessment.person)?;
        let year = self.persons.get(id as usize)?.year(assessment.coverage_year)?;
        let held = year.extra()?.assessment.as_ref()?;
        let same = *held.group == *assessment.group
            && held.subsidy == assessment.subsidy
            && held.amount_due == assessment.amount_due
            && held.on == assessment.assessed_on;
        same.then_some(held.position)
    }

    /// Refuses an assessment the rules do not allow; asked before one is
    /// appended, from the CLI, an import or a request
    /// (`family::decide`). Shanxi 2022: 一旦按正常模块办理缴费,将无法再办理特殊缴费.
    pub fn check_assessment(&self, assessment: &HardshipAssessed) -> Result<(), Refusal> {
        let id = self.lookup(&assessment.person);
        let Some(id) = id.filter(|&id| self.persons[id as usize].registration.is_some()) else {
            return Err(Refusal { reason: format!("{} is not registered", assessment.person.masked()) });
        };
        match self.assessment_refusal(id, assessment) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    fn lookup(&self, person: &Identity) -> Option<PersonId> {
        self.ids.get(person).map(|&id| self.live(id))
    }

    /// Follows merges to the person record that holds the facts.
    fn live(&self, mut id: PersonId) -> PersonId {
        // A merge chain is at most as long as the number of persons.
        for _ in 0..self.persons.len() {
            match self.persons.get(id as usize).and_then(|p| p.merged_into) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    fn live_persons(&self) -> impl Iterator<Item = (PersonId, &PersonState)> {
        self.persons
            .iter()
            .enumerate()
            .filter(|(_, p)| p.merged_into.is_none())
            .filter_map(|(index, p)| PersonId::try_from(index).ok().map(|id| (id, p)))
    }

    fn ledger_note(&mut self, text: String) {
        if self.notes.len() < MAX_LEDGER_NOTES {
            self.notes.push(text);
        } else {
            self.n_notes_dropped = self.n_notes_dropped.saturating_add(1);
        }
    }
}

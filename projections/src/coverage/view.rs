//! Figures of a person-year, derived on demand from its facts and the
//! policy in force now: the public view types, and the derivation that
//! fills them. The money and the settling day are in `flows`, the state in
//! `states`, the wording of notes in `describe`.

use super::describe::{by_funder, class_name, settling_note};
use super::flows::{Flows, Settlement, Walk};
use super::payments::source_name;
use super::policies::PolicyEntry;
use super::state::{money, shortfall, sum, MoneyOutOfRange, PersonId, PersonState, Source, YearState};
use super::states::StateInput;
use super::Coverage;
use crate::policy::{funder_key, AmountDue, HardshipSubsidy, OnePayment, PaymentClass, PersonFacts, Ruling};
use ledger::event::EnrolmentBasis;
use ledger::{Date, Identity, Money, RegionCode};
use serde::Serialize;
use std::collections::BTreeMap;

/// The state of a person-year (参保缴费状态).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CoverageState {
    /// Facts exist for an identity never registered (参保登记 missing).
    NotRegistered,
    /// Registered, nothing paid, nothing in flight.
    RegisteredUnpaid,
    /// A proxy application is in flight, an assessment awaits payment, or
    /// the person's share is paid and the hardship subsidy awaited.
    Pending,
    /// Less than the premium due has been received.
    PartiallyPaid,
    /// Paid in full (已到账).
    Received,
    /// More than the premium due (or money that cannot buy the year).
    Overpaid,
    /// All money received went back where it came from (原渠道退回).
    RefundedToSource,
    /// A pre-registration that lapsed (预参保登记作废).
    Void,
    /// The premium due depends on a figure the policy has not published;
    /// the money is recorded, the assessment stays open.
    AwaitingPolicy,
}

impl CoverageState {
    /// Every state, for the checks that hold each spelling.
    pub const ALL: [CoverageState; 9] = [
        CoverageState::NotRegistered,
        CoverageState::RegisteredUnpaid,
        CoverageState::Pending,
        CoverageState::PartiallyPaid,
        CoverageState::Received,
        CoverageState::Overpaid,
        CoverageState::RefundedToSource,
        CoverageState::Void,
        CoverageState::AwaitingPolicy,
    ];

    /// The one spelling of the state in every answer, JSON or text
    /// (`registered_unpaid`); serde's derive is held to it by a test.
    pub fn name(self) -> &'static str {
        match self {
            CoverageState::NotRegistered => "not_registered",
            CoverageState::RegisteredUnpaid => "registered_unpaid",
            CoverageState::Pending => "pending",
            CoverageState::PartiallyPaid => "partially_paid",
            CoverageState::Received => "received",
            CoverageState::Overpaid => "overpaid",
            CoverageState::RefundedToSource => "refunded_to_source",
            CoverageState::Void => "void",
            CoverageState::AwaitingPolicy => "awaiting_policy",
        }
    }

    /// The name as words, for text answers (`registered unpaid`).
    pub fn words(self) -> String {
        self.name().replace('_', " ")
    }

    /// Registered but not paid in full (what `unpaid` lists).
    pub fn is_unpaid(self) -> bool {
        matches!(
            self,
            CoverageState::RegisteredUnpaid
                | CoverageState::Pending
                | CoverageState::PartiallyPaid
                | CoverageState::AwaitingPolicy
                | CoverageState::RefundedToSource
        )
    }
}

/// Money in, by source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paid {
    /// 自主缴费.
    pub by_self: Money,
    /// 代他人缴费: another person paid.
    pub by_other: Money,
    /// 代收代办: a village or township collector.
    pub by_collector: Money,
    /// 职工医保个人账户代缴, credited (缴费到账成功).
    pub by_proxy: Money,
    /// 资助参保 by funder (`province`, `county`, `medical_assistance_fund`, …).
    pub subsidy: BTreeMap<String, Money>,
    pub subsidy_total: Money,
    pub total: Money,
}

impl Paid {
    /// Each payer's money under its source's one name (`self`, `other`,
    /// `collector`, `proxy`), in that order; subsidies apart.
    pub fn by_source(&self) -> [(&'static str, Money); 4] {
        [
            (source_name(Source::Myself), self.by_self),
            (source_name(Source::Other), self.by_other),
            (source_name(Source::Collector), self.by_collector),
            (source_name(Source::Proxy), self.by_proxy),
        ]
    }

    /// Adds another person-year's money, source by source (a sum that
    /// would overflow stays where it was).
    pub fn add(&mut self, other: &Paid) {
        let add = |total: &mut Money, amount: Money| *total = total.checked_add(amount).unwrap_or(*total);
        add(&mut self.by_self, other.by_self);
        add(&mut self.by_other, other.by_other);
        add(&mut self.by_collector, other.by_collector);
        add(&mut self.by_proxy, other.by_proxy);
        for (funder, amount) in &other.subsidy {
            add(self.subsidy.entry(funder.clone()).or_default(), *amount);
        }
        add(&mut self.subsidy_total, other.subsidy_total);
        add(&mut self.total, other.total);
    }
}

/// Money back, by destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refunds {
    pub to_channel: Money,
    pub to_personal_account: Money,
    pub to_funders: Money,
    /// Refunds to funders by funder, in the split of the year's grants.
    pub to_funders_by_funder: BTreeMap<String, Money>,
    /// Applied refunds: never more than was paid.
    pub total: Money,
    /// Refunded amounts beyond what the named payment had left, or naming
    /// no payment of the year: anomalies, noted, not applied.
    pub unapplied: Money,
}

/// The policy's split of the person's hardship subsidy among funders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SplitView {
    pub group: String,
    pub amount: Money,
    pub parts: BTreeMap<String, Money>,
    /// Money whose funders the policy does not name for this person.
    pub unallocated: Money,
}

/// One person-year, every figure derived from the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersonYear {
    /// The identity the person is known by now.
    pub person: Identity,
    pub coverage_year: u16,
    pub state: CoverageState,
    /// The region whose policy applies (the county's, prefecture's or
    /// province's); `None`: no policy for the year.
    pub policy_region: Option<RegionCode>,
    /// How the policy saw the settling (or latest) payment: `concentrated`,
    /// `sporadic`, `newborn_in_window`, …
    pub payment_class: Option<&'static str>,
    /// 应缴: the premium for the person-year (individual standard, full
    /// premium, or an assessment's amount + subsidy). `None`: not known.
    pub premium_due: Option<Money>,
    /// The hardship subsidy towards it (the highest group's, or assessed).
    pub subsidy_due: Money,
    /// What the person's side owes: premium due − subsidy due.
    pub amount_due: Option<Money>,
    /// 财政补助 the government bears: the policy's figure when the person
    /// paid the individual part, zero when they paid the full premium.
    pub fiscal_subsidy: Option<Money>,
    pub paid: Paid,
    pub refunds: Refunds,
    pub net_received: Money,
    /// Premium due − net received, never below 0.00 (0.00: paid in full);
    /// `None` only when the premium due is not known.
    pub outstanding: Option<Money>,
    /// Net received − premium due, when above.
    pub excess: Money,
    /// Proxy money applied for and not yet credited or failed.
    pub in_flight: Money,
    /// Proxy money that failed (受理失败) and went back to the personal
    /// account (原渠道返还): never premium money, but money that came back.
    pub proxy_returned: Money,
    /// The policy field the assessment waits for (`premium.fiscal_subsidy`).
    pub awaiting: Option<String>,
    pub subsidy_split: Option<SplitView>,
    pub covered_from: Option<Date>,
    pub covered_until: Option<Date>,
    pub notes: Vec<String>,
}

impl PersonYear {
    /// 待遇享受: whether `date` is a covered day of this person-year.
    pub fn is_covered_on(&self, date: Date) -> bool {
        match (self.covered_from, self.covered_until) {
            (Some(from), Some(until)) => from <= date && date <= until,
            _ => false,
        }
    }
}

/// Notes, formatted only when asked for (listings skip them).
pub(super) struct Notes {
    pub(super) enabled: bool,
    pub(super) lines: Vec<String>,
}

impl Notes {
    pub(super) fn add(&mut self, line: impl FnOnce() -> String) {
        if self.enabled {
            self.lines.push(line());
        }
    }
}

/// One question: a person-year, against the policy in force now.
pub(super) struct Derivation<'a> {
    pub(super) person: &'a PersonState,
    pub(super) year: Option<&'a YearState>,
    pub(super) coverage_year: u16,
    pub(super) policy: Option<&'a PolicyEntry>,
    pub(super) facts: Option<PersonFacts>,
    pub(super) as_of: Option<Date>,
    pub(super) notes: Notes,
}

/// Derives the view of person `id` for `coverage_year`; a figure that is
/// no amount of money is an error naming the person-year, never a zero.
pub(super) fn derive(
    coverage: &Coverage,
    id: PersonId,
    coverage_year: u16,
    as_of: Option<Date>,
    with_notes: bool,
) -> Result<PersonYear, MoneyOutOfRange> {
    let person = &coverage.persons[id as usize];
    let registration = person.registration.as_ref();
    let policy = registration.and_then(|r| coverage.policies.find(r.region, coverage_year));
    let year = person.year(coverage_year);
    let facts = registration.map(|r| PersonFacts {
        birth_date: r.birth_date,
        basis: effective_basis(person, &r.basis, coverage_year),
        hardship_groups: groups(year).iter().map(|g| g.to_string()).collect(),
        county: (r.region.code() % 100 != 0).then_some(r.region),
    });
    let notes = Notes { enabled: with_notes, lines: Vec::new() };
    let mut derivation = Derivation { person, year, coverage_year, policy, facts, as_of, notes };
    let void = derivation.void_reason(coverage);
    derivation.view(void)
}

impl Derivation<'_> {
    /// A figure as money, or the error naming the person-year, the figure
    /// and its amounts: no figure of a view ever stands in for another.
    pub(super) fn amount(&self, fen: i64, figure: impl FnOnce() -> String) -> Result<Money, MoneyOutOfRange> {
        money(fen, &self.person.current, self.coverage_year, figure)
    }

    fn view(mut self, void: Option<String>) -> Result<PersonYear, MoneyOutOfRange> {
        self.note_policy();
        self.note_advised_delay();
        self.note_payment_in_parts();
        let flows = self.flows()?;
        let (subsidy_due, split) = self.subsidy_due(&flows)?;
        let walk = self.walk(&flows.timeline)?;
        let due = self.due_ruling(&walk);
        let premium_due = match due {
            Some(Ruling::Known(amount)) => Some(amount),
            _ if walk.only_refused => Some(Money::ZERO),
            _ => None,
        };
        let awaiting = match due {
            Some(Ruling::AwaitingPolicy { missing }) => Some(missing.to_string()),
            _ => None,
        };
        let net = flows.paid.total.fen() - flows.refunds.total.fen();
        let amount_due = premium_due.map(|due| due.saturating_sub(subsidy_due));
        let input = StateInput {
            flows: &flows,
            walk: &walk,
            premium_due,
            amount_due,
            subsidy_due,
            awaiting: awaiting.is_some(),
        };
        let state = self.state(&input, void);
        let (premium_due, amount_due) = match state {
            CoverageState::RefundedToSource => {
                let again = self.due_again(&flows).or(premium_due);
                (again, again.map(|due| due.saturating_sub(subsidy_due)))
            }
            _ => (premium_due, amount_due),
        };
        let settled = walk.settled.filter(|_| matches!(state, CoverageState::Received | CoverageState::Overpaid));
        let (class, covered_from, covered_until) = self.coverage(settled);
        let view = PersonYear {
            person: self.person.current.clone(),
            coverage_year: self.coverage_year,
            state,
            policy_region: self.policy.map(|p| p.record.region),
            payment_class: class.map(class_name),
            premium_due,
            subsidy_due,
            amount_due,
            fiscal_subsidy: self.fiscal_subsidy(settled),
            // Known: a number, 0.00 once paid in full, as the card prints it.
            outstanding: premium_due.map(|due| shortfall(due.fen(), net)),
            excess: premium_due.map_or(Money::ZERO, |due| shortfall(net, due.fen())),
            net_received: self.amount(net, || {
                format!("net received (paid {} less refunds {})", flows.paid.total, flows.refunds.total)
            })?,
            in_flight: self.amount(flows.in_flight_fen, || "proxy money in flight".into())?,
            proxy_returned: self.amount(flows.proxy_returned_fen, || "proxy money returned".into())?,
            paid: flows.paid,
            refunds: flows.refunds,
            awaiting,
            subsidy_split: split,
            covered_from,
            covered_until,
            notes: Vec::new(),
        };
        Ok(PersonYear { notes: self.finish_notes(), ..view })
    }

    /// 原渠道退回: every yuan went back, so covering the year takes a new
    /// payment, and the year owes what that payment would: one on `as_of`,
    /// else one on the day the money went back (the last refund), else
    /// (only a returned proxy application) what an unpaid year owes.
    /// Nothing a payment could buy (the year closed): nothing owed.
    /// `None`: not known.
    fn due_again(&mut self, flows: &Flows) -> Option<Money> {
        let last_refund = flows.timeline.iter().filter(|(_, _, fen)| *fen < 0).map(|(on, _, _)| *on).max();
        let on = self.as_of.or(last_refund);
        let ruling = match on {
            Some(on) => self.premium_due_on(on),
            None => self.due_ruling(&Walk { settled: None, latest: None, only_refused: false })?,
        };
        let due = match ruling {
            Ruling::Known(amount) => amount,
            Ruling::Refused { .. } => Money::ZERO,
            Ruling::AwaitingPolicy { .. } => return None,
        };
        self.notes.add(|| {
            let when = on.map_or_else(String::new, |on| format!(" on {on}"));
            format!(
                "all the money went back to where it came from (原渠道退回): covering the year takes a new \
                 payment, and a payment{when} owes {due}"
            )
        });
        Some(due)
    }

    /// Shanxi 2022: 建议缴费人在核定后次日再进行缴费. Advice, not a rule: a
    /// payment made sooner after the assessment counts, with a note.
    fn note_advised_delay(&mut self) {
        let Some(days) = self.policy.and_then(|p| p.policy.assessment()).and_then(|a| a.advised_payment_delay_days)
        else {
            return;
        };
        let Some(year) = self.year else { return };
        let Some(assessed) = year.extra().and_then(|extra| extra.assessment.as_ref()) else { return };
        let advised = assessed.on.0.checked_add_days(chrono::Days::new(u64::from(days))).unwrap_or(assessed.on.0);
        for paid in year.contributions.iter().filter(|c| c.on >= assessed.on && c.on.0 < advised) {
            self.notes.add(|| {
                format!(
                    "payment of {} on {}, before {advised}: the policy advises paying {days} day(s) after the \
                     assessment of {} (建议缴费人在核定后次日再进行缴费); advice only, the payment counts",
                    paid.amount, paid.on, assessed.on
                )
            });
        }
    }

    /// 由参保人员按年度一次性足额缴纳 (Anqing, everyone), or 一次性缴纳 asked of
    /// one group (Guigang 2021: late newborns from 1 July): a year the
    /// person paid in more than one payment keeps its money, and says so.
    fn note_payment_in_parts(&mut self) {
        // Only a note: listings, which skip notes, skip the classification.
        if !self.notes.enabled {
            return;
        }
        let Some(policy) = self.policy.map(|p| &p.policy) else { return };
        let Some(year) = self.year else { return };
        let own = || year.contributions.iter().filter(|c| c.source != super::state::Source::Proxy);
        let n_payments = own().count();
        if n_payments < 2 {
            return;
        }
        let parts = || own().map(|c| format!("{} on {}", c.amount, c.on)).collect::<Vec<String>>().join(", ");
        let Some(facts) = &self.facts else { return };
        let Some((on, required)) = own().find_map(|c| policy.one_payment_required_of(c.on, facts).map(|r| (c.on, r)))
        else {
            return;
        };
        self.notes.add(|| match required {
            OnePayment::Everyone => format!(
                "paid in {n_payments} payments ({}): the policy has the year's premium paid in one payment \
                 (由参保人员按年度一次性足额缴纳)",
                parts()
            ),
            OnePayment::Group(rule) => format!(
                "paid in {n_payments} payments ({}): the policy has the {} group (as of the payment on {on}) pay \
                 the year in one payment (一次性缴纳); the money counts all the same",
                parts(),
                rule.group.name()
            ),
        });
    }

    fn note_policy(&mut self) {
        let (coverage_year, person) = (self.coverage_year, self.person);
        match (&person.registration, self.policy) {
            (None, _) => self.notes.add(|| format!("{} is not registered (参保登记)", person.current.masked())),
            (Some(r), None) => self.notes.add(|| {
                format!(
                    "no policy in the log for region {} (or its prefecture or province), year {coverage_year}",
                    r.region
                )
            }),
            (Some(_), Some(entry)) if entry.record.n_amendments > 0 => self.notes.add(|| {
                format!(
                    "policy {}/{coverage_year} as amended at position {} ({} amendment(s))",
                    entry.record.region, entry.record.position, entry.record.n_amendments
                )
            }),
            _ => {}
        }
    }

    /// 就高不就低,不重复享受: the assessed subsidy, else the highest of the
    /// person's groups (capped at the individual standard), with the policy's
    /// split among funders.
    fn subsidy_due(&mut self, flows: &Flows) -> Result<(Money, Option<SplitView>), MoneyOutOfRange> {
        let assessed = self.year.and_then(|y| y.extra()).and_then(|e| e.assessment.as_ref());
        let groups: Vec<&str> = match assessed {
            Some(a) => vec![&*a.group],
            None => groups(self.year).iter().map(|g| &**g).collect(),
        };
        let Some(policy) = self.policy.map(|p| &p.policy) else {
            return Ok((assessed.map_or(Money::ZERO, |a| a.subsidy), None));
        };
        // 一旦按正常模块办理缴费,将无法再办理特殊缴费: no subsidy once paid
        // through the normal path (as the fold refuses a later assessment).
        let normal = self.year.and_then(super::fold::normal_path_payment);
        if let Some(normal) = normal.filter(|_| policy.special_path_closes_after_normal_payment()) {
            if !groups.is_empty() {
                self.notes.add(|| {
                    format!(
                        "no hardship subsidy: {} was paid through the normal path on {}, which closes the special \
                         path for the year (一旦按正常模块办理缴费,将无法再办理特殊缴费)",
                        normal.amount, normal.on
                    )
                });
            }
            return Ok((Money::ZERO, None));
        }
        let highest = match policy.hardship_subsidy(&groups) {
            Ok(highest) => highest,
            Err(error) => {
                self.notes.add(|| format!("hardship subsidy not known: {error}"));
                None
            }
        };
        if assessed.is_none() && groups.len() > 1 {
            if let Some(h) = &highest {
                self.notes.add(|| {
                    format!(
                        "hardship groups {}: the highest applies ({}, {}), never the sum (就高不就低,不重复享受)",
                        groups.join(", "),
                        h.group,
                        h.amount
                    )
                });
            }
        }
        let due = assessed.map_or_else(|| highest.as_ref().map_or(Money::ZERO, |h| h.amount), |a| a.subsidy);
        if flows.granted_net_fen > due.fen() {
            let granted = self.amount(flows.granted_net_fen, || "subsidies granted net of refunds".into())?;
            self.notes.add(|| {
                format!("subsidies granted {granted} exceed the subsidy due {due}: one group's subsidy, never the sum")
            });
        }
        let split = highest.and_then(|h| self.split(&h, flows));
        Ok((due, split))
    }

    fn split(&mut self, subsidy: &HardshipSubsidy, flows: &Flows) -> Option<SplitView> {
        let policy = &self.policy?.policy;
        let county = self.facts.as_ref().and_then(|f| f.county);
        let split = policy.split_subsidy(subsidy, county).ok()?;
        let parts: BTreeMap<String, Money> =
            split.parts.iter().map(|p| (funder_key(&p.funder).to_string(), p.amount)).collect();
        // Compared only when the whole subsidy was granted once and nothing
        // went back to the funders (refunds to funders are not by funder).
        let comparable = flows.paid.subsidy_total == split.total() && flows.refunds.to_funders == Money::ZERO;
        if comparable && parts.iter().any(|(funder, amount)| flows.paid.subsidy.get(funder) != Some(amount)) {
            self.notes.add(|| {
                format!(
                    "granted parts {} differ from the policy's split {}",
                    by_funder(&flows.paid.subsidy),
                    by_funder(&parts)
                )
            });
        }
        for note in &split.unallocated_notes {
            self.notes.add(|| format!("{} of the subsidy has no named funder: {note}", split.unallocated));
        }
        Some(SplitView { group: subsidy.group.clone(), amount: split.total(), parts, unallocated: split.unallocated })
    }

    /// The premium due for money arriving on `on`: the assessment's figure
    /// if one is in force, else the policy's for a payment that day.
    pub(super) fn premium_due_on(&self, on: Date) -> AmountDue {
        if let Some(a) = self.year.and_then(|y| y.extra()).and_then(|e| e.assessment.as_ref()) {
            return Ruling::Known(sum([a.amount_due, a.subsidy]));
        }
        match (self.policy, &self.facts) {
            (Some(entry), Some(facts)) => entry.policy.assess(on, facts).premium_due,
            _ => Ruling::AwaitingPolicy { missing: "policy" },
        }
    }

    /// The ruling that gives the figures: the settling day's, else the
    /// latest money's, else (nothing paid) a payment on `as_of` or, without
    /// a date, the concentrated-period standard.
    fn due_ruling(&mut self, walk: &Walk) -> Option<AmountDue> {
        if let Some(settled) = walk.settled {
            return Some(Ruling::Known(settled.premium_due));
        }
        if let Some((on, due)) = walk.latest {
            if let Ruling::AwaitingPolicy { missing } = due {
                self.notes.add(|| {
                    format!("payment of {on}: the premium due awaits the policy ({missing} not published); the assessment stays open")
                });
            }
            return Some(due);
        }
        let policy = &self.policy?.policy;
        match self.as_of {
            Some(on) => Some(self.premium_due_on(on)),
            None if self.year.and_then(|y| y.extra()).and_then(|e| e.assessment.as_ref()).is_some() => {
                Some(self.premium_due_on(policy.coverage().from))
            }
            None => Some(Ruling::Known(policy.premium().individual)),
        }
    }

    /// The first covered day of a settled year, from the policy's rule for
    /// the settling payment.
    fn coverage(&mut self, settled: Option<Settlement>) -> (Option<PaymentClass>, Option<Date>, Option<Date>) {
        let (Some(settled), Some(entry), Some(facts)) = (settled, self.policy, &self.facts) else {
            if settled.is_some() {
                self.notes.add(|| "paid in full, but no policy says from when it covers".to_string());
            }
            return (None, None, None);
        };
        let policy = &entry.policy;
        let assessment = policy.assess(settled.on, facts);
        let coverage_year = self.coverage_year;
        match assessment.covered_from {
            Ruling::Known(from) if from <= assessment.covered_until => {
                self.notes.add(|| settling_note(policy, assessment.class, settled, from));
                (Some(assessment.class), Some(from), Some(assessment.covered_until))
            }
            Ruling::Known(from) => {
                self.notes.add(|| {
                    format!(
                        "paid in full on {}: the first covered day {from} is after {coverage_year}: no day covered",
                        settled.on
                    )
                });
                (Some(assessment.class), None, None)
            }
            Ruling::AwaitingPolicy { missing } => {
                self.notes
                    .add(|| format!("paid in full on {}: coverage start awaits the policy ({missing})", settled.on));
                (Some(assessment.class), None, None)
            }
            Ruling::Refused { reason } => {
                self.notes.add(|| format!("paid in full on {}, but {reason}", settled.on));
                (Some(assessment.class), None, None)
            }
        }
    }

    fn fiscal_subsidy(&self, settled: Option<Settlement>) -> Option<Money> {
        let premium = self.policy?.policy.premium();
        let settled = settled?;
        if settled.premium_due == premium.individual {
            premium.fiscal_subsidy
        } else if self.policy?.policy.full_premium() == Ruling::Known(settled.premium_due) {
            Some(Money::ZERO)
        } else {
            None
        }
    }

    /// The derived notes, then those kept while folding.
    fn finish_notes(mut self) -> Vec<String> {
        let extra = self.year.and_then(|y| y.extra());
        if let (true, Some(extra)) = (self.notes.enabled, extra) {
            self.notes.lines.extend(extra.notes.iter().map(|n| n.to_string()));
            if extra.n_notes_dropped > 0 {
                self.notes.lines.push(format!("{} more notes not kept", extra.n_notes_dropped));
            }
        }
        self.notes.lines
    }
}

/// An interrupted payer's last paid year is the later of the registration's
/// and the last earlier year with money in the ledger.
fn effective_basis(person: &PersonState, basis: &EnrolmentBasis, coverage_year: u16) -> EnrolmentBasis {
    match basis {
        EnrolmentBasis::Interrupted { last_paid_year } => {
            let paid_in_ledger = person
                .years
                .iter()
                .filter(|y| y.coverage_year < coverage_year && !y.contributions.is_empty())
                .map(|y| y.coverage_year)
                .max();
            EnrolmentBasis::Interrupted {
                last_paid_year: paid_in_ledger.map_or(*last_paid_year, |y| y.max(*last_paid_year)),
            }
        }
        other => other.clone(),
    }
}

fn groups(year: Option<&YearState>) -> &[Box<str>] {
    year.and_then(|y| y.extra()).map_or(&[], |e| &e.hardship_groups)
}

/// How text answers word a payer source named by `Paid::by_source`.
pub fn source_words(name: &str) -> &str {
    match name {
        "other" => "paid by another person",
        "proxy" => "employee account (proxy)",
        name => name,
    }
}

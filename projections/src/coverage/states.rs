//! The state of a person-year, in order of precedence, and why a
//! pre-registration is void.

use super::flows::{Flows, Walk};
use super::state::shortfall;
use super::view::{CoverageState, Derivation};
use super::Coverage;
use ledger::event::EnrolmentBasis;
use ledger::{Date, Money};

/// What the state depends on.
pub(super) struct StateInput<'a> {
    pub(super) flows: &'a Flows,
    pub(super) walk: &'a Walk,
    pub(super) premium_due: Option<Money>,
    pub(super) amount_due: Option<Money>,
    pub(super) subsidy_due: Money,
    pub(super) awaiting: bool,
}

impl Derivation<'_> {
    /// The state, in order of precedence (the first that holds).
    pub(super) fn state(&mut self, input: &StateInput, void: Option<String>) -> CoverageState {
        let flows = input.flows;
        let net = flows.paid.total.fen() - flows.refunds.total.fen();
        let in_flight = flows.in_flight_fen > 0;
        let assessed = self.year.and_then(|y| y.extra()).is_some_and(|e| e.assessment.is_some());
        if self.person.registration.is_none() {
            return CoverageState::NotRegistered;
        }
        if let Some(reason) = void {
            if net == 0 && !in_flight {
                self.notes.add(|| reason);
                return CoverageState::Void;
            }
            self.notes.add(|| format!("{reason}, but money was received: the money decides the state"));
        }
        if flows.paid.total == Money::ZERO || net == 0 {
            if in_flight || (assessed && flows.paid.total == Money::ZERO) {
                return CoverageState::Pending;
            }
            // A failed proxy application whose money went back to the
            // personal account is money returned to its source too.
            return if flows.paid.total == Money::ZERO && flows.proxy_returned_fen == 0 {
                CoverageState::RegisteredUnpaid
            } else {
                CoverageState::RefundedToSource
            };
        }
        self.money_state(input, net, in_flight, assessed)
    }

    fn money_state(&mut self, input: &StateInput, net: i64, in_flight: bool, assessed: bool) -> CoverageState {
        if let Some(settled) = input.walk.settled {
            return if net > settled.premium_due.fen() { CoverageState::Overpaid } else { CoverageState::Received };
        }
        if input.premium_due.is_some_and(|due| net > due.fen()) {
            return CoverageState::Overpaid;
        }
        if input.awaiting {
            return CoverageState::AwaitingPolicy;
        }
        if in_flight {
            return CoverageState::Pending;
        }
        let flows = input.flows;
        let own_share_paid = input.amount_due.is_some_and(|share| flows.own_net_fen >= share.fen());
        if own_share_paid && flows.granted_net_fen < input.subsidy_due.fen() {
            let missing = shortfall(input.subsidy_due.fen(), flows.granted_net_fen);
            self.notes.add(|| format!("the person's share is paid; awaiting {missing} of hardship subsidy"));
            return CoverageState::Pending;
        }
        if assessed && flows.own_net_fen == 0 {
            self.notes.add(|| "the assessment awaits the person's payment".to_string());
            return CoverageState::Pending;
        }
        CoverageState::PartiallyPaid
    }

    /// Why the person-year is void: a PreRegistrationVoided fact, or (asked
    /// as of a date) a pre-registration not converted and not paid within
    /// the lapse window from birth (出生后3个月内未缴费的,预参保登记信息作废).
    /// One paid in time but still unconverted after the window is not void:
    /// it is noted as overdue for the household registration.
    pub(super) fn void_reason(&mut self, coverage: &Coverage) -> Option<String> {
        if let Some(on) = self.person.voided_on {
            return Some(format!("pre-registration voided on {on}"));
        }
        let as_of = self.as_of?;
        let (void_from, paid_in_time) = self.pre_registration_window(coverage)?;
        if as_of < void_from {
            return None;
        }
        if paid_in_time {
            // 已预参保登记并缴费的新生儿应及时在出生三个月内办理户籍登记: paid,
            // still without a resident ID once the window has passed.
            self.notes.add(|| {
                format!(
                    "paid as a pre-registered newborn, still without a resident ID on {as_of}: the household \
                     registration was due before {void_from} (已预参保登记并缴费的新生儿应及时在出生三个月内办理户籍登记)"
                )
            });
            return None;
        }
        // The void day, not the birth date: the card shows the ID masked.
        Some(format!("pre-registration lapsed: not paid within the window from birth (void from {void_from})"))
    }

    /// For a pre-registered newborn not yet converted: the first day after
    /// the window the policy gives, and whether money came in before it.
    fn pre_registration_window(&self, coverage: &Coverage) -> Option<(Date, bool)> {
        let registration = self.person.registration.as_ref()?;
        let converted = !self.person.former.is_empty();
        if registration.basis != EnrolmentBasis::NewbornPreRegistration || converted {
            return None;
        }
        let birth_year = u16::try_from(registration.birth_date.year()).ok();
        let void_from = [birth_year, Some(self.coverage_year)]
            .into_iter()
            .flatten()
            .filter_map(|year| coverage.policies.find(registration.region, year))
            .find_map(|entry| entry.policy.pre_registration_void_from(registration.birth_date))?;
        let paid_in_time = self.person.years.iter().flat_map(|y| &y.contributions).any(|c| c.on < void_from);
        Some((void_from, paid_in_time))
    }
}

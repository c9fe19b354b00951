//! Folding one envelope into the family projection. Never panics and never
//! refuses: what the decision would have refused (a step the lifecycle does
//! not allow, a fact about an unknown application) is noted and ignored.

use super::{lifecycle, AccountRefund, Application, Binding, BindingPeriod, Family, ProxyStep, StepRecord};
use ledger::event::{FamilyBindingCreated, FamilyBindingRevoked, ProxySubmitted, RefundDestination, RefundIssued};
use ledger::{BeijingTime, Envelope, Event, Money};

/// What a step event carries beyond its application and time.
struct StepFact<'a> {
    application_id: &'a str,
    step: ProxyStep,
    at: BeijingTime,
    reason: Option<&'a str>,
    amount: Option<Money>,
}

impl Family {
    pub(super) fn fold(&mut self, envelope: &Envelope) {
        let position = envelope.head.position;
        match &envelope.event {
            Event::FamilyBindingCreatedV1(e) => self.on_bound(e, position),
            Event::FamilyBindingRevokedV1(e) => self.on_revoked(e, position),
            Event::ProxySubmittedV1(e) => self.on_submitted(e, position),
            Event::ProxyProcessingV1(e) => self.on_step(
                StepFact {
                    application_id: &e.application_id,
                    step: ProxyStep::Processing,
                    at: e.at,
                    reason: None,
                    amount: None,
                },
                position,
            ),
            Event::ProxyCreditedV1(e) => self.on_step(
                StepFact {
                    application_id: &e.application_id,
                    step: ProxyStep::Credited,
                    at: e.at,
                    reason: None,
                    amount: None,
                },
                position,
            ),
            Event::ProxyFailedV1(e) => self.on_step(
                StepFact {
                    application_id: &e.application_id,
                    step: ProxyStep::Failed,
                    at: e.at,
                    reason: Some(&e.reason),
                    amount: None,
                },
                position,
            ),
            Event::ProxyReturnedV1(e) => self.on_step(
                StepFact {
                    application_id: &e.application_id,
                    step: ProxyStep::Returned,
                    at: e.at,
                    reason: None,
                    amount: Some(e.amount),
                },
                position,
            ),
            Event::RefundIssuedV1(e) => self.on_refund(e, position),
            _ => {}
        }
    }

    /// A binding while one is active is ignored (the decision refuses a
    /// different one and treats the same one as a repeat).
    fn on_bound(&mut self, e: &FamilyBindingCreated, position: u64) {
        let key = (e.holder.clone(), e.member.clone());
        let binding = self.bindings.entry(key).or_insert_with(|| Binding {
            holder: e.holder.clone(),
            member: e.member.clone(),
            periods: Vec::new(),
        });
        if binding.is_active() {
            let note = format!(
                "binding of {} to {} at position {position} while already bound: ignored",
                e.member.masked(),
                e.holder.masked()
            );
            self.note(note);
            return;
        }
        binding.periods.push(BindingPeriod {
            relation: e.relation,
            account_province: e.account_province,
            bound_on: e.bound_on,
            bound_position: position,
            revoked_on: None,
            revoked_position: None,
        });
    }

    fn on_revoked(&mut self, e: &FamilyBindingRevoked, position: u64) {
        let period = self
            .bindings
            .get_mut(&(e.holder.clone(), e.member.clone()))
            .and_then(|b| b.periods.last_mut())
            .filter(|p| p.revoked_on.is_none());
        match period {
            Some(period) => {
                period.revoked_on = Some(e.revoked_on);
                period.revoked_position = Some(position);
            }
            None => {
                let note = format!(
                    "revocation at position {position} of {} by {}: no active binding, ignored",
                    e.member.masked(),
                    e.holder.masked()
                );
                self.note(note);
            }
        }
    }

    fn on_submitted(&mut self, e: &ProxySubmitted, position: u64) {
        if self.applications.contains_key(&e.application_id) {
            self.note(format!(
                "proxy application {} submitted again at position {position}: ignored",
                e.application_id
            ));
            return;
        }
        let application = Application {
            application_id: e.application_id.clone(),
            holder: e.holder.clone(),
            member: e.member.clone(),
            coverage_year: e.coverage_year,
            amount: e.amount,
            submitted_at: e.at,
            submitted_position: position,
            state: super::ProxyState::Submitted,
            steps: Vec::new(),
            refunds: Vec::new(),
        };
        self.applications.insert(e.application_id.clone(), application);
    }

    fn on_step(&mut self, fact: StepFact<'_>, position: u64) {
        let Some(application) = self.applications.get_mut(fact.application_id) else {
            self.note(format!("{} for unknown proxy application {} ignored", fact.step, fact.application_id));
            return;
        };
        let next = match lifecycle::next(application.state, fact.step) {
            Ok(next) => next,
            Err(illegal) => {
                let note =
                    format!("proxy application {} at position {position}: {illegal}; ignored", fact.application_id);
                self.note(note);
                return;
            }
        };
        application.state = next;
        application.steps.push(StepRecord {
            step: fact.step,
            at: fact.at,
            position,
            reason: fact.reason.map(str::to_string),
            amount: fact.amount,
        });
        if let Some(returned) = fact.amount.filter(|&returned| returned != application.amount) {
            let amount = application.amount;
            let note = format!(
                "proxy application {}: returned {returned}, not the {amount} taken from the account; the account counts {amount}",
                fact.application_id
            );
            self.note(note);
        }
    }

    /// A refund of a credited proxy payment to the personal account; never
    /// more than what is left of it, each refund reference once.
    fn on_refund(&mut self, e: &RefundIssued, position: u64) {
        let RefundDestination::PersonalAccount(_) = &e.destination else { return };
        let Some(application) = self.applications.get_mut(&e.payment.channel_ref) else { return };
        if application.state != super::ProxyState::Credited || application.coverage_year != e.coverage_year {
            return;
        }
        let seen = application.refunds.iter().any(|r| r.refund_ref == e.refund_ref && r.channel == e.payment.channel);
        if seen {
            return;
        }
        let left = application.amount.saturating_sub(application.refunded());
        application.refunds.push(AccountRefund {
            refund_ref: e.refund_ref.clone(),
            channel: e.payment.channel.clone(),
            amount: e.amount.min(left),
            position,
        });
    }
}

//! Folding one envelope into the per-person state. Never panics on any log
//! content: facts about unknown persons create an unregistered record,
//! steps of unknown proxy applications become notes.

use super::policies::PolicyRecord;
use super::state::{
    fingerprint, Assessed, Contribution, Destination, Grant, PersonId, PersonState, ProxyApplication, ProxyState,
    Refund, Source, YearState, PROXY_CHANNEL,
};
use super::{Coverage, Refusal};
use crate::family::{lifecycle, ProxyStep};
use crate::policy::Policy;
use ledger::event::{
    HardshipAssessed, HardshipCertified, IdentityConverted, Payer, PaymentReceived, PersonRegistered, ProxySubmitted,
    RefundDestination, RefundIssued, SubsidyGranted,
};
use ledger::{BeijingTime, Date, Envelope, Event, Identity, RegionCode};

impl Coverage {
    pub(super) fn fold(&mut self, envelope: &Envelope) {
        let position = envelope.head.position;
        match &envelope.event {
            Event::PolicyPublishedV1(e) => {
                self.on_policy(e.region, e.coverage_year, &e.document, &e.source, position, "published")
            }
            Event::PolicyAmendedV1(e) => {
                self.on_policy(e.region, e.coverage_year, &e.document, &e.source, position, "amended")
            }
            Event::PersonRegisteredV1(e) => self.on_registered(e),
            Event::IdentityConvertedV1(e) => self.on_converted(e),
            Event::PreRegistrationVoidedV1(e) => {
                let id = self.person_id(&e.person);
                self.person_mut(id).voided_on = Some(e.voided_on);
            }
            Event::HardshipCertifiedV1(e) => self.on_certified(e),
            Event::HardshipAssessedV1(e) => self.on_assessed(e, position),
            Event::PaymentReceivedV1(e) => self.on_payment(e, position),
            Event::SubsidyGrantedV1(e) => self.on_grant(e, position),
            Event::RefundIssuedV1(e) => self.on_refund(e, position),
            Event::ProxySubmittedV1(e) => self.on_proxy_submitted(e),
            Event::ProxyProcessingV1(e) => self.on_proxy_step(&e.application_id, ProxyStep::Processing, e.at, position),
            Event::ProxyCreditedV1(e) => self.on_proxy_step(&e.application_id, ProxyStep::Credited, e.at, position),
            Event::ProxyFailedV1(e) => self.on_proxy_step(&e.application_id, ProxyStep::Failed, e.at, position),
            Event::ProxyReturnedV1(e) => self.on_proxy_step(&e.application_id, ProxyStep::Returned, e.at, position),
            Event::FamilyBindingCreatedV1(_)
            | Event::FamilyBindingRevokedV1(_)
            | Event::ReconciliationRecordedV1(_) => {}
        }
    }

    /// A person's record for a change, noted when tracking is on.
    fn person_mut(&mut self, id: PersonId) -> &mut PersonState {
        self.mark_touched(id);
        &mut self.persons[id as usize]
    }

    /// Every change of a person passes here, before it is made: the
    /// answers kept under each identity they had go too.
    fn mark_touched(&mut self, id: PersonId) {
        if let Some(person) = self.persons.get(id as usize) {
            self.lookups.forget(std::iter::once(&person.current).chain(&person.former));
        }
        if let Some(touched) = &mut self.touched {
            touched.insert(id);
        }
    }

    /// The person an identity names, created unregistered if unknown.
    fn person_id(&mut self, identity: &Identity) -> PersonId {
        if let Some(&id) = self.ids.get(identity) {
            return self.live(id);
        }
        let id = PersonId::try_from(self.persons.len()).unwrap_or(PersonId::MAX);
        self.persons.push(PersonState::new(identity.clone()));
        self.ids.insert(identity.clone(), id);
        self.mark_touched(id);
        id
    }

    fn year_mut(&mut self, identity: &Identity, coverage_year: u16) -> &mut YearState {
        let id = self.person_id(identity);
        self.person_mut(id).year_mut(coverage_year)
    }

    /// The latest document for a region-year wins; one that does not parse
    /// is refused (a note) and the one in force stays.
    fn on_policy(&mut self, region: RegionCode, year: u16, document: &str, source: &str, position: u64, verb: &str) {
        match Policy::from_document(region, year, document) {
            Ok(policy) => {
                let record = PolicyRecord {
                    region,
                    coverage_year: year,
                    document: document.to_string(),
                    source: source.to_string(),
                    position,
                    n_amendments: 0,
                };
                self.policies.install(policy, record);
                // Every answer was derived against the policies before.
                self.lookups.forget_all();
            }
            Err(error) => {
                self.ledger_note(format!("policy {region}/{year} {verb} at position {position} not applied: {error}"))
            }
        }
    }

    /// Registration (again): the latest wins, and a re-registration after a
    /// void pre-registration (重新办理参保登记) lifts the void.
    fn on_registered(&mut self, e: &PersonRegistered) {
        let id = self.person_id(&e.person);
        let person = self.person_mut(id);
        person.registration = Some(super::state::Registration {
            name: e.name.clone().into_boxed_str(),
            region: e.region,
            birth_date: e.birth_date,
            registered_on: e.registered_on,
            basis: e.basis.clone(),
        });
        person.voided_on = None;
    }

    /// The identity changes, the person does not: both IDs find the person,
    /// and facts already recorded under the new ID join the person's.
    fn on_converted(&mut self, e: &IdentityConverted) {
        let from = self.ids.get(&e.from).map(|&id| self.live(id));
        let to = self.ids.get(&e.to).map(|&id| self.live(id));
        match (from, to) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => self.merge(b, a, e),
            (Some(a), None) => {
                self.ids.insert(e.to.clone(), a);
                rename(self.person_mut(a), &e.to);
            }
            (None, Some(b)) => {
                self.ids.insert(e.from.clone(), b);
                let person = self.person_mut(b);
                person.former.push(e.from.clone());
                let note =
                    format!("{} converted to {} before anything was recorded under it", e.from.masked(), e.to.masked());
                self.ledger_note(note);
            }
            (None, None) => {
                let id = self.person_id(&e.to);
                self.ids.insert(e.from.clone(), id);
                self.person_mut(id).former.push(e.from.clone());
            }
        }
    }

    /// Moves the facts of `source` (known under the new ID) into `target`
    /// (known under the old one), which takes the new ID. The formal
    /// registration (under the new ID) wins over the pre-registration.
    fn merge(&mut self, source: PersonId, target: PersonId, e: &IdentityConverted) {
        let mut taken = PersonState::new(e.to.clone());
        std::mem::swap(&mut taken, self.person_mut(source));
        self.person_mut(source).merged_into = Some(target);
        let mut identities = taken.former.clone();
        identities.push(taken.current.clone());
        self.mark_touched(target);
        let person = &mut self.persons[target as usize];
        let registration = taken.registration.take();
        person.absorb(taken);
        if registration.is_some() {
            person.registration = registration;
        }
        rename(person, &e.to);
        for identity in identities {
            if identity != e.to && !person.former.contains(&identity) {
                person.former.push(identity.clone());
            }
            self.ids.insert(identity, target);
        }
        self.ledger_note(format!(
            "{} converted to {}, which already had facts: merged into one person",
            e.from.masked(),
            e.to.masked()
        ));
    }

    fn on_certified(&mut self, e: &HardshipCertified) {
        let extra = self.year_mut(&e.person, e.coverage_year).extra_mut();
        if !extra.hardship_groups.iter().any(|g| **g == *e.group) {
            extra.hardship_groups.push(e.group.clone().into_boxed_str());
        }
    }

    /// An assessment the rules refuse (the special path closed) is kept as
    /// a note, not applied; the latest accepted one is in force.
    fn on_assessed(&mut self, e: &HardshipAssessed, position: u64) {
        let id = self.person_id(&e.person);
        let refusal = self.assessment_refusal(id, e);
        let year = self.person_mut(id).year_mut(e.coverage_year);
        match refusal {
            Some(refusal) => year.note(format!(
                "assessment of {} (group {}, person owes {}) refused, not applied: {}",
                e.assessed_on, e.group, e.amount_due, refusal.reason
            )),
            None => {
                year.extra_mut().assessment = Some(Assessed {
                    group: e.group.clone().into_boxed_str(),
                    subsidy: e.subsidy,
                    amount_due: e.amount_due,
                    on: e.assessed_on,
                    position,
                });
            }
        }
    }

    /// The same (channel, channel_ref) twice is one payment: the second fact
    /// is noted and never counted (the log's idempotency key normally keeps
    /// it out; an explicit key can let it in).
    fn on_payment(&mut self, e: &PaymentReceived, position: u64) {
        let id = self.person_id(&e.person);
        let person = self.person_mut(id);
        let key = fingerprint(&e.channel, &e.channel_ref);
        if let Some((year, first)) = person.has_contribution(key) {
            person.year_mut(e.coverage_year).note(format!(
                "duplicate payment fact {}/{} at position {position} not counted: recorded at position {first} (year {year})",
                e.channel, e.channel_ref
            ));
            return;
        }
        let source = match e.payer {
            Payer::Myself => Source::Myself,
            Payer::Other(_) => Source::Other,
            Payer::Collector(_) => Source::Collector,
        };
        let contribution =
            Contribution { fingerprint: key, amount: e.amount, on: e.paid_at.business_date(), source, position };
        person.year_mut(e.coverage_year).contributions.push(contribution);
    }

    fn on_grant(&mut self, e: &SubsidyGranted, position: u64) {
        let grant = Grant {
            group: e.group.clone().into_boxed_str(),
            parts: e.parts.iter().map(|p| (p.funder.clone(), p.amount)).collect(),
            on: e.granted_on,
            position,
        };
        self.year_mut(&e.person, e.coverage_year).extra_mut().grants.push(grant);
    }

    fn on_refund(&mut self, e: &RefundIssued, position: u64) {
        let year = self.year_mut(&e.person, e.coverage_year);
        let repeated = year.extra().is_some_and(|extra| {
            extra.refunds.iter().any(|r| *r.refund_ref == *e.refund_ref && *r.channel == *e.payment.channel)
        });
        if repeated {
            year.note(format!("duplicate refund fact {} at position {position} not counted", e.refund_ref));
            return;
        }
        let destination = match e.destination {
            RefundDestination::OriginalChannel => Destination::Channel,
            RefundDestination::PersonalAccount(_) => Destination::PersonalAccount,
            RefundDestination::Funders => Destination::Funders,
        };
        year.extra_mut().refunds.push(Refund {
            refund_ref: e.refund_ref.clone().into_boxed_str(),
            channel: e.payment.channel.clone().into_boxed_str(),
            channel_ref: e.payment.channel_ref.clone().into_boxed_str(),
            amount: e.amount,
            destination,
            on: e.refunded_at.business_date(),
            position,
        });
    }

    fn on_proxy_submitted(&mut self, e: &ProxySubmitted) {
        if self.proxies.contains_key(e.application_id.as_str()) {
            self.ledger_note(format!("proxy application {} submitted again: ignored", e.application_id));
            return;
        }
        let id = self.person_id(&e.member);
        self.proxies.insert(e.application_id.clone().into_boxed_str(), (id, e.coverage_year));
        let application = ProxyApplication {
            application_id: e.application_id.clone().into_boxed_str(),
            amount: e.amount,
            submitted_on: e.at.business_date(),
            status: ProxyState::Submitted,
        };
        self.person_mut(id).year_mut(e.coverage_year).extra_mut().proxies.push(application);
    }

    /// 受理中 / 缴费到账成功 / 受理失败 / 原渠道返还. Only 缴费到账成功 pays
    /// the premium; a return after a failure moves no premium money.
    fn on_proxy_step(&mut self, application_id: &str, step: ProxyStep, at: BeijingTime, position: u64) {
        let Some(&(id, coverage_year)) = self.proxies.get(application_id) else {
            self.ledger_note(format!("{step} for unknown proxy application {application_id} ignored"));
            return;
        };
        let id = self.live(id);
        let year = self.person_mut(id).year_mut(coverage_year);
        let Some(index) =
            year.extra().and_then(|extra| extra.proxies.iter().position(|p| *p.application_id == *application_id))
        else {
            year.note(format!("{step} for proxy application {application_id} not found in the year: ignored"));
            return;
        };
        proxy_transition(year, index, step, at.business_date(), position);
    }

    /// The rule check shared by the CLI (before appending) and the fold
    /// (which records a refused assessment as a note).
    pub(super) fn assessment_refusal(&self, id: PersonId, e: &HardshipAssessed) -> Option<Refusal> {
        let person = self.persons.get(id as usize)?;
        let region = person.registration.as_ref()?.region;
        let policy = &self.policies.find(region, e.coverage_year)?.policy;
        let individual = policy.premium().individual;
        if e.subsidy > individual {
            return Some(Refusal {
                reason: format!(
                    "subsidy {} is above the {} individual standard {individual} (资助数额不超过年度个人缴费标准)",
                    e.subsidy, e.coverage_year
                ),
            });
        }
        if !policy.special_path_closes_after_normal_payment() {
            return None;
        }
        let normal = normal_path_payment(person.year(e.coverage_year)?)?;
        Some(Refusal {
            reason: format!(
                "{} paid {} for {} through the normal path on {}: the special path is closed for the year \
                 (一旦按正常模块办理缴费,将无法再办理特殊缴费)",
                person.current.masked(),
                normal.amount,
                e.coverage_year,
                normal.on
            ),
        })
    }
}

/// The first payment made through the normal path: one recorded while no
/// accepted assessment was in force (payments after an assessment are the
/// special path's).
pub(super) fn normal_path_payment(year: &YearState) -> Option<&Contribution> {
    let assessed_at = year.extra().and_then(|e| e.assessment.as_ref()).map(|a| a.position);
    year.contributions.iter().find(|c| assessed_at.is_none_or(|at| c.position < at))
}

fn rename(person: &mut PersonState, to: &Identity) {
    if person.current != *to {
        let old = std::mem::replace(&mut person.current, to.clone());
        if !person.former.contains(&old) {
            person.former.push(old);
        }
    }
}

/// 受理中 / 缴费到账成功 / 受理失败 / 原渠道返还, by the lifecycle's one
/// table; a step it refuses (the log may hold one under an explicit key) is
/// noted and ignored. Only 缴费到账成功 pays the premium; a return after a
/// failure moves no premium money.
fn proxy_transition(year: &mut YearState, index: usize, step: ProxyStep, on: Date, position: u64) {
    let application = &mut year.extra_mut().proxies[index];
    let (id, amount) = (application.application_id.clone(), application.amount);
    match lifecycle::next(application.status, step) {
        Ok(next) => application.status = next,
        Err(illegal) => {
            year.note(format!("proxy application {id}: {illegal}; ignored"));
            return;
        }
    }
    match step {
        ProxyStep::Credited => year.contributions.push(Contribution {
            fingerprint: fingerprint(PROXY_CHANNEL, &id),
            amount,
            on,
            source: Source::Proxy,
            position,
        }),
        ProxyStep::Returned => year.note(format!(
            "proxy application {id} failed; {amount} went back to the personal account (原渠道自动返还): no premium was paid"
        )),
        ProxyStep::Processing | ProxyStep::Failed => {}
    }
}

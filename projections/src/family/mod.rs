//! 职工医保个人账户家庭共济: the family-account projection. Who bound whom
//! (共济绑定, 取消授权), every proxy application (代缴申请) and where it
//! stands, and each employee's personal account as the applications moved
//! it (debited, returned, net, per coverage year).
//!
//! * `lifecycle`: the one transition table of an application.
//! * `fold`: envelopes into state; never panics, never refuses (a step the
//!   table does not allow is noted and ignored: the log may hold one).
//! * `decide`: whether a new fact may be recorded (bindings, applications,
//!   steps, refunds of any payment), over this projection and the coverage
//!   projection; the CLI asks it before appending, imports ask it for each
//!   line against the log plus the file's earlier lines (`check_batch`).
//! * `refund`: where a refund goes back to (the payment's source), the one
//!   rule the decision checks and the refund operation builds from.
//! * `checkpoint`: the state saved and loaded, caught up from the log.
//! * `subset`: a few bindings and applications read back from the person
//!   store (kept there per binding and application), folded and answered
//!   as the whole.
//!
//! Decisions:
//! * The personal account is debited when an application is submitted
//!   (申请成功); a failed application's money comes back with 原渠道返还,
//!   and a refund of a credited proxy payment comes back to the account
//!   too. So net = credited − refunded + in flight + failed awaiting return.
//! * A binding is a run of periods: bound, revoked, bound again.

mod batch;
mod checkpoint;
mod decide;
mod fold;
pub mod lifecycle;
mod refund;
mod subset;

pub use batch::{check_batch, relevant, BatchRefusal};
pub use checkpoint::CHECKPOINT_FORMAT_VERSION;
pub use decide::{
    assessment, decide, is_decided, parse_relation, relation_label, relation_name, stuck, Refusal, StuckApplication,
    Verdict, RELATIONS,
};
pub use lifecycle::{IllegalTransition, ProxyState, ProxyStep};
pub use refund::refund_destination;
pub use subset::{Keys, Notes};

use crate::{Projection, Tip};
use ledger::event::Relation;
use ledger::{BeijingTime, Date, Envelope, Hash, Identity, Money, RegionCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most ledger-wide notes kept; later ones are counted.
const MAX_NOTES: usize = 1_000;

/// The family-account projection. Its state is small (family facts are
/// few), but rebuilding it scans and decodes every record of the log (about
/// two million a second), so it is kept in a checkpoint and caught up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Family {
    /// The last record folded.
    tip: Tip,
    /// By (holder, member).
    bindings: BTreeMap<(Identity, Identity), Binding>,
    /// By application id.
    applications: BTreeMap<String, Application>,
    notes: Vec<String>,
    n_notes_dropped: u64,
}

/// 共济绑定 of one family member to one employee's personal account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// 授权人 / 主绑人: the employee whose account pays.
    pub holder: Identity,
    /// 共济对象: the family member.
    pub member: Identity,
    /// Oldest first; only the last can be active.
    pub periods: Vec<BindingPeriod>,
}

/// From a binding to its revocation (or until now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingPeriod {
    pub relation: Relation,
    /// Province of the employee personal account.
    pub account_province: RegionCode,
    pub bound_on: Date,
    pub bound_position: u64,
    /// 取消授权.
    pub revoked_on: Option<Date>,
    pub revoked_position: Option<u64>,
}

impl Binding {
    /// The latest period (a binding always has one).
    pub fn current(&self) -> Option<&BindingPeriod> {
        self.periods.last()
    }

    /// Bound now (not revoked since the last binding).
    pub fn is_active(&self) -> bool {
        self.current().is_some_and(|p| p.revoked_on.is_none())
    }

    /// The period in force on `date`: bound on or before it, not revoked
    /// on or before it.
    pub fn period_on(&self, date: Date) -> Option<&BindingPeriod> {
        self.periods.iter().rev().find(|p| p.bound_on <= date && p.revoked_on.is_none_or(|revoked| date < revoked))
    }
}

/// 代缴申请: one proxy payment from a personal account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub application_id: String,
    pub holder: Identity,
    pub member: Identity,
    pub coverage_year: u16,
    pub amount: Money,
    pub submitted_at: BeijingTime,
    pub submitted_position: u64,
    pub state: ProxyState,
    /// The steps after submission, in log order.
    pub steps: Vec<StepRecord>,
    /// Refunds of the credited payment back to the personal account.
    pub refunds: Vec<AccountRefund>,
}

/// One step of an application, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: ProxyStep,
    pub at: BeijingTime,
    pub position: u64,
    /// 受理失败's reason.
    pub reason: Option<String>,
    /// 原渠道返还's amount.
    pub amount: Option<Money>,
}

/// A refund of a credited proxy payment to the personal account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRefund {
    pub refund_ref: String,
    pub channel: String,
    /// As applied: never more than what was left of the payment.
    pub amount: Money,
    pub position: u64,
}

impl Application {
    /// The record of `step`, if it was taken.
    pub fn step(&self, step: ProxyStep) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// When the application last moved.
    pub fn last_moved_at(&self) -> BeijingTime {
        self.steps.last().map_or(self.submitted_at, |s| s.at)
    }

    /// Money back in the account from this application: its return after a
    /// failure, and refunds of its credited payment.
    /// (原渠道返还 gives back the whole amount; a fact saying otherwise is
    /// refused before appending and noted by the fold.)
    pub fn returned(&self) -> Money {
        let returned = if self.state == ProxyState::Returned { self.amount } else { Money::ZERO };
        sum(&[returned, self.refunded()])
    }

    pub fn refunded(&self) -> Money {
        sum(&self.refunds.iter().map(|r| r.amount).collect::<Vec<_>>())
    }
}

/// One coverage year of an employee's personal account, as proxy payments
/// moved it. `net = debited − returned = credited − refunded + in_flight +
/// awaiting_return`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountYear {
    pub coverage_year: u16,
    pub n_applications: u32,
    /// Taken from the account at 申请成功.
    pub debited: Money,
    /// Back in the account: 原渠道返还 and refunds of credited payments.
    pub returned: Money,
    pub net: Money,
    /// 缴费到账成功.
    pub credited: Money,
    /// Of the credited, refunded back to the account.
    pub refunded: Money,
    /// 申请成功 / 受理中.
    pub in_flight: Money,
    /// 受理失败, not yet returned.
    pub awaiting_return: Money,
}

impl Projection for Family {
    fn apply(&mut self, envelope: &Envelope) {
        if self.tip.admits(envelope) {
            self.fold(envelope);
            self.tip.advance(envelope);
        }
    }

    fn position(&self) -> u64 {
        self.tip.position
    }
}

impl Family {
    pub fn new() -> Family {
        Family::default()
    }

    pub fn head_hash(&self) -> Hash {
        self.tip.hash
    }

    pub fn binding(&self, holder: &Identity, member: &Identity) -> Option<&Binding> {
        self.bindings.get(&(holder.clone(), member.clone()))
    }

    /// 授权记录: the bindings the person made, as holder.
    pub fn bindings_as_holder<'a>(&'a self, holder: &'a Identity) -> impl Iterator<Item = &'a Binding> + 'a {
        self.bindings.values().filter(move |b| b.holder == *holder)
    }

    /// 被授权记录: the bindings the person is the member of.
    pub fn bindings_as_member<'a>(&'a self, member: &'a Identity) -> impl Iterator<Item = &'a Binding> + 'a {
        self.bindings.values().filter(move |b| b.member == *member)
    }

    pub fn application(&self, application_id: &str) -> Option<&Application> {
        self.applications.get(application_id)
    }

    pub fn applications(&self) -> impl Iterator<Item = &Application> {
        self.applications.values()
    }

    /// Applications the person made (as holder) or that pay for them.
    pub fn applications_of<'a>(&'a self, person: &'a Identity) -> impl Iterator<Item = &'a Application> + 'a {
        self.applications.values().filter(move |a| a.holder == *person || a.member == *person)
    }

    /// The holder's personal account by coverage year, ascending.
    pub fn account(&self, holder: &Identity) -> Vec<AccountYear> {
        let mut years: BTreeMap<u16, AccountYear> = BTreeMap::new();
        for application in self.applications.values().filter(|a| a.holder == *holder) {
            let year = years
                .entry(application.coverage_year)
                .or_insert_with(|| AccountYear { coverage_year: application.coverage_year, ..AccountYear::default() });
            year.n_applications = year.n_applications.saturating_add(1);
            let amount = application.amount;
            add(&mut year.debited, amount);
            add(&mut year.returned, application.returned());
            match application.state {
                ProxyState::Submitted | ProxyState::Processing => add(&mut year.in_flight, amount),
                ProxyState::Credited => {
                    add(&mut year.credited, amount);
                    add(&mut year.refunded, application.refunded());
                }
                ProxyState::Failed => add(&mut year.awaiting_return, amount),
                ProxyState::Returned => {}
            }
        }
        years
            .into_values()
            .map(|mut year| {
                year.net = year.debited.saturating_sub(year.returned);
                year
            })
            .collect()
    }

    /// Ledger-wide notes: steps the lifecycle refused, facts about unknown
    /// applications or bindings.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn note(&mut self, text: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(text);
        } else {
            self.n_notes_dropped = self.n_notes_dropped.saturating_add(1);
        }
    }
}

fn add(total: &mut Money, amount: Money) {
    *total = total.checked_add(amount).unwrap_or(Money::from_fen(Money::MAX_FEN).unwrap_or(Money::ZERO));
}

fn sum(amounts: &[Money]) -> Money {
    let mut total = Money::ZERO;
    for amount in amounts {
        add(&mut total, *amount);
    }
    total
}

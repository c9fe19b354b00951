//! Laws of proxy payments and refunds over random interleavings, every fact
//! judged by `family::decide` before it is folded (as the CLI and imports
//! do):
//! * the decision accepts exactly the steps of an independent model of the
//!   lifecycle (申请成功 → 受理中 → 缴费到账成功 / 受理失败 → 原渠道返还);
//! * the personal account's net debit is always credited − refunded + in
//!   flight + awaiting return, and once every application has ended it
//!   equals the credited proxy amounts (net of refunds);
//! * refunds never exceed payments: per payment against the model, and in
//!   every person-year view (nothing is ever left unapplied).

mod common;

use common::envelope;
use ledger::event::{
    Event, FamilyBindingCreated, Payer, PaymentReceived, PaymentRef, PersonRegistered, PolicyPublished, ProxyCredited,
    ProxyFailed, ProxyProcessing, ProxyReturned, ProxySubmitted, RefundDestination, RefundIssued, Relation,
};
use ledger::{BeijingTime, Date, Identity, Money, RegionCode};
use projections::coverage::Coverage;
use projections::family::{decide, Family, Verdict};
use projections::Projection;
use proptest::prelude::*;
use std::collections::HashMap;

const BIJIE: &str = include_str!("../../fixtures/policies/bijie-2025.toml");
const YEAR: u16 = 2025;

fn holder() -> Identity {
    "520502197811204159".parse().expect("holder")
}

fn members() -> Vec<Identity> {
    ["520502195205085226", "520502198001156225", "520502198503121233"]
        .iter()
        .map(|id| id.parse().expect("member"))
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Submit {
        application: u8,
        member: usize,
        fen: i64,
    },
    /// 0 processing, 1 credited, 2 failed, 3 returned.
    Step {
        application: u8,
        step: u8,
    },
    Pay {
        member: usize,
        reference: u8,
        fen: i64,
    },
    RefundPayment {
        member: usize,
        reference: u8,
        fen: i64,
    },
    RefundProxy {
        application: u8,
        fen: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let application = 0u8..5;
    let member = 0usize..3;
    let fen = 1i64..60_000;
    prop_oneof![
        3 => (application.clone(), member.clone(), fen.clone())
            .prop_map(|(application, member, fen)| Op::Submit { application, member, fen }),
        6 => (application.clone(), 0u8..4).prop_map(|(application, step)| Op::Step { application, step }),
        2 => (member.clone(), 0u8..3, fen.clone()).prop_map(|(member, reference, fen)| Op::Pay { member, reference, fen }),
        2 => (member, 0u8..3, fen.clone())
            .prop_map(|(member, reference, fen)| Op::RefundPayment { member, reference, fen }),
        2 => (application, fen).prop_map(|(application, fen)| Op::RefundProxy { application, fen }),
    ]
}

fn money(fen: i64) -> Money {
    Money::from_fen(fen).expect("test amount")
}

fn at(minutes: usize) -> BeijingTime {
    let start: BeijingTime = "2024-10-02 09:00:00".parse().expect("time");
    BeijingTime(start.0 + i64::try_from(minutes).expect("small") * 60_000_000)
}

/// The model's view of an application: amount, member, state (0 submitted,
/// 1 processing, 2 credited, 3 failed, 4 returned), refunded fen.
#[derive(Clone, Copy, Debug)]
struct ModelApplication {
    fen: i64,
    member: usize,
    state: u8,
    refunded_fen: i64,
}

/// The ledger under test: both projections, fed only what `decide` allows.
struct Ledger {
    family: Family,
    coverage: Coverage,
    position: u64,
}

impl Ledger {
    fn new() -> Ledger {
        let mut ledger = Ledger { family: Family::new(), coverage: Coverage::new(), position: 0 };
        ledger.fold(Event::PolicyPublishedV1(PolicyPublished {
            region: RegionCode::new(520500).expect("region"),
            coverage_year: YEAR,
            source: "fixture".into(),
            document: BIJIE.into(),
        }));
        for member in members() {
            let birth = member.birth_date().expect("resident IDs carry a birth date");
            ledger.fold(Event::PersonRegisteredV1(PersonRegistered {
                person: member.clone(),
                name: "测试".into(),
                region: RegionCode::new(520502).expect("region"),
                birth_date: Date(birth),
                registered_on: "2024-09-23".parse().expect("date"),
                basis: Default::default(),
            }));
            let binding = Event::FamilyBindingCreatedV1(FamilyBindingCreated {
                holder: holder(),
                account_province: RegionCode::new(520000).expect("province"),
                member,
                relation: Relation::Child,
                bound_on: "2024-10-01".parse().expect("date"),
            });
            assert!(matches!(ledger.offer(binding), Some(Verdict::Append)), "the setup's bindings are allowed");
        }
        ledger
    }

    fn fold(&mut self, event: Event) {
        self.position += 1;
        let envelope = envelope(self.position, event);
        self.family.apply(&envelope);
        self.coverage.apply(&envelope);
    }

    /// Asks the decision; folds the event if it is to be appended.
    fn offer(&mut self, event: Event) -> Option<Verdict> {
        let verdict = decide(&self.family, &self.coverage, &event).ok()?;
        if verdict == Verdict::Append {
            self.fold(event);
        }
        Some(verdict)
    }
}

fn application_id(application: u8) -> String {
    format!("APP-{application}")
}

fn step_event(application: u8, step: u8, minute: usize, fen: i64) -> Event {
    let application_id = application_id(application);
    match step {
        0 => Event::ProxyProcessingV1(ProxyProcessing { application_id, at: at(minute) }),
        1 => Event::ProxyCreditedV1(ProxyCredited { application_id, at: at(minute) }),
        2 => Event::ProxyFailedV1(ProxyFailed { application_id, reason: "test".into(), at: at(minute) }),
        _ => Event::ProxyReturnedV1(ProxyReturned { application_id, amount: money(fen), at: at(minute) }),
    }
}

/// The lifecycle as the sources tell it, written apart from the crate's table.
fn model_next(state: u8, step: u8) -> Option<u8> {
    match (state, step) {
        (0, 0) => Some(1),
        (0 | 1, 1) => Some(2),
        (0 | 1, 2) => Some(3),
        (3, 3) => Some(4),
        _ => None,
    }
}

#[derive(Default)]
struct Model {
    applications: HashMap<u8, ModelApplication>,
    /// (member, reference) → (paid fen, refunded fen).
    payments: HashMap<(usize, u8), (i64, i64)>,
    n_refunds: usize,
}

fn run(ops: &[Op], ledger: &mut Ledger, model: &mut Model) -> Result<(), TestCaseError> {
    let members = members();
    for (index, op) in ops.iter().enumerate() {
        let minute = index * 10 + 10;
        match *op {
            Op::Submit { application, member, fen } => {
                let busy = model.applications.values().any(|a| a.member == member && a.state <= 1);
                let expected = !model.applications.contains_key(&application) && !busy;
                let event = Event::ProxySubmittedV1(ProxySubmitted {
                    application_id: application_id(application),
                    holder: holder(),
                    member: members[member].clone(),
                    coverage_year: YEAR,
                    amount: money(fen),
                    at: at(minute),
                });
                let accepted = ledger.offer(event) == Some(Verdict::Append);
                prop_assert_eq!(accepted, expected, "submission {:?}", op);
                if accepted {
                    model.applications.insert(application, ModelApplication { fen, member, state: 0, refunded_fen: 0 });
                }
            }
            Op::Step { application, step } => {
                let current = model.applications.get(&application).copied();
                let next = current.and_then(|a| model_next(a.state, step));
                let fen = current.map_or(1, |a| a.fen);
                let accepted = ledger.offer(step_event(application, step, minute, fen)) == Some(Verdict::Append);
                prop_assert_eq!(accepted, next.is_some(), "step {} of {:?}", step, current);
                if let (Some(next), Some(a)) = (next, model.applications.get_mut(&application)) {
                    a.state = next;
                }
            }
            Op::Pay { member, reference, fen } => {
                let event = Event::PaymentReceivedV1(PaymentReceived {
                    person: members[member].clone(),
                    coverage_year: YEAR,
                    amount: money(fen),
                    channel: "wechat".into(),
                    channel_ref: format!("M{member}-R{reference}"),
                    payer: Payer::Myself,
                    paid_at: at(minute),
                });
                prop_assert_eq!(ledger.offer(event), Some(Verdict::Append));
                model.payments.entry((member, reference)).or_insert((fen, 0));
            }
            Op::RefundPayment { member, reference, fen } => {
                let left = model.payments.get(&(member, reference)).map(|(paid, refunded)| paid - refunded);
                let expected = left.is_some_and(|left| fen <= left);
                model.n_refunds += 1;
                let event = Event::RefundIssuedV1(RefundIssued {
                    person: members[member].clone(),
                    coverage_year: YEAR,
                    refund_ref: format!("TK{}", model.n_refunds),
                    payment: PaymentRef { channel: "wechat".into(), channel_ref: format!("M{member}-R{reference}") },
                    amount: money(fen),
                    destination: RefundDestination::OriginalChannel,
                    refunded_at: at(minute),
                    reason: "test".into(),
                });
                let accepted = ledger.offer(event) == Some(Verdict::Append);
                prop_assert_eq!(accepted, expected, "refund of a payment {:?} with {:?} left", op, left);
                if let (true, Some(payment)) = (accepted, model.payments.get_mut(&(member, reference))) {
                    payment.1 += fen;
                }
            }
            Op::RefundProxy { application, fen } => {
                let current = model.applications.get(&application).copied();
                let expected = current.is_some_and(|a| a.state == 2 && fen <= a.fen - a.refunded_fen);
                let member = current.map_or(0, |a| a.member);
                model.n_refunds += 1;
                let event = Event::RefundIssuedV1(RefundIssued {
                    person: members[member].clone(),
                    coverage_year: YEAR,
                    refund_ref: format!("TK{}", model.n_refunds),
                    payment: PaymentRef { channel: "proxy".into(), channel_ref: application_id(application) },
                    amount: money(fen),
                    destination: RefundDestination::PersonalAccount(holder()),
                    refunded_at: at(minute),
                    reason: "test".into(),
                });
                let accepted = ledger.offer(event) == Some(Verdict::Append);
                prop_assert_eq!(accepted, expected, "refund of a proxy payment {:?}", current);
                if let (true, Some(a)) = (accepted, model.applications.get_mut(&application)) {
                    a.refunded_fen += fen;
                }
            }
        }
        check_account(ledger, model)?;
    }
    Ok(())
}

/// The account's identities, and agreement with the model.
fn check_account(ledger: &Ledger, model: &Model) -> Result<(), TestCaseError> {
    let years = ledger.family.account(&holder());
    let debited: i64 = model.applications.values().map(|a| a.fen).sum();
    let credited: i64 = model.applications.values().filter(|a| a.state == 2).map(|a| a.fen).sum();
    let refunded: i64 = model.applications.values().map(|a| a.refunded_fen).sum();
    let in_flight: i64 = model.applications.values().filter(|a| a.state <= 1).map(|a| a.fen).sum();
    let awaiting: i64 = model.applications.values().filter(|a| a.state == 3).map(|a| a.fen).sum();
    let year = years.first().cloned().unwrap_or_default();
    prop_assert!(years.len() <= 1);
    prop_assert_eq!(year.debited.fen(), debited);
    prop_assert_eq!(year.credited.fen(), credited);
    prop_assert_eq!(year.refunded.fen(), refunded);
    prop_assert_eq!(year.in_flight.fen(), in_flight);
    prop_assert_eq!(year.awaiting_return.fen(), awaiting);
    prop_assert_eq!(year.net.fen(), year.debited.fen() - year.returned.fen());
    prop_assert_eq!(year.net.fen(), credited - refunded + in_flight + awaiting, "the account's net debit");
    Ok(())
}

fn check_refunds(ledger: &Ledger, model: &Model) -> Result<(), TestCaseError> {
    for (paid, refunded) in model.payments.values() {
        prop_assert!(refunded <= paid, "refunds of a payment never exceed it");
    }
    let mut refunded_in_views = 0i64;
    for member in members() {
        let Some(view) = ledger.coverage.person_year(&member, YEAR).expect("every figure is money") else { continue };
        prop_assert_eq!(view.refunds.unapplied, Money::ZERO, "every refund allowed is applied whole");
        prop_assert!(view.refunds.total <= view.paid.total, "refunds never exceed payments");
        prop_assert_eq!(view.paid.total.fen() - view.refunds.total.fen(), view.net_received.fen());
        refunded_in_views += view.refunds.total.fen();
    }
    let model_refunds: i64 = model.payments.values().map(|(_, r)| r).sum::<i64>()
        + model.applications.values().map(|a| a.refunded_fen).sum::<i64>();
    prop_assert_eq!(refunded_in_views, model_refunds);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn proxy_transitions_and_refunds_keep_the_account_and_payments_whole(
        ops in proptest::collection::vec(op(), 0..60),
        outcomes in proptest::collection::vec(any::<bool>(), 5),
    ) {
        let mut ledger = Ledger::new();
        let mut model = Model::default();
        run(&ops, &mut ledger, &mut model)?;
        check_refunds(&ledger, &model)?;
        // Every application ends: in flight → credited or failed; failed → returned.
        let mut minute = ops.len() * 10 + 100;
        let mut ids: Vec<u8> = model.applications.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(application) = model.applications.get(&id).copied() else { continue };
            let mut steps = Vec::new();
            if application.state <= 1 {
                steps.push(if outcomes[usize::from(id) % outcomes.len()] { 1 } else { 2 });
            }
            if application.state == 3 || steps == [2] {
                steps.push(3);
            }
            for step in steps {
                minute += 10;
                prop_assert_eq!(ledger.offer(step_event(id, step, minute, application.fen)), Some(Verdict::Append));
                if let (Some(next), Some(a)) = (model_next(model.applications[&id].state, step), model.applications.get_mut(&id)) {
                    a.state = next;
                }
            }
        }
        check_account(&ledger, &model)?;
        let account = ledger.family.account(&holder()).first().cloned().unwrap_or_default();
        let credited: i64 = model.applications.values().filter(|a| a.state == 2).map(|a| a.fen - a.refunded_fen).sum();
        prop_assert_eq!(account.net.fen(), credited, "after every application ended, net debit = credited (net of refunds)");
        prop_assert_eq!(account.in_flight, Money::ZERO);
        prop_assert_eq!(account.awaiting_return, Money::ZERO);
        // The coverage projection counts exactly the credited proxy money.
        let by_proxy: i64 = members().iter().filter_map(|m| ledger.coverage.person_year(m, YEAR).expect("every figure is money")).map(|v| v.paid.by_proxy.fen()).sum();
        let credited_gross: i64 = model.applications.values().filter(|a| a.state == 2).map(|a| a.fen).sum();
        prop_assert_eq!(by_proxy, credited_gross);
        check_refunds(&ledger, &model)?;
    }
}

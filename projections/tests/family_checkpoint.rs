//! Checkpoints of the family projection: saved and loaded they equal the
//! folded state, and caught up from a sled log they equal a rebuild from
//! position 1, whatever the log holds (steps the lifecycle refuses and
//! facts about unknown applications included); damaged, foreign, old,
//! missing or diverged ones are named as such, and the remedy is a rebuild.

use ledger::event::{
    Event, FamilyBindingCreated, FamilyBindingRevoked, Payer, PaymentReceived, PaymentRef, PolicyPublished,
    ProxyCredited, ProxyFailed, ProxyProcessing, ProxyReturned, ProxySubmitted, RefundDestination, RefundIssued,
    Relation,
};
use ledger::{BeijingTime, Identity, Money, NewEvent, OpenMode, RegionCode, SledLog};
use projections::checkpoint::CheckpointError;
use projections::coverage::Coverage;
use projections::family::{Family, ProxyState, CHECKPOINT_FORMAT_VERSION};
use projections::Projection;
use proptest::prelude::*;
use std::path::Path;

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
    Bind {
        member: usize,
    },
    Revoke {
        member: usize,
    },
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
        2 => member.clone().prop_map(|member| Op::Bind { member }),
        1 => member.clone().prop_map(|member| Op::Revoke { member }),
        3 => (application.clone(), member.clone(), fen.clone())
            .prop_map(|(application, member, fen)| Op::Submit { application, member, fen }),
        6 => (application.clone(), 0u8..4).prop_map(|(application, step)| Op::Step { application, step }),
        1 => (member, 0u8..3, fen.clone()).prop_map(|(member, reference, fen)| Op::Pay { member, reference, fen }),
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

fn application_id(application: u8) -> String {
    format!("APP-{application}")
}

fn policy() -> Event {
    Event::PolicyPublishedV1(PolicyPublished {
        region: RegionCode::new(520500).expect("region"),
        coverage_year: YEAR,
        source: "fixture".into(),
        document: BIJIE.into(),
    })
}

/// The fact an operation states; `index` makes references unique.
fn event(op: &Op, index: usize) -> Event {
    let members = members();
    let minute = index * 10 + 10;
    match *op {
        Op::Bind { member } => Event::FamilyBindingCreatedV1(FamilyBindingCreated {
            holder: holder(),
            account_province: RegionCode::new(520000).expect("province"),
            member: members[member].clone(),
            relation: Relation::Child,
            bound_on: at(minute).business_date(),
        }),
        Op::Revoke { member } => Event::FamilyBindingRevokedV1(FamilyBindingRevoked {
            holder: holder(),
            member: members[member].clone(),
            revoked_on: at(minute).business_date(),
        }),
        Op::Submit { application, member, fen } => Event::ProxySubmittedV1(ProxySubmitted {
            application_id: application_id(application),
            holder: holder(),
            member: members[member].clone(),
            coverage_year: YEAR,
            amount: money(fen),
            at: at(minute),
        }),
        Op::Step { application, step } => {
            let application_id = application_id(application);
            match step {
                0 => Event::ProxyProcessingV1(ProxyProcessing { application_id, at: at(minute) }),
                1 => Event::ProxyCreditedV1(ProxyCredited { application_id, at: at(minute) }),
                2 => Event::ProxyFailedV1(ProxyFailed { application_id, reason: "test".into(), at: at(minute) }),
                _ => Event::ProxyReturnedV1(ProxyReturned { application_id, amount: money(100), at: at(minute) }),
            }
        }
        Op::Pay { member, reference, fen } => Event::PaymentReceivedV1(PaymentReceived {
            person: members[member].clone(),
            coverage_year: YEAR,
            amount: money(fen),
            channel: "wechat".into(),
            channel_ref: format!("M{member}-R{reference}"),
            payer: Payer::Myself,
            paid_at: at(minute),
        }),
        Op::RefundProxy { application, fen } => Event::RefundIssuedV1(RefundIssued {
            person: members[0].clone(),
            coverage_year: YEAR,
            refund_ref: format!("TK{index}"),
            payment: PaymentRef { channel: "proxy".into(), channel_ref: application_id(application) },
            amount: money(fen),
            destination: RefundDestination::PersonalAccount(holder()),
            refunded_at: at(minute),
            reason: "test".into(),
        }),
    }
}

/// Appends the operations' facts as they are, refused ones included (a log
/// may hold them; the fold notes them). `first` numbers them.
fn append_ops(log: &SledLog, ops: &[Op], first: usize) {
    let events: Vec<NewEvent> = ops
        .iter()
        .enumerate()
        .map(|(offset, op)| {
            let mut new = NewEvent::fact(event(op, first + offset), "test");
            new.idempotency_key = format!("op-{}", first + offset);
            new
        })
        .collect();
    if !events.is_empty() {
        log.append_blocking(events).expect("append");
    }
}

fn append(log: &SledLog, events: Vec<Event>) {
    let events = events.into_iter().map(|event| NewEvent::fact(event, "test")).collect();
    log.append_blocking(events).expect("append");
}

fn rebuilt(log: &SledLog) -> Family {
    let mut family = Family::new();
    family.catch_up(log).expect("rebuild");
    family
}

fn open(dir: &Path) -> SledLog {
    SledLog::open(dir, OpenMode::Create).expect("open log")
}

/// A binding, an application credited and partly refunded, one failed and
/// returned, and two facts the fold notes and ignores.
fn family_ops() -> Vec<Op> {
    vec![
        Op::Bind { member: 0 },
        Op::Bind { member: 1 },
        Op::Submit { application: 1, member: 0, fen: 40_000 },
        Op::Step { application: 1, step: 0 },
        Op::Step { application: 1, step: 1 },
        Op::RefundProxy { application: 1, fen: 10_000 },
        Op::Submit { application: 2, member: 1, fen: 40_000 },
        Op::Step { application: 2, step: 2 },
        Op::Step { application: 2, step: 3 },
        Op::Step { application: 3, step: 1 },
        Op::Revoke { member: 2 },
    ]
}

#[test]
fn a_saved_checkpoint_loads_as_the_folded_state_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("ledger"));
    append(&log, vec![policy()]);
    let ops = family_ops();
    append_ops(&log, &ops, 0);
    let family = rebuilt(&log);
    assert_eq!(family.application("APP-1").map(|a| a.state), Some(ProxyState::Credited));
    assert_eq!(family.notes().len(), 3, "{:?}", family.notes());
    let checkpoint = dir.path().join("family.checkpoint");
    family.save(&checkpoint).expect("save");
    assert!(!dir.path().join("family.checkpoint.tmp").exists(), "the temporary file is renamed");

    let mut loaded = Family::load(&checkpoint).expect("load");
    assert_eq!(loaded, family);
    assert_eq!(loaded.position(), 12);
    assert_eq!(loaded.account(&holder()), family.account(&holder()));

    append_ops(&log, &[Op::Revoke { member: 0 }, Op::Submit { application: 4, member: 2, fen: 100 }], ops.len());
    assert_eq!(loaded.catch_up(&log).expect("catch up"), 2);
    assert_eq!(loaded, rebuilt(&log));
    assert_ne!(loaded, family);
    assert_eq!(loaded.catch_up(&log).expect("nothing new"), 0);
}

#[test]
fn catching_up_to_a_position_stops_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("ledger"));
    append(&log, vec![policy()]);
    append_ops(&log, &family_ops(), 0);
    let mut family = Family::new();
    assert_eq!(family.catch_up_to(&log, 4).expect("to 4"), 4);
    assert_eq!(family.position(), 4);
    assert_eq!(family.application("APP-1").map(|a| a.state), Some(ProxyState::Submitted));
    assert_eq!(family.catch_up_to(&log, 3).expect("already past"), 0);
    assert_eq!(family.position(), 4);
    assert_eq!(family.catch_up_to(&log, 1_000).expect("to the head"), 8);
    assert_eq!(family, rebuilt(&log));
}

#[test]
fn damaged_foreign_old_and_missing_checkpoints_ask_for_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("ledger"));
    append(&log, vec![policy()]);
    append_ops(&log, &family_ops(), 0);
    let path = dir.path().join("family.checkpoint");
    rebuilt(&log).save(&path).expect("save");
    let good = std::fs::read(&path).expect("read");

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&path, &flipped).expect("write");
    let error = Family::load(&path).expect_err("damaged");
    assert!(matches!(error, CheckpointError::Damaged { .. }), "{error}");
    assert!(error.needs_rebuild());

    std::fs::write(&path, &good[..good.len() - 10]).expect("write");
    assert!(matches!(Family::load(&path), Err(CheckpointError::Damaged { .. })));

    let mut old = good.clone();
    old[16..20].copy_from_slice(&(CHECKPOINT_FORMAT_VERSION + 1).to_le_bytes());
    std::fs::write(&path, &old).expect("write");
    let error = Family::load(&path).expect_err("another version");
    assert!(
        matches!(error, CheckpointError::OldFormat { found, expected, .. }
            if found == CHECKPOINT_FORMAT_VERSION + 1 && expected == CHECKPOINT_FORMAT_VERSION),
        "{error}"
    );
    assert!(error.needs_rebuild());

    // A coverage checkpoint is not a family one, nor the other way round.
    let coverage_path = dir.path().join("coverage.checkpoint");
    let mut coverage = Coverage::new();
    coverage.catch_up(&log).expect("coverage");
    coverage.save(&coverage_path).expect("save coverage");
    let error = Family::load(&coverage_path).expect_err("foreign");
    assert!(matches!(error, CheckpointError::NotACheckpoint { kind: "family", .. }), "{error}");
    assert!(error.to_string().contains("is not a family checkpoint"), "{error}");
    assert!(error.needs_rebuild());
    std::fs::write(&path, &good).expect("write");
    let error = Coverage::load(&path).expect_err("foreign");
    assert!(error.to_string().contains("is not a coverage checkpoint"), "{error}");
    std::fs::write(&path, b"").expect("write");
    assert!(matches!(Family::load(&path), Err(CheckpointError::NotACheckpoint { .. })));

    let error = Family::load(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(&error, CheckpointError::Io { .. }) && error.needs_rebuild(), "{error}");

    std::fs::write(&path, &good).expect("write");
    assert_eq!(Family::load(&path).expect("intact"), rebuilt(&log));
}

#[test]
fn a_checkpoint_of_another_log_or_ahead_of_the_log_diverges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(&dir.path().join("first"));
    let second = open(&dir.path().join("second"));
    append(&first, vec![policy()]);
    append_ops(&first, &family_ops()[..2], 0);
    append(&second, vec![policy()]);
    append_ops(&second, &family_ops()[..3], 0);
    let path = dir.path().join("family.checkpoint");
    rebuilt(&first).save(&path).expect("save");
    let mut family = Family::load(&path).expect("load");
    let error = family.catch_up(&second).expect_err("another log: another genesis, other hashes");
    assert!(matches!(error, CheckpointError::Diverged { position: 3, .. }), "{error}");
    assert!(error.needs_rebuild());
    let error = family.catch_up_to(&second, 3).expect_err("checked even with nothing to fold");
    assert!(matches!(error, CheckpointError::Diverged { position: 3, .. }), "{error}");

    let empty = open(&dir.path().join("empty"));
    let error = family.catch_up(&empty).expect_err("ahead");
    assert!(matches!(error, CheckpointError::Diverged { .. }), "{error}");
    assert_eq!(family, rebuilt(&first), "a refused catch-up folds nothing");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_checkpoint_caught_up_equals_a_rebuild(
        ops in proptest::collection::vec(op(), 0..50),
        split in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir.path().join("ledger"));
        append(&log, vec![policy()]);
        let cut = ((ops.len() as f64) * split) as usize;
        let (before, after) = ops.split_at(cut.min(ops.len()));
        append_ops(&log, before, 0);
        let mut live = rebuilt(&log);
        let path = dir.path().join("family.checkpoint");
        live.save(&path).expect("save");
        let mut loaded = Family::load(&path).expect("load");
        prop_assert_eq!(&loaded, &live, "a loaded checkpoint is the state saved");

        append_ops(&log, after, before.len());
        let n_loaded = loaded.catch_up(&log).expect("catch up");
        let n_live = live.catch_up(&log).expect("catch up");
        prop_assert_eq!(n_loaded, after.len() as u64);
        prop_assert_eq!(n_live, after.len() as u64);
        let rebuild = rebuilt(&log);
        prop_assert_eq!(&loaded, &rebuild, "checkpoint + catch-up = rebuild from position 1");
        prop_assert_eq!(&live, &rebuild);
        prop_assert_eq!(loaded.head_hash(), rebuild.head_hash());
        prop_assert_eq!(loaded.account(&holder()), rebuild.account(&holder()));
    }
}

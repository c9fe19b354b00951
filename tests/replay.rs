//! The auditor's replay: the report re-derives every figure from the log,
//! agrees with an independent projection, and gives the same digest however
//! the log was obtained.

use ledger::{NewEvent, OpenMode, SledLog};
use proptest::prelude::*;
use replay::audit;

fn ledger_of(dir: &std::path::Path, seed: u64, persons: u64) -> SledLog {
    let log = SledLog::open(dir, OpenMode::Create).expect("create");
    let facts: Vec<NewEvent> = yibao::generate::facts(seed, persons).map(|e| NewEvent::fact(e, "test")).collect();
    log.append_blocking(facts).expect("append");
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// The report's money equals the sum of its person-years, and the
    /// independent ledger totals (a second projection) agree with it.
    #[test]
    fn report_totals_are_the_sum_of_person_years(seed in 0u64..1_000_000, persons in 50u64..400) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ledger_of(dir.path(), seed, persons);
        let rebuilt = audit::rebuild_as_of(&log, None, &mut |_| {}).expect("rebuild");
        let report = audit::report(&rebuilt, 2021, None, None).expect("every figure is money");
        let years = rebuilt.coverage.person_years(None, 2021, None).expect("every figure is money");
        prop_assert_eq!(report.n_person_years, years.len() as u64);
        let sum = |f: &dyn Fn(&projections::coverage::PersonYear) -> i64| years.iter().map(|(_, y)| f(y)).sum::<i64>();
        prop_assert_eq!(report.received.paid.total.fen(), sum(&|y| y.paid.total.fen()));
        prop_assert_eq!(report.refunded.total.fen(), sum(&|y| y.refunds.total.fen()));
        prop_assert_eq!(report.net.fen(), sum(&|y| y.net_received.fen()));
        prop_assert_eq!(report.net.fen(), report.received.paid.total.fen() - report.refunded.total.fen());
        let n_states: u64 = report.persons_by_state.values().sum();
        prop_assert_eq!(n_states, report.n_person_years);
        let totals = &rebuilt.totals.years[&2021];
        let received_by_totals = totals.paid.fen() + totals.subsidised.fen() + totals.proxy_credited.fen();
        prop_assert_eq!(report.received.paid.total.fen(), received_by_totals);
        prop_assert_eq!(report.refunded.to_channel, totals.refunded_to_channel);
        let subsidies: i64 = report.received.paid.subsidy.values().map(|m| m.fen()).sum();
        prop_assert_eq!(subsidies, report.received.paid.subsidy_total.fen());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3))]

    /// The report and the digest are folded on all cores by partitions of
    /// persons: the same on one thread or several, however many persons
    /// (a few partitions of `PERSONS_PER_PARTITION`, and a ragged last one).
    #[test]
    fn report_and_digest_do_not_depend_on_the_number_of_threads(
        seed in 0u64..1_000_000,
        persons in 4_000u64..13_000,
        threads in 2usize..6,
    ) {
        use projections::coverage::with_threads;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ledger_of(dir.path(), seed, persons);
        let rebuilt = audit::rebuild_as_of(&log, None, &mut |_| {}).expect("rebuild");
        let on = ledger::Date::ymd(2021, 6, 30);
        let alone = with_threads(1, || audit::report(&rebuilt, 2021, None, on)).expect("every figure is money");
        let shared = with_threads(threads, || audit::report(&rebuilt, 2021, None, on)).expect("every figure is money");
        prop_assert!(rebuilt.coverage.n_persons() > projections::coverage::PERSONS_PER_PARTITION);
        prop_assert_eq!(&alone, &shared);
        prop_assert_eq!(with_threads(1, || rebuilt.coverage.digest()), with_threads(threads, || rebuilt.coverage.digest()));
        let years = with_threads(threads, || rebuilt.coverage.person_years(None, 2021, None)).expect("money");
        prop_assert!(years.windows(2).all(|pair| pair[0].1.person < pair[1].1.person), "sorted by identity");
        prop_assert_eq!(years, with_threads(1, || rebuilt.coverage.person_years(None, 2021, None)).expect("money"));
    }
}

#[test]
fn replay_is_deterministic_and_survives_export_and_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = ledger_of(&dir.path().join("original"), 5, 300);
    let first = audit::rebuild_as_of(&log, None, &mut |_| {}).expect("rebuild");
    let second = audit::rebuild_as_of(&log, None, &mut |_| {}).expect("rebuild");
    assert_eq!(first.digest(), second.digest());
    // Export every record and restore it into a fresh ledger.
    let mut records = Vec::new();
    for block in log.blocks_from(1).expect("blocks") {
        let (_, bytes) = block.expect("block");
        let view = ledger::log::block::BlockView::parse(&bytes).expect("parse");
        for record in view.records() {
            let record = record.expect("record");
            let stored = record.body.to_vec();
            records.push(Ok(ledger::log::restore::ExportedRecord {
                position: record.position,
                stored,
                hash: record.hash,
            }));
        }
    }
    let restored_dir = dir.path().join("restored");
    ledger::log::restore::restore(&restored_dir, log.header_bytes(), records).expect("restore");
    let restored = SledLog::open(&restored_dir, OpenMode::Existing).expect("open");
    let third = audit::rebuild_as_of(&restored, None, &mut |_| {}).expect("rebuild");
    assert_eq!(first.digest(), third.digest(), "a restored ledger replays to another state");
    // Fewer facts give another digest: the digest does see the state.
    let partial = audit::rebuild_as_of(&log, Some(ledger::UtcTime(0)), &mut |_| {}).expect("rebuild");
    assert_ne!(first.digest(), partial.digest());
    assert_eq!(partial.n_events, 0);
}

#[test]
fn drift_lists_the_person_years_that_differ() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = ledger_of(dir.path(), 11, 200);
    let full = audit::rebuild_as_of(&log, None, &mut |_| {}).expect("rebuild");
    assert!(audit::drift(&full.coverage, &full.coverage, 2021, None).expect("money").is_empty());
    // A "live" projection that missed the last facts.
    let mut behind = projections::coverage::Coverage::new();
    let head = log.durable_head().position;
    log.scan(1, head - 3, |envelope| {
        projections::Projection::apply(&mut behind, &envelope);
        Ok(())
    })
    .expect("scan");
    let drifts = audit::drift(&behind, &full.coverage, 2021, None).expect("money");
    assert!(!drifts.is_empty(), "a projection three facts behind shows no drift");
    assert!(drifts.iter().all(|d| d.person.contains("****") && !d.fields.is_empty()));
}

/// A log whose facts take a person-year's money beyond what an amount can
/// be (two payments of the largest amount: payments are not judged against
/// the person-year before they are appended) is reported, naming the
/// person-year, with exit 3: the audit never counts the figure as 0.00 and
/// the net received never comes out negative.
#[test]
fn a_person_year_whose_money_is_no_amount_fails_the_replay_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let person = "520502198503121233";
    let largest = ledger::Money::from_fen(ledger::Money::MAX_FEN).expect("the largest amount").to_string();
    let payment = |reference: &str| {
        format!(
            r#"{{"type": "payment_received", "v": 1, "person": "{person}", "coverage_year": 2025, "amount": "{largest}", "channel": "wechat", "channel_ref": "{reference}", "paid_at": "2024-10-05 09:30:12"}}"#
        )
    };
    let facts = [
        format!(
            r#"{{"type": "person_registered", "v": 1, "person": "{person}", "name": "张伟", "region": "520500", "birth_date": "1985-03-12", "registered_on": "2024-09-25"}}"#
        ),
        payment("WX1"),
        payment("WX2"),
    ];
    let file = data.join("facts.jsonl");
    std::fs::write(&file, facts.join("\n") + "\n").expect("write facts");
    let yibao = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_yibao"))
            .arg("--data")
            .arg(data.join("ledger"))
            .args(args)
            .output()
            .expect("run yibao")
    };
    assert_eq!(yibao(&["init"]).status.code(), Some(0));
    let imported = yibao(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(imported.status.code(), Some(0), "{}", String::from_utf8_lossy(&imported.stderr));
    let masked = person.parse::<ledger::Identity>().expect("an ID").masked();
    for extra in [&[][..], &["--json"][..], &["--csv"][..]] {
        let replayed = yibao(&[&["replay", "--year", "2025"][..], extra].concat());
        let stderr = String::from_utf8_lossy(&replayed.stderr);
        assert_eq!(replayed.status.code(), Some(3), "{stderr}");
        assert!(replayed.stdout.is_empty(), "{}", String::from_utf8_lossy(&replayed.stdout));
        assert!(stderr.contains(&format!("person-year {masked} 2025")), "{stderr}");
        assert!(stderr.contains("not an amount of money") && !stderr.contains(person), "{stderr}");
    }
    let log = SledLog::open(&data.join("ledger"), OpenMode::Existing).expect("open");
    let rebuilt = audit::rebuild_as_of(&log, None, &mut |_| {}).expect("rebuild");
    let error = rebuilt.coverage.person_years(None, 2025, None).expect_err("no amount of money");
    assert_eq!((error.person.as_str(), error.coverage_year), (masked.as_str(), 2025));
}

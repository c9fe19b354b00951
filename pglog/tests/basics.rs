//! PostgreSQL specifics beyond the shared conformance suite: the URL named
//! without its password, a missing log, a changed row found by verify.

use ledger::{EventLog, LedgerError, LogReader, LogStore, OpenMode};
use pglog::PgLog;

#[test]
fn a_url_is_named_without_its_password() {
    assert_eq!(
        pglog::redacted("postgres://yibao:secret@db.example:5433/ledger"),
        "postgres://yibao@db.example:5433/ledger"
    );
    assert_eq!(
        pglog::redacted("postgres://yibao:secret@db.example:notaport/ledger"),
        "postgres://yibao@db.example:notaport/ledger"
    );
    let Err(error) = PgLog::open("postgres://yibao:secret@127.0.0.1:notaport/ledger", OpenMode::Existing) else {
        panic!("a URL that does not parse opened")
    };
    let text = error.to_string();
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("postgres://USER"), "says how to write it: {text}");
}

#[test]
fn a_refusing_server_is_named_with_what_to_check() {
    // A port nothing listens on: bind one and drop it.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    let url = format!("postgres://yibao:secret@127.0.0.1:{port}/ledger");
    let Err(error) = PgLog::open(&url, OpenMode::Existing) else { panic!("opened a log where no server runs") };
    let text = error.to_string();
    assert!(matches!(error, LedgerError::Database { .. }), "{error:?}");
    assert!(text.contains(&format!("postgres://yibao@127.0.0.1:{port}/ledger")), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("check that PostgreSQL runs"), "{text}");
}

#[test]
fn opening_a_database_without_a_log_is_not_found() {
    let Some(server) = pgtest::TempPostgres::for_test("opening_a_database_without_a_log_is_not_found") else { return };
    let url = server.create_database("empty");
    for mode in [OpenMode::Existing, OpenMode::Read, OpenMode::Audit] {
        let result = PgLog::open(&url, mode);
        assert!(matches!(result, Err(LedgerError::NotFound(ref location)) if location.ends_with("/empty")), "{mode:?}");
    }
    let log = PgLog::open(&url, OpenMode::Create).expect("create");
    assert_eq!(log.location(), url);
    let ledger_id = log.header().ledger_id;
    drop(log);
    let reopened = PgLog::open(&url, OpenMode::Existing).expect("reopen");
    assert_eq!(reopened.header().ledger_id, ledger_id, "a reopen keeps the header");
}

fn payment_fact(reference: &str, n: u32) -> ledger::NewEvent {
    ledger::conformance::fact(reference, n)
}

#[test]
fn verify_names_a_row_changed_in_the_database() {
    let Some(server) = pgtest::TempPostgres::for_test("verify_names_a_row_changed_in_the_database") else { return };
    let url = server.create_database("tampered");
    let log = PgLog::open(&url, OpenMode::Create).expect("create");
    log.append_blocking((1..=50).map(|n| payment_fact(&format!("v-{n}"), n)).collect()).expect("append");
    assert_eq!(log.verify(0, 0, &mut |_| {}).expect("verify").problem, None);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("a connection");
    // One byte of the stored event (its last) changed behind the ledger's back.
    client
        .execute(
            "UPDATE yibao.records SET stored = set_byte(stored, length(stored) - 1, \
             get_byte(stored, length(stored) - 1) # 1) WHERE position = 37",
            &[],
        )
        .expect("change a row");
    let report = log.verify(0, 0, &mut |_| {}).expect("verify");
    assert_eq!(report.problem.as_ref().map(|p| p.position()), Some(37), "{:?}", report.problem);
    assert_eq!(report.last_good.position, 36);
    // A row taken out leaves a gap that verify names.
    client.execute("DELETE FROM yibao.records WHERE position = 20", &[]).expect("delete a row");
    let report = log.verify(0, 0, &mut |_| {}).expect("verify");
    assert!(
        matches!(report.problem, Some(ledger::log::VerifyProblem::Gap { expected: 20, .. })),
        "{:?}",
        report.problem
    );
}

/// A group's keys are looked up in their index: left alone, the planner
/// scans the whole table for a group of a few thousand keys, and that scan
/// grows with the log. The table's statistics count the scans (sent when
/// the writer's connection closes).
#[test]
fn a_large_group_looks_its_keys_up_in_the_index() {
    let Some(server) = pgtest::TempPostgres::for_test("a_large_group_looks_its_keys_up_in_the_index") else { return };
    let url = server.create_database("lookups");
    let batch = |from: u32| (from..from + 2000).map(|n| payment_fact(&format!("l-{n}"), n)).collect::<Vec<_>>();
    let log = PgLog::open(&url, OpenMode::Create).expect("create");
    log.append_blocking(batch(0)).expect("the first batch");
    drop(log);
    let scans_before = sequential_scans_once_inserted(&url, 2000);
    let log = PgLog::open(&url, OpenMode::Existing).expect("reopen");
    log.append_blocking(batch(2000)).expect("the second batch");
    drop(log);
    let scans_after = sequential_scans_once_inserted(&url, 4000);
    assert_eq!(scans_after, scans_before, "appending 2,000 facts to 2,000 scanned the whole table");
}

/// `yibao.records`' count of sequential scans, once its statistics show
/// `n_inserted` rows inserted.
fn sequential_scans_once_inserted(url: &str, n_inserted: i64) -> i64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("a connection");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let row = client
            .query_one(
                "SELECT coalesce(n_tup_ins, 0), coalesce(seq_scan, 0) FROM pg_stat_user_tables \
                 WHERE schemaname = 'yibao' AND relname = 'records'",
                &[],
            )
            .expect("the table's statistics");
        if row.get::<_, i64>(0) >= n_inserted {
            return row.get(1);
        }
        assert!(std::time::Instant::now() < deadline, "the statistics never showed {n_inserted} rows inserted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Two handles on one database, as two processes (replicas) hold it,
/// appending at once: the advisory lock keeps positions gapless and the
/// chain continuing from the last committed row.
#[test]
fn two_writers_on_one_database_share_one_chain() {
    let Some(server) = pgtest::TempPostgres::for_test("two_writers_on_one_database_share_one_chain") else { return };
    let url = server.create_database("replicas");
    let first = PgLog::open(&url, OpenMode::Create).expect("create");
    let second = PgLog::open(&url, OpenMode::Existing).expect("a second writer");
    std::thread::scope(|scope| {
        for (w, log) in [&first, &second].into_iter().enumerate() {
            for t in 0..4u32 {
                scope.spawn(move || {
                    for k in 0..30u32 {
                        let reference = format!("w{w}-t{t}-{k}");
                        log.append_blocking(vec![payment_fact(&reference, k)]).expect("an append");
                    }
                });
            }
        }
    });
    assert_eq!(first.durable_head(), second.durable_head(), "both see one head");
    assert_eq!(first.durable_head().position, 240);
    let report = second.verify(0, 0, &mut |_| {}).expect("verify");
    assert_eq!((report.problem, report.n_records), (None, 240));
    // The same fact through the other writer answers its original position.
    let again = second.append_blocking(vec![payment_fact("w0-t0-0", 0)]).expect("a repeat");
    assert_eq!(again.n_appended, 0);
}

/// A service's last handle on the log may be dropped on an async worker at
/// shutdown: the pooled connections close without blocking there.
#[test]
fn a_log_dropped_on_an_async_worker_closes_without_panicking() {
    let Some(server) = pgtest::TempPostgres::for_test("a_log_dropped_on_an_async_worker_closes_without_panicking")
    else {
        return;
    };
    let url = server.create_database("dropped");
    drop(PgLog::open(&url, OpenMode::Create).expect("a new log"));
    // A reading open: no writer thread shares the database's handle.
    let log = PgLog::open(&url, OpenMode::Read).expect("the log");
    // A read fills the pool.
    assert_eq!(log.durable_head().position, 0);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(async move { drop(log) });
}

/// A replica's readers share head queries, yet each sees every append
/// acknowledged before it asked: while other threads read the head of a
/// reading handle (a replica) without pause, keeping a query always in
/// flight, an appender's read through that handle right after each
/// acknowledgement is at its position or past it.
#[test]
fn a_head_read_after_an_acknowledged_append_sees_it_on_another_handle() {
    let Some(server) =
        pgtest::TempPostgres::for_test("a_head_read_after_an_acknowledged_append_sees_it_on_another_handle")
    else {
        return;
    };
    let url = server.create_database("heads");
    let writer = PgLog::open(&url, OpenMode::Create).expect("create");
    let replica = PgLog::open(&url, OpenMode::Read).expect("a reading replica");
    let appending = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while appending.load(std::sync::atomic::Ordering::Relaxed) {
                    replica.durable_head();
                }
            });
        }
        for k in 0..100u32 {
            let appended = writer.append_blocking(vec![payment_fact(&format!("h-{k}"), k)]).expect("append");
            let seen = replica.durable_head().position;
            if seen < appended.positions[0] {
                appending.store(false, std::sync::atomic::Ordering::Relaxed);
                panic!("acknowledged at {} but the replica read {seen}", appended.positions[0]);
            }
        }
        appending.store(false, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(replica.durable_head().position, 100);
}

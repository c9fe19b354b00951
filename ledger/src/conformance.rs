//! One conformance suite for every backend of the log (feature
//! `conformance`): appends, gapless positions, the SM3 chain and verify,
//! optimistic concurrency per stream, idempotency, concurrent appenders,
//! reads, probes, export→restore, and a crash (a child process killed with
//! SIGKILL at a random moment). A backend runs it by implementing
//! [`Harness`] and invoking [`conformance_tests!`](crate::conformance_tests)
//! at the root of a test file: the tests have the same names for each.

use crate::envelope::Envelope;
use crate::error::{LedgerError, Result};
use crate::event::{Payer, PaymentReceived};
use crate::log::restore::ExportedRecord;
use crate::log::{ExpectedVersion, Head, LogStore, NewEvent, OpenMode, StoredRecords};
use crate::{BeijingTime, Event, Identity, Money, RegionCode};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

/// What the suite needs of a backend.
pub trait Harness: Sync {
    /// The backend's name, for messages.
    fn name(&self) -> &str;
    /// A new place for a log (a directory, a database) holding none yet.
    fn fresh_place(&self, label: &str) -> String;
    /// Opens the log at `place` (`Create` makes it).
    fn open(&self, place: &str, mode: OpenMode) -> Result<Box<dyn LogStore>>;
    /// Restores exported records into the empty `place`.
    fn restore(&self, place: &str, header_bytes: &[u8], records: StoredRecords<'_>) -> Result<Head>;
    /// Whether several handles may hold one log at once (a database
    /// shared by replicas; a sled directory is locked by its one opener).
    fn shared(&self) -> bool;
}

/// The sled backend's harness: ledgers in directories of a temporary one.
pub struct SledHarness {
    root: tempfile::TempDir,
}

impl SledHarness {
    pub fn new() -> SledHarness {
        SledHarness { root: tempfile::tempdir().expect("a temporary directory") }
    }

    /// Opens the log in the directory `place`, as a crash child does.
    pub fn open_place(place: &str, mode: OpenMode) -> Result<Box<dyn LogStore>> {
        Ok(Box::new(crate::log::SledLog::open(std::path::Path::new(place), mode)?))
    }
}

impl Default for SledHarness {
    fn default() -> SledHarness {
        SledHarness::new()
    }
}

impl Harness for SledHarness {
    fn name(&self) -> &str {
        "sled"
    }

    fn fresh_place(&self, label: &str) -> String {
        let dir = self.root.path().join(label);
        std::fs::create_dir_all(&dir).expect("a ledger directory");
        dir.display().to_string()
    }

    fn open(&self, place: &str, mode: OpenMode) -> Result<Box<dyn LogStore>> {
        SledHarness::open_place(place, mode)
    }

    fn restore(&self, place: &str, header_bytes: &[u8], records: StoredRecords<'_>) -> Result<Head> {
        crate::log::restore::restore(std::path::Path::new(place), header_bytes, records)
    }

    fn shared(&self) -> bool {
        false
    }
}

/// Generates the suite's tests for a backend. `$harness` makes the
/// harness (`None`: the backend is missing, the test skips, having said
/// so); `$open` opens a place (`fn(&str, OpenMode) -> Result<Box<dyn
/// LogStore>>`) in the crash child, which makes no harness. Invoke it at
/// the root of a test file: the crash child is found by its test name.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr, $open:expr) => {
        fn conformance_harness() -> Option<impl $crate::conformance::Harness> {
            $harness
        }

        #[test]
        fn appends_are_gapless_and_chained() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::appends_are_gapless_and_chained(&harness);
        }

        #[test]
        fn expected_versions_are_checked_per_stream() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::expected_versions_are_checked_per_stream(&harness);
        }

        #[test]
        fn idempotent_repeats_answer_the_original_position() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::idempotent_repeats_answer_the_original_position(&harness);
        }

        #[test]
        fn concurrent_appenders_get_distinct_positions() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::concurrent_appenders_get_distinct_positions(&harness);
        }

        #[test]
        fn a_rejected_request_fails_alone() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::a_rejected_request_fails_alone(&harness);
        }

        #[test]
        fn reads_see_what_was_appended() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::reads_see_what_was_appended(&harness);
        }

        #[test]
        fn probes_append_nothing() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::probes_append_nothing(&harness);
        }

        #[test]
        fn export_restores_the_same_chain() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::export_restores_the_same_chain(&harness, &harness);
        }

        #[test]
        fn crash_child_appends_until_killed() {
            $crate::conformance::crash_child($open);
        }

        #[test]
        fn acknowledged_appends_survive_sigkill() {
            let Some(harness) = conformance_harness() else { return };
            $crate::conformance::acknowledged_appends_survive_sigkill(&harness, "crash_child_appends_until_killed");
        }
    };
}

// ---- Facts to append -------------------------------------------------------

fn region() -> RegionCode {
    "520500".parse().expect("a region code")
}

fn person(n: u32) -> Identity {
    let birth = chrono::NaiveDate::from_ymd_opt(1960 + (n % 50) as i32, 1 + n % 12, 1 + n % 28).expect("a date");
    Identity::resident(region(), birth, (n % 1000) as u16)
}

/// A payment by person `n` with the channel reference `reference` (its
/// key is `payment/wechat/<reference>`).
pub fn payment(reference: &str, n: u32) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(n),
        coverage_year: 2025,
        amount: Money::from_yuan(400),
        channel: "wechat".into(),
        channel_ref: reference.to_string(),
        payer: Payer::Myself,
        paid_at: BeijingTime(1_730_000_000_000_000 + i64::from(n)),
    })
}

/// A fact: its own stream and key, no version check.
pub fn fact(reference: &str, n: u32) -> NewEvent {
    NewEvent::fact(payment(reference, n), "conformance")
}

/// A command's event on `stream` with `expected` and the key `key`.
pub fn command(stream: &str, expected: ExpectedVersion, key: &str, n: u32) -> NewEvent {
    NewEvent {
        stream: stream.to_string(),
        expected,
        idempotency_key: key.to_string(),
        actor: "conformance".into(),
        event: payment(&format!("ref-{key}"), n),
    }
}

fn channel_ref(event: &Event) -> Option<&str> {
    match event {
        Event::PaymentReceivedV1(payment) => Some(&payment.channel_ref),
        _ => None,
    }
}

fn all_records(log: &dyn LogStore) -> Vec<Envelope> {
    all_records_between(log, 1, log.durable_head().position)
}

/// Positions 1..=head without a gap, each linked to the one before, the
/// last one the head; verify agrees. The head is read first: on a shared
/// database, the last transaction of a killed child may still commit.
fn assert_chain(log: &dyn LogStore, context: &str) {
    let head = log.durable_head();
    let records = all_records_between(log, 1, head.position);
    let mut prev = log.genesis_hash();
    for (index, envelope) in records.iter().enumerate() {
        assert_eq!(envelope.head.position, index as u64 + 1, "{context}: positions are gapless");
        assert_eq!(envelope.prev_hash, prev, "{context}: position {} links to the one before", index + 1);
        prev = envelope.hash;
    }
    assert_eq!(head.position, records.len() as u64, "{context}: the head is the last record");
    assert_eq!(head.hash, prev, "{context}: the head's hash is the last record's");
    let report = log.verify(1, head.position.max(1), &mut |_| {}).expect("verify");
    assert_eq!(report.problem, None, "{context}: verify");
    assert_eq!(report.n_records, head.position, "{context}: verify checked every record");
    if head.position > 0 {
        assert_eq!(report.last_good, head, "{context}: verify reached the head");
    }
}

fn create(harness: &dyn Harness, label: &str) -> (String, Box<dyn LogStore>) {
    let place = harness.fresh_place(label);
    let log = harness.open(&place, OpenMode::Create).unwrap_or_else(|e| panic!("{}: create: {e}", harness.name()));
    (place, log)
}

// ---- The suite ---------------------------------------------------------------

pub fn appends_are_gapless_and_chained(harness: &dyn Harness) {
    let (place, log) = create(harness, "gapless");
    assert_eq!(log.durable_head(), Head { position: 0, hash: log.genesis_hash() }, "an empty log");
    assert_eq!(log.genesis_hash(), crate::envelope::sm3(log.header_bytes()), "genesis is the header's SM3");
    let first = log.append_blocking(vec![fact("g-1", 1)]).expect("append one");
    assert_eq!((first.positions.clone(), first.n_appended), (vec![1], 1));
    let batch: Vec<NewEvent> = (2..=40).map(|n| fact(&format!("g-{n}"), n)).collect();
    let second = log.append_blocking(batch).expect("append a batch");
    assert_eq!(second.positions, (2..=40).collect::<Vec<u64>>());
    assert_eq!(second.head, log.durable_head(), "the outcome's head is the durable head");
    assert_eq!(second.head.position, 40);
    assert_chain(log.as_ref(), harness.name());
    let records = all_records(log.as_ref());
    assert_eq!(records[0].head.idempotency_key, "payment/wechat/g-1");
    assert_eq!(records[39].head.stream, payment("g-40", 40).stream());
    let header = log.header().clone();
    drop(log);
    let reopened = harness.open(&place, OpenMode::Existing).expect("reopen");
    assert_eq!(reopened.header(), &header, "the header survives a reopen");
    assert_eq!(reopened.durable_head(), second.head, "the head survives a reopen");
    let third = reopened.append_blocking(vec![fact("g-41", 41)]).expect("append after reopening");
    assert_eq!(third.positions, vec![41], "the chain continues after a reopen");
    assert_chain(reopened.as_ref(), harness.name());
}

pub fn expected_versions_are_checked_per_stream(harness: &dyn Harness) {
    let (_, log) = create(harness, "versions");
    let fresh = log.append_blocking(vec![command("order/a", ExpectedVersion::NoStream, "a-1", 1)]).expect("new stream");
    assert_eq!(fresh.positions, vec![1]);
    let again = log.append_blocking(vec![command("order/a", ExpectedVersion::NoStream, "a-2", 2)]);
    assert!(
        matches!(again, Err(LedgerError::WrongExpectedVersion { ref stream, actual: 1, .. }) if stream == "order/a"),
        "{again:?}"
    );
    let stale = log.append_blocking(vec![command("order/a", ExpectedVersion::Exact(0), "a-2", 2)]);
    assert!(matches!(stale, Err(LedgerError::WrongExpectedVersion { actual: 1, .. })), "{stale:?}");
    // Versions count inside a request too: 2 then 3.
    let two = log
        .append_blocking(vec![
            command("order/a", ExpectedVersion::Exact(1), "a-2", 2),
            command("order/a", ExpectedVersion::Exact(2), "a-3", 3),
            command("order/b", ExpectedVersion::NoStream, "b-1", 4),
        ])
        .expect("versions 2 and 3");
    assert_eq!(two.positions, vec![2, 3, 4]);
    // A request whose last event is wrong appends none of its events.
    let partly = log.append_blocking(vec![
        command("order/b", ExpectedVersion::Exact(1), "b-2", 5),
        command("order/a", ExpectedVersion::Exact(2), "a-4", 6),
    ]);
    assert!(matches!(partly, Err(LedgerError::WrongExpectedVersion { actual: 3, .. })), "{partly:?}");
    assert_eq!(log.durable_head().position, 4, "a rejected request leaves no trace");
    let stream_a = log.read_stream_blocking("order/a").expect("read order/a");
    let versions: Vec<u64> = stream_a.iter().map(|e| e.head.stream_version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_chain(log.as_ref(), harness.name());
}

pub fn idempotent_repeats_answer_the_original_position(harness: &dyn Harness) {
    let (_, log) = create(harness, "idempotency");
    log.append_blocking((1..=5).map(|n| fact(&format!("i-{n}"), n)).collect()).expect("five facts");
    // A repeat, and new ones around it.
    let mixed =
        log.append_blocking(vec![fact("i-6", 6), fact("i-3", 3), fact("i-7", 7)]).expect("new facts and a repeat");
    assert_eq!(mixed.positions, vec![6, 3, 7]);
    assert_eq!(mixed.n_appended, 2, "only the new ones count");
    let all_repeats = log.append_blocking(vec![fact("i-1", 1), fact("i-2", 2)]).expect("all repeats");
    assert_eq!((all_repeats.positions, all_repeats.n_appended), (vec![1, 2], 0));
    // The same key with other content is refused, naming the original.
    let other_content = log.append_blocking(vec![fact("i-8", 8), fact("i-2", 99)]);
    assert!(
        matches!(other_content, Err(LedgerError::IdempotencyConflict { ref key, original_position: 2 }) if key == "payment/wechat/i-2"),
        "{other_content:?}"
    );
    // Inside one request: a repeat is recorded once, at its first position.
    let within = log.append_blocking(vec![fact("i-9", 9), fact("i-10", 10), fact("i-9", 9)]).expect("a repeat within");
    assert_eq!((within.positions, within.n_appended), (vec![8, 9, 8], 2));
    let conflict_within = log.append_blocking(vec![fact("i-11", 11), fact("i-11", 12)]);
    assert!(matches!(conflict_within, Err(LedgerError::IdempotencyConflict { .. })), "{conflict_within:?}");
    // Commands: the same key with the same content answers the original.
    let once = log.append_blocking(vec![command("cart/1", ExpectedVersion::NoStream, "cart-open", 1)]).expect("open");
    let twice = log.append_blocking(vec![command("cart/1", ExpectedVersion::NoStream, "cart-open", 1)]).expect("again");
    assert_eq!(once.positions, twice.positions, "a retried command answers its first position");
    assert_eq!(twice.n_appended, 0);
    assert_eq!(log.durable_head().position, 10);
    assert_chain(log.as_ref(), harness.name());
}

/// Appenders on threads and on async tasks at once: every event is
/// acknowledged at its own position, and the log holds exactly those.
pub fn concurrent_appenders_get_distinct_positions(harness: &dyn Harness) {
    const N_THREADS: u32 = 8;
    const N_TASKS: u32 = 8;
    const N_APPENDS: u32 = 25;
    let (_, log) = create(harness, "concurrent");
    let log: std::sync::Arc<dyn LogStore> = std::sync::Arc::from(log);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..N_THREADS)
            .map(|t| {
                let log = std::sync::Arc::clone(&log);
                scope.spawn(move || {
                    let mut acks = Vec::new();
                    for k in 0..N_APPENDS {
                        let reference = format!("t{t}-{k}");
                        let size = 1 + (k % 3);
                        let refs: Vec<String> = (0..size).map(|j| format!("{reference}-{j}")).collect();
                        let events = refs.iter().map(|r| fact(r, t * 100 + k)).collect();
                        let outcome = log.append_blocking(events).expect("a thread's append");
                        acks.extend(outcome.positions.into_iter().zip(refs));
                    }
                    acks
                })
            })
            .collect();
        let tasks: Vec<_> = (0..N_TASKS)
            .map(|t| {
                let log = std::sync::Arc::clone(&log);
                runtime.spawn(async move {
                    let mut acks = Vec::new();
                    for k in 0..N_APPENDS {
                        let reference = format!("a{t}-{k}");
                        let outcome = log.append(vec![fact(&reference, t * 100 + k)]).await.expect("a task's append");
                        acks.extend(outcome.positions.into_iter().zip([reference]));
                    }
                    acks
                })
            })
            .collect();
        for thread in threads {
            acknowledged.extend(thread.join().expect("an appending thread"));
        }
        for task in tasks {
            acknowledged.extend(runtime.block_on(task).expect("an appending task"));
        }
    });
    let positions: HashSet<u64> = acknowledged.iter().map(|(position, _)| *position).collect();
    assert_eq!(positions.len(), acknowledged.len(), "every event at its own position");
    let head = log.durable_head().position;
    assert_eq!(head, acknowledged.len() as u64, "the log holds exactly the acknowledged events");
    let by_position: BTreeMap<u64, String> = acknowledged.into_iter().collect();
    log.scan_records(1, head, &mut |envelope| {
        let expected = by_position.get(&envelope.head.position).map(String::as_str);
        assert_eq!(channel_ref(&envelope.event), expected, "position {}", envelope.head.position);
        Ok(())
    })
    .expect("scan");
    assert_chain(log.as_ref(), harness.name());
}

/// Requests sent at once share commits; one that is rejected fails alone.
pub fn a_rejected_request_fails_alone(harness: &dyn Harness) {
    let (_, log) = create(harness, "rejected");
    log.append_blocking(vec![command("shared/1", ExpectedVersion::NoStream, "s-0", 0)]).expect("stream at 1");
    let results: Vec<(bool, Result<Vec<u64>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32u32)
            .map(|n| {
                let log = &log;
                scope.spawn(move || {
                    // Every fourth request expects a version the stream is not at.
                    let bad = n % 4 == 0;
                    let events = if bad {
                        vec![
                            fact(&format!("r-{n}"), n),
                            command("shared/1", ExpectedVersion::Exact(99), &format!("bad-{n}"), n),
                        ]
                    } else {
                        vec![fact(&format!("r-{n}"), n)]
                    };
                    (bad, log.append_blocking(events).map(|outcome| outcome.positions))
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("an appender")).collect()
    });
    for (bad, result) in &results {
        match (bad, result) {
            (true, Err(LedgerError::WrongExpectedVersion { .. })) | (false, Ok(_)) => {}
            other => panic!("{}: {other:?}", harness.name()),
        }
    }
    assert_eq!(log.durable_head().position, 1 + 24, "the 24 good requests, nothing of the 8 bad ones");
    assert_chain(log.as_ref(), harness.name());
}

pub fn reads_see_what_was_appended(harness: &dyn Harness) {
    let (place, log) = create(harness, "reads");
    let mut events: Vec<NewEvent> = (1..=30).map(|n| fact(&format!("x-{n}"), n)).collect();
    for (k, position) in [3usize, 11, 27].into_iter().enumerate() {
        events.insert(position - 1, command("read/1", ExpectedVersion::Any, &format!("read-{k}"), 500 + k as u32));
    }
    let outcome = log.append_blocking(events).expect("append");
    assert_eq!(outcome.head.position, 33);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let page = runtime.block_on(log.read_from(10, 5)).expect("read_from");
    assert_eq!(page.iter().map(|e| e.head.position).collect::<Vec<_>>(), vec![10, 11, 12, 13, 14]);
    assert_eq!(runtime.block_on(log.read_from(32, 100)).expect("read to the end").len(), 2);
    assert!(runtime.block_on(log.read_from(34, 10)).expect("read past the head").is_empty());
    let stream = runtime.block_on(log.read_stream("read/1")).expect("read_stream");
    assert_eq!(stream.iter().map(|e| e.head.position).collect::<Vec<_>>(), vec![3, 11, 27]);
    assert_eq!(stream.iter().map(|e| e.head.stream_version).collect::<Vec<_>>(), vec![1, 2, 3]);
    let all = all_records(log.as_ref());
    for envelope in &stream {
        assert_eq!(envelope, &all[envelope.head.position as usize - 1], "a stream's record is the log's");
    }
    assert!(log.read_stream_blocking("read/none").expect("an unknown stream").is_empty());
    let mut seen = Vec::new();
    log.scan_records(7, 9, &mut |envelope| {
        seen.push(envelope.head.position);
        Ok(())
    })
    .expect("a range");
    assert_eq!(seen, vec![7, 8, 9]);
    assert_eq!(&all[6..9], &all_records_between(log.as_ref(), 7, 9)[..]);
    assert_eq!(runtime.block_on(log.head()).expect("head"), log.durable_head());
    if harness.shared() {
        // A second handle (read-only, as a replica holds) sees the first's appends at once.
        let reader = harness.open(&place, OpenMode::Read).expect("a read-only open");
        assert_eq!(reader.durable_head(), log.durable_head());
        let refused = reader.append_blocking(vec![fact("x-99", 99)]);
        assert!(refused.is_err(), "a read-only open never appends");
        log.append_blocking(vec![fact("x-31", 31)]).expect("append more");
        assert_eq!(reader.durable_head().position, 34, "a reader sees another handle's append");
        let records = all_records_between(reader.as_ref(), 30, 34);
        assert_eq!(records.last().map(|e| e.hash), Some(log.durable_head().hash));
    } else {
        drop(place);
    }
    let verify = log.verify(5, 20, &mut |_| {}).expect("verify a range");
    assert_eq!((verify.problem, verify.n_records), (None, 16));
}

fn all_records_between(log: &dyn LogStore, from: u64, to: u64) -> Vec<Envelope> {
    let mut out = Vec::new();
    log.scan_records(from, to, &mut |envelope| {
        out.push(envelope);
        Ok(())
    })
    .expect("scan");
    out
}

pub fn probes_append_nothing(harness: &dyn Harness) {
    let (_, log) = create(harness, "probes");
    log.append_blocking(vec![fact("p-1", 1), fact("p-2", 2)]).expect("two facts");
    let probe = log.probe_blocking(vec![fact("p-2", 2), fact("p-3", 3), fact("p-3", 3)]).expect("a probe");
    assert_eq!((probe.positions, probe.n_appended), (vec![2, 0, 0], 1), "a repeat within counts once");
    let conflict = log.probe_blocking(vec![fact("p-1", 7)]);
    assert!(matches!(conflict, Err(LedgerError::IdempotencyConflict { original_position: 1, .. })), "{conflict:?}");
    let version = log.probe_blocking(vec![command("probe/1", ExpectedVersion::Exact(4), "probe-1", 1)]);
    assert!(matches!(version, Err(LedgerError::WrongExpectedVersion { actual: 0, .. })), "{version:?}");
    assert_eq!(log.durable_head().position, 2, "probes append nothing");
    let appended = log.append_blocking(vec![fact("p-3", 3)]).expect("the probed fact");
    assert_eq!(appended.positions, vec![3]);
}

/// Exports a log of `from` and restores it into `to`, and back into
/// `from`: the same positions, stored bytes and head hash each way.
pub fn export_restores_the_same_chain(from: &dyn Harness, to: &dyn Harness) {
    let (_, source) = create(from, "export-source");
    source.append_blocking((1..=120).map(|n| fact(&format!("e-{n}"), n)).collect()).expect("facts");
    source.append_blocking(vec![command("export/1", ExpectedVersion::NoStream, "exp-1", 1)]).expect("a command");
    let exported: Vec<ExportedRecord> =
        source.stored_records(1).expect("stored records").collect::<Result<_>>().expect("every record reads");
    assert_eq!(exported.len(), 121);
    let restored_place = to.fresh_place("export-restored");
    let records: StoredRecords<'_> = Box::new(exported.iter().map(|r| Ok(copy(r))));
    let head = to.restore(&restored_place, source.header_bytes(), records).expect("restore");
    assert_eq!(head, source.durable_head(), "{} → {}: the same head", from.name(), to.name());
    let restored = to.open(&restored_place, OpenMode::Existing).expect("open the restored log");
    assert_eq!(restored.header_bytes(), source.header_bytes());
    assert_eq!(restored.durable_head(), head);
    assert_chain(restored.as_ref(), to.name());
    assert_eq!(all_records(restored.as_ref()), all_records(source.as_ref()), "the same records");
    // The restored log keeps idempotency and versions.
    let again = restored.append_blocking(vec![fact("e-7", 7), fact("e-121", 121)]).expect("append to the restored log");
    assert_eq!((again.positions, again.n_appended), (vec![7, 122], 1));
    let version = restored.append_blocking(vec![command("export/1", ExpectedVersion::Exact(1), "exp-2", 2)]);
    assert!(matches!(version, Ok(ref outcome) if outcome.positions == vec![123]), "{version:?}");
    // Back again, into the first backend.
    let back_place = from.fresh_place("export-back");
    let records = restored.stored_records(1).expect("stored records of the restored log");
    let back_head = from.restore(&back_place, restored.header_bytes(), records).expect("restore back");
    assert_eq!(back_head, restored.durable_head(), "{} → {}: the same head", to.name(), from.name());
    // A restore needs an empty log, and refuses a changed export.
    let records = restored.stored_records(1).expect("stored records");
    let refused = from.restore(&back_place, restored.header_bytes(), records);
    assert!(matches!(refused, Err(LedgerError::NotEmpty { head: 123 })), "{refused:?}");
    let changed_place = to.fresh_place("export-changed");
    let mut changed: Vec<ExportedRecord> = exported.iter().map(copy).collect();
    let last = changed[60].stored.len() - 1;
    changed[60].stored[last] ^= 1;
    let refused = to.restore(&changed_place, source.header_bytes(), Box::new(changed.into_iter().map(Ok)));
    assert!(matches!(refused, Err(LedgerError::Corrupt { position: 61, .. })), "{refused:?}");
    let after = to.open(&changed_place, OpenMode::Create).expect("the place after a failed restore");
    assert_eq!(after.durable_head().position, 0, "a failed restore leaves nothing behind");
}

fn copy(record: &ExportedRecord) -> ExportedRecord {
    ExportedRecord { position: record.position, stored: record.stored.clone(), hash: record.hash }
}

// ---- Crash -------------------------------------------------------------------

const CHILD_PLACE: &str = "YIBAO_CONFORMANCE_CRASH_PLACE";
const CHILD_SEED: &str = "YIBAO_CONFORMANCE_CRASH_SEED";
/// Set to repeat a run.
const SEED: &str = "YIBAO_CRASH_SEED";
const ITERATIONS: u64 = 8;
/// A child left behind by a failed parent stops by itself.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// The crash child: appends batches of mixed sizes for ever, printing
/// `ack <position> <reference>` per event once its append returned. Does
/// nothing unless the parent set the place in its environment.
pub fn crash_child(open: fn(&str, OpenMode) -> Result<Box<dyn LogStore>>) {
    let Some(place) = std::env::var_os(CHILD_PLACE) else { return };
    let place = place.to_string_lossy().into_owned();
    let seed: u64 = std::env::var(CHILD_SEED).ok().and_then(|s| s.parse().ok()).expect("the child's seed");
    let log = open(&place, OpenMode::Existing).expect("the child opens the log");
    let mut out = std::io::stdout().lock();
    // A leading newline keeps the marker off libtest's `test ... ` line.
    if out.write_all(b"\nready\n").and_then(|()| out.flush()).is_err() {
        return;
    }
    let mut rng = Rng(seed);
    let mut sent: Vec<String> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let size = match rng.range(0, 20) {
            0..=11 => 1,
            12..=17 => rng.range(10, 200),
            _ => rng.range(200, 2001),
        } as usize;
        let fresh: Vec<String> = (0..size).map(|k| format!("{seed:x}-{}", sent.len() + k)).collect();
        let mut refs = fresh.clone();
        // Now and then repeat earlier events: acknowledged at their original positions.
        if !sent.is_empty() && rng.range(0, 5) == 0 {
            let earlier = sent[rng.range(0, sent.len() as u64) as usize].clone();
            refs.insert(rng.range(0, refs.len() as u64 + 1) as usize, earlier);
        }
        let events = refs.iter().map(|r| fact(r, 7)).collect();
        let outcome = log.append_blocking(events).expect("the child's append");
        let mut text = String::new();
        for (position, reference) in outcome.positions.iter().zip(&refs) {
            text.push_str(&format!("ack {position} {reference}\n"));
        }
        if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
            return;
        }
        sent.extend(fresh);
        std::thread::sleep(Duration::from_micros(rng.range(0, 4000)));
    }
}

/// Kills a child appending to one log at random moments, reopening after
/// each kill: every acknowledged event is at its acknowledged position, the
/// positions are gapless and the chain verifies. `child_test` is the name
/// of the test running [`crash_child`] in this binary.
pub fn acknowledged_appends_survive_sigkill(harness: &dyn Harness, child_test: &str) {
    if std::env::var_os(CHILD_PLACE).is_some() {
        return;
    }
    let seed = match std::env::var(SEED) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{SEED}={text} is not a u64")),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(5, |d| d.as_nanos() as u64),
    };
    eprintln!("{}: crash seed {seed} (repeat with {SEED}={seed})", harness.name());
    let (place, log) = create(harness, "crash");
    drop(log);
    let mut rng = Rng(seed);
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    for iteration in 0..ITERATIONS {
        let delay = Duration::from_millis(rng.range(0, 400));
        let child_seed = rng.next_u64();
        let env = [(CHILD_PLACE, place.clone()), (CHILD_SEED, child_seed.to_string())];
        let lines = run_child_until_killed(child_test, &env, true, delay, CHILD_LIFETIME).lines;
        for line in lines {
            let Some(rest) = line.strip_prefix("ack ") else { continue };
            let (position, reference) = rest.split_once(' ').unwrap_or_else(|| panic!("bad line `{line}`"));
            let position: u64 = position.parse().unwrap_or_else(|_| panic!("bad line `{line}`"));
            if let Some(earlier) = acked.insert(position, reference.to_string()) {
                assert_eq!(earlier, reference, "position {position} acknowledged for two events");
            }
        }
        let context = format!("{} seed {seed} iteration {iteration}", harness.name());
        let log = harness.open(&place, OpenMode::Existing).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
        let head = log.durable_head().position;
        let last_acked = acked.keys().next_back().copied().unwrap_or(0);
        assert!(head >= last_acked, "{context}: head {head} is below the acknowledged {last_acked}");
        assert_chain(log.as_ref(), &context);
        log.scan_records(1, head, &mut |envelope| {
            if let Some(reference) = acked.get(&envelope.head.position) {
                assert_eq!(
                    channel_ref(&envelope.event),
                    Some(reference.as_str()),
                    "{context}: position {}",
                    envelope.head.position
                );
            }
            Ok(())
        })
        .expect("scan");
    }
    assert!(!acked.is_empty(), "the children acknowledged nothing");
}

/// What a child killed by [`run_child_until_killed`] printed.
pub struct KilledChild {
    /// Its whole lines on standard output, in order (a line cut short by
    /// the kill is dropped: it acknowledges nothing).
    pub lines: Vec<String>,
    /// It printed the line `ready`.
    pub reached_ready: bool,
}

/// Runs the test `test` of this test binary alone in a child process with
/// `env`, waits (when `wait_for_ready`, at most `lifetime`) for its line
/// `ready`, lets it run for `delay` more, then kills it with SIGKILL. A
/// child that ends on its own, or is not ready in time, fails the test.
pub fn run_child_until_killed(
    test: &str,
    env: &[(&str, String)],
    wait_for_ready: bool,
    delay: std::time::Duration,
    lifetime: std::time::Duration,
) -> KilledChild {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    let exe = std::env::current_exe().expect("test binary");
    let mut command = Command::new(exe);
    command.args(["--exact", test, "--nocapture", "--test-threads", "1"]);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (line_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                // A line cut short by the kill is not an acknowledgement.
                Ok(0) | Err(_) => return,
                Ok(_) if line.last() != Some(&b'\n') => return,
                Ok(_) => {
                    if line_tx.send(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut reached_ready = false;
    let mut early = Vec::new();
    while wait_for_ready && !reached_ready {
        // Only a guard against a hang; never reached by a working child.
        match lines.recv_timeout(lifetime) {
            Ok(line) if line == "ready" => reached_ready = true,
            Ok(line) => early.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child was not ready after {lifetime:?}");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                panic!("the child ended before it was ready:\n{}", stderr_reader.join().unwrap_or_default());
            }
        }
    }
    std::thread::sleep(delay);
    let exited = child.try_wait().expect("poll the child");
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap the child");
    reader.join().expect("stdout reader");
    let stderr = stderr_reader.join().unwrap_or_default();
    assert!(exited.is_none(), "the child stopped before it was killed ({status}):\n{stderr}");
    let mut whole = Vec::new();
    for line in early.into_iter().chain(lines.try_iter()) {
        if line == "ready" {
            reached_ready = true;
        } else {
            whole.push(line);
        }
    }
    KilledChild { lines: whole, reached_ready }
}

/// A small seeded generator (SplitMix64): reproducible from a printed seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

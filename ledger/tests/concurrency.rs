//! Many appenders at once, on a multi-thread runtime: positions stay gapless
//! and unique, stream versions count 1..n, optimistic concurrency turns
//! conflicting writers away (and lets them in on retry), idempotent repeats
//! from racing tasks land once, and readers only ever see durable records.

mod common;

use common::{fact, payment, payment_with_ref};
use ledger::{EventLog, ExpectedVersion, LedgerError, NewEvent, OpenMode, SledLog};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Barrier;

const OWN_STREAM_TASKS: usize = 12;
const OWN_STREAM_APPENDS: u64 = 25;
const SHARED_WRITERS: usize = 8;
const SHARED_EVENTS_EACH: u64 = 12;
const SHARED: &str = "shared/counter";
/// Events two racing tasks both append, in different orders and batches.
const RACED_EVENTS: u32 = 400;

fn on_stream(stream: &str, expected: ExpectedVersion, key: String, n: u32) -> NewEvent {
    NewEvent { stream: stream.to_string(), expected, idempotency_key: key, actor: "test".into(), event: payment(n) }
}

/// What the tasks were told: idempotency key → position.
type Told = Vec<(String, u64)>;

/// Appends to its own stream, each request of 1..=4 events expecting the
/// version it left the stream at. Every other task uses the blocking API
/// from a blocking thread.
async fn own_stream_task(log: Arc<SledLog>, task: usize) -> Told {
    let stream = format!("own/{task}");
    let mut version = 0;
    let mut told = Vec::new();
    for request in 0..OWN_STREAM_APPENDS {
        let size = 1 + (request + task as u64) % 4;
        let events: Vec<NewEvent> = (0..size)
            .map(|k| {
                let expected = if k == 0 { ExpectedVersion::Exact(version) } else { ExpectedVersion::Any };
                on_stream(&stream, expected, format!("{stream}/{request}/{k}"), task as u32)
            })
            .collect();
        let keys: Vec<String> = events.iter().map(|e| e.idempotency_key.clone()).collect();
        let blocking = task % 2 == 1;
        let outcome = if blocking {
            let log = Arc::clone(&log);
            tokio::task::spawn_blocking(move || log.append_blocking(events)).await.expect("blocking task")
        } else {
            log.append(events).await
        }
        .unwrap_or_else(|e| panic!("{stream} request {request}: {e}"));
        assert_eq!(outcome.n_appended as u64, size);
        version += size;
        told.extend(keys.into_iter().zip(outcome.positions));
    }
    told
}

/// One of several writers of the same stream: each append expects the
/// version the writer last knew; a conflict tells it the actual version and
/// it tries again. Returns what it was told and its number of conflicts.
async fn shared_writer(log: Arc<SledLog>, writer: usize, start: Arc<Barrier>) -> (Told, u64, bool) {
    let mut known = 0;
    let mut conflicts = 0;
    let mut told = Vec::new();
    let mut first_attempt_won = None;
    start.wait().await;
    for i in 0..SHARED_EVENTS_EACH {
        let key = format!("{SHARED}/{writer}/{i}");
        loop {
            let event = on_stream(SHARED, ExpectedVersion::Exact(known), key.clone(), writer as u32);
            match log.append(vec![event]).await {
                Ok(outcome) => {
                    // A new event, never an idempotent repeat of an earlier try.
                    assert_eq!(outcome.n_appended, 1, "writer {writer} event {i}");
                    told.push((key.clone(), outcome.positions[0]));
                    known += 1;
                    first_attempt_won.get_or_insert(true);
                    break;
                }
                Err(LedgerError::WrongExpectedVersion { stream, expected, actual }) => {
                    assert_eq!((stream.as_str(), expected), (SHARED, ExpectedVersion::Exact(known)));
                    assert!(actual > known, "writer {writer}: the stream went back from {known} to {actual}");
                    known = actual;
                    conflicts += 1;
                    first_attempt_won.get_or_insert(false);
                }
                Err(other) => panic!("writer {writer}: {other}"),
            }
        }
    }
    (told, conflicts, first_attempt_won.unwrap_or(false))
}

/// Appends payments 1..=RACED_EVENTS with `ExpectedVersion::Any` in batches
/// of `batch`, forwards or backwards, while another task does the same.
async fn raced_task(log: Arc<SledLog>, batch: usize, backwards: bool) -> Told {
    let mut numbers: Vec<u32> = (1..=RACED_EVENTS).collect();
    if backwards {
        numbers.reverse();
    }
    let mut told = Vec::new();
    for chunk in numbers.chunks(batch) {
        let events: Vec<NewEvent> = chunk.iter().map(|&n| fact(payment_with_ref(&format!("raced-{n}"), n))).collect();
        let keys: Vec<String> = events.iter().map(|e| e.idempotency_key.clone()).collect();
        let outcome = log.append(events).await.expect("raced append");
        told.extend(keys.into_iter().zip(outcome.positions));
    }
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_gapless_unique_and_versioned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(SledLog::open(dir.path(), OpenMode::Create).expect("open"));
    let done = Arc::new(AtomicBool::new(false));

    // A reader: every head it sees is readable and holds the head's hash,
    // and heads never go back.
    let reader = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        tokio::spawn(async move {
            let mut last = 0;
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let head = log.head().await.expect("head");
                assert!(head.position >= last, "head went back from {last} to {}", head.position);
                if head.position > 0 {
                    let records = log.read_from(head.position, 1).await.expect("read at head");
                    assert_eq!(records.len(), 1, "head {} is not readable", head.position);
                    assert_eq!(records[0].hash, head.hash);
                    reads += 1;
                }
                last = head.position;
                tokio::task::yield_now().await;
            }
            reads
        })
    };

    let start = Arc::new(Barrier::new(SHARED_WRITERS));
    let own: Vec<_> = (0..OWN_STREAM_TASKS).map(|t| tokio::spawn(own_stream_task(Arc::clone(&log), t))).collect();
    let shared: Vec<_> =
        (0..SHARED_WRITERS).map(|w| tokio::spawn(shared_writer(Arc::clone(&log), w, Arc::clone(&start)))).collect();
    let raced =
        [tokio::spawn(raced_task(Arc::clone(&log), 7, false)), tokio::spawn(raced_task(Arc::clone(&log), 50, true))];

    let mut told: Told = Vec::new();
    for task in own {
        told.extend(task.await.expect("own-stream task"));
    }
    let mut conflicts = 0;
    let mut first_attempt_winners = 0;
    for task in shared {
        let (writer_told, writer_conflicts, won) = task.await.expect("shared writer");
        told.extend(writer_told);
        conflicts += writer_conflicts;
        first_attempt_winners += usize::from(won);
    }
    let mut raced_told: Vec<Told> = Vec::new();
    for task in raced {
        raced_told.push(task.await.expect("raced task"));
    }
    done.store(true, Ordering::Release);
    let reads = reader.await.expect("reader");

    // All writers started at version 0: exactly one could win that race,
    // and every one of them finally got all its events in.
    assert_eq!(first_attempt_winners, 1);
    assert!(conflicts >= SHARED_WRITERS as u64 - 1, "{conflicts} conflicts");
    println!("{conflicts} conflicts on the shared stream; the reader saw {reads} heads");

    // Both raced tasks were told the same position for each payment.
    let first: HashMap<_, _> = raced_told[0].iter().cloned().collect();
    let second: HashMap<_, _> = raced_told[1].iter().cloned().collect();
    assert_eq!(first, second);
    told.extend(first);

    // Every event told to a task has its own position; together they are
    // exactly 1..=head.
    let head = log.head().await.expect("head");
    let by_position: BTreeMap<u64, String> = told.iter().map(|(key, position)| (*position, key.clone())).collect();
    assert_eq!(by_position.len(), told.len(), "two events were told the same position");
    assert_eq!(by_position.keys().copied().collect::<Vec<_>>(), (1..=head.position).collect::<Vec<_>>());

    // The log holds each of them once, at its position, in a linked chain.
    let all = log.read_from(1, usize::MAX).await.expect("read all");
    assert_eq!(all.len() as u64, head.position);
    for (i, envelope) in all.iter().enumerate() {
        assert_eq!(envelope.head.position, i as u64 + 1);
        assert_eq!(Some(&envelope.head.idempotency_key), by_position.get(&envelope.head.position));
        let prev = if i == 0 { log.genesis_hash() } else { all[i - 1].hash };
        assert_eq!(envelope.prev_hash, prev, "link at {}", envelope.head.position);
    }
    assert_eq!(all.last().map(|e| e.hash), Some(head.hash));

    // Stream versions count 1..n, in position order.
    let mut streams: Vec<(String, u64)> = (0..OWN_STREAM_TASKS)
        .map(|t| (format!("own/{t}"), (0..OWN_STREAM_APPENDS).map(|r| 1 + (r + t as u64) % 4).sum()))
        .collect();
    streams.push((SHARED.to_string(), SHARED_WRITERS as u64 * SHARED_EVENTS_EACH));
    for (stream, n) in streams {
        let records = log.read_stream(&stream).await.expect("read stream");
        assert_eq!(
            records.iter().map(|e| e.head.stream_version).collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "{stream}"
        );
        assert!(records.windows(2).all(|w| w[0].head.position < w[1].head.position), "{stream}");
    }
    // Each shared writer's events are in the order it wrote them.
    let shared_records = log.read_stream(SHARED).await.expect("read stream");
    for writer in 0..SHARED_WRITERS {
        let prefix = format!("{SHARED}/{writer}/");
        let mine: Vec<u64> =
            shared_records.iter().filter_map(|e| e.head.idempotency_key.strip_prefix(&prefix)?.parse().ok()).collect();
        assert_eq!(mine, (0..SHARED_EVENTS_EACH).collect::<Vec<_>>());
    }

    // Durable as acknowledged: a reopen sees the same head, and it verifies.
    let log = Arc::into_inner(log).expect("no other owners");
    drop(log);
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    assert_eq!(log.durable_head(), head);
    let report = log.verify(0, 0, &mut |_| {}).expect("verify");
    assert_eq!(report.problem, None);
    assert_eq!(report.n_records, head.position);
}

//! A second backend plugs in: an in-memory log that implements `EventLog`
//! and `LogReader` and nothing else. The same facts appended to it and to a
//! `SledLog` give the same coverage (caught up in steps, and rebuilt), the
//! same family state and the same replay digest: projections and replay
//! depend on the traits, not on sled.

use async_trait::async_trait;
use ledger::event::{EnrolmentBasis, Event, PaymentReceived, PersonRegistered, PolicyPublished};
use ledger::log::Head;
use ledger::{
    envelope, AppendOutcome, Date, Envelope, EnvelopeHead, EventLog, ExpectedVersion, Hash, Identity, LedgerError,
    LogBackend, LogReader, Money, NewEvent, OpenMode, RegionCode, Result, SledLog, UtcTime,
};
use projections::coverage::{Coverage, CoverageState, Pending};
use projections::{Family, LedgerTotals, Projection};
use std::collections::HashMap;
use std::sync::Mutex;

/// The log in memory: records in position order and the first position of
/// each idempotency key. Chained as `SledLog` chains (SM3 over the previous
/// hash and the stored bytes), from a genesis hash of its own.
struct MemoryLog {
    ledger_id: ledger::uuid::Uuid,
    genesis: Hash,
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    records: Vec<Envelope>,
    keys: HashMap<String, u64>,
}

impl MemoryLog {
    fn new() -> MemoryLog {
        MemoryLog {
            ledger_id: ledger::uuid::Uuid::new_v4(),
            genesis: envelope::sm3(b"an in-memory ledger for tests"),
            state: Mutex::new(MemoryState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().expect("no test panics while holding the log")
    }

    /// All or nothing: every event is checked before any is recorded.
    fn append_now(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        let mut state = self.state();
        for (index, new) in events.iter().enumerate() {
            new.event.validate().map_err(|error| LedgerError::InvalidEvent { index, error })?;
            // Facts from outside only: no version checks in this backend.
            if new.expected != ExpectedVersion::Any {
                let stream = new.stream.clone();
                return Err(LedgerError::WrongExpectedVersion { stream, expected: new.expected, actual: 0 });
            }
        }
        let mut positions = Vec::with_capacity(events.len());
        let mut n_appended = 0;
        for new in events {
            if let Some(&position) = state.keys.get(&new.idempotency_key) {
                positions.push(position);
                continue;
            }
            let position = state.records.len() as u64 + 1;
            let stream_version = state.records.iter().filter(|e| e.head.stream == new.stream).count() as u64 + 1;
            let head = EnvelopeHead {
                position,
                event_id: ledger::uuid::Uuid::new_v4(),
                recorded_at: UtcTime::now(),
                stream: new.stream,
                stream_version,
                actor: new.actor,
                idempotency_key: new.idempotency_key.clone(),
            };
            let mut stored = Vec::new();
            envelope::encode_record(&head, &envelope::encode_event(&new.event), &mut stored);
            let prev_hash = state.records.last().map_or(self.genesis, |last| last.hash);
            let hash = envelope::chain_hash(&prev_hash, &stored);
            state.keys.insert(new.idempotency_key, position);
            state.records.push(Envelope { head, event: new.event, prev_hash, hash });
            positions.push(position);
            n_appended += 1;
        }
        drop(state);
        Ok(AppendOutcome { positions, n_appended, head: LogReader::durable_head(self) })
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.append_now(events)
    }

    fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.append_now(events)
    }

    async fn read_from(&self, position: u64, max: usize) -> Result<Vec<Envelope>> {
        let state = self.state();
        Ok(state.records.iter().skip(position.max(1) as usize - 1).take(max).cloned().collect())
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<Envelope>> {
        self.read_stream_blocking(stream)
    }

    async fn head(&self) -> Result<Head> {
        Ok(LogReader::durable_head(self))
    }
}

impl LogReader for MemoryLog {
    fn durable_head(&self) -> Head {
        let state = self.state();
        state.records.last().map_or(Head { position: 0, hash: self.genesis }, |last| Head {
            position: last.head.position,
            hash: last.hash,
        })
    }

    fn genesis_hash(&self) -> Hash {
        self.genesis
    }

    fn scan_records(&self, from: u64, to: u64, visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        // Cloned first: `visit` may read the log again.
        let records: Vec<Envelope> = {
            let state = self.state();
            let range = |e: &&Envelope| (from..=to).contains(&e.head.position);
            state.records.iter().filter(range).cloned().collect()
        };
        records.into_iter().try_for_each(visit)
    }

    fn read_stream_blocking(&self, stream: &str) -> Result<Vec<Envelope>> {
        Ok(self.state().records.iter().filter(|e| e.head.stream == stream).cloned().collect())
    }

    fn ledger_id(&self) -> ledger::uuid::Uuid {
        self.ledger_id
    }
}

const BIJIE: &str = include_str!("../../fixtures/policies/bijie-2025.toml");

fn person(sequence: u16) -> Identity {
    let born = chrono::NaiveDate::from_ymd_opt(1985, 3, 12).expect("date");
    Identity::resident(RegionCode::new(520502).expect("region"), born, sequence)
}

fn date(text: &str) -> Date {
    text.parse().expect("test date")
}

fn bijie() -> Event {
    Event::PolicyPublishedV1(PolicyPublished {
        region: RegionCode::new(520500).expect("region"),
        coverage_year: 2025,
        source: "fixture".into(),
        document: BIJIE.into(),
    })
}

fn registered(sequence: u16) -> Event {
    Event::PersonRegisteredV1(PersonRegistered {
        person: person(sequence),
        name: "张伟".into(),
        region: RegionCode::new(520502).expect("region"),
        birth_date: date("1985-03-12"),
        registered_on: date("2024-09-25"),
        basis: EnrolmentBasis::Standard,
    })
}

fn paid(sequence: u16, yuan: i64, reference: &str) -> Event {
    Event::PaymentReceivedV1(PaymentReceived {
        person: person(sequence),
        coverage_year: 2025,
        amount: Money::from_yuan(yuan),
        channel: "wechat".into(),
        channel_ref: reference.into(),
        payer: Default::default(),
        paid_at: "2024-10-05 09:30:00".parse().expect("time"),
    })
}

fn facts(events: Vec<Event>) -> Vec<NewEvent> {
    events.into_iter().map(|event| NewEvent::fact(event, "test")).collect()
}

fn first_facts() -> Vec<NewEvent> {
    facts(vec![bijie(), registered(1), registered(2), registered(3), paid(1, 400, "WX1")])
}

fn later_facts() -> Vec<NewEvent> {
    facts(vec![paid(2, 400, "WX2"), paid(1, 400, "WX3"), paid(3, 100, "WX4"), paid(2, 400, "WX2")])
}

/// What each backend answers for the same facts.
#[derive(Debug, PartialEq)]
struct Answers {
    coverage_digest: Hash,
    rebuilt_coverage_digest: Hash,
    pending_coverage_digest: Hash,
    family_position: u64,
    replay_digest: Hash,
    replay_position: u64,
    totals: LedgerTotals,
    states: Vec<Option<CoverageState>>,
    positions: Vec<u64>,
    stream_positions: Vec<u64>,
}

/// Appends the facts in two requests, catching coverage and family up after
/// each, and asks every question projections and replay answer.
fn answers(log: &impl LogBackend) -> Answers {
    let mut positions = log.append_blocking(first_facts()).expect("append").positions;
    let mut coverage = Coverage::new();
    let mut family = Family::new();
    assert_eq!(coverage.catch_up(log).expect("catch up"), 5);
    assert_eq!(family.catch_up(log).expect("catch up"), 5);
    let tip = coverage.tip();
    let mut behind = coverage.clone();

    positions.extend(log.append_blocking(later_facts()).expect("append").positions);
    assert_eq!(coverage.catch_up(log).expect("catch up"), 3, "the repeated WX2 appends nothing");
    assert_eq!(family.catch_up_to(log, coverage.position()).expect("catch up"), 3);
    let pending = Pending::read(log, tip).expect("read after the tip");
    assert_eq!(behind.fold_pending(&pending).expect("fold"), 3);
    let mut rebuilt = Coverage::new();
    rebuilt.catch_up(log).expect("rebuild");

    let replayed = replay::audit::rebuild_as_of(log, None, &mut |_| {}).expect("replay");
    let totals: LedgerTotals = replay::rebuild(log, 0, &mut |_| {}).expect("totals");
    let stream = registered(2).stream();
    let stream_positions = log.read_stream_blocking(&stream).expect("stream").iter().map(|e| e.head.position).collect();
    Answers {
        coverage_digest: coverage.digest(),
        rebuilt_coverage_digest: rebuilt.digest(),
        pending_coverage_digest: behind.digest(),
        family_position: family.position(),
        replay_digest: replayed.digest(),
        replay_position: replayed.position,
        totals,
        states: (1..=3)
            .map(|n| coverage.person_year(&person(n), 2025).expect("money").map(|view| view.state))
            .collect(),
        positions,
        stream_positions,
    }
}

#[test]
fn projections_and_replay_answer_alike_on_sled_and_on_a_second_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledLog::open(dir.path(), OpenMode::Create).expect("open log");
    let on_sled = answers(&sled);
    let on_memory = answers(&MemoryLog::new());
    assert_eq!(on_memory, on_sled);

    // The answers say something: a rebuild, a step-wise catch-up and a
    // fold of pending records agree, and the facts were read.
    assert_eq!(on_sled.coverage_digest, on_sled.rebuilt_coverage_digest);
    assert_eq!(on_sled.coverage_digest, on_sled.pending_coverage_digest);
    assert_eq!(on_sled.replay_position, 8);
    assert_eq!(on_sled.family_position, 8);
    assert_eq!(on_sled.positions, vec![1, 2, 3, 4, 5, 6, 7, 8, 6]);
    assert_eq!(on_sled.stream_positions.first(), Some(&3));
    assert_eq!(
        on_sled.states,
        vec![Some(CoverageState::Overpaid), Some(CoverageState::Received), Some(CoverageState::PartiallyPaid)]
    );
}

#[test]
fn a_checkpoint_from_one_backend_is_refused_by_another_whose_chain_differs() {
    // Catch-up checks the hash at the checkpoint's position, whatever the
    // backend: the two logs hold the same facts under different chains.
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledLog::open(dir.path(), OpenMode::Create).expect("open log");
    let memory = MemoryLog::new();
    sled.append_blocking(first_facts()).expect("append");
    memory.append_blocking(first_facts()).expect("append");
    let mut coverage = Coverage::new();
    coverage.catch_up(&sled).expect("catch up");
    let error = coverage.catch_up(&memory).expect_err("another chain");
    assert!(error.needs_rebuild(), "{error}");
    assert_ne!(LogReader::genesis_hash(&sled), memory.genesis_hash());
}

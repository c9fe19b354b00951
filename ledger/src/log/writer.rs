//! The single writer: a sequencer thread that validates, numbers, encodes and
//! hashes requests into blocks, and a committer thread that stores each unit
//! of blocks, flushes, fdatasyncs and only then acknowledges. The sequencer
//! hashes the next unit while the committer waits for the disk (pipelining);
//! concurrent requests share one sync (group commit).

use super::block::{self, BlockBuilder, SealedBlock};
use super::index::{KeyIndex, KeyUse, StreamIndex};
use super::sled_log::Shared;
use super::{AppendOutcome, ExpectedVersion, Head, NewEvent, MAX_EVENTS_PER_APPEND, MAX_KEY_BYTES};
use crate::envelope::{self, EnvelopeHead, Hash, MAX_RECORD_BYTES};
use crate::error::{LedgerError, Result};
use crate::time::UtcTime;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Requests waiting for the sequencer (a full queue makes appenders wait).
const REQUEST_QUEUE: usize = 4096;
/// Units waiting for the committer.
const UNIT_QUEUE: usize = 2;
/// A unit is handed to the committer once it holds this many bytes.
const UNIT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Room left in a record for its envelope head.
const ENVELOPE_ROOM: usize = 3 * MAX_KEY_BYTES + 64;

type Reply = oneshot::Sender<Result<AppendOutcome>>;

struct Request {
    events: Vec<NewEvent>,
    reply: Reply,
}

/// A request's positions, acknowledged once its unit is durable.
struct Ack {
    reply: Reply,
    positions: Vec<u64>,
    n_appended: usize,
}

/// Blocks to store with one flush + fdatasync, and whom to tell.
struct Unit {
    blocks: Vec<SealedBlock>,
    acks: Vec<Ack>,
    head: Head,
}

pub(crate) struct WriterHandle {
    requests: Option<mpsc::Sender<Request>>,
    threads: Vec<JoinHandle<()>>,
}

pub(crate) fn start(shared: Arc<Shared>, head: Head, keys: KeyIndex) -> WriterHandle {
    let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let (unit_tx, unit_rx) = std_mpsc::sync_channel(UNIT_QUEUE);
    let sequencer_shared = Arc::clone(&shared);
    let sequencer = std::thread::Builder::new()
        .name("yibao-sequencer".into())
        .spawn(move || {
            Sequencer { shared: sequencer_shared, head, boundary_head: head, keys, units: unit_tx }.run(request_rx)
        })
        .expect("spawn the sequencer thread");
    let committer = std::thread::Builder::new()
        .name("yibao-committer".into())
        .spawn(move || commit_units(&shared, unit_rx))
        .expect("spawn the committer thread");
    WriterHandle { requests: Some(request_tx), threads: vec![sequencer, committer] }
}

impl WriterHandle {
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        let (reply, response) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(LedgerError::Closed)?;
        requests.send(Request { events, reply }).await.map_err(|_| LedgerError::Closed)?;
        response.await.map_err(|_| LedgerError::Closed)?
    }

    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        let (reply, response) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(LedgerError::Closed)?;
        requests.blocking_send(Request { events, reply }).map_err(|_| LedgerError::Closed)?;
        response.blocking_recv().map_err(|_| LedgerError::Closed)?
    }
}

impl Drop for WriterHandle {
    /// Closing the queue lets both threads finish what they hold, then stop.
    fn drop(&mut self) {
        self.requests.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// What planning decided for one event of a request.
enum Plan {
    New {
        event_bytes: Vec<u8>,
        fingerprint: u128,
        content: u64,
        version: u64,
    },
    /// Already recorded at this position.
    Duplicate(u64),
    /// Repeats an earlier event of the same request.
    DuplicateOf(usize),
}

struct Sequencer {
    shared: Arc<Shared>,
    head: Head,
    /// The head after the last whole request: what readers may see once
    /// stored, since recovery never drops it.
    boundary_head: Head,
    keys: KeyIndex,
    units: std_mpsc::SyncSender<Unit>,
}

/// Blocks being filled for the next unit.
struct UnitBuilder {
    sealed: Vec<SealedBlock>,
    open: Option<BlockBuilder>,
    acks: Vec<Ack>,
    n_bytes: usize,
    /// The last record pushed ends a request.
    at_boundary: bool,
}

impl UnitBuilder {
    fn new() -> UnitBuilder {
        UnitBuilder { sealed: Vec::new(), open: None, acks: Vec::new(), n_bytes: 0, at_boundary: true }
    }

    fn push(&mut self, position: u64, prev_hash: Hash, body: &[u8], hash: &Hash) {
        if self.open.as_ref().is_some_and(|b| !b.fits(body.len())) {
            self.seal();
        }
        let open = self.open.get_or_insert_with(|| BlockBuilder::new(position, prev_hash));
        debug_assert_eq!(open.next_position(), position);
        open.push(body, hash);
        self.n_bytes += body.len() + 36;
        self.at_boundary = false;
    }

    fn seal(&mut self) {
        if let Some(open) = self.open.take() {
            self.sealed.push(open.finish(self.at_boundary));
        }
    }

    fn is_empty(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty() && self.acks.is_empty()
    }
}

impl Sequencer {
    fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        while let Some(first) = requests.blocking_recv() {
            let mut unit = UnitBuilder::new();
            self.handle(first, &mut unit);
            // Group commit: everything already waiting joins this unit.
            while unit.n_bytes < UNIT_MAX_BYTES {
                match requests.try_recv() {
                    Ok(request) => self.handle(request, &mut unit),
                    Err(_) => break,
                }
            }
            if !self.send(unit) {
                return;
            }
        }
    }

    fn send(&mut self, mut unit: UnitBuilder) -> bool {
        if unit.is_empty() {
            return true;
        }
        unit.seal();
        let unit = Unit { blocks: unit.sealed, acks: unit.acks, head: self.head };
        self.units.send(unit).is_ok()
    }

    fn handle(&mut self, request: Request, unit: &mut UnitBuilder) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            let _ = request.reply.send(Err(LedgerError::Poisoned));
            return;
        }
        let shared = Arc::clone(&self.shared);
        let mut index = shared.index.write().unwrap_or_else(|p| p.into_inner());
        match self.plan(&request.events, &index) {
            Err(rejection) => {
                let _ = request.reply.send(Err(rejection));
            }
            Ok(plans) => self.apply(request, plans, &mut index, unit),
        }
    }

    /// Validates the whole request before anything is numbered, so that a
    /// rejection leaves no trace.
    fn plan(&self, events: &[NewEvent], index: &StreamIndex) -> Result<Vec<Plan>> {
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(LedgerError::TooLarge { what: "the batch", size: events.len(), limit: MAX_EVENTS_PER_APPEND });
        }
        let mut plans = Vec::with_capacity(events.len());
        let mut local_keys: HashMap<u128, (usize, u64)> = HashMap::new();
        let mut local_versions: HashMap<&str, u64> = HashMap::new();
        for (event_idx, new) in events.iter().enumerate() {
            check_sizes(new)?;
            new.event.validate().map_err(|error| LedgerError::InvalidEvent { index: event_idx, error })?;
            let event_bytes = envelope::encode_event(&new.event);
            if event_bytes.len() + ENVELOPE_ROOM > MAX_RECORD_BYTES {
                return Err(LedgerError::TooLarge {
                    what: "an event",
                    size: event_bytes.len(),
                    limit: MAX_RECORD_BYTES - ENVELOPE_ROOM,
                });
            }
            let fingerprint = self.keys.fingerprint(&new.idempotency_key);
            let content = self.keys.content(&new.stream, &event_bytes);
            let conflict = |original_position| LedgerError::IdempotencyConflict {
                key: new.idempotency_key.clone(),
                original_position,
            };
            if let Some(KeyUse { position, content: original }) = self.keys.get(fingerprint) {
                if original != content {
                    return Err(conflict(position));
                }
                plans.push(Plan::Duplicate(position));
                continue;
            }
            if let Some(&(earlier_idx, original)) = local_keys.get(&fingerprint) {
                if original != content {
                    return Err(conflict(0));
                }
                plans.push(Plan::DuplicateOf(earlier_idx));
                continue;
            }
            let current =
                local_versions.get(new.stream.as_str()).copied().unwrap_or_else(|| index.version(&new.stream));
            let matches = match new.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current == 0,
                ExpectedVersion::Exact(version) => current == version,
            };
            if !matches {
                return Err(LedgerError::WrongExpectedVersion {
                    stream: new.stream.clone(),
                    expected: new.expected,
                    actual: current,
                });
            }
            local_versions.insert(new.stream.as_str(), current + 1);
            local_keys.insert(fingerprint, (event_idx, content));
            plans.push(Plan::New { event_bytes, fingerprint, content, version: current + 1 });
        }
        Ok(plans)
    }

    fn apply(&mut self, request: Request, plans: Vec<Plan>, index: &mut StreamIndex, unit: &mut UnitBuilder) {
        // A request that may fill the unit is split across units, and its
        // blocks are incomplete until its last. The requests before it in
        // this unit are acknowledged with its first unit, so they must not
        // end in one of its incomplete blocks (recovery would drop them with
        // it): seal their block, complete, before it begins.
        let most_bytes: usize = plans
            .iter()
            .map(|plan| match plan {
                Plan::New { event_bytes, .. } => event_bytes.len() + ENVELOPE_ROOM + 36,
                Plan::Duplicate(_) | Plan::DuplicateOf(_) => 0,
            })
            .sum();
        if unit.n_bytes + most_bytes >= UNIT_MAX_BYTES {
            debug_assert!(unit.at_boundary);
            unit.seal();
        }
        let recorded_at = UtcTime::now();
        let mut positions = Vec::with_capacity(plans.len());
        let mut n_appended = 0;
        let mut body = Vec::with_capacity(512);
        for (new, plan) in request.events.into_iter().zip(plans) {
            let (event_bytes, fingerprint, content, version) = match plan {
                Plan::Duplicate(position) => {
                    positions.push(position);
                    continue;
                }
                Plan::DuplicateOf(earlier_idx) => {
                    positions.push(positions[earlier_idx]);
                    continue;
                }
                Plan::New { event_bytes, fingerprint, content, version } => {
                    (event_bytes, fingerprint, content, version)
                }
            };
            let position = self.head.position + 1;
            let head = EnvelopeHead {
                position,
                event_id: Uuid::new_v4(),
                recorded_at,
                stream: new.stream,
                stream_version: version,
                actor: new.actor,
                idempotency_key: new.idempotency_key,
            };
            body.clear();
            envelope::encode_record(&head, &event_bytes, &mut body);
            let hash = envelope::chain_hash(&self.head.hash, &body);
            unit.push(position, self.head.hash, &body, &hash);
            index.record(&head.stream, version, position);
            self.keys.insert(fingerprint, KeyUse { position, content });
            self.head = Head { position, hash };
            positions.push(position);
            n_appended += 1;
            if unit.n_bytes >= UNIT_MAX_BYTES {
                // A large request goes out in several units; only its last
                // block is marked complete.
                let full = std::mem::replace(unit, UnitBuilder::new());
                unit.at_boundary = false;
                let mut full = full;
                full.seal();
                let _ = self.units.send(Unit { blocks: full.sealed, acks: full.acks, head: self.boundary_head });
            }
        }
        unit.at_boundary = true;
        self.boundary_head = self.head;
        unit.acks.push(Ack { reply: request.reply, positions, n_appended });
    }
}

fn check_sizes(new: &NewEvent) -> Result<()> {
    for (what, text) in
        [("a stream id", &new.stream), ("an idempotency key", &new.idempotency_key), ("an actor", &new.actor)]
    {
        if text.len() > MAX_KEY_BYTES {
            return Err(LedgerError::TooLarge { what, size: text.len(), limit: MAX_KEY_BYTES });
        }
    }
    Ok(())
}

/// The committer: store, flush, fdatasync, then acknowledge. After a failure
/// nothing more is written until the ledger is reopened.
fn commit_units(shared: &Shared, units: std_mpsc::Receiver<Unit>) {
    let mut next_position = shared.durable_head().position + 1;
    for unit in units {
        if shared.poisoned.load(Ordering::Acquire) {
            fail(unit.acks, None);
            continue;
        }
        match store(shared, &unit.blocks, next_position) {
            Ok(stored) => {
                next_position += stored;
                if stored > 0 {
                    *shared.durable.lock().unwrap_or_else(|p| p.into_inner()) = unit.head;
                }
                let head = shared.durable_head();
                for ack in unit.acks {
                    let outcome = AppendOutcome { positions: ack.positions, n_appended: ack.n_appended, head };
                    let _ = ack.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                shared.poisoned.store(true, Ordering::Release);
                fail(unit.acks, Some(error));
            }
        }
    }
}

fn fail(acks: Vec<Ack>, mut first_error: Option<LedgerError>) {
    for ack in acks {
        let _ = ack.reply.send(Err(first_error.take().unwrap_or(LedgerError::Poisoned)));
    }
}

/// Stores a unit's blocks durably; returns how many records they hold.
fn store(shared: &Shared, blocks: &[SealedBlock], next_position: u64) -> Result<u64> {
    if blocks.is_empty() {
        return Ok(0);
    }
    let mut batch = sled::Batch::default();
    let mut expected_first = next_position;
    for sealed in blocks {
        // Pair assertion: blocks continue the stored log without a gap.
        assert_eq!(sealed.first_position, expected_first, "blocks of a unit are contiguous");
        expected_first += u64::from(sealed.n_records);
        batch.insert(&block::key(sealed.first_position), sealed.bytes.as_slice());
    }
    shared.blocks.apply_batch(batch)?;
    shared.flush_durably()?;
    Ok(expected_first - next_position)
}

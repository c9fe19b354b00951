//! The single writer, as a pipeline of three threads: the sequencer checks
//! expected versions and idempotency keys, numbers and encodes records into
//! blocks; the hasher writes the SM3 chain into them and compresses them
//! (`SealedBlock::compress`); the committer stores
//! each unit of blocks, flushes, fdatasyncs and only then acknowledges. The
//! hasher chains the next unit while the committer waits for the disk, and
//! concurrent requests share one sync (group commit). Validation, encoding
//! and fingerprints are done by the appending caller, on its own thread.

use super::block::{self, BlockBuilder, SealedBlock};
use super::flusher::{self, Flusher};
use super::index::{fingerprint_map, Fingerprints, Frozen, Indexes, KeyIndex, KeyUse, StreamIndex};
use super::sled_log::Shared;
use super::{
    probe_outcome, AppendOutcome, ExpectedVersion, Head, NewEvent, Plan, MAX_EVENTS_PER_APPEND, MAX_KEY_BYTES,
};
use crate::envelope::{self, EnvelopeHead, MAX_RECORD_BYTES};
use crate::error::{LedgerError, Result};
use crate::sync::{lock_plain, write_plain};
use crate::time::UtcTime;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Requests waiting for the sequencer (a full queue makes appenders wait).
const REQUEST_QUEUE: usize = 4096;
/// Units waiting for the hasher, and for the committer.
const UNIT_QUEUE: usize = 4;
/// A unit is handed on once it holds this many bytes.
const UNIT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Units queued for the committer join one sync up to this many bytes.
const COMMIT_MAX_BYTES: usize = 2 * UNIT_MAX_BYTES;
/// Room left in a record for its envelope head.
const ENVELOPE_ROOM: usize = 3 * MAX_KEY_BYTES + 64;
/// A record's framing in a block: its length and its hash.
const RECORD_FRAME_BYTES: usize = 4 + 32;

type Reply = oneshot::Sender<Result<AppendOutcome>>;

/// An event checked and encoded by its caller.
struct Prepared {
    stream: String,
    stream_fingerprint: u128,
    expected: ExpectedVersion,
    idempotency_key: String,
    key_fingerprint: u128,
    actor: String,
    event_bytes: Vec<u8>,
    content: u64,
}

struct Request {
    events: Vec<Prepared>,
    reply: Reply,
    /// A dry run: planned as an append, answered, nothing applied.
    probe: bool,
}

/// A request's positions, acknowledged once its unit is durable.
struct Ack {
    reply: Reply,
    positions: Vec<u64>,
    n_appended: usize,
}

/// Blocks to store with one flush + fdatasync, and whom to tell. The
/// sequencer leaves the hashes and `head` to the hasher.
struct Unit {
    blocks: Vec<SealedBlock>,
    acks: Vec<Ack>,
    /// The last record of the last complete block so far: what readers may
    /// see once the unit is stored, since recovery never drops it.
    head: Head,
}

pub(crate) struct WriterHandle {
    requests: Option<mpsc::Sender<Request>>,
    fingerprints: Fingerprints,
    threads: Vec<JoinHandle<()>>,
    /// Joined after the others: it writes what they leave in memory.
    index_writer: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

pub(crate) fn start(shared: Arc<Shared>, head: Head, keys: KeyIndex) -> WriterHandle {
    let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE);
    let (numbered_tx, numbered_rx) = std_mpsc::sync_channel(UNIT_QUEUE);
    let (hashed_tx, hashed_rx) = std_mpsc::sync_channel(UNIT_QUEUE);
    let fingerprints = shared.fingerprints;
    let sequencer_shared = Arc::clone(&shared);
    let (frozen_tx, index_writer) = match shared.index_files.as_ref() {
        Some(_) => {
            let Flusher { frozen, writer_stopped, thread } = flusher::start(Arc::clone(&shared));
            (Some(frozen), Some((writer_stopped, thread)))
        }
        None => (None, None),
    };
    let memtable_max_keys = shared.index_files.as_ref().map_or(usize::MAX, |files| files.memtable_max_keys);
    let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new().name(name.into()).spawn(work).expect("spawn a writer thread")
    };
    let sequencer = spawn(
        "yibao-sequencer",
        Box::new(move || {
            let sequencer = Sequencer {
                shared: sequencer_shared,
                position: head.position,
                keys,
                units: numbered_tx,
                frozen: frozen_tx,
                memtable_max_keys,
            };
            sequencer.run(request_rx);
        }),
    );
    let hasher = spawn("yibao-hasher", Box::new(move || chain_units(head, numbered_rx, hashed_tx)));
    let committer = spawn("yibao-committer", Box::new(move || commit_units(&shared, hashed_rx)));
    WriterHandle { requests: Some(request_tx), fingerprints, threads: vec![sequencer, hasher, committer], index_writer }
}

impl WriterHandle {
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        let events = prepare(self.fingerprints, events)?;
        let (reply, response) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(LedgerError::Closed)?;
        requests.send(Request { events, reply, probe: false }).await.map_err(|_| LedgerError::Closed)?;
        response.await.map_err(|_| LedgerError::Closed)?
    }

    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.send_blocking(events, false)
    }

    /// What `append_blocking` would answer now, without appending: the
    /// position of each event the log already holds, 0 for one it would
    /// append, and the error it would give.
    pub fn probe_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.send_blocking(events, true)
    }

    fn send_blocking(&self, events: Vec<NewEvent>, probe: bool) -> Result<AppendOutcome> {
        let events = prepare(self.fingerprints, events)?;
        let (reply, response) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(LedgerError::Closed)?;
        requests.blocking_send(Request { events, reply, probe }).map_err(|_| LedgerError::Closed)?;
        response.blocking_recv().map_err(|_| LedgerError::Closed)?
    }
}

impl Drop for WriterHandle {
    /// Closing the queue lets the threads finish what they hold, then stop.
    fn drop(&mut self) {
        self.requests.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some((writer_stopped, thread)) = self.index_writer.take() {
            writer_stopped.store(true, Ordering::Release);
            let _ = thread.join();
        }
    }
}

/// Checks sizes and fields, encodes each event and fingerprints its keys:
/// everything about a request that does not depend on the log.
fn prepare(fingerprints: Fingerprints, events: Vec<NewEvent>) -> Result<Vec<Prepared>> {
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(LedgerError::TooLarge { what: "the batch", size: events.len(), limit: MAX_EVENTS_PER_APPEND });
    }
    let mut prepared = Vec::with_capacity(events.len());
    for (event_idx, new) in events.into_iter().enumerate() {
        let event_bytes = check_new_event(&new, event_idx)?;
        let stream_fingerprint = fingerprints.stream(&new.stream);
        prepared.push(Prepared {
            key_fingerprint: fingerprints.key(&new.idempotency_key),
            content: fingerprints.content(stream_fingerprint, &event_bytes),
            stream_fingerprint,
            stream: new.stream,
            expected: new.expected,
            idempotency_key: new.idempotency_key,
            actor: new.actor,
            event_bytes,
        });
    }
    Ok(prepared)
}

/// Every check the writer makes on one event before it looks at the log:
/// the lengths of its stream id, key and actor, the event's limits and
/// canonical form, a key that takes no other fact's, the record's size.
/// An import runs it on every line before it appends anything. Returns
/// the encoded event, which the checks needed; `event_idx` is the event's
/// index in its request, as `LedgerError::InvalidEvent` names it.
pub fn check_new_event(new: &NewEvent, event_idx: usize) -> Result<Vec<u8>> {
    check_sizes(new)?;
    new.event.validate().map_err(|error| LedgerError::InvalidEvent { index: event_idx, error })?;
    let event_bytes = envelope::encode_event(&new.event);
    // Every append passes here: no key can take another fact's place.
    let own_key = || new.event.natural_key().unwrap_or_else(|| super::content_key_of(&new.event, &event_bytes));
    new.event
        .check_idempotency_key_against(&new.idempotency_key, own_key)
        .map_err(|error| LedgerError::InvalidEvent { index: event_idx, error })?;
    if event_bytes.len() + ENVELOPE_ROOM > MAX_RECORD_BYTES {
        return Err(LedgerError::TooLarge {
            what: "an event",
            size: event_bytes.len(),
            limit: MAX_RECORD_BYTES - ENVELOPE_ROOM,
        });
    }
    Ok(event_bytes)
}

/// A fact's content as a backend that stores it compares it for
/// idempotency: the SM3 of its stream and its encoded event. Stable across
/// processes and restores (sled's in-memory fingerprints are seeded by a
/// secret of its own instead).
pub fn content_digest(stream: &str, event_bytes: &[u8]) -> envelope::Hash {
    let mut bytes = Vec::with_capacity(stream.len() + 1 + event_bytes.len());
    bytes.extend_from_slice(stream.as_bytes());
    // The stream id is text: a zero byte ends it unambiguously.
    bytes.push(0);
    bytes.extend_from_slice(event_bytes);
    envelope::sm3(&bytes)
}

struct Sequencer {
    shared: Arc<Shared>,
    /// The last numbered position.
    position: u64,
    /// The live memtable's keys (its streams are in `shared.index`).
    keys: KeyIndex,
    units: std_mpsc::SyncSender<Unit>,
    /// To the index writer (none when the index is not kept on disk).
    frozen: Option<std_mpsc::Sender<Arc<Frozen>>>,
    memtable_max_keys: usize,
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

    fn push(&mut self, position: u64, body: &[u8]) {
        if self.open.as_ref().is_some_and(|b| !b.fits(body.len())) {
            self.seal();
        }
        let open = self.open.get_or_insert_with(|| BlockBuilder::new(position, [0; 32]));
        debug_assert_eq!(open.next_position(), position);
        open.push_unhashed(body);
        self.n_bytes += body.len() + RECORD_FRAME_BYTES;
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

    fn into_unit(mut self) -> Unit {
        self.seal();
        Unit { blocks: self.sealed, acks: self.acks, head: Head { position: 0, hash: [0; 32] } }
    }
}

impl Sequencer {
    fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        self.freeze_memtable(false);
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
            if !unit.is_empty() && self.units.send(unit.into_unit()).is_err() {
                return;
            }
            self.freeze_memtable(false);
        }
        // Closing: what is in memory goes to disk once it is durable.
        self.freeze_memtable(true);
    }

    /// Hands a full memtable (or, closing, any) to the index writer and
    /// starts an empty one. Called between requests: the position is the
    /// end of one, which the committer makes durable.
    fn freeze_memtable(&mut self, closing: bool) {
        let Some(frozen_tx) = self.frozen.as_ref() else { return };
        if self.keys.is_empty() || (!closing && self.keys.len() < self.memtable_max_keys) {
            return;
        }
        let capacity = if closing { 0 } else { self.memtable_max_keys };
        let mut index = write_plain(&self.shared.index);
        let frozen = Arc::new(Frozen {
            keys: std::mem::replace(&mut self.keys, KeyIndex::with_capacity(capacity)),
            streams: std::mem::replace(&mut index.streams, StreamIndex::with_capacity(capacity / 2)),
            position: self.position,
        });
        index.frozen.push(Arc::clone(&frozen));
        drop(index);
        let _ = frozen_tx.send(frozen);
    }

    fn handle(&mut self, request: Request, unit: &mut UnitBuilder) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            let _ = request.reply.send(Err(LedgerError::Poisoned));
            return;
        }
        let shared = Arc::clone(&self.shared);
        // Only this thread writes the index; should it panic mid-request,
        // the writer is gone (appends refused) and readers take only
        // positions up to the durable head, which the request never reached.
        let mut index = write_plain(&shared.index);
        match self.plan(&request.events, &index) {
            Err(rejection) => {
                let _ = request.reply.send(Err(rejection));
            }
            Ok(plans) if request.probe => {
                let _ = request.reply.send(Ok(probe_outcome(&plans, self.shared.durable_head())));
            }
            Ok(plans) => self.apply(request, plans, &mut index, unit),
        }
    }

    /// Checks keys and versions for the whole request before anything is
    /// numbered, so that a rejection leaves no trace.
    fn plan(&self, events: &[Prepared], index: &Indexes) -> Result<Vec<Plan>> {
        let mut plans = Vec::with_capacity(events.len());
        let mut local_keys = fingerprint_map::<(usize, u64)>(events.len());
        let mut local_versions = fingerprint_map::<u64>(events.len().min(1024));
        for (event_idx, new) in events.iter().enumerate() {
            let conflict = |original_position| LedgerError::IdempotencyConflict {
                key: new.idempotency_key.clone(),
                original_position,
            };
            let recorded = match self.keys.get(new.key_fingerprint) {
                Some(key_use) => Some(key_use),
                None => index.key(new.key_fingerprint)?,
            };
            if let Some(KeyUse { position, content: original }) = recorded {
                if original != new.content {
                    return Err(conflict(position));
                }
                plans.push(Plan::Duplicate(position));
                continue;
            }
            if let Some(&(earlier_idx, original)) = local_keys.get(&new.key_fingerprint) {
                if original != new.content {
                    return Err(conflict(0));
                }
                plans.push(Plan::DuplicateOf(earlier_idx));
                continue;
            }
            let current = match local_versions.get(&new.stream_fingerprint) {
                Some(&version) => version,
                None => index.version(new.stream_fingerprint)?,
            };
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
            local_versions.insert(new.stream_fingerprint, current + 1);
            local_keys.insert(new.key_fingerprint, (event_idx, new.content));
            plans.push(Plan::New { version: current + 1 });
        }
        Ok(plans)
    }

    fn apply(&mut self, request: Request, plans: Vec<Plan>, index: &mut Indexes, unit: &mut UnitBuilder) {
        // A request that may fill the unit is split across units, and its
        // blocks are incomplete until its last. The requests before it in
        // this unit are acknowledged with its first unit, so they must not
        // end in one of its incomplete blocks (recovery would drop them with
        // it): seal their block, complete, before it begins.
        let most_bytes: usize = request
            .events
            .iter()
            .zip(&plans)
            .filter(|(_, plan)| matches!(plan, Plan::New { .. }))
            .map(|(new, _)| new.event_bytes.len() + ENVELOPE_ROOM + RECORD_FRAME_BYTES)
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
            let version = match plan {
                Plan::Duplicate(position) => {
                    positions.push(position);
                    continue;
                }
                Plan::DuplicateOf(earlier_idx) => {
                    positions.push(positions[earlier_idx]);
                    continue;
                }
                Plan::New { version } => version,
            };
            let position = self.position + 1;
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
            envelope::encode_record(&head, &new.event_bytes, &mut body);
            unit.push(position, &body);
            index.record(new.stream_fingerprint, version, position);
            self.keys.insert(new.key_fingerprint, KeyUse { position, content: new.content });
            self.position = position;
            positions.push(position);
            n_appended += 1;
            if unit.n_bytes >= UNIT_MAX_BYTES {
                // A large request goes out in several units; only its last
                // block is marked complete.
                let full = std::mem::replace(unit, UnitBuilder::new());
                unit.at_boundary = false;
                let _ = self.units.send(full.into_unit());
            }
        }
        unit.at_boundary = true;
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

/// The hasher: writes the chain into each unit's blocks, in order, and
/// works out the head the unit makes durable.
fn chain_units(start: Head, units: std_mpsc::Receiver<Unit>, hashed: std_mpsc::SyncSender<Unit>) {
    let mut last_hash = start.hash;
    let mut boundary = start;
    for mut unit in units {
        for sealed in &mut unit.blocks {
            last_hash = block::chain(sealed, last_hash);
            sealed.compress();
            if sealed.complete {
                boundary = Head { position: sealed.first_position + u64::from(sealed.n_records) - 1, hash: last_hash };
            }
        }
        unit.head = boundary;
        if hashed.send(unit).is_err() {
            return;
        }
    }
}

/// The committer: store, flush, fdatasync, then acknowledge. Units that
/// queued up while the disk was busy share the next sync. After a failure
/// nothing more is written until the ledger is reopened.
fn commit_units(shared: &Shared, units: std_mpsc::Receiver<Unit>) {
    let mut next_position = shared.durable_head().position + 1;
    while let Ok(first) = units.recv() {
        let mut group = vec![first];
        let mut n_bytes: usize = group[0].blocks.iter().map(|b| b.bytes.len()).sum();
        while n_bytes < COMMIT_MAX_BYTES {
            let Ok(unit) = units.try_recv() else { break };
            n_bytes += unit.blocks.iter().map(|b| b.bytes.len()).sum::<usize>();
            group.push(unit);
        }
        let head = group.last().map(|unit| unit.head);
        let acks: Vec<Ack> = group.iter_mut().flat_map(|unit| std::mem::take(&mut unit.acks)).collect();
        if shared.poisoned.load(Ordering::Acquire) {
            fail(acks.into_iter(), None);
            continue;
        }
        match store(shared, group.iter().flat_map(|unit| &unit.blocks), next_position) {
            Ok(stored) => {
                next_position += stored;
                if let Some(head) = head.filter(|_| stored > 0) {
                    *lock_plain(&shared.durable) = head;
                }
                let head = shared.durable_head();
                for ack in acks {
                    let outcome = AppendOutcome { positions: ack.positions, n_appended: ack.n_appended, head };
                    let _ = ack.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                shared.poisoned.store(true, Ordering::Release);
                fail(acks.into_iter(), Some(error));
            }
        }
    }
}

fn fail(acks: impl Iterator<Item = Ack>, mut first_error: Option<LedgerError>) {
    for ack in acks {
        let _ = ack.reply.send(Err(first_error.take().unwrap_or(LedgerError::Poisoned)));
    }
}

/// Stores blocks durably; returns how many records they hold.
fn store<'a>(shared: &Shared, blocks: impl Iterator<Item = &'a SealedBlock>, next_position: u64) -> Result<u64> {
    let mut blocks = blocks.peekable();
    if blocks.peek().is_none() {
        return Ok(0);
    }
    let mut batch = sled::Batch::default();
    let mut keys = Vec::new();
    let mut expected_first = next_position;
    for sealed in blocks {
        // Pair assertion: blocks continue the stored log without a gap.
        assert_eq!(sealed.first_position, expected_first, "blocks of a unit are contiguous");
        expected_first += u64::from(sealed.n_records);
        let key = block::key(sealed.first_position);
        batch.insert(&key, sealed.bytes.as_slice());
        keys.push(key);
    }
    shared.blocks.apply_batch(batch)?;
    shared.flush_durably()?;
    // A leaf is written a block at a time and then never again: without
    // this, sled keeps every leaf the writer made (see the function).
    for key in &keys {
        super::sled_log::count_access(&shared.blocks, key)?;
    }
    Ok(expected_first - next_position)
}

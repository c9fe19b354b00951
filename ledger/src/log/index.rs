//! The log's indexes: stream versions and positions, and idempotency keys.
//! Derived from the log. Recent entries live in memory (the memtable, and
//! frozen memtables being written out); older ones in immutable runs on
//! disk (`run`), listed by the manifest with the position they cover.
//!
//! Both are keyed by 128-bit fingerprints of the strings, seeded by the
//! ledger's secret so that nobody can prepare colliding keys in advance;
//! the fingerprints are computed by the appending caller, off the writer's
//! thread.

use super::run::{Entry, Run, Section};
use crate::error::Result;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed};

/// The ledger's index secret: 32 random bytes.
pub(crate) type Secret = [u8; 32];

/// Seeded fingerprints of stream ids, idempotency keys and contents.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fingerprints {
    key_seed: u64,
    stream_seed: u64,
    content_seed: u64,
}

impl Fingerprints {
    /// Fingerprints for this process only (no index kept on disk).
    pub fn new() -> Fingerprints {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Fingerprints::from_secret(&secret)
    }

    pub fn from_secret(secret: &Secret) -> Fingerprints {
        let word = |i: usize| u64::from_le_bytes(secret[i * 8..i * 8 + 8].try_into().expect("8 of 32 bytes"));
        Fingerprints { key_seed: word(0), stream_seed: word(1), content_seed: word(2) ^ word(3) }
    }

    pub fn key(&self, idempotency_key: &str) -> u128 {
        xxh3_128_with_seed(idempotency_key.as_bytes(), self.key_seed)
    }

    pub fn stream(&self, stream: &str) -> u128 {
        xxh3_128_with_seed(stream.as_bytes(), self.stream_seed)
    }

    /// Digest of a fact's content: its stream and its encoded event.
    pub fn content(&self, stream_fingerprint: u128, event_bytes: &[u8]) -> u64 {
        xxh3_64_with_seed(event_bytes, self.content_seed ^ stream_fingerprint as u64)
    }
}

/// What a manifest records of the secret: it tells whether the runs were
/// made with this secret, and says nothing usable about the secret itself.
pub(crate) fn secret_check(secret: &Secret) -> u64 {
    let mut bytes = b"yibao index secret check".to_vec();
    bytes.extend_from_slice(secret);
    let digest = crate::envelope::sm3(&bytes);
    u64::from_le_bytes(digest[..8].try_into().expect("8 of 32 bytes"))
}

/// Keys are already hashes: no second hashing.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }

    fn write_usize(&mut self, value: usize) {
        self.0 = value as u64;
    }
}

/// A map keyed by fingerprints.
pub(crate) type FingerprintMap<V> = HashMap<u128, V, BuildHasherDefault<PassThrough>>;

pub(crate) fn fingerprint_map<V>(capacity: usize) -> FingerprintMap<V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

#[derive(Default)]
pub(crate) struct StreamEntry {
    pub version: u64,
    pub positions: Vec<u64>,
}

/// Stream versions and the positions of each stream's events.
pub(crate) struct StreamIndex {
    streams: FingerprintMap<StreamEntry>,
}

impl StreamIndex {
    pub fn with_capacity(capacity: usize) -> StreamIndex {
        StreamIndex { streams: fingerprint_map(capacity) }
    }

    pub fn version(&self, stream: u128) -> u64 {
        self.streams.get(&stream).map_or(0, |entry| entry.version)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u128, &StreamEntry)> {
        self.streams.iter().map(|(&stream, entry)| (stream, entry))
    }

    /// Entries for a run, sorted: (stream, version, position). A memtable
    /// covers a range of positions whole, so a stream's positions in it
    /// carry consecutive versions ending at its last.
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(self.streams.values().map(|entry| entry.positions.len()).sum());
        for (&fingerprint, entry) in &self.streams {
            let first_version = entry.version + 1 - entry.positions.len() as u64;
            for (offset, &position) in entry.positions.iter().enumerate() {
                entries.push(Entry { fingerprint, first: first_version + offset as u64, second: position });
            }
        }
        entries.sort_unstable();
        entries
    }

    pub fn positions(&self, stream: u128) -> &[u64] {
        self.streams.get(&stream).map_or(&[], |entry| entry.positions.as_slice())
    }

    pub fn record(&mut self, stream: u128, version: u64, position: u64) {
        let entry = self.streams.entry(stream).or_default();
        entry.version = version;
        entry.positions.push(position);
    }
}

/// Where an idempotency key was first used, and a digest of what it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyUse {
    pub position: u64,
    pub content: u64,
}

/// Idempotency keys by fingerprint.
pub(crate) struct KeyIndex {
    keys: FingerprintMap<KeyUse>,
}

impl KeyIndex {
    pub fn with_capacity(capacity: usize) -> KeyIndex {
        KeyIndex { keys: fingerprint_map(capacity) }
    }

    pub fn get(&self, key: u128) -> Option<KeyUse> {
        self.keys.get(&key).copied()
    }

    pub fn insert(&mut self, key: u128, key_use: KeyUse) {
        self.keys.insert(key, key_use);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u128, KeyUse)> + '_ {
        self.keys.iter().map(|(&key, &key_use)| (key, key_use))
    }

    /// Entries for a run, sorted: (key, position, content).
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self
            .keys
            .iter()
            .map(|(&fingerprint, key_use)| Entry { fingerprint, first: key_use.position, second: key_use.content })
            .collect();
        entries.sort_unstable();
        entries
    }
}

/// A memtable taken out of the writer's way, held in memory (and still
/// consulted) until it is on disk as a run.
pub(crate) struct Frozen {
    pub keys: KeyIndex,
    pub streams: StreamIndex,
    /// Its entries are the records up to here since the previous one's.
    pub position: u64,
}

/// The indexes as the sequencer and readers see them: the live memtable's
/// streams (its keys are the sequencer's own), the frozen memtables and the
/// runs. Every record is in exactly one of them.
pub(crate) struct Indexes {
    pub streams: StreamIndex,
    /// Oldest first.
    pub frozen: Vec<Arc<Frozen>>,
    /// Newest first.
    pub runs: Vec<Arc<Run>>,
}

impl Indexes {
    pub fn empty() -> Indexes {
        Indexes { streams: StreamIndex::with_capacity(0), frozen: Vec::new(), runs: Vec::new() }
    }

    pub fn record(&mut self, stream: u128, version: u64, position: u64) {
        self.streams.record(stream, version, position);
    }

    /// Where a key was first used, outside the live memtable. A key is
    /// recorded once, so the newest place that holds it is the only one.
    pub fn key(&self, key: u128) -> Result<Option<KeyUse>> {
        for frozen in self.frozen.iter().rev() {
            if let Some(key_use) = frozen.keys.get(key) {
                return Ok(Some(key_use));
            }
        }
        for run in &self.runs {
            if let Some(entry) = run.last_at_or_below(Section::Keys, key, u64::MAX)? {
                return Ok(Some(KeyUse { position: entry.first, content: entry.second }));
            }
        }
        Ok(None)
    }

    /// The stream's version: from the newest place that holds it.
    pub fn version(&self, stream: u128) -> Result<u64> {
        let live = self.streams.version(stream);
        if live > 0 {
            return Ok(live);
        }
        for frozen in self.frozen.iter().rev() {
            let version = frozen.streams.version(stream);
            if version > 0 {
                return Ok(version);
            }
        }
        for run in &self.runs {
            if let Some(entry) = run.last_at_or_below(Section::Streams, stream, u64::MAX)? {
                return Ok(entry.first);
            }
        }
        Ok(0)
    }

    /// The positions of a stream's records, in order.
    pub fn positions(&self, stream: u128) -> Result<Vec<u64>> {
        let mut entries = Vec::new();
        for run in self.runs.iter().rev() {
            run.all_of(Section::Streams, stream, &mut entries)?;
        }
        let mut positions: Vec<u64> = entries.iter().map(|entry| entry.second).collect();
        for frozen in &self.frozen {
            positions.extend_from_slice(frozen.streams.positions(stream));
        }
        positions.extend_from_slice(self.streams.positions(stream));
        Ok(positions)
    }
}

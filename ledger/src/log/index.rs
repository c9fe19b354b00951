//! The writer's in-memory indexes: stream versions and positions, and
//! idempotency keys. Derived from the log; rebuilt when it is opened.
//!
//! Both are keyed by 128-bit fingerprints of the strings, seeded per process
//! so that nobody can prepare colliding keys in advance; the fingerprints
//! are computed by the appending caller, off the writer's thread.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed};

/// Seeded fingerprints of stream ids, idempotency keys and contents.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fingerprints {
    seed: u64,
}

impl Fingerprints {
    pub fn new() -> Fingerprints {
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 of 16 bytes"));
        Fingerprints { seed }
    }

    pub fn key(&self, idempotency_key: &str) -> u128 {
        xxh3_128_with_seed(idempotency_key.as_bytes(), self.seed)
    }

    pub fn stream(&self, stream: &str) -> u128 {
        xxh3_128_with_seed(stream.as_bytes(), !self.seed)
    }

    /// Digest of a fact's content: its stream and its encoded event.
    pub fn content(&self, stream_fingerprint: u128, event_bytes: &[u8]) -> u64 {
        xxh3_64_with_seed(event_bytes, self.seed ^ stream_fingerprint as u64)
    }
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
}

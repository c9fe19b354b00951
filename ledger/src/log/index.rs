//! The writer's in-memory indexes: stream versions and positions, and
//! idempotency keys. Derived from the log; rebuilt when it is opened.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed};

#[derive(Default)]
pub(crate) struct StreamEntry {
    pub version: u64,
    pub positions: Vec<u64>,
}

#[derive(Default)]
pub(crate) struct StreamIndex {
    pub streams: HashMap<String, StreamEntry>,
}

impl StreamIndex {
    pub fn version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |entry| entry.version)
    }

    pub fn record(&mut self, stream: &str, version: u64, position: u64) {
        let entry = match self.streams.get_mut(stream) {
            Some(entry) => entry,
            None => self.streams.entry(stream.to_string()).or_default(),
        };
        entry.version = version;
        entry.positions.push(position);
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
}

/// Where an idempotency key was first used, and a digest of what it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyUse {
    pub position: u64,
    pub content: u64,
}

/// Idempotency keys by a 128-bit fingerprint. The fingerprints are seeded
/// per process so that nobody can prepare colliding keys in advance.
pub(crate) struct KeyIndex {
    seed: u64,
    keys: HashMap<u128, KeyUse, BuildHasherDefault<PassThrough>>,
}

impl KeyIndex {
    pub fn new() -> KeyIndex {
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 of 16 bytes"));
        KeyIndex { seed, keys: HashMap::default() }
    }

    pub fn fingerprint(&self, key: &str) -> u128 {
        xxh3_128_with_seed(key.as_bytes(), self.seed)
    }

    /// Digest of a fact's content: its stream and its encoded event.
    pub fn content(&self, stream: &str, event_bytes: &[u8]) -> u64 {
        xxh3_64_with_seed(event_bytes, self.seed ^ xxh3_64_with_seed(stream.as_bytes(), self.seed))
    }

    pub fn get(&self, fingerprint: u128) -> Option<KeyUse> {
        self.keys.get(&fingerprint).copied()
    }

    pub fn insert(&mut self, fingerprint: u128, key_use: KeyUse) {
        self.keys.insert(fingerprint, key_use);
    }
}

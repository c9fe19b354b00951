//! Compact hash indexes for matching a million receipts: keys are 64-bit
//! hashes (small tables, few cache misses), every hit is verified against
//! the real key by the caller or here, and collisions are handled.

use crate::model::{Receipt, Side};
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};

/// 64-bit hash of a key.
pub(crate) fn hash_of(key: impl Hash) -> u64 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// No item: the end of a chain.
const NONE: u32 = u32::MAX;

/// The key of an empty slot of a [`FlatMap`].
const EMPTY: u64 = u64::MAX;

/// An open-addressing table from 64-bit hashes to small values, each entry
/// one 16-byte slot: a lookup costs one cache miss where a general hash map
/// costs two (control bytes, then the bucket). Keys are hashes already, so
/// they are not hashed again: the slot is taken from the high bits.
pub(crate) struct FlatMap<V> {
    slots: Vec<(u64, V)>,
    /// 64 − log2(slots).
    shift: u32,
    len: usize,
}

impl<V: Copy + Default> FlatMap<V> {
    pub fn with_capacity(capacity: usize) -> FlatMap<V> {
        // At most half full, at least 16 slots.
        let n_slots = capacity.saturating_mul(2).max(16).next_power_of_two();
        FlatMap { slots: vec![(EMPTY, V::default()); n_slots], shift: 64 - n_slots.trailing_zeros(), len: 0 }
    }

    /// `EMPTY` marks free slots, so the one hash equal to it is moved next
    /// to it (all users verify real keys, so sharing a hash is harmless).
    fn key(hash: u64) -> u64 {
        if hash == EMPTY {
            EMPTY - 1
        } else {
            hash
        }
    }

    /// The slot holding `key`, or the free slot where it would go.
    fn find(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut index = (key >> self.shift) as usize;
        loop {
            let slot_key = self.slots[index].0;
            if slot_key == key || slot_key == EMPTY {
                return index;
            }
            index = (index + 1) & mask;
        }
    }

    /// Reads the slot of `hash` and returns its key: reading the slots of
    /// several keys in a row lets their cache misses overlap.
    pub fn touch(&self, hash: u64) -> u64 {
        let mask = self.slots.len() - 1;
        self.slots[(Self::key(hash) >> self.shift) as usize & mask].0
    }

    pub fn get(&self, hash: u64) -> Option<V> {
        let key = Self::key(hash);
        let slot = self.slots[self.find(key)];
        (slot.0 == key).then_some(slot.1)
    }

    /// The value of `hash`, inserting `value` first if there is none.
    pub fn get_or_insert(&mut self, hash: u64, value: V) -> &mut V {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let key = Self::key(hash);
        let index = self.find(key);
        if self.slots[index].0 == EMPTY {
            self.slots[index] = (key, value);
            self.len += 1;
        }
        &mut self.slots[index].1
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, FlatMap::with_capacity(self.slots.len()));
        for (key, value) in old.slots.into_iter().filter(|slot| slot.0 != EMPTY) {
            let index = self.find(key);
            self.slots[index] = (key, value);
            self.len += 1;
        }
    }
}

/// Lists of item numbers by key hash, in one array: no allocation per key.
/// Items of different keys may share a list (a hash collision): callers
/// check each item's real key.
pub(crate) struct Chains {
    /// First item of a list, and the node of the rest.
    heads: FlatMap<(u32, u32)>,
    /// (item, next node).
    nodes: Vec<(u32, u32)>,
}

impl Chains {
    pub fn with_capacity(capacity: usize) -> Chains {
        Chains { heads: FlatMap::with_capacity(capacity), nodes: Vec::new() }
    }

    /// Adds an item in front of its list: add items in descending order so
    /// that lists are ascending.
    pub fn push_front(&mut self, hash: u64, item: u32) {
        let head = self.heads.get_or_insert(hash, (NONE, NONE));
        if head.0 != NONE {
            let node = u32::try_from(self.nodes.len()).expect("fewer than 2^32 ledger items");
            self.nodes.push(*head);
            *head = (item, node);
        } else {
            *head = (item, NONE);
        }
    }

    pub fn first(&self, hash: u64) -> Option<u32> {
        self.heads.get(hash).map(|head| head.0)
    }

    pub fn touch(&self, hash: u64) -> u64 {
        self.heads.touch(hash)
    }

    pub fn iter(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.heads.get(hash);
        std::iter::from_fn(move || {
            let (item, node) = next?;
            next = self.nodes.get(node as usize).copied();
            Some(item)
        })
    }
}

/// The key receipts are told apart by: side, channel, reference.
pub(crate) type ReceiptKey<'a> = (Side, Option<&'a str>, &'a str);

fn hash_key(key: ReceiptKey<'_>) -> u64 {
    hash_of(key)
}

pub(crate) fn receipt_key(receipt: &Receipt) -> Option<ReceiptKey<'_>> {
    Some((receipt.side(), receipt.channel.as_deref(), receipt.reference.as_deref()?))
}

/// The first receipt of each key.
pub(crate) struct FirstReceipts<'a> {
    hash: fn(ReceiptKey<'_>) -> u64,
    /// The first receipt of a key hash, by its number in `receipts`.
    by_hash: FlatMap<u32>,
    receipts: Vec<&'a Receipt>,
    /// Receipts whose key hash is another key's.
    collided: FxHashMap<ReceiptKey<'a>, &'a Receipt>,
}

impl<'a> FirstReceipts<'a> {
    pub fn with_capacity(capacity: usize) -> FirstReceipts<'a> {
        FirstReceipts {
            hash: hash_key,
            by_hash: FlatMap::with_capacity(capacity),
            receipts: Vec::new(),
            collided: FxHashMap::default(),
        }
    }

    /// The first receipt of the same key, or `None` after remembering this
    /// one as the first. Receipts without a reference have no key.
    pub fn first_or_insert(&mut self, receipt: &'a Receipt) -> Option<&'a Receipt> {
        let key = receipt_key(receipt)?;
        let number = u32::try_from(self.receipts.len()).unwrap_or(NONE);
        let first = *self.by_hash.get_or_insert((self.hash)(key), number);
        if first == number {
            self.receipts.push(receipt);
            return None;
        }
        let first = self.receipts[first as usize];
        if receipt_key(first) == Some(key) {
            return Some(first);
        }
        match self.collided.get(&key) {
            Some(first) => Some(*first),
            None => {
                self.collided.insert(key, receipt);
                None
            }
        }
    }

    pub fn touch(&self, key: ReceiptKey<'_>) -> u64 {
        self.by_hash.touch((self.hash)(key))
    }

    pub fn contains(&self, key: ReceiptKey<'_>) -> bool {
        match self.by_hash.get((self.hash)(key)) {
            None => false,
            Some(first) => receipt_key(self.receipts[first as usize]) == Some(key) || self.collided.contains_key(&key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;
    use crate::model::Direction;
    use ledger::{Date, Money};
    use std::sync::Arc;

    fn receipt(reference: &str, seq: u32) -> Receipt {
        Receipt {
            file: Arc::from("f"),
            at: Location::Line(u64::from(seq)),
            seq,
            channel: None,
            reference: Some(reference.to_string()),
            original_reference: None,
            amount: Money::from_yuan(1),
            direction: Direction::Credit,
            reversal: false,
            booked_on: Date::ymd(2024, 11, 1).expect("date"),
            payer_id: None,
            payer_name: None,
            settlement_ref: None,
            parts: Vec::new(),
        }
    }

    #[test]
    fn colliding_hashes_keep_keys_apart() {
        let receipts: Vec<Receipt> =
            ["A", "B", "A", "C", "B", "B"].iter().zip(0..).map(|(r, i)| receipt(r, i)).collect();
        for hash in [hash_key as fn(ReceiptKey<'_>) -> u64, |_| 7] {
            let mut first = FirstReceipts { hash, ..FirstReceipts::with_capacity(4) };
            let found: Vec<Option<u32>> = receipts.iter().map(|r| first.first_or_insert(r).map(|f| f.seq)).collect();
            assert_eq!(found, vec![None, None, Some(0), None, Some(1), Some(1)]);
            assert!(first.contains((Side::Payment, None, "C")));
            assert!(!first.contains((Side::Payment, None, "D")));
            assert!(!first.contains((Side::Refund, None, "A")));
        }
    }

    #[test]
    fn chains_list_items_in_ascending_order() {
        let mut chains = Chains::with_capacity(4);
        for (hash, item) in [(1, 9), (2, 8), (1, 5), (1, 2), (3, 1)] {
            chains.push_front(hash, item);
        }
        assert_eq!(chains.iter(1).collect::<Vec<_>>(), vec![2, 5, 9]);
        assert_eq!(chains.iter(2).collect::<Vec<_>>(), vec![8]);
        assert_eq!(chains.iter(4).count(), 0);
    }
}

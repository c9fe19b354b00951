//! Answers about "now" kept beside the facts: a person-year asked before is
//! read, not derived again. Never stored (checkpoints, the person store and
//! the digest know nothing of it) and never cloned: a copy of the
//! projection starts empty and derives its own.
//!
//! Kept by the identity asked, held inline, so that a kept answer is found
//! without the projection's own maps (the identity's table and the
//! person's record are cache misses of their own). True by invalidation,
//! not by checking: the fold drops the answers under every identity of a
//! person before it changes the person (`Coverage::mark_touched`, the one
//! place every change of a person passes; the identities that find a
//! person are always their current and former ones), and every answer
//! when a policy is installed (`Coverage::on_policy`). Answers `as_of` a
//! date are derived every time (they are rarer, and a date would multiply
//! the entries); an identity longer than [`INLINE_BYTES`] is never kept.

use super::view::PersonYear;
use ledger::id::IdKind;
use ledger::sync::lock_plain;
use ledger::{Date, Identity};
use rustc_hash::FxHashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Shards, so that threads asking about different persons seldom wait for
/// one another.
const N_SHARDS: usize = 16;

/// Most bytes (an estimate: the answers' sizes and their heap parts) kept
/// for one projection, all shards together; a shard past its share is
/// emptied and fills again.
const MAX_CACHED_BYTES: usize = 1 << 30;

/// What a slot costs besides its answer: the key, the slot in the table at
/// its load factor, the `Arc`'s counts.
const SLOT_BYTES: usize = 96;

/// Longest identity kept: a resident ID has 18 characters.
const INLINE_BYTES: usize = 24;

/// The answers, by identity asked: one coverage year each (the last asked).
#[derive(Default)]
pub(super) struct Lookups {
    /// Off for a coverage of a few persons read from the person store
    /// (`Coverage::default`): the service's cache holds those by an
    /// estimate of their bytes that answers kept would exceed, and one
    /// read per question is asked once.
    keeping: bool,
    /// Made at the first answer kept: a coverage of a few persons that is
    /// never asked costs nothing.
    shards: OnceLock<Box<[Mutex<Shard>]>>,
    /// Identities asked about before, one bit per hash ([`ASKED_BITS`]): an
    /// answer is kept at the second question, so a person asked once (an
    /// office's usual caller, a listing) costs no copy and no slot. A
    /// shared bit only keeps an answer one question early.
    asked: OnceLock<Box<[AtomicU64]>>,
}

/// Bits of the asked-before filter (2 MiB).
const ASKED_BITS: usize = 1 << 24;

#[derive(Default)]
struct Shard {
    answers: FxHashMap<Key, Answer>,
    n_bytes: usize,
}

/// An identity held inline (compared without reading its heap text).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    kind: IdKind,
    n_bytes: u8,
    bytes: [u8; INLINE_BYTES],
}

impl Key {
    fn of(identity: &Identity) -> Option<Key> {
        let number = identity.number().as_bytes();
        let mut bytes = [0; INLINE_BYTES];
        bytes.get_mut(..number.len())?.copy_from_slice(number);
        Some(Key { kind: identity.kind(), n_bytes: u8::try_from(number.len()).ok()?, bytes })
    }
}

/// One person-year's answer as derived for "now".
#[derive(Clone)]
struct Answer {
    coverage_year: u16,
    covered_from: Option<Date>,
    covered_until: Option<Date>,
    /// The full view with its notes, once a question asked for it.
    view: Option<Arc<PersonYear>>,
}

impl Clone for Lookups {
    /// A copy derives its own answers: it is folded apart from this one.
    fn clone(&self) -> Lookups {
        Lookups { keeping: self.keeping, shards: OnceLock::new(), asked: OnceLock::new() }
    }
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n_answers: usize =
            self.shards.get().map_or(0, |shards| shards.iter().map(|s| lock_plain(s).answers.len()).sum());
        f.debug_struct("Lookups").field("keeping", &self.keeping).field("n_answers", &n_answers).finish()
    }
}

impl Lookups {
    /// Answers kept: the whole projection's (`Coverage::new`, a checkpoint
    /// loaded).
    pub fn keeping() -> Lookups {
        Lookups { keeping: true, shards: OnceLock::new(), asked: OnceLock::new() }
    }

    /// The full view of the person-year, if kept under `identity`.
    pub fn view(&self, identity: &Identity, coverage_year: u16) -> Option<PersonYear> {
        let key = Key::of(identity)?;
        let shard = lock_plain(self.shard(&key)?);
        let answer = shard.answers.get(&key).filter(|a| a.coverage_year == coverage_year)?;
        answer.view.as_deref().cloned()
    }

    /// Whether `date` is a covered day of the person-year, if kept.
    pub fn is_covered_on(&self, identity: &Identity, coverage_year: u16, date: Date) -> Option<bool> {
        let key = Key::of(identity)?;
        let shard = lock_plain(self.shard(&key)?);
        let answer = shard.answers.get(&key).filter(|a| a.coverage_year == coverage_year)?;
        Some(match (answer.covered_from, answer.covered_until) {
            (Some(from), Some(until)) => from <= date && date <= until,
            _ => false,
        })
    }

    /// Keeps a view derived for "now" under the identity asked;
    /// `with_notes` says whether it is the full view (without notes only
    /// the covered days are kept).
    /// Only from the second question about the identity on (see `asked`).
    pub fn keep(&self, identity: &Identity, view: &PersonYear, with_notes: bool) {
        let Some(key) = Key::of(identity).filter(|_| self.keeping) else { return };
        if !self.asked_before(&key) {
            return;
        }
        let shards = self.shards.get_or_init(|| (0..N_SHARDS).map(|_| Mutex::default()).collect());
        let answer = Answer {
            coverage_year: view.coverage_year,
            covered_from: view.covered_from,
            covered_until: view.covered_until,
            view: with_notes.then(|| Arc::new(view.clone())),
        };
        let n_bytes = SLOT_BYTES + if with_notes { view_bytes(view) } else { 0 };
        let mut shard = lock_plain(&shards[shard_of(&key)]);
        if shard.n_bytes.saturating_add(n_bytes) > MAX_CACHED_BYTES / N_SHARDS {
            shard.answers.clear();
            shard.n_bytes = 0;
        }
        let replaced = shard.answers.insert(key, answer);
        let n_replaced = replaced.map_or(0, |a| SLOT_BYTES + a.view.as_deref().map_or(0, view_bytes));
        shard.n_bytes = shard.n_bytes.saturating_sub(n_replaced).saturating_add(n_bytes);
    }

    /// Drops the answers under these identities (every identity of a
    /// person the fold is about to change).
    pub fn forget<'a>(&mut self, identities: impl IntoIterator<Item = &'a Identity>) {
        let Some(shards) = self.shards.get_mut() else { return };
        for key in identities.into_iter().filter_map(Key::of) {
            let shard = shards[shard_of(&key)].get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(answer) = shard.answers.remove(&key) {
                let n_bytes = SLOT_BYTES + answer.view.as_deref().map_or(0, view_bytes);
                shard.n_bytes = shard.n_bytes.saturating_sub(n_bytes);
            }
        }
    }

    /// Drops every answer: the policies changed.
    pub fn forget_all(&mut self) {
        self.shards = OnceLock::new();
    }

    /// Marks the identity asked; whether it was before.
    fn asked_before(&self, key: &Key) -> bool {
        let bits = self.asked.get_or_init(|| (0..ASKED_BITS / 64).map(|_| AtomicU64::new(0)).collect());
        // The hash's high bits: Fx hashing mixes upwards.
        let bit = (rustc_hash::FxBuildHasher.hash_one(key) >> (64 - ASKED_BITS.trailing_zeros())) as usize;
        let mask = 1u64 << (bit % 64);
        bits[bit / 64].fetch_or(mask, Ordering::Relaxed) & mask != 0
    }

    fn shard(&self, key: &Key) -> Option<&Mutex<Shard>> {
        self.shards.get().map(|shards| &shards[shard_of(key)])
    }
}

/// The shard by the key's hash's high bits (the table inside uses the low).
fn shard_of(key: &Key) -> usize {
    (rustc_hash::FxBuildHasher.hash_one(key) >> 60) as usize % N_SHARDS
}

/// An estimate of a kept view's bytes: the value and its heap parts.
fn view_bytes(view: &PersonYear) -> usize {
    let notes: usize = view.notes.iter().map(|note| note.len() + std::mem::size_of::<String>()).sum();
    let n_funders = view.paid.subsidy.len()
        + view.refunds.to_funders_by_funder.len()
        + view.subsidy_split.as_ref().map_or(0, |split| split.parts.len());
    let subsidies = n_funders * 64;
    std::mem::size_of::<PersonYear>() + view.person.number().len() + notes + subsidies
}

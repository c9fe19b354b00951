//! Recomputes the chain: positions gapless, every record decodes, every hash
//! is `SM3(prev ++ stored bytes)`. Names the first position that fails.

use super::block::{BlockView, FrameError};
use super::sled_log::SledLog;
use super::{Head, UnfinishedAppend};
use crate::envelope::{self, Hash};
use crate::error::{LedgerError, Result};
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::mpsc;

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyProblem {
    /// The stored hash is not `SM3(prev ++ bytes)`: the bytes or the hash were
    /// changed.
    Hash { position: u64 },
    /// A block does not follow its predecessor.
    Gap { expected: u64, found: u64 },
    /// A block's first `prev_hash` is not the previous record's hash.
    Link { position: u64 },
    /// A record's bytes do not decode, or claim another position.
    Decode { position: u64, reason: String },
    /// A block is cut short or its framing is damaged.
    Frame { position: u64, reason: String },
    /// sled cannot read its own files past the last position read: the
    /// store is damaged below the log.
    Unreadable { after: u64, detail: String },
}

impl VerifyProblem {
    pub fn position(&self) -> u64 {
        match self {
            VerifyProblem::Hash { position }
            | VerifyProblem::Link { position }
            | VerifyProblem::Decode { position, .. }
            | VerifyProblem::Frame { position, .. } => *position,
            VerifyProblem::Gap { expected, .. } => *expected,
            VerifyProblem::Unreadable { after, .. } => after + 1,
        }
    }
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyProblem::Hash { position } => {
                write!(f, "position {position}: hash mismatch (stored bytes or hash changed)")
            }
            VerifyProblem::Gap { expected, found } => {
                write!(f, "position {expected}: gap, the next block starts at {found}")
            }
            VerifyProblem::Link { position } => write!(f, "position {position}: previous-hash link broken"),
            VerifyProblem::Decode { position, reason } => write!(f, "position {position}: does not decode ({reason})"),
            VerifyProblem::Frame { position, reason } => write!(f, "position {position}: damaged block ({reason})"),
            VerifyProblem::Unreadable { after: 0, detail } => {
                write!(f, "the ledger store is damaged ({detail}): no position could be read")
            }
            VerifyProblem::Unreadable { after, detail } => {
                write!(f, "the ledger store is damaged ({detail}): position {after} is the last that could be read")
            }
        }
    }
}

/// What a verification saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub first_position: u64,
    /// Records of the range checked before the first problem (or all).
    pub n_records: u64,
    pub n_blocks: u64,
    /// The last record that verified.
    pub last_good: Head,
    pub problem: Option<VerifyProblem>,
    /// An append a crash cut short after the durable head: not checked,
    /// never acknowledged, removed by the next open for writing.
    pub unfinished: Option<UnfinishedAppend>,
}

/// What hashing one block found: the records of the range it holds and its
/// last record hashed (records after the range are not).
struct Hashed {
    n_in_range: u64,
    last: Head,
}

/// Hashes a block's records with the `prev` chain; used on worker threads.
fn hash_block(bytes: &[u8], prev: Hash, range: &RangeInclusive<u64>) -> std::result::Result<Hashed, VerifyProblem> {
    let view = BlockView::parse(bytes).map_err(|e| VerifyProblem::Frame { position: 0, reason: e.to_string() })?;
    let mut hashed =
        Hashed { n_in_range: 0, last: Head { position: view.first_position.saturating_sub(1), hash: prev } };
    for record in view.records() {
        let record = record.map_err(|e: FrameError| VerifyProblem::Frame {
            position: view.first_position + u64::from(n_index(&e)),
            reason: e.to_string(),
        })?;
        if record.position > *range.end() {
            break;
        }
        if envelope::chain_hash(&hashed.last.hash, record.body) != record.hash {
            return Err(VerifyProblem::Hash { position: record.position });
        }
        if range.contains(&record.position) {
            hashed.n_in_range += 1;
        }
        hashed.last = Head { position: record.position, hash: record.hash };
    }
    Ok(hashed)
}

type Done = std::result::Result<Hashed, VerifyProblem>;

fn hash_block_at(first: u64, bytes: &[u8], prev: Hash, range: &RangeInclusive<u64>) -> Done {
    hash_block(bytes, prev, range).map_err(|problem| match problem {
        VerifyProblem::Frame { position: 0, reason } => VerifyProblem::Frame { position: first, reason },
        other => other,
    })
}

/// Results arrive in block order; counting stops at the first hash problem.
fn take_result(done: Done, report: &mut VerifyReport) {
    if report.problem.is_some() {
        return;
    }
    match done {
        Ok(hashed) => {
            report.n_records += hashed.n_in_range;
            report.n_blocks += 1;
            report.last_good = hashed.last;
        }
        Err(problem) => report.problem = Some(problem),
    }
}

fn n_index(error: &FrameError) -> u32 {
    match error {
        FrameError::Truncated { index } => *index,
        _ => 0,
    }
}

/// Where the reading thread is in the chain.
struct Walk {
    /// The first position of the next block, once a block was read.
    expected_first: Option<u64>,
    prev: Option<Hash>,
}

impl SledLog {
    /// Verifies records `from..=to` (0 = to the end) of the durable log; an
    /// unfinished append after it is reported, not checked. Hashing runs on
    /// a second thread while this one reads and decodes. `progress` gets
    /// the number of records checked so far.
    pub fn verify(&self, from: u64, to: u64, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        let from = from.max(1);
        let to = if to == 0 { u64::MAX } else { to };
        let to = self.unfinished_append().map_or(to, |unfinished| to.min(unfinished.after));
        let range = from..=to;
        let mut report = VerifyReport {
            first_position: from,
            n_records: 0,
            n_blocks: 0,
            last_good: Head { position: from - 1, hash: if from == 1 { self.genesis_hash() } else { [0; 32] } },
            problem: None,
            unfinished: self.unfinished_append(),
        };
        let mut structural: Option<VerifyProblem> = None;
        std::thread::scope(|scope| -> Result<()> {
            let (work_tx, work_rx) = mpsc::sync_channel::<(u64, sled::IVec, Hash)>(64);
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            let hash_range = range.clone();
            scope.spawn(move || {
                for (first, bytes, prev) in work_rx {
                    if done_tx.send(hash_block_at(first, &bytes, prev, &hash_range)).is_err() {
                        return;
                    }
                }
            });
            structural = self.walk_blocks(&range, &mut |first, bytes, prev| {
                let sent = work_tx.send((first, bytes, prev)).is_ok();
                while let Ok(done) = done_rx.try_recv() {
                    take_result(done, &mut report);
                    progress(report.n_records);
                }
                sent
            })?;
            drop(work_tx);
            for done in done_rx {
                take_result(done, &mut report);
                progress(report.n_records);
            }
            Ok(())
        })?;
        if report.problem.is_none() {
            report.problem = structural;
        }
        if let (None, Some(detail)) = (&report.problem, self.tail_damage()) {
            // The walk read to the end, yet sled could not read the end
            // when the log was opened: the store is damaged all the same.
            report.problem =
                Some(VerifyProblem::Unreadable { after: report.last_good.position, detail: detail.into() });
        }
        Ok(report)
    }

    /// Reads the blocks of `range` in order, checks each one's framing,
    /// positions, links and decoding, and hands it to `hash` with the hash
    /// its first record chains from (`hash` returns false to stop). Returns
    /// the first problem found here, if any.
    fn walk_blocks(
        &self,
        range: &RangeInclusive<u64>,
        hash: &mut dyn FnMut(u64, sled::IVec, Hash) -> bool,
    ) -> Result<Option<VerifyProblem>> {
        let (from, to) = (*range.start(), *range.end());
        let mut walk = Walk { expected_first: None, prev: if from == 1 { Some(self.genesis_hash()) } else { None } };
        let blocks: Box<dyn Iterator<Item = Result<(u64, sled::IVec)>>> = match self.blocks_from(from) {
            Ok(blocks) => Box::new(blocks),
            Err(error) => Box::new(std::iter::once(Err(error))),
        };
        for item in blocks {
            let (key_position, bytes) = match item {
                Ok(item) => item,
                Err(LedgerError::StoreDamaged { detail }) => {
                    let after = walk.expected_first.map_or(from - 1, |next| next - 1);
                    return Ok(Some(VerifyProblem::Unreadable { after, detail }));
                }
                Err(other) => return Err(other),
            };
            if key_position > to {
                break;
            }
            match self.check_block(key_position, &bytes, walk.expected_first, walk.prev, from, to) {
                Err(problem) => {
                    // Hash what precedes the damage too: the earlier
                    // position is the one to name.
                    let chained_from = walk.prev.unwrap_or([0; 32]);
                    return Ok(Some(match hash_block_at(key_position, &bytes, chained_from, range) {
                        Err(hash_problem) if hash_problem.position() < problem.position() => hash_problem,
                        _ => problem,
                    }));
                }
                Ok((next_first, last_hash, block_prev)) => {
                    walk = Walk { expected_first: Some(next_first), prev: Some(last_hash) };
                    if !hash(key_position, bytes, block_prev) {
                        break;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Framing, positions, links and decoding of one block (no hashing).
    /// Returns the next expected position, the block's last hash and the
    /// prev hash its first record chains from.
    fn check_block(
        &self,
        key_position: u64,
        bytes: &[u8],
        expected_first: Option<u64>,
        prev: Option<Hash>,
        from: u64,
        to: u64,
    ) -> std::result::Result<(u64, Hash, Hash), VerifyProblem> {
        let view = BlockView::parse(bytes)
            .map_err(|e| VerifyProblem::Frame { position: key_position, reason: e.to_string() })?;
        let expected = expected_first.unwrap_or(key_position);
        if view.first_position != expected || key_position != expected {
            return Err(VerifyProblem::Gap { expected, found: key_position.min(view.first_position) });
        }
        if let Some(prev) = prev {
            if view.prev_hash != prev {
                return Err(VerifyProblem::Link { position: view.first_position });
            }
        }
        let mut last = view.prev_hash;
        let mut next = view.first_position;
        for record in view.records() {
            let record = record.map_err(|e| VerifyProblem::Frame { position: next, reason: e.to_string() })?;
            if record.position >= from && record.position <= to {
                match envelope::decode_record(record.body) {
                    Ok((head, _)) if head.position == record.position => {}
                    Ok((head, _)) => {
                        return Err(VerifyProblem::Decode {
                            position: record.position,
                            reason: format!("claims position {}", head.position),
                        })
                    }
                    Err(e) => return Err(VerifyProblem::Decode { position: record.position, reason: e.0 }),
                }
            }
            last = record.hash;
            next = record.position + 1;
        }
        Ok((next, last, view.prev_hash))
    }
}

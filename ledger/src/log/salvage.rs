//! Reading a sled log directory past damage, without sled: every file
//! under `DIR/log` (and `DIR/preserved`, see `preserve`) is read raw,
//! every block is found by its magic, and a record counts only if its
//! hash is `SM3(prev ++ body)` and its bytes decode at its position. The records found are joined by position and
//! hash into runs, from the genesis hash on.
//!
//! sled (without compression) writes each value's bytes contiguously
//! inside its messages, so a block's bytes appear whole in `log/db` (or a
//! blob), possibly several times (sled copies live pages when it cleans
//! segments; the copies are identical). A block removed by recovery (an
//! append a crash cut, never acknowledged) may still be found there: the
//! join prefers the chain that reaches the furthest complete append.
//!
//! Memory: the first pass keeps, per block found, where its records lie
//! and the hashes at its ends (about 150 bytes per block of up to 30,000),
//! never the records' bytes; the export reads them again one block at a
//! time.

use super::anchor;
use super::block::{BlockView, HEADER_BYTES, MAGIC, MAX_BLOCK_BYTES};
use super::sled_log::LogHeader;
use super::Head;
use crate::envelope::{self, Hash, MAX_RECORD_BYTES};
use crate::error::{LedgerError, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// A record's frame: length, body, hash.
const FRAME_OVERHEAD: usize = 4 + 32;
/// Most records one block can hold (empty bodies).
const MAX_RECORDS_PER_BLOCK: u64 = ((MAX_BLOCK_BYTES - HEADER_BYTES) / FRAME_OVERHEAD) as u64;
/// Bytes read from a file at a time; a block starting in one window is
/// read whole from the same buffer (it overlaps the next by a block).
const WINDOW_BYTES: usize = 8 * 1024 * 1024;
/// The header's JSON starts so (`LogHeader`'s first field), and is short.
const HEADER_START: &[u8] = b"{\"format\":\"";
const MAX_HEADER_BYTES: usize = 1024;

/// Consecutive records of one copy of a block that all check.
#[derive(Clone, Debug)]
struct Piece {
    file: usize,
    /// Where the first record's frame starts in the file; for a compressed
    /// block, where the block starts.
    offset: u64,
    /// A compressed block's piece: where the first record's frame starts in
    /// the block's frames as built (`BlockView::frames`, decompressed).
    packed_at: Option<usize>,
    first: u64,
    last: u64,
    /// The hash the first record chains from.
    prev: Hash,
    first_hash: Hash,
    last_hash: Hash,
    /// The block's last position and whether it ends an append request.
    block_last: u64,
    block_complete: bool,
}

impl Piece {
    /// The last position of a whole append this piece holds, 0 if none.
    fn acknowledged(&self) -> u64 {
        if self.block_complete && self.last == self.block_last {
            self.last
        } else {
            0
        }
    }
}

/// One record read back for an export.
pub struct SalvagedRecord {
    pub position: u64,
    pub stored: Vec<u8>,
    /// The hash it chains from: the previous record's in the same block or
    /// the block's `prev_hash`, even across a gap.
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// A run of consecutive readable records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SalvageRun {
    pub first: u64,
    pub last: u64,
    /// Whether its first record chains from the record before it (or from
    /// the genesis hash at position 1).
    pub linked: bool,
}

/// Where the export takes records: positions `from..=to` of one piece.
#[derive(Clone, Copy, Debug)]
struct Step {
    piece: usize,
    from: u64,
    to: u64,
    linked: bool,
}

/// What the raw reading found.
#[derive(Debug)]
pub struct Salvage {
    /// The header's stored bytes (its SM3 is the genesis hash), if found.
    pub header_bytes: Option<Vec<u8>>,
    pub header: Option<LogHeader>,
    pub genesis: Option<Hash>,
    /// Readable records, in runs, in position order.
    pub runs: Vec<SalvageRun>,
    /// Positions that could not be read: between runs, and after the last
    /// up to the head `DIR/head` names.
    pub gaps: Vec<RangeInclusive<u64>>,
    /// The last position an unbroken chain from the genesis hash reaches.
    pub unbroken_to: u64,
    /// The hash there (the genesis hash at 0, zeros without a header).
    pub unbroken_hash: Hash,
    /// The head at the last close (`DIR/head`), if readable.
    pub anchor: Option<Head>,
    /// Positions where copies with other bytes than the record taken were
    /// found (an append removed by recovery and written again, say).
    pub conflicts: Vec<u64>,
    /// Records after the last complete append found (never acknowledged,
    /// as recovery would remove them): not exported.
    pub n_unfinished: u64,
    pub n_records: u64,
    /// The last record taken, if any.
    pub last: Option<Head>,
    pub n_bytes_read: u64,
    files: Vec<PathBuf>,
    pieces: Vec<Piece>,
    steps: Vec<Step>,
}

impl Salvage {
    /// Reads every file under `dir/log` raw and joins what checks.
    pub fn read(dir: &Path) -> Result<Salvage> {
        let log_dir = dir.join("log");
        if !log_dir.join("db").exists() {
            return Err(LedgerError::NotFound(dir.display().to_string()));
        }
        let mut files = Vec::new();
        list_files(&log_dir, &mut files)?;
        // What sled's recovery overwrote, as it was before (`preserve`).
        let preserved = dir.join(super::preserve::PRESERVED_DIR);
        if preserved.is_dir() {
            list_files(&preserved, &mut files)?;
        }
        files.sort();
        let mut carved = Carved::default();
        for (index, file) in files.iter().enumerate() {
            carve_file(file, index, &mut carved)?;
        }
        let anchor = anchor::read(dir);
        let (header_bytes, genesis) = choose_header(&carved);
        let header = header_bytes.as_ref().and_then(|bytes| serde_json::from_slice(bytes).ok());
        let mut salvage = Salvage {
            header_bytes,
            header,
            genesis,
            runs: Vec::new(),
            gaps: Vec::new(),
            unbroken_to: 0,
            unbroken_hash: genesis.unwrap_or([0; 32]),
            anchor,
            conflicts: Vec::new(),
            n_unfinished: 0,
            n_records: 0,
            last: None,
            n_bytes_read: carved.n_bytes,
            files,
            pieces: carved.pieces,
            steps: Vec::new(),
        };
        salvage.join()?;
        Ok(salvage)
    }

    /// The first position the chain from genesis does not reach, when the
    /// log (as far as anything says) goes on past it.
    pub fn first_break(&self) -> Option<u64> {
        let end = self.last.map_or(0, |last| last.position).max(self.anchor.map_or(0, |a| a.position));
        (end > self.unbroken_to || self.genesis.is_none()).then_some(self.unbroken_to + 1)
    }

    /// Every record taken, in position order, read again from the files.
    pub fn records(&self, visit: &mut dyn FnMut(SalvagedRecord) -> Result<()>) -> Result<()> {
        for step in &self.steps {
            for record in self.read_piece(step.piece)? {
                if (step.from..=step.to).contains(&record.position) {
                    visit(record)?;
                }
            }
        }
        Ok(())
    }

    /// A piece's records, read and checked again (the file may have
    /// changed since the first pass: then it is an error, not a record).
    fn read_piece(&self, index: usize) -> Result<Vec<SalvagedRecord>> {
        let piece = &self.pieces[index];
        let mut file = std::fs::File::open(&self.files[piece.file])?;
        file.seek(SeekFrom::Start(piece.offset))?;
        let mut bytes = Vec::with_capacity(MAX_BLOCK_BYTES);
        file.take(MAX_BLOCK_BYTES as u64).read_to_end(&mut bytes)?;
        let changed = |position| LedgerError::Corrupt {
            position,
            reason: format!("{} changed while it was salvaged", self.files[piece.file].display()),
        };
        let unpacked;
        let (frames, mut at) = match piece.packed_at {
            None => (std::borrow::Cow::Borrowed(bytes.as_slice()), 0),
            Some(packed_at) => {
                unpacked = BlockView::parse_prefix(&bytes).map_err(|_| changed(piece.first))?.0;
                (unpacked.frames(), packed_at)
            }
        };
        let mut records = Vec::with_capacity((piece.last - piece.first + 1) as usize);
        let mut prev = piece.prev;
        for position in piece.first..=piece.last {
            let changed = || changed(position);
            let (body, hash, next) = frame_at(&frames, at).ok_or_else(changed)?;
            if envelope::chain_hash(&prev, body) != hash {
                return Err(changed());
            }
            records.push(SalvagedRecord { position, stored: body.to_vec(), prev_hash: prev, hash });
            prev = hash;
            at = next;
        }
        Ok(records)
    }

    fn hashes_of(&self, index: usize, cache: &mut HashMap<usize, Vec<Hash>>) -> Result<Vec<Hash>> {
        if let Some(hashes) = cache.get(&index) {
            return Ok(hashes.clone());
        }
        if cache.len() > 1024 {
            cache.clear();
        }
        let hashes: Vec<Hash> = self.read_piece(index)?.iter().map(|record| record.hash).collect();
        cache.insert(index, hashes.clone());
        Ok(hashes)
    }

    /// The hash of `position` in a piece that holds it.
    fn hash_at(&self, index: usize, position: u64, cache: &mut HashMap<usize, Vec<Hash>>) -> Result<Hash> {
        let piece = &self.pieces[index];
        if position == piece.first {
            return Ok(piece.first_hash);
        }
        if position == piece.last {
            return Ok(piece.last_hash);
        }
        Ok(self.hashes_of(index, cache)?[(position - piece.first) as usize])
    }

    /// Whether a piece holding `node.position + 1` chains from `node`.
    fn links(&self, index: usize, node: Head, cache: &mut HashMap<usize, Vec<Hash>>) -> Result<bool> {
        let piece = &self.pieces[index];
        if piece.first == node.position + 1 {
            return Ok(piece.prev == node.hash);
        }
        Ok(self.hash_at(index, node.position, cache)? == node.hash)
    }

    /// Joins the pieces into the steps of an export (see the module's
    /// comment), then drops an unfinished tail.
    fn join(&mut self) -> Result<()> {
        let by_first = index_by_first(&self.pieces);
        let mut cache = HashMap::new();
        let reach = self.reaches(&by_first, &mut cache)?;
        let mut node = Head { position: 0, hash: self.genesis.unwrap_or([0; 32]) };
        let mut unbroken = self.genesis.is_some();
        let mut acknowledged = self.anchor.map_or(0, |anchor| anchor.position);
        loop {
            let holding = covering(&self.pieces, &by_first, node.position + 1);
            let mut linked = Vec::new();
            if node.position > 0 || self.genesis.is_some() {
                for &index in &holding {
                    if self.links(index, node, &mut cache)? {
                        linked.push(index);
                    }
                }
            }
            let (chosen, from, is_linked) = match best(&self.pieces, &reach, &linked) {
                Some(index) => (index, node.position + 1, true),
                None => {
                    unbroken = false;
                    let from = if holding.is_empty() {
                        match by_first.range(node.position + 2..).next() {
                            Some((&first, _)) => first,
                            None => break,
                        }
                    } else {
                        node.position + 1
                    };
                    let candidates = covering(&self.pieces, &by_first, from);
                    let Some(index) = best(&self.pieces, &reach, &candidates) else { break };
                    (index, from, false)
                }
            };
            self.note_conflict(&holding, chosen, node.position + 1, &mut cache)?;
            let piece = &self.pieces[chosen];
            if unbroken {
                self.unbroken_to = piece.last;
            }
            acknowledged = acknowledged.max(piece.acknowledged());
            self.steps.push(Step { piece: chosen, from, to: piece.last, linked: is_linked });
            node = Head { position: piece.last, hash: piece.last_hash };
        }
        self.cut_unfinished(acknowledged);
        self.summarize();
        if let Some(step) = self.steps.last().copied() {
            let hash = self.hash_at(step.piece, step.to, &mut cache)?;
            self.last = Some(Head { position: step.to, hash });
        }
        if let Some(step) = self.steps.iter().find(|step| (step.from..=step.to).contains(&self.unbroken_to)) {
            self.unbroken_hash = self.hash_at(step.piece, self.unbroken_to, &mut cache)?;
        }
        Ok(())
    }

    /// For each piece, the furthest complete append reachable through it
    /// (pieces in order of their last position, from the end).
    fn reaches(&self, by_first: &BTreeMap<u64, Vec<usize>>, cache: &mut HashMap<usize, Vec<Hash>>) -> Result<Vec<u64>> {
        let mut order: Vec<usize> = (0..self.pieces.len()).collect();
        order.sort_by_key(|&index| std::cmp::Reverse(self.pieces[index].last));
        let mut reach = vec![0; self.pieces.len()];
        for index in order {
            let piece = &self.pieces[index];
            let node = Head { position: piece.last, hash: piece.last_hash };
            let mut best = piece.acknowledged();
            for next in covering(&self.pieces, by_first, node.position + 1) {
                if self.links(next, node, cache)? {
                    best = best.max(reach[next]);
                }
            }
            reach[index] = best;
        }
        Ok(reach)
    }

    /// Notes `position` when a piece other than `chosen` holds other bytes
    /// there.
    fn note_conflict(
        &mut self,
        covering: &[usize],
        chosen: usize,
        position: u64,
        cache: &mut HashMap<usize, Vec<Hash>>,
    ) -> Result<()> {
        if covering.len() < 2 || self.pieces[chosen].first > position {
            return Ok(());
        }
        let taken = self.hash_at(chosen, position, cache)?;
        for &other in covering {
            if other != chosen && self.hash_at(other, position, cache)? != taken {
                self.conflicts.push(position);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Drops the records after the last complete append found (or the
    /// anchor's head, if further): an append a crash cut.
    fn cut_unfinished(&mut self, acknowledged: u64) {
        while let Some(step) = self.steps.last_mut() {
            if step.to <= acknowledged {
                break;
            }
            let cut_from = step.from.max(acknowledged + 1);
            self.n_unfinished += step.to - cut_from + 1;
            if cut_from == step.from {
                self.steps.pop();
            } else {
                step.to = acknowledged;
            }
        }
        self.unbroken_to = self.unbroken_to.min(acknowledged);
    }

    /// Runs, gaps and counts from the steps.
    fn summarize(&mut self) {
        let mut expected = 1;
        for step in &self.steps {
            if step.from > expected {
                self.gaps.push(expected..=step.from - 1);
            }
            match self.runs.last_mut() {
                Some(run) if step.linked => run.last = step.to,
                _ => self.runs.push(SalvageRun { first: step.from, last: step.to, linked: step.linked }),
            }
            self.n_records += step.to - step.from + 1;
            expected = step.to + 1;
        }
        if let Some(anchor) = self.anchor.filter(|anchor| anchor.position >= expected) {
            self.gaps.push(expected..=anchor.position);
        }
    }
}

/// The preferred piece: the furthest complete append reachable, then a
/// complete block, then the longest.
fn best(pieces: &[Piece], reach: &[u64], candidates: &[usize]) -> Option<usize> {
    candidates.iter().copied().max_by_key(|&index| {
        let piece = &pieces[index];
        (reach[index], piece.block_complete, piece.last, std::cmp::Reverse(index))
    })
}

fn index_by_first(pieces: &[Piece]) -> BTreeMap<u64, Vec<usize>> {
    let mut by_first: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (index, piece) in pieces.iter().enumerate() {
        by_first.entry(piece.first).or_default().push(index);
    }
    by_first
}

/// The pieces holding `position`.
fn covering(pieces: &[Piece], by_first: &BTreeMap<u64, Vec<usize>>, position: u64) -> Vec<usize> {
    let lowest = position.saturating_sub(MAX_RECORDS_PER_BLOCK);
    by_first
        .range(lowest..=position)
        .flat_map(|(_, indexes)| indexes.iter().copied())
        .filter(|&index| pieces[index].last >= position)
        .collect()
}

/// Every regular file under `dir`, recursively.
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// What the first pass found.
#[derive(Default)]
struct Carved {
    pieces: Vec<Piece>,
    /// Identical copies are kept once: (first, last, prev, last hash).
    seen: HashSet<(u64, u64, Hash, Hash)>,
    /// Digests of the blocks' bytes already read (sled's copies).
    copies: HashSet<u128>,
    headers: Vec<Vec<u8>>,
    n_bytes: u64,
}

/// Finds every block and header in one file, a window at a time.
fn carve_file(path: &Path, file_index: usize, carved: &mut Carved) -> Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(WINDOW_BYTES + MAX_BLOCK_BYTES);
    // The file offset of buffer[0].
    let mut base: u64 = 0;
    let mut at_end = false;
    while !at_end {
        let wanted = WINDOW_BYTES + MAX_BLOCK_BYTES;
        let before = buffer.len();
        (&mut file).take((wanted - before) as u64).read_to_end(&mut buffer)?;
        carved.n_bytes += (buffer.len() - before) as u64;
        at_end = buffer.len() < wanted;
        // Blocks starting in the window are read from this buffer; the
        // overlap is read again as the start of the next.
        let owned = if at_end { buffer.len() } else { WINDOW_BYTES };
        carve_window(&buffer, owned, base, file_index, carved);
        buffer.drain(..owned);
        base += owned as u64;
    }
    Ok(())
}

fn carve_window(buffer: &[u8], owned: usize, base: u64, file_index: usize, carved: &mut Carved) {
    let mut at = 0;
    while at < owned {
        let Some(found) = buffer[at..owned].iter().position(|&byte| byte == MAGIC[0] || byte == b'{') else {
            break;
        };
        let start = at + found;
        let rest = &buffer[start..];
        if rest.starts_with(MAGIC) {
            carve_block(rest, base + start as u64, file_index, carved);
        } else if rest.starts_with(HEADER_START) {
            carve_header(rest, carved);
        }
        at = start + 1;
    }
}

/// The header's JSON at the start of `bytes`, if it parses as a header
/// this build reads.
fn carve_header(bytes: &[u8], carved: &mut Carved) {
    let limit = bytes.len().min(MAX_HEADER_BYTES);
    let Some(end) = bytes[..limit].iter().position(|&byte| byte == b'}') else { return };
    let candidate = &bytes[..=end];
    let Ok(header) = serde_json::from_slice::<LogHeader>(candidate) else { return };
    if header.check().is_ok() && !carved.headers.iter().any(|known| known == candidate) {
        carved.headers.push(candidate.to_vec());
    }
}

/// The body, stored hash and next frame's offset of the frame at `at`.
fn frame_at(bytes: &[u8], at: usize) -> Option<(&[u8], Hash, usize)> {
    let len_bytes: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let body = bytes.get(at + 4..at + 4 + len)?;
    let hash: Hash = bytes.get(at + 4 + len..at + FRAME_OVERHEAD + len)?.try_into().ok()?;
    Some((body, hash, at + FRAME_OVERHEAD + len))
}

/// The block at the start of `bytes` (its magic found at file offset
/// `offset`): its records that check, as pieces.
fn carve_block(bytes: &[u8], offset: u64, file_index: usize, carved: &mut Carved) {
    let bytes = &bytes[..bytes.len().min(MAX_BLOCK_BYTES)];
    let Ok((block, stored_end)) = BlockView::parse_prefix(bytes) else { return };
    let (first, n_records) = (block.first_position, block.n_records);
    if first == 0 || n_records == 0 || u64::from(n_records) > MAX_RECORDS_PER_BLOCK {
        return;
    }
    let Some(block_last) = first.checked_add(u64::from(n_records) - 1) else { return };
    // A compressed block's records are read from its decompressed frames
    // (all or none: damage inside its compressed form loses the block's
    // copy, and another copy or a preserved segment may still hold it).
    let frames = block.frames();
    // sled keeps several copies of a block: one fast digest of its framed
    // bytes spares the SM3 of every copy after the first.
    let mut end = 0;
    for _ in 0..n_records {
        match frame_at(&frames, end) {
            Some((_, _, next)) => end = next,
            None => break,
        }
    }
    let stored = if block.compressed { &bytes[..stored_end] } else { &bytes[..HEADER_BYTES + end] };
    if !carved.copies.insert(xxhash_rust::xxh3::xxh3_128(stored)) {
        return;
    }
    let mut prev = block.prev_hash;
    let mut at = 0;
    let mut open: Option<Piece> = None;
    for position in first..=block_last {
        let Some((body, hash, next)) = frame_at(&frames, at) else { break };
        let checks = envelope::chain_hash(&prev, body) == hash
            && envelope::decode_head(body).is_ok_and(|(head, _)| head.position == position);
        match (&mut open, checks) {
            (Some(piece), true) => {
                piece.last = position;
                piece.last_hash = hash;
            }
            (None, true) => {
                open = Some(Piece {
                    file: file_index,
                    offset: if block.compressed { offset } else { offset + (HEADER_BYTES + at) as u64 },
                    packed_at: block.compressed.then_some(at),
                    first: position,
                    last: position,
                    prev,
                    first_hash: hash,
                    last_hash: hash,
                    block_last,
                    block_complete: block.complete,
                });
            }
            (_, false) => keep(open.take(), carved),
        }
        prev = hash;
        at = next;
    }
    keep(open, carved);
}

fn keep(piece: Option<Piece>, carved: &mut Carved) {
    let Some(piece) = piece else { return };
    if carved.seen.insert((piece.first, piece.last, piece.prev, piece.last_hash)) {
        carved.pieces.push(piece);
    }
}

/// The header whose SM3 is the `prev_hash` of a block at position 1; with
/// none such, the only header found (the first block may be the damage).
fn choose_header(carved: &Carved) -> (Option<Vec<u8>>, Option<Hash>) {
    let firsts: Vec<Hash> = carved.pieces.iter().filter(|piece| piece.first == 1).map(|piece| piece.prev).collect();
    let matching = carved.headers.iter().find(|bytes| firsts.contains(&envelope::sm3(bytes)));
    match (matching, carved.headers.as_slice()) {
        (Some(bytes), _) => (Some(bytes.clone()), Some(envelope::sm3(bytes))),
        (None, [only]) if firsts.is_empty() => (Some(only.clone()), Some(envelope::sm3(only))),
        _ => (None, None),
    }
}

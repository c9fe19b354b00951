//! A run: an immutable file of sorted index entries under `DIR/index/`.
//!
//! ```text
//! keys section    n × ( key fp u128 | position u64 | content u64 )     sorted
//! streams section n × ( stream fp u128 | version u64 | position u64 )  sorted
//! keys meta       bincode SectionMeta: the pages' first entries, their
//! streams meta    checksums and a bloom filter of the section's fingerprints
//! footer          keys meta offset u64 | keys meta length u64 | its xxh3 u64
//!                 | streams meta length u64 | its xxh3 u64 | magic
//! ```
//! Opening a run reads its metas only (about 1.5 bytes per entry; a read
//! open, which never checks keys, only the streams'); a lookup
//! asks the bloom filter, then reads and checks one page (4 KiB) with a
//! positioned read. A page whose checksum fails is an error, never an answer.

use crate::error::{LedgerError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use xxhash_rust::xxh3::xxh3_64;

/// Entries per page: 4 KiB pages.
const PAGE_ENTRIES: usize = 128;
const ENTRY_BYTES: usize = 32;
const PAGE_BYTES: usize = PAGE_ENTRIES * ENTRY_BYTES;
const MAGIC: &[u8; 8] = b"YBIXRUN1";
const FOOTER_BYTES: usize = 5 * 8 + 8;
/// About 1% false positives.
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: u64 = 7;
const BLOOM_BLOCK_WORDS: usize = 8;

/// One entry: a fingerprint and two numbers, ordered by all three. Keys:
/// (key, position, content); streams: (stream, version, position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub fingerprint: u128,
    pub first: u64,
    pub second: u64,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.second.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Entry {
        let fingerprint = u128::from_le_bytes(bytes[..16].try_into().expect("entries are 32 bytes"));
        let first = u64::from_le_bytes(bytes[16..24].try_into().expect("entries are 32 bytes"));
        let second = u64::from_le_bytes(bytes[24..32].try_into().expect("entries are 32 bytes"));
        Entry { fingerprint, first, second }
    }
}

/// Which section of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    Keys,
    Streams,
}

#[derive(Serialize, Deserialize)]
struct SectionMeta {
    offset: u64,
    n_entries: u64,
    /// (fingerprint, first) of each page's first entry.
    page_firsts: Vec<(u128, u64)>,
    page_checksums: Vec<u64>,
    bloom: Vec<u64>,
}

/// An open run.
pub(crate) struct Run {
    pub id: u64,
    path: PathBuf,
    file: File,
    /// Not loaded for a read open.
    keys: Option<SectionMeta>,
    streams: SectionMeta,
    /// Pages read by lookups: what the blooms are there to keep low.
    n_page_reads: AtomicU64,
}

pub(crate) fn file_name(id: u64) -> String {
    format!("run-{id:020}.idx")
}

/// The id in a run's file name.
pub(crate) fn id_of(name: &str) -> Option<u64> {
    name.strip_prefix("run-")?.strip_suffix(".idx")?.parse().ok()
}

impl Run {
    /// Opens a run, reading and checking its metas (the keys' only when
    /// `with_keys`: a run opened without them answers streams only).
    pub fn open(dir: &Path, id: u64, with_keys: bool) -> Result<Run> {
        let path = dir.join(file_name(id));
        let file = File::open(&path)?;
        let damaged = |why: &str| damaged(&path, why);
        let length = file.metadata()?.len();
        if length < FOOTER_BYTES as u64 {
            return Err(damaged("shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER_BYTES];
        file.read_exact_at(&mut footer, length - FOOTER_BYTES as u64)?;
        let word = |i: usize| u64::from_le_bytes(footer[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        if &footer[40..] != MAGIC {
            return Err(damaged("no run footer"));
        }
        let (keys_offset, keys_length, keys_checksum, streams_length, streams_checksum) =
            (word(0), word(1), word(2), word(3), word(4));
        let streams_offset = keys_offset.checked_add(keys_length).ok_or_else(|| damaged("footer overflows"))?;
        if streams_offset.checked_add(streams_length) != Some(length - FOOTER_BYTES as u64) {
            return Err(damaged("footer does not frame the metas"));
        }
        let read_meta = |offset: u64, length: u64, checksum: u64| -> Result<SectionMeta> {
            let mut bytes = vec![0u8; usize::try_from(length).map_err(|_| damaged("meta too large"))?];
            file.read_exact_at(&mut bytes, offset)?;
            if xxh3_64(&bytes) != checksum {
                return Err(damaged("meta checksum fails"));
            }
            let meta: SectionMeta = bincode::deserialize(&bytes).map_err(|_| damaged("meta does not parse"))?;
            let n_pages = meta.n_entries.div_ceil(PAGE_ENTRIES as u64);
            let end = meta.n_entries.checked_mul(ENTRY_BYTES as u64).and_then(|bytes| bytes.checked_add(meta.offset));
            if meta.page_firsts.len() as u64 != n_pages
                || meta.page_checksums.len() as u64 != n_pages
                || end.is_none_or(|end| end > keys_offset)
                || meta.bloom.is_empty()
                || !meta.bloom.len().is_multiple_of(BLOOM_BLOCK_WORDS)
            {
                return Err(damaged("meta does not match its section"));
            }
            Ok(meta)
        };
        let keys = with_keys.then(|| read_meta(keys_offset, keys_length, keys_checksum)).transpose()?;
        let streams = read_meta(streams_offset, streams_length, streams_checksum)?;
        Ok(Run { id, path, file, keys, streams, n_page_reads: AtomicU64::new(0) })
    }

    pub fn n_page_reads(&self) -> u64 {
        self.n_page_reads.load(Ordering::Relaxed)
    }

    pub fn n_keys(&self) -> u64 {
        self.section(Section::Keys).n_entries
    }

    pub fn n_entries(&self) -> u64 {
        self.n_keys() + self.streams.n_entries
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn section(&self, section: Section) -> &SectionMeta {
        match section {
            Section::Keys => self.keys.as_ref().expect("only writing opens, which load the keys, ask for them"),
            Section::Streams => &self.streams,
        }
    }

    /// Whether the section may hold the fingerprint (no disk read).
    pub fn may_hold(&self, section: Section, fingerprint: u128) -> bool {
        bloom_may_hold(&self.section(section).bloom, fingerprint)
    }

    /// Reads and checks one page of a section (no allocation: a lookup
    /// of the sequencer's costs one `pread` and one checksum).
    fn page(&self, section: Section, page_idx: usize) -> Result<Page> {
        let meta = self.section(section);
        self.n_page_reads.fetch_add(1, Ordering::Relaxed);
        let first_entry = (page_idx * PAGE_ENTRIES) as u64;
        let n_entries = (meta.n_entries - first_entry).min(PAGE_ENTRIES as u64) as usize;
        let mut page = Page { bytes: [0u8; PAGE_BYTES], n_entries };
        let bytes = &mut page.bytes[..n_entries * ENTRY_BYTES];
        self.file.read_exact_at(bytes, meta.offset + first_entry * ENTRY_BYTES as u64)?;
        if xxh3_64(bytes) != meta.page_checksums[page_idx] {
            return Err(damaged(&self.path, &format!("page {page_idx} checksum fails")));
        }
        Ok(page)
    }

    /// The last entry at or below `(fingerprint, first)` whose fingerprint
    /// is `fingerprint`: one page read.
    pub fn last_at_or_below(&self, section: Section, fingerprint: u128, first: u64) -> Result<Option<Entry>> {
        if !self.may_hold(section, fingerprint) {
            return Ok(None);
        }
        let firsts = &self.section(section).page_firsts;
        let after = firsts.partition_point(|&page_first| page_first <= (fingerprint, first));
        let Some(page_idx) = after.checked_sub(1) else { return Ok(None) };
        let page = self.page(section, page_idx)?;
        let below = page.partition_point(|entry| (entry.fingerprint, entry.first) <= (fingerprint, first));
        Ok(below.checked_sub(1).map(|idx| page.entry(idx)).filter(|entry| entry.fingerprint == fingerprint))
    }

    /// Every entry of one fingerprint, in order.
    pub fn all_of(&self, section: Section, fingerprint: u128, out: &mut Vec<Entry>) -> Result<()> {
        if !self.may_hold(section, fingerprint) {
            return Ok(());
        }
        let firsts = &self.section(section).page_firsts;
        let mut page_idx = firsts.partition_point(|&page_first| page_first < (fingerprint, 0)).saturating_sub(1);
        while page_idx < firsts.len() && firsts[page_idx].0 <= fingerprint {
            let page = self.page(section, page_idx)?;
            out.extend((0..page.n_entries).map(|idx| page.entry(idx)).filter(|entry| entry.fingerprint == fingerprint));
            if page.entry(page.n_entries - 1).fingerprint > fingerprint {
                break;
            }
            page_idx += 1;
        }
        Ok(())
    }

    /// The section's entries in order, read sequentially, each page checked.
    pub fn entries(&self, section: Section) -> Result<SectionReader> {
        let meta = self.section(section);
        let file = File::open(&self.path)?;
        Ok(SectionReader {
            reader: std::io::BufReader::with_capacity(1 << 20, ReadAt { file, at: meta.offset }),
            path: self.path.clone(),
            checksums: meta.page_checksums.clone(),
            n_left: meta.n_entries,
            page: Vec::new().into_iter(),
            page_idx: 0,
        })
    }
}

/// One page of a section, as read.
struct Page {
    bytes: [u8; PAGE_BYTES],
    n_entries: usize,
}

impl Page {
    fn entry(&self, idx: usize) -> Entry {
        Entry::decode(&self.bytes[idx * ENTRY_BYTES..(idx + 1) * ENTRY_BYTES])
    }

    /// The number of leading entries for which `below` holds (they are sorted).
    fn partition_point(&self, below: impl Fn(&Entry) -> bool) -> usize {
        let (mut low, mut high) = (0, self.n_entries);
        while low < high {
            let middle = (low + high) / 2;
            if below(&self.entry(middle)) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

fn damaged(path: &Path, why: &str) -> LedgerError {
    LedgerError::Corrupt { position: 0, reason: format!("index run {} is damaged: {why}", path.display()) }
}

/// A file read from an offset on, without moving a shared cursor.
struct ReadAt {
    file: File,
    at: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A section read in order, for a merge.
pub(crate) struct SectionReader {
    reader: std::io::BufReader<ReadAt>,
    path: PathBuf,
    checksums: Vec<u64>,
    n_left: u64,
    page: std::vec::IntoIter<Entry>,
    page_idx: usize,
}

impl Iterator for SectionReader {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if let Some(entry) = self.page.next() {
            return Some(Ok(entry));
        }
        if self.n_left == 0 {
            return None;
        }
        let n = self.n_left.min(PAGE_ENTRIES as u64) as usize;
        let mut bytes = vec![0u8; n * ENTRY_BYTES];
        if let Err(error) = self.reader.read_exact(&mut bytes) {
            self.n_left = 0;
            return Some(Err(error.into()));
        }
        if xxh3_64(&bytes) != self.checksums[self.page_idx] {
            self.n_left = 0;
            return Some(Err(damaged(&self.path, &format!("page {} checksum fails", self.page_idx))));
        }
        self.n_left -= n as u64;
        self.page_idx += 1;
        self.page = bytes.chunks_exact(ENTRY_BYTES).map(Entry::decode).collect::<Vec<_>>().into_iter();
        self.page.next().map(Ok)
    }
}

/// Writes one section: pages, their first entries and checksums, a bloom.
struct SectionWriter {
    meta: SectionMeta,
    page: Vec<u8>,
    last: Option<Entry>,
}

impl SectionWriter {
    fn new(offset: u64, n_fingerprints_at_most: u64) -> SectionWriter {
        let n_blocks = (n_fingerprints_at_most.max(1) * BLOOM_BITS_PER_KEY).div_ceil(512);
        let n_words = n_blocks * BLOOM_BLOCK_WORDS as u64;
        let meta = SectionMeta {
            offset,
            n_entries: 0,
            page_firsts: Vec::new(),
            page_checksums: Vec::new(),
            bloom: vec![0; n_words as usize],
        };
        SectionWriter { meta, page: Vec::with_capacity(PAGE_BYTES), last: None }
    }

    fn push(&mut self, entry: Entry, out: &mut impl Write) -> Result<()> {
        // Pair assertion: a run is sorted, or its lookups would be wrong.
        assert!(self.last.is_none_or(|last| last < entry), "index entries are written in order");
        if self.page.is_empty() {
            self.meta.page_firsts.push((entry.fingerprint, entry.first));
        }
        if self.last.is_none_or(|last| last.fingerprint != entry.fingerprint) {
            bloom_insert(&mut self.meta.bloom, entry.fingerprint);
        }
        entry.encode(&mut self.page);
        self.meta.n_entries += 1;
        self.last = Some(entry);
        if self.page.len() == PAGE_BYTES {
            self.end_page(out)?;
        }
        Ok(())
    }

    fn end_page(&mut self, out: &mut impl Write) -> Result<()> {
        if !self.page.is_empty() {
            self.meta.page_checksums.push(xxh3_64(&self.page));
            out.write_all(&self.page)?;
            self.page.clear();
        }
        Ok(())
    }

    fn finish(mut self, out: &mut impl Write) -> Result<SectionMeta> {
        self.end_page(out)?;
        Ok(self.meta)
    }
}

/// Writes a run from sorted entries (`n_*_at_most` size the blooms), synced,
/// under a temporary name renamed to its own. The caller syncs the directory.
pub(crate) fn write(
    dir: &Path,
    id: u64,
    keys: impl Iterator<Item = Result<Entry>>,
    n_keys_at_most: u64,
    streams: impl Iterator<Item = Result<Entry>>,
    n_streams_at_most: u64,
) -> Result<Run> {
    let temporary = dir.join(format!("{}.tmp", file_name(id)));
    let file = File::create(&temporary)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut keys_writer = SectionWriter::new(0, n_keys_at_most);
    for entry in keys {
        keys_writer.push(entry?, &mut out)?;
    }
    let keys_meta = keys_writer.finish(&mut out)?;
    let streams_offset = keys_meta.n_entries * ENTRY_BYTES as u64;
    let mut streams_writer = SectionWriter::new(streams_offset, n_streams_at_most);
    for entry in streams {
        streams_writer.push(entry?, &mut out)?;
    }
    let streams_meta = streams_writer.finish(&mut out)?;
    let keys_offset = streams_offset + streams_meta.n_entries * ENTRY_BYTES as u64;
    let encode =
        |meta: &SectionMeta| bincode::serialize(meta).map_err(|error| LedgerError::Io(std::io::Error::other(error)));
    let (keys_bytes, streams_bytes) = (encode(&keys_meta)?, encode(&streams_meta)?);
    out.write_all(&keys_bytes)?;
    out.write_all(&streams_bytes)?;
    for word in [
        keys_offset,
        keys_bytes.len() as u64,
        xxh3_64(&keys_bytes),
        streams_bytes.len() as u64,
        xxh3_64(&streams_bytes),
    ] {
        out.write_all(&word.to_le_bytes())?;
    }
    out.write_all(MAGIC)?;
    let file = out.into_inner().map_err(|error| LedgerError::Io(error.into_error()))?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(file_name(id)))?;
    Run::open(dir, id, true)
}

/// Merges runs (any order: their entries never repeat) into a new one.
pub(crate) fn merge(dir: &Path, id: u64, runs: &[&Run]) -> Result<Run> {
    let n_keys: u64 = runs.iter().map(|run| run.n_keys()).sum();
    let n_streams: u64 = runs.iter().map(|run| run.streams.n_entries).sum();
    let keys = merged(runs.iter().map(|run| run.entries(Section::Keys)).collect::<Result<_>>()?);
    let streams = merged(runs.iter().map(|run| run.entries(Section::Streams)).collect::<Result<_>>()?);
    write(dir, id, keys, n_keys, streams, n_streams)
}

/// The smallest head of a few sorted readers, one at a time.
fn merged(mut readers: Vec<SectionReader>) -> impl Iterator<Item = Result<Entry>> {
    let mut heads: Vec<Option<Result<Entry>>> = readers.iter_mut().map(Iterator::next).collect();
    std::iter::from_fn(move || {
        if let Some(idx) = heads.iter().position(|head| matches!(head, Some(Err(_)))) {
            return heads[idx].take();
        }
        let smallest = heads
            .iter()
            .enumerate()
            .filter_map(|(idx, head)| match head {
                Some(Ok(entry)) => Some((*entry, idx)),
                _ => None,
            })
            .min()?;
        let idx = smallest.1;
        let taken = heads[idx].take();
        heads[idx] = readers[idx].next();
        taken
    })
}

/// A blocked bloom filter: all probes of a fingerprint fall in one block
/// of 512 bits (one cache line), so asking costs one cache miss per run
/// rather than one per probe. The fingerprint is already a seeded hash:
/// its low half picks the block, its high half the bits.
fn bloom_probes(fingerprint: u128, n_blocks: u64) -> (usize, impl Iterator<Item = (usize, u64)>) {
    let block = ((fingerprint as u64) % n_blocks) as usize * BLOOM_BLOCK_WORDS;
    let high = (fingerprint >> 64) as u64;
    let step = (high >> 32) | 1;
    let probes = (0..BLOOM_PROBES).map(move |i| {
        let bit = (high.wrapping_add(i.wrapping_mul(step)) % 512) as usize;
        (bit / 64, 1u64 << (bit % 64))
    });
    (block, probes)
}

fn bloom_blocks(bloom: &[u64]) -> u64 {
    (bloom.len() / BLOOM_BLOCK_WORDS).max(1) as u64
}

fn bloom_insert(bloom: &mut [u64], fingerprint: u128) {
    let (block, probes) = bloom_probes(fingerprint, bloom_blocks(bloom));
    for (word, mask) in probes {
        bloom[block + word] |= mask;
    }
}

fn bloom_may_hold(bloom: &[u64], fingerprint: u128) -> bool {
    let (block, mut probes) = bloom_probes(fingerprint, bloom_blocks(bloom));
    probes.all(|(word, mask)| bloom[block + word] & mask != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fingerprint: u128, first: u64) -> Entry {
        Entry { fingerprint, first, second: first * 10 }
    }

    #[test]
    fn lookups_and_merge_find_every_entry() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys_a: Vec<Entry> = (0..1000u128).map(|i| entry(i * 7919 % 100_003 * 2, 1)).collect();
        let mut keys_a = keys_a;
        keys_a.sort();
        let streams_a: Vec<Entry> = (0..300u128).flat_map(|s| (1..=3u64).map(move |v| entry(s * 2, v))).collect();
        let a = write(dir.path(), 1, keys_a.iter().copied().map(Ok), 1000, streams_a.iter().copied().map(Ok), 900)
            .expect("run a");
        let streams_b: Vec<Entry> = (0..300u128).map(|s| entry(s * 2, 4)).collect();
        let keys_b = [entry(1, 5), entry(3, 6)];
        let b = write(dir.path(), 2, keys_b.iter().copied().map(Ok), 2, streams_b.iter().copied().map(Ok), 300)
            .expect("run b");
        let c = merge(dir.path(), 3, &[&b, &a]).expect("merged");
        for run in [&a, &c] {
            for key in &keys_a {
                assert_eq!(run.last_at_or_below(Section::Keys, key.fingerprint, u64::MAX).expect("read"), Some(*key));
            }
            assert_eq!(run.last_at_or_below(Section::Keys, 5, u64::MAX).expect("read"), None);
        }
        assert_eq!(c.last_at_or_below(Section::Keys, 3, u64::MAX).expect("read"), Some(entry(3, 6)));
        let last = c.last_at_or_below(Section::Streams, 598, u64::MAX).expect("read").expect("stream 299");
        assert_eq!(last.first, 4);
        let mut all = Vec::new();
        c.all_of(Section::Streams, 400, &mut all).expect("read");
        assert_eq!(all.iter().map(|e| e.first).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(c.n_entries(), 1002 + 1200);
    }

    #[test]
    fn the_bloom_filter_holds_every_fingerprint_and_few_others() {
        let mut state = 0x5EED_u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            u128::from(state) << 64 | u128::from(state.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        };
        let n = 20_000u64;
        let mut bloom = vec![0u64; ((n * BLOOM_BITS_PER_KEY).div_ceil(512) * BLOOM_BLOCK_WORDS as u64) as usize];
        let inserted: Vec<u128> = (0..n).map(|_| next()).collect();
        for &fingerprint in &inserted {
            bloom_insert(&mut bloom, fingerprint);
        }
        assert!(inserted.iter().all(|&fingerprint| bloom_may_hold(&bloom, fingerprint)));
        let n_false = (0..n).filter(|_| bloom_may_hold(&bloom, next())).count();
        // About 1% at 10 bits per key; a broken filter says yes far more.
        assert!(n_false < n as usize * 3 / 100, "{n_false} false positives of {n}");
    }

    #[test]
    fn a_damaged_page_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys: Vec<Entry> = (0..500u128).map(|i| entry(i, 1)).collect();
        let run = write(dir.path(), 1, keys.iter().copied().map(Ok), 500, std::iter::empty(), 0).expect("run");
        let mut bytes = std::fs::read(run.path()).expect("read");
        bytes[100] ^= 0xff;
        std::fs::write(run.path(), &bytes).expect("write");
        let reopened = Run::open(dir.path(), 1, true).expect("meta intact");
        assert!(reopened.last_at_or_below(Section::Keys, 2, u64::MAX).is_err());
    }
}

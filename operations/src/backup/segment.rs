//! The backup directory on disk: the log header's bytes once
//! (`header.ybk`), numbered segment files of consecutive records
//! (`segment-000001.ybk` …), each ending in a fixed-size trailer, and the
//! number of the last segment (`last`), a hint that spares a run listing
//! the directory. Every file is written whole to a temporary file, fsynced,
//! renamed into place and the directory fsynced: a kill leaves either the
//! old backup or the new one, never half a file under a segment's name.
//!
//! A segment: `YBKSEG01`, then per record its position (u64 LE), hash (32
//! bytes), length (u32 LE) and stored bytes; then the trailer: ledger id
//! (16 bytes), first and last position (u64 LE), the hash before the first
//! record and the hash of the last (the chain head it reaches), the SM3 of
//! everything before it in the file, and `YBKEND01`.

use ledger::envelope::{self, Hash};
use ledger::log::restore::ExportedRecord;
use ledger::uuid::Uuid;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const SEGMENT_MAGIC: &[u8; 8] = b"YBKSEG01";
const TRAILER_MAGIC: &[u8; 8] = b"YBKEND01";
const HEADER_MAGIC: &[u8; 8] = b"YBKHEAD1";
/// Ledger id, two positions, two hashes, the SM3, the magic.
pub const TRAILER_BYTES: usize = 16 + 8 + 8 + 32 + 32 + 32 + 8;
/// Position, hash and length before each record's stored bytes.
const RECORD_PREFIX_BYTES: usize = 8 + 32 + 4;
/// Where a segment is written before it is renamed into place.
pub const TEMPORARY_NAME: &str = "segment.tmp";
const HEADER_NAME: &str = "header.ybk";
const LAST_NAME: &str = "last";
/// No stored record comes near this; a length above it is damage.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// What a segment's trailer says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub ledger_id: Uuid,
    pub first_position: u64,
    pub last_position: u64,
    pub prev_hash: Hash,
    pub head_hash: Hash,
    pub content_sm3: Hash,
}

/// Why a file of the backup does not read: the position is the first
/// record concerned (0 when none can be named).
#[derive(Debug)]
pub struct Damage {
    pub position: u64,
    pub reason: String,
}

fn damage(position: u64, reason: impl Into<String>) -> Damage {
    Damage { position, reason: reason.into() }
}

pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("segment-{number:06}.ybk"))
}

pub fn header_path(dir: &Path) -> PathBuf {
    dir.join(HEADER_NAME)
}

/// A segment being filled: records appended in order, sealed with its
/// trailer once full or at the end of the run.
pub struct SegmentBuilder {
    bytes: Vec<u8>,
    ledger_id: Uuid,
    first_position: u64,
    prev_hash: Hash,
    head: (u64, Hash),
}

impl SegmentBuilder {
    /// An empty segment continuing the chain after `prev` (position, hash),
    /// with room for `capacity_bytes` (the cap: doubling past it would
    /// hold twice the segment).
    pub fn new(ledger_id: Uuid, prev: (u64, Hash), capacity_bytes: usize) -> SegmentBuilder {
        let mut bytes = Vec::with_capacity(capacity_bytes.saturating_add(TRAILER_BYTES + MAX_RECORD_BYTES / 64));
        bytes.extend_from_slice(SEGMENT_MAGIC);
        SegmentBuilder { bytes, ledger_id, first_position: prev.0 + 1, prev_hash: prev.1, head: prev }
    }

    pub fn push(&mut self, record: &ExportedRecord) {
        assert_eq!(record.position, self.head.0 + 1, "a segment's records are consecutive");
        self.bytes.extend_from_slice(&record.position.to_le_bytes());
        self.bytes.extend_from_slice(&record.hash);
        let length = u32::try_from(record.stored.len()).expect("a stored record is far below 4 GiB");
        self.bytes.extend_from_slice(&length.to_le_bytes());
        self.bytes.extend_from_slice(&record.stored);
        self.head = (record.position, record.hash);
    }

    pub fn is_empty(&self) -> bool {
        self.head.0 < self.first_position
    }

    pub fn n_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The chain head the segment reaches.
    pub fn head(&self) -> (u64, Hash) {
        self.head
    }

    /// The whole file: records, then the trailer with their SM3.
    pub fn seal(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(self.ledger_id.as_bytes());
        self.bytes.extend_from_slice(&self.first_position.to_le_bytes());
        self.bytes.extend_from_slice(&self.head.0.to_le_bytes());
        self.bytes.extend_from_slice(&self.prev_hash);
        self.bytes.extend_from_slice(&self.head.1);
        let content_sm3 = envelope::sm3(&self.bytes);
        self.bytes.extend_from_slice(&content_sm3);
        self.bytes.extend_from_slice(TRAILER_MAGIC);
        self.bytes
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn hash_at(bytes: &[u8], at: usize) -> Hash {
    bytes[at..at + 32].try_into().expect("32 bytes")
}

/// Reads a trailer's fields, checking only its own shape (the SM3 over the
/// segment needs the whole file: `read_segment`).
pub fn parse_trailer(trailer: &[u8]) -> Result<Trailer, Damage> {
    if trailer.len() != TRAILER_BYTES || &trailer[TRAILER_BYTES - 8..] != TRAILER_MAGIC {
        return Err(damage(0, "no segment trailer at the end of the file (cut short or not a segment)"));
    }
    let ledger_id = Uuid::from_bytes(trailer[..16].try_into().expect("16 bytes"));
    let first_position = u64_at(trailer, 16);
    let last_position = u64_at(trailer, 24);
    if first_position == 0 || last_position < first_position {
        return Err(damage(first_position, format!("trailer names positions {first_position}..{last_position}")));
    }
    Ok(Trailer {
        ledger_id,
        first_position,
        last_position,
        prev_hash: hash_at(trailer, 32),
        head_hash: hash_at(trailer, 64),
        content_sm3: hash_at(trailer, 96),
    })
}

/// The trailer alone, read from the end of the file: what a backup run
/// resumes from without reading the segment.
pub fn read_trailer(path: &Path) -> std::io::Result<Result<Trailer, Damage>> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    if length < (SEGMENT_MAGIC.len() + TRAILER_BYTES) as u64 {
        return Ok(Err(damage(0, format!("{length} bytes, shorter than a segment's trailer"))));
    }
    file.seek(SeekFrom::Start(length - TRAILER_BYTES as u64))?;
    let mut trailer = [0u8; TRAILER_BYTES];
    file.read_exact(&mut trailer)?;
    Ok(parse_trailer(&trailer))
}

/// A whole segment checked: its SM3, its records' framing and positions
/// against the trailer. The chain through the records is the caller's
/// (`ledger::log::restore::check_exported`), which knows the hash before.
pub fn read_segment(bytes: &[u8]) -> Result<(Trailer, Vec<ExportedRecord>), Damage> {
    if bytes.len() < SEGMENT_MAGIC.len() + TRAILER_BYTES || &bytes[..8] != SEGMENT_MAGIC {
        return Err(damage(0, "not a segment (no YBKSEG01 at its start)"));
    }
    let trailer = parse_trailer(&bytes[bytes.len() - TRAILER_BYTES..])?;
    let summed = bytes.len() - 40;
    if envelope::sm3(&bytes[..summed]) != trailer.content_sm3 {
        return Err(damage(trailer.first_position, "the segment's SM3 does not match its content (changed bytes)"));
    }
    let records = parse_records(&bytes[8..bytes.len() - TRAILER_BYTES], trailer.first_position)?;
    let last = records.last().map_or(0, |record| record.position);
    if last != trailer.last_position {
        return Err(damage(last + 1, format!("records end at {last}, the trailer says {}", trailer.last_position)));
    }
    Ok((trailer, records))
}

fn parse_records(mut body: &[u8], first_position: u64) -> Result<Vec<ExportedRecord>, Damage> {
    let mut records = Vec::new();
    let mut expected = first_position;
    while !body.is_empty() {
        if body.len() < RECORD_PREFIX_BYTES {
            return Err(damage(expected, "a record cut short"));
        }
        let position = u64_at(body, 0);
        let length = u32::from_le_bytes(body[40..44].try_into().expect("4 bytes")) as usize;
        if position != expected {
            return Err(damage(expected, format!("the record there claims position {position}")));
        }
        if length > MAX_RECORD_BYTES || body.len() < RECORD_PREFIX_BYTES + length {
            return Err(damage(position, format!("a record of {length} bytes runs past the segment")));
        }
        let stored = body[RECORD_PREFIX_BYTES..RECORD_PREFIX_BYTES + length].to_vec();
        records.push(ExportedRecord { position, hash: hash_at(body, 8), stored });
        body = &body[RECORD_PREFIX_BYTES + length..];
        expected += 1;
    }
    Ok(records)
}

/// The header file's content: the ledger id and the log header's stored
/// bytes, with their SM3.
pub fn encode_header(ledger_id: Uuid, header_bytes: &[u8]) -> Vec<u8> {
    let mut bytes = HEADER_MAGIC.to_vec();
    bytes.extend_from_slice(ledger_id.as_bytes());
    let length = u32::try_from(header_bytes.len()).expect("a log header is a few hundred bytes");
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(header_bytes);
    let sum = envelope::sm3(&bytes);
    bytes.extend_from_slice(&sum);
    bytes
}

/// The ledger id and the log header's bytes, checked against their SM3.
pub fn decode_header(bytes: &[u8]) -> Result<(Uuid, Vec<u8>), Damage> {
    let fixed = HEADER_MAGIC.len() + 16 + 4;
    if bytes.len() < fixed + 32 || &bytes[..8] != HEADER_MAGIC {
        return Err(damage(0, "not a backup header (no YBKHEAD1 at its start)"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 32);
    if envelope::sm3(content) != *sum {
        return Err(damage(0, "the header's SM3 does not match its content (changed bytes)"));
    }
    let length = u32::from_le_bytes(content[24..28].try_into().expect("4 bytes")) as usize;
    if content.len() != fixed + length {
        return Err(damage(0, format!("the header says {length} bytes of log header, the file holds another size")));
    }
    let ledger_id = Uuid::from_bytes(content[8..24].try_into().expect("16 bytes"));
    Ok((ledger_id, content[fixed..].to_vec()))
}

/// Writes `bytes` as `dir/name`, atomically and durably: a temporary file
/// (`temporary`), fsync, rename, fsync of the directory.
pub fn write_durably(dir: &Path, temporary: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(temporary);
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// The last segment's number: from the `last` hint, then past it while
/// later segments exist (a run killed after a rename, before the hint).
pub fn last_segment_number(dir: &Path) -> u64 {
    let hinted = std::fs::read_to_string(dir.join(LAST_NAME)).ok().and_then(|text| text.trim().parse::<u64>().ok());
    let mut number = hinted.unwrap_or(0);
    while segment_path(dir, number + 1).exists() {
        number += 1;
    }
    number
}

/// Records `number` as the last segment. Only a hint (a stale one is
/// walked past), so it is renamed into place but not fsynced.
pub fn note_last_segment(dir: &Path, number: u64) -> std::io::Result<()> {
    std::fs::write(dir.join("last.tmp"), format!("{number}\n"))?;
    std::fs::rename(dir.join("last.tmp"), dir.join(LAST_NAME))
}

/// The segments in the directory, by number, as (number, path); a
/// temporary or a file of another name is not one.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let number = name.strip_prefix("segment-").and_then(|rest| rest.strip_suffix(".ybk"));
        if let Some(number) = number.and_then(|n| n.parse::<u64>().ok()) {
            segments.push((number, path));
        }
    }
    segments.sort();
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(position: u64, prev: &Hash) -> ExportedRecord {
        let stored = format!("record {position}").into_bytes();
        ExportedRecord { position, hash: envelope::chain_hash(prev, &stored), stored }
    }

    #[test]
    fn a_sealed_segment_reads_back_and_any_changed_byte_is_damage() {
        let id = Uuid::from_bytes([7; 16]);
        let mut builder = SegmentBuilder::new(id, (4, [1; 32]), 100);
        let first = record(5, &[1; 32]);
        let second = record(6, &first.hash);
        builder.push(&first);
        builder.push(&second);
        let bytes = builder.seal();
        let (trailer, records) = read_segment(&bytes).expect("reads");
        assert_eq!((trailer.first_position, trailer.last_position, trailer.head_hash), (5, 6, second.hash));
        assert_eq!(records.iter().map(|r| r.stored.clone()).collect::<Vec<_>>(), vec![first.stored, second.stored]);
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x20;
            assert!(read_segment(&changed).is_err(), "a flip at byte {at} went unnoticed");
        }
    }

    #[test]
    fn the_header_file_reads_back_and_a_changed_byte_is_damage() {
        let id = Uuid::from_bytes([3; 16]);
        let bytes = encode_header(id, b"the log header");
        assert_eq!(decode_header(&bytes).expect("reads"), (id, b"the log header".to_vec()));
        let mut changed = bytes.clone();
        changed[30] ^= 1;
        assert!(decode_header(&changed).is_err());
    }
}

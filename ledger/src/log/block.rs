//! A block: a run of consecutive records stored as one sled value, keyed by
//! its first position.
//!
//! ```text
//! magic "YBK1" | first_position u64 LE | n_records u32 LE | flags u8 | prev_hash [32]
//! n_records × ( body_len u32 LE | body [body_len] | hash [32] )
//! ```
//! `flags & COMPLETE` is set when the block ends at the end of an append
//! request; a block split inside one large request is not complete until a
//! later block is. Recovery drops a trailing run of incomplete blocks, so an
//! append is all or nothing however many blocks it spans.
//!
//! `flags & COMPRESSED` (written since the second block format; blocks
//! without it read as they always did): the records' lengths and bodies are
//! stored LZ4-compressed (block format, no frame) and their hashes after
//! them, as they are (incompressible, and readable without decompressing:
//! the Merkle tree reads only them):
//! ```text
//! header (as above) | bodies_len u32 LE | packed_len u32 LE
//! lz4( n_records × ( body_len u32 LE | body [body_len] ) ) [packed_len]
//! n_records × hash [32]
//! ```
//! The chain is over the bodies, never over their stored form: a block
//! reads back to the same records and hashes either way.

use crate::envelope::{Hash, MAX_RECORD_BYTES};
use std::borrow::Cow;

pub const MAGIC: &[u8; 4] = b"YBK1";
pub const HEADER_BYTES: usize = 4 + 8 + 4 + 1 + 32;
pub const COMPLETE: u8 = 1;
/// The records' frames are stored LZ4-compressed.
pub const COMPRESSED: u8 = 2;
/// After a compressed block's header: the length of its lengths and bodies
/// and of their compressed form.
pub const PACKED_LENGTHS_BYTES: usize = 4 + 4;
/// sled 0.34 stores a message above a quarter segment in a blob file of its
/// own, which it never fsyncs; the segment size is chosen so that a leaf full
/// of blocks this large stays inline (see `sled_log::SEGMENT_BYTES`).
pub const MAX_BLOCK_BYTES: usize = 30_000;
/// One record of the largest size always fits in an empty block.
const _: () = assert!(HEADER_BYTES + 4 + MAX_RECORD_BYTES + 32 <= MAX_BLOCK_BYTES);

/// Key of the block whose first record is at `position`: big endian, so sled
/// orders keys as positions.
pub fn key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

pub fn position_of_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Builds one block.
pub struct BlockBuilder {
    bytes: Vec<u8>,
    n_records: u32,
    first_position: u64,
    last_hash: Hash,
}

impl BlockBuilder {
    pub fn new(first_position: u64, prev_hash: Hash) -> BlockBuilder {
        let mut bytes = Vec::with_capacity(MAX_BLOCK_BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&first_position.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&prev_hash);
        BlockBuilder { bytes, n_records: 0, first_position, last_hash: prev_hash }
    }

    pub fn fits(&self, body_len: usize) -> bool {
        self.bytes.len() + 4 + body_len + 32 <= MAX_BLOCK_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.n_records == 0
    }

    pub fn first_position(&self) -> u64 {
        self.first_position
    }

    pub fn next_position(&self) -> u64 {
        self.first_position + u64::from(self.n_records)
    }

    pub fn push(&mut self, body: &[u8], hash: &Hash) {
        debug_assert!(self.fits(body.len()));
        let len = u32::try_from(body.len()).expect("records are below MAX_RECORD_BYTES");
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(body);
        self.bytes.extend_from_slice(hash);
        self.n_records += 1;
        self.last_hash = *hash;
    }

    /// Pushes a record whose hash [`chain`] fills in later.
    pub fn push_unhashed(&mut self, body: &[u8]) {
        self.push(body, &[0; 32]);
    }

    pub fn finish(mut self, complete: bool) -> SealedBlock {
        self.bytes[12..16].copy_from_slice(&self.n_records.to_le_bytes());
        self.bytes[16] = if complete { COMPLETE } else { 0 };
        SealedBlock {
            first_position: self.first_position,
            n_records: self.n_records,
            complete,
            last_hash: self.last_hash,
            bytes: self.bytes,
        }
    }
}

/// Writes the chain into a block built with [`BlockBuilder::push_unhashed`]:
/// its `prev_hash`, then each record's `SM3(prev ++ body)`. Returns the last
/// hash (`prev` for an empty block).
pub fn chain(block: &mut SealedBlock, prev: Hash) -> Hash {
    let bytes = &mut block.bytes;
    bytes[17..HEADER_BYTES].copy_from_slice(&prev);
    let mut last = prev;
    let mut at = HEADER_BYTES;
    for _ in 0..block.n_records {
        let len_bytes: [u8; 4] = bytes[at..at + 4].try_into().expect("a built block frames its records");
        let body_end = at + 4 + u32::from_le_bytes(len_bytes) as usize;
        last = crate::envelope::chain_hash(&last, &bytes[at + 4..body_end]);
        bytes[body_end..body_end + 32].copy_from_slice(&last);
        at = body_end + 32;
    }
    debug_assert_eq!(at, bytes.len(), "a built block ends with its last record");
    block.last_hash = last;
    last
}

impl SealedBlock {
    /// Stores the records' lengths and bodies LZ4-compressed, and their
    /// hashes after them, when that is smaller. Called once the chain is
    /// written ([`chain`] reads the frames).
    pub fn compress(&mut self) {
        if self.bytes[16] & COMPRESSED != 0 {
            return;
        }
        let Ok(view) = BlockView::parse(&self.bytes) else { return };
        let mut bodies = Vec::with_capacity(self.bytes.len());
        let mut hashes = Vec::with_capacity(self.n_records as usize * 32);
        for record in view.records() {
            let Ok(record) = record else { return };
            let len = u32::try_from(record.body.len()).expect("records are below MAX_RECORD_BYTES");
            bodies.extend_from_slice(&len.to_le_bytes());
            bodies.extend_from_slice(record.body);
            hashes.extend_from_slice(&record.hash);
        }
        let packed = lz4_flex::block::compress(&bodies);
        if packed.len() + PACKED_LENGTHS_BYTES >= bodies.len() {
            return;
        }
        let bodies_len = u32::try_from(bodies.len()).expect("a block is below MAX_BLOCK_BYTES");
        let packed_len = u32::try_from(packed.len()).expect("a block is below MAX_BLOCK_BYTES");
        let mut bytes = Vec::with_capacity(HEADER_BYTES + PACKED_LENGTHS_BYTES + packed.len() + hashes.len());
        bytes.extend_from_slice(&self.bytes[..HEADER_BYTES]);
        bytes[16] |= COMPRESSED;
        bytes.extend_from_slice(&bodies_len.to_le_bytes());
        bytes.extend_from_slice(&packed_len.to_le_bytes());
        bytes.extend_from_slice(&packed);
        bytes.extend_from_slice(&hashes);
        self.bytes = bytes;
    }
}

/// A finished block, ready to store.
pub struct SealedBlock {
    pub first_position: u64,
    pub n_records: u32,
    /// Ends at the end of an append request.
    pub complete: bool,
    pub last_hash: Hash,
    pub bytes: Vec<u8>,
}

/// A record inside a stored block, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord<'a> {
    pub position: u64,
    pub body: &'a [u8],
    pub hash: Hash,
}

/// What is wrong with a stored block's framing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("block header is damaged or cut short")]
    Header,
    #[error("record {index} of the block is cut short")]
    Truncated { index: u32 },
    #[error("{extra} bytes after the block's last record")]
    TrailingBytes { extra: usize },
    #[error("the block's compressed records do not decompress")]
    Packed,
}

/// A stored block, parsed lazily (a compressed one's bodies are
/// decompressed whole).
pub struct BlockView<'a> {
    pub first_position: u64,
    pub n_records: u32,
    pub complete: bool,
    pub prev_hash: Hash,
    /// Stored LZ4-compressed.
    pub compressed: bool,
    /// Plain: the frames. Compressed: the lengths and bodies.
    records: Cow<'a, [u8]>,
    /// Compressed: the records' hashes, stored apart.
    hashes: Option<&'a [u8]>,
}

/// A block's header fields.
struct Header {
    first_position: u64,
    n_records: u32,
    complete: bool,
    compressed: bool,
    prev_hash: Hash,
}

fn parse_header(bytes: &[u8]) -> Result<Header, FrameError> {
    if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
        return Err(FrameError::Header);
    }
    let first_position = u64::from_le_bytes(bytes[4..12].try_into().map_err(|_| FrameError::Header)?);
    let n_records = u32::from_le_bytes(bytes[12..16].try_into().map_err(|_| FrameError::Header)?);
    let flags = bytes[16];
    if flags & !(COMPLETE | COMPRESSED) != 0 {
        return Err(FrameError::Header);
    }
    let prev_hash: Hash = bytes[17..49].try_into().map_err(|_| FrameError::Header)?;
    Ok(Header {
        first_position,
        n_records,
        complete: flags & COMPLETE != 0,
        compressed: flags & COMPRESSED != 0,
        prev_hash,
    })
}

impl<'a> BlockView<'a> {
    /// Parses one stored block: all of `bytes` is the block.
    pub fn parse(bytes: &'a [u8]) -> Result<BlockView<'a>, FrameError> {
        let (view, end) = BlockView::parse_prefix(bytes)?;
        if end < bytes.len() {
            return Err(FrameError::TrailingBytes { extra: bytes.len() - end });
        }
        Ok(view)
    }

    /// Parses the block at the start of `bytes`, which may go on past it
    /// (a file read raw). Returns where a compressed block's stored form
    /// ends; for a plain one, the end of `bytes` (its frames tell where its
    /// records end).
    pub fn parse_prefix(bytes: &'a [u8]) -> Result<(BlockView<'a>, usize), FrameError> {
        let header = parse_header(bytes)?;
        let (records, hashes, end) = if header.compressed {
            let packed = Packed::locate(&bytes[HEADER_BYTES..], header.n_records)?;
            let bodies = packed.decompress()?;
            (Cow::Owned(bodies), Some(packed.hashes), HEADER_BYTES + packed.end)
        } else {
            (Cow::Borrowed(&bytes[HEADER_BYTES..]), None, bytes.len())
        };
        let view = BlockView {
            first_position: header.first_position,
            n_records: header.n_records,
            complete: header.complete,
            prev_hash: header.prev_hash,
            compressed: header.compressed,
            records,
            hashes,
        };
        Ok((view, end))
    }

    /// The records' frames as built, `(length, body, hash)` each.
    pub fn frames(&self) -> Cow<'_, [u8]> {
        let Some(hashes) = self.hashes else { return Cow::Borrowed(&self.records) };
        let mut frames = Vec::with_capacity(self.records.len() + hashes.len());
        let mut rest: &[u8] = &self.records;
        for hash in hashes.chunks_exact(32) {
            let Some(len_bytes) = rest.get(..4) else { break };
            let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
            let Some(frame) = rest.get(..4 + len) else { break };
            frames.extend_from_slice(frame);
            frames.extend_from_slice(hash);
            rest = &rest[4 + len..];
        }
        frames.extend_from_slice(rest);
        Cow::Owned(frames)
    }

    /// The records in order; a framing error ends the iteration.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter {
            rest: &self.records,
            hashes: self.hashes,
            index: 0,
            n_records: self.n_records,
            first_position: self.first_position,
            failed: false,
        }
    }
}

/// The chain hashes of a stored block's records, `(position, hash)` in
/// order, read without decompressing its bodies.
pub fn record_hashes(bytes: &[u8]) -> Result<Vec<(u64, Hash)>, FrameError> {
    let header = parse_header(bytes)?;
    if !header.compressed {
        let view = BlockView::parse(bytes)?;
        return view.records().map(|record| record.map(|r| (r.position, r.hash))).collect();
    }
    let packed = Packed::locate(&bytes[HEADER_BYTES..], header.n_records)?;
    if HEADER_BYTES + packed.end != bytes.len() {
        return Err(FrameError::TrailingBytes { extra: bytes.len().saturating_sub(HEADER_BYTES + packed.end) });
    }
    let positions = header.first_position..;
    Ok(positions
        .zip(packed.hashes.chunks_exact(32))
        .map(|(position, hash)| (position, hash.try_into().expect("chunks of 32 bytes")))
        .collect())
}

/// A stored block in the plain layout, its frames uncompressed, as the
/// first block format stored every block: for tools and tests that read or
/// change frames in place.
pub fn plain(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    let view = BlockView::parse(bytes)?;
    let frames = view.frames();
    let mut plain = Vec::with_capacity(HEADER_BYTES + frames.len());
    plain.extend_from_slice(&bytes[..HEADER_BYTES]);
    plain[16] &= !COMPRESSED;
    plain.extend_from_slice(&frames);
    Ok(plain)
}

/// Where the parts of a compressed block lie in what follows its header.
struct Packed<'a> {
    bodies_len: usize,
    packed: &'a [u8],
    hashes: &'a [u8],
    /// Where the stored form ends.
    end: usize,
}

impl<'a> Packed<'a> {
    fn locate(bytes: &'a [u8], n_records: u32) -> Result<Packed<'a>, FrameError> {
        let length = |at: usize| -> Result<usize, FrameError> {
            let field: [u8; 4] =
                bytes.get(at..at + 4).ok_or(FrameError::Header)?.try_into().map_err(|_| FrameError::Header)?;
            Ok(u32::from_le_bytes(field) as usize)
        };
        let (bodies_len, packed_len) = (length(0)?, length(4)?);
        let hashes_len = (n_records as usize).saturating_mul(32);
        // Bounded before anything is allocated: a damaged length is not a size.
        if bodies_len > MAX_BLOCK_BYTES || packed_len > MAX_BLOCK_BYTES || hashes_len > MAX_BLOCK_BYTES {
            return Err(FrameError::Header);
        }
        let packed_end = PACKED_LENGTHS_BYTES + packed_len;
        let packed = bytes.get(PACKED_LENGTHS_BYTES..packed_end).ok_or(FrameError::Packed)?;
        let end = packed_end + hashes_len;
        let hashes = bytes.get(packed_end..end).ok_or(FrameError::Truncated { index: 0 })?;
        Ok(Packed { bodies_len, packed, hashes, end })
    }

    fn decompress(&self) -> Result<Vec<u8>, FrameError> {
        // Into room that is not zeroed first (a scan decompresses every
        // block); the output is bounded by it.
        match lz4_flex::block::decompress(self.packed, self.bodies_len) {
            Ok(bodies) if bodies.len() == self.bodies_len => Ok(bodies),
            _ => Err(FrameError::Packed),
        }
    }
}

pub struct RecordIter<'a> {
    rest: &'a [u8],
    /// A compressed block's hashes, stored apart; `None`: each follows its
    /// body.
    hashes: Option<&'a [u8]>,
    index: u32,
    n_records: u32,
    first_position: u64,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RawRecord<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.index == self.n_records {
            if self.rest.is_empty() {
                return None;
            }
            self.failed = true;
            return Some(Err(FrameError::TrailingBytes { extra: self.rest.len() }));
        }
        let truncated = FrameError::Truncated { index: self.index };
        let Some(len_bytes) = self.rest.get(..4) else {
            self.failed = true;
            return Some(Err(truncated));
        };
        let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let inline_hash = if self.hashes.is_some() { 0 } else { 32 };
        let end = 4usize.saturating_add(len).saturating_add(inline_hash);
        if len > MAX_RECORD_BYTES || self.rest.len() < end {
            self.failed = true;
            return Some(Err(truncated));
        }
        let body = &self.rest[4..4 + len];
        let hash_bytes = match self.hashes {
            None => &self.rest[4 + len..end],
            Some(hashes) => {
                let at = self.index as usize * 32;
                let Some(hash_bytes) = hashes.get(at..at + 32) else {
                    self.failed = true;
                    return Some(Err(truncated));
                };
                hash_bytes
            }
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(hash_bytes);
        self.rest = &self.rest[end..];
        let position = self.first_position + u64::from(self.index);
        self.index += 1;
        Some(Ok(RawRecord { position, body, hash }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let mut builder = BlockBuilder::new(7, [1; 32]);
        builder.push(b"alpha", &[2; 32]);
        builder.push(b"beta", &[3; 32]);
        let sealed = builder.finish(true);
        let view = BlockView::parse(&sealed.bytes).expect("parses");
        assert_eq!((view.first_position, view.n_records, view.complete), (7, 2, true));
        let records: Vec<_> = view.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(records[1].position, 8);
        assert_eq!(records[1].body, b"beta");
        assert_eq!(records[1].hash, [3; 32]);
    }

    /// A chained block of `n` similar records, as the writer builds it.
    fn chained(n: u32) -> SealedBlock {
        let mut builder = BlockBuilder::new(1, [9; 32]);
        for index in 0..n {
            builder.push_unhashed(format!("payment of 400.00 for 52050219500101{index:04}, channel tax").as_bytes());
        }
        let mut sealed = builder.finish(true);
        chain(&mut sealed, [9; 32]);
        sealed
    }

    #[test]
    fn a_compressed_block_reads_back_its_records_and_hashes() {
        let mut sealed = chained(100);
        let built = sealed.bytes.clone();
        sealed.compress();
        assert!(sealed.bytes.len() < built.len() / 2, "{} of {} bytes", sealed.bytes.len(), built.len());
        let view = BlockView::parse(&sealed.bytes).expect("parses");
        assert!(view.compressed && view.complete);
        let plain_view = BlockView::parse(&built).expect("parses");
        assert!(!plain_view.compressed);
        let records: Vec<_> = view.records().collect::<Result<_, _>>().expect("records");
        let plain_records: Vec<_> = plain_view.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(records.len(), 100);
        for (record, plain) in records.iter().zip(&plain_records) {
            assert_eq!((record.position, record.body, record.hash), (plain.position, plain.body, plain.hash));
        }
        assert_eq!(plain(&sealed.bytes).expect("plain"), built);
        let hashes: Vec<(u64, Hash)> = plain_records.iter().map(|r| (r.position, r.hash)).collect();
        assert_eq!(record_hashes(&sealed.bytes).expect("hashes"), hashes);
        assert_eq!(record_hashes(&built).expect("hashes"), hashes);
    }

    #[test]
    fn a_block_that_does_not_shrink_is_stored_plain() {
        let mut builder = BlockBuilder::new(1, [0; 32]);
        let noise: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        builder.push_unhashed(&noise);
        let mut sealed = builder.finish(true);
        chain(&mut sealed, [0; 32]);
        let built = sealed.bytes.clone();
        sealed.compress();
        assert_eq!(sealed.bytes, built);
    }

    #[test]
    fn a_compressed_block_cut_or_followed_by_bytes_is_found_out() {
        let mut sealed = chained(50);
        sealed.compress();
        let stored = &sealed.bytes;
        assert!(BlockView::parse(&stored[..stored.len() - 1]).is_err());
        assert!(record_hashes(&stored[..stored.len() - 1]).is_err());
        let mut longer = stored.clone();
        longer.extend_from_slice(b"more");
        assert!(matches!(BlockView::parse(&longer), Err(FrameError::TrailingBytes { extra: 4 })));
        // Carved from a file, the bytes after a block are the next thing there.
        let (view, end) = BlockView::parse_prefix(&longer).expect("parses");
        assert_eq!((end, view.n_records), (stored.len(), 50));
        let mut lying = stored.clone();
        lying[HEADER_BYTES..HEADER_BYTES + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(BlockView::parse(&lying), Err(FrameError::Header)));
    }

    /// Damage anywhere in a compressed block is an error or records whose
    /// hashes no longer check, never a panic and never the block as written.
    #[test]
    fn a_changed_byte_anywhere_in_a_compressed_block_is_found_out() {
        let mut sealed = chained(30);
        sealed.compress();
        for at in 0..sealed.bytes.len() {
            let mut damaged = sealed.bytes.clone();
            damaged[at] ^= 0x41;
            let Ok(view) = BlockView::parse(&damaged) else { continue };
            let mut prev = view.prev_hash;
            let mut intact = view.first_position == 1 && view.n_records == 30 && view.complete;
            for record in view.records() {
                match record {
                    Ok(record) => {
                        intact &= crate::envelope::chain_hash(&prev, record.body) == record.hash;
                        prev = record.hash;
                    }
                    Err(_) => intact = false,
                }
            }
            assert!(!intact, "byte {at} changed and nothing noticed");
        }
    }

    #[test]
    fn cut_blocks_are_framing_errors() {
        let mut builder = BlockBuilder::new(1, [0; 32]);
        builder.push(b"alpha", &[2; 32]);
        let sealed = builder.finish(true);
        let cut = &sealed.bytes[..sealed.bytes.len() - 3];
        let view = BlockView::parse(cut).expect("header intact");
        assert!(matches!(view.records().next(), Some(Err(FrameError::Truncated { index: 0 }))));
        assert!(matches!(BlockView::parse(&sealed.bytes[..10]), Err(FrameError::Header)));
    }
}

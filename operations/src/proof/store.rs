//! The log's Merkle tree kept on disk, so that a tree head or a proof
//! costs O(log n) hashes plus at most two chunks of records read from the
//! log, whatever the history.
//!
//! `DIR/merkle/tree` holds, for every complete chunk of [`CHUNK_LEAVES`]
//! leaves, the root of its subtree and the chain hash of its last record:
//!
//! ```text
//! magic "YBMTREE1" | format version u32 LE | chunk leaves u32 LE | genesis hash [32] | n_chunks u64 LE
//! n_chunks × ( chunk root [32] | chain hash at the chunk's end [32] )
//! SM3 of everything above [32]
//! ```
//!
//! The levels above the chunks are computed in memory at load (one node
//! hash per chunk: 27,000 for 7M records). The file is derived data, never
//! trusted over the log: one of another ledger (genesis hash), another
//! format or chunk size, cut short, failing its checksum, past the log's
//! head or ending at a chain hash the log does not have at that position is
//! noted on stderr and rebuilt from the log. A chunk read from the log for
//! a proof is checked against its stored root and end hash as well. Each
//! save writes a temporary sibling, fsyncs it and renames it over the file,
//! so a kill at any moment leaves the old store or the new one.

use crate::error::StorageError;
use ledger::envelope::{sm3, Hash};
use ledger::merkle::{self, HashSource};
use ledger::{LedgerError, LogStore};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Leaves per chunk, by measurement at 1M records (README, Benchmarks):
/// 64 gives 6,800 inclusion proofs/s and a store of 1 byte per record
/// (opened whole by every command), 256 gives 2,800/s and a quarter byte,
/// 1,024 700/s: a proof reads and hashes one or two chunks of records.
pub const CHUNK_LEAVES: u64 = 256;

const MAGIC: &[u8; 8] = b"YBMTREE1";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 4 + 32 + 8;
const ENTRY_BYTES: usize = 64;
const CHECKSUM_BYTES: usize = 32;

/// The complete chunks' subtree roots of one ledger's tree, with every
/// level above them.
#[derive(Debug)]
pub struct TreeStore {
    path: PathBuf,
    genesis_hash: Hash,
    /// `levels[0]`: the chunks' roots; `levels[k][i]`: the root over chunks
    /// `[i·2^k, (i+1)·2^k)`, present once all of them are.
    levels: Vec<Vec<Hash>>,
    /// The chain hash of each chunk's last record.
    chunk_ends: Vec<Hash>,
}

/// Why a stored tree cannot be used as it is.
enum Unusable {
    Missing,
    Rebuild(String),
    Failed(StorageError),
}

impl TreeStore {
    /// Where the store of the ledger in `data` lives.
    pub fn path_in(data: &Path) -> PathBuf {
        data.join("merkle").join("tree")
    }

    /// The store of `data` checked against `log` (rebuilt when it cannot
    /// be used) and caught up to the log's head, saved when it gained chunks.
    pub fn open(data: &Path, log: &dyn LogStore) -> Result<TreeStore, StorageError> {
        let path = Self::path_in(data);
        match load(&path, log) {
            Ok(mut store) => {
                store.catch_up(log)?;
                Ok(store)
            }
            Err(Unusable::Missing) => Self::rebuild(data, log),
            Err(Unusable::Rebuild(reason)) => {
                eprintln!("note: the Merkle tree store {} {reason}; rebuilding it from the log", path.display());
                Self::rebuild(data, log)
            }
            Err(Unusable::Failed(error)) => Err(error),
        }
    }

    /// The store of `data` built from the log alone, whatever the file
    /// holds, and saved.
    pub fn rebuild(data: &Path, log: &dyn LogStore) -> Result<TreeStore, StorageError> {
        let mut store = TreeStore::empty(Self::path_in(data), log.genesis_hash());
        store.catch_up(log)?;
        if store.n_chunks() == 0 {
            store.save()?;
        }
        Ok(store)
    }

    fn empty(path: PathBuf, genesis_hash: Hash) -> TreeStore {
        TreeStore { path, genesis_hash, levels: vec![Vec::new()], chunk_ends: Vec::new() }
    }

    /// Adds the chunks the log completed since the store's end, reading
    /// only the records after it, and saves the store if it gained any.
    /// Returns the number of records read.
    pub fn catch_up(&mut self, log: &dyn LogStore) -> Result<u64, StorageError> {
        let n_records = self.extend(log)?;
        if n_records > 0 {
            self.save()?;
        }
        Ok(n_records)
    }

    /// [`TreeStore::catch_up`] in memory only: for a holder that keeps the
    /// tree current as the log grows and saves it now and then (the file
    /// is caught up from its end at the next open anyway).
    pub fn extend(&mut self, log: &dyn LogStore) -> Result<u64, StorageError> {
        let head = log.durable_head().position;
        let (from_chunk, to_chunk) = (self.n_chunks(), head / CHUNK_LEAVES);
        if to_chunk <= from_chunk {
            return Ok(0);
        }
        let (from, to) = (from_chunk * CHUNK_LEAVES + 1, to_chunk * CHUNK_LEAVES);
        let mut leaf_hashes = Vec::with_capacity(CHUNK_LEAVES as usize);
        let mut expected = from;
        let mut gap = None;
        log.chain_hashes(from, to, &mut |position, chain_hash| {
            if position != expected {
                gap.get_or_insert(expected);
                return;
            }
            expected += 1;
            leaf_hashes.push(merkle::leaf_hash(chain_hash));
            if leaf_hashes.len() as u64 == CHUNK_LEAVES {
                self.push_chunk(subtree_root(&leaf_hashes), *chain_hash);
                leaf_hashes.clear();
            }
        })?;
        if let Some(position) = gap.or((expected <= to).then_some(expected)) {
            let reason = "the log gave no record here while the Merkle tree was built".to_string();
            return Err(StorageError::Ledger(LedgerError::Corrupt { position, reason }));
        }
        Ok(to - from + 1)
    }

    /// Why this store does not fit `log`, if it does not: another
    /// ledger's, past its head, or ending at a chain hash the log does not
    /// have there.
    fn mismatch(&self, log: &dyn LogStore) -> Result<Option<String>, StorageError> {
        if self.genesis_hash != log.genesis_hash() {
            return Ok(Some("belongs to another ledger (its genesis hash differs)".into()));
        }
        let (end, head) = (self.n_leaves(), log.durable_head().position);
        if end > head {
            return Ok(Some(format!("covers position {end}, past the log's head at position {head}")));
        }
        match self.chunk_ends.last() {
            Some(stored) if chain_hash_at(log, end)? != *stored => {
                Ok(Some(format!("ends at a chain hash the log does not have at position {end}")))
            }
            _ => Ok(None),
        }
    }

    /// A store held in memory brought to `log`'s head: extended from its
    /// end (in memory), or, when it no longer fits the log, opened again.
    pub fn refresh(&mut self, data: &Path, log: &dyn LogStore) -> Result<(), StorageError> {
        match self.mismatch(log)? {
            None => self.extend(log).map(drop),
            Some(_) => {
                *self = TreeStore::open(data, log)?;
                Ok(())
            }
        }
    }

    /// Leaves covered by the store's complete chunks.
    pub fn n_leaves(&self) -> u64 {
        self.n_chunks() * CHUNK_LEAVES
    }

    /// The chunks' roots, in order.
    pub fn chunk_roots(&self) -> &[Hash] {
        &self.levels[0]
    }

    fn n_chunks(&self) -> u64 {
        self.chunk_ends.len() as u64
    }

    fn push_chunk(&mut self, root: Hash, end_chain_hash: Hash) {
        self.chunk_ends.push(end_chain_hash);
        let mut node = root;
        for level in 0.. {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(node);
            let nodes = &self.levels[level];
            if nodes.len() % 2 == 1 {
                break;
            }
            node = merkle::node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
        }
    }

    /// The root over chunks `[first, first + count)`, all complete.
    fn chunks_root(&self, first: u64, count: u64) -> Hash {
        if count.is_power_of_two() && first.is_multiple_of(count) {
            let level = count.trailing_zeros() as usize;
            return self.levels[level][(first / count) as usize];
        }
        let split = split_point(count);
        merkle::node_hash(&self.chunks_root(first, split), &self.chunks_root(first + split, count - split))
    }

    /// The file's bytes: header, entries, checksum.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.chunk_ends.len() * ENTRY_BYTES + CHECKSUM_BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(CHUNK_LEAVES as u32).to_le_bytes());
        bytes.extend_from_slice(&self.genesis_hash);
        bytes.extend_from_slice(&self.n_chunks().to_le_bytes());
        for (root, end) in self.levels[0].iter().zip(&self.chunk_ends) {
            bytes.extend_from_slice(root);
            bytes.extend_from_slice(end);
        }
        let checksum = sm3(&bytes);
        bytes.extend_from_slice(&checksum);
        bytes
    }

    /// Writes the store (temporary sibling, fsync, rename, fsync of the
    /// directory).
    pub fn save(&self) -> Result<(), StorageError> {
        let io = |source| StorageError::Io {
            what: format!("writing the Merkle tree store {}", self.path.display()),
            source,
        };
        let directory = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(directory).map_err(io)?;
        // One temporary name per save: two processes of one PostgreSQL
        // ledger, or two requests of the service, may save at once, and
        // each rename installs a whole store.
        static N_SAVES: AtomicU64 = AtomicU64::new(0);
        let n_save = N_SAVES.fetch_add(1, Ordering::Relaxed);
        let temporary = directory.join(format!("tree.{}.{n_save}.tmp", std::process::id()));
        let mut file = File::create(&temporary).map_err(io)?;
        file.write_all(&self.encode()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        File::open(directory).and_then(|directory| directory.sync_all()).map_err(io)
    }

    /// The tree of the log's first `tree_size` leaves, reading what the
    /// store does not hold from `log`.
    pub fn view<'a>(&'a self, log: &'a dyn LogStore, tree_size: u64) -> TreeView<'a> {
        TreeView {
            store: self,
            log,
            tree_size,
            usable_chunks: self.n_chunks().min(tree_size / CHUNK_LEAVES),
            chunks: RefCell::new(Vec::new()),
            failure: RefCell::new(None),
            disagreed: Cell::new(None),
        }
    }
}

/// Reads and checks the stored tree.
fn load(path: &Path, log: &dyn LogStore) -> Result<TreeStore, Unusable> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(source) => {
            let what = format!("reading the Merkle tree store {}", path.display());
            return Err(Unusable::Failed(StorageError::Io { what, source }));
        }
    };
    let store = decode(path, &bytes).map_err(Unusable::Rebuild)?;
    match store.mismatch(log).map_err(Unusable::Failed)? {
        Some(reason) => Err(Unusable::Rebuild(reason)),
        None => Ok(store),
    }
}

/// The store in `bytes`, or why it cannot be used.
fn decode(path: &Path, bytes: &[u8]) -> Result<TreeStore, String> {
    if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES || !bytes.starts_with(MAGIC) {
        return Err("is not a Merkle tree store of this format".into());
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if sm3(body).as_slice() != checksum {
        return Err("is damaged: its SM3 checksum does not match".into());
    }
    let field = |at: usize, len: usize| &body[at..at + len];
    let version = u32::from_le_bytes(field(8, 4).try_into().expect("4 bytes"));
    let chunk_leaves = u32::from_le_bytes(field(12, 4).try_into().expect("4 bytes"));
    if version != FORMAT_VERSION || u64::from(chunk_leaves) != CHUNK_LEAVES {
        return Err(format!(
            "has format {version} with chunks of {chunk_leaves} leaves, not {FORMAT_VERSION} and {CHUNK_LEAVES}"
        ));
    }
    let genesis_hash: Hash = field(16, 32).try_into().expect("32 bytes");
    let n_chunks = u64::from_le_bytes(field(48, 8).try_into().expect("8 bytes"));
    let entries = &body[HEADER_BYTES..];
    if entries.len() as u64 != n_chunks.saturating_mul(ENTRY_BYTES as u64) {
        return Err(format!("says it holds {n_chunks} chunks but has {} bytes of them", entries.len()));
    }
    let mut store = TreeStore::empty(path.to_path_buf(), genesis_hash);
    for entry in entries.chunks_exact(ENTRY_BYTES) {
        let (root, end) = entry.split_at(32);
        store.push_chunk(root.try_into().expect("32 bytes"), end.try_into().expect("32 bytes"));
    }
    Ok(store)
}

/// The chain hash of the record at `position`.
fn chain_hash_at(log: &dyn LogStore, position: u64) -> Result<Hash, StorageError> {
    let mut found = None;
    log.chain_hashes(position, position, &mut |at, hash| {
        if at == position {
            found = Some(*hash);
        }
    })?;
    found.ok_or_else(|| StorageError::Ledger(LedgerError::Corrupt { position, reason: "the record is missing".into() }))
}

/// The root over a chunk's (or a part of a chunk's) leaf hashes.
fn subtree_root(leaf_hashes: &[Hash]) -> Hash {
    merkle::root_of(leaf_hashes.len() as u64, leaf_hashes).expect("every index below the slice's length is in it")
}

/// k of RFC 9162 §2.1.1: the largest power of two smaller than `size` (> 1).
fn split_point(size: u64) -> u64 {
    1 << (u64::BITS - 1 - (size - 1).leading_zeros())
}

/// The records of one chunk (whole, or cut at the tree's size), with the
/// nodes of its perfect subtrees: `levels[0]` the leaf hashes, `levels[k]`
/// the roots of its aligned runs of 2^k leaves. Computed once per chunk
/// read, so a proof's several subtrees inside it cost no hashing of their
/// own.
struct Chunk {
    chain_hashes: Vec<Hash>,
    levels: Vec<Vec<Hash>>,
}

impl Chunk {
    fn new(chain_hashes: Vec<Hash>) -> Chunk {
        let mut levels = vec![chain_hashes.iter().map(|hash| merkle::leaf_hash(hash)).collect::<Vec<Hash>>()];
        while let Some(below) = levels.last().filter(|below| below.len() > 1) {
            let above = below.chunks_exact(2).map(|pair| merkle::node_hash(&pair[0], &pair[1])).collect();
            levels.push(above);
        }
        Chunk { chain_hashes, levels }
    }

    fn leaf_hashes(&self) -> &[Hash] {
        &self.levels[0]
    }

    /// The root over leaves `[offset, offset + size)` of the chunk, all
    /// present, size ≥ 1: RFC 9162's split down to aligned powers of two,
    /// which the levels hold.
    fn root(&self, offset: u64, size: u64) -> Hash {
        if size.is_power_of_two() && offset.is_multiple_of(size) {
            return self.levels[size.trailing_zeros() as usize][(offset / size) as usize];
        }
        let split = split_point(size);
        merkle::node_hash(&self.root(offset, split), &self.root(offset + split, size - split))
    }
}

/// What went wrong underneath a proof, beyond what `merkle::ProofError`
/// can say.
#[derive(Debug)]
pub enum ViewFailure {
    Storage(StorageError),
    /// A chunk read from the log does not give the stored root or end hash.
    Disagrees {
        chunk: u64,
    },
}

/// The tree of the first `tree_size` leaves: the store's complete chunks
/// below that size, and the log's records for the rest.
pub struct TreeView<'a> {
    store: &'a TreeStore,
    log: &'a dyn LogStore,
    tree_size: u64,
    usable_chunks: u64,
    /// The chunks read so far (a proof needs at most two).
    chunks: RefCell<Vec<(u64, Rc<Chunk>)>>,
    failure: RefCell<Option<ViewFailure>>,
    /// The first chunk that disagreed with the store, kept for the caller.
    disagreed: Cell<Option<u64>>,
}

impl TreeView<'_> {
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// The chain hash (the leaf) at `index`.
    pub fn chain_hash(&self, index: u64) -> Result<Hash, merkle::ProofError> {
        let chunk = self.chunk(index / CHUNK_LEAVES)?;
        Ok(chunk.chain_hashes[(index % CHUNK_LEAVES) as usize])
    }

    /// The chunk whose records disagreed with the stored tree, if one did:
    /// the store is then damaged, and the answer must be asked again of a
    /// rebuilt one.
    pub fn disagreed(&self) -> Option<u64> {
        self.disagreed.get()
    }

    /// Why the last hash could not be given, if reading failed.
    pub fn take_failure(&self) -> Option<ViewFailure> {
        self.failure.borrow_mut().take()
    }

    fn chunk(&self, index: u64) -> Result<Rc<Chunk>, merkle::ProofError> {
        if let Some((_, chunk)) = self.chunks.borrow().iter().find(|(at, _)| *at == index) {
            return Ok(Rc::clone(chunk));
        }
        let chunk = Rc::new(self.read_chunk(index)?);
        self.chunks.borrow_mut().push((index, Rc::clone(&chunk)));
        Ok(chunk)
    }

    fn read_chunk(&self, index: u64) -> Result<Chunk, merkle::ProofError> {
        let first = index * CHUNK_LEAVES;
        let from = first + 1;
        let to = self.tree_size.min(first + CHUNK_LEAVES);
        let mut chain_hashes = Vec::with_capacity((to + 1).saturating_sub(from) as usize);
        let read = self.log.chain_hashes(from, to, &mut |position, hash| {
            if position == from + chain_hashes.len() as u64 {
                chain_hashes.push(*hash);
            }
        });
        let fail = |failure: ViewFailure, detail: String| {
            *self.failure.borrow_mut() = Some(failure);
            merkle::ProofError::Source { index: first, detail }
        };
        if let Err(error) = read {
            return Err(fail(ViewFailure::Storage(error.into()), "reading the log failed".into()));
        }
        if chain_hashes.len() as u64 != to + 1 - from {
            let position = from + chain_hashes.len() as u64;
            let error = LedgerError::Corrupt { position, reason: "the record is missing".into() };
            return Err(fail(ViewFailure::Storage(error.into()), "reading the log failed".into()));
        }
        let chunk = Chunk::new(chain_hashes);
        if index < self.store.n_chunks() && chunk.chain_hashes.len() as u64 == CHUNK_LEAVES {
            let at = index as usize;
            let agrees = self.store.chunk_ends[at] == chunk.chain_hashes[chunk.chain_hashes.len() - 1]
                && self.store.levels[0][at] == chunk.root(0, CHUNK_LEAVES);
            if !agrees {
                self.disagreed.set(self.disagreed.get().or(Some(index)));
                return Err(fail(
                    ViewFailure::Disagrees { chunk: index },
                    "the tree store disagrees with the log".into(),
                ));
            }
        }
        Ok(chunk)
    }
}

impl HashSource for TreeView<'_> {
    fn leaf_hash(&self, index: u64) -> Result<Hash, merkle::ProofError> {
        if index >= self.tree_size {
            return Err(merkle::ProofError::IndexOutOfRange { index, tree_size: self.tree_size });
        }
        let chunk = self.chunk(index / CHUNK_LEAVES)?;
        Ok(chunk.leaf_hashes()[(index % CHUNK_LEAVES) as usize])
    }

    fn subtree_hash(&self, start: u64, size: u64) -> Result<Hash, merkle::ProofError> {
        let end = start + size;
        if end > self.tree_size {
            return Err(merkle::ProofError::IndexOutOfRange { index: end - 1, tree_size: self.tree_size });
        }
        if start.is_multiple_of(CHUNK_LEAVES)
            && size.is_multiple_of(CHUNK_LEAVES)
            && end / CHUNK_LEAVES <= self.usable_chunks
        {
            return Ok(self.store.chunks_root(start / CHUNK_LEAVES, size / CHUNK_LEAVES));
        }
        if size <= 1 {
            return self.leaf_hash(start);
        }
        if start / CHUNK_LEAVES == (end - 1) / CHUNK_LEAVES {
            let chunk = self.chunk(start / CHUNK_LEAVES)?;
            return Ok(chunk.root(start % CHUNK_LEAVES, size));
        }
        let split = split_point(size);
        let left = self.subtree_hash(start, split)?;
        let right = self.subtree_hash(start + split, size - split)?;
        Ok(merkle::node_hash(&left, &right))
    }
}

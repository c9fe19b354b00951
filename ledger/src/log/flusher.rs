//! The index writer: a thread that writes each frozen memtable out as a run
//! once the log is durable up to its position, installs it with a new
//! manifest, and merges runs, all off the sequencer's path. The sequencer
//! keeps consulting a frozen memtable until its run is installed; runs are
//! replaced under the index lock in one step, so a lookup sees every entry
//! exactly once.
//!
//! Merging follows a size-tiered policy: the newest run is merged into the
//! one before it while that one is at most twice its size. Runs then grow
//! geometrically from newest to oldest: their number, and the times an
//! entry is rewritten, are logarithmic in the number of entries.

use super::index::Frozen;
use super::manifest::{self, Manifest};
use super::run::{self, Run};
use super::sled_log::Shared;
use super::Head;
use crate::error::{LedgerError, Result};
use crate::sync::{lock_plain, read_plain, write_plain};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use uuid::Uuid;

/// Memtable entries (keys) past which it is frozen and written out. A
/// writer holds the memtable and a frozen one being written, each with its
/// streams (about 120 MB per million keys): at 2,000,000 they were the
/// largest part of an import's memory (1.11 GB peak for a 2.1M-fact file,
/// 0.81 GB at 1,000,000). More runs cost little: a key's lookup asks each
/// run's bloom filter first, and runs are merged in tiers.
pub(crate) const MEMTABLE_MAX_KEYS: usize = 1_000_000;
/// For tests only: a smaller memtable, so runs are written and merged.
const MEMTABLE_ENV: &str = "YIBAO_INDEX_MEMTABLE_KEYS";
/// How often the index writer looks whether the log is durable yet.
const DURABLE_POLL: Duration = Duration::from_millis(2);

/// Where and for which ledger the index is kept on disk.
pub(crate) struct IndexFiles {
    pub dir: PathBuf,
    pub ledger_id: Uuid,
    pub secret_check: u64,
    pub next_id: AtomicU64,
    /// What the installed manifest covers.
    pub covered: Mutex<Head>,
    pub memtable_max_keys: usize,
}

impl IndexFiles {
    pub fn new(dir: PathBuf, ledger_id: Uuid, secret_check: u64, covered: Head) -> IndexFiles {
        let memtable_max_keys = std::env::var(MEMTABLE_ENV)
            .ok()
            .and_then(|text| text.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(MEMTABLE_MAX_KEYS);
        IndexFiles {
            dir,
            ledger_id,
            secret_check,
            next_id: AtomicU64::new(1),
            covered: Mutex::new(covered),
            memtable_max_keys,
        }
    }

    fn manifest(&self, covered: Head, runs: &[Arc<Run>]) -> Manifest {
        Manifest {
            run_ids: runs.iter().map(|run| run.id).collect(),
            ..Manifest::empty(self.ledger_id, self.secret_check, covered)
        }
    }
}

pub(crate) struct Flusher {
    pub frozen: mpsc::Sender<Arc<Frozen>>,
    /// Set once the committer has stopped: no more of the log will become
    /// durable, so a memtable past the durable head is left for the next open.
    pub writer_stopped: Arc<AtomicBool>,
    pub thread: JoinHandle<()>,
}

pub(crate) fn start(shared: Arc<Shared>) -> Flusher {
    let (frozen_tx, frozen_rx) = mpsc::channel::<Arc<Frozen>>();
    let writer_stopped = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&writer_stopped);
    let thread = std::thread::Builder::new()
        .name("yibao-index".into())
        .spawn(move || {
            let mut failed = false;
            for frozen in frozen_rx {
                if failed {
                    continue;
                }
                if let Err(error) = flush(&shared, &frozen, &stopped) {
                    // The log is whole; the index on disk stays as its last
                    // manifest says, and the next open reads the tail after it.
                    eprintln!(
                        "note: the log's index could not be written ({error}); the next open reads the log after it"
                    );
                    failed = true;
                }
            }
        })
        .expect("spawn the index writer");
    Flusher { frozen: frozen_tx, writer_stopped, thread }
}

/// Writes one frozen memtable as a run once the log is durable up to its
/// position, installs it, then merges.
fn flush(shared: &Shared, frozen: &Arc<Frozen>, writer_stopped: &AtomicBool) -> Result<()> {
    let Some(files) = shared.index_files.as_ref() else { return Ok(()) };
    // Only durable positions go into a run: the index is never ahead of the log.
    while shared.durable_head().position < frozen.position {
        if writer_stopped.load(Ordering::Acquire) || shared.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        std::thread::sleep(DURABLE_POLL);
    }
    let keys = frozen.keys.entries();
    let streams = frozen.streams.entries();
    let id = files.next_id.fetch_add(1, Ordering::Relaxed);
    let (n_keys, n_streams) = (keys.len() as u64, streams.len() as u64);
    let new_run =
        Arc::new(run::write(&files.dir, id, keys.into_iter().map(Ok), n_keys, streams.into_iter().map(Ok), n_streams)?);
    manifest::sync_dir(&files.dir)?;
    let hash = shared.record_hash(frozen.position)?.ok_or_else(|| LedgerError::Corrupt {
        position: frozen.position,
        reason: "a durable record is missing while its index is written".into(),
    })?;
    let covered = Head { position: frozen.position, hash };
    let mut runs = read_plain(&shared.index).runs.clone();
    runs.insert(0, Arc::clone(&new_run));
    manifest::write(&files.dir, &files.manifest(covered, &runs))?;
    *lock_plain(&files.covered) = covered;
    {
        let mut index = write_plain(&shared.index);
        index.runs = runs;
        index.frozen.retain(|held| !Arc::ptr_eq(held, frozen));
    }
    merge_while_due(shared, files)
}

fn merge_while_due(shared: &Shared, files: &IndexFiles) -> Result<()> {
    loop {
        let runs = read_plain(&shared.index).runs.clone();
        if runs.len() < 2 || runs[1].n_entries() > 2 * runs[0].n_entries() {
            return Ok(());
        }
        let id = files.next_id.fetch_add(1, Ordering::Relaxed);
        let merged = Arc::new(run::merge(&files.dir, id, &[&runs[0], &runs[1]])?);
        manifest::sync_dir(&files.dir)?;
        let mut installed = vec![merged];
        installed.extend(runs[2..].iter().cloned());
        let covered = *lock_plain(&files.covered);
        manifest::write(&files.dir, &files.manifest(covered, &installed))?;
        write_plain(&shared.index).runs = installed;
        // A reader holding the old runs keeps its open files: unlinking
        // them takes nothing from it.
        for old in &runs[..2] {
            std::fs::remove_file(old.path())?;
        }
    }
}

//! The log behind the service, and what happens when storage fails.
//!
//! After a failed write the log refuses writes until it is reopened
//! (invariant 6), and sled keeps the error of a failed flush for good. So
//! the service remembers why it refuses writes and answers posts at once
//! (507 when the disk is full, else 503), `/v1/health` says so (503), and
//! lookups answer from the in-memory projections and the failed log, which
//! still reads. A watcher probes the data directory every `PROBE_INTERVAL`
//! by writing and syncing `PROBE_BYTES`; once that works it reopens the
//! log (when no reader holds the failed one) and writes resume, without a
//! restart. A write answered 507/503 may still have reached the disk before
//! the failure: a retry with the same idempotency key returns its position.

use super::error::ApiError;
use anyhow::{Context, Result};
use axum::http::StatusCode;
use ledger::sync::{lock_plain, read_plain, write_plain};
use ledger::{Head, LedgerError, LogStore, OpenMode};
use operations::error::chain;
use operations::Location;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often a store that refuses writes looks for space again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// What the probe writes: two of sled's 2 MiB segments, room for the next
/// writes and for sled's recovery on reopen.
const PROBE_BYTES: usize = 4 * 1024 * 1024;
/// The probe file, beside the log.
const PROBE_FILE: &str = ".space-probe";

/// Why writes are refused.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The failure, with its causes (`sled failed: IO error: No space ...`).
    pub reason: String,
    /// The disk (or quota) is full: 507 rather than 503.
    pub no_space: bool,
}

impl Refusal {
    /// The answer to a write while writes are refused.
    pub fn to_error(&self) -> ApiError {
        let (status, code) = if self.no_space {
            (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "store_refuses_writes")
        };
        // sled does not always carry the OS error's text along: say what
        // was found, whatever its message kept.
        let what = if self.no_space { "no space left on the ledger's disk" } else { "a storage failure" };
        let message = format!(
            "the store refuses writes after {what} ({}); nothing more is appended until it recovers; \
             retry later with the same idempotency key",
            self.reason
        );
        ApiError::new(status, code, message)
    }
}

/// The log in use, swapped for a fresh one after a storage failure.
pub struct Store {
    location: Location,
    /// `None` only while a reopen failed; readers then get 503.
    log: RwLock<Option<Arc<dyn LogStore>>>,
    refusal: Mutex<Option<Refusal>>,
    /// Appends that failed on storage.
    pub n_write_failures: AtomicU64,
    /// Writes answered at once because the store refused writes.
    pub n_writes_refused: AtomicU64,
    /// Times the log was reopened after a failure.
    pub n_reopens: AtomicU64,
}

impl Store {
    pub fn new(location: &Location, log: Box<dyn LogStore>) -> Store {
        Store {
            location: location.clone(),
            log: RwLock::new(Some(Arc::from(log))),
            refusal: Mutex::new(None),
            n_write_failures: AtomicU64::new(0),
            n_writes_refused: AtomicU64::new(0),
            n_reopens: AtomicU64::new(0),
        }
    }

    /// The data directory (the tree store, keys, the access log).
    pub fn data(&self) -> &std::path::Path {
        &self.location.data
    }

    /// The log, for a read or a write. Hold it only as long as the work.
    pub fn log(&self) -> Result<Arc<dyn LogStore>, ApiError> {
        let current = read_plain(&self.log);
        current.clone().ok_or_else(|| {
            ApiError::overloaded("store_unavailable", "the log is being reopened after a storage failure; retry later")
        })
    }

    /// The durable head, when a log is open.
    pub fn head(&self) -> Option<Head> {
        read_plain(&self.log).as_ref().map(|log| log.durable_head())
    }

    pub fn refusal(&self) -> Option<Refusal> {
        lock_plain(&self.refusal).clone()
    }

    /// Before a write: refused at once while the store refuses writes.
    pub fn check_writable(&self) -> Result<(), ApiError> {
        match self.refusal() {
            None => Ok(()),
            Some(refusal) => {
                self.n_writes_refused.fetch_add(1, Ordering::Relaxed);
                Err(refusal.to_error())
            }
        }
    }

    /// After a failed append (a failure, not a rejection): writes are
    /// refused until the watcher recovers. The first failure's reason is
    /// kept; the requests behind it only learn that the log is poisoned.
    pub fn failed(&self, error: &LedgerError) -> ApiError {
        self.n_write_failures.fetch_add(1, Ordering::Relaxed);
        let mut refusal = lock_plain(&self.refusal);
        let refusal = refusal.get_or_insert_with(|| {
            let reason = chain(error);
            eprintln!("error: a write failed, writes are refused until storage recovers: {reason}");
            Refusal { reason, no_space: is_no_space(error) }
        });
        refusal.to_error()
    }

    /// One round of the watcher (blocking): when writes are refused and the
    /// probe finds space, reopen the log and accept writes again. `false`:
    /// still refusing.
    pub fn recover(&self) -> bool {
        if self.refusal().is_none() {
            return true;
        }
        if probe(&self.location.data).is_err() {
            return false;
        }
        match self.reopen() {
            Ok(true) => {
                self.n_reopens.fetch_add(1, Ordering::Relaxed);
                *lock_plain(&self.refusal) = None;
                eprintln!("storage recovered: the log was reopened and accepts writes again");
                true
            }
            Ok(false) => false,
            Err(error) => {
                eprintln!("error: reopening the log after a storage failure: {error:#}");
                false
            }
        }
    }

    /// Drops the failed log and opens it afresh (its recovery removes what
    /// a cut write left). `false`: a reader still holds the failed log
    /// (an audit job, a lookup); the next round tries again.
    fn reopen(&self) -> Result<bool> {
        let failed = {
            let mut current = write_plain(&self.log);
            if current.as_ref().is_some_and(|log| Arc::strong_count(log) > 1) {
                return Ok(false);
            }
            current.take()
        };
        // sled's file lock goes with the last handle: close before opening.
        drop(failed);
        let log = self.location.open_log(OpenMode::Existing).context("opening the log")?;
        *write_plain(&self.log) = Some(Arc::from(log));
        Ok(true)
    }
}

/// Writes and syncs `PROBE_BYTES` beside the log, then removes them.
fn probe(data: &Path) -> std::io::Result<()> {
    let path = data.join(PROBE_FILE);
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

fn is_no_space(error: &LedgerError) -> bool {
    let kind = match error {
        LedgerError::Io(io) => io.kind(),
        LedgerError::Sled(sled) => std::io::Error::from(sled.clone()).kind(),
        _ => return false,
    };
    matches!(kind, std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

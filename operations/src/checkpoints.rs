//! The projections' checkpoint files beside the log: loaded (or rebuilt
//! from position 1 when unusable, with a note), caught up with the log and
//! saved again when they moved. The CLI and the service both come here.
//! (The family projection has no checkpoint: the person store keeps it.)

use crate::error::StorageError;
use crate::progress;
use ledger::LogReader;
use projections::checkpoint::CheckpointError;
use projections::coverage::Coverage;
use projections::Projection;
use std::path::{Path, PathBuf};

/// A projection kept in a checkpoint file under `DATA/projections/`.
pub trait Checkpointed: Projection + Sized {
    /// Named in notes and errors: "the coverage checkpoint".
    const NAME: &'static str;
    const FILE_NAME: &'static str;
    fn empty() -> Self;
    fn load(path: &Path) -> Result<Self, CheckpointError>;
    fn save(&self, path: &Path) -> Result<(), CheckpointError>;
    /// Folds the log's records after `position()`, up to `upto`.
    fn catch_up_to(&mut self, log: &dyn LogReader, upto: u64) -> Result<u64, CheckpointError>;
}

impl Checkpointed for Coverage {
    const NAME: &'static str = "coverage";
    const FILE_NAME: &'static str = "coverage.ckpt";
    fn empty() -> Self {
        Coverage::new()
    }
    fn load(path: &Path) -> Result<Self, CheckpointError> {
        Coverage::load(path)
    }
    fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        Coverage::save(self, path)
    }
    fn catch_up_to(&mut self, log: &dyn LogReader, upto: u64) -> Result<u64, CheckpointError> {
        Coverage::catch_up_to(self, log, upto)
    }
}

/// Where projection `P` keeps its checkpoint.
pub fn path<P: Checkpointed>(data: &Path) -> PathBuf {
    data.join("projections").join(P::FILE_NAME)
}

/// Projection `P` at position `upto` (capped at the log's durable head):
/// from its checkpoint when there is a usable one, else rebuilt from
/// position 1. A projection that moved is saved again.
pub fn caught_up<P: Checkpointed>(data: &Path, log: &dyn LogReader, upto: u64) -> Result<P, StorageError> {
    caught_up_with(data, log, upto, |_| {})
}

/// `caught_up`, calling `loaded` on the projection as loaded from its
/// checkpoint, before anything is folded into it (a projection rebuilt
/// from position 1 instead is not passed to it).
pub fn caught_up_with<P: Checkpointed>(
    data: &Path,
    log: &dyn LogReader,
    upto: u64,
    loaded: impl FnOnce(&mut P),
) -> Result<P, StorageError> {
    let failed = |source| StorageError::Checkpoint { name: P::NAME, source };
    let path = path::<P>(data);
    let mut projection = match P::load(&path) {
        Ok(projection) => projection,
        Err(error) if error.needs_rebuild() => {
            // A missing checkpoint is the first run, not worth a note.
            if path.exists() {
                eprintln!("note: {error:#}; rebuilding from the log");
            }
            P::empty()
        }
        Err(error) => return Err(failed(error)),
    };
    // Saved past the position asked for: a fold cannot go back.
    if projection.position() > upto {
        projection = P::empty();
    }
    loaded(&mut projection);
    let before = projection.position();
    if let Err(error) = fold(&mut projection, log, upto) {
        if !error.needs_rebuild() {
            return Err(failed(error));
        }
        eprintln!("note: {error:#}; rebuilding from the log");
        projection = P::empty();
        fold(&mut projection, log, upto).map_err(failed)?;
    }
    if projection.position() != before {
        save(data, &projection)?;
    }
    Ok(projection)
}

/// Writes `projection`'s checkpoint, making `DATA/projections/` first.
pub fn save<P: Checkpointed>(data: &Path, projection: &P) -> Result<(), StorageError> {
    let path = path::<P>(data);
    let directory = path.parent().unwrap_or(data);
    std::fs::create_dir_all(directory)
        .map_err(|source| StorageError::Io { what: format!("creating {}", directory.display()), source })?;
    projection.save(&path).map_err(|source| StorageError::Checkpoint { name: P::NAME, source })
}

fn fold<P: Checkpointed>(projection: &mut P, log: &dyn LogReader, upto: u64) -> Result<(), CheckpointError> {
    let target = upto.min(log.durable_head().position);
    let bar = progress::bar(target.saturating_sub(projection.position()), P::NAME);
    let caught = projection.catch_up_to(log, upto);
    bar.finish_and_clear();
    caught.map(|_| ())
}

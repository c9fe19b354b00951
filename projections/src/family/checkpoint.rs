//! Checkpoints of the family projection and catching up from the log, in
//! the file format of every projection (`crate::checkpoint`).

use super::{Application, Binding, Family};
use crate::checkpoint::{self, CheckpointError, Format};
use crate::Tip;
use ledger::{Hash, LogReader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The checkpoint format this build writes and reads. Bump it whenever the
/// state's shape changes: older files are then refused and rebuilt.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;
const FORMAT: Format = Format { kind: "family", magic: b"yibao-family\n\0\0\0", version: CHECKPOINT_FORMAT_VERSION };

/// The whole state, as written. The maps' keys are in their values.
#[derive(Serialize)]
struct BodyRef<'a> {
    position: u64,
    head_hash: Hash,
    bindings: Vec<&'a Binding>,
    applications: Vec<&'a Application>,
    notes: &'a [String],
    n_notes_dropped: u64,
}

/// The whole state, as read (the same shape as [`BodyRef`]).
#[derive(Deserialize)]
struct Body {
    position: u64,
    head_hash: Hash,
    bindings: Vec<Binding>,
    applications: Vec<Application>,
    notes: Vec<String>,
    n_notes_dropped: u64,
}

impl Family {
    /// Writes the whole state to `path` (temp file, fsync, rename, fsync of
    /// the directory).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let body = BodyRef {
            position: self.tip.position,
            head_hash: self.tip.hash,
            bindings: self.bindings.values().collect(),
            applications: self.applications.values().collect(),
            notes: &self.notes,
            n_notes_dropped: self.n_notes_dropped,
        };
        FORMAT.save(path, &body)
    }

    /// Reads a checkpoint written by [`Family::save`]; then
    /// [`Family::catch_up`] folds what the log gained since.
    pub fn load(path: &Path) -> Result<Family, CheckpointError> {
        FORMAT.load(path, Family::from_body)
    }

    /// Folds the log's records after the position this state reflects,
    /// after checking that the record there is the one it folded last.
    /// Returns the number of records folded.
    pub fn catch_up(&mut self, log: &dyn LogReader) -> Result<u64, CheckpointError> {
        self.catch_up_to(log, u64::MAX)
    }

    /// As [`Family::catch_up`], stopping at `upto`: the position another
    /// projection read with this one reflects. A state already past it is
    /// left as it is.
    pub fn catch_up_to(&mut self, log: &dyn LogReader, upto: u64) -> Result<u64, CheckpointError> {
        let head_hash = self.tip.hash;
        checkpoint::catch_up(self, head_hash, log, upto)
    }

    fn from_body(body: Body) -> Result<Family, String> {
        let n_bindings = body.bindings.len();
        let bindings: BTreeMap<_, _> =
            body.bindings.into_iter().map(|b| ((b.holder.clone(), b.member.clone()), b)).collect();
        if bindings.len() != n_bindings {
            return Err("a binding is stored twice".into());
        }
        let n_applications = body.applications.len();
        let applications: BTreeMap<_, _> =
            body.applications.into_iter().map(|a| (a.application_id.clone(), a)).collect();
        if applications.len() != n_applications {
            return Err("an application is stored twice".into());
        }
        Ok(Family {
            tip: Tip { position: body.position, hash: body.head_hash },
            bindings,
            applications,
            notes: body.notes,
            n_notes_dropped: body.n_notes_dropped,
        })
    }
}

//! Catching up a projection that others read while it is caught up: the
//! records are read and decoded first, holding no lock on the projection,
//! and then folded, which is all a writer must hold it for.

use super::{Coverage, CoverageError};
use crate::{Projection, Tip};
use ledger::{Envelope, LogReader};

/// Records after a [`Tip`], read and checked, waiting to be folded.
#[derive(Debug)]
pub struct Pending {
    after: u64,
    envelopes: Vec<Envelope>,
}

impl Pending {
    /// Reads the durable records after `tip`, after checking that the
    /// record at its position is the one it names (as
    /// [`Coverage::catch_up`] does).
    pub fn read(log: &dyn LogReader, tip: Tip) -> Result<Pending, CoverageError> {
        let head = log.durable_head();
        if tip.position > head.position {
            return Err(CoverageError::Diverged {
                position: tip.position,
                reason: format!("the log ends at position {}", head.position),
            });
        }
        if head.position == 0 {
            return Ok(Pending { after: 0, envelopes: Vec::new() });
        }
        let mut envelopes = Vec::new();
        let mut found = None;
        log.scan(tip.position.max(1), head.position, |envelope| {
            if envelope.head.position == tip.position {
                found = Some(envelope.hash);
            } else {
                envelopes.push(envelope);
            }
            Ok(())
        })?;
        if tip.position > 0 && found != Some(tip.hash) {
            return Err(CoverageError::Diverged {
                position: tip.position,
                reason: "the log's record there has another hash".into(),
            });
        }
        Ok(Pending { after: tip.position, envelopes })
    }

    /// The position of the last record read (the tip's when none).
    pub fn last_position(&self) -> u64 {
        self.envelopes.last().map_or(self.after, |envelope| envelope.head.position)
    }
}

impl Coverage {
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// Folds records read after a tip this state has reached (the ones it
    /// folded since are skipped). Returns the number folded.
    pub fn fold_pending(&mut self, pending: &Pending) -> Result<u64, CoverageError> {
        if self.tip.position < pending.after {
            return Err(CoverageError::Diverged {
                position: self.tip.position,
                reason: format!("records were read after position {}, beyond this state", pending.after),
            });
        }
        let mut n_folded = 0;
        for envelope in &pending.envelopes {
            if self.tip.admits(envelope) {
                self.apply(envelope);
                n_folded += 1;
            }
        }
        Ok(n_folded)
    }
}

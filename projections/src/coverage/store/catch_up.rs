//! Bringing the store to a log position in chunks: memory is bounded by the
//! chunk (its envelopes and the persons they name), not by the ledger.

use super::family::FamilyRows;
use super::load::Named;
use super::{PersonStore, StoreError};
use crate::family::Keys;
use crate::{Projection, Tip};
use ledger::{Envelope, Event, Identity, LogReader};

/// What a chunk of a catch-up changed, for a reader that keeps persons
/// read from the store (the service's cache): those persons, under every
/// identity they had, or everyone (a policy changed, or the store was
/// emptied and folded again).
#[derive(Debug, Default)]
pub struct Changed {
    pub identities: Vec<Identity>,
    pub everyone: bool,
}

/// Envelopes folded and written per transaction: large enough that the
/// per-transaction cost (the policies and notes, a WAL checkpoint) is
/// spread thin, small enough that a chunk's envelopes and persons stay
/// under about 100 MB (measured at 1M persons, 2.1M facts, from position 1:
/// 25k → 26 s, 100k → 23 s, 250k → 21 s; each 100k adds about 80 MB).
pub const DEFAULT_CHUNK_ENVELOPES: u64 = 100_000;

impl PersonStore {
    /// Folds the log from the store's tip to `upto` (clamped to the log's
    /// head) in chunks of [`DEFAULT_CHUNK_ENVELOPES`]; `progress` is told
    /// the position reached after each chunk. A store whose tip is not on
    /// this log (another ledger's, restored, damaged) or of another layout
    /// is emptied and caught up from position 1. A store already past
    /// `upto` is left as it is. Returns the number of envelopes folded.
    pub fn catch_up(
        &mut self,
        log: &dyn LogReader,
        upto: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, StoreError> {
        self.catch_up_in_chunks(log, upto, DEFAULT_CHUNK_ENVELOPES, progress)
    }

    /// [`PersonStore::catch_up`] with chunks of `chunk_envelopes` (at
    /// least one).
    pub fn catch_up_in_chunks(
        &mut self,
        log: &dyn LogReader,
        upto: u64,
        chunk_envelopes: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, StoreError> {
        self.catch_up_observing(log, upto, chunk_envelopes, progress, &mut |_| {}, &mut |_| {})
    }

    /// [`PersonStore::catch_up_in_chunks`], telling `changed` what each
    /// chunk changed once it is written (the service's cache), and showing
    /// `observe` every record of each written chunk, in position order:
    /// another projection can be folded in the same scan (the family
    /// projection).
    /// A store emptied because it was not on this log starts again from
    /// position 1, so the records shown need not follow the store's tip
    /// as it was before the call.
    pub fn catch_up_observing(
        &mut self,
        log: &dyn LogReader,
        upto: u64,
        chunk_envelopes: u64,
        progress: &mut dyn FnMut(u64),
        changed: &mut dyn FnMut(Changed),
        observe: &mut dyn FnMut(&Envelope),
    ) -> Result<u64, StoreError> {
        let head = log.durable_head();
        let upto = upto.min(head.position);
        let mut tip = self.tip_on_or_reset(log, changed)?;
        let mut n_folded = 0;
        while tip.position < upto {
            let last = upto.min(tip.position.saturating_add(chunk_envelopes.max(1)));
            let before = tip.position;
            match self.fold_chunk(log, tip, last, changed, observe)? {
                Some(reached) => tip = reached,
                // Another process moved the store on (or emptied it): from
                // where it is now; whom it changed is unknown.
                None => {
                    changed(Changed { identities: Vec::new(), everyone: true });
                    tip = self.tip_on_or_reset(log, changed)?;
                    continue;
                }
            }
            // A log that holds less than its head says: stop, not spin.
            if tip.position == before {
                break;
            }
            n_folded += tip.position - before;
            progress(tip.position);
        }
        Ok(n_folded)
    }

    /// The store's tip on this log. A store not on it (empty, of another
    /// layout, another ledger's) is emptied and written at position 0 in
    /// one transaction, unless another process moved it meanwhile (it
    /// caught the store up, or reset it first): then it is judged again.
    fn tip_on_or_reset(&mut self, log: &dyn LogReader, changed: &mut dyn FnMut(Changed)) -> Result<Tip, StoreError> {
        // Each attempt lost is another process's reset or chunk, after
        // which the store is on this log: a few attempts are plenty.
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            let stored = self.stored()?;
            if let Some(tip) = self.tip_on(log, &stored)? {
                return Ok(tip);
            }
            if self.reset_from(&stored)? {
                changed(Changed { identities: Vec::new(), everyone: true });
                return Ok(Tip::default());
            }
        }
        Err(self.damaged("moved off this log by other processes while it was reset"))
    }

    /// The tip `stored` holds when the log holds it (the same hash at
    /// that position); `None` when the store is empty, of another layout,
    /// or not on this log.
    fn tip_on(&self, log: &dyn LogReader, stored: &super::Stored) -> Result<Option<Tip>, StoreError> {
        let Some(tip) = self.tip_of(stored)? else { return Ok(None) };
        if tip.position == 0 {
            return Ok(Some(tip));
        }
        let head = log.durable_head();
        if tip.position > head.position {
            return Ok(None);
        }
        // At the head (a lookup after no new fact): the head's hash says
        // it, without a read of the log.
        if tip.position == head.position {
            return Ok((tip.hash == head.hash).then_some(tip));
        }
        let mut found = None;
        log.scan(tip.position, tip.position, |envelope| {
            found = Some(envelope.hash);
            Ok(())
        })
        .map_err(|source| StoreError::Log { location: self.location(), source })?;
        Ok((found == Some(tip.hash)).then_some(tip))
    }

    /// Folds the envelopes after `tip` up to `last` into the persons and
    /// the family records they name and writes those back with the new
    /// tip, in one transaction;
    /// `None` when another process moved the store from `tip` meanwhile.
    fn fold_chunk(
        &mut self,
        log: &dyn LogReader,
        tip: Tip,
        last: u64,
        changed: &mut dyn FnMut(Changed),
        observe: &mut dyn FnMut(&Envelope),
    ) -> Result<Option<Tip>, StoreError> {
        let mut envelopes: Vec<Envelope> = Vec::new();
        log.scan(tip.position + 1, last, |envelope| {
            envelopes.push(envelope);
            Ok(())
        })
        .map_err(|source| StoreError::Log { location: self.location(), source })?;
        // In one snapshot: what another process writes meanwhile is not
        // read half way (the write below then finds the tip moved).
        let (mut coverage, before) = self.backend.snapshot(|| {
            Ok::<_, StoreError>((
                self.load_named(&Named::of(&envelopes), tip)?,
                self.load_family(&Keys::of(&envelopes), tip)?,
            ))
        })??;
        let mut family = before.clone();
        for envelope in &envelopes {
            coverage.apply(envelope);
            family.apply(envelope);
        }
        let written = self.write_chunk(&coverage, &FamilyRows::changed(&family, &before), tip)?;
        if written {
            changed(Changed {
                identities: touched_identities(&coverage),
                everyone: envelopes
                    .iter()
                    .any(|e| matches!(e.event, Event::PolicyPublishedV1(_) | Event::PolicyAmendedV1(_))),
            });
        }
        if written {
            envelopes.iter().for_each(observe);
        }
        Ok(written.then_some(coverage.tip))
    }
}

/// Every identity of every person the chunk's fold changed.
fn touched_identities(coverage: &crate::coverage::Coverage) -> Vec<Identity> {
    let touched = coverage.touched.iter().flatten();
    let persons = touched.filter_map(|&id| coverage.persons.get(id as usize));
    persons.flat_map(|person| std::iter::once(&person.current).chain(&person.former)).cloned().collect()
}

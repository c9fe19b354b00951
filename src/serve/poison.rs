//! The live projections after a panic mid-fold.
//!
//! A fold changes a projection in many steps and moves its tip last: a
//! panic in between poisons the lock and leaves an envelope half applied
//! with the tip not moved, so the next catch-up would apply it again. Such
//! a state is never read: the next access replaces it with a rebuild (the
//! checkpoint on disk caught up with the log, as at startup) and clears the
//! poison. If the rebuild fails, the access fails (a 500 `internal`) and
//! the lock stays poisoned, so the next access tries again.

use anyhow::{Context, Result};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Rebuilds attempted by one access before it gives up: more than one only
/// if another panic poisons the lock between the rebuild and the read.
const MAX_REBUILDS_PER_ACCESS: u32 = 3;

/// A read guard on a projection that no panic left half folded.
pub(super) fn read<'a, T>(
    lock: &'a RwLock<T>,
    name: &str,
    mut rebuild: impl FnMut() -> Result<T>,
) -> Result<RwLockReadGuard<'a, T>> {
    for _ in 0..MAX_REBUILDS_PER_ACCESS {
        // The poisoned read guard is dropped before the rebuild writes.
        if let Ok(guard) = lock.read() {
            return Ok(guard);
        }
        replace_poisoned(lock, name, &mut rebuild)?;
    }
    anyhow::bail!("the {name} projection is poisoned again after each rebuild")
}

/// A write guard on a projection that no panic left half folded.
pub(super) fn write<'a, T>(
    lock: &'a RwLock<T>,
    name: &str,
    mut rebuild: impl FnMut() -> Result<T>,
) -> Result<RwLockWriteGuard<'a, T>> {
    match lock.write() {
        Ok(guard) => Ok(guard),
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            *guard = rebuilt(name, &mut rebuild)?;
            lock.clear_poison();
            Ok(guard)
        }
    }
}

/// Under the write lock, the poisoned state is thrown away for a rebuild
/// (unless another access has rebuilt it meanwhile).
fn replace_poisoned<T>(lock: &RwLock<T>, name: &str, rebuild: &mut impl FnMut() -> Result<T>) -> Result<()> {
    drop(write(lock, name, rebuild)?);
    Ok(())
}

fn rebuilt<T>(name: &str, rebuild: &mut impl FnMut() -> Result<T>) -> Result<T> {
    eprintln!("error: a panic left the {name} projection half folded; rebuilding it from its checkpoint and the log");
    let state = rebuild().with_context(|| format!("rebuilding the {name} projection after a panic mid-fold"))?;
    eprintln!("note: the {name} projection is rebuilt");
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Event, NewEvent, OpenMode, SledLog};
    use projections::coverage::{Coverage, Pending};
    use projections::Projection;
    use std::path::Path;

    /// The payment of a generated fact set, again under a new reference.
    fn another_payment(data: &[Event]) -> Event {
        let mut payment = data
            .iter()
            .find_map(|event| match event {
                Event::PaymentReceivedV1(payment) => Some(payment.clone()),
                _ => None,
            })
            .expect("the generated facts hold a payment");
        payment.channel_ref = format!("{}-again", payment.channel_ref);
        Event::PaymentReceivedV1(payment)
    }

    fn digest(coverage: &Coverage) -> String {
        hex::encode(coverage.digest())
    }

    /// As the service catches up: the records after the tip, folded under
    /// the write lock.
    fn catch_up(lock: &RwLock<Coverage>, data: &Path, log: &SledLog) -> Result<()> {
        let mut coverage = write(lock, "coverage", || crate::lookup::coverage(data, log))?;
        let pending = Pending::read(log, coverage.tip())?;
        coverage.fold_pending(&pending)?;
        Ok(())
    }

    #[test]
    fn a_fold_cut_by_a_panic_is_rebuilt_not_folded_again() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = SledLog::open(dir.path(), OpenMode::Create).expect("a new ledger");
        let facts: Vec<Event> = yibao::generate::facts(3, 40).collect();
        let payment = another_payment(&facts);
        log.append_blocking(facts.into_iter().map(|event| NewEvent::fact(event, "test")).collect()).expect("appended");
        // The checkpoint on disk, then one more payment the live state folds.
        let live = RwLock::new(crate::lookup::coverage(dir.path(), &log).expect("a checkpoint"));
        let outcome = log.append_blocking(vec![NewEvent::fact(payment, "test")]).expect("appended");
        let position = outcome.positions[0];

        let cut = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    projections::failpoints::panic_after_folding(position);
                    catch_up(&live, dir.path(), &log)
                })
                .join()
        });
        assert!(cut.is_err(), "the fold was to panic after folding position {position}");
        assert!(live.is_poisoned());

        catch_up(&live, dir.path(), &log).expect("caught up");
        let mut fresh = Coverage::new();
        fresh.catch_up(&log).expect("a rebuild");
        let answer = read(&live, "coverage", || crate::lookup::coverage(dir.path(), &log)).expect("readable");
        assert_eq!(answer.position(), position);
        assert_eq!(digest(&answer), digest(&fresh), "the payment at {position} was folded twice");
        assert!(!live.is_poisoned());
    }

    #[test]
    fn a_failed_rebuild_fails_the_access_and_the_next_one_tries_again() {
        let lock = RwLock::new(1u64);
        let _ = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = lock.write().expect("not poisoned yet");
                    panic!("mid-fold");
                })
                .join()
        });
        let error = read(&lock, "test", || anyhow::bail!("the log is being reopened")).expect_err("a failed rebuild");
        assert!(format!("{error:#}").contains("rebuilding the test projection after a panic mid-fold"), "{error:#}");
        assert!(lock.is_poisoned());
        assert_eq!(*read(&lock, "test", || Ok(7)).expect("rebuilt"), 7);
        assert!(!lock.is_poisoned());
    }
}

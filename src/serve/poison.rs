//! The service's state after a panic mid-fold.
//!
//! A fold changes a projection in many steps and moves its tip last: a
//! panic in between poisons the lock and may leave an envelope half
//! applied with the tip not moved. Such a state is never read: the next
//! access replaces it with a rebuild and clears the poison — the family
//! projection from its checkpoint caught up with the log; for the person
//! store (`persons.rs`, which folds into a scratch coverage and writes in
//! one transaction, so the store itself is never half folded) the cache is
//! dropped and the tip read again. If the rebuild fails, the access fails
//! (a 500 `internal`) and the lock stays poisoned, so the next access
//! tries again.

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
    anyhow::bail!("the {name} is poisoned again after each rebuild")
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
    eprintln!("error: a panic left the {name} half folded; rebuilding it");
    let state = rebuild().with_context(|| format!("rebuilding the {name} after a panic mid-fold"))?;
    eprintln!("note: the {name} is rebuilt");
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::persons::Persons;
    use ledger::{Event, Identity, NewEvent, OpenMode, SledLog};
    use operations::coverage::{self, CoverageQuery};
    use projections::coverage::Coverage;
    use projections::Projection;

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

    fn payer(payment: &Event) -> Identity {
        match payment {
            Event::PaymentReceivedV1(payment) => payment.person.clone(),
            _ => unreachable!("a payment"),
        }
    }

    /// The coverage answer of `person`, as JSON.
    fn answer(coverage: &Coverage, person: &Identity) -> serde_json::Value {
        let query = CoverageQuery { person: person.clone(), year: None, on: None };
        serde_json::to_value(coverage::answer(coverage, &query).expect("an answer")).expect("JSON")
    }

    #[test]
    fn a_catch_up_cut_by_a_panic_drops_the_cache_and_folds_the_record_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = SledLog::open(dir.path(), OpenMode::Create).expect("a new ledger");
        let facts: Vec<Event> = yibao::generate::facts(3, 40).collect();
        let payment = another_payment(&facts);
        let person = payer(&payment);
        log.append_blocking(facts.into_iter().map(|event| NewEvent::fact(event, "test")).collect()).expect("appended");
        let place = operations::PersonStorePlace::of(&operations::Location::sled(dir.path()));
        let persons = Persons::open(&place, &log, 1 << 20).expect("the store caught up");
        // Cached as it was before the payment.
        let before = persons.read().expect("readable").person(&person).expect("read");
        assert_eq!(persons.cache_figures().n_persons, 1);
        let outcome = log.append_blocking(vec![NewEvent::fact(payment, "test")]).expect("appended");
        let position = outcome.positions[0];

        let cut = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    projections::failpoints::panic_after_folding(position);
                    persons.catch_up(&log, position)
                })
                .join()
        });
        assert!(cut.is_err(), "the fold was to panic after folding position {position}");
        assert_eq!(persons.tip().expect("the tip read again").position, position - 1);
        assert_eq!(persons.cache_figures().n_persons, 0, "the cache outlived a panic mid-catch-up");

        persons.catch_up(&log, position).expect("caught up");
        let mut fresh = Coverage::new();
        fresh.catch_up(&log).expect("a rebuild");
        let after = persons.read().expect("readable").person(&person).expect("read");
        assert_eq!(after.position(), position);
        assert_ne!(answer(&after, &person), answer(&before.at_tip(after.tip()), &person), "the payment is missing");
        assert_eq!(answer(&after, &person), answer(&fresh, &person), "the payment at {position} was folded twice");
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
        assert!(format!("{error:#}").contains("rebuilding the test after a panic mid-fold"), "{error:#}");
        assert!(lock.is_poisoned());
        assert_eq!(*read(&lock, "test", || Ok(7)).expect("rebuilt"), 7);
        assert!(!lock.is_poisoned());
    }
}

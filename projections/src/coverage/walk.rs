//! Walks over every person on all cores: the auditor's report and the
//! state digest visit a million persons or more, each independently.
//!
//! The persons are cut into partitions of a fixed size, whatever the number
//! of threads; threads take partitions in turn and the results come back in
//! partition order. So anything folded per partition and combined in that
//! order (a report's sums, a digest over partition digests) is the same on
//! one core or on many.

use super::policies;
use super::state::{PersonId, PersonState};
use super::view::{self, PersonYear};
use super::{Coverage, MoneyOutOfRange};
use ledger::RegionCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Persons per partition: large enough that taking one costs nothing
/// beside its work, small enough that the cores finish together.
pub const PERSONS_PER_PARTITION: usize = 4_096;

thread_local! {
    /// Threads for walks started on this thread (0: one per core).
    static THREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `work` with walks over persons started from this thread on at
/// most `n_threads` threads (at least one): an operator limiting the
/// cores, or a test showing that the answers do not depend on them.
pub fn with_threads<R>(n_threads: usize, work: impl FnOnce() -> R) -> R {
    /// Puts the setting back, even when `work` panics.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREADS.with(|threads| threads.set(self.0));
        }
    }
    let _restore = Restore(THREADS.with(|threads| threads.replace(n_threads.max(1))));
    work()
}

fn n_threads() -> usize {
    match THREADS.with(std::cell::Cell::get) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

impl Coverage {
    /// Folds every person-year of `coverage_year` for persons registered in
    /// `region` (all when `None`), as known on `as_of`, into one accumulator
    /// per partition of persons (`start` makes one, `visit` adds a
    /// person-year with the person's registered region), on all cores.
    /// The accumulators come back in partition order: combining them in
    /// that order gives the same result on any number of threads. A
    /// person-year with a figure that is no amount of money is the error
    /// (the first in the persons' order), as for [`Coverage::person_years`].
    pub fn fold_person_years<A, Start, Visit>(
        &self,
        region: Option<RegionCode>,
        coverage_year: u16,
        as_of: Option<ledger::Date>,
        start: Start,
        visit: Visit,
    ) -> Result<Vec<A>, MoneyOutOfRange>
    where
        A: Send,
        Start: Fn() -> A + Sync,
        Visit: Fn(&mut A, RegionCode, &PersonYear) + Sync,
    {
        let n_partitions = self.persons.len().div_ceil(PERSONS_PER_PARTITION);
        in_partitions(n_partitions, |partition| {
            let mut accumulator = start();
            for id in partition_range(partition, self.persons.len()) {
                let Some(registered_in) = registered_within(&self.persons[id], region) else { continue };
                let Ok(id) = PersonId::try_from(id) else { continue };
                let view = view::derive(self, id, coverage_year, as_of, false)?;
                visit(&mut accumulator, registered_in, &view);
            }
            Ok(accumulator)
        })
        .into_iter()
        .collect()
    }
}

/// The region a person is registered in, when the person is a live record
/// (not merged into another), registered, and in `region` (any when `None`):
/// the persons a year's walk visits.
pub(super) fn registered_within(person: &PersonState, region: Option<RegionCode>) -> Option<RegionCode> {
    let registered_in = person.registration.as_ref().filter(|_| person.merged_into.is_none())?.region;
    region.is_none_or(|region| policies::region_contains(region, registered_in)).then_some(registered_in)
}

/// The indexes of persons in `partition` of a list of `n_persons`.
pub(super) fn partition_range(partition: usize, n_persons: usize) -> std::ops::Range<usize> {
    let start = partition.saturating_mul(PERSONS_PER_PARTITION).min(n_persons);
    start..start.saturating_add(PERSONS_PER_PARTITION).min(n_persons)
}

/// Runs `work` for partitions `0..n_partitions` on the available cores;
/// the results in partition order. A panic in `work` is resumed here.
pub(super) fn in_partitions<T: Send>(n_partitions: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let n_threads = n_threads().min(n_partitions);
    if n_threads <= 1 {
        return (0..n_partitions).map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<T>> = (0..n_partitions).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n_threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let partition = next.fetch_add(1, Ordering::Relaxed);
                        if partition >= n_partitions {
                            return done;
                        }
                        done.push((partition, work(partition)));
                    }
                })
            })
            .collect();
        for worker in workers {
            let done = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (partition, result) in done {
                slots[partition] = Some(result);
            }
        }
    });
    // Every partition index below `n_partitions` was taken exactly once.
    slots.into_iter().flatten().collect()
}

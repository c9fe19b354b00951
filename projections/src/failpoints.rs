//! Test builds only (feature `failpoints`): a panic in the middle of a
//! fold, between changing the state and moving the tip, on the thread that
//! asked for it, so that tests can check what becomes of a half-folded
//! projection.

use std::cell::Cell;

thread_local! {
    static PANIC_AFTER_FOLDING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The next fold on this thread of the record at `position` panics once it
/// has changed the coverage state, before the tip moves.
pub fn panic_after_folding(position: u64) {
    PANIC_AFTER_FOLDING.with(|armed| armed.set(Some(position)));
}

pub(crate) fn after_folding(position: u64) {
    if PANIC_AFTER_FOLDING.with(|armed| armed.get()) == Some(position) {
        PANIC_AFTER_FOLDING.with(|armed| armed.set(None));
        panic!("failpoint: panic after folding position {position}, before the tip moved");
    }
}

//! Replay: rebuild projections from the log alone and reduce them to one
//! digest that two auditors on two machines can compare.

pub mod audit;

use ledger::{envelope, Hash, LogReader, Result};
use projections::Projection;
use serde::Serialize;

/// Folds records `1..=upto` (0: all) of the log into a fresh projection.
pub fn rebuild<P: Projection + Default>(log: &dyn LogReader, upto: u64, progress: &mut dyn FnMut(u64)) -> Result<P> {
    let mut state = P::default();
    let upto = if upto == 0 { log.durable_head().position } else { upto };
    let mut n_folded = 0u64;
    log.scan(1, upto, |envelope| {
        state.apply(&envelope);
        n_folded += 1;
        if n_folded.is_multiple_of(65_536) {
            progress(n_folded);
        }
        Ok(())
    })?;
    progress(n_folded);
    Ok(state)
}

/// SM3 over a canonical encoding of the state: bincode of a value whose maps
/// are ordered (BTreeMap), so equal states give equal bytes.
pub fn state_digest<S: Serialize>(state: &S) -> Hash {
    let bytes = bincode::serialize(state).expect("projection states serialize: ordered maps, no floats");
    envelope::sm3(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use projections::LedgerTotals;
    use std::collections::BTreeMap;

    #[test]
    fn digest_ignores_insertion_order_of_ordered_maps() {
        let a: BTreeMap<u16, u64> = [(2024, 1), (2025, 2)].into_iter().collect();
        let b: BTreeMap<u16, u64> = [(2025, 2), (2024, 1)].into_iter().collect();
        assert_eq!(state_digest(&a), state_digest(&b));
        let c: BTreeMap<u16, u64> = [(2025, 3), (2024, 1)].into_iter().collect();
        assert_ne!(state_digest(&a), state_digest(&c));
        assert_eq!(state_digest(&LedgerTotals::default()), state_digest(&LedgerTotals::default()));
    }
}

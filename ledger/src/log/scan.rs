//! Reading records in position order. A long scan decodes blocks on
//! several threads and hands the envelopes to the caller in order: replay is
//! bound by decoding, and decoding parallelises by block.

use super::block::BlockView;
use crate::envelope::{self, Envelope};
use crate::error::{LedgerError, Result};
use std::sync::mpsc;

/// Scans shorter than this many records decode on the caller's thread.
pub(crate) const PARALLEL_FROM_RECORDS: u64 = 20_000;
/// Decoded blocks each decoder may hold ahead of the caller.
const DECODED_AHEAD: usize = 4;

/// Decodes the records of one stored block that lie in `[from, to]`.
/// `Ok(None)`: the block starts after `to`, the scan is over.
pub(crate) fn decode_block(key_position: u64, bytes: &[u8], from: u64, to: u64) -> Result<Option<Vec<Envelope>>> {
    let corrupt = |reason: String| LedgerError::Corrupt { position: key_position, reason };
    let view = BlockView::parse(bytes).map_err(|e| corrupt(e.to_string()))?;
    if view.first_position > to {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(view.n_records as usize);
    let mut prev = view.prev_hash;
    for record in view.records() {
        let record = record.map_err(|e| corrupt(e.to_string()))?;
        if record.position > to {
            break;
        }
        if record.position >= from {
            let (head, event) = envelope::decode_record(record.body)
                .map_err(|e| LedgerError::Corrupt { position: record.position, reason: e.to_string() })?;
            out.push(Envelope { head, event, prev_hash: prev, hash: record.hash });
        }
        prev = record.hash;
    }
    Ok(Some(out))
}

/// Decodes `blocks` on `n_decoders` threads (block i on decoder i mod n) and
/// calls `visit` on the caller's thread in position order.
pub(crate) fn parallel<I>(
    blocks: I,
    from: u64,
    to: u64,
    n_decoders: usize,
    visit: &mut dyn FnMut(Envelope) -> Result<()>,
) -> Result<()>
where
    I: Iterator<Item = Result<(u64, sled::IVec)>> + Send,
{
    let n_decoders = n_decoders.max(1);
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(n_decoders);
        let mut outputs = Vec::with_capacity(n_decoders);
        for _ in 0..n_decoders {
            let (input_tx, input_rx) = mpsc::sync_channel::<Result<(u64, sled::IVec)>>(DECODED_AHEAD);
            let (output_tx, output_rx) = mpsc::sync_channel::<Result<Option<Vec<Envelope>>>>(DECODED_AHEAD);
            scope.spawn(move || {
                for item in input_rx {
                    let decoded = item.and_then(|(key_position, bytes)| decode_block(key_position, &bytes, from, to));
                    if output_tx.send(decoded).is_err() {
                        return;
                    }
                }
            });
            inputs.push(input_tx);
            outputs.push(output_rx);
        }
        // The reader: blocks from sled, dealt round-robin. It stops when the
        // decoders hang up (the caller stopped early).
        scope.spawn(move || {
            for (block_idx, item) in blocks.enumerate() {
                let failed = item.is_err();
                if inputs[block_idx % n_decoders].send(item).is_err() || failed {
                    return;
                }
            }
        });
        let mut block_idx = 0;
        loop {
            // A closed channel means the reader has dealt every block.
            let Ok(decoded) = outputs[block_idx % n_decoders].recv() else { return Ok(()) };
            let Some(envelopes) = decoded? else { return Ok(()) };
            for envelope in envelopes {
                visit(envelope)?;
            }
            block_idx += 1;
        }
    })
}

//! Helpers shared by the projections' tests.

pub mod subsidy;

use ledger::envelope::sm3;
use ledger::event::Event;
use ledger::{Envelope, EnvelopeHead, UtcTime};

/// `event` as the record at `position` of a log (hashes stand-ins: the
/// projections fold events, they do not check the chain).
pub fn envelope(position: u64, event: Event) -> Envelope {
    Envelope {
        head: EnvelopeHead {
            position,
            event_id: ledger::uuid::Uuid::from_u64_pair(0, position),
            recorded_at: UtcTime(0),
            stream: event.stream(),
            stream_version: 1,
            actor: "test".into(),
            idempotency_key: format!("k{position}"),
        },
        event,
        prev_hash: [0; 32],
        hash: sm3(&position.to_be_bytes()),
    }
}

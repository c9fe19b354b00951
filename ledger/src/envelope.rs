//! The envelope around every recorded event, its stored bytes and its hash.

use crate::event::Event;
use crate::time::UtcTime;
use bincode::Options;
use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};
use uuid::Uuid;

/// An SM3 digest (GM/T 0004-2012).
pub type Hash = [u8; 32];

/// The hash algorithm of the chain, named in the log header.
pub const HASH_ALGORITHM: &str = "SM3";

/// Largest stored record (envelope + event), in bytes.
pub const MAX_RECORD_BYTES: usize = 28 * 1024;

/// The envelope fields stored before the event. Stored bytes of a record are
/// `bincode(EnvelopeHead) ++ bincode(Event)`, which is exactly the bincode
/// of [`Envelope`] without its two hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeHead {
    /// Gapless, from 1.
    pub position: u64,
    pub event_id: Uuid,
    /// When the ledger learned it (transaction time), UTC.
    pub recorded_at: UtcTime,
    pub stream: String,
    /// 1 for the first event of a stream.
    pub stream_version: u64,
    /// Who or what delivered it (`import:payments.jsonl`, `cli:register`).
    pub actor: String,
    pub idempotency_key: String,
}

/// A recorded event: envelope, event and the chain hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub head: EnvelopeHead,
    pub event: Event,
    /// Hash of the previous record (for position 1: the genesis hash of the
    /// log header).
    pub prev_hash: Hash,
    /// `SM3(prev_hash ++ stored bytes)`.
    pub hash: Hash,
}

/// The one encoding of stored bytes: bincode, varint integers, little endian.
pub fn codec() -> impl Options + Copy {
    bincode::DefaultOptions::new().with_limit(MAX_RECORD_BYTES as u64)
}

/// Why stored bytes do not decode.
#[derive(Debug, thiserror::Error)]
#[error("record does not decode: {0}")]
pub struct DecodeError(pub String);

/// Encodes the event alone (the "content" of a fact, for idempotency). The
/// encoding is the codec's, without its size limit: the caller checks the
/// size and refuses an event too large to store.
pub fn encode_event(event: &Event) -> Vec<u8> {
    bincode::DefaultOptions::new().serialize(event).expect("events serialize: no maps, no unsized sequences")
}

/// Encodes a record's stored bytes from its head and the encoded event.
pub fn encode_record(head: &EnvelopeHead, event_bytes: &[u8], out: &mut Vec<u8>) {
    codec().serialize_into(&mut *out, head).expect("envelope heads serialize into a Vec");
    out.extend_from_slice(event_bytes);
}

/// Decodes the envelope head alone and returns it with the event's bytes.
pub fn decode_head(bytes: &[u8]) -> Result<(EnvelopeHead, &[u8]), DecodeError> {
    let options = codec().allow_trailing_bytes();
    let head: EnvelopeHead = options.deserialize(bytes).map_err(|e| DecodeError(e.to_string()))?;
    let head_len = options.serialized_size(&head).map_err(|e| DecodeError(e.to_string()))?;
    let head_len = usize::try_from(head_len).map_err(|e| DecodeError(e.to_string()))?;
    Ok((head, &bytes[head_len.min(bytes.len())..]))
}

/// Decodes a whole record's stored bytes: the two encodings in a row are the
/// encoding of the pair.
pub fn decode_record(bytes: &[u8]) -> Result<(EnvelopeHead, Event), DecodeError> {
    codec().deserialize(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// `SM3(prev ++ bytes)`: one link of the chain.
pub fn chain_hash(prev: &Hash, bytes: &[u8]) -> Hash {
    let mut hasher = Sm3::new();
    hasher.update(prev);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// SM3 of bytes, for digests of documents and files.
pub fn sm3(bytes: &[u8]) -> Hash {
    Sm3::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_standard_vector() {
        // GM/T 0004-2012, example 1: "abc".
        assert_eq!(hex::encode(sm3(b"abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
    }
}

//! `DIR/head`: the head the log had when it was last closed by a process
//! that wrote to it (position and hash), kept outside sled's files.
//!
//! sled 0.34 recovers a store that was never reopened by scanning its
//! segments, and a changed byte in one ends the scan there without an
//! error: the store opens with fewer records, even none, and nothing in
//! sled's files says that more were ever acknowledged. The anchor does:
//! a log that reads shorter than its anchor, or holds another record at
//! the anchor's position, is a damaged store.
//!
//! The anchor is written only with a head that is already durable (at the
//! end of an open for writing, and when that log is dropped), so after a
//! crash it is at most the durable head, never more: a crash never looks
//! like damage. It is a guard against loss, not a proof against tampering
//! (whoever can rewrite sled's files can rewrite this one; the SM3 chain
//! and an export kept elsewhere are the proof).

use crate::envelope::Hash;
use crate::log::Head;
use std::io::Write;
use std::path::Path;

const ANCHOR_FILE: &str = "head";
const TEMPORARY_FILE: &str = "head.tmp";

/// The anchor in `dir`, if there is a readable one. A missing or
/// unreadable anchor (a ledger from before anchors, a file cut short)
/// checks nothing.
pub(crate) fn read(dir: &Path) -> Option<Head> {
    let text = std::fs::read_to_string(dir.join(ANCHOR_FILE)).ok()?;
    let (position, hash_hex) = text.trim().split_once(' ')?;
    let position: u64 = position.parse().ok()?;
    let bytes = hex::decode(hash_hex).ok()?;
    let hash: Hash = bytes.try_into().ok()?;
    Some(Head { position, hash })
}

/// Writes `head` as the anchor, atomically (a temporary file, synced, then
/// renamed over the old one, and the directory synced).
pub(crate) fn write(dir: &Path, head: Head) -> std::io::Result<()> {
    let temporary = dir.join(TEMPORARY_FILE);
    let mut file = std::fs::File::create(&temporary)?;
    writeln!(file, "{} {}", head.position, hex::encode(head.hash))?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(ANCHOR_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes an anchor left beside a log that is being created anew.
pub(crate) fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(ANCHOR_FILE)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Why a log whose head is `head`, and whose record at the anchor's
/// position has the hash `hash_at_anchor` (`None`: it has no such record),
/// is not the log the anchor was written from; `None` when it is.
pub(crate) fn contradiction(anchor: Head, head: Head, hash_at_anchor: Option<Hash>) -> Option<String> {
    if anchor.position > head.position {
        return Some(format!(
            "the log reads only to position {}, but it held position {} when it was last closed (DIR/{ANCHOR_FILE}): \
             records acknowledged then are missing",
            head.position, anchor.position
        ));
    }
    match hash_at_anchor {
        Some(hash) if hash != anchor.hash => Some(format!(
            "the record at position {} is not the one the log held there when it was last closed (DIR/{ANCHOR_FILE})",
            anchor.position
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_is_read_back_as_written_and_judges_heads() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), None);
        let anchor = Head { position: 42, hash: [7; 32] };
        write(dir.path(), anchor).expect("write");
        assert_eq!(read(dir.path()), Some(anchor));
        assert_eq!(contradiction(anchor, anchor, Some(anchor.hash)), None);
        assert_eq!(contradiction(anchor, Head { position: 50, hash: [1; 32] }, Some(anchor.hash)), None);
        let shorter = contradiction(anchor, Head { position: 0, hash: [0; 32] }, None).expect("shorter");
        assert!(shorter.contains("only to position 0") && shorter.contains("held position 42"), "{shorter}");
        let other = contradiction(anchor, Head { position: 50, hash: [1; 32] }, Some([8; 32])).expect("other");
        assert!(other.contains("position 42"), "{other}");
        std::fs::write(dir.path().join(ANCHOR_FILE), "42 not-hex\n").expect("write");
        assert_eq!(read(dir.path()), None, "an unreadable anchor checks nothing");
        remove(dir.path()).expect("remove");
        remove(dir.path()).expect("a missing anchor is removed too");
    }
}

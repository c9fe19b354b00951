//! sled 0.34's recovery, at every open, reads its active segment again (the
//! one its newest snapshot file names) and, at a message whose checksum
//! fails, takes that for the end of its log: it overwrites the rest of the
//! segment, then refuses the store. A changed byte there would cost every
//! record written after it in the segment, though their blocks are whole.
//! So the segment's bytes are read before sled opens the store, and kept
//! in `DIR/preserved/` when the open changed them: `salvage` reads them
//! there.
//!
//! Only the active segment is kept (at most [`SEGMENT_BYTES`]): sled also
//! clears whole segments written after it, which a store reopened by every
//! command (each open writes a snapshot) seldom has.

use super::sled_log::SEGMENT_BYTES;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where segments sled's recovery overwrote are kept, beside `DIR/log`.
pub const PRESERVED_DIR: &str = "preserved";

/// The active segment's bytes as they were before an open.
pub(crate) struct Kept {
    offset: u64,
    bytes: Vec<u8>,
}

/// Reads the active segment of the store under `log_dir`, if it has a
/// snapshot naming one.
pub(crate) fn before_open(log_dir: &Path) -> Option<Kept> {
    let offset = active_segment(log_dir)?;
    let bytes = read_at(&log_dir.join("db"), offset)?;
    Some(Kept { offset, bytes })
}

/// After sled opened (or failed to open) the store of ledger `dir`: when
/// the active segment changed, its earlier bytes are written to
/// `DIR/preserved/`. Best effort: a failure here is noted, never the
/// open's error.
pub(crate) fn after_open(dir: &Path, kept: Option<Kept>) {
    let Some(kept) = kept else { return };
    if read_at(&dir.join("log").join("db"), kept.offset).as_deref() == Some(&kept.bytes[..]) {
        return;
    }
    match write_kept(dir, &kept) {
        Ok(path) => eprintln!(
            "note: sled's recovery overwrote part of its segment at byte {} of log/db (after a damaged \
             message, or an append a crash cut); its bytes before are kept in {} for `yibao salvage`",
            kept.offset,
            path.display()
        ),
        Err(error) => eprintln!(
            "note: sled's recovery overwrote part of its segment at byte {} of log/db, and its bytes before \
             could not be kept ({error})",
            kept.offset
        ),
    }
}

fn write_kept(dir: &Path, kept: &Kept) -> std::io::Result<PathBuf> {
    let preserved = dir.join(PRESERVED_DIR);
    std::fs::create_dir_all(&preserved)?;
    let mut n = 0;
    let path = loop {
        let path = preserved.join(format!("segment-{}-{n}", kept.offset));
        if !path.exists() {
            break path;
        }
        n += 1;
    };
    std::fs::write(&path, &kept.bytes)?;
    std::fs::File::open(&path)?.sync_all()?;
    std::fs::File::open(&preserved)?.sync_all()?;
    Ok(path)
}

fn read_at(file: &Path, offset: u64) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(file).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = Vec::with_capacity(SEGMENT_BYTES);
    file.take(SEGMENT_BYTES as u64).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The file offset of the active segment, from sled 0.34's newest
/// snapshot file (`snap.<lsn in hex>`): its stable lsn (8 bytes), then the
/// active segment as sled's varint of the offset plus one (0: none).
fn active_segment(log_dir: &Path) -> Option<u64> {
    let newest = std::fs::read_dir(log_dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("snap.") && !name.ends_with(".generating"))
        .max()?;
    let bytes = std::fs::read(log_dir.join(newest)).ok()?;
    let shifted = sled_varint(bytes.get(8..)?)?;
    let offset = shifted.checked_sub(1)?;
    (offset % SEGMENT_BYTES as u64 == 0).then_some(offset)
}

/// sled 0.34's variable-length u64.
fn sled_varint(bytes: &[u8]) -> Option<u64> {
    let first = *bytes.first()?;
    match first {
        0..=240 => Some(u64::from(first)),
        241..=248 => Some(240 + 256 * (u64::from(first) - 241) + u64::from(*bytes.get(1)?)),
        249 => Some(2288 + 256 * u64::from(*bytes.get(1)?) + u64::from(*bytes.get(2)?)),
        _ => {
            let size = usize::from(first) - 247;
            let mut aligned = [0; 8];
            aligned[..size].copy_from_slice(bytes.get(1..=size)?);
            Some(u64::from_le_bytes(aligned))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sled_varint;

    #[test]
    fn sleds_varints_read_back() {
        assert_eq!(sled_varint(&[7]), Some(7));
        assert_eq!(sled_varint(&[241, 10]), Some(250));
        assert_eq!(sled_varint(&[249, 1, 2]), Some(2288 + 258));
        assert_eq!(sled_varint(&[0xfa, 0x01, 0x00, 0x20]), Some(0x20_0001));
        assert_eq!(sled_varint(&[0xfa, 0x01]), None, "cut short");
    }
}

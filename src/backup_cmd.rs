//! `yibao backup` and `yibao restore`: adapters over `operations::backup`.

use crate::exit::{classified, Findings};
use anyhow::Result;
use operations::backup::{self, BackupError, WithTaken};
use operations::Location;
use std::path::{Path, PathBuf};

pub fn backup(location: &Location, dir: &Path, segment_bytes: usize, json: bool) -> Result<()> {
    let done = backup::backup(location, dir, segment_bytes).map_err(classified)?;
    if json {
        outln!("{}", serde_json::to_string(&done)?);
    } else if done.n_records == 0 {
        outln!("{}: nothing new since position {} (backup of ledger {})", done.dir, done.from.position, done.ledger_id);
    } else {
        outln!(
            "{}: backed up positions {}..{} ({} records) in {} segment(s), {} bytes, {:.3} s",
            done.dir,
            done.from.position + 1,
            done.head.position,
            done.n_records,
            done.n_segments,
            done.n_bytes,
            done.seconds
        );
        outln!("head {} {}", done.head.position, done.head.hash);
    }
    Ok(())
}

/// `backup DIR --check` and `restore DIR --check`: a damaged segment is a
/// finding (exit 1), as `verify` reports damage.
pub fn check(dir: &Path, json: bool) -> Result<()> {
    let checked = match backup::check(dir) {
        Ok(checked) => checked,
        Err(damaged @ BackupError::Damaged { .. }) => {
            outln!("FAILED: {damaged}");
            return Err(Findings(format!("the backup in {} is damaged", dir.display())).into());
        }
        Err(other) => return Err(classified(other)),
    };
    if json {
        outln!("{}", serde_json::to_string(&checked)?);
        return Ok(());
    }
    outln!(
        "{}: {} segment(s) of ledger {} read and chain, {:.3} s",
        checked.dir,
        checked.n_segments,
        checked.ledger_id,
        checked.seconds
    );
    outln!("OK: head {} {}", checked.head.position, checked.head.hash);
    Ok(())
}

pub fn restore(location: &Location, dir: &Path, with: &[PathBuf], json: bool) -> Result<()> {
    let restored = backup::restore(location, dir, with).map_err(classified)?;
    if json {
        outln!("{}", serde_json::to_string(&restored)?);
        return Ok(());
    }
    outln!(
        "restored {} records from the backup {} ({} segment(s)) into {} in {:.3} s",
        restored.backup_head.position,
        restored.backup,
        restored.n_segments,
        restored.location,
        restored.seconds
    );
    outln!("backup head {} {}", restored.backup_head.position, restored.backup_head.hash);
    for taken in &restored.with {
        print_taken(taken);
    }
    outln!("head {} {}", restored.head.position, restored.head.hash);
    Ok(())
}

fn print_taken(taken: &WithTaken) {
    let stopped = match &taken.stopped {
        None => "read to its end".to_string(),
        Some(stop) => format!("stopped at line {}, position {}: {}", stop.line, stop.position, stop.reason),
    };
    let differing = match taken.n_differing {
        0 => String::new(),
        n => format!(", {n} at positions held that differ from them (ignored)"),
    };
    outln!(
        "{}: {} records taken, {} already held{differing}; {stopped}; head {} {}",
        taken.file,
        taken.n_taken,
        taken.n_skipped,
        taken.head.position,
        taken.head.hash
    );
}

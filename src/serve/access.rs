//! The access log (who looked up whom): JSON Lines appended to
//! `DIR/access.log` by a writer thread fed through a bounded channel, so
//! a lookup never waits on the disk.

use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// Lookups queued before a lookup waits for the writer.
const QUEUE_CAPACITY: usize = 4096;

#[derive(Serialize)]
pub struct AccessLine {
    pub who: String,
    pub when: String,
    /// The ID looked up, masked.
    pub person: String,
    pub route: &'static str,
}

/// Opens the log for appending and starts its writer; the writer stops
/// once every sender is dropped, after writing what was queued.
pub fn start(data: &Path) -> Result<(mpsc::Sender<AccessLine>, JoinHandle<()>)> {
    let path = data.join("access.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let (sender, mut receiver) = mpsc::channel::<AccessLine>(QUEUE_CAPACITY);
    let writer = std::thread::spawn(move || {
        let mut out = std::io::BufWriter::new(file);
        while let Some(line) = receiver.blocking_recv() {
            let mut batch = vec![line];
            while let Ok(more) = receiver.try_recv() {
                batch.push(more);
            }
            let written = batch.iter().try_for_each(|line| {
                serde_json::to_writer(&mut out, line)?;
                out.write_all(b"\n")
            });
            if let Err(error) = written.and_then(|()| out.flush()) {
                eprintln!("error: writing {}: {error}", path.display());
            }
        }
    });
    Ok((sender, writer))
}

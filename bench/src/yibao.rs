//! Measurements of the yibao log (SledLog): ingest, single appends, reopen,
//! replay, verify and space.

use crate::figures::{AppendFigures, Throughput};
use anyhow::{ensure, Context, Result};
use ledger::log::block::BlockView;
use ledger::sync::lock_plain;
use ledger::{EventLog, NewEvent, SledLog};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Appends all `events` in requests of `events_per_request`, from
/// `appenders` threads at once so that the sequencer always has a request
/// waiting: it then hashes the next unit while the committer syncs the last.
pub fn ingest(log: &SledLog, events: Vec<NewEvent>, appenders: usize, events_per_request: usize) -> Result<Throughput> {
    let n_events = events.len() as u64;
    let requests = Mutex::new(into_requests(events, events_per_request).into_iter());
    let started = Instant::now();
    let n_appended = std::thread::scope(|scope| -> Result<u64> {
        let workers: Vec<_> = (0..appenders.max(1)).map(|_| scope.spawn(|| append_requests(log, &requests))).collect();
        let mut total = 0;
        for worker in workers {
            total += worker.join().map_err(|_| anyhow::anyhow!("an appender thread panicked"))??;
        }
        Ok(total)
    })?;
    let elapsed = started.elapsed();
    ensure!(n_appended == n_events, "ingest appended {n_appended} of {n_events} events");
    Ok(Throughput::new(n_events, elapsed))
}

fn into_requests(events: Vec<NewEvent>, events_per_request: usize) -> Vec<Vec<NewEvent>> {
    let mut requests = Vec::with_capacity(events.len() / events_per_request.max(1) + 1);
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        requests.push(events.by_ref().take(events_per_request.max(1)).collect());
    }
    requests
}

/// Takes requests in order until none are left; returns how many events were new.
fn append_requests(log: &SledLog, requests: &Mutex<std::vec::IntoIter<Vec<NewEvent>>>) -> Result<u64> {
    let mut n_appended = 0;
    loop {
        let next = lock_plain(requests).next();
        let Some(request) = next else { return Ok(n_appended) };
        n_appended += log.append_blocking(request).context("batched append")?.n_appended as u64;
    }
}

/// One event per append, from `clients` tokio tasks calling `EventLog::append`.
pub fn single_appends(log: &Arc<SledLog>, events: Vec<NewEvent>, clients: usize) -> Result<AppendFigures> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let clients = clients.max(1);
    let mut per_client: Vec<Vec<NewEvent>> = (0..clients).map(|_| Vec::new()).collect();
    for (index, event) in events.into_iter().enumerate() {
        per_client[index % clients].push(event);
    }
    runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> =
            per_client.into_iter().map(|events| tokio::spawn(client_appends(Arc::clone(log), events))).collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        Ok(AppendFigures::new(clients, latencies, started.elapsed()))
    })
}

async fn client_appends(log: Arc<SledLog>, events: Vec<NewEvent>) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(events.len());
    for event in events {
        let started = Instant::now();
        let outcome = log.append(vec![event]).await.context("single append")?;
        latencies.push(started.elapsed());
        ensure!(outcome.n_appended == 1, "a single append was taken for a repeat");
    }
    Ok(latencies)
}

/// Opening an existing log reads every record's envelope head to rebuild
/// the writer's indexes.
pub fn reopen(dir: &std::path::Path, n_events: u64) -> Result<(SledLog, Throughput)> {
    let started = Instant::now();
    let log = SledLog::open(dir, ledger::OpenMode::Existing).context("reopen the log")?;
    Ok((log, Throughput::new(n_events, started.elapsed())))
}

/// Decodes every record into an envelope, as a projection's replay does.
pub fn replay(log: &SledLog) -> Result<Throughput> {
    let started = Instant::now();
    let mut n_events = 0u64;
    let mut checksum = 0u64;
    log.scan(1, u64::MAX, |envelope| {
        n_events += 1;
        // Touch the decoded value so the work cannot be optimised away.
        checksum = checksum.wrapping_add(envelope.head.stream_version);
        Ok(())
    })?;
    let elapsed = started.elapsed();
    std::hint::black_box(checksum);
    Ok(Throughput::new(n_events, elapsed))
}

/// `SledLog::verify` over the whole log; a problem found is returned as text.
pub fn verify(log: &SledLog) -> Result<(Throughput, Option<String>)> {
    let started = Instant::now();
    let report = log.verify(1, 0, &mut |_| {})?;
    let elapsed = started.elapsed();
    Ok((Throughput::new(report.n_records, elapsed), report.problem.map(|problem| problem.to_string())))
}

/// What the log stores: record bodies (the raw encoded bytes) and whole
/// blocks (bodies plus framing and hashes), as stored (frames compressed)
/// and as built.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoredBytes {
    pub n_records: u64,
    pub n_blocks: u64,
    pub record_bytes: u64,
    pub block_bytes: u64,
    pub block_bytes_uncompressed: u64,
}

pub fn stored_bytes(log: &SledLog) -> Result<StoredBytes> {
    let mut stored = StoredBytes::default();
    for item in log.blocks_from(1)? {
        let (_, bytes) = item?;
        let view = BlockView::parse(&bytes)?;
        stored.n_blocks += 1;
        stored.block_bytes += bytes.len() as u64;
        stored.block_bytes_uncompressed += (ledger::log::block::HEADER_BYTES + view.frames().len()) as u64;
        for record in view.records() {
            stored.n_records += 1;
            stored.record_bytes += record?.body.len() as u64;
        }
    }
    Ok(stored)
}

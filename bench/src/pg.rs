//! `yibao-bench pg`: the log on PostgreSQL beside the log on sled, in one
//! run on the same generated facts. A throwaway PostgreSQL (pgtest: initdb
//! in a temporary directory, default settings but for max_connections=300
//! and shared_buffers=128MB; fsync and synchronous_commit on) and a sled
//! ledger in a temporary directory each take the import's durable ingest
//! (requests of many facts) and then many clients appending one fact at a
//! time; facts/s and the ratio PG/sled are printed. Not a test: it fails
//! on no figure.

use crate::workload;
use anyhow::{ensure, Context, Result};
use ledger::{LogStore, NewEvent, OpenMode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct PgArgs {
    /// Facts of the ingest (registrations and payments).
    #[arg(long, default_value_t = 500_000)]
    pub facts: u64,
    /// Facts per append request during the ingest (the import's batches).
    #[arg(long, default_value_t = 10_000)]
    pub facts_per_request: usize,
    /// Threads appending requests at once during the ingest.
    #[arg(long, default_value_t = 2)]
    pub appenders: usize,
    /// Concurrent clients appending one fact at a time.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// How long the clients append, in seconds (or until --client-facts).
    #[arg(long, default_value_t = 10)]
    pub client_seconds: u64,
    /// Most facts the clients append in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub client_facts: u64,
    /// Persons of the generated year imported for the replicas' figures
    /// (lookups from one and from two `yibao serve` on the database, and
    /// the lag between them); 0 skips them.
    #[arg(long, default_value_t = 100_000)]
    pub replica_persons: u64,
    /// Lookups of each replica phase.
    #[arg(long, default_value_t = 200_000)]
    pub replica_lookups: u64,
    /// Client connections per replica.
    #[arg(long, default_value_t = 32)]
    pub replica_connections: usize,
    /// Payments timed for the replicas' lag.
    #[arg(long, default_value_t = 200)]
    pub replica_posts: u64,
    /// Directory for the sled ledger (removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// What one backend did.
struct Figures {
    ingest_facts_per_second: f64,
    ingest_seconds: f64,
    clients_facts_per_second: f64,
    clients_facts: u64,
    clients_seconds: f64,
}

pub fn run(args: &PgArgs) -> Result<()> {
    let yibao = std::env::current_exe()?.with_file_name("yibao");
    ensure!(
        args.replica_persons == 0 || yibao.exists(),
        "{} not found: the replicas' figures serve with it; run `cargo build --release` first, or give \
         --replica-persons 0 for the log's figures alone",
        yibao.display()
    );
    let binaries = pgtest::find_binaries().context("PostgreSQL (initdb, postgres) is not installed")?;
    let server = crate::phase("start a throwaway PostgreSQL", || {
        pgtest::TempPostgres::start_with(&binaries).map_err(anyhow::Error::msg)
    })?;
    let url = server.create_database("bench");
    let scratch = crate::store_probe::scratch(args.dir.as_ref())?;
    let sled: Arc<dyn LogStore> = Arc::new(ledger::SledLog::open(scratch.path(), OpenMode::Create)?);
    let sled_figures = measure("sled", &sled, args)?;
    drop(sled);
    let postgres: Arc<dyn LogStore> = Arc::new(pglog::PgLog::open(&url, OpenMode::Create)?);
    let pg_figures = measure("PostgreSQL", &postgres, args)?;
    drop(postgres);
    print_table(args, &sled_figures, &pg_figures, &server_version(&url));
    if args.replica_persons > 0 {
        let replicas = crate::serve_load::replicas::Replicas {
            persons: args.replica_persons,
            seed: 1,
            lookups: args.replica_lookups,
            connections: args.replica_connections,
            posts: args.replica_posts,
            phase_seconds: 60,
        };
        crate::serve_load::replicas::run_on(scratch.path(), &server, &replicas)?;
    }
    Ok(())
}

fn measure(name: &str, log: &Arc<dyn LogStore>, args: &PgArgs) -> Result<Figures> {
    let events =
        crate::phase(&format!("{name}: generate {} facts", args.facts), || Ok(workload::events(0..args.facts)))?;
    let (ingest_facts_per_second, ingest_seconds) =
        crate::phase(&format!("{name}: ingest"), || ingest(log.as_ref(), events, args))?;
    let (clients_facts, clients_seconds) =
        crate::phase(&format!("{name}: {} clients", args.clients), || clients(log, args))?;
    let report = log.verify(0, 0, &mut |_| {})?;
    ensure!(report.problem.is_none(), "{name}: the log does not verify: {:?}", report.problem);
    Ok(Figures {
        ingest_facts_per_second,
        ingest_seconds,
        clients_facts_per_second: clients_facts as f64 / clients_seconds,
        clients_facts,
        clients_seconds,
    })
}

/// The import's durable ingest: requests of `facts_per_request` facts
/// from `appenders` threads. Returns facts/s and seconds.
fn ingest(log: &dyn LogStore, events: Vec<NewEvent>, args: &PgArgs) -> Result<(f64, f64)> {
    let n_facts = events.len() as u64;
    let mut requests = Vec::new();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        requests.push(events.by_ref().take(args.facts_per_request.max(1)).collect::<Vec<_>>());
    }
    let requests = Mutex::new(requests.into_iter());
    let started = Instant::now();
    let n_appended = std::thread::scope(|scope| -> Result<u64> {
        let workers: Vec<_> = (0..args.appenders.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<u64> {
                    let mut n_appended = 0;
                    loop {
                        let next = ledger::sync::lock_plain(&requests).next();
                        let Some(request) = next else { return Ok(n_appended) };
                        n_appended += log.append_blocking(request).context("a batched append")?.n_appended as u64;
                    }
                })
            })
            .collect();
        let mut total = 0;
        for worker in workers {
            total += worker.join().map_err(|_| anyhow::anyhow!("an appender panicked"))??;
        }
        Ok(total)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(n_appended == n_facts, "the ingest appended {n_appended} of {n_facts} facts");
    Ok((n_facts as f64 / seconds, seconds))
}

/// `clients` tokio tasks each appending one new fact at a time until the
/// time is up or the facts are spent. Returns facts appended and seconds.
fn clients(log: &Arc<dyn LogStore>, args: &PgArgs) -> Result<(u64, f64)> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let deadline = Instant::now() + Duration::from_secs(args.client_seconds);
    let next_index = Arc::new(AtomicU64::new(args.facts));
    let last_index = args.facts + args.client_facts;
    runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.clients.max(1))
            .map(|_| {
                let log = Arc::clone(log);
                let next_index = Arc::clone(&next_index);
                tokio::spawn(async move {
                    let mut n_appended = 0u64;
                    while Instant::now() < deadline {
                        let index = next_index.fetch_add(1, Ordering::Relaxed);
                        if index >= last_index {
                            break;
                        }
                        let outcome = log.append(vec![workload::event(index)]).await.context("a single append")?;
                        ensure!(outcome.n_appended == 1, "a single append was taken for a repeat");
                        n_appended += 1;
                    }
                    Ok::<u64, anyhow::Error>(n_appended)
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await??;
        }
        Ok((total, started.elapsed().as_secs_f64()))
    })
}

fn server_version(url: &str) -> String {
    postgres::Client::connect(url, postgres::NoTls)
        .and_then(|mut client| client.query_one("SHOW server_version", &[]))
        .map(|row| row.get::<_, String>(0))
        .unwrap_or_else(|_| "?".into())
}

fn print_table(args: &PgArgs, sled: &Figures, pg: &Figures, version: &str) {
    println!("The log on PostgreSQL {version} beside sled (facts/s, durable: fsync and synchronous_commit on)");
    println!("{:<44} {:>14} {:>14} {:>8}", "", "sled", "PostgreSQL", "PG/sled");
    println!(
        "{:<44} {:>14.0} {:>14.0} {:>8.2}",
        format!("ingest, {} facts in requests of {}", args.facts, args.facts_per_request),
        sled.ingest_facts_per_second,
        pg.ingest_facts_per_second,
        pg.ingest_facts_per_second / sled.ingest_facts_per_second
    );
    println!(
        "{:<44} {:>14.0} {:>14.0} {:>8.2}",
        format!("{} clients, one fact per append", args.clients),
        sled.clients_facts_per_second,
        pg.clients_facts_per_second,
        pg.clients_facts_per_second / sled.clients_facts_per_second
    );
    println!(
        "(ingest {:.1} s sled, {:.1} s PostgreSQL; clients {} facts in {:.1} s sled, {} in {:.1} s PostgreSQL)",
        sled.ingest_seconds,
        pg.ingest_seconds,
        sled.clients_facts,
        sled.clients_seconds,
        pg.clients_facts,
        pg.clients_seconds
    );
    println!("targets: PostgreSQL ingest >= 100,000 facts/s; 64 clients >= 10,000 facts/s");
}

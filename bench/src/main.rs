//! yibao's benchmarks, each with a peer measured in the same run on the same
//! events: `yibao-bench log` compares the event log with SQLite; `yibao-bench
//! serve` drives `yibao serve` over HTTP (its peer: the targets).

mod coverage;
mod coverage_sqlite;
mod figures;
mod pg;
mod report;
mod scale;
mod serve_load;
mod sqlite;
mod store_catch_up;
mod store_probe;
mod tree;
mod workload;
mod yibao;

use anyhow::{Context, Result};

/// The same allocator as the yibao binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use figures::Space;
use report::{Ratios, Report, Setup, SqliteFigures, YibaoFigures, TARGETS};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "yibao-bench", about = "Benchmarks of yibao with a peer measured in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The event log (SledLog) against SQLite: ingest, single appends,
    /// replay, verify and space.
    Log(LogArgs),
    /// The coverage projection over a generated prefecture-year (六盘水 2021)
    /// against SQLite computing the states with SQL: rebuild events/s,
    /// lookups/s, memory per million persons.
    Coverage(CoverageArgs),
    /// `yibao serve` over HTTP on loopback, started as a child process on
    /// a generated ledger: coverage lookups from three load generators
    /// (ureq threads, the peer; async tokio clients; wrk when installed)
    /// at 1 to 256 clients, then 90 % lookups with 10 % payment posts at
    /// 32 to 256 clients, then payment posts alone at 64 clients, then a
    /// check that every acknowledged post is in the log. Needs the yibao
    /// binary next to this one (`cargo build --release`).
    Serve(ServeArgs),
    /// Two `yibao serve` replicas on one throwaway PostgreSQL database:
    /// lookups per second from one and from two, and the lag from a payment
    /// posted to one until the other's coverage card shows it.
    Replicas(ReplicasArgs),
    /// What each command costs as the ledger grows: for each size, a
    /// generated year imported by the yibao binary next to this one, then
    /// cold processes timed with their peak RSS — import, a coverage
    /// lookup (p50/p99), a page of the log, verify, replay, serve (ready
    /// time, RSS after lookups) — and bytes on disk per fact.
    Scale(ScaleArgs),
    /// Candidate stores for the per-person coverage records (SQLite, redb)
    /// on the real payload: fill, cold open + 100 reads, 100,000 rewrites,
    /// each in a child process with its peak RSS.
    Store(StoreArgs),
    /// The log on PostgreSQL (a throwaway server) beside sled: the
    /// import's durable ingest, then 64 clients appending one fact at a
    /// time; facts/s and the ratio PG/sled.
    Pg(pg::PgArgs),
    /// One step of `store`, in a process of its own.
    #[command(hide = true)]
    StoreChild(StoreChildArgs),
    /// The person store caught up from position 1 over a generated
    /// prefecture-year, in a SQLite file and in a PostgreSQL database.
    StoreCatchUp(StoreCatchUpArgs),
}

#[derive(Args)]
struct StoreCatchUpArgs {
    /// Persons of the generated prefecture-year.
    #[arg(long, default_value_t = 1_000_000)]
    persons: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The PostgreSQL database to measure in (its projection schema is
    /// emptied); a throwaway server without it.
    #[arg(long)]
    url: Option<String>,
}

#[derive(Args)]
struct ReplicasArgs {
    /// Persons of the generated prefecture-year imported before serving.
    #[arg(long, default_value_t = 100_000)]
    persons: u64,
    /// Coverage lookups of each phase (split between the replicas).
    #[arg(long, default_value_t = 200_000)]
    lookups: u64,
    /// Client connections per replica.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Payments timed for the replication lag.
    #[arg(long, default_value_t = 200)]
    posts: u64,
    /// Cap on each load phase, in seconds.
    #[arg(long, default_value_t = 60)]
    phase_seconds: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct StoreArgs {
    /// Persons of the generated prefecture-year.
    #[arg(long, default_value_t = 1_000_000)]
    persons: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct StoreChildArgs {
    #[arg(long)]
    kind: String,
    #[arg(long)]
    op: String,
    #[arg(long)]
    path: PathBuf,
    #[arg(long)]
    records: PathBuf,
    #[arg(long)]
    keys: PathBuf,
}

#[derive(Args)]
struct ScaleArgs {
    /// Ledger sizes in persons, comma-separated (about 2.1 facts each).
    #[arg(long, value_delimiter = ',', default_value = "1000000,3000000,7000000")]
    persons: Vec<u64>,
    /// Cold `yibao coverage` processes per size.
    #[arg(long, default_value_t = 20)]
    lookups: usize,
    /// Lookups the service answers before its RSS is read.
    #[arg(long, default_value_t = 100_000)]
    serve_lookups: usize,
    /// Seed of the first size's generator (the next sizes take the next seeds).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the ledgers (printed at the end) instead of removing them.
    #[arg(long)]
    keep: bool,
    /// Measure again the ledgers a run with `--keep` left under `--dir`
    /// (that directory itself), from the cold lookups on.
    #[arg(long)]
    again: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Persons of the generated prefecture-year imported before serving.
    #[arg(long, default_value_t = 100_000)]
    persons: u64,
    /// Coverage lookups at each concurrency.
    #[arg(long, default_value_t = 100_000)]
    lookups: u64,
    /// Requests of the lookup/post mix.
    #[arg(long, default_value_t = 50_000)]
    mix_requests: u64,
    /// Cap on each load phase, in seconds: it stops at its count or then.
    #[arg(long, default_value_t = 30)]
    phase_seconds: u64,
    /// Length of each wrk phase, in seconds.
    #[arg(long, default_value_t = 5)]
    wrk_seconds: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Another yibao binary (an earlier build) to run the same load against
    /// first, on its own copy of the ledger: both tables are printed, then
    /// this build's rate over the peer's, phase by phase.
    #[arg(long)]
    against: Option<PathBuf>,
}

#[derive(Args)]
struct CoverageArgs {
    /// Persons of the generated prefecture-year (about 2.1 facts each).
    #[arg(long, default_value_t = 1_000_000)]
    persons: u64,
    /// In-process lookups to time.
    #[arg(long, default_value_t = 1_000_000)]
    lookups: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct LogArgs {
    /// Events to ingest (half registrations, half payments, N/2 persons).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Concurrent clients for the many-client single appends.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Directory for the temporary data (removed afterwards); default: the
    /// system temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Single appends from one client.
    #[arg(long, default_value_t = 3_000)]
    appends_one_client: u64,
    /// Single appends, in all, from the concurrent clients.
    #[arg(long, default_value_t = 20_000)]
    appends_many_clients: u64,
    /// Threads appending batches at once during the ingest. Two or more
    /// keep a request waiting for the sequencer while another is committed.
    #[arg(long, default_value_t = 4)]
    appenders: usize,
    /// Events per append request during the ingest.
    #[arg(long, default_value_t = 25_000)]
    events_per_request: usize,
    /// Rows per SQLite transaction during its ingest.
    #[arg(long, default_value_t = 1_000)]
    sqlite_rows_per_transaction: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Measure the ledger alone and print its figures only (for profiling;
    /// no peer, so no ratios).
    #[arg(long)]
    without_peer: bool,
}

/// The events of a run: the ingest, then extra ones for single appends.
struct Events {
    ingest: Vec<ledger::NewEvent>,
    one_client: Vec<ledger::NewEvent>,
    many_clients: Vec<ledger::NewEvent>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Log(args) => run_log(&args),
        Command::Pg(args) => pg::run(&args),
        Command::Coverage(args) => {
            let scratch = store_probe::scratch(args.dir.as_ref())?;
            coverage::run(scratch.path(), args.persons, args.lookups, args.seed)
        }
        Command::Store(args) => {
            let scratch = store_probe::scratch(args.dir.as_ref())?;
            store_probe::run(scratch.path(), args.persons, args.seed)
        }
        Command::StoreCatchUp(args) => {
            let scratch = store_probe::scratch(args.dir.as_ref())?;
            store_catch_up::run(scratch.path(), args.persons, args.seed, args.url.as_deref())
        }
        Command::StoreChild(args) => {
            store_probe::child_main(&args.kind, &args.op, &args.path, &args.records, &args.keys)
        }
        Command::Scale(args) if args.again => {
            let dir = args.dir.as_ref().context("--again measures the ledgers kept under --dir")?;
            let scale = scale::Scale {
                sizes: args.persons,
                seed: args.seed,
                lookups: args.lookups,
                serve_lookups: args.serve_lookups,
                again: true,
            };
            scale::run_scale(dir, &scale)
        }
        Command::Scale(args) => {
            let scratch = store_probe::scratch(args.dir.as_ref())?;
            let scale = scale::Scale {
                sizes: args.persons,
                seed: args.seed,
                lookups: args.lookups,
                serve_lookups: args.serve_lookups,
                again: false,
            };
            scale::run_scale(scratch.path(), &scale)?;
            if args.keep {
                eprintln!("the ledgers are kept under {}", scratch.keep().display());
            }
            Ok(())
        }
        Command::Replicas(args) => {
            let scratch = store_probe::scratch(args.dir.as_ref())?;
            let replicas = serve_load::replicas::Replicas {
                persons: args.persons,
                seed: args.seed,
                lookups: args.lookups,
                connections: args.connections,
                posts: args.posts,
                phase_seconds: args.phase_seconds,
            };
            serve_load::replicas::run(scratch.path(), &replicas)
        }
        Command::Serve(args) => {
            let scratch = store_probe::scratch(args.dir.as_ref())?;
            let load = serve_load::Load {
                persons: args.persons,
                seed: args.seed,
                lookups: args.lookups,
                mix_requests: args.mix_requests,
                phase_seconds: args.phase_seconds,
                wrk_seconds: args.wrk_seconds,
            };
            serve_load::run(scratch.path(), &load, args.against.as_deref())
        }
    }
}

fn run_log(args: &LogArgs) -> Result<()> {
    let scratch = store_probe::scratch(args.dir.as_ref())?;
    let events = phase("generate events", || Ok(generate(args)))?;
    if args.without_peer {
        let yibao = measure_yibao(&scratch.path().join("yibao"), events, args)?;
        println!("{yibao:#?}");
        measure_tree(scratch.path(), args, &yibao)?.print_table();
        return Ok(());
    }
    let mut sqlite = measure_sqlite(&scratch.path().join("sqlite"), &events, args)?;
    let yibao = measure_yibao(&scratch.path().join("yibao"), events, args)?;
    let tree = measure_tree(scratch.path(), args, &yibao)?;
    // Both stores' space is measured against the ledger's raw record bytes,
    // known only now.
    sqlite.space = Space::new(sqlite.space.disk_bytes, args.events, yibao.raw_record_bytes);
    let report = Report {
        setup: Setup {
            n_events: args.events,
            n_persons: args.events.div_ceil(2),
            ingest_appenders: args.appenders,
            ingest_events_per_request: args.events_per_request,
            sqlite_rows_per_transaction: args.sqlite_rows_per_transaction,
            clients: args.clients,
        },
        yibao_over_sqlite: Ratios::new(&yibao, &sqlite),
        notes: notes(&yibao),
        yibao,
        sqlite,
        tree,
        targets: TARGETS,
    };
    if args.json {
        report.print_json()?;
    } else {
        report.print_table();
    }
    Ok(())
}

/// The same ingest with the Merkle tree kept current, and proofs over it.
fn measure_tree(scratch: &Path, args: &LogArgs, yibao: &YibaoFigures) -> Result<tree::TreeFigures> {
    let dir = scratch.join("yibao-tree");
    tree::measure(&dir, args.events, args.appenders, args.events_per_request, &yibao.ingest)
}

fn generate(args: &LogArgs) -> Events {
    let end_of_ingest = args.events;
    let end_of_one_client = end_of_ingest + args.appends_one_client;
    let end_of_many_clients = end_of_one_client + args.appends_many_clients;
    Events {
        ingest: workload::events(0..end_of_ingest),
        one_client: workload::events(end_of_ingest..end_of_one_client),
        many_clients: workload::events(end_of_one_client..end_of_many_clients),
    }
}

/// Runs a phase, telling stderr how long it took (the table goes to stdout).
pub(crate) fn phase<T>(name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    eprint!("{name} … ");
    let started = Instant::now();
    let result = work().with_context(|| name.to_string());
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
    result
}

fn measure_sqlite(dir: &Path, events: &Events, args: &LogArgs) -> Result<SqliteFigures> {
    let rows_per_transaction = args.sqlite_rows_per_transaction;
    let mut peer = sqlite::Peer::create(&dir.join("keyed"), true)?;
    let ingest = phase("SQLite ingest", || peer.ingest(&events.ingest, rows_per_transaction))?;
    let disk_bytes = peer.disk_bytes()?;
    let replay = phase("SQLite replay", || peer.replay())?;
    let append_one_client = phase("SQLite single appends", || peer.single_appends(&events.one_client))?;
    drop(peer);
    let mut unkeyed = sqlite::Peer::create(&dir.join("unkeyed"), false)?;
    let ingest_without_key_index =
        phase("SQLite ingest without key index", || unkeyed.ingest(&events.ingest, rows_per_transaction))?;
    // Rebased on the ledger's raw record bytes once they are known.
    let space = Space::new(disk_bytes, events.ingest.len() as u64, 0);
    Ok(SqliteFigures { ingest, ingest_without_key_index, append_one_client, replay, space })
}

fn measure_yibao(dir: &Path, events: Events, args: &LogArgs) -> Result<YibaoFigures> {
    let n_events = events.ingest.len() as u64;
    let log = ledger::SledLog::open(dir, ledger::OpenMode::Create)?;
    let ingest = phase("yibao ingest", || yibao::ingest(&log, events.ingest, args.appenders, args.events_per_request))?;
    // Closing waits for the writer and writes the memtable out as a run.
    let close_seconds = phase("yibao close", || {
        let started = std::time::Instant::now();
        drop(log);
        Ok(started.elapsed().as_secs_f64())
    })?;
    // An open for writing reads the index's tail; without an index on
    // disk it reads every record (as every open did before the index was
    // kept on disk).
    let (log, reopen) = phase("yibao reopen", || yibao::reopen(dir, n_events))?;
    let reopen_tail_records = log.opened_tail();
    // Bytes on disk with the index written (the rebuild below holds it in
    // memory until it closes).
    let disk_bytes = figures::disk_bytes(dir)?;
    let index_bytes = figures::disk_bytes(&dir.join("index"))?;
    let sled_bytes = figures::disk_bytes(&dir.join("log"))?;
    drop(log);
    std::fs::remove_dir_all(dir.join("index")).context("remove the index to rebuild it")?;
    let (log, rebuild) = phase("yibao reopen, index rebuilt", || yibao::reopen(dir, n_events))?;
    let stored = yibao::stored_bytes(&log)?;
    // sled 0.34 writes any page image above a quarter segment to its own
    // file under `blobs/` and never fsyncs it: worth seeing how much.
    let blob_bytes = figures::disk_bytes(&dir.join("log").join("blobs")).unwrap_or(0);
    let replay = phase("yibao replay", || yibao::replay(&log))?;
    let (verify, verify_problem) = phase("yibao verify", || yibao::verify(&log))?;
    let log = Arc::new(log);
    let append_one_client =
        phase("yibao single appends, 1 client", || yibao::single_appends(&log, events.one_client, 1))?;
    let append_many_clients =
        phase("yibao single appends, many clients", || yibao::single_appends(&log, events.many_clients, args.clients))?;
    Ok(YibaoFigures {
        ingest,
        append_one_client,
        append_many_clients,
        close_seconds,
        reopen,
        reopen_tail_records,
        rebuild,
        replay,
        verify,
        verify_problem,
        n_blocks: stored.n_blocks,
        raw_record_bytes: stored.record_bytes,
        record_bytes_mean: stored.record_bytes as f64 / stored.n_records.max(1) as f64,
        block_bytes: stored.block_bytes,
        block_bytes_uncompressed: stored.block_bytes_uncompressed,
        blob_bytes,
        index_bytes,
        sled_bytes,
        space: Space::new(disk_bytes, n_events, stored.record_bytes),
    })
}

/// What the figures do not say by themselves.
fn notes(yibao: &YibaoFigures) -> Vec<String> {
    let mut notes = vec![
        "SQLite is the peer: WAL, synchronous=FULL, the same bincode event bytes, a unique index on \
         idempotency keys; it computes no hash chain and stores no envelope (event id, recorded_at, actor, \
         stream version), so it does less work per event than yibao."
            .to_string(),
        "SQLite encodes each event inside its timed loop, as the ledger's writer does. yibao checks \
         idempotency keys in its memtable, and in sorted runs on disk behind bloom filters (written \
         off the writer's thread); SQLite's unique index is on disk, and half the keys \
         (content keys of registrations) are random, so every transaction dirties index pages all over: \
         the row without the index shows that cost."
            .to_string(),
        "Replay and verify read a log just written: the OS page cache is warm.".to_string(),
        format!(
            "yibao's bytes on disk: sled's files (DIR/log) {} ({:.2}× raw), the index on disk (DIR/index) {} \
             ({:.2}× raw), the rest {}.",
            report::count(yibao.sled_bytes as f64),
            yibao.sled_bytes as f64 / yibao.raw_record_bytes.max(1) as f64,
            report::count(yibao.index_bytes as f64),
            yibao.index_bytes as f64 / yibao.raw_record_bytes.max(1) as f64,
            report::count(yibao.space.disk_bytes.saturating_sub(yibao.sled_bytes + yibao.index_bytes) as f64),
        ),
        format!(
            "yibao stores {} blocks of {} bytes ({:.2}× raw: records plus lengths, SM3 hashes and block \
             headers, each block's records LZ4-compressed; {} bytes, {:.2}× raw, uncompressed); bytes on \
             disk / raw compares both stores with yibao's raw record bytes, and yibao's include its index \
             on disk (DIR/index).",
            report::count(yibao.n_blocks as f64),
            report::count(yibao.block_bytes as f64),
            yibao.block_bytes as f64 / yibao.raw_record_bytes.max(1) as f64,
            report::count(yibao.block_bytes_uncompressed as f64),
            yibao.block_bytes_uncompressed as f64 / yibao.raw_record_bytes.max(1) as f64,
        ),
    ];
    if yibao.blob_bytes > 0 {
        notes.push(format!(
            "{} of yibao's bytes on disk are sled blob files (log/blobs): sled 0.34 writes page images \
             above a quarter segment (128 KiB) there and never fsyncs them, and leaves of up to 16 blocks \
             of 100 KiB exceed that.",
            report::count(yibao.blob_bytes as f64)
        ));
    }
    if let Some(problem) = &yibao.verify_problem {
        notes.push(format!("verify found a problem: {problem}"));
    }
    notes
}

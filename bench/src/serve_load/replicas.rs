//! `yibao-bench replicas`: several `yibao serve` processes on one
//! PostgreSQL database. A generated year is imported into a throwaway
//! PostgreSQL (initdb in a temporary directory, 127.0.0.1, stopped at the
//! end); then, in one run: coverage lookups per second from one replica,
//! from two at once (the ratio is the figure), and the replication lag — a
//! payment posted to the first replica, timed until the second one's
//! coverage card shows it (p50, p99, max).
//!
//! Everything shares this machine's cores: the database, the replicas and
//! the load generator (tokio clients on one thread per replica).

use super::{
    client, gather, payment_json, write_facts, Generator, Load, Phase, Server, Work, CHANNEL_TOKEN, OFFICE_TOKEN,
};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
pub struct Replicas {
    pub persons: u64,
    pub seed: u64,
    /// Lookups of each phase (split between the replicas of the phase).
    pub lookups: u64,
    /// Connections per replica.
    pub connections: usize,
    /// Payments timed for the lag.
    pub posts: u64,
    pub phase_seconds: u64,
}

/// A `yibao serve` child on the database (stopped when dropped).
fn replica(yibao: &Path, url: &str, data: &Path, tokens: &Path) -> Result<Server> {
    Server::start_on(yibao, Some(url), data, tokens)
}

/// Runs the whole measurement in `dir` and prints the table.
pub fn run(dir: &Path, replicas: &Replicas) -> Result<()> {
    let binaries = pgtest::find_binaries()
        .context("PostgreSQL (initdb, postgres) is not installed: install Debian's `postgresql` to run this bench")?;
    let server = crate::phase("start a throwaway PostgreSQL", || {
        pgtest::TempPostgres::start_with(&binaries).map_err(anyhow::Error::msg)
    })?;
    run_on(dir, &server, replicas)
}

/// [`run`] on a server already started (`yibao-bench pg` runs it after
/// the log's figures, on the same server).
pub fn run_on(dir: &Path, server: &pgtest::TempPostgres, replicas: &Replicas) -> Result<()> {
    let yibao = std::env::current_exe()?.with_file_name("yibao");
    if !yibao.exists() {
        bail!("{} not found: run `cargo build --release` first (it builds yibao next to yibao-bench)", yibao.display());
    }
    let url = server.create_database("ledger");
    let load = Load {
        persons: replicas.persons,
        seed: replicas.seed,
        lookups: replicas.lookups,
        mix_requests: 0,
        phase_seconds: replicas.phase_seconds,
        wrk_seconds: 0,
    };
    let facts = dir.join("facts.jsonl");
    let (ids, n_facts) = crate::phase("generate facts", || write_facts(&facts, &load))?;
    let ids: Arc<[String]> = ids.into();
    crate::phase("yibao init and import into PostgreSQL", || {
        yibao_on(&yibao, &url, &dir.join("import"), &["init"])?;
        yibao_on(&yibao, &url, &dir.join("import"), &["import", &facts.display().to_string()])
    })?;
    let tokens = super::write_tokens(dir)?;
    let first = crate::phase("start replica 1", || replica(&yibao, &url, &dir.join("replica-1"), &tokens))?;
    let work = |total: u64| Work {
        ids: Arc::clone(&ids),
        total,
        deadline: Instant::now() + Duration::from_secs(replicas.phase_seconds),
        posts: None,
        post_every: u64::MAX,
    };
    // A first pass warms the replica's cache and the database's buffers
    // alike for both phases.
    crate::phase("warm-up lookups", || drive_all(&[&first.addr], &work(ids.len() as u64), replicas.connections))?;
    let one = crate::phase("lookups, one replica", || {
        drive_all(&[&first.addr], &work(replicas.lookups), replicas.connections)
    })?;
    let second = crate::phase("start replica 2", || replica(&yibao, &url, &dir.join("replica-2"), &tokens))?;
    crate::phase("warm-up lookups on replica 2", || {
        drive_all(&[&second.addr], &work(ids.len() as u64), replicas.connections)
    })?;
    let two = crate::phase("lookups, two replicas", || {
        drive_all(&[&first.addr, &second.addr], &work(replicas.lookups), replicas.connections)
    })?;
    let lags = crate::phase("replication lag", || lag(&first.addr, &second.addr, &ids, replicas.posts))?;
    drop((first, second));
    print_table(replicas, n_facts, &one, &two, &lags);
    Ok(())
}

/// Lookups per second and errors of one phase.
struct Rate {
    per_second: f64,
    /// The share of the machine's cores busy meanwhile (database, replicas
    /// and load generator alike).
    machine_busy: Option<f64>,
    p99_ms: f64,
    errors: u64,
    first_error: Option<String>,
}

/// `work.total` lookups split over `addrs`, each driven by its own thread
/// of `connections` clients, all at once.
fn drive_all(addrs: &[&str], work: &Work, connections: usize) -> Result<Rate> {
    let cpu_before = super::cpu::sample(std::process::id());
    let started = Instant::now();
    let share = Work { total: work.total / addrs.len() as u64, ..work.clone() };
    let phases: Vec<Result<Phase>> = std::thread::scope(|scope| {
        let runs: Vec<_> = addrs
            .iter()
            .map(|addr| {
                let share = share.clone();
                scope.spawn(move || {
                    let begun = Instant::now();
                    let (seen, capped) = client::drive(addr, &share, connections)?;
                    Ok(gather("lookups", Generator::Tokio, &share, connections, seen, begun.elapsed(), capped))
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a load thread panicked"))))
            .collect()
    });
    let elapsed = started.elapsed();
    let machine_busy = super::cpu::machine_busy(cpu_before, super::cpu::sample(std::process::id()));
    let mut rate = Rate { per_second: 0.0, machine_busy, p99_ms: 0.0, errors: 0, first_error: None };
    let mut n_done = 0;
    for phase in phases {
        let phase = phase?;
        n_done += phase.all.n_appends;
        rate.p99_ms = rate.p99_ms.max(phase.all.latency_ms_p99);
        rate.errors += phase.errors;
        rate.first_error = rate.first_error.or(phase.first_error);
    }
    rate.per_second = n_done as f64 / elapsed.as_secs_f64();
    Ok(rate)
}

/// Posts `n` payments to `writer`, each timed from its acknowledgement
/// until `reader`'s coverage card of the person changes.
fn lag(writer: &str, reader: &str, ids: &[String], n: u64) -> Result<Vec<Duration>> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let tag = format!("{:x}", since_epoch.as_nanos() as u64);
    let mut lags = Vec::with_capacity(n as usize);
    for k in 0..n {
        let id = &ids[(k.wrapping_mul(104_729) % ids.len() as u64) as usize];
        let before = card(&agent, reader, id)?;
        let channel_ref = format!("BENCH-LAG-{tag}-{k}");
        let answer = agent
            .post(&format!("http://{writer}/v1/events"))
            .set("Authorization", &format!("Bearer {CHANNEL_TOKEN}"))
            .set("Content-Type", "application/json")
            .send_string(&payment_json(id, &channel_ref));
        answer.map_err(|e| anyhow::anyhow!("posting a payment to replica 1: {e}"))?.into_string()?;
        let acknowledged = Instant::now();
        let give_up = acknowledged + Duration::from_secs(30);
        loop {
            if card(&agent, reader, id)? != before {
                lags.push(acknowledged.elapsed());
                break;
            }
            if Instant::now() > give_up {
                bail!("replica 2 did not show payment {channel_ref} to {id} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(lags)
}

fn card(agent: &ureq::Agent, addr: &str, id: &str) -> Result<String> {
    let answer = agent
        .get(&format!("http://{addr}/v1/coverage/{id}?year=2021"))
        .set("Authorization", &format!("Bearer {OFFICE_TOKEN}"))
        .call()
        .map_err(|e| anyhow::anyhow!("looking {id} up: {e}"))?;
    Ok(answer.into_string()?)
}

fn yibao_on(yibao: &Path, url: &str, data: &Path, args: &[&str]) -> Result<()> {
    let output =
        Command::new(yibao).arg("--store").arg(url).arg("--data").arg(data).args(args).stdin(Stdio::null()).output()?;
    if !output.status.success() {
        bail!("yibao {:?} failed ({}): {}", args, output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn print_table(replicas: &Replicas, n_facts: u64, one: &Rate, two: &Rate, lags: &[Duration]) {
    let mut sorted = lags.to_vec();
    sorted.sort_unstable();
    println!();
    println!(
        "## Replicas on one PostgreSQL ({} persons, {n_facts} facts; {} connections per replica)",
        replicas.persons, replicas.connections
    );
    println!();
    println!("| measure | figure |");
    println!("|---|---:|");
    let busy = |rate: &Rate| rate.machine_busy.map_or("?".to_string(), |busy| format!("{:.0} %", busy * 100.0));
    println!(
        "| lookups/s, one replica (p99; the machine's cores busy) | {:.0} ({:.1} ms; {}) |",
        one.per_second,
        one.p99_ms,
        busy(one)
    );
    println!(
        "| lookups/s, two replicas (p99; the machine's cores busy) | {:.0} ({:.1} ms; {}) |",
        two.per_second,
        two.p99_ms,
        busy(two)
    );
    println!("| two / one | {:.2}× (target ≥ 1.6×) |", two.per_second / one.per_second.max(1e-9));
    println!(
        "| lag, payment acknowledged by replica 1 → card changed on replica 2: p50 / p99 / max ({} payments) | {:.1} / {:.1} / {:.1} ms |",
        sorted.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    for (name, rate) in [("one replica", one), ("two replicas", two)] {
        if rate.errors > 0 {
            println!("\n{name}: {} errors, first: {}", rate.errors, rate.first_error.as_deref().unwrap_or("?"));
        }
    }
}

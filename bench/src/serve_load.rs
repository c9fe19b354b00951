//! `yibao-bench serve`: `yibao serve` over HTTP on loopback, driven by a
//! bounded load: coverage lookups at several concurrencies, then mixes of
//! lookups and durable payment posts, then a check that every acknowledged
//! post is in the log once the server stopped.
//!
//! The ledger is built through the `yibao` binary (`init`, `import`) from
//! generated facts (六盘水 2021), and the server runs as a child process.
//! The load generators run on the same machine and share its cores with
//! the server, so what a generator costs per request is taken from the
//! server: three are measured in the same run. `ureq` (a blocking client,
//! one OS thread per client) is the peer the others are compared with;
//! `tokio` (hand-written HTTP/1.1 on one async thread, `client`) and `wrk`
//! (`wrk`) cost far less per request, so their figures are closer to the
//! server's own. The mixes run on the ureq and tokio clients, which check
//! every acknowledgement.

mod client;
mod cpu;
pub mod replicas;
mod wrk;

use crate::figures::AppendFigures;
use crate::report::count;
use anyhow::{bail, Context, Result};
use ledger::sync::lock_plain;
use ledger::{Event, OpenMode, SledLog};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Targets of the issue, for comparison only: never a failure.
const LOOKUP_TARGET_PER_S: f64 = 30_000.0;
const LOOKUP_TARGET_P99_MS: f64 = 10.0;
const POST_TARGET_PER_S: f64 = 5_000.0;
/// Clients of the ureq lookup phases (one OS thread each).
const LOOKUP_CONCURRENCIES: [usize; 4] = [1, 8, 32, 64];
/// Connections of the tokio and wrk lookup phases.
const FAST_LOOKUP_CONCURRENCIES: [usize; 4] = [1, 8, 64, 256];
/// Clients of the ureq mix, and of the tokio mixes: more posts in flight
/// let group commit merge more of them per fdatasync.
const MIX_CONCURRENCY: usize = 32;
const FAST_MIX_CONCURRENCIES: [usize; 3] = [32, 128, 256];
/// One request in this many of the mix is a payment post.
const POST_EVERY: u64 = 10;
/// Clients of the phase that only posts.
const POSTS_ONLY_CONCURRENCY: usize = 64;
const OFFICE_TOKEN: &str = "bench-office-token-0123456789";
const CHANNEL_TOKEN: &str = "bench-channel-token-0123456789";

/// What to run: sizes and caps.
pub struct Load {
    pub persons: u64,
    pub seed: u64,
    /// Lookups at each concurrency.
    pub lookups: u64,
    /// Requests of the mix.
    pub mix_requests: u64,
    /// Cap on each load phase: it stops at its count or at this time.
    pub phase_seconds: u64,
    /// Length of each wrk phase.
    pub wrk_seconds: u64,
}

/// Who sent the requests of a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Generator {
    /// Blocking ureq, one OS thread per client: the peer.
    Ureq,
    /// Async HTTP/1.1 clients on one tokio thread.
    Tokio,
    Wrk,
}

impl Generator {
    fn label(self) -> &'static str {
        match self {
            Generator::Ureq => "ureq",
            Generator::Tokio => "tokio",
            Generator::Wrk => "wrk",
        }
    }
}

/// What a load phase asks of its clients.
#[derive(Clone)]
pub struct Work {
    ids: Arc<[String]>,
    total: u64,
    deadline: Instant,
    /// With a run tag: every `post_every`th request posts a new payment.
    posts: Option<String>,
    post_every: u64,
}

impl Work {
    /// Spread over the persons without repeating neighbours.
    fn id(&self, index: u64) -> &str {
        &self.ids[(index.wrapping_mul(7_919) % self.ids.len() as u64) as usize]
    }
}

/// One load phase's outcome.
struct Phase {
    name: String,
    generator: Generator,
    all: AppendFigures,
    /// Payment posts acknowledged (2xx), with their latencies.
    posts: Option<AppendFigures>,
    errors: u64,
    first_error: Option<String>,
    capped: bool,
    acknowledged_refs: Vec<String>,
    usage: Option<cpu::Usage>,
}

/// The server child: killed when dropped, whatever happened.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(yibao: &Path, data: &Path, tokens: &Path) -> Result<Server> {
        Server::start_on(yibao, None, data, tokens)
    }

    /// A server on the store `store` (`--store URL`; none: sled in `data`).
    fn start_on(yibao: &Path, store: Option<&str>, data: &Path, tokens: &Path) -> Result<Server> {
        let mut command = Command::new(yibao);
        if let Some(url) = store {
            command.arg("--store").arg(url);
        }
        let mut child = command
            .arg("--data")
            .arg(data)
            .args(["serve", "--addr", "127.0.0.1:0", "--tokens"])
            .arg(tokens)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} serve", yibao.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        // Owned by the guard from here on: an error below still kills it.
        let mut server = Server { child, addr: String::new() };
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first).context("reading the server's first line")?;
        let Some(addr) = first.trim().strip_prefix("listening on ") else {
            bail!("the server's first line was {:?}, not `listening on ADDR`", first.trim());
        };
        server.addr = addr.to_string();
        // Drain whatever else it prints so that it never blocks on a pipe.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        Ok(server)
    }

    /// SIGTERM (in-flight requests finish, the checkpoint is saved), then
    /// a kill if it has not exited within a minute.
    fn stop(&mut self) -> Result<String> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(format!("exited after SIGTERM ({status})"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok("killed: no exit within 60 s of SIGTERM".to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One binary's run: its phases and what it printed at the end.
struct Measured {
    phases: Vec<Phase>,
    stopped: String,
    check: String,
    wrk_note: Option<String>,
}

/// Runs the load against the `yibao` next to this binary; with `against`,
/// first against that binary too (an earlier build), each on its own copy
/// of the ledger imported by itself, and prints both and their ratios.
pub fn run(dir: &Path, load: &Load, against: Option<&Path>) -> Result<()> {
    let yibao = std::env::current_exe()?.with_file_name("yibao");
    if !yibao.exists() {
        bail!("{} not found: run `cargo build --release` first (it builds yibao next to yibao-bench)", yibao.display());
    }
    if let Some(peer) = against {
        if !peer.exists() {
            bail!("--against {}: no such file; give the path of another yibao binary", peer.display());
        }
    }
    let facts = dir.join("facts.jsonl");
    let (ids, n_facts) = crate::phase("generate facts", || write_facts(&facts, load))?;
    let ids: Arc<[String]> = ids.into();
    let peer = match against {
        Some(peer) => Some(measure(peer, &dir.join("peer"), &facts, &ids, load)?),
        None => None,
    };
    let this = measure(&yibao, &dir.join("this"), &facts, &ids, load)?;
    if let (Some(peer), Some(path)) = (&peer, against) {
        println!("== peer: {}", path.display());
        print_table(load, ids.len(), n_facts, peer);
        println!();
        println!("== this build: {}", yibao.display());
    }
    print_table(load, ids.len(), n_facts, &this);
    if let Some(peer) = &peer {
        print_comparison(&peer.phases, &this.phases);
    }
    Ok(())
}

/// Each phase of this build against the same phase of the peer, measured
/// in the same run.
fn print_comparison(peer: &[Phase], this: &[Phase]) {
    println!();
    println!("this build against the peer, phase by phase (req/s; ratio > 1: this build is faster):");
    println!("{:<40} {:<6} {:>10} {:>10} {:>7}", "phase", "client", "peer", "this", "ratio");
    for phase in this {
        let Some(before) = peer.iter().find(|p| p.name == phase.name && p.generator == phase.generator) else {
            continue;
        };
        let rate =
            |p: &Phase| p.posts.as_ref().filter(|_| p.name.starts_with("posts only")).unwrap_or(&p.all).appends_per_s;
        println!(
            "{:<40} {:<6} {:>10} {:>10} {:>7.2}",
            phase.name,
            phase.generator.label(),
            count(rate(before)),
            count(rate(phase)),
            rate(phase) / rate(before).max(1e-9)
        );
    }
}

/// Imports the facts with `yibao` into `dir`, serves them, runs every phase.
fn measure(yibao: &Path, dir: &Path, facts: &Path, ids: &Arc<[String]>, load: &Load) -> Result<Measured> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    crate::phase(&format!("{} init and import", yibao.display()), || {
        run_yibao(yibao, &data, &["init".as_ref()])?;
        run_yibao(yibao, &data, &["import".as_ref(), facts.as_os_str()])
    })?;
    let tokens = write_tokens(dir)?;
    let mut server = crate::phase("start yibao serve", || Server::start(yibao, &data, &tokens))?;
    let addr = server.addr.clone();
    let base = format!("http://{addr}");
    let cap = Duration::from_secs(load.phase_seconds);
    let work = |total: u64, posts: Option<&str>| Work {
        ids: Arc::clone(ids),
        total,
        deadline: Instant::now() + cap,
        posts: posts.map(str::to_string),
        post_every: POST_EVERY,
    };
    let server_pid = server.child.id();
    let mut phases = Vec::new();
    // Runs a phase, taking note of the CPU it used.
    let measured = |name: &str, run: &mut dyn FnMut() -> Result<Phase>| {
        let before = cpu::sample(server_pid);
        let mut phase = crate::phase(name, run)?;
        phase.usage = cpu::usage(before, cpu::sample(server_pid));
        Ok::<_, anyhow::Error>(phase)
    };
    for concurrency in LOOKUP_CONCURRENCIES {
        let name = format!("lookups, {concurrency} client(s)");
        let phase = measured(&format!("{name} (ureq)"), &mut || {
            Ok(drive_ureq(&name, &base, &work(load.lookups, None), concurrency))
        })?;
        phases.push(phase);
    }
    for concurrency in FAST_LOOKUP_CONCURRENCIES {
        let name = format!("lookups, {concurrency} client(s)");
        let phase = measured(&format!("{name} (tokio)"), &mut || {
            drive_tokio(&name, &addr, &work(load.lookups, None), concurrency)
        })?;
        phases.push(phase);
    }
    let wrk_note = if wrk::available() {
        let script = wrk::Script::write(dir, ids)?;
        for concurrency in FAST_LOOKUP_CONCURRENCIES {
            let name = format!("lookups, {concurrency} client(s)");
            let seconds = Duration::from_secs(load.wrk_seconds.min(load.phase_seconds));
            let phase = measured(&format!("{name} (wrk)"), &mut || {
                let run = wrk::lookups(&script, &addr, concurrency, seconds)?;
                Ok(Phase {
                    name: name.clone(),
                    generator: Generator::Wrk,
                    all: run.figures,
                    posts: None,
                    errors: run.errors,
                    first_error: (run.errors > 0).then(|| "wrk counted errors (non-2xx, socket, timeout)".to_string()),
                    capped: false,
                    acknowledged_refs: Vec::new(),
                    usage: None,
                })
            })?;
            phases.push(phase);
        }
        None
    } else {
        Some(format!("wrk not found: its phases were skipped; install it with {}", wrk::INSTALL))
    };
    // Unique channel refs per run: the ledger is new, but the tag keeps them
    // apart from anything else that might be in it.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let run_tag = format!("{:x}", since_epoch.as_nanos() as u64 ^ u64::from(std::process::id()));
    let name = format!("mix 90/10 lookups/posts, {MIX_CONCURRENCY} clients");
    let mix = measured(&format!("{name} (ureq)"), &mut || {
        Ok(drive_ureq(&name, &base, &work(load.mix_requests, Some(&format!("{run_tag}-u"))), MIX_CONCURRENCY))
    })?;
    phases.push(mix);
    for concurrency in FAST_MIX_CONCURRENCIES {
        let name = format!("mix 90/10 lookups/posts, {concurrency} clients");
        let tag = format!("{run_tag}-t{concurrency}");
        let mix = measured(&format!("{name} (tokio)"), &mut || {
            drive_tokio(&name, &addr, &work(load.mix_requests, Some(&tag)), concurrency)
        })?;
        phases.push(mix);
    }
    // What the durable write path takes without lookups beside it.
    let name = format!("posts only, {POSTS_ONLY_CONCURRENCY} clients");
    let tag = format!("{run_tag}-p");
    let posts_only = measured(&format!("{name} (tokio)"), &mut || {
        let mut only = work(load.mix_requests, Some(&tag));
        only.post_every = 1;
        drive_tokio(&name, &addr, &only, POSTS_ONLY_CONCURRENCY)
    })?;
    phases.push(posts_only);
    let stopped = crate::phase("stop the server", || server.stop())?;
    drop(server);
    let acknowledged: Vec<&str> =
        phases.iter().flat_map(|phase| phase.acknowledged_refs.iter().map(String::as_str)).collect();
    let check = crate::phase("check acknowledged posts in the log", || check_log(&data, &acknowledged))?;
    Ok(Measured { phases, stopped, check, wrk_note })
}

/// The bench's office and channel tokens, in `dir/tokens.toml`.
fn write_tokens(dir: &Path) -> Result<std::path::PathBuf> {
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"bench-office\"\ntoken = \"{OFFICE_TOKEN}\"\nrole = \"office\"\n\n\
             [[token]]\nname = \"bench-channel\"\ntoken = \"{CHANNEL_TOKEN}\"\nrole = \"channel\"\n\
             channels = [\"wechat\"]\n"
        ),
    )?;
    // The service refuses a tokens file that others may read.
    #[cfg(unix)]
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(tokens)
}

/// Writes the generated facts as import lines; returns the resident IDs of
/// the registered persons (not pre-registered newborns) and the fact count.
fn write_facts(path: &Path, load: &Load) -> Result<(Vec<String>, u64)> {
    crate::scale::write_facts(path, load.seed, load.persons, |_| true)
}

fn run_yibao(yibao: &Path, data: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let output = Command::new(yibao).arg("--data").arg(data).args(args).stdin(Stdio::null()).output()?;
    if !output.status.success() {
        bail!("yibao {:?} failed ({}): {}", args, output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// What one client saw.
#[derive(Default)]
pub struct Seen {
    latencies: Vec<Duration>,
    post_latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    acknowledged_refs: Vec<String>,
}

/// The phase from what its clients saw over `elapsed`.
fn gather(
    name: &str,
    generator: Generator,
    work: &Work,
    concurrency: usize,
    seen: Vec<Seen>,
    elapsed: Duration,
    capped: bool,
) -> Phase {
    let mut all = Seen::default();
    for mine in seen {
        all.latencies.extend(mine.latencies);
        all.post_latencies.extend(mine.post_latencies);
        all.errors += mine.errors;
        all.acknowledged_refs.extend(mine.acknowledged_refs);
        if all.first_error.is_none() {
            all.first_error = mine.first_error;
        }
    }
    Phase {
        name: name.to_string(),
        generator,
        all: AppendFigures::new(concurrency, all.latencies, elapsed),
        posts: work.posts.as_ref().map(|_| AppendFigures::new(concurrency, all.post_latencies, elapsed)),
        errors: all.errors,
        first_error: all.first_error,
        capped,
        acknowledged_refs: all.acknowledged_refs,
        usage: None,
    }
}

/// The work from `concurrency` async clients on one thread of this process.
fn drive_tokio(name: &str, addr: &str, work: &Work, concurrency: usize) -> Result<Phase> {
    let started = Instant::now();
    let (seen, capped) = client::drive(addr, work, concurrency)?;
    Ok(gather(name, Generator::Tokio, work, concurrency, seen, started.elapsed(), capped))
}

/// The work from `concurrency` threads, each with its own keep-alive ureq
/// agent.
fn drive_ureq(name: &str, base: &str, work: &Work, concurrency: usize) -> Phase {
    let next = AtomicU64::new(0);
    let seen = Mutex::new(Vec::new());
    let started = Instant::now();
    let capped = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                let mut mine = Seen::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= work.total {
                        break;
                    }
                    if Instant::now() >= work.deadline {
                        capped.store(1, Ordering::Relaxed);
                        break;
                    }
                    let id = work.id(index);
                    let sent = Instant::now();
                    let (outcome, post_ref) = match work.posts.as_deref() {
                        Some(tag) if index.is_multiple_of(work.post_every) => {
                            let channel_ref = format!("BENCH-{tag}-{index}");
                            (post_payment(&agent, base, id, &channel_ref), Some(channel_ref))
                        }
                        _ => (lookup(&agent, base, id), None),
                    };
                    let latency = sent.elapsed();
                    match outcome {
                        Ok(()) => {
                            mine.latencies.push(latency);
                            if let Some(channel_ref) = post_ref {
                                mine.post_latencies.push(latency);
                                mine.acknowledged_refs.push(channel_ref);
                            }
                        }
                        Err(error) => {
                            mine.errors += 1;
                            mine.first_error.get_or_insert(error);
                        }
                    }
                }
                lock_plain(&seen).push(mine);
            });
        }
    });
    let elapsed = started.elapsed();
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    gather(name, Generator::Ureq, work, concurrency, seen, elapsed, capped.load(Ordering::Relaxed) == 1)
}

fn lookup(agent: &ureq::Agent, base: &str, id: &str) -> Result<(), String> {
    let answer = agent
        .get(&format!("{base}/v1/coverage/{id}?year=2021"))
        .set("Authorization", &format!("Bearer {OFFICE_TOKEN}"))
        .call();
    finish(answer)
}

/// A payment of 1 yuan for the person's 2021, tagged by its channel ref.
fn payment_json(id: &str, channel_ref: &str) -> String {
    serde_json::json!({
        "type": "payment_received", "v": 1, "person": id, "coverage_year": 2021, "amount": "1.00",
        "channel": "wechat", "channel_ref": channel_ref, "paid_at": "2021-06-01 10:00:00",
    })
    .to_string()
}

fn post_payment(agent: &ureq::Agent, base: &str, id: &str, channel_ref: &str) -> Result<(), String> {
    let answer = agent
        .post(&format!("{base}/v1/events"))
        .set("Authorization", &format!("Bearer {CHANNEL_TOKEN}"))
        .set("Content-Type", "application/json")
        .send_string(&payment_json(id, channel_ref));
    finish(answer)
}

/// Reads the body to the end (so the connection is kept) and maps any
/// status but 2xx to an error.
fn finish(answer: Result<ureq::Response, ureq::Error>) -> Result<(), String> {
    match answer {
        Ok(response) => response.into_string().map(|_| ()).map_err(|e| format!("reading the answer: {e}")),
        Err(ureq::Error::Status(status, response)) => {
            Err(format!("HTTP {status}: {}", response.into_string().unwrap_or_default()))
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Opens the stopped server's ledger and looks for every acknowledged
/// post's channel ref.
fn check_log(data: &Path, acknowledged: &[&str]) -> Result<String> {
    let log = SledLog::open(data, OpenMode::Existing).context("opening the ledger")?;
    let mut found = HashSet::new();
    log.scan(1, u64::MAX, |envelope| {
        if let Event::PaymentReceivedV1(payment) = envelope.event {
            if payment.channel_ref.starts_with("BENCH-") {
                found.insert(payment.channel_ref);
            }
        }
        Ok(())
    })?;
    let missing = acknowledged.iter().filter(|channel_ref| !found.contains(**channel_ref)).count();
    Ok(if missing == 0 {
        format!(
            "all {} acknowledged posts are in the log after the server stopped ({} bench payments found)",
            count(acknowledged.len() as f64),
            count(found.len() as f64)
        )
    } else {
        format!("MISSING: {missing} of {} acknowledged posts are not in the log", count(acknowledged.len() as f64))
    })
}

fn print_table(load: &Load, n_ids: usize, n_facts: u64, measured: &Measured) {
    let Measured { phases, stopped, check, wrk_note } = measured;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "yibao serve over HTTP on loopback: {} persons ({} facts imported), {} looked up",
        count(load.persons as f64),
        count(n_facts as f64),
        count(n_ids as f64)
    );
    println!(
        "NOTE: the load generators run on this machine and share its {cores} core(s) with the server; \
         the figures are a floor, the higher the cheaper the generator (ureq: one OS thread per client; \
         tokio: async, one thread; wrk: C, epoll)."
    );
    println!(
        "srv µs: the server's CPU time per answered request (all its threads); other: the share of all cores \
         other processes used meanwhile (high: the phase's rates are low for that reason)."
    );
    if let Some(note) = wrk_note.as_deref() {
        println!("NOTE: {note}");
    }
    println!();
    println!(
        "{:<40} {:<6} {:>7} {:>10} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "phase", "client", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms", "max ms", "srv µs", "other"
    );
    for phase in phases {
        let f = &phase.all;
        let (server_us, other) = match phase.usage {
            Some(usage) => (
                format!("{:.1}", usage.server_seconds * 1e6 / (f.n_appends.max(1) as f64)),
                format!("{:.0} %", usage.other_share * 100.0),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{:<40} {:<6} {:>7} {:>10} {:>7} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>6}{}",
            phase.name,
            phase.generator.label(),
            f.clients,
            count(f.n_appends as f64),
            phase.errors,
            count(f.appends_per_s),
            f.latency_ms_p50,
            f.latency_ms_p99,
            f.latency_ms_max,
            server_us,
            other,
            if phase.capped { "  (stopped at the time cap)" } else { "" }
        );
        if let Some(posts) = &phase.posts {
            println!(
                "{:<40} {:<6} {:>7} {:>10} {:>7} {:>9} {:>8.2} {:>8.2} {:>8.2}",
                "  of which acknowledged payment posts",
                phase.generator.label(),
                posts.clients,
                count(posts.n_appends as f64),
                "",
                count(posts.appends_per_s),
                posts.latency_ms_p50,
                posts.latency_ms_p99,
                posts.latency_ms_max
            );
        }
    }
    println!();
    println!(
        "targets (for comparison, never a failure): per generator the best rate (for lookups, the best with p99 \
         under the target when one is), ratio to the ureq peer's:"
    );
    let best = |generator: Generator, mix: bool| {
        let candidates = || {
            phases.iter().filter(move |p| {
                p.generator == generator && p.posts.is_some() == mix && (!mix || p.name.starts_with("mix"))
            })
        };
        let within = |p: &&Phase| mix || p.all.latency_ms_p99 < LOOKUP_TARGET_P99_MS;
        let pool: Vec<&Phase> = match candidates().filter(within).count() {
            0 => candidates().collect(),
            _ => candidates().filter(within).collect(),
        };
        pool.into_iter().max_by(|a, b| {
            let rate = |p: &Phase| p.posts.as_ref().unwrap_or(&p.all).appends_per_s;
            rate(a).partial_cmp(&rate(b)).unwrap_or(std::cmp::Ordering::Equal)
        })
    };
    let peer_lookups = best(Generator::Ureq, false).map_or(0.0, |p| p.all.appends_per_s);
    for generator in [Generator::Ureq, Generator::Tokio, Generator::Wrk] {
        if let Some(best) = best(generator, false) {
            println!(
                "  lookups ≥ {}/s with p99 < {LOOKUP_TARGET_P99_MS} ms — {:<5}: {}/s at {} clients, p99 {:.2} ms ({:.2}× ureq)",
                count(LOOKUP_TARGET_PER_S),
                generator.label(),
                count(best.all.appends_per_s),
                best.all.clients,
                best.all.latency_ms_p99,
                best.all.appends_per_s / peer_lookups.max(1e-9)
            );
        }
    }
    let peer_posts = best(Generator::Ureq, true).and_then(|p| p.posts.as_ref()).map_or(0.0, |p| p.appends_per_s);
    for generator in [Generator::Ureq, Generator::Tokio] {
        if let Some(posts) = best(generator, true).and_then(|p| p.posts.as_ref()) {
            println!(
                "  acknowledged durable posts in the mix ≥ {}/s — {:<5}: {}/s at {} clients, p99 {:.2} ms ({:.2}× ureq)",
                count(POST_TARGET_PER_S),
                generator.label(),
                count(posts.appends_per_s),
                posts.clients,
                posts.latency_ms_p99,
                posts.appends_per_s / peer_posts.max(1e-9)
            );
        }
    }
    if let Some(posts) = phases.iter().find(|p| p.name.starts_with("posts only")).and_then(|p| p.posts.as_ref()) {
        println!(
            "  durable posts alone (no lookups beside them) — tokio: {}/s at {} clients, p99 {:.2} ms",
            count(posts.appends_per_s),
            posts.clients,
            posts.latency_ms_p99
        );
    }
    println!();
    println!("server: {stopped}");
    println!("durability check: {check}");
    for phase in phases {
        if let Some(error) = &phase.first_error {
            println!("first error in {} ({}): {error}", phase.name, phase.generator.label());
        }
    }
}

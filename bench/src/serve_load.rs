//! `yibao-bench serve`: `yibao serve` over HTTP on loopback, driven by a
//! bounded load from this process: coverage lookups at several
//! concurrencies, then a mix of lookups and durable payment posts, then a
//! check that every acknowledged post is in the log once the server stopped.
//!
//! The ledger is built through the `yibao` binary (`init`, `import`) from
//! generated facts (六盘水 2021), and the server runs as a child process.
//! The load generator runs on the same machine and shares its cores with
//! the server: the figures are a floor, not the server's ceiling.

use crate::figures::AppendFigures;
use crate::report::count;
use anyhow::{bail, Context, Result};
use ledger::{Event, OpenMode, SledLog};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Targets of the issue, for comparison only: never a failure.
const LOOKUP_TARGET_PER_S: f64 = 30_000.0;
const LOOKUP_TARGET_P99_MS: f64 = 10.0;
const POST_TARGET_PER_S: f64 = 5_000.0;
const LOOKUP_CONCURRENCIES: [usize; 4] = [1, 8, 32, 64];
const MIX_CONCURRENCY: usize = 32;
/// One request in this many of the mix is a payment post.
const POST_EVERY: u64 = 10;
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
}

/// One load phase's outcome.
struct Phase {
    name: String,
    all: AppendFigures,
    /// Payment posts acknowledged (2xx), with their latencies.
    posts: Option<AppendFigures>,
    errors: u64,
    first_error: Option<String>,
    capped: bool,
    acknowledged_refs: Vec<String>,
}

/// The server child: killed when dropped, whatever happened.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(yibao: &Path, data: &Path, tokens: &Path) -> Result<Server> {
        let mut child = Command::new(yibao)
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

pub fn run(dir: &Path, load: &Load) -> Result<()> {
    let yibao = std::env::current_exe()?.with_file_name("yibao");
    if !yibao.exists() {
        bail!("{} not found: run `cargo build --release` first (it builds yibao next to yibao-bench)", yibao.display());
    }
    let data = dir.join("data");
    let (ids, n_facts) = crate::phase("generate facts", || write_facts(&dir.join("facts.jsonl"), load))?;
    crate::phase("yibao init and import", || {
        run_yibao(&yibao, &data, &["init".as_ref()])?;
        run_yibao(&yibao, &data, &["import".as_ref(), dir.join("facts.jsonl").as_os_str()])
    })?;
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"bench-office\"\ntoken = \"{OFFICE_TOKEN}\"\nrole = \"office\"\n\n\
             [[token]]\nname = \"bench-channel\"\ntoken = \"{CHANNEL_TOKEN}\"\nrole = \"channel\"\n"
        ),
    )?;
    let mut server = crate::phase("start yibao serve", || Server::start(&yibao, &data, &tokens))?;
    let base = format!("http://{}", server.addr);
    let cap = Duration::from_secs(load.phase_seconds);
    let mut phases = Vec::new();
    for concurrency in LOOKUP_CONCURRENCIES {
        let name = format!("lookups, {concurrency} client(s)");
        let phase = crate::phase(&name, || Ok(drive(&name, &base, &ids, concurrency, load.lookups, cap, None)))?;
        phases.push(phase);
    }
    let name = format!("mix 90 % lookups / 10 % posts, {MIX_CONCURRENCY} clients");
    // Unique channel refs per run: the ledger is new, but the tag keeps them
    // apart from anything else that might be in it.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let run_tag = format!("{:x}", since_epoch.as_nanos() as u64 ^ u64::from(std::process::id()));
    let mix =
        crate::phase(&name, || Ok(drive(&name, &base, &ids, MIX_CONCURRENCY, load.mix_requests, cap, Some(&run_tag))))?;
    let stopped = crate::phase("stop the server", || server.stop())?;
    drop(server);
    let check = crate::phase("check acknowledged posts in the log", || check_log(&data, &mix.acknowledged_refs))?;
    phases.push(mix);
    print_table(load, ids.len(), n_facts, &phases, &stopped, &check);
    Ok(())
}

/// Writes the generated facts as import lines; returns the resident IDs of
/// the registered persons (not pre-registered newborns) and the fact count.
fn write_facts(path: &Path, load: &Load) -> Result<(Vec<String>, u64)> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut ids = Vec::with_capacity(load.persons as usize);
    let mut n_facts = 0;
    for event in yibao::generate::facts(load.seed, load.persons) {
        if let Event::PersonRegisteredV1(registered) = &event {
            let id = registered.person.to_string();
            if !id.starts_with("other") {
                ids.push(id);
            }
        }
        serde_json::to_writer(&mut out, &yibao::facts::to_line(&event))?;
        out.write_all(b"\n")?;
        n_facts += 1;
    }
    out.flush()?;
    Ok((ids, n_facts))
}

fn run_yibao(yibao: &Path, data: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let output = Command::new(yibao).arg("--data").arg(data).args(args).stdin(Stdio::null()).output()?;
    if !output.status.success() {
        bail!("yibao {:?} failed ({}): {}", args, output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// What one client thread saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    post_latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    acknowledged_refs: Vec<String>,
}

/// `total` requests from `concurrency` threads (each with its own
/// keep-alive agent), stopping early at `cap`. With `posts`, every
/// `POST_EVERY`th request posts a new payment tagged with it.
fn drive(
    name: &str,
    base: &str,
    ids: &[String],
    concurrency: usize,
    total: u64,
    cap: Duration,
    posts: Option<&str>,
) -> Phase {
    let next = AtomicU64::new(0);
    let seen = Mutex::new(Vec::new());
    let started = Instant::now();
    let deadline = started + cap;
    let capped = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                let mut mine = Seen::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    if Instant::now() >= deadline {
                        capped.store(1, Ordering::Relaxed);
                        break;
                    }
                    // Spread over the persons without repeating neighbours.
                    let id = &ids[(index.wrapping_mul(7_919) % ids.len() as u64) as usize];
                    let sent = Instant::now();
                    let (outcome, post_ref) = match posts {
                        Some(tag) if index.is_multiple_of(POST_EVERY) => {
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
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(mine);
            });
        }
    });
    let elapsed = started.elapsed();
    let mut all = Seen::default();
    for mine in seen.into_inner().unwrap_or_else(|p| p.into_inner()) {
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
        all: AppendFigures::new(concurrency, all.latencies, elapsed),
        posts: posts.map(|_| AppendFigures::new(concurrency, all.post_latencies, elapsed)),
        errors: all.errors,
        first_error: all.first_error,
        capped: capped.load(Ordering::Relaxed) == 1,
        acknowledged_refs: all.acknowledged_refs,
    }
}

fn lookup(agent: &ureq::Agent, base: &str, id: &str) -> Result<(), String> {
    let answer = agent
        .get(&format!("{base}/v1/coverage/{id}?year=2021"))
        .set("Authorization", &format!("Bearer {OFFICE_TOKEN}"))
        .call();
    finish(answer)
}

fn post_payment(agent: &ureq::Agent, base: &str, id: &str, channel_ref: &str) -> Result<(), String> {
    let fact = serde_json::json!({
        "type": "payment_received", "v": 1, "person": id, "coverage_year": 2021, "amount": "1.00",
        "channel": "wechat", "channel_ref": channel_ref, "paid_at": "2021-06-01 10:00:00",
    });
    let answer = agent
        .post(&format!("{base}/v1/events"))
        .set("Authorization", &format!("Bearer {CHANNEL_TOKEN}"))
        .send_json(fact);
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
fn check_log(data: &Path, acknowledged: &[String]) -> Result<String> {
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
    let missing = acknowledged.iter().filter(|channel_ref| !found.contains(*channel_ref)).count();
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

fn print_table(load: &Load, n_ids: usize, n_facts: u64, phases: &[Phase], stopped: &str, check: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "yibao serve over HTTP on loopback: {} persons ({} facts imported), {} looked up",
        count(load.persons as f64),
        count(n_facts as f64),
        count(n_ids as f64)
    );
    println!(
        "NOTE: the load generator runs on this machine and shares its {cores} core(s) with the server; \
         the figures are a floor."
    );
    println!();
    println!(
        "{:<44} {:>7} {:>10} {:>7} {:>9} {:>8} {:>8} {:>8}",
        "phase", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for phase in phases {
        let f = &phase.all;
        println!(
            "{:<44} {:>7} {:>10} {:>7} {:>9} {:>8.2} {:>8.2} {:>8.2}{}",
            phase.name,
            f.clients,
            count(f.n_appends as f64),
            phase.errors,
            count(f.appends_per_s),
            f.latency_ms_p50,
            f.latency_ms_p99,
            f.latency_ms_max,
            if phase.capped { "  (stopped at the time cap)" } else { "" }
        );
        if let Some(posts) = &phase.posts {
            println!(
                "{:<44} {:>7} {:>10} {:>7} {:>9} {:>8.2} {:>8.2} {:>8.2}",
                "  of which acknowledged payment posts",
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
    println!("targets (for comparison, never a failure):");
    let best_lookups = phases
        .iter()
        .filter(|p| p.posts.is_none())
        .max_by(|a, b| a.all.appends_per_s.partial_cmp(&b.all.appends_per_s).unwrap_or(std::cmp::Ordering::Equal));
    if let Some(best) = best_lookups {
        println!(
            "  lookups: ≥ {}/s with p99 < {LOOKUP_TARGET_P99_MS} ms — best measured {}/s at {} clients, p99 {:.2} ms",
            count(LOOKUP_TARGET_PER_S),
            count(best.all.appends_per_s),
            best.all.clients,
            best.all.latency_ms_p99
        );
    }
    if let Some(posts) = phases.iter().find_map(|p| p.posts.as_ref()) {
        println!(
            "  acknowledged durable posts in the mix: ≥ {}/s — measured {}/s",
            count(POST_TARGET_PER_S),
            count(posts.appends_per_s)
        );
    }
    println!();
    println!("server: {stopped}");
    println!("durability check: {check}");
    for phase in phases {
        if let Some(error) = &phase.first_error {
            println!("first error in {}: {error}", phase.name);
        }
    }
}

//! `yibao-bench scale`: what each command costs as the ledger grows. For
//! each size, a generated prefecture-year (六盘水 2021, distinct persons per
//! seed) is imported by the `yibao` binary next to this one, then cold
//! processes are timed from start to exit with their peak RSS (their own
//! `VmHWM`, watched while they run): a coverage lookup for random persons, a page
//! of the log, verify, the auditor's replay, and `serve` until it listens,
//! with its RSS after a run of lookups. Bytes on disk per fact close each
//! row. Each size's year is one file, imported by one `yibao import` (in
//! chunks, whatever its size). A step that fails is reported in its cell
//! and the size goes on where it can.

use anyhow::{bail, Context, Result};
use ledger::Event;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What to run.
pub struct Scale {
    pub sizes: Vec<u64>,
    pub seed: u64,
    /// Cold lookups per size.
    pub lookups: usize,
    /// Lookups the service answers before its RSS is read.
    pub serve_lookups: usize,
    /// Measure again the ledgers an earlier run kept (`--keep`) under the
    /// same directory, without generating and importing them.
    pub again: bool,
}

/// One child's run: wall time, peak RSS, how it ended.
struct Run {
    seconds: f64,
    peak_rss_mb: f64,
    ok: bool,
    stderr: String,
}

/// Runs `yibao --data DATA ARGS…` to its end, with its peak RSS.
fn run(yibao: &Path, data: &Path, args: &[&str]) -> Result<Run> {
    let mut command = Command::new(yibao);
    command.arg("--data").arg(data).args(args);
    let finished = run_watched(&mut command)?;
    Ok(Run {
        seconds: finished.seconds,
        peak_rss_mb: finished.peak_rss_mb,
        ok: finished.ok,
        stderr: finished.stderr.trim().lines().last().unwrap_or("").to_string(),
    })
}

/// A child run to its end.
pub(crate) struct Finished {
    pub seconds: f64,
    /// The child's own high-water mark (`VmHWM`), read every 2 ms while
    /// it runs. Not the kernel's `ru_maxrss`: a spawned child's counts the
    /// parent's resident set it started from, and a bench parent can hold
    /// gigabytes.
    pub peak_rss_mb: f64,
    pub ok: bool,
    pub stderr: String,
}

/// Runs `command` (standard output discarded, standard error kept) to its
/// end, watching its peak RSS.
pub(crate) fn run_watched(command: &mut Command) -> Result<Finished> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a child process")?;
    let pid = child.id();
    let mut pipe = child.stderr.take().context("the child's stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let mut peak_kb = 0_u64;
    let status = loop {
        if let Some(kb) = high_water_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stderr = reader.join().unwrap_or_default();
    Ok(Finished {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mb: peak_kb as f64 / 1024.0,
        ok: status.success(),
        stderr,
    })
}

/// `VmHWM` of process `pid`, in KiB: its peak resident set so far.
fn high_water_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The generated facts `keep` keeps, as import lines in one file; returns
/// the resident IDs of the registered persons (not pre-registered
/// newborns) and the number of facts.
pub(crate) fn write_facts(
    file: &Path,
    seed: u64,
    persons: u64,
    keep: fn(&Event) -> bool,
) -> Result<(Vec<String>, u64)> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(file)?);
    let written = facts_to(&mut out, seed, persons, keep)?;
    out.flush()?;
    Ok(written)
}

/// [`write_facts`] to any writer (`std::io::sink()` for the IDs alone).
fn facts_to(out: &mut dyn Write, seed: u64, persons: u64, keep: fn(&Event) -> bool) -> Result<(Vec<String>, u64)> {
    let mut ids = Vec::with_capacity(persons as usize);
    let mut n_facts = 0;
    for event in yibao::generate::facts(seed, persons).filter(keep) {
        if let Event::PersonRegisteredV1(registered) = &event {
            let id = registered.person.to_string();
            if !id.starts_with("other") {
                ids.push(id);
            }
        }
        serde_json::to_writer(&mut *out, &yibao::facts::to_line(&event))?;
        out.write_all(b"\n")?;
        n_facts += 1;
    }
    Ok((ids, n_facts))
}

/// The `q`-quantile of `sorted` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Bytes of every file under `dir` (or of `dir`, a file).
pub(crate) fn bytes_under(dir: &Path) -> u64 {
    if dir.is_file() {
        return dir.metadata().map_or(0, |m| m.len());
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            let path = entry.path();
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => bytes_under(&path),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            }
        })
        .sum()
}

/// One size's figures, as printed.
struct Row {
    persons: u64,
    n_facts: u64,
    cells: Vec<(String, String)>,
}

fn cell(run: &Run, what: impl FnOnce(&Run) -> String) -> String {
    if run.ok {
        what(run)
    } else {
        format!("failed: {}", run.stderr)
    }
}

/// A day's collection: registrations, payments and subsidies. Another
/// seed's bindings and proxy applications would name the big year's
/// persons and applications under other facts, and be refused.
fn is_collection(event: &Event) -> bool {
    matches!(
        event,
        Event::PolicyPublishedV1(_)
            | Event::PersonRegisteredV1(_)
            | Event::PaymentReceivedV1(_)
            | Event::SubsidyGrantedV1(_)
    )
}

/// Persons of the facts imported onto each size's ledger afterwards
/// (about 2.1 facts each): what a day of collection adds.
const NEW_PERSONS: u64 = 5_000;

pub fn run_scale(dir: &Path, scale: &Scale) -> Result<()> {
    let yibao = std::env::current_exe()?.with_file_name("yibao");
    if !yibao.exists() {
        bail!("{} not found: run `cargo build --release` first (it builds yibao next to yibao-bench)", yibao.display());
    }
    let mut rows = Vec::new();
    for (index, &persons) in scale.sizes.iter().enumerate() {
        let seed = scale.seed.wrapping_add(index as u64);
        rows.push(one_size(&yibao, &dir.join(format!("size-{persons}")), persons, seed, scale)?);
    }
    print_rows(&rows, scale);
    Ok(())
}

fn one_size(yibao: &Path, dir: &Path, persons: u64, seed: u64, scale: &Scale) -> Result<Row> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    let label = format!("{persons} persons");
    let file = dir.join("facts.jsonl");
    if scale.again && data.exists() {
        return measure_again(yibao, dir, &data, persons, seed, scale);
    }
    let (ids, n_facts) =
        crate::phase(&format!("{label}: generate facts"), || write_facts(&file, seed, persons, |_| true))?;
    let mut cells = Vec::new();
    let init = run(yibao, &data, &["init"])?;
    if !init.ok {
        bail!("yibao init failed: {}", init.stderr);
    }
    let imported = crate::phase(&format!("{label}: import (one file)"), || {
        let imported = run(yibao, &data, &["import", &file.to_string_lossy()]);
        std::fs::remove_file(&file)?;
        imported
    })?;
    let import_cell = cell(&imported, |r| format!("{:.1} s, {:.0} MB (one file)", r.seconds, r.peak_rss_mb));
    cells.push(("import".into(), import_cell));
    // The first process after an import builds the checkpoints: not cold.
    let warm = crate::phase(&format!("{label}: first lookup (builds checkpoints)"), || {
        run(yibao, &data, &["coverage", ids.first().map_or("", String::as_str)])
    })?;
    cells.push(("first lookup".into(), cell(&warm, |r| format!("{:.2} s, {:.0} MB", r.seconds, r.peak_rss_mb))));
    later_steps(yibao, dir, &data, &ids, n_facts, seed, scale, &mut cells)?;
    Ok(Row { persons, n_facts, cells })
}

/// A ledger kept by an earlier run, measured again from its cold lookups
/// on (the IDs come from the same generator and seed).
fn measure_again(yibao: &Path, dir: &Path, data: &Path, persons: u64, seed: u64, scale: &Scale) -> Result<Row> {
    let label = format!("{persons} persons");
    let (ids, n_facts) = crate::phase(&format!("{label}: the IDs of the kept ledger"), || {
        facts_to(&mut std::io::sink(), seed, persons, |_| true)
    })?;
    let mut cells = vec![("import".to_string(), "(kept from an earlier run)".to_string())];
    let warm = run(yibao, data, &["coverage", ids.first().map_or("", String::as_str)])?;
    cells.push(("first lookup".into(), cell(&warm, |r| format!("{:.2} s, {:.0} MB", r.seconds, r.peak_rss_mb))));
    later_steps(yibao, dir, data, &ids, n_facts, seed.wrapping_add(1), scale, &mut cells)?;
    Ok(Row { persons, n_facts, cells })
}

/// The size a run is labelled with, from its registered residents.
fn n_facts_label(n_ids: usize) -> String {
    format!("~{n_ids}")
}

/// Everything after the import and the first lookup: cold lookups, a
/// day's new facts and the lookup after them, a page of the log, verify,
/// replay, the service, bytes on disk.
#[allow(clippy::too_many_arguments)]
fn later_steps(
    yibao: &Path,
    dir: &Path,
    data: &Path,
    ids: &[String],
    n_facts: u64,
    seed: u64,
    scale: &Scale,
    cells: &mut Vec<(String, String)>,
) -> Result<()> {
    let label = format!("{} persons", n_facts_label(ids.len()));
    let data = data.to_path_buf();
    let mut seconds = Vec::new();
    let mut peak = 0.0_f64;
    let mut failed = None;
    crate::phase(&format!("{label}: {} cold lookups", scale.lookups), || {
        for k in 0..scale.lookups {
            let id = &ids[(k.wrapping_mul(7_919) + 13) % ids.len().max(1)];
            let lookup = run(yibao, &data, &["coverage", id])?;
            if !lookup.ok {
                failed = Some(lookup.stderr.clone());
            }
            seconds.push(lookup.seconds);
            peak = peak.max(lookup.peak_rss_mb);
        }
        Ok(())
    })?;
    seconds.sort_by(f64::total_cmp);
    cells.push((
        "cold lookup p50 / p99, RSS".into(),
        match failed {
            Some(error) => format!("failed: {error}"),
            None => format!(
                "{:.0} / {:.0} ms, {:.0} MB",
                quantile(&seconds, 0.5) * 1e3,
                quantile(&seconds, 0.99) * 1e3,
                peak
            ),
        },
    ));
    // New facts on a ledger that has history: the writing open (its
    // indexes), and the first lookup after them (the store catches up).
    let more = dir.join("more.jsonl");
    let (more_ids, n_more) = write_facts(&more, seed.wrapping_add(1_000), NEW_PERSONS, is_collection)?;
    let appended = crate::phase(&format!("{label}: import {n_more} new facts"), || {
        run(yibao, &data, &["import", &more.to_string_lossy()])
    })?;
    std::fs::remove_file(&more)?;
    cells.push((
        format!("import {n_more} more facts"),
        cell(&appended, |r| format!("{:.2} s, {:.0} MB", r.seconds, r.peak_rss_mb)),
    ));
    let after = crate::phase(&format!("{label}: first lookup after them"), || {
        run(yibao, &data, &["coverage", more_ids.first().map_or("", String::as_str)])
    })?;
    cells.push((
        "first lookup after them".into(),
        cell(&after, |r| format!("{:.2} s, {:.0} MB", r.seconds, r.peak_rss_mb)),
    ));
    let middle = (n_facts / 2).max(1).to_string();
    let page = run(yibao, &data, &["log", "--from", &middle, "--limit", "10"])?;
    cells.push((
        "log --from N --limit 10".into(),
        cell(&page, |r| format!("{:.2} s, {:.0} MB", r.seconds, r.peak_rss_mb)),
    ));
    let verify = crate::phase(&format!("{label}: verify"), || run(yibao, &data, &["verify"]))?;
    cells.push((
        "verify".into(),
        cell(&verify, |r| format!("{} records/s", crate::report::count(n_facts as f64 / r.seconds.max(1e-9)))),
    ));
    let replay = crate::phase(&format!("{label}: replay"), || run(yibao, &data, &["replay", "--year", "2021"]))?;
    cells
        .push(("replay --year 2021".into(), cell(&replay, |r| format!("{:.1} s, {:.0} MB", r.seconds, r.peak_rss_mb))));
    let served = crate::phase(&format!("{label}: serve"), || serve(yibao, &data, ids, scale.serve_lookups))?;
    cells.push(("serve ready, RSS after lookups".into(), served));
    let bytes = bytes_under(&data);
    cells.push(("bytes on disk per fact".into(), format!("{:.0}", bytes as f64 / n_facts.max(1) as f64)));
    Ok(())
}

/// `yibao serve` until it listens, then `n_lookups` coverage lookups over
/// one keep-alive connection, then its RSS.
fn serve(yibao: &Path, data: &Path, ids: &[String], n_lookups: usize) -> Result<String> {
    let tokens = data.with_file_name("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nname = \"scale-office\"\ntoken = \"scale-office-token-0123456789\"\nrole = \"office\"\n",
    )?;
    #[cfg(unix)]
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let started = Instant::now();
    let mut child = Command::new(yibao)
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0", "--tokens"])
        .arg(&tokens)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let outcome = (|| -> Result<String> {
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first)?;
        let ready = started.elapsed().as_secs_f64();
        let Some(addr) = first.trim().strip_prefix("listening on ").map(str::to_string) else {
            bail!("the server's first line was {:?}", first.trim());
        };
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        let mut n_failed = 0;
        for k in 0..n_lookups {
            let id = &ids[(k.wrapping_mul(7_919) + 17) % ids.len().max(1)];
            let answer = agent
                .get(&format!("http://{addr}/v1/coverage/{id}?year=2021"))
                .set("Authorization", "Bearer scale-office-token-0123456789")
                .call();
            if answer.is_err() {
                n_failed += 1;
            }
        }
        let rss_mb = rss_of(child.id()).unwrap_or(f64::NAN);
        let failed = if n_failed > 0 { format!(" ({n_failed} failed)") } else { String::new() };
        Ok(format!("{ready:.2} s, {rss_mb:.0} MB after {n_lookups} lookups{failed}"))
    })();
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Resident set of process `pid` now, from `/proc`.
fn rss_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn print_rows(rows: &[Row], scale: &Scale) {
    println!(
        "yibao by ledger size: cold processes of the yibao binary timed from start to exit, with each one's own peak RSS \
         ({} cold lookups per size, serve RSS after {} lookups)",
        scale.lookups, scale.serve_lookups
    );
    for row in rows {
        println!();
        println!(
            "{} persons, {} facts",
            crate::report::count(row.persons as f64),
            crate::report::count(row.n_facts as f64)
        );
        for (name, value) in &row.cells {
            println!("  {name:<34} {value}");
        }
    }
}

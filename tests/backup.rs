//! `yibao backup` and `yibao restore BACKUP_DIR`: incremental segments
//! that restore to the live head, survive a kill at any moment, name a
//! damaged segment, refuse another ledger's backup, and continue with the
//! records of an export (or a salvage) that extend them.

use pgtest::TempPostgres;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::run::{ok, stderr, stdout, yibao};

const BIN: &str = env!("CARGO_BIN_EXE_yibao");

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A generated prefecture-year split in two files: the first `n_first`
/// facts (policy first) and the rest.
fn facts_in_two(dir: &Path, persons: &str, seed: &str, n_first: usize) -> (PathBuf, PathBuf) {
    let all = dir.join(format!("facts-{seed}.jsonl"));
    ok(yibao(dir, &["generate", "--persons", persons, "--seed", seed, "--out", text(&all)]));
    let lines: Vec<String> = std::fs::read_to_string(&all).expect("facts").lines().map(String::from).collect();
    assert!(lines.len() > n_first, "{} facts", lines.len());
    let (first, rest) = (dir.join(format!("first-{seed}.jsonl")), dir.join(format!("rest-{seed}.jsonl")));
    std::fs::write(&first, lines[..n_first].join("\n") + "\n").expect("write");
    std::fs::write(&rest, lines[n_first..].join("\n") + "\n").expect("write");
    (first, rest)
}

/// The head `verify` finds, as "POSITION HASH".
fn head_of(data: &Path) -> String {
    let said = ok(yibao(data, &["verify"]));
    let line = said.lines().find(|l| l.starts_with("OK: head ")).unwrap_or_else(|| panic!("{said}"));
    line["OK: head ".len()..].to_string()
}

/// The ledger's id, as `init` names it.
fn ledger_id(data: &Path) -> String {
    let said = ok(yibao(data, &["init"]));
    said.split("ledger ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("an id").to_string()
}

/// A ledger in `dir/name` holding `facts`.
fn ledger_with(dir: &Path, name: &str, facts: &Path) -> PathBuf {
    let data = dir.join(name);
    ok(yibao(&data, &["init"]));
    ok(yibao(&data, &["import", text(facts)]));
    data
}

/// No ledger there, or an empty one.
/// A ledger `live` holding the first `n_first` of a generated prefecture's
/// facts, the rest in a file, and where its backup goes, in `dir`.
struct Scene {
    dir: tempfile::TempDir,
    rest: PathBuf,
    live: PathBuf,
    backup: PathBuf,
}

fn scene(persons: &str, seed: &str, n_first: usize) -> Scene {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, rest) = facts_in_two(dir.path(), persons, seed, n_first);
    let live = ledger_with(dir.path(), "live", &first);
    let backup = dir.path().join("backup");
    Scene { dir, rest, live, backup }
}

fn holds_nothing(data: &Path) -> bool {
    !data.join("log").exists() || head_of(data).starts_with("0 ")
}

fn segments(backup: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(backup) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "ybk") && path.to_string_lossy().contains("segment-"))
        .collect();
    found.sort();
    found
}

#[test]
fn a_backup_then_more_then_a_backup_restores_to_the_live_head() {
    let Scene { dir, rest, live, backup } = scene("200", "3", 300);
    let said = ok(yibao(&live, &["backup", text(&backup), "--segment-bytes", "20000"]));
    assert!(said.contains("backed up positions 1..300 (300 records)"), "{said}");
    let n_first_segments = segments(&backup).len();
    assert!(n_first_segments > 1, "a long backup is several segments: {n_first_segments}");
    let again = ok(yibao(&live, &["backup", text(&backup)]));
    assert!(again.contains("nothing new since position 300"), "{again}");
    assert_eq!(segments(&backup).len(), n_first_segments, "nothing new writes nothing");

    ok(yibao(&live, &["import", text(&rest)]));
    let said = ok(yibao(&live, &["backup", text(&backup), "--segment-bytes", "20000"]));
    assert!(said.contains("backed up positions 301.."), "{said}");
    let live_head = head_of(&live);
    assert!(said.contains(&format!("head {live_head}")), "{said}\n{live_head}");

    let restored = dir.path().join("restored");
    let said = ok(yibao(&restored, &["restore", text(&backup)]));
    assert!(said.contains(&format!("head {live_head}")), "{said}");
    assert_eq!(head_of(&restored), live_head);
    // The same records at the same positions, not only the same head.
    let log_of = |data: &Path| ok(yibao(data, &["log", "--json", "--limit", "100000"]));
    assert_eq!(log_of(&restored), log_of(&live));
    let checked = ok(yibao(&restored, &["backup", text(&backup), "--check"]));
    assert!(checked.contains(&format!("OK: head {live_head}")), "{checked}");
}

/// Kills `yibao backup` once it has written `n_more` segments past those
/// there (or at its end), after a further `delay`; says whether it was
/// killed before it finished.
fn kill_backup_midway(live: &Path, backup: &Path, n_more: usize, delay: Duration) -> bool {
    let before = segments(backup).len();
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(live)
        .args(["backup", text(backup), "--segment-bytes", "1500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn yibao backup");
    let deadline = Instant::now() + Duration::from_secs(120);
    while segments(backup).len() < before + n_more && Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(delay);
    let finished = child.try_wait().expect("wait").is_some();
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    !finished
}

#[test]
fn a_backup_killed_at_random_moments_is_usable_and_a_rerun_completes_it() {
    let Scene { dir, rest: _, live, backup } = scene("1000", "4", 2000);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut n_killed_midway = 0;
    for round in 0..8 {
        // A small xorshift: the moments differ between rounds, the same
        // every run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n_more = (seed % 4) as usize;
        let delay = Duration::from_micros(seed % 3000);
        if kill_backup_midway(&live, &backup, n_more, delay) {
            n_killed_midway += 1;
        }
        if !backup.join("header.ybk").exists() {
            continue;
        }
        let checked = yibao(&live, &["backup", text(&backup), "--check"]);
        assert_eq!(checked.status.code(), Some(0), "round {round}: {}{}", stdout(&checked), stderr(&checked));
    }
    assert!(n_killed_midway > 0, "no kill landed before the backup's end");
    let said = ok(yibao(&live, &["backup", text(&backup), "--segment-bytes", "1500"]));
    let live_head = head_of(&live);
    assert!(said.contains(&format!("head {live_head}")), "{said}");
    assert!(!backup.join("segment.tmp").exists(), "a killed run's temporary file is removed");
    let restored = dir.path().join("restored");
    ok(yibao(&restored, &["restore", text(&backup)]));
    assert_eq!(head_of(&restored), live_head);
}

#[test]
fn a_flipped_byte_or_a_missing_segment_is_named_and_nothing_is_restored() {
    let Scene { dir, rest: _, live, backup } = scene("200", "5", 300);
    ok(yibao(&live, &["backup", text(&backup), "--segment-bytes", "10000"]));
    let second = segments(&backup)[1].clone();
    let original = std::fs::read(&second).expect("a segment");
    for at in [9, original.len() / 2, original.len() - 60] {
        let mut flipped = original.clone();
        flipped[at] ^= 0x01;
        std::fs::write(&second, &flipped).expect("write");
        let checked = yibao(&live, &["backup", text(&backup), "--check"]);
        assert_eq!(checked.status.code(), Some(1), "byte {at}: {}", stdout(&checked));
        assert!(stdout(&checked).contains("segment-000002.ybk: position "), "byte {at}: {}", stdout(&checked));
        let target = dir.path().join(format!("target-{at}"));
        let restored = yibao(&target, &["restore", text(&backup)]);
        assert_eq!(restored.status.code(), Some(2), "byte {at}: {}", stdout(&restored));
        assert!(stderr(&restored).contains("segment-000002.ybk: position "), "{}", stderr(&restored));
        assert!(holds_nothing(&target), "byte {at}: nothing is restored");
    }
    std::fs::write(&second, &original).expect("write");
    std::fs::remove_file(&second).expect("remove");
    let restored = yibao(&dir.path().join("target-missing"), &["restore", text(&backup)]);
    assert_eq!(restored.status.code(), Some(2), "{}", stdout(&restored));
    assert!(stderr(&restored).contains("segment-000002.ybk: position "), "{}", stderr(&restored));
    assert!(stderr(&restored).contains("missing"), "{}", stderr(&restored));
}

#[test]
fn a_backup_of_another_ledger_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, rest) = facts_in_two(dir.path(), "50", "6", 60);
    let one = ledger_with(dir.path(), "one", &first);
    let other = ledger_with(dir.path(), "other", &rest);
    let backup = dir.path().join("backup");
    ok(yibao(&one, &["backup", text(&backup)]));
    let before = segments(&backup);
    let refused = yibao(&other, &["backup", text(&backup)]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(message.contains(&ledger_id(&one)) && message.contains(&ledger_id(&other)), "{message}");
    assert_eq!(segments(&backup), before, "nothing written");

    // Nor does a restore continue one ledger's backup with another's export.
    let export = dir.path().join("other.jsonl");
    ok(yibao(&other, &["export", "--out", text(&export)]));
    let target = dir.path().join("target");
    let refused = yibao(&target, &["restore", text(&backup), "--with", text(&export)]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(message.contains(&ledger_id(&one)) && message.contains(&ledger_id(&other)), "{message}");
    assert!(holds_nothing(&target), "nothing restored");
}

#[test]
fn a_ledger_whose_history_differs_from_the_backup_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, rest) = facts_in_two(dir.path(), "200", "7", 300);
    let (_, other_rest) = facts_in_two(dir.path(), "200", "8", 300);
    let live = ledger_with(dir.path(), "live", &first);
    let backup = dir.path().join("backup");
    ok(yibao(&live, &["backup", text(&backup)]));
    // A twin: the same ledger (id, records) to the backup's head, then
    // other facts than the live ledger's.
    let twin = dir.path().join("twin");
    ok(yibao(&twin, &["restore", text(&backup)]));
    ok(yibao(&live, &["import", text(&rest)]));
    ok(yibao(&twin, &["import", text(&other_rest)]));
    ok(yibao(&live, &["backup", text(&backup)]));
    let live_head = head_of(&live);
    let position = live_head.split(' ').next().expect("a position");
    let refused = yibao(&twin, &["backup", text(&backup)]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let expected = format!("the ledger no longer extends this backup (history differs at position {position})");
    assert!(stderr(&refused).contains(&expected), "{}", stderr(&refused));
}

#[test]
fn with_an_export_taken_after_the_backup_the_restore_reaches_the_export_head() {
    let Scene { dir, rest, live, backup } = scene("200", "9", 300);
    ok(yibao(&live, &["backup", text(&backup)]));
    ok(yibao(&live, &["import", text(&rest)]));
    let export = dir.path().join("export.jsonl");
    ok(yibao(&live, &["export", "--out", text(&export)]));
    let live_head = head_of(&live);
    let n_after = live_head.split(' ').next().and_then(|p| p.parse::<u64>().ok()).expect("a position") - 300;

    let restored = dir.path().join("restored");
    let said = ok(yibao(&restored, &["restore", text(&backup), "--with", text(&export)]));
    assert!(said.contains(&format!("{n_after} records taken, 300 already held; read to its end")), "{said}");
    assert_eq!(head_of(&restored), live_head);
}

/// An export's record line with another hash.
fn with_other_hash(line: &str) -> String {
    let mut record: serde_json::Value = serde_json::from_str(line).expect("a record");
    let hash = record["hash"].as_str().expect("a hash").to_string();
    let other = if hash.starts_with('0') { "1" } else { "0" };
    record["hash"] = format!("{other}{}", &hash[1..]).into();
    record.to_string()
}

#[test]
fn with_a_file_that_does_not_continue_the_restore_stops_at_the_gap_and_says_so() {
    let Scene { dir, rest, live, backup } = scene("200", "10", 300);
    ok(yibao(&live, &["backup", text(&backup)]));
    ok(yibao(&live, &["import", text(&rest)]));
    let export = dir.path().join("export.jsonl");
    ok(yibao(&live, &["export", "--out", text(&export)]));
    let lines: Vec<String> = std::fs::read_to_string(&export).expect("export").lines().map(String::from).collect();
    // Line 1 is the header, line 1 + N the record at position N: position
    // 306 goes missing.
    let mut gapped = lines.clone();
    gapped.remove(306);
    // Below the backup's head a damaged record (as a salvage may hold) and
    // a gap are no reason to stop: the backup's records stand.
    gapped[100] = with_other_hash(&gapped[100]);
    gapped.remove(50);
    let gapped_path = dir.path().join("gapped.jsonl");
    std::fs::write(&gapped_path, gapped.join("\n") + "\n").expect("write");
    let restored = dir.path().join("restored");
    let said = ok(yibao(&restored, &["restore", text(&backup), "--with", text(&gapped_path)]));
    let expected = "5 records taken, 298 already held, 1 at positions held that differ from them (ignored); \
                    stopped at line 306, position 307: a gap";
    assert!(said.contains(expected), "{said}");
    let head = head_of(&restored);
    assert!(head.starts_with("305 ") && said.contains(&format!("head {head}")), "{said}\n{head}");

    // A record whose hash does not link: the chain breaks there.
    let mut broken = lines.clone();
    broken[303] = with_other_hash(&broken[303]);
    let broken_path = dir.path().join("broken.jsonl");
    std::fs::write(&broken_path, broken.join("\n") + "\n").expect("write");
    let restored = dir.path().join("restored-broken");
    let said = ok(yibao(&restored, &["restore", text(&backup), "--with", text(&broken_path)]));
    assert!(said.contains("2 records taken, 300 already held; stopped at line 304, position 303"), "{said}");
    assert!(said.contains("does not continue the chain"), "{said}");
    assert!(head_of(&restored).starts_with("302 "));
}

/// The bytes of a file flipped at `n` pseudo-random places.
fn damage_file(file: &Path, n: usize, mut seed: u64) {
    let mut bytes = std::fs::read(file).expect("read");
    for _ in 0..n {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = (seed >> 13) as usize % bytes.len();
        bytes[at] ^= 0x5a;
    }
    std::fs::write(file, bytes).expect("write");
}

#[test]
fn after_damage_to_the_live_store_the_backup_alone_restores_everything_up_to_its_head() {
    let Scene { dir, rest, live, backup } = scene("300", "11", 500);
    ok(yibao(&live, &["backup", text(&backup), "--segment-bytes", "30000"]));
    let backed_up_log = ok(yibao(&live, &["log", "--json", "--limit", "500"]));
    let backed_up_head = head_of(&live);
    ok(yibao(&live, &["import", text(&rest)]));
    damage_file(&live.join("log").join("db"), 40, 11);
    // Whatever a run on the damaged store does, the backup stays whole.
    let run = yibao(&live, &["backup", text(&backup), "--segment-bytes", "30000"]);
    assert!(!stderr(&run).contains("panicked"), "{}", stderr(&run));
    ok(yibao(&live, &["restore", text(&backup), "--check"]));

    let restored = dir.path().join("restored");
    ok(yibao(&restored, &["restore", text(&backup)]));
    let head = head_of(&restored);
    let position: u64 = head.split(' ').next().and_then(|p| p.parse().ok()).expect("a position");
    assert!(position >= 500, "nothing acknowledged before the backup is lost: head {head}");
    if position == 500 {
        assert_eq!(head, backed_up_head);
    }
    assert_eq!(ok(yibao(&restored, &["log", "--json", "--limit", "500"])), backed_up_log);
}

fn yibao_pg(data: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .env_remove("YIBAO_STORE")
        .args(["--store", url])
        .args(args)
        .output()
        .expect("run yibao")
}

#[test]
fn a_postgresql_ledger_backed_up_twice_restores_to_its_head() {
    let Some(server) = TempPostgres::for_test("a_postgresql_ledger_backed_up_twice_restores_to_its_head") else {
        return;
    };
    let (live_url, restored_url) = (server.create_database("live"), server.create_database("restored"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, rest) = facts_in_two(dir.path(), "100", "12", 120);
    let live = dir.path().join("live");
    ok(yibao_pg(&live, &live_url, &["init"]));
    ok(yibao_pg(&live, &live_url, &["import", text(&first)]));
    let backup = dir.path().join("backup");
    ok(yibao_pg(&live, &live_url, &["backup", text(&backup), "--segment-bytes", "10000"]));
    ok(yibao_pg(&live, &live_url, &["import", text(&rest)]));
    let said = ok(yibao_pg(&live, &live_url, &["backup", text(&backup), "--segment-bytes", "10000"]));
    assert!(said.contains("backed up positions 121.."), "{said}");
    let verified = ok(yibao_pg(&live, &live_url, &["verify"]));
    let live_head = verified.lines().find_map(|l| l.strip_prefix("OK: head ")).expect("a head").to_string();

    let restored = dir.path().join("restored");
    let said = ok(yibao_pg(&restored, &restored_url, &["restore", text(&backup)]));
    assert!(said.contains(&format!("head {live_head}")), "{said}");
    let verified = ok(yibao_pg(&restored, &restored_url, &["verify"]));
    assert!(verified.contains(&format!("OK: head {live_head}")), "{verified}");
    // And into sled: a backup is of the ledger, not of its backend.
    let on_sled = dir.path().join("on-sled");
    ok(yibao(&on_sled, &["restore", text(&backup)]));
    assert_eq!(head_of(&on_sled), live_head);
}

/// A `yibao serve` holds a sled ledger alone: `--backup DIR` backs it up
/// from inside, as the cron line would beside a PostgreSQL ledger.
#[test]
fn the_service_backs_up_the_ledger_it_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = facts_in_two(dir.path(), "100", "13", 150);
    let live = ledger_with(dir.path(), "live", &first);
    let live_head = head_of(&live);
    let backup = dir.path().join("backup");
    let mut service = Command::new(BIN)
        .arg("--data")
        .arg(&live)
        .args(["serve", "--insecure-no-auth", "--addr", "127.0.0.1:0", "--backup", text(&backup)])
        .args(["--backup-every-s", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn yibao serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut checked = String::new();
    while Instant::now() < deadline && !checked.contains(&format!("OK: head {live_head}")) {
        std::thread::sleep(Duration::from_millis(100));
        checked = stdout(&yibao(&live, &["restore", text(&backup), "--check"]));
    }
    let beside = yibao(&live, &["backup", text(&dir.path().join("beside"))]);
    service.kill().expect("SIGKILL");
    let said = service.wait_with_output().expect("reap");
    assert!(checked.contains(&format!("OK: head {live_head}")), "{checked}\n{}", stderr(&said));
    assert_eq!(beside.status.code(), Some(3), "a second process cannot open the sled ledger: {}", stderr(&beside));
    assert!(stderr(&said).contains("backup: positions 1..150 into"), "{}", stderr(&said));
}

/// (position, hash) of every record line of an export-format file.
fn record_hashes(file: &Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(file).expect("read");
    text.lines()
        .skip(1)
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let position = record["position"].as_u64().expect("a position");
            (position, record["hash"].as_str().expect("a hash").to_string())
        })
        .collect()
}

/// The whole way back from a damaged disk: the last backup, plus what a
/// salvage of the damaged live store still reads past it. Every record up
/// to the backup's head is restored, and after it every record the
/// salvage holds without a gap: each equal, position and hash, to the
/// ledger as it was before the damage.
#[test]
fn after_damage_the_backup_and_a_salvage_of_the_live_store_restore_what_either_holds() {
    for seed in [21u64, 22, 23] {
        let Scene { dir, rest, live, backup } = scene("300", &seed.to_string(), 500);
        ok(yibao(&live, &["backup", text(&backup)]));
        ok(yibao(&live, &["import", text(&rest)]));
        let before = dir.path().join("before.jsonl");
        ok(yibao(&live, &["export", "--out", text(&before)]));
        let truth = record_hashes(&before);
        assert!(truth.len() > 600, "{} records", truth.len());

        damage_file(&live.join("log").join("db"), 40, seed);
        let salvage = dir.path().join("salvage.jsonl");
        let salvaged = yibao(&live, &["salvage", "--out", text(&salvage)]);
        assert!(matches!(salvaged.status.code(), Some(0 | 1)), "salvage: {}", stderr(&salvaged));
        let held = record_hashes(&salvage);
        for (position, hash) in &held {
            assert_eq!(&truth[*position as usize - 1].1, hash, "seed {seed}: salvaged position {position}");
        }
        // What the restore must reach: the backup's 500, then each next
        // position the salvage holds.
        let positions: std::collections::BTreeSet<u64> = held.iter().map(|(position, _)| *position).collect();
        let expected = (501..).take_while(|position| positions.contains(position)).last().unwrap_or(500);

        let restored = dir.path().join("restored");
        ok(yibao(&restored, &["restore", text(&backup), "--with", text(&salvage)]));
        let after = dir.path().join("after.jsonl");
        ok(yibao(&restored, &["export", "--out", text(&after)]));
        let got = record_hashes(&after);
        assert_eq!(got.len() as u64, expected, "seed {seed}: salvage held {} records", held.len());
        assert_eq!(got[..], truth[..got.len()], "seed {seed}: the restored chain is the ledger's");
        eprintln!("seed {seed}: {} of {} records back ({} salvaged)", got.len(), truth.len(), held.len());
    }
}

/// A backup goes into a new or empty directory, or one a backup wrote:
/// the ledger's own data directory or a file given by mistake is refused,
/// exit 2, nothing written there.
#[test]
fn a_file_or_a_directory_of_other_files_is_refused_as_a_backup_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = facts_in_two(dir.path(), "50", "14", 60);
    let live = ledger_with(dir.path(), "live", &first);
    let before: Vec<_> = std::fs::read_dir(&live).expect("read").map(|e| e.expect("entry").file_name()).collect();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a backup").expect("write");
    for target in [&live, &file] {
        let refused = yibao(&live, &["backup", text(target)]);
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("not a backup directory"), "{}", stderr(&refused));
    }
    let after: Vec<_> = std::fs::read_dir(&live).expect("read").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(before, after, "nothing written into the ledger's directory");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "not a backup");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    ok(yibao(&live, &["backup", text(&empty)]));
}

//! A damaged sled store read without sled: `yibao salvage` writes every
//! record whose block copy was not touched, with the hash the export had;
//! `verify` exits 0 or 1 and, on 1, names the first damaged position (or
//! that every record was read); what the chain from genesis reaches
//! restores with the same hashes, and a salvage with a gap is refused by
//! `import --restore`, naming the gap.
//!
//! sled's recovery overwrites the rest of its active segment after a
//! damaged message at the first open; the segment is kept beforehand
//! (`DIR/preserved`), so a salvage after `verify` holds as much.
//!
//! Blocks are found in sled's file by this test's own reading of their
//! framing (magic, first position, count, flags, then length, body, hash;
//! or, for a block stored compressed, the compressed length and the
//! hashes), not by the code under test.

mod common;

use common::server::{cli, BIN};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MAGIC: &[u8] = b"YBK1";
const HEADER_BYTES: usize = 49;
/// The flag of a block whose lengths and bodies are stored compressed; then
/// their length and the compressed length (u32 LE each) follow the header,
/// then the compressed bytes, then the records' hashes (32 bytes each).
const COMPRESSED: u8 = 2;

fn yibao(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data").arg(data).args(args).output().expect("run yibao")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A ledger of several appends (chunks of an import) large enough for
/// more than one sled segment, and its export.
struct Pristine {
    _dir: tempfile::TempDir,
    data: PathBuf,
    export: Vec<String>,
    /// Position → hash, hex, as exported.
    hashes: HashMap<u64, String>,
    head: u64,
}

fn pristine() -> Pristine {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("pristine");
    let facts = dir.path().join("facts.jsonl");
    let facts_arg = facts.to_str().expect("utf-8 path");
    cli(&data, &["init"]);
    // Blocks are stored compressed: twice the persons of plain blocks
    // for the same bytes.
    cli(&data, &["generate", "--persons", "6000", "--seed", "7", "--out", facts_arg]);
    cli(&data, &["import", "--chunk-facts", "1500", facts_arg]);
    let db_bytes = std::fs::metadata(data.join("log/db")).expect("sled's file").len();
    assert!(db_bytes > 2 * 1024 * 1024, "{db_bytes} bytes: one segment only");
    let export_path = dir.path().join("export.jsonl");
    cli(&data, &["export", "--out", export_path.to_str().expect("utf-8 path")]);
    let export: Vec<String> =
        std::fs::read_to_string(&export_path).expect("export").lines().map(String::from).collect();
    let mut hashes = HashMap::new();
    for line in &export[1..] {
        let record: Value = serde_json::from_str(line).expect("an export line");
        hashes.insert(record["position"].as_u64().expect("position"), record["hash"].as_str().expect("hash").into());
    }
    let head = export.len() as u64 - 1;
    assert!(head > 5000, "{head} records");
    Pristine { _dir: dir, data, export, hashes, head }
}

/// One copy of a block in sled's file: its bytes and its records.
struct Copy {
    bytes: Range<usize>,
    positions: Range<u64>,
}

fn copies(db: &[u8]) -> Vec<Copy> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = db[at..].windows(4).position(|window| window == MAGIC) {
        let start = at + offset;
        at = start + 1;
        let Some(header) = db.get(start..start + HEADER_BYTES) else { break };
        let first = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
        let n = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        let mut end = start + HEADER_BYTES;
        if header[16] & COMPRESSED != 0 {
            let Some(packed_len) = db.get(end + 4..end + 8) else { break };
            end += 8 + u32::from_le_bytes(packed_len.try_into().expect("4 bytes")) as usize + 32 * n as usize;
        } else {
            for _ in 0..n {
                let Some(len_bytes) = db.get(end..end + 4) else { break };
                end += 4 + u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize + 32;
            }
        }
        if end > db.len() {
            continue;
        }
        found.push(Copy { bytes: start..end, positions: first..first + u64::from(n) });
    }
    found
}

/// The salvage's records: position → hash; and its lines.
fn read_salvage(path: &Path) -> (Vec<String>, BTreeMap<u64, String>) {
    let lines: Vec<String> = std::fs::read_to_string(path).expect("salvage").lines().map(String::from).collect();
    let mut records = BTreeMap::new();
    for line in &lines[1..] {
        let record: Value = serde_json::from_str(line).expect("a salvage line");
        records.insert(record["position"].as_u64().expect("position"), record["hash"].as_str().expect("hash").into());
    }
    (lines, records)
}

/// A small deterministic generator (xorshift), for the damage.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

#[test]
fn salvage_of_an_undamaged_store_is_its_export() {
    let pristine = pristine();
    let out = pristine.data.parent().expect("dir").join("salvage.jsonl");
    let output = yibao(&pristine.data, &["salvage", "--out", out.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains(&format!("salvaged {} records", pristine.head)), "{}", text(&output.stdout));
    let (lines, _) = read_salvage(&out);
    assert_eq!(lines, pristine.export, "a salvage of an undamaged store is byte for byte its export");
}

/// What one round of damage gave, for the tally.
#[derive(Default)]
struct Tally {
    n_rounds: u64,
    n_verify_ok: u64,
    n_verify_named: u64,
    n_salvaged: u64,
    n_salvaged_after_sled: u64,
}

/// Seeded rounds of damage to sled's file (one flipped byte, or a zeroed
/// 4 KiB page): salvage (before anything opens sled, whose recovery
/// clears what follows a damaged message) keeps every record of every
/// block with an untouched copy, with the exported hash; verify exits 0 or
/// 1 and names what it found; the chain from genesis restores.
#[test]
fn damage_anywhere_in_sleds_file_is_named_and_every_untouched_block_is_salvaged() {
    let pristine = pristine();
    let db = std::fs::read(pristine.data.join("log/db")).expect("sled's file");
    let used = db.iter().rposition(|&byte| byte != 0).expect("a written file") + 1;
    let all_copies = copies(&db);
    let work = pristine.data.parent().expect("dir").to_path_buf();
    let mut random = Seeded(0x5eed_1234_abcd);
    let mut tallies = [Tally::default(), Tally::default()];
    for round in 0..24 {
        let zero_page = round % 3 == 2;
        let damaged: Range<usize> = if zero_page {
            let page = random.below(used) / 4096 * 4096;
            page..(page + 4096).min(db.len())
        } else {
            let at = random.below(used);
            at..at + 1
        };
        let data = work.join(format!("round-{round}"));
        common::copy_tree(&pristine.data, &data);
        let mut bytes = db.clone();
        for byte in &mut bytes[damaged.clone()] {
            *byte = if zero_page { 0 } else { *byte ^ (1 << random.below(8)) };
        }
        std::fs::write(data.join("log/db"), &bytes).expect("write the damaged file");
        let what = format!("round {round}, bytes {damaged:?}");
        let tally = &mut tallies[usize::from(zero_page)];
        tally.n_rounds += 1;

        let salvage = work.join(format!("salvage-{round}.jsonl"));
        let salvage_arg = salvage.to_str().expect("utf-8 path");
        let output = yibao(&data, &["salvage", "--out", salvage_arg]);
        assert_eq!(output.status.code(), Some(0), "{what}: {}", text(&output.stderr));
        let (lines, salvaged) = read_salvage(&salvage);
        tally.n_salvaged += salvaged.len() as u64;
        holds_every_untouched_block(&salvaged, &all_copies, &damaged, &pristine, &what);

        let verify = yibao(&data, &["verify"]);
        let report = text(&verify.stdout);
        match verify.status.code() {
            Some(0) => {
                assert!(report.contains(&format!("OK: head {} ", pristine.head)), "{what}: {report}");
                tally.n_verify_ok += 1;
            }
            Some(1) => {
                let named = report.lines().any(|line| line.starts_with("first damaged position: "))
                    || report.contains("every record was read")
                    || report.contains("FAILED: position ");
                assert!(named, "{what}: {report}");
                tally.n_verify_named += 1;
            }
            other => panic!("{what}: verify exited {other:?}: {report}{}", text(&verify.stderr)),
        }
        let after = work.join(format!("after-{round}.jsonl"));
        let output = yibao(&data, &["salvage", "--out", after.to_str().expect("utf-8 path")]);
        assert_eq!(output.status.code(), Some(0), "{what}: {}", text(&output.stderr));
        let (_, salvaged_after) = read_salvage(&after);
        tally.n_salvaged_after_sled += salvaged_after.len() as u64;
        // sled's recovery overwrote nothing that salvage cannot read (the
        // segment it overwrote was kept in DIR/preserved).
        let after_verify = format!("{what}, after verify");
        holds_every_untouched_block(&salvaged_after, &all_copies, &damaged, &pristine, &after_verify);

        restores_to_the_first_break(&work, round, &lines, &salvaged, &pristine, &what);
        std::fs::remove_dir_all(&data).expect("remove the round's copy");
        for written in [&salvage, &after] {
            std::fs::remove_file(written).expect("remove the round's salvage");
        }
    }
    for (tally, damage) in tallies.iter().zip(["one flipped byte", "one zeroed 4 KiB page"]) {
        println!(
            "{damage}: {} rounds; verify OK {}, verify named the damage {}; salvaged {:.0} of {} records on average \
             before sled opened the store, {:.0} after",
            tally.n_rounds,
            tally.n_verify_ok,
            tally.n_verify_named,
            tally.n_salvaged as f64 / tally.n_rounds as f64,
            pristine.head,
            tally.n_salvaged_after_sled as f64 / tally.n_rounds as f64,
        );
    }
}

/// Every record the salvage holds has its exported hash, and every record
/// of a block with a copy the damage did not touch is there.
fn holds_every_untouched_block(
    salvaged: &BTreeMap<u64, String>,
    all_copies: &[Copy],
    damaged: &Range<usize>,
    pristine: &Pristine,
    what: &str,
) {
    for (position, hash) in salvaged {
        assert_eq!(Some(hash), pristine.hashes.get(position), "{what}: position {position}");
    }
    for copy in all_copies.iter().filter(|copy| copy.bytes.end <= damaged.start || copy.bytes.start >= damaged.end) {
        for position in copy.positions.clone() {
            assert!(salvaged.contains_key(&position), "{what}: position {position} of an untouched block");
        }
    }
}

/// The salvage restores whole when it has no gap; with one, `import
/// --restore` refuses it naming the gap, and its records up to the first
/// break restore with the exported hashes.
fn restores_to_the_first_break(
    work: &Path,
    round: usize,
    lines: &[String],
    salvaged: &BTreeMap<u64, String>,
    pristine: &Pristine,
    what: &str,
) {
    let unbroken = (1..).take_while(|position| salvaged.contains_key(position)).count() as u64;
    let restored = work.join(format!("restored-{round}"));
    let whole = work.join(format!("salvage-{round}.jsonl"));
    let output = yibao(&restored, &["import", "--restore", whole.to_str().expect("utf-8 path")]);
    if unbroken as usize == salvaged.len() {
        assert_eq!(output.status.code(), Some(0), "{what}: {}", text(&output.stderr));
    } else {
        let message = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{what}: {message}");
        let next = salvaged.range(unbroken + 1..).next().map(|(position, _)| *position).expect("after the gap");
        let gap = format!("positions {}..{} are missing", unbroken + 1, next - 1);
        assert!(message.contains(&gap), "{what}: {message}");
        // The chain up to the gap: the header then names its last record.
        let mut header: Value = serde_json::from_str(&lines[0]).expect("header line");
        header["head_position"] = unbroken.into();
        header["head_hash"] = match pristine.hashes.get(&unbroken) {
            Some(hash) => Value::from(hash.clone()),
            None => header["genesis_hash"].clone(),
        };
        let upto = work.join(format!("upto-{round}.jsonl"));
        let mut text_upto = header.to_string() + "\n";
        for line in &lines[1..=unbroken as usize] {
            text_upto.push_str(line);
            text_upto.push('\n');
        }
        std::fs::write(&upto, text_upto).expect("write");
        let output = yibao(&restored, &["import", "--restore", upto.to_str().expect("utf-8 path")]);
        assert_eq!(output.status.code(), Some(0), "{what}: {}", String::from_utf8_lossy(&output.stderr));
    }
    if unbroken > 0 {
        let report = text(&yibao(&restored, &["verify"]).stdout);
        let head = format!("OK: head {unbroken} {}", pristine.hashes[&unbroken]);
        assert!(report.contains(&head), "{what}: {report}");
    }
    let _ = std::fs::remove_dir_all(&restored);
}

/// Every copy of one block zeroed: the salvage goes on after the gap, and
/// a restore of it refuses, naming the missing positions.
#[test]
fn a_block_lost_everywhere_is_a_gap_that_restore_names() {
    let pristine = pristine();
    let db_path = pristine.data.join("log/db");
    let mut db = std::fs::read(&db_path).expect("sled's file");
    let all_copies = copies(&db);
    let middle = pristine.head / 2;
    let lost = all_copies.iter().find(|copy| copy.positions.contains(&middle)).expect("a block").positions.clone();
    for copy in all_copies.iter().filter(|copy| copy.positions == lost) {
        db[copy.bytes.clone()].fill(0);
    }
    std::fs::write(&db_path, db).expect("write");
    let out = pristine.data.parent().expect("dir").join("salvage.jsonl");
    let output = yibao(&pristine.data, &["salvage", "--out", out.to_str().expect("utf-8 path")]);
    let summary = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let gap = format!("{}..{}", lost.start, lost.end - 1);
    assert!(summary.contains(&format!("gaps (not in the file): positions {gap}")), "{summary}");
    assert!(summary.contains(&format!("first break: position {}", lost.start)), "{summary}");
    let (_, salvaged) = read_salvage(&out);
    assert_eq!(salvaged.len() as u64, pristine.head - (lost.end - lost.start));
    assert_eq!(salvaged.get(&pristine.head), pristine.hashes.get(&pristine.head), "the records after the gap");
    let restored = pristine.data.parent().expect("dir").join("restored");
    let output = yibao(&restored, &["import", "--restore", out.to_str().expect("utf-8 path")]);
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains(&format!("positions {gap} are missing")), "{message}");
}

#[test]
fn salvage_refuses_a_postgresql_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(BIN)
        .arg("--data")
        .arg(dir.path())
        .args(["--store", "postgres://yibao:secret@127.0.0.1:1/ledger", "salvage", "--out"])
        .arg(dir.path().join("out.jsonl"))
        .output()
        .expect("run yibao");
    let message = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains("is a PostgreSQL database") && !message.contains("secret"), "{message}");
    assert!(!dir.path().join("out.jsonl").exists(), "nothing written");
}

//! Stored-format compatibility: `fixtures/compat/v1` is a ledger directory
//! (the sled log and both projection checkpoints) written by yibao 0.1 with
//! the demo's facts, committed as bytes. Every later version must open it,
//! verify it to the same head hash, load its checkpoints without a rebuild
//! and answer the same coverage. A change of the stored encoding (bincode
//! 1.3 today) or of a checkpoint's body must keep this test passing: read
//! the old format, or convert it, never silently drop it.

use projections::coverage::Coverage;
use projections::family::Family;
use projections::Projection;
use std::path::Path;
use std::process::Command;

mod common;

use common::server::BIN;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat/v1");
/// What `yibao verify` said of the fixture when it was written.
const HEAD_POSITION: u64 = 59;
const HEAD_HASH: &str = "4a57b9e7397af7ea19926dab5e2b2a3d491a167c54c752c72a379dc548b799c8";

/// The fixture copied into a fresh directory: opening a ledger may write
/// to it (sled's snapshot, a caught-up checkpoint), the committed bytes
/// must stay as they were written.
fn copy_of_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_tree(Path::new(FIXTURE), &dir.path().join("data"));
    dir
}

fn yibao(data: &Path, args: &[&str]) -> (String, String) {
    let output = Command::new(BIN).arg("--data").arg(data).args(args).output().expect("run yibao");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "yibao {args:?} failed on the v1 ledger:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn the_v1_checkpoints_load_as_written() {
    let projections = Path::new(FIXTURE).join("projections");
    let coverage = Coverage::load(&projections.join("coverage.ckpt")).expect("the v1 coverage checkpoint loads");
    assert!(coverage.position() > 0 && coverage.position() <= HEAD_POSITION, "position {}", coverage.position());
    assert!(coverage.n_persons() >= 19, "{} persons", coverage.n_persons());
    let family = Family::load(&projections.join("family.ckpt")).expect("the v1 family checkpoint loads");
    assert!(family.position() > 0 && family.position() <= HEAD_POSITION, "position {}", family.position());
}

#[test]
fn the_v1_ledger_verifies_to_its_head_hash() {
    let dir = copy_of_fixture();
    let data = dir.path().join("data");
    let (stdout, _) = yibao(&data, &["verify"]);
    assert!(stdout.contains(&format!("head {HEAD_POSITION} {HEAD_HASH}")), "verify said:\n{stdout}");
    // Again, after the first open wrote whatever it writes: the same head.
    let (stdout, _) = yibao(&data, &["verify"]);
    assert!(stdout.contains(&format!("head {HEAD_POSITION} {HEAD_HASH}")), "verify said:\n{stdout}");
}

#[test]
fn the_v1_ledger_answers_the_same_coverage_from_its_checkpoint() {
    let dir = copy_of_fixture();
    let data = dir.path().join("data");
    let expected = std::fs::read_to_string(Path::new(FIXTURE).join("expected-coverage.tsv")).expect("expected");
    let rows: Vec<Vec<&str>> =
        expected.lines().filter(|line| !line.starts_with('#')).map(|line| line.split('\t').collect()).collect();
    assert!(rows.len() >= 19, "the expected answers are missing");
    for row in rows {
        let [id, year, state, net_received, amount_due, covered_from, covered_until] = row[..] else {
            panic!("expected-coverage.tsv: a row of 7 fields, got {row:?}");
        };
        let (stdout, stderr) = yibao(&data, &["coverage", id, "--year", year, "--json"]);
        assert!(!stderr.contains("rebuilding"), "the v1 checkpoint was not used for {id}: {stderr}");
        let answer: serde_json::Value = serde_json::from_str(&stdout).expect("coverage --json is JSON");
        assert_eq!(answer["log_position"], HEAD_POSITION, "{id}");
        assert_eq!(answer["head_hash"], HEAD_HASH, "{id}");
        let years = answer["years"].as_array().expect("years");
        assert_eq!(years.len(), 1, "{id} {year}");
        let person_year = &years[0]["year"];
        let text = |field: &str| match &person_year[field] {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => "None".to_string(),
            other => other.to_string(),
        };
        assert_eq!(person_year["coverage_year"].to_string(), year, "{id}");
        assert_eq!(text("state"), state, "{id} {year}: state");
        assert_eq!(text("net_received"), net_received, "{id} {year}: net received");
        assert_eq!(text("amount_due"), amount_due, "{id} {year}: amount due");
        assert_eq!(text("covered_from"), covered_from, "{id} {year}: covered from");
        assert_eq!(text("covered_until"), covered_until, "{id} {year}: covered until");
    }
    // The first lookup caught the per-person store up from the log; the
    // rows after it were answered from that store.
    assert!(data.join("projections").join("persons.sqlite").exists(), "no person store written");
}

/// `fixtures/compat/v2`: the demo's facts written with the log's index on
/// disk (sorted runs and the manifest under `index/`, the ledger's secret
/// in sled), the per-person store (layout 2) and the family checkpoint, all
/// at the head. Every later version must use the index as written, without
/// reading the log. The person store of layout 2 holds no family records:
/// layout 3 reads it as another layout, and it is rebuilt from the log
/// (the family checkpoint is no longer read), after which it answers right.
const FIXTURE_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat/v2");
const V2_HEAD_POSITION: u64 = 26;
const V2_HEAD_HASH: &str = "749ac1963926b961850cbe99943c4676a2fff23e951c0a326b20a64c23539782";

#[test]
fn the_v2_index_is_used_as_written_and_its_person_store_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    common::copy_tree(Path::new(FIXTURE_V2), &data);
    let log = ledger::SledLog::open(&data, ledger::OpenMode::Existing).expect("a writing open of the v2 ledger");
    let head = log.durable_head();
    assert_eq!((head.position, hex::encode(head.hash)), (V2_HEAD_POSITION, V2_HEAD_HASH.to_string()));
    assert_eq!(log.opened_tail(), 0, "the v2 index was not used: the open read the log");
    // A fact of the fixture appended again is found in the run as written.
    let mut recorded = None;
    log.scan(5, 5, |envelope| {
        recorded = Some(envelope);
        Ok(())
    })
    .expect("position 5");
    let recorded = recorded.expect("a record at position 5");
    let again = ledger::NewEvent {
        stream: recorded.head.stream.clone(),
        expected: ledger::ExpectedVersion::Any,
        idempotency_key: recorded.head.idempotency_key.clone(),
        actor: recorded.head.actor.clone(),
        event: recorded.event.clone(),
    };
    let outcome = log.append_blocking(vec![again]).expect("a repeat");
    assert_eq!((outcome.n_appended, outcome.positions), (0, vec![5]), "the v2 index did not know its key");
    let whole_family = family_folded(&log);
    drop(log);
    let store_path = data.join("projections").join("persons.sqlite");
    let store = projections::coverage::PersonStore::open(&store_path).expect("the v2 person store opens");
    assert_eq!(store.tip().expect("its tip reads"), None, "layout 2 is another layout: rebuilt");
    drop(store);
    let (stdout, _) = yibao(&data, &["coverage", "520502198503121233", "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("coverage --json is JSON");
    assert_eq!(answer["log_position"], V2_HEAD_POSITION);
    // The demo's facts alone publish no policy: the payment waits for it.
    assert_eq!(answer["years"][0]["year"]["state"], "awaiting_policy", "{answer}");
    assert_eq!(answer["years"][0]["year"]["net_received"], "400.00", "{answer}");
    let store = projections::coverage::PersonStore::open(&store_path).expect("the rebuilt store opens");
    let tip = store.tip().expect("its tip reads").expect("a tip after the rebuild");
    assert_eq!((tip.position, hex::encode(tip.hash)), (V2_HEAD_POSITION, V2_HEAD_HASH.to_string()));
    assert_eq!(store.family_all().expect("the family records"), whole_family);
    drop(store);
    let (listed, _) = yibao(&data, &["family", "list", DEMO_HOLDER]);
    assert!(listed.contains("BJ-DJ-2024-000101") && listed.contains("credited (缴费到账成功)"), "{listed}");
}

/// The demo's employee, who pays his relatives' premiums from his account.
const DEMO_HOLDER: &str = "520502197811204159";

/// The family projection folded from position 1.
fn family_folded(log: &ledger::SledLog) -> Family {
    let mut family = Family::new();
    family.catch_up_to(log, u64::MAX).expect("folded from position 1");
    family
}

/// `fixtures/compat/v3`: the demo's facts, the index, and the per-person
/// store of layout 3 (persons and the family records per binding and per
/// application, no family checkpoint), all at the head. Every later
/// version must use the store as written — not caught up, not rebuilt —
/// or convert it: a store of another layout is rebuilt silently.
const FIXTURE_V3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat/v3");
const V3_HEAD_POSITION: u64 = 26;
const V3_HEAD_HASH: &str = "2efea18ea9f80f3ee46672453290a07e59275ea49b5db0d21c8ad3f2e5a90b29";

#[test]
fn the_v3_person_store_and_its_family_records_are_used_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    common::copy_tree(Path::new(FIXTURE_V3), &data);
    let log = ledger::SledLog::open(&data, ledger::OpenMode::Read).expect("a read open of the v3 ledger");
    let head = log.durable_head();
    assert_eq!((head.position, hex::encode(head.hash)), (V3_HEAD_POSITION, V3_HEAD_HASH.to_string()));
    let whole_family = family_folded(&log);
    drop(log);
    let store_path = data.join("projections").join("persons.sqlite");
    let store = projections::coverage::PersonStore::open(&store_path).expect("the v3 person store opens");
    let tip = store.tip().expect("its tip reads").expect("a tip in a layout this build reads");
    assert_eq!((tip.position, hex::encode(tip.hash)), (V3_HEAD_POSITION, V3_HEAD_HASH.to_string()));
    // As written, before any command: the family records read back whole.
    assert_eq!(store.family_all().expect("the v3 family records"), whole_family);
    drop(store);
    let (listed, _) = yibao(&data, &["family", "list", DEMO_HOLDER]);
    assert!(listed.contains("BJ-DJ-2024-000101") && listed.contains("credited (缴费到账成功)"), "{listed}");
    assert!(listed.contains(&format!("answer reflects log position {V3_HEAD_POSITION}")), "{listed}");
    let (stdout, _) = yibao(&data, &["coverage", "520502198503121233", "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("coverage --json is JSON");
    assert_eq!(answer["log_position"], V3_HEAD_POSITION);
    assert_eq!(answer["years"][0]["year"]["net_received"], "400.00", "{answer}");
    assert!(!data.join("projections").join("family.ckpt").exists(), "no family checkpoint is written");
}

/// An export of each fixture ledger, as `yibao export` wrote it before the
/// log was held through `LogStore` (records read from the blocks): the
/// export now writes from `LogStore::stored_records`, and must give the
/// same bytes, which a restore into either backend reads.
#[test]
fn an_export_of_a_sled_ledger_is_byte_identical_to_the_earlier_export() {
    for (fixture, expected) in
        [(FIXTURE, "v1-export.jsonl"), (FIXTURE_V3, "v3-export.jsonl"), (FIXTURE_V4, "v3-export.jsonl")]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        common::copy_tree(Path::new(fixture), &data);
        let out = dir.path().join("export.jsonl");
        yibao(&data, &["export", "--out", out.to_str().expect("a UTF-8 path")]);
        let written = std::fs::read(&out).expect("the export");
        let earlier = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compat").join(expected);
        let earlier = std::fs::read(&earlier).expect("the earlier export");
        assert!(written == earlier, "the export of {fixture} changed:\n{}", String::from_utf8_lossy(&written));
    }
}

/// `fixtures/compat/v4`: the v3 ledger's records as blocks were first
/// stored LZ4-compressed (`yibao restore fixtures/compat/backup-v1`: the
/// block flag `COMPRESSED`, the records' hashes kept apart). Every later
/// version reads them as written: the same head, a chain that verifies,
/// and the v3 export byte for byte (the loop above).
const FIXTURE_V4: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat/v4");

#[test]
fn the_v4_ledger_of_compressed_blocks_reads_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    common::copy_tree(Path::new(FIXTURE_V4), &data);
    let log = ledger::SledLog::open(&data, ledger::OpenMode::Read).expect("a read open of the v4 ledger");
    let head = log.durable_head();
    assert_eq!((head.position, hex::encode(head.hash)), (V3_HEAD_POSITION, V3_HEAD_HASH.to_string()));
    let mut n_compressed = 0;
    for block in log.blocks_from(1).expect("the blocks") {
        let (_, bytes) = block.expect("a block");
        let view = ledger::log::block::BlockView::parse(&bytes).expect("a block of the second format");
        n_compressed += usize::from(view.compressed);
    }
    assert!(n_compressed > 0, "the fixture holds compressed blocks");
    drop(log);
    let (verified, _) = yibao(&data, &["verify"]);
    assert!(verified.contains(&format!("OK: head {V3_HEAD_POSITION} {V3_HEAD_HASH}")), "{verified}");
}

/// The state digest of the v3 ledger's replay, in canonical form 2 (the
/// persons digested by partitions of 4,096). Auditors compare digests
/// across machines and years: a change of the canonical form must be a
/// decision (a new form, said in the README), never a side effect.
const V3_STATE_DIGEST: &str = "32f0911438deaea9ae1ded09c168089d38fdf28ef61e69ec16771061467c3a14";

#[test]
fn the_v3_ledger_replays_to_the_same_state_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    common::copy_tree(Path::new(FIXTURE_V3), &data);
    let (replayed, _) = yibao(&data, &["replay", "--year", "2025"]);
    assert!(replayed.contains(&format!("state digest {V3_STATE_DIGEST}")), "{replayed}");
}

const BACKUP_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat/backup-v1");
const OFFLINE_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/compat/offline-v1");

/// `fixtures/compat/backup-v1` is a backup of the v3 ledger in two
/// segments, as `yibao backup` first wrote them. A backup is kept for
/// years: every later version restores it to the same ledger (its export
/// byte-identical to the v3 fixture's), and a backup run of the v3 ledger
/// into it reads its last trailer and finds nothing new.
#[test]
fn a_backup_of_the_first_format_restores_and_extends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("backup");
    common::copy_tree(Path::new(BACKUP_V1), &backup);
    let backup_text = backup.to_str().expect("a UTF-8 path");
    let restored = dir.path().join("restored");
    let (said, _) = yibao(&restored, &["restore", backup_text, "--check"]);
    assert!(said.contains(&format!("OK: head {V3_HEAD_POSITION} {V3_HEAD_HASH}")), "{said}");
    yibao(&restored, &["restore", backup_text]);
    let out = dir.path().join("export.jsonl");
    yibao(&restored, &["export", "--out", out.to_str().expect("a UTF-8 path")]);
    let earlier = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compat/v3-export.jsonl");
    assert!(std::fs::read(&out).expect("export") == std::fs::read(earlier).expect("v3 export"));

    let data = dir.path().join("v3");
    common::copy_tree(Path::new(FIXTURE_V3), &data);
    let (said, _) = yibao(&data, &["backup", backup_text]);
    assert!(said.contains(&format!("nothing new since position {V3_HEAD_POSITION}")), "{said}");
}

/// `fixtures/compat/offline-v1`: a certificate carrying its offline proofs
/// and a signed tree head, as the demo first wrote them, with the public
/// key. A hospital keeps such a file: every later version verifies it with
/// the file and the key alone.
#[test]
fn a_certificate_and_a_signed_head_of_the_first_format_verify_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = format!("{OFFLINE_V1}/signing.pub");
    let (said, _) =
        yibao(dir.path(), &["certificate", "verify", &format!("{OFFLINE_V1}/certificate.txt"), "--public-key", &key]);
    assert!(said.contains("proven in the Merkle tree") && said.contains("every field signed by the office"), "{said}");
    let (said, _) =
        yibao(dir.path(), &["checkpoint", "verify", &format!("{OFFLINE_V1}/signed-head.txt"), "--public-key", &key]);
    assert!(said.contains("OK:") && said.contains("tree size 58"), "{said}");
    assert!(!dir.path().join("log").exists(), "no ledger was opened or made");
}

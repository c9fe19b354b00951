//! Matching 1M receipts against 1M ledger payments, with a bare hash join of
//! the same references as the peer measured in the same run. Prints figures;
//! never fails on a number. `cargo bench -p reconcile --bench matching`
//! (without `--bench`, as under `cargo test --benches`, it runs a small size).

use ledger::{Date, Money};
use reconcile::{reconcile, summarize, Direction, LedgerPayment, Location, MatchOptions, Receipt, Side, Statement};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const CHANNELS: [&str; 4] = ["wechat", "alipay", "guizhou_yibao_app", "village_collector"];

fn person(i: usize) -> String {
    let region = ledger::RegionCode::new(520502).expect("region");
    let birth = chrono::NaiveDate::from_ymd_opt(1950 + (i % 50) as i32, 1 + (i % 12) as u32, 1 + (i % 28) as u32)
        .expect("date");
    ledger::Identity::resident(region, birth, (i % 1000) as u16).to_string()
}

fn day(i: usize) -> Date {
    Date(chrono::NaiveDate::from_ymd_opt(2024, 10, 1).expect("date") + chrono::Days::new((i % 60) as u64))
}

fn ledger_side(n: usize) -> Vec<LedgerPayment> {
    (0..n)
        .map(|i| LedgerPayment {
            position: i as u64 + 1,
            kind: Side::Payment,
            channel: CHANNELS[i % 4].to_string(),
            channel_ref: format!("REF{i:012}"),
            refund_of: None,
            amount: Money::from_fen(40_000 + (i % 7) as i64 * 100).expect("fen"),
            person: person(i),
            payer: None,
            business_date: day(i),
        })
        .collect()
}

/// Receipts in a scrambled order: 97% by reference, 1% with another amount,
/// 1% without a reference (payer + amount + date), 1% unknown.
fn receipts(ledger: &[LedgerPayment]) -> Statement {
    let file: Arc<str> = Arc::from("bench.xml");
    let n = ledger.len();
    let mut receipts = Vec::with_capacity(n);
    for k in 0..n {
        let i = (k.wrapping_mul(2_654_435_761)) % n; // a permutation when n is not a multiple of its factors
        let item = &ledger[i];
        let (reference, amount) = match i % 100 {
            0 => (Some(item.channel_ref.clone()), Money::from_fen(item.amount.fen() + 1).expect("fen")),
            1 => (None, item.amount),
            2 => (Some(format!("UNKNOWN{i}")), item.amount),
            _ => (Some(item.channel_ref.clone()), item.amount),
        };
        receipts.push(Receipt {
            file: file.clone(),
            at: Location::Line(k as u64 + 2),
            seq: k as u32,
            channel: Some(item.channel.clone()),
            reference,
            original_reference: None,
            amount,
            direction: Direction::Credit,
            reversal: false,
            booked_on: item.business_date,
            payer_id: Some(item.person.clone()),
            payer_name: None,
            settlement_ref: None,
            parts: Vec::new(),
        });
    }
    Statement::of_file(file, receipts)
}

fn peer_join(statement: &Statement, ledger: &[LedgerPayment]) -> usize {
    let index: HashMap<(&str, &str), usize> =
        ledger.iter().enumerate().map(|(i, p)| ((p.channel.as_str(), p.channel_ref.as_str()), i)).collect();
    let mut matched = 0;
    for receipt in &statement.receipts {
        if let (Some(channel), Some(reference)) = (receipt.channel.as_deref(), receipt.reference.as_deref()) {
            if let Some(&i) = index.get(&(channel, reference)) {
                matched += usize::from(ledger[i].amount == receipt.amount);
            }
        }
    }
    matched
}

/// The same 1:1 match in SQLite: both sides inserted (one transaction, no
/// sync), an index on the ledger's (channel, reference), a join that counts
/// matched receipts with equal amounts. Returns (matched, seconds).
fn sqlite_join(statement: &Statement, ledger: &[LedgerPayment]) -> rusqlite::Result<(usize, f64)> {
    let start = Instant::now();
    let mut db = rusqlite::Connection::open_in_memory()?;
    db.execute_batch(
        "CREATE TABLE ledger (channel TEXT, reference TEXT, amount INTEGER);
         CREATE TABLE receipts (channel TEXT, reference TEXT, amount INTEGER);",
    )?;
    let transaction = db.transaction()?;
    {
        let mut insert = transaction.prepare("INSERT INTO ledger VALUES (?1, ?2, ?3)")?;
        for p in ledger {
            insert.execute(rusqlite::params![p.channel, p.channel_ref, p.amount.fen()])?;
        }
        let mut insert = transaction.prepare("INSERT INTO receipts VALUES (?1, ?2, ?3)")?;
        for r in &statement.receipts {
            insert.execute(rusqlite::params![r.channel, r.reference, r.amount.fen()])?;
        }
    }
    transaction.commit()?;
    db.execute_batch("CREATE INDEX ledger_ref ON ledger (channel, reference);")?;
    let matched: i64 = db.query_row(
        "SELECT COUNT(*) FROM receipts r JOIN ledger l ON l.channel = r.channel AND l.reference = r.reference
         WHERE l.amount = r.amount",
        [],
        |row| row.get(0),
    )?;
    Ok((matched as usize, start.elapsed().as_secs_f64()))
}

/// Peak resident memory of this process (Linux `VmHWM`), in MB.
fn peak_memory_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 1_000_003 } else { 10_007 };
    let n_runs = if full { 3 } else { 1 };
    let ledger = ledger_side(n);
    let statement = receipts(&ledger);
    let options = MatchOptions::default();

    let mut ours = Vec::new();
    let mut peer = Vec::new();
    let mut n_matched = 0;
    for _ in 0..n_runs {
        let start = Instant::now();
        let report = reconcile([&statement], &ledger, &options);
        let summary = summarize(&report);
        ours.push(start.elapsed().as_secs_f64());
        n_matched = summary.rows.iter().filter(|r| r.kind.starts_with("matched_")).map(|r| r.n_receipts).sum::<u64>();
        drop(report);

        let start = Instant::now();
        let joined = peer_join(&statement, &ledger);
        peer.push(start.elapsed().as_secs_f64());
        assert!(joined > 0, "the peer matched nothing");
    }
    let (ours, peer) = (median(ours), median(peer));
    let peak_mb = peak_memory_mb();
    let (sqlite_matched, sqlite_seconds) = match sqlite_join(&statement, &ledger) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("SQLite peer failed: {error}");
            (0, f64::NAN)
        }
    };
    println!("receipts {n}, ledger payments {n}, matched {n_matched}");
    println!(
        "reconcile + summarize: {:.3} s ({:.2} M receipts/s), peak memory {peak_mb:.0} MB",
        ours,
        n as f64 / ours / 1e6
    );
    println!("peer (bare hash join of channel + reference): {:.3} s; ratio {:.2}x", peer, ours / peer);
    println!(
        "SQLite (insert both sides in memory, index, join on channel + reference; matched {sqlite_matched}): {:.3} s; yibao is {:.1}x faster",
        sqlite_seconds,
        sqlite_seconds / ours
    );
}

//! Verification: positions gapless from the first, every record decodes,
//! claims its position and agrees with its looked-up columns (stream,
//! version, key), and every hash is `SM3(prev ++ stored bytes)`. Names the
//! first position that fails.

use crate::connect::{Database, Work};
use crate::read::hash_of;
use ledger::envelope::{self, Hash};
use ledger::log::{VerifyProblem, VerifyReport};
use ledger::{Head, Result};
use postgres::Client;

/// Records per page read.
const PAGE_RECORDS: u64 = 10_000;

/// One row with the columns verification compares with its stored bytes.
struct Row {
    position: u64,
    stream: String,
    version: i64,
    key: String,
    stored: Vec<u8>,
    hash: Vec<u8>,
}

fn page(client: &mut Client, from: u64, to: u64) -> Work<Vec<Row>> {
    let rows = client.query(
        "SELECT position, stream, version, key, stored, hash FROM yibao.records \
         WHERE position BETWEEN $1 AND $2 ORDER BY position",
        &[&(from as i64), &(to as i64)],
    )?;
    Ok(rows
        .into_iter()
        .map(|row| Row {
            position: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            stream: row.get(1),
            version: row.get(2),
            key: row.get(3),
            stored: row.get(4),
            hash: row.get(5),
        })
        .collect())
}

/// The first problem of one row, chained from `prev`.
fn check_row(row: &Row, prev: &Hash) -> Option<VerifyProblem> {
    let position = row.position;
    let head = match envelope::decode_record(&row.stored) {
        Ok((head, _)) => head,
        Err(error) => return Some(VerifyProblem::Decode { position, reason: error.0 }),
    };
    if head.position != position {
        return Some(VerifyProblem::Decode { position, reason: format!("claims position {}", head.position) });
    }
    if head.stream != row.stream || head.stream_version as i64 != row.version || head.idempotency_key != row.key {
        return Some(VerifyProblem::Decode {
            position,
            reason: "its stream, version or key columns disagree with its stored bytes".into(),
        });
    }
    if envelope::chain_hash(prev, &row.stored).as_slice() != row.hash.as_slice() {
        return Some(VerifyProblem::Hash { position });
    }
    None
}

/// Verifies records `from..=to` (0: to the head).
pub(crate) fn verify(database: &Database, from: u64, to: u64, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
    let from = from.max(1);
    let head = database.read_head()?;
    let to = if to == 0 { head.position } else { to.min(head.position) };
    let mut report = VerifyReport {
        first_position: from,
        n_records: 0,
        n_blocks: 0,
        last_good: Head { position: from - 1, hash: database.genesis() },
        problem: None,
        unfinished: None,
    };
    if from > 1 {
        let before = from - 1;
        let row = database.with_client(|client| {
            Ok(client.query_opt("SELECT hash FROM yibao.records WHERE position = $1", &[&(before as i64)])?)
        })?;
        match row {
            Some(row) => report.last_good.hash = hash_of(row.get(0), before)?,
            None => {
                report.problem = Some(VerifyProblem::Gap { expected: before, found: from });
                return Ok(report);
            }
        }
    }
    let mut next = from;
    while next <= to && report.problem.is_none() {
        let page_end = to.min(next + PAGE_RECORDS - 1);
        let rows = database.with_client(|client| page(client, next, page_end))?;
        report.n_blocks += 1;
        for row in &rows {
            if row.position != next {
                report.problem = Some(VerifyProblem::Gap { expected: next, found: row.position });
                break;
            }
            if let Some(problem) = check_row(row, &report.last_good.hash) {
                report.problem = Some(problem);
                break;
            }
            let hash = hash_of(row.hash.clone(), row.position)?;
            report.last_good = Head { position: row.position, hash };
            report.n_records += 1;
            next += 1;
        }
        if report.problem.is_none() && next <= page_end {
            report.problem = Some(VerifyProblem::Gap { expected: next, found: page_end + 1 });
        }
        progress(report.n_records);
    }
    Ok(report)
}

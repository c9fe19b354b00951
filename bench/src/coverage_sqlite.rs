//! The peer of the coverage rebuild: the same facts inserted into SQLite
//! tables (one transaction, no sync: a rebuild is not a durable write), then
//! the coverage state of every person-year computed with SQL into a table.
//!
//! The SQL knows one policy (六盘水 2021, as generated): the individual part
//! (280) in the concentrated period, the full premium (830) after it with a
//! 60-day wait, newborns from birth. It is a fair peer for the work (group
//! facts by person-year, sum by source, decide a state and a first covered
//! day), not a second implementation of every rule.

use crate::figures::Throughput;
use anyhow::Result;
use ledger::event::Payer;
use ledger::{Event, Identity};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

const SCHEMA: &str = "
CREATE TABLE persons (person TEXT PRIMARY KEY, region INTEGER, birth INTEGER, basis TEXT, voided INTEGER);
CREATE TABLE aliases (alias TEXT PRIMARY KEY, person TEXT);
CREATE TABLE money (person TEXT, year INTEGER, source TEXT, amount INTEGER, day INTEGER);
CREATE TABLE proxies (application TEXT PRIMARY KEY, person TEXT, year INTEGER, amount INTEGER, status TEXT, day INTEGER);
";

/// Days since 1970-01-01 of the policy's dates.
const CONCENTRATED_UNTIL: i64 = 18_717; // 2021-03-31
const COVERAGE_YEAR_START: i64 = 18_628; // 2021-01-01

const COVERAGE: &str = "
CREATE TABLE coverage AS
WITH contributions AS (
    SELECT person, year, source, amount, day FROM money
    UNION ALL
    SELECT person, year, 'proxy', amount, day FROM proxies WHERE status = 'credited'
), totals AS (
    SELECT person, year,
        SUM(CASE WHEN source <> 'refund' THEN amount ELSE 0 END) AS paid,
        SUM(CASE WHEN source = 'refund' THEN amount ELSE 0 END) AS refunded,
        SUM(CASE WHEN source = 'subsidy' THEN amount ELSE 0 END) AS subsidised,
        MIN(CASE WHEN source IN ('self', 'other', 'collector', 'proxy') THEN day END) AS first_paid
    FROM contributions GROUP BY person, year
), pending AS (
    SELECT person, year, COUNT(*) AS n FROM proxies WHERE status IN ('submitted', 'processing') GROUP BY person, year
)
SELECT p.person, t.year, t.paid, t.refunded, t.paid - t.refunded AS net,
    CASE WHEN p.basis LIKE 'newborn%' OR t.first_paid <= ?1 OR t.subsidised > 0 THEN 28000 ELSE 83000 END AS due,
    CASE
        WHEN p.voided IS NOT NULL THEN 'void'
        WHEN t.paid > 0 AND t.paid = t.refunded THEN 'refunded_to_source'
        WHEN q.n > 0 THEN 'pending'
        WHEN t.paid - t.refunded = 0 THEN 'registered_unpaid'
        WHEN t.paid - t.refunded < CASE WHEN t.first_paid <= ?1 OR t.subsidised > 0 THEN 28000 ELSE 83000 END
            THEN 'partially_paid'
        WHEN t.paid - t.refunded > CASE WHEN t.first_paid <= ?1 OR t.subsidised > 0 THEN 28000 ELSE 83000 END
            THEN 'overpaid'
        ELSE 'received'
    END AS state,
    CASE
        WHEN p.basis LIKE 'newborn%' THEN p.birth
        WHEN t.first_paid <= ?1 OR t.subsidised > 0 THEN ?2
        ELSE t.first_paid + 60
    END AS covered_from
FROM persons p
JOIN totals t ON t.person = p.person
LEFT JOIN pending q ON q.person = p.person AND q.year = t.year
";

fn days(date: ledger::Date) -> i64 {
    i64::from(date.0.signed_duration_since(chrono::NaiveDate::default()).num_days() as i32)
}

/// The person an identity stands for (newborns change identity).
fn person_of<'a>(aliases: &'a HashMap<Identity, Identity>, identity: &'a Identity) -> &'a Identity {
    aliases.get(identity).unwrap_or(identity)
}

/// Inserts the facts and computes coverage; returns the figures and the
/// number of person-years computed.
pub fn rebuild(dir: &Path, events: &[Event]) -> Result<(Throughput, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut connection = Connection::open(dir.join("coverage.sqlite"))?;
    connection.pragma_update(None, "journal_mode", "OFF")?;
    connection.pragma_update(None, "synchronous", "OFF")?;
    connection.execute_batch(SCHEMA)?;
    let started = Instant::now();
    let transaction = connection.transaction()?;
    insert_all(&transaction, events)?;
    transaction.execute(COVERAGE, params![CONCENTRATED_UNTIL, COVERAGE_YEAR_START])?;
    let n_person_years: u64 = transaction.query_row("SELECT COUNT(*) FROM coverage", [], |row| row.get(0))?;
    transaction.commit()?;
    Ok((Throughput::new(events.len() as u64, started.elapsed()), n_person_years))
}

fn insert_all(transaction: &rusqlite::Transaction<'_>, events: &[Event]) -> Result<()> {
    let mut person = transaction.prepare("INSERT OR REPLACE INTO persons VALUES (?1, ?2, ?3, ?4, NULL)")?;
    let mut voided = transaction.prepare("UPDATE persons SET voided = ?2 WHERE person = ?1")?;
    let mut alias = transaction.prepare("INSERT OR REPLACE INTO aliases VALUES (?1, ?2)")?;
    let mut money = transaction.prepare("INSERT INTO money VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut proxy = transaction.prepare("INSERT INTO proxies VALUES (?1, ?2, ?3, ?4, 'submitted', ?5)")?;
    let mut status = transaction.prepare("UPDATE proxies SET status = ?2 WHERE application = ?1")?;
    // Conversions keep the person: later facts under the new ID are filed
    // under the first one, as the ledger's projection does.
    let mut aliases: HashMap<Identity, Identity> = HashMap::new();
    for event in events {
        match event {
            Event::PersonRegisteredV1(e) => {
                let basis = serde_json::to_string(&e.basis)?;
                person.execute(params![e.person.to_string(), e.region.code(), days(e.birth_date), basis])?;
            }
            Event::IdentityConvertedV1(e) => {
                let first = person_of(&aliases, &e.from).clone();
                alias.execute(params![e.to.to_string(), first.to_string()])?;
                aliases.insert(e.to.clone(), first);
            }
            Event::PreRegistrationVoidedV1(e) => {
                voided.execute(params![person_of(&aliases, &e.person).to_string(), days(e.voided_on)])?;
            }
            Event::PaymentReceivedV1(e) => {
                let source = match e.payer {
                    Payer::Myself => "self",
                    Payer::Other(_) => "other",
                    Payer::Collector(_) => "collector",
                };
                let who = person_of(&aliases, &e.person).to_string();
                let day = days(e.paid_at.business_date());
                money.execute(params![who, e.coverage_year, source, e.amount.fen(), day])?;
            }
            Event::SubsidyGrantedV1(e) => {
                let who = person_of(&aliases, &e.person).to_string();
                let amount: i64 = e.parts.iter().map(|part| part.amount.fen()).sum();
                money.execute(params![who, e.coverage_year, "subsidy", amount, days(e.granted_on)])?;
            }
            Event::RefundIssuedV1(e) => {
                let who = person_of(&aliases, &e.person).to_string();
                let day = days(e.refunded_at.business_date());
                money.execute(params![who, e.coverage_year, "refund", e.amount.fen(), day])?;
            }
            Event::ProxySubmittedV1(e) => {
                let who = person_of(&aliases, &e.member).to_string();
                let day = days(e.at.business_date());
                proxy.execute(params![e.application_id, who, e.coverage_year, e.amount.fen(), day])?;
            }
            Event::ProxyProcessingV1(e) => _ = status.execute(params![e.application_id, "processing"])?,
            Event::ProxyCreditedV1(e) => _ = status.execute(params![e.application_id, "credited"])?,
            Event::ProxyFailedV1(e) => _ = status.execute(params![e.application_id, "failed"])?,
            Event::ProxyReturnedV1(e) => _ = status.execute(params![e.application_id, "returned"])?,
            _ => {}
        }
    }
    Ok(())
}

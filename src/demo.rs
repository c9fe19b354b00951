//! `yibao demo`: a ledger built from the embedded fixtures, step by step.

use crate::commands;
use anyhow::Result;
use ledger::OpenMode;
use operations::Ledger;
use operations::Location;
use projections::coverage::Coverage;
use projections::{LedgerTotals, Projection};
use std::path::Path;

const FACTS: &str = include_str!("../fixtures/demo/facts.jsonl");
/// The employee whose personal account pays in the demo facts.
const DEMO_HOLDER: &str = "520502197811204159";
const BAD_FACTS: &str = include_str!("../fixtures/demo/bad.jsonl");
/// More payments and refunds of October–November 2024, and the bank
/// statement of the collection account with one break of each kind.
const MORE_PAYMENTS: &str = include_str!("../fixtures/receipts/ledger-payments.jsonl");
const STATEMENT: &[u8] = include_bytes!("../fixtures/receipts/camt053-breaks.xml");
/// A statement that fails its own checks: reported, never matched.
const BROKEN_STATEMENT: &[u8] = include_bytes!("../fixtures/receipts/camt053-failing-checks.xml");
const POLICIES: [(&str, &str); 6] = [
    ("fixtures/policies/liupanshui-2021.toml", include_str!("../fixtures/policies/liupanshui-2021.toml")),
    ("fixtures/policies/bijie-2025.toml", include_str!("../fixtures/policies/bijie-2025.toml")),
    ("fixtures/policies/guigang-2021.toml", include_str!("../fixtures/policies/guigang-2021.toml")),
    ("fixtures/policies/anqing-2023.toml", include_str!("../fixtures/policies/anqing-2023.toml")),
    ("fixtures/policies/anqing-2024.toml", include_str!("../fixtures/policies/anqing-2024.toml")),
    ("fixtures/policies/shanxi-2022.toml", include_str!("../fixtures/policies/shanxi-2022.toml")),
];

fn embedded(text: &'static str) -> &'static [u8] {
    text.as_bytes()
}

fn step(title: &str) {
    outln!("\n== {title}");
}

pub fn run(location: &Location) -> Result<()> {
    outln!("yibao demo: a Bijie 2025 resident-insurance ledger in {}", location.describe());
    step("1. create (or open) the ledger");
    commands::init(location)?;
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(crate::exit::classified)?;
    let log = ledger.log();

    step("1b. record the region-year policies of the sources (coverage reads them from the log only)");
    for (name, text) in POLICIES {
        let loaded = crate::policy::load_document(log, Path::new(name), text.to_string(), None)?;
        crate::policy::report(Path::new(name), &loaded);
    }

    step("2. import the demo facts: registrations, payments, a newborn's identity conversion, family-account proxy payments (one credited, one failed and returned), a hardship subsidy, a duplicate payment and its refund");
    commands::import_into(&ledger, embedded(FACTS), "fixtures/demo/facts.jsonl", "demo", Default::default())?;
    commands::import_into(
        &ledger,
        embedded(MORE_PAYMENTS),
        "fixtures/receipts/ledger-payments.jsonl",
        "demo",
        Default::default(),
    )?;

    step("3. import the same file again: idempotent, nothing new");
    commands::import_into(&ledger, embedded(FACTS), "fixtures/demo/facts.jsonl", "demo", Default::default())?;

    step("4. import a file with bad lines: refused whole, each error named");
    let head = log.durable_head().position;
    match commands::import_into(&ledger, embedded(BAD_FACTS), "fixtures/demo/bad.jsonl", "demo", Default::default()) {
        Ok(()) => anyhow::bail!("the bad demo file was accepted"),
        Err(error) => outln!("refused (exit code 2 from `yibao import`):\n{error:#}"),
    }
    let unchanged = log.durable_head().position == head;
    outln!(
        "head still at position {} ({})",
        log.durable_head().position,
        if unchanged { "nothing appended" } else { "CHANGED" }
    );
    let head = log.durable_head().position;

    step("4b. coverage, as an insurance office sees it (IDs masked): 王秀英's premium came from her family's employee account (credited: received); 刘芳's proxy application failed and went back to the account (refunded to source)");
    coverage_table(location, log)?;
    drop(ledger);

    step("4c. the family account of employee 520502197811204159 (职工医保个人账户家庭共济): bindings, applications, the personal account");
    crate::family::demo_summary(location, DEMO_HOLDER)?;

    step("5. the log (last 40 events)");
    commands::log(location, head.saturating_sub(39).max(1), 40, false)?;

    step("6. verify the SM3 chain");
    commands::verify(location, 1, 0)?;

    step("7. export, restore into an empty ledger, compare heads");
    let export_path = location.data.join("demo-export.jsonl");
    let restore_dir = location.data.join("demo-restore");
    if restore_dir.exists() {
        std::fs::remove_dir_all(&restore_dir)?;
    }
    commands::export(location, Some(&export_path))?;
    commands::restore(&Location::sled(&restore_dir), &export_path)?;

    step("7b. back up (run it every minute: a second run finds nothing new), sign the log's tree head with the office's SM2 key, and issue a certificate a hospital checks with nothing but the file and the public key");
    let backup_dir = location.data.join("demo-backup");
    crate::backup_cmd::backup(location, &backup_dir, operations::backup::DEFAULT_SEGMENT_BYTES, false)?;
    crate::backup_cmd::backup(location, &backup_dir, operations::backup::DEFAULT_SEGMENT_BYTES, false)?;
    if !operations::keys::private_key_path(location.data()).exists() {
        crate::signing::keys(location, crate::signing::KeysCommand::Init)?;
    }
    let head_path = location.data.join("demo-signed-head.txt");
    let sign = crate::signing::CheckpointCommand::Sign { out: Some(head_path.clone()), size: None };
    crate::signing::checkpoint(location, sign)?;
    let certificate_path = location.data.join("demo-certificate.txt");
    crate::certificate::issue_to(location, "520502198503121233", 2025, &certificate_path)?;
    crate::certificate::verify_offline(&certificate_path, &operations::keys::public_key_path(location.data()))?;

    step("8. replay the log twice into fresh projections: the money per coverage year, and the state digest");
    let log = commands::open(location, OpenMode::Existing)?;
    let first: LedgerTotals = replay::rebuild(&*log, 0, &mut |_| {})?;
    let second: LedgerTotals = replay::rebuild(&*log, 0, &mut |_| {})?;
    for (year, totals) in &first.years {
        outln!(
            "{year}: {} payments {} | {} subsidies {} | {} proxy credited {} | {} refunds {} to channels, {} to personal accounts",
            totals.n_payments, totals.paid, totals.n_subsidies, totals.subsidised, totals.n_proxy_credited, totals.proxy_credited,
            totals.n_refunds, totals.refunded_to_channel, totals.refunded_to_personal_account
        );
    }
    let (digest, again) = (replay::state_digest(&first), replay::state_digest(&second));
    outln!("state digest at position {}: {}", first.position(), hex::encode(digest));
    outln!("second replay: {}", if digest == again { "same digest" } else { "DIFFERENT digest" });
    let coverage_first: Coverage = replay::rebuild(&*log, 0, &mut |_| {})?;
    let coverage_second: Coverage = replay::rebuild(&*log, 0, &mut |_| {})?;
    let (digest, again) = (coverage_first.digest(), coverage_second.digest());
    outln!("coverage digest at position {}: {}", coverage_first.position(), hex::encode(digest));
    outln!("second coverage rebuild: {}", if digest == again { "same digest" } else { "DIFFERENT digest" });

    step("9. reconcile October–November 2024 with the collection account's bank statement (camt.053), and a statement that fails its own checks: one break of each kind");
    let camt053 = reconcile::Format::Camt053 { channel: None };
    let mut statements = Vec::new();
    for (name, bytes) in [
        ("fixtures/receipts/camt053-breaks.xml", STATEMENT),
        ("fixtures/receipts/camt053-failing-checks.xml", BROKEN_STATEMENT),
    ] {
        statements.push(reconcile::parse_bytes(name, bytes, &camt053).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let period = ledger::Date::ymd(2024, 10, 1).zip(ledger::Date::ymd(2024, 11, 30));
    let period = period.map(|(from, to)| reconcile::Period { from, to });
    let clean = crate::reconcile_cmd::compare_and_record(&*log, &statements, period)?;
    outln!("(`yibao reconcile` would exit {} here)", if clean { 0 } else { 1 });
    outln!(
        "\nnext: `yibao --data {d} coverage 520502198503121233 --on 2025-06-01`, `yibao --data {d} unpaid --region 520500 --year 2025`, `yibao --data {d} verify`; \
         the office page: `yibao --data {d} serve --insecure-no-auth`, then http://127.0.0.1:8080/?id=520502198503121233",
        d = location.describe()
    );
    Ok(())
}

/// One line per person-year of the demo: state, due, received, cover.
fn coverage_table(location: &Location, log: &dyn ledger::LogReader) -> Result<()> {
    let coverage = crate::lookup::coverage(location, log)?;
    let mut persons: Vec<ledger::Identity> = Vec::new();
    log.scan(1, u64::MAX, |envelope| {
        if let ledger::Event::PersonRegisteredV1(e) = &envelope.event {
            if let Some(person) = coverage.person(&e.person) {
                if !persons.contains(&person.current) {
                    persons.push(person.current);
                }
            }
        }
        Ok(())
    })?;
    outln!(
        "{:<20} {:>4}  {:<18} {:>8} {:>9} {:>11}  {:<12} name",
        "ID",
        "year",
        "state",
        "due",
        "received",
        "outstanding",
        "covered from"
    );
    let money = |amount: Option<ledger::Money>| amount.map_or("?".to_string(), |m| m.to_string());
    for person in &persons {
        let name = coverage.person(person).and_then(|p| p.name).unwrap_or_default();
        for year in coverage.years_of(person) {
            let Some(view) = coverage.person_year(person, year)? else { continue };
            let state = view.state.words();
            let from = view.covered_from.map_or("-".to_string(), |d| d.to_string());
            outln!(
                "{:<20} {:>4}  {:<18} {:>8} {:>9} {:>11}  {:<12} {name}",
                person.masked(),
                year,
                state,
                money(view.amount_due),
                view.net_received.to_string(),
                money(view.outstanding),
                from
            );
        }
    }
    Ok(())
}

//! `yibao register` and `yibao pay`: one fact from command-line flags,
//! through the same parser and checks as a line of an import file.

use crate::commands::open;
use crate::exit::BadInput;
use anyhow::{Context, Result};
use ledger::{BeijingTime, OpenMode, SledLog};
use serde_json::{json, Map, Value};
use std::path::Path;
use yibao::facts;

/// The flags of `yibao register`.
pub struct Registration {
    pub id: String,
    pub name: String,
    pub region: String,
    pub birth_date: Option<String>,
    pub registered_on: Option<String>,
    pub basis: Option<String>,
}

/// The flags of `yibao pay`.
pub struct Payment {
    pub id: String,
    pub year: u16,
    pub amount: String,
    pub channel: String,
    pub channel_ref: String,
    pub paid_at: Option<String>,
    pub paid_for_by: Option<String>,
    pub collector: Option<String>,
}

fn today() -> String {
    BeijingTime::now().business_date().to_string()
}

pub fn register(data: &Path, flags: Registration) -> Result<()> {
    let mut fact = json!({
        "type": "person_registered", "v": 1,
        "person": flags.id, "name": flags.name, "region": flags.region,
        "registered_on": flags.registered_on.unwrap_or_else(today),
    });
    let birth_date = match flags.birth_date {
        Some(date) => date,
        None => birth_date_of(&flags.id)?,
    };
    insert(&mut fact, "birth_date", Value::String(birth_date));
    if let Some(basis) = flags.basis {
        insert(&mut fact, "basis", basis_value(&basis)?);
    }
    append_one(data, fact, "cli:register")
}

pub fn pay(data: &Path, flags: Payment) -> Result<()> {
    let payer = match (flags.paid_for_by, flags.collector) {
        (Some(_), Some(_)) => return Err(BadInput("give --paid-for-by or --collector, not both".into()).into()),
        (Some(other), None) => json!({ "other": other }),
        (None, Some(collector)) => json!({ "collector": collector }),
        (None, None) => json!("myself"),
    };
    let paid_at = flags.paid_at.unwrap_or_else(|| BeijingTime::now().to_string());
    let fact = json!({
        "type": "payment_received", "v": 1,
        "person": flags.id, "coverage_year": flags.year, "amount": flags.amount,
        "channel": flags.channel, "channel_ref": flags.channel_ref, "payer": payer, "paid_at": paid_at,
    });
    append_one(data, fact, "cli:pay")
}

fn insert(fact: &mut Value, field: &str, value: Value) {
    if let Value::Object(map) = fact {
        map.insert(field.to_string(), value);
    }
}

/// A resident ID carries the birth date; other certificates need the flag.
fn birth_date_of(id: &str) -> Result<String> {
    let identity: ledger::Identity = id.parse().map_err(|e| BadInput(format!("--id: {e}")))?;
    identity
        .birth_date()
        .map(|date| date.to_string())
        .ok_or_else(|| BadInput("--birth-date is needed for an other-certificate registration".into()).into())
}

/// `standard`, `newborn`, `newborn_pre_registration`,
/// `interrupted:LAST_PAID_YEAR` or `from_employee_insurance:LEFT_ON`.
fn basis_value(text: &str) -> Result<Value> {
    let value = match text.split_once(':') {
        None => Value::String(text.to_string()),
        Some(("interrupted", year)) => {
            let year: u16 = year.parse().map_err(|_| BadInput(format!("--basis: `{year}` is not a year")))?;
            json!({ "interrupted": { "last_paid_year": year } })
        }
        Some(("from_employee_insurance", left_on)) => json!({ "from_employee_insurance": { "left_on": left_on } }),
        Some(_) => return Err(BadInput(format!("--basis: `{text}` is not a basis; see --help")).into()),
    };
    Ok(value)
}

/// Parses the fact as an import line would be, then appends it.
pub fn append_one(data: &Path, fact: Value, actor: &str) -> Result<()> {
    let log = open(data, OpenMode::Existing)?;
    let position = append_value(&log, fact, actor)?;
    outln!("recorded at position {position}; head {}", hex::encode(log.durable_head().hash));
    Ok(())
}

pub fn append_value(log: &SledLog, fact: Value, actor: &str) -> Result<u64> {
    let Value::Object(map) = fact else { return Err(BadInput("a fact is a JSON object".into()).into()) };
    let text = Value::Object(map.into_iter().collect::<Map<_, _>>()).to_string();
    let channels = crate::commands::channels(log.dir())?;
    let new = facts::parse_line_with(&text, 1, actor, &channels).map_err(|e| match e.field {
        Some(field) => BadInput(format!("field `{field}`: {}", e.message)),
        None => BadInput(e.message),
    })?;
    let summary = facts::summary(&new.event);
    let outcome = log.append_blocking(vec![new]).context("appending the fact")?;
    let position = outcome.positions.first().copied().unwrap_or(0);
    if outcome.n_appended == 0 {
        outln!("already recorded: {summary}");
    } else {
        outln!("{summary}");
    }
    Ok(position)
}

/// `yibao generate`: a synthetic prefecture-year as JSON Lines of facts.
pub fn generate(persons: u64, seed: u64, out: Option<&Path>) -> Result<()> {
    use std::io::Write;
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).map_err(|e| BadInput(format!("cannot create {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = std::io::BufWriter::with_capacity(1 << 20, sink);
    let bar = crate::progress::bar(persons, "generate");
    let mut n_facts = 0u64;
    let mut last_person = 0;
    // Standard output closed by its reader (`generate | head`): stop quietly.
    let stopped = |error: std::io::Error| -> anyhow::Error {
        if out.is_none() {
            crate::output::stopped(&error);
        }
        error.into()
    };
    for event in yibao::generate::facts(seed, persons) {
        serde_json::to_writer(&mut sink, &facts::to_line(&event)).map_err(|e| stopped(e.into()))?;
        sink.write_all(b"\n").map_err(stopped)?;
        n_facts += 1;
        if let ledger::Event::PersonRegisteredV1(_) = event {
            last_person += 1;
            if last_person % 10_000 == 0 {
                bar.set_position(last_person);
            }
        }
    }
    sink.flush().map_err(stopped)?;
    bar.finish_and_clear();
    if let Some(path) = out {
        eprintln!("{}: {n_facts} facts for {persons} persons (六盘水 2021, seed {seed})", path.display());
    }
    Ok(())
}

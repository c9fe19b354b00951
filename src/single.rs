//! `yibao register` and `yibao pay`: one fact from command-line flags, built
//! as its typed event and put through the same checks as a line of an
//! import file (`facts::admit`), errors naming the flag and the field.

use crate::exit::BadInput;
use anyhow::Result;
use ledger::event::{EnrolmentBasis, Payer, PaymentReceived, PersonRegistered};
use ledger::{BeijingTime, Date, Identity, OpenMode};
use operations::facts;
use operations::register::{WriteError, Written};
use operations::Ledger;
use operations::Location;
use std::path::Path;
use std::str::FromStr;

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

/// Which flag gives which field of a fact (`("channel_ref", "--ref")`), so
/// that an error names what the user typed as well as the field.
pub type FlagNames = &'static [(&'static str, &'static str)];

const REGISTER_FLAGS: FlagNames = &[
    ("person", "--id"),
    ("name", "--name"),
    ("region", "--region"),
    ("birth_date", "--birth-date"),
    ("registered_on", "--registered-on"),
    ("basis", "--basis"),
];

const PAY_FLAGS: FlagNames = &[
    ("person", "--id"),
    ("coverage_year", "--year"),
    ("amount", "--amount"),
    ("channel", "--channel"),
    ("channel_ref", "--ref"),
    ("payer.other", "--paid-for-by"),
    ("payer.collector", "--collector"),
    ("payer", "--collector"),
    ("paid_at", "--paid-at"),
];

/// A field's value refused: the flag that gave it (if one did), the field
/// and why.
pub fn field_error(flags: FlagNames, field: &str, reason: impl std::fmt::Display) -> anyhow::Error {
    match flags.iter().find(|(name, _)| *name == field) {
        Some((_, flag)) => BadInput(format!("{flag} (field `{field}`): {reason}")),
        None => BadInput(format!("field `{field}`: {reason}")),
    }
    .into()
}

/// A flag's text as the type of the field it gives.
pub fn flag_value<T: FromStr>(flags: FlagNames, field: &str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| field_error(flags, field, e))
}

pub fn register(location: &Location, flags: Registration) -> Result<()> {
    let registration = registration(flags)?;
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(crate::exit::classified)?;
    let written = operations::register::register(&ledger, registration, "cli:register")
        .map_err(|e| write_error(REGISTER_FLAGS, e))?;
    print_written(&written);
    Ok(())
}

/// The typed registration the flags give, each error naming its flag.
fn registration(flags: Registration) -> Result<PersonRegistered> {
    let person: Identity = flag_value(REGISTER_FLAGS, "person", &flags.id)?;
    let birth_date = match &flags.birth_date {
        Some(date) => flag_value(REGISTER_FLAGS, "birth_date", date)?,
        None => birth_date_of(&flags.id)?,
    };
    let registered_on = match &flags.registered_on {
        Some(date) => flag_value(REGISTER_FLAGS, "registered_on", date)?,
        None => Date::today(),
    };
    let basis = match &flags.basis {
        Some(basis) => basis_value(basis)?,
        None => EnrolmentBasis::default(),
    };
    Ok(PersonRegistered {
        person,
        name: flags.name,
        region: flag_value(REGISTER_FLAGS, "region", &flags.region)?,
        birth_date,
        registered_on,
        basis,
    })
}

pub fn pay(location: &Location, flags: Payment) -> Result<()> {
    let payment = payment(flags)?;
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(crate::exit::classified)?;
    let written = operations::register::pay(&ledger, payment, "cli:pay").map_err(|e| write_error(PAY_FLAGS, e))?;
    print_written(&written);
    Ok(())
}

/// The typed payment the flags give, each error naming its flag.
fn payment(flags: Payment) -> Result<PaymentReceived> {
    let payer = match (flags.paid_for_by, flags.collector) {
        (Some(_), Some(_)) => return Err(BadInput("give --paid-for-by or --collector, not both".into()).into()),
        (Some(other), None) => Payer::Other(flag_value(PAY_FLAGS, "payer.other", &other)?),
        (None, Some(collector)) => Payer::Collector(collector),
        (None, None) => Payer::Myself,
    };
    let paid_at = match &flags.paid_at {
        Some(text) => flag_value(PAY_FLAGS, "paid_at", text)?,
        None => BeijingTime::now(),
    };
    Ok(PaymentReceived {
        person: flag_value(PAY_FLAGS, "person", &flags.id)?,
        coverage_year: flags.year,
        amount: flag_value(PAY_FLAGS, "amount", &flags.amount)?,
        channel: flags.channel,
        channel_ref: flags.channel_ref,
        payer,
        paid_at,
    })
}

/// A refused field named by the flag that gave it; any other error keeps
/// its kind (and exit code).
fn write_error(flags: FlagNames, error: WriteError) -> anyhow::Error {
    match error {
        WriteError::Field(field) => field_error(flags, field.field, field.reason),
        other => crate::exit::classified(other),
    }
}

/// What was appended (or found already recorded), and the head.
fn print_written(written: &Written) {
    print_summary(written);
    outln!("recorded at position {}; head {}", written.position, written.head.hash);
}

/// A resident ID carries the birth date; other certificates need the flag.
fn birth_date_of(id: &str) -> Result<Date> {
    let identity: Identity = id.parse().map_err(|e| BadInput(format!("--id: {e}")))?;
    identity
        .birth_date()
        .map(Date)
        .ok_or_else(|| BadInput("--birth-date is needed for an other-certificate registration".into()).into())
}

/// `standard`, `newborn`, `newborn_pre_registration`,
/// `interrupted:LAST_PAID_YEAR` or `from_employee_insurance:LEFT_ON`.
fn basis_value(text: &str) -> Result<EnrolmentBasis> {
    let refused = || BadInput(format!("--basis: `{text}` is not a basis; see --help"));
    let basis = match text.split_once(':') {
        None => match text {
            "standard" => EnrolmentBasis::Standard,
            "newborn" => EnrolmentBasis::Newborn,
            "newborn_pre_registration" => EnrolmentBasis::NewbornPreRegistration,
            _ => return Err(refused().into()),
        },
        Some(("interrupted", year)) => {
            let last_paid_year = year.parse().map_err(|_| BadInput(format!("--basis: `{year}` is not a year")))?;
            EnrolmentBasis::Interrupted { last_paid_year }
        }
        Some(("from_employee_insurance", left_on)) => EnrolmentBasis::FromEmployeeInsurance {
            left_on: left_on.parse().map_err(|e| BadInput(format!("--basis: {e}")))?,
        },
        Some(_) => return Err(refused().into()),
    };
    Ok(basis)
}

fn print_summary(written: &Written) {
    if written.repeat {
        outln!("already recorded: {}", written.summary);
    } else {
        outln!("{}", written.summary);
    }
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
    let bar = operations::progress::bar(persons, "generate");
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

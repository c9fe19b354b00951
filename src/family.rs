//! `yibao family …`: bindings (共济绑定, 取消授权), proxy applications (代缴申请)
//! and their steps, the personal account, the stuck list. An adapter:
//! flags to typed input, the operations of `operations::family`, their
//! answers as text or JSON.

use crate::exit::{classified, BadInput};
use crate::lookup::parse_identity;
use crate::single::{field_error, flag_value, FlagNames};
use anyhow::Result;
use clap::Subcommand;
use ledger::event::{FamilyBindingCreated, FamilyBindingRevoked};
use ledger::{BeijingTime, Date, Identity, LogStore, OpenMode};
use operations::family::{self, ApplicationListed, ApplyRequest, FamilyError, PeriodListed, Transition, Writer};
use operations::Location;
use operations::StorageError;
use operations::{Ledger, Projections, Recorded};
use projections::coverage::Named;

/// `yibao family …`.
#[derive(Subcommand)]
pub enum FamilyCommand {
    /// Bindings of a person, as holder (授权记录) and as bound member
    /// (被授权记录), and the applications they are part of. IDs masked.
    List {
        /// ID number of the person.
        id: String,
        /// As JSON (the answer of `GET /v1/family/persons/{id}`).
        #[arg(long)]
        json: bool,
    },
    /// 共济绑定: bind a family member to an employee's personal account.
    ///
    /// Refused (exit 2, nothing recorded) for a relation that is not a near
    /// relative, or where the policy's province rule says no.
    Bind {
        /// ID number of the employee who holds the personal account (授权人).
        #[arg(long)]
        holder: String,
        /// Province of the employee personal account, e.g. 520000 (Guizhou).
        #[arg(long)]
        account_province: String,
        /// ID number of the family member (共济对象).
        #[arg(long)]
        member: String,
        /// spouse, parent, child, sibling, paternal_grandparent,
        /// maternal_grandparent, paternal_grandchild, maternal_grandchild
        /// (or 配偶, 父母, 子女, 兄弟姐妹, 祖父母, 外祖父母, 孙子女, 外孙子女).
        #[arg(long)]
        relation: String,
        /// Day of the binding (default: today in China).
        #[arg(long)]
        on: Option<String>,
    },
    /// 取消授权: the holder revokes a binding; no new applications after it,
    /// applications in flight continue to their end.
    Revoke {
        #[arg(long)]
        holder: String,
        #[arg(long)]
        member: String,
        /// Day of the revocation (default: today in China).
        #[arg(long)]
        on: Option<String>,
    },
    /// 代缴申请: apply to pay a bound member's premium from the personal account.
    Apply {
        #[arg(long)]
        holder: String,
        #[arg(long)]
        member: String,
        /// Coverage year the premium is for.
        #[arg(long)]
        year: u16,
        /// Amount in yuan, e.g. 400.
        #[arg(long)]
        amount: String,
        /// Application id (default: DJ-YEAR-HOLDER-MEMBER-N from the IDs' last digits).
        #[arg(long = "id")]
        application_id: Option<String>,
        /// When it was submitted (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// 受理中: the application is being processed.
    Processing(Step),
    /// 缴费到账成功: the premium is paid (only now does it count).
    Credited(Step),
    /// 受理失败: the application failed (give --reason).
    Failed(Step),
    /// 原渠道返还: a failed application's money is back in the personal account.
    Returned(Step),
    /// The personal account of an employee, per coverage year: debited,
    /// returned, net, credited, in flight.
    Account {
        /// ID number of the holder.
        holder: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Applications still in flight longer than the normal duration (the
    /// policy's `family_account.processing_days`: 3 days in Bijie).
    Stuck {
        /// Override the policy's duration: `3d`, `72h`.
        #[arg(long = "older-than", value_parser = duration_hours)]
        older_than_hours: Option<i64>,
        /// The moment to judge at (default: now).
        #[arg(long)]
        now: Option<BeijingTime>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The flags of one step of an application.
#[derive(clap::Args)]
pub struct Step {
    /// The application id.
    application_id: String,
    /// Why it failed (受理失败; required for `failed`).
    #[arg(long)]
    reason: Option<String>,
    /// When (default: now).
    #[arg(long)]
    at: Option<String>,
}

pub fn run(location: &Location, command: FamilyCommand) -> Result<()> {
    match command {
        FamilyCommand::List { id, json } => list(location, &id, json),
        FamilyCommand::Bind { holder, account_province, member, relation, on } => {
            let relation =
                projections::family::parse_relation(&relation).map_err(|e| BadInput(format!("--relation: {e}")))?;
            let binding = FamilyBindingCreated {
                holder: flag_value(BIND_FLAGS, "holder", &holder)?,
                account_province: flag_value(BIND_FLAGS, "account_province", &account_province)?,
                member: flag_value(BIND_FLAGS, "member", &member)?,
                relation,
                bound_on: date_flag(BIND_FLAGS, "bound_on", on.as_deref())?,
            };
            let named = persons_named(&[&binding.holder, &binding.member]);
            let recorded =
                write(location, BIND_FLAGS, &named, |writer| family::bind(writer, binding, "cli:family-bind"))?;
            print_recorded(&recorded);
            Ok(())
        }
        FamilyCommand::Revoke { holder, member, on } => {
            let revocation = FamilyBindingRevoked {
                holder: flag_value(REVOKE_FLAGS, "holder", &holder)?,
                member: flag_value(REVOKE_FLAGS, "member", &member)?,
                revoked_on: date_flag(REVOKE_FLAGS, "revoked_on", on.as_deref())?,
            };
            let named = persons_named(&[&revocation.holder, &revocation.member]);
            let recorded = write(location, REVOKE_FLAGS, &named, |writer| {
                family::revoke(writer, revocation, "cli:family-revoke")
            })?;
            print_recorded(&recorded);
            Ok(())
        }
        FamilyCommand::Apply { holder, member, year, amount, application_id, at } => {
            apply(location, ApplyFlags { holder, member, year, amount, application_id, at })
        }
        FamilyCommand::Processing(step) => transition(location, "processing", step),
        FamilyCommand::Credited(step) => transition(location, "credited", step),
        FamilyCommand::Failed(step) => transition(location, "failed", step),
        FamilyCommand::Returned(step) => transition(location, "returned", step),
        FamilyCommand::Account { holder, json } => account(location, &holder, json),
        FamilyCommand::Stuck { older_than_hours, now, json } => stuck(location, older_than_hours, now, json),
    }
}

const BIND_FLAGS: FlagNames = &[
    ("holder", "--holder"),
    ("account_province", "--account-province"),
    ("member", "--member"),
    ("relation", "--relation"),
    ("bound_on", "--on"),
];

const REVOKE_FLAGS: FlagNames = &[("holder", "--holder"), ("member", "--member"), ("revoked_on", "--on")];

const APPLY_FLAGS: FlagNames = &[
    ("application_id", "--application-id"),
    ("holder", "--holder"),
    ("member", "--member"),
    ("coverage_year", "--year"),
    ("amount", "--amount"),
    ("at", "--at"),
];

const STEP_FLAGS: FlagNames = &[("application_id", "APPLICATION_ID"), ("at", "--at"), ("reason", "--reason")];

/// A date flag, today (UTC+8) when not given.
fn date_flag(flags: FlagNames, field: &str, text: Option<&str>) -> Result<Date> {
    text.map_or_else(|| Ok(Date::today()), |text| flag_value(flags, field, text))
}

/// A time flag, now when not given.
fn time_flag(flags: FlagNames, field: &str, text: Option<&str>) -> Result<BeijingTime> {
    text.map_or_else(|| Ok(BeijingTime::now()), |text| flag_value(flags, field, text))
}

/// The persons a family fact names, for the store to read.
fn persons_named(identities: &[&Identity]) -> Named {
    let mut named = Named::default();
    identities.iter().for_each(|identity| named.identity(identity));
    named
}

/// Runs a family write against the ledger at its head, judged on what
/// `named` reads from the person store (the persons and applications the
/// fact names); a field the edge refuses is named by the flag that gave it.
fn write<T>(
    location: &Location,
    flags: FlagNames,
    named: &Named,
    operation: impl FnOnce(&Writer<'_, dyn LogStore>) -> Result<T, FamilyError>,
) -> Result<T> {
    let ledger = Ledger::open(location, OpenMode::Existing).map_err(classified)?;
    let _alone = location.decide_alone().map_err(|e| classified(StorageError::from(e)))?;
    let at = ledger.projections_naming(named).map_err(classified)?;
    let writer = Writer::of(&ledger, &at).map_err(classified)?;
    operation(&writer).map_err(|error| match error {
        FamilyError::Field(error) => field_error(flags, error.field, error.reason),
        other => classified(other),
    })
}

/// The person's family records and coverage at the head, from the store.
fn read_person(location: &Location, person: &Identity) -> Result<Projections> {
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    ledger.projections_naming(&persons_named(&[person])).map_err(classified)
}

/// What recording a fact did, as the user reads it.
pub fn print_recorded(recorded: &Recorded) {
    match recorded {
        Recorded::Appended { position, head, summary } => {
            outln!("{summary}");
            outln!("recorded at position {position}; head {}", hex::encode(head.hash));
        }
        Recorded::Repeat { position, what } => {
            outln!("already recorded at position {position}: {what}; nothing appended");
        }
    }
}

/// The flags of `yibao family apply`.
struct ApplyFlags {
    holder: String,
    member: String,
    year: u16,
    amount: String,
    application_id: Option<String>,
    at: Option<String>,
}

fn apply(location: &Location, flags: ApplyFlags) -> Result<()> {
    let holder = parse_identity(&flags.holder).map_err(|e| BadInput(format!("--holder: {e:#}")))?;
    let member = parse_identity(&flags.member).map_err(|e| BadInput(format!("--member: {e:#}")))?;
    let request = ApplyRequest {
        holder,
        member,
        coverage_year: flags.year,
        amount: flag_value(APPLY_FLAGS, "amount", &flags.amount)?,
        application_id: flags.application_id.as_deref().map(application_id_flag).transpose()?,
        at: time_flag(APPLY_FLAGS, "at", flags.at.as_deref())?,
    };
    let named = family::apply_named(&request);
    let applied = write(location, APPLY_FLAGS, &named, |writer| family::apply(writer, request, "cli:family-apply"))?;
    print_recorded(&applied.recorded);
    outln!("application {}", applied.application_id);
    Ok(())
}

/// An application id in canonical form (`ledger::text`), as the fact will hold it.
fn application_id_flag(text: &str) -> Result<String> {
    ledger::text::identifier("application_id", text)
        .map_err(|e| BadInput(format!("application id: {}", e.reason)).into())
}

fn transition(location: &Location, name: &str, step: Step) -> Result<()> {
    // Canonical before the operation looks it up, as the fact will be.
    let application_id = application_id_flag(&step.application_id)?;
    let at = time_flag(STEP_FLAGS, "at", step.at.as_deref())?;
    let transition = match (name, step.reason) {
        ("failed", Some(reason)) => Transition::Failed { reason },
        ("failed", None) => return Err(BadInput("`failed` needs --reason (受理失败的原因)".into()).into()),
        (_, Some(_)) => return Err(BadInput("--reason is for `failed` only".into()).into()),
        ("processing", None) => Transition::Processing,
        ("credited", None) => Transition::Credited,
        _ => Transition::Returned,
    };
    let mut named = Named::default();
    named.application(&application_id);
    let recorded = write(location, STEP_FLAGS, &named, |writer| {
        family::transition(writer, application_id, transition, at, "cli:family")
    })?;
    print_recorded(&recorded);
    Ok(())
}

fn binding_line(other: &str, period: &PeriodListed) -> String {
    let state = match period.revoked_on {
        Some(on) => format!("revoked {on} (取消授权)"),
        None => "active".to_string(),
    };
    format!(
        "  {:<20} {:<32} account province {}  bound {} (position {})  {state}",
        other, period.relation, period.account_province, period.bound_on, period.bound_position
    )
}

fn application_line(application: &ApplicationListed) -> String {
    format!(
        "  {:<26} holder {}  member {}  {}  {:>8}  {}  submitted {}",
        application.application_id,
        application.holder,
        application.member,
        application.coverage_year,
        application.amount.to_string(),
        application.state,
        application.submitted_at
    )
}

/// `yibao family list ID [--json]`.
pub fn list(location: &Location, id: &str, as_json: bool) -> Result<()> {
    let person = parse_identity(id)?;
    let at = read_person(location, &person)?;
    let answer = family::person(&at.coverage, &at.family, &person);
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    outln!("{}: family-account bindings (家庭账户共济)", answer.person);
    outln!("as holder (授权记录): {} binding(s)", answer.as_holder.len());
    for binding in &answer.as_holder {
        for period in &binding.periods {
            outln!("{}", binding_line(&binding.other, period));
        }
    }
    outln!("as member (被授权记录): {} binding(s)", answer.as_member.len());
    for binding in &answer.as_member {
        for period in &binding.periods {
            outln!("{}", binding_line(&binding.other, period));
        }
    }
    outln!("applications (代缴申请): {}", answer.applications.len());
    for application in &answer.applications {
        outln!("{}", application_line(application));
    }
    outln!("answer reflects log position {}, head {}", answer.log_position, hex::encode(at.coverage.head_hash()));
    Ok(())
}

/// `yibao family account HOLDER`.
pub fn account(location: &Location, holder: &str, as_json: bool) -> Result<()> {
    let holder = parse_identity(holder)?;
    let at = read_person(location, &holder)?;
    let answer = family::account(&at.coverage, &at.family, &holder);
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    outln!("{}: employee personal account (职工医保个人账户), proxy payments by coverage year", answer.holder);
    outln!(
        "{:>4} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "year",
        "apps",
        "debited",
        "returned",
        "net",
        "credited",
        "refunded",
        "in flight",
        "to return"
    );
    for year in &answer.years {
        outln!(
            "{:>4} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            year.coverage_year,
            year.n_applications,
            year.debited.to_string(),
            year.returned.to_string(),
            year.net.to_string(),
            year.credited.to_string(),
            year.refunded.to_string(),
            year.in_flight.to_string(),
            year.awaiting_return.to_string()
        );
    }
    if answer.years.is_empty() {
        outln!("no proxy applications from this account");
    }
    for application in &answer.applications {
        outln!("{}", application_line(application));
    }
    outln!("answer reflects log position {}, head {}", answer.log_position, hex::encode(at.coverage.head_hash()));
    Ok(())
}

/// `3d`, `72h`: a duration in whole hours (clap's value parser of
/// `--older-than`, whose error names the flag).
fn duration_hours(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration: use days or hours, e.g. 3d or 72h");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let value: i64 = number.parse().map_err(|_| bad())?;
    let hours = match unit {
        "d" => value.checked_mul(24),
        "h" => Some(value),
        _ => None,
    };
    hours.filter(|h| *h >= 0 && *h <= 366 * 24).ok_or_else(bad)
}

/// `yibao family stuck [--older-than 3d] [--now TIME]`.
pub fn stuck(
    location: &Location,
    older_than_hours: Option<i64>,
    now: Option<BeijingTime>,
    as_json: bool,
) -> Result<()> {
    let now = now.unwrap_or_else(BeijingTime::now);
    let ledger = Ledger::open(location, OpenMode::Read).map_err(classified)?;
    let submitted_before = older_than_hours.map(|hours| family::submitted_before(now, hours));
    let at = ledger.projections_in_flight(submitted_before).map_err(classified)?;
    let answer = family::stuck(&at.coverage, &at.family, now, older_than_hours);
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    outln!("proxy applications still in flight past their normal duration, at {now}:");
    for s in &answer.stuck {
        outln!(
            "  {:<26} {:<22} holder {}  member {}  {}  {:>8}  submitted {}  {} h old (limit {} h, {})",
            s.application_id,
            s.state.to_string(),
            s.holder,
            s.member,
            s.coverage_year,
            s.amount.to_string(),
            s.submitted_at,
            s.age_hours,
            s.limit_hours,
            s.limit_from
        );
    }
    outln!("{} stuck application(s)", answer.stuck.len());
    let n_without_limit = answer.n_without_limit;
    if n_without_limit > 0 {
        outln!("{n_without_limit} in-flight application(s) have no stated duration in their policy; use --older-than");
    }
    Ok(())
}

/// The holder's bindings and account, for the demo.
pub fn demo_summary(location: &Location, holder: &str) -> Result<()> {
    list(location, holder, false)?;
    outln!();
    account(location, holder, false)
}

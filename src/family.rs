//! `yibao family …`: bindings (共济绑定, 取消授权), proxy applications (代缴申请)
//! and their steps, the personal account, the stuck list. Every fact is
//! built as its typed event, goes through the same checks as an import
//! line (`facts::admit`) and the same decision
//! (`projections::family::decide`) as an import; the rules live there.

use crate::commands::open;
use crate::exit::BadInput;
use crate::lookup::parse_identity;
use crate::single::{flag_value, FlagNames};
use anyhow::{Context, Result};
use clap::Subcommand;
use ledger::event::{
    FamilyBindingCreated, FamilyBindingRevoked, ProxyCredited, ProxyFailed, ProxyProcessing, ProxyReturned,
    ProxySubmitted,
};
use ledger::{BeijingTime, Date, Event, Identity, LogReader, Money, OpenMode, SledLog};
use operations::answers::StuckAnswer;
use operations::facts;
use projections::coverage::Coverage;
use projections::family::{self, relation_label, Application, Family, ProxyStep, Verdict};
use projections::Projection;
use serde_json::json;
use std::path::Path;

/// `yibao family …`.
#[derive(Subcommand)]
pub enum FamilyCommand {
    /// Bindings of a person, as holder (授权记录) and as bound member
    /// (被授权记录), and the applications they are part of. IDs masked.
    List {
        /// ID number of the person.
        id: String,
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

pub fn run(data: &Path, command: FamilyCommand) -> Result<()> {
    match command {
        FamilyCommand::List { id } => list(data, &id),
        FamilyCommand::Bind { holder, account_province, member, relation, on } => {
            let relation = family::parse_relation(&relation).map_err(|e| BadInput(format!("--relation: {e}")))?;
            let event = Event::FamilyBindingCreatedV1(FamilyBindingCreated {
                holder: flag_value(BIND_FLAGS, "holder", &holder)?,
                account_province: flag_value(BIND_FLAGS, "account_province", &account_province)?,
                member: flag_value(BIND_FLAGS, "member", &member)?,
                relation,
                bound_on: date_flag(BIND_FLAGS, "bound_on", on.as_deref())?,
            });
            record_one(data, event, "cli:family-bind", BIND_FLAGS)
        }
        FamilyCommand::Revoke { holder, member, on } => {
            let event = Event::FamilyBindingRevokedV1(FamilyBindingRevoked {
                holder: flag_value(REVOKE_FLAGS, "holder", &holder)?,
                member: flag_value(REVOKE_FLAGS, "member", &member)?,
                revoked_on: date_flag(REVOKE_FLAGS, "revoked_on", on.as_deref())?,
            });
            record_one(data, event, "cli:family-revoke", REVOKE_FLAGS)
        }
        FamilyCommand::Apply { holder, member, year, amount, application_id, at } => {
            apply(data, ApplyFlags { holder, member, year, amount, application_id, at })
        }
        FamilyCommand::Processing(step) => transition(data, ProxyStep::Processing, step),
        FamilyCommand::Credited(step) => transition(data, ProxyStep::Credited, step),
        FamilyCommand::Failed(step) => transition(data, ProxyStep::Failed, step),
        FamilyCommand::Returned(step) => transition(data, ProxyStep::Returned, step),
        FamilyCommand::Account { holder, json } => account(data, &holder, json),
        FamilyCommand::Stuck { older_than_hours, now, json } => stuck(data, older_than_hours, now, json),
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

/// Both projections at the same log position: coverage caught up with the
/// log, then family caught up to exactly coverage's position, each from its
/// checkpoint when there is a usable one.
pub fn projections_at_head(log: &SledLog) -> Result<(Coverage, Family)> {
    let coverage = crate::lookup::coverage(log.dir(), log)?;
    let family = family_at(log.dir(), log, coverage.position())?;
    Ok((coverage, family))
}

/// The family projection at position `upto` (`checkpoints.rs`).
pub fn family_at(data: &Path, log: &dyn LogReader, upto: u64) -> Result<Family> {
    operations::checkpoints::caught_up(data, log, upto).map_err(crate::exit::classified)
}

/// A refusal as the user reads it: the field, the rule, and that nothing
/// was appended.
pub fn refusal_message(refusal: &family::Refusal) -> String {
    match refusal.field {
        Some(field) => format!("field `{field}`: {}; nothing was appended", refusal.reason),
        None => format!("{}; nothing was appended", refusal.reason),
    }
}

/// Puts `event` through the edge's checks as an import line, asks the
/// decision, appends it unless it is a repeat; returns the position of the
/// fact.
pub fn record(
    log: &SledLog,
    coverage: &Coverage,
    family: &Family,
    event: Event,
    actor: &str,
    flags: FlagNames,
) -> Result<u64> {
    let new = crate::single::admit(log, event, actor, flags)?;
    match family::decide(family, coverage, &new.event) {
        Err(refusal) => Err(BadInput(refusal_message(&refusal)).into()),
        Ok(Verdict::Repeat { position, what }) => {
            outln!("already recorded at position {position}: {what}; nothing appended");
            Ok(position)
        }
        Ok(Verdict::Append) => {
            let summary = facts::summary(&new.event);
            let outcome = log.append_blocking(vec![new]).context("appending the fact")?;
            let position = outcome.positions.first().copied().unwrap_or(0);
            if outcome.n_appended == 0 {
                outln!("already recorded at position {position}: {summary}; nothing appended");
            } else {
                outln!("{summary}");
                outln!("recorded at position {position}; head {}", hex::encode(outcome.head.hash));
            }
            Ok(position)
        }
    }
}

fn record_one(data: &Path, event: Event, actor: &str, flags: FlagNames) -> Result<()> {
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    record(&log, &coverage, &family, event, actor, flags).map(|_| ())
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

fn apply(data: &Path, flags: ApplyFlags) -> Result<()> {
    let holder = parse_identity(&flags.holder).map_err(|e| BadInput(format!("--holder: {e:#}")))?;
    let member = parse_identity(&flags.member).map_err(|e| BadInput(format!("--member: {e:#}")))?;
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    let application_id = match flags.application_id {
        Some(id) => application_id_flag(&id)?,
        None => default_application_id(&family, &holder, &member, flags.year),
    };
    let event = Event::ProxySubmittedV1(ProxySubmitted {
        application_id: application_id.clone(),
        holder,
        member,
        coverage_year: flags.year,
        amount: flag_value(APPLY_FLAGS, "amount", &flags.amount)?,
        at: time_flag(APPLY_FLAGS, "at", flags.at.as_deref())?,
    });
    record(&log, &coverage, &family, event, "cli:family-apply", APPLY_FLAGS)?;
    outln!("application {application_id}");
    Ok(())
}

/// `DJ-2025-4159-5226-1`: year, what the masked IDs of holder and member
/// show of their ends, and the first number not yet used. Application IDs
/// are listed unmasked, so they show no more of an ID than its mask does.
pub fn default_application_id(family: &Family, holder: &Identity, member: &Identity, year: u16) -> String {
    let tail = |id: &Identity| {
        let masked = id.masked();
        let shown: Vec<char> = masked.chars().rev().take_while(|c| *c != '*').collect();
        shown.into_iter().rev().collect::<String>()
    };
    let stem = format!("DJ-{year}-{}-{}", tail(holder), tail(member));
    (1..=10_000)
        .map(|n| format!("{stem}-{n}"))
        .find(|id| family.application(id).is_none())
        .unwrap_or_else(|| format!("{stem}-{}", BeijingTime::now().0))
}

/// An application id in canonical form (`ledger::text`), as the fact will hold it.
fn application_id_flag(text: &str) -> Result<String> {
    ledger::text::identifier("application_id", text)
        .map_err(|e| BadInput(format!("application id: {}", e.reason)).into())
}

fn transition(data: &Path, kind: ProxyStep, mut step: Step) -> Result<()> {
    // Canonical before the lookup below, as the fact will be.
    step.application_id = application_id_flag(&step.application_id)?;
    let at = time_flag(STEP_FLAGS, "at", step.at.as_deref())?;
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    if step.reason.is_some() && kind != ProxyStep::Failed {
        return Err(BadInput("--reason is for `failed` only".into()).into());
    }
    let application_id = step.application_id;
    let event = match kind {
        ProxyStep::Processing => Event::ProxyProcessingV1(ProxyProcessing { application_id, at }),
        ProxyStep::Credited => Event::ProxyCreditedV1(ProxyCredited { application_id, at }),
        ProxyStep::Failed => {
            let reason = step.reason.ok_or_else(|| BadInput("`failed` needs --reason (受理失败的原因)".into()))?;
            Event::ProxyFailedV1(ProxyFailed { application_id, reason, at })
        }
        ProxyStep::Returned => {
            // 原渠道返还 gives back what was taken; an unknown id is refused by the decision.
            let amount = family.application(&application_id).map_or(Money::ZERO, |a| a.amount);
            Event::ProxyReturnedV1(ProxyReturned { application_id, amount, at })
        }
    };
    record(&log, &coverage, &family, event, "cli:family", STEP_FLAGS)?;
    Ok(())
}

fn binding_line(other: &Identity, period: &family::BindingPeriod) -> String {
    let state = match period.revoked_on {
        Some(on) => format!("revoked {on} (取消授权)"),
        None => "active".to_string(),
    };
    format!(
        "  {:<20} {:<32} account province {}  bound {} (position {})  {state}",
        other.masked(),
        relation_label(period.relation),
        period.account_province,
        period.bound_on,
        period.bound_position
    )
}

fn application_line(application: &Application) -> String {
    format!(
        "  {:<26} holder {}  member {}  {}  {:>8}  {}  submitted {}",
        application.application_id,
        application.holder.masked(),
        application.member.masked(),
        application.coverage_year,
        application.amount.to_string(),
        application.state,
        application.submitted_at
    )
}

/// `yibao family list ID`.
pub fn list(data: &Path, id: &str) -> Result<()> {
    let person = parse_identity(id)?;
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    outln!("{}: family-account bindings (家庭账户共济)", person.masked());
    let as_holder: Vec<_> = family.bindings_as_holder(&person).collect();
    outln!("as holder (授权记录): {} binding(s)", as_holder.len());
    for binding in as_holder {
        for period in &binding.periods {
            outln!("{}", binding_line(&binding.member, period));
        }
    }
    let as_member: Vec<_> = family.bindings_as_member(&person).collect();
    outln!("as member (被授权记录): {} binding(s)", as_member.len());
    for binding in as_member {
        for period in &binding.periods {
            outln!("{}", binding_line(&binding.holder, period));
        }
    }
    let applications: Vec<&Application> = family.applications_of(&person).collect();
    outln!("applications (代缴申请): {}", applications.len());
    for application in applications {
        outln!("{}", application_line(application));
    }
    outln!("answer reflects log position {}, head {}", coverage.position(), hex::encode(coverage.head_hash()));
    Ok(())
}

/// `yibao family account HOLDER`.
pub fn account(data: &Path, holder: &str, as_json: bool) -> Result<()> {
    let holder = parse_identity(holder)?;
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    let years = family.account(&holder);
    if as_json {
        let answer = json!({ "holder": holder.masked(), "years": years, "log_position": coverage.position() });
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    outln!("{}: employee personal account (职工医保个人账户), proxy payments by coverage year", holder.masked());
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
    for year in &years {
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
    if years.is_empty() {
        outln!("no proxy applications from this account");
    }
    for application in family.applications().filter(|a| a.holder == holder) {
        outln!("{}", application_line(application));
    }
    outln!("answer reflects log position {}, head {}", coverage.position(), hex::encode(coverage.head_hash()));
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
pub fn stuck(data: &Path, older_than_hours: Option<i64>, now: Option<BeijingTime>, as_json: bool) -> Result<()> {
    let now = now.unwrap_or_else(BeijingTime::now);
    let log = open(data, OpenMode::Existing)?;
    let (coverage, family) = projections_at_head(&log)?;
    let (found, n_without_limit) = family::stuck(&family, &coverage, now, older_than_hours);
    if as_json {
        let answer = StuckAnswer::new(now, &found, n_without_limit);
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    outln!("proxy applications still in flight past their normal duration, at {now}:");
    for s in &found {
        outln!(
            "  {:<26} {:<22} holder {}  member {}  {}  {:>8}  submitted {}  {} h old (limit {} h, {})",
            s.application_id,
            s.state.to_string(),
            s.holder.masked(),
            s.member.masked(),
            s.coverage_year,
            s.amount.to_string(),
            s.submitted_at,
            s.age_hours,
            s.limit_hours,
            s.limit_from
        );
    }
    outln!("{} stuck application(s)", found.len());
    if n_without_limit > 0 {
        outln!("{n_without_limit} in-flight application(s) have no stated duration in their policy; use --older-than");
    }
    Ok(())
}

/// The holder's bindings and account, for the demo.
pub fn demo_summary(data: &Path, holder: &str) -> Result<()> {
    list(data, holder)?;
    outln!();
    account(data, holder, false)
}

//! Whether a new fact may be recorded: bindings (共济绑定, 取消授权), proxy
//! applications and their steps, refunds of any payment, and hardship
//! assessments (核定, `Coverage::check_assessment`). The one place
//! these rules are written; the CLI asks before appending a fact, an import
//! asks for each line (`check_batch`). Pure: reads the family and coverage
//! projections, writes nothing.
//!
//! Decisions:
//! * The province rule is data: a policy's `family_account.same_province_only`.
//!   It refuses an account of another province paying the region's premiums,
//!   and (read from the policies of the account's province) an account of
//!   that province paying another province's. A binding is checked against
//!   the policies of the year it is made and the next (the concentrated
//!   period runs in the autumn before the coverage year); an application
//!   against its coverage year's.
//! * A binding of a member not registered for resident insurance is
//!   recorded (its province is checked at the application); an application
//!   needs the member registered, an active binding on its day, no other
//!   application of the member-year in flight, and an amount above zero.
//! * 原渠道返还 gives back the whole amount taken; partial returns are not
//!   in the sources.
//! * Steps never go back in time: a step is not before the previous one.

use super::{lifecycle, Application, Family, ProxyState, ProxyStep};
use crate::coverage::Coverage;
use ledger::event::{
    FamilyBindingCreated, FamilyBindingRevoked, HardshipAssessed, ProxySubmitted, RefundIssued, Relation,
};
use ledger::{BeijingTime, Event, Identity, Money, RegionCode};
use serde::Serialize;

/// What to do with a fact the rules allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Record it.
    Append,
    /// It is already recorded (the same binding, revocation, step or
    /// refund): nothing to append. Idempotent.
    Repeat { position: u64, what: String },
}

/// A fact the rules refuse, with the field to blame (if one is) and the
/// rule, naming the current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub field: Option<&'static str>,
    pub reason: String,
}

pub(super) fn refuse(field: &'static str, reason: String) -> Refusal {
    Refusal { field: Some(field), reason }
}

/// Whether [`decide`] has rules for the event (others are always appended).
pub fn is_decided(event: &Event) -> bool {
    matches!(
        event,
        Event::FamilyBindingCreatedV1(_)
            | Event::FamilyBindingRevokedV1(_)
            | Event::ProxySubmittedV1(_)
            | Event::ProxyProcessingV1(_)
            | Event::ProxyCreditedV1(_)
            | Event::ProxyFailedV1(_)
            | Event::ProxyReturnedV1(_)
            | Event::RefundIssuedV1(_)
            | Event::HardshipAssessedV1(_)
    )
}

/// Decides whether `event` may be appended to a log the two projections
/// reflect.
pub fn decide(family: &Family, coverage: &Coverage, event: &Event) -> Result<Verdict, Refusal> {
    match event {
        Event::FamilyBindingCreatedV1(e) => bind(family, coverage, e),
        Event::FamilyBindingRevokedV1(e) => revoke(family, e),
        Event::ProxySubmittedV1(e) => submit(family, coverage, e),
        Event::ProxyProcessingV1(e) => step(family, &e.application_id, ProxyStep::Processing, e.at, None, None),
        Event::ProxyCreditedV1(e) => step(family, &e.application_id, ProxyStep::Credited, e.at, None, None),
        Event::ProxyFailedV1(e) => step(family, &e.application_id, ProxyStep::Failed, e.at, Some(&e.reason), None),
        Event::ProxyReturnedV1(e) => step(family, &e.application_id, ProxyStep::Returned, e.at, None, Some(e.amount)),
        Event::RefundIssuedV1(e) => refund(family, coverage, e),
        Event::HardshipAssessedV1(e) => assessment(coverage, e),
        _ => Ok(Verdict::Append),
    }
}

/// 核定: the assessment in force again is a repeat; otherwise the rules of
/// `Coverage::check_assessment` (the subsidy within the individual
/// standard, Shanxi's special path closed after a normal payment).
pub fn assessment(coverage: &Coverage, e: &HardshipAssessed) -> Result<Verdict, Refusal> {
    if let Some(position) = coverage.assessment_in_force(e) {
        let what = format!("the assessment of {} for {}", e.person.masked(), e.coverage_year);
        return Ok(Verdict::Repeat { position, what });
    }
    match coverage.check_assessment(e) {
        Ok(()) => Ok(Verdict::Append),
        Err(refusal) => Err(Refusal { field: None, reason: format!("assessment refused: {refusal}") }),
    }
}

/// 共济绑定.
fn bind(family: &Family, coverage: &Coverage, e: &FamilyBindingCreated) -> Result<Verdict, Refusal> {
    if e.holder == e.member {
        return Err(refuse("member", "the holder of the account cannot bind themselves".into()));
    }
    if !e.account_province.code().is_multiple_of(10_000) {
        return Err(refuse(
            "account_province",
            format!(
                "{} is not a province code: the account's province is its first two digits then 0000 (520000 for Guizhou)",
                e.account_province
            ),
        ));
    }
    if let Some(binding) = family.binding(&e.holder, &e.member) {
        if let Some(current) = binding.current() {
            if current.revoked_on.is_none() {
                let same = current.relation == e.relation
                    && current.account_province == e.account_province
                    && current.bound_on == e.bound_on;
                if same {
                    let what = format!(
                        "{} is already bound to {} since {}",
                        e.member.masked(),
                        e.holder.masked(),
                        current.bound_on
                    );
                    return Ok(Verdict::Repeat { position: current.bound_position, what });
                }
                return Err(refuse(
                    "relation",
                    format!(
                        "{} is already bound to {} as {} since {} (position {}): revoke that binding first (取消授权)",
                        e.member.masked(),
                        e.holder.masked(),
                        relation_label(current.relation),
                        current.bound_on,
                        current.bound_position
                    ),
                ));
            }
            if let Some(revoked_on) = current.revoked_on.filter(|&revoked_on| e.bound_on < revoked_on) {
                return Err(refuse(
                    "bound_on",
                    format!("{} is before the last revocation on {revoked_on}", e.bound_on),
                ));
            }
        }
    }
    if let Some(region) = registered_region(coverage, &e.member) {
        let year = u16::try_from(e.bound_on.year()).unwrap_or(0);
        province_rule(coverage, region, e.account_province, &[year, year.saturating_add(1)])?;
    }
    Ok(Verdict::Append)
}

/// 取消授权 by the holder. Applications already made continue to their end.
fn revoke(family: &Family, e: &FamilyBindingRevoked) -> Result<Verdict, Refusal> {
    let Some(current) = family.binding(&e.holder, &e.member).and_then(|b| b.current()) else {
        return Err(refuse(
            "member",
            format!("{} is not bound to {}: nothing to revoke", e.member.masked(), e.holder.masked()),
        ));
    };
    if let Some(revoked_on) = current.revoked_on {
        let position = current.revoked_position.unwrap_or(current.bound_position);
        if revoked_on == e.revoked_on {
            let what = format!("the binding of {} was already revoked on {revoked_on}", e.member.masked());
            return Ok(Verdict::Repeat { position, what });
        }
        return Err(refuse(
            "revoked_on",
            format!(
                "the binding of {} to {} was already revoked on {revoked_on} (position {position}): bind again first",
                e.member.masked(),
                e.holder.masked()
            ),
        ));
    }
    if e.revoked_on < current.bound_on {
        return Err(refuse(
            "revoked_on",
            format!("{} is before the binding of {} on {}", e.revoked_on, e.member.masked(), current.bound_on),
        ));
    }
    Ok(Verdict::Append)
}

/// 代缴申请.
fn submit(family: &Family, coverage: &Coverage, e: &ProxySubmitted) -> Result<Verdict, Refusal> {
    if let Some(existing) = family.application(&e.application_id) {
        return repeated_submission(existing, e);
    }
    if e.amount == Money::ZERO {
        return Err(refuse("amount", "a proxy payment must be more than 0.00".into()));
    }
    let on = e.at.business_date();
    let (member, holder) = (e.member.masked(), e.holder.masked());
    let Some(binding) = family.binding(&e.holder, &e.member) else {
        return Err(refuse(
            "member",
            format!("{member} is not bound to {holder}'s personal account (共济绑定): bind the member first"),
        ));
    };
    let Some(period) = binding.period_on(on) else {
        let before = binding.periods.iter().rev().find(|p| p.bound_on <= on);
        let after = binding.periods.iter().find(|p| p.bound_on > on);
        let reason = match (before.and_then(|p| p.revoked_on), after) {
            (Some(revoked_on), after) => format!(
                "the binding of {member} to {holder} was revoked on {revoked_on} (取消授权): no new applications{}",
                after.map_or_else(String::new, |p| format!(" until it was bound again on {}", p.bound_on))
            ),
            (None, Some(after)) => {
                format!("{member} is bound to {holder} only from {}, after this application of {on}", after.bound_on)
            }
            (None, None) => format!("{member} is not bound to {holder}"),
        };
        return Err(refuse("member", reason));
    };
    let Some(region) = registered_region(coverage, &e.member) else {
        return Err(refuse(
            "member",
            format!("{member} is not registered for resident insurance (参保登记): register the member first"),
        ));
    };
    province_rule(coverage, region, period.account_province, &[e.coverage_year])?;
    relations_rule(coverage, region, period.relation, e.coverage_year, &member)?;
    let in_flight = family
        .applications()
        .find(|a| a.member == e.member && a.coverage_year == e.coverage_year && a.state.in_flight());
    if let Some(other) = in_flight {
        return Err(refuse(
            "member",
            format!(
                "application {} for {member}'s {} premium is still {}: wait for its result",
                other.application_id, e.coverage_year, other.state
            ),
        ));
    }
    Ok(Verdict::Append)
}

fn repeated_submission(existing: &Application, e: &ProxySubmitted) -> Result<Verdict, Refusal> {
    let same = existing.holder == e.holder
        && existing.member == e.member
        && existing.coverage_year == e.coverage_year
        && existing.amount == e.amount
        && existing.submitted_at == e.at;
    if same {
        let what = format!("application {} was already submitted", e.application_id);
        return Ok(Verdict::Repeat { position: existing.submitted_position, what });
    }
    Err(refuse(
        "application_id",
        format!(
            "application {} was already submitted at position {} ({} for {}, {}): use another id",
            e.application_id,
            existing.submitted_position,
            existing.amount,
            existing.member.masked(),
            existing.coverage_year
        ),
    ))
}

/// 受理中 / 缴费到账成功 / 受理失败 / 原渠道返还, by the lifecycle's table.
fn step(
    family: &Family,
    application_id: &str,
    step: ProxyStep,
    at: BeijingTime,
    reason: Option<&str>,
    amount: Option<Money>,
) -> Result<Verdict, Refusal> {
    let Some(application) = family.application(application_id) else {
        return Err(refuse(
            "application_id",
            format!("no proxy application {application_id} in the ledger: it must be submitted first"),
        ));
    };
    if let Some(done) = application.step(step) {
        let same = done.at == at && done.amount == amount && done.reason.as_deref() == reason;
        if same {
            let what = format!("application {application_id} was already {step} at {at} (now {})", application.state);
            return Ok(Verdict::Repeat { position: done.position, what });
        }
        return Err(Refusal {
            field: None,
            reason: format!(
                "application {application_id}: {step} again is not allowed: the application is {}; it was {step} at {} (position {})",
                application.state, done.at, done.position
            ),
        });
    }
    lifecycle::next(application.state, step)
        .map_err(|illegal| Refusal { field: None, reason: format!("application {application_id}: {illegal}") })?;
    let last = application.last_moved_at();
    if at < last {
        return Err(refuse("at", format!("{at} is before the application's last step at {last}")));
    }
    if let Some(returned) = amount.filter(|&returned| returned != application.amount) {
        return Err(refuse(
            "amount",
            format!(
                "{returned} is not what was taken from the account: 原渠道返还 gives back the whole {}",
                application.amount
            ),
        ));
    }
    Ok(Verdict::Append)
}

/// A refund: of a payment the person-year has, back where the money came
/// from, and never beyond what is left of it.
fn refund(family: &Family, coverage: &Coverage, e: &RefundIssued) -> Result<Verdict, Refusal> {
    let (channel, reference) = (&e.payment.channel, &e.payment.channel_ref);
    if let Some(recorded) = coverage.refund_recorded(&e.person, e.coverage_year, channel, &e.refund_ref) {
        if recorded.amount == e.amount && recorded.channel_ref == *reference {
            let what = format!("refund {} of {channel}/{reference} is already recorded", e.refund_ref);
            return Ok(Verdict::Repeat { position: recorded.position, what });
        }
        return Err(refuse(
            "refund_ref",
            format!(
                "refund {} was already recorded at position {} for {} of {channel}/{}: use another reference",
                e.refund_ref, recorded.position, recorded.amount, recorded.channel_ref
            ),
        ));
    }
    let Some(target) = coverage.refund_target(&e.person, e.coverage_year, &e.payment) else {
        return Err(refuse(
            "payment",
            format!("{} has no payment {channel}/{reference} for {} to refund", e.person.masked(), e.coverage_year),
        ));
    };
    super::refund::check_destination(family, &target.kind, &e.destination, channel, reference)?;
    if e.amount == Money::ZERO {
        return Err(refuse("amount", "a refund must be more than 0.00".into()));
    }
    if e.amount > target.left() {
        let total = target.refunded.checked_add(e.amount).map_or_else(|| "more".to_string(), |t| t.to_string());
        return Err(refuse(
            "amount",
            format!(
                "refunds of {channel}/{reference} would total {total}, above the {} paid (already refunded {}, {} left)",
                target.amount,
                target.refunded,
                target.left()
            ),
        ));
    }
    Ok(Verdict::Append)
}

/// The region the person is registered in for resident insurance.
fn registered_region(coverage: &Coverage, person: &Identity) -> Option<RegionCode> {
    coverage.person(person).filter(|p| p.registered).and_then(|p| p.region)
}

/// 外省职工医保个人账户不能代缴本省居民医保费; 本省职工医保个人账户也不能代缴
/// 外省居民医保费 — where a policy says so (`same_province_only`).
fn province_rule(
    coverage: &Coverage,
    member_region: RegionCode,
    account_province: RegionCode,
    years: &[u16],
) -> Result<(), Refusal> {
    let member_province = member_region.province();
    if account_province == member_province {
        return Ok(());
    }
    let same_only = |policy: &crate::policy::Policy| policy.family_account().is_some_and(|f| f.same_province_only);
    for &year in years {
        if let Some(policy) = coverage.policy(member_region, year).filter(|p| same_only(p)) {
            return Err(refuse(
                "account_province",
                format!(
                    "an employee personal account of province {account_province} cannot pay resident premiums in \
                     {member_region} (province {member_province}): policy {}/{year} allows only accounts of its \
                     province (family_account.same_province_only; 外省职工医保个人账户不能代缴)",
                    policy.region()
                ),
            ));
        }
        if let Some(policy) = coverage.policies_in_province(account_province, year).into_iter().find(|p| same_only(p)) {
            return Err(refuse(
                "account_province",
                format!(
                    "an employee personal account of province {account_province} cannot pay another province's \
                     resident premiums ({member_region} is in province {member_province}): policy {}/{year} keeps \
                     its province's accounts to its own premiums (family_account.same_province_only; \
                     本省职工医保个人账户不能代缴外省居民医保费)",
                    policy.region()
                ),
            ));
        }
    }
    Ok(())
}

/// Whom the policy of the member's region and the year lets an account pay
/// for (Bijie: direct family from 2024, near relatives in 2025).
fn relations_rule(
    coverage: &Coverage,
    region: RegionCode,
    relation: Relation,
    year: u16,
    member: &str,
) -> Result<(), Refusal> {
    let Some(policy) = coverage.policy(region, year) else { return Ok(()) };
    let Some(allowed) = policy.family_account().and_then(|f| f.relations) else { return Ok(()) };
    if allowed.contains(relation) {
        return Ok(());
    }
    let names: Vec<String> = allowed.iter().map(relation_label).collect();
    Err(refuse(
        "member",
        format!(
            "{member} is bound as {}, and policy {}/{year} lets an employee account pay for {} only \
             (family_account.relations)",
            relation_label(relation),
            policy.region(),
            names.join(", ")
        ),
    ))
}

/// An application in flight longer than the normal duration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StuckApplication {
    pub application_id: String,
    pub holder: Identity,
    pub member: Identity,
    pub coverage_year: u16,
    pub amount: Money,
    pub state: ProxyState,
    pub submitted_at: BeijingTime,
    /// Since submission, in whole hours.
    pub age_hours: i64,
    /// The duration it was held to, in hours.
    pub limit_hours: i64,
    /// Where the duration comes from (`policy 520500/2025`, `--older-than`).
    pub limit_from: String,
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Applications still in flight (申请成功 / 受理中) longer than `older_than_hours`
/// after submission, or, without it, longer than their policy's
/// `family_account.processing_days` (整体流程一般可在3天内结束). Also returns how
/// many in-flight applications have no stated duration to be held to.
pub fn stuck(
    family: &Family,
    coverage: &Coverage,
    now: BeijingTime,
    older_than_hours: Option<i64>,
) -> (Vec<StuckApplication>, usize) {
    let mut found = Vec::new();
    let mut n_without_limit = 0;
    for application in family.applications().filter(|a| a.state.in_flight()) {
        let limit = match older_than_hours {
            Some(hours) => Some((hours, "--older-than".to_string())),
            None => policy_limit(coverage, application),
        };
        let Some((limit_hours, limit_from)) = limit else {
            n_without_limit += 1;
            continue;
        };
        let age_micros = now.0.saturating_sub(application.submitted_at.0);
        if age_micros > limit_hours.saturating_mul(MICROS_PER_HOUR) {
            found.push(StuckApplication {
                application_id: application.application_id.clone(),
                holder: application.holder.clone(),
                member: application.member.clone(),
                coverage_year: application.coverage_year,
                amount: application.amount,
                state: application.state,
                submitted_at: application.submitted_at,
                age_hours: age_micros / MICROS_PER_HOUR,
                limit_hours,
                limit_from,
            });
        }
    }
    found.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.application_id.cmp(&b.application_id)));
    (found, n_without_limit)
}

fn policy_limit(coverage: &Coverage, application: &Application) -> Option<(i64, String)> {
    let region = registered_region(coverage, &application.member)?;
    let policy = coverage.policy(region, application.coverage_year)?;
    let days = policy.family_account()?.processing_days?;
    Some((i64::from(days) * 24, format!("policy {}/{}", policy.region(), application.coverage_year)))
}

/// Every relation an account may pay for (近亲属, Bijie 2025), with the
/// source's words.
pub const RELATIONS: [(Relation, &str, &str); 8] = [
    (Relation::Spouse, "spouse", "配偶"),
    (Relation::Parent, "parent", "父母"),
    (Relation::Child, "child", "子女"),
    (Relation::Sibling, "sibling", "兄弟姐妹"),
    (Relation::PaternalGrandparent, "paternal_grandparent", "祖父母"),
    (Relation::MaternalGrandparent, "maternal_grandparent", "外祖父母"),
    (Relation::PaternalGrandchild, "paternal_grandchild", "孙子女"),
    (Relation::MaternalGrandchild, "maternal_grandchild", "外孙子女"),
];

/// `spouse`: the name files use.
pub fn relation_name(relation: Relation) -> &'static str {
    RELATIONS.iter().find(|(r, _, _)| *r == relation).map_or("unknown", |(_, name, _)| name)
}

/// `spouse (配偶)`.
pub fn relation_label(relation: Relation) -> String {
    RELATIONS
        .iter()
        .find(|(r, _, _)| *r == relation)
        .map_or_else(|| format!("{relation:?}"), |(_, name, chinese)| format!("{name} ({chinese})"))
}

/// A relation by its name (`spouse`) or the source's word (`配偶`); anything
/// else is refused with the list of the relations allowed.
pub fn parse_relation(text: &str) -> Result<Relation, String> {
    let text = text.trim();
    RELATIONS.iter().find(|(_, name, chinese)| *name == text || *chinese == text).map(|(r, _, _)| *r).ok_or_else(|| {
        let allowed: Vec<String> = RELATIONS.iter().map(|(_, name, chinese)| format!("{name} ({chinese})")).collect();
        format!(
            "`{text}` is not a near relative an employee account may pay for (近亲属); allowed: {}",
            allowed.join(", ")
        )
    })
}

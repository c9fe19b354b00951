//! Family accounts (家庭共济) as operations: bindings (共济绑定, 取消授权),
//! proxy applications (代缴申请) and their steps, a person's bindings and
//! applications, a holder's personal account, the stuck list, and the
//! decision over an import's (or a request's) decided facts. Every write
//! goes through `handle::record` (the edge's checks, the rules of
//! `projections::family::decide`, the append); the CLI and the service
//! differ only in which log and projections they hand in.

use crate::answers::StuckAnswer;
use crate::channels::Channels;
use crate::error::{Classified, Kind, StorageError};
use crate::handle::{record_on, Ledger, Projections, RecordError, Recorded};
pub use crate::import::HeadAnswer;
use ledger::event::{
    FamilyBindingCreated, FamilyBindingRevoked, FieldError, ProxyCredited, ProxyFailed, ProxyProcessing, ProxyReturned,
    ProxySubmitted,
};
use ledger::{BeijingTime, Date, Event, Head, Identity, LogBackend, LogStore, Money, RegionCode};
use projections::coverage::{Coverage, Named};
use projections::family::{self, AccountYear, Application, Binding, Family, ProxyState, Refusal};
use projections::Projection;
use serde::Serialize;

/// Where a family fact is judged and appended: a log, the channels it
/// accepts, and both projections at one position.
pub struct Writer<'a, L: ?Sized> {
    pub log: &'a L,
    pub channels: &'a Channels,
    pub coverage: &'a Coverage,
    pub family: &'a Family,
}

impl<'a> Writer<'a, dyn LogStore> {
    /// The CLI's: an open ledger and its projections at the head.
    pub fn of(
        ledger: &'a Ledger,
        at: &'a Projections,
    ) -> Result<Writer<'a, dyn LogStore>, crate::channels::ChannelsError> {
        let channels = ledger.channels()?;
        Ok(Writer { log: ledger.log(), channels, coverage: &at.coverage, family: &at.family })
    }
}

impl<L: LogBackend + ?Sized> Writer<'_, L> {
    /// Records `event` through the one path for a rule-decided fact.
    pub fn record(&self, event: Event, actor: &str) -> Result<Recorded, RecordError> {
        record_on(self.log, self.channels, self.coverage, self.family, event, actor)
    }
}

/// A family operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FamilyError {
    /// A field fails the edge's checks (canonical text, limits).
    #[error("field `{}`: {}", .0.field, .0.reason)]
    Field(FieldError),
    #[error(transparent)]
    Channels(#[from] crate::channels::ChannelsError),
    /// The rules refuse the fact against the ledger's state (an unknown
    /// application included: the fact names it, and is refused).
    #[error("{}", refusal_message(.0))]
    Refused(Refusal),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<RecordError> for FamilyError {
    fn from(error: RecordError) -> FamilyError {
        match error {
            RecordError::Field(error) => FamilyError::Field(error),
            RecordError::Refused(refusal) => FamilyError::Refused(refusal),
            RecordError::Channels(error) => FamilyError::Channels(error),
            RecordError::Storage(error) => FamilyError::Storage(error),
        }
    }
}

impl Classified for FamilyError {
    fn kind(&self) -> Kind {
        match self {
            FamilyError::Field(_) | FamilyError::Channels(_) => Kind::BadInput,
            FamilyError::Refused(_) => Kind::Refused,
            FamilyError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            FamilyError::Field(error) => Some(error.field),
            FamilyError::Refused(refusal) => refusal.field,
            FamilyError::Channels(_) | FamilyError::Storage(_) => None,
        }
    }
}

/// A refusal as the user reads it: the field, the rule, and that nothing
/// was appended.
pub fn refusal_message(refusal: &Refusal) -> String {
    match refusal.field {
        Some(field) => format!("field `{field}`: {}; nothing was appended", refusal.reason),
        None => format!("{}; nothing was appended", refusal.reason),
    }
}

/// 共济绑定.
pub fn bind<L: LogBackend + ?Sized>(
    writer: &Writer<'_, L>,
    binding: FamilyBindingCreated,
    actor: &str,
) -> Result<Recorded, FamilyError> {
    Ok(writer.record(Event::FamilyBindingCreatedV1(binding), actor)?)
}

/// 取消授权 by the holder; applications in flight continue to their end.
pub fn revoke<L: LogBackend + ?Sized>(
    writer: &Writer<'_, L>,
    revocation: FamilyBindingRevoked,
    actor: &str,
) -> Result<Recorded, FamilyError> {
    Ok(writer.record(Event::FamilyBindingRevokedV1(revocation), actor)?)
}

/// A proxy application (代缴申请) as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyRequest {
    pub holder: Identity,
    pub member: Identity,
    pub coverage_year: u16,
    pub amount: Money,
    /// Canonical (`ledger::text::identifier`); `None`: [`default_application_id`].
    pub application_id: Option<String>,
    pub at: BeijingTime,
}

/// What an application recorded, under which id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub application_id: String,
    pub recorded: Recorded,
}

/// 代缴申请: submits the application, under its default id when none is given.
pub fn apply<L: LogBackend + ?Sized>(
    writer: &Writer<'_, L>,
    request: ApplyRequest,
    actor: &str,
) -> Result<Applied, FamilyError> {
    let application_id = request.application_id.unwrap_or_else(|| {
        default_application_id(writer.family, &request.holder, &request.member, request.coverage_year)
    });
    let event = Event::ProxySubmittedV1(ProxySubmitted {
        application_id: application_id.clone(),
        holder: request.holder,
        member: request.member,
        coverage_year: request.coverage_year,
        amount: request.amount,
        at: request.at,
    });
    let recorded = writer.record(event, actor)?;
    Ok(Applied { application_id, recorded })
}

/// Most default ids tried for one stem before a time-stamped one.
const MAX_DEFAULT_IDS: u32 = 10_000;

/// `DJ-2025-4159-5226-1`: year, what the masked IDs of holder and member
/// show of their ends, and the first number not yet used. Application IDs
/// are listed unmasked, so they show no more of an ID than its mask does.
/// `family` must hold every application whose id starts with
/// [`default_application_stem`] (`Named::applications_starting`).
pub fn default_application_id(family: &Family, holder: &Identity, member: &Identity, year: u16) -> String {
    let stem = default_application_stem(holder, member, year);
    (1..=MAX_DEFAULT_IDS)
        .map(|n| format!("{stem}{n}"))
        .find(|id| family.application(id).is_none())
        .unwrap_or_else(|| format!("{stem}{}", BeijingTime::now().0))
}

/// `DJ-2025-4159-5226-`: what every default id of the holder, member and
/// year starts with.
pub fn default_application_stem(holder: &Identity, member: &Identity, year: u16) -> String {
    let tail = |id: &Identity| {
        let masked = id.masked();
        let shown: Vec<char> = masked.chars().rev().take_while(|c| *c != '*').collect();
        shown.into_iter().rev().collect::<String>()
    };
    format!("DJ-{year}-{}-{}-", tail(holder), tail(member))
}

/// What the decision of an application reads: its holder and member, and
/// its id or, without one, every id its default could be.
pub fn apply_named(request: &ApplyRequest) -> Named {
    let mut named = Named::default();
    named.identity(&request.holder);
    named.identity(&request.member);
    match &request.application_id {
        Some(id) => named.application(id),
        None => named.applications_starting(&default_application_stem(
            &request.holder,
            &request.member,
            request.coverage_year,
        )),
    }
    named
}

/// What the rules read to judge `events` (decided facts) from the person
/// store: what their facts name (the persons, the applications, a
/// refund's payment reference), and each binding's and submission's
/// holder and member (whom the fold of coverage ignores, but the province
/// and relation rules ask about).
pub fn decision_named<'a>(events: impl IntoIterator<Item = &'a Event> + Clone) -> Named {
    let mut named = Named::of_events(events.clone());
    for event in events {
        let (holder, member) = match event {
            Event::FamilyBindingCreatedV1(e) => (&e.holder, &e.member),
            Event::FamilyBindingRevokedV1(e) => (&e.holder, &e.member),
            Event::ProxySubmittedV1(e) => (&e.holder, &e.member),
            _ => continue,
        };
        named.identity(holder);
        named.identity(member);
    }
    named
}

/// A step of an application after its submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// 受理中.
    Processing,
    /// 缴费到账成功: only now does the payment count.
    Credited,
    /// 受理失败, and why.
    Failed { reason: String },
    /// 原渠道返还: the whole amount taken goes back to the account.
    Returned,
}

impl Transition {
    /// The type name of the fact the step records (a role names it).
    pub fn type_name(&self) -> &'static str {
        match self {
            Transition::Processing => "proxy_processing",
            Transition::Credited => "proxy_credited",
            Transition::Failed { .. } => "proxy_failed",
            Transition::Returned => "proxy_returned",
        }
    }
}

/// Records `transition` of the application `application_id` (canonical)
/// at `at`, by the lifecycle's table; an unknown application is refused.
pub fn transition<L: LogBackend + ?Sized>(
    writer: &Writer<'_, L>,
    application_id: String,
    transition: Transition,
    at: BeijingTime,
    actor: &str,
) -> Result<Recorded, FamilyError> {
    let event = match transition {
        Transition::Processing => Event::ProxyProcessingV1(ProxyProcessing { application_id, at }),
        Transition::Credited => Event::ProxyCreditedV1(ProxyCredited { application_id, at }),
        Transition::Failed { reason } => Event::ProxyFailedV1(ProxyFailed { application_id, reason, at }),
        Transition::Returned => {
            // What was taken; an unknown id is refused by the decision.
            let amount = writer.family.application(&application_id).map_or(Money::ZERO, |a| a.amount);
            Event::ProxyReturnedV1(ProxyReturned { application_id, amount, at })
        }
    };
    Ok(writer.record(event, actor)?)
}

/// A fact an endpoint posted, as the service answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PostedAnswer {
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub position: u64,
    pub n_appended: usize,
    pub head: HeadAnswer,
    /// For an application: the id it was recorded under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
}

impl PostedAnswer {
    /// `recorded` as posted; a repeat appended nothing and names the head now.
    pub fn new(type_name: &'static str, recorded: &Recorded, head_now: Head) -> PostedAnswer {
        let (position, n_appended, head) = match recorded {
            Recorded::Appended { position, head, .. } => (*position, 1, *head),
            Recorded::Repeat { position, .. } => (*position, 0, head_now),
        };
        PostedAnswer { type_name, position, n_appended, head: head.into(), application_id: None }
    }
}

/// `GET /v1/family/persons/{id}` and `yibao family list ID --json`: a
/// person's bindings as holder (授权记录) and as member (被授权记录), the
/// applications they are part of, and the account they hold. IDs masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PersonAnswer {
    pub person: String,
    pub as_holder: Vec<BindingListed>,
    pub as_member: Vec<BindingListed>,
    pub applications: Vec<ApplicationListed>,
    pub account: Vec<AccountYear>,
    pub log_position: u64,
}

/// A binding seen from one side: the other person, masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BindingListed {
    pub other: String,
    pub active: bool,
    pub periods: Vec<PeriodListed>,
}

/// One period of a binding, from binding to revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeriodListed {
    /// `spouse (配偶)`.
    pub relation: String,
    pub account_province: RegionCode,
    pub bound_on: Date,
    pub bound_position: u64,
    pub revoked_on: Option<Date>,
}

/// One application, IDs masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApplicationListed {
    pub application_id: String,
    pub holder: String,
    pub member: String,
    pub coverage_year: u16,
    pub amount: Money,
    pub state: ProxyState,
    pub state_zh: &'static str,
    pub submitted_at: String,
}

impl From<&Application> for ApplicationListed {
    fn from(a: &Application) -> ApplicationListed {
        ApplicationListed {
            application_id: a.application_id.clone(),
            holder: a.holder.masked(),
            member: a.member.masked(),
            coverage_year: a.coverage_year,
            amount: a.amount,
            state: a.state,
            state_zh: a.state.chinese(),
            submitted_at: a.submitted_at.to_string(),
        }
    }
}

fn binding_listed(binding: &Binding, other: &Identity) -> BindingListed {
    let periods = binding
        .periods
        .iter()
        .map(|period| PeriodListed {
            relation: family::relation_label(period.relation),
            account_province: period.account_province,
            bound_on: period.bound_on,
            bound_position: period.bound_position,
            revoked_on: period.revoked_on,
        })
        .collect();
    BindingListed { other: other.masked(), active: binding.is_active(), periods }
}

/// A person's bindings, applications and account.
pub fn person(coverage: &Coverage, family: &Family, person: &Identity) -> PersonAnswer {
    PersonAnswer {
        person: person.masked(),
        as_holder: family.bindings_as_holder(person).map(|b| binding_listed(b, &b.member)).collect(),
        as_member: family.bindings_as_member(person).map(|b| binding_listed(b, &b.holder)).collect(),
        applications: family.applications_of(person).map(ApplicationListed::from).collect(),
        account: family.account(person),
        log_position: coverage.position(),
    }
}

/// `yibao family account HOLDER --json`: the holder's personal account
/// (职工医保个人账户) by coverage year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountAnswer {
    pub holder: String,
    pub years: Vec<AccountYear>,
    pub log_position: u64,
    /// The applications paid from the account (listed in text only).
    #[serde(skip)]
    pub applications: Vec<ApplicationListed>,
}

/// The holder's personal account and the applications paid from it.
pub fn account(coverage: &Coverage, family: &Family, holder: &Identity) -> AccountAnswer {
    AccountAnswer {
        holder: holder.masked(),
        years: family.account(holder),
        log_position: coverage.position(),
        applications: family.applications().filter(|a| a.holder == *holder).map(ApplicationListed::from).collect(),
    }
}

/// The moment before which an application in flight was submitted when it
/// is older than `older_than_hours` at `now` (`family::stuck`'s bound).
pub fn submitted_before(now: BeijingTime, older_than_hours: i64) -> BeijingTime {
    const MICROS_PER_HOUR: i64 = 3_600_000_000;
    BeijingTime(now.0.saturating_sub(older_than_hours.saturating_mul(MICROS_PER_HOUR)))
}

/// Applications still in flight longer than their policy's processing
/// duration (`family_account.processing_days`), or `older_than_hours`.
pub fn stuck(coverage: &Coverage, family: &Family, now: BeijingTime, older_than_hours: Option<i64>) -> StuckAnswer {
    let (found, n_without_limit) = family::stuck(family, coverage, now, older_than_hours);
    StuckAnswer::new(now, &found, n_without_limit)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facts;
    use ledger::{NewEvent, OpenMode};

    pub(crate) const HOLDER: &str = "520502197811204159";
    /// 王秀英, the holder's mother: her 2025 premium was paid from his account.
    pub(crate) const MOTHER: &str = "520502195205085226";

    /// A ledger holding the demo's facts, and `extra` lines after them.
    pub(crate) fn demo_ledger(dir: &std::path::Path, extra: &[&str]) -> Ledger {
        let ledger = Ledger::open(&crate::Location::sled(dir), OpenMode::Create).expect("a new ledger");
        let demo = include_str!("../../fixtures/demo/facts.jsonl");
        let events: Vec<NewEvent> = demo
            .lines()
            .chain(extra.iter().copied())
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(index, line)| facts::parse_line(line, index + 1, "test").expect("a demo fact"))
            .collect();
        ledger.log().append_blocking(events).expect("appended");
        ledger
    }

    fn id(text: &str) -> Identity {
        text.parse().expect("an ID")
    }

    const WIFE: &str = "520502198001156225";
    const ZHANG: &str = "520502198503121233";
    const LI: &str = "520521199007012242";

    /// An application of the wife's 2026 premium in flight, and one of two
    /// others under the id the holder's default for his mother would take.
    const IN_FLIGHT: [&str; 2] = [
        r#"{"type": "proxy_submitted", "v": 1, "application_id": "BJ-DJ-2026-000201", "holder": "520502197811204159", "member": "520502198001156225", "coverage_year": 2026, "amount": "400.00", "at": "2025-10-02 10:00:00"}"#,
        r#"{"type": "proxy_submitted", "v": 1, "application_id": "DJ-2026-4159-5226-1", "holder": "520502198503121233", "member": "520521199007012242", "coverage_year": 2026, "amount": "100.00", "at": "2025-10-03 10:00:00"}"#,
    ];

    /// Facts the rules decide, each judged against the ledger above.
    fn candidates() -> Vec<Event> {
        let line = |text: &str| facts::parse_line(text, 1, "test").expect("a fact").event;
        let submit = |id: &str, member: &str| {
            line(&format!(
                r#"{{"type": "proxy_submitted", "v": 1, "application_id": "{id}", "holder": "{HOLDER}", "member": "{member}", "coverage_year": 2026, "amount": "400.00", "at": "2025-10-05 10:00:00"}}"#
            ))
        };
        let refund = |destination: &str| {
            line(&format!(
                r#"{{"type": "refund_issued", "v": 1, "person": "{MOTHER}", "coverage_year": 2025, "refund_ref": "TK-FAM-1", "payment": {{"channel": "proxy", "channel_ref": "BJ-DJ-2024-000101"}}, "amount": "100.00", "destination": {destination}, "refunded_at": "2024-11-20 10:00:00", "reason": "test"}}"#
            ))
        };
        let bind = |member: &str, relation: &str| {
            line(&format!(
                r#"{{"type": "family_binding_created", "v": 1, "holder": "{HOLDER}", "account_province": "520000", "member": "{member}", "relation": "{relation}", "bound_on": "2024-10-01"}}"#
            ))
        };
        vec![
            // Another application of the wife's 2026 premium while one is in flight.
            submit("BJ-DJ-2026-000300", WIFE),
            // An id another holder's application has.
            submit("DJ-2026-4159-5226-1", MOTHER),
            submit("BJ-DJ-2026-000301", MOTHER),
            // A member not bound to the holder.
            submit("BJ-DJ-2026-000302", LI),
            line(
                r#"{"type": "proxy_processing", "v": 1, "application_id": "NO-SUCH-APPLICATION", "at": "2025-10-05 10:00:00"}"#,
            ),
            line(
                r#"{"type": "proxy_credited", "v": 1, "application_id": "BJ-DJ-2024-000101", "at": "2024-10-03 09:00:00"}"#,
            ),
            line(
                r#"{"type": "proxy_credited", "v": 1, "application_id": "BJ-DJ-2024-000102", "at": "2024-10-05 09:00:00"}"#,
            ),
            line(
                r#"{"type": "proxy_failed", "v": 1, "application_id": "DJ-2026-4159-5226-1", "reason": "test", "at": "2025-10-01 09:00:00"}"#,
            ),
            // A refund of the credited proxy payment: back to the holder's account, or wrongly to a channel.
            refund(&format!(r#"{{"personal_account": "{HOLDER}"}}"#)),
            refund(r#""original_channel""#),
            bind(MOTHER, "parent"),
            bind(MOTHER, "sibling"),
            bind(ZHANG, "sibling"),
            line(&format!(
                r#"{{"type": "family_binding_revoked", "v": 1, "holder": "{HOLDER}", "member": "{WIFE}", "revoked_on": "2025-01-01"}}"#
            )),
        ]
    }

    /// A decision judged on what the person store holds of the persons and
    /// applications its fact names is the decision judged on the whole
    /// projections folded from position 1, refusals and repeats alike.
    #[test]
    fn a_decision_from_the_store_is_the_decision_from_the_whole_projections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = demo_ledger(dir.path(), &IN_FLIGHT);
        let coverage = ledger.coverage().expect("the whole coverage");
        let mut whole = Family::new();
        whole.catch_up_to(ledger.log(), u64::MAX).expect("the whole family from position 1");
        let (mut n_refused, mut n_repeats) = (0, 0);
        for event in candidates() {
            let at = ledger.projections_naming(&decision_named([&event])).expect("from the store");
            let from_store = family::decide(&at.family, &at.coverage, &event);
            let from_whole = family::decide(&whole, &coverage, &event);
            assert_eq!(from_store, from_whole, "{event:?}");
            n_refused += usize::from(from_whole.is_err());
            n_repeats += usize::from(matches!(from_whole, Ok(family::Verdict::Repeat { .. })));
        }
        assert!(n_refused >= 6 && n_repeats >= 2, "refused {n_refused}, repeats {n_repeats}");

        // The default id is the first free one, also when another holder's
        // application took the first.
        let request = ApplyRequest {
            holder: id(HOLDER),
            member: id(MOTHER),
            coverage_year: 2026,
            amount: "400".parse().expect("money"),
            application_id: None,
            at: "2025-10-05T10:00:00+08:00".parse().expect("a time"),
        };
        let at = ledger.projections_naming(&apply_named(&request)).expect("from the store");
        let from_store = default_application_id(&at.family, &request.holder, &request.member, 2026);
        assert_eq!(from_store, default_application_id(&whole, &request.holder, &request.member, 2026));
        assert_eq!(from_store, "DJ-2026-4159-5226-2");
    }

    #[test]
    fn the_default_application_id_shows_what_the_masks_show_and_takes_the_next_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = demo_ledger(dir.path(), &[]);
        let at = ledger.projections().expect("projections");
        let (holder, member) = (id(HOLDER), id(MOTHER));
        assert_eq!(default_application_id(&at.family, &holder, &member, 2026), "DJ-2026-4159-5226-1");
        let request = ApplyRequest {
            holder: holder.clone(),
            member: member.clone(),
            coverage_year: 2026,
            amount: "400".parse().expect("money"),
            application_id: None,
            at: "2025-10-01 10:00:00".parse().expect("a time"),
        };
        let applied = apply(&Writer::of(&ledger, &at).expect("channels"), request, "test").expect("applied");
        assert_eq!(applied.application_id, "DJ-2026-4159-5226-1");
        assert!(matches!(applied.recorded, Recorded::Appended { .. }), "{:?}", applied.recorded);
        let at = ledger.projections().expect("projections");
        assert_eq!(default_application_id(&at.family, &holder, &member, 2026), "DJ-2026-4159-5226-2");
    }

    #[test]
    fn a_refusal_is_refused_naming_its_field_and_appends_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = demo_ledger(dir.path(), &[]);
        let at = ledger.projections().expect("projections");
        let before = ledger.log().durable_head();
        let writer = Writer::of(&ledger, &at).expect("channels");
        let binding = FamilyBindingCreated {
            holder: id(HOLDER),
            account_province: "520000".parse().expect("a province"),
            member: id(HOLDER),
            relation: ledger::event::Relation::Spouse,
            bound_on: "2024-10-01".parse().expect("a date"),
        };
        let error = bind(&writer, binding, "test").expect_err("the holder cannot bind themselves");
        assert!(matches!(error, FamilyError::Refused(_)), "{error:?}");
        assert_eq!((error.kind(), error.field()), (Kind::Refused, Some("member")));
        assert!(error.to_string().ends_with("; nothing was appended"), "{error}");
        let at_time = "2025-10-01 10:00:00".parse().expect("a time");
        let error = transition(&writer, "NO-SUCH".into(), Transition::Returned, at_time, "test")
            .expect_err("an unknown application");
        assert_eq!((error.kind(), error.field()), (Kind::Refused, Some("application_id")));
        assert_eq!(ledger.log().durable_head(), before, "a refused fact was appended");
    }
}

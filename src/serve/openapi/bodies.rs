//! Schemas of the bodies the handlers still write with `json!`: each type
//! here has the fields of that body, so the document names them and
//! `tests/openapi.rs` holds live answers to them. When a
//! handler comes to return a typed answer from `operations`, that type
//! derives `utoipa::ToSchema` and takes the place of its stand-in here.
#![allow(dead_code, reason = "schemas only: nothing builds these values")]

use ledger::{BeijingTime, Date, Money, RegionCode};
use projections::family::{AccountYear, ProxyState};
use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The log's head: its last durable position and that record's hash.
#[derive(Serialize, ToSchema)]
pub struct LogHead {
    pub position: u64,
    /// SM3, 64 hex digits.
    pub hash: String,
}

/// `GET /v1/health`: `ok` with the head; `refusing_writes` (503) with the
/// reason while the store refuses writes.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// Why writes are refused.
    pub reason: Option<String>,
    /// `null` while the log is being reopened.
    pub head: Option<LogHead>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    RefusingWrites,
}

/// `POST /v1/events`: the facts' positions (the original ones for an
/// identical retry, with `n_appended` 0) and the head.
#[derive(Serialize, ToSchema)]
pub struct Appended {
    pub positions: Vec<u64>,
    pub n_appended: usize,
    pub head: LogHead,
}

/// A family post: the fact's type and position, and the head.
#[derive(Serialize, ToSchema)]
pub struct RecordedFact {
    #[serde(rename = "type")]
    pub type_name: String,
    pub position: u64,
    pub n_appended: usize,
    pub head: LogHead,
    /// The application's id (`POST /v1/family/applications` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
}

/// `GET /v1/family/persons/{id_number}`: bindings as holder and as member,
/// applications, the personal account by year. IDs masked.
#[derive(Serialize, ToSchema)]
pub struct FamilyPerson {
    pub person: String,
    pub as_holder: Vec<BindingView>,
    pub as_member: Vec<BindingView>,
    pub applications: Vec<ApplicationView>,
    pub account: Vec<AccountYear>,
    pub log_position: u64,
}

#[derive(Serialize, ToSchema)]
pub struct BindingView {
    /// The other side of the binding, masked.
    pub other: String,
    pub active: bool,
    pub periods: Vec<BindingPeriodView>,
}

#[derive(Serialize, ToSchema)]
pub struct BindingPeriodView {
    /// The relation's label (配偶, 父母, ...).
    pub relation: String,
    pub account_province: RegionCode,
    pub bound_on: Date,
    pub bound_position: u64,
    pub revoked_on: Option<Date>,
}

#[derive(Serialize, ToSchema)]
pub struct ApplicationView {
    pub application_id: String,
    pub holder: String,
    pub member: String,
    pub coverage_year: u16,
    pub amount: Money,
    pub state: ProxyState,
    pub state_zh: String,
    pub submitted_at: BeijingTime,
}

/// 202 to an audit post: the job, where to follow it (also in `Location`),
/// and its status now.
#[derive(Serialize, ToSchema)]
pub struct AuditAccepted {
    pub job: u64,
    /// `/v1/audit/jobs/{job}`.
    pub status: String,
    pub now: Option<AuditJob>,
}

/// An audit job: running (`done` of `total` records), done (`result`) or
/// failed (`error`).
#[derive(Serialize, ToSchema)]
pub struct AuditJob {
    pub job: u64,
    pub kind: AuditKind,
    pub requested_by: String,
    pub started_at: BeijingTime,
    pub done: u64,
    pub total: u64,
    pub state: JobState,
    pub finished_at: Option<BeijingTime>,
    /// `yibao verify --json` or `yibao replay --json`'s answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Verify,
    Replay,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// `POST /v1/events`' body: one fact as a line of `yibao import` gives it
/// (`type`, `version` and the fact's fields), or an array of them, all or
/// nothing.
pub struct Facts;

impl PartialSchema for Facts {
    fn schema() -> RefOr<Schema> {
        let fact = || ObjectBuilder::new().required("type").required("version");
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(fact())
            .item(ArrayBuilder::new().items(fact()).min_items(Some(1)))
            .description(Some("a fact (`type`, `version`, its fields) or an array of facts, all or nothing"))
            .into()
    }
}
impl ToSchema for Facts {}

/// A text body: the office page, its script and style sheet, metrics, a
/// certificate as HTML or text.
pub struct Text;

impl PartialSchema for Text {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).description(Some("a text body (see the content type)")).into()
    }
}
impl ToSchema for Text {}

/// `GET /v1/openapi.json`: this document.
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .required("openapi")
            .required("paths")
            .description(Some("an OpenAPI 3.1 document"))
            .into()
    }
}
impl ToSchema for OpenApiDocument {}

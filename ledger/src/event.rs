//! The facts the ledger records, version 1.
//!
//! Each variant of [`Event`] is one fact at one version. Once a version has
//! been written its shape never changes: a new shape is a new variant
//! (`PaymentReceivedV2`), appended at the end of the enum so that the stored
//! variant indexes of older events keep their meaning.

use crate::id::{Identity, RegionCode};
use crate::money::Money;
use crate::text::TextKind;
use crate::time::{BeijingTime, Date};
use serde::{Deserialize, Serialize};

/// Longest free text (names, reasons, references) in an event, in bytes.
pub const MAX_TEXT_BYTES: usize = 256;
/// Longest policy document in an event, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 48 * 1024;

/// How a person came to resident insurance, where the rules depend on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentBasis {
    /// Ordinary registration.
    #[default]
    Standard,
    /// 新生儿预参保登记 at the birth hospital, with an other certificate.
    NewbornPreRegistration,
    /// Newborn registered with a resident ID.
    Newborn,
    /// Left employee insurance (职工医保) and joined resident insurance.
    FromEmployeeInsurance { left_on: Date },
    /// 中断缴费: had not paid since `last_paid_year`.
    Interrupted { last_paid_year: u16 },
}

/// Who paid a premium for the person it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Payer {
    /// 自主缴费: the insured person.
    #[default]
    Myself,
    /// 代他人缴费: another person.
    Other(Identity),
    /// 代收代办: a village or township collector, named.
    Collector(String),
}

/// Who bears (part of) a subsidy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Funder {
    Province,
    City,
    County,
    /// 医疗救助基金.
    MedicalAssistanceFund,
    /// Another body, named.
    Other(String),
}

/// One funder's part of a subsidy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyPart {
    pub funder: Funder,
    pub amount: Money,
}

/// The payment a refund returns, by its channel reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRef {
    pub channel: String,
    pub channel_ref: String,
}

/// Where refunded money goes: always back to where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundDestination {
    /// The channel the payment came through.
    OriginalChannel,
    /// The employee personal account a proxy payment came from.
    PersonalAccount(Identity),
    /// The funders of a subsidy, in the subsidy's split.
    Funders,
}

/// Near relatives an employee may bind (近亲属, Bijie 2025).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Spouse,
    Parent,
    Child,
    Sibling,
    PaternalGrandparent,
    MaternalGrandparent,
    PaternalGrandchild,
    MaternalGrandchild,
}

/// 发布: a region-year policy document (TOML), as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPublished {
    pub region: RegionCode,
    pub coverage_year: u16,
    /// Where the figures come from (a notice, a page).
    pub source: String,
    pub document: String,
}

/// A later version of a region-year policy document, replacing the earlier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyAmended {
    pub region: RegionCode,
    pub coverage_year: u16,
    pub source: String,
    pub document: String,
    pub reason: String,
}

/// 参保登记: keys are ID number + name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRegistered {
    pub person: Identity,
    pub name: String,
    pub region: RegionCode,
    pub birth_date: Date,
    pub registered_on: Date,
    #[serde(default)]
    pub basis: EnrolmentBasis,
}

/// A pre-registered newborn's other certificate replaced by the real ID: the
/// identity changes, the person does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConverted {
    pub from: Identity,
    pub to: Identity,
    pub converted_on: Date,
}

/// A pre-registration that lapsed or was withdrawn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreRegistrationVoided {
    pub person: Identity,
    pub voided_on: Date,
    pub reason: String,
}

/// A hardship identity certified by the responsible department (e.g. 民政).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardshipCertified {
    pub person: Identity,
    pub coverage_year: u16,
    /// The group's code in the region-year policy (e.g. `extreme_poverty`).
    pub group: String,
    pub certified_by: String,
    pub certified_on: Date,
}

/// 核定: the office fixes what a subsidised person owes and pushes it to tax.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardshipAssessed {
    pub person: Identity,
    pub coverage_year: u16,
    pub group: String,
    pub subsidy: Money,
    pub amount_due: Money,
    pub assessed_on: Date,
}

/// Money the tax bureau or a channel received for a person-year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentReceived {
    pub person: Identity,
    pub coverage_year: u16,
    pub amount: Money,
    pub channel: String,
    pub channel_ref: String,
    #[serde(default)]
    pub payer: Payer,
    pub paid_at: BeijingTime,
}

/// A subsidy granted towards a person-year's individual part (资助参保).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyGranted {
    pub person: Identity,
    pub coverage_year: u16,
    pub group: String,
    pub parts: Vec<SubsidyPart>,
    pub granted_on: Date,
}

/// Money returned to where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundIssued {
    pub person: Identity,
    pub coverage_year: u16,
    pub refund_ref: String,
    pub payment: PaymentRef,
    pub amount: Money,
    pub destination: RefundDestination,
    pub refunded_at: BeijingTime,
    pub reason: String,
}

/// 共济绑定: an employee binds a family member to their personal account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyBindingCreated {
    pub holder: Identity,
    /// Province of the employee personal account (e.g. 520000 Guizhou).
    pub account_province: RegionCode,
    pub member: Identity,
    pub relation: Relation,
    pub bound_on: Date,
}

/// 取消授权 by the holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyBindingRevoked {
    pub holder: Identity,
    pub member: Identity,
    pub revoked_on: Date,
}

/// 申请成功: a proxy payment from a personal account was applied for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySubmitted {
    pub application_id: String,
    pub holder: Identity,
    pub member: Identity,
    pub coverage_year: u16,
    pub amount: Money,
    pub at: BeijingTime,
}

/// 受理中.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyProcessing {
    pub application_id: String,
    pub at: BeijingTime,
}

/// 缴费到账成功: only now is the premium paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyCredited {
    pub application_id: String,
    pub at: BeijingTime,
}

/// 受理失败.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyFailed {
    pub application_id: String,
    pub reason: String,
    pub at: BeijingTime,
}

/// 原渠道返还: the money went back to the personal account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyReturned {
    pub application_id: String,
    pub amount: Money,
    pub at: BeijingTime,
}

/// One receipt file a reconciliation read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptFile {
    pub name: String,
    pub format: String,
    pub sm3: String,
}

/// Count and total of one kind of reconciliation result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultCount {
    pub kind: String,
    pub count: u64,
    pub total: Money,
}

/// A reconciliation run: what was compared with what, and what it found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationRecorded {
    pub run_id: String,
    pub files: Vec<ReceiptFile>,
    pub period_from: Date,
    pub period_to: Date,
    pub ledger_head_position: u64,
    pub ledger_head_hash: String,
    pub results: Vec<ResultCount>,
}

/// Every fact, versioned. New variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    PolicyPublishedV1(PolicyPublished),
    PolicyAmendedV1(PolicyAmended),
    PersonRegisteredV1(PersonRegistered),
    IdentityConvertedV1(IdentityConverted),
    PreRegistrationVoidedV1(PreRegistrationVoided),
    HardshipCertifiedV1(HardshipCertified),
    HardshipAssessedV1(HardshipAssessed),
    PaymentReceivedV1(PaymentReceived),
    SubsidyGrantedV1(SubsidyGranted),
    RefundIssuedV1(RefundIssued),
    FamilyBindingCreatedV1(FamilyBindingCreated),
    FamilyBindingRevokedV1(FamilyBindingRevoked),
    ProxySubmittedV1(ProxySubmitted),
    ProxyProcessingV1(ProxyProcessing),
    ProxyCreditedV1(ProxyCredited),
    ProxyFailedV1(ProxyFailed),
    ProxyReturnedV1(ProxyReturned),
    ReconciliationRecordedV1(ReconciliationRecorded),
}

/// The (type name, version) pairs the ledger knows, as written in files.
pub const EVENT_TYPES: &[(&str, u16)] = &[
    ("policy_published", 1),
    ("policy_amended", 1),
    ("person_registered", 1),
    ("identity_converted", 1),
    ("pre_registration_voided", 1),
    ("hardship_certified", 1),
    ("hardship_assessed", 1),
    ("payment_received", 1),
    ("subsidy_granted", 1),
    ("refund_issued", 1),
    ("family_binding_created", 1),
    ("family_binding_revoked", 1),
    ("proxy_submitted", 1),
    ("proxy_processing", 1),
    ("proxy_credited", 1),
    ("proxy_failed", 1),
    ("proxy_returned", 1),
    ("reconciliation_recorded", 1),
];

/// The prefixes of the idempotency keys the ledger gives facts itself:
/// natural keys (`Event::natural_key`) and content keys (`<type>/<digest>`,
/// `log::content_key`, one prefix per type name in [`EVENT_TYPES`]).
pub const NATURAL_KEY_PREFIXES: &[&str] = &["payment/", "refund/", "proxy/", "reconcile/"];

/// A field of an event that breaks a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

/// Calls `$visit(field, kind, slot)` for every text field of an event that
/// identifies or names something, `slot` borrowed as `&String` or (with
/// `mut`) as `&mut String`: the one list [`Event::canonicalize`] and
/// [`Event::validate`] share.
macro_rules! each_text_field {
    ($event:expr, $visit:ident $(, $mutability:tt)?) => {
        match $event {
            Event::PersonRegisteredV1(e) => $visit("name", TextKind::Name, &$($mutability)? e.name),
            Event::HardshipCertifiedV1(e) => {
                $visit("group", TextKind::Identifier, &$($mutability)? e.group)?;
                $visit("certified_by", TextKind::Name, &$($mutability)? e.certified_by)
            }
            Event::HardshipAssessedV1(e) => $visit("group", TextKind::Identifier, &$($mutability)? e.group),
            Event::PaymentReceivedV1(e) => {
                $visit("channel", TextKind::Channel, &$($mutability)? e.channel)?;
                $visit("channel_ref", TextKind::Identifier, &$($mutability)? e.channel_ref)?;
                match &$($mutability)? e.payer {
                    Payer::Collector(name) => $visit("payer.collector", TextKind::Name, name),
                    Payer::Myself | Payer::Other(_) => Ok(()),
                }
            }
            Event::SubsidyGrantedV1(e) => {
                $visit("group", TextKind::Identifier, &$($mutability)? e.group)?;
                for part in &$($mutability)? e.parts {
                    if let Funder::Other(name) = &$($mutability)? part.funder {
                        $visit("parts.funder", TextKind::Name, name)?;
                    }
                }
                Ok(())
            }
            Event::RefundIssuedV1(e) => {
                $visit("refund_ref", TextKind::Identifier, &$($mutability)? e.refund_ref)?;
                $visit("payment.channel", TextKind::Channel, &$($mutability)? e.payment.channel)?;
                $visit("payment.channel_ref", TextKind::Identifier, &$($mutability)? e.payment.channel_ref)
            }
            Event::ProxySubmittedV1(e) => $visit("application_id", TextKind::Identifier, &$($mutability)? e.application_id),
            Event::ProxyProcessingV1(e) => $visit("application_id", TextKind::Identifier, &$($mutability)? e.application_id),
            Event::ProxyCreditedV1(e) => $visit("application_id", TextKind::Identifier, &$($mutability)? e.application_id),
            Event::ProxyFailedV1(e) => $visit("application_id", TextKind::Identifier, &$($mutability)? e.application_id),
            Event::ProxyReturnedV1(e) => $visit("application_id", TextKind::Identifier, &$($mutability)? e.application_id),
            Event::ReconciliationRecordedV1(e) => $visit("run_id", TextKind::Identifier, &$($mutability)? e.run_id),
            Event::PolicyPublishedV1(_)
            | Event::PolicyAmendedV1(_)
            | Event::IdentityConvertedV1(_)
            | Event::PreRegistrationVoidedV1(_)
            | Event::FamilyBindingCreatedV1(_)
            | Event::FamilyBindingRevokedV1(_) => Ok(()),
        }
    };
}

impl Event {
    /// Puts every identifier, channel and name in its canonical form
    /// (`text`): what the edge does to outside input before anything
    /// else looks at it, so that one reference has one spelling.
    pub fn canonicalize(&mut self) -> Result<(), FieldError> {
        let canonical = |field: &'static str, kind: TextKind, slot: &mut String| -> Result<(), FieldError> {
            if !kind.is_plainly_canonical(slot) {
                *slot = kind.canonical(field, slot)?;
            }
            Ok(())
        };
        each_text_field!(self, canonical, mut)
    }

    /// Refuses text not in canonical form: nothing un-canonical is appended,
    /// whoever builds the event.
    fn check_canonical(&self) -> Result<(), FieldError> {
        let check = |field: &'static str, kind: TextKind, slot: &String| -> Result<(), FieldError> {
            if kind.is_plainly_canonical(slot) {
                return Ok(());
            }
            let canonical = kind.canonical(field, slot)?;
            if canonical != *slot {
                return Err(FieldError {
                    field,
                    reason: format!("`{slot}` is not in canonical form (`{canonical}`); canonicalize it first"),
                });
            }
            Ok(())
        };
        each_text_field!(self, check)
    }

    /// The idempotency key a fact is appended under when the caller gives
    /// none: its natural key, else one derived from its content.
    pub fn own_key(&self) -> String {
        self.natural_key().unwrap_or_else(|| crate::log::content_key(self))
    }

    /// A caller's idempotency key may not take a key the ledger gives facts
    /// itself (`payment/…`, `refund/…`, `<type>/…`), or it could occupy
    /// another fact's place: such a key is refused unless it is this
    /// fact's own. It must also be a canonical identifier.
    pub fn check_idempotency_key(&self, key: &str) -> Result<(), FieldError> {
        self.check_idempotency_key_against(key, || self.own_key())
    }

    /// As [`Event::check_idempotency_key`], with the fact's own key worked
    /// out by `own` only where a reserved prefix makes it needed (the writer
    /// derives a content key from the bytes it already encoded).
    pub(crate) fn check_idempotency_key_against(
        &self,
        key: &str,
        own: impl FnOnce() -> String,
    ) -> Result<(), FieldError> {
        const FIELD: &str = "idempotency_key";
        let canonical = TextKind::Identifier.is_plainly_canonical(key) || crate::text::identifier(FIELD, key)? == key;
        if key.is_empty() || !canonical {
            return Err(FieldError { field: FIELD, reason: format!("`{key}` is not a canonical identifier") });
        }
        let lower = key.to_ascii_lowercase();
        let type_prefixes = EVENT_TYPES.iter().map(|(name, _)| *name);
        let reserved = NATURAL_KEY_PREFIXES
            .iter()
            .map(|prefix| prefix.trim_end_matches('/'))
            .chain(type_prefixes)
            .find(|prefix| lower.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')));
        let Some(prefix) = reserved else { return Ok(()) };
        let own = own();
        if own == key {
            return Ok(());
        }
        Err(FieldError {
            field: FIELD,
            reason: format!(
                "`{key}` starts with `{prefix}/`, which the ledger keeps for the keys it gives facts \
                 (this fact's own is `{own}`); leave the key out or choose one without that prefix"
            ),
        })
    }

    fn index(&self) -> usize {
        match self {
            Event::PolicyPublishedV1(_) => 0,
            Event::PolicyAmendedV1(_) => 1,
            Event::PersonRegisteredV1(_) => 2,
            Event::IdentityConvertedV1(_) => 3,
            Event::PreRegistrationVoidedV1(_) => 4,
            Event::HardshipCertifiedV1(_) => 5,
            Event::HardshipAssessedV1(_) => 6,
            Event::PaymentReceivedV1(_) => 7,
            Event::SubsidyGrantedV1(_) => 8,
            Event::RefundIssuedV1(_) => 9,
            Event::FamilyBindingCreatedV1(_) => 10,
            Event::FamilyBindingRevokedV1(_) => 11,
            Event::ProxySubmittedV1(_) => 12,
            Event::ProxyProcessingV1(_) => 13,
            Event::ProxyCreditedV1(_) => 14,
            Event::ProxyFailedV1(_) => 15,
            Event::ProxyReturnedV1(_) => 16,
            Event::ReconciliationRecordedV1(_) => 17,
        }
    }

    /// The type name as written in files, e.g. `payment_received`.
    pub fn type_name(&self) -> &'static str {
        EVENT_TYPES[self.index()].0
    }

    pub fn version(&self) -> u16 {
        EVENT_TYPES[self.index()].1
    }

    /// The stream an event belongs to: the subject it is about.
    pub fn stream(&self) -> String {
        match self {
            Event::PolicyPublishedV1(e) => policy_stream(e.region, e.coverage_year),
            Event::PolicyAmendedV1(e) => policy_stream(e.region, e.coverage_year),
            Event::PersonRegisteredV1(e) => person_stream(&e.person),
            Event::IdentityConvertedV1(e) => person_stream(&e.from),
            Event::PreRegistrationVoidedV1(e) => person_stream(&e.person),
            Event::HardshipCertifiedV1(e) => person_stream(&e.person),
            Event::HardshipAssessedV1(e) => person_stream(&e.person),
            Event::PaymentReceivedV1(e) => person_stream(&e.person),
            Event::SubsidyGrantedV1(e) => person_stream(&e.person),
            Event::RefundIssuedV1(e) => person_stream(&e.person),
            Event::FamilyBindingCreatedV1(e) => family_stream(&e.holder),
            Event::FamilyBindingRevokedV1(e) => family_stream(&e.holder),
            Event::ProxySubmittedV1(e) => proxy_stream(&e.application_id),
            Event::ProxyProcessingV1(e) => proxy_stream(&e.application_id),
            Event::ProxyCreditedV1(e) => proxy_stream(&e.application_id),
            Event::ProxyFailedV1(e) => proxy_stream(&e.application_id),
            Event::ProxyReturnedV1(e) => proxy_stream(&e.application_id),
            Event::ReconciliationRecordedV1(e) => format!("reconcile/{}", e.run_id),
        }
    }

    /// The idempotency key a fact carries when its source gives none: the
    /// channel's own reference where there is one, else `None` (the caller
    /// then keys on the content).
    pub fn natural_key(&self) -> Option<String> {
        match self {
            Event::PaymentReceivedV1(e) => Some(format!("payment/{}/{}", e.channel, e.channel_ref)),
            Event::RefundIssuedV1(e) => Some(format!("refund/{}/{}", e.payment.channel, e.refund_ref)),
            Event::ProxySubmittedV1(e) => Some(format!("proxy/{}/submitted", e.application_id)),
            Event::ProxyProcessingV1(e) => Some(format!("proxy/{}/processing", e.application_id)),
            Event::ProxyCreditedV1(e) => Some(format!("proxy/{}/credited", e.application_id)),
            Event::ProxyFailedV1(e) => Some(format!("proxy/{}/failed", e.application_id)),
            Event::ProxyReturnedV1(e) => Some(format!("proxy/{}/returned", e.application_id)),
            Event::ReconciliationRecordedV1(e) => Some(format!("reconcile/{}", e.run_id)),
            _ => None,
        }
    }

    /// Limits that the types themselves do not carry: text lengths, years,
    /// non-empty references, canonical identifiers and names, the form of
    /// channel names (which channels exist is the edge's to say).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_limits()?;
        self.check_canonical()
    }

    fn validate_limits(&self) -> Result<(), FieldError> {
        match self {
            Event::PolicyPublishedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                text("source", &e.source)?;
                document(&e.document)
            }
            Event::PolicyAmendedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                text("source", &e.source)?;
                text("reason", &e.reason)?;
                document(&e.document)
            }
            Event::PersonRegisteredV1(e) => {
                required("name", &e.name)?;
                if let Some(born) = e.person.birth_date() {
                    if born != e.birth_date.0 {
                        return Err(FieldError {
                            field: "birth_date",
                            reason: format!("{} differs from the ID number's birth date {born}", e.birth_date),
                        });
                    }
                }
                Ok(())
            }
            Event::IdentityConvertedV1(_) => Ok(()),
            Event::PreRegistrationVoidedV1(e) => text("reason", &e.reason),
            Event::HardshipCertifiedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                required("group", &e.group)?;
                text("certified_by", &e.certified_by)
            }
            Event::HardshipAssessedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                required("group", &e.group)
            }
            Event::PaymentReceivedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                required("channel", &e.channel)?;
                required("channel_ref", &e.channel_ref)?;
                if let Payer::Collector(name) = &e.payer {
                    required("payer", name)?;
                }
                Ok(())
            }
            Event::SubsidyGrantedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                required("group", &e.group)?;
                if e.parts.is_empty() || e.parts.len() > 8 {
                    return Err(FieldError { field: "parts", reason: "give 1 to 8 funders' parts".into() });
                }
                Ok(())
            }
            Event::RefundIssuedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                required("refund_ref", &e.refund_ref)?;
                required("payment.channel", &e.payment.channel)?;
                required("payment.channel_ref", &e.payment.channel_ref)?;
                text("reason", &e.reason)
            }
            Event::FamilyBindingCreatedV1(_) | Event::FamilyBindingRevokedV1(_) => Ok(()),
            Event::ProxySubmittedV1(e) => {
                year("coverage_year", e.coverage_year)?;
                required("application_id", &e.application_id)
            }
            Event::ProxyProcessingV1(e) => required("application_id", &e.application_id),
            Event::ProxyCreditedV1(e) => required("application_id", &e.application_id),
            Event::ProxyFailedV1(e) => {
                required("application_id", &e.application_id)?;
                text("reason", &e.reason)
            }
            Event::ProxyReturnedV1(e) => required("application_id", &e.application_id),
            Event::ReconciliationRecordedV1(e) => {
                required("run_id", &e.run_id)?;
                if e.files.len() > 64 || e.results.len() > 64 {
                    return Err(FieldError { field: "files", reason: "at most 64 files and 64 result kinds".into() });
                }
                Ok(())
            }
        }
    }
}

/// The stream of a person's facts, keyed by the identity they were stated with.
pub fn person_stream(person: &Identity) -> String {
    format!("person/{person}")
}

/// The stream of an account holder's bindings.
pub fn family_stream(holder: &Identity) -> String {
    format!("family/{holder}")
}

/// The stream of a region-year's policy documents.
pub fn policy_stream(region: RegionCode, year: u16) -> String {
    format!("policy/{region}/{year}")
}

/// The stream of a proxy application's submission and steps.
pub fn proxy_stream(application_id: &str) -> String {
    format!("proxy/{application_id}")
}

fn year(field: &'static str, value: u16) -> Result<(), FieldError> {
    if (2000..=2100).contains(&value) {
        Ok(())
    } else {
        Err(FieldError { field, reason: format!("{value} is not a coverage year (2000..2100)") })
    }
}

fn text(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(FieldError { field, reason: format!("longer than {MAX_TEXT_BYTES} bytes") });
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError { field, reason: "contains a control character".into() });
    }
    Ok(())
}

fn required(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError { field, reason: "must not be empty".into() });
    }
    text(field, value)
}

fn document(value: &str) -> Result<(), FieldError> {
    if value.len() > MAX_DOCUMENT_BYTES {
        return Err(FieldError { field: "document", reason: format!("longer than {MAX_DOCUMENT_BYTES} bytes") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(channel: &str, channel_ref: &str) -> Event {
        Event::PaymentReceivedV1(PaymentReceived {
            person: "11010519491231002X".parse().expect("valid ID"),
            coverage_year: 2025,
            amount: Money::from_yuan(400),
            channel: channel.into(),
            channel_ref: channel_ref.into(),
            payer: Payer::Collector(" 碧阳街道  代办员 ".into()),
            paid_at: "2024-10-05 09:30:00".parse().expect("valid time"),
        })
    }

    #[test]
    fn canonicalize_gives_one_spelling_and_validate_refuses_the_others() {
        let mut spelled = payment(" WeChat", "ＷＸ1 ");
        assert!(matches!(spelled.validate(), Err(FieldError { field: "channel", .. })));
        spelled.canonicalize().expect("canonical form exists");
        let Event::PaymentReceivedV1(canonical) = &spelled else { unreachable!("a payment") };
        assert_eq!((canonical.channel.as_str(), canonical.channel_ref.as_str()), ("wechat", "WX1"));
        assert_eq!(canonical.payer, Payer::Collector("碧阳街道 代办员".into()));
        assert_eq!(spelled.validate(), Ok(()));
        assert_eq!(spelled.natural_key().as_deref(), Some("payment/wechat/WX1"));
        let mut hidden = payment("wechat", "WX1\u{200B}");
        let error = hidden.canonicalize().expect_err("zero-width space");
        assert_eq!(error.field, "channel_ref");
        assert!(error.reason.contains("U+200B"), "{}", error.reason);
        assert!(matches!(hidden.validate(), Err(FieldError { field: "channel_ref", .. })));
    }

    #[test]
    fn a_given_key_cannot_take_a_key_the_ledger_gives_facts() {
        let event = payment("wechat", "WX1");
        assert_eq!(event.check_idempotency_key("payment/wechat/WX1"), Ok(()), "its own natural key");
        assert_eq!(event.check_idempotency_key("client-7/WX1"), Ok(()));
        for taken in
            ["payment/wechat/WX2", "refund/wechat/R1", "Proxy/A/credited", "reconcile/run", "person_registered/00"]
        {
            let error = event.check_idempotency_key(taken).expect_err(taken);
            assert_eq!(error.field, "idempotency_key");
        }
        assert!(event.check_idempotency_key("key\u{202E}").is_err(), "not canonical");
        let registration = Event::PreRegistrationVoidedV1(PreRegistrationVoided {
            person: "other:NB-1".parse().expect("other certificate"),
            voided_on: "2025-03-01".parse().expect("date"),
            reason: "lapsed".into(),
        });
        assert_eq!(registration.check_idempotency_key(&registration.own_key()), Ok(()), "its own content key");
    }

    #[test]
    fn natural_keys_start_with_a_reserved_prefix() {
        let refund = Event::RefundIssuedV1(RefundIssued {
            person: "11010519491231002X".parse().expect("valid ID"),
            coverage_year: 2025,
            refund_ref: "R1".into(),
            payment: PaymentRef { channel: "wechat".into(), channel_ref: "WX1".into() },
            amount: Money::from_yuan(1),
            destination: RefundDestination::OriginalChannel,
            refunded_at: "2024-10-05 09:30:00".parse().expect("valid time"),
            reason: "重复缴费".into(),
        });
        for event in [payment("wechat", "WX1"), refund] {
            let key = event.natural_key().expect("a natural key");
            assert!(NATURAL_KEY_PREFIXES.iter().any(|prefix| key.starts_with(prefix)), "{key}");
        }
    }
}

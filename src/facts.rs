//! Facts in JSON Lines: the edge where outside input becomes events.
//!
//! One fact per line: `{"type": "payment_received", "v": 1, ...fields}` with
//! an optional `"idempotency_key"`. Every error names the line and the field.

use ledger::event::{Event, EVENT_TYPES};
use ledger::NewEvent;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;

/// Most errors listed for one file before giving up.
pub const MAX_ERRORS_SHOWN: usize = 20;

/// A line that is not a valid fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    /// The field, as a path (`payer.other`), where one is to blame.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: field `{}`: {}", self.line, field, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Parses one line into an event to append, with `actor` in its envelope.
pub fn parse_line(text: &str, line: usize, actor: &str) -> Result<NewEvent, LineError> {
    let at = |field: Option<&str>, message: String| LineError { line, field: field.map(str::to_string), message };
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(at(None, "expected a JSON object, one fact per line".into())),
        Err(e) => return Err(at(None, format!("malformed JSON: {e}"))),
    };
    let type_name = match object.remove("type") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(at(Some("type"), "must be a string such as \"payment_received\"".into())),
        None => return Err(at(Some("type"), "missing: every fact names its type".into())),
    };
    let version = match object.remove("v") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| at(Some("v"), format!("`{n}` is not a version number")))?,
        Some(_) => return Err(at(Some("v"), "must be a number such as 1".into())),
        None => return Err(at(Some("v"), "missing: every fact names its version (\"v\": 1)".into())),
    };
    let key = match object.remove("idempotency_key") {
        Some(Value::String(key)) if !key.trim().is_empty() => Some(key),
        Some(_) => return Err(at(Some("idempotency_key"), "must be a non-empty string".into())),
        None => None,
    };
    let event =
        decode(&type_name, version, Value::Object(object)).map_err(|(field, message)| at(field.as_deref(), message))?;
    event.validate().map_err(|e| at(Some(e.field), e.reason))?;
    let mut new = NewEvent::fact(event, actor);
    if let Some(key) = key {
        new.idempotency_key = key;
    }
    Ok(new)
}

type FieldFailure = (Option<String>, String);

fn fields<T: DeserializeOwned>(value: Value) -> Result<T, FieldFailure> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names a missing field in the message, at the parent's path.
        let field = if path == "." { missing_field(&message) } else { Some(path) };
        (field, message)
    })
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// Decodes the fields of a known type and version.
pub fn decode(type_name: &str, version: u64, value: Value) -> Result<Event, FieldFailure> {
    let known_version = EVENT_TYPES.iter().find(|(name, _)| *name == type_name).map(|(_, v)| *v);
    match known_version {
        None => return Err((Some("type".into()), format!("unknown fact type `{type_name}`; known: {}", type_names()))),
        Some(v) if u64::from(v) != version => {
            return Err((
                Some("v".into()),
                format!("`{type_name}` has no version {version}; this ledger reads version {v}"),
            ))
        }
        Some(_) => {}
    }
    Ok(match type_name {
        "policy_published" => Event::PolicyPublishedV1(fields(value)?),
        "policy_amended" => Event::PolicyAmendedV1(fields(value)?),
        "person_registered" => Event::PersonRegisteredV1(fields(value)?),
        "identity_converted" => Event::IdentityConvertedV1(fields(value)?),
        "pre_registration_voided" => Event::PreRegistrationVoidedV1(fields(value)?),
        "hardship_certified" => Event::HardshipCertifiedV1(fields(value)?),
        "hardship_assessed" => Event::HardshipAssessedV1(fields(value)?),
        "payment_received" => Event::PaymentReceivedV1(fields(value)?),
        "subsidy_granted" => Event::SubsidyGrantedV1(fields(value)?),
        "refund_issued" => Event::RefundIssuedV1(fields(value)?),
        "family_binding_created" => Event::FamilyBindingCreatedV1(fields(value)?),
        "family_binding_revoked" => Event::FamilyBindingRevokedV1(fields(value)?),
        "proxy_submitted" => Event::ProxySubmittedV1(fields(value)?),
        "proxy_processing" => Event::ProxyProcessingV1(fields(value)?),
        "proxy_credited" => Event::ProxyCreditedV1(fields(value)?),
        "proxy_failed" => Event::ProxyFailedV1(fields(value)?),
        "proxy_returned" => Event::ProxyReturnedV1(fields(value)?),
        "reconciliation_recorded" => Event::ReconciliationRecordedV1(fields(value)?),
        other => unreachable!("`{other}` is in EVENT_TYPES but has no decoder"),
    })
}

fn type_names() -> String {
    EVENT_TYPES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

/// The event's own fields as JSON (without the type tag), for display.
pub fn event_fields(event: &Event) -> Value {
    match serde_json::to_value(event) {
        Ok(Value::Object(mut tagged)) if tagged.len() == 1 => {
            let key = tagged.keys().next().cloned().unwrap_or_default();
            tagged.remove(&key).unwrap_or(Value::Null)
        }
        Ok(other) => other,
        Err(e) => Value::String(format!("<not serializable: {e}>")),
    }
}

/// A fact as a line of JSON, the inverse of [`parse_line`].
pub fn to_line(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), Value::from(event.type_name()));
    object.insert("v".into(), Value::from(event.version()));
    if let Value::Object(fields) = event_fields(event) {
        object.extend(fields);
    }
    Value::Object(object)
}

/// A short human summary of an event, with identities masked.
pub fn summary(event: &Event) -> String {
    match event {
        Event::PolicyPublishedV1(e) => format!("region {} year {}", e.region, e.coverage_year),
        Event::PolicyAmendedV1(e) => format!("region {} year {}: {}", e.region, e.coverage_year, e.reason),
        // No birth date beside the masked ID: the mask hides it.
        Event::PersonRegisteredV1(e) => format!("{} region {}", e.person.masked(), e.region),
        Event::IdentityConvertedV1(e) => format!("{} -> {}", e.from.masked(), e.to.masked()),
        Event::PreRegistrationVoidedV1(e) => format!("{} {}", e.person.masked(), e.reason),
        Event::HardshipCertifiedV1(e) => format!("{} {} group {}", e.person.masked(), e.coverage_year, e.group),
        Event::HardshipAssessedV1(e) => {
            format!("{} {} owes {} (subsidy {})", e.person.masked(), e.coverage_year, e.amount_due, e.subsidy)
        }
        Event::PaymentReceivedV1(e) => {
            format!("{} {} {} via {} {}", e.person.masked(), e.coverage_year, e.amount, e.channel, e.paid_at)
        }
        Event::SubsidyGrantedV1(e) => {
            let total = e.parts.iter().try_fold(ledger::Money::ZERO, |sum, part| sum.checked_add(part.amount));
            let total = total.map_or_else(|| "overflowing".to_string(), |m| m.to_string());
            format!("{} {} {total} from {} funder(s)", e.person.masked(), e.coverage_year, e.parts.len())
        }
        Event::RefundIssuedV1(e) => format!(
            "{} {} {} of {}/{}",
            e.person.masked(),
            e.coverage_year,
            e.amount,
            e.payment.channel,
            e.payment.channel_ref
        ),
        Event::FamilyBindingCreatedV1(e) => {
            format!("{} binds {} ({:?})", e.holder.masked(), e.member.masked(), e.relation)
        }
        Event::FamilyBindingRevokedV1(e) => format!("{} revokes {}", e.holder.masked(), e.member.masked()),
        Event::ProxySubmittedV1(e) => {
            format!("{} for {} {} {}", e.application_id, e.member.masked(), e.coverage_year, e.amount)
        }
        Event::ProxyProcessingV1(e) => e.application_id.clone(),
        Event::ProxyCreditedV1(e) => e.application_id.clone(),
        Event::ProxyFailedV1(e) => format!("{}: {}", e.application_id, e.reason),
        Event::ProxyReturnedV1(e) => format!("{} {}", e.application_id, e.amount),
        Event::ReconciliationRecordedV1(e) => format!("run {} {}..{}", e.run_id, e.period_from, e.period_to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYMENT: &str = r#"{"type":"payment_received","v":1,"person":"11010519491231002X","coverage_year":2025,"amount":"400.00","channel":"wechat","channel_ref":"WX1","paid_at":"2024-10-05 09:30:00"}"#;

    #[test]
    fn a_payment_line_parses_with_its_natural_key() {
        let new = parse_line(PAYMENT, 1, "test").expect("valid");
        assert_eq!(new.idempotency_key, "payment/wechat/WX1");
        assert_eq!(new.stream, "person/11010519491231002X");
        assert_eq!(parse_line(&to_line(&new.event).to_string(), 1, "test").expect("round trip").event, new.event);
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad_amount = PAYMENT.replace("\"400.00\"", "\"400.001\"");
        let error = parse_line(&bad_amount, 7, "t").expect_err("three decimals");
        assert_eq!((error.line, error.field.as_deref()), (7, Some("amount")));
        let bad_id = PAYMENT.replace("1002X", "10021");
        assert_eq!(parse_line(&bad_id, 1, "t").expect_err("check").field.as_deref(), Some("person"));
        let negative = PAYMENT.replace("\"400.00\"", "-5");
        assert_eq!(parse_line(&negative, 1, "t").expect_err("negative").field.as_deref(), Some("amount"));
        let bad_date = PAYMENT.replace("2024-10-05", "2024-02-30");
        assert_eq!(parse_line(&bad_date, 1, "t").expect_err("date").field.as_deref(), Some("paid_at"));
        let missing = PAYMENT.replace(r#""channel":"wechat","#, "");
        assert_eq!(parse_line(&missing, 1, "t").expect_err("missing").field.as_deref(), Some("channel"));
        let unknown = PAYMENT.replace("payment_received", "payment_recieved");
        assert_eq!(parse_line(&unknown, 1, "t").expect_err("type").field.as_deref(), Some("type"));
        let version = PAYMENT.replace(r#""v":1"#, r#""v":2"#);
        assert_eq!(parse_line(&version, 1, "t").expect_err("version").field.as_deref(), Some("v"));
        let typo = PAYMENT.replace("\"channel_ref\"", "\"channel_rf\"");
        assert!(parse_line(&typo, 1, "t").is_err());
        assert_eq!(parse_line("{not json", 3, "t").expect_err("json").field, None);
    }
}

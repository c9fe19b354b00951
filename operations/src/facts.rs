//! Facts in JSON Lines: the edge where outside input becomes events.
//!
//! One fact per line: `{"type": "payment_received", "v": 1, ...fields}` with
//! an optional `"idempotency_key"`. Every error names the line and the field.
//! A key may appear once in an object; identifiers, channels and names are
//! put in canonical form (`ledger::text`) and channels checked against the
//! known set (`channels`) before anything else sees the fact.

use crate::channels::Channels;
use ledger::event::{Event, FieldError, EVENT_TYPES};
use ledger::NewEvent;
use serde::de::{self, DeserializeOwned, DeserializeSeed};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// The prefix of the keys the service gives its callers' own keys
/// (`client/{token name}/{key}`): nobody may give such a key themselves, so
/// an import cannot occupy a caller's key, nor one caller another's.
pub const CALLER_KEY_PREFIX: &str = "client/";

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

/// Parses one line into an event to append, with `actor` in its envelope,
/// accepting the built-in channels.
pub fn parse_line(text: &str, line: usize, actor: &str) -> Result<NewEvent, LineError> {
    parse_line_with(text, line, actor, Channels::built_in())
}

/// Parses one line into an event to append, accepting `channels`.
pub fn parse_line_with(text: &str, line: usize, actor: &str, channels: &Channels) -> Result<NewEvent, LineError> {
    let at = |field: Option<&str>, message: String| LineError { line, field: field.map(str::to_string), message };
    let mut object: Map<String, Value> = match strict_json(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(at(None, "expected a JSON object, one fact per line".into())),
        Err(e) => return Err(at(e.field.as_deref(), e.message)),
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
    let field_error = |e: FieldError| at(Some(e.field), e.reason);
    let key = match object.remove("idempotency_key") {
        Some(Value::String(key)) => Some(ledger::text::identifier("idempotency_key", &key).map_err(field_error)?),
        Some(_) => return Err(at(Some("idempotency_key"), "must be a non-empty string".into())),
        None => None,
    };
    if key.as_deref() == Some("") {
        return Err(at(Some("idempotency_key"), "must be a non-empty string".into()));
    }
    if key.as_deref().is_some_and(|key| key.to_ascii_lowercase().starts_with(CALLER_KEY_PREFIX)) {
        let message =
            format!("keys starting with `{CALLER_KEY_PREFIX}` are kept for the service's callers; choose another");
        return Err(at(Some("idempotency_key"), message));
    }
    let event =
        decode(&type_name, version, Value::Object(object)).map_err(|(field, message)| at(field.as_deref(), message))?;
    admit(event, key, actor, channels).map_err(field_error)
}

/// The edge's checks of a fact however it was built (a parsed line, a
/// command's flags, a request's fields): text put in canonical form, the
/// channel known, the limits of `Event::validate`, and a given key that
/// takes no other fact's. One pipeline, so a typed fact and a line of a
/// file are refused for the same things, naming the same field.
pub fn admit(mut event: Event, key: Option<String>, actor: &str, channels: &Channels) -> Result<NewEvent, FieldError> {
    event.canonicalize()?;
    channels.check(&event)?;
    event.validate()?;
    if let Some(key) = &key {
        event.check_idempotency_key(key)?;
    }
    let mut new = NewEvent::fact(event, actor);
    if let Some(key) = key {
        new.idempotency_key = key;
    }
    Ok(new)
}

/// Why a text is not strict JSON: malformed, or a key repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The repeated key, as a path (`payment.channel`, `[2].amount`).
    pub field: Option<String>,
    pub message: String,
}

/// JSON text as a `Value`, refusing an object that repeats a key at any
/// depth (serde_json would keep the last, so `"amount"` given twice would
/// quietly be the second). Numbers keep their literal text.
pub fn strict_json(text: &str) -> Result<Value, JsonError> {
    let repeated = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = StrictValue { repeated: &repeated }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|e| match repeated.into_inner() {
        Some(path) => {
            JsonError { message: format!("key `{path}` appears more than once; give each key once"), field: Some(path) }
        }
        None => JsonError { field: None, message: format!("malformed JSON: {e}") },
    })
}

/// serde_json's key for a number handed over as its literal text
/// (feature `arbitrary_precision`).
const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Builds a `Value`, noting a repeated key in `repeated`: the key, then,
/// as the error returns through the enclosing objects and arrays, the path
/// to it (built only then, so a good fact allocates no paths).
struct StrictValue<'a> {
    repeated: &'a RefCell<Option<String>>,
}

impl StrictValue<'_> {
    /// Puts `step` (a key, or `[index]`) in front of the repeated key's path.
    fn prefix(&self, step: &str) {
        if let Some(path) = self.repeated.borrow_mut().as_mut() {
            *path = if path.starts_with('[') { format!("{step}{path}") } else { format!("{step}.{path}") };
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value).map(Value::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(StrictValue { repeated: self.repeated }) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.prefix(&format!("[{}]", items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.is_empty() && key == JSON_NUMBER_TOKEN {
                let literal: String = map.next_value()?;
                let number = literal.parse::<Number>().map_err(de::Error::custom)?;
                return Ok(Value::Number(number));
            }
            if object.contains_key(&key) {
                let error = de::Error::custom(format!("key `{key}` appears more than once"));
                *self.repeated.borrow_mut() = Some(key);
                return Err(error);
            }
            match map.next_value_seed(StrictValue { repeated: self.repeated }) {
                Ok(value) => object.insert(key, value),
                Err(error) => {
                    self.prefix(&key);
                    return Err(error);
                }
            };
        }
        Ok(Value::Object(object))
    }
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

    /// A fact built as its type goes through the checks a line does: the
    /// same canonical form and key, the same refusals naming the same field.
    #[test]
    fn a_typed_fact_is_admitted_as_its_line_is() {
        let line = parse_line(PAYMENT, 1, "t").expect("valid");
        let Event::PaymentReceivedV1(mut payment) = line.event.clone() else { unreachable!("a payment") };
        payment.channel = " WeChat ".into();
        payment.channel_ref = "ＷＸ１".into();
        let typed = Event::PaymentReceivedV1(payment.clone());
        let admitted = admit(typed, None, "t", Channels::built_in()).expect("a canonical form exists");
        assert_eq!((admitted.event, admitted.idempotency_key), (line.event, line.idempotency_key));
        payment.channel = "wechatt".into();
        let unknown = admit(Event::PaymentReceivedV1(payment.clone()), None, "t", Channels::built_in());
        assert_eq!(unknown.expect_err("an unknown channel").field, "channel");
        payment.channel = "wechat".into();
        let taken =
            admit(Event::PaymentReceivedV1(payment), Some("payment/wechat/WX2".into()), "t", Channels::built_in());
        assert_eq!(taken.expect_err("another payment's key").field, "idempotency_key");
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

    /// The six spellings of one payment are one payment: one natural key.
    #[test]
    fn spellings_of_one_reference_give_one_key() {
        let spellings = [
            PAYMENT.to_string(),
            PAYMENT.replace(r#""wechat""#, r#""WeChat""#),
            PAYMENT.replace(r#""wechat""#, r#"" WECHAT ""#),
            PAYMENT.replace(r#""WX1""#, r#""WX1 ""#),
            PAYMENT.replace(r#""WX1""#, r#""ＷＸ１""#),
            PAYMENT.replace(r#""WX1""#, "\"\\u3000WX1\""),
        ];
        for spelling in &spellings {
            let new = parse_line(spelling, 1, "t").unwrap_or_else(|e| panic!("{spelling}: {e}"));
            assert_eq!(new.idempotency_key, "payment/wechat/WX1", "{spelling}");
        }
        for hidden in ["WX1\\u200b", "WX\\u202e1", "\\ufeffWX1", "WX\\u31641", "WX1\\u2800"] {
            let line = PAYMENT.replace(r#""WX1""#, &format!("\"{hidden}\""));
            let error = parse_line(&line, 4, "t").expect_err(hidden);
            assert_eq!((error.line, error.field.as_deref()), (4, Some("channel_ref")), "{hidden}");
            assert!(error.message.contains("U+"), "{}", error.message);
        }
    }

    #[test]
    fn unknown_channels_are_refused_listing_the_known() {
        let error = parse_line(&PAYMENT.replace(r#""wechat""#, r#""wechatt""#), 2, "t").expect_err("typo");
        assert_eq!(error.field.as_deref(), Some("channel"));
        assert!(error.message.contains("alipay") && error.message.contains("channels.toml"), "{}", error.message);
        let refund_source = PAYMENT.replace(r#""wechat""#, r#""subsidy""#);
        assert!(parse_line(&refund_source, 1, "t").is_err(), "subsidy is no payment channel");
    }

    #[test]
    fn a_repeated_key_is_refused_naming_it() {
        let repeated = PAYMENT.replace(r#""amount":"400.00","#, r#""amount":"400.00","amount":"1.00","#);
        let error = parse_line(&repeated, 3, "t").expect_err("amount twice");
        assert_eq!((error.line, error.field.as_deref()), (3, Some("amount")));
        assert!(error.message.contains("`amount`"), "{}", error.message);
        let nested = r#"{"a":[{"b":1},{"b":2,"c":{"d":1,"d":2}}]}"#;
        assert_eq!(strict_json(nested).expect_err("nested").field.as_deref(), Some("a[1].c.d"));
        assert!(strict_json(r#"{"a":{"b":1},"c":{"b":1}}"#).is_ok(), "the same key in two objects");
        assert_eq!(strict_json(r#"{"n":400.10}"#).expect("number").to_string(), r#"{"n":400.10}"#, "literal kept");
    }

    #[test]
    fn amounts_as_numbers_follow_the_rules_for_strings() {
        for literal in ["400.00000000000001", "0.1e-400", "1e2", "400.001"] {
            let as_number = PAYMENT.replace(r#""400.00""#, literal);
            let as_string = PAYMENT.replace(r#""400.00""#, &format!("\"{literal}\""));
            assert_eq!(parse_line(&as_number, 1, "t").expect_err(literal).field.as_deref(), Some("amount"));
            assert!(parse_line(&as_string, 1, "t").is_err(), "{literal} as a string");
        }
        let new = parse_line(&PAYMENT.replace(r#""400.00""#, "400.00"), 1, "t").expect("a plain number");
        let Event::PaymentReceivedV1(payment) = new.event else { unreachable!("a payment") };
        assert_eq!(payment.amount.fen(), 40000);
    }

    #[test]
    fn a_given_key_cannot_take_another_facts_natural_key() {
        let keyed = |key: &str| PAYMENT.replace(r#""v":1,"#, &format!(r#""v":1,"idempotency_key":"{key}","#));
        let error = parse_line(&keyed("payment/wechat/WX2"), 1, "t").expect_err("another payment's key");
        assert_eq!(error.field.as_deref(), Some("idempotency_key"));
        assert_eq!(
            parse_line(&keyed("payment/wechat/WX1"), 1, "t").expect("own key").idempotency_key,
            "payment/wechat/WX1"
        );
        assert_eq!(parse_line(&keyed(" client-1 "), 1, "t").expect("trimmed").idempotency_key, "client-1");
        assert!(parse_line(&keyed("client\\u200b1"), 1, "t").is_err());
        let error = parse_line(&keyed("Client/wechat/K"), 1, "t").expect_err("a service caller's key");
        assert_eq!(error.field.as_deref(), Some("idempotency_key"));
        assert!(error.message.contains("client/"), "{error}");
    }
}

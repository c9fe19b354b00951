//! OpenAPI schemas (feature `openapi`) of the value types whose serde form
//! is written by hand: each schema says what their `Serialize` writes in
//! JSON (the human-readable form), so the service's document describes the
//! bytes it sends.

use crate::{BeijingTime, Date, Identity, Money, RegionCode, UtcTime};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description))
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        // `Display`: whole yuan, a point, two digits of fen; never negative.
        text("yuan with two decimals (\"280.00\"); the ledger holds whole fen")
            .pattern(Some(r"^[0-9]+\.[0-9]{2}$"))
            .examples(["280.00"])
            .into()
    }
}
impl ToSchema for Money {}

impl PartialSchema for Identity {
    fn schema() -> RefOr<Schema> {
        // Answers mask it (`520102********1234`), so no pattern of the full number.
        text("an 18-character resident ID (GB 11643) or `other:NUMBER`; masked in answers").into()
    }
}
impl ToSchema for Identity {}

impl PartialSchema for RegionCode {
    fn schema() -> RefOr<Schema> {
        text("a six-digit administrative division code (county, prefecture or province)")
            .pattern(Some(r"^[0-9]{6}$"))
            .into()
    }
}
impl ToSchema for RegionCode {}

impl PartialSchema for Date {
    fn schema() -> RefOr<Schema> {
        text("a calendar day in China (UTC+8), YYYY-MM-DD")
            .format(Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date)))
            .into()
    }
}
impl ToSchema for Date {}

impl PartialSchema for BeijingTime {
    fn schema() -> RefOr<Schema> {
        text("a business instant, RFC 3339 at +08:00")
            .format(Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .into()
    }
}
impl ToSchema for BeijingTime {}

impl PartialSchema for UtcTime {
    fn schema() -> RefOr<Schema> {
        text("an instant of recording, RFC 3339 in UTC")
            .format(Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .into()
    }
}
impl ToSchema for UtcTime {}

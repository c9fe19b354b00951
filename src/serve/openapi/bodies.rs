//! Schemas of the bodies that are not an answer type: the facts a post
//! carries (any fact of the import format), text bodies, and this
//! document itself.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

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

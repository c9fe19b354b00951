//! The API's OpenAPI 3.1 document, generated. The route table
//! (`serve::routes`) says which routes exist; `described` says, route by
//! route, what each takes and answers, by type; every schema comes from its
//! type (`utoipa::ToSchema`: derived on the answers of `operations`, the
//! projections' views, the request bodies; written by hand in
//! `ledger/src/schema.rs` for values with their own serde form). A type
//! named as an answer brings its schema and those it refers to into
//! `components`, so no schema can be left out.

mod bodies;

use super::audit::{AuditAccepted, AuditJob, VerifyResult};
use super::error::ErrorBody;
use super::Health;
use super::{audit, family};
use bodies::{Facts, OpenApiDocument, Text};
use operations::answers::StuckAnswer;
use operations::certificate::Certificate;
use operations::coverage::{CoverageAnswer, HistoryAnswer, UnpaidPage};
use operations::family::{PersonAnswer as FamilyPerson, PostedAnswer as RecordedFact};
use operations::import::Appended;
use operations::proof::{ConsistencyProof, InclusionProof};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::{ComponentsBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Response, ResponseBuilder,
};
use utoipa::ToSchema;

const JSON: &str = "application/json";
const READ_ERRORS: &[&str] = &["400", "401", "403", "404", "503"];
const LIST_ERRORS: &[&str] = &["400", "401", "403", "503"];
const WRITE_ERRORS: &[&str] = &["400", "401", "403", "408", "409", "413", "422", "503", "507"];

/// The error answers, each `{code, message, field?}` (`Error`).
const ERRORS: &[(&str, &str)] = &[
    ("400", "bad input; `field` names the field"),
    ("401", "missing or unknown bearer token"),
    ("403", "the token's role may not do this"),
    ("404", "unknown person"),
    ("408", "the body did not arrive within --body-read-timeout (`body_timeout`)"),
    ("409", "idempotency key reused for different content, or a version conflict"),
    ("413", "body above 8 MiB"),
    ("422", "refused by the rules (family lifecycle, refunds); the message quotes the rule"),
    ("503", "overloaded or timed out, or the store refuses writes after a storage failure; see Retry-After"),
    ("507", "the disk is full: the store refuses writes until space is back (`insufficient_storage`)"),
];

/// One documented route.
pub struct Described {
    pub method: &'static str,
    pub path: &'static str,
    pub operation: Operation,
}

/// The schemas the document names, gathered as routes name them.
#[derive(Default)]
struct Schemas(Vec<(String, RefOr<Schema>)>);

impl Schemas {
    /// A reference to `T`'s schema, which (with those it refers to) joins
    /// the components.
    fn of<T: ToSchema>(&mut self) -> Ref {
        self.0.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.0);
        Ref::from_schema_name(T::name())
    }

    /// A success answer whose body is `T`, as `content_type`.
    fn answer<T: ToSchema>(&mut self, description: &str, content_types: &[&str]) -> Response {
        let schema = self.of::<T>();
        content_types
            .iter()
            .fold(ResponseBuilder::new().description(description), |response, content_type| {
                response.content(*content_type, ContentBuilder::new().schema(Some(schema.clone())).build())
            })
            .build()
    }

    /// A JSON request body of type `T`.
    fn body<T: ToSchema>(&mut self, required: bool) -> RequestBody {
        let required = if required { Required::True } else { Required::False };
        RequestBodyBuilder::new()
            .content(JSON, ContentBuilder::new().schema(Some(self.of::<T>())).build())
            .required(Some(required))
            .build()
    }
}

/// An operation answering `code` with `answer`, or one of `errors`.
fn operation(summary: &str, code: &str, answer: Response, errors: &[&str]) -> OperationBuilder {
    errors.iter().fold(OperationBuilder::new().summary(Some(summary)).response(code, answer), |operation, code| {
        operation.response(*code, RefOr::Ref(Ref::from_response_name(format!("E{code}"))))
    })
}

/// Anyone may call it: no token.
fn public(operation: OperationBuilder) -> OperationBuilder {
    operation.securities(Some(Vec::<SecurityRequirement>::new()))
}

fn path_parameter(name: &str, kind: Type, description: &str) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(Object::with_type(kind)))
}

fn id_parameter() -> ParameterBuilder {
    path_parameter("id_number", Type::String, "18-character resident ID, or other:NUMBER")
}

fn query(name: &str, kind: Type, required: bool, description: &str) -> ParameterBuilder {
    let required = if required { Required::True } else { Required::False };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(required)
        .description(Some(description))
        .schema(Some(Object::with_type(kind)))
}

/// Every route's documentation: what it takes and what it answers.
fn described(schemas: &mut Schemas) -> Vec<Described> {
    let mut routes = Vec::new();
    let mut add = |method, path, operation: OperationBuilder| {
        routes.push(Described { method, path, operation: operation.build() });
    };
    let page = schemas.answer::<Text>("the page", &["text/html"]);
    add("get", "/", public(operation("The office page (HTML); its API calls carry the token", "200", page, &[])));
    let script = schemas.answer::<Text>("the script", &["text/javascript"]);
    add("get", "/web/app.js", public(operation("The office page's script", "200", script, &[])));
    let style = schemas.answer::<Text>("the style sheet", &["text/css"]);
    add(
        "get",
        "/web/style.css",
        public(operation("The office page's style sheet (with print rules)", "200", style, &[])),
    );
    let health = schemas.answer::<Health>("ok, with the head", &[JSON]);
    let summary = "Liveness and log head; 503 with the reason while the store refuses writes";
    // 503 while writes are refused is the health body with the reason; an
    // overloaded server sheds the request with an error body.
    let either = OneOfBuilder::new().item(schemas.of::<Health>()).item(schemas.of::<ErrorBody>());
    let refusing = ResponseBuilder::new()
        .description("refusing writes (`status`, `reason`), or overloaded (an error: see Retry-After)")
        .content(JSON, ContentBuilder::new().schema(Some(either)).build())
        .build();
    add("get", "/v1/health", public(operation(summary, "200", health, &[]).response("503", refusing)));
    let document = schemas.answer::<OpenApiDocument>("the document", &[JSON]);
    add("get", "/v1/openapi.json", public(operation("This document", "200", document, &[])));
    let metrics = schemas.answer::<Text>("metrics (OpenMetrics text)", &["application/openmetrics-text"]);
    add("get", "/v1/metrics", public(operation("Prometheus metrics", "200", metrics, &["503"])));
    lookups(schemas, &mut add);
    writes(schemas, &mut add);
    audits(schemas, &mut add);
    proofs(schemas, &mut add);
    routes
}

type Add<'a> = dyn FnMut(&'static str, &'static str, OperationBuilder) + 'a;

/// The reads of persons and lists.
fn lookups(schemas: &mut Schemas, add: &mut Add) {
    let coverage = schemas.answer::<CoverageAnswer>(
        "person (masked ID), years as `yibao coverage --json`, log_position, head_hash",
        &[JSON],
    );
    let summary = "A person's coverage (office, auditor); the lookup is recorded in access.log";
    add(
        "get",
        "/v1/coverage/{id_number}",
        operation(summary, "200", coverage, READ_ERRORS)
            .parameter(id_parameter())
            .parameter(query("year", Type::Integer, false, "one coverage year (default: all)"))
            .parameter(query("on", Type::String, false, "YYYY-MM-DD: whether covered on this day"))
            .parameter(query(
                "as_of",
                Type::String,
                false,
                "RFC 3339 moment: answer with the facts recorded by then (a fresh rebuild)",
            )),
    );
    let history = schemas.answer::<HistoryAnswer>("facts in log order", &[JSON]);
    let summary = "Every fact about a person (office, auditor); recorded in access.log";
    add(
        "get",
        "/v1/persons/{id_number}/history",
        operation(summary, "200", history, READ_ERRORS).parameter(id_parameter()),
    );
    let unpaid = schemas.answer::<UnpaidPage>("a page of the list", &[JSON]);
    add(
        "get",
        "/v1/unpaid",
        operation("Registered, not paid in full (office, auditor); IDs masked", "200", unpaid, LIST_ERRORS)
            .parameter(query("region", Type::String, true, "county, prefecture or province code"))
            .parameter(query("year", Type::Integer, true, "coverage year"))
            .parameter(query("page", Type::Integer, false, "from 1"))
            .parameter(query("per_page", Type::Integer, false, "1..=1000, default 100")),
    );
    let certificate = schemas.answer::<Text>("the certificate (html or text)", &["text/html", "text/plain"]);
    let data = schemas.of::<Certificate>();
    let certificate =
        ResponseBuilder::from(certificate).content(JSON, ContentBuilder::new().schema(Some(data)).build()).build();
    let summary =
        "The payment certificate (参保缴费证明) of a received person-year (office, auditor); recorded in access.log";
    add(
        "get",
        "/v1/certificates/{id_number}/{year}",
        operation(summary, "200", certificate, &["400", "401", "403", "404", "422", "503"])
            .description(Some(
                "HTML (default) or text with a data block that `yibao certificate verify FILE` checks against the log; json gives the data block alone. 422 `not_received` when the year is not received.",
            ))
            .parameter(id_parameter())
            .parameter(path_parameter("year", Type::Integer, "coverage year"))
            .parameter(query("format", Type::String, false, "html (default), text or json")),
    );
    let person = schemas.answer::<FamilyPerson>("the family view, IDs masked", &[JSON]);
    let summary = "Bindings as holder and as member, applications, the personal account by year (office, auditor); recorded in access.log";
    add(
        "get",
        "/v1/family/persons/{id_number}",
        operation(summary, "200", person, LIST_ERRORS).parameter(id_parameter()),
    );
    let stuck = schemas.answer::<StuckAnswer>("{now, stuck, n_without_limit, log_position}", &[JSON]);
    add(
        "get",
        "/v1/family/stuck",
        operation(
            "Applications in flight longer than their policy's processing duration (office, auditor)",
            "200",
            stuck,
            LIST_ERRORS,
        )
        .parameter(query("older_than_hours", Type::Integer, false, "override the policies' duration")),
    );
}

/// The posts that append facts.
fn writes(schemas: &mut Schemas, add: &mut Add) {
    let appended = schemas.answer::<Appended>("{positions, n_appended, head}", &[JSON]);
    add(
        "post",
        "/v1/events",
        operation(
            "Append one fact (object) or a batch (array), all or nothing, as `yibao import` does",
            "200",
            appended,
            WRITE_ERRORS,
        )
        .description(Some(
            "office: every type but payments and proxy steps; channel: payment_received and proxy_*. An identical retry returns the same positions with n_appended 0.",
        ))
        .request_body(Some(schemas.body::<Facts>(true))),
    );
    let mut recorded = |what: &str| schemas.answer::<RecordedFact>(what, &[JSON]);
    let (bound, revoked) =
        (recorded("{type, position, n_appended, head}"), recorded("{type, position, n_appended, head}"));
    let (applied, stepped) = (
        recorded("{type, position, n_appended, head, application_id}"),
        recorded("{type, position, n_appended, head}"),
    );
    let summary = "共济绑定: bind a member to an employee's personal account (office)";
    let body = schemas.body::<family::BindRequest>(true);
    add("post", "/v1/family/bindings", operation(summary, "200", bound, WRITE_ERRORS).request_body(Some(body)));
    let summary = "取消授权: revoke a binding; applications in flight finish (office)";
    let body = schemas.body::<family::RevokeRequest>(true);
    add(
        "post",
        "/v1/family/bindings/revoke",
        operation(summary, "200", revoked, WRITE_ERRORS).request_body(Some(body)),
    );
    let summary = "代缴申请: a proxy payment from the holder's personal account (channel)";
    let body = schemas.body::<family::ApplyRequest>(true);
    add("post", "/v1/family/applications", operation(summary, "200", applied, WRITE_ERRORS).request_body(Some(body)));
    let summary = "A step of an application: processing (受理中), credited (缴费到账成功), failed (受理失败, needs reason), returned (原渠道返还) (channel)";
    let step = ObjectBuilder::new().schema_type(Type::String).enum_values(Some([
        "processing",
        "credited",
        "failed",
        "returned",
    ]));
    add(
        "post",
        "/v1/family/applications/{application_id}/{step}",
        operation(summary, "200", stepped, WRITE_ERRORS)
            .parameter(path_parameter("application_id", Type::String, "the application's id"))
            .parameter(path_parameter("step", Type::String, "the step").schema(Some(step)))
            .request_body(Some(schemas.body::<family::StepRequest>(false))),
    );
}

/// The audit jobs' routes.
fn audits(schemas: &mut Schemas, add: &mut Add) {
    let errors = ["400", "401", "403", "503"];
    let accepted = schemas.answer::<AuditAccepted>("{job, status (its address), now}", &[JSON]);
    let summary =
        "Start a verification of the chain (auditor): 202 with the job; its result names the first position that fails";
    let body = schemas.body::<audit::VerifyRequest>(false);
    add("post", "/v1/audit/verify", operation(summary, "202", accepted, &errors).request_body(Some(body)));
    let accepted = schemas.answer::<AuditAccepted>("{job, status (its address), now}", &[JSON]);
    let summary = "Start a replay of a coverage year (auditor): a rebuild of every projection from the log, the year's report and digest as `yibao replay --json`; `check` adds the drift against the live projection";
    let body = schemas.body::<audit::ReplayRequest>(true);
    add("post", "/v1/audit/replay", operation(summary, "202", accepted, &errors).request_body(Some(body)));
    // A verify job's `result`; a replay job's is `yibao replay --json`'s answer.
    schemas.of::<VerifyResult>();
    let job =
        schemas.answer::<AuditJob>("{job, kind, state, done, total, started_at, finished_at, result | error}", &[JSON]);
    let summary = "An audit job: running (done of total records), done (result) or failed (error) (auditor)";
    add(
        "get",
        "/v1/audit/jobs/{job}",
        operation(summary, "200", job, &["400", "401", "403", "404"]).parameter(path_parameter(
            "job",
            Type::Integer,
            "the job's number",
        )),
    );
}

/// The Merkle tree's proofs: the files `yibao proof verify` takes.
fn proofs(schemas: &mut Schemas, add: &mut Add) {
    let errors = ["400", "401", "403", "503"];
    let inclusion = schemas.answer::<InclusionProof>("{position, chain_hash, tree_size, root, path}", &[JSON]);
    let summary = "That the record at a position is in the log's Merkle tree of a size (office, auditor): `yibao proof inclusion --json`, checked offline by `yibao proof verify`; 400 names the head for a position or size past it";
    add(
        "get",
        "/v1/proof/inclusion",
        operation(summary, "200", inclusion, &errors)
            .parameter(query("position", Type::Integer, true, "the record's position, from 1"))
            .parameter(query("tree_size", Type::Integer, false, "the tree's size (default: the head)")),
    );
    let consistency = schemas.answer::<ConsistencyProof>("{old_size, old_root, new_size, new_root, path}", &[JSON]);
    let summary = "That the log's Merkle tree of one size extends the tree of an earlier size (office, auditor): `yibao proof consistency --json`";
    add(
        "get",
        "/v1/proof/consistency",
        operation(summary, "200", consistency, &errors)
            .parameter(query("old", Type::Integer, true, "the earlier tree's size"))
            .parameter(query("new", Type::Integer, false, "the later tree's size (default: the head)")),
    );
}

fn method(name: &str) -> Option<HttpMethod> {
    match name {
        "get" => Some(HttpMethod::Get),
        "post" => Some(HttpMethod::Post),
        _ => None,
    }
}

/// The document: the routes of `serve::routes`, each as `described` says.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::default();
    let mut described = described(&mut schemas);
    let mut paths = PathsBuilder::new();
    for (name, path, _) in super::routes() {
        let found = described.iter().position(|d| d.method == name && d.path == path);
        if let (Some(index), Some(method)) = (found, method(name)) {
            paths = paths.path(path, PathItem::new(method, described.swap_remove(index).operation));
        }
    }
    let error = schemas.of::<ErrorBody>();
    let mut components = ComponentsBuilder::new()
        .schemas_from_iter(schemas.0)
        .security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    for (code, what) in ERRORS {
        let content = ContentBuilder::new().schema(Some(error.clone())).build();
        components =
            components.response(format!("E{code}"), ResponseBuilder::new().description(*what).content(JSON, content));
    }
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("yibao ledger API").version(env!("CARGO_PKG_VERSION")))
        .paths(paths)
        .components(Some(components.build()))
        .security(Some([SecurityRequirement::new("bearer", Vec::<String>::new())]))
        .build()
}

#[cfg(test)]
mod tests {
    use super::{described, document, Schemas};
    use serde_json::Value;

    fn routes() -> Vec<(&'static str, &'static str)> {
        crate::serve::routes().into_iter().map(|(method, path, _)| (method, path)).collect()
    }

    /// The route table and the routes described agree both ways, and the
    /// document holds exactly the route table's routes.
    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let routes = routes();
        let described: Vec<(&str, &str)> =
            described(&mut Schemas::default()).iter().map(|d| (d.method, d.path)).collect();
        for route in &routes {
            assert!(described.contains(route), "{route:?} is served but not described");
        }
        for route in &described {
            assert!(routes.contains(route), "{route:?} is described but not served");
        }
        let document = serde_json::to_value(document()).expect("the document as JSON");
        for (method, path) in &routes {
            assert!(document["paths"][path][method].is_object(), "{method} {path} is served but not documented");
        }
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                assert!(
                    routes.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }

    /// The component a `$ref` names, if the document has it.
    fn component<'a>(document: &'a Value, reference: &Value) -> Option<&'a Value> {
        let name = reference.as_str()?.strip_prefix("#/components/schemas/")?;
        document["components"]["schemas"].get(name)
    }

    /// Every `$ref` in `value` names a component the document has.
    fn dangling_refs(document: &Value, value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    let missing = key == "$ref"
                        && inner.as_str().is_some_and(|r| r.starts_with("#/components/schemas/"))
                        && component(document, inner).is_none();
                    if missing {
                        found.push(inner.to_string());
                    }
                    dangling_refs(document, inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|inner| dangling_refs(document, inner, found)),
            _ => {}
        }
    }

    /// Every route's success answer (200, or 202 for a job started) has a
    /// schema that is a `$ref` to a component, in every content type; no
    /// `$ref` anywhere names a missing component.
    #[test]
    fn every_answer_has_a_schema_in_the_components() {
        let document = serde_json::to_value(document()).expect("the document as JSON");
        for (method, path) in routes() {
            let responses = &document["paths"][path][method]["responses"];
            let success = responses.get("200").or_else(|| responses.get("202"));
            let content = success.and_then(|answer| answer["content"].as_object());
            let content = content.unwrap_or_else(|| panic!("{method} {path}: no success answer with content"));
            assert!(!content.is_empty(), "{method} {path}: no content type");
            for (content_type, media) in content {
                let reference = &media["schema"]["$ref"];
                assert!(
                    component(&document, reference).is_some(),
                    "{method} {path} ({content_type}): the answer's schema is not a component: {media}"
                );
            }
        }
        let mut dangling = Vec::new();
        dangling_refs(&document, &document, &mut dangling);
        assert!(dangling.is_empty(), "references to missing components: {dangling:?}");
    }
}

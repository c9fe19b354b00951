//! The API's OpenAPI 3 document, written by hand.

use serde_json::{json, Value};

fn error_responses(codes: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    for code in codes {
        responses.insert((*code).into(), json!({ "$ref": format!("#/components/responses/E{code}") }));
    }
    Value::Object(responses)
}

fn with_ok(description: &str, content_type: &str, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    if let Some(object) = responses.as_object_mut() {
        object.insert("200".into(), json!({ "description": description, "content": { content_type: {} } }));
    }
    responses
}

fn id_parameter() -> Value {
    json!({ "name": "id_number", "in": "path", "required": true,
            "description": "18-character resident ID, or other:NUMBER", "schema": { "type": "string" } })
}

fn query(name: &str, kind: &str, required: bool, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": { "type": kind } })
}

pub fn document() -> Value {
    let read_errors = ["400", "401", "403", "404", "503"];
    let write_errors = ["400", "401", "403", "408", "409", "413", "422", "503", "507"];
    let error_schema = json!({ "type": "object", "required": ["code", "message"], "properties": {
        "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } });
    let mut responses = serde_json::Map::new();
    for (code, what) in [
        ("400", "bad input; `field` names the field"),
        ("401", "missing or unknown bearer token"),
        ("403", "the token's role may not do this"),
        ("404", "unknown person"),
        ("409", "idempotency key reused for different content, or a version conflict"),
        ("413", "body above 8 MiB"),
        ("422", "refused by the rules (family lifecycle, refunds); the message quotes the rule"),
        ("408", "the body did not arrive within --body-read-timeout (`body_timeout`)"),
        ("503", "overloaded or timed out, or the store refuses writes after a storage failure; see Retry-After"),
        ("507", "the disk is full: the store refuses writes until space is back (`insufficient_storage`)"),
    ] {
        responses.insert(
            format!("E{code}"),
            json!({ "description": what, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    let mut document = json!({
        "openapi": "3.0.3",
        "info": { "title": "yibao ledger API", "version": env!("CARGO_PKG_VERSION") },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": error_schema },
            "responses": responses,
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/": { "get": { "summary": "The office page (HTML); its API calls carry the token", "security": [],
                "responses": with_ok("the page", "text/html", &[]) } },
            "/web/app.js": { "get": { "summary": "The office page's script", "security": [],
                "responses": with_ok("the script", "text/javascript", &[]) } },
            "/web/style.css": { "get": { "summary": "The office page's style sheet (with print rules)", "security": [],
                "responses": with_ok("the style sheet", "text/css", &[]) } },
            "/v1/health": { "get": { "summary": "Liveness and log head; 503 with the reason while the store refuses writes", "security": [],
                "responses": with_ok("ok", "application/json", &["503"]) } },
            "/v1/openapi.json": { "get": { "summary": "This document", "security": [],
                "responses": with_ok("the document", "application/json", &[]) } },
            "/v1/metrics": { "get": { "summary": "Prometheus metrics", "security": [],
                "responses": with_ok("metrics (OpenMetrics text)", "application/openmetrics-text", &["503"]) } },
            "/v1/coverage/{id_number}": { "get": {
                "summary": "A person's coverage (office, auditor); the lookup is recorded in access.log",
                "parameters": [id_parameter(),
                    query("year", "integer", false, "one coverage year (default: all)"),
                    query("on", "string", false, "YYYY-MM-DD: whether covered on this day"),
                    query("as_of", "string", false, "RFC 3339 moment: answer with the facts recorded by then (a fresh rebuild)")],
                "responses": with_ok("person (masked ID), years as `yibao coverage --json`, log_position, head_hash", "application/json", &read_errors) } },
            "/v1/persons/{id_number}/history": { "get": {
                "summary": "Every fact about a person (office, auditor); recorded in access.log",
                "parameters": [id_parameter()],
                "responses": with_ok("facts in log order", "application/json", &read_errors) } },
            "/v1/unpaid": { "get": {
                "summary": "Registered, not paid in full (office, auditor); IDs masked",
                "parameters": [query("region", "string", true, "county, prefecture or province code"),
                    query("year", "integer", true, "coverage year"),
                    query("page", "integer", false, "from 1"),
                    query("per_page", "integer", false, "1..=1000, default 100")],
                "responses": with_ok("a page of the list", "application/json", &["400", "401", "403", "503"]) } },
            "/v1/events": { "post": {
                "summary": "Append one fact (object) or a batch (array), all or nothing, as `yibao import` does",
                "description": "office: every type but payments and proxy steps; channel: payment_received and proxy_*. An identical retry returns the same positions with n_appended 0.",
                "requestBody": { "required": true, "content": { "application/json": {} } },
                "responses": with_ok("{positions, n_appended, head}", "application/json",
                    &write_errors) } },
            "/v1/certificates/{id_number}/{year}": { "get": {
                "summary": "The payment certificate (参保缴费证明) of a received person-year (office, auditor); recorded in access.log",
                "description": "HTML (default) or text with a data block that `yibao certificate verify FILE` checks against the log; json gives the data block alone. 422 `not_received` when the year is not received.",
                "parameters": [id_parameter(),
                    { "name": "year", "in": "path", "required": true, "schema": { "type": "integer" } },
                    query("format", "string", false, "html (default), text or json")],
                "responses": with_ok("the certificate", "text/html", &["400", "401", "403", "404", "422", "503"]) } },
            "/v1/family/bindings": { "post": {
                "summary": "共济绑定: bind a member to an employee's personal account (office)",
                "requestBody": body_of(&[("holder", true), ("account_province", true), ("member", true),
                    ("relation", true), ("bound_on", false)]),
                "responses": with_ok("{type, position, n_appended, head}", "application/json", &write_errors) } },
            "/v1/family/bindings/revoke": { "post": {
                "summary": "取消授权: revoke a binding; applications in flight finish (office)",
                "requestBody": body_of(&[("holder", true), ("member", true), ("revoked_on", false)]),
                "responses": with_ok("{type, position, n_appended, head}", "application/json", &write_errors) } },
            "/v1/family/applications": { "post": {
                "summary": "代缴申请: a proxy payment from the holder's personal account (channel)",
                "requestBody": body_of(&[("holder", true), ("member", true), ("coverage_year", true),
                    ("amount", true), ("application_id", false), ("at", false)]),
                "responses": with_ok("{type, position, n_appended, head, application_id}", "application/json", &write_errors) } },
            "/v1/family/applications/{application_id}/{step}": { "post": {
                "summary": "A step of an application: processing (受理中), credited (缴费到账成功), failed (受理失败, needs reason), returned (原渠道返还) (channel)",
                "parameters": [
                    { "name": "application_id", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "step", "in": "path", "required": true,
                      "schema": { "type": "string", "enum": ["processing", "credited", "failed", "returned"] } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": object_schema(&[("at", false), ("reason", false)]) } } },
                "responses": with_ok("{type, position, n_appended, head}", "application/json", &write_errors) } },
            "/v1/family/persons/{id_number}": { "get": {
                "summary": "Bindings as holder and as member, applications, the personal account by year (office, auditor); recorded in access.log",
                "parameters": [id_parameter()],
                "responses": with_ok("the family view, IDs masked", "application/json", &["400", "401", "403", "503"]) } },
            "/v1/family/stuck": { "get": {
                "summary": "Applications in flight longer than their policy's processing duration (office, auditor)",
                "parameters": [query("older_than_hours", "integer", false, "override the policies' duration")],
                "responses": with_ok("{now, stuck, n_without_limit, log_position}", "application/json", &["400", "401", "403", "503"]) } },
        }
    });
    if let (Some(paths), Value::Object(audit)) = (document["paths"].as_object_mut(), audit_paths()) {
        paths.extend(audit);
    }
    document
}

/// The audit jobs' routes.
fn audit_paths() -> Value {
    json!({
            "/v1/audit/verify": { "post": {
            "summary": "Start a verification of the chain (auditor): 202 with the job; its result names the first position that fails",
            "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": {
                "from": { "type": "integer" }, "to": { "type": "integer" } } } } } },
            "responses": accepted_job(&["400", "401", "403", "503"]) } },
        "/v1/audit/replay": { "post": {
            "summary": "Start a replay of a coverage year (auditor): a rebuild of every projection from the log, the year's report and digest as `yibao replay --json`; `check` adds the drift against the live projection",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["year"], "properties": {
                "year": { "type": "integer" }, "region": { "type": "string" }, "as_of": { "type": "string" },
                "on": { "type": "string" }, "check": { "type": "boolean" } } } } } },
            "responses": accepted_job(&["400", "401", "403", "503"]) } },
        "/v1/audit/jobs/{job}": { "get": {
            "summary": "An audit job: running (done of total records), done (result) or failed (error) (auditor)",
            "parameters": [{ "name": "job", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": with_ok("{job, kind, state, done, total, started_at, finished_at, result | error}", "application/json", &["400", "401", "403", "404"]) } },
    })
}

/// 202 with the job's number and where to follow it (also in `Location`).
fn accepted_job(errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    if let Some(object) = responses.as_object_mut() {
        object.insert(
            "202".into(),
            json!({ "description": "{job, status (its address), now}", "content": { "application/json": {} } }),
        );
    }
    responses
}

/// A JSON object of string fields.
fn object_schema(fields: &[(&str, bool)]) -> Value {
    let properties: serde_json::Map<String, Value> =
        fields.iter().map(|(name, _)| ((*name).to_string(), json!({ "type": "string" }))).collect();
    let required: Vec<&str> = fields.iter().filter(|(_, required)| *required).map(|(name, _)| *name).collect();
    json!({ "type": "object", "properties": properties, "required": required })
}

fn body_of(fields: &[(&str, bool)]) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": object_schema(fields) } } })
}

#[cfg(test)]
mod tests {
    use super::document;

    /// The document and the router's table agree both ways.
    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let document = document();
        let routes: Vec<(&str, &str)> =
            crate::serve::routes().into_iter().map(|(method, path, _)| (method, path)).collect();
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
}

//! The served OpenAPI document against the service's live answers: every
//! answer of the main routes, and the error body, validates against the
//! schema the document gives for its route and status, with no property
//! the schema does not name (checked at every level).

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::server::{cli, Server};

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policies");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/facts.jsonl");
const OFFICE: &str = "office-token-0123456789";
const CHANNEL: &str = "channel-token-0123456789";
const AUDITOR: &str = "auditor-token-0123456789";
/// The demo's proxy-payment account holder.
const HOLDER: &str = "520502197811204159";
/// A demo person with a received 2025.
const PERSON: &str = "520502198503121233";

/// Bijie 2025, the demo facts and one proxy application left in flight;
/// the server on it.
fn demo_server(data: &Path) -> Server {
    cli(data, &["init"]);
    cli(data, &["policy", "load", &format!("{POLICIES}/bijie-2025.toml")]);
    cli(data, &["import", DEMO]);
    let apply = ["family", "apply", "--holder", HOLDER, "--member", "520502198001156225"];
    let rest = ["--year", "2025", "--amount", "400", "--id", "ST-9", "--at", "2024-10-20 10:00:00"];
    cli(data, &[&apply[..], &rest[..]].concat());
    // A signing key: certificates carry their proofs, whose schema is held too.
    cli(data, &["keys", "init"]);
    let tokens = format!(
        "[[token]]\nname = \"office-1\"\ntoken = \"{OFFICE}\"\nrole = \"office\"\n\n\
         [[token]]\nname = \"wechat\"\ntoken = \"{CHANNEL}\"\nrole = \"channel\"\nchannels = [\"wechat\"]\n\n\
         [[token]]\ntoken = \"{AUDITOR}\"\nrole = \"auditor\"\n"
    );
    common::server::spawn(data, &tokens, &[])
}

/// (status, body as JSON, or as a string when it is not JSON).
fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut request = ureq::request(method, &format!("http://{}{path}", server.addr));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(other) => panic!("{method} {path}: {other}"),
    };
    let status = response.status();
    let text = response.into_string().expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The document with every object schema that names its properties closed
/// to others: a field an answer has and its schema lacks fails validation.
fn closed(mut schema: Value) -> Value {
    if let Value::Object(object) = &mut schema {
        if object.contains_key("properties") && !object.contains_key("additionalProperties") {
            object.insert("additionalProperties".into(), Value::Bool(false));
        }
        for inner in object.values_mut() {
            *inner = closed(inner.take());
        }
    } else if let Value::Array(items) = &mut schema {
        for inner in items.iter_mut() {
            *inner = closed(inner.take());
        }
    }
    schema
}

/// The schema the document gives for `method template`'s `status` answer in
/// JSON: the route's own, or the shared error answer's.
fn answer_schema(document: &Value, method: &str, template: &str, status: u16) -> Value {
    let response = &document["paths"][template][method]["responses"][status.to_string()];
    let response = match response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
        Some(name) => &document["components"]["responses"][name],
        None => response,
    };
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {template}: no JSON schema for {status}: {response}");
    schema.clone()
}

/// Validates `answer` against the schema, which may refer to the document's
/// components; panics naming every error.
fn validate(document: &Value, what: &str, schema: &Value, answer: &Value) {
    let mut root = closed(schema.clone());
    let object = root.as_object_mut().expect("a schema object");
    object.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    object.insert("components".into(), closed(document["components"].clone()));
    let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{what}: the schema: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(answer).map(|error| format!("{} at {}", error, error.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: the answer does not fit its schema:\n{}\n{answer}", errors.join("\n"));
    // The top-level fields, said plainly: a schema with properties names them all.
    let schema = match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &document["components"]["schemas"][name],
        None => schema,
    };
    if let (Some(properties), Some(fields)) = (schema["properties"].as_object(), answer.as_object()) {
        for field in fields.keys() {
            assert!(properties.contains_key(field), "{what}: `{field}` is not in the schema");
        }
    }
}

/// Calls the route and validates its answer; the answer.
#[allow(clippy::too_many_arguments)]
fn check(
    server: &Server,
    document: &Value,
    (method, template, path): (&str, &str, &str),
    token: Option<&str>,
    body: Option<&Value>,
    expected: u16,
) -> Value {
    let (status, answer) = call(server, &method.to_uppercase(), path, token, body);
    assert_eq!(status, expected, "{method} {path}: {answer}");
    let schema = answer_schema(document, method, template, status);
    validate(document, &format!("{method} {path} ({status})"), &schema, &answer);
    answer
}

/// An audit job followed to its end.
fn finished(server: &Server, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = call(server, "GET", job, Some(AUDITOR), None);
        assert_eq!(status, 200, "{answer}");
        if answer["state"] != "running" || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn live_answers_fit_the_schemas_the_document_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = demo_server(dir.path());
    let (status, document) = call(&server, "GET", "/v1/openapi.json", None, None);
    assert_eq!(status, 200, "{document}");
    let document = &document;
    let ids: Vec<String> = std::fs::read_to_string(DEMO)
        .expect("demo facts")
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|fact| fact["person"].as_str().map(str::to_string))
        .collect();
    check(&server, document, ("get", "/v1/health", "/v1/health"), None, None, 200);
    let coverage = "/v1/coverage/{id_number}";
    let mut n_years = 0;
    for id in &ids {
        for query in ["", "?on=2025-03-01"] {
            let path = format!("/v1/coverage/{id}{query}");
            let answer = check(&server, document, ("get", coverage, &path), Some(OFFICE), None, 200);
            n_years += answer["years"].as_array().map_or(0, Vec::len);
        }
        let path = format!("/v1/persons/{id}/history");
        check(&server, document, ("get", "/v1/persons/{id_number}/history", &path), Some(OFFICE), None, 200);
        let path = format!("/v1/family/persons/{id}");
        check(&server, document, ("get", "/v1/family/persons/{id_number}", &path), Some(OFFICE), None, 200);
    }
    assert!(n_years >= 2 * ids.len(), "every demo person has a year: {n_years}");
    let path = format!("/v1/family/persons/{HOLDER}");
    let family = check(&server, document, ("get", "/v1/family/persons/{id_number}", &path), Some(OFFICE), None, 200);
    assert!(family["as_holder"][0]["periods"][0].is_object() && family["account"][0].is_object(), "{family}");
    let unpaid = "/v1/unpaid?region=520500&year=2025";
    let listed = check(&server, document, ("get", "/v1/unpaid", unpaid), Some(OFFICE), None, 200);
    assert!(listed["entries"][0].is_object(), "{listed}");
    let stuck = "/v1/family/stuck?older_than_hours=1";
    let stuck = check(&server, document, ("get", "/v1/family/stuck", stuck), Some(AUDITOR), None, 200);
    assert!(stuck["stuck"][0].is_object(), "{stuck}");
    let path = format!("/v1/certificates/{PERSON}/2025?format=json");
    check(&server, document, ("get", "/v1/certificates/{id_number}/{year}", &path), Some(AUDITOR), None, 200);
    let inclusion = ("get", "/v1/proof/inclusion", "/v1/proof/inclusion?position=3");
    let proof = check(&server, document, inclusion, Some(AUDITOR), None, 200);
    assert!(proof["path"][0].is_string(), "{proof}");
    let consistency = ("get", "/v1/proof/consistency", "/v1/proof/consistency?old=2");
    check(&server, document, consistency, Some(AUDITOR), None, 200);
    check(
        &server,
        document,
        ("get", "/v1/proof/inclusion", "/v1/proof/inclusion?position=999999"),
        Some(AUDITOR),
        None,
        400,
    );

    let registration = json!({"type": "person_registered", "v": 1, "person": "520502199102021228", "name": "孙丽",
                              "region": "520500", "birth_date": "1991-02-02", "registered_on": "2024-09-25"});
    check(&server, document, ("post", "/v1/events", "/v1/events"), Some(OFFICE), Some(&registration), 200);
    let binding = json!({"holder": HOLDER, "account_province": "520000", "member": "520502199102021228",
                         "relation": "子女", "bound_on": "2024-10-01"});
    let bindings = "/v1/family/bindings";
    check(&server, document, ("post", bindings, bindings), Some(OFFICE), Some(&binding), 200);
    let application = json!({"holder": HOLDER, "member": "520502199102021228", "coverage_year": 2025,
                             "amount": "400.00", "at": "2024-10-02 10:00:00"});
    let applications = "/v1/family/applications";
    let applied =
        check(&server, document, ("post", applications, applications), Some(CHANNEL), Some(&application), 200);
    assert!(applied["application_id"].is_string(), "{applied}");

    let accepted = check(&server, document, ("post", "/v1/audit/verify", "/v1/audit/verify"), Some(AUDITOR), None, 202);
    let job = accepted["status"].as_str().expect("the job's address");
    let done = finished(&server, job);
    assert_eq!(done["state"], "done", "{done}");
    check(&server, document, ("get", "/v1/audit/jobs/{job}", job), Some(AUDITOR), None, 200);

    let unknown = "/v1/coverage/520502198503201233";
    check(&server, document, ("get", coverage, unknown), Some(OFFICE), None, 404);
    let bad = "/v1/unpaid?region=52&year=2025";
    let refused = check(&server, document, ("get", "/v1/unpaid", bad), Some(OFFICE), None, 400);
    assert_eq!(refused["field"], "region", "{refused}");
}

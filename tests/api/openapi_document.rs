//! `/openapi.json` tells the truth: it validates as the OpenAPI version it
//! declares, lists every answer of every operation with problem+json errors,
//! and its request schemas carry the bounds the server enforces.

use std::{path::PathBuf, process::Command};

use serde_json::{Value, json};

use crate::support::{app::TestApp, assert::assert_problem};

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "GET /openapi.json");
    r.json().await.expect("the document is JSON")
}

/// The validator `.ci/venv.sh` installs, or `OPENAPI_SPEC_VALIDATOR`.
fn validator() -> PathBuf {
    std::env::var_os("OPENAPI_SPEC_VALIDATOR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/ci-venv/bin/openapi-spec-validator")
        },
        PathBuf::from,
    )
}

#[actix_web::test]
async fn openapi_json_validates_as_the_openapi_version_it_declares() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0", "the declared version");
    let validator = validator();
    if !validator.exists() {
        // CI installs it (`.ci/run`); only a local run may go without.
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: run .ci/venv.sh",
            validator.display()
        );
        eprintln!(
            "skipped: {} is missing (run .ci/venv.sh)",
            validator.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write the document");
    let out = Command::new(&validator)
        .arg(&file)
        .output()
        .expect("run the validator");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document: {said}"
    );
    assert!(said.contains("OK"), "validator output: {said}");
}

/// The operations of the document, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let methods = ["get", "put", "post", "patch", "delete"];
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            methods.iter().filter_map(|m| {
                item.get(*m)
                    .map(|op| (m.to_string(), path.clone(), op.clone()))
            })
        })
        .collect()
}

/// A response, its `$ref` resolved.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/responses/")
                .expect("a response ref");
            &doc["components"]["responses"][name]
        }
        None => response,
    }
}

#[actix_web::test]
async fn every_protected_operation_documents_its_errors_as_problem_json() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let expected: [(&str, &str, &[u16]); 8] = [
        ("get", "/users", &[200, 400, 401, 403, 503]),
        ("post", "/users", &[201, 400, 401, 403, 409, 413, 503]),
        ("get", "/users/me", &[200, 400, 401, 403, 503]),
        ("patch", "/users/me", &[200, 400, 401, 403, 413, 503]),
        ("get", "/users/{id}", &[200, 400, 401, 403, 404, 503]),
        ("put", "/users/{id}", &[200, 400, 401, 403, 404, 413, 503]),
        ("patch", "/users/{id}", &[200, 400, 401, 403, 404, 413, 503]),
        ("delete", "/users/{id}", &[204, 400, 401, 403, 404, 503]),
    ];
    for (method, path, statuses) in expected {
        let responses = &doc["paths"][path][method]["responses"];
        let mut documented: Vec<u16> = responses
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has responses"))
            .keys()
            .map(|k| k.parse().expect("a status code"))
            .collect();
        documented.sort();
        assert_eq!(documented, statuses, "{method} {path}: statuses");
        for status in statuses.iter().filter(|s| **s >= 400) {
            let response = resolve(&doc, &responses[status.to_string()]);
            let context = format!("{method} {path} {status}");
            assert_eq!(
                response["content"],
                json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}),
                "{context}: problem+json"
            );
            if [400, 401, 403].contains(status) {
                assert!(
                    response["headers"]["WWW-Authenticate"].is_object(),
                    "{context}: challenge header"
                );
            }
            if *status == 503 {
                assert!(
                    response["headers"]["Retry-After"].is_object(),
                    "{context}: Retry-After"
                );
            }
        }
    }
    let mut ids: Vec<&str> = Vec::new();
    let all = operations(&doc);
    for (method, path, operation) in &all {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(
            !ids.contains(&id),
            "{method} {path}: operationId {id} is unique"
        );
        ids.push(id);
        for (status, response) in operation["responses"].as_object().expect("responses") {
            let description = resolve(&doc, response)["description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                !description.is_empty(),
                "{method} {path} {status}: a description"
            );
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    let mut members: Vec<&str> = problem["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    members.sort();
    assert_eq!(
        members,
        ["detail", "field", "request_id", "status", "title", "type"],
        "Problem members"
    );
    assert_eq!(
        problem["required"],
        json!(["type", "title", "status", "detail"]),
        "Problem required members"
    );
}

/// The schema of parameter `name` of `GET path`.
fn parameter<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("GET {path} documents {name}"))
}

#[actix_web::test]
async fn request_schemas_carry_the_bounds_the_server_enforces() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        parameter(&doc, "/users/{id}", "id"),
        &json!({"type": "integer", "format": "int64", "minimum": 1}),
        "id"
    );
    let limit = parameter(&doc, "/users", "limit");
    assert_eq!(
        (&limit["type"], &limit["minimum"], &limit["default"]),
        (&json!("integer"), &json!(1), &json!(50)),
        "limit"
    );
    assert!(
        limit.get("maximum").is_none(),
        "limit: larger values are capped, not refused"
    );
    assert!(
        limit["description"]
            .as_str()
            .unwrap_or_default()
            .contains("capped to 100"),
        "limit: {limit}"
    );
    let offset = parameter(&doc, "/users", "offset");
    assert_eq!(
        (&offset["minimum"], &offset["maximum"]),
        (&json!(0), &json!(4294967295_u32)),
        "offset"
    );
    assert_eq!(
        parameter(&doc, "/users", "ordering")["enum"],
        json!(["id", "-id", "created_at", "-created_at", "email", "-email"]),
        "ordering"
    );
    assert_eq!(
        parameter(&doc, "/users", "search")["maxLength"],
        255,
        "search"
    );
    for (name, min, max) in [
        ("Subject", Some(1), 255),
        ("Name", Some(1), 200),
        ("Email", None, 254),
    ] {
        let schema = &schemas[name];
        assert_eq!(schema["type"], "string", "{name}");
        assert_eq!(schema["minLength"], json!(min), "{name}: minLength");
        assert_eq!(schema["maxLength"], max, "{name}: maxLength");
    }
    assert_eq!(schemas["Email"]["format"], "email");
    for body in ["CreateUser", "MeChanges", "ReplaceUser", "UpdateUser"] {
        assert_eq!(
            schemas[body]["additionalProperties"], false,
            "{body}: no unknown fields"
        );
    }
    assert_eq!(
        schemas["CreateUser"]["properties"]["sub"]["$ref"],
        "#/components/schemas/Subject"
    );
}

#[actix_web::test]
async fn list_parameters_are_refused_exactly_where_the_document_says() {
    let app = TestApp::spawn().await;
    let admin = app.token("auth0|bounds-admin", &["read:users"]);
    for (query, field) in [
        ("ordering=", "ordering"),
        ("ordering=%20id", "ordering"),
        ("ordering=name", "ordering"),
        ("limit=0", "limit"),
        ("offset=4294967296", "offset"),
        (
            &format!("search={}", "x".repeat(250) + &"%20".repeat(6)),
            "search",
        ),
    ] {
        let r = app.get(&format!("/users?{query}"), &admin).await;
        let problem = assert_problem(r, 400, query).await;
        assert_eq!(problem["field"], field, "{query}");
    }
    for query in [
        "ordering=-created_at",
        "limit=1000",
        "offset=4294967295",
        "search=%20%20",
    ] {
        let r = app.get(&format!("/users?{query}"), &admin).await;
        assert_eq!(r.status(), 200, "{query}");
    }
}

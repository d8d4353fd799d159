//! The OpenAPI document in the repository (`query/openapi.json`), served at
//! `/api/v1/openapi.json`, describes what the running server answers: every
//! response below must validate against the schema the document gives for
//! its path, method and status.

mod common;

use std::net::UdpSocket;

use common::Server;
use serde_json::{Value, json};

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The schema for `method path status`, with the document's components
/// beside it so that its references resolve.
fn schema_for(doc: &Value, template: &str, method: &str, status: u16) -> Value {
    let mut resp = doc["paths"][template][method]["responses"][status.to_string()].clone();
    assert!(
        !resp.is_null(),
        "the document has no {method} {template} {status}"
    );
    if let Some(r) = resp["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        resp = doc["components"]["responses"][name].clone();
    }
    let schema = resp["content"]["application/json"]["schema"].clone();
    assert!(
        !schema.is_null(),
        "no JSON schema for {method} {template} {status}"
    );
    json!({"components": doc["components"], "allOf": [schema]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_validate_against_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);

    // The served document is the one in the repository.
    let (code, doc) = s.get_json("/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    let file: Value = serde_json::from_str(include_str!("../query/openapi.json")).unwrap();
    assert_eq!(doc, file);

    // Data of every kind: OTLP spans with events and links, and phosphor
    // annotations (client and server sides, a legacy string ID).
    let t0 = now_us() - 60_000_000;
    let ns = |us: u64| (us * 1_000).to_string();
    let otlp = json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "api"}},
            {"key": "host.name", "value": {"stringValue": "h1"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "spanId": "0000000000000001", "name": "root",
             "kind": 2, "startTimeUnixNano": ns(t0), "endTimeUnixNano": ns(t0 + 5_000),
             "attributes": [{"key": "n", "value": {"intValue": "3"}}, {"key": "ok", "value": {"boolValue": true}}],
             "events": [{"timeUnixNano": ns(t0 + 10), "name": "e", "attributes": []}],
             "links": [{"traceId": "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b", "spanId": "0000000000000009"}]},
            {"traceId": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "spanId": "0000000000000002",
             "parentSpanId": "00000000000000ff", "name": "orphan", "kind": 3,
             "startTimeUnixNano": ns(t0 + 100), "endTimeUnixNano": ns(t0 + 200),
             "status": {"code": 2, "message": "bad"}}]}]}]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/json")
        .body(otlp.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    use phosphor_proto::phosphor::{Annotation, AnnotationType, encode_batch};
    let a = |kind: AnnotationType, ts: u64| Annotation {
        trace_id: "legacy-openapi".into(),
        span_id: "s1".into(),
        r#type: kind as i32,
        timestamp: ts as i64,
        hostname: "box".into(),
        origin: "api".into(),
        destination: "cards".into(),
        ..Default::default()
    };
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let batch = encode_batch(&[
        a(AnnotationType::ClientSend, t0),
        a(AnnotationType::ServerRecv, t0 + 10),
        a(AnnotationType::ServerSend, t0 + 90),
    ]);
    udp.send_to(&batch, s.udp).unwrap();
    s.wait_trace("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", 3).await;
    s.wait_trace("legacy-openapi", 2).await;

    let client = reqwest::Client::new();
    let calls: Vec<(&str, &str, String, u16)> = vec![
        (
            "get",
            "/api/v1/traces/{id}",
            "/api/v1/traces/5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a".into(),
            200,
        ),
        (
            "get",
            "/api/v1/traces/{id}",
            "/api/v1/traces/legacy-openapi".into(),
            200,
        ),
        (
            "get",
            "/api/v1/traces/{id}",
            "/api/v1/traces/legacy-openapi?raw=true".into(),
            200,
        ),
        (
            "get",
            "/api/v1/traces/{id}",
            "/api/v1/traces/7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c".into(),
            404,
        ),
        (
            "get",
            "/api/v1/traces/{id}",
            "/api/v1/traces/bad%20id".into(),
            400,
        ),
        (
            "post",
            "/api/v1/traces/{id}/pin",
            "/api/v1/traces/legacy-openapi/pin".into(),
            200,
        ),
        (
            "delete",
            "/api/v1/traces/{id}/pin",
            "/api/v1/traces/legacy-openapi/pin".into(),
            200,
        ),
        (
            "delete",
            "/api/v1/traces/{id}/pin",
            "/api/v1/traces/legacy-openapi/pin".into(),
            404,
        ),
        (
            "get",
            "/api/v1/traces/{id}",
            "/api/v1/traces/legacy-openapi?format=otlp".into(),
            200,
        ),
        (
            "get",
            "/api/v1/traces",
            "/api/v1/traces?ids=legacy-openapi,7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c".into(),
            200,
        ),
        ("get", "/api/v1/traces", "/api/v1/traces".into(), 400),
        ("post", "/api/v1/upload", "/api/v1/upload".into(), 400),
        ("get", "/api/v1/search", "/api/v1/search".into(), 200),
        (
            "get",
            "/api/v1/search",
            "/api/v1/search?service=api&attr=n%3D3&status=error&lookback=1h".into(),
            200,
        ),
        (
            "get",
            "/api/v1/search",
            "/api/v1/search?kind=server&minDuration=1ms&limit=5".into(),
            200,
        ),
        (
            "get",
            "/api/v1/search",
            "/api/v1/search?limit=zero".into(),
            400,
        ),
        ("get", "/api/v1/services", "/api/v1/services".into(), 200),
        (
            "get",
            "/api/v1/services/{service}/operations",
            "/api/v1/services/api/operations".into(),
            200,
        ),
        (
            "get",
            "/api/v1/services/{service}/operations",
            "/api/v1/services/none/operations".into(),
            404,
        ),
        (
            "get",
            "/api/v1/attributes",
            "/api/v1/attributes".into(),
            200,
        ),
        (
            "get",
            "/api/v1/attributes/{key}/values",
            "/api/v1/attributes/n/values".into(),
            200,
        ),
        (
            "get",
            "/api/v1/attributes/{key}/values",
            "/api/v1/attributes/n/values?limit=0".into(),
            400,
        ),
        (
            "get",
            "/api/v1/dependencies",
            "/api/v1/dependencies".into(),
            200,
        ),
        (
            "get",
            "/api/v1/dependencies",
            "/api/v1/dependencies?start=later".into(),
            400,
        ),
        (
            "post",
            "/api/v1/admin/compact",
            "/api/v1/admin/compact".into(),
            200,
        ),
    ];
    let mut failures = Vec::new();
    for (method, template, path, status) in &calls {
        let url = s.url(path);
        let req = match *method {
            "get" => client.get(&url),
            "post" => client.post(&url),
            "delete" => client.delete(&url),
            _ => unreachable!(),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        let schema = schema_for(&doc, template, method, *status);
        let validator = jsonschema::validator_for(&schema).unwrap();
        for e in validator.iter_errors(&body) {
            failures.push(format!("{method} {path}: {e} at {}", e.instance_path()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // And the check has teeth: a body the document does not allow fails.
    let schema = schema_for(&doc, "/api/v1/search", "get", 200);
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(!validator.is_valid(&json!({"data": [{"traceId": "nope"}], "limit": 1})));
    s.stop();
}

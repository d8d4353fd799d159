//! Zipkin ingest on a real server: v2 JSON (bytes a real reporter sent),
//! v2 proto3, v1 JSON, gzip, and bad input.

mod common;

use std::io::Write;

use common::{Server, parent_name, span};
use prost::Message;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../shared/fixtures/real-clients/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn post(s: &Server, path: &str, ct: &str, gzip: bool, body: Vec<u8>) -> (u16, String) {
    let body = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    } else {
        body
    };
    let mut req = reqwest::Client::new()
        .post(format!("http://{}{path}", s.zipkin))
        .header("content-type", ct)
        .body(body);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_v2_json_proto3_and_v1_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);

    // Bytes the Python Zipkin exporter sent: 64-bit trace ID, three spans.
    let (code, _) = post(
        &s,
        "/api/v2/spans",
        "application/json",
        false,
        fixture("9411-0004-Python-urllib.json"),
    )
    .await;
    assert_eq!(code, 202);
    let t = s.wait_trace("0f0fb7a5190c5460", 3).await;
    assert_eq!(t["traceId"], "00000000000000000f0fb7a5190c5460");
    let child = span(&t, "child-2");
    assert_eq!(parent_name(&t, child), Some("parent"));
    assert_eq!(child["events"][0]["name"], "cache-miss");
    assert_eq!(child["protocols"][0], "zipkin");
    assert_eq!(span(&t, "parent")["attributes"]["http.method"], "GET");

    // Proto3, gzip: a client span and the server side sharing its ID.
    use phosphor_proto::zipkin as pb;
    let ep = |name: &str, ip: [u8; 4]| pb::Endpoint {
        service_name: name.into(),
        ipv4: ip.to_vec(),
        ..Default::default()
    };
    let list = pb::ListOfSpans {
        spans: vec![
            pb::Span {
                trace_id: vec![7; 16],
                id: vec![1; 8],
                kind: pb::span::Kind::Client as i32,
                name: "get /cards".into(),
                timestamp: 1_800_000_000_000_000,
                duration: 1_000,
                local_endpoint: Some(ep("web", [10, 0, 0, 1])),
                ..Default::default()
            },
            pb::Span {
                trace_id: vec![7; 16],
                id: vec![1; 8],
                kind: pb::span::Kind::Server as i32,
                name: "get /cards".into(),
                timestamp: 1_800_000_000_000_100,
                duration: 800,
                local_endpoint: Some(ep("cards", [10, 0, 0, 2])),
                shared: true,
                tags: [("error".to_string(), "card not found".to_string())].into(),
                ..Default::default()
            },
        ],
    };
    let (code, body) = post(
        &s,
        "/api/v2/spans",
        "application/x-protobuf",
        true,
        list.encode_to_vec(),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let t = s.wait_trace(&"07".repeat(16), 2).await;
    let shape: Vec<(&str, &str, u64)> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["service"].as_str().unwrap(),
                x["kind"].as_str().unwrap(),
                x["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![("web", "client", 0), ("cards", "server", 1)],
        "shared server hangs under its client"
    );
    assert_eq!(t["spans"][1]["status"]["message"], "card not found");
    assert_eq!(t["spans"][1]["host"], "10.0.0.2");

    // v1 JSON: one span with both sides becomes two.
    let v1 = r#"[{"traceId":"0000000000000abc","id":"0000000000000001","name":"charge",
      "annotations":[
        {"timestamp":1800000000000000,"value":"cs","endpoint":{"serviceName":"api","ipv4":"10.0.0.1"}},
        {"timestamp":1800000000000100,"value":"sr","endpoint":{"serviceName":"payments","ipv4":"10.0.0.3"}},
        {"timestamp":1800000000000900,"value":"ss","endpoint":{"serviceName":"payments","ipv4":"10.0.0.3"}},
        {"timestamp":1800000000001000,"value":"cr","endpoint":{"serviceName":"api","ipv4":"10.0.0.1"}}],
      "binaryAnnotations":[{"key":"card.type","value":"visa","endpoint":{"serviceName":"payments"}}]}]"#;
    let (code, body) = post(
        &s,
        "/api/v1/spans",
        "application/json",
        false,
        v1.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let t = s.wait_trace("0000000000000abc", 2).await;
    assert_eq!(t["spans"][0]["service"], "api");
    assert_eq!(t["spans"][0]["duration"], 1_000);
    assert_eq!(t["spans"][1]["service"], "payments");
    assert_eq!(t["spans"][1]["duration"], 800);
    assert_eq!(t["spans"][1]["attributes"]["card.type"], "visa");

    // Bad input: a 4xx that says what is wrong, counted.
    for (path, ct, body, code, msg) in [
        (
            "/api/v2/spans",
            "application/json",
            &b"{\"not\":\"a list\"}"[..],
            400,
            "invalid Zipkin v2 JSON",
        ),
        (
            "/api/v2/spans",
            "application/x-protobuf",
            &[0xff; 9][..],
            400,
            "invalid Zipkin proto3",
        ),
        (
            "/api/v1/spans",
            "application/json",
            &b"[{\"traceId\":1}]"[..],
            400,
            "invalid Zipkin v1 JSON",
        ),
        (
            "/api/v2/spans",
            "application/json",
            &b"[{\"traceId\":\"zz\",\"id\":\"0000000000000001\",\"timestamp\":1}]"[..],
            400,
            "no valid span",
        ),
        (
            "/api/v2/spans",
            "text/xml",
            &b"<spans/>"[..],
            415,
            "unsupported content type",
        ),
    ] {
        let (got, text) = post(&s, path, ct, false, body.to_vec()).await;
        assert_eq!(got, code, "{path} {ct}: {text}");
        assert!(text.contains(msg), "{text}");
    }
    assert_eq!(
        s.metric("phosphor_collector_malformed_requests_total{protocol=\"zipkin\"}")
            .await,
        5.0
    );
    let (_, deps) = s
        .get_json("/api/v1/dependencies?start=0&end=1900000000000000")
        .await;
    assert!(
        deps["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["caller"] == "web" && d["callee"] == "cards"),
        "{deps}"
    );
    s.stop();
}

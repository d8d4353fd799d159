//! The UI in a real headless browser (Debian's Chromium, driven by
//! playwright-core from npm, both installed by `scripts/test.sh`): the
//! incident path of `tests/browser/incident.mjs` against a server playing
//! the demo system (with contrast and focus checks in light and dark), and
//! a trace over the row budget (`tests/browser/large-trace.mjs`).
//! Screenshots of each page are written to the directory these tests print.

mod common;

use std::time::{Duration, Instant};

use common::Server;

fn browser_tooling() -> Option<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let ready = std::path::Path::new(dir)
        .join("node_modules/playwright-core")
        .exists()
        && std::path::Path::new(
            &std::env::var("PHOSPHOR_CHROMIUM").unwrap_or("/usr/bin/chromium".into()),
        )
        .exists();
    match (ready, std::env::var_os("PHOSPHOR_SKIP_BROWSER")) {
        (true, _) => Some(dir.to_string()),
        (false, Some(_)) => None,
        (false, None) => panic!(
            "the browser tests need Chromium and tests/browser/node_modules: run the suite with \
             scripts/test.sh, which installs both (or set PHOSPHOR_SKIP_BROWSER=1 to skip on purpose)"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_path_in_headless_chromium() {
    let Some(dir) = browser_tooling() else {
        eprintln!("skipped on purpose: PHOSPHOR_SKIP_BROWSER is set");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(&data.path().join("data"), &["--demo"]);

    // Wait for the demo to have produced a failed payment and a few traces.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, errors) = s.get_json("/api/v1/search?status=error&lookback=1h").await;
        let (_, all) = s.get_json("/api/v1/search?lookback=1h").await;
        if !errors["data"].as_array().unwrap().is_empty()
            && all["data"].as_array().unwrap().len() >= 3
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo sent no failing trace in 90s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A trace whose names and attributes hold markup and script.
    let evil = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "<b>evil</b>"}}]},
        "scopeSpans": [{"spans": [{"traceId": "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1", "spanId": "0000000000000001",
            "name": "<script>window.__xss=1</script>", "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000",
            "attributes": [{"key": "note", "value": {"stringValue": "<img src=x onerror=window.__xss=1>"}}]}]}]}]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/json")
        .body(evil.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A large trace (its rows are plain, their details fetched on click).
    let big: Vec<serde_json::Value> = (0..1_200u64)
        .map(|i| {
            let mut s = serde_json::json!({"traceId": "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
                "spanId": format!("{:016x}", i + 1), "name": format!("step-{i}"), "kind": 1,
                "startTimeUnixNano": (1_700_000_000_000_000_000u64 + i * 1_000).to_string(),
                "endTimeUnixNano": (1_700_000_000_000_000_000u64 + i * 1_000 + 900).to_string(),
                "attributes": [{"key": "i", "value": {"intValue": i.to_string()}}]});
            if i > 0 {
                s["parentSpanId"] = serde_json::json!(format!("{:016x}", i.div_ceil(2)));
            }
            s
        })
        .collect();
    let big = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "batch"}}]}, "scopeSpans": [{"spans": big}]}]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/json")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    walk(
        &dir,
        "incident.mjs",
        &[
            &s.url(""),
            "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1",
            "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
        ],
        28,
        &[
            "search",
            "trace",
            "span-detail",
            "compare",
            "live",
            "services",
            "dependencies",
        ],
    )
    .await;
    s.stop();
}

/// Runs a browser walk (`node SCRIPT URL SHOTS ARGS…`), prints its checks,
/// and asserts that it passed, made at least `min_checks` checks and wrote
/// each named screenshot.
async fn walk(dir: &str, script: &str, args: &[&str], min_checks: usize, screenshots: &[&str]) {
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("screenshots: {}", shots.display());
    let (url, rest) = args.split_first().expect("the server's URL first");
    let out = tokio::process::Command::new("node")
        .current_dir(dir)
        .arg(script)
        .arg(url)
        .arg(&shots)
        .args(rest)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser walk {script} failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let checks = summary["checks"].as_array().unwrap();
    for c in checks {
        eprintln!("checked: {}", c.as_str().unwrap_or_default());
    }
    assert!(checks.len() >= min_checks, "{summary}");
    for name in screenshots {
        let f = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&f)
                .map(|m| m.len() > 1_000)
                .unwrap_or(false),
            "{} missing",
            f.display()
        );
    }
}

/// The shape `large-trace.mjs` expects: a root ("checkout"), `shards`
/// shards under it, `items` items under each, and the items named in
/// `failed` failed; as OTLP/protobuf requests of at most 20,000 spans.
fn sharded_trace(trace_id: u8, shards: u64, items: u64, failed: &[(u64, u64)]) -> Vec<Vec<u8>> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 30_000_000_000;
    let string = |key: &str, value: String| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    };
    let span = |id: u64, parent: Option<u64>, name: String, start: u64, end: u64| Span {
        trace_id: vec![trace_id; 16],
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name,
        kind: 1,
        start_time_unix_nano: base + start,
        end_time_unix_nano: base + end,
        ..Default::default()
    };
    let request = |service: &str, spans: Vec<Span>| {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string("service.name", service.into())],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let mut out = vec![request(
        "shop",
        vec![span(1, None, "checkout".into(), 0, 100_000_000)],
    )];
    let mut workers = Vec::new();
    let mut store = Vec::new();
    for k in 0..shards {
        // Shards start together and end one after another: the last one
        // alone is on the critical path.
        workers.push(span(
            2 + k,
            Some(1),
            format!("shard-{k}"),
            k * 100,
            9_000_000 + 81_000_000 / shards * k,
        ));
        for j in 0..items {
            let start = 100_000 + j * 10;
            let mut s = span(
                2 + shards + k * items + j,
                Some(2 + k),
                format!("item-{k}-{j}"),
                start,
                start + 1_000_000 + j * 5_000,
            );
            s.attributes = vec![string("order.id", format!("order-{k}-{j}"))];
            if failed.contains(&(k, j)) {
                s.status = Some(Status {
                    code: 2,
                    message: "out of stock".into(),
                });
            }
            store.push(s);
            if store.len() == 20_000 {
                out.push(request("store", std::mem::take(&mut store)));
            }
        }
    }
    out.push(request("worker", workers));
    out.push(request("store", store));
    out
}

/// Sends a trace and waits until all of its spans are stored.
async fn store_trace(s: &Server, trace_id: &str, requests: Vec<Vec<u8>>, spans: u64) {
    let client = reqwest::Client::new();
    for body in requests {
        let resp = client
            .post(format!("http://{}/v1/traces", s.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Ingest is asynchronous.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, hits) = s.get_json("/api/v1/search?service=shop&lookback=1h").await;
        if hits["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["traceId"] == trace_id && h["spanCount"] == spans)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} was not stored in 120s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_over_the_row_budget_in_headless_chromium() {
    let Some(dir) = browser_tooling() else {
        eprintln!("skipped on purpose: PHOSPHOR_SKIP_BROWSER is set");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(&data.path().join("data"), &[]);
    // 10,101 spans (just over the 10,000 that render whole), and 100,101.
    let trace_id = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let huge_id = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";
    let started = Instant::now();
    store_trace(
        &s,
        trace_id,
        sharded_trace(0x5a, 100, 100, &[(3, 50), (6, 7)]),
        10_101,
    )
    .await;
    store_trace(
        &s,
        huge_id,
        sharded_trace(0x6b, 100, 1_000, &[(42, 420)]),
        100_101,
    )
    .await;
    eprintln!("traces stored in {:?}", started.elapsed());

    let span_hex = format!("{:016x}", 2 + 100 + 5 * 100 + 77);
    walk(
        &dir,
        "large-trace.mjs",
        &[&s.url(""), trace_id, &span_hex, huge_id],
        30,
        &[
            "large-budget",
            "large-expanded",
            "large-find",
            "large-light",
            "large-dark",
        ],
    )
    .await;
    s.stop();
}

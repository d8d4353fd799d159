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

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("screenshots: {}", shots.display());
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .arg("incident.mjs")
        .arg(s.url(""))
        .arg(&shots)
        .arg("e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1")
        .arg("b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2")
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser walk failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let checks = summary["checks"].as_array().unwrap();
    for c in checks {
        eprintln!("checked: {}", c.as_str().unwrap_or_default());
    }
    assert!(checks.len() >= 28, "{summary}");
    for name in [
        "search",
        "trace",
        "span-detail",
        "compare",
        "live",
        "services",
        "dependencies",
    ] {
        let f = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&f)
                .map(|m| m.len() > 1_000)
                .unwrap_or(false),
            "{} missing",
            f.display()
        );
    }
    s.stop();
}

/// The shape `large-trace.mjs` expects: a root, ten shards, a thousand
/// items under each (10,011 spans), two items failed.
fn sharded_trace(trace_id: &str) -> serde_json::Value {
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 30_000_000_000;
    let span = |id: u64, parent: Option<u64>, name: String, start: u64, end: u64| {
        let mut s = serde_json::json!({"traceId": trace_id, "spanId": format!("{id:016x}"),
            "name": name, "kind": 1,
            "startTimeUnixNano": (base + start).to_string(),
            "endTimeUnixNano": (base + end).to_string()});
        if let Some(p) = parent {
            s["parentSpanId"] = serde_json::json!(format!("{p:016x}"));
        }
        s
    };
    let (mut shop, mut workers, mut store) = (Vec::new(), Vec::new(), Vec::new());
    shop.push(span(1, None, "checkout".into(), 0, 100_000_000));
    for k in 0..10u64 {
        // Shards start together and end one after another: the last one
        // alone is on the critical path.
        workers.push(span(
            2 + k,
            Some(1),
            format!("shard-{k}"),
            k * 1_000,
            (k + 1) * 9_000_000,
        ));
        for j in 0..1_000u64 {
            let start = 100_000 + j * 10;
            let mut s = span(
                12 + k * 1_000 + j,
                Some(2 + k),
                format!("item-{k}-{j}"),
                start,
                start + 1_000_000 + j * 5_000,
            );
            s["attributes"] = serde_json::json!([{"key": "order.id",
                "value": {"stringValue": format!("order-{k}-{j}")}}]);
            if (k, j) == (3, 500) || (k, j) == (6, 7) {
                s["status"] = serde_json::json!({"code": 2, "message": "out of stock"});
            }
            store.push(s);
        }
    }
    let resource = |service: &str, spans: Vec<serde_json::Value>| {
        serde_json::json!({"resource": {"attributes": [{"key": "service.name",
            "value": {"stringValue": service}}]}, "scopeSpans": [{"spans": spans}]})
    };
    serde_json::json!({"resourceSpans": [resource("shop", shop), resource("worker", workers),
        resource("store", store)]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_over_the_row_budget_in_headless_chromium() {
    let Some(dir) = browser_tooling() else {
        eprintln!("skipped on purpose: PHOSPHOR_SKIP_BROWSER is set");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(&data.path().join("data"), &[]);
    let trace_id = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/json")
        .body(sharded_trace(trace_id).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Ingest is asynchronous: wait until the whole trace is stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, hits) = s.get_json("/api/v1/search?service=shop&lookback=1h").await;
        if hits["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["traceId"] == trace_id && h["spanCount"] == 10_011)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the trace was not stored in 60s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("screenshots: {}", shots.display());
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .arg("large-trace.mjs")
        .arg(s.url(""))
        .arg(&shots)
        .arg(trace_id)
        .arg(format!("{:016x}", 12 + 5 * 1_000 + 777))
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser walk failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let checks = summary["checks"].as_array().unwrap();
    for c in checks {
        eprintln!("checked: {}", c.as_str().unwrap_or_default());
    }
    assert!(checks.len() >= 30, "{summary}");
    for name in [
        "large-budget",
        "large-expanded",
        "large-find",
        "large-light",
        "large-dark",
    ] {
        let f = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&f)
                .map(|m| m.len() > 1_000)
                .unwrap_or(false),
            "{} missing",
            f.display()
        );
    }
    s.stop();
}

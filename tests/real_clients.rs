//! Real third-party clients against a real server: the OpenTelemetry Python
//! SDK with its OTLP gRPC and HTTP exporters (installed from PyPI into a
//! virtual environment by `scripts/test.sh`, which sets PHOSPHOR_TEST_PYTHON).

mod common;

use common::{Server, parent_name, span};

fn python() -> String {
    match std::env::var("PHOSPHOR_TEST_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var_os("PHOSPHOR_SKIP_REAL_CLIENTS").is_some() => String::new(),
        Err(_) => panic!(
            "PHOSPHOR_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs \
             the OpenTelemetry SDK into a virtual environment (or set \
             PHOSPHOR_SKIP_REAL_CLIENTS=1 to skip this test on purpose)"
        ),
    }
}

/// Runs a script of `tests/python` with the real-client virtual
/// environment's Python; returns the JSON it prints, or `None` when the
/// real-client tests are skipped on purpose.
async fn run_script(script: &str, args: &[String]) -> Option<serde_json::Value> {
    let python = python();
    if python.is_empty() {
        eprintln!("skipped on purpose: PHOSPHOR_SKIP_REAL_CLIENTS is set");
        return None;
    }
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {path}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed: {stderr}");
    // The SDK logs export failures without failing: there must be none.
    assert!(!stderr.to_lowercase().contains("failed"), "{stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_python_sdk_over_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let args = [
        format!("http://{}", s.grpc),
        format!("http://{}", s.otlp_http),
    ];
    let Some(sent) = run_script("otel_sdk.py", &args).await else {
        return;
    };

    for (i, expected_protocol) in ["otlp_grpc", "otlp_http", "otlp_grpc"].iter().enumerate() {
        let info = &sent[i];
        let trace_id = info["traceId"].as_str().unwrap();
        let t = s.wait_trace(trace_id, 4).await;
        assert_eq!(t["traceId"], trace_id);
        assert_eq!(t["spanCount"], 4);
        assert_eq!(t["errorCount"], 1);

        let root = span(&t, "GET /payments");
        assert_eq!(root["index"], 0, "the root comes first");
        assert_eq!(root["spanId"], info["rootSpanId"]);
        assert_eq!(root["service"], info["service"]);
        assert_eq!(root["kind"], "server");
        assert_eq!(root["protocols"][0], *expected_protocol);
        assert_eq!(root["attributes"]["http.method"], "GET");
        assert_eq!(root["attributes"]["http.status_code"], 500);
        assert_eq!(root["attributes"]["retry"], true);
        assert_eq!(root["attributes"]["ratio"], 0.25);
        assert_eq!(root["resource"]["deployment.environment"], "test");
        assert_eq!(root["events"][0]["name"], "auth checked");
        assert_eq!(root["events"][0]["attributes"]["user.id"], "u-42");
        let ev_time = root["events"][0]["time"].as_u64().unwrap();
        let start = root["startTime"].as_u64().unwrap();
        assert!(ev_time >= start && ev_time <= start + root["duration"].as_u64().unwrap());

        let load = span(&t, "load-account");
        assert_eq!(parent_name(&t, load), Some("GET /payments"));
        assert_eq!(load["kind"], "client");
        assert_eq!(load["attributes"]["db.system"], "rocksdb");
        let decode = span(&t, "decode");
        assert_eq!(parent_name(&t, decode), Some("load-account"));
        assert_eq!(decode["depth"], 2);
        assert_eq!(decode["attributes"]["bytes"], 512);

        let charge = span(&t, "charge-card");
        assert_eq!(parent_name(&t, charge), Some("GET /payments"));
        assert_eq!(charge["error"], true);
        assert_eq!(charge["status"]["message"], "card declined");
        let exc = &charge["events"][0];
        assert_eq!(exc["name"], "exception");
        assert_eq!(exc["attributes"]["exception.type"], "ValueError");
        assert_eq!(exc["attributes"]["exception.message"], "card declined");

        // Children in start order: load-account before charge-card.
        let root_children = root["children"].as_array().unwrap();
        assert_eq!(root_children.len(), 2);
        assert_eq!(
            t["spans"][root_children[0].as_u64().unwrap() as usize]["name"],
            "load-account"
        );
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_python_zipkin_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let args = [format!("http://{}/api/v2/spans", s.zipkin)];
    let Some(sent) = run_script("zipkin_sdk.py", &args).await else {
        return;
    };
    let t = s.wait_trace(sent["traceId"].as_str().unwrap(), 2).await;
    let root = span(&t, "checkout");
    assert_eq!(root["service"], "py-zipkin");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["protocols"][0], "zipkin");
    assert_eq!(root["attributes"]["http.method"], "POST");
    let child = span(&t, "reserve-stock");
    assert_eq!(parent_name(&t, child), Some("checkout"));
    assert_eq!(child["kind"], "client");
    assert_eq!(child["error"], true);
    assert_eq!(child["status"]["message"], "out of stock");
    assert_eq!(child["events"][0]["name"], "retry");

    // The same trace read back through the Zipkin and Jaeger APIs, in
    // their shapes.
    let id = sent["traceId"].as_str().unwrap();
    let (_, z) = s.get_json(&format!("/zipkin/api/v2/trace/{id}")).await;
    let z_child = z
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "reserve-stock")
        .unwrap();
    assert_eq!(z_child["kind"], "CLIENT");
    assert_eq!(z_child["localEndpoint"]["serviceName"], "py-zipkin");
    assert_eq!(z_child["tags"]["error"], "out of stock");
    assert_eq!(z_child["parentId"], root["spanId"]);
    let (_, j) = s.get_json(&format!("/jaeger/api/traces/{id}")).await;
    let spans = j["data"][0]["spans"].as_array().unwrap();
    let j_child = spans
        .iter()
        .find(|x| x["operationName"] == "reserve-stock")
        .unwrap();
    assert_eq!(j_child["references"][0]["refType"], "CHILD_OF");
    assert_eq!(j_child["references"][0]["spanID"], root["spanId"]);
    let pid = j_child["processID"].as_str().unwrap();
    assert_eq!(j["data"][0]["processes"][pid]["serviceName"], "py-zipkin");
    s.stop();
}

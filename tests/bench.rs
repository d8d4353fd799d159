//! A smoke run of the load tool: the real `phosphor bench` binary against a
//! real server, a couple of seconds per protocol, at rates low enough that
//! nothing may be lost. The reports must add up, and what the tool sent
//! must be readable through the API. Nothing here asserts a speed.

mod common;

use std::collections::HashSet;

use common::Server;
use serde_json::Value;

/// Runs `phosphor bench <args> --json` against `s`; returns the JSON
/// report and the text on stderr (the text report and progress lines).
async fn bench(s: &Server, args: &[&str]) -> (Value, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_phosphor"))
        .arg("bench")
        .args(args)
        .args(["--http-addr", &s.http.to_string()])
        .args(["--otlp-grpc-addr", &s.grpc.to_string()])
        .args(["--otlp-http-addr", &s.otlp_http.to_string()])
        .args(["--zipkin-addr", &s.zipkin.to_string()])
        .args(["--udp-addr", &s.udp.to_string()])
        .arg("--json")
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run phosphor bench");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("phosphor bench {}:\n{stderr}", args.join(" "));
    assert!(
        out.status.success(),
        "phosphor bench {args:?} failed: {stderr}"
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, stderr)
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every trace ID the search API knows of in the last hour.
async fn all_traces(s: &Server) -> HashSet<String> {
    let (status, body) = s.get_json("/api/v1/search?limit=1000&lookback=1h").await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceId"].as_str().unwrap().to_string())
        .collect()
}

/// Fetches traces through `/api/v1/traces?ids=` and returns their span
/// counts.
async fn span_counts(s: &Server, ids: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        let (status, body) = s
            .get_json(&format!("/api/v1/traces?ids={}", chunk.join(",")))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["missing"], serde_json::json!([]), "{body}");
        for t in body["data"].as_array().unwrap() {
            out.push(t["spans"].as_array().unwrap().len());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_every_protocol_adds_up_and_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    // Default trees: 3 wide, 3 deep = 13 calls = 25 spans, or 50 phosphor
    // annotations without events (and errors, which add an exception
    // event). Whole traces only (2,000 spans = 80 traces; 1,000 annotations
    // = 20 traces), so that each can be checked.
    let runs: [(&str, &[&str], u64); 6] = [
        (
            "otlp-grpc",
            &["--rate", "1000", "--spans", "2000", "--batch", "100"],
            80,
        ),
        (
            "otlp-http",
            &["--rate", "1000", "--spans", "2000", "--batch", "100"],
            80,
        ),
        (
            "otlp-json",
            &["--rate", "1000", "--spans", "2000", "--batch", "100"],
            80,
        ),
        (
            "zipkin-json",
            &["--rate", "1000", "--spans", "2000", "--batch", "100"],
            80,
        ),
        (
            "udp",
            &[
                "--rate",
                "500",
                "--spans",
                "1000",
                "--events",
                "0",
                "--error-rate",
                "0",
            ],
            20,
        ),
        (
            "udp-batch",
            &[
                "--rate",
                "500",
                "--spans",
                "1000",
                "--events",
                "0",
                "--error-rate",
                "0",
                "--batch",
                "40",
            ],
            20,
        ),
    ];
    let mut seen = all_traces(&s).await;
    assert!(seen.is_empty());
    for (protocol, extra, traces) in runs {
        let mut args = vec!["ingest", "--protocol", protocol];
        args.extend_from_slice(extra);
        let (r, stderr) = bench(&s, &args).await;
        assert_eq!(r["protocol"], protocol);
        assert!(
            stderr.contains("[ingest") && stderr.contains("sent"),
            "a progress line: {stderr}"
        );
        let sent = n(&r["sent"]);
        let udp = protocol.starts_with("udp");
        assert_eq!(sent, if udp { 1_000 } else { 2_000 }, "{r}");
        assert_eq!(n(&r["errors"]), 0, "{r}");
        let server = &r["server"];
        assert_eq!(server["drained"], true, "{r}");
        assert_eq!(n(&server["received"]), sent, "{r}");
        assert_eq!(n(&server["accepted"]), sent, "{r}");
        assert_eq!(n(&server["written"]), sent, "{r}");
        assert_eq!(n(&server["dropped"]), 0, "{r}");
        assert_eq!(n(&server["malformed"]), 0, "{r}");
        assert!(n(&server["peakResidentBytes"]) >= n(&server["residentBytes"]));
        assert!(n(&server["residentBytes"]) > 0, "{r}");
        if udp {
            assert_eq!(r["acked"], Value::Null);
            assert_eq!(n(&server["datagrams"]), n(&r["requests"]), "{r}");
            if protocol == "udp" {
                assert_eq!(n(&r["requests"]), sent, "one annotation a datagram");
            } else {
                assert!(n(&r["requests"]) * 10 < sent, "batched: {r}");
                assert!(n(&r["requests"]) * 40 >= sent, "at most 40 a datagram: {r}");
            }
        } else {
            assert_eq!(n(&r["acked"]), sent, "{r}");
            assert_eq!(n(&r["refused"]), 0, "{r}");
            assert_eq!(n(&r["requests"]), 20, "{r}");
            assert_eq!(n(&r["ackLatency"]["count"]), 20, "{r}");
            let l = &r["ackLatency"];
            assert!(l["p50Ms"].as_f64().unwrap() <= l["maxMs"].as_f64().unwrap());
        }
        // The traces it sent are whole when read back.
        let now = all_traces(&s).await;
        let new: Vec<String> = now.difference(&seen).cloned().collect();
        assert_eq!(new.len() as u64, traces, "{protocol}: new traces");
        let counts = span_counts(&s, &new).await;
        if let Some(i) = counts.iter().position(|&c| c != 25) {
            let (_, t) = s
                .get_json(&format!("/api/v1/traces/{}?raw=true", new[i]))
                .await;
            panic!(
                "{protocol}: span counts {counts:?}; trace {}: {t:#}",
                new[i]
            );
        }
        seen = now;
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_size_reports_cover_every_measure() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let (r, stderr) = bench(
        &s,
        &[
            "query",
            "--fill",
            "500",
            "--iterations",
            "2",
            "--page-iterations",
            "1",
        ],
    )
    .await;
    assert!(stderr.contains("trace by ID"), "{stderr}");
    assert_eq!(n(&r["fill"]["acked"]), 500, "{r}");
    let by_id = r["traceById"].as_array().unwrap();
    let sizes: Vec<u64> = by_id.iter().map(|t| n(&t["spans"])).collect();
    assert_eq!(sizes, vec![100, 1_000, 10_000]);
    for t in by_id {
        assert_eq!(t["spansReturned"], t["spans"], "{t}");
        assert_eq!(n(&t["latency"]["count"]), 2, "{t}");
        // The server's own time, from its Server-Timing header: part of
        // each request's time, so no rank of it is above the same rank of
        // the whole.
        assert_eq!(n(&t["server"]["count"]), 2, "{t}");
        for rank in ["p50Ms", "p99Ms", "maxMs"] {
            let (server, whole) = (&t["server"][rank], &t["latency"][rank]);
            assert!(server.as_f64().unwrap() <= whole.as_f64().unwrap(), "{t}");
        }
        assert!(n(&t["bytes"]) > 0);
        // Readable through the API, whole.
        let id = t["traceId"].as_str().unwrap();
        let (status, trace) = s.get_json(&format!("/api/v1/traces/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            trace["spans"].as_array().unwrap().len() as u64,
            n(&t["spans"])
        );
    }
    let filters: Vec<&str> = r["search"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filter"].as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            "service",
            "service+operation",
            "attribute",
            "attribute (rare)",
            "duration",
            "error-only"
        ]
    );
    for f in r["search"].as_array().unwrap() {
        assert_eq!(n(&f["latency"]["count"]), 2, "{f}");
        assert!(f["query"].as_str().unwrap().contains("limit=20"), "{f}");
    }
    // The service and the rare attribute are in what the tool just sent.
    assert!(n(&r["search"][0]["hits"]) > 0, "{r}");
    assert!(n(&r["search"][3]["hits"]) > 0, "{r}");
    let pages = r["tracePage"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    for p in pages {
        assert_eq!(n(&p["latency"]["count"]), 1, "{p}");
        assert!(n(&p["bytes"]) > 1_000, "{p}");
    }

    // Everything written since start: the fill and the three traces.
    let (size, text) = bench(&s, &["size"]).await;
    assert!(text.contains("bytes per stored span"), "{text}");
    assert_eq!(n(&size["stored"]), 500 + 100 + 1_000 + 10_000, "{size}");
    assert_eq!(size["compacted"], true);
    let after = &size["sizes"];
    assert!(n(&after["sstBytes"]) > 0, "{size}");
    assert!(n(&after["diskBytes"]) >= n(&after["sstBytes"]), "{size}");
    let by_kind: u64 = size["byKind"].as_object().unwrap().values().map(n).sum();
    assert_eq!(by_kind, n(&after["sstBytes"]), "{size}");
    assert!(size["diskBytesPerSpan"].as_f64().unwrap() > 0.0, "{size}");
    assert!(n(&size["peakResidentBytes"]) >= n(&size["residentBytes"]));
    assert!(n(&size["residentBytes"]) > 0);
    // The compaction lost nothing.
    let id = by_id[0]["traceId"].as_str().unwrap();
    let (status, trace) = s.get_json(&format!("/api/v1/traces/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(trace["spans"].as_array().unwrap().len(), 100);
    s.stop();
}

#[test]
fn bad_arguments_and_an_absent_server_are_clear_errors() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_phosphor"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["ingest", "--rate", "fast"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("100k"), "{err}");

    let out = run(&["ingest", "--protocol", "carrier-pigeon"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("otlp-grpc") && err.contains("udp-batch"),
        "{err}"
    );

    // Nothing listens on port 1.
    let out = run(&[
        "ingest",
        "--otlp-grpc-addr",
        "127.0.0.1:1",
        "--http-addr",
        "127.0.0.1:1",
        "--duration",
        "1s",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the server"), "{err}");

    let help = run(&["ingest", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--protocol",
        "--rate",
        "--duration",
        "--batch",
        "--concurrency",
        "--attrs",
        "--events",
        "--error-rate",
        "--width",
        "--depth",
        "--services",
        "--seed",
        "--json",
        "--max-datagram",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for sub in ["ingest", "query", "size"] {
        assert!(help.contains(sub), "{sub} missing:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_udp_sink_counts_what_the_tool_sends() {
    // The reference receive loop: no server, only `phosphor bench sink` on
    // a free port, and the tool's batched UDP aimed at it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let sink = tokio::process::Command::new(env!("CARGO_BIN_EXE_phosphor"))
        .args([
            "bench",
            "sink",
            "--udp-addr",
            &addr,
            "--idle",
            "1s",
            "--limit",
            "60s",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the sink");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_phosphor"))
        .args([
            "bench",
            "ingest",
            "--protocol",
            "udp-batch",
            "--udp-addr",
            &addr,
        ])
        .args([
            "--rate", "1000", "--spans", "1000", "--batch", "40", "--json",
        ])
        // No server behind: its metrics are simply absent.
        .args(["--http-addr", "127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = sink.wait_with_output().await.unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let read: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(n(&sent["sent"]), 1_000, "{sent}");
    assert_eq!(n(&read["datagrams"]), n(&sent["requests"]), "{read} {sent}");
    assert!(n(&read["bytes"]) > n(&read["datagrams"]) * 100, "{read}");
}

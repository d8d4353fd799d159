//! Durability: every span whose OTLP export was acknowledged survives a
//! SIGKILL of the server, with `--sync-writes` off (the write-ahead log is
//! in the OS page cache) and on (it is on disk).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

const SPANS_PER_TRACE: usize = 5;

fn request(n: u64) -> ExportTraceServiceRequest {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&n.to_be_bytes());
    trace_id[15] = 1;
    let spans = (0..SPANS_PER_TRACE as u64)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                vec![]
            } else {
                1u64.to_be_bytes().to_vec()
            },
            name: format!("op-{i}"),
            start_time_unix_nano: 1_800_000_000_000_000_000 + i * 1_000,
            end_time_unix_nano: 1_800_000_000_000_000_000 + i * 1_000 + 500,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("durable".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn hex(n: u64) -> String {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[15] = 1;
    id.iter().map(|b| format!("{b:02x}")).collect()
}

async fn acknowledged_spans_survive_sigkill(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, extra);
    let acked = Arc::new(Mutex::new(Vec::new()));

    // Two exporters send as fast as acknowledgements come back.
    let mut senders = Vec::new();
    for worker in 0..2u64 {
        let acked = acked.clone();
        let url = format!("http://{}", s.grpc);
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(url).await.unwrap();
            for i in 0.. {
                let n = worker << 32 | i;
                match client.export(request(n)).await {
                    Ok(_) => acked.lock().unwrap().push(n),
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "exports too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed mid-stream, with exports in flight.
    s.kill9();
    for t in senders {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();

    let s = Server::start(&data, extra);
    let mut missing = Vec::new();
    for n in &acked {
        let (code, body) = s.get_json(&format!("/api/v1/traces/{}", hex(*n))).await;
        if code != 200 || body["spans"].as_array().map(Vec::len) != Some(SPANS_PER_TRACE) {
            missing.push(*n);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged traces lost after SIGKILL: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill_without_sync() {
    acknowledged_spans_survive_sigkill(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill_with_sync_writes() {
    acknowledged_spans_survive_sigkill(&["--sync-writes"]).await;
}

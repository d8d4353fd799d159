//! End to end: a real `phosphor serve` process, real sockets on 127.0.0.1,
//! a real RocksDB on disk.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, parent_name, span};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use serde_json::json;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Encodes an annotation exactly as the original Go client does, field by
/// field from the original `trace.proto` (1 trace_id, 2 span_id, 3 parent_id,
/// 4 type, 5 async, 6 timestamp, 7 duration, 8 hostname, 9 origin,
/// 10 destination, 11 payload, 12 key_value), independent of phosphor's own
/// generated types.
#[allow(clippy::too_many_arguments)]
fn legacy_datagram(
    trace: &str,
    span: &str,
    parent: &str,
    kind: u64,
    ts: i64,
    host: &str,
    origin: &str,
    dest: &str,
    kv: &[(&str, &str)],
) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn string(out: &mut Vec<u8>, field: u64, s: &[u8]) {
        if !s.is_empty() {
            varint(out, field << 3 | 2);
            varint(out, s.len() as u64);
            out.extend_from_slice(s);
        }
    }
    let mut out = Vec::new();
    string(&mut out, 1, trace.as_bytes());
    string(&mut out, 2, span.as_bytes());
    string(&mut out, 3, parent.as_bytes());
    varint(&mut out, 4 << 3);
    varint(&mut out, kind);
    varint(&mut out, 6 << 3);
    varint(&mut out, ts as u64);
    string(&mut out, 8, host.as_bytes());
    string(&mut out, 9, origin.as_bytes());
    string(&mut out, 10, dest.as_bytes());
    for (k, v) in kv {
        let mut inner = Vec::new();
        string(&mut inner, 1, k.as_bytes());
        string(&mut inner, 2, v.as_bytes());
        string(&mut out, 12, &inner);
    }
    out
}

const CS: u64 = 1;
const CR: u64 = 2;
const SR: u64 = 3;
const SS: u64 = 4;

/// A legacy trace: api calls card-api, which calls cards. One annotation
/// per datagram, string IDs, sent out of order.
fn send_legacy_trace(udp: &UdpSocket, to: std::net::SocketAddr, trace: &str, t0: i64) {
    let op = [("operation", "authorise")];
    let op2 = [("operation", "get-card")];
    let datagrams = vec![
        legacy_datagram(
            trace,
            "span-b",
            "span-a",
            SS,
            t0 + 700,
            "cards-1",
            "card-api",
            "cards",
            &[],
        ),
        legacy_datagram(trace, "span-a", "", CS, t0, "api-1", "api", "card-api", &op),
        legacy_datagram(
            trace,
            "span-b",
            "span-a",
            CS,
            t0 + 200,
            "card-api-1",
            "card-api",
            "cards",
            &op2,
        ),
        legacy_datagram(
            trace,
            "span-a",
            "",
            SR,
            t0 + 100,
            "card-api-1",
            "api",
            "card-api",
            &[("user", "u-1")],
        ),
        legacy_datagram(
            trace,
            "span-b",
            "span-a",
            SR,
            t0 + 300,
            "cards-1",
            "card-api",
            "cards",
            &[],
        ),
        legacy_datagram(
            trace,
            "span-b",
            "span-a",
            CR,
            t0 + 800,
            "card-api-1",
            "card-api",
            "cards",
            &[],
        ),
        legacy_datagram(
            trace,
            "span-a",
            "",
            SS,
            t0 + 900,
            "card-api-1",
            "api",
            "card-api",
            &[],
        ),
        legacy_datagram(
            trace,
            "span-a",
            "",
            CR,
            t0 + 1_000,
            "api-1",
            "api",
            "card-api",
            &[],
        ),
    ];
    for d in datagrams {
        udp.send_to(&d, to).unwrap();
    }
}

fn send_batched_trace(udp: &UdpSocket, to: std::net::SocketAddr, trace: &str, t0: i64) {
    use phosphor_proto::phosphor::{Annotation, AnnotationType, KeyValue, encode_batch};
    let a = |span: &str, parent: &str, kind: AnnotationType, ts: i64, origin: &str, dest: &str| {
        Annotation {
            trace_id: trace.into(),
            span_id: span.into(),
            parent_id: parent.into(),
            r#type: kind as i32,
            timestamp: ts,
            hostname: format!("{origin}-host"),
            origin: origin.into(),
            destination: dest.into(),
            key_value: vec![KeyValue {
                key: "operation".into(),
                value: format!("{dest}-op"),
            }],
            ..Default::default()
        }
    };
    let batch = vec![
        a(
            "00000000000000a1",
            "",
            AnnotationType::ClientSend,
            t0,
            "api",
            "balance",
        ),
        a(
            "00000000000000a1",
            "",
            AnnotationType::ServerRecv,
            t0 + 50,
            "api",
            "balance",
        ),
        a(
            "00000000000000a1",
            "",
            AnnotationType::ServerSend,
            t0 + 450,
            "api",
            "balance",
        ),
        a(
            "00000000000000a1",
            "",
            AnnotationType::ClientRecv,
            t0 + 500,
            "api",
            "balance",
        ),
        a(
            "00000000000000a2",
            "00000000000000a1",
            AnnotationType::ClientSend,
            t0 + 100,
            "balance",
            "ledger",
        ),
        a(
            "00000000000000a2",
            "00000000000000a1",
            AnnotationType::Timeout,
            t0 + 400,
            "balance",
            "ledger",
        ),
    ];
    udp.send_to(&encode_batch(&batch), to).unwrap();
}

fn attr(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn otlp_trace(trace_id: [u8; 16], service: &str, t0_ns: u64) -> ExportTraceServiceRequest {
    use any_value::Value as V;
    let root = Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![1, 1, 1, 1, 1, 1, 1, 1],
        name: "checkout".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: t0_ns,
        end_time_unix_nano: t0_ns + 5_000_000,
        attributes: vec![
            attr("http.method", V::StringValue("POST".into())),
            attr("http.status_code", V::IntValue(502)),
            attr("cache.hit", V::BoolValue(false)),
        ],
        events: vec![opentelemetry_proto::tonic::trace::v1::span::Event {
            time_unix_nano: t0_ns + 1_000_000,
            name: "retrying".into(),
            attributes: vec![attr("attempt", V::IntValue(2))],
            ..Default::default()
        }],
        status: Some(Status {
            code: 2,
            message: "upstream failed".into(),
        }),
        ..Default::default()
    };
    let child = Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![2, 2, 2, 2, 2, 2, 2, 2],
        parent_span_id: root.span_id.clone(),
        name: "charge".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: t0_ns + 500_000,
        end_time_unix_nano: t0_ns + 4_500_000,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attr("service.name", V::StringValue(service.into())),
                    attr("host.name", V::StringValue("box-9".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![root, child],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn otlp_json_trace(trace_hex: &str, t0_ns: u64) -> serde_json::Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "curl"}, "spans": [
            {"traceId": trace_hex, "spanId": "aaaaaaaaaaaaaaaa", "name": "json-root", "kind": 2,
             "startTimeUnixNano": t0_ns.to_string(), "endTimeUnixNano": (t0_ns + 3_000_000).to_string(),
             "attributes": [{"key": "region", "value": {"stringValue": "eu-west-1"}},
                            {"key": "items", "value": {"intValue": "3"}}]},
            {"traceId": trace_hex, "spanId": "bbbbbbbbbbbbbbbb", "parentSpanId": "aaaaaaaaaaaaaaaa",
             "name": "json-child", "kind": 3,
             "startTimeUnixNano": (t0_ns + 1_000_000).to_string(), "endTimeUnixNano": (t0_ns + 2_000_000).to_string(),
             "status": {"code": 2, "message": "boom"}}
        ]}]
    }]})
}

async fn check_legacy(s: &Server, t0: i64) {
    let t = s.wait_trace("legacy-e2e-trace", 4).await;
    assert_eq!(t["legacyTraceId"], "legacy-e2e-trace");
    assert_eq!(t["startTime"], t0);
    assert_eq!(t["duration"], 1_000);
    // Client side of span-a (api) → its server side (card-api) → client
    // side of span-b (card-api) → its server side (cards).
    let spans = t["spans"].as_array().unwrap();
    let shape: Vec<(&str, &str, &str, u64)> = spans
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["side"].as_str().unwrap(),
                s["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("api", "authorise", "client", 0),
            ("card-api", "authorise", "server", 1),
            ("card-api", "get-card", "client", 2),
            ("cards", "get-card", "server", 3),
        ]
    );
    assert_eq!(spans[1]["startTime"], t0 + 100);
    assert_eq!(spans[1]["duration"], 800);
    assert_eq!(spans[3]["startTime"], t0 + 300);
    assert_eq!(spans[3]["duration"], 400);
    assert_eq!(spans[1]["attributes"]["user"], "u-1");
    assert_eq!(spans[0]["attributes"]["host.name"], "api-1");
    assert_eq!(spans[0]["legacySpanId"], "span-a");
    assert!(spans.iter().all(|s| s["incomplete"] == false));
}

async fn check_batched(s: &Server, trace: &str, t0: i64) {
    let t = s.wait_trace(trace, 3).await;
    let ledger = span(&t, "ledger-op");
    assert_eq!(ledger["error"], true);
    assert_eq!(ledger["status"]["message"], "timeout");
    assert_eq!(ledger["startTime"], t0 + 100);
    assert_eq!(ledger["duration"], 300);
    assert_eq!(ledger["service"], "balance");
    assert_eq!(ledger["depth"], 2);
    assert_eq!(t["errorCount"], 1);
}

async fn check_otlp(s: &Server, trace_hex: &str, service: &str, t0_ns: u64) {
    let t = s.wait_trace(trace_hex, 2).await;
    let root = span(&t, "checkout");
    assert_eq!(root["service"], service);
    assert_eq!(root["kind"], "server");
    assert_eq!(root["startTime"], t0_ns / 1_000);
    assert_eq!(root["duration"], 5_000);
    assert_eq!(root["error"], true);
    assert_eq!(root["status"]["message"], "upstream failed");
    assert_eq!(root["attributes"]["http.status_code"], 502);
    assert_eq!(root["attributes"]["cache.hit"], false);
    assert_eq!(root["resource"]["host.name"], "box-9");
    assert_eq!(root["events"][0]["name"], "retrying");
    assert_eq!(root["events"][0]["time"], t0_ns / 1_000 + 1_000);
    assert_eq!(root["events"][0]["attributes"]["attempt"], 2);
    let child = span(&t, "charge");
    assert_eq!(parent_name(&t, child), Some("checkout"));
    assert_eq!(child["kind"], "client");
    assert_eq!(child["duration"], 4_000);
}

async fn check_json(s: &Server, trace_hex: &str, t0_ns: u64) {
    let t = s.wait_trace(trace_hex, 2).await;
    let root = span(&t, "json-root");
    assert_eq!(root["service"], "json-svc");
    assert_eq!(root["attributes"]["region"], "eu-west-1");
    assert_eq!(root["attributes"]["items"], 3);
    assert_eq!(root["startTime"], t0_ns / 1_000);
    let child = span(&t, "json-child");
    assert_eq!(parent_name(&t, child), Some("json-root"));
    assert_eq!(child["status"]["message"], "boom");
    assert_eq!(child["protocols"], json!(["otlp_http"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_round_trips_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();

    let t0 = now_us() - 10_000_000;
    send_legacy_trace(&udp, s.udp, "legacy-e2e-trace", t0);
    let batched = "4bf92f3577b34da6a3ce929d0e0e4736";
    send_batched_trace(&udp, s.udp, batched, t0);

    let grpc_trace = [0x11u8; 16];
    let grpc_hex = hex_of(&grpc_trace);
    let t0_ns = (t0 as u64) * 1_000;
    let mut client = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap();
    let resp = client
        .export(otlp_trace(grpc_trace, "grpc-svc", t0_ns))
        .await
        .unwrap();
    assert_eq!(resp.into_inner().partial_success, None);

    let json_hex = "22222222222222222222222222222222";
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/json")
        .body(otlp_json_trace(json_hex, t0_ns).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");

    // OTLP/HTTP protobuf, gzip: answered in protobuf.
    let gz_trace = [0x33u8; 16];
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&otlp_trace(gz_trace, "gzip-svc", t0_ns).encode_to_vec())
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(enc.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let decoded =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            &body[..],
        )
        .unwrap();
    assert_eq!(decoded.partial_success, None);

    check_legacy(&s, t0).await;
    check_batched(&s, batched, t0).await;
    check_otlp(&s, &grpc_hex, "grpc-svc", t0_ns).await;
    check_json(&s, json_hex, t0_ns).await;
    check_otlp(&s, &hex_of(&gz_trace), "gzip-svc", t0_ns).await;

    // Counted as received and written.
    assert!(
        s.metric("phosphor_collector_received_spans_total{protocol=\"udp\"}")
            .await
            >= 14.0
    );
    assert_eq!(
        s.metric("phosphor_collector_accepted_spans_total{protocol=\"otlp_grpc\"}")
            .await,
        2.0
    );

    let log = s.stop();
    assert!(log.iter().any(|l| l.contains("queue flushed")), "{log:?}");

    // Everything is still there after a restart, and the catalog too.
    let s = Server::start(&data, &[]);
    check_legacy(&s, t0).await;
    check_batched(&s, batched, t0).await;
    check_otlp(&s, &grpc_hex, "grpc-svc", t0_ns).await;
    check_json(&s, json_hex, t0_ns).await;
    let (_, services) = s.get_json("/api/v1/services").await;
    for svc in [
        "api", "card-api", "cards", "balance", "grpc-svc", "json-svc", "gzip-svc",
    ] {
        assert!(
            services["data"].as_array().unwrap().contains(&json!(svc)),
            "{svc}: {services}"
        );
    }
    let (_, ops) = s.get_json("/api/v1/services/card-api/operations").await;
    assert!(
        ops["data"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "get-card", "spanKind": "client"})),
        "{ops}"
    );
    assert!(
        ops["data"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "authorise", "spanKind": "server"})),
        "{ops}"
    );

    // The waterfall page renders the legacy trace.
    let html = s.get_text("/traces/legacy-e2e-trace").await;
    assert!(
        html.contains("get-card") && html.contains("cards"),
        "{html}"
    );
    s.stop();
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A gRPC call with a raw body, for sending bytes that are not a valid
/// request.
async fn raw_grpc(addr: std::net::SocketAddr, body: Vec<u8>) -> tonic::Status {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    #[derive(Default)]
    struct Raw;
    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            use bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            use bytes::Buf;
            let v = src.chunk().to_vec();
            src.advance(v.len());
            Ok(Some(v))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .expect_err("garbage must be refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_receiver_is_counted_and_disturbs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let http = reqwest::Client::new();
    let otlp_url = format!("http://{}/v1/traces", s.otlp_http);

    // UDP: random bytes, a batch of an unknown version, a truncated batch,
    // an empty datagram, and a well-formed annotation without a span ID.
    for d in [
        &[0xff, 0xfe, 0x01, 0x02, 0x03][..],
        &[0x00, 0x09, 0x01],
        &[0x00],
        &[],
        &[0x0a, 0x50, 0x01],
    ] {
        udp.send_to(d, s.udp).unwrap();
    }
    udp.send_to(&legacy_datagram("t", "", "", CS, 5, "", "", "", &[]), s.udp)
        .unwrap();

    // gRPC: bytes that are not an ExportTraceServiceRequest.
    let status = raw_grpc(s.grpc, vec![0xff; 16]).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("invalid OTLP protobuf body: "),
        "{status:?}"
    );

    // OTLP/HTTP: each answered with a 4xx that says what is wrong.
    // content type, content encoding, body, expected status, expected message
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "application/x-protobuf",
            None,
            vec![0xff; 10],
            400,
            "invalid OTLP protobuf",
        ),
        (
            "application/json",
            None,
            b"{\"resourceSpans\": 7}".to_vec(),
            400,
            "invalid OTLP JSON",
        ),
        (
            "application/json",
            Some("gzip"),
            b"not gzip".to_vec(),
            400,
            "invalid gzip",
        ),
        (
            "text/plain",
            None,
            b"hello".to_vec(),
            415,
            "unsupported content type",
        ),
        (
            "application/json",
            Some("br"),
            b"{}".to_vec(),
            415,
            "unsupported content encoding",
        ),
    ];
    for (ct, enc, body, code, msg) in cases {
        let mut req = http.post(&otlp_url).header("content-type", ct).body(body);
        if let Some(e) = enc {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), code, "{ct} {enc:?}");
        let text = resp.text().await.unwrap();
        if ct == "application/json" || ct == "text/plain" {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(v["message"].as_str().unwrap().contains(msg), "{text}");
        } else {
            assert!(text.contains(msg), "{text}");
        }
    }

    // A request with some invalid spans: partial success, the rest stored.
    let mut req = otlp_trace([0x44; 16], "partial-svc", 1_700_000_000_000_000_000);
    req.resource_spans[0].scope_spans[0].spans.push(Span {
        trace_id: vec![0; 16],
        span_id: vec![9; 8],
        name: "zero-trace-id".into(),
        ..Default::default()
    });
    let mut client = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap();
    let ps = client
        .export(req)
        .await
        .unwrap()
        .into_inner()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("trace_id"),
        "{}",
        ps.error_message
    );

    // The API refuses bad input with JSON errors.
    let (code, body) = s.get_json("/api/v1/traces/has%20space").await;
    assert_eq!((code, body["error"]["code"].as_u64()), (400, Some(400)));
    let (code, body) = s
        .get_json("/api/v1/traces/ffffffffffffffffffffffffffffffff")
        .await;
    assert_eq!(code, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found")
    );

    // After all that, a good trace on every receiver arrives whole.
    let t0 = now_us() - 5_000_000;
    send_legacy_trace(&udp, s.udp, "after-garbage", t0);
    send_batched_trace(&udp, s.udp, "5bf92f3577b34da6a3ce929d0e0e4736", t0);
    let t0_ns = t0 as u64 * 1_000;
    client
        .export(otlp_trace([0x55; 16], "grpc-svc", t0_ns))
        .await
        .unwrap();
    let resp = http
        .post(&otlp_url)
        .header("content-type", "application/json")
        .body(otlp_json_trace("66666666666666666666666666666666", t0_ns).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.wait_trace("after-garbage", 4).await;
    check_batched(&s, "5bf92f3577b34da6a3ce929d0e0e4736", t0).await;
    check_otlp(&s, &hex_of(&[0x55; 16]), "grpc-svc", t0_ns).await;
    check_json(&s, "66666666666666666666666666666666", t0_ns).await;
    s.wait_trace(&hex_of(&[0x44; 16]), 2).await;

    // Every bad input was counted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let udp_bad = s
        .metric("phosphor_collector_malformed_requests_total{protocol=\"udp\"}")
        .await;
    assert_eq!(
        udp_bad, 5.0,
        "random, bad version, truncated, empty, short field"
    );
    assert_eq!(
        s.metric("phosphor_collector_rejected_spans_total{protocol=\"udp\"}")
            .await,
        1.0
    );
    assert_eq!(
        s.metric("phosphor_collector_malformed_requests_total{protocol=\"otlp_http\"}")
            .await,
        5.0
    );
    assert_eq!(
        s.metric("phosphor_collector_malformed_requests_total{protocol=\"otlp_grpc\"}")
            .await,
        1.0
    );
    assert_eq!(
        s.metric("phosphor_collector_rejected_spans_total{protocol=\"otlp_grpc\"}")
            .await,
        1.0
    );
    assert!(s.metric("phosphor_collector_udp_datagrams_total").await >= 15.0);
    s.stop();
}

#[test]
fn help_explains_every_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phosphor"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--data-dir",
        "--http-addr",
        "--udp-addr",
        "--otlp-grpc-addr",
        "--otlp-http-addr",
        "--config",
        "--demo",
        "--queue-spans",
        "--max-request-bytes",
        "--sync-writes",
        "--retention",
        "--zipkin-addr",
        "--block-cache-bytes",
        "PHOSPHOR_DATA_DIR",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_plays_the_card_payment_system_over_udp_and_otlp() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--demo"]);
    assert_eq!(s.get_text("/healthz").await, "ok\n");
    assert_eq!(s.get_text("/readyz").await, "ready\n");

    // The demo alternates legacy UDP, batched UDP and OTLP/gRPC traces.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let recent = loop {
        let (_, body) = s.get_json("/api/v1/search?lookback=1h&limit=50").await;
        let list = body["data"].as_array().unwrap().clone();
        if list.len() >= 4 {
            // Let the traces listed finish arriving (UDP is asynchronous).
            tokio::time::sleep(Duration::from_millis(500)).await;
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo sent too little: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut protocols = std::collections::HashSet::new();
    let mut legacy_ids = 0;
    for summary in &recent {
        let id = summary["traceId"].as_str().unwrap();
        let (code, t) = s.get_json(&format!("/api/v1/traces/{id}")).await;
        assert_eq!(code, 200);
        assert_eq!(summary["spanCount"], t["spanCount"], "summary of {id}");
        assert_eq!(summary["errorCount"], t["errorCount"], "summary of {id}");
        if t["legacyTraceId"]
            .as_str()
            .is_some_and(|l| l.starts_with("payment-"))
        {
            legacy_ids += 1;
        }
        let services: Vec<&str> = t["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for svc in ["api", "card-api", "card-processing", "cards", "balance"] {
            assert!(services.contains(&svc), "{svc} missing from {services:?}");
        }
        for span in t["spans"].as_array().unwrap() {
            protocols.insert(span["protocols"][0].as_str().unwrap().to_string());
            assert!(span["duration"].as_u64().unwrap() < 10_000_000, "{span}");
        }
    }
    assert!(
        protocols.contains("udp") && protocols.contains("otlp_grpc"),
        "{protocols:?}"
    );
    assert!(legacy_ids > 0, "no legacy string trace IDs");

    // The UI lists them.
    let html = s.get_text("/").await;
    assert!(html.contains("card-processing"), "{html}");
    let html = s.get_text("/dependencies?lookback=1h").await;
    assert!(html.contains("card-api → card-processing"), "{html}");
    let html = s.get_text("/services").await;
    assert!(html.contains("<td>reserve</td><td>server</td>"), "{html}");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lookback_finds_what_just_arrived() {
    // Regression: the lookback counted back from the future slack of the
    // range's end, so `lookback=5m` found nothing that had just arrived.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_legacy_trace(&udp, s.udp, "just-now", now_us() - 1_000_000);
    s.wait_trace("just-now", 4).await;
    for lookback in ["1m", "5m", "15m"] {
        let (_, body) = s
            .get_json(&format!("/api/v1/search?lookback={lookback}"))
            .await;
        assert_eq!(
            body["data"].as_array().unwrap().len(),
            1,
            "lookback={lookback}: {body}"
        );
    }
    let (_, body) = s
        .get_json("/jaeger/api/traces?service=api&lookback=5m")
        .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    s.stop();
}

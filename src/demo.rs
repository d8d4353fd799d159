//! `phosphor demo`: a card-payment system that sends traces.
//!
//! Each trace is one card payment: api → card-api → card-processing, which
//! calls cards, balance and transactions, then transaction-enrichment
//! (→ merchant) and feed-generator (→ feed → apns, one way). Latencies are
//! drawn around realistic means; some payments fail (insufficient funds,
//! a merchant lookup that times out). Traces alternate between phosphor
//! annotations over UDP (legacy single-annotation datagrams and batches) and
//! OTLP spans over gRPC.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use phosphor_proto::phosphor::{self as wire, AnnotationType};

/// Where to send, and how much.
#[derive(Debug, Clone)]
pub struct Target {
    pub udp_addr: SocketAddr,
    pub otlp_grpc_addr: SocketAddr,
    /// Traces per second.
    pub rate: f64,
    /// Stop after this many traces; 0 runs until stopped.
    pub count: u64,
}

/// One RPC of the simulated system, in microseconds.
#[derive(Debug, Clone)]
struct Call {
    caller: &'static str,
    callee: &'static str,
    operation: &'static str,
    id: u64,
    parent: Option<u64>,
    client_send: i64,
    server_recv: i64,
    server_send: i64,
    client_recv: i64,
    error: Option<&'static str>,
    timeout: bool,
    one_way: bool,
    host: String,
}

struct Sim {
    rng: fastrand::Rng,
    calls: Vec<Call>,
}

impl Sim {
    /// Latency drawn around `mean_us`, with a long tail.
    fn latency(&mut self, mean_us: i64) -> i64 {
        let jitter = 0.5 + self.rng.f64();
        let tail = if self.rng.u8(..100) < 3 { 4.0 } else { 1.0 };
        (mean_us as f64 * jitter * tail) as i64
    }

    /// Simulates a call starting at `at`; `work` runs the callee's own
    /// downstream calls, starting at the server receive, and returns when
    /// the callee is done.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        caller: &'static str,
        callee: &'static str,
        operation: &'static str,
        parent: Option<u64>,
        at: i64,
        own_us: i64,
        work: impl FnOnce(&mut Sim, u64, i64) -> i64,
    ) -> (i64, u64) {
        let id = self.rng.u64(1..);
        let net = self.latency(300);
        let server_recv = at + net;
        let idx = self.calls.len();
        self.calls.push(Call {
            caller,
            callee,
            operation,
            id,
            parent,
            client_send: at,
            server_recv,
            server_send: 0,
            client_recv: 0,
            error: None,
            timeout: false,
            one_way: false,
            host: format!("{callee}-{}", self.rng.u8(1..4)),
        });
        let own = self.latency(own_us);
        let after_children = work(self, id, server_recv + own / 2);
        let server_send = after_children.max(server_recv) + own / 2;
        let client_recv = server_send + self.latency(300);
        let c = &mut self.calls[idx];
        c.server_send = server_send;
        c.client_recv = client_recv;
        (client_recv, id)
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Simulates one card payment, ending about now.
fn card_payment(rng: fastrand::Rng) -> Vec<Call> {
    let mut sim = Sim { rng, calls: vec![] };
    let start = now_us() - 400_000;
    sim.call(
        "mobile-app",
        "api",
        "POST /card/authorise",
        None,
        start,
        800,
        |sim, api, t| {
            let (t, _) = sim.call(
                "api",
                "card-api",
                "authorise",
                Some(api),
                t,
                1_500,
                |sim, card_api, t| {
                    let (t, _) = sim.call(
                        "card-api",
                        "card-processing",
                        "process",
                        Some(card_api),
                        t,
                        2_000,
                        |sim, cp, t| {
                            let (t, _) = sim.call(
                                "card-processing",
                                "cards",
                                "get-card",
                                Some(cp),
                                t,
                                1_200,
                                |_, _, t| t,
                            );
                            let (t, balance) = sim.call(
                                "card-processing",
                                "balance",
                                "reserve",
                                Some(cp),
                                t,
                                3_000,
                                |_, _, t| t,
                            );
                            if sim.rng.u8(..100) < 8 {
                                let i = sim
                                    .calls
                                    .iter()
                                    .position(|c| c.id == balance)
                                    .expect("call");
                                sim.calls[i].error = Some("insufficient funds");
                                return t;
                            }
                            let (t, _) = sim.call(
                                "card-processing",
                                "transactions",
                                "create",
                                Some(cp),
                                t,
                                4_000,
                                |_, _, t| t,
                            );
                            let (t, _) = sim.call(
                                "card-processing",
                                "transaction-enrichment",
                                "enrich",
                                Some(cp),
                                t,
                                1_000,
                                |sim, te, t| {
                                    let (end, merchant) = sim.call(
                                        "transaction-enrichment",
                                        "merchant",
                                        "lookup",
                                        Some(te),
                                        t,
                                        2_500,
                                        |_, _, t| t,
                                    );
                                    if sim.rng.u8(..100) < 4 {
                                        let i = sim
                                            .calls
                                            .iter()
                                            .position(|c| c.id == merchant)
                                            .expect("call");
                                        sim.calls[i].timeout = true;
                                        sim.calls[i].client_recv = t + 50_000;
                                        return t + 50_000;
                                    }
                                    end
                                },
                            );
                            let (t, _) = sim.call(
                                "card-processing",
                                "feed-generator",
                                "generate",
                                Some(cp),
                                t,
                                1_500,
                                |sim, fg, t| {
                                    let (t, _) = sim.call(
                                        "feed-generator",
                                        "feed",
                                        "insert",
                                        Some(fg),
                                        t,
                                        2_000,
                                        |sim, feed, t| {
                                            let (_, push) = sim.call(
                                                "feed",
                                                "apns",
                                                "push",
                                                Some(feed),
                                                t,
                                                8_000,
                                                |_, _, t| t,
                                            );
                                            let i = sim
                                                .calls
                                                .iter()
                                                .position(|c| c.id == push)
                                                .expect("call");
                                            sim.calls[i].one_way = true;
                                            t + 200
                                        },
                                    );
                                    t
                                },
                            );
                            t
                        },
                    );
                    t
                },
            );
            t
        },
    );
    // An error propagates to the callers' status.
    let failed: Vec<(u64, &'static str)> = sim
        .calls
        .iter()
        .filter(|c| c.error.is_some() || c.timeout)
        .map(|c| (c.id, c.error.unwrap_or("merchant lookup timed out")))
        .collect();
    for (id, why) in failed {
        let mut cur = sim.calls.iter().find(|c| c.id == id).and_then(|c| c.parent);
        while let Some(p) = cur {
            let c = sim
                .calls
                .iter_mut()
                .find(|c| c.id == p)
                .expect("parent call");
            if c.error.is_none() && why == "insufficient funds" {
                c.error = Some("payment declined");
            }
            cur = c.parent;
        }
    }
    sim.calls
}

fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

/// The phosphor annotations of a trace: four per call (two for one-way
/// calls, CLIENT_SEND then TIMEOUT for timeouts).
fn annotations(trace_id: &str, calls: &[Call]) -> Vec<wire::Annotation> {
    let mut out = Vec::new();
    for c in calls {
        let mut kv = vec![wire::KeyValue {
            key: "operation".into(),
            value: c.operation.into(),
        }];
        let base = wire::Annotation {
            trace_id: trace_id.into(),
            span_id: hex_id(c.id),
            parent_id: c.parent.map(hex_id).unwrap_or_default(),
            r#async: c.one_way,
            origin: c.caller.into(),
            destination: c.callee.into(),
            ..Default::default()
        };
        let client_host = format!("{}-1", c.caller);
        let mut push = |kind: AnnotationType, ts: i64, host: &str, kv: Vec<wire::KeyValue>| {
            out.push(wire::Annotation {
                r#type: kind as i32,
                timestamp: ts,
                hostname: host.into(),
                key_value: kv,
                ..base.clone()
            });
        };
        push(
            AnnotationType::ClientSend,
            c.client_send,
            &client_host,
            kv.clone(),
        );
        if c.timeout {
            push(AnnotationType::Timeout, c.client_recv, &client_host, vec![]);
        } else if !c.one_way {
            push(
                AnnotationType::ClientRecv,
                c.client_recv,
                &client_host,
                vec![],
            );
        }
        if let Some(e) = c.error {
            kv.push(wire::KeyValue {
                key: "error".into(),
                value: e.into(),
            });
        }
        push(AnnotationType::ServerRecv, c.server_recv, &c.host, kv);
        if !c.timeout {
            push(AnnotationType::ServerSend, c.server_send, &c.host, vec![]);
        }
    }
    out
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The OTLP form of a trace: a client and a server span per call, grouped
/// by service.
fn otlp_request(trace_id: [u8; 16], calls: &[Call]) -> ExportTraceServiceRequest {
    let mut by_service: Vec<(&str, Vec<Span>)> = Vec::new();
    let mut add =
        |service: &'static str, s: Span| match by_service.iter_mut().find(|(n, _)| *n == service) {
            Some((_, v)) => v.push(s),
            None => by_service.push((service, vec![s])),
        };
    // Server span IDs are derived from the call ID so that children, which
    // know only the call ID, can point at their parent's server span.
    let server_id = |id: u64| (id ^ 0x5a5a_5a5a_5a5a_5a5a).to_be_bytes().to_vec();
    for c in calls {
        let ns = |us: i64| (us.max(0) as u64) * 1_000;
        let status = |failed: bool, msg: &str| {
            Some(Status {
                code: if failed { 2 } else { 0 },
                message: if failed { msg.into() } else { String::new() },
            })
        };
        let failed = c.error.is_some() || c.timeout;
        let msg = c.error.unwrap_or("timeout");
        add(
            c.caller,
            Span {
                trace_id: trace_id.to_vec(),
                span_id: c.id.to_be_bytes().to_vec(),
                parent_span_id: c.parent.map(server_id).unwrap_or_default(),
                name: format!("{} {}", c.callee, c.operation),
                kind: if c.one_way {
                    span::SpanKind::Producer
                } else {
                    span::SpanKind::Client
                } as i32,
                start_time_unix_nano: ns(c.client_send),
                end_time_unix_nano: ns(if c.one_way {
                    c.client_send + 50
                } else {
                    c.client_recv
                }),
                attributes: vec![
                    attr("peer.service", c.callee),
                    attr("rpc.method", c.operation),
                ],
                status: status(failed, msg),
                ..Default::default()
            },
        );
        if !c.timeout {
            add(
                c.callee,
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: server_id(c.id),
                    parent_span_id: c.id.to_be_bytes().to_vec(),
                    name: c.operation.into(),
                    kind: if c.one_way {
                        span::SpanKind::Consumer
                    } else {
                        span::SpanKind::Server
                    } as i32,
                    start_time_unix_nano: ns(c.server_recv),
                    end_time_unix_nano: ns(c.server_send),
                    attributes: vec![attr("host.name", &c.host), attr("rpc.method", c.operation)],
                    status: status(c.error.is_some(), msg),
                    ..Default::default()
                },
            );
        }
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        attr("service.name", service),
                        attr("deployment.environment", "demo"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Sends demo traffic until `count` traces are sent (or forever).
pub async fn run(target: Target) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let mut grpc = None;
    let mut rng = fastrand::Rng::new();
    let period = Duration::from_secs_f64(1.0 / target.rate.max(0.01));
    let mut sent = 0u64;
    loop {
        let calls = card_payment(rng.fork());
        match sent % 3 {
            // Legacy framing: one annotation per datagram, string trace ID.
            0 => {
                let trace_id = format!("payment-{:012x}", rng.u64(..1 << 48));
                for a in annotations(&trace_id, &calls) {
                    socket.send_to(&wire::encode_legacy(&a), target.udp_addr)?;
                }
            }
            // Batch framing, 32 hex digit trace ID.
            1 => {
                let trace_id = format!("{:032x}", rng.u128(1..));
                for chunk in annotations(&trace_id, &calls).chunks(16) {
                    socket.send_to(&wire::encode_batch(chunk), target.udp_addr)?;
                }
            }
            _ => {
                if grpc.is_none() {
                    grpc = TraceServiceClient::connect(format!("http://{}", target.otlp_grpc_addr))
                        .await
                        .map_err(|e| tracing::warn!(error = %e, "demo: OTLP connect failed"))
                        .ok();
                }
                if let Some(client) = grpc.as_mut() {
                    let req = otlp_request(rng.u128(1..).to_be_bytes(), &calls);
                    if let Err(e) = client.export(req).await {
                        tracing::warn!(error = %e, "demo: OTLP export failed");
                        grpc = None;
                    }
                }
            }
        }
        sent += 1;
        if target.count > 0 && sent >= target.count {
            return Ok(());
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_touches_the_whole_system_with_consistent_timings() {
        let calls = card_payment(fastrand::Rng::with_seed(7));
        for svc in ["api", "card-api", "card-processing", "cards", "balance"] {
            assert!(calls.iter().any(|c| c.callee == svc), "{svc}");
        }
        for c in &calls {
            assert!(c.client_send < c.server_recv, "{c:?}");
            assert!(c.server_recv <= c.server_send, "{c:?}");
            if !c.timeout {
                assert!(c.server_send < c.client_recv, "{c:?}");
            }
        }
        // Across seeds, the full flow (down to apns) and both failure
        // kinds appear.
        let runs: Vec<Vec<Call>> = (0..300)
            .map(|s| card_payment(fastrand::Rng::with_seed(s)))
            .collect();
        assert!(
            runs.iter()
                .any(|r| r.iter().any(|c| c.callee == "apns" && c.one_way))
        );
        assert!(
            runs.iter()
                .any(|r| r.iter().any(|c| c.error == Some("insufficient funds")))
        );
        assert!(runs.iter().any(|r| r.iter().any(|c| c.timeout)));
    }
}

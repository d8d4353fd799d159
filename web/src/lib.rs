//! phosphor-web: the server-rendered UI.
//!
//! Pages are askama templates (`templates/`), rendered from the same
//! [`QueryService`] the JSON API uses; assets (`static/`) are embedded in the
//! binary. Askama escapes everything a template prints, so names and
//! attributes from spans can never become markup.

use std::time::{Duration, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use phosphor_query::{Error, QueryService, Trace, TraceSummary};
use serde::Deserialize;

const CSS: &str = include_str!("../static/phosphor.css");

/// UI routes: `/`, `/traces/{id}`, `/traces?id=`, `/static/*`.
pub fn router(query: QueryService) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/search", get(index))
        .route("/traces", get(lookup))
        .route("/traces/{id}", get(trace_page))
        .route("/static/phosphor.css", get(css))
        .with_state(query)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// A stable colour per service name.
pub fn service_color(service: &str) -> String {
    let h = service.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    format!("hsl({}, 65%, 50%)", h % 360)
}

/// Human duration from nanoseconds: `850µs`, `12.3ms`, `1.52s`.
pub fn human_duration(ns: u64) -> String {
    let us = ns as f64 / 1_000.0;
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

fn timestamp(ns: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns);
    humantime::format_rfc3339_millis(t).to_string()
}

fn with_colors(services: &[String]) -> Vec<(String, String)> {
    services
        .iter()
        .map(|s| (s.clone(), service_color(s)))
        .collect()
}

struct TraceRow {
    id: String,
    root_service: String,
    root_name: String,
    services: Vec<(String, String)>,
    spans: u64,
    errors: u64,
    duration: String,
    start: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    traces: Vec<TraceRow>,
    services: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn error_page(e: Error) -> Response {
    let (status, title) = match &e {
        Error::BadTraceId(_) => (StatusCode::BAD_REQUEST, "Bad trace ID"),
        Error::TraceNotFound(_) => (StatusCode::NOT_FOUND, "Trace not found"),
        Error::Store(_) | Error::Task(_) => {
            tracing::error!(error = %e, "page query failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
        }
    };
    let message = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "See the server log.".to_string(),
        _ => e.to_string(),
    };
    let mut resp = render(&ErrorPage {
        title: title.into(),
        message,
    });
    *resp.status_mut() = status;
    resp
}

fn row_of(s: &TraceSummary) -> TraceRow {
    let services: Vec<String> = s.services.iter().map(|(name, _)| name.clone()).collect();
    TraceRow {
        id: s.trace_id.to_hex(),
        root_service: s.root_service.clone(),
        root_name: s.root_name.clone(),
        services: with_colors(&services),
        spans: s.span_count,
        errors: s.error_count,
        duration: human_duration(s.duration_us * 1_000),
        start: timestamp(s.start_us * 1_000),
    }
}

async fn index(State(q): State<QueryService>) -> Response {
    let traces = match q.recent(q.retention(), 50).await {
        Ok(t) => t,
        Err(e) => return error_page(e),
    };
    let services = match q.services().await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    render(&IndexPage {
        traces: traces.iter().map(row_of).collect(),
        services: with_colors(&services),
    })
}

#[derive(Deserialize)]
struct LookupParams {
    id: Option<String>,
}

async fn lookup(Query(p): Query<LookupParams>) -> Response {
    match p.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => {
            let encoded: String = id
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            Redirect::to(&format!("/traces/{encoded}")).into_response()
        }
        _ => Redirect::to("/").into_response(),
    }
}

struct SpanRow {
    index: usize,
    depth: usize,
    indent: String,
    name: String,
    service: String,
    color: String,
    left: String,
    width: String,
    /// Places the duration label after the bar, or before it near the end.
    label_style: String,
    duration: String,
    offset: String,
    error: bool,
    incomplete: bool,
    placeholder: bool,
    kind: &'static str,
    side: Option<&'static str>,
    span_id: String,
    legacy_span_id: Option<String>,
    status_message: String,
    attributes: Vec<(String, String)>,
    events: Vec<(String, String)>,
    warnings: Vec<String>,
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    trace_id: String,
    legacy_id: Option<String>,
    root: String,
    start: String,
    duration: String,
    span_count: usize,
    error_count: usize,
    services: Vec<(String, String)>,
    warnings: Vec<String>,
    ticks: Vec<(String, String)>,
    rows: Vec<SpanRow>,
}

fn pct(x: f64) -> String {
    format!("{:.3}", x.clamp(0.0, 100.0))
}

fn trace_view(t: &Trace) -> TracePage {
    use phosphor_store::model::Side;
    let total = t.duration_ns().max(1) as f64;
    let rows = t
        .spans
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let left = (n.start_ns - t.start_ns) as f64 / total * 100.0;
            let width = (n.duration_ns() as f64 / total * 100.0).min(100.0 - left);
            let label_style = if left + width < 80.0 {
                format!("left: {}%", pct(left + width))
            } else {
                format!("right: {}%", pct(100.0 - left))
            };
            let mut attributes: Vec<(String, String)> = n
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.to_string()))
                .collect();
            attributes.extend(
                n.resource
                    .iter()
                    .map(|kv| (format!("resource: {}", kv.key), kv.value.to_string())),
            );
            SpanRow {
                index: i,
                depth: n.depth,
                indent: format!("{:.1}", n.depth as f64 * 1.2),
                name: n.name.clone(),
                service: n.service.clone(),
                color: service_color(&n.service),
                left: pct(left),
                width: pct(width),
                label_style,
                duration: human_duration(n.duration_ns()),
                offset: human_duration(n.start_ns - t.start_ns),
                error: n.is_error(),
                incomplete: n.incomplete,
                placeholder: n.placeholder,
                kind: n.kind.as_str(),
                side: n.side.map(|s| match s {
                    Side::Client => "client",
                    Side::Server => "server",
                    Side::Event => "annotation",
                }),
                span_id: n.span_id.to_hex(),
                legacy_span_id: n.legacy_span_id.clone(),
                status_message: n.status_message.clone(),
                attributes,
                events: n
                    .events
                    .iter()
                    .map(|e| {
                        let name = if e.attributes.is_empty() {
                            e.name.clone()
                        } else {
                            let attrs: Vec<String> = e
                                .attributes
                                .iter()
                                .map(|kv| format!("{}={}", kv.key, kv.value))
                                .collect();
                            format!("{} ({})", e.name, attrs.join(", "))
                        };
                        (human_duration(e.time_ns.saturating_sub(t.start_ns)), name)
                    })
                    .collect(),
                warnings: n.warnings.clone(),
            }
        })
        .collect();
    let root = t
        .spans
        .iter()
        .find(|n| !n.placeholder)
        .or(t.root())
        .map(|r| format!("{}: {}", r.service, r.name))
        .unwrap_or_default();
    let ticks = (0..=4)
        .map(|i| {
            let f = i as f64 / 4.0;
            (pct(f * 100.0), human_duration((total * f) as u64))
        })
        .collect();
    TracePage {
        trace_id: t.trace_id.to_hex(),
        legacy_id: t.legacy_id.clone(),
        root,
        start: timestamp(t.start_ns),
        duration: human_duration(t.duration_ns()),
        span_count: t.spans.iter().filter(|n| !n.placeholder).count(),
        error_count: t.error_count(),
        services: t
            .services()
            .into_iter()
            .map(|s| (s.to_string(), service_color(s)))
            .collect(),
        warnings: t.warnings.clone(),
        ticks,
        rows,
    }
}

async fn trace_page(State(q): State<QueryService>, Path(id): Path<String>) -> Response {
    match q.trace(&id).await {
        Ok(t) => render(&trace_view(&t)),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use phosphor_store::model::{
        Fragment, KeyValue, Protocol, Span, SpanId, SpanKind, StatusCode as SpanStatus, TraceId,
    };
    use phosphor_store::{Store, StoreConfig};
    use std::sync::Arc;
    use tower::ServiceExt;

    fn span(id: u8, parent: Option<u8>, name: &str, status: SpanStatus) -> Fragment {
        // A minute ago, the same for every span of the test.
        static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                - 60_000_000_000
        });
        Fragment::Span(Span {
            trace_id: TraceId([5; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: name.into(),
            kind: SpanKind::Server,
            service: "card-api".into(),
            start_ns: base + 1_000_000 * u64::from(id),
            end_ns: base + 10_000_000,
            status,
            status_message: String::new(),
            attributes: vec![KeyValue::string("note", "<img src=x onerror=alert(1)>")],
            resource: vec![],
            scope: None,
            events: vec![],
            links: vec![],
            protocol: Protocol::OtlpGrpc,
        })
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn waterfall_rows_are_indented_placed_and_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        store
            .write(&[
                span(1, None, "authorise", SpanStatus::Unset),
                span(2, Some(1), "<script>alert(1)</script>", SpanStatus::Error),
            ])
            .unwrap();
        let app = router(QueryService::new(Arc::new(store)));
        let (status, html) = get(app.clone(), &format!("/traces/{}", "05".repeat(16))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("card-api: authorise"));
        // The child starts 1ms into a 9ms trace, one level deep, and failed.
        assert!(html.contains("left: 11.111%"), "{html}");
        assert!(html.contains("padding-left: 1.2em"));
        assert!(html.contains("class=\"row error\""));
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;")
        );
        assert!(!html.contains("<img src=x"));

        let (status, html) = get(app.clone(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("/traces/{}", "05".repeat(16))));

        let (status, html) = get(app.clone(), "/traces/not%20valid").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("Bad trace ID"));
        let (status, _) = get(app, &format!("/traces/{}", "06".repeat(16))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(850_000), "850µs");
        assert_eq!(human_duration(12_345_000), "12.35ms");
        assert_eq!(human_duration(1_520_000_000), "1.52s");
    }
}

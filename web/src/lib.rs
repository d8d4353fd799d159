//! phosphor-web: the server-rendered UI.
//!
//! Pages are askama templates (`templates/`), rendered from the same
//! [`QueryService`] the JSON API uses; assets (`static/`) are embedded in the
//! binary. Askama escapes everything a template prints, so names and
//! attributes from spans can never become markup.

use std::time::{Duration, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use phosphor_query::{Error, QueryService, Trace, TraceSummary};
use serde::Deserialize;

mod trace;
pub use trace::{FULL_RENDER_MAX, INLINE_DETAILS_MAX, ROW_BUDGET, trace_page_html};

const CSS: &str = include_str!("../static/phosphor.css");
const JS: &str = include_str!("../static/phosphor.js");

/// No inline script, nothing from elsewhere. (Inline style attributes place
/// the waterfall bars.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the UI's handlers share: the query service, and the assembled
/// large traces their pages' fragments come from.
#[derive(Clone)]
pub struct AppState {
    query: QueryService,
    cache: std::sync::Arc<trace::TraceCache>,
    typical: std::sync::Arc<trace::TypicalCache>,
}

impl axum::extract::FromRef<AppState> for QueryService {
    fn from_ref(s: &AppState) -> QueryService {
        s.query.clone()
    }
}

/// UI routes: `/`, `/traces/{id}` (and the rows and span details its
/// script fetches), `/traces?id=`, `/static/*`, and the other pages.
pub fn router(query: QueryService) -> Router {
    Router::new()
        .route("/", get(search_page))
        .route("/search", get(search_page))
        .route("/traces", get(lookup))
        .route("/services", get(services_page))
        .route("/live", get(live_page))
        .route("/compare", get(compare_page))
        .route("/upload", get(upload_page))
        .route("/dependencies", get(dependencies_page))
        .route("/traces/{id}", get(trace::trace_page))
        .route("/traces/{id}/rows", get(trace::rows_fragment))
        .route("/traces/{id}/spans/{index}", get(trace::span_page))
        .route("/static/phosphor.css", get(css))
        .route("/static/phosphor.js", get(js))
        .layer(axum::middleware::map_response(csp))
        .with_state(AppState {
            query,
            cache: Default::default(),
            typical: Default::default(),
        })
}

async fn csp(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
        .into_response()
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
    /// The span that matched the search.
    matched: String,
    /// Duration as a share of the longest listed, for the bar.
    duration_pct: String,
    root_service: String,
    root_name: String,
    services: Vec<(String, String)>,
    spans: u64,
    errors: u64,
    duration: String,
    start: String,
}

struct SearchForm {
    service: String,
    operation: String,
    attrs: Vec<String>,
    errors: bool,
    min: String,
    max: String,
    lookback: String,
    start: String,
    end: String,
    limit: String,
    services: Vec<String>,
    operations: Vec<String>,
    attr_keys: Vec<String>,
    lookbacks: Vec<(&'static str, &'static str)>,
    limits: Vec<String>,
}

struct Dot {
    x: String,
    y: String,
    r: String,
    error: bool,
    /// Failed traces are diamonds (not only red): the path.
    diamond: String,
    href: String,
    title: String,
}

struct Plot {
    width: u32,
    height: u32,
    dots: Vec<Dot>,
    x_ticks: Vec<(String, String)>,
    y_ticks: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    form: SearchForm,
    error: Option<String>,
    rows: Vec<TraceRow>,
    plot: Plot,
    sort: String,
    /// This page's query string without `sort`, for the column links.
    sort_base: String,
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

fn row_of(s: &TraceSummary, longest_us: u64) -> TraceRow {
    let services: Vec<String> = s.services.iter().map(|(name, _)| name.clone()).collect();
    TraceRow {
        id: s.trace_id.to_hex(),
        matched: s.matched_span.to_hex(),
        duration_pct: format!(
            "{:.1}",
            s.duration_us as f64 / longest_us.max(1) as f64 * 100.0
        ),
        root_service: s.root_service.clone(),
        root_name: s.root_name.clone(),
        services: with_colors(&services),
        spans: s.span_count,
        errors: s.error_count,
        duration: human_duration(s.duration_us * 1_000),
        start: timestamp(s.start_us * 1_000),
    }
}

const LOOKBACKS: [(&str, &str); 7] = [
    ("15m", "15 minutes"),
    ("1h", "hour"),
    ("6h", "6 hours"),
    ("24h", "24 hours"),
    ("2d", "2 days"),
    ("7d", "7 days"),
    ("30d", "30 days"),
];

/// The scatter plot of results: start time across, duration (log scale)
/// up.
fn plot(rows: &[TraceSummary], start_us: u64, end_us: u64) -> Plot {
    let (width, height) = (900u32, 220u32);
    let (left, top, bottom) = (64.0, 8.0, 20.0);
    let plot_w = f64::from(width) - left - 8.0;
    let plot_h = f64::from(height) - top - bottom;
    let lo = rows.iter().map(|r| r.duration_us.max(1)).min().unwrap_or(1) as f64;
    let hi = rows.iter().map(|r| r.duration_us.max(1)).max().unwrap_or(1) as f64;
    // Log scale, at least half a decade tall, with a little room below.
    let (llo, lhi) = (lo.log10() - 0.05, hi.log10().max(lo.log10() + 0.5));
    let span = (end_us.saturating_sub(start_us)).max(1) as f64;
    let y_of = |d: f64| top + plot_h - (d.max(1.0).log10() - llo) / (lhi - llo) * plot_h;
    let dots = rows
        .iter()
        .map(|r| {
            let x =
                left + (r.start_us.saturating_sub(start_us) as f64 / span).clamp(0.0, 1.0) * plot_w;
            let y = y_of(r.duration_us as f64);
            let radius = 3.0 + (r.span_count as f64).log10().max(0.0) * 1.5;
            let d = radius * 1.35;
            Dot {
                x: format!("{x:.1}"),
                y: format!("{y:.1}"),
                r: format!("{radius:.1}"),
                error: r.error_count > 0,
                diamond: format!(
                    "M{x:.1} {:.1}l{d:.1} {d:.1}l-{d:.1} {d:.1}l-{d:.1} -{d:.1}z",
                    y - d
                ),
                href: format!("/traces/{}", r.trace_id.to_hex()),
                title: format!(
                    "{}: {} — {}, {} spans{}",
                    r.root_service,
                    r.root_name,
                    human_duration(r.duration_us * 1_000),
                    r.span_count,
                    if r.error_count > 0 {
                        format!(", {} errors", r.error_count)
                    } else {
                        String::new()
                    }
                ),
            }
        })
        .collect();
    let y_ticks = [lo, (lo * hi).sqrt(), hi]
        .iter()
        .map(|&d| (format!("{:.1}", y_of(d)), human_duration(d as u64 * 1_000)))
        .collect();
    let x_ticks = (0..=4)
        .map(|i| {
            let f = f64::from(i) / 4.0;
            let t = start_us + (span * f) as u64;
            let label = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(t))
                .to_string();
            (
                format!("{:.1}", left + f * plot_w),
                label[11..19].to_string(),
            )
        })
        .collect();
    Plot {
        width,
        height,
        dots,
        x_ticks,
        y_ticks,
    }
}

async fn search_page(
    State(q): State<QueryService>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let sort = match get("sort").as_str() {
        s @ ("duration" | "spans" | "errors") => s.to_string(),
        _ => "newest".to_string(),
    };
    let api_pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, v)| k != "sort" && !v.trim().is_empty())
        .cloned()
        .collect();
    let services = q.services().await.unwrap_or_default();
    let service = get("service");
    let operations = if service.is_empty() {
        Vec::new()
    } else {
        let mut ops: Vec<String> = q
            .operations(&service)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.name)
            .collect();
        ops.dedup();
        ops
    };
    let mut attrs: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "attr" && !v.trim().is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    while attrs.len() < 2 {
        attrs.push(String::new());
    }
    let lookback = match get("lookback") {
        l if l.is_empty() => "1h".to_string(),
        l => l,
    };
    let form = SearchForm {
        service,
        operation: get("operation"),
        attrs,
        errors: get("status") == "error",
        min: get("minDuration"),
        max: get("maxDuration"),
        lookback: lookback.clone(),
        start: get("start"),
        end: get("end"),
        limit: match get("limit") {
            l if l.is_empty() => "20".into(),
            l => l,
        },
        services,
        operations,
        attr_keys: q.attribute_keys().await.unwrap_or_default(),
        lookbacks: LOOKBACKS.to_vec(),
        limits: ["20", "50", "100", "500"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let mut with_lookback = api_pairs.clone();
    if get("lookback").is_empty() && get("start").is_empty() {
        with_lookback.push(("lookback".into(), lookback));
    }
    let sort_base = {
        let qs: Vec<String> = api_pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("/search?{}", qs.join("&"))
    };
    let empty_plot = || plot(&[], 0, 1);
    let (rows, plot, error, status) =
        match phosphor_query::params::search(&with_lookback, q.now_us()) {
            Err(e) => (Vec::new(), empty_plot(), Some(e), StatusCode::BAD_REQUEST),
            Ok(query) => {
                let (start, end) = (query.start_us, query.end_us.min(q.now_us()));
                match q.search(query).await {
                    Ok(mut hits) => {
                        match sort.as_str() {
                            "duration" => hits.sort_by_key(|h| std::cmp::Reverse(h.duration_us)),
                            "spans" => hits.sort_by_key(|h| std::cmp::Reverse(h.span_count)),
                            "errors" => hits.sort_by_key(|h| std::cmp::Reverse(h.error_count)),
                            _ => {}
                        }
                        let longest = hits.iter().map(|h| h.duration_us).max().unwrap_or(1);
                        let rows = hits.iter().map(|h| row_of(h, longest)).collect();
                        (rows, plot(&hits, start, end), None, StatusCode::OK)
                    }
                    Err(e) => return error_page(e),
                }
            }
        };
    let mut resp = render(&SearchPage {
        form,
        error,
        rows,
        plot,
        sort,
        sort_base,
    });
    *resp.status_mut() = status;
    resp
}

struct CompareRow {
    class: &'static str,
    indent: String,
    service: String,
    color: String,
    name: String,
    a: String,
    b: String,
    change: String,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    a: String,
    b: String,
    a_title: String,
    b_title: String,
    a_duration: String,
    b_duration: String,
    only_a: usize,
    only_b: usize,
    rows: Vec<CompareRow>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct CompareParams {
    a: Option<String>,
    b: Option<String>,
}

/// Keys spans by where they sit: the (service, name) path from the root,
/// and which of its same-named siblings it is.
fn structural_keys(t: &Trace) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(t.spans.len());
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for n in &t.spans {
        let parent = n.parent.map(|p| keys[p].as_str()).unwrap_or("");
        let base = format!("{parent}/{}:{}", n.service, n.name);
        let i = seen.entry(base.clone()).or_default();
        keys.push(format!("{base}#{i}"));
        *i += 1;
    }
    keys
}

/// A structural diff of two traces: spans matched by their place in the
/// tree, those present in one only, and the duration change of the rest.
fn compare(a: &Trace, b: &Trace) -> (Vec<CompareRow>, usize, usize) {
    let (ka, kb) = (structural_keys(a), structural_keys(b));
    let in_b: std::collections::HashMap<&str, usize> = kb
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let in_a: std::collections::HashSet<&str> = ka.iter().map(String::as_str).collect();
    let row = |class, n: &phosphor_query::Node, a: String, b: String, change: String| CompareRow {
        class,
        indent: format!("{:.1}", n.depth as f64 * 1.2),
        service: n.service.to_string(),
        color: service_color(&n.service),
        name: n.name.to_string(),
        a,
        b,
        change,
    };
    let mut rows = Vec::new();
    let (mut only_a, mut only_b) = (0, 0);
    for (i, n) in a.spans.iter().enumerate() {
        match in_b.get(ka[i].as_str()) {
            Some(&j) => {
                let (da, db) = (n.duration_ns(), b.spans[j].duration_ns());
                let delta = db as f64 - da as f64;
                let pct = if da > 0 {
                    delta / da as f64 * 100.0
                } else {
                    0.0
                };
                let class = if pct > 20.0 && delta > 1e6 {
                    "slower"
                } else if pct < -20.0 && delta < -1e6 {
                    "faster"
                } else {
                    "same"
                };
                let sign = if delta < 0.0 { "-" } else { "+" };
                rows.push(row(
                    class,
                    n,
                    human_duration(da),
                    human_duration(db),
                    format!("{sign}{} ({pct:+.0}%)", human_duration(delta.abs() as u64)),
                ));
            }
            None => {
                only_a += 1;
                rows.push(row(
                    "only-a",
                    n,
                    human_duration(n.duration_ns()),
                    "–".into(),
                    String::new(),
                ));
            }
        }
    }
    for (j, n) in b.spans.iter().enumerate() {
        if !in_a.contains(kb[j].as_str()) {
            only_b += 1;
            rows.push(row(
                "only-b",
                n,
                "–".into(),
                human_duration(n.duration_ns()),
                String::new(),
            ));
        }
    }
    (rows, only_a, only_b)
}

fn title(t: &Trace) -> String {
    t.spans
        .iter()
        .find(|n| !n.placeholder)
        .map(|r| format!("{}: {}", r.service, r.name))
        .unwrap_or_default()
}

async fn compare_page(State(q): State<QueryService>, Query(p): Query<CompareParams>) -> Response {
    let (a, b) = (p.a.unwrap_or_default(), p.b.unwrap_or_default());
    let mut page = ComparePage {
        a: a.clone(),
        b: b.clone(),
        a_title: String::new(),
        b_title: String::new(),
        a_duration: String::new(),
        b_duration: String::new(),
        only_a: 0,
        only_b: 0,
        rows: Vec::new(),
        error: None,
    };
    if a.is_empty() || b.is_empty() {
        return render(&page);
    }
    match (q.trace(&a).await, q.trace(&b).await) {
        (Ok(ta), Ok(tb)) => {
            let (rows, only_a, only_b) = compare(&ta, &tb);
            page.rows = rows;
            page.only_a = only_a;
            page.only_b = only_b;
            page.a_title = title(&ta);
            page.b_title = title(&tb);
            page.a_duration = human_duration(ta.duration_ns());
            page.b_duration = human_duration(tb.duration_ns());
            render(&page)
        }
        (Err(e), _) | (_, Err(e)) => {
            page.error = Some(e.to_string());
            let mut resp = render(&page);
            *resp.status_mut() = match e {
                Error::TraceNotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            resp
        }
    }
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage;

async fn upload_page() -> Response {
    render(&UploadPage)
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    refresh: u32,
    now: String,
    service: String,
    services: Vec<String>,
    traces: Vec<TraceRow>,
    errors: Vec<TraceRow>,
}

#[derive(Deserialize)]
struct LiveParams {
    service: Option<String>,
}

/// The page to leave open during an incident: the newest traces and the
/// newest errors, refreshed every few seconds (a meta refresh: no script).
async fn live_page(State(q): State<QueryService>, Query(p): Query<LiveParams>) -> Response {
    let service = p.service.unwrap_or_default();
    let now = q.now_us();
    let query = |errors_only: bool, limit: usize| phosphor_store::SearchQuery {
        service: (!service.is_empty()).then(|| service.clone()),
        errors_only,
        start_us: now.saturating_sub(15 * 60 * 1_000_000),
        end_us: now + phosphor_query::FUTURE_SLACK_US,
        limit,
        ..Default::default()
    };
    let (traces, errors) = match (
        q.search(query(false, 30)).await,
        q.search(query(true, 20)).await,
    ) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(e), _) | (_, Err(e)) => return error_page(e),
    };
    let rows = |hits: &[TraceSummary]| {
        let longest = hits.iter().map(|h| h.duration_us).max().unwrap_or(1);
        hits.iter().map(|h| row_of(h, longest)).collect::<Vec<_>>()
    };
    render(&LivePage {
        refresh: 5,
        now: timestamp(now * 1_000),
        services: q.services().await.unwrap_or_default(),
        service,
        traces: rows(&traces),
        errors: rows(&errors),
    })
}

#[derive(Deserialize)]
struct LookbackParams {
    lookback: Option<String>,
}

/// A lookback from the page's presets (default `default`).
fn lookback_of(p: &LookbackParams, default: &'static str) -> (String, Duration) {
    let chosen = p
        .lookback
        .as_deref()
        .filter(|l| LOOKBACKS.iter().any(|(v, _)| v == l))
        .unwrap_or(default)
        .to_string();
    let d = phosphor_query::params::duration(&chosen).unwrap_or(Duration::from_secs(3_600));
    (chosen, d)
}

struct OpRow {
    name: String,
    kind: &'static str,
    rate: String,
    error_pct: String,
    p50: String,
    p95: String,
    p99: String,
    search: String,
}

struct ServiceBlock {
    name: String,
    color: String,
    operations: Vec<OpRow>,
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    action: &'static str,
    services: Vec<ServiceBlock>,
    lookback: String,
    lookbacks: Vec<(&'static str, &'static str)>,
}

fn pct_of(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 / whole as f64 * 100.0)
    }
}

async fn services_page(State(q): State<QueryService>, Query(p): Query<LookbackParams>) -> Response {
    let (lookback, window) = lookback_of(&p, "15m");
    let names = match q.services().await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let mut services = Vec::new();
    for name in names {
        let stats = match q.operation_stats(&name, window).await {
            Ok(s) => s,
            Err(e) => return error_page(e),
        };
        let mut operations: Vec<OpRow> = stats
            .iter()
            .map(|o| OpRow {
                name: o.operation.clone(),
                kind: o.kind.as_str(),
                rate: format!(
                    "{}{:.2}",
                    if o.capped { "≥" } else { "" },
                    o.count as f64 / window.as_secs_f64().max(1.0)
                ),
                error_pct: pct_of(o.errors, o.count),
                p50: human_duration(o.p50_us * 1_000),
                p95: human_duration(o.p95_us * 1_000),
                p99: human_duration(o.p99_us * 1_000),
                search: format!(
                    "/search?service={}&operation={}&lookback={lookback}",
                    encode(&name),
                    encode(&o.operation)
                ),
            })
            .collect();
        // Operations with no recent spans still show, from the catalog.
        if let Ok(ops) = q.operations(&name).await {
            for op in ops {
                if !operations.iter().any(|r| r.name == op.name) {
                    operations.push(OpRow {
                        name: op.name.clone(),
                        kind: op.kind.as_str(),
                        rate: "0.00".into(),
                        error_pct: "–".into(),
                        p50: "–".into(),
                        p95: "–".into(),
                        p99: "–".into(),
                        search: format!(
                            "/search?service={}&operation={}&lookback={lookback}",
                            encode(&name),
                            encode(&op.name)
                        ),
                    });
                }
            }
        }
        services.push(ServiceBlock {
            color: service_color(&name),
            name,
            operations,
        });
    }
    render(&ServicesPage {
        action: "/services",
        services,
        lookback,
        lookbacks: LOOKBACKS.to_vec(),
    })
}

struct GraphNode {
    name: String,
    color: String,
    x: String,
    y: String,
    tx: String,
    ty: String,
    anchor: &'static str,
}

struct GraphEdge {
    caller: String,
    callee: String,
    calls: u64,
    errors: u64,
    error_pct: String,
    x1: String,
    y1: String,
    x2: String,
    y2: String,
    lx: String,
    ly: String,
    width: String,
}

#[derive(Template)]
#[template(path = "dependencies.html")]
struct DependenciesPage {
    action: &'static str,
    size: u32,
    nodes: Vec<GraphNode>,
    edges: Vec<GraphEdge>,
    lookback: String,
    lookbacks: Vec<(&'static str, &'static str)>,
}

async fn dependencies_page(
    State(q): State<QueryService>,
    Query(p): Query<LookbackParams>,
) -> Response {
    let (lookback, window) = lookback_of(&p, "1h");
    let end = q.now_us() + 1;
    let deps = match q
        .dependencies(end.saturating_sub(window.as_micros() as u64), end)
        .await
    {
        Ok(d) => d,
        Err(e) => return error_page(e),
    };
    // Services on a circle, calls as arrows between them.
    let mut names: Vec<&str> = deps
        .iter()
        .flat_map(|d| [d.caller.as_str(), d.callee.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    let size = 640u32;
    let (c, r) = (f64::from(size) / 2.0, f64::from(size) / 2.0 - 150.0);
    let pos = |i: usize| {
        let a = std::f64::consts::TAU * i as f64 / names.len().max(1) as f64
            - std::f64::consts::FRAC_PI_2;
        (c + r * a.cos(), c + r * a.sin(), a.cos())
    };
    let nodes = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (x, y, cos) = pos(i);
            GraphNode {
                name: n.to_string(),
                color: service_color(n),
                x: format!("{x:.1}"),
                y: format!("{y:.1}"),
                tx: format!("{:.1}", x + 10.0 * cos.signum()),
                ty: format!("{:.1}", y + 4.0),
                anchor: if cos < -0.1 {
                    "end"
                } else if cos > 0.1 {
                    "start"
                } else {
                    "middle"
                },
            }
        })
        .collect();
    let index = |n: &str| names.iter().position(|x| *x == n).unwrap_or(0);
    let edges = deps
        .iter()
        .map(|d| {
            let (x1, y1, _) = pos(index(&d.caller));
            let (x2, y2, _) = pos(index(&d.callee));
            // Stop the arrow at the callee's dot.
            let len = ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt().max(1.0);
            let (ex, ey) = (x2 - (x2 - x1) / len * 9.0, y2 - (y2 - y1) / len * 9.0);
            GraphEdge {
                caller: d.caller.clone(),
                callee: d.callee.clone(),
                calls: d.calls,
                errors: d.errors,
                error_pct: pct_of(d.errors, d.calls),
                x1: format!("{x1:.1}"),
                y1: format!("{y1:.1}"),
                x2: format!("{ex:.1}"),
                y2: format!("{ey:.1}"),
                lx: format!("{:.1}", (x1 + x2) / 2.0),
                ly: format!("{:.1}", (y1 + y2) / 2.0 - 3.0),
                width: format!("{:.1}", 1.0 + (d.calls.max(1) as f64).log10()),
            }
        })
        .collect();
    render(&DependenciesPage {
        action: "/dependencies",
        size,
        nodes,
        edges,
        lookback,
        lookbacks: LOOKBACKS.to_vec(),
    })
}

/// Percent-encodes a query-string component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct LookupParams {
    id: Option<String>,
}

async fn lookup(Query(p): Query<LookupParams>) -> Response {
    match p.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => {
            Redirect::to(&format!("/traces/{}", encode(id))).into_response()
        }
        _ => Redirect::to("/").into_response(),
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
            status_message: Default::default(),
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
        assert!(html.contains("style=\"--d:1;--l:11.111;"), "{html}");
        assert!(
            html.contains("class=\"row s0 error critical leaf\" id=\"span-1\""),
            "{html}"
        );
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;")
        );
        assert!(!html.contains("<img src=x"));
        // What is looked for is shown back, escaped.
        let (_, found) = get(
            app.clone(),
            &format!(
                "/traces/{}?find=%3Cscript%3Ealert(2)%3C%2Fscript%3E",
                "05".repeat(16)
            ),
        )
        .await;
        assert!(!found.contains("<script>alert(2)"));
        assert!(
            found.contains("&#60;script&#62;alert(2)") || found.contains("&lt;script&gt;alert(2)"),
            "{found}"
        );

        let (status, html) = get(app.clone(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("/traces/{}?span=", "05".repeat(16))));

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

    async fn app_with_trace() -> Router {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        store
            .write(&[
                span(1, None, "authorise", SpanStatus::Unset),
                span(2, Some(1), "charge", SpanStatus::Error),
            ])
            .unwrap();
        router(QueryService::new(Arc::new(store)))
    }

    #[tokio::test]
    async fn search_page_plots_and_lists_what_matches_and_keeps_the_query() {
        let app = app_with_trace().await;
        let (status, html) = get(
            app.clone(),
            "/search?service=card-api&status=error&lookback=1h",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<h1>1 trace</h1>"), "{html}");
        // One dot, red for the error, linking to the trace.
        assert_eq!(html.matches("class=\"dot error\"").count(), 1);
        assert!(html.contains(&format!("href=\"/traces/{}\"", "05".repeat(16))));
        // The row links to the matching span (the failed one).
        assert!(html.contains(&format!("?span={}", "02".repeat(8))));
        // The form shows the query it ran.
        assert!(html.contains("<option value=\"card-api\" selected>"));
        assert!(html.contains("name=\"status\" value=\"error\" checked"));
        let link = html
            .split("Duration</a>")
            .next()
            .unwrap()
            .rsplit("<a href=")
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            link,
            // Askama writes & as &#38;: the same character to a browser.
            "\"/search?service=card-api&#38;status=error&#38;lookback=1h&amp;sort=duration\">"
        );

        let (status, html) = get(app.clone(), "/search?service=nope").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("No trace matches"));
        let (status, html) = get(app.clone(), "/search?minDuration=fast").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("is not a duration"));
    }

    #[tokio::test]
    async fn pages_forbid_inline_script_and_mark_the_critical_path() {
        let app = app_with_trace().await;
        let resp = app
            .clone()
            .oneshot(
                Request::get(format!(
                    "/traces/{}?span={}",
                    "05".repeat(16),
                    "02".repeat(8)
                ))
                .body(Body::empty())
                .unwrap(),
            )
            .await
            .unwrap();
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline'; img")
                || csp.contains("script-src 'self';")
        );
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(html.contains("<script src=\"/static/phosphor.js\" defer></script>"));
        // The child ends last and so is on the critical path; it is the
        // highlighted span.
        assert!(html.contains(" error critical leaf highlight\""), "{html}");
        assert!(html.contains("aria-expanded=\"true\""));
        let (status, js) = get(app.clone(), "/static/phosphor.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(js.contains("button.toggle"));
        assert!(js.contains("/api/v1/upload"));
        let (status, html) = get(app, "/upload").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"upload-file\""));
    }

    #[tokio::test]
    async fn services_and_dependencies_pages() {
        let app = app_with_trace().await;
        let (status, html) = get(app.clone(), "/services?lookback=1h").await;
        assert_eq!(status, StatusCode::OK);
        // One card-api span of each operation, one of them failed.
        assert!(html.contains("<td>charge</td><td>server</td>"), "{html}");
        assert!(html.contains("<td>100.0%</td>"), "{html}");
        assert!(
            html.contains("/search?service=card-api&amp;operation=charge&amp;lookback=1h")
                || html.contains("/search?service=card-api&#38;operation=charge&#38;lookback=1h"),
            "{html}"
        );
        let (status, html) = get(app.clone(), "/dependencies").await;
        assert_eq!(status, StatusCode::OK);
        // Both spans are card-api's: no call between services.
        assert!(html.contains("No calls between services"));
    }

    #[tokio::test]
    async fn live_page_lists_the_newest_traces_and_errors_and_refreshes() {
        let app = app_with_trace().await;
        let (status, html) = get(app.clone(), "/live").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        let errors = html.split("Latest traces").next().unwrap();
        assert!(
            errors.contains(&format!(
                "/traces/{}?span={}",
                "05".repeat(16),
                "02".repeat(8)
            )),
            "{html}"
        );
        let (_, html) = get(app, "/live?service=nope").await;
        assert!(html.contains("No errors in the last 15 minutes"));
        assert!(html.contains("No traces in the last 15 minutes"));
    }

    #[tokio::test]
    async fn compare_shows_what_changed_between_two_traces() {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let mk = |trace: u8, id: u8, parent: Option<u8>, name: &str, dur_ms: u64| {
            let Fragment::Span(mut s) = span(id, parent, name, SpanStatus::Unset) else {
                unreachable!()
            };
            s.trace_id = TraceId([trace; 16]);
            s.end_ns = s.start_ns + dur_ms * 1_000_000;
            Fragment::Span(s)
        };
        store
            .write(&[
                mk(1, 1, None, "checkout", 10),
                mk(1, 2, Some(1), "charge", 4),
                mk(1, 3, Some(1), "audit", 1),
                mk(2, 1, None, "checkout", 30),
                mk(2, 2, Some(1), "charge", 25),
                mk(2, 4, Some(1), "retry", 2),
            ])
            .unwrap();
        let app = router(QueryService::new(Arc::new(store)));
        let (a, b) = ("01".repeat(16), "02".repeat(16));
        let (status, html) = get(app.clone(), &format!("/compare?a={a}&b={b}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("1 span(s) only in A, 1 only in B"), "{html}");
        let charge = html.split("charge").nth(1).unwrap();
        assert!(charge.contains("+21.00ms (+525%)"), "{charge}");
        assert!(html.contains("class=\"slower\""));
        assert!(html.contains("audit <span class=\"tag\">only in A</span>"));
        assert!(html.contains("retry <span class=\"tag\">only in B</span>"));
        let (status, html) = get(app, &format!("/compare?a={a}&b={}", "09".repeat(16))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("not found"));
    }

    #[tokio::test]
    async fn a_span_far_slower_than_its_operation_usually_is_flagged() {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let spans: Vec<Fragment> = (1..=101u8)
            .map(|t| {
                let Fragment::Span(mut s) = span(1, None, "work", SpanStatus::Unset) else {
                    unreachable!()
                };
                s.trace_id = TraceId([t; 16]);
                s.end_ns = s.start_ns + if t == 101 { 50_000_000 } else { 1_000_000 };
                Fragment::Span(s)
            })
            .collect();
        store.write(&spans).unwrap();
        let app = router(QueryService::new(Arc::new(store)));
        let (_, slow) = get(app.clone(), &format!("/traces/{}", "65".repeat(16))).await;
        assert!(slow.contains("slow: 50.0× p50"), "{slow}");
        assert!(slow.contains("p50 1.00ms, p99 1.00ms over the last hour (101 spans)"));
        let (_, normal) = get(app, &format!("/traces/{}", "07".repeat(16))).await;
        assert!(!normal.contains("slow:"));
        assert!(normal.contains("over the last hour"));
    }

    #[tokio::test]
    async fn traces_over_the_budget_hide_subtrees_that_load_as_fragments_or_pages() {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        // A root, 100 groups under it, 120 leaves under each: 12,101 spans.
        // (The groups' 12,000 leaves do not fit, and 100 shares of the
        // budget would be too small: the groups are collapsed rows.)
        let id_of = |i: u64| SpanId((i + 1).to_be_bytes());
        let mut spans = Vec::new();
        let mut push = |i: u64, parent: Option<u64>, name: String| {
            let Fragment::Span(mut s) = span(1, None, "x", SpanStatus::Unset) else {
                unreachable!()
            };
            s.span_id = id_of(i);
            s.parent_span_id = parent.map(id_of);
            s.name = name.into();
            s.start_ns += i;
            spans.push(Fragment::Span(s));
        };
        push(0, None, "root".into());
        for g in 0..100 {
            push(1 + g, Some(0), format!("group-{g}"));
            for j in 0..120 {
                push(1_000 + g * 1_000 + j, Some(1 + g), format!("leaf-{g}-{j}"));
            }
        }
        store.write(&spans).unwrap();
        let app = router(QueryService::new(Arc::new(store)));
        let id = "05".repeat(16);
        let (status, html) = get(app.clone(), &format!("/traces/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("<dd>12,101 (depth 3)</dd>"),
            "the header counts every span"
        );
        let shown = html.matches("<div class=\"row s").count();
        assert!((101..ROW_BUDGET).contains(&shown), "{shown} rows");
        assert!(html.contains(&format!(
            "{} of its 12,101 spans are shown",
            trace::thousands(shown)
        )));
        // Collapsed groups say what they hold, and where to get it.
        let collapsed = html.matches("show 120 spans below").count();
        assert!(collapsed >= 95, "{collapsed} collapsed groups");
        // (The link of a collapsed group, not of the calls hidden around
        // the critical path's leaf.)
        let rows_link = html
            .split("\">show 120 spans below")
            .next()
            .unwrap()
            .rsplit("data-rows=\"")
            .next()
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        let version = html
            .split("data-version=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        assert!(rows_link.contains(&format!("&v={version}")), "{rows_link}");
        let (status, frag) = get(app.clone(), &rows_link).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!frag.contains("<html"));
        assert_eq!(frag.matches("<div class=\"row s").count(), 120);
        assert!(frag.contains(">leaf-") && frag.contains("--d:2;"));
        // A page that changed since is not patched with the wrong rows.
        let (status, _) = get(
            app.clone(),
            &rows_link.replace(&version, "0123456789abcdef"),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, msg) = get(
            app.clone(),
            &format!("/traces/{id}/rows?under=0&from=9&to=3"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(msg.contains("not a range"), "{msg}");
        // Without JavaScript: the subtree's own page.
        let under = rows_link
            .split("under=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let (status, page) = get(app.clone(), &format!("/traces/{id}?under={under}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Showing the 120 spans under card-api: group-"),
            "{page}"
        );
        assert_eq!(page.matches("<div class=\"row s").count(), 121);
        // Find reaches a span the page does not show, and shows it.
        assert!(!html.contains(">leaf-19-99<"));
        let (_, found) = get(app.clone(), &format!("/traces/{id}?find=LEAF-19-99")).await;
        assert!(
            found.contains("1 span of the whole trace matches"),
            "{found}"
        );
        assert!(found.contains(" match\" id=\"span-") && found.contains(">leaf-19-99<"));
        // So does a link to it.
        let leaf = format!("{:016x}", 1_000 + 19 * 1_000 + 99 + 1);
        let (_, linked) = get(app, &format!("/traces/{id}?span={leaf}")).await;
        assert!(linked.contains(" highlight\" id=\"span-") && linked.contains(">leaf-19-99<"));
    }

    #[tokio::test]
    async fn large_traces_fetch_span_details_when_a_row_opens() {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let spans: Vec<Fragment> = (0..=INLINE_DETAILS_MAX as u64)
            .map(|i| {
                let Fragment::Span(mut s) = span(1, None, "work", SpanStatus::Unset) else {
                    unreachable!()
                };
                s.span_id = SpanId((i + 1).to_be_bytes());
                s.parent_span_id = (i > 0).then(|| SpanId(1u64.to_be_bytes()));
                s.name = format!("op-{i}").into();
                Fragment::Span(s)
            })
            .collect();
        store.write(&spans).unwrap();
        let app = router(QueryService::new(Arc::new(store)));
        let id = "05".repeat(16);
        let (_, html) = get(app.clone(), &format!("/traces/{id}")).await;
        assert_eq!(
            html.matches("<div class=\"row s").count(),
            INLINE_DETAILS_MAX + 1
        );
        assert!(!html.contains("<details"), "plain rows for large traces");
        assert!(!html.contains("<dt>Span ID</dt>"), "no inline details");
        assert!(html.contains("<a class=\"op\" href=\"?detail=7\">op-"));
        // Without JavaScript, that link leads to the span's own page.
        let resp = app
            .clone()
            .oneshot(
                Request::get(format!("/traces/{id}?detail=7"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            resp.headers()[header::LOCATION],
            format!("/traces/{id}/spans/7").as_str()
        );
        let (status, frag) = get(app.clone(), &format!("/traces/{id}/spans/7?fragment=1")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            frag.trim_start().starts_with("<div class=\"detail\">")
                && frag.contains("<dt>Span ID</dt>")
        );
        assert!(!frag.contains("<html"));
        let (status, page) = get(app.clone(), &format!("/traces/{id}/spans/7")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<html") && page.contains("the whole trace"));
        let (status, _) = get(app, &format!("/traces/{id}/spans/99999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

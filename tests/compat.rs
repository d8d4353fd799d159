//! The Jaeger query API (`/jaeger`) and the Zipkin read API (`/zipkin`)
//! against a real server, checked for the shapes those systems document
//! (Jaeger's `model/json`, Zipkin's `zipkin2-api.yaml`).

mod common;

use common::Server;
use serde_json::{Value, json};

/// Ten minutes ago, on a whole second (the same for every call in a run).
fn t0_us() -> u64 {
    static T0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (now - 600) * 1_000_000
    })
}

/// One trace over OTLP/HTTP JSON: api (server, on host-a) calls cards
/// (server on host-b, failing) through a client span.
async fn send(s: &Server) {
    let ns = |us: u64| (us * 1_000).to_string();
    let res = |svc: &str, host: &str| {
        json!({"attributes": [{"key": "service.name", "value": {"stringValue": svc}},
                              {"key": "host.name", "value": {"stringValue": host}}]})
    };
    let t = "abababababababababababababababab";
    let body = json!({"resourceSpans": [
        {"resource": res("api", "host-a"), "scopeSpans": [{"spans": [
            {"traceId": t, "spanId": "0000000000000001", "name": "GET /pay", "kind": 2,
             "startTimeUnixNano": ns(t0_us()), "endTimeUnixNano": ns(t0_us() + 10_000),
             "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}},
                            {"key": "http.status_code", "value": {"intValue": "502"}}]},
            {"traceId": t, "spanId": "0000000000000002", "parentSpanId": "0000000000000001",
             "name": "call cards", "kind": 3,
             "startTimeUnixNano": ns(t0_us() + 1_000), "endTimeUnixNano": ns(t0_us() + 9_000),
             "attributes": [{"key": "peer.service", "value": {"stringValue": "cards"}}]}]}]},
        {"resource": res("cards", "host-b"), "scopeSpans": [{"spans": [
            {"traceId": t, "spanId": "0000000000000003", "parentSpanId": "0000000000000002",
             "name": "get-card", "kind": 2,
             "startTimeUnixNano": ns(t0_us() + 2_000), "endTimeUnixNano": ns(t0_us() + 8_000),
             "status": {"code": 2, "message": "card frozen"},
             "events": [{"timeUnixNano": ns(t0_us() + 3_000), "name": "cache-miss",
                         "attributes": [{"key": "key", "value": {"stringValue": "c-1"}}]}]}]}]}
    ]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.otlp_http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.wait_trace(t, 3).await;
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_query_api_speaks_jaegers_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    send(&s).await;

    let (code, v) = s.get_json("/jaeger/api/services").await;
    assert_eq!(code, 200);
    assert_eq!(keys(&v), ["data", "errors", "limit", "offset", "total"]);
    assert_eq!(v["data"], json!(["api", "cards"]));
    assert_eq!(v["total"], 2);

    let (_, v) = s.get_json("/jaeger/api/services/api/operations").await;
    assert_eq!(v["data"], json!(["GET /pay", "call cards"]));
    let (_, v) = s
        .get_json("/jaeger/api/operations?service=api&spanKind=server")
        .await;
    assert_eq!(
        v["data"],
        json!([{"name": "GET /pay", "spanKind": "server"}])
    );
    let (code, v) = s.get_json("/jaeger/api/operations").await;
    assert_eq!(code, 400);
    assert_eq!(v["errors"][0]["code"], 400);

    let (_, v) = s
        .get_json(&format!(
            "/jaeger/api/traces?service=cards&tags=%7B%22error%22%3A%22true%22%7D&start={}&end={}&limit=20",
            t0_us() - 1,
            t0_us() + 60_000_000
        ))
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let trace = &v["data"][0];
    assert_eq!(keys(trace), ["processes", "spans", "traceID", "warnings"]);
    assert_eq!(trace["traceID"], "abababababababababababababababab");
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let get = |name: &str| spans.iter().find(|x| x["operationName"] == name).unwrap();
    let card = get("get-card");
    assert_eq!(
        keys(card),
        [
            "duration",
            "flags",
            "logs",
            "operationName",
            "processID",
            "references",
            "spanID",
            "startTime",
            "tags",
            "traceID",
            "warnings"
        ]
    );
    assert_eq!(
        card["references"],
        json!([{"refType": "CHILD_OF",
        "traceID": "abababababababababababababababab", "spanID": "0000000000000002"}])
    );
    assert_eq!(card["duration"], 6_000);
    assert!(
        card["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "error", "type": "bool", "value": true}))
    );
    assert!(
        card["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "span.kind", "type": "string", "value": "server"}))
    );
    assert_eq!(card["logs"][0]["timestamp"], t0_us() + 3_000);
    assert_eq!(
        card["logs"][0]["fields"][0],
        json!({"key": "event", "type": "string", "value": "cache-miss"})
    );
    let root = get("GET /pay");
    assert!(
        root["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "http.status_code", "type": "int64", "value": 502}))
    );
    assert_eq!(root["references"], json!([]));
    let process = &trace["processes"][card["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "cards");
    assert!(
        process["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "host.name", "type": "string", "value": "host-b"}))
    );

    let (_, v) = s
        .get_json("/jaeger/api/traces/abababababababababababababababab")
        .await;
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);
    let (code, v) = s
        .get_json("/jaeger/api/traces/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd")
        .await;
    assert_eq!(code, 404);
    assert_eq!(v["errors"][0]["msg"], "trace not found");

    let (_, v) = s
        .get_json(&format!(
            "/jaeger/api/dependencies?endTs={}&lookback=3600000",
            t0_us() / 1_000 + 60_000
        ))
        .await;
    assert_eq!(
        v["data"],
        json!([{"parent": "api", "child": "cards", "callCount": 1}])
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_read_api_speaks_zipkins_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    send(&s).await;
    let end_ms = t0_us() / 1_000 + 60_000;

    let (_, v) = s.get_json("/zipkin/api/v2/services").await;
    assert_eq!(v, json!(["api", "cards"]));
    let (_, v) = s.get_json("/zipkin/api/v2/spans?serviceName=api").await;
    assert_eq!(v, json!(["GET /pay", "call cards"]));
    let (_, v) = s
        .get_json("/zipkin/api/v2/remoteServices?serviceName=api")
        .await;
    assert_eq!(v, json!(["cards"]));
    let code = reqwest::get(s.url("/zipkin/api/v2/spans"))
        .await
        .unwrap()
        .status();
    assert_eq!(code, 400, "serviceName is required");

    let (_, v) = s
        .get_json(&format!(
            "/zipkin/api/v2/traces?serviceName=cards&annotationQuery=error&endTs={end_ms}&lookback=3600000"
        ))
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let trace = v[0].as_array().unwrap();
    let card = trace.iter().find(|x| x["name"] == "get-card").unwrap();
    assert_eq!(
        keys(card),
        [
            "annotations",
            "duration",
            "id",
            "kind",
            "localEndpoint",
            "name",
            "parentId",
            "tags",
            "timestamp",
            "traceId"
        ]
    );
    assert_eq!(card["kind"], "SERVER");
    assert_eq!(card["timestamp"], t0_us() + 2_000);
    assert_eq!(card["localEndpoint"], json!({"serviceName": "cards"}));
    assert_eq!(card["tags"]["error"], "card frozen");
    assert_eq!(
        card["annotations"],
        json!([{"timestamp": t0_us() + 3_000, "value": "cache-miss"}])
    );
    let client = trace.iter().find(|x| x["name"] == "call cards").unwrap();
    assert_eq!(client["remoteEndpoint"], json!({"serviceName": "cards"}));

    let (_, v) = s
        .get_json("/zipkin/api/v2/trace/abababababababababababababababab")
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let code = reqwest::get(s.url("/zipkin/api/v2/trace/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"))
        .await
        .unwrap()
        .status();
    assert_eq!(code, 404);
    let (_, v) = s
        .get_json("/zipkin/api/v2/traceMany?traceIds=abababababababababababababababab,cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd")
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (_, v) = s
        .get_json(&format!(
            "/zipkin/api/v2/dependencies?endTs={end_ms}&lookback=3600000"
        ))
        .await;
    assert_eq!(
        v,
        json!([{"parent": "api", "child": "cards", "callCount": 1, "errorCount": 1}])
    );
    let (_, v) = s.get_json("/zipkin/api/v2/autocompleteKeys").await;
    assert!(v.as_array().unwrap().contains(&json!("http.method")), "{v}");
    let (_, v) = s
        .get_json("/zipkin/api/v2/autocompleteValues?key=http.method")
        .await;
    assert_eq!(v, json!(["GET"]));
    s.stop();
}

/// The shape of a trace that survives export and upload: per span, its
/// service, name, kind, start, duration, parent's name and error flag.
type SpanShape = (String, String, String, u64, u64, Option<String>, bool);

fn shape(t: &Value) -> Vec<SpanShape> {
    let spans = t["spans"].as_array().unwrap();
    let mut out: Vec<_> = spans
        .iter()
        .map(|s| {
            let parent = s["parentIndex"]
                .as_u64()
                .map(|i| spans[i as usize]["name"].as_str().unwrap().to_string());
            (
                s["service"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
                s["kind"].as_str().unwrap().to_string(),
                s["startTime"].as_u64().unwrap(),
                s["duration"].as_u64().unwrap(),
                parent,
                s["error"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_exported_as_jaeger_otlp_or_zipkin_json_upload_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("a"), &[]);
    send(&s).await;
    let id = "abababababababababababababababab";
    let (_, original) = s.get_json(&format!("/api/v1/traces/{id}?raw=true")).await;

    let (_, many) = s
        .get_json(&format!(
            "/api/v1/traces?ids={id},cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
        ))
        .await;
    assert_eq!(many["data"].as_array().unwrap().len(), 1);
    assert_eq!(many["missing"], json!(["cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"]));
    // Each trace exactly as the single-trace route gives it.
    let (_, single) = s.get_json(&format!("/api/v1/traces/{id}")).await;
    assert_eq!(many["data"][0], single);
    let (code, _) = s.get_json("/api/v1/traces").await;
    assert_eq!(code, 400);

    let (_, otlp) = s
        .get_json(&format!("/api/v1/traces/{id}?format=otlp"))
        .await;
    let (_, many_otlp) = s
        .get_json(&format!("/api/v1/traces?ids={id},{id}&format=otlp"))
        .await;
    assert_eq!(many_otlp["data"], json!([otlp.clone(), otlp.clone()]));
    assert_eq!(many_otlp["missing"], json!([]));
    assert_eq!(otlp["resourceSpans"].as_array().unwrap().len(), 2);
    let (_, jaeger) = s.get_json(&format!("/jaeger/api/traces/{id}")).await;
    let (_, zipkin) = s.get_json(&format!("/zipkin/api/v2/trace/{id}")).await;

    for (i, (format, file)) in [("otlp", otlp), ("jaeger", jaeger), ("zipkin", zipkin)]
        .into_iter()
        .enumerate()
    {
        let other = Server::start(&dir.path().join(format!("b{i}")), &[]);
        let resp = reqwest::Client::new()
            .post(other.url("/api/v1/upload"))
            .header("content-type", "application/json")
            .body(file.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{format}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["format"], format);
        assert_eq!(body["traces"], json!([id]));
        let t = other.wait_trace(id, 3).await;
        assert_eq!(shape(&t), shape(&original), "{format} round trip");
        assert_eq!(t["spans"][0]["protocols"], json!(["upload"]));
        other.stop();
    }

    let resp = reqwest::Client::new()
        .post(s.url("/api/v1/upload"))
        .body("{\"hello\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known format")
    );
    s.stop();
}

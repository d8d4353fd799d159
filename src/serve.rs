//! `phosphor serve`: wires the store, the pipeline, the receivers and the
//! HTTP server together, and shuts them down in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use phosphor_collector::decode::Limits;
use phosphor_collector::metrics::Metrics;
use phosphor_collector::{OtlpReceiver, PipelineConfig, ZipkinReceiver, pipeline, udp};
use phosphor_query::QueryService;
use phosphor_store::{Store, StoreConfig};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

#[derive(Clone)]
struct Ops {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    // Some figures are read at scrape time from files (the store's size,
    // /proc): off the async runtime.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &ops.registry).map(|()| body)
    })
    .await;
    match encoded {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

fn shutdown_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs everything until SIGINT or SIGTERM, then drains the queue.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store_config = StoreConfig {
        sync_writes: config.sync_writes,
        block_cache_bytes: config.block_cache_bytes,
        retention: config.retention,
        partition: StoreConfig::partition_for(config.retention),
    };
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir, &store_config))
        .await?
        .with_context(|| format!("opening the trace store in {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    tracing::info!(
        data_dir = %config.data_dir.display(),
        retention = %humantime::format_duration(config.retention),
        "trace store open"
    );

    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    registry.register_collector(Box::new(crate::metrics::ServerCollector::new(
        store.clone(),
    )));
    let (ingest, writer) = pipeline::start(
        store.clone(),
        PipelineConfig {
            queue_spans: config.queue_spans,
            ..PipelineConfig::default()
        },
        metrics,
    );

    let bind = |name: &'static str, addr| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {name} on {addr}"))
    };
    let udp_socket = udp::bind(config.udp_addr, 16 << 20)
        .with_context(|| format!("binding udp on {}", config.udp_addr))?;
    let grpc_listener = bind("otlp-grpc", config.otlp_grpc_addr).await?;
    let otlp_http_listener = bind("otlp-http", config.otlp_http_addr).await?;
    let zipkin_listener = bind("zipkin", config.zipkin_addr).await?;
    let http_listener = bind("http", config.http_addr).await?;

    let udp_addr = udp_socket.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;
    let otlp_http_addr = otlp_http_listener.local_addr()?;
    let zipkin_addr = zipkin_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    tracing::info!(listener = "udp", addr = %udp_addr, "listening");
    tracing::info!(listener = "otlp-grpc", addr = %grpc_addr, "listening");
    tracing::info!(listener = "otlp-http", addr = %otlp_http_addr, "listening");
    tracing::info!(listener = "zipkin", addr = %zipkin_addr, "listening");
    tracing::info!(listener = "http", addr = %http_addr, "listening");

    let limits = Limits::default();
    let udp_receiver = udp::start(udp_socket, ingest.clone(), limits.clone())?;
    let otlp = OtlpReceiver::new(ingest.clone(), limits.clone(), config.max_request_bytes);
    let zipkin = ZipkinReceiver::new(ingest.clone(), limits.clone(), config.max_request_bytes);
    let upload = phosphor_collector::upload::Upload::new(ingest.clone(), limits);

    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(false));
    let ops = Ops {
        registry: Arc::new(registry),
        ready: ready.clone(),
    };
    let query = QueryService::new(store.clone());
    let app = Router::new()
        .merge(phosphor_query::routes(query.clone()))
        .merge(upload.router(config.max_request_bytes))
        .merge(phosphor_web::router(query))
        .merge(
            Router::new()
                .route("/metrics", get(metrics_text))
                .route("/healthz", get(healthz))
                .route("/readyz", get(readyz))
                .with_state(ops),
        );

    let mut servers = tokio::task::JoinSet::new();
    servers.spawn({
        let s = shutdown_signal(&stop_rx);
        let otlp = otlp.clone();
        async move {
            phosphor_collector::serve_otlp_grpc(grpc_listener, otlp, s)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    servers.spawn({
        let s = shutdown_signal(&stop_rx);
        async move {
            phosphor_collector::serve_http(otlp_http_listener, otlp.http_router(), s)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    servers.spawn({
        let s = shutdown_signal(&stop_rx);
        async move {
            phosphor_collector::serve_http(zipkin_listener, zipkin.router(), s)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    servers.spawn({
        let s = shutdown_signal(&stop_rx);
        async move {
            phosphor_collector::serve_http(http_listener, app, s)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    ready.store(true, Ordering::Release);

    let host = match http_addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let ui = format!("http://{host}:{}/", http_addr.port());
    tracing::info!(url = %ui, "phosphor is ready");
    println!("phosphor UI: {ui}");

    // Retention: expired partitions are dropped once a minute.
    let expiry = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.expire()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(partitions = n, "retention dropped old data"),
                    Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                    Err(e) => tracing::error!(error = %e, "retention task failed"),
                }
            }
        })
    };

    let demo = config.demo.then(|| {
        tokio::spawn(crate::demo::run(crate::demo::Target {
            udp_addr,
            otlp_grpc_addr: grpc_addr,
            rate: 2.0,
            count: 0,
        }))
    });

    tokio::select! {
        _ = wait_for_signal() => tracing::info!("shutting down"),
        Some(res) = servers.join_next() => {
            tracing::error!(result = ?res.map(|r| r.map_err(|e| e.to_string())), "a server stopped");
        }
    }
    if let Some(d) = demo {
        d.abort();
    }
    expiry.abort();
    let _ = stop_tx.send(true);
    let drain = async { while servers.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("servers did not stop within 10s");
    }
    // Nothing is taken after this; everything already queued is written.
    tokio::task::spawn_blocking(move || {
        udp_receiver.stop();
        ingest.close();
        writer.join();
        store.flush()
    })
    .await??;
    tracing::info!("stopped; queue flushed");
    Ok(())
}

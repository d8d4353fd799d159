//! A real `phosphor serve` process on ephemeral ports, for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server and the addresses it bound.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub udp: SocketAddr,
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub zipkin: SocketAddr,
    pub data_dir: PathBuf,
    log: mpsc::Receiver<String>,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    let rest = rest.trim_start_matches('"');
    let end = rest.find(['"', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

impl Server {
    /// Starts `phosphor serve` on 127.0.0.1 port 0 for every listener, and
    /// waits until it reports ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_phosphor"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--udp-addr",
                "127.0.0.1:0",
                "--otlp-grpc-addr",
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
                "--zipkin-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("PHOSPHOR_LOG", "info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start phosphor");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[phosphor] {line}");
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                }
            }
        });
        let mut addrs = std::collections::HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("phosphor did not report ready within 60s");
            if line.contains("listening") {
                let name = field(&line, "listener")
                    .expect("listener field")
                    .to_string();
                let addr: SocketAddr = field(&line, "addr").expect("addr field").parse().unwrap();
                addrs.insert(name, addr);
            }
            if line.contains("phosphor is ready") {
                break;
            }
        }
        Server {
            child,
            http: addrs["http"],
            udp: addrs["udp"],
            grpc: addrs["otlp-grpc"],
            otlp_http: addrs["otlp-http"],
            zipkin: addrs["zipkin"],
            data_dir: data_dir.to_path_buf(),
            log: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// SIGTERM, then waits for a clean exit; returns the log lines seen since
    /// start-up.
    pub fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "phosphor exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "phosphor did not stop within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log.try_iter().collect()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// GET a JSON document; returns the status and body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = reqwest::get(self.url(path)).await.expect("GET");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, body)
    }

    /// Polls a trace until it has `spans` spans (UDP is asynchronous).
    pub async fn wait_trace(&self, id: &str, spans: usize) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get_json(&format!("/api/v1/traces/{id}")).await;
            if status == 200 && body["spans"].as_array().map(Vec::len) == Some(spans) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "trace {id} did not reach {spans} spans: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET a page as text.
    pub async fn get_text(&self, path: &str) -> String {
        reqwest::get(self.url(path))
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }

    /// The value of a metric sample line, e.g.
    /// `phosphor_collector_malformed_requests_total{protocol="udp"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.get_text("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A span of an API trace by name; panics when absent.
pub fn span<'a>(trace: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {trace}"))
}

/// The name of a span's parent node.
pub fn parent_name<'a>(trace: &'a serde_json::Value, s: &serde_json::Value) -> Option<&'a str> {
    let idx = s["parentIndex"].as_u64()? as usize;
    trace["spans"][idx]["name"].as_str()
}

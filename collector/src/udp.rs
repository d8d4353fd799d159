//! The phosphor annotation receiver (UDP).
//!
//! A dedicated thread reads datagrams from a bound socket, decodes them and
//! hands batches to the ingest queue. It never blocks a sender: what the
//! queue cannot take is dropped and counted, and so is every datagram that
//! cannot be decoded.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use phosphor_store::model::Protocol;

use crate::decode::{self, Limits};
use crate::metrics::Metrics;
use crate::pipeline::Ingest;

/// Largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_536;
/// Fragments gathered before a batch goes to the queue.
const BATCH_FRAGMENTS: usize = 1_024;
/// Longest a fragment waits in the receiver before its batch is sent.
const BATCH_DELAY: Duration = Duration::from_millis(5);

/// Binds a UDP socket with a large receive buffer (bursts are absorbed by
/// the kernel rather than dropped).
pub fn bind(addr: std::net::SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    // The kernel may cap the size (net.core.rmem_max); a smaller buffer is
    // not an error.
    let _ = socket.set_recv_buffer_size(recv_buffer);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A running UDP receiver.
#[derive(Debug)]
pub struct UdpReceiver {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl UdpReceiver {
    /// Stops reading, hands what was gathered to the queue, and waits.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.handle.join();
    }
}

/// Starts receiving on a bound socket.
pub fn start(socket: UdpSocket, ingest: Ingest, limits: Limits) -> std::io::Result<UdpReceiver> {
    socket.set_read_timeout(Some(BATCH_DELAY))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("phosphor-udp".into())
        .spawn(move || run(&socket, &ingest, &limits, &flag))?;
    Ok(UdpReceiver { stop, handle })
}

fn run(socket: &UdpSocket, ingest: &Ingest, limits: &Limits, stop: &AtomicBool) {
    let metrics: &Metrics = ingest.metrics();
    let label = Metrics::label(Protocol::PhosphorUdp);
    let received = metrics.received.get_or_create(&label).clone();
    let malformed = metrics.malformed.get_or_create(&label).clone();
    let rejected = metrics.rejected.get_or_create(&label).clone();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut pending = Vec::with_capacity(BATCH_FRAGMENTS);
    let mut oldest = Instant::now();
    let flush = |pending: &mut Vec<_>| {
        if !pending.is_empty() {
            // A refusal is counted as dropped by `submit`.
            let _ = ingest.submit(Protocol::PhosphorUdp, std::mem::take(pending));
        }
    };
    loop {
        let stopping = stop.load(Ordering::Acquire);
        match socket.recv_from(&mut buf) {
            Ok((n, _peer)) => {
                metrics.udp_datagrams.inc();
                match decode::datagram(&buf[..n], limits) {
                    Ok(r) => {
                        received.inc_by(r.fragments.len() as u64 + r.bad_annotations);
                        rejected.inc_by(r.bad_annotations);
                        if pending.is_empty() {
                            oldest = Instant::now();
                        }
                        pending.extend(r.fragments);
                    }
                    Err(e) => {
                        malformed.inc();
                        tracing::debug!(error = %e, bytes = n, "malformed datagram dropped");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::warn!(error = %e, "udp receive failed");
                std::thread::sleep(BATCH_DELAY);
            }
        }
        if pending.len() >= BATCH_FRAGMENTS || oldest.elapsed() >= BATCH_DELAY {
            flush(&mut pending);
        }
        if stopping {
            flush(&mut pending);
            return;
        }
    }
}

//! `phosphor bench sink`: the reference for UDP, a minimal receive loop.
//!
//! It binds a UDP socket with the receive buffer phosphor uses (16 MiB,
//! capped by `net.core.rmem_max`) and counts what one plain `recv` loop
//! reads: no decoding, no queue, no store. Send the same traffic to it and
//! to phosphor (`phosphor bench ingest --protocol udp-batch --udp-addr`),
//! and phosphor's received count over the sink's is the fraction of what
//! this machine's loopback delivers that phosphor takes in.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Result;

/// The receive buffer phosphor's UDP listener asks for.
pub const RECV_BUFFER: usize = 16 << 20;

/// What the sink read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkReport {
    pub addr: SocketAddr,
    /// From the first datagram to the last.
    pub seconds: f64,
    pub datagrams: u64,
    pub bytes: u64,
    pub datagrams_per_second: f64,
}

impl SinkReport {
    pub fn text(&self) -> String {
        format!(
            "phosphor bench sink: a plain recv loop on {}\n  read {} datagrams ({} bytes) in {:.2}s: {:.0} datagrams/s\n",
            self.addr, self.datagrams, self.bytes, self.seconds, self.datagrams_per_second
        )
    }
}

/// Binds `addr` and counts datagrams until `idle` passes without one
/// (after the first), or `limit` passes in all.
pub fn run(addr: SocketAddr, idle: Duration, limit: Duration) -> Result<SinkReport> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    let bound = socket.local_addr()?;
    eprintln!("phosphor bench sink: listening on {bound}");
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; 65_536];
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                datagrams += 1;
                bytes += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if first.is_some_and(|_| last.elapsed() >= idle) {
                    break;
                }
            }
            Err(e) => return Err(e.into()),
        }
        if started.elapsed() >= limit {
            break;
        }
    }
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    Ok(SinkReport {
        addr: bound,
        seconds,
        datagrams,
        bytes,
        datagrams_per_second: if seconds > 0.0 {
            datagrams as f64 / seconds
        } else {
            0.0
        },
    })
}

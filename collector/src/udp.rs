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
/// Datagrams read by one `recvmmsg` call.
const READ_MANY: usize = 32;
/// Fragments gathered before a batch goes to the queue.
const BATCH_FRAGMENTS: usize = 1_024;
/// Longest a fragment waits in the receiver before its batch is sent.
const BATCH_DELAY: Duration = Duration::from_millis(5);

/// Binds a UDP socket with a large receive buffer (bursts are absorbed by
/// the kernel rather than dropped).
pub fn bind(addr: std::net::SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    // The kernel caps the size at net.core.rmem_max (often 4 MiB) unless the
    // process may go past it (CAP_NET_ADMIN); a smaller buffer is not an
    // error. The buffer is kernel memory: it does not count against the
    // server's own.
    if !force_recv_buffer(&socket, recv_buffer) {
        let _ = socket.set_recv_buffer_size(recv_buffer);
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Sets the receive buffer past net.core.rmem_max where the process is
/// allowed to (SO_RCVBUFFORCE); `false` where it is not.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // SO_RCVBUFFORCE has no wrapper in socket2 or std.
fn force_recv_buffer(socket: &socket2::Socket, bytes: usize) -> bool {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, and a pointer to a c_int that lives
    // through the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn force_recv_buffer(_: &socket2::Socket, _: usize) -> bool {
    false
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

/// Datagrams read together, waiting to be decoded.
struct Packet {
    data: Vec<u8>,
    lens: Vec<usize>,
}

/// Longest the decoder waits for room in a full ingest queue before it
/// drops a batch.
const QUEUE_PATIENCE: Duration = Duration::from_millis(250);

/// Read batches waiting for the decoder; when it falls behind, the reader
/// waits and the kernel's receive buffer takes the burst.
const DECODE_QUEUE: usize = 64;

/// Reads datagrams and hands them to a decoder thread, so that reading
/// never waits for decoding.
fn run(socket: &UdpSocket, ingest: &Ingest, limits: &Limits, stop: &AtomicBool) {
    let metrics: &Metrics = ingest.metrics();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Packet>(DECODE_QUEUE);
    let decoder = {
        let (ingest, limits) = (ingest.clone(), limits.clone());
        std::thread::Builder::new()
            .name("phosphor-udp-decode".into())
            .spawn(move || decode_loop(&rx, &ingest, &limits))
            .expect("spawn udp decoder")
    };
    let mut reader = Reader::new();
    while !stop.load(Ordering::Acquire) {
        match reader.read(socket) {
            Ok(n) => {
                metrics.udp_datagrams.inc_by(n as u64);
                let mut packet = Packet {
                    data: Vec::with_capacity(reader.lens[..n].iter().sum()),
                    lens: reader.lens[..n].to_vec(),
                };
                for d in reader.datagrams(n) {
                    packet.data.extend_from_slice(d);
                }
                if tx.send(packet).is_err() {
                    break;
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
    }
    drop(tx);
    let _ = decoder.join();
}

/// Decodes read datagrams into batches for the ingest queue; hands what it
/// gathered over once the reader stops.
fn decode_loop(rx: &std::sync::mpsc::Receiver<Packet>, ingest: &Ingest, limits: &Limits) {
    let metrics: &Metrics = ingest.metrics();
    let label = Metrics::label(Protocol::PhosphorUdp);
    let received = metrics.received.get_or_create(&label).clone();
    let malformed = metrics.malformed.get_or_create(&label).clone();
    let rejected = metrics.rejected.get_or_create(&label).clone();
    let mut pending = Vec::with_capacity(BATCH_FRAGMENTS);
    let mut oldest = Instant::now();
    let flush = |pending: &mut Vec<_>| {
        if !pending.is_empty() {
            // While the queue is full (a write stall), wait a little: the
            // reader and the kernel's receive buffer hold the datagrams
            // meanwhile. What still does not fit is dropped and counted by
            // `submit`.
            let waited = Instant::now();
            while !ingest.has_room(pending.len()) && waited.elapsed() < QUEUE_PATIENCE {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = ingest.submit(Protocol::PhosphorUdp, std::mem::take(pending));
        }
    };
    loop {
        match rx.recv_timeout(BATCH_DELAY) {
            Ok(packet) => {
                let mut at = 0;
                for &len in &packet.lens {
                    let datagram = &packet.data[at..at + len];
                    at += len;
                    match decode::datagram(datagram, limits) {
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
                            tracing::debug!(error = %e, bytes = len, "malformed datagram dropped");
                        }
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                flush(&mut pending);
                return;
            }
        }
        if pending.len() >= BATCH_FRAGMENTS || oldest.elapsed() >= BATCH_DELAY {
            flush(&mut pending);
        }
    }
}

/// Reads several datagrams per system call where the platform can
/// (`recvmmsg` on Linux), one otherwise.
struct Reader {
    buf: Vec<u8>,
    lens: [usize; READ_MANY],
}

impl Reader {
    fn new() -> Reader {
        Reader {
            buf: vec![0u8; MAX_DATAGRAM * READ_MANY],
            lens: [0; READ_MANY],
        }
    }

    /// Waits (up to the socket's read timeout) for at least one datagram
    /// and takes those already queued behind it; returns how many.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // recvmmsg has no safe wrapper in socket2 or std.
    fn read(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: every iovec points into `self.buf` at a distinct
        // MAX_DATAGRAM-sized slot, and the arrays outlive the call.
        unsafe {
            let mut iov: [libc::iovec; READ_MANY] = std::mem::zeroed();
            let mut msgs: [libc::mmsghdr; READ_MANY] = std::mem::zeroed();
            for (i, (v, m)) in iov.iter_mut().zip(msgs.iter_mut()).enumerate() {
                v.iov_base = self.buf.as_mut_ptr().add(i * MAX_DATAGRAM).cast();
                v.iov_len = MAX_DATAGRAM;
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            let n = libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                READ_MANY as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            );
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = n as usize;
            for (len, m) in self.lens.iter_mut().zip(&msgs[..n]) {
                *len = m.msg_len as usize;
            }
            Ok(n)
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn read(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        let (n, _) = socket.recv_from(&mut self.buf[..MAX_DATAGRAM])?;
        self.lens[0] = n;
        Ok(1)
    }

    /// The first `n` datagrams read.
    fn datagrams(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        self.lens[..n]
            .iter()
            .enumerate()
            .map(|(i, &len)| &self.buf[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len])
    }
}

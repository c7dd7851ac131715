//! A sandbox's sockets at 127.0.0.11:53 (UDP and TCP), opened inside its netns
//! on a short-lived thread and served from the tokio runtime. They stay open
//! while records change: an update touches the table, never the sockets.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use socket2::{Domain, Socket, Type};
use std::os::fd::AsRawFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

use super::answer::{answer, failure, Reply};
use super::batch::{Batch, SLOTS};
use super::Shared;
use crate::error::{Error, Result};

/// Docker's resolver address inside every sandbox.
pub const RESOLVER_ADDR: &str = "127.0.0.11:53";
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The upstream servers of one sandbox; replaced in place.
pub type Upstreams = Arc<RwLock<Vec<SocketAddr>>>;

/// One sandbox's serving tasks; dropping it closes its sockets.
pub struct Listener {
    pub netns: String,
    pub upstreams: Upstreams,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn bind(addr: SocketAddr, kind: Type) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, kind, None)?;
    s.set_cloexec(true)?;
    s.set_nonblocking(true)?;
    s.set_reuse_address(true)?;
    // lo may come up after us: bind the address before it is configured
    s.set_freebind_v4(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Opens the sockets in `netns` and starts serving them for `sandbox`.
pub async fn open(
    shared: Arc<Shared>,
    sandbox: String,
    netns: String,
    upstreams: Upstreams,
) -> Result<Listener> {
    let name = netns.clone();
    let (udp, tcp) = crate::netns::on_thread(Some(&netns), move || {
        let addr: SocketAddr = RESOLVER_ADDR
            .parse()
            .map_err(|_| Error::invalid("resolver address"))?;
        let ctx = || format!("bind {RESOLVER_ADDR} in netns {name}");
        let udp =
            bind(addr, Type::DGRAM).map_err(|e| Error::from_io(&e, ctx()).netns(Some(&name)))?;
        let tcp =
            bind(addr, Type::STREAM).map_err(|e| Error::from_io(&e, ctx()).netns(Some(&name)))?;
        tcp.listen(1024)
            .map_err(|e| Error::from_io(&e, ctx()).netns(Some(&name)))?;
        Ok((StdUdpSocket::from(udp), StdTcpListener::from(tcp)))
    })
    .await?;
    let wrap =
        |e: io::Error| Error::from_io(&e, format_args!("serve {RESOLVER_ADDR} in netns {netns}"));
    let udp = Arc::new(UdpSocket::from_std(udp).map_err(wrap)?);
    let tcp = TcpListener::from_std(tcp).map_err(wrap)?;
    let sb: Arc<str> = sandbox.into();
    let tasks = vec![
        tokio::spawn(serve_udp(
            shared.clone(),
            sb.clone(),
            udp,
            upstreams.clone(),
        )),
        tokio::spawn(serve_tcp(shared, sb, tcp, upstreams.clone())),
    ];
    Ok(Listener {
        netns,
        upstreams,
        tasks,
    })
}

fn servers(upstreams: &Upstreams) -> Vec<SocketAddr> {
    upstreams.read().map(|u| u.clone()).unwrap_or_default()
}

/// What a query gets: a local answer, or the upstream's (SERVFAIL when none
/// answered, NXDOMAIN when there is none to ask).
async fn resolve(
    shared: &Shared,
    sb: &str,
    query: &[u8],
    udp: bool,
    upstreams: &Upstreams,
) -> Option<Vec<u8>> {
    shared.stats.queries.fetch_add(1, Ordering::Relaxed);
    let reply = {
        let turn = shared.turn.fetch_add(1, Ordering::Relaxed);
        let records = shared.records.read().ok()?;
        answer(&records, sb, query, udp, turn)
    };
    match reply {
        Reply::Local(b) => Some(b),
        Reply::Drop => None,
        Reply::Forward => forward(shared, query, udp, upstreams).await,
    }
}

/// The upstream servers' answer to a query that is not ours: SERVFAIL when none
/// answered, NXDOMAIN when there is none to ask.
async fn forward(
    shared: &Shared,
    query: &[u8],
    udp: bool,
    upstreams: &Upstreams,
) -> Option<Vec<u8>> {
    let list = servers(upstreams);
    if list.is_empty() {
        return failure(query, ResponseCode::NXDomain);
    }
    shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    match shared.forwarder.forward(query, &list, !udp).await {
        Some(b) => Some(b),
        None => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            failure(query, ResponseCode::ServFail)
        }
    }
}

async fn serve_udp(
    shared: Arc<Shared>,
    sb: Arc<str>,
    socket: Arc<UdpSocket>,
    upstreams: Upstreams,
) {
    let fd = socket.as_raw_fd();
    let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        // a batch only while there is work: an idle sandbox holds no buffers
        let mut batch = Batch::take();
        let n = match socket.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(n) => n,
            // WouldBlock (readiness was stale), or an ICMP error of an earlier answer: the socket is fine
            Err(_) => {
                batch.give_back();
                continue;
            }
        };
        out.clear();
        {
            let Ok(records) = shared.records.read() else {
                return;
            };
            for i in 0..n {
                let turn = shared.turn.fetch_add(1, Ordering::Relaxed);
                match answer(&records, &sb, batch.query(i), true, turn) {
                    Reply::Local(b) => out.push((i, b)),
                    Reply::Drop => {}
                    Reply::Forward => {
                        let Some(peer) = batch.peer(i) else { continue };
                        shared.stats.queries.fetch_add(1, Ordering::Relaxed);
                        let (shared, socket, upstreams) =
                            (shared.clone(), socket.clone(), upstreams.clone());
                        let query = batch.query(i).to_vec();
                        // answered already: not ours, so straight to the upstream servers
                        tokio::spawn(async move {
                            if let Some(b) = forward(&shared, &query, true, &upstreams).await {
                                let _ = socket.send_to(&b, peer).await;
                            }
                        });
                    }
                }
            }
        }
        shared
            .stats
            .queries
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        let mut sent = 0;
        while sent < out.len() {
            match socket.try_io(Interest::WRITABLE, || batch.send(fd, &out[sent..])) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if socket.writable().await.is_err() {
                        return;
                    }
                }
                // that asker is unreachable: the others still get theirs
                Err(_) => sent += 1,
            }
        }
        batch.give_back();
        // the answers' list keeps a batch's worth of capacity at most
        out.clear();
        out.shrink_to(SLOTS);
    }
}

async fn serve_tcp(shared: Arc<Shared>, sb: Arc<str>, listener: TcpListener, upstreams: Upstreams) {
    // connections die with the listener: the set is dropped (and its tasks aborted) with this task
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        conns.spawn(serve_conn(
            shared.clone(),
            sb.clone(),
            stream,
            upstreams.clone(),
        ));
    }
}

async fn serve_conn(
    shared: Arc<Shared>,
    sb: Arc<str>,
    mut stream: TcpStream,
    upstreams: Upstreams,
) {
    loop {
        let Ok(Ok(n)) = timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut query = vec![0; usize::from(n)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(b) = resolve(&shared, &sb, &query, false, &upstreams).await else {
            continue;
        };
        let Ok(len) = u16::try_from(b.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(b.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&b);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

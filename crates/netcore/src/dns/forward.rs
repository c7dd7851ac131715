//! Forwarding to the upstream servers, from the host's network side: the
//! sockets are made in the host netns (by a thread of ours that entered it and
//! only makes sockets), so a sandbox on an internal network still gets answers
//! while its own traffic cannot leave. UDP goes through one socket per family,
//! answers matched back by a transaction id of ours; TCP (a TCP client, or an
//! answer too long for UDP) opens one connection per query.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream as StdTcpStream, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::error::{Error, Result};

/// How long one upstream server has to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Kind {
    Udp,
    Tcp,
}

type MakeRequest = (Kind, bool, oneshot::Sender<io::Result<Socket>>);

/// Makes sockets in the host netns: directly for the process's own netns, else
/// on one thread of ours that entered it and does nothing else.
struct HostSockets {
    tx: Option<Mutex<mpsc::Sender<MakeRequest>>>,
}

fn make(kind: Kind, v6: bool) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = match kind {
        Kind::Udp => Socket::new(domain, Type::DGRAM, None)?,
        Kind::Tcp => Socket::new(domain, Type::STREAM, None)?,
    };
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    Ok(s)
}

impl HostSockets {
    async fn new(netns: Option<String>) -> Result<Self> {
        let Some(name) = netns else {
            return Ok(Self { tx: None });
        };
        let (tx, rx) = mpsc::channel::<MakeRequest>();
        let (entered_tx, entered) = oneshot::channel();
        let target = name.clone();
        std::thread::Builder::new()
            .name("cnm-dns-host".into())
            .spawn(move || {
                let ok = crate::netns::enter_own_thread(&target);
                let failed = ok.is_err();
                let _ = entered_tx.send(ok);
                if failed {
                    return;
                }
                for (kind, v6, reply) in rx.iter() {
                    // the asker may have timed out and gone: nobody to tell
                    let _ = reply.send(make(kind, v6));
                }
            })
            .map_err(|e| {
                Error::from_io(
                    &e,
                    format_args!("spawn the DNS forwarding thread for netns {name}"),
                )
            })?;
        entered.await.map_err(|_| {
            Error::new(
                crate::error::ErrorCode::Io,
                format!("the DNS forwarding thread for netns {name} ended"),
            )
        })??;
        Ok(Self {
            tx: Some(Mutex::new(tx)),
        })
    }

    async fn socket(&self, kind: Kind, v6: bool) -> io::Result<Socket> {
        let Some(tx) = &self.tx else {
            return make(kind, v6);
        };
        let (reply, rx) = oneshot::channel();
        tx.lock()
            .map_err(|_| io::Error::other("DNS forwarding thread lock poisoned"))?
            .send((kind, v6, reply))
            .map_err(|_| io::Error::other("the DNS forwarding thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("the DNS forwarding thread dropped a request"))?
    }
}

/// Queries waiting for an upstream answer, by the id we gave them.
#[derive(Default)]
struct Pending {
    next: u16,
    waiting: HashMap<u16, (SocketAddr, oneshot::Sender<Vec<u8>>)>,
}

struct UdpSide {
    socket: Arc<UdpSocket>,
    pending: Arc<Mutex<Pending>>,
    reader: JoinHandle<()>,
}

pub struct Forwarder {
    host: HostSockets,
    v4: Option<UdpSide>,
    v6: Option<UdpSide>,
    closed: AtomicBool,
}

impl Forwarder {
    /// Sockets in the host netns (`None`: the process's own).
    pub async fn start(host_netns: Option<String>) -> Result<Self> {
        let host = HostSockets::new(host_netns.clone()).await?;
        let side = |v6: bool| {
            let host = &host;
            async move {
                let s = host.socket(Kind::Udp, v6).await?;
                let any: SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }
                    .parse()
                    .map_err(io::Error::other)?;
                s.bind(&any.into())?;
                let std: StdUdpSocket = s.into();
                let socket = Arc::new(UdpSocket::from_std(std)?);
                let pending = Arc::new(Mutex::new(Pending::default()));
                let reader = tokio::spawn(read_answers(socket.clone(), pending.clone()));
                io::Result::Ok(UdpSide {
                    socket,
                    pending,
                    reader,
                })
            }
        };
        let v4 = side(false).await.map_err(|e| {
            Error::from_io(
                &e,
                format_args!(
                    "open the DNS forwarding socket in netns {}",
                    crate::error::ns_label(host_netns.as_deref())
                ),
            )
        })?;
        // a host without IPv6 forwards over IPv4 only
        let v6 = side(true).await.ok();
        Ok(Self {
            host,
            v4: Some(v4),
            v6,
            closed: AtomicBool::new(false),
        })
    }

    /// The first usable answer of `servers`, asked in turn; None when none answered.
    /// An upstream SERVFAIL or REFUSED moves on to the next server and is kept as the
    /// answer of last resort.
    pub async fn forward(
        &self,
        query: &[u8],
        servers: &[SocketAddr],
        tcp: bool,
    ) -> Option<Vec<u8>> {
        let mut last = None;
        for server in servers {
            if self.closed.load(Ordering::Relaxed) {
                return None;
            }
            let got = if tcp {
                timeout(UPSTREAM_TIMEOUT, self.tcp(query, *server))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
            } else {
                self.udp(query, *server).await
            };
            let Some(resp) = got else { continue };
            let rcode = resp.get(3).map_or(0, |b| b & 0x0f);
            if rcode == 2 || rcode == 5 {
                last = Some(resp);
                continue;
            }
            return Some(resp);
        }
        last
    }

    async fn udp(&self, query: &[u8], server: SocketAddr) -> Option<Vec<u8>> {
        let side = if server.is_ipv6() {
            self.v6.as_ref()?
        } else {
            self.v4.as_ref()?
        };
        if query.len() < 12 {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut p = side.pending.lock().ok()?;
            // ids of ours, unpredictable enough to refuse stray answers; never one in use
            let mut id = p.next ^ (rand_u16() | 1);
            while p.waiting.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            p.next = id;
            p.waiting.insert(id, (server, tx));
            id
        };
        let mut out = query.to_vec();
        out[..2].copy_from_slice(&id.to_be_bytes());
        let sent = side.socket.send_to(&out, server).await;
        let answer = match sent {
            Ok(_) => timeout(UPSTREAM_TIMEOUT, rx)
                .await
                .ok()
                .and_then(|r| r.ok()),
            Err(_) => None,
        };
        if let Ok(mut p) = side.pending.lock() {
            p.waiting.remove(&id);
        }
        let mut answer = answer?;
        answer[..2].copy_from_slice(&query[..2]);
        Some(answer)
    }

    async fn tcp(&self, query: &[u8], server: SocketAddr) -> io::Result<Vec<u8>> {
        let s = self.host.socket(Kind::Tcp, server.is_ipv6()).await?;
        let std: StdTcpStream = s.into();
        let mut stream = TcpSocket::from_std_stream(std).connect(server).await?;
        let len = u16::try_from(query.len()).map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(query.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(query);
        stream.write_all(&out).await?;
        let n = stream.read_u16().await?;
        let mut answer = vec![0; usize::from(n)];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for side in [&self.v4, &self.v6].into_iter().flatten() {
            side.reader.abort();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.close();
    }
}

/// Hands each upstream answer to the query waiting for it; answers from anyone
/// else, or for an id nobody waits for, are dropped.
async fn read_answers(socket: Arc<UdpSocket>, pending: Arc<Mutex<Pending>>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if n < 12 {
            continue;
        }
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let Ok(mut p) = pending.lock() else { return };
        if p.waiting
            .get(&id)
            .is_some_and(|(server, _)| *server == from)
        {
            if let Some((_, tx)) = p.waiting.remove(&id) {
                let _ = tx.send(buf[..n].to_vec());
            }
        }
    }
}

/// A cheap random u16 (xorshift over the clock and a counter): transaction ids only.
fn rand_u16() -> u16 {
    use std::sync::atomic::AtomicU64;
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 24) as u16
}

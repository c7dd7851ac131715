//! The rtnetlink handle of each netns: one socket made inside the netns (a
//! socket keeps the netns it was created in), driven from the tokio runtime,
//! cached until the netns is released.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::{LazyLock, Mutex, MutexGuard};

use futures::StreamExt;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::Handle;
use tokio::task::JoinHandle;

use super::{blocking, ns_id, on_thread};
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::sockopt;

/// Receive buffer of our rtnetlink sockets. Requests are pipelined: the
/// kernel answers each one inside `sendmsg`, so every reply to the requests
/// sent in one go waits in this buffer before the connection reads any; the
/// default (rmem_default, ~208 KiB) holds only a few hundred of them.
const RCVBUF: libc::c_int = 8 << 20;

pub(super) fn new_socket(netns: Option<&str>) -> Result<Socket> {
    let socket = Socket::new(NETLINK_ROUTE).map_err(|e| {
        Error::from_io(
            &e,
            format_args!("open netlink socket in netns {}", ns_label(netns)),
        )
        .netns(netns)
    })?;
    set_rcvbuf(&socket);
    Ok(socket)
}

/// SO_RCVBUFFORCE passes rmem_max (we run with CAP_NET_ADMIN); without the
/// capability SO_RCVBUF gets what rmem_max allows. Best effort either way: a
/// reply lost to a full buffer fails its request instead of hanging it (see
/// `install`).
fn set_rcvbuf(socket: &Socket) {
    // CNM_NETLINK_RCVBUF (bytes, plain SO_RCVBUF) lets tests make overruns happen
    match std::env::var("CNM_NETLINK_RCVBUF")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => {
            sockopt::set_int(socket, libc::SOL_SOCKET, libc::SO_RCVBUF, n);
        }
        None => sockopt::set_buffer(socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, RCVBUF),
    }
}

struct Cached {
    handle: Handle,
    task: JoinHandle<()>,
    /// (dev, ino) of the netns file when the socket was opened, to notice a
    /// netns deleted and re-created under the same name behind our back.
    id: Option<(u64, u64)>,
}

type Cache = HashMap<Option<String>, Cached>;

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn cache() -> MutexGuard<'static, Cache> {
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The cached rtnetlink handle of `netns` (None: the process netns), opening
/// a socket inside the netns on first use.
pub async fn handle(netns: Option<&str>) -> Result<Handle> {
    let id = netns.map(ns_id).transpose()?;
    let key = netns.map(str::to_string);
    if let Some(c) = cache().get(&key) {
        if c.id == id && !c.task.is_finished() {
            return Ok(c.handle.clone());
        }
    }
    let socket = match netns {
        None => new_socket(None)?,
        Some(n) => {
            let owned = n.to_string();
            on_thread(netns, move || new_socket(Some(&owned))).await?
        }
    };
    install(key, id, socket)
}

pub(super) fn install(
    key: Option<String>,
    id: Option<(u64, u64)>,
    socket: Socket,
) -> Result<Handle> {
    let netns = key.clone();
    let ctx = || {
        format!(
            "set up netlink socket in netns {}",
            ns_label(netns.as_deref())
        )
    };
    socket
        .set_non_blocking(true)
        .map_err(|e| Error::from_io(&e, ctx()))?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::new(
            ErrorCode::Io,
            format!("{}: no async runtime", ctx()),
        ));
    }
    // SAFETY: the fd comes from a socket we own and give up here.
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (mut conn, handle, mut unsolicited) = rtnetlink::from_socket(socket);
    // every request then ends with a message of its own (reply, ACK, error or
    // DONE), so a request whose stream ends without one was cut off (nl::send)
    conn.set_forward_ack(true);
    conn.set_forward_done(true);
    let task = tokio::spawn(async move {
        // a full receive buffer drops replies, and their requests would wait
        // forever: on the overrun notice the connection is dropped, so that
        // every pending request fails and the next call opens a fresh socket
        let overrun = async {
            while let Some((msg, _)) = unsolicited.next().await {
                if matches!(msg.payload, NetlinkPayload::Overrun(_)) {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        futures::future::select(std::pin::pin!(conn), std::pin::pin!(overrun)).await;
    });
    let mut cache = cache();
    if let Some(existing) = cache.get(&key) {
        if existing.id == id && !existing.task.is_finished() {
            // Another call won the race; keep its socket.
            task.abort();
            return Ok(existing.handle.clone());
        }
    }
    let out = handle.clone();
    if let Some(old) = cache.insert(key, Cached { handle, task, id }) {
        old.task.abort();
    }
    Ok(out)
}

/// Drops the cached handle of `name` and stops its connection task, closing
/// the socket that would otherwise keep the netns (and its links) alive; the
/// firewall's sockets and rule copy of that netns go with it. Resolves once
/// the socket is closed. The iptables backend's lock can be held for seconds
/// by a call in flight, so the firewall's part waits on a blocking thread,
/// never on the caller's.
pub async fn release(name: &str) -> Result<()> {
    let owned = name.to_string();
    blocking(format!("release netns {name}"), move || {
        crate::firewall::release(&owned);
        Ok(())
    })
    .await?;
    let Some(cached) = cache().remove(&Some(name.to_string())) else {
        return Ok(());
    };
    cached.task.abort();
    match cached.task.await {
        Ok(()) => Ok(()),
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(Error::new(
            ErrorCode::Io,
            format!("release netns {name}: its netlink connection failed: {e}"),
        )
        .netns(Some(name))),
    }
}

//! Named network namespaces (the `ip netns` files under /run/netns), threads
//! that enter one, and the per-netns netlink handle cache.
//!
//! No thread that anyone else owns (the Node main thread, libuv or tokio pool
//! threads) ever calls setns: work that must happen inside a netns runs on a
//! short-lived `std::thread` that enters it and exits afterwards. A netlink
//! socket keeps the netns it was created in, so the socket is made on such a
//! thread and then driven from the tokio runtime.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use futures::StreamExt;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::Handle;
use tokio::task::JoinHandle;

use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::sockopt;

pub const NETNS_DIR: &str = "/run/netns";

/// Netns names: 1..255 bytes, no '/', no NUL, not "." or "..".
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name.contains('\0')
        || name == "."
        || name == ".."
    {
        return Err(Error::invalid(format!("invalid netns name {name:?}")).netns(Some(name)));
    }
    Ok(())
}

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

fn cstring(p: &std::path::Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn mount(src: Option<&str>, target: &str, flags: libc::c_ulong) -> io::Result<()> {
    let src = src
        .map(|s| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL)))
        .transpose()?;
    let target = CString::new(target).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let src_ptr = src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a valid NUL-terminated string or null.
    check(unsafe {
        libc::mount(
            src_ptr,
            target.as_ptr(),
            c"none".as_ptr(),
            flags,
            std::ptr::null(),
        )
    })
}

static RUN_DIR_SHARED: AtomicBool = AtomicBool::new(false);

/// Like iproute2: /run/netns exists and is a shared mount point (bound on
/// itself first when it is not a mount point), so netns files propagate into
/// mount namespaces made later, e.g. by `ip netns exec`.
fn ensure_run_dir() -> io::Result<()> {
    if RUN_DIR_SHARED.load(Ordering::Relaxed) {
        return Ok(());
    }
    fs::create_dir_all(NETNS_DIR)?;
    let already = fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines().any(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                fields.get(4) == Some(&NETNS_DIR)
                    && fields
                        .iter()
                        .skip(6)
                        .take_while(|f| **f != "-")
                        .any(|f| f.starts_with("shared:"))
            })
        })
        .unwrap_or(false);
    if !already {
        let shared = libc::MS_SHARED | libc::MS_REC;
        if let Err(e) = mount(None, NETNS_DIR, shared) {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
            mount(Some(NETNS_DIR), NETNS_DIR, libc::MS_BIND | libc::MS_REC)?;
            mount(None, NETNS_DIR, shared)?;
        }
    }
    RUN_DIR_SHARED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Enters the named netns on the calling thread. Only for threads this
/// module spawned and that exit afterwards.
fn enter(name: &str) -> Result<()> {
    let file = fs::File::open(path(name)).map_err(|e| open_error(&e, name))?;
    // SAFETY: setns on a valid fd affects only the calling thread.
    check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EINVAL) => Error::new(
                ErrorCode::NetnsNotFound,
                format!("enter netns {name}: not a network namespace"),
            )
            .netns(Some(name)),
            _ => Error::from_io(&e, format_args!("enter netns {name}")).netns(Some(name)),
        }
    })
}

fn open_error(e: &io::Error, name: &str) -> Error {
    if e.raw_os_error() == Some(libc::ENOENT) {
        Error::new(ErrorCode::NetnsNotFound, format!("netns {name} not found")).netns(Some(name))
    } else {
        Error::from_io(e, format_args!("open netns {name}")).netns(Some(name))
    }
}

/// Opens /run/netns/NAME (for IFLA_NET_NS_FD).
pub fn open(name: &str) -> Result<fs::File> {
    fs::File::open(path(name)).map_err(|e| open_error(&e, name))
}

/// Runs `f` on a fresh thread that first entered `netns` (or stays in the
/// process netns for `None`), and exits when `f` returns.
pub async fn on_thread<T, F>(netns: Option<&str>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let name = netns.map(str::to_string);
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .name("cnm-netns".into())
        .spawn(move || {
            let result = match &name {
                Some(n) => enter(n).and_then(|()| f()),
                None => f(),
            };
            // the receiver is gone only when the caller was dropped: nobody
            // is left to tell
            let _ = tx.send(result);
        })
        .map_err(|e| Error::from_io(&e, thread_context("spawn", netns)))?;
    rx.await.map_err(|_| {
        Error::new(
            ErrorCode::Io,
            thread_context("ended without a result:", netns),
        )
        .netns(netns)
    })?
}

/// What a thread that enters `netns` did, for messages.
fn thread_context(what: &str, netns: Option<&str>) -> String {
    format!("{what} the thread that enters netns {}", ns_label(netns))
}

/// The blocking form of [`on_thread`], for code already running on a
/// blocking pool thread: spawns a thread that enters `netns`, runs `f` there
/// and exits; waits for it.
pub fn on_thread_blocking<T, F>(netns: Option<&str>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let name = netns.map(str::to_string);
    let thread = std::thread::Builder::new()
        .name("cnm-netns".into())
        .spawn(move || match &name {
            Some(n) => enter(n).and_then(|()| f()),
            None => f(),
        })
        .map_err(|e| Error::from_io(&e, thread_context("spawn", netns)))?;
    thread
        .join()
        .map_err(|_| Error::new(ErrorCode::Io, thread_context("panic in", netns)).netns(netns))?
}

/// Receive buffer of our rtnetlink sockets. Requests are pipelined: the
/// kernel answers each one inside `sendmsg`, so every reply to the requests
/// sent in one go waits in this buffer before the connection reads any; the
/// default (rmem_default, ~208 KiB) holds only a few hundred of them.
const RCVBUF: libc::c_int = 8 << 20;

fn new_socket(netns: Option<&str>) -> Result<Socket> {
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

pub(crate) fn ns_id(name: &str) -> Result<(u64, u64)> {
    let meta = fs::metadata(path(name)).map_err(|e| open_error(&e, name))?;
    Ok((meta.dev(), meta.ino()))
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

fn install(key: Option<String>, id: Option<(u64, u64)>, socket: Socket) -> Result<Handle> {
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

/// `ip netns add NAME`, plus `lo` up inside.
pub async fn create(name: &str) -> Result<()> {
    validate_name(name).map_err(|e| e.context("create netns"))?;
    release(name).await?;
    let owned = name.to_string();
    let socket = on_thread(None, move || create_on_this_thread(&owned)).await?;
    let id = ns_id(name)?;
    let result = async {
        let handle = install(Some(name.to_string()), Some(id), socket)?;
        crate::fault::point("netcore.netns.created")?;
        crate::link::set_up(&handle, Some(name), 1, "lo").await
    }
    .await;
    if let Err(e) = result {
        return Err(e.with_undo(delete(name).await));
    }
    Ok(())
}

/// Runs on a dedicated thread: the unshare stays with the thread, which
/// exits right after.
/// Creates the empty file /run/netns/NAME that a netns is bind-mounted on;
/// ERR_NETNS_EXISTS when the name is taken.
fn mount_point(name: &str) -> Result<PathBuf> {
    let ctx = |what: &str| format!("{what} for netns {name}");
    ensure_run_dir().map_err(|e| Error::from_io(&e, ctx("prepare /run/netns")))?;
    let file = path(name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&file)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => Error::new(
                ErrorCode::NetnsExists,
                format!("netns {name} already exists"),
            )
            .netns(Some(name)),
            _ => Error::from_io(&e, ctx("create file")).netns(Some(name)),
        })?;
    Ok(file)
}

fn create_on_this_thread(name: &str) -> Result<Socket> {
    let ctx = |what: &str| format!("{what} for netns {name}");
    let file = mount_point(name)?;
    let made = (|| {
        // SAFETY: unshare affects only the calling (dedicated) thread.
        check(unsafe { libc::unshare(libc::CLONE_NEWNET) })
            .map_err(|e| Error::from_io(&e, ctx("unshare")))?;
        let target = file.to_string_lossy().into_owned();
        mount(Some("/proc/thread-self/ns/net"), &target, libc::MS_BIND)
            .map_err(|e| Error::from_io(&e, ctx("bind mount")))?;
        new_socket(Some(name))
    })();
    match made {
        Ok(socket) => Ok(socket),
        Err(e) => {
            let undo = remove_file(name)
                .map_err(|u| Error::from_io(&u, format_args!("remove /run/netns/{name}")));
            Err(e.netns(Some(name)).with_undo(undo))
        }
    }
}

/// `name` becomes another name for `target`'s netns (None: the process netns).
pub async fn bind(name: &str, target: Option<&str>) -> Result<()> {
    validate_name(name)
        .and_then(|()| target.map_or(Ok(()), validate_name))
        .map_err(|e| e.context(format!("bind netns {name:?} to netns {}", ns_label(target))))?;
    release(name).await?;
    let name = name.to_string();
    let target = target.map(str::to_string);
    let what = format!("bind netns {name}");
    blocking(what, move || bind_blocking(&name, target.as_deref())).await
}

fn bind_blocking(name: &str, target: Option<&str>) -> Result<()> {
    let source = match target {
        Some(t) => {
            ns_id(t)?;
            path(t).to_string_lossy().into_owned()
        }
        None => "/proc/self/ns/net".to_string(),
    };
    let file = mount_point(name)?;
    let target_path = file.to_string_lossy().into_owned();
    if let Err(e) = mount(Some(&source), &target_path, libc::MS_BIND) {
        let undo = fs::remove_file(&file)
            .map_err(|u| Error::from_io(&u, format_args!("remove {}", file.display())));
        return Err(
            Error::from_io(&e, format_args!("bind netns {name} to {source}"))
                .netns(Some(name))
                .with_undo(undo),
        );
    }
    Ok(())
}

/// Runs blocking work (spawned programs, netfilter sockets, waiting on a
/// lock) off the async workers; `what` names it for messages.
pub(crate) async fn blocking<T, F>(what: impl std::fmt::Display, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::new(
            ErrorCode::Io,
            format!("{what}: the worker thread failed: {e}"),
        )
    })?
}

/// umount (detached) and unlink; Ok(false) when there was no such file.
fn remove_file(name: &str) -> io::Result<bool> {
    let file = path(name);
    let c = cstring(&file)?;
    // SAFETY: c is a valid NUL-terminated path.
    if let Err(e) = check(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }) {
        match e.raw_os_error() {
            Some(libc::ENOENT) => return Ok(false),
            Some(libc::EINVAL) => {} // not a mount point: a stale file
            _ => return Err(e),
        }
    }
    match fs::remove_file(&file) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `ip netns delete NAME`; false when it did not exist.
pub async fn delete(name: &str) -> Result<bool> {
    validate_name(name).map_err(|e| e.context("delete netns"))?;
    release(name).await?;
    let owned = name.to_string();
    blocking(format!("delete netns {name}"), move || {
        remove_file(&owned).map_err(|e| {
            Error::from_io(&e, format_args!("delete netns {owned}")).netns(Some(&owned))
        })
    })
    .await
}

/// Deletes many, several in flight (each unmount waits for a grace period).
/// Every name is attempted; failures are reported together.
pub async fn delete_many(names: &[String]) -> Result<u32> {
    for n in names {
        validate_name(n).map_err(|e| e.context("delete netns"))?;
    }
    let results: Vec<Result<bool>> = futures::stream::iter(names.iter().cloned())
        .map(|n| async move { delete(&n).await })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut deleted = 0u32;
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(true) => deleted += 1,
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(deleted),
        _ => {
            let mut first = failures[0].clone();
            let all: Vec<String> = failures.iter().map(|e| e.message.clone()).collect();
            first.message = format!(
                "deleted {deleted} of {} netns; failed: {}",
                names.len(),
                all.join("; ")
            );
            Err(first)
        }
    }
}

pub async fn list() -> Result<Vec<String>> {
    blocking("list /run/netns", || {
        let entries = match fs::read_dir(NETNS_DIR) {
            Ok(e) => e,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(Error::from_io(&e, "list /run/netns")),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    })
    .await
}

/// The cookie of `netns` (None: the process's own netns): SO_NETNS_COOKIE of
/// a socket made inside it, a 64-bit id the kernel never hands out twice
/// during a boot. Two names for one netns give one cookie.
pub async fn cookie(netns: Option<&str>) -> Result<u64> {
    if let Some(n) = netns {
        validate_name(n).map_err(|e| e.context("read the netns cookie"))?;
    }
    let label = ns_label(netns).to_string();
    let read = move || {
        let ctx = || format!("read the cookie of netns {label}");
        let socket = UnixDatagram::unbound().map_err(|e| Error::from_io(&e, ctx()))?;
        sockopt::netns_cookie(&socket).map_err(|e| Error::from_io(&e, ctx()))
    };
    match netns {
        // async workers never leave the process netns
        None => read(),
        Some(_) => on_thread(netns, read).await.map_err(|e| e.netns(netns)),
    }
}

pub async fn exists(name: &str) -> Result<bool> {
    validate_name(name).map_err(|e| e.context("look up netns"))?;
    Ok(fs::symlink_metadata(path(name)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("cnm-1").is_ok());
        assert!(validate_name(&"a".repeat(255)).is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                ErrorCode::InvalidArgument
            );
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
    }
}

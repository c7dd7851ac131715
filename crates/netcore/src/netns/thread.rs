//! Threads that enter a netns. No thread that anyone else owns (the Node
//! main thread, libuv or tokio pool threads) ever calls setns: work that must
//! happen inside a netns runs on a short-lived `std::thread` that enters it
//! and exits afterwards.

use std::fs;
use std::os::fd::AsRawFd;

use super::files::check;
use super::{open_error, path};
use crate::error::{ns_label, Error, ErrorCode, Result};

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

/// Enters the named netns on the calling thread, for a long-lived thread of
/// cnm's own that does all its work there (the resolver's socket maker); never
/// for a thread anyone else owns.
pub(crate) fn enter_own_thread(name: &str) -> Result<()> {
    enter(name)
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

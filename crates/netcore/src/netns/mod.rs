//! Named network namespaces (the `ip netns` files under /run/netns), threads
//! that enter one, and the per-netns netlink handle cache.
//!
//! No thread that anyone else owns (the Node main thread, libuv or tokio pool
//! threads) ever calls setns: work that must happen inside a netns runs on a
//! short-lived `std::thread` that enters it and exits afterwards. A netlink
//! socket keeps the netns it was created in, so the socket is made on such a
//! thread and then driven from the tokio runtime.
//!
//! `files.rs` makes and removes the /run/netns files, `thread.rs` runs work
//! on threads that entered a netns, `handle.rs` caches one rtnetlink socket
//! per netns; this file holds the calls on named netns.

mod files;
mod handle;
mod thread;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use futures::StreamExt;

use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::sockopt;
use files::{bind_blocking, create_on_this_thread, remove_file};
use handle::install;
pub use handle::{handle, release};
pub(crate) use thread::blocking;
pub(crate) use thread::enter_own_thread;
pub use thread::{on_thread, on_thread_blocking};

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

pub(crate) fn ns_id(name: &str) -> Result<(u64, u64)> {
    let meta = fs::metadata(path(name)).map_err(|e| open_error(&e, name))?;
    Ok((meta.dev(), meta.ino()))
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

/// Names a network namespace a container runtime made: /run/netns/NAME becomes
/// a bind mount of `source` (/proc/PID/ns/net, or another netns file).
pub async fn bind_path(name: &str, source: &str) -> Result<()> {
    validate_name(name).map_err(|e| e.context(format!("bind netns {name:?} to {source}")))?;
    if !source.starts_with('/') {
        return Err(
            Error::invalid(format!("netns path {source:?} must be absolute")).netns(Some(name)),
        );
    }
    release(name).await?;
    let (name, source) = (name.to_string(), source.to_string());
    let what = format!("bind netns {name} to {source}");
    blocking(what, move || files::bind_path_blocking(&name, &source)).await
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

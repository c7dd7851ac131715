//! The files of named netns: /run/netns as a shared mount point (as
//! iproute2 keeps it), the empty file a netns is bind-mounted on, and its
//! removal.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use netlink_sys::Socket;

use super::handle::new_socket;
use super::{ns_id, path, NETNS_DIR};
use crate::error::{Error, ErrorCode, Result};

fn cstring(p: &std::path::Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(super) fn check(rc: libc::c_int) -> io::Result<()> {
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

/// Runs on a dedicated thread: the unshare stays with the thread, which
/// exits right after.
pub(super) fn create_on_this_thread(name: &str) -> Result<Socket> {
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

pub(super) fn bind_blocking(name: &str, target: Option<&str>) -> Result<()> {
    let source = match target {
        Some(t) => {
            ns_id(t)?;
            path(t).to_string_lossy().into_owned()
        }
        None => "/proc/self/ns/net".to_string(),
    };
    mount_source(name, &source)
}

/// /run/netns/NAME made and bind-mounted from `source`; the file goes again on failure.
fn mount_source(name: &str, source: &str) -> Result<()> {
    let file = mount_point(name)?;
    let target_path = file.to_string_lossy().into_owned();
    if let Err(e) = mount(Some(source), &target_path, libc::MS_BIND) {
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

/// NS_GET_NSTYPE (linux/nsfs.h): the kind of namespace an nsfs file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Whether `path` is a network namespace file (/proc/PID/ns/net, a bind mount of one).
fn is_netns_file(path: &str) -> io::Result<bool> {
    let f = fs::File::open(path)?;
    // SAFETY: a valid open fd; the ioctl takes no argument.
    let kind = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), NS_GET_NSTYPE as _) };
    if kind < 0 {
        let e = io::Error::last_os_error();
        // not an nsfs file at all
        return if e.raw_os_error() == Some(libc::ENOTTY) {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(kind == libc::CLONE_NEWNET)
}

/// Bind the network namespace at `source` (a path a container runtime made, such
/// as /proc/PID/ns/net) to /run/netns/NAME.
pub(super) fn bind_path_blocking(name: &str, source: &str) -> Result<()> {
    match is_netns_file(source) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::invalid(format!("{source} is not a network namespace (expected a path such as /proc/PID/ns/net or /run/netns/NAME)")).netns(Some(name)));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Err(Error::new(
                ErrorCode::NetnsNotFound,
                format!("network namespace {source} does not exist"),
            )
            .netns(Some(name)));
        }
        Err(e) => return Err(Error::from_io(&e, format_args!("open {source}")).netns(Some(name))),
    }
    mount_source(name, source)
}

/// umount (detached) and unlink; Ok(false) when there was no such file.
pub(super) fn remove_file(name: &str) -> io::Result<bool> {
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

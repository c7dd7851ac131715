//! Raw socket plumbing shared by the rtnetlink and netfilter sockets: integer
//! socket options, buffer sizes past rmem_max/wmem_max, and a bare
//! NETLINK_NETFILTER socket.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// setsockopt(2) with an int value; false when the kernel refuses it.
pub(crate) fn set_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> bool {
    // SAFETY: a valid fd and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// A socket buffer of `size` bytes: `forced` (SO_RCVBUFFORCE/SO_SNDBUFFORCE,
/// which pass the sysctl maximum with CAP_NET_ADMIN) first, else `plain`, which
/// the kernel caps. Best effort: a smaller buffer still works, only sooner full.
pub(crate) fn set_buffer(
    fd: &impl AsRawFd,
    forced: libc::c_int,
    plain: libc::c_int,
    size: libc::c_int,
) {
    if !set_int(fd, libc::SOL_SOCKET, forced, size) {
        set_int(fd, libc::SOL_SOCKET, plain, size);
    }
}

/// A NETLINK_NETFILTER socket in the calling thread's netns.
pub(crate) fn netfilter_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

//! Raw socket plumbing shared by the rtnetlink and netfilter sockets: integer
//! socket options, buffer sizes past rmem_max/wmem_max, and the netns cookie.

use std::io;
use std::os::fd::AsRawFd;

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

#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the netns `fd` lives in (SO_NETNS_COOKIE, kernel >= 5.14): a
/// 64-bit id the kernel never hands out twice during a boot, unlike the
/// (dev, inode) of a netns file, which a new netns can reuse.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
pub(crate) fn netns_cookie(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len are valid for writes of the given size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<u64>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(cookie)
}

/// These architectures number SO_NETNS_COOKIE differently; not supported.
#[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))]
pub(crate) fn netns_cookie(_fd: &impl AsRawFd) -> io::Result<u64> {
    Err(io::Error::from_raw_os_error(libc::ENOPROTOOPT))
}

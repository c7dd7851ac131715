//! Datagrams in batches: up to `SLOTS` queries taken with one recvmmsg and
//! their answers sent with one sendmmsg, so that a busy sandbox costs one
//! system call per batch instead of two per query. The addresses stay in the
//! kernel's own form between the two calls.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::RawFd;
use std::ptr::null_mut;

/// Queries taken per system call.
pub const SLOTS: usize = 32;
/// The largest query kept; a longer datagram is cut (and then answered FORMERR or not at all).
const SLOT_BYTES: usize = 4096;

pub struct Batch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    lens: Vec<usize>,
    count: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            bufs: vec![vec![0; SLOT_BYTES]; SLOTS],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
            addrs: vec![unsafe { zeroed() }; SLOTS],
            addr_lens: vec![0; SLOTS],
            lens: vec![0; SLOTS],
            count: 0,
        }
    }
}

/// Batches not in use. A sandbox's socket takes one only while it has datagrams
/// to answer, so a thousand idle sandboxes hold none (a batch is 128 KiB).
static POOL: std::sync::Mutex<Vec<Batch>> = std::sync::Mutex::new(Vec::new());
/// Batches kept for reuse at most (more are freed).
const POOL_MAX: usize = 16;

impl Batch {
    /// A batch from the pool, or a new one.
    pub fn take() -> Batch {
        POOL.lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default()
    }

    /// Back to the pool.
    pub fn give_back(self) {
        if let Ok(mut p) = POOL.lock() {
            if p.len() < POOL_MAX {
                p.push(self);
            }
        }
    }

    /// Takes the datagrams waiting on `fd` (non-blocking): how many, or WouldBlock.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iov: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; zeroed then filled below.
        let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; SLOTS];
        for (i, h) in hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut iov[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer, an iovec and an address of this
        // batch that outlive the call; the kernel writes within the given lengths.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for (i, h) in hdrs.iter().take(self.count).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(SLOT_BYTES);
            self.addr_lens[i] = h.msg_hdr.msg_namelen;
        }
        Ok(self.count)
    }

    /// The i-th datagram taken.
    pub fn query(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// Who sent the i-th datagram.
    pub fn peer(&self, i: usize) -> Option<std::net::SocketAddr> {
        let a = &self.addrs[i];
        match i32::from(a.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel filled an AF_INET address in this storage.
                let s: &libc::sockaddr_in =
                    unsafe { &*(a as *const libc::sockaddr_storage).cast() };
                let ip = std::net::Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr));
                Some(std::net::SocketAddr::new(
                    ip.into(),
                    u16::from_be(s.sin_port),
                ))
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel filled an AF_INET6 address in this storage.
                let s: &libc::sockaddr_in6 =
                    unsafe { &*(a as *const libc::sockaddr_storage).cast() };
                let ip = std::net::Ipv6Addr::from(s.sin6_addr.s6_addr);
                Some(std::net::SocketAddr::new(
                    ip.into(),
                    u16::from_be(s.sin6_port),
                ))
            }
            _ => None,
        }
    }

    /// Sends `answers` (slot, bytes) back to their askers; how many went before
    /// the socket's buffer filled (WouldBlock when none did).
    pub fn send(&mut self, fd: RawFd, answers: &[(usize, Vec<u8>)]) -> io::Result<usize> {
        if answers.is_empty() {
            return Ok(0);
        }
        let mut iov: Vec<libc::iovec> = answers
            .iter()
            .map(|(_, b)| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; zeroed then filled below.
        let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; answers.len()];
        for (i, (h, (slot, _))) in hdrs.iter_mut().zip(answers).enumerate() {
            h.msg_hdr.msg_name = (&mut self.addrs[*slot] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = self.addr_lens[*slot];
            h.msg_hdr.msg_iov = &mut iov[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at an answer, an iovec and an address that
        // outlive the call; the kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

//! Netfilter netlink (nfnetlink), shared by both firewall backends: the
//! NETLINK_NETFILTER socket opened inside a netns, the writer that lays
//! messages back to back in one buffer, and the exchange (send once, read
//! every reply) with its acknowledgement rules.
//!
//! The kernel handles a netfilter request inside `sendmsg`, so every reply is
//! queued by the time the send returns: the receive loop reads without
//! waiting and stops at the answer to the last request, or when the queue is
//! empty. A reply lost to a full receive buffer surfaces as ENOBUFS on the
//! next read, never as a silent gap.

use std::io;
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{ns_label, Error, Result};
use crate::sockopt;

// linux/netlink.h, linux/netfilter/nfnetlink.h
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const SOL_NETLINK: libc::c_int = 270;
/// Error replies carry only the failed message's header, not its payload.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// The size of nlmsghdr.
const NLMSG_HDRLEN: usize = 16;

/// The message type of nf_tables message `msg`.
pub fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds netlink messages back to back in one buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a message: nlmsghdr + nfgenmsg. Returns its offset for `end`.
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by end()
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    pub fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// A u32 in network order, as nf_tables attributes carry them.
    pub fn attr_be32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(ty, &data);
    }

    /// Starts a nested attribute. Returns its offset for `nest_end`.
    pub fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub fn nest_end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Asks for an acknowledgement of the message that starts at `start`.
    pub fn request_ack(&mut self, start: usize) {
        let at = start + 6;
        let flags = u16::from_ne_bytes([self.buf[at], self.buf[at + 1]]) | NLM_F_ACK;
        self.buf[at..at + 2].copy_from_slice(&flags.to_ne_bytes());
    }

    /// The batch-begin message of an nf_tables transaction (acknowledged by
    /// kernels >= 6.10, see [`Replies::batch_outcome`]).
    pub fn batch_begin(&mut self, seq: u32) {
        let m = self.begin(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            libc::AF_UNSPEC as u8,
            NFNL_SUBSYS_NFTABLES,
        );
        self.end(m);
    }

    /// The batch-end message: the kernel commits the transaction on it.
    pub fn batch_end(&mut self, seq: u32) {
        let m = self.begin(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            libc::AF_UNSPEC as u8,
            NFNL_SUBSYS_NFTABLES,
        );
        self.end(m);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// The attributes of an nfnetlink message payload (after nlmsghdr), as
/// (type without flags, data).
pub fn attrs(payload: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    nested(payload.get(4..).unwrap_or(&[])) // after nfgenmsg
}

/// The attributes inside a nested attribute's data.
pub fn nested(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let head = data.get(off..off + 4)?;
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let ty = u16::from_ne_bytes([head[2], head[3]]) & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        let value = data.get(off + 4..off + len)?;
        off += align4(len);
        Some((ty, value))
    })
}

/// The first attribute of type `ty` in `data` (a nest's), if any.
pub fn find(data: &[u8], ty: u16) -> Option<&[u8]> {
    nested(data).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

/// What the kernel answered to one sent buffer.
#[derive(Debug, Default)]
pub struct Replies {
    /// (seq, errno) of every NLMSG_ERROR with a non-zero code, in order.
    pub errors: Vec<(u32, i32)>,
    /// seqs acknowledged with code 0.
    pub acks: Vec<u32>,
    /// (seq, type, payload after nlmsghdr) of every other message.
    pub messages: Vec<(u32, u16, Vec<u8>)>,
    /// seqs whose dump ended (NLMSG_DONE).
    pub dumped: Vec<u32>,
}

impl Replies {
    /// Adds the messages of one received datagram that answer a seq in
    /// `seqs`; true once the answer to `last` (an ack or an error) is in, or
    /// the request at the start of `seqs` failed.
    pub fn add(&mut self, buf: &[u8], seqs: &RangeInclusive<u32>, last: u32) -> bool {
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[at..at + 4]);
            u32::from_ne_bytes(b)
        };
        let mut done = false;
        let mut off = 0;
        while off + NLMSG_HDRLEN <= buf.len() {
            let len = word(off) as usize;
            if len < NLMSG_HDRLEN || off + len > buf.len() {
                break;
            }
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            let seq = word(off + 8);
            if seqs.contains(&seq) {
                if ty == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 {
                    let code = word(off + NLMSG_HDRLEN) as i32;
                    if code == 0 {
                        self.acks.push(seq);
                    } else {
                        self.errors.push((seq, -code));
                    }
                    done |= seq == last || code != 0 && seq == *seqs.start();
                } else if ty == NLMSG_DONE {
                    // the end of a dump
                    self.dumped.push(seq);
                    done |= seq == last;
                } else {
                    let payload = buf[off + NLMSG_HDRLEN..off + len].to_vec();
                    self.messages.push((seq, ty, payload));
                }
            }
            off += align4(len);
        }
        done
    }

    pub fn acked(&self, seq: u32) -> bool {
        self.acks.contains(&seq)
    }

    /// How a transaction sent as one batch `begin..=end` ended; the batch
    /// begin, its last message (`end - 1`) and its end carry NLM_F_ACK.
    ///
    /// Kernels from 6.10 acknowledge the begin at once and the end only once
    /// the commit succeeded, so with the begin acked nothing short of the
    /// end's ack is a success. Older kernels acknowledge neither and report a
    /// failed commit as an error on the begin's seq: there the ack of the last
    /// message (every message before it was handled) with no error is the
    /// most the kernel says.
    pub fn batch_outcome(&self, begin: u32, end: u32) -> std::result::Result<(), BatchError> {
        if let Some(&(seq, errno)) = self.errors.first() {
            return Err(BatchError::Refused { seq, errno });
        }
        let last = end.wrapping_sub(1);
        let committed = if self.acked(begin) {
            self.acked(end)
        } else {
            last != begin && self.acked(last)
        };
        if committed {
            Ok(())
        } else {
            Err(BatchError::Unacknowledged)
        }
    }
}

/// Why a batch did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// The kernel refused message `seq` (or, on the batch-begin seq, the
    /// commit) with `errno`; nothing of the batch was applied.
    Refused { seq: u32, errno: i32 },
    /// The kernel did not acknowledge the commit: whether the batch was
    /// applied is unknown.
    Unacknowledged,
}

/// A NETLINK_NETFILTER socket (or, from `open_route`, a NETLINK_ROUTE one)
/// created inside one netns (it keeps that netns for its whole life, and keeps
/// the netns alive while open): blocking requests, sent raw.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens a socket inside `netns` (None: the process netns), on a
    /// short-lived thread that entered it when a name is given.
    pub fn open(netns: Option<&str>) -> Result<Socket> {
        Socket::open_protocol(netns, libc::NETLINK_NETFILTER, "netfilter")
    }

    /// The same on NETLINK_ROUTE, for a request rtnetlink's cached connection
    /// must not wait behind (a bulk link deletion: see `link::reap`).
    pub fn open_route(netns: Option<&str>) -> Result<Socket> {
        Socket::open_protocol(netns, libc::NETLINK_ROUTE, "route")
    }

    fn open_protocol(netns: Option<&str>, protocol: libc::c_int, what: &str) -> Result<Socket> {
        let ctx = format!("open {what} netlink socket in netns {}", ns_label(netns));
        let fd = match netns {
            None => open_here(protocol).map_err(|e| Error::from_io(&e, ctx)),
            Some(_) => crate::netns::on_thread_blocking(netns, move || {
                open_here(protocol).map_err(|e| Error::from_io(&e, ctx))
            }),
        };
        Ok(Socket {
            fd: fd.map_err(|e| e.netns(netns))?,
            seq: 0,
        })
    }

    /// The cookie of the netns the socket lives in (never reused in a boot).
    pub fn netns_cookie(&self) -> io::Result<u64> {
        sockopt::netns_cookie(&self.fd)
    }

    /// Reserves `n` consecutive sequence numbers; returns the first.
    pub fn next_seq(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n);
        first
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Drops replies a failed earlier call may have left behind.
    fn drain(&self) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = self.recv(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// Sends `buf` (requests numbered `seqs`) and collects their replies,
    /// until the answer to `last` is in or nothing more is queued.
    pub fn exchange(
        &self,
        buf: &[u8],
        seqs: RangeInclusive<u32>,
        last: u32,
    ) -> io::Result<Replies> {
        self.drain();
        self.send(buf)?;
        let mut replies = Replies::default();
        let mut rbuf = vec![0u8; 256 * 1024];
        loop {
            let n = match self.recv(&mut rbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(replies),
                Err(e) => return Err(e),
            };
            if replies.add(&rbuf[..n], &seqs, last) {
                return Ok(replies);
            }
        }
    }

    /// Sends one buffer to the kernel (port 0).
    fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zero is a valid value.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf and kernel are valid for the given sizes.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A bound netlink socket of `protocol` in the calling thread's netns.
fn open_here(protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain data; zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: addr is a valid sockaddr_nl of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // Big batches (thousands of elements) go in one sendmsg; acks stay small.
    let big = 16 << 20;
    sockopt::set_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, big);
    sockopt::set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, big);
    sockopt::set_int(&fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
    Ok(fd)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An NLMSG_ERROR reply to `seq` with `errno` (0: an ack), as the kernel
    /// sends it with NETLINK_CAP_ACK: the code, then the request's header.
    pub(crate) fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0x100u16.to_ne_bytes()); // NLM_F_CAPPED
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0u8; 16]);
        m
    }

    /// A reply message of type `ty` to `seq` holding one attribute.
    pub(crate) fn message(ty: u16, seq: u32, attr: u16, data: &[u8]) -> Vec<u8> {
        let mut w = Writer::default();
        let m = w.begin(ty, 0, seq, 0, 0);
        w.attr(attr, data);
        w.end(m);
        w.bytes().to_vec()
    }

    #[test]
    fn writer_layout() {
        let mut w = Writer::default();
        w.batch_begin(1);
        let m = w.begin(nft_type(12), NLM_F_REQUEST, 2, 2, 0);
        w.attr_str(1, "cnm");
        let n = w.nest(3);
        w.attr(1, &[1, 2, 3]);
        w.nest_end(n);
        w.end(m);
        w.request_ack(m);
        w.batch_end(3);
        let b = w.bytes();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 20);
        let second = &b[20..];
        let len = u32::from_ne_bytes(second[0..4].try_into().unwrap()) as usize;
        assert_eq!(u16::from_ne_bytes([second[4], second[5]]), (10 << 8) | 12);
        assert_eq!(
            u16::from_ne_bytes([second[6], second[7]]),
            NLM_F_REQUEST | NLM_F_ACK
        );
        let found: Vec<(u16, Vec<u8>)> = attrs(&second[16..len])
            .map(|(t, d)| (t, d.to_vec()))
            .collect();
        assert_eq!(found[0], (1, b"cnm\0".to_vec()));
        assert_eq!(found[1].0, 3, "nested flag masked off");
        assert_eq!(found[1].1[4..7], [1, 2, 3]);
        let end = &b[20 + len..];
        assert_eq!(u16::from_ne_bytes([end[4], end[5]]), NFNL_MSG_BATCH_END);
        assert_eq!(
            u16::from_ne_bytes([end[6], end[7]]),
            NLM_F_REQUEST | NLM_F_ACK
        );
    }

    /// Replies to the batch begin 10, elements 11 and 12, end 13.
    fn batch(replies: &[Vec<u8>]) -> std::result::Result<(), BatchError> {
        let mut r = Replies::default();
        for datagram in replies {
            r.add(datagram, &(10..=13), 13);
        }
        r.batch_outcome(10, 13)
    }

    #[test]
    fn batch_commit_must_be_acknowledged() {
        // kernel >= 6.10: the begin and, once committed, the end are acked
        assert_eq!(
            batch(&[[ack(10, 0), ack(12, 0), ack(13, 0)].concat()]),
            Ok(())
        );
        // the end's ack never came: not a success
        let lost = batch(&[[ack(10, 0), ack(12, 0)].concat()]);
        assert_eq!(lost, Err(BatchError::Unacknowledged));
        // nothing at all came back
        assert_eq!(batch(&[]), Err(BatchError::Unacknowledged));
        // older kernels ack neither begin nor end: the last element's ack,
        // with no error on the begin (where a failed commit is reported)
        assert_eq!(batch(&[ack(12, 0)]), Ok(()));
        assert_eq!(batch(&[ack(11, 0)]), Err(BatchError::Unacknowledged));
        // a refused element fails the batch whatever else came
        let refused = batch(&[[ack(10, 0), ack(11, libc::EEXIST), ack(12, 0)].concat()]);
        assert_eq!(
            refused,
            Err(BatchError::Refused {
                seq: 11,
                errno: libc::EEXIST
            })
        );
        // a failed commit is reported on the begin's seq
        let commit = batch(&[ack(10, libc::ENOMEM), ack(12, 0)]);
        assert_eq!(
            commit,
            Err(BatchError::Refused {
                seq: 10,
                errno: libc::ENOMEM
            })
        );
    }

    #[test]
    fn replies_sorted_by_kind() {
        let mut buf = message(nft_type(3), 5, 1, b"cnm\0");
        buf.extend(ack(5, 0));
        buf.extend(ack(9, libc::ENOENT)); // another request's
        let mut r = Replies::default();
        assert!(r.add(&buf, &(5..=5), 5));
        assert_eq!(r.acks, [5]);
        assert!(r.errors.is_empty());
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].1, nft_type(3));
        // a failed first request ends the exchange; a truncated one is ignored
        let mut r = Replies::default();
        assert!(r.add(&ack(7, libc::EPERM), &(7..=9), 9));
        assert_eq!(r.errors, [(7, libc::EPERM)]);
        assert!(!Replies::default().add(&ack(8, 0)[..20], &(7..=9), 9));
    }
}

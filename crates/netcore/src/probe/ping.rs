//! ICMP echo from inside a netns over a raw socket (as root; ping sockets
//! are off by default in a new netns), IPv4 or IPv6.

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{ns_label, Error, Result};
use crate::netns::on_thread;

/// What a run of echo requests got back.
#[derive(Debug, Clone, Default)]
pub struct PingReport {
    pub transmitted: u32,
    pub received: u32,
    /// Round-trip times of the replies, in ms, in order.
    pub rtts_ms: Vec<f64>,
}

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: usize = 56;

/// Distinct identifiers for concurrent runs in one process.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// The internet checksum (RFC 1071); the kernel fills it in for ICMPv6.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 8 + PAYLOAD];
    p[0] = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The sequence number of an echo reply to `id` in a received packet (an
/// IPv4 raw socket gives the IP header too).
fn reply_seq(v6: bool, packet: &[u8], id: u16) -> Option<u16> {
    let icmp = if v6 {
        packet
    } else {
        let ihl = usize::from(packet.first()? & 0x0f) * 4;
        packet.get(ihl..)?
    };
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if *icmp.first()? != want || icmp.get(4..6)? != id.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]))
}

fn run(
    to: IpAddr,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> std::io::Result<PingReport> {
    let v6 = to.is_ipv6();
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let sock = Socket::new(domain, Type::RAW.cloexec(), Some(proto))?;
    let dest = SocketAddr::new(to, 0).into();
    let id = (std::process::id() as u16) ^ NEXT_ID.fetch_add(0x1111, Ordering::Relaxed);
    let mut report = PingReport::default();
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    for seq in 0..count {
        let sent = Instant::now();
        sock.send_to(&request(v6, id, seq as u16), &dest)?;
        report.transmitted += 1;
        let deadline = sent + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            // SAFETY: recv initialised the first n bytes.
            let packet: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            if reply_seq(v6, &packet, id) == Some(seq as u16) {
                report.received += 1;
                report.rtts_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        if seq + 1 < count {
            std::thread::sleep(interval.saturating_sub(sent.elapsed()));
        }
    }
    Ok(report)
}

/// Sends `count` echo requests to `to` from inside `netns`, one per
/// `interval`, each waiting up to `timeout` for its reply.
pub async fn ping(
    netns: Option<&str>,
    to: IpAddr,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> Result<PingReport> {
    let label = ns_label(netns).to_string();
    on_thread(netns, move || {
        run(to, count, interval, timeout)
            .map_err(|e| Error::from_io(&e, format!("ping {to} from netns {label}")))
    })
    .await
    .map_err(|e| e.netns(netns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request_verifies() {
        let p = request(false, 0x1234, 7);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
    }

    #[test]
    fn replies_are_matched_by_id_and_seq() {
        let mut reply = request(true, 9, 3);
        reply[0] = ECHO_REPLY_V6;
        assert_eq!(reply_seq(true, &reply, 9), Some(3));
        assert_eq!(reply_seq(true, &reply, 8), None);
        let mut v4 = vec![0x45u8; 20];
        let mut icmp = request(false, 9, 4);
        icmp[0] = ECHO_REPLY_V4;
        v4.extend(icmp);
        assert_eq!(reply_seq(false, &v4, 9), Some(4));
    }
}

//! A TCP or UDP socket made inside a netns, optionally bound and listening,
//! returned as a file descriptor for Node to adopt (`net.Socket({ fd })`,
//! `server.listen({ fd })`).

use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::netns::on_thread;

/// What socket to make.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    /// `tcp` or `udp`.
    pub kind: String,
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// Bound to this address first.
    pub bind: Option<SocketAddr>,
    /// Listening with this backlog (TCP).
    pub listen: Option<i32>,
}

fn make(spec: &SocketSpec) -> std::io::Result<Socket> {
    let domain = if spec.v6 { Domain::IPV6 } else { Domain::IPV4 };
    let (ty, proto) = if spec.kind == "udp" {
        (Type::DGRAM, Protocol::UDP)
    } else {
        (Type::STREAM, Protocol::TCP)
    };
    let s = Socket::new(domain, ty.cloexec(), Some(proto))?;
    if let Some(addr) = spec.bind {
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
    }
    if let Some(backlog) = spec.listen {
        s.listen(backlog)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Makes the socket of `spec` inside `netns`; the caller owns the returned fd.
pub async fn socket_in(netns: Option<&str>, spec: SocketSpec) -> Result<RawFd> {
    if spec.kind != "tcp" && spec.kind != "udp" {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("socket kind {:?}: use tcp or udp", spec.kind),
        ));
    }
    if spec.listen.is_some() && (spec.kind != "tcp" || spec.bind.is_none()) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "listen needs a TCP socket with a bind address",
        ));
    }
    if let Some(addr) = spec.bind {
        if addr.is_ipv6() != spec.v6 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("bind address {addr} is not of the socket's family"),
            ));
        }
    }
    let label = ns_label(netns).to_string();
    on_thread(netns, move || {
        make(&spec).map(IntoRawFd::into_raw_fd).map_err(|e| {
            let what = match spec.bind {
                Some(a) => format!("make a {} socket on {a} in netns {label}", spec.kind),
                None => format!("make a {} socket in netns {label}", spec.kind),
            };
            Error::from_io(&e, what)
        })
    })
    .await
    .map_err(|e| e.netns(netns))
}

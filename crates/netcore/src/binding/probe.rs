//! Traffic from inside a netns with no program run: sockets for Node to
//! adopt, ICMP echo, DNS lookups (see `crate::probe`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use super::promise;
use crate::error::{Error, ErrorCode, Result};
use crate::probe;

fn parse_ip(s: &str, what: &str) -> Result<IpAddr> {
    s.parse().map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} {s:?} is not an IP address"),
        )
    })
}

/// A socket to make inside a netns.
#[napi(object)]
pub struct NetnsSocketSpec {
    /// "tcp" or "udp".
    pub kind: String,
    /// IPv6 rather than IPv4.
    pub ipv6: Option<bool>,
    /// Bind to this address first (with `port`, default 0).
    pub address: Option<String>,
    pub port: Option<u16>,
    /// Listen with this backlog (TCP with an address).
    pub backlog: Option<i32>,
}

/// A TCP or UDP socket made inside `netns` (null: this process's), bound and
/// listening when asked; resolves with its file descriptor, which the caller
/// owns (Node: `new net.Socket({ fd })` or `server.listen({ fd })`).
#[napi(ts_return_type = "Promise<number>")]
pub fn netns_socket(
    env: &Env,
    netns: Option<String>,
    spec: NetnsSocketSpec,
) -> napi::Result<PromiseRaw<'_, i32>> {
    promise(env, async move {
        let bind = spec
            .address
            .as_deref()
            .map(|a| parse_ip(a, "address"))
            .transpose()?
            .map(|ip| SocketAddr::new(ip, spec.port.unwrap_or(0)));
        let spec = probe::SocketSpec {
            kind: spec.kind,
            v6: spec.ipv6.unwrap_or(bind.is_some_and(|b| b.is_ipv6())),
            bind,
            listen: spec.backlog,
        };
        probe::socket_in(netns.as_deref(), spec).await
    })
}

/// What `netnsPing` got back.
#[napi(object)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
    /// Round-trip time of each reply, in ms.
    pub rtts_ms: Vec<f64>,
}

/// ICMP echo from inside `netns` to `address`: `count` requests (default 1),
/// one per `intervalMs` (default 200), each waiting up to `timeoutMs`
/// (default 1000) for its reply.
#[napi(ts_return_type = "Promise<PingResult>")]
pub fn netns_ping(
    env: &Env,
    netns: Option<String>,
    address: String,
    count: Option<u32>,
    interval_ms: Option<u32>,
    timeout_ms: Option<u32>,
) -> napi::Result<PromiseRaw<'_, PingResult>> {
    promise(env, async move {
        let to = parse_ip(&address, "address")?;
        let r = probe::ping(
            netns.as_deref(),
            to,
            count.unwrap_or(1),
            Duration::from_millis(u64::from(interval_ms.unwrap_or(200))),
            Duration::from_millis(u64::from(timeout_ms.unwrap_or(1000))),
        )
        .await?;
        Ok(PingResult {
            transmitted: r.transmitted,
            received: r.received,
            rtts_ms: r.rtts_ms,
        })
    })
}

/// The IPv4 (or, with `ipv6`, IPv6) addresses of `name` as the DNS server
/// `server` (port 53) answers a query sent from inside `netns`.
#[napi(ts_return_type = "Promise<string[]>")]
pub fn netns_dns_lookup(
    env: &Env,
    netns: Option<String>,
    server: String,
    name: String,
    ipv6: Option<bool>,
    timeout_ms: Option<u32>,
) -> napi::Result<PromiseRaw<'_, Vec<String>>> {
    promise(env, async move {
        let server = SocketAddr::new(parse_ip(&server, "server")?, 53);
        let ips = probe::lookup(
            netns.as_deref(),
            server,
            &name,
            ipv6.unwrap_or(false),
            Duration::from_millis(u64::from(timeout_ms.unwrap_or(2000))),
        )
        .await?;
        Ok(ips.iter().map(ToString::to_string).collect())
    })
}

//! The embedded resolver: started per host, fed endpoint names, told which
//! sandboxes to serve. Resolvers are referred to by handle.

use std::net::{IpAddr, SocketAddr};

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use super::{js_error, promise};
use crate::dns;
use crate::error::{Error, Result};

/// One endpoint's names on its network.
#[napi(object)]
pub struct DnsEndpoint {
    pub id: String,
    pub network: String,
    /// the local sandbox it belongs to; null for an endpoint of another host
    pub sandbox: Option<String>,
    /// every name it answers to (sandbox name, aliases, NAME.NETWORK…)
    pub names: Vec<String>,
    /// what a reverse lookup of its addresses answers
    pub ptr: String,
    /// "" or null for none; a prefix length is ignored
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

#[napi(object)]
pub struct DnsStats {
    pub queries: f64,
    pub forwarded: f64,
    /// forwarded queries no upstream server answered
    pub failed: f64,
    pub sandboxes: u32,
    pub endpoints: u32,
}

fn addr<T: std::str::FromStr>(v: Option<String>, field: &str) -> Result<Option<T>> {
    let Some(s) = v.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bare = s.split('/').next().unwrap_or_default();
    bare.parse()
        .map(Some)
        .map_err(|_| Error::invalid(format!("{field}: not an address: {s:?}")))
}

fn endpoint(js: DnsEndpoint) -> Result<dns::EndpointNames> {
    Ok(dns::EndpointNames {
        ipv4: addr(js.ipv4, "ipv4")?,
        ipv6: addr(js.ipv6, "ipv6")?,
        id: js.id,
        network: js.network,
        sandbox: js.sandbox.filter(|s| !s.is_empty()),
        names: js.names,
        ptr: js.ptr,
    })
}

/// "IP" or "IP:PORT" ([IPv6]:PORT), port 53 by default.
fn server(s: &str) -> Result<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse()
        .map_err(|_| Error::invalid(format!("not a DNS server address: {s:?}")))
}

/// Starts a resolver forwarding from `hostNetns` (null: the process's own netns); its handle.
#[napi(ts_return_type = "Promise<number>")]
pub fn dns_start(env: &Env, host_netns: Option<String>) -> napi::Result<PromiseRaw<'_, u32>> {
    promise(env, async move { dns::start(host_netns).await })
}

/// Changes records in place: `remove` (endpoint ids) first, then `upsert`.
#[napi]
pub fn dns_update(
    env: Env,
    handle: u32,
    upsert: Vec<DnsEndpoint>,
    remove: Vec<String>,
) -> napi::Result<()> {
    let run = || -> Result<()> {
        let eps = upsert
            .into_iter()
            .map(endpoint)
            .collect::<Result<Vec<_>>>()?;
        dns::update(handle, eps, remove)
    };
    run().map_err(|e| js_error(&env, &e))
}

/// Serves `sandbox` at 127.0.0.11:53 (UDP and TCP) inside netns `netns`,
/// forwarding other names to `upstreams` ("IP" or "IP:PORT"); served already:
/// its upstream servers change.
#[napi(ts_return_type = "Promise<void>")]
pub fn dns_open_sandbox(
    env: &Env,
    handle: u32,
    sandbox: String,
    netns: String,
    upstreams: Vec<String>,
) -> napi::Result<PromiseRaw<'_, ()>> {
    let servers = upstreams
        .iter()
        .map(|s| server(s))
        .collect::<Result<Vec<_>>>();
    promise(env, async move {
        crate::netns::validate_name(&netns)?;
        dns::open_sandbox(handle, sandbox, netns, servers?).await
    })
}

/// Closes a sandbox's sockets; true when it was served.
#[napi]
pub fn dns_close_sandbox(env: Env, handle: u32, sandbox: String) -> napi::Result<bool> {
    dns::close_sandbox(handle, &sandbox).map_err(|e| js_error(&env, &e))
}

#[napi]
pub fn dns_stats(env: Env, handle: u32) -> napi::Result<DnsStats> {
    let s = dns::stats(handle).map_err(|e| js_error(&env, &e))?;
    Ok(DnsStats {
        queries: s.queries as f64,
        forwarded: s.forwarded as f64,
        failed: s.failed as f64,
        sandboxes: s.sandboxes,
        endpoints: s.endpoints,
    })
}

/// Stops a resolver and closes every sandbox's sockets.
#[napi]
pub fn dns_stop(env: Env, handle: u32) -> napi::Result<()> {
    dns::stop(handle).map_err(|e| js_error(&env, &e))
}

//! napi exports of netcore: convert JS <-> Rust and forward, nothing else.
//! The contract is ts/native-api.ts (`NativeBinding`).
//!
//! Every call returns a Promise settled from the tokio runtime. Rejections are
//! Errors whose `code` is the stable ERR_* string and whose `message` is the
//! JSON body of [`error::Error::to_json`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod addr;
pub mod error;
pub mod fault;
pub mod firewall;
pub mod link;
pub mod netns;
mod nl;
pub mod route;
mod sockopt;
pub mod sysctl;

use std::future::Future;

use napi::bindgen_prelude::{Either, Null, PromiseRaw, ToNapiValue};
use napi::{Env, JsError};
use napi_derive::napi;

fn js_error(env: &Env, e: &error::Error) -> napi::Error {
    let err: napi::Error<&'static str> = napi::Error::new(e.code.as_str(), e.to_json());
    // A JS Error with our own `code`; napi rejects with this very object.
    napi::Error::from(JsError::from(err).into_unknown(*env))
}

fn promise<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = error::Result<T>> + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, result| {
        result.map_err(|e| js_error(env, &e))
    })
}

#[napi(object)]
pub struct BridgeSpec {
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    pub name: String,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings, e.g. "10.1.0.1/24"; already present ones are kept.
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    /// default true
    #[napi(ts_type = "boolean | null")]
    pub up: Option<bool>,
}

#[napi(object)]
pub struct BridgeInfo {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: String,
    /// false when the bridge already existed
    pub created: bool,
}

#[napi(object)]
pub struct VethSpec {
    #[napi(ts_type = "string | null")]
    pub host_netns: Option<String>,
    /// the named netns the peer is born in
    pub sandbox_netns: String,
    pub host_ifname: String,
    /// bridge to enslave the host end to
    #[napi(ts_type = "string | null")]
    pub master: Option<String>,
    /// name of the peer inside the sandbox, e.g. eth0
    pub ifname: String,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings for the peer
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    /// IPv4 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    /// IPv6 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway6: Option<String>,
    /// hairpin mode on the bridge port, so that DNATed traffic can go back out
    /// the port it came in by (a sandbox reaching its own published port)
    #[napi(ts_type = "boolean | null")]
    pub hairpin: Option<bool>,
}

#[napi(object)]
pub struct VethInfo {
    pub host_ifindex: u32,
    pub ifindex: u32,
    pub mac: String,
    pub host_mac: String,
}

#[napi(object)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    #[napi(ts_type = "string | null")]
    pub kind: Option<String>,
    #[napi(ts_type = "number | null")]
    pub master: Option<u32>,
    pub mtu: u32,
    pub mac: String,
    pub up: bool,
    pub addresses: Vec<String>,
}

#[napi(object)]
pub struct RouteInfo {
    /// CIDR; "0.0.0.0/0" for default
    pub dst: String,
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    #[napi(ts_type = "number | null")]
    pub oif: Option<u32>,
    pub table: u32,
}

#[napi(ts_return_type = "Promise<void>")]
pub fn netns_create(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move { netns::create(&name).await })
}

#[napi(ts_return_type = "Promise<void>")]
pub fn netns_bind(
    env: &Env,
    name: String,
    target: Option<String>,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(
        env,
        async move { netns::bind(&name, target.as_deref()).await },
    )
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn netns_delete(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move { netns::delete(&name).await })
}

#[napi(ts_return_type = "Promise<number>")]
pub fn netns_delete_many(env: &Env, names: Vec<String>) -> napi::Result<PromiseRaw<'_, u32>> {
    promise(env, async move { netns::delete_many(&names).await })
}

#[napi(ts_return_type = "Promise<string[]>")]
pub fn netns_list(env: &Env) -> napi::Result<PromiseRaw<'_, Vec<String>>> {
    promise(env, netns::list())
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn netns_exists(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move { netns::exists(&name).await })
}

/// Drops the cached netlink socket of a netns (so it does not keep it alive).
#[napi]
pub fn release_netns(name: String) {
    netns::release(&name);
}

#[napi(ts_return_type = "Promise<BridgeInfo>")]
pub fn ensure_bridge(env: &Env, spec: BridgeSpec) -> napi::Result<PromiseRaw<'_, BridgeInfo>> {
    let spec = link::BridgeSpec {
        netns: spec.netns,
        name: spec.name,
        mtu: spec.mtu,
        mac: spec.mac,
        addresses: spec.addresses.unwrap_or_default(),
        up: spec.up.unwrap_or(true),
    };
    promise(env, async move {
        let b = link::ensure_bridge(&spec).await?;
        Ok(BridgeInfo {
            ifindex: b.ifindex,
            name: b.name,
            mtu: b.mtu,
            mac: b.mac,
            created: b.created,
        })
    })
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn delete_link(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    name: String,
) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(
        env,
        async move { link::delete(netns.as_deref(), &name).await },
    )
}

#[napi(ts_return_type = "Promise<VethInfo>")]
pub fn attach_veth(env: &Env, spec: VethSpec) -> napi::Result<PromiseRaw<'_, VethInfo>> {
    let spec = link::VethSpec {
        host_netns: spec.host_netns,
        sandbox_netns: spec.sandbox_netns,
        host_ifname: spec.host_ifname,
        master: spec.master,
        ifname: spec.ifname,
        mtu: spec.mtu,
        mac: spec.mac,
        addresses: spec.addresses.unwrap_or_default(),
        gateway: spec.gateway,
        gateway6: spec.gateway6,
        hairpin: spec.hairpin.unwrap_or(false),
    };
    promise(env, async move {
        let v = link::attach_veth(&spec).await?;
        Ok(VethInfo {
            host_ifindex: v.host_ifindex,
            ifindex: v.ifindex,
            mac: v.mac,
            host_mac: v.host_mac,
        })
    })
}

/// One static route inside the sandbox: `dst` via `gateway`, or on-link.
#[napi(object)]
pub struct StaticRoute {
    /// CIDR
    pub dst: String,
    /// absent for an on-link route
    pub gateway: Option<String>,
}

#[napi(object)]
pub struct AdoptSpec {
    #[napi(ts_type = "string | null")]
    pub host_netns: Option<String>,
    /// the link in the host netns (made by a remote plugin)
    pub ifname: String,
    /// the named netns to move it into
    pub sandbox_netns: String,
    /// its name there, e.g. eth0
    pub new_name: String,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    /// IPv4 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    /// IPv6 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway6: Option<String>,
    #[napi(ts_type = "StaticRoute[] | null")]
    pub routes: Option<Vec<StaticRoute>>,
}

#[napi(object)]
pub struct AdoptInfo {
    pub ifindex: u32,
    pub mac: String,
}

/// Moves a link a plugin made in the host netns into a sandbox netns, renames
/// and configures it there; undoes the move on failure.
#[napi(ts_return_type = "Promise<AdoptInfo>")]
pub fn adopt_link(env: &Env, spec: AdoptSpec) -> napi::Result<PromiseRaw<'_, AdoptInfo>> {
    let spec = link::AdoptSpec {
        host_netns: spec.host_netns,
        ifname: spec.ifname,
        sandbox_netns: spec.sandbox_netns,
        new_name: spec.new_name,
        mtu: spec.mtu,
        mac: spec.mac,
        addresses: spec.addresses.unwrap_or_default(),
        gateway: spec.gateway,
        gateway6: spec.gateway6,
        routes: spec
            .routes
            .unwrap_or_default()
            .into_iter()
            .map(|r| link::StaticRoute {
                dst: r.dst,
                gateway: r.gateway,
            })
            .collect(),
    };
    promise(env, async move {
        let r = link::adopt_link(&spec).await?;
        Ok(AdoptInfo {
            ifindex: r.ifindex,
            mac: r.mac,
        })
    })
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn detach_veth(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] host_netns: Option<String>,
    host_ifname: String,
) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move {
        link::detach_veth(host_netns.as_deref(), &host_ifname).await
    })
}

#[napi(ts_return_type = "Promise<LinkInfo[]>")]
pub fn list_links(env: &Env, netns: Option<String>) -> napi::Result<PromiseRaw<'_, Vec<LinkInfo>>> {
    promise(env, async move {
        let links = link::list(netns.as_deref()).await?;
        Ok(links
            .into_iter()
            .map(|l| LinkInfo {
                index: l.index,
                name: l.name,
                kind: l.kind,
                master: l.master,
                mtu: l.mtu,
                mac: l.mac,
                up: l.up,
                addresses: l.addresses,
            })
            .collect())
    })
}

#[napi(ts_return_type = "Promise<RouteInfo[]>")]
pub fn list_routes(
    env: &Env,
    netns: Option<String>,
    family: Option<u32>,
) -> napi::Result<PromiseRaw<'_, Vec<RouteInfo>>> {
    promise(env, async move {
        let routes = route::list(netns.as_deref(), family).await?;
        Ok(routes
            .into_iter()
            .map(|r| RouteInfo {
                dst: r.dst,
                gateway: r.gateway,
                oif: r.oif,
                table: r.table,
            })
            .collect())
    })
}

/// Make `gateway` out of `ifname` the default route of `family` (4 or 6) inside
/// the named netns, replacing any other; with no gateway, remove it.
#[napi(ts_return_type = "Promise<void>")]
pub fn set_default_route(
    env: &Env,
    netns: String,
    #[napi(ts_arg_type = "string | undefined | null")] ifname: Option<String>,
    #[napi(ts_arg_type = "string | undefined | null")] gateway: Option<String>,
    family: u32,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move {
        let gw = gateway.as_deref().map(addr::parse_ip).transpose()?;
        route::set_default(&netns, ifname.as_deref(), gw, family).await
    })
}

#[napi(ts_return_type = "Promise<string>")]
pub fn sysctl_get(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    key: String,
) -> napi::Result<PromiseRaw<'_, String>> {
    promise(
        env,
        async move { sysctl::get(netns.as_deref(), &key).await },
    )
}

#[napi(ts_return_type = "Promise<void>")]
pub fn sysctl_set(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    key: String,
    value: String,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move {
        sysctl::set(netns.as_deref(), &key, &value).await
    })
}

/// Per-network firewall state: one bridge and how its traffic is treated.
#[napi(object)]
pub struct FirewallNetwork {
    pub bridge: String,
    /// IPv4 subnet, CIDR; "" when unknown
    pub subnet: String,
    /// IPv6 subnet of a dual-stack network, CIDR; absent/null: none
    #[napi(ts_type = "string | null")]
    pub subnet6: Option<Either<String, Null>>,
    pub masquerade: bool,
    pub icc: bool,
    pub internal: bool,
    pub tag: String,
}

/// One published port.
#[napi(object)]
pub struct PortMapping {
    #[napi(ts_type = "'tcp' | 'udp' | 'sctp'")]
    pub proto: String,
    /// absent/null: every local address
    #[napi(ts_type = "string | null")]
    pub host_ip: Option<Either<String, Null>>,
    pub host_port: u32,
    pub container_ip: String,
    /// also published on IPv6 to this container address (unless host_ip is
    /// a specific IPv4 address); absent/null: IPv4 only
    #[napi(ts_type = "string | null")]
    pub container_ip6: Option<Either<String, Null>>,
    pub container_port: u32,
    pub bridge: String,
    pub tag: String,
}

/// One atomic change to the firewall of one netns.
#[napi(object)]
pub struct FirewallBatch {
    #[napi(ts_type = "'nftables' | 'iptables' | 'none'")]
    pub backend: String,
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    #[napi(ts_type = "FirewallNetwork[] | null")]
    pub add_networks: Option<Vec<FirewallNetwork>>,
    #[napi(ts_type = "FirewallNetwork[] | null")]
    pub remove_networks: Option<Vec<FirewallNetwork>>,
    #[napi(ts_type = "PortMapping[] | null")]
    pub add_ports: Option<Vec<PortMapping>>,
    #[napi(ts_type = "PortMapping[] | null")]
    pub remove_ports: Option<Vec<PortMapping>>,
}

#[napi(object)]
pub struct FirewallState {
    pub networks: Vec<FirewallNetwork>,
    pub ports: Vec<PortMapping>,
}

fn fw_network(n: FirewallNetwork) -> error::Result<firewall::Network> {
    firewall::validate_ifname(&n.bridge)?;
    firewall::validate_tag(&n.tag)?;
    let subnet = match n.subnet.as_str() {
        "" => None,
        s => Some(firewall::Subnet::parse(s)?),
    };
    let subnet6 = match &n.subnet6 {
        Some(Either::A(s)) if !s.is_empty() => Some(firewall::Subnet6::parse(s)?),
        _ => None,
    };
    Ok(firewall::Network {
        bridge: n.bridge,
        subnet,
        subnet6,
        masquerade: n.masquerade,
        icc: n.icc,
        internal: n.internal,
        tag: n.tag,
    })
}

fn fw_port(p: PortMapping) -> error::Result<firewall::Port> {
    if !p.bridge.is_empty() {
        firewall::validate_ifname(&p.bridge)?;
    }
    firewall::validate_tag(&p.tag)?;
    Ok(firewall::Port {
        proto: firewall::Proto::parse(&p.proto)?,
        host_ip: match &p.host_ip {
            Some(Either::A(ip)) => Some(firewall::parse_ipv4(ip, "host IP")?),
            _ => None,
        },
        host_port: firewall::parse_port(p.host_port, "host port")?,
        container_ip: firewall::parse_ipv4(&p.container_ip, "container IP")?,
        container_ip6: match &p.container_ip6 {
            Some(Either::A(ip)) if !ip.is_empty() => {
                Some(firewall::parse_ipv6(ip, "container IPv6")?)
            }
            _ => None,
        },
        container_port: firewall::parse_port(p.container_port, "container port")?,
        bridge: p.bridge,
        tag: p.tag,
    })
}

fn fw_batch(
    b: FirewallBatch,
) -> error::Result<(firewall::BackendName, Option<String>, firewall::Batch)> {
    let nets = |v: Option<Vec<FirewallNetwork>>| {
        v.unwrap_or_default()
            .into_iter()
            .map(fw_network)
            .collect::<error::Result<Vec<_>>>()
    };
    let ports = |v: Option<Vec<PortMapping>>| {
        v.unwrap_or_default()
            .into_iter()
            .map(fw_port)
            .collect::<error::Result<Vec<_>>>()
    };
    Ok((
        firewall::BackendName::parse(&b.backend)?,
        b.netns,
        firewall::Batch {
            add_networks: nets(b.add_networks)?,
            remove_networks: nets(b.remove_networks)?,
            add_ports: ports(b.add_ports)?,
            remove_ports: ports(b.remove_ports)?,
        },
    ))
}

fn js_state(s: firewall::State) -> FirewallState {
    FirewallState {
        networks: s
            .networks
            .into_iter()
            .map(|n| FirewallNetwork {
                bridge: n.bridge,
                subnet: n.subnet.map(|s| s.to_string()).unwrap_or_default(),
                subnet6: Some(match n.subnet6 {
                    Some(s) => Either::A(s.to_string()),
                    None => Either::B(Null),
                }),
                masquerade: n.masquerade,
                icc: n.icc,
                internal: n.internal,
                tag: n.tag,
            })
            .collect(),
        ports: s
            .ports
            .into_iter()
            .map(|p| PortMapping {
                proto: p.proto.as_str().to_string(),
                host_ip: Some(match p.host_ip {
                    Some(ip) => Either::A(ip.to_string()),
                    None => Either::B(Null),
                }),
                host_port: u32::from(p.host_port),
                container_ip: p.container_ip.to_string(),
                container_ip6: Some(match p.container_ip6 {
                    Some(ip) => Either::A(ip.to_string()),
                    None => Either::B(Null),
                }),
                container_port: u32::from(p.container_port),
                bridge: p.bridge,
                tag: p.tag,
            })
            .collect(),
    }
}

/// Creates our table (nftables) or chains (iptables) if missing; idempotent.
#[napi(ts_return_type = "Promise<void>")]
pub fn firewall_init(
    env: &Env,
    #[napi(ts_arg_type = "'nftables' | 'iptables' | 'none'")] backend: String,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move {
        firewall::init(firewall::BackendName::parse(&backend)?, netns).await
    })
}

/// Applies a batch atomically (nftables: one netlink transaction).
#[napi(ts_return_type = "Promise<void>")]
pub fn apply_firewall(env: &Env, batch: FirewallBatch) -> napi::Result<PromiseRaw<'_, ()>> {
    let parsed = fw_batch(batch);
    promise(env, async move {
        let (backend, netns, batch) = parsed?;
        firewall::apply(backend, netns, batch).await
    })
}

/// Reads back what we made (for reconcile and tests).
#[napi(ts_return_type = "Promise<FirewallState>")]
pub fn firewall_state(
    env: &Env,
    #[napi(ts_arg_type = "'nftables' | 'iptables' | 'none'")] backend: String,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
) -> napi::Result<PromiseRaw<'_, FirewallState>> {
    promise(env, async move {
        let state = firewall::state(firewall::BackendName::parse(&backend)?, netns).await?;
        Ok(js_state(state))
    })
}

/// Removes everything we made in that netns, and nothing else.
#[napi(ts_return_type = "Promise<void>")]
pub fn firewall_reset(
    env: &Env,
    #[napi(ts_arg_type = "'nftables' | 'iptables' | 'none'")] backend: String,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move {
        firewall::reset(firewall::BackendName::parse(&backend)?, netns).await
    })
}

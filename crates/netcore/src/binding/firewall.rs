//! The firewall of a netns: its networks and published ports.

use napi::bindgen_prelude::{Either, Null, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use netcore_derive::Mirror;

use super::mirror::Wire;
use super::promise;
use crate::firewall::{self, BackendName};

/// Per-network firewall state: one bridge and how its traffic is treated.
#[napi(object)]
#[derive(Mirror)]
#[mirror(firewall::Network)]
pub struct FirewallNetwork {
    /// the bridge device
    pub bridge: String,
    /// IPv4 subnets of the network, CIDR (none for an IPv6-only network); the
    /// iptables backend matches on them, both backends protect them
    pub subnets: Option<Vec<String>>,
    /// IPv6 subnets of a dual-stack or IPv6-only network, CIDR (the iptables
    /// backend writes ip6tables rules only for networks with one)
    pub subnets6: Option<Vec<String>>,
    /// masquerade traffic from the subnet that leaves through anything but its own bridge
    pub masquerade: bool,
    /// inter-container communication on this bridge
    pub icc: bool,
    /// no traffic in or out except on the bridge itself
    pub internal: bool,
    /// the network id, used as the rule tag (iptables comment)
    pub tag: String,
    /// gateway mode of IPv4; absent: nat
    #[napi(ts_type = "'nat' | 'nat-unprotected' | 'routed'")]
    #[mirror(default = firewall::GatewayMode::Nat)]
    pub mode4: Option<String>,
    /// gateway mode of IPv6; absent: nat
    #[napi(ts_type = "'nat' | 'nat-unprotected' | 'routed'")]
    #[mirror(default = firewall::GatewayMode::Nat)]
    pub mode6: Option<String>,
    /// in nat mode, drop traffic to the subnets that comes in through anything
    /// but the bridge, loopback and `trusted`; absent: true
    #[mirror(default = true)]
    pub protect: Option<bool>,
    /// host interfaces through which direct routing to the network may come in
    pub trusted: Option<Vec<String>>,
}

/// One published port (a range is expanded into one mapping per port by the caller).
#[napi(object)]
#[derive(Mirror)]
#[mirror(firewall::Port)]
pub struct PortMapping {
    #[napi(ts_type = "'tcp' | 'udp' | 'sctp'")]
    pub proto: String,
    /// host address (IPv4 or IPv6, which limits the mapping to that family);
    /// absent/null: every local address of both families
    #[napi(ts_type = "string | null")]
    pub host_ip: Option<Either<String, Null>>,
    pub host_port: u32,
    /// published on IPv4 to this container address; null: not on IPv4
    #[napi(ts_type = "string | null")]
    pub container_ip: Option<Either<String, Null>>,
    /// published on IPv6 to this container address (unless host_ip is a
    /// specific IPv4 address); absent/null: not on IPv6
    #[napi(ts_type = "string | null")]
    pub container_ip6: Option<Either<String, Null>>,
    pub container_port: u32,
    /// the bridge the container sits behind (iptables rules use it)
    pub bridge: String,
    /// the endpoint id, used as the rule tag
    pub tag: String,
    /// IPv4: the container port is opened for direct routing (routed gateway
    /// mode) instead of published by DNAT; the host port is not used
    pub routed4: Option<bool>,
    /// the same for IPv6
    pub routed6: Option<bool>,
}

/// A legacy link on a network without icc: `from` may open connections to
/// `to` on `port`, and the replies come back.
#[napi(object)]
#[derive(Mirror)]
#[mirror(firewall::Link)]
pub struct FirewallLink {
    #[napi(ts_type = "'tcp' | 'udp' | 'sctp'")]
    pub proto: String,
    /// the linking sandbox's address
    pub from: String,
    /// the linked sandbox's address, of the same family
    pub to: String,
    pub port: u32,
    /// the bridge of both ("" when the backend does not keep it)
    pub bridge: String,
    /// the rule tag ("" when the backend does not keep it)
    pub tag: String,
}

/// What the firewall of one netns holds that we made.
#[napi(object)]
#[derive(Mirror)]
#[mirror(firewall::State)]
pub struct FirewallState {
    pub networks: Vec<FirewallNetwork>,
    pub ports: Vec<PortMapping>,
    pub links: Vec<FirewallLink>,
    /// whether the fixed part (tables, chains and their rules) is all there, as init makes it
    pub base_intact: bool,
}

// Not the mirror of one domain type: the backend and netns are arguments of
// `firewall::apply`, the lists make a `firewall::Batch`.
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
    #[napi(ts_type = "FirewallLink[] | null")]
    pub add_links: Option<Vec<FirewallLink>>,
    #[napi(ts_type = "FirewallLink[] | null")]
    pub remove_links: Option<Vec<FirewallLink>>,
}

impl FirewallBatch {
    fn into_domain(self) -> crate::error::Result<(BackendName, Option<String>, firewall::Batch)> {
        let batch = firewall::Batch {
            add_networks: Wire::from_js(self.add_networks, "add_networks")?,
            remove_networks: Wire::from_js(self.remove_networks, "remove_networks")?,
            add_ports: Wire::from_js(self.add_ports, "add_ports")?,
            remove_ports: Wire::from_js(self.remove_ports, "remove_ports")?,
            add_links: Wire::from_js(self.add_links, "add_links")?,
            remove_links: Wire::from_js(self.remove_links, "remove_links")?,
        };
        Ok((Wire::from_js(self.backend, "backend")?, self.netns, batch))
    }
}

/// Creates our table (nftables) or chains (iptables) if missing, and puts
/// back a fixed part changed by hand; idempotent. True when it had to: what
/// they held may be gone, reconcile restores it.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn firewall_init(
    env: &Env,
    #[napi(ts_arg_type = "'nftables' | 'iptables' | 'none'")] backend: String,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move {
        firewall::init(BackendName::parse(&backend)?, netns).await
    })
}

/// Applies a batch atomically (nftables: one netlink transaction).
#[napi(ts_return_type = "Promise<void>")]
pub fn apply_firewall(env: &Env, batch: FirewallBatch) -> napi::Result<PromiseRaw<'_, ()>> {
    let parsed = batch.into_domain();
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
        let state = firewall::state(BackendName::parse(&backend)?, netns).await?;
        Ok(state.to_js())
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
        firewall::reset(BackendName::parse(&backend)?, netns).await
    })
}

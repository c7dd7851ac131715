//! The firewall of one netns: port publishing (DNAT), masquerade, isolation
//! between bridges, inter-container communication and internal networks.
//!
//! One trait, one file per backend, a `none` backend and a selector, in the
//! shape of netavark's `FirewallDriver`:
//!
//! - [`nftables`] (default): a fixed base ruleset in `table ip cnm` and its
//!   IPv6 twin `table ip6 cnm`, created once; networks and published ports
//!   are only set/map elements, changed in one nfnetlink transaction that
//!   spans both tables, so one change costs the same however many exist.
//! - [`iptables`]: our own chains (`CNM-*`) in the nat and filter tables of
//!   iptables and ip6tables, changed through one `iptables-restore --noflush`
//!   (and one `ip6tables-restore --noflush` when IPv6 rules change) per call,
//!   each rule tagged with a comment `cnm:net:<tag>` / `cnm:ep:<tag>/<bridge>`.
//!
//! IPv6 gets the same treatment as IPv4: isolation between bridges, internal
//! networks, icc, masquerade and published ports (a port is published on
//! IPv6 too when it has a container IPv6 address and no specific IPv4 host
//! address).
//! - [`none`]: does nothing.
//!
//! Every value is parsed and validated here before a backend sees it; no
//! backend builds a shell command line, and spawned programs get their
//! arguments as a vector and their rule text on stdin.

pub mod exec;
pub mod iptables;
pub(crate) mod nfnl;
pub mod nftables;
pub mod none;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ns_label, Error, Result};
use crate::netns::blocking;

/// A transport protocol a port can be published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn parse(s: &str) -> Result<Proto> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(Error::invalid(format!(
                "invalid protocol {s:?}: expected tcp, udp or sctp"
            ))),
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IPv4 subnet, stored as its network address (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = || Error::invalid(format!("invalid IPv4 subnet {s:?}: expected a.b.c.d/len"));
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > 32 || len.starts_with('+') {
            return Err(bad());
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        Ok(Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv6 subnet, stored as its network address (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet6 {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    pub fn parse(s: &str) -> Result<Subnet6> {
        let bad = || Error::invalid(format!("invalid IPv6 subnet {s:?}: expected addr/len"));
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > 128 || len.starts_with('+') {
            return Err(bad());
        }
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(prefix))
        };
        Ok(Subnet6 {
            addr: Ipv6Addr::from(u128::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How a network meets the world in one address family: Docker's gateway
/// modes (its `isolated` mode is, for the firewall, an internal `nat` one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GatewayMode {
    /// Published ports by DNAT on host addresses, outgoing traffic masqueraded;
    /// only published container ports are open from outside.
    #[default]
    Nat,
    /// Nat without any filtering of direct access (Docker's legacy default).
    NatUnprotected,
    /// No NAT: published container ports are open for direct routing from
    /// anywhere (other networks too), the rest is closed.
    Routed,
}

impl GatewayMode {
    pub fn parse(s: &str) -> Result<GatewayMode> {
        match s {
            "nat" => Ok(GatewayMode::Nat),
            "nat-unprotected" => Ok(GatewayMode::NatUnprotected),
            "routed" => Ok(GatewayMode::Routed),
            _ => Err(Error::invalid(format!(
                "invalid gateway mode {s:?}: expected nat, nat-unprotected or routed"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GatewayMode::Nat => "nat",
            GatewayMode::NatUnprotected => "nat-unprotected",
            GatewayMode::Routed => "routed",
        }
    }

    /// Whether only published container ports are open from outside.
    pub fn filtered(self) -> bool {
        self != GatewayMode::NatUnprotected
    }
}

impl fmt::Display for GatewayMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bridge network and how its traffic is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub bridge: String,
    /// The IPv4 subnets (none for an IPv6-only network). The iptables backend
    /// matches on them; nftables keys everything on the bridge and does not
    /// keep them (its state reports none).
    pub subnets: Vec<Subnet>,
    /// The IPv6 subnets of a dual-stack or IPv6-only network.
    pub subnets6: Vec<Subnet6>,
    pub masquerade: bool,
    pub icc: bool,
    pub internal: bool,
    pub tag: String,
    /// The gateway mode of IPv4 and of IPv6.
    pub mode4: GatewayMode,
    pub mode6: GatewayMode,
    /// In `nat` mode, drop traffic to the subnets of the family that comes in
    /// through anything but the bridge, loopback and `trusted` (direct
    /// routing); false when the daemon allows direct routing.
    pub protect: bool,
    /// Host interfaces through which direct routing to the network may come in.
    pub trusted: Vec<String>,
}

impl Network {
    /// Whether direct access to the network's IPv4 (false) or IPv6 (true)
    /// subnets is dropped.
    pub fn protected(&self, v6: bool) -> bool {
        let mode = if v6 { self.mode6 } else { self.mode4 };
        self.protect && mode == GatewayMode::Nat
    }
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub proto: Proto,
    /// A host address the port is published on (IPv4 or IPv6, which limits the
    /// mapping to that family); None: every address of both families.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// None for an endpoint with no IPv4 address (IPv6-only network).
    pub container_ip: Option<Ipv4Addr>,
    /// None for an endpoint with no IPv6 address.
    pub container_ip6: Option<Ipv6Addr>,
    pub container_port: u16,
    /// "" when unknown (nftables does not hold it).
    pub bridge: String,
    pub tag: String,
    /// Opened for direct routing instead of published by DNAT in IPv4 / IPv6
    /// (the network's `routed` gateway mode): the host port is not used.
    pub routed4: bool,
    pub routed6: bool,
}

/// What a backend reads back of one family of a port.
#[derive(Debug, Clone)]
pub(crate) struct ReadPort<'a> {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// the container address as the backend prints it, of the family `v6` says
    pub container: &'a str,
    pub container_port: u16,
    pub v6: bool,
    /// opened for direct routing rather than published by DNAT
    pub routed: bool,
}

impl Port {
    /// The Port of one family a backend read back (both backends report ports
    /// one per family); None when the container address is not of that family.
    pub(crate) fn read_back(r: ReadPort<'_>, bridge: &str, tag: &str) -> Option<Port> {
        let (container_ip, container_ip6) = if r.v6 {
            (None, Some(r.container.parse::<Ipv6Addr>().ok()?))
        } else {
            (Some(r.container.parse::<Ipv4Addr>().ok()?), None)
        };
        Some(Port {
            proto: r.proto,
            host_ip: r.host_ip,
            host_port: r.host_port,
            container_ip,
            container_ip6,
            container_port: r.container_port,
            bridge: bridge.to_string(),
            tag: tag.to_string(),
            routed4: r.routed && !r.v6,
            routed6: r.routed && r.v6,
        })
    }

    /// The published key: two DNAT mappings with the same key cannot coexist.
    pub fn key(&self) -> (Proto, Option<IpAddr>, u16) {
        (self.proto, self.host_ip, self.host_port)
    }

    /// The container address the port is published to on IPv4, if any: an
    /// IPv6 host address limits a mapping to IPv6.
    pub fn v4_target(&self) -> Option<Ipv4Addr> {
        match self.host_ip {
            Some(IpAddr::V6(ip)) if !ip.is_unspecified() => None,
            _ => self.container_ip,
        }
    }

    /// The container address the port is published to on IPv6, if any: an
    /// IPv4 host address limits a mapping to IPv4.
    pub fn v6_target(&self) -> Option<Ipv6Addr> {
        match self.host_ip {
            Some(IpAddr::V4(ip)) if !ip.is_unspecified() => None,
            _ => self.container_ip6,
        }
    }

    /// The specific IPv4 host address of a mapping, if it has one.
    pub fn host_ip4(&self) -> Option<Ipv4Addr> {
        match self.host_ip {
            Some(IpAddr::V4(ip)) if !ip.is_unspecified() => Some(ip),
            _ => None,
        }
    }

    /// The specific IPv6 host address of a mapping, if it has one.
    pub fn host_ip6(&self) -> Option<Ipv6Addr> {
        match self.host_ip {
            Some(IpAddr::V6(ip)) if !ip.is_unspecified() => Some(ip),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.v4_target() {
            let host = self
                .host_ip4()
                .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
            parts.push(if self.routed4 {
                format!("{c}:{} (routed)", self.container_port)
            } else {
                format!("{host}:{} -> {c}:{}", self.host_port, self.container_port)
            });
        }
        if let Some(c) = self.v6_target() {
            let host = self
                .host_ip6()
                .map_or_else(|| "::".to_string(), |ip| ip.to_string());
            parts.push(if self.routed6 {
                format!("[{c}]:{} (routed)", self.container_port)
            } else {
                format!(
                    "[{host}]:{} -> [{c}]:{}",
                    self.host_port, self.container_port
                )
            });
        }
        format!("{}/{}", self.proto, parts.join(" and "))
    }
}

/// A legacy link (Docker's --link) on a network without icc: `from` may open
/// connections to `to` on one port, and the replies come back; nothing else
/// passes between the two. Both addresses are of one family and one bridge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub proto: Proto,
    pub from: IpAddr,
    pub to: IpAddr,
    pub port: u16,
    /// the bridge of both ("" when unknown: nftables does not hold it)
    pub bridge: String,
    /// the rule tag ("" when unknown: nftables does not hold it)
    pub tag: String,
}

impl Link {
    /// One family, a real port, and the names that end up in rules.
    pub fn validate(&self) -> Result<()> {
        if self.from.is_ipv4() != self.to.is_ipv4() {
            return Err(Error::invalid(format!(
                "link {} -> {}: the two addresses must be of one family",
                self.from, self.to
            )));
        }
        if self.port == 0 {
            return Err(Error::invalid(format!(
                "link {} -> {}: port 0",
                self.from, self.to
            )));
        }
        if !self.bridge.is_empty() {
            validate_ifname(&self.bridge)?;
        }
        validate_tag(&self.tag)
    }

    /// What a link is, for messages.
    pub fn describe(&self) -> String {
        format!("{} -> {}:{}/{}", self.from, self.to, self.port, self.proto)
    }

    /// The same link without what nftables does not keep.
    pub fn key(&self) -> (Proto, IpAddr, IpAddr, u16) {
        (self.proto, self.from, self.to, self.port)
    }
}

/// One atomic change to the firewall of one netns.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub add_networks: Vec<Network>,
    pub remove_networks: Vec<Network>,
    pub add_ports: Vec<Port>,
    pub remove_ports: Vec<Port>,
    pub add_links: Vec<Link>,
    pub remove_links: Vec<Link>,
}

impl Network {
    /// The names that end up in rules: the bridge, the trusted interfaces and the tag.
    pub fn validate(&self) -> Result<()> {
        validate_ifname(&self.bridge)?;
        for t in &self.trusted {
            validate_ifname(t)?;
        }
        validate_tag(&self.tag)
    }
}

impl Port {
    /// The names that end up in rules: the bridge (when known) and the tag; and
    /// a mapping that publishes in at least one family.
    pub fn validate(&self) -> Result<()> {
        if !self.bridge.is_empty() {
            validate_ifname(&self.bridge)?;
        }
        if self.v4_target().is_none() && self.v6_target().is_none() {
            return Err(Error::invalid(format!(
                "port {}/{}: no container address of the family of host address {}",
                self.proto,
                self.container_port,
                self.host_ip
                    .map_or_else(|| "(any)".to_string(), |ip| ip.to_string())
            )));
        }
        validate_tag(&self.tag)
    }
}

impl Batch {
    /// Every network and port of the batch, before any backend sees it.
    pub fn validate(&self) -> Result<()> {
        let networks = self.add_networks.iter().chain(&self.remove_networks);
        let ports = self.add_ports.iter().chain(&self.remove_ports);
        let links = self.add_links.iter().chain(&self.remove_links);
        networks
            .map(Network::validate)
            .chain(ports.map(Port::validate))
            .chain(links.map(Link::validate))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.add_networks.is_empty()
            && self.remove_networks.is_empty()
            && self.add_ports.is_empty()
            && self.remove_ports.is_empty()
            && self.add_links.is_empty()
            && self.remove_links.is_empty()
    }
}

/// What the firewall of one netns holds that we made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub networks: Vec<Network>,
    pub ports: Vec<Port>,
    pub links: Vec<Link>,
    /// Whether the fixed part (tables, chains and their rules) is all there,
    /// as `init` makes it: false after a flush by hand, which may leave every
    /// network and port listed while no rule looks at them.
    pub base_intact: bool,
}

/// Interface names as the kernel takes them: 1..15 bytes, no '/', ':' or
/// whitespace, not "." or ".."; and, since iptables rules name them, no
/// quotes, backslash, '#' or control characters.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad_char = |c: char| {
        c == '/'
            || c == ':'
            || c.is_whitespace()
            || c.is_control()
            || matches!(c, '"' | '\'' | '\\' | '#')
    };
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || name.contains(bad_char)
    {
        return Err(Error::invalid(format!("invalid interface name {name:?}")).ifname(name));
    }
    Ok(())
}

/// Tags (network and endpoint ids): up to 200 of [A-Za-z0-9_.:-], possibly
/// empty. They end up in iptables comments.
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if tag.len() > 200 || !tag.chars().all(ok) {
        return Err(Error::invalid(format!(
            "invalid firewall tag {tag:?}: up to 200 of A-Z a-z 0-9 _ . : -"
        )));
    }
    Ok(())
}

/// The order both backends report ports in.
pub(crate) fn sort_ports(ports: &mut [Port]) {
    ports.sort_by_key(|p| {
        (
            p.host_ip,
            p.proto.number(),
            p.host_port,
            p.container_ip,
            p.container_ip6,
            p.routed4 || p.routed6,
        )
    });
}

pub fn parse_ipv4(s: &str, what: &str) -> Result<Ipv4Addr> {
    s.parse()
        .map_err(|_| Error::invalid(format!("invalid {what} {s:?}: expected an IPv4 address")))
}

pub fn parse_ip(s: &str, what: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|_| Error::invalid(format!("invalid {what} {s:?}: expected an IP address")))
}

pub fn parse_ipv6(s: &str, what: &str) -> Result<Ipv6Addr> {
    s.parse()
        .map_err(|_| Error::invalid(format!("invalid {what} {s:?}: expected an IPv6 address")))
}

pub fn parse_port(n: u32, what: &str) -> Result<u16> {
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::invalid(format!(
            "invalid {what} {n}: expected 1..65535"
        ))),
    }
}

/// A backend selected by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendName {
    Nftables,
    Iptables,
    None,
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendName::Nftables => "nftables",
            BackendName::Iptables => "iptables",
            BackendName::None => "none",
        })
    }
}

impl BackendName {
    pub fn parse(s: &str) -> Result<BackendName> {
        match s {
            "nftables" => Ok(BackendName::Nftables),
            "iptables" => Ok(BackendName::Iptables),
            "none" => Ok(BackendName::None),
            _ => Err(Error::invalid(format!(
                "invalid firewall backend {s:?}: expected nftables, iptables or none"
            ))),
        }
    }
}

/// A firewall backend. Methods block (netlink round trips or a spawned
/// program) and run on a blocking pool thread, never on the JS thread; work
/// inside a netns happens through a socket opened inside it or a child
/// process that entered it, never by moving a shared thread.
///
/// `netns` None is the process's own netns. Every method is idempotent for
/// the same input: `init` twice leaves one base ruleset, `apply` of a removal
/// of something absent is no error, `reset` of nothing is no error. Adding a
/// port whose (proto, host address, host port) is already published fails
/// with ERR_PORT_ALLOCATED and changes nothing.
pub trait FirewallBackend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Creates our table or chains if missing, and puts back a fixed part
    /// changed by hand. True when it had to (what they held may be gone:
    /// the caller reconciles).
    fn init(&self, netns: Option<&str>) -> Result<bool>;
    /// Applies a whole batch or nothing of it.
    fn apply(&self, netns: Option<&str>, batch: &Batch) -> Result<()>;
    /// Reads back what we made.
    fn state(&self, netns: Option<&str>) -> Result<State>;
    /// Removes everything we made, and nothing else.
    fn reset(&self, netns: Option<&str>) -> Result<()>;
}

pub fn backend(name: BackendName) -> &'static dyn FirewallBackend {
    match name {
        BackendName::Nftables => &nftables::Nftables,
        BackendName::Iptables => &iptables::Iptables,
        BackendName::None => &none::NoFirewall,
    }
}

/// Forgets cached sockets of a netns (see `netns::release`).
pub fn release(name: &str) {
    nftables::release(name);
    iptables::release(name);
}

fn check_netns(netns: Option<&str>) -> Result<()> {
    if let Some(n) = netns {
        crate::netns::validate_name(n)?;
    }
    Ok(())
}

/// Runs `op` (`what`, for messages) with backend `name` for `netns` on a
/// blocking thread; its errors carry the netns.
async fn run<T, F>(what: &str, name: BackendName, netns: Option<String>, op: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn FirewallBackend, Option<&str>) -> Result<T> + Send + 'static,
{
    check_netns(netns.as_deref())?;
    let what = format!("{what} ({name}) in netns {}", ns_label(netns.as_deref()));
    blocking(what, move || {
        op(backend(name), netns.as_deref()).map_err(|e| e.netns(netns.as_deref()))
    })
    .await
}

pub async fn init(name: BackendName, netns: Option<String>) -> Result<bool> {
    run("init the firewall", name, netns, |b, ns| b.init(ns)).await
}

pub async fn apply(name: BackendName, netns: Option<String>, batch: Batch) -> Result<()> {
    batch.validate().map_err(|e| {
        let ns = netns.as_deref();
        e.context(format!("apply a firewall batch in netns {}", ns_label(ns)))
            .netns(ns)
    })?;
    if batch.is_empty() {
        return Ok(());
    }
    run("apply a firewall batch", name, netns, move |b, ns| {
        b.apply(ns, &batch)
    })
    .await
}

pub async fn state(name: BackendName, netns: Option<String>) -> Result<State> {
    run("read the firewall", name, netns, |b, ns| b.state(ns)).await
}

pub async fn reset(name: BackendName, netns: Option<String>) -> Result<()> {
    run("reset the firewall", name, netns, |b, ns| b.reset(ns)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn values() {
        assert_eq!(Proto::parse("sctp").unwrap().number(), 132);
        assert!(Proto::parse("icmp").is_err());
        let s = Subnet::parse("10.1.2.3/24").unwrap();
        assert_eq!(s.to_string(), "10.1.2.0/24");
        assert_eq!(Subnet::parse("0.0.0.0/0").unwrap().prefix, 0);
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/24", "10.0.0.0/+8"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
        let s6 = Subnet6::parse("fd00:1::5/64").unwrap();
        assert_eq!(s6.to_string(), "fd00:1::/64");
        assert_eq!(Subnet6::parse("::/0").unwrap().prefix, 0);
        for bad in ["fd00::", "fd00::/129", "10.0.0.0/8", "fd00::/+8"] {
            assert!(Subnet6::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_ipv6("fd00::1", "x").is_ok());
        assert!(parse_ipv6("10.0.0.1", "x").is_err());
        assert!(validate_ifname("br-0123456789a").is_ok());
        for bad in ["", "a/b", "a b", "0123456789abcdef", "a:b", "a\"b", ".."] {
            assert_eq!(
                validate_ifname(bad).unwrap_err().code,
                ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
        assert!(validate_tag("").is_ok());
        assert!(validate_tag("net-1:abc_.9").is_ok());
        assert!(validate_tag("a b").is_err());
        assert!(validate_tag("a/b").is_err());
        assert_eq!(parse_port(65535, "p").unwrap(), 65535);
        assert!(parse_port(0, "p").is_err());
        assert!(parse_port(65536, "p").is_err());
    }
}

//! Links: bridges, veth endpoints, deletion and listing.
//!
//! Each public call is one intent and undoes its own partial work when a
//! later step fails.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{
    Handle, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::addr::{self, Cidr};
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::{netns, nl, route};

/// Interface names: 1..15 bytes, no '/', no whitespace, no NUL, not "." or "..".
pub fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\0' || c == ':' || c.is_whitespace())
    {
        return Err(Error::invalid(format!("invalid interface name {name:?}")).ifname(name));
    }
    Ok(())
}

fn validate_netns(netns: Option<&str>) -> Result<()> {
    match netns {
        Some(n) => netns::validate_name(n),
        None => Ok(()),
    }
}

pub fn parse_mac(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::invalid(format!("invalid MAC address {s:?}"));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    parts
        .iter()
        .map(|p| {
            if p.len() != 2 {
                return Err(bad());
            }
            u8::from_str_radix(p, 16).map_err(|_| bad())
        })
        .collect()
}

pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn validate_mtu(mtu: Option<u32>) -> Result<()> {
    match mtu {
        Some(m) if !(68..=65535).contains(&m) => {
            Err(Error::invalid(format!("invalid MTU {m} (68..65535)")))
        }
        _ => Ok(()),
    }
}

/// What listLinks reports for one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkDetails {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub master: Option<u32>,
    pub mtu: u32,
    pub mac: String,
    pub up: bool,
    pub addresses: Vec<String>,
}

pub fn details(msg: &LinkMessage) -> LinkDetails {
    let mut d = LinkDetails {
        index: msg.header.index,
        up: msg.header.flags.contains(LinkFlags::Up),
        ..Default::default()
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => d.name = n.clone(),
            LinkAttribute::Mtu(m) => d.mtu = *m,
            LinkAttribute::Address(a) => d.mac = format_mac(a),
            LinkAttribute::Controller(m) if *m != 0 => d.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        d.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    d
}

fn name_message(name: &str) -> LinkMessage {
    LinkUnspec::new_with_name(name).build()
}

/// RTM_GETLINK by name; Ok(None) when there is no such link.
async fn get_by_name(
    handle: &Handle,
    name: &str,
) -> std::result::Result<Option<LinkMessage>, nl::Errno> {
    match nl::send(
        handle,
        RouteNetlinkMessage::GetLink(name_message(name)),
        nl::GET,
    )
    .await
    {
        Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(m) => Some(m),
            _ => None,
        })),
        Err(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Default-route gateways of an attach: the first IPv4, the second IPv6.
fn parse_gateways(
    gateway: Option<&str>,
    gateway6: Option<&str>,
) -> Result<(Option<std::net::IpAddr>, Option<std::net::IpAddr>)> {
    let gateway = gateway.map(addr::parse_ip).transpose()?;
    let gateway6 = gateway6.map(addr::parse_ip).transpose()?;
    if gateway.is_some_and(|g| !g.is_ipv4()) {
        return Err(Error::invalid("gateway must be an IPv4 address"));
    }
    if gateway6.is_some_and(|g| !g.is_ipv6()) {
        return Err(Error::invalid("gateway6 must be an IPv6 address"));
    }
    Ok((gateway, gateway6))
}

/// The index of link `name` in `netns`, or ERR_LINK_NOT_FOUND.
pub(crate) async fn index_of(handle: &Handle, netns: Option<&str>, name: &str) -> Result<u32> {
    match get_by_name(handle, name).await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(not_found(name, netns)),
        Err(e) => Err(lookup_error(e, name, netns)),
    }
}

fn lookup_error(errno: nl::Errno, name: &str, netns: Option<&str>) -> Error {
    Error::from_errno(
        errno,
        format_args!("look up link {name} in netns {}", ns_label(netns)),
    )
    .ifname(name)
    .netns(netns)
}

fn not_found(name: &str, netns: Option<&str>) -> Error {
    Error::new(
        ErrorCode::LinkNotFound,
        format!("link {name} not found in netns {}", ns_label(netns)),
    )
    .ifname(name)
    .netns(netns)
}

/// The echoed link named `name` in create replies, else a lookup by name.
async fn created_link(
    handle: &Handle,
    replies: Vec<RouteNetlinkMessage>,
    name: &str,
    netns: Option<&str>,
) -> Result<LinkDetails> {
    let echoed = replies.into_iter().find_map(|r| match r {
        RouteNetlinkMessage::NewLink(m) => {
            let d = details(&m);
            (d.name == name && d.index != 0).then_some(d)
        }
        _ => None,
    });
    if let Some(d) = echoed {
        return Ok(d);
    }
    match get_by_name(handle, name).await {
        Ok(Some(m)) => Ok(details(&m)),
        Ok(None) => Err(not_found(name, netns)),
        Err(e) => Err(lookup_error(e, name, netns)),
    }
}

fn up_message(index: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build())
}

/// Brings link `index` up (`name` is for messages only).
pub async fn set_up(handle: &Handle, netns: Option<&str>, index: u32, name: &str) -> Result<()> {
    nl::send(handle, up_message(index), nl::ACK)
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::from_errno(
                e,
                format_args!("set {name} up in netns {}", ns_label(netns)),
            )
            .ifname(name)
            .netns(netns)
        })
}

/// Deletes link `index`; Ok(false) when it is already gone.
async fn delete_index(handle: &Handle, index: u32) -> std::result::Result<bool, nl::Errno> {
    let msg = LinkUnspec::new_with_index(index).build();
    match nl::send(handle, RouteNetlinkMessage::DelLink(msg), nl::ACK).await {
        Ok(_) => Ok(true),
        Err(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, Default)]
pub struct BridgeSpec {
    pub netns: Option<String>,
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
}

#[derive(Debug, Clone)]
pub struct BridgeResult {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: String,
    pub created: bool,
}

/// Adds addresses, all in flight at once; EEXIST is fine.
async fn add_addresses_idempotent(
    handle: &Handle,
    netns: Option<&str>,
    index: u32,
    name: &str,
    cidrs: &[Cidr],
) -> Result<()> {
    let pending: Vec<_> = cidrs
        .iter()
        // no DAD: the gateway address is ours alone, and a tentative address would
        // leave sandboxes without an IPv6 router for a second
        .map(|c| nl::send(handle, addr::add_message(index, *c, true), nl::CREATE))
        .collect();
    let results = futures::future::join_all(pending).await;
    for (cidr, r) in cidrs.iter().zip(results) {
        match r {
            Ok(_) | Err(libc::EEXIST) => {}
            Err(e) => {
                return Err(Error::from_errno(
                    e,
                    format_args!("add address {cidr} to {name} in netns {}", ns_label(netns)),
                )
                .ifname(name)
                .netns(netns))
            }
        }
    }
    Ok(())
}

/// Makes sure bridge `spec.name` exists, is up and has `spec.addresses`.
pub async fn ensure_bridge(spec: &BridgeSpec) -> Result<BridgeResult> {
    let netns = spec.netns.as_deref();
    validate_netns(netns)?;
    validate_ifname(&spec.name)?;
    validate_mtu(spec.mtu)?;
    let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
    let cidrs = addr::parse_all(&spec.addresses)?;
    let name = spec.name.as_str();
    let handle = netns::handle(netns).await?;

    let existing = get_by_name(&handle, name)
        .await
        .map_err(|e| lookup_error(e, name, netns))?;
    if let Some(msg) = existing {
        let d = details(&msg);
        if d.kind.as_deref() != Some("bridge") {
            return Err(Error::invalid(format!(
                "link {name} in netns {} exists and is not a bridge (kind {})",
                ns_label(netns),
                d.kind.as_deref().unwrap_or("none")
            ))
            .ifname(name)
            .netns(netns));
        }
        let mut set = LinkUnspec::new_with_index(d.index);
        if let Some(mtu) = spec.mtu {
            set = set.mtu(mtu);
        }
        if spec.up {
            set = set.up();
        }
        if spec.mtu.is_some() || spec.up {
            let setting = nl::send(&handle, RouteNetlinkMessage::SetLink(set.build()), nl::ACK);
            let adding = add_addresses_idempotent(&handle, netns, d.index, name, &cidrs);
            let (set_result, add_result) = futures::join!(setting, adding);
            set_result.map_err(|e| {
                Error::from_errno(
                    e,
                    format_args!("set bridge {name} in netns {}", ns_label(netns)),
                )
                .ifname(name)
                .netns(netns)
            })?;
            add_result?;
        } else {
            add_addresses_idempotent(&handle, netns, d.index, name, &cidrs).await?;
        }
        return Ok(BridgeResult {
            ifindex: d.index,
            name: d.name,
            mtu: spec.mtu.unwrap_or(d.mtu),
            mac: d.mac,
            created: false,
        });
    }

    let mut builder = LinkMessageBuilder::<rtnetlink::LinkBridge>::new(name);
    if let Some(mtu) = spec.mtu {
        builder = builder.mtu(mtu);
    }
    if let Some(mac) = mac {
        builder = builder.address(mac);
    }
    if spec.up {
        builder = builder.up();
    }
    let replies = nl::send(
        &handle,
        RouteNetlinkMessage::NewLink(builder.build()),
        nl::CREATE_ECHO,
    )
    .await
    .map_err(|e| create_error(e, format!("create bridge {name}"), name, netns))?;
    let made = created_link(&handle, replies, name, netns).await?;
    let configured = async {
        crate::fault::point("netcore.bridge.created")?;
        add_addresses_idempotent(&handle, netns, made.index, name, &cidrs).await
    };
    if let Err(e) = configured.await {
        let _ = delete_index(&handle, made.index).await;
        return Err(e);
    }
    Ok(BridgeResult {
        ifindex: made.index,
        name: made.name,
        mtu: made.mtu,
        mac: made.mac,
        created: true,
    })
}

fn create_error(errno: nl::Errno, what: String, ifname: &str, netns: Option<&str>) -> Error {
    let ctx = format!("{what} in netns {}", ns_label(netns));
    let e = match errno {
        libc::EEXIST => Error::with_errno(ErrorCode::LinkExists, errno, ctx),
        _ => Error::from_errno(errno, ctx),
    };
    e.ifname(ifname).netns(netns)
}

/// Deletes link `name`; Ok(false) when there is none.
pub async fn delete(netns: Option<&str>, name: &str) -> Result<bool> {
    validate_netns(netns)?;
    validate_ifname(name)?;
    // a delete is safe to repeat: when its reply was lost (the connection was
    // dropped on an overrun), ask again on a fresh socket; ENODEV then most
    // likely means our first request did it
    let mut lost = false;
    let mut attempt = 0;
    loop {
        let handle = netns::handle(netns).await?;
        let sent = nl::send(
            &handle,
            RouteNetlinkMessage::DelLink(name_message(name)),
            nl::ACK,
        );
        match sent.await {
            Ok(_) => return Ok(true),
            Err(libc::ENODEV) => return Ok(lost),
            Err(libc::ENOBUFS | libc::ECONNRESET) if attempt < 2 => {
                lost = true;
                attempt += 1;
            }
            Err(e) => {
                return Err(Error::from_errno(
                    e,
                    format_args!("delete link {name} in netns {}", ns_label(netns)),
                )
                .ifname(name)
                .netns(netns))
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct VethSpec {
    pub host_netns: Option<String>,
    pub sandbox_netns: String,
    pub host_ifname: String,
    pub master: Option<String>,
    pub ifname: String,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    pub gateway6: Option<String>,
    pub hairpin: bool,
}

#[derive(Debug, Clone)]
pub struct VethResult {
    pub host_ifindex: u32,
    pub ifindex: u32,
    pub mac: String,
    pub host_mac: String,
}

/// One endpoint attach: a veth pair whose peer is born inside the sandbox
/// netns with its final name, then lo up, addresses and default routes there.
/// On failure the host end (and so the pair) is deleted.
pub async fn attach_veth(spec: &VethSpec) -> Result<VethResult> {
    let host_ns = spec.host_netns.as_deref();
    let sandbox = spec.sandbox_netns.as_str();
    validate_netns(host_ns)?;
    netns::validate_name(sandbox)?;
    validate_ifname(&spec.host_ifname)?;
    validate_ifname(&spec.ifname)?;
    if let Some(m) = &spec.master {
        validate_ifname(m)?;
    }
    validate_mtu(spec.mtu)?;
    let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
    let cidrs = addr::parse_all(&spec.addresses)?;
    let (gateway, gateway6) = parse_gateways(spec.gateway.as_deref(), spec.gateway6.as_deref())?;
    let host_if = spec.host_ifname.as_str();
    let peer_if = spec.ifname.as_str();

    let (host, sb) = futures::try_join!(netns::handle(host_ns), netns::handle(Some(sandbox)))?;
    let host_file = match host_ns {
        Some(n) => netns::open(n)?,
        None => std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| Error::from_io(&e, "open the process netns"))?,
    };
    // Independent of everything else: in flight from the start.
    let lo_up = nl::send(&sb, up_message(1), nl::ACK);

    let master = match spec.master.as_deref() {
        Some(m) => match get_by_name(&host, m).await {
            Ok(Some(msg)) => Some(msg.header.index),
            Ok(None) => return Err(not_found(m, host_ns)),
            Err(e) => return Err(lookup_error(e, m, host_ns)),
        },
        None => None,
    };

    // The pair is created through the sandbox's socket: the sandbox end is
    // the main link (final name, MTU, MAC, up; echoed back with its index),
    // the host end is the peer, born in the host netns through
    // IFLA_NET_NS_FD. Nothing is moved or renamed afterwards.
    let mut host_end = LinkUnspec::new_with_name(host_if);
    if let Some(mtu) = spec.mtu {
        host_end = host_end.mtu(mtu);
    }
    let host_end = host_end.setns_by_fd(host_file.as_raw_fd()).build();
    let mut veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(peer_if.to_string());
    if let Some(mtu) = spec.mtu {
        veth = veth.mtu(mtu);
    }
    if let Some(mac) = mac {
        veth = veth.address(mac);
    }
    let veth = veth
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(host_end)))
        .build();
    let replies = nl::send(&sb, RouteNetlinkMessage::NewLink(veth), nl::CREATE_ECHO)
        .await
        .map_err(|e| {
            create_error(
                e,
                format!("create veth {host_if} (peer {peer_if} in netns {sandbox})"),
                host_if,
                host_ns,
            )
        })?;
    drop(host_file);
    let peer = match created_link(&sb, replies, peer_if, Some(sandbox)).await {
        Ok(d) => d,
        Err(e) => {
            let _ = delete(Some(sandbox), peer_if).await;
            return Err(e);
        }
    };
    if let Err(e) = crate::fault::point("netcore.veth.created") {
        let _ = delete_index(&sb, peer.index).await;
        return Err(e);
    }

    // Host end: master and up, then read back; sandbox end: addresses and
    // routes. Both netns at once.
    let mut set = LinkUnspec::new_with_name(host_if).up();
    if let Some(index) = master {
        set = set.controller(index);
    }
    let host_set = nl::send(&host, RouteNetlinkMessage::SetLink(set.build()), nl::ACK);
    // Bridge-port options only exist once the master is set; the kernel handles
    // this socket's requests in order, so no wait is needed before sending.
    let hairpin = (spec.hairpin && master.is_some()).then(|| {
        let port = LinkBridgePort::new(0)
            .name(host_if.to_string())
            .hairpin(true)
            .build();
        nl::send(&host, RouteNetlinkMessage::NewLink(port), nl::ACK)
    });
    let host_get = get_by_name(&host, host_if);
    let host_side = async {
        host_set.await.map_err(|e| {
            Error::from_errno(
                e,
                format_args!(
                    "set {host_if} up with master in netns {}",
                    ns_label(host_ns)
                ),
            )
            .ifname(host_if)
            .netns(host_ns)
        })?;
        if let Some(h) = hairpin {
            h.await.map_err(|e| {
                Error::from_errno(
                    e,
                    format_args!("set hairpin on {host_if} in netns {}", ns_label(host_ns)),
                )
                .ifname(host_if)
                .netns(host_ns)
            })?;
        }
        match host_get.await {
            Ok(Some(m)) => Ok(details(&m)),
            Ok(None) => Err(not_found(host_if, host_ns)),
            Err(e) => Err(lookup_error(e, host_if, host_ns)),
        }
    };
    let sandbox_side = configure_peer(spec, &sb, &peer, lo_up, &cidrs, gateway, gateway6);
    let (host_link, configured) = futures::join!(host_side, sandbox_side);
    match (host_link, configured) {
        (Ok(host_link), Ok((ifindex, mac))) => Ok(VethResult {
            host_ifindex: host_link.index,
            ifindex,
            mac,
            host_mac: host_link.mac,
        }),
        (Err(e), _) | (_, Err(e)) => {
            let _ = delete_index(&sb, peer.index).await;
            Err(e)
        }
    }
}

async fn configure_peer(
    spec: &VethSpec,
    sb: &Handle,
    peer: &LinkDetails,
    lo_up: impl std::future::Future<Output = std::result::Result<Vec<RouteNetlinkMessage>, nl::Errno>>,
    cidrs: &[Cidr],
    gateway: Option<std::net::IpAddr>,
    gateway6: Option<std::net::IpAddr>,
) -> Result<(u32, String)> {
    let sandbox = Some(spec.sandbox_netns.as_str());
    let peer_if = spec.ifname.as_str();
    let ctx = |what: String| format!("{what} in netns {}", spec.sandbox_netns);
    let fail = |errno: nl::Errno, what: String| {
        Error::from_errno(errno, ctx(what))
            .ifname(peer_if)
            .netns(sandbox)
    };
    // The kernel handles one socket's requests in order: addresses are in
    // place before the routes that need them, with no wait in between.
    let adds: Vec<_> = cidrs
        .iter()
        .map(|c| nl::send(sb, addr::add_message(peer.index, *c, true), nl::CREATE))
        .collect();
    let routes: Vec<_> = [gateway, gateway6]
        .into_iter()
        .flatten()
        .map(|gw| {
            (
                gw,
                nl::send(sb, route::default_message(gw, peer.index), nl::CREATE),
            )
        })
        .collect();
    lo_up.await.map_err(|e| fail(e, "set lo up".into()))?;
    let added = futures::future::join_all(adds).await;
    for (cidr, r) in cidrs.iter().zip(added) {
        r.map_err(|e| fail(e, format!("add address {cidr} to {peer_if}")))?;
    }
    for (gw, pending) in routes {
        pending
            .await
            .map_err(|e| fail(e, format!("add default route via {gw} dev {peer_if}")))?;
    }
    Ok((peer.index, peer.mac.clone()))
}

/// One static route for [`adopt_link`]: `dst` via `gateway`, or directly
/// connected to the adopted link when there is no gateway.
#[derive(Debug, Clone, Default)]
pub struct StaticRoute {
    pub dst: String,
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AdoptSpec {
    pub host_netns: Option<String>,
    /// the link, in the host netns, made by someone else (a remote plugin)
    pub ifname: String,
    pub sandbox_netns: String,
    /// its name inside the sandbox, e.g. eth0
    pub new_name: String,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    pub gateway6: Option<String>,
    pub routes: Vec<StaticRoute>,
}

#[derive(Debug, Clone)]
pub struct AdoptResult {
    pub ifindex: u32,
    pub mac: String,
}

fn route_message(dst: Cidr, gateway: Option<IpAddr>, oif: u32) -> Result<RouteNetlinkMessage> {
    let bad = |e: _| Error::invalid(format!("invalid route to {dst}: {e}"));
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.ip, dst.prefix)
        .map_err(bad)?
        .output_interface(oif);
    match gateway {
        Some(gw) => b = b.gateway(gw).map_err(bad)?,
        None => b = b.scope(RouteScope::Link),
    }
    Ok(RouteNetlinkMessage::NewRoute(b.build()))
}

/// Moves link `spec.ifname` (made in the host netns by a plugin) into the
/// sandbox netns under its final name, then MTU, MAC, addresses, up, lo up,
/// default and static routes there. Moving between namespaces waits for an
/// RCU grace period: for remote plugins only, never on the bridge path.
/// On failure the link is moved back under its old name (or deleted).
pub async fn adopt_link(spec: &AdoptSpec) -> Result<AdoptResult> {
    let host_ns = spec.host_netns.as_deref();
    let sandbox = spec.sandbox_netns.as_str();
    validate_netns(host_ns)?;
    netns::validate_name(sandbox)?;
    validate_ifname(&spec.ifname)?;
    validate_ifname(&spec.new_name)?;
    validate_mtu(spec.mtu)?;
    let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
    let cidrs = addr::parse_all(&spec.addresses)?;
    let (gateway, gateway6) = parse_gateways(spec.gateway.as_deref(), spec.gateway6.as_deref())?;
    let routes = spec
        .routes
        .iter()
        .map(|r| {
            let dst = addr::parse_cidr(&r.dst)?;
            let gw = r.gateway.as_deref().map(addr::parse_ip).transpose()?;
            if gw.is_some_and(|g| g.is_ipv4() != dst.ip.is_ipv4()) {
                return Err(Error::invalid(format!(
                    "route to {dst}: gateway of another address family"
                )));
            }
            Ok((dst, gw))
        })
        .collect::<Result<Vec<_>>>()?;
    let src = spec.ifname.as_str();
    let name = spec.new_name.as_str();

    let (host, sb) = futures::try_join!(netns::handle(host_ns), netns::handle(Some(sandbox)))?;
    let index = index_of(&host, host_ns, src).await?;
    let sb_file = netns::open(sandbox)?;
    // Move and rename in one request: the link goes down on the move, and a
    // down link can be renamed; the new name never exists in the host netns.
    let mut moved = LinkUnspec::new_with_index(index).name(name);
    if let Some(mtu) = spec.mtu {
        moved = moved.mtu(mtu);
    }
    if let Some(mac) = mac {
        moved = moved.address(mac);
    }
    let moved = moved.setns_by_fd(sb_file.as_raw_fd()).build();
    nl::send(&host, RouteNetlinkMessage::SetLink(moved), nl::ACK)
        .await
        .map_err(|e| {
            let ctx = format!(
                "move {src} from netns {} into netns {sandbox} as {name}",
                ns_label(host_ns)
            );
            match e {
                libc::EEXIST => Error::with_errno(ErrorCode::LinkExists, e, ctx),
                _ => Error::from_errno(e, ctx),
            }
            .ifname(src)
            .netns(host_ns)
        })?;
    drop(sb_file);

    let configured = async {
        let link = match get_by_name(&sb, name).await {
            Ok(Some(m)) => details(&m),
            Ok(None) => return Err(not_found(name, Some(sandbox))),
            Err(e) => return Err(lookup_error(e, name, Some(sandbox))),
        };
        crate::fault::point("netcore.adopt.moved")?;
        let fail = |errno: nl::Errno, what: String| {
            Error::from_errno(errno, format!("{what} in netns {sandbox}"))
                .ifname(name)
                .netns(Some(sandbox))
        };
        // One socket handles requests in order: addresses, then up, then the
        // routes that need both, all in flight together.
        let lo_up = nl::send(&sb, up_message(1), nl::ACK);
        let adds: Vec<_> = cidrs
            .iter()
            .map(|c| nl::send(&sb, addr::add_message(link.index, *c, true), nl::CREATE))
            .collect();
        let up = nl::send(&sb, up_message(link.index), nl::ACK);
        let mut pending = Vec::new();
        for gw in [gateway, gateway6].into_iter().flatten() {
            pending.push((
                format!("add default route via {gw} dev {name}"),
                nl::send(&sb, route::default_message(gw, link.index), nl::CREATE),
            ));
        }
        for (dst, gw) in &routes {
            pending.push((
                format!("add route to {dst} dev {name}"),
                nl::send(&sb, route_message(*dst, *gw, link.index)?, nl::CREATE),
            ));
        }
        lo_up.await.map_err(|e| fail(e, "set lo up".into()))?;
        for (cidr, r) in cidrs.iter().zip(futures::future::join_all(adds).await) {
            r.map_err(|e| fail(e, format!("add address {cidr} to {name}")))?;
        }
        up.await.map_err(|e| fail(e, format!("set {name} up")))?;
        for (what, r) in pending {
            r.await.map_err(|e| fail(e, what))?;
        }
        Ok(AdoptResult {
            ifindex: link.index,
            mac: link.mac,
        })
    };
    match configured.await {
        Ok(r) => Ok(r),
        Err(e) => {
            give_back(spec, &sb).await;
            Err(e)
        }
    }
}

/// Undo of [`adopt_link`]: the link goes back to the host netns under its
/// old name; if that fails, it is deleted.
async fn give_back(spec: &AdoptSpec, sb: &Handle) {
    let Ok(Some(m)) = get_by_name(sb, &spec.new_name).await else {
        return;
    };
    let index = m.header.index;
    let host_file = match spec.host_netns.as_deref() {
        Some(n) => netns::open(n),
        None => std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| Error::from_io(&e, "open the process netns")),
    };
    if let Ok(f) = host_file {
        let back = LinkUnspec::new_with_index(index)
            .name(spec.ifname.as_str())
            .setns_by_fd(f.as_raw_fd())
            .build();
        if nl::send(sb, RouteNetlinkMessage::SetLink(back), nl::ACK)
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = delete_index(sb, index).await;
}

/// Deletes the host end of a veth pair (and so the pair); false when absent.
pub async fn detach_veth(host_netns: Option<&str>, host_ifname: &str) -> Result<bool> {
    delete(host_netns, host_ifname).await
}

/// Every link of `netns` with its addresses.
pub async fn list(netns: Option<&str>) -> Result<Vec<LinkDetails>> {
    validate_netns(netns)?;
    let handle = netns::handle(netns).await?;
    // One dump at a time per socket.
    let links = nl::dump(
        &handle,
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )
    .await;
    let addrs = addr::dump(&handle).await;
    let ctx = |what: &str| format!("list {what} in netns {}", ns_label(netns));
    let links = links.map_err(|e| Error::from_errno(e, ctx("links")).netns(netns))?;
    let mut addrs = addrs.map_err(|e| Error::from_errno(e, ctx("addresses")).netns(netns))?;
    let mut out: Vec<LinkDetails> = links
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewLink(m) => Some(details(&m)),
            _ => None,
        })
        .collect();
    for d in &mut out {
        d.addresses = addrs.remove(&d.index).unwrap_or_default();
    }
    out.sort_by_key(|d| d.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("vethabcdef01234").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "vethabcdef012345", "a\tb"] {
            assert_eq!(
                validate_ifname(bad).unwrap_err().code,
                ErrorCode::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn macs() {
        let m = parse_mac("02:42:AC:11:00:02").unwrap();
        assert_eq!(format_mac(&m), "02:42:ac:11:00:02");
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:0g",
            "2:42:ac:11:00:02",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}

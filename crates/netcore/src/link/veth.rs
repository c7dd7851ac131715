//! Endpoint veth pairs: `attach_veth` creates the pair with the peer born
//! inside the sandbox netns under its final name and configures both ends;
//! `detach_veth` deletes it.

use std::os::fd::AsRawFd;

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{addr_gen_off_message, lookup_error, not_found, parse_gateways, parse_mac, up_message};
use super::{create_error, created_link, delete, details, get_by_name, undo_create};
use super::{validate_ifname, validate_mtu, validate_netns, LinkDetails};
use crate::addr::{self, Cidr};
use crate::error::{ns_label, Error, Result};
use crate::{netns, nl, route};

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
    let (mac, cidrs, (gateway, gateway6)) = (|| {
        validate_netns(host_ns)?;
        netns::validate_name(sandbox)?;
        validate_ifname(&spec.host_ifname)?;
        validate_ifname(&spec.ifname)?;
        if let Some(m) = &spec.master {
            validate_ifname(m)?;
        }
        validate_mtu(spec.mtu)?;
        Ok::<_, Error>((
            spec.mac.as_deref().map(parse_mac).transpose()?,
            addr::parse_all(&spec.addresses)?,
            parse_gateways(spec.gateway.as_deref(), spec.gateway6.as_deref())?,
        ))
    })()
    .map_err(|e| {
        e.context(format!(
            "attach veth {:?} (peer {:?} in netns {sandbox:?}) in netns {}",
            spec.host_ifname,
            spec.ifname,
            ns_label(host_ns)
        ))
        .netns(host_ns)
    })?;
    let host_if = spec.host_ifname.as_str();
    let peer_if = spec.ifname.as_str();
    // An IPv4-only endpoint gets no IPv6 address on its link: a link that comes
    // up with one sends DAD, router solicitation and MLD packets the bridge
    // floods to every other port, work that grows with the ports.
    let v6 = cidrs.iter().any(|c| c.ip.is_ipv6()) || gateway6.is_some();

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
    if v6 {
        veth = veth.up();
    }
    let veth = veth
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
        Err(e) => return Err(e.with_undo(delete(Some(sandbox), peer_if).await)),
    };
    let undo = || undo_create(&sb, peer.index, peer_if, Some(sandbox));
    if let Err(e) = crate::fault::point("netcore.veth.created") {
        return Err(e.with_undo(undo().await));
    }

    // Host end: no IPv6 address when it is a bridge port (it needs none, and its
    // DAD and MLD would be flooded to every other port), master and up, then
    // read back; sandbox end: addresses and routes. Both netns at once; each
    // socket's requests are handled in order.
    let host_side = async {
        let gen_off = master.is_some().then(|| {
            nl::send(
                &host,
                addr_gen_off_message(LinkUnspec::new_with_name(host_if)),
                nl::ACK,
            )
        });
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
        if let Some(g) = gen_off {
            g.await.map_err(|e| {
                Error::from_errno(
                    e,
                    format_args!(
                        "turn IPv6 addresses off on {host_if} in netns {}",
                        ns_label(host_ns)
                    ),
                )
                .ifname(host_if)
                .netns(host_ns)
            })?;
        }
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
    let sandbox_side = async {
        // off before the link is up, then up ahead of the addresses and routes
        let steps = (!v6).then(|| {
            (
                nl::send(
                    &sb,
                    addr_gen_off_message(LinkUnspec::new_with_index(peer.index)),
                    nl::ACK,
                ),
                nl::send(&sb, up_message(peer.index), nl::ACK),
            )
        });
        let configured = configure_peer(
            sandbox, peer_if, &sb, &peer, lo_up, &cidrs, gateway, gateway6,
        );
        if let Some((off, up)) = steps {
            let fail = |e, what: &str| {
                Error::from_errno(e, format_args!("{what} {peer_if} in netns {sandbox}"))
                    .ifname(peer_if)
                    .netns(Some(sandbox))
            };
            off.await
                .map_err(|e| fail(e, "turn IPv6 addresses off on"))?;
            up.await.map_err(|e| fail(e, "set up"))?;
        }
        configured.await
    };
    let (host_link, configured) = futures::join!(host_side, sandbox_side);
    match (host_link, configured) {
        (Ok(host_link), Ok((ifindex, mac))) => Ok(VethResult {
            host_ifindex: host_link.index,
            ifindex,
            mac,
            host_mac: host_link.mac,
        }),
        (Err(e), _) | (_, Err(e)) => Err(e.with_undo(undo().await)),
    }
}

/// Addresses and default routes of a link just made inside a sandbox, with `lo`
/// up (its request already in flight); the link's index and MAC.
#[allow(clippy::too_many_arguments)]
pub(super) async fn configure_peer(
    sandbox_netns: &str,
    ifname: &str,
    sb: &Handle,
    peer: &LinkDetails,
    lo_up: impl std::future::Future<Output = std::result::Result<Vec<RouteNetlinkMessage>, nl::Errno>>,
    cidrs: &[Cidr],
    gateway: Option<std::net::IpAddr>,
    gateway6: Option<std::net::IpAddr>,
) -> Result<(u32, String)> {
    let sandbox = Some(sandbox_netns);
    let peer_if = ifname;
    let ctx = |what: String| format!("{what} in netns {sandbox_netns}");
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

/// Deletes the host end of a veth pair (and so the pair); false when absent.
pub async fn detach_veth(host_netns: Option<&str>, host_ifname: &str) -> Result<bool> {
    delete(host_netns, host_ifname).await
}

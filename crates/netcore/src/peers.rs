//! Overlay peers, programmed from the store rather than learnt: for each
//! remote endpoint, a static FDB entry on the vxlan device (its MAC → the
//! VTEP of its host) and a permanent neighbour entry (its IP → its MAC) that
//! the device answers ARP and neighbour solicitations from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::addr;
use crate::error::{ns_label, Error, Result};
use crate::link::{format_mac, index_of, parse_mac, validate_ifname};
use crate::{netns, nl};

/// One remote endpoint of an overlay network.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    pub mac: String,
    /// its addresses on the overlay network (IPv4 and/or IPv6)
    pub ips: Vec<String>,
    /// the underlay address of its host
    pub vtep: String,
}

#[derive(Debug, Clone, Default)]
pub struct PeerChanges {
    pub netns: Option<String>,
    /// the vxlan device of the network
    pub device: String,
    pub add: Vec<Peer>,
    pub remove: Vec<Peer>,
}

fn neighbour_address(ip: IpAddr) -> (AddressFamily, NeighbourAddress) {
    match ip {
        IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
    }
}

/// `bridge fdb replace MAC dev DEVICE dst VTEP self permanent`
fn fdb_message(index: u32, mac: &[u8], vtep: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(neighbour_address(vtep).1));
    m
}

/// `ip neigh replace IP lladdr MAC dev DEVICE nud permanent`
fn neigh_message(index: u32, ip: IpAddr, mac: &[u8]) -> NeighbourMessage {
    let (family, dst) = neighbour_address(ip);
    let mut m = NeighbourMessage::default();
    m.header.family = family;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.attributes.push(NeighbourAttribute::Destination(dst));
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    m
}

struct Parsed {
    mac: Vec<u8>,
    ips: Vec<IpAddr>,
    vtep: IpAddr,
}

fn parse_peer(p: &Peer) -> Result<Parsed> {
    Ok(Parsed {
        mac: parse_mac(&p.mac)?,
        ips: p
            .ips
            .iter()
            .map(|i| addr::parse_ip(i))
            .collect::<Result<_>>()?,
        vtep: addr::parse_ip(&p.vtep)?,
    })
}

/// Removes `changes.remove` (absent entries are fine), then adds or replaces
/// `changes.add`, all in flight together.
pub async fn set_peers(changes: &PeerChanges) -> Result<()> {
    let netns = changes.netns.as_deref();
    let dev = changes.device.as_str();
    let what = || format!("set peers on {dev} in netns {}", ns_label(netns));
    validate_ifname(dev).map_err(|e| e.context(what()))?;
    let add = changes
        .add
        .iter()
        .map(parse_peer)
        .collect::<Result<Vec<_>>>();
    let remove = changes
        .remove
        .iter()
        .map(parse_peer)
        .collect::<Result<Vec<_>>>();
    let (add, remove) = (
        add.map_err(|e| e.context(what()))?,
        remove.map_err(|e| e.context(what()))?,
    );
    let handle = netns::handle(netns).await?;
    let index = index_of(&handle, netns, dev).await?;

    let mut dels = Vec::new();
    for p in &remove {
        dels.push(nl::send(
            &handle,
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, &p.mac, p.vtep)),
            nl::ACK,
        ));
        for ip in &p.ips {
            dels.push(nl::send(
                &handle,
                RouteNetlinkMessage::DelNeighbour(neigh_message(index, *ip, &p.mac)),
                nl::ACK,
            ));
        }
    }
    for r in futures::future::join_all(dels).await {
        match r {
            Ok(_) | Err(libc::ENOENT) => {}
            Err(e) => {
                return Err(
                    Error::from_errno(e, format_args!("remove a peer: {}", what()))
                        .ifname(dev)
                        .netns(netns),
                )
            }
        }
    }
    let mut adds = Vec::new();
    for p in &add {
        adds.push(nl::send(
            &handle,
            RouteNetlinkMessage::NewNeighbour(fdb_message(index, &p.mac, p.vtep)),
            nl::REPLACE,
        ));
        for ip in &p.ips {
            adds.push(nl::send(
                &handle,
                RouteNetlinkMessage::NewNeighbour(neigh_message(index, *ip, &p.mac)),
                nl::REPLACE,
            ));
        }
    }
    for r in futures::future::join_all(adds).await {
        r.map_err(|e| {
            Error::from_errno(e, format_args!("add a peer: {}", what()))
                .ifname(dev)
                .netns(netns)
        })?;
    }
    Ok(())
}

fn attr_mac(m: &NeighbourMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => Some(format_mac(l)),
        _ => None,
    })
}

fn attr_ip(m: &NeighbourMessage) -> Option<IpAddr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        // an FDB entry's family is AF_BRIDGE, so its address comes unparsed
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    })
}

async fn dump_family(
    handle: &rtnetlink::Handle,
    family: AddressFamily,
    what: &str,
) -> Result<Vec<NeighbourMessage>> {
    let mut req = NeighbourMessage::default();
    req.header.family = family;
    let replies = nl::dump(handle, RouteNetlinkMessage::GetNeighbour(req))
        .await
        .map_err(|e| Error::from_errno(e, format_args!("{what}")))?;
    Ok(replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewNeighbour(m) => Some(m),
            _ => None,
        })
        .collect())
}

/// The peers programmed on `device`: its permanent FDB entries with a remote
/// VTEP, each with the permanent neighbour entries that point at its MAC.
/// Sorted by MAC, addresses sorted.
pub async fn list_peers(netns: Option<&str>, device: &str) -> Result<Vec<Peer>> {
    let what = format!("list peers on {device} in netns {}", ns_label(netns));
    validate_ifname(device).map_err(|e| e.context(what.clone()))?;
    let handle = netns::handle(netns).await?;
    let index = index_of(&handle, netns, device).await?;
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    for m in dump_family(&handle, AddressFamily::Bridge, &what).await? {
        if m.header.ifindex != index || m.header.state != NeighbourState::Permanent {
            continue;
        }
        if let (Some(mac), Some(vtep)) = (attr_mac(&m), attr_ip(&m)) {
            peers.insert(
                mac.clone(),
                Peer {
                    mac,
                    ips: Vec::new(),
                    vtep: vtep.to_string(),
                },
            );
        }
    }
    let mut neigh = dump_family(&handle, AddressFamily::Inet, &what).await?;
    neigh.extend(dump_family(&handle, AddressFamily::Inet6, &what).await?);
    let mut orphans: Vec<Peer> = Vec::new();
    for m in neigh {
        if m.header.ifindex != index || m.header.state != NeighbourState::Permanent {
            continue;
        }
        let (Some(mac), Some(ip)) = (attr_mac(&m), attr_ip(&m)) else {
            continue;
        };
        match peers.get_mut(&mac) {
            Some(p) => p.ips.push(ip.to_string()),
            // a neighbour entry without its FDB entry: reported with no VTEP, so that it differs
            None => match orphans.iter_mut().find(|o| o.mac == mac) {
                Some(o) => o.ips.push(ip.to_string()),
                None => orphans.push(Peer {
                    mac,
                    ips: vec![ip.to_string()],
                    vtep: String::new(),
                }),
            },
        }
    }
    let mut out: Vec<Peer> = peers.into_values().chain(orphans).collect();
    for p in &mut out {
        p.ips.sort();
    }
    out.sort();
    Ok(out)
}

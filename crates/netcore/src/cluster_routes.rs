//! Routes of routed (direct-routing) cluster networks in a host netns: each
//! other host's block via its underlay address, and this host's own block on
//! its bridge, all tagged with one routing realm. A packet forwarded from a
//! block to another host's block then carries that realm as both its source
//! and its destination realm (`rtclassid` 0x00c100c1), which the firewall's
//! base ruleset exempts from masquerade: no NAT between hosts, NAT out of
//! the cluster.

use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::route::{RouteMessage, RouteRealm, RouteScope};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::RouteMessageBuilder;

use crate::addr::{self, Cidr};
use crate::error::{ns_label, Error, Result};
use crate::link::validate_ifname;
use crate::{netns, nl};

/// The routing realm of cluster routes (both directions).
pub const CLUSTER_REALM: u16 = 0xc1;
/// `rtclassid` of a packet from a block to a block: source and destination realm.
pub const CLUSTER_CLASSID: u32 = ((CLUSTER_REALM as u32) << 16) | CLUSTER_REALM as u32;

#[derive(Debug, Clone, Default)]
pub struct ClusterRoute {
    /// the block, e.g. "10.40.3.0/24"
    pub dst: String,
    /// another host's underlay address (its block), or none for this host's own block
    pub via: Option<String>,
    /// this host's block: the bridge it is on
    pub dev: Option<String>,
    /// this host's block: the bridge's address in it (the preferred source)
    pub src: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ClusterRouteChanges {
    pub netns: Option<String>,
    /// created or replaced (a route to the same block is replaced)
    pub add: Vec<ClusterRoute>,
    /// blocks whose route goes (absent is fine)
    pub remove: Vec<String>,
}

fn v4_block(s: &str) -> Result<Cidr> {
    let c = addr::parse_cidr(s)?;
    if !c.ip.is_ipv4() {
        return Err(Error::invalid(format!(
            "cluster route {s}: only IPv4 blocks are routed"
        )));
    }
    Ok(c)
}

fn v4(s: &str) -> Result<Ipv4Addr> {
    match addr::parse_ip(s)? {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => Err(Error::invalid(format!("{a} is not an IPv4 address"))),
    }
}

fn block_of(c: &Cidr) -> Ipv4Addr {
    let IpAddr::V4(ip) = c.ip else {
        return Ipv4Addr::UNSPECIFIED;
    };
    let mask = if c.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(c.prefix))
    };
    Ipv4Addr::from(u32::from(ip) & mask)
}

/// The RTM_NEWROUTE of one cluster route (`oif` for this host's own block).
pub fn route_message(r: &ClusterRoute, oif: Option<u32>) -> Result<RouteMessage> {
    let c = v4_block(&r.dst)?;
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(block_of(&c), c.prefix)
        .realm(RouteRealm {
            source: 0,
            destination: CLUSTER_REALM,
        });
    match (&r.via, oif) {
        (Some(via), None) => b = b.gateway(v4(via)?),
        (None, Some(i)) => {
            b = b.output_interface(i).scope(RouteScope::Link);
            if let Some(src) = &r.src {
                b = b.pref_source(v4(src)?);
            }
        }
        _ => {
            return Err(Error::invalid(format!(
                "cluster route {}: give either via or dev",
                r.dst
            )))
        }
    }
    Ok(b.build())
}

fn delete_message(dst: &str) -> Result<RouteMessage> {
    let c = v4_block(dst)?;
    Ok(RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(block_of(&c), c.prefix)
        .build())
}

/// Removes `remove`, then adds or replaces `add`, all in flight together.
pub async fn set_cluster_routes(ch: &ClusterRouteChanges) -> Result<()> {
    let ns = ch.netns.as_deref();
    let ctx = || format!("set cluster routes in netns {}", ns_label(ns));
    let dels = (|| {
        if let Some(n) = ns {
            netns::validate_name(n)?;
        }
        let dels = ch
            .remove
            .iter()
            .map(|d| delete_message(d))
            .collect::<Result<Vec<_>>>()?;
        for r in &ch.add {
            if let Some(d) = &r.dev {
                validate_ifname(d)?;
            }
            route_message(r, r.dev.as_ref().map(|_| 1))?;
        }
        Ok::<_, Error>(dels)
    })()
    .map_err(|e| e.context(ctx()).netns(ns))?;
    let handle = netns::handle(ns).await?;
    let removed = futures::future::join_all(
        dels.into_iter()
            .map(|m| nl::send(&handle, RouteNetlinkMessage::DelRoute(m), nl::ACK)),
    )
    .await;
    for (r, d) in removed.into_iter().zip(&ch.remove) {
        match r {
            Ok(_) | Err(libc::ESRCH) => {}
            Err(e) => {
                return Err(Error::from_errno(
                    e,
                    format!("delete cluster route {d} in netns {}", ns_label(ns)),
                )
                .netns(ns))
            }
        }
    }
    let mut msgs = Vec::with_capacity(ch.add.len());
    for r in &ch.add {
        let oif = match &r.dev {
            Some(d) => Some(crate::link::index_of(&handle, ns, d).await?),
            None => None,
        };
        msgs.push(route_message(r, oif).map_err(|e| e.context(ctx()).netns(ns))?);
    }
    let added = futures::future::join_all(
        msgs.into_iter()
            .map(|m| nl::send(&handle, RouteNetlinkMessage::NewRoute(m), nl::REPLACE)),
    )
    .await;
    for (r, a) in added.into_iter().zip(&ch.add) {
        if let Err(e) = r {
            return Err(Error::from_errno(
                e,
                format!("add cluster route {} in netns {}", a.dst, ns_label(ns)),
            )
            .netns(ns));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::route::RouteAttribute;

    #[test]
    fn routes_carry_the_cluster_realm() {
        let m = route_message(
            &ClusterRoute {
                dst: "10.40.3.0/24".into(),
                via: Some("192.168.50.3".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert!(m.attributes.contains(&RouteAttribute::Realm(RouteRealm {
            source: 0,
            destination: CLUSTER_REALM
        })));
        assert_eq!(m.header.destination_prefix_length, 24);
        let own = route_message(
            &ClusterRoute {
                dst: "10.40.1.0/24".into(),
                dev: Some("rtb".into()),
                src: Some("10.40.1.1".into()),
                ..Default::default()
            },
            Some(9),
        )
        .unwrap();
        assert_eq!(own.header.scope, RouteScope::Link);
        assert!(own.attributes.contains(&RouteAttribute::Oif(9)));
        // as the firewall rulesets spell it (nftables ruleset.rs, iptables ruleset.rs)
        assert_eq!(format!("{CLUSTER_CLASSID:#x}"), "0xc100c1");
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(route_message(
            &ClusterRoute {
                dst: "fd00::/64".into(),
                via: Some("10.0.0.1".into()),
                ..Default::default()
            },
            None
        )
        .is_err());
        assert!(route_message(
            &ClusterRoute {
                dst: "10.40.3.0/24".into(),
                ..Default::default()
            },
            None
        )
        .is_err());
        assert!(route_message(
            &ClusterRoute {
                dst: "10.40.3.0/24".into(),
                via: Some("fd00::1".into()),
                ..Default::default()
            },
            None
        )
        .is_err());
    }
}

//! Routes: default routes for sandboxes, main-table listing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::RouteMessageBuilder;

use crate::error::{ns_label, Error, Result};
use crate::{addr, netns, nl};

/// RTM_NEWROUTE for a default route via `gateway` out of `oif`.
pub fn default_message(gateway: IpAddr, oif: u32) -> RouteNetlinkMessage {
    let msg = match gateway {
        IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(oif)
            .build(),
        IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gw)
            .output_interface(oif)
            .build(),
    };
    RouteNetlinkMessage::NewRoute(msg)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDetails {
    pub dst: String,
    pub gateway: Option<String>,
    pub oif: Option<u32>,
    pub table: u32,
}

fn addr_string(a: &RouteAddress) -> Option<String> {
    match a {
        RouteAddress::Inet(ip) => Some(ip.to_string()),
        RouteAddress::Inet6(ip) => Some(ip.to_string()),
        _ => None,
    }
}

fn describe(msg: &RouteMessage) -> Option<RouteDetails> {
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = addr_string(a),
            RouteAttribute::Gateway(a) => gateway = addr_string(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let any = match msg.header.address_family {
        AddressFamily::Inet => "0.0.0.0",
        AddressFamily::Inet6 => "::",
        _ => return None,
    };
    let dst = format!(
        "{}/{}",
        dst.unwrap_or_else(|| any.to_string()),
        msg.header.destination_prefix_length
    );
    Some(RouteDetails {
        dst,
        gateway,
        oif,
        table,
    })
}

/// Makes `gateway` (out of `ifname`) the default route of its family in
/// `netns`, replacing any other; with no gateway, removes the default route of
/// `family` (absent is fine). Used when the endpoint that gave a sandbox its
/// default route leaves and another takes over.
pub async fn set_default(
    netns: &str,
    ifname: Option<&str>,
    gateway: Option<&str>,
    family: u32,
) -> Result<()> {
    let ns = Some(netns);
    let ctx = |what: &str| format!("{what} default route in netns {netns}");
    let gateway = (|| {
        netns::validate_name(netns)?;
        if family != 4 && family != 6 {
            return Err(Error::invalid(format!("invalid address family {family}")));
        }
        let gw = gateway.map(addr::parse_ip).transpose()?;
        match (gw, ifname) {
            (Some(gw), _) if (family == 4) != gw.is_ipv4() => {
                Err(Error::invalid(format!("gateway {gw} is not IPv{family}")))
            }
            (Some(_), None) => Err(Error::invalid("a gateway needs an interface")),
            _ => Ok(gw),
        }
    })()
    .map_err(|e| {
        let what = format!("set the IPv{family} default route in netns {netns:?}");
        e.context(what).netns(ns)
    })?;
    let handle = netns::handle(ns).await?;
    // a gateway comes with an interface (checked above)
    match gateway.zip(ifname) {
        Some((gw, ifname)) => {
            let index = crate::link::index_of(&handle, ns, ifname)
                .await
                .map_err(|e| e.context(ctx("replace")))?;
            nl::send(&handle, default_message(gw, index), nl::REPLACE)
                .await
                .map_err(|e| {
                    Error::from_errno(e, ctx("replace"))
                        .ifname(ifname)
                        .netns(ns)
                })?;
        }
        None => {
            let msg = match family {
                4 => RouteMessageBuilder::<Ipv4Addr>::new().build(),
                _ => RouteMessageBuilder::<Ipv6Addr>::new().build(),
            };
            match nl::send(&handle, RouteNetlinkMessage::DelRoute(msg), nl::ACK).await {
                Ok(_) | Err(libc::ESRCH) => {}
                Err(e) => return Err(Error::from_errno(e, ctx("delete")).netns(ns)),
            }
        }
    }
    Ok(())
}

/// Main-table routes of `netns`; `family` 4, 6 or None for both.
pub async fn list(netns: Option<&str>, family: Option<u32>) -> Result<Vec<RouteDetails>> {
    let invalid = |e: Error| {
        e.context(format!("list routes in netns {}", ns_label(netns)))
            .netns(netns)
    };
    let families: &[AddressFamily] = match family {
        None => &[AddressFamily::Inet, AddressFamily::Inet6],
        Some(4) => &[AddressFamily::Inet],
        Some(6) => &[AddressFamily::Inet6],
        Some(f) => {
            return Err(invalid(Error::invalid(format!(
                "invalid address family {f}"
            ))))
        }
    };
    if let Some(n) = netns {
        netns::validate_name(n).map_err(invalid)?;
    }
    let handle = netns::handle(netns).await?;
    let mut out = Vec::new();
    for family in families {
        let mut msg = RouteMessage::default();
        msg.header.address_family = *family;
        let dump = nl::dump(&handle, RouteNetlinkMessage::GetRoute(msg)).await;
        let replies = dump.map_err(|errno| {
            Error::from_errno(
                errno,
                format_args!("list routes in netns {}", ns_label(netns)),
            )
            .netns(netns)
        })?;
        for reply in replies {
            if let RouteNetlinkMessage::NewRoute(msg) = reply {
                if msg.header.kind != RouteType::Unicast {
                    continue;
                }
                if let Some(r) = describe(&msg) {
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
}

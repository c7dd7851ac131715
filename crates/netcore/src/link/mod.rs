//! Links: the shared part of every link kind — name and MAC validation,
//! lookups by name, create-error mapping, deletion and listing. Each kind has
//! a file of its own: `bridge.rs`, `veth.rs` (endpoint attach and detach) and
//! `adopt.rs` (links other programs made, moved into a sandbox).
//!
//! Each public call is one intent and undoes its own partial work when a
//! later step fails.

mod adopt;
mod bridge;
mod macvlan;
mod retire;
mod veth;
mod vlan;
mod vxlan;

use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec};

use crate::addr;
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::{netns, nl};
pub use adopt::{adopt_link, AdoptResult, AdoptSpec, StaticRoute};
pub use bridge::{ensure_bridge, BridgeResult, BridgeSpec};
pub use macvlan::{attach_macvlan, MacvlanResult, MacvlanSpec};
pub use retire::{reap, retire, Retire, GRAVE_ALONE_GROUP, GRAVE_GROUP};
pub use veth::{attach_veth, detach_veth, VethResult, VethSpec};
pub use vlan::{ensure_vlan, VlanResult, VlanSpec};
pub use vxlan::{ensure_vxlan, VxlanResult, VxlanSpec, VXLAN_PORT};

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

pub(super) fn validate_netns(netns: Option<&str>) -> Result<()> {
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

pub(super) fn validate_mtu(mtu: Option<u32>) -> Result<()> {
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
    /// The link's group (retired links are in `GRAVE_GROUP`).
    pub group: u32,
}

/// The kind-specific attributes (IFLA_INFO_DATA) of a link, as the kernel reports them.
pub(super) fn info_data(msg: &LinkMessage) -> Option<&InfoData> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(d) => Some(d),
            _ => None,
        }),
        _ => None,
    })
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
            LinkAttribute::Group(g) => d.group = *g,
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

pub(super) fn name_message(name: &str) -> LinkMessage {
    LinkUnspec::new_with_name(name).build()
}

/// RTM_GETLINK by name; Ok(None) when there is no such link.
pub(super) async fn get_by_name(
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
pub(super) fn parse_gateways(
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

pub(super) fn lookup_error(errno: nl::Errno, name: &str, netns: Option<&str>) -> Error {
    Error::from_errno(
        errno,
        format_args!("look up link {name} in netns {}", ns_label(netns)),
    )
    .ifname(name)
    .netns(netns)
}

pub(super) fn not_found(name: &str, netns: Option<&str>) -> Error {
    Error::new(
        ErrorCode::LinkNotFound,
        format!("link {name} not found in netns {}", ns_label(netns)),
    )
    .ifname(name)
    .netns(netns)
}

/// The echoed link named `name` in create replies, else a lookup by name.
pub(super) async fn created_link(
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

/// A SETLINK that turns IPv6 address generation off on a link, sent before it is
/// up: it gets no IPv6 address of its own, so it never sends the DAD probes,
/// router solicitations and MLD reports a bridge floods to every other port (a
/// netlink message, not the procfs sysctl: a lookup there walks one dentry per
/// netns with an interface of that name).
pub(super) fn addr_gen_off_message(link: LinkMessageBuilder<LinkUnspec>) -> RouteNetlinkMessage {
    let mut msg = link.build();
    msg.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )]));
    RouteNetlinkMessage::SetLink(msg)
}

pub(super) fn up_message(index: u32) -> RouteNetlinkMessage {
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
pub(super) async fn delete_index(
    handle: &Handle,
    index: u32,
) -> std::result::Result<bool, nl::Errno> {
    let msg = LinkUnspec::new_with_index(index).build();
    match nl::send(handle, RouteNetlinkMessage::DelLink(msg), nl::ACK).await {
        Ok(_) => Ok(true),
        Err(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The undo of a link made by a call that then failed: deletes link `index`
/// (`name` in `netns`, for messages).
pub(super) async fn undo_create(
    handle: &Handle,
    index: u32,
    name: &str,
    netns: Option<&str>,
) -> Result<()> {
    delete_index(handle, index)
        .await
        .map(|_| ())
        .map_err(|e| Error::from_errno(e, format!("delete {name} in netns {}", ns_label(netns))))
}

pub(super) fn create_error(
    errno: nl::Errno,
    what: String,
    ifname: &str,
    netns: Option<&str>,
) -> Error {
    let ctx = format!("{what} in netns {}", ns_label(netns));
    let e = match errno {
        libc::EEXIST => Error::with_errno(ErrorCode::LinkExists, errno, ctx),
        _ => Error::from_errno(errno, ctx),
    };
    e.ifname(ifname).netns(netns)
}

/// Deletes link `name`; Ok(false) when there is none.
pub async fn delete(netns: Option<&str>, name: &str) -> Result<bool> {
    validate_netns(netns)
        .and_then(|()| validate_ifname(name))
        .map_err(|e| {
            e.context(format!("delete link {name:?} in netns {}", ns_label(netns)))
                .netns(netns)
        })?;
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

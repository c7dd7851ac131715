//! 802.1q sub-interfaces (`parent=eth0.10` of a macvlan network): `ensure_vlan`
//! makes one on its parent, or adopts the existing one of that name and VLAN id
//! (then `created` is false and the caller leaves it in place on removal, as
//! Docker does). A kernel without 8021q answers EOPNOTSUPP: ERR_NOT_SUPPORTED.

use rtnetlink::packet_route::link::{InfoData, InfoVlan, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::LinkVlan;

use super::{created_link, details, get_by_name, index_of, info_data, lookup_error};
use super::{validate_ifname, validate_mtu, validate_netns};
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::{netns, nl};

#[derive(Debug, Clone, Default)]
pub struct VlanSpec {
    pub netns: Option<String>,
    /// the sub-interface, e.g. eth0.10
    pub name: String,
    /// the interface it is a VLAN of
    pub parent: String,
    /// 1..4094
    pub id: u32,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct VlanResult {
    pub ifindex: u32,
    /// false when it existed already (with that VLAN id)
    pub created: bool,
}

/// A VLAN id as 802.1q allows it (0 and 4095 are reserved).
pub fn check_vlan_id(id: u32) -> Result<u16> {
    u16::try_from(id)
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| Error::invalid(format!("VLAN id {id} out of range: 1 to 4094")))
}

/// The VLAN id of an existing vlan link.
fn vlan_id_of(msg: &LinkMessage) -> Option<u16> {
    match info_data(msg)? {
        InfoData::Vlan(attrs) => attrs.iter().find_map(|x| match x {
            InfoVlan::Id(id) => Some(*id),
            _ => None,
        }),
        _ => None,
    }
}

/// The create request for `spec`: kind vlan, its id, on parent `parent` (up).
pub fn vlan_message(name: &str, parent: u32, id: u16, mtu: Option<u32>) -> LinkMessage {
    let mut b = LinkVlan::new(name, parent, id).up();
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    b.build()
}

/// The error of a refused create: a kernel without 8021q says EOPNOTSUPP.
fn vlan_create_error(errno: nl::Errno, name: &str, netns: Option<&str>) -> Error {
    let ctx = format!(
        "create VLAN sub-interface {name} in netns {}",
        ns_label(netns)
    );
    match errno {
        libc::EOPNOTSUPP => Error::with_errno(
            ErrorCode::NotSupported,
            errno,
            format!("{ctx}: this kernel has no 802.1q VLAN support (module 8021q)"),
        ),
        libc::EEXIST => Error::with_errno(ErrorCode::LinkExists, errno, ctx),
        _ => Error::from_errno(errno, ctx),
    }
    .ifname(name)
    .netns(netns)
}

/// Makes sure `spec.name` is VLAN `spec.id` of `spec.parent`, and up.
pub async fn ensure_vlan(spec: &VlanSpec) -> Result<VlanResult> {
    let netns = spec.netns.as_deref();
    let name = spec.name.as_str();
    let id = (|| {
        validate_netns(netns)?;
        validate_ifname(name)?;
        validate_ifname(&spec.parent)?;
        validate_mtu(spec.mtu)?;
        check_vlan_id(spec.id)
    })()
    .map_err(|e| {
        e.context(format!("ensure VLAN {name:?} in netns {}", ns_label(netns)))
            .netns(netns)
    })?;
    let handle = netns::handle(netns).await?;
    let existing = get_by_name(&handle, name)
        .await
        .map_err(|e| lookup_error(e, name, netns))?;
    if let Some(msg) = existing {
        let d = details(&msg);
        if d.kind.as_deref() != Some("vlan") || vlan_id_of(&msg) != Some(id) {
            return Err(Error::invalid(format!(
                "link {name} in netns {} exists and is not VLAN {id} (kind {})",
                ns_label(netns),
                d.kind.as_deref().unwrap_or("none")
            ))
            .ifname(name)
            .netns(netns));
        }
        return Ok(VlanResult {
            ifindex: d.index,
            created: false,
        });
    }
    let parent = index_of(&handle, netns, &spec.parent).await?;
    let msg = vlan_message(name, parent, id, spec.mtu);
    let replies = nl::send(&handle, RouteNetlinkMessage::NewLink(msg), nl::CREATE_ECHO)
        .await
        .map_err(|e| vlan_create_error(e, name, netns))?;
    let made = created_link(&handle, replies, name, netns).await?;
    Ok(VlanResult {
        ifindex: made.index,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo};

    #[test]
    fn vlan_ids_as_802_1q_allows() {
        assert_eq!(check_vlan_id(10).unwrap(), 10);
        assert_eq!(check_vlan_id(4094).unwrap(), 4094);
        assert!(check_vlan_id(0).is_err());
        assert!(check_vlan_id(4095).is_err());
        assert!(check_vlan_id(70000).is_err());
    }

    #[test]
    fn the_request_names_kind_id_and_parent() {
        let msg = vlan_message("eth0.10", 7, 10, Some(1400));
        let infos = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        assert!(infos.contains(&LinkInfo::Kind(InfoKind::Vlan)));
        assert_eq!(vlan_id_of(&msg), Some(10));
        assert!(msg.attributes.contains(&LinkAttribute::Link(7)));
        assert!(msg.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(msg
            .attributes
            .contains(&LinkAttribute::IfName("eth0.10".into())));
    }

    #[test]
    fn a_kernel_without_8021q_is_not_supported() {
        let e = vlan_create_error(libc::EOPNOTSUPP, "eth0.10", Some("h1"));
        assert_eq!(e.code, ErrorCode::NotSupported);
        assert!(e.message.contains("802.1q"));
        assert_eq!(
            vlan_create_error(libc::EEXIST, "eth0.10", None).code,
            ErrorCode::LinkExists
        );
    }
}

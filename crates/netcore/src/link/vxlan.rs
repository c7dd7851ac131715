//! VXLAN devices of overlay networks: `ensure_vxlan` makes one (or adopts the
//! existing one of that name and VNI), enslaves it to the network's bridge and
//! brings it up. Learning is off and ARP/ND are answered by the device from its
//! neighbour table (`proxy`): peers are programmed from the store, never learnt.

use std::net::IpAddr;

use rtnetlink::packet_route::link::{InfoData, InfoVxlan};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVxlan};

use super::{create_error, created_link, details, get_by_name, index_of, info_data, lookup_error};
use super::{validate_ifname, validate_mtu, validate_netns};
use crate::addr;
use crate::error::{ns_label, Error, Result};
use crate::{netns, nl};

/// The IANA VXLAN port, Docker's default.
pub const VXLAN_PORT: u16 = 4789;

#[derive(Debug, Clone, Default)]
pub struct VxlanSpec {
    pub netns: Option<String>,
    pub name: String,
    /// the VXLAN network identifier, 1..2^24-1
    pub vni: u32,
    /// this host's underlay address (the VTEP): the tunnels' source
    pub local: String,
    /// UDP port, default 4789
    pub port: Option<u32>,
    /// the bridge to enslave it to
    pub master: Option<String>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct VxlanResult {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    pub created: bool,
}

/// The VNI of an existing vxlan link.
fn vni_of(msg: &rtnetlink::packet_route::link::LinkMessage) -> Option<u32> {
    match info_data(msg)? {
        InfoData::Vxlan(attrs) => attrs.iter().find_map(|x| match x {
            InfoVxlan::Id(id) => Some(*id),
            _ => None,
        }),
        _ => None,
    }
}

/// Makes sure vxlan device `spec.name` with `spec.vni` exists, on its bridge and up.
pub async fn ensure_vxlan(spec: &VxlanSpec) -> Result<VxlanResult> {
    let netns = spec.netns.as_deref();
    let name = spec.name.as_str();
    let (local, port) = (|| {
        validate_netns(netns)?;
        validate_ifname(name)?;
        validate_mtu(spec.mtu)?;
        if spec.vni == 0 || spec.vni >= 1 << 24 {
            return Err(Error::invalid(format!(
                "VNI {} out of range: 1 to 16777215",
                spec.vni
            )));
        }
        let port = spec.port.unwrap_or(u32::from(VXLAN_PORT));
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::invalid(format!("UDP port {port} out of range: 1 to 65535")))?;
        Ok((addr::parse_ip(&spec.local)?, port))
    })()
    .map_err(|e| {
        e.context(format!(
            "ensure vxlan {name:?} in netns {}",
            ns_label(netns)
        ))
        .netns(netns)
    })?;
    let handle = netns::handle(netns).await?;
    let master = match &spec.master {
        Some(m) => Some(index_of(&handle, netns, m).await?),
        None => None,
    };
    let existing = get_by_name(&handle, name)
        .await
        .map_err(|e| lookup_error(e, name, netns))?;
    if let Some(msg) = existing {
        let d = details(&msg);
        if d.kind.as_deref() != Some("vxlan") || vni_of(&msg) != Some(spec.vni) {
            return Err(Error::invalid(format!(
                "link {name} in netns {} exists and is not vxlan {} (kind {})",
                ns_label(netns),
                spec.vni,
                d.kind.as_deref().unwrap_or("none")
            ))
            .ifname(name)
            .netns(netns));
        }
        let mut set = LinkUnspec::new_with_index(d.index).up();
        if let Some(m) = master {
            set = set.controller(m);
        }
        if let Some(mtu) = spec.mtu {
            set = set.mtu(mtu);
        }
        nl::send(&handle, RouteNetlinkMessage::SetLink(set.build()), nl::ACK)
            .await
            .map_err(|e| {
                Error::from_errno(
                    e,
                    format_args!("set vxlan {name} in netns {}", ns_label(netns)),
                )
                .ifname(name)
                .netns(netns)
            })?;
        return Ok(VxlanResult {
            ifindex: d.index,
            name: d.name,
            mtu: spec.mtu.unwrap_or(d.mtu),
            created: false,
        });
    }

    let mut b: LinkMessageBuilder<LinkVxlan> = LinkVxlan::new(name, spec.vni)
        .port(port)
        .learning(false)
        .proxy(true);
    b = match local {
        IpAddr::V4(a) => b.local(a),
        IpAddr::V6(a) => b.local6(a),
    };
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    if let Some(m) = master {
        b = b.controller(m);
    }
    let replies = nl::send(
        &handle,
        RouteNetlinkMessage::NewLink(b.up().build()),
        nl::CREATE_ECHO,
    )
    .await
    .map_err(|e| {
        create_error(
            e,
            format!("create vxlan {name} (VNI {})", spec.vni),
            name,
            netns,
        )
    })?;
    let made = created_link(&handle, replies, name, netns).await?;
    Ok(VxlanResult {
        ifindex: made.index,
        name: made.name,
        mtu: made.mtu,
        created: true,
    })
}

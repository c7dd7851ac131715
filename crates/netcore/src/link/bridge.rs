//! Bridges: `ensure_bridge` makes one (or adopts the existing one of that
//! name), sets its MTU and up state and adds its addresses.

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec};

use super::{create_error, created_link, details, get_by_name, lookup_error, undo_create};
use super::{parse_mac, validate_ifname, validate_mtu, validate_netns};
use crate::addr::{self, Cidr};
use crate::error::{ns_label, Error, Result};
use crate::{netns, nl};

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
    let (mac, cidrs) = (|| {
        validate_netns(netns)?;
        validate_ifname(&spec.name)?;
        validate_mtu(spec.mtu)?;
        let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
        Ok::<_, Error>((mac, addr::parse_all(&spec.addresses)?))
    })()
    .map_err(|e| {
        let what = format!("ensure bridge {:?} in netns {}", spec.name, ns_label(netns));
        e.context(what).netns(netns)
    })?;
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
        return Err(e.with_undo(undo_create(&handle, made.index, name, netns).await));
    }
    Ok(BridgeResult {
        ifindex: made.index,
        name: made.name,
        mtu: made.mtu,
        mac: made.mac,
        created: true,
    })
}

//! Endpoints on the host's LAN: a macvlan link of a parent interface of the
//! host netns, born inside the sandbox netns under its final name (created
//! through the host's socket with IFLA_NET_NS_FD: nothing is moved), then its
//! addresses and default routes there.

use std::os::fd::AsRawFd;

use rtnetlink::packet_route::link::MacVlanMode;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkMacVlan, LinkUnspec};

use super::veth::configure_peer;
use super::{addr_gen_off_message, lookup_error, not_found, parse_gateways, parse_mac, up_message};
use super::{create_error, created_link, delete, get_by_name, undo_create};
use super::{validate_ifname, validate_mtu, validate_netns};
use crate::addr;
use crate::error::{ns_label, Error, Result};
use crate::{netns, nl};

#[derive(Debug, Clone, Default)]
pub struct MacvlanSpec {
    pub host_netns: Option<String>,
    pub sandbox_netns: String,
    /// the parent interface, in the host netns
    pub parent: String,
    pub ifname: String,
    /// bridge (default), private, vepa or passthru
    pub mode: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    pub gateway6: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MacvlanResult {
    pub ifindex: u32,
    pub mac: String,
}

/// The kernel's macvlan mode for Docker's `macvlan_mode` option.
pub fn parse_mode(mode: Option<&str>) -> Result<MacVlanMode> {
    match mode.unwrap_or("bridge") {
        "bridge" => Ok(MacVlanMode::Bridge),
        "private" => Ok(MacVlanMode::Private),
        "vepa" => Ok(MacVlanMode::Vepa),
        "passthru" => Ok(MacVlanMode::Passthrough),
        m => Err(Error::invalid(format!(
            "invalid macvlan mode {m:?}: expected bridge, private, vepa or passthru"
        ))),
    }
}

/// One macvlan endpoint; on failure the link is deleted.
pub async fn attach_macvlan(spec: &MacvlanSpec) -> Result<MacvlanResult> {
    let host_ns = spec.host_netns.as_deref();
    let sandbox = spec.sandbox_netns.as_str();
    let name = spec.ifname.as_str();
    let (mode, mac, cidrs, (gateway, gateway6)) = (|| {
        validate_netns(host_ns)?;
        netns::validate_name(sandbox)?;
        validate_ifname(&spec.parent)?;
        validate_ifname(name)?;
        validate_mtu(spec.mtu)?;
        Ok::<_, Error>((
            parse_mode(spec.mode.as_deref())?,
            spec.mac.as_deref().map(parse_mac).transpose()?,
            addr::parse_all(&spec.addresses)?,
            parse_gateways(spec.gateway.as_deref(), spec.gateway6.as_deref())?,
        ))
    })()
    .map_err(|e| {
        e.context(format!(
            "attach macvlan {name:?} of {:?} (netns {}) in netns {sandbox:?}",
            spec.parent,
            ns_label(host_ns)
        ))
        .netns(host_ns)
    })?;
    let v6 = cidrs.iter().any(|c| c.ip.is_ipv6()) || gateway6.is_some();
    let (host, sb) = futures::try_join!(netns::handle(host_ns), netns::handle(Some(sandbox)))?;
    let sandbox_file = netns::open(sandbox)?;
    let lo_up = nl::send(&sb, up_message(1), nl::ACK);
    let parent = match get_by_name(&host, &spec.parent).await {
        Ok(Some(m)) => m.header.index,
        Ok(None) => {
            return Err(not_found(&spec.parent, host_ns)
                .context(format!("the macvlan parent {} does not exist", spec.parent)))
        }
        Err(e) => return Err(lookup_error(e, &spec.parent, host_ns)),
    };
    let mut link = LinkMacVlan::new(name, parent, mode);
    if let Some(mtu) = spec.mtu {
        link = link.mtu(mtu);
    }
    if let Some(mac) = mac {
        link = link.address(mac);
    }
    if v6 {
        link = link.up();
    }
    let msg = link.setns_by_fd(sandbox_file.as_raw_fd()).build();
    nl::send(&host, RouteNetlinkMessage::NewLink(msg), nl::CREATE)
        .await
        .map_err(|e| {
            create_error(
                e,
                format!(
                    "create macvlan {name} of {} in netns {sandbox}",
                    spec.parent
                ),
                name,
                Some(sandbox),
            )
        })?;
    drop(sandbox_file);
    let link = match created_link(&sb, Vec::new(), name, Some(sandbox)).await {
        Ok(d) => d,
        Err(e) => return Err(e.with_undo(delete(Some(sandbox), name).await)),
    };
    let undo = || undo_create(&sb, link.index, name, Some(sandbox));
    if !v6 {
        let off = nl::send(
            &sb,
            addr_gen_off_message(LinkUnspec::new_with_index(link.index)),
            nl::ACK,
        );
        let up = nl::send(&sb, up_message(link.index), nl::ACK);
        let fail = |e, what: &str| {
            Error::from_errno(e, format_args!("{what} {name} in netns {sandbox}"))
                .ifname(name)
                .netns(Some(sandbox))
        };
        let r = async {
            off.await
                .map_err(|e| fail(e, "turn IPv6 addresses off on"))?;
            up.await.map_err(|e| fail(e, "set up"))
        }
        .await;
        if let Err(e) = r {
            return Err(e.with_undo(undo().await));
        }
    }
    match configure_peer(sandbox, name, &sb, &link, lo_up, &cidrs, gateway, gateway6).await {
        Ok((ifindex, mac)) => Ok(MacvlanResult { ifindex, mac }),
        Err(e) => Err(e.with_undo(undo().await)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_docker_names_them() {
        assert_eq!(parse_mode(None).unwrap(), MacVlanMode::Bridge);
        assert_eq!(
            parse_mode(Some("passthru")).unwrap(),
            MacVlanMode::Passthrough
        );
        assert_eq!(parse_mode(Some("private")).unwrap(), MacVlanMode::Private);
        assert!(parse_mode(Some("source")).is_err());
    }
}

//! Link adoption: a link another program made in the host netns (a remote
//! plugin's) is moved into a sandbox netns, renamed and configured there.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::{details, get_by_name, index_of, lookup_error, not_found, undo_create};
use super::{parse_gateways, parse_mac, up_message, validate_ifname, validate_mtu, validate_netns};
use crate::addr::{self, Cidr};
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::{netns, nl, route};

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

/// The parsed values of an adoption.
type Parsed = (
    Option<Vec<u8>>,
    Vec<Cidr>,
    (Option<IpAddr>, Option<IpAddr>),
    Vec<(Cidr, Option<IpAddr>)>,
);

fn validate(spec: &AdoptSpec) -> Result<Parsed> {
    validate_netns(spec.host_netns.as_deref())?;
    netns::validate_name(&spec.sandbox_netns)?;
    validate_ifname(&spec.ifname)?;
    validate_ifname(&spec.new_name)?;
    validate_mtu(spec.mtu)?;
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
    Ok((
        spec.mac.as_deref().map(parse_mac).transpose()?,
        addr::parse_all(&spec.addresses)?,
        parse_gateways(spec.gateway.as_deref(), spec.gateway6.as_deref())?,
        routes,
    ))
}

/// Moves link `spec.ifname` (made in the host netns by a plugin) into the
/// sandbox netns under its final name, then MTU, MAC, addresses, up, lo up,
/// default and static routes there. Moving between namespaces waits for an
/// RCU grace period: for remote plugins only, never on the bridge path.
/// On failure the link is moved back under its old name (or deleted).
pub async fn adopt_link(spec: &AdoptSpec) -> Result<AdoptResult> {
    let host_ns = spec.host_netns.as_deref();
    let sandbox = spec.sandbox_netns.as_str();
    let (mac, cidrs, (gateway, gateway6), routes) = validate(spec).map_err(|e| {
        e.context(format!(
            "adopt link {:?} from netns {} into netns {sandbox:?} as {:?}",
            spec.ifname,
            ns_label(host_ns),
            spec.new_name
        ))
        .netns(host_ns)
    })?;
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
        Err(e) => Err(e.with_undo(give_back(spec, &sb).await)),
    }
}

/// Undo of [`adopt_link`]: the link goes back to the host netns under its
/// old name; if that fails, it is deleted. Err only when neither worked.
async fn give_back(spec: &AdoptSpec, sb: &Handle) -> Result<()> {
    let (name, sandbox) = (spec.new_name.as_str(), Some(spec.sandbox_netns.as_str()));
    let index = match get_by_name(sb, name).await {
        Ok(Some(m)) => m.header.index,
        // not moved, or gone: nothing to give back
        Ok(None) => return Ok(()),
        Err(e) => return Err(lookup_error(e, name, sandbox)),
    };
    let host_file = match spec.host_netns.as_deref() {
        Some(n) => netns::open(n),
        None => std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| Error::from_io(&e, "open the process netns")),
    };
    let moved_back = match host_file {
        Ok(f) => {
            let back = LinkUnspec::new_with_index(index)
                .name(spec.ifname.as_str())
                .setns_by_fd(f.as_raw_fd())
                .build();
            nl::send(sb, RouteNetlinkMessage::SetLink(back), nl::ACK)
                .await
                .map(|_| ())
                .map_err(|e| {
                    Error::from_errno(
                        e,
                        format!(
                            "move {name} back to netns {} as {}",
                            ns_label(spec.host_netns.as_deref()),
                            spec.ifname
                        ),
                    )
                })
        }
        Err(e) => Err(e),
    };
    match moved_back {
        Ok(()) => Ok(()),
        Err(back) => undo_create(sb, index, name, sandbox)
            .await
            .map_err(|del| back.undo_failed(del.message)),
    }
}

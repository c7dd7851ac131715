//! Taking a link out of service at once, and deleting it later in bulk.
//!
//! Deleting a veth pair or a bridge waits for RCU in the kernel: about
//! 16–25 ms each, one after the other, during which the netns's netlink
//! socket answers nothing else. A link is retired instead, in well under a
//! millisecond: set down (no traffic, its routes gone), its addresses
//! removed, renamed off its name when that name must be free at once, and put
//! in the grave group. `reap` later deletes every link of the grave group of
//! a netns in one request, on a socket and thread of its own: one wait for
//! all of them.

use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::LinkUnspec;

use super::{get_by_name, lookup_error, validate_ifname, validate_netns};
use crate::addr;
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::firewall::nfnl::Socket;
use crate::{netns, nl};

/// The group of retired links ("cnmg"): nothing else of ours uses groups, and
/// links are in group 0 unless someone sets one.
pub const GRAVE_GROUP: u32 = 0x636e_6d67;

/// The group of retired links deleted one at a time ("cnmh"): a bridge's
/// deletion waits for the kernel about 20 ms of its own, batch or not, with the
/// kernel's lock held, so fifty at once would stop every other link change on
/// the host for a second; one by one, others go in between.
pub const GRAVE_ALONE_GROUP: u32 = 0x636e_6d68;

/// What retiring a link does to it.
#[derive(Debug, Clone, Default)]
pub struct Retire {
    /// Rename it to this, so that its name is free at once.
    pub grave_name: Option<String>,
    /// Addresses to remove (None: every address it has).
    pub addresses: Option<Vec<String>>,
    /// Set it down: nothing passes through it (nor through its veth peer).
    pub down: bool,
    /// Take it out of its bridge. Costs grow with the bridge's ports (the
    /// bridge walks them and its forwarding table), so the host end of a
    /// veth stays a port, its peer down, until the reap removes it.
    pub nomaster: bool,
    /// Put it in the grave group, which `reap` deletes.
    pub grave: bool,
    /// ... in the group of those `reap` deletes one at a time (bridges).
    pub alone: bool,
}

/// Retires link `ifname` of `netns` as `how` says. Ok(false) when there is no
/// such link (gone already).
pub async fn retire(netns: Option<&str>, ifname: &str, how: &Retire) -> Result<bool> {
    let ctx = || format!("retire link {ifname} in netns {}", ns_label(netns));
    let cidrs = (|| {
        validate_netns(netns)?;
        validate_ifname(ifname)?;
        if let Some(g) = &how.grave_name {
            validate_ifname(g)?;
        }
        how.addresses.as_deref().map(addr::parse_all).transpose()
    })()
    .map_err(|e| e.context(ctx()).netns(netns))?;
    let handle = netns::handle(netns).await?;
    let Some(link) = get_by_name(&handle, ifname)
        .await
        .map_err(|e| lookup_error(e, ifname, netns))?
    else {
        return Ok(false);
    };
    let index = link.header.index;
    let cidrs = match cidrs {
        Some(c) => c,
        None => addr::dump(&handle)
            .await
            .map_err(|e| Error::from_errno(e, format_args!("{}: list its addresses", ctx())))?
            .remove(&index)
            .unwrap_or_default()
            .iter()
            .map(|c| addr::parse_cidr(c))
            .collect::<Result<Vec<_>>>()?,
    };
    let fail = |e: nl::Errno, what: &str| {
        Error::from_errno(e, format_args!("{}: {what}", ctx()))
            .ifname(ifname)
            .netns(netns)
    };
    // sent back to back on one socket, so they run in this order: down (a link
    // renamed must be down) and out of its bridge, renamed, its addresses
    // removed, and only then in the grave group, where a reap may take it
    let mut first = LinkUnspec::new_with_index(index);
    if how.down {
        first = first.down();
    }
    let mut first = first.build();
    if how.nomaster {
        first.attributes.push(LinkAttribute::Controller(0));
    }
    let first = (how.down || how.nomaster)
        .then(|| nl::send(&handle, RouteNetlinkMessage::SetLink(first), nl::ACK));
    let rename = how.grave_name.as_ref().map(|g| {
        let msg = LinkUnspec::new_with_index(index).name(g.clone()).build();
        nl::send(&handle, RouteNetlinkMessage::SetLink(msg), nl::ACK)
    });
    let dels: Vec<_> = cidrs
        .iter()
        .map(|c| nl::send(&handle, addr::del_message(index, *c), nl::ACK))
        .collect();
    let grave = how.grave.then(|| {
        let mut msg = LinkUnspec::new_with_index(index).build();
        let group = if how.alone {
            GRAVE_ALONE_GROUP
        } else {
            GRAVE_GROUP
        };
        msg.attributes.push(LinkAttribute::Group(group));
        nl::send(&handle, RouteNetlinkMessage::SetLink(msg), nl::ACK)
    });
    // ENODEV from here on: someone deleted it meanwhile, which is what retiring is for
    if let Some(f) = first {
        match f.await {
            Ok(_) => {}
            Err(libc::ENODEV) => return Ok(false),
            Err(e) => return Err(fail(e, "set it down")),
        }
    }
    if let Some(r) = rename {
        match r.await {
            Ok(_) | Err(libc::ENODEV) => {}
            Err(e) => return Err(fail(e, "rename it")),
        }
    }
    for (cidr, d) in cidrs.iter().zip(futures::future::join_all(dels).await) {
        match d {
            // gone with the link going down (IPv6), or never there
            Ok(_) | Err(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV) => {}
            Err(e) => return Err(fail(e, &format!("remove address {cidr}"))),
        }
    }
    if let Some(g) = grave {
        match g.await {
            Ok(_) | Err(libc::ENODEV) => {}
            Err(e) => return Err(fail(e, "put it in the grave group")),
        }
    }
    Ok(true)
}

// RTM_DELLINK of a group: ifinfomsg with index 0 and IFLA_GROUP.
const RTM_DELLINK: u16 = 17;
const IFLA_GROUP: u16 = 27;

/// RTM_DELLINK of link `index`, or with index 0 of every link in `group`.
fn delete_message(index: u32, group: Option<u32>, seq: u32) -> Vec<u8> {
    let len: u32 = if group.is_some() { 40 } else { 32 };
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&RTM_DELLINK.to_ne_bytes());
    m.extend_from_slice(&(nl::ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // ifinfomsg: family, pad, type, index, flags, change
    m.extend_from_slice(&[0u8; 4]);
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&[0u8; 8]);
    if let Some(g) = group {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&IFLA_GROUP.to_ne_bytes());
        m.extend_from_slice(&g.to_ne_bytes());
    }
    m
}

fn group_delete_message(group: u32, seq: u32) -> Vec<u8> {
    delete_message(0, Some(group), seq)
}

/// Sends one delete and reads its answer; ENODEV (gone, or an empty group) is fine.
fn delete_one(
    sock: &mut Socket,
    msg: impl FnOnce(u32) -> Vec<u8>,
    ctx: &str,
    netns: Option<&str>,
) -> Result<()> {
    let seq = sock.next_seq(1);
    let replies = sock
        .exchange(&msg(seq), seq..=seq, seq)
        .map_err(|e| Error::from_io(&e, ctx).netns(netns))?;
    match replies.errors.first() {
        Some(&(_, libc::ENODEV)) => Ok(()),
        Some(&(_, errno)) => Err(Error::from_errno(errno, ctx).netns(netns)),
        None if replies.acked(seq) => Ok(()),
        None => Err(Error::new(
            ErrorCode::Kernel,
            format!("{ctx}: the kernel did not answer"),
        )
        .netns(netns)),
    }
}

/// Deletes the retired links of `netns`: those of the grave group in one
/// request (one RCU wait for all), then those to go alone one request each, so
/// that other link changes get the kernel's lock in between; on a socket of
/// its own and a blocking thread, so that nothing else of ours waits.
pub async fn reap(netns: Option<&str>) -> Result<()> {
    validate_netns(netns)?;
    let alone: Vec<u32> = super::list(netns)
        .await?
        .into_iter()
        .filter(|l| l.group == GRAVE_ALONE_GROUP)
        .map(|l| l.index)
        .collect();
    let owned = netns.map(str::to_string);
    let ctx = format!("delete the retired links of netns {}", ns_label(netns));
    netns::blocking(ctx.clone(), move || {
        let netns = owned.as_deref();
        let mut sock = Socket::open_route(netns)?;
        let batch = delete_one(
            &mut sock,
            |seq| group_delete_message(GRAVE_GROUP, seq),
            &ctx,
            netns,
        );
        // each alone, whatever happened to the batch: the first failure is the answer
        let mut first = batch.err();
        for index in alone {
            if let Err(e) = delete_one(
                &mut sock,
                |seq| delete_message(index, None, seq),
                &ctx,
                netns,
            ) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_by_index_is_a_bare_ifinfomsg() {
        let m = delete_message(42, None, 9);
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 32);
        assert_eq!(u32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 42);
    }

    #[test]
    fn group_delete_is_an_ifinfomsg_with_index_zero_and_the_group() {
        let m = group_delete_message(GRAVE_GROUP, 7);
        assert_eq!(m.len(), 40);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_DELLINK);
        assert_eq!(u32::from_ne_bytes([m[8], m[9], m[10], m[11]]), 7);
        assert_eq!(&m[20..24], &[0, 0, 0, 0], "ifindex 0: by group");
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), IFLA_GROUP);
        assert_eq!(
            u32::from_ne_bytes([m[36], m[37], m[38], m[39]]),
            GRAVE_GROUP
        );
    }
}

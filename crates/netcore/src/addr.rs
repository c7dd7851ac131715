//! Interface addresses: CIDR parsing, RTM_NEWADDR messages, dumps.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::error::{Error, Result};
use crate::nl;

/// An address with its prefix length, parsed from "10.1.0.2/24" or "fd00::2/64".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub ip: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

pub fn parse_cidr(s: &str) -> Result<Cidr> {
    let bad = || Error::invalid(format!("invalid CIDR address {s:?}"));
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(Cidr { ip, prefix })
}

pub fn parse_all(list: &[String]) -> Result<Vec<Cidr>> {
    list.iter().map(|s| parse_cidr(s)).collect()
}

pub fn parse_ip(s: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|_| Error::invalid(format!("invalid IP address {s:?}")))
}

/// RTM_NEWADDR for `cidr` on `index`. `nodad` skips IPv6 duplicate address
/// detection (as libnetwork does for container interfaces).
pub fn add_message(index: u32, cidr: Cidr, nodad: bool) -> RouteNetlinkMessage {
    let mut msg = address_message(index, cidr);
    if nodad && cidr.ip.is_ipv6() {
        msg.header.flags |= AddressHeaderFlags::Nodad;
    }
    RouteNetlinkMessage::NewAddress(msg)
}

/// RTM_DELADDR of `cidr` on `index`.
pub fn del_message(index: u32, cidr: Cidr) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelAddress(address_message(index, cidr))
}

fn address_message(index: u32, cidr: Cidr) -> AddressMessage {
    match cidr.ip {
        IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, cidr.prefix)
            .build(),
        IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(ip, cidr.prefix)
            .build(),
    }
}

/// (ifindex, "addr/prefix") of an address message.
pub fn describe(msg: &AddressMessage) -> Option<(u32, String)> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    Some((msg.header.index, format!("{ip}/{}", msg.header.prefix_len)))
}

/// Every address in the handle's netns, grouped by ifindex.
pub async fn dump(handle: &Handle) -> std::result::Result<HashMap<u32, Vec<String>>, nl::Errno> {
    let replies = nl::dump(
        handle,
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )
    .await?;
    let mut out: HashMap<u32, Vec<String>> = HashMap::new();
    for reply in replies {
        if let RouteNetlinkMessage::NewAddress(msg) = reply {
            if let Some((index, cidr)) = describe(&msg) {
                out.entry(index).or_default().push(cidr);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = parse_cidr("10.1.0.2/24").unwrap();
        assert_eq!(c.to_string(), "10.1.0.2/24");
        assert_eq!(parse_cidr("fd00::2/64").unwrap().prefix, 64);
        for bad in [
            "10.1.0.2",
            "10.1.0.2/33",
            "x/24",
            "10.1.0.2/",
            "::1/129",
            "1.2.3.4/+1",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }
}

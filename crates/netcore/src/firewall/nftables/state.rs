//! Reading our tables back (not the hot path: one element dump per set, over
//! the same netlink socket): the elements, turned into networks and
//! published ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::encode::{Data, NF_ACCEPT};
use crate::firewall::{GatewayMode, Link, Network, Port, Proto, ReadPort, State};

/// The elements of one set: (key, data) as the kernel stores them.
pub(super) type Elements = Vec<(Vec<u8>, Data)>;

fn ifname(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn addr(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

fn port(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn proto(b: &[u8]) -> Option<Proto> {
    b.first().copied().and_then(Proto::from_number)
}

/// What one of our tables holds.
#[derive(Debug, Default)]
pub(super) struct TableState {
    sets: BTreeMap<String, BTreeSet<String>>,
    intra: BTreeMap<String, bool>,
    /// DNAT elements: (proto, host address, host port, container address, container port).
    dnat: Vec<(Proto, Option<String>, u16, String, u16)>,
    /// `open_nat` and `open_routed` elements: (routed, container address, proto, port).
    open: Vec<(bool, String, Proto, u16)>,
    /// `allowed` (bridge, interface) pairs.
    allowed: Vec<(String, String)>,
    /// `links` elements: (from, to, proto, port).
    links: Vec<(String, String, Proto, u16)>,
}

impl TableState {
    fn networks(&self) -> BTreeMap<String, Network> {
        let empty = BTreeSet::new();
        let set = |name: &str| self.sets.get(name).unwrap_or(&empty);
        let (bridges, masq, internal) = (set("bridges"), set("masq"), set("internal"));
        let (filtered, routed) = (set("filtered"), set("routed"));
        bridges
            .iter()
            .chain(self.intra.keys())
            .map(|br| {
                let mode = if routed.contains(br) {
                    GatewayMode::Routed
                } else if filtered.contains(br) {
                    GatewayMode::Nat
                } else {
                    GatewayMode::NatUnprotected
                };
                let protect = set("protected").contains(br);
                let trusted: BTreeSet<String> = self
                    .allowed
                    .iter()
                    .filter(|(b, i)| protect && b == br && i != br && i != "lo")
                    .map(|(_, i)| i.clone())
                    .collect();
                Network {
                    bridge: br.clone(),
                    subnets: Vec::new(),
                    subnets6: Vec::new(),
                    masquerade: masq.contains(br),
                    icc: self.intra.get(br).copied().unwrap_or(true),
                    internal: internal.contains(br),
                    tag: String::new(),
                    mode4: mode,
                    mode6: mode,
                    protect,
                    trusted: trusted.into_iter().collect(),
                }
            })
            .map(|n| (n.bridge.clone(), n))
            .collect()
    }
}

/// What the table of a family holds, from the elements of its sets (`v6`:
/// addresses are 16 bytes). Malformed elements (not ours) are skipped.
pub(super) fn table_state(v6: bool, sets: &[(&str, Elements)]) -> TableState {
    let alen = if v6 { 16 } else { 4 };
    let mut out = TableState::default();
    for (name, elements) in sets {
        for (k, data) in elements {
            let k = k.as_slice();
            match *name {
                "bridges" | "masq" | "internal" | "filtered" | "routed" | "protected" => {
                    out.sets
                        .entry(name.to_string())
                        .or_default()
                        .insert(ifname(k));
                }
                "intra" => {
                    let accept = matches!(data, Data::Verdict(code) if *code == NF_ACCEPT);
                    out.intra.insert(ifname(k.get(..16).unwrap_or(k)), accept);
                }
                "allowed" if k.len() == 32 => {
                    out.allowed.push((ifname(&k[..16]), ifname(&k[16..])));
                }
                "links" => {
                    let from = k.get(..alen).and_then(addr);
                    let to = k.get(alen..2 * alen).and_then(addr);
                    let rest = k.get(2 * alen..).unwrap_or(&[]);
                    let p = rest.get(4..).and_then(port);
                    if let (Some(from), Some(to), Some(pr), Some(p)) = (from, to, proto(rest), p) {
                        out.links.push((from, to, pr, p));
                    }
                }
                "open_nat" | "open_routed" => {
                    let a = k.get(..alen).and_then(addr);
                    let rest = k.get(alen..).unwrap_or(&[]);
                    let p = rest.get(4..).and_then(port);
                    if let (Some(a), Some(pr), Some(p)) = (a, proto(rest), p) {
                        out.open.push((*name == "open_routed", a, pr, p));
                    }
                }
                "ports" | "ports_ip" => {
                    let Data::Value(v) = data else { continue };
                    let (host_ip, rest) = if *name == "ports_ip" {
                        let Some(h) = k.get(..alen).and_then(addr) else {
                            continue;
                        };
                        (Some(h), k.get(alen..).unwrap_or(&[]))
                    } else {
                        (None, k)
                    };
                    let host_port = rest.get(4..).and_then(port);
                    let cip = v.get(..alen).and_then(addr);
                    let cport = v.get(alen..).and_then(port);
                    if let (Some(pr), Some(hp), Some(cip), Some(cp)) =
                        (proto(rest), host_port, cip, cport)
                    {
                        out.dnat.push((pr, host_ip, hp, cip, cp));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The ports of one table, one Port per element family: a DNAT element (its
/// open_nat element goes in and out with it in one transaction, so it is not
/// reported apart), or an open_routed one (reported with the container port as
/// its host port, which routed ports do not use).
fn table_ports(t: &TableState, v6: bool) -> Vec<Port> {
    // the tables hold neither bridge nor tag of a port
    let make = |proto, host_ip, host_port, container, container_port, routed| {
        let read = ReadPort {
            proto,
            host_ip,
            host_port,
            container,
            container_port,
            v6,
            routed,
        };
        Port::read_back(read, "", "")
    };
    let mut out: Vec<Port> = t
        .dnat
        .iter()
        .filter_map(|(proto, host, hport, cip, cport)| {
            let host_ip = host.as_deref().and_then(|h| h.parse::<IpAddr>().ok());
            make(*proto, host_ip, *hport, cip, *cport, false)
        })
        .collect();
    for (routed, cip, proto, cport) in &t.open {
        if *routed {
            out.extend(make(*proto, None, *cport, cip, *cport, true));
        }
    }
    out
}

/// The state of `table ip cnm` and, when present, `table ip6 cnm`. A network is reported as the IPv4 table holds it (masquerade if
/// either table masquerades it), with its IPv6 gateway mode from the IPv6
/// table (which alone reports the bridges the IPv4 one lacks); it is
/// protected when every family in nat mode is (a half-protected one reads
/// as unprotected, for reconcile to make whole). The tables hold no subnets:
/// protection follows the route to the bridge. Ports come one per element
/// family (see `table_ports`).
pub(super) fn merge_state(t4: TableState, t6: Option<TableState>) -> State {
    let t6 = t6.unwrap_or_default();
    let mut networks = t4.networks();
    for (br, n6) in t6.networks() {
        match networks.get_mut(&br) {
            Some(n) => {
                n.mode6 = n6.mode6;
                // a family in routed mode has no masquerade element
                n.masquerade = n.masquerade || n6.masquerade;
                let nat4 = n.mode4 == GatewayMode::Nat;
                let nat6 = n6.mode6 == GatewayMode::Nat;
                n.protect = (nat4 || nat6) && (!nat4 || n.protect) && (!nat6 || n6.protect);
                for t in n6.trusted {
                    if !n.trusted.contains(&t) {
                        n.trusted.push(t);
                    }
                }
                n.trusted.sort();
            }
            None => {
                networks.insert(br, n6);
            }
        }
    }
    let mut ports = table_ports(&t4, false);
    ports.extend(table_ports(&t6, true));
    crate::firewall::sort_ports(&mut ports);
    // the tables hold neither bridge nor tag of a link
    let mut links: Vec<Link> = t4
        .links
        .iter()
        .chain(&t6.links)
        .filter_map(|(from, to, proto, port)| {
            Some(Link {
                proto: *proto,
                from: from.parse().ok()?,
                to: to.parse().ok()?,
                port: *port,
                bridge: String::new(),
                tag: String::new(),
            })
        })
        .collect();
    links.sort();
    State {
        networks: networks.into_values().collect(),
        ports,
        links,
        base_intact: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode::{addr6_port, addr_port, ifname_key, proto_port};
    use super::*;

    fn names(list: &[&str]) -> Elements {
        list.iter().map(|n| (ifname_key(n), Data::None)).collect()
    }

    fn pair(a: &str, b: &str) -> Vec<u8> {
        [ifname_key(a), ifname_key(b)].concat()
    }

    /// address . proto . port as nft keys it.
    fn app(addr: IpAddr, proto: Proto, port: u16) -> Vec<u8> {
        let mut k = match addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        k.extend_from_slice(&proto_port(proto, port));
        k
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table4() -> TableState {
        let verdict = |code| Data::Verdict(code);
        table_state(
            false,
            &[
                ("bridges", names(&["br0", "br1", "br2"])),
                ("masq", names(&["br0"])),
                ("internal", names(&["br1"])),
                ("filtered", names(&["br0", "br1", "br2"])),
                ("routed", names(&["br2"])),
                ("protected", names(&["br0"])),
                (
                    "allowed",
                    vec![
                        (pair("br0", "lo"), Data::None),
                        (pair("br0", "eth9"), Data::None),
                    ],
                ),
                (
                    "open_nat",
                    vec![
                        (app(ip("10.0.0.3"), Proto::Udp, 53), Data::None),
                        (app(ip("10.0.0.2"), Proto::Tcp, 80), Data::None),
                    ],
                ),
                (
                    "open_routed",
                    vec![(app(ip("10.2.0.2"), Proto::Tcp, 443), Data::None)],
                ),
                (
                    "intra",
                    vec![
                        (pair("br0", "br0"), verdict(1)),
                        (pair("br1", "br1"), verdict(0)),
                        (pair("br2", "br2"), verdict(1)),
                    ],
                ),
                (
                    "ports",
                    vec![(
                        proto_port(Proto::Udp, 53).to_vec(),
                        Data::Value(addr_port("10.0.0.3".parse().unwrap(), 5353).to_vec()),
                    )],
                ),
                (
                    "ports_ip",
                    vec![(
                        app(ip("192.0.2.1"), Proto::Tcp, 8080),
                        Data::Value(addr_port("10.0.0.2".parse().unwrap(), 80).to_vec()),
                    )],
                ),
                (
                    "links",
                    vec![(
                        [vec![10, 0, 0, 2], app(ip("10.0.0.3"), Proto::Tcp, 5432)].concat(),
                        Data::None,
                    )],
                ),
            ],
        )
    }

    fn table6(protected: &str) -> TableState {
        table_state(
            true,
            &[
                ("bridges", names(&["br0", "br1", "br2", "br3"])),
                ("filtered", names(&["br0", "br1", "br2"])),
                ("protected", names(&[protected])),
                ("allowed", vec![(pair("br0", "lo"), Data::None)]),
                (
                    "ports",
                    vec![(
                        proto_port(Proto::Udp, 53).to_vec(),
                        Data::Value(addr6_port("fd00::3".parse().unwrap(), 5353).to_vec()),
                    )],
                ),
                (
                    "ports_ip",
                    vec![(
                        app(ip("::1"), Proto::Tcp, 9),
                        Data::Value(addr6_port("fd00::9".parse().unwrap(), 9).to_vec()),
                    )],
                ),
            ],
        )
    }

    #[test]
    fn state_from_elements() {
        let s = merge_state(table4(), None);
        assert_eq!(s.networks.len(), 3);
        let n0 = &s.networks[0];
        assert!(n0.masquerade && n0.icc && !n0.internal && n0.protect);
        assert_eq!(n0.mode4, GatewayMode::Nat);
        assert!(n0.subnets.is_empty(), "the tables hold no subnets");
        assert_eq!(n0.trusted, ["eth9"]);
        let n1 = &s.networks[1];
        assert!(!n1.masquerade && !n1.icc && n1.internal && !n1.protect);
        assert_eq!(s.networks[2].mode4, GatewayMode::Routed);
        assert_eq!(s.ports.len(), 3);
        assert_eq!(s.links.len(), 1);
        assert_eq!(
            (s.links[0].from, s.links[0].to),
            (ip("10.0.0.2"), ip("10.0.0.3"))
        );
        assert_eq!((s.links[0].proto, s.links[0].port), (Proto::Tcp, 5432));
        let udp = s.ports.iter().find(|p| p.proto == Proto::Udp).unwrap();
        assert_eq!((udp.host_ip, udp.host_port), (None, 53));
        assert_eq!(udp.container_ip6, None);
        let routed = s.ports.iter().find(|p| p.routed4).unwrap();
        assert_eq!((routed.host_port, routed.container_port), (443, 443));
        assert_eq!(routed.container_ip, Some("10.2.0.2".parse().unwrap()));
        let pinned = s.ports.iter().find(|p| p.host_ip.is_some()).unwrap();
        assert_eq!(pinned.host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(pinned.container_port, 80);

        // IPv6: a port per element family; the IPv6 table's own view of the
        // networks (br3 is IPv6-only, unprotected)
        let s = merge_state(table4(), Some(table6("br0")));
        assert_eq!(s.networks.len(), 4);
        let n0 = &s.networks[0];
        assert!(n0.protect, "protected in both families");
        assert_eq!(n0.trusted, ["eth9"]);
        // protected in IPv4 only, while IPv6 is in nat mode too: half, so not
        assert!(!merge_state(table4(), Some(table6("br9"))).networks[0].protect);
        assert_eq!(s.networks[3].mode6, GatewayMode::NatUnprotected);
        assert!(s.networks[3].subnets.is_empty());
        assert_eq!(s.ports.len(), 5);
        let udp: Vec<_> = s.ports.iter().filter(|p| p.proto == Proto::Udp).collect();
        assert_eq!(udp.len(), 2);
        assert!(udp.iter().any(
            |p| p.container_ip6 == Some("fd00::3".parse().unwrap()) && p.container_ip.is_none()
        ));
        let local = s.ports.iter().find(|p| p.host_port == 9).unwrap();
        assert_eq!(local.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(local.container_ip, None);
        assert_eq!(local.container_ip6, Some("fd00::9".parse().unwrap()));
    }
}

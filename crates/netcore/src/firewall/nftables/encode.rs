//! nf_tables messages: what a batch changes, as set and map elements of our
//! tables, encoded the way nft encodes its data types — ifname is 16 bytes
//! NUL-padded; inet_proto 1 byte, inet_service 2 bytes big-endian, ipv4_addr
//! 4 bytes and ipv6_addr 16 bytes network order; each component of a
//! concatenation is padded to a multiple of 4 bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ruleset::{family_name, FAMILIES, NFPROTO_IPV4, NFPROTO_IPV6, TABLE};
use crate::firewall::nfnl::{
    attrs, find, nested, nft_type, Writer, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use crate::firewall::{Batch, GatewayMode, Link, Network, Port, Proto};

// nf_tables constants (linux/netfilter/nf_tables.h).
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DESTROYTABLE: u16 = 26;
const NFT_MSG_DESTROYSETELEM: u16 = 30;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
pub(super) const NF_DROP: u32 = 0;
pub(super) const NF_ACCEPT: u32 = 1;
const IFNAMSIZ: usize = 16;

/// Data of a map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Data {
    None,
    Value(Vec<u8>),
    Verdict(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Add; with `excl`, an existing key fails the transaction (EEXIST).
    Add { excl: bool },
    /// Remove if present (NFT_MSG_DESTROYSETELEM, kernel >= 6.3).
    Destroy,
}

/// One element change, with what to tell a person when the kernel refuses it.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub(super) op: Op,
    /// NFPROTO_IPV4 (table ip cnm) or NFPROTO_IPV6 (table ip6 cnm).
    pub(super) family: u8,
    pub(super) set: &'static str,
    pub(super) key: Vec<u8>,
    pub(super) data: Data,
    pub(super) what: String,
    pub(super) port: bool,
}

/// Writes the message of one element change; returns where it starts.
pub(super) fn put_element(w: &mut Writer, c: &Change, seq: u32) -> usize {
    let (ty, flags) = match c.op {
        Op::Add { excl: true } => (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL),
        Op::Add { excl: false } => (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
        Op::Destroy => (NFT_MSG_DESTROYSETELEM, 0),
    };
    let m = w.begin(nft_type(ty), NLM_F_REQUEST | flags, seq, c.family, 0);
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, c.set);
    let elements = w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    let elem = w.nest(NFTA_LIST_ELEM);
    let key = w.nest(NFTA_SET_ELEM_KEY);
    w.attr(NFTA_DATA_VALUE, &c.key);
    w.nest_end(key);
    if c.op != Op::Destroy {
        match &c.data {
            Data::None => {}
            Data::Value(v) => {
                let d = w.nest(NFTA_SET_ELEM_DATA);
                w.attr(NFTA_DATA_VALUE, v);
                w.nest_end(d);
            }
            Data::Verdict(code) => put_verdict(w, NFTA_SET_ELEM_DATA, *code, None),
        }
    }
    w.nest_end(elem);
    w.nest_end(elements);
    w.end(m);
    m
}

/// A verdict (`code`, and the chain of a jump) as nested attribute `ty`: a
/// map element's data, an immediate expression's.
pub(super) fn put_verdict(w: &mut Writer, ty: u16, code: u32, chain: Option<&str>) {
    let d = w.nest(ty);
    let v = w.nest(NFTA_DATA_VERDICT);
    w.attr_be32(NFTA_VERDICT_CODE, code);
    if let Some(c) = chain {
        w.attr_str(NFTA_VERDICT_CHAIN, c);
    }
    w.nest_end(v);
    w.nest_end(d);
}

pub(super) fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.resize(IFNAMSIZ, 0);
    k
}

/// inet_proto . inet_service, each padded to 4 bytes.
pub(super) fn proto_port(proto: Proto, port: u16) -> [u8; 8] {
    let p = port.to_be_bytes();
    [proto.number(), 0, 0, 0, p[0], p[1], 0, 0]
}

/// ipv4_addr . inet_service.
pub(super) fn addr_port(addr: Ipv4Addr, port: u16) -> [u8; 8] {
    let a = addr.octets();
    let p = port.to_be_bytes();
    [a[0], a[1], a[2], a[3], p[0], p[1], 0, 0]
}

/// ipv6_addr . inet_service.
pub(super) fn addr6_port(addr: Ipv6Addr, port: u16) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..16].copy_from_slice(&addr.octets());
    out[16..18].copy_from_slice(&port.to_be_bytes());
    out
}

/// inet_proto, padded to 4 bytes.
fn proto_key(proto: Proto) -> [u8; 4] {
    [proto.number(), 0, 0, 0]
}

/// A family's address as nft stores it (ipv4_addr, ipv6_addr).
#[derive(Debug, Clone, Copy)]
pub(super) enum Addr {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Addr {
    fn family(self) -> u8 {
        match self {
            Addr::V4(_) => NFPROTO_IPV4,
            Addr::V6(_) => NFPROTO_IPV6,
        }
    }
    fn bytes(self) -> Vec<u8> {
        match self {
            Addr::V4(a) => a.octets().to_vec(),
            Addr::V6(a) => a.octets().to_vec(),
        }
    }
}

/// address . inet_proto . inet_service (the `open_*` sets).
fn addr_proto_port(addr: Addr, proto: Proto, port: u16) -> Vec<u8> {
    let mut k = addr.bytes();
    k.extend_from_slice(&proto_key(proto));
    let p = port.to_be_bytes();
    k.extend_from_slice(&[p[0], p[1], 0, 0]);
    k
}

fn change(
    op: Op,
    family: u8,
    set: &'static str,
    key: Vec<u8>,
    data: Data,
    what: String,
    port: bool,
) -> Change {
    Change {
        op,
        family,
        set,
        key,
        data,
        what,
        port,
    }
}

/// The DNAT element of one family of a port (its host address limits it to one).
fn dnat_change(p: &Port, target: Addr, op: Op) -> Change {
    let family = target.family();
    let host = match target {
        Addr::V4(_) => p.host_ip4().map(Addr::V4),
        Addr::V6(_) => p.host_ip6().map(Addr::V6),
    };
    let (set, key) = match host {
        Some(h) => {
            let mut k = h.bytes();
            k.extend_from_slice(&proto_port(p.proto, p.host_port));
            ("ports_ip", k)
        }
        None => ("ports", proto_port(p.proto, p.host_port).to_vec()),
    };
    let data = match target {
        Addr::V4(a) => addr_port(a, p.container_port).to_vec(),
        Addr::V6(a) => addr6_port(a, p.container_port).to_vec(),
    };
    change(
        op,
        family,
        set,
        key,
        Data::Value(data),
        format!("port mapping {}", p.describe()),
        true,
    )
}

/// The elements of one family of a port: by DNAT on host addresses (and open
/// to direct routing where the network lets it in), or routed: open only.
fn port_family_changes(p: &Port, target: Addr, routed: bool, op: Op, out: &mut Vec<Change>) {
    let open = |set| {
        change(
            if op == Op::Destroy {
                op
            } else {
                Op::Add { excl: false }
            },
            target.family(),
            set,
            addr_proto_port(target, p.proto, p.container_port),
            Data::None,
            format!("port {}", p.describe()),
            false,
        )
    };
    if routed {
        out.push(open("open_routed"));
    } else {
        out.push(dnat_change(p, target, op));
        out.push(open("open_nat"));
    }
}

/// The element of a link: from . to . proto . port, in the table of its family.
pub(super) fn link_change(l: &Link, op: Op) -> Change {
    let (from, to) = match (l.from, l.to) {
        (std::net::IpAddr::V6(f), std::net::IpAddr::V6(t)) => (Addr::V6(f), Addr::V6(t)),
        (std::net::IpAddr::V4(f), std::net::IpAddr::V4(t)) => (Addr::V4(f), Addr::V4(t)),
        // Link::validate refuses mixed families; the IPv6 address of a mixed pair cannot match
        (f, t) => (Addr::V6(to_v6(f)), Addr::V6(to_v6(t))),
    };
    let mut key = from.bytes();
    key.extend(addr_proto_port(to, l.proto, l.port));
    change(
        op,
        from.family(),
        "links",
        key,
        Data::None,
        format!("link {}", l.describe()),
        false,
    )
}

fn to_v6(a: std::net::IpAddr) -> Ipv6Addr {
    match a {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    }
}

/// Every element of a port, IPv4 first.
pub(super) fn port_changes(p: &Port, op: Op, out: &mut Vec<Change>) {
    if let Some(a) = p.v4_target() {
        port_family_changes(p, Addr::V4(a), p.routed4, op, out);
    }
    if let Some(a) = p.v6_target() {
        port_family_changes(p, Addr::V6(a), p.routed6, op, out);
    }
}

pub(super) fn net_change(family: u8, set: &'static str, bridge: &str, op: Op) -> Change {
    let (key, data) = if set == "intra" {
        let mut k = ifname_key(bridge);
        k.extend_from_slice(&ifname_key(bridge));
        (k, Data::Verdict(NF_ACCEPT))
    } else {
        (ifname_key(bridge), Data::None)
    };
    change(
        op,
        family,
        set,
        key,
        data,
        format!(
            "network on bridge {bridge} (set {set} of table {} {TABLE})",
            family_name(family)
        ),
        false,
    )
}

/// The protection elements of a network in one family: its bridge in
/// `protected`, and in `allowed` one `bridge . ifname` per interface that
/// traffic routed to it may come in through (lo and the trusted ones; its
/// own traffic is the `intra` verdict's).
fn protection(n: &Network, family: u8, op: Op, out: &mut Vec<Change>) {
    out.push(net_change(family, "protected", &n.bridge, op));
    for i in std::iter::once("lo").chain(n.trusted.iter().map(String::as_str)) {
        let mut key = ifname_key(&n.bridge);
        key.extend_from_slice(&ifname_key(i));
        out.push(change(
            op,
            family,
            "allowed",
            key,
            Data::None,
            format!(
                "direct routing through {i} to the network on bridge {} (set allowed of table {} {TABLE})",
                n.bridge,
                family_name(family)
            ),
            false,
        ));
    }
}

/// Sets keyed by the bridge alone, cleared before a network is (re)added.
const FLAG_SETS: [&str; 6] = ["masq", "internal", "intra", "filtered", "routed", "bridges"];

/// The element changes of a batch, removals first: removing and re-adding
/// the same key in one transaction replaces it.
pub(super) fn changes(batch: &Batch) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &batch.remove_networks {
        for family in FAMILIES {
            for set in FLAG_SETS {
                out.push(net_change(family, set, &n.bridge, Op::Destroy));
            }
            protection(n, family, Op::Destroy, &mut out);
        }
    }
    for p in &batch.remove_ports {
        port_changes(p, Op::Destroy, &mut out);
    }
    for l in &batch.remove_links {
        out.push(link_change(l, Op::Destroy));
    }
    for n in &batch.add_networks {
        for family in FAMILIES {
            let mode = if family == NFPROTO_IPV6 {
                n.mode6
            } else {
                n.mode4
            };
            // Re-adding a network may change its flags: clear the old ones
            // (protection elements of another shape, e.g. other trusted
            // interfaces, go with a removal of that shape).
            for set in &FLAG_SETS[..5] {
                out.push(net_change(family, set, &n.bridge, Op::Destroy));
            }
            protection(n, family, Op::Destroy, &mut out);
            let add = Op::Add { excl: false };
            out.push(net_change(family, "bridges", &n.bridge, add));
            if n.masquerade && !n.internal && mode != GatewayMode::Routed {
                out.push(net_change(family, "masq", &n.bridge, add));
            }
            if n.internal {
                out.push(net_change(family, "internal", &n.bridge, add));
            }
            if mode.filtered() {
                out.push(net_change(family, "filtered", &n.bridge, add));
            }
            if mode == GatewayMode::Routed {
                out.push(net_change(family, "routed", &n.bridge, add));
            }
            if n.protected(family == NFPROTO_IPV6) {
                protection(n, family, add, &mut out);
            }
            let mut intra = net_change(family, "intra", &n.bridge, add);
            intra.data = Data::Verdict(if n.icc { NF_ACCEPT } else { NF_DROP });
            out.push(intra);
        }
    }
    for p in &batch.add_ports {
        port_changes(p, Op::Add { excl: true }, &mut out);
    }
    for l in &batch.add_links {
        out.push(link_change(l, Op::Add { excl: false }));
    }
    out
}

/// NFT_MSG_DESTROYTABLE of our table in `family` (absent is no error);
/// returns where it starts.
pub(super) fn put_destroy_table(w: &mut Writer, family: u8, seq: u32) -> usize {
    let m = w.begin(
        nft_type(NFT_MSG_DESTROYTABLE),
        NLM_F_REQUEST,
        seq,
        family,
        0,
    );
    w.attr_str(NFTA_TABLE_NAME, TABLE);
    w.end(m);
    m
}

/// NFT_MSG_GETTABLE of our table in `family`.
pub(super) fn put_get_table(w: &mut Writer, family: u8, seq: u32) {
    let m = w.begin(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        family,
        0,
    );
    w.attr_str(NFTA_TABLE_NAME, TABLE);
    w.end(m);
}

/// NFT_MSG_GETRULE: a dump of every rule of our table of `family`.
pub(super) fn put_get_rules(w: &mut Writer, family: u8, seq: u32) {
    let m = w.begin(
        nft_type(NFT_MSG_GETRULE),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family,
        0,
    );
    w.attr_str(NFTA_RULE_TABLE, TABLE);
    w.end(m);
}

/// NFT_MSG_GETSETELEM: a dump of every element of `set` in our table of `family`.
pub(super) fn put_get_elements(w: &mut Writer, family: u8, set: &str, seq: u32) {
    let m = w.begin(
        nft_type(NFT_MSG_GETSETELEM),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family,
        0,
    );
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    w.end(m);
}

/// The (key, data) of every element in the NEWSETELEM messages of a dump.
pub(super) fn parse_elements(payloads: &[&[u8]]) -> Vec<(Vec<u8>, Data)> {
    let mut out = Vec::new();
    for payload in payloads {
        let lists = attrs(payload).filter(|(t, _)| *t == NFTA_SET_ELEM_LIST_ELEMENTS);
        for (_, list) in lists {
            for (_, elem) in nested(list).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
                let Some(key) =
                    find(elem, NFTA_SET_ELEM_KEY).and_then(|k| find(k, NFTA_DATA_VALUE))
                else {
                    continue;
                };
                let data = match find(elem, NFTA_SET_ELEM_DATA) {
                    None => Data::None,
                    Some(d) => match (find(d, NFTA_DATA_VALUE), find(d, NFTA_DATA_VERDICT)) {
                        (Some(v), _) => Data::Value(v.to_vec()),
                        (None, Some(v)) => match find(v, NFTA_VERDICT_CODE) {
                            Some(&[a, b, c, d]) => Data::Verdict(u32::from_be_bytes([a, b, c, d])),
                            _ => Data::None,
                        },
                        (None, None) => Data::None,
                    },
                };
                out.push((key.to_vec(), data));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{Network, Subnet, Subnet6};

    fn port(host_ip: Option<&str>) -> Port {
        Port {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: 8080,
            container_ip: Some("10.0.0.2".parse().unwrap()),
            container_ip6: Some("fd00::2".parse().unwrap()),
            container_port: 80,
            bridge: "br0".into(),
            tag: "ep1".into(),
            routed4: false,
            routed6: false,
        }
    }

    fn net() -> Network {
        Network {
            bridge: "br0".into(),
            subnets: vec![Subnet::parse("10.0.0.0/24").unwrap()],
            subnets6: vec![Subnet6::parse("fd00::/64").unwrap()],
            masquerade: true,
            icc: false,
            internal: false,
            tag: String::new(),
            mode4: GatewayMode::Nat,
            mode6: GatewayMode::Nat,
            protect: true,
            trusted: vec!["eth9".into()],
        }
    }

    fn of(p: &Port, op: Op) -> Vec<Change> {
        let mut out = Vec::new();
        port_changes(p, op, &mut out);
        out
    }

    fn sets(ch: &[Change]) -> Vec<(u8, &'static str)> {
        ch.iter().map(|c| (c.family, c.set)).collect()
    }

    #[test]
    fn element_encodings() {
        let ch = of(&port(None), Op::Add { excl: true });
        assert_eq!(
            sets(&ch),
            [
                (NFPROTO_IPV4, "ports"),
                (NFPROTO_IPV4, "open_nat"),
                (NFPROTO_IPV6, "ports"),
                (NFPROTO_IPV6, "open_nat")
            ]
        );
        assert_eq!(ch[0].key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(ch[0].data, Data::Value(vec![10, 0, 0, 2, 0, 80, 0, 0]));
        assert_eq!(ch[0].op, Op::Add { excl: true });
        // the open element is shared by mappings to the same container port
        assert_eq!(ch[1].op, Op::Add { excl: false });
        assert_eq!(ch[1].key, [10, 0, 0, 2, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(ch[1].data, Data::None);
        assert_eq!(ch[2].key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let mut want = vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        want.extend_from_slice(&[0, 80, 0, 0]);
        assert_eq!(ch[2].data, Data::Value(want));
        // no IPv6 address: IPv4 only; no IPv4 address: IPv6 only
        let v4only = Port {
            container_ip6: None,
            ..port(None)
        };
        assert!(of(&v4only, Op::Destroy)
            .iter()
            .all(|c| c.family == NFPROTO_IPV4));
        let v6only = Port {
            container_ip: None,
            ..port(None)
        };
        assert!(of(&v6only, Op::Destroy)
            .iter()
            .all(|c| c.family == NFPROTO_IPV6));
        // 0.0.0.0 is every address
        assert_eq!(sets(&of(&port(Some("0.0.0.0")), Op::Destroy)).len(), 4);
        // a specific host address limits a mapping to its family
        let ch = of(&port(Some("192.0.2.2")), Op::Destroy);
        assert_eq!(
            sets(&ch),
            [(NFPROTO_IPV4, "ports_ip"), (NFPROTO_IPV4, "open_nat")]
        );
        assert_eq!(ch[0].key, [192, 0, 2, 2, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let ch = of(&port(Some("::1")), Op::Add { excl: true });
        assert_eq!(
            sets(&ch),
            [(NFPROTO_IPV6, "ports_ip"), (NFPROTO_IPV6, "open_nat")]
        );
        assert_eq!(ch[0].key.len(), 16 + 8);
        // routed: opened, not published
        let routed = Port {
            routed4: true,
            ..port(None)
        };
        let ch = of(&routed, Op::Add { excl: true });
        assert_eq!(
            sets(&ch),
            [
                (NFPROTO_IPV4, "open_routed"),
                (NFPROTO_IPV6, "ports"),
                (NFPROTO_IPV6, "open_nat")
            ]
        );
        let c = net_change(NFPROTO_IPV6, "intra", "br2", Op::Destroy);
        assert_eq!(c.family, NFPROTO_IPV6);
        assert_eq!(c.key.len(), 32);
        assert_eq!(&c.key[..4], b"br2\0");
        assert_eq!(&c.key[16..20], b"br2\0");
    }

    #[test]
    fn protection_elements() {
        let mut out = Vec::new();
        protection(&net(), NFPROTO_IPV4, Op::Add { excl: false }, &mut out);
        // the bridge, and one allowed element per way in: lo, trusted
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].set, "protected");
        assert_eq!(out[0].key, ifname_key("br0"));
        assert!(out[1..].iter().all(|c| c.set == "allowed"
            && c.key.len() == 2 * IFNAMSIZ
            && c.key[..IFNAMSIZ] == ifname_key("br0")[..]));
        let ins: Vec<&[u8]> = out[1..].iter().map(|c| &c.key[IFNAMSIZ..]).collect();
        assert_eq!(ins, [&ifname_key("lo")[..], &ifname_key("eth9")[..]]);
        let mut out = Vec::new();
        protection(&net(), NFPROTO_IPV6, Op::Destroy, &mut out);
        assert!(out
            .iter()
            .all(|c| c.family == NFPROTO_IPV6 && c.op == Op::Destroy));
    }

    #[test]
    fn element_message_layout() {
        let mut w = Writer::default();
        let mut c = net_change(NFPROTO_IPV4, "intra", "br0", Op::Add { excl: false });
        c.data = Data::Verdict(NF_DROP);
        put_element(&mut w, &c, 7);
        let b = w.bytes();
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), (10 << 8) | 12);
        assert_eq!(b[16], NFPROTO_IPV4);
        assert_eq!(b.len() % 4, 0);
    }

    #[test]
    fn link_elements_per_family() {
        let l = Link {
            proto: Proto::Udp,
            from: "10.9.0.2".parse().unwrap(),
            to: "10.9.0.3".parse().unwrap(),
            port: 53,
            bridge: String::new(),
            tag: String::new(),
        };
        let c = link_change(&l, Op::Add { excl: false });
        assert_eq!((c.family, c.set), (NFPROTO_IPV4, "links"));
        assert_eq!(c.key, [10, 9, 0, 2, 10, 9, 0, 3, 17, 0, 0, 0, 0, 53, 0, 0]);
        let v6 = Link {
            from: "fd00::2".parse().unwrap(),
            to: "fd00::3".parse().unwrap(),
            ..l
        };
        let c = link_change(&v6, Op::Destroy);
        assert_eq!((c.family, c.key.len()), (NFPROTO_IPV6, 40));
    }

    #[test]
    fn batch_order_removals_first() {
        let batch = Batch {
            add_networks: vec![net()],
            remove_networks: vec![],
            add_ports: vec![port(None)],
            remove_ports: vec![port(None)],
            ..Batch::default()
        };
        let ch = changes(&batch);
        assert_eq!(ch[0].op, Op::Destroy);
        assert_eq!(ch[0].set, "ports");
        let last = ch.last().unwrap();
        assert_eq!(last.family, NFPROTO_IPV6);
        assert_eq!(last.set, "open_nat");
        let added = |family, set| {
            ch.iter()
                .filter(|c| c.set == set && c.op != Op::Destroy && c.family == family)
                .count()
        };
        for family in FAMILIES {
            let intra = ch
                .iter()
                .find(|c| c.set == "intra" && c.op != Op::Destroy && c.family == family)
                .unwrap();
            assert_eq!(intra.data, Data::Verdict(NF_DROP));
            assert_eq!(added(family, "masq"), 1);
            assert_eq!(added(family, "filtered"), 1);
            assert_eq!(added(family, "protected"), 1);
            assert_eq!(added(family, "routed"), 0);
        }
        // routed IPv6: no masquerade, no protection; unprotected IPv4: not filtered
        let n = Network {
            mode4: GatewayMode::NatUnprotected,
            mode6: GatewayMode::Routed,
            ..net()
        };
        let ch = changes(&Batch {
            add_networks: vec![n],
            ..Batch::default()
        });
        let added = |family, set| {
            ch.iter()
                .filter(|c| c.set == set && c.op != Op::Destroy && c.family == family)
                .count()
        };
        assert_eq!(added(NFPROTO_IPV4, "masq"), 1);
        assert_eq!(added(NFPROTO_IPV4, "filtered"), 0);
        assert_eq!(added(NFPROTO_IPV4, "protected"), 0);
        assert_eq!(added(NFPROTO_IPV6, "masq"), 0);
        assert_eq!(added(NFPROTO_IPV6, "filtered"), 1);
        assert_eq!(added(NFPROTO_IPV6, "routed"), 1);
        assert_eq!(added(NFPROTO_IPV6, "protected"), 0);
    }
}

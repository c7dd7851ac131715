//! nf_tables messages: what a batch changes, as set and map elements of our
//! tables, encoded the way nft encodes its data types — ifname is 16 bytes
//! NUL-padded; inet_proto 1 byte, inet_service 2 bytes big-endian, ipv4_addr
//! 4 bytes and ipv6_addr 16 bytes network order; each component of a
//! concatenation is padded to a multiple of 4 bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ruleset::{family_name, FAMILIES, NFPROTO_IPV4, NFPROTO_IPV6, TABLE};
use crate::firewall::nfnl::{nft_type, Writer, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use crate::firewall::{Batch, Port, Proto};

// nf_tables constants (linux/netfilter/nf_tables.h).
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DESTROYTABLE: u16 = 26;
const NFT_MSG_DESTROYSETELEM: u16 = 30;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
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
            Data::Verdict(code) => {
                let d = w.nest(NFTA_SET_ELEM_DATA);
                let v = w.nest(NFTA_DATA_VERDICT);
                w.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                w.nest_end(v);
                w.nest_end(d);
            }
        }
    }
    w.nest_end(elem);
    w.nest_end(elements);
    w.end(m);
    m
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

pub(super) fn port_change(p: &Port, op: Op) -> Change {
    let (set, key) = match p.host_ip {
        Some(ip) if !ip.is_unspecified() => {
            let mut k = ip.octets().to_vec();
            k.extend_from_slice(&proto_port(p.proto, p.host_port));
            ("ports_ip", k)
        }
        _ => ("ports", proto_port(p.proto, p.host_port).to_vec()),
    };
    Change {
        op,
        family: NFPROTO_IPV4,
        set,
        key,
        data: Data::Value(addr_port(p.container_ip, p.container_port).to_vec()),
        what: format!("port mapping {}", p.describe()),
        port: true,
    }
}

/// The IPv6 element of a port, if it has one. A removal destroys the IPv6
/// element of the published key whatever it points to: it belongs to the
/// mapping the IPv4 element of the same key belongs to.
pub(super) fn port_change6(p: &Port, op: Op) -> Option<Change> {
    if p.host_ip.is_some_and(|ip| !ip.is_unspecified()) {
        return None;
    }
    let data = match (op, p.v6_target()) {
        (Op::Destroy, target) => target.unwrap_or(Ipv6Addr::UNSPECIFIED),
        (Op::Add { .. }, Some(target)) => target,
        (Op::Add { .. }, None) => return None,
    };
    Some(Change {
        op,
        family: NFPROTO_IPV6,
        set: "ports",
        key: proto_port(p.proto, p.host_port).to_vec(),
        data: Data::Value(addr6_port(data, p.container_port).to_vec()),
        what: format!("port mapping {}", p.describe()),
        port: true,
    })
}

pub(super) fn net_change(family: u8, set: &'static str, bridge: &str, op: Op) -> Change {
    let (key, data) = if set == "intra" {
        let mut k = ifname_key(bridge);
        k.extend_from_slice(&ifname_key(bridge));
        (k, Data::Verdict(NF_ACCEPT))
    } else {
        (ifname_key(bridge), Data::None)
    };
    Change {
        op,
        family,
        set,
        key,
        data,
        what: format!(
            "network on bridge {bridge} (set {set} of table {} {TABLE})",
            family_name(family)
        ),
        port: false,
    }
}

/// The element changes of a batch, removals first: removing and re-adding
/// the same key in one transaction replaces it.
pub(super) fn changes(batch: &Batch) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &batch.remove_networks {
        for family in FAMILIES {
            for set in ["bridges", "masq", "internal", "intra"] {
                out.push(net_change(family, set, &n.bridge, Op::Destroy));
            }
        }
    }
    for p in &batch.remove_ports {
        out.push(port_change(p, Op::Destroy));
        out.extend(port_change6(p, Op::Destroy));
    }
    for n in &batch.add_networks {
        for family in FAMILIES {
            // Re-adding a network may change its flags: clear the old ones.
            for set in ["masq", "internal", "intra"] {
                out.push(net_change(family, set, &n.bridge, Op::Destroy));
            }
            let add = Op::Add { excl: false };
            out.push(net_change(family, "bridges", &n.bridge, add));
            if n.masquerade && !n.internal {
                out.push(net_change(family, "masq", &n.bridge, add));
            }
            if n.internal {
                out.push(net_change(family, "internal", &n.bridge, add));
            }
            let mut intra = net_change(family, "intra", &n.bridge, add);
            intra.data = Data::Verdict(if n.icc { NF_ACCEPT } else { NF_DROP });
            out.push(intra);
        }
    }
    for p in &batch.add_ports {
        out.push(port_change(p, Op::Add { excl: true }));
        out.extend(port_change6(p, Op::Add { excl: true }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Network;

    fn port(host_ip: Option<&str>) -> Port {
        Port {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: 8080,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_ip6: Some("fd00::2".parse().unwrap()),
            container_port: 80,
            bridge: "br0".into(),
            tag: "ep1".into(),
        }
    }

    #[test]
    fn element_encodings() {
        let c = port_change(&port(None), Op::Add { excl: true });
        assert_eq!(c.set, "ports");
        assert_eq!(c.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(c.data, Data::Value(vec![10, 0, 0, 2, 0, 80, 0, 0]));
        assert_eq!(c.family, NFPROTO_IPV4);
        let c6 = port_change6(&port(None), Op::Add { excl: true }).unwrap();
        assert_eq!((c6.family, c6.set), (NFPROTO_IPV6, "ports"));
        assert_eq!(c6.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let mut want = vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        want.extend_from_slice(&[0, 80, 0, 0]);
        assert_eq!(c6.data, Data::Value(want));
        let v4only = Port {
            container_ip6: None,
            ..port(None)
        };
        assert!(port_change6(&v4only, Op::Add { excl: true }).is_none());
        // a removal clears the IPv6 element of the key whatever it points to
        assert!(port_change6(&v4only, Op::Destroy).is_some());
        let c = port_change(&port(Some("0.0.0.0")), Op::Destroy);
        assert_eq!(c.set, "ports");
        assert!(port_change6(&port(Some("0.0.0.0")), Op::Destroy).is_some());
        let c = port_change(&port(Some("192.0.2.2")), Op::Destroy);
        assert_eq!(c.set, "ports_ip");
        assert_eq!(c.key, [192, 0, 2, 2, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        // an IPv4 host address limits a mapping to IPv4
        assert!(port_change6(&port(Some("192.0.2.2")), Op::Add { excl: true }).is_none());
        assert!(port_change6(&port(Some("192.0.2.2")), Op::Destroy).is_none());
        let c = net_change(NFPROTO_IPV6, "intra", "br2", Op::Destroy);
        assert_eq!(c.family, NFPROTO_IPV6);
        assert_eq!(c.key.len(), 32);
        assert_eq!(&c.key[..4], b"br2\0");
        assert_eq!(&c.key[16..20], b"br2\0");
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
    fn batch_order_removals_first() {
        let n = Network {
            bridge: "br0".into(),
            subnet: None,
            subnet6: None,
            masquerade: true,
            icc: false,
            internal: false,
            tag: String::new(),
        };
        let batch = Batch {
            add_networks: vec![n.clone()],
            remove_networks: vec![],
            add_ports: vec![port(None)],
            remove_ports: vec![port(None)],
        };
        let ch = changes(&batch);
        assert_eq!(ch[0].op, Op::Destroy);
        assert_eq!(ch[0].set, "ports");
        let last = ch.last().unwrap();
        assert_eq!(last.op, Op::Add { excl: true });
        assert_eq!(last.family, NFPROTO_IPV6);
        for family in FAMILIES {
            let intra = ch
                .iter()
                .find(|c| c.set == "intra" && c.op != Op::Destroy && c.family == family)
                .unwrap();
            assert_eq!(intra.data, Data::Verdict(NF_DROP));
            assert!(ch
                .iter()
                .any(|c| c.set == "masq" && c.op != Op::Destroy && c.family == family));
        }
    }
}

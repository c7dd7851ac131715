//! The fixed part of our nftables firewall: `table ip cnm` and its IPv6 twin,
//! their sets, maps and chains, created once per netns in one nf_tables
//! transaction over netlink (no `nft` needed). `ruleset.nft` is the same
//! ruleset in nft's language: what `nft list table ip cnm` shows of it, and
//! what a test checks this program against.

use super::encode::{NF_ACCEPT, NF_DROP};
use super::expr::{
    and, concat_regs, ct, eq, fib_daddr_type, jump, lookup, lookup_not, map, meta, neq, payload,
    ret, verdict, Expr, CT_STATE, CT_STATUS, META_IIFNAME, META_L4PROTO, META_MARK, META_OIFNAME,
    META_RTCLASSID, NETWORK_HEADER, REG_1, REG_VERDICT, TRANSPORT_HEADER,
};
use crate::firewall::nfnl::{nft_type, Writer, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};

pub const TABLE: &str = "cnm";

/// The base ruleset in nft's language. `create table` first makes the whole
/// transaction fail (and add nothing twice) when a table already exists. The
/// version comment goes with the table's creation (the kernel keeps the user
/// data a table is created with).
///
/// Legacy links (`links`: from . to . proto . port) are accepted first in
/// `forward`, both ways, before icc's verdict: on a network without icc they
/// are all that passes between its sandboxes.
///
/// Per family, networks are elements: `bridges` (every bridge), `masq`,
/// `internal`, `intra` (icc verdict), `filtered` (only published container
/// ports open from outside: gateway modes nat and routed), `routed` (ICMP
/// open too), `protected` / `allowed` (direct-access protection of a nat
/// network: its bridge, and `bridge . ifname` for lo and each trusted
/// interface). Published ports are DNAT map elements and `open_nat` /
/// `open_routed` elements (container address . proto . port). Every set is a
/// hash: one element costs the same however many there are.
///
/// Direct-access protection is a forward rule: traffic routed to a protected
/// bridge from an interface not allowed for it is dropped, unless it is a
/// published host port (DNATed, accepted before) or a reply to a connection
/// the containers opened. Traffic for the bridge's own address is the host's,
/// not forwarded, and not touched. Keyed on interfaces rather than subnets so
/// that no interval set (whose updates cost as much as its size) is needed.
///
/// The IPv6 table has no localhost rule: ::1 cannot be routed out (there is no
/// route_localnet for IPv6), so connections to ::1 are not DNATed at all
/// rather than DNATed into a black hole.
///
/// The operator's own rules belong in a table of their own (cnm never touches
/// another table); base chains with a priority below ours run first.
pub const RULESET: &str = include_str!("ruleset.nft");

/// The families of our two tables.
pub(super) const FAMILIES: [u8; 2] = [NFPROTO_IPV4, NFPROTO_IPV6];

pub(super) fn family_name(family: u8) -> &'static str {
    if family == NFPROTO_IPV6 {
        "ip6"
    } else {
        "ip"
    }
}

// linux/netfilter.h
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_IPV6: u8 = 10;

/// The comment of the current base ruleset: a table with another one was made
/// by an older cnm and is replaced (reconcile then restores its elements).
pub(super) const VERSION_TAG: &str = "managed by cnm v7";

// ---------------------------------------------------------------------------
// Sets and maps

/// nft's data types (its `enum datatypes`), which `nft list` prints by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Ifname,
    Addr,
    Proto,
    Service,
    Verdict,
}

impl Ty {
    /// (nft type id, length) in `family`.
    fn id_len(self, family: u8) -> (u32, u32) {
        match (self, family) {
            (Ty::Ifname, _) => (41, 16),
            (Ty::Addr, NFPROTO_IPV6) => (8, 16),
            (Ty::Addr, _) => (7, 4),
            (Ty::Proto, _) => (12, 1),
            (Ty::Service, _) => (13, 2),
            (Ty::Verdict, _) => (1, 0),
        }
    }
}

/// The type id and length of a key or data of `types`: a concatenation packs
/// the ids 6 bits apart and pads each component to 4 bytes.
fn type_of(types: &[Ty], family: u8) -> (u32, u32) {
    if let [one] = types {
        return one.id_len(family);
    }
    types.iter().fold((0, 0), |(id, len), t| {
        let (i, l) = t.id_len(family);
        ((id << 6) | i, len + l.div_ceil(4) * 4)
    })
}

const IF: &[Ty] = &[Ty::Ifname];
const IF_IF: &[Ty] = &[Ty::Ifname, Ty::Ifname];
const ADDR_PROTO_SERVICE: &[Ty] = &[Ty::Addr, Ty::Proto, Ty::Service];

/// Every set and map of a table: (name, key, data).
pub(super) const SETS: [(&str, &[Ty], &[Ty]); 13] = [
    ("bridges", IF, &[]),
    ("masq", IF, &[]),
    ("internal", IF, &[]),
    ("filtered", IF, &[]),
    ("routed", IF, &[]),
    ("protected", IF, &[]),
    ("allowed", IF_IF, &[]),
    ("open_nat", ADDR_PROTO_SERVICE, &[]),
    ("open_routed", ADDR_PROTO_SERVICE, &[]),
    ("links", &[Ty::Addr, Ty::Addr, Ty::Proto, Ty::Service], &[]),
    ("intra", IF_IF, &[Ty::Verdict]),
    ("ports", &[Ty::Proto, Ty::Service], &[Ty::Addr, Ty::Service]),
    ("ports_ip", ADDR_PROTO_SERVICE, &[Ty::Addr, Ty::Service]),
];

// ---------------------------------------------------------------------------
// Chains and rules

struct Chain {
    name: &'static str,
    /// (type, hook number, priority) of a base chain.
    hook: Option<(&'static str, u32, i32)>,
    rules: Vec<Vec<Expr>>,
}

// NF_INET_* hooks
const PRE_ROUTING: u32 = 0;
const FORWARD: u32 = 2;
const LOCAL_OUT: u32 = 3;
const POST_ROUTING: u32 = 4;
const MARK_PUBLISHED: u32 = 0x0002_0000;
const IPS_DST_NAT: u32 = 0x20;
const CT_ESTABLISHED_RELATED: u32 = 0x6;
const RTN_LOCAL: u32 = 2;
const ROUTED_REALMS: u32 = 0x00c1_00c1;

/// The chains of the table of `family`, each rule as nft compiles the line of
/// `ruleset.nft` written above it.
fn chains(family: u8) -> Vec<Chain> {
    let v6 = family == NFPROTO_IPV6;
    let (alen, saddr, daddr) = if v6 { (16, 8, 24) } else { (4, 12, 16) };
    let r1 = REG_1;
    let r2 = concat_regs(&[16, 16])[1];
    let u32b = |v: u32| v.to_ne_bytes();
    let flag = |key, mask| [ct(key, r1), and(r1, mask), neq(r1, &[0; 4])];
    let local_publish = [
        fib_daddr_type(r1),
        eq(r1, &u32b(RTN_LOCAL)),
        jump("publish"),
    ];
    // address . l4proto . port, as a lookup key
    let addr_port = |addr_offset, port_offset| {
        let r = concat_regs(&[alen, 1, 2]);
        (
            vec![
                payload(NETWORK_HEADER, addr_offset, alen, r[0]),
                meta(META_L4PROTO, r[1]),
                payload(TRANSPORT_HEADER, port_offset, 2, r[2]),
            ],
            r[0],
        )
    };
    // the register the port of an address . port map value lands in
    let data_port = concat_regs(&[alen, 2])[1];
    let dnat = super::expr::Expr::Dnat {
        family,
        addr: r1,
        proto: data_port,
    };
    let links = |from, to, port_offset| {
        let r = concat_regs(&[alen, alen, 1, 2]);
        vec![
            payload(NETWORK_HEADER, from, alen, r[0]),
            payload(NETWORK_HEADER, to, alen, r[1]),
            meta(META_L4PROTO, r[2]),
            payload(TRANSPORT_HEADER, port_offset, 2, r[3]),
            lookup("links", r[0]),
            verdict(NF_ACCEPT),
        ]
    };
    let both = |a: &[Expr], b: &[Expr]| [a, b].concat();
    let with = |mut v: Vec<Expr>, tail: &[Expr]| {
        v.extend_from_slice(tail);
        v
    };

    // output: `ip6 daddr != ::1 fib daddr type local jump publish`
    let mut output = vec![];
    if v6 {
        output.push(payload(NETWORK_HEADER, daddr, 16, r1));
        output.push(neq(r1, &std::net::Ipv6Addr::LOCALHOST.octets()));
    }
    output.extend_from_slice(&local_publish);

    // postrouting
    let mut postrouting = vec![
        // ct status dnat oifname @bridges meta mark & 0x00020000 == 0x00020000 masquerade
        both(
            &flag(CT_STATUS, IPS_DST_NAT),
            &[
                meta(META_OIFNAME, r1),
                lookup("bridges", r1),
                meta(META_MARK, r1),
                and(r1, MARK_PUBLISHED),
                eq(r1, &u32b(MARK_PUBLISHED)),
                Expr::Masq,
            ],
        ),
    ];
    if !v6 {
        // ip saddr 127.0.0.0/8 oifname @bridges masquerade
        postrouting.push(vec![
            payload(NETWORK_HEADER, saddr, 1, r1),
            eq(r1, &[127]),
            meta(META_OIFNAME, r1),
            lookup("bridges", r1),
            Expr::Masq,
        ]);
        // meta rtclassid 0x00c100c1 return
        postrouting.push(vec![
            meta(META_RTCLASSID, r1),
            eq(r1, &u32b(ROUTED_REALMS)),
            ret(),
        ]);
    }
    // iifname @masq oifname != @bridges masquerade
    postrouting.push(vec![
        meta(META_IIFNAME, r1),
        lookup("masq", r1),
        meta(META_OIFNAME, r1),
        lookup_not("bridges", r1),
        Expr::Masq,
    ]);

    let (dport_key, dport_reg) = addr_port(daddr, 2);
    let pp = concat_regs(&[1, 2]);
    let icmp = if v6 {
        libc::IPPROTO_ICMPV6
    } else {
        libc::IPPROTO_ICMP
    } as u8;
    vec![
        Chain {
            name: "prerouting",
            hook: Some(("nat", PRE_ROUTING, -100)),
            rules: vec![local_publish.to_vec()],
        },
        Chain {
            name: "output",
            hook: Some(("nat", LOCAL_OUT, -100)),
            rules: vec![output],
        },
        Chain {
            name: "publish",
            hook: None,
            rules: vec![
                // iifname @bridges meta mark set meta mark | 0x00020000
                vec![
                    meta(META_IIFNAME, r1),
                    lookup("bridges", r1),
                    meta(META_MARK, r1),
                    Expr::Bitwise {
                        reg: r1,
                        mask: u32b(!MARK_PUBLISHED).to_vec(),
                        xor: u32b(MARK_PUBLISHED).to_vec(),
                    },
                    Expr::MetaSet {
                        key: META_MARK,
                        sreg: r1,
                    },
                ],
                // dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
                with(
                    dport_key.clone(),
                    &[map("ports_ip", dport_reg, r1), dnat.clone()],
                ),
                // dnat ip to meta l4proto . th dport map @ports
                vec![
                    meta(META_L4PROTO, pp[0]),
                    payload(TRANSPORT_HEADER, 2, 2, pp[1]),
                    map("ports", pp[0], r1),
                    dnat,
                ],
            ],
        },
        Chain {
            name: "postrouting",
            hook: Some(("nat", POST_ROUTING, 100)),
            rules: postrouting,
        },
        Chain {
            name: "forward",
            hook: Some(("filter", FORWARD, 0)),
            rules: vec![
                // ip saddr . ip daddr . meta l4proto . th dport @links accept
                links(saddr, daddr, 2),
                // ip daddr . ip saddr . meta l4proto . th sport @links accept
                links(daddr, saddr, 0),
                // iifname . oifname vmap @intra
                vec![
                    meta(META_IIFNAME, r1),
                    meta(META_OIFNAME, r2),
                    map("intra", r1, REG_VERDICT),
                ],
                // iifname @internal drop
                vec![
                    meta(META_IIFNAME, r1),
                    lookup("internal", r1),
                    verdict(NF_DROP),
                ],
                // oifname @internal drop
                vec![
                    meta(META_OIFNAME, r1),
                    lookup("internal", r1),
                    verdict(NF_DROP),
                ],
                // ct status dnat accept
                both(&flag(CT_STATUS, IPS_DST_NAT), &[verdict(NF_ACCEPT)]),
                // oifname @protected ct state & (established | related) == 0
                //   oifname . iifname != @allowed drop
                vec![
                    meta(META_OIFNAME, r1),
                    lookup("protected", r1),
                    ct(CT_STATE, r1),
                    and(r1, CT_ESTABLISHED_RELATED),
                    eq(r1, &[0; 4]),
                    meta(META_OIFNAME, r1),
                    meta(META_IIFNAME, r2),
                    lookup_not("allowed", r1),
                    verdict(NF_DROP),
                ],
                // oifname @filtered jump inbound
                vec![
                    meta(META_OIFNAME, r1),
                    lookup("filtered", r1),
                    jump("inbound"),
                ],
                // iifname @bridges oifname @bridges drop
                vec![
                    meta(META_IIFNAME, r1),
                    lookup("bridges", r1),
                    meta(META_OIFNAME, r1),
                    lookup("bridges", r1),
                    verdict(NF_DROP),
                ],
            ],
        },
        Chain {
            name: "inbound",
            hook: None,
            rules: vec![
                // ct state established,related accept
                both(
                    &flag(CT_STATE, CT_ESTABLISHED_RELATED),
                    &[verdict(NF_ACCEPT)],
                ),
                // ip daddr . meta l4proto . th dport @open_routed accept
                with(
                    dport_key.clone(),
                    &[lookup("open_routed", dport_reg), verdict(NF_ACCEPT)],
                ),
                // oifname @routed meta l4proto icmp accept
                vec![
                    meta(META_OIFNAME, r1),
                    lookup("routed", r1),
                    meta(META_L4PROTO, r1),
                    eq(r1, &[icmp]),
                    verdict(NF_ACCEPT),
                ],
                // iifname @bridges drop
                vec![
                    meta(META_IIFNAME, r1),
                    lookup("bridges", r1),
                    verdict(NF_DROP),
                ],
                // ip daddr . meta l4proto . th dport @open_nat accept
                with(
                    dport_key,
                    &[lookup("open_nat", dport_reg), verdict(NF_ACCEPT)],
                ),
                // drop
                vec![verdict(NF_DROP)],
            ],
        },
    ]
}

// ---------------------------------------------------------------------------
// Messages

// linux/netfilter/nf_tables.h
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NLM_F_APPEND: u16 = 0x800;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFT_SET_MAP: u32 = 0x8;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
// libnftnl's user data TLVs: table comment; set key and data byte order
const UDATA_TABLE_COMMENT: u8 = 0;
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const BYTEORDER_INVALID: u32 = 0;
const BYTEORDER_HOST: u32 = 1;

fn udata(out: &mut Vec<u8>, ty: u8, value: &[u8]) {
    out.push(ty);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// One message of the base ruleset of a family.
enum Message {
    Table,
    Chain(usize),
    Set(usize),
    Rule(usize, usize),
}

/// The messages that make the table of `family`, in order: the table, its
/// chains (jumps name them), its sets, its rules.
pub(super) struct Program {
    family: u8,
    chains: Vec<Chain>,
    messages: Vec<Message>,
}

impl Program {
    pub(super) fn new(family: u8) -> Program {
        let chains = chains(family);
        let mut messages = vec![Message::Table];
        messages.extend((0..chains.len()).map(Message::Chain));
        messages.extend((0..SETS.len()).map(Message::Set));
        for (c, chain) in chains.iter().enumerate() {
            messages.extend((0..chain.rules.len()).map(|r| Message::Rule(c, r)));
        }
        Program {
            family,
            chains,
            messages,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }

    /// How many rules the base ruleset of this family has.
    pub(super) fn rules(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// What message `index` makes, for an error.
    pub(super) fn describe(&self, index: usize) -> String {
        let fam = family_name(self.family);
        match self.messages.get(index) {
            Some(Message::Table) | None => format!("table {fam} {TABLE}"),
            Some(Message::Chain(c)) => {
                format!("chain {} of table {fam} {TABLE}", self.chains[*c].name)
            }
            Some(Message::Set(s)) => format!("set {} of table {fam} {TABLE}", SETS[*s].0),
            Some(Message::Rule(c, r)) => {
                format!(
                    "rule {} of chain {} of table {fam} {TABLE}",
                    r + 1,
                    self.chains[*c].name
                )
            }
        }
    }

    /// Writes message `index` with `seq`; returns where it starts.
    pub(super) fn put(&self, w: &mut Writer, index: usize, seq: u32) -> usize {
        let family = self.family;
        let begin = |w: &mut Writer, msg, flags| {
            w.begin(nft_type(msg), NLM_F_REQUEST | flags, seq, family, 0)
        };
        let m = match &self.messages[index] {
            Message::Table => {
                let m = begin(w, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
                w.attr_str(NFTA_TABLE_NAME, TABLE);
                let mut comment = VERSION_TAG.as_bytes().to_vec();
                comment.push(0);
                let mut ud = Vec::new();
                udata(&mut ud, UDATA_TABLE_COMMENT, &comment);
                w.attr(NFTA_TABLE_USERDATA, &ud);
                m
            }
            Message::Chain(c) => {
                let chain = &self.chains[*c];
                let m = begin(w, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
                w.attr_str(NFTA_CHAIN_TABLE, TABLE);
                w.attr_str(NFTA_CHAIN_NAME, chain.name);
                if let Some((ty, hook, prio)) = chain.hook {
                    let h = w.nest(NFTA_CHAIN_HOOK);
                    w.attr_be32(NFTA_HOOK_HOOKNUM, hook);
                    w.attr(NFTA_HOOK_PRIORITY, &prio.to_be_bytes());
                    w.nest_end(h);
                    w.attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                    w.attr_str(NFTA_CHAIN_TYPE, ty);
                }
                m
            }
            Message::Set(s) => {
                let (name, key, data) = SETS[*s];
                let m = begin(w, NFT_MSG_NEWSET, NLM_F_CREATE);
                w.attr_str(NFTA_SET_TABLE, TABLE);
                w.attr_str(NFTA_SET_NAME, name);
                w.attr_be32(
                    NFTA_SET_FLAGS,
                    if data.is_empty() { 0 } else { NFT_SET_MAP },
                );
                let (key_id, key_len) = type_of(key, family);
                w.attr_be32(NFTA_SET_KEY_TYPE, key_id);
                w.attr_be32(NFTA_SET_KEY_LEN, key_len);
                let mut ud = Vec::new();
                let order = if key == IF {
                    BYTEORDER_HOST
                } else {
                    BYTEORDER_INVALID
                };
                udata(&mut ud, UDATA_SET_KEYBYTEORDER, &order.to_ne_bytes());
                if !data.is_empty() {
                    let (data_id, data_len) = if data == [Ty::Verdict] {
                        (NFT_DATA_VERDICT, 0)
                    } else {
                        type_of(data, family)
                    };
                    w.attr_be32(NFTA_SET_DATA_TYPE, data_id);
                    w.attr_be32(NFTA_SET_DATA_LEN, data_len);
                    udata(
                        &mut ud,
                        UDATA_SET_DATABYTEORDER,
                        &BYTEORDER_INVALID.to_ne_bytes(),
                    );
                }
                w.attr_be32(NFTA_SET_ID, *s as u32 + 1);
                w.attr(NFTA_SET_USERDATA, &ud);
                m
            }
            Message::Rule(c, r) => {
                let chain = &self.chains[*c];
                let m = begin(w, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
                w.attr_str(NFTA_RULE_TABLE, TABLE);
                w.attr_str(NFTA_RULE_CHAIN, chain.name);
                let list = w.nest(NFTA_RULE_EXPRESSIONS);
                for e in &chain.rules[*r] {
                    e.put(w);
                }
                w.nest_end(list);
                m
            }
        };
        w.end(m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_types_as_nft_writes_them() {
        assert_eq!(type_of(IF, NFPROTO_IPV4), (41, 16));
        assert_eq!(type_of(IF_IF, NFPROTO_IPV4), (0xa69, 32));
        assert_eq!(type_of(ADDR_PROTO_SERVICE, NFPROTO_IPV4), (0x730d, 12));
        assert_eq!(type_of(&[Ty::Proto, Ty::Service], NFPROTO_IPV4), (0x30d, 8));
        assert_eq!(type_of(&[Ty::Addr, Ty::Service], NFPROTO_IPV4), (0x1cd, 8));
        assert_eq!(type_of(&[Ty::Addr, Ty::Service], NFPROTO_IPV6), (0x20d, 20));
    }

    #[test]
    fn one_message_per_table_chain_set_and_rule() {
        let v4 = Program::new(NFPROTO_IPV4);
        let v6 = Program::new(NFPROTO_IPV6);
        // the IPv6 table has neither the localhost nor the realm rule
        assert_eq!(v4.len(), v6.len() + 2);
        assert_eq!(v4.len(), 1 + 6 + SETS.len() + 24);
        let mut w = Writer::default();
        for i in 0..v4.len() {
            v4.put(&mut w, i, i as u32 + 1);
        }
        assert!(w
            .bytes()
            .windows(VERSION_TAG.len())
            .any(|x| x == VERSION_TAG.as_bytes()));
        assert_eq!(v4.describe(1), "chain prerouting of table ip cnm");
    }
}

//! Our chains, the rules `init` writes once (jumps from the built-in chains
//! into ours, and the fixed rules of ours), and the comments that tag every
//! rule of a network or an endpoint. What each chain holds is in `mod.rs`.

use std::net::IpAddr;

use super::rule::{opt, options, Pos, Rule, Table};
use crate::firewall::{Network, Port, Proto};

pub(super) const PREROUTING: &str = "CNM-PREROUTING";
pub(super) const POSTROUTING: &str = "CNM-POSTROUTING";
pub(super) const DIRECT: &str = "CNM-DIRECT";
pub(super) const USER: &str = "CNM-USER";
pub(super) const FORWARD: &str = "CNM-FORWARD";
pub(super) const OPEN: &str = "CNM-OPEN";
pub(super) const ISOLATION: &str = "CNM-ISOLATION";
pub(super) const ISOLATION2: &str = "CNM-ISOLATION-2";
pub(super) const INBOUND: &str = "CNM-INBOUND";

pub(super) const NET_TAG: &str = "cnm:net:";
pub(super) const EP_TAG: &str = "cnm:ep:";

/// The comment of a network's rules.
pub(super) fn net_comment(n: &Network) -> String {
    format!("{NET_TAG}{}", n.tag)
}

/// The comment of a network's rules that do not name its bridge (the
/// direct-access ones): tags hold no '/', so the bridge can follow one.
pub(super) fn net_bridge_comment(n: &Network) -> String {
    format!("{NET_TAG}{}/{}", n.tag, n.bridge)
}

pub(super) fn ep_comment(p: &Port) -> String {
    format!("{EP_TAG}{}/{}", p.tag, p.bridge)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nat,
    Filter,
    Mangle,
}

/// Every chain of ours. CNM-USER is the operator's: created and jumped to,
/// never changed or removed.
const CHAIN_NAMES: &[(Kind, &str)] = &[
    (Kind::Nat, PREROUTING),
    (Kind::Nat, POSTROUTING),
    (Kind::Mangle, DIRECT),
    (Kind::Filter, USER),
    (Kind::Filter, FORWARD),
    (Kind::Filter, OPEN),
    (Kind::Filter, ISOLATION),
    (Kind::Filter, ISOLATION2),
    (Kind::Filter, INBOUND),
];

/// Published ports are spread over chains of their own, so that a change
/// touches a chain of a few hundred rules at most: iptables-nft-restore reads
/// every rule of each chain it changes (one DNAT rule added then deleted
/// cost 14 + 130 ms in a chain of 10 000 rules, 5 + 5 ms in a short one).
/// DNAT rules go by protocol and host port (256 ports a chain), jumped to
/// from CNM-PREROUTING by port range; the accepts of their container ports by
/// the low six bits of the container address, jumped to from the head of
/// CNM-INBOUND (before the networks' drops). A shard chain is made with its
/// first rule and stays until `reset`.
pub(super) const DNAT_SHARD: &str = "CNM-DNAT-";
pub(super) const ACCEPT_SHARD: &str = "CNM-ACCEPT-";
/// host ports per DNAT shard: 2^PORT_SHIFT
const PORT_SHIFT: u16 = 8;
/// container addresses are spread by their low bits: ADDR_BITS of them
const ADDR_BITS: u8 = 63;

/// Whether a chain is one of the shards of published ports.
pub(super) fn is_shard(chain: &str) -> bool {
    chain.starts_with(DNAT_SHARD) || chain.starts_with(ACCEPT_SHARD)
}

/// The shard of a DNAT rule, and the jump into it.
pub(super) fn dnat_shard(table: Table, proto: Proto, host_port: u16) -> (String, Rule, Pos) {
    let n = host_port >> PORT_SHIFT;
    let name = format!("{DNAT_SHARD}{}-{n}", proto.as_str().to_uppercase());
    let (lo, hi) = (n << PORT_SHIFT, (n << PORT_SHIFT) | ((1 << PORT_SHIFT) - 1));
    let p = proto.as_str();
    let range = format!("{lo}:{hi}");
    let jump = Rule::new(
        table,
        PREROUTING,
        &["-p", p, "-m", p, "--dport", &range, "-j", &name],
    );
    (name, jump, Pos::Append)
}

/// The shard of the accept of a container port, and the jump into it.
pub(super) fn accept_shard(table: Table, container: IpAddr) -> (String, Rule, Pos) {
    let (n, dst) = match container {
        IpAddr::V4(ip) => {
            let n = ip.octets()[3] & ADDR_BITS;
            (n, format!("0.0.0.{n}/0.0.0.{ADDR_BITS}"))
        }
        IpAddr::V6(ip) => {
            let n = ip.octets()[15] & ADDR_BITS;
            (n, format!("::{n:x}/::{ADDR_BITS:x}"))
        }
    };
    let name = format!("{ACCEPT_SHARD}{n}");
    let jump = Rule::new(table, INBOUND, &["-d", &dst, "-j", &name]);
    (name, jump, Pos::Insert)
}

/// The shard a rule of a published port belongs in (its DNAT rule's or its
/// accept's, by `role_chain`: PREROUTING or INBOUND), with the jump into it;
/// None for any other rule.
pub(super) fn shard_for(rule: &Rule, role_chain: &str) -> Option<(String, Rule, Pos)> {
    let opts = options(&rule.args);
    let proto = Proto::parse(opt(&opts, "-p")?.1).ok()?;
    if role_chain == PREROUTING {
        let port = opt(&opts, "--dport")?.1.parse().ok()?;
        return Some(dnat_shard(Table::nat(rule.table.v6()), proto, port));
    }
    if role_chain == INBOUND {
        let addr = opt(&opts, "-d")?.1.parse().ok()?;
        return Some(accept_shard(Table::filter(rule.table.v6()), addr));
    }
    None
}

/// Whether a chain is one of ours (CNM-USER and the shards included).
pub(super) fn is_ours(chain: &str) -> bool {
    CHAIN_NAMES.iter().any(|(_, c)| *c == chain) || is_shard(chain)
}

/// Our chains of one family, CNM-USER included.
pub(super) fn chains(v6: bool) -> Vec<(Table, &'static str)> {
    CHAIN_NAMES
        .iter()
        .map(|(kind, c)| {
            let t = match kind {
                Kind::Nat => Table::nat(v6),
                Kind::Filter => Table::filter(v6),
                Kind::Mangle => Table::mangle(v6),
            };
            (t, *c)
        })
        .collect()
}

/// The chains of one family that cnm writes rules into and `reset` removes:
/// all of ours but CNM-USER.
pub(super) fn managed_chains(v6: bool) -> Vec<(Table, &'static str)> {
    chains(v6).into_iter().filter(|(_, c)| *c != USER).collect()
}

/// Rules that must stand in their chain in this order: inserted at its head
/// (`Pos::Insert`) or appended at its tail (`Pos::Append`).
#[derive(Debug, Clone)]
pub(super) struct Ordered {
    pub(super) pos: Pos,
    pub(super) rules: Vec<Rule>,
}

/// What `init` makes sure of in one family: the jumps into our chains and
/// the fixed rules of ours, each group in its order.
pub(super) fn fixed_rules(v6: bool) -> Vec<Ordered> {
    let (nat, filter, mangle) = (Table::nat(v6), Table::filter(v6), Table::mangle(v6));
    let local: &[&str] = &["-m", "addrtype", "--dst-type", "LOCAL", "-j", PREROUTING];
    let output: &[&str] = if v6 {
        // ::1 cannot be DNATed out of the host: leave it alone.
        &[
            "!",
            "-d",
            "::1",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            PREROUTING,
        ]
    } else {
        local
    };
    let one = |pos, rule| Ordered {
        pos,
        rules: vec![rule],
    };
    let mut fixed = vec![
        one(Pos::Append, Rule::new(nat, "PREROUTING", local)),
        one(Pos::Append, Rule::new(nat, "OUTPUT", output)),
        one(
            Pos::Append,
            Rule::new(nat, "POSTROUTING", &["-j", POSTROUTING]),
        ),
        one(
            Pos::Append,
            Rule::new(mangle, "PREROUTING", &["-j", DIRECT]),
        ),
        // The operator's rules first, as Docker's DOCKER-USER.
        Ordered {
            pos: Pos::Insert,
            rules: vec![
                Rule::new(filter, "FORWARD", &["-j", USER]),
                Rule::new(filter, "FORWARD", &["-j", FORWARD]),
            ],
        },
        // Replies of connections the containers opened are no direct access.
        one(
            Pos::Insert,
            Rule::new(
                mangle,
                DIRECT,
                &[
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "RELATED,ESTABLISHED",
                    "-j",
                    "RETURN",
                ],
            ),
        ),
        // After the icc and internal rules networks insert at the head:
        // published by DNAT, open before isolation, isolation, filtered.
        Ordered {
            pos: Pos::Append,
            rules: vec![
                Rule::new(
                    filter,
                    FORWARD,
                    &["-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"],
                ),
                Rule::new(filter, FORWARD, &["-j", OPEN]),
                Rule::new(filter, FORWARD, &["-j", ISOLATION]),
                Rule::new(filter, FORWARD, &["-j", INBOUND]),
            ],
        },
    ];
    if !v6 {
        // Forwarded from a routed cluster block to another host's block (both
        // routes carry the cluster realm, see cluster_routes.rs): no NAT.
        fixed.push(one(
            Pos::Insert,
            Rule::new(
                nat,
                POSTROUTING,
                &["-m", "realm", "--realm", CLASSID, "-j", "RETURN"],
            ),
        ));
    }
    fixed
}

/// `rtclassid` of traffic between routed cluster blocks, as iptables spells it.
const CLASSID: &str = "0xc100c1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_published_ports() {
        let (name, jump, pos) = dnat_shard(Table::Nat, Proto::Tcp, 32_800);
        assert_eq!(name, "CNM-DNAT-TCP-128");
        assert_eq!(
            jump.line("-A"),
            "-A CNM-PREROUTING -p tcp -m tcp --dport 32768:33023 -j CNM-DNAT-TCP-128"
        );
        assert_eq!(pos, Pos::Append);
        assert_eq!(
            dnat_shard(Table::Nat6, Proto::Udp, 65_535).0,
            "CNM-DNAT-UDP-255"
        );
        assert_eq!(
            dnat_shard(Table::Nat, Proto::Sctp, 0).1.line("-A"),
            "-A CNM-PREROUTING -p sctp -m sctp --dport 0:255 -j CNM-DNAT-SCTP-0"
        );
        let (name, jump, pos) = accept_shard(Table::Filter, "10.9.1.70".parse().unwrap());
        assert_eq!(name, "CNM-ACCEPT-6");
        assert_eq!(
            jump.line("-I"),
            "-I CNM-INBOUND 1 -d 0.0.0.6/0.0.0.63 -j CNM-ACCEPT-6"
        );
        assert_eq!(pos, Pos::Insert);
        let (name, jump, _) = accept_shard(Table::Filter6, "fd00:9::2f".parse().unwrap());
        assert_eq!(name, "CNM-ACCEPT-47");
        assert_eq!(
            jump.line("-A"),
            "-A CNM-INBOUND -d ::2f/::3f -j CNM-ACCEPT-47"
        );
        // chain names fit iptables' 28 characters
        assert!(dnat_shard(Table::Nat, Proto::Sctp, 65_535).0.len() <= 28);
    }

    #[test]
    fn chains_of_a_family() {
        let all = chains(true);
        assert_eq!(all.len(), CHAIN_NAMES.len());
        assert!(all.iter().all(|(t, _)| t.v6()));
        assert!(all.contains(&(Table::Mangle6, DIRECT)));
        assert!(all.contains(&(Table::Filter6, USER)));
        let managed = managed_chains(false);
        assert_eq!(managed.len(), all.len() - 1);
        assert!(!managed.iter().any(|(_, c)| *c == USER));
        assert!(is_ours(USER) && is_ours(INBOUND) && !is_ours("FORWARD"));
        assert!(is_ours("CNM-DNAT-TCP-32") && is_ours("CNM-ACCEPT-5") && !is_ours("CNM-OTHER"));
        // every fixed rule lives in its family's tables
        for v6 in [false, true] {
            for o in fixed_rules(v6) {
                assert!(o.rules.iter().all(|r| r.table.v6() == v6));
            }
        }
    }
}

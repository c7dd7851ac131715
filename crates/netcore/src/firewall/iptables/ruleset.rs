//! Our chains, the rules `init` writes once (jumps from the built-in chains
//! into ours, and the fixed rules of ours), and the comments that tag every
//! rule of a network or an endpoint. What each chain holds is in `mod.rs`.

use super::rule::{Pos, Rule, Table};
use crate::firewall::{Network, Port};

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

/// Whether a chain is one of ours (CNM-USER included).
pub(super) fn is_ours(chain: &str) -> bool {
    CHAIN_NAMES.iter().any(|(_, c)| *c == chain)
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
        // every fixed rule lives in its family's tables
        for v6 in [false, true] {
            for o in fixed_rules(v6) {
                assert!(o.rules.iter().all(|r| r.table.v6() == v6));
            }
        }
    }
}

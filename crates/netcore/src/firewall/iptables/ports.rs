//! The rules of a published port, per family: by DNAT on host addresses
//! (a DNAT rule, and an accept of the container port for direct routing
//! where the network filters), or routed (only the accept, before isolation).

use std::net::IpAddr;

use super::rule::{Pos, Rule, Table};
use super::ruleset::{ep_comment, shard_for, INBOUND, OPEN, PREROUTING};
use crate::firewall::{Port, Proto};

/// A published key of one family (true: IPv6): two DNAT rules with the same
/// key cannot coexist; the same key in the other family is another key.
pub(super) type PortKey = (bool, Proto, Option<IpAddr>, u16);

/// What a rule of a port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The DNAT rule that publishes the port on a host port.
    Dnat,
    /// The accept of the container port that goes with a DNAT rule.
    Accept,
    /// The accept of a routed port (no DNAT rule).
    Routed,
}

/// The keys a port publishes under by DNAT (routed families hold none).
pub(super) fn port_keys(p: &Port) -> Vec<PortKey> {
    let mut out = Vec::new();
    if p.v4_target().is_some() && !p.routed4 {
        out.push((false, p.proto, p.host_ip4().map(IpAddr::V4), p.host_port));
    }
    if p.v6_target().is_some() && !p.routed6 {
        out.push((true, p.proto, p.host_ip6().map(IpAddr::V6), p.host_port));
    }
    out
}

/// The rules of a port, IPv4 first, each with its role and where it goes:
/// DNAT rules and their accepts in their shards (see `ruleset.rs`), appended.
/// The accepts name the bridge: a port without one gets only its DNAT rules
/// (the planner refuses to add such a port).
pub(super) fn port_rules(p: &Port) -> Vec<(Rule, Pos, Role)> {
    legacy_port_rules(p)
        .into_iter()
        .map(
            |(mut rule, pos, role)| match shard_for(&rule, &rule.chain) {
                Some((shard, _, _)) => {
                    rule.chain = shard;
                    (rule, Pos::Append, role)
                }
                None => (rule, pos, role),
            },
        )
        .collect()
}

/// The rules of a port as cnm wrote them before the shards: DNAT rules
/// appended to CNM-PREROUTING, accepts inserted in CNM-INBOUND (a netns set
/// up by an older cnm may still hold them; removals look there too).
pub(super) fn legacy_port_rules(p: &Port) -> Vec<(Rule, Pos, Role)> {
    let mut out = Vec::new();
    let v4 = p.v4_target().map(|ip| {
        (
            false,
            ip.to_string(),
            format!("{ip}:{}", p.container_port),
            p.host_ip4().map(|h| h.to_string()),
            p.routed4,
        )
    });
    let v6 = p.v6_target().map(|ip| {
        (
            true,
            ip.to_string(),
            format!("[{ip}]:{}", p.container_port),
            p.host_ip6().map(|h| h.to_string()),
            p.routed6,
        )
    });
    for (v6, cip, to, host, routed) in v4.into_iter().chain(v6) {
        if !routed {
            out.push((
                dnat_rule(p, Table::nat(v6), host, to),
                Pos::Append,
                Role::Dnat,
            ));
        }
        if p.bridge.is_empty() {
            continue;
        }
        // Routed: before isolation, open to other networks too. Nat: after
        // it, and inserted, so before the network's drop (appended).
        let (chain, pos, role) = if routed {
            (OPEN, Pos::Append, Role::Routed)
        } else {
            (INBOUND, Pos::Insert, Role::Accept)
        };
        out.push((accept_rule(p, Table::filter(v6), chain, &cip), pos, role));
    }
    out
}

/// `-d CONTAINER -o BRIDGE -p PROTO --dport CONTAINER_PORT … -j ACCEPT`.
fn accept_rule(p: &Port, table: Table, chain: &str, container: &str) -> Rule {
    let proto = p.proto.as_str();
    let port = p.container_port.to_string();
    let head = [
        "-d", container, "-o", &p.bridge, "-p", proto, "-m", proto, "--dport", &port,
    ];
    Rule::tagged(table, chain, &head, &ep_comment(p), &["-j", "ACCEPT"])
}

/// `[-d DST] -p PROTO --dport PORT … -j DNAT --to-destination TO` in PREROUTING.
fn dnat_rule(p: &Port, table: Table, dst: Option<String>, to: String) -> Rule {
    let proto = p.proto.as_str();
    let port = p.host_port.to_string();
    let mut head: Vec<&str> = Vec::new();
    if let Some(d) = &dst {
        head.extend(["-d", d]);
    }
    head.extend(["-p", proto, "-m", proto, "--dport", &port]);
    let tail = ["-j", "DNAT", "--to-destination", &to];
    Rule::tagged(table, PREROUTING, &head, &ep_comment(p), &tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;

    fn lines(p: &Port) -> Vec<String> {
        port_rules(p)
            .iter()
            .map(|(r, pos, _)| {
                let verb = if *pos == Pos::Insert { "-I" } else { "-A" };
                format!("{} {}", r.table.program(), r.line(verb))
            })
            .collect()
    }

    #[test]
    fn dnat_and_accept_per_family() {
        assert_eq!(
            lines(&port6()),
            [
                "iptables -A CNM-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -m comment --comment cnm:ep:ep2/br0 -j DNAT --to-destination 10.9.0.2:80",
                "iptables -A CNM-ACCEPT-2 -d 10.9.0.2 -o br0 -p tcp -m tcp --dport 80 -m comment --comment cnm:ep:ep2/br0 -j ACCEPT",
                "ip6tables -A CNM-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -m comment --comment cnm:ep:ep2/br0 -j DNAT --to-destination [fd00:9::2]:80",
                "ip6tables -A CNM-ACCEPT-2 -d fd00:9::2 -o br0 -p tcp -m tcp --dport 80 -m comment --comment cnm:ep:ep2/br0 -j ACCEPT",
            ]
        );
        assert_eq!(
            port_keys(&port6()),
            [
                (false, Proto::Tcp, None, 8080),
                (true, Proto::Tcp, None, 8080)
            ]
        );
        // an IPv6 host address: IPv6 only, with -d
        let local = Port {
            host_ip: Some("::1".parse().unwrap()),
            ..port6()
        };
        let l = lines(&local);
        assert_eq!(l.len(), 2);
        assert!(l[0].starts_with("ip6tables -A CNM-DNAT-TCP-31 -d ::1 -p tcp"));
        assert_eq!(
            port_keys(&local),
            [(true, Proto::Tcp, Some("::1".parse().unwrap()), 8080)]
        );
        // an IPv4 one: IPv4 only
        assert!(lines(&port()).iter().all(|l| l.starts_with("iptables ")));
    }

    #[test]
    fn routed_families_only_open() {
        let p = Port {
            routed6: true,
            ..port6()
        };
        let rules = port_rules(&p);
        let roles: Vec<(bool, Role)> = rules.iter().map(|(r, _, x)| (r.table.v6(), *x)).collect();
        assert_eq!(
            roles,
            [
                (false, Role::Dnat),
                (false, Role::Accept),
                (true, Role::Routed)
            ]
        );
        assert_eq!(rules[2].0.chain, OPEN);
        assert_eq!(rules[2].1, Pos::Append);
        // a routed family holds no key
        assert_eq!(port_keys(&p), [(false, Proto::Tcp, None, 8080)]);
        // no bridge: no accept can be written
        let bare = Port {
            bridge: String::new(),
            ..port6()
        };
        assert!(port_rules(&bare).iter().all(|(_, _, r)| *r == Role::Dnat));
    }
}

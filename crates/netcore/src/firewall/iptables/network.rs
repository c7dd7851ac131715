//! The rules of a network, per family: masquerade, icc, internal, isolation,
//! filtered inbound traffic (gateway modes nat and routed) and direct-access
//! protection (nat with `protect`).

use super::rule::{Pos, Rule, Table};
use super::ruleset::{
    net_bridge_comment, net_comment, DIRECT, FORWARD, INBOUND, ISOLATION, ISOLATION2, OPEN,
    POSTROUTING,
};
use crate::error::{Error, Result};
use crate::firewall::{GatewayMode, Network};

/// The rules of a network, in the order they are added: IPv4 (unless the
/// network is IPv6-only), then IPv6 when it has an IPv6 subnet.
pub(super) fn network_rules(n: &Network) -> Result<Vec<(Rule, Pos)>> {
    let mut out = Vec::new();
    if !n.subnets.is_empty() || n.subnets6.is_empty() {
        let v4: Vec<String> = n.subnets.iter().map(ToString::to_string).collect();
        out.extend(family_rules(n, false, &v4)?);
    }
    if !n.subnets6.is_empty() {
        let v6: Vec<String> = n.subnets6.iter().map(ToString::to_string).collect();
        out.extend(family_rules(n, true, &v6)?);
    }
    Ok(out)
}

/// The ICMP protocol of a family, as `-p` takes it (and iptables-save prints it).
pub(super) fn icmp(v6: bool) -> &'static str {
    if v6 {
        "ipv6-icmp"
    } else {
        "icmp"
    }
}

/// The rules of a network in one family.
fn family_rules(n: &Network, v6: bool, subnets: &[String]) -> Result<Vec<(Rule, Pos)>> {
    let (nat, filter) = (Table::nat(v6), Table::filter(v6));
    let mode = if v6 { n.mode6 } else { n.mode4 };
    let c = net_comment(n);
    let br = n.bridge.as_str();
    let rule = |table, chain: &str, head: &[&str], tail: &[&str]| {
        Rule::tagged(table, chain, head, &c, tail)
    };
    let mut out = Vec::new();
    // Routed: nothing is translated, so no masquerade of any kind.
    if mode != GatewayMode::Routed {
        if n.masquerade && !n.internal {
            if subnets.is_empty() {
                return Err(Error::invalid(format!(
                    "network on bridge {br}: the {} backend needs the subnet to masquerade",
                    nat.program()
                ))
                .ifname(br));
            }
            for s in subnets {
                let head = ["-s", s, "!", "-o", br];
                out.push((
                    rule(nat, POSTROUTING, &head, &["-j", "MASQUERADE"]),
                    Pos::Append,
                ));
            }
        }
        if !v6 {
            // 127.0.0.1 DNATed to a container (route_localnet); IPv6 has no
            // equivalent: ::1 cannot leave the host.
            let head = ["-o", br, "-m", "addrtype", "--src-type", "LOCAL"];
            out.push((
                rule(nat, POSTROUTING, &head, &["-j", "MASQUERADE"]),
                Pos::Append,
            ));
        }
        for s in subnets {
            let head = ["-s", s, "-o", br, "-m", "conntrack", "--ctstate", "DNAT"];
            out.push((
                rule(nat, POSTROUTING, &head, &["-j", "MASQUERADE"]),
                Pos::Append,
            ));
        }
    }
    if n.internal {
        let out_drop = rule(filter, FORWARD, &["-i", br, "!", "-o", br], &["-j", "DROP"]);
        let in_drop = rule(filter, FORWARD, &["!", "-i", br, "-o", br], &["-j", "DROP"]);
        out.push((out_drop, Pos::Insert));
        out.push((in_drop, Pos::Insert));
    }
    // Inserted last, so it ends up first.
    let verdict = if n.icc { "ACCEPT" } else { "DROP" };
    out.push((
        rule(filter, FORWARD, &["-i", br, "-o", br], &["-j", verdict]),
        Pos::Insert,
    ));
    out.push((
        rule(
            filter,
            ISOLATION,
            &["-i", br, "!", "-o", br],
            &["-j", ISOLATION2],
        ),
        Pos::Append,
    ));
    out.push((
        rule(filter, ISOLATION2, &["-o", br], &["-j", "DROP"]),
        Pos::Append,
    ));
    if mode.filtered() {
        // CNM-OPEN is before isolation: replies reach the network from
        // anywhere, other networks included.
        let ct = [
            "-o",
            br,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
        ];
        out.push((rule(filter, OPEN, &ct, &["-j", "ACCEPT"]), Pos::Append));
        if mode == GatewayMode::Routed {
            // One per subnet: the routed marker carries the subnets, which
            // no other rule of a routed family does.
            let proto = ["-o", br, "-p", icmp(v6)];
            if subnets.is_empty() {
                out.push((rule(filter, OPEN, &proto, &["-j", "ACCEPT"]), Pos::Append));
            }
            for s in subnets {
                let head = ["-d", s, "-o", br, "-p", icmp(v6)];
                out.push((rule(filter, OPEN, &head, &["-j", "ACCEPT"]), Pos::Append));
            }
        }
        // Appended: after the published ports, which are inserted.
        let drop = rule(filter, INBOUND, &["!", "-i", br, "-o", br], &["-j", "DROP"]);
        out.push((drop, Pos::Append));
    }
    if n.protected(v6) {
        out.extend(protection(n, v6, subnets));
    }
    Ok(out)
}

/// Direct-access protection of a network's subnets in one family: traffic
/// for them that comes in through anything but the bridge, loopback or a
/// trusted interface is dropped before routing, unless it is for a host
/// address (the gateway's) or a reply (see the fixed rule of CNM-DIRECT).
fn protection(n: &Network, v6: bool, subnets: &[String]) -> Vec<(Rule, Pos)> {
    let mangle = Table::mangle(v6);
    let c = net_bridge_comment(n);
    let mut ins: Vec<&str> = vec![n.bridge.as_str(), "lo"];
    for t in &n.trusted {
        if !ins.contains(&t.as_str()) {
            ins.push(t);
        }
    }
    let mut out = Vec::new();
    for s in subnets {
        for i in &ins {
            let r = Rule::tagged(mangle, DIRECT, &["-d", s, "-i", i], &c, &["-j", "RETURN"]);
            out.push((r, Pos::Append));
        }
        let head = ["-d", s, "-m", "addrtype", "!", "--dst-type", "LOCAL"];
        let r = Rule::tagged(mangle, DIRECT, &head, &c, &["-j", "DROP"]);
        out.push((r, Pos::Append));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;

    fn lines(rules: &[(Rule, Pos)], table: Table, chain: &str) -> Vec<String> {
        rules
            .iter()
            .filter(|(r, _)| r.table == table && r.chain == chain)
            .map(|(r, pos)| r.line(if *pos == Pos::Insert { "-I" } else { "-A" }))
            .collect()
    }

    #[test]
    fn nat_protected_network() {
        let n = Network {
            protect: true,
            trusted: vec!["eth9".into(), "lo".into()],
            ..net6()
        };
        let rules = network_rules(&n).unwrap();
        for (v6, s) in [(false, "10.9.0.0/24"), (true, "fd00:9::/64")] {
            let c = "cnm:net:n1/br0";
            assert_eq!(
                lines(&rules, Table::mangle(v6), DIRECT),
                [
                    format!("-A CNM-DIRECT -d {s} -i br0 -m comment --comment {c} -j RETURN"),
                    format!("-A CNM-DIRECT -d {s} -i lo -m comment --comment {c} -j RETURN"),
                    format!("-A CNM-DIRECT -d {s} -i eth9 -m comment --comment {c} -j RETURN"),
                    format!("-A CNM-DIRECT -d {s} -m addrtype ! --dst-type LOCAL -m comment --comment {c} -j DROP"),
                ]
            );
            let filter = Table::filter(v6);
            assert_eq!(
                lines(&rules, filter, INBOUND),
                ["-A CNM-INBOUND ! -i br0 -o br0 -m comment --comment cnm:net:n1 -j DROP"]
            );
            // replies only: no ICMP, nat is not routed
            assert_eq!(
                lines(&rules, filter, OPEN),
                ["-A CNM-OPEN -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment cnm:net:n1 -j ACCEPT"]
            );
            assert!(lines(&rules, Table::nat(v6), POSTROUTING)
                .iter()
                .any(|l| l.contains(&format!("-s {s} ! -o br0"))));
        }
        // without protect, or in another mode, nothing in CNM-DIRECT
        let n = Network {
            mode6: GatewayMode::Routed,
            ..n
        };
        let rules = network_rules(&n).unwrap();
        assert_eq!(lines(&rules, Table::Mangle, DIRECT).len(), 4);
        assert!(lines(&rules, Table::Mangle6, DIRECT).is_empty());
        let rules = network_rules(&net6()).unwrap();
        assert!(rules.iter().all(|(r, _)| r.chain != DIRECT));
    }

    #[test]
    fn routed_and_unprotected_families() {
        let n = Network {
            mode4: GatewayMode::NatUnprotected,
            mode6: GatewayMode::Routed,
            protect: true,
            ..net6()
        };
        let rules = network_rules(&n).unwrap();
        // nat-unprotected: today's rules, nothing filtered
        assert!(lines(&rules, Table::Filter, OPEN).is_empty());
        assert!(lines(&rules, Table::Filter, INBOUND).is_empty());
        assert!(lines(&rules, Table::Mangle, DIRECT).is_empty());
        assert_eq!(lines(&rules, Table::Nat, POSTROUTING).len(), 3);
        // routed: no masquerade at all; replies, ICMP, then the drop
        assert!(lines(&rules, Table::Nat6, POSTROUTING).is_empty());
        assert_eq!(
            lines(&rules, Table::Filter6, OPEN)[1],
            "-A CNM-OPEN -d fd00:9::/64 -o br0 -p ipv6-icmp -m comment --comment cnm:net:n1 -j ACCEPT"
        );
        assert_eq!(lines(&rules, Table::Filter6, INBOUND).len(), 1);
        // a routed network without subnets still gets its marker
        let bare = Network {
            subnets: Vec::new(),
            subnets6: Vec::new(),
            masquerade: false,
            mode4: GatewayMode::Routed,
            ..net()
        };
        let rules = network_rules(&bare).unwrap();
        assert_eq!(
            lines(&rules, Table::Filter, OPEN)[1],
            "-A CNM-OPEN -o br0 -p icmp -m comment --comment cnm:net:n1 -j ACCEPT"
        );
    }

    #[test]
    fn internal_and_icc_go_first() {
        let n = Network {
            internal: true,
            ..net()
        };
        let rules = network_rules(&n).unwrap();
        let fwd = lines(&rules, Table::Filter, FORWARD);
        assert!(fwd.iter().all(|l| l.starts_with("-I CNM-FORWARD 1 ")));
        // the icc rule is inserted last, so it ends up first
        assert!(fwd.last().unwrap().contains("-i br0 -o br0"));
        // internal: no masquerade out
        assert!(!lines(&rules, Table::Nat, POSTROUTING)
            .iter()
            .any(|l| l.contains("! -o br0")));
    }
}

//! The rules cnm writes: our chains, the jumps into them from the built-in
//! chains, and the rules of each network and each published port, all tagged
//! with a comment naming the network or endpoint they belong to.

use super::rule::{Pos, Rule, Table};
use crate::error::{Error, Result};
use crate::firewall::{Network, Port};

pub(super) const PREROUTING: &str = "CNM-PREROUTING";
pub(super) const POSTROUTING: &str = "CNM-POSTROUTING";
pub(super) const FORWARD: &str = "CNM-FORWARD";
pub(super) const ISOLATION: &str = "CNM-ISOLATION";
pub(super) const ISOLATION2: &str = "CNM-ISOLATION-2";

pub(super) const NET_TAG: &str = "cnm:net:";
pub(super) const EP_TAG: &str = "cnm:ep:";

pub(super) fn net_comment(n: &Network) -> String {
    format!("{NET_TAG}{}", n.tag)
}

pub(super) fn ep_comment(p: &Port) -> String {
    format!("{EP_TAG}{}/{}", p.tag, p.bridge)
}

/// The rules of a network, in the order they are added: IPv4, then IPv6
/// when it has an IPv6 subnet.
pub(super) fn network_rules(n: &Network) -> Result<Vec<(Rule, Pos)>> {
    let mut out = family_rules(n, false, n.subnet.map(|s| s.to_string()))?;
    if let Some(s6) = n.subnet6 {
        out.extend(family_rules(n, true, Some(s6.to_string()))?);
    }
    Ok(out)
}

/// The rules of a network in one family.
pub(super) fn family_rules(
    n: &Network,
    v6: bool,
    subnet: Option<String>,
) -> Result<Vec<(Rule, Pos)>> {
    let (nat, filter) = (Table::nat(v6), Table::filter(v6));
    let c = net_comment(n);
    let br = n.bridge.as_str();
    let cm = ["-m", "comment", "--comment", c.as_str()];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(cm.iter())
            .chain(tail.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let rule = |table, chain: &str, head: &[&str], tail: &[&str]| Rule {
        table,
        chain: chain.to_string(),
        args: with(head, tail),
    };
    let mut out = Vec::new();
    if n.masquerade && !n.internal {
        let Some(s) = subnet.as_deref() else {
            return Err(Error::invalid(format!(
                "network on bridge {br}: the {} backend needs the subnet to masquerade",
                nat.program()
            ))
            .ifname(br));
        };
        out.push((
            rule(
                nat,
                POSTROUTING,
                &["-s", s, "!", "-o", br],
                &["-j", "MASQUERADE"],
            ),
            Pos::Append,
        ));
    }
    if !v6 {
        // 127.0.0.1 DNATed to a container (route_localnet); IPv6 has no
        // equivalent: ::1 cannot leave the host.
        out.push((
            rule(
                nat,
                POSTROUTING,
                &["-o", br, "-m", "addrtype", "--src-type", "LOCAL"],
                &["-j", "MASQUERADE"],
            ),
            Pos::Append,
        ));
    }
    if let Some(s) = subnet.as_deref() {
        out.push((
            rule(
                nat,
                POSTROUTING,
                &["-s", s, "-o", br, "-m", "conntrack", "--ctstate", "DNAT"],
                &["-j", "MASQUERADE"],
            ),
            Pos::Append,
        ));
    }
    if n.internal {
        out.push((
            rule(filter, FORWARD, &["-i", br, "!", "-o", br], &["-j", "DROP"]),
            Pos::Insert,
        ));
        out.push((
            rule(filter, FORWARD, &["!", "-i", br, "-o", br], &["-j", "DROP"]),
            Pos::Insert,
        ));
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
    Ok(out)
}

/// The IPv6 DNAT rule of a port, when it is published on IPv6.
pub(super) fn port_rule6(p: &Port) -> Option<Rule> {
    let target = p.v6_target()?;
    Some(dnat_rule(
        p,
        Table::Nat6,
        None,
        format!("[{target}]:{}", p.container_port),
    ))
}

pub(super) fn port_rule(p: &Port) -> Rule {
    let dst = p
        .host_ip
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| ip.to_string());
    dnat_rule(
        p,
        Table::Nat,
        dst,
        format!("{}:{}", p.container_ip, p.container_port),
    )
}

/// `[-d DST] -p PROTO --dport PORT … -j DNAT --to-destination TO` in PREROUTING.
pub(super) fn dnat_rule(p: &Port, table: Table, dst: Option<String>, to: String) -> Rule {
    let mut args: Vec<String> = Vec::new();
    if let Some(d) = dst {
        args.extend(["-d".to_string(), d]);
    }
    let proto = p.proto.as_str();
    let rest = [
        "-p",
        proto,
        "-m",
        proto,
        "--dport",
        &p.host_port.to_string(),
        "-m",
        "comment",
        "--comment",
        &ep_comment(p),
        "-j",
        "DNAT",
        "--to-destination",
        &to,
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    Rule {
        table,
        chain: PREROUTING.to_string(),
        args,
    }
}

pub(super) fn jump_rules(v6: bool) -> Vec<Rule> {
    let (nat, filter) = (Table::nat(v6), Table::filter(v6));
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
        &["-m", "addrtype", "--dst-type", "LOCAL", "-j", PREROUTING]
    };
    vec![
        Rule::new(
            nat,
            "PREROUTING",
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", PREROUTING],
        ),
        Rule::new(nat, "OUTPUT", output),
        Rule::new(nat, "POSTROUTING", &["-j", POSTROUTING]),
        Rule::new(filter, "FORWARD", &["-j", FORWARD]),
    ]
}

/// The rules at the end of CNM-FORWARD.
pub(super) fn base_rules(v6: bool) -> Vec<Rule> {
    let filter = Table::filter(v6);
    vec![
        Rule::new(
            filter,
            FORWARD,
            &["-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"],
        ),
        Rule::new(filter, FORWARD, &["-j", ISOLATION]),
    ]
}

pub(super) const CHAIN_NAMES: &[(bool, &str)] = &[
    (true, PREROUTING),
    (true, POSTROUTING),
    (false, FORWARD),
    (false, ISOLATION),
    (false, ISOLATION2),
];

/// Our chains of one family.
pub(super) fn chains(v6: bool) -> Vec<(Table, &'static str)> {
    CHAIN_NAMES
        .iter()
        .map(|(nat, c)| {
            let t = if *nat {
                Table::nat(v6)
            } else {
                Table::filter(v6)
            };
            (t, *c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;
    use crate::firewall::iptables::saved::Saved;

    #[test]
    fn generated_rules_match_saved_ones() {
        let saved = Saved::parse(SAVED, false);
        assert!(saved.has_rule(&port_rule(&port())));
        let rules = network_rules(&net()).unwrap();
        assert!(saved.has_rule(&rules[0].0));
        assert!(saved.has_rule(&jump_rules(false)[0]));
    }

    #[test]
    fn ipv6_rules() {
        let rules = network_rules(&net6()).unwrap();
        let v4 = network_rules(&net()).unwrap();
        let v6: Vec<_> = rules.iter().filter(|(r, _)| r.table.v6()).collect();
        assert_eq!(rules.len() - v6.len(), v4.len());
        // no localhost masquerade for IPv6
        assert_eq!(v6.len(), v4.len() - 1);
        assert!(v6.iter().all(|(r, _)| !r.args.iter().any(|a| a == "LOCAL")));
        let mut saved = Saved::parse(SAVED, false);
        saved.add(SAVED6, true);
        assert!(saved.has_rule(&v6[0].0), "{:?}", v6[0].0);
        assert!(saved.has_rule(&port_rule6(&port6()).unwrap()));
        assert!(saved.has_rule(&jump_rules(true)[1]));
        // an IPv4 host address: IPv4 only
        let pinned = Port {
            host_ip: Some("192.0.2.1".parse().unwrap()),
            ..port6()
        };
        assert!(port_rule6(&pinned).is_none());
    }
}

//! The networks and ports our saved rules hold.
//!
//! Per network (tag, bridge) and family, from the rules of that family:
//! - subnets: the `-s` / `-d` of any of its rules (masquerade, direct-access
//!   and routed ICMP rules carry them);
//! - mode: `routed` when its ICMP accept is in CNM-OPEN, `nat` when its drop
//!   is in CNM-INBOUND, else `nat-unprotected`; a family without any rule of
//!   the network (no subnet of it) reads as `nat`, the default;
//! - protect: a CNM-DIRECT drop of it in either family; trusted: the
//!   interfaces its CNM-DIRECT returns let in, but its bridge and lo;
//! - masquerade, icc, internal as their rules say.
//!
//! Ports: one per DNAT rule, an IPv6 one merged into its IPv4 twin (same
//! key but the family, same endpoint and container port) as one port with
//! both addresses; and one per routed accept, with only its family's
//! container address and its container port as host port. The accept that
//! goes with a DNAT rule is not reported apart.

use std::collections::{BTreeMap, BTreeSet};

use super::links::saved_link;
use super::network::icmp;
use super::rule::{opt, options, Rule};
use super::ruleset::{DIRECT, FORWARD, INBOUND, OPEN, POSTROUTING};
use super::saved::{saved_network_id, saved_port, saved_routed_port, Saved};
use crate::firewall::{GatewayMode, Network, Port, State, Subnet, Subnet6};

/// What the rules of one network say, per family (index 1: IPv6).
#[derive(Default)]
struct Seen {
    any: [bool; 2],
    routed: [bool; 2],
    filtered: [bool; 2],
    allowed: BTreeSet<String>,
}

fn blank(tag: &str, bridge: &str) -> Network {
    Network {
        bridge: bridge.to_string(),
        subnets: Vec::new(),
        subnets6: Vec::new(),
        masquerade: false,
        icc: true,
        internal: false,
        tag: tag.to_string(),
        mode4: GatewayMode::Nat,
        mode6: GatewayMode::Nat,
        protect: false,
        trusted: Vec::new(),
    }
}

/// Folds one rule of a network into what is known of it.
fn read_network_rule(n: &mut Network, seen: &mut Seen, rule: &Rule) {
    let v6 = rule.table.v6();
    let f = usize::from(v6);
    seen.any[f] = true;
    let opts = options(&rule.args);
    for addr in ["-s", "-d"] {
        let Some((false, s)) = opt(&opts, addr) else {
            continue;
        };
        if v6 {
            if let Ok(s) = Subnet6::parse(s) {
                if !n.subnets6.contains(&s) {
                    n.subnets6.push(s);
                }
            }
        } else if let Ok(s) = Subnet::parse(s) {
            if !n.subnets.contains(&s) {
                n.subnets.push(s);
            }
        }
    }
    let target = opt(&opts, "-j").map(|(_, t)| t);
    let i = opt(&opts, "-i");
    let o = opt(&opts, "-o");
    match (rule.chain.as_str(), target) {
        (POSTROUTING, Some("MASQUERADE"))
            if opt(&opts, "-s").is_some() && matches!(o, Some((true, _))) =>
        {
            n.masquerade = true;
        }
        (FORWARD, Some(verdict)) => match (i, o) {
            (Some((false, _)), Some((false, _))) => n.icc = verdict == "ACCEPT",
            (Some(_), Some(_)) if verdict == "DROP" => n.internal = true,
            _ => {}
        },
        (OPEN, Some("ACCEPT")) if opt(&opts, "-p").map(|(_, p)| p) == Some(icmp(v6)) => {
            seen.routed[f] = true;
        }
        (INBOUND, Some("DROP")) => seen.filtered[f] = true,
        (DIRECT, Some("DROP")) => n.protect = true,
        (DIRECT, Some("RETURN")) => {
            if let Some((false, i)) = i {
                seen.allowed.insert(i.to_string());
            }
        }
        _ => {}
    }
}

fn mode(seen: &Seen, f: usize) -> GatewayMode {
    if !seen.any[f] {
        GatewayMode::Nat
    } else if seen.routed[f] {
        GatewayMode::Routed
    } else if seen.filtered[f] {
        GatewayMode::Nat
    } else {
        GatewayMode::NatUnprotected
    }
}

pub(super) fn parse_state(saved: &Saved) -> State {
    let mut nets: BTreeMap<(String, String), (Network, Seen)> = BTreeMap::new();
    let mut ports: Vec<Port> = Vec::new();
    let mut ports6 = Vec::new();
    for rule in &saved.rules {
        if let Some(p) = saved_port(rule) {
            if rule.table.v6() {
                ports6.push(p);
            } else {
                ports.push(p);
            }
            continue;
        }
        if let Some(p) = saved_routed_port(rule) {
            ports.push(p);
            continue;
        }
        let Some((tag, bridge)) = saved_network_id(rule) else {
            continue;
        };
        let (n, seen) = nets
            .entry((tag.clone(), bridge.clone()))
            .or_insert_with(|| (blank(&tag, &bridge), Seen::default()));
        read_network_rule(n, seen, rule);
    }
    // One port per family, as the nftables backend reports them: the IPv4
    // and IPv6 rules of one mapping are two ports of the model.
    ports.extend(ports6);
    crate::firewall::sort_ports(&mut ports);
    let networks = nets
        .into_values()
        .map(|(mut n, seen)| {
            n.mode4 = mode(&seen, 0);
            n.mode6 = mode(&seen, 1);
            n.trusted = seen
                .allowed
                .into_iter()
                .filter(|i| *i != n.bridge && i != "lo")
                .collect();
            n
        })
        .collect();
    let mut links: Vec<crate::firewall::Link> = saved.rules.iter().filter_map(saved_link).collect();
    links.sort();
    State {
        networks,
        ports,
        links,
        base_intact: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;
    use crate::firewall::iptables::ports::port_rules;

    #[test]
    fn state_of_an_old_save() {
        // rules written before gateway modes: nat-unprotected, unprotected
        let saved = Saved::parse(SAVED, false);
        let s = parse_state(&saved);
        assert_eq!(s.networks.len(), 1);
        let n = &s.networks[0];
        assert_eq!((n.bridge.as_str(), n.tag.as_str()), ("br0", "n1"));
        assert_eq!(n.subnets, vec![Subnet::parse("10.9.0.0/24").unwrap()]);
        assert!(n.masquerade && !n.icc && !n.internal && !n.protect);
        assert_eq!(n.mode4, GatewayMode::NatUnprotected);
        // no IPv6 rule: the default
        assert_eq!(n.mode6, GatewayMode::Nat);
        assert_eq!(s.ports, vec![port()]);

        let mut saved = Saved::parse(SAVED, false);
        saved.add(SAVED6, true);
        // the IPv4 twin is not in SAVED: the IPv6 port stands alone
        let s = parse_state(&saved);
        assert_eq!(s.networks.len(), 1);
        assert_eq!(s.networks[0].subnets6, net6().subnets6);
        assert_eq!(s.networks[0].mode6, GatewayMode::NatUnprotected);
        let alone = s.ports.iter().find(|p| p.tag == "ep2").unwrap();
        assert!(alone.container_ip.is_none());
        assert_eq!(alone.container_ip6, port6().container_ip6);
        // with its IPv4 twin: two ports, one per family
        let v4 = Port {
            container_ip6: None,
            ..port6()
        };
        saved
            .rules
            .extend(port_rules(&v4).into_iter().map(|(r, _, _)| r));
        let s = parse_state(&saved);
        let ep2: Vec<&Port> = s.ports.iter().filter(|p| p.tag == "ep2").collect();
        assert_eq!(ep2.len(), 2);
        assert!(ep2.contains(&&v4));
        assert!(ep2.contains(&alone));
    }

    #[test]
    fn state_of_gateway_modes() {
        let mut saved = Saved::parse(SAVED_NEW, false);
        saved.add(SAVED6_NEW, true);
        let s = parse_state(&saved);
        assert_eq!(s.networks, nets_new());
        let mut want = ports_new();
        crate::firewall::sort_ports(&mut want);
        assert_eq!(s.ports, want);
        // one family alone: the other reads as nat
        let s = parse_state(&Saved::parse(SAVED_NEW, false));
        let n1 = &s.networks[0];
        assert_eq!((n1.mode4, n1.mode6), (GatewayMode::Nat, GatewayMode::Nat));
        assert!(n1.protect && n1.subnets6.is_empty());
        assert_eq!(n1.trusted, ["eth9"]);
        let s = parse_state(&Saved::parse(SAVED6_NEW, true));
        let n1 = &s.networks[0];
        assert_eq!(n1.mode6, GatewayMode::Routed);
        assert!(!n1.protect && n1.trusted.is_empty());
        assert_eq!(n1.subnets6, nets_new()[0].subnets6);
    }
}

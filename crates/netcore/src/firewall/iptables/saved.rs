//! Reading `iptables-save` (and `ip6tables-save`) output: the chains and rules
//! of the nat and filter tables, and which of them are ours, read back as
//! networks and published ports.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::rule::{comment, opt, options, Rule, Table};
use super::ruleset::{EP_TAG, FORWARD, NET_TAG, POSTROUTING, PREROUTING};
use crate::firewall::{Network, Port, Proto, State, Subnet, Subnet6};

/// Splits an iptables-save line into words, honouring double quotes.
pub(super) fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// What `iptables-save` (and `ip6tables-save`) showed of the nat and
/// filter tables.
#[derive(Debug, Default)]
pub(super) struct Saved {
    pub(super) chains: HashSet<(Table, String)>,
    pub(super) rules: Vec<Rule>,
}

impl Saved {
    /// Parses the output of `iptables-save`, or of `ip6tables-save` with `v6`.
    pub(super) fn parse(text: &str, v6: bool) -> Saved {
        let mut saved = Saved::default();
        saved.add(text, v6);
        saved
    }

    pub(super) fn add(&mut self, text: &str, v6: bool) {
        let saved = self;
        let mut table = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(t) = line.strip_prefix('*') {
                table = match t {
                    "nat" => Some(Table::nat(v6)),
                    "filter" => Some(Table::filter(v6)),
                    _ => None,
                };
                continue;
            }
            let Some(t) = table else { continue };
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    saved.chains.insert((t, name.to_string()));
                }
            } else if line.starts_with("-A ") {
                let mut words = split_words(line);
                if words.len() >= 2 {
                    let args = words.split_off(2);
                    saved.rules.push(Rule {
                        table: t,
                        chain: words[1].clone(),
                        args,
                    });
                }
            }
        }
    }

    pub(super) fn has_chain(&self, table: Table, chain: &str) -> bool {
        self.chains.contains(&(table, chain.to_string()))
    }

    pub(super) fn has_rule(&self, rule: &Rule) -> bool {
        let key = rule.key();
        self.rules.iter().any(|r| r.key() == key)
    }
}

/// A published key with an unspecified host address folded into None.
pub(super) type PortKey = (Proto, Option<Ipv4Addr>, u16);

pub(super) fn port_key(p: &Port) -> PortKey {
    let (proto, ip, port) = p.key();
    (proto, ip.filter(|ip| !ip.is_unspecified()), port)
}

/// The published key of a saved DNAT rule of ours. An IPv6 rule gives a
/// port with container address 0.0.0.0 and its `container_ip6`.
pub(super) fn saved_port(rule: &Rule) -> Option<Port> {
    if rule.table.name() != "nat" || rule.chain != PREROUTING {
        return None;
    }
    let v6 = rule.table.v6();
    let opts = options(&rule.args);
    let (tag, bridge) = comment(&opts)?.strip_prefix(EP_TAG)?.rsplit_once('/')?;
    if opt(&opts, "-j")?.1 != "DNAT" {
        return None;
    }
    let proto = Proto::parse(opt(&opts, "-p")?.1).ok()?;
    let host_port = opt(&opts, "--dport")?.1.parse().ok()?;
    let host_ip = match opt(&opts, "-d") {
        Some((false, ip)) if !v6 => Some(ip.parse::<Ipv4Addr>().ok()?),
        Some(_) => return None,
        None => None,
    };
    let (cip, cport) = opt(&opts, "--to-destination")?.1.rsplit_once(':')?;
    let (container_ip, container_ip6) = if v6 {
        let ip = cip.strip_prefix('[')?.strip_suffix(']')?;
        (Ipv4Addr::UNSPECIFIED, Some(ip.parse::<Ipv6Addr>().ok()?))
    } else {
        (cip.parse().ok()?, None)
    };
    Some(Port {
        proto,
        host_ip,
        host_port,
        container_ip,
        container_ip6,
        container_port: cport.parse().ok()?,
        bridge: bridge.to_string(),
        tag: tag.to_string(),
    })
}

/// (tag, bridge) of a saved network rule of ours.
pub(super) fn saved_network_id(rule: &Rule) -> Option<(String, String)> {
    let opts = options(&rule.args);
    let tag = comment(&opts)?.strip_prefix(NET_TAG)?;
    let bridge = opt(&opts, "-i").or_else(|| opt(&opts, "-o"))?.1;
    Some((tag.to_string(), bridge.to_string()))
}

pub(super) fn parse_state(saved: &Saved) -> State {
    let mut nets: BTreeMap<(String, String), Network> = BTreeMap::new();
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
        let Some((tag, bridge)) = saved_network_id(rule) else {
            continue;
        };
        let n = nets
            .entry((tag.clone(), bridge.clone()))
            .or_insert_with(|| Network {
                bridge,
                subnet: None,
                subnet6: None,
                masquerade: false,
                icc: true,
                internal: false,
                tag,
            });
        let opts = options(&rule.args);
        if let Some((false, s)) = opt(&opts, "-s") {
            if rule.table.v6() {
                n.subnet6 = n.subnet6.or_else(|| Subnet6::parse(s).ok());
            } else {
                n.subnet = n.subnet.or_else(|| Subnet::parse(s).ok());
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
            _ => {}
        }
    }
    // An IPv6 DNAT rule belongs to the IPv4 one of the same key and endpoint.
    for p6 in ports6 {
        let twin = ports.iter_mut().find(|p| {
            port_key(p) == port_key(&p6)
                && p.tag == p6.tag
                && p.bridge == p6.bridge
                && p.container_port == p6.container_port
                && p.container_ip6.is_none()
        });
        match twin {
            Some(p) => p.container_ip6 = p6.container_ip6,
            None => ports.push(p6),
        }
    }
    ports.sort_by_key(|p| (p.host_ip, p.proto.number(), p.host_port));
    State {
        networks: nets.into_values().collect(),
        ports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;
    use crate::firewall::iptables::ruleset::port_rule;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"-A X -m comment --comment "a b" -j Y"#),
            ["-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"]
        );
    }

    #[test]
    fn state_from_save() {
        let saved = Saved::parse(SAVED, false);
        let s = parse_state(&saved);
        assert_eq!(s.networks.len(), 1);
        let n = &s.networks[0];
        assert_eq!(n.bridge, "br0");
        assert_eq!(n.tag, "n1");
        assert_eq!(n.subnet, Some(Subnet::parse("10.9.0.0/24").unwrap()));
        assert!(n.masquerade && !n.icc && !n.internal);
        assert_eq!(s.ports, vec![port()]);
    }

    #[test]
    fn ipv6_state_from_save() {
        let mut saved = Saved::parse(SAVED, false);
        saved.add(SAVED6, true);
        // the IPv4 twin is not in SAVED: the IPv6 port stands alone
        let s = parse_state(&saved);
        assert_eq!(s.networks.len(), 1);
        assert_eq!(s.networks[0].subnet6, net6().subnet6);
        assert_eq!(s.networks[0].subnet, net().subnet);
        let alone = s.ports.iter().find(|p| p.tag == "ep2").unwrap();
        assert!(alone.container_ip.is_unspecified());
        assert_eq!(alone.container_ip6, port6().container_ip6);
        // with its IPv4 twin, one port
        saved.rules.push(port_rule(&Port {
            container_ip6: None,
            ..port6()
        }));
        let s = parse_state(&saved);
        assert_eq!(s.ports.iter().filter(|p| p.tag == "ep2").count(), 1);
        assert_eq!(s.ports.iter().find(|p| p.tag == "ep2").unwrap(), &port6());
    }
}

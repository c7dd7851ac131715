//! Reading `iptables-save` (and `ip6tables-save`) output: the chains and rules
//! of the nat, filter and mangle tables, and which rules are ours: a
//! network's (comment `cnm:net:<tag>`, or `cnm:net:<tag>/<bridge>` on rules
//! that do not name the bridge) or an endpoint's (`cnm:ep:<tag>/<bridge>`).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ports::PortKey;
use super::rule::{comment, opt, options, Rule, Table};
use super::ruleset::{DNAT_SHARD, EP_TAG, NET_TAG, OPEN, PREROUTING};
use crate::firewall::{Port, Proto, ReadPort};

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

/// What `iptables-save` (and `ip6tables-save`) showed of the nat, filter
/// and mangle tables; rules in the order of their chains.
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
                table = Table::parse(t, v6);
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
        self.position(rule).is_some()
    }

    /// Where the first rule like `rule` stands among the saved ones.
    pub(super) fn position(&self, rule: &Rule) -> Option<usize> {
        let key = rule.key();
        self.rules.iter().position(|r| r.key() == key)
    }
}

/// The endpoint (tag, bridge) of a rule of ours tagged `cnm:ep:`.
fn endpoint(opts: &[super::rule::Opt]) -> Option<(&str, &str)> {
    comment(opts)?.strip_prefix(EP_TAG)?.rsplit_once('/')
}

/// The port of a saved DNAT rule of ours: an IPv4 rule gives a port with
/// only its `container_ip`, an IPv6 one with only its `container_ip6`.
pub(super) fn saved_port(rule: &Rule) -> Option<Port> {
    // in its shard, or in CNM-PREROUTING where an older cnm put it
    if rule.table.name() != "nat"
        || !(rule.chain == PREROUTING || rule.chain.starts_with(DNAT_SHARD))
    {
        return None;
    }
    let v6 = rule.table.v6();
    let opts = options(&rule.args);
    let (tag, bridge) = endpoint(&opts)?;
    if opt(&opts, "-j")?.1 != "DNAT" {
        return None;
    }
    let proto = Proto::parse(opt(&opts, "-p")?.1).ok()?;
    let host_port = opt(&opts, "--dport")?.1.parse().ok()?;
    let host_ip = match opt(&opts, "-d") {
        Some((false, ip)) if !v6 => Some(IpAddr::V4(ip.parse::<Ipv4Addr>().ok()?)),
        Some((false, ip)) => Some(IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?)),
        Some(_) => return None,
        None => None,
    };
    let (cip, cport) = opt(&opts, "--to-destination")?.1.rsplit_once(':')?;
    let container = if v6 {
        cip.strip_prefix('[')?.strip_suffix(']')?
    } else {
        cip
    };
    let read = ReadPort {
        proto,
        host_ip,
        host_port,
        container,
        container_port: cport.parse().ok()?,
        v6,
        routed: false,
    };
    Port::read_back(read, bridge, tag)
}

/// The published key of a saved DNAT rule of ours.
pub(super) fn saved_port_key(rule: &Rule) -> Option<PortKey> {
    let p = saved_port(rule)?;
    Some((rule.table.v6(), p.proto, p.host_ip, p.host_port))
}

/// The port of a saved accept of a routed port (in CNM-OPEN): reported with
/// its container port as host port, which routed ports do not use.
pub(super) fn saved_routed_port(rule: &Rule) -> Option<Port> {
    if rule.table.name() != "filter" || rule.chain != OPEN {
        return None;
    }
    let opts = options(&rule.args);
    let (tag, bridge) = endpoint(&opts)?;
    if opt(&opts, "-j")?.1 != "ACCEPT" {
        return None;
    }
    let proto = Proto::parse(opt(&opts, "-p")?.1).ok()?;
    let port = opt(&opts, "--dport")?.1.parse().ok()?;
    let (false, cip) = opt(&opts, "-d")? else {
        return None;
    };
    let read = ReadPort {
        proto,
        host_ip: None,
        host_port: port,
        container: cip,
        container_port: port,
        v6: rule.table.v6(),
        routed: true,
    };
    Port::read_back(read, bridge, tag)
}

/// (tag, bridge) of a saved network rule of ours: the bridge from the
/// comment when it names one, else from the rule's interface.
pub(super) fn saved_network_id(rule: &Rule) -> Option<(String, String)> {
    let opts = options(&rule.args);
    let rest = comment(&opts)?.strip_prefix(NET_TAG)?;
    if let Some((tag, bridge)) = rest.split_once('/') {
        return Some((tag.to_string(), bridge.to_string()));
    }
    let bridge = opt(&opts, "-i").or_else(|| opt(&opts, "-o"))?.1;
    Some((rest.to_string(), bridge.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"-A X -m comment --comment "a b" -j Y"#),
            ["-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"]
        );
    }

    #[test]
    fn rules_of_ours() {
        let mut saved = Saved::parse(SAVED_NEW, false);
        saved.add(SAVED6_NEW, true);
        assert!(saved.has_chain(Table::Mangle, "CNM-DIRECT"));
        assert!(saved.has_chain(Table::Mangle6, "CNM-DIRECT"));
        assert!(saved.has_chain(Table::Filter, "CNM-USER"));
        // a direct-access rule names its bridge in its comment, not as -i
        let direct = saved
            .rules
            .iter()
            .find(|r| r.table == Table::Mangle && r.args.iter().any(|a| a == "eth9"))
            .unwrap();
        assert_eq!(
            saved_network_id(direct),
            Some(("n1".to_string(), "br0".to_string()))
        );
        // the operator's rule is nobody's
        let user = saved.rules.iter().find(|r| r.chain == "CNM-USER").unwrap();
        assert_eq!(saved_network_id(user), None);
        let routed: Vec<Port> = saved.rules.iter().filter_map(saved_routed_port).collect();
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].container_ip6, Some("fd00:9::2".parse().unwrap()));
        assert!(routed[0].routed6 && !routed[0].routed4);
        assert_eq!((routed[0].host_port, routed[0].container_port), (443, 443));
        let keys: HashSet<PortKey> = saved.rules.iter().filter_map(saved_port_key).collect();
        assert!(keys.contains(&(false, Proto::Udp, Some("192.0.2.1".parse().unwrap()), 5353)));
        assert!(keys.contains(&(true, Proto::Tcp, None, 8080)));
        assert!(keys.contains(&(false, Proto::Tcp, None, 8080)));
    }
}

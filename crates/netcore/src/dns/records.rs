//! The resolver's name table: the endpoints of the networks the host's
//! sandboxes are on, indexed by (network, name) and (network, address), and
//! the networks each local sandbox is on. A sandbox sees only the names of
//! its own networks. Changed in place, one endpoint at a time, under the
//! resolver's lock: an update never rebuilds the table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One endpoint as the resolver knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointNames {
    pub id: String,
    pub network: String,
    /// the local sandbox it belongs to; None for an endpoint of another host
    pub sandbox: Option<String>,
    /// the names it answers to on its network (lowercase, no trailing dot)
    pub names: Vec<String>,
    /// the name a reverse lookup of its addresses gives
    pub ptr: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// The addresses a name stands for on the first network of a sandbox that knows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

#[derive(Default)]
struct NetworkIndex {
    /// name -> endpoint ids, in the order they came
    names: HashMap<String, Vec<String>>,
    /// address -> endpoint id
    addrs: HashMap<IpAddr, String>,
}

#[derive(Default)]
pub struct Records {
    endpoints: HashMap<String, EndpointNames>,
    networks: HashMap<String, NetworkIndex>,
    /// local sandbox -> its networks, in the order it joined them (Docker asks them in that order)
    sandboxes: HashMap<String, Vec<String>>,
}

/// Names compare as DNS does: without case, without the root's dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Records {
    /// Adds or replaces an endpoint.
    pub fn upsert(&mut self, mut ep: EndpointNames) {
        self.remove(&ep.id);
        ep.names = ep.names.iter().map(|n| normalize(n)).collect();
        ep.names.dedup();
        let idx = self.networks.entry(ep.network.clone()).or_default();
        for name in &ep.names {
            let ids = idx.names.entry(name.clone()).or_default();
            if !ids.contains(&ep.id) {
                ids.push(ep.id.clone());
            }
        }
        for ip in addresses(&ep) {
            idx.addrs.insert(ip, ep.id.clone());
        }
        if let Some(sb) = &ep.sandbox {
            let nets = self.sandboxes.entry(sb.clone()).or_default();
            if !nets.contains(&ep.network) {
                nets.push(ep.network.clone());
            }
        }
        self.endpoints.insert(ep.id.clone(), ep);
    }

    /// Removes an endpoint; absent is fine. True when it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(ep) = self.endpoints.remove(id) else {
            return false;
        };
        if let Some(idx) = self.networks.get_mut(&ep.network) {
            for name in &ep.names {
                if let Some(ids) = idx.names.get_mut(name) {
                    ids.retain(|i| i != id);
                    if ids.is_empty() {
                        idx.names.remove(name);
                    }
                }
            }
            for ip in addresses(&ep) {
                if idx.addrs.get(&ip).is_some_and(|i| i == id) {
                    idx.addrs.remove(&ip);
                }
            }
            if idx.names.is_empty() && idx.addrs.is_empty() {
                self.networks.remove(&ep.network);
            }
        }
        // a sandbox has one endpoint per network (the store refuses a second):
        // its network goes from the sandbox's list with it, no scan of the others
        if let Some(sb) = &ep.sandbox {
            if let Some(nets) = self.sandboxes.get_mut(sb) {
                nets.retain(|n| n != &ep.network);
                if nets.is_empty() {
                    self.sandboxes.remove(sb);
                }
            }
        }
        true
    }

    /// The addresses `name` has for `sandbox`: from the first of its networks that knows it.
    pub fn lookup(&self, sandbox: &str, name: &str) -> Option<Found> {
        for net in self.sandboxes.get(sandbox)? {
            let Some(ids) = self.networks.get(net).and_then(|i| i.names.get(name)) else {
                continue;
            };
            let mut found = Found::default();
            for ep in ids.iter().filter_map(|id| self.endpoints.get(id)) {
                found.v4.extend(ep.ipv4);
                found.v6.extend(ep.ipv6);
            }
            return Some(found);
        }
        None
    }

    /// The name of the endpoint holding `ip` on one of `sandbox`'s networks.
    pub fn reverse(&self, sandbox: &str, ip: IpAddr) -> Option<&str> {
        self.sandboxes.get(sandbox)?.iter().find_map(|net| {
            let id = self.networks.get(net)?.addrs.get(&ip)?;
            Some(self.endpoints.get(id)?.ptr.as_str())
        })
    }

    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }
}

fn addresses(ep: &EndpointNames) -> impl Iterator<Item = IpAddr> {
    ep.ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(ep.ipv6.map(IpAddr::V6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, net: &str, sb: Option<&str>, names: &[&str], v4: &str) -> EndpointNames {
        EndpointNames {
            id: id.into(),
            network: net.into(),
            sandbox: sb.map(Into::into),
            names: names.iter().map(|s| s.to_string()).collect(),
            ptr: format!("{}.{net}", names[0]),
            ipv4: v4.parse().ok(),
            ipv6: None,
        }
    }

    #[test]
    fn a_sandbox_sees_only_its_networks() {
        let mut r = Records::default();
        r.upsert(ep("1", "n1", Some("a"), &["a"], "10.0.0.2"));
        r.upsert(ep("2", "n1", Some("b"), &["B"], "10.0.0.3"));
        r.upsert(ep("3", "n2", Some("c"), &["c"], "10.1.0.2"));
        assert_eq!(
            r.lookup("a", "b").unwrap().v4,
            vec!["10.0.0.3".parse::<Ipv4Addr>().unwrap()]
        );
        assert!(r.lookup("a", "c").is_none());
        assert!(r.lookup("c", "b").is_none());
        assert_eq!(r.reverse("a", "10.0.0.3".parse().unwrap()), Some("B.n1"));
        assert_eq!(r.reverse("c", "10.0.0.3".parse().unwrap()), None);
    }

    #[test]
    fn a_shared_alias_answers_every_endpoint_and_leaves_cleanly() {
        let mut r = Records::default();
        r.upsert(ep("1", "n", Some("a"), &["a", "web"], "10.0.0.2"));
        r.upsert(ep("2", "n", Some("b"), &["b", "web"], "10.0.0.3"));
        assert_eq!(r.lookup("a", "web").unwrap().v4.len(), 2);
        assert!(r.remove("2"));
        assert_eq!(r.lookup("a", "web").unwrap().v4.len(), 1);
        assert!(r.lookup("a", "b").is_none());
        assert!(r.remove("1"));
        assert!(r.lookup("a", "a").is_none());
        assert_eq!(r.endpoints(), 0);
        assert!(r.networks.is_empty() && r.sandboxes.is_empty());
    }

    #[test]
    fn remote_endpoints_answer_but_ask_nothing() {
        let mut r = Records::default();
        r.upsert(ep("1", "n", Some("a"), &["a"], "10.0.0.2"));
        r.upsert(ep("2", "n", None, &["far"], "10.0.0.9"));
        assert!(r.lookup("a", "far").is_some());
        assert_eq!(r.sandboxes.len(), 1);
    }
}

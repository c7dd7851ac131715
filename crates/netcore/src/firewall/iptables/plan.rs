//! Planning a batch: the `iptables-restore --noflush` script that makes it,
//! and the same change to an indexed model of the tables, so that planning
//! costs what the batch holds and not what the tables hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::rule::{Pos, Rule, RuleKey, Table};
use super::ruleset::{chains, network_rules, port_rule, port_rule6};
use super::saved::{port_key, saved_network_id, saved_port, PortKey, Saved};
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::firewall::Batch;

/// Lines for `iptables-restore --noflush` (and `ip6tables-restore`), per
/// table, in order.
#[derive(Debug, Default)]
pub(super) struct Script {
    pub(super) nat: Vec<String>,
    pub(super) filter: Vec<String>,
    pub(super) nat6: Vec<String>,
    pub(super) filter6: Vec<String>,
}

impl Script {
    pub(super) fn push(&mut self, table: Table, line: String) {
        self.lines_mut(table).push(line);
    }

    pub(super) fn lines_mut(&mut self, table: Table) -> &mut Vec<String> {
        match table {
            Table::Nat => &mut self.nat,
            Table::Filter => &mut self.filter,
            Table::Nat6 => &mut self.nat6,
            Table::Filter6 => &mut self.filter6,
        }
    }

    pub(super) fn tables(&self) -> [(Table, &Vec<String>); 4] {
        [
            (Table::Nat, &self.nat),
            (Table::Filter, &self.filter),
            (Table::Nat6, &self.nat6),
            (Table::Filter6, &self.filter6),
        ]
    }

    /// The number of tables the script changes (one COMMIT each).
    pub(super) fn commits(&self) -> u32 {
        self.tables().iter().filter(|(_, l)| !l.is_empty()).count() as u32
    }

    /// The input of `iptables-restore`, or with `v6` of `ip6tables-restore`.
    pub(super) fn text(&self, v6: bool) -> Option<String> {
        let mut out = String::new();
        for (table, lines) in self.tables() {
            if lines.is_empty() || table.v6() != v6 {
                continue;
            }
            out.push('*');
            out.push_str(table.name());
            out.push('\n');
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str("COMMIT\n");
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The rules of the nat and filter tables, indexed so that planning a batch
/// costs what the batch holds, not what the tables hold.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) chains: HashSet<(Table, String)>,
    pub(super) next: u64,
    /// In the order they were seen or added (ids grow).
    pub(super) rules: BTreeMap<u64, Rule>,
    pub(super) by_key: HashMap<RuleKey, Vec<u64>>,
    pub(super) by_net: HashMap<(String, String), Vec<u64>>,
    pub(super) by_port: HashMap<PortKey, Vec<u64>>,
}

pub(super) fn unindex<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<u64>>, key: K, id: u64) {
    if let Some(ids) = map.get_mut(&key) {
        ids.retain(|i| *i != id);
        if ids.is_empty() {
            map.remove(&key);
        }
    }
}

impl Model {
    pub(super) fn from_saved(saved: Saved) -> Model {
        let mut m = Model {
            chains: saved.chains,
            ..Model::default()
        };
        for r in saved.rules {
            m.insert(r);
        }
        m
    }

    pub(super) fn insert(&mut self, rule: Rule) {
        let id = self.next;
        self.next += 1;
        self.by_key.entry(rule.key()).or_default().push(id);
        if let Some(n) = saved_network_id(&rule) {
            self.by_net.entry(n).or_default().push(id);
        }
        if let Some(p) = saved_port(&rule) {
            self.by_port.entry(port_key(&p)).or_default().push(id);
        }
        self.rules.insert(id, rule);
    }

    pub(super) fn remove(&mut self, id: u64) {
        let Some(rule) = self.rules.remove(&id) else {
            return;
        };
        unindex(&mut self.by_key, rule.key(), id);
        if let Some(n) = saved_network_id(&rule) {
            unindex(&mut self.by_net, n, id);
        }
        if let Some(p) = saved_port(&rule) {
            unindex(&mut self.by_port, port_key(&p), id);
        }
    }

    pub(super) fn has_chain(&self, table: Table, chain: &str) -> bool {
        self.chains.contains(&(table, chain.to_string()))
    }
}

/// What a batch does: the restore script, and the same change to the model.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) script: Script,
    pub(super) deleted: Vec<u64>,
    pub(super) added: Vec<Rule>,
}

impl Plan {
    pub(super) fn commit_to(self, model: &mut Model) {
        for id in self.deleted {
            model.remove(id);
        }
        for rule in self.added {
            model.insert(rule);
        }
    }
}

/// The restore script of a batch, given what is there now.
pub(super) fn plan(model: &Model, batch: &Batch, netns: Option<&str>) -> Result<Plan> {
    let missing = |v6: bool| -> Result<()> {
        for (t, c) in chains(v6) {
            if !model.has_chain(t, c) {
                return Err(Error::new(
                    ErrorCode::Kernel,
                    format!(
                        "chain {c} is missing in {} table {} of netns {} (call firewallInit first{})",
                        t.program(),
                        t.name(),
                        ns_label(netns),
                        if v6 { "; IPv6 rules need ip6tables" } else { "" }
                    ),
                ));
            }
        }
        Ok(())
    };
    missing(false)?;
    let needs_v6 = batch.add_networks.iter().any(|n| n.subnet6.is_some())
        || batch.add_ports.iter().any(|p| p.v6_target().is_some());
    if needs_v6 {
        missing(true)?;
    }
    let mut out = Plan::default();
    let mut deleted: HashSet<u64> = HashSet::new();
    let mut delete = |out: &mut Plan, ids: Option<&Vec<u64>>| {
        for &id in ids.into_iter().flatten() {
            if deleted.insert(id) {
                let r = &model.rules[&id];
                out.script.push(r.table, r.line("-D"));
                out.deleted.push(id);
            }
        }
    };
    // Networks removed or re-added: every rule of theirs goes.
    for n in batch.remove_networks.iter().chain(&batch.add_networks) {
        delete(
            &mut out,
            model.by_net.get(&(n.tag.clone(), n.bridge.clone())),
        );
    }
    for p in &batch.remove_ports {
        delete(&mut out, model.by_key.get(&port_rule(p).key()));
        // The IPv6 rule of the key goes with the IPv4 one, wherever it points.
        if p.host_ip.is_none_or(|ip| ip.is_unspecified()) {
            let v6: Vec<u64> = model
                .by_port
                .get(&port_key(p))
                .into_iter()
                .flatten()
                .copied()
                .filter(|id| model.rules.get(id).is_some_and(|r| r.table == Table::Nat6))
                .collect();
            delete(&mut out, Some(&v6));
        }
    }
    for n in &batch.add_networks {
        for (rule, pos) in network_rules(n)? {
            let verb = if pos == Pos::Insert { "-I" } else { "-A" };
            out.script.push(rule.table, rule.line(verb));
            out.added.push(rule);
        }
    }
    // Published keys that stay, and those this batch adds.
    let mut added: HashSet<PortKey> = HashSet::new();
    for p in &batch.add_ports {
        let key = port_key(p);
        let stays = model
            .by_port
            .get(&key)
            .is_some_and(|ids| ids.iter().any(|id| !deleted.contains(id)));
        if stays || !added.insert(key) {
            return Err(Error::new(
                ErrorCode::PortAllocated,
                format!(
                    "port mapping {} in netns {}: the host port is already published",
                    p.describe(),
                    ns_label(netns)
                ),
            ));
        }
        for rule in std::iter::once(port_rule(p)).chain(port_rule6(p)) {
            out.script.push(rule.table, rule.line("-A"));
            out.added.push(rule);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;
    use crate::firewall::Port;

    #[test]
    fn plan_deletes_and_refuses_taken_ports() {
        let mut text = SAVED.to_string();
        text = text.replace(
            ":CNM-PREROUTING - [0:0]",
            ":CNM-PREROUTING - [0:0]\n:X - [0:0]",
        );
        let mut model = Model::from_saved(Saved::parse(&text, false));
        let batch = Batch {
            remove_networks: vec![net()],
            remove_ports: vec![port()],
            ..Batch::default()
        };
        let p = plan(&model, &batch, None).unwrap();
        assert_eq!(p.script.nat.len(), 3);
        assert!(p.script.nat.iter().all(|l| l.starts_with("-D ")));
        assert_eq!(p.script.filter.len(), 1);
        let batch = Batch {
            add_ports: vec![port()],
            ..Batch::default()
        };
        let err = plan(&model, &batch, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        let batch = Batch {
            add_ports: vec![port()],
            remove_ports: vec![port()],
            ..Batch::default()
        };
        assert!(plan(&model, &batch, None).is_ok());
        // The same key twice in one batch.
        let other = Port {
            host_port: 5354,
            ..port()
        };
        let batch = Batch {
            add_ports: vec![other.clone(), other.clone()],
            ..Batch::default()
        };
        let err = plan(&model, &batch, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);

        // A model kept up to date by plans plans like a fresh save.
        let batch = Batch {
            remove_ports: vec![port()],
            add_ports: vec![other.clone()],
            ..Batch::default()
        };
        plan(&model, &batch, None).unwrap().commit_to(&mut model);
        assert!(model.by_key.contains_key(&port_rule(&other).key()));
        assert!(!model.by_key.contains_key(&port_rule(&port()).key()));
        let batch = Batch {
            add_ports: vec![port()],
            ..Batch::default()
        };
        plan(&model, &batch, None).unwrap().commit_to(&mut model);
        let err = plan(&model, &batch, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        let batch = Batch {
            remove_networks: vec![net()],
            add_networks: vec![net()],
            ..Batch::default()
        };
        let p = plan(&model, &batch, None).unwrap();
        let deleted = p.script.nat.iter().chain(&p.script.filter);
        assert_eq!(deleted.filter(|l| l.starts_with("-D ")).count(), 3);
        p.commit_to(&mut model);
        let p = plan(&model, &batch, None).unwrap();
        let deleted = p.script.nat.iter().chain(&p.script.filter);
        assert_eq!(
            deleted.filter(|l| l.starts_with("-D ")).count(),
            network_rules(&net()).unwrap().len()
        );
    }

    #[test]
    fn ipv6_plan() {
        let mut text6 = SAVED6.to_string();
        text6 = text6.replace(
            ":CNM-FORWARD - [0:0]",
            ":CNM-FORWARD - [0:0]\n:CNM-ISOLATION - [0:0]\n:CNM-ISOLATION-2 - [0:0]",
        );
        let mut saved = Saved::parse(SAVED, false);
        let model4 = Model::from_saved(Saved::parse(SAVED, false));
        // without the IPv6 chains, IPv6 rules are refused; IPv4 ones are fine
        let batch = Batch {
            add_ports: vec![Port {
                host_port: 8081,
                ..port6()
            }],
            ..Batch::default()
        };
        assert_eq!(
            plan(&model4, &batch, None).unwrap_err().code,
            ErrorCode::Kernel
        );
        let v4only = Batch {
            add_ports: vec![Port {
                host_port: 8081,
                container_ip6: None,
                ..port6()
            }],
            ..Batch::default()
        };
        assert!(plan(&model4, &v4only, None).is_ok());
        saved.add(&text6, true);
        let model = Model::from_saved(saved);
        let p = plan(&model, &batch, None).unwrap();
        assert_eq!(p.script.nat.len(), 1);
        assert_eq!(p.script.nat6.len(), 1);
        assert!(p.script.text(true).unwrap().contains("[fd00:9::2]:80"));
        assert_eq!(p.script.commits(), 2);
        // the IPv6 rule holds the key: a second mapping is refused
        let batch = Batch {
            add_ports: vec![port6()],
            ..Batch::default()
        };
        assert_eq!(
            plan(&model, &batch, None).unwrap_err().code,
            ErrorCode::PortAllocated
        );
        // removing the mapping removes its IPv6 rule, even unnamed
        let batch = Batch {
            remove_ports: vec![Port {
                container_ip6: None,
                ..port6()
            }],
            ..Batch::default()
        };
        let p = plan(&model, &batch, None).unwrap();
        assert_eq!(p.script.nat6.len(), 1);
        assert!(p.script.nat6[0].starts_with("-D CNM-PREROUTING"));
        // a network's rules go in both families
        let batch = Batch {
            remove_networks: vec![net6()],
            add_networks: vec![net6()],
            ..Batch::default()
        };
        let p = plan(&model, &batch, None).unwrap();
        assert!(p.script.nat6.iter().any(|l| l.starts_with("-D ")));
        assert!(p.script.filter6.iter().any(|l| l.starts_with("-I ")));
        assert!(p.script.text(true).unwrap().contains("fd00:9::/64"));
    }
}

//! Planning a batch: the `iptables-restore --noflush` script that makes it,
//! and the same change to an indexed model of the tables, so that planning
//! costs what the batch holds and not what the tables hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::links::{link_rules, saved_link_bridge};
use super::network::network_rules;
use super::ports::{legacy_port_rules, port_keys, port_rules, PortKey, Role};
use super::rule::{Pos, Rule, RuleKey, Table};
use super::ruleset::{managed_chains, shard_for, INBOUND, PREROUTING};
use super::saved::{saved_network_id, saved_port_key, Saved};
use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::firewall::Batch;

/// Lines for `iptables-restore --noflush` (and `ip6tables-restore`), per
/// table, in order.
#[derive(Debug, Default)]
pub(super) struct Script {
    lines: BTreeMap<Table, Vec<String>>,
}

impl Script {
    pub(super) fn push(&mut self, table: Table, line: String) {
        self.lines.entry(table).or_default().push(line);
    }

    /// A chain made by this script: declared before any rule of its table.
    fn declare(&mut self, table: Table, chain: &str) {
        self.lines
            .entry(table)
            .or_default()
            .insert(0, format!(":{chain} - [0:0]"));
    }

    /// The lines of one table.
    #[cfg(test)]
    pub(super) fn lines(&self, table: Table) -> &[String] {
        self.lines.get(&table).map_or(&[], Vec::as_slice)
    }

    /// The number of tables the script changes (one COMMIT each).
    pub(super) fn commits(&self) -> u32 {
        self.lines.values().filter(|l| !l.is_empty()).count() as u32
    }

    /// The input of `iptables-restore`, or with `v6` of `ip6tables-restore`.
    pub(super) fn text(&self, v6: bool) -> Option<String> {
        let mut out = String::new();
        for (table, lines) in &self.lines {
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

/// The rules of our tables, indexed so that planning a batch costs what the
/// batch holds, not what the tables hold.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) chains: HashSet<(Table, String)>,
    pub(super) next: u64,
    /// In the order they were seen or added (ids grow).
    pub(super) rules: BTreeMap<u64, Rule>,
    pub(super) by_key: HashMap<RuleKey, Vec<u64>>,
    pub(super) by_net: HashMap<(String, String), Vec<u64>>,
    /// DNAT rules by the key they publish.
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
        if let Some(k) = saved_port_key(&rule) {
            self.by_port.entry(k).or_default().push(id);
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
        if let Some(k) = saved_port_key(&rule) {
            unindex(&mut self.by_port, k, id);
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
    /// chains the script makes (shards of published ports)
    pub(super) chains: Vec<(Table, String)>,
    /// shards there already whose missing jump the script adds back
    pub(super) rejumped: HashSet<(Table, String)>,
}

impl Plan {
    pub(super) fn commit_to(self, model: &mut Model) {
        model.chains.extend(self.chains);
        for id in self.deleted {
            model.remove(id);
        }
        for rule in self.added {
            model.insert(rule);
        }
    }

    /// Deletes the rules `ids` (those not deleted yet); returns how many.
    fn delete(&mut self, model: &Model, ids: &[u64], gone: &mut HashSet<u64>) -> usize {
        let mut n = 0;
        for &id in ids {
            if let Some(r) = model.rules.get(&id) {
                if gone.insert(id) {
                    self.script.push(r.table, r.line("-D"));
                    self.deleted.push(id);
                    n += 1;
                }
            }
        }
        n
    }

    /// Deletes one rule like `rule` not deleted yet, if there is one: a
    /// container port published twice has its accept twice.
    fn delete_one(&mut self, model: &Model, rule: &Rule, gone: &mut HashSet<u64>) -> bool {
        let ids = model.by_key.get(&rule.key()).map_or(&[][..], Vec::as_slice);
        match ids.iter().find(|id| !gone.contains(id)) {
            Some(&id) => self.delete(model, &[id], gone) == 1,
            None => false,
        }
    }

    fn add(&mut self, rule: Rule, pos: Pos) {
        let verb = if pos == Pos::Insert { "-I" } else { "-A" };
        self.script.push(rule.table, rule.line(verb));
        self.added.push(rule);
    }

    /// A rule of a published port, in its shard: the shard is made first,
    /// with its jump, when neither the tables nor this plan have it.
    fn add_port_rule(&mut self, model: &Model, rule: Rule, pos: Pos, role: Role) {
        let role_chain = match role {
            Role::Dnat => PREROUTING,
            Role::Accept => INBOUND,
            Role::Routed => "",
        };
        if let Some((shard, jump, jump_pos)) = shard_for(&rule, role_chain) {
            let made = self
                .chains
                .iter()
                .any(|(t, c)| *t == rule.table && *c == shard);
            if !made && !model.has_chain(rule.table, &shard) {
                self.script.declare(rule.table, &shard);
                self.chains.push((rule.table, shard));
                self.add(jump, jump_pos);
            } else if !made
                && !model.by_key.contains_key(&jump.key())
                && self.rejumped.insert((rule.table, shard))
            {
                // the shard is there without its jump (a chain flushed by hand)
                self.add(jump, jump_pos);
            }
        }
        self.add(rule, pos);
    }
}

/// Fails unless the chains apply writes into exist in one family.
fn check_chains(model: &Model, v6: bool, netns: Option<&str>) -> Result<()> {
    for (t, c) in managed_chains(v6) {
        if !model.has_chain(t, c) {
            return Err(Error::new(
                ErrorCode::Kernel,
                format!(
                    "chain {c} is missing in {} table {} of netns {} (call firewallInit first{})",
                    t.program(),
                    t.name(),
                    ns_label(netns),
                    if v6 {
                        "; IPv6 rules need ip6tables"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// The restore script of a batch, given what is there now. Every check
/// (missing chains, ERR_PORT_ALLOCATED, ports without a bridge) comes before
/// anything is planned, so a refused batch changes nothing.
pub(super) fn plan(model: &Model, batch: &Batch, netns: Option<&str>) -> Result<Plan> {
    check_chains(model, false, netns)?;
    let needs_v6 = batch.add_networks.iter().any(|n| !n.subnets6.is_empty())
        || batch.add_ports.iter().any(|p| p.v6_target().is_some())
        || batch.add_links.iter().any(|l| l.from.is_ipv6());
    if needs_v6 {
        check_chains(model, true, netns)?;
    }
    if let Some(p) = batch.add_ports.iter().find(|p| p.bridge.is_empty()) {
        return Err(Error::invalid(format!(
            "port mapping {} in netns {}: the iptables backend needs the bridge of the endpoint",
            p.describe(),
            ns_label(netns)
        )));
    }
    if let Some(l) = batch.add_links.iter().find(|l| l.bridge.is_empty()) {
        return Err(Error::invalid(format!(
            "link {} in netns {}: the iptables backend needs the bridge of the two endpoints",
            l.describe(),
            ns_label(netns)
        )));
    }
    let mut out = Plan::default();
    let mut gone: HashSet<u64> = HashSet::new();
    for l in &batch.remove_links {
        for rule in link_rules(l) {
            out.delete_one(model, &rule, &mut gone);
        }
    }
    // Networks removed or re-added: every rule of theirs goes.
    for n in batch.remove_networks.iter().chain(&batch.add_networks) {
        let ids = model.by_net.get(&(n.tag.clone(), n.bridge.clone()));
        out.delete(model, ids.map_or(&[], Vec::as_slice), &mut gone);
    }
    // A port's rules, family by family: the accept of a DNAT family goes
    // with its DNAT rule, so that removing a mapping that is not there does
    // not take the accept of another mapping to the same container port.
    // (In its shard, or where an older cnm put it.)
    for p in &batch.remove_ports {
        let mut dnat_gone = false;
        for ((rule, _, role), (legacy, _, _)) in port_rules(p).into_iter().zip(legacy_port_rules(p))
        {
            let mut delete = |out: &mut Plan| {
                out.delete_one(model, &rule, &mut gone) || out.delete_one(model, &legacy, &mut gone)
            };
            match role {
                Role::Dnat => dnat_gone = delete(&mut out),
                Role::Accept if !dnat_gone => {}
                Role::Accept | Role::Routed => {
                    delete(&mut out);
                }
            }
        }
    }
    for n in &batch.add_networks {
        for (rule, pos) in network_rules(n)? {
            out.add(rule, pos);
        }
    }
    // a network's rules went back on top of CNM-FORWARD: the links on its
    // bridge go back above its icc verdict
    for n in &batch.add_networks {
        let moved: Vec<(u64, Rule)> = model
            .rules
            .iter()
            .filter(|(id, r)| {
                !gone.contains(id) && saved_link_bridge(r).as_deref() == Some(n.bridge.as_str())
            })
            .map(|(id, r)| (*id, r.clone()))
            .collect();
        for (id, rule) in moved {
            out.delete(model, &[id], &mut gone);
            out.add(rule, Pos::Insert);
        }
    }
    for l in &batch.add_links {
        for rule in link_rules(l) {
            out.add(rule, Pos::Insert);
        }
    }
    // Published keys that stay, and those this batch adds.
    let mut added: HashSet<PortKey> = HashSet::new();
    for p in &batch.add_ports {
        for key in port_keys(p) {
            let stays = model
                .by_port
                .get(&key)
                .is_some_and(|ids| ids.iter().any(|id| !gone.contains(id)));
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
        }
        for (rule, pos, role) in port_rules(p) {
            out.add_port_rule(model, rule, pos, role);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;
    use crate::firewall::iptables::rule::opt;
    use crate::firewall::iptables::ruleset::{DIRECT, OPEN};
    use crate::firewall::iptables::state::parse_state;
    use crate::firewall::{GatewayMode, Network, Port};

    fn model_new() -> Model {
        let mut saved = Saved::parse(SAVED_NEW, false);
        saved.add(SAVED6_NEW, true);
        Model::from_saved(saved)
    }

    #[test]
    fn links_come_and_go_and_stay_above_a_readded_network() {
        let mut m = model_new();
        let n = net();
        let link = crate::firewall::Link {
            proto: crate::firewall::Proto::Tcp,
            from: "10.9.0.2".parse().unwrap(),
            to: "10.9.0.3".parse().unwrap(),
            port: 80,
            bridge: n.bridge.clone(),
            tag: "l1".into(),
        };
        let add = Batch {
            add_links: vec![link.clone()],
            ..Batch::default()
        };
        plan(&m, &add, None).unwrap().commit_to(&mut m);
        assert_eq!(parse_state(&saved_after(&m)).links, vec![link.clone()]);
        // the network re-added: its icc verdict goes on top, its links are put back above it
        let readd = Batch {
            add_networks: vec![n.clone()],
            ..Batch::default()
        };
        let p = plan(&m, &readd, None).unwrap();
        let text = p.script.text(false).unwrap();
        let icc = text
            .find("-I CNM-FORWARD 1 -i br0 -o br0")
            .expect("icc verdict inserted");
        let moved = text
            .rfind("cnm:link:l1/br0 -j ACCEPT")
            .expect("link rules inserted again");
        assert!(
            moved > icc,
            "inserted after the verdict, so above it:\n{text}"
        );
        p.commit_to(&mut m);
        assert_eq!(parse_state(&saved_after(&m)).links, vec![link.clone()]);
        // a link without its bridge is refused by this backend
        let bare = Batch {
            add_links: vec![crate::firewall::Link {
                bridge: String::new(),
                ..link.clone()
            }],
            ..Batch::default()
        };
        assert_eq!(
            plan(&m, &bare, None).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let rm = Batch {
            remove_links: vec![link],
            ..Batch::default()
        };
        plan(&m, &rm, None).unwrap().commit_to(&mut m);
        assert!(parse_state(&saved_after(&m)).links.is_empty());
        assert!(!m
            .rules
            .values()
            .any(|r| r.args.iter().any(|a| a.starts_with("cnm:link:"))));
    }

    fn batch(add_ports: Vec<Port>, remove_ports: Vec<Port>) -> Batch {
        Batch {
            add_ports,
            remove_ports,
            ..Batch::default()
        }
    }

    /// The saved rules after a plan, as a fresh iptables-save would show
    /// them (order aside).
    fn saved_after(model: &Model) -> Saved {
        Saved {
            chains: model.chains.clone(),
            rules: model.rules.values().cloned().collect(),
        }
    }

    #[test]
    fn plan_deletes_and_refuses_taken_ports() {
        let mut model = Model::from_saved(Saved::parse(SAVED, false));
        let p = plan(
            &model,
            &Batch {
                remove_networks: vec![net()],
                remove_ports: vec![port()],
                ..Batch::default()
            },
            None,
        );
        // written before CNM-OPEN and friends existed: init first
        assert_eq!(p.unwrap_err().code, ErrorCode::Kernel);
        for c in ["CNM-USER", "CNM-OPEN", "CNM-INBOUND", "CNM-ISOLATION-2"] {
            model.chains.insert((Table::Filter, c.to_string()));
        }
        model.chains.insert((Table::Mangle, DIRECT.to_string()));
        let p = plan(
            &model,
            &Batch {
                remove_networks: vec![net()],
                remove_ports: vec![port()],
                ..Batch::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(p.script.lines(Table::Nat).len(), 3);
        assert!(p
            .script
            .lines(Table::Nat)
            .iter()
            .all(|l| l.starts_with("-D ")));
        assert_eq!(p.script.lines(Table::Filter).len(), 1);
        let err = plan(&model, &batch(vec![port()], vec![]), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        assert!(plan(&model, &batch(vec![port()], vec![port()]), None).is_ok());
        // The same key twice in one batch.
        let other = Port {
            host_port: 5354,
            ..port()
        };
        let err = plan(
            &model,
            &batch(vec![other.clone(), other.clone()], vec![]),
            None,
        );
        assert_eq!(err.unwrap_err().code, ErrorCode::PortAllocated);
        // A port without its bridge cannot be filtered for: refused.
        let bare = Port {
            bridge: String::new(),
            ..other.clone()
        };
        let err = plan(&model, &batch(vec![bare], vec![]), None);
        assert_eq!(err.unwrap_err().code, ErrorCode::InvalidArgument);

        // A model kept up to date by plans plans like a fresh save.
        let p = plan(&model, &batch(vec![other.clone()], vec![port()]), None).unwrap();
        p.commit_to(&mut model);
        let s = parse_state(&saved_after(&model));
        assert_eq!(s.ports, vec![other.clone()]);
        plan(&model, &batch(vec![port()], vec![]), None)
            .unwrap()
            .commit_to(&mut model);
        let err = plan(&model, &batch(vec![port()], vec![]), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        let readd = Batch {
            remove_networks: vec![net()],
            add_networks: vec![net()],
            ..Batch::default()
        };
        let p = plan(&model, &readd, None).unwrap();
        let deleted = |p: &Plan| {
            [Table::Nat, Table::Filter]
                .iter()
                .flat_map(|t| p.script.lines(*t))
                .filter(|l| l.starts_with("-D "))
                .count()
        };
        assert_eq!(deleted(&p), 3);
        p.commit_to(&mut model);
        let p = plan(&model, &readd, None).unwrap();
        assert_eq!(deleted(&p), network_rules(&net()).unwrap().len());
    }

    #[test]
    fn state_round_trips_through_plans() {
        // Everything of the fixtures, added to initialised empty tables,
        // reads back as it was added.
        let mut fixed = model_new();
        fixed
            .rules
            .retain(|_, r| !r.args.iter().any(|a| a.starts_with("cnm:")));
        let mut model = Model::from_saved(saved_after(&fixed));
        let all = Batch {
            add_networks: nets_new(),
            add_ports: ports_new(),
            ..Batch::default()
        };
        let p = plan(&model, &all, None).unwrap();
        // every table but ip6tables' mangle: no network protects IPv6
        assert_eq!(p.script.commits(), 5);
        assert!(p.script.lines(Table::Mangle6).is_empty());
        p.commit_to(&mut model);
        let s = parse_state(&saved_after(&model));
        assert_eq!(s.networks, nets_new());
        let mut want = ports_new();
        crate::firewall::sort_ports(&mut want);
        assert_eq!(s.ports, want);
        // the same rules as the saved fixtures hold (iptables-save's order
        // aside), those of ports in their shards where the fixtures (written
        // by an older cnm) have them in CNM-PREROUTING and CNM-INBOUND
        let fixture = model_new();
        let shards: Vec<_> = model
            .chains
            .iter()
            .filter(|(_, c)| c.starts_with("CNM-DNAT-") || c.starts_with("CNM-ACCEPT-"))
            .cloned()
            .collect();
        assert!(!shards.is_empty());
        for (t, c) in &shards {
            let jumps = model
                .rules
                .values()
                .filter(|r| r.table == *t && r.args.last() == Some(c))
                .count();
            assert_eq!(jumps, 1, "one jump into {c}");
        }
        let mut ours: Vec<_> = model
            .by_key
            .keys()
            .filter(|k| !matches!(opt(&k.opts, "-j"), Some((_, j)) if j.starts_with("CNM-DNAT-") || j.starts_with("CNM-ACCEPT-")))
            .cloned()
            .map(|mut k| {
                if k.chain.starts_with("CNM-DNAT-") {
                    k.chain = PREROUTING.to_string();
                } else if k.chain.starts_with("CNM-ACCEPT-") {
                    k.chain = INBOUND.to_string();
                }
                k
            })
            .collect();
        let mut theirs: Vec<_> = fixture.by_key.keys().cloned().collect();
        ours.retain(|k| !k.chain.starts_with("CNM-USER"));
        theirs.retain(|k| !k.chain.starts_with("CNM-USER"));
        let key = |k: &RuleKey| format!("{k:?}");
        ours.sort_by_key(key);
        theirs.sort_by_key(key);
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(ours, theirs);
        // removing it all leaves the fixed rules only
        let none = Batch {
            remove_networks: nets_new(),
            remove_ports: ports_new(),
            ..Batch::default()
        };
        plan(&model, &none, None).unwrap().commit_to(&mut model);
        let s = parse_state(&saved_after(&model));
        assert_eq!((s.networks.len(), s.ports.len()), (0, 0));
        assert!(model
            .rules
            .values()
            .all(|r| !r.args.iter().any(|a| a.starts_with("cnm:"))));
    }

    #[test]
    fn port_keys_are_per_family() {
        let model = model_new();
        // tcp 8080 is taken on both families (ep2 IPv4, ep5 IPv6)
        let v4 = Port {
            tag: "x".into(),
            container_ip6: None,
            ..port6()
        };
        let v6 = Port {
            container_ip: None,
            container_ip6: Some("fd00:9::7".parse().unwrap()),
            ..v4.clone()
        };
        for p in [&v4, &v6] {
            let err = plan(&model, &batch(vec![p.clone()], vec![]), None).unwrap_err();
            assert_eq!(err.code, ErrorCode::PortAllocated);
        }
        // freed on IPv6 only: the IPv6 one fits, the IPv4 one still does not
        let ep5 = ports_new()[4].clone();
        let p = plan(&model, &batch(vec![v6.clone()], vec![ep5.clone()]), None).unwrap();
        assert_eq!(p.script.lines(Table::Nat).len(), 0);
        // the old rule deleted where an older cnm put it; the new one in its
        // shard, made first with its jump
        assert_eq!(
            p.script.lines(Table::Nat6),
            [
                ":CNM-DNAT-TCP-31 - [0:0]",
                "-D CNM-PREROUTING -p tcp -m tcp --dport 8080 -m comment --comment cnm:ep:ep5/br1 -j DNAT --to-destination [fd00:10::5]:80",
                "-A CNM-PREROUTING -p tcp -m tcp --dport 7936:8191 -j CNM-DNAT-TCP-31",
                "-A CNM-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -m comment --comment cnm:ep:x/br0 -j DNAT --to-destination [fd00:9::7]:80",
            ]
        );
        let err = plan(&model, &batch(vec![v4.clone()], vec![ep5]), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        // both families of a new key in one batch, as two ports: no conflict
        let (a, b) = (
            Port {
                host_port: 7000,
                ..v4.clone()
            },
            Port {
                host_port: 7000,
                ..v6.clone()
            },
        );
        assert!(plan(&model, &batch(vec![a.clone(), b.clone()], vec![]), None).is_ok());
        // the same key in the same family twice: refused
        let err = plan(&model, &batch(vec![a.clone(), a], vec![]), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        // an IPv6 host address of a taken key: fine, it is another key
        let local = Port {
            host_ip: Some("fd00::1".parse().unwrap()),
            ..v6
        };
        let p = plan(&model, &batch(vec![local], vec![]), None).unwrap();
        assert!(p.script.lines(Table::Nat6)[2].starts_with("-A CNM-DNAT-TCP-31 -d fd00::1 "));
        // routed ports hold no key
        let routed = Port {
            routed4: true,
            ..v4
        };
        let p = plan(&model, &batch(vec![routed.clone(), routed], vec![]), None).unwrap();
        assert_eq!(p.script.lines(Table::Filter).len(), 2);
        assert!(p
            .script
            .lines(Table::Filter)
            .iter()
            .all(|l| l.starts_with("-A CNM-OPEN ")));
    }

    #[test]
    fn removing_a_port_removes_its_rules_only() {
        let mut model = model_new();
        // a second mapping to ep2's container port: its accept is there twice
        let twin = Port {
            host_port: 8081,
            ..ports_new()[1].clone()
        };
        plan(&model, &batch(vec![twin.clone()], vec![]), None)
            .unwrap()
            .commit_to(&mut model);
        let accept = |m: &Model| {
            m.rules
                .values()
                .filter(|r| {
                    (r.chain == INBOUND || r.chain.starts_with("CNM-ACCEPT-"))
                        && r.args.iter().any(|a| a == "cnm:ep:ep2/br0")
                })
                .count()
        };
        assert_eq!(accept(&model), 2);
        let p = plan(&model, &batch(vec![], vec![twin.clone()]), None).unwrap();
        assert_eq!(p.script.lines(Table::Nat).len(), 1);
        assert_eq!(p.script.lines(Table::Filter).len(), 1);
        p.commit_to(&mut model);
        assert_eq!(accept(&model), 1);
        // removing it again (it is gone) takes nothing of ep2's other mapping
        let p = plan(&model, &batch(vec![], vec![twin]), None).unwrap();
        assert_eq!(p.script.commits(), 0);
        // removing an IPv4 mapping leaves the IPv6 one of the same key alone
        let ep2 = ports_new()[1].clone();
        let p = plan(&model, &batch(vec![], vec![ep2]), None).unwrap();
        assert_eq!(p.script.lines(Table::Nat6).len(), 0);
        assert_eq!(p.script.lines(Table::Nat).len(), 1);
        // a routed port: its accept in CNM-OPEN
        let ep3 = ports_new()[2].clone();
        let p = plan(&model, &batch(vec![], vec![ep3]), None).unwrap();
        assert_eq!(p.script.lines(Table::Filter6).len(), 1);
        assert!(p.script.lines(Table::Filter6)[0].starts_with("-D CNM-OPEN -d fd00:9::2/128"));
    }

    #[test]
    fn readding_a_network_replaces_its_shape() {
        let mut model = model_new();
        let n1 = nets_new()[0].clone();
        let direct = |m: &Model, v6: bool| {
            m.rules
                .values()
                .filter(|r| {
                    r.chain == DIRECT && r.table.v6() == v6 && saved_network_id(r).is_some()
                })
                .count()
        };
        assert_eq!(direct(&model, false), 4);
        // trusted changes, IPv4 becomes routed, IPv6 nat-unprotected
        let changed = Network {
            trusted: vec!["eth7".into(), "eth8".into()],
            mode4: GatewayMode::Routed,
            mode6: GatewayMode::NatUnprotected,
            ..n1.clone()
        };
        let p = plan(
            &model,
            &Batch {
                add_networks: vec![changed.clone()],
                ..Batch::default()
            },
            None,
        )
        .unwrap();
        p.commit_to(&mut model);
        assert_eq!(direct(&model, false), 0);
        let s = parse_state(&saved_after(&model));
        let n = s.networks.iter().find(|n| n.bridge == "br0").unwrap();
        assert_eq!(
            (n.mode4, n.mode6),
            (GatewayMode::Routed, GatewayMode::NatUnprotected)
        );
        // protection is gone with nat: trusted interfaces are not kept
        assert!(!n.protect && n.trusted.is_empty());
        // IPv6 still masquerades, IPv4 (routed) does not
        assert!(n.masquerade);
        let masq4 = model
            .rules
            .values()
            .filter(|r| {
                r.table == Table::Nat && saved_network_id(r) == Some(("n1".into(), "br0".into()))
            })
            .count();
        assert_eq!(masq4, 0);
        let open = |m: &Model, v6| {
            m.rules
                .values()
                .filter(|r| {
                    r.chain == OPEN
                        && r.table.v6() == v6
                        && r.args.iter().any(|a| a == "icmp" || a == "ipv6-icmp")
                })
                .count()
        };
        assert_eq!((open(&model, false), open(&model, true)), (1, 0));
        // and back, with other trusted interfaces
        let back = Network {
            trusted: vec!["eth7".into()],
            ..n1
        };
        plan(
            &model,
            &Batch {
                add_networks: vec![back.clone()],
                ..Batch::default()
            },
            None,
        )
        .unwrap()
        .commit_to(&mut model);
        let s = parse_state(&saved_after(&model));
        assert_eq!(s.networks.iter().find(|n| n.bridge == "br0"), Some(&back));
        assert_eq!(direct(&model, false), 4);
    }

    #[test]
    fn ipv6_needs_its_chains() {
        let model4 = Model::from_saved(Saved::parse(SAVED_NEW, false));
        let v6 = Port {
            host_port: 8081,
            ..port6()
        };
        let err = plan(&model4, &batch(vec![v6.clone()], vec![]), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::Kernel);
        let v4only = Port {
            container_ip6: None,
            ..v6.clone()
        };
        assert!(plan(&model4, &batch(vec![v4only], vec![]), None).is_ok());
        let p = plan(&model_new(), &batch(vec![v6], vec![]), None).unwrap();
        // each family: the shard, the jump into it, the rule
        assert_eq!(p.script.lines(Table::Nat).len(), 3);
        assert_eq!(p.script.lines(Table::Nat6).len(), 3);
        assert!(p.script.text(true).unwrap().contains("[fd00:9::2]:80"));
        assert_eq!(p.script.commits(), 4);
    }
}

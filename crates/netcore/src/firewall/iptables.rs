//! The iptables backend, for hosts without nft and in Docker's classic shape.
//!
//! Our own chains: nat CNM-PREROUTING (jumped to from PREROUTING and OUTPUT
//! for local destinations) and CNM-POSTROUTING (from POSTROUTING); filter
//! CNM-FORWARD (first in FORWARD), CNM-ISOLATION and CNM-ISOLATION-2 (Docker's
//! two-stage isolation). Every rule of a network carries the comment
//! `cnm:net:<tag>`, every DNAT rule `cnm:ep:<tag>/<bridge>`. Each call reads
//! the tables once with `iptables-save` and writes once with
//! `iptables-restore --noflush`, both run inside the netns; deletions repeat
//! the saved rule spec exactly.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use super::exec;
use super::{Batch, FirewallBackend, Network, Port, Proto, State, Subnet};
use crate::error::{ns_label, Error, ErrorCode, Result};

const SAVE: &str = "iptables-save";
const RESTORE: &str = "iptables-restore";
const RESTORE_ARGS: &[&str] = &["--noflush", "-w", "10"];

const PREROUTING: &str = "CNM-PREROUTING";
const POSTROUTING: &str = "CNM-POSTROUTING";
const FORWARD: &str = "CNM-FORWARD";
const ISOLATION: &str = "CNM-ISOLATION";
const ISOLATION2: &str = "CNM-ISOLATION-2";

const NET_TAG: &str = "cnm:net:";
const EP_TAG: &str = "cnm:ep:";

/// One read-modify-write at a time in this process.
static LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Table {
    Nat,
    Filter,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    Append,
    /// Insert at the head of the chain.
    Insert,
}

/// A rule: table, chain and the arguments after the chain name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    table: Table,
    chain: String,
    args: Vec<String>,
}

impl Rule {
    fn new(table: Table, chain: &str, args: &[&str]) -> Rule {
        Rule {
            table,
            chain: chain.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn key(&self) -> RuleKey {
        RuleKey {
            table: self.table,
            chain: self.chain.clone(),
            opts: options(&self.args),
        }
    }

    fn line(&self, verb: &str) -> String {
        let mut out = format!("{verb} {}", self.chain);
        if verb == "-I" {
            out.push_str(" 1");
        }
        for a in &self.args {
            out.push(' ');
            out.push_str(&quote(a));
        }
        out
    }
}

fn quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/!+=,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// One option of a rule: (negated, name, value).
type Opt = (bool, String, Option<String>);

/// A rule compared by meaning, not by text: `iptables-save` adds `-m tcp`,
/// `/32` and reorders matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RuleKey {
    table: Table,
    chain: String,
    opts: Vec<Opt>,
}

const WITH_VALUE: &[&str] = &[
    "-s",
    "-d",
    "-i",
    "-o",
    "-p",
    "--dport",
    "--src-type",
    "--dst-type",
    "--ctstate",
    "--comment",
    "-j",
    "--to-destination",
];

fn options(args: &[String]) -> Vec<Opt> {
    let mut out = Vec::new();
    let mut neg = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "!" => {
                neg = true;
                continue;
            }
            "-m" | "--match" => {
                i += 1; // modules are implied by their options
                continue;
            }
            _ => {}
        }
        let name = match a {
            "--source" => "-s",
            "--destination" => "-d",
            "--in-interface" => "-i",
            "--out-interface" => "-o",
            "--protocol" => "-p",
            "--jump" => "-j",
            "--destination-port" => "--dport",
            other => other,
        };
        if WITH_VALUE.contains(&name) {
            let mut v = args.get(i).cloned();
            i += 1;
            if matches!(name, "-s" | "-d") {
                v = v.map(|s| s.strip_suffix("/32").map(str::to_string).unwrap_or(s));
            }
            out.push((neg, name.to_string(), v));
        } else {
            out.push((neg, name.to_string(), None));
        }
        neg = false;
    }
    out.sort();
    out
}

fn opt<'a>(opts: &'a [Opt], name: &str) -> Option<(bool, &'a str)> {
    opts.iter()
        .find(|(_, n, _)| n == name)
        .and_then(|(neg, _, v)| v.as_deref().map(|v| (*neg, v)))
}

/// Splits an iptables-save line into words, honouring double quotes.
fn split_words(line: &str) -> Vec<String> {
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

/// What `iptables-save` showed of the nat and filter tables.
#[derive(Debug, Default)]
struct Saved {
    chains: HashSet<(Table, String)>,
    rules: Vec<Rule>,
}

impl Saved {
    fn parse(text: &str) -> Saved {
        let mut saved = Saved::default();
        let mut table = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(t) = line.strip_prefix('*') {
                table = match t {
                    "nat" => Some(Table::Nat),
                    "filter" => Some(Table::Filter),
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
        saved
    }

    fn has_chain(&self, table: Table, chain: &str) -> bool {
        self.chains.contains(&(table, chain.to_string()))
    }

    fn has_rule(&self, rule: &Rule) -> bool {
        let key = rule.key();
        self.rules.iter().any(|r| r.key() == key)
    }
}

fn comment(opts: &[Opt]) -> Option<&str> {
    opt(opts, "--comment").map(|(_, v)| v)
}

fn net_comment(n: &Network) -> String {
    format!("{NET_TAG}{}", n.tag)
}

fn ep_comment(p: &Port) -> String {
    format!("{EP_TAG}{}/{}", p.tag, p.bridge)
}

/// The rules of a network, in the order they are added.
fn network_rules(n: &Network) -> Result<Vec<(Rule, Pos)>> {
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
    let subnet = n.subnet.map(|s| s.to_string());
    if n.masquerade && !n.internal {
        let Some(s) = subnet.as_deref() else {
            return Err(Error::invalid(format!(
                "network on bridge {br}: the iptables backend needs the subnet to masquerade"
            ))
            .ifname(br));
        };
        out.push((
            rule(
                Table::Nat,
                POSTROUTING,
                &["-s", s, "!", "-o", br],
                &["-j", "MASQUERADE"],
            ),
            Pos::Append,
        ));
    }
    out.push((
        rule(
            Table::Nat,
            POSTROUTING,
            &["-o", br, "-m", "addrtype", "--src-type", "LOCAL"],
            &["-j", "MASQUERADE"],
        ),
        Pos::Append,
    ));
    if let Some(s) = subnet.as_deref() {
        out.push((
            rule(
                Table::Nat,
                POSTROUTING,
                &["-s", s, "-o", br, "-m", "conntrack", "--ctstate", "DNAT"],
                &["-j", "MASQUERADE"],
            ),
            Pos::Append,
        ));
    }
    if n.internal {
        out.push((
            rule(
                Table::Filter,
                FORWARD,
                &["-i", br, "!", "-o", br],
                &["-j", "DROP"],
            ),
            Pos::Insert,
        ));
        out.push((
            rule(
                Table::Filter,
                FORWARD,
                &["!", "-i", br, "-o", br],
                &["-j", "DROP"],
            ),
            Pos::Insert,
        ));
    }
    // Inserted last, so it ends up first.
    let verdict = if n.icc { "ACCEPT" } else { "DROP" };
    out.push((
        rule(
            Table::Filter,
            FORWARD,
            &["-i", br, "-o", br],
            &["-j", verdict],
        ),
        Pos::Insert,
    ));
    out.push((
        rule(
            Table::Filter,
            ISOLATION,
            &["-i", br, "!", "-o", br],
            &["-j", ISOLATION2],
        ),
        Pos::Append,
    ));
    out.push((
        rule(Table::Filter, ISOLATION2, &["-o", br], &["-j", "DROP"]),
        Pos::Append,
    ));
    Ok(out)
}

fn port_rule(p: &Port) -> Rule {
    let mut args: Vec<String> = Vec::new();
    if let Some(ip) = p.host_ip.filter(|ip| !ip.is_unspecified()) {
        args.extend(["-d".to_string(), ip.to_string()]);
    }
    let proto = p.proto.as_str();
    for a in [
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
        &format!("{}:{}", p.container_ip, p.container_port),
    ] {
        args.push(a.to_string());
    }
    Rule {
        table: Table::Nat,
        chain: PREROUTING.to_string(),
        args,
    }
}

/// The published key of a saved DNAT rule of ours.
fn saved_port(rule: &Rule) -> Option<Port> {
    if rule.table != Table::Nat || rule.chain != PREROUTING {
        return None;
    }
    let opts = options(&rule.args);
    let (tag, bridge) = comment(&opts)?.strip_prefix(EP_TAG)?.rsplit_once('/')?;
    if opt(&opts, "-j")?.1 != "DNAT" {
        return None;
    }
    let proto = Proto::parse(opt(&opts, "-p")?.1).ok()?;
    let host_port = opt(&opts, "--dport")?.1.parse().ok()?;
    let host_ip = match opt(&opts, "-d") {
        Some((false, ip)) => Some(ip.parse::<Ipv4Addr>().ok()?),
        Some((true, _)) => return None,
        None => None,
    };
    let (cip, cport) = opt(&opts, "--to-destination")?.1.rsplit_once(':')?;
    Some(Port {
        proto,
        host_ip,
        host_port,
        container_ip: cip.parse().ok()?,
        container_port: cport.parse().ok()?,
        bridge: bridge.to_string(),
        tag: tag.to_string(),
    })
}

/// (tag, bridge) of a saved network rule of ours.
fn saved_network_id(rule: &Rule) -> Option<(String, String)> {
    let opts = options(&rule.args);
    let tag = comment(&opts)?.strip_prefix(NET_TAG)?;
    let bridge = opt(&opts, "-i").or_else(|| opt(&opts, "-o"))?.1;
    Some((tag.to_string(), bridge.to_string()))
}

fn parse_state(saved: &Saved) -> State {
    let mut nets: BTreeMap<(String, String), Network> = BTreeMap::new();
    let mut ports = Vec::new();
    for rule in &saved.rules {
        if let Some(p) = saved_port(rule) {
            ports.push(p);
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
                masquerade: false,
                icc: true,
                internal: false,
                tag,
            });
        let opts = options(&rule.args);
        if let Some((false, s)) = opt(&opts, "-s") {
            n.subnet = n.subnet.or_else(|| Subnet::parse(s).ok());
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
    ports.sort_by_key(|p| (p.host_ip, p.proto.number(), p.host_port));
    State {
        networks: nets.into_values().collect(),
        ports,
    }
}

/// Lines for `iptables-restore --noflush`, per table, in order.
#[derive(Debug, Default)]
struct Script {
    nat: Vec<String>,
    filter: Vec<String>,
}

impl Script {
    fn push(&mut self, table: Table, line: String) {
        match table {
            Table::Nat => self.nat.push(line),
            Table::Filter => self.filter.push(line),
        }
    }

    fn text(&self) -> Option<String> {
        let mut out = String::new();
        for (table, lines) in [(Table::Nat, &self.nat), (Table::Filter, &self.filter)] {
            if lines.is_empty() {
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

fn save(netns: Option<&str>) -> Result<Saved> {
    let text = exec::run_ok(netns, SAVE, &[], "")?;
    Ok(Saved::parse(&text))
}

fn restore(netns: Option<&str>, script: &Script) -> Result<()> {
    if let Some(text) = script.text() {
        exec::run_ok(netns, RESTORE, RESTORE_ARGS, &text)?;
    }
    Ok(())
}

fn jump_rules() -> Vec<Rule> {
    vec![
        Rule::new(
            Table::Nat,
            "PREROUTING",
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", PREROUTING],
        ),
        Rule::new(
            Table::Nat,
            "OUTPUT",
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", PREROUTING],
        ),
        Rule::new(Table::Nat, "POSTROUTING", &["-j", POSTROUTING]),
        Rule::new(Table::Filter, "FORWARD", &["-j", FORWARD]),
    ]
}

const CHAINS: &[(Table, &str)] = &[
    (Table::Nat, PREROUTING),
    (Table::Nat, POSTROUTING),
    (Table::Filter, FORWARD),
    (Table::Filter, ISOLATION),
    (Table::Filter, ISOLATION2),
];

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The restore script of a batch, given what is there now.
fn plan(saved: &Saved, batch: &Batch, netns: Option<&str>) -> Result<Script> {
    for (t, c) in CHAINS {
        if !saved.has_chain(*t, c) {
            return Err(Error::new(
                ErrorCode::Kernel,
                format!(
                    "chain {c} is missing in table {} of netns {} (call firewallInit first)",
                    t.name(),
                    ns_label(netns)
                ),
            ));
        }
    }
    let mut script = Script::default();
    let mut deleted: HashSet<usize> = HashSet::new();
    let delete = |script: &mut Script, deleted: &mut HashSet<usize>, i: usize| {
        if deleted.insert(i) {
            let r = &saved.rules[i];
            script.push(r.table, r.line("-D"));
        }
    };
    // Networks removed or re-added: every rule of theirs goes.
    for n in batch.remove_networks.iter().chain(&batch.add_networks) {
        let id = (n.tag.clone(), n.bridge.clone());
        for (i, r) in saved.rules.iter().enumerate() {
            if saved_network_id(r).as_ref() == Some(&id) {
                delete(&mut script, &mut deleted, i);
            }
        }
    }
    for p in &batch.remove_ports {
        let key = port_rule(p).key();
        for (i, r) in saved.rules.iter().enumerate() {
            if r.key() == key {
                delete(&mut script, &mut deleted, i);
            }
        }
    }
    // Published keys that stay.
    let mut taken: HashSet<(Proto, Option<Ipv4Addr>, u16)> = saved
        .rules
        .iter()
        .enumerate()
        .filter(|(i, _)| !deleted.contains(i))
        .filter_map(|(_, r)| saved_port(r))
        .map(|p| p.key())
        .collect();
    for n in &batch.add_networks {
        for (rule, pos) in network_rules(n)? {
            let verb = if pos == Pos::Insert { "-I" } else { "-A" };
            script.push(rule.table, rule.line(verb));
        }
    }
    for p in &batch.add_ports {
        let mut key = p.key();
        key.1 = key.1.filter(|ip| !ip.is_unspecified());
        if !taken.insert(key) {
            return Err(Error::new(
                ErrorCode::PortAllocated,
                format!(
                    "port mapping {} in netns {}: the host port is already published",
                    p.describe(),
                    ns_label(netns)
                ),
            ));
        }
        let rule = port_rule(p);
        script.push(rule.table, rule.line("-A"));
    }
    Ok(script)
}

pub struct Iptables;

impl FirewallBackend for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn init(&self, netns: Option<&str>) -> Result<()> {
        let _guard = lock();
        let saved = save(netns)?;
        let mut script = Script::default();
        for (t, c) in CHAINS {
            if !saved.has_chain(*t, c) {
                script.push(*t, format!(":{c} - [0:0]"));
            }
        }
        for rule in jump_rules() {
            if !saved.has_rule(&rule) {
                let verb = if rule.chain == "FORWARD" { "-I" } else { "-A" };
                script.push(rule.table, rule.line(verb));
            }
        }
        for rule in [
            Rule::new(
                Table::Filter,
                FORWARD,
                &["-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"],
            ),
            Rule::new(Table::Filter, FORWARD, &["-j", ISOLATION]),
        ] {
            if !saved.has_rule(&rule) {
                script.push(rule.table, rule.line("-A"));
            }
        }
        restore(netns, &script)
    }

    fn apply(&self, netns: Option<&str>, batch: &Batch) -> Result<()> {
        let _guard = lock();
        let saved = save(netns)?;
        let script = plan(&saved, batch, netns)?;
        restore(netns, &script)
    }

    fn state(&self, netns: Option<&str>) -> Result<State> {
        Ok(parse_state(&save(netns)?))
    }

    fn reset(&self, netns: Option<&str>) -> Result<()> {
        let _guard = lock();
        let saved = save(netns)?;
        let mut script = Script::default();
        for r in &saved.rules {
            let target = opt(&options(&r.args), "-j").map(|(_, t)| t.to_string());
            let ours = |c: &str| CHAINS.iter().any(|(_, name)| *name == c);
            if !ours(&r.chain) && target.as_deref().is_some_and(ours) {
                script.push(r.table, r.line("-D"));
            }
        }
        for (t, c) in CHAINS {
            if saved.has_chain(*t, c) {
                script.push(*t, format!("-F {c}"));
            }
        }
        for (t, c) in CHAINS {
            if saved.has_chain(*t, c) {
                script.push(*t, format!("-X {c}"));
            }
        }
        restore(netns, &script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            bridge: "br0".into(),
            subnet: Some(Subnet::parse("10.9.0.0/24").unwrap()),
            masquerade: true,
            icc: false,
            internal: false,
            tag: "n1".into(),
        }
    }

    fn port() -> Port {
        Port {
            proto: Proto::Udp,
            host_ip: Some("192.0.2.1".parse().unwrap()),
            host_port: 5353,
            container_ip: "10.9.0.2".parse().unwrap(),
            container_port: 53,
            bridge: "br0".into(),
            tag: "ep1".into(),
        }
    }

    /// Rules as iptables-save prints them.
    const SAVED: &str = r#"# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:CNM-POSTROUTING - [0:0]
:CNM-PREROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNM-PREROUTING
-A CNM-POSTROUTING -s 10.9.0.0/24 ! -o br0 -m comment --comment "cnm:net:n1" -j MASQUERADE
-A CNM-POSTROUTING -o br0 -m addrtype --src-type LOCAL -m comment --comment "cnm:net:n1" -j MASQUERADE
-A CNM-PREROUTING -d 192.0.2.1/32 -p udp -m udp --dport 5353 -m comment --comment "cnm:ep:ep1/br0" -j DNAT --to-destination 10.9.0.2:53
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:CNM-FORWARD - [0:0]
:CNM-ISOLATION - [0:0]
:CNM-ISOLATION-2 - [0:0]
-A CNM-FORWARD -i br0 -o br0 -m comment --comment "cnm:net:n1" -j DROP
COMMIT
"#;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"-A X -m comment --comment "a b" -j Y"#),
            ["-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"]
        );
    }

    #[test]
    fn state_from_save() {
        let saved = Saved::parse(SAVED);
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
    fn generated_rules_match_saved_ones() {
        let saved = Saved::parse(SAVED);
        assert!(saved.has_rule(&port_rule(&port())));
        let rules = network_rules(&net()).unwrap();
        assert!(saved.has_rule(&rules[0].0));
        assert!(saved.has_rule(&jump_rules()[0]));
    }

    #[test]
    fn plan_deletes_and_refuses_taken_ports() {
        let mut text = SAVED.to_string();
        text = text.replace(
            ":CNM-PREROUTING - [0:0]",
            ":CNM-PREROUTING - [0:0]\n:X - [0:0]",
        );
        let saved = Saved::parse(&text);
        let batch = Batch {
            remove_networks: vec![net()],
            remove_ports: vec![port()],
            ..Batch::default()
        };
        let script = plan(&saved, &batch, None).unwrap();
        assert_eq!(script.nat.len(), 3);
        assert!(script.nat.iter().all(|l| l.starts_with("-D ")));
        assert_eq!(script.filter.len(), 1);
        let batch = Batch {
            add_ports: vec![port()],
            ..Batch::default()
        };
        let err = plan(&saved, &batch, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::PortAllocated);
        let batch = Batch {
            add_ports: vec![port()],
            remove_ports: vec![port()],
            ..Batch::default()
        };
        assert!(plan(&saved, &batch, None).is_ok());
    }
}

//! The iptables backend, for hosts without nft and in Docker's classic shape.
//!
//! Our own chains: nat CNM-PREROUTING (jumped to from PREROUTING and OUTPUT
//! for local destinations) and CNM-POSTROUTING (from POSTROUTING); filter
//! CNM-FORWARD (first in FORWARD), CNM-ISOLATION and CNM-ISOLATION-2 (Docker's
//! two-stage isolation). Every rule of a network carries the comment
//! `cnm:net:<tag>`, every DNAT rule `cnm:ep:<tag>/<bridge>`. Each call writes
//! once with `iptables-restore --noflush`, run inside the netns; deletions
//! repeat the saved rule spec exactly. The tables are read with
//! `iptables-save` first, except by an `apply` that can trust the model it
//! kept from its previous call (see "Skipping iptables-save" below).
//!
//! IPv6: the same chains in the nat and filter tables of ip6tables, written
//! with `ip6tables-restore --noflush` and read with `ip6tables-save`; a
//! network gets IPv6 rules when it has an IPv6 subnet (no localhost
//! masquerade: ::1 cannot be routed out), a port a DNAT rule when it has a
//! container IPv6 address and no specific IPv4 host address. A call that
//! changes both families runs both programs, IPv4 first; every check
//! (ERR_PORT_ALLOCATED, missing chains) is done before either runs. Without
//! ip6tables installed the backend is IPv4 only, and refuses IPv6 rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{LazyLock, Mutex, MutexGuard};

use super::{exec, nfnl};
use super::{Batch, FirewallBackend, Network, Port, Proto, State, Subnet, Subnet6};
use crate::error::{ns_label, Error, ErrorCode, Result};

const SAVE: &str = "iptables-save";
const RESTORE: &str = "iptables-restore";
const SAVE6: &str = "ip6tables-save";
const RESTORE6: &str = "ip6tables-restore";
const RESTORE_ARGS: &[&str] = &["--noflush", "-w", "10"];

const PREROUTING: &str = "CNM-PREROUTING";
const POSTROUTING: &str = "CNM-POSTROUTING";
const FORWARD: &str = "CNM-FORWARD";
const ISOLATION: &str = "CNM-ISOLATION";
const ISOLATION2: &str = "CNM-ISOLATION-2";

const NET_TAG: &str = "cnm:net:";
const EP_TAG: &str = "cnm:ep:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Table {
    Nat,
    Filter,
    /// The nat table of ip6tables.
    Nat6,
    /// The filter table of ip6tables.
    Filter6,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Nat | Table::Nat6 => "nat",
            Table::Filter | Table::Filter6 => "filter",
        }
    }

    fn v6(self) -> bool {
        matches!(self, Table::Nat6 | Table::Filter6)
    }

    fn nat(v6: bool) -> Table {
        if v6 {
            Table::Nat6
        } else {
            Table::Nat
        }
    }

    fn filter(v6: bool) -> Table {
        if v6 {
            Table::Filter6
        } else {
            Table::Filter
        }
    }

    /// "iptables" or "ip6tables", for messages.
    fn program(self) -> &'static str {
        if self.v6() {
            "ip6tables"
        } else {
            "iptables"
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
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/!+=,@%[]".contains(c);
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
                v = v.map(|s| {
                    s.strip_suffix("/32")
                        .or_else(|| s.strip_suffix("/128"))
                        .map(str::to_string)
                        .unwrap_or(s)
                });
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

/// What `iptables-save` (and `ip6tables-save`) showed of the nat and
/// filter tables.
#[derive(Debug, Default)]
struct Saved {
    chains: HashSet<(Table, String)>,
    rules: Vec<Rule>,
}

impl Saved {
    /// Parses the output of `iptables-save`, or of `ip6tables-save` with `v6`.
    fn parse(text: &str, v6: bool) -> Saved {
        let mut saved = Saved::default();
        saved.add(text, v6);
        saved
    }

    fn add(&mut self, text: &str, v6: bool) {
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

/// The rules of a network, in the order they are added: IPv4, then IPv6
/// when it has an IPv6 subnet.
fn network_rules(n: &Network) -> Result<Vec<(Rule, Pos)>> {
    let mut out = family_rules(n, false, n.subnet.map(|s| s.to_string()))?;
    if let Some(s6) = n.subnet6 {
        out.extend(family_rules(n, true, Some(s6.to_string()))?);
    }
    Ok(out)
}

/// The rules of a network in one family.
fn family_rules(n: &Network, v6: bool, subnet: Option<String>) -> Result<Vec<(Rule, Pos)>> {
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
fn port_rule6(p: &Port) -> Option<Rule> {
    let target = p.v6_target()?;
    Some(dnat_rule(
        p,
        Table::Nat6,
        None,
        format!("[{target}]:{}", p.container_port),
    ))
}

fn port_rule(p: &Port) -> Rule {
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
fn dnat_rule(p: &Port, table: Table, dst: Option<String>, to: String) -> Rule {
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

/// The published key of a saved DNAT rule of ours. An IPv6 rule gives a
/// port with container address 0.0.0.0 and its `container_ip6`.
fn saved_port(rule: &Rule) -> Option<Port> {
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
fn saved_network_id(rule: &Rule) -> Option<(String, String)> {
    let opts = options(&rule.args);
    let tag = comment(&opts)?.strip_prefix(NET_TAG)?;
    let bridge = opt(&opts, "-i").or_else(|| opt(&opts, "-o"))?.1;
    Some((tag.to_string(), bridge.to_string()))
}

fn parse_state(saved: &Saved) -> State {
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

/// Lines for `iptables-restore --noflush` (and `ip6tables-restore`), per
/// table, in order.
#[derive(Debug, Default)]
struct Script {
    nat: Vec<String>,
    filter: Vec<String>,
    nat6: Vec<String>,
    filter6: Vec<String>,
}

impl Script {
    fn push(&mut self, table: Table, line: String) {
        self.lines_mut(table).push(line);
    }

    fn lines_mut(&mut self, table: Table) -> &mut Vec<String> {
        match table {
            Table::Nat => &mut self.nat,
            Table::Filter => &mut self.filter,
            Table::Nat6 => &mut self.nat6,
            Table::Filter6 => &mut self.filter6,
        }
    }

    fn tables(&self) -> [(Table, &Vec<String>); 4] {
        [
            (Table::Nat, &self.nat),
            (Table::Filter, &self.filter),
            (Table::Nat6, &self.nat6),
            (Table::Filter6, &self.filter6),
        ]
    }

    /// The number of tables the script changes (one COMMIT each).
    fn commits(&self) -> u32 {
        self.tables().iter().filter(|(_, l)| !l.is_empty()).count() as u32
    }

    /// The input of `iptables-restore`, or with `v6` of `ip6tables-restore`.
    fn text(&self, v6: bool) -> Option<String> {
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

/// Whether ip6tables is installed.
fn have_v6() -> bool {
    exec::available(SAVE6) && exec::available(RESTORE6)
}

/// Both families' tables (IPv6 only when ip6tables is installed).
fn save(netns: Option<&str>) -> Result<Saved> {
    let text = exec::run_ok(netns, SAVE, &[], "")?;
    let mut saved = Saved::parse(&text, false);
    if have_v6() {
        let text6 = exec::run_ok(netns, SAVE6, &[], "")?;
        saved.add(&text6, true);
    }
    Ok(saved)
}

fn restore(netns: Option<&str>, script: &Script) -> Result<()> {
    if let Some(text) = script.text(false) {
        exec::run_ok(netns, RESTORE, RESTORE_ARGS, &text)?;
    }
    if let Some(text) = script.text(true) {
        exec::run_ok(netns, RESTORE6, RESTORE_ARGS, &text)?;
    }
    Ok(())
}

fn jump_rules(v6: bool) -> Vec<Rule> {
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
fn base_rules(v6: bool) -> Vec<Rule> {
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

const CHAIN_NAMES: &[(bool, &str)] = &[
    (true, PREROUTING),
    (true, POSTROUTING),
    (false, FORWARD),
    (false, ISOLATION),
    (false, ISOLATION2),
];

/// Our chains of one family.
fn chains(v6: bool) -> Vec<(Table, &'static str)> {
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

/// The families this host handles: IPv4, and IPv6 with ip6tables.
fn families() -> Vec<bool> {
    if have_v6() {
        vec![false, true]
    } else {
        vec![false]
    }
}

/// Forgets the rule copy of a netns that is going away (see `netns::release`).
pub fn release(name: &str) {
    lock().remove(&Some(name.to_string()));
}

fn lock() -> MutexGuard<'static, HashMap<Option<String>, Cached>> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A published key with an unspecified host address folded into None.
type PortKey = (Proto, Option<Ipv4Addr>, u16);

fn port_key(p: &Port) -> PortKey {
    let (proto, ip, port) = p.key();
    (proto, ip.filter(|ip| !ip.is_unspecified()), port)
}

/// The rules of the nat and filter tables, indexed so that planning a batch
/// costs what the batch holds, not what the tables hold.
#[derive(Debug, Default)]
struct Model {
    chains: HashSet<(Table, String)>,
    next: u64,
    /// In the order they were seen or added (ids grow).
    rules: BTreeMap<u64, Rule>,
    by_key: HashMap<RuleKey, Vec<u64>>,
    by_net: HashMap<(String, String), Vec<u64>>,
    by_port: HashMap<PortKey, Vec<u64>>,
}

fn unindex<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<u64>>, key: K, id: u64) {
    if let Some(ids) = map.get_mut(&key) {
        ids.retain(|i| *i != id);
        if ids.is_empty() {
            map.remove(&key);
        }
    }
}

impl Model {
    fn from_saved(saved: Saved) -> Model {
        let mut m = Model {
            chains: saved.chains,
            ..Model::default()
        };
        for r in saved.rules {
            m.insert(r);
        }
        m
    }

    fn insert(&mut self, rule: Rule) {
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

    fn remove(&mut self, id: u64) {
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

    fn has_chain(&self, table: Table, chain: &str) -> bool {
        self.chains.contains(&(table, chain.to_string()))
    }
}

/// What a batch does: the restore script, and the same change to the model.
#[derive(Debug, Default)]
struct Plan {
    script: Script,
    deleted: Vec<u64>,
    added: Vec<Rule>,
}

impl Plan {
    fn commit_to(self, model: &mut Model) {
        for id in self.deleted {
            model.remove(id);
        }
        for rule in self.added {
            model.insert(rule);
        }
    }
}

/// The restore script of a batch, given what is there now.
fn plan(model: &Model, batch: &Batch, netns: Option<&str>) -> Result<Plan> {
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

// ---------------------------------------------------------------------------
// Skipping iptables-save
//
// Reading the tables costs as much as they hold (70 ms at 10 000 rules), so
// `apply` keeps, per netns, the model of the tables it last saw or wrote,
// and trusts it only while the netns's nf_tables generation id (bumped by
// every ruleset change in the netns, from any program) is the one recorded
// with it: then the model is the kernel's rules, exactly, and ERR_PORT_ALLOCATED
// and deletions are planned from it as from a fresh `iptables-save`. A model
// is recorded only after a restore moved the generation by exactly its
// number of COMMITs (iptables-nft commits once per table), i.e. nobody else
// changed anything in between; with iptables-legacy the generation does not
// move and every call reads the tables, as before. The netns is identified
// by its cookie (never reused), so a netns deleted and made again under the
// same name is never mistaken for the old one. Nothing is held open between
// calls: a socket would keep a deleted netns alive.

/// Models per netns name (None: the process netns); also serialises every
/// read-modify-write of this backend in this process.
static LOCK: LazyLock<Mutex<HashMap<Option<String>, Cached>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// At most this many netns keep a model; beyond, one is forgotten.
const MAX_CACHED: usize = 64;

struct Cached {
    cookie: u64,
    generation: u32,
    model: Model,
}

const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;

/// A NETLINK_NETFILTER socket opened inside a netns, for one call.
struct GenProbe {
    socket: nfnl::Socket,
    cookie: u64,
}

impl GenProbe {
    fn open(netns: Option<&str>) -> Result<GenProbe> {
        let socket = nfnl::Socket::open(netns)?;
        let cookie = socket.netns_cookie().map_err(|e| {
            Error::from_io(
                &e,
                format_args!("read the cookie of netns {}", ns_label(netns)),
            )
        })?;
        Ok(GenProbe { socket, cookie })
    }

    /// The netns's current nf_tables generation id.
    fn generation(&mut self) -> io::Result<u32> {
        let seq = self.socket.next_seq(1);
        let mut w = nfnl::Writer::default();
        let m = w.begin(
            nfnl::nft_type(NFT_MSG_GETGEN),
            nfnl::NLM_F_REQUEST | nfnl::NLM_F_ACK,
            seq,
            libc::AF_UNSPEC as u8,
            0,
        );
        w.end(m);
        let replies = self.socket.exchange(w.bytes(), seq..=seq, seq)?;
        if let Some(&(_, errno)) = replies.errors.first() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        generation_of(&replies).ok_or_else(|| io::Error::from_raw_os_error(libc::EBADMSG))
    }
}

/// NFTA_GEN_ID of the NFT_MSG_NEWGEN reply.
fn generation_of(replies: &nfnl::Replies) -> Option<u32> {
    let (_, _, payload) = replies
        .messages
        .iter()
        .find(|(_, ty, _)| *ty == nfnl::nft_type(NFT_MSG_NEWGEN))?;
    let (_, id) = nfnl::attrs(payload).find(|(ty, _)| *ty == NFTA_GEN_ID)?;
    Some(u32::from_be_bytes(id.get(..4)?.try_into().ok()?))
}

pub struct Iptables;

impl Iptables {
    /// Plans from a trusted model when there is one, else from
    /// `iptables-save`; restores; records the model when it can be trusted.
    fn apply_locked(
        cache: &mut HashMap<Option<String>, Cached>,
        netns: Option<&str>,
        batch: &Batch,
    ) -> Result<()> {
        let key = netns.map(str::to_string);
        let cached = cache.remove(&key);
        // Without a probe or a generation the model cannot be trusted: read.
        let mut probe = GenProbe::open(netns).ok();
        let before = probe.as_mut().and_then(|p| p.generation().ok());
        let (mut model, hit) = match (&probe, before, cached) {
            (Some(p), Some(g), Some(c)) if c.cookie == p.cookie && c.generation == g => {
                (c.model, true)
            }
            _ => (Model::from_saved(save(netns)?), false),
        };
        let cookie = probe.as_ref().map(|p| p.cookie);
        let keep = |cache: &mut HashMap<Option<String>, Cached>, model: Model, generation| {
            let Some(cookie) = cookie else { return };
            if cache.len() >= MAX_CACHED {
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
            cache.insert(
                key.clone(),
                Cached {
                    cookie,
                    generation,
                    model,
                },
            );
        };
        let planned = match plan(&model, batch, netns) {
            Ok(p) => p,
            Err(e) => {
                if hit {
                    keep(cache, model, before.unwrap_or_default());
                }
                return Err(e);
            }
        };
        let commits = planned.script.commits();
        if commits == 0 {
            if hit {
                keep(cache, model, before.unwrap_or_default());
            }
            return Ok(());
        }
        restore(netns, &planned.script)?;
        let after = probe.as_mut().and_then(|p| p.generation().ok());
        if let (Some(b), Some(a)) = (before, after) {
            if a == b.wrapping_add(commits) {
                planned.commit_to(&mut model);
                keep(cache, model, a);
            }
        }
        Ok(())
    }
}

impl FirewallBackend for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn init(&self, netns: Option<&str>) -> Result<()> {
        let mut cache = lock();
        cache.remove(&netns.map(str::to_string));
        let saved = save(netns)?;
        let mut script = Script::default();
        for v6 in families() {
            for (t, c) in chains(v6) {
                if !saved.has_chain(t, c) {
                    script.push(t, format!(":{c} - [0:0]"));
                }
            }
            for rule in jump_rules(v6) {
                if !saved.has_rule(&rule) {
                    let verb = if rule.chain == "FORWARD" { "-I" } else { "-A" };
                    script.push(rule.table, rule.line(verb));
                }
            }
            for rule in base_rules(v6) {
                if !saved.has_rule(&rule) {
                    script.push(rule.table, rule.line("-A"));
                }
            }
        }
        restore(netns, &script)
    }

    fn apply(&self, netns: Option<&str>, batch: &Batch) -> Result<()> {
        let mut cache = lock();
        Iptables::apply_locked(&mut cache, netns, batch)
    }

    fn state(&self, netns: Option<&str>) -> Result<State> {
        Ok(parse_state(&save(netns)?))
    }

    fn reset(&self, netns: Option<&str>) -> Result<()> {
        let mut cache = lock();
        cache.remove(&netns.map(str::to_string));
        let saved = save(netns)?;
        let mut script = Script::default();
        for r in &saved.rules {
            let target = opt(&options(&r.args), "-j").map(|(_, t)| t.to_string());
            let ours = |c: &str| CHAIN_NAMES.iter().any(|(_, name)| *name == c);
            if !ours(&r.chain) && target.as_deref().is_some_and(ours) {
                script.push(r.table, r.line("-D"));
            }
        }
        let all: Vec<(Table, &str)> = families().into_iter().flat_map(chains).collect();
        for (t, c) in &all {
            if saved.has_chain(*t, c) {
                script.push(*t, format!("-F {c}"));
            }
        }
        for (t, c) in &all {
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
            subnet6: None,
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
            container_ip6: None,
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
    fn generated_rules_match_saved_ones() {
        let saved = Saved::parse(SAVED, false);
        assert!(saved.has_rule(&port_rule(&port())));
        let rules = network_rules(&net()).unwrap();
        assert!(saved.has_rule(&rules[0].0));
        assert!(saved.has_rule(&jump_rules(false)[0]));
    }

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

    /// IPv6 rules as ip6tables-save prints them.
    const SAVED6: &str = r#"# Generated by ip6tables-save
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNM-POSTROUTING - [0:0]
:CNM-PREROUTING - [0:0]
-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j CNM-PREROUTING
-A CNM-POSTROUTING -s fd00:9::/64 ! -o br0 -m comment --comment "cnm:net:n1" -j MASQUERADE
-A CNM-PREROUTING -p tcp -m tcp --dport 8080 -m comment --comment "cnm:ep:ep2/br0" -j DNAT --to-destination [fd00:9::2]:80
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:CNM-FORWARD - [0:0]
-A CNM-FORWARD -i br0 -o br0 -m comment --comment "cnm:net:n1" -j DROP
COMMIT
"#;

    fn net6() -> Network {
        Network {
            subnet6: Some(Subnet6::parse("fd00:9::/64").unwrap()),
            ..net()
        }
    }

    fn port6() -> Port {
        Port {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_ip: "10.9.0.2".parse().unwrap(),
            container_ip6: Some("fd00:9::2".parse().unwrap()),
            container_port: 80,
            bridge: "br0".into(),
            tag: "ep2".into(),
        }
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
        // an IPv4 host address: IPv4 only
        let pinned = Port {
            host_ip: Some("192.0.2.1".parse().unwrap()),
            ..port6()
        };
        assert!(port_rule6(&pinned).is_none());
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

    #[test]
    fn generation_reply() {
        use crate::firewall::nfnl::tests::{ack, message};
        let newgen = nfnl::nft_type(NFT_MSG_NEWGEN);
        let mut buf = message(newgen, 7, NFTA_GEN_ID, &[1, 2, 3, 4]);
        buf.extend(ack(7, 0));
        let mut replies = nfnl::Replies::default();
        assert!(replies.add(&buf, &(7..=7), 7));
        assert_eq!(generation_of(&replies), Some(0x0102_0304));
        let mut other = nfnl::Replies::default();
        other.add(&buf, &(8..=8), 8);
        assert_eq!(generation_of(&other), None);
    }
}

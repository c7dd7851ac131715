//! The nftables backend: `table ip cnm` and its IPv6 twin `table ip6 cnm`
//! with a fixed base ruleset, created once per netns by `init` (one
//! `nft -f -`), and changed afterwards only by adding and removing set/map
//! elements in one nfnetlink transaction (spanning both tables) sent over a
//! NETLINK_NETFILTER socket that was opened inside the netns. No spawned
//! program and no rule is touched on the hot path, so the cost of a change
//! does not grow with the number of networks or ports.
//!
//! Every network is an element of the sets of both tables, so isolation,
//! internal networks and icc hold for IPv4 and IPv6 alike; a published port
//! is an element of the IPv4 maps, and of the IPv6 `ports` map when it has a
//! container IPv6 address and no specific IPv4 host address.
//!
//! Element encodings follow the nft data types: ifname is 16 bytes
//! NUL-padded; inet_proto 1 byte, inet_service 2 bytes big-endian, ipv4_addr
//! 4 bytes and ipv6_addr 16 bytes network order; each component of a
//! concatenation is padded to a multiple of 4 bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use serde_json::Value;

use super::nfnl::{self, nft_type, Writer, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use super::{exec, Batch, FirewallBackend, Network, Port, Proto, State};
use crate::error::{ns_label, Error, ErrorCode, Result};

pub const TABLE: &str = "cnm";

/// The base ruleset; `create table` first makes the whole transaction fail
/// (and add nothing twice) when a table already exists. The version comment
/// goes with `create`: the kernel keeps the user data a table is created
/// with, and ignores it in a later `table … { comment … }` of the same
/// transaction (which is an update).
///
/// The IPv6 table has no `ports_ip` (a specific host address is IPv4 and
/// limits a mapping to IPv4), and no localhost rule: ::1 cannot be routed
/// out (there is no route_localnet for IPv6), so connections to ::1 are not
/// DNATed at all rather than DNATed into a black hole.
pub const RULESET: &str = r#"create table ip cnm { comment "managed by cnm v3"; }
create table ip6 cnm { comment "managed by cnm v3"; }
table ip cnm {
  set bridges { type ifname; }
  set masq { type ifname; }
  set internal { type ifname; }
  map intra { type ifname . ifname : verdict; }
  map ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports_ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump publish; }
  chain output { type nat hook output priority -100; policy accept; fib daddr type local jump publish; }
  chain publish {
    iifname @bridges meta mark set meta mark | 0x00020000
    dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
    dnat ip to meta l4proto . th dport map @ports
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    ct status dnat oifname @bridges meta mark & 0x00020000 == 0x00020000 masquerade
    ip saddr 127.0.0.0/8 oifname @bridges masquerade
    iifname @masq oifname != @bridges masquerade
  }
  chain forward { type filter hook forward priority filter; policy accept;
    iifname . oifname vmap @intra
    iifname @internal drop
    oifname @internal drop
    ct status dnat accept
    iifname @bridges oifname @bridges drop
  }
}
table ip6 cnm {
  set bridges { type ifname; }
  set masq { type ifname; }
  set internal { type ifname; }
  map intra { type ifname . ifname : verdict; }
  map ports { type inet_proto . inet_service : ipv6_addr . inet_service; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump publish; }
  chain output { type nat hook output priority -100; policy accept; ip6 daddr != ::1 fib daddr type local jump publish; }
  chain publish {
    iifname @bridges meta mark set meta mark | 0x00020000
    dnat ip6 to meta l4proto . th dport map @ports
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    ct status dnat oifname @bridges meta mark & 0x00020000 == 0x00020000 masquerade
    iifname @masq oifname != @bridges masquerade
  }
  chain forward { type filter hook forward priority filter; policy accept;
    iifname . oifname vmap @intra
    iifname @internal drop
    oifname @internal drop
    ct status dnat accept
    iifname @bridges oifname @bridges drop
  }
}
"#;

/// The families of our two tables.
const FAMILIES: [u8; 2] = [NFPROTO_IPV4, NFPROTO_IPV6];

fn family_name(family: u8) -> &'static str {
    if family == NFPROTO_IPV6 {
        "ip6"
    } else {
        "ip"
    }
}

// nf_tables constants (linux/netfilter/nf_tables.h).
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DESTROYTABLE: u16 = 26;
const NFT_MSG_DESTROYSETELEM: u16 = 30;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const IFNAMSIZ: usize = 16;

// ---------------------------------------------------------------------------
// Element encoding

/// Data of a map element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    None,
    Value(Vec<u8>),
    Verdict(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Add; with `excl`, an existing key fails the transaction (EEXIST).
    Add { excl: bool },
    /// Remove if present (NFT_MSG_DESTROYSETELEM, kernel >= 6.3).
    Destroy,
}

/// One element change, with what to tell a person when the kernel refuses it.
#[derive(Debug, Clone)]
struct Change {
    op: Op,
    /// NFPROTO_IPV4 (table ip cnm) or NFPROTO_IPV6 (table ip6 cnm).
    family: u8,
    set: &'static str,
    key: Vec<u8>,
    data: Data,
    what: String,
    port: bool,
}

fn put_element(w: &mut Writer, c: &Change, seq: u32) {
    let (ty, flags) = match c.op {
        Op::Add { excl: true } => (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL),
        Op::Add { excl: false } => (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
        Op::Destroy => (NFT_MSG_DESTROYSETELEM, 0),
    };
    let m = w.begin(nft_type(ty), NLM_F_REQUEST | flags, seq, c.family, 0);
    w.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    w.attr_str(NFTA_SET_ELEM_LIST_SET, c.set);
    let elements = w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    let elem = w.nest(NFTA_LIST_ELEM);
    let key = w.nest(NFTA_SET_ELEM_KEY);
    w.attr(NFTA_DATA_VALUE, &c.key);
    w.nest_end(key);
    if c.op != Op::Destroy {
        match &c.data {
            Data::None => {}
            Data::Value(v) => {
                let d = w.nest(NFTA_SET_ELEM_DATA);
                w.attr(NFTA_DATA_VALUE, v);
                w.nest_end(d);
            }
            Data::Verdict(code) => {
                let d = w.nest(NFTA_SET_ELEM_DATA);
                let v = w.nest(NFTA_DATA_VERDICT);
                w.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                w.nest_end(v);
                w.nest_end(d);
            }
        }
    }
    w.nest_end(elem);
    w.nest_end(elements);
    w.end(m);
}

fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.resize(IFNAMSIZ, 0);
    k
}

/// inet_proto . inet_service, each padded to 4 bytes.
fn proto_port(proto: Proto, port: u16) -> [u8; 8] {
    let p = port.to_be_bytes();
    [proto.number(), 0, 0, 0, p[0], p[1], 0, 0]
}

/// ipv4_addr . inet_service.
fn addr_port(addr: Ipv4Addr, port: u16) -> [u8; 8] {
    let a = addr.octets();
    let p = port.to_be_bytes();
    [a[0], a[1], a[2], a[3], p[0], p[1], 0, 0]
}

/// ipv6_addr . inet_service.
fn addr6_port(addr: Ipv6Addr, port: u16) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..16].copy_from_slice(&addr.octets());
    out[16..18].copy_from_slice(&port.to_be_bytes());
    out
}

fn port_change(p: &Port, op: Op) -> Change {
    let (set, key) = match p.host_ip {
        Some(ip) if !ip.is_unspecified() => {
            let mut k = ip.octets().to_vec();
            k.extend_from_slice(&proto_port(p.proto, p.host_port));
            ("ports_ip", k)
        }
        _ => ("ports", proto_port(p.proto, p.host_port).to_vec()),
    };
    Change {
        op,
        family: NFPROTO_IPV4,
        set,
        key,
        data: Data::Value(addr_port(p.container_ip, p.container_port).to_vec()),
        what: format!("port mapping {}", p.describe()),
        port: true,
    }
}

/// The IPv6 element of a port, if it has one. A removal destroys the IPv6
/// element of the published key whatever it points to: it belongs to the
/// mapping the IPv4 element of the same key belongs to.
fn port_change6(p: &Port, op: Op) -> Option<Change> {
    if p.host_ip.is_some_and(|ip| !ip.is_unspecified()) {
        return None;
    }
    let data = match (op, p.v6_target()) {
        (Op::Destroy, target) => target.unwrap_or(Ipv6Addr::UNSPECIFIED),
        (Op::Add { .. }, Some(target)) => target,
        (Op::Add { .. }, None) => return None,
    };
    Some(Change {
        op,
        family: NFPROTO_IPV6,
        set: "ports",
        key: proto_port(p.proto, p.host_port).to_vec(),
        data: Data::Value(addr6_port(data, p.container_port).to_vec()),
        what: format!("port mapping {}", p.describe()),
        port: true,
    })
}

fn net_change(family: u8, set: &'static str, bridge: &str, op: Op) -> Change {
    let (key, data) = if set == "intra" {
        let mut k = ifname_key(bridge);
        k.extend_from_slice(&ifname_key(bridge));
        (k, Data::Verdict(NF_ACCEPT))
    } else {
        (ifname_key(bridge), Data::None)
    };
    Change {
        op,
        family,
        set,
        key,
        data,
        what: format!(
            "network on bridge {bridge} (set {set} of table {} {TABLE})",
            family_name(family)
        ),
        port: false,
    }
}

/// The element changes of a batch, removals first: removing and re-adding
/// the same key in one transaction replaces it.
fn changes(batch: &Batch) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &batch.remove_networks {
        for family in FAMILIES {
            for set in ["bridges", "masq", "internal", "intra"] {
                out.push(net_change(family, set, &n.bridge, Op::Destroy));
            }
        }
    }
    for p in &batch.remove_ports {
        out.push(port_change(p, Op::Destroy));
        out.extend(port_change6(p, Op::Destroy));
    }
    for n in &batch.add_networks {
        for family in FAMILIES {
            // Re-adding a network may change its flags: clear the old ones.
            for set in ["masq", "internal", "intra"] {
                out.push(net_change(family, set, &n.bridge, Op::Destroy));
            }
            let add = Op::Add { excl: false };
            out.push(net_change(family, "bridges", &n.bridge, add));
            if n.masquerade && !n.internal {
                out.push(net_change(family, "masq", &n.bridge, add));
            }
            if n.internal {
                out.push(net_change(family, "internal", &n.bridge, add));
            }
            let mut intra = net_change(family, "intra", &n.bridge, add);
            intra.data = Data::Verdict(if n.icc { NF_ACCEPT } else { NF_DROP });
            out.push(intra);
        }
    }
    for p in &batch.add_ports {
        out.push(port_change(p, Op::Add { excl: true }));
        out.extend(port_change6(p, Op::Add { excl: true }));
    }
    out
}

// ---------------------------------------------------------------------------
// The socket

struct Entry {
    id: Option<(u64, u64)>,
    socket: Arc<Mutex<nfnl::Socket>>,
}

static SOCKETS: LazyLock<Mutex<HashMap<Option<String>, Entry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forgets the socket of a netns (closing it once no call uses it).
pub fn release(name: &str) {
    lock(&SOCKETS).remove(&Some(name.to_string()));
}

/// The cached socket of `netns`, opened inside it on first use.
fn socket(netns: Option<&str>) -> Result<Arc<Mutex<nfnl::Socket>>> {
    let id = netns.map(crate::netns::ns_id).transpose()?;
    let key = netns.map(str::to_string);
    if let Some(e) = lock(&SOCKETS).get(&key) {
        if e.id == id {
            return Ok(e.socket.clone());
        }
    }
    let socket = Arc::new(Mutex::new(nfnl::Socket::open(netns)?));
    let mut cache = lock(&SOCKETS);
    if let Some(e) = cache.get(&key) {
        if e.id == id {
            return Ok(e.socket.clone());
        }
    }
    cache.insert(
        key,
        Entry {
            id,
            socket: socket.clone(),
        },
    );
    Ok(socket)
}

fn kernel_error(errno: i32, context: impl std::fmt::Display, netns: Option<&str>) -> Error {
    Error::from_errno(errno, context).netns(netns)
}

fn not_initialized(netns: Option<&str>, what: &str) -> Error {
    Error::with_errno(
        ErrorCode::Kernel,
        libc::ENOENT,
        format!(
            "{what}: table ip {TABLE} or ip6 {TABLE} is missing in netns {} (call firewallInit first)",
            ns_label(netns)
        ),
    )
    .netns(netns)
}

/// Sends `changes` (or the deletion of both tables) as one transaction.
fn transaction(netns: Option<&str>, changes: &[Change], destroy_tables: bool) -> Result<()> {
    let sock = socket(netns)?;
    let mut sock = lock(&sock);
    let destroys = if destroy_tables { FAMILIES.len() } else { 0 };
    let count = (changes.len() + destroys) as u32;
    let first = sock.next_seq(count + 2);
    let last = first.wrapping_add(count + 1);
    let mut w = Writer::default();
    w.batch_begin(first);
    let mut seq = first;
    for c in changes {
        seq = seq.wrapping_add(1);
        put_element(&mut w, c, seq);
    }
    for family in FAMILIES.iter().take(destroys) {
        seq = seq.wrapping_add(1);
        let m = w.begin(
            nft_type(NFT_MSG_DESTROYTABLE),
            NLM_F_REQUEST,
            seq,
            *family,
            0,
        );
        w.attr_str(NFTA_TABLE_NAME, TABLE);
        w.end(m);
    }
    w.batch_end(last);
    let ctx = format!("nftables transaction in netns {}", ns_label(netns));
    let replies = sock
        .exchange(w.bytes(), first..=last, last)
        .map_err(|e| Error::from_io(&e, &ctx).netns(netns))?;
    let Err(nfnl::Refused { seq, errno }) = replies.batch_outcome() else {
        return Ok(());
    };
    let index = seq.wrapping_sub(first).wrapping_sub(1) as usize;
    let change = changes.get(index);
    Err(match (change, errno) {
        (Some(c), libc::EEXIST) if c.port => Error::new(
            ErrorCode::PortAllocated,
            format!(
                "{} in netns {}: the host port is already published",
                c.what,
                ns_label(netns)
            ),
        )
        .netns(netns),
        (Some(c), libc::ENOENT) => not_initialized(netns, &c.what),
        (Some(c), _) => kernel_error(errno, format_args!("{ctx}: {}", c.what), netns),
        (None, _) => kernel_error(errno, ctx, netns),
    })
}

/// The comment of the current base ruleset: a table with another one was made
/// by an older cnm and is replaced (reconcile then restores its elements).
const VERSION_TAG: &[u8] = b"managed by cnm v3";

/// None when the table is absent, Some(true) when it carries the current ruleset.
fn table_version(netns: Option<&str>, family: u8) -> Result<Option<bool>> {
    let sock = socket(netns)?;
    let mut sock = lock(&sock);
    let seq = sock.next_seq(1);
    let mut w = Writer::default();
    let m = w.begin(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        family,
        0,
    );
    w.attr_str(NFTA_TABLE_NAME, TABLE);
    w.end(m);
    let ctx = format!(
        "look up table {} {TABLE} in netns {}",
        family_name(family),
        ns_label(netns)
    );
    let replies = sock
        .exchange(w.bytes(), seq..=seq, seq)
        .map_err(|e| Error::from_io(&e, &ctx).netns(netns))?;
    match replies.errors.first() {
        Some(&(_, libc::ENOENT)) => Ok(None),
        Some(&(_, errno)) => Err(kernel_error(errno, ctx, netns)),
        None if replies.messages.is_empty() && replies.acks.is_empty() => Ok(None),
        None => Ok(Some(replies.messages.iter().any(|(_, _, payload)| {
            payload.windows(VERSION_TAG.len()).any(|w| w == VERSION_TAG)
        }))),
    }
}

// ---------------------------------------------------------------------------
// Reading the state back (not the hot path: one `nft -j list table`)

fn json_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("elem").and_then(|e| e.get("val")).and_then(json_str),
        _ => None,
    }
}

fn json_proto(v: &Value) -> Option<Proto> {
    match v {
        Value::String(s) => Proto::parse(s)
            .ok()
            .or_else(|| s.parse::<u8>().ok().and_then(Proto::from_number)),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(Proto::from_number),
        _ => None,
    }
}

fn json_port(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn concat(v: &Value) -> Option<&Vec<Value>> {
    let v = v.get("elem").and_then(|e| e.get("val")).unwrap_or(v);
    v.get("concat").and_then(Value::as_array)
}

/// What one of our tables holds.
#[derive(Debug, Default)]
struct TableState {
    sets: BTreeMap<String, BTreeSet<String>>,
    intra: BTreeMap<String, bool>,
    /// (proto, host address, host port, container address, container port).
    ports: Vec<(Proto, Option<Ipv4Addr>, u16, String, u16)>,
}

impl TableState {
    fn networks(&self) -> BTreeMap<String, Network> {
        let empty = BTreeSet::new();
        let set = |name: &str| self.sets.get(name).unwrap_or(&empty);
        let (bridges, masq, internal) = (set("bridges"), set("masq"), set("internal"));
        bridges
            .iter()
            .chain(self.intra.keys())
            .map(|br| {
                let n = Network {
                    bridge: br.clone(),
                    subnet: None,
                    subnet6: None,
                    masquerade: masq.contains(br),
                    icc: self.intra.get(br).copied().unwrap_or(true),
                    internal: internal.contains(br),
                    tag: String::new(),
                };
                (br.clone(), n)
            })
            .collect()
    }
}

/// Parses `nft -j list table <family> cnm`.
fn parse_table(json: &str) -> Result<TableState> {
    let root: Value = serde_json::from_str(json)
        .map_err(|e| Error::new(ErrorCode::Kernel, format!("parse nft -j output: {e}")))?;
    let mut out = TableState::default();
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for item in &items {
        let Some(obj) = item.get("set").or_else(|| item.get("map")) else {
            continue;
        };
        let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
        let elems = obj
            .get("elem")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in &elems {
            match name {
                "bridges" | "masq" | "internal" => {
                    if let Some(s) = json_str(e) {
                        out.sets.entry(name.to_string()).or_default().insert(s);
                    }
                }
                "intra" => {
                    let Some(pair) = e.as_array() else { continue };
                    let (Some(k), Some(v)) = (pair.first(), pair.get(1)) else {
                        continue;
                    };
                    let Some(k) = concat(k) else { continue };
                    if let Some(br) = k.first().and_then(json_str) {
                        out.intra.insert(br, v.get("accept").is_some());
                    }
                }
                "ports" | "ports_ip" => {
                    let Some(pair) = e.as_array() else { continue };
                    let (Some(k), Some(v)) = (pair.first().and_then(concat), pair.get(1)) else {
                        continue;
                    };
                    let Some(v) = concat(v) else { continue };
                    let (host_ip, rest) = if name == "ports_ip" {
                        let ip = k
                            .first()
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok());
                        (ip, k.get(1..).unwrap_or(&[]))
                    } else {
                        (None, k.as_slice())
                    };
                    if name == "ports_ip" && host_ip.is_none() {
                        continue;
                    }
                    let proto = rest.first().and_then(json_proto);
                    let host_port = rest.get(1).and_then(json_port);
                    let cip = v.first().and_then(Value::as_str);
                    let cport = v.get(1).and_then(json_port);
                    if let (Some(proto), Some(host_port), Some(cip), Some(cport)) =
                        (proto, host_port, cip, cport)
                    {
                        out.ports
                            .push((proto, host_ip, host_port, cip.to_string(), cport));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Parses `nft -j list table ip cnm` and, when present, `nft -j list table
/// ip6 cnm`. A network is reported as the IPv4 table holds it (the IPv6 one
/// only adds bridges the IPv4 one lacks); an IPv6 port element becomes the
/// `container_ip6` of the IPv4 mapping of the same key, or, without one, a
/// mapping of its own with container address 0.0.0.0 (so that it can be
/// pruned).
pub fn parse_state(json4: &str, json6: Option<&str>) -> Result<State> {
    let t4 = parse_table(json4)?;
    let t6 = json6.map(parse_table).transpose()?.unwrap_or_default();
    let mut networks = t4.networks();
    for (br, n) in t6.networks() {
        networks.entry(br).or_insert(n);
    }
    let mut ports: Vec<Port> = t4
        .ports
        .iter()
        .filter_map(|(proto, host_ip, host_port, cip, cport)| {
            Some(Port {
                proto: *proto,
                host_ip: *host_ip,
                host_port: *host_port,
                container_ip: cip.parse().ok()?,
                container_ip6: None,
                container_port: *cport,
                bridge: String::new(),
                tag: String::new(),
            })
        })
        .collect();
    for (proto, _, host_port, cip, cport) in &t6.ports {
        let Ok(ip6) = cip.parse::<Ipv6Addr>() else {
            continue;
        };
        let twin = ports
            .iter_mut()
            .find(|p| p.proto == *proto && p.host_port == *host_port && p.host_ip.is_none());
        match twin {
            Some(p) if p.container_port == *cport => p.container_ip6 = Some(ip6),
            _ => ports.push(Port {
                proto: *proto,
                host_ip: None,
                host_port: *host_port,
                container_ip: Ipv4Addr::UNSPECIFIED,
                container_ip6: Some(ip6),
                container_port: *cport,
                bridge: String::new(),
                tag: String::new(),
            }),
        }
    }
    ports.sort_by_key(|p| (p.host_ip, p.proto.number(), p.host_port));
    Ok(State {
        networks: networks.into_values().collect(),
        ports,
    })
}

/// `nft -j list table <family> cnm`; None when the table is absent.
fn list_table(netns: Option<&str>, family: u8) -> Result<Option<String>> {
    let fam = family_name(family);
    let out = exec::run(netns, "nft", &["-j", "list", "table", fam, TABLE], "")?;
    if out.success {
        return Ok(Some(out.stdout));
    }
    if out.stderr.contains("No such file or directory") {
        return Ok(None);
    }
    Err(Error::new(
        ErrorCode::Kernel,
        format!(
            "list table {fam} {TABLE} in netns {}: {}",
            ns_label(netns),
            out.stderr.trim()
        ),
    )
    .netns(netns))
}

// ---------------------------------------------------------------------------

pub struct Nftables;

impl FirewallBackend for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn init(&self, netns: Option<&str>) -> Result<()> {
        let v4 = table_version(netns, NFPROTO_IPV4)?;
        let v6 = table_version(netns, NFPROTO_IPV6)?;
        match (v4, v6) {
            (Some(true), Some(true)) => return Ok(()),
            (None, None) => {}
            // An older ruleset, or half of ours: start over with both tables.
            _ => transaction(netns, &[], true)?,
        }
        let out = exec::run(netns, "nft", &["-f", "-"], RULESET)?;
        if out.success {
            return Ok(());
        }
        let current = |family| -> Result<bool> { Ok(table_version(netns, family)? == Some(true)) };
        if current(NFPROTO_IPV4)? && current(NFPROTO_IPV6)? {
            // Lost a race against another init: the tables are there, once.
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::Kernel,
            format!(
                "create tables ip {TABLE} and ip6 {TABLE} in netns {}: nft failed: {}",
                ns_label(netns),
                out.stderr.trim()
            ),
        )
        .netns(netns))
    }

    fn apply(&self, netns: Option<&str>, batch: &Batch) -> Result<()> {
        transaction(netns, &changes(batch), false)
    }

    fn state(&self, netns: Option<&str>) -> Result<State> {
        let json4 = list_table(netns, NFPROTO_IPV4)?;
        let json6 = list_table(netns, NFPROTO_IPV6)?;
        parse_state(json4.as_deref().unwrap_or("{}"), json6.as_deref())
    }

    fn reset(&self, netns: Option<&str>) -> Result<()> {
        transaction(netns, &[], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_ip: Option<&str>) -> Port {
        Port {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: 8080,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_ip6: Some("fd00::2".parse().unwrap()),
            container_port: 80,
            bridge: "br0".into(),
            tag: "ep1".into(),
        }
    }

    #[test]
    fn element_encodings() {
        let c = port_change(&port(None), Op::Add { excl: true });
        assert_eq!(c.set, "ports");
        assert_eq!(c.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(c.data, Data::Value(vec![10, 0, 0, 2, 0, 80, 0, 0]));
        assert_eq!(c.family, NFPROTO_IPV4);
        let c6 = port_change6(&port(None), Op::Add { excl: true }).unwrap();
        assert_eq!((c6.family, c6.set), (NFPROTO_IPV6, "ports"));
        assert_eq!(c6.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let mut want = vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        want.extend_from_slice(&[0, 80, 0, 0]);
        assert_eq!(c6.data, Data::Value(want));
        let v4only = Port {
            container_ip6: None,
            ..port(None)
        };
        assert!(port_change6(&v4only, Op::Add { excl: true }).is_none());
        // a removal clears the IPv6 element of the key whatever it points to
        assert!(port_change6(&v4only, Op::Destroy).is_some());
        let c = port_change(&port(Some("0.0.0.0")), Op::Destroy);
        assert_eq!(c.set, "ports");
        assert!(port_change6(&port(Some("0.0.0.0")), Op::Destroy).is_some());
        let c = port_change(&port(Some("192.0.2.2")), Op::Destroy);
        assert_eq!(c.set, "ports_ip");
        assert_eq!(c.key, [192, 0, 2, 2, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        // an IPv4 host address limits a mapping to IPv4
        assert!(port_change6(&port(Some("192.0.2.2")), Op::Add { excl: true }).is_none());
        assert!(port_change6(&port(Some("192.0.2.2")), Op::Destroy).is_none());
        let c = net_change(NFPROTO_IPV6, "intra", "br2", Op::Destroy);
        assert_eq!(c.family, NFPROTO_IPV6);
        assert_eq!(c.key.len(), 32);
        assert_eq!(&c.key[..4], b"br2\0");
        assert_eq!(&c.key[16..20], b"br2\0");
    }

    #[test]
    fn element_message_layout() {
        let mut w = Writer::default();
        let mut c = net_change(NFPROTO_IPV4, "intra", "br0", Op::Add { excl: false });
        c.data = Data::Verdict(NF_DROP);
        put_element(&mut w, &c, 7);
        let b = w.bytes();
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), (10 << 8) | 12);
        assert_eq!(b[16], NFPROTO_IPV4);
        assert_eq!(b.len() % 4, 0);
    }

    #[test]
    fn batch_order_removals_first() {
        let n = Network {
            bridge: "br0".into(),
            subnet: None,
            subnet6: None,
            masquerade: true,
            icc: false,
            internal: false,
            tag: String::new(),
        };
        let batch = Batch {
            add_networks: vec![n.clone()],
            remove_networks: vec![],
            add_ports: vec![port(None)],
            remove_ports: vec![port(None)],
        };
        let ch = changes(&batch);
        assert_eq!(ch[0].op, Op::Destroy);
        assert_eq!(ch[0].set, "ports");
        let last = ch.last().unwrap();
        assert_eq!(last.op, Op::Add { excl: true });
        assert_eq!(last.family, NFPROTO_IPV6);
        for family in FAMILIES {
            let intra = ch
                .iter()
                .find(|c| c.set == "intra" && c.op != Op::Destroy && c.family == family)
                .unwrap();
            assert_eq!(intra.data, Data::Verdict(NF_DROP));
            assert!(ch
                .iter()
                .any(|c| c.set == "masq" && c.op != Op::Destroy && c.family == family));
        }
    }

    #[test]
    fn parse_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "cnm"}},
          {"set": {"name": "bridges", "elem": ["br0", "br1"]}},
          {"set": {"name": "masq", "elem": ["br0"]}},
          {"set": {"name": "internal", "elem": ["br1"]}},
          {"map": {"name": "intra", "elem": [[{"concat": ["br0", "br0"]}, {"accept": null}], [{"concat": ["br1", "br1"]}, {"drop": null}]]}},
          {"map": {"name": "ports", "elem": [[{"concat": ["udp", 53]}, {"concat": ["10.0.0.3", 5353]}]]}},
          {"map": {"name": "ports_ip", "elem": [[{"concat": ["192.0.2.1", "tcp", 8080]}, {"concat": ["10.0.0.2", 80]}]]}}]}"#;
        let s = parse_state(json, None).unwrap();
        assert_eq!(s.networks.len(), 2);
        assert!(s.networks[0].masquerade && s.networks[0].icc && !s.networks[0].internal);
        assert!(!s.networks[1].masquerade && !s.networks[1].icc && s.networks[1].internal);
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.ports[0].proto, Proto::Udp);
        assert_eq!(s.ports[0].host_ip, None);
        assert_eq!(s.ports[1].host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(s.ports[1].container_port, 80);
        assert_eq!(s.ports[0].container_ip6, None);

        let json6 = r#"{"nftables": [{"table": {"family": "ip6", "name": "cnm"}},
          {"set": {"name": "bridges", "elem": ["br0", "br1", "br2"]}},
          {"map": {"name": "ports", "elem": [[{"concat": ["udp", 53]}, {"concat": ["fd00::3", 5353]}], [{"concat": ["tcp", 9]}, {"concat": ["fd00::9", 9]}]]}}]}"#;
        let s = parse_state(json, Some(json6)).unwrap();
        assert_eq!(s.networks.len(), 3);
        assert!(s.networks[0].masquerade && !s.networks[1].icc);
        assert_eq!(s.ports.len(), 3);
        let udp = s.ports.iter().find(|p| p.proto == Proto::Udp).unwrap();
        assert_eq!(udp.container_ip6, Some("fd00::3".parse().unwrap()));
        let orphan = s.ports.iter().find(|p| p.host_port == 9).unwrap();
        assert!(orphan.container_ip.is_unspecified());
        assert_eq!(orphan.container_ip6, Some("fd00::9".parse().unwrap()));
    }
}

//! Reading our tables back (not the hot path: one `nft -j list table` per
//! family): the JSON nft prints, turned into networks and published ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::firewall::{GatewayMode, Link, Network, Port, Proto, ReadPort, State};

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
    /// DNAT elements: (proto, host address, host port, container address, container port).
    dnat: Vec<(Proto, Option<String>, u16, String, u16)>,
    /// `open_nat` and `open_routed` elements: (routed, container address, proto, port).
    open: Vec<(bool, String, Proto, u16)>,
    /// `allowed` (bridge, interface) pairs.
    allowed: Vec<(String, String)>,
    /// `links` elements: (from, to, proto, port).
    links: Vec<(String, String, Proto, u16)>,
}

impl TableState {
    fn networks(&self) -> BTreeMap<String, Network> {
        let empty = BTreeSet::new();
        let set = |name: &str| self.sets.get(name).unwrap_or(&empty);
        let (bridges, masq, internal) = (set("bridges"), set("masq"), set("internal"));
        let (filtered, routed) = (set("filtered"), set("routed"));
        bridges
            .iter()
            .chain(self.intra.keys())
            .map(|br| {
                let mode = if routed.contains(br) {
                    GatewayMode::Routed
                } else if filtered.contains(br) {
                    GatewayMode::Nat
                } else {
                    GatewayMode::NatUnprotected
                };
                let protect = set("protected").contains(br);
                let trusted: BTreeSet<String> = self
                    .allowed
                    .iter()
                    .filter(|(b, i)| protect && b == br && i != br && i != "lo")
                    .map(|(_, i)| i.clone())
                    .collect();
                Network {
                    bridge: br.clone(),
                    subnets: Vec::new(),
                    subnets6: Vec::new(),
                    masquerade: masq.contains(br),
                    icc: self.intra.get(br).copied().unwrap_or(true),
                    internal: internal.contains(br),
                    tag: String::new(),
                    mode4: mode,
                    mode6: mode,
                    protect,
                    trusted: trusted.into_iter().collect(),
                }
            })
            .map(|n| (n.bridge.clone(), n))
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
                "bridges" | "masq" | "internal" | "filtered" | "routed" | "protected" => {
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
                "allowed" => {
                    let Some(k) = concat(e) else { continue };
                    if let (Some(br), Some(i)) =
                        (k.first().and_then(json_str), k.get(1).and_then(json_str))
                    {
                        out.allowed.push((br, i));
                    }
                }
                "links" => {
                    let Some(k) = concat(e) else { continue };
                    let from = k.first().and_then(Value::as_str);
                    let to = k.get(1).and_then(Value::as_str);
                    let proto = k.get(2).and_then(json_proto);
                    let port = k.get(3).and_then(json_port);
                    if let (Some(from), Some(to), Some(proto), Some(port)) = (from, to, proto, port)
                    {
                        out.links
                            .push((from.to_string(), to.to_string(), proto, port));
                    }
                }
                "open_nat" | "open_routed" => {
                    let Some(k) = concat(e) else { continue };
                    let addr = k.first().and_then(Value::as_str);
                    let proto = k.get(1).and_then(json_proto);
                    let port = k.get(2).and_then(json_port);
                    if let (Some(addr), Some(proto), Some(port)) = (addr, proto, port) {
                        out.open
                            .push((name == "open_routed", addr.to_string(), proto, port));
                    }
                }
                "ports" | "ports_ip" => {
                    let Some(pair) = e.as_array() else { continue };
                    let (Some(k), Some(v)) = (pair.first().and_then(concat), pair.get(1)) else {
                        continue;
                    };
                    let Some(v) = concat(v) else { continue };
                    let (host_ip, rest) = if name == "ports_ip" {
                        (
                            k.first().and_then(Value::as_str).map(str::to_string),
                            k.get(1..).unwrap_or(&[]),
                        )
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
                        out.dnat
                            .push((proto, host_ip, host_port, cip.to_string(), cport));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The ports of one table, one Port per element family: a DNAT element (its
/// open_nat element goes in and out with it in one transaction, so it is not
/// reported apart), or an open_routed one (reported with the container port as
/// its host port, which routed ports do not use).
fn table_ports(t: &TableState, v6: bool) -> Vec<Port> {
    // the tables hold neither bridge nor tag of a port
    let make = |proto, host_ip, host_port, container, container_port, routed| {
        let read = ReadPort {
            proto,
            host_ip,
            host_port,
            container,
            container_port,
            v6,
            routed,
        };
        Port::read_back(read, "", "")
    };
    let mut out: Vec<Port> = t
        .dnat
        .iter()
        .filter_map(|(proto, host, hport, cip, cport)| {
            let host_ip = host.as_deref().and_then(|h| h.parse::<IpAddr>().ok());
            make(*proto, host_ip, *hport, cip, *cport, false)
        })
        .collect();
    for (routed, cip, proto, cport) in &t.open {
        if *routed {
            out.extend(make(*proto, None, *cport, cip, *cport, true));
        }
    }
    out
}

/// Parses `nft -j list table ip cnm` and, when present, `nft -j list table
/// ip6 cnm`. A network is reported as the IPv4 table holds it (masquerade if
/// either table masquerades it), with its IPv6 gateway mode from the IPv6
/// table (which alone reports the bridges the IPv4 one lacks); it is
/// protected when every family in nat mode is (a half-protected one reads
/// as unprotected, for reconcile to make whole). The tables hold no subnets:
/// protection follows the route to the bridge. Ports come one per element
/// family (see `table_ports`).
pub fn parse_state(json4: &str, json6: Option<&str>) -> Result<State> {
    let t4 = parse_table(json4)?;
    let t6 = json6.map(parse_table).transpose()?.unwrap_or_default();
    let mut networks = t4.networks();
    for (br, n6) in t6.networks() {
        match networks.get_mut(&br) {
            Some(n) => {
                n.mode6 = n6.mode6;
                // a family in routed mode has no masquerade element
                n.masquerade = n.masquerade || n6.masquerade;
                let nat4 = n.mode4 == GatewayMode::Nat;
                let nat6 = n6.mode6 == GatewayMode::Nat;
                n.protect = (nat4 || nat6) && (!nat4 || n.protect) && (!nat6 || n6.protect);
                for t in n6.trusted {
                    if !n.trusted.contains(&t) {
                        n.trusted.push(t);
                    }
                }
                n.trusted.sort();
            }
            None => {
                networks.insert(br, n6);
            }
        }
    }
    let mut ports = table_ports(&t4, false);
    ports.extend(table_ports(&t6, true));
    crate::firewall::sort_ports(&mut ports);
    // the tables hold neither bridge nor tag of a link
    let mut links: Vec<Link> = t4
        .links
        .iter()
        .chain(&t6.links)
        .filter_map(|(from, to, proto, port)| {
            Some(Link {
                proto: *proto,
                from: from.parse().ok()?,
                to: to.parse().ok()?,
                port: *port,
                bridge: String::new(),
                tag: String::new(),
            })
        })
        .collect();
    links.sort();
    Ok(State {
        networks: networks.into_values().collect(),
        ports,
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // As `nft -j list table` prints them (nft 1.0.6).
    const JSON4: &str = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "cnm"}},
      {"set": {"name": "bridges", "elem": ["br0", "br1", "br2"]}},
      {"set": {"name": "masq", "elem": ["br0"]}},
      {"set": {"name": "internal", "elem": ["br1"]}},
      {"set": {"name": "filtered", "elem": ["br0", "br1", "br2"]}},
      {"set": {"name": "routed", "elem": ["br2"]}},
      {"set": {"name": "protected", "elem": ["br0"]}},
      {"set": {"name": "allowed", "elem": [{"concat": ["br0", "lo"]}, {"concat": ["br0", "eth9"]}]}},
      {"set": {"name": "open_nat", "elem": [{"concat": ["10.0.0.3", "udp", 53]}, {"concat": ["10.0.0.2", "tcp", 80]}]}},
      {"set": {"name": "open_routed", "elem": [{"concat": ["10.2.0.2", "tcp", 443]}]}},
      {"map": {"name": "intra", "elem": [[{"concat": ["br0", "br0"]}, {"accept": null}], [{"concat": ["br1", "br1"]}, {"drop": null}], [{"concat": ["br2", "br2"]}, {"accept": null}]]}},
      {"map": {"name": "ports", "elem": [[{"concat": ["udp", 53]}, {"concat": ["10.0.0.3", 5353]}]]}},
      {"map": {"name": "ports_ip", "elem": [[{"concat": ["192.0.2.1", "tcp", 8080]}, {"concat": ["10.0.0.2", 80]}]]}}]}"#;

    const JSON6: &str = r#"{"nftables": [{"table": {"family": "ip6", "name": "cnm"}},
      {"set": {"name": "bridges", "elem": ["br0", "br1", "br2", "br3"]}},
      {"set": {"name": "filtered", "elem": ["br0", "br1", "br2"]}},
      {"set": {"name": "protected", "elem": ["br0"]}},
      {"set": {"name": "allowed", "elem": [{"concat": ["br0", "lo"]}]}},
      {"map": {"name": "ports", "elem": [[{"concat": ["udp", 53]}, {"concat": ["fd00::3", 5353]}]]}},
      {"map": {"name": "ports_ip", "elem": [[{"concat": ["::1", "tcp", 9]}, {"concat": ["fd00::9", 9]}]]}}]}"#;

    #[test]
    fn parse_nft_json() {
        let s = parse_state(JSON4, None).unwrap();
        assert_eq!(s.networks.len(), 3);
        let n0 = &s.networks[0];
        assert!(n0.masquerade && n0.icc && !n0.internal && n0.protect);
        assert_eq!(n0.mode4, GatewayMode::Nat);
        assert!(n0.subnets.is_empty(), "the tables hold no subnets");
        assert_eq!(n0.trusted, ["eth9"]);
        let n1 = &s.networks[1];
        assert!(!n1.masquerade && !n1.icc && n1.internal && !n1.protect);
        assert_eq!(s.networks[2].mode4, GatewayMode::Routed);
        assert_eq!(s.ports.len(), 3);
        let udp = s.ports.iter().find(|p| p.proto == Proto::Udp).unwrap();
        assert_eq!((udp.host_ip, udp.host_port), (None, 53));
        assert_eq!(udp.container_ip6, None);
        let routed = s.ports.iter().find(|p| p.routed4).unwrap();
        assert_eq!((routed.host_port, routed.container_port), (443, 443));
        assert_eq!(routed.container_ip, Some("10.2.0.2".parse().unwrap()));
        let pinned = s.ports.iter().find(|p| p.host_ip.is_some()).unwrap();
        assert_eq!(pinned.host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(pinned.container_port, 80);

        // IPv6: a port per element family; the IPv6 table's own view of the
        // networks (br3 is IPv6-only, unprotected)
        let s = parse_state(JSON4, Some(JSON6)).unwrap();
        assert_eq!(s.networks.len(), 4);
        let n0 = &s.networks[0];
        assert!(n0.protect, "protected in both families");
        assert_eq!(n0.trusted, ["eth9"]);
        // protected in IPv4 only, while IPv6 is in nat mode too: half, so not
        let half = JSON6.replace(r#""elem": ["br0"]"#, r#""elem": ["br9"]"#);
        assert!(!parse_state(JSON4, Some(&half)).unwrap().networks[0].protect);
        assert_eq!(s.networks[3].mode6, GatewayMode::NatUnprotected);
        assert!(s.networks[3].subnets.is_empty());
        assert_eq!(s.ports.len(), 5);
        let udp: Vec<_> = s.ports.iter().filter(|p| p.proto == Proto::Udp).collect();
        assert_eq!(udp.len(), 2);
        assert!(udp.iter().any(
            |p| p.container_ip6 == Some("fd00::3".parse().unwrap()) && p.container_ip.is_none()
        ));
        let local = s.ports.iter().find(|p| p.host_port == 9).unwrap();
        assert_eq!(local.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(local.container_ip, None);
        assert_eq!(local.container_ip6, Some("fd00::9".parse().unwrap()));
    }
}

//! Reading our tables back (not the hot path: one `nft -j list table` per
//! family): the JSON nft prints, turned into networks and published ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::firewall::{Network, Port, Proto, State};

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

#[cfg(test)]
mod tests {
    use super::*;

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

//! A DNS query from inside a netns (to the resolver its resolv.conf names,
//! e.g. the embedded DNS on 127.0.0.11), over UDP.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::error::{ns_label, Error, ErrorCode, Result};
use crate::netns::on_thread;

fn query(server: SocketAddr, name: &Name, v6: bool, timeout: Duration) -> Result<Vec<IpAddr>> {
    let ctx = || format!("look up {name} at {server}");
    let io = |e: std::io::Error| Error::from_io(&e, ctx());
    let mut m = Message::query();
    m.metadata.id = (std::process::id() as u16) ^ 0x5a5a;
    m.metadata.recursion_desired = true;
    let t = if v6 { RecordType::AAAA } else { RecordType::A };
    m.add_query(Query::query(name.clone(), t));
    let bytes = m
        .to_vec()
        .map_err(|e| Error::new(ErrorCode::InvalidArgument, format!("{}: {e}", ctx())))?;
    let local = if server.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.send_to(&bytes, server).map_err(io)?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(io)?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if from != server || reply.metadata.id != m.metadata.id {
            continue;
        }
        return Ok(reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect());
    }
}

/// The IPv4 (or, with `v6`, IPv6) addresses `name` has at `server`, asked
/// from inside `netns`; empty when it has none.
pub async fn lookup(
    netns: Option<&str>,
    server: SocketAddr,
    name: &str,
    v6: bool,
    timeout: Duration,
) -> Result<Vec<IpAddr>> {
    let name = Name::from_ascii(name).map_err(|e| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("name {name:?} is not a DNS name: {e}"),
        )
    })?;
    let label = ns_label(netns).to_string();
    on_thread(netns, move || {
        query(server, &name, v6, timeout).map_err(|e| e.context(format!("in netns {label}")))
    })
    .await
    .map_err(|e| e.netns(netns))
}

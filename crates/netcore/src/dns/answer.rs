//! One query, answered from the name table or handed to the forwarder. Pure:
//! bytes in, bytes (or "forward it") out, so that every case is unit-tested.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::fast::{self, rotate};
use super::records::{normalize, Records};

/// Docker's embedded DNS answers with this TTL.
pub const TTL: u32 = 600;
/// The largest UDP answer we send when the client gave no EDNS size.
const UDP_MIN: usize = 512;
/// The largest we honour when it did.
const UDP_MAX: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// send these bytes back
    Local(Vec<u8>),
    /// not a name of the sandbox's networks: ask the upstream servers
    Forward,
    /// not a query (a response, or too short to answer): say nothing
    Drop,
}

/// Answers `query` for `sandbox`. `udp`: the answer must fit the client's
/// datagram size (else it is truncated and the client retries over TCP).
/// `turn` rotates several addresses of one name (Docker's round robin).
pub fn answer(records: &Records, sandbox: &str, query: &[u8], udp: bool, turn: usize) -> Reply {
    if let Some(bytes) = fast::answer(records, sandbox, query, udp, turn) {
        return Reply::Local(bytes);
    }
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return format_error(query),
    };
    if msg.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    if msg.metadata.op_code != OpCode::Query {
        return Reply::Local(error_bytes(&msg, ResponseCode::NotImp));
    }
    let [q] = msg.queries.as_slice() else {
        return Reply::Local(error_bytes(&msg, ResponseCode::FormErr));
    };
    let qname = q.name();
    let name = normalize(&qname.to_ascii());
    let answers: Vec<RData> = match q.query_type() {
        RecordType::PTR => match reverse_ip(qname).and_then(|ip| records.reverse(sandbox, ip)) {
            Some(ptr) => match Name::from_ascii(format!("{ptr}.")) {
                Ok(n) => vec![RData::PTR(PTR(n))],
                Err(_) => return Reply::Forward,
            },
            None => return Reply::Forward,
        },
        qtype => {
            let Some(found) = records.lookup(sandbox, &name) else {
                return Reply::Forward;
            };
            // a known name without that kind of record: NOERROR and no answer, as
            // Docker does, so that the question never leaks to the upstream servers
            match qtype {
                RecordType::A => rotate(found.v4, turn)
                    .into_iter()
                    .map(|ip| RData::A(A(ip)))
                    .collect(),
                RecordType::AAAA => rotate(found.v6, turn)
                    .into_iter()
                    .map(|ip| RData::AAAA(AAAA(ip)))
                    .collect(),
                _ => Vec::new(),
            }
        }
    };
    let mut resp = response_to(&msg, ResponseCode::NoError);
    resp.metadata.authoritative = true;
    resp.queries = msg.queries.clone();
    resp.answers = answers
        .into_iter()
        .map(|rd| Record::from_rdata(qname.clone(), TTL, rd))
        .collect();
    let Ok(bytes) = resp.to_vec() else {
        return Reply::Local(error_bytes(&msg, ResponseCode::ServFail));
    };
    let limit = if udp {
        udp_limit(&msg)
    } else {
        usize::from(u16::MAX)
    };
    if bytes.len() <= limit {
        return Reply::Local(bytes);
    }
    // too long for the client's datagram: no answers and TC, it asks again over TCP
    resp.answers.clear();
    resp.metadata.truncation = true;
    Reply::Local(
        resp.to_vec()
            .unwrap_or_else(|_| error_bytes(&msg, ResponseCode::ServFail)),
    )
}

/// SERVFAIL (no upstream answered) or NXDOMAIN (none to ask) for `query`.
pub fn failure(query: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let mut resp = response_to(&msg, code);
    resp.queries = msg.queries.clone();
    resp.to_vec().ok()
}

/// The client's datagram size: 512 without EDNS, its own (up to 4096) with it.
fn udp_limit(msg: &Message) -> usize {
    match &msg.edns {
        Some(e) => usize::from(e.max_payload()).clamp(UDP_MIN, UDP_MAX),
        None => UDP_MIN,
    }
}

fn response_to(msg: &Message, code: ResponseCode) -> Message {
    let mut resp = Message::response(msg.metadata.id, msg.metadata.op_code);
    resp.metadata = Metadata::response_from_request(&msg.metadata);
    resp.metadata.recursion_available = true;
    resp.metadata.response_code = code;
    if msg.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(UDP_MAX as u16);
        resp.set_edns(e);
    }
    resp
}

fn error_bytes(msg: &Message, code: ResponseCode) -> Vec<u8> {
    response_to(msg, code).to_vec().unwrap_or_default()
}

/// A query we cannot parse still gets FORMERR when its header is whole.
fn format_error(query: &[u8]) -> Reply {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Reply::Drop;
    }
    let mut out = query[..12].to_vec();
    out[2] = 0x80 | (query[2] & 0x79); // QR, keep opcode and RD
    out[3] = 0x01; // FORMERR
    out[4..12].fill(0);
    Reply::Local(out)
}

/// The address a reverse name (in-addr.arpa / ip6.arpa) stands for, when it names one whole address.
fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    let whole = match net.addr() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    (net.prefix_len() == whole).then(|| net.addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::EndpointNames;
    use hickory_proto::op::Query;

    fn table() -> Records {
        let mut r = Records::default();
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            r.upsert(EndpointNames {
                id: format!("{i}"),
                network: "net".into(),
                sandbox: Some(n.to_string()),
                names: vec![n.to_string(), "web".into()],
                ptr: format!("{n}.net"),
                ipv4: Some(format!("10.0.0.{}", i + 2).parse().unwrap()),
                ipv6: (i == 0).then(|| "fd00::2".parse().unwrap()),
            });
        }
        r
    }

    fn ask(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn local(r: Reply) -> Message {
        match r {
            Reply::Local(b) => Message::from_vec(&b).unwrap(),
            other => panic!("expected a local answer, got {other:?}"),
        }
    }

    #[test]
    fn names_of_the_sandbox_networks_answer_with_rotation() {
        let r = table();
        let m = local(answer(&r, "a", &ask("WEB.", RecordType::A, false), true, 1));
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.answers.len(), 3);
        assert_eq!(m.answers[0].data, RData::A(A("10.0.0.3".parse().unwrap())));
        let m = local(answer(&r, "b", &ask("a", RecordType::AAAA, false), true, 0));
        assert_eq!(
            m.answers[0].data,
            RData::AAAA(AAAA("fd00::2".parse().unwrap()))
        );
        // known name, no such record: NOERROR and empty, never forwarded
        let m = local(answer(&r, "a", &ask("b", RecordType::AAAA, false), true, 0));
        assert_eq!(
            (m.metadata.response_code, m.answers.len()),
            (ResponseCode::NoError, 0)
        );
        assert_eq!(
            answer(&r, "a", &ask("example.org", RecordType::A, false), true, 0),
            Reply::Forward
        );
        assert_eq!(
            answer(&r, "zz", &ask("a", RecordType::A, false), true, 0),
            Reply::Forward
        );
    }

    #[test]
    fn reverse_lookups_answer_the_network_name() {
        let r = table();
        let m = local(answer(
            &r,
            "a",
            &ask("3.0.0.10.in-addr.arpa.", RecordType::PTR, false),
            true,
            0,
        ));
        assert_eq!(
            m.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("b.net.").unwrap()))
        );
        assert_eq!(
            answer(
                &r,
                "a",
                &ask("9.0.0.10.in-addr.arpa.", RecordType::PTR, false),
                true,
                0
            ),
            Reply::Forward
        );
    }

    #[test]
    fn long_answers_are_truncated_over_udp_only() {
        let mut r = Records::default();
        for i in 0..60 {
            r.upsert(EndpointNames {
                id: format!("{i}"),
                network: "n".into(),
                sandbox: Some(format!("s{i}")),
                names: vec!["many".into()],
                ptr: String::new(),
                ipv4: Some(format!("10.0.1.{}", i + 2).parse().unwrap()),
                ipv6: None,
            });
        }
        let m = local(answer(
            &r,
            "s0",
            &ask("many", RecordType::A, false),
            true,
            0,
        ));
        assert!(m.metadata.truncation && m.answers.is_empty());
        let m = local(answer(
            &r,
            "s0",
            &ask("many", RecordType::A, false),
            false,
            0,
        ));
        assert_eq!(m.answers.len(), 60);
        // EDNS lets a bigger datagram through
        let m = local(answer(&r, "s0", &ask("many", RecordType::A, true), true, 0));
        assert_eq!((m.answers.len(), m.edns.is_some()), (60, true));
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        assert_eq!(answer(&table(), "a", &[1, 2], true, 0), Reply::Drop);
        let mut q = ask("a", RecordType::A, false);
        q.truncate(14);
        let m = local(answer(&table(), "a", &q, true, 0));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        let f = failure(&ask("x", RecordType::A, false), ResponseCode::ServFail).unwrap();
        assert_eq!(
            Message::from_vec(&f).unwrap().metadata.response_code,
            ResponseCode::ServFail
        );
    }
}

//! The common query answered without a full parse: one A or AAAA question for
//! a name of the asker's networks, with or without an EDNS OPT record. The
//! answer is the query's own question followed by records that point back at
//! it. Anything else (PTR, unknown names, other shapes, long answers) returns
//! None and takes the general path of `answer.rs`, which uses hickory-proto.

use super::answer::TTL;
use super::records::Records;

const HEADER: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// the UDP size we announce in our OPT record
const OUR_UDP: u16 = 4096;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// The lowercase dotted name starting at `HEADER` and the index just past it;
/// None for compression pointers (never in a question we answer here) or bad lengths.
fn question_name(q: &[u8], out: &mut String) -> Option<usize> {
    let mut i = HEADER;
    loop {
        let len = usize::from(*q.get(i)?);
        if len == 0 {
            return Some(i + 1);
        }
        if len > 63 || out.len() + len > 253 {
            return None;
        }
        let label = q.get(i + 1..i + 1 + len)?;
        if !out.is_empty() {
            out.push('.');
        }
        for &c in label {
            if !c.is_ascii_graphic() || c == b'.' {
                return None;
            }
            out.push(char::from(c.to_ascii_lowercase()));
        }
        i += 1 + len;
    }
}

/// The client's UDP size from a lone, well-formed OPT record at `at` (the end of the question).
fn opt_size(q: &[u8], at: usize) -> Option<u16> {
    // root name, TYPE OPT, CLASS = size, TTL, RDLEN, then exactly RDLEN bytes to the end
    if *q.get(at)? != 0 || u16_at(q, at + 1)? != TYPE_OPT {
        return None;
    }
    let rdlen = usize::from(u16_at(q, at + 9)?);
    (at + 11 + rdlen == q.len())
        .then(|| u16_at(q, at + 3))
        .flatten()
}

pub fn answer(
    records: &Records,
    sandbox: &str,
    q: &[u8],
    udp: bool,
    turn: usize,
) -> Option<Vec<u8>> {
    // a standard query (QR 0, opcode 0), one question, nothing else but an OPT record
    if q.len() < HEADER + 5 || q[2] & 0xf8 != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (u16_at(q, 4)?, u16_at(q, 6)?, u16_at(q, 8)?, u16_at(q, 10)?);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut name = String::with_capacity(64);
    let end = question_name(q, &mut name)?;
    let qtype = u16_at(q, end)?;
    if u16_at(q, end + 2)? != CLASS_IN || (qtype != TYPE_A && qtype != TYPE_AAAA) {
        return None;
    }
    let qend = end + 4;
    let client_udp = if ar == 1 {
        Some(opt_size(q, qend)?)
    } else if qend == q.len() {
        None
    } else {
        return None;
    };
    let found = records.lookup(sandbox, &name)?;
    let rdata: Vec<Vec<u8>> = if qtype == TYPE_A {
        rotate(found.v4.iter().map(|a| a.octets().to_vec()).collect(), turn)
    } else {
        rotate(found.v6.iter().map(|a| a.octets().to_vec()).collect(), turn)
    };
    let size = qend
        + rdata.iter().map(|r| 12 + r.len()).sum::<usize>()
        + if client_udp.is_some() { 11 } else { 0 };
    let limit = if udp {
        usize::from(client_udp.unwrap_or(512)).clamp(512, 4096)
    } else {
        usize::from(u16::MAX)
    };
    if size > limit {
        return None; // the general path truncates
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&q[..2]);
    out.push(0x84 | (q[2] & 0x01)); // QR, AA, RD as asked
    out.push(0x80); // RA, NOERROR
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u16::from(client_udp.is_some()).to_be_bytes());
    out.extend_from_slice(&q[HEADER..qend]);
    for r in &rdata {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&u16::try_from(r.len()).ok()?.to_be_bytes());
        out.extend_from_slice(r);
    }
    if client_udp.is_some() {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&OUR_UDP.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    Some(out)
}

pub(super) fn rotate<T>(mut v: Vec<T>, turn: usize) -> Vec<T> {
    if v.len() > 1 {
        let n = turn % v.len();
        v.rotate_left(n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::EndpointNames;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    fn table() -> Records {
        let mut r = Records::default();
        for i in 0..3u8 {
            r.upsert(EndpointNames {
                id: format!("{i}"),
                network: "n".into(),
                sandbox: Some(format!("s{i}")),
                names: vec![format!("s{i}"), "web".into()],
                ptr: String::new(),
                ipv4: Some(std::net::Ipv4Addr::new(10, 0, 0, 2 + i)),
                ipv6: Some(format!("fd00::{}", 2 + i).parse().unwrap()),
            });
        }
        r
    }

    fn ask(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn the_fast_answer_is_what_the_full_parser_reads() {
        let r = table();
        for (t, edns) in [(RecordType::A, false), (RecordType::AAAA, true)] {
            let q = ask("WeB.", t, edns);
            let bytes = answer(&r, "s0", &q, true, 1).expect("fast path");
            let m = Message::from_vec(&bytes).unwrap();
            let qm = Message::from_vec(&q).unwrap();
            assert_eq!(m.metadata.id, qm.metadata.id);
            assert!(
                m.metadata.authoritative
                    && m.metadata.recursion_desired
                    && m.metadata.recursion_available
            );
            assert_eq!(m.queries, qm.queries);
            assert_eq!(m.answers.len(), 3);
            assert_eq!(m.answers[0].ttl, TTL);
            assert_eq!(m.answers[0].record_type(), t);
            assert_eq!(m.edns.is_some(), edns);
        }
    }

    #[test]
    fn everything_else_takes_the_general_path() {
        let r = table();
        assert!(answer(&r, "s0", &ask("nope", RecordType::A, false), true, 0).is_none());
        assert!(answer(&r, "s0", &ask("web", RecordType::MX, false), true, 0).is_none());
        assert!(answer(
            &r,
            "s0",
            &ask("2.0.0.10.in-addr.arpa", RecordType::PTR, false),
            true,
            0
        )
        .is_none());
        assert!(answer(&r, "other", &ask("web", RecordType::A, false), true, 0).is_none());
        let mut resp = ask("web", RecordType::A, false);
        resp[2] |= 0x80;
        assert!(
            answer(&r, "s0", &resp, true, 0).is_none(),
            "a response is not a query"
        );
        let mut trailing = ask("web", RecordType::A, false);
        trailing.push(0);
        assert!(answer(&r, "s0", &trailing, true, 0).is_none());
    }
}

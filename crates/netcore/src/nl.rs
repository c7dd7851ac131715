//! Netlink request plumbing shared by link, addr and route: submit a message
//! now, collect its replies later, so independent requests stay in flight
//! together on one socket.

use std::future::Future;

use futures::StreamExt;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::Handle;

/// Flags of a create request (`ip link add`, `ip addr add`, `ip route add`).
pub const CREATE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
/// Create and echo the created object back (kernel >= 6.3 for links).
pub const CREATE_ECHO: u16 = CREATE | NLM_F_ECHO;
/// Plain flags for set and delete: current kernels reject RTM_DELLINK that
/// carries NLM_F_CREATE|NLM_F_EXCL.
pub const ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// Create or replace (`ip route replace`, `bridge fdb replace`).
pub const REPLACE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
/// Single-object get.
pub const GET: u16 = NLM_F_REQUEST;
/// Dump.
pub const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

/// A failed request: the positive errno the kernel answered with, ECONNRESET
/// when the connection is gone, or ENOBUFS when its answer was lost to a full
/// receive buffer (the request may or may not have been carried out).
pub type Errno = i32;

/// Submits `msg` immediately (requests on one handle reach the kernel in the
/// order of these calls) and returns a future of every reply payload.
pub fn send(
    handle: &Handle,
    msg: RouteNetlinkMessage,
    flags: u16,
) -> impl Future<Output = Result<Vec<RouteNetlinkMessage>, Errno>> + Send + 'static {
    let mut handle = handle.clone();
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = flags;
    let submitted = handle.request(req);
    async move {
        let mut replies = submitted.map_err(|_| libc::ECONNRESET)?;
        let mut out = Vec::new();
        // the connection forwards ACKs and DONEs: a request always gets at least
        // one message, and a stream without any was cut off by an overrun
        let mut answered = false;
        while let Some(reply) = replies.next().await {
            answered = true;
            match reply.payload {
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                NetlinkPayload::Error(err) if err.code.is_some() => {
                    return Err(err.raw_code().abs());
                }
                _ => {}
            }
        }
        if answered {
            Ok(out)
        } else {
            Err(libc::ENOBUFS)
        }
    }
}

/// A dump request. A netlink socket runs one dump at a time and answers
/// EBUSY to a second one, so concurrent dumps on a shared handle retry.
pub async fn dump(
    handle: &Handle,
    msg: RouteNetlinkMessage,
) -> Result<Vec<RouteNetlinkMessage>, Errno> {
    let mut tries = 0;
    loop {
        match send(handle, msg.clone(), DUMP).await {
            Err(libc::EBUSY) if tries < 200 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_micros(500)).await;
            }
            other => return other,
        }
    }
}

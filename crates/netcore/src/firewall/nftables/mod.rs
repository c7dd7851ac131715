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
//! `ruleset.rs` holds the base ruleset, `encode.rs` the element messages,
//! `state.rs` reads the tables back; this file is the backend: the socket of
//! each netns and the transactions sent over it.

mod encode;
mod ruleset;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::nfnl::{self, Writer};
use super::{exec, Batch, FirewallBackend, State};
use crate::error::{ns_label, Error, ErrorCode, Result};
use encode::{changes, put_destroy_table, put_element, put_get_table, Change};
use ruleset::{family_name, FAMILIES, NFPROTO_IPV4, NFPROTO_IPV6, VERSION_TAG};
pub use ruleset::{RULESET, TABLE};
pub use state::parse_state;

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

/// Sends `changes` (or the deletion of both tables) as one transaction, and
/// waits for the kernel to say it committed it (see `nfnl::Replies::batch_outcome`).
fn transaction(netns: Option<&str>, changes: &[Change], destroy_tables: bool) -> Result<()> {
    let destroys = if destroy_tables { FAMILIES.len() } else { 0 };
    let count = (changes.len() + destroys) as u32;
    if count == 0 {
        return Ok(());
    }
    let sock = socket(netns)?;
    let mut sock = lock(&sock);
    let first = sock.next_seq(count + 2);
    let last = first.wrapping_add(count + 1);
    let mut w = Writer::default();
    w.batch_begin(first);
    let mut seq = first;
    let mut message = 0;
    for c in changes {
        seq = seq.wrapping_add(1);
        message = put_element(&mut w, c, seq);
    }
    for family in FAMILIES.iter().take(destroys) {
        seq = seq.wrapping_add(1);
        message = put_destroy_table(&mut w, *family, seq);
    }
    // its ack is the proof of the batch on kernels that ack no batch end
    w.request_ack(message);
    w.batch_end(last);
    let ctx = format!("nftables transaction in netns {}", ns_label(netns));
    let replies = sock
        .exchange(w.bytes(), first..=last, last)
        .map_err(|e| Error::from_io(&e, &ctx).netns(netns))?;
    let (seq, errno) = match replies.batch_outcome(first, last) {
        Ok(()) => return Ok(()),
        Err(nfnl::BatchError::Refused { seq, errno }) => (seq, errno),
        Err(nfnl::BatchError::Unacknowledged) => {
            return Err(Error::new(
                ErrorCode::Kernel,
                format!(
                    "{ctx}: the kernel did not acknowledge the commit of {count} changes; \
                     whether they were applied is unknown"
                ),
            )
            .netns(netns))
        }
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

/// None when the table is absent, Some(true) when it carries the current ruleset.
fn table_version(netns: Option<&str>, family: u8) -> Result<Option<bool>> {
    let sock = socket(netns)?;
    let mut sock = lock(&sock);
    let seq = sock.next_seq(1);
    let mut w = Writer::default();
    put_get_table(&mut w, family, seq);
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
        None if !replies.acked(seq) => Err(Error::new(
            ErrorCode::Kernel,
            format!("{ctx}: the kernel did not answer"),
        )
        .netns(netns)),
        None => Ok(Some(replies.messages.iter().any(|(_, _, payload)| {
            payload.windows(VERSION_TAG.len()).any(|w| w == VERSION_TAG)
        }))),
    }
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
        parse_state(json4.as_deref().unwrap_or("{}"), json6.as_deref()).map_err(|e| {
            e.context(format!(
                "read tables ip {TABLE} and ip6 {TABLE} in netns {}",
                ns_label(netns)
            ))
        })
    }

    fn reset(&self, netns: Option<&str>) -> Result<()> {
        transaction(netns, &[], true)
    }
}

//! The nftables backend: `table ip cnm` and its IPv6 twin `table ip6 cnm`
//! with a fixed base ruleset, created once per netns by `init` (one
//! transaction of tables, chains, sets and rules), changed afterwards only by
//! adding and removing set/map elements in one transaction (spanning both
//! tables), and read back by dumping the elements; all of it nfnetlink over
//! a NETLINK_NETFILTER socket that was opened inside the netns. No program
//! is spawned (`nft` need not be installed) and no rule is touched on the hot
//! path, so the cost of a change does not grow with the number of networks
//! or ports.
//!
//! Every network is an element of the sets of both tables, so isolation,
//! internal networks and icc hold for IPv4 and IPv6 alike; a published port
//! is an element of the IPv4 maps, and of the IPv6 `ports` map when it has a
//! container IPv6 address and no specific IPv4 host address.
//!
//! `ruleset.rs` holds the base ruleset (`ruleset.nft` in nft's language),
//! `expr.rs` its rule expressions, `encode.rs` the element messages,
//! `state.rs` turns elements back into networks and ports; this file is the backend: the socket of
//! each netns and the transactions sent over it.

mod encode;
mod expr;
mod ruleset;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::nfnl::{self, Writer};
use super::{Batch, FirewallBackend, State};
use crate::error::{ns_label, Error, ErrorCode, Result};
use encode::{
    changes, parse_elements, put_destroy_table, put_element, put_get_elements, put_get_rules,
    put_get_table, Change,
};
use ruleset::{family_name, Program, FAMILIES, NFPROTO_IPV4, NFPROTO_IPV6, SETS, VERSION_TAG};
pub use ruleset::{RULESET, TABLE};
use state::{merge_state, table_state, Elements, TableState};

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

/// How a batch went, message by message.
enum Outcome {
    Committed,
    /// The kernel refused the message at this index (None: the commit).
    Refused(Option<usize>, i32),
    Unacknowledged,
}

/// Sends `count` messages written by `put(writer, index, seq)` as one
/// nf_tables transaction, and waits for the kernel to say whether it
/// committed it (see `nfnl::Replies::batch_outcome`).
fn batch(
    netns: Option<&str>,
    ctx: &str,
    count: usize,
    put: impl Fn(&mut Writer, usize, u32) -> usize,
) -> Result<Outcome> {
    if count == 0 {
        return Ok(Outcome::Committed);
    }
    let sock = socket(netns)?;
    let mut sock = lock(&sock);
    let n = count as u32;
    let first = sock.next_seq(n + 2);
    let last = first.wrapping_add(n + 1);
    let mut w = Writer::default();
    w.batch_begin(first);
    let mut message = 0;
    for i in 0..count {
        message = put(&mut w, i, first.wrapping_add(i as u32 + 1));
    }
    // its ack is the proof of the batch on kernels that ack no batch end
    w.request_ack(message);
    w.batch_end(last);
    let replies = sock
        .exchange(w.bytes(), first..=last, last)
        .map_err(|e| Error::from_io(&e, ctx).netns(netns))?;
    Ok(match replies.batch_outcome(first, last) {
        Ok(()) => Outcome::Committed,
        Err(nfnl::BatchError::Refused { seq, errno }) => {
            let index = seq.wrapping_sub(first).wrapping_sub(1) as usize;
            Outcome::Refused((index < count).then_some(index), errno)
        }
        Err(nfnl::BatchError::Unacknowledged) => Outcome::Unacknowledged,
    })
}

fn unacknowledged(netns: Option<&str>, ctx: &str, count: usize) -> Error {
    Error::new(
        ErrorCode::Kernel,
        format!(
            "{ctx}: the kernel did not acknowledge the commit of {count} changes; \
             whether they were applied is unknown"
        ),
    )
    .netns(netns)
}

/// Sends `changes` (or the deletion of both tables) as one transaction.
fn transaction(netns: Option<&str>, changes: &[Change], destroy_tables: bool) -> Result<()> {
    let destroys = if destroy_tables { FAMILIES.len() } else { 0 };
    let count = changes.len() + destroys;
    let ctx = format!("nftables transaction in netns {}", ns_label(netns));
    let put = |w: &mut Writer, i: usize, seq: u32| match changes.get(i) {
        Some(c) => put_element(w, c, seq),
        None => put_destroy_table(w, FAMILIES[i - changes.len()], seq),
    };
    let (index, errno) = match batch(netns, &ctx, count, put)? {
        Outcome::Committed => return Ok(()),
        Outcome::Unacknowledged => return Err(unacknowledged(netns, &ctx, count)),
        Outcome::Refused(index, errno) => (index, errno),
    };
    let change = index.and_then(|i| changes.get(i));
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

/// Creates both tables with their sets, chains and rules in one transaction:
/// all of it or nothing (a table that exists already fails it whole).
fn create_tables(netns: Option<&str>) -> Result<Outcome> {
    let programs = FAMILIES.map(Program::new);
    let count = programs.iter().map(Program::len).sum();
    let locate = |mut i: usize| {
        for p in &programs {
            if i < p.len() {
                return (p, i);
            }
            i -= p.len();
        }
        (&programs[0], 0)
    };
    let ctx = format!(
        "create tables ip {TABLE} and ip6 {TABLE} in netns {}",
        ns_label(netns)
    );
    match batch(netns, &ctx, count, |w, i, seq| {
        let (p, i) = locate(i);
        p.put(w, i, seq)
    })? {
        Outcome::Refused(Some(i), errno) if errno != libc::EEXIST => {
            let (p, i) = locate(i);
            Err(kernel_error(
                errno,
                format_args!("{ctx}: {}", p.describe(i)),
                netns,
            ))
        }
        Outcome::Unacknowledged => Err(unacknowledged(netns, &ctx, count)),
        outcome => Ok(outcome),
    }
}

/// Sends the one request `put` writes (with the seq it is given) and collects
/// what the kernel answered; `ctx` names it for errors.
fn request(
    netns: Option<&str>,
    ctx: &str,
    put: impl FnOnce(&mut Writer, u32),
) -> Result<(u32, nfnl::Replies)> {
    let sock = socket(netns)?;
    let mut sock = lock(&sock);
    let seq = sock.next_seq(1);
    let mut w = Writer::default();
    put(&mut w, seq);
    let replies = sock
        .exchange(w.bytes(), seq..=seq, seq)
        .map_err(|e| Error::from_io(&e, ctx).netns(netns))?;
    Ok((seq, replies))
}

/// None when the table is absent, Some(true) when it carries the current ruleset.
fn table_version(netns: Option<&str>, family: u8) -> Result<Option<bool>> {
    let ctx = format!(
        "look up table {} {TABLE} in netns {}",
        family_name(family),
        ns_label(netns)
    );
    let (seq, replies) = request(netns, &ctx, |w, seq| put_get_table(w, family, seq))?;
    match replies.errors.first() {
        Some(&(_, libc::ENOENT)) => Ok(None),
        Some(&(_, errno)) => Err(kernel_error(errno, ctx, netns)),
        None if !replies.acked(seq) => Err(Error::new(
            ErrorCode::Kernel,
            format!("{ctx}: the kernel did not answer"),
        )
        .netns(netns)),
        None => Ok(Some(replies.messages.iter().any(|(_, _, payload)| {
            payload
                .windows(VERSION_TAG.len())
                .any(|w| w == VERSION_TAG.as_bytes())
        }))),
    }
}

/// How many rules our table of `family` holds; None when it is absent.
fn rule_count(netns: Option<&str>, family: u8) -> Result<Option<usize>> {
    let ctx = format!(
        "read the rules of table {} {TABLE} in netns {}",
        family_name(family),
        ns_label(netns)
    );
    let (seq, replies) = request(netns, &ctx, |w, seq| put_get_rules(w, family, seq))?;
    match replies.errors.first() {
        Some(&(_, libc::ENOENT)) => Ok(None),
        Some(&(_, errno)) => Err(kernel_error(errno, ctx, netns)),
        None if !replies.dumped.contains(&seq) => Err(Error::new(
            ErrorCode::Kernel,
            format!("{ctx}: the kernel did not finish the dump"),
        )
        .netns(netns)),
        None => Ok(Some(replies.messages.len())),
    }
}

/// Whether both tables are this version's with every rule of the base
/// ruleset: rules are never added or removed after `init`, so a count
/// that differs means someone flushed or edited a chain (the sets may
/// still hold every element, which the rules no longer look at).
fn base_intact(netns: Option<&str>) -> Result<bool> {
    for family in FAMILIES {
        if table_version(netns, family)? != Some(true)
            || rule_count(netns, family)? != Some(Program::new(family).rules())
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every element of `set` in our table of `family`; None when the table
/// is absent.
fn dump_set(netns: Option<&str>, family: u8, set: &str) -> Result<Option<Elements>> {
    let ctx = format!(
        "read set {set} of table {} {TABLE} in netns {}",
        family_name(family),
        ns_label(netns)
    );
    let (seq, replies) = request(netns, &ctx, |w, seq| put_get_elements(w, family, set, seq))?;
    match replies.errors.first() {
        Some(&(_, libc::ENOENT)) => return Ok(None),
        Some(&(_, errno)) => return Err(kernel_error(errno, ctx, netns)),
        None if !replies.dumped.contains(&seq) => {
            return Err(Error::new(
                ErrorCode::Kernel,
                format!("{ctx}: the kernel did not finish the dump"),
            )
            .netns(netns))
        }
        None => {}
    }
    let payloads: Vec<&[u8]> = replies
        .messages
        .iter()
        .map(|(_, _, p)| p.as_slice())
        .collect();
    Ok(Some(parse_elements(&payloads)))
}

/// What the table of `family` holds; None when it is absent.
fn read_table(netns: Option<&str>, family: u8) -> Result<Option<TableState>> {
    let mut sets = Vec::with_capacity(SETS.len());
    for (name, _, _) in SETS {
        match dump_set(netns, family, name)? {
            Some(elements) => sets.push((name, elements)),
            None if sets.is_empty() => return Ok(None),
            // a set of ours missing from a table that is there: not our ruleset
            None => {
                return Err(Error::new(
                    ErrorCode::Kernel,
                    format!(
                        "read table {} {TABLE} in netns {}: its set {name} is missing (the table was changed by hand; reconcile replaces it)",
                        family_name(family),
                        ns_label(netns)
                    ),
                )
                .netns(netns))
            }
        }
    }
    Ok(Some(table_state(family == NFPROTO_IPV6, &sets)))
}

pub struct Nftables;

impl FirewallBackend for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn init(&self, netns: Option<&str>) -> Result<bool> {
        let v4 = table_version(netns, NFPROTO_IPV4)?;
        let v6 = table_version(netns, NFPROTO_IPV6)?;
        match (v4, v6) {
            (Some(true), Some(true)) if base_intact(netns)? => return Ok(false),
            (None, None) => {}
            // An older ruleset, half of ours, or rules flushed by hand: start
            // over with both tables (their elements go too: reconcile puts
            // them back, which the caller is told to run).
            _ => transaction(netns, &[], true)?,
        }
        let failure = match create_tables(netns)? {
            Outcome::Committed => return Ok(true),
            Outcome::Refused(_, errno) => errno,
            Outcome::Unacknowledged => libc::EIO,
        };
        let current = |family| -> Result<bool> { Ok(table_version(netns, family)? == Some(true)) };
        if current(NFPROTO_IPV4)? && current(NFPROTO_IPV6)? {
            // Lost a race against another init: the tables are there, once
            // (and as new as ours: what they should hold is still to restore).
            return Ok(true);
        }
        Err(kernel_error(
            failure,
            format_args!(
                "create tables ip {TABLE} and ip6 {TABLE} in netns {}",
                ns_label(netns)
            ),
            netns,
        ))
    }

    fn apply(&self, netns: Option<&str>, batch: &Batch) -> Result<()> {
        transaction(netns, &changes(batch), false)
    }

    fn state(&self, netns: Option<&str>) -> Result<State> {
        let t4 = read_table(netns, NFPROTO_IPV4)?;
        let t6 = read_table(netns, NFPROTO_IPV6)?;
        let mut state = merge_state(t4.unwrap_or_default(), t6);
        state.base_intact = base_intact(netns)?;
        Ok(state)
    }

    fn reset(&self, netns: Option<&str>) -> Result<()> {
        transaction(netns, &[], true)
    }
}

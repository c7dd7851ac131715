//! The iptables backend, for hosts without nft and in Docker's classic shape
//! (Docker 28's gateway modes, direct-access protection and DOCKER-USER).
//!
//! Our chains, the same in iptables (IPv4) and ip6tables (IPv6):
//!
//! - mangle `CNM-DIRECT`, jumped to from PREROUTING: direct-access
//!   protection of `nat` networks with `protect`. First a fixed
//!   `--ctstate RELATED,ESTABLISHED -j RETURN`, then per protected subnet
//!   `-d SUBNET -i IF -j RETURN` for the bridge, lo and each trusted
//!   interface, and `-d SUBNET ! --dst-type LOCAL -j DROP`. Like the
//!   nftables `direct` chain it runs after conntrack and before DNAT (so not
//!   in raw): replies of connections containers opened pass (a network that
//!   does not masquerade stays reachable for them), and published host
//!   ports, whose destination is still the host's address, are not touched.
//! - nat `CNM-PREROUTING` (from PREROUTING and OUTPUT, for local
//!   destinations): a jump per shard of published ports, by protocol and
//!   host port range, into `CNM-DNAT-<PROTO>-<n>`, which hold one DNAT rule
//!   per published port and family (see `ruleset.rs` for why shards).
//! - nat `CNM-POSTROUTING` (from POSTROUTING): masquerade of each subnet
//!   leaving through anything but its bridge, of localhost (IPv4) and of
//!   hairpin DNAT; none for a `routed` family.
//! - filter `CNM-USER`, jumped to first from FORWARD: the operator's rules,
//!   as Docker's DOCKER-USER. `init` creates it if missing; cnm never
//!   flushes or changes it, and `reset` removes only the jump into it,
//!   leaving the chain and the operator's rules for the next `init`.
//! - filter `CNM-FORWARD`, jumped to from FORWARD after CNM-USER: at its
//!   head per network the icc verdict (`-i BR -o BR`) and the drops of an
//!   internal network; then, fixed, `--ctstate DNAT -j ACCEPT` (published
//!   host ports, from anywhere), `-j CNM-OPEN`, `-j CNM-ISOLATION`,
//!   `-j CNM-INBOUND`.
//! - filter `CNM-OPEN` (only accepts; before isolation, so from other
//!   networks too): per filtered network (`nat`, `routed`) replies to it
//!   (`-o BR --ctstate RELATED,ESTABLISHED`); per `routed` network ICMP
//!   (`-d SUBNET -o BR -p icmp|ipv6-icmp`, its routed marker); per routed
//!   port `-d CONTAINER -o BR -p PROTO --dport PORT -j ACCEPT`.
//! - filter `CNM-ISOLATION` / `CNM-ISOLATION-2`: Docker's two-stage
//!   isolation, a drop of traffic between two of our bridges.
//! - filter `CNM-INBOUND` (after isolation, so not from other networks):
//!   the jumps into `CNM-ACCEPT-<n>` (inserted, so first), which hold the
//!   accepts of published container ports of `nat` families by the low bits
//!   of the container address, then per filtered network
//!   `! -i BR -o BR -j DROP` (appended). A `nat-unprotected` family has no rule here nor in
//!   CNM-OPEN / CNM-DIRECT: nothing to it is filtered.
//!
//! Every rule of a network carries the comment `cnm:net:<tag>` (those of
//! CNM-DIRECT, which do not name the bridge, `cnm:net:<tag>/<bridge>`), every
//! rule of a port `cnm:ep:<tag>/<bridge>`; `state.rs` says how state is
//! read back from them. Each call writes once with `iptables-restore
//! --noflush`, run inside the netns; deletions repeat the saved rule spec
//! exactly. The tables are read with `iptables-save` first, except by an
//! `apply` that can trust the model it kept from its previous call (see
//! "Skipping iptables-save" below).
//!
//! IPv6: the same chains in the tables of ip6tables, written with
//! `ip6tables-restore --noflush` and read with `ip6tables-save`; a network
//! gets IPv6 rules when it has an IPv6 subnet (no localhost masquerade: ::1
//! cannot be routed out), a port IPv6 rules when it has a container IPv6
//! address and no specific IPv4 host address. A published key (protocol,
//! host address, host port) is one per family: the same key on IPv4 and on
//! IPv6 are two, and only the same key twice in one family is refused with
//! ERR_PORT_ALLOCATED. A call that changes both families runs both
//! programs, IPv4 first; every check (ERR_PORT_ALLOCATED, missing chains) is
//! done before either runs. Without ip6tables installed the backend is IPv4
//! only, and refuses IPv6 rules.
//!
//! `rule.rs` is the rule model, `ruleset.rs` our chains and fixed rules,
//! `network.rs` and `ports.rs` the rules of a network and of a port,
//! `saved.rs` reads `iptables-save`, `state.rs` turns it into networks and
//! ports, `plan.rs` turns a batch into a restore script, `setup.rs` writes
//! the scripts of `init` and `reset`; this file is the backend: the programs
//! it runs, its lock, and the model it keeps between calls.

#[cfg(test)]
mod fixtures;
mod links;
mod network;
mod plan;
mod ports;
mod rule;
mod ruleset;
mod saved;
mod setup;
mod state;

use std::collections::HashMap;
use std::io;
use std::sync::{LazyLock, Mutex, MutexGuard};

use super::{exec, nfnl};
use super::{Batch, FirewallBackend, State};
use crate::error::{ns_label, Error, Result};
use plan::{plan, Model, Script};
use saved::Saved;
use setup::{init_script, reset_script};
use state::parse_state;

const SAVE: &str = "iptables-save";
const RESTORE: &str = "iptables-restore";
const SAVE6: &str = "ip6tables-save";
const RESTORE6: &str = "ip6tables-restore";
const RESTORE_ARGS: &[&str] = &["--noflush", "-w", "10"];

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
        // A probe that fails is no error: it tells that this host cannot skip
        // iptables-save (no nf_tables, iptables-legacy), and the call reads
        // the tables as it must then.
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

    fn init(&self, netns: Option<&str>) -> Result<bool> {
        let mut cache = lock();
        cache.remove(&netns.map(str::to_string));
        let saved = save(netns)?;
        let script = init_script(&saved, &families());
        let made = script.commits() > 0;
        restore(netns, &script)?;
        Ok(made)
    }

    fn apply(&self, netns: Option<&str>, batch: &Batch) -> Result<()> {
        let mut cache = lock();
        Iptables::apply_locked(&mut cache, netns, batch)
    }

    fn state(&self, netns: Option<&str>) -> Result<State> {
        let saved = save(netns)?;
        let mut state = parse_state(&saved);
        state.base_intact = init_script(&saved, &families()).commits() == 0;
        Ok(state)
    }

    fn reset(&self, netns: Option<&str>) -> Result<()> {
        let mut cache = lock();
        cache.remove(&netns.map(str::to_string));
        let saved = save(netns)?;
        restore(netns, &reset_script(&saved, &families()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

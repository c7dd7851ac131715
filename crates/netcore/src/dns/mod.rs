//! The embedded resolver: one per host netns, answering at 127.0.0.11:53 inside
//! each sandbox through sockets opened in the sandbox's netns. `records.rs`
//! holds the names, `answer.rs` answers one query, `listen.rs` serves a
//! sandbox's sockets, `forward.rs` asks the upstream servers from the host's
//! side. Resolvers are held here by handle, as the state dir locks are.

mod answer;
mod batch;
mod fast;
mod forward;
mod listen;
mod records;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use listen::RESOLVER_ADDR;
pub use records::EndpointNames;

use crate::error::{Error, ErrorCode, Result};
use forward::Forwarder;
use listen::Listener;
use records::Records;

#[derive(Default)]
pub struct Stats {
    pub queries: AtomicU64,
    pub forwarded: AtomicU64,
    pub failed: AtomicU64,
}

/// What every serving task of one resolver shares.
pub struct Shared {
    records: RwLock<Records>,
    forwarder: Forwarder,
    stats: Stats,
    turn: AtomicUsize,
}

struct Resolver {
    shared: Arc<Shared>,
    sandboxes: Mutex<HashMap<String, Listener>>,
}

/// A snapshot of a resolver's counters.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub queries: u64,
    pub forwarded: u64,
    pub failed: u64,
    pub sandboxes: u32,
    pub endpoints: u32,
}

static NEXT: AtomicU32 = AtomicU32::new(1);

fn registry() -> &'static Mutex<HashMap<u32, Arc<Resolver>>> {
    static R: std::sync::OnceLock<Mutex<HashMap<u32, Arc<Resolver>>>> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

fn poisoned() -> Error {
    Error::new(ErrorCode::Io, "resolver state lock poisoned")
}

fn get(handle: u32) -> Result<Arc<Resolver>> {
    registry()
        .lock()
        .map_err(|_| poisoned())?
        .get(&handle)
        .cloned()
        .ok_or_else(|| Error::invalid(format!("no resolver with handle {handle} (stopped?)")))
}

/// Starts a resolver that forwards from `host_netns` (None: the process's
/// own); it serves no sandbox until [`open_sandbox`]. Returns its handle.
pub async fn start(host_netns: Option<String>) -> Result<u32> {
    let forwarder = Forwarder::start(host_netns).await?;
    let r = Arc::new(Resolver {
        shared: Arc::new(Shared {
            records: RwLock::new(Records::default()),
            forwarder,
            stats: Stats::default(),
            turn: AtomicUsize::new(0),
        }),
        sandboxes: Mutex::new(HashMap::new()),
    });
    let handle = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().lock().map_err(|_| poisoned())?.insert(handle, r);
    Ok(handle)
}

/// Changes records in place: `remove` (endpoint ids) first, then `upsert`.
pub fn update(handle: u32, upsert: Vec<EndpointNames>, remove: Vec<String>) -> Result<()> {
    let r = get(handle)?;
    let mut records = r.shared.records.write().map_err(|_| poisoned())?;
    for id in &remove {
        records.remove(id);
    }
    for ep in upsert {
        records.upsert(ep);
    }
    Ok(())
}

/// Serves `sandbox` at 127.0.0.11:53 inside `netns`, forwarding what is not
/// ours to `upstreams`. Already served: only its upstream servers change.
pub async fn open_sandbox(
    handle: u32,
    sandbox: String,
    netns: String,
    upstreams: Vec<SocketAddr>,
) -> Result<()> {
    let r = get(handle)?;
    {
        let open = r.sandboxes.lock().map_err(|_| poisoned())?;
        if let Some(l) = open.get(&sandbox).filter(|l| l.netns == netns) {
            *l.upstreams.write().map_err(|_| poisoned())? = upstreams;
            return Ok(());
        }
    }
    let listener = listen::open(
        r.shared.clone(),
        sandbox.clone(),
        netns,
        Arc::new(RwLock::new(upstreams)),
    )
    .await?;
    // a listener already there (another netns of that name, or a race) is replaced and closed
    r.sandboxes
        .lock()
        .map_err(|_| poisoned())?
        .insert(sandbox, listener);
    Ok(())
}

/// Closes a sandbox's sockets (so that its netns can go); true when it was served.
pub fn close_sandbox(handle: u32, sandbox: &str) -> Result<bool> {
    let r = get(handle)?;
    let l = r.sandboxes.lock().map_err(|_| poisoned())?.remove(sandbox);
    Ok(l.is_some())
}

pub fn stats(handle: u32) -> Result<Snapshot> {
    let r = get(handle)?;
    let s = &r.shared.stats;
    let sandboxes = r.sandboxes.lock().map_err(|_| poisoned())?.len();
    let endpoints = r.shared.records.read().map_err(|_| poisoned())?.endpoints();
    Ok(Snapshot {
        queries: s.queries.load(Ordering::Relaxed),
        forwarded: s.forwarded.load(Ordering::Relaxed),
        failed: s.failed.load(Ordering::Relaxed),
        sandboxes: u32::try_from(sandboxes).unwrap_or(u32::MAX),
        endpoints: u32::try_from(endpoints).unwrap_or(u32::MAX),
    })
}

/// Stops a resolver: every sandbox's sockets close. Unknown handles are fine.
pub fn stop(handle: u32) -> Result<()> {
    let r = registry().lock().map_err(|_| poisoned())?.remove(&handle);
    if let Some(r) = r {
        r.shared.forwarder.close();
        r.sandboxes.lock().map_err(|_| poisoned())?.clear();
    }
    Ok(())
}

//! Overlay networks: VXLAN devices and the peers programmed on them.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use netcore_derive::Mirror;

use super::mirror::Wire;
use super::promise;
use crate::{link, peers};

/// ensureVxlan: a VXLAN device (learning off, ARP/ND answered from its neighbour
/// table) on an overlay network's bridge, up.
#[napi(object)]
#[derive(Mirror)]
#[mirror(link::VxlanSpec)]
pub struct VxlanSpec {
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    pub name: String,
    /// the VXLAN network identifier, 1 to 16777215
    pub vni: u32,
    /// this host's underlay address: the source of its tunnels
    pub local: String,
    /// UDP port, default 4789
    #[napi(ts_type = "number | null")]
    pub port: Option<u32>,
    /// the bridge to enslave it to
    #[napi(ts_type = "string | null")]
    pub master: Option<String>,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::VxlanResult)]
pub struct VxlanInfo {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    /// false when it already existed
    pub created: bool,
}

/// A remote endpoint of an overlay network: its MAC, its addresses, its host's VTEP.
#[napi(object)]
#[derive(Mirror)]
#[mirror(peers::Peer)]
pub struct Peer {
    pub mac: String,
    pub ips: Vec<String>,
    /// the underlay address of its host ("" when a neighbour entry has no FDB entry)
    pub vtep: String,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(peers::PeerChanges)]
pub struct PeerChanges {
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    /// the vxlan device
    pub device: String,
    #[napi(ts_type = "Peer[] | null")]
    pub add: Option<Vec<Peer>>,
    #[napi(ts_type = "Peer[] | null")]
    pub remove: Option<Vec<Peer>>,
}

#[napi(ts_return_type = "Promise<VxlanInfo>")]
pub fn ensure_vxlan(env: &Env, spec: VxlanSpec) -> napi::Result<PromiseRaw<'_, VxlanInfo>> {
    let spec = link::VxlanSpec::from_js(spec, "spec");
    promise(
        env,
        async move { Ok(link::ensure_vxlan(&spec?).await?.to_js()) },
    )
}

/// Removes `remove` (absent entries are fine), then adds or replaces `add`:
/// static FDB entries (MAC → VTEP) and permanent neighbour entries (IP → MAC).
#[napi(ts_return_type = "Promise<void>")]
pub fn set_peers(env: &Env, changes: PeerChanges) -> napi::Result<PromiseRaw<'_, ()>> {
    let changes = peers::PeerChanges::from_js(changes, "changes");
    promise(env, async move { peers::set_peers(&changes?).await })
}

/// The peers programmed on a vxlan device, sorted by MAC.
#[napi(ts_return_type = "Promise<Peer[]>")]
pub fn list_peers(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    device: String,
) -> napi::Result<PromiseRaw<'_, Vec<Peer>>> {
    promise(env, async move {
        Ok(peers::list_peers(netns.as_deref(), &device).await?.to_js())
    })
}

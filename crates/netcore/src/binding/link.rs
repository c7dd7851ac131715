//! Links: bridges, veth endpoints, adopted links, deletion and listing.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use netcore_derive::Mirror;

use super::mirror::Wire;
use super::promise;
use crate::link;

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::BridgeSpec)]
pub struct BridgeSpec {
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    pub name: String,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings, e.g. "10.1.0.1/24"; already present ones are kept, EEXIST ignored.
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    /// default true
    #[napi(ts_type = "boolean | null")]
    #[mirror(default = true)]
    pub up: Option<bool>,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::BridgeResult)]
pub struct BridgeInfo {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: String,
    /// false when the bridge already existed
    pub created: bool,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::VethSpec)]
pub struct VethSpec {
    #[napi(ts_type = "string | null")]
    pub host_netns: Option<String>,
    /// the named netns the peer is born in
    pub sandbox_netns: String,
    pub host_ifname: String,
    /// bridge to enslave the host end to
    #[napi(ts_type = "string | null")]
    pub master: Option<String>,
    /// name of the peer inside the sandbox, e.g. eth0
    pub ifname: String,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings for the peer
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    /// IPv4 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    /// IPv6 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway6: Option<String>,
    /// hairpin mode on the bridge port, so that DNATed traffic can go back out
    /// the port it came in by (a sandbox reaching its own published port)
    #[napi(ts_type = "boolean | null")]
    pub hairpin: Option<bool>,
}

/// attachMacvlan: an endpoint on the host's LAN, a macvlan link of `parent`
/// born inside the sandbox netns.
#[napi(object)]
#[derive(Mirror)]
#[mirror(link::MacvlanSpec)]
pub struct MacvlanSpec {
    #[napi(ts_type = "string | null")]
    pub host_netns: Option<String>,
    /// the named netns the link is born in
    pub sandbox_netns: String,
    /// the parent interface in the host netns
    pub parent: String,
    /// its name inside the sandbox, e.g. eth0
    pub ifname: String,
    /// bridge (default), private, vepa or passthru
    #[napi(ts_type = "'bridge' | 'private' | 'vepa' | 'passthru' | null")]
    pub mode: Option<String>,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    #[napi(ts_type = "string | null")]
    pub gateway6: Option<String>,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::MacvlanResult)]
pub struct MacvlanInfo {
    pub ifindex: u32,
    pub mac: String,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::VethResult)]
pub struct VethInfo {
    pub host_ifindex: u32,
    pub ifindex: u32,
    pub mac: String,
    pub host_mac: String,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::LinkDetails)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    #[napi(ts_type = "string | null")]
    pub kind: Option<String>,
    #[napi(ts_type = "number | null")]
    pub master: Option<u32>,
    pub mtu: u32,
    pub mac: String,
    pub up: bool,
    pub addresses: Vec<String>,
    /// The link's group: retired links (see retireLink) are in group 0x636e6d67.
    pub group: u32,
}

/// One static route for {@link AdoptSpec}: `dst` via `gateway`, or on-link without one.
#[napi(object)]
#[derive(Mirror)]
#[mirror(link::StaticRoute)]
pub struct StaticRoute {
    /// CIDR
    pub dst: String,
    /// absent for an on-link route (nested fields take no null)
    pub gateway: Option<String>,
}

/// adoptLink: a link made in the host netns by someone else (a remote plugin) is
/// moved into the sandbox netns, renamed and configured there. The move waits for
/// an RCU grace period (~20 ms): plugins only, never the bridge path.
#[napi(object)]
#[derive(Mirror)]
#[mirror(link::AdoptSpec)]
pub struct AdoptSpec {
    #[napi(ts_type = "string | null")]
    pub host_netns: Option<String>,
    /// the link in the host netns (made by a remote plugin)
    pub ifname: String,
    /// the named netns to move it into
    pub sandbox_netns: String,
    /// its name there, e.g. eth0
    pub new_name: String,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
    #[napi(ts_type = "string | null")]
    pub mac: Option<String>,
    /// CIDR strings
    #[napi(ts_type = "string[] | null")]
    pub addresses: Option<Vec<String>>,
    /// IPv4 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    /// IPv6 default route via this gateway
    #[napi(ts_type = "string | null")]
    pub gateway6: Option<String>,
    #[napi(ts_type = "StaticRoute[] | null")]
    pub routes: Option<Vec<StaticRoute>>,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::AdoptResult)]
pub struct AdoptInfo {
    pub ifindex: u32,
    pub mac: String,
}

#[napi(ts_return_type = "Promise<BridgeInfo>")]
pub fn ensure_bridge(env: &Env, spec: BridgeSpec) -> napi::Result<PromiseRaw<'_, BridgeInfo>> {
    let spec = link::BridgeSpec::from_js(spec, "spec");
    promise(env, async move {
        Ok(link::ensure_bridge(&spec?).await?.to_js())
    })
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn delete_link(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    name: String,
) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(
        env,
        async move { link::delete(netns.as_deref(), &name).await },
    )
}

#[napi(ts_return_type = "Promise<VethInfo>")]
pub fn attach_veth(env: &Env, spec: VethSpec) -> napi::Result<PromiseRaw<'_, VethInfo>> {
    let spec = link::VethSpec::from_js(spec, "spec");
    promise(
        env,
        async move { Ok(link::attach_veth(&spec?).await?.to_js()) },
    )
}

#[napi(ts_return_type = "Promise<MacvlanInfo>")]
pub fn attach_macvlan(env: &Env, spec: MacvlanSpec) -> napi::Result<PromiseRaw<'_, MacvlanInfo>> {
    let spec = link::MacvlanSpec::from_js(spec, "spec");
    promise(env, async move {
        Ok(link::attach_macvlan(&spec?).await?.to_js())
    })
}

/// ensureVlan: an 802.1q sub-interface `name` (VLAN `id` of `parent`), made or adopted.
#[napi(object)]
#[derive(Mirror)]
#[mirror(link::VlanSpec)]
pub struct VlanSpec {
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    pub name: String,
    pub parent: String,
    /// 1 to 4094
    pub id: u32,
    #[napi(ts_type = "number | null")]
    pub mtu: Option<u32>,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(link::VlanResult)]
pub struct VlanInfo {
    pub ifindex: u32,
    /// false when it existed already with that VLAN id
    pub created: bool,
}

/// Makes sure `name` is VLAN `id` of `parent` and up; ERR_NOT_SUPPORTED on a kernel without 8021q.
#[napi(ts_return_type = "Promise<VlanInfo>")]
pub fn ensure_vlan(env: &Env, spec: VlanSpec) -> napi::Result<PromiseRaw<'_, VlanInfo>> {
    let spec = link::VlanSpec::from_js(spec, "spec");
    promise(
        env,
        async move { Ok(link::ensure_vlan(&spec?).await?.to_js()) },
    )
}

/// Moves a link a plugin made in the host netns into a sandbox netns, renames
/// and configures it there; undoes the move on failure.
#[napi(ts_return_type = "Promise<AdoptInfo>")]
pub fn adopt_link(env: &Env, spec: AdoptSpec) -> napi::Result<PromiseRaw<'_, AdoptInfo>> {
    let spec = link::AdoptSpec::from_js(spec, "spec");
    promise(
        env,
        async move { Ok(link::adopt_link(&spec?).await?.to_js()) },
    )
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn detach_veth(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] host_netns: Option<String>,
    host_ifname: String,
) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move {
        link::detach_veth(host_netns.as_deref(), &host_ifname).await
    })
}

/// How {@link retireLink} takes a link out of service.
#[napi(object)]
pub struct RetireSpec {
    /// rename it to this: its name is free at once
    pub grave_name: Option<String>,
    /// addresses (CIDR) to remove
    pub addresses: Option<Vec<String>>,
    /// remove every address it has (a dump first)
    pub all_addresses: Option<bool>,
    /// set it down (default true)
    pub down: Option<bool>,
    /// take it out of its bridge (default false: that costs as much as the bridge has ports)
    pub nomaster: Option<bool>,
    /// put it in the group reapLinks deletes (default true)
    pub grave: Option<bool>,
    /// reapLinks deletes it on its own, not in the batch (a bridge: its deletion
    /// holds the kernel's lock about 20 ms, batch or not)
    pub grave_alone: Option<bool>,
}

/// Takes link `ifname` of `netns` out of service at once, without the kernel's
/// slow deletion, as `how` says; by default down and in the group `reapLinks`
/// deletes. Resolves false when there is no such link.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn retire_link(
    env: &Env,
    netns: Option<String>,
    ifname: String,
    how: RetireSpec,
) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move {
        let how = link::Retire {
            grave_name: how.grave_name,
            addresses: if how.all_addresses == Some(true) {
                None
            } else {
                Some(how.addresses.unwrap_or_default())
            },
            down: how.down.unwrap_or(true),
            nomaster: how.nomaster.unwrap_or(false),
            grave: how.grave.unwrap_or(true),
            alone: how.grave_alone.unwrap_or(false),
        };
        link::retire(netns.as_deref(), &ifname, &how).await
    })
}

/// Deletes every retired link of `netns` (a veth pair goes whole) in one
/// request, on a socket of its own: one wait in the kernel for all of them.
#[napi(ts_return_type = "Promise<void>")]
pub fn reap_links(env: &Env, netns: Option<String>) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move { link::reap(netns.as_deref()).await })
}

#[napi(ts_return_type = "Promise<LinkInfo[]>")]
pub fn list_links(env: &Env, netns: Option<String>) -> napi::Result<PromiseRaw<'_, Vec<LinkInfo>>> {
    promise(env, async move {
        Ok(link::list(netns.as_deref()).await?.to_js())
    })
}

//! Routes and sysctls of a netns.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use netcore_derive::Mirror;

use super::mirror::Wire;
use super::promise;
use crate::{cluster_routes, route, sysctl};

#[napi(object)]
#[derive(Mirror)]
#[mirror(route::RouteDetails)]
pub struct RouteInfo {
    /// CIDR; "0.0.0.0/0" for default
    pub dst: String,
    #[napi(ts_type = "string | null")]
    pub gateway: Option<String>,
    #[napi(ts_type = "number | null")]
    pub oif: Option<u32>,
    pub table: u32,
}

#[napi(ts_return_type = "Promise<RouteInfo[]>")]
pub fn list_routes(
    env: &Env,
    netns: Option<String>,
    family: Option<u32>,
) -> napi::Result<PromiseRaw<'_, Vec<RouteInfo>>> {
    promise(env, async move {
        Ok(route::list(netns.as_deref(), family).await?.to_js())
    })
}

/// Make `gateway` out of `ifname` the default route of `family` (4 or 6) inside
/// the named netns, replacing any other; with no gateway, remove it.
#[napi(ts_return_type = "Promise<void>")]
pub fn set_default_route(
    env: &Env,
    netns: String,
    #[napi(ts_arg_type = "string | undefined | null")] ifname: Option<String>,
    #[napi(ts_arg_type = "string | undefined | null")] gateway: Option<String>,
    family: u32,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move {
        route::set_default(&netns, ifname.as_deref(), gateway.as_deref(), family).await
    })
}

#[napi(ts_return_type = "Promise<string>")]
pub fn sysctl_get(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    key: String,
) -> napi::Result<PromiseRaw<'_, String>> {
    promise(
        env,
        async move { sysctl::get(netns.as_deref(), &key).await },
    )
}

#[napi(ts_return_type = "Promise<void>")]
pub fn sysctl_set(
    env: &Env,
    #[napi(ts_arg_type = "string | undefined | null")] netns: Option<String>,
    key: String,
    value: String,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move {
        sysctl::set(netns.as_deref(), &key, &value).await
    })
}

/// A route of a routed cluster network (see setClusterRoutes).
#[napi(object)]
#[derive(Mirror)]
#[mirror(cluster_routes::ClusterRoute)]
pub struct ClusterRoute {
    /// the block, e.g. "10.40.3.0/24" (IPv4)
    pub dst: String,
    /// another host's underlay address, for its block
    #[napi(ts_type = "string | null")]
    pub via: Option<String>,
    /// this host's own block: its bridge
    #[napi(ts_type = "string | null")]
    pub dev: Option<String>,
    /// this host's own block: the bridge's address in it
    #[napi(ts_type = "string | null")]
    pub src: Option<String>,
}

#[napi(object)]
#[derive(Mirror)]
#[mirror(cluster_routes::ClusterRouteChanges)]
pub struct ClusterRouteChanges {
    #[napi(ts_type = "string | null")]
    pub netns: Option<String>,
    #[napi(ts_type = "ClusterRoute[] | null")]
    pub add: Option<Vec<ClusterRoute>>,
    /// blocks whose route goes (absent is fine)
    #[napi(ts_type = "string[] | null")]
    pub remove: Option<Vec<String>>,
}

/// Remove, then add or replace, routes of routed cluster networks, tagged with
/// the cluster's routing realm: traffic from a block to another host's block
/// is not masqueraded.
#[napi(ts_return_type = "Promise<void>")]
pub fn set_cluster_routes(
    env: &Env,
    changes: ClusterRouteChanges,
) -> napi::Result<PromiseRaw<'_, ()>> {
    let changes = cluster_routes::ClusterRouteChanges::from_js(changes, "changes");
    promise(env, async move {
        cluster_routes::set_cluster_routes(&changes?).await
    })
}

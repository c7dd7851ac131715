//! Routes and sysctls of a netns.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use netcore_derive::Mirror;

use super::mirror::Wire;
use super::promise;
use crate::{route, sysctl};

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

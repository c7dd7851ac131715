//! Named network namespaces.

use napi::bindgen_prelude::{Either, Null, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::promise;
use crate::netns;

#[napi(ts_return_type = "Promise<void>")]
pub fn netns_create(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move { netns::create(&name).await })
}

#[napi(ts_return_type = "Promise<void>")]
pub fn netns_bind(
    env: &Env,
    name: String,
    target: Option<String>,
) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(
        env,
        async move { netns::bind(&name, target.as_deref()).await },
    )
}

/// Name a network namespace made by someone else: /run/netns/NAME becomes a bind
/// mount of `path` (e.g. /proc/PID/ns/net). ERR_INVALID_ARGUMENT when the path is
/// not a network namespace, ERR_NETNS_NOT_FOUND when it does not exist.
#[napi(ts_return_type = "Promise<void>")]
pub fn netns_bind_path(env: &Env, name: String, path: String) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move { netns::bind_path(&name, &path).await })
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn netns_delete(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move { netns::delete(&name).await })
}

#[napi(ts_return_type = "Promise<number>")]
pub fn netns_delete_many(env: &Env, names: Vec<String>) -> napi::Result<PromiseRaw<'_, u32>> {
    promise(env, async move { netns::delete_many(&names).await })
}

#[napi(ts_return_type = "Promise<string[]>")]
pub fn netns_list(env: &Env) -> napi::Result<PromiseRaw<'_, Vec<String>>> {
    promise(env, netns::list())
}

#[napi(ts_return_type = "Promise<boolean>")]
pub fn netns_exists(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, bool>> {
    promise(env, async move { netns::exists(&name).await })
}

/// Drops the cached netlink and netfilter sockets of a netns (so they do not
/// keep it alive) and the firewall's copy of its rules; resolves once they are
/// closed. Runs off the JS thread: it may wait for a firewall call in flight.
#[napi(ts_return_type = "Promise<void>")]
pub fn release_netns(env: &Env, name: String) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move { netns::release(&name).await })
}

/// The netns cookie (SO_NETNS_COOKIE: a 64-bit id the kernel never reuses
/// during a boot) of a named netns, or of the process's own with null, as a
/// decimal string. Two names for one netns give the same cookie.
#[napi(ts_return_type = "Promise<string>")]
pub fn netns_cookie(
    env: &Env,
    netns: Either<String, Null>,
) -> napi::Result<PromiseRaw<'_, String>> {
    let netns = match netns {
        Either::A(name) => Some(name),
        Either::B(Null) => None,
    };
    promise(env, async move {
        Ok(netns::cookie(netns.as_deref()).await?.to_string())
    })
}

//! Named network namespaces.

use napi::bindgen_prelude::PromiseRaw;
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

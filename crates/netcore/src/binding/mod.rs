//! The napi binding of netcore: JavaScript objects that mirror the domain
//! types, and exports that convert their arguments, forward to a kernel
//! module and convert the result back. Nothing else; no kernel module knows
//! napi. One file per area: netns, link, route and sysctl, firewall, the
//! state dir's writer lock, and the features the addon was built with.
//!
//! napi-rs generates the addon's TypeScript declarations (index.d.ts) from
//! this folder; they are the contract the TypeScript layer builds on
//! (ts/native-api.ts takes them as they are).
//!
//! Every call that does work returns a Promise settled from the tokio runtime. Rejections are
//! Errors whose `code` is the stable ERR_* string and whose `message` is the
//! JSON body of [`crate::error::Error::to_json`].

pub mod dns;
pub mod errors;
pub mod features;
pub mod firewall;
pub mod flock;
pub mod link;
pub(crate) mod mirror;
pub mod netns;
pub mod overlay;
pub mod probe;
pub mod route;

use std::future::Future;

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{Env, JsError};

use crate::error;

fn js_error(env: &Env, e: &error::Error) -> napi::Error {
    let err: napi::Error<&'static str> = napi::Error::new(e.code.as_str(), e.to_json());
    // A JS Error with our own `code`; napi rejects with this very object.
    napi::Error::from(JsError::from(err).into_unknown(*env))
}

/// The Promise of `fut`, run on the tokio runtime.
fn promise<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = error::Result<T>> + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, result| {
        result.map_err(|e| js_error(env, &e))
    })
}

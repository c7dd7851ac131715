//! The state dir's writer lock: a lock file taken without blocking, or waited
//! for off the JS thread. Only the wait returns a Promise; the other calls
//! never block (open, LOCK_NB, LOCK_UN, close).

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use super::{js_error, promise};
use crate::flock;

/// Opens (creating it 0600) the lock file at `path`; returns its handle.
#[napi]
pub fn lock_file_open(env: Env, path: String) -> napi::Result<u32> {
    flock::open(&path).map_err(|e| js_error(&env, &e))
}

/// Takes the lock if nobody holds it; never blocks. False when it is held.
#[napi]
pub fn lock_file_try(env: Env, handle: u32) -> napi::Result<bool> {
    flock::try_lock(handle).map_err(|e| js_error(&env, &e))
}

/// Waits for the lock on a blocking thread; the JS thread goes on meanwhile.
#[napi(ts_return_type = "Promise<void>")]
pub fn lock_file_wait(env: &Env, handle: u32) -> napi::Result<PromiseRaw<'_, ()>> {
    promise(env, async move { flock::lock(handle).await })
}

/// Releases the lock.
#[napi]
pub fn lock_file_unlock(env: Env, handle: u32) -> napi::Result<()> {
    flock::unlock(handle).map_err(|e| js_error(&env, &e))
}

/// Closes the lock file (which releases the lock if held).
#[napi]
pub fn lock_file_close(handle: u32) {
    flock::close(handle);
}

//! What this build of the addon was compiled with.

use napi_derive::napi;

/// Whether the addon was built with the `fault-injection` feature (CNM_FAULT
/// hooks, tests only). The TypeScript layer gates its own fault points on it.
#[napi]
pub fn fault_injection_enabled() -> bool {
    cfg!(feature = "fault-injection")
}

//! What this build of the addon was compiled with.

use napi_derive::napi;

/// Whether the addon was built with the `fault-injection` feature (CNM_FAULT
/// hooks, tests only). The TypeScript layer gates its own fault points on it.
#[napi]
pub fn fault_injection_enabled() -> bool {
    cfg!(feature = "fault-injection")
}

/// Gives the C heap's free memory back to the system (glibc's `malloc_trim`):
/// after a burst (64 API clients answered at once), glibc keeps the freed
/// chunks of its per-thread arenas mapped, so the process's RSS stays at the
/// burst's high-water mark. False where there is no such call (musl).
#[napi]
pub fn trim_memory() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim only walks glibc's own arenas; any pad is valid
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

//! Fault injection for tests. `CNM_FAULT=<point>[:crash],…` (the same variable
//! the TypeScript layer reads) makes a netcore step boundary fail — so the call
//! undoes its own partial work — or, with `:crash`, kills the process there.
//! Points: netcore.netns.created, netcore.bridge.created, netcore.veth.created.

use std::sync::OnceLock;

use crate::error::{Error, ErrorCode, Result};

fn faults() -> &'static Vec<(String, bool)> {
    static FAULTS: OnceLock<Vec<(String, bool)>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        std::env::var("CNM_FAULT")
            .unwrap_or_default()
            .split(',')
            .filter_map(|item| {
                let mut parts = item.trim().splitn(2, ':');
                let point = parts.next().filter(|p| !p.is_empty())?;
                Some((point.to_string(), parts.next() == Some("crash")))
            })
            .collect()
    })
}

/// A step boundary: Err or process death when CNM_FAULT names `point`.
pub fn point(point: &str) -> Result<()> {
    match faults().iter().find(|(p, _)| p == point) {
        None => Ok(()),
        Some((_, true)) => {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        }
        Some((_, false)) => Err(Error::new(
            ErrorCode::FaultInjected,
            format!("fault injected at {point} (CNM_FAULT)"),
        )),
    }
}

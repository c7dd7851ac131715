//! Fault injection for tests, compiled only with the `fault-injection`
//! feature (`npm run build:native:test`); release builds get the no-op in
//! lib.rs instead. `CNM_FAULT=<point>[:crash],…` (the same variable the
//! TypeScript layer reads) makes a netcore step boundary fail — so the call
//! undoes its own partial work — or, with `:crash`, kills the process there.
//! Points: netcore.netns.created, netcore.bridge.created,
//! netcore.veth.created, netcore.adopt.moved.

use std::sync::OnceLock;

use crate::error::{Error, ErrorCode, Result};

/// (point, crash) of every item of a CNM_FAULT value.
fn parse(spec: &str) -> Vec<(String, bool)> {
    spec.split(',')
        .filter_map(|item| {
            let mut parts = item.trim().splitn(2, ':');
            let point = parts.next().filter(|p| !p.is_empty())?;
            Some((point.to_string(), parts.next() == Some("crash")))
        })
        .collect()
}

fn faults() -> &'static Vec<(String, bool)> {
    static FAULTS: OnceLock<Vec<(String, bool)>> = OnceLock::new();
    FAULTS.get_or_init(|| parse(&std::env::var("CNM_FAULT").unwrap_or_default()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec() {
        assert_eq!(
            parse(" netcore.veth.created:crash, netcore.netns.created,,x:other"),
            [
                ("netcore.veth.created".to_string(), true),
                ("netcore.netns.created".to_string(), false),
                ("x".to_string(), false),
            ]
        );
        assert!(parse("").is_empty());
    }
}

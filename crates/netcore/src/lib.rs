//! netcore: the part of cnm that talks to the kernel — network namespaces,
//! links, addresses, routes, sysctls and the firewall — over netlink and
//! netfilter, from threads that never move the Node thread between
//! namespaces. The kernel modules know nothing of napi; `binding` is the only
//! napi code: it converts JavaScript values to and from the domain types and
//! forwards, nothing else.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod addr;
pub mod binding;
pub mod cluster_routes;
pub mod dns;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod firewall;
pub mod flock;
pub mod link;
pub mod netns;
mod nl;
pub mod peers;
pub mod probe;
pub mod route;
mod sockopt;
pub mod sysctl;

/// Without the `fault-injection` feature every fault point is a no-op the
/// compiler removes, and CNM_FAULT is never read.
#[cfg(not(feature = "fault-injection"))]
pub mod fault {
    #[inline(always)]
    pub fn point(_point: &str) -> crate::error::Result<()> {
        Ok(())
    }
}

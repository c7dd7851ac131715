//! Traffic from inside a netns without any program: sockets made there
//! (handed to Node, which adopts them), ICMP echo and DNS queries. What
//! `cnm demo` and tests use in place of `ip netns exec ping/getent`. Each
//! runs on a short-lived thread of its own that entered the netns (see
//! `netns::thread`); a socket keeps the netns it was made in wherever it is
//! used afterwards.

mod dns;
mod ping;
mod socket;

pub use dns::lookup;
pub use ping::{ping, PingReport};
pub use socket::{socket_in, SocketSpec};

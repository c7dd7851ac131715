//! The fixed part of our nftables firewall: `table ip cnm` and its IPv6 twin,
//! their sets, maps and chains, written once per netns by `nft -f -`.

pub const TABLE: &str = "cnm";

/// The base ruleset; `create table` first makes the whole transaction fail
/// (and add nothing twice) when a table already exists. The version comment
/// goes with `create`: the kernel keeps the user data a table is created
/// with, and ignores it in a later `table … { comment … }` of the same
/// transaction (which is an update).
///
/// Legacy links (`links`: from . to . proto . port) are accepted first in
/// `forward`, both ways, before icc's verdict: on a network without icc they
/// are all that passes between its sandboxes.
///
/// Per family, networks are elements: `bridges` (every bridge), `masq`,
/// `internal`, `intra` (icc verdict), `filtered` (only published container
/// ports open from outside: gateway modes nat and routed), `routed` (ICMP
/// open too), `protected` / `allowed` (direct-access protection of a nat
/// network: its bridge, and `bridge . ifname` for lo and each trusted
/// interface). Published ports are DNAT map elements and `open_nat` /
/// `open_routed` elements (container address . proto . port). Every set is a
/// hash: one element costs the same however many there are.
///
/// Direct-access protection is a forward rule: traffic routed to a protected
/// bridge from an interface not allowed for it is dropped, unless it is a
/// published host port (DNATed, accepted before) or a reply to a connection
/// the containers opened. Traffic for the bridge's own address is the host's,
/// not forwarded, and not touched. Keyed on interfaces rather than subnets so
/// that no interval set (whose updates cost as much as its size) is needed.
///
/// The IPv6 table has no localhost rule: ::1 cannot be routed out (there is no
/// route_localnet for IPv6), so connections to ::1 are not DNATed at all
/// rather than DNATed into a black hole.
///
/// The operator's own rules belong in a table of their own (cnm never touches
/// another table); base chains with a priority below ours run first.
pub const RULESET: &str = r#"create table ip cnm { comment "managed by cnm v6"; }
create table ip6 cnm { comment "managed by cnm v6"; }
table ip cnm {
  set bridges { type ifname; }
  set masq { type ifname; }
  set internal { type ifname; }
  set filtered { type ifname; }
  set routed { type ifname; }
  set protected { type ifname; }
  set allowed { type ifname . ifname; }
  set open_nat { type ipv4_addr . inet_proto . inet_service; }
  set open_routed { type ipv4_addr . inet_proto . inet_service; }
  set links { type ipv4_addr . ipv4_addr . inet_proto . inet_service; }
  map intra { type ifname . ifname : verdict; }
  map ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports_ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump publish; }
  chain output { type nat hook output priority -100; policy accept; fib daddr type local jump publish; }
  chain publish {
    iifname @bridges meta mark set meta mark | 0x00020000
    dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
    dnat ip to meta l4proto . th dport map @ports
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    ct status dnat oifname @bridges meta mark & 0x00020000 == 0x00020000 masquerade
    ip saddr 127.0.0.0/8 oifname @bridges masquerade
    meta rtclassid 0x00c100c1 return
    iifname @masq oifname != @bridges masquerade
  }
  chain forward { type filter hook forward priority filter; policy accept;
    ip saddr . ip daddr . meta l4proto . th dport @links accept
    ip daddr . ip saddr . meta l4proto . th sport @links accept
    iifname . oifname vmap @intra
    iifname @internal drop
    oifname @internal drop
    ct status dnat accept
    oifname @protected ct state != { established, related } oifname . iifname != @allowed drop
    oifname @filtered jump inbound
    iifname @bridges oifname @bridges drop
  }
  chain inbound {
    ct state established,related accept
    ip daddr . meta l4proto . th dport @open_routed accept
    oifname @routed meta l4proto icmp accept
    iifname @bridges drop
    ip daddr . meta l4proto . th dport @open_nat accept
    drop
  }
}
table ip6 cnm {
  set bridges { type ifname; }
  set masq { type ifname; }
  set internal { type ifname; }
  set filtered { type ifname; }
  set routed { type ifname; }
  set protected { type ifname; }
  set allowed { type ifname . ifname; }
  set open_nat { type ipv6_addr . inet_proto . inet_service; }
  set open_routed { type ipv6_addr . inet_proto . inet_service; }
  set links { type ipv6_addr . ipv6_addr . inet_proto . inet_service; }
  map intra { type ifname . ifname : verdict; }
  map ports { type inet_proto . inet_service : ipv6_addr . inet_service; }
  map ports_ip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump publish; }
  chain output { type nat hook output priority -100; policy accept; ip6 daddr != ::1 fib daddr type local jump publish; }
  chain publish {
    iifname @bridges meta mark set meta mark | 0x00020000
    dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_ip
    dnat ip6 to meta l4proto . th dport map @ports
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    ct status dnat oifname @bridges meta mark & 0x00020000 == 0x00020000 masquerade
    iifname @masq oifname != @bridges masquerade
  }
  chain forward { type filter hook forward priority filter; policy accept;
    ip6 saddr . ip6 daddr . meta l4proto . th dport @links accept
    ip6 daddr . ip6 saddr . meta l4proto . th sport @links accept
    iifname . oifname vmap @intra
    iifname @internal drop
    oifname @internal drop
    ct status dnat accept
    oifname @protected ct state != { established, related } oifname . iifname != @allowed drop
    oifname @filtered jump inbound
    iifname @bridges oifname @bridges drop
  }
  chain inbound {
    ct state established,related accept
    ip6 daddr . meta l4proto . th dport @open_routed accept
    oifname @routed meta l4proto ipv6-icmp accept
    iifname @bridges drop
    ip6 daddr . meta l4proto . th dport @open_nat accept
    drop
  }
}
"#;

/// The families of our two tables.
pub(super) const FAMILIES: [u8; 2] = [NFPROTO_IPV4, NFPROTO_IPV6];

pub(super) fn family_name(family: u8) -> &'static str {
    if family == NFPROTO_IPV6 {
        "ip6"
    } else {
        "ip"
    }
}

// linux/netfilter.h
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_IPV6: u8 = 10;

/// The comment of the current base ruleset: a table with another one was made
/// by an older cnm and is replaced (reconcile then restores its elements).
pub(super) const VERSION_TAG: &[u8] = b"managed by cnm v6";

//! The rules of a legacy link, per direction, in CNM-FORWARD and inserted so
//! that they come before the icc verdict of the network (which a network
//! re-added later inserts above them: the planner then moves its links back
//! on top). Tagged `cnm:link:<tag>/<bridge>`.
//!
//! `-s FROM -d TO -i BR -o BR -p P --dport PORT -j ACCEPT` (the linking side
//! opens connections), and `-s TO -d FROM -i BR -o BR -p P --sport PORT -j
//! ACCEPT` (the replies).

use super::rule::{comment, opt, options, Rule, Table};
use super::ruleset::FORWARD;
use crate::firewall::{Link, Proto};

pub(super) const LINK_TAG: &str = "cnm:link:";

fn link_comment(l: &Link) -> String {
    format!("{LINK_TAG}{}/{}", l.tag, l.bridge)
}

/// Both rules of a link, the one towards the linked sandbox first.
pub(super) fn link_rules(l: &Link) -> [Rule; 2] {
    let table = Table::filter(l.from.is_ipv6());
    let proto = l.proto.as_str();
    let port = l.port.to_string();
    let (from, to) = (l.from.to_string(), l.to.to_string());
    let one = |src: &str, dst: &str, dir: &str| {
        let head = [
            "-s", src, "-d", dst, "-i", &l.bridge, "-o", &l.bridge, "-p", proto, "-m", proto, dir,
            &port,
        ];
        Rule::tagged(table, FORWARD, &head, &link_comment(l), &["-j", "ACCEPT"])
    };
    [one(&from, &to, "--dport"), one(&to, &from, "--sport")]
}

/// The bridge of a saved link rule of ours.
pub(super) fn saved_link_bridge(rule: &Rule) -> Option<String> {
    let opts = options(&rule.args);
    let rest = comment(&opts)?.strip_prefix(LINK_TAG)?;
    Some(rest.split_once('/')?.1.to_string())
}

/// The link a saved rule of ours stands for (its first rule, --dport, only).
pub(super) fn saved_link(rule: &Rule) -> Option<Link> {
    if rule.chain != FORWARD {
        return None;
    }
    let opts = options(&rule.args);
    let (tag, bridge) = comment(&opts)?.strip_prefix(LINK_TAG)?.split_once('/')?;
    let port = opt(&opts, "--dport")?.1.parse().ok()?;
    let (false, from) = opt(&opts, "-s")? else {
        return None;
    };
    let (false, to) = opt(&opts, "-d")? else {
        return None;
    };
    Some(Link {
        proto: Proto::parse(opt(&opts, "-p")?.1).ok()?,
        from: from.split('/').next()?.parse().ok()?,
        to: to.split('/').next()?.parse().ok()?,
        port,
        bridge: bridge.to_string(),
        tag: tag.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            proto: Proto::Tcp,
            from: "10.9.0.2".parse().unwrap(),
            to: "10.9.0.3".parse().unwrap(),
            port: 5432,
            bridge: "br0".into(),
            tag: "l1".into(),
        }
    }

    #[test]
    fn both_directions_and_read_back() {
        let rules = link_rules(&link());
        let lines: Vec<String> = rules.iter().map(|r| r.line("-I")).collect();
        assert_eq!(
            lines,
            [
                "-I CNM-FORWARD 1 -s 10.9.0.2 -d 10.9.0.3 -i br0 -o br0 -p tcp -m tcp --dport 5432 -m comment --comment cnm:link:l1/br0 -j ACCEPT",
                "-I CNM-FORWARD 1 -s 10.9.0.3 -d 10.9.0.2 -i br0 -o br0 -p tcp -m tcp --sport 5432 -m comment --comment cnm:link:l1/br0 -j ACCEPT",
            ]
        );
        assert_eq!(saved_link(&rules[0]), Some(link()));
        assert_eq!(
            saved_link(&rules[1]),
            None,
            "the reply rule is not a link of its own"
        );
        assert_eq!(saved_link_bridge(&rules[1]).as_deref(), Some("br0"));
        let v6 = Link {
            from: "fd00::2".parse().unwrap(),
            to: "fd00::3".parse().unwrap(),
            ..link()
        };
        assert!(link_rules(&v6)[0].table.v6());
    }
}

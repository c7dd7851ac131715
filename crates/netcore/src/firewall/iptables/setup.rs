//! The scripts of `init` (our chains, the jumps into them, their fixed
//! rules, each group in its order) and `reset` (all of it gone, but the
//! operator's CNM-USER while it holds rules).

use super::plan::Script;
use super::rule::{opt, options, Pos, Table};
use super::ruleset::{chains, fixed_rules, is_ours, is_shard, managed_chains, Ordered, USER};
use super::saved::Saved;

/// What `init` adds to the tables `saved` shows, in the families `families`.
/// A group of fixed rules not all there in its order (a netns set up by an
/// older cnm, or rules moved by hand) is deleted and written again, in one
/// restore, so nothing runs half in order.
pub(super) fn init_script(saved: &Saved, families: &[bool]) -> Script {
    let mut script = Script::default();
    for &v6 in families {
        for (t, c) in chains(v6) {
            if !saved.has_chain(t, c) {
                script.push(t, format!(":{c} - [0:0]"));
            }
        }
        for group in fixed_rules(v6) {
            if !in_order(saved, &group) {
                rewrite(saved, &group, &mut script);
            }
        }
    }
    script
}

/// Whether every rule of a group is there, in its order.
fn in_order(saved: &Saved, group: &Ordered) -> bool {
    let mut last = None;
    for r in &group.rules {
        match saved.position(r) {
            Some(at) if last.is_none_or(|l| at > l) => last = Some(at),
            _ => return false,
        }
    }
    true
}

fn rewrite(saved: &Saved, group: &Ordered, script: &mut Script) {
    for r in &group.rules {
        if saved.has_rule(r) {
            script.push(r.table, r.line("-D"));
        }
    }
    match group.pos {
        Pos::Append => {
            for r in &group.rules {
                script.push(r.table, r.line("-A"));
            }
        }
        // Each inserted at the head: the last first.
        Pos::Insert => {
            for r in group.rules.iter().rev() {
                script.push(r.table, r.line("-I"));
            }
        }
    }
}

/// What `reset` removes: the jumps into our chains from the others (the one
/// into CNM-USER too), then our chains. CNM-USER goes only when empty: with
/// rules it keeps them for the next `init`, and an empty one would be a
/// leftover of ours.
pub(super) fn reset_script(saved: &Saved, families: &[bool]) -> Script {
    let mut script = Script::default();
    for r in &saved.rules {
        let target = opt(&options(&r.args), "-j").map(|(_, t)| t.to_string());
        if !is_ours(&r.chain) && target.as_deref().is_some_and(is_ours) {
            script.push(r.table, r.line("-D"));
        }
    }
    let mut managed: Vec<(Table, String)> = families
        .iter()
        .flat_map(|v6| managed_chains(*v6))
        .map(|(t, c)| (t, c.to_string()))
        .collect();
    // the shards of published ports (sorted: the script reads the same each time)
    let mut shards: Vec<(Table, String)> = saved
        .chains
        .iter()
        .filter(|(t, c)| families.contains(&t.v6()) && is_shard(c))
        .cloned()
        .collect();
    shards.sort();
    managed.extend(shards);
    for (t, c) in &managed {
        if saved.has_chain(*t, c) {
            script.push(*t, format!("-F {c}"));
        }
    }
    for (t, c) in &managed {
        if saved.has_chain(*t, c) {
            script.push(*t, format!("-X {c}"));
        }
    }
    for &v6 in families {
        let t = Table::filter(v6);
        let used = saved.rules.iter().any(|r| r.table == t && r.chain == USER);
        if saved.has_chain(t, USER) && !used {
            script.push(t, format!("-X {USER}"));
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::iptables::fixtures::*;

    #[test]
    fn init_of_a_fresh_netns() {
        let script = init_script(&Saved::default(), &[false, true]);
        for v6 in [false, true] {
            let filter = script.lines(Table::filter(v6));
            assert!(filter.contains(&":CNM-USER - [0:0]".to_string()));
            // CNM-USER ends up first in FORWARD: inserted last
            let fwd: Vec<&String> = filter.iter().filter(|l| l.contains(" FORWARD ")).collect();
            assert_eq!(
                fwd,
                ["-I FORWARD 1 -j CNM-FORWARD", "-I FORWARD 1 -j CNM-USER"]
            );
            let tail: Vec<&String> = filter
                .iter()
                .filter(|l| l.starts_with("-A CNM-FORWARD"))
                .collect();
            assert_eq!(
                tail,
                [
                    "-A CNM-FORWARD -m conntrack --ctstate DNAT -j ACCEPT",
                    "-A CNM-FORWARD -j CNM-OPEN",
                    "-A CNM-FORWARD -j CNM-ISOLATION",
                    "-A CNM-FORWARD -j CNM-INBOUND"
                ]
            );
            let mangle = script.lines(Table::mangle(v6));
            assert_eq!(
                mangle,
                [
                    ":CNM-DIRECT - [0:0]",
                    "-A PREROUTING -j CNM-DIRECT",
                    "-I CNM-DIRECT 1 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
                ]
            );
        }
        // chains come before the rules of their table
        let nat = script.lines(Table::Nat);
        assert!(nat[0].starts_with(':') && nat[1].starts_with(':'));
        // but the cluster realm's RETURN, which goes first in CNM-POSTROUTING (IPv4 only)
        let realm = "-I CNM-POSTROUTING 1 -m realm --realm 0xc100c1 -j RETURN";
        assert!(nat[2..].iter().all(|l| l.starts_with("-A ") || l == realm));
        assert!(nat.iter().any(|l| l == realm));
        assert!(!script
            .lines(Table::Nat6)
            .iter()
            .any(|l| l.contains("realm")));
    }

    #[test]
    fn init_twice_adds_nothing() {
        let mut saved = Saved::parse(SAVED_NEW, false);
        saved.add(SAVED6_NEW, true);
        assert_eq!(init_script(&saved, &[false, true]).commits(), 0);
    }

    #[test]
    fn init_puts_an_older_layout_in_order() {
        // as an older cnm left it: CNM-FORWARD jumped to first, no CNM-USER,
        // no CNM-OPEN / CNM-INBOUND, no mangle table
        let old = "*filter\n:FORWARD ACCEPT [0:0]\n:CNM-FORWARD - [0:0]\n:CNM-ISOLATION - [0:0]\n\
                   -A FORWARD -j CNM-FORWARD\n-A FORWARD -j OTHER\n\
                   -A CNM-FORWARD -i br0 -o br0 -m comment --comment \"cnm:net:n1\" -j ACCEPT\n\
                   -A CNM-FORWARD -m conntrack --ctstate DNAT -j ACCEPT\n-A CNM-FORWARD -j CNM-ISOLATION\nCOMMIT\n";
        let script = init_script(&Saved::parse(old, false), &[false]);
        let filter = script.lines(Table::Filter);
        let rules: Vec<&String> = filter.iter().filter(|l| !l.starts_with(':')).collect();
        assert_eq!(
            rules,
            [
                "-D FORWARD -j CNM-FORWARD",
                "-I FORWARD 1 -j CNM-FORWARD",
                "-I FORWARD 1 -j CNM-USER",
                "-D CNM-FORWARD -m conntrack --ctstate DNAT -j ACCEPT",
                "-D CNM-FORWARD -j CNM-ISOLATION",
                "-A CNM-FORWARD -m conntrack --ctstate DNAT -j ACCEPT",
                "-A CNM-FORWARD -j CNM-OPEN",
                "-A CNM-FORWARD -j CNM-ISOLATION",
                "-A CNM-FORWARD -j CNM-INBOUND",
            ]
        );
        let chains: Vec<&String> = filter.iter().filter(|l| l.starts_with(':')).collect();
        assert_eq!(
            chains,
            [
                ":CNM-USER - [0:0]",
                ":CNM-OPEN - [0:0]",
                ":CNM-ISOLATION-2 - [0:0]",
                ":CNM-INBOUND - [0:0]"
            ]
        );
        // CNM-USER after CNM-FORWARD is out of order too
        let swapped = SAVED_NEW.replace(
            "-A FORWARD -j CNM-USER\n-A FORWARD -j CNM-FORWARD",
            "-A FORWARD -j CNM-FORWARD\n-A FORWARD -j CNM-USER",
        );
        let script = init_script(&Saved::parse(&swapped, false), &[false]);
        assert_eq!(script.lines(Table::Filter).len(), 4);
        assert_eq!(script.commits(), 1);
    }

    #[test]
    fn reset_keeps_the_operators_chain() {
        let mut saved = Saved::parse(SAVED_NEW, false);
        saved.add(SAVED6_NEW, true);
        let script = reset_script(&saved, &[false, true]);
        for v6 in [false, true] {
            let filter = script.lines(Table::filter(v6));
            assert!(filter.contains(&"-D FORWARD -j CNM-USER".to_string()));
            assert!(filter.contains(&"-D FORWARD -j CNM-FORWARD".to_string()));
            assert!(filter.contains(&"-X CNM-INBOUND".to_string()));
            // IPv4's CNM-USER holds a rule and stays; IPv6's is empty and goes
            let user: Vec<&String> = filter
                .iter()
                .filter(|l| l.contains("CNM-USER") && !l.starts_with("-D FORWARD"))
                .collect();
            let want: &[&str] = if v6 { &["-X CNM-USER"] } else { &[] };
            assert_eq!(user, want);
            let mangle = script.lines(Table::mangle(v6));
            assert_eq!(
                mangle,
                [
                    "-D PREROUTING -j CNM-DIRECT",
                    "-F CNM-DIRECT",
                    "-X CNM-DIRECT"
                ]
            );
        }
        // an empty CNM-USER goes with the rest
        let empty =
            "*filter\n:FORWARD ACCEPT [0:0]\n:CNM-USER - [0:0]\n-A FORWARD -j CNM-USER\nCOMMIT\n";
        assert_eq!(
            reset_script(&Saved::parse(empty, false), &[false]).lines(Table::Filter),
            ["-D FORWARD -j CNM-USER", "-X CNM-USER"]
        );
        // the shards of published ports go with the chains that jump into them
        let sharded = "*nat\n:PREROUTING ACCEPT [0:0]\n:CNM-PREROUTING - [0:0]\n:CNM-DNAT-TCP-31 - [0:0]\n-A PREROUTING -j CNM-PREROUTING\n-A CNM-PREROUTING -p tcp -m tcp --dport 7936:8191 -j CNM-DNAT-TCP-31\nCOMMIT\n";
        assert_eq!(
            reset_script(&Saved::parse(sharded, false), &[false]).lines(Table::Nat),
            [
                "-D PREROUTING -j CNM-PREROUTING",
                "-F CNM-PREROUTING",
                "-F CNM-DNAT-TCP-31",
                "-X CNM-PREROUTING",
                "-X CNM-DNAT-TCP-31"
            ]
        );
        // nothing of ours but the operator's rules: nothing to do
        let user_only =
            "*filter\n:FORWARD ACCEPT [0:0]\n:CNM-USER - [0:0]\n-A CNM-USER -j DROP\nCOMMIT\n";
        assert_eq!(
            reset_script(&Saved::parse(user_only, false), &[false]).commits(),
            0
        );
    }
}

//! The rule model: a rule is a table, a chain and the arguments after the
//! chain name, written back as a line of `iptables-restore` input; two rules
//! are compared by meaning (a [`RuleKey`]), since `iptables-save` adds
//! `-m tcp` and `/32` and reorders matches.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Table {
    Nat,
    Filter,
    Mangle,
    /// The nat table of ip6tables.
    Nat6,
    /// The filter table of ip6tables.
    Filter6,
    /// The mangle table of ip6tables.
    Mangle6,
}

impl Table {
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Nat | Table::Nat6 => "nat",
            Table::Filter | Table::Filter6 => "filter",
            Table::Mangle | Table::Mangle6 => "mangle",
        }
    }

    /// The table of `name` ("nat", "filter", "mangle") in one family.
    pub(super) fn parse(name: &str, v6: bool) -> Option<Table> {
        match name {
            "nat" => Some(Table::nat(v6)),
            "filter" => Some(Table::filter(v6)),
            "mangle" => Some(Table::mangle(v6)),
            _ => None,
        }
    }

    pub(super) fn v6(self) -> bool {
        matches!(self, Table::Nat6 | Table::Filter6 | Table::Mangle6)
    }

    pub(super) fn nat(v6: bool) -> Table {
        if v6 {
            Table::Nat6
        } else {
            Table::Nat
        }
    }

    pub(super) fn filter(v6: bool) -> Table {
        if v6 {
            Table::Filter6
        } else {
            Table::Filter
        }
    }

    pub(super) fn mangle(v6: bool) -> Table {
        if v6 {
            Table::Mangle6
        } else {
            Table::Mangle
        }
    }

    /// "iptables" or "ip6tables", for messages.
    pub(super) fn program(self) -> &'static str {
        if self.v6() {
            "ip6tables"
        } else {
            "iptables"
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pos {
    Append,
    /// Insert at the head of the chain.
    Insert,
}

/// A rule: table, chain and the arguments after the chain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) table: Table,
    pub(super) chain: String,
    pub(super) args: Vec<String>,
}

impl Rule {
    pub(super) fn new(table: Table, chain: &str, args: &[&str]) -> Rule {
        Rule {
            table,
            chain: chain.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `head… -m comment --comment COMMENT tail…`: a rule tagged as ours.
    pub(super) fn tagged(
        table: Table,
        chain: &str,
        head: &[&str],
        comment: &str,
        tail: &[&str],
    ) -> Rule {
        let cm = ["-m", "comment", "--comment", comment];
        Rule {
            table,
            chain: chain.to_string(),
            args: head
                .iter()
                .chain(&cm)
                .chain(tail)
                .map(|s| s.to_string())
                .collect(),
        }
    }

    pub(super) fn key(&self) -> RuleKey {
        RuleKey {
            table: self.table,
            chain: self.chain.clone(),
            opts: options(&self.args),
        }
    }

    pub(super) fn line(&self, verb: &str) -> String {
        let mut out = format!("{verb} {}", self.chain);
        if verb == "-I" {
            out.push_str(" 1");
        }
        for a in &self.args {
            out.push(' ');
            out.push_str(&quote(a));
        }
        out
    }
}

pub(super) fn quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/!+=,@%[]".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// One option of a rule: (negated, name, value).
pub(super) type Opt = (bool, String, Option<String>);

/// A rule compared by meaning, not by text: `iptables-save` adds `-m tcp`,
/// `/32` and reorders matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RuleKey {
    pub(super) table: Table,
    pub(super) chain: String,
    pub(super) opts: Vec<Opt>,
}

pub(super) const WITH_VALUE: &[&str] = &[
    "-s",
    "-d",
    "-i",
    "-o",
    "-p",
    "--dport",
    "--src-type",
    "--dst-type",
    "--ctstate",
    "--comment",
    "-j",
    "--to-destination",
];

pub(super) fn options(args: &[String]) -> Vec<Opt> {
    let mut out = Vec::new();
    let mut neg = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "!" => {
                neg = true;
                continue;
            }
            "-m" | "--match" => {
                i += 1; // modules are implied by their options
                continue;
            }
            _ => {}
        }
        let name = match a {
            "--source" => "-s",
            "--destination" => "-d",
            "--in-interface" => "-i",
            "--out-interface" => "-o",
            "--protocol" => "-p",
            "--jump" => "-j",
            "--destination-port" => "--dport",
            other => other,
        };
        if WITH_VALUE.contains(&name) {
            let mut v = args.get(i).cloned();
            i += 1;
            if matches!(name, "-s" | "-d") {
                v = v.map(|s| {
                    s.strip_suffix("/32")
                        .or_else(|| s.strip_suffix("/128"))
                        .map(str::to_string)
                        .unwrap_or(s)
                });
            }
            out.push((neg, name.to_string(), v));
        } else {
            out.push((neg, name.to_string(), None));
        }
        neg = false;
    }
    out.sort();
    out
}

pub(super) fn opt<'a>(opts: &'a [Opt], name: &str) -> Option<(bool, &'a str)> {
    opts.iter()
        .find(|(_, n, _)| n == name)
        .and_then(|(neg, _, v)| v.as_deref().map(|v| (*neg, v)))
}

pub(super) fn comment(opts: &[Opt]) -> Option<&str> {
    opt(opts, "--comment").map(|(_, v)| v)
}

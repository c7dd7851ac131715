//! nf_tables rule expressions as the kernel takes them over netlink, for the
//! few kinds our base ruleset uses (the same bytecode `nft` compiles it to:
//! `nft --debug=netlink` prints it).

use super::encode::{put_verdict, NFTA_DATA_VALUE, NFTA_LIST_ELEM};
use crate::firewall::nfnl::Writer;

// linux/netfilter/nf_tables.h
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

/// Registers: NFT_REG_VERDICT, the 16-byte NFT_REG_1..4 and the 4-byte
/// NFT_REG32_00..15 (which alias them).
pub(super) const REG_VERDICT: u32 = 0;
pub(super) const REG_1: u32 = 1;
const REG32_00: u32 = 8;

/// The registers nft loads a concatenation into: consecutive 4-byte words
/// from the first, each component padded to a word; a component that starts
/// a 16-byte register is named by it.
pub(super) fn concat_regs(lens: &[u32]) -> Vec<u32> {
    let mut word = 0;
    lens.iter()
        .map(|len| {
            let reg = if word % 4 == 0 {
                REG_1 + word / 4
            } else {
                REG32_00 + word
            };
            word += len.div_ceil(4);
            reg
        })
        .collect()
}

// meta keys (enum nft_meta_keys)
pub(super) const META_MARK: u32 = 3;
pub(super) const META_IIFNAME: u32 = 6;
pub(super) const META_OIFNAME: u32 = 7;
pub(super) const META_RTCLASSID: u32 = 13;
pub(super) const META_L4PROTO: u32 = 16;
// payload bases
pub(super) const NETWORK_HEADER: u32 = 1;
pub(super) const TRANSPORT_HEADER: u32 = 2;
// ct keys
pub(super) const CT_STATE: u32 = 0;
pub(super) const CT_STATUS: u32 = 2;
// verdicts beside NF_DROP and NF_ACCEPT (encode.rs): negative codes, as u32
const NFT_JUMP: u32 = -3i32 as u32;
const NFT_RETURN: u32 = -5i32 as u32;
// cmp operators
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
// fib: the address type of the destination
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 1 << 1;
// nat
const NAT_DNAT: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    MetaSet {
        key: u32,
        sreg: u32,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Bitwise {
        reg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    Fib {
        result: u32,
        flags: u32,
        dreg: u32,
    },
    Lookup {
        set: &'static str,
        sreg: u32,
        dreg: Option<u32>,
        invert: bool,
    },
    Immediate {
        code: u32,
        chain: Option<&'static str>,
    },
    Dnat {
        family: u8,
        addr: u32,
        proto: u32,
    },
    Masq,
}

// Short constructors, named as nft writes them.
pub(super) fn meta(key: u32, dreg: u32) -> Expr {
    Expr::Meta { key, dreg }
}
pub(super) fn payload(base: u32, offset: u32, len: u32, dreg: u32) -> Expr {
    Expr::Payload {
        base,
        offset,
        len,
        dreg,
    }
}
pub(super) fn eq(sreg: u32, data: &[u8]) -> Expr {
    Expr::Cmp {
        sreg,
        op: CMP_EQ,
        data: data.to_vec(),
    }
}
pub(super) fn neq(sreg: u32, data: &[u8]) -> Expr {
    Expr::Cmp {
        sreg,
        op: CMP_NEQ,
        data: data.to_vec(),
    }
}
/// `reg = reg & mask` on a host-order u32 (a flag test, with eq/neq after).
pub(super) fn and(reg: u32, mask: u32) -> Expr {
    Expr::Bitwise {
        reg,
        mask: mask.to_ne_bytes().to_vec(),
        xor: vec![0; 4],
    }
}
/// `in @set`; `lookup_not`: `!= @set`.
pub(super) fn lookup(set: &'static str, sreg: u32) -> Expr {
    Expr::Lookup {
        set,
        sreg,
        dreg: None,
        invert: false,
    }
}
pub(super) fn lookup_not(set: &'static str, sreg: u32) -> Expr {
    Expr::Lookup {
        set,
        sreg,
        dreg: None,
        invert: true,
    }
}
/// A map lookup whose data lands in `dreg` (REG_VERDICT: a vmap).
pub(super) fn map(set: &'static str, sreg: u32, dreg: u32) -> Expr {
    Expr::Lookup {
        set,
        sreg,
        dreg: Some(dreg),
        invert: false,
    }
}
pub(super) fn ct(key: u32, dreg: u32) -> Expr {
    Expr::Ct { key, dreg }
}
/// `fib daddr type` into `dreg`.
pub(super) fn fib_daddr_type(dreg: u32) -> Expr {
    Expr::Fib {
        result: FIB_RESULT_ADDRTYPE,
        flags: FIB_F_DADDR,
        dreg,
    }
}
pub(super) fn verdict(code: u32) -> Expr {
    Expr::Immediate { code, chain: None }
}
pub(super) fn ret() -> Expr {
    verdict(NFT_RETURN)
}
pub(super) fn jump(chain: &'static str) -> Expr {
    Expr::Immediate {
        code: NFT_JUMP,
        chain: Some(chain),
    }
}

fn data_value(w: &mut Writer, ty: u16, bytes: &[u8]) {
    let d = w.nest(ty);
    w.attr(NFTA_DATA_VALUE, bytes);
    w.nest_end(d);
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::Fib { .. } => "fib",
            Expr::Lookup { .. } => "lookup",
            Expr::Immediate { .. } => "immediate",
            Expr::Dnat { .. } => "nat",
            Expr::Masq => "masq",
        }
    }

    /// Writes this expression as one NFTA_LIST_ELEM of NFTA_RULE_EXPRESSIONS.
    pub(super) fn put(&self, w: &mut Writer) {
        let elem = w.nest(NFTA_LIST_ELEM);
        w.attr_str(NFTA_EXPR_NAME, self.name());
        let data = w.nest(NFTA_EXPR_DATA);
        match self {
            // NFTA_META_DREG 1, KEY 2, SREG 3
            Expr::Meta { key, dreg } => {
                w.attr_be32(1, *dreg);
                w.attr_be32(2, *key);
            }
            Expr::MetaSet { key, sreg } => {
                w.attr_be32(2, *key);
                w.attr_be32(3, *sreg);
            }
            // NFTA_PAYLOAD_DREG 1, BASE 2, OFFSET 3, LEN 4
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                w.attr_be32(1, *dreg);
                w.attr_be32(2, *base);
                w.attr_be32(3, *offset);
                w.attr_be32(4, *len);
            }
            // NFTA_CMP_SREG 1, OP 2, DATA 3
            Expr::Cmp { sreg, op, data } => {
                w.attr_be32(1, *sreg);
                w.attr_be32(2, *op);
                data_value(w, 3, data);
            }
            // NFTA_BITWISE_SREG 1, DREG 2, LEN 3, MASK 4, XOR 5
            Expr::Bitwise { reg, mask, xor } => {
                w.attr_be32(1, *reg);
                w.attr_be32(2, *reg);
                w.attr_be32(3, mask.len() as u32);
                data_value(w, 4, mask);
                data_value(w, 5, xor);
            }
            // NFTA_CT_DREG 1, KEY 2
            Expr::Ct { key, dreg } => {
                w.attr_be32(1, *dreg);
                w.attr_be32(2, *key);
            }
            // NFTA_FIB_DREG 1, RESULT 2, FLAGS 3
            Expr::Fib {
                result,
                flags,
                dreg,
            } => {
                w.attr_be32(1, *dreg);
                w.attr_be32(2, *result);
                w.attr_be32(3, *flags);
            }
            // NFTA_LOOKUP_SET 1, SREG 2, DREG 3, FLAGS 5
            Expr::Lookup {
                set,
                sreg,
                dreg,
                invert,
            } => {
                w.attr_str(1, set);
                w.attr_be32(2, *sreg);
                if let Some(d) = dreg {
                    w.attr_be32(3, *d);
                }
                if *invert {
                    w.attr_be32(5, NFT_LOOKUP_F_INV);
                }
            }
            // NFTA_IMMEDIATE_DREG 1, DATA 2
            Expr::Immediate { code, chain } => {
                w.attr_be32(1, REG_VERDICT);
                put_verdict(w, 2, *code, *chain);
            }
            // NFTA_NAT_TYPE 1, FAMILY 2, REG_ADDR_MIN 3, REG_PROTO_MIN 5
            Expr::Dnat {
                family,
                addr,
                proto,
            } => {
                w.attr_be32(1, NAT_DNAT);
                w.attr_be32(2, u32::from(*family));
                w.attr_be32(3, *addr);
                w.attr_be32(5, *proto);
            }
            Expr::Masq => {}
        }
        w.nest_end(data);
        w.nest_end(elem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_registers_as_nft_allocates_them() {
        // ip saddr . ip daddr . meta l4proto . th dport
        assert_eq!(concat_regs(&[4, 4, 1, 2]), [1, 9, 10, 11]);
        // ip6 saddr . ip6 daddr . meta l4proto . th dport
        assert_eq!(concat_regs(&[16, 16, 1, 2]), [1, 2, 3, 17]);
        // ip6 daddr . meta l4proto . th dport
        assert_eq!(concat_regs(&[16, 1, 2]), [1, 2, 13]);
        // ifname . ifname
        assert_eq!(concat_regs(&[16, 16]), [1, 2]);
    }

    #[test]
    fn cmp_encoding() {
        let mut w = Writer::default();
        eq(1, &[0x7f]).put(&mut w);
        let b = w.bytes();
        // list elem, name "cmp", data { sreg 1, op eq, data { value 0x7f } }
        assert!(b.windows(4).any(|x| x == b"cmp\0"));
        assert!(b.windows(5).any(|x| x == [5, 0, 1, 0, 0x7f]));
    }
}

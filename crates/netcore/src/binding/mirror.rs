//! JavaScript objects that mirror netcore's domain types.
//!
//! A `#[napi(object)]` struct with `#[derive(Mirror)]` and
//! `#[mirror(path::To::DomainType)]` (crates/netcore-derive) gets [`Wire`]
//! implemented between it and the domain type, field by field, in both
//! directions. The domain struct is built with a struct literal naming every
//! field of the binding struct, so a field added to, removed from or retyped
//! in the domain type without the binding following does not compile.
//!
//! A field's JavaScript type may differ from its domain type, as long as a
//! [`Wire`] conversion between the two exists: parsed values (addresses,
//! subnets, protocols, ports) travel as strings and numbers, a list that may
//! be left out arrives as `Option<Vec<_>>` and becomes empty, and an empty or
//! null string means "none".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use napi::bindgen_prelude::{Either, Null};

use crate::error::Result;
use crate::firewall::{self, BackendName, GatewayMode, Proto, Subnet, Subnet6};

/// A domain value as JavaScript carries it in type `Js`: validated on the way
/// in, infallible on the way out. `field` names the field (snake_case) for
/// error messages.
pub trait Wire<Js>: Sized {
    fn from_js(js: Js, field: &'static str) -> Result<Self>;
    fn to_js(self) -> Js;
}

/// The JavaScript name of a field, for messages: `host_port` -> `hostPort`.
pub fn js_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Types JavaScript holds as they are, alone or as an optional value.
macro_rules! same_in_js {
    ($($t:ty),*) => {$(
        impl Wire<$t> for $t {
            fn from_js(js: $t, _field: &'static str) -> Result<Self> {
                Ok(js)
            }
            fn to_js(self) -> $t {
                self
            }
        }

        impl Wire<Option<$t>> for Option<$t> {
            fn from_js(js: Option<$t>, _field: &'static str) -> Result<Self> {
                Ok(js)
            }
            fn to_js(self) -> Option<$t> {
                self
            }
        }
    )*};
}

same_in_js!(String, u32, bool);

/// A list, element by element.
impl<T: Wire<J>, J> Wire<Vec<J>> for Vec<T> {
    fn from_js(js: Vec<J>, field: &'static str) -> Result<Self> {
        js.into_iter().map(|v| T::from_js(v, field)).collect()
    }
    fn to_js(self) -> Vec<J> {
        self.into_iter().map(T::to_js).collect()
    }
}

/// A list JavaScript may leave out: absent means empty.
impl<T: Wire<J>, J> Wire<Option<Vec<J>>> for Vec<T> {
    fn from_js(js: Option<Vec<J>>, field: &'static str) -> Result<Self> {
        js.map_or_else(|| Ok(Vec::new()), |v| Vec::from_js(v, field))
    }
    fn to_js(self) -> Option<Vec<J>> {
        Some(self.to_js())
    }
}

/// A flag JavaScript may leave out: absent means false (unless the field
/// says otherwise with `#[mirror(default = …)]`).
impl Wire<Option<bool>> for bool {
    fn from_js(js: Option<bool>, _field: &'static str) -> Result<Self> {
        Ok(js.unwrap_or(false))
    }
    fn to_js(self) -> Option<bool> {
        Some(self)
    }
}

/// A value that may be unknown, as a string that is empty when it is.
impl<T: Wire<String>> Wire<String> for Option<T> {
    fn from_js(js: String, field: &'static str) -> Result<Self> {
        match js.as_str() {
            "" => Ok(None),
            _ => T::from_js(js, field).map(Some),
        }
    }
    fn to_js(self) -> String {
        self.map(T::to_js).unwrap_or_default()
    }
}

/// A value that may be absent, as `string | null`: JavaScript gets null for
/// none, and absent, null or "" all mean none.
impl<T: Wire<String>> Wire<Option<Either<String, Null>>> for Option<T> {
    fn from_js(js: Option<Either<String, Null>>, field: &'static str) -> Result<Self> {
        match js {
            Some(Either::A(s)) => Option::<T>::from_js(s, field),
            Some(Either::B(Null)) | None => Ok(None),
        }
    }
    fn to_js(self) -> Option<Either<String, Null>> {
        Some(match self {
            Some(v) => Either::A(v.to_js()),
            None => Either::B(Null),
        })
    }
}

/// Values parsed from their text form and shown in it.
macro_rules! text_in_js {
    ($($t:ty => $parse:expr),* $(,)?) => {$(
        impl Wire<String> for $t {
            fn from_js(js: String, field: &'static str) -> Result<Self> {
                let parse: fn(&str, &str) -> Result<$t> = $parse;
                parse(&js, &js_name(field))
            }
            fn to_js(self) -> String {
                self.to_string()
            }
        }
    )*};
}

text_in_js! {
    Ipv4Addr => |s, what| firewall::parse_ipv4(s, what),
    Ipv6Addr => |s, what| firewall::parse_ipv6(s, what),
    IpAddr => |s, what| firewall::parse_ip(s, what),
    GatewayMode => |s, _| GatewayMode::parse(s),
    Subnet => |s, _| Subnet::parse(s),
    Subnet6 => |s, _| Subnet6::parse(s),
    Proto => |s, _| Proto::parse(s),
    BackendName => |s, _| BackendName::parse(s),
}

/// A gateway mode JavaScript may leave out: absent means nat.
impl Wire<Option<String>> for GatewayMode {
    fn from_js(js: Option<String>, field: &'static str) -> Result<Self> {
        js.map_or(Ok(GatewayMode::Nat), |s| GatewayMode::from_js(s, field))
    }
    fn to_js(self) -> Option<String> {
        Some(self.as_str().to_string())
    }
}

/// Ports are JavaScript numbers; 0 and anything past 65535 are refused.
impl Wire<u32> for u16 {
    fn from_js(js: u32, field: &'static str) -> Result<Self> {
        firewall::parse_port(js, &js_name(field))
    }
    fn to_js(self) -> u32 {
        u32::from(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn names_and_conversions() {
        assert_eq!(js_name("container_ip6"), "containerIp6");
        assert_eq!(js_name("tag"), "tag");
        let none: Option<Ipv6Addr> = Wire::from_js(Some(Either::B(Null)), "x").unwrap();
        assert_eq!(none, None);
        let empty: Option<Ipv6Addr> = Wire::from_js(Some(Either::A(String::new())), "x").unwrap();
        assert_eq!(empty, None);
        let ip: Option<Ipv6Addr> = Wire::from_js(Some(Either::A("fd00::2".into())), "x").unwrap();
        assert_eq!(ip, Some("fd00::2".parse().unwrap()));
        assert!(matches!(ip.to_js(), Some(Either::A(s)) if s == "fd00::2"));
        assert!(matches!(None::<Ipv6Addr>.to_js(), Some(Either::B(Null))));
        let err = <Ipv4Addr as Wire<String>>::from_js("x".into(), "host_ip").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("hostIp"), "{}", err.message);
        assert!(<u16 as Wire<u32>>::from_js(0, "host_port").is_err());
        assert_eq!(
            <u16 as Wire<u32>>::from_js(8080, "host_port").unwrap(),
            8080
        );
        let subnet: Option<Subnet> = Wire::from_js(String::new(), "subnet").unwrap();
        assert_eq!(Wire::<String>::to_js(subnet), "");
        let list: Vec<String> = Wire::from_js(None::<Vec<String>>, "addresses").unwrap();
        assert!(list.is_empty());
    }
}

//! net.* sysctls of a netns. /proc/sys/net resolves against the netns of the
//! thread that opens the file, so the open happens on a dedicated thread that
//! entered the netns.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{ns_label, Error, Result};
use crate::netns;

/// A key to its file under /proc/sys, strictly validated. As sysctl(8) reads
/// keys: one that holds a '/' is a path relative to /proc/sys, whose segments
/// may hold dots (`net/ipv4/conf/br.x/route_localnet`, for an interface named
/// br.x); otherwise dots separate the segments (`net.ipv4.ip_forward`). Only
/// net keys; no empty, "." or ".." segment, so nothing outside /proc/sys/net.
pub fn key_path(key: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::invalid(format!("invalid sysctl key {key:?}: {why}"));
    let (sep, allowed): (char, fn(char) -> bool) = if key.contains('/') {
        // a segment may be an interface name: anything but '/', ':',
        // whitespace and control characters
        ('/', |c| c != ':' && !c.is_whitespace() && !c.is_control())
    } else {
        ('.', |c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let segments: Vec<&str> = key.split(sep).collect();
    if segments.first() != Some(&"net") || segments.len() < 2 {
        return Err(bad(&format!("must start with \"net{sep}\"")));
    }
    let mut path = PathBuf::from("/proc/sys");
    for seg in segments {
        if seg.is_empty() {
            return Err(bad("empty segment"));
        }
        if seg == "." || seg == ".." {
            return Err(bad("\".\" and \"..\" segments are not allowed"));
        }
        if !seg.chars().all(allowed) {
            return Err(bad(if sep == '.' {
                "only [A-Za-z0-9_.-] allowed (a key with '/' is a path, for names with dots)"
            } else {
                "no ':', whitespace or control characters"
            }));
        }
        path.push(seg);
    }
    Ok(path)
}

fn file_error(e: &std::io::Error, what: &str, key: &str, netns: Option<&str>) -> Error {
    let ctx = format!("{what} sysctl {key} in netns {}", ns_label(netns));
    if e.raw_os_error() == Some(libc::ENOENT) {
        Error::invalid(format!("{ctx}: no such sysctl")).netns(netns)
    } else {
        Error::from_io(e, ctx).netns(netns)
    }
}

/// The file of `key`, with `netns` checked; `what` (read, set) for messages.
fn checked_path(what: &str, netns: Option<&str>, key: &str) -> Result<PathBuf> {
    netns
        .map_or(Ok(()), netns::validate_name)
        .and_then(|()| key_path(key))
        .map_err(|e| {
            e.context(format!("{what} sysctl in netns {}", ns_label(netns)))
                .netns(netns)
        })
}

pub async fn get(netns: Option<&str>, key: &str) -> Result<String> {
    let path = checked_path("read", netns, key)?;
    let (key, ns) = (key.to_string(), netns.map(str::to_string));
    netns::on_thread(netns, move || {
        let value =
            fs::read_to_string(&path).map_err(|e| file_error(&e, "read", &key, ns.as_deref()))?;
        Ok(value.trim_end_matches('\n').to_string())
    })
    .await
}

pub async fn set(netns: Option<&str>, key: &str, value: &str) -> Result<()> {
    let path = checked_path("set", netns, key)?;
    if value.contains('\0') {
        return Err(Error::invalid(format!(
            "set sysctl {key} in netns {}: the value holds a NUL byte",
            ns_label(netns)
        ))
        .netns(netns));
    }
    let (key, value, ns) = (
        key.to_string(),
        value.to_string(),
        netns.map(str::to_string),
    );
    netns::on_thread(netns, move || {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| file_error(&e, "open", &key, ns.as_deref()))?;
        f.write_all(value.as_bytes())
            .map_err(|e| file_error(&e, "write", &key, ns.as_deref()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            key_path("net.ipv4.conf.all.route_localnet").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/all/route_localnet")
        );
        assert!(key_path("net.ipv4.conf.br-x_1.forwarding").is_ok());
        for bad in [
            "",
            "kernel.pid_max",
            "net",
            "net.",
            "net..ipv4",
            "net.ipv4.ip_forward ",
            "net.ipv4.*",
        ] {
            assert!(key_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slash_keys_are_paths() {
        assert_eq!(
            key_path("net/ipv4/conf/br.x/route_localnet").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/br.x/route_localnet")
        );
        assert_eq!(
            key_path("net/ipv4/ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        for bad in [
            "net/",
            "/net/ipv4/ip_forward",
            "/proc/sys/net/ipv4/ip_forward",
            "net//ipv4",
            "net/ipv4/../../kernel/pid_max",
            "net/ipv4/conf/../../../etc/passwd",
            "net/./ipv4/ip_forward",
            "net/ipv4/conf/..",
            "kernel/pid_max",
            "net/ipv4/conf/br x/forwarding",
            "net/ipv4/conf/a:b/forwarding",
            "net/ipv4/conf/br\0x/forwarding",
            "net.ipv4/../x",
        ] {
            assert_eq!(
                key_path(bad).unwrap_err().code,
                crate::error::ErrorCode::InvalidArgument,
                "{bad:?}"
            );
        }
    }
}

//! net.* sysctls of a netns. /proc/sys/net resolves against the netns of the
//! thread that opens the file, so the open happens on a dedicated thread that
//! entered the netns.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{ns_label, Error, Result};
use crate::netns;

/// "net.ipv4.ip_forward" -> /proc/sys/net/ipv4/ip_forward, strictly validated.
pub fn key_path(key: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::invalid(format!("invalid sysctl key {key:?}: {why}"));
    if !key.starts_with("net.") {
        return Err(bad("must start with \"net.\""));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err(bad("only [A-Za-z0-9_.-] allowed"));
    }
    if key.split('.').any(str::is_empty) {
        return Err(bad("empty segment"));
    }
    let mut path = PathBuf::from("/proc/sys");
    for seg in key.split('.') {
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

pub async fn get(netns: Option<&str>, key: &str) -> Result<String> {
    if let Some(n) = netns {
        netns::validate_name(n)?;
    }
    let path = key_path(key)?;
    let (key, ns) = (key.to_string(), netns.map(str::to_string));
    netns::on_thread(netns, move || {
        let value =
            fs::read_to_string(&path).map_err(|e| file_error(&e, "read", &key, ns.as_deref()))?;
        Ok(value.trim_end_matches('\n').to_string())
    })
    .await
}

pub async fn set(netns: Option<&str>, key: &str, value: &str) -> Result<()> {
    if let Some(n) = netns {
        netns::validate_name(n)?;
    }
    let path = key_path(key)?;
    if value.contains('\0') {
        return Err(Error::invalid(format!("invalid value for sysctl {key}")));
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
            "net.ipv4/../x",
            "net.ipv4.ip_forward ",
            "net.ipv4.*",
        ] {
            assert!(key_path(bad).is_err(), "{bad}");
        }
    }
}

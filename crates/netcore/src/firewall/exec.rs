//! Spawning nft / iptables-restore / iptables-save inside a netns: the child
//! enters the netns between fork and exec (the netns file is opened before
//! the fork), arguments go as a vector and rule text on stdin; no shell.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::error::{ns_label, Error, ErrorCode, Result};

/// What a finished program left behind.
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Where system tools are looked up, in order. Not $PATH: under npm/npx it
/// starts with node_modules/.bin, where e.g. an unrelated `nft` may live.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

fn resolve(program: &str) -> Option<std::path::PathBuf> {
    SYSTEM_DIRS
        .iter()
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Whether `program` is installed in one of the system directories.
pub fn available(program: &str) -> bool {
    resolve(program).is_some()
}

/// Runs `program args…` inside `netns` (None: the process netns), feeding
/// `stdin`, and waits for it. Err only when it could not be run at all.
pub fn run(netns: Option<&str>, program: &str, args: &[&str], stdin: &str) -> Result<Output> {
    let ctx = || format!("run {program} in netns {}", ns_label(netns));
    let Some(path) = resolve(program) else {
        return Err(Error::new(
            ErrorCode::Io,
            format!(
                "{}: {program} not found in {}; install it or choose another firewall backend",
                ctx(),
                SYSTEM_DIRS.join(":")
            ),
        ));
    };
    let ns_file = netns.map(crate::netns::open).transpose()?;
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(file) = &ns_file {
        let fd = file.as_raw_fd();
        // SAFETY: between fork and exec the closure only calls setns, which
        // is async-signal-safe, on an fd the parent keeps open until spawn
        // returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let ctx = || format!("run {program} in netns {}", ns_label(netns));
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::new(
                ErrorCode::Io,
                format!(
                    "{}: {program} not found; install it or choose another firewall backend",
                    ctx()
                ),
            )
        } else {
            Error::from_io(&e, ctx())
        }
    })?;
    drop(ns_file);
    if let Some(mut pipe) = child.stdin.take() {
        if let Err(e) = pipe.write_all(stdin.as_bytes()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::from_io(&e, format_args!("{}: write stdin", ctx())));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::from_io(&e, ctx()))?;
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `run`, and a failed exit becomes an error carrying the program's stderr.
pub fn run_ok(netns: Option<&str>, program: &str, args: &[&str], stdin: &str) -> Result<String> {
    let out = run(netns, program, args, stdin)?;
    if !out.success {
        return Err(Error::new(
            ErrorCode::Kernel,
            format!(
                "{program} {} in netns {} failed (exit {}): {}",
                args.join(" "),
                ns_label(netns),
                out.code
                    .map_or_else(|| "signal".to_string(), |c| c.to_string()),
                out.stderr.trim()
            ),
        ));
    }
    Ok(out.stdout)
}

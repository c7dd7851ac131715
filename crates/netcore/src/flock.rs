//! Advisory whole-file locks (flock(2)) on lock files, for the state dir's
//! writer lock: taken without blocking when free, waited for on a blocking
//! thread when another process holds it, so the JS thread never waits for one.
//!
//! A lock file stays open for the life of its handle; flock locks belong to
//! the open file description, so the kernel releases the lock when the process
//! dies, and a second handle on the same file (even in this process) excludes
//! the first.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::error::{Error, ErrorCode, Result};

fn table() -> MutexGuard<'static, HashMap<u32, Arc<File>>> {
    static FILES: OnceLock<Mutex<HashMap<u32, Arc<File>>>> = OnceLock::new();
    FILES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn next_handle() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn file(handle: u32) -> Result<Arc<File>> {
    table().get(&handle).cloned().ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("lock file handle {handle} is not open"),
        )
    })
}

/// Opens (creating it 0600 if needed) the lock file at `path`; returns a handle.
pub fn open(path: &str) -> Result<u32> {
    if path.is_empty() || path.contains('\0') {
        return Err(Error::invalid(format!("invalid lock file path {path:?}")));
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::from_io(&e, format_args!("open lock file {path}")))?;
    let h = next_handle();
    table().insert(h, Arc::new(f));
    Ok(h)
}

fn flock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock(2) on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Takes the lock if nobody holds it; never blocks. Ok(false) when held elsewhere.
pub fn try_lock(handle: u32) -> Result<bool> {
    let f = file(handle)?;
    match flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(Error::from_io(&e, "take a writer lock")),
    }
}

/// Waits for the lock on a blocking thread of the runtime, never on the caller's.
pub async fn lock(handle: u32) -> Result<()> {
    let f = file(handle)?;
    tokio::task::spawn_blocking(move || flock(&f, libc::LOCK_EX))
        .await
        .map_err(|e| Error::new(ErrorCode::Io, format!("wait for a writer lock: {e}")))?
        .map_err(|e| Error::from_io(&e, "wait for a writer lock"))
}

/// Releases the lock (nothing happens when it is not held).
pub fn unlock(handle: u32) -> Result<()> {
    let f = file(handle)?;
    flock(&f, libc::LOCK_UN).map_err(|e| Error::from_io(&e, "release a writer lock"))
}

/// Closes the lock file (which releases the lock if held).
pub fn close(handle: u32) {
    table().remove(&handle);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_handle_is_excluded_until_the_first_unlocks() {
        let dir = std::env::temp_dir().join(format!("netcore-flock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("writer.lock");
        let p = path.to_str().unwrap();
        let a = open(p).unwrap();
        let b = open(p).unwrap();
        assert!(try_lock(a).unwrap());
        assert!(!try_lock(b).unwrap(), "held by the other open file");
        unlock(a).unwrap();
        assert!(try_lock(b).unwrap());
        close(b);
        assert!(try_lock(a).unwrap(), "closing releases");
        close(a);
        assert!(try_lock(a).is_err(), "a closed handle is refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

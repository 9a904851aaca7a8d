//! File helpers of the local stores: locks, atomic replacement, directory fsync.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// An I/O error on `path` with what to do about it.
pub(crate) fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "run as the user that owns the IPAM store (its directories are mode 0700)"
        }
        std::io::ErrorKind::NotFound => "it is missing: was the store moved or deleted meanwhile?",
        _ => "check the filesystem (free space, read-only mount, I/O errors in the kernel log)",
    };
    Error::io(format!("cannot {what} {}: {hint}", path.display()), e)
}

/// Creates `dir` (mode 0700) if missing.
pub(crate) fn mkdir(dir: &Path) -> Result<()> {
    mkdir_for(dir, "IPAM directory")
}

/// Creates `dir` (mode 0700) if missing; `what` names it in the error (e.g. "IPAM directory").
pub(crate) fn mkdir_for(dir: &Path, what: &str) -> Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io(
            format!(
                "cannot create {what} {}: check that its parent exists and is writable",
                dir.display()
            ),
            e,
        )),
    }
}

/// Opens lock file `path` (created mode 0600 if missing) without taking a lock.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("open lock file", path, e))
}

/// An exclusive `flock` on `path` (created if missing), held until the file is dropped.
pub(crate) fn lock(path: &Path) -> Result<File> {
    let f = open_lock_file(path)?;
    loop {
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(io_err("lock", path, e));
        }
    }
}

/// Like [`lock`] for async callers: tries without blocking and waits between tries, so a
/// caller never holds a runtime worker while the holder's own tasks need one.
pub(crate) async fn lock_async(path: &Path) -> Result<File> {
    flock_async(path, libc::LOCK_EX).await
}

/// A shared `flock` on `path` (created if missing), awaited like [`lock_async`]: many holders
/// at once, none while an exclusive one is held.
pub(crate) async fn lock_shared_async(path: &Path) -> Result<File> {
    flock_async(path, libc::LOCK_SH).await
}

async fn flock_async(path: &Path, op: libc::c_int) -> Result<File> {
    let f = open_lock_file(path)?;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match try_flock(&f, op, path)? {
            true => return Ok(f),
            false => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// An exclusive `flock` on `path` if nobody holds one (shared or exclusive) now.
pub(crate) fn try_lock(path: &Path) -> Result<Option<File>> {
    let f = open_lock_file(path)?;
    Ok(try_flock(&f, libc::LOCK_EX, path)?.then_some(f))
}

/// One non-blocking `flock(op)`: whether it was taken (EINTR is tried again).
fn try_flock(f: &File, op: libc::c_int, path: &Path) -> Result<bool> {
    loop {
        // SAFETY: flock on a descriptor the caller owns.
        let r = unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(io_err("lock", path, e)),
        }
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", dir, e))
}

/// Replaces `dir/name` with `data`: write `dir/.name.tmp`, fsync, rename, fsync `dir` (the
/// fsyncs only when `durable`). The caller holds the lock that makes the temp name private.
pub(crate) fn replace(dir: &Path, name: &str, data: &[u8], durable: bool) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let write = || -> std::io::Result<()> {
        write_file(&tmp, data, durable)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(
            format!(
                "cannot write {}: check free space and permissions",
                path.display()
            ),
            e,
        ));
    }
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `path` (created mode 0600, or truncated) with `data`, `fdatasync`ed when `durable`.
pub(crate) fn write_file(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    if durable {
        f.sync_data()?;
    }
    Ok(())
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_err("read", path, e))
}

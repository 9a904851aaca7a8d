//! Endpoint records, and the lock that lets one call at a time change an endpoint.
//!
//! Every change to an endpoint (connect, disconnect, reconcile's repair) holds that endpoint's
//! lock from the first look at its record to the last write: an open-file-description lock
//! (`F_OFD_SETLK`) on one byte of `endpoints/.lock`, at an offset derived from the network and
//! the record's name. The kernel drops it when its holder closes the file or dies (kill -9
//! included), so a pending record whose lock is free belongs to a connect that is over: one
//! that failed to clean up, or whose process died. A network's endpoints occupy one range of
//! the file, so `Networks::delete` can hold them all at once.
//!
//! Record files are reused: a retired record is renamed into a pool (`endpoints/.free`), and a
//! new record is written over a pooled file (without truncating) and renamed into place. A new
//! file would cost an inode, and on ext4 without a journal each new inode skips every inode
//! freed in the last 30 s: under churn, a third of a connect's CPU. Files only ever move by
//! rename (never a second name), so an inode is one record or one pool entry. Under its lock a
//! record is stable; a reader without the lock checks the record's seal and its identity, so a
//! file retired and rewritten for another endpoint while being read is never taken for this
//! one.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::fsutil;

/// How long a call waits for another call on the same endpoint before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Bits of a lock offset given to the endpoint within its network's range (the network's 31
/// bits sit above them).
const NAME_BITS: u32 = 31;

/// The endpoint records of one state directory and their locks.
#[derive(Debug)]
pub(crate) struct Records {
    lock_path: PathBuf,
    /// Retired record files kept for reuse (`endpoints/.free`).
    pool: PathBuf,
    /// Names this process knows to be in the pool.
    pooled: Mutex<Vec<PathBuf>>,
    seq: AtomicU64,
}

/// A held endpoint lock (or a network's whole range); released on drop.
#[derive(Debug)]
pub(crate) struct EndpointLock {
    _file: File,
}

impl Records {
    /// The records under `endpoints` (the lock file is made there if missing).
    pub(crate) fn new(endpoints: &Path) -> Result<Records> {
        let lock_path = endpoints.join(".lock");
        fsutil::open_lock_file(&lock_path)?;
        let pool = endpoints.join(".free");
        fsutil::mkdir(&pool)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(Records {
            lock_path,
            pool,
            pooled: Mutex::new(Vec::new()),
            seq: AtomicU64::new(seed),
        })
    }

    /// Waits for the lock of record `name` of `network`; `what` names the endpoint in errors.
    pub(crate) async fn lock(&self, network: &str, name: &str, what: &str) -> Result<EndpointLock> {
        self.wait(endpoint_range(network, name), what).await
    }

    /// The lock of record `name` of `network`, if no other call holds it.
    pub(crate) fn try_lock(&self, network: &str, name: &str) -> Result<Option<EndpointLock>> {
        self.try_range(endpoint_range(network, name))
    }

    /// Waits until no call changes any endpoint of `network`, and keeps it so while held.
    pub(crate) async fn lock_network(&self, network: &str) -> Result<EndpointLock> {
        let start = i64::from(hash31(network)) << NAME_BITS;
        self.wait(
            (start, 1 << NAME_BITS),
            &format!("the endpoints of network `{network}`"),
        )
        .await
    }

    async fn wait(&self, range: (i64, i64), what: &str) -> Result<EndpointLock> {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_micros(500);
        loop {
            if let Some(l) = self.try_range(range)? {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!(
                        "{what} is being changed by another call for over {}s: try again later, or find the process that hangs",
                        LOCK_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn try_range(&self, (start, len): (i64, i64)) -> Result<Option<EndpointLock>> {
        let file = fsutil::open_lock_file(&self.lock_path)?;
        // SAFETY: an all-zero `flock` is valid; the fields that matter are set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = start;
        fl.l_len = len;
        loop {
            // SAFETY: fcntl on a descriptor we own, with a valid `flock` that outlives it.
            let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
            if rc == 0 {
                return Ok(Some(EndpointLock { _file: file }));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN | libc::EACCES) => return Ok(None),
                _ => return Err(fsutil::io_err("lock", &self.lock_path, e)),
            }
        }
    }

    /// Writes `data` as `dir/name` (not fsynced: endpoints do not outlive a reboot), under the
    /// record's lock, sealed (see [`seal`]). With `replace`, the record there is swapped for the
    /// new one atomically and retired; without, fails with `EEXIST` when one is there.
    pub(crate) fn write(
        &self,
        dir: &Path,
        name: &str,
        data: &[u8],
        replace: bool,
        _held: &EndpointLock,
    ) -> Result<()> {
        // Private to the lock's holder; a leftover of a killed writer is overwritten here, or
        // removed by reconcile.
        let tmp = dir.join(tmp_name(name));
        let path = dir.join(name);
        let write = || -> std::io::Result<()> {
            self.take(&tmp);
            overwrite(&tmp, &seal(data))?;
            if !replace {
                return rename_noreplace(&tmp, &path);
            }
            // A swap, then the old record is retired: a rename over an existing file would
            // make ext4 write the new one out at once (`auto_da_alloc`).
            match renameat2(&tmp, &path, libc::RENAME_EXCHANGE) {
                Ok(()) => self.retire(&tmp),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS)
                    ) =>
                {
                    std::fs::rename(&tmp, &path)
                }
                Err(e) => Err(e),
            }
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(
                format!(
                    "cannot write {}: check free space and permissions",
                    path.display()
                ),
                e,
            )
        })
    }

    /// Removes record `path` under its lock (into the pool); a missing one is fine.
    pub(crate) fn remove(&self, path: &Path, _held: &EndpointLock) -> Result<()> {
        match self.retire(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot remove {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// Moves file `path` into the pool (deletes it when the pool is full). Files only ever
    /// move by rename, never gain a second name: an inode is one record, or one pool entry.
    fn retire(&self, path: &Path) -> std::io::Result<()> {
        if self.pooled().len() >= MAX_POOLED {
            return std::fs::remove_file(path);
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let to = self.pool.join(format!("{}-{n:x}", std::process::id()));
        std::fs::rename(path, &to)?;
        self.pooled().push(to);
        Ok(())
    }

    /// Moves a pooled file to `to`, if there is one (else `to` is made by the write).
    fn take(&self, to: &Path) {
        for _ in 0..2 {
            while let Some(p) = self.pooled().pop() {
                match std::fs::rename(&p, to) {
                    Ok(()) => return,
                    // Another process took it meanwhile: try the next.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    // `to` cannot be made (its directory is missing): the file stays pooled.
                    Err(_) => {
                        self.pooled().push(p);
                        return;
                    }
                }
            }
            // Files other processes retired, listed by one caller at a time and only when
            // none are known (callers listing at once would queue the same names).
            let mut pooled = self.pooled();
            if pooled.is_empty() {
                let Ok(entries) = std::fs::read_dir(&self.pool) else {
                    return;
                };
                pooled.extend(entries.filter_map(|e| e.ok()).take(512).map(|e| e.path()));
                if pooled.is_empty() {
                    return;
                }
            }
        }
    }

    fn pooled(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.pooled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the temporary files in `dir` (of `network`) that no writer holds: left by a
    /// process killed while writing a record. Returns how many went.
    pub(crate) fn sweep(&self, network: &str, dir: &Path) -> Result<usize> {
        let mut removed = 0;
        for name in list(dir)?.into_iter().filter_map(|n| record_of_tmp(&n)) {
            if let Some(held) = self.try_lock(network, &name)? {
                let tmp = dir.join(tmp_name(&name));
                if std::fs::remove_file(&tmp).is_ok() {
                    removed += 1;
                }
                drop(held);
            }
        }
        Ok(removed)
    }
}

/// Every file name in `dir` (none when it is missing).
pub(crate) fn list(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("cannot list {}", dir.display()), e)),
    }
}

/// Files the pool keeps at most; beyond, retired records are deleted.
const MAX_POOLED: usize = 8192;

/// The last line of every record: `end=` and a hash of the bytes before it.
const END: &str = "end=";

/// `data` with its seal appended. Record files are reused (pooled) and overwritten in place,
/// so a reader that opened a record without its lock may read a file that was retired and is
/// being rewritten for another endpoint meanwhile: [`unseal`] tells such a read (torn, or
/// whole but another record) from the record itself.
fn seal(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let hash = fnv64(&out);
    out.extend_from_slice(format!("{END}{hash:016x}\n").as_bytes());
    out
}

/// The sealed text of a record file's bytes (the padding after the seal dropped), or `None`
/// when the seal is missing or does not match: the file was read while being rewritten.
/// Records written before seals existed (`# underlay endpoint v1`) are taken as they are.
pub(crate) fn unseal(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body_end = text.trim_end_matches('\n').len();
    let body = &text[..body_end];
    match body.rfind('\n').map(|i| (&body[..=i], &body[i + 1..])) {
        Some((before, last)) if last.starts_with(END) => {
            let want = u64::from_str_radix(&last[END.len()..], 16).ok()?;
            (fnv64(before.as_bytes()) == want).then_some(before)
        }
        _ if text.starts_with("# underlay endpoint v1\n") => Some(body),
        _ => None,
    }
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Writes `data` at the start of `path` (made if missing) without truncating it: a shorter
/// record is padded with newlines to the file's length. Truncating would free the file's
/// block, and ext4 then allocates and writes a new one at once (`auto_da_alloc`).
fn overwrite(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let len = f.metadata()?.len() as usize;
    if len <= data.len() {
        return f.write_all(data);
    }
    let mut padded = Vec::with_capacity(len);
    padded.extend_from_slice(data);
    padded.resize(len, b'\n');
    f.write_all(&padded)
}

fn tmp_name(record: &str) -> String {
    format!(".{record}.tmp")
}

/// The record a temporary file name belongs to.
fn record_of_tmp(file: &str) -> Option<String> {
    file.strip_prefix('.')?
        .strip_suffix(".tmp")
        .filter(|n| !n.is_empty())
        .map(String::from)
}

/// The byte locked for record `name` of `network`: within the network's range.
fn endpoint_range(network: &str, name: &str) -> (i64, i64) {
    let start = (i64::from(hash31(network)) << NAME_BITS) | i64::from(hash31(name));
    (start, 1)
}

/// 31 bits of FNV-1a: the same in every process (two names may share a lock, which only
/// makes their calls wait for each other).
fn hash31(s: &str) -> u32 {
    let h = fnv64(s.as_bytes());
    ((h ^ (h >> 32)) as u32) & 0x7fff_ffff
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Renames `from` to `to` unless `to` exists (`EEXIST` then), atomically.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        // A filesystem without renameat2 flags: a hard link is exclusive too.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("ul-records-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("net")).unwrap();
        root
    }

    #[tokio::test]
    async fn locks_exclude_and_die_with_their_holder() {
        let root = tempdir("lock");
        let records = Records::new(&root).unwrap();
        let a = records.lock("net", "eth0:a", "a").await.unwrap();
        assert!(records.try_lock("net", "eth0:a").unwrap().is_none());
        // Another endpoint of the network is free; the network as a whole is not.
        assert!(records.try_lock("net", "eth0:b").unwrap().is_some());
        assert!(records.try_lock("other", "eth0:a").unwrap().is_some());
        assert!(records.try_range(network_range("net")).unwrap().is_none());
        drop(a);
        assert!(records.try_lock("net", "eth0:a").unwrap().is_some());
        let whole = records.lock_network("net").await.unwrap();
        assert!(records.try_lock("net", "eth0:b").unwrap().is_none());
        drop(whole);
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn network_range(network: &str) -> (i64, i64) {
        (i64::from(hash31(network)) << NAME_BITS, 1 << NAME_BITS)
    }

    #[tokio::test]
    async fn records_are_sealed_placed_atomically_and_reuse_retired_files() {
        use std::os::unix::fs::MetadataExt;
        let root = tempdir("write");
        let records = Records::new(&root).unwrap();
        let dir = root.join("net");
        let read = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            unseal(&bytes).map(String::from)
        };
        let held = records.lock("net", "a", "a").await.unwrap();
        records.write(&dir, "a", b"pending", false, &held).unwrap();
        assert_eq!(read("a").as_deref(), Some("pending\n"));
        let first = std::fs::metadata(dir.join("a")).unwrap().ino();
        // Without `replace`, an existing name is refused and left as it was.
        let e = records
            .write(&dir, "a", b"second", false, &held)
            .unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(read("a").as_deref(), Some("pending\n"));
        // Replacing swaps a file in and retires the old one; a reader holding the old one
        // still reads the old record, sealed.
        let old = std::fs::File::open(dir.join("a")).unwrap();
        records
            .write(&dir, "a", b"final, longer", true, &held)
            .unwrap();
        assert_eq!(read("a").as_deref(), Some("final, longer\n"));
        assert_ne!(std::fs::metadata(dir.join("a")).unwrap().ino(), first);
        // The retired file is reused for the next record, overwritten in place: the old
        // reader now reads another record (which a reader checks by its identity) or a
        // torn one (which fails the seal), never a mix taken for a record.
        let b = records.lock("net", "b", "b").await.unwrap();
        records.write(&dir, "b", b"x", false, &b).unwrap();
        assert_eq!(std::fs::metadata(dir.join("b")).unwrap().ino(), first);
        assert_eq!(read("b").as_deref(), Some("x\n"));
        let mut reread = Vec::new();
        std::io::Read::read_to_end(&mut &old, &mut reread).unwrap();
        assert_eq!(unseal(&reread), Some("x\n"));
        let mut torn = std::fs::read(dir.join("a")).unwrap();
        torn[2] ^= 1;
        assert_eq!(unseal(&torn), None);
        assert_eq!(unseal(b"container=a\n"), None, "unsealed new-style text");
        assert_eq!(
            unseal(b"# underlay endpoint v1\ncontainer=a\n\n\n"),
            Some("# underlay endpoint v1\ncontainer=a"),
            "records of earlier versions"
        );
        records.remove(&dir.join("a"), &held).unwrap();
        records.remove(&dir.join("a"), &held).unwrap();
        records.remove(&dir.join("b"), &b).unwrap();
        assert!(list(&dir).unwrap().is_empty(), "{:?}", list(&dir));
        assert_eq!(list(&root.join(".free")).unwrap().len(), 2);
        drop((held, b));
        // A killed writer's temporary file goes with the sweep, unless its lock is held.
        std::fs::write(dir.join(".c.tmp"), b"half").unwrap();
        let c = records.lock("net", "c", "c").await.unwrap();
        assert_eq!(records.sweep("net", &dir).unwrap(), 0);
        drop(c);
        assert_eq!(records.sweep("net", &dir).unwrap(), 1);
        assert!(list(&dir).unwrap().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}

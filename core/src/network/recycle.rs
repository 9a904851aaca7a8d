//! Endpoint record files are recycled rather than created and deleted: a retired record is
//! renamed into a pool directory, and a new record takes a file from there. Renames and links
//! cost a directory entry; creating a file costs an inode, and on a filesystem without a
//! journal (ext4 on this machine kind) each new inode skips every inode freed in the last 30 s
//! (`recently_deleted`), so a churn of a thousand connects and disconnects made each record
//! dearer than the link it describes. The pool holds at most the peak number of records.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Files the pool keeps at most; beyond, retired records are deleted.
const MAX_POOLED: usize = 8192;

/// The pool: `dir` (under the endpoints directory, same filesystem) and the names this
/// process knows to be there.
#[derive(Debug)]
pub(crate) struct Recycler {
    dir: PathBuf,
    known: Mutex<Vec<PathBuf>>,
    seq: AtomicU64,
}

impl Recycler {
    /// The pool in `dir` (created if missing).
    pub(crate) fn new(dir: PathBuf) -> Result<Recycler> {
        crate::ipam::fsutil::mkdir(&dir)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(Recycler {
            dir,
            known: Mutex::new(Vec::new()),
            seq: AtomicU64::new(seed),
        })
    }

    fn fresh_name(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{}-{n:x}", std::process::id()))
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves a pooled file to `to`; false when the pool is empty.
    fn take(&self, to: &Path) -> bool {
        for _ in 0..2 {
            loop {
                let Some(p) = self.known().pop() else { break };
                match std::fs::rename(&p, to) {
                    Ok(()) => return true,
                    // Another process took it meanwhile: try the next.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && to.parent().is_some_and(Path::is_dir) => {}
                    // `to` cannot be made (its directory is missing): the file stays pooled.
                    Err(_) => {
                        self.known().push(p);
                        return false;
                    }
                }
            }
            // Files other processes retired, listed by one caller at a time and only when none
            // are known: callers listing at once would each queue the same names, and all but
            // one rename of each would fail.
            let mut known = self.known();
            if known.is_empty() {
                let Ok(entries) = std::fs::read_dir(&self.dir) else {
                    return false;
                };
                known.extend(entries.filter_map(|e| e.ok()).take(512).map(|e| e.path()));
                if known.is_empty() {
                    return false;
                }
            }
        }
        false
    }

    /// Keeps the inode behind `path`, which is about to be replaced, in the pool (a link).
    fn keep(&self, path: &Path) {
        if self.known().len() >= MAX_POOLED {
            return;
        }
        let name = self.fresh_name();
        if std::fs::hard_link(path, &name).is_ok() {
            self.known().push(name);
        }
    }

    /// Writes `data` as `dir/name`, on a pooled file when there is one. Not fsynced. With
    /// `replace`, atomically replaces any file there (readers see the old or the new whole
    /// file); without, fails with `EEXIST` when `name` exists (so that of two writers racing
    /// for a name exactly one wins).
    pub(crate) fn write(&self, dir: &Path, name: &str, data: &[u8], replace: bool) -> Result<()> {
        // Racing writers of one name each write their own temporary file.
        let tmp = dir.join(format!(
            ".{name}.{}.tmp",
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let path = dir.join(name);
        self.take(&tmp);
        let write = || -> std::io::Result<()> {
            overwrite(&tmp, data)?;
            if replace {
                self.keep(&path);
                std::fs::rename(&tmp, &path)
            } else {
                rename_noreplace(&tmp, &path)
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

    /// Removes `path` (into the pool); a missing file is fine.
    pub(crate) fn remove(&self, path: &Path) -> Result<()> {
        let outcome = if self.known().len() < MAX_POOLED {
            let name = self.fresh_name();
            std::fs::rename(path, &name).map(|()| self.known().push(name))
        } else {
            std::fs::remove_file(path)
        };
        match outcome {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot remove {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }
}

/// Renames `from` to `to` unless `to` exists (`EEXIST` then), atomically.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
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
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // A filesystem without renameat2 flags: a hard link is exclusive too.
        Some(libc::EINVAL | libc::ENOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}

/// Writes `data` at the start of `path` (made if missing) without truncating it: a shorter
/// record is padded with newlines (which readers skip) to the file's length. Truncating would
/// free the file's block, and ext4 then allocates a new one and writes it out at once on close
/// or on the rename over the old record (`auto_da_alloc`); overwriting dirties the page of the
/// block it already has, written back later like any page.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn records_reuse_retired_inodes() {
        let root = std::env::temp_dir().join(format!("ul-recycle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("net")).unwrap();
        let pool = Recycler::new(root.join(".free")).unwrap();
        let dir = root.join("net");
        pool.write(&dir, "a", b"pending", false).unwrap();
        let first = std::fs::metadata(dir.join("a")).unwrap().ino();
        // Replacing keeps the old inode in the pool; the next record takes it.
        pool.write(&dir, "a", b"final", true).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"final");
        pool.write(&dir, "b", b"other", false).unwrap();
        assert_eq!(std::fs::metadata(dir.join("b")).unwrap().ino(), first);
        // The longer record it held is overwritten whole: the rest is newlines, not old bytes.
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"other\n\n");
        // Without `replace`, an existing name is refused and left as it was.
        let e = pool.write(&dir, "b", b"second", false).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"other\n\n");
        // Removing retires the file; no temporary names are left behind.
        let a = std::fs::metadata(dir.join("a")).unwrap().ino();
        pool.remove(&dir.join("a")).unwrap();
        pool.remove(&dir.join("a")).unwrap();
        assert!(!dir.join("a").exists());
        pool.write(&dir, "c", b"third", false).unwrap();
        assert_eq!(std::fs::metadata(dir.join("c")).unwrap().ino(), a);
        assert_eq!(std::fs::read(dir.join("c")).unwrap(), b"third");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["b", "c"]);
        // A destination whose directory is missing fails without losing the pooled file.
        pool.remove(&dir.join("c")).unwrap();
        let gone = root.join("gone");
        assert!(pool.write(&gone, "x", b"y", false).is_err());
        assert!(!root.join("gone").exists());
        pool.write(&dir, "c", b"again", false).unwrap();
        assert_eq!(std::fs::metadata(dir.join("c")).unwrap().ino(), a);
        // Another process's pool entries are found by listing the directory.
        let other = Recycler::new(root.join(".free")).unwrap();
        pool.remove(&dir.join("b")).unwrap();
        other.write(&dir, "d", b"x", false).unwrap();
        assert_eq!(std::fs::read_dir(root.join(".free")).unwrap().count(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

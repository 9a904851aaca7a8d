//! The embedded default store: files under one directory, one sub-directory per network.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::network::{check_name, Network};

use super::fsutil;
use super::holds::{file_holds_methods, HoldsFile};
use super::localview::Peek;
use super::memory::conflict;
use super::stateformat::{
    corrupt, decode_blocks, decode_journal_head, decode_network, decode_state, encode_block,
    encode_journal_head, encode_network, encode_state, Block,
};
use super::{
    blocking, blocking_store_methods, Change, Compute, Snapshot, Store, StoreFuture, Table, View,
    ViewQuery,
};

/// Compact the journal into a new snapshot once it is larger than this: every process reads
/// the whole journal, also a view's (which reads only a few leases of the snapshot), so it is
/// kept short whatever the snapshot's size.
const COMPACT_AT: u64 = 64 * 1024;

/// Leases in files, safe across threads, processes and crashes.
///
/// Layout under the directory (mode 0700): `lock` (taken to create or delete networks) and per
/// network `<name>/` (mode 0700) holding `network` (the definition), `state` (a snapshot:
/// leases, cursors, boot ids, version), `journal` (the commits since the snapshot) and `lock`.
///
/// A commit takes `<name>/lock` (`flock`), reads the journal's new blocks, checks the version,
/// appends one checksummed block and `fdatasync`s it before returning: one disk flush per
/// commit, and concurrent allocations of one [`crate::ipam::Ipam`] share a commit. When the
/// journal outgrows 64 KiB, a new snapshot is written aside, fsynced, renamed over `state`,
/// the journal is replaced by an empty one the same way, and the directory is fsynced. A block
/// cut short by a crash was never acknowledged and is dropped; any other damage is
/// [`ErrorKind::Corrupt`] naming the file. See docs/ipam.md for the formats.
///
/// It serves views ([`Store::view`]): a process that has not loaded the whole network reads
/// the journal and looks up, in the snapshot's bytes, only the leases a call needs (binary
/// search by address, substring search by owner), and commits after checking each change
/// against them, under the same lock and version check.
#[derive(Debug, Clone)]
pub struct LocalStore {
    pub(super) inner: Arc<LocalInner>,
}

#[derive(Debug)]
pub(super) struct LocalInner {
    dir: PathBuf,
    durable: bool,
    compact_at: u64,
    /// What this process last read of each network, to read only what was appended since.
    mirrors: Mutex<HashMap<String, Mirror>>,
    /// The same for views, where no mirror is kept: a snapshot's bytes and the journal since.
    peeks: Mutex<HashMap<String, Peek>>,
}

/// A network's state as of `offset` bytes of the journal with inode `ino` that follows the
/// snapshot of version `base`.
#[derive(Debug)]
struct Mirror {
    table: Table,
    ino: u64,
    base: u64,
    offset: u64,
    /// (version, start offset) of every journal block read.
    index: Vec<(u64, u64)>,
}

/// A network's journal, opened: its path, inode and length, the version of the snapshot it
/// follows and the length of its head line.
struct Journal {
    file: File,
    path: PathBuf,
    ino: u64,
    len: u64,
    base: u64,
    head_len: u64,
}

impl Journal {
    /// Whether a reader that read the journal of inode `ino` following version `base` up to
    /// `offset` can go on from there (else the journal was replaced: read it all again).
    fn continues(&self, ino: u64, base: u64, offset: u64) -> bool {
        self.ino == ino && self.base == base && offset <= self.len
    }

    /// The complete blocks from `offset` on.
    fn blocks_from(&self, offset: u64) -> Result<Vec<Block>> {
        if offset >= self.len {
            return Ok(Vec::new());
        }
        let data = LocalInner::read_at(&self.file, offset, self.len, &self.path)?;
        decode_blocks(&data, offset, &self.path)
    }
}

impl LocalStore {
    /// Where a system-wide store lives by default.
    pub const DEFAULT_DIR: &'static str = "/var/lib/underlay/ipam";

    /// Opens (creating it, mode 0700, if missing) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<LocalStore> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::mkdir(&dir)?;
        Ok(LocalStore::with(dir, true, COMPACT_AT))
    }

    pub(super) fn with(dir: PathBuf, durable: bool, compact_at: u64) -> LocalStore {
        LocalStore {
            inner: Arc::new(LocalInner {
                dir,
                durable,
                compact_at,
                mirrors: Mutex::new(HashMap::new()),
                peeks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Opens [`LocalStore::DEFAULT_DIR`].
    pub fn open_default() -> Result<LocalStore> {
        LocalStore::open(Self::DEFAULT_DIR)
    }

    /// Without fsync (`durable = false`) commits stay atomic but a power loss may undo the last
    /// ones: for tests, or a store on tmpfs. Default: durable.
    pub fn durable(self, durable: bool) -> LocalStore {
        LocalStore::with(self.inner.dir.clone(), durable, self.inner.compact_at)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

impl LocalInner {
    fn net_dir(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }

    fn read_network(&self, name: &str) -> Result<Network> {
        let path = self.net_dir(name)?.join("network");
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!(
                    "network `{name}` is not defined in the IPAM store {}: create it first",
                    self.dir.display()
                ))
            } else {
                fsutil::io_err("read", &path, e)
            }
        })?;
        let net = decode_network(&data, &path)?;
        if net.name() != name {
            return Err(corrupt(
                &path,
                format_args!(
                    "it defines network `{}` inside directory `{name}`",
                    net.name()
                ),
            ));
        }
        Ok(net)
    }

    fn mirrors(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mirror>> {
        self.mirrors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this process holds network `name` in full (a test's view of which path ran).
    #[cfg(test)]
    pub(super) fn has_mirror(&self, name: &str) -> bool {
        self.mirrors().contains_key(name)
    }

    fn peeks(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peek>> {
        self.peeks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the peek at `name` up to date with the files (the caller holds the lock), as
    /// [`LocalInner::refresh`] does the mirror; `None` when the snapshot needs the full
    /// decoder.
    fn refresh_peek(&self, name: &str) -> Result<Option<(Peek, File)>> {
        let dir = self.net_dir(name)?;
        let j = self.journal_head(&dir)?;
        let cached = self.peeks().remove(name);
        let mut p = match cached {
            Some(p) if j.continues(p.ino, p.base, p.offset) => p,
            _ => {
                let network = self.read_network(name)?;
                let data = fsutil::read(&dir.join("state"))?;
                match Peek::new(network, data, j.ino, j.base, j.head_len) {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
        };
        p.apply_blocks(j.blocks_from(p.offset)?, &j.path)?;
        Ok(Some((p, j.file)))
    }

    /// Whether the network holds any lease, told by the peek where it can (the snapshot's
    /// count against the journal's releases) without decoding them all.
    fn has_records(&self, name: &str) -> Result<bool> {
        let _lock = self.lock(name)?;
        if !self.mirrors().contains_key(name) {
            if let Some((mut p, _)) = self.refresh_peek(name)? {
                let any = p.any_lease();
                self.peeks().insert(name.to_string(), p);
                if let Ok(any) = any {
                    return Ok(any);
                }
            }
        }
        let (m, _) = self.refresh(name)?;
        let any = !m.table.records.is_empty();
        self.mirrors().insert(name.to_string(), m);
        Ok(any)
    }

    /// See [`Store::view`]: `None` while this process keeps the whole network (its mirror is
    /// as cheap), or when the snapshot needs the full decoder.
    fn view(&self, name: &str, query: &ViewQuery) -> Result<Option<View>> {
        let _lock = self.lock(name)?;
        Ok(self.view_locked(name, query)?.map(|(view, _)| view))
    }

    /// [`LocalInner::view`] with the lock held, and the open journal.
    fn view_locked(&self, name: &str, query: &ViewQuery) -> Result<Option<(View, File)>> {
        if self.mirrors().contains_key(name) {
            return Ok(None);
        }
        let Some((mut p, f)) = self.refresh_peek(name)? else {
            return Ok(None);
        };
        let out = p.view(query).ok();
        self.peeks().insert(name.to_string(), p);
        Ok(out.map(|view| (view, f)))
    }

    /// See [`Store::update`]: the view, `compute` and the commit under one hold of the lock,
    /// so that no other writer comes in between.
    fn update(&self, name: &str, query: &ViewQuery, compute: Compute) -> Result<bool> {
        let _lock = self.lock(name)?;
        let Some((view, f)) = self.view_locked(name, query)? else {
            return Ok(false);
        };
        let version = view.snapshot.version;
        let changes = compute(view)?;
        if changes.is_empty() {
            return Ok(true);
        }
        // (Taken out first: the peeks' lock must not be held across the commit.)
        let peek = self.peeks().remove(name);
        let committed = match peek {
            Some(p) => self.append_peek(name, p, &f, version, &changes)?,
            None => None,
        };
        if committed.is_none() {
            // The snapshot needs the full decoder after all: commit on the mirror.
            self.commit_mirror(name, version, &changes)?;
        }
        Ok(true)
    }

    /// Takes the network's lock (checking first that the network exists).
    fn lock(&self, name: &str) -> Result<File> {
        let dir = self.net_dir(name)?;
        if !dir.join("network").exists() {
            self.read_network(name)?;
        }
        fsutil::lock(&dir.join("lock"))
    }

    fn open_journal(&self, dir: &Path) -> Result<(File, u64, u64)> {
        let path = dir.join("journal");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| fsutil::io_err("open", &path, e))?;
        let md = f.metadata().map_err(|e| fsutil::io_err("stat", &path, e))?;
        Ok((f, md.ino(), md.len()))
    }

    /// The journal of the network in `dir`, opened, its head read.
    fn journal_head(&self, dir: &Path) -> Result<Journal> {
        let path = dir.join("journal");
        let (file, ino, len) = self.open_journal(dir)?;
        let head = Self::read_at(&file, 0, len.min(64), &path)?;
        let (base, head_len) = decode_journal_head(&head, &path)?;
        Ok(Journal {
            file,
            path,
            ino,
            len,
            base,
            head_len,
        })
    }

    fn read_at(f: &File, from: u64, to: u64, path: &Path) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (to - from) as usize];
        f.read_exact_at(&mut buf, from)
            .map_err(|e| fsutil::io_err("read", path, e))?;
        Ok(buf)
    }

    /// Brings the mirror of `name` up to date with the files (the caller holds the lock) and
    /// returns it with the open journal.
    fn refresh(&self, name: &str) -> Result<(Mirror, File)> {
        let dir = self.net_dir(name)?;
        let j = self.journal_head(&dir)?;
        let jpath = &j.path;
        let mut m = match self.mirrors().remove(name) {
            Some(m) if j.continues(m.ino, m.base, m.offset) => m,
            _ => {
                let network = self.read_network(name)?;
                let spath = dir.join("state");
                let data = fsutil::read(&spath)?;
                let table = decode_state(&data, &spath, network)?;
                Mirror {
                    table,
                    ino: j.ino,
                    base: j.base,
                    offset: j.head_len,
                    index: Vec::new(),
                }
            }
        };
        for b in j.blocks_from(m.offset)? {
            m.offset = b.end;
            if b.version <= m.table.version {
                continue; // already in the snapshot (a compaction was cut short)
            }
            if b.version != m.table.version + 1 {
                return Err(corrupt(
                    jpath,
                    format_args!(
                        "block at byte {} has version {} after version {}",
                        b.start, b.version, m.table.version
                    ),
                ));
            }
            m.table.apply(&b.changes).map_err(|e| {
                corrupt(
                    jpath,
                    format_args!("block at byte {}: {}", b.start, e.message()),
                )
            })?;
            m.index.push((b.version, b.start));
        }
        Ok((m, j.file))
    }

    fn networks(&self) -> Result<Vec<Network>> {
        let err = |e| Error::io(format!("cannot list IPAM store {}", self.dir.display()), e);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_name(&name).is_err() || !entry.path().join("network").exists() {
                continue;
            }
            out.push(self.read_network(&name)?);
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(out)
    }

    fn create(&self, network: &Network) -> Result<()> {
        let _lock = fsutil::lock(&self.dir.join("lock"))?;
        let name = network.name();
        let dir = self.net_dir(name)?;
        if dir.join("network").exists() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "network `{name}` already exists in the IPAM store {}: open it, or delete it \
                     first",
                    self.dir.display()
                ),
            ));
        }
        for other in self.networks()? {
            network.check_disjoint(&other)?;
        }
        // Build the directory aside, then rename it into place: a crash leaves no half network.
        let tmp = self.dir.join(format!(".new-{name}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(|e| fsutil::io_err("remove leftover", &tmp, e))?;
        }
        fsutil::mkdir(&tmp)?;
        fsutil::replace(
            &tmp,
            "network",
            encode_network(network).as_bytes(),
            self.durable,
        )?;
        let mut table = Table::new(network.clone());
        // Versions start at the creation time in microseconds, so a network deleted and made
        // again never repeats a version another process may have cached.
        table.version = now_micros();
        fsutil::replace(&tmp, "state", &encode_state(&table), self.durable)?;
        let head = encode_journal_head(table.version);
        fsutil::replace(&tmp, "journal", &head, self.durable)?;
        std::fs::rename(&tmp, &dir).map_err(|e| {
            Error::io(
                format!(
                    "cannot move {} to {}: remove a stray `{name}` entry from the store",
                    tmp.display(),
                    dir.display()
                ),
                e,
            )
        })?;
        if self.durable {
            fsutil::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        let _store_lock = fsutil::lock(&self.dir.join("lock"))?;
        let dir = self.net_dir(name)?;
        let _lock = self.lock(name)?;
        let (m, _) = self.refresh(name)?;
        if !m.table.records.is_empty() {
            let n = m.table.records.len();
            self.mirrors().insert(name.to_string(), m);
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "network `{name}` still holds {n} leases: release them (or gc) before \
                     deleting it"
                ),
            ));
        }
        let gone = self.dir.join(format!(".deleted-{name}"));
        let _ = std::fs::remove_dir_all(&gone);
        std::fs::rename(&dir, &gone).map_err(|e| fsutil::io_err("remove", &dir, e))?;
        self.peeks().remove(name);
        if self.durable {
            fsutil::sync_dir(&self.dir)?;
        }
        std::fs::remove_dir_all(&gone).map_err(|e| fsutil::io_err("remove", &gone, e))
    }

    /// Runs `f` on the up-to-date mirror under the network's lock.
    fn with_mirror<T>(&self, name: &str, f: impl FnOnce(&Mirror) -> T) -> Result<T> {
        let _lock = self.lock(name)?;
        let (m, _) = self.refresh(name)?;
        let out = f(&m);
        self.mirrors().insert(name.to_string(), m);
        Ok(out)
    }

    fn load(&self, name: &str) -> Result<Snapshot> {
        self.with_mirror(name, |m| m.table.snapshot())
    }

    fn version(&self, name: &str) -> Result<u64> {
        self.with_mirror(name, |m| m.table.version)
    }

    fn changes_since(&self, name: &str, version: u64) -> Result<Option<(Vec<Change>, u64)>> {
        let _lock = self.lock(name)?;
        let (m, f) = self.refresh(name)?;
        let now = m.table.version;
        let from = match m.index.iter().find(|(v, _)| *v == version + 1) {
            Some((_, start)) => Some(*start),
            None if version == now => Some(m.offset),
            None => None,
        };
        let out = match from {
            Some(start) => {
                let jpath = self.net_dir(name)?.join("journal");
                let data = Self::read_at(&f, start, m.offset, &jpath)?;
                let changes = decode_blocks(&data, start, &jpath)?
                    .into_iter()
                    .flat_map(|b| b.changes)
                    .collect();
                Some((changes, now))
            }
            None => None,
        };
        self.mirrors().insert(name.to_string(), m);
        Ok(out)
    }

    fn commit(&self, name: &str, expected: u64, changes: &[Change]) -> Result<u64> {
        let _lock = self.lock(name)?;
        if !self.mirrors().contains_key(name) {
            if let Some(v) = self.commit_peek(name, expected, changes)? {
                return Ok(v);
            }
        }
        self.commit_mirror(name, expected, changes)
    }

    /// [`LocalInner::commit`] without the whole network in memory (the caller holds the lock):
    /// each change is checked against the leases it touches, looked up in the snapshot's bytes
    /// and the journal. `None` when the snapshot needs the full decoder.
    fn commit_peek(&self, name: &str, expected: u64, changes: &[Change]) -> Result<Option<u64>> {
        let Some((p, f)) = self.refresh_peek(name)? else {
            return Ok(None);
        };
        self.append_peek(name, p, &f, expected, changes)
    }

    /// [`LocalInner::commit_peek`] on a peek just refreshed (the caller holds the lock).
    fn append_peek(
        &self,
        name: &str,
        mut p: Peek,
        f: &File,
        expected: u64,
        changes: &[Change],
    ) -> Result<Option<u64>> {
        if p.version != expected {
            let now = p.version;
            self.peeks().insert(name.to_string(), p);
            return Err(conflict(name, now, expected));
        }
        let offset = p.offset;
        match p.apply(changes) {
            Err(_fallback) => return Ok(None),
            Ok(Err(e)) => {
                self.peeks().insert(name.to_string(), p); // it took none of the changes
                return Err(e);
            }
            Ok(Ok(())) => {}
        }
        let v = p.version;
        let dir = self.net_dir(name)?;
        let written = self.append(&dir, f, offset, v, changes)?;
        p.offset += written;
        if p.offset > self.compact_at {
            // Fold the journal into a new snapshot: that needs every lease.
            let (mut m, _) = self.refresh(name)?;
            self.compact(&dir, &mut m)?;
            self.mirrors().insert(name.to_string(), m);
        } else {
            self.peeks().insert(name.to_string(), p);
        }
        Ok(Some(v))
    }

    /// Writes the block of `changes` (version `v`) at `offset`, the end of the journal's last
    /// complete block, and syncs it; returns its length.
    fn append(&self, dir: &Path, f: &File, offset: u64, v: u64, changes: &[Change]) -> Result<u64> {
        let jpath = dir.join("journal");
        let io = |e| {
            Error::io(
                format!(
                    "cannot write {}: check free space and permissions",
                    jpath.display()
                ),
                e,
            )
        };
        // Bytes past the last complete block are a write a crash cut short: drop them.
        let len = f.metadata().map_err(io)?.len();
        if len > offset {
            f.set_len(offset).map_err(io)?;
        }
        let block = encode_block(v, changes);
        f.write_all_at(&block, offset)
            .and_then(|()| if self.durable { f.sync_data() } else { Ok(()) })
            .map_err(io)?;
        Ok(block.len() as u64)
    }

    /// [`LocalInner::commit`] on the mirror, the whole network in memory (the caller holds
    /// the lock).
    fn commit_mirror(&self, name: &str, expected: u64, changes: &[Change]) -> Result<u64> {
        let dir = self.net_dir(name)?;
        let (mut m, f) = self.refresh(name)?;
        let now = m.table.version;
        if now != expected {
            self.mirrors().insert(name.to_string(), m);
            return Err(conflict(name, now, expected));
        }
        let v = m.table.apply(changes)?;
        // On an error the mirror is ahead of the file: it is dropped, the next call re-reads.
        let written = self.append(&dir, &f, m.offset, v, changes)?;
        m.index.push((v, m.offset));
        m.offset += written;
        if m.offset > self.compact_at {
            self.compact(&dir, &mut m)?;
        }
        self.mirrors().insert(name.to_string(), m);
        Ok(v)
    }

    /// Folds the journal into a new snapshot (the caller holds the lock).
    fn compact(&self, dir: &Path, m: &mut Mirror) -> Result<()> {
        let data = encode_state(&m.table);
        fsutil::replace(dir, "state", &data, self.durable)?;
        // A crash here leaves the old journal: its blocks are all <= the snapshot's version
        // and are skipped on reading.
        let head = encode_journal_head(m.table.version);
        fsutil::replace(dir, "journal", &head, self.durable)?;
        let (_, ino, _) = self.open_journal(dir)?;
        m.ino = ino;
        m.base = m.table.version;
        m.offset = head.len() as u64;
        m.index.clear();
        Ok(())
    }
}

impl LocalStore {
    /// The keeper of network `name`'s shared reservations: `<name>/holds`.
    async fn holds_file(&self, name: &str) -> Result<HoldsFile> {
        let inner = self.inner.clone();
        let n = name.to_string();
        let dir = blocking(move || inner.read_network(&n).and(inner.net_dir(&n))).await?;
        Ok(HoldsFile::new(dir, "holds", self.inner.durable))
    }
}

impl Store for LocalStore {
    blocking_store_methods!();
    file_holds_methods!();

    fn serves_views(&self) -> bool {
        true
    }

    fn has_host_records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.has_records(&name)))
    }

    fn view<'a>(&'a self, name: &'a str, query: &'a ViewQuery) -> StoreFuture<'a, Option<View>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        let query = query.clone();
        Box::pin(blocking(move || inner.view(&name, &query)))
    }

    fn update<'a>(
        &'a self,
        name: &'a str,
        query: &'a ViewQuery,
        compute: Compute,
    ) -> StoreFuture<'a, bool> {
        let inner = self.inner.clone();
        let name = name.to_string();
        let query = query.clone();
        Box::pin(blocking(move || inner.update(&name, &query, compute)))
    }

    fn changes_since<'a>(
        &'a self,
        name: &'a str,
        version: u64,
    ) -> StoreFuture<'a, Option<(Vec<Change>, u64)>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.changes_since(&name, version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::lease::{Owner, Record};

    fn claim(i: u8) -> Change {
        Change::Claim(Record {
            addr: format!("10.0.0.{i}").parse().unwrap(),
            owner: Owner::new(format!("c{i}"), "eth0").unwrap(),
            boot_id: None,
        })
    }

    #[test]
    fn journal_compaction_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("ipam-local-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = LocalStore::with(dir.clone(), false, 300);
        let net = Network::new("n", vec!["10.0.0.0/24".parse().unwrap()]).unwrap();
        s.inner.create(&net).unwrap();
        let mut v = s.inner.version("n").unwrap();
        for i in 2..40 {
            v = s.inner.commit("n", v, &[claim(i)]).unwrap();
        }
        // Compactions happened: the journal is short again.
        let state = std::fs::read_to_string(dir.join("n/state")).unwrap();
        assert!(state.matches("\nlease ").count() >= 10, "{state}");
        // A second store (another process) reads the same thing.
        let other = LocalStore::with(dir.clone(), false, 300);
        let snap = other.inner.load("n").unwrap();
        assert_eq!(snap.records.len(), 38);
        assert_eq!(snap.version, v);
        // It sees new blocks incrementally, and can say what changed.
        let v2 = s.inner.commit("n", v, &[claim(200)]).unwrap();
        let (ch, now) = other.inner.changes_since("n", v).unwrap().unwrap();
        assert_eq!((ch, now), (vec![claim(200)], v2));
        assert_eq!(
            other.inner.changes_since("n", v2).unwrap().unwrap().0,
            vec![]
        );
        // A stale version mismatch is a conflict.
        let e = other.inner.commit("n", v, &[claim(201)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        // A torn tail (half a block) is ignored, then overwritten by the next commit.
        let j = dir.join("n/journal");
        let mut f = OpenOptions::new().append(true).open(&j).unwrap();
        std::io::Write::write_all(&mut f, b"v 999 1\n+ 10.0.0.250 x eth").unwrap();
        assert_eq!(other.inner.version("n").unwrap(), v2);
        let v3 = other.inner.commit("n", v2, &[claim(201)]).unwrap();
        let fresh = LocalStore::with(dir.clone(), false, 300);
        assert_eq!(fresh.inner.version("n").unwrap(), v3);
        assert_eq!(fresh.inner.load("n").unwrap().records.len(), 40);
        // Damage inside a complete block is corruption, named (a block this store does not
        // compact away).
        let keep = LocalStore::with(dir.clone(), false, u64::MAX);
        keep.inner.commit("n", v3, &[claim(202)]).unwrap();
        let data = std::fs::read(&j).unwrap();
        let mut bad = data.clone();
        let at = bad.iter().position(|b| *b == b'+').unwrap();
        bad[at + 3] ^= 1;
        std::fs::write(&j, &bad).unwrap();
        let e = LocalStore::with(dir.clone(), false, 300)
            .inner
            .load("n")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.message().contains("journal"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The embedded default store: files under one directory, one sub-directory per network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::network::{check_name, Network};

use super::fsutil;
use super::memory::conflict;
use super::stateformat::{
    decode_network, decode_state, decode_version, encode_network, encode_state,
};
use super::{blocking, Change, Snapshot, Store, StoreFuture, Table};

/// Leases in files, safe across threads, processes and crashes.
///
/// Layout under the directory (mode 0700): `lock` (taken to create or delete networks) and per
/// network `<name>/` holding `network` (the definition), `state` (leases, cursors, boot ids,
/// version) and `lock`. Every commit takes `<name>/lock` (`flock`), checks the version, writes
/// `.state.tmp`, fsyncs it, renames it over `state` and fsyncs the directory before returning.
/// Readers need no lock: a rename replaces the file whole. See docs/ipam.md for the formats.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<LocalInner>,
}

#[derive(Debug)]
struct LocalInner {
    dir: PathBuf,
    durable: bool,
    /// Last state read or written per network, to avoid re-parsing on commit.
    mirrors: Mutex<HashMap<String, Table>>,
}

impl LocalStore {
    /// Where a system-wide store lives by default.
    pub const DEFAULT_DIR: &'static str = "/var/lib/underlay/ipam";

    /// Opens (creating it, mode 0700, if missing) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<LocalStore> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::mkdir(&dir)?;
        Ok(LocalStore {
            inner: Arc::new(LocalInner {
                dir,
                durable: true,
                mirrors: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Opens [`LocalStore::DEFAULT_DIR`].
    pub fn open_default() -> Result<LocalStore> {
        LocalStore::open(Self::DEFAULT_DIR)
    }

    /// Without fsync (`durable = false`) commits stay atomic but a power loss may undo the last
    /// ones: for tests, or a store on tmpfs. Default: durable.
    pub fn durable(self, durable: bool) -> LocalStore {
        LocalStore {
            inner: Arc::new(LocalInner {
                dir: self.inner.dir.clone(),
                durable,
                mirrors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
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
                Error::io(format!("cannot read {}", path.display()), e)
            }
        })?;
        let net = decode_network(&data, &path)?;
        if net.name() != name {
            return Err(super::stateformat::corrupt(
                &path,
                format_args!(
                    "it defines network `{}` inside directory `{name}`",
                    net.name()
                ),
            ));
        }
        Ok(net)
    }

    fn read_table(&self, name: &str) -> Result<Table> {
        let network = self.read_network(name)?;
        let path = self.net_dir(name)?.join("state");
        decode_state(&fsutil::read(&path)?, &path, network)
    }

    fn mirrors(&self) -> std::sync::MutexGuard<'_, HashMap<String, Table>> {
        self.mirrors.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn networks(&self) -> Result<Vec<Network>> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("cannot list IPAM store {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| {
                Error::io(format!("cannot list IPAM store {}", self.dir.display()), e)
            })?;
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
                .map_err(|e| Error::io(format!("cannot remove leftover {}", tmp.display()), e))?;
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
        table.version = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        fsutil::replace(&tmp, "state", &encode_state(&table), self.durable)?;
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
        self.mirrors().insert(name.to_string(), table);
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        let _store_lock = fsutil::lock(&self.dir.join("lock"))?;
        let dir = self.net_dir(name)?;
        let _lock = {
            self.read_network(name)?;
            fsutil::lock(&dir.join("lock"))?
        };
        let t = self.read_table(name)?;
        if !t.records.is_empty() {
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "network `{name}` still holds {} leases: release them (or gc) before deleting it",
                    t.records.len()
                ),
            ));
        }
        let gone = self.dir.join(format!(".deleted-{name}"));
        let _ = std::fs::remove_dir_all(&gone);
        std::fs::rename(&dir, &gone)
            .map_err(|e| Error::io(format!("cannot remove {}", dir.display()), e))?;
        if self.durable {
            fsutil::sync_dir(&self.dir)?;
        }
        self.mirrors().remove(name);
        std::fs::remove_dir_all(&gone)
            .map_err(|e| Error::io(format!("cannot remove {}", gone.display()), e))
    }

    fn load(&self, name: &str) -> Result<Snapshot> {
        let t = self.read_table(name)?;
        let snap = t.snapshot();
        self.mirrors().insert(name.to_string(), t);
        Ok(snap)
    }

    fn version(&self, name: &str) -> Result<u64> {
        let path = self.net_dir(name)?.join("state");
        match fsutil::read_head(&path, 64) {
            Ok(head) => decode_version(&head, &path),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.read_network(name)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn commit(&self, name: &str, expected: u64, changes: &[Change]) -> Result<u64> {
        let dir = self.net_dir(name)?;
        if !dir.join("network").exists() {
            self.read_network(name)?;
        }
        let _lock = fsutil::lock(&dir.join("lock"))?;
        let now = self.version(name)?;
        if now != expected {
            return Err(conflict(name, now, expected));
        }
        let mut table = match self.mirrors().remove(name) {
            Some(t) if t.version == now => t,
            _ => self.read_table(name)?,
        };
        let v = table.apply(changes)?;
        fsutil::replace(&dir, "state", &encode_state(&table), self.durable)?;
        self.mirrors().insert(name.to_string(), table);
        Ok(v)
    }
}

impl Store for LocalStore {
    fn networks(&self) -> StoreFuture<'_, Vec<Network>> {
        let inner = self.inner.clone();
        Box::pin(blocking(move || inner.networks()))
    }

    fn create_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, ()> {
        let inner = self.inner.clone();
        let network = network.clone();
        Box::pin(blocking(move || inner.create(&network)))
    }

    fn delete_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.delete(&name)))
    }

    fn load<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Snapshot> {
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.load(&name)))
    }

    fn version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, u64> {
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.version(&name)))
    }

    fn commit<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        changes: &'a [Change],
    ) -> StoreFuture<'a, u64> {
        let inner = self.inner.clone();
        let name = name.to_string();
        let changes = changes.to_vec();
        Box::pin(blocking(move || inner.commit(&name, expected, &changes)))
    }
}

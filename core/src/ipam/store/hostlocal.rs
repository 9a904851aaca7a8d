//! CNI host-local's on-disk layout, read and written as host-local does, so a host can move
//! between the host-local plugin and underlay (or run both) without losing leases.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{Owner, Record};
use crate::ipam::network::{check_name, Network};

use super::fsutil;
use super::memory::conflict;
use super::stateformat::{corrupt, decode_network, encode_network};
use super::{blocking, blocking_store_methods, Change, ForeignLease, Snapshot, Store, StoreFuture};

const DEF_FILE: &str = "underlay.network";
const CURSOR_PREFIX: &str = "last_reserved_ip.";

/// A store in CNI host-local's layout: `<dataDir>/<network>/<ip>` files holding
/// `<container id>\r\n<ifname>`, `last_reserved_ip.<pool index>` and the `lock` file host-local
/// `flock`s. underlay adds `underlay.network` (the definition) to each network directory it
/// manages; an existing host-local directory is adopted with its leases when the network is
/// created. Boot ids are not kept in this layout.
#[derive(Debug, Clone)]
pub struct HostLocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    durable: bool,
}

impl HostLocalStore {
    /// host-local's default `dataDir`.
    pub const DEFAULT_DIR: &'static str = "/var/lib/cni/networks";

    /// Opens (creating it if missing) the host-local data directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<HostLocalStore> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::mkdir(&dir)?;
        Ok(HostLocalStore {
            inner: Arc::new(Inner { dir, durable: true }),
        })
    }

    /// Without fsync: see [`super::LocalStore::durable`].
    pub fn durable(self, durable: bool) -> HostLocalStore {
        HostLocalStore {
            inner: Arc::new(Inner {
                dir: self.inner.dir.clone(),
                durable,
            }),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

struct Dir {
    network: Network,
    records: BTreeMap<IpAddr, Record>,
    /// Lease files underlay cannot represent (kept, never handed out).
    foreign: BTreeMap<IpAddr, ForeignLease>,
    cursors: Vec<Option<IpAddr>>,
    version: u64,
}

fn fnv(h: &mut u64, data: &[u8]) {
    for b in data {
        *h ^= *b as u64;
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

/// Parses a lease file's content.
pub(crate) fn parse_lease(data: &[u8], path: &Path) -> Result<Owner> {
    let text = std::str::from_utf8(data).map_err(|_| corrupt(path, "it is not UTF-8 text"))?;
    let text = text.trim();
    let (id, ifname) = match text.split_once("\r\n").or_else(|| text.split_once('\n')) {
        Some((id, ifname)) => (id.trim(), ifname.trim()),
        None => {
            return Err(corrupt(
                path,
                "it holds a container id but no interface name (written by host-local before \
                 CNI 0.7); release that container with host-local, or add `\\r\\neth0`",
            ))
        }
    };
    Owner::new(id, ifname).map_err(|e| corrupt(path, e.message()))
}

/// A lease file underlay cannot take as its own; `why` is cut to a readable length (the file
/// may hold anything).
fn foreign_lease(addr: IpAddr, path: &Path, why: &str) -> ForeignLease {
    const MAX: usize = 300;
    let mut reason: String = why.chars().take(MAX).collect();
    if reason.len() < why.len() {
        reason.push_str("...");
    }
    ForeignLease {
        addr,
        location: path.display().to_string(),
        reason,
    }
}

impl Inner {
    fn net_dir(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }

    fn read_network(&self, name: &str) -> Result<Network> {
        let path = self.net_dir(name)?.join(DEF_FILE);
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!(
                    "network `{name}` is not defined for underlay in {} (no {DEF_FILE}): create \
                     it first (existing host-local leases are kept)",
                    self.dir.display()
                ))
            } else {
                fsutil::io_err("read", &path, e)
            }
        })?;
        decode_network(&data, &path)
    }

    /// Reads the directory (the caller holds `lock`).
    fn read(&self, name: &str) -> Result<Dir> {
        let network = self.read_network(name)?;
        let dir = self.net_dir(name)?;
        let list_err = |e| fsutil::io_err("list", &dir, e);
        let mut names: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            if let Some(n) = entry.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        names.sort();
        let mut records = BTreeMap::new();
        let mut foreign = BTreeMap::new();
        let mut cursors = vec![None; network.pools().len()];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for n in names {
            let path = dir.join(&n);
            if let Some(idx) = n.strip_prefix(CURSOR_PREFIX) {
                let data = fsutil::read(&path)?;
                let ip: Option<IpAddr> = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                let ip = ip.ok_or_else(|| corrupt(&path, "it does not hold an IP address"))?;
                if let Some(slot) = idx.parse::<usize>().ok().and_then(|i| cursors.get_mut(i)) {
                    *slot = Some(ip);
                }
                continue;
            }
            let Ok(addr) = n.parse::<IpAddr>() else {
                continue; // lock, underlay.network, temp files, anything else
            };
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(fsutil::io_err("read", &path, e)),
            };
            fnv(&mut h, n.as_bytes());
            fnv(&mut h, b"\0");
            fnv(&mut h, &data);
            fnv(&mut h, b"\0");
            // host-local accepted what it wrote; what underlay cannot take as its own blocks
            // its address and nothing else.
            let owner = match parse_lease(&data, &path) {
                Ok(owner) => owner,
                Err(e) => {
                    foreign.insert(addr, foreign_lease(addr, &path, e.message()));
                    continue;
                }
            };
            if !network.pools().iter().any(|p| p.contains(addr)) {
                let why = format!("held by {owner}, outside every pool of the network");
                foreign.insert(addr, foreign_lease(addr, &path, &why));
                continue;
            }
            records.insert(
                addr,
                Record {
                    addr,
                    owner,
                    boot_id: None,
                },
            );
        }
        Ok(Dir {
            network,
            records,
            foreign,
            cursors,
            version: h,
        })
    }

    fn networks(&self) -> Result<Vec<Network>> {
        let err = |e| fsutil::io_err("list", &self.dir, e);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_name(&name).is_ok() && entry.path().join(DEF_FILE).exists() {
                out.push(self.read_network(&name)?);
            }
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(out)
    }

    fn create(&self, network: &Network) -> Result<()> {
        let _lock = fsutil::lock(&self.dir.join(".underlay.lock"))?;
        let name = network.name();
        let dir = self.net_dir(name)?;
        if dir.join(DEF_FILE).exists() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "network `{name}` is already defined in {}: open it, or delete it first",
                    self.dir.display()
                ),
            ));
        }
        for other in self.networks()? {
            network.check_disjoint(&other)?;
        }
        fsutil::mkdir(&dir)?;
        let _net_lock = fsutil::lock(&dir.join("lock"))?;
        // host-local's leases are adopted as they are: those underlay cannot represent stay
        // as foreign leases (see `read`). The definition is the only file written, last.
        fsutil::replace(
            &dir,
            DEF_FILE,
            encode_network(network).as_bytes(),
            self.durable,
        )?;
        if self.durable {
            fsutil::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        let _lock = fsutil::lock(&self.dir.join(".underlay.lock"))?;
        let dir = self.net_dir(name)?;
        let _net_lock = {
            self.read_network(name)?;
            fsutil::lock(&dir.join("lock"))?
        };
        let d = self.read(name)?;
        if !d.records.is_empty() || !d.foreign.is_empty() {
            let foreign = if d.foreign.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} leases underlay cannot release (release them with host-local)",
                    d.foreign.len()
                )
            };
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "network `{name}` still holds {} leases{foreign} in {}: release them first",
                    d.records.len(),
                    dir.display()
                ),
            ));
        }
        let gone = self.dir.join(format!(".deleted-{name}"));
        let _ = std::fs::remove_dir_all(&gone);
        std::fs::rename(&dir, &gone).map_err(|e| fsutil::io_err("remove", &dir, e))?;
        if self.durable {
            fsutil::sync_dir(&self.dir)?;
        }
        std::fs::remove_dir_all(&gone).map_err(|e| fsutil::io_err("remove", &gone, e))
    }

    fn load(&self, name: &str) -> Result<Snapshot> {
        let dir = self.net_dir(name)?;
        self.read_network(name)?;
        let _lock = fsutil::lock(&dir.join("lock"))?;
        let d = self.read(name)?;
        Ok(Snapshot {
            network: d.network,
            records: d.records.into_values().collect(),
            cursors: d.cursors,
            version: d.version,
            slice_writes: 0,
            foreign: d.foreign.into_values().collect(),
        })
    }

    fn version(&self, name: &str) -> Result<u64> {
        let dir = self.net_dir(name)?;
        self.read_network(name)?;
        let _lock = fsutil::lock(&dir.join("lock"))?;
        Ok(self.read(name)?.version)
    }

    fn write_file(&self, dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
        let tmp = dir.join(".underlay.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        if self.durable {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, dir.join(name))
    }

    fn commit(&self, name: &str, expected: u64, changes: &[Change]) -> Result<u64> {
        let dir = self.net_dir(name)?;
        self.read_network(name)?;
        let _lock = fsutil::lock(&dir.join("lock"))?;
        let now = self.read(name)?;
        if now.version != expected {
            return Err(conflict(name, now.version, expected));
        }
        let mut records = now.records;
        for c in changes {
            let io = |e| fsutil::io_err("update", &dir, e);
            match c {
                Change::Claim(r) => {
                    if let Some(old) = records.get(&r.addr) {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "address {} is already held by {}: reload and retry",
                                r.addr, old.owner
                            ),
                        ));
                    }
                    if let Some(f) = now.foreign.get(&r.addr) {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "address {} is held by a lease underlay cannot take ({}): \
                                 reload and retry",
                                r.addr, f.location
                            ),
                        ));
                    }
                    let body = format!(
                        "{}\r\n{}",
                        r.owner.container_id(),
                        r.owner.ifname().as_str()
                    );
                    self.write_file(&dir, &r.addr.to_string(), body.as_bytes())
                        .map_err(io)?;
                    records.insert(r.addr, r.clone());
                }
                Change::Release(r) => {
                    match records.get(&r.addr) {
                        Some(old) if old.owner == r.owner => {}
                        _ => {
                            return Err(Error::new(
                                ErrorKind::Conflict,
                                format!(
                                    "address {} is not held by {}: reload and retry",
                                    r.addr, r.owner
                                ),
                            ))
                        }
                    }
                    std::fs::remove_file(dir.join(r.addr.to_string())).map_err(io)?;
                    records.remove(&r.addr);
                }
                Change::Cursor { pool, addr } => {
                    self.write_file(
                        &dir,
                        &format!("{CURSOR_PREFIX}{pool}"),
                        addr.to_string().as_bytes(),
                    )
                    .map_err(io)?;
                }
            }
        }
        if self.durable {
            fsutil::sync_dir(&dir)?;
        }
        Ok(self.read(name)?.version)
    }
}

impl Store for HostLocalStore {
    fn keeps_boot_ids(&self) -> bool {
        false
    }

    blocking_store_methods!();
}

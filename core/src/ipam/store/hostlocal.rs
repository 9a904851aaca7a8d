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
use crate::ipam::pool::u128_to_ip;

use super::fsutil;
use super::holds::{file_holds_methods, HoldsFile};
use super::memory::conflict;
use super::stateformat::{corrupt, decode_network, encode_network};
use super::{
    blocking, blocking_store_methods, Change, Compute, ForeignLease, Snapshot, Store, StoreFuture,
    View, ViewQuery,
};

const DEF_FILE: &str = "underlay.network";
/// The lock underlay's writers hold from a load to its commit ([`Store::lock_for_update`]).
const UPDATE_LOCK: &str = ".underlay.update";
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

/// A network directory opened for a scan: file names resolve against its descriptor, which
/// spares the path walk per file.
struct DirFd {
    path: PathBuf,
    fd: std::fs::File,
}

impl DirFd {
    fn open(path: &Path) -> Result<DirFd> {
        let fd = std::fs::File::open(path).map_err(|e| fsutil::io_err("open", path, e))?;
        Ok(DirFd {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// The file's content (`None` if it vanished): openat, read, close.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let cname =
            std::ffi::CString::new(name).map_err(|_| corrupt(&self.path, "a NUL in a name"))?;
        // SAFETY: a valid directory descriptor and a NUL-terminated name; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                cname.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(fsutil::io_err("read", &self.path.join(name), e));
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut data = vec![0u8; 512];
        let mut len = 0;
        loop {
            let n = file
                .read(&mut data[len..])
                .map_err(|e| fsutil::io_err("read", &self.path.join(name), e))?;
            len += n;
            // A short read of a regular file is its end.
            if n == 0 || len < data.len() {
                break;
            }
            data.resize(data.len() * 2, 0);
        }
        data.truncate(len);
        Ok(Some(data))
    }

    /// The file's identity: its handle (inode and generation: a file written anew under the
    /// same name, even on a reused inode, gets another), hashed with its name; `None` if it
    /// vanished. Where the filesystem gives no handles, its name and content.
    fn identity(&self, name: &str, handles: &mut bool) -> Result<Option<u64>> {
        use std::os::fd::AsRawFd;
        if *handles {
            #[repr(C)]
            struct Handle {
                bytes: u32,
                kind: i32,
                data: [u8; 128],
            }
            let cname =
                std::ffi::CString::new(name).map_err(|_| corrupt(&self.path, "a NUL in a name"))?;
            let mut h = Handle {
                bytes: 128,
                kind: 0,
                data: [0; 128],
            };
            let mut mount_id: libc::c_int = 0;
            // SAFETY: `h` is a file_handle with room for MAX_HANDLE_SZ bytes; the result is
            // checked.
            let r = unsafe {
                libc::name_to_handle_at(
                    self.fd.as_raw_fd(),
                    cname.as_ptr(),
                    (&mut h as *mut Handle).cast::<libc::file_handle>(),
                    &mut mount_id,
                    0,
                )
            };
            if r == 0 {
                let mut id: u64 = 0xcbf2_9ce4_8422_2325;
                fnv(&mut id, name.as_bytes());
                fnv(&mut id, b"\0");
                fnv(&mut id, &h.kind.to_ne_bytes());
                fnv(&mut id, &h.data[..(h.bytes as usize).min(128)]);
                return Ok(Some(id));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOENT) => return Ok(None),
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EOVERFLOW) => {
                    *handles = false
                }
                _ => return Err(fsutil::io_err("identify", &self.path.join(name), e)),
            }
        }
        Ok(self.read(name)?.map(|data| content_identity(name, &data)))
    }
}

/// A lease file's identity where the filesystem gives no handles: its name and content.
fn content_identity(name: &str, data: &[u8]) -> u64 {
    let mut id: u64 = 0x8422_2325_cbf2_9ce4;
    fnv(&mut id, name.as_bytes());
    fnv(&mut id, b"\0");
    fnv(&mut id, data);
    id
}

/// What a scan of a network directory found. The version is the wrapping sum of the lease
/// files' identities, so a commit moves it by what it wrote and removed, without a rescan.
struct Scan {
    network: Network,
    /// Lease files: address -> (file name, identity).
    leases: BTreeMap<IpAddr, (String, u64)>,
    /// Owners, when asked for.
    records: BTreeMap<IpAddr, Record>,
    /// Lease files underlay cannot represent (kept, never handed out), when owners are asked
    /// for.
    foreign: BTreeMap<IpAddr, ForeignLease>,
    cursors: Vec<Option<IpAddr>>,
    version: u64,
    /// Whether identities are file handles (else content hashes).
    handles: bool,
    dir: DirFd,
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

    /// Scans the directory (the caller holds `lock`): with `identities` every lease file's
    /// identity (the version), with `owners` its owner. One `getdents` pass, then per file
    /// one `name_to_handle_at` and (owners) an openat/read/close relative to the directory.
    fn scan(&self, name: &str, owners: bool, identities: bool) -> Result<Scan> {
        let network = self.read_network(name)?;
        let path = self.net_dir(name)?;
        let dir = DirFd::open(&path)?;
        let list_err = |e| fsutil::io_err("list", &path, e);
        let mut leases = BTreeMap::new();
        let mut records = BTreeMap::new();
        let mut foreign = BTreeMap::new();
        let mut cursors = vec![None; network.pools().len()];
        let mut version: u64 = 0;
        let mut handles = true;
        for entry in std::fs::read_dir(&path).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let Some(n) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some(idx) = n.strip_prefix(CURSOR_PREFIX) {
                let file = path.join(&n);
                let data = fsutil::read(&file)?;
                let ip: Option<IpAddr> = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                let ip = ip.ok_or_else(|| corrupt(&file, "it does not hold an IP address"))?;
                if let Some(slot) = idx.parse::<usize>().ok().and_then(|i| cursors.get_mut(i)) {
                    *slot = Some(ip);
                }
                continue;
            }
            let Ok(addr) = n.parse::<IpAddr>() else {
                continue; // lock, underlay.network, temp files, anything else
            };
            let (id, owner) = if owners {
                let Some(data) = dir.read(&n)? else { continue };
                // host-local accepted what it wrote; what underlay cannot take as its own
                // blocks its address (it stays among `leases`) and nothing else.
                let file = path.join(&n);
                let owner = match parse_lease(&data, &file) {
                    Ok(owner) if network.pools().iter().any(|p| p.contains(addr)) => Some(owner),
                    Ok(owner) => {
                        let why = format!("held by {owner}, outside every pool of the network");
                        foreign.insert(addr, foreign_lease(addr, &file, &why));
                        None
                    }
                    Err(e) => {
                        foreign.insert(addr, foreign_lease(addr, &file, e.message()));
                        None
                    }
                };
                let id = if !identities {
                    Some(0)
                } else if handles {
                    dir.identity(&n, &mut handles)?
                } else {
                    Some(content_identity(&n, &data))
                };
                let Some(id) = id else {
                    foreign.remove(&addr);
                    continue;
                };
                (id, owner)
            } else {
                let Some(id) = dir.identity(&n, &mut handles)? else {
                    continue;
                };
                (id, None)
            };
            version = version.wrapping_add(id);
            leases.insert(addr, (n, id));
            if let Some(owner) = owner {
                records.insert(
                    addr,
                    Record {
                        addr,
                        owner,
                        boot_id: None,
                    },
                );
            }
        }
        Ok(Scan {
            network,
            leases,
            records,
            foreign,
            cursors,
            version,
            handles,
            dir,
        })
    }

    /// The owner written in the lease file `file`: None if it vanished, or if underlay cannot
    /// take it as its own (a foreign lease, which no change of underlay's may touch).
    fn owner_of(&self, scan: &Scan, file: &str) -> Result<Option<Owner>> {
        match scan.dir.read(file)? {
            Some(data) => Ok(parse_lease(&data, &scan.dir.path.join(file)).ok()),
            None => Ok(None),
        }
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
        // as foreign leases (see `scan`). The definition is the only file written, last.
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
        let d = self.scan(name, true, true)?;
        if !d.leases.is_empty() {
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
        let d = self.scan(name, true, true)?;
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
        Ok(self.scan(name, false, true)?.version)
    }

    /// See [`Store::update`]: as host-local allocates, the network's `lock` held from the
    /// scan to the last write, so the scan needs no identities and the commit no second scan
    /// to check the version.
    fn update(&self, name: &str, compute: Compute) -> Result<bool> {
        let dir = self.net_dir(name)?;
        self.read_network(name)?;
        let _lock = fsutil::lock(&dir.join("lock"))?;
        let mut now = self.scan(name, true, false)?;
        let every = |v6: bool| {
            let last = if v6 { u128::MAX } else { u32::MAX as u128 };
            (u128_to_ip(0, v6), u128_to_ip(last, v6))
        };
        let view = View {
            snapshot: Snapshot {
                network: now.network.clone(),
                records: std::mem::take(&mut now.records).into_values().collect(),
                cursors: now.cursors.clone(),
                version: now.version,
                slice_writes: 0,
                foreign: now.foreign.values().cloned().collect(),
            },
            known: vec![every(false), every(true)],
        };
        let changes = compute(view)?;
        if !changes.is_empty() {
            self.apply(name, &dir, &now, &changes)?;
        }
        Ok(true)
    }

    /// Whether any lease file names an owner underlay can take (what `load` would list):
    /// the first one found tells.
    fn any_record(&self, name: &str) -> Result<bool> {
        let network = self.read_network(name)?;
        let path = self.net_dir(name)?;
        let _lock = fsutil::lock(&path.join("lock"))?;
        let dir = DirFd::open(&path)?;
        let list_err = |e| fsutil::io_err("list", &path, e);
        for entry in std::fs::read_dir(&path).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let Some(addr) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let n = addr.to_string();
            let Some(data) = dir.read(&n)? else { continue };
            if parse_lease(&data, &path.join(&n)).is_ok()
                && network.pools().iter().any(|p| p.contains(addr))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes `name` anew (a new file renamed over it), its data synced when `sync`.
    fn write_file(&self, dir: &Path, name: &str, data: &[u8], sync: bool) -> std::io::Result<()> {
        let tmp = dir.join(".underlay.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, dir.join(name))
    }

    /// Checks every change against the directory, then applies them: nothing is written
    /// when one is refused. The new version is the old one moved by the identities of the
    /// files written and removed (no rescan).
    fn commit(&self, name: &str, expected: u64, changes: &[Change]) -> Result<u64> {
        let dir = self.net_dir(name)?;
        self.read_network(name)?;
        let _lock = fsutil::lock(&dir.join("lock"))?;
        let now = self.scan(name, false, true)?;
        if now.version != expected {
            return Err(conflict(name, now.version, expected));
        }
        self.apply(name, &dir, &now, changes)
    }

    /// The rest of a commit on the scan `now` (the caller holds `lock` since): checks every
    /// change against the directory, then applies them.
    fn apply(&self, name: &str, dir: &Path, now: &Scan, changes: &[Change]) -> Result<u64> {
        // The batch's effect on who holds what: Some(owner) claimed in it, None released.
        let mut batch: BTreeMap<IpAddr, Option<&Owner>> = BTreeMap::new();
        for c in changes {
            match c {
                Change::Claim(r) => {
                    let held = match batch.get(&r.addr) {
                        Some(h) => h.is_some(),
                        None => now.leases.contains_key(&r.addr),
                    };
                    if held {
                        let by = match batch.get(&r.addr) {
                            Some(Some(o)) => Some((*o).clone()),
                            _ => self.owner_of(now, &now.leases[&r.addr].0)?,
                        };
                        let by = by.map_or_else(
                            || {
                                format!(
                                    "a lease underlay cannot take ({})",
                                    now.dir.path.join(&now.leases[&r.addr].0).display()
                                )
                            },
                            |o| o.to_string(),
                        );
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "address {} is already held by {}: reload and retry",
                                r.addr, by
                            ),
                        ));
                    }
                    batch.insert(r.addr, Some(&r.owner));
                }
                Change::Release(r) => {
                    let holder = match batch.get(&r.addr) {
                        Some(h) => h.cloned(),
                        None => match now.leases.get(&r.addr) {
                            Some((file, _)) => self.owner_of(now, file)?,
                            None => None,
                        },
                    };
                    if holder.as_ref() != Some(&r.owner) {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "address {} is not held by {}: reload and retry",
                                r.addr, r.owner
                            ),
                        ));
                    }
                    batch.insert(r.addr, None);
                }
                Change::Cursor { .. } => {}
            }
        }
        let mut version = now.version;
        let mut handles = now.handles;
        let mut written: BTreeMap<IpAddr, (String, u64)> = BTreeMap::new();
        for c in changes {
            let io = |e| fsutil::io_err("update", dir, e);
            match c {
                Change::Claim(r) => {
                    let file = r.addr.to_string();
                    let body = format!(
                        "{}\r\n{}",
                        r.owner.container_id(),
                        r.owner.ifname().as_str()
                    );
                    self.write_file(dir, &file, body.as_bytes(), self.durable)
                        .map_err(io)?;
                    let id = if handles {
                        now.dir.identity(&file, &mut handles)?
                    } else {
                        None
                    };
                    let id = id.unwrap_or_else(|| content_identity(&file, body.as_bytes()));
                    version = version.wrapping_add(id);
                    written.insert(r.addr, (file, id));
                }
                Change::Release(r) => {
                    let (file, id) = match written.remove(&r.addr) {
                        Some(w) => w,
                        None => now.leases[&r.addr].clone(),
                    };
                    std::fs::remove_file(dir.join(&file)).map_err(io)?;
                    version = version.wrapping_sub(id);
                }
                Change::Cursor { pool, addr } => {
                    // A hint (where next-fit goes on), not a lease: its data is not synced
                    // (host-local syncs nothing); lost, next-fit starts earlier.
                    self.write_file(
                        dir,
                        &format!("{CURSOR_PREFIX}{pool}"),
                        addr.to_string().as_bytes(),
                        false,
                    )
                    .map_err(io)?;
                }
            }
        }
        if self.durable {
            fsutil::sync_dir(dir)?;
        }
        if handles != now.handles {
            // The filesystem stopped giving handles midway: count afresh.
            return Ok(self.scan(name, false, true)?.version);
        }
        Ok(version)
    }
}

impl HostLocalStore {
    /// The keeper of network `name`'s shared reservations: `<name>/underlay.holds` (not an
    /// address, so host-local passes it by).
    async fn holds_file(&self, name: &str) -> Result<HoldsFile> {
        let inner = self.inner.clone();
        let n = name.to_string();
        let dir = blocking(move || inner.read_network(&n).and(inner.net_dir(&n))).await?;
        Ok(HoldsFile::new(dir, "underlay.holds", self.inner.durable))
    }
}

impl Store for HostLocalStore {
    file_holds_methods!();

    fn serves_views(&self) -> bool {
        true
    }

    /// The whole network, read and updated under host-local's `lock` in one step (see
    /// [`Store::update`]); the query does not narrow it: finding an owner's lease means
    /// reading every lease file, as host-local does.
    fn update<'a>(
        &'a self,
        name: &'a str,
        query: &'a ViewQuery,
        compute: Compute,
    ) -> StoreFuture<'a, bool> {
        let _ = query;
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.update(&name, compute)))
    }

    fn has_host_records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let inner = self.inner.clone();
        let name = name.to_string();
        Box::pin(blocking(move || inner.any_record(&name)))
    }

    fn keeps_boot_ids(&self) -> bool {
        false
    }

    /// An `flock` on `<network>/.underlay.update`, from a batch's load to its commit: host-local
    /// holds its `lock` through a whole allocation, so underlay's writers, which check their
    /// commit's version under that `lock` and otherwise recompute on a fresh load, wait their
    /// turn here instead of refusing each other's commits (host-local itself does not take it,
    /// and is caught by the version check as before).
    fn lock_for_update<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Box<dyn std::any::Any + Send + Sync>>> {
        Box::pin(async move {
            let dir = self.inner.net_dir(name)?;
            if !dir.is_dir() {
                return Ok(None); // the load that follows says what is missing
            }
            let path = dir.join(UPDATE_LOCK);
            let held = blocking(move || fsutil::lock(&path)).await?;
            Ok(Some(Box::new(held) as Box<dyn std::any::Any + Send + Sync>))
        })
    }

    blocking_store_methods!();
}

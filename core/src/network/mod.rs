//! Networks and endpoints with Docker-driver semantics: what `docker network create -d
//! macvlan|ipvlan` and `docker run --network` do, as a library.
//!
//! [`Networks`] keeps its state under one directory (default `/var/lib/underlay`): the IPAM's
//! local store in `ipam/`, one file per network in `networks/`, one per endpoint in
//! `endpoints/<network>/`. Links underlay makes in the host namespace carry an alias starting
//! with `underlay:` so that [`Networks::reconcile`] can tell them from the user's.

mod dhcp;
mod endpoint;
mod export;
mod parent;
mod reconcile;
mod records;
mod renewer;
mod shim;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use dhcp::DhcpRenewal;
pub use endpoint::{
    Announce, ConflictWatch, ConnectStep, DefaultRoute, Endpoint, EndpointConflict, EndpointSpec,
    MacPolicy,
};
pub use export::{render_vlan, ExportFile, ExportFormat};
pub use reconcile::{GoneEndpoint, ReconcileReport};
pub use shim::{HostAccess, ShimRoutes};
pub use spec::{Driver, NetworkSpec};

use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::ipam::{self, Ipam, LocalStore, Store};
use crate::link::{Link, LinkKind};
use crate::types::IfName;
use spec::Record;

/// The default state directory.
pub const DEFAULT_ROOT: &str = "/var/lib/underlay";

/// Alias prefix of every link underlay makes in the host namespace.
pub(crate) const MARK: &str = "underlay:";

/// Link group of endpoint links (set in the create request itself, so marking costs no extra
/// request): disconnect deletes a container's link only if it carries it. ASCII "ulep".
pub const ENDPOINT_GROUP: u32 = 0x756c_6570;

/// All networks of one state directory, on one host namespace.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, host)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// # let dir = std::env::temp_dir().join(format!("underlay-doc-{}", std::process::id()));
/// use underlay::network::{EndpointSpec, NetworkSpec, Networks};
/// use underlay::MacvlanMode;
/// let nets = Networks::open(&host, &dir).await?;
/// let net = nets
///     .create(NetworkSpec::macvlan("mac_net1", "ens192", MacvlanMode::Bridge)
///         .pool("172.22.16.0/24 gateway=172.22.16.1".parse()?))
///     .await?;
/// let (container, _) = underlay::doc_support::container().await?;
/// let ep = net.connect(&container, EndpointSpec::new("bbox1").ip("172.22.16.10".parse().unwrap())).await?;
/// assert_eq!(ep.addresses[0].to_string(), "172.22.16.10/24");
/// net.disconnect("bbox1", "eth0").await?;
/// nets.delete("mac_net1").await?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Networks {
    inner: Arc<Inner>,
}

struct Inner {
    host: Handle,
    root: PathBuf,
    store: Arc<dyn Store>,
    /// Endpoint record files and their locks (`root/endpoints/.lock`).
    records: records::Records,
    /// The packet socket announcing endpoints on their parents, opened on first use.
    announcer: std::sync::OnceLock<crate::probe::WireAnnouncer>,
    /// Conflict detection's ARP probers, one per parent (by link index), opened on first use.
    probers: tokio::sync::Mutex<std::collections::HashMap<u32, Arc<crate::probe::ArpProber>>>,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networks")
            .field("root", &self.inner.root)
            .field("host", &self.inner.host)
            .finish()
    }
}

impl Networks {
    /// Opens (creating if needed) the state under `root`, with the IPAM's local store in
    /// `root/ipam`. `host` is the namespace the parents live in.
    pub async fn open(host: &Handle, root: impl AsRef<Path>) -> Result<Networks> {
        let root = root.as_ref().to_path_buf();
        if let Some(parent) = root.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        }
        ipam::fsutil::mkdir_for(&root, "networks' state directory")?;
        let store = LocalStore::open(root.join("ipam"))?;
        Networks::with_store(host, root, Arc::new(store)).await
    }

    /// Like [`Networks::open`] with another IPAM store (e.g. a cluster-wide one); network and
    /// endpoint files still live under `root`.
    pub async fn with_store(
        host: &Handle,
        root: impl AsRef<Path>,
        store: Arc<dyn Store>,
    ) -> Result<Networks> {
        let root = root.as_ref().to_path_buf();
        for d in [root.clone(), root.join("networks"), root.join("endpoints")] {
            ipam::fsutil::mkdir_for(&d, "networks' state directory")?;
        }
        let records = records::Records::new(&root.join("endpoints"))?;
        Ok(Networks {
            inner: Arc::new(Inner {
                host: host.clone(),
                root,
                store,
                records,
                announcer: std::sync::OnceLock::new(),
                probers: Default::default(),
            }),
        })
    }

    /// The host namespace's handle.
    pub fn host(&self) -> &Handle {
        &self.inner.host
    }

    /// Creates a network: checks the parent (creating `ens192.10` on `ens192` when missing),
    /// the MTU, conflicts with other networks on the same parent, and pool overlaps; then
    /// records it. Nothing is left behind when a step fails.
    pub async fn create(&self, spec: NetworkSpec) -> Result<Network> {
        let parent = spec.validate()?;
        let _lock = self.lock().await?;
        if self.read_record(&spec.name)?.is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "network `{}` already exists: pick another name or delete it first",
                    spec.name
                ),
            ));
        }
        let others = self.records()?;
        let h = &self.inner.host;
        // A parent in the endpoints' namespaces is none of the host's business.
        let in_endpoint = spec.parent_in_endpoint_namespace;
        let (lower, brought_up) = match &parent {
            _ if in_endpoint => (None, None),
            Some(p) => {
                self.check_parent_conflicts(&spec, p, &others).await?;
                let got = parent::acquire(h, p, spec.bring_parent_up).await?;
                (Some(got.link), got.brought_up)
            }
            None => (Some(self.make_internal_lower(&spec.name).await?), None),
        };
        // Undoes the parent's acquisition: a user fewer (a VLAN made for it goes), and a
        // parent (or NIC) that was down is down again.
        let undo_lower = || async {
            let Some(lower) = &lower else {
                return Ok(());
            };
            let released = match &parent {
                Some(p) => parent::release(h, p).await,
                None => h.delete_link(lower.index).await,
            };
            let downed = parent::bring_down(h, brought_up).await;
            released.and(downed)
        };
        if let (Some(mtu), Some(lower)) = (spec.mtu, &lower) {
            if mtu > lower.mtu {
                let _ = undo_lower().await;
                return Err(Error::invalid(format!(
                    "network `{}`: MTU {mtu} is above parent `{}`'s MTU {}: lower it or raise the parent's",
                    spec.name, lower.name, lower.mtu
                )));
            }
        }
        // A DHCP network's addresses are the server's: its IPAM network is a placeholder that
        // never leases (so that every network has one, as reconcile and the stores expect).
        let ipam_net = match spec.dhcp {
            Some(_) => ipam::Network::new(spec.name.clone(), vec![dhcp_placeholder_pool()])?,
            None => ipam::Network::new(spec.name.clone(), spec.pools.clone())?,
        };
        // On a store shared by several hosts (etcd), another host may have defined the network
        // already: an identical definition is joined (this host counted as one of its users),
        // a different one refused.
        let (ipam, joined) = match Ipam::join(self.inner.store.clone(), ipam_net).await {
            Ok(j) => j,
            Err(e) => {
                let _ = undo_lower().await;
                return Err(e.context(format!("network `{}`", spec.name)));
            }
        };
        let record = Record {
            name: spec.name.clone(),
            driver: spec.driver,
            parent: spec.parent.clone(),
            lower: match &lower {
                Some(l) => l.name.clone(),
                None => spec.parent.clone().unwrap_or_default(),
            },
            mtu: spec.mtu,
            shim: None,
            conflict_detection: spec.conflict_detection,
            dhcp: spec.dhcp,
            parent_in_endpoint: in_endpoint,
        };
        if let Err(e) = self.write_record(&record) {
            // Undo the join: the definition if this host made it, the membership if recorded.
            if joined == ipam::Joined::Created || self.inner.store.is_shared() {
                let _ = Ipam::leave(self.inner.store.as_ref(), &spec.name).await;
            }
            let _ = undo_lower().await;
            return Err(e);
        }
        Ok(Network::new(self.clone(), record, ipam))
    }

    /// Opens network `spec.name` if it exists with this definition, else creates it: for
    /// front-ends whose every call carries the network's definition (a CNI config). Safe
    /// against concurrent callers, in this process or others: of two first calls one creates,
    /// the other opens. A network of that name defined otherwise (driver, mode, parent, MTU,
    /// pools) is [`ErrorKind::Conflict`], the message naming each difference.
    /// [`NetworkSpec::bring_parent_up`] matters only when the network is created.
    ///
    /// The network returned is pinned while it (or a clone) lives: [`Networks::delete_if_unused`]
    /// leaves it alone, so a connect through it never finds it deleted by another process's
    /// last disconnect.
    pub async fn create_or_open(&self, spec: NetworkSpec) -> Result<Network> {
        ipam::check_name(&spec.name)?;
        // Before the network is looked at: a delete_if_unused under way finishes first.
        let pin = Arc::new(ipam::fsutil::lock_shared_async(&self.pin_path(&spec.name)).await?);
        let pinned = |mut net: Network| {
            net.pin = Some(pin.clone());
            net
        };
        // A network deleted between a failed create and the open: try again (a few times).
        let mut last = None;
        for _ in 0..3 {
            match self.create(spec.clone()).await {
                Ok(net) => return Ok(pinned(net)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match self.get(&spec.name).await {
                Ok(net) => {
                    let diffs = net.differences(&spec);
                    if diffs.is_empty() {
                        return Ok(pinned(net));
                    }
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "network `{}` exists with another definition: {}; use the stored \
                             definition, or delete the network (after its endpoints) to redefine it",
                            spec.name,
                            diffs.join("; ")
                        ),
                    ));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::not_found(format!("network `{}` keeps vanishing", spec.name))
        }))
    }

    /// The network `name`.
    pub async fn get(&self, name: &str) -> Result<Network> {
        let record = self.read_record(name)?.ok_or_else(|| {
            Error::not_found(format!(
                "network `{name}` not found: create it first (Networks::create)"
            ))
        })?;
        let ipam = Ipam::open(self.inner.store.clone(), name).await?;
        Ok(Network::new(self.clone(), record, ipam))
    }

    /// Every network, sorted by name.
    pub async fn list(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        for r in self.records()? {
            let ipam = Ipam::open(self.inner.store.clone(), &r.name).await?;
            out.push(Network::new(self.clone(), r, ipam));
        }
        Ok(out)
    }

    /// Deletes network `name`: refuses while it has endpoints (disconnect them first), removes
    /// the host shim, the pools, and the VLAN parent if underlay made it and this was its last
    /// network. On an IPAM store shared by hosts (etcd) the pools stay while other hosts use
    /// the network: only this host's use of it ends ([`Ipam::leave`]). The last host's delete
    /// is refused ([`ErrorKind::Busy`]) while other hosts hold leases in it, and then changes
    /// nothing.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.delete_inner(name, false).await.map(|_| ())
    }

    /// Deletes network `name` if nothing uses it, as [`Networks::delete`] does, and tells
    /// whether it did: `false`, with nothing changed, while it has an endpoint, host access, a
    /// live handle from [`Networks::create_or_open`] (in any process), or a lease of this host (also one without an endpoint record, such as another
    /// program's on a shared host-local data directory: unlike `delete`, it releases none).
    /// The checks hold the network's endpoint locks and the store's own lock, so a connect, or
    /// another program's allocation, either comes first and keeps the network, or comes after
    /// and finds it gone. For a front-end that keeps a network only while it is used (a CNI
    /// plugin whose last DEL removes the VLAN parent made for it).
    pub async fn delete_if_unused(&self, name: &str) -> Result<bool> {
        self.delete_inner(name, true).await
    }

    async fn delete_inner(&self, name: &str, unused_only: bool) -> Result<bool> {
        let net = self.get(name).await?;
        // No connect or disconnect of this network runs while it goes (a connect that waited
        // finds the network gone).
        let _endpoints = self.inner.records.lock_network(name).await?;
        let eps = net.endpoints()?;
        if unused_only && (!eps.is_empty() || net.record.shim.is_some()) {
            return Ok(false);
        }
        // A pinned network (a handle of create_or_open, about to connect) is in use; the pin
        // is held to the end, so none is taken meanwhile.
        let _pin = if unused_only {
            match ipam::fsutil::try_lock(&self.pin_path(name))? {
                Some(pin) => Some(pin),
                None => return Ok(false),
            }
        } else {
            None
        };
        if !eps.is_empty() {
            let ids: Vec<String> = eps
                .iter()
                .map(|e| format!("{}/{}", e.container_id, e.ifname))
                .collect();
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "network `{name}` has active endpoints ({}): disconnect them first",
                    ids.join(", ")
                ),
            ));
        }
        // A refused delete changes nothing: ask the store whether it would refuse the leave
        // (other hosts' leases in a network this host is the last to use) before any teardown.
        match self.inner.store.check_leave(name).await {
            Err(e) if unused_only && e.kind() == ErrorKind::Busy => return Ok(false),
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(e.context(format!(
                    "deleting network `{name}` refused, nothing changed"
                )))
            }
            _ => {}
        }
        if unused_only {
            match self.inner.store.has_host_records(name).await {
                Ok(true) => return Ok(false),
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let _lock = self.lock().await?;
        if net.record.shim.is_some() {
            net.disable_host_access_locked().await?;
        }
        let h = &self.inner.host;
        let mut errors = Vec::new();
        // Stray leases (no endpoint file) would keep the IPAM network busy: drop them. Only
        // this host's: on a shared store the other hosts' leases are theirs.
        match if unused_only {
            Ok(Vec::new()) // none a moment ago; one claimed since makes the leave refuse
        } else {
            self.inner.store.host_records(name).await
        } {
            Ok(records) => {
                let mut owners: Vec<ipam::Owner> = records.into_iter().map(|r| r.owner).collect();
                owners.sort();
                owners.dedup();
                for o in owners {
                    if let Err(e) = net.ipam.release(&o).await {
                        errors.push(e);
                    }
                }
            }
            Err(e) if e.kind() != ErrorKind::NotFound => errors.push(e),
            Err(_) => {}
        }
        if let Err(e) = Ipam::leave(self.inner.store.as_ref(), name).await {
            if unused_only && e.kind() == ErrorKind::Busy && errors.is_empty() {
                return Ok(false); // a lease claimed since the check: the network is used
            }
            if e.kind() != ErrorKind::NotFound {
                // Refused after the check (a lease claimed meanwhile): keep the network's
                // record, parent and link, so that a retry can finish the delete.
                errors.push(e);
                return Err(Error::multiple(
                    format!("deleting network `{name}` (kept: retry the delete)"),
                    errors,
                ));
            }
        }
        match &net.record.parent {
            // Nothing of the host's: the endpoints' links went with their disconnects.
            Some(_) if net.record.parent_in_endpoint => {}
            Some(p) => {
                if let Err(e) = parent::release(h, &IfName::new(p.as_str())?).await {
                    errors.push(e);
                }
            }
            None => match h.delete_link(net.record.lower.as_str()).await {
                Err(e) if e.kind() != ErrorKind::NotFound => errors.push(e),
                _ => {}
            },
        }
        // Killed writers' temporary files first, so that the directory is empty.
        let dir = self.endpoints_dir(name);
        for tmp in records::list(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with('.'))
        {
            let _ = std::fs::remove_file(dir.join(tmp));
        }
        let _ = std::fs::remove_dir(&dir);
        if let Err(e) = std::fs::remove_file(self.record_path(name)) {
            errors.push(Error::io(
                format!("cannot remove network file of `{name}`"),
                e,
            ));
        }
        if errors.is_empty() {
            Ok(true)
        } else {
            Err(Error::multiple(
                format!("deleting network `{name}`"),
                errors,
            ))
        }
    }

    async fn check_parent_conflicts(
        &self,
        spec: &NetworkSpec,
        parent: &IfName,
        others: &[Record],
    ) -> Result<()> {
        let same: Vec<&Record> = others
            .iter()
            .filter(|r| r.host_parent() == Some(parent.as_str()))
            .collect();
        let conflict = |msg: String| {
            Err(Error::new(
                ErrorKind::Conflict,
                format!("network `{}`: {msg}", spec.name),
            ))
        };
        use crate::link::macvlan::MacvlanMode::Passthru;
        for o in &same {
            match (spec.driver, o.driver) {
                (Driver::Macvlan(_), Driver::Ipvlan(..))
                | (Driver::Ipvlan(..), Driver::Macvlan(_)) => {
                    return conflict(format!(
                        "parent `{parent}` already carries {} network `{}`: macvlan and ipvlan cannot share a parent; use a VLAN sub-interface ({parent}.<id>) for one of them",
                        o.driver.name(), o.name
                    ));
                }
                (Driver::Ipvlan(m, _), Driver::Ipvlan(om, _)) if m != om => {
                    return conflict(format!(
                        "ipvlan mode {} differs from network `{}`'s mode {} on parent `{parent}`: the mode belongs to the parent, use {} or another parent",
                        m.as_str(), o.name, om.as_str(), om.as_str()
                    ));
                }
                (Driver::Macvlan(Passthru), _) => {
                    return conflict(format!(
                        "macvlan mode passthru needs parent `{parent}` to itself, but network `{}` uses it",
                        o.name
                    ));
                }
                (_, Driver::Macvlan(Passthru)) => {
                    return conflict(format!(
                        "parent `{parent}` is taken by passthru network `{}`: a passthru parent has one child",
                        o.name
                    ));
                }
                _ => {}
            }
        }
        // Children visible in the host namespace (the user's own, shims): the same rules.
        if let Ok(p) = self.inner.host.link(parent).await {
            let children: Vec<Link> = self
                .inner
                .host
                .links()
                .await?
                .into_iter()
                .filter(|l| l.parent == Some(p.index) && l.parent_netns_id.is_none())
                .collect();
            let names = |pred: &dyn Fn(&Link) -> bool| {
                children
                    .iter()
                    .filter(|l| pred(l))
                    .map(|l| l.name.clone())
                    .collect::<Vec<_>>()
            };
            if spec.driver == Driver::Macvlan(Passthru) && !children.is_empty() {
                return conflict(format!(
                    "macvlan mode passthru is not allowed on parent `{parent}`: it already has children ({})",
                    names(&|_| true).join(", ")
                ));
            }
            let other_kind = match spec.driver {
                Driver::Macvlan(_) => names(&|l| matches!(l.kind, LinkKind::Ipvlan { .. })),
                Driver::Ipvlan(..) => names(&|l| {
                    matches!(l.kind, LinkKind::Macvlan { .. } | LinkKind::Macvtap { .. })
                }),
            };
            if !other_kind.is_empty() {
                return conflict(format!(
                    "parent `{parent}` already has {} children ({}): macvlan and ipvlan cannot share a parent",
                    if matches!(spec.driver, Driver::Macvlan(_)) { "ipvlan" } else { "macvlan" },
                    other_kind.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The parent of an internal network: a dummy, or a port-less bridge where the kernel has
    /// no dummy (a macvlan or ipvlan on either reaches only its siblings).
    async fn make_internal_lower(&self, network: &str) -> Result<Link> {
        let h = &self.inner.host;
        let name = short_name("ul", network, "-i");
        let alias = format!("{MARK}internal net={network}");
        match crate::link::dummy::Dummy::create(h, &name)
            .alias(alias.clone())
            .up()
            .execute()
            .await
        {
            Err(e) if e.kind() == ErrorKind::KernelUnsupported => {
                crate::link::bridge::Bridge::create(h, &name)
                    .alias(alias)
                    .up()
                    .execute()
                    .await
            }
            other => other,
        }
    }

    /// The networks' lock (`networks.lock`), awaited without blocking a runtime worker.
    async fn lock(&self) -> Result<std::fs::File> {
        ipam::fsutil::lock_async(&self.inner.root.join("networks.lock")).await
    }

    /// The lock file that pins network `name` (shared: [`Networks::create_or_open`]'s
    /// handles; exclusive: [`Networks::delete_if_unused`]). Never deleted, so that every
    /// process locks the same inode.
    fn pin_path(&self, name: &str) -> PathBuf {
        self.inner
            .root
            .join("networks")
            .join(format!(".{name}.pin"))
    }

    pub(crate) fn record_path(&self, name: &str) -> PathBuf {
        self.inner
            .root
            .join("networks")
            .join(format!("{name}.conf"))
    }

    /// The ARP prober on parent link `ifindex` (opened once per parent).
    pub(crate) async fn prober(&self, ifindex: u32) -> Result<Arc<crate::probe::ArpProber>> {
        let mut probers = self.inner.probers.lock().await;
        if let Some(p) = probers.get(&ifindex).filter(|p| p.is_running()) {
            return Ok(p.clone());
        }
        let p = Arc::new(crate::probe::ArpProber::open(self.inner.host.netns(), ifindex).await?);
        probers.insert(ifindex, p.clone());
        Ok(p)
    }

    /// The host namespace's announcing socket (opened once: closing one is dear).
    pub(crate) fn announcer(&self) -> Result<&crate::probe::WireAnnouncer> {
        if let Some(a) = self.inner.announcer.get() {
            return Ok(a);
        }
        let a = crate::probe::WireAnnouncer::open(self.inner.host.netns())?;
        Ok(self.inner.announcer.get_or_init(|| a))
    }

    pub(crate) fn record_files(&self) -> &records::Records {
        &self.inner.records
    }

    pub(crate) fn endpoints_dir(&self, name: &str) -> PathBuf {
        self.inner.root.join("endpoints").join(name)
    }

    fn read_record(&self, name: &str) -> Result<Option<Record>> {
        ipam::check_name(name)?;
        let path = self.record_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Record::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }

    fn write_record(&self, r: &Record) -> Result<()> {
        ipam::fsutil::replace(
            &self.inner.root.join("networks"),
            &format!("{}.conf", r.name),
            r.to_text().as_bytes(),
            true,
        )
    }

    fn records(&self) -> Result<Vec<Record>> {
        let dir = self.inner.root.join("networks");
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_suffix(".conf")
                .filter(|_| !name.starts_with('.'))
            {
                if let Some(r) = self.read_record(n)? {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// One network: connect and disconnect endpoints, host access, export.
#[derive(Clone)]
pub struct Network {
    nets: Networks,
    record: Record,
    ipam: Ipam,
    /// The lower link as last read (re-read when it has gone).
    lower_cache: Arc<std::sync::Mutex<Option<Link>>>,
    /// The shim endpoints' routes go through, as last read from the record file, with that
    /// file's identity (inode, mtime): another process may enable host access at any time.
    shim_cache: Arc<std::sync::Mutex<Option<ShimSetting>>>,
    /// The shared lock that keeps [`Networks::delete_if_unused`] away (create_or_open's).
    pin: Option<Arc<std::fs::File>>,
}

/// The shim endpoints route through (if any), with the identity of the record file it was read
/// from: (inode, mtime). Records are replaced by rename, so a new version is a new inode.
pub(crate) type ShimSetting = ((u64, std::time::SystemTime), Option<String>);

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("name", &self.record.name)
            .field("driver", &self.record.driver)
            .field("lower", &self.record.lower)
            .finish()
    }
}

impl Network {
    fn new(nets: Networks, record: Record, ipam: Ipam) -> Network {
        Network {
            nets,
            record,
            ipam,
            lower_cache: Arc::default(),
            shim_cache: Arc::default(),
            pin: None,
        }
    }

    /// The lower link, read once and kept (endpoint creation needs its index on every connect).
    /// A network whose parent is in each endpoint's namespace has none on the host.
    pub(crate) async fn lower_link(&self) -> Result<Link> {
        if self.record.parent_in_endpoint {
            return Err(Error::invalid(format!(
                "network `{}`: its parent `{}` is in each endpoint's namespace, not the host's",
                self.name(),
                self.lower()
            )));
        }
        if let Some(l) = self.lower_cache.lock().ok().and_then(|c| c.clone()) {
            return Ok(l);
        }
        let l = self.host().link(self.lower()).await.map_err(|e| {
            e.context(format!(
                "network `{}`: its parent `{}` is gone (run reconcile)",
                self.name(),
                self.lower()
            ))
        })?;
        if let Ok(mut c) = self.lower_cache.lock() {
            *c = Some(l.clone());
        }
        Ok(l)
    }

    /// Forgets the cached lower link (after it vanished or was recreated).
    pub(crate) fn forget_lower(&self) {
        if let Ok(mut c) = self.lower_cache.lock() {
            *c = None;
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The driver and its mode.
    pub fn driver(&self) -> Driver {
        self.record.driver
    }

    /// The parent as given (`None` for an internal network).
    pub fn parent(&self) -> Option<&str> {
        self.record.parent.as_deref()
    }

    /// Whether the parent is looked up in each endpoint's namespace
    /// ([`NetworkSpec::parent_in_endpoint_namespace`]).
    pub fn parent_in_endpoint_namespace(&self) -> bool {
        self.record.parent_in_endpoint
    }

    /// The link endpoints hang on (the parent, or the internal network's dummy).
    pub fn lower(&self) -> &str {
        &self.record.lower
    }

    /// The endpoints' MTU, if set.
    pub fn mtu(&self) -> Option<u32> {
        self.record.mtu
    }

    /// Whether and how addresses are checked on the wire before they are assigned.
    pub fn conflict_detection(&self) -> Option<crate::ConflictDetection> {
        self.record.conflict_detection
    }

    /// The pools (none on a DHCP network).
    pub fn pools(&self) -> &[ipam::Pool] {
        if self.record.dhcp.is_some() {
            return &[];
        }
        self.ipam.network().pools()
    }

    /// The DHCP settings, when the endpoints' addresses come from a DHCP server.
    pub fn dhcp(&self) -> Option<crate::DhcpConfig> {
        self.record.dhcp
    }

    /// The IPAM of this network (leases, gc).
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The host shim's name, when host access is enabled.
    pub fn host_access(&self) -> Option<&str> {
        self.record.shim.as_ref().map(|s| s.name.as_str())
    }

    /// The VLAN sub-interface behind this network, rendered for the distribution's own tools
    /// (so it exists at boot without underlay). Fails for parents that are not VLANs.
    pub fn export(&self, format: ExportFormat) -> Result<Vec<ExportFile>> {
        if self.record.parent_in_endpoint {
            return Err(Error::invalid(format!(
                "network `{}`: its parent is in each endpoint's namespace: the host has no VLAN to export",
                self.record.name
            )));
        }
        let p = self.record.parent.as_deref().unwrap_or(&self.record.lower);
        let (base, id) = parent::vlan_of(p).ok_or_else(|| {
            Error::invalid(format!(
                "network `{}`: parent `{p}` is not a VLAN sub-interface (<nic>.<id>): nothing to export",
                self.record.name
            ))
        })?;
        Ok(render_vlan(format, &IfName::new(p)?, &base, id))
    }

    fn host(&self) -> &Handle {
        &self.nets.inner.host
    }

    /// This network's definition as a spec (as [`Networks::create`] took it;
    /// `bring_parent_up` is not stored and reads `false`).
    pub fn spec(&self) -> NetworkSpec {
        NetworkSpec {
            name: self.name().to_string(),
            driver: self.driver(),
            parent: self.parent().map(str::to_string),
            mtu: self.mtu(),
            pools: self.pools().to_vec(),
            bring_parent_up: false,
            conflict_detection: self.conflict_detection(),
            dhcp: self.dhcp(),
            parent_in_endpoint_namespace: self.parent_in_endpoint_namespace(),
        }
    }

    /// How `spec` differs from this network's definition, one line per difference ("stored
    /// X, given Y"); empty when it defines the same network (`name` and `bring_parent_up` are
    /// not compared). [`Networks::create_or_open`] refuses a spec with differences.
    pub fn differences(&self, spec: &NetworkSpec) -> Vec<String> {
        let mut out = Vec::new();
        let driver = |d: Driver| match d {
            Driver::Macvlan(m) => format!("macvlan mode {}", m.as_str()),
            Driver::Ipvlan(m, f) => format!("ipvlan mode {} flag {}", m.as_str(), f.as_str()),
        };
        if self.driver() != spec.driver {
            out.push(format!(
                "driver: stored {}, given {}",
                driver(self.driver()),
                driver(spec.driver)
            ));
        }
        if self.parent() != spec.parent.as_deref() {
            out.push(format!(
                "parent: stored {}, given {}",
                self.parent().unwrap_or("none (internal)"),
                spec.parent.as_deref().unwrap_or("none (internal)")
            ));
        }
        if self.parent_in_endpoint_namespace() != spec.parent_in_endpoint_namespace {
            let place = |inside: bool| {
                if inside {
                    "each endpoint's namespace"
                } else {
                    "the host"
                }
            };
            out.push(format!(
                "parent's namespace: stored {}, given {}",
                place(self.parent_in_endpoint_namespace()),
                place(spec.parent_in_endpoint_namespace)
            ));
        }
        if self.mtu() != spec.mtu {
            let mtu = |m: Option<u32>| m.map_or("the parent's".to_string(), |m| m.to_string());
            out.push(format!(
                "MTU: stored {}, given {}",
                mtu(self.mtu()),
                mtu(spec.mtu)
            ));
        }
        if self.conflict_detection() != spec.conflict_detection {
            let c =
                |c: Option<crate::ConflictDetection>| c.map_or("off".to_string(), |c| c.to_text());
            out.push(format!(
                "conflict detection: stored {}, given {}",
                c(self.conflict_detection()),
                c(spec.conflict_detection)
            ));
        }
        if self.dhcp() != spec.dhcp {
            let d = |d: Option<crate::DhcpConfig>| d.map_or("off".to_string(), |d| d.to_text());
            out.push(format!(
                "DHCP: stored {}, given {}",
                d(self.dhcp()),
                d(spec.dhcp)
            ));
        }
        if self.pools() != spec.pools.as_slice() {
            let pools = |p: &[ipam::Pool]| {
                p.iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "pools: stored {}, given {}",
                pools(self.pools()),
                pools(&spec.pools)
            ));
        }
        out
    }
}

/// The one pool of a DHCP network's IPAM network: never leased from (0.0.0.0/30 holds no
/// address a DHCP server hands out).
fn dhcp_placeholder_pool() -> ipam::Pool {
    ipam::Pool::new("0.0.0.0/30".parse().expect("a valid subnet")).expect("a valid pool")
}

/// A link name of at most 15 bytes made of `prefix`, `name` (shortened with a hash when needed)
/// and `suffix`.
pub(crate) fn short_name(prefix: &str, name: &str, suffix: &str) -> String {
    let full = format!("{prefix}{name}{suffix}");
    if full.len() <= IfName::MAX_LEN {
        return full;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let hash = format!("{:04x}", h & 0xffff);
    let room = IfName::MAX_LEN - prefix.len() - suffix.len() - hash.len();
    let mut cut: String = name.chars().take(room).collect();
    while cut.len() > room {
        cut.pop();
    }
    format!("{prefix}{cut}{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_fit() {
        assert_eq!(short_name("", "mac_net10", "-h"), "mac_net10-h");
        let n = short_name("", "a-very-long-network-name", "-h");
        assert!(n.len() <= 15 && n.ends_with("-h"), "{n}");
        assert_ne!(n, short_name("", "a-very-long-network-name2", "-h"));
        assert!(IfName::new(short_name("ul", "x".repeat(64).as_str(), "-i")).is_ok());
    }
}

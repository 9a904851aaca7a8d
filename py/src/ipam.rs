//! `underlay.Pool`, `underlay.Ipam`, `underlay.Lease`.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use underlay::ipam::{
    self, AllocRange, HostLocalStore, LocalStore, Owner, Request, Reserved, Store,
};

use crate::block;
use crate::conv;
use crate::errors::{invalid, to_py};

/// An address pool: a subnet with its gateway, allocation ranges and reserved addresses.
///
/// `Pool("172.22.16.0/24", gateway="172.22.16.1", reserved={"exclude_host": "172.22.16.21"})`,
/// or from the text form `Pool.parse("172.16.10.0/24 gateway=172.16.10.1 range=172.16.10.128/25")`.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct Pool {
    pub(crate) inner: ipam::Pool,
}

#[pymethods]
impl Pool {
    /// A pool on `subnet`. `gateway`: the gateway address (default: the first usable
    /// address); `no_gateway=True` for none (both at once are refused); `ranges`: allocation
    /// ranges ("a.b.c.d/n" or
    /// "first-last"; default the whole subnet); `reserved`: name -> address never handed out
    /// (Docker's `--aux-address`).
    #[new]
    #[pyo3(signature = (subnet, *, gateway = None, no_gateway = false, ranges = None, reserved = None))]
    fn new(
        subnet: &Bound<'_, PyAny>,
        gateway: Option<&Bound<'_, PyAny>>,
        no_gateway: bool,
        ranges: Option<Vec<Bound<'_, PyAny>>>,
        reserved: Option<std::collections::BTreeMap<String, Bound<'_, PyAny>>>,
    ) -> PyResult<Pool> {
        let mut b = ipam::Pool::builder(conv::net(subnet)?);
        if let Some(g) = conv::opt_ip(gateway)? {
            b = b.gateway(g);
        }
        if no_gateway {
            b = b.no_gateway();
        }
        for r in ranges.unwrap_or_default() {
            let r: AllocRange = r.str()?.to_string().parse().map_err(to_py)?;
            b = b.range(r);
        }
        for (name, addr) in reserved.unwrap_or_default() {
            b = b.reserve(Reserved::new(name, conv::ip(&addr)?).map_err(to_py)?);
        }
        Ok(Pool {
            inner: b.build().map_err(to_py)?,
        })
    }

    /// Parses the text form (`str(pool)` gives it back).
    #[staticmethod]
    fn parse(text: &str) -> PyResult<Pool> {
        Ok(Pool {
            inner: text.parse().map_err(to_py)?,
        })
    }

    /// The subnet (`ipaddress.IPv4Network` / `IPv6Network`).
    #[getter]
    fn subnet<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_network(py, self.inner.subnet())
    }
    /// The gateway, if any.
    #[getter]
    fn gateway<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.gateway().map(|g| conv::py_ip(py, g)).transpose()
    }
    /// Allocation ranges, in text form.
    #[getter]
    fn ranges(&self) -> Vec<String> {
        self.inner.ranges().iter().map(|r| r.to_string()).collect()
    }
    /// Reserved addresses by name.
    #[getter]
    fn reserved<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        self.inner
            .reserved()
            .iter()
            .map(|r| Ok((r.name().to_string(), conv::py_ip(py, r.addr())?)))
            .collect()
    }
    /// How many addresses can be handed out.
    #[getter]
    fn capacity(&self) -> u128 {
        self.inner.capacity()
    }
    /// An IPv6 pool.
    #[getter]
    fn is_ipv6(&self) -> bool {
        self.inner.is_ipv6()
    }
    /// Whether `ip` is in the subnet.
    fn contains(&self, ip: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.contains(conv::ip(ip)?))
    }
    /// Whether a subnet of one pool overlaps a subnet of the other.
    fn overlaps(&self, other: &Pool) -> bool {
        self.inner.overlaps(&other.inner)
    }
    /// This pool followed by the segments of `next` (a CNI host-local range set over several
    /// subnets): one address per owner, from `next` once this pool is full.
    fn then(&self, next: &Pool) -> PyResult<Pool> {
        Ok(Pool {
            inner: self.inner.clone().then(next.inner.clone()).map_err(to_py)?,
        })
    }
    /// The segments, each a pool of one subnet, in allocation order (`subnet`, `gateway`,
    /// `ranges` and `reserved` are the first one's).
    #[getter]
    fn segments(&self) -> Vec<Pool> {
        self.inner
            .segments()
            .into_iter()
            .map(|inner| Pool { inner })
            .collect()
    }
    /// The gateway of the segment holding `ip` (None without one, or outside the pool).
    fn gateway_of<'py>(
        &self,
        py: Python<'py>,
        ip: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .gateway_of(conv::ip(ip)?)
            .map(|g| conv::py_ip(py, g))
            .transpose()
    }
    fn __str__(&self) -> String {
        self.inner.to_string()
    }
    fn __repr__(&self) -> String {
        format!("Pool.parse({:?})", self.inner.to_string())
    }
}

/// The addresses one owner (container id + interface name) holds in one IPAM network: one
/// per pool.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Lease {
    inner: ipam::Lease,
}

#[pymethods]
impl Lease {
    /// The owner's container id.
    #[getter]
    fn container_id(&self) -> &str {
        self.inner.owner.container_id()
    }
    /// The owner's interface name.
    #[getter]
    fn ifname(&self) -> &str {
        self.inner.owner.ifname().as_str()
    }
    /// The addresses with their pools' prefix (`ipaddress` interfaces), in pool order.
    #[getter]
    fn addresses<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.inner
            .addresses
            .iter()
            .map(|a| conv::py_iface(py, a.address))
            .collect()
    }
    /// The pools' gateways, one per address (None where a pool has none).
    #[getter]
    fn gateways<'py>(&self, py: Python<'py>) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
        self.inner
            .addresses
            .iter()
            .map(|a| a.gateway.map(|g| conv::py_ip(py, g)).transpose())
            .collect()
    }
    /// The bare addresses (`ipaddress` addresses).
    #[getter]
    fn ips<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.inner
            .ips()
            .into_iter()
            .map(|ip| conv::py_ip(py, ip))
            .collect()
    }
    /// The boot id the lease was made under, if stamped.
    #[getter]
    fn boot_id(&self) -> Option<&str> {
        self.inner.boot_id.as_ref().map(|b| b.as_str())
    }
    /// The quarantine this lease stands for (an address found in use on the wire), or None.
    #[getter]
    fn quarantine(&self) -> Option<Quarantine> {
        self.inner.quarantine().map(|inner| Quarantine { inner })
    }
    fn __repr__(&self) -> String {
        let ips: Vec<String> = self
            .inner
            .addresses
            .iter()
            .map(|a| a.address.to_string())
            .collect();
        format!("<Lease {} {}>", self.inner.owner, ips.join(", "))
    }
}

/// A lease another tool left that underlay cannot take as its own (a host-local lease file
/// with a container id over 256 bytes, or outside every pool): it blocks its address, is never
/// handed out nor released by underlay; release it with the tool that wrote it.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct ForeignLease {
    inner: ipam::ForeignLease,
}

#[pymethods]
impl ForeignLease {
    /// The leased address (an `ipaddress` address).
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_ip(py, self.inner.addr)
    }
    /// Where it is kept (the lease file).
    #[getter]
    fn location(&self) -> &str {
        &self.inner.location
    }
    /// Why underlay cannot take it as its own.
    #[getter]
    fn reason(&self) -> &str {
        &self.inner.reason
    }
    fn __repr__(&self) -> String {
        format!("<ForeignLease {} {}>", self.inner.addr, self.inner.location)
    }
}

/// A shared reservation (`Ipam.hold`): an address reserved for one owner, held by several
/// holders (hosts); the last holder's `Ipam.unhold` frees it.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct Hold {
    inner: ipam::Hold,
}

#[pymethods]
impl Hold {
    /// The reserved address (an `ipaddress` address).
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_ip(py, self.inner.addr)
    }
    /// The owner's container id.
    #[getter]
    fn container_id(&self) -> &str {
        self.inner.owner.container_id()
    }
    /// The owner's interface name.
    #[getter]
    fn ifname(&self) -> &str {
        self.inner.owner.ifname().as_str()
    }
    /// The holders, sorted.
    #[getter]
    fn holders(&self) -> Vec<String> {
        self.inner.holders.clone()
    }
    fn __repr__(&self) -> String {
        format!("<Hold {}>", self.inner)
    }
}

/// An address found in use on the wire by a machine the IPAM does not know (conflict
/// detection), held in the IPAM so that nobody is given it: `ip`, the `mac` that answered
/// (None when not seen), `since` (seconds since the Unix epoch). It shows in `Ipam.list()` as
/// the lease of `owner`; `Ipam.release(*q.owner)` lifts it.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct Quarantine {
    pub(crate) inner: ipam::Quarantine,
}

#[pymethods]
impl Quarantine {
    /// A quarantine of `ip` answered for by `mac`, since `since` (default: now).
    #[new]
    #[pyo3(signature = (ip, mac = None, since = None))]
    fn new(ip: &Bound<'_, PyAny>, mac: Option<&str>, since: Option<u64>) -> PyResult<Quarantine> {
        let ip = conv::ip(ip)?;
        let mac = mac.map(conv::mac).transpose()?;
        let mut inner = ipam::Quarantine::now(ip, mac);
        if let Some(s) = since {
            inner.since = s;
        }
        Ok(Quarantine { inner })
    }
    /// The address (`ipaddress`).
    #[getter]
    fn ip<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_ip(py, self.inner.ip)
    }
    /// The MAC that answered, or None.
    #[getter]
    fn mac(&self) -> Option<String> {
        self.inner.mac.map(|m| m.to_string())
    }
    /// When it answered, in seconds since the Unix epoch.
    #[getter]
    fn since(&self) -> u64 {
        self.inner.since
    }
    /// The owner holding the address in the IPAM: (container id, interface name).
    #[getter]
    fn owner(&self) -> (String, String) {
        let o = self.inner.owner();
        (
            o.container_id().to_string(),
            o.ifname().as_str().to_string(),
        )
    }
    fn __repr__(&self) -> String {
        format!(
            "<Quarantine {} mac={} since={}>",
            self.inner.ip,
            self.inner
                .mac
                .map_or("unknown".to_string(), |m| m.to_string()),
            self.inner.since
        )
    }
}

/// An address allocator for one named network of pools, over a store: hands out one address
/// per pool to each owner, next-fit, and records it durably before answering.
///
/// `Ipam.in_memory(name, pools)` keeps leases in memory; `Ipam.open_or_create(path, name,
/// pools)` keeps them in files under `path` (`layout="local"`, or `"host-local"` for CNI
/// host-local's layout), shared by every process that opens the same directory. Given an
/// `EtcdStore` in place of `path`, the network's definition and leases live in etcd, shared by
/// every host of the cluster.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Ipam {
    pub(crate) inner: underlay::Ipam,
}

/// The store a Python argument names: an `EtcdStore`, or a directory in `layout`.
pub(crate) fn store_of(obj: &Bound<'_, PyAny>, layout: &str) -> PyResult<Arc<dyn Store>> {
    #[cfg(feature = "etcd")]
    if let Ok(s) = obj.cast::<crate::etcd::EtcdStore>() {
        if layout != "local" {
            return Err(invalid(format!(
                "store layout `{layout}` is for a directory, not an EtcdStore"
            )));
        }
        return Ok(Arc::new(s.get().inner.clone()));
    }
    let path: PathBuf = obj.extract().map_err(|_| {
        invalid("an IPAM store is a directory (str or os.PathLike) or an underlay.EtcdStore")
    })?;
    store(path, layout)
}

pub(crate) fn store(path: PathBuf, layout: &str) -> PyResult<Arc<dyn Store>> {
    match layout {
        "local" => Ok(Arc::new(LocalStore::open(path).map_err(to_py)?)),
        "host-local" => Ok(Arc::new(HostLocalStore::open(path).map_err(to_py)?)),
        other => Err(invalid(format!(
            "store layout `{other}`: use \"local\" or \"host-local\""
        ))),
    }
}

fn network(name: String, pools: Vec<Bound<'_, Pool>>) -> PyResult<ipam::Network> {
    ipam::Network::new(
        name,
        pools.into_iter().map(|p| p.get().inner.clone()).collect(),
    )
    .map_err(to_py)
}

fn owner(container_id: String, ifname: &str) -> PyResult<Owner> {
    Owner::new(container_id, ifname).map_err(to_py)
}

#[pymethods]
impl Ipam {
    /// An IPAM whose leases live in memory only.
    #[staticmethod]
    fn in_memory(py: Python<'_>, name: String, pools: Vec<Bound<'_, Pool>>) -> PyResult<Ipam> {
        let n = network(name, pools)?;
        Ok(Ipam {
            inner: block(py, underlay::Ipam::in_memory(n))?,
        })
    }

    /// Creates network `name` in the store at `path` (a directory, or an `EtcdStore`); raises
    /// `AlreadyExists` if it is there.
    #[staticmethod]
    #[pyo3(signature = (path, name, pools, *, layout = "local"))]
    fn create(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        name: String,
        pools: Vec<Bound<'_, Pool>>,
        layout: &str,
    ) -> PyResult<Ipam> {
        let (s, n) = (store_of(path, layout)?, network(name, pools)?);
        Ok(Ipam {
            inner: block(py, underlay::Ipam::create(s, n))?,
        })
    }

    /// Opens network `name` in the store at `path` (a directory, or an `EtcdStore`); raises
    /// `NotFound` if it is not there.
    #[staticmethod]
    #[pyo3(signature = (path, name, *, layout = "local"))]
    fn open(py: Python<'_>, path: &Bound<'_, PyAny>, name: String, layout: &str) -> PyResult<Ipam> {
        let s = store_of(path, layout)?;
        Ok(Ipam {
            inner: block(py, async move { underlay::Ipam::open(s, &name).await })?,
        })
    }

    /// Opens network `name` at `path` (a directory, or an `EtcdStore`), creating it with
    /// `pools` if missing; raises `Conflict` if it exists with other pools.
    #[staticmethod]
    #[pyo3(signature = (path, name, pools, *, layout = "local"))]
    fn open_or_create(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        name: String,
        pools: Vec<Bound<'_, Pool>>,
        layout: &str,
    ) -> PyResult<Ipam> {
        let (s, n) = (store_of(path, layout)?, network(name, pools)?);
        Ok(Ipam {
            inner: block(py, underlay::Ipam::open_or_create(s, n))?,
        })
    }

    /// Defines network `name` with `pools` for this host, or joins the identical definition
    /// another host (or an earlier run) stored; returns the IPAM and whether this call created
    /// the network. On a store shared by hosts (an `EtcdStore`) this host counts as a member
    /// until `Ipam.leave`; another definition under that name raises `Conflict`.
    #[staticmethod]
    #[pyo3(signature = (path, name, pools, *, layout = "local"))]
    fn join(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        name: String,
        pools: Vec<Bound<'_, Pool>>,
        layout: &str,
    ) -> PyResult<(Ipam, bool)> {
        let (s, n) = (store_of(path, layout)?, network(name, pools)?);
        let (inner, joined) = block(py, underlay::Ipam::join(s, n))?;
        Ok((Ipam { inner }, joined == underlay::ipam::Joined::Created))
    }

    /// Ends this host's use of network `name` (raises `Busy` while this host holds leases in
    /// it): deletes the definition when no other host uses it and returns []; else drops only
    /// this host's membership and returns the hosts still using it.
    #[staticmethod]
    #[pyo3(signature = (path, name, *, layout = "local"))]
    fn leave(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        name: String,
        layout: &str,
    ) -> PyResult<Vec<String>> {
        let s = store_of(path, layout)?;
        let left = block(py, async move { underlay::Ipam::leave(&*s, &name).await })?;
        Ok(match left {
            underlay::ipam::Left::Deleted => Vec::new(),
            underlay::ipam::Left::Kept(hosts) => hosts,
        })
    }

    /// Deletes network `name` from the store at `path` (a directory, or an `EtcdStore`);
    /// raises `Busy` while it holds leases.
    #[staticmethod]
    #[pyo3(signature = (path, name, *, layout = "local"))]
    fn delete(py: Python<'_>, path: &Bound<'_, PyAny>, name: String, layout: &str) -> PyResult<()> {
        let s = store_of(path, layout)?;
        block(py, async move { underlay::Ipam::delete(&*s, &name).await })
    }

    /// The network's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.network().name()
    }

    /// The network's pools.
    #[getter]
    fn pools(&self) -> Vec<Pool> {
        self.inner
            .network()
            .pools()
            .iter()
            .map(|p| Pool { inner: p.clone() })
            .collect()
    }

    /// Allocates one address per pool to (`container_id`, `ifname`): the addresses in `ips`
    /// when given (raising `AlreadyExists` if taken), the next free ones otherwise (raising
    /// `PoolExhausted` when none is left). Idempotent: the same owner gets its lease back.
    #[pyo3(signature = (container_id, ifname = "eth0", *, ips = None))]
    fn allocate(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
        ips: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Lease> {
        let o = owner(container_id, ifname)?;
        let mut req = Request::any();
        for ip in ips.unwrap_or_default() {
            req = req.and_ip(conv::ip(&ip)?);
        }
        let i = self.inner.clone();
        let inner = block(py, async move { i.allocate(&o, &req).await })?;
        Ok(Lease { inner })
    }

    /// Releases the owner's lease; returns it, or None if it held none.
    #[pyo3(signature = (container_id, ifname = "eth0"))]
    fn release(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
    ) -> PyResult<Option<Lease>> {
        let (o, i) = (owner(container_id, ifname)?, self.inner.clone());
        let l = block(py, async move { i.release(&o).await })?;
        Ok(l.map(|inner| Lease { inner }))
    }

    /// The owner's lease, or None.
    #[pyo3(signature = (container_id, ifname = "eth0"))]
    fn lookup(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
    ) -> PyResult<Option<Lease>> {
        let (o, i) = (owner(container_id, ifname)?, self.inner.clone());
        let l = block(py, async move { i.lookup(&o).await })?;
        Ok(l.map(|inner| Lease { inner }))
    }

    /// Releases the owner's lease and quarantines the addresses of `found` in one commit
    /// (only those it held, or free ones: another owner's address stays its own); returns the
    /// quarantines made.
    #[pyo3(signature = (container_id, ifname = "eth0", *, found))]
    fn quarantine(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
        found: Vec<PyRef<'_, Quarantine>>,
    ) -> PyResult<Vec<Quarantine>> {
        let (o, i) = (owner(container_id, ifname)?, self.inner.clone());
        let found: Vec<ipam::Quarantine> = found.iter().map(|q| q.inner.clone()).collect();
        let v = block(py, async move { i.quarantine(&o, &found).await })?;
        Ok(v.into_iter().map(|inner| Quarantine { inner }).collect())
    }

    /// Reserves `ip` for the owner on behalf of `holder` (e.g. this host's name): the first
    /// hold leases it, later ones (any holder) add theirs; the address stays out of every
    /// allocation while any holder keeps it. Returns the reservation.
    #[pyo3(signature = (container_id, ifname = "eth0", *, ip, holder))]
    fn hold(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
        ip: &Bound<'_, PyAny>,
        holder: String,
    ) -> PyResult<Hold> {
        let (o, i, a) = (
            owner(container_id, ifname)?,
            self.inner.clone(),
            conv::ip(ip)?,
        );
        let h = block(py, async move { i.hold(&o, a, &holder).await })?;
        Ok(Hold { inner: h })
    }

    /// Drops `holder`'s hold of the owner's reservation: `(released, remaining)`: other
    /// holders keep it (`(False, [their names])`), the last one releases the address
    /// (`(True, [])`); `(False, [])` if `holder` held nothing of the owner's.
    #[pyo3(signature = (container_id, ifname = "eth0", *, holder))]
    fn unhold(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
        holder: String,
    ) -> PyResult<(bool, Vec<String>)> {
        let (o, i) = (owner(container_id, ifname)?, self.inner.clone());
        Ok(
            match block(py, async move { i.unhold(&o, &holder).await })? {
                ipam::Unheld::Kept(rest) => (false, rest),
                ipam::Unheld::Released(_) => (true, Vec::new()),
                ipam::Unheld::NotHeld => (false, Vec::new()),
            },
        )
    }

    /// The shared reservations with their holders, by address.
    fn holds(&self, py: Python<'_>) -> PyResult<Vec<Hold>> {
        let i = self.inner.clone();
        let v = block(py, async move { i.holds().await })?;
        Ok(v.into_iter().map(|inner| Hold { inner }).collect())
    }

    /// The quarantined addresses, by address.
    fn quarantined(&self, py: Python<'_>) -> PyResult<Vec<Quarantine>> {
        let i = self.inner.clone();
        let v = block(py, async move { i.quarantined().await })?;
        Ok(v.into_iter().map(|inner| Quarantine { inner }).collect())
    }

    /// Every lease.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Lease>> {
        let i = self.inner.clone();
        let v = block(py, async move { i.list().await })?;
        Ok(v.into_iter().map(|inner| Lease { inner }).collect())
    }

    /// The leases another tool left that underlay cannot take as its own, by address: each
    /// blocks its address and nothing else.
    fn foreign_leases(&self, py: Python<'_>) -> PyResult<Vec<ForeignLease>> {
        let i = self.inner.clone();
        let v = block(py, async move { i.foreign_leases().await })?;
        Ok(v.into_iter().map(|inner| ForeignLease { inner }).collect())
    }

    /// Releases every lease whose owner is not in `valid` (pairs of container id and
    /// interface name); returns what was released.
    fn gc(&self, py: Python<'_>, valid: Vec<(String, String)>) -> PyResult<Vec<Lease>> {
        let owners = valid
            .into_iter()
            .map(|(c, i)| owner(c, &i))
            .collect::<PyResult<Vec<_>>>()?;
        let i = self.inner.clone();
        let v = block(py, async move { i.gc(&owners).await })?;
        Ok(v.into_iter().map(|inner| Lease { inner }).collect())
    }

    /// The boot id new leases are stamped with (default: the running kernel's), or None.
    #[getter]
    fn boot_id(&self) -> Option<String> {
        self.inner.boot_id().map(|b| b.as_str().to_string())
    }

    /// Stamps new leases with `boot_id` (1 to 64 characters without whitespace; None: no
    /// stamp). Leases stamped with another boot id are `stale`. Ignored by a store that keeps
    /// no boot ids (`layout="host-local"`).
    #[pyo3(signature = (boot_id))]
    fn set_boot_id(&self, boot_id: Option<&str>) -> PyResult<()> {
        let b = boot_id.map(ipam::BootId::new).transpose().map_err(to_py)?;
        self.inner.set_boot_id(b);
        Ok(())
    }

    /// The leases stamped with a boot id other than `boot_id`: made before a reboot.
    /// Unstamped leases are never stale.
    fn stale(&self, py: Python<'_>) -> PyResult<Vec<Lease>> {
        let i = self.inner.clone();
        let v = block(py, async move { i.stale().await })?;
        Ok(v.into_iter().map(|inner| Lease { inner }).collect())
    }

    /// Releases the leases `stale` lists; returns them.
    fn release_stale(&self, py: Python<'_>) -> PyResult<Vec<Lease>> {
        let i = self.inner.clone();
        let v = block(py, async move { i.release_stale().await })?;
        Ok(v.into_iter().map(|inner| Lease { inner }).collect())
    }

    fn __repr__(&self) -> String {
        format!("<Ipam {}>", self.inner.network().name())
    }
}

/// The running kernel's boot id (`/proc/sys/kernel/random/boot_id`), what leases are
/// stamped with by default.
#[pyfunction]
fn current_boot_id(py: Python<'_>) -> PyResult<String> {
    let b = crate::unblock(py, ipam::BootId::current)?;
    Ok(b.as_str().to_string())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Pool>()?;
    m.add_class::<Lease>()?;
    m.add_class::<ForeignLease>()?;
    m.add_class::<Hold>()?;
    m.add_class::<Quarantine>()?;
    m.add_class::<Ipam>()?;
    m.add_function(wrap_pyfunction!(current_boot_id, m)?)?;
    Ok(())
}

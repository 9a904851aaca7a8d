//! `underlay.Networks`, `underlay.Network`, `underlay.Endpoint`: Docker-like networks.

use std::path::PathBuf;

use pyo3::prelude::*;
use underlay::network::{
    self as net, Announce, DefaultRoute, EndpointSpec, HostAccess, MacPolicy, NetworkSpec,
    ShimRoutes,
};
use underlay::{IpvlanFlag, IpvlanMode, MacvlanMode};

use crate::conv;
use crate::dhcp::{DhcpConfig, DhcpLease, DhcpRenewal};
use crate::errors::{invalid, to_py};
use crate::handle::{Handle, Route};
use crate::ipam::Pool;
use crate::netns::Netns;
use crate::{block, unblock};

/// The networks of one host: their records under a state directory, their IPAM, and the
/// host namespace their parents live in (`handle`).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Networks {
    inner: net::Networks,
}

/// One network (what `docker network create -d macvlan|ipvlan` makes): connect and
/// disconnect endpoints, host access.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Network {
    inner: net::Network,
}

/// A connected endpoint: a link inside a container's namespace with its addresses and routes.
/// Used as a context manager, it is disconnected on exit.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Endpoint {
    inner: net::Endpoint,
    network: net::Network,
}

/// How a connect checks on the wire that an address is free before assigning it: `probes`
/// probes (1..10) `interval` seconds apart, then `wait` seconds for an answer (ARP probes for
/// IPv4, duplicate address detection for IPv6). `ConflictDetection()`: 1 probe, 0.15 s;
/// `ConflictDetection.rfc5227()`: 3 probes 1 s apart, then 2 s.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct ConflictDetection {
    inner: underlay::ConflictDetection,
}

fn seconds(value: f64, what: &str) -> PyResult<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value).map_err(|_| {
        invalid(format!(
            "conflict detection: {what} of {value} s: give 0 to 10 seconds"
        ))
    })
}

#[pymethods]
impl ConflictDetection {
    #[new]
    #[pyo3(signature = (probes = 1, interval = 0.0, wait = 0.15))]
    fn new(probes: i64, interval: f64, wait: f64) -> PyResult<ConflictDetection> {
        let p = u32::try_from(probes)
            .map_err(|_| invalid(format!("conflict detection: {probes} probes: give 1 to 10")))?;
        Ok(ConflictDetection {
            inner: underlay::ConflictDetection::new(
                p,
                seconds(interval, "interval")?,
                seconds(wait, "wait")?,
            )
            .map_err(to_py)?,
        })
    }
    /// RFC 5227's timings: 3 probes 1 s apart, then 2 s.
    #[staticmethod]
    fn rfc5227() -> ConflictDetection {
        ConflictDetection {
            inner: underlay::ConflictDetection::rfc5227(),
        }
    }
    /// Probes per address.
    #[getter]
    fn probes(&self) -> u32 {
        self.inner.probes()
    }
    /// Seconds between probes.
    #[getter]
    fn interval(&self) -> f64 {
        self.inner.interval().as_secs_f64()
    }
    /// Seconds listening after the last probe.
    #[getter]
    fn wait(&self) -> f64 {
        self.inner.wait().as_secs_f64()
    }
    /// Seconds one check takes.
    #[getter]
    fn total(&self) -> f64 {
        self.inner.total().as_secs_f64()
    }
    fn __repr__(&self) -> String {
        format!(
            "ConflictDetection(probes={}, interval={}, wait={})",
            self.inner.probes(),
            self.inner.interval().as_secs_f64(),
            self.inner.wait().as_secs_f64()
        )
    }
}

/// Watches a network's parent for address conflicts after connect (`Network.watch_conflicts`).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct ConflictWatch {
    inner: std::sync::Arc<tokio::sync::Mutex<net::ConflictWatch>>,
}

#[pymethods]
impl ConflictWatch {
    /// The next conflict, or None when `timeout` seconds pass without one.
    #[pyo3(signature = (timeout = 1.0))]
    fn next(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<EndpointConflict>> {
        let t = std::time::Duration::try_from_secs_f64(timeout)
            .map_err(|_| invalid(format!("timeout {timeout}: give seconds, 0 or more")))?;
        let w = self.inner.clone();
        let c = block(py, async move { w.lock().await.next(t).await })?;
        Ok(c.map(|inner| EndpointConflict { inner }))
    }
}

/// Another machine using an endpoint's address, seen on the wire.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct EndpointConflict {
    inner: net::EndpointConflict,
}

#[pymethods]
impl EndpointConflict {
    /// The address.
    #[getter]
    fn ip<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_ip(py, self.inner.conflict.ip)
    }
    /// The other machine's MAC.
    #[getter]
    fn mac(&self) -> Option<String> {
        self.inner.conflict.mac.map(|m| m.to_string())
    }
    /// The container id of the endpoint holding the address.
    #[getter]
    fn container_id(&self) -> &str {
        &self.inner.container_id
    }
    /// The endpoint's own MAC.
    #[getter]
    fn endpoint_mac(&self) -> Option<String> {
        self.inner.endpoint_mac.map(|m| m.to_string())
    }
    fn __repr__(&self) -> String {
        format!(
            "<EndpointConflict {} used by {} (endpoint {})>",
            self.inner.conflict.ip,
            self.inner
                .conflict
                .mac
                .map_or("?".to_string(), |m| m.to_string()),
            self.inner.container_id
        )
    }
}

/// What `Networks.reconcile` found and repaired.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct ReconcileReport {
    /// VLAN parents made again.
    #[pyo3(get)]
    recreated_parents: Vec<String>,
    /// Host shims made again.
    #[pyo3(get)]
    recreated_shims: Vec<String>,
    /// Endpoints whose namespace has gone (their leases released, records removed).
    #[pyo3(get)]
    gone_endpoints: Vec<Py<GoneEndpoint>>,
    /// Stray links underlay had made and deleted.
    #[pyo3(get)]
    removed_links: Vec<String>,
    clean: bool,
}

#[pymethods]
impl ReconcileReport {
    /// Nothing needed repair.
    fn is_clean(&self) -> bool {
        self.clean
    }
    fn __repr__(&self) -> String {
        format!(
            "<ReconcileReport parents={:?} shims={:?} gone={} removed={:?}>",
            self.recreated_parents,
            self.recreated_shims,
            self.gone_endpoints.len(),
            self.removed_links
        )
    }
}

/// An endpoint `Networks.reconcile` found gone (its namespace deleted) and cleaned up.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct GoneEndpoint {
    network: String,
    container_id: String,
    ifname: String,
    addresses: Vec<ipnet::IpNet>,
}

#[pymethods]
impl GoneEndpoint {
    /// The network's name.
    #[getter]
    fn network(&self) -> &str {
        &self.network
    }
    /// The container id.
    #[getter]
    fn container_id(&self) -> &str {
        &self.container_id
    }
    /// The interface name it had.
    #[getter]
    fn ifname(&self) -> &str {
        &self.ifname
    }
    /// The addresses it held (released).
    #[getter]
    fn addresses<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        conv::py_ifaces(py, &self.addresses)
    }
    fn __repr__(&self) -> String {
        format!(
            "<GoneEndpoint {}/{} on {}>",
            self.container_id, self.ifname, self.network
        )
    }
}

fn export_format(format: &str) -> PyResult<net::ExportFormat> {
    format.parse().map_err(to_py)
}

/// Renders VLAN `vlan_id` named `name` on `parent` for the distribution's own tools
/// (`format` "ifupdown", "ifcfg" or "networkd"), so it comes back at boot without underlay:
/// a list of (path, content) to write.
#[pyfunction]
fn render_vlan(
    format: &str,
    name: &str,
    parent: &str,
    vlan_id: &Bound<'_, PyAny>,
) -> PyResult<Vec<(String, String)>> {
    let f = export_format(format)?;
    let name = underlay::IfName::new(name).map_err(to_py)?;
    let parent = underlay::IfName::new(parent).map_err(to_py)?;
    let id = conv::vlan_id(vlan_id)?;
    Ok(net::render_vlan(f, &name, &parent, id)
        .into_iter()
        .map(|f| (f.path, f.content))
        .collect())
}

/// The spec `Networks.create`'s keywords describe.
#[allow(clippy::too_many_arguments)]
fn network_spec(
    name: &str,
    driver: &str,
    parent: Option<String>,
    mode: Option<&str>,
    flag: Option<&str>,
    pools: Option<Vec<Bound<'_, Pool>>>,
    mtu: Option<&Bound<'_, PyAny>>,
    bring_parent_up: bool,
    conflict_detection: Option<underlay::ConflictDetection>,
    dhcp: Option<underlay::DhcpConfig>,
    parent_in_endpoint_namespace: bool,
) -> PyResult<NetworkSpec> {
    let d = self::driver(driver, mode, flag)?;
    let mut spec = match (&parent, d) {
        (Some(p), net::Driver::Macvlan(m)) => NetworkSpec::macvlan(name, p, m),
        (Some(p), net::Driver::Ipvlan(m, f)) => NetworkSpec::ipvlan(name, p, m, f),
        (None, d) => NetworkSpec::internal(name, d),
    };
    for p in pools.unwrap_or_default() {
        spec = spec.pool(p.get().inner.clone());
    }
    if let Some(m) = conv::opt_mtu(mtu, &format!("network `{name}`"))? {
        spec = spec.mtu(m);
    }
    if bring_parent_up {
        spec = spec.bring_parent_up();
    }
    if let Some(c) = conflict_detection {
        spec = spec.conflict_detection(c);
    }
    if let Some(d) = dhcp {
        spec = spec.dhcp(d);
    }
    if parent_in_endpoint_namespace {
        spec = spec.parent_in_endpoint_namespace();
    }
    Ok(spec)
}

fn driver(driver: &str, mode: Option<&str>, flag: Option<&str>) -> PyResult<net::Driver> {
    match driver {
        "macvlan" => {
            if flag.is_some() {
                return Err(invalid("`flag` is for ipvlan networks"));
            }
            let mode: MacvlanMode = mode.unwrap_or("bridge").parse().map_err(to_py)?;
            Ok(net::Driver::Macvlan(mode))
        }
        "ipvlan" => {
            let mode: IpvlanMode = mode.unwrap_or("l2").parse().map_err(to_py)?;
            let flag: IpvlanFlag = flag.unwrap_or("bridge").parse().map_err(to_py)?;
            Ok(net::Driver::Ipvlan(mode, flag))
        }
        other => Err(invalid(format!(
            "network driver `{other}`: use \"macvlan\" or \"ipvlan\""
        ))),
    }
}

#[pymethods]
impl Networks {
    /// Opens (creating if needed) the state under `root` (network and endpoint records, the
    /// IPAM's files in `root/ipam`); `handle` is the host namespace's handle. `ipam_path`
    /// keeps the IPAM's store elsewhere, in `layout` "local" or "host-local" (CNI
    /// host-local's files, e.g. under /var/lib/cni/networks). `store`: an `EtcdStore` that
    /// keeps the pools and leases for the whole cluster instead (network and endpoint records
    /// stay under `root`).
    #[new]
    #[pyo3(signature = (handle, root, *, ipam_path = None, layout = "local", store = None))]
    fn new(
        py: Python<'_>,
        handle: &Handle,
        root: PathBuf,
        ipam_path: Option<PathBuf>,
        layout: &str,
        store: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Networks> {
        let h = handle.inner.clone();
        let store = match (store, ipam_path) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give the IPAM's `store` or its `ipam_path`, not both",
                ))
            }
            (Some(s), None) => Some(crate::ipam::store_of(s, layout)?),
            (None, None) if layout == "local" => None,
            (None, p) => Some(crate::ipam::store(
                p.unwrap_or_else(|| root.join("ipam")),
                layout,
            )?),
        };
        let inner = match store {
            None => block(py, async move { net::Networks::open(&h, root).await })?,
            Some(store) => block(py, async move {
                net::Networks::with_store(&h, root, store).await
            })?,
        };
        Ok(Networks { inner })
    }

    /// The host namespace's handle.
    #[getter]
    fn handle(&self) -> Handle {
        Handle {
            inner: self.inner.host().clone(),
        }
    }

    /// Creates network `name`: `driver` "macvlan" (`mode` a `MacvlanMode`, default bridge) or
    /// "ipvlan" (`mode` an `IpvlanMode`, default l2; `flag` an `IpvlanFlag`, default bridge) on
    /// `parent` (`ens192.10` is made on `ens192` when missing; None makes an internal
    /// network), with `pools`, endpoint `mtu`, `bring_parent_up`, `conflict_detection` (a
    /// `ConflictDetection`: check each address on the wire before assigning it). Nothing is
    /// left behind on failure.
    #[pyo3(signature = (name, *, driver = "macvlan", parent = None, mode = None, flag = None,
        pools = None, mtu = None, bring_parent_up = false, conflict_detection = None,
        dhcp = None, parent_in_endpoint_namespace = false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        py: Python<'_>,
        name: &str,
        driver: &str,
        parent: Option<String>,
        mode: Option<&str>,
        flag: Option<&str>,
        pools: Option<Vec<Bound<'_, Pool>>>,
        mtu: Option<&Bound<'_, PyAny>>,
        bring_parent_up: bool,
        conflict_detection: Option<PyRef<'_, ConflictDetection>>,
        dhcp: Option<PyRef<'_, DhcpConfig>>,
        parent_in_endpoint_namespace: bool,
    ) -> PyResult<Network> {
        let spec = network_spec(
            name,
            driver,
            parent,
            mode,
            flag,
            pools,
            mtu,
            bring_parent_up,
            conflict_detection.map(|c| c.inner),
            dhcp.map(|d| d.inner),
            parent_in_endpoint_namespace,
        )?;
        let n = self.inner.clone();
        Ok(Network {
            inner: block(py, async move { n.create(spec).await })?,
        })
    }

    /// Creates network `name` as `create` does, or opens it when it exists with this
    /// definition; a network of that name defined otherwise raises `Conflict` naming each
    /// difference. Concurrent first calls all get the one network.
    #[pyo3(signature = (name, *, driver = "macvlan", parent = None, mode = None, flag = None,
        pools = None, mtu = None, bring_parent_up = false, conflict_detection = None,
        dhcp = None, parent_in_endpoint_namespace = false))]
    #[allow(clippy::too_many_arguments)]
    fn create_or_open(
        &self,
        py: Python<'_>,
        name: &str,
        driver: &str,
        parent: Option<String>,
        mode: Option<&str>,
        flag: Option<&str>,
        pools: Option<Vec<Bound<'_, Pool>>>,
        mtu: Option<&Bound<'_, PyAny>>,
        bring_parent_up: bool,
        conflict_detection: Option<PyRef<'_, ConflictDetection>>,
        dhcp: Option<PyRef<'_, DhcpConfig>>,
        parent_in_endpoint_namespace: bool,
    ) -> PyResult<Network> {
        let spec = network_spec(
            name,
            driver,
            parent,
            mode,
            flag,
            pools,
            mtu,
            bring_parent_up,
            conflict_detection.map(|c| c.inner),
            dhcp.map(|d| d.inner),
            parent_in_endpoint_namespace,
        )?;
        let n = self.inner.clone();
        Ok(Network {
            inner: block(py, async move { n.create_or_open(spec).await })?,
        })
    }

    /// Creates a network from Docker's words: `driver` "macvlan"/"ipvlan" and `options`
    /// (`parent`, `macvlan_mode`, `ipvlan_mode`, `ipvlan_flag`, `mtu`), with `pools`.
    #[pyo3(signature = (name, driver, options, *, pools = None))]
    fn create_docker(
        &self,
        py: Python<'_>,
        name: &str,
        driver: &str,
        options: std::collections::BTreeMap<String, String>,
        pools: Option<Vec<Bound<'_, Pool>>>,
    ) -> PyResult<Network> {
        let opts: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut spec = NetworkSpec::from_docker(name, driver, &opts).map_err(to_py)?;
        for p in pools.unwrap_or_default() {
            spec = spec.pool(p.get().inner.clone());
        }
        let n = self.inner.clone();
        Ok(Network {
            inner: block(py, async move { n.create(spec).await })?,
        })
    }

    /// Network `name`; raises `NotFound`.
    fn get(&self, py: Python<'_>, name: String) -> PyResult<Network> {
        let n = self.inner.clone();
        Ok(Network {
            inner: block(py, async move { n.get(&name).await })?,
        })
    }

    /// Every network.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Network>> {
        let n = self.inner.clone();
        let v = block(py, async move { n.list().await })?;
        Ok(v.into_iter().map(|inner| Network { inner }).collect())
    }

    /// Deletes network `name` (raising `Busy` while it has endpoints); a VLAN parent underlay
    /// made goes with its last network.
    fn delete(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let n = self.inner.clone();
        block(py, async move { n.delete(&name).await })
    }

    /// Deletes network `name` if nothing uses it (no endpoint, host access or lease of this
    /// host); returns whether it did (nothing changes while it is used).
    fn delete_if_unused(&self, py: Python<'_>, name: String) -> PyResult<bool> {
        let n = self.inner.clone();
        block(py, async move { n.delete_if_unused(&name).await })
    }

    /// The renewer's tick over the whole state directory: every DHCP network's due
    /// endpoints (`Network.renew_due_dhcp` of each), one `DhcpRenewal` each.
    fn renew_due_dhcp(&self, py: Python<'_>) -> PyResult<Vec<DhcpRenewal>> {
        let n = self.inner.clone();
        let done = block(py, async move { n.renew_due_dhcp().await })?;
        Ok(done.into_iter().map(|r| DhcpRenewal::new(py, r)).collect())
    }

    /// When the next DHCP renewal of the state directory is due (seconds since the Unix
    /// epoch): the earliest T1 of its DHCP endpoints, now for a lost lease, None when no
    /// lease ends.
    fn next_dhcp_renewal(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let n = self.inner.clone();
        let next = block(py, async move { n.next_dhcp_renewal().await })?;
        Ok(next.map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        }))
    }

    /// Recovery after a reboot or crash: parents and shims made again, endpoints whose
    /// namespace has gone released, stray links removed.
    fn reconcile(&self, py: Python<'_>) -> PyResult<ReconcileReport> {
        let n = self.inner.clone();
        let r = block(py, async move { n.reconcile().await })?;
        Ok(ReconcileReport {
            clean: r.is_clean(),
            recreated_parents: r.recreated_parents,
            recreated_shims: r.recreated_shims,
            gone_endpoints: r
                .gone_endpoints
                .into_iter()
                .map(|g| {
                    Py::new(
                        py,
                        GoneEndpoint {
                            network: g.network,
                            container_id: g.container_id,
                            ifname: g.ifname,
                            addresses: g.addresses,
                        },
                    )
                })
                .collect::<PyResult<_>>()?,
            removed_links: r.removed_links,
        })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

#[pymethods]
impl Network {
    /// The network's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }
    /// "macvlan" or "ipvlan".
    #[getter]
    fn driver(&self) -> &str {
        self.inner.driver().name()
    }
    /// The macvlan or ipvlan mode's value ("bridge", "l2", ...).
    #[getter]
    fn mode(&self) -> &str {
        match self.inner.driver() {
            net::Driver::Macvlan(m) => m.as_str(),
            net::Driver::Ipvlan(m, _) => m.as_str(),
        }
    }
    /// The parent as given (None for an internal network).
    #[getter]
    fn parent(&self) -> Option<&str> {
        self.inner.parent()
    }
    /// Whether the parent is looked up in each endpoint's namespace (`linkInContainer`).
    #[getter]
    fn parent_in_endpoint_namespace(&self) -> bool {
        self.inner.parent_in_endpoint_namespace()
    }
    /// The link endpoints hang on (the parent, or the internal network's dummy/bridge).
    #[getter]
    fn lower(&self) -> &str {
        self.inner.lower()
    }
    /// Endpoint MTU, if set.
    #[getter]
    fn mtu(&self) -> Option<u32> {
        self.inner.mtu()
    }
    /// Address pools.
    #[getter]
    fn pools(&self) -> Vec<Pool> {
        self.inner
            .pools()
            .iter()
            .map(|p| Pool { inner: p.clone() })
            .collect()
    }
    /// The host shim's name when host access is on.
    #[getter]
    fn host_access(&self) -> Option<&str> {
        self.inner.host_access()
    }
    /// The network's `ConflictDetection`, or None when it is off.
    #[getter]
    fn conflict_detection(&self) -> Option<ConflictDetection> {
        self.inner
            .conflict_detection()
            .map(|inner| ConflictDetection { inner })
    }
    /// Starts watching the parent for address conflicts after connect: another MAC using
    /// (or probing for) an endpoint's IPv4 address. Raises `InvalidArgument` on an internal
    /// network.
    fn watch_conflicts(&self, py: Python<'_>) -> PyResult<ConflictWatch> {
        let n = self.inner.clone();
        let w = block(py, async move { n.watch_conflicts().await })?;
        Ok(ConflictWatch {
            inner: std::sync::Arc::new(tokio::sync::Mutex::new(w)),
        })
    }

    /// How the definition given by `Networks.create`'s keywords differs from this network's,
    /// one line per difference ("MTU: stored 1400, given the parent's"); [] when it is the
    /// same network (what `Networks.create_or_open` accepts). The name is this network's.
    #[pyo3(signature = (*, driver = "macvlan", parent = None, mode = None, flag = None,
        pools = None, mtu = None, conflict_detection = None, dhcp = None,
        parent_in_endpoint_namespace = false))]
    #[allow(clippy::too_many_arguments)]
    fn differences(
        &self,
        driver: &str,
        parent: Option<String>,
        mode: Option<&str>,
        flag: Option<&str>,
        pools: Option<Vec<Bound<'_, Pool>>>,
        mtu: Option<&Bound<'_, PyAny>>,
        conflict_detection: Option<PyRef<'_, ConflictDetection>>,
        dhcp: Option<PyRef<'_, DhcpConfig>>,
        parent_in_endpoint_namespace: bool,
    ) -> PyResult<Vec<String>> {
        let spec = network_spec(
            self.inner.name(),
            driver,
            parent,
            mode,
            flag,
            pools,
            mtu,
            false,
            conflict_detection.map(|c| c.inner),
            dhcp.map(|d| d.inner),
            parent_in_endpoint_namespace,
        )?;
        Ok(self.inner.differences(&spec))
    }

    /// The network's `DhcpConfig` when its addresses come from a DHCP server, else None.
    #[getter]
    fn dhcp(&self) -> Option<DhcpConfig> {
        self.inner.dhcp().map(|inner| DhcpConfig { inner })
    }

    /// Keeps endpoint (`container_id`, `ifname`)'s DHCP lease: renews it (unicast, before
    /// T2) or rebinds it (broadcast, until expiry) and updates its record; an unanswered
    /// renewal keeps the lease. A lease that expired (`Timeout`) or was refused (`Conflict`)
    /// loses its address, removed from the endpoint; the next call asks for a lease again.
    #[pyo3(signature = (container_id, ifname = "eth0"))]
    fn renew_dhcp(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
    ) -> PyResult<DhcpLease> {
        let (n, ifname) = (self.inner.clone(), ifname.to_string());
        let inner = block(
            py,
            async move { n.renew_dhcp(&container_id, &ifname).await },
        )?;
        Ok(DhcpLease { inner })
    }

    /// The renewer's tick: renews every endpoint whose lease is due (past T1) or lost, one
    /// `DhcpRenewal` each. A long-running process calls it every few seconds.
    fn renew_due_dhcp(&self, py: Python<'_>) -> PyResult<Vec<DhcpRenewal>> {
        let n = self.inner.clone();
        let done = block(py, async move { n.renew_due_dhcp().await })?;
        Ok(done.into_iter().map(|r| DhcpRenewal::new(py, r)).collect())
    }

    /// The network's IPAM (its leases: list, lookup, gc).
    #[getter]
    fn ipam(&self) -> crate::ipam::Ipam {
        crate::ipam::Ipam {
            inner: self.inner.ipam().clone(),
        }
    }

    /// Connects container `container_id` living in `netns`: one address per pool (`ip` when
    /// given, the next free otherwise), a link `ifname` made inside the namespace, up, with
    /// its addresses and a default route via the gateway. `mac`: None (random),
    /// "container-id" (derived from id and ifname, stable across restarts) or an address.
    /// `target`: a handle already open in `netns` (saves opening one). `announce`: whom the
    /// gratuitous ARP / unsolicited neighbour advertisement sent once the link is up reaches:
    /// True or "wire" (out of the parent: the network beyond the host), "segment" (from inside:
    /// this host's other endpoints too, O(endpoints) per connect), "kernel" (as "segment",
    /// sent by the kernel as the link comes up: no packet socket), False or "off" (none).
    /// `keep_ipv6`: an endpoint given no IPv6 address keeps the kernel's IPv6 (link-local,
    /// SLAAC from router advertisements); by default IPv6 is off on it, as Docker does.
    /// `default_route`: "auto" (a default route via the gateway unless the namespace has one
    /// of that IP version already, another network's, as Docker gives one endpoint the
    /// gateway), a metric (int: always, with that metric, lower wins; give each network its
    /// own, as netavark does) or "none". `hostname`: on a DHCP network, the host name sent to
    /// the server (default: the container id's letters, digits and '-'). Undone as a whole if
    /// a step fails.
    #[pyo3(signature = (netns, container_id, *, ifname = "eth0", ip = None, mac = None,
        target = None, announce = AnnounceArg::On(true), keep_ipv6 = false,
        default_route = DefaultRouteArg::Mode("auto".into()), hostname = None))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        &self,
        py: Python<'_>,
        netns: &Netns,
        container_id: String,
        ifname: &str,
        ip: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        target: Option<&Handle>,
        announce: AnnounceArg,
        keep_ipv6: bool,
        default_route: DefaultRouteArg,
        hostname: Option<String>,
    ) -> PyResult<Endpoint> {
        let announce = match announce {
            AnnounceArg::On(true) => Announce::Wire,
            AnnounceArg::On(false) => Announce::Off,
            AnnounceArg::Whom(whom) => match whom.as_str() {
                "wire" => Announce::Wire,
                "segment" => Announce::Segment,
                "kernel" => Announce::Kernel,
                "off" => Announce::Off,
                _ => {
                    return Err(invalid(format!(
                        "announce={whom:?}: give True, False, \"wire\", \"segment\", \"kernel\" or \"off\""
                    )))
                }
            },
        };
        let default_route = match default_route {
            DefaultRouteArg::Mode(m) if m == "auto" => DefaultRoute::Auto,
            DefaultRouteArg::Mode(m) if m == "none" => DefaultRoute::None,
            DefaultRouteArg::Metric(m) if (0..=i64::from(u32::MAX)).contains(&m) => {
                DefaultRoute::Metric(m as u32)
            }
            other => {
                return Err(invalid(format!(
                    "default_route={}: give \"auto\", \"none\" or a metric (0..=4294967295)",
                    other.describe()
                )))
            }
        };
        let mut spec = EndpointSpec::new(container_id)
            .ifname(ifname)
            .announce_to(announce)
            .keep_ipv6(keep_ipv6)
            .default_route(default_route);
        if let Some(ip) = conv::opt_ip(ip)? {
            spec = spec.ip(ip);
        }
        match mac {
            None => {}
            Some("container-id") => spec = spec.mac(MacPolicy::FromContainerId),
            Some(m) => spec = spec.mac(MacPolicy::Fixed(conv::mac(m)?)),
        }
        if let Some(t) = target {
            spec = spec.target(&t.inner);
        }
        if let Some(h) = hostname {
            spec = spec.hostname(h);
        }
        let (n, ns) = (self.inner.clone(), netns.inner.clone());
        let inner = block(py, async move { n.connect(&ns, spec).await })?;
        Ok(Endpoint {
            inner,
            network: self.inner.clone(),
        })
    }

    /// Prepares an endpoint for a runtime that moves the link into the container itself
    /// (Docker's remote driver): the lease (`ip`, or the next free address), and the link,
    /// made down and unaddressed in the host namespace under a temporary name
    /// (`Endpoint.handoff`), with connect's records, lock and undo. `disconnect` deletes the
    /// link if it is still (or again) there under that name and takes it as gone otherwise;
    /// `Networks.reconcile` undoes an endpoint whose link is in no namespace any more. `mac`
    /// and `announce` as for `connect`.
    #[pyo3(signature = (container_id, *, ifname = "eth0", ip = None, mac = None,
        announce = AnnounceArg::On(true)))]
    fn prepare(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
        ip: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        announce: AnnounceArg,
    ) -> PyResult<Endpoint> {
        let announce = match announce {
            AnnounceArg::On(true) => Announce::Wire,
            AnnounceArg::On(false) => Announce::Off,
            AnnounceArg::Whom(whom) => match whom.as_str() {
                "wire" => Announce::Wire,
                "off" => Announce::Off,
                _ => {
                    return Err(invalid(format!(
                        "announce={whom:?}: give True, False, \"wire\" or \"off\" (a prepared link has no container to announce from)"
                    )))
                }
            },
        };
        let mut spec = EndpointSpec::new(container_id)
            .ifname(ifname)
            .announce_to(announce);
        if let Some(ip) = conv::opt_ip(ip)? {
            spec = spec.ip(ip);
        }
        match mac {
            None => {}
            Some("container-id") => spec = spec.mac(MacPolicy::FromContainerId),
            Some(m) => spec = spec.mac(MacPolicy::Fixed(conv::mac(m)?)),
        }
        let n = self.inner.clone();
        let inner = block(py, async move { n.prepare(spec).await })?;
        Ok(Endpoint {
            inner,
            network: self.inner.clone(),
        })
    }

    /// Records where the runtime moves prepared endpoint (`container_id`, `ifname`)'s link:
    /// the namespace at absolute `path` (Docker's `SandboxKey`; it need not exist yet). A DHCP
    /// endpoint's renewals and release then find the link there (or, if the path does not
    /// open, in any namespace of the host, by its MAC). Returns the endpoint.
    #[pyo3(signature = (container_id, path, ifname = "eth0"))]
    fn set_sandbox(
        &self,
        py: Python<'_>,
        container_id: String,
        path: std::path::PathBuf,
        ifname: &str,
    ) -> PyResult<Endpoint> {
        let (n, ifname) = (self.inner.clone(), ifname.to_string());
        let inner = block(py, async move {
            n.set_sandbox(&container_id, &ifname, &path).await
        })?;
        Ok(Endpoint {
            inner,
            network: self.inner.clone(),
        })
    }

    /// Disconnects (`container_id`, `ifname`): deletes its link and releases its addresses.
    #[pyo3(signature = (container_id, ifname = "eth0"))]
    fn disconnect(&self, py: Python<'_>, container_id: String, ifname: &str) -> PyResult<()> {
        let n = self.inner.clone();
        block(py, async move { n.disconnect(&container_id, ifname).await })
    }

    /// CNI GC: releases every endpoint (link, lease, record) and every lease without an
    /// endpoint record that `valid` (pairs of container id and interface name) does not name;
    /// one that a connect or disconnect holds at the moment is left to it. Returns what was
    /// released.
    fn gc(&self, py: Python<'_>, valid: Vec<(String, String)>) -> PyResult<Vec<Py<GoneEndpoint>>> {
        let owners = valid
            .into_iter()
            .map(|(c, i)| underlay::ipam::Owner::new(c, &i).map_err(to_py))
            .collect::<PyResult<Vec<_>>>()?;
        let n = self.inner.clone();
        let gone = block(py, async move { n.gc(&owners).await })?;
        gone.into_iter()
            .map(|g| {
                Py::new(
                    py,
                    GoneEndpoint {
                        network: g.network,
                        container_id: g.container_id,
                        ifname: g.ifname,
                        addresses: g.addresses,
                    },
                )
            })
            .collect()
    }

    /// Like `disconnect`, but leaves the link in place for a caller that deletes the
    /// endpoint's namespace next (the link goes with it, at no cost): releases the addresses,
    /// the host routes and the record.
    #[pyo3(signature = (container_id, ifname = "eth0"))]
    fn disconnect_for_netns_deletion(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
    ) -> PyResult<()> {
        let n = self.inner.clone();
        block(py, async move {
            n.disconnect_for_netns_deletion(&container_id, ifname).await
        })
    }

    /// The network's VLAN parent rendered for the distribution's own tools (`format`
    /// "ifupdown", "ifcfg" or "networkd"), so it comes back at boot without underlay: a list
    /// of (path, content) to write. Raises `InvalidArgument` when the parent is not a VLAN
    /// sub-interface (`<nic>.<id>`).
    fn export(&self, format: &str) -> PyResult<Vec<(String, String)>> {
        let f = export_format(format)?;
        Ok(self
            .inner
            .export(f)
            .map_err(to_py)?
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect())
    }

    /// The endpoint of (`container_id`, `ifname`), or None.
    #[pyo3(signature = (container_id, ifname = "eth0"))]
    fn endpoint(
        &self,
        py: Python<'_>,
        container_id: String,
        ifname: &str,
    ) -> PyResult<Option<Endpoint>> {
        let n = self.inner.clone();
        let e = unblock(py, move || n.endpoint(&container_id, ifname))?;
        Ok(e.map(|inner| Endpoint {
            inner,
            network: self.inner.clone(),
        }))
    }

    /// Every endpoint of this network.
    fn endpoints(&self, py: Python<'_>) -> PyResult<Vec<Endpoint>> {
        let n = self.inner.clone();
        let v = unblock(py, move || n.endpoints())?;
        Ok(v.into_iter()
            .map(|inner| Endpoint {
                inner,
                network: self.inner.clone(),
            })
            .collect())
    }

    /// Lets the host reach its own containers (S3): a bridge-mode macvlan shim on the parent
    /// (`name`, default after the network), up, and host routes through it: per endpoint
    /// (`routes="endpoints"`) or per allocation range (`routes="ranges"`). `with_address`
    /// gives the shim an address from the pools; `address` that address of the pools.
    /// Returns the shim's name.
    #[pyo3(signature = (*, name = None, with_address = false, routes = "endpoints", address = None))]
    fn enable_host_access(
        &self,
        py: Python<'_>,
        name: Option<String>,
        with_address: bool,
        routes: &str,
        address: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let mut spec = HostAccess::new().routes(match routes {
            "endpoints" => ShimRoutes::Endpoints,
            "ranges" => ShimRoutes::Ranges,
            other => {
                return Err(invalid(format!(
                    "host access routes `{other}`: use \"endpoints\" or \"ranges\""
                )))
            }
        });
        if let Some(n) = name {
            spec = spec.name(n);
        }
        if with_address {
            spec = spec.with_address();
        }
        if let Some(ip) = conv::opt_ip(address)? {
            spec = spec.address(ip);
        }
        let n = self.inner.clone();
        block(py, async move { n.enable_host_access(spec).await })
    }

    /// Removes the host shim and its routes.
    fn disable_host_access(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.inner.clone();
        block(py, async move { n.disable_host_access().await })
    }

    /// Removes the host shim and its routes if the network has no endpoint (a pending one
    /// counts); whether it did.
    fn disable_host_access_if_unused(&self, py: Python<'_>) -> PyResult<bool> {
        let n = self.inner.clone();
        block(py, async move { n.disable_host_access_if_unused().await })
    }

    fn __repr__(&self) -> String {
        format!(
            "<Network {} {} on {}>",
            self.inner.name(),
            self.inner.driver().name(),
            self.inner.lower()
        )
    }
}

#[pymethods]
impl Endpoint {
    /// The network's name.
    #[getter]
    fn network(&self) -> &str {
        &self.inner.network
    }
    /// The container id.
    #[getter]
    fn container_id(&self) -> &str {
        &self.inner.container_id
    }
    /// The interface name inside the namespace.
    #[getter]
    fn ifname(&self) -> &str {
        &self.inner.ifname
    }
    /// The interface index inside the namespace.
    #[getter]
    fn index(&self) -> u32 {
        self.inner.index
    }
    /// The MAC, if known.
    #[getter]
    fn mac(&self) -> Option<String> {
        self.inner.mac.map(|m| m.to_string())
    }
    /// For a prepared endpoint (`Network.prepare`): the link's temporary name in the host
    /// namespace, for the runtime that moves it; None for a connected one.
    #[getter]
    fn handoff(&self) -> Option<String> {
        self.inner.handoff.clone()
    }
    /// For a prepared endpoint: the sandbox path recorded by `Network.set_sandbox`, if any.
    #[getter]
    fn sandbox(&self) -> Option<String> {
        self.inner
            .sandbox
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    }
    /// The addresses (`ipaddress` interfaces, with the pools' prefix).
    #[getter]
    fn addresses<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        conv::py_ifaces(py, &self.inner.addresses)
    }
    /// The routes added inside (default routes via the gateways).
    #[getter]
    fn routes(&self) -> Vec<Route> {
        self.inner
            .routes
            .iter()
            .map(|r| Route { inner: r.clone() })
            .collect()
    }
    /// The namespace's path, when it has one.
    #[getter]
    fn netns(&self) -> Option<PathBuf> {
        self.inner.netns.clone()
    }
    /// On a DHCP network, the lease held (None when it was lost, or on a pooled network).
    #[getter]
    fn dhcp(&self) -> Option<DhcpLease> {
        self.inner.dhcp.clone().map(|inner| DhcpLease { inner })
    }

    /// Disconnects this endpoint (as `Network.disconnect`).
    fn disconnect(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.network.clone();
        let (c, i) = (self.inner.container_id.clone(), self.inner.ifname.clone());
        block(py, async move { n.disconnect(&c, &i).await })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.disconnect(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let a: Vec<String> = self.inner.addresses.iter().map(|a| a.to_string()).collect();
        format!(
            "<Endpoint {}/{} on {} {}>",
            self.inner.container_id,
            self.inner.ifname,
            self.inner.network,
            a.join(", ")
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Networks>()?;
    m.add_class::<ConflictDetection>()?;
    m.add_class::<ConflictWatch>()?;
    m.add_class::<EndpointConflict>()?;
    m.add_class::<Network>()?;
    m.add_class::<Endpoint>()?;
    m.add_class::<ReconcileReport>()?;
    m.add_class::<GoneEndpoint>()?;
    m.add_function(wrap_pyfunction!(render_vlan, m)?)?;
    m.add("ENDPOINT_GROUP", net::ENDPOINT_GROUP)?;
    m.add("DEFAULT_ROOT", net::DEFAULT_ROOT)?;
    Ok(())
}

/// `default_route=` of `Network.connect`: a mode or a metric (a bool is neither).
#[derive(FromPyObject)]
enum DefaultRouteArg {
    Flag(bool),
    Metric(i64),
    Mode(String),
}

impl DefaultRouteArg {
    /// The value as Python writes it, for messages.
    fn describe(&self) -> String {
        match self {
            DefaultRouteArg::Flag(b) => if *b { "True" } else { "False" }.to_string(),
            DefaultRouteArg::Metric(m) => m.to_string(),
            DefaultRouteArg::Mode(m) => format!("{m:?}"),
        }
    }
}

/// `announce=` of `Network.connect`: a bool or a name.
#[derive(FromPyObject)]
enum AnnounceArg {
    On(bool),
    Whom(String),
}

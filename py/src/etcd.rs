//! `underlay.EtcdStore` and `underlay.Record`: the cluster-wide IPAM store on etcd (cargo
//! feature `etcd` of this crate, on in the wheel).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use underlay::ipam::{self, EtcdConfig, Owner, Store};

use crate::block;
use crate::conv;
use crate::errors::{invalid, to_py};
use crate::ipam::Pool;

/// Leases on etcd, shared by every host of a cluster: an address has one owner cluster-wide,
/// and every host uses the one network definition stored there. Open with
/// `EtcdStore.connect(endpoints, ...)`, then give it to `Ipam.create/open/open_or_create/delete`
/// in place of a directory, or to `Networks(..., store=)`. See docs/ipam-etcd.md.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct EtcdStore {
    pub(crate) inner: ipam::EtcdStore,
    prefix: String,
    endpoints: Vec<String>,
}

/// One leased address of an etcd store's report: the address, its owner (container id and
/// interface name) and the boot id it was stamped with.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Record {
    inner: ipam::Record,
}

#[pymethods]
impl Record {
    /// The address (`ipaddress` address).
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
    /// The boot id the address was claimed under, if stamped.
    #[getter]
    fn boot_id(&self) -> Option<&str> {
        self.inner.boot_id.as_ref().map(|b| b.as_str())
    }
    fn __repr__(&self) -> String {
        format!("<Record {} {}>", self.inner.addr, self.inner.owner)
    }
}

/// Seconds (a Python float) as a `Duration`; `what` names the setting in the error.
fn secs(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        invalid(format!(
            "{what} must be a finite number of seconds >= 0, not {s}"
        ))
    })
}

/// Host name -> (first address, size) of each slice it holds.
type SlicesByHost<'py> = BTreeMap<String, Vec<(Bound<'py, PyAny>, u32)>>;

fn records(v: Vec<ipam::Record>) -> Vec<Record> {
    v.into_iter().map(|inner| Record { inner }).collect()
}

#[pymethods]
impl EtcdStore {
    /// The default key prefix.
    #[classattr]
    const DEFAULT_PREFIX: &'static str = EtcdConfig::DEFAULT_PREFIX;

    /// Connects to etcd at `endpoints` (client URLs, `http://host:2379`, or `https://` with
    /// `ca`; one string or a list) and checks that it answers: raises `Timeout` naming the
    /// endpoints when none answers within `retry_for`, `ProtocolError` when an endpoint
    /// answers but does not speak etcd's protocol, `PermissionDenied` on wrong credentials.
    ///
    /// `prefix`: every key lives under it (default "/underlay/"); `host`: the name stamped on
    /// this host's claims (default the kernel's host name); `request_timeout` (default 5 s),
    /// `connect_timeout` (3 s), `retry_for` (how long requests are retried while members are
    /// unavailable, 15 s), in seconds; `user` and `password` (etcd's `--auth`); `ca` (PEM CA
    /// for TLS), `client_cert` and `client_key` (PEM, for `--client-cert-auth`), `tls_domain`
    /// (the name to check the server certificate against); `max_txn_ops` (etcd's
    /// `--max-txn-ops`, default 128); `host_lease`: the TTL in seconds of an etcd lease
    /// carrying this host's claims, kept alive while the store lives (off by default: see
    /// docs/ipam-etcd.md for the trade-off); `slices`: node slices of that many addresses
    /// (this host picks inside its own blocks of the pool and commits there without
    /// contending with other hosts; off by default).
    #[staticmethod]
    #[pyo3(signature = (endpoints, *, prefix = None, host = None, request_timeout = None,
        connect_timeout = None, retry_for = None, user = None, password = None, ca = None,
        client_cert = None, client_key = None, tls_domain = None, max_txn_ops = None,
        host_lease = None, slices = None))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        py: Python<'_>,
        endpoints: &Bound<'_, PyAny>,
        prefix: Option<String>,
        host: Option<String>,
        request_timeout: Option<f64>,
        connect_timeout: Option<f64>,
        retry_for: Option<f64>,
        user: Option<String>,
        password: Option<String>,
        ca: Option<PathBuf>,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        tls_domain: Option<String>,
        max_txn_ops: Option<usize>,
        host_lease: Option<f64>,
        slices: Option<u32>,
    ) -> PyResult<EtcdStore> {
        let endpoints: Vec<String> = match endpoints.extract::<String>() {
            Ok(one) => vec![one],
            Err(_) => endpoints.extract().map_err(|_| {
                invalid("etcd endpoints are a URL (str) or a list of URLs, e.g. [\"http://127.0.0.1:2379\"]")
            })?,
        };
        let mut cfg = EtcdConfig::new(endpoints.clone());
        let prefix = prefix.unwrap_or_else(|| EtcdConfig::DEFAULT_PREFIX.to_string());
        cfg = cfg.prefix(prefix.clone());
        if let Some(h) = host {
            cfg = cfg.host(h);
        }
        if let Some(t) = request_timeout {
            cfg = cfg.request_timeout(secs("request_timeout", t)?);
        }
        if let Some(t) = connect_timeout {
            cfg = cfg.connect_timeout(secs("connect_timeout", t)?);
        }
        if let Some(t) = retry_for {
            cfg = cfg.retry_for(secs("retry_for", t)?);
        }
        match (user, password) {
            (Some(u), Some(p)) => cfg = cfg.user(u, p),
            (None, None) => {}
            _ => return Err(invalid("give etcd's `user` and `password` together")),
        }
        if let Some(ca) = ca {
            cfg = cfg.tls(ca);
        }
        match (client_cert, client_key) {
            (Some(c), Some(k)) => cfg = cfg.client_cert(c, k),
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "give the etcd client certificate's `client_cert` and `client_key` together",
                ))
            }
        }
        if let Some(d) = tls_domain {
            cfg = cfg.tls_domain(d);
        }
        if let Some(n) = max_txn_ops {
            cfg = cfg.max_txn_ops(n);
        }
        if let Some(n) = slices {
            cfg = cfg.slices(n);
        }
        if let Some(t) = host_lease {
            cfg = cfg.host_lease(secs("host_lease", t)?);
        }
        let inner = block(py, ipam::EtcdStore::connect(cfg))?;
        Ok(EtcdStore {
            inner,
            prefix,
            endpoints,
        })
    }

    /// The host name stamped on this store's claims.
    #[getter]
    fn host(&self) -> &str {
        self.inner.host()
    }
    /// The endpoints, as given.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }
    /// The key prefix.
    #[getter]
    fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The TTL in seconds of the lease this host's claims carry (`host_lease`), or None.
    #[getter]
    fn host_lease_ttl(&self) -> Option<f64> {
        self.inner.host_lease_ttl().map(|d| d.as_secs_f64())
    }

    /// The networks defined in the store: name -> pools.
    fn networks(&self, py: Python<'_>) -> PyResult<BTreeMap<String, Vec<Pool>>> {
        let s = self.inner.clone();
        let nets = block(py, async move { s.networks().await })?;
        Ok(nets
            .into_iter()
            .map(|n| {
                let pools = n.pools().iter().map(|p| Pool { inner: p.clone() });
                (n.name().to_string(), pools.collect())
            })
            .collect())
    }

    /// Every leased address of network `name`, grouped by the host that claimed it.
    fn addresses_by_host(
        &self,
        py: Python<'_>,
        name: String,
    ) -> PyResult<BTreeMap<String, Vec<Record>>> {
        let s = self.inner.clone();
        let m = block(py, async move { s.addresses_by_host(&name).await })?;
        Ok(m.into_iter().map(|(h, v)| (h, records(v))).collect())
    }

    /// Releases, in network `name`, every address claimed by host `host` whose owner is not in
    /// `valid` (pairs of container id and interface name): each host collects its own garbage
    /// without touching the other hosts' leases (`Ipam.gc` over this store is cluster-wide).
    /// Returns the released records.
    fn gc_host(
        &self,
        py: Python<'_>,
        name: String,
        host: String,
        valid: Vec<(String, String)>,
    ) -> PyResult<Vec<Record>> {
        let owners = valid
            .into_iter()
            .map(|(c, i)| Owner::new(c, &i).map_err(to_py))
            .collect::<PyResult<Vec<_>>>()?;
        let s = self.inner.clone();
        let v = block(py, async move { s.gc_host(&name, &host, &owners).await })?;
        Ok(records(v))
    }

    /// The hosts using network `name` (those that joined it and have not left), sorted.
    fn members(&self, py: Python<'_>, name: String) -> PyResult<Vec<String>> {
        let s = self.inner.clone();
        block(py, async move { s.members(&name).await })
    }

    /// Every node slice of network `name`, grouped by the host holding it, as (first address,
    /// size) pairs.
    fn slices_by_host<'py>(&self, py: Python<'py>, name: String) -> PyResult<SlicesByHost<'py>> {
        let s = self.inner.clone();
        let m = block(py, async move { s.slices_by_host(&name).await })?;
        m.into_iter()
            .map(|(h, v)| {
                let v = v
                    .into_iter()
                    .map(|(a, n)| Ok((conv::py_ip(py, a)?, n)))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok((h, v))
            })
            .collect()
    }

    /// Deletes the slices of `host` in network `name` that hold no lease (a dead or drained
    /// host's blocks go back to the pool); returns their first addresses. Leases inside a
    /// slice keep it: release them first (`gc_host`).
    fn gc_slices<'py>(
        &self,
        py: Python<'py>,
        name: String,
        host: String,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let s = self.inner.clone();
        let v = block(py, async move { s.gc_slices(&name, &host).await })?;
        v.into_iter().map(|a| conv::py_ip(py, a)).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "<EtcdStore {} prefix={} host={}>",
            self.endpoints.join(","),
            self.prefix,
            self.inner.host()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EtcdStore>()?;
    m.add_class::<Record>()?;
    Ok(())
}

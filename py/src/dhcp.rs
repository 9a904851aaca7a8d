//! `underlay.DhcpConfig`, `underlay.DhcpLease`, `underlay.DhcpRenewal`: DHCP networks (see
//! docs/dhcp.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

use crate::conv;
use crate::errors::{invalid, to_py};

/// How a DHCP network's endpoints get their addresses: `tries` (1..10) of each exchange, the
/// first waiting `first_wait` seconds (0.01..16) for an answer and each retry twice as long;
/// `subnet` ("10.40.0.0/16") refuses addresses outside it. `DhcpConfig()`: 4 tries, 1 s.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct DhcpConfig {
    pub(crate) inner: underlay::DhcpConfig,
}

#[pymethods]
impl DhcpConfig {
    #[new]
    #[pyo3(signature = (tries = 4, first_wait = 1.0, subnet = None))]
    fn new(tries: i64, first_wait: f64, subnet: Option<&str>) -> PyResult<DhcpConfig> {
        let t = u32::try_from(tries)
            .map_err(|_| invalid(format!("DHCP tries {tries}: give 1 to 10")))?;
        let w = Duration::try_from_secs_f64(first_wait).map_err(|_| {
            invalid(format!(
                "DHCP first wait of {first_wait} s: give 10 ms to 16 s"
            ))
        })?;
        let mut inner = underlay::DhcpConfig::new(t, w).map_err(to_py)?;
        if let Some(s) = subnet {
            let n: underlay::IpNet = s.parse().map_err(|_| {
                invalid(format!(
                    "DHCP subnet `{}` is not a subnet: give an IPv4 subnet such as 10.40.0.0/16",
                    underlay::Error::show_input(s)
                ))
            })?;
            match n {
                underlay::IpNet::V4(n) => inner = inner.subnet(n),
                underlay::IpNet::V6(n) => {
                    return Err(invalid(format!(
                        "DHCP subnet {n} is IPv6: DHCP networks are IPv4, give an IPv4 subnet"
                    )))
                }
            }
        }
        Ok(DhcpConfig { inner })
    }
    /// Tries of each exchange.
    #[getter]
    fn tries(&self) -> u32 {
        self.inner.tries()
    }
    /// Seconds waited for the first answer.
    #[getter]
    fn first_wait(&self) -> f64 {
        self.inner.first_wait().as_secs_f64()
    }
    /// Seconds before one exchange gives up (the sum of its tries' waits).
    #[getter]
    fn total_wait(&self) -> f64 {
        self.inner.total_wait().as_secs_f64()
    }
    /// The subnet addresses must lie in, or None.
    #[getter]
    fn subnet(&self) -> Option<String> {
        self.inner.allowed_subnet().map(|s| s.to_string())
    }
    fn __repr__(&self) -> String {
        format!(
            "DhcpConfig(tries={}, first_wait={}, subnet={})",
            self.inner.tries(),
            self.inner.first_wait().as_secs_f64(),
            self.inner
                .allowed_subnet()
                .map_or("None".to_string(), |s| format!("{:?}", s.to_string()))
        )
    }
}

/// A DHCP lease an endpoint holds (`Endpoint.dhcp`, `Network.renew_dhcp`). Times are seconds;
/// instants are seconds since the Unix epoch (as `time.time()`).
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct DhcpLease {
    pub(crate) inner: underlay::DhcpLease,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[pymethods]
impl DhcpLease {
    /// The address with the server's prefix (`ipaddress.IPv4Interface`).
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_iface(py, self.inner.address.into())
    }
    /// The server (`ipaddress.IPv4Address`).
    #[getter]
    fn server<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_ip(py, self.inner.server.into())
    }
    /// The MAC the server's answer came from (unicast renewals and the release go there).
    #[getter]
    fn server_mac(&self) -> String {
        self.inner.server_mac.to_string()
    }
    /// The router (the default route's gateway), or None.
    #[getter]
    fn router<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .router
            .map(|r| conv::py_ip(py, r.into()))
            .transpose()
    }
    /// The DNS servers the server gave (option 6), in its order (`ipaddress.IPv4Address`).
    #[getter]
    fn dns_servers<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.inner
            .dns_servers
            .iter()
            .map(|a| conv::py_ip(py, (*a).into()))
            .collect()
    }
    /// The DNS domain the server gave (option 15), or None.
    #[getter]
    fn domain(&self) -> Option<String> {
        self.inner.domain.clone()
    }
    /// The lease time (4294967295.0: infinite).
    #[getter]
    fn lease_time(&self) -> f64 {
        self.inner.lease_time.as_secs_f64()
    }
    /// Renewal (T1) after this long.
    #[getter]
    fn t1(&self) -> f64 {
        self.inner.t1.as_secs_f64()
    }
    /// Rebinding (T2) after this long.
    #[getter]
    fn t2(&self) -> f64 {
        self.inner.t2.as_secs_f64()
    }
    /// When the server's ACK came.
    #[getter]
    fn obtained(&self) -> f64 {
        unix(self.inner.obtained)
    }
    /// Whether the lease never ends.
    #[getter]
    fn is_infinite(&self) -> bool {
        self.inner.is_infinite()
    }
    /// When the lease ends (None: never).
    #[getter]
    fn expires(&self) -> Option<f64> {
        self.inner.expires().map(unix)
    }
    /// When renewal is due (None: never).
    #[getter]
    fn renew_at(&self) -> Option<f64> {
        self.inner.renew_at().map(unix)
    }
    /// When rebinding is due (None: never).
    #[getter]
    fn rebind_at(&self) -> Option<f64> {
        self.inner.rebind_at().map(unix)
    }
    fn __repr__(&self) -> String {
        format!(
            "DhcpLease(address={:?}, server={:?}, lease_time={})",
            self.inner.address.to_string(),
            self.inner.server.to_string(),
            self.inner.lease_time.as_secs()
        )
    }
}

/// One endpoint's renewal from `Network.renew_due_dhcp`: the lease held now, or the error
/// (`Timeout`: expired; `Conflict`: refused) that removed its address.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct DhcpRenewal {
    pub(crate) network: String,
    pub(crate) container_id: String,
    pub(crate) ifname: String,
    pub(crate) lease: Option<underlay::DhcpLease>,
    pub(crate) error: Option<Py<PyAny>>,
}

impl DhcpRenewal {
    pub(crate) fn new(py: Python<'_>, r: underlay::network::DhcpRenewal) -> DhcpRenewal {
        let (lease, error) = match r.result {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(to_py(e).into_value(py).into_any())),
        };
        DhcpRenewal {
            network: r.network,
            container_id: r.container_id,
            ifname: r.ifname,
            lease,
            error,
        }
    }
}

#[pymethods]
impl DhcpRenewal {
    /// The network.
    #[getter]
    fn network(&self) -> &str {
        &self.network
    }
    /// The container.
    #[getter]
    fn container_id(&self) -> &str {
        &self.container_id
    }
    /// Its interface.
    #[getter]
    fn ifname(&self) -> &str {
        &self.ifname
    }
    /// The lease held now, or None when it was lost.
    #[getter]
    fn lease(&self) -> Option<DhcpLease> {
        self.lease.clone().map(|inner| DhcpLease { inner })
    }
    /// Why the lease was lost (an `UnderlayError`), or None.
    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.error.as_ref().map(|e| e.clone_ref(py))
    }
    fn __repr__(&self) -> String {
        format!(
            "DhcpRenewal(container_id={:?}, ifname={:?}, ok={})",
            self.container_id,
            self.ifname,
            self.lease.is_some()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DhcpConfig>()?;
    m.add_class::<DhcpLease>()?;
    m.add_class::<DhcpRenewal>()?;
    Ok(())
}

//! Conversions between Python values and the core's typed values. Addresses go out as
//! `ipaddress` objects; in, any object whose `str()` is an address (so `ipaddress` objects and
//! plain strings both work).

use std::net::IpAddr;

use ipnet::IpNet;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use underlay::{LinkRef, MacAddr, VlanId};

use crate::errors::{invalid, to_py};

/// An IP address from `str(obj)`.
pub(crate) fn ip(obj: &Bound<'_, PyAny>) -> PyResult<IpAddr> {
    let s = obj.str()?.to_string();
    s.parse().map_err(|_| {
        invalid(format!(
            "`{}` is not an IP address",
            underlay::Error::show_input(&s)
        ))
    })
}

/// Optional IP address.
pub(crate) fn opt_ip(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<IpAddr>> {
    obj.map(ip).transpose()
}

/// An address with prefix (`10.0.0.2/24`) from an `ipaddress` interface or network, or a
/// string.
pub(crate) fn net(obj: &Bound<'_, PyAny>) -> PyResult<IpNet> {
    let s = obj.str()?.to_string();
    s.parse().map_err(|_| {
        invalid(format!(
            "`{}` is not an address with a prefix (like 10.0.0.2/24)",
            underlay::Error::show_input(&s)
        ))
    })
}

/// A Python `int` as an `i64`: one beyond it (2**70) becomes `i64::MAX` or `i64::MIN`, so
/// the core's range check names the range, as for any other out-of-range value, instead of
/// Python's bare `OverflowError`. Anything but an `int` (a `bool` included) is a `TypeError`.
fn wide_int(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "`{what}` must be an int, not {}",
            obj.get_type().name()?
        )));
    }
    match obj.extract::<i64>() {
        Ok(v) => Ok(v),
        Err(_) if obj.lt(0)? => Ok(i64::MIN),
        Err(_) => Ok(i64::MAX),
    }
}

/// A VLAN id from any Python `int`: out of range (65536, -1 included) is `InvalidArgument`
/// naming 1..4094, as the core says.
pub(crate) fn vlan_id(obj: &Bound<'_, PyAny>) -> PyResult<VlanId> {
    VlanId::try_from(wide_int(obj, "vlan_id")?).map_err(to_py)
}

/// An MTU from any Python `int` for `object`: out of range (-1, 2**32 included) is
/// `InvalidArgument` naming 68..65535, as the core says.
pub(crate) fn mtu(obj: &Bound<'_, PyAny>, object: &str) -> PyResult<u32> {
    underlay::check_mtu_value(wide_int(obj, "mtu")?, object).map_err(to_py)
}

/// An optional MTU (see [`mtu`]).
pub(crate) fn opt_mtu(obj: Option<&Bound<'_, PyAny>>, object: &str) -> PyResult<Option<u32>> {
    obj.map(|o| mtu(o, object)).transpose()
}

/// A MAC address from a string like `02:00:00:00:00:01`.
pub(crate) fn mac(s: &str) -> PyResult<MacAddr> {
    s.parse().map_err(to_py)
}

/// A link given as a name (`str`), an index (`int`) or a `Link`; not a `bool` (an `int` to
/// Python, which would make `True` link 1).
pub(crate) fn link_ref(obj: &Bound<'_, PyAny>) -> PyResult<LinkRef> {
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(format!(
            "a link is given as its name (str), its index (int) or a Link, not a bool ({})",
            obj.str()?
        )));
    }
    if let Ok(l) = obj.cast::<crate::handle::Link>() {
        return Ok(LinkRef::Index(l.get().inner.index));
    }
    if let Ok(i) = obj.extract::<u32>() {
        return Ok(LinkRef::Index(i));
    }
    if let Ok(s) = obj.extract::<String>() {
        return Ok(LinkRef::Name(s));
    }
    Err(invalid(
        "a link is given as its name (str), its index (int) or a Link",
    ))
}

/// `ipaddress.ip_address(...)`.
pub(crate) fn py_ip<'py>(py: Python<'py>, ip: IpAddr) -> PyResult<Bound<'py, PyAny>> {
    py.import("ipaddress")?
        .getattr("ip_address")?
        .call1((ip.to_string(),))
}

/// `ipaddress.ip_interface(...)`.
pub(crate) fn py_iface<'py>(py: Python<'py>, n: IpNet) -> PyResult<Bound<'py, PyAny>> {
    py.import("ipaddress")?
        .getattr("ip_interface")?
        .call1((n.to_string(),))
}

/// `ipaddress.ip_network(...)` (host bits cleared).
pub(crate) fn py_network<'py>(py: Python<'py>, n: IpNet) -> PyResult<Bound<'py, PyAny>> {
    py.import("ipaddress")?
        .getattr("ip_network")?
        .call1((n.trunc().to_string(),))
}

/// A list of `ipaddress` interfaces.
pub(crate) fn py_ifaces<'py>(py: Python<'py>, v: &[IpNet]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    v.iter().map(|n| py_iface(py, *n)).collect()
}

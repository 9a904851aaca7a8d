//! `underlay.Netns`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

use crate::conv;
use crate::handle::Handle;
use crate::unblock;

/// A network namespace, opened the way iproute2 keeps them (`/run/netns/NAME`) or anonymous.
///
/// Make one with `Netns.create(name)` (like `ip netns add`), `Netns.anonymous()` (gone when
/// the last reference drops), or open one with `Netns.open(name)`, `Netns.open_path(path)`,
/// `Netns.open_pid(pid)`, `Netns.current()`. Used as a context manager, a namespace made by
/// `Netns.create` is deleted on exit; opened ones are left alone.
///
/// Nothing here changes the calling thread's namespace: underlay enters namespaces only on
/// threads of its own.
#[pyclass(module = "underlay", frozen, eq, hash)]
pub(crate) struct Netns {
    pub(crate) inner: underlay::Netns,
    owned: AtomicBool,
}

impl PartialEq for Netns {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl std::hash::Hash for Netns {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.inode().hash(state)
    }
}

impl Netns {
    pub(crate) fn wrap(inner: underlay::Netns, owned: bool) -> Netns {
        Netns {
            inner,
            owned: AtomicBool::new(owned),
        }
    }
}

#[pymethods]
impl Netns {
    /// Creates a named namespace like `ip netns add NAME`; raises `AlreadyExists` if taken.
    #[staticmethod]
    fn create(py: Python<'_>, name: String) -> PyResult<Netns> {
        let ns = unblock(py, move || underlay::Netns::create(&name))?;
        Ok(Netns::wrap(ns, true))
    }

    /// Creates an anonymous namespace, held only by this object (and handles made in it).
    #[staticmethod]
    fn anonymous(py: Python<'_>) -> PyResult<Netns> {
        Ok(Netns::wrap(
            unblock(py, underlay::Netns::create_anonymous)?,
            false,
        ))
    }

    /// Opens the named namespace `/run/netns/NAME`; raises `NotFound` if there is none.
    #[staticmethod]
    fn open(py: Python<'_>, name: String) -> PyResult<Netns> {
        Ok(Netns::wrap(
            unblock(py, move || underlay::Netns::open(&name))?,
            false,
        ))
    }

    /// Opens the namespace file at `path` (a bind mount or `/proc/PID/ns/net`).
    #[staticmethod]
    fn open_path(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Netns> {
        Ok(Netns::wrap(
            unblock(py, move || underlay::Netns::open_path(path))?,
            false,
        ))
    }

    /// Opens the namespace of process `pid`.
    #[staticmethod]
    fn open_pid(py: Python<'_>, pid: u32) -> PyResult<Netns> {
        Ok(Netns::wrap(
            unblock(py, move || underlay::Netns::open_pid(pid))?,
            false,
        ))
    }

    /// The namespace of the calling thread.
    #[staticmethod]
    fn current(py: Python<'_>) -> PyResult<Netns> {
        Ok(Netns::wrap(unblock(py, underlay::Netns::current)?, false))
    }

    /// Deletes the named namespace like `ip netns del NAME`.
    #[staticmethod]
    fn delete(py: Python<'_>, name: String) -> PyResult<()> {
        unblock(py, move || underlay::Netns::delete(&name))
    }

    /// Deletes many named namespaces, one after the other on one thread (faster than one
    /// `delete` each); every name is tried and the failures raised together, each naming its
    /// namespace (`MultipleErrors` for more than one).
    #[staticmethod]
    fn delete_many(py: Python<'_>, names: Vec<String>) -> PyResult<()> {
        crate::block(py, async move { underlay::Netns::delete_many(names).await })
    }

    /// The names of the named namespaces (`ip netns list`), sorted.
    #[staticmethod]
    fn list(py: Python<'_>) -> PyResult<Vec<String>> {
        unblock(py, underlay::Netns::list)
    }

    /// The name, for a named namespace; None otherwise.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// A label for messages: the name, or how it was opened.
    #[getter]
    fn label(&self) -> &str {
        self.inner.label()
    }

    /// The nsfs inode number: equal for two objects on the same namespace.
    #[getter]
    fn inode(&self) -> u64 {
        self.inner.inode()
    }

    /// A path that opens this namespace again while it lives, or None (anonymous).
    #[getter]
    fn path(&self) -> Option<std::path::PathBuf> {
        self.inner.path().map(|p| p.to_path_buf())
    }

    /// A netlink handle inside this namespace (a socket opened on a thread that entered it).
    fn handle(&self, py: Python<'_>) -> PyResult<Handle> {
        let ns = self.inner.clone();
        let h = crate::block(py, async move { underlay::Handle::for_netns(&ns).await })?;
        Ok(Handle { inner: h })
    }

    /// Reads the sysctl `key` (like `net.ipv4.ip_forward`) inside this namespace.
    fn sysctl(&self, py: Python<'_>, key: String) -> PyResult<String> {
        let ns = self.inner.clone();
        unblock(py, move || ns.sysctl(&key))
    }

    /// Writes the sysctl `key` inside this namespace.
    fn set_sysctl(&self, py: Python<'_>, key: String, value: String) -> PyResult<()> {
        let ns = self.inner.clone();
        unblock(py, move || ns.set_sysctl(&key, &value))
    }

    /// Turns IPv4 (and optionally IPv6) forwarding on or off inside this namespace.
    #[pyo3(signature = (v4, v6 = false))]
    fn set_forwarding(&self, py: Python<'_>, v4: bool, v6: bool) -> PyResult<()> {
        let ns = self.inner.clone();
        unblock(py, move || ns.set_forwarding(v4, v6))
    }

    /// Tells the neighbours about `ips` on link `link` (an index or a `Link` inside this
    /// namespace) with MAC `mac`, at once: a gratuitous ARP for each IPv4 address, an
    /// unsolicited neighbour advertisement (override) for each IPv6 one. What
    /// `Network.connect` does after making an endpoint (unless `announce=False`).
    fn announce(
        &self,
        py: Python<'_>,
        link: &Bound<'_, PyAny>,
        mac: &str,
        ips: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let ifindex = match conv::link_ref(link)? {
            underlay::LinkRef::Index(i) => i,
            underlay::LinkRef::Name(n) => {
                return Err(crate::errors::invalid(format!(
                    "announce: give link `{n}` as its index or a Link (Handle.link_index)"
                )))
            }
        };
        let mac = conv::mac(mac)?;
        let ips = ips.iter().map(conv::ip).collect::<PyResult<Vec<_>>>()?;
        let ns = self.inner.clone();
        unblock(py, move || ns.announce(ifindex, mac, ips))
    }

    /// `arp_ignore` (0..8) on `iface` ("all", "default" or an interface name): 1 answers ARP
    /// only for addresses on the asking interface.
    fn set_arp_ignore(&self, py: Python<'_>, iface: &str, value: i64) -> PyResult<()> {
        let value = small("arp_ignore", value, 8)?;
        let (ns, i) = (self.inner.clone(), sysctl_if(iface)?);
        unblock(py, move || ns.set_arp_ignore(&i, value))
    }

    /// `arp_announce` (0..2) on `iface` ("all", "default" or an interface name): 2 always
    /// uses the best local source address in ARP.
    fn set_arp_announce(&self, py: Python<'_>, iface: &str, value: i64) -> PyResult<()> {
        let value = small("arp_announce", value, 2)?;
        let (ns, i) = (self.inner.clone(), sysctl_if(iface)?);
        unblock(py, move || ns.set_arp_announce(&i, value))
    }

    /// IPv6 `accept_dad` (-1..2) on `iface` ("all", "default" or an interface name): 0 turns
    /// duplicate address detection off.
    fn set_accept_dad(&self, py: Python<'_>, iface: &str, value: i64) -> PyResult<()> {
        let value = i32::try_from(value).map_err(|_| {
            crate::errors::invalid(format!("accept_dad value {value} is out of range -1..2"))
        })?;
        let (ns, i) = (self.inner.clone(), sysctl_if(iface)?);
        unblock(py, move || ns.set_accept_dad(&i, value))
    }

    /// Sends one ICMP echo to `dst` from inside this namespace; returns the round-trip time
    /// in seconds, or None when no reply came within `timeout` seconds.
    #[pyo3(signature = (dst, timeout = 1.0))]
    fn ping(&self, py: Python<'_>, dst: &Bound<'_, PyAny>, timeout: f64) -> PyResult<Option<f64>> {
        let dst = conv::ip(dst)?;
        let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            crate::errors::invalid("timeout must be a non-negative number of seconds")
        })?;
        let ns = self.inner.clone();
        let rtt = unblock(py, move || ns.ping(dst, timeout))?;
        Ok(rtt.map(|d| d.as_secs_f64()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Deletes the namespace if `Netns.create` made it (named), then releases it. When the
    /// block raised, its exception goes on whatever the delete does: a failed delete is added
    /// to it as a note (Python 3.11+; a `RuntimeWarning` before), never put in its place.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if !self.owned.swap(false, Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(name) = self.inner.name().map(str::to_string) else {
            return Ok(false);
        };
        let deleted = unblock(py, move || underlay::Netns::delete(&name));
        match (deleted, exc.filter(|e| !e.is_none())) {
            (Ok(()), _) => {}
            (Err(e), None) => return Err(e),
            (Err(e), Some(raised)) => {
                let note = format!(
                    "underlay: leaving the `with` block, deleting network namespace {} failed too: {}",
                    self.inner.label(),
                    e.value(py)
                );
                if raised.hasattr("add_note")? {
                    raised.call_method1("add_note", (note,))?;
                } else {
                    let warning = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
                    PyErr::warn(
                        py,
                        &warning,
                        &std::ffi::CString::new(note).unwrap_or_default(),
                        1,
                    )?;
                }
            }
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<Netns {}>", self.inner.label())
    }
}

/// "all", "default" or an interface name.
/// `value` as the u8 the kernel key takes; anything else is out of the key's range `0..max`
/// (core checks the rest, in the same words).
fn small(what: &str, value: i64, max: u8) -> PyResult<u8> {
    u8::try_from(value).map_err(|_| {
        crate::errors::invalid(format!("{what} value {value} is out of range 0..{max}"))
    })
}

fn sysctl_if(iface: &str) -> PyResult<underlay::SysctlIf> {
    Ok(match iface {
        "all" => underlay::SysctlIf::All,
        "default" => underlay::SysctlIf::Default,
        name => {
            underlay::SysctlIf::Name(underlay::IfName::new(name).map_err(crate::errors::to_py)?)
        }
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Netns>()
}

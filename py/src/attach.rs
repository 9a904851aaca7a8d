//! `attach_to_netns` of `Macvlan`, `Ipvlan`, `Vlan` and `Veth` (the core's `Attach`), and
//! `underlay.Attached`, what it set up.

use ipnet::IpNet;
use pyo3::prelude::*;
use underlay::{LinkRef, MacAddr};

use crate::block;
use crate::conv;
use crate::handle::{Handle, Link, Route};
use crate::netns::Netns;

/// What `Kind.attach_to_netns` set up: the link as read back inside the namespace, the
/// addresses added, and the routes added (default routes first).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Attached {
    inner: underlay::Attached,
}

#[pymethods]
impl Attached {
    /// The link in its new namespace, under its new name.
    #[getter]
    fn link(&self) -> Link {
        Link {
            inner: self.inner.link.clone(),
        }
    }
    /// The addresses added (`ipaddress` interfaces).
    #[getter]
    fn addresses<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        conv::py_ifaces(py, &self.inner.addresses)
    }
    /// The routes added, default routes first, each with its `dev` set to the link.
    #[getter]
    fn routes(&self) -> Vec<Route> {
        self.inner
            .routes
            .iter()
            .map(|r| Route { inner: r.clone() })
            .collect()
    }
    fn __repr__(&self) -> String {
        format!(
            "<Attached {} in {}>",
            self.inner.link.name, self.inner.link.netns
        )
    }
}

/// The keyword arguments of every `attach_to_netns`, owned (converted with the GIL held).
pub(crate) struct AttachArgs {
    handle: underlay::Handle,
    link: LinkRef,
    netns: underlay::Netns,
    name: Option<String>,
    addresses: Vec<IpNet>,
    gateways: Vec<std::net::IpAddr>,
    routes: Vec<underlay::Route>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    nodad: bool,
    target: Option<underlay::Handle>,
}

impl AttachArgs {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        handle: &Handle,
        link: &Bound<'_, PyAny>,
        netns: &Netns,
        name: Option<String>,
        addresses: Vec<Bound<'_, PyAny>>,
        gateways: Vec<Bound<'_, PyAny>>,
        routes: Vec<Bound<'_, Route>>,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        nodad: bool,
        target: Option<&Handle>,
    ) -> PyResult<AttachArgs> {
        Ok(AttachArgs {
            handle: handle.inner.clone(),
            link: conv::link_ref(link)?,
            netns: netns.inner.clone(),
            name,
            addresses: addresses.iter().map(conv::net).collect::<PyResult<_>>()?,
            gateways: gateways.iter().map(conv::ip).collect::<PyResult<_>>()?,
            routes: routes.iter().map(|r| r.get().inner.clone()).collect(),
            mtu: conv::opt_mtu(mtu, "the attached link")?,
            mac: mac.map(conv::mac).transpose()?,
            nodad,
            target: target.map(|t| t.inner.clone()),
        })
    }

    /// Builds the core's `Attach` with `start` (the kind's `attach_to_netns`) and runs it with
    /// the GIL released.
    pub(crate) fn run(
        self,
        py: Python<'_>,
        start: fn(&underlay::Handle, LinkRef, &underlay::Netns) -> underlay::Attach,
    ) -> PyResult<Attached> {
        let inner = block(py, async move {
            let mut a = start(&self.handle, self.link, &self.netns);
            if let Some(n) = self.name {
                a = a.name(n);
            }
            for addr in self.addresses {
                a = a.address(addr);
            }
            for g in self.gateways {
                a = a.gateway(g);
            }
            for r in self.routes {
                a = a.route(r);
            }
            if let Some(m) = self.mtu {
                a = a.mtu(m);
            }
            if let Some(m) = self.mac {
                a = a.mac(m);
            }
            if self.nodad {
                a = a.nodad();
            }
            if let Some(t) = &self.target {
                a = a.target(t);
            }
            a.execute().await
        })?;
        Ok(Attached { inner })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Attached>()
}

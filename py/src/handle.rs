//! `underlay.Handle` (links, addresses, routes in one namespace), `Link`, `Address`, `Route`.

use pyo3::prelude::*;
use underlay::{LinkKind, RouteScopeKind, VlanProtocol};

use crate::conv;
use crate::netns::Netns;
use crate::{block, unblock};

/// A netlink connection bound to one network namespace: list, change and delete links,
/// addresses and routes there. Cheap to share between threads; requests from many threads
/// are pipelined on the one socket.
///
/// `Handle()` works in the calling thread's namespace; `Handle(netns)` inside `netns`;
/// `Handle.create_netns(name)` makes a namespace and a handle inside it at once.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Handle {
    pub(crate) inner: underlay::Handle,
}

/// A link as the kernel reports it (a snapshot: read it again with `Handle.link`).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Link {
    pub(crate) inner: underlay::Link,
}

/// The flags of a VLAN (`ip link ... type vlan reorder_hdr on gvrp off mvrp off
/// loose_binding off`): given to `Vlan.create` as keywords, read back as `Link.vlan_flags`.
#[pyclass(module = "underlay", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct VlanFlags {
    inner: underlay::VlanFlags,
}

#[pymethods]
impl VlanFlags {
    /// Flags; the defaults are the kernel's (`reorder_hdr` on, the others off).
    #[new]
    #[pyo3(signature = (*, reorder_hdr = true, gvrp = false, mvrp = false, loose_binding = false))]
    fn new(reorder_hdr: bool, gvrp: bool, mvrp: bool, loose_binding: bool) -> VlanFlags {
        VlanFlags {
            inner: underlay::VlanFlags {
                reorder_hdr,
                gvrp,
                mvrp,
                loose_binding,
            },
        }
    }
    /// Reorder the Ethernet header.
    #[getter]
    fn reorder_hdr(&self) -> bool {
        self.inner.reorder_hdr
    }
    /// Registered with GVRP.
    #[getter]
    fn gvrp(&self) -> bool {
        self.inner.gvrp
    }
    /// Registered with MVRP.
    #[getter]
    fn mvrp(&self) -> bool {
        self.inner.mvrp
    }
    /// Does not follow the parent's operational state.
    #[getter]
    fn loose_binding(&self) -> bool {
        self.inner.loose_binding
    }
    fn __repr__(&self) -> String {
        let f = &self.inner;
        format!(
            "VlanFlags(reorder_hdr={}, gvrp={}, mvrp={}, loose_binding={})",
            py_bool(f.reorder_hdr),
            py_bool(f.gvrp),
            py_bool(f.mvrp),
            py_bool(f.loose_binding)
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The settings of a VXLAN link as the kernel reports them (`Link.vxlan`).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct VxlanInfo {
    inner: underlay::VxlanInfo,
}

#[pymethods]
impl VxlanInfo {
    /// The network identifier (24 bits).
    #[getter]
    fn vni(&self) -> u32 {
        self.inner.vni
    }
    /// The local VTEP address, if set.
    #[getter]
    fn local<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.local.map(|ip| conv::py_ip(py, ip)).transpose()
    }
    /// The remote VTEP (unicast) or multicast group, if set.
    #[getter]
    fn remote<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.remote.map(|ip| conv::py_ip(py, ip)).transpose()
    }
    /// The UDP destination port.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.port
    }
    /// The index of the underlying device, if set.
    #[getter]
    fn device(&self) -> Option<u32> {
        self.inner.link
    }
    /// MAC learning.
    #[getter]
    fn learning(&self) -> bool {
        self.inner.learning
    }
    /// TTL of the outer packets (0: `auto`, the route's hop limit; also 0 with `ttl_inherit`).
    #[getter]
    fn ttl(&self) -> u8 {
        self.inner.ttl
    }
    /// The outer TTL is copied from the inner packet (`ttl inherit`).
    #[getter]
    fn ttl_inherit(&self) -> bool {
        self.inner.ttl_inherit
    }
    fn __repr__(&self) -> String {
        format!(
            "<VxlanInfo vni={} port={}>",
            self.inner.vni, self.inner.port
        )
    }
}

/// An address on a link, as the kernel reports it.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Address {
    inner: underlay::Address,
}

/// A route: destination, and a gateway and/or device; `table` 254 is the main table.
///
/// `Route("10.1.0.0/16", gateway="10.0.0.1")`, `Route.default_via("172.16.10.1")`,
/// `Route("192.168.136.240/32", dev="macvlan0-host")`.
#[pyclass(module = "underlay", frozen)]
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) inner: underlay::Route,
}

/// One next hop of a multipath route: `NextHop(gateway=None, dev=None, weight=1,
/// onlink=False)` (a gateway, a device, or both).
#[pyclass(module = "underlay", frozen)]
#[derive(Clone)]
pub(crate) struct NextHop {
    pub(crate) inner: underlay::NextHop,
}

#[pymethods]
impl NextHop {
    #[new]
    #[pyo3(signature = (gateway = None, dev = None, weight = 1, onlink = false))]
    fn new(
        gateway: Option<&Bound<'_, PyAny>>,
        dev: Option<&Bound<'_, PyAny>>,
        weight: u16,
        onlink: bool,
    ) -> PyResult<NextHop> {
        let dev = dev.map(conv::link_ref).transpose()?;
        let mut hop = match (conv::opt_ip(gateway)?, dev) {
            (Some(g), Some(d)) => underlay::NextHop::via(g).dev(d),
            (Some(g), None) => underlay::NextHop::via(g),
            (None, Some(d)) => underlay::NextHop::dev_only(d),
            (None, None) => {
                return Err(crate::errors::invalid(
                    "a next hop needs a gateway or a device (dev)",
                ))
            }
        };
        hop = hop.weight(weight);
        if onlink {
            hop = hop.onlink();
        }
        Ok(NextHop { inner: hop })
    }
    /// Gateway, if any.
    #[getter]
    fn gateway<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.gateway.map(|g| conv::py_ip(py, g)).transpose()
    }
    /// Output device: a name (as given) or an index (as read back), if any.
    #[getter]
    fn dev<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        link_ref_py(py, self.inner.dev.as_ref())
    }
    /// Its share of the traffic (1..256).
    #[getter]
    fn weight(&self) -> u16 {
        self.inner.weight
    }
    /// The gateway is on the link (`onlink`).
    #[getter]
    fn onlink(&self) -> bool {
        self.inner.onlink
    }
    fn __repr__(&self) -> String {
        format!("<NextHop {}>", self.inner)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<NextHop>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}

fn link_ref_py<'py>(
    py: Python<'py>,
    dev: Option<&underlay::LinkRef>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(match dev {
        None => None,
        Some(underlay::LinkRef::Name(n)) => Some(n.into_pyobject(py)?.into_any()),
        Some(underlay::LinkRef::Index(i)) => Some(i.into_pyobject(py)?.into_any()),
    })
}

#[pymethods]
impl Handle {
    /// A handle in `netns`, or in the calling thread's namespace when `netns` is None.
    #[new]
    #[pyo3(signature = (netns = None))]
    fn new(py: Python<'_>, netns: Option<&Netns>) -> PyResult<Handle> {
        let inner = match netns {
            None => unblock(py, underlay::Handle::new)?,
            Some(ns) => {
                let ns = ns.inner.clone();
                block(py, async move { underlay::Handle::for_netns(&ns).await })?
            }
        };
        Ok(Handle { inner })
    }

    /// Creates a namespace (named, like `ip netns add`, or anonymous when `name` is None) and
    /// a handle inside it, in one step: the cheapest way to a fresh namespace.
    #[staticmethod]
    #[pyo3(signature = (name = None))]
    fn create_netns(py: Python<'_>, name: Option<String>) -> PyResult<(Netns, Handle)> {
        let named = name.is_some();
        let (ns, h) = block(py, async move {
            match name {
                Some(n) => underlay::Handle::create_netns(&n).await,
                None => underlay::Handle::create_anonymous_netns().await,
            }
        })?;
        Ok((Netns::wrap(ns, named), Handle { inner: h }))
    }

    /// The namespace this handle works in.
    #[getter]
    fn netns(&self) -> Netns {
        Netns::wrap(self.inner.netns().clone(), false)
    }

    /// All links, in index order.
    fn links(&self, py: Python<'_>) -> PyResult<Vec<Link>> {
        let h = self.inner.clone();
        let v = block(py, async move { h.links().await })?;
        Ok(v.into_iter().map(|inner| Link { inner }).collect())
    }

    /// One link, by name, index or `Link`; raises `NotFound`.
    fn link(&self, py: Python<'_>, link: &Bound<'_, PyAny>) -> PyResult<Link> {
        let (h, r) = (self.inner.clone(), conv::link_ref(link)?);
        Ok(Link {
            inner: block(py, async move { h.link(r).await })?,
        })
    }

    /// The index of a link given by name.
    fn link_index(&self, py: Python<'_>, link: &Bound<'_, PyAny>) -> PyResult<u32> {
        let (h, r) = (self.inner.clone(), conv::link_ref(link)?);
        block(py, async move { h.link_index(r).await })
    }

    /// Deletes a link (with a veth, its peer goes too).
    fn delete_link(&self, py: Python<'_>, link: &Bound<'_, PyAny>) -> PyResult<()> {
        let (h, r) = (self.inner.clone(), conv::link_ref(link)?);
        block(py, async move { h.delete_link(r).await })
    }

    /// Deletes every link in link group `group` in one request.
    fn delete_link_group(&self, py: Python<'_>, group: u32) -> PyResult<()> {
        let h = self.inner.clone();
        block(py, async move { h.delete_link_group(group).await })
    }

    /// Changes a link in one request: each keyword left None stays as it is.
    /// `up=True/False`, `promisc`, `mtu`, `mac` ("02:..."), `name` (rename), `alias`,
    /// `group`, `master` (a bridge's index or name), `nomaster=True`, `netns` (move there).
    #[pyo3(signature = (link, *, up = None, promisc = None, mtu = None, mac = None, name = None,
        alias = None, group = None, master = None, nomaster = false, netns = None))]
    #[allow(clippy::too_many_arguments)]
    fn set_link(
        &self,
        py: Python<'_>,
        link: &Bound<'_, PyAny>,
        up: Option<bool>,
        promisc: Option<bool>,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        name: Option<String>,
        alias: Option<String>,
        group: Option<u32>,
        master: Option<&Bound<'_, PyAny>>,
        nomaster: bool,
        netns: Option<&Netns>,
    ) -> PyResult<()> {
        let h = self.inner.clone();
        let r = conv::link_ref(link)?;
        let mtu = conv::opt_mtu(mtu, &format!("link {r}"))?;
        let mac = mac.map(conv::mac).transpose()?;
        let master = master.map(conv::link_ref).transpose()?;
        let netns = netns.map(|n| n.inner.clone());
        block(py, async move {
            let mut s = h.set_link(r);
            match up {
                Some(true) => s = s.up(),
                Some(false) => s = s.down(),
                None => {}
            }
            if let Some(p) = promisc {
                s = s.promisc(p);
            }
            if let Some(m) = mtu {
                s = s.mtu(m);
            }
            if let Some(m) = mac {
                s = s.mac(m);
            }
            if let Some(n) = name {
                s = s.name(n);
            }
            if let Some(a) = alias {
                s = s.alias(a);
            }
            if let Some(g) = group {
                s = s.group(g);
            }
            if let Some(m) = master {
                s = s.master(h.link_index(m).await?);
            }
            if nomaster {
                s = s.nomaster();
            }
            if let Some(ns) = &netns {
                s = s.netns(ns);
            }
            s.execute().await
        })
    }

    /// The addresses of one link, or of all links when `link` is None.
    #[pyo3(signature = (link = None))]
    fn addresses(&self, py: Python<'_>, link: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Address>> {
        let h = self.inner.clone();
        let r = link.map(conv::link_ref).transpose()?;
        let v = block(py, async move { h.addresses(r).await })?;
        Ok(v.into_iter().map(|inner| Address { inner }).collect())
    }

    /// Adds `address` (an `ipaddress` interface or a string like "10.0.0.2/24") to a link;
    /// `nodad` skips IPv6 duplicate address detection, `noprefixroute` the prefix route.
    #[pyo3(signature = (link, address, *, nodad = false, noprefixroute = false))]
    fn add_address(
        &self,
        py: Python<'_>,
        link: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        nodad: bool,
        noprefixroute: bool,
    ) -> PyResult<()> {
        let (h, r, a) = (
            self.inner.clone(),
            conv::link_ref(link)?,
            conv::net(address)?,
        );
        let opts = underlay::AddressOptions {
            nodad,
            noprefixroute,
        };
        block(py, async move { h.add_address_with(r, a, opts).await })
    }

    /// Adds or replaces `address` on a link.
    fn replace_address(
        &self,
        py: Python<'_>,
        link: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (h, r, a) = (
            self.inner.clone(),
            conv::link_ref(link)?,
            conv::net(address)?,
        );
        block(py, async move { h.replace_address(r, a).await })
    }

    /// Removes `address` from a link.
    fn delete_address(
        &self,
        py: Python<'_>,
        link: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (h, r, a) = (
            self.inner.clone(),
            conv::link_ref(link)?,
            conv::net(address)?,
        );
        block(py, async move { h.delete_address(r, a).await })
    }

    /// The unicast routes of `table`: the main table (254) when None, as `ip route` shows;
    /// every table with 0 (`ip route show table all`).
    #[pyo3(signature = (table = None))]
    fn routes(&self, py: Python<'_>, table: Option<u32>) -> PyResult<Vec<Route>> {
        let h = self.inner.clone();
        let v = block(py, async move { h.routes(table).await })?;
        Ok(v.into_iter().map(|inner| Route { inner }).collect())
    }

    /// Adds a route; raises `AlreadyExists` if it is there.
    fn add_route(&self, py: Python<'_>, route: &Route) -> PyResult<()> {
        let (h, r) = (self.inner.clone(), route.inner.clone());
        block(py, async move { h.add_route(&r).await })
    }

    /// Adds or replaces a route.
    fn replace_route(&self, py: Python<'_>, route: &Route) -> PyResult<()> {
        let (h, r) = (self.inner.clone(), route.inner.clone());
        block(py, async move { h.replace_route(&r).await })
    }

    /// Deletes a route.
    fn delete_route(&self, py: Python<'_>, route: &Route) -> PyResult<()> {
        let (h, r) = (self.inner.clone(), route.inner.clone());
        block(py, async move { h.delete_route(&r).await })
    }

    fn __repr__(&self) -> String {
        format!("<Handle {}>", self.inner.netns_label())
    }
}

fn py_enum<'py>(py: Python<'py>, class: &str, value: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("underlay._enums")?
        .getattr(class)?
        .call1((value,))
}

#[pymethods]
impl Link {
    /// Interface index.
    #[getter]
    fn index(&self) -> u32 {
        self.inner.index
    }
    /// Interface name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    /// The kernel's kind name (`vlan`, `macvlan`, `veth`, ...), "" for a device without one.
    #[getter]
    fn kind(&self) -> &str {
        self.inner.kind.name()
    }
    /// MAC address ("02:..."), if the link has one.
    #[getter]
    fn mac(&self) -> Option<String> {
        self.inner.mac.map(|m| m.to_string())
    }
    /// MTU.
    #[getter]
    fn mtu(&self) -> u32 {
        self.inner.mtu
    }
    /// Administratively up.
    #[getter]
    fn up(&self) -> bool {
        self.inner.up
    }
    /// Carrier and up (`RUNNING`).
    #[getter]
    fn running(&self) -> bool {
        self.inner.running
    }
    /// Promiscuous mode.
    #[getter]
    fn promisc(&self) -> bool {
        self.inner.promisc
    }
    /// Operational state (`up`, `down`, `lowerlayerdown`, `unknown`, ...).
    #[getter]
    fn oper_state(&self) -> &str {
        &self.inner.oper_state
    }
    /// Index of the parent link (VLAN, macvlan, ipvlan, veth peer), if any.
    #[getter]
    fn parent(&self) -> Option<u32> {
        self.inner.parent
    }
    /// The id (in this link's namespace) of the namespace its parent lives in, when that is
    /// another one; None when the parent is here or there is none.
    #[getter]
    fn parent_netns_id(&self) -> Option<i32> {
        self.inner.parent_netns_id
    }
    /// Index of the master (bridge), if any.
    #[getter]
    fn master(&self) -> Option<u32> {
        self.inner.master
    }
    /// The alias (`ip link set ... alias`), if any.
    #[getter]
    fn alias(&self) -> Option<&str> {
        self.inner.alias.as_deref()
    }
    /// Link group.
    #[getter]
    fn group(&self) -> u32 {
        self.inner.group
    }
    /// Label of the namespace it was read in.
    #[getter]
    fn netns(&self) -> &str {
        &self.inner.netns
    }
    /// VLAN id, for a VLAN.
    #[getter]
    fn vlan_id(&self) -> Option<u16> {
        match &self.inner.kind {
            LinkKind::Vlan { id, .. } => Some(*id),
            _ => None,
        }
    }
    /// VXLAN network identifier, for a VXLAN.
    #[getter]
    fn vni(&self) -> Option<u32> {
        match &self.inner.kind {
            LinkKind::Vxlan(v) => Some(v.vni),
            _ => None,
        }
    }
    /// The VLAN tag protocol ("802.1Q" or "802.1ad" as a `VlanProtocol`), for a VLAN.
    #[getter]
    fn vlan_protocol<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match &self.inner.kind {
            LinkKind::Vlan { protocol, .. } => Some(py_enum(
                py,
                "VlanProtocol",
                match protocol {
                    VlanProtocol::Ieee8021Ad => "802.1ad",
                    _ => "802.1Q",
                },
            )?),
            _ => None,
        })
    }
    /// The VLAN flags, for a VLAN.
    #[getter]
    fn vlan_flags(&self) -> Option<VlanFlags> {
        match &self.inner.kind {
            LinkKind::Vlan { flags, .. } => Some(VlanFlags { inner: *flags }),
            _ => None,
        }
    }
    /// The VLAN's ingress QoS map as (802.1p priority, packet priority) pairs, the entries
    /// not mapped to 0 ([] when none), for a VLAN.
    #[getter]
    fn vlan_ingress_qos(&self) -> Option<Vec<(u32, u32)>> {
        match &self.inner.kind {
            LinkKind::Vlan { qos, .. } => Some(qos.ingress.clone()),
            _ => None,
        }
    }
    /// The VLAN's egress QoS map as (packet priority, 802.1p priority) pairs, the entries not
    /// mapped to 0 ([] when none), for a VLAN.
    #[getter]
    fn vlan_egress_qos(&self) -> Option<Vec<(u32, u32)>> {
        match &self.inner.kind {
            LinkKind::Vlan { qos, .. } => Some(qos.egress.clone()),
            _ => None,
        }
    }
    /// The source MACs a source-mode macvlan or macvtap accepts ([] for other macvlans and
    /// macvtaps), None for other kinds.
    #[getter]
    fn source_macs(&self) -> Option<Vec<String>> {
        match &self.inner.kind {
            LinkKind::Macvlan { source_macs, .. } | LinkKind::Macvtap { source_macs, .. } => {
                Some(source_macs.iter().map(|m| m.to_string()).collect())
            }
            _ => None,
        }
    }
    /// Passthru without making the parent promiscuous (`nopromisc`), for a macvlan or
    /// macvtap; None for other kinds.
    #[getter]
    fn nopromisc(&self) -> Option<bool> {
        match &self.inner.kind {
            LinkKind::Macvlan { nopromisc, .. } | LinkKind::Macvtap { nopromisc, .. } => {
                Some(*nopromisc)
            }
            _ => None,
        }
    }
    /// The VXLAN settings as read back, for a VXLAN.
    #[getter]
    fn vxlan(&self) -> Option<VxlanInfo> {
        match &self.inner.kind {
            LinkKind::Vxlan(v) => Some(VxlanInfo { inner: v.clone() }),
            _ => None,
        }
    }
    /// Bridge VLAN filtering, for a bridge.
    #[getter]
    fn vlan_filtering(&self) -> Option<bool> {
        match &self.inner.kind {
            LinkKind::Bridge(b) => Some(b.vlan_filtering),
            _ => None,
        }
    }
    /// The mode: a `MacvlanMode` (macvlan, macvtap) or `IpvlanMode` (ipvlan); None otherwise.
    #[getter]
    fn mode<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match &self.inner.kind {
            LinkKind::Macvlan { mode, .. } | LinkKind::Macvtap { mode, .. } => {
                Some(py_enum(py, "MacvlanMode", mode.as_str())?)
            }
            LinkKind::Ipvlan { mode, .. } => Some(py_enum(py, "IpvlanMode", mode.as_str())?),
            _ => None,
        })
    }
    /// The ipvlan flag, for an ipvlan.
    #[getter]
    fn ipvlan_flag<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match &self.inner.kind {
            LinkKind::Ipvlan { flag, .. } => Some(py_enum(py, "IpvlanFlag", flag.as_str())?),
            _ => None,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<Link {} index={} kind={:?} up={}>",
            self.inner.name,
            self.inner.index,
            self.inner.kind.name(),
            self.inner.up
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

#[pymethods]
impl Address {
    /// Index of the link the address is on.
    #[getter]
    fn index(&self) -> u32 {
        self.inner.index
    }
    /// The address with its prefix, as an `ipaddress.IPv4Interface` / `IPv6Interface`.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_iface(py, self.inner.address)
    }
    /// Scope (`global`, `link`, `host`).
    #[getter]
    fn scope(&self) -> &str {
        self.inner.scope
    }
    /// IPv6 duplicate address detection still running.
    #[getter]
    fn tentative(&self) -> bool {
        self.inner.tentative
    }
    /// The label, if any.
    #[getter]
    fn label(&self) -> Option<&str> {
        self.inner.label.as_deref()
    }
    /// Added without duplicate address detection (`nodad`).
    #[getter]
    fn nodad(&self) -> bool {
        self.inner.nodad
    }
    /// Added without its prefix route (`noprefixroute`).
    #[getter]
    fn noprefixroute(&self) -> bool {
        self.inner.noprefixroute
    }
    /// Not the link's first address in its subnet (`secondary`; IPv4).
    #[getter]
    fn secondary(&self) -> bool {
        self.inner.secondary
    }
    /// Its preferred lifetime is over (`deprecated`).
    #[getter]
    fn deprecated(&self) -> bool {
        self.inner.deprecated
    }
    /// It has a finite lifetime, e.g. from DHCP or SLAAC (`dynamic`).
    #[getter]
    fn dynamic(&self) -> bool {
        self.inner.dynamic
    }
    /// The other end of a point-to-point address, if any.
    #[getter]
    fn peer<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.peer.map(|p| conv::py_ip(py, p)).transpose()
    }
    /// The broadcast address (IPv4), if set.
    #[getter]
    fn broadcast<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.broadcast.map(|b| conv::py_ip(py, b)).transpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Address {} index={}>",
            self.inner.address, self.inner.index
        )
    }
}

#[pymethods]
impl Route {
    /// A route to `destination` (a network or "10.1.0.0/16"), through `gateway` and/or out of
    /// `dev` (a link name or index), with optional preferred `source`, `metric`, `table`.
    #[new]
    #[pyo3(signature = (destination, *, gateway = None, dev = None, source = None, metric = None,
        table = 254, onlink = false, nexthops = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        destination: &Bound<'_, PyAny>,
        gateway: Option<&Bound<'_, PyAny>>,
        dev: Option<&Bound<'_, PyAny>>,
        source: Option<&Bound<'_, PyAny>>,
        metric: Option<u32>,
        table: u32,
        onlink: bool,
        nexthops: Option<Vec<Bound<'_, NextHop>>>,
    ) -> PyResult<Route> {
        let mut r = underlay::Route::new(conv::net(destination)?).table(table);
        if let Some(g) = conv::opt_ip(gateway)? {
            r = r.via(g);
        }
        if let Some(d) = dev {
            r = r.dev(conv::link_ref(d)?);
        }
        if let Some(s) = conv::opt_ip(source)? {
            r = r.source(s);
        }
        if let Some(m) = metric {
            r = r.metric(m);
        }
        if onlink {
            r = r.onlink();
        }
        for hop in nexthops.unwrap_or_default() {
            r = r.nexthop(hop.get().inner.clone());
        }
        r.validate().map_err(crate::errors::to_py)?;
        Ok(Route { inner: r })
    }

    /// The default route through `gateway` (IPv4 or IPv6 by the gateway's family).
    #[staticmethod]
    #[pyo3(signature = (gateway, *, dev = None))]
    fn default_via(gateway: &Bound<'_, PyAny>, dev: Option<&Bound<'_, PyAny>>) -> PyResult<Route> {
        let mut r = underlay::Route::default_via(conv::ip(gateway)?);
        if let Some(d) = dev {
            r = r.dev(conv::link_ref(d)?);
        }
        Ok(Route { inner: r })
    }

    /// Destination network (`ipaddress.IPv4Network` / `IPv6Network`).
    #[getter]
    fn destination<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        conv::py_network(py, self.inner.destination)
    }
    /// Gateway, if any.
    #[getter]
    fn gateway<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.gateway.map(|g| conv::py_ip(py, g)).transpose()
    }
    /// Output device: a name (as given) or an index (as read back), if any.
    #[getter]
    fn dev<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match &self.inner.dev {
            None => None,
            Some(underlay::LinkRef::Name(n)) => Some(n.into_pyobject(py)?.into_any()),
            Some(underlay::LinkRef::Index(i)) => Some(i.into_pyobject(py)?.into_any()),
        })
    }
    /// Preferred source address, if any.
    #[getter]
    fn source<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.source.map(|g| conv::py_ip(py, g)).transpose()
    }
    /// Metric (priority), if set.
    #[getter]
    fn metric(&self) -> Option<u32> {
        self.inner.metric
    }
    /// Routing table (254 = main).
    #[getter]
    fn table(&self) -> u32 {
        self.inner.table
    }
    /// The gateway is on the link even if no address's subnet says so (`onlink`).
    #[getter]
    fn onlink(&self) -> bool {
        self.inner.onlink
    }
    /// A multipath route's next hops (empty for a route with one gateway/device).
    #[getter]
    fn nexthops(&self) -> Vec<NextHop> {
        self.inner
            .nexthops
            .iter()
            .map(|h| NextHop { inner: h.clone() })
            .collect()
    }
    /// Scope as read back (`universe`, `link`, `host`), if known.
    #[getter]
    fn scope(&self) -> Option<&'static str> {
        self.inner.scope.map(|s| match s {
            RouteScopeKind::Universe => "universe",
            RouteScopeKind::Link => "link",
            RouteScopeKind::Host => "host",
        })
    }

    fn __repr__(&self) -> String {
        format!("<Route {}>", self.inner)
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Route>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Handle>()?;
    m.add_class::<Link>()?;
    m.add_class::<Address>()?;
    m.add_class::<Route>()?;
    m.add_class::<NextHop>()?;
    m.add_class::<VlanFlags>()?;
    m.add_class::<VxlanInfo>()?;
    Ok(())
}

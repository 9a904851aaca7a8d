//! The link kinds: `Vlan`, `Macvlan`, `Ipvlan`, `Vxlan`, `Veth`, `Bridge`, `Dummy`. Each is a
//! class with a `create` static method taking keyword arguments; it returns the `Link` read
//! back from the namespace the link ends up in.

use pyo3::prelude::*;
use underlay::{
    IpvlanFlag, IpvlanMode, LinkRef, MacAddr, MacvlanMode, VlanFlags, VlanProtocol, VlanQosMaps,
};

use crate::attach::{AttachArgs, Attached};
use crate::block;
use crate::conv;
use crate::errors::{invalid, to_py};
use crate::handle::{Handle, Link, Route};
use crate::netns::Netns;

/// The settings every link kind takes (`LinkBuilder`'s common methods), owned.
struct Common {
    name: Option<String>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    up: bool,
    group: Option<u32>,
    alias: Option<String>,
    master: Option<LinkRef>,
    netns: Option<underlay::Netns>,
    target: Option<underlay::Handle>,
}

impl Common {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: Option<String>,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Common> {
        let object = match &name {
            Some(n) => format!("new link `{}`", underlay::Error::show_input(n)),
            None => "the new link".to_string(),
        };
        Ok(Common {
            mtu: conv::opt_mtu(mtu, &object)?,
            name,
            mac: mac.map(conv::mac).transpose()?,
            up,
            group,
            alias,
            master: master.map(conv::link_ref).transpose()?,
            netns: netns.map(|n| n.inner.clone()),
            target: target.map(|t| t.inner.clone()),
        })
    }
}

/// Applies `Common` to a builder (a macro: the builder's trait bound is sealed in the core).
macro_rules! apply {
    ($b:expr, $c:expr) => {{
        let c = $c;
        let mut b = $b;
        if let Some(n) = c.name {
            b = b.name(n);
        }
        if let Some(m) = c.mtu {
            b = b.mtu(m);
        }
        if let Some(m) = c.mac {
            b = b.mac(m);
        }
        if c.up {
            b = b.up();
        }
        if let Some(g) = c.group {
            b = b.group(g);
        }
        if let Some(a) = c.alias {
            b = b.alias(a);
        }
        if let Some(m) = c.master {
            b = b.master(m);
        }
        if let Some(ns) = &c.netns {
            b = b.netns(ns);
        }
        if let Some(t) = &c.target {
            b = b.target(t);
        }
        b
    }};
}

/// The `#[pymethods]` of a link kind the core can move into a namespace: `$class`'s own methods
/// and its `attach_to_netns` (`$what` names the link in the docstring). A macro because
/// `#[pymethods]` only sees the methods written in its own `impl` block.
macro_rules! pymethods_with_attach {
    ($class:ident, $what:literal; $($methods:tt)*) => {
        #[pymethods]
        impl $class {
            $($methods)*

            #[doc = concat!(
                "Moves an existing ",
                $what,
                " `link` of `handle`'s namespace into `netns` and configures"
            )]
            /// it there: renamed to `name`, `mtu`, `mac`, its `addresses` added (`nodad` skips IPv6
            /// duplicate address detection), up, a default route through each of `gateways` (one per
            /// IP version) and the extra `routes` (their `dev` defaults to the link). `target`: a
            /// handle already open in `netns`. All or nothing: if a step after the move fails, the
            /// link goes back under its old name and state and the error says what failed
            /// (`MultipleErrors` if the undo failed too). Returns an `Attached`.
            #[staticmethod]
            #[pyo3(signature = (handle, link, netns, *, name = None, addresses = Vec::new(),
                gateways = Vec::new(), routes = Vec::new(), mtu = None, mac = None, nodad = false,
                target = None))]
            #[allow(clippy::too_many_arguments)]
            fn attach_to_netns(
                py: Python<'_>,
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
            ) -> PyResult<Attached> {
                AttachArgs::new(
                    handle, link, netns, name, addresses, gateways, routes, mtu, mac, nodad, target,
                )?
                .run(py, underlay::$class::attach_to_netns)
            }
        }
    };
}

/// QoS map pairs from Python: each number an int in 0..2**32 (the 0..7 priorities are checked
/// by the library, with the same message as in Rust and C).
fn qos_maps(
    ingress: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>,
    egress: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>,
) -> PyResult<VlanQosMaps> {
    let pairs = |dir: &str, v: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>| {
        v.unwrap_or_default()
            .iter()
            .map(|(f, t)| {
                let num = |x: &Bound<'_, PyAny>| -> PyResult<u32> {
                    if x.is_instance_of::<pyo3::types::PyBool>() {
                        return Err(invalid(format!(
                            "{dir} QoS map: {x} is not a priority number"
                        )));
                    }
                    let n: i128 = x.extract().map_err(|_| {
                        invalid(format!("{dir} QoS map: {x} is not a priority number"))
                    })?;
                    u32::try_from(n).map_err(|_| {
                        invalid(format!(
                            "{dir} QoS map entry {f}:{t}: {n} is out of range 0..{}",
                            u32::MAX
                        ))
                    })
                };
                Ok((num(f)?, num(t)?))
            })
            .collect::<PyResult<Vec<_>>>()
    };
    Ok(VlanQosMaps {
        ingress: pairs("ingress", ingress)?,
        egress: pairs("egress", egress)?,
    })
}

fn macvlan_mode(s: &str) -> PyResult<MacvlanMode> {
    s.parse().map_err(to_py)
}

fn ipvlan_mode(s: &str) -> PyResult<IpvlanMode> {
    s.parse().map_err(to_py)
}

fn ipvlan_flag(s: &str) -> PyResult<IpvlanFlag> {
    s.parse().map_err(to_py)
}

/// An 802.1Q (or 802.1ad) VLAN sub-interface. Needs the kernel's 8021q module: without it,
/// `create` raises `KernelUnsupported` saying `modprobe 8021q`.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Vlan;

pymethods_with_attach! { Vlan, "VLAN link";
    /// Creates VLAN `vlan_id` (1..4094) on `parent`, named `<parent>.<id>` unless `name` is
    /// given. `protocol` is "802.1Q" (default) or "802.1ad". The VLAN flags: `reorder_hdr`
    /// (default on, the kernel's default), `gvrp`, `mvrp`, `loose_binding` (read back as
    /// `Link.vlan_flags`). `ingress_qos` maps the tag's 802.1p priority (0..7) to a packet
    /// priority, `egress_qos` a packet priority to the tag's (0..7), as (from, to) pairs
    /// (read back as `Link.vlan_ingress_qos`/`vlan_egress_qos`). Common keywords: `name`,
    /// `mtu`, `mac`, `up`, `group`, `alias`, `master`, `netns` (create it inside that
    /// namespace), `target` (a handle in the namespace it ends up in, reused for the readback).
    #[staticmethod]
    #[pyo3(signature = (handle, parent, vlan_id, *, protocol = "802.1Q", reorder_hdr = true,
        gvrp = false, mvrp = false, loose_binding = false, ingress_qos = None, egress_qos = None,
        name = None, mtu = None,
        mac = None, up = false, group = None, alias = None, master = None, netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        parent: &Bound<'_, PyAny>,
        vlan_id: &Bound<'_, PyAny>,
        protocol: &str,
        reorder_hdr: bool,
        gvrp: bool,
        mvrp: bool,
        loose_binding: bool,
        ingress_qos: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>,
        egress_qos: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>,
        name: Option<String>,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(name, mtu, mac, up, group, alias, master, netns, target)?;
        let protocol: VlanProtocol = protocol.parse().map_err(to_py)?;
        let (h, parent, id) = (
            handle.inner.clone(),
            conv::link_ref(parent)?,
            conv::vlan_id(vlan_id)?,
        );
        let qos = qos_maps(ingress_qos, egress_qos)?;
        let inner = block(py, async move {
            let flags = VlanFlags {
                reorder_hdr,
                gvrp,
                mvrp,
                loose_binding,
            };
            apply!(
                underlay::Vlan::create(&h, parent, id)
                    .protocol(protocol)
                    .flags(flags)
                    .qos(qos),
                c
            )
            .execute()
            .await
        })?;
        Ok(Link { inner })
    }

    /// Adds or changes entries of the QoS maps of the existing VLAN `link` (entries not given
    /// stay; one mapped to 0 is cleared), as (from, to) pairs like `create`'s. A link that is
    /// not a VLAN raises `InvalidArgument`.
    #[staticmethod]
    #[pyo3(signature = (handle, link, *, ingress_qos = None, egress_qos = None))]
    fn set_qos(
        py: Python<'_>,
        handle: &Handle,
        link: &Bound<'_, PyAny>,
        ingress_qos: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>,
        egress_qos: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>,
    ) -> PyResult<()> {
        let (h, link) = (handle.inner.clone(), conv::link_ref(link)?);
        let qos = qos_maps(ingress_qos, egress_qos)?;
        block(py, async move { underlay::Vlan::set_qos(&h, link, &qos).await })
    }

}

/// A macvlan child of a parent NIC: its own MAC, in one of the modes of `MacvlanMode`
/// (bridge is the common one and Docker's only). `tap=True` makes a macvtap (for a VM).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Macvlan;

pymethods_with_attach! { Macvlan, "macvlan";
    /// The most `source_macs` one create takes (more fail with `InvalidArgument`).
    #[classattr]
    const MAX_SOURCE_MACS: usize = underlay::Macvlan::MAX_SOURCE_MACS;

    /// Creates macvlan `name` on `parent` in `mode` (a `MacvlanMode` or its value string).
    /// `tap`: a macvtap; `source_macs`: the MACs accepted in source mode; `nopromisc`: do not
    /// put the parent in promiscuous mode (passthru). Common keywords as `Vlan.create`.
    #[staticmethod]
    #[pyo3(signature = (handle, name, parent, mode = "bridge", *, tap = false, source_macs = None,
        nopromisc = false, mtu = None, mac = None, up = false, group = None, alias = None,
        master = None, netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        name: String,
        parent: &Bound<'_, PyAny>,
        mode: &str,
        tap: bool,
        source_macs: Option<Vec<String>>,
        nopromisc: bool,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(None, mtu, mac, up, group, alias, master, netns, target)?;
        let mode = macvlan_mode(mode)?;
        let sources = source_macs
            .unwrap_or_default()
            .iter()
            .map(|m| conv::mac(m))
            .collect::<PyResult<Vec<_>>>()?;
        let (h, parent) = (handle.inner.clone(), conv::link_ref(parent)?);
        let inner = block(py, async move {
            let mut b = if tap {
                underlay::Macvlan::create_tap(&h, &name, parent, mode)
            } else {
                underlay::Macvlan::create(&h, &name, parent, mode)
            };
            if !sources.is_empty() {
                b = b.source_macs(sources);
            }
            if nopromisc {
                b = b.nopromisc();
            }
            apply!(b, c).execute().await
        })?;
        Ok(Link { inner })
    }

}

/// An ipvlan child: shares the parent's MAC. The mode (`IpvlanMode`) belongs to the parent:
/// the kernel switches every sibling when one is made in another mode.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Ipvlan;

pymethods_with_attach! { Ipvlan, "ipvlan";
    /// Creates ipvlan `name` on `parent` in `mode` (`IpvlanMode`, default l2) with `flag`
    /// (`IpvlanFlag`, default bridge). Common keywords as `Vlan.create`.
    #[staticmethod]
    #[pyo3(signature = (handle, name, parent, mode = "l2", *, flag = "bridge", mtu = None,
        mac = None, up = false, group = None, alias = None, master = None, netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        name: String,
        parent: &Bound<'_, PyAny>,
        mode: &str,
        flag: &str,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(None, mtu, mac, up, group, alias, master, netns, target)?;
        let (mode, flag) = (ipvlan_mode(mode)?, ipvlan_flag(flag)?);
        let (h, parent) = (handle.inner.clone(), conv::link_ref(parent)?);
        let inner = block(py, async move {
            apply!(
                underlay::Ipvlan::create(&h, &name, parent, mode).flag(flag),
                c
            )
            .execute()
            .await
        })?;
        Ok(Link { inner })
    }

}

/// A VXLAN tunnel endpoint (24-bit VNI, UDP port 4789 by default).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Vxlan;

#[pymethods]
impl Vxlan {
    /// Creates VXLAN `name` with network identifier `vni`; `local` / `remote` VTEP addresses,
    /// `port`, `device` (the underlay link), `learning`, `ttl` (unset: `auto`, the route's
    /// hop limit), `ttl_inherit` (copy the inner packets' TTL). Common keywords as
    /// `Vlan.create`.
    #[staticmethod]
    #[pyo3(signature = (handle, name, vni, *, local = None, remote = None, port = 4789,
        device = None, learning = true, ttl = None, ttl_inherit = false, mtu = None, mac = None,
        up = false,
        group = None, alias = None, master = None, netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        name: String,
        vni: u32,
        local: Option<&Bound<'_, PyAny>>,
        remote: Option<&Bound<'_, PyAny>>,
        port: u16,
        device: Option<&Bound<'_, PyAny>>,
        learning: bool,
        ttl: Option<u8>,
        ttl_inherit: bool,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(None, mtu, mac, up, group, alias, master, netns, target)?;
        let (local, remote) = (conv::opt_ip(local)?, conv::opt_ip(remote)?);
        let device = device.map(conv::link_ref).transpose()?;
        let h = handle.inner.clone();
        let inner = block(py, async move {
            let mut b = underlay::Vxlan::create(&h, &name, vni)
                .port(port)
                .learning(learning);
            if let Some(ip) = local {
                b = b.local(ip);
            }
            if let Some(ip) = remote {
                b = b.remote(ip);
            }
            if let Some(d) = device {
                b = b.device(d);
            }
            if let Some(t) = ttl {
                b = b.ttl(t);
            }
            if ttl_inherit {
                b = b.ttl_inherit();
            }
            apply!(b, c).execute().await
        })?;
        Ok(Link { inner })
    }
}

/// A veth pair: a virtual cable. `peer_netns` puts the other end in another namespace.
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Veth;

pymethods_with_attach! { Veth, "veth end";
    /// Creates the pair `name` / `peer`; `peer_netns` creates the peer inside that namespace,
    /// `peer_up` brings it up, `peer_mac` sets its MAC. Returns the `name` end. Common
    /// keywords as `Vlan.create`.
    #[staticmethod]
    #[pyo3(signature = (handle, name, peer, *, peer_netns = None, peer_up = false, peer_mac = None,
        mtu = None, mac = None, up = false, group = None, alias = None, master = None,
        netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        name: String,
        peer: String,
        peer_netns: Option<&Netns>,
        peer_up: bool,
        peer_mac: Option<&str>,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(None, mtu, mac, up, group, alias, master, netns, target)?;
        let peer_mac = peer_mac.map(conv::mac).transpose()?;
        let peer_netns = peer_netns.map(|n| n.inner.clone());
        let h = handle.inner.clone();
        let inner = block(py, async move {
            let mut b = underlay::Veth::create(&h, &name, &peer);
            if let Some(ns) = &peer_netns {
                b = b.peer_netns(ns);
            }
            if peer_up {
                b = b.peer_up();
            }
            if let Some(m) = peer_mac {
                b = b.peer_mac(m);
            }
            apply!(b, c).execute().await
        })?;
        Ok(Link { inner })
    }

}

/// A Linux bridge (the switch in test rigs; the NAT alternative to the underlay).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Bridge;

#[pymethods]
impl Bridge {
    /// Creates bridge `name`; `vlan_filtering` is sent only when given (kernels without
    /// bridge VLAN filtering refuse the attribute). Common keywords as `Vlan.create`.
    #[staticmethod]
    #[pyo3(signature = (handle, name, *, vlan_filtering = None, mtu = None, mac = None, up = false,
        group = None, alias = None, master = None, netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        name: String,
        vlan_filtering: Option<bool>,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(None, mtu, mac, up, group, alias, master, netns, target)?;
        let h = handle.inner.clone();
        let inner = block(py, async move {
            let mut b = underlay::Bridge::create(&h, &name);
            if let Some(v) = vlan_filtering {
                b = b.vlan_filtering(v);
            }
            apply!(b, c).execute().await
        })?;
        Ok(Link { inner })
    }
}

/// A dummy link (a parent that goes nowhere; needs the kernel's dummy module).
#[pyclass(module = "underlay", frozen)]
pub(crate) struct Dummy;

#[pymethods]
impl Dummy {
    /// Creates dummy link `name`. Common keywords as `Vlan.create`.
    #[staticmethod]
    #[pyo3(signature = (handle, name, *, mtu = None, mac = None, up = false, group = None,
        alias = None, master = None, netns = None, target = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        handle: &Handle,
        name: String,
        mtu: Option<&Bound<'_, PyAny>>,
        mac: Option<&str>,
        up: bool,
        group: Option<u32>,
        alias: Option<String>,
        master: Option<&Bound<'_, PyAny>>,
        netns: Option<&Netns>,
        target: Option<&Handle>,
    ) -> PyResult<Link> {
        let c = Common::new(None, mtu, mac, up, group, alias, master, netns, target)?;
        let h = handle.inner.clone();
        let inner = block(py, async move {
            apply!(underlay::Dummy::create(&h, &name), c)
                .execute()
                .await
        })?;
        Ok(Link { inner })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Vlan>()?;
    m.add_class::<Macvlan>()?;
    m.add_class::<Ipvlan>()?;
    m.add_class::<Vxlan>()?;
    m.add_class::<Veth>()?;
    m.add_class::<Bridge>()?;
    m.add_class::<Dummy>()?;
    Ok(())
}

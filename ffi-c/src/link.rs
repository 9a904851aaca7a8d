//! Links: read back (get, list), change (up/down, promisc, MTU, MAC, name, master, namespace),
//! delete, create (one builder for every kind), attach (move into a namespace and configure).

use std::ffi::CString;
use std::os::raw::c_char;

use underlay::{
    Bridge, Dummy, Ipvlan, IpvlanFlag, IpvlanMode, Link, LinkBuilder, LinkKind, Macvlan,
    MacvlanMode, Veth, Vlan, VlanFlags, VlanId, VlanProtocol, Vxlan,
};

use crate::handle::underlay_handle;
use crate::netns::underlay_netns;
use crate::result::underlay_result;
use crate::route::underlay_route;
use crate::support::{
    block, cstring, free, guard, guard_value, invalid, ip, m, mac, net, opt_ptr, out, r, s, R,
};

/// A link as read back from the kernel: from `underlay_handle_link_get` or a builder (free with
/// `underlay_link_free`), or borrowed from an `underlay_link_list`.
pub struct underlay_link {
    pub(crate) inner: Link,
    name: CString,
    kind: CString,
    mac: Option<CString>,
    alias: Option<CString>,
    mode: Option<CString>,
    netns: CString,
    source_macs: Vec<CString>,
    oper_state: CString,
    /// VLAN protocol, ipvlan flag.
    vlan_protocol: Option<CString>,
    ipvlan_flag: Option<CString>,
    vxlan_local: Option<CString>,
    vxlan_remote: Option<CString>,
}

impl underlay_link {
    pub(crate) fn new(inner: Link) -> underlay_link {
        let mode = match &inner.kind {
            LinkKind::Macvlan { mode, .. } | LinkKind::Macvtap { mode, .. } => Some(mode.as_str()),
            LinkKind::Ipvlan { mode, .. } => Some(mode.as_str()),
            _ => None,
        };
        underlay_link {
            name: cstring(inner.name.clone()),
            kind: cstring(inner.kind.name()),
            mac: inner.mac.map(|m| cstring(m.to_string())),
            alias: inner.alias.clone().map(cstring),
            mode: mode.map(cstring),
            netns: cstring(inner.netns.clone()),
            source_macs: match &inner.kind {
                LinkKind::Macvlan { source_macs, .. } | LinkKind::Macvtap { source_macs, .. } => {
                    source_macs.iter().map(|m| cstring(m.to_string())).collect()
                }
                _ => Vec::new(),
            },
            oper_state: cstring(inner.oper_state.clone()),
            vlan_protocol: match &inner.kind {
                LinkKind::Vlan { protocol, .. } => Some(cstring(protocol.as_str())),
                _ => None,
            },
            ipvlan_flag: match &inner.kind {
                LinkKind::Ipvlan { flag, .. } => Some(cstring(flag.as_str())),
                _ => None,
            },
            vxlan_local: match &inner.kind {
                LinkKind::Vxlan(v) => v.local.map(|a| cstring(a.to_string())),
                _ => None,
            },
            vxlan_remote: match &inner.kind {
                LinkKind::Vxlan(v) => v.remote.map(|a| cstring(a.to_string())),
                _ => None,
            },
            inner,
        }
    }
}

/// A list of links (owned; free with `underlay_link_list_free`).
pub struct underlay_link_list {
    pub(crate) items: Vec<underlay_link>,
}

/// The number of links in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_list_count(list: *const underlay_link_list) -> usize {
    crate::support::guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// Item `index` of `list`, borrowed: valid while the list lives, never freed alone. NULL when
/// `list` is NULL or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_link_list_get(
    list: *const underlay_link_list,
    index: usize,
) -> *const underlay_link {
    crate::support::guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_link)
    })
}

/// Frees `list` and every item in it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_link_list_free(list: *mut underlay_link_list) {
    crate::support::guard_value((), || crate::support::free(list))
}

/// Frees a link made by a get or a builder (never one borrowed from a list). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_link_free(link: *mut underlay_link) {
    guard_value((), || free(link))
}

/// The interface name; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_link_name(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| l.name.as_ptr())
    })
}
/// The interface index (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_index(link: *const underlay_link) -> u32 {
    guard_value(0, || r(link, "link").map_or(0, |l| l.inner.index))
}
/// The kernel's kind name ("vlan", "macvlan", "macvtap", "ipvlan", "vxlan", "veth",
/// "bridge", "dummy", ...; "" for a physical device); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_link_kind(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| l.kind.as_ptr())
    })
}
/// The MAC ("02:42:ac:16:10:0a"), NULL if the link has none; borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_mac(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.mac))
    })
}
/// The MTU (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_mtu(link: *const underlay_link) -> u32 {
    guard_value(0, || r(link, "link").map_or(0, |l| l.inner.mtu))
}
/// Administratively up.
#[no_mangle]
pub extern "C" fn underlay_link_is_up(link: *const underlay_link) -> bool {
    guard_value(false, || r(link, "link").is_ok_and(|l| l.inner.up))
}
/// Running (carrier).
#[no_mangle]
pub extern "C" fn underlay_link_is_running(link: *const underlay_link) -> bool {
    guard_value(false, || r(link, "link").is_ok_and(|l| l.inner.running))
}
/// Promiscuous mode on.
#[no_mangle]
pub extern "C" fn underlay_link_is_promisc(link: *const underlay_link) -> bool {
    guard_value(false, || r(link, "link").is_ok_and(|l| l.inner.promisc))
}
/// The parent's index (VLAN, macvlan, ipvlan), 0 if none.
#[no_mangle]
pub extern "C" fn underlay_link_parent_index(link: *const underlay_link) -> u32 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| l.inner.parent.unwrap_or(0))
    })
}
/// The master's index (bridge port), 0 if none.
#[no_mangle]
pub extern "C" fn underlay_link_master_index(link: *const underlay_link) -> u32 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| l.inner.master.unwrap_or(0))
    })
}
/// The alias (ifalias), NULL if none; borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_alias(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.alias))
    })
}
/// The link group.
#[no_mangle]
pub extern "C" fn underlay_link_group(link: *const underlay_link) -> u32 {
    guard_value(0, || r(link, "link").map_or(0, |l| l.inner.group))
}
/// The label of the namespace it was read in; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_link_netns(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| l.netns.as_ptr())
    })
}
/// The VLAN id of a VLAN link, 0 for other kinds.
#[no_mangle]
pub extern "C" fn underlay_link_vlan_id(link: *const underlay_link) -> u16 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| match &l.inner.kind {
            LinkKind::Vlan { id, .. } => *id,
            _ => 0,
        })
    })
}
/// The VNI of a VXLAN link, 0 for other kinds.
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_vni(link: *const underlay_link) -> u32 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| match &l.inner.kind {
            LinkKind::Vxlan(v) => v.vni,
            _ => 0,
        })
    })
}

/// The TTL of a VXLAN's outer packets (0: `auto`, the route's hop limit, or inherited, see
/// `underlay_link_vxlan_ttl_inherit`; 0 for other kinds and for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_ttl(link: *const underlay_link) -> u8 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| match &l.inner.kind {
            LinkKind::Vxlan(v) => v.ttl,
            _ => 0,
        })
    })
}

/// Whether a VXLAN copies its outer TTL from the inner packets (`ttl inherit`; false for
/// other kinds and for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_ttl_inherit(link: *const underlay_link) -> bool {
    guard_value(false, || {
        r(link, "link").is_ok_and(|l| matches!(&l.inner.kind, LinkKind::Vxlan(v) if v.ttl_inherit))
    })
}

/// The mode of a macvlan, macvtap or ipvlan ("bridge", "l2", ...), NULL for other kinds;
/// borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_mode(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.mode))
    })
}

/// The id, in the link's namespace, of the namespace its parent lives in, when that is
/// another one (a macvlan made directly inside a container); -1 when the parent is in the
/// link's own namespace, when it has none, and for NULL.
#[no_mangle]
pub extern "C" fn underlay_link_parent_netns_id(link: *const underlay_link) -> i32 {
    guard_value(-1, || {
        r(link, "link").map_or(-1, |l| l.inner.parent_netns_id.unwrap_or(-1))
    })
}

/// The number of source MACs a source-mode macvlan or macvtap accepts (0 for other links and
/// for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_source_mac_count(link: *const underlay_link) -> usize {
    guard_value(0, || r(link, "link").map_or(0, |l| l.source_macs.len()))
}

/// Source MAC `index` ("02:00:00:00:aa:01"), NULL when out of range or for NULL; borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_source_mac(
    link: *const underlay_link,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link")
            .ok()
            .and_then(|l| l.source_macs.get(index))
            .map_or(std::ptr::null(), |m| m.as_ptr())
    })
}

/// Whether a passthru macvlan or macvtap leaves its parent's promiscuous mode alone
/// (`nopromisc`; false for other links and for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_nopromisc(link: *const underlay_link) -> bool {
    guard_value(false, || {
        r(link, "link").is_ok_and(|l| {
            matches!(
                l.inner.kind,
                LinkKind::Macvlan {
                    nopromisc: true,
                    ..
                } | LinkKind::Macvtap {
                    nopromisc: true,
                    ..
                }
            )
        })
    })
}

/// The operational state ("up", "down", "lowerlayerdown", "unknown", ...); borrowed. NULL for
/// NULL.
#[no_mangle]
pub extern "C" fn underlay_link_oper_state(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| l.oper_state.as_ptr())
    })
}

/// The tag protocol of a VLAN ("802.1Q" or "802.1ad"), NULL for other kinds; borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_vlan_protocol(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.vlan_protocol))
    })
}

/// The flags of a VLAN, written to `flags_out` (false when `link` is not a VLAN).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct underlay_vlan_flags {
    /// Reorder the Ethernet header (the kernel's default: on).
    pub reorder_hdr: bool,
    /// Register the VLAN with GVRP.
    pub gvrp: bool,
    /// Register the VLAN with MVRP.
    pub mvrp: bool,
    /// Do not follow the parent's operational state.
    pub loose_binding: bool,
}

/// The flags of a VLAN link. `UNDERLAY_RESULT_INVALID_ARGUMENT` when `link` is another kind.
#[no_mangle]
pub extern "C" fn underlay_link_vlan_flags(
    link: *const underlay_link,
    flags_out: *mut underlay_vlan_flags,
) -> underlay_result {
    guard(|| {
        let l = r(link, "link")?;
        let o = out(flags_out, "flags_out")?;
        match &l.inner.kind {
            LinkKind::Vlan { flags, .. } => {
                o.set(underlay_vlan_flags {
                    reorder_hdr: flags.reorder_hdr,
                    gvrp: flags.gvrp,
                    mvrp: flags.mvrp,
                    loose_binding: flags.loose_binding,
                });
                Ok(())
            }
            _ => Err(invalid(format!(
                "link `{}` is a {} link, not a VLAN: it has no VLAN flags",
                l.inner.name,
                kind_word(&l.inner.kind)
            ))),
        }
    })
}

fn kind_word(k: &LinkKind) -> &str {
    match k.name() {
        "" => "physical",
        n => n,
    }
}

/// The flag of an ipvlan ("bridge", "private", "vepa"), NULL for other kinds; borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_ipvlan_flag(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.ipvlan_flag))
    })
}

/// The local VTEP address of a VXLAN ("192.0.2.1"), NULL when unset and for other kinds;
/// borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_local(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.vxlan_local))
    })
}

/// The remote VTEP (unicast) or group (multicast) address of a VXLAN, NULL when unset and for
/// other kinds; borrowed.
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_remote(link: *const underlay_link) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(link, "link").map_or(std::ptr::null(), |l| opt_ptr(&l.vxlan_remote))
    })
}

/// The UDP destination port of a VXLAN (0 for other kinds and for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_port(link: *const underlay_link) -> u16 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| match &l.inner.kind {
            LinkKind::Vxlan(v) => v.port,
            _ => 0,
        })
    })
}

/// The index of a VXLAN's underlay device, 0 when it has none, for other kinds and for NULL.
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_device_index(link: *const underlay_link) -> u32 {
    guard_value(0, || {
        r(link, "link").map_or(0, |l| match &l.inner.kind {
            LinkKind::Vxlan(v) => v.link.unwrap_or(0),
            _ => 0,
        })
    })
}

/// Whether a VXLAN learns MACs (false for other kinds and for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_vxlan_learning(link: *const underlay_link) -> bool {
    guard_value(false, || {
        r(link, "link").is_ok_and(|l| matches!(&l.inner.kind, LinkKind::Vxlan(v) if v.learning))
    })
}

/// Whether a bridge filters by VLAN (false for other kinds and for NULL).
#[no_mangle]
pub extern "C" fn underlay_link_bridge_vlan_filtering(link: *const underlay_link) -> bool {
    guard_value(false, || {
        r(link, "link")
            .is_ok_and(|l| matches!(&l.inner.kind, LinkKind::Bridge(b) if b.vlan_filtering))
    })
}

/// Reads link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_get(
    handle: *const underlay_handle,
    name: *const c_char,
    link_out: *mut *mut underlay_link,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let n = s(name, "name")?;
        let o = out(link_out, "link_out")?;
        o.set_box(underlay_link::new(block(h.inner.link(n))?));
        Ok(())
    })
}

/// Reads the link with interface index `index`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_get_by_index(
    handle: *const underlay_handle,
    index: u32,
    link_out: *mut *mut underlay_link,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let o = out(link_out, "link_out")?;
        o.set_box(underlay_link::new(block(h.inner.link(index))?));
        Ok(())
    })
}

/// Every link in the handle's namespace.
#[no_mangle]
pub extern "C" fn underlay_handle_link_list(
    handle: *const underlay_handle,
    list_out: *mut *mut underlay_link_list,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let o = out(list_out, "list_out")?;
        let links = block(h.inner.links())?;
        o.set_box(underlay_link_list {
            items: links.into_iter().map(underlay_link::new).collect(),
        });
        Ok(())
    })
}

/// Deletes link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_delete(
    handle: *const underlay_handle,
    name: *const c_char,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        block(h.inner.delete_link(s(name, "name")?))
    })
}

fn set_link(
    handle: *const underlay_handle,
    name: *const c_char,
    f: impl FnOnce(underlay::LinkSet) -> R<underlay::LinkSet>,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let n = s(name, "name")?;
        let set = f(h.inner.set_link(n))?;
        block(set.execute())
    })
}

/// Sets link `name` administratively up (`up` true) or down.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_up(
    handle: *const underlay_handle,
    name: *const c_char,
    up: bool,
) -> underlay_result {
    set_link(handle, name, |x| Ok(if up { x.up() } else { x.down() }))
}

/// Turns promiscuous mode on or off on link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_promisc(
    handle: *const underlay_handle,
    name: *const c_char,
    on: bool,
) -> underlay_result {
    set_link(handle, name, |x| Ok(x.promisc(on)))
}

/// Sets the MTU of link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_mtu(
    handle: *const underlay_handle,
    name: *const c_char,
    mtu: u32,
) -> underlay_result {
    set_link(handle, name, |x| Ok(x.mtu(mtu)))
}

/// Sets the MAC ("02:42:ac:16:10:0a") of link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_mac(
    handle: *const underlay_handle,
    name: *const c_char,
    mac_address: *const c_char,
) -> underlay_result {
    set_link(
        handle,
        name,
        |x| Ok(x.mac(mac(mac_address, "mac_address")?)),
    )
}

/// Renames link `name` to `new_name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_name(
    handle: *const underlay_handle,
    name: *const c_char,
    new_name: *const c_char,
) -> underlay_result {
    set_link(handle, name, |x| Ok(x.name(s(new_name, "new_name")?)))
}

/// Sets the alias (ifalias) of link `name`; "" clears it.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_alias(
    handle: *const underlay_handle,
    name: *const c_char,
    alias: *const c_char,
) -> underlay_result {
    set_link(handle, name, |x| Ok(x.alias(s(alias, "alias")?)))
}

/// Sets the link group of link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_group(
    handle: *const underlay_handle,
    name: *const c_char,
    group: u32,
) -> underlay_result {
    set_link(handle, name, |x| Ok(x.group(group)))
}

/// Deletes every link in link group `group` (a bulk delete in one request).
#[no_mangle]
pub extern "C" fn underlay_handle_link_delete_group(
    handle: *const underlay_handle,
    group: u32,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        block(h.inner.delete_link_group(group))
    })
}

/// The index of link `name`.
#[no_mangle]
pub extern "C" fn underlay_handle_link_index(
    handle: *const underlay_handle,
    name: *const c_char,
    index_out: *mut u32,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let n = s(name, "name")?;
        let o = out(index_out, "index_out")?;
        o.set(block(h.inner.link_index(n))?);
        Ok(())
    })
}

/// Makes link `name` a port of `master` (a bridge's name), or leaves its master when `master`
/// is NULL.
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_master(
    handle: *const underlay_handle,
    name: *const c_char,
    master: *const c_char,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let n = s(name, "name")?;
        let set = match crate::support::opt_s(master, "master")? {
            Some(mname) => {
                let idx = block(h.inner.link_index(mname))?;
                h.inner.set_link(n).master(idx)
            }
            None => h.inner.set_link(n).nomaster(),
        };
        block(set.execute())
    })
}

/// Moves link `name` into `netns` (nothing else: `underlay_attach_*` also configures it).
#[no_mangle]
pub extern "C" fn underlay_handle_link_set_netns(
    handle: *const underlay_handle,
    name: *const c_char,
    netns: *const underlay_netns,
) -> underlay_result {
    set_link(handle, name, |x| Ok(x.netns(&r(netns, "netns")?.inner)))
}

pub(crate) enum AnyBuilder {
    Vlan(LinkBuilder<Vlan>),
    Macvlan(LinkBuilder<Macvlan>),
    Ipvlan(LinkBuilder<Ipvlan>),
    Vxlan(LinkBuilder<Vxlan>),
    Veth(LinkBuilder<Veth>),
    Bridge(LinkBuilder<Bridge>),
    Dummy(LinkBuilder<Dummy>),
}

/// Applies a builder method every kind has.
macro_rules! each {
    ($b:expr, |$x:ident| $e:expr) => {
        match $b {
            AnyBuilder::Vlan($x) => AnyBuilder::Vlan($e),
            AnyBuilder::Macvlan($x) => AnyBuilder::Macvlan($e),
            AnyBuilder::Ipvlan($x) => AnyBuilder::Ipvlan($e),
            AnyBuilder::Vxlan($x) => AnyBuilder::Vxlan($e),
            AnyBuilder::Veth($x) => AnyBuilder::Veth($e),
            AnyBuilder::Bridge($x) => AnyBuilder::Bridge($e),
            AnyBuilder::Dummy($x) => AnyBuilder::Dummy($e),
        }
    };
}

/// A link to create: made by `underlay_link_builder_<kind>`, adjusted by the `_set_*`
/// functions, created by `underlay_link_builder_execute` (once), freed by
/// `underlay_link_builder_free` (always, executed or not).
pub struct underlay_link_builder {
    inner: Option<AnyBuilder>,
}

fn new_builder(
    handle: *const underlay_handle,
    builder_out: *mut *mut underlay_link_builder,
    f: impl FnOnce(&underlay::Handle) -> R<AnyBuilder>,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let o = out(builder_out, "builder_out")?;
        let b = f(&h.inner)?;
        o.set_box(underlay_link_builder { inner: Some(b) });
        Ok(())
    })
}

/// Edits a builder: `f` gets the builder and gives it back changed.
pub(crate) fn edit(
    builder: *mut underlay_link_builder,
    f: impl FnOnce(AnyBuilder) -> Result<AnyBuilder, (AnyBuilder, crate::result::Failure)>,
) -> underlay_result {
    guard(|| {
        let b = m(builder, "builder")?;
        let cur = b
            .inner
            .take()
            .ok_or_else(|| invalid("the link builder was already executed: make a new one"))?;
        match f(cur) {
            Ok(next) => {
                b.inner = Some(next);
                Ok(())
            }
            Err((back, fail)) => {
                b.inner = Some(back);
                Err(fail)
            }
        }
    })
}

pub(crate) fn wrong_kind(
    b: AnyBuilder,
    want: &str,
) -> Result<AnyBuilder, (AnyBuilder, crate::result::Failure)> {
    Err((
        b,
        invalid(format!("this setting is for {want} builders only")),
    ))
}

/// A VLAN sub-interface with id `vlan_id` (1..4094) on `parent`, named "PARENT.ID" unless
/// `underlay_link_builder_set_name` says otherwise.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vlan(
    handle: *const underlay_handle,
    parent: *const c_char,
    vlan_id: u16,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        let p = s(parent, "parent")?;
        Ok(AnyBuilder::Vlan(Vlan::create(h, p, VlanId::new(vlan_id)?)))
    })
}

/// A macvlan `name` on `parent` in `mode` ("private", "vepa", "bridge", "passthru", "source").
#[no_mangle]
pub extern "C" fn underlay_link_builder_macvlan(
    handle: *const underlay_handle,
    name: *const c_char,
    parent: *const c_char,
    mode: *const c_char,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        let (n, p) = (s(name, "name")?, s(parent, "parent")?);
        let mode: MacvlanMode = s(mode, "mode")?.parse()?;
        Ok(AnyBuilder::Macvlan(Macvlan::create(h, n, p, mode)))
    })
}

/// A macvtap `name` (a macvlan with a /dev/tapN for a VM) on `parent` in `mode`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_macvtap(
    handle: *const underlay_handle,
    name: *const c_char,
    parent: *const c_char,
    mode: *const c_char,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        let (n, p) = (s(name, "name")?, s(parent, "parent")?);
        let mode: MacvlanMode = s(mode, "mode")?.parse()?;
        Ok(AnyBuilder::Macvlan(Macvlan::create_tap(h, n, p, mode)))
    })
}

/// An ipvlan `name` on `parent` in `mode` ("l2", "l3", "l3s") with `flag` ("bridge",
/// "private", "vepa").
#[no_mangle]
pub extern "C" fn underlay_link_builder_ipvlan(
    handle: *const underlay_handle,
    name: *const c_char,
    parent: *const c_char,
    mode: *const c_char,
    flag: *const c_char,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        let (n, p) = (s(name, "name")?, s(parent, "parent")?);
        let mode: IpvlanMode = s(mode, "mode")?.parse()?;
        let flag: IpvlanFlag = s(flag, "flag")?.parse()?;
        Ok(AnyBuilder::Ipvlan(Ipvlan::create(h, n, p, mode).flag(flag)))
    })
}

/// A VXLAN `name` with VNI `vni` (24 bits); see the `underlay_link_builder_vxlan_*` settings.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan(
    handle: *const underlay_handle,
    name: *const c_char,
    vni: u32,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        Ok(AnyBuilder::Vxlan(Vxlan::create(h, s(name, "name")?, vni)))
    })
}

/// A veth pair `name` / `peer`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_veth(
    handle: *const underlay_handle,
    name: *const c_char,
    peer: *const c_char,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        let (n, p) = (s(name, "name")?, s(peer, "peer")?);
        Ok(AnyBuilder::Veth(Veth::create(h, n, p)))
    })
}

/// A Linux bridge `name`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_bridge(
    handle: *const underlay_handle,
    name: *const c_char,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        Ok(AnyBuilder::Bridge(Bridge::create(h, s(name, "name")?)))
    })
}

/// A dummy link `name`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_dummy(
    handle: *const underlay_handle,
    name: *const c_char,
    builder_out: *mut *mut underlay_link_builder,
) -> underlay_result {
    new_builder(handle, builder_out, |h| {
        Ok(AnyBuilder::Dummy(Dummy::create(h, s(name, "name")?)))
    })
}

/// Sets the name (checked when executed: 1..15 bytes, no '/', no whitespace).
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_name(
    builder: *mut underlay_link_builder,
    name: *const c_char,
) -> underlay_result {
    match s(name, "name") {
        Ok(n) => edit(builder, |b| Ok(each!(b, |x| x.name(n)))),
        Err(e) => guard(|| Err(e)),
    }
}

/// Sets the MTU.
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_mtu(
    builder: *mut underlay_link_builder,
    mtu: u32,
) -> underlay_result {
    edit(builder, |b| Ok(each!(b, |x| x.mtu(mtu))))
}

/// Sets the MAC ("02:42:ac:16:10:0a").
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_mac(
    builder: *mut underlay_link_builder,
    mac_address: *const c_char,
) -> underlay_result {
    match mac(mac_address, "mac_address") {
        Ok(a) => edit(builder, |b| Ok(each!(b, |x| x.mac(a)))),
        Err(e) => guard(|| Err(e)),
    }
}

/// Creates the link administratively up.
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_up(
    builder: *mut underlay_link_builder,
) -> underlay_result {
    edit(builder, |b| Ok(each!(b, |x| x.up())))
}

/// Sets the link group.
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_group(
    builder: *mut underlay_link_builder,
    group: u32,
) -> underlay_result {
    edit(builder, |b| Ok(each!(b, |x| x.group(group))))
}

/// Sets the alias (ifalias).
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_alias(
    builder: *mut underlay_link_builder,
    alias: *const c_char,
) -> underlay_result {
    match s(alias, "alias") {
        Ok(a) => edit(builder, |b| Ok(each!(b, |x| x.alias(a)))),
        Err(e) => guard(|| Err(e)),
    }
}

/// Makes the new link a port of bridge `master`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_master(
    builder: *mut underlay_link_builder,
    master: *const c_char,
) -> underlay_result {
    match s(master, "master") {
        Ok(a) => edit(builder, |b| Ok(each!(b, |x| x.master(a)))),
        Err(e) => guard(|| Err(e)),
    }
}

/// Creates the link directly inside `netns` (a handle there is opened for the call).
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_netns(
    builder: *mut underlay_link_builder,
    netns: *const underlay_netns,
) -> underlay_result {
    match r(netns, "netns") {
        Ok(ns) => edit(builder, |b| Ok(each!(b, |x| x.netns(&ns.inner)))),
        Err(e) => guard(|| Err(e)),
    }
}

/// Creates the link directly inside the namespace of `target` (and reads it back there).
#[no_mangle]
pub extern "C" fn underlay_link_builder_set_target(
    builder: *mut underlay_link_builder,
    target: *const underlay_handle,
) -> underlay_result {
    match r(target, "target") {
        Ok(t) => edit(builder, |b| Ok(each!(b, |x| x.target(&t.inner)))),
        Err(e) => guard(|| Err(e)),
    }
}

/// Macvlan / macvtap: do not turn promiscuous mode on at the parent (passthru).
#[no_mangle]
pub extern "C" fn underlay_link_builder_macvlan_nopromisc(
    builder: *mut underlay_link_builder,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Macvlan(x) => Ok(AnyBuilder::Macvlan(x.nopromisc())),
        b => wrong_kind(b, "macvlan"),
    })
}

/// Macvlan / macvtap in source mode: the `count` source MACs (`macs[i]`, "02:00:00:00:aa:01")
/// whose frames the child accepts, replacing any given before. `macs` may be NULL when
/// `count` is 0.
#[no_mangle]
pub extern "C" fn underlay_link_builder_macvlan_source_macs(
    builder: *mut underlay_link_builder,
    macs: *const *const c_char,
    count: usize,
) -> underlay_result {
    let parsed = guard_parse(|| {
        // Checked before anything is read or allocated: `count` is the caller's word.
        if count > 0 && macs.is_null() {
            return Err(crate::support::null("macs"));
        }
        let mut out = Vec::new();
        if count > 0 {
            // SAFETY: `macs` holds `count` pointers (the caller's contract).
            let list = unsafe { std::slice::from_raw_parts(macs, count) };
            for p in list {
                out.push(mac(*p, "macs[i]")?);
            }
        }
        Ok(out)
    });
    match parsed {
        Ok(list) => edit(builder, |b| match b {
            AnyBuilder::Macvlan(x) => Ok(AnyBuilder::Macvlan(x.source_macs(list))),
            b => wrong_kind(b, "macvlan"),
        }),
        Err(code) => code,
    }
}

/// Runs `f` in the panic boundary, giving its value or the recorded failure's code.
fn guard_parse<T>(f: impl FnOnce() -> R<T>) -> Result<T, underlay_result> {
    let mut value = None;
    let code = guard(|| {
        value = Some(f()?);
        Ok(())
    });
    value.ok_or(code)
}

/// Veth: creates the peer inside `netns`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_veth_peer_netns(
    builder: *mut underlay_link_builder,
    netns: *const underlay_netns,
) -> underlay_result {
    match r(netns, "netns") {
        Ok(ns) => edit(builder, |b| match b {
            AnyBuilder::Veth(x) => Ok(AnyBuilder::Veth(x.peer_netns(&ns.inner))),
            b => wrong_kind(b, "veth"),
        }),
        Err(e) => guard(|| Err(e)),
    }
}

/// Veth: brings the peer up too.
#[no_mangle]
pub extern "C" fn underlay_link_builder_veth_peer_up(
    builder: *mut underlay_link_builder,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Veth(x) => Ok(AnyBuilder::Veth(x.peer_up())),
        b => wrong_kind(b, "veth"),
    })
}

/// VLAN: the tag protocol, "802.1Q" (the default) or "802.1ad".
#[no_mangle]
pub extern "C" fn underlay_link_builder_vlan_protocol(
    builder: *mut underlay_link_builder,
    protocol: *const c_char,
) -> underlay_result {
    let parsed = guard_parse(|| Ok(s(protocol, "protocol")?.parse::<VlanProtocol>()?));
    match parsed {
        Ok(p) => edit(builder, |b| match b {
            AnyBuilder::Vlan(x) => Ok(AnyBuilder::Vlan(x.protocol(p))),
            b => wrong_kind(b, "vlan"),
        }),
        Err(code) => code,
    }
}

/// VLAN: the flags (the kernel's default is `reorder_hdr` on, the others off).
#[no_mangle]
pub extern "C" fn underlay_link_builder_vlan_flags(
    builder: *mut underlay_link_builder,
    flags: underlay_vlan_flags,
) -> underlay_result {
    let f = VlanFlags {
        reorder_hdr: flags.reorder_hdr,
        gvrp: flags.gvrp,
        mvrp: flags.mvrp,
        loose_binding: flags.loose_binding,
    };
    edit(builder, |b| match b {
        AnyBuilder::Vlan(x) => Ok(AnyBuilder::Vlan(x.flags(f))),
        b => wrong_kind(b, "vlan"),
    })
}

/// Veth: the peer's MAC ("02:42:ac:16:10:0b").
#[no_mangle]
pub extern "C" fn underlay_link_builder_veth_peer_mac(
    builder: *mut underlay_link_builder,
    mac_address: *const c_char,
) -> underlay_result {
    match mac(mac_address, "mac_address") {
        Ok(a) => edit(builder, |b| match b {
            AnyBuilder::Veth(x) => Ok(AnyBuilder::Veth(x.peer_mac(a))),
            b => wrong_kind(b, "veth"),
        }),
        Err(e) => guard(|| Err(e)),
    }
}

/// Bridge: turns VLAN filtering on or off.
#[no_mangle]
pub extern "C" fn underlay_link_builder_bridge_vlan_filtering(
    builder: *mut underlay_link_builder,
    on: bool,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Bridge(x) => Ok(AnyBuilder::Bridge(x.vlan_filtering(on))),
        b => wrong_kind(b, "bridge"),
    })
}

/// VXLAN: the local VTEP address.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_local(
    builder: *mut underlay_link_builder,
    address: *const c_char,
) -> underlay_result {
    match ip(address, "address") {
        Ok(a) => edit(builder, |b| match b {
            AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.local(a))),
            b => wrong_kind(b, "vxlan"),
        }),
        Err(e) => guard(|| Err(e)),
    }
}

/// VXLAN: the remote VTEP (unicast) or group (multicast) address.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_remote(
    builder: *mut underlay_link_builder,
    address: *const c_char,
) -> underlay_result {
    match ip(address, "address") {
        Ok(a) => edit(builder, |b| match b {
            AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.remote(a))),
            b => wrong_kind(b, "vxlan"),
        }),
        Err(e) => guard(|| Err(e)),
    }
}

/// VXLAN: the UDP destination port (default 4789).
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_port(
    builder: *mut underlay_link_builder,
    port: u16,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.port(port))),
        b => wrong_kind(b, "vxlan"),
    })
}

/// VXLAN: the underlay device (a name).
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_device(
    builder: *mut underlay_link_builder,
    device: *const c_char,
) -> underlay_result {
    match s(device, "device") {
        Ok(d) => edit(builder, |b| match b {
            AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.device(d))),
            b => wrong_kind(b, "vxlan"),
        }),
        Err(e) => guard(|| Err(e)),
    }
}

/// VXLAN: MAC learning on or off.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_learning(
    builder: *mut underlay_link_builder,
    on: bool,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.learning(on))),
        b => wrong_kind(b, "vxlan"),
    })
}

/// VXLAN: the TTL of outer packets.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_ttl(
    builder: *mut underlay_link_builder,
    ttl: u8,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.ttl(ttl))),
        b => wrong_kind(b, "vxlan"),
    })
}

/// VXLAN: copy the outer packets' TTL from the inner ones (`ttl inherit`); not with
/// `underlay_link_builder_vxlan_ttl`.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vxlan_ttl_inherit(
    builder: *mut underlay_link_builder,
) -> underlay_result {
    edit(builder, |b| match b {
        AnyBuilder::Vxlan(x) => Ok(AnyBuilder::Vxlan(x.ttl_inherit())),
        b => wrong_kind(b, "vxlan"),
    })
}

/// Creates the link (exclusive: `UNDERLAY_RESULT_ALREADY_EXISTS` if the name is taken) and
/// reads it back into `*link_out` (free with `underlay_link_free`). A builder executes once;
/// it still has to be freed.
#[no_mangle]
pub extern "C" fn underlay_link_builder_execute(
    builder: *mut underlay_link_builder,
    link_out: *mut *mut underlay_link,
) -> underlay_result {
    guard(|| {
        let b = m(builder, "builder")?;
        let o = out(link_out, "link_out")?;
        let cur = b
            .inner
            .take()
            .ok_or_else(|| invalid("the link builder was already executed: make a new one"))?;
        let link = match cur {
            AnyBuilder::Vlan(x) => block(x.execute()),
            AnyBuilder::Macvlan(x) => block(x.execute()),
            AnyBuilder::Ipvlan(x) => block(x.execute()),
            AnyBuilder::Vxlan(x) => block(x.execute()),
            AnyBuilder::Veth(x) => block(x.execute()),
            AnyBuilder::Bridge(x) => block(x.execute()),
            AnyBuilder::Dummy(x) => block(x.execute()),
        }?;
        o.set_box(underlay_link::new(link));
        Ok(())
    })
}

/// Frees a builder (executed or not). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_link_builder_free(builder: *mut underlay_link_builder) {
    guard_value((), || free(builder))
}

/// Moving an existing link into a namespace and configuring it there (name, MTU, MAC,
/// addresses, gateway, routes); a failure after the move moves it back. Made by
/// `underlay_attach_new`, run once by `underlay_attach_execute`, freed by `underlay_attach_free`.
pub struct underlay_attach {
    inner: Option<underlay::Attach>,
}

/// Prepares to move link `link` (seen from `handle`) into `netns`.
#[no_mangle]
pub extern "C" fn underlay_attach_new(
    handle: *const underlay_handle,
    link: *const c_char,
    netns: *const underlay_netns,
    attach_out: *mut *mut underlay_attach,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let l = s(link, "link")?;
        let ns = r(netns, "netns")?;
        let o = out(attach_out, "attach_out")?;
        // `attach_to_netns` is the same for every kind (see the report: no kind-neutral
        // public constructor in the core).
        let a = Macvlan::attach_to_netns(&h.inner, l, &ns.inner);
        o.set_box(underlay_attach { inner: Some(a) });
        Ok(())
    })
}

fn edit_attach(
    attach: *mut underlay_attach,
    f: impl FnOnce(underlay::Attach) -> underlay::Attach,
) -> underlay_result {
    guard(|| {
        let a = m(attach, "attach")?;
        let cur = a
            .inner
            .take()
            .ok_or_else(|| invalid("the attach was already executed: make a new one"))?;
        a.inner = Some(f(cur));
        Ok(())
    })
}

macro_rules! attach_arg {
    ($attach:ident, $arg:expr, |$x:ident, $v:ident| $e:expr) => {
        match $arg {
            Ok($v) => edit_attach($attach, |$x| $e),
            Err(e) => guard(|| Err(e)),
        }
    };
}

/// The name inside the namespace (e.g. "eth0").
#[no_mangle]
pub extern "C" fn underlay_attach_set_name(
    attach: *mut underlay_attach,
    name: *const c_char,
) -> underlay_result {
    attach_arg!(attach, s(name, "name"), |x, v| x.name(v))
}

/// The MTU.
#[no_mangle]
pub extern "C" fn underlay_attach_set_mtu(
    attach: *mut underlay_attach,
    mtu: u32,
) -> underlay_result {
    edit_attach(attach, |x| x.mtu(mtu))
}

/// The MAC ("02:42:ac:16:10:0a").
#[no_mangle]
pub extern "C" fn underlay_attach_set_mac(
    attach: *mut underlay_attach,
    mac_address: *const c_char,
) -> underlay_result {
    attach_arg!(attach, mac(mac_address, "mac_address"), |x, v| x.mac(v))
}

/// Adds an address ("172.16.10.101/24").
#[no_mangle]
pub extern "C" fn underlay_attach_add_address(
    attach: *mut underlay_attach,
    address: *const c_char,
) -> underlay_result {
    attach_arg!(attach, net(address, "address"), |x, v| x.address(v))
}

/// Sets the default gateway (one per IP version).
#[no_mangle]
pub extern "C" fn underlay_attach_set_gateway(
    attach: *mut underlay_attach,
    gateway: *const c_char,
) -> underlay_result {
    attach_arg!(attach, ip(gateway, "gateway"), |x, v| x.gateway(v))
}

/// Adds a route (copied; a route without gateway or device goes through the attached link).
#[no_mangle]
pub extern "C" fn underlay_attach_add_route(
    attach: *mut underlay_attach,
    route: *const underlay_route,
) -> underlay_result {
    attach_arg!(attach, r(route, "route"), |x, v| x.route(v.inner.clone()))
}

/// IPv6: skip duplicate address detection.
#[no_mangle]
pub extern "C" fn underlay_attach_set_nodad(attach: *mut underlay_attach) -> underlay_result {
    edit_attach(attach, |x| x.nodad())
}

/// Uses `target` (a handle inside the namespace) instead of opening one for the call.
#[no_mangle]
pub extern "C" fn underlay_attach_set_target(
    attach: *mut underlay_attach,
    target: *const underlay_handle,
) -> underlay_result {
    attach_arg!(attach, r(target, "target"), |x, v| x.target(&v.inner))
}

/// Moves and configures the link; `*link_out` is the link in its new namespace (free with
/// `underlay_link_free`). Runs once; the attach still has to be freed.
#[no_mangle]
pub extern "C" fn underlay_attach_execute(
    attach: *mut underlay_attach,
    link_out: *mut *mut underlay_link,
) -> underlay_result {
    guard(|| {
        let a = m(attach, "attach")?;
        let o = out(link_out, "link_out")?;
        let cur = a
            .inner
            .take()
            .ok_or_else(|| invalid("the attach was already executed: make a new one"))?;
        let done = block(cur.execute())?;
        o.set_box(underlay_link::new(done.link));
        Ok(())
    })
}

/// Frees an attach (executed or not). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_attach_free(attach: *mut underlay_attach) {
    guard_value((), || free(attach))
}

/// What an attach set up: the link in its new namespace, the addresses and the routes it
/// added. From `underlay_attach_execute_attached`; free with `underlay_attached_free`.
pub struct underlay_attached {
    link: underlay_link,
    addresses: Vec<CString>,
    routes: Vec<underlay_route>,
}

/// Like `underlay_attach_execute`, giving everything the attach set up in `*attached_out`.
#[no_mangle]
pub extern "C" fn underlay_attach_execute_attached(
    attach: *mut underlay_attach,
    attached_out: *mut *mut underlay_attached,
) -> underlay_result {
    guard(|| {
        let a = m(attach, "attach")?;
        let o = out(attached_out, "attached_out")?;
        let cur = a
            .inner
            .take()
            .ok_or_else(|| invalid("the attach was already executed: make a new one"))?;
        let done = block(cur.execute())?;
        o.set_box(underlay_attached {
            link: underlay_link::new(done.link),
            addresses: done
                .addresses
                .iter()
                .map(|x| cstring(x.to_string()))
                .collect(),
            routes: done.routes.into_iter().map(underlay_route::new).collect(),
        });
        Ok(())
    })
}

/// The link in its new namespace, borrowed (valid while `attached` lives). NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_attached_link(
    attached: *const underlay_attached,
) -> *const underlay_link {
    guard_value(std::ptr::null(), || {
        r(attached, "attached").map_or(std::ptr::null(), |x| &x.link as *const underlay_link)
    })
}

/// The number of addresses added (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_attached_address_count(attached: *const underlay_attached) -> usize {
    guard_value(0, || {
        r(attached, "attached").map_or(0, |x| x.addresses.len())
    })
}

/// Address `index` ("172.16.10.101/24"); borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_attached_address(
    attached: *const underlay_attached,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(attached, "attached")
            .ok()
            .and_then(|x| x.addresses.get(index))
            .map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// The number of routes added, default routes first (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_attached_route_count(attached: *const underlay_attached) -> usize {
    guard_value(0, || r(attached, "attached").map_or(0, |x| x.routes.len()))
}

/// Route `index`, borrowed (valid while `attached` lives). NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_attached_route(
    attached: *const underlay_attached,
    index: usize,
) -> *const underlay_route {
    guard_value(std::ptr::null(), || {
        r(attached, "attached")
            .ok()
            .and_then(|x| x.routes.get(index))
            .map_or(std::ptr::null(), |rt| rt as *const underlay_route)
    })
}

/// Frees what an attach set up (the kernel's link stays). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_attached_free(attached: *mut underlay_attached) {
    guard_value((), || free(attached))
}

//! Docker-like networks and endpoints: create, get, list, delete, connect, disconnect, host
//! access, reconcile.

use std::ffi::CString;
use std::os::raw::c_char;

use underlay::network::{
    ConflictWatch, DefaultRoute, Endpoint, EndpointSpec, HostAccess, MacPolicy, Network,
    NetworkSpec, Networks, ShimRoutes,
};
use underlay::{IpvlanFlag, IpvlanMode, MacvlanMode};

use crate::handle::underlay_handle;
use crate::ipam::underlay_ipam_store;
use crate::list::underlay_string_list;
use crate::netns::underlay_netns;
use crate::result::underlay_result;
use crate::support::{
    block, cstring, free, guard, guard_value, invalid, ip, m, mac, null, opt_ptr, opt_s, out,
    owned_string, r, s, R,
};

/// The networks of one host namespace, with their state under a root directory. Thread-safe.
/// Free with `underlay_networks_free`.
pub struct underlay_networks {
    pub(crate) inner: Networks,
}

/// Opens the networks kept under directory `root` (e.g. "/var/lib/underlay"; created if
/// missing), with `host` the host namespace's handle and the IPAM's local store under `root`.
#[no_mangle]
pub extern "C" fn underlay_networks_open(
    host: *const underlay_handle,
    root: *const c_char,
    networks_out: *mut *mut underlay_networks,
) -> underlay_result {
    guard(|| {
        let h = r(host, "host")?;
        let root = s(root, "root")?;
        let o = out(networks_out, "networks_out")?;
        let n = block(Networks::open(&h.inner, root))?;
        o.set_box(underlay_networks { inner: n });
        Ok(())
    })
}

/// Like `underlay_networks_open`, with the IPAM in `store` (e.g. one shared by several hosts).
#[no_mangle]
pub extern "C" fn underlay_networks_open_with_store(
    host: *const underlay_handle,
    root: *const c_char,
    store: *const underlay_ipam_store,
    networks_out: *mut *mut underlay_networks,
) -> underlay_result {
    guard(|| {
        let h = r(host, "host")?;
        let root = s(root, "root")?;
        let st = r(store, "store")?;
        let o = out(networks_out, "networks_out")?;
        let n = block(Networks::with_store(&h.inner, root, st.inner.clone()))?;
        o.set_box(underlay_networks { inner: n });
        Ok(())
    })
}

/// Frees the handle (networks stay: they live in the kernel and under the root). NULL is a
/// no-op.
#[no_mangle]
pub extern "C" fn underlay_networks_free(networks: *mut underlay_networks) {
    guard_value((), || free(networks))
}

/// What `docker network create` takes: made by `underlay_network_spec_macvlan` / `_ipvlan` /
/// `_from_docker`, completed with pools, used by `underlay_networks_create`, freed by
/// `underlay_network_spec_free`.
pub struct underlay_network_spec {
    pub(crate) inner: NetworkSpec,
}

fn new_spec(
    spec_out: *mut *mut underlay_network_spec,
    f: impl FnOnce() -> R<NetworkSpec>,
) -> underlay_result {
    guard(|| {
        let o = out(spec_out, "spec_out")?;
        o.set_box(underlay_network_spec { inner: f()? });
        Ok(())
    })
}

/// A macvlan network `name` on `parent` (which underlay creates if it is "IF.VLAN" and
/// absent) in `mode` ("bridge", "private", "vepa", "passthru", "source").
#[no_mangle]
pub extern "C" fn underlay_network_spec_macvlan(
    name: *const c_char,
    parent: *const c_char,
    mode: *const c_char,
    spec_out: *mut *mut underlay_network_spec,
) -> underlay_result {
    new_spec(spec_out, || {
        let (n, p) = (s(name, "name")?, s(parent, "parent")?);
        let mode: MacvlanMode = s(mode, "mode")?.parse()?;
        Ok(NetworkSpec::macvlan(n, p, mode))
    })
}

/// An ipvlan network `name` on `parent` in `mode` ("l2", "l3", "l3s") with `flag` ("bridge",
/// "private", "vepa").
#[no_mangle]
pub extern "C" fn underlay_network_spec_ipvlan(
    name: *const c_char,
    parent: *const c_char,
    mode: *const c_char,
    flag: *const c_char,
    spec_out: *mut *mut underlay_network_spec,
) -> underlay_result {
    new_spec(spec_out, || {
        let (n, p) = (s(name, "name")?, s(parent, "parent")?);
        let mode: IpvlanMode = s(mode, "mode")?.parse()?;
        let flag: IpvlanFlag = s(flag, "flag")?.parse()?;
        Ok(NetworkSpec::ipvlan(n, p, mode, flag))
    })
}

/// A network in Docker's words: `driver` "macvlan" or "ipvlan" and `count` options
/// `keys[i]`=`values[i]` ("parent", "macvlan_mode", "ipvlan_mode", "ipvlan_flag", "mtu"). No
/// "parent" makes an internal network. The arrays may be NULL when `count` is 0.
#[no_mangle]
pub extern "C" fn underlay_network_spec_from_docker(
    name: *const c_char,
    driver: *const c_char,
    keys: *const *const c_char,
    values: *const *const c_char,
    count: usize,
    spec_out: *mut *mut underlay_network_spec,
) -> underlay_result {
    new_spec(spec_out, || {
        let (n, d) = (s(name, "name")?, s(driver, "driver")?);
        // Grown as read, never sized from `count` before the arrays are known to be there.
        let mut opts = Vec::new();
        if count > 0 {
            if keys.is_null() {
                return Err(null("keys"));
            }
            if values.is_null() {
                return Err(null("values"));
            }
            // SAFETY: both arrays hold `count` pointers (the caller's contract).
            let (k, v) = unsafe {
                (
                    std::slice::from_raw_parts(keys, count),
                    std::slice::from_raw_parts(values, count),
                )
            };
            for i in 0..count {
                opts.push((s(k[i], "keys[i]")?, s(v[i], "values[i]")?));
            }
        }
        Ok(NetworkSpec::from_docker(n, d, &opts)?)
    })
}

/// Adds a pool written as text ("172.16.10.0/24 gateway=172.16.10.1
/// reserve=exclude_host=172.16.10.21 range=172.16.10.240/28").
#[no_mangle]
pub extern "C" fn underlay_network_spec_add_pool(
    spec: *mut underlay_network_spec,
    pool: *const c_char,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        let p = s(pool, "pool")?.parse()?;
        sp.inner = sp.inner.clone().pool(p);
        Ok(())
    })
}

/// Sets the MTU of the network's endpoints.
#[no_mangle]
pub extern "C" fn underlay_network_spec_set_mtu(
    spec: *mut underlay_network_spec,
    mtu: u32,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        sp.inner = sp.inner.clone().mtu(mtu);
        Ok(())
    })
}

/// Brings the parent up if it is down.
#[no_mangle]
pub extern "C" fn underlay_network_spec_set_bring_parent_up(
    spec: *mut underlay_network_spec,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        sp.inner = sp.inner.clone().bring_parent_up();
        Ok(())
    })
}

/// Looks the parent up in each endpoint's namespace when it connects and makes the link
/// there (the CNI plugins' `linkInContainer`); the host's namespace has no part in it. Such a
/// network has no host access, conflict detection, DHCP or prepared endpoints.
#[no_mangle]
pub extern "C" fn underlay_network_spec_set_parent_in_endpoint_namespace(
    spec: *mut underlay_network_spec,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        sp.inner = sp.inner.clone().parent_in_endpoint_namespace();
        Ok(())
    })
}

/// Turns conflict detection on: before a connect assigns an address, `probes` probes (1..10)
/// `interval_ms` apart, then `wait_ms` (1..10000) for an answer (ARP probes for IPv4,
/// duplicate address detection for IPv6); an address that answers is quarantined and the
/// next one tried. Quick: 1, 0, 150. RFC 5227: 3, 1000, 2000.
#[no_mangle]
pub extern "C" fn underlay_network_spec_set_conflict_detection(
    spec: *mut underlay_network_spec,
    probes: u32,
    interval_ms: u32,
    wait_ms: u32,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        let how = underlay::ConflictDetection::new(
            probes,
            std::time::Duration::from_millis(interval_ms.into()),
            std::time::Duration::from_millis(wait_ms.into()),
        )?;
        sp.inner = sp.inner.clone().conflict_detection(how);
        Ok(())
    })
}

/// Frees a spec. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_network_spec_free(spec: *mut underlay_network_spec) {
    guard_value((), || free(spec))
}

/// One network. Thread-safe. Free with `underlay_network_free` (or borrowed from an
/// `underlay_network_list`).
pub struct underlay_network {
    pub(crate) inner: Network,
    name: CString,
    driver: CString,
    parent: Option<CString>,
    lower: CString,
    host_access: Option<CString>,
    pools: Vec<CString>,
    pub(crate) dhcp_subnet: Option<CString>,
}

impl underlay_network {
    fn new(inner: Network) -> underlay_network {
        underlay_network {
            name: cstring(inner.name()),
            driver: cstring(inner.driver().name()),
            parent: inner.parent().map(cstring),
            lower: cstring(inner.lower()),
            host_access: inner.host_access().map(cstring),
            pools: inner
                .pools()
                .iter()
                .map(|p| cstring(p.to_string()))
                .collect(),
            dhcp_subnet: inner
                .dhcp()
                .and_then(|d| d.allowed_subnet())
                .map(|s| cstring(s.to_string())),
            inner,
        }
    }
}

/// A list of networks (owned; free with `underlay_network_list_free`).
pub struct underlay_network_list {
    pub(crate) items: Vec<underlay_network>,
}

/// The number of networks in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_network_list_count(list: *const underlay_network_list) -> usize {
    crate::support::guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// Item `index` of `list`, borrowed: valid while the list lives, never freed alone. NULL when
/// `list` is NULL or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_network_list_get(
    list: *const underlay_network_list,
    index: usize,
) -> *const underlay_network {
    crate::support::guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_network)
    })
}

/// Frees `list` and every item in it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_network_list_free(list: *mut underlay_network_list) {
    crate::support::guard_value((), || crate::support::free(list))
}

/// Creates the network `spec` describes (pre-flight checks, VLAN parent made on demand).
#[no_mangle]
pub extern "C" fn underlay_networks_create(
    networks: *const underlay_networks,
    spec: *const underlay_network_spec,
    network_out: *mut *mut underlay_network,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let sp = r(spec, "spec")?;
        let o = out(network_out, "network_out")?;
        let net = block(n.inner.create(sp.inner.clone()))?;
        o.set_box(underlay_network::new(net));
        Ok(())
    })
}

/// Opens network `name`.
#[no_mangle]
pub extern "C" fn underlay_networks_get(
    networks: *const underlay_networks,
    name: *const c_char,
    network_out: *mut *mut underlay_network,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let name = s(name, "name")?;
        let o = out(network_out, "network_out")?;
        o.set_box(underlay_network::new(block(n.inner.get(name))?));
        Ok(())
    })
}

/// Every network.
#[no_mangle]
pub extern "C" fn underlay_networks_list(
    networks: *const underlay_networks,
    list_out: *mut *mut underlay_network_list,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let o = out(list_out, "list_out")?;
        let v = block(n.inner.list())?;
        o.set_box(underlay_network_list {
            items: v.into_iter().map(underlay_network::new).collect(),
        });
        Ok(())
    })
}

/// Deletes network `name` (`UNDERLAY_RESULT_BUSY` while endpoints are connected); a VLAN
/// parent underlay made goes with its last network.
#[no_mangle]
pub extern "C" fn underlay_networks_delete(
    networks: *const underlay_networks,
    name: *const c_char,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        block(n.inner.delete(s(name, "name")?))
    })
}

/// Deletes network `name` if nothing uses it (no endpoint, no host access, no lease of this
/// host, also none without an endpoint record); `*deleted_out` tells whether it did. While it
/// is used nothing changes (that is success, with `false`).
#[no_mangle]
pub extern "C" fn underlay_networks_delete_if_unused(
    networks: *const underlay_networks,
    name: *const c_char,
    deleted_out: *mut bool,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let o = out(deleted_out, "deleted_out")?;
        o.set(block(n.inner.delete_if_unused(s(name, "name")?))?);
        Ok(())
    })
}

/// What `underlay_networks_reconcile` found and did. Free with
/// `underlay_reconcile_report_free`.
pub struct underlay_reconcile_report {
    clean: bool,
    recreated_parents: underlay_string_list,
    recreated_shims: underlay_string_list,
    gone_endpoints: underlay_string_list,
    /// Each gone endpoint's released addresses ("10.72.0.9/24").
    gone_addresses: Vec<underlay_string_list>,
    removed_links: underlay_string_list,
}

/// Recovery after a reboot or a crash: recreates VLAN parents and shims, removes endpoints
/// whose namespace is gone and stray links.
#[no_mangle]
pub extern "C" fn underlay_networks_reconcile(
    networks: *const underlay_networks,
    report_out: *mut *mut underlay_reconcile_report,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let o = out(report_out, "report_out")?;
        let rep = block(n.inner.reconcile())?;
        o.set_box(underlay_reconcile_report {
            clean: rep.is_clean(),
            recreated_parents: underlay_string_list::new(rep.recreated_parents.clone()),
            recreated_shims: underlay_string_list::new(rep.recreated_shims.clone()),
            gone_endpoints: underlay_string_list::new(
                rep.gone_endpoints
                    .iter()
                    .map(|g| format!("{}/{}/{}", g.network, g.container_id, g.ifname)),
            ),
            gone_addresses: rep
                .gone_endpoints
                .iter()
                .map(|g| underlay_string_list::new(g.addresses.iter().map(|a| a.to_string())))
                .collect(),
            removed_links: underlay_string_list::new(rep.removed_links.clone()),
        });
        Ok(())
    })
}

/// Whether reconcile found nothing to do.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_is_clean(
    report: *const underlay_reconcile_report,
) -> bool {
    guard_value(false, || r(report, "report").is_ok_and(|x| x.clean))
}

/// VLAN parents (and internal dummies) recreated; borrowed from the report.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_recreated_parents(
    report: *const underlay_reconcile_report,
) -> *const underlay_string_list {
    guard_value(std::ptr::null(), || {
        r(report, "report").map_or(std::ptr::null(), |x| &x.recreated_parents as *const _)
    })
}

/// Host shims recreated; borrowed from the report.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_recreated_shims(
    report: *const underlay_reconcile_report,
) -> *const underlay_string_list {
    guard_value(std::ptr::null(), || {
        r(report, "report").map_or(std::ptr::null(), |x| &x.recreated_shims as *const _)
    })
}

/// Endpoints whose namespace was gone, as "NETWORK/CONTAINER_ID/IFNAME"; borrowed from the
/// report.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_gone_endpoints(
    report: *const underlay_reconcile_report,
) -> *const underlay_string_list {
    guard_value(std::ptr::null(), || {
        r(report, "report").map_or(std::ptr::null(), |x| &x.gone_endpoints as *const _)
    })
}

/// Stray underlay links deleted; borrowed from the report.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_removed_links(
    report: *const underlay_reconcile_report,
) -> *const underlay_string_list {
    guard_value(std::ptr::null(), || {
        r(report, "report").map_or(std::ptr::null(), |x| &x.removed_links as *const _)
    })
}

/// Frees a report. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_free(report: *mut underlay_reconcile_report) {
    guard_value((), || free(report))
}

/// The network's name; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_network_name(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network").map_or(std::ptr::null(), |n| n.name.as_ptr())
    })
}

/// The driver ("macvlan" or "ipvlan"); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_network_driver(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network").map_or(std::ptr::null(), |n| n.driver.as_ptr())
    })
}

/// The parent interface, NULL for an internal network; borrowed.
#[no_mangle]
pub extern "C" fn underlay_network_parent(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network").map_or(std::ptr::null(), |n| opt_ptr(&n.parent))
    })
}

/// Whether the parent is looked up in each endpoint's namespace (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_network_parent_in_endpoint_namespace(
    network: *const underlay_network,
) -> bool {
    guard_value(false, || {
        r(network, "network").is_ok_and(|n| n.inner.parent_in_endpoint_namespace())
    })
}

/// The network's conflict detection: `*probes_out` is 0 when it is off (then the other two
/// are 0 too).
#[no_mangle]
pub extern "C" fn underlay_network_conflict_detection(
    network: *const underlay_network,
    probes_out: *mut u32,
    interval_ms_out: *mut u32,
    wait_ms_out: *mut u32,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (p, i, w) = (
            out(probes_out, "probes_out")?,
            out(interval_ms_out, "interval_ms_out")?,
            out(wait_ms_out, "wait_ms_out")?,
        );
        let c = n.inner.conflict_detection();
        let ms = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        p.set(c.map_or(0, |c| c.probes()));
        i.set(c.map_or(0, |c| ms(c.interval())));
        w.set(c.map_or(0, |c| ms(c.wait())));
        Ok(())
    })
}

/// Watches the network's parent for address conflicts after connect (another MAC using an
/// endpoint's address). Free with `underlay_conflict_watch_free`.
pub struct underlay_conflict_watch {
    inner: std::sync::Mutex<ConflictWatch>,
}

/// A conflict reported by `underlay_conflict_watch_next`. Free with
/// `underlay_endpoint_conflict_free`.
pub struct underlay_endpoint_conflict {
    ip: CString,
    mac: Option<CString>,
    container_id: CString,
    endpoint_mac: Option<CString>,
}

/// Starts watching (fails on an internal network: no wire).
#[no_mangle]
pub extern "C" fn underlay_network_watch_conflicts(
    network: *const underlay_network,
    watch_out: *mut *mut underlay_conflict_watch,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(watch_out, "watch_out")?;
        let w = block(n.inner.watch_conflicts())?;
        o.set_box(underlay_conflict_watch {
            inner: std::sync::Mutex::new(w),
        });
        Ok(())
    })
}

/// Waits up to `timeout_ms` for the next conflict: `*conflict_out` is new, or NULL when none
/// came (that is success).
#[no_mangle]
pub extern "C" fn underlay_conflict_watch_next(
    watch: *const underlay_conflict_watch,
    timeout_ms: u32,
    conflict_out: *mut *mut underlay_endpoint_conflict,
) -> underlay_result {
    guard(|| {
        let w = r(watch, "watch")?;
        let o = out(conflict_out, "conflict_out")?;
        let mut guard = w.inner.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = std::time::Duration::from_millis(timeout_ms.into());
        match block(guard.next(timeout))? {
            Some(c) => o.set_box(underlay_endpoint_conflict {
                ip: cstring(c.conflict.ip.to_string()),
                mac: c.conflict.mac.map(|m| cstring(m.to_string())),
                container_id: cstring(c.container_id),
                endpoint_mac: c.endpoint_mac.map(|m| cstring(m.to_string())),
            }),
            None => o.set(std::ptr::null_mut()),
        }
        Ok(())
    })
}

/// Frees a watch. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_conflict_watch_free(watch: *mut underlay_conflict_watch) {
    guard_value((), || free(watch))
}

/// The address in conflict; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_endpoint_conflict_ip(
    conflict: *const underlay_endpoint_conflict,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(conflict, "conflict").map_or(std::ptr::null(), |c| c.ip.as_ptr())
    })
}

/// The other machine's MAC; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_endpoint_conflict_mac(
    conflict: *const underlay_endpoint_conflict,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(conflict, "conflict").map_or(std::ptr::null(), |c| opt_ptr(&c.mac))
    })
}

/// The container id of the endpoint holding the address; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_endpoint_conflict_container_id(
    conflict: *const underlay_endpoint_conflict,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(conflict, "conflict").map_or(std::ptr::null(), |c| c.container_id.as_ptr())
    })
}

/// The endpoint's own MAC; borrowed. NULL for NULL or when unknown.
#[no_mangle]
pub extern "C" fn underlay_endpoint_conflict_endpoint_mac(
    conflict: *const underlay_endpoint_conflict,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(conflict, "conflict").map_or(std::ptr::null(), |c| opt_ptr(&c.endpoint_mac))
    })
}

/// Frees a conflict. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_endpoint_conflict_free(conflict: *mut underlay_endpoint_conflict) {
    guard_value((), || free(conflict))
}

/// Frees a network handle (the network stays). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_network_free(network: *mut underlay_network) {
    guard_value((), || free(network))
}

/// What to connect: `docker run --network NET [--ip IP] [--mac-address MAC]`. Made by
/// `underlay_endpoint_spec_new`, freed by `underlay_endpoint_spec_free`.
pub struct underlay_endpoint_spec {
    pub(crate) inner: EndpointSpec,
}

/// An endpoint for `container_id`: interface "eth0", any free address, random MAC.
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_new(
    container_id: *const c_char,
    spec_out: *mut *mut underlay_endpoint_spec,
) -> underlay_result {
    guard(|| {
        let c = s(container_id, "container_id")?;
        out(spec_out, "spec_out")?.set_box(underlay_endpoint_spec {
            inner: EndpointSpec::new(c),
        });
        Ok(())
    })
}

fn edit_ep(
    spec: *mut underlay_endpoint_spec,
    f: impl FnOnce(EndpointSpec) -> R<EndpointSpec>,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        sp.inner = f(sp.inner.clone())?;
        Ok(())
    })
}

/// The interface name inside the namespace (default "eth0").
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_ifname(
    spec: *mut underlay_endpoint_spec,
    ifname: *const c_char,
) -> underlay_result {
    edit_ep(spec, |x| Ok(x.ifname(s(ifname, "ifname")?)))
}

/// Asks for `address` ("172.16.10.101"); call once per IP version.
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_add_ip(
    spec: *mut underlay_endpoint_spec,
    address: *const c_char,
) -> underlay_result {
    edit_ep(spec, |x| Ok(x.ip(ip(address, "address")?)))
}

/// A fixed MAC ("02:42:ac:10:0a:65"); NULL derives the MAC from the container id instead of
/// a random one.
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_mac(
    spec: *mut underlay_endpoint_spec,
    mac_address: *const c_char,
) -> underlay_result {
    edit_ep(spec, |x| {
        Ok(x.mac(match opt_s(mac_address, "mac_address")? {
            Some(_) => MacPolicy::Fixed(mac(mac_address, "mac_address")?),
            None => MacPolicy::FromContainerId,
        }))
    })
}

/// Uses `target` (a handle inside the container's namespace) instead of opening one.
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_target(
    spec: *mut underlay_endpoint_spec,
    target: *const underlay_handle,
) -> underlay_result {
    edit_ep(spec, |x| Ok(x.target(&r(target, "target")?.inner)))
}

/// Whether an endpoint given no IPv6 address keeps the kernel's IPv6 (link-local address,
/// SLAAC from router advertisements). Default false: IPv6 is disabled on such an interface, as
/// Docker does since 26.0.2.
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_keep_ipv6(
    spec: *mut underlay_endpoint_spec,
    keep: bool,
) -> underlay_result {
    edit_ep(spec, |x| Ok(x.keep_ipv6(keep)))
}

/// Whom the endpoint's addresses are announced to once it is up (gratuitous ARP, unsolicited
/// neighbour advertisement): "wire" (the default: out of the parent, to the network beyond
/// the host), "segment" (from inside the endpoint: this host's other endpoints too, O(endpoints)
/// per connect), "kernel" (as "segment", sent by the kernel as the link comes up: no packet
/// socket in this process) or "off".
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_announce(
    spec: *mut underlay_endpoint_spec,
    whom: *const c_char,
) -> underlay_result {
    edit_ep(spec, |x| Ok(x.announce_to(s(whom, "whom")?.parse()?)))
}

/// Whether the container gets a default route through the network's gateway (one per IP
/// version with a gateway), for containers on several networks. `mode`: "auto" (the default:
/// unless the namespace has a default route of that IP version already, another network's,
/// as Docker gives one endpoint the gateway), "metric" (always, with metric `metric`, lower
/// wins: give each network its own, as netavark does, so they coexist) or "none" (never).
/// `metric` must be 0 unless `mode` is "metric".
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_default_route(
    spec: *mut underlay_endpoint_spec,
    mode: *const c_char,
    metric: u32,
) -> underlay_result {
    edit_ep(spec, |x| {
        let mode = match s(mode, "mode")? {
            "metric" => DefaultRoute::Metric(metric),
            _ if metric != 0 => {
                return Err(invalid(format!(
                    "default route metric {metric} needs mode \"metric\""
                )))
            }
            "auto" => DefaultRoute::Auto,
            "none" => DefaultRoute::None,
            other => {
                return Err(invalid(format!(
                    "default route mode `{other}` is unknown: use \"auto\", \"metric\" or \"none\""
                )))
            }
        };
        Ok(x.default_route(mode))
    })
}

/// Frees a spec. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_free(spec: *mut underlay_endpoint_spec) {
    guard_value((), || free(spec))
}

/// A connected endpoint: from connect or a lookup (free with `underlay_endpoint_free`) or
/// borrowed from an `underlay_endpoint_list`.
pub struct underlay_endpoint {
    index: u32,
    network: CString,
    container_id: CString,
    ifname: CString,
    mac: Option<CString>,
    handoff: Option<CString>,
    sandbox: Option<CString>,
    addresses: Vec<CString>,
    routes: Vec<CString>,
    netns: Option<CString>,
    pub(crate) dhcp: Option<crate::dhcp::underlay_dhcp_lease>,
}

impl underlay_endpoint {
    pub(crate) fn new(e: Endpoint) -> underlay_endpoint {
        underlay_endpoint {
            index: e.index,
            network: cstring(e.network),
            container_id: cstring(e.container_id),
            ifname: cstring(e.ifname),
            mac: e.mac.map(|m| cstring(m.to_string())),
            handoff: e.handoff.map(cstring),
            sandbox: e.sandbox.map(|p| cstring(p.to_string_lossy().into_owned())),
            addresses: e.addresses.iter().map(|a| cstring(a.to_string())).collect(),
            routes: e.routes.iter().map(|x| cstring(x.to_string())).collect(),
            netns: e.netns.map(|n| cstring(n.to_string_lossy().into_owned())),
            dhcp: e.dhcp.map(crate::dhcp::underlay_dhcp_lease::new),
        }
    }
}

/// A list of endpoints (owned; free with `underlay_endpoint_list_free`).
pub struct underlay_endpoint_list {
    pub(crate) items: Vec<underlay_endpoint>,
}

/// The number of endpoints in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_endpoint_list_count(list: *const underlay_endpoint_list) -> usize {
    crate::support::guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// Item `index` of `list`, borrowed: valid while the list lives, never freed alone. NULL when
/// `list` is NULL or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_endpoint_list_get(
    list: *const underlay_endpoint_list,
    index: usize,
) -> *const underlay_endpoint {
    crate::support::guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_endpoint)
    })
}

/// Frees `list` and every item in it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_endpoint_list_free(list: *mut underlay_endpoint_list) {
    crate::support::guard_value((), || crate::support::free(list))
}

/// Connects the container whose namespace is `netns`: one lease, one link made inside the
/// namespace with its addresses and routes; undone as a whole on failure.
#[no_mangle]
pub extern "C" fn underlay_network_connect(
    network: *const underlay_network,
    netns: *const underlay_netns,
    spec: *const underlay_endpoint_spec,
    endpoint_out: *mut *mut underlay_endpoint,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let ns = r(netns, "netns")?;
        let sp = r(spec, "spec")?;
        let o = out(endpoint_out, "endpoint_out")?;
        let ep = block(n.inner.connect(&ns.inner, sp.inner.clone()))?;
        o.set_box(underlay_endpoint::new(ep));
        Ok(())
    })
}

/// Prepares an endpoint for a runtime that moves the link into the container itself
/// (Docker's remote driver): the lease, and the link made down and unaddressed in the host
/// namespace under a temporary name (`underlay_endpoint_handoff`), with connect's records,
/// lock and undo. `underlay_network_disconnect` deletes the link if it is still (or again)
/// there under that name and takes it as gone otherwise.
#[no_mangle]
pub extern "C" fn underlay_network_prepare(
    network: *const underlay_network,
    spec: *const underlay_endpoint_spec,
    endpoint_out: *mut *mut underlay_endpoint,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let sp = r(spec, "spec")?;
        let o = out(endpoint_out, "endpoint_out")?;
        let ep = block(n.inner.prepare(sp.inner.clone()))?;
        o.set_box(underlay_endpoint::new(ep));
        Ok(())
    })
}

/// Records where the runtime moves prepared endpoint (`container_id`, `ifname`)'s link: the
/// namespace at absolute `path` (Docker's `SandboxKey`; it need not exist yet). A DHCP
/// endpoint's renewals and release then find the link there (or, if the path does not open,
/// in any namespace of the host, by its MAC). `*endpoint_out` (may be NULL) gets the record.
#[no_mangle]
pub extern "C" fn underlay_network_set_sandbox(
    network: *const underlay_network,
    container_id: *const c_char,
    ifname: *const c_char,
    path: *const c_char,
    endpoint_out: *mut *mut underlay_endpoint,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (c, i) = (s(container_id, "container_id")?, s(ifname, "ifname")?);
        let p = s(path, "path")?;
        let ep = block(n.inner.set_sandbox(c, i, p))?;
        if !endpoint_out.is_null() {
            out(endpoint_out, "endpoint_out")?.set_box(underlay_endpoint::new(ep));
        }
        Ok(())
    })
}

/// Disconnects (`container_id`, `ifname`): deletes the link, releases the lease.
#[no_mangle]
pub extern "C" fn underlay_network_disconnect(
    network: *const underlay_network,
    container_id: *const c_char,
    ifname: *const c_char,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (c, i) = (s(container_id, "container_id")?, s(ifname, "ifname")?);
        block(n.inner.disconnect(c, i))
    })
}

/// CNI GC: releases every endpoint (link, lease, record) and every lease without an endpoint
/// record of this network that is not among the `count` valid owners (`container_ids[i]`,
/// `ifnames[i]`; the arrays may be NULL when `count` is 0). One that a connect or disconnect
/// holds at the moment is left to it. `*released_out` lists what was released as
/// "NETWORK/CONTAINER_ID/IFNAME".
#[no_mangle]
pub extern "C" fn underlay_network_gc(
    network: *const underlay_network,
    container_ids: *const *const c_char,
    ifnames: *const *const c_char,
    count: usize,
    released_out: *mut *mut underlay_string_list,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(released_out, "released_out")?;
        let valid = crate::ipam::owners(container_ids, ifnames, count)?;
        let gone = block(n.inner.gc(&valid))?;
        o.set_box(underlay_string_list::new(gone.iter().map(|g| {
            format!("{}/{}/{}", g.network, g.container_id, g.ifname)
        })));
        Ok(())
    })
}

/// The endpoint (`container_id`, `ifname`): `*endpoint_out` is new, or NULL when there is
/// none (that is success).
#[no_mangle]
pub extern "C" fn underlay_network_endpoint(
    network: *const underlay_network,
    container_id: *const c_char,
    ifname: *const c_char,
    endpoint_out: *mut *mut underlay_endpoint,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (c, i) = (s(container_id, "container_id")?, s(ifname, "ifname")?);
        let o = out(endpoint_out, "endpoint_out")?;
        match n.inner.endpoint(c, i)? {
            Some(e) => o.set_box(underlay_endpoint::new(e)),
            None => o.set(std::ptr::null_mut()),
        }
        Ok(())
    })
}

/// Every endpoint of the network.
#[no_mangle]
pub extern "C" fn underlay_network_endpoints(
    network: *const underlay_network,
    list_out: *mut *mut underlay_endpoint_list,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(list_out, "list_out")?;
        o.set_box(underlay_endpoint_list {
            items: n
                .inner
                .endpoints()?
                .into_iter()
                .map(underlay_endpoint::new)
                .collect(),
        });
        Ok(())
    })
}

/// Host access (S3): a bridge-mode macvlan "shim" on the parent, up, with host routes to the
/// containers. `shim_name` may be NULL (a name derived from the network). `with_address`
/// gives the shim an address from the pools. `routes` is "endpoints" (one /32 per endpoint)
/// or "ranges" (the pools' ranges); NULL means "endpoints". `*shim_out` is the shim's name
/// (free with `underlay_string_free`).
#[no_mangle]
pub extern "C" fn underlay_network_enable_host_access(
    network: *const underlay_network,
    shim_name: *const c_char,
    with_address: bool,
    routes: *const c_char,
    shim_out: *mut *mut c_char,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let mut spec = HostAccess::new();
        if let Some(name) = opt_s(shim_name, "shim_name")? {
            spec = spec.name(name);
        }
        if with_address {
            spec = spec.with_address();
        }
        spec = spec.routes(match opt_s(routes, "routes")? {
            None | Some("endpoints") => ShimRoutes::Endpoints,
            Some("ranges") => ShimRoutes::Ranges,
            Some(other) => {
                return Err(invalid(format!(
                    "routes `{other}` is unknown: use \"endpoints\" or \"ranges\""
                )))
            }
        });
        let o = out(shim_out, "shim_out")?;
        let name = block(n.inner.enable_host_access(spec))?;
        o.set(owned_string(name));
        Ok(())
    })
}

/// Like `underlay_network_enable_host_access`, giving the shim `address` (an address of the
/// pools, reserved like an endpoint's): Docker's `-o underlay.host_access=IP`.
#[no_mangle]
pub extern "C" fn underlay_network_enable_host_access_at(
    network: *const underlay_network,
    shim_name: *const c_char,
    address: *const c_char,
    shim_out: *mut *mut c_char,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let mut spec = HostAccess::new().address(ip(address, "address")?);
        if let Some(name) = opt_s(shim_name, "shim_name")? {
            spec = spec.name(name);
        }
        let o = out(shim_out, "shim_out")?;
        let name = block(n.inner.enable_host_access(spec))?;
        o.set(owned_string(name));
        Ok(())
    })
}

/// Removes the shim and its routes.
#[no_mangle]
pub extern "C" fn underlay_network_disable_host_access(
    network: *const underlay_network,
) -> underlay_result {
    guard(|| block(r(network, "network")?.inner.disable_host_access()))
}

/// Removes the shim and its routes if the network has no endpoint (a pending one counts);
/// `*disabled_out` tells whether it did (false when an endpoint is left or there was no shim).
#[no_mangle]
pub extern "C" fn underlay_network_disable_host_access_if_unused(
    network: *const underlay_network,
    disabled_out: *mut bool,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(disabled_out, "disabled_out")?;
        o.set(block(n.inner.disable_host_access_if_unused())?);
        Ok(())
    })
}

/// Frees an endpoint (never one borrowed from a list). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_endpoint_free(endpoint: *mut underlay_endpoint) {
    guard_value((), || free(endpoint))
}

/// The network's name; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_endpoint_network(endpoint: *const underlay_endpoint) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| e.network.as_ptr())
    })
}
/// The container id; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_endpoint_container_id(
    endpoint: *const underlay_endpoint,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| e.container_id.as_ptr())
    })
}
/// The interface name inside the namespace; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_endpoint_ifname(endpoint: *const underlay_endpoint) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| e.ifname.as_ptr())
    })
}
/// The MAC, NULL if unknown; borrowed.
#[no_mangle]
pub extern "C" fn underlay_endpoint_mac(endpoint: *const underlay_endpoint) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| opt_ptr(&e.mac))
    })
}

/// For a prepared endpoint (`underlay_network_prepare`): the link's temporary name in the
/// host namespace, for the runtime that moves it; NULL for a connected one (or NULL);
/// borrowed.
#[no_mangle]
pub extern "C" fn underlay_endpoint_handoff(endpoint: *const underlay_endpoint) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| opt_ptr(&e.handoff))
    })
}

/// For a prepared endpoint: the sandbox path recorded by `underlay_network_set_sandbox`,
/// NULL if none (or NULL); borrowed.
#[no_mangle]
pub extern "C" fn underlay_endpoint_sandbox(endpoint: *const underlay_endpoint) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| opt_ptr(&e.sandbox))
    })
}

/// The interface index inside the namespace (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_endpoint_index(endpoint: *const underlay_endpoint) -> u32 {
    guard_value(0, || r(endpoint, "endpoint").map_or(0, |e| e.index))
}

/// The number of addresses (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_endpoint_address_count(endpoint: *const underlay_endpoint) -> usize {
    guard_value(0, || {
        r(endpoint, "endpoint").map_or(0, |e| e.addresses.len())
    })
}

/// Address `index` with its prefix ("172.16.10.101/24"); borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_endpoint_address(
    endpoint: *const underlay_endpoint,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint")
            .ok()
            .and_then(|e| e.addresses.get(index))
            .map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// The number of routes added inside the namespace (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_endpoint_route_count(endpoint: *const underlay_endpoint) -> usize {
    guard_value(0, || r(endpoint, "endpoint").map_or(0, |e| e.routes.len()))
}

/// Route `index` as text ("0.0.0.0/0 via 172.16.10.1 dev eth0"); borrowed. NULL when out of
/// range.
#[no_mangle]
pub extern "C" fn underlay_endpoint_route(
    endpoint: *const underlay_endpoint,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint")
            .ok()
            .and_then(|e| e.routes.get(index))
            .map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// The link endpoints hang on (the parent, or an internal network's dummy or bridge);
/// borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_network_lower(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network").map_or(std::ptr::null(), |n| n.lower.as_ptr())
    })
}

/// The endpoints' MTU, 0 when the network sets none (the parent's; and for NULL).
#[no_mangle]
pub extern "C" fn underlay_network_mtu(network: *const underlay_network) -> u32 {
    guard_value(0, || {
        r(network, "network").map_or(0, |n| n.inner.mtu().unwrap_or(0))
    })
}

/// The name of the host's shim link when host access is on, NULL when off; borrowed.
#[no_mangle]
pub extern "C" fn underlay_network_host_access(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network").map_or(std::ptr::null(), |n| opt_ptr(&n.host_access))
    })
}

/// The number of address pools (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_network_pool_count(network: *const underlay_network) -> usize {
    guard_value(0, || r(network, "network").map_or(0, |n| n.pools.len()))
}

/// Pool `index` as text (`underlay_network_spec_add_pool`'s syntax); borrowed. NULL when out
/// of range.
#[no_mangle]
pub extern "C" fn underlay_network_pool(
    network: *const underlay_network,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network")
            .ok()
            .and_then(|n| n.pools.get(index))
            .map_or(std::ptr::null(), |p| p.as_ptr())
    })
}

/// Like `underlay_network_disconnect`, for a container whose namespace is being deleted: the
/// link goes with the namespace, so only the lease and the record are released.
#[no_mangle]
pub extern "C" fn underlay_network_disconnect_for_netns_deletion(
    network: *const underlay_network,
    container_id: *const c_char,
    ifname: *const c_char,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (c, i) = (s(container_id, "container_id")?, s(ifname, "ifname")?);
        block(n.inner.disconnect_for_netns_deletion(c, i))
    })
}

/// Opens network `spec` names, creating it first when absent; a network of that name defined
/// otherwise is `UNDERLAY_RESULT_CONFLICT`, the message naming each difference.
#[no_mangle]
pub extern "C" fn underlay_networks_create_or_open(
    networks: *const underlay_networks,
    spec: *const underlay_network_spec,
    network_out: *mut *mut underlay_network,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let sp = r(spec, "spec")?;
        let o = out(network_out, "network_out")?;
        let net = block(n.inner.create_or_open(sp.inner.clone()))?;
        o.set_box(underlay_network::new(net));
        Ok(())
    })
}

/// The network's stored definition as a new spec (free with `underlay_network_spec_free`;
/// bring-parent-up is not stored and reads off).
#[no_mangle]
pub extern "C" fn underlay_network_spec_of(
    network: *const underlay_network,
    spec_out: *mut *mut underlay_network_spec,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(spec_out, "spec_out")?;
        o.set_box(underlay_network_spec {
            inner: n.inner.spec(),
        });
        Ok(())
    })
}

/// The namespace path recorded for the endpoint ("/run/netns/NAME", "/proc/PID/ns/net"),
/// NULL when none was; borrowed.
#[no_mangle]
pub extern "C" fn underlay_endpoint_netns(endpoint: *const underlay_endpoint) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint").map_or(std::ptr::null(), |e| opt_ptr(&e.netns))
    })
}

/// The addresses released with gone endpoint `index` (the order of
/// `underlay_reconcile_report_gone_endpoints`), "10.72.0.9/24"; borrowed from the report. NULL
/// when out of range.
#[no_mangle]
pub extern "C" fn underlay_reconcile_report_gone_addresses(
    report: *const underlay_reconcile_report,
    index: usize,
) -> *const underlay_string_list {
    guard_value(std::ptr::null(), || {
        r(report, "report")
            .ok()
            .and_then(|x| x.gone_addresses.get(index))
            .map_or(std::ptr::null(), |l| l as *const underlay_string_list)
    })
}

/// Files (path and content) rendered for the distribution's own network tools, from
/// `underlay_network_export` or `underlay_render_vlan`. Free with `underlay_export_free`.
pub struct underlay_export {
    files: Vec<(CString, CString)>,
}

fn export_of(files: Vec<underlay::network::ExportFile>) -> underlay_export {
    underlay_export {
        files: files
            .into_iter()
            .map(|f| (cstring(f.path), cstring(f.content)))
            .collect(),
    }
}

/// The number of files (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_export_count(export: *const underlay_export) -> usize {
    guard_value(0, || r(export, "export").map_or(0, |x| x.files.len()))
}

/// The path of file `index` ("/etc/systemd/network/10-ens192.20.netdev"); borrowed. NULL when
/// out of range.
#[no_mangle]
pub extern "C" fn underlay_export_path(
    export: *const underlay_export,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(export, "export")
            .ok()
            .and_then(|x| x.files.get(index))
            .map_or(std::ptr::null(), |f| f.0.as_ptr())
    })
}

/// The content of file `index`; borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_export_content(
    export: *const underlay_export,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(export, "export")
            .ok()
            .and_then(|x| x.files.get(index))
            .map_or(std::ptr::null(), |f| f.1.as_ptr())
    })
}

/// Frees an export. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_export_free(export: *mut underlay_export) {
    guard_value((), || free(export))
}

/// The network's VLAN parent rendered for the distribution's own tools (`format` "ifupdown",
/// "ifcfg" or "networkd"), so it comes back at boot without underlay.
/// `UNDERLAY_RESULT_INVALID_ARGUMENT` when the parent is not a VLAN sub-interface.
#[no_mangle]
pub extern "C" fn underlay_network_export(
    network: *const underlay_network,
    format: *const c_char,
    export_out: *mut *mut underlay_export,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let f: underlay::network::ExportFormat = s(format, "format")?.parse()?;
        let o = out(export_out, "export_out")?;
        o.set_box(export_of(n.inner.export(f)?));
        Ok(())
    })
}

/// How `spec` differs from the network's definition, one string per difference ("MTU: stored
/// 1400, given the parent's"); an empty list when it is the same network (what
/// `underlay_networks_create_or_open` accepts). Free with `underlay_string_list_free`.
#[no_mangle]
pub extern "C" fn underlay_network_differences(
    network: *const underlay_network,
    spec: *const underlay_network_spec,
    list_out: *mut *mut crate::list::underlay_string_list,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let sp = r(spec, "spec")?;
        let o = out(list_out, "list_out")?;
        o.set_box(crate::list::underlay_string_list::new(
            n.inner.differences(&sp.inner),
        ));
        Ok(())
    })
}
/// VLAN `vlan_id` named `name` on `parent` rendered for the distribution's own tools (`format`
/// "ifupdown", "ifcfg" or "networkd").
#[no_mangle]
pub extern "C" fn underlay_render_vlan(
    format: *const c_char,
    name: *const c_char,
    parent: *const c_char,
    vlan_id: u16,
    export_out: *mut *mut underlay_export,
) -> underlay_result {
    guard(|| {
        let f: underlay::network::ExportFormat = s(format, "format")?.parse()?;
        let n = underlay::IfName::new(s(name, "name")?)?;
        let p = underlay::IfName::new(s(parent, "parent")?)?;
        let id = underlay::VlanId::new(vlan_id)?;
        let o = out(export_out, "export_out")?;
        o.set_box(export_of(underlay::network::render_vlan(f, &n, &p, id)));
        Ok(())
    })
}

/// The network's IPAM (its leases: list, lookup, gc), a new handle (free with
/// `underlay_ipam_free`).
#[no_mangle]
pub extern "C" fn underlay_network_ipam(
    network: *const underlay_network,
    ipam_out: *mut *mut crate::ipam::underlay_ipam,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(ipam_out, "ipam_out")?;
        o.set_box(crate::ipam::underlay_ipam::new(n.inner.ipam().clone()));
        Ok(())
    })
}

/// The macvlan or ipvlan mode of the network ("bridge", "l2", ...); static. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_network_mode(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        let mode = r(network, "network").ok().map(|n| match n.inner.driver() {
            underlay::network::Driver::Macvlan(m) => m.as_str(),
            underlay::network::Driver::Ipvlan(m, _) => m.as_str(),
        });
        // `as_str` gives static names; hand out a static C copy of each.
        mode.map_or(std::ptr::null(), static_c_str)
    })
}

/// A NUL-terminated copy of a static mode name, made once per name.
fn static_c_str(s: &'static str) -> *const c_char {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<&'static str, CString>>> = OnceLock::new();
    let mut m = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    m.entry(s).or_insert_with(|| cstring(s)).as_ptr()
}

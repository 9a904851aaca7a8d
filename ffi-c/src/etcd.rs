//! The cluster-wide IPAM store on etcd (cargo feature `etcd`: the library built with it is
//! `libunderlay_etcd`, pkg-config `underlay-etcd`, which defines `UNDERLAY_ETCD` for the
//! header's etcd section). A configuration, a connected store (usable wherever an
//! `underlay_ipam_store` is), its per-host report and its per-host gc. See docs/ipam-etcd.md.

use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::Arc;
use std::time::Duration;

use underlay::ipam::{self, EtcdConfig, Store};

use crate::ipam::{owners, underlay_ipam_store};
use crate::list::underlay_string_list;
use crate::result::underlay_result;
use crate::support::{
    block, cstring, free, guard, guard_value, invalid, m, null, opt_ptr, out, r, s, R,
};

/// How to reach etcd: endpoints and settings. Made by `underlay_etcd_config_new`, adjusted by
/// the `_set_*` functions, used (any number of times) by `underlay_etcd_store_connect`, freed
/// by `underlay_etcd_config_free`.
pub struct underlay_etcd_config {
    inner: EtcdConfig,
    prefix: String,
}

/// A configuration for the `count` etcd client URLs `endpoints[i]` ("http://10.0.0.5:2379", or
/// "https://..." with `underlay_etcd_config_set_tls_ca`). Nothing is contacted yet.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_new(
    endpoints: *const *const c_char,
    count: usize,
    config_out: *mut *mut underlay_etcd_config,
) -> underlay_result {
    guard(|| {
        if endpoints.is_null() {
            return Err(null("endpoints"));
        }
        let o = out(config_out, "config_out")?;
        if count == 0 {
            return Err(invalid(
                "etcd needs at least one endpoint, e.g. \"http://127.0.0.1:2379\"",
            ));
        }
        // SAFETY: `endpoints` holds `count` pointers (the caller's contract).
        let list = unsafe { std::slice::from_raw_parts(endpoints, count) };
        let urls = list
            .iter()
            .map(|p| s(*p, "endpoints[i]").map(str::to_string))
            .collect::<R<Vec<_>>>()?;
        o.set_box(underlay_etcd_config {
            inner: EtcdConfig::new(urls),
            prefix: EtcdConfig::DEFAULT_PREFIX.to_string(),
        });
        Ok(())
    })
}

fn edit_config(
    config: *mut underlay_etcd_config,
    f: impl FnOnce(&mut underlay_etcd_config) -> R,
) -> underlay_result {
    guard(|| f(m(config, "config")?))
}

fn update(c: &mut underlay_etcd_config, f: impl FnOnce(EtcdConfig) -> EtcdConfig) {
    let cur = std::mem::replace(&mut c.inner, EtcdConfig::new(Vec::<String>::new()));
    c.inner = f(cur);
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Every key lives under `prefix` (default "/underlay/").
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_prefix(
    config: *mut underlay_etcd_config,
    prefix: *const c_char,
) -> underlay_result {
    edit_config(config, |c| {
        let p = s(prefix, "prefix")?.to_string();
        c.prefix = p.clone();
        update(c, |x| x.prefix(p));
        Ok(())
    })
}

/// The name stamped on this host's claims (default: the kernel's host name).
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_host(
    config: *mut underlay_etcd_config,
    host: *const c_char,
) -> underlay_result {
    edit_config(config, |c| {
        let h = s(host, "host")?.to_string();
        update(c, |x| x.host(h));
        Ok(())
    })
}

/// How long one request may take, in milliseconds (default 5000).
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_request_timeout(
    config: *mut underlay_etcd_config,
    ms: u64,
) -> underlay_result {
    edit_config(config, |c| {
        update(c, |x| x.request_timeout(millis(ms)));
        Ok(())
    })
}

/// How long connecting to one endpoint may take, in milliseconds (default 3000).
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_connect_timeout(
    config: *mut underlay_etcd_config,
    ms: u64,
) -> underlay_result {
    edit_config(config, |c| {
        update(c, |x| x.connect_timeout(millis(ms)));
        Ok(())
    })
}

/// How long a call is retried while no member answers, in milliseconds (default 15000); then
/// `UNDERLAY_RESULT_TIMEOUT`.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_retry_for(
    config: *mut underlay_etcd_config,
    ms: u64,
) -> underlay_result {
    edit_config(config, |c| {
        update(c, |x| x.retry_for(millis(ms)));
        Ok(())
    })
}

/// etcd's `--auth`: `user` and `password`, both given.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_user(
    config: *mut underlay_etcd_config,
    user: *const c_char,
    password: *const c_char,
) -> underlay_result {
    edit_config(config, |c| {
        let (u, p) = (s(user, "user")?.to_string(), s(password, "password")?);
        let p = p.to_string();
        update(c, |x| x.user(u, p));
        Ok(())
    })
}

/// TLS: the PEM file of the CA that signed the members' certificates.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_tls_ca(
    config: *mut underlay_etcd_config,
    ca_path: *const c_char,
) -> underlay_result {
    edit_config(config, |c| {
        let p = s(ca_path, "ca_path")?.to_string();
        update(c, |x| x.tls(p));
        Ok(())
    })
}

/// TLS client certificate (etcd's `--client-cert-auth`): the PEM certificate and key files.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_client_cert(
    config: *mut underlay_etcd_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> underlay_result {
    edit_config(config, |c| {
        let cert = s(cert_path, "cert_path")?.to_string();
        let key = s(key_path, "key_path")?.to_string();
        update(c, |x| x.client_cert(cert, key));
        Ok(())
    })
}

/// TLS: the name the members' certificate is checked against (default: the endpoint's host).
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_tls_domain(
    config: *mut underlay_etcd_config,
    domain: *const c_char,
) -> underlay_result {
    edit_config(config, |c| {
        let d = s(domain, "domain")?.to_string();
        update(c, |x| x.tls_domain(d));
        Ok(())
    })
}

/// etcd's `--max-txn-ops` (default 128): the most operations underlay puts in one transaction.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_max_txn_ops(
    config: *mut underlay_etcd_config,
    n: usize,
) -> underlay_result {
    edit_config(config, |c| {
        update(c, |x| x.max_txn_ops(n));
        Ok(())
    })
}

/// This host's claims carry an etcd lease of `ttl_ms` milliseconds, kept alive while the store
/// lives (off by default; see docs/ipam-etcd.md for the trade-off).
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_host_lease(
    config: *mut underlay_etcd_config,
    ttl_ms: u64,
) -> underlay_result {
    edit_config(config, |c| {
        update(c, |x| x.host_lease(millis(ttl_ms)));
        Ok(())
    })
}

/// Node slices of `size` addresses: this host picks inside its own blocks of a pool (off by
/// default).
#[no_mangle]
pub extern "C" fn underlay_etcd_config_set_slices(
    config: *mut underlay_etcd_config,
    size: u32,
) -> underlay_result {
    edit_config(config, |c| {
        update(c, |x| x.slices(size));
        Ok(())
    })
}

/// Frees a configuration. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_etcd_config_free(config: *mut underlay_etcd_config) {
    guard_value((), || free(config))
}

/// A connected etcd store. Thread-safe. Free with `underlay_etcd_store_free`.
pub struct underlay_etcd_store {
    inner: ipam::EtcdStore,
    host: CString,
    prefix: CString,
    endpoints: Vec<CString>,
}

/// Connects to etcd as `config` says and checks that it answers: `UNDERLAY_RESULT_TIMEOUT`
/// naming the endpoints when none answers in time, `UNDERLAY_RESULT_PROTOCOL` when an endpoint
/// answers but does not speak etcd's protocol, `UNDERLAY_RESULT_PERMISSION_DENIED` on wrong
/// credentials. `config` is left as it was.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_connect(
    config: *const underlay_etcd_config,
    store_out: *mut *mut underlay_etcd_store,
) -> underlay_result {
    guard(|| {
        let c = r(config, "config")?;
        let o = out(store_out, "store_out")?;
        let endpoints = c.inner.endpoints().iter().map(cstring).collect();
        let st = block(ipam::EtcdStore::connect(c.inner.clone()))?;
        o.set_box(underlay_etcd_store {
            host: cstring(st.host()),
            prefix: cstring(c.prefix.clone()),
            endpoints,
            inner: st,
        });
        Ok(())
    })
}

/// Frees the store handle (IPAM stores made from it keep the connection). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_free(store: *mut underlay_etcd_store) {
    guard_value((), || free(store))
}

/// The store as an IPAM store, for `underlay_ipam_create/open/open_or_create/delete` and
/// `underlay_networks_open_with_store` (free with `underlay_ipam_store_free`).
#[no_mangle]
pub extern "C" fn underlay_etcd_store_ipam_store(
    store: *const underlay_etcd_store,
    ipam_store_out: *mut *mut underlay_ipam_store,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let o = out(ipam_store_out, "ipam_store_out")?;
        o.set_box(underlay_ipam_store {
            inner: Arc::new(st.inner.clone()),
        });
        Ok(())
    })
}

/// The host name stamped on this store's claims; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_host(store: *const underlay_etcd_store) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(store, "store").map_or(std::ptr::null(), |x| x.host.as_ptr())
    })
}

/// The key prefix; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_prefix(store: *const underlay_etcd_store) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(store, "store").map_or(std::ptr::null(), |x| x.prefix.as_ptr())
    })
}

/// The number of endpoints, as given (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_etcd_store_endpoint_count(store: *const underlay_etcd_store) -> usize {
    guard_value(0, || r(store, "store").map_or(0, |x| x.endpoints.len()))
}

/// Endpoint `index`; borrowed. NULL when out of range or for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_endpoint(
    store: *const underlay_etcd_store,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(store, "store")
            .ok()
            .and_then(|x| x.endpoints.get(index))
            .map_or(std::ptr::null(), |e| e.as_ptr())
    })
}

/// The TTL in milliseconds of the etcd lease this host's claims carry, 0 when off (and for
/// NULL).
#[no_mangle]
pub extern "C" fn underlay_etcd_store_host_lease_ttl(store: *const underlay_etcd_store) -> u64 {
    guard_value(0, || {
        r(store, "store").map_or(0, |x| {
            x.inner
                .host_lease_ttl()
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        })
    })
}

/// The names of the networks defined in the store (their pools: open one with
/// `underlay_ipam_open` and read `underlay_ipam_pool`).
#[no_mangle]
pub extern "C" fn underlay_etcd_store_networks(
    store: *const underlay_etcd_store,
    names_out: *mut *mut underlay_string_list,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let o = out(names_out, "names_out")?;
        let nets = block(st.inner.networks())?;
        o.set_box(underlay_string_list::new(
            nets.iter().map(|n| n.name().to_string()),
        ));
        Ok(())
    })
}

/// One leased address of an etcd store's report: the address, its owner and its boot id.
pub struct underlay_etcd_record {
    address: CString,
    container_id: CString,
    ifname: CString,
    boot_id: Option<CString>,
}

impl underlay_etcd_record {
    fn new(rec: ipam::Record) -> underlay_etcd_record {
        underlay_etcd_record {
            address: cstring(rec.addr.to_string()),
            container_id: cstring(rec.owner.container_id()),
            ifname: cstring(rec.owner.ifname().as_str()),
            boot_id: rec.boot_id.map(|b| cstring(b.as_str())),
        }
    }
}

/// Records (owned; free with `underlay_etcd_record_list_free`).
pub struct underlay_etcd_record_list {
    items: Vec<underlay_etcd_record>,
}

fn records(v: Vec<ipam::Record>) -> underlay_etcd_record_list {
    underlay_etcd_record_list {
        items: v.into_iter().map(underlay_etcd_record::new).collect(),
    }
}

/// The number of records in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_etcd_record_list_count(list: *const underlay_etcd_record_list) -> usize {
    guard_value(0, || r(list, "list").map_or(0, |l| l.items.len()))
}

/// Record `index` of `list`, borrowed (valid while the list lives); NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_etcd_record_list_get(
    list: *const underlay_etcd_record_list,
    index: usize,
) -> *const underlay_etcd_record {
    guard_value(std::ptr::null(), || {
        r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |x| x as *const underlay_etcd_record)
    })
}

/// Frees `list` and its records. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_etcd_record_list_free(list: *mut underlay_etcd_record_list) {
    guard_value((), || free(list))
}

/// The address ("10.0.0.5"); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_record_address(rec: *const underlay_etcd_record) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(rec, "record").map_or(std::ptr::null(), |x| x.address.as_ptr())
    })
}

/// The owner's container id; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_record_container_id(
    rec: *const underlay_etcd_record,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(rec, "record").map_or(std::ptr::null(), |x| x.container_id.as_ptr())
    })
}

/// The owner's interface name; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_record_ifname(rec: *const underlay_etcd_record) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(rec, "record").map_or(std::ptr::null(), |x| x.ifname.as_ptr())
    })
}

/// The boot id the address was claimed under, NULL if not stamped; borrowed.
#[no_mangle]
pub extern "C" fn underlay_etcd_record_boot_id(rec: *const underlay_etcd_record) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(rec, "record").map_or(std::ptr::null(), |x| opt_ptr(&x.boot_id))
    })
}

/// Every leased address of one network, grouped by the host that claimed it. Free with
/// `underlay_etcd_report_free`.
pub struct underlay_etcd_report {
    hosts: Vec<(CString, underlay_etcd_record_list)>,
}

/// Every leased address of network `name`, grouped by host.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_addresses_by_host(
    store: *const underlay_etcd_store,
    name: *const c_char,
    report_out: *mut *mut underlay_etcd_report,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = s(name, "name")?;
        let o = out(report_out, "report_out")?;
        let by_host = block(st.inner.addresses_by_host(n))?;
        o.set_box(underlay_etcd_report {
            hosts: by_host
                .into_iter()
                .map(|(h, v)| (cstring(h), records(v)))
                .collect(),
        });
        Ok(())
    })
}

/// The number of hosts in the report, in name order (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_etcd_report_host_count(report: *const underlay_etcd_report) -> usize {
    guard_value(0, || r(report, "report").map_or(0, |x| x.hosts.len()))
}

/// The name of host `index`; borrowed. NULL when out of range or for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_report_host(
    report: *const underlay_etcd_report,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(report, "report")
            .ok()
            .and_then(|x| x.hosts.get(index))
            .map_or(std::ptr::null(), |h| h.0.as_ptr())
    })
}

/// The records of host `index`, borrowed (valid while the report lives); NULL when out of
/// range or for NULL.
#[no_mangle]
pub extern "C" fn underlay_etcd_report_records(
    report: *const underlay_etcd_report,
    index: usize,
) -> *const underlay_etcd_record_list {
    guard_value(std::ptr::null(), || {
        r(report, "report")
            .ok()
            .and_then(|x| x.hosts.get(index))
            .map_or(std::ptr::null(), |h| {
                &h.1 as *const underlay_etcd_record_list
            })
    })
}

/// Frees a report. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_etcd_report_free(report: *mut underlay_etcd_report) {
    guard_value((), || free(report))
}

/// Releases, in network `name`, every address claimed by host `host` whose owner is not among
/// the `count` valid owners (`container_ids[i]`, `ifnames[i]`; the arrays may be NULL when
/// `count` is 0): each host collects its own garbage without touching the other hosts' leases
/// (`underlay_ipam_gc` over this store is cluster-wide). `*released_out` lists the released
/// records.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_gc_host(
    store: *const underlay_etcd_store,
    name: *const c_char,
    host: *const c_char,
    container_ids: *const *const c_char,
    ifnames: *const *const c_char,
    count: usize,
    released_out: *mut *mut underlay_etcd_record_list,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let (n, h) = (s(name, "name")?, s(host, "host")?);
        let o = out(released_out, "released_out")?;
        let valid = owners(container_ids, ifnames, count)?;
        o.set_box(records(block(st.inner.gc_host(n, h, &valid))?));
        Ok(())
    })
}

/// The hosts using network `name` (those that joined it and have not left), sorted.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_members(
    store: *const underlay_etcd_store,
    name: *const c_char,
    hosts_out: *mut *mut underlay_string_list,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = s(name, "name")?;
        let o = out(hosts_out, "hosts_out")?;
        o.set_box(underlay_string_list::new(block(st.inner.members(n))?));
        Ok(())
    })
}

/// The node slices of one network, grouped by the host holding them. Free with
/// `underlay_etcd_slices_free`.
pub struct underlay_etcd_slices {
    hosts: Vec<(CString, Vec<(CString, u32)>)>,
}

/// Every slice of network `name` (`underlay_etcd_config_set_slices`), grouped by host.
#[no_mangle]
pub extern "C" fn underlay_etcd_store_slices_by_host(
    store: *const underlay_etcd_store,
    name: *const c_char,
    slices_out: *mut *mut underlay_etcd_slices,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = s(name, "name")?;
        let o = out(slices_out, "slices_out")?;
        let by_host = block(st.inner.slices_by_host(n))?;
        o.set_box(underlay_etcd_slices {
            hosts: by_host
                .into_iter()
                .map(|(h, v)| {
                    let v = v.into_iter().map(|(a, k)| (cstring(a.to_string()), k));
                    (cstring(h), v.collect())
                })
                .collect(),
        });
        Ok(())
    })
}

/// The number of hosts holding slices (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_etcd_slices_host_count(slices: *const underlay_etcd_slices) -> usize {
    guard_value(0, || r(slices, "slices").map_or(0, |x| x.hosts.len()))
}

/// The name of host `host`; borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_etcd_slices_host(
    slices: *const underlay_etcd_slices,
    host: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(slices, "slices")
            .ok()
            .and_then(|x| x.hosts.get(host))
            .map_or(std::ptr::null(), |h| h.0.as_ptr())
    })
}

/// The number of slices host `host` holds (0 when out of range).
#[no_mangle]
pub extern "C" fn underlay_etcd_slices_count(
    slices: *const underlay_etcd_slices,
    host: usize,
) -> usize {
    guard_value(0, || {
        r(slices, "slices")
            .ok()
            .and_then(|x| x.hosts.get(host))
            .map_or(0, |h| h.1.len())
    })
}

/// The first address of slice `index` of host `host`; borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_etcd_slices_first(
    slices: *const underlay_etcd_slices,
    host: usize,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(slices, "slices")
            .ok()
            .and_then(|x| x.hosts.get(host))
            .and_then(|h| h.1.get(index))
            .map_or(std::ptr::null(), |s| s.0.as_ptr())
    })
}

/// The size (addresses) of slice `index` of host `host`; 0 when out of range.
#[no_mangle]
pub extern "C" fn underlay_etcd_slices_size(
    slices: *const underlay_etcd_slices,
    host: usize,
    index: usize,
) -> u32 {
    guard_value(0, || {
        r(slices, "slices")
            .ok()
            .and_then(|x| x.hosts.get(host))
            .and_then(|h| h.1.get(index))
            .map_or(0, |s| s.1)
    })
}

/// Frees a slice report. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_etcd_slices_free(slices: *mut underlay_etcd_slices) {
    guard_value((), || free(slices))
}

/// Deletes the slices of `host` in network `name` that hold no lease (a dead or drained host's
/// blocks go back to the pool); `*firsts_out` lists their first addresses. Leases inside a
/// slice keep it: release them first (`underlay_etcd_store_gc_host`).
#[no_mangle]
pub extern "C" fn underlay_etcd_store_gc_slices(
    store: *const underlay_etcd_store,
    name: *const c_char,
    host: *const c_char,
    firsts_out: *mut *mut underlay_string_list,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let (n, h) = (s(name, "name")?, s(host, "host")?);
        let o = out(firsts_out, "firsts_out")?;
        let v = block(st.inner.gc_slices(n, h))?;
        o.set_box(underlay_string_list::new(
            v.into_iter().map(|a| a.to_string()),
        ));
        Ok(())
    })
}

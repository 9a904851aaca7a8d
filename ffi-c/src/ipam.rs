//! The IPAM: stores, network definitions (pools), allocate, release, lookup, list, gc.

use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::Arc;

use underlay::ipam::{
    self, HostLocalStore, Lease, LocalStore, MemoryStore, Owner, Pool, Request, Store,
};
use underlay::Ipam;

use crate::result::underlay_result;
use crate::support::{
    block, cstring, free, guard, guard_value, ip, m, null, opt_ptr, out, r, s, R,
};

/// Where leases live: a local journaled store, a CNI host-local directory, or memory.
/// Shareable: several IPAMs and networks may use one store. Free with `underlay_ipam_store_free`.
pub struct underlay_ipam_store {
    pub(crate) inner: Arc<dyn Store>,
}

/// Opens (creating it, mode 0700, if missing) the local store in directory `dir`.
#[no_mangle]
pub extern "C" fn underlay_ipam_store_open_local(
    dir: *const c_char,
    store_out: *mut *mut underlay_ipam_store,
) -> underlay_result {
    guard(|| {
        let d = s(dir, "dir")?;
        let o = out(store_out, "store_out")?;
        let st = LocalStore::open(d)?;
        o.set_box(underlay_ipam_store {
            inner: Arc::new(st),
        });
        Ok(())
    })
}

/// Opens a store in CNI host-local layout (one file per address) in directory `dir`.
#[no_mangle]
pub extern "C" fn underlay_ipam_store_open_hostlocal(
    dir: *const c_char,
    store_out: *mut *mut underlay_ipam_store,
) -> underlay_result {
    guard(|| {
        let d = s(dir, "dir")?;
        let o = out(store_out, "store_out")?;
        let st = HostLocalStore::open(d)?;
        o.set_box(underlay_ipam_store {
            inner: Arc::new(st),
        });
        Ok(())
    })
}

/// A store in memory (nothing persists; for tests).
#[no_mangle]
pub extern "C" fn underlay_ipam_store_new_memory(
    store_out: *mut *mut underlay_ipam_store,
) -> underlay_result {
    guard(|| {
        out(store_out, "store_out")?.set_box(underlay_ipam_store {
            inner: Arc::new(MemoryStore::new()),
        });
        Ok(())
    })
}

/// Frees the store handle (IPAMs opened on it keep it alive). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_ipam_store_free(store: *mut underlay_ipam_store) {
    guard_value((), || free(store))
}

/// An IPAM network definition under construction: a name and pools. Free with
/// `underlay_ipam_network_free`.
pub struct underlay_ipam_network {
    name: String,
    pools: Vec<Pool>,
}

impl underlay_ipam_network {
    fn build(&self) -> R<ipam::Network> {
        Ok(ipam::Network::new(self.name.clone(), self.pools.clone())?)
    }
}

/// A new definition `name` without pools yet (the name is checked when it is used).
#[no_mangle]
pub extern "C" fn underlay_ipam_network_new(
    name: *const c_char,
    network_out: *mut *mut underlay_ipam_network,
) -> underlay_result {
    guard(|| {
        let n = s(name, "name")?;
        out(network_out, "network_out")?.set_box(underlay_ipam_network {
            name: n.to_string(),
            pools: Vec::new(),
        });
        Ok(())
    })
}

/// Adds a pool written as text: "172.16.10.0/24 gateway=172.16.10.1 range=172.16.10.128/25
/// reserve=exclude_host=172.16.10.21" (the same syntax as the Rust `Pool` parser).
#[no_mangle]
pub extern "C" fn underlay_ipam_network_add_pool(
    network: *mut underlay_ipam_network,
    pool: *const c_char,
) -> underlay_result {
    guard(|| {
        let n = m(network, "network")?;
        let p: Pool = s(pool, "pool")?.parse()?;
        n.pools.push(p);
        Ok(())
    })
}

/// Frees a definition. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_ipam_network_free(network: *mut underlay_ipam_network) {
    guard_value((), || free(network))
}

/// An IPAM on one network of one store. Thread-safe. Free with `underlay_ipam_free`.
pub struct underlay_ipam {
    pub(crate) inner: Ipam,
    name: CString,
    /// Each pool as text, in `underlay_ipam_network_add_pool`'s syntax.
    pools: Vec<CString>,
}

impl underlay_ipam {
    pub(crate) fn new(inner: Ipam) -> underlay_ipam {
        underlay_ipam {
            name: cstring(inner.network().name()),
            pools: inner
                .network()
                .pools()
                .iter()
                .map(|p| cstring(p.to_string()))
                .collect(),
            inner,
        }
    }
}

/// Opens the network `name` already defined in `store`.
#[no_mangle]
pub extern "C" fn underlay_ipam_open(
    store: *const underlay_ipam_store,
    name: *const c_char,
    ipam_out: *mut *mut underlay_ipam,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = s(name, "name")?;
        let o = out(ipam_out, "ipam_out")?;
        let i = block(Ipam::open(st.inner.clone(), n))?;
        o.set_box(underlay_ipam::new(i));
        Ok(())
    })
}

/// Defines `network` in `store` (`UNDERLAY_RESULT_ALREADY_EXISTS` if the name is taken,
/// `UNDERLAY_RESULT_OVERLAP` if pools overlap) and opens it.
#[no_mangle]
pub extern "C" fn underlay_ipam_create(
    store: *const underlay_ipam_store,
    network: *const underlay_ipam_network,
    ipam_out: *mut *mut underlay_ipam,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = r(network, "network")?.build()?;
        let o = out(ipam_out, "ipam_out")?;
        let i = block(Ipam::create(st.inner.clone(), n))?;
        o.set_box(underlay_ipam::new(i));
        Ok(())
    })
}

/// Opens `network` in `store`, defining it first if absent (`UNDERLAY_RESULT_CONFLICT` if it
/// exists with another definition).
#[no_mangle]
pub extern "C" fn underlay_ipam_open_or_create(
    store: *const underlay_ipam_store,
    network: *const underlay_ipam_network,
    ipam_out: *mut *mut underlay_ipam,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = r(network, "network")?.build()?;
        let o = out(ipam_out, "ipam_out")?;
        let i = block(Ipam::open_or_create(st.inner.clone(), n))?;
        o.set_box(underlay_ipam::new(i));
        Ok(())
    })
}

/// Defines `network` for this host, or joins the identical definition another host (or an
/// earlier run) stored, and opens it; `*created_out` says whether this call created it. On a
/// store shared by hosts (etcd) this host counts as a member until `underlay_ipam_leave`;
/// another definition under that name is `UNDERLAY_RESULT_CONFLICT`.
#[no_mangle]
pub extern "C" fn underlay_ipam_join(
    store: *const underlay_ipam_store,
    network: *const underlay_ipam_network,
    ipam_out: *mut *mut underlay_ipam,
    created_out: *mut bool,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = r(network, "network")?.build()?;
        let o = out(ipam_out, "ipam_out")?;
        let c = out(created_out, "created_out")?;
        let (i, joined) = block(Ipam::join(st.inner.clone(), n))?;
        o.set_box(underlay_ipam::new(i));
        c.set(joined == ipam::Joined::Created);
        Ok(())
    })
}

/// Ends this host's use of network `name` (`UNDERLAY_RESULT_BUSY` while this host holds leases
/// in it): deletes the definition when no other host uses it (`*remaining_out` is then empty),
/// else drops only this host's membership (`*remaining_out` lists the hosts still using it).
#[no_mangle]
pub extern "C" fn underlay_ipam_leave(
    store: *const underlay_ipam_store,
    name: *const c_char,
    remaining_out: *mut *mut crate::list::underlay_string_list,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = s(name, "name")?;
        let o = out(remaining_out, "remaining_out")?;
        let hosts = match block(Ipam::leave(st.inner.as_ref(), n))? {
            ipam::Left::Deleted => Vec::new(),
            ipam::Left::Kept(hosts) => hosts,
        };
        o.set_box(crate::list::underlay_string_list::new(hosts));
        Ok(())
    })
}

/// Removes network `name` from `store` (`UNDERLAY_RESULT_BUSY` while it holds leases).
#[no_mangle]
pub extern "C" fn underlay_ipam_delete(
    store: *const underlay_ipam_store,
    name: *const c_char,
) -> underlay_result {
    guard(|| {
        let st = r(store, "store")?;
        let n = s(name, "name")?;
        block(Ipam::delete(st.inner.as_ref(), n))
    })
}

/// Frees the IPAM handle. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_ipam_free(ipam: *mut underlay_ipam) {
    guard_value((), || free(ipam))
}

/// A lease: an owner (container id + interface) and its addresses. From allocate/lookup (free
/// with `underlay_lease_free`) or borrowed from an `underlay_lease_list`.
pub struct underlay_lease {
    container_id: CString,
    ifname: CString,
    addresses: Vec<(CString, Option<CString>)>,
    boot_id: Option<CString>,
    /// Set for a quarantine (conflict detection): the MAC that answered, and since when.
    quarantine: Option<(Option<CString>, u64)>,
}

impl underlay_lease {
    fn new(l: Lease) -> underlay_lease {
        underlay_lease {
            container_id: cstring(l.owner.container_id()),
            ifname: cstring(l.owner.ifname().as_str()),
            addresses: l
                .addresses
                .iter()
                .map(|a| {
                    (
                        cstring(a.address.to_string()),
                        a.gateway.map(|g| cstring(g.to_string())),
                    )
                })
                .collect(),
            boot_id: l.boot_id.as_ref().map(|b| cstring(b.as_str())),
            quarantine: l
                .quarantine()
                .map(|q| (q.mac.map(|m| cstring(m.to_string())), q.since)),
        }
    }
}

/// A list of leases (owned; free with `underlay_lease_list_free`).
pub struct underlay_lease_list {
    pub(crate) items: Vec<underlay_lease>,
}

/// The number of leases in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_lease_list_count(list: *const underlay_lease_list) -> usize {
    crate::support::guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// Item `index` of `list`, borrowed: valid while the list lives, never freed alone. NULL when
/// `list` is NULL or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_lease_list_get(
    list: *const underlay_lease_list,
    index: usize,
) -> *const underlay_lease {
    crate::support::guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_lease)
    })
}

/// Frees `list` and every item in it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_lease_list_free(list: *mut underlay_lease_list) {
    crate::support::guard_value((), || crate::support::free(list))
}

fn leases(v: Vec<Lease>) -> underlay_lease_list {
    underlay_lease_list {
        items: v.into_iter().map(underlay_lease::new).collect(),
    }
}

/// Frees a lease from allocate/lookup (never one borrowed from a list). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_lease_free(lease: *mut underlay_lease) {
    guard_value((), || free(lease))
}

/// The owner's container id; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_lease_container_id(lease: *const underlay_lease) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease").map_or(std::ptr::null(), |l| l.container_id.as_ptr())
    })
}

/// The owner's interface name; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_lease_ifname(lease: *const underlay_lease) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease").map_or(std::ptr::null(), |l| l.ifname.as_ptr())
    })
}

/// The number of addresses in the lease (one per pool family asked for; 0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_lease_address_count(lease: *const underlay_lease) -> usize {
    guard_value(0, || r(lease, "lease").map_or(0, |l| l.addresses.len()))
}

/// Address `index` with its prefix ("172.16.10.101/24"); borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_lease_address(
    lease: *const underlay_lease,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease")
            .ok()
            .and_then(|l| l.addresses.get(index))
            .map_or(std::ptr::null(), |a| a.0.as_ptr())
    })
}

/// The gateway of address `index`'s pool ("172.16.10.1"); borrowed. NULL when the pool has
/// none or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_lease_gateway(
    lease: *const underlay_lease,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease")
            .ok()
            .and_then(|l| l.addresses.get(index))
            .map_or(std::ptr::null(), |a| opt_ptr(&a.1))
    })
}

/// The `count` owners (`container_ids[i]`, `ifnames[i]`); the arrays may be NULL when `count`
/// is 0. Every pointer is checked before anything is read or allocated: `count` is the
/// caller's word, and a wrong one with NULL arrays must fail, not allocate.
pub(crate) fn owners(
    container_ids: *const *const c_char,
    ifnames: *const *const c_char,
    count: usize,
) -> R<Vec<Owner>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if container_ids.is_null() {
        return Err(null("container_ids"));
    }
    if ifnames.is_null() {
        return Err(null("ifnames"));
    }
    // SAFETY: both arrays hold `count` pointers (the caller's contract).
    let (c, n) = unsafe {
        (
            std::slice::from_raw_parts(container_ids, count),
            std::slice::from_raw_parts(ifnames, count),
        )
    };
    c.iter().zip(n).map(|(c, n)| owner(*c, *n)).collect()
}

/// Whether the lease is a quarantine: an address found in use on the wire by conflict
/// detection, held so that nobody is given it (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_lease_is_quarantine(lease: *const underlay_lease) -> bool {
    guard_value(false, || {
        r(lease, "lease").is_ok_and(|l| l.quarantine.is_some())
    })
}

/// A quarantine's MAC that answered ("02:42:ac:10:0a:65"); borrowed. NULL when the lease is
/// no quarantine or the MAC was not seen.
#[no_mangle]
pub extern "C" fn underlay_lease_quarantine_mac(lease: *const underlay_lease) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease")
            .ok()
            .and_then(|l| l.quarantine.as_ref())
            .map_or(std::ptr::null(), |q| opt_ptr(&q.0))
    })
}

/// When a quarantine's address answered, in seconds since the Unix epoch (0 when the lease
/// is no quarantine).
#[no_mangle]
pub extern "C" fn underlay_lease_quarantine_since(lease: *const underlay_lease) -> u64 {
    guard_value(0, || {
        r(lease, "lease")
            .ok()
            .and_then(|l| l.quarantine.as_ref())
            .map_or(0, |q| q.1)
    })
}

/// Releases (`container_id`, `ifname`)'s lease and quarantines `address`, answered for on the
/// wire by `mac` (NULL: not seen), in one commit. Only an address the owner held, or a free
/// one, is quarantined: `*made_out` says whether it was.
#[no_mangle]
pub extern "C" fn underlay_ipam_quarantine(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    address: *const c_char,
    mac: *const c_char,
    made_out: *mut bool,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = owner(container_id, ifname)?;
        let a = ip(address, "address")?;
        let m = match crate::support::opt_s(mac, "mac")? {
            Some(t) => Some(t.parse::<underlay::MacAddr>()?),
            None => None,
        };
        let made = out(made_out, "made_out")?;
        let q = block(
            i.inner
                .quarantine(&o, &[underlay::ipam::Quarantine::now(a, m)]),
        )?;
        made.set(!q.is_empty());
        Ok(())
    })
}

/// The quarantined addresses, as leases (`underlay_lease_is_quarantine` is true for each), by
/// address. Lift one with `underlay_ipam_release` of its owner.
#[no_mangle]
pub extern "C" fn underlay_ipam_quarantined(
    ipam: *const underlay_ipam,
    list_out: *mut *mut underlay_lease_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(list_out, "list_out")?;
        let mut v: Vec<Lease> = block(i.inner.list())?
            .into_iter()
            .filter(|l| l.quarantine().is_some())
            .collect();
        v.sort_by_key(|l| l.quarantine().map(|q| q.ip));
        o.set_box(leases(v));
        Ok(())
    })
}

pub(crate) fn owner(container_id: *const c_char, ifname: *const c_char) -> R<Owner> {
    Ok(Owner::new(
        s(container_id, "container_id")?,
        s(ifname, "ifname")?,
    )?)
}

/// Allocates an address for (`container_id`, `ifname`): `address` ("172.16.10.101") or, when
/// NULL, the next free one. Idempotent for one owner. `UNDERLAY_RESULT_POOL_EXHAUSTED` when no
/// address is left, `UNDERLAY_RESULT_ALREADY_EXISTS` when `address` is taken.
#[no_mangle]
pub extern "C" fn underlay_ipam_allocate(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    address: *const c_char,
    lease_out: *mut *mut underlay_lease,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let who = owner(container_id, ifname)?;
        let req = if address.is_null() {
            Request::any()
        } else {
            Request::ip(ip(address, "address")?)
        };
        let o = out(lease_out, "lease_out")?;
        let l = block(i.inner.allocate(&who, &req))?;
        o.set_box(underlay_lease::new(l));
        Ok(())
    })
}

/// Allocates the `count` addresses `ips[i]` ("172.16.10.101", one per pool at most) for
/// (`container_id`, `ifname`), the next free one in each pool none of them is in. Idempotent
/// for one owner. The array may be NULL when `count` is 0 (then: any free address per pool).
#[no_mangle]
pub extern "C" fn underlay_ipam_allocate_ips(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    ips: *const *const c_char,
    count: usize,
    lease_out: *mut *mut underlay_lease,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let who = owner(container_id, ifname)?;
        if count > 0 && ips.is_null() {
            return Err(null("ips"));
        }
        let o = out(lease_out, "lease_out")?;
        let list = if count > 0 {
            // SAFETY: `ips` holds `count` pointers (the caller's contract).
            unsafe { std::slice::from_raw_parts(ips, count) }
        } else {
            &[]
        };
        let mut req = Request::any();
        for p in list {
            req = req.and_ip(ip(*p, "ips[i]")?);
        }
        let l = block(i.inner.allocate(&who, &req))?;
        o.set_box(underlay_lease::new(l));
        Ok(())
    })
}

/// Releases the lease of (`container_id`, `ifname`); `*released_out` says whether there was
/// one (releasing twice is not an error).
#[no_mangle]
pub extern "C" fn underlay_ipam_release(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    released_out: *mut bool,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let who = owner(container_id, ifname)?;
        let o = out(released_out, "released_out")?;
        o.set(block(i.inner.release(&who))?.is_some());
        Ok(())
    })
}

/// The lease of (`container_id`, `ifname`): `*lease_out` is a new lease, or NULL when the owner
/// has none (that is success).
#[no_mangle]
pub extern "C" fn underlay_ipam_lookup(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    lease_out: *mut *mut underlay_lease,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let who = owner(container_id, ifname)?;
        let o = out(lease_out, "lease_out")?;
        match block(i.inner.lookup(&who))? {
            Some(l) => o.set_box(underlay_lease::new(l)),
            None => o.set(std::ptr::null_mut()),
        }
        Ok(())
    })
}

/// Every lease of the network.
#[no_mangle]
pub extern "C" fn underlay_ipam_list(
    ipam: *const underlay_ipam,
    list_out: *mut *mut underlay_lease_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(list_out, "list_out")?;
        o.set_box(leases(block(i.inner.list())?));
        Ok(())
    })
}

/// Releases every lease whose owner is not among the `count` valid owners
/// (`container_ids[i]`, `ifnames[i]`); `*released_out` lists what was released. The arrays
/// may be NULL when `count` is 0.
#[no_mangle]
pub extern "C" fn underlay_ipam_gc(
    ipam: *const underlay_ipam,
    container_ids: *const *const c_char,
    ifnames: *const *const c_char,
    count: usize,
    released_out: *mut *mut underlay_lease_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(released_out, "released_out")?;
        let valid = owners(container_ids, ifnames, count)?;
        o.set_box(leases(block(i.inner.gc(&valid))?));
        Ok(())
    })
}

/// Releases the leases taken before the last reboot (their boot id differs from this boot's);
/// `*released_out` lists them.
#[no_mangle]
pub extern "C" fn underlay_ipam_release_stale(
    ipam: *const underlay_ipam,
    released_out: *mut *mut underlay_lease_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(released_out, "released_out")?;
        o.set_box(leases(block(i.inner.release_stale())?));
        Ok(())
    })
}

/// The network's name; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_ipam_name(ipam: *const underlay_ipam) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(ipam, "ipam").map_or(std::ptr::null(), |i| i.name.as_ptr())
    })
}

/// The number of pools of the network (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_ipam_pool_count(ipam: *const underlay_ipam) -> usize {
    guard_value(0, || r(ipam, "ipam").map_or(0, |i| i.pools.len()))
}

/// Pool `index` as text ("172.16.10.0/24 gateway=172.16.10.1 ...", the syntax
/// `underlay_ipam_network_add_pool` reads); borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_ipam_pool(ipam: *const underlay_ipam, index: usize) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(ipam, "ipam")
            .ok()
            .and_then(|i| i.pools.get(index))
            .map_or(std::ptr::null(), |p| p.as_ptr())
    })
}

/// The boot id new leases are stamped with, NULL when none (or the store keeps none); a new
/// string (free with `underlay_string_free`).
#[no_mangle]
pub extern "C" fn underlay_ipam_boot_id(ipam: *const underlay_ipam) -> *mut c_char {
    guard_value(std::ptr::null_mut(), || {
        r(ipam, "ipam")
            .ok()
            .and_then(|i| i.inner.boot_id())
            .map_or(std::ptr::null_mut(), |b| {
                crate::support::owned_string(b.as_str())
            })
    })
}

/// Stamps new leases with `boot_id` (NULL: no stamp); ignored by stores that keep no boot ids.
#[no_mangle]
pub extern "C" fn underlay_ipam_set_boot_id(
    ipam: *const underlay_ipam,
    boot_id: *const c_char,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let b = match crate::support::opt_s(boot_id, "boot_id")? {
            Some(text) => Some(ipam::BootId::new(text)?),
            None => None,
        };
        i.inner.set_boot_id(b);
        Ok(())
    })
}

/// The leases taken before the last reboot (what `underlay_ipam_release_stale` would release).
#[no_mangle]
pub extern "C" fn underlay_ipam_stale(
    ipam: *const underlay_ipam,
    list_out: *mut *mut underlay_lease_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(list_out, "list_out")?;
        o.set_box(leases(block(i.inner.stale())?));
        Ok(())
    })
}

/// The boot id the lease was taken under, NULL if not stamped; borrowed.
#[no_mangle]
pub extern "C" fn underlay_lease_boot_id(lease: *const underlay_lease) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease").map_or(std::ptr::null(), |l| opt_ptr(&l.boot_id))
    })
}

/// The running kernel's boot id, a new string in `*boot_id_out` (free with
/// `underlay_string_free`).
#[no_mangle]
pub extern "C" fn underlay_current_boot_id(boot_id_out: *mut *mut c_char) -> underlay_result {
    guard(|| {
        let o = out(boot_id_out, "boot_id_out")?;
        let b = ipam::BootId::current()?;
        o.set(crate::support::owned_string(b.as_str()));
        Ok(())
    })
}

//! Addresses on links, as strings ("172.16.10.101/24").

use std::ffi::CString;
use std::os::raw::c_char;

use crate::handle::underlay_handle;
use crate::result::underlay_result;
use crate::support::{block, cstring, guard, guard_value, net, opt_ptr, opt_s, out, r, s};

/// An address as the kernel reports it (an item of an `underlay_address_list`).
pub struct underlay_address {
    inner: underlay::Address,
    address: CString,
    scope: CString,
    label: Option<CString>,
    peer: Option<CString>,
    broadcast: Option<CString>,
}

impl underlay_address {
    fn new(a: underlay::Address) -> underlay_address {
        underlay_address {
            address: cstring(a.address.to_string()),
            scope: cstring(a.scope),
            label: a.label.clone().map(cstring),
            peer: a.peer.map(|p| cstring(p.to_string())),
            broadcast: a.broadcast.map(|b| cstring(b.to_string())),
            inner: a,
        }
    }
}

/// A list of addresses (owned; free with `underlay_address_list_free`).
pub struct underlay_address_list {
    pub(crate) items: Vec<underlay_address>,
}

/// The number of addresses in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_list_count(list: *const underlay_address_list) -> usize {
    crate::support::guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// Item `index` of `list`, borrowed: valid while the list lives, never freed alone. NULL when
/// `list` is NULL or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_address_list_get(
    list: *const underlay_address_list,
    index: usize,
) -> *const underlay_address {
    crate::support::guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_address)
    })
}

/// Frees `list` and every item in it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_address_list_free(list: *mut underlay_address_list) {
    crate::support::guard_value((), || crate::support::free(list))
}

/// Adds `address` ("172.16.10.101/24", "fd00::5/64") to link `link` (a name).
#[no_mangle]
pub extern "C" fn underlay_handle_address_add(
    handle: *const underlay_handle,
    link: *const c_char,
    address: *const c_char,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let (l, a) = (s(link, "link")?, net(address, "address")?);
        block(h.inner.add_address(l, a))
    })
}

/// Adds `address` to `link` with options: `nodad` (IPv6: no duplicate address detection, usable
/// at once) and `noprefixroute` (no prefix route).
#[no_mangle]
pub extern "C" fn underlay_handle_address_add_with(
    handle: *const underlay_handle,
    link: *const c_char,
    address: *const c_char,
    nodad: bool,
    noprefixroute: bool,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let (l, a) = (s(link, "link")?, net(address, "address")?);
        let opts = underlay::AddressOptions {
            nodad,
            noprefixroute,
        };
        block(h.inner.add_address_with(l, a, opts))
    })
}

/// Adds or replaces `address` on `link`.
#[no_mangle]
pub extern "C" fn underlay_handle_address_replace(
    handle: *const underlay_handle,
    link: *const c_char,
    address: *const c_char,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let (l, a) = (s(link, "link")?, net(address, "address")?);
        block(h.inner.replace_address(l, a))
    })
}

/// Deletes `address` from `link`.
#[no_mangle]
pub extern "C" fn underlay_handle_address_delete(
    handle: *const underlay_handle,
    link: *const c_char,
    address: *const c_char,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let (l, a) = (s(link, "link")?, net(address, "address")?);
        block(h.inner.delete_address(l, a))
    })
}

/// The addresses on `link`, or on every link when `link` is NULL.
#[no_mangle]
pub extern "C" fn underlay_handle_address_list(
    handle: *const underlay_handle,
    link: *const c_char,
    list_out: *mut *mut underlay_address_list,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let l = opt_s(link, "link")?;
        let o = out(list_out, "list_out")?;
        let addrs = block(h.inner.addresses(l.map(Into::into)))?;
        o.set_box(underlay_address_list {
            items: addrs.into_iter().map(underlay_address::new).collect(),
        });
        Ok(())
    })
}

/// The address with its prefix ("172.16.10.101/24"); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_address_string(address: *const underlay_address) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(address, "address").map_or(std::ptr::null(), |a| a.address.as_ptr())
    })
}

/// The index of the link holding the address (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_link_index(address: *const underlay_address) -> u32 {
    guard_value(0, || r(address, "address").map_or(0, |a| a.inner.index))
}

/// The scope ("global", "link", "host"); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_address_scope(address: *const underlay_address) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(address, "address").map_or(std::ptr::null(), |a| a.scope.as_ptr())
    })
}

/// One flag of `address` (false for NULL).
fn address_flag(address: *const underlay_address, f: fn(&underlay::Address) -> bool) -> bool {
    guard_value(false, || r(address, "address").is_ok_and(|a| f(&a.inner)))
}

/// IPv6 duplicate address detection still running (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_tentative(address: *const underlay_address) -> bool {
    address_flag(address, |a| a.tentative)
}

/// Added without duplicate address detection, `nodad` (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_nodad(address: *const underlay_address) -> bool {
    address_flag(address, |a| a.nodad)
}

/// Added without its prefix route, `noprefixroute` (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_noprefixroute(address: *const underlay_address) -> bool {
    address_flag(address, |a| a.noprefixroute)
}

/// Not the link's first address in its subnet, `secondary` (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_secondary(address: *const underlay_address) -> bool {
    address_flag(address, |a| a.secondary)
}

/// Its preferred lifetime is over, `deprecated` (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_deprecated(address: *const underlay_address) -> bool {
    address_flag(address, |a| a.deprecated)
}

/// It has a finite lifetime (DHCP, SLAAC), `dynamic` (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_address_dynamic(address: *const underlay_address) -> bool {
    address_flag(address, |a| a.dynamic)
}

/// The label (IPv4), or NULL; borrowed.
#[no_mangle]
pub extern "C" fn underlay_address_label(address: *const underlay_address) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(address, "address").map_or(std::ptr::null(), |a| opt_ptr(&a.label))
    })
}

/// The peer of a point-to-point address ("10.9.0.2"), or NULL; borrowed.
#[no_mangle]
pub extern "C" fn underlay_address_peer(address: *const underlay_address) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(address, "address").map_or(std::ptr::null(), |a| opt_ptr(&a.peer))
    })
}

/// The broadcast address (IPv4, "10.1.0.255"), or NULL; borrowed.
#[no_mangle]
pub extern "C" fn underlay_address_broadcast(address: *const underlay_address) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(address, "address").map_or(std::ptr::null(), |a| opt_ptr(&a.broadcast))
    })
}

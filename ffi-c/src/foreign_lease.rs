//! Leases another tool left that underlay cannot take as its own (`Ipam::foreign_leases`).

use std::ffi::CString;
use std::os::raw::c_char;

use crate::ipam::underlay_ipam;
use crate::result::underlay_result;
use crate::support::{block, cstring, free, guard, guard_value, out, r};

/// The foreign leases of an IPAM network, by address (owned; free with
/// `underlay_foreign_lease_list_free`). Each blocks its address: underlay never hands it out
/// nor releases it; release it with the tool that wrote it (e.g. CNI host-local).
pub struct underlay_foreign_lease_list {
    items: Vec<[CString; 3]>,
}

/// The leases another tool left in the network that underlay cannot take as its own (a
/// host-local lease file with a container id over 256 bytes, or outside every pool).
#[no_mangle]
pub extern "C" fn underlay_ipam_foreign_leases(
    ipam: *const underlay_ipam,
    list_out: *mut *mut underlay_foreign_lease_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(list_out, "list_out")?;
        let items = block(i.inner.foreign_leases())?
            .into_iter()
            .map(|f| {
                [
                    cstring(f.addr.to_string()),
                    cstring(f.location),
                    cstring(f.reason),
                ]
            })
            .collect();
        o.set_box(underlay_foreign_lease_list { items });
        Ok(())
    })
}

/// The number of foreign leases in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_foreign_lease_list_count(
    list: *const underlay_foreign_lease_list,
) -> usize {
    guard_value(0, || r(list, "list").map_or(0, |l| l.items.len()))
}

fn field(list: *const underlay_foreign_lease_list, index: usize, which: usize) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |f| f[which].as_ptr())
    })
}

/// Lease `index`'s address ("10.26.0.2"), borrowed from `list`; NULL for NULL or out of range.
#[no_mangle]
pub extern "C" fn underlay_foreign_lease_list_address(
    list: *const underlay_foreign_lease_list,
    index: usize,
) -> *const c_char {
    field(list, index, 0)
}

/// Where lease `index` is kept (its file), borrowed from `list`; NULL for NULL or out of range.
#[no_mangle]
pub extern "C" fn underlay_foreign_lease_list_location(
    list: *const underlay_foreign_lease_list,
    index: usize,
) -> *const c_char {
    field(list, index, 1)
}

/// Why underlay cannot take lease `index` as its own, borrowed from `list`; NULL for NULL or
/// out of range.
#[no_mangle]
pub extern "C" fn underlay_foreign_lease_list_reason(
    list: *const underlay_foreign_lease_list,
    index: usize,
) -> *const c_char {
    field(list, index, 2)
}

/// Frees `list`. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_foreign_lease_list_free(list: *mut underlay_foreign_lease_list) {
    guard_value((), || free(list))
}

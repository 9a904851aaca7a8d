//! Shared reservations (`Ipam::hold`, `Ipam::unhold`, `Ipam::holds`): an address reserved for
//! one owner and held by several holders (hosts); the last holder's unhold frees it.

use std::ffi::CString;
use std::os::raw::c_char;

use crate::ipam::{owner, underlay_ipam};
use crate::list::underlay_string_list;
use crate::result::underlay_result;
use crate::support::{block, cstring, free, guard, guard_value, ip, out, r, s};

/// Reserves `address` for (`container_id`, `ifname`) on behalf of `holder` (e.g. this host's
/// name): the first hold leases it to the owner, later ones (any holder) add their hold. The
/// address stays out of every allocation while any holder keeps it. `*holders_out` lists the
/// holders now (owned; free with `underlay_string_list_free`).
/// `UNDERLAY_RESULT_ALREADY_EXISTS` when another owner leases the address,
/// `UNDERLAY_RESULT_CONFLICT` when the owner leases another one,
/// `UNDERLAY_RESULT_INVALID_ARGUMENT` for a bad holder or an address outside the pools.
#[no_mangle]
pub extern "C" fn underlay_ipam_hold(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    address: *const c_char,
    holder: *const c_char,
    holders_out: *mut *mut underlay_string_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = owner(container_id, ifname)?;
        let a = ip(address, "address")?;
        let h = s(holder, "holder")?;
        let out_list = out(holders_out, "holders_out")?;
        let held = block(i.inner.hold(&o, a, h))?;
        out_list.set_box(underlay_string_list::new(held.holders));
        Ok(())
    })
}

/// Drops `holder`'s hold of (`container_id`, `ifname`)'s shared reservation. Other holders
/// keep it (`*remaining_out` lists them, `*released_out` false); the last holder's unhold
/// releases the address (`*released_out` true, the list empty). Unholding what `holder` does
/// not hold changes nothing (false, empty).
#[no_mangle]
pub extern "C" fn underlay_ipam_unhold(
    ipam: *const underlay_ipam,
    container_id: *const c_char,
    ifname: *const c_char,
    holder: *const c_char,
    released_out: *mut bool,
    remaining_out: *mut *mut underlay_string_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = owner(container_id, ifname)?;
        let h = s(holder, "holder")?;
        let rel = out(released_out, "released_out")?;
        let rem = out(remaining_out, "remaining_out")?;
        let (released, rest) = match block(i.inner.unhold(&o, h))? {
            underlay::ipam::Unheld::Kept(rest) => (false, rest),
            underlay::ipam::Unheld::Released(_) => (true, Vec::new()),
            underlay::ipam::Unheld::NotHeld => (false, Vec::new()),
        };
        rel.set(released);
        rem.set_box(underlay_string_list::new(rest));
        Ok(())
    })
}

/// The shared reservations of an IPAM network, by address (owned; free with
/// `underlay_hold_list_free`).
pub struct underlay_hold_list {
    items: Vec<([CString; 3], Vec<CString>)>,
}

/// The shared reservations of the network with their holders.
#[no_mangle]
pub extern "C" fn underlay_ipam_holds(
    ipam: *const underlay_ipam,
    list_out: *mut *mut underlay_hold_list,
) -> underlay_result {
    guard(|| {
        let i = r(ipam, "ipam")?;
        let o = out(list_out, "list_out")?;
        let items = block(i.inner.holds())?
            .into_iter()
            .map(|h| {
                (
                    [
                        cstring(h.addr.to_string()),
                        cstring(h.owner.container_id()),
                        cstring(h.owner.ifname().as_str()),
                    ],
                    h.holders.into_iter().map(cstring).collect(),
                )
            })
            .collect();
        o.set_box(underlay_hold_list { items });
        Ok(())
    })
}

/// The number of reservations in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_hold_list_count(list: *const underlay_hold_list) -> usize {
    guard_value(0, || r(list, "list").map_or(0, |l| l.items.len()))
}

fn field(list: *const underlay_hold_list, index: usize, which: usize) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |f| f.0[which].as_ptr())
    })
}

/// Reservation `index`'s address ("10.26.0.1"), borrowed from `list`; NULL for NULL or out of
/// range.
#[no_mangle]
pub extern "C" fn underlay_hold_list_address(
    list: *const underlay_hold_list,
    index: usize,
) -> *const c_char {
    field(list, index, 0)
}

/// Reservation `index`'s owner's container id, borrowed; NULL for NULL or out of range.
#[no_mangle]
pub extern "C" fn underlay_hold_list_container_id(
    list: *const underlay_hold_list,
    index: usize,
) -> *const c_char {
    field(list, index, 1)
}

/// Reservation `index`'s owner's interface name, borrowed; NULL for NULL or out of range.
#[no_mangle]
pub extern "C" fn underlay_hold_list_ifname(
    list: *const underlay_hold_list,
    index: usize,
) -> *const c_char {
    field(list, index, 2)
}

/// How many holders reservation `index` has (0 for NULL or out of range).
#[no_mangle]
pub extern "C" fn underlay_hold_list_holder_count(
    list: *const underlay_hold_list,
    index: usize,
) -> usize {
    guard_value(0, || {
        r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(0, |f| f.1.len())
    })
}

/// Holder `holder` (sorted) of reservation `index`, borrowed; NULL for NULL or out of range.
#[no_mangle]
pub extern "C" fn underlay_hold_list_holder(
    list: *const underlay_hold_list,
    index: usize,
    holder: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .and_then(|f| f.1.get(holder))
            .map_or(std::ptr::null(), |h| h.as_ptr())
    })
}

/// Frees `list`. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_hold_list_free(list: *mut underlay_hold_list) {
    guard_value((), || free(list))
}

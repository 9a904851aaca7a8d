//! Handles: one netlink socket bound to one namespace.

use std::os::raw::c_char;

use underlay::Handle;

use crate::netns::underlay_netns;
use crate::result::underlay_result;
use crate::support::{block, free, guard, guard_value, out, r, s};

/// A netlink handle bound to one network namespace. Thread-safe: one handle may be used from
/// many threads at once. Free with `underlay_handle_free`.
pub struct underlay_handle {
    pub(crate) inner: Handle,
}

/// A handle on the calling process's namespace.
#[no_mangle]
pub extern "C" fn underlay_handle_new(handle_out: *mut *mut underlay_handle) -> underlay_result {
    guard(|| {
        let o = out(handle_out, "handle_out")?;
        let h = block(async { Handle::new() })?;
        o.set_box(underlay_handle { inner: h });
        Ok(())
    })
}

/// A handle inside `netns`.
#[no_mangle]
pub extern "C" fn underlay_handle_for_netns(
    netns: *const underlay_netns,
    handle_out: *mut *mut underlay_handle,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let o = out(handle_out, "handle_out")?;
        let h = block(Handle::for_netns(&ns.inner))?;
        o.set_box(underlay_handle { inner: h });
        Ok(())
    })
}

/// Creates the named namespace `name` and a handle inside it, in one step. Both outputs are
/// written on success only.
#[no_mangle]
pub extern "C" fn underlay_handle_create_netns(
    name: *const c_char,
    netns_out: *mut *mut underlay_netns,
    handle_out: *mut *mut underlay_handle,
) -> underlay_result {
    guard(|| {
        let name = s(name, "name")?;
        let n = out(netns_out, "netns_out")?;
        let o = out(handle_out, "handle_out")?;
        let (ns, h) = block(Handle::create_netns(name))?;
        n.set_box(underlay_netns::new(ns));
        o.set_box(underlay_handle { inner: h });
        Ok(())
    })
}

/// Frees the handle (the socket closes when its last user is done). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_handle_free(handle: *mut underlay_handle) {
    guard_value((), || free(handle))
}

/// The namespace the handle works in, as a new namespace handle (free with
/// `underlay_netns_free`).
#[no_mangle]
pub extern "C" fn underlay_handle_netns(
    handle: *const underlay_handle,
    netns_out: *mut *mut crate::netns::underlay_netns,
) -> underlay_result {
    crate::support::guard(|| {
        let h = crate::support::r(handle, "handle")?;
        let o = crate::support::out(netns_out, "netns_out")?;
        o.set_box(crate::netns::underlay_netns::new(h.inner.netns().clone()));
        Ok(())
    })
}

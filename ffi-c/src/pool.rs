//! Address pools read field by field: parsed from text (the syntax of
//! `underlay_ipam_network_add_pool`) or taken from an IPAM or a network's pool text.

use std::ffi::CString;
use std::os::raw::c_char;

use underlay::ipam::Pool;

use crate::result::underlay_result;
use crate::support::{
    cstring, free, guard, guard_value, invalid, ip, opt_ptr, out, owned_string, r, s,
};

/// A pool. Free with `underlay_pool_free`.
pub struct underlay_pool {
    inner: Pool,
    text: CString,
    subnet: CString,
    gateway: Option<CString>,
    ranges: Vec<CString>,
    reserved: Vec<(CString, CString)>,
}

/// Parses `text` ("172.16.10.0/24 gateway=172.16.10.1 range=172.16.10.128/25
/// reserve=exclude_host=172.16.10.21").
#[no_mangle]
pub extern "C" fn underlay_pool_parse(
    text: *const c_char,
    pool_out: *mut *mut underlay_pool,
) -> underlay_result {
    guard(|| {
        let p: Pool = s(text, "text")?.parse()?;
        out(pool_out, "pool_out")?.set_box(wrap(p));
        Ok(())
    })
}

fn wrap(p: Pool) -> underlay_pool {
    underlay_pool {
        text: cstring(p.to_string()),
        subnet: cstring(p.subnet().to_string()),
        gateway: p.gateway().map(|g| cstring(g.to_string())),
        ranges: p.ranges().iter().map(|x| cstring(x.to_string())).collect(),
        reserved: p
            .reserved()
            .iter()
            .map(|x| (cstring(x.name()), cstring(x.addr().to_string())))
            .collect(),
        inner: p,
    }
}

/// A new pool: `first` followed by the segments of `next` (a CNI host-local range set over
/// several subnets; in text, segments joined by ` + `): an owner gets one address, from
/// `next` once `first` is full. The subnets must be of one family and disjoint. Free with
/// `underlay_pool_free`.
#[no_mangle]
pub extern "C" fn underlay_pool_then(
    first: *const underlay_pool,
    next: *const underlay_pool,
    pool_out: *mut *mut underlay_pool,
) -> underlay_result {
    guard(|| {
        let a = r(first, "first")?.inner.clone();
        let b = r(next, "next")?.inner.clone();
        let o = out(pool_out, "pool_out")?;
        o.set_box(wrap(a.then(b)?));
        Ok(())
    })
}

/// The number of segments (subnets) of the pool: 1 for most pools (0 for NULL). The subnet,
/// gateway, ranges and reserved addresses read above are the first segment's.
#[no_mangle]
pub extern "C" fn underlay_pool_segment_count(pool: *const underlay_pool) -> usize {
    guard_value(0, || {
        r(pool, "pool").map_or(0, |p| p.inner.segments().len())
    })
}

/// Segment `index` as a pool of one subnet, in `*segment_out` (free with
/// `underlay_pool_free`).
#[no_mangle]
pub extern "C" fn underlay_pool_segment(
    pool: *const underlay_pool,
    index: usize,
    segment_out: *mut *mut underlay_pool,
) -> underlay_result {
    guard(|| {
        let p = r(pool, "pool")?;
        let o = out(segment_out, "segment_out")?;
        let mut segs = p.inner.segments();
        if index >= segs.len() {
            return Err(invalid(format!(
                "pool `{}` has {} segments, no segment {index}: give an index below \
                 underlay_pool_segment_count",
                p.inner,
                segs.len()
            )));
        }
        o.set_box(wrap(segs.swap_remove(index)));
        Ok(())
    })
}

/// The gateway of the segment holding `address`, in `*gateway_out` (a new string, free with
/// `underlay_string_free`; NULL when that segment has no gateway or no segment holds it).
#[no_mangle]
pub extern "C" fn underlay_pool_gateway_of(
    pool: *const underlay_pool,
    address: *const c_char,
    gateway_out: *mut *mut c_char,
) -> underlay_result {
    guard(|| {
        let p = r(pool, "pool")?;
        let a = ip(address, "address")?;
        let o = out(gateway_out, "gateway_out")?;
        o.set(
            p.inner
                .gateway_of(a)
                .map_or(std::ptr::null_mut(), |g| owned_string(g.to_string())),
        );
        Ok(())
    })
}

/// Frees a pool. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_pool_free(pool: *mut underlay_pool) {
    guard_value((), || free(pool))
}

/// The pool as text, in the syntax `underlay_pool_parse` reads; borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_pool_string(pool: *const underlay_pool) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(pool, "pool").map_or(std::ptr::null(), |p| p.text.as_ptr())
    })
}

/// The subnet ("172.16.10.0/24"); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_pool_subnet(pool: *const underlay_pool) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(pool, "pool").map_or(std::ptr::null(), |p| p.subnet.as_ptr())
    })
}

/// The gateway, NULL when the pool has none; borrowed.
#[no_mangle]
pub extern "C" fn underlay_pool_gateway(pool: *const underlay_pool) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(pool, "pool").map_or(std::ptr::null(), |p| opt_ptr(&p.gateway))
    })
}

/// How many addresses can be handed out (`UINT64_MAX` when more; 0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_pool_capacity(pool: *const underlay_pool) -> u64 {
    guard_value(0, || {
        r(pool, "pool").map_or(0, |p| u64::try_from(p.inner.capacity()).unwrap_or(u64::MAX))
    })
}

/// An IPv6 pool (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_pool_is_ipv6(pool: *const underlay_pool) -> bool {
    guard_value(false, || r(pool, "pool").is_ok_and(|p| p.inner.is_ipv6()))
}

/// Whether address `address` ("172.16.10.5") is in the subnet, in `*contains_out`.
#[no_mangle]
pub extern "C" fn underlay_pool_contains(
    pool: *const underlay_pool,
    address: *const c_char,
    contains_out: *mut bool,
) -> underlay_result {
    guard(|| {
        let p = r(pool, "pool")?;
        let a = ip(address, "address")?;
        out(contains_out, "contains_out")?.set(p.inner.contains(a));
        Ok(())
    })
}

/// Whether the subnets of `a` and `b` overlap (false when either is NULL).
#[no_mangle]
pub extern "C" fn underlay_pool_overlaps(a: *const underlay_pool, b: *const underlay_pool) -> bool {
    guard_value(false, || match (r(a, "a"), r(b, "b")) {
        (Ok(a), Ok(b)) => a.inner.overlaps(&b.inner),
        _ => false,
    })
}

/// The number of allocation ranges given (0: the whole subnet; 0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_pool_range_count(pool: *const underlay_pool) -> usize {
    guard_value(0, || r(pool, "pool").map_or(0, |p| p.ranges.len()))
}

/// Range `index` ("172.16.10.128/25" or "172.16.10.10-172.16.10.20"); borrowed. NULL when out
/// of range.
#[no_mangle]
pub extern "C" fn underlay_pool_range(pool: *const underlay_pool, index: usize) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(pool, "pool")
            .ok()
            .and_then(|p| p.ranges.get(index))
            .map_or(std::ptr::null(), |x| x.as_ptr())
    })
}

/// The number of reserved addresses (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_pool_reserved_count(pool: *const underlay_pool) -> usize {
    guard_value(0, || r(pool, "pool").map_or(0, |p| p.reserved.len()))
}

/// The name of reserved address `index`; borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_pool_reserved_name(
    pool: *const underlay_pool,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(pool, "pool")
            .ok()
            .and_then(|p| p.reserved.get(index))
            .map_or(std::ptr::null(), |x| x.0.as_ptr())
    })
}

/// Reserved address `index` ("172.16.10.21"); borrowed. NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_pool_reserved_address(
    pool: *const underlay_pool,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(pool, "pool")
            .ok()
            .and_then(|p| p.reserved.get(index))
            .map_or(std::ptr::null(), |x| x.1.as_ptr())
    })
}

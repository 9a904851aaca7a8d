//! Routes: a route value built from strings, added, replaced, deleted and listed.

use std::ffi::CString;
use std::os::raw::c_char;

use underlay::{LinkRef, NextHop, Route};

use crate::handle::underlay_handle;
use crate::result::underlay_result;
use crate::support::{
    block, cstring, free, guard, guard_value, ip, m, net, opt_ptr, opt_s, out, r, s,
};

/// A route: made by `underlay_route_new` / `underlay_route_default_via` (free with
/// `underlay_route_free`), or borrowed from an `underlay_route_list`.
pub struct underlay_route {
    pub(crate) inner: Route,
    text: CString,
    /// Each next hop's gateway as text (NULL when it has none).
    hop_gateways: Vec<Option<CString>>,
    destination: CString,
    gateway: Option<CString>,
    dev_name: Option<CString>,
    source: Option<CString>,
}

impl underlay_route {
    pub(crate) fn new(inner: Route) -> underlay_route {
        underlay_route {
            text: cstring(inner.to_string()),
            hop_gateways: inner
                .nexthops
                .iter()
                .map(|h| h.gateway.map(|g| cstring(g.to_string())))
                .collect(),
            destination: cstring(inner.destination.to_string()),
            gateway: inner.gateway.map(|g| cstring(g.to_string())),
            dev_name: match &inner.dev {
                Some(LinkRef::Name(n)) => Some(cstring(n.clone())),
                _ => None,
            },
            source: inner.source.map(|g| cstring(g.to_string())),
            inner,
        }
    }

    fn edit(&mut self, f: impl FnOnce(Route) -> Route) {
        *self = underlay_route::new(f(self.inner.clone()));
    }
}

/// A list of routes (owned; free with `underlay_route_list_free`).
pub struct underlay_route_list {
    pub(crate) items: Vec<underlay_route>,
}

/// The number of routes in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_route_list_count(list: *const underlay_route_list) -> usize {
    crate::support::guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// Item `index` of `list`, borrowed: valid while the list lives, never freed alone. NULL when
/// `list` is NULL or `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_route_list_get(
    list: *const underlay_route_list,
    index: usize,
) -> *const underlay_route {
    crate::support::guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_route)
    })
}

/// Frees `list` and every item in it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_route_list_free(list: *mut underlay_route_list) {
    crate::support::guard_value((), || crate::support::free(list))
}

/// A route to `destination` ("172.16.10.0/24", "0.0.0.0/0"), main table, no gateway yet.
#[no_mangle]
pub extern "C" fn underlay_route_new(
    destination: *const c_char,
    route_out: *mut *mut underlay_route,
) -> underlay_result {
    guard(|| {
        let d = net(destination, "destination")?;
        out(route_out, "route_out")?.set_box(underlay_route::new(Route::new(d)));
        Ok(())
    })
}

/// A default route via `gateway` ("172.16.10.1").
#[no_mangle]
pub extern "C" fn underlay_route_default_via(
    gateway: *const c_char,
    route_out: *mut *mut underlay_route,
) -> underlay_result {
    guard(|| {
        let g = ip(gateway, "gateway")?;
        out(route_out, "route_out")?.set_box(underlay_route::new(Route::default_via(g)));
        Ok(())
    })
}

/// Sets the next hop.
#[no_mangle]
pub extern "C" fn underlay_route_set_via(
    route: *mut underlay_route,
    gateway: *const c_char,
) -> underlay_result {
    guard(|| {
        let rt = m(route, "route")?;
        let g = ip(gateway, "gateway")?;
        rt.edit(|x| x.via(g));
        Ok(())
    })
}

/// Sets the output link (a name).
#[no_mangle]
pub extern "C" fn underlay_route_set_dev(
    route: *mut underlay_route,
    dev: *const c_char,
) -> underlay_result {
    guard(|| {
        let rt = m(route, "route")?;
        let d = s(dev, "dev")?.to_string();
        rt.edit(|x| x.dev(d));
        Ok(())
    })
}

/// Sets the preferred source address.
#[no_mangle]
pub extern "C" fn underlay_route_set_source(
    route: *mut underlay_route,
    source: *const c_char,
) -> underlay_result {
    guard(|| {
        let rt = m(route, "route")?;
        let a = ip(source, "source")?;
        rt.edit(|x| x.source(a));
        Ok(())
    })
}

/// Sets the metric (lower wins).
#[no_mangle]
pub extern "C" fn underlay_route_set_metric(
    route: *mut underlay_route,
    metric: u32,
) -> underlay_result {
    guard(|| {
        m(route, "route")?.edit(|x| x.metric(metric));
        Ok(())
    })
}

/// Sets the table (254 = main).
#[no_mangle]
pub extern "C" fn underlay_route_set_table(
    route: *mut underlay_route,
    table: u32,
) -> underlay_result {
    guard(|| {
        m(route, "route")?.edit(|x| x.table(table));
        Ok(())
    })
}

/// Marks the gateway as on the link even if no address's subnet says so (`onlink`).
#[no_mangle]
pub extern "C" fn underlay_route_set_onlink(route: *mut underlay_route) -> underlay_result {
    guard(|| {
        m(route, "route")?.edit(|x| x.onlink());
        Ok(())
    })
}

/// Adds a next hop, making the route multipath: through `gateway` (NULL: none) out of `dev`
/// (a name; NULL: any), with `weight` 1..256 (0 means 1). Give such a route no `via`/`dev`
/// of its own.
#[no_mangle]
pub extern "C" fn underlay_route_add_nexthop(
    route: *mut underlay_route,
    gateway: *const c_char,
    dev: *const c_char,
    weight: u16,
    onlink: bool,
) -> underlay_result {
    guard(|| {
        let rt = m(route, "route")?;
        let g = match opt_s(gateway, "gateway")? {
            Some(_) => Some(ip(gateway, "gateway")?),
            None => None,
        };
        let d = opt_s(dev, "dev")?.map(str::to_string);
        let mut hop = match (g, d) {
            (Some(g), Some(d)) => NextHop::via(g).dev(d),
            (Some(g), None) => NextHop::via(g),
            (None, Some(d)) => NextHop::dev_only(d),
            (None, None) => {
                return Err(crate::support::invalid(
                    "a next hop needs a gateway or a device (both NULL)",
                ))
            }
        };
        hop = hop.weight(weight.max(1));
        if onlink {
            hop = hop.onlink();
        }
        rt.edit(|x| x.nexthop(hop));
        Ok(())
    })
}

/// Whether the route carries the `onlink` flag (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_route_onlink(route: *const underlay_route) -> bool {
    guard_value(false, || r(route, "route").is_ok_and(|x| x.inner.onlink))
}

/// The number of next hops of a multipath route (0 for one with a single gateway/device, and
/// for NULL).
#[no_mangle]
pub extern "C" fn underlay_route_nexthop_count(route: *const underlay_route) -> usize {
    guard_value(0, || {
        r(route, "route").map_or(0, |x| x.inner.nexthops.len())
    })
}

/// Next hop `index`'s gateway ("10.1.0.1"), or NULL (none, index out of range, NULL route);
/// borrowed.
#[no_mangle]
pub extern "C" fn underlay_route_nexthop_gateway(
    route: *const underlay_route,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(route, "route")
            .ok()
            .and_then(|x| x.hop_gateways.get(index))
            .map_or(std::ptr::null(), opt_ptr)
    })
}

/// Next hop `index`'s output link index as read back (0: none, out of range, NULL route, or
/// a next hop given by name).
#[no_mangle]
pub extern "C" fn underlay_route_nexthop_dev_index(
    route: *const underlay_route,
    index: usize,
) -> u32 {
    guard_value(0, || {
        r(route, "route")
            .ok()
            .and_then(|x| x.inner.nexthops.get(index))
            .map_or(0, |h| match h.dev {
                Some(LinkRef::Index(i)) => i,
                _ => 0,
            })
    })
}

/// Next hop `index`'s weight, 1..256 (0 when out of range or NULL).
#[no_mangle]
pub extern "C" fn underlay_route_nexthop_weight(route: *const underlay_route, index: usize) -> u16 {
    guard_value(0, || {
        r(route, "route")
            .ok()
            .and_then(|x| x.inner.nexthops.get(index))
            .map_or(0, |h| h.weight)
    })
}

/// Whether next hop `index` carries `onlink` (false when out of range or NULL).
#[no_mangle]
pub extern "C" fn underlay_route_nexthop_onlink(
    route: *const underlay_route,
    index: usize,
) -> bool {
    guard_value(false, || {
        r(route, "route")
            .ok()
            .and_then(|x| x.inner.nexthops.get(index))
            .is_some_and(|h| h.onlink)
    })
}

/// The route as text, in iproute2's words and order, so `ip route add` takes it:
/// "10.7.0.0/24 via 10.1.0.1 dev eth0 table 100 scope link src 10.1.0.2 metric 7" (each part
/// only when set; the main table is not written; a device read back by index is "if4", as
/// iproute2 writes an index it cannot name). Borrowed; NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_route_string(route: *const underlay_route) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(route, "route").map_or(std::ptr::null(), |x| x.text.as_ptr())
    })
}

/// Frees a route made by `underlay_route_new` / `underlay_route_default_via` (never one
/// borrowed from a list). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_route_free(route: *mut underlay_route) {
    guard_value((), || free(route))
}

/// Adds `route` (`UNDERLAY_RESULT_ALREADY_EXISTS` when present).
#[no_mangle]
pub extern "C" fn underlay_handle_route_add(
    handle: *const underlay_handle,
    route: *const underlay_route,
) -> underlay_result {
    guard(|| {
        let (h, rt) = (r(handle, "handle")?, r(route, "route")?);
        block(h.inner.add_route(&rt.inner))
    })
}

/// Adds or replaces `route`.
#[no_mangle]
pub extern "C" fn underlay_handle_route_replace(
    handle: *const underlay_handle,
    route: *const underlay_route,
) -> underlay_result {
    guard(|| {
        let (h, rt) = (r(handle, "handle")?, r(route, "route")?);
        block(h.inner.replace_route(&rt.inner))
    })
}

/// Deletes `route`.
#[no_mangle]
pub extern "C" fn underlay_handle_route_delete(
    handle: *const underlay_handle,
    route: *const underlay_route,
) -> underlay_result {
    guard(|| {
        let (h, rt) = (r(handle, "handle")?, r(route, "route")?);
        block(h.inner.delete_route(&rt.inner))
    })
}

/// The unicast routes of `table`: 254 the main table, 0 every table (iproute2's
/// `table all`).
#[no_mangle]
pub extern "C" fn underlay_handle_route_list(
    handle: *const underlay_handle,
    table: u32,
    list_out: *mut *mut underlay_route_list,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let o = out(list_out, "list_out")?;
        let routes = block(h.inner.routes(Some(table)))?;
        o.set_box(underlay_route_list {
            items: routes.into_iter().map(underlay_route::new).collect(),
        });
        Ok(())
    })
}

/// The destination prefix ("172.16.10.0/24", "0.0.0.0/0"); borrowed. NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_route_destination(route: *const underlay_route) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(route, "route").map_or(std::ptr::null(), |x| x.destination.as_ptr())
    })
}

/// The gateway ("172.16.10.1"), NULL when it has none; borrowed.
#[no_mangle]
pub extern "C" fn underlay_route_gateway(route: *const underlay_route) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(route, "route").map_or(std::ptr::null(), |x| opt_ptr(&x.gateway))
    })
}

/// The output device's name when the route names it by name, NULL otherwise (read-back routes
/// name it by index: `underlay_route_dev_index`); borrowed.
#[no_mangle]
pub extern "C" fn underlay_route_dev(route: *const underlay_route) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(route, "route").map_or(std::ptr::null(), |x| opt_ptr(&x.dev_name))
    })
}

/// The output device's index, 0 when the route has none or names it by name.
#[no_mangle]
pub extern "C" fn underlay_route_dev_index(route: *const underlay_route) -> u32 {
    guard_value(0, || {
        r(route, "route").map_or(0, |x| match x.inner.dev {
            Some(LinkRef::Index(i)) => i,
            _ => 0,
        })
    })
}

/// The preferred source address, NULL when unset; borrowed.
#[no_mangle]
pub extern "C" fn underlay_route_source(route: *const underlay_route) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(route, "route").map_or(std::ptr::null(), |x| opt_ptr(&x.source))
    })
}

/// The metric, -1 when unset (and for NULL).
#[no_mangle]
pub extern "C" fn underlay_route_metric(route: *const underlay_route) -> i64 {
    guard_value(-1, || {
        r(route, "route").map_or(-1, |x| x.inner.metric.map_or(-1, i64::from))
    })
}

/// The table (254 is main; 0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_route_table(route: *const underlay_route) -> u32 {
    guard_value(0, || r(route, "route").map_or(0, |x| x.inner.table))
}

/// The scope as read back ("universe", "link", "host"), NULL when unknown; static.
#[no_mangle]
pub extern "C" fn underlay_route_scope(route: *const underlay_route) -> *const c_char {
    guard_value(std::ptr::null(), || {
        let scope = r(route, "route").ok().and_then(|x| x.inner.scope);
        match scope {
            Some(underlay::RouteScopeKind::Universe) => c"universe".as_ptr(),
            Some(underlay::RouteScopeKind::Link) => c"link".as_ptr(),
            Some(underlay::RouteScopeKind::Host) => c"host".as_ptr(),
            None => std::ptr::null(),
        }
    })
}

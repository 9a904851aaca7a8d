//! DHCP networks: the spec's DHCP setting, an endpoint's lease, renewal (see docs/dhcp.md).

use std::ffi::CString;
use std::os::raw::c_char;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use underlay::DhcpConfig;

use crate::network::{
    underlay_endpoint, underlay_endpoint_spec, underlay_network, underlay_network_spec,
    underlay_networks,
};
use crate::result::underlay_result;
use crate::support::{block, cstring, free, guard, guard_value, m, net, opt_ptr, opt_s, out, r, s};

/// Takes the endpoints' addresses from the LAN's DHCP server instead of pools (IPv4): each
/// exchange tries `tries` times (1..10), waiting `first_wait_ms` (10..16000) for the first
/// answer and twice as long at each retry; `subnet` ("10.40.0.0/16", or NULL) refuses
/// addresses outside it. Defaults: 4, 1000, NULL. Such a network has no pools.
#[no_mangle]
pub extern "C" fn underlay_network_spec_set_dhcp(
    spec: *mut underlay_network_spec,
    tries: u32,
    first_wait_ms: u32,
    subnet: *const c_char,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        let mut how = DhcpConfig::new(tries, Duration::from_millis(first_wait_ms.into()))?;
        if opt_s(subnet, "subnet")?.is_some() {
            match net(subnet, "subnet")? {
                underlay::IpNet::V4(n) => how = how.subnet(n),
                underlay::IpNet::V6(n) => {
                    return Err(crate::support::invalid(format!(
                        "DHCP subnet {n} is IPv6: DHCP networks are IPv4, give an IPv4 subnet"
                    )))
                }
            }
        }
        sp.inner = sp.inner.clone().dhcp(how);
        Ok(())
    })
}

/// The network's DHCP setting: `*tries_out` is 0 when its addresses come from pools (then
/// the waits are 0 too); `*total_wait_ms_out` is the wait before one exchange gives up.
#[no_mangle]
pub extern "C" fn underlay_network_dhcp(
    network: *const underlay_network,
    tries_out: *mut u32,
    first_wait_ms_out: *mut u32,
    total_wait_ms_out: *mut u32,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (t, f, w) = (
            out(tries_out, "tries_out")?,
            out(first_wait_ms_out, "first_wait_ms_out")?,
            out(total_wait_ms_out, "total_wait_ms_out")?,
        );
        let d = n.inner.dhcp();
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        t.set(d.map_or(0, |d| d.tries()));
        f.set(d.map_or(0, |d| ms(d.first_wait())));
        w.set(d.map_or(0, |d| ms(d.total_wait())));
        Ok(())
    })
}

/// The subnet a DHCP network's addresses must lie in ("10.40.0.0/16"), NULL when none (or
/// not a DHCP network); borrowed.
#[no_mangle]
pub extern "C" fn underlay_network_dhcp_subnet(network: *const underlay_network) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(network, "network").map_or(std::ptr::null(), |n| opt_ptr(&n.dhcp_subnet))
    })
}

/// On a DHCP network, the host name sent to the server (default: the container id's letters,
/// digits and '-').
#[no_mangle]
pub extern "C" fn underlay_endpoint_spec_set_hostname(
    spec: *mut underlay_endpoint_spec,
    hostname: *const c_char,
) -> underlay_result {
    guard(|| {
        let sp = m(spec, "spec")?;
        sp.inner = sp.inner.clone().hostname(s(hostname, "hostname")?);
        Ok(())
    })
}

/// A DHCP lease: borrowed from an endpoint (`underlay_endpoint_dhcp`) or a renewal, or owned
/// (`underlay_network_renew_dhcp`; free with `underlay_dhcp_lease_free`).
pub struct underlay_dhcp_lease {
    inner: underlay::DhcpLease,
    address: CString,
    server: CString,
    server_mac: CString,
    router: Option<CString>,
    dns_servers: Vec<CString>,
    domain: Option<CString>,
}

impl underlay_dhcp_lease {
    pub(crate) fn new(l: underlay::DhcpLease) -> underlay_dhcp_lease {
        underlay_dhcp_lease {
            address: cstring(l.address.to_string()),
            server: cstring(l.server.to_string()),
            server_mac: cstring(l.server_mac.to_string()),
            router: l.router.map(|r| cstring(r.to_string())),
            dns_servers: l
                .dns_servers
                .iter()
                .map(|a| cstring(a.to_string()))
                .collect(),
            domain: l.domain.clone().map(cstring),
            inner: l,
        }
    }
}

/// The endpoint's DHCP lease, borrowed (valid while the endpoint lives); NULL on a pooled
/// network, or when the lease was lost (expired or refused).
#[no_mangle]
pub extern "C" fn underlay_endpoint_dhcp(
    endpoint: *const underlay_endpoint,
) -> *const underlay_dhcp_lease {
    guard_value(std::ptr::null(), || {
        r(endpoint, "endpoint")
            .ok()
            .and_then(|e| e.dhcp.as_ref())
            .map_or(std::ptr::null(), |l| l as *const underlay_dhcp_lease)
    })
}

fn lease_str(
    lease: *const underlay_dhcp_lease,
    f: impl Fn(&underlay_dhcp_lease) -> *const c_char,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(lease, "lease").map_or(std::ptr::null(), f)
    })
}

/// The address with the server's prefix ("10.77.0.100/24"); borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_address(lease: *const underlay_dhcp_lease) -> *const c_char {
    lease_str(lease, |l| l.address.as_ptr())
}

/// The server (its server identifier); borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_server(lease: *const underlay_dhcp_lease) -> *const c_char {
    lease_str(lease, |l| l.server.as_ptr())
}

/// The MAC the server's answer came from (unicast renewals and the release go there); borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_server_mac(
    lease: *const underlay_dhcp_lease,
) -> *const c_char {
    lease_str(lease, |l| l.server_mac.as_ptr())
}

/// The router (the default route's gateway), NULL when the server gave none; borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_router(lease: *const underlay_dhcp_lease) -> *const c_char {
    lease_str(lease, |l| opt_ptr(&l.router))
}

/// The number of DNS servers the server gave (option 6); 0 for NULL.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_dns_server_count(lease: *const underlay_dhcp_lease) -> usize {
    guard_value(0, || r(lease, "lease").map_or(0, |l| l.dns_servers.len()))
}

/// DNS server `index` ("10.77.0.53"), in the server's order; borrowed; NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_dns_server(
    lease: *const underlay_dhcp_lease,
    index: usize,
) -> *const c_char {
    lease_str(lease, |l| {
        l.dns_servers
            .get(index)
            .map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// The DNS domain the server gave (option 15), NULL when none; borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_domain(lease: *const underlay_dhcp_lease) -> *const c_char {
    lease_str(lease, |l| opt_ptr(&l.domain))
}

fn lease_u64(lease: *const underlay_dhcp_lease, f: impl Fn(&underlay::DhcpLease) -> u64) -> u64 {
    guard_value(0, || r(lease, "lease").map_or(0, |l| f(&l.inner)))
}

fn unix_ms(t: Option<SystemTime>) -> u64 {
    t.map_or(0, |t| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// The lease time in seconds (4294967295: infinite; 0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_time_s(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| l.lease_time.as_secs())
}

/// Renewal (T1) after this many seconds.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_t1_s(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| l.t1.as_secs())
}

/// Rebinding (T2) after this many seconds.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_t2_s(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| l.t2.as_secs())
}

/// When the server's ACK came, in milliseconds since the Unix epoch.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_obtained_ms(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| unix_ms(Some(l.obtained)))
}

/// Whether the lease never ends (false for NULL).
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_is_infinite(lease: *const underlay_dhcp_lease) -> bool {
    guard_value(false, || {
        r(lease, "lease").is_ok_and(|l| l.inner.is_infinite())
    })
}

/// When the lease ends, in ms since the Unix epoch (0: never, or NULL).
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_expires_ms(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| unix_ms(l.expires()))
}

/// When renewal is due (T1), in ms since the Unix epoch (0: never, or NULL).
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_renew_at_ms(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| unix_ms(l.renew_at()))
}

/// When rebinding is due (T2), in ms since the Unix epoch (0: never, or NULL).
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_rebind_at_ms(lease: *const underlay_dhcp_lease) -> u64 {
    lease_u64(lease, |l| unix_ms(l.rebind_at()))
}

/// Frees a lease returned by `underlay_network_renew_dhcp`. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_dhcp_lease_free(lease: *mut underlay_dhcp_lease) {
    guard_value((), || free(lease))
}

/// Keeps the endpoint's DHCP lease: renews it (unicast, before T2) or rebinds it (broadcast,
/// until expiry) and updates its record; an unanswered renewal keeps the lease. A lease that
/// expired or was refused (NAK) loses its address (removed from the endpoint) and fails
/// (`UNDERLAY_RESULT_TIMEOUT` / `UNDERLAY_RESULT_CONFLICT`); the next call asks for a lease
/// again. `*lease_out` (free with `underlay_dhcp_lease_free`) is the lease held.
#[no_mangle]
pub extern "C" fn underlay_network_renew_dhcp(
    network: *const underlay_network,
    container_id: *const c_char,
    ifname: *const c_char,
    lease_out: *mut *mut underlay_dhcp_lease,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let (c, i) = (s(container_id, "container_id")?, s(ifname, "ifname")?);
        let o = out(lease_out, "lease_out")?;
        let l = block(n.inner.renew_dhcp(c, i))?;
        o.set_box(underlay_dhcp_lease::new(l));
        Ok(())
    })
}

/// One endpoint's renewal from `underlay_network_renew_due_dhcp`; borrowed from its list.
pub struct underlay_dhcp_renewal {
    network: CString,
    container_id: CString,
    ifname: CString,
    lease: Option<underlay_dhcp_lease>,
    result: underlay_result,
    error: Option<CString>,
}

/// The renewals of one `underlay_network_renew_due_dhcp` call (free with
/// `underlay_dhcp_renewal_list_free`).
pub struct underlay_dhcp_renewal_list {
    items: Vec<underlay_dhcp_renewal>,
}

/// The renewer's tick: renews every endpoint whose lease is due (past T1) or lost, one
/// renewal each in `*renewals_out` (see `underlay_network_renew_dhcp`). A long-running
/// process calls it every few seconds.
#[no_mangle]
pub extern "C" fn underlay_network_renew_due_dhcp(
    network: *const underlay_network,
    renewals_out: *mut *mut underlay_dhcp_renewal_list,
) -> underlay_result {
    guard(|| {
        let n = r(network, "network")?;
        let o = out(renewals_out, "renewals_out")?;
        let done = block(n.inner.renew_due_dhcp())?;
        o.set_box(renewal_list(done));
        Ok(())
    })
}

/// The renewer's tick over the whole state directory: every DHCP network's due endpoints
/// (`underlay_network_renew_due_dhcp` of each, networks made since the last call included),
/// one renewal each in `*renewals_out`. For a process renewing on behalf of one-shot callers.
#[no_mangle]
pub extern "C" fn underlay_networks_renew_due_dhcp(
    networks: *const underlay_networks,
    renewals_out: *mut *mut underlay_dhcp_renewal_list,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let o = out(renewals_out, "renewals_out")?;
        let done = block(n.inner.renew_due_dhcp())?;
        o.set_box(renewal_list(done));
        Ok(())
    })
}

/// When the next DHCP renewal of the state directory is due, in ms since the Unix epoch, in
/// `*at_ms_out`: the earliest T1 of its DHCP endpoints, now for a lost lease, 0 when no lease
/// ends. A renewer sleeps until then (capped, to see endpoints connected meanwhile).
#[no_mangle]
pub extern "C" fn underlay_networks_next_dhcp_renewal_ms(
    networks: *const underlay_networks,
    at_ms_out: *mut u64,
) -> underlay_result {
    guard(|| {
        let n = r(networks, "networks")?;
        let o = out(at_ms_out, "at_ms_out")?;
        let next = block(n.inner.next_dhcp_renewal())?;
        o.set(unix_ms(next));
        Ok(())
    })
}

fn renewal_list(done: Vec<underlay::network::DhcpRenewal>) -> underlay_dhcp_renewal_list {
    let items = done
        .into_iter()
        .map(|d| {
            let (lease, result, error) = match d.result {
                Ok(l) => (Some(underlay_dhcp_lease::new(l)), underlay_result::Ok, None),
                Err(e) => (
                    None,
                    underlay_result::from_kind(e.kind()),
                    Some(cstring(e.to_string())),
                ),
            };
            underlay_dhcp_renewal {
                network: cstring(d.network),
                container_id: cstring(d.container_id),
                ifname: cstring(d.ifname),
                lease,
                result,
                error,
            }
        })
        .collect();
    underlay_dhcp_renewal_list { items }
}

/// The number of renewals in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_list_count(
    list: *const underlay_dhcp_renewal_list,
) -> usize {
    guard_value(0, || r(list, "list").map_or(0, |l| l.items.len()))
}

/// Renewal `index` of `list`, borrowed; NULL when out of range.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_list_get(
    list: *const underlay_dhcp_renewal_list,
    index: usize,
) -> *const underlay_dhcp_renewal {
    guard_value(std::ptr::null(), || {
        r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |i| i as *const underlay_dhcp_renewal)
    })
}

/// Frees `list` and its renewals. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_list_free(list: *mut underlay_dhcp_renewal_list) {
    guard_value((), || free(list))
}

/// The renewal's network; borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_network(
    renewal: *const underlay_dhcp_renewal,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(renewal, "renewal").map_or(std::ptr::null(), |x| x.network.as_ptr())
    })
}

/// The renewal's container id; borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_container_id(
    renewal: *const underlay_dhcp_renewal,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(renewal, "renewal").map_or(std::ptr::null(), |x| x.container_id.as_ptr())
    })
}

/// The renewal's interface name; borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_ifname(
    renewal: *const underlay_dhcp_renewal,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(renewal, "renewal").map_or(std::ptr::null(), |x| x.ifname.as_ptr())
    })
}

/// The lease held after the renewal, borrowed; NULL when it failed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_lease(
    renewal: *const underlay_dhcp_renewal,
) -> *const underlay_dhcp_lease {
    guard_value(std::ptr::null(), || {
        r(renewal, "renewal")
            .ok()
            .and_then(|x| x.lease.as_ref())
            .map_or(std::ptr::null(), |l| l as *const underlay_dhcp_lease)
    })
}

/// `UNDERLAY_RESULT_OK`, or why the renewal failed (the lease was lost: its address removed).
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_result(
    renewal: *const underlay_dhcp_renewal,
) -> underlay_result {
    guard_value(underlay_result::NullParameter, || {
        r(renewal, "renewal").map_or(underlay_result::NullParameter, |x| x.result)
    })
}

/// The failure's message (naming the network and the endpoint), NULL on success; borrowed.
#[no_mangle]
pub extern "C" fn underlay_dhcp_renewal_error(
    renewal: *const underlay_dhcp_renewal,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(renewal, "renewal").map_or(std::ptr::null(), |x| opt_ptr(&x.error))
    })
}

//! Network namespaces: create, open (name, path, pid, fd), delete, list; sysctls; ping.

use std::os::fd::{BorrowedFd, RawFd};
use std::os::raw::c_char;
use std::time::Duration;

use underlay::Netns;

use crate::list::underlay_string_list;
use crate::result::underlay_result;
use crate::support::{cstring, free, guard, guard_value, ip, out, owned_string, r, s};

/// A network namespace (an open file descriptor on it). Free with `underlay_netns_free`;
/// freeing does not delete a named namespace (`underlay_netns_delete` does).
pub struct underlay_netns {
    pub(crate) inner: Netns,
    label: std::ffi::CString,
    name: Option<std::ffi::CString>,
}

impl underlay_netns {
    pub(crate) fn new(inner: Netns) -> underlay_netns {
        underlay_netns {
            label: cstring(inner.label()),
            name: inner.name().map(cstring),
            inner,
        }
    }
}

fn open_with(
    netns_out: *mut *mut underlay_netns,
    f: impl FnOnce() -> underlay::Result<Netns>,
) -> underlay_result {
    guard(|| {
        let o = out(netns_out, "netns_out")?;
        o.set_box(underlay_netns::new(f()?));
        Ok(())
    })
}

/// Creates the named namespace `name` (bound under /run/netns like `ip netns add`).
/// `UNDERLAY_RESULT_ALREADY_EXISTS` when it exists.
#[no_mangle]
pub extern "C" fn underlay_netns_create(
    name: *const c_char,
    netns_out: *mut *mut underlay_netns,
) -> underlay_result {
    guard(|| {
        let name = s(name, "name")?;
        let o = out(netns_out, "netns_out")?;
        o.set_box(underlay_netns::new(Netns::create(name)?));
        Ok(())
    })
}

/// Creates an anonymous namespace: it lives as long as the handle (or a process in it).
#[no_mangle]
pub extern "C" fn underlay_netns_create_anonymous(
    netns_out: *mut *mut underlay_netns,
) -> underlay_result {
    open_with(netns_out, Netns::create_anonymous)
}

/// Opens the named namespace `name` (/run/netns/NAME).
#[no_mangle]
pub extern "C" fn underlay_netns_open(
    name: *const c_char,
    netns_out: *mut *mut underlay_netns,
) -> underlay_result {
    guard(|| {
        let name = s(name, "name")?;
        let o = out(netns_out, "netns_out")?;
        o.set_box(underlay_netns::new(Netns::open(name)?));
        Ok(())
    })
}

/// Opens the namespace file at `path` (e.g. /proc/1234/ns/net, /var/run/docker/netns/ID).
#[no_mangle]
pub extern "C" fn underlay_netns_open_path(
    path: *const c_char,
    netns_out: *mut *mut underlay_netns,
) -> underlay_result {
    guard(|| {
        let path = s(path, "path")?;
        let o = out(netns_out, "netns_out")?;
        o.set_box(underlay_netns::new(Netns::open_path(path)?));
        Ok(())
    })
}

/// Opens the namespace of process `pid`.
#[no_mangle]
pub extern "C" fn underlay_netns_open_pid(
    pid: u32,
    netns_out: *mut *mut underlay_netns,
) -> underlay_result {
    open_with(netns_out, || Netns::open_pid(pid))
}

/// Opens the namespace that file descriptor `fd` refers to. underlay duplicates `fd`: the
/// caller keeps (and closes) its own. `UNDERLAY_RESULT_INVALID_ARGUMENT` for a negative fd.
#[no_mangle]
pub extern "C" fn underlay_netns_open_fd(
    fd: i32,
    netns_out: *mut *mut underlay_netns,
) -> underlay_result {
    guard(|| {
        let o = out(netns_out, "netns_out")?;
        if fd < 0 {
            return Err(crate::support::invalid(format!(
                "fd {fd} is not a file descriptor"
            )));
        }
        let raw: RawFd = fd;
        // SAFETY: `fd` is open for the duration of the call (caller's contract); it is only
        // duplicated here.
        let owned = unsafe { BorrowedFd::borrow_raw(raw) }
            .try_clone_to_owned()
            .map_err(|e| underlay::Error::io(format!("cannot duplicate fd {fd}"), e))?;
        o.set_box(underlay_netns::new(Netns::from_fd(owned)?));
        Ok(())
    })
}

/// Opens the calling thread's namespace.
#[no_mangle]
pub extern "C" fn underlay_netns_current(netns_out: *mut *mut underlay_netns) -> underlay_result {
    open_with(netns_out, Netns::current)
}

/// Deletes the named namespace `name` (like `ip netns delete`); open handles stay valid.
#[no_mangle]
pub extern "C" fn underlay_netns_delete(name: *const c_char) -> underlay_result {
    guard(|| Ok(Netns::delete(s(name, "name")?)?))
}

/// The names of the named namespaces (/run/netns).
#[no_mangle]
pub extern "C" fn underlay_netns_list(list_out: *mut *mut underlay_string_list) -> underlay_result {
    guard(|| {
        let o = out(list_out, "list_out")?;
        o.set_box(underlay_string_list::new(Netns::list()?));
        Ok(())
    })
}

/// The namespace's name, or NULL for an anonymous one. Borrowed from `netns`.
#[no_mangle]
pub extern "C" fn underlay_netns_name(netns: *const underlay_netns) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(netns, "netns")
            .ok()
            .map_or(std::ptr::null(), |n| crate::support::opt_ptr(&n.name))
    })
}

/// A label for messages (the name, or the path or inode). Borrowed from `netns`; NULL for NULL.
#[no_mangle]
pub extern "C" fn underlay_netns_label(netns: *const underlay_netns) -> *const c_char {
    guard_value(std::ptr::null(), || {
        r(netns, "netns")
            .ok()
            .map_or(std::ptr::null(), |n| n.label.as_ptr())
    })
}

/// Frees the handle (closes its descriptor). NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_netns_free(netns: *mut underlay_netns) {
    guard_value((), || free(netns))
}

/// Sets IPv4 / IPv6 forwarding in the namespace (`net.ipv4.ip_forward`, ...).
#[no_mangle]
pub extern "C" fn underlay_netns_set_forwarding(
    netns: *const underlay_netns,
    ipv4: bool,
    ipv6: bool,
) -> underlay_result {
    guard(|| Ok(r(netns, "netns")?.inner.set_forwarding(ipv4, ipv6)?))
}

/// Sets the `net.*` sysctl `key` (e.g. "net.ipv4.conf.all.arp_ignore") to `value`.
#[no_mangle]
pub extern "C" fn underlay_netns_sysctl_set(
    netns: *const underlay_netns,
    key: *const c_char,
    value: *const c_char,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        Ok(ns.inner.set_sysctl(s(key, "key")?, s(value, "value")?)?)
    })
}

/// Reads the `net.*` sysctl `key`; `*value_out` is a new string (free with
/// `underlay_string_free`).
#[no_mangle]
pub extern "C" fn underlay_netns_sysctl_get(
    netns: *const underlay_netns,
    key: *const c_char,
    value_out: *mut *mut c_char,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let key = s(key, "key")?;
        let o = out(value_out, "value_out")?;
        o.set(owned_string(ns.inner.sysctl(key)?));
        Ok(())
    })
}

/// Sends one ICMP echo to `address` from inside the namespace and waits up to `timeout_ms`.
/// `*replied_out` says whether a reply came; `rtt_us_out` (may be NULL) gets the round trip in
/// microseconds (0 without a reply).
#[no_mangle]
pub extern "C" fn underlay_netns_ping(
    netns: *const underlay_netns,
    address: *const c_char,
    timeout_ms: u32,
    replied_out: *mut bool,
    rtt_us_out: *mut u64,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let dst = ip(address, "address")?;
        let o = out(replied_out, "replied_out")?;
        let rtt = ns
            .inner
            .ping(dst, Duration::from_millis(u64::from(timeout_ms)))?;
        o.set(rtt.is_some());
        if !rtt_us_out.is_null() {
            out(rtt_us_out, "rtt_us_out")?
                .set(rtt.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)));
        }
        Ok(())
    })
}

/// Deletes the `count` named namespaces `names[i]` one after the other on one thread (faster
/// than one `underlay_netns_delete` each); every name is tried, and the failures are reported
/// together (MULTIPLE for more than one), each naming its namespace. `names` may be NULL when
/// `count` is 0.
#[no_mangle]
pub extern "C" fn underlay_netns_delete_many(
    names: *const *const c_char,
    count: usize,
) -> underlay_result {
    guard(|| {
        if count > 0 && names.is_null() {
            return Err(crate::support::null("names"));
        }
        let mut list = Vec::with_capacity(count.min(4096));
        if count > 0 {
            // SAFETY: `names` holds `count` pointers (the caller's contract), non-NULL above.
            let ptrs = unsafe { std::slice::from_raw_parts(names, count) };
            for p in ptrs {
                list.push(s(*p, "names[i]")?.to_string());
            }
        }
        crate::support::block(Netns::delete_many(list))
    })
}

/// The namespace's inode number (its identity: two handles on one namespace share it; 0 for
/// NULL).
#[no_mangle]
pub extern "C" fn underlay_netns_inode(netns: *const underlay_netns) -> u64 {
    guard_value(0, || r(netns, "netns").map_or(0, |n| n.inner.inode()))
}

/// The path the namespace was opened from ("/run/netns/NAME", "/proc/PID/ns/net"), NULL when
/// it has none (anonymous, from a descriptor); a new string (free with `underlay_string_free`).
#[no_mangle]
pub extern "C" fn underlay_netns_path(netns: *const underlay_netns) -> *mut c_char {
    guard_value(std::ptr::null_mut(), || {
        r(netns, "netns")
            .ok()
            .and_then(|n| n.inner.path())
            .map_or(std::ptr::null_mut(), |p| {
                owned_string(p.to_string_lossy().into_owned())
            })
    })
}

/// Sends gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) for the `count`
/// addresses `ips[i]` ("172.16.10.101") from link `ifindex` with MAC `mac_address`, so that
/// neighbours update their caches.
#[no_mangle]
pub extern "C" fn underlay_netns_announce(
    netns: *const underlay_netns,
    ifindex: u32,
    mac_address: *const c_char,
    ips: *const *const c_char,
    count: usize,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let mac = crate::support::mac(mac_address, "mac_address")?;
        if count > 0 && ips.is_null() {
            return Err(crate::support::null("ips"));
        }
        let list = if count > 0 {
            // SAFETY: `ips` holds `count` pointers (the caller's contract).
            unsafe { std::slice::from_raw_parts(ips, count) }
        } else {
            &[]
        };
        let addrs = list
            .iter()
            .map(|p| ip(*p, "ips[i]"))
            .collect::<crate::support::R<Vec<_>>>()?;
        Ok(ns.inner.announce(ifindex, mac, addrs)?)
    })
}

fn sysctl_if(iface: *const c_char) -> crate::support::R<underlay::SysctlIf> {
    Ok(match s(iface, "iface")? {
        "all" => underlay::SysctlIf::All,
        "default" => underlay::SysctlIf::Default,
        name => underlay::SysctlIf::Name(underlay::IfName::new(name)?),
    })
}

/// `value` as the u8 the kernel key takes; anything else is out of the key's range `0..max`
/// (core checks the rest, in the same words).
fn small(what: &str, value: i32, max: u8) -> crate::support::R<u8> {
    u8::try_from(value).map_err(|_| {
        crate::support::invalid(format!("{what} value {value} is out of range 0..{max}"))
    })
}

/// Sets `net.ipv4.conf.IFACE.arp_ignore` (0..=8) for `iface` (an interface name, "all" or
/// "default").
#[no_mangle]
pub extern "C" fn underlay_netns_set_arp_ignore(
    netns: *const underlay_netns,
    iface: *const c_char,
    value: i32,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let i = sysctl_if(iface)?;
        Ok(ns
            .inner
            .set_arp_ignore(&i, small("arp_ignore", value, 8)?)?)
    })
}

/// Sets `net.ipv4.conf.IFACE.arp_announce` (0..=2).
#[no_mangle]
pub extern "C" fn underlay_netns_set_arp_announce(
    netns: *const underlay_netns,
    iface: *const c_char,
    value: i32,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let i = sysctl_if(iface)?;
        Ok(ns
            .inner
            .set_arp_announce(&i, small("arp_announce", value, 2)?)?)
    })
}

/// Sets `net.ipv6.conf.IFACE.accept_dad` (-1..=2).
#[no_mangle]
pub extern "C" fn underlay_netns_set_accept_dad(
    netns: *const underlay_netns,
    iface: *const c_char,
    value: i32,
) -> underlay_result {
    guard(|| {
        let ns = r(netns, "netns")?;
        let i = sysctl_if(iface)?;
        Ok(ns.inner.set_accept_dad(&i, value)?)
    })
}

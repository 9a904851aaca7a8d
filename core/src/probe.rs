//! A connectivity probe: one ICMP echo from inside a namespace (what `ping -c1 -W` does),
//! without needing the `ping` binary.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;
use crate::types::MacAddr;

impl Netns {
    /// Tells the neighbours about `ips` on link `ifindex` (MAC `mac`) at once: a gratuitous
    /// ARP for each IPv4 address and an unsolicited neighbour advertisement (override) for each
    /// IPv6 one, so switches and peers learn the new location without waiting for traffic.
    pub fn announce(&self, ifindex: u32, mac: MacAddr, ips: Vec<IpAddr>) -> Result<()> {
        mac.check_assignable(format_args!("announcements on link {ifindex}"))?;
        self.run(move || announce(ifindex, mac, &ips, &mut Vec::new()))?
    }

    /// Like [`Netns::announce`], without blocking the async caller.
    pub async fn announce_async(&self, ifindex: u32, mac: MacAddr, ips: Vec<IpAddr>) -> Result<()> {
        mac.check_assignable(format_args!("announcements on link {ifindex}"))?;
        // The sockets close after the answer: closing a packet socket waits for an RCU grace
        // period (~10-20 ms), which the caller need not.
        self.run_async_then_drop(move || {
            let mut sockets = Vec::new();
            (announce(ifindex, mac, &ips, &mut sockets), sockets)
        })
        .await?
    }

    /// Sends one ICMP (or ICMPv6) echo request to `dst` from inside this namespace and waits up
    /// to `timeout` for the reply. `Ok(Some(rtt))` on a reply, `Ok(None)` when none came
    /// (unreachable, filtered, timed out). Needs CAP_NET_RAW (raw socket).
    pub fn ping(&self, dst: IpAddr, timeout: Duration) -> Result<Option<Duration>> {
        self.run(move || echo(dst, timeout))?
    }

    /// Like [`Netns::ping`], without blocking the async caller.
    pub async fn ping_async(&self, dst: IpAddr, timeout: Duration) -> Result<Option<Duration>> {
        self.run_async(move || echo(dst, timeout)).await?
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo(dst: IpAddr, timeout: Duration) -> Result<Option<Duration>> {
    let (domain, proto, req_type, reply_type) = match dst {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
    };
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let e = Error::io(format!("cannot open an ICMP socket to ping {dst}"), err);
        return Err(if e.kind() == ErrorKind::PermissionDenied {
            Error::new(
                ErrorKind::PermissionDenied,
                format!("ping {dst}: needs CAP_NET_RAW (run as root)"),
            )
            .with_errno(libc::EPERM)
        } else {
            e
        });
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut id_bytes = [0u8; 2];
    crate::sys::fill_random(&mut id_bytes);
    let id = u16::from_ne_bytes(id_bytes);
    let seq: u16 = 1;
    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"underlay-probe");
    if dst.is_ipv4() {
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let addr = SocketAddr::new(dst, 0);
    let (sa, len) = sockaddr(&addr);
    let start = Instant::now();
    // SAFETY: pkt and sa are valid for the given lengths.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if sent < 0 {
        let err = std::io::Error::last_os_error();
        // No route / unreachable network: no reply is the answer.
        if matches!(
            err.raw_os_error(),
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EINVAL)
        ) {
            return Ok(None);
        }
        return Err(Error::io(format!("cannot send an ICMP echo to {dst}"), err));
    }
    let mut buf = [0u8; 1500];
    loop {
        let left = match timeout.checked_sub(start.elapsed()) {
            Some(l) if !l.is_zero() => l,
            _ => return Ok(None),
        };
        let tv = libc::timeval {
            tv_sec: left.as_secs() as libc::time_t,
            tv_usec: left.subsec_micros().max(1) as libc::suseconds_t,
        };
        // SAFETY: setting a timeval option with its size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => {
                    return Err(Error::io(
                        format!("cannot receive the echo reply from {dst}"),
                        err,
                    ))
                }
            }
        }
        let data = &buf[..n as usize];
        // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
        let icmp = if dst.is_ipv4() {
            let ihl = usize::from(data.first().map(|b| b & 0x0f).unwrap_or(5)) * 4;
            if data.len() < ihl + 8
                || data[12..16]
                    != match dst {
                        IpAddr::V4(a) => a.octets(),
                        _ => [0; 4],
                    }
            {
                continue;
            }
            &data[ihl..]
        } else {
            data
        };
        if icmp.len() >= 8
            && icmp[0] == reply_type
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
        {
            return Ok(Some(start.elapsed()));
        }
    }
}

fn socket(domain: i32, ty: i32, proto: i32, what: &str) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(Error::io(
            format!("cannot open a socket to {what}"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `buf` on packet socket `fd` out of link `ifindex` to `dst` (protocol `ethertype`).
fn send_on_link(
    fd: &OwnedFd,
    buf: &[u8],
    ifindex: u32,
    ethertype: u16,
    dst: [u8; 6],
) -> std::io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ethertype.to_be();
    ll.sll_ifindex = ifindex as i32;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&dst);
    retry_when_queue_full(|| {
        // SAFETY: buffers valid for their lengths.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&ll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// Sends the announcements, one socket per address family whatever the number of addresses:
/// a send-only packet socket puts the gratuitous ARPs on the link as whole frames, one ICMPv6
/// socket sends the neighbour advertisements (through the kernel, which refuses one for a
/// tentative address). The sockets are pushed to `keep` (their caller decides when to pay for
/// closing them: closing a packet socket waits for an RCU grace period).
fn announce(ifindex: u32, mac: MacAddr, ips: &[IpAddr], keep: &mut Vec<OwnedFd>) -> Result<()> {
    let v4: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv4).collect();
    if !v4.is_empty() {
        let s = socket(libc::AF_PACKET, libc::SOCK_RAW, 0, "send gratuitous ARPs")?;
        for (ip, (dst, ethertype, frame)) in v4.iter().zip(announcement_frames(mac, &v4)) {
            send_on_link(&s, &frame, ifindex, ethertype, dst)
                .map_err(|e| Error::io(format!("cannot send a gratuitous ARP for {ip}"), e))?;
        }
        keep.push(s);
    }
    let v6: Vec<std::net::Ipv6Addr> = ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    if v6.is_empty() {
        return Ok(());
    }
    let s = socket(
        libc::AF_INET6,
        libc::SOCK_RAW,
        libc::IPPROTO_ICMPV6,
        "send neighbour advertisements",
    )?;
    let hops: libc::c_int = 255;
    let idx = ifindex as libc::c_int;
    // SAFETY: int options with their sizes.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_HOPS,
            (&hops as *const libc::c_int).cast(),
            4,
        );
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_IF,
            (&idx as *const libc::c_int).cast(),
            4,
        );
    }
    let all_nodes = SocketAddr::new(IpAddr::V6("ff02::1".parse().expect("static")), 0);
    let (mut sa, len) = sockaddr(&all_nodes);
    // SAFETY: sockaddr_storage holds a sockaddr_in6 here.
    unsafe {
        (*(&mut sa as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()).sin6_scope_id =
            ifindex
    };
    for v6 in v6 {
        // Neighbour advertisement, override flag, target = our address, option 2 = our MAC.
        let mut na = vec![136u8, 0, 0, 0, 0x20, 0, 0, 0];
        na.extend_from_slice(&v6.octets());
        na.extend_from_slice(&[2, 1]);
        na.extend_from_slice(&mac.octets());
        let sent = retry_when_queue_full(|| {
            // SAFETY: buffers valid for their lengths.
            let n = unsafe {
                libc::sendto(
                    s.as_raw_fd(),
                    na.as_ptr().cast(),
                    na.len(),
                    0,
                    (&sa as *const libc::sockaddr_storage).cast(),
                    len,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        if let Err(err) = sent {
            // A tentative address (DAD running) cannot send yet; the kernel announces it after DAD.
            if err.raw_os_error() != Some(libc::EADDRNOTAVAIL) {
                return Err(Error::io(
                    format!("cannot send a neighbour advertisement for {v6}"),
                    err,
                ));
            }
        }
    }
    keep.push(s);
    Ok(())
}

/// Runs `send` again (up to 100 times, 1 ms apart) while the link's queue is full
/// (`ENOBUFS`): a batch of hundreds of frames can outrun a slow NIC's transmit queue.
fn retry_when_queue_full(mut send: impl FnMut() -> std::io::Result<()>) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match send() {
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// Announcement frames for `ips` at `mac`, whole Ethernet frames (destination, ethertype,
/// frame): a gratuitous ARP request (broadcast) per IPv4 address and an unsolicited neighbour
/// advertisement (override, to all nodes, hop limit 255) per IPv6 one.
pub(crate) fn announcement_frames(mac: MacAddr, ips: &[IpAddr]) -> Vec<([u8; 6], u16, Vec<u8>)> {
    let ether = |dst: [u8; 6], ethertype: u16| {
        let mut f = Vec::with_capacity(86);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&mac.octets());
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    };
    ips.iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => {
                let dst = [0xff; 6];
                let mut f = ether(dst, 0x0806);
                f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                f.extend_from_slice(&mac.octets());
                f.extend_from_slice(&v4.octets());
                f.extend_from_slice(&[0; 6]);
                f.extend_from_slice(&v4.octets());
                f.resize(60, 0);
                (dst, 0x0806, f)
            }
            IpAddr::V6(v6) => {
                let all_nodes: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                let dst = [0x33, 0x33, 0, 0, 0, 1];
                let mut icmp = vec![136u8, 0, 0, 0, 0x20, 0, 0, 0];
                icmp.extend_from_slice(&v6.octets());
                icmp.extend_from_slice(&[2, 1]);
                icmp.extend_from_slice(&mac.octets());
                // Checksum over the pseudo-header (source, destination, length, next header).
                let mut pseudo = Vec::with_capacity(40 + icmp.len());
                pseudo.extend_from_slice(&v6.octets());
                pseudo.extend_from_slice(&all_nodes);
                pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 58]);
                pseudo.extend_from_slice(&icmp);
                let sum = checksum(&pseudo);
                icmp[2..4].copy_from_slice(&sum.to_be_bytes());
                let mut f = ether(dst, 0x86dd);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
                f.extend_from_slice(&[58, 255]);
                f.extend_from_slice(&v6.octets());
                f.extend_from_slice(&all_nodes);
                f.extend_from_slice(&icmp);
                (dst, 0x86dd, f)
            }
        })
        .collect()
}

/// A send-only packet socket (protocol 0: it receives nothing) that puts announcement frames
/// straight onto a link: on an endpoint's parent, they reach the switch and the hosts beyond
/// it, not the parent's other macvlans (a bridge-mode parent hands every broadcast from a
/// child to each sibling, which makes an announcement from inside O(siblings)). Kept open:
/// closing a packet socket waits for an RCU grace period.
#[derive(Debug)]
pub(crate) struct WireAnnouncer {
    fd: OwnedFd,
}

impl WireAnnouncer {
    /// Opens the socket in `netns` (the namespace of the links it will send on).
    pub(crate) fn open(netns: &Netns) -> Result<WireAnnouncer> {
        let fd =
            netns.run(|| socket(libc::AF_PACKET, libc::SOCK_RAW, 0, "announce endpoints"))??;
        Ok(WireAnnouncer { fd })
    }

    /// Sends the announcements of `ips` at `mac` out of link `ifindex`.
    pub(crate) fn send(&self, ifindex: u32, mac: MacAddr, ips: &[IpAddr]) -> Result<()> {
        for (ip, (dst, ethertype, frame)) in ips.iter().zip(announcement_frames(mac, ips)) {
            send_on_link(&self.fd, &frame, ifindex, ethertype, dst)
                .map_err(|e| Error::io(format!("cannot announce {ip} on link {ifindex}"), e))?;
        }
        Ok(())
    }

    /// Sends one whole Ethernet `frame` (its header included) out of link `ifindex`.
    pub(crate) fn send_frame(&self, ifindex: u32, frame: &[u8]) -> Result<()> {
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[..6]);
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        send_on_link(&self.fd, frame, ifindex, ethertype, dst)
            .map_err(|e| Error::io(format!("cannot send a frame on link {ifindex}"), e))
    }
}

/// How a connect checks on the wire that an address is free before it assigns it (a
/// network's opt-in, [`crate::network::NetworkSpec::conflict_detection`]): IPv4 addresses by
/// ARP probes (RFC 5227: sender address 0.0.0.0, so no neighbour learns anything) sent out of
/// the parent before the endpoint exists, IPv6 addresses by the kernel's duplicate address
/// detection on the endpoint (instead of `nodad`), with the same number of probes and wait.
///
/// ```
/// use std::time::Duration;
/// use underlay::ConflictDetection;
/// let quick = ConflictDetection::default(); // 1 probe, then 150 ms of listening
/// assert_eq!((quick.probes(), quick.wait()), (1, Duration::from_millis(150)));
/// let rfc = ConflictDetection::rfc5227(); // 3 probes 1 s apart, then 2 s
/// assert_eq!(rfc.total(), Duration::from_secs(4));
/// assert!(ConflictDetection::new(0, Duration::ZERO, Duration::from_millis(100)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConflictDetection {
    probes: u32,
    interval: Duration,
    wait: Duration,
}

impl Default for ConflictDetection {
    /// Short enough for container start-up: one probe, then 150 ms of listening.
    fn default() -> Self {
        ConflictDetection {
            probes: 1,
            interval: Duration::ZERO,
            wait: Duration::from_millis(150),
        }
    }
}

impl ConflictDetection {
    /// Most probes per address.
    pub const MAX_PROBES: u32 = 10;
    /// Longest interval between probes, and longest wait after the last one.
    pub const MAX_WAIT: Duration = Duration::from_secs(10);

    /// `probes` probes (1..=10) `interval` apart, then `wait` for an answer after the last
    /// one (both at most 10 s; the wait at least 1 ms).
    pub fn new(probes: u32, interval: Duration, wait: Duration) -> Result<ConflictDetection> {
        if !(1..=Self::MAX_PROBES).contains(&probes) {
            return Err(Error::invalid(format!(
                "conflict detection: {probes} probes: give 1 to {}",
                Self::MAX_PROBES
            )));
        }
        for (what, d) in [("interval", interval), ("wait", wait)] {
            if d > Self::MAX_WAIT {
                return Err(Error::invalid(format!(
                    "conflict detection: {what} of {d:?} is too long: give at most 10 s"
                )));
            }
        }
        if wait < Duration::from_millis(1) {
            return Err(Error::invalid(
                "conflict detection: a wait under 1 ms hears no answer: give at least 1 ms (100-200 ms on a LAN)",
            ));
        }
        Ok(ConflictDetection {
            probes,
            interval,
            wait,
        })
    }

    /// RFC 5227's timings: 3 probes (PROBE_NUM) 1 s apart (PROBE_MIN), then 2 s
    /// (ANNOUNCE_WAIT). The RFC's random initial delay (PROBE_WAIT) is left out: a connect
    /// is not one of many hosts powering up at once.
    pub fn rfc5227() -> ConflictDetection {
        ConflictDetection {
            probes: 3,
            interval: Duration::from_secs(1),
            wait: Duration::from_secs(2),
        }
    }

    /// Probes per address.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// Time between probes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Time listening after the last probe.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// How long one check takes: the intervals plus the wait.
    pub fn total(&self) -> Duration {
        self.interval * (self.probes - 1) + self.wait
    }

    /// The stored form: `probes=N,interval_ms=I,wait_ms=W`.
    pub(crate) fn to_text(self) -> String {
        format!(
            "probes={},interval_ms={},wait_ms={}",
            self.probes,
            self.interval.as_millis(),
            self.wait.as_millis()
        )
    }

    /// Reads [`ConflictDetection::to_text`]'s form, or Docker-style words: `on` (the
    /// default timings), `rfc5227`.
    pub(crate) fn parse(text: &str) -> Result<ConflictDetection> {
        match text {
            "on" | "true" | "1" => return Ok(ConflictDetection::default()),
            "rfc5227" => return Ok(ConflictDetection::rfc5227()),
            _ => {}
        }
        let bad = || {
            Error::invalid(format!(
                "conflict detection `{}`: give `on`, `rfc5227` or `probes=N,interval_ms=I,wait_ms=W`",
                Error::show_input(text)
            ))
        };
        let mut c = ConflictDetection::default();
        for part in text.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            let n: u64 = v.parse().map_err(|_| bad())?;
            match k {
                "probes" => c.probes = u32::try_from(n).map_err(|_| bad())?,
                "interval_ms" => c.interval = Duration::from_millis(n),
                "wait_ms" => c.wait = Duration::from_millis(n),
                _ => return Err(bad()),
            }
        }
        ConflictDetection::new(c.probes, c.interval, c.wait)
    }
}

/// An address found in use on the wire: who answered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WireConflict {
    /// The address.
    pub ip: IpAddr,
    /// The MAC that answered (None when the kernel's duplicate address detection failed
    /// without the answer being seen).
    pub mac: Option<MacAddr>,
}

/// The ARP probe for `ip` from `mac` (RFC 5227: sender address 0.0.0.0, target `ip`), a whole
/// broadcast frame.
fn arp_probe_frame(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f.resize(60, 0);
    f
}

/// The conflict an ARP frame (the frame after the Ethernet header) shows for one of `ips`,
/// probing from `mac`: someone else using the address (any ARP with it as sender), or
/// probing for it too (a request from 0.0.0.0 for it).
fn arp_conflict(arp: &[u8], mac: MacAddr, ips: &[Ipv4Addr]) -> Option<WireConflict> {
    if arp.len() < 28 || arp[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    let sha: [u8; 6] = arp[8..14].try_into().ok()?;
    let spa = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    let tpa = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
    if sha == mac.octets() {
        return None;
    }
    let hit = if ips.contains(&spa) {
        spa
    } else if op == 1 && spa.is_unspecified() && ips.contains(&tpa) {
        tpa
    } else {
        return None;
    };
    Some(WireConflict {
        ip: IpAddr::V4(hit),
        mac: Some(MacAddr::new(sha)),
    })
}

/// A packet socket (`kind` SOCK_RAW or SOCK_DGRAM) of protocol `ethertype` bound to link
/// `ifindex`, non-blocking, opened inside `netns` and registered with the runtime for reading.
/// `what` says what it is for, in the errors ("probe for address conflicts").
pub(crate) async fn open_link_socket(
    netns: &Netns,
    ifindex: u32,
    kind: i32,
    ethertype: u16,
    what: &str,
) -> Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let owned_what = what.to_string();
    let fd = netns
        .run_pooled(move || -> Result<OwnedFd> {
            let what = owned_what;
            // Protocol 0 at creation, the real one at bind: a socket created with a protocol is
            // hooked in at once, and re-binding it unhooks it first, which waits for an RCU
            // grace period (~10-20 ms) on the opening thread.
            let fd = socket(libc::AF_PACKET, kind | libc::SOCK_NONBLOCK, 0, &what)?;
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            ll.sll_family = libc::AF_PACKET as u16;
            ll.sll_protocol = ethertype.to_be();
            ll.sll_ifindex = ifindex as i32;
            // SAFETY: a sockaddr_ll with its size.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&ll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if r != 0 {
                return Err(Error::io(
                    format!("cannot listen on link {ifindex} to {what}"),
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(fd)
        })
        .await??;
    // SAFETY: an OwnedFd keeps its descriptor open, and the same, until it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| {
            Error::io(
                format!("cannot register a packet socket to {what} with the runtime"),
                std::io::Error::other(e.to_string()),
            )
        })
}

/// A packet socket of one protocol bound to one link, non-blocking, opened inside `netns`;
/// closed off the async runtime when dropped (a close waits for an RCU grace period).
pub(crate) struct LinkListener {
    fd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
}

impl LinkListener {
    async fn open(netns: &Netns, ifindex: u32, ethertype: u16, what: &str) -> Result<Self> {
        Self::open_kind(netns, ifindex, libc::SOCK_RAW, ethertype, what).await
    }

    /// As `open`, of socket type `kind` (SOCK_RAW: whole frames; SOCK_DGRAM: payloads).
    pub(crate) async fn open_kind(
        netns: &Netns,
        ifindex: u32,
        kind: i32,
        ethertype: u16,
        what: &str,
    ) -> Result<Self> {
        let fd = open_link_socket(netns, ifindex, kind, ethertype, what).await?;
        Ok(LinkListener { fd: Some(fd) })
    }

    pub(crate) fn raw(&self) -> &OwnedFd {
        self.fd.as_ref().expect("open until dropped").get_ref()
    }

    /// The next frame received (not sent) on the link before `deadline`, into `buf`:
    /// its length, or None at the deadline.
    async fn next(&self, buf: &mut [u8], deadline: tokio::time::Instant) -> Result<Option<usize>> {
        Ok(self.next_from(buf, deadline).await?.map(|(n, _)| n))
    }

    /// As `next`, with the sender's MAC.
    pub(crate) async fn next_from(
        &self,
        buf: &mut [u8],
        deadline: tokio::time::Instant,
    ) -> Result<Option<(usize, MacAddr)>> {
        let fd = self.fd.as_ref().expect("open until dropped");
        loop {
            let mut guard = match tokio::time::timeout_at(deadline, fd.readable()).await {
                Err(_) => return Ok(None),
                Ok(g) => g.map_err(|e| Error::io("cannot wait on a packet socket", e))?,
            };
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buffers valid for their lengths.
            let n = unsafe {
                libc::recvfrom(
                    fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                // Bound while the link was down (the kernel reports that once, then hooks
                // the socket in when the link comes up: `Announce::Kernel` brings an
                // endpoint up after duplicate address detection's witness is open), or the
                // link went down meanwhile: keep listening until the deadline.
                if err.raw_os_error() == Some(libc::ENETDOWN) {
                    continue;
                }
                return Err(Error::io("cannot receive on a packet socket", err));
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&from.sll_addr[..6]);
            return Ok(Some((n as usize, MacAddr::new(mac))));
        }
    }
}

impl Drop for LinkListener {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let fd = fd.into_inner();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(move || drop(fd));
                }
                Err(_) => drop(fd),
            }
        }
    }
}

/// ARP probing on one parent, shared by every connect probing there at the same time: one
/// packet socket (opening and closing one per probe costs RCU grace periods, and each would
/// get a copy of every other probe's frames) and one task reading it, which hands each ARP
/// frame to the probes waiting for its address. The task ends with the prober.
pub(crate) struct ArpProber {
    ifindex: u32,
    listener: Arc<LinkListener>,
    waiting: Arc<Mutex<HashMap<Ipv4Addr, Vec<Arc<ProbeSlot>>>>>,
    reader: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// What one probe heard: the first conflict per address.
#[derive(Default)]
struct ProbeSlot {
    mac: Option<MacAddr>,
    found: Mutex<Vec<WireConflict>>,
}

impl std::fmt::Debug for ArpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArpProber")
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ArpProber {
    /// Opens the socket on link `ifindex` of `netns` and starts its reader on the runtime.
    pub(crate) async fn open(netns: &Netns, ifindex: u32) -> Result<ArpProber> {
        let listener = Arc::new(
            LinkListener::open(netns, ifindex, ETH_P_ARP, "probe for address conflicts").await?,
        );
        let waiting: Arc<Mutex<HashMap<Ipv4Addr, Vec<Arc<ProbeSlot>>>>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (l, w) = (listener.clone(), waiting.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1600];
            loop {
                let far = tokio::time::Instant::now() + Duration::from_secs(3600);
                let n = tokio::select! {
                    _ = &mut stopped => return,
                    n = l.next(&mut buf, far) => n,
                };
                let n = match n {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading ARP answers to probes failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // SOCK_RAW: the frame starts with its Ethernet header.
                let Some(arp) = buf.get(14..n) else { continue };
                let Some(ip) = arp_subject(arp) else { continue };
                let slots: Vec<Arc<ProbeSlot>> = lock(&w).get(&ip).cloned().unwrap_or_default();
                for slot in slots {
                    let Some(mac) = slot.mac else { continue };
                    if let Some(c) = arp_conflict(arp, mac, &[ip]) {
                        let mut found = lock(&slot.found);
                        if !found.iter().any(|f| f.ip == c.ip) {
                            found.push(c);
                        }
                    }
                }
            }
        });
        Ok(ArpProber {
            ifindex,
            listener,
            waiting,
            reader,
            _stop: stop,
        })
    }

    /// Whether its reader still runs (it stops with the runtime that started it: a prober
    /// made under a runtime since shut down must be opened again).
    pub(crate) fn is_running(&self) -> bool {
        !self.reader.is_finished()
    }

    /// Probes `ips` (RFC 5227 probes from `mac`) and returns those found in use, each once,
    /// with the MAC that answered.
    pub(crate) async fn probe(
        &self,
        mac: MacAddr,
        ips: &[Ipv4Addr],
        how: ConflictDetection,
    ) -> Result<Vec<WireConflict>> {
        let slot = Arc::new(ProbeSlot {
            mac: Some(mac),
            found: Mutex::default(),
        });
        {
            let mut w = lock(&self.waiting);
            for ip in ips {
                w.entry(*ip).or_default().push(slot.clone());
            }
        }
        // Unregistered however this ends (an error, the connect's future dropped).
        struct Registered<'a>(&'a ArpProber, &'a [Ipv4Addr], &'a Arc<ProbeSlot>);
        impl Drop for Registered<'_> {
            fn drop(&mut self) {
                let mut w = lock(&self.0.waiting);
                for ip in self.1 {
                    if let Some(v) = w.get_mut(ip) {
                        v.retain(|s| !Arc::ptr_eq(s, self.2));
                        if v.is_empty() {
                            w.remove(ip);
                        }
                    }
                }
            }
        }
        let _registered = Registered(self, ips, &slot);
        for k in 0..how.probes {
            for ip in ips {
                send_on_link(
                    self.listener.raw(),
                    &arp_probe_frame(mac, *ip),
                    self.ifindex,
                    ETH_P_ARP,
                    [0xff; 6],
                )
                .map_err(|e| {
                    Error::io(
                        format!("cannot send an ARP probe for {ip} on link {}", self.ifindex),
                        e,
                    )
                })?;
            }
            tokio::time::sleep(if k + 1 == how.probes {
                how.wait
            } else {
                how.interval
            })
            .await;
            if lock(&slot.found).len() == ips.len() {
                break;
            }
        }
        let found = lock(&slot.found).clone();
        Ok(found)
    }
}

/// The address an ARP frame (after the Ethernet header) speaks for: its sender, or the
/// target of a probe (a request from 0.0.0.0).
fn arp_subject(arp: &[u8]) -> Option<Ipv4Addr> {
    if arp.len() < 28 || arp[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let spa = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    if !spa.is_unspecified() {
        return Some(spa);
    }
    (arp[7] == 1).then(|| Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]))
}

const ETH_P_ARP: u16 = 0x0806;

/// A packet socket on a network's parent hearing ARP from the wire (frames the host sends are
/// left out): what [`crate::network::Network::watch_conflicts`] reads.
pub(crate) struct ArpListener {
    listener: LinkListener,
    buf: Box<[u8; 1600]>,
}

impl ArpListener {
    pub(crate) async fn open(netns: &Netns, ifindex: u32) -> Result<ArpListener> {
        let listener =
            LinkListener::open(netns, ifindex, 0x0806, "watch for address conflicts").await?;
        Ok(ArpListener {
            listener,
            buf: Box::new([0; 1600]),
        })
    }

    /// The next ARP frame's (sender MAC, sender address, target address, is a request),
    /// or None at `deadline`.
    pub(crate) async fn next(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<(MacAddr, Ipv4Addr, Ipv4Addr, bool)>> {
        loop {
            let Some(n) = self.listener.next(&mut self.buf[..], deadline).await? else {
                return Ok(None);
            };
            let Some(a) = self.buf.get(14..n) else {
                continue;
            };
            if a.len() < 28 || a[0..6] != [0, 1, 8, 0, 6, 4] {
                continue;
            }
            let sha: [u8; 6] = a[8..14].try_into().expect("6 bytes");
            return Ok(Some((
                MacAddr::new(sha),
                Ipv4Addr::new(a[14], a[15], a[16], a[17]),
                Ipv4Addr::new(a[24], a[25], a[26], a[27]),
                a[7] == 1,
            )));
        }
    }
}

/// Listens on an endpoint's link, inside its namespace, for neighbour advertisements and
/// solicitations of others while its addresses go through duplicate address detection: tells
/// who answered when detection fails.
pub(crate) struct DadWitness {
    listener: LinkListener,
    mac: Option<MacAddr>,
}

impl DadWitness {
    pub(crate) async fn open(netns: &Netns, ifindex: u32, mac: Option<MacAddr>) -> Result<Self> {
        const ETH_P_IPV6: u16 = 0x86dd;
        let listener = LinkListener::open(
            netns,
            ifindex,
            ETH_P_IPV6,
            "watch duplicate address detection",
        )
        .await?;
        Ok(DadWitness { listener, mac })
    }

    /// For each of `ips`, the MAC of another node heard speaking for it so far (an
    /// advertisement for it, or a solicitation for it from `::`: its link-layer source),
    /// without waiting.
    pub(crate) async fn heard(&self, ips: &[std::net::Ipv6Addr]) -> Result<Vec<Option<MacAddr>>> {
        let mut buf = [0u8; 1600];
        let now = tokio::time::Instant::now();
        let mut who = vec![None; ips.len()];
        while let Some(n) = self.listener.next(&mut buf, now).await? {
            let f = &buf[..n];
            // Ethernet (14) + IPv6 (40) + ICMPv6 NS/NA (24): type, target.
            if f.len() < 78 || f[12..14] != [0x86, 0xdd] || f[20] != 58 {
                continue;
            }
            let src: [u8; 6] = f[6..12].try_into().expect("6 bytes");
            if Some(MacAddr::new(src)) == self.mac {
                continue;
            }
            let icmp = &f[54..];
            let target: [u8; 16] = icmp[8..24].try_into().expect("16 bytes");
            let from_unspecified = f[22..38].iter().all(|b| *b == 0);
            let speaks = match icmp[0] {
                136 => true,
                135 => from_unspecified,
                _ => false,
            };
            if let Some(i) = ips
                .iter()
                .position(|ip| *ip == std::net::Ipv6Addr::from(target))
            {
                if speaks {
                    who[i] = Some(MacAddr::new(src));
                }
            }
        }
        Ok(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum() {
        // Echo request, id 0x1234, seq 1, no payload: checksum 0xe5ca.
        let pkt = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(checksum(&pkt), 0xe5ca);
        let mut with = pkt;
        with[2..4].copy_from_slice(&0xe5cau16.to_be_bytes());
        assert_eq!(checksum(&with), 0);
    }

    #[test]
    fn arp_probes_and_what_counts_as_a_conflict() {
        let me: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let them = [2u8, 0, 0, 0, 0, 9];
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let probe = arp_probe_frame(me, ip);
        assert_eq!((probe.len(), &probe[0..6]), (60, &[0xff; 6][..]));
        let arp = &probe[14..];
        assert_eq!(&arp[14..18], &[0, 0, 0, 0], "sender address 0.0.0.0");
        assert_eq!(&arp[24..28], &ip.octets());
        // Our own probe is no conflict; another's probe for the address is; a reply is.
        assert_eq!(arp_conflict(arp, me, &[ip]), None);
        let mut theirs = arp.to_vec();
        theirs[8..14].copy_from_slice(&them);
        let hit = Some(WireConflict {
            ip: IpAddr::V4(ip),
            mac: Some(MacAddr::new(them)),
        });
        assert_eq!(arp_conflict(&theirs, me, &[ip]), hit);
        let mut reply = theirs.clone();
        reply[7] = 2;
        reply[14..18].copy_from_slice(&ip.octets());
        reply[24..28].copy_from_slice(&[0; 4]);
        assert_eq!(arp_conflict(&reply, me, &[ip]), hit);
        // A reply for another address, or a truncated frame, is none.
        assert_eq!(
            arp_conflict(&reply, me, &[Ipv4Addr::new(10, 0, 0, 6)]),
            None
        );
        assert_eq!(arp_conflict(&reply[..20], me, &[ip]), None);
    }

    #[test]
    fn conflict_detection_text() {
        for c in [
            ConflictDetection::default(),
            ConflictDetection::rfc5227(),
            ConflictDetection::new(4, Duration::from_millis(20), Duration::from_millis(75))
                .unwrap(),
        ] {
            assert_eq!(ConflictDetection::parse(&c.to_text()).unwrap(), c);
        }
        assert!(ConflictDetection::new(11, Duration::ZERO, Duration::from_millis(1)).is_err());
        assert!(
            ConflictDetection::new(1, Duration::from_secs(11), Duration::from_millis(1)).is_err()
        );
    }

    #[test]
    fn announcement_frames_are_well_formed() {
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let frames = announcement_frames(mac, &[v4, v6]);
        let (dst, ty, arp) = &frames[0];
        assert_eq!((*dst, *ty, arp.len()), ([0xff; 6], 0x0806, 60));
        assert_eq!(&arp[6..12], &mac.octets());
        // Sender and target protocol addresses are both ours.
        assert_eq!(&arp[28..32], &[10, 0, 0, 7]);
        assert_eq!(&arp[38..42], &[10, 0, 0, 7]);
        let (dst, ty, na) = &frames[1];
        assert_eq!((*dst, *ty), ([0x33, 0x33, 0, 0, 0, 1], 0x86dd));
        let (ip6, icmp) = na[14..].split_at(40);
        assert_eq!((ip6[6], ip6[7]), (58, 255), "ICMPv6, hop limit 255");
        assert_eq!(
            usize::from(u16::from_be_bytes([ip6[4], ip6[5]])),
            icmp.len()
        );
        assert_eq!((icmp[0], icmp[4]), (136, 0x20), "advertisement, override");
        // The checksum over the pseudo-header and the message (its own field included) is 0.
        let mut pseudo = ip6[8..40].to_vec();
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(checksum(&pseudo), 0);
    }
}

//! A connectivity probe: one ICMP echo from inside a namespace (what `ping -c1 -W` does),
//! without needing the `ping` binary.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

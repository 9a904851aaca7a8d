//! What underlay puts on the wire, captured by a neighbour: batched announcements, address
//! conflict detection (ARP probes, IPv6 duplicate address detection) and the quarantine.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use underlay::{Netns, Veth};

use crate::common::{privileged, TestNs};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// A packet socket receiving every frame on one link of a namespace (what tcpdump would see).
pub(crate) struct Capture {
    fd: OwnedFd,
}

impl Capture {
    /// Opens the capture on link `ifindex` of `ns`, with a receive buffer for thousands of
    /// frames.
    pub(crate) fn open(ns: &Netns, ifindex: u32) -> Capture {
        let fd = ns
            .run(move || {
                const ETH_P_ALL: u16 = 0x0003;
                // SAFETY: plain socket(2).
                let fd = unsafe {
                    libc::socket(
                        libc::AF_PACKET,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        i32::from(ETH_P_ALL.to_be()),
                    )
                };
                assert!(
                    fd >= 0,
                    "packet socket: {}",
                    std::io::Error::last_os_error()
                );
                // SAFETY: fresh descriptor.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let size: libc::c_int = 8 << 20;
                // SAFETY: int option with its size.
                unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUFFORCE,
                        (&size as *const libc::c_int).cast(),
                        4,
                    )
                };
                // SAFETY: all-zero is a valid sockaddr_ll.
                let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                ll.sll_family = libc::AF_PACKET as u16;
                ll.sll_protocol = ETH_P_ALL.to_be();
                ll.sll_ifindex = ifindex as i32;
                // SAFETY: a sockaddr_ll with its size.
                let r = unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        (&ll as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
                fd
            })
            .unwrap();
        Capture { fd }
    }

    /// Frames received until `quiet` passes without one (or `limit` in all).
    pub(crate) fn frames(&self, quiet: Duration, limit: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while start.elapsed() < limit {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, quiet.as_millis() as i32) };
            if n <= 0 {
                break;
            }
            // SAFETY: buf valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                out.push(buf[..n as usize].to_vec());
            }
        }
        out
    }
}

/// An ARP frame's (operation, sender MAC, sender IP, target IP).
pub(crate) fn arp(frame: &[u8]) -> Option<(u16, [u8; 6], Ipv4Addr, Ipv4Addr)> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
        return None;
    }
    let a = &frame[14..];
    let op = u16::from_be_bytes([a[6], a[7]]);
    let sha: [u8; 6] = a[8..14].try_into().unwrap();
    let spa = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let tpa = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    Some((op, sha, spa, tpa))
}

/// An ICMPv6 neighbour advertisement's target, or None.
pub(crate) fn na_target(frame: &[u8]) -> Option<Ipv6Addr> {
    if frame.len() < 14 + 40 + 24 || frame[12..14] != [0x86, 0xdd] || frame[14 + 6] != 58 {
        return None;
    }
    let icmp = &frame[54..];
    if icmp[0] != 136 {
        return None;
    }
    let t: [u8; 16] = icmp[8..24].try_into().unwrap();
    Some(Ipv6Addr::from(t))
}

/// 400 addresses announced in one call reach the neighbour, each once: 300 gratuitous ARPs
/// and 100 neighbour advertisements (issue 15: a socket per address made this 12 ms each).
#[tokio::test]
async fn announcing_400_addresses_sends_all_of_them() {
    root_or_skip!("announcing_400_addresses_sends_all_of_them");
    let a = TestNs::new("wan4a").await;
    let b = TestNs::new("wan4b").await;
    let v0 = Veth::create(&a.handle, "v0", "v1")
        .peer_netns(&b.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    // A source for the advertisements, usable at once.
    a.handle
        .add_address_with(
            "v0",
            "fd79::1/64".parse().unwrap(),
            underlay::AddressOptions {
                nodad: true,
                noprefixroute: false,
            },
        )
        .await
        .unwrap();
    let v1 = b.handle.link("v1").await.unwrap();
    let capture = Capture::open(&b.ns, v1.index);
    let v4: BTreeSet<Ipv4Addr> = (0..300u32)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 79, 0, 10)) + i))
        .collect();
    let v6: BTreeSet<Ipv6Addr> = (0..100u128)
        .map(|i| Ipv6Addr::from(u128::from("fd79::1000".parse::<Ipv6Addr>().unwrap()) + i))
        .collect();
    let ips: Vec<IpAddr> = v4
        .iter()
        .map(|a| IpAddr::V4(*a))
        .chain(v6.iter().map(|a| IpAddr::V6(*a)))
        .collect();
    let mac = v0.mac.unwrap();
    a.ns.announce(v0.index, mac, ips).unwrap();
    let frames = capture.frames(Duration::from_millis(500), Duration::from_secs(10));
    let mut arps = Vec::new();
    let mut nas = Vec::new();
    for f in &frames {
        if let Some((op, sha, spa, tpa)) = arp(f) {
            assert_eq!(
                (op, sha, spa),
                (1, mac.octets(), tpa),
                "a gratuitous ARP request"
            );
            arps.push(spa);
        } else if let Some(t) = na_target(f) {
            nas.push(t);
        }
    }
    assert_eq!(arps.len(), 300, "each IPv4 address announced once");
    assert_eq!(arps.iter().copied().collect::<BTreeSet<_>>(), v4);
    assert_eq!(nas.len(), 100, "each IPv6 address announced once");
    assert_eq!(nas.iter().copied().collect::<BTreeSet<_>>(), v6);
}

//! What underlay puts on the wire, captured by a neighbour: batched announcements, address
//! conflict detection (ARP probes, IPv6 duplicate address detection) and the quarantine.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use underlay::network::{EndpointSpec, NetworkSpec};
use underlay::{ConflictDetection, ErrorKind, MacvlanMode, Netns, Veth};

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

const NODAD: underlay::AddressOptions = underlay::AddressOptions {
    nodad: true,
    noprefixroute: false,
};

/// The addresses of `dev` in `t` with the flags the oracle prints (`ip -j addr`).
fn oracle_addrs(t: &TestNs, dev: &str) -> Vec<(String, Vec<String>)> {
    t.ip(&["addr", "show", "dev", dev])
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            let flags = ["tentative", "dadfailed", "nodad"]
                .iter()
                .filter(|f| a[**f].as_bool() == Some(true))
                .map(|f| f.to_string())
                .collect();
            (a["local"].as_str().unwrap_or("").to_string(), flags)
        })
        .collect()
}

/// Conflict detection on: a neighbour already using two addresses of the pool answers the
/// ARP probes; connect skips both, the lease listing shows them quarantined with the
/// neighbour's MAC, and the endpoint gets the next free address (iproute2 agrees). Without
/// conflict detection the same network would have handed out the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_skips_addresses_in_use_on_the_wire() {
    root_or_skip!("connect_skips_addresses_in_use_on_the_wire");
    let (_h, wire, _dir, nets) = crate::dhcp::host_and_wire("wcd").await;
    for a in ["172.23.30.2/24", "172.23.30.3/24"] {
        wire.handle
            .add_address("wire0", a.parse().unwrap())
            .await
            .unwrap();
    }
    let wire_mac = wire.handle.link("wire0").await.unwrap().mac.unwrap();
    let net = nets
        .create(
            NetworkSpec::macvlan("cdnet", "ens192", MacvlanMode::Bridge)
                .pool("172.23.30.0/24 gateway=172.23.30.1".parse().unwrap())
                .conflict_detection(ConflictDetection::default()),
        )
        .await
        .unwrap();
    assert_eq!(net.conflict_detection(), Some(ConflictDetection::default()));
    let c = TestNs::new("wcdc").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("c1")).await.unwrap();
    assert_eq!(ep.addresses[0].to_string(), "172.23.30.4/24");
    assert_eq!(
        oracle_addrs(&c, "eth0")
            .iter()
            .filter(|(a, _)| a.starts_with("172."))
            .map(|(a, _)| a.as_str())
            .collect::<Vec<_>>(),
        vec!["172.23.30.4"]
    );
    let q = net.ipam().quarantined().await.unwrap();
    assert_eq!(
        q.iter()
            .map(|q| (q.ip.to_string(), q.mac))
            .collect::<Vec<_>>(),
        vec![
            ("172.23.30.2".to_string(), Some(wire_mac)),
            ("172.23.30.3".to_string(), Some(wire_mac))
        ]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(q.iter().all(|q| q.since <= now && q.since + 60 > now));
    // In the lease listing, under their quarantine owners.
    let leases = net.ipam().list().await.unwrap();
    assert_eq!(leases.len(), 3);
    assert!(leases
        .iter()
        .any(|l| l.owner.container_id() == "c1" && l.ips() == vec![ep.addresses[0].addr()]));
    // A disconnect and connect again do not give the quarantined addresses back; gc keeps
    // them; releasing a quarantine's owner lifts it.
    net.disconnect("c1", "eth0").await.unwrap();
    net.ipam().gc(&[]).await.unwrap();
    assert_eq!(net.ipam().quarantined().await.unwrap(), q);
    net.ipam().release(&q[0].owner()).await.unwrap().unwrap();
    assert_eq!(net.ipam().quarantined().await.unwrap(), q[1..].to_vec());
    // The neighbour on .2 is still there: a connect asking for it is refused, nothing left.
    let c2 = TestNs::new("wcdd").await;
    let e = net
        .connect(
            &c2.ns,
            EndpointSpec::new("c2").ip("172.23.30.2".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.to_string().contains("172.23.30.2") && e.to_string().contains(&wire_mac.to_string()),
        "{e}"
    );
    assert!(c2.ip_link("eth0").is_none(), "no link left behind");
    assert!(net.endpoints().unwrap().is_empty(), "no record left behind");
    assert!(net
        .ipam()
        .lookup(&underlay::ipam::Owner::new("c2", "eth0").unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(net.ipam().quarantined().await.unwrap().len(), 2);
    // A quarantined address asked for is refused, saying so.
    let e = net
        .connect(
            &c2.ns,
            EndpointSpec::new("c2").ip("172.23.30.3".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(
        e.to_string().contains("quarantined") && e.to_string().contains(&wire_mac.to_string()),
        "{e}"
    );
}

/// Concurrent connects probe in parallel: 16 connects with a 300 ms wait each finish in far
/// less than 16 waits, and each gets its own address, none of the neighbour's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_probe_in_parallel() {
    root_or_skip!("concurrent_connects_probe_in_parallel");
    let (_h, wire, _dir, nets) = crate::dhcp::host_and_wire("wcp").await;
    let taken: Vec<String> = (5..9).map(|i| format!("172.23.31.{i}")).collect();
    for a in &taken {
        wire.handle
            .add_address("wire0", format!("{a}/24").parse().unwrap())
            .await
            .unwrap();
    }
    let how = ConflictDetection::new(1, Duration::ZERO, Duration::from_millis(300)).unwrap();
    let net = nets
        .create(
            NetworkSpec::macvlan("cpnet", "ens192", MacvlanMode::Bridge)
                .pool("172.23.31.0/24 gateway=172.23.31.1".parse().unwrap())
                .conflict_detection(how),
        )
        .await
        .unwrap();
    let mut namespaces = Vec::new();
    for _ in 0..16 {
        namespaces.push(TestNs::new("wcpc").await);
    }
    let t = Instant::now();
    let eps = futures::future::join_all(namespaces.iter().enumerate().map(|(i, c)| {
        let net = net.clone();
        async move {
            net.connect(&c.ns, EndpointSpec::new(format!("p{i}")))
                .await
                .unwrap()
        }
    }))
    .await;
    let took = t.elapsed();
    let got: BTreeSet<String> = eps
        .iter()
        .map(|e| e.addresses[0].addr().to_string())
        .collect();
    assert_eq!(got.len(), 16);
    assert!(taken.iter().all(|a| !got.contains(a)), "{got:?}");
    let q: BTreeSet<String> = net
        .ipam()
        .quarantined()
        .await
        .unwrap()
        .iter()
        .map(|q| q.ip.to_string())
        .collect();
    assert_eq!(q, taken.iter().cloned().collect());
    // Sequential probing would take 16 + 4 waits (6 s).
    assert!(took < Duration::from_millis(300) * 10, "took {took:?}");
}

/// IPv6: duplicate address detection runs instead of `nodad`; a neighbour holding the first
/// address of the pool makes it fail: the address is quarantined with the neighbour's MAC,
/// the endpoint gets the next one, and that one is usable (neither tentative nor failed, in
/// iproute2's view).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_duplicate_address_detection_failure_is_handled() {
    root_or_skip!("ipv6_duplicate_address_detection_failure_is_handled");
    let (_h, wire, _dir, nets) = crate::dhcp::host_and_wire("wdad").await;
    wire.handle
        .add_address_with("wire0", "fd32::2/64".parse().unwrap(), NODAD)
        .await
        .unwrap();
    let wire_mac = wire.handle.link("wire0").await.unwrap().mac.unwrap();
    let net = nets
        .create(
            NetworkSpec::macvlan("dadnet", "ens192", MacvlanMode::Bridge)
                .pool("fd32::/64 gateway=fd32::1".parse().unwrap())
                .conflict_detection(ConflictDetection::default()),
        )
        .await
        .unwrap();
    let c = TestNs::new("wdadc").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("v6c")).await.unwrap();
    let got = ep.addresses[0].addr().to_string();
    assert_eq!(got, "fd32::3");
    let addrs = oracle_addrs(&c, "eth0");
    let (_, flags) = addrs
        .iter()
        .find(|(a, _)| *a == got)
        .expect("address on eth0");
    assert!(
        flags.is_empty(),
        "fd32::3 has flags {flags:?} (DAD ran: not nodad, not failed)"
    );
    let q = net.ipam().quarantined().await.unwrap();
    assert_eq!(
        q.iter()
            .map(|q| (q.ip.to_string(), q.mac))
            .collect::<Vec<_>>(),
        vec![("fd32::2".to_string(), Some(wire_mac))]
    );
    // Announced by the kernel (the link comes up after its addresses): duplicate address
    // detection still runs and fails on an address the neighbour holds.
    wire.handle
        .add_address_with("wire0", "fd32::4/64".parse().unwrap(), NODAD)
        .await
        .unwrap();
    let k = TestNs::new("wdadk").await;
    let ep = net
        .connect(
            &k.ns,
            EndpointSpec::new("v6k").announce_to(underlay::network::Announce::Kernel),
        )
        .await
        .unwrap();
    let got = ep.addresses[0].addr().to_string();
    assert_eq!(got, "fd32::5");
    let addrs = oracle_addrs(&k, "eth0");
    let (_, flags) = addrs
        .iter()
        .find(|(a, _)| *a == got)
        .expect("address on eth0");
    assert!(flags.is_empty(), "fd32::5 has flags {flags:?}");
    let q = net.ipam().quarantined().await.unwrap();
    assert!(
        q.iter()
            .any(|q| q.ip.to_string() == "fd32::4" && q.mac == Some(wire_mac)),
        "{q:?}"
    );
    // Without conflict detection, IPv6 addresses still go on with nodad.
    let plain = nets
        .create(
            NetworkSpec::macvlan("plain6", "ens192", MacvlanMode::Bridge)
                .pool("fd33::/64 gateway=fd33::1".parse().unwrap()),
        )
        .await
        .unwrap();
    let d = TestNs::new("wdadd").await;
    let ep = plain
        .connect(&d.ns, EndpointSpec::new("v6d"))
        .await
        .unwrap();
    let addrs = oracle_addrs(&d, "eth0");
    let want = ep.addresses[0].addr().to_string();
    let (_, flags) = addrs.iter().find(|(a, _)| *a == want).unwrap();
    assert_eq!(flags, &vec!["nodad".to_string()]);
}

/// A conflict after connect: the neighbour starts using an endpoint's address (a gratuitous
/// ARP from its MAC); the watch reports the address, the MAC and the endpoint. The endpoint's
/// own announcements, and a neighbour's for an address nobody holds, are not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_gratuitous_arp_conflict_is_reported() {
    root_or_skip!("a_later_gratuitous_arp_conflict_is_reported");
    let (_h, wire, _dir, nets) = crate::dhcp::host_and_wire("wga").await;
    let wire0 = wire.handle.link("wire0").await.unwrap();
    let net = nets
        .create(
            NetworkSpec::macvlan("ganet", "ens192", MacvlanMode::Bridge)
                .pool("172.23.33.0/24 gateway=172.23.33.1".parse().unwrap()),
        )
        .await
        .unwrap();
    let mut watch = net.watch_conflicts().await.unwrap();
    let c = TestNs::new("wgac").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("ga1")).await.unwrap();
    let ip = ep.addresses[0].addr();
    // The connect's own announcement leaves through the parent: not a conflict.
    assert_eq!(watch.next(Duration::from_millis(300)).await.unwrap(), None);
    let wire_mac = wire0.mac.unwrap();
    wire.ns
        .announce(
            wire0.index,
            wire_mac,
            vec!["172.23.33.200".parse().unwrap()],
        )
        .unwrap();
    assert_eq!(watch.next(Duration::from_millis(300)).await.unwrap(), None);
    wire.ns.announce(wire0.index, wire_mac, vec![ip]).unwrap();
    let got = watch
        .next(Duration::from_secs(2))
        .await
        .unwrap()
        .expect("reported");
    assert_eq!(got.conflict.ip, ip);
    assert_eq!(got.conflict.mac, Some(wire_mac));
    assert_eq!(
        (got.container_id.as_str(), got.endpoint_mac),
        ("ga1", ep.mac)
    );
    let internal = nets
        .create(
            NetworkSpec::internal(
                "gaint",
                underlay::network::Driver::Macvlan(MacvlanMode::Bridge),
            )
            .pool("172.23.34.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    let e = internal.watch_conflicts().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

/// The probes as the neighbour sees them: as many as configured per address, RFC 5227's form
/// (an ARP request from 0.0.0.0 for the address, from the parent's MAC), and nothing from
/// the endpoint's address before the probes are done. Malformed ARP frames on the wire
/// meanwhile (short, wrong hardware type) change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_the_wire_are_as_configured() {
    root_or_skip!("probes_on_the_wire_are_as_configured");
    let (h, wire, _dir, nets) = crate::dhcp::host_and_wire("wpr").await;
    let how =
        ConflictDetection::new(3, Duration::from_millis(60), Duration::from_millis(80)).unwrap();
    let net = nets
        .create(
            NetworkSpec::macvlan("prnet", "ens192", MacvlanMode::Bridge)
                .pool("172.23.35.0/24 gateway=172.23.35.1".parse().unwrap())
                .conflict_detection(how),
        )
        .await
        .unwrap();
    let parent_mac = h.handle.link("ens192").await.unwrap().mac.unwrap();
    let wire0 = wire.handle.link("wire0").await.unwrap();
    let capture = Capture::open(&wire.ns, wire0.index);
    // Garbage ARP from the wire while the connect probes.
    let junk = {
        let ns = wire.ns.clone();
        let (index, mac) = (wire0.index, wire0.mac.unwrap().octets());
        std::thread::spawn(move || {
            ns.run(move || {
                // SAFETY: plain socket(2); closed below.
                let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
                assert!(fd >= 0);
                // SAFETY: fresh descriptor.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                for i in 0..40u8 {
                    let mut f = vec![0xff; 6];
                    f.extend_from_slice(&mac);
                    f.extend_from_slice(&[0x08, 0x06]);
                    // Short frames, and ARP with a wrong hardware type naming the pool's .2.
                    if i % 2 == 0 {
                        f.extend_from_slice(&[0, 1, 8]);
                    } else {
                        f.extend_from_slice(&[0, 9, 8, 0, 6, 4, 0, 2]);
                        f.extend_from_slice(&mac);
                        f.extend_from_slice(&[172, 23, 35, 2]);
                        f.extend_from_slice(&[0; 10]);
                    }
                    // SAFETY: all-zero is a valid sockaddr_ll.
                    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                    ll.sll_family = libc::AF_PACKET as u16;
                    ll.sll_ifindex = index as i32;
                    ll.sll_halen = 6;
                    ll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
                    // SAFETY: buffers valid for their lengths.
                    unsafe {
                        libc::sendto(
                            fd.as_raw_fd(),
                            f.as_ptr().cast(),
                            f.len(),
                            0,
                            (&ll as *const libc::sockaddr_ll).cast(),
                            std::mem::size_of::<libc::sockaddr_ll>() as u32,
                        )
                    };
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .unwrap()
        })
    };
    let c = TestNs::new("wprc").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("pr1")).await.unwrap();
    junk.join().unwrap();
    let ip = match ep.addresses[0].addr() {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!(),
    };
    assert_eq!(
        ip,
        Ipv4Addr::new(172, 23, 35, 2),
        "the garbage did not count as an answer"
    );
    let arps: Vec<_> = capture
        .frames(Duration::from_millis(300), Duration::from_secs(5))
        .iter()
        .filter_map(|f| arp(f))
        .filter(|(_, sha, _, _)| *sha != wire0.mac.unwrap().octets())
        .collect();
    let probes: Vec<_> = arps
        .iter()
        .filter(|(op, _, spa, tpa)| *op == 1 && spa.is_unspecified() && *tpa == ip)
        .collect();
    assert_eq!(probes.len(), 3, "{arps:?}");
    assert!(probes
        .iter()
        .all(|(_, sha, _, _)| *sha == parent_mac.octets()));
    // The first frame naming the address as its sender (the announcement) follows the probes.
    let first_probe = arps.iter().position(|a| a.2.is_unspecified()).unwrap();
    let first_use = arps
        .iter()
        .position(|a| a.2 == ip)
        .expect("announced after the probes");
    assert!(first_probe < first_use && arps[first_use..].iter().all(|a| !a.2.is_unspecified()));
    assert!(net.ipam().quarantined().await.unwrap().is_empty());
}

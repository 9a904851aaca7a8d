//! DHCP networks against the tests' own DHCP server (`dhcp_server`, lease times of seconds):
//! the exchange, the lease in the record, release, renewal at T1, rebinding at T2, expiry, NAK,
//! a silent server, an offer outside the subnet and malformed packets on the wire. The
//! container's addresses and routes are checked with iproute2.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::MessageType;
use underlay::network::{EndpointSpec, NetworkSpec, Networks};
use underlay::{DhcpConfig, ErrorKind, MacvlanMode, Veth};

use crate::common::{ip_addrs, privileged, TestNs};
use crate::dhcp_server::{Plan, TestServer};
use crate::network::TempDir;

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// A host namespace whose parent `ens192` is a veth to a wire namespace (`wire0`), where a
/// DHCP server can run, and networks over a state directory.
pub(crate) async fn host_and_wire(tag: &str) -> (TestNs, TestNs, TempDir, Networks) {
    let h = TestNs::new(tag).await;
    let wire = TestNs::new(&format!("{tag}w")).await;
    Veth::create(&h.handle, "ens192", "wire0")
        .peer_netns(&wire.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    let dir = TempDir::new(tag);
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    (h, wire, dir, nets)
}

fn quick() -> DhcpConfig {
    DhcpConfig::new(3, Duration::from_millis(200)).unwrap()
}

fn plan(lease_secs: u32, t1: u32, t2: u32) -> Plan {
    Plan {
        addr: Ipv4Addr::new(10, 77, 0, 1),
        first: Ipv4Addr::new(10, 77, 0, 100),
        lease_secs,
        t1,
        t2,
    }
}

/// The default routes of `dev` in `t` by the oracle: their gateways.
pub(crate) fn default_gateways(t: &TestNs) -> Vec<String> {
    t.ip(&["route", "show", "default"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["gateway"].as_str().map(str::to_string))
        .collect()
}

/// Connect runs DISCOVER/OFFER/REQUEST/ACK from inside the container (chaddr the link's MAC,
/// a stable client id, the container id as host name), sets the server's address, prefix and
/// router (iproute2 agrees), and records the lease; disconnect sends DHCPRELEASE to the
/// server (unicast) and leaves nothing. Malformed packets on the wire are skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_connect_gets_a_lease_and_disconnect_releases_it() {
    root_or_skip!("dhcp_connect_gets_a_lease_and_disconnect_releases_it");
    let (_h, wire, dir, nets) = host_and_wire("dh1").await;
    let server = TestServer::start(&wire, "wire0", plan(60, 30, 52)).await;
    server.set(|k| &k.garbage_first, true);
    let net = nets
        .create(
            NetworkSpec::macvlan("dnet", "ens192", MacvlanMode::Bridge).dhcp(DhcpConfig::default()),
        )
        .await
        .unwrap();
    assert!(net.pools().is_empty());
    assert_eq!(net.dhcp(), Some(DhcpConfig::default()));
    let c = TestNs::new("dh1c").await;
    let ep = net
        .connect(&c.ns, EndpointSpec::new("web-1"))
        .await
        .unwrap();
    assert_eq!(ep.addresses[0].to_string(), "10.77.0.100/24");
    assert_eq!(ip_addrs(&c, "eth0"), vec!["10.77.0.100/24"]);
    assert_eq!(default_gateways(&c), vec!["10.77.0.1"]);
    let lease = ep.dhcp.clone().unwrap();
    assert_eq!(
        (
            lease.server,
            lease.lease_time.as_secs(),
            lease.t1.as_secs(),
            lease.t2.as_secs()
        ),
        (server.addr, 60, 30, 52)
    );
    // The wire's view: the link's MAC as chaddr, the client id, the host name.
    let mac = c.ip_link("eth0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let log = server.log();
    let kinds: Vec<MessageType> = log.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![MessageType::Discover, MessageType::Request]);
    let chaddr = log[0]
        .chaddr
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(chaddr, mac);
    assert_eq!(log[0].hostname.as_deref(), Some("web-1"));
    assert_eq!(log[1].server_id, Some(server.addr));
    assert_eq!(log[1].requested, Some("10.77.0.100".parse().unwrap()));
    let client_id = log[0].client_id.clone().unwrap();
    assert_eq!(log[1].client_id.as_ref(), Some(&client_id));
    // The lease is in the endpoint's record, and read back from it.
    assert_eq!(
        net.endpoint("web-1", "eth0").unwrap().unwrap().dhcp,
        Some(lease)
    );
    let files = std::fs::read_dir(dir.0.join("endpoints").join("dnet")).unwrap();
    let text: String = files
        .filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
        .collect();
    assert!(
        text.contains("dhcp=10.77.0.100/24 server=10.77.0.1"),
        "{text}"
    );
    // The IPAM holds nothing: the address is the server's.
    assert!(net.ipam().list().await.unwrap().is_empty());
    assert_eq!(
        server.leased(),
        vec!["10.77.0.100".parse::<Ipv4Addr>().unwrap()]
    );
    server.clear_log();
    net.disconnect("web-1", "eth0").await.unwrap();
    let log = server.log();
    // Sent from the endpoint's link and once more from the parent (no answer confirms a
    // release): the same message twice.
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], log[1], "{log:?}");
    assert_eq!(log[0].kind, MessageType::Release);
    assert!(log[0].unicast, "the release goes to the server's address");
    assert_eq!(log[0].ciaddr, "10.77.0.100".parse::<Ipv4Addr>().unwrap());
    assert_eq!(log[0].client_id.as_ref(), Some(&client_id));
    assert!(server.leased().is_empty(), "the server freed the lease");
    assert!(c.ip_link("eth0").is_none());
    assert!(net.endpoints().unwrap().is_empty());
    // The same container asks with the same client id and MAC again.
    server.clear_log();
    net.connect(&c.ns, EndpointSpec::new("web-1"))
        .await
        .unwrap();
    assert_eq!(server.log()[0].client_id.as_ref(), Some(&client_id));
    assert_eq!(c.ip_link("eth0").unwrap()["address"].as_str().unwrap(), mac);
    net.disconnect("web-1", "eth0").await.unwrap();
}

/// No server answering: a timeout naming the network and the endpoint, after the configured
/// tries; no link, record or lease left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_without_a_server_times_out_and_leaves_nothing() {
    root_or_skip!("dhcp_without_a_server_times_out_and_leaves_nothing");
    let (_h, wire, _dir, nets) = host_and_wire("dh2").await;
    let server = TestServer::start(&wire, "wire0", plan(60, 30, 52)).await;
    server.set(|k| &k.silent, true);
    let net = nets
        .create(
            NetworkSpec::macvlan("dnet2", "ens192", MacvlanMode::Bridge)
                .dhcp(DhcpConfig::new(2, Duration::from_millis(100)).unwrap()),
        )
        .await
        .unwrap();
    let c = TestNs::new("dh2c").await;
    let e = net
        .connect(&c.ns, EndpointSpec::new("lonely"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("dnet2") && msg.contains("lonely") && msg.contains("no DHCP server answered"),
        "{msg}"
    );
    let discovers = server
        .log()
        .iter()
        .filter(|s| s.kind == MessageType::Discover)
        .count();
    assert_eq!(discovers, 2, "one DISCOVER per try");
    assert!(c.ip_link("eth0").is_none(), "no link left");
    assert!(net.endpoints().unwrap().is_empty(), "no record left");
    assert!(net.ipam().list().await.unwrap().is_empty());
}

/// A network restricted to a subnet refuses a server's offer outside it, saying so; nothing
/// is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_offer_outside_the_subnet_is_refused() {
    root_or_skip!("dhcp_offer_outside_the_subnet_is_refused");
    let (_h, wire, _dir, nets) = host_and_wire("dh3").await;
    let _server = TestServer::start(&wire, "wire0", plan(60, 30, 52)).await;
    let net = nets
        .create(
            NetworkSpec::macvlan("dnet3", "ens192", MacvlanMode::Bridge)
                .dhcp(quick().subnet("10.78.0.0/24".parse().unwrap())),
        )
        .await
        .unwrap();
    let c = TestNs::new("dh3c").await;
    let e = net
        .connect(&c.ns, EndpointSpec::new("c1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("10.77.0.100") && msg.contains("10.78.0.0/24") && msg.contains("dnet3"),
        "{msg}"
    );
    assert!(c.ip_link("eth0").is_none());
    assert!(net.endpoints().unwrap().is_empty());
}

/// Renewal with lease times of seconds: nothing due before T1; at T1 a unicast REQUEST
/// (RENEWING: ciaddr, no server id) extends the lease; with the server gone, past T2 a
/// broadcast REQUEST (REBINDING) goes unanswered and the lease holds; past expiry the address
/// and the default route are removed (iproute2 agrees) and the call fails naming the
/// endpoint; with the server back, INIT-REBOOT (the lost address, no server id) gets it again;
/// a NAK removes the address too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_renewal_rebinding_expiry_and_nak() {
    root_or_skip!("dhcp_renewal_rebinding_expiry_and_nak");
    let (_h, wire, _dir, nets) = host_and_wire("dh4").await;
    // Expiry well after T2, so that an unanswered rebinding (3 tries, 1.4 s) ends before it.
    let server = TestServer::start(&wire, "wire0", plan(8, 2, 3)).await;
    let net = nets
        .create(NetworkSpec::macvlan("dnet4", "ens192", MacvlanMode::Bridge).dhcp(quick()))
        .await
        .unwrap();
    let c = TestNs::new("dh4c").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("r1")).await.unwrap();
    let first = ep.dhcp.unwrap();
    assert!(
        net.renew_due_dhcp().await.unwrap().is_empty(),
        "not due before T1"
    );
    tokio::time::sleep_until(deadline(first.renew_at().unwrap())).await;
    server.clear_log();
    let done = net.renew_due_dhcp().await.unwrap();
    assert_eq!(done.len(), 1);
    let renewed = done[0].result.as_ref().unwrap().clone();
    assert!(renewed.obtained > first.obtained);
    assert_eq!(renewed.address, first.address);
    let log = server.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].kind == MessageType::Request && log[0].unicast,
        "{log:?}"
    );
    assert_eq!(log[0].ciaddr, first.address.addr());
    assert_eq!((log[0].server_id, log[0].requested), (None, None));
    assert_eq!(
        net.endpoint("r1", "eth0").unwrap().unwrap().dhcp,
        Some(renewed.clone())
    );
    // The server goes away: past T2, rebinding is broadcast and unanswered; the lease holds.
    server.set(|k| &k.silent, true);
    tokio::time::sleep_until(deadline(renewed.rebind_at().unwrap())).await;
    server.clear_log();
    let held = net.renew_dhcp("r1", "eth0").await.unwrap();
    assert_eq!(held, renewed);
    let log = server.log();
    assert!(
        !log.is_empty()
            && log.iter().all(|s| s.kind == MessageType::Request
                && !s.unicast
                && s.ciaddr == first.address.addr()),
        "{log:?}"
    );
    assert_eq!(ip_addrs(&c, "eth0"), vec!["10.77.0.100/24"]);
    // Past expiry: the address goes.
    tokio::time::sleep_until(deadline(renewed.expires().unwrap())).await;
    let e = net.renew_dhcp("r1", "eth0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.to_string().contains("r1") && e.to_string().contains("expired"),
        "{e}"
    );
    assert!(
        ip_addrs(&c, "eth0").is_empty(),
        "no address kept past expiry"
    );
    assert!(default_gateways(&c).is_empty());
    let rec = net.endpoint("r1", "eth0").unwrap().unwrap();
    assert!(rec.dhcp.is_none() && rec.addresses.is_empty());
    // The server is back: INIT-REBOOT asks for the lost address.
    server.set(|k| &k.silent, false);
    server.clear_log();
    let back = net.renew_dhcp("r1", "eth0").await.unwrap();
    assert_eq!(back.address, first.address);
    let log = server.log();
    assert_eq!(log[0].kind, MessageType::Request);
    assert_eq!(
        (log[0].ciaddr, log[0].requested, log[0].server_id),
        (Ipv4Addr::UNSPECIFIED, Some(first.address.addr()), None)
    );
    assert_eq!(ip_addrs(&c, "eth0"), vec!["10.77.0.100/24"]);
    assert_eq!(default_gateways(&c), vec!["10.77.0.1"]);
    // A NAK: the address goes at once.
    server.set(|k| &k.nak_renewals, true);
    let e = net.renew_dhcp("r1", "eth0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("NAK"), "{e}");
    assert!(ip_addrs(&c, "eth0").is_empty());
    net.disconnect("r1", "eth0").await.unwrap();
    assert!(c.ip_link("eth0").is_none());
}

fn deadline(at: std::time::SystemTime) -> tokio::time::Instant {
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::Instant::now() + left + Duration::from_millis(50)
}

/// Bad DHCP settings and uses are refused with typed errors naming the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_refusals() {
    root_or_skip!("dhcp_refusals");
    let (_h, _wire, _dir, nets) = host_and_wire("dh5").await;
    let e = nets
        .create(
            NetworkSpec::macvlan("dnet5", "ens192", MacvlanMode::Bridge)
                .dhcp(quick())
                .pool("10.0.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.to_string().contains("dnet5") && e.to_string().contains("no pool"),
        "{e}"
    );
    let net = nets
        .create(NetworkSpec::macvlan("dnet5", "ens192", MacvlanMode::Bridge).dhcp(quick()))
        .await
        .unwrap();
    let c = TestNs::new("dh5c").await;
    let e = net
        .connect(
            &c.ns,
            EndpointSpec::new("c").ip("10.77.0.5".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("DHCP"), "{e}");
    let e = net
        .prepare(EndpointSpec::new("c").ip("10.77.0.5".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = net
        .set_sandbox("nobody", "eth0", "/run/netns/x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = net.renew_dhcp("nobody", "eth0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(net.endpoints().unwrap().is_empty());
    // create_or_open sees the DHCP setting as part of the definition.
    let e = nets
        .create_or_open(
            NetworkSpec::macvlan("dnet5", "ens192", MacvlanMode::Bridge)
                .dhcp(DhcpConfig::new(1, Duration::from_millis(100)).unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("DHCP"), "{e}");
}

/// The child half of `dhcp_connect_killed_midway_is_undone_by_reconcile`: connects on the DHCP
/// network and hangs once the server's address is on the link.
#[tokio::test]
async fn dhcp_crash_child() {
    let Ok(dir) = std::env::var("UNDERLAY_DHCP_CRASH_DIR") else {
        return;
    };
    let host = underlay::Netns::open(&std::env::var("UNDERLAY_DHCP_CRASH_HOST").unwrap()).unwrap();
    let c = underlay::Netns::open(&std::env::var("UNDERLAY_DHCP_CRASH_NS").unwrap()).unwrap();
    let h = underlay::Handle::for_netns(&host).await.unwrap();
    let nets = Networks::open(&h, &dir).await.unwrap();
    let net = nets.get("dcrash").await.unwrap();
    net.connect(
        &c,
        EndpointSpec::new("victim").hang_after(underlay::network::ConnectStep::Addresses),
    )
    .await
    .unwrap();
}

/// A process killed (SIGKILL) in the middle of a DHCP connect, its lease acknowledged and its
/// address set: reconcile deletes its link and record; the server still holds the lease, and
/// the same container's next connect gets that address back (same client id and MAC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_connect_killed_midway_is_undone_by_reconcile() {
    root_or_skip!("dhcp_connect_killed_midway_is_undone_by_reconcile");
    let (h, wire, dir, nets) = host_and_wire("dh6").await;
    let server = TestServer::start(&wire, "wire0", plan(60, 30, 52)).await;
    let net = nets
        .create(NetworkSpec::macvlan("dcrash", "ens192", MacvlanMode::Bridge).dhcp(quick()))
        .await
        .unwrap();
    let c = TestNs::new("dh6c").await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "dhcp::dhcp_crash_child", "--nocapture"])
        .env("UNDERLAY_DHCP_CRASH_DIR", &dir.0)
        .env("UNDERLAY_DHCP_CRASH_HOST", &h.name)
        .env("UNDERLAY_DHCP_CRASH_NS", &c.name)
        .spawn()
        .unwrap();
    let mut midway = false;
    for _ in 0..400 {
        if ip_addrs(&c, "eth0")
            .iter()
            .any(|a| a.starts_with("10.77.0."))
        {
            midway = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(midway, "the child never got midway");
    let pending = net.endpoint("victim", "eth0").unwrap();
    assert!(
        pending.is_some(),
        "the dead connect left its pending record"
    );
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    assert!(c.ip_link("eth0").is_none(), "its link is gone");
    assert!(net.endpoints().unwrap().is_empty(), "its record is gone");
    assert!(nets.reconcile().await.unwrap().is_clean());
    let held = server.leased();
    assert_eq!(held.len(), 1, "the server still holds the lease");
    let again = net
        .connect(&c.ns, EndpointSpec::new("victim"))
        .await
        .unwrap();
    assert_eq!(again.dhcp.unwrap().address.addr(), held[0]);
    net.disconnect("victim", "eth0").await.unwrap();
    assert!(server.leased().is_empty());
}

/// Prepare on a DHCP network (Docker's handoff): the exchange on the link in the host
/// namespace, the link left down without the address, the lease recorded; `set_sandbox`
/// records where the runtime moves it, and once moved (renamed, addressed, as dockerd does) a
/// renewal goes out from it there and disconnect's release reaches the server. A connected
/// endpoint has no sandbox to record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_prepared_endpoint_renews_and_releases_from_its_sandbox() {
    root_or_skip!("dhcp_prepared_endpoint_renews_and_releases_from_its_sandbox");
    let (h, wire, _dir, nets) = host_and_wire("dh7").await;
    let server = TestServer::start(&wire, "wire0", plan(60, 30, 52)).await;
    let net = nets
        .create(NetworkSpec::macvlan("dnet7", "ens192", MacvlanMode::Bridge).dhcp(quick()))
        .await
        .unwrap();
    let ep = net.prepare(EndpointSpec::new("dk-1")).await.unwrap();
    let temp = ep.handoff.clone().unwrap();
    let lease = ep.dhcp.clone().unwrap();
    assert_eq!(lease.address.to_string(), "10.77.0.100/24");
    assert_eq!(ep.addresses[0].to_string(), "10.77.0.100/24");
    let link = h.ip_link(&temp).unwrap();
    assert!(
        !link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{link}"
    );
    assert!(
        ip_addrs(&h, &temp).iter().all(|a| a.starts_with("fe80")),
        "{:?}",
        ip_addrs(&h, &temp)
    );
    let mac = link["address"].as_str().unwrap().to_string();
    let kinds: Vec<MessageType> = server.log().iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![MessageType::Discover, MessageType::Request]);
    // The runtime: Join names the sandbox, then the link moves there, renamed and addressed.
    let sb = TestNs::new("dh7s").await;
    let e = net
        .set_sandbox("dk-1", "eth0", "run/netns/x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let ep = net
        .set_sandbox("dk-1", "eth0", format!("/run/netns/{}", sb.name))
        .await
        .unwrap();
    assert_eq!(ep.sandbox, Some(format!("/run/netns/{}", sb.name).into()));
    for args in [
        vec![
            "-n", &h.name, "link", "set", &temp, "netns", &sb.name, "name", "eth1",
        ],
        vec![
            "-n",
            &sb.name,
            "addr",
            "add",
            "10.77.0.100/24",
            "dev",
            "eth1",
        ],
        vec!["-n", &sb.name, "link", "set", "eth1", "up"],
    ] {
        assert!(
            std::process::Command::new("ip")
                .args(&args)
                .status()
                .unwrap()
                .success(),
            "{args:?}"
        );
    }
    server.clear_log();
    let renewed = net.renew_dhcp("dk-1", "eth0").await.unwrap();
    assert!(renewed.obtained > lease.obtained);
    let log = server.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].kind == MessageType::Request && log[0].unicast,
        "{log:?}"
    );
    assert_eq!(log[0].ciaddr, Ipv4Addr::new(10, 77, 0, 100));
    let chaddr: Vec<String> = log[0].chaddr.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(chaddr.join(":"), mac);
    // Disconnect: the release reaches the server (the link is the sandbox's: left there).
    server.clear_log();
    net.disconnect("dk-1", "eth0").await.unwrap();
    let log = server.log();
    assert!(
        log.iter()
            .any(|s| s.kind == MessageType::Release && s.ciaddr == Ipv4Addr::new(10, 77, 0, 100)),
        "{log:?}"
    );
    assert!(server.leased().is_empty());
    assert!(net.endpoints().unwrap().is_empty());
    // A connected endpoint has no sandbox.
    let c = TestNs::new("dh7c").await;
    net.connect(&c.ns, EndpointSpec::new("c-1")).await.unwrap();
    let e = net
        .set_sandbox("c-1", "eth0", "/run/netns/x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    net.disconnect("c-1", "eth0").await.unwrap();
}

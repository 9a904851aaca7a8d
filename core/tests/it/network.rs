//! Networks and endpoints against the running kernel (macvlan here; VLAN parents in the VM
//! tests), checked with iproute2.

use std::path::PathBuf;
use std::time::Duration;

use underlay::network::{
    ConnectStep, Driver, EndpointSpec, HostAccess, MacPolicy, NetworkSpec, Networks, ShimRoutes,
};
use underlay::{ErrorKind, IpvlanFlag, IpvlanMode, MacAddr, MacvlanMode, Netns};

use crate::common::{ip_addrs, privileged, TestNs};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// A state directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "underlay-it-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mac_net(name: &str, parent: &str) -> NetworkSpec {
    NetworkSpec::macvlan(name, parent, MacvlanMode::Bridge)
        .pool("172.22.16.0/24 gateway=172.22.16.1".parse().unwrap())
}

/// A host namespace with `ens192` (veth, up) and a state directory.
async fn host(tag: &str) -> (TestNs, TempDir, Networks) {
    let h = TestNs::with_veth(tag, "ens192", "wire0").await;
    let dir = TempDir::new(tag);
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    (h, dir, nets)
}

/// Concurrent first connects on a network made again under the same name (its endpoint
/// directory went with the first one) all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_connects_on_a_recreated_network() {
    root_or_skip!("concurrent_first_connects_on_a_recreated_network");
    let (_h, _dir, nets) = host("rc").await;
    nets.create(mac_net("rc", "ens192")).await.unwrap();
    nets.delete("rc").await.unwrap();
    let net = nets.create(mac_net("rc", "ens192")).await.unwrap();
    let mut spaces = Vec::new();
    for i in 0..8 {
        spaces.push(TestNs::new(&format!("rc{i}")).await);
    }
    let connects = spaces.iter().enumerate().map(|(i, t)| {
        let (net, ns, h) = (net.clone(), t.ns.clone(), t.handle.clone());
        tokio::spawn(async move {
            net.connect(&ns, EndpointSpec::new(format!("c{i}")).target(&h))
                .await
        })
    });
    for r in futures::future::join_all(connects).await {
        r.unwrap().unwrap();
    }
    assert_eq!(net.endpoints().unwrap().len(), 8);
    for (i, t) in spaces.iter().enumerate() {
        assert!(t.ip_link("eth0").is_some(), "c{i} has its link");
        net.disconnect_for_netns_deletion(&format!("c{i}"), "eth0")
            .await
            .unwrap();
    }
    nets.delete("rc").await.unwrap();
}

#[tokio::test]
async fn network_lifecycle_and_persistence() {
    root_or_skip!("network_lifecycle_and_persistence");
    let (h, dir, nets) = host("nl").await;
    let spec = NetworkSpec::from_docker("mac_net1", "macvlan", &[("parent", "ens192"), ("macvlan_mode", "bridge")])
        .unwrap()
        .pool("172.22.16.0/24 gateway=172.22.16.1 range=172.22.16.128/25 reserve=exclude_host=172.22.16.21".parse().unwrap());
    let net = nets.create(spec.clone()).await.unwrap();
    assert_eq!(net.driver(), Driver::Macvlan(MacvlanMode::Bridge));
    assert_eq!(net.lower(), "ens192");
    assert_eq!(
        nets.create(spec).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    // Another process (a fresh Networks on the same directory) sees it.
    let again = Networks::open(&h.handle, &dir.0).await.unwrap();
    let got = again.get("mac_net1").await.unwrap();
    assert_eq!(got.pools(), net.pools());
    assert_eq!(again.list().await.unwrap().len(), 1);
    // Overlapping subnet: Docker's "Pool overlaps".
    let e = nets.create(mac_net("other", "ens192")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overlap, "{e}");
    assert_eq!(
        nets.get("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    nets.delete("mac_net1").await.unwrap();
    assert_eq!(
        nets.get("mac_net1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(h.ip_link("ens192").is_some(), "the user's parent stays");
    // The subnet is free again.
    nets.create(mac_net("other", "ens192")).await.unwrap();
}

#[tokio::test]
async fn preflight_checks() {
    root_or_skip!("preflight_checks");
    let (h, _dir, nets) = host("pf").await;
    let e = nets.create(mac_net("a", "ens999")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("ens999"), "{e}");
    h.handle.set_link("ens192").down().execute().await.unwrap();
    let e = nets.create(mac_net("a", "ens192")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains("is down") && e.to_string().contains("bring_parent_up"),
        "{e}"
    );
    nets.create(mac_net("a", "ens192").bring_parent_up())
        .await
        .unwrap();
    assert!(h.handle.link("ens192").await.unwrap().up);
    let e = nets
        .create(
            NetworkSpec::macvlan("b", "ens192", MacvlanMode::Bridge)
                .pool("10.9.0.0/24".parse().unwrap())
                .mtu(9000),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("above parent"), "{e}");
    // macvlan and ipvlan cannot share a parent; passthru needs its parent alone.
    let e = nets
        .create(
            NetworkSpec::ipvlan("c", "ens192", IpvlanMode::L2, IpvlanFlag::Bridge)
                .pool("10.10.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("macvlan and ipvlan"), "{e}");
    let e = nets
        .create(
            NetworkSpec::macvlan("d", "ens192", MacvlanMode::Passthru)
                .pool("10.11.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // A macvlan the user made on `wire0` rules out an ipvlan network there (and vice versa).
    underlay::Macvlan::create(&h.handle, "users-mv", "wire0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap();
    let e = nets
        .create(
            NetworkSpec::ipvlan("e", "wire0", IpvlanMode::L2, IpvlanFlag::Bridge)
                .pool("10.14.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("users-mv"), "{e}");
    h.handle.delete_link("users-mv").await.unwrap();
    // Nothing half-made by the refusals.
    let names: Vec<String> = nets
        .list()
        .await
        .unwrap()
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    assert_eq!(names, ["a"]);
    // Two ipvlan networks with different modes on one parent (checked from the records, so
    // this kernel's lack of ipvlan does not matter).
    h.handle.set_link("wire0").up().execute().await.unwrap();
    let e = nets
        .create(
            NetworkSpec::ipvlan("x", "wire0", IpvlanMode::L2, IpvlanFlag::Bridge)
                .pool("10.12.0.0/24".parse().unwrap()),
        )
        .await;
    if e.is_ok() {
        let e = nets
            .create(
                NetworkSpec::ipvlan("y", "wire0", IpvlanMode::L3, IpvlanFlag::Bridge)
                    .pool("10.13.0.0/24".parse().unwrap()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("belongs to the parent"), "{e}");
    }
}

/// A network create that fails after bringing its parent up (`bring_parent_up`) leaves the
/// parent down as it found it.
#[tokio::test]
async fn failed_create_leaves_a_down_parent_down() {
    root_or_skip!("failed_create_leaves_a_down_parent_down");
    let (h, _dir, nets) = host("pd").await;
    let is_up = |name: &str| {
        let j = h.ip_link(name).unwrap();
        j["flags"].as_array().unwrap().iter().any(|f| f == "UP")
    };
    h.handle.set_link("ens192").down().execute().await.unwrap();
    let e = nets
        .create(mac_net("a", "ens192").bring_parent_up().mtu(9000))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(!is_up("ens192"), "the parent is down again");
    assert!(!h.handle.link("ens192").await.unwrap().up);
    // A VLAN parent made on demand on a down NIC: where the kernel has no 8021q (this CI
    // host) the VLAN cannot be made, and the NIC is left down.
    match nets
        .create(mac_net("v", "ens192.10").bring_parent_up())
        .await
    {
        Ok(_) => nets.delete("v").await.unwrap(),
        Err(e) => {
            assert!(!is_up("ens192"), "{e}: the NIC is down again");
            assert!(h.ip_link("ens192.10").is_none(), "{e}");
        }
    }
    assert!(nets.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn connect_and_disconnect() {
    root_or_skip!("connect_and_disconnect");
    let (h, _dir, nets) = host("cd").await;
    let net = nets
        .create(mac_net("mac_net1", "ens192").mtu(1400))
        .await
        .unwrap();
    let c1 = TestNs::new("c1").await;
    let spec = EndpointSpec::new("bbox_1")
        .ip("172.22.16.10".parse().unwrap())
        .mac(MacPolicy::FromContainerId);
    let ep = net.connect(&c1.ns, spec.clone()).await.unwrap();
    assert_eq!(ep.ifname, "eth0");
    assert_eq!(ep.addresses[0].to_string(), "172.22.16.10/24");
    // Oracle: the link, its MAC, MTU, address and default route inside the container.
    let j = c1.ip_link("eth0").unwrap();
    assert_eq!(j["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(j["linkinfo"]["info_data"]["mode"], "bridge");
    assert_eq!(j["mtu"], 1400);
    assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let derived = MacAddr::derived_from(b"bbox_1/eth0");
    assert_eq!(j["address"], derived.to_string().as_str());
    assert_eq!(ep.mac, Some(derived));
    assert!(ip_addrs(&c1, "eth0").contains(&"172.22.16.10/24".to_string()));
    let routes = c1.ip(&["-4", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "172.22.16.1");
    assert_eq!(routes[0]["dev"], "eth0");
    // Twice: refused, naming the endpoint.
    let e = net.connect(&c1.ns, spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("bbox_1"), "{e}");
    // The same address for another container: refused by the IPAM, nothing left.
    let c2 = TestNs::new("c2").await;
    let e = net
        .connect(
            &c2.ns,
            EndpointSpec::new("bbox_2").ip("172.22.16.10".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(c2.ip_link("eth0").is_none());
    // Any address: next-fit, never .10 again.
    let ep2 = net
        .connect(&c2.ns, EndpointSpec::new("bbox_2"))
        .await
        .unwrap();
    assert_ne!(ep2.addresses[0], ep.addresses[0]);
    assert_eq!(net.endpoints().unwrap().len(), 2);
    assert_eq!(net.ipam().list().await.unwrap().len(), 2);
    // Data path: the two containers reach each other over the bridge-mode macvlans.
    assert!(c1
        .ns
        .ping(ep2.addresses[0].addr(), Duration::from_secs(2))
        .unwrap()
        .is_some());
    // Disconnect: link, lease and record go; twice is fine.
    net.disconnect("bbox_1", "eth0").await.unwrap();
    net.disconnect("bbox_1", "eth0").await.unwrap();
    assert!(c1.ip_link("eth0").is_none());
    assert_eq!(net.ipam().list().await.unwrap().len(), 1);
    assert!(net.endpoint("bbox_1", "eth0").unwrap().is_none());
    // The network refuses deletion while an endpoint remains.
    assert_eq!(
        nets.delete("mac_net1").await.unwrap_err().kind(),
        ErrorKind::Busy
    );
    net.disconnect("bbox_2", "eth0").await.unwrap();
    nets.delete("mac_net1").await.unwrap();
    let _ = h;
}

#[tokio::test]
async fn failure_at_each_connect_step_leaves_nothing() {
    root_or_skip!("failure_at_each_connect_step_leaves_nothing");
    let (h, _dir, nets) = host("inj").await;
    let net = nets.create(mac_net("inj", "ens192")).await.unwrap();
    net.enable_host_access(HostAccess::new()).await.unwrap();
    let c = TestNs::new("injc").await;
    for step in [
        ConnectStep::Allocate,
        ConnectStep::CreateLink,
        ConnectStep::Addresses,
        ConnectStep::Routes,
        ConnectStep::Announce,
        ConnectStep::Record,
        ConnectStep::HostRoute,
    ] {
        let e = net
            .connect(&c.ns, EndpointSpec::new("victim").fail_after(step))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("injected"), "{step:?}: {e}");
        assert!(c.ip_link("eth0").is_none(), "{step:?}: link left");
        assert!(
            net.ipam().list().await.unwrap().is_empty(),
            "{step:?}: lease left"
        );
        assert!(net.endpoints().unwrap().is_empty(), "{step:?}: record left");
        let host_routes = h.ip(&["-4", "route", "show", "dev", "inj-h"]);
        assert!(
            host_routes.as_array().unwrap().is_empty(),
            "{step:?}: host route left: {host_routes}"
        );
    }
    // And then it works.
    net.connect(&c.ns, EndpointSpec::new("victim"))
        .await
        .unwrap();
}

/// `prepare` (a runtime moves the link itself): the link waits in the host namespace, down,
/// unaddressed, in underlay's group, under its temporary name (iproute2 as oracle), with the
/// lease, record and host route of a connect; a failure after any step leaves nothing; the
/// disconnect deletes the link while it is there and accepts it gone once its namespace died.
#[tokio::test]
async fn prepare_for_a_runtime_that_moves_the_link() {
    root_or_skip!("prepare_for_a_runtime_that_moves_the_link");
    let (h, _dir, nets) = host("prep").await;
    let net = nets.create(mac_net("prep", "ens192")).await.unwrap();
    net.enable_host_access(HostAccess::new()).await.unwrap();
    for step in [
        ConnectStep::Allocate,
        ConnectStep::CreateLink,
        ConnectStep::Announce,
        ConnectStep::Record,
        ConnectStep::HostRoute,
    ] {
        let e = net
            .prepare(EndpointSpec::new("victim").fail_after(step))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("injected"), "{step:?}: {e}");
        let names: Vec<String> = h
            .ip(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("ulh")),
            "{step:?}: link left: {names:?}"
        );
        assert!(
            net.ipam().list().await.unwrap().is_empty(),
            "{step:?}: lease left"
        );
        assert!(net.endpoints().unwrap().is_empty(), "{step:?}: record left");
    }
    let ep = net
        .prepare(EndpointSpec::new("dk1").ip("172.22.16.10".parse().unwrap()))
        .await
        .unwrap();
    let tmp = ep.handoff.clone().unwrap();
    assert!(tmp.starts_with("ulh") && tmp.len() <= 15, "{tmp}");
    let l = &h.ip(&["link", "show", "dev", &tmp])[0];
    assert_eq!(l["linkinfo"]["info_kind"], "macvlan", "{l}");
    assert_eq!(l["link"], "ens192", "{l}");
    assert!(
        !l["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{l}"
    );
    assert_eq!(l["address"].as_str().unwrap(), ep.mac.unwrap().to_string());
    let v4 = h.ip(&["-4", "addr", "show", "dev", &tmp]);
    assert!(
        v4.as_array()
            .unwrap()
            .iter()
            .all(|l| l["addr_info"].as_array().is_none_or(|a| a.is_empty())),
        "{v4}"
    );
    let route = h.ip(&["-4", "route", "show", "172.22.16.10"]);
    assert_eq!(route[0]["dev"], "prep-h", "{route}");
    // Prepared again: the one there stays.
    let again = net.prepare(EndpointSpec::new("dk1")).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    // Still in the host: the disconnect deletes it.
    net.disconnect("dk1", "eth0").await.unwrap();
    assert!(h
        .ip(&["link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["ifname"] != tmp.as_str()));
    assert!(net.ipam().list().await.unwrap().is_empty());
    // Moved into a container whose namespace then dies: the disconnect takes it as gone.
    let ep = net.prepare(EndpointSpec::new("dk2")).await.unwrap();
    let c = TestNs::new("prepc").await;
    h.handle
        .set_link(ep.handoff.as_deref().unwrap())
        .netns(&c.ns)
        .name("eth0")
        .execute()
        .await
        .unwrap();
    assert!(nets.reconcile().await.unwrap().gone_endpoints.is_empty());
    drop(c);
    net.disconnect("dk2", "eth0").await.unwrap();
    assert!(net.endpoints().unwrap().is_empty());
    assert!(h
        .ip(&["-4", "route", "show", "dev", "prep-h"])
        .as_array()
        .unwrap()
        .is_empty());
}

/// Container ids and interface names that no endpoint can have are refused up front (they
/// used to panic while naming the record file); long and non-ASCII ids work.
#[tokio::test]
async fn endpoint_keys_are_checked_and_long_ids_work() {
    root_or_skip!("endpoint_keys_are_checked_and_long_ids_work");
    let (_h, _dir, nets) = host("ek").await;
    let net = nets.create(mac_net("ek", "ens192")).await.unwrap();
    let c = TestNs::new("ekc").await;
    let long_if = "i".repeat(201);
    let too_long = "x".repeat(257);
    for (id, ifname, says) in [
        ("c", long_if.as_str(), "15"),
        ("c", "", "empty"),
        ("", "eth0", "empty"),
        ("a\nb", "eth0", "control"),
        ("a/b", "eth0", "`/`"),
        ("a\0b", "eth0", "control"),
        (too_long.as_str(), "eth0", "257 bytes"),
    ] {
        let e = net.endpoint(id, ifname).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{id:?}/{ifname:?}: {e}"
        );
        assert!(e.to_string().contains(says), "{e}");
        let spec = EndpointSpec::new(id).ifname(ifname).target(&c.handle);
        let e = net.connect(&c.ns, spec).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{id:?}/{ifname:?}: {e}"
        );
        let e = net.disconnect(id, ifname).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{id:?}/{ifname:?}: {e}"
        );
    }
    assert!(net.endpoints().unwrap().is_empty());
    assert!(net.ipam().list().await.unwrap().is_empty());
    // More bytes than characters, up to the limit, and ASCII past the 200-byte file name.
    let ids = [
        "€".repeat(67),
        "€".repeat(85),
        "𝄞".repeat(64),
        "a".repeat(256),
    ];
    for id in &ids {
        let ep = net
            .connect(&c.ns, EndpointSpec::new(id.clone()).target(&c.handle))
            .await
            .unwrap();
        assert_eq!(&ep.container_id, id);
        let j = c.ip_link("eth0").expect("the endpoint's link (oracle)");
        assert_eq!(j["linkinfo"]["info_kind"], "macvlan");
        assert!(ip_addrs(&c, "eth0").contains(&ep.addresses[0].to_string()));
        let again = net.endpoint(id, "eth0").unwrap().expect("its record");
        assert_eq!(&again.container_id, id);
        assert_eq!(net.endpoints().unwrap().len(), 1);
        net.disconnect(id, "eth0").await.unwrap();
        assert!(c.ip_link("eth0").is_none());
        assert!(net.endpoint(id, "eth0").unwrap().is_none());
    }
    // An interface name starting with `.` is a valid name; its record is not a hidden file.
    let ep = net
        .connect(
            &c.ns,
            EndpointSpec::new("dot").ifname(".e0").target(&c.handle),
        )
        .await
        .unwrap();
    assert!(c.ip_link(".e0").is_some());
    let listed = net.endpoints().unwrap();
    assert_eq!(listed.len(), 1, "the record is listed");
    assert_eq!(
        (&listed[0].container_id, &listed[0].ifname),
        (&ep.container_id, &ep.ifname)
    );
    assert_eq!(
        nets.delete("ek").await.unwrap_err().kind(),
        ErrorKind::Busy,
        "the endpoint is seen"
    );
    net.disconnect("dot", ".e0").await.unwrap();
    nets.delete("ek").await.unwrap();
}

/// A connect whose link another process deletes midway fails saying so (not with the step
/// that then failed, such as an unreachable gateway), and leaves nothing behind.
#[tokio::test]
async fn connect_says_when_its_link_was_deleted_midway() {
    root_or_skip!("connect_says_when_its_link_was_deleted_midway");
    let (_h, _dir, nets) = host("dl").await;
    let net = nets.create(mac_net("dl", "ens192")).await.unwrap();
    let c = TestNs::new("dlc").await;
    for step in [ConnectStep::CreateLink, ConnectStep::Addresses] {
        let spec = EndpointSpec::new("victim")
            .target(&c.handle)
            .delete_link_after(step);
        let e = net.connect(&c.ns, spec).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{step:?}: {e}");
        let m = e.to_string();
        assert!(
            m.contains("`eth0`") && m.contains("deleted by another process during connect"),
            "{step:?}: {m}"
        );
        assert!(m.contains(&c.name), "names the namespace: {m}");
        assert!(c.ip_link("eth0").is_none(), "{step:?}");
        assert!(
            net.ipam().list().await.unwrap().is_empty(),
            "{step:?}: lease left"
        );
        assert!(net.endpoints().unwrap().is_empty(), "{step:?}: record left");
    }
    net.connect(&c.ns, EndpointSpec::new("victim").target(&c.handle))
        .await
        .unwrap();
    assert!(c.ip_link("eth0").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_never_share_an_address() {
    root_or_skip!("concurrent_connects_never_share_an_address");
    let (_h, _dir, nets) = host("cc").await;
    let net = nets.create(mac_net("cc", "ens192")).await.unwrap();
    let mut spaces = Vec::new();
    for i in 0..40 {
        spaces.push(TestNs::new(&format!("cc{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, t) in spaces.iter().enumerate() {
        let (net, ns, h) = (net.clone(), t.ns.clone(), t.handle.clone());
        tasks.push(tokio::spawn(async move {
            net.connect(&ns, EndpointSpec::new(format!("c{i}")).target(&h))
                .await
        }));
    }
    let mut addrs = Vec::new();
    for t in tasks {
        addrs.push(t.await.unwrap().unwrap().addresses[0]);
    }
    let mut uniq = addrs.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 40, "duplicates in {addrs:?}");
    for (i, t) in spaces.iter().enumerate() {
        assert!(
            ip_addrs(t, "eth0").contains(&addrs[i].to_string()),
            "oracle disagrees for c{i}"
        );
    }
}

/// Two connects of one container at once (an orchestrator's retry): one wins, the other is
/// refused without touching what the winner made: one link, one lease, one final record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_connects_of_one_container_leave_one_endpoint() {
    root_or_skip!("racing_connects_of_one_container_leave_one_endpoint");
    let (_h, _dir, nets) = host("race").await;
    let net = nets.create(mac_net("race", "ens192")).await.unwrap();
    for round in 0..10 {
        let (a, b) = (TestNs::new("racea").await, TestNs::new("raceb").await);
        let id = format!("dup{round}");
        let go = |t: &TestNs| {
            let (net, ns, h, id) = (net.clone(), t.ns.clone(), t.handle.clone(), id.clone());
            tokio::spawn(async move { net.connect(&ns, EndpointSpec::new(id).target(&h)).await })
        };
        let (ra, rb) = (go(&a), go(&b));
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        let (won, lost, winner, loser) = match (ra, rb) {
            (Ok(ep), Err(e)) => (ep, e, &a, &b),
            (Err(e), Ok(ep)) => (ep, e, &b, &a),
            (ra, rb) => panic!("round {round}: want one success and one refusal: {ra:?} {rb:?}"),
        };
        assert_eq!(
            lost.kind(),
            ErrorKind::AlreadyExists,
            "round {round}: {lost}"
        );
        assert!(lost.to_string().contains(&id), "{lost}");
        assert!(
            loser.ip_link("eth0").is_none(),
            "round {round}: the loser left a link"
        );
        assert!(ip_addrs(winner, "eth0").contains(&won.addresses[0].to_string()));
        let leases = net.ipam().list().await.unwrap();
        assert_eq!(leases.len(), 1, "round {round}: {leases:?}");
        assert_eq!(leases[0].addresses[0].address, won.addresses[0]);
        let record = net
            .endpoint(&id, "eth0")
            .unwrap()
            .expect("the winner's record");
        assert_eq!(
            (&record.netns, record.mac, &record.addresses),
            (&won.netns, won.mac, &won.addresses),
            "round {round}: the record is the winner's"
        );
        net.disconnect(&id, "eth0").await.unwrap();
    }
}

#[tokio::test]
async fn host_shim_reaches_the_containers() {
    root_or_skip!("host_shim_reaches_the_containers");
    // S3: the host's own address is on the parent, the containers are in its subnet.
    let (h, _dir, nets) = host("sh").await;
    h.handle
        .add_address("ens192", "192.168.136.21/24".parse().unwrap())
        .await
        .unwrap();
    let net = nets
        .create(NetworkSpec::macvlan("lan", "ens192", MacvlanMode::Bridge).pool(
            "192.168.136.0/24 gateway=192.168.136.1 range=192.168.136.240/28 reserve=exclude_host=192.168.136.21".parse().unwrap(),
        ))
        .await
        .unwrap();
    let c = TestNs::new("shc").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("web")).await.unwrap();
    let ip = ep.addresses[0].addr();
    // Without the shim the host cannot reach its own macvlan container.
    assert!(
        h.ns.ping(ip, Duration::from_millis(500)).unwrap().is_none(),
        "a macvlan child reached its parent"
    );
    let shim = net
        .enable_host_access(HostAccess::new().name("macvlan0-host"))
        .await
        .unwrap();
    assert_eq!(shim, "macvlan0-host");
    let j = h.ip_link("macvlan0-host").unwrap();
    assert_eq!(j["linkinfo"]["info_data"]["mode"], "bridge");
    let has_route = |dst: &str| {
        h.ip(&["-4", "route", "show", "dev", "macvlan0-host"])
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == dst)
    };
    assert!(has_route(&ip.to_string()), "route to the existing endpoint");
    assert!(
        h.ns.ping(ip, Duration::from_secs(2)).unwrap().is_some(),
        "host reaches the container through the shim"
    );
    // Routes follow endpoints.
    let c2 = TestNs::new("shc2").await;
    let ep2 = net.connect(&c2.ns, EndpointSpec::new("db")).await.unwrap();
    let ip2 = ep2.addresses[0].addr();
    assert!(has_route(&ip2.to_string()));
    assert!(h.ns.ping(ip2, Duration::from_secs(2)).unwrap().is_some());
    net.disconnect("db", "eth0").await.unwrap();
    assert!(!has_route(&ip2.to_string()));
    // Idempotent enable; disable removes the link and its routes.
    assert_eq!(
        net.enable_host_access(HostAccess::new()).await.unwrap(),
        "macvlan0-host"
    );
    net.disable_host_access().await.unwrap();
    assert!(h.ip_link("macvlan0-host").is_none());
    // Ranges mode with an address from the pool: the --ip-range recipe.
    let shim = net
        .enable_host_access(HostAccess::new().with_address().routes(ShimRoutes::Ranges))
        .await
        .unwrap();
    assert!(h
        .ip(&["-4", "route", "show", "dev", &shim])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["dst"] == "192.168.136.240/28"));
    let shim_addr: Vec<String> = ip_addrs(&h, &shim)
        .into_iter()
        .filter(|a| a.starts_with("192.168.136."))
        .collect();
    assert_eq!(shim_addr.len(), 1, "{shim_addr:?}");
    assert!(
        shim_addr[0].ends_with("/32"),
        "a host address, no second subnet route: {shim_addr:?}"
    );
    assert!(h.ns.ping(ip, Duration::from_secs(2)).unwrap().is_some());
    net.disconnect("web", "eth0").await.unwrap();
    // Deleting the network removes the shim and frees its address.
    nets.delete("lan").await.unwrap();
    assert!(h.ip_link(&shim).is_none());
}

#[tokio::test]
async fn reconcile_repairs_and_is_idempotent() {
    root_or_skip!("reconcile_repairs_and_is_idempotent");
    let (h, _dir, nets) = host("rc").await;
    let net = nets.create(mac_net("rc", "ens192")).await.unwrap();
    let shim = net.enable_host_access(HostAccess::new()).await.unwrap();
    // A container that will vanish, and one that stays.
    let gone_name = format!("ult-rcgone-{}", std::process::id());
    let gone = Netns::create(&gone_name).unwrap();
    let ep_gone = net.connect(&gone, EndpointSpec::new("gone")).await.unwrap();
    drop(gone);
    Netns::delete(&gone_name).unwrap();
    let stays = TestNs::new("rcstay").await;
    net.connect(&stays.ns, EndpointSpec::new("stays"))
        .await
        .unwrap();
    // The shim disappears (a reboot, an admin), and a marked link nobody owns appears.
    h.handle.delete_link(shim.as_str()).await.unwrap();
    underlay::Macvlan::create(&h.handle, "stray0", "ens192", MacvlanMode::Bridge)
        .alias("underlay:shim net=deleted-network")
        .execute()
        .await
        .unwrap();
    underlay::Macvlan::create(&h.handle, "users0", "ens192", MacvlanMode::Bridge)
        .alias("mine")
        .execute()
        .await
        .unwrap();
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    assert_eq!(report.gone_endpoints[0].container_id, "gone");
    assert_eq!(report.gone_endpoints[0].addresses, ep_gone.addresses);
    assert_eq!(report.recreated_shims, vec![shim.clone()]);
    assert_eq!(report.removed_links, vec!["stray0".to_string()]);
    assert!(h.ip_link(&shim).is_some() && h.ip_link("stray0").is_none());
    assert!(h.ip_link("users0").is_some(), "the user's link stays");
    // The shim's routes are back, for the endpoint that stays only.
    let routes = h.ip(&["-4", "route", "show", "dev", &shim]);
    assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
    assert_eq!(net.ipam().list().await.unwrap().len(), 1);
    // Nothing to do the second time.
    let again = nets.reconcile().await.unwrap();
    assert!(again.is_clean(), "{again:?}");
}

/// After a reboot: a lease from the earlier boot whose endpoint record was lost (records are
/// not fsynced) is released by reconcile; this boot's leases stay.
#[tokio::test]
async fn reconcile_releases_leases_of_an_earlier_boot() {
    root_or_skip!("reconcile_releases_leases_of_an_earlier_boot");
    let (_h, _dir, nets) = host("rb").await;
    let net = nets.create(mac_net("rb", "ens192")).await.unwrap();
    let stays = TestNs::new("rbstay").await;
    net.connect(&stays.ns, EndpointSpec::new("stays"))
        .await
        .unwrap();
    // A lease taken in "another boot", with no endpoint record, and the host shim's address
    // from that boot (the shim is made again: its address stays).
    let before = underlay::ipam::BootId::new("0b0e5a3c-0000-4000-8000-000000000001").unwrap();
    net.ipam().set_boot_id(Some(before));
    net.enable_host_access(HostAccess::new().with_address())
        .await
        .unwrap();
    let ghost = net
        .ipam()
        .allocate(
            &underlay::ipam::Owner::new("ghost", "eth0").unwrap(),
            &underlay::ipam::Request::any(),
        )
        .await
        .unwrap();
    // A container restarted under its id after the reboot connects with its lease of then:
    // in use, so it stays.
    let restarted = underlay::ipam::Owner::new("restarted", "eth0").unwrap();
    let old = net
        .ipam()
        .allocate(&restarted, &underlay::ipam::Request::any())
        .await
        .unwrap();
    let now = nets.get("rb").await.unwrap();
    let back = TestNs::new("rbback").await;
    let ep = now
        .connect(&back.ns, EndpointSpec::new("restarted"))
        .await
        .unwrap();
    assert_eq!(ep.addresses, vec![old.addresses[0].address]);
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    let gone = &report.gone_endpoints[0];
    assert_eq!(
        (gone.container_id.as_str(), gone.ifname.as_str()),
        ("ghost", "eth0")
    );
    assert_eq!(gone.addresses, vec![ghost.addresses[0].address]);
    let left = nets.get("rb").await.unwrap().ipam().list().await.unwrap();
    assert_eq!(
        left.iter()
            .map(|l| l.owner.container_id())
            .collect::<Vec<_>>(),
        vec!["restarted", "stays", "underlay-host-access:rb"]
    );
    assert!(nets.reconcile().await.unwrap().is_clean());
}

/// The child half of `reconcile_after_a_crash_midway`: connects and hangs after making the link.
#[tokio::test]
async fn crash_child() {
    let Ok(dir) = std::env::var("UNDERLAY_CRASH_DIR") else {
        return;
    };
    let host = Netns::open(&std::env::var("UNDERLAY_CRASH_HOST").unwrap()).unwrap();
    let c = Netns::open(&std::env::var("UNDERLAY_CRASH_NS").unwrap()).unwrap();
    let h = underlay::Handle::for_netns(&host).await.unwrap();
    let nets = Networks::open(&h, &dir).await.unwrap();
    let net = nets.get("crash").await.unwrap();
    let step = match std::env::var("UNDERLAY_CRASH_STEP").as_deref() {
        Ok("allocate") => ConnectStep::Allocate,
        _ => ConnectStep::Addresses,
    };
    net.connect(&c, EndpointSpec::new("victim").hang_after(step))
        .await
        .unwrap();
}

#[tokio::test]
async fn reconcile_after_a_crash_midway() {
    root_or_skip!("reconcile_after_a_crash_midway");
    let (h, dir, nets) = host("cr").await;
    let net = nets.create(mac_net("crash", "ens192")).await.unwrap();
    let c = TestNs::new("crc").await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "network::crash_child", "--nocapture"])
        .env("UNDERLAY_CRASH_DIR", &dir.0)
        .env("UNDERLAY_CRASH_HOST", &h.name)
        .env("UNDERLAY_CRASH_NS", &c.name)
        .env("UNDERLAY_CRASH_STEP", "addresses")
        .spawn()
        .unwrap();
    // Wait until the child is midway: link made, address set.
    let mut midway = false;
    for _ in 0..200 {
        if ip_addrs(&c, "eth0")
            .iter()
            .any(|a| a.starts_with("172.22.16."))
        {
            midway = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(midway, "the child never got midway");
    assert_eq!(
        net.ipam().list().await.unwrap().len(),
        1,
        "the dead connect holds a lease"
    );
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    assert_eq!(
        report.gone_endpoints[0].addresses.len(),
        1,
        "the released address is reported: {report:?}"
    );
    assert!(c.ip_link("eth0").is_none(), "its link is gone");
    assert!(
        net.ipam().list().await.unwrap().is_empty(),
        "its lease is released"
    );
    assert!(net.endpoints().unwrap().is_empty());
    assert!(nets.reconcile().await.unwrap().is_clean());
}

#[tokio::test]
async fn internal_network_and_export() {
    root_or_skip!("internal_network_and_export");
    let (h, _dir, nets) = host("int").await;
    let net = nets
        .create(
            NetworkSpec::internal("iso", Driver::Macvlan(MacvlanMode::Bridge))
                .pool("10.20.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    let lower = net.lower().to_string();
    let j = h.ip_link(&lower).expect("internal parent exists");
    assert!(
        j["ifalias"]
            .as_str()
            .unwrap()
            .starts_with("underlay:internal"),
        "{j}"
    );
    let a = TestNs::new("inta").await;
    let b = TestNs::new("intb").await;
    let ea = net.connect(&a.ns, EndpointSpec::new("a")).await.unwrap();
    let eb = net.connect(&b.ns, EndpointSpec::new("b")).await.unwrap();
    assert!(a
        .ns
        .ping(eb.addresses[0].addr(), Duration::from_secs(2))
        .unwrap()
        .is_some());
    let _ = ea;
    assert_eq!(
        net.export(underlay::network::ExportFormat::Ifupdown)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    net.disconnect("a", "eth0").await.unwrap();
    net.disconnect("b", "eth0").await.unwrap();
    nets.delete("iso").await.unwrap();
    assert!(
        h.ip_link(&lower).is_none(),
        "the internal parent goes with the network"
    );
}

#[tokio::test]
async fn disconnect_for_netns_deletion_leaves_the_link_to_its_namespace() {
    root_or_skip!("disconnect_for_netns_deletion_leaves_the_link_to_its_namespace");
    let (_h, _dir, nets) = host("dnd").await;
    let net = nets.create(mac_net("dnd", "ens192")).await.unwrap();
    let c = TestNs::new("dndc").await;
    net.connect(&c.ns, EndpointSpec::new("x")).await.unwrap();
    let j = c.ip_link("eth0").unwrap();
    assert_eq!(
        j["group"],
        underlay::network::ENDPOINT_GROUP.to_string().as_str(),
        "marked by its group: {j}"
    );
    net.disconnect_for_netns_deletion("x", "eth0")
        .await
        .unwrap();
    assert!(
        c.ip_link("eth0").is_some(),
        "the link stays for its namespace to take"
    );
    assert!(net.ipam().list().await.unwrap().is_empty() && net.endpoints().unwrap().is_empty());
}

#[tokio::test]
async fn reconcile_never_deletes_a_link_underlay_did_not_make() {
    root_or_skip!("reconcile_never_deletes_a_link_underlay_did_not_make");
    let (h, dir, nets) = host("crn").await;
    let net = nets.create(mac_net("crash", "ens192")).await.unwrap();
    // The container already has an `eth0` of its own; the connect dies right after allocating.
    let c = TestNs::with_veth("crnc", "eth0", "peer0").await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "network::crash_child", "--nocapture"])
        .env("UNDERLAY_CRASH_DIR", &dir.0)
        .env("UNDERLAY_CRASH_HOST", &h.name)
        .env("UNDERLAY_CRASH_NS", &c.name)
        .env("UNDERLAY_CRASH_STEP", "allocate")
        .spawn()
        .unwrap();
    let mut allocated = false;
    for _ in 0..200 {
        if !net.ipam().list().await.unwrap().is_empty() {
            allocated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(allocated, "the child never allocated");
    let pending = net.endpoints().unwrap();
    assert_eq!(pending.len(), 1, "the pending record is there");
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    assert_eq!(
        c.ip_link("eth0")
            .map(|j| j["linkinfo"]["info_kind"].clone()),
        Some("veth".into()),
        "the container's own eth0 stays"
    );
    assert!(net.ipam().list().await.unwrap().is_empty());
}

/// A host namespace whose parent `ens192` is one end of a veth, and a neighbour on the wire
/// holding the other end, `wire0`, with IPv6 address `v6` (usable at once: no DAD).
async fn host_and_wire(tag: &str, v6: &str) -> (TestNs, TestNs) {
    let h = TestNs::new(tag).await;
    let wire = TestNs::new(&format!("{tag}w")).await;
    underlay::Veth::create(&h.handle, "ens192", "wire0")
        .peer_netns(&wire.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    let nodad = underlay::AddressOptions {
        nodad: true,
        noprefixroute: false,
    };
    wire.handle
        .add_address_with("wire0", v6.parse().unwrap(), nodad)
        .await
        .unwrap();
    (h, wire)
}

/// Announcements: by default they leave through the parent, so a neighbour beyond it learns
/// the address and MAC at once (IPv4 and IPv6) while siblings on the parent are not told;
/// `Announce::Segment` tells the siblings too, and so does `Announce::Kernel` (sent by the
/// kernel as the link comes up); `announce(false)` sends nothing.
#[tokio::test]
async fn connect_announces_to_the_wire_or_the_segment() {
    root_or_skip!("connect_announces_to_the_wire_or_the_segment");
    let (h, wire) = host_and_wire("ann", "fd22::250/64").await;
    wire.handle
        .add_address("wire0", "172.22.16.250/24".parse().unwrap())
        .await
        .unwrap();
    wire.ns
        .set_sysctl("net/ipv4/conf/wire0/arp_accept", "1")
        .unwrap();
    // A router (forwarding) takes unsolicited NAs for unknown addresses (RFC 9131).
    for (key, value) in [
        ("net/ipv6/conf/wire0/forwarding", "1"),
        ("net/ipv6/conf/wire0/accept_untracked_na", "1"),
    ] {
        wire.ns.set_sysctl(key, value).unwrap();
    }
    let dir = TempDir::new("ann");
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let net = nets
        .create(mac_net("ann", "ens192").pool("fd22::/64 gateway=fd22::1".parse().unwrap()))
        .await
        .unwrap();
    // A sibling on the same parent that would learn from unsolicited ARP.
    let sibling = TestNs::new("anns").await;
    net.connect(&sibling.ns, EndpointSpec::new("sibling").announce(false))
        .await
        .unwrap();
    sibling
        .ns
        .set_sysctl("net/ipv4/conf/eth0/arp_accept", "1")
        .unwrap();
    let knows = |who: &TestNs, dev: &str, ip: std::net::IpAddr, mac: Option<MacAddr>| {
        who.ip(&["neigh", "show", "dev", dev])
            .as_array()
            .unwrap()
            .iter()
            .any(|n| {
                n["dst"] == ip.to_string().as_str()
                    && mac.is_none_or(|m| n["lladdr"] == m.to_string().as_str())
            })
    };
    let eventually = |f: &dyn Fn() -> bool| {
        (0..50).any(|_| {
            let ok = f();
            if !ok {
                std::thread::sleep(Duration::from_millis(20));
            }
            ok
        })
    };
    let (a, b, c) = (
        TestNs::new("anna").await,
        TestNs::new("annb").await,
        TestNs::new("annc").await,
    );
    let wired = net
        .connect(&a.ns, EndpointSpec::new("wired"))
        .await
        .unwrap();
    let (v4, v6) = (wired.addresses[0].addr(), wired.addresses[1].addr());
    assert!(v6.is_ipv6());
    assert!(
        eventually(&|| knows(&wire, "wire0", v4, wired.mac)),
        "the neighbour on the wire never learnt {v4}"
    );
    assert!(
        eventually(&|| knows(&wire, "wire0", v6, wired.mac)),
        "the neighbour on the wire never learnt {v6}"
    );
    assert!(
        !knows(&sibling, "eth0", v4, None),
        "the default announcement reached a sibling"
    );
    let everyone = net
        .connect(
            &b.ns,
            EndpointSpec::new("everyone").announce_to(underlay::network::Announce::Segment),
        )
        .await
        .unwrap();
    let ip = everyone.addresses[0].addr();
    assert!(
        eventually(&|| knows(&sibling, "eth0", ip, everyone.mac)),
        "the sibling never heard of the segment-wide announcement"
    );
    // The kernel announces as the link comes up (arp_notify, ndisc_notify): the wire and the
    // siblings learn, and no packet socket is opened by this process.
    let d = TestNs::new("annd").await;
    let by_kernel = net
        .connect(
            &d.ns,
            EndpointSpec::new("by-kernel").announce_to(underlay::network::Announce::Kernel),
        )
        .await
        .unwrap();
    let (v4, v6) = (by_kernel.addresses[0].addr(), by_kernel.addresses[1].addr());
    assert!(v6.is_ipv6());
    for ip in [v4, v6] {
        assert!(
            eventually(&|| knows(&wire, "wire0", ip, by_kernel.mac)),
            "the neighbour on the wire never learnt {ip} from the kernel"
        );
    }
    assert!(
        eventually(&|| knows(&sibling, "eth0", v4, by_kernel.mac)),
        "the sibling never heard the kernel's announcement"
    );
    let link = d.ip_link("eth0").expect("the endpoint's link");
    assert!(
        link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{link}"
    );
    let routes = d.ip(&["route", "show", "default"]);
    assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
    let quiet = net
        .connect(&c.ns, EndpointSpec::new("quiet").announce(false))
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for (who, dev) in [(&wire, "wire0"), (&sibling, "eth0")] {
        for a in &quiet.addresses {
            assert!(
                !knows(who, dev, a.addr(), None),
                "{} was announced",
                a.addr()
            );
        }
    }
}

/// Two hosts on one IPAM store (as with etcd): the second joins the identical definition, a
/// different one is refused, and the hosts never hand out one address twice.
#[tokio::test]
async fn hosts_sharing_a_store_share_the_definition() {
    root_or_skip!("hosts_sharing_a_store_share_the_definition");
    let store: std::sync::Arc<dyn underlay::ipam::Store> =
        std::sync::Arc::new(underlay::ipam::MemoryStore::new());
    let (h1, d1) = (
        TestNs::with_veth("sh1", "ens192", "w").await,
        TempDir::new("sh1"),
    );
    let (h2, d2) = (
        TestNs::with_veth("sh2", "ens192", "w").await,
        TempDir::new("sh2"),
    );
    let n1 = Networks::with_store(&h1.handle, &d1.0, store.clone())
        .await
        .unwrap();
    let n2 = Networks::with_store(&h2.handle, &d2.0, store.clone())
        .await
        .unwrap();
    let a = n1.create(mac_net("mac_net1", "ens192")).await.unwrap();
    let b = n2.create(mac_net("mac_net1", "ens192")).await.unwrap();
    let other = NetworkSpec::macvlan("mac_net1", "ens192", MacvlanMode::Bridge)
        .pool("172.22.16.0/25".parse().unwrap());
    let (h3, d3) = (
        TestNs::with_veth("sh3", "ens192", "w").await,
        TempDir::new("sh3"),
    );
    let n3 = Networks::with_store(&h3.handle, &d3.0, store.clone())
        .await
        .unwrap();
    let e = n3.create(other).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let (c1, c2) = (TestNs::new("shc1").await, TestNs::new("shc2").await);
    let e1 = a.connect(&c1.ns, EndpointSpec::new("x1")).await.unwrap();
    let e2 = b.connect(&c2.ns, EndpointSpec::new("x2")).await.unwrap();
    assert_ne!(
        e1.addresses, e2.addresses,
        "one address handed out twice across hosts"
    );
}

/// An endpoint given no IPv6 address has IPv6 off (as Docker does since 26.0.2,
/// CVE-2024-32473): no link-local address, and a router advertisement on the wire gives it no
/// SLAAC address; `keep_ipv6(true)` leaves the kernel's IPv6 on, and the same advertisement
/// gives that endpoint an address.
#[tokio::test]
async fn ipv4_only_endpoints_take_no_ipv6_from_the_wire() {
    root_or_skip!("ipv4_only_endpoints_take_no_ipv6_from_the_wire");
    // A router on the wire: a link-local source for its advertisements.
    let (h, wire) = host_and_wire("v6off", "fe80::250/64").await;
    let dir = TempDir::new("v6off");
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let net = nets.create(mac_net("v6off", "ens192")).await.unwrap();
    let (off, kept) = (TestNs::new("v6offa").await, TestNs::new("v6offb").await);
    net.connect(&off.ns, EndpointSpec::new("off"))
        .await
        .unwrap();
    net.connect(&kept.ns, EndpointSpec::new("kept").keep_ipv6(true))
        .await
        .unwrap();
    let v6 = |t: &TestNs| -> Vec<String> {
        ip_addrs(t, "eth0")
            .into_iter()
            .filter(|a| a.contains(':'))
            .collect()
    };
    // Oracle and readback: off has no IPv6 address and disable_ipv6 set; kept has its
    // link-local address. Both are up with their IPv4 address.
    assert_eq!(v6(&off), Vec::<String>::new());
    assert!(
        v6(&kept).iter().any(|a| a.starts_with("fe80:")),
        "{:?}",
        v6(&kept)
    );
    for (t, disabled) in [(&off, "1"), (&kept, "0")] {
        assert_eq!(
            t.ns.sysctl("net/ipv6/conf/eth0/disable_ipv6").unwrap(),
            disabled
        );
        let j = t.ip_link("eth0").unwrap();
        assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
        assert!(ip_addrs(t, "eth0")
            .iter()
            .any(|a| a.starts_with("172.22.16.")));
    }
    // The router advertises an autonomous prefix.
    let wire_index = wire.handle.link("wire0").await.unwrap().index;
    wire.ns
        .run(move || send_router_advertisement(wire_index, "2001:db8:5::".parse().unwrap()))
        .unwrap()
        .unwrap();
    let slaac = |t: &TestNs| v6(t).iter().any(|a| a.starts_with("2001:db8:5:"));
    assert!(
        (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            slaac(&kept)
        }),
        "the endpoint that kept IPv6 never took the advertised prefix: {:?}",
        v6(&kept)
    );
    assert!(!slaac(&off), "the IPv4-only endpoint took {:?}", v6(&off));
}

/// Sends one router advertisement (router lifetime 30 min, `prefix`/64 on-link and autonomous)
/// to all nodes out of interface `ifindex`, from the calling thread's namespace.
fn send_router_advertisement(ifindex: u32, prefix: std::net::Ipv6Addr) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut ra = vec![134u8, 0, 0, 0, 64, 0];
    ra.extend(1800u16.to_be_bytes());
    ra.extend([0u8; 8]);
    // Prefix information: type 3, 4 x 8 bytes, /64, on-link and autonomous.
    ra.extend([3u8, 4, 64, 0xc0]);
    ra.extend(86400u32.to_be_bytes());
    ra.extend(14400u32.to_be_bytes());
    ra.extend([0u8; 4]);
    ra.extend(prefix.octets());
    // SAFETY: plain socket calls on a descriptor owned here; the pointers outlive the calls.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        // Neighbour discovery messages must arrive with hop limit 255.
        let hops: libc::c_int = 255;
        let index = ifindex as libc::c_int;
        for (opt, value) in [
            (libc::IPV6_MULTICAST_HOPS, &hops),
            (libc::IPV6_MULTICAST_IF, &index),
        ] {
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                opt,
                value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        let mut dst: libc::sockaddr_in6 = std::mem::zeroed();
        dst.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        dst.sin6_addr.s6_addr = "ff02::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        dst.sin6_scope_id = ifindex;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            ra.as_ptr() as *const libc::c_void,
            ra.len(),
            0,
            &dst as *const libc::sockaddr_in6 as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        );
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Endpoints in namespaces that have no path (anonymous, or a path another namespace took) are
/// live as long as the namespace is: reconcile finds them where the host can still open them,
/// and releases them only once the namespace is really gone.
#[tokio::test]
async fn reconcile_tells_gone_from_unnamed() {
    root_or_skip!("reconcile_tells_gone_from_unnamed");
    let (_h, _dir, nets) = host("anon").await;
    let net = nets.create(mac_net("anon", "ens192")).await.unwrap();
    let anon = Netns::create_anonymous().unwrap();
    let ep = net.connect(&anon, EndpointSpec::new("anon")).await.unwrap();
    assert!(ep.netns.is_none());
    let report = nets.reconcile().await.unwrap();
    assert!(
        report.is_clean(),
        "a live endpoint is left alone: {report:?}"
    );
    assert_eq!(net.ipam().list().await.unwrap().len(), 1, "its lease stays");
    // The namespace goes with its last holder: now the endpoint is gone.
    drop(anon);
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    assert_eq!(report.gone_endpoints[0].addresses, ep.addresses);
    assert!(net.ipam().list().await.unwrap().is_empty());
    assert!(net.endpoints().unwrap().is_empty());
}

/// Reconcile mends endpoints whose link is gone while their namespace lives: the parent NIC
/// was deleted (the kernel takes the endpoint links with it), or a disconnect died after
/// deleting the link. A killed writer's temporary file goes too, and delete leaves no
/// directory behind.
#[tokio::test]
async fn reconcile_mends_endpoints_without_their_link() {
    root_or_skip!("reconcile_mends_endpoints_without_their_link");
    let (h, dir, nets) = host("nolink").await;
    let net = nets.create(mac_net("nolink", "ens192")).await.unwrap();
    let a = TestNs::new("nla").await;
    let b = TestNs::new("nlb").await;
    let c = TestNs::new("nlc").await;
    let ep_a = net.connect(&a.ns, EndpointSpec::new("a")).await.unwrap();
    net.connect(&b.ns, EndpointSpec::new("b")).await.unwrap();
    // The parent goes and comes back (a driver reload): the endpoint links are gone.
    h.handle.delete_link("ens192").await.unwrap();
    underlay::Veth::create(&h.handle, "ens192", "wire0")
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    assert!(a.ip_link("eth0").is_none() && b.ip_link("eth0").is_none());
    // A third endpoint made on the new parent, whose link then goes as a dying disconnect
    // would leave it (record and lease still there).
    net.connect(&c.ns, EndpointSpec::new("c")).await.unwrap();
    c.handle.delete_link("eth0").await.unwrap();
    // A writer killed between its temporary file and the rename.
    let eps_dir = dir.0.join("endpoints").join("nolink");
    std::fs::write(eps_dir.join(".eth0:dead.tmp"), b"half a record").unwrap();
    let report = nets.reconcile().await.unwrap();
    let mut gone: Vec<_> = report
        .gone_endpoints
        .iter()
        .map(|g| g.container_id.as_str())
        .collect();
    gone.sort();
    assert_eq!(gone, ["a", "b", "c"], "{report:?}");
    let a_report = report.gone_endpoints.iter().find(|g| g.container_id == "a");
    assert_eq!(a_report.unwrap().addresses, ep_a.addresses);
    assert!(net.ipam().list().await.unwrap().is_empty());
    assert!(net.endpoints().unwrap().is_empty());
    assert!(
        !eps_dir.join(".eth0:dead.tmp").exists(),
        "the temporary file went"
    );
    assert!(nets.reconcile().await.unwrap().is_clean());
    // The containers connect again on the new parent.
    net.connect(&a.ns, EndpointSpec::new("a")).await.unwrap();
    assert!(a.ip_link("eth0").is_some());
    net.disconnect("a", "eth0").await.unwrap();
    std::fs::write(eps_dir.join(".eth0:dead2.tmp"), b"half").unwrap();
    nets.delete("nolink").await.unwrap();
    assert!(!eps_dir.exists(), "delete leaves no endpoint directory");
}

/// A `Network` kept after its network was deleted cannot connect (it used to make the
/// endpoint directory again and hand out an address from the deleted pools).
#[tokio::test]
async fn a_deleted_network_does_not_connect() {
    root_or_skip!("a_deleted_network_does_not_connect");
    let (_h, dir, nets) = host("stale").await;
    let net = nets.create(mac_net("stale", "ens192")).await.unwrap();
    nets.delete("stale").await.unwrap();
    let c = TestNs::new("stalec").await;
    let e = net
        .connect(&c.ns, EndpointSpec::new("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("stale"), "{e}");
    assert!(!dir.0.join("endpoints").join("stale").exists());
    assert!(c.ip_link("eth0").is_none());
}

/// A disconnect touches only its own endpoint's link: another network's endpoint of the same
/// container under the same name (its own link deleted from under it meanwhile) stays.
#[tokio::test]
async fn disconnect_deletes_only_its_own_link() {
    root_or_skip!("disconnect_deletes_only_its_own_link");
    let (_h, _dir, nets) = host("own").await;
    let one = nets.create(mac_net("own1", "ens192")).await.unwrap();
    let two = nets
        .create(
            NetworkSpec::macvlan("own2", "ens192", MacvlanMode::Bridge)
                .pool("172.22.18.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    let c = TestNs::new("ownc").await;
    one.connect(&c.ns, EndpointSpec::new("x")).await.unwrap();
    c.handle.delete_link("eth0").await.unwrap();
    let ep2 = two.connect(&c.ns, EndpointSpec::new("x")).await.unwrap();
    one.disconnect("x", "eth0").await.unwrap();
    let link = c.ip_link("eth0").expect("own2's eth0 stays");
    assert_eq!(link["ifindex"], ep2.index);
    two.disconnect("x", "eth0").await.unwrap();
    assert!(c.ip_link("eth0").is_none());
}

/// A fixed MAC that no interface can have (multicast, zero, broadcast) is refused before the
/// connect does anything: no lease, no record, no link.
#[tokio::test]
async fn connect_refuses_an_invalid_fixed_mac() {
    root_or_skip!("connect_refuses_an_invalid_fixed_mac");
    let (_h, _dir, nets) = host("bm").await;
    let net = nets.create(mac_net("bm", "ens192")).await.unwrap();
    let c1 = TestNs::new("bmc").await;
    for s in [
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
        "ff:ff:ff:ff:ff:ff",
    ] {
        let mac: MacAddr = s.parse().unwrap();
        let e = net
            .connect(&c1.ns, EndpointSpec::new("bm1").mac(MacPolicy::Fixed(mac)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{s}: {e}");
        assert!(e.to_string().contains(s), "{e}");
        assert!(c1.ip_link("eth0").is_none());
        assert!(net.endpoints().unwrap().is_empty());
        assert!(net.ipam().list().await.unwrap().is_empty());
    }
}

/// A container restarted under its id right after its namespace was deleted (no disconnect):
/// with MACs derived from the container id the new link wants the MAC that the old link, in a
/// namespace the kernel has not finished tearing down, still holds on the parent (macvlan
/// refuses two up links with one MAC: EADDRINUSE). The connect waits for it instead of
/// failing; reconcile then releases the old endpoint's lease only.
#[tokio::test]
async fn reconnect_right_after_the_namespace_went_waits_for_its_mac() {
    root_or_skip!("reconnect_right_after_the_namespace_went_waits_for_its_mac");
    let (_h, _dir, nets) = host("rmac").await;
    let net = nets.create(mac_net("rmac", "ens192")).await.unwrap();
    for round in 0..10 {
        let name = format!("ult-rmacx-{}-{round}", std::process::id());
        let ns = Netns::create(&name).unwrap();
        let spec = || {
            EndpointSpec::new(format!("ct{round}"))
                .mac(MacPolicy::FromContainerId)
                .keep_ipv6(round % 2 == 0)
        };
        let first = net.connect(&ns, spec()).await.unwrap();
        drop(ns);
        Netns::delete(&name).unwrap();
        net.disconnect_for_netns_deletion(&format!("ct{round}"), "eth0")
            .await
            .unwrap();
        let again = TestNs::new("rmacc").await;
        let second = net
            .connect(&again.ns, spec())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(second.mac, first.mac, "the same derived MAC");
        let link = again.ip_link("eth0").unwrap();
        assert_eq!(
            link["address"],
            first.mac.unwrap().to_string().as_str(),
            "{link}"
        );
        assert!(
            link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{link}"
        );
        net.disconnect(&format!("ct{round}"), "eth0").await.unwrap();
    }
}

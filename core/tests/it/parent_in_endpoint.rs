//! Networks whose parent is in each endpoint's namespace (`NetworkSpec::parent_in_endpoint_namespace`,
//! the CNI plugins' `linkInContainer`): the link is made in the container on the container's
//! own NIC, and the host's namespace is never touched. iproute2 is the oracle.

use std::process::Command;

use underlay::network::{EndpointSpec, HostAccess, NetworkSpec, Networks};
use underlay::{ErrorKind, MacvlanMode};

use crate::common::{ip_addrs, privileged, TestNs};
use crate::network::TempDir;

fn ip(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip -n {ns} {args:?}: {out:?}");
}

/// A container namespace whose `eth1` is a veth to bridge `br0` in `wire`.
async fn container_on(wire: &TestNs, tag: &str) -> TestNs {
    let c = TestNs::new(tag).await;
    let peer = format!("p{tag}");
    underlay::Veth::create(&c.handle, "eth1", &peer)
        .peer_netns(&wire.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    ip(&wire.name, &["link", "set", &peer, "master", "br0"]);
    c
}

fn link_names(t: &TestNs) -> Vec<String> {
    t.ip(&["link"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn links_are_made_on_the_parent_inside_each_endpoint_namespace() {
    if !privileged("links_are_made_on_the_parent_inside_each_endpoint_namespace") {
        return;
    }
    // The "host" has no eth1: the network must never look for one there.
    let host = TestNs::new("pie").await;
    let wire = TestNs::new("piew").await;
    ip(&wire.name, &["link", "add", "br0", "type", "bridge"]);
    ip(&wire.name, &["link", "set", "br0", "up"]);
    ip(&wire.name, &["addr", "add", "172.23.0.1/24", "dev", "br0"]);
    // Gratuitous ARPs make neighbour entries: the endpoints' announcements become visible.
    let sysctl = wire.exec(&["sysctl", "-w", "net.ipv4.conf.br0.arp_accept=1"]);
    assert!(sysctl.status.success(), "{sysctl:?}");
    let a = container_on(&wire, "piea").await;
    let b = container_on(&wire, "pieb").await;
    let lonely = TestNs::new("piec").await;
    let host_links = link_names(&host);

    let dir = TempDir::new("pie");
    let nets = Networks::open(&host.handle, &dir.0).await.unwrap();
    let spec = NetworkSpec::macvlan("pie", "eth1", MacvlanMode::Bridge)
        .parent_in_endpoint_namespace()
        .pool("172.23.0.0/24 gateway=172.23.0.1".parse().unwrap());
    let net = nets.create(spec.clone()).await.unwrap();
    assert!(net.parent_in_endpoint_namespace());
    assert_eq!(net.parent(), Some("eth1"));
    // Stored: another process sees the same definition, and tells it from a host parent's.
    let again = Networks::open(&host.handle, &dir.0).await.unwrap();
    let stored = again.get("pie").await.unwrap();
    assert!(stored.differences(&spec).is_empty());
    let on_host = NetworkSpec::macvlan("pie", "eth1", MacvlanMode::Bridge)
        .pool("172.23.0.0/24 gateway=172.23.0.1".parse().unwrap());
    let diffs = stored.differences(&on_host);
    assert!(
        diffs.iter().any(|d| d.contains("parent's namespace")),
        "{diffs:?}"
    );

    let ea = net
        .connect(&a.ns, EndpointSpec::new("ca").target(&a.handle))
        .await
        .unwrap();
    let eb = net
        .connect(&b.ns, EndpointSpec::new("cb").target(&b.handle))
        .await
        .unwrap();
    for (t, ep) in [(&a, &ea), (&b, &eb)] {
        let link = t.ip_link("eth0").expect("the endpoint's link");
        assert_eq!(link["linkinfo"]["info_kind"], "macvlan", "{link}");
        // iproute2 names the parent when it is in the same namespace.
        assert_eq!(link["link"], "eth1", "{link}");
        let want: Vec<String> = ep.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(ip_addrs(t, "eth0"), want);
        let routes = t.ip(&["route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "172.23.0.1", "{routes}");
        assert_eq!(routes[0]["dev"], "eth0", "{routes}");
    }
    assert_ne!(ea.addresses, eb.addresses);
    // Announced from the endpoint's link (the host has no parent to send from).
    let neigh = wire.ip(&["neigh", "show", "dev", "br0"]);
    let a_ip = ea.addresses[0].addr().to_string();
    let a_mac = ea.mac.unwrap().to_string();
    assert!(
        neigh
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["dst"] == a_ip.as_str() && n["lladdr"] == a_mac.as_str()),
        "the wire learnt {a_ip} at {a_mac}: {neigh}"
    );
    let ping = a.exec(&["ping", "-c1", "-W2", &eb.addresses[0].addr().to_string()]);
    assert!(
        ping.status.success(),
        "a reaches b over their own NICs: {ping:?}"
    );
    let ping = b.exec(&["ping", "-c1", "-W2", "172.23.0.1"]);
    assert!(ping.status.success(), "b reaches the wire: {ping:?}");

    // No parent in the namespace: a clear error, nothing left.
    let e = net
        .connect(&lonely.ns, EndpointSpec::new("cc").target(&lonely.handle))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string()
            .contains("parent `eth1` is not in the endpoint's namespace"),
        "{e}"
    );
    assert!(lonely.ip_link("eth0").is_none());
    assert_eq!(net.endpoints().unwrap().len(), 2);
    assert_eq!(net.ipam().list().await.unwrap().len(), 2);

    // What goes through a parent on the host is refused.
    let e = net.prepare(EndpointSpec::new("cp")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = net
        .enable_host_access(HostAccess::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(net.watch_conflicts().await.is_err());
    assert_eq!(net.ipam().list().await.unwrap().len(), 2);

    // Disconnect takes the endpoint's link only; the container keeps its NIC.
    net.disconnect("ca", "eth0").await.unwrap();
    assert!(a.ip_link("eth0").is_none());
    assert!(a.ip_link("eth1").is_some());
    // A container that went away unannounced: reconcile releases its lease and restores no
    // parent on the host.
    let b_name = b.name.clone();
    drop(b);
    assert!(underlay::Netns::open(&b_name).is_err());
    let report = nets.reconcile().await.unwrap();
    assert_eq!(report.gone_endpoints.len(), 1, "{report:?}");
    assert!(report.recreated_parents.is_empty(), "{report:?}");
    assert!(net.ipam().list().await.unwrap().is_empty());
    assert!(nets.reconcile().await.unwrap().is_clean());
    nets.delete("pie").await.unwrap();
    assert_eq!(
        link_names(&host),
        host_links,
        "the host's namespace was never touched"
    );
    assert!(a.ip_link("eth1").is_some());
}

#[tokio::test]
async fn refusals_name_the_network_and_leave_nothing() {
    if !privileged("refusals_name_the_network_and_leave_nothing") {
        return;
    }
    let host = TestNs::new("pir").await;
    let dir = TempDir::new("pir");
    let nets = Networks::open(&host.handle, &dir.0).await.unwrap();
    let base = NetworkSpec::macvlan("pir", "eth1", MacvlanMode::Bridge)
        .parent_in_endpoint_namespace()
        .pool("172.23.1.0/24".parse().unwrap());
    for bad in [
        base.clone()
            .conflict_detection(underlay::ConflictDetection::default()),
        base.clone().bring_parent_up(),
    ] {
        let e = nets.create(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("network `pir`"), "{e}");
    }
    assert!(nets.list().await.unwrap().is_empty());
    // An MTU above the container's parent's is refused at connect, naming both.
    let net = nets.create(base.mtu(9000)).await.unwrap();
    let c = TestNs::with_veth("pirc", "eth1", "peer").await;
    let e = net
        .connect(&c.ns, EndpointSpec::new("c").target(&c.handle))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.to_string().contains("MTU 9000") && e.to_string().contains("eth1"),
        "{e}"
    );
    assert!(c.ip_link("eth0").is_none());
    assert!(net.ipam().list().await.unwrap().is_empty());
    assert!(net.endpoints().unwrap().is_empty());
    nets.delete("pir").await.unwrap();
}

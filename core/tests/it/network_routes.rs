//! A container on several networks: the default routes each connect adds (issue 12, defect
//! 8), and the target handle a connect is given (defect 4). iproute2 is the oracle.

use serde_json::Value;
use underlay::network::{DefaultRoute, EndpointSpec, Network, NetworkSpec, Networks};
use underlay::{ErrorKind, MacvlanMode};

use crate::common::{ip_addrs, privileged, TestNs};
use crate::network::TempDir;

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// A host namespace with `n` parents `ens192`, `ens193`, ... (veths, up) and on each a
/// dual-stack network `gwI` with gateways: 172.22.(20+I).0/24 via .1, fd(20+I)::/64 via ::1.
async fn host_with_gateway_networks(
    tag: &str,
    n: usize,
) -> (TestNs, TempDir, Networks, Vec<Network>) {
    let h = TestNs::new(tag).await;
    for i in 0..n {
        underlay::Veth::create(&h.handle, &format!("ens{}", 192 + i), &format!("wire{i}"))
            .up()
            .peer_up()
            .execute()
            .await
            .unwrap();
    }
    let dir = TempDir::new(tag);
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let mut made = Vec::new();
    for i in 0..n {
        let spec = NetworkSpec::macvlan(
            &format!("gw{i}"),
            &format!("ens{}", 192 + i),
            MacvlanMode::Bridge,
        )
        .pool(
            format!("172.22.{}.0/24 gateway=172.22.{}.1", 20 + i, 20 + i)
                .parse()
                .unwrap(),
        )
        .pool(
            format!("fd{}::/64 gateway=fd{}::1", 20 + i, 20 + i)
                .parse()
                .unwrap(),
        );
        made.push(nets.create(spec).await.unwrap());
    }
    (h, dir, nets, made)
}

/// The oracle's default routes of one IP version (`-4`/`-6`) in `t`, as (gateway, dev,
/// metric) sorted by dev.
fn oracle_defaults(t: &TestNs, version: &str) -> Vec<(String, String, Option<u64>)> {
    let v = t.ip(&[version, "route", "show", "default"]);
    let mut out: Vec<_> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r: &Value| {
            (
                r["gateway"].as_str().unwrap_or("").to_string(),
                r["dev"].as_str().unwrap_or("").to_string(),
                r["metric"].as_u64(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The library's readback of the default routes in `t`, as (gateway, metric).
async fn readback_defaults(t: &TestNs) -> Vec<(String, Option<u32>)> {
    let mut out: Vec<_> = t
        .handle
        .routes(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.destination.prefix_len() == 0)
        .map(|r| {
            (
                r.gateway.map(|g| g.to_string()).unwrap_or_default(),
                r.metric,
            )
        })
        .collect();
    out.sort();
    out
}

fn gw(i: usize, v6: bool) -> String {
    if v6 {
        format!("fd{}::1", 20 + i)
    } else {
        format!("172.22.{}.1", 20 + i)
    }
}

/// Auto (the default): a container on two, then three networks with gateways; the first
/// network's endpoint has the default routes, the others none (they used to fail with
/// `AlreadyExists` on the default route). Disconnecting leaves the others' links and routes.
#[tokio::test]
async fn auto_gives_one_default_route_on_two_and_three_networks() {
    root_or_skip!("auto_gives_one_default_route_on_two_and_three_networks");
    let (_h, _dir, _nets, nets) = host_with_gateway_networks("dra", 3).await;
    let c = TestNs::new("drac").await;
    let mut eps = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        let spec = EndpointSpec::new("ctr").ifname(format!("eth{i}"));
        eps.push(net.connect(&c.ns, spec).await.unwrap());
        // One default route per IP version, through the first network, however many joined.
        let want = |v6| {
            vec![(
                gw(0, v6),
                "eth0".to_string(),
                if v6 { Some(1024) } else { None },
            )]
        };
        assert_eq!(
            oracle_defaults(&c, "-4"),
            want(false),
            "after {} networks",
            i + 1
        );
        assert_eq!(
            oracle_defaults(&c, "-6"),
            want(true),
            "after {} networks",
            i + 1
        );
    }
    assert_eq!(
        readback_defaults(&c).await,
        vec![(gw(0, false), None), (gw(0, true), Some(1024))]
    );
    // Recorded: the routes each endpoint added, and only those.
    let gateways = |routes: &[underlay::Route]| -> Vec<String> {
        routes
            .iter()
            .filter_map(|r| r.gateway)
            .map(|g| g.to_string())
            .collect()
    };
    assert_eq!(gateways(&eps[0].routes), [gw(0, false), gw(0, true)]);
    assert!(eps[1].routes.is_empty() && eps[2].routes.is_empty());
    for (i, net) in nets.iter().enumerate() {
        let rec = net.endpoint("ctr", &format!("eth{i}")).unwrap().unwrap();
        assert_eq!(gateways(&rec.routes), gateways(&eps[i].routes), "eth{i}");
    }
    // The second endpoint goes: the first's default routes and the third's link stay.
    nets[1].disconnect("ctr", "eth1").await.unwrap();
    assert!(c.ip_link("eth1").is_none());
    assert_eq!(oracle_defaults(&c, "-4").len(), 1);
    assert_eq!(oracle_defaults(&c, "-6").len(), 1);
    assert!(ip_addrs(&c, "eth2").contains(&eps[2].addresses[0].to_string()));
    // The first goes: its routes with it; the third stays as it was.
    nets[0].disconnect("ctr", "eth0").await.unwrap();
    assert!(c.ip_link("eth0").is_none());
    assert!(oracle_defaults(&c, "-4").is_empty());
    assert!(ip_addrs(&c, "eth2").contains(&eps[2].addresses[0].to_string()));
    nets[2].disconnect("ctr", "eth2").await.unwrap();
}

/// A connect given a handle in another namespace than the one it connects is refused before
/// anything is done; it used to make the link there, record it here, and a disconnect then
/// deleted this namespace's `eth0` (another container's).
#[tokio::test]
async fn connect_refuses_a_target_in_another_namespace() {
    root_or_skip!("connect_refuses_a_target_in_another_namespace");
    let (_h, _dir, _nets, nets) = host_with_gateway_networks("tgt", 1).await;
    let net = &nets[0];
    let (a, b) = (TestNs::new("tgta").await, TestNs::new("tgtb").await);
    let c1 = net
        .connect(&a.ns, EndpointSpec::new("c1").target(&a.handle))
        .await
        .unwrap();
    let e = net
        .connect(&a.ns, EndpointSpec::new("c2").target(&b.handle))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&a.name) && msg.contains(&b.name), "{msg}");
    // Nothing made, allocated or recorded for c2; c1 untouched.
    assert!(b.ip_link("eth0").is_none());
    assert!(net.endpoint("c2", "eth0").unwrap().is_none());
    assert_eq!(net.ipam().list().await.unwrap().len(), 1);
    net.disconnect("c2", "eth0").await.unwrap();
    assert!(ip_addrs(&a, "eth0").contains(&c1.addresses[0].to_string()));
    assert_eq!(net.endpoints().unwrap().len(), 1);
    net.disconnect("c1", "eth0").await.unwrap();
}

/// Metric: each network its own default routes (IPv4 and IPv6) with its metric, side by side;
/// disconnecting one leaves the others'. A clash of metrics is refused and undone; Auto then
/// adds none (the container has default routes), None never adds one.
#[tokio::test]
async fn metric_gives_each_network_its_default_route() {
    root_or_skip!("metric_gives_each_network_its_default_route");
    let (_h, _dir, _nets, nets) = host_with_gateway_networks("drm", 3).await;
    let c = TestNs::new("drmc").await;
    let metric = |i: usize| 100 * (i as u32 + 1);
    let mut eps = Vec::new();
    for (i, net) in nets.iter().take(2).enumerate() {
        let spec = EndpointSpec::new("ctr")
            .ifname(format!("eth{i}"))
            .default_route(DefaultRoute::Metric(metric(i)));
        eps.push(net.connect(&c.ns, spec).await.unwrap());
    }
    let want = |ids: &[usize], v6: bool| -> Vec<(String, String, Option<u64>)> {
        ids.iter()
            .map(|&i| (gw(i, v6), format!("eth{i}"), Some(u64::from(metric(i)))))
            .collect()
    };
    assert_eq!(oracle_defaults(&c, "-4"), want(&[0, 1], false));
    assert_eq!(oracle_defaults(&c, "-6"), want(&[0, 1], true));
    // The same metric again: refused, nothing left of the third endpoint.
    let e = nets[2]
        .connect(
            &c.ns,
            EndpointSpec::new("ctr")
                .ifname("eth2")
                .default_route(DefaultRoute::Metric(metric(1))),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("metric"), "{e}");
    assert!(c.ip_link("eth2").is_none());
    assert!(nets[2].ipam().list().await.unwrap().is_empty());
    // Its own metric: three side by side.
    let spec = EndpointSpec::new("ctr")
        .ifname("eth2")
        .default_route(DefaultRoute::Metric(metric(2)));
    eps.push(nets[2].connect(&c.ns, spec).await.unwrap());
    assert_eq!(oracle_defaults(&c, "-4"), want(&[0, 1, 2], false));
    assert_eq!(oracle_defaults(&c, "-6"), want(&[0, 1, 2], true));
    let mut all: Vec<_> = (0..3)
        .flat_map(|i| {
            [
                (gw(i, false), Some(metric(i))),
                (gw(i, true), Some(metric(i))),
            ]
        })
        .collect();
    all.sort();
    assert_eq!(readback_defaults(&c).await, all);
    // Recorded with their metrics.
    for (i, net) in nets.iter().enumerate() {
        let rec = net.endpoint("ctr", &format!("eth{i}")).unwrap().unwrap();
        let got: Vec<_> = rec.routes.iter().map(|r| (r.gateway, r.metric)).collect();
        let want: Vec<_> = eps[i]
            .routes
            .iter()
            .map(|r| (r.gateway, r.metric))
            .collect();
        assert_eq!(got, want, "eth{i}");
        assert_eq!(got.len(), 2, "eth{i}");
        assert!(got.iter().all(|(_, m)| *m == Some(metric(i))), "eth{i}");
    }
    // The lowest goes: the next two stay.
    nets[0].disconnect("ctr", "eth0").await.unwrap();
    assert_eq!(oracle_defaults(&c, "-4"), want(&[1, 2], false));
    assert_eq!(oracle_defaults(&c, "-6"), want(&[1, 2], true));
    // The highest goes: the middle one stays.
    nets[2].disconnect("ctr", "eth2").await.unwrap();
    assert_eq!(oracle_defaults(&c, "-4"), want(&[1], false));
    assert_eq!(oracle_defaults(&c, "-6"), want(&[1], true));
    // Auto on a container with a default route adds none; None never does.
    let auto = nets[0]
        .connect(&c.ns, EndpointSpec::new("ctr").ifname("eth0"))
        .await
        .unwrap();
    assert!(auto.routes.is_empty(), "{:?}", auto.routes);
    let d = TestNs::new("drmd").await;
    let none = nets[2]
        .connect(
            &d.ns,
            EndpointSpec::new("other").default_route(DefaultRoute::None),
        )
        .await
        .unwrap();
    assert!(none.routes.is_empty(), "{:?}", none.routes);
    assert!(oracle_defaults(&d, "-4").is_empty() && oracle_defaults(&d, "-6").is_empty());
    assert!(ip_addrs(&d, "eth0").contains(&none.addresses[0].to_string()));
    assert_eq!(oracle_defaults(&c, "-4"), want(&[1], false));
    for (net, id, ifname) in [
        (&nets[0], "ctr", "eth0"),
        (&nets[1], "ctr", "eth1"),
        (&nets[2], "other", "eth0"),
    ] {
        net.disconnect(id, ifname).await.unwrap();
    }
}

/// Connects of one container to three networks at once (Auto): all succeed, and exactly one
/// default route per IP version is there, recorded by the endpoint that added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_auto_connects_add_one_default_route() {
    root_or_skip!("racing_auto_connects_add_one_default_route");
    let (_h, _dir, _nets, nets) = host_with_gateway_networks("drr", 3).await;
    for round in 0..5 {
        let c = TestNs::new("drrc").await;
        let connects = nets.iter().enumerate().map(|(i, net)| {
            let (net, ns, h) = (net.clone(), c.ns.clone(), c.handle.clone());
            tokio::spawn(async move {
                let spec = EndpointSpec::new("ctr")
                    .ifname(format!("eth{i}"))
                    .target(&h);
                net.connect(&ns, spec).await
            })
        });
        let eps: Vec<_> = futures::future::join_all(connects)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        for (version, v6) in [("-4", false), ("-6", true)] {
            let oracle = oracle_defaults(&c, version);
            assert_eq!(oracle.len(), 1, "round {round}: {oracle:?}");
            let holders: Vec<_> = eps
                .iter()
                .filter(|ep| {
                    ep.routes
                        .iter()
                        .any(|r| r.gateway.is_some_and(|g| g.is_ipv6() == v6))
                })
                .collect();
            assert_eq!(holders.len(), 1, "round {round} {version}: {eps:?}");
            assert_eq!(oracle[0].1, holders[0].ifname, "round {round} {version}");
        }
        for (i, net) in nets.iter().enumerate() {
            net.disconnect_for_netns_deletion("ctr", &format!("eth{i}"))
                .await
                .unwrap();
        }
    }
}

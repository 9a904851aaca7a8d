//! DHCP networks (`-o underlay.dhcp`, `--ipam-driver null`) through dockerd's call shapes,
//! against the core tests' own DHCP server (`core/tests/it/dhcp_server.rs`, lease times of
//! seconds) on the parent's wire: CreateEndpoint answers the server's address, Join its
//! router; the link moved into a "sandbox" namespace as dockerd moves it, the daemon's renewer
//! renews it there at T1 and removes the address at expiry; DeleteEndpoint and reconcile send
//! the release; refusals. Oracles: the server's log and leases, `ip -j` in each namespace.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use dhcproto::v4::MessageType;
use serde_json::{json, Value};
use underlay_docker::Plugin;

use crate::common::{ip_json, ipv4_of, TestNs};
use crate::dhcp_server::{Knobs, Plan, TestServer};
use crate::{rt, unique, Dockerd, NET, PARENT};

/// dockerd's namespace (the parent veth, the plugin's host) and the wire namespace holding
/// the peer (`wire0`), where the tests' DHCP server runs.
async fn dockerd_and_wire(tag: &str) -> (Dockerd, TestNs) {
    let host = TestNs::new(tag).await;
    let wire = TestNs::new(&format!("{tag}w")).await;
    underlay::Veth::create(&host.handle, PARENT, "wire0")
        .peer_netns(&wire.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(unique(tag));
    let plugin = Arc::new(Plugin::open(&host.handle, &dir, None).await.unwrap());
    let d = Dockerd {
        ns: host.name.clone(),
        dir,
        plugin,
    };
    // Dockerd deletes the namespace on drop.
    std::mem::forget(host);
    (d, wire)
}

/// CreateNetwork as dockerd sends it for `--ipam-driver null` (its one pool, no gateway).
fn dhcp_network(id: &str, generic: Value) -> Value {
    json!({
        "NetworkID": id,
        "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": generic},
        "IPv4Data": [{"AddressSpace": "null", "Pool": "0.0.0.0/0", "Gateway": ""}],
        "IPv6Data": [],
    })
}

fn endpoint(ep: &str) -> Value {
    json!({"NetworkID": NET, "EndpointID": ep,
           "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""},
           "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}})
}

/// What dockerd does after Join: the link moved into the sandbox, renamed eth0, the address
/// set, up, the default route via the gateway.
fn move_into_sandbox(d: &Dockerd, src: &str, sandbox: &str, address: &str, gateway: &str) {
    for args in [
        vec![
            "-n", &d.ns, "link", "set", src, "netns", sandbox, "name", "eth0",
        ],
        vec!["-n", sandbox, "addr", "add", address, "dev", "eth0"],
        vec!["-n", sandbox, "link", "set", "eth0", "up"],
        vec!["-n", sandbox, "route", "add", "default", "via", gateway],
    ] {
        let out = crate::ip(&args);
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }
}

fn released(server: &TestServer, addr: Ipv4Addr) -> bool {
    server
        .log()
        .iter()
        .any(|s| s.kind == MessageType::Release && s.ciaddr == addr)
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < end,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole life of DHCP endpoints through the plugin: lease in CreateEndpoint, router in
/// Join, renewal from the sandbox by the daemon's renewer at T1, the address removed at
/// expiry with the server gone; release on DeleteEndpoint and by reconcile for a container
/// that died. Nothing left.
#[test]
fn dhcp_endpoints_lease_renew_in_the_sandbox_expire_and_release() {
    if !crate::root("dhcp_endpoints_lease_renew_in_the_sandbox_expire_and_release") {
        return;
    }
    rt().block_on(async {
        let (d, wire) = dockerd_and_wire("dkdh").await;
        let server = TestServer::start(
            &wire,
            "wire0",
            Plan {
                addr: Ipv4Addr::new(10, 78, 0, 1),
                first: Ipv4Addr::new(10, 78, 0, 100),
                lease_secs: 6,
                t1: 2,
                t2: 4,
            },
        )
        .await;
        d.ok(
            "/NetworkDriver.CreateNetwork",
            &dhcp_network(NET, json!({"parent": PARENT, "underlay.dhcp": "tries=3,wait_ms=300"})),
        )
        .await;
        // CreateEndpoint: the server's address (with its prefix) and the link's MAC.
        let a = d.ok("/NetworkDriver.CreateEndpoint", &endpoint("e1")).await;
        let address = a["Interface"]["Address"].as_str().unwrap().to_string();
        let mac = a["Interface"]["MacAddress"].as_str().unwrap().to_string();
        assert_eq!(address, "10.78.0.100/24", "{a}");
        let seen = server.log();
        let req = seen
            .iter()
            .find(|s| s.kind == MessageType::Request)
            .expect("a REQUEST");
        let chaddr: Vec<String> = req.chaddr.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(chaddr.join(":"), mac, "chaddr is the link's MAC");
        assert!(req.client_id.is_some(), "{req:?}");
        // Join: the server's router as the gateway; the link in dockerd's namespace, down.
        let sandbox = TestNs::new("dkdhs").await;
        let key = format!("/run/netns/{}", sandbox.name);
        let j = d
            .ok(
                "/NetworkDriver.Join",
                &json!({"NetworkID": NET, "EndpointID": "e1", "SandboxKey": key, "Options": {}}),
            )
            .await;
        assert_eq!(j["Gateway"], "10.78.0.1", "{j}");
        let src = j["InterfaceName"]["SrcName"].as_str().unwrap().to_string();
        let l = ip_json(&d.ns, &["link", "show", "dev", &src]);
        assert_eq!(l[0]["address"], mac.as_str(), "{l}");
        assert!(!l[0]["flags"].as_array().unwrap().contains(&json!("UP")), "{l}");
        assert!(ipv4_of(&d.ns, &src).is_empty(), "the address is dockerd's to set");
        let info = d
            .ok("/NetworkDriver.EndpointOperInfo", &json!({"NetworkID": NET, "EndpointID": "e1"}))
            .await;
        assert_eq!(info["Value"]["underlay.dhcp.server"], "10.78.0.1", "{info}");
        move_into_sandbox(&d, &src, &sandbox.name, &address, "10.78.0.1");

        // A second endpoint, never joined: DeleteEndpoint releases its lease.
        let a2 = d.ok("/NetworkDriver.CreateEndpoint", &endpoint("e2")).await;
        assert_eq!(a2["Interface"]["Address"], "10.78.0.101/24", "{a2}");
        assert!(server.leased().contains(&Ipv4Addr::new(10, 78, 0, 101)));
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": "e2"}))
            .await;
        wait_for("the release of e2", 3, || released(&server, Ipv4Addr::new(10, 78, 0, 101))).await;
        assert!(!server.leased().contains(&Ipv4Addr::new(10, 78, 0, 101)));

        // A third, moved into a container that dies without a word: reconcile releases it.
        let a3 = d.ok("/NetworkDriver.CreateEndpoint", &endpoint("e3")).await;
        let addr3 = a3["Interface"]["Address"].as_str().unwrap().to_string();
        let gone = TestNs::new("dkdhg").await;
        let j3 = d
            .ok(
                "/NetworkDriver.Join",
                &json!({"NetworkID": NET, "EndpointID": "e3", "SandboxKey": format!("/run/netns/{}", gone.name)}),
            )
            .await;
        let src3 = j3["InterfaceName"]["SrcName"].as_str().unwrap().to_string();
        move_into_sandbox(&d, &src3, &gone.name, &addr3, "10.78.0.1");
        drop(gone);
        let r = d.plugin.reconcile().await.unwrap();
        assert_eq!(r.gone_endpoints.len(), 1, "{r:?}");
        assert_eq!(r.gone_endpoints[0].container_id, "e3");
        let ip3: Ipv4Addr = addr3.split('/').next().unwrap().parse().unwrap();
        wait_for("the release of e3 by reconcile", 3, || released(&server, ip3)).await;

        // The daemon's renewer: at T1 (2 s) a REQUEST for e1's address, unicast, from the
        // link that now lives in the sandbox only.
        server.clear_log();
        let before = d.plugin.networks().get(NET).await.unwrap().endpoint("e1", "eth0").unwrap().unwrap().dhcp.unwrap();
        let renewer = tokio::spawn(d.plugin.clone().run_dhcp_renewer());
        wait_for("a renewal at T1", 6, || {
            server.log().iter().any(|s| {
                s.kind == MessageType::Request && s.unicast && s.ciaddr == Ipv4Addr::new(10, 78, 0, 100)
            })
        })
        .await;
        assert!(ip_json(&d.ns, &["link", "show"]).as_array().unwrap().iter().all(|l| l["address"] != mac.as_str()));
        let net = d.plugin.networks().get(NET).await.unwrap();
        wait_for("the renewed lease in the record", 3, || {
            net.endpoint("e1", "eth0").unwrap().unwrap().dhcp.unwrap().obtained > before.obtained
        })
        .await;
        assert_eq!(ipv4_of(&sandbox.name, "eth0"), vec!["10.78.0.100".to_string()]);
        // The server goes silent: no renewal, no rebinding; at expiry the address (and the
        // default route through it) leave the container.
        server.set(|k: &Knobs| &k.silent, true);
        wait_for("the address removed at expiry", 10, || ipv4_of(&sandbox.name, "eth0").is_empty()).await;
        let routes = ip_json(&sandbox.name, &["route", "show", "default"]);
        assert_eq!(routes, json!([]), "{routes}");
        assert!(net.endpoint("e1", "eth0").unwrap().unwrap().dhcp.is_none());
        renewer.abort();

        // Leave (dockerd moves the link back under its temporary name), DeleteEndpoint,
        // DeleteNetwork: nothing left.
        assert!(crate::ip(&["-n", &sandbox.name, "link", "set", "eth0", "down"]).status.success());
        assert!(crate::ip(&["-n", &sandbox.name, "link", "set", "eth0", "netns", &d.ns, "name", &src]).status.success());
        d.ok("/NetworkDriver.Leave", &json!({"NetworkID": NET, "EndpointID": "e1"})).await;
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": "e1"})).await;
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        assert_eq!(d.link_names(), vec![PARENT.to_string(), "lo".into()]);
        assert_eq!(d.state_files("endpoints"), Vec::<String>::new());
        assert_eq!(d.state_files("networks"), Vec::<String>::new());
    });
}

/// What a DHCP network refuses, in Docker's error shape, leaving nothing: a pool from an IPAM
/// driver, --internal, --ipv6, a bad setting, a static --ip; the null IPAM without DHCP; no
/// server answering (a timeout naming the network, no link or record left).
#[test]
fn dhcp_refusals_name_the_option() {
    if !crate::root("dhcp_refusals_name_the_option") {
        return;
    }
    rt().block_on(async {
        let (d, _wire) = dockerd_and_wire("dkdr").await;
        let ok = StatusCode::OK;
        let on = json!({"parent": PARENT, "underlay.dhcp": "on"});
        let mut pooled = dhcp_network(NET, on.clone());
        pooled["IPv4Data"] =
            json!([{"AddressSpace": "local", "Pool": "10.9.0.0/24", "Gateway": "10.9.0.1/24"}]);
        d.refused(
            "/NetworkDriver.CreateNetwork",
            &pooled,
            ok,
            "--ipam-driver null",
        )
        .await;
        let mut internal = dhcp_network(NET, on.clone());
        internal["Options"]["internal"] = json!(true);
        d.refused("/NetworkDriver.CreateNetwork", &internal, ok, "--internal")
            .await;
        let mut v6 = dhcp_network(NET, on.clone());
        v6["Options"]["com.docker.network.enable_ipv6"] = json!(true);
        d.refused("/NetworkDriver.CreateNetwork", &v6, ok, "--ipv6")
            .await;
        d.refused(
            "/NetworkDriver.CreateNetwork",
            &dhcp_network(
                NET,
                json!({"parent": PARENT, "underlay.dhcp": "tries=often"}),
            ),
            ok,
            "often",
        )
        .await;
        d.refused(
            "/NetworkDriver.CreateNetwork",
            &dhcp_network(NET, json!({"parent": PARENT})),
            ok,
            "underlay.dhcp=on",
        )
        .await;
        assert_eq!(d.state_files("networks"), Vec::<String>::new());
        // No server on the wire: CreateEndpoint times out, naming the network; nothing left.
        d.ok(
            "/NetworkDriver.CreateNetwork",
            &dhcp_network(
                NET,
                json!({"parent": PARENT, "underlay.dhcp": "tries=1,wait_ms=200"}),
            ),
        )
        .await;
        let mut fixed = endpoint("e1");
        fixed["Interface"]["Address"] = json!("10.78.0.9/24");
        d.refused(
            "/NetworkDriver.CreateEndpoint",
            &fixed,
            ok,
            "static address (10.78.0.9/24)",
        )
        .await;
        let msg = d
            .refused(
                "/NetworkDriver.CreateEndpoint",
                &endpoint("e1"),
                ok,
                "no DHCP server answered",
            )
            .await;
        assert!(msg.contains(NET), "{msg}");
        assert_eq!(d.link_names(), vec![PARENT.to_string(), "lo".into()]);
        assert_eq!(d.state_files("endpoints"), Vec::<String>::new());
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET}))
            .await;
    });
}

//! VLAN parents made on demand and ipvlan endpoints, through the plugin's HTTP API. This host
//! kind's kernel has no 8021q and no ipvlan, so these are ignored in a plain run and
//! `cargo xtask docker-test` runs them in the qemu VM (`xtask::vm`, docs/vm-tests.md) with
//! `--ignored vm_`, one boot for all. dockerd itself is not run there (too slow under
//! emulation): the calls are the ones it makes, as in the other tests of this binary.

use serde_json::{json, Value};

use crate::{ip, network, root, rt, Dockerd, PARENT};

/// `ip -d -j -n NS link show dev DEV`, Null when it is absent.
fn link(d: &Dockerd, dev: &str) -> Value {
    let out = ip(&["-n", &d.ns, "-d", "-j", "link", "show", "dev", dev]);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

/// The VLAN links of the namespace, by name.
fn vlans(d: &Dockerd) -> Vec<String> {
    let mut v: Vec<String> = d
        .links()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "vlan")
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// What Docker sends after a network's endpoints went: the network, its gateway, its pool.
async fn remove_network(d: &Dockerd, id: &str, subnet: &str, gateway: &str) {
    d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": id}))
        .await;
    let pool = format!("local/{subnet}");
    d.ok(
        "/IpamDriver.ReleaseAddress",
        &json!({"PoolID": pool, "Address": gateway}),
    )
    .await;
    d.ok("/IpamDriver.ReleasePool", &json!({"PoolID": pool}))
        .await;
}

/// A container's life on network `id` as dockerd calls it: RequestAddress, CreateEndpoint,
/// Join, with the MAC dockerd gives every endpoint (the IPAM driver requires one); returns
/// the link Join named (in dockerd's namespace) and the address.
async fn start(d: &Dockerd, id: &str, ep: &str, subnet: &str) -> (String, String) {
    let mac = format!(
        "02:42:0a:00:{:02x}:{:02x}",
        ep.as_bytes()[0],
        ep.as_bytes()[1]
    );
    let a = d
        .ok(
            "/IpamDriver.RequestAddress",
            &json!({"PoolID": format!("local/{subnet}"), "Address": "",
                    "Options": {"com.docker.network.endpoint.macaddress": mac}}),
        )
        .await;
    let address = a["Address"].as_str().unwrap().to_string();
    d.ok(
        "/NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": id, "EndpointID": ep, "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": mac}, "Options": {}}),
    )
    .await;
    let j = d
        .ok(
            "/NetworkDriver.Join",
            &json!({"NetworkID": id, "EndpointID": ep, "SandboxKey": "/var/run/docker/netns/x", "Options": {}}),
        )
        .await;
    let src = j["InterfaceName"]["SrcName"].as_str().unwrap().to_string();
    (src, address)
}

/// Leave, DeleteEndpoint, ReleaseAddress: the end of a container on network `id`.
async fn stop(d: &Dockerd, id: &str, ep: &str, subnet: &str, address: &str) {
    let r = json!({"NetworkID": id, "EndpointID": ep});
    d.ok("/NetworkDriver.Leave", &r).await;
    d.ok("/NetworkDriver.DeleteEndpoint", &r).await;
    d.ok(
        "/IpamDriver.ReleaseAddress",
        &json!({"PoolID": format!("local/{subnet}"), "Address": address.split('/').next().unwrap()}),
    )
    .await;
}

const NET_A: &str = "aaaa000000000000000000000000000000000000000000000000000000000000";
const NET_B: &str = "bbbb000000000000000000000000000000000000000000000000000000000000";
const NET_U: &str = "cccc000000000000000000000000000000000000000000000000000000000000";

/// `-o parent=PARENT.10` makes VLAN 10 on the parent at CreateNetwork; a second network on the
/// same VLAN shares it; the endpoints' macvlans hang on it; it goes with DeleteNetwork of the
/// last network using it, and is made again by the next. A VLAN the user made is used and
/// never removed. Oracle: `ip -d -j link`.
#[test]
#[ignore = "needs 8021q: `cargo xtask docker-test` runs it in the VM"]
fn vm_vlan_parent_made_on_demand_and_shared() {
    if !root("vm_vlan_parent_made_on_demand_and_shared") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("vlan").await;
        let vlan_name = format!("{PARENT}.10");
        assert!(link(&d, &vlan_name).is_null());
        let (_, v) = network(&d, NET_A, "10.61.0.0/24", json!({"parent": vlan_name})).await;
        assert!(v.get("Err").is_none(), "{v}");
        let vlan = link(&d, &vlan_name);
        assert_eq!(vlan["linkinfo"]["info_kind"], "vlan", "{vlan}");
        assert_eq!(vlan["linkinfo"]["info_data"]["id"], 10, "{vlan}");
        assert_eq!(
            vlan["linkinfo"]["info_data"]["protocol"], "802.1Q",
            "{vlan}"
        );
        assert_eq!(vlan["link"], PARENT, "{vlan}");
        // A second network on the same VLAN: shared, not made twice.
        let (_, v) = network(&d, NET_B, "10.62.0.0/24", json!({"parent": vlan_name})).await;
        assert!(v.get("Err").is_none(), "{v}");
        assert_eq!(vlans(&d), vec![vlan_name.clone()]);
        assert_eq!(link(&d, &vlan_name)["ifindex"], vlan["ifindex"]);
        // Endpoints on both: macvlans on the VLAN.
        let (src_a, addr_a) = start(&d, NET_A, "ea", "10.61.0.0/24").await;
        let (src_b, addr_b) = start(&d, NET_B, "eb", "10.62.0.0/24").await;
        for (src, mac) in [(&src_a, "02:42:0a:00:65:61"), (&src_b, "02:42:0a:00:65:62")] {
            let l = link(&d, src);
            assert_eq!(l["linkinfo"]["info_kind"], "macvlan", "{l}");
            assert_eq!(l["link"], vlan_name.as_str(), "{l}");
            assert_eq!(l["address"], mac, "{l}");
        }
        stop(&d, NET_A, "ea", "10.61.0.0/24", &addr_a).await;
        stop(&d, NET_B, "eb", "10.62.0.0/24", &addr_b).await;
        assert!(link(&d, &src_a).is_null() && link(&d, &src_b).is_null());
        remove_network(&d, NET_A, "10.61.0.0/24", "10.61.0.1").await;
        assert!(
            !link(&d, &vlan_name).is_null(),
            "the VLAN went while network B uses it"
        );
        remove_network(&d, NET_B, "10.62.0.0/24", "10.62.0.1").await;
        assert!(
            link(&d, &vlan_name).is_null(),
            "the VLAN stayed after its last network: {:?}",
            d.link_names()
        );
        // Made again by the next network, removed again with it.
        let (_, v) = network(&d, NET_A, "10.61.0.0/24", json!({"parent": vlan_name})).await;
        assert!(v.get("Err").is_none(), "{v}");
        assert_eq!(vlans(&d), vec![vlan_name.clone()]);
        remove_network(&d, NET_A, "10.61.0.0/24", "10.61.0.1").await;
        assert_eq!(vlans(&d), Vec::<String>::new());

        // A VLAN the user made: used, never removed.
        let user_vlan = format!("{PARENT}.20");
        for args in [
            vec![
                "link", "add", "link", PARENT, "name", &user_vlan, "type", "vlan", "id", "20",
            ],
            vec!["link", "set", &user_vlan, "up"],
        ] {
            let mut all = vec!["-n", d.ns.as_str()];
            all.extend(args);
            assert!(ip(&all).status.success(), "ip {all:?}");
        }
        let user_index = link(&d, &user_vlan)["ifindex"].clone();
        let (_, v) = network(&d, NET_U, "10.63.0.0/24", json!({"parent": user_vlan})).await;
        assert!(v.get("Err").is_none(), "{v}");
        let (src_u, addr_u) = start(&d, NET_U, "eu", "10.63.0.0/24").await;
        assert_eq!(link(&d, &src_u)["link"], user_vlan.as_str());
        stop(&d, NET_U, "eu", "10.63.0.0/24", &addr_u).await;
        remove_network(&d, NET_U, "10.63.0.0/24", "10.63.0.1").await;
        let kept = link(&d, &user_vlan);
        assert_eq!(
            kept["ifindex"], user_index,
            "the user's VLAN was removed: {kept}"
        );
        assert_eq!(
            d.link_names(),
            vec![PARENT.to_string(), user_vlan, "lo".into(), "wire0".into()]
        );
        assert_eq!(d.state_files("networks"), Vec::<String>::new());
        assert_eq!(d.state_files("endpoints"), Vec::<String>::new());
        assert_eq!(
            d.state_files(underlay_docker::POOLS_DIR),
            Vec::<String>::new()
        );
    });
}

/// `-o ipvlan_mode=l2|l3 [-o ipvlan_flag=...]`: CreateEndpoint makes an ipvlan of that mode
/// and flag on the parent, with the parent's MAC (the one dockerd sends is the lease's key
/// only), Join names it; Leave and DeleteEndpoint remove
/// it, nothing left in the namespace or the state.
#[test]
#[ignore = "needs ipvlan: `cargo xtask docker-test` runs it in the VM"]
fn vm_ipvlan_endpoints_l2_l3() {
    if !root("vm_ipvlan_endpoints_l2_l3") {
        return;
    }
    rt().block_on(async {
        for (i, (mode, flag)) in [("l2", "bridge"), ("l3", "private")]
            .into_iter()
            .enumerate()
        {
            // A namespace each: an ipvlan mode belongs to the parent.
            let d = Dockerd::new(&format!("ipvl{i}")).await;
            let subnet = format!("10.7{i}.0.0/24");
            let (_, v) = network(
                &d,
                NET_A,
                &subnet,
                json!({"parent": PARENT, "ipvlan_mode": mode, "ipvlan_flag": flag}),
            )
            .await;
            assert!(v.get("Err").is_none(), "{mode}: {v}");
            let parent_mac = link(&d, PARENT)["address"].clone();
            let mut srcs = Vec::new();
            for ep in ["i1", "i2"] {
                let (src, addr) = start(&d, NET_A, ep, &subnet).await;
                let l = link(&d, &src);
                assert_eq!(l["linkinfo"]["info_kind"], "ipvlan", "{mode}: {l}");
                assert_eq!(l["linkinfo"]["info_data"]["mode"], mode, "{mode}: {l}");
                // iproute2 shows the flags as booleans (`"private": true`), bridge as neither.
                let data = &l["linkinfo"]["info_data"];
                let on = |f: &str| data.get(f).and_then(Value::as_bool).unwrap_or(false);
                assert_eq!(
                    (on("private"), on("vepa")),
                    (flag == "private", false),
                    "{mode} {flag}: {l}"
                );
                assert_eq!(l["link"], PARENT, "{mode}: {l}");
                assert_eq!(
                    l["address"], parent_mac,
                    "{mode}: not the parent's MAC: {l}"
                );
                srcs.push((ep, src, addr));
            }
            for (ep, src, addr) in srcs {
                stop(&d, NET_A, ep, &subnet, &addr).await;
                assert!(link(&d, &src).is_null(), "{mode}: {src} left");
            }
            let gw = format!("10.7{i}.0.1");
            remove_network(&d, NET_A, &subnet, &gw).await;
            assert_eq!(
                d.link_names(),
                vec![PARENT.to_string(), "lo".into(), "wire0".into()]
            );
            assert_eq!(d.state_files("endpoints"), Vec::<String>::new());
            assert_eq!(
                d.state_files(underlay_docker::POOLS_DIR),
                Vec::<String>::new()
            );
        }
    });
}

//! VLAN parents made on demand and ipvlan, through the plugin. This host kind's kernel has no
//! 8021q and no ipvlan, so these are ignored in a plain run and `cargo xtask cni-test` runs them
//! in the qemu VM (`xtask::vm`, docs/vm-tests.md) with `--ignored vm_`.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::{Call, Host, TempDir};
use crate::{leases, privileged};

/// `ip -d -j [-n NS] link show dev DEV`, Null when it is absent.
fn link(ns: Option<&str>, dev: &str) -> Value {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-d", "-j", "link", "show", "dev", dev])
        .output()
        .unwrap();
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

fn conf(host: &Host, dir: &TempDir, name: &str, master: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": name, "type": "underlay", "master": master,
        "stateDir": dir.path("state"),
        "ipam": { "type": "underlay-ipam", "dataDir": dir.path("ipam"),
                  "ranges": [[{ "subnet": format!("{subnet}.0/24"), "gateway": format!("{subnet}.1") }]],
                  "routes": [{ "dst": "0.0.0.0/0" }] },
        "logFile": dir.path(&format!("{}.log", host.ns.name)),
    })
}

/// `master: par0.10` makes VLAN 10 on `par0` at the network's first ADD; it stays while a
/// container uses it and goes with the last DEL; the next ADD makes it again. A VLAN the user
/// made is used and never removed.
#[test]
#[ignore = "needs 8021q: `cargo xtask cni-test` runs it in the VM"]
fn vm_vlan_parent_made_on_demand() {
    if !privileged("vm_vlan_parent_made_on_demand") {
        return;
    }
    let host = Host::new("vlan");
    let dir = TempDir::new("vlan");
    let hn = Some(host.ns.name.as_str());
    let c = conf(&host, &dir, "vlnet", "par0.10", "10.68.0");
    let (a, b) = (host.container("va"), host.container("vb"));
    assert!(link(hn, "par0.10").is_null());
    for (id, ct) in [("va", &a), ("vb", &b)] {
        let out = Call::new("ADD")
            .container(id, &ct.path())
            .stdin(c.clone())
            .run(&host);
        assert_eq!(out.code, 0, "{id}: {out:?}");
        assert_eq!(ct.addrs("eth0").len(), 1);
        assert!(ct.has_default_via("10.68.0.1"));
    }
    let vlan = link(hn, "par0.10");
    assert_eq!(vlan["linkinfo"]["info_kind"], "vlan", "{vlan}");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 10, "{vlan}");
    assert_eq!(vlan["link"], "par0", "{vlan}");
    // The containers' macvlans hang on the VLAN.
    let eth0 = link(Some(&a.name), "eth0");
    assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan", "{eth0}");
    assert_eq!(eth0["link_index"], vlan["ifindex"], "{eth0}");

    let del = |id: &str, path: &str| {
        let out = Call::new("DEL")
            .container(id, path)
            .stdin(c.clone())
            .run(&host);
        assert_eq!(out.code, 0, "{id}: {out:?}");
    };
    del("va", &a.path());
    assert!(
        !link(hn, "par0.10").is_null(),
        "the VLAN went while vb uses it"
    );
    del("vb", &b.path());
    assert!(
        link(hn, "par0.10").is_null(),
        "the VLAN stayed after the last DEL"
    );
    assert!(leases(&dir, "vlnet").is_empty());
    // Made again by the next ADD, removed again by its DEL.
    let out = Call::new("ADD")
        .container("va", &a.path())
        .stdin(c.clone())
        .run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!link(hn, "par0.10").is_null());
    del("va", &a.path());
    assert!(link(hn, "par0.10").is_null());

    // A VLAN the user made: used, never removed.
    host.ns.ip(&[
        "link", "add", "link", "par0", "name", "par0.20", "type", "vlan", "id", "20",
    ]);
    host.ns.ip(&["link", "set", "par0.20", "up"]);
    let c20 = conf(&host, &dir, "vl20", "par0.20", "10.69.0");
    let out = Call::new("ADD")
        .container("va", &a.path())
        .stdin(c20.clone())
        .run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    let out = Call::new("DEL")
        .container("va", &a.path())
        .stdin(c20)
        .run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !link(hn, "par0.20").is_null(),
        "the user's VLAN was removed"
    );
    assert_eq!(a.links(), vec!["lo".to_string()]);
}

/// `driver: ipvlan` (l2 and l3, flag private): ADD makes an ipvlan of that mode in the
/// container with its address; CHECK passes; DEL removes link and lease. A fixed MAC is error
/// 7 (ipvlan shares the parent's), with nothing left behind.
#[test]
#[ignore = "needs ipvlan: `cargo xtask cni-test` runs it in the VM"]
fn vm_ipvlan_add_del() {
    if !privileged("vm_ipvlan_add_del") {
        return;
    }
    for (i, (mode, flag)) in [("l2", "bridge"), ("l3", "private")]
        .into_iter()
        .enumerate()
    {
        // A host (and state) each: the ipvlan mode belongs to the parent.
        let host = Host::new(&format!("ipvl{i}"));
        let dir = TempDir::new(&format!("ipvl{i}"));
        let name = format!("ipv{i}");
        let mut c = conf(&host, &dir, &name, "par0", &format!("10.7{i}.0"));
        c["driver"] = "ipvlan".into();
        c["mode"] = mode.into();
        c["flag"] = flag.into();
        let ct = host.container(&format!("i{i}"));
        let out = Call::new("ADD")
            .container("ipv", &ct.path())
            .stdin(c.clone())
            .run(&host);
        assert_eq!(out.code, 0, "{mode}: {out:?}");
        let eth0 = link(Some(&ct.name), "eth0");
        assert_eq!(eth0["linkinfo"]["info_kind"], "ipvlan", "{eth0}");
        assert_eq!(eth0["linkinfo"]["info_data"]["mode"], mode, "{eth0}");
        assert_eq!(
            ct.addrs("eth0"),
            vec![out.json["ips"][0]["address"].as_str().unwrap().to_string()]
        );
        // ipvlan shares the parent's MAC.
        assert_eq!(
            ct.link_mac("eth0"),
            host.ns.link_mac("par0"),
            "{mode}: the MAC is not the parent's"
        );
        let mut check = c.clone();
        check["prevResult"] = out.json.clone();
        let out = Call::new("CHECK")
            .container("ipv", &ct.path())
            .stdin(check)
            .run(&host);
        assert_eq!(out.code, 0, "{mode}: {out:?}");
        let out = Call::new("DEL")
            .container("ipv", &ct.path())
            .stdin(c.clone())
            .run(&host);
        assert_eq!(out.code, 0, "{mode}: {out:?}");
        assert_eq!(ct.links(), vec!["lo".to_string()]);
        assert!(leases(&dir, &name).is_empty());
        // A fixed MAC: refused, nothing left.
        let out = Call::new("ADD")
            .container("ipvmac", &ct.path())
            .args("MAC=02:00:00:00:00:42")
            .stdin(c)
            .run(&host);
        assert_eq!(out.json["code"], 7, "{mode}: {out:?}");
        assert_eq!(ct.links(), vec!["lo".to_string()]);
        assert!(leases(&dir, &name).is_empty());
    }
}

/// `linkInContainer` with ipvlan l2 and a VLAN `master` inside the container (the host's
/// namespace has neither): the ipvlan is made in the container on its own `eth1.30`, with that
/// VLAN's MAC; DEL leaves the container's VLAN alone.
#[test]
#[ignore = "needs ipvlan and 8021q: `cargo xtask cni-test` runs it in the VM"]
fn vm_link_in_container_ipvlan_on_a_container_vlan() {
    if !privileged("vm_link_in_container_ipvlan_on_a_container_vlan") {
        return;
    }
    let host = Host::new("licv");
    let host_links = host.ns.links();
    let dir = TempDir::new("licv");
    let mut c = conf(&host, &dir, "licv", "eth1.30", "10.78.0");
    c["driver"] = "ipvlan".into();
    c["linkInContainer"] = true.into();
    let ct = host.container("v");
    ct.ip(&[
        "link", "add", "eth1", "type", "veth", "peer", "name", "wire1",
    ]);
    ct.ip(&[
        "link", "add", "link", "eth1", "name", "eth1.30", "type", "vlan", "id", "30",
    ]);
    for dev in ["eth1", "wire1", "eth1.30"] {
        ct.ip(&["link", "set", dev, "up"]);
    }
    let out = Call::new("ADD")
        .container("licv", &ct.path())
        .stdin(c.clone())
        .run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    let eth0 = link(Some(&ct.name), "eth0");
    assert_eq!(eth0["linkinfo"]["info_kind"], "ipvlan", "{eth0}");
    assert_eq!(eth0["link"], "eth1.30", "{eth0}");
    assert_eq!(ct.link_mac("eth0"), ct.link_mac("eth1.30"));
    assert_eq!(
        ct.addrs("eth0"),
        vec![out.json["ips"][0]["address"].as_str().unwrap().to_string()]
    );
    assert_eq!(host.ns.links(), host_links, "nothing made on the host");
    let out = Call::new("DEL")
        .container("licv", &ct.path())
        .stdin(c)
        .run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(ct.links(), vec!["eth1", "eth1.30", "lo", "wire1"]);
    assert!(leases(&dir, "licv").is_empty());
    assert_eq!(host.ns.links(), host_links);
}

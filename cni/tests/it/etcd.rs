//! `"store": "etcd"` (feature `etcd`): two "nodes" (two configs with different host names,
//! state directories and parents) on one real etcd. etcd and the plugin run in a network
//! namespace of the test's own thread (`unshare`), so that etcd's loopback port is the
//! plugin's; etcdctl is the oracle for the claims.

#[path = "../../../core/tests/it/ipam_etcd/cluster.rs"]
mod cluster;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{wait, Call, Ns, TempDir};
use crate::privileged;

/// Moves the calling thread (and every process it starts) into a new network namespace, with
/// `lo` up and veths `par0`, `par1` (the nodes' parents). It goes when the thread ends.
fn unshare_net_here() {
    // SAFETY: unshare has no memory preconditions; it changes only this thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    for args in [
        vec!["link", "set", "lo", "up"],
        vec![
            "link", "add", "par0", "type", "veth", "peer", "name", "wire0",
        ],
        vec![
            "link", "add", "par1", "type", "veth", "peer", "name", "wire1",
        ],
        vec!["link", "set", "par0", "up"],
        vec!["link", "set", "par1", "up"],
    ] {
        let out = Command::new("ip").args(&args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }
}

/// Node `n`'s config of network `etcdnet`.
fn node_conf(c: &cluster::Cluster, dir: &TempDir, n: usize) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": "etcdnet", "type": "underlay",
        "master": format!("par{n}"), "stateDir": dir.path(&format!("node{n}")),
        "ipam": {
            "type": "underlay-ipam", "store": "etcd",
            "ranges": [[{ "subnet": "10.66.0.0/24", "gateway": "10.66.0.1" }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "etcd": { "endpoints": c.endpoints(), "prefix": "/cnitest/",
                      "host": format!("node{n}"), "sliceSize": 16, "retrySeconds": 20 }
        }
    })
}

/// The oracle: every claimed address of `etcdnet` with its value (`<ctr>/<if> host=<node>`).
fn claims(c: &cluster::Cluster) -> HashMap<String, String> {
    let prefix = "/cnitest/ipam/data/etcdnet/addr/";
    let out = c.ctl(&["get", "--prefix", prefix]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .filter(|kv| kv.len() == 2)
        .map(|kv| {
            (
                kv[0].trim_start_matches(prefix).to_string(),
                kv[1].to_string(),
            )
        })
        .collect()
}

/// 32 ADDs per node at once (64 processes): no address twice, each claim stamped with its
/// node; GC on node 0 (nothing valid) releases node 0's leases and links and leaves node 1's
/// alone; STATUS is 50 with etcd unreachable; DEL releases the rest.
#[test]
fn two_nodes_on_one_etcd() {
    if !privileged("two_nodes_on_one_etcd") {
        return;
    }
    assert!(
        cluster::available("two_nodes_on_one_etcd"),
        "built with feature etcd but etcd is not installed: `cargo xtask cni-test` installs it"
    );
    unshare_net_here();
    let c = cluster::Cluster::start(1);
    let dir = TempDir::new("etcd");
    let confs = [node_conf(&c, &dir, 0), node_conf(&c, &dir, 1)];
    // Each node defines (node 0) or joins (node 1) the network first.
    let first: Vec<Ns> = (0..2).map(|n| Ns::new(&format!("ef{n}"))).collect();
    for n in 0..2 {
        let out = Call::new("ADD")
            .container(&format!("first{n}"), &first[n].path())
            .stdin(confs[n].clone())
            .run_here();
        assert_eq!(out.code, 0, "node {n}: {out:?}");
    }
    let cts: Vec<Ns> = (0..64).map(|i| Ns::new(&format!("e{i}"))).collect();
    let children: Vec<_> = cts
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            Call::new("ADD")
                .container(&format!("n{}c{i}", i % 2), &ct.path())
                .stdin(confs[i % 2].clone())
                .spawn_here()
        })
        .collect();
    let mut seen = HashSet::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = wait(child);
        assert_eq!(out.code, 0, "{i}: {out:?}");
        let addr = out.json["ips"][0]["address"].as_str().unwrap().to_string();
        assert_eq!(cts[i].addrs("eth0"), vec![addr.clone()], "{i}");
        assert!(seen.insert(addr.clone()), "{addr} handed out twice");
    }
    let all = claims(&c);
    assert_eq!(all.len(), 66, "{all:?}");
    for (i, ct) in cts.iter().enumerate() {
        let ip = ct.addrs("eth0")[0].split('/').next().unwrap().to_string();
        let value = all
            .get(&ip)
            .unwrap_or_else(|| panic!("{ip} not claimed in etcd"));
        assert!(
            value.starts_with(&format!("n{}c{i}/eth0 host=node{}", i % 2, i % 2)),
            "{ip}: {value}"
        );
    }

    // GC on node 0, nothing valid: node 0's claims and links go, node 1's stay.
    let mut gc = confs[0].clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = Call::new("GC").stdin(gc).run_here();
    assert_eq!(out.code, 0, "{out:?}");
    let left = claims(&c);
    assert_eq!(left.len(), 33, "{left:?}");
    assert!(left.values().all(|v| v.contains("host=node1")), "{left:?}");
    for (i, ct) in cts.iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                ct.link_mac("eth0").is_none(),
                "GC left container {i}'s link"
            );
        } else {
            assert_eq!(
                ct.addrs("eth0").len(),
                1,
                "GC on node 0 touched container {i}"
            );
        }
    }

    // STATUS: fine; 50 with etcd unreachable, and with the parent missing.
    let st = Call::new("STATUS").stdin(confs[1].clone()).run_here();
    assert_eq!(st.code, 0, "{st:?}");
    let mut dead = confs[1].clone();
    dead["ipam"]["etcd"]["endpoints"] = json!([cluster::dead_endpoint()]);
    dead["ipam"]["etcd"]["retrySeconds"] = 2.into();
    let st = Call::new("STATUS").stdin(dead).run_here();
    assert_eq!(st.json["code"], 50, "{st:?}");
    let mut gone = confs[1].clone();
    gone["master"] = "nosuch0".into();
    let st = Call::new("STATUS").stdin(gone).run_here();
    assert_eq!(st.json["code"], 50, "{st:?}");

    // Bad etcd blocks: error 7, nothing made, nothing claimed.
    let bad_ct = Ns::new("ebad");
    for (key, value, what) in [
        ("caFil", json!("/x"), "unknown field"),
        ("certFile", json!("/x.pem"), "keyFile"),
        ("endpoints", json!([]), "empty"),
        ("username", json!("u"), "password"),
    ] {
        let mut bad = confs[1].clone();
        bad["ipam"]["etcd"][key] = value;
        let out = Call::new("ADD")
            .container("bad", &bad_ct.path())
            .stdin(bad)
            .run_here();
        assert_eq!(out.json["code"], 7, "{key}: {out:?}");
        let all = format!("{} {}", out.json["msg"], out.json["details"]);
        assert!(all.contains(what), "{key}: {all}");
    }
    assert_eq!(bad_ct.links(), vec!["lo".to_string()]);
    assert_eq!(claims(&c).len(), 33);

    // DEL of node 1's containers releases the rest.
    for (i, ct) in cts.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let out = Call::new("DEL")
            .container(&format!("n1c{i}"), &ct.path())
            .stdin(confs[1].clone())
            .run_here();
        assert_eq!(out.code, 0, "{i}: {out:?}");
    }
    let out = Call::new("DEL")
        .container("first1", &first[1].path())
        .stdin(confs[1].clone())
        .run_here();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(claims(&c).is_empty(), "{:?}", claims(&c));
}

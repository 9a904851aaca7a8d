//! The plugin binary run the way libcni runs it (`CNI_*` environment, config on stdin), in
//! throwaway namespaces: a "host" namespace with a veth as the parent NIC, and container
//! namespaces. iproute2 (`ip -j`) is the oracle for what is in the kernel.

mod common;

use std::collections::HashSet;
use std::path::Path;

use serde_json::{json, Value};

use common::{privileged, Call, Host, Ns, TempDir};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

mod dhcp;
// The small DHCP server of the core tests (lease times of seconds), shared, not copied.
#[path = "../../../core/tests/it/dhcp_server.rs"]
#[allow(dead_code)]
mod dhcp_server;
#[cfg(feature = "etcd")]
mod etcd;
mod features;
mod vm;

/// Where Debian's containernetworking-plugins put the reference plugins.
const REFERENCE_DIR: &str = "/usr/lib/cni";

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A config like the recorded podman one (fixtures/podman-add-1.0.0.json: its delegate, with
/// `type` changed to underlay), on the test's parent and directories.
fn config(host: &Host, dir: &TempDir, name: &str, version: &str, subnet: &str) -> Value {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/podman-add-1.0.0.json")).unwrap();
    let mut c = fixture["stdin"]["delegate"].clone();
    c["cniVersion"] = version.into();
    c["name"] = name.into();
    c["type"] = "underlay".into();
    c["master"] = host.parent.as_str().into();
    c["stateDir"] = dir.path("state").into();
    c["ipam"]["dataDir"] = dir.path("ipam").into();
    c["ipam"]["ranges"] = json!([[{
        "subnet": format!("{subnet}.0/24"),
        "rangeStart": format!("{subnet}.10"),
        "rangeEnd": format!("{subnet}.99"),
        "gateway": format!("{subnet}.1"),
    }]]);
    c
}

/// Lease files of network `name` in the host-local data directory.
fn leases(dir: &TempDir, name: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.0.join("ipam").join(name))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn version_answers_with_the_supported_versions() {
    // No kernel needed.
    for v in VERSIONS {
        let out = Call::new("VERSION")
            .stdin(json!({ "cniVersion": v }))
            .run_here();
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.json["cniVersion"], v);
        let supported: Vec<&str> = out.json["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(supported, VERSIONS);
    }
    let out = Call::new("VERSION").stdin_raw("").run_here();
    assert_eq!(out.code, 0, "{out:?}");
}

/// ADD, CHECK, DEL (twice, and with an empty CNI_NETNS) for every config version, checked
/// with iproute2 inside the container.
#[test]
fn add_check_del_for_every_version() {
    root_or_skip!("add_check_del_for_every_version");
    let host = Host::new("acd");
    let dir = TempDir::new("acd");
    for (i, v) in VERSIONS.iter().enumerate() {
        let name = format!("net{i}");
        let conf = config(&host, &dir, &name, v, &format!("10.50.{i}"));
        let ct = host.container(&format!("c{i}"));
        let add = Call::new("ADD")
            .container(&format!("ctr{i}"), &ct.path())
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(add.code, 0, "{v}: {add:?}");
        let r = &add.json;
        assert_eq!(r["cniVersion"], *v);
        assert_eq!(r["interfaces"][0]["name"], "eth0");
        assert_eq!(r["interfaces"][0]["sandbox"], ct.path());
        assert_eq!(r["ips"][0]["address"], format!("10.50.{i}.10/24"));
        assert_eq!(r["ips"][0]["gateway"], format!("10.50.{i}.1"));
        assert_eq!(r["ips"][0]["interface"], 0);
        assert_eq!(r["routes"], json!([{ "dst": "0.0.0.0/0" }]));
        if v.starts_with("0.") {
            assert_eq!(r["ips"][0]["version"], "4", "{v}");
        } else {
            assert!(r["ips"][0].get("version").is_none(), "{v}");
        }
        // The oracle.
        let mac = r["interfaces"][0]["mac"].as_str().unwrap();
        assert_eq!(ct.link_mac("eth0").as_deref(), Some(mac));
        assert_eq!(ct.addrs("eth0"), vec![format!("10.50.{i}.10/24")]);
        assert!(ct.has_default_via(&format!("10.50.{i}.1")), "{v}");
        assert_eq!(leases(&dir, &name), vec![format!("10.50.{i}.10")]);

        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r.clone();
        let check = Call::new("CHECK")
            .container(&format!("ctr{i}"), &ct.path())
            .stdin(with_prev.clone())
            .run(&host);
        if v.starts_with("0.3") {
            assert_eq!(check.json["code"], 1, "{v}: CHECK before 0.4.0: {check:?}");
        } else {
            assert_eq!(check.code, 0, "{v}: {check:?}");
            // CHECK sees an address that went away.
            ct.ip(&["addr", "del", &format!("10.50.{i}.10/24"), "dev", "eth0"]);
            let check = Call::new("CHECK")
                .container(&format!("ctr{i}"), &ct.path())
                .stdin(with_prev.clone())
                .run(&host);
            assert_ne!(check.code, 0, "{v}: {check:?}");
            assert!(
                check.json["msg"].as_str().unwrap().contains("missing"),
                "{check:?}"
            );
        }

        if *v == "1.1.0" {
            // The link already gone (deleted behind the plugin's back): DEL still succeeds.
            ct.ip(&["link", "del", "eth0"]);
        }
        let del = Call::new("DEL")
            .container(&format!("ctr{i}"), &ct.path())
            .stdin(with_prev.clone())
            .run(&host);
        assert_eq!(del.code, 0, "{v}: {del:?}");
        assert_eq!(del.stdout, "", "DEL prints nothing");
        assert!(ct.link_mac("eth0").is_none(), "{v}: link left behind");
        assert!(leases(&dir, &name).is_empty(), "{v}: lease left behind");
        // Again, and as containerd sends it (empty CNI_NETNS): still success.
        for netns in [ct.path(), String::new()] {
            let del = Call::new("DEL")
                .container(&format!("ctr{i}"), &netns)
                .stdin(with_prev.clone())
                .run(&host);
            assert_eq!(del.code, 0, "{v}: {del:?}");
        }
    }
}

/// What podman sends (fixtures/podman-add-1.0.0.json: `IP=` and `MAC=` in CNI_ARGS) and what
/// containerd sends on DEL (fixtures/containerd-del-empty-netns.json: empty CNI_NETNS, after
/// the namespace is gone).
#[test]
fn podman_and_containerd_calls() {
    root_or_skip!("podman_and_containerd_calls");
    let host = Host::new("rt");
    let dir = TempDir::new("rt");
    let podman: Value =
        serde_json::from_str(include_str!("../fixtures/podman-add-1.0.0.json")).unwrap();
    let mut conf = config(&host, &dir, "hcfnet", "1.0.0", "10.219.0");
    conf["capabilities"] = podman["stdin"]["capabilities"].clone();
    // podman with every capability (fixtures/podman-capabilities-add.json) sends
    // `runtimeConfig.aliases`, which this plugin does not use: accepted, ignored.
    let caps: Value =
        serde_json::from_str(include_str!("../fixtures/podman-capabilities-add.json")).unwrap();
    let mut with_caps = config(&host, &dir, "hcfnet", "1.0.0", "10.219.0");
    with_caps["capabilities"] = caps["stdin"]["capabilities"].clone();
    with_caps["runtimeConfig"] = caps["stdin"]["runtimeConfig"].clone();
    let ct0 = host.container("caps");
    let add = Call::new("ADD")
        .container(
            caps["env"]["CNI_CONTAINERID"].as_str().unwrap(),
            &ct0.path(),
        )
        .args(caps["env"]["CNI_ARGS"].as_str().unwrap())
        .stdin(with_caps.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    let del = Call::new("DEL")
        .container(
            caps["env"]["CNI_CONTAINERID"].as_str().unwrap(),
            &ct0.path(),
        )
        .stdin(with_caps)
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    let ct = host.container("pm");
    let env = &podman["env"];
    let add = Call::new("ADD")
        .container(env["CNI_CONTAINERID"].as_str().unwrap(), &ct.path())
        .args(env["CNI_ARGS"].as_str().unwrap())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    // The same answer as the reference plugins gave, but for the sandbox path.
    let mut expected = podman["result"].clone();
    expected["interfaces"][0]["sandbox"] = ct.path().into();
    assert_eq!(add.json, expected);
    assert_eq!(ct.link_mac("eth0").as_deref(), Some("f6:a9:f4:44:db:73"));
    assert_eq!(ct.addrs("eth0"), vec!["10.219.0.10/24".to_string()]);

    // containerd: the namespace is gone by DEL time, and CNI_NETNS is empty.
    let containerd: Value =
        serde_json::from_str(include_str!("../fixtures/containerd-del-empty-netns.json")).unwrap();
    assert_eq!(containerd["env"]["CNI_NETNS"], "");
    let ct2 = host.container("cd");
    let add = Call::new("ADD")
        .container("default-c1", &ct2.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    drop(ct2);
    let mut del_conf = conf.clone();
    del_conf["prevResult"] = add.json.clone();
    let del = Call::new("DEL")
        .container("default-c1", "")
        .stdin(del_conf)
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    assert_eq!(leases(&dir, "hcfnet"), vec!["10.219.0.10".to_string()]);
}

/// Each bad config or environment gets its spec code (error JSON on stdout, exit non-zero)
/// and leaves nothing behind.
#[test]
fn bad_configs_and_environments_get_their_codes() {
    root_or_skip!("bad_configs_and_environments_get_their_codes");
    let host = Host::new("bad");
    let dir = TempDir::new("bad");
    let good = config(&host, &dir, "badnet", "1.0.0", "10.60.0");
    let ct = host.container("b");
    let good_but = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let add_call = |c: Value| Call::new("ADD").container("bad1", &ct.path()).stdin(c);
    let cases: Vec<(&str, Call, u64)> = vec![
        (
            "not JSON",
            add_call(Value::Null).stdin_raw("{\"cniVersion\": "),
            6,
        ),
        (
            "version 0.2.0",
            add_call(good_but(&|c| c["cniVersion"] = "0.2.0".into())),
            1,
        ),
        (
            "version 2.0.0",
            add_call(good_but(&|c| c["cniVersion"] = "2.0.0".into())),
            1,
        ),
        (
            "no master",
            add_call(good_but(&|c| {
                c.as_object_mut().unwrap().remove("master");
            })),
            7,
        ),
        (
            "bad mode",
            add_call(good_but(&|c| c["mode"] = "fast".into())),
            7,
        ),
        (
            "bad subnet",
            add_call(good_but(&|c| {
                c["ipam"]["ranges"][0][0]["subnet"] = "10.60.0.300/24".into()
            })),
            7,
        ),
        (
            "range outside",
            add_call(good_but(&|c| {
                c["ipam"]["ranges"][0][0]["rangeEnd"] = "10.61.0.9".into()
            })),
            7,
        ),
        (
            "ipam type",
            add_call(good_but(&|c| c["ipam"]["type"] = "dhcp".into())),
            7,
        ),
        (
            "bad announce",
            add_call(good_but(&|c| c["announce"] = "loud".into())),
            7,
        ),
        (
            "hostAccess a string",
            add_call(good_but(&|c| c["hostAccess"] = "yes".into())),
            7,
        ),
        (
            "hostAccess unknown key",
            add_call(good_but(&|c| c["hostAccess"] = json!({"adress": true}))),
            7,
        ),
        (
            "hostAccess bad address",
            add_call(good_but(&|c| {
                c["hostAccess"] = json!({"address": "10.60.0.x"})
            })),
            7,
        ),
        (
            "mtu a string",
            add_call(good_but(&|c| c["mtu"] = "big".into())),
            7,
        ),
        (
            "missing parent link",
            add_call(good_but(&|c| c["master"] = "nosuch0".into())),
            7,
        ),
        (
            "default route via another gateway",
            add_call(good_but(&|c| {
                c["ipam"]["routes"] = json!([{ "dst": "0.0.0.0/0", "gw": "10.60.0.254" }])
            })),
            7,
        ),
        ("no CNI_COMMAND", add_call(good.clone()).command(""), 4),
        ("unknown command", add_call(good.clone()).command("FROB"), 4),
        (
            "no CNI_NETNS",
            Call::new("ADD").container("bad1", "").stdin(good.clone()),
            4,
        ),
        ("bad CNI_IFNAME", add_call(good.clone()).ifname("a/b"), 4),
        ("bad CNI_ARGS", add_call(good.clone()).args("IP"), 4),
        (
            "netns gone",
            Call::new("ADD")
                .container("bad1", "/run/netns/ul-cni-nosuch")
                .stdin(good.clone()),
            3,
        ),
        (
            "STATUS at 1.0.0",
            Call::new("STATUS").stdin(good.clone()),
            1,
        ),
        ("GC at 1.0.0", Call::new("GC").stdin(good.clone()), 1),
        (
            "CHECK without prevResult",
            Call::new("CHECK")
                .container("bad1", &ct.path())
                .stdin(good.clone()),
            7,
        ),
    ];
    for (what, call, code) in cases {
        let out = call.run(&host);
        assert_ne!(out.code, 0, "{what}: {out:?}");
        assert_eq!(out.json["code"], code, "{what}: {out:?}");
        assert!(
            out.json["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(out.json["cniVersion"].is_string(), "{what}");
        assert!(
            out.stderr.contains("underlay: error"),
            "{what}: logs go to stderr: {out:?}"
        );
        assert_eq!(ct.links(), vec!["lo".to_string()], "{what}: left a link");
        assert!(leases(&dir, "badnet").is_empty(), "{what}: left a lease");
        assert!(
            !dir.0.join("state/networks/badnet.conf").exists(),
            "{what}: defined the network"
        );
    }
    // A network defined once cannot be redefined under its name: the message says what differs.
    let first = Call::new("ADD")
        .container("ok1", &ct.path())
        .stdin(good.clone())
        .run(&host);
    assert_eq!(first.code, 0, "{first:?}");
    // An address outside the range: refused, nothing made, the first lease untouched.
    let ct3 = host.container("b3");
    let out = Call::new("ADD")
        .container("ok3", &ct3.path())
        .args("IgnoreUnknown=1;IP=10.60.0.200")
        .stdin(good.clone())
        .run(&host);
    assert_eq!(out.json["code"], 7, "{out:?}");
    assert_eq!(ct3.links(), vec!["lo".to_string()]);
    assert_eq!(leases(&dir, "badnet"), vec!["10.60.0.10".to_string()]);
    let changed = good_but(&|c| c["mtu"] = 1400.into());
    let ct2 = host.container("b2");
    let out = Call::new("ADD")
        .container("ok2", &ct2.path())
        .stdin(changed)
        .run(&host);
    assert_eq!(out.json["code"], 7, "{out:?}");
    assert!(
        out.json["details"]
            .as_str()
            .unwrap()
            .contains("MTU: stored the parent's, given 1400"),
        "{out:?}"
    );
    assert_eq!(ct2.links(), vec!["lo".to_string()]);
    assert_eq!(leases(&dir, "badnet"), vec!["10.60.0.10".to_string()]);
}

/// STATUS (1.1.0) and GC: GC releases what is not in `cni.dev/valid-attachments`.
#[test]
fn status_and_gc() {
    root_or_skip!("status_and_gc");
    let host = Host::new("gc");
    let dir = TempDir::new("gc");
    let mut conf = config(&host, &dir, "gcnet", "1.1.0", "10.70.0");
    conf["logFile"] = dir.path("plugin.log").into();
    let st = Call::new("STATUS").stdin(conf.clone()).run(&host);
    assert_eq!(st.code, 0, "{st:?}");
    let mut gone = conf.clone();
    gone["master"] = "nosuch0".into();
    let st = Call::new("STATUS").stdin(gone).run(&host);
    assert_eq!(st.json["code"], 50, "{st:?}");

    let a = host.container("ga");
    let b = host.container("gb");
    for (id, ct) in [("keep", &a), ("drop", &b)] {
        let add = Call::new("ADD")
            .container(id, &ct.path())
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(add.code, 0, "{add:?}");
    }
    assert_eq!(leases(&dir, "gcnet").len(), 2);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
    let out = Call::new("GC").stdin(gc).run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(leases(&dir, "gcnet"), vec!["10.70.0.10".to_string()]);
    assert!(a.link_mac("eth0").is_some());
    assert!(
        b.link_mac("eth0").is_none(),
        "GC left the dropped attachment's link"
    );
    // The log file: a line per call (STATUS, STATUS that failed, 2 ADDs, GC).
    let log = std::fs::read_to_string(dir.0.join("plugin.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "{log}");
    assert!(
        lines[1].contains("STATUS") && lines[1].contains("error 50"),
        "{log}"
    );
    assert!(
        lines[2].contains("ADD container=keep ifname=eth0") && lines[2].ends_with(": ok"),
        "{log}"
    );
}

/// Waits for the ADDs of `children` (one per container of `cts`): each succeeded, and its
/// container has the address of its result, one that none of the others nor `seen` has.
fn each_its_own_address(children: Vec<std::process::Child>, cts: &[Ns], mut seen: HashSet<String>) {
    for (i, child) in children.into_iter().enumerate() {
        let out = common::wait(child);
        assert_eq!(out.code, 0, "{i}: {out:?}");
        let addr = out.json["ips"][0]["address"].as_str().unwrap().to_string();
        assert_eq!(cts[i].addrs("eth0"), vec![addr.clone()]);
        assert!(seen.insert(addr.clone()), "{addr} handed out twice");
    }
}

/// Separate plugin processes adding at once never hand out one address twice.
#[test]
fn concurrent_adds_never_share_an_address() {
    root_or_skip!("concurrent_adds_never_share_an_address");
    let host = Host::new("cc");
    let dir = TempDir::new("cc");
    let conf = config(&host, &dir, "ccnet", "1.0.0", "10.80.0");
    let cts: Vec<_> = (0..16).map(|i| host.container(&format!("k{i}"))).collect();
    let children: Vec<_> = cts
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            Call::new("ADD")
                .container(&format!("cc{i}"), &ct.path())
                .stdin(conf.clone())
                .spawn(&host)
        })
        .collect();
    each_its_own_address(children, &cts, HashSet::new());
    assert_eq!(leases(&dir, "ccnet").len(), 16);
}

/// An existing host-local data directory is adopted in place: its leases stay taken, and the
/// plugin releases them on DEL.
#[test]
fn host_local_data_dir_is_adopted() {
    root_or_skip!("host_local_data_dir_is_adopted");
    let host = Host::new("hl");
    let dir = TempDir::new("hl");
    let conf = config(&host, &dir, "hlnet", "1.0.0", "10.90.0");
    // What host-local left: a lease and its cursor.
    let net_dir = dir.0.join("ipam").join("hlnet");
    let mut conf = conf;
    // A state directory whose parents do not exist yet is made (a fresh host).
    conf["stateDir"] = dir.path("fresh/state").into();
    std::fs::create_dir_all(&net_dir).unwrap();
    std::fs::write(net_dir.join("10.90.0.10"), "oldctr\r\neth0").unwrap();
    std::fs::write(net_dir.join("last_reserved_ip.0"), "10.90.0.10").unwrap();
    let ct = host.container("h");
    let add = Call::new("ADD")
        .container("newctr", &ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json["ips"][0]["address"], "10.90.0.11/24");
    assert_eq!(
        std::fs::read_to_string(net_dir.join("10.90.0.11")).unwrap(),
        "newctr\r\neth0"
    );
    // The old container goes away under the new plugin.
    let del = Call::new("DEL")
        .container("oldctr", "")
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    assert_eq!(leases(&dir, "hlnet"), vec!["10.90.0.11".to_string()]);
}

/// `underlay-ipam` (the IPAM-only role, by argv[0]): addresses in host-local's layout.
#[test]
fn ipam_only_role() {
    root_or_skip!("ipam_only_role");
    let dir = TempDir::new("ipam");
    let bin = dir.0.join("bin");
    let install = std::process::Command::new(common::BIN)
        .args(["install", bin.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(install.status.success(), "{install:?}");
    let ipam_bin = bin.join("underlay-ipam");
    assert!(bin.join("underlay").exists());
    let conf = json!({
        "cniVersion": "0.4.0", "name": "ipnet", "type": "macvlan", "master": "unused",
        "ipam": { "type": "underlay-ipam", "subnet": "10.95.0.0/24", "rangeStart": "10.95.0.20",
                  "dataDir": dir.path("ipam"), "routes": [{ "dst": "0.0.0.0/0" }] }
    });
    let add = Call::new("ADD")
        .container("ip1", "/proc/self/ns/net")
        .stdin(conf.clone())
        .binary(&ipam_bin)
        .run_here();
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(
        add.json,
        json!({ "cniVersion": "0.4.0", "dns": {},
                "ips": [{ "version": "4", "address": "10.95.0.20/24", "gateway": "10.95.0.1" }],
                "routes": [{ "dst": "0.0.0.0/0" }] })
    );
    assert_eq!(leases(&dir, "ipnet"), vec!["10.95.0.20".to_string()]);
    let del = Call::new("DEL")
        .container("ip1", "")
        .stdin(conf.clone())
        .binary(&ipam_bin)
        .run_here();
    assert_eq!(del.code, 0, "{del:?}");
    assert!(leases(&dir, "ipnet").is_empty());

    // CHECK finds the lease; GC (1.1.0) releases what is not valid.
    let mut v11 = conf.clone();
    v11["cniVersion"] = "1.1.0".into();
    let ipam_call = |command: &str, id: &str, conf: &Value| {
        Call::new(command)
            .container(id, "/proc/self/ns/net")
            .stdin(conf.clone())
            .binary(&ipam_bin)
            .run_here()
    };
    for id in ["keep", "drop"] {
        let add = ipam_call("ADD", id, &v11);
        assert_eq!(add.code, 0, "{add:?}");
    }
    let check = ipam_call("CHECK", "keep", &v11);
    assert_eq!(check.code, 0, "{check:?}");
    let check = ipam_call("CHECK", "nobody", &v11);
    assert_eq!(check.json["code"], 3, "{check:?}");
    v11["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
    let gc = ipam_call("GC", "", &v11);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert_eq!(leases(&dir, "ipnet"), vec!["10.95.0.21".to_string()]);
}

/// The reference plugins (Debian's containernetworking-plugins: macvlan + host-local) as the
/// oracle for the result's shape: on the same config, the same answer but for MAC and sandbox.
#[test]
fn results_match_the_reference_plugins() {
    root_or_skip!("results_match_the_reference_plugins");
    let reference = Path::new(REFERENCE_DIR).join("macvlan");
    if !reference.exists() {
        eprintln!("SKIPPED results_match_the_reference_plugins: {} is missing (`cargo xtask cni-test` installs containernetworking-plugins)", reference.display());
        return;
    }
    let host = Host::new("ref");
    // The reference plugins speak up to 1.0.0.
    for (i, v) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"].iter().enumerate() {
        let ours_dir = TempDir::new("refu");
        let theirs_dir = TempDir::new("refr");
        let mut conf = config(&host, &ours_dir, "refnet", v, &format!("10.51.{i}"));
        conf["ipam"]["routes"] = json!([{ "dst": "0.0.0.0/0" }, { "dst": "192.168.50.0/24" }]);
        let mut theirs = conf.clone();
        theirs["type"] = "macvlan".into();
        theirs["ipam"]["type"] = "host-local".into();
        theirs["ipam"]["dataDir"] = theirs_dir.path("ipam").into();
        let (a, b) = (host.container("ra"), host.container("rb"));
        let ours = Call::new("ADD")
            .container("refctr", &a.path())
            .stdin(conf.clone())
            .run(&host);
        let theirs_out = Call::new("ADD")
            .container("refctr", &b.path())
            .cni_path(REFERENCE_DIR)
            .binary(&reference)
            .stdin(theirs.clone())
            .run(&host);
        assert_eq!(ours.code, 0, "{v}: {ours:?}");
        assert_eq!(theirs_out.code, 0, "{v}: {theirs_out:?}");
        let mut expected = theirs_out.json.clone();
        expected["interfaces"][0]["mac"] = ours.json["interfaces"][0]["mac"].clone();
        expected["interfaces"][0]["sandbox"] = a.path().into();
        assert_eq!(ours.json, expected, "{v}");
        // And the same in the kernel: addresses and routes.
        assert_eq!(a.addrs("eth0"), b.addrs("eth0"), "{v}");
        assert_eq!(a.routes("-4"), b.routes("-4"), "{v}");
        let del = Call::new("DEL")
            .container("refctr", &a.path())
            .stdin(conf)
            .run(&host);
        assert_eq!(del.code, 0, "{v}: {del:?}");
    }
}

/// A range set over two subnets (host-local's range set): underlay takes the first range,
/// then goes on into the second, each address with its own range's prefix and gateway, and
/// answers and configures as the reference macvlan + host-local do on the same config.
#[test]
fn a_range_set_over_two_subnets_matches_the_reference_plugins() {
    root_or_skip!("a_range_set_over_two_subnets_matches_the_reference_plugins");
    let reference = Path::new(REFERENCE_DIR).join("macvlan");
    if !reference.exists() {
        eprintln!("SKIPPED a_range_set_over_two_subnets_matches_the_reference_plugins: {} is missing (`cargo xtask cni-test` installs containernetworking-plugins)", reference.display());
        return;
    }
    let host = Host::new("rs2");
    let ours_dir = TempDir::new("rs2u");
    let theirs_dir = TempDir::new("rs2r");
    let mut conf = config(&host, &ours_dir, "rs2net", "1.0.0", "10.54.0");
    conf["ipam"]["ranges"] = json!([[
        { "subnet": "10.54.0.0/24", "rangeStart": "10.54.0.10", "rangeEnd": "10.54.0.11" },
        { "subnet": "10.54.8.0/22", "rangeStart": "10.54.9.10", "rangeEnd": "10.54.9.20",
          "gateway": "10.54.11.254" }
    ]]);
    conf["ipam"]["routes"] = json!([{ "dst": "0.0.0.0/0" }]);
    let mut theirs = conf.clone();
    theirs["type"] = "macvlan".into();
    theirs["ipam"]["type"] = "host-local".into();
    theirs["ipam"]["dataDir"] = theirs_dir.path("ipam").into();
    let want = [
        ("10.54.0.10/24", "10.54.0.1"),
        ("10.54.0.11/24", "10.54.0.1"),
        ("10.54.9.10/22", "10.54.11.254"),
    ];
    let mut ours_cts = Vec::new();
    for (i, (addr, gw)) in want.iter().enumerate() {
        let (a, b) = (
            host.container(&format!("u{i}")),
            host.container(&format!("r{i}")),
        );
        let id = format!("rs2ctr{i}");
        let ours = Call::new("ADD")
            .container(&id, &a.path())
            .stdin(conf.clone())
            .run(&host);
        let theirs_out = Call::new("ADD")
            .container(&id, &b.path())
            .cni_path(REFERENCE_DIR)
            .binary(&reference)
            .stdin(theirs.clone())
            .run(&host);
        assert_eq!(ours.code, 0, "{i}: {ours:?}");
        assert_eq!(theirs_out.code, 0, "{i}: {theirs_out:?}");
        assert_eq!(ours.json["ips"][0]["address"], *addr, "{ours:?}");
        assert_eq!(ours.json["ips"][0]["gateway"], *gw, "{ours:?}");
        let mut expected = theirs_out.json.clone();
        expected["interfaces"][0]["mac"] = ours.json["interfaces"][0]["mac"].clone();
        expected["interfaces"][0]["sandbox"] = a.path().into();
        assert_eq!(ours.json, expected, "{i}");
        // The kernel: the address with its range's prefix, the default route via its gateway.
        assert_eq!(a.addrs("eth0"), vec![addr.to_string()]);
        assert_eq!(a.addrs("eth0"), b.addrs("eth0"), "{i}");
        assert_eq!(a.routes("-4"), b.routes("-4"), "{i}");
        assert!(a.has_default_via(gw), "{i}");
        ours_cts.push((id, a));
    }
    // One cursor for the set, in the second subnet, as host-local's.
    let cursor =
        |d: &TempDir| std::fs::read_to_string(d.0.join("ipam/rs2net/last_reserved_ip.0")).unwrap();
    assert_eq!(cursor(&ours_dir), "10.54.9.10");
    assert_eq!(cursor(&ours_dir), cursor(&theirs_dir));
    assert_eq!(
        leases(&ours_dir, "rs2net"),
        vec!["10.54.0.10", "10.54.0.11", "10.54.9.10"]
    );
    for (id, ct) in &ours_cts {
        let del = Call::new("DEL")
            .container(id, &ct.path())
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(del.code, 0, "{del:?}");
    }
    assert!(leases(&ours_dir, "rs2net").is_empty());
}

/// underlay and the reference host-local plugin allocating at once on one data directory
/// (a host moving between them): no address twice.
#[test]
fn concurrent_adds_with_host_local_on_one_data_dir() {
    root_or_skip!("concurrent_adds_with_host_local_on_one_data_dir");
    let reference = Path::new(REFERENCE_DIR).join("macvlan");
    if !reference.exists() {
        eprintln!("SKIPPED concurrent_adds_with_host_local_on_one_data_dir: {} is missing (`cargo xtask cni-test` installs containernetworking-plugins)", reference.display());
        return;
    }
    let host = Host::new("mix");
    let dir = TempDir::new("mix");
    let conf = config(&host, &dir, "mixnet", "1.0.0", "10.81.0");
    let mut theirs = conf.clone();
    theirs["type"] = "macvlan".into();
    theirs["ipam"]["type"] = "host-local".into();
    // underlay defines the network first (host-local needs no definition).
    let first_ct = host.container("m");
    let first = Call::new("ADD")
        .container("mix-first", &first_ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(first.code, 0, "{first:?}");
    let cts: Vec<_> = (0..16).map(|i| host.container(&format!("m{i}"))).collect();
    let children: Vec<_> = cts
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            let call = Call::new("ADD").container(&format!("mix{i}"), &ct.path());
            if i % 2 == 0 {
                call.stdin(conf.clone()).spawn(&host)
            } else {
                call.cni_path(REFERENCE_DIR)
                    .binary(&reference)
                    .stdin(theirs.clone())
                    .spawn(&host)
            }
        })
        .collect();
    let first_addr = first.json["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    each_its_own_address(children, &cts, HashSet::from([first_addr]));
    assert_eq!(leases(&dir, "mixnet").len(), 17);
}

/// `mtu`, the ipam `routes` beyond the default, a dual-stack range set: the kernel has them,
/// CHECK passes; an IPv4-only endpoint has no IPv6 at all.
#[test]
fn mtu_routes_and_dual_stack() {
    root_or_skip!("mtu_routes_and_dual_stack");
    let host = Host::new("mr");
    let dir = TempDir::new("mr");
    let mut conf = config(&host, &dir, "mrnet", "1.1.0", "10.52.0");
    conf["mtu"] = 1400.into();
    conf["ipam"]["routes"] = json!([
        { "dst": "0.0.0.0/0" },
        { "dst": "192.168.50.0/24" },
        { "dst": "192.168.60.0/24", "gw": "10.52.0.5" }
    ]);
    let ct = host.container("v4");
    let add = Call::new("ADD")
        .container("mr4", &ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json["routes"], conf["ipam"]["routes"]);
    assert_eq!(ct.mtu("eth0"), Some(1400));
    assert_eq!(
        ct.routes("-4"),
        vec![
            "10.52.0.0/24".to_string(),
            "192.168.50.0/24 via 10.52.0.1".into(),
            "192.168.60.0/24 via 10.52.0.5".into(),
            "default via 10.52.0.1".into(),
        ]
    );
    // IPv4 only: not even a link-local IPv6 address.
    assert_eq!(ct.all_addrs("eth0"), vec!["10.52.0.10/24".to_string()]);
    let mut check = conf.clone();
    check["prevResult"] = add.json.clone();
    let out = Call::new("CHECK")
        .container("mr4", &ct.path())
        .stdin(check.clone())
        .run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    ct.ip(&["route", "del", "192.168.60.0/24"]);
    let out = Call::new("CHECK")
        .container("mr4", &ct.path())
        .stdin(check)
        .run(&host);
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap()
            .contains("192.168.60.0/24"),
        "{out:?}"
    );

    // Dual stack: one address per range set, IPv6 kept.
    let mut dual = config(&host, &dir, "dsnet", "1.0.0", "10.53.0");
    dual["ipam"]["ranges"]
        .as_array_mut()
        .unwrap()
        .push(json!([{ "subnet": "fd00:53::/64", "rangeStart": "fd00:53::10", "rangeEnd": "fd00:53::99" }]));
    dual["ipam"]["routes"] = json!([{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }]);
    let ct6 = host.container("v6");
    let add = Call::new("ADD")
        .container("ds", &ct6.path())
        .stdin(dual)
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json["ips"][1]["address"], "fd00:53::10/64");
    assert_eq!(add.json["ips"][1]["gateway"], "fd00:53::1");
    let all = ct6.all_addrs("eth0");
    assert!(all.contains(&"fd00:53::10/64".to_string()), "{all:?}");
    assert!(
        ct6.routes("-6")
            .contains(&"default via fd00:53::1".to_string()),
        "{:?}",
        ct6.routes("-6")
    );
}

/// `underlay-ipam` under the reference macvlan plugin, found on CNI_PATH as libcni finds it.
#[test]
fn underlay_ipam_under_the_reference_macvlan() {
    root_or_skip!("underlay_ipam_under_the_reference_macvlan");
    let reference = Path::new(REFERENCE_DIR).join("macvlan");
    if !reference.exists() {
        eprintln!("SKIPPED underlay_ipam_under_the_reference_macvlan: {} is missing (`cargo xtask cni-test` installs containernetworking-plugins)", reference.display());
        return;
    }
    let host = Host::new("ri");
    let dir = TempDir::new("ri");
    let bin = dir.0.join("bin");
    let install = std::process::Command::new(common::BIN)
        .args(["install", bin.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(install.status.success(), "{install:?}");
    let mut conf = config(&host, &dir, "rinet", "1.0.0", "10.54.0");
    conf["type"] = "macvlan".into();
    conf["ipam"]["type"] = "underlay-ipam".into();
    let ct = host.container("i");
    let call = |c: &str, netns: &str| {
        Call::new(c)
            .container("rictr", netns)
            .cni_path(bin.to_str().unwrap())
            .binary(&reference)
            .stdin(conf.clone())
    };
    let add = call("ADD", &ct.path()).run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json["ips"][0]["address"], "10.54.0.10/24");
    assert_eq!(ct.addrs("eth0"), vec!["10.54.0.10/24".to_string()]);
    assert!(ct.has_default_via("10.54.0.1"));
    assert_eq!(leases(&dir, "rinet"), vec!["10.54.0.10".to_string()]);
    let del = call("DEL", &ct.path()).run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(leases(&dir, "rinet").is_empty());
}

/// A panic inside the plugin reaches the runtime as the spec's error object (code 999), not
/// as a crash with nothing on stdout.
#[test]
fn a_panic_is_an_error_object() {
    let out = Call::new("ADD")
        .env("UNDERLAY_CNI_TEST_PANIC", "1")
        .stdin(json!({ "cniVersion": "1.0.0", "name": "n" }))
        .run_here();
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["code"], 999, "{out:?}");
    assert!(
        out.json["details"]
            .as_str()
            .unwrap()
            .contains("UNDERLAY_CNI_TEST_PANIC"),
        "{out:?}"
    );
}

/// `install` without a directory is a usage error; `--version` names the spec versions.
#[test]
fn install_usage_and_version() {
    let out = std::process::Command::new(common::BIN)
        .arg("install")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    let out = std::process::Command::new(common::BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1.1.0"),
        "{out:?}"
    );
}

/// Chained after another plugin (ADD with `prevResult`), the result keeps that plugin's
/// interfaces and addresses and numbers its own after them; `"store": "local"` keeps the
/// leases in the state directory instead of host-local's files.
#[test]
fn chained_add_and_the_local_store() {
    root_or_skip!("chained_add_and_the_local_store");
    let host = Host::new("ch");
    let dir = TempDir::new("ch");
    let mut conf = config(&host, &dir, "chnet", "0.4.0", "10.56.0");
    conf["ipam"]["store"] = "local".into();
    // Directories that do not exist yet, parents included (a fresh host).
    conf["stateDir"] = dir.path("fresh/var/lib/underlay").into();
    conf["prevResult"] = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{ "name": "dummy0" }],
        "ips": [{ "version": "4", "interface": 0, "address": "192.0.2.1/32" }],
    });
    let ct = host.container("c");
    let add = Call::new("ADD")
        .container("chctr", &ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json["interfaces"][0]["name"], "dummy0");
    assert_eq!(add.json["interfaces"][1]["name"], "eth0");
    assert_eq!(add.json["ips"][1]["address"], "10.56.0.10/24");
    assert_eq!(add.json["ips"][1]["interface"], 1);
    assert_eq!(add.json["ips"][1]["version"], "4");
    assert!(
        leases(&dir, "chnet").is_empty(),
        "host-local's files are not used"
    );
    assert!(dir.0.join("fresh/var/lib/underlay/ipam").exists());
    // A second container gets the next address from the same (local) store.
    let ct2 = host.container("d");
    let add2 = Call::new("ADD")
        .container("chctr2", &ct2.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add2.json["ips"][1]["address"], "10.56.0.11/24", "{add2:?}");
    for (id, ct) in [("chctr", &ct), ("chctr2", &ct2)] {
        let del = Call::new("DEL")
            .container(id, &ct.path())
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(del.code, 0, "{del:?}");
        assert!(ct.link_mac("eth0").is_none());
    }
}

/// A container on two underlay networks (podman `--network a,b`, Multus): both ADDs succeed,
/// the first network carries the default route, the second's result and kernel state have
/// none; a config without a default route gets none (as host-local).
#[test]
fn a_container_on_two_networks() {
    root_or_skip!("a_container_on_two_networks");
    let host = Host::new("two");
    let dir = TempDir::new("two");
    let first = config(&host, &dir, "twoa", "1.0.0", "10.53.0");
    let second = config(&host, &dir, "twob", "1.0.0", "10.54.0");
    assert!(first["ipam"]["routes"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["dst"] == "0.0.0.0/0")));
    let ct = host.container("two");
    let a = Call::new("ADD")
        .container("twoctr", &ct.path())
        .stdin(first.clone())
        .run(&host);
    assert_eq!(a.code, 0, "{a:?}");
    let b = Call::new("ADD")
        .container("twoctr", &ct.path())
        .ifname("eth1")
        .stdin(second.clone())
        .run(&host);
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(a.json["routes"], json!([{ "dst": "0.0.0.0/0" }]));
    assert!(b.json.get("routes").is_none(), "{}", b.json);
    let routes = ct.routes("-4");
    assert!(
        routes.contains(&"default via 10.53.0.1".to_string()),
        "{routes:?}"
    );
    assert!(
        !routes.iter().any(|r| r.contains("via 10.54.0.1")),
        "{routes:?}"
    );
    for (conf, ifname) in [(&first, "eth0"), (&second, "eth1")] {
        let check = Call::new("CHECK")
            .container("twoctr", &ct.path())
            .ifname(ifname)
            .stdin({
                let mut c = conf.clone();
                c["prevResult"] = if ifname == "eth0" { &a.json } else { &b.json }.clone();
                c
            })
            .run(&host);
        assert_eq!(check.code, 0, "{check:?}");
    }
    for (conf, ifname) in [(&first, "eth0"), (&second, "eth1")] {
        let del = Call::new("DEL")
            .container("twoctr", &ct.path())
            .ifname(ifname)
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(del.code, 0, "{del:?}");
    }
    assert!(leases(&dir, "twoa").is_empty() && leases(&dir, "twob").is_empty());
    // No default route in the config: none in the kernel (host-local's behaviour).
    let mut plain = config(&host, &dir, "twoc", "1.0.0", "10.55.0");
    plain["ipam"]["routes"] = json!([]);
    let ct2 = host.container("plain");
    let c = Call::new("ADD")
        .container("plainctr", &ct2.path())
        .stdin(plain.clone())
        .run(&host);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(ct2.routes("-4"), vec!["10.55.0.0/24".to_string()]);
    let del = Call::new("DEL")
        .container("plainctr", &ct2.path())
        .stdin(plain)
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
}

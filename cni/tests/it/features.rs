//! DNS (`resolvConf`, `dns`), GC of leases without records, IPAM delegated by exec, the etcd
//! store: the plugin run as libcni runs it, the reference plugins as the oracle.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{Call, Host, TempDir};
use crate::{config, leases, privileged, REFERENCE_DIR};

/// The reference plugin `name`, which `cargo xtask cni-test` installs (a missing one fails).
fn reference(name: &str) -> std::path::PathBuf {
    let p = Path::new(REFERENCE_DIR).join(name);
    assert!(
        p.exists(),
        "{} is missing: `cargo xtask cni-test` installs containernetworking-plugins",
        p.display()
    );
    p
}

/// A resolv.conf with every kind of line host-local reads (and some it skips).
const RESOLV_CONF: &str = "# written by the test\nnameserver 192.0.2.53\n; comment\n\
nameserver 2001:db8::53\ndomain example.org\nsearch x.example\nsearch a.example b.example\n\
options ndots:2\noptions edns0 rotate\nsortlist 10.0.0.0/8\nnameserver\n";

/// `resolvConf` is read as host-local reads it (host-local itself is the oracle), in both
/// roles; the config's `dns` replaces it in the main plugin's result, as in the reference
/// macvlan's. A `resolvConf` that cannot be read is error 7 and leaves nothing behind.
#[test]
fn dns_from_resolv_conf_and_config() {
    root_or_skip!("dns_from_resolv_conf_and_config");
    let host_local = reference("host-local");
    let macvlan = reference("macvlan");
    let host = Host::new("dns");
    let dir = TempDir::new("dns");
    let resolv = dir.0.join("resolv.conf");
    std::fs::write(&resolv, RESOLV_CONF).unwrap();
    let bin = dir.0.join("bin");
    let install = std::process::Command::new(crate::common::BIN)
        .args(["install", bin.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(install.status.success(), "{install:?}");

    for (i, v) in ["0.3.1", "1.0.0", "1.1.0"].into_iter().enumerate() {
        // IPAM only: underlay-ipam and host-local on the same config, each its own dataDir.
        let theirs_dir = TempDir::new("dnsr");
        let name = format!("dns{i}");
        let mut conf = config(&host, &dir, &name, v, &format!("10.61.{i}"));
        conf["ipam"]["resolvConf"] = resolv.to_str().unwrap().into();
        let mut theirs = conf.clone();
        theirs["ipam"]["type"] = "host-local".into();
        theirs["ipam"]["dataDir"] = theirs_dir.path("ipam").into();
        let ours = Call::new("ADD")
            .container("dnsctr", "/proc/self/ns/net")
            .stdin(conf.clone())
            .binary(&bin.join("underlay-ipam"))
            .run_here();
        let expected = if v == "1.1.0" {
            // host-local 1.1.1 speaks up to 1.0.0: compare with its 1.0.0 answer.
            theirs["cniVersion"] = "1.0.0".into();
            let mut r = Call::new("ADD")
                .container("dnsctr", "/proc/self/ns/net")
                .stdin(theirs.clone())
                .binary(&host_local)
                .run_here()
                .json;
            r["cniVersion"] = "1.1.0".into();
            r
        } else {
            Call::new("ADD")
                .container("dnsctr", "/proc/self/ns/net")
                .stdin(theirs.clone())
                .binary(&host_local)
                .run_here()
                .json
        };
        assert_eq!(ours.code, 0, "{v}: {ours:?}");
        assert_eq!(
            ours.json, expected,
            "{v}: underlay-ipam and host-local differ"
        );
        assert_eq!(ours.json["dns"]["nameservers"][1], "2001:db8::53", "{v}");

        // The main plugin: the IPAM's DNS when the config has none ...
        let ct = host.container("dn");
        let add = Call::new("ADD")
            .container("dnsmain", &ct.path())
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(add.code, 0, "{v}: {add:?}");
        assert_eq!(add.json["dns"], expected["dns"], "{v}");
        let del = Call::new("DEL")
            .container("dnsmain", &ct.path())
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(del.code, 0, "{v}: {del:?}");
    }

    // ... and the config's `dns` when it has one, as the reference macvlan (oracle).
    let theirs_dir = TempDir::new("dnsm");
    let mut conf = config(&host, &dir, "dnsconf", "1.0.0", "10.62.0");
    conf["ipam"]["resolvConf"] = resolv.to_str().unwrap().into();
    conf["dns"] = json!({ "nameservers": ["198.51.100.1"], "domain": "conf.example",
                          "search": ["s.example"], "options": ["ndots:1"] });
    let mut theirs = conf.clone();
    theirs["type"] = "macvlan".into();
    theirs["ipam"]["type"] = "host-local".into();
    theirs["ipam"]["dataDir"] = theirs_dir.path("ipam").into();
    let (a, b) = (host.container("da"), host.container("db"));
    let ours = Call::new("ADD")
        .container("dnsc", &a.path())
        .stdin(conf.clone())
        .run(&host);
    let expected = Call::new("ADD")
        .container("dnsc", &b.path())
        .cni_path(REFERENCE_DIR)
        .binary(&macvlan)
        .stdin(theirs)
        .run(&host);
    assert_eq!(ours.code, 0, "{ours:?}");
    assert_eq!(expected.code, 0, "{expected:?}");
    assert_eq!(ours.json["dns"], expected.json["dns"]);
    assert_eq!(ours.json["dns"]["domain"], "conf.example");

    // An unreadable resolvConf: error 7, no link, no lease, in both roles.
    let mut bad = config(&host, &dir, "dnsbad", "1.0.0", "10.63.0");
    bad["ipam"]["resolvConf"] = dir.path("nosuch.conf").into();
    let ct = host.container("dx");
    let add = Call::new("ADD")
        .container("dnsbad", &ct.path())
        .stdin(bad.clone())
        .run(&host);
    assert_eq!(add.json["code"], 7, "{add:?}");
    assert!(
        add.json["msg"].as_str().unwrap().contains("resolvConf"),
        "{add:?}"
    );
    let ipam = Call::new("ADD")
        .container("dnsbad", "/proc/self/ns/net")
        .stdin(bad)
        .binary(&bin.join("underlay-ipam"))
        .run_here();
    assert_eq!(ipam.json["code"], 7, "{ipam:?}");
    assert_eq!(ct.links(), vec!["lo".to_string()]);
    assert!(leases(&dir, "dnsbad").is_empty());
}

/// The container id in a host-local lease file (`<id>\r\n<ifname>`).
fn lease_owner(dir: &TempDir, net: &str, ip: &str) -> String {
    let text = std::fs::read_to_string(dir.0.join("ipam").join(net).join(ip)).unwrap();
    text.lines().next().unwrap_or("").trim().to_string()
}

/// GC releases every lease and link of the network that `cni.dev/valid-attachments` does not
/// name: underlay's endpoints, and lease files without a record (containers started by the
/// reference macvlan + host-local on the same data directory, a lease left by a dead one).
#[test]
fn gc_releases_leases_without_records() {
    root_or_skip!("gc_releases_leases_without_records");
    let macvlan = reference("macvlan");
    let host = Host::new("gcl");
    let dir = TempDir::new("gcl");
    let conf = config(&host, &dir, "gclnet", "1.1.0", "10.64.0");
    let mut theirs = conf.clone();
    theirs["cniVersion"] = "1.0.0".into();
    theirs["type"] = "macvlan".into();
    theirs["ipam"]["type"] = "host-local".into();
    let cts: Vec<_> = (0..4).map(|i| host.container(&format!("g{i}"))).collect();
    // Ours: u-keep, u-drop; host-local's: h-keep, h-drop.
    for (i, id) in ["u-keep", "u-drop", "h-keep", "h-drop"].iter().enumerate() {
        let call = Call::new("ADD").container(id, &cts[i].path());
        let out = if id.starts_with('u') {
            call.stdin(conf.clone()).run(&host)
        } else {
            call.cni_path(REFERENCE_DIR)
                .binary(&macvlan)
                .stdin(theirs.clone())
                .run(&host)
        };
        assert_eq!(out.code, 0, "{id}: {out:?}");
    }
    // A lease left behind by a container whose DEL never came.
    let leftover = dir.0.join("ipam/gclnet/10.64.0.99");
    std::fs::write(&leftover, "dead-one\r\neth0").unwrap();
    assert_eq!(leases(&dir, "gclnet").len(), 5);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([
        { "containerID": "u-keep", "ifname": "eth0" },
        { "containerID": "h-keep", "ifname": "eth0" },
    ]);
    let out = Call::new("GC").stdin(gc.clone()).run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    let left = leases(&dir, "gclnet");
    let owners: Vec<String> = left
        .iter()
        .map(|ip| lease_owner(&dir, "gclnet", ip))
        .collect();
    assert_eq!(owners.len(), 2, "{left:?} {owners:?}");
    assert!(owners.contains(&"u-keep".to_string()) && owners.contains(&"h-keep".to_string()));
    // The kept containers keep their interface and address; ours dropped loses its link.
    for i in [0, 2] {
        assert_eq!(cts[i].addrs("eth0").len(), 1, "container {i}");
    }
    assert!(cts[1].link_mac("eth0").is_none(), "GC left u-drop's link");
    // Twice is the same as once.
    let out = Call::new("GC").stdin(gc).run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(leases(&dir, "gclnet"), left);
}

/// GC (keeping nothing) in a loop while 16 plugin processes ADD: whatever GC took and whatever
/// stayed, every container ends either with its link, its address and a lease file naming it,
/// or with none of them; no address is in two containers.
#[test]
fn gc_during_concurrent_adds() {
    root_or_skip!("gc_during_concurrent_adds");
    let host = Host::new("gcc");
    let dir = TempDir::new("gcc");
    let conf = config(&host, &dir, "gccnet", "1.1.0", "10.65.0");
    // Defined first, so that every GC finds the network.
    let first = host.container("gf");
    let add = Call::new("ADD")
        .container("gcc-first", &first.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    let cts: Vec<_> = (0..16).map(|i| host.container(&format!("c{i}"))).collect();
    let children: Vec<_> = cts
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            Call::new("ADD")
                .container(&format!("gcc{i}"), &ct.path())
                .stdin(conf.clone())
                .spawn(&host)
        })
        .collect();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    let mut gcs = 0;
    let mut children: Vec<_> = children.into_iter().map(Some).collect();
    let mut outcomes: Vec<Option<crate::common::Outcome>> = (0..16).map(|_| None).collect();
    while outcomes.iter().any(Option::is_none) {
        let out = Call::new("GC").stdin(gc.clone()).run(&host);
        assert_eq!(out.code, 0, "{out:?}");
        gcs += 1;
        for i in 0..16 {
            if let Some(c) = children[i].as_mut() {
                if c.try_wait().unwrap().is_some() {
                    outcomes[i] = Some(crate::common::wait(children[i].take().unwrap()));
                }
            }
        }
    }
    assert!(gcs >= 1);
    let mut seen = std::collections::HashSet::new();
    let held: std::collections::HashMap<String, String> = leases(&dir, "gccnet")
        .into_iter()
        .map(|ip| (lease_owner(&dir, "gccnet", &ip), ip))
        .collect();
    for (i, ct) in cts.iter().enumerate() {
        let out = outcomes[i].as_ref().unwrap();
        assert_eq!(out.code, 0, "{i}: {out:?}");
        let addrs = ct.addrs("eth0");
        match held.get(&format!("gcc{i}")) {
            Some(ip) => {
                assert_eq!(addrs, vec![format!("{ip}/24")], "container {i}");
                assert!(seen.insert(ip.clone()), "{ip} in two containers");
            }
            None => assert!(
                ct.link_mac("eth0").is_none(),
                "container {i} has a link but no lease: {addrs:?}"
            ),
        }
    }
    // The first container, not valid either, went with the first GC.
    assert!(!held.contains_key("gcc-first"));
    assert!(first.link_mac("eth0").is_none());
}

/// Without the feature `etcd`, `"store": "etcd"` is refused with error 7, saying how to build
/// it, and nothing is made.
#[cfg(not(feature = "etcd"))]
#[test]
fn etcd_store_needs_the_feature() {
    root_or_skip!("etcd_store_needs_the_feature");
    let host = Host::new("noetcd");
    let dir = TempDir::new("noetcd");
    let mut conf = config(&host, &dir, "noetcd", "1.0.0", "10.67.0");
    conf["ipam"]["store"] = "etcd".into();
    conf["ipam"]["etcd"] = json!({ "endpoints": ["http://127.0.0.1:2379"] });
    let ct = host.container("ne");
    let out = Call::new("ADD")
        .container("noetcd", &ct.path())
        .stdin(conf)
        .run(&host);
    assert_eq!(out.json["code"], 7, "{out:?}");
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap()
            .contains("--features etcd"),
        "{out:?}"
    );
    assert_eq!(ct.links(), vec!["lo".to_string()]);
}

/// On a `nic.id` master the last DEL deletes the network (in the VM, with the VLAN the plugin
/// made). Here the "VLAN" is a veth named `par0.10` (underlay did not make it, so it stays):
/// 8 workers each ADD and DEL their own container 8 times at once, so that DELs delete the
/// network under other workers' ADDs. Every call succeeds (an ADD that raced the delete opens
/// the network again), each ADD's container has its result's address, and at the end no lease
/// and no network record is left, while the parent stays.
#[test]
fn last_del_deletes_the_network_under_concurrent_adds() {
    root_or_skip!("last_del_deletes_the_network_under_concurrent_adds");
    let host = Host::new("ldel");
    host.ns.ip(&[
        "link", "add", "par0.10", "type", "veth", "peer", "name", "wire10",
    ]);
    host.ns.ip(&["link", "set", "par0.10", "up"]);
    let dir = TempDir::new("ldel");
    let mut conf = config(&host, &dir, "ldnet", "1.0.0", "10.91.0");
    conf["master"] = "par0.10".into();
    let cts: Vec<_> = (0..8).map(|i| host.container(&format!("l{i}"))).collect();
    std::thread::scope(|s| {
        for (i, ct) in cts.iter().enumerate() {
            let (host, conf) = (&host, &conf);
            s.spawn(move || {
                for round in 0..8 {
                    let id = format!("ld{i}");
                    let add = Call::new("ADD")
                        .container(&id, &ct.path())
                        .stdin(conf.clone())
                        .run(host);
                    assert_eq!(add.code, 0, "{i}/{round}: {add:?}");
                    let addr = add.json["ips"][0]["address"].as_str().unwrap().to_string();
                    assert_eq!(ct.addrs("eth0"), vec![addr], "{i}/{round}");
                    let del = Call::new("DEL")
                        .container(&id, &ct.path())
                        .stdin(conf.clone())
                        .run(host);
                    assert_eq!(del.code, 0, "{i}/{round}: {del:?}");
                    assert_eq!(ct.links(), vec!["lo".to_string()], "{i}/{round}");
                }
            });
        }
    });
    assert!(leases(&dir, "ldnet").is_empty());
    assert!(
        !dir.0.join("state/networks/ldnet.conf").exists(),
        "the last DEL left the network"
    );
    assert!(host.ns.link_mac("par0.10").is_some(), "the parent went");
}

/// Any other `ipam.type` runs by exec, as the reference plugins run it: Debian's host-local
/// binary under another name (`hl-ext`, so that underlay does not serve it in-process) and
/// Debian's `static`. The result equals the reference macvlan's on the same config (but for
/// MAC and sandbox); CHECK runs; DEL gives the lease back through the delegate; an ADD that
/// fails after the delegate allocated (a missing master) runs its DEL; a delegate that is not
/// on CNI_PATH is error 7; the delegate's own error comes through with its code.
#[test]
fn other_ipam_types_are_delegated() {
    root_or_skip!("other_ipam_types_are_delegated");
    let macvlan = reference("macvlan");
    let host_local = reference("host-local");
    let host = Host::new("dlg");
    let dir = TempDir::new("dlg");
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&host_local, bin.join("hl-ext")).unwrap();
    let cni_path = format!("{}:{REFERENCE_DIR}", bin.display());
    let delegate_leases = |d: &TempDir| leases(d, "dlgnet");

    for (i, v) in ["0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let (ours_dir, theirs_dir) = (TempDir::new("dlgu"), TempDir::new("dlgr"));
        let mut conf = config(&host, &ours_dir, "dlgnet", v, &format!("10.93.{i}"));
        conf["ipam"]["type"] = "hl-ext".into();
        conf["ipam"]["routes"] = json!([{ "dst": "0.0.0.0/0" }, { "dst": "192.168.60.0/24" }]);
        let mut theirs = conf.clone();
        theirs["type"] = "macvlan".into();
        theirs["ipam"]["dataDir"] = theirs_dir.path("ipam").into();
        let (a, b) = (host.container("da"), host.container("db"));
        let ours = Call::new("ADD")
            .container("dlg", &a.path())
            .cni_path(&cni_path)
            .stdin(conf.clone())
            .run(&host);
        let expected = Call::new("ADD")
            .container("dlg", &b.path())
            .cni_path(&cni_path)
            .binary(&macvlan)
            .stdin(theirs)
            .run(&host);
        assert_eq!(ours.code, 0, "{v}: {ours:?}");
        assert_eq!(expected.code, 0, "{v}: {expected:?}");
        let mut want = expected.json.clone();
        want["interfaces"][0]["mac"] = ours.json["interfaces"][0]["mac"].clone();
        want["interfaces"][0]["sandbox"] = a.path().into();
        assert_eq!(ours.json, want, "{v}");
        assert_eq!(a.addrs("eth0"), b.addrs("eth0"), "{v}");
        assert_eq!(a.routes("-4"), b.routes("-4"), "{v}");
        // host-local (the delegate) holds the lease in its data directory.
        assert_eq!(delegate_leases(&ours_dir), vec![format!("10.93.{i}.10")]);
        if v != "0.3.1" {
            let mut check = conf.clone();
            check["prevResult"] = ours.json.clone();
            let out = Call::new("CHECK")
                .container("dlg", &a.path())
                .cni_path(&cni_path)
                .stdin(check)
                .run(&host);
            assert_eq!(out.code, 0, "{v}: {out:?}");
        }
        let del = Call::new("DEL")
            .container("dlg", &a.path())
            .cni_path(&cni_path)
            .stdin(conf.clone())
            .run(&host);
        assert_eq!(del.code, 0, "{v}: {del:?}");
        assert_eq!(a.links(), vec!["lo".to_string()], "{v}");
        assert!(
            delegate_leases(&ours_dir).is_empty(),
            "{v}: the delegate kept its lease"
        );

        // Undo: the delegate allocated, then the master is missing: its DEL runs.
        let mut bad = conf.clone();
        bad["name"] = "dlgnet".into();
        bad["master"] = "nosuch0".into();
        let out = Call::new("ADD")
            .container("dlgbad", &a.path())
            .cni_path(&cni_path)
            .stdin(bad)
            .run(&host);
        assert_eq!(out.json["code"], 7, "{v}: {out:?}");
        assert!(
            delegate_leases(&ours_dir).is_empty(),
            "{v}: the undo kept the lease"
        );
        assert_eq!(a.links(), vec!["lo".to_string()], "{v}");
    }

    // STATUS (1.1.0): the delegate must be on CNI_PATH (its own STATUS runs only when it
    // speaks 1.1.0, which host-local 1.1.1 does not); GC releases this network's endpoints.
    let gdir = TempDir::new("dlgg");
    let mut v11 = config(&host, &gdir, "dlggc", "1.1.0", "10.93.9");
    v11["ipam"]["type"] = "hl-ext".into();
    let st = Call::new("STATUS")
        .cni_path(&cni_path)
        .stdin(v11.clone())
        .run(&host);
    assert_eq!(st.code, 0, "{st:?}");
    let st = Call::new("STATUS")
        .cni_path(REFERENCE_DIR)
        .stdin(v11.clone())
        .run(&host);
    assert_eq!(st.json["code"], 50, "{st:?}");
    let gc = Call::new("GC").cni_path(&cni_path).stdin(v11).run(&host);
    assert_eq!(gc.code, 0, "{gc:?}");

    // Debian's `static`, against the reference macvlan with the same ipam block.
    let sdir = TempDir::new("dlgs");
    let mut conf = config(&host, &sdir, "dlgstatic", "1.0.0", "10.94.0");
    conf["ipam"] = json!({ "type": "static",
        "addresses": [{ "address": "10.94.0.7/24", "gateway": "10.94.0.1" }],
        "routes": [{ "dst": "0.0.0.0/0" }], "dns": { "nameservers": ["10.94.0.53"] } });
    let mut theirs = conf.clone();
    theirs["type"] = "macvlan".into();
    let (a, b) = (host.container("sa"), host.container("sb"));
    let ours = Call::new("ADD")
        .container("st", &a.path())
        .cni_path(REFERENCE_DIR)
        .stdin(conf.clone())
        .run(&host);
    let expected = Call::new("ADD")
        .container("st", &b.path())
        .cni_path(REFERENCE_DIR)
        .binary(&macvlan)
        .stdin(theirs)
        .run(&host);
    assert_eq!(ours.code, 0, "{ours:?}");
    let mut want = expected.json.clone();
    want["interfaces"][0]["mac"] = ours.json["interfaces"][0]["mac"].clone();
    want["interfaces"][0]["sandbox"] = a.path().into();
    // The one difference, by choice: without a `dns` in the config the result keeps the
    // IPAM's (the reference bridge plugin's rule); the reference macvlan drops it.
    assert_eq!(expected.json["dns"], json!({}));
    want["dns"] = json!({ "nameservers": ["10.94.0.53"] });
    assert_eq!(ours.json, want);
    assert_eq!(a.addrs("eth0"), vec!["10.94.0.7/24".to_string()]);
    assert!(a.has_default_via("10.94.0.1"));
    let del = Call::new("DEL")
        .container("st", &a.path())
        .cni_path(REFERENCE_DIR)
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");

    // Not on CNI_PATH: 7, nothing made.
    let mut missing = conf.clone();
    missing["ipam"]["type"] = "no-such-ipam".into();
    let out = Call::new("ADD")
        .container("st", &a.path())
        .cni_path(REFERENCE_DIR)
        .stdin(missing)
        .run(&host);
    assert_eq!(out.json["code"], 7, "{out:?}");
    assert!(
        out.json["msg"].as_str().unwrap().contains("CNI_PATH"),
        "{out:?}"
    );
    // The delegate's own error, with its code (static: an address without a prefix).
    let mut broken = conf.clone();
    broken["ipam"]["addresses"] = json!([{ "address": "10.94.0.7" }]);
    let out = Call::new("ADD")
        .container("st", &a.path())
        .cni_path(REFERENCE_DIR)
        .stdin(broken)
        .run(&host);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap()
            .contains("ipam plugin `static`"),
        "{out:?}"
    );
    assert_eq!(a.links(), vec!["lo".to_string()]);
}

/// An ADD is announced by the kernel (the default `announce`, arp_notify with the link brought
/// up after its address): a neighbour on the wire that takes gratuitous ARP (`wire0`, the
/// parent veth's other end, `arp_accept`) learns the container's address and MAC at once;
/// the link is up with its default route; `"announce": "off"` sends nothing.
#[test]
fn add_is_announced_to_the_wire_by_the_kernel() {
    root_or_skip!("add_is_announced_to_the_wire_by_the_kernel");
    let host = Host::new("ann");
    host.ns
        .ip(&["addr", "add", "10.94.0.250/24", "dev", "wire0"]);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &host.ns.name, "sysctl", "-qw"])
        .arg("net.ipv4.conf.wire0.arp_accept=1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = TempDir::new("ann");
    let conf = config(&host, &dir, "annnet", "1.0.0", "10.94.0");
    let knows = |ip: &str, mac: &str| {
        let out = std::process::Command::new("ip")
            .args(["-n", &host.ns.name, "-j", "neigh", "show", "dev", "wire0"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|n| n["dst"] == ip && (mac.is_empty() || n["lladdr"] == mac))
        })
    };
    let eventually = |f: &dyn Fn() -> bool| {
        (0..50).any(|_| {
            let ok = f();
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            ok
        })
    };
    let ct = host.container("k");
    let add = Call::new("ADD")
        .container("ann-k", &ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    let mac = add.json["interfaces"][0]["mac"].as_str().unwrap();
    assert_eq!(ct.addrs("eth0"), vec!["10.94.0.10/24".to_string()]);
    assert!(ct.has_default_via("10.94.0.1"));
    // IPv4 only: IPv6 stays off (no link-local address).
    assert_eq!(ct.all_addrs("eth0"), vec!["10.94.0.10/24".to_string()]);
    assert!(
        eventually(&|| knows("10.94.0.10", mac)),
        "the wire never learnt 10.94.0.10 at {mac}"
    );
    let mut quiet_conf = conf.clone();
    quiet_conf["announce"] = "off".into();
    let quiet = host.container("q");
    let add = Call::new("ADD")
        .container("ann-q", &quiet.path())
        .stdin(quiet_conf)
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(quiet.addrs("eth0"), vec!["10.94.0.11/24".to_string()]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!knows("10.94.0.11", ""), "`announce: off` was announced");
}

/// `conflictDetection`: an address of the range that a machine on the wire already holds
/// (`wire0`, the parent veth's other end, answers ARP for 10.95.0.10) is probed, skipped and
/// quarantined in the lease store (a lease file naming the MAC that answered); the container
/// gets the next address. Without the key the same network would hand out 10.95.0.10 (first
/// ADD of a fresh network: the range's first address). Bad values are error 7.
#[test]
fn conflict_detection_skips_an_address_in_use_on_the_wire() {
    root_or_skip!("conflict_detection_skips_an_address_in_use_on_the_wire");
    let host = Host::new("cfd");
    host.ns
        .ip(&["addr", "add", "10.95.0.10/24", "dev", "wire0"]);
    let wire_mac = {
        let out = std::process::Command::new("ip")
            .args(["-n", &host.ns.name, "-j", "link", "show", "dev", "wire0"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["address"].as_str().unwrap().to_string()
    };
    let dir = TempDir::new("cfd");
    let mut conf = config(&host, &dir, "cfdnet", "1.0.0", "10.95.0");
    conf["conflictDetection"] = json!({"probes": 1, "waitMs": 200});
    let ct = host.container("a");
    let add = Call::new("ADD")
        .container("cfd-a", &ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(ct.addrs("eth0"), vec!["10.95.0.11/24".to_string()]);
    assert_eq!(add.json["ips"][0]["address"], "10.95.0.11/24");
    let owner = lease_owner(&dir, "cfdnet", "10.95.0.10");
    assert!(
        owner.starts_with("underlay-conflict_") && owner.contains(&wire_mac),
        "10.95.0.10 is not quarantined for {wire_mac}: its lease names `{owner}`"
    );
    assert_eq!(lease_owner(&dir, "cfdnet", "10.95.0.11"), "cfd-a");
    let del = Call::new("DEL")
        .container("cfd-a", &ct.path())
        .stdin(conf)
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    // The quarantine stays after the container's DEL: the address is still in use out there.
    assert_eq!(leases(&dir, "cfdnet"), vec!["10.95.0.10".to_string()]);
    for bad in [
        json!("sometimes"),
        json!({"probes": 0}),
        json!({"probes": 1, "bogus": 2}),
        json!({"waitMs": -1}),
        json!(3),
    ] {
        let mut c = config(&host, &dir, "cfdbad", "1.0.0", "10.96.0");
        c["conflictDetection"] = bad.clone();
        let ct = host.container("b");
        let add = Call::new("ADD")
            .container("cfd-b", &ct.path())
            .stdin(c)
            .run(&host);
        assert_eq!(add.json["code"], 7, "conflictDetection {bad}: {add:?}");
        assert!(
            add.json["msg"]
                .as_str()
                .unwrap_or("")
                .contains("conflictDetection"),
            "{add:?}"
        );
        assert!(leases(&dir, "cfdbad").is_empty());
    }
}

/// The host namespace of the test pings `ip` (one echo, 1 s at most).
fn host_pings(host: &Host, ip: &str) -> bool {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.ns.name,
            "ping",
            "-c1",
            "-W1",
            "-q",
            ip,
        ])
        .output()
        .unwrap()
        .status
        .success()
}

/// The host namespace's macvlan links (`ip -d -j link`): the shims (endpoints live in the
/// containers).
fn shims(host: &Host) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", &host.ns.name, "-d", "-j", "link", "show"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "macvlan")
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The device of the host namespace's route to `dst` (`ip -j route show DST`), if any.
fn host_route_dev(host: &Host, dst: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", &host.ns.name, "-j", "route", "show", dst])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.get(0)?["dev"].as_str().map(str::to_string)
}

/// `hostAccess`: the host (with its address on the parent, as a Docker host has) cannot
/// reach a macvlan container without it, and reaches every container through the shim with
/// it. 6 workers ADD and DEL their own container 4 times at once: each container is reached
/// right after its ADD (a concurrent last DEL never takes the shim from under it), there is
/// one shim, and once the last container is gone the shim and its routes are gone too. The
/// object form gives the shim an address of the pools and routes the ranges.
#[test]
fn host_access_reaches_containers_through_the_shim() {
    root_or_skip!("host_access_reaches_containers_through_the_shim");
    let host = Host::new("hac");
    // The wire's end in a namespace of its own: the host reaches a container through the
    // shim or not at all.
    let wire = crate::common::Ns::new("hacw");
    host.ns.ip(&["link", "set", "wire0", "netns", &wire.name]);
    wire.ip(&["link", "set", "wire0", "up"]);
    host.ns.ip(&["addr", "add", "10.95.0.2/24", "dev", "par0"]);
    let dir = TempDir::new("hac");
    let plain = config(&host, &dir, "hacnet", "1.0.0", "10.95.0");
    let ct = host.container("p");
    let add = Call::new("ADD")
        .container("hac-p", &ct.path())
        .stdin(plain.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(ct.addrs("eth0"), vec!["10.95.0.10/24".to_string()]);
    assert!(
        !host_pings(&host, "10.95.0.10"),
        "the host reached a macvlan container without a shim"
    );
    let del = Call::new("DEL")
        .container("hac-p", &ct.path())
        .stdin(plain.clone())
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");

    let mut conf = plain.clone();
    conf["hostAccess"] = true.into();
    let cts: Vec<_> = (0..6).map(|i| host.container(&format!("h{i}"))).collect();
    std::thread::scope(|s| {
        for (i, ct) in cts.iter().enumerate() {
            let (host, conf) = (&host, &conf);
            s.spawn(move || {
                for round in 0..4 {
                    let id = format!("hac{i}");
                    let add = Call::new("ADD")
                        .container(&id, &ct.path())
                        .stdin(conf.clone())
                        .run(host);
                    assert_eq!(add.code, 0, "{i}/{round}: {add:?}");
                    let addr = add.json["ips"][0]["address"].as_str().unwrap();
                    let ip = addr.split('/').next().unwrap();
                    assert_eq!(ct.addrs("eth0"), vec![addr.to_string()], "{i}/{round}");
                    assert_eq!(
                        host_route_dev(host, ip).as_deref(),
                        Some("hacnet-h"),
                        "{i}/{round}: no host route to {ip} through the shim"
                    );
                    assert!(host_pings(host, ip), "{i}/{round}: {ip} unreachable");
                    assert_eq!(shims(host), vec!["hacnet-h".to_string()], "{i}/{round}");
                    let del = Call::new("DEL")
                        .container(&id, &ct.path())
                        .stdin(conf.clone())
                        .run(host);
                    assert_eq!(del.code, 0, "{i}/{round}: {del:?}");
                    assert_eq!(host_route_dev(host, ip), None, "{i}/{round}: route left");
                }
            });
        }
    });
    assert!(shims(&host).is_empty(), "the last DEL left the shim");
    assert!(leases(&dir, "hacnet").is_empty());

    // The object form: an address of the pools, one route per allocation range.
    // (Another state directory: one store refuses overlapping networks.)
    let dir2 = TempDir::new("hac2");
    let mut with_address = config(&host, &dir2, "hacnet2", "1.0.0", "10.95.0");
    with_address["hostAccess"] = json!({"address": "10.95.0.200", "routes": "ranges"});
    with_address["ipam"]["ranges"][0][0]["rangeStart"] = "10.95.0.16".into();
    with_address["ipam"]["ranges"][0][0]["rangeEnd"] = "10.95.0.31".into();
    let add = Call::new("ADD")
        .container("hac-a", &ct.path())
        .stdin(with_address.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(
        host.ns.addrs("hacnet2-h"),
        vec!["10.95.0.200/32".to_string()]
    );
    assert_eq!(
        host_route_dev(&host, "10.95.0.16/28").as_deref(),
        Some("hacnet2-h")
    );
    assert!(host_pings(&host, "10.95.0.16"));
    let del = Call::new("DEL")
        .container("hac-a", &ct.path())
        .stdin(with_address)
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    assert!(shims(&host).is_empty(), "the last DEL left the shim");
    assert!(host.ns.addrs("par0") == vec!["10.95.0.2/24".to_string()]);
}

/// `linkInContainer`: `master` is the container's own NIC (here a veth made inside it), the
/// link is made there on it, and the host's namespace is left as it was; a container
/// without that NIC is error 7 with nothing left; STATUS does not look for it on the host.
#[test]
fn link_in_container_uses_the_containers_own_master() {
    root_or_skip!("link_in_container_uses_the_containers_own_master");
    let host = Host::new("lic");
    let host_links = host.ns.links();
    let dir = TempDir::new("lic");
    let mut conf = config(&host, &dir, "licnet", "1.1.0", "10.96.0");
    conf["master"] = "eth1".into();
    conf["linkInContainer"] = true.into();
    let ct = host.container("a");
    ct.ip(&[
        "link", "add", "eth1", "type", "veth", "peer", "name", "wire1",
    ]);
    ct.ip(&["link", "set", "eth1", "up"]);
    ct.ip(&["link", "set", "wire1", "up"]);
    let add = Call::new("ADD")
        .container("lic-a", &ct.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json["interfaces"][0]["sandbox"], ct.path());
    assert_eq!(ct.addrs("eth0"), vec!["10.96.0.10/24".to_string()]);
    assert!(ct.has_default_via("10.96.0.1"));
    let out = std::process::Command::new("ip")
        .args(["-n", &ct.name, "-d", "-j", "link", "show", "dev", "eth0"])
        .output()
        .unwrap();
    let link: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        link[0]["link"], "eth1",
        "made on the container's eth1: {link}"
    );
    assert_eq!(link[0]["linkinfo"]["info_kind"], "macvlan", "{link}");
    assert_eq!(host.ns.links(), host_links, "nothing made on the host");

    let mut with_prev = conf.clone();
    with_prev["prevResult"] = add.json.clone();
    let check = Call::new("CHECK")
        .container("lic-a", &ct.path())
        .stdin(with_prev.clone())
        .run(&host);
    assert_eq!(check.code, 0, "{check:?}");
    let status = Call::new("STATUS").stdin(conf.clone()).run(&host);
    assert_eq!(
        status.code, 0,
        "no eth1 on the host, and that is fine: {status:?}"
    );

    let bare = host.container("b");
    let add = Call::new("ADD")
        .container("lic-b", &bare.path())
        .stdin(conf.clone())
        .run(&host);
    assert_eq!(add.json["code"], 7, "{add:?}");
    assert!(
        add.json["msg"]
            .as_str()
            .unwrap()
            .contains("linkInContainer"),
        "{add:?}"
    );
    assert_eq!(bare.links(), vec!["lo".to_string()]);
    assert_eq!(leases(&dir, "licnet").len(), 1, "only lic-a's lease");

    let del = Call::new("DEL")
        .container("lic-a", &ct.path())
        .stdin(with_prev)
        .run(&host);
    assert_eq!(del.code, 0, "{del:?}");
    assert_eq!(ct.links(), vec!["eth1", "lo", "wire1"]);
    assert_eq!(leases(&dir, "licnet").len(), 0);
    assert_eq!(host.ns.links(), host_links);

    let mut shim = conf.clone();
    shim["hostAccess"] = true.into();
    let add = Call::new("ADD")
        .container("lic-a", &ct.path())
        .stdin(shim)
        .run(&host);
    assert_eq!(
        add.json["code"], 7,
        "hostAccess with linkInContainer: {add:?}"
    );
    assert_eq!(ct.links(), vec!["eth1", "lo", "wire1"]);
}

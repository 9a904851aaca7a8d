//! Link layer against the running kernel, checked with iproute2 as the oracle.

use std::sync::Arc;

use underlay::{
    Bridge, ErrorKind, Handle, LinkKind, MacAddr, Macvlan, MacvlanMode, Netns, NextHop, Route,
    Veth, Vlan, VlanId, Vxlan,
};

use crate::common::{info, ip_addrs, privileged, TestNs};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

#[tokio::test]
async fn macvlan_every_mode() {
    root_or_skip!("macvlan_every_mode");
    let t = TestNs::with_veth("mv", "p0", "p1").await;
    let h = &t.handle;
    for (i, mode) in [
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Bridge,
        MacvlanMode::Source,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("mv{i}");
        let mut b = Macvlan::create(h, &name, "p0", mode).mtu(1400).up();
        let macs = [MacAddr::random(), MacAddr::random()];
        if mode == MacvlanMode::Source {
            b = b.source_macs(macs);
        }
        let link = b.execute().await.unwrap();
        // Library readback.
        assert_eq!(link.name, name);
        assert_eq!(link.mtu, 1400);
        assert!(link.up);
        match &link.kind {
            LinkKind::Macvlan {
                mode: m,
                source_macs,
                ..
            } => {
                assert_eq!(*m, mode);
                if mode == MacvlanMode::Source {
                    // The kernel reports the list only in detailed dumps; when present it matches.
                    if !source_macs.is_empty() {
                        assert_eq!(source_macs.len(), 2);
                    }
                }
            }
            other => panic!("{name}: {other:?}"),
        }
        // Oracle.
        let j = t.ip_link(&name).expect("oracle sees the link");
        let (kind, data) = info(&j);
        assert_eq!(kind, "macvlan");
        assert_eq!(data["mode"], mode.as_str());
        assert_eq!(j["mtu"], 1400);
        assert_eq!(
            j["address"].as_str().unwrap(),
            link.mac.unwrap().to_string()
        );
        assert_eq!(j["link"], "p0");
        if mode == MacvlanMode::Source {
            assert_eq!(data["macaddr_count"], 2, "{data}");
        }
        h.delete_link(name.as_str()).await.unwrap();
        assert!(t.ip_link(&name).is_none(), "{name} still there");
    }
    // Passthru takes a parent of its own.
    let pt = Macvlan::create(h, "pt0", "p0", MacvlanMode::Passthru)
        .execute()
        .await
        .unwrap();
    assert!(matches!(
        pt.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Passthru,
            ..
        }
    ));
    assert_eq!(info(&t.ip_link("pt0").unwrap()).1["mode"], "passthru");
    // A second child on a passthru parent: the kernel says EINVAL, we say why.
    let e = Macvlan::create(h, "mv9", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.to_string().contains("passthru") && e.to_string().contains("pt0"),
        "{e}"
    );
    assert_eq!(e.errno(), Some(libc::EINVAL));
    h.delete_link("pt0").await.unwrap();
    // Passthru on a parent that has children.
    Macvlan::create(h, "mv1", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap();
    let e = Macvlan::create(h, "pt1", "p0", MacvlanMode::Passthru)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("mv1"), "{e}");
    assert!(t.ip_link("pt1").is_none());
}

#[tokio::test]
async fn macvtap_create_inspect_delete() {
    root_or_skip!("macvtap_create_inspect_delete");
    let t = TestNs::with_veth("mvt", "p0", "p1").await;
    let link = Macvlan::create_tap(&t.handle, "tap0", "p0", MacvlanMode::Bridge)
        .up()
        .execute()
        .await
        .unwrap();
    assert!(
        matches!(&link.kind, LinkKind::Macvtap { mode: MacvlanMode::Bridge, source_macs, nopromisc: false } if source_macs.is_empty()),
        "{link:?}"
    );
    let j = t.ip_link("tap0").unwrap();
    assert_eq!(info(&j).0, "macvtap");
    assert_eq!(info(&j).1["mode"], "bridge");
    t.handle.delete_link("tap0").await.unwrap();
    assert!(t.ip_link("tap0").is_none());
}

#[tokio::test]
async fn vxlan_create_inspect_delete() {
    root_or_skip!("vxlan_create_inspect_delete");
    let t = TestNs::with_veth("vx", "p0", "p1").await;
    t.handle
        .add_address("p0", "10.99.0.1/24".parse().unwrap())
        .await
        .unwrap();
    let link = Vxlan::create(&t.handle, "vx100", 100)
        .local("10.99.0.1".parse().unwrap())
        .remote("10.99.0.2".parse().unwrap())
        .device("p0")
        .port(4790)
        .learning(false)
        .ttl(16)
        .mtu(1450)
        .execute()
        .await
        .unwrap();
    match &link.kind {
        LinkKind::Vxlan(v) => {
            assert_eq!(v.vni, 100);
            assert_eq!(v.port, 4790);
            assert!(!v.learning);
            assert_eq!(v.ttl, 16);
            assert_eq!(v.remote, Some("10.99.0.2".parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
    let j = t.ip_link("vx100").unwrap();
    let (kind, d) = info(&j);
    assert_eq!(kind, "vxlan");
    assert_eq!(d["id"], 100);
    assert_eq!(d["local"], "10.99.0.1");
    assert_eq!(d["remote"], "10.99.0.2");
    assert_eq!(d["port"], 4790);
    assert_eq!(d["link"], "p0");
    assert_eq!(d["learning"], false);
    assert_eq!(d["ttl"], 16);
    // Default port is the IANA one.
    Vxlan::create(&t.handle, "vx200", 200)
        .remote("10.99.0.3".parse().unwrap())
        .execute()
        .await
        .unwrap();
    assert_eq!(info(&t.ip_link("vx200").unwrap()).1["port"], 4789);
    // Bad VNI never reaches the kernel.
    let e = Vxlan::create(&t.handle, "vx0", 1 << 24)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    t.handle.delete_link("vx100").await.unwrap();
    assert!(t.ip_link("vx100").is_none());
}

#[tokio::test]
async fn veth_across_namespaces_and_bridge() {
    root_or_skip!("veth_across_namespaces_and_bridge");
    let a = TestNs::new("va").await;
    let b = TestNs::new("vb").await;
    let link = Veth::create(&a.handle, "to-b", "to-a")
        .peer_netns(&b.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    assert_eq!(link.kind, LinkKind::Veth);
    assert_eq!(info(&a.ip_link("to-b").unwrap()).0, "veth");
    let peer = b.handle.link("to-a").await.unwrap();
    assert!(peer.up);
    assert!(b.ip_link("to-a").is_some());
    assert!(a.ip_link("to-a").is_none());

    // This host's kernel lacks CONFIG_BRIDGE_VLAN_FILTERING; the VM tests cover it on.
    let br = match Bridge::create(&a.handle, "br0")
        .vlan_filtering(true)
        .up()
        .execute()
        .await
    {
        Ok(br) => {
            assert!(matches!(&br.kind, LinkKind::Bridge(i) if i.vlan_filtering));
            assert_eq!(info(&a.ip_link("br0").unwrap()).1["vlan_filtering"], 1);
            br
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::KernelUnsupported, "{e}");
            assert!(
                e.to_string().contains("CONFIG_BRIDGE_VLAN_FILTERING"),
                "{e}"
            );
            assert!(a.ip_link("br0").is_none());
            let br = Bridge::create(&a.handle, "br0")
                .up()
                .execute()
                .await
                .unwrap();
            assert!(matches!(&br.kind, LinkKind::Bridge(i) if !i.vlan_filtering));
            assert_eq!(info(&a.ip_link("br0").unwrap()).1["vlan_filtering"], 0);
            br
        }
    };
    a.handle
        .set_link("to-b")
        .master(br.index)
        .execute()
        .await
        .unwrap();
    assert_eq!(a.ip_link("to-b").unwrap()["master"], "br0");
    assert_eq!(a.handle.link("to-b").await.unwrap().master, Some(br.index));
    a.handle
        .set_link("to-b")
        .nomaster()
        .execute()
        .await
        .unwrap();
    assert!(a.ip_link("to-b").unwrap().get("master").is_none());
    a.handle.delete_link("br0").await.unwrap();
    a.handle.delete_link("to-b").await.unwrap();
    assert!(
        b.ip_link("to-a").is_none(),
        "deleting one end deletes the pair"
    );
}

#[tokio::test]
async fn link_get_list_set_rename_delete() {
    root_or_skip!("link_get_list_set_rename_delete");
    let t = TestNs::with_veth("set", "p0", "p1").await;
    let h = &t.handle;
    let by_name = h.link("p0").await.unwrap();
    let by_index = h.link(by_name.index).await.unwrap();
    assert_eq!(by_name, by_index);
    let names: Vec<String> = h
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    for n in ["lo", "p0", "p1"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let mac: MacAddr = "02:00:00:aa:bb:cc".parse().unwrap();
    h.set_link("p0")
        .down()
        .mtu(1600)
        .mac(mac)
        .promisc(true)
        .alias("parent NIC")
        .execute()
        .await
        .unwrap();
    let l = h.link("p0").await.unwrap();
    assert!(!l.up && l.promisc);
    assert_eq!(
        (l.mtu, l.mac, l.alias.as_deref()),
        (1600, Some(mac), Some("parent NIC"))
    );
    let j = t.ip_link("p0").unwrap();
    assert_eq!(j["mtu"], 1600);
    assert_eq!(j["address"], "02:00:00:aa:bb:cc");
    assert_eq!(j["promiscuity"], 1);
    assert_eq!(j["ifalias"], "parent NIC");
    assert!(!j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    h.set_link("p0")
        .up()
        .promisc(false)
        .execute()
        .await
        .unwrap();
    let j = t.ip_link("p0").unwrap();
    assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(j["promiscuity"], 0);
    h.set_link("p0").name("ens192").execute().await.unwrap();
    assert!(t.ip_link("p0").is_none());
    assert_eq!(h.link("ens192").await.unwrap().index, by_name.index);
    // Errors name the object.
    let e = h.link("nope0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("nope0") && e.to_string().contains(&t.name),
        "{e}"
    );
    let e = h.set_link("ens192").name("p1").execute().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let e = h.link("bad/name").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = h.delete_link("nope0").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    h.delete_link("ens192").await.unwrap();
    assert!(t.ip_link("ens192").is_none() && t.ip_link("p1").is_none());
}

#[tokio::test]
async fn create_errors_name_object_and_cure() {
    root_or_skip!("create_errors_name_object_and_cure");
    let t = TestNs::with_veth("err", "p0", "p1").await;
    let h = &t.handle;
    let e = Macvlan::create(h, "mv0", "ens999", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("parent `ens999`"), "{e}");
    Macvlan::create(h, "mv0", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap();
    let e = Macvlan::create(h, "mv0", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(
        e.to_string().contains("`mv0`") && e.to_string().contains("taken"),
        "{e}"
    );
    for bad in ["a-name-too-long-x", "a/b", "a b", ".."] {
        let e = Macvlan::create(h, bad, "p0", MacvlanMode::Bridge)
            .execute()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
    }
    let e = Macvlan::create(h, "mv1", "p0", MacvlanMode::Bridge)
        .mtu(9000)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("above its parent"), "{e}");
    assert!(t.ip_link("mv1").is_none());
    // VLAN: on a kernel without 8021q the error says how to get it; with it, the link is made.
    match Vlan::create(h, "p0", VlanId::new(10).unwrap())
        .execute()
        .await
    {
        Ok(l) => {
            assert_eq!(l.name, "p0.10");
            assert_eq!(info(&t.ip_link("p0.10").unwrap()).1["id"], 10);
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::KernelUnsupported, "{e}");
            assert!(e.to_string().contains("modprobe 8021q"), "{e}");
            assert!(!std::path::Path::new("/proc/net/vlan/config").exists());
        }
    }
    // Default VLAN names that overflow IFNAMSIZ must be named explicitly.
    h.set_link("p1")
        .name("p1234567890123")
        .execute()
        .await
        .unwrap();
    let e = Vlan::create(h, "p1234567890123", VlanId::new(4000).unwrap())
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[tokio::test]
async fn create_directly_in_target_namespace() {
    root_or_skip!("create_directly_in_target_namespace");
    let host = TestNs::with_veth("host", "eth0", "peer0").await;
    let c1 = TestNs::new("c1").await;
    // The target has no `eth0`; the host does (host-side clash must not matter).
    let l = Macvlan::create(&host.handle, "eth0", "eth0", MacvlanMode::Bridge)
        .target(&c1.handle)
        .mtu(1400)
        .up()
        .execute()
        .await
        .unwrap();
    assert_eq!(l.name, "eth0");
    assert!(l.up);
    assert!(
        l.parent_netns_id.is_some(),
        "parent lives in another namespace"
    );
    let j = c1.ip_link("eth0").unwrap();
    assert_eq!(info(&j).0, "macvlan");
    assert_eq!(j["mtu"], 1400);
    // The parent's namespace id as iproute2 reads it.
    assert_eq!(
        j["link_netnsid"].as_i64(),
        l.parent_netns_id.map(i64::from),
        "{j}"
    );
    assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(
        host.ip_link("eth0").map(|j| info(&j).0.to_string()),
        Some("veth".into())
    );
    // Via a Netns (no handle) too.
    Macvlan::create(&host.handle, "eth1", "eth0", MacvlanMode::Bridge)
        .netns(&c1.ns)
        .execute()
        .await
        .unwrap();
    assert!(c1.ip_link("eth1").is_some());
    // Name taken inside the target: the error names the target namespace.
    let e = Macvlan::create(&host.handle, "eth0", "eth0", MacvlanMode::Bridge)
        .target(&c1.handle)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains(&c1.name), "{e}");
    // Rename inside the namespace.
    c1.handle
        .set_link("eth1")
        .name("net1")
        .execute()
        .await
        .unwrap();
    assert!(c1.ip_link("net1").is_some() && c1.ip_link("eth1").is_none());
}

/// A request too big for netlink is refused before it is sent, naming the limit; the handle
/// (shared by every clone) keeps working; a list that fits is made and read back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused_and_the_handle_lives_on() {
    root_or_skip!("oversized_request_is_refused_and_the_handle_lives_on");
    let t = TestNs::with_veth("big", "par0", "par1").await;
    let h = &t.handle;
    let macs = |n: usize| -> Vec<MacAddr> {
        (0..n)
            .map(|i| MacAddr::new([0x02, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
            .collect()
    };
    for n in [5_400, 5_500, 100_000] {
        let r = Macvlan::create(h, "ms0", "par0", MacvlanMode::Source)
            .source_macs(macs(n))
            .execute()
            .await;
        match r {
            // What fits is made whole.
            Ok(link) => {
                let j = t.ip_link("ms0").expect("oracle sees the link");
                assert_eq!(info(&j).1["macaddr_count"], n, "{n} MACs");
                assert_eq!(link.name, "ms0");
                h.delete_link("ms0").await.unwrap();
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{n} MACs: {e}");
                let m = e.to_string();
                assert!(m.contains("ms0") && m.contains("at most"), "{m}");
                assert!(t.ip_link("ms0").is_none(), "{n} MACs: nothing left behind");
            }
        }
        // The shared handle still works, from another task too.
        let h2 = h.clone();
        tokio::spawn(async move { h2.link("par0").await.unwrap() })
            .await
            .unwrap();
        assert_eq!(h.link("par0").await.unwrap().name, "par0");
    }
    // A too long alias is refused before the link is made.
    let e = Macvlan::create(h, "al0", "par0", MacvlanMode::Bridge)
        .alias("a".repeat(256))
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("at most 255"), "{e}");
    assert!(t.ip_link("al0").is_none());
    // The limit, exactly: the largest list that fits is made.
    let max = Macvlan::MAX_SOURCE_MACS;
    Macvlan::create(h, "ms1", "par0", MacvlanMode::Source)
        .source_macs(macs(max))
        .execute()
        .await
        .unwrap();
    assert_eq!(info(&t.ip_link("ms1").unwrap()).1["macaddr_count"], max);
    // A dump of the namespace still reads every link, this one included.
    let names: Vec<String> = h
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(
        names.iter().any(|n| n == "ms1") && names.iter().any(|n| n == "par0"),
        "{names:?}"
    );
    let e = Macvlan::create(h, "ms2", "par0", MacvlanMode::Source)
        .source_macs(macs(max + 1))
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains(&max.to_string()), "{e}");
    assert!(t.ip_link("ms2").is_none());
}

#[tokio::test]
async fn move_existing_link_and_attach() {
    root_or_skip!("move_existing_link_and_attach");
    let host = TestNs::with_veth("mvh", "ens192", "peer0").await;
    let c1 = TestNs::new("att").await;
    Macvlan::create(&host.handle, "mv0", "ens192", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap();
    let done = Macvlan::attach_to_netns(&host.handle, "mv0", &c1.ns)
        .name("eth0")
        .mtu(1450)
        .address("172.22.16.10/24".parse().unwrap())
        .address("fd00:16::10/64".parse().unwrap())
        .nodad()
        .gateway("172.22.16.1".parse().unwrap())
        .gateway("fd00:16::1".parse().unwrap())
        .route(Route::new("10.50.0.0/16".parse().unwrap()).via("172.22.16.254".parse().unwrap()))
        .execute()
        .await
        .unwrap();
    assert_eq!(done.link.name, "eth0");
    assert!(done.link.up);
    assert!(host.ip_link("mv0").is_none());
    let j = c1.ip_link("eth0").unwrap();
    assert_eq!(j["mtu"], 1450);
    let locals = ip_addrs(&c1, "eth0");
    assert!(
        locals.contains(&"172.22.16.10/24".to_string()),
        "{locals:?}"
    );
    assert!(locals.contains(&"fd00:16::10/64".to_string()), "{locals:?}");
    let r4 = c1.ip(&["-4", "route", "show"]);
    let has = |v: &serde_json::Value, dst: &str, gw: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == dst && r["gateway"] == gw && r["dev"] == "eth0")
    };
    assert!(has(&r4, "default", "172.22.16.1"), "{r4}");
    assert!(has(&r4, "10.50.0.0/16", "172.22.16.254"), "{r4}");
    assert!(has(
        &c1.ip(&["-6", "route", "show"]),
        "default",
        "fd00:16::1"
    ));
    // Library readback agrees.
    let routes = c1.handle.routes(None).await.unwrap();
    assert!(routes
        .iter()
        .any(|r| r.destination.prefix_len() == 0
            && r.gateway == Some("172.22.16.1".parse().unwrap())));
    let mine = c1.handle.addresses(Some("eth0".into())).await.unwrap();
    assert!(mine
        .iter()
        .any(|a| a.address.to_string() == "172.22.16.10/24"));
}

#[tokio::test]
async fn attach_rolls_back_when_a_later_step_fails() {
    root_or_skip!("attach_rolls_back_when_a_later_step_fails");
    let host = TestNs::with_veth("rbh", "ens192", "peer0").await;
    let c1 = TestNs::new("rbc").await;
    Macvlan::create(&host.handle, "mv0", "ens192", MacvlanMode::Bridge)
        .up()
        .execute()
        .await
        .unwrap();
    // Injected failure: a gateway outside every subnet of the link fails at the route step,
    // after the move, the address and the up have been done.
    let e = Macvlan::attach_to_netns(&host.handle, "mv0", &c1.ns)
        .name("eth0")
        .address("172.22.16.10/24".parse().unwrap())
        .gateway("192.0.2.1".parse().unwrap())
        .execute()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("undone"), "{e}");
    assert!(e.to_string().contains("192.0.2.1"), "{e}");
    assert!(c1.ip_link("eth0").is_none(), "nothing left in the target");
    let back = host
        .ip_link("mv0")
        .expect("link is back under its old name");
    assert!(
        back["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "and up again as it was"
    );
    assert!(
        !ip_addrs(&host, "mv0")
            .iter()
            .any(|a| a.starts_with("172.22.")),
        "no address left on it"
    );
}

/// The kernel moves a link before it renames it, in one request: a name taken in the target
/// (`lo`) fails the rename after the move. The link comes back, as the docs promise; and an
/// undo restores the MTU and MAC an attach had changed.
#[tokio::test]
async fn attach_undoes_a_refused_rename_and_restores_mtu_and_mac() {
    root_or_skip!("attach_undoes_a_refused_rename_and_restores_mtu_and_mac");
    let host = TestNs::with_veth("arh", "x0", "x1").await;
    let c1 = TestNs::new("arc").await;
    let names = |t: &TestNs| -> Vec<String> {
        t.ip(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    };
    let before = host.ip_link("x0").unwrap();
    let e = Veth::attach_to_netns(&host.handle, "x0", &c1.ns)
        .name("lo")
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("undone"), "{e}");
    assert_eq!(names(&c1), ["lo"], "nothing left in the target");
    let back = host.ip_link("x0").expect("x0 is back under its name");
    assert!(back["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(back["address"], before["address"]);
    assert_eq!(host.handle.link("x0").await.unwrap().name, "x0");
    // A later step fails (a gateway no address reaches) after the MTU and MAC were set.
    let e = Veth::attach_to_netns(&host.handle, "x0", &c1.ns)
        .name("eth0")
        .mtu(1400)
        .mac(MacAddr::new([0x02, 0, 0, 0, 0x14, 0]))
        .gateway("192.0.2.1".parse().unwrap())
        .execute()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("undone"), "{e}");
    assert_eq!(names(&c1), ["lo"]);
    let back = host.ip_link("x0").expect("x0 is back");
    assert_eq!(back["mtu"], before["mtu"], "MTU restored");
    assert_eq!(back["address"], before["address"], "MAC restored");
    assert!(back["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    // And the attach works once the name is free.
    let done = Veth::attach_to_netns(&host.handle, "x0", &c1.ns)
        .name("eth0")
        .execute()
        .await
        .unwrap();
    assert_eq!(done.link.name, "eth0");
    assert_eq!(names(&c1), ["lo", "eth0"]);
    // The one-request primitive cannot undo, but says where the link went.
    let e = host
        .handle
        .set_link("x1")
        .netns(&c1.ns)
        .name("lo")
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("moved the link into"), "{e}");
    let mut inside = names(&c1);
    inside.sort();
    assert_eq!(inside, ["eth0", "lo", "x1"]);
}

#[tokio::test]
async fn addresses_and_routes() {
    root_or_skip!("addresses_and_routes");
    let t = TestNs::with_veth("ar", "p0", "p1").await;
    let h = &t.handle;
    h.add_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap();
    h.add_address("p0", "fd00:1::2/64".parse().unwrap())
        .await
        .unwrap();
    let e = h
        .add_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    h.replace_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap();
    let list = h.addresses(Some("p0".into())).await.unwrap();
    assert!(list
        .iter()
        .any(|a| a.address.to_string() == "10.1.0.2/24" && a.scope == "global"));
    assert!(list.iter().any(|a| a.address.to_string() == "fd00:1::2/64"));
    let oracle = t.ip(&["-4", "addr", "show", "dev", "p0"]);
    assert_eq!(oracle[0]["addr_info"][0]["local"], "10.1.0.2");
    assert_eq!(oracle[0]["addr_info"][0]["broadcast"], "10.1.0.255");

    let r = Route::new("10.2.0.0/16".parse().unwrap())
        .via("10.1.0.1".parse().unwrap())
        .metric(50);
    h.add_route(&r).await.unwrap();
    assert_eq!(
        h.add_route(&r).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    h.replace_route(&r).await.unwrap();
    let host_route = Route::new("10.3.0.7/32".parse().unwrap()).dev("p0");
    h.add_route(&host_route).await.unwrap();
    let oracle = t.ip(&["-4", "route", "show"]);
    let arr = oracle.as_array().unwrap();
    assert!(
        arr.iter()
            .any(|x| x["dst"] == "10.2.0.0/16" && x["gateway"] == "10.1.0.1" && x["metric"] == 50),
        "{oracle}"
    );
    assert!(
        arr.iter()
            .any(|x| x["dst"] == "10.3.0.7" && x["scope"] == "link" && x["dev"] == "p0"),
        "{oracle}"
    );
    let mine = h.routes(None).await.unwrap();
    assert!(mine
        .iter()
        .any(|x| x.destination.to_string() == "10.2.0.0/16" && x.metric == Some(50)));
    h.delete_route(&r).await.unwrap();
    h.delete_route(&host_route).await.unwrap();
    assert_eq!(
        h.delete_route(&r).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let oracle = t.ip(&["-4", "route", "show"]);
    assert!(!oracle
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["dst"] == "10.2.0.0/16"));
    let e = h
        .add_route(&Route::default_via("10.9.9.9".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not reachable"), "{e}");
    h.delete_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        h.delete_address("p0", "10.1.0.2/24".parse().unwrap())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(!ip_addrs(&t, "p0").contains(&"10.1.0.2/24".to_string()));
}

#[tokio::test]
async fn sysctls_per_namespace() {
    root_or_skip!("sysctls_per_namespace");
    let t = TestNs::with_veth("sc", "p0", "p1").await;
    t.ns.set_forwarding(true, true).unwrap();
    assert_eq!(t.ns.sysctl("net.ipv4.ip_forward").unwrap(), "1");
    let out = t.exec(&[
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n1\n");
    let p0 = underlay::SysctlIf::Name("p0".parse().unwrap());
    t.ns.set_arp_ignore(&p0, 1).unwrap();
    t.ns.set_arp_announce(&p0, 2).unwrap();
    t.ns.set_accept_dad(&p0, 0).unwrap();
    let out = t.exec(&[
        "cat",
        "/proc/sys/net/ipv4/conf/p0/arp_ignore",
        "/proc/sys/net/ipv4/conf/p0/arp_announce",
        "/proc/sys/net/ipv6/conf/p0/accept_dad",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n0\n");
    // The caller's own namespace is untouched (read only).
    let here = Netns::current().unwrap();
    assert_ne!(here, t.ns);
    assert!(t.ns.set_arp_ignore(&p0, 9).is_err());
    assert_eq!(
        t.ns.sysctl("net.ipv4.conf.nope0.arp_ignore")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_links_concurrently_on_one_handle() {
    root_or_skip!("two_hundred_links_concurrently_on_one_handle");
    let t = TestNs::with_veth("conc", "p0", "p1").await;
    let h = Arc::new(t.handle.clone());
    let parent = h.link_index("p0").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            Macvlan::create(&h, &format!("c{i}"), parent, MacvlanMode::Bridge)
                .group(77)
                .up()
                .execute()
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let links = h.links().await.unwrap();
    assert_eq!(links.iter().filter(|l| l.group == 77).count(), 200);
    // (iproute2 ignores `group` as a filter with -j: count the field instead.)
    let in_group = || {
        t.ip(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["group"] == "77")
            .count()
    };
    assert_eq!(in_group(), 200);
    // One request deletes them all.
    h.delete_link_group(77).await.unwrap();
    assert_eq!(in_group(), 0);
    assert_eq!(
        h.delete_link_group(0).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

/// Dumps at once on one handle (the kernel refuses a second dump on a socket while one runs,
/// `EBUSY`): they take turns, and all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dumps_on_one_handle() {
    root_or_skip!("concurrent_dumps_on_one_handle");
    let t = TestNs::with_veth("dumps", "p0", "p1").await;
    for i in 0..50u32 {
        let r = underlay::Route::new(
            format!("10.{}.{}.0/24", 60 + i / 200, i % 200)
                .parse()
                .unwrap(),
        )
        .dev("p0");
        t.handle.add_route(&r).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..32 {
        let h = t.handle.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                h.routes(None).await.map(|r| r.len())
            } else {
                h.links().await.map(|l| l.len())
            }
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let n = task.await.unwrap().unwrap();
        assert!(n >= if i % 2 == 0 { 50 } else { 3 }, "dump {i}: {n}");
    }
}

#[tokio::test]
async fn netns_create_open_list_delete() {
    root_or_skip!("netns_create_open_list_delete");
    let name = format!("ult-ns-{}", std::process::id());
    let ns = Netns::create(&name).unwrap();
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&name),
        "iproute2 sees it"
    );
    assert!(Netns::list().unwrap().contains(&name));
    assert_eq!(
        Netns::create(&name).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let again = Netns::open(&name).unwrap();
    assert_eq!(again, ns);
    assert_eq!(Netns::open_path(format!("/run/netns/{name}")).unwrap(), ns);
    assert_ne!(ns, Netns::current().unwrap());
    let inode = ns
        .run(|| {
            std::fs::metadata("/proc/thread-self/ns/net")
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        })
        .unwrap()
        .unwrap();
    assert_eq!(inode, ns.inode());
    // A handle inside sees only lo.
    let h = Handle::for_netns(&ns).await.unwrap();
    let links = h.links().await.unwrap();
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        vec!["lo"]
    );
    Netns::delete(&name).unwrap();
    assert!(!Netns::list().unwrap().contains(&name));
    assert_eq!(
        Netns::delete(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(Netns::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    let anon = Netns::create_anonymous().unwrap();
    assert_ne!(anon, ns);
}

/// Named namespaces' mount points are hard links to one inode (no inode allocated per
/// namespace), and behave as iproute2's files do: `ip netns del` removes one, and names are
/// still created after every earlier one is gone.
#[tokio::test]
async fn netns_mount_points_share_an_inode() {
    root_or_skip!("netns_mount_points_share_an_inode");
    let tag = format!("ult-nl-{}", std::process::id());
    let (a, b, c) = (format!("{tag}-a"), format!("{tag}-b"), format!("{tag}-c"));
    let ns_a = Netns::create(&a).unwrap();
    let ns_b = Netns::create(&b).unwrap();
    assert_ne!(ns_a, ns_b);
    // Under the mount, `a` is an empty file linked at least twice (a and b).
    let path_a = std::ffi::CString::new(format!("/run/netns/{a}")).unwrap();
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::umount2(path_a.as_ptr(), libc::MNT_DETACH) },
        0
    );
    let meta = std::fs::metadata(format!("/run/netns/{a}")).unwrap();
    assert!(
        std::os::unix::fs::MetadataExt::nlink(&meta) >= 2,
        "nlink {}",
        std::os::unix::fs::MetadataExt::nlink(&meta)
    );
    assert_eq!(meta.len(), 0);
    std::fs::remove_file(format!("/run/netns/{a}")).unwrap();
    drop(ns_a);
    // iproute2 deletes ours as its own.
    let del = std::process::Command::new("ip")
        .args(["netns", "del", &b])
        .status()
        .unwrap();
    assert!(del.success());
    assert!(!std::path::Path::new(&format!("/run/netns/{b}")).exists());
    drop(ns_b);
    // With every link gone, the next name still comes (a new template when needed).
    let ns_c = Netns::create(&c).unwrap();
    assert!(Netns::list().unwrap().contains(&c));
    assert_eq!(Netns::open(&c).unwrap(), ns_c);
    Netns::delete(&c).unwrap();
    assert!(!std::path::Path::new(&format!("/run/netns/{c}")).exists());
}

/// The threads that make namespaces go back to their own namespace after each one (they
/// would keep a deleted namespace alive otherwise), and are reused.
#[tokio::test]
async fn namespace_makers_return_home() {
    root_or_skip!("namespace_makers_return_home");
    let ns_of =
        |path: &str| std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let home = ns_of("/proc/self/ns/net").unwrap();
    let tag = format!("ult-mk-{}", std::process::id());
    let mut made = Vec::new();
    for i in 0..8 {
        let (ns, _h) = Handle::create_netns(&format!("{tag}-{i}")).await.unwrap();
        made.push(ns.inode());
        Netns::delete(&format!("{tag}-{i}")).unwrap();
    }
    let makers = || -> Vec<u64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| t.ok())
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "underlay-nsmake")
            })
            .filter_map(|t| ns_of(&t.path().join("ns/net").to_string_lossy()).ok())
            .collect()
    };
    let cpus = std::thread::available_parallelism().unwrap().get();
    let n = makers().len();
    assert!(n >= 1 && n <= cpus, "{n} maker threads for {cpus} CPUs");
    // Other tests of this binary make namespaces meanwhile: wait for a moment all are home.
    let mut last = Vec::new();
    let home_again = (0..250).any(|_| {
        last = makers();
        let all_home = last.iter().all(|ns| *ns == home);
        if !all_home {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        all_home
    });
    assert!(
        home_again,
        "maker threads stayed away: {last:?} (home {home})"
    );
    assert!(!last.iter().any(|ns| made.contains(ns)));
}

#[tokio::test]
async fn ping_probe_between_namespaces() {
    root_or_skip!("ping_probe_between_namespaces");
    let a = TestNs::new("pa").await;
    let b = TestNs::new("pb").await;
    Veth::create(&a.handle, "v0", "v1")
        .peer_netns(&b.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    a.handle
        .add_address("v0", "10.77.0.1/24".parse().unwrap())
        .await
        .unwrap();
    b.handle
        .add_address_with("v1", "10.77.0.2/24".parse().unwrap(), Default::default())
        .await
        .unwrap();
    a.handle
        .add_address_with(
            "v0",
            "fd77::1/64".parse().unwrap(),
            underlay::AddressOptions {
                nodad: true,
                noprefixroute: false,
            },
        )
        .await
        .unwrap();
    b.handle
        .add_address_with(
            "v1",
            "fd77::2/64".parse().unwrap(),
            underlay::AddressOptions {
                nodad: true,
                noprefixroute: false,
            },
        )
        .await
        .unwrap();
    let t = std::time::Duration::from_secs(2);
    assert!(a
        .ns
        .ping("10.77.0.2".parse().unwrap(), t)
        .unwrap()
        .is_some());
    assert!(b
        .ns
        .ping_async("fd77::1".parse().unwrap(), t)
        .await
        .unwrap()
        .is_some());
    // Nobody there: no reply, no error.
    let short = std::time::Duration::from_millis(300);
    assert!(a
        .ns
        .ping("10.77.0.9".parse().unwrap(), short)
        .unwrap()
        .is_none());
    assert!(
        a.ns.ping("192.0.2.1".parse().unwrap(), short)
            .unwrap()
            .is_none(),
        "no route"
    );
    // The oracle agrees (iputils ping, when installed).
    if std::path::Path::new("/usr/bin/ping").exists() || std::path::Path::new("/bin/ping").exists()
    {
        assert!(a
            .exec(&["ping", "-c1", "-W2", "10.77.0.2"])
            .status
            .success());
    }
}

#[tokio::test]
async fn announce_teaches_the_neighbours() {
    root_or_skip!("announce_teaches_the_neighbours");
    let a = TestNs::new("ana").await;
    let b = TestNs::new("anb").await;
    let v0 = Veth::create(&a.handle, "v0", "v1")
        .peer_netns(&b.ns)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    a.handle
        .add_address("v0", "10.78.0.1/24".parse().unwrap())
        .await
        .unwrap();
    a.handle
        .add_address_with(
            "v0",
            "fd78::1/64".parse().unwrap(),
            underlay::AddressOptions {
                nodad: true,
                noprefixroute: false,
            },
        )
        .await
        .unwrap();
    b.handle
        .add_address("v1", "10.78.0.2/24".parse().unwrap())
        .await
        .unwrap();
    // b learns from unsolicited ARP only with arp_accept.
    b.ns.set_sysctl("net/ipv4/conf/v1/arp_accept", "1").unwrap();
    a.ns.announce(
        v0.index,
        v0.mac.unwrap(),
        vec!["10.78.0.1".parse().unwrap(), "fd78::1".parse().unwrap()],
    )
    .unwrap();
    let mut learned = false;
    for _ in 0..50 {
        let neigh = b.ip(&["neigh", "show", "dev", "v1"]);
        if neigh
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["dst"] == "10.78.0.1" && n["lladdr"] == v0.mac.unwrap().to_string().as_str())
        {
            learned = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        learned,
        "b's neighbour table: {}",
        b.ip(&["neigh", "show", "dev", "v1"])
    );
}

/// A multicast, all-zero or broadcast MAC is refused up front as an invalid argument, naming
/// the MAC, wherever one is given: create, change, a veth peer, attach, source MACs, announce.
/// (The kernel's answer, `EADDRNOTAVAIL`, used to come back as "not found: check the name".)
#[tokio::test]
async fn invalid_macs_are_invalid_arguments() {
    root_or_skip!("invalid_macs_are_invalid_arguments");
    let t = TestNs::with_veth("badmac", "p0", "p1").await;
    let c = TestNs::new("badmacc").await;
    let h = &t.handle;
    let bad: Vec<MacAddr> = [
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
        "ff:ff:ff:ff:ff:ff",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let expect_invalid = |e: underlay::Error, mac: MacAddr, step: &str| {
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{step} {mac}: {e}");
        assert!(e.to_string().contains(&mac.to_string()), "{step}: {e}");
        assert!(!e.to_string().contains("check the name"), "{step}: {e}");
    };
    Macvlan::create(h, "mv0", "p0", MacvlanMode::Bridge)
        .execute()
        .await
        .unwrap();
    let before = t.ip_link("mv0").unwrap()["address"].clone();
    for &mac in &bad {
        let e = Macvlan::create(h, "mv1", "p0", MacvlanMode::Bridge)
            .mac(mac)
            .execute()
            .await
            .unwrap_err();
        expect_invalid(e, mac, "create");
        assert!(t.ip_link("mv1").is_none());
        let e = h.set_link("mv0").mac(mac).execute().await.unwrap_err();
        expect_invalid(e, mac, "set_link");
        let e = Veth::create(h, "va", "vb")
            .peer_mac(mac)
            .execute()
            .await
            .unwrap_err();
        expect_invalid(e, mac, "veth peer");
        assert!(t.ip_link("va").is_none() && t.ip_link("vb").is_none());
        let e = Macvlan::attach_to_netns(h, "mv0", &c.ns)
            .mac(mac)
            .execute()
            .await
            .unwrap_err();
        expect_invalid(e, mac, "attach");
        let e = Macvlan::create(h, "mv2", "p0", MacvlanMode::Source)
            .source_macs([MacAddr::random(), mac])
            .execute()
            .await
            .unwrap_err();
        expect_invalid(e, mac, "source MACs");
        let e =
            t.ns.announce(1, mac, vec!["172.22.16.10".parse().unwrap()])
                .unwrap_err();
        expect_invalid(e, mac, "announce");
    }
    // Nothing changed, nothing moved.
    assert_eq!(t.ip_link("mv0").unwrap()["address"], before);
    assert!(c.ip_link("mv0").is_none());
    assert!(t.ip_link("mv2").is_none());
    // The kernel's own EADDRNOTAVAIL on a link request (a MAC of the wrong length cannot be
    // built; a refused MAC is the only cause) is not "not found" either: the errno is kept.
    let e = h.set_link("no-such-link").up().execute().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// `routes(Some(0))` lists every table (iproute2's `table all`), `routes(None)` the main one;
/// a route prints in iproute2's words (`dev eth0`, `scope link`, `src`, `metric`, `table`),
/// so that `ip route add` takes the text and makes the same route.
#[tokio::test]
async fn routes_of_every_table_and_in_iproute2_words() {
    root_or_skip!("routes_of_every_table_and_in_iproute2_words");
    let t = TestNs::with_veth("rtall", "p0", "p1").await;
    let h = &t.handle;
    h.add_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap();
    let in_100 = Route::new("10.5.0.0/16".parse().unwrap())
        .via("10.1.0.1".parse().unwrap())
        .table(100);
    h.add_route(&in_100).await.unwrap();
    let in_1000 = Route::new("10.6.0.0/16".parse().unwrap())
        .dev("p0")
        .table(1000);
    h.add_route(&in_1000).await.unwrap();
    let main = h.routes(None).await.unwrap();
    assert!(
        main.iter().all(|r| r.table == underlay::TABLE_MAIN),
        "{main:?}"
    );
    let all = h.routes(Some(underlay::TABLE_ALL)).await.unwrap();
    for (dst, table) in [
        ("10.5.0.0/16", 100),
        ("10.6.0.0/16", 1000),
        ("10.1.0.0/24", 254),
    ] {
        assert!(
            all.iter()
                .any(|r| r.destination.to_string() == dst && r.table == table),
            "{dst} in table {table}: {all:?}"
        );
    }
    // Oracle: every unicast route iproute2 lists in every table, and no other.
    let oracle = t.ip(&["-4", "route", "show", "table", "all"]);
    let oracle6 = t.ip(&["-6", "route", "show", "table", "all"]);
    let unicast = oracle
        .as_array()
        .unwrap()
        .iter()
        .chain(oracle6.as_array().unwrap())
        .filter(|r| r["type"].as_str().unwrap_or("unicast") == "unicast")
        .count();
    assert_eq!(all.len(), unicast, "{oracle} {oracle6} vs {all:?}");
    assert_eq!(
        h.routes(Some(100)).await.unwrap().len(),
        1,
        "one table alone"
    );

    // The text of a route is what `ip route add` takes.
    let given = Route::new("10.7.0.0/24".parse().unwrap())
        .dev("p0")
        .source("10.1.0.2".parse().unwrap())
        .metric(7)
        .table(100);
    assert_eq!(
        given.to_string(),
        "10.7.0.0/24 dev p0 table 100 src 10.1.0.2 metric 7"
    );
    let out = t.exec(&["sh", "-c", &format!("ip route add {given}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = h
        .routes(Some(100))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.destination.to_string() == "10.7.0.0/24")
        .unwrap();
    let index = h.link_index("p0").await.unwrap();
    assert_eq!(
        back.to_string(),
        format!("10.7.0.0/24 dev if{index} table 100 scope link src 10.1.0.2 metric 7")
    );
    // iproute2 names the device where this readback knows only its index.
    let j = t.ip(&["route", "show", "table", "100", "10.7.0.0/24"]);
    assert_eq!(j[0]["dev"], "p0");
    assert_eq!(j[0]["prefsrc"], "10.1.0.2");
    assert_eq!(j[0]["metric"], 7);
    assert_eq!(j[0]["scope"], "link");
}

/// Link index 0 names no link: refused before any request, with advice; and a kernel error
/// states its errno once.
#[tokio::test]
async fn link_index_zero_and_errno_once() {
    root_or_skip!("link_index_zero_and_errno_once");
    let t = TestNs::with_veth("ix0", "p0", "p1").await;
    let h = &t.handle;
    let e = h.link(0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("start at 1"), "{e}");
    let e = h.set_link(0).up().execute().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = h.delete_link(0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // A kernel refusal: the errno appears once, as `(errno N: text)`.
    let e = h.delete_link(9999).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(text.matches("No such device").count(), 1, "{text}");
    assert!(!text.contains("os error"), "{text}");
    assert!(text.contains("(errno 19: No such device)"), "{text}");
}

/// A huge input (a 1 MiB name) gives a short message: the input shown cut, the cure kept.
#[tokio::test]
async fn huge_inputs_give_short_messages() {
    root_or_skip!("huge_inputs_give_short_messages");
    let t = TestNs::with_veth("huge", "p0", "p1").await;
    let huge = "x".repeat(1 << 20);
    let errors = [
        Netns::create(&huge).unwrap_err(),
        Netns::open(&huge).unwrap_err(),
        Macvlan::create(&t.handle, &huge, "p0", MacvlanMode::Bridge)
            .execute()
            .await
            .unwrap_err(),
        t.handle.link(huge.as_str()).await.unwrap_err(),
        huge.parse::<MacAddr>().unwrap_err(),
        huge.parse::<VlanId>().unwrap_err(),
    ];
    for e in errors {
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{}",
            &e.to_string()[..200]
        );
        let text = e.to_string();
        assert!(text.len() < 1024, "{} bytes: {}", text.len(), &text[..200]);
        assert!(text.contains("1048576 bytes"), "{text}");
    }
}

/// Opening something that is not a namespace file (a FIFO, a directory, a character device)
/// is refused at once, naming what it is: open(2) on a FIFO would wait for a writer forever.
#[test]
fn netns_open_path_refuses_what_is_no_namespace() {
    if !privileged("netns_open_path_refuses_what_is_no_namespace") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ul-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Netns::open_path(&path).map(|_| ()));
    });
    // A liveness guard, not a timing assertion: without it a regression hangs the suite.
    let got = rx.recv_timeout(std::time::Duration::from_secs(60));
    if got.is_err() {
        // Release the blocked open(2) so the thread ends, then fail.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let e = got.expect("open_path on a FIFO blocked").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("FIFO"), "{e}");
    for (path, what) in [("/tmp", "directory"), ("/dev/null", "character device")] {
        let e = Netns::open_path(path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
}

/// Everything `ip -j addr` says of an address, the library reads back too: flags (nodad,
/// noprefixroute, secondary, deprecated, dynamic), the peer and the broadcast address.
#[tokio::test]
async fn address_flags_peer_and_broadcast_read_back() {
    root_or_skip!("address_flags_peer_and_broadcast_read_back");
    let t = TestNs::with_veth("afl", "p0", "p1").await;
    let h = &t.handle;
    h.add_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap();
    let opts = underlay::AddressOptions {
        nodad: true,
        noprefixroute: true,
    };
    h.add_address_with("p0", "fd00:1::1/64".parse().unwrap(), opts)
        .await
        .unwrap();
    for cmd in [
        "ip addr add 10.1.0.3/24 dev p0 valid_lft 100 preferred_lft 0",
        "ip addr add 10.9.0.1 peer 10.9.0.2/32 dev p0",
    ] {
        let out = t.exec(&["sh", "-c", cmd]);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mine = h.addresses(Some("p0".into())).await.unwrap();
    let oracle = t.ip(&["addr", "show", "dev", "p0"]);
    let infos = oracle[0]["addr_info"].as_array().unwrap();
    let flag = |j: &serde_json::Value, f: &str| j[f].as_bool().unwrap_or(false);
    let mut seen = 0;
    for j in infos {
        let local: std::net::IpAddr = j["local"].as_str().unwrap().parse().unwrap();
        if local.is_ipv6() && local.to_string().starts_with("fe80") {
            continue;
        }
        let a = mine
            .iter()
            .find(|a| a.address.addr() == local)
            .unwrap_or_else(|| panic!("{local} not read back: {mine:?}"));
        seen += 1;
        assert_eq!(
            a.address.prefix_len(),
            j["prefixlen"].as_u64().unwrap() as u8
        );
        assert_eq!(a.nodad, flag(j, "nodad"), "{local}");
        assert_eq!(a.noprefixroute, flag(j, "noprefixroute"), "{local}");
        assert_eq!(a.secondary, flag(j, "secondary"), "{local}");
        assert_eq!(a.deprecated, flag(j, "deprecated"), "{local}");
        assert_eq!(a.dynamic, flag(j, "dynamic"), "{local}");
        assert_eq!(
            a.peer.map(|p| p.to_string()),
            j["address"].as_str().map(str::to_string),
            "{local}"
        );
        assert_eq!(
            a.broadcast.map(|p| p.to_string()),
            j["broadcast"].as_str().map(str::to_string),
            "{local}"
        );
    }
    assert_eq!(seen, 4, "{oracle}");
    // And the values themselves, not only agreement.
    let by = |ip: &str| {
        mine.iter()
            .find(|a| a.address.addr().to_string() == ip)
            .unwrap()
    };
    assert!(by("fd00:1::1").nodad && by("fd00:1::1").noprefixroute);
    let old = by("10.1.0.3");
    assert!(old.secondary && old.deprecated && old.dynamic);
    assert_eq!(by("10.9.0.1").peer, Some("10.9.0.2".parse().unwrap()));
    assert_eq!(
        by("10.1.0.2").broadcast,
        Some("10.1.0.255".parse().unwrap())
    );
    assert!(!by("10.1.0.2").secondary && !by("10.1.0.2").dynamic);
}

/// Multipath routes and the onlink flag: added by the library (iproute2 agrees), read back
/// with every next hop (not as a route with no gateway and no device), and printed in words
/// `ip route add` takes.
#[tokio::test]
async fn multipath_and_onlink_routes() {
    root_or_skip!("multipath_and_onlink_routes");
    let t = TestNs::with_veth("mpath", "p0", "p1").await;
    let h = &t.handle;
    h.add_address("p0", "10.1.0.2/24".parse().unwrap())
        .await
        .unwrap();
    h.add_address("p1", "10.2.0.2/24".parse().unwrap())
        .await
        .unwrap();
    let multi = Route::new("10.20.0.0/16".parse().unwrap())
        .nexthop(
            NextHop::via("10.1.0.1".parse().unwrap())
                .dev("p0")
                .weight(2),
        )
        .nexthop(NextHop::via("10.2.0.1".parse().unwrap()).dev("p1"));
    h.add_route(&multi).await.unwrap();
    let onlink = Route::new("10.30.0.0/16".parse().unwrap())
        .via("192.0.2.1".parse().unwrap())
        .dev("p0")
        .onlink();
    h.add_route(&onlink).await.unwrap();
    let oracle = t.ip(&["route", "show"]);
    let find = |dst: &str| {
        oracle
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == dst)
            .unwrap_or_else(|| panic!("{dst}: {oracle}"))
            .clone()
    };
    let j = find("10.20.0.0/16");
    let hops = j["nexthops"].as_array().unwrap();
    assert_eq!(hops.len(), 2, "{j}");
    assert_eq!(
        (
            hops[0]["gateway"].as_str(),
            hops[0]["dev"].as_str(),
            hops[0]["weight"].as_u64()
        ),
        (Some("10.1.0.1"), Some("p0"), Some(2))
    );
    assert_eq!(
        (
            hops[1]["gateway"].as_str(),
            hops[1]["dev"].as_str(),
            hops[1]["weight"].as_u64()
        ),
        (Some("10.2.0.1"), Some("p1"), Some(1))
    );
    let j = find("10.30.0.0/16");
    assert!(
        j["flags"].as_array().unwrap().iter().any(|f| f == "onlink"),
        "{j}"
    );

    let (p0, p1) = (
        h.link_index("p0").await.unwrap(),
        h.link_index("p1").await.unwrap(),
    );
    let mine = h.routes(None).await.unwrap();
    let back = mine
        .iter()
        .find(|r| r.destination.to_string() == "10.20.0.0/16")
        .unwrap();
    assert_eq!(back.gateway, None);
    assert_eq!(back.nexthops.len(), 2, "{back:?}");
    assert_eq!(back.nexthops[0].gateway, Some("10.1.0.1".parse().unwrap()));
    assert_eq!(back.nexthops[0].dev, Some(underlay::LinkRef::Index(p0)));
    assert_eq!(back.nexthops[0].weight, 2);
    assert_eq!(back.nexthops[1].dev, Some(underlay::LinkRef::Index(p1)));
    assert_eq!(back.nexthops[1].weight, 1);
    assert_eq!(
        back.to_string(),
        format!("10.20.0.0/16 nexthop via 10.1.0.1 dev if{p0} weight 2 nexthop via 10.2.0.1 dev if{p1} weight 1")
    );
    let back = mine
        .iter()
        .find(|r| r.destination.to_string() == "10.30.0.0/16")
        .unwrap();
    assert!(back.onlink, "{back:?}");
    assert_eq!(
        back.to_string(),
        format!("10.30.0.0/16 via 192.0.2.1 dev if{p0} onlink")
    );
    // The text of a multipath route is what `ip route add` takes.
    let text = Route::new("10.40.0.0/16".parse().unwrap())
        .nexthop(
            NextHop::via("10.1.0.1".parse().unwrap())
                .dev("p0")
                .weight(3),
        )
        .nexthop(
            NextHop::via("192.0.2.9".parse().unwrap())
                .dev("p1")
                .onlink(),
        )
        .to_string();
    assert_eq!(text, "10.40.0.0/16 nexthop via 10.1.0.1 dev p0 weight 3 nexthop via 192.0.2.9 dev p1 weight 1 onlink");
    let out = t.exec(&["sh", "-c", &format!("ip route add {text}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Deleting the multipath route by what was added removes it.
    h.delete_route(&multi).await.unwrap();
    assert!(!t
        .ip(&["route", "show"])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["dst"] == "10.20.0.0/16"));
}

/// What the kernel keeps of a macvlan or macvtap, read back: a macvtap's source MACs (once
/// read as nothing) and the passthru `nopromisc` flag, against `ip -d -j link`.
#[tokio::test]
async fn macvtap_source_macs_and_nopromisc_read_back() {
    root_or_skip!("macvtap_source_macs_and_nopromisc_read_back");
    let t = TestNs::with_veth("mvsrc", "p0", "p1").await;
    let h = &t.handle;
    let macs: Vec<MacAddr> = ["02:00:00:00:aa:01", "02:00:00:00:aa:02"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    let tap = Macvlan::create_tap(h, "tap0", "p0", MacvlanMode::Source)
        .source_macs(macs.clone())
        .execute()
        .await
        .unwrap();
    let oracle = t.ip_link("tap0").unwrap();
    assert_eq!(info(&oracle).1["macaddr_count"], 2, "{oracle}");
    let mut mine = match &tap.kind {
        LinkKind::Macvtap { source_macs, .. } => source_macs.clone(),
        other => panic!("{other:?}"),
    };
    mine.sort();
    assert_eq!(mine, macs, "{tap:?}");
    // Listing gives the same.
    let listed = h.links().await.unwrap();
    let again = listed.iter().find(|l| l.name == "tap0").unwrap();
    assert_eq!(again.kind, tap.kind);
    h.delete_link("tap0").await.unwrap();

    for (tapped, name) in [(false, "pt0"), (true, "pt1")] {
        let b = if tapped {
            Macvlan::create_tap(h, name, "p0", MacvlanMode::Passthru)
        } else {
            Macvlan::create(h, name, "p0", MacvlanMode::Passthru)
        };
        let link = b.nopromisc().execute().await.unwrap();
        let oracle = t.ip_link(name).unwrap();
        assert_eq!(info(&oracle).1["nopromisc"], true, "{oracle}");
        let nopromisc = match &link.kind {
            LinkKind::Macvlan { nopromisc, .. } | LinkKind::Macvtap { nopromisc, .. } => *nopromisc,
            other => panic!("{other:?}"),
        };
        assert!(nopromisc, "{link:?}");
        h.delete_link(name).await.unwrap();
    }
    let plain = Macvlan::create(h, "pt2", "p0", MacvlanMode::Passthru)
        .execute()
        .await
        .unwrap();
    assert!(
        matches!(
            plain.kind,
            LinkKind::Macvlan {
                nopromisc: false,
                ..
            }
        ),
        "{plain:?}"
    );
}

/// A VXLAN's TTL: inherited from the inner packet (`ttl inherit`), automatic (`ttl auto`,
/// 0: the route's hop limit, when unset) or fixed, each read back as iproute2 says it.
#[tokio::test]
async fn vxlan_ttl_inherit_auto_and_fixed() {
    root_or_skip!("vxlan_ttl_inherit_auto_and_fixed");
    let t = TestNs::new("vxttl").await;
    let h = &t.handle;
    let inherit = Vxlan::create(h, "vx1", 501)
        .ttl_inherit()
        .execute()
        .await
        .unwrap();
    let auto = Vxlan::create(h, "vx2", 502).execute().await.unwrap();
    let fixed = Vxlan::create(h, "vx3", 503).ttl(8).execute().await.unwrap();
    let vx = |l: &underlay::Link| match &l.kind {
        LinkKind::Vxlan(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        vx(&inherit).ttl_inherit && vx(&inherit).ttl == 0,
        "{inherit:?}"
    );
    assert!(!vx(&auto).ttl_inherit && vx(&auto).ttl == 0, "{auto:?}");
    assert!(!vx(&fixed).ttl_inherit && vx(&fixed).ttl == 8, "{fixed:?}");
    let text =
        |name: &str| String::from_utf8(t.exec(&["ip", "-d", "link", "show", name]).stdout).unwrap();
    assert!(text("vx1").contains("ttl inherit"), "{}", text("vx1"));
    assert!(text("vx2").contains("ttl auto"), "{}", text("vx2"));
    assert!(text("vx3").contains("ttl 8 "), "{}", text("vx3"));
    // Inherit and a fixed TTL contradict.
    let e = Vxlan::create(h, "vx4", 504)
        .ttl(8)
        .ttl_inherit()
        .execute()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

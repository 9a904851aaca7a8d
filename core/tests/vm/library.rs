//! The library on a kernel with 8021q, ipvlan and dummy: each test creates, inspects (library
//! readback and iproute2) and deletes, in namespaces it makes.

use std::future::Future;
use std::time::Duration;

use underlay::network::{EndpointSpec, NetworkSpec, Networks};
use underlay::{
    Bridge, Dummy, ErrorKind, Handle, Ipvlan, IpvlanFlag, IpvlanMode, LinkKind, Netns, Veth, Vlan,
    VlanFlags, VlanId, VlanProtocol, VlanQosMaps,
};

use crate::support::{expect_eq, Check, TestNs};

/// Runs an async test body on a fresh single-threaded runtime.
fn block_on<F: Future<Output = Check>>(f: F) -> Check {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?
        .block_on(f)
}

/// `Result<T, underlay::Error>` to a test failure naming the step.
trait Step<T> {
    fn step(self, what: &str) -> Check<T>;
}

impl<T> Step<T> for underlay::Result<T> {
    fn step(self, what: &str) -> Check<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

async fn handle(ns: &TestNs) -> Check<(Netns, Handle)> {
    let n = Netns::open(&ns.name).step("open test namespace")?;
    let h = Handle::for_netns(&n).await.step("handle")?;
    Ok((n, h))
}

fn flags_of(link: &serde_json::Value) -> Vec<String> {
    link["linkinfo"]["info_data"]["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// VLANs: default name, 802.1Q and 802.1ad, flags, MTU, made inside another namespace, moved
/// and attached, deleted.
pub(crate) fn library_vlan() -> Check {
    block_on(async {
        let t = TestNs::with_veth("lvlan", "ens192", "wire")?;
        let (_n, h) = handle(&t).await?;
        let l = Vlan::create(&h, "ens192", VlanId::new(10).step("id")?)
            .mtu(1400)
            .up()
            .execute()
            .await
            .step("vlan 10")?;
        if l.name != "ens192.10"
            || l.kind
                != (LinkKind::Vlan {
                    id: 10,
                    protocol: VlanProtocol::Ieee8021Q,
                    flags: VlanFlags::default(),
                    qos: VlanQosMaps::default(),
                })
        {
            return Err(format!("readback: {l:?}"));
        }
        let j = t.link("ens192.10")?;
        expect_eq("kind", &j["linkinfo"]["info_kind"], "vlan")?;
        expect_eq("id", &j["linkinfo"]["info_data"]["id"], 10)?;
        expect_eq(
            "protocol",
            &j["linkinfo"]["info_data"]["protocol"],
            "802.1Q",
        )?;
        expect_eq("mtu", &j["mtu"], 1400)?;
        expect_eq("parent", &j["link"], "ens192")?;
        let flags = VlanFlags {
            reorder_hdr: false,
            gvrp: true,
            mvrp: true,
            loose_binding: true,
        };
        let qinq = Vlan::create(&h, "ens192", VlanId::new(4094).step("id")?)
            .name("svc")
            .protocol(VlanProtocol::Ieee8021Ad)
            .flags(flags)
            .execute()
            .await
            .step("802.1ad vlan")?;
        if qinq.kind
            != (LinkKind::Vlan {
                id: 4094,
                protocol: VlanProtocol::Ieee8021Ad,
                flags,
                qos: VlanQosMaps::default(),
            })
        {
            return Err(format!("802.1ad readback: {:?}", qinq.kind));
        }
        let j = t.link("svc")?;
        expect_eq(
            "802.1ad protocol",
            &j["linkinfo"]["info_data"]["protocol"],
            "802.1ad",
        )?;
        let f = flags_of(&j);
        for want in ["GVRP", "MVRP", "LOOSE_BINDING"] {
            if !f.iter().any(|x| x == want) {
                return Err(format!("flag {want} missing: {f:?}"));
            }
        }
        if f.iter().any(|x| x == "REORDER_HDR") {
            return Err(format!("REORDER_HDR should be off: {f:?}"));
        }
        // Same id twice on one parent: the kernel refuses, we name it.
        let e = Vlan::create(&h, "ens192", VlanId::new(10).step("id")?)
            .name("again")
            .execute()
            .await;
        if e.is_ok() {
            return Err("a second VLAN 10 on ens192 was accepted".into());
        }
        // Into a container namespace directly, then attached from the host with an address.
        let c = TestNs::new("lvlanc")?;
        let (cn, ch) = handle(&c).await?;
        Vlan::create(&h, "ens192", VlanId::new(30).step("id")?)
            .name("eth0")
            .target(&ch)
            .up()
            .execute()
            .await
            .step("vlan into netns")?;
        expect_eq(
            "vlan inside",
            &c.link("eth0")?["linkinfo"]["info_data"]["id"],
            30,
        )?;
        Vlan::create(&h, "ens192", VlanId::new(40).step("id")?)
            .execute()
            .await
            .step("vlan 40")?;
        let done = Vlan::attach_to_netns(&h, "ens192.40", &cn)
            .name("eth1")
            .address("10.40.0.2/24".parse().map_err(|e| format!("{e}"))?)
            .gateway("10.40.0.1".parse().map_err(|e| format!("{e}"))?)
            .execute()
            .await
            .step("attach vlan")?;
        if !done.link.up {
            return Err("attached VLAN is down".into());
        }
        expect_eq(
            "attached vlan id",
            &c.link("eth1")?["linkinfo"]["info_data"]["id"],
            40,
        )?;
        h.delete_link("ens192.10").await.step("delete")?;
        if t.try_ip(&["link", "show", "ens192.10"])?.status.success() {
            return Err("ens192.10 still there".into());
        }
        Ok(())
    })
}

/// ipvlan in each mode and flag (one parent each: the mode belongs to the parent), made
/// directly inside a container namespace; shares the parent's MAC.
pub(crate) fn library_ipvlan() -> Check {
    block_on(async {
        let t = TestNs::new("lipv")?;
        let (_n, h) = handle(&t).await?;
        let c = TestNs::new("lipvc")?;
        let (_cn, ch) = handle(&c).await?;
        let cases = [
            (IpvlanMode::L2, IpvlanFlag::Bridge, "l2", "bridge"),
            (IpvlanMode::L3, IpvlanFlag::Private, "l3", "private"),
            (IpvlanMode::L3s, IpvlanFlag::Vepa, "l3s", "vepa"),
        ];
        for (i, (mode, flag, m, f)) in cases.into_iter().enumerate() {
            let parent = format!("p{i}");
            Veth::create(&h, &parent, &format!("q{i}"))
                .up()
                .peer_up()
                .execute()
                .await
                .step("veth")?;
            let name = format!("ipv{i}");
            let l = Ipvlan::create(&h, &name, parent.as_str(), mode)
                .flag(flag)
                .target(&ch)
                .up()
                .execute()
                .await
                .step("ipvlan")?;
            if l.kind != (LinkKind::Ipvlan { mode, flag }) {
                return Err(format!("{name} readback: {:?}", l.kind));
            }
            let j = c.link(&name)?;
            expect_eq("kind", &j["linkinfo"]["info_kind"], "ipvlan")?;
            expect_eq("mode", &j["linkinfo"]["info_data"]["mode"], m)?;
            // iproute2 shows the flag as `"bridge": true` (or private, vepa).
            expect_eq(
                &format!("{name} flag {f}"),
                &j["linkinfo"]["info_data"][f],
                true,
            )?;
            let parent_mac = h.link(parent.as_str()).await.step("parent")?.mac;
            if l.mac != parent_mac {
                return Err(format!(
                    "{name} has MAC {:?}, parent {:?}",
                    l.mac, parent_mac
                ));
            }
            ch.delete_link(name.as_str()).await.step("delete ipvlan")?;
        }
        Ok(())
    })
}

/// A bridge with VLAN filtering on (this VM's kernel has it), and a dummy.
pub(crate) fn library_bridge_and_dummy() -> Check {
    block_on(async {
        let t = TestNs::new("lbr")?;
        let (_n, h) = handle(&t).await?;
        let br = Bridge::create(&h, "br0")
            .vlan_filtering(true)
            .up()
            .execute()
            .await
            .step("bridge")?;
        if !matches!(&br.kind, LinkKind::Bridge(b) if b.vlan_filtering) {
            return Err(format!("bridge readback: {:?}", br.kind));
        }
        expect_eq(
            "vlan_filtering",
            &t.link("br0")?["linkinfo"]["info_data"]["vlan_filtering"],
            1,
        )?;
        let d = Dummy::create(&h, "dm0")
            .up()
            .execute()
            .await
            .step("dummy")?;
        if d.kind != LinkKind::Dummy {
            return Err(format!("dummy readback: {:?}", d.kind));
        }
        expect_eq(
            "dummy kind",
            &t.link("dm0")?["linkinfo"]["info_kind"],
            "dummy",
        )?;
        h.delete_link("dm0").await.step("delete dummy")?;
        h.delete_link("br0").await.step("delete bridge")
    })
}

/// A VLAN parent underlay makes lives as long as its last network, is counted in its alias,
/// survives a "reboot" through reconcile, and a VLAN the user made is never deleted.
pub(crate) fn network_vlan_parent_lifetime() -> Check {
    block_on(async {
        let t = TestNs::with_veth("lnet", "ens192", "wire")?;
        let (_n, h) = handle(&t).await?;
        let dir = std::env::temp_dir().join(format!("ulvm-nets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let nets = Networks::open(&h, &dir).await.step("open")?;
        let pool = |s: &str| s.parse().map_err(|e: underlay::Error| e.to_string());
        let a = NetworkSpec::from_docker("a", "macvlan", &[("parent", "ens192.10")])
            .step("spec")?
            .pool(pool("172.16.10.0/25")?);
        let b = NetworkSpec::from_docker("b", "macvlan", &[("parent", "ens192.10")])
            .step("spec")?
            .pool(pool("172.16.10.128/25 gateway=none")?);
        nets.create(a).await.step("network a")?;
        expect_eq(
            "alias after a",
            &t.link("ens192.10")?["ifalias"],
            "underlay:vlan users=1",
        )?;
        let net_b = nets.create(b).await.step("network b")?;
        expect_eq(
            "alias after b",
            &t.link("ens192.10")?["ifalias"],
            "underlay:vlan users=2",
        )?;
        nets.delete("a").await.step("delete a")?;
        expect_eq(
            "alias after deleting a",
            &t.link("ens192.10")?["ifalias"],
            "underlay:vlan users=1",
        )?;
        // A "reboot": the kernel forgets the VLAN; reconcile brings it back.
        h.delete_link("ens192.10").await.step("forget")?;
        let report = nets.reconcile().await.step("reconcile")?;
        if report.recreated_parents != ["ens192.10"] {
            return Err(format!("reconcile: {report:?}"));
        }
        expect_eq(
            "recreated id",
            &t.link("ens192.10")?["linkinfo"]["info_data"]["id"],
            10,
        )?;
        // Endpoints work on it, and the export renders it.
        let c = TestNs::new("lnetc")?;
        let (cn, _) = handle(&c).await?;
        net_b
            .connect(&cn, EndpointSpec::new("x"))
            .await
            .step("connect")?;
        let files = net_b
            .export(underlay::network::ExportFormat::Ifcfg)
            .step("export")?;
        if !files[0].content.contains("VLAN_ID=10") {
            return Err(format!("export: {files:?}"));
        }
        net_b.disconnect("x", "eth0").await.step("disconnect")?;
        nets.delete("b").await.step("delete b")?;
        if t.try_ip(&["link", "show", "ens192.10"])?.status.success() {
            return Err("ens192.10 outlived its last network".into());
        }
        // The user's own VLAN is used but never deleted.
        t.ip(&[
            "link",
            "add",
            "link",
            "ens192",
            "name",
            "ens192.20",
            "type",
            "vlan",
            "id",
            "20",
        ])?;
        t.ip(&["link", "set", "ens192.20", "up"])?;
        let c20 = NetworkSpec::from_docker("c", "macvlan", &[("parent", "ens192.20")])
            .step("spec")?
            .pool(pool("172.16.20.0/24")?);
        nets.create(c20).await.step("network c")?;
        nets.delete("c").await.step("delete c")?;
        t.link("ens192.20")
            .map_err(|e| format!("the user's VLAN was deleted: {e}"))?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}

/// An ipvlan network: endpoints share the parent's MAC, reach each other; a second ipvlan
/// network in another mode on the same parent is refused (the kernel would switch both).
pub(crate) fn network_ipvlan() -> Check {
    block_on(async {
        let t = TestNs::with_veth("lipn", "ens192", "wire")?;
        let (_n, h) = handle(&t).await?;
        let dir = std::env::temp_dir().join(format!("ulvm-ipn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let nets = Networks::open(&h, &dir).await.step("open")?;
        let net = nets
            .create(
                NetworkSpec::from_docker(
                    "ipnet",
                    "ipvlan",
                    &[("parent", "ens192"), ("ipvlan_mode", "l2")],
                )
                .step("spec")?
                .pool(
                    "10.30.0.0/24 gateway=10.30.0.1"
                        .parse()
                        .map_err(|e: underlay::Error| e.to_string())?,
                ),
            )
            .await
            .step("ipvlan network")?;
        let parent_mac = h.link("ens192").await.step("parent")?.mac;
        let (a, b) = (TestNs::new("lipa")?, TestNs::new("lipb")?);
        let (an, _) = handle(&a).await?;
        let (bn, _) = handle(&b).await?;
        let ea = net
            .connect(&an, EndpointSpec::new("a"))
            .await
            .step("connect a")?;
        let eb = net
            .connect(&bn, EndpointSpec::new("b"))
            .await
            .step("connect b")?;
        if ea.mac != parent_mac || eb.mac != parent_mac {
            return Err(format!(
                "ipvlan endpoints {:?}/{:?} should carry the parent's MAC {parent_mac:?}",
                ea.mac, eb.mac
            ));
        }
        expect_eq(
            "mode",
            &a.link("eth0")?["linkinfo"]["info_data"]["mode"],
            "l2",
        )?;
        let reply = an
            .ping(eb.addresses[0].addr(), Duration::from_secs(3))
            .step("ping")?;
        if reply.is_none() {
            return Err("ipvlan siblings cannot reach each other".into());
        }
        let l3 = NetworkSpec::from_docker(
            "ipnet3",
            "ipvlan",
            &[("parent", "ens192"), ("ipvlan_mode", "l3")],
        )
        .step("spec")?
        .pool(
            "10.31.0.0/24"
                .parse()
                .map_err(|e: underlay::Error| e.to_string())?,
        );
        match nets.create(l3).await {
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            other => return Err(format!("a second ipvlan mode on one parent: {other:?}")),
        }
        expect_eq(
            "mode unchanged",
            &a.link("eth0")?["linkinfo"]["info_data"]["mode"],
            "l2",
        )?;
        net.disconnect("a", "eth0").await.step("disconnect a")?;
        net.disconnect("b", "eth0").await.step("disconnect b")?;
        nets.delete("ipnet").await.step("delete")?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}

/// A VLAN's QoS maps as `ip -d -j link` shows them: (from, to) per direction.
fn qos_of(link: &serde_json::Value, dir: &str) -> Vec<(u64, u64)> {
    link["linkinfo"]["info_data"][dir]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| Some((m["from"].as_u64()?, m["to"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// One direction of a QoS map as (from, to) pairs.
type QosPairs = Vec<(u64, u64)>;

/// The library's maps as (from, to) lists, to compare with iproute2's.
fn qos_pairs(q: &VlanQosMaps) -> (QosPairs, QosPairs) {
    (
        q.ingress
            .iter()
            .map(|&(f, t)| (u64::from(f), u64::from(t)))
            .collect(),
        q.egress
            .iter()
            .map(|&(f, t)| (u64::from(f), u64::from(t)))
            .collect(),
    )
}

/// Checks the library's readback of `name` against iproute2 and against `want`.
async fn check_qos(t: &TestNs, h: &Handle, name: &str, want: &VlanQosMaps, step: &str) -> Check {
    let l = h.link(name).await.step("readback")?;
    let LinkKind::Vlan { qos, .. } = &l.kind else {
        return Err(format!("{step}: not a VLAN: {:?}", l.kind));
    };
    if qos != want {
        return Err(format!("{step}: library reads {qos:?}, expected {want:?}"));
    }
    let j = t.link(name)?;
    let (ingress, egress) = qos_pairs(want);
    if qos_of(&j, "ingress_qos") != ingress || qos_of(&j, "egress_qos") != egress {
        return Err(format!(
            "{step}: ip shows ingress {:?} egress {:?}, expected {ingress:?} {egress:?}: {}",
            qos_of(&j, "ingress_qos"),
            qos_of(&j, "egress_qos"),
            j["linkinfo"]["info_data"]
        ));
    }
    Ok(())
}

/// VLAN QoS maps: set on create, changed on an existing VLAN (entries mapped to 0 cleared),
/// read back as iproute2 shows them and after iproute2 changed them; bad priorities and
/// non-VLAN links refused.
pub(crate) fn library_vlan_qos() -> Check {
    block_on(async {
        let t = TestNs::with_veth("lqos", "ens192", "wire")?;
        let (_n, h) = handle(&t).await?;
        let qos = VlanQosMaps {
            ingress: vec![(1, 2), (4, 5)],
            egress: vec![(3, 6), (7, 1)],
        };
        Vlan::create(&h, "ens192", VlanId::new(10).step("id")?)
            .qos(qos.clone())
            .execute()
            .await
            .step("vlan with qos")?;
        check_qos(&t, &h, "ens192.10", &qos, "on create").await?;
        Vlan::set_qos(
            &h,
            "ens192.10",
            &VlanQosMaps {
                ingress: vec![(1, 0), (6, 7)],
                egress: vec![(3, 0), (2, 4)],
            },
        )
        .await
        .step("set_qos")?;
        let changed = VlanQosMaps {
            ingress: vec![(4, 5), (6, 7)],
            egress: vec![(2, 4), (7, 1)],
        };
        check_qos(&t, &h, "ens192.10", &changed, "after set_qos").await?;
        t.ip(&[
            "link",
            "set",
            "ens192.10",
            "type",
            "vlan",
            "ingress-qos-map",
            "0:9",
        ])?;
        let by_ip = VlanQosMaps {
            ingress: vec![(0, 9), (4, 5), (6, 7)],
            egress: changed.egress.clone(),
        };
        check_qos(&t, &h, "ens192.10", &by_ip, "after ip's change").await?;
        // No map: reads back empty.
        Vlan::create(&h, "ens192", VlanId::new(11).step("id")?)
            .execute()
            .await
            .step("vlan without qos")?;
        check_qos(&t, &h, "ens192.11", &VlanQosMaps::default(), "no map").await?;

        let bad = VlanQosMaps {
            ingress: vec![(8, 1)],
            egress: vec![],
        };
        match Vlan::create(&h, "ens192", VlanId::new(12).step("id")?)
            .qos(bad.clone())
            .execute()
            .await
        {
            Err(e) if e.kind() == ErrorKind::InvalidArgument && e.to_string().contains("0..7") => {}
            other => return Err(format!("ingress priority 8 on create: {other:?}")),
        }
        if t.try_ip(&["link", "show", "ens192.12"])?.status.success() {
            return Err("a refused VLAN was left behind".into());
        }
        let bad_egress = VlanQosMaps {
            ingress: vec![],
            egress: vec![(1, 8)],
        };
        match Vlan::set_qos(&h, "ens192.10", &bad_egress).await {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {}
            other => return Err(format!("egress priority 8 on set: {other:?}")),
        }
        check_qos(&t, &h, "ens192.10", &by_ip, "unchanged after refusals").await?;
        match Vlan::set_qos(&h, "ens192", &changed).await {
            Err(e)
                if e.kind() == ErrorKind::InvalidArgument
                    && e.to_string().contains("not a VLAN") => {}
            other => return Err(format!("set_qos on a veth: {other:?}")),
        }
        match Vlan::set_qos(&h, "nosuch", &changed).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => Err(format!("set_qos on a missing link: {other:?}")),
        }
    })
}

//! DHCP networks against Debian's dnsmasq, started by each test in its wire namespace (never
//! on the machine's own network: `--port=0`, bound to the test's veth, its lease file in a
//! temporary directory). dnsmasq's lease file is the oracle, with `ip -j addr` in each
//! container. `cargo xtask test` installs dnsmasq (package `dnsmasq-base`); without it these
//! tests fail saying how to install it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use underlay::network::{EndpointSpec, NetworkSpec, Networks};
use underlay::{DhcpConfig, ErrorKind, MacvlanMode};

use crate::common::{ip_addrs, privileged, TestNs};
use crate::dhcp::{default_gateways, host_and_wire};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// One line of dnsmasq's lease file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DnsmasqLease {
    pub(crate) expiry: u64,
    pub(crate) mac: String,
    pub(crate) ip: String,
    pub(crate) hostname: String,
    pub(crate) client_id: String,
}

/// dnsmasq serving 10.79.0.0/24 (2-minute leases) on `wire0` of the wire namespace.
pub(crate) struct Dnsmasq {
    child: Option<Child>,
    leasefile: PathBuf,
}

impl Dnsmasq {
    pub(crate) async fn start(wire: &TestNs, dir: &Path) -> Dnsmasq {
        let works = Command::new("dnsmasq")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            works,
            "dnsmasq is not installed: the DHCP tests need Debian's dnsmasq \
             (`apt-get install --no-install-recommends dnsmasq-base`; `cargo xtask test` installs it)"
        );
        wire.handle
            .add_address("wire0", "10.79.0.1/24".parse().unwrap())
            .await
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let leasefile = dir.join("dnsmasq.leases");
        let child = Command::new("ip")
            .args(["netns", "exec", &wire.name, "dnsmasq"])
            .args([
                "--keep-in-foreground",
                "--port=0",
                "--conf-file=/dev/null",
                "--interface=wire0",
                "--bind-interfaces",
                "--dhcp-range=10.79.0.10,10.79.0.250,255.255.255.0,2m",
                "--dhcp-option=option:router,10.79.0.1",
                "--dhcp-authoritative",
                "--no-ping",
                "--user=root",
                "--group=root",
            ])
            .arg(format!("--dhcp-leasefile={}", leasefile.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .arg(format!(
                "--log-facility={}",
                dir.join("dnsmasq.log").display()
            ))
            .arg("--log-dhcp")
            .stdin(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let d = Dnsmasq {
            child: Some(child),
            leasefile,
        };
        // It writes its pid file once it serves.
        for _ in 0..100 {
            if dir.join("dnsmasq.pid").exists() {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "dnsmasq did not start: {}",
            std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default()
        );
    }

    /// dnsmasq's log lines that mention `what` (for failure messages).
    pub(crate) fn log_about(&self, what: &str) -> String {
        let log = self.leasefile.with_file_name("dnsmasq.log");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) fn leases(&self) -> Vec<DnsmasqLease> {
        let text = std::fs::read_to_string(&self.leasefile).unwrap_or_default();
        let mut v: Vec<DnsmasqLease> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 5).then(|| DnsmasqLease {
                    expiry: f[0].parse().unwrap(),
                    mac: f[1].to_string(),
                    ip: f[2].to_string(),
                    hostname: f[3].to_string(),
                    client_id: f[4].to_string(),
                })
            })
            .collect();
        v.sort();
        v
    }

    /// The leases once `done` holds for them (dnsmasq writes its file after handling a
    /// message: a release's reply-less handling is not seen at once), 2 s at most.
    pub(crate) async fn leases_when(
        &self,
        done: impl Fn(&[DnsmasqLease]) -> bool,
    ) -> Vec<DnsmasqLease> {
        for _ in 0..40 {
            let l = self.leases();
            if done(&l) {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.leases()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every /proc path (a process's or task's ns, an fd) that opens a namespace of `inodes`.
fn holders(inodes: &[u64]) -> Vec<String> {
    let mut out = Vec::new();
    let want: Vec<String> = inodes.iter().map(|i| format!("net:[{i}]")).collect();
    let mut check = |p: PathBuf| {
        if let Ok(l) = std::fs::read_link(&p) {
            if want.contains(&l.to_string_lossy().into_owned()) {
                out.push(p.display().to_string());
            }
        }
    };
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let d = p.path();
        check(d.join("ns/net"));
        for sub in ["task", "fd"] {
            for e in std::fs::read_dir(d.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                if sub == "task" {
                    check(e.path().join("ns/net"));
                } else {
                    check(e.path());
                }
            }
        }
    }
    out
}

/// Waits (at most 10 s) until no thread of this process is in any namespace of `inodes`.
async fn wait_until_no_thread_is_in(inodes: &[u64]) {
    let inside = || {
        std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_link(t.path().join("ns/net")).ok())
            .any(|l| {
                inodes
                    .iter()
                    .any(|i| l.to_string_lossy() == format!("net:[{i}]"))
            })
    };
    for _ in 0..1000 {
        if !inside() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a thread of this process stayed 10 s in a deleted namespace");
}

fn mac_of(t: &TestNs, dev: &str) -> String {
    t.ip_link(dev).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// 50 containers connected at once each get a lease of their own: no address twice, dnsmasq's
/// lease file names each one (its MAC, address, host name), and `ip -j addr` in each container
/// agrees; disconnecting them all releases every lease in dnsmasq's lease file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_leases_for_50_containers_concurrently() {
    root_or_skip!("dnsmasq_leases_for_50_containers_concurrently");
    let (_h, wire, dir, nets) = host_and_wire("dq1").await;
    let server = Dnsmasq::start(&wire, &dir.0.join("dnsmasq")).await;
    let net = nets
        .create(
            NetworkSpec::macvlan("dq", "ens192", MacvlanMode::Bridge).dhcp(DhcpConfig::default()),
        )
        .await
        .unwrap();
    let mut containers = Vec::new();
    for i in 0..50 {
        containers.push(TestNs::new(&format!("dq1c{i}")).await);
    }
    let eps = futures::future::join_all(
        containers
            .iter()
            .enumerate()
            .map(|(i, c)| net.connect(&c.ns, EndpointSpec::new(format!("ctr{i}")))),
    )
    .await;
    let eps: Vec<_> = eps.into_iter().map(|r| r.unwrap()).collect();
    let addrs: BTreeSet<String> = eps.iter().map(|e| e.addresses[0].to_string()).collect();
    assert_eq!(addrs.len(), 50, "no address twice");
    let leases = server.leases();
    assert_eq!(leases.len(), 50, "{leases:?}");
    for (i, (c, ep)) in containers.iter().zip(&eps).enumerate() {
        let a = ep.addresses[0].to_string();
        assert!(a.starts_with("10.79.0.") && a.ends_with("/24"), "{a}");
        assert_eq!(ip_addrs(c, "eth0"), vec![a.clone()]);
        assert_eq!(default_gateways(c), vec!["10.79.0.1"]);
        let l = leases
            .iter()
            .find(|l| format!("{}/24", l.ip) == a)
            .unwrap_or_else(|| panic!("{a} not in dnsmasq's lease file"));
        assert_eq!(l.mac, mac_of(c, "eth0"));
        assert_eq!(l.hostname, format!("ctr{i}"));
        assert_ne!(l.client_id, "*", "a client id was sent");
    }
    let net = &net;
    let done = futures::future::join_all(
        (0..50).map(|i| async move { net.disconnect(&format!("ctr{i}"), "eth0").await }),
    )
    .await;
    for d in done {
        d.unwrap();
    }
    let left = server.leases_when(|l| l.is_empty()).await;
    assert!(left.is_empty(), "every lease released: {left:?}");
    assert!(containers.iter().all(|c| c.ip_link("eth0").is_none()));
}

/// The same container gets the same address back after disconnect and connect (with other
/// containers served in between), and a restarted process (a new `Networks` over the same state
/// directory) renews the lease from the record: dnsmasq's lease file shows the later expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_same_container_same_address_and_renewal_after_restart() {
    root_or_skip!("dnsmasq_same_container_same_address_and_renewal_after_restart");
    let (h, wire, dir, nets) = host_and_wire("dq2").await;
    let server = Dnsmasq::start(&wire, &dir.0.join("dnsmasq")).await;
    let net = nets
        .create(
            NetworkSpec::macvlan("dq2", "ens192", MacvlanMode::Bridge).dhcp(DhcpConfig::default()),
        )
        .await
        .unwrap();
    let c = TestNs::new("dq2c").await;
    let first = net.connect(&c.ns, EndpointSpec::new("same")).await.unwrap();
    let client_id = server.leases_when(|l| l.len() == 1).await[0]
        .client_id
        .clone();
    net.disconnect("same", "eth0").await.unwrap();
    assert!(
        server.leases_when(|l| l.is_empty()).await.is_empty(),
        "released"
    );
    let others: Vec<TestNs> = futures::future::join_all(
        (0..3).map(|i| async move { TestNs::new(&format!("dq2o{i}")).await }),
    )
    .await;
    for (i, o) in others.iter().enumerate() {
        net.connect(&o.ns, EndpointSpec::new(format!("other{i}")))
            .await
            .unwrap();
    }
    let again = net.connect(&c.ns, EndpointSpec::new("same")).await.unwrap();
    assert_eq!(again.addresses, first.addresses);
    assert_eq!(ip_addrs(&c, "eth0"), vec![first.addresses[0].to_string()]);
    let mine = |s: &Dnsmasq| {
        s.leases()
            .into_iter()
            .find(|l| l.client_id == client_id)
            .unwrap()
    };
    let before = mine(&server);
    assert_eq!(format!("{}/24", before.ip), first.addresses[0].to_string());
    // A restarted process: nothing in memory, the record on disk.
    drop(net);
    drop(nets);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let net = nets.get("dq2").await.unwrap();
    let renewed = net.renew_dhcp("same", "eth0").await.unwrap();
    assert_eq!(renewed.address.to_string(), first.addresses[0].to_string());
    let after = mine(&server);
    assert!(after.expiry > before.expiry, "{before:?} -> {after:?}");
    assert_eq!(
        net.endpoint("same", "eth0").unwrap().unwrap().dhcp,
        Some(renewed)
    );
}

/// dnsmasq goes away: a renewal goes unanswered and the lease holds (it has not expired); a
/// new connect fails with a timeout naming the network and the endpoint, leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_gone_renewal_holds_and_connect_times_out() {
    root_or_skip!("dnsmasq_gone_renewal_holds_and_connect_times_out");
    let (_h, wire, dir, nets) = host_and_wire("dq3").await;
    let mut server = Dnsmasq::start(&wire, &dir.0.join("dnsmasq")).await;
    let net = nets
        .create(
            NetworkSpec::macvlan("dq3", "ens192", MacvlanMode::Bridge)
                .dhcp(DhcpConfig::new(2, Duration::from_millis(200)).unwrap()),
        )
        .await
        .unwrap();
    let c = TestNs::new("dq3c").await;
    let ep = net.connect(&c.ns, EndpointSpec::new("stay")).await.unwrap();
    server.stop();
    let held = net.renew_dhcp("stay", "eth0").await.unwrap();
    assert_eq!(Some(held), ep.dhcp);
    assert_eq!(ip_addrs(&c, "eth0"), vec![ep.addresses[0].to_string()]);
    let c2 = TestNs::new("dq3d").await;
    let e = net
        .connect(&c2.ns, EndpointSpec::new("late"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.to_string().contains("dq3") && e.to_string().contains("late"),
        "{e}"
    );
    assert!(c2.ip_link("eth0").is_none());
    assert_eq!(net.endpoints().unwrap().len(), 1);
    // Disconnect still works without a server (the release goes unanswered by design).
    net.disconnect("stay", "eth0").await.unwrap();
    assert!(net.endpoints().unwrap().is_empty());
}

/// Containers whose namespace died without a disconnect: reconcile gives their leases back
/// (DHCPRELEASE from their MAC and client id, sent on the parent since their link is gone) and
/// dnsmasq's lease file drops them, while the live container's lease and link stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_reconcile_releases_leases_of_dead_namespaces() {
    root_or_skip!("dnsmasq_reconcile_releases_leases_of_dead_namespaces");
    let (_h, wire, dir, nets) = host_and_wire("dq4").await;
    let server = Dnsmasq::start(&wire, &dir.0.join("dnsmasq")).await;
    let net = nets
        .create(
            NetworkSpec::macvlan("dq4", "ens192", MacvlanMode::Bridge).dhcp(DhcpConfig::default()),
        )
        .await
        .unwrap();
    let live = TestNs::new("dq4live").await;
    let kept = net
        .connect(&live.ns, EndpointSpec::new("live"))
        .await
        .unwrap();
    let mut dead = Vec::new();
    let mut dead_inodes = Vec::new();
    for i in 0..2 {
        let name = format!("ult-dq4dead{i}-{}", std::process::id());
        let ns = underlay::Netns::create(&name).unwrap();
        let ep = net
            .connect(&ns, EndpointSpec::new(format!("dead{i}")))
            .await
            .unwrap();
        dead_inodes.push(ns.inode());
        drop(ns);
        dead.push((name, ep));
    }
    let before = server.leases_when(|l| l.len() == 3).await;
    assert_eq!(before.len(), 3, "{before:?}");
    for (name, _) in &dead {
        underlay::Netns::delete(name).unwrap();
    }
    // The connects' sockets are closed on threads in those namespaces after the connect
    // returns (a packet socket's close waits for an RCU grace period); while one is there the
    // namespace is alive, and reconcile rightly keeps its endpoint. Wait for them to leave.
    wait_until_no_thread_is_in(&dead_inodes).await;
    let report = nets.reconcile().await.unwrap();
    let mut gone: Vec<String> = report
        .gone_endpoints
        .iter()
        .map(|g| g.container_id.clone())
        .collect();
    gone.sort();
    assert_eq!(
        gone,
        ["dead0", "dead1"],
        "{report:?}; holders: {:?}",
        holders(&dead_inodes)
    );
    let kept_ip = kept.addresses[0].addr().to_string();
    let left = server.leases_when(|l| l.len() == 1).await;
    assert_eq!(
        left.iter().map(|l| l.ip.clone()).collect::<Vec<_>>(),
        vec![kept_ip.clone()],
        "only the live container's lease is left: {left:?} (dead: {:?})",
        dead.iter()
            .map(|(_, e)| e.addresses[0].to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(left[0].mac, mac_of(&live, "eth0"));
    assert_eq!(ip_addrs(&live, "eth0"), vec![kept.addresses[0].to_string()]);
    assert_eq!(net.endpoints().unwrap().len(), 1);
    assert!(nets.reconcile().await.unwrap().is_clean());
}

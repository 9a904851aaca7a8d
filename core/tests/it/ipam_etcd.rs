//! The etcd IPAM store against real etcd members (feature `etcd`): one node and three, processes
//! racing as different hosts, the leader killed with SIGKILL mid-run, and bad input. etcd runs
//! on free 127.0.0.1 ports with data in a temporary directory (see `cluster`); the tests skip
//! loudly when etcd is not installed (`cargo xtask etcd-test` installs it).

mod cluster;
mod deadlines;
mod endpoints;
mod gc_batches;
mod one_host_many_processes;
mod quarantine;
mod refused_delete;
mod shared_holds;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use underlay::ipam::{
    AllocRange, Change, EtcdConfig, EtcdStore, Ipam, Joined, Left, Owner, Record, Request, Store,
};
use underlay::ErrorKind;

use super::common::{ip_addrs, privileged, TestNs};
use super::ipam::{check, ip, net, owner};
use super::network::TempDir;
use cluster::Cluster;
use underlay::network::{EndpointSpec, NetworkSpec, Networks};
use underlay::MacvlanMode;

const CHILD: &str = "UNDERLAY_ETCD_CHILD";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Skips when run as a child or without etcd.
fn skip(test: &str) -> bool {
    std::env::var(CHILD).is_ok() || !cluster::available(test)
}

fn config(c: &Cluster, host: &str) -> EtcdConfig {
    EtcdConfig::new(c.endpoints())
        .host(host)
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .retry_for(Duration::from_secs(20))
}

async fn store(c: &Cluster, host: &str) -> Arc<EtcdStore> {
    Arc::new(EtcdStore::connect(config(c, host)).await.unwrap())
}

fn rec(addr: &str, who: &str) -> Record {
    Record {
        addr: ip(addr),
        owner: owner(who),
        boot_id: None,
    }
}

#[test]
fn one_node_two_hosts_share_networks_and_leases() {
    if skip("one_node_two_hosts_share_networks_and_leases") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let (a, b) = (store(&c, "h1").await, store(&c, "h2").await);
        let n = net(
            "mac_net1",
            &["172.22.16.0/24 gateway=172.22.16.1", "fd00:16::/64"],
        );
        let ia = Ipam::create(a.clone(), n.clone()).await.unwrap();
        // One definition for every host.
        assert_eq!(b.networks().await.unwrap(), vec![n.clone()]);
        let ib = Ipam::open_or_create(b.clone(), n.clone()).await.unwrap();
        let e = Ipam::create(b.clone(), n.clone()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        let e = Ipam::create(b.clone(), net("wide", &["172.22.0.0/16"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap, "{e}");
        let e = Ipam::open_or_create(b.clone(), net("mac_net1", &["172.22.16.0/24"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

        // Both hosts allocate, interleaved: never the same address.
        let mut all = HashSet::new();
        for i in 0..20 {
            for (ipam, h) in [(&ia, "a"), (&ib, "b")] {
                let l = ipam
                    .allocate(&owner(format!("{h}{i}")), &Request::any())
                    .await
                    .unwrap();
                assert_eq!(l.addresses.len(), 2);
                for x in l.ips() {
                    assert!(all.insert(x), "{x} handed out twice");
                }
            }
        }
        let seen_a = check(&ia).await;
        assert_eq!(seen_a, check(&ib).await);
        assert_eq!(seen_a.len(), 80);
        // A specific address held by the other host is refused.
        let held = ia.lookup(&owner("a0")).await.unwrap().unwrap().ips()[0];
        assert!(ib.allocate(&owner("x"), &Request::ip(held)).await.is_err());

        // The oracle: etcdctl reads the record, owner first, stamped with its host.
        let key = format!("/underlay/ipam/data/mac_net1/addr/{held}");
        let out = c.ctl(&["get", &key, "--print-value-only"]);
        assert_eq!(
            out.trim(),
            "a0/eth0 host=h1".to_string() + &boot_suffix(&ia)
        );

        // Per-host report.
        let by_host = a.addresses_by_host("mac_net1").await.unwrap();
        let count: BTreeMap<&str, usize> =
            by_host.iter().map(|(h, v)| (h.as_str(), v.len())).collect();
        assert_eq!(count, BTreeMap::from([("h1", 40), ("h2", 40)]));

        // A release on one host is seen by the other; changes_since serves the log.
        let v = a.version("mac_net1").await.unwrap();
        ib.release(&owner("a1")).await.unwrap().unwrap();
        assert!(ia.lookup(&owner("a1")).await.unwrap().is_none());
        let (changes, now) = a.changes_since("mac_net1", v).await.unwrap().unwrap();
        assert_eq!(now, v + 1);
        assert!(matches!(&changes[..], [Change::Release(r), ..] if r.owner == owner("a1")));

        // gc of one host touches only that host's leases; Ipam::gc is cluster-wide.
        let valid: Vec<Owner> = (0..10).map(|i| owner(format!("b{i}"))).collect();
        let gone = b.gc_host("mac_net1", "h2", &valid).await.unwrap();
        assert_eq!(gone.len(), 2 * 10, "two addresses per owner");
        assert_eq!(ib.list().await.unwrap().len(), 19 + 10);
        let keep = [owner("a2"), owner("b3")];
        assert_eq!(ia.gc(&keep).await.unwrap().len(), 19 + 10 - 2);
        let left: HashSet<Owner> = ib
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.owner)
            .collect();
        assert_eq!(left, keep.iter().cloned().collect());

        // Delete waits for the last lease.
        let e = Ipam::delete(&*a, "mac_net1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
        assert_eq!(ia.gc(&[]).await.unwrap().len(), 2);
        Ipam::delete(&*b, "mac_net1").await.unwrap();
        assert_eq!(a.networks().await.unwrap(), vec![]);
        let e = Ipam::open(a.clone(), "mac_net1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let left = c.ctl(&["get", "--prefix", "/underlay/ipam/data/", "--keys-only"]);
        assert_eq!(left.trim(), "", "keys left after delete");
    });
}

/// A pool over two subnets (a CNI host-local range set) on etcd: the definition is stored in
/// the ` + ` text (read back by etcdctl), two hosts fill the first subnet and go on into the
/// second, never the same address, each address with its own subnet's prefix and gateway;
/// overlap checks see the second subnet.
#[test]
fn a_pool_over_two_subnets_is_shared_by_two_hosts() {
    if skip("a_pool_over_two_subnets_is_shared_by_two_hosts") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let (a, b) = (store(&c, "h1").await, store(&c, "h2").await);
        let text = "10.44.0.0/29 gateway=10.44.0.1 + 10.45.0.0/24 gateway=10.45.0.254";
        let n = net("set", &[text]);
        let ia = Ipam::create(a.clone(), n.clone()).await.unwrap();
        let out = c.ctl(&["get", "/underlay/ipam/net/set", "--print-value-only"]);
        assert_eq!(out.trim(), format!("name set\npool {text}"));
        let ib = Ipam::open(b.clone(), "set").await.unwrap();
        assert_eq!(ib.network().pools(), n.pools());
        let e = Ipam::create(b.clone(), net("wide", &["10.45.0.128/25"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap, "{e}");
        let mut all = HashSet::new();
        for i in 0..6 {
            for (ipam, h) in [(&ia, "a"), (&ib, "b")] {
                let l = ipam
                    .allocate(&owner(format!("{h}{i}")), &Request::any())
                    .await
                    .unwrap();
                let x = &l.addresses[0];
                assert!(all.insert(x.address.addr()), "{x:?} handed out twice");
                let (prefix, gw) = if x.address.addr() < ip("10.45.0.0") {
                    (29, "10.44.0.1")
                } else {
                    (24, "10.45.0.254")
                };
                assert_eq!(
                    (x.address.prefix_len(), x.gateway),
                    (prefix, Some(ip(gw))),
                    "{x:?}"
                );
            }
        }
        // 5 in the first subnet (.2-.6), then 7 in the second, from its start.
        let mut got: Vec<IpAddr> = all.into_iter().collect();
        got.sort();
        assert_eq!(got[4], ip("10.44.0.6"));
        assert_eq!(got[5], ip("10.45.0.1"));
        assert_eq!(got[11], ip("10.45.0.7"));
        assert_eq!(check(&ia).await, check(&ib).await);
    });
}

fn boot_suffix(ipam: &Ipam) -> String {
    ipam.boot_id()
        .map(|b| format!(" boot={b}"))
        .unwrap_or_default()
}

#[test]
fn commits_are_compare_and_swap() {
    if skip("commits_are_compare_and_swap") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let s = store(&c, "h1").await;
        s.create_network(&net("n", &["10.1.0.0/24"])).await.unwrap();
        assert_eq!(s.version("n").await.unwrap(), 0);
        let cur = |a: &str| Change::Cursor {
            pool: 0,
            addr: ip(a),
        };
        // One batch: several cursor moves and a claim released again (folded per key).
        let v = s
            .commit(
                "n",
                0,
                &[
                    Change::Claim(rec("10.1.0.2", "a")),
                    cur("10.1.0.2"),
                    Change::Claim(rec("10.1.0.3", "b")),
                    cur("10.1.0.3"),
                    Change::Release(rec("10.1.0.3", "b")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(v, 1);
        let snap = s.load("n").await.unwrap();
        assert_eq!(snap.records, vec![rec("10.1.0.2", "a")]);
        assert_eq!(snap.cursors, vec![Some(ip("10.1.0.3"))]);
        // A stale version, a taken address, a release by the wrong owner: refused, no change.
        for (expected, change) in [
            (0, Change::Claim(rec("10.1.0.9", "c"))),
            (1, Change::Claim(rec("10.1.0.2", "c"))),
            (1, Change::Release(rec("10.1.0.2", "c"))),
        ] {
            let e = s.commit("n", expected, &[change]).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        }
        assert_eq!(s.load("n").await.unwrap(), snap);
        let e = s
            .commit(
                "n",
                1,
                &[
                    Change::Claim(rec("10.1.0.5", "c")),
                    Change::Claim(rec("10.1.0.5", "d")),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        let v = s
            .commit("n", 1, &[Change::Release(rec("10.1.0.2", "a"))])
            .await
            .unwrap();
        assert_eq!(v, 2);
        let (ch, now) = s.changes_since("n", 0).await.unwrap().unwrap();
        assert_eq!(now, 2);
        assert_eq!(ch.len(), 6);
        assert_eq!(s.changes_since("n", 2).await.unwrap(), Some((vec![], 2)));
        assert_eq!(s.changes_since("n", 7).await.unwrap(), None);
        // A batch longer than etcd takes in one transaction: refused up front, explained.
        let big: Vec<Change> = (0..200)
            .map(|i| Change::Claim(rec(&format!("10.1.0.{}", i + 10), &format!("o{i}"))))
            .collect();
        let e = s.commit("n", 2, &big).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("--max-txn-ops"), "{e}");
        assert_eq!(s.version("n").await.unwrap(), 2);
        // Releasing 100 at once takes 200 owner compares, more than etcd's 128: in a network
        // without slices the version compare covers them; in a sliced one it is refused.
        let hundred: Vec<Record> = (0..100)
            .map(|i| rec(&format!("10.1.0.{}", i + 10), &format!("o{i}")))
            .collect();
        let claims: Vec<Change> = hundred.iter().cloned().map(Change::Claim).collect();
        let releases: Vec<Change> = hundred.iter().cloned().map(Change::Release).collect();
        assert_eq!(s.commit("n", 2, &claims).await.unwrap(), 3);
        assert_eq!(s.commit("n", 3, &releases).await.unwrap(), 4);
        assert_eq!(s.commit("n", 4, &claims).await.unwrap(), 5);
        c.ctl(&["put", "/underlay/ipam/data/n/slicesize", "16"]);
        let e = s.commit("n", 5, &releases).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("node slices"), "{e}");
        c.ctl(&["del", "/underlay/ipam/data/n/slicesize"]);
        assert_eq!(s.commit("n", 5, &releases).await.unwrap(), 6);
        let e = s.version("nope").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("nope"), "{e}");
    });
}

#[test]
fn bad_input_and_bad_conditions() {
    if skip("bad_input_and_bad_conditions") {
        return;
    }
    rt().block_on(async {
        // Nobody listens: a Timeout naming the endpoint, soon after retry_for.
        let dead = cluster::dead_endpoint();
        let t = Instant::now();
        let e = EtcdStore::connect(
            EtcdConfig::new([dead.clone()])
                .request_timeout(Duration::from_millis(300))
                .connect_timeout(Duration::from_millis(200))
                .retry_for(Duration::from_secs(2)),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.message().contains(&dead), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "hung {:?}",
            t.elapsed()
        );
        for cfg in [
            EtcdConfig::new(Vec::<String>::new()),
            EtcdConfig::new([dead.clone()]).prefix("underlay"),
            EtcdConfig::new([dead.clone()]).host("two words"),
            EtcdConfig::new(["http://[::1"]),
            EtcdConfig::new([dead.clone()]).client_cert("/c", "/k"),
        ] {
            let e = EtcdStore::connect(cfg.clone()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{cfg:?}: {e}");
        }
        let e =
            EtcdStore::connect(EtcdConfig::new(["https://127.0.0.1:1"]).tls("/nonexistent/ca.pem"))
                .await
                .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.message().contains("/nonexistent/ca.pem"), "{e}");
    });

    let c = Cluster::start(1);
    rt().block_on(async {
        let s = store(&c, "h1").await;
        let ipam = Ipam::create(s.clone(), net("n", &["10.2.0.0/24"]))
            .await
            .unwrap();
        ipam.allocate(&owner("a"), &Request::any()).await.unwrap();
        // Keys written by something else under the prefix: Corrupt, naming the key.
        for (key, value) in [
            ("/underlay/ipam/data/n/addr/10.2.0.99", "hello"),
            ("/underlay/ipam/data/n/addr/banana", "a/eth0 host=h"),
            ("/underlay/ipam/data/n/addr/10.9.0.1", "a/eth0 host=h"),
        ] {
            c.ctl(&["put", key, value]);
            let r = s.load("n").await;
            let e2 = Ipam::open(s.clone(), "n").await.unwrap_err();
            assert_eq!(e2.kind(), ErrorKind::Corrupt, "{key}: {e2}");
            if key.ends_with("10.9.0.1") {
                // Well-formed, but outside every pool: the IPAM refuses it.
                assert!(r.is_ok());
                assert!(e2.message().contains("10.9.0.1"), "{e2}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{key}: {e}");
                assert!(e.message().contains(key), "{e}");
            }
            c.ctl(&["del", key]);
        }
        c.ctl(&["put", "/underlay/ipam/net/zzz", "garbage"]);
        let e = s.networks().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.message().contains("/underlay/ipam/net/zzz"), "{e}");
        c.ctl(&["del", "/underlay/ipam/net/zzz"]);
        c.ctl(&["put", "/underlay/ipam/data/n/version", "seven"]);
        let e = s.version("n").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        c.ctl(&["del", "/underlay/ipam/data/n/version"]);
        // Another prefix is another store: same name, no clash.
        let other = Arc::new(
            EtcdStore::connect(config(&c, "h1").prefix("/other/"))
                .await
                .unwrap(),
        );
        Ipam::create(other.clone(), net("n", &["10.2.0.0/24"]))
            .await
            .unwrap();
        assert_eq!(other.networks().await.unwrap().len(), 1);
    });
}

#[test]
fn wrong_credentials_are_refused() {
    if skip("wrong_credentials_are_refused") {
        return;
    }
    let c = Cluster::start(1);
    c.ctl(&["user", "add", "root:rootpw", "--interactive=false"]);
    c.ctl(&["user", "grant-role", "root", "root"]);
    c.ctl(&["auth", "enable"]);
    rt().block_on(async {
        let e = EtcdStore::connect(config(&c, "h").user("root", "wrong"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let e = EtcdStore::connect(config(&c, "h")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let s = Arc::new(
            EtcdStore::connect(config(&c, "h").user("root", "rootpw"))
                .await
                .unwrap(),
        );
        let ipam = Ipam::create(s, net("n", &["10.3.0.0/24"])).await.unwrap();
        ipam.allocate(&owner("a"), &Request::any()).await.unwrap();
        assert_eq!(ipam.list().await.unwrap().len(), 1);
    });
}

#[test]
fn tls_with_client_certificates() {
    if skip("tls_with_client_certificates") {
        return;
    }
    let c = Cluster::start_tls();
    let t = c.tls_dir().unwrap().to_path_buf();
    rt().block_on(async {
        let quick = |cfg: EtcdConfig| cfg.retry_for(Duration::from_secs(2));
        // Without a client certificate the server refuses the handshake: no answer in time.
        let e = EtcdStore::connect(quick(config(&c, "h").tls(t.join("ca.pem"))))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        let cfg = config(&c, "h")
            .tls(t.join("ca.pem"))
            .client_cert(t.join("node.pem"), t.join("node-key.pem"))
            .tls_domain("localhost");
        let s = Arc::new(EtcdStore::connect(cfg).await.unwrap());
        let ipam = Ipam::create(s, net("n", &["10.4.0.0/24"])).await.unwrap();
        let l = ipam.allocate(&owner("a"), &Request::any()).await.unwrap();
        let key = format!("/underlay/ipam/data/n/addr/{}", l.ips()[0]);
        assert!(c.ctl(&["get", &key]).contains("a/eth0 host=h"));
    });
}

// ---- many processes, as different hosts -------------------------------------------------

/// The child's body: allocate `COUNT` owners `PREFIX-i` from network `shared` with `INFLIGHT`
/// at once as host `HOST`, printing `@@ ack OWNER IP` once each allocation is acknowledged.
/// Optional: `LEASE_TTL` (a host lease), `SLICES` (node slices of that size), `RELEASE_EVERY`
/// (then release every n-th owner, printing `@@ rel OWNER` once acknowledged), `REPORT` (print
/// `@@ report HOST N` per host of `addresses_by_host`, as an operator's tool does), `HOLD` (keep
/// running until killed).
#[test]
fn child() {
    let Ok(endpoints) = std::env::var(CHILD) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let (host, prefix) = (var("HOST"), var("PREFIX"));
    let count: usize = var("COUNT").parse().unwrap();
    let inflight: usize = var("INFLIGHT").parse().unwrap();
    rt().block_on(async {
        let mut cfg = EtcdConfig::new(endpoints.split(','))
            .host(host)
            .request_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(300))
            .retry_for(Duration::from_secs(30));
        if let Ok(ttl) = std::env::var("LEASE_TTL") {
            cfg = cfg.host_lease(Duration::from_secs(ttl.parse().unwrap()));
        }
        if let Ok(n) = std::env::var("SLICES") {
            cfg = cfg.slices(n.parse().unwrap());
        }
        let store = Arc::new(EtcdStore::connect(cfg).await.unwrap());
        if std::env::var("REPORT").is_ok() {
            for (h, recs) in store.addresses_by_host("shared").await.unwrap() {
                println!("@@ report {h} {}", recs.len());
            }
        }
        let ipam = Ipam::open(store, "shared").await.unwrap();
        futures::stream::iter(0..count)
            .map(|i| {
                let ipam = ipam.clone();
                let prefix = prefix.clone();
                async move {
                    let o = owner(format!("{prefix}-{i}"));
                    let l = ipam.allocate(&o, &Request::any()).await.unwrap();
                    println!("@@ ack {o} {}", l.ips()[0]);
                }
            })
            .buffer_unordered(inflight)
            .collect::<Vec<()>>()
            .await;
        if let Ok(k) = std::env::var("RELEASE_EVERY") {
            let k: usize = k.parse().unwrap();
            futures::stream::iter((0..count).step_by(k))
                .map(|i| {
                    let ipam = ipam.clone();
                    let prefix = prefix.clone();
                    async move {
                        let o = owner(format!("{prefix}-{i}"));
                        ipam.release(&o).await.unwrap().unwrap();
                        println!("@@ rel {o}");
                    }
                })
                .buffer_unordered(inflight)
                .collect::<Vec<()>>()
                .await;
        }
        if std::env::var("HOLD").is_ok() {
            // Keep running (and the lease alive) until killed.
            println!("@@ holding");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

fn spawn(c: &Cluster, host: &str, count: usize, inflight: usize) -> Child {
    child_cmd(c, host, count, inflight).spawn().unwrap()
}

fn child_cmd(c: &Cluster, host: &str, count: usize, inflight: usize) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "ipam_etcd::child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, c.endpoints().join(","))
    .env("HOST", host)
    .env("PREFIX", host)
    .env("COUNT", count.to_string())
    .env("INFLIGHT", inflight.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Collects `@@ ack` lines of running children in background threads.
struct Acks {
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Acks {
    fn follow(children: &mut [Child]) -> Acks {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let readers = children
            .iter_mut()
            .map(|c| {
                let out = c.stdout.take().unwrap();
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for l in BufReader::new(out).lines().map_while(|l| l.ok()) {
                        lines.lock().unwrap().push(l);
                    }
                })
            })
            .collect();
        Acks { lines, readers }
    }

    fn count(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("@@ ack"))
            .count()
    }

    /// Waits for the children (all must succeed) and returns owner -> address.
    fn finish(self, children: Vec<Child>) -> HashMap<String, IpAddr> {
        for mut c in children {
            let st = c.wait().unwrap();
            assert!(st.success(), "a child failed: {st:?}");
        }
        for r in self.readers {
            r.join().unwrap();
        }
        // Each child's lines are in its order (one reader per child); owners are per child.
        let mut held = HashMap::new();
        for line in self.lines.lock().unwrap().iter() {
            if let Some(i) = line.find("@@ rel ") {
                assert!(held.remove(line[i + 7..].trim()).is_some(), "{line}");
                continue;
            }
            let Some(i) = line.find("@@ ack ") else {
                continue;
            };
            let w: Vec<&str> = line[i + 7..].split(' ').collect();
            assert!(held
                .insert(w[0].to_string(), w[1].parse().unwrap())
                .is_none());
        }
        held
    }
}

/// Every acknowledged claim is in the store with its address, nothing is owned twice, and
/// each host's report holds exactly its own owners.
async fn verify(c: &Cluster, held: &HashMap<String, IpAddr>) {
    let s = store(c, "verifier").await;
    let ipam = Ipam::open(s.clone(), "shared").await.unwrap();
    let leased: HashMap<String, IpAddr> = check(&ipam)
        .await
        .into_iter()
        .map(|(a, o)| (o.to_string(), a))
        .collect();
    assert_eq!(&leased, held, "acknowledged claims and the store differ");
    let addrs: HashSet<&IpAddr> = held.values().collect();
    assert_eq!(addrs.len(), held.len(), "an address was handed out twice");
    for (host, recs) in s.addresses_by_host("shared").await.unwrap() {
        for r in recs {
            assert!(
                r.owner.container_id().starts_with(&format!("{host}-")),
                "{host}: {r:?}"
            );
        }
    }
}

#[test]
fn processes_as_hosts_race_on_one_pool() {
    if skip("processes_as_hosts_race_on_one_pool") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        Ipam::create(store(&c, "h").await, net("shared", &["10.77.0.0/22"]))
            .await
            .unwrap();
    });
    let mut children: Vec<Child> = (0..4)
        .map(|i| spawn(&c, &format!("h{i}"), 150, 8))
        .collect();
    let acks = Acks::follow(&mut children);
    let held = acks.finish(children);
    assert_eq!(held.len(), 4 * 150);
    rt().block_on(verify(&c, &held));
}

/// Hosts with node slices race with a host without, allocating and releasing: no address
/// owned twice, every acknowledged claim (and release) stored, each sliced host's addresses
/// inside its own slices, and only the host without slices moved the network's version.
#[test]
fn processes_as_hosts_race_in_slices() {
    if skip("processes_as_hosts_race_in_slices") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        Ipam::create(store(&c, "h").await, net("shared", &["10.84.0.0/22"]))
            .await
            .unwrap();
    });
    let mut children: Vec<Child> = (0..4)
        .map(|i| {
            let mut cmd = child_cmd(&c, &format!("h{i}"), 150, 8);
            if i < 3 {
                cmd.env("SLICES", "16").env("RELEASE_EVERY", "4");
            }
            cmd.spawn().unwrap()
        })
        .collect();
    let acks = Acks::follow(&mut children);
    let held = acks.finish(children);
    assert_eq!(held.len(), 4 * 150 - 3 * 150usize.div_ceil(4));
    rt().block_on(async {
        verify(&c, &held).await;
        let s = store(&c, "verifier").await;
        let slices = s.slices_by_host("shared").await.unwrap();
        assert!(!slices.contains_key("h3"), "h3 has no slices");
        let mut blocks: Vec<(u32, u32)> = slices
            .values()
            .flatten()
            .map(|(f, n)| (u32::from(as_v4(*f)), *n))
            .collect();
        blocks.sort();
        for w in blocks.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "slices overlap: {blocks:?}");
        }
        for (o, ip) in &held {
            let host = o.split('-').next().unwrap();
            if host == "h3" {
                continue;
            }
            let i = u32::from(as_v4(*ip));
            assert!(
                slices[host].iter().any(|(f, n)| {
                    let f = u32::from(as_v4(*f));
                    (f..f + n).contains(&i)
                }),
                "{o} {ip} outside {host}'s slices {slices:?}"
            );
        }
        // Only h3's 150 claims (in group-committed batches) went through the version.
        let v = s.version("shared").await.unwrap();
        assert!((1..=150).contains(&v), "version {v}");
    });
}

#[test]
fn three_members_survive_a_leader_killed_mid_run() {
    if skip("three_members_survive_a_leader_killed_mid_run") {
        return;
    }
    let mut c = Cluster::start(3);
    rt().block_on(async {
        Ipam::create(store(&c, "h").await, net("shared", &["10.78.0.0/22"]))
            .await
            .unwrap();
    });
    let mut children: Vec<Child> = (0..3)
        .map(|i| spawn(&c, &format!("h{i}"), 200, 4))
        .collect();
    let acks = Acks::follow(&mut children);
    let t = Instant::now();
    while acks.count() < 60 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the children never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let leader = c.leader();
    c.kill(leader); // SIGKILL, mid-run
    let before = acks.count();
    let held = acks.finish(children);
    assert_eq!(held.len(), 3 * 200);
    assert!(before < held.len(), "nothing was allocated after the kill");
    rt().block_on(verify(&c, &held));
    // The old leader comes back on its data and catches up.
    c.restart(leader);
    let others = (0..3).find(|&i| i != leader).unwrap();
    let target = c.applied_index(others).unwrap();
    let t = Instant::now();
    while c.applied_index(leader).unwrap_or(0) < target {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the restarted member never caught up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = c
        .ctl_at(
            leader,
            &[
                "get",
                "--prefix",
                "/underlay/ipam/data/shared/addr/",
                "--keys-only",
                "--consistency=s",
            ],
        )
        .unwrap();
    assert_eq!(out.lines().filter(|l| !l.is_empty()).count(), 3 * 200);
}

// ---- per-host leases ----------------------------------------------------------------------

/// Runs `cmd` (a child holding on after its claims) until it prints `@@ holding`, then
/// SIGKILLs it by PID and returns the addresses it acknowledged.
fn claim_then_kill(cmd: Command) -> HashSet<IpAddr> {
    let (child, addrs) = claim_and_hold(cmd);
    child.kill(); // SIGKILL: no goodbye to etcd
    addrs
}

/// A child process that is SIGKILLed by PID when dropped, also when the test fails.
struct Held(Child);

impl Held {
    fn kill(self) {
        drop(self);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` until it prints `@@ holding`; returns the running child and the addresses it
/// acknowledged.
fn claim_and_hold(mut cmd: Command) -> (Held, HashSet<IpAddr>) {
    let mut child = cmd.env("HOLD", "1").spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut addrs = HashSet::new();
    for line in out.lines().map_while(|l| l.ok()) {
        if let Some(rest) = line.split("@@ ack ").nth(1) {
            addrs.insert(rest.split(' ').nth(1).unwrap().parse().unwrap());
        }
        if line.contains("@@ holding") {
            break;
        }
    }
    (Held(child), addrs)
}

#[test]
fn host_leases_free_a_dead_hosts_addresses_after_the_ttl() {
    if skip("host_leases_free_a_dead_hosts_addresses_after_the_ttl") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        Ipam::create(store(&c, "h").await, net("shared", &["10.78.0.0/28"]))
            .await
            .unwrap();
    });
    let mut leased = child_cmd(&c, "leased", 5, 2);
    leased.env("LEASE_TTL", "2");
    let leased = claim_then_kill(leased);
    let plain = claim_then_kill(child_cmd(&c, "plain", 5, 2));
    assert_eq!((leased.len(), plain.len()), (5, 5));
    assert!(leased.is_disjoint(&plain));
    rt().block_on(async {
        let s = store(&c, "observer").await;
        // The leased host's keys carry a lease (etcdctl is the oracle), the plain one's none.
        let kvs: serde_json::Value = serde_json::from_str(&c.ctl(&[
            "get",
            "--prefix",
            "/underlay/ipam/data/shared/addr/",
            "-w",
            "json",
        ]))
        .unwrap();
        let with_lease = kvs["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|kv| kv["lease"].as_i64().unwrap_or(0) != 0)
            .count();
        let by_host = s.addresses_by_host("shared").await.unwrap();
        assert!(
            with_lease == 5 || !by_host.contains_key("leased"),
            "the leased host's claims carry no lease: {kvs}"
        );
        // Within the TTL plus etcd's expiry sweep, the killed leased host's claims go.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let by_host = s.addresses_by_host("shared").await.unwrap();
            if !by_host.contains_key("leased") {
                let kept: HashSet<IpAddr> = by_host["plain"].iter().map(|r| r.addr).collect();
                assert_eq!(kept, plain, "the host without a lease keeps its claims");
                assert_eq!(by_host.len(), 1, "{by_host:?}");
                break;
            }
            assert!(Instant::now() < deadline, "the leased claims never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Another host takes the freed addresses; the plain host's stay taken.
        let ipam = Ipam::open(store(&c, "other").await, "shared")
            .await
            .unwrap();
        let mut got = HashSet::new();
        for i in 0.. {
            match ipam
                .allocate(&owner(format!("o-{i}")), &Request::any())
                .await
            {
                Ok(l) => assert!(got.insert(l.ips()[0])),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
                    break;
                }
            }
        }
        assert!(leased.is_subset(&got), "freed {leased:?}, got {got:?}");
        assert!(plain.is_disjoint(&got), "plain {plain:?}, got {got:?}");
    });
}

#[test]
fn host_lease_is_kept_alive_and_joined_on_reconnect() {
    if skip("host_lease_is_kept_alive_and_joined_on_reconnect") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let cfg = || {
            config(&c, "h1")
                .host_lease(Duration::from_secs(2))
                .slices(4)
        };
        let s = Arc::new(EtcdStore::connect(cfg()).await.unwrap());
        assert_eq!(s.host_lease_ttl(), Some(Duration::from_secs(2)));
        let (ipam, _) = Ipam::join(s.clone(), net("n", &["10.79.0.0/28"]))
            .await
            .unwrap();
        let a = ipam.allocate(&owner("a"), &Request::any()).await.unwrap();
        let b = ipam.allocate(&owner("b"), &Request::any()).await.unwrap();
        // Well past the TTL: kept alive by the store's task.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let by_host = s.addresses_by_host("n").await.unwrap();
        assert_eq!(by_host["h1"].len(), 2);
        // The store goes (keep-alive stops); a new one for the same host, within the TTL,
        // joins the host's lease, which it keeps alive.
        drop(ipam);
        drop(s);
        let s2 = Arc::new(EtcdStore::connect(cfg()).await.unwrap());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let ipam = Ipam::open(s2.clone(), "n").await.unwrap();
        assert_eq!(
            ipam.lookup(&owner("a")).await.unwrap().map(|l| l.ips()[0]),
            Some(a.ips()[0])
        );
        assert_eq!(
            ipam.lookup(&owner("b")).await.unwrap().map(|l| l.ips()[0]),
            Some(b.ips()[0])
        );
        assert_eq!(s2.slices_by_host("n").await.unwrap()["h1"].len(), 1);
        assert_eq!(
            s2.members("n").await.unwrap(),
            ["h1"],
            "membership kept too"
        );
        // Settings are checked.
        let e = EtcdStore::connect(config(&c, "h1").host_lease(Duration::from_millis(10)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    });
}

// ---- node slices ---------------------------------------------------------------------------

#[test]
fn node_slices_never_overlap_refill_and_gc() {
    if skip("node_slices_never_overlap_refill_and_gc") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let sliced = |host: &str| {
            let cfg = config(&c, host).slices(16);
            async move { Arc::new(EtcdStore::connect(cfg).await.unwrap()) }
        };
        let (s1, s2) = (sliced("h1").await, sliced("h2").await);
        let (ipam1, _) = Ipam::join(s1.clone(), net("sl", &["10.80.0.0/24"]))
            .await
            .unwrap();
        let (ipam2, _) = Ipam::join(s2.clone(), net("sl", &["10.80.0.0/24"]))
            .await
            .unwrap();
        // Two hosts allocate at once, 40 each (8 in flight), in slices of 16: each fills
        // slices and takes more.
        let run = |ipam: Ipam, host: &'static str| async move {
            futures::stream::iter(0..40)
                .map(|i| {
                    let ipam = ipam.clone();
                    async move {
                        let o = owner(format!("{host}-{i}"));
                        ipam.allocate(&o, &Request::any()).await.unwrap().ips()[0]
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<IpAddr>>()
                .await
        };
        let (a1, a2) = futures::join!(run(ipam1.clone(), "h1"), run(ipam2.clone(), "h2"));
        let all: HashSet<IpAddr> = a1.iter().chain(&a2).copied().collect();
        assert_eq!(all.len(), 80, "an address was handed out twice");
        let slices = s1.slices_by_host("sl").await.unwrap();
        let inside = |ip: IpAddr, host: &str| {
            slices[host].iter().any(|(first, size)| {
                let (f, i) = (u32::from(as_v4(*first)), u32::from(as_v4(ip)));
                (f..f + size).contains(&i)
            })
        };
        for ip in &a1 {
            assert!(inside(*ip, "h1") && !inside(*ip, "h2"), "{ip}: {slices:?}");
        }
        for ip in &a2 {
            assert!(inside(*ip, "h2") && !inside(*ip, "h1"), "{ip}: {slices:?}");
        }
        let blocks: HashSet<IpAddr> = slices.values().flatten().map(|(f, _)| *f).collect();
        assert_eq!(blocks.len(), slices.values().map(Vec::len).sum::<usize>());
        assert!(
            slices["h1"].len() >= 3 && slices["h2"].len() >= 3,
            "{slices:?}"
        );
        // etcd (etcdctl is the oracle) holds every claim as an address key, and the claims
        // in slices never moved the network's version: no contention on it.
        let keys = c.ctl(&[
            "get",
            "--prefix",
            "--keys-only",
            "/underlay/ipam/data/sl/addr/",
        ]);
        assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 80);
        let version = c.ctl(&[
            "get",
            "/underlay/ipam/data/sl/version",
            "--print-value-only",
        ]);
        assert_eq!(version.trim(), "0");
        // Each host sees the other's claims (its cache learns of them by the slice writes).
        assert_eq!(check(&ipam1).await, check(&ipam2).await);
        // Releases in slices: also without the version, seen by the other host.
        for i in 0..10 {
            ipam1
                .release(&owner(format!("h1-{i}")))
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(ipam2.list().await.unwrap().len(), 70);
        assert_eq!(s1.version("sl").await.unwrap(), 0);
        // One size per network: a host asking for another is told which.
        let s8 = Arc::new(
            EtcdStore::connect(config(&c, "h8").slices(8))
                .await
                .unwrap(),
        );
        let ipam8 = Ipam::open(s8.clone(), "sl").await.unwrap();
        let e = ipam8
            .allocate(&owner("x"), &Request::any())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("slices(16)"), "{e}");
        // A host that dies: its leases are collected, then its now empty slices.
        let s3 = sliced("h3").await;
        let ipam3 = Ipam::open(s3.clone(), "sl").await.unwrap();
        let l3 = ipam3
            .allocate(&owner("h3-0"), &Request::any())
            .await
            .unwrap();
        drop((ipam3, s3));
        assert!(
            s1.gc_slices("sl", "h3").await.unwrap().is_empty(),
            "a slice holding a lease stays"
        );
        s1.gc_host("sl", "h3", &[]).await.unwrap();
        let freed = s1.gc_slices("sl", "h3").await.unwrap();
        assert_eq!(freed.len(), 1);
        assert!(!s1.slices_by_host("sl").await.unwrap().contains_key("h3"));
        // The freed block is the first free one: the next slice taken is that one.
        let range = s2.take_slice("sl", 0).await.unwrap();
        let f = u32::from(as_v4(freed[0]));
        assert_eq!(
            range,
            AllocRange::span(freed[0], ip(&std::net::Ipv4Addr::from(f + 15).to_string())).unwrap()
        );
        assert!((f..f + 16).contains(&u32::from(as_v4(l3.ips()[0]))));
    });
}

/// Claims and releases in one host's slices do not move the version; another host's reads,
/// a cluster-wide gc, and a host without slices picking anywhere all still see them, and no
/// address is ever owned twice.
#[test]
fn slice_commits_are_seen_by_every_host() {
    if skip("slice_commits_are_seen_by_every_host") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let b = Arc::new(EtcdStore::connect(config(&c, "b").slices(8)).await.unwrap());
        let (a, plain) = (store(&c, "a").await, store(&c, "plain").await);
        let n = net("sw", &["10.81.0.0/26"]);
        let (ia, _) = Ipam::join(a.clone(), n.clone()).await.unwrap();
        let (ib, _) = Ipam::join(b.clone(), n.clone()).await.unwrap();
        let (ip_, _) = Ipam::join(plain.clone(), n).await.unwrap();
        assert!(ia.list().await.unwrap().is_empty());
        for i in 0..10 {
            ib.allocate(&owner(format!("b-{i}")), &Request::any())
                .await
                .unwrap();
        }
        assert_eq!(b.version("sw").await.unwrap(), 0);
        // `ia`, opened before, reads them all (its stamp's slice writes moved).
        assert_eq!(ia.list().await.unwrap().len(), 10);
        assert!(ia.lookup(&owner("b-3")).await.unwrap().is_some());
        // A cluster-wide gc from `a` sees them and releases those not valid.
        let valid: Vec<Owner> = (0..5).map(|i| owner(format!("b-{i}"))).collect();
        assert_eq!(ia.gc(&valid).await.unwrap().len(), 5);
        // The host without slices allocates next-fit from the pool's start, into `b`'s
        // slices where `a`'s gc freed addresses; `b` keeps allocating in them, its cache
        // stale: conflicts are retried, nothing is doubled.
        let both = futures::join!(
            async {
                let mut v = Vec::new();
                for i in 0..20 {
                    let l = ip_
                        .allocate(&owner(format!("p-{i}")), &Request::any())
                        .await;
                    v.push(l.unwrap().ips()[0]);
                }
                v
            },
            async {
                let mut v = Vec::new();
                for i in 10..30 {
                    let l = ib.allocate(&owner(format!("b-{i}")), &Request::any()).await;
                    v.push(l.unwrap().ips()[0]);
                }
                v
            }
        );
        let mut all: Vec<IpAddr> = both.0.iter().chain(&both.1).copied().collect();
        all.sort();
        let n_all = all.len();
        all.dedup();
        assert_eq!(all.len(), n_all, "an address was handed out twice");
        let held = check(&ia).await;
        assert_eq!(held.len(), 5 + 20 + 20);
        assert_eq!(check(&ib).await, held);
        assert_eq!(check(&ip_).await, held);
        let keys = c.ctl(&[
            "get",
            "--prefix",
            "--keys-only",
            "/underlay/ipam/data/sw/addr/",
        ]);
        assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), held.len());
    });
}

/// A network shared by two hosts stays defined until the last one leaves; each host's leave
/// needs only its own leases gone.
#[test]
fn shared_definition_stays_until_the_last_host_leaves() {
    if skip("shared_definition_stays_until_the_last_host_leaves") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let (a, b) = (store(&c, "ha").await, store(&c, "hb").await);
        let n = net("m", &["10.82.0.0/24"]);
        let (ia, how) = Ipam::join(a.clone(), n.clone()).await.unwrap();
        assert_eq!(how, Joined::Created);
        let (ib, how) = Ipam::join(b.clone(), n.clone()).await.unwrap();
        assert_eq!(how, Joined::Existing);
        let e = Ipam::join(b.clone(), net("m", &["10.82.0.0/25"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(e.message().contains("defined differently"), "{e}");
        let members = || {
            c.ctl(&[
                "get",
                "--prefix",
                "--keys-only",
                "/underlay/ipam/data/m/member/",
            ])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
        };
        assert_eq!(
            members(),
            [
                "/underlay/ipam/data/m/member/ha",
                "/underlay/ipam/data/m/member/hb"
            ]
        );
        assert_eq!(a.members("m").await.unwrap(), ["ha", "hb"]);
        ia.allocate(&owner("a1"), &Request::any()).await.unwrap();
        ib.allocate(&owner("b1"), &Request::any()).await.unwrap();
        assert_eq!(a.host_records("m").await.unwrap().len(), 1);
        // `ha` leaves while it holds a lease: refused, naming the host.
        let e = Ipam::leave(&*a, "m").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
        assert!(e.message().contains("`ha`"), "{e}");
        ia.release(&owner("a1")).await.unwrap().unwrap();
        // Now it leaves; the definition stays for `hb`, whose lease is untouched.
        assert_eq!(
            Ipam::leave(&*a, "m").await.unwrap(),
            Left::Kept(vec!["hb".to_string()])
        );
        assert_eq!(members(), ["/underlay/ipam/data/m/member/hb"]);
        let def = c.ctl(&["get", "/underlay/ipam/net/m", "--print-value-only"]);
        assert!(def.contains("10.82.0.0/24"), "{def}");
        assert!(ib.lookup(&owner("b1")).await.unwrap().is_some());
        ib.allocate(&owner("b2"), &Request::any()).await.unwrap();
        // Leaving twice is harmless.
        assert!(matches!(
            Ipam::leave(&*a, "m").await.unwrap(),
            Left::Kept(_)
        ));
        // `hb` is the last: its leases block the delete, then it goes with everything.
        let e = Ipam::leave(&*b, "m").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
        assert!(e.message().contains("2 of host `hb`"), "{e}");
        ib.gc(&[]).await.unwrap();
        assert_eq!(Ipam::leave(&*b, "m").await.unwrap(), Left::Deleted);
        let left = c.ctl(&["get", "--prefix", "/underlay/ipam/", "--keys-only"]);
        let left: Vec<&str> = left.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            left,
            ["/underlay/ipam/catalog"],
            "keys left after the last leave"
        );
        let e = Ipam::leave(&*b, "m").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        // Joined again from scratch: defined anew.
        let (_, how) = Ipam::join(b.clone(), net("m", &["10.82.0.0/25"]))
            .await
            .unwrap();
        assert_eq!(how, Joined::Created);
    });
}

/// `Networks` on two hosts over one etcd: the second joins the definition the first made
/// (another definition is refused), endpoints allocate in each host's node slices, deleting
/// the network on one host leaves the other's definition, leases and slices alone, and the
/// last host's delete (stray lease included) leaves nothing in etcd. Kernel side: throwaway
/// namespaces, checked with iproute2.
#[test]
fn networks_on_two_hosts_share_one_definition() {
    let name = "networks_on_two_hosts_share_one_definition";
    if skip(name) || !privileged(name) {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let sliced = |host: &str| {
            let cfg = config(&c, host).slices(8);
            async move { Arc::new(EtcdStore::connect(cfg).await.unwrap()) }
        };
        let (s1, s2) = (sliced("n1").await, sliced("n2").await);
        let h1 = TestNs::with_veth("en1", "ens192", "wire0").await;
        let h2 = TestNs::with_veth("en2", "ens192", "wire0").await;
        let (d1, d2) = (TempDir::new("etcd-n1"), TempDir::new("etcd-n2"));
        let nets1 = Networks::with_store(&h1.handle, &d1.0, s1.clone())
            .await
            .unwrap();
        let nets2 = Networks::with_store(&h2.handle, &d2.0, s2.clone())
            .await
            .unwrap();
        let spec = |pool: &str| {
            NetworkSpec::macvlan("mac_net1", "ens192", MacvlanMode::Bridge)
                .pool(pool.parse().unwrap())
        };
        let pool = "172.22.16.0/24 gateway=172.22.16.1";
        let net1 = nets1.create(spec(pool)).await.unwrap();
        let e = nets2
            .create(spec("172.22.16.0/25 gateway=172.22.16.1"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(nets2.list().await.unwrap().is_empty());
        let net2 = nets2.create(spec(pool)).await.unwrap();
        assert_eq!(s1.members("mac_net1").await.unwrap(), ["n1", "n2"]);

        let (c1, c2, c3) = (
            TestNs::new("ec1").await,
            TestNs::new("ec2").await,
            TestNs::new("ec3").await,
        );
        let ep1 = net1.connect(&c1.ns, EndpointSpec::new("c1")).await.unwrap();
        let ep2 = net2.connect(&c2.ns, EndpointSpec::new("c2")).await.unwrap();
        assert_ne!(ep1.addresses, ep2.addresses);
        assert!(ip_addrs(&c1, "eth0").contains(&ep1.addresses[0].to_string()));
        assert!(ip_addrs(&c2, "eth0").contains(&ep2.addresses[0].to_string()));
        let slices = s1.slices_by_host("mac_net1").await.unwrap();
        let inside = |ip: IpAddr, host: &str| {
            slices[host].iter().any(|(f, n)| {
                let (f, i) = (u32::from(as_v4(*f)), u32::from(as_v4(ip)));
                (f..f + n).contains(&i)
            })
        };
        assert!(inside(ep1.addresses[0].addr(), "n1"), "{slices:?}");
        assert!(inside(ep2.addresses[0].addr(), "n2"), "{slices:?}");
        // A stray lease on host 2 (no endpoint behind it).
        net2.ipam()
            .allocate(&owner("stray"), &Request::any())
            .await
            .unwrap();

        // Host 1 deletes the network: only its own use of it ends.
        net1.disconnect("c1", "eth0").await.unwrap();
        nets1.delete("mac_net1").await.unwrap();
        assert!(h1.ip_link("ens192").is_some(), "the user's parent stays");
        let def = c.ctl(&["get", "/underlay/ipam/net/mac_net1", "--print-value-only"]);
        assert!(def.contains("172.22.16.0/24"), "definition gone: {def:?}");
        assert_eq!(s2.members("mac_net1").await.unwrap(), ["n2"]);
        let by_host = s2.addresses_by_host("mac_net1").await.unwrap();
        assert_eq!(by_host.keys().collect::<Vec<_>>(), ["n2"]);
        assert_eq!(by_host["n2"].len(), 2, "host 2's leases untouched");
        let slices = s2.slices_by_host("mac_net1").await.unwrap();
        assert_eq!(
            slices.keys().collect::<Vec<_>>(),
            ["n2"],
            "host 1's slices freed"
        );
        // Host 2 keeps allocating.
        let ep3 = net2.connect(&c3.ns, EndpointSpec::new("c3")).await.unwrap();
        assert!(ip_addrs(&c3, "eth0").contains(&ep3.addresses[0].to_string()));
        net2.disconnect("c2", "eth0").await.unwrap();
        net2.disconnect("c3", "eth0").await.unwrap();
        // The last host's delete takes the stray lease and the definition with it.
        nets2.delete("mac_net1").await.unwrap();
        let left = c.ctl(&["get", "--prefix", "/underlay/ipam/", "--keys-only"]);
        let left: Vec<&str> = left.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            left,
            ["/underlay/ipam/catalog"],
            "keys left after the last delete"
        );
    });
}

// ---- lease expiry seen by a running host ------------------------------------------------

/// A host whose `Ipam` was opened before another host's lease expired gets the freed
/// addresses without reopening: on exhaustion it confirms with etcd (the count of address
/// keys fell) and reloads; its reads see the expiry too.
#[test]
fn a_running_host_sees_addresses_freed_by_an_expiry() {
    if skip("a_running_host_sees_addresses_freed_by_an_expiry") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        Ipam::create(store(&c, "h").await, net("shared", &["10.83.0.0/28"]))
            .await
            .unwrap();
    });
    // 13 usable addresses (.2 .. .14): 5 for a host with a 2 s lease, 5 without.
    let mut leased_cmd = child_cmd(&c, "leased", 5, 2);
    leased_cmd.env("LEASE_TTL", "2");
    let (leased_child, leased) = claim_and_hold(leased_cmd);
    let (plain_child, plain) = claim_and_hold(child_cmd(&c, "plain", 5, 2));
    rt().block_on(async {
        let s = store(&c, "running").await;
        let alloc = Ipam::open(s.clone(), "shared").await.unwrap();
        let reader = Ipam::open(s.clone(), "shared").await.unwrap();
        // The pool fills up.
        let mut mine = HashSet::new();
        for i in 0..3 {
            let l = alloc
                .allocate(&owner(format!("r-{i}")), &Request::any())
                .await;
            mine.insert(l.unwrap().ips()[0]);
        }
        let e = alloc
            .allocate(&owner("r-x"), &Request::any())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
        assert_eq!(reader.list().await.unwrap().len(), 13);
        // The leased host dies; etcd (etcdctl is the oracle) drops its keys after the TTL.
        leased_child.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = c.ctl(&["get", "--prefix", "/underlay/ipam/data/shared/addr/"]);
            if !out.contains("host=leased") {
                break;
            }
            assert!(Instant::now() < deadline, "the leased claims never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The expiry moved no version; the running Ipams see it anyway.
        assert_eq!(reader.list().await.unwrap().len(), 8);
        assert!(reader.lookup(&owner("leased-0")).await.unwrap().is_none());
        let mut got = HashSet::new();
        for i in 0..5 {
            let l = alloc
                .allocate(&owner(format!("r2-{i}")), &Request::any())
                .await;
            got.insert(l.unwrap().ips()[0]);
        }
        assert_eq!(got, leased, "the freed addresses, and only those");
        let e = alloc
            .allocate(&owner("r-y"), &Request::any())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
        assert!(plain.is_disjoint(&got) && mine.is_disjoint(&got));
    });
    plain_child.kill();
}

fn as_v4(ip: IpAddr) -> std::net::Ipv4Addr {
    match ip {
        IpAddr::V4(v) => v,
        IpAddr::V6(_) => panic!("{ip} is not IPv4"),
    }
}

/// A server on the endpoint that answers, but not in etcd's gRPC (an HTTP/1.1 server, one that
/// greets with another protocol's banner): `Protocol` naming the endpoint, at the first answer,
/// not `Timeout` after retrying. A server that only closes the connection stays a `Timeout`
/// (an etcd member going down looks the same).
#[test]
fn endpoint_not_speaking_etcd_is_a_protocol_error() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let quick = |url: &str, retry_for: u64| {
        EtcdConfig::new([url])
            .request_timeout(Duration::from_millis(500))
            .connect_timeout(Duration::from_millis(300))
            .retry_for(Duration::from_secs(retry_for))
    };
    let http = serve(
        b"",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    );
    let ssh = serve(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"");
    let closes = serve(b"", b"");
    rt().block_on(async {
        for url in [http, ssh] {
            let t = Instant::now();
            let e = EtcdStore::connect(quick(&url, 60)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol, "{url}: {e}");
            assert!(e.message().contains(&url), "{e}");
            assert!(
                e.message().contains("does not speak etcd's protocol"),
                "{e}"
            );
            // Not a pass/fail timing: only that it did not retry until the deadline.
            assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
        }
        let e = EtcdStore::connect(quick(&closes, 2)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{closes}: {e}");
        assert!(e.message().contains(&closes), "{e}");
    });
}

/// A fake endpoint on a free loopback port, serving each connection on its own thread (for
/// the life of the test process): `banner` first, then `reply` to each read; its URL.
fn serve(banner: &'static [u8], reply: &'static [u8]) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.write_all(banner);
                while s.read(&mut buf).is_ok_and(|n| n > 0) {
                    if s.write_all(reply).is_err() || reply.is_empty() {
                        return;
                    }
                }
            });
        }
    });
    url
}

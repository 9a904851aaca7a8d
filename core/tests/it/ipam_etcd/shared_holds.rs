//! Shared reservations on etcd (`Ipam::hold`/`unhold`): processes as hosts hold and unhold a
//! tiny pool's two reservations while they allocate and release in it, two of them killed
//! with SIGKILL at random moments. Checked while they run (etcd read with `etcdctl get
//! --prefix`, one revision: every hold key's address key holds the reservation's owner) and
//! at the end against etcd's contents and the library's listing: no allocation ever returned
//! an address while a holder held it (by the children's own timed records), an address has one
//! owner, every holder left holds exactly what its acknowledged steps say, and once every
//! holder has unheld, the addresses are allocatable again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use underlay::ipam::{
    EtcdConfig, EtcdStore, Ipam, LocalStore, Network, Owner, Pool, Request, Store, Unheld,
};
use underlay::ErrorKind;

use super::cluster::Cluster;
use super::{ip, owner, rt, skip, store};

const CHILD: &str = "UNDERLAY_HOLDS_CHILD";
const NET: &str = "held";
/// The reservations: owner and address.
const RESERVED: [(&str, &str); 2] = [("rsv-gw", "10.77.0.1"), ("rsv-aux", "10.77.0.6")];

fn tiny() -> Network {
    // .1 .. .6: two reserved, four for allocations; four hosts allocating: often full.
    let pool = Pool::builder("10.77.0.0/29".parse().unwrap())
        .no_gateway()
        .build()
        .unwrap();
    Network::new(NET, vec![pool]).unwrap()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One host: `OPS` random steps, one at a time: hold or unhold a reservation, allocate or
/// release one of its own owners. Prints `@@ start OP OWNER` before a step and
/// `@@ done OP OWNER RESULT T0 T1` after (times in ns since the epoch).
#[test]
fn holds_child() {
    let Ok(endpoints) = std::env::var(CHILD) else {
        return;
    };
    let host = std::env::var("HOST").unwrap();
    let ops: usize = std::env::var("OPS").unwrap().parse().unwrap();
    let mut seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    rt().block_on(async {
        let store: Arc<dyn Store> = match endpoints.strip_prefix("local:") {
            Some(dir) => Arc::new(LocalStore::open(dir).unwrap()),
            None => {
                let cfg = EtcdConfig::new(endpoints.split(','))
                    .host(host.clone())
                    .request_timeout(Duration::from_secs(2))
                    .retry_for(Duration::from_secs(30));
                Arc::new(EtcdStore::connect(cfg).await.unwrap())
            }
        };
        let ipam = Ipam::open(store, NET).await.unwrap();
        let mut mine: Vec<Owner> = Vec::new();
        for step in 0..ops {
            let t0 = now_ns();
            let (op, who, result) = match rand() % 6 {
                0 | 1 => {
                    let (o, a) = RESERVED[(rand() % 2) as usize];
                    println!("@@ start hold {o}/eth0 {}", now_ns());
                    match ipam.hold(&owner(o), ip(a), &host).await {
                        Ok(h) => {
                            assert!(h.holders.contains(&host), "{h:?}");
                            ("hold", owner(o), h.addr.to_string())
                        }
                        // Free while nobody held it, an allocation took it: refused.
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                            ("hold", owner(o), "taken".to_string())
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                2 => {
                    let (o, _) = RESERVED[(rand() % 2) as usize];
                    println!("@@ start unhold {o}/eth0 {}", now_ns());
                    let r = match ipam.unhold(&owner(o), &host).await.unwrap() {
                        Unheld::Kept(_) => "kept".to_string(),
                        Unheld::Released(a) => format!("released:{a}"),
                        Unheld::NotHeld => "notheld".to_string(),
                    };
                    ("unhold", owner(o), r)
                }
                3 | 4 => {
                    let o = owner(format!("{host}-{step}"));
                    println!("@@ start alloc {o} {}", now_ns());
                    match ipam.allocate(&o, &Request::any()).await {
                        Ok(l) => {
                            mine.push(o.clone());
                            ("alloc", o, l.ips()[0].to_string())
                        }
                        Err(e) if e.kind() == ErrorKind::PoolExhausted => {
                            ("alloc", o, "full".to_string())
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                _ => {
                    if mine.is_empty() {
                        continue;
                    }
                    let o = mine.remove((rand() as usize) % mine.len());
                    println!("@@ start rel {o} {}", now_ns());
                    let l = ipam.release(&o).await.unwrap().unwrap();
                    ("rel", o, l.ips()[0].to_string())
                }
            };
            println!("@@ done {op} {who} {result} {t0} {}", now_ns());
            // A breath between steps, so that a kill lands mid-run even on a fast store.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// What one line says.
#[derive(Debug, Clone)]
enum Line {
    Start(String, String, u128),
    Done {
        op: String,
        owner: String,
        result: String,
        t0: u128,
        t1: u128,
    },
}

fn parse(line: &str) -> Option<Line> {
    let i = line.find("@@ ")?;
    let w: Vec<&str> = line[i + 3..].split(' ').collect();
    match w.as_slice() {
        ["start", op, o, t] => Some(Line::Start(op.to_string(), o.to_string(), t.parse().ok()?)),
        ["done", op, o, r, t0, t1] => Some(Line::Done {
            op: op.to_string(),
            owner: o.to_string(),
            result: r.to_string(),
            t0: t0.parse().ok()?,
            t1: t1.parse().ok()?,
        }),
        _ => None,
    }
}

/// etcd's contents under the network (one revision): address -> value, address -> hold value.
fn etcd_state(c: &Cluster) -> (BTreeMap<IpAddr, String>, BTreeMap<IpAddr, String>) {
    let prefix = format!("/underlay/ipam/data/{NET}/");
    let out = c.ctl(&["get", "--prefix", &prefix]);
    let lines: Vec<&str> = out.lines().collect();
    let (mut addrs, mut holds) = (BTreeMap::new(), BTreeMap::new());
    for kv in lines.chunks(2) {
        let (k, v) = (kv[0], kv.get(1).copied().unwrap_or(""));
        if let Some(a) = k.strip_prefix(&format!("{prefix}addr/")) {
            addrs.insert(a.parse().unwrap(), v.to_string());
        } else if let Some(a) = k.strip_prefix(&format!("{prefix}hold/")) {
            holds.insert(a.parse().unwrap(), v.to_string());
        }
    }
    (addrs, holds)
}

/// The invariant of one revision: a hold key names holders and its address key holds the
/// reservation's owner, marked shared.
fn check_revision(addrs: &BTreeMap<IpAddr, String>, holds: &BTreeMap<IpAddr, String>) {
    for (a, h) in holds {
        let mut w = h.split(' ');
        let o = w.next().unwrap();
        assert!(w.next().is_some(), "hold {a} `{h}` names no holder");
        let v = addrs
            .get(a)
            .unwrap_or_else(|| panic!("{a} is held (`{h}`) but not leased in etcd"));
        assert!(
            v.starts_with(&format!("{o} host=*")),
            "{a} is held for {o} but leased as `{v}`"
        );
    }
}

/// Where the hosts keep the pool: an etcd member, or a local store's directory (one host's
/// processes: the same semantics, the holders in the `holds` file).
enum Where<'a> {
    Etcd(&'a Cluster),
    Local(std::path::PathBuf),
}

impl Where<'_> {
    fn child_env(&self) -> String {
        match self {
            Where::Etcd(c) => c.endpoints().join(","),
            Where::Local(d) => format!("local:{}", d.display()),
        }
    }

    async fn store(&self, host: &str) -> Arc<dyn Store> {
        match self {
            Where::Etcd(c) => store(c, host).await,
            Where::Local(d) => Arc::new(LocalStore::open(d).unwrap()),
        }
    }

    /// The host stamp a fresh allocation of `host` gets in [`Where::state`].
    fn stamp(&self, host: &str) -> String {
        match self {
            Where::Etcd(_) => format!("host={host}"),
            Where::Local(_) => "host=local".to_string(),
        }
    }

    /// The oracle's view at one moment, as etcd shows it: address -> `<owner> host=<h>`,
    /// address -> `<owner> <holder>...`. A local store is read under its holds lock (no hold
    /// or unhold in between): the `holds` file as text, the leases by a store of its own
    /// (reservations' owners stamped `host=*` as on etcd).
    fn state(&self) -> (BTreeMap<IpAddr, String>, BTreeMap<IpAddr, String>) {
        let dir = match self {
            Where::Etcd(c) => return etcd_state(c),
            Where::Local(d) => d.join(NET),
        };
        let lock = std::fs::File::open(dir.join(".holds.lock")).ok();
        if let Some(f) = &lock {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor we own.
            assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        }
        let mut holds = BTreeMap::new();
        let text = std::fs::read_to_string(dir.join("holds")).unwrap_or_default();
        for line in text.lines() {
            let (a, rest) = line.split_once(' ').unwrap();
            holds.insert(a.parse().unwrap(), rest.to_string());
        }
        let reserved: Vec<String> = RESERVED.iter().map(|(o, _)| format!("{o}/eth0")).collect();
        let root = dir.parent().unwrap().to_path_buf();
        let leases = rt().block_on(async move {
            let ipam = Ipam::open(Arc::new(LocalStore::open(root).unwrap()), NET)
                .await
                .unwrap();
            ipam.list().await.unwrap()
        });
        drop(lock);
        let addrs = leases
            .into_iter()
            .map(|l| {
                let o = l.owner.to_string();
                let h = if reserved.contains(&o) { "*" } else { "local" };
                (l.ips()[0], format!("{o} host={h}"))
            })
            .collect();
        (addrs, holds)
    }
}

fn spawn(w: &Where<'_>, host: &str, ops: usize, seed: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ipam_etcd::shared_holds::holds_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, w.child_env())
        .env("HOST", host)
        .env("OPS", ops.to_string())
        .env("SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn shared_reservations_churn_with_kill_9() {
    if skip("shared_reservations_churn_with_kill_9") {
        return;
    }
    let c = Cluster::start(1);
    churn(&Where::Etcd(&c));
}

/// The same on a local store (processes of one host, each a holder of its own): the holders
/// in the `holds` file, changed under its lock; the file and a fresh store the oracle.
#[test]
fn shared_reservations_churn_with_kill_9_on_a_local_store() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = crate::network::TempDir::new("holds-churn");
    churn(&Where::Local(dir.0.clone()));
}

/// The hosts killed with SIGKILL.
const KILLED: [usize; 2] = [1, 3];

/// kill -9 two hosts at random points of their run, then waits for every host.
fn kill_and_wait(
    children: &mut [Child],
    lines: &Mutex<Vec<Vec<String>>>,
    seed: u64,
    hosts: &[&str],
) {
    for (k, &i) in KILLED.iter().enumerate() {
        // After a random number of its steps (two lines each), well before its last.
        let after = 20 + ((seed >> (8 * k)) % 100) as usize;
        while lines.lock().unwrap()[i].len() < after {
            if children[i].try_wait().unwrap().is_some() {
                break; // ended (failed) before: said below
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = children[i].kill();
    }
    for (i, ch) in children.iter_mut().enumerate() {
        let st = ch.wait().unwrap();
        if KILLED.contains(&i) {
            assert!(!st.success(), "host {} ended before its kill", hosts[i]);
        } else {
            assert!(st.success(), "host {} failed: {st:?}", hosts[i]);
        }
    }
}

fn churn(w: &Where<'_>) {
    let seed = (now_ns() as u64) | 1;
    eprintln!("shared_reservations_churn_with_kill_9: seed {seed}");
    rt().block_on(async {
        Ipam::create(w.store("setup").await, tiny()).await.unwrap();
    });
    let hosts = ["h0", "h1", "h2", "h3"];
    let mut children: Vec<Child> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| spawn(w, h, 160, seed.wrapping_mul(i as u64 + 7) | 1))
        .collect();
    let lines: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(vec![Vec::new(); 4]));
    let readers: Vec<_> = children
        .iter_mut()
        .enumerate()
        .map(|(i, ch)| {
            let out = ch.stdout.take().unwrap();
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    lines.lock().unwrap()[i].push(l);
                }
            })
        })
        .collect();
    // Checked while they run: every read of etcd (one revision) keeps the invariant.
    let running = Arc::new(AtomicBool::new(true));
    let stop = running.clone();
    let polls = std::thread::scope(|scope| {
        let running = running.clone();
        let poller = scope.spawn(move || {
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                let (addrs, holds) = w.state();
                check_revision(&addrs, &holds);
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        });
        kill_and_wait(&mut children, &lines, seed, &hosts);
        for r in readers {
            r.join().unwrap();
        }
        stop.store(false, Ordering::Relaxed);
        poller.join().expect("the invariant held at every poll")
    });
    let polled = polls;
    let killed = KILLED;
    let lines = lines.lock().unwrap().clone();

    // Per host: its steps in order. Holding intervals per (reservation, host): from a hold's
    // answer to the start of its next unhold (open if none); a host killed in the middle of a
    // step on a reservation may or may not have changed it.
    let mut intervals: Vec<(String, String, u128, u128)> = Vec::new();
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut maybe: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut live: HashMap<String, IpAddr> = HashMap::new();
    let mut maybe_live: HashMap<String, Option<IpAddr>> = HashMap::new();
    let mut allocs: Vec<(IpAddr, String, u128, u128)> = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let mut open: HashMap<String, u128> = HashMap::new();
        let mut pending: Option<(String, String)> = None;
        for l in lines[i].iter().filter_map(|l| parse(l)) {
            match l {
                Line::Start(op, o, t) => {
                    if op == "unhold" {
                        // Held until the unhold starts (it may apply any time after).
                        if let Some(since) = open.remove(&o) {
                            intervals.push((o.clone(), host.to_string(), since, t));
                        }
                    }
                    pending = Some((op, o));
                }
                Line::Done {
                    op,
                    owner: o,
                    result,
                    t0,
                    t1,
                } => {
                    pending = None;
                    match op.as_str() {
                        "hold" if result != "taken" => {
                            open.entry(o.clone()).or_insert(t1);
                            expected.entry(o).or_default().insert(host.to_string());
                        }
                        "unhold" => {
                            expected.entry(o).or_default().remove(*host);
                        }
                        "alloc" if result != "full" => {
                            let a: IpAddr = result.parse().unwrap();
                            allocs.push((a, o.clone(), t0, t1));
                            assert!(live.insert(o, a).is_none());
                        }
                        "rel" => {
                            assert!(live.remove(&o).is_some(), "{o}");
                        }
                        _ => {}
                    }
                }
            }
        }
        for (o, since) in open {
            intervals.push((o, host.to_string(), since, u128::MAX));
        }
        if let Some((op, o)) = pending {
            assert!(
                killed.contains(&i),
                "{host} ended in the middle of {op} {o}"
            );
            match op.as_str() {
                "hold" | "unhold" => {
                    maybe.entry(o).or_default().insert(host.to_string());
                }
                "alloc" => {
                    maybe_live.insert(o, None);
                }
                "rel" => {
                    let a = live.remove(&o);
                    maybe_live.insert(o, a);
                }
                _ => {}
            }
        }
    }
    // 1. No allocation answered within a holding interval of its address's reservation.
    let held_ip: HashMap<String, IpAddr> = RESERVED
        .iter()
        .map(|(o, a)| (format!("{o}/eth0"), ip(a)))
        .collect();
    for (a, who, t0, t1) in &allocs {
        for (o, h, from, to) in &intervals {
            if held_ip[o] == *a && *t0 >= *from && *t1 <= *to {
                panic!("{who} was given {a} while {h} held it for {o}");
            }
        }
    }
    // 2. etcd (the oracle) holds exactly the acknowledged holders (a killed host's step in
    //    flight either way), the reservations' addresses iff they are held, and every live
    //    allocation once.
    let (addrs, holds) = w.state();
    check_revision(&addrs, &holds);
    for (o, a) in &held_ip {
        let got: BTreeSet<String> = holds
            .get(a)
            .map(|v| v.split(' ').skip(1).map(str::to_string).collect())
            .unwrap_or_default();
        let want = expected.get(o).cloned().unwrap_or_default();
        let unsure = maybe.get(o).cloned().unwrap_or_default();
        let sure_got: BTreeSet<_> = got.difference(&unsure).cloned().collect();
        let sure_want: BTreeSet<_> = want.difference(&unsure).cloned().collect();
        assert_eq!(
            sure_got, sure_want,
            "holders of {o} ({a}): etcd {got:?}, acks {want:?}"
        );
        // Held: leased to the reservation (check_revision); not held: free, or an allocation's.
        let as_reserved = addrs
            .get(a)
            .is_some_and(|v| v.starts_with(&format!("{o} ")));
        if matches!(w, Where::Local(_)) && !unsure.is_empty() {
            // A local store's hold killed between its claim and its line (or an unhold
            // between its line and its release) leaves the lease with no holder.
            continue;
        }
        assert_eq!(
            as_reserved,
            !got.is_empty(),
            "{a}: leased {:?} with holders {got:?}",
            addrs.get(a)
        );
    }
    let mut leased: HashMap<String, IpAddr> = HashMap::new();
    for (a, v) in &addrs {
        let o = v.split(' ').next().unwrap().to_string();
        if !held_ip.contains_key(&o) {
            assert!(leased.insert(o, *a).is_none(), "an owner twice");
        }
    }
    for (o, a) in &live {
        assert_eq!(
            leased.get(o),
            Some(a),
            "acknowledged {o} at {a}, etcd {leased:?}"
        );
    }
    for (o, a) in &leased {
        if live.get(o) != Some(a) {
            assert!(
                maybe_live.contains_key(o),
                "{o} at {a} in etcd, never acknowledged"
            );
        }
    }
    rt().block_on(async {
        // 3. The library's listing agrees with etcd.
        let ipam = Ipam::open(w.store("verifier").await, NET).await.unwrap();
        let listed = ipam.holds().await.unwrap();
        assert_eq!(listed.len(), holds.len(), "{listed:?} vs {holds:?}");
        for h in &listed {
            let v = &holds[&h.addr];
            assert_eq!(v, &format!("{} {}", h.owner, h.holders.join(" ")));
        }
        // 4. Every holder left unholds (the killed ones by name): the last one frees the
        //    address, and it is allocatable again.
        for (o, a) in &held_ip {
            let owner_of = Owner::new(o.split('/').next().unwrap(), "eth0").unwrap();
            let mut left = listed
                .iter()
                .find(|h| h.addr == *a)
                .map(|h| h.holders.clone())
                .unwrap_or_default();
            if left.is_empty() {
                // Not held at the end: free it of an allocation, hold it for two.
                if let Some(l) = ipam.list().await.unwrap().iter().find(|l| l.ips() == [*a]) {
                    ipam.release(&l.owner).await.unwrap();
                }
                for h in ["p1", "p2"] {
                    ipam.hold(&owner_of, *a, h).await.unwrap();
                }
                left = vec!["p1".into(), "p2".into()];
            }
            while let Some(h) = left.pop() {
                let r = ipam.unhold(&owner_of, &h).await.unwrap();
                if left.is_empty() {
                    assert_eq!(r, Unheld::Released(*a));
                } else {
                    assert_eq!(r, Unheld::Kept(left.clone()));
                }
            }
            let l = ipam
                .allocate(&owner(format!("after-{a}")), &Request::ip(*a))
                .await
                .unwrap();
            assert_eq!(l.ips(), [*a]);
        }
    });
    let (addrs, holds) = w.state();
    assert!(holds.is_empty(), "{holds:?}");
    for (_, a) in held_ip {
        assert!(addrs[&a].starts_with(&format!("after-{a}/eth0 {}", w.stamp("verifier"))));
    }
    eprintln!(
        "shared_reservations_churn_with_kill_9: {} allocations, {} holding intervals, {polled} polls",
        allocs.len(),
        intervals.len()
    );
}

/// A gateway leased plainly by an earlier version (one host's claim) is adopted by the first
/// hold: the address key becomes the shared one (`host=*`), so that host's leave is not
/// refused for it while another host holds it; the last unhold frees it.
#[test]
fn a_plain_lease_is_adopted_by_a_hold() {
    if skip("a_plain_lease_is_adopted_by_a_hold") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let old = Ipam::join(store(&c, "old").await, tiny()).await.unwrap().0;
        let gw = owner("rsv-gw");
        old.allocate(&gw, &Request::ip(ip("10.77.0.1")))
            .await
            .unwrap();
        let key = format!("/underlay/ipam/data/{NET}/addr/10.77.0.1");
        assert!(c
            .ctl(&["get", "--print-value-only", &key])
            .starts_with("rsv-gw/eth0 host=old"));
        let other = Ipam::join(store(&c, "new").await, tiny()).await.unwrap().0;
        let h = other.hold(&gw, ip("10.77.0.1"), "new").await.unwrap();
        assert_eq!(h.holders, ["new"]);
        assert!(c
            .ctl(&["get", "--print-value-only", &key])
            .starts_with("rsv-gw/eth0 host=*"));
        // Host `old` leaves: not refused for the reservation, which stays.
        assert_eq!(
            Ipam::leave(store(&c, "old").await.as_ref(), NET)
                .await
                .unwrap(),
            underlay::ipam::Left::Kept(vec!["new".into()])
        );
        assert_eq!(
            other.unhold(&gw, "new").await.unwrap(),
            Unheld::Released(ip("10.77.0.1"))
        );
        assert_eq!(c.ctl(&["get", "--print-value-only", &key]).trim(), "");
        assert_eq!(
            Ipam::leave(store(&c, "new").await.as_ref(), NET)
                .await
                .unwrap(),
            underlay::ipam::Left::Deleted
        );
    });
}

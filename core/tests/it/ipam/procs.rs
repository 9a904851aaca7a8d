//! Many processes on one store, and processes killed with SIGKILL in the middle of commits.
//! The children are this test binary run again with `--exact ipam::procs::child`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use underlay::ipam::{Ipam, LocalStore, Request};

use super::{check, net, owner, TempDir};

const CHILD: &str = "UNDERLAY_IPAM_CHILD";

/// The child's body: allocate `COUNT` owners `PREFIX-i` with `INFLIGHT` at once, printing
/// `ack OWNER IP` once each allocation is durable, and releasing every `RELEASE`th one
/// (`rel OWNER`). With `FRESH=1` each call is made by an `Ipam` opened for it on a store
/// opened for it, as a CNI plugin's process makes it (answered from views).
#[test]
fn child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let prefix = var("PREFIX");
    let count: usize = var("COUNT").parse().unwrap();
    let inflight: usize = var("INFLIGHT").parse().unwrap();
    let release: usize = var("RELEASE").parse().unwrap();
    let fresh = var("FRESH") == "1";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let open = || async {
            let store = Arc::new(LocalStore::open(&dir).unwrap());
            Ipam::open(store, "shared").await.unwrap()
        };
        let ipam = open().await;
        futures::stream::iter(0..count)
            .map(|i| {
                let ipam = ipam.clone();
                let prefix = prefix.clone();
                async move {
                    let ipam = if fresh { open().await } else { ipam };
                    let o = owner(format!("{prefix}-{i}"));
                    let l = ipam.allocate(&o, &Request::any()).await.unwrap();
                    println!("@@ ack {o} {}", l.ips()[0]);
                    if release > 0 && i % release == 0 {
                        let ipam = if fresh { open().await } else { ipam };
                        ipam.release(&o).await.unwrap().unwrap();
                        println!("@@ rel {o}");
                    }
                }
            })
            .buffer_unordered(inflight)
            .collect::<Vec<()>>()
            .await;
    });
}

fn spawn(dir: &Path, prefix: &str, count: usize, inflight: usize, release: usize) -> Child {
    spawn_as(dir, prefix, count, inflight, release, false)
}

/// [`spawn`], each call made by a fresh `Ipam` on a fresh store if `fresh` (see [`child`]).
fn spawn_as(
    dir: &Path,
    prefix: &str,
    count: usize,
    inflight: usize,
    release: usize,
    fresh: bool,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ipam::procs::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir)
        .env("PREFIX", prefix)
        .env("COUNT", count.to_string())
        .env("INFLIGHT", inflight.to_string())
        .env("RELEASE", release.to_string())
        .env("FRESH", if fresh { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[derive(Default)]
struct Acks {
    held: HashMap<String, IpAddr>,
    released: HashSet<String>,
}

impl Acks {
    fn add(&mut self, line: &str) {
        // libtest may print `test ipam::procs::child ... ` on the same line.
        let Some(i) = line.find("@@ ") else {
            return;
        };
        let w: Vec<&str> = line[i + 3..].split(' ').collect();
        match w.as_slice() {
            ["ack", o, a] => {
                assert!(self
                    .held
                    .insert(o.to_string(), a.parse().unwrap())
                    .is_none());
            }
            ["rel", o] => {
                self.held.remove(*o).unwrap();
                self.released.insert(o.to_string());
            }
            _ => panic!("bad line from child: {line}"),
        }
    }
}

/// Every acknowledged allocation is in the store with its address; every acknowledged release
/// is gone; nothing is leased twice.
async fn verify(dir: &Path, acks: &Acks) -> usize {
    let store = Arc::new(LocalStore::open(dir).unwrap());
    let ipam = Ipam::open(store, "shared").await.unwrap();
    let leased: HashMap<String, IpAddr> = check(&ipam)
        .await
        .into_iter()
        .map(|(a, o)| (o.to_string(), a))
        .collect();
    for (o, a) in &acks.held {
        // A release the child started but had not acknowledged when killed may have happened.
        let maybe_released = o
            .split(['-', '/'])
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
            % 5
            == 0;
        match leased.get(o) {
            None if maybe_released => {}
            got => assert_eq!(got, Some(a), "acknowledged lease of {o} lost or moved"),
        }
    }
    for o in &acks.released {
        assert!(
            !leased.contains_key(o),
            "acknowledged release of {o} undone"
        );
    }
    leased.len()
}

/// A time-seeded xorshift source: `rand(n)` is below `n`.
fn random_below() -> impl FnMut(u64) -> u64 {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// Each child's stdout lines, gathered as they come by a thread per child.
#[allow(clippy::type_complexity)]
fn collect_output(
    children: &mut [Child],
) -> (
    Vec<Arc<Mutex<Vec<String>>>>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let seen: Vec<Arc<Mutex<Vec<String>>>> = children.iter().map(|_| Arc::default()).collect();
    let readers = children
        .iter_mut()
        .zip(&seen)
        .map(|(c, seen)| {
            let out = c.stdout.take().unwrap();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    seen.lock().unwrap().push(line);
                }
            })
        })
        .collect();
    (seen, readers)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn eight_processes_share_one_pool() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let tmp = TempDir::new("procs");
    let dir = tmp.path().to_path_buf();
    let rt = rt();
    rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        Ipam::create(store, net("shared", &["10.77.0.0/20"]))
            .await
            .unwrap();
    });
    let children: Vec<Child> = (0..8)
        .map(|i| spawn(&dir, &format!("p{i}"), 500, 25, 0))
        .collect();
    let mut acks = Acks::default();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            acks.add(line);
        }
    }
    assert_eq!(acks.held.len(), 8 * 500);
    let addrs: HashSet<&IpAddr> = acks.held.values().collect();
    assert_eq!(addrs.len(), 8 * 500, "an address was handed out twice");
    assert_eq!(rt.block_on(verify(&dir, &acks)), 8 * 500);
}

/// Six processes on a pool over two subnets (a host-local range set), the first one higher:
/// they fill it in segment order, go on into the second and, with more allocations than the
/// pool holds, wrap around into addresses released in the first; never an address twice.
#[test]
fn processes_share_a_pool_over_two_subnets() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let tmp = TempDir::new("procs-set");
    let dir = tmp.path().to_path_buf();
    let rt = rt();
    // 253 + 1347 = 1600 addresses for 6 x 300 allocations, every 5th released at once.
    let pool = "10.79.200.0/24 + 10.79.16.0/21 range=10.79.16.10-10.79.21.76";
    rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        Ipam::create(store, net("shared", &[pool])).await.unwrap();
    });
    let children: Vec<Child> = (0..6)
        .map(|i| spawn(&dir, &format!("s{i}"), 300, 25, 5))
        .collect();
    let mut acks = Acks::default();
    let mut every_ack: Vec<IpAddr> = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            acks.add(line);
            if let Some(i) = line.find("@@ ack ") {
                every_ack.push(line[i..].rsplit(' ').next().unwrap().parse().unwrap());
            }
        }
    }
    assert_eq!(acks.held.len(), 6 * 240);
    let addrs: HashSet<&IpAddr> = acks.held.values().collect();
    assert_eq!(addrs.len(), 6 * 240, "an address was handed out twice");
    assert_eq!(rt.block_on(verify(&dir, &acks)), 6 * 240);
    let first: IpAddr = "10.79.200.0".parse().unwrap();
    let in_first = |a: &IpAddr| *a >= first;
    // Both segments used; the wrap reused released addresses of the first segment.
    assert!(
        addrs.iter().filter(|a| in_first(a)).count() > 200,
        "{addrs:?}"
    );
    assert!(addrs.iter().filter(|a| !in_first(a)).count() > 1000);
    let mut reused: HashMap<IpAddr, usize> = HashMap::new();
    for a in &every_ack {
        *reused.entry(*a).or_default() += 1;
    }
    assert!(
        reused.iter().any(|(a, n)| *n > 1 && in_first(a)),
        "no address of the first subnet was reused after the wrap"
    );
}

#[test]
fn kill_9_at_random_moments_leaves_a_consistent_store() {
    kill_9_rounds("crash", &["10.78.0.0/16"]);
}

/// The same on a pool over two subnets: the first one fills within the first rounds.
#[test]
fn kill_9_on_a_pool_over_two_subnets_leaves_a_consistent_store() {
    kill_9_rounds("crash-set", &["10.80.0.0/24 + 10.81.0.0/16"]);
}

fn kill_9_rounds(name: &str, pools: &[&str]) {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let tmp = TempDir::new(name);
    let dir = tmp.path().to_path_buf();
    let rt = rt();
    rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        Ipam::create(store, net("shared", pools)).await.unwrap();
    });
    let mut rand = random_below();
    let mut acks = Acks::default();
    for round in 0..4 {
        let mut children: Vec<Child> = (0..3)
            .map(|i| spawn(&dir, &format!("r{round}c{i}"), 1_000_000, 8, 5))
            .collect();
        let (seen, readers) = collect_output(&mut children);
        for (c, seen) in children.iter_mut().zip(&seen) {
            // Kill it while it works: after its first acknowledgement, at a random moment.
            let t = std::time::Instant::now();
            while seen.lock().unwrap().iter().all(|l| !l.contains("@@ ack")) {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "round {round}: a child never allocated"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rand(300)));
            c.kill().unwrap(); // SIGKILL
        }
        for c in &mut children {
            c.wait().unwrap();
        }
        for r in readers {
            r.join().unwrap();
        }
        for seen in &seen {
            for line in seen.lock().unwrap().iter() {
                acks.add(line);
            }
        }
        rt.block_on(verify(&dir, &acks));
    }
    assert!(!acks.held.is_empty() && !acks.released.is_empty());
    if pools[0].contains(" + ") {
        let second = acks
            .held
            .values()
            .filter(|a| a.to_string().starts_with("10.81."))
            .count();
        assert!(
            second > 0,
            "never went on into the second subnet: {:?}",
            acks.held
        );
    }
}

/// Four processes at a time allocating and releasing on one local store (every 5th owner
/// released at once), two of them making each call from a fresh `Ipam` and store (served by
/// views, as a CNI plugin's calls are), the other two keeping theirs (the whole network in
/// memory), each killed with SIGKILL at a random moment, ten rounds; the journal is
/// compacted into new snapshots meanwhile, and every other round kills them all while one
/// compacts (at a random moment, or the moment its new journal is in place).
/// After each round the files are read by [`read_local_files`] (an independent parser of the
/// store's formats, not the library's) and checked against the library's listing and against
/// every acknowledgement: no address twice, no acknowledged lease lost, no acknowledged
/// release undone.
#[test]
fn kill_9_churn_agrees_with_an_independent_reader() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let tmp = TempDir::new("churn-local");
    let dir = tmp.path().to_path_buf();
    let rt = rt();
    let created = rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        Ipam::create(store, net("shared", &["10.82.0.0/16"]))
            .await
            .unwrap();
        read_local_files(&dir.join("shared")).base
    });
    let mut rand = random_below();
    let mut acks = Acks::default();
    let mut compacted = false;
    for round in 0..10 {
        let mut children: Vec<Child> = (0..4)
            .map(|i| spawn_as(&dir, &format!("k{round}c{i}"), 1_000_000, 4, 5, i % 2 == 0))
            .collect();
        let (seen, readers) = collect_output(&mut children);
        for (c, seen) in children.iter_mut().zip(&seen) {
            let t = std::time::Instant::now();
            while seen.lock().unwrap().iter().all(|l| !l.contains("@@ ack")) {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "round {round}: a child never allocated"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_millis(rand(600)));
                c.kill().unwrap(); // SIGKILL
            }
        }
        if round % 2 == 1 {
            // Into a compaction (any child may run it: all are killed at once): wait until
            // the journal is past 64 KiB (one has begun), then kill within its few
            // milliseconds, or the moment its new journal is in place.
            let net_dir = dir.join("shared");
            let len = |f: &str| std::fs::metadata(net_dir.join(f)).map_or(0, |m| m.len());
            let t = std::time::Instant::now();
            while len("journal") <= 64 * 1024 && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_micros(200));
            }
            if round % 4 == 1 {
                let t = std::time::Instant::now();
                while len("journal") > 1024 && t.elapsed() < Duration::from_secs(2) {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::sleep(Duration::from_micros(rand(8000)));
            }
            for c in &mut children {
                c.kill().unwrap(); // SIGKILL
            }
        }
        for c in &mut children {
            c.wait().unwrap();
        }
        for r in readers {
            r.join().unwrap();
        }
        for seen in &seen {
            for line in seen.lock().unwrap().iter() {
                acks.add(line);
            }
        }
        let files = read_local_files(&dir.join("shared"));
        compacted |= files.base != created;
        let listed = rt.block_on(async {
            let store = Arc::new(LocalStore::open(&dir).unwrap());
            let ipam = Ipam::open(store, "shared").await.unwrap();
            check(&ipam).await
        });
        let listed: HashMap<IpAddr, String> = listed
            .into_iter()
            .map(|(a, o)| (a, o.to_string()))
            .collect();
        assert_eq!(
            files.leases, listed,
            "round {round}: the files and the library disagree"
        );
        rt.block_on(verify(&dir, &acks));
    }
    assert!(!acks.held.is_empty() && !acks.released.is_empty());
    assert!(
        compacted,
        "the journal was never compacted: the test missed that path"
    );
    println!(
        "churn: {} leases held, {} releases acknowledged",
        acks.held.len(),
        acks.released.len()
    );
}

/// The leases of a local store's network directory, read without the library: the `state`
/// snapshot, then every complete journal block after its version (a block cut short at the
/// end was never acknowledged). Panics on an address held twice, a release of an address its
/// owner does not hold, a checksum or version out of line.
struct LocalFiles {
    /// Owner (`id/ifname`) by address.
    leases: HashMap<IpAddr, String>,
    /// The snapshot version the journal follows (moves with each compaction).
    base: u64,
}

fn read_local_files(net_dir: &Path) -> LocalFiles {
    fn fnv1a(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
            (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }
    let state = std::fs::read_to_string(net_dir.join("state")).unwrap();
    let body_len = state.trim_end().rfind('\n').unwrap() + 1;
    let (body, end) = state.split_at(body_len);
    let end: Vec<&str> = end.split_whitespace().collect();
    assert_eq!(end[0], "end", "state: {end:?}");
    assert_eq!(
        u64::from_str_radix(end[2], 16).unwrap(),
        fnv1a(body.as_bytes()),
        "state checksum"
    );
    let mut leases: HashMap<IpAddr, String> = HashMap::new();
    let mut version = 0u64;
    for line in body.lines().skip(1) {
        let w: Vec<&str> = line.split(' ').collect();
        match w[0] {
            "version" => version = w[1].parse().unwrap(),
            "lease" => {
                let prev = leases.insert(w[1].parse().unwrap(), format!("{}/{}", w[2], w[3]));
                assert!(prev.is_none(), "state leases {} twice", w[1]);
            }
            "boot" | "cursor" => {}
            other => panic!("state: unknown line {other}"),
        }
    }
    assert_eq!(leases.len(), end[1].parse::<usize>().unwrap());
    let journal = std::fs::read(net_dir.join("journal")).unwrap();
    let mut lines = journal.split_inclusive(|b| *b == b'\n');
    let head = std::str::from_utf8(lines.next().unwrap()).unwrap();
    let base: u64 = head
        .trim_end()
        .strip_prefix("underlay-ipam-journal 1 ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        base <= version,
        "journal base {base} after snapshot {version}"
    );
    let complete = |l: &&[u8]| l.ends_with(b"\n");
    'blocks: while let Some(h) = lines.next().filter(complete) {
        let mut block: Vec<u8> = h.to_vec();
        let hw: Vec<&str> = std::str::from_utf8(h).unwrap().split_whitespace().collect();
        assert_eq!(hw[0], "v", "journal block header {hw:?}");
        let v: u64 = hw[1].parse().unwrap();
        let n: usize = hw[2].parse().unwrap();
        let mut changes = Vec::new();
        for _ in 0..n {
            let Some(l) = lines.next().filter(complete) else {
                break 'blocks; // torn tail
            };
            block.extend_from_slice(l);
            changes.push(std::str::from_utf8(l).unwrap().trim_end().to_string());
        }
        let Some(t) = lines.next().filter(complete) else {
            break 'blocks;
        };
        let t = std::str::from_utf8(t).unwrap().trim_end();
        let hash = u64::from_str_radix(t.strip_prefix(". ").unwrap(), 16).unwrap();
        assert_eq!(
            hash,
            fnv1a(&block),
            "journal block of version {v}: checksum"
        );
        if v <= version {
            continue; // in the snapshot already (a compaction was cut short)
        }
        assert_eq!(v, version + 1, "journal versions out of line");
        version = v;
        for c in changes {
            let w: Vec<&str> = c.split(' ').collect();
            let addr = || w[1].parse::<IpAddr>().unwrap();
            match w[0] {
                "+" => {
                    let addr = addr();
                    let prev = leases.insert(addr, format!("{}/{}", w[2], w[3]));
                    assert!(prev.is_none(), "version {v} claims {addr} held by {prev:?}");
                }
                "-" => {
                    let addr = addr();
                    let held = leases.remove(&addr);
                    assert_eq!(
                        held.as_deref(),
                        Some(format!("{}/{}", w[2], w[3]).as_str()),
                        "version {v} releases {addr}"
                    );
                }
                "c" => {}
                other => panic!("journal: unknown change {other}"),
            }
        }
    }
    assert!(
        lines.next().is_none_or(|l| !l.ends_with(b"\n")),
        "complete lines after a torn block"
    );
    LocalFiles { leases, base }
}

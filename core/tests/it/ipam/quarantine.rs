//! The quarantine (conflict detection) under churn: processes allocating, quarantining their
//! own address and a random other one, and lifting quarantines, all on one store. A quarantine
//! never takes an address another owner holds; every acknowledged lease and quarantine is in
//! the store as acknowledged.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use futures::StreamExt;
use underlay::ipam::{Ipam, LocalStore, Quarantine, Request};

use super::{check, net, owner, TempDir};

const CHILD: &str = "UNDERLAY_QUARANTINE_CHILD";
const POOL: &str = "10.79.0.0/23";

/// The child's body: for owners `PREFIX-i`, `INFLIGHT` at a time: every third one keeps its
/// lease (`@@ hold OWNER IP`); the others quarantine their own address and a random other
/// one of the pool in one call (`@@ q IP` for each quarantine made), and lift every other
/// quarantine of their own address again (`@@ unq IP`).
#[test]
fn child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let prefix = std::env::var("PREFIX").unwrap();
    let count: u64 = std::env::var("COUNT").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        let ipam = Ipam::open(store, "qnet").await.unwrap();
        let base = u32::from("10.79.0.0".parse::<std::net::Ipv4Addr>().unwrap());
        futures::stream::iter(0..count)
            .map(|i| {
                let ipam = ipam.clone();
                let prefix = prefix.clone();
                async move {
                    let o = owner(format!("{prefix}-{i}"));
                    let l = ipam.allocate(&o, &Request::any()).await.unwrap();
                    let mine = l.ips()[0];
                    if i % 3 == 0 {
                        println!("@@ hold {o} {mine}");
                        return;
                    }
                    // A pseudo-random address of the pool, often one another owner holds.
                    let h = (i.wrapping_mul(0x9e37_79b9) ^ u64::from(std::process::id())) % 510;
                    let other = IpAddr::V4((base + 1 + h as u32).into());
                    let mac = Some(underlay::MacAddr::new([
                        2,
                        0,
                        0,
                        0,
                        (i >> 8) as u8,
                        i as u8,
                    ]));
                    let made = ipam
                        .quarantine(
                            &o,
                            &[Quarantine::now(mine, mac), Quarantine::now(other, None)],
                        )
                        .await
                        .unwrap();
                    assert!(
                        made.iter().any(|q| q.ip == mine),
                        "{o}: its own {mine} not quarantined"
                    );
                    assert!(ipam.lookup(&o).await.unwrap().is_none(), "{o}: lease kept");
                    for q in &made {
                        println!("@@ q {}", q.ip);
                    }
                    if i % 2 == 0 {
                        let q = made.iter().find(|q| q.ip == mine).unwrap();
                        ipam.release(&q.owner()).await.unwrap().unwrap();
                        println!("@@ unq {mine}");
                    }
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    });
}

fn spawn(dir: &Path, prefix: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ipam::quarantine::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir)
        .env("PREFIX", prefix)
        .env("COUNT", count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn quarantines_under_churn_never_take_a_held_address() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let tmp = TempDir::new("quar");
    let dir = tmp.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        Ipam::create(store, net("qnet", &[POOL])).await.unwrap();
    });
    let children: Vec<Child> = (0..4).map(|i| spawn(&dir, &format!("q{i}"), 60)).collect();
    let mut held: HashMap<String, IpAddr> = HashMap::new();
    let mut quarantined: HashMap<IpAddr, usize> = HashMap::new();
    let mut lifted: HashSet<IpAddr> = HashSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(i) = line.find("@@ ") else { continue };
            let w: Vec<&str> = line[i + 3..].split(' ').collect();
            match w.as_slice() {
                ["hold", o, a] => {
                    held.insert(o.to_string(), a.parse().unwrap());
                }
                ["q", a] => *quarantined.entry(a.parse().unwrap()).or_default() += 1,
                ["unq", a] => {
                    lifted.insert(a.parse().unwrap());
                }
                _ => panic!("bad line from child: {line}"),
            }
        }
    }
    assert_eq!(held.len(), 4 * 20, "every third owner holds its lease");
    assert!(
        quarantined.len() > 4 * 40,
        "{} quarantines",
        quarantined.len()
    );
    rt.block_on(async {
        let store = Arc::new(LocalStore::open(&dir).unwrap());
        let ipam = Ipam::open(store, "qnet").await.unwrap();
        let leased = check(&ipam).await;
        for (o, a) in &held {
            assert_eq!(
                leased.get(a).map(|x| x.to_string()),
                Some(o.clone()),
                "{o}'s acknowledged lease of {a} was taken"
            );
            assert!(
                !quarantined.contains_key(a),
                "{a} held by {o} was quarantined"
            );
        }
        let stored: HashSet<IpAddr> = ipam
            .quarantined()
            .await
            .unwrap()
            .iter()
            .map(|q| q.ip)
            .collect();
        for (a, n) in &quarantined {
            // Quarantined once, unless lifted and quarantined again by a later owner.
            if !lifted.contains(a) {
                assert_eq!(*n, 1, "{a} quarantined twice without being lifted");
                assert!(stored.contains(a), "acknowledged quarantine of {a} lost");
            }
        }
        for q in ipam.quarantined().await.unwrap() {
            assert_eq!(leased[&q.ip], q.owner(), "one owner per address");
        }
        // gc with no valid owner keeps the quarantines (and releases the held leases).
        ipam.gc(&[]).await.unwrap();
        let after: HashSet<IpAddr> = ipam
            .quarantined()
            .await
            .unwrap()
            .iter()
            .map(|q| q.ip)
            .collect();
        assert_eq!(after, stored);
        assert_eq!(ipam.list().await.unwrap().len(), stored.len());
    });
}

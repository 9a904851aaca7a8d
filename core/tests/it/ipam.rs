//! IPAM: the local stores on disk, concurrency across tasks, threads and processes, crashes,
//! and CNI host-local's layout. Runs as any user; touches only its own temporary directories.

mod holds;
mod hostlocal;
mod procs;
mod props;
mod quarantine;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use underlay::ipam::{
    BootId, HostLocalStore, Ipam, Joined, Left, LocalStore, MemoryStore, Network, Owner, Pool,
    Request, Store,
};
use underlay::ErrorKind;

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "underlay-ipam-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn net(name: &str, pools: &[&str]) -> Network {
    Network::new(
        name,
        pools.iter().map(|p| p.parse::<Pool>().unwrap()).collect(),
    )
    .unwrap()
}

pub(crate) fn owner(id: impl std::fmt::Display) -> Owner {
    Owner::new(id.to_string(), "eth0").unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The store's invariants, checked on a fresh read: every address leased once, inside its
/// pool, never excluded; one address per pool per owner. Returns address -> owner.
pub(crate) async fn check(ipam: &Ipam) -> HashMap<IpAddr, Owner> {
    let mut seen = HashMap::new();
    let pools = ipam.network().pools();
    for lease in ipam.list().await.unwrap() {
        assert_eq!(lease.addresses.len(), pools.len(), "{lease:?}");
        for (i, a) in lease.addresses.iter().enumerate() {
            let addr = a.address.addr();
            assert_eq!(a.pool, i);
            assert!(
                pools[i].contains(addr),
                "{addr} outside {}",
                pools[i].subnet()
            );
            assert!(
                pools[i].excluded_reason(addr).is_none(),
                "{addr} is excluded"
            );
            let prev = seen.insert(addr, lease.owner.clone());
            assert!(
                prev.is_none(),
                "{addr} leased twice: {prev:?} and {}",
                lease.owner
            );
        }
    }
    seen
}

#[tokio::test]
async fn local_store_persists_and_is_private() {
    let dir = TempDir::new("persist");
    let store = Arc::new(LocalStore::open(dir.path().join("ipam")).unwrap());
    let n = net(
        "mac_net1",
        &[
            "172.22.16.0/24 gateway=172.22.16.1 reserve=exclude_host=172.22.16.2",
            "fd00:16::/64",
        ],
    );
    let ipam = Ipam::create(store.clone(), n.clone()).await.unwrap();
    let a = ipam
        .allocate(&owner("bbox1"), &Request::ip(ip("172.22.16.10")))
        .await
        .unwrap();
    let b = ipam
        .allocate(&owner("bbox2"), &Request::any())
        .await
        .unwrap();
    assert_eq!(b.ips(), vec![ip("172.22.16.3"), ip("fd00:16::3")]);
    for p in [dir.path().join("ipam"), dir.path().join("ipam/mac_net1")] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", p.display());
    }
    // Another store object (as another process would) sees the same leases.
    let store2 = Arc::new(LocalStore::open(dir.path().join("ipam")).unwrap());
    let again = Ipam::open(store2.clone(), "mac_net1").await.unwrap();
    assert_eq!(again.lookup(&owner("bbox1")).await.unwrap(), Some(a));
    assert_eq!(again.list().await.unwrap().len(), 2);
    // Idempotent across handles: the second one learns of the lease the first one made.
    let b2 = ipam
        .allocate(&owner("bbox4"), &Request::any())
        .await
        .unwrap();
    assert_eq!(
        again
            .allocate(&owner("bbox4"), &Request::any())
            .await
            .unwrap(),
        b2
    );
    assert_eq!(ipam.release(&owner("bbox4")).await.unwrap(), Some(b2));
    // Next-fit continues where the other handle stopped.
    let c = again
        .allocate(&owner("bbox3"), &Request::any())
        .await
        .unwrap();
    assert_eq!(c.ips()[0], ip("172.22.16.5"));
    // And the first handle sees the third lease.
    assert_eq!(ipam.list().await.unwrap().len(), 3);
    assert!(ipam.release(&owner("bbox3")).await.unwrap().is_some());
    assert!(again.release(&owner("bbox3")).await.unwrap().is_none());
    // open_or_create: same definition opens, another conflicts.
    Ipam::open_or_create(store2.clone(), n).await.unwrap();
    let e = Ipam::open_or_create(store2.clone(), net("mac_net1", &["172.22.16.0/24"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // Deleting a network with leases is refused.
    let e = Ipam::delete(&*store2, "mac_net1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    ipam.gc(&[]).await.unwrap();
    Ipam::delete(&*store2, "mac_net1").await.unwrap();
    let e = Ipam::open(store2, "mac_net1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// One host per store: joining creates or takes the identical definition, leaving deletes it.
#[tokio::test]
async fn single_host_stores_join_and_leave() {
    let dir = TempDir::new("join");
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(LocalStore::open(dir.path().join("local")).unwrap()),
        Arc::new(HostLocalStore::open(dir.path().join("hostlocal")).unwrap()),
        Arc::new(MemoryStore::new()),
    ];
    for store in stores {
        let n = net("j", &["10.5.0.0/24"]);
        let (ipam, how) = Ipam::join(store.clone(), n.clone()).await.unwrap();
        assert_eq!(how, Joined::Created);
        let (_, how) = Ipam::join(store.clone(), n.clone()).await.unwrap();
        assert_eq!(how, Joined::Existing);
        let e = Ipam::join(store.clone(), net("j", &["10.5.0.0/25"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(e.message().contains("network `j`"), "{e}");
        ipam.allocate(&owner("a"), &Request::any()).await.unwrap();
        let mine = store.host_records("j").await.unwrap();
        assert_eq!(mine.len(), 1, "one host: every lease is its own");
        let e = Ipam::leave(&*store, "j").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
        ipam.release(&owner("a")).await.unwrap();
        assert_eq!(Ipam::leave(&*store, "j").await.unwrap(), Left::Deleted);
        assert!(store.networks().await.unwrap().is_empty());
        let e = Ipam::leave(&*store, "j").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
}

/// An answer from the cache alone (pool exhausted, owner unknown, lease given back as it is)
/// is confirmed with the store first: another handle's changes are seen without a reload.
#[tokio::test]
async fn cache_only_answers_are_confirmed_with_the_store() {
    let dir = TempDir::new("confirm");
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    // .2 .. .6 usable.
    let a = Ipam::create(store.clone(), net("c", &["10.6.0.0/29"]))
        .await
        .unwrap();
    let b = Ipam::open(store.clone(), "c").await.unwrap();
    for i in 0..5 {
        a.allocate(&owner(i), &Request::any()).await.unwrap();
    }
    let e = a.allocate(&owner(9), &Request::any()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
    // `b` (opened before any lease) releases one: `a` finds it although its cache is full.
    let gone = b.release(&owner(2)).await.unwrap().unwrap();
    let l = a.allocate(&owner(9), &Request::any()).await.unwrap();
    assert_eq!(l.ips(), gone.ips());
    // `b` gives `owner(9)`'s lease back as `a` made it, and releases `owner(9)` although its
    // cache never saw it.
    assert_eq!(b.allocate(&owner(9), &Request::any()).await.unwrap(), l);
    b.gc(&[]).await.unwrap();
    assert!(a.release(&owner(0)).await.unwrap().is_none());
    assert!(a.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn store_rejects_overlapping_networks_and_bad_names() {
    let dir = TempDir::new("overlap");
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(LocalStore::open(dir.path()).unwrap()),
        Arc::new(MemoryStore::new()),
    ];
    for store in stores {
        Ipam::create(store.clone(), net("a", &["10.0.0.0/16"]))
            .await
            .unwrap();
        let e = Ipam::create(store.clone(), net("b", &["10.0.3.0/24"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap, "{e}");
        assert!(e.message().contains("network `a`"), "{e}");
        let e = Ipam::create(store.clone(), net("a", &["10.9.0.0/16"]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        Ipam::create(store.clone(), net("b", &["10.1.0.0/16"]))
            .await
            .unwrap();
        let names: Vec<String> = store
            .networks()
            .await
            .unwrap()
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let e = Ipam::open(store.clone(), "../etc").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
}

#[tokio::test]
async fn corrupt_files_are_reported_never_reset() {
    let dir = TempDir::new("corrupt");
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    let ipam = Ipam::create(store.clone(), net("n", &["10.0.0.0/24"]))
        .await
        .unwrap();
    for i in 0..5 {
        ipam.allocate(&owner(i), &Request::any()).await.unwrap();
    }
    let flip = |data: &[u8]| -> Vec<u8> {
        data.iter()
            .map(|b| if *b == b'3' { b'4' } else { *b })
            .collect()
    };
    for file in ["state", "journal", "network"] {
        let path = dir.path().join("n").join(file);
        let good = std::fs::read(&path).unwrap();
        let mut damages = vec![flip(&good), b"garbage\n".to_vec()];
        if file != "journal" {
            // A cut-short journal block is a crash's unacknowledged write, dropped by design.
            damages.push(good[..good.len() / 2].to_vec());
            damages.push(Vec::new());
        }
        for bad in damages {
            if bad == good {
                continue;
            }
            std::fs::write(&path, &bad).unwrap();
            // What another process would see: a clear error naming the file, at open (the
            // definition) or at its first call (a view's or a full load's).
            for call in ["allocate", "lookup", "release", "list"] {
                let fresh = Arc::new(LocalStore::open(dir.path()).unwrap());
                let e = match Ipam::open(fresh.clone(), "n").await {
                    Err(e) => e,
                    Ok(ipam) => {
                        let o = owner(if call == "release" { 1 } else { 9 });
                        match call {
                            "allocate" => ipam.allocate(&o, &Request::any()).await.map(drop),
                            "lookup" => ipam.lookup(&o).await.map(drop),
                            "release" => ipam.release(&o).await.map(drop),
                            _ => ipam.list().await.map(drop),
                        }
                        .expect_err(call)
                    }
                };
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{file} {call}: {e}");
                assert!(e.message().contains(&path.display().to_string()), "{e}");
            }
            let fresh = Arc::new(LocalStore::open(dir.path()).unwrap());
            // A commit through it fails the same way and leaves the file as it was.
            let e = fresh
                .commit("n", 0, &[])
                .await
                .expect_err("commit on a corrupt store");
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{file}: {e}");
            assert_eq!(std::fs::read(&path).unwrap(), bad, "{file} was rewritten");
        }
        std::fs::write(&path, &good).unwrap();
    }
    let fresh = Arc::new(LocalStore::open(dir.path()).unwrap());
    assert_eq!(
        Ipam::open(fresh, "n")
            .await
            .unwrap()
            .list()
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn leases_from_before_a_reboot() {
    let ipam = Ipam::in_memory(net("n", &["10.0.0.0/24"])).await.unwrap();
    ipam.set_boot_id(Some(BootId::new("boot-1").unwrap()));
    ipam.allocate(&owner("old1"), &Request::any())
        .await
        .unwrap();
    ipam.allocate(&owner("old2"), &Request::any())
        .await
        .unwrap();
    ipam.set_boot_id(None);
    ipam.allocate(&owner("unstamped"), &Request::any())
        .await
        .unwrap();
    assert!(
        ipam.stale().await.unwrap().is_empty(),
        "no current boot id: nothing is stale"
    );
    ipam.set_boot_id(Some(BootId::new("boot-2").unwrap()));
    let new = ipam.allocate(&owner("new"), &Request::any()).await.unwrap();
    assert_eq!(new.boot_id.as_ref().unwrap().as_str(), "boot-2");
    let stale: Vec<String> = ipam
        .stale()
        .await
        .unwrap()
        .iter()
        .map(|l| l.owner.container_id().to_string())
        .collect();
    assert_eq!(stale, ["old1", "old2"]);
    assert_eq!(ipam.release_stale().await.unwrap().len(), 2);
    assert_eq!(ipam.list().await.unwrap().len(), 2);
    // The real boot id is used by default.
    let fresh = Ipam::in_memory(net("m", &["10.0.0.0/24"])).await.unwrap();
    assert_eq!(fresh.boot_id(), BootId::current().ok());
}

#[tokio::test]
async fn gc_keeps_only_valid_owners() {
    let ipam = Ipam::in_memory(net("n", &["10.0.0.0/24", "fd00::/64"]))
        .await
        .unwrap();
    for i in 0..10 {
        ipam.allocate(&owner(i), &Request::any()).await.unwrap();
    }
    let valid: Vec<Owner> = (0..10).filter(|i| i % 3 == 0).map(owner).collect();
    let gone = ipam.gc(&valid).await.unwrap();
    assert_eq!(gone.len(), 6);
    let left: HashSet<Owner> = ipam
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.owner)
        .collect();
    assert_eq!(left, valid.into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_and_handles_never_share_an_address() {
    let dir = TempDir::new("tasks");
    let n = net("n", &["10.1.0.0/22"]);
    Ipam::create(Arc::new(LocalStore::open(dir.path()).unwrap()), n)
        .await
        .unwrap();
    // Four independent store objects and handles (like four processes), 50 tasks each.
    let mut tasks = Vec::new();
    for h in 0..4 {
        let store = Arc::new(LocalStore::open(dir.path()).unwrap());
        let ipam = Ipam::open(store, "n").await.unwrap();
        for t in 0..50 {
            let ipam = ipam.clone();
            tasks.push(tokio::spawn(async move {
                let o = owner(format!("h{h}t{t}"));
                let l = ipam.allocate(&o, &Request::any()).await.unwrap();
                // Idempotent under concurrency too.
                assert_eq!(ipam.allocate(&o, &Request::any()).await.unwrap(), l);
                (o, l.ips()[0])
            }));
        }
    }
    let mut got = HashMap::new();
    for t in tasks {
        let (o, a) = t.await.unwrap();
        assert!(got.insert(a, o).is_none(), "{a} handed out twice");
    }
    let ipam = Ipam::open(Arc::new(LocalStore::open(dir.path()).unwrap()), "n")
        .await
        .unwrap();
    assert_eq!(check(&ipam).await, got);
}

#[tokio::test]
async fn exhaustion_names_the_pool_and_size() {
    let ipam = Ipam::in_memory(net("small", &["10.0.0.0/29 range=10.0.0.4-10.0.0.5"]))
        .await
        .unwrap();
    ipam.allocate(&owner(1), &Request::any()).await.unwrap();
    ipam.allocate(&owner(2), &Request::any()).await.unwrap();
    let e = ipam.allocate(&owner(3), &Request::any()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PoolExhausted);
    assert!(
        e.message().contains("pool 10.0.0.0/29 of network `small`"),
        "{e}"
    );
    assert!(e.message().contains("all 2 addresses"), "{e}");
    // Still consistent afterwards.
    assert_eq!(check(&ipam).await.len(), 2);
}

//! Shared reservations (`Ipam::hold`/`unhold`/`holds`) on the single-host stores: the same
//! semantics as on etcd (see ipam_etcd::shared_holds): held while any holder keeps it, one
//! holder's unhold drops only its hold, the last one frees the address; kept across reopening
//! the store (the file stores), and checked against the files and a fresh store's listing.

use std::sync::Arc;

use underlay::ipam::{
    HostLocalStore, Ipam, LocalStore, MemoryStore, Network, Pool, Request, Store, Unheld,
};
use underlay::ErrorKind;

use super::{ip, owner, TempDir};

fn tiny() -> Network {
    // .1 .. .6: six addresses, no gateway.
    let pool = Pool::builder("10.77.0.0/29".parse().unwrap())
        .no_gateway()
        .build()
        .unwrap();
    Network::new("held", vec![pool]).unwrap()
}

/// Every address an allocation can get now, by allocating until the pool is full (then
/// releasing them again).
async fn allocatable(ipam: &Ipam) -> Vec<std::net::IpAddr> {
    let mut got = Vec::new();
    for i in 0.. {
        match ipam
            .allocate(&owner(format!("probe-{i}")), &Request::any())
            .await
        {
            Ok(l) => got.push((i, l.ips()[0])),
            Err(e) if e.kind() == ErrorKind::PoolExhausted => break,
            Err(e) => panic!("{e}"),
        }
    }
    for (i, _) in &got {
        ipam.release(&owner(format!("probe-{i}"))).await.unwrap();
    }
    let mut v: Vec<_> = got.into_iter().map(|(_, a)| a).collect();
    v.sort();
    v
}

async fn semantics(store: Arc<dyn Store>, reopen: impl Fn() -> Arc<dyn Store>) {
    let ipam = Ipam::create(store.clone(), tiny()).await.unwrap();
    let gw = owner("docker-gateway");
    let h1 = ipam.hold(&gw, ip("10.77.0.1"), "host1").await.unwrap();
    assert_eq!(h1.holders, ["host1"]);
    let h2 = ipam.hold(&gw, ip("10.77.0.1"), "host2").await.unwrap();
    assert_eq!(h2.holders, ["host1", "host2"]);
    // Again: the same answer, nothing added.
    assert_eq!(ipam.hold(&gw, ip("10.77.0.1"), "host2").await.unwrap(), h2);
    // Refusals: another owner's address, a second address for the owner, a bad holder,
    // an address outside the pool.
    let taken = ipam
        .hold(&owner("other"), ip("10.77.0.1"), "host1")
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AlreadyExists, "{taken}");
    assert!(taken.message().contains("10.77.0.1"), "{taken}");
    let second = ipam.hold(&gw, ip("10.77.0.2"), "host1").await.unwrap_err();
    assert_eq!(second.kind(), ErrorKind::Conflict, "{second}");
    let bad = ipam
        .hold(&gw, ip("10.77.0.1"), "has space")
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument, "{bad}");
    let outside = ipam.hold(&gw, ip("10.78.0.1"), "host1").await.unwrap_err();
    assert_eq!(outside.kind(), ErrorKind::InvalidArgument, "{outside}");
    // A fresh store (another process) sees the hold, and never allocates the address.
    let other = Ipam::open(reopen(), "held").await.unwrap();
    assert_eq!(other.holds().await.unwrap(), vec![h2.clone()]);
    assert!(!allocatable(&other).await.contains(&ip("10.77.0.1")));
    // gc keeps it (it is its holders' to release).
    assert!(other.gc(&[]).await.unwrap().is_empty());
    // One holder goes: still held.
    assert_eq!(
        ipam.unhold(&gw, "host1").await.unwrap(),
        Unheld::Kept(vec!["host2".into()])
    );
    assert_eq!(ipam.unhold(&gw, "host1").await.unwrap(), Unheld::NotHeld);
    assert!(!allocatable(&other).await.contains(&ip("10.77.0.1")));
    assert_eq!(other.holds().await.unwrap()[0].holders, ["host2"]);
    // The last one: free again, for anyone.
    assert_eq!(
        other.unhold(&gw, "host2").await.unwrap(),
        Unheld::Released(ip("10.77.0.1"))
    );
    assert!(other.holds().await.unwrap().is_empty());
    assert!(ipam.lookup(&gw).await.unwrap().is_none());
    assert_eq!(allocatable(&ipam).await.len(), 6);
    // With every lease gone the network can be deleted.
    Ipam::delete(store.as_ref(), "held").await.unwrap();
}

#[test]
fn shared_reservations_on_the_single_host_stores() {
    rt().block_on(async {
        let mem = Arc::new(MemoryStore::new());
        let m2 = mem.clone();
        semantics(mem, move || m2.clone()).await;

        let dir = TempDir::new("holds-local");
        let p = dir.path().to_path_buf();
        semantics(Arc::new(LocalStore::open(&p).unwrap()), move || {
            Arc::new(LocalStore::open(&p).unwrap())
        })
        .await;

        let dir = TempDir::new("holds-hostlocal");
        let p = dir.path().to_path_buf();
        semantics(Arc::new(HostLocalStore::open(&p).unwrap()), move || {
            Arc::new(HostLocalStore::open(&p).unwrap())
        })
        .await;
    });
}

/// The file keeps the holders: read as text (the oracle), and after the store is reopened.
#[test]
fn holders_are_kept_in_a_file_beside_the_leases() {
    rt().block_on(async {
        let dir = TempDir::new("holds-file");
        let store = Arc::new(LocalStore::open(dir.path()).unwrap());
        let ipam = Ipam::create(store, tiny()).await.unwrap();
        ipam.hold(&owner("aux"), ip("10.77.0.6"), "b")
            .await
            .unwrap();
        ipam.hold(&owner("aux"), ip("10.77.0.6"), "a")
            .await
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("held/holds")).unwrap();
        assert_eq!(text, "10.77.0.6 aux/eth0 a b\n");
        let again = Ipam::open(Arc::new(LocalStore::open(dir.path()).unwrap()), "held")
            .await
            .unwrap();
        assert_eq!(again.holds().await.unwrap()[0].holders, ["a", "b"]);
        // A plain lease with no holder (an earlier run's, or a release cut short) is freed
        // by an unhold of its owner.
        again
            .allocate(&owner("plain"), &Request::any())
            .await
            .unwrap();
        assert!(matches!(
            again.unhold(&owner("plain"), "a").await.unwrap(),
            Unheld::Released(_)
        ));
    });
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

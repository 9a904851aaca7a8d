//! `Networks::create_or_open`: the "every call carries the definition" entry point of the CNI
//! plugin.

use underlay::network::{NetworkSpec, Networks};
use underlay::{ErrorKind, MacvlanMode};

use crate::common::{privileged, TestNs};
use crate::network::TempDir;

fn spec(pool: &str) -> NetworkSpec {
    NetworkSpec::macvlan("cnet", "ens192", MacvlanMode::Bridge).pool(pool.parse().unwrap())
}

/// Concurrent first calls all get the one network; a second definition under the name is
/// refused with each difference named, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_or_open_is_idempotent_and_names_differences() {
    if !privileged("create_or_open_is_idempotent_and_names_differences") {
        return;
    }
    let h = TestNs::with_veth("coo", "ens192", "wire0").await;
    let dir = TempDir::new("coo");
    // Separate threads with their own runtime, handle and `Networks`, as separate plugin
    // processes have.
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (ns, root) = (h.name.clone(), dir.0.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let host = underlay::Handle::for_netns(&underlay::Netns::open(&ns)?).await?;
                    let nets = Networks::open(&host, &root).await?;
                    nets.create_or_open(spec("10.30.0.0/24 gateway=10.30.0.1"))
                        .await
                        .map(|n| n.name().to_string())
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), "cnet");
    }
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    assert_eq!(nets.list().await.unwrap().len(), 1);

    let changed = spec("10.31.0.0/24 gateway=10.31.0.1").mtu(1400);
    let e = nets.create_or_open(changed).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("MTU: stored the parent's, given 1400"),
        "{msg}"
    );
    assert!(msg.contains("pools: stored `10.30.0.0/24"), "{msg}");
    assert!(msg.contains("given `10.31.0.0/24"), "{msg}");
    let other_mode = NetworkSpec::macvlan("cnet", "ens192", MacvlanMode::Vepa)
        .pool("10.30.0.0/24 gateway=10.30.0.1".parse().unwrap());
    let msg = nets
        .create_or_open(other_mode)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("driver: stored macvlan mode bridge, given macvlan mode vepa"),
        "{msg}"
    );
    // Unchanged: the stored definition still opens.
    let net = nets
        .create_or_open(spec("10.30.0.0/24 gateway=10.30.0.1"))
        .await
        .unwrap();
    assert_eq!(net.mtu(), None);
    nets.delete("cnet").await.unwrap();
}

/// Many tasks of one process creating networks at once on a runtime with fewer workers than
/// tasks: the networks' lock is awaited without holding a worker (a blocking `flock` here used
/// to take every worker, so the holder's own netlink replies never ran: a hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_in_one_process_all_finish() {
    if !privileged("concurrent_creates_in_one_process_all_finish") {
        return;
    }
    let h = TestNs::with_veth("cco", "ens192", "wire0").await;
    let dir = TempDir::new("cco");
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let nets = nets.clone();
            tokio::spawn(async move {
                let spec = NetworkSpec::macvlan(&format!("cco{i}"), "ens192", MacvlanMode::Bridge)
                    .pool(format!("10.40.{i}.0/24").parse().unwrap());
                nets.create_or_open(spec).await.map(|_| ())
            })
        })
        .collect();
    let all = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        futures::future::join_all(tasks),
    )
    .await
    .expect("concurrent creates hung");
    for r in all {
        r.unwrap().unwrap();
    }
    assert_eq!(nets.list().await.unwrap().len(), 8);
    for i in 0..8 {
        nets.delete(&format!("cco{i}")).await.unwrap();
    }
}

/// `Network::spec` gives the stored definition back and `Network::differences` compares a spec
/// with it, as `create_or_open` does.
#[tokio::test]
async fn stored_network_compares_with_a_spec() {
    if !privileged("stored_network_compares_with_a_spec") {
        return;
    }
    let h = TestNs::with_veth("cmp", "ens192", "wire0").await;
    let dir = TempDir::new("cmp");
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let given = spec("10.32.0.0/24 gateway=10.32.0.1").mtu(1400);
    let net = nets.create(given.clone()).await.unwrap();
    let stored = nets.get("cnet").await.unwrap().spec();
    assert_eq!(stored.name, "cnet");
    assert_eq!(stored.parent.as_deref(), Some("ens192"));
    assert_eq!(stored.mtu, Some(1400));
    assert_eq!(stored.pools, given.pools);
    assert_eq!(stored.driver, given.driver);
    assert!(net.differences(&stored).is_empty());
    assert!(net.differences(&given).is_empty());
    let ipnet: underlay::IpNet = "10.32.0.0/24".parse().unwrap();
    assert_eq!(stored.pools[0].subnet(), ipnet);
    let diffs = net.differences(&spec("10.32.0.0/24 gateway=10.32.0.1"));
    assert_eq!(
        diffs,
        vec!["MTU: stored 1400, given the parent's".to_string()]
    );
    // The stored spec reopens the network.
    assert_eq!(nets.create_or_open(stored).await.unwrap().name(), "cnet");
    nets.delete("cnet").await.unwrap();
}

/// `Networks::delete_if_unused`: not while a `create_or_open` handle lives (the pin), nor
/// while it has an endpoint, nor while a lease without an endpoint record is there (it releases
/// none, unlike `delete`); then it deletes, and the network is gone from the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_unused_keeps_a_used_network() {
    if !privileged("delete_if_unused_keeps_a_used_network") {
        return;
    }
    let h = TestNs::with_veth("diu", "ens192", "wire0").await;
    let dir = TempDir::new("diu");
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let pinned = nets
        .create_or_open(spec("10.32.0.0/24 gateway=10.32.0.1"))
        .await
        .unwrap();
    assert!(
        !nets.delete_if_unused("cnet").await.unwrap(),
        "deleted a pinned network"
    );
    let owner = underlay::ipam::Owner::new("stray", "eth0").unwrap();
    pinned
        .ipam()
        .allocate(&owner, &underlay::ipam::Request::any())
        .await
        .unwrap();
    drop(pinned);
    // A lease without a record (another program's): kept, and so is the network.
    assert!(!nets.delete_if_unused("cnet").await.unwrap());
    let net = nets.get("cnet").await.unwrap();
    assert_eq!(net.ipam().list().await.unwrap().len(), 1);
    net.ipam().release(&owner).await.unwrap();
    drop(net); // `get` does not pin
    assert!(nets.delete_if_unused("cnet").await.unwrap());
    assert!(nets.list().await.unwrap().is_empty());
    let e = nets.delete_if_unused("cnet").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

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
    // processes have: the network lock is a blocking flock (see docs/cni.md).
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

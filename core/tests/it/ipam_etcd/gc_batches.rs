//! Recovering a dead host's many leases: `gc_host` and `Ipam::gc` split their releases into
//! transactions etcd takes (its default `--max-txn-ops` is 128), sliced network or not
//! (issue 17.2).

use std::sync::Arc;

use futures::StreamExt;
use underlay::ipam::{EtcdStore, Ipam, Owner, Request};

use super::cluster::Cluster;
use super::{config, net, owner, rt, skip, store};

/// `count` owners `<prefix>-i` allocated through `ipam`, 16 at a time.
async fn fill(ipam: &Ipam, prefix: &str, count: usize) {
    futures::stream::iter(0..count)
        .map(|i| {
            let ipam = ipam.clone();
            async move {
                let o = owner(format!("{prefix}-{i}"));
                ipam.allocate(&o, &Request::any()).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// The address keys of network `name` (etcdctl is the oracle).
fn addr_keys(c: &Cluster, name: &str) -> usize {
    let prefix = format!("/underlay/ipam/data/{name}/addr/");
    c.ctl(&["get", "--prefix", &prefix, "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn gc_of_many_leases_fits_etcd_transactions() {
    if skip("gc_of_many_leases_fits_etcd_transactions") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        // A sliced network: a dead host's 80 leases, another's 70.
        let sliced = |host: &str| {
            let cfg = config(&c, host).slices(16);
            async move { Arc::new(EtcdStore::connect(cfg).await.unwrap()) }
        };
        let n = net("sliced", &["10.87.0.0/22"]);
        let (dead, _) = Ipam::join(sliced("dead").await, n.clone()).await.unwrap();
        fill(&dead, "dead", 80).await;
        let (dead2, _) = Ipam::join(sliced("dead2").await, n.clone()).await.unwrap();
        fill(&dead2, "dead2", 70).await;
        drop((dead, dead2));
        assert_eq!(addr_keys(&c, "sliced"), 150);
        let ops = sliced("ops").await;
        let keep: Vec<Owner> = (0..3).map(|i| owner(format!("dead-{i}"))).collect();
        let gone = ops.gc_host("sliced", "dead", &keep).await.unwrap();
        assert_eq!(gone.len(), 77);
        assert_eq!(addr_keys(&c, "sliced"), 73);
        let by_host = ops.addresses_by_host("sliced").await.unwrap();
        assert_eq!(by_host["dead"].len(), 3);
        assert_eq!(by_host["dead2"].len(), 70);
        // Cluster-wide gc in the same network.
        let (ipam, _) = Ipam::join(ops.clone(), n).await.unwrap();
        assert_eq!(ipam.gc(&[]).await.unwrap().len(), 73);
        assert_eq!(addr_keys(&c, "sliced"), 0);
        assert!(ipam.list().await.unwrap().is_empty());

        // A network without slices: 160 leases, one gc.
        let s = store(&c, "h1").await;
        let ipam = Ipam::create(s.clone(), net("plain", &["10.88.0.0/22"]))
            .await
            .unwrap();
        fill(&ipam, "c", 160).await;
        assert_eq!(addr_keys(&c, "plain"), 160);
        let other = Ipam::open(store(&c, "h2").await, "plain").await.unwrap();
        assert_eq!(other.gc(&[]).await.unwrap().len(), 160);
        assert_eq!(addr_keys(&c, "plain"), 0);
        assert!(
            ipam.list().await.unwrap().is_empty(),
            "seen by the first host"
        );
    });
}

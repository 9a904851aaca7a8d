//! Claims per second on etcd: the IPAM over `EtcdStore` against a bare etcd-client
//! compare-and-swap loop (one `txn` per claim: `version(key) == 0` then `put`), sequential and
//! 16 concurrent, on one member and on a three-member cluster, all on 127.0.0.1.
//! `cargo bench -p underlay --features etcd --bench ipam_etcd` (needs etcd installed).

#[path = "../tests/it/ipam_etcd/cluster.rs"]
mod cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use futures::StreamExt;
use underlay::ipam::{EtcdConfig, EtcdStore, Ipam, Network, Owner, Request};

const N: usize = 2000;

async fn bare(endpoints: &[String], tag: &str, concurrent: usize) -> f64 {
    let client = Client::connect(endpoints, None).await.unwrap();
    let t = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let mut kv = client.kv_client();
            let key = format!("/bench/{tag}/{i}");
            async move {
                let txn = Txn::new()
                    .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, "owner", None)]);
                assert!(kv.txn(txn).await.unwrap().succeeded());
            }
        })
        .buffer_unordered(concurrent)
        .collect::<Vec<()>>()
        .await;
    N as f64 / t.elapsed().as_secs_f64()
}

async fn ipam(endpoints: &[String], tag: &str, concurrent: usize) -> f64 {
    let cfg = EtcdConfig::new(endpoints.iter().cloned()).host("bench");
    let store = Arc::new(EtcdStore::connect(cfg).await.unwrap());
    let net = Network::new(
        tag,
        vec![format!("10.{}.0.0/16", tag.len()).parse().unwrap()],
    );
    let ipam = Ipam::create(store, net.unwrap()).await.unwrap();
    let t = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let ipam = ipam.clone();
            async move {
                let o = Owner::new(format!("c{i}"), "eth0").unwrap();
                ipam.allocate(&o, &Request::any()).await.unwrap();
            }
        })
        .buffer_unordered(concurrent)
        .collect::<Vec<()>>()
        .await;
    N as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    if !cluster::available("benches/ipam_etcd") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{N} claims each, claims per second (higher is better)");
    println!("| etcd | concurrency | bare etcd-client CAS | underlay EtcdStore | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for members in [1, 3] {
        let c = cluster::Cluster::start(members);
        let eps = c.endpoints();
        for (k, conc) in [1usize, 16].into_iter().enumerate() {
            let tag = format!("m{members}c{conc}");
            std::thread::sleep(Duration::from_millis(200));
            let b = rt.block_on(bare(&eps, &tag, conc));
            // Network names differ in length so that their /16 subnets differ.
            let name = "n".repeat(1 + k + 2 * (members / 3));
            let s = rt.block_on(ipam(&eps, &name, conc));
            println!(
                "| {members} member{} | {conc} | {b:.0} | {s:.0} | {:.2}x |",
                if members > 1 { "s" } else { "" },
                b / s
            );
        }
    }
}

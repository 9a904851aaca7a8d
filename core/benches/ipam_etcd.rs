//! Claims per second on etcd: the IPAM over `EtcdStore` against a bare etcd-client
//! compare-and-swap loop (one `txn` per claim: `version(key) == 0` then `put`), sequential and
//! 16 concurrent, on one member and on a three-member cluster, all on 127.0.0.1. Then several
//! hosts (stores with their own host names, each task on the runtime's workers) allocating
//! from one network at once, without and with node slices.
//! `cargo bench -p underlay --features etcd --bench ipam_etcd` (needs etcd installed).

#[path = "../tests/it/ipam_etcd/cluster.rs"]
mod cluster;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use futures::StreamExt;
use underlay::ipam::{EtcdConfig, EtcdStore, Ipam, Network, Owner, Request};

const N: usize = 2000;

/// Slice size of the multi-host rows with slices.
const SLICE: u32 = 64;

/// Each network gets its own /16 (10.k.0.0/16).
static SUBNET: AtomicU8 = AtomicU8::new(1);

fn network(name: &str) -> Network {
    let k = SUBNET.fetch_add(1, Ordering::Relaxed);
    Network::new(name, vec![format!("10.{k}.0.0/16").parse().unwrap()]).unwrap()
}

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
    let ipam = Ipam::create(store, network(tag)).await.unwrap();
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

/// `hosts` hosts allocate `N` claims from one network together (`N / hosts` each, `concurrent`
/// in flight per host), with node slices of `slices` addresses or without.
async fn hosts(
    endpoints: &[String],
    tag: &str,
    hosts: usize,
    concurrent: usize,
    slices: Option<u32>,
) -> f64 {
    let net = network(tag);
    let mut ipams = Vec::new();
    for h in 0..hosts {
        let mut cfg = EtcdConfig::new(endpoints.iter().cloned()).host(format!("bench{h}"));
        if let Some(n) = slices {
            cfg = cfg.slices(n);
        }
        let store = Arc::new(EtcdStore::connect(cfg).await.unwrap());
        ipams.push(Ipam::join(store, net.clone()).await.unwrap().0);
    }
    let per = N / hosts;
    let t = Instant::now();
    let tasks: Vec<_> = ipams
        .into_iter()
        .enumerate()
        .map(|(h, ipam)| {
            tokio::spawn(async move {
                futures::stream::iter(0..per)
                    .map(|i| {
                        let ipam = ipam.clone();
                        async move {
                            let o = Owner::new(format!("h{h}c{i}"), "eth0").unwrap();
                            ipam.allocate(&o, &Request::any()).await.unwrap();
                        }
                    })
                    .buffer_unordered(concurrent)
                    .collect::<Vec<()>>()
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per * hosts) as f64 / t.elapsed().as_secs_f64()
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
    let mut clusters = Vec::new();
    for members in [1, 3] {
        let c = cluster::Cluster::start(members);
        let eps = c.endpoints();
        for conc in [1usize, 16] {
            let tag = format!("m{members}c{conc}");
            std::thread::sleep(Duration::from_millis(200));
            let b = rt.block_on(bare(&eps, &tag, conc));
            let s = rt.block_on(ipam(&eps, &tag, conc));
            println!(
                "| {} | {conc} | {b:.0} | {s:.0} | {:.2}x |",
                members_label(members),
                b / s
            );
        }
        clusters.push((members, c));
    }
    println!();
    println!(
        "{N} claims per row from one network, split over the hosts; claims per second (higher is \
         better); slices of {SLICE}"
    );
    println!(
        "| etcd | hosts | in flight per host | without slices | with slices | with / without |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (members, c) in &clusters {
        let eps = c.endpoints();
        for (h, conc) in [(2usize, 1usize), (2, 8), (4, 1), (4, 8)] {
            let tag = format!("hosts-m{members}h{h}c{conc}");
            std::thread::sleep(Duration::from_millis(200));
            let plain = rt.block_on(hosts(&eps, &format!("{tag}-p"), h, conc, None));
            std::thread::sleep(Duration::from_millis(200));
            let sliced = rt.block_on(hosts(&eps, &format!("{tag}-s"), h, conc, Some(SLICE)));
            println!(
                "| {} | {h} | {conc} | {plain:.0} | {sliced:.0} | {:.2}x |",
                members_label(*members),
                sliced / plain
            );
        }
    }
}

fn members_label(members: usize) -> String {
    format!("{members} member{}", if members > 1 { "s" } else { "" })
}

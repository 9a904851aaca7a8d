//! IPAM allocation rate: in memory and with the durable local store, for a /24, a /16, a /8
//! and an IPv6 /64. Plain `std::time::Instant` harness.
//!
//! `cargo bench -p underlay --bench ipam` (results go into docs/benchmarks.md, "## IPAM").
//! Set `UNDERLAY_BENCH_DIR` to put the local store on a given filesystem (default: the temp
//! directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use underlay::ipam::{Ipam, LocalStore, Network, Owner, Request};

const POOLS: [(&str, &str); 4] = [
    ("/24", "10.24.0.0/24"),
    ("/16", "10.16.0.0/16"),
    ("/8", "10.0.0.0/8"),
    ("IPv6 /64", "fd00:64::/64"),
];

fn network(subnet: &str) -> Network {
    Network::new("bench", vec![subnet.parse().unwrap()]).unwrap()
}

fn owners(prefix: &str, n: usize) -> Vec<Owner> {
    (0..n)
        .map(|i| Owner::new(format!("{prefix}{i:08x}"), "eth0").unwrap())
        .collect()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Rounds of `batch` allocations then `batch` releases: allocation and release rates.
async fn churn(subnet: &str, batch: usize, rounds: usize) -> (f64, f64) {
    let ipam = Ipam::in_memory(network(subnet)).await.unwrap();
    let who = owners("c", batch);
    let any = Request::any();
    let (mut ta, mut tr) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        for o in &who {
            ipam.allocate(o, &any).await.unwrap();
        }
        ta += t.elapsed();
        let t = Instant::now();
        for o in &who {
            ipam.release(o).await.unwrap();
        }
        tr += t.elapsed();
    }
    (rate(batch * rounds, ta), rate(batch * rounds, tr))
}

/// `n` allocations with no release (the maps grow), then `ops` allocations at a steady `n`
/// live leases (release the oldest, allocate a new owner): both rates.
async fn fill(subnet: &str, n: usize, ops: usize) -> (f64, f64) {
    let ipam = Ipam::in_memory(network(subnet)).await.unwrap();
    let who = owners("f", n + ops);
    let any = Request::any();
    let t = Instant::now();
    for o in &who[..n] {
        ipam.allocate(o, &any).await.unwrap();
    }
    let grow = rate(n, t.elapsed());
    let mut ta = Duration::ZERO;
    for i in 0..ops {
        ipam.release(&who[i]).await.unwrap();
        let t = Instant::now();
        ipam.allocate(&who[n + i], &any).await.unwrap();
        ta += t.elapsed();
    }
    (grow, rate(ops, ta))
}

/// `n` durable allocations with `inflight` concurrent callers on one `Ipam`.
async fn local(dir: &std::path::Path, subnet: &str, n: usize, inflight: usize) -> (f64, usize) {
    let _ = std::fs::remove_dir_all(dir);
    let store = Arc::new(LocalStore::open(dir).unwrap());
    let ipam = Ipam::create(store, network(subnet)).await.unwrap();
    let first = last_version(dir);
    let who = owners("d", n);
    let t = Instant::now();
    futures::stream::iter(who.iter())
        .map(|o| {
            let ipam = &ipam;
            async move {
                ipam.allocate(o, &Request::any()).await.unwrap();
            }
        })
        .buffer_unordered(inflight)
        .collect::<Vec<()>>()
        .await;
    let r = rate(n, t.elapsed());
    assert_eq!(ipam.list().await.unwrap().len(), n);
    // Each commit moves the version by one (also those folded into snapshots since).
    let commits = (last_version(dir) - first) as usize;
    let _ = std::fs::remove_dir_all(dir);
    (r, commits)
}

/// The version of network `bench` in the local store `dir`: the snapshot's, or the journal's
/// last block's.
fn last_version(dir: &std::path::Path) -> u64 {
    let read = |f: &str| std::fs::read_to_string(dir.join("bench").join(f)).unwrap();
    let state = read("state");
    let journal = read("journal");
    let words = |text: &str, tag: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.strip_prefix(tag))
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect()
    };
    words(&state, "version ")
        .into_iter()
        .chain(words(&journal, "v "))
        .max()
        .unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    // One core: a current-thread runtime (the local store's file work runs on tokio's
    // blocking threads, which wait on the disk most of the time).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = std::env::var_os("UNDERLAY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("underlay-ipam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let (rounds, filln, seq, conc) = if quick {
        (500, 20_000, 50, 1_000)
    } else {
        (5_000, 60_000, 200, 5_000)
    };
    rt.block_on(async {
        println!("## In memory (MemoryStore), allocations/s");
        println!();
        println!(
            "| pool | 200 live: alloc/s | 200 live: release/s | growing to {filln}: alloc/s | {filln} live: alloc/s |"
        );
        println!("|---|---|---|---|---|");
        for (label, subnet) in POOLS {
            let (a, r) = churn(subnet, 200, rounds).await;
            let (grow, steady) = if label == "/24" {
                ("n/a".to_string(), "n/a".to_string())
            } else {
                let (g, st) = fill(subnet, filln, filln / 2).await;
                (format!("{g:.0}"), format!("{st:.0}"))
            };
            println!("| {label} | {a:.0} | {r:.0} | {grow} | {steady} |");
        }
        println!();
        println!("## Local store (durable: fdatasync before each reply), allocations/s");
        println!();
        println!("| pool | 1 in flight ({seq}) | 64 in flight ({conc}) | allocations per fsync |");
        println!("|---|---|---|---|");
        for (label, subnet) in POOLS {
            let dir = base.join(label.replace(['/', ' '], "_"));
            let n = if label == "/24" { seq.min(250) } else { seq };
            let (one, _) = local(&dir, subnet, n, 1).await;
            let m = if label == "/24" { 250 } else { conc };
            let (many, commits) = local(&dir, subnet, m, 64).await;
            let per = m as f64 / commits as f64;
            println!("| {label} | {one:.0} | {many:.0} | {per:.1} |");
        }
    });
    let _ = std::fs::remove_dir_all(&base);
}

//! Endpoint-link setup rate: a macvlan created directly inside a namespace, named, up, with an
//! address and a default route. Needs root; runs in anonymous namespaces it makes (gone when the
//! benchmark exits). `cargo bench -p underlay --bench links [-- N...]`.

use std::time::Instant;

use underlay::{Handle, Macvlan, MacvlanMode, Netns, Route, Veth};

#[path = "support/mod.rs"]
mod support;
use support::{in_flight, settle};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("links bench: needs root (CAP_NET_ADMIN); skipped");
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    println!("| N | mode | namespaces | setups/s | ms per setup |");
    println!("|---|---|---|---|---|");
    for &n in &sizes {
        for concurrent in [false, true] {
            for ns_in_timed_part in [false, true] {
                let rate = run(n, concurrent, ns_in_timed_part).await;
                println!(
                    "| {n} | {} | {} | {:.0} | {:.3} |",
                    if concurrent {
                        "concurrent (64 in flight)"
                    } else {
                        "sequential"
                    },
                    if ns_in_timed_part {
                        "made in the timed part"
                    } else {
                        "made beforehand"
                    },
                    rate,
                    1000.0 / rate
                );
            }
        }
    }
}

#[derive(Clone)]
struct Host {
    _ns: Netns,
    handle: Handle,
    parent: u32,
}

async fn host() -> Host {
    let ns = Netns::create_anonymous().expect("host namespace");
    let handle = Handle::for_netns(&ns).await.expect("host handle");
    Veth::create(&handle, "trunk0", "trunk1")
        .up()
        .peer_up()
        .execute()
        .await
        .expect("parent");
    let parent = handle.link_index("trunk0").await.expect("parent index");
    Host {
        _ns: ns,
        handle,
        parent,
    }
}

async fn container(ns: Option<Netns>) -> (Netns, Handle) {
    match ns {
        Some(ns) => {
            let h = Handle::for_netns(&ns).await.expect("container handle");
            (ns, h)
        }
        None => Handle::create_anonymous_netns()
            .await
            .expect("container namespace"),
    }
}

async fn setup(host: &Host, target: &Handle, i: usize) {
    Macvlan::create(&host.handle, "eth0", host.parent, MacvlanMode::Bridge)
        .target(target)
        .up()
        .execute()
        .await
        .expect("create");
    let ip = format!(
        "10.{}.{}.{}/8",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        (i & 0xff).max(2)
    );
    target
        .add_address("eth0", ip.parse().unwrap())
        .await
        .expect("address");
    target
        .add_route(&Route::default_via("10.0.0.1".parse().unwrap()))
        .await
        .expect("route");
}

async fn run(n: usize, concurrent: bool, ns_in_timed_part: bool) -> f64 {
    let host = host().await;
    let mut pre = Vec::new();
    if !ns_in_timed_part {
        for _ in 0..n {
            pre.push(container(None).await);
        }
    }
    // The previous row's namespaces are torn down by a kernel worker: not this row's work.
    settle().await;
    let start = Instant::now();
    let mut pre = pre.into_iter();
    let jobs = (0..n).map(|i| {
        let (host, made) = (host.clone(), pre.next());
        async move {
            let (ns, h) = match made {
                Some(m) => m,
                None => container(None).await,
            };
            setup(&host, &h, i).await;
            (ns, h)
        }
    });
    let kept = in_flight(concurrent, jobs.collect()).await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(kept.len(), n);
    drop(kept); // namespaces (and their links) go with their last descriptor
    n as f64 / secs
}

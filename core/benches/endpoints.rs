//! Endpoint setup and teardown rates through the network layer: allocate (local store, durable),
//! create the macvlan directly in the namespace, IPv6 off (the network is IPv4-only), address,
//! default route, up, announce, record.
//! Needs root; every namespace is made and deleted here. `cargo bench -p underlay --bench
//! endpoints [-- N...] [--no-announce|--announce-segment] [--no-link-deletes] [--keep-ipv6] [--cold] [--repeat=K] [--only=seq-pre|seq-timed|conc-pre|conc-timed] [--conflict-detection=MS]`
//! (`UL_IN_FLIGHT=N` sets the connects in flight, default 64).

use std::time::Instant;

use underlay::network::{Announce, EndpointSpec, Network, NetworkSpec, Networks};
use underlay::{Handle, MacvlanMode, Netns, Veth};

#[path = "support/mod.rs"]
mod support;
use support::{in_flight, settle};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("endpoints bench: needs root (CAP_NET_ADMIN); skipped");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let opts = Opts {
        announce: if args.iter().any(|a| a == "--no-announce") {
            Announce::Off
        } else if args.iter().any(|a| a == "--announce-segment") {
            Announce::Segment
        } else {
            Announce::Wire
        },
        link_deletes: !args.iter().any(|a| a == "--no-link-deletes"),
        keep_ipv6: args.iter().any(|a| a == "--keep-ipv6"),
        cold: args.iter().any(|a| a == "--cold"),
        // One state directory across runs, as a host keeps /var/lib/underlay (`--cold` for a
        // fresh one per row).
        state: std::env::temp_dir().join("underlay-bench-state"),
        only: args
            .iter()
            .find_map(|a| a.strip_prefix("--only=").map(str::to_string)),
        repeat: args
            .iter()
            .find_map(|a| a.strip_prefix("--repeat=").and_then(|r| r.parse().ok()))
            .unwrap_or(3)
            .max(1),
        conflict_wait: args.iter().find_map(|a| {
            a.strip_prefix("--conflict-detection=")
                .and_then(|r| r.parse().ok())
        }),
    };
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    println!("| N | mode | namespaces | connects/s: median (range) of {} | disconnects/s (link deleted) | disconnects/s (namespace deleted after) |", opts.repeat);
    println!("|---|---|---|---|---|---|");
    for &n in &sizes {
        for concurrent in [false, true] {
            for ns_in_timed_part in [false, true] {
                let key = format!(
                    "{}-{}",
                    if concurrent { "conc" } else { "seq" },
                    if ns_in_timed_part { "timed" } else { "pre" }
                );
                if opts.only.as_ref().is_some_and(|o| *o != key) {
                    continue;
                }
                let mut runs = Vec::new();
                for _ in 0..opts.repeat {
                    runs.push(run(n, concurrent, ns_in_timed_part, &opts).await);
                }
                let median = |f: fn(&(f64, f64, f64)) -> f64| {
                    let mut v: Vec<f64> = runs.iter().map(f).collect();
                    v.sort_by(f64::total_cmp);
                    (v[v.len() / 2], v[0], v[v.len() - 1])
                };
                let (up, lo, hi) = median(|r| r.0);
                let (down, fast) = (median(|r| r.1).0, median(|r| r.2).0);
                println!(
                    "| {n} | {} | {} | {up:.0} ({lo:.0}-{hi:.0}) | {down:.0} | {fast:.0} |",
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
                );
            }
        }
    }
    if opts.cold {
        let _ = std::fs::remove_dir_all(&opts.state);
    }
}

/// Command-line options: `--no-announce` (no gratuitous ARP), `--announce-segment` (from
/// inside the endpoint, to its siblings too), `--no-link-deletes` (every
/// endpoint goes with its namespace), `--keep-ipv6` (IPv6 left on), `--cold` (a fresh state directory per row),
/// `--only=seq-pre|seq-timed|conc-pre|conc-timed`, `--repeat=K` (runs per row, default 3; the
/// table shows the median).
struct Opts {
    announce: Announce,
    only: Option<String>,
    link_deletes: bool,
    /// Leave the kernel's IPv6 on the (IPv4-only) endpoints.
    keep_ipv6: bool,
    /// A fresh state directory per row instead of one for the whole run (as a host has).
    cold: bool,
    /// Runs per row (`--repeat=K`, default 3): the table shows the median and the range.
    repeat: usize,
    state: std::path::PathBuf,
    /// Conflict detection on the network: one ARP probe, then this many ms
    /// (`--conflict-detection=MS`).
    conflict_wait: Option<u64>,
}

async fn run(n: usize, concurrent: bool, ns_in_timed_part: bool, opts: &Opts) -> (f64, f64, f64) {
    let tag = format!("ulb{}", std::process::id());
    let (host_ns, host) = Handle::create_anonymous_netns()
        .await
        .expect("host namespace");
    Veth::create(&host, "ens192", "wire0")
        .up()
        .peer_up()
        .execute()
        .await
        .expect("parent");
    let dir = &opts.state;
    if opts.cold {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut spec = NetworkSpec::macvlan("bench", "ens192", MacvlanMode::Bridge)
        .pool("10.0.0.0/16 gateway=10.0.0.1".parse().unwrap());
    if let Some(ms) = opts.conflict_wait {
        spec = spec.conflict_detection(
            underlay::ConflictDetection::new(
                1,
                std::time::Duration::ZERO,
                std::time::Duration::from_millis(ms),
            )
            .expect("conflict detection timings"),
        );
    }
    let mut nets = Networks::open(&host, &dir).await.expect("state");
    let net: Network = match nets.create(spec.clone()).await {
        Ok(n) => n,
        // A run that died left its network: start from a clean directory.
        Err(_) => {
            let _ = std::fs::remove_dir_all(dir);
            nets = Networks::open(&host, &dir).await.expect("state");
            nets.create(spec).await.expect("network")
        }
    };
    let names: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    // Whatever happens (a panic included), the named namespaces go.
    let _cleanup = Cleanup(names.clone());
    let mut pre: Vec<Option<(Netns, Handle)>> = Vec::new();
    for name in &names {
        pre.push(if ns_in_timed_part {
            None
        } else {
            Some(Handle::create_netns(name).await.expect("namespace"))
        });
    }
    // Let the kernel finish tearing down the previous row's namespaces (a background
    // worker, seconds for a thousand), so that each row is charged with its own work only.
    settle().await;
    let start = Instant::now();
    let (announce, keep_ipv6) = (opts.announce, opts.keep_ipv6);
    let jobs = names.iter().zip(pre).enumerate().map(|(i, (name, made))| {
        let (net, name) = (net.clone(), name.clone());
        async move {
            let (ns, h) = match made {
                Some(m) => m,
                None => Handle::create_netns(&name).await.expect("namespace"),
            };
            let spec = EndpointSpec::new(format!("c{i}"))
                .target(&h)
                .announce_to(announce)
                .keep_ipv6(keep_ipv6);
            net.connect(&ns, spec).await.expect("connect");
            (ns, h)
        }
    });
    let kept = in_flight(concurrent, jobs.collect()).await;
    let up = n as f64 / start.elapsed().as_secs_f64();
    // Half disconnect deleting the link, half the way a runtime tearing down its containers
    // would: release, then delete the namespace (its link goes with it).
    let half = if opts.link_deletes { n / 2 } else { 0 };
    let start = Instant::now();
    let jobs = (0..half).map(|i| {
        let net = net.clone();
        async move {
            net.disconnect(&format!("c{i}"), "eth0")
                .await
                .expect("disconnect")
        }
    });
    in_flight(concurrent, jobs.collect()).await;
    let down = half as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let jobs = (half..n).map(|i| {
        let (net, name) = (net.clone(), names[i].clone());
        async move {
            net.disconnect_for_netns_deletion(&format!("c{i}"), "eth0")
                .await
                .expect("disconnect");
            Netns::delete(&name).expect("delete namespace");
        }
    });
    in_flight(concurrent, jobs.collect()).await;
    let fast = (n - half) as f64 / start.elapsed().as_secs_f64();
    drop(kept);
    nets.delete("bench").await.expect("delete network");
    drop(host_ns);
    if opts.cold {
        let _ = std::fs::remove_dir_all(dir);
    }
    (up, down, fast)
}

/// Deletes the named namespaces left when dropped.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Netns::delete(name);
        }
    }
}

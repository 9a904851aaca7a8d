//! Deleting many named namespaces: 1,000 `Netns::delete` calls as tokio tasks (the old way
//! from async code), `Netns::delete_async` as tasks, one `Netns::delete_many`, and
//! `ip -batch` with one `netns del` line each, in alternating rounds of the same run. Needs
//! root; the namespaces are named `ulbench-del-PID-…` and removed even when a round fails.
//! `cargo bench -p underlay --bench netns [-- N] [--repeat=R]`.

use std::io::Write;
use std::time::Instant;

use underlay::Netns;

#[path = "support/mod.rs"]
#[allow(dead_code)] // this bench waits for the machine to settle, and runs no jobs in flight
mod support;
use support::settle;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("netns bench: needs root (CAP_SYS_ADMIN); skipped");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000);
    let repeat: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--repeat=")?.parse().ok())
        .unwrap_or(3);
    let ways = [
        "Netns::delete in tasks",
        "Netns::delete_async in tasks",
        "Netns::delete_many",
        "ip -batch netns del",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for round in 0..repeat {
        for (w, rate) in rates.iter_mut().enumerate() {
            let names = make(n, round, w);
            settle().await;
            let start = Instant::now();
            match w {
                0 => {
                    let tasks: Vec<_> = names
                        .iter()
                        .cloned()
                        .map(|name| tokio::spawn(async move { Netns::delete(&name) }))
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                }
                1 => {
                    let tasks: Vec<_> = names
                        .iter()
                        .cloned()
                        .map(|name| tokio::spawn(async move { Netns::delete_async(&name).await }))
                        .collect();
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                }
                2 => Netns::delete_many(&names).await.unwrap(),
                _ => ip_batch_delete(&names),
            }
            let secs = start.elapsed().as_secs_f64();
            let left: Vec<_> = names.iter().filter(|n| Netns::open(n).is_ok()).collect();
            assert!(left.is_empty(), "{}: {} left", ways[w], left.len());
            rate.push(n as f64 / secs);
        }
    }
    println!("| N | way | deletions/s (median) | range |");
    println!("|---|---|---|---|");
    for (w, r) in rates.iter_mut().enumerate() {
        r.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {n} | {} | {:.0} | {:.0}-{:.0} |",
            ways[w],
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
}

/// `n` fresh named namespaces for one way in one round.
fn make(n: usize, round: usize, way: usize) -> Vec<String> {
    let names: Vec<String> = (0..n)
        .map(|i| format!("ulbench-del-{}-{round}-{way}-{i}", std::process::id()))
        .collect();
    for name in &names {
        if let Err(e) = Netns::create(name) {
            cleanup(&names);
            panic!("create {name}: {e}");
        }
    }
    names
}

fn ip_batch_delete(names: &[String]) {
    let mut child = std::process::Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ip -batch");
    let mut script = String::new();
    for n in names {
        script.push_str(&format!("netns del {n}\n"));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    if !status.success() {
        cleanup(names);
        panic!("ip -batch failed: {status}");
    }
}

fn cleanup(names: &[String]) {
    for n in names {
        let _ = Netns::delete(n);
    }
}

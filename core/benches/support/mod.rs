//! What the kernel benchmarks share: running jobs one by one or many at a time, and waiting
//! for the machine to settle before a timed part.

use futures::stream::{self, StreamExt};

/// Runs `items` one after the other, or 64 at a time as tasks of the runtime (spread over its
/// worker threads, as a server's requests would be).
pub(crate) async fn in_flight<
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
>(
    concurrent: bool,
    items: Vec<F>,
) -> Vec<T> {
    if concurrent {
        stream::iter(items)
            .map(|f| async { tokio::spawn(f).await.expect("task") })
            .buffer_unordered(in_flight_limit())
            .collect()
            .await
    } else {
        let mut out = Vec::new();
        for f in items {
            out.push(f.await);
        }
        out
    }
}

fn in_flight_limit() -> usize {
    std::env::var("UL_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Waits (at most 60 s) until the machine is nearly idle: under 10% busy over 250 ms.
pub(crate) async fn settle() {
    fn busy_idle() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (v.iter().sum::<u64>() - idle, idle)
    }
    for _ in 0..240 {
        let (b0, i0) = busy_idle();
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let (b1, i1) = busy_idle();
        let (busy, idle) = (b1 - b0, i1 - i0);
        if busy * 10 < busy + idle {
            return;
        }
    }
}

//! `retry_for` bounds a whole call, not each request of it: with the only member frozen
//! (SIGSTOP), calls fail with `Timeout` soon after `retry_for` even though one request may
//! wait `request_timeout`, longer than that (issue 17.6).

use std::sync::Arc;
use std::time::{Duration, Instant};

use underlay::ipam::{EtcdConfig, EtcdStore, Ipam, Request};
use underlay::ErrorKind;

use super::cluster::Cluster;
use super::{net, owner, rt, skip};

/// A member frozen mid-run: connect, allocate, lookup, list, gc_host and members each give
/// `Timeout` within `retry_for` (2 s) plus a margin, although one request may wait 5 s; thawed,
/// the same store allocates again.
#[test]
fn retry_for_bounds_the_whole_call() {
    if skip("retry_for_bounds_the_whole_call") {
        return;
    }
    let c = Cluster::start(1);
    let retry_for = Duration::from_secs(2);
    let cfg = EtcdConfig::new(c.endpoints())
        .host("h")
        .request_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_millis(500))
        .retry_for(retry_for);
    rt().block_on(async {
        let s = Arc::new(EtcdStore::connect(cfg.clone()).await.unwrap());
        let ipam = Ipam::create(s.clone(), net("n", &["10.90.0.0/24"]))
            .await
            .unwrap();
        ipam.allocate(&owner("a"), &Request::any()).await.unwrap();
        c.freeze(0);
        // Not a pass/fail timing beyond proving the point: before, each took request_timeout.
        let bound = retry_for + Duration::from_millis(1500);
        let check = |what: &str, t: Instant, e: underlay::Error| {
            assert_eq!(e.kind(), ErrorKind::Timeout, "{what}: {e}");
            assert!(t.elapsed() < bound, "{what} took {:?}", t.elapsed());
        };
        let t = Instant::now();
        check(
            "connect",
            t,
            EtcdStore::connect(cfg.clone()).await.unwrap_err(),
        );
        let t = Instant::now();
        let e = ipam.allocate(&owner("b"), &Request::any()).await;
        check("allocate", t, e.unwrap_err());
        let t = Instant::now();
        check("lookup", t, ipam.lookup(&owner("a")).await.unwrap_err());
        let t = Instant::now();
        check("list", t, ipam.list().await.unwrap_err());
        let t = Instant::now();
        check("gc_host", t, s.gc_host("n", "h", &[]).await.unwrap_err());
        let t = Instant::now();
        check("members", t, s.members("n").await.unwrap_err());
        c.thaw(0);
        ipam.allocate(&owner("b"), &Request::any()).await.unwrap();
        assert_eq!(ipam.list().await.unwrap().len(), 2);
    });
}

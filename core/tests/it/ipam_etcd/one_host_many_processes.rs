//! Several processes of one host name with `host_lease` (a daemon, CNI execs, an operator's
//! tool) share the host's claims: a short-lived one never takes them with it (issue 17.1).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::{child_cmd, claim_and_hold, net, rt, skip, store};
use underlay::ipam::Ipam;

/// The address keys of network `shared` held by `host`, read with etcdctl.
fn keys_of(c: &Cluster, host: &str) -> HashSet<IpAddr> {
    let out = c.ctl(&["get", "--prefix", "/underlay/ipam/data/shared/addr/"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .filter(|kv| kv.len() == 2 && kv[1].contains(&format!("host={host}")))
        .map(|kv| kv[0].rsplit('/').next().unwrap().parse().unwrap())
        .collect()
}

/// A daemon holds 10 claims under a 2 s host lease; three read-only tools of the same host
/// connect (two at once), report and exit. Well past the TTL the daemon's claims are all in
/// etcd and one lease carries them (etcdctl is the oracle); once the daemon is SIGKILLed too,
/// nobody keeps the host's lease and its claims come free.
#[test]
fn a_short_lived_process_of_a_host_does_not_take_its_claims() {
    if skip("a_short_lived_process_of_a_host_does_not_take_its_claims") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        Ipam::create(store(&c, "h").await, net("shared", &["10.86.0.0/24"]))
            .await
            .unwrap();
    });
    let mut daemon = child_cmd(&c, "node1", 10, 2);
    daemon.env("LEASE_TTL", "2");
    let (daemon, claimed) = claim_and_hold(daemon);
    assert_eq!(claimed.len(), 10);
    let tool = || {
        let mut cmd = child_cmd(&c, "node1", 0, 1);
        cmd.env("LEASE_TTL", "2").env("REPORT", "1");
        cmd.spawn().unwrap()
    };
    let together = [tool(), tool()];
    for out in together.map(finish).into_iter().chain([finish(tool())]) {
        assert!(out.contains("@@ report node1 10"), "{out}");
    }
    // Three TTLs after the last tool exited: its lease, had it carried the claims, expired.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        keys_of(&c, "node1"),
        claimed,
        "the daemon's claims left etcd"
    );
    let leases = c.ctl(&["lease", "list"]);
    assert!(
        leases.contains("found 1 leases"),
        "one host lease for every process of the host: {leases}"
    );
    rt().block_on(async {
        let s = store(&c, "observer").await;
        let by_host = s.addresses_by_host("shared").await.unwrap();
        let held: HashSet<IpAddr> = by_host["node1"].iter().map(|r| r.addr).collect();
        assert_eq!(held, claimed);
    });
    // The last process of the host dies: its claims go after the TTL.
    daemon.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !keys_of(&c, "node1").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the dead host's claims never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for a tool process (stdout piped), asserts that it succeeded; its stdout.
fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a tool process failed: {:?}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

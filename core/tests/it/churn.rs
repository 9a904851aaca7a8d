//! Endpoints under churn: many processes connecting and disconnecting (container ids reused,
//! one id raced by two processes), reconcile in a loop, kill -9 landing at random. After every
//! round the state is checked against the kernel (iproute2 as oracle): no IPv4 address in two
//! namespaces, every record matches its own link and lease, every endpoint link and every
//! lease has its record.
//!
//! `UNDERLAY_CHURN_ROUNDS` (default 4) and `UNDERLAY_CHURN_SECS` (seconds per round, default
//! 8) make it a soak: `UNDERLAY_CHURN_ROUNDS=30 cargo test -p underlay --test it -- churn`;
//! `UNDERLAY_CHURN_KILLS=0` leaves the children alive (races only, no crashes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use underlay::network::{EndpointSpec, NetworkSpec, Networks, ENDPOINT_GROUP};
use underlay::{ErrorKind, Handle, MacvlanMode, Netns};

use crate::common::{ip_json, ipv4_of, privileged, remove_namespaces, Children, Cleanup, TestNs};
use crate::network::TempDir;

const NETWORKS: [(&str, &str); 2] = [
    ("churn_a", "172.22.16.0/24 gateway=172.22.16.1"),
    ("churn_b", "172.22.17.0/24 gateway=172.22.17.1"),
];

/// A tiny generator for the children's choices (no dependency for so little).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ u64::from(std::process::id()).rotate_left(32) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a child sees of its job.
struct Job {
    dir: PathBuf,
    prefix: String,
    role: String,
    slot: String,
    deadline: Instant,
}

impl Job {
    /// Counts one successful connect (the parent checks that the round did work).
    fn progress(&self) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("progress"))
            .unwrap();
        f.write_all(b".").unwrap();
    }

    /// Notes a broken promise for the parent to fail on.
    fn violation(&self, what: String) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("violations"))
            .unwrap();
        writeln!(f, "{} {}: {what}", self.role, self.slot).unwrap();
    }
}

/// The child half of `endpoints_under_churn`: one role until its deadline (or kill -9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_worker() {
    let Ok(dir) = std::env::var("UNDERLAY_CHURN_DIR") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let job = Job {
        dir: PathBuf::from(dir),
        prefix: env("UNDERLAY_CHURN_PREFIX"),
        role: env("UNDERLAY_CHURN_ROLE"),
        slot: env("UNDERLAY_CHURN_SLOT"),
        deadline: Instant::now() + Duration::from_secs(env("UNDERLAY_CHURN_FOR").parse().unwrap()),
    };
    let host = Netns::open(&env("UNDERLAY_CHURN_HOST")).unwrap();
    let h = Handle::for_netns(&host).await.unwrap();
    let nets = Networks::open(&h, &job.dir.join("state")).await.unwrap();
    let mut networks = Vec::new();
    for (name, _) in NETWORKS {
        networks.push(nets.get(name).await.unwrap());
    }
    let mut rng = Rng::new();
    let mut i = 0u64;
    while Instant::now() < job.deadline {
        i += 1;
        let net = &networks[rng.below(2) as usize];
        match job.role.as_str() {
            "reconcile" => {
                if let Err(e) = nets.reconcile().await {
                    job.violation(format!("reconcile failed: {e}"));
                }
            }
            "handoff" => handoff_round(&job, net, &mut rng, i).await,
            "disconnect" => {
                // Disconnects `victim` whenever it is there: touches nothing else.
                if let Err(e) = net.disconnect("victim", "eth0").await {
                    job.violation(format!("disconnect victim: {e}"));
                }
            }
            role => {
                // "victim": one id raced by the disconnector; "reuse": a few ids per slot,
                // kept across this slot's restarts (a container restarted under its id);
                // "other": a fresh id each time, checked against the kernel.
                let id = match role {
                    "victim" => "victim".to_string(),
                    "reuse" => format!("reuse-{}-{}", job.slot, rng.below(2)),
                    _ => format!("other-{}-{}-{i}", job.slot, std::process::id()),
                };
                let ns_name = format!("{}-{}-{i}", job.prefix, std::process::id());
                let (ns, inside) = Handle::create_netns(&ns_name).await.unwrap();
                let connected = net
                    .connect(&ns, EndpointSpec::new(&id).target(&inside))
                    .await;
                match connected {
                    Ok(ep) => {
                        job.progress();
                        if role == "other" {
                            let addrs = ipv4_of(&ns_name, "eth0");
                            let want = ep.addresses[0].addr().to_string();
                            if addrs != [want.clone()] {
                                job.violation(format!("{id}: eth0 has {addrs:?}, not {want}"));
                            }
                        }
                    }
                    // The id is in use: by the racing process, or by this slot's previous
                    // life (killed before its disconnect): a runtime disconnects and goes on.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        if role == "reuse" {
                            if let Err(e) = net.disconnect(&id, "eth0").await {
                                job.violation(format!("disconnect {id} after AlreadyExists: {e}"));
                            }
                        }
                    }
                    Err(e) if role == "victim" => {
                        // The disconnector may delete the link under a connect.
                        let _ = e;
                    }
                    Err(e) => job.violation(format!("connect {id}: {e}")),
                }
                if role == "other" {
                    if let Err(e) = net.disconnect(&id, "eth0").await {
                        job.violation(format!("disconnect {id}: {e}"));
                    }
                    match net.endpoint(&id, "eth0") {
                        Ok(None) => {}
                        other => job.violation(format!("{id} still recorded: {other:?}")),
                    }
                    drop(inside);
                    Netns::delete(&ns_name).unwrap();
                } else {
                    drop(inside);
                    Netns::delete(&ns_name).unwrap();
                    if role == "reuse" {
                        if let Err(e) = net.disconnect(&id, "eth0").await {
                            job.violation(format!("disconnect {id}: {e}"));
                        }
                    }
                }
            }
        }
    }
}

/// One prepared endpoint (`Network::prepare`) as Docker handles it: the link moved into a
/// fresh namespace and renamed `eth0`, its address set there; then, at random, the namespace
/// deleted before the disconnect, the link moved back under its temporary name before it
/// (Docker's `Leave`), or the namespace deleted and nothing said (reconcile's job).
async fn handoff_round(job: &Job, net: &underlay::network::Network, rng: &mut Rng, i: u64) {
    let host = std::env::var("UNDERLAY_CHURN_HOST").unwrap();
    let id = format!("handoff-{}-{}-{i}", job.slot, std::process::id());
    let ep = match net.prepare(EndpointSpec::new(&id)).await {
        Ok(ep) => ep,
        Err(e) => return job.violation(format!("prepare {id}: {e}")),
    };
    job.progress();
    let tmp = ep.handoff.clone().unwrap();
    let ns_name = format!("{}-{}-{i}", job.prefix, std::process::id());
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        out.status.success()
    };
    Netns::create(&ns_name).unwrap();
    let addr = ep.addresses[0].to_string();
    if !(ip(&[
        "-n", &host, "link", "set", &tmp, "netns", &ns_name, "name", "eth0",
    ]) && ip(&["-n", &ns_name, "addr", "add", &addr, "dev", "eth0"]))
    {
        return job.violation(format!("{id}: moving {tmp} into {ns_name} failed"));
    }
    match rng.below(3) {
        0 => {
            Netns::delete(&ns_name).unwrap();
            if let Err(e) = net.disconnect(&id, "eth0").await {
                job.violation(format!("disconnect {id} after its namespace went: {e}"));
            }
        }
        1 => {
            if !ip(&[
                "-n", &ns_name, "link", "set", "eth0", "netns", &host, "name", &tmp,
            ]) {
                job.violation(format!("{id}: moving eth0 back failed"));
            }
            if let Err(e) = net.disconnect(&id, "eth0").await {
                job.violation(format!("disconnect {id} after Leave: {e}"));
            }
            if ip(&["-n", &host, "link", "show", &tmp]) {
                job.violation(format!("{id}: {tmp} is still in the host after disconnect"));
            }
            Netns::delete(&ns_name).unwrap();
        }
        _ => Netns::delete(&ns_name).unwrap(),
    }
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The roles of one round, as (role, slot).
const ROLES: [(&str, &str); 8] = [
    ("handoff", "1"),
    ("victim", "0"),
    ("disconnect", "0"),
    ("other", "1"),
    ("other", "2"),
    ("reuse", "1"),
    ("reuse", "2"),
    ("reconcile", "0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_under_churn() {
    if !privileged("endpoints_under_churn") {
        return;
    }
    let rounds = env_or("UNDERLAY_CHURN_ROUNDS", 4);
    let secs = env_or("UNDERLAY_CHURN_SECS", 8);
    let kills = env_or("UNDERLAY_CHURN_KILLS", 1) != 0;
    let host = TestNs::with_veth("churn", "ens192", "wire0").await;
    let dir = TempDir::new("churn");
    std::fs::create_dir_all(&dir.0).unwrap();
    let prefix = format!("ulch-{}", std::process::id());
    // Whatever happens, the children and their namespaces go.
    let _cleanup = Cleanup(prefix.clone());
    let nets = Networks::open(&host.handle, dir.0.join("state"))
        .await
        .unwrap();
    let mut networks = Vec::new();
    for (name, pool) in NETWORKS {
        let spec =
            NetworkSpec::macvlan(name, "ens192", MacvlanMode::Bridge).pool(pool.parse().unwrap());
        networks.push(nets.create(spec).await.unwrap());
    }
    let mut rng = Rng::new();
    let mut listing_errors = Vec::new();
    for round in 0..rounds {
        let spawn = |role: &str, slot: &str| -> Child {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "churn::churn_worker", "--nocapture", "-q"])
                .env("UNDERLAY_CHURN_DIR", &dir.0)
                .env("UNDERLAY_CHURN_PREFIX", &prefix)
                .env("UNDERLAY_CHURN_HOST", &host.name)
                .env("UNDERLAY_CHURN_ROLE", role)
                .env("UNDERLAY_CHURN_SLOT", slot)
                .env("UNDERLAY_CHURN_FOR", (secs + 30).to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut children = Children(ROLES.iter().map(|(r, s)| spawn(r, s)).collect());
        let end = Instant::now() + Duration::from_secs(secs);
        let mut next_kill = Instant::now() + Duration::from_millis(300 + rng.below(700));
        while Instant::now() < end {
            // Listings while others churn: a record going away is simply not listed.
            for net in &networks {
                if let Err(e) = net.endpoints() {
                    listing_errors.push(e.to_string());
                }
            }
            if kills && Instant::now() >= next_kill {
                let k = rng.below(ROLES.len() as u64) as usize;
                let _ = children.0[k].kill(); // SIGKILL
                let _ = children.0[k].wait();
                children.0[k] = spawn(ROLES[k].0, ROLES[k].1);
                next_kill = Instant::now() + Duration::from_millis(300 + rng.below(700));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(children);
        // Whatever the children left midway, reconcile mends.
        let report = nets.reconcile().await;
        assert!(report.is_ok(), "round {round}: reconcile: {report:?}");
        let report = report.unwrap().gone_endpoints.len();
        check(&nets, &prefix, &format!("round {round}")).await;
        let violations = std::fs::read_to_string(dir.0.join("violations")).unwrap_or_default();
        assert!(violations.is_empty(), "round {round}:\n{violations}");
        let done = std::fs::metadata(dir.0.join("progress")).map_or(0, |m| m.len());
        let _ = std::fs::remove_file(dir.0.join("progress"));
        eprintln!("churn round {round}: {done} connects, reconcile: {report:?}");
        assert!(done > 0, "round {round}: no connect succeeded");
    }
    assert!(
        listing_errors.is_empty(),
        "{} listings failed, e.g. {:?}",
        listing_errors.len(),
        listing_errors.first()
    );
    // Everything goes: the endpoints, their namespaces, then nothing is left but the networks.
    for net in &networks {
        for ep in net.endpoints().unwrap() {
            net.disconnect(&ep.container_id, &ep.ifname).await.unwrap();
        }
    }
    remove_namespaces(&prefix);
    assert!(nets.reconcile().await.unwrap().is_clean());
    for net in &networks {
        assert!(net.ipam().list().await.unwrap().is_empty(), "leases left");
    }
    for (name, _) in NETWORKS {
        nets.delete(name).await.unwrap();
    }
    let left: Vec<_> = walk(&dir.0.join("state/endpoints"));
    assert!(left.is_empty(), "files left: {left:?}");
}

/// The invariants, against the kernel.
async fn check(nets: &Networks, prefix: &str, when: &str) {
    // The oracle: every endpoint link in the test's namespaces (and the host's, where prepared
    // links wait), with its IPv4 addresses and its MAC.
    let mut links: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut macs: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut owners: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let host_ns = nets.host().netns().name().unwrap_or_default().to_string();
    for ns in Netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix) || *n == host_ns)
    {
        let Some(dump) = try_ip_json(&ns, &["addr", "show"]) else {
            continue;
        };
        for l in dump.as_array().into_iter().flatten() {
            let name = l["ifname"].as_str().unwrap_or_default().to_string();
            let v4: Vec<String> = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["family"] == "inet")
                .filter_map(|a| a["local"].as_str().map(String::from))
                .collect();
            for a in &v4 {
                owners
                    .entry(a.clone())
                    .or_default()
                    .push((ns.clone(), name.clone()));
            }
            if group_of(&ns, &name) == Some(ENDPOINT_GROUP) {
                if let Some(mac) = l["address"].as_str() {
                    let twice = macs.insert(mac.to_string(), (ns.clone(), name.clone()));
                    assert!(twice.is_none(), "{when}: MAC {mac} on two endpoint links");
                }
                links.insert((ns.clone(), name), v4);
            }
        }
    }
    for (a, who) in &owners {
        assert!(
            who.len() == 1 || a.starts_with("127."),
            "{when}: {a} is live in {who:?}"
        );
    }
    let mut recorded = BTreeSet::new();
    for net in nets.list().await.unwrap() {
        let leases: BTreeMap<String, Vec<String>> = net
            .ipam()
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|l| {
                let owner = format!("{}/{}", l.owner.container_id(), l.owner.ifname());
                let addrs = l.addresses.iter().map(|a| a.address.addr().to_string());
                (owner, addrs.collect())
            })
            .collect();
        let eps = net.endpoints().unwrap();
        for ep in &eps {
            let owner = format!("{}/{}", ep.container_id, ep.ifname);
            let addrs: Vec<String> = ep.addresses.iter().map(|a| a.addr().to_string()).collect();
            let ns = ep
                .netns
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut key = (ns.clone(), ep.ifname.clone());
            if let Some(tmp) = &ep.handoff {
                // Prepared: its link (found by MAC) waits in the host under its temporary name,
                // unaddressed, or was moved into a container (addressed there, or not yet).
                let mac = ep.mac.unwrap().to_string();
                let at = macs.get(&mac).cloned().unwrap_or_else(|| {
                    panic!(
                        "{when}: prepared {owner} of `{}`: no link has its MAC {mac}",
                        net.name()
                    )
                });
                let carried = &links[&at];
                if at.0 == host_ns {
                    assert_eq!(
                        &at.1, tmp,
                        "{when}: prepared {owner} in the host under another name"
                    );
                    assert!(
                        carried.is_empty(),
                        "{when}: prepared {owner}: addressed in the host"
                    );
                } else {
                    assert!(
                        carried.is_empty() || *carried == addrs,
                        "{when}: prepared {owner} moved into {}: {carried:?}, recorded {addrs:?}",
                        at.0
                    );
                }
                key = at;
            } else {
                assert_eq!(
                    links.get(&key),
                    Some(&addrs),
                    "{when}: record {owner} of `{}` does not match its link in {ns}",
                    net.name()
                );
            }
            assert_eq!(
                leases.get(&owner),
                Some(&addrs),
                "{when}: record {owner} of `{}` does not match its lease",
                net.name()
            );
            assert!(recorded.insert(key), "{when}: two records for one link");
        }
        let with_records: BTreeSet<String> = eps
            .iter()
            .map(|e| format!("{}/{}", e.container_id, e.ifname))
            .collect();
        for owner in leases.keys() {
            assert!(
                with_records.contains(owner),
                "{when}: lease of {owner} in `{}` has no record",
                net.name()
            );
        }
    }
    for key in links.keys() {
        assert!(recorded.contains(key), "{when}: link {key:?} has no record");
    }
}

fn try_ip_json(ns: &str, args: &[&str]) -> Option<serde_json::Value> {
    // The namespace may be mid-deletion by nobody (children are dead): read it plainly.
    Netns::open(ns).ok()?;
    Some(ip_json(ns, args))
}

/// A link's group as `ip -d -j link` shows it (a name, or the number).
fn group_of(ns: &str, dev: &str) -> Option<u32> {
    let v = ip_json(ns, &["link", "show", "dev", dev]);
    let g = v.as_array()?.first()?["group"].as_str()?.to_string();
    if g == "default" {
        return Some(0);
    }
    g.strip_prefix("0x")
        .map(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| g.parse().ok())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        // `.free` is the pool of retired record files, kept for reuse.
        if p.is_dir() {
            if !p.ends_with(".free") {
                out.extend(walk(&p));
            }
        } else if p.file_name().is_none_or(|n| n != ".lock") {
            out.push(p);
        }
    }
    out
}

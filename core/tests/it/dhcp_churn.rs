//! A DHCP network under churn: processes connecting and disconnecting containers against one
//! dnsmasq (one id raced by a disconnector, namespaces deleted without a disconnect), reconcile
//! in a loop, kill -9 at random. After every round (children finished or killed, then
//! `Networks::reconcile`) the state is checked against two oracles: `ip -j addr` in every
//! container namespace (no address on two links, every record matches its link, every link
//! has its record, nothing pending) and dnsmasq's lease file (every recorded address leased to
//! its endpoint's MAC; no lease of an endpoint that is gone, unless a kill -9 came between the
//! server's ACK or release and the record).
//!
//! `UNDERLAY_DHCP_CHURN_ROUNDS` (default 3) and `UNDERLAY_DHCP_CHURN_SECS` (default 5) make
//! it a soak.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use underlay::network::{EndpointSpec, NetworkSpec, Networks};
use underlay::{DhcpConfig, ErrorKind, Handle, MacvlanMode, Netns};

use crate::common::{ip_json, ipv4_of, privileged, remove_namespaces, Children, Cleanup};
use crate::dhcp::host_and_wire;
use crate::dhcp_dnsmasq::{Dnsmasq, DnsmasqLease};

const NET: &str = "dch";

/// A tiny generator for the choices (no dependency for so little).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn note(dir: &std::path::Path, file: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join(file))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// The child half of `dhcp_endpoints_under_churn`: one role until the round ends (or kill -9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_churn_worker() {
    let Ok(dir) = std::env::var("UNDERLAY_DHCP_CHURN_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let env = |k: &str| std::env::var(k).unwrap();
    let (prefix, role, slot) = (
        env("UNDERLAY_DHCP_CHURN_PREFIX"),
        env("UNDERLAY_DHCP_CHURN_ROLE"),
        env("UNDERLAY_DHCP_CHURN_SLOT"),
    );
    let until: u64 = env("UNDERLAY_DHCP_CHURN_UNTIL").parse().unwrap();
    let violation = |what: String| note(&dir, "violations", &format!("{role} {slot}: {what}"));
    let host = Netns::open(&env("UNDERLAY_DHCP_CHURN_HOST")).unwrap();
    let h = Handle::for_netns(&host).await.unwrap();
    let nets = Networks::open(&h, &dir).await.unwrap();
    let net = nets.get(NET).await.unwrap();
    let mut rng = Rng::new();
    let pid = std::process::id();
    let mut i = 0u64;
    while now_ms() < until {
        i += 1;
        match role.as_str() {
            "reconcile" => {
                if let Err(e) = nets.reconcile().await {
                    violation(format!("reconcile failed: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            "renew" => {
                // Renews whatever endpoint it finds, racing connects, disconnects, deleted
                // namespaces, reconcile and kills: a renewal must never bring back a lease
                // that was released (the server's lease file), nor touch another link (the
                // others' re-checks), nor leave a record unlike its link (the round's check).
                for ep in net.endpoints().unwrap_or_default() {
                    if net.renew_dhcp(&ep.container_id, &ep.ifname).await.is_ok() {
                        note(&dir, "renewed", &ep.container_id);
                    }
                }
                tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
            }
            "disconnect" => {
                // Disconnects `victim` whenever it is there: touches nothing else.
                if let Err(e) = net.disconnect("victim", "eth0").await {
                    violation(format!("disconnect victim: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            role => {
                // "victim": one id, its namespace deleted after each connect, the disconnector
                // (or reconcile) cleaning up; "other": a fresh id each time, checked against
                // the kernel, then disconnected, or its namespace deleted without a word.
                let id = if role == "victim" {
                    "victim".to_string()
                } else {
                    format!("o-{slot}-{pid}-{i}")
                };
                let ns_name = format!("{prefix}-{pid}-{i}");
                let ns = Netns::create(&ns_name).unwrap();
                match net.connect(&ns, EndpointSpec::new(&id)).await {
                    // The disconnector may have taken it already.
                    Ok(_) if role == "victim" => note(&dir, "progress", &id),
                    Ok(ep) => {
                        note(&dir, "progress", &id);
                        let want = vec![ep.addresses[0].addr().to_string()];
                        let got = ipv4_of(&ns_name, "eth0");
                        if got != want {
                            violation(format!("{id}: eth0 has {got:?}, not {want:?}"));
                        }
                        tokio::time::sleep(Duration::from_millis(rng.below(100))).await;
                        // Others' disconnects and reconciles ran meanwhile: still ours.
                        let got = ipv4_of(&ns_name, "eth0");
                        if got != want {
                            violation(format!("{id}: later eth0 has {got:?}, not {want:?}"));
                        }
                        if rng.below(3) != 0 {
                            if let Err(e) = net.disconnect(&id, "eth0").await {
                                violation(format!("disconnect {id}: {e}"));
                            }
                            match net.endpoint(&id, "eth0") {
                                Ok(None) => {}
                                other => violation(format!("{id} still recorded: {other:?}")),
                            }
                        }
                    }
                    // Its previous life's record is not cleaned up yet.
                    Err(e) if role == "victim" && e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => violation(format!("connect {id}: {e}")),
                }
                drop(ns);
                Netns::delete(&ns_name).unwrap();
            }
        }
    }
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ROLES: [(&str, &str); 7] = [
    ("other", "1"),
    ("other", "2"),
    ("other", "3"),
    ("victim", "0"),
    ("disconnect", "0"),
    ("reconcile", "0"),
    ("renew", "0"),
];

/// Who was killed: pids, and whether a kill could have cut a `victim` connect or disconnect.
#[derive(Default)]
struct Killed {
    pids: BTreeSet<u32>,
    victim: bool,
}

impl Killed {
    /// A lease, or a record without its lease, may be left by this endpoint only if a kill
    /// -9 cut the call that would have tidied it.
    fn excuses(&self, hostname: &str) -> bool {
        if hostname == "victim" {
            return self.victim;
        }
        let pid = hostname.split('-').nth(2).and_then(|p| p.parse().ok());
        pid.is_some_and(|p| self.pids.contains(&p))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_endpoints_under_churn() {
    if !privileged("dhcp_endpoints_under_churn") {
        return;
    }
    let rounds = env_or("UNDERLAY_DHCP_CHURN_ROUNDS", 3);
    let secs = env_or("UNDERLAY_DHCP_CHURN_SECS", 5);
    let (h, wire, dir, nets) = host_and_wire("dch").await;
    let server = Dnsmasq::start(&wire, &dir.0.join("dnsmasq")).await;
    let net = nets
        .create(
            NetworkSpec::macvlan(NET, "ens192", MacvlanMode::Bridge).dhcp(DhcpConfig::default()),
        )
        .await
        .unwrap();
    let prefix = format!("uldch-{}", std::process::id());
    let _cleanup = Cleanup(prefix.clone());
    let mut rng = Rng::new();
    let mut killed = Killed::default();
    for round in 0..rounds {
        let until = now_ms() + secs * 1000;
        let spawn = |role: &str, slot: &str| -> Child {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "dhcp_churn::dhcp_churn_worker",
                    "--nocapture",
                    "-q",
                ])
                .env("UNDERLAY_DHCP_CHURN_DIR", &dir.0)
                .env("UNDERLAY_DHCP_CHURN_PREFIX", &prefix)
                .env("UNDERLAY_DHCP_CHURN_HOST", &h.name)
                .env("UNDERLAY_DHCP_CHURN_ROLE", role)
                .env("UNDERLAY_DHCP_CHURN_SLOT", slot)
                .env("UNDERLAY_DHCP_CHURN_UNTIL", until.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut children = Children(ROLES.iter().map(|(r, s)| spawn(r, s)).collect());
        let mut next_kill = Instant::now() + Duration::from_millis(200 + rng.below(600));
        while now_ms() < until {
            if Instant::now() >= next_kill {
                let k = rng.below(ROLES.len() as u64) as usize;
                let c = &mut children.0[k];
                killed.pids.insert(c.id());
                killed.victim |= matches!(ROLES[k].0, "victim" | "disconnect" | "reconcile");
                let _ = c.kill(); // SIGKILL
                let _ = c.wait();
                children.0[k] = spawn(ROLES[k].0, ROLES[k].1);
                next_kill = Instant::now() + Duration::from_millis(200 + rng.below(600));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The rest finish their step and stop; one that hangs is killed (and excused).
        let wait_until = Instant::now() + Duration::from_secs(30);
        for (k, c) in children.0.iter_mut().enumerate() {
            while c.try_wait().unwrap().is_none() && Instant::now() < wait_until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if c.try_wait().unwrap().is_none() {
                killed.pids.insert(c.id());
                killed.victim |= matches!(ROLES[k].0, "victim" | "disconnect" | "reconcile");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        drop(children);
        let report = nets.reconcile().await;
        assert!(report.is_ok(), "round {round}: reconcile: {report:?}");
        check(&nets, &server, &prefix, &killed, &format!("round {round}")).await;
        let violations = std::fs::read_to_string(dir.0.join("violations")).unwrap_or_default();
        assert!(violations.is_empty(), "round {round}:\n{violations}");
        let done = std::fs::read_to_string(dir.0.join("progress")).unwrap_or_default();
        let _ = std::fs::remove_file(dir.0.join("progress"));
        eprintln!(
            "dhcp churn round {round}: {} connects, {} kills so far, reconcile: {:?}",
            done.lines().count(),
            killed.pids.len(),
            report.unwrap().gone_endpoints.len()
        );
        assert!(
            done.lines().count() > 0,
            "round {round}: no connect succeeded"
        );
    }
    let renewed = std::fs::read_to_string(dir.0.join("renewed")).unwrap_or_default();
    eprintln!("dhcp churn: {} renewals", renewed.lines().count());
    assert!(renewed.lines().count() > 0, "the renewer never renewed");
    // Everything goes; only leases a kill -9 excuses may stay on the server.
    for ep in net.endpoints().unwrap() {
        net.disconnect(&ep.container_id, &ep.ifname).await.unwrap();
    }
    remove_namespaces(&prefix);
    assert!(nets.reconcile().await.unwrap().is_clean());
    assert!(net.endpoints().unwrap().is_empty());
    let left = server
        .leases_when(|l| l.iter().all(|l| killed.excuses(&l.hostname)))
        .await;
    let stray: Vec<&DnsmasqLease> = left
        .iter()
        .filter(|l| !killed.excuses(&l.hostname))
        .collect();
    assert!(stray.is_empty(), "leases left on the server: {stray:?}");
}

/// The invariants, against `ip -j addr` and dnsmasq's lease file.
async fn check(nets: &Networks, server: &Dnsmasq, prefix: &str, killed: &Killed, when: &str) {
    // Every link in the test's container namespaces but `lo` is an endpoint's.
    let mut links: BTreeMap<(String, String), (String, Vec<String>)> = BTreeMap::new();
    let mut owners: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for ns in Netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
    {
        if Netns::open(&ns).is_err() {
            continue;
        }
        for l in ip_json(&ns, &["addr", "show"])
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = l["ifname"].as_str().unwrap_or_default().to_string();
            if name == "lo" {
                continue;
            }
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
            let mac = l["address"].as_str().unwrap_or_default().to_string();
            links.insert((ns.clone(), name), (mac, v4));
        }
    }
    for (a, who) in &owners {
        assert!(who.len() == 1, "{when}: {a} is live in {who:?}");
    }
    let net = nets.get(NET).await.unwrap();
    let eps = net.endpoints().unwrap();
    let leases = server
        .leases_when(|l| {
            eps.iter().all(|ep| {
                let ip = ep.addresses[0].addr().to_string();
                l.iter().any(|x| x.ip == ip) || killed.excuses(&ep.container_id)
            })
        })
        .await;
    let mut recorded = BTreeSet::new();
    for ep in &eps {
        let owner = format!("{}/{}", ep.container_id, ep.ifname);
        // Pending (a connect cut midway) or lost: neither may be left after reconcile.
        assert!(
            ep.dhcp.is_some(),
            "{when}: {owner} without its lease after reconcile"
        );
        let ns = ep
            .netns
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let addrs: Vec<String> = ep.addresses.iter().map(|a| a.addr().to_string()).collect();
        let mac = ep.mac.unwrap().to_string();
        let key = (ns.clone(), ep.ifname.clone());
        assert_eq!(
            links.get(&key),
            Some(&(mac.clone(), addrs.clone())),
            "{when}: record {owner} does not match its link in {ns}"
        );
        assert!(recorded.insert(key), "{when}: two records for one link");
        match leases.iter().find(|l| l.ip == addrs[0]) {
            Some(l) => assert_eq!(
                l.mac, mac,
                "{when}: {owner}'s address {} is leased to another MAC",
                addrs[0]
            ),
            None => assert!(
                killed.excuses(&ep.container_id),
                "{when}: {owner}'s lease of {} is gone from the server: {leases:?}",
                addrs[0]
            ),
        }
    }
    for key in links.keys() {
        assert!(recorded.contains(key), "{when}: link {key:?} has no record");
    }
    // Leases of endpoints that are gone: only where a kill -9 cut the connect or disconnect.
    let live: BTreeSet<String> = eps.iter().map(|e| e.container_id.clone()).collect();
    let leases = server
        .leases_when(|l| {
            l.iter()
                .all(|x| live.contains(&x.hostname) || killed.excuses(&x.hostname))
        })
        .await;
    for l in &leases {
        assert!(
            live.contains(&l.hostname) || killed.excuses(&l.hostname),
            "{when}: lease of gone endpoint `{}` left on the server: {l:?}\n{}",
            l.hostname,
            server.log_about(&l.mac)
        );
    }
}

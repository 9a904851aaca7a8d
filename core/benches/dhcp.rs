//! DHCP networks against Debian's dnsmasq (run here in a namespace of its own, `--port=0`, its
//! lease file in a temporary directory): connects per second with N connects in flight
//! (`UL_IN_FLIGHT`, default 64), then the renewer's cost per 1,000 leases held: one tick with
//! nothing due (`renew_due_dhcp`: reading the records), and every lease renewed (a unicast
//! REQUEST/ACK each), then disconnects (DHCPRELEASE each).
//! Needs root and dnsmasq. `cargo bench -p underlay --bench dhcp [-- N]` (default 500).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use underlay::network::{EndpointSpec, Network, NetworkSpec, Networks};
use underlay::{DhcpConfig, Handle, MacvlanMode, Netns, Veth};

#[path = "support/mod.rs"]
mod support;
use support::{in_flight, settle};

struct Cleanup {
    names: Vec<String>,
    server: Option<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        for n in &self.names {
            let _ = Netns::delete(n);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("dhcp bench: needs root (CAP_NET_ADMIN); skipped");
        return;
    }
    assert!(
        Command::new("dnsmasq")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "dhcp bench: needs dnsmasq (`apt-get install --no-install-recommends dnsmasq-base`)"
    );
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let tag = std::process::id();
    let (host_name, wire_name) = (format!("ulbd-h-{tag}"), format!("ulbd-w-{tag}"));
    let names: Vec<String> = (0..n).map(|i| format!("ulbd-c-{tag}-{i}")).collect();
    let dir = std::env::temp_dir().join(format!("underlay-bench-dhcp-{tag}"));
    let mut cleanup = Cleanup {
        names: [host_name.clone(), wire_name.clone()]
            .into_iter()
            .chain(names.iter().cloned())
            .collect(),
        server: None,
        dir: dir.clone(),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let host = Netns::create(&host_name).unwrap();
    let wire = Netns::create(&wire_name).unwrap();
    let h = Handle::for_netns(&host).await.unwrap();
    let w = Handle::for_netns(&wire).await.unwrap();
    Veth::create(&h, "ens192", "wire0")
        .peer_netns(&wire)
        .up()
        .peer_up()
        .execute()
        .await
        .unwrap();
    w.add_address("wire0", "10.84.0.1/20".parse().unwrap())
        .await
        .unwrap();
    cleanup.server = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &wire_name,
                "dnsmasq",
                "--keep-in-foreground",
            ])
            .args([
                "--port=0",
                "--conf-file=/dev/null",
                "--interface=wire0",
                "--bind-interfaces",
                "--dhcp-range=10.84.0.10,10.84.15.250,255.255.240.0,1h",
                "--dhcp-lease-max=10000",
                "--dhcp-authoritative",
                "--no-ping",
                "--user=root",
                "--group=root",
            ])
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while !dir.join("pid").exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Named, as runtimes name them (a disconnect finds them by path).
    let containers: Vec<Netns> = names.iter().map(|n| Netns::create(n).unwrap()).collect();
    let nets = Networks::open(&h, dir.join("state")).await.unwrap();
    let net = nets
        .create(
            NetworkSpec::macvlan("bench", "ens192", MacvlanMode::Bridge)
                .dhcp(DhcpConfig::default()),
        )
        .await
        .unwrap();
    settle().await;
    let t = Instant::now();
    let done = in_flight(
        true,
        containers
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (net, ns) = (net.clone(), ns.clone());
                async move { net.connect(&ns, EndpointSpec::new(format!("c{i}"))).await }
            })
            .collect(),
    )
    .await;
    let connect = t.elapsed();
    for d in &done {
        if let Err(e) = d {
            panic!("connect failed: {e}");
        }
    }
    let per_k = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    settle().await;
    let t = Instant::now();
    let due = net.renew_due_dhcp().await.unwrap();
    let tick = t.elapsed();
    assert!(due.is_empty(), "nothing is due an hour before T1");
    let t = Instant::now();
    let renewed = renew_all(&net, n).await;
    let renew = t.elapsed();
    assert_eq!(renewed, n);
    settle().await;
    let t = Instant::now();
    let gone = in_flight(
        true,
        (0..n)
            .map(|i| {
                let net = net.clone();
                async move { net.disconnect(&format!("c{i}"), "eth0").await }
            })
            .collect(),
    )
    .await;
    let disconnect = t.elapsed();
    assert!(gone.iter().all(Result::is_ok));
    println!("| N | in flight | connects/s | tick, nothing due: ms per 1,000 leases | renewals: s per 1,000 leases (renewals/s) | disconnects/s (release + link) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {n} | {} | {:.0} | {:.1} | {:.2} ({:.0}) | {:.0} |",
        std::env::var("UL_IN_FLIGHT").unwrap_or_else(|_| "64".into()),
        n as f64 / connect.as_secs_f64(),
        per_k(tick) * 1000.0,
        per_k(renew),
        n as f64 / renew.as_secs_f64(),
        n as f64 / disconnect.as_secs_f64()
    );
}

/// Renews every lease (what the renewer does at T1), 64 at a time.
async fn renew_all(net: &Network, n: usize) -> usize {
    in_flight(
        true,
        (0..n)
            .map(|i| {
                let net = net.clone();
                async move { net.renew_dhcp(&format!("c{i}"), "eth0").await }
            })
            .collect(),
    )
    .await
    .into_iter()
    .filter(Result::is_ok)
    .count()
}

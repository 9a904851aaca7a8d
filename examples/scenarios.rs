//! The scenarios demo: ../shared/SCENARIOS.md S1-S3 reproduced in network namespaces on one
//! machine, with real pings between them.
//!
//! Two "hosts" (`host1`, `host2`) and a router hang on one trunk (a bridge in a `switch`
//! namespace stands in for the switch). Each host has:
//! - S1: `mac_net1`, a macvlan network on the untagged LAN 172.22.16.0/24 (gateway .1 = the
//!   router), the host's own address excluded from allocation (Docker's `--aux-address`);
//! - S2: `mac_net10` on `ens192.10` and `mac_net20` on `ens192.20`, VLAN sub-interfaces that
//!   underlay creates because they do not exist yet.
//!
//! Containers sit on each network. The router holds the gateways on `ens192.10`/`ens192.20`
//! (router-on-a-stick) with forwarding on. S3: `host1` first cannot reach its own macvlan
//! container, then can through the host shim.
//!
//! Run as root: `cargo run --release -p underlay-examples --bin scenarios`. Where the kernel
//! has no 8021q, the demo says so and runs itself inside the test VM (Debian's kernel, qemu).
//! What the VM needs and the host lacks (qemu, a static busybox, ...) is installed with apt
//! after saying which packages and why, never removing one (`--no-remove`); `--no-install`
//! (or `UNDERLAY_NO_INSTALL=1`) refuses instead and names them. Everything lives in namespaces
//! the demo makes, and goes when it ends.
//!
//! `--etcd` (build with `--features etcd`): S1 and S3 only, with both hosts allocating from one
//! etcd-backed pool (../shared/SCENARIOS.md S5): the demo starts a single etcd member on free
//! 127.0.0.1 ports (data in a temporary directory, killed by PID when the demo ends) and the
//! containers get distinct addresses from the one pool without static IPs or a hand-made
//! split, each host inside its own node slices. Both hosts use plain `Networks` over their
//! `EtcdStore`: the second host joins the network the first defined, and the definition goes
//! with the last host that deletes it. Needs no 8021q: `cargo run -p underlay-examples
//! --features etcd --bin scenarios -- --etcd`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use underlay::network::{EndpointSpec, HostAccess, Network, NetworkSpec, Networks};
use underlay::{Bridge, ErrorKind, Handle, MacvlanMode, Netns, Veth, Vlan, VlanId};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "scenarios: needs root (it creates network namespaces and links): run it as root"
        );
        return ExitCode::from(2);
    }
    if std::env::args().skip(1).any(|a| a == "--no-install") {
        xtask::apt::forbid_installs();
    }
    if std::env::args().skip(1).any(|a| a == "--etcd") {
        return etcd_mode().await;
    }
    if !xtask::vm::in_vm() {
        match kernel_has_8021q().await {
            Ok(true) => {}
            Ok(false) => {
                println!("this kernel has no 8021q (VLAN) support and cannot load it: running the demo inside the test VM (Debian's kernel under qemu)");
                let code = xtask::vm::prepare().and_then(|vm| xtask::vm::run_self_in_vm(&vm));
                return match code {
                    Ok(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
                    Err(e) => {
                        eprintln!("scenarios: the VM failed: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            Err(e) => {
                eprintln!("scenarios: cannot probe the kernel: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut lab = Lab::default();
    let result = run(&mut lab).await;
    drop(lab);
    exit_code(result)
}

/// The exit status of a run: 0 when every result is as the scenarios say, 1 when some differ,
/// 2 when the run failed.
fn exit_code(result: Result<bool, impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("scenarios: some results differ from what the scenarios say (marked !!)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("scenarios: {e}");
            ExitCode::from(2)
        }
    }
}

/// Tries a VLAN in a throwaway namespace.
async fn kernel_has_8021q() -> underlay::Result<bool> {
    let (_ns, h) = Handle::create_anonymous_netns().await?;
    Veth::create(&h, "probe0", "probe1").execute().await?;
    match Vlan::create(&h, "probe0", VlanId::new(10)?).execute().await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::KernelUnsupported => Ok(false),
        Err(e) => Err(e),
    }
}

/// Namespaces and state directories of the demo, removed on drop (also after a failure).
#[derive(Default)]
struct Lab {
    namespaces: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Lab {
    async fn ns(&mut self, name: &str) -> underlay::Result<(Netns, Handle)> {
        let full = format!("uldemo-{name}-{}", std::process::id());
        let made = Handle::create_netns(&full).await?;
        self.namespaces.push(full);
        Ok(made)
    }

    fn dir(&mut self, name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("uldemo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        self.dirs.push(d.clone());
        d
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &self.namespaces {
            if let Err(e) = Netns::delete(n) {
                eprintln!("cleanup: {e}");
            }
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A place to ping from.
struct Node {
    label: String,
    ns: Netns,
    ip: IpAddr,
}

struct Host {
    nets: Networks,
    lan: Network,
    v10: Network,
    v20: Network,
}

async fn host(
    lab: &mut Lab,
    sw: &Handle,
    name: &str,
    port: &str,
    lan_ip: &str,
) -> Result<(Netns, Host)> {
    let (ns, h) = lab.ns(name).await?;
    cable(sw, port, &ns, &h).await?;
    h.add_address("ens192", format!("{lan_ip}/24").parse()?)
        .await?;
    h.add_route(&underlay::Route::default_via("172.22.16.1".parse()?))
        .await?;
    let nets = Networks::open(&h, lab.dir(name)).await?;
    // S1: the LAN itself; the host's own address is never handed out.
    let lan = nets
        .create(
            NetworkSpec::macvlan("mac_net1", "ens192", MacvlanMode::Bridge).pool(
                format!("172.22.16.0/24 gateway=172.22.16.1 reserve=exclude_host={lan_ip}")
                    .parse()?,
            ),
        )
        .await?;
    // S2: ens192.10 and ens192.20 do not exist: underlay makes them (and would delete them
    // with their last network).
    let v10 = nets
        .create(
            NetworkSpec::from_docker("mac_net10", "macvlan", &[("parent", "ens192.10")])?
                .pool("172.16.10.0/24 gateway=172.16.10.1".parse()?),
        )
        .await?;
    let v20 = nets
        .create(
            NetworkSpec::from_docker("mac_net20", "macvlan", &[("parent", "ens192.20")])?
                .pool("172.16.20.0/24 gateway=172.16.20.1".parse()?),
        )
        .await?;
    Ok((
        ns,
        Host {
            nets,
            lan,
            v10,
            v20,
        },
    ))
}

/// A veth "cable" from the switch's bridge to `ens192` in `ns`.
async fn cable(sw: &Handle, port: &str, ns: &Netns, h: &Handle) -> underlay::Result<()> {
    Veth::create(sw, port, "ens192")
        .peer_netns(ns)
        .master("br0")
        .up()
        .execute()
        .await?;
    h.set_link("ens192").up().execute().await
}

async fn container(lab: &mut Lab, net: &Network, name: &str, ip: &str, host: &str) -> Result<Node> {
    let (ns, h) = lab.ns(name).await?;
    let ep = net
        .connect(&ns, EndpointSpec::new(name).ip(ip.parse()?).target(&h))
        .await?;
    Ok(Node {
        label: format!("{name} ({host})"),
        ns,
        ip: ep.addresses[0].addr(),
    })
}

async fn run(lab: &mut Lab) -> Result<bool> {
    println!("underlay scenarios demo: S1-S3 of SCENARIOS.md in network namespaces\n");
    let (_sw_ns, sw) = lab.ns("switch").await?;
    Bridge::create(&sw, "br0").up().execute().await?;
    // The router on a stick: gateways on VLAN sub-interfaces, and the LAN's gateway untagged.
    let (router_ns, r) = lab.ns("router").await?;
    cable(&sw, "p0", &router_ns, &r).await?;
    r.add_address("ens192", "172.22.16.1/24".parse()?).await?;
    for (id, gw) in [(10, "172.16.10.1/24"), (20, "172.16.20.1/24")] {
        let l = Vlan::create(&r, "ens192", VlanId::new(id)?)
            .up()
            .execute()
            .await?;
        r.add_address(l.index, gw.parse()?).await?;
    }
    router_ns.set_forwarding(true, false)?;

    let (h1_ns, h1) = host(lab, &sw, "host1", "p1", "172.22.16.21").await?;
    let (_h2_ns, h2) = host(lab, &sw, "host2", "p2", "172.22.16.22").await?;
    println!("host1, host2: mac_net1 on ens192 (172.22.16.0/24), mac_net10 on ens192.10, mac_net20 on ens192.20 (VLANs made by underlay)");
    println!(
        "router: ens192 172.22.16.1, ens192.10 172.16.10.1, ens192.20 172.16.20.1, forwarding on\n"
    );

    let nodes = vec![
        Node {
            label: "host1 (its own LAN address)".into(),
            ns: h1_ns.clone(),
            ip: "172.22.16.21".parse()?,
        },
        container(lab, &h1.lan, "c1", "172.22.16.10", "host1").await?,
        container(lab, &h2.lan, "c2", "172.22.16.20", "host2").await?,
        container(lab, &h1.v10, "bbox_10_1", "172.16.10.101", "host1").await?,
        container(lab, &h2.v10, "bbox_10_2", "172.16.10.102", "host2").await?,
        container(lab, &h1.v20, "bbox_20_1", "172.16.20.201", "host1").await?,
        container(lab, &h2.v20, "bbox_20_2", "172.16.20.202", "host2").await?,
    ];
    let mut all_ok = true;

    println!("1. Router forwarding, no host shim yet:");
    all_ok &= matrix(&nodes, |s, d| expect(s, d, true, false)).await?;

    println!(
        "\n2. S3: host access on host1's mac_net1 (a bridge-mode macvlan shim + host routes):"
    );
    let shim = h1
        .lan
        .enable_host_access(HostAccess::new().name("macvlan0-host"))
        .await?;
    println!("   shim `{shim}` up on ens192, route to c1's address through it");
    all_ok &= matrix(&nodes[..2], |s, d| expect(s, d, true, true)).await?;

    println!(
        "\n3. The router stops forwarding: VLANs are isolated at L2, only the same VLAN answers:"
    );
    router_ns.set_forwarding(false, false)?;
    all_ok &= matrix(&nodes[3..], |s, d| expect(s, d, false, true)).await?;

    println!("\n4. Teardown through the library: disconnect, delete networks (their VLANs go with the last one)");
    for (hostname, h, n) in [("host1", &h1, 0usize), ("host2", &h2, 1)] {
        for (net, c) in [(&h.lan, "c"), (&h.v10, "bbox_10_"), (&h.v20, "bbox_20_")] {
            net.disconnect(&format!("{c}{}", n + 1), "eth0").await?;
        }
        for name in ["mac_net1", "mac_net10", "mac_net20"] {
            h.nets.delete(name).await?;
        }
        let left: Vec<String> = h
            .nets
            .host()
            .links()
            .await?
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n.starts_with("ens192."))
            .collect();
        println!(
            "   {hostname}: networks deleted, VLAN sub-interfaces left: {}",
            if left.is_empty() {
                "none".into()
            } else {
                left.join(", ")
            }
        );
        all_ok &= left.is_empty();
    }
    println!(
        "\n{}",
        if all_ok {
            "all results as the scenarios say"
        } else {
            "!! some results differ"
        }
    );
    Ok(all_ok)
}

/// Whether `src` should reach `dst`, and why. `routing`: the router forwards; `shim`: host1
/// has host access to mac_net1.
fn expect(src: &Node, dst: &Node, routing: bool, shim: bool) -> (bool, &'static str) {
    let seg = |n: &Node| match n.ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [172, 16, 10] => "vlan10",
        IpAddr::V4(v4) if v4.octets()[..3] == [172, 16, 20] => "vlan20",
        _ => "lan",
    };
    let host1 = |n: &Node| n.label.starts_with("host1 (its");
    let on_host1_lan = |n: &Node| n.label.starts_with("c1 ");
    if (host1(src) && on_host1_lan(dst)) || (host1(dst) && on_host1_lan(src)) {
        return if shim {
            (true, "shim")
        } else {
            (false, "parent")
        };
    }
    if seg(src) == seg(dst) {
        return (true, "L2");
    }
    if routing {
        (true, "L3")
    } else {
        (false, "iso")
    }
}

/// Pings every pair (all at once), prints the matrix, and says whether it matched.
async fn matrix(
    nodes: &[Node],
    expect: impl Fn(&Node, &Node) -> (bool, &'static str),
) -> Result<bool> {
    let mut pings = Vec::new();
    for s in nodes {
        for d in nodes {
            let (ns, ip) = (s.ns.clone(), d.ip);
            pings.push(tokio::spawn(async move {
                ns.ping_async(ip, Duration::from_millis(1500)).await
            }));
        }
    }
    let mut results = Vec::new();
    for p in pings {
        results.push(p.await??.is_some());
    }
    let w = nodes.iter().map(|n| n.label.len()).max().unwrap_or(10);
    print!("   {:w$} ", "from \\ to");
    for d in nodes {
        print!("| {:^11}", d.label.split(' ').next().unwrap_or(""));
    }
    println!();
    let mut ok = true;
    for (i, s) in nodes.iter().enumerate() {
        print!("   {:w$} ", s.label);
        for (j, d) in nodes.iter().enumerate() {
            if i == j {
                print!("| {:^11}", "-");
                continue;
            }
            let got = results[i * nodes.len() + j];
            let (want, why) = expect(s, d);
            let cell = format!(
                "{} {why}{}",
                if got { "yes" } else { "no" },
                if got == want { "" } else { " !!" }
            );
            ok &= got == want;
            print!("| {cell:^11}");
        }
        println!();
    }
    println!("   L2: same segment (VLAN or LAN), switched; L3: through the router; shim: through host1's shim;");
    println!(
        "   parent: a macvlan child never talks to its own parent; iso: other VLAN, no router"
    );
    Ok(ok)
}

#[cfg(not(feature = "etcd"))]
async fn etcd_mode() -> ExitCode {
    eprintln!(
        "scenarios: --etcd needs the demo built with the `etcd` feature: cargo run -p \
         underlay-examples --features etcd --bin scenarios -- --etcd"
    );
    ExitCode::from(2)
}

#[cfg(feature = "etcd")]
async fn etcd_mode() -> ExitCode {
    let mut lab = Lab::default();
    let result = match etcd::Member::start(&lab.dir("etcd")) {
        Ok(member) => {
            let r = etcd::run(&mut lab, &member).await;
            drop(member); // SIGKILL by PID, before the data directory goes with the lab
            r
        }
        Err(e) => Err(e),
    };
    drop(lab);
    exit_code(result)
}

/// `--etcd`: S1 and S3 with both hosts on one etcd-backed pool.
#[cfg(feature = "etcd")]
mod etcd {
    use std::collections::HashSet;
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::time::Duration;

    use underlay::ipam::{EtcdConfig, EtcdStore, Store};
    use underlay::network::{EndpointSpec, HostAccess, NetworkSpec, Networks};
    use underlay::MacvlanMode;

    use super::{cable, matrix, Lab, Node, Result};

    /// One etcd member on free 127.0.0.1 ports; SIGKILLed by PID on drop.
    pub(super) struct Member {
        child: Child,
        pub(super) endpoint: String,
    }

    fn free_port() -> std::io::Result<u16> {
        Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
    }

    impl Member {
        pub(super) fn start(dir: &Path) -> Result<Member> {
            std::fs::create_dir_all(dir)?;
            let (client, peer) = (free_port()?, free_port()?);
            let endpoint = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.join("etcd.log"))?;
            let child = Command::new("etcd")
                .arg("--name=demo")
                .arg(format!("--data-dir={}", dir.join("data").display()))
                .arg(format!("--listen-client-urls={endpoint}"))
                .arg(format!("--advertise-client-urls={endpoint}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=demo={peer_url}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| {
                    format!(
                        "cannot start etcd ({e}): install it (Debian: `apt-get install \
                         etcd-server`, or `cargo xtask etcd-test` does it)"
                    )
                })?;
            Ok(Member { child, endpoint })
        }
    }

    impl Drop for Member {
        fn drop(&mut self) {
            // By PID only: this member, nothing else.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    const POOL: &str = "172.22.16.0/24 gateway=172.22.16.1 reserve=exclude_host1=172.22.16.21 \
                        reserve=exclude_host2=172.22.16.22";

    /// Each host allocates inside its own blocks of this many addresses (node slices).
    const SLICE: u32 = 16;

    async fn host(
        lab: &mut Lab,
        sw: &underlay::Handle,
        name: &str,
        port: &str,
        lan_ip: &str,
        endpoint: &str,
    ) -> Result<(
        underlay::Netns,
        Arc<EtcdStore>,
        Networks,
        underlay::network::Network,
    )> {
        let (ns, h) = lab.ns(name).await?;
        cable(sw, port, &ns, &h).await?;
        h.add_address("ens192", format!("{lan_ip}/24").parse()?)
            .await?;
        let store = Arc::new(
            EtcdStore::connect(
                EtcdConfig::new([endpoint])
                    .host(name)
                    .slices(SLICE)
                    .retry_for(Duration::from_secs(20)),
            )
            .await?,
        );
        let nets = Networks::with_store(&h, lab.dir(name), store.clone()).await?;
        // S1 with one pool for the whole cluster: the same definition on both hosts, both
        // hosts' own addresses excluded. The first host defines it in etcd, the second joins.
        let lan = nets
            .create(
                NetworkSpec::macvlan("mac_net1", "ens192", MacvlanMode::Bridge).pool(POOL.parse()?),
            )
            .await?;
        Ok((ns, store, nets, lan))
    }

    async fn container(
        lab: &mut Lab,
        net: &underlay::network::Network,
        name: &str,
        host: &str,
    ) -> Result<Node> {
        let (ns, h) = lab.ns(name).await?;
        // No static address: the shared pool hands one out.
        let ep = net.connect(&ns, EndpointSpec::new(name).target(&h)).await?;
        let ip = ep.addresses[0].addr();
        println!("   {name} on {host}: {ip}");
        Ok(Node {
            label: format!("{name} ({host})"),
            ns,
            ip,
        })
    }

    pub(super) async fn run(lab: &mut Lab, member: &Member) -> Result<bool> {
        println!(
            "underlay scenarios demo, --etcd: S1 and S3 with both hosts on one etcd-backed pool \
             (SCENARIOS.md S5)\n"
        );
        println!(
            "etcd: one member at {} (data in a temporary directory)",
            member.endpoint
        );
        let (_sw_ns, sw) = lab.ns("switch").await?;
        underlay::Bridge::create(&sw, "br0").up().execute().await?;
        let (h1_ns, s1, nets1, lan1) =
            host(lab, &sw, "host1", "p1", "172.22.16.21", &member.endpoint).await?;
        let (_h2_ns, s2, nets2, lan2) =
            host(lab, &sw, "host2", "p2", "172.22.16.22", &member.endpoint).await?;
        println!("host1, host2: mac_net1 on ens192, one pool for both: {POOL}");
        println!(
            "   defined in etcd by host1, joined by host2; used by: {}\n",
            s1.members("mac_net1").await?.join(", ")
        );
        println!("1. Containers on both hosts, interleaved, no static addresses:");
        let mut nodes = vec![Node {
            label: "host1 (its own LAN address)".into(),
            ns: h1_ns.clone(),
            ip: "172.22.16.21".parse()?,
        }];
        for (net, name, host) in [
            (&lan1, "c1", "host1"),
            (&lan2, "c2", "host2"),
            (&lan2, "c3", "host2"),
            (&lan1, "c4", "host1"),
        ] {
            nodes.push(container(lab, net, name, host).await?);
        }
        let mut all_ok = true;
        let ips: HashSet<_> = nodes[1..].iter().map(|n| n.ip).collect();
        let distinct = ips.len() == nodes.len() - 1;
        println!(
            "   {}",
            if distinct {
                "all distinct, from the one pool".to_string()
            } else {
                "!! an address was handed out twice".to_string()
            }
        );
        all_ok &= distinct;
        for (host, recs) in s1.addresses_by_host("mac_net1").await? {
            let list: Vec<String> = recs
                .iter()
                .map(|r| format!("{} {}", r.addr, r.owner))
                .collect();
            println!("   etcd says {host} holds: {}", list.join(", "));
        }
        for (host, slices) in s1.slices_by_host("mac_net1").await? {
            let list: Vec<String> = slices.iter().map(|(f, n)| format!("{f} (+{n})")).collect();
            println!("   {host}'s node slices: {}", list.join(", "));
        }

        let host1_own = |n: &Node| n.label.starts_with("host1 (its");
        let on_host1 = |n: &Node| n.label.ends_with("(host1)");
        println!("\n2. S1: containers of both hosts reach each other over the LAN:");
        all_ok &= matrix(&nodes, |s, d| {
            if (host1_own(s) && on_host1(d)) || (host1_own(d) && on_host1(s)) {
                (false, "parent")
            } else {
                (true, "L2")
            }
        })
        .await?;

        println!(
            "\n3. S3: host access on host1's mac_net1 (a bridge-mode macvlan shim + host routes):"
        );
        let shim = lan1
            .enable_host_access(HostAccess::new().name("macvlan0-host"))
            .await?;
        println!("   shim `{shim}` up on ens192");
        let host1_side: Vec<Node> = nodes
            .iter()
            .filter(|n| host1_own(n) || on_host1(n))
            .map(|n| Node {
                label: n.label.clone(),
                ns: n.ns.clone(),
                ip: n.ip,
            })
            .collect();
        all_ok &= matrix(&host1_side, |s, d| {
            let shim = host1_own(s) || host1_own(d);
            (true, if shim { "shim" } else { "L2" })
        })
        .await?;

        println!("\n4. Teardown: disconnect (the addresses go back to the shared pool), delete");
        for (net, c) in [(&lan1, "c1"), (&lan2, "c2"), (&lan2, "c3"), (&lan1, "c4")] {
            net.disconnect(c, "eth0").await?;
        }
        let left = s2.addresses_by_host("mac_net1").await?;
        println!(
            "   leases left in etcd: {}",
            if left.is_empty() { "none" } else { "!! some" }
        );
        all_ok &= left.is_empty();
        nets1.delete("mac_net1").await?;
        let kept = s2.networks().await?.iter().any(|n| n.name() == "mac_net1");
        println!(
            "   mac_net1 deleted on host1: {}",
            if kept {
                format!(
                    "the definition stays for {}",
                    s2.members("mac_net1").await?.join(", ")
                )
            } else {
                "!! the definition went with it".to_string()
            }
        );
        all_ok &= kept;
        nets2.delete("mac_net1").await?;
        let gone = s1.networks().await?.is_empty();
        println!(
            "   mac_net1 deleted on host2, the last host: {}",
            if gone {
                "its definition is gone from etcd"
            } else {
                "!! its definition is still in etcd"
            }
        );
        all_ok &= gone;
        println!(
            "\n{}",
            if all_ok {
                "all results as the scenarios say"
            } else {
                "!! some results differ"
            }
        );
        Ok(all_ok)
    }
}

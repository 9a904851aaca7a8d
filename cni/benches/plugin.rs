//! The plugin as a runtime drives it, exec included, side by side with Debian's reference
//! plugins (macvlan + host-local from containernetworking-plugins, `/usr/lib/cni`) in the same
//! run, on the same kind of network (macvlan bridge on a veth, a /16, default route).
//!
//! `cargo bench -p underlay-cni --bench plugin [-- SIZES... | quick]` (root; default sizes
//! 0 1000 10000):
//! - start-up: `VERSION` exec of each binary (and of `/bin/true` for scale);
//! - ADD+DEL of one container, sequentially, with N leases already in the pool: reference
//!   macvlan + host-local, underlay on host-local's layout, underlay with `store: local`;
//! - 1,000 containers, 16 calls at a time: every ADD, then every DEL.
//!
//! Containers are anonymous namespaces held by this process (`CNI_NETNS=/proc/PID/fd/N`); the
//! parent is a veth in a namespace of this process's own: nothing outside survives the run.
//! Before each row it waits (at most 60 s, `UNDERLAY_BENCH_SETTLE_SECS`) for the machine to be
//! under 10% busy and prints the load it found.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PLUGIN: &str = env!("CARGO_BIN_EXE_underlay-cni");
const REFERENCE_DIR: &str = "/usr/lib/cni";
const SUBNET: &str = "10.100.0.0/16";
/// The first address the pool hands out (after the gateway .0.1).
const FIRST: u32 = u32::from_be_bytes([10, 100, 0, 2]);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Reference,
    UnderlayHostLocal,
    UnderlayLocal,
}

impl Kind {
    const ALL: [Kind; 3] = [
        Kind::Reference,
        Kind::UnderlayHostLocal,
        Kind::UnderlayLocal,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Reference => "macvlan + host-local (reference)",
            Kind::UnderlayHostLocal => "underlay, host-local layout",
            Kind::UnderlayLocal => "underlay, store: local",
        }
    }
}

/// One network under test: its config, binary and directories.
struct Net {
    kind: Kind,
    name: String,
    conf: Value,
    binary: PathBuf,
    cni_path: String,
    data_dir: PathBuf,
    state_dir: PathBuf,
}

impl Net {
    fn new(kind: Kind, work: &Path, tag: &str) -> Net {
        let name = format!("b{tag}");
        let data_dir = work.join(format!("{tag}-data"));
        let state_dir = work.join(format!("{tag}-state"));
        let ranges = json!([[{"subnet": SUBNET, "gateway": "10.100.0.1"}]]);
        let routes = json!([{"dst": "0.0.0.0/0"}]);
        let (conf, binary, cni_path) = match kind {
            Kind::Reference => (
                json!({"cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": "par0",
                       "mode": "bridge",
                       "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": ranges,
                                "routes": routes}}),
                PathBuf::from(REFERENCE_DIR).join("macvlan"),
                REFERENCE_DIR.to_string(),
            ),
            Kind::UnderlayHostLocal | Kind::UnderlayLocal => {
                let store = if kind == Kind::UnderlayLocal {
                    "local"
                } else {
                    "host-local"
                };
                (
                    json!({"cniVersion": "1.0.0", "name": name, "type": "underlay",
                           "master": "par0", "mode": "bridge", "stateDir": state_dir,
                           "ipam": {"type": "underlay-ipam", "store": store,
                                    "dataDir": data_dir, "ranges": ranges, "routes": routes}}),
                    work.join("bin/underlay"),
                    work.join("bin").to_string_lossy().into_owned(),
                )
            }
        };
        Net {
            kind,
            name,
            conf,
            binary,
            cni_path,
            data_dir,
            state_dir,
        }
    }

    /// Runs one command for `id` in `netns`; panics (with the plugin's answer) on failure.
    fn call(&self, command: &str, id: &str, netns: &str) {
        self.call_wrapped(command, id, netns, &[]);
    }

    /// [`Net::call`] under `wrap` (a profiler: `UNDERLAY_BENCH_WRAP`), if any.
    fn call_wrapped(&self, command: &str, id: &str, netns: &str, wrap: &[String]) {
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let mut child = cmd
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the plugin");
        let stdin = serde_json::to_vec(&self.conf).unwrap();
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        let out = child.wait_with_output().expect("wait for the plugin");
        assert!(
            out.status.success(),
            "{} {command} {id}: {}{}",
            self.kind.label(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Puts `n` leases into the pool, as `n` earlier containers would have (the network exists).
    fn fill(&self, n: usize) {
        if n == 0 {
            return;
        }
        match self.kind {
            // host-local's layout: one file per address, and the cursor after the last one.
            Kind::Reference | Kind::UnderlayHostLocal => {
                let dir = self.data_dir.join(&self.name);
                std::fs::create_dir_all(&dir).unwrap();
                for i in 0..n {
                    let addr = Ipv4Addr::from(FIRST + i as u32);
                    std::fs::write(dir.join(addr.to_string()), format!("fill-{i}\r\neth0"))
                        .unwrap();
                }
                let last = Ipv4Addr::from(FIRST + n as u32 - 1);
                std::fs::write(dir.join("last_reserved_ip.0"), last.to_string()).unwrap();
            }
            // underlay's journal: through the library, as the plugin writes it.
            Kind::UnderlayLocal => {
                use underlay::ipam::{Ipam, LocalStore, Owner, Request};
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let store = LocalStore::open(self.state_dir.join("ipam"))
                        .unwrap()
                        .durable(false);
                    let ipam = Ipam::open(Arc::new(store), &self.name).await.unwrap();
                    for i in 0..n {
                        let owner = Owner::new(format!("fill-{i}").as_str(), "eth0").unwrap();
                        ipam.allocate(&owner, &Request::any()).await.unwrap();
                    }
                });
            }
        }
    }
}

/// The benchmark's directory, removed on drop (also when a call fails).
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A namespace of this process's, kept open: the path a runtime would pass in CNI_NETNS.
struct Container {
    fd: OwnedFd,
}

impl Container {
    /// A new network namespace (the calling thread returns to `home`).
    fn new(home: &OwnedFd) -> Container {
        // SAFETY: plain syscalls on this thread; the fds are checked.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNET), 0, "unshare");
            let fd = libc::open(
                c"/proc/thread-self/ns/net".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            assert!(fd >= 0, "open the new namespace");
            assert_eq!(
                libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET),
                0,
                "setns home"
            );
            Container {
                fd: OwnedFd::from_raw_fd(fd),
            }
        }
    }

    fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }
}

/// `UNDERLAY_BENCH_ONLY=reference|host-local|local` runs only that plugin's rows.
fn selected(kind: Kind) -> bool {
    match std::env::var("UNDERLAY_BENCH_ONLY").as_deref() {
        Ok("reference") => kind == Kind::Reference,
        Ok("host-local") => kind == Kind::UnderlayHostLocal,
        Ok("local") => kind == Kind::UnderlayLocal,
        _ => true,
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// How busy the machine was over 250 ms (0-100%).
fn busy_percent() -> u64 {
    fn sample() -> (u64, u64) {
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
    let (b0, i0) = sample();
    std::thread::sleep(Duration::from_millis(250));
    let (b1, i1) = sample();
    let (busy, idle) = (b1 - b0, i1 - i0);
    busy * 100 / (busy + idle).max(1)
}

/// Waits (at most 60 s, or `UNDERLAY_BENCH_SETTLE_SECS`) for the machine to be under 10% busy;
/// returns the load it ran at.
fn settle() -> String {
    let secs: u64 = std::env::var("UNDERLAY_BENCH_SETTLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut last = 100;
    for _ in 0..secs * 4 {
        last = busy_percent();
        if last < 10 {
            break;
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = load.split_whitespace().next().unwrap_or("?").to_string();
    format!("busy {last}%, load {load1}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Start-up cost: the median of `n` VERSION calls (exec, answer, exit).
fn startup(binary: &Path, n: usize) -> f64 {
    let mut t = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start");
        // /bin/true does not read it.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"cniVersion":"1.0.0"}"#);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{} VERSION", binary.display());
        t.push(ms(start.elapsed()));
    }
    median(t)
}

/// `rounds` ADD+DEL of one container on each network, the networks taking turns within each
/// round (so a load that comes and goes weighs on each alike); (ADD, DEL) medians in ms per
/// network. With `UNDERLAY_BENCH_WRAP` (e.g. `perf record -g -o /tmp/p.data --`), every call
/// runs under it: for profiling, not for the numbers.
fn add_del(nets: &[Net], ct: &Container, rounds: usize) -> Vec<(f64, f64)> {
    let wrap: Vec<String> = std::env::var("UNDERLAY_BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut adds = vec![Vec::new(); nets.len()];
    let mut dels = vec![Vec::new(); nets.len()];
    for r in 0..rounds {
        let id = format!("bench-{r}");
        for (i, net) in nets.iter().enumerate() {
            let t = Instant::now();
            net.call_wrapped("ADD", &id, &ct.path(), &wrap);
            adds[i].push(ms(t.elapsed()));
            let t = Instant::now();
            net.call_wrapped("DEL", &id, &ct.path(), &wrap);
            dels[i].push(ms(t.elapsed()));
        }
    }
    adds.into_iter()
        .zip(dels)
        .map(|(a, d)| (median(a), median(d)))
        .collect()
}

/// Every container's ADD, then every DEL, `parallel` calls at a time; wall times in s.
fn many(net: &Arc<Net>, cts: &Arc<Vec<Container>>, parallel: usize) -> (f64, f64) {
    let phase = |command: &'static str| {
        let next = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let workers: Vec<_> = (0..parallel)
            .map(|_| {
                let (net, cts, next) = (net.clone(), cts.clone(), next.clone());
                std::thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(ct) = cts.get(i) else { break };
                    net.call(command, &format!("many-{i}"), &ct.path());
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker failed");
        }
        t.elapsed().as_secs_f64()
    };
    let add = phase("ADD");
    let del = phase("DEL");
    (add, del)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the plugin benchmark needs root (namespaces, links)");
        return;
    }
    assert!(
        Path::new(REFERENCE_DIR).join("macvlan").exists(),
        "the reference plugins are missing: apt-get install containernetworking-plugins"
    );
    let quick = args.iter().any(|a| a == "quick");
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = if quick {
            vec![0, 1000]
        } else {
            vec![0, 1000, 10000]
        };
    }
    let many_n = match std::env::var("UNDERLAY_BENCH_MANY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None if quick => 200,
        None => 1000,
    };

    // This process's own namespace holds the parent; the plugins run there too.
    // SAFETY: unshare on the main thread, before any other thread exists.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
    // SAFETY: open of a constant path; checked.
    let home = unsafe {
        let fd = libc::open(
            c"/proc/thread-self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        assert!(fd >= 0);
        OwnedFd::from_raw_fd(fd)
    };
    ip(&["link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "par0", "type", "veth", "peer", "name", "wire0",
    ]);
    ip(&["link", "set", "par0", "up"]);
    ip(&["link", "set", "wire0", "up"]);

    let base = std::env::var_os("UNDERLAY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = WorkDir(base.join(format!("underlay-cni-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&work.0);
    std::fs::create_dir_all(&work.0).unwrap();
    let status = Command::new(PLUGIN)
        .arg("install")
        .arg(work.0.join("bin"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "underlay-cni install");

    println!(
        "# underlay CNI plugin vs macvlan + host-local ({})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("\n## Start-up: VERSION exec, median of 200 (ms)\n");
    println!("| binary | ms |\n|---|---|");
    for (what, bin) in [
        ("/bin/true (exec alone)", PathBuf::from("/bin/true")),
        ("underlay", work.0.join("bin/underlay")),
        (
            "macvlan (reference)",
            PathBuf::from(REFERENCE_DIR).join("macvlan"),
        ),
        (
            "host-local (reference)",
            PathBuf::from(REFERENCE_DIR).join("host-local"),
        ),
    ] {
        settle();
        println!("| {what} | {:.2} |", startup(&bin, 200));
    }

    println!(
        "\n## ADD+DEL of one container with N leases in the pool, median (ms); the plugins take \
         turns in each round\n"
    );
    println!("| N | plugin | ADD | DEL | ADD+DEL | load before |\n|---|---|---|---|---|---|");
    let ct = Container::new(&home);
    for &n in &sizes {
        let rounds = if n >= 10000 { 15 } else { 31 };
        let nets: Vec<Net> = Kind::ALL
            .into_iter()
            .enumerate()
            .filter(|(_, kind)| selected(*kind))
            .map(|(k, kind)| Net::new(kind, &work.0, &format!("s{n}k{k}")))
            .collect();
        for net in &nets {
            // Creates the network (and adopts nothing), then the earlier containers' leases.
            net.call("ADD", "warm", &ct.path());
            net.call("DEL", "warm", &ct.path());
            net.fill(n);
        }
        let load = settle();
        for (net, (add, del)) in nets.iter().zip(add_del(&nets, &ct, rounds)) {
            println!(
                "| {n} | {} | {add:.2} | {del:.2} | {:.2} | {load} |",
                net.kind.label(),
                add + del
            );
            let _ = std::fs::remove_dir_all(&net.data_dir);
            let _ = std::fs::remove_dir_all(&net.state_dir);
        }
    }

    println!("\n## {many_n} containers, 16 calls at a time: every ADD, then every DEL\n");
    println!(
        "| plugin | ADD wall (s) | ADDs/s | DEL wall (s) | DELs/s | load before |\n|---|---|---|---|---|---|"
    );
    let cts: Arc<Vec<Container>> = Arc::new((0..many_n).map(|_| Container::new(&home)).collect());
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        if !selected(kind) {
            continue;
        }
        let net = Arc::new(Net::new(kind, &work.0, &format!("many{k}")));
        let load = settle();
        let (add, del) = many(&net, &cts, 16);
        println!(
            "| {} | {add:.2} | {:.0} | {del:.2} | {:.0} | {load} |",
            kind.label(),
            many_n as f64 / add,
            many_n as f64 / del
        );
    }
}

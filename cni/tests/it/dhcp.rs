//! DHCP networks (`"ipam": {"type": "dhcp"}`) through the plugin, exec'd as libcni does:
//! against Debian's dnsmasq in a wire namespace (`--port=0`, its lease file in a temporary
//! directory: the oracle, with `ip -j addr` in the container), and the `dhcp-renewer` daemon
//! against the core tests' small DHCP server (lease times of seconds). The wire namespace holds
//! the far end of the host's veth parent, so the server never sees the machine's own network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{privileged, Call, Host, Ns, TempDir, TestNs, BIN};
use crate::dhcp_server::{Plan, TestServer};

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// A host namespace whose parent `par0` is wired to `wire0` in a namespace of its own.
fn host_and_wire(tag: &str) -> (Host, Ns) {
    let host = Host::new(tag);
    let wire = Ns::new(&format!("{tag}w"));
    host.ns.ip(&["link", "set", "wire0", "netns", &wire.name]);
    wire.ip(&["link", "set", "wire0", "up"]);
    (host, wire)
}

/// A DHCP network's config on `host`'s parent.
fn dhcp_config(host: &Host, dir: &TempDir, name: &str, version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "type": "underlay",
        "master": host.parent,
        "stateDir": dir.path("state"),
        "ipam": { "type": "dhcp", "tries": 3, "waitMs": 300 },
    })
}

/// `underlay dhcp-renewer` on `dir`'s state, in the host's namespace (ticks of at most 1 s),
/// its log in `log`.
fn start_renewer(host: &Host, dir: &TempDir, log: &Path) -> Child {
    Command::new("nsenter")
        .arg(format!("--net={}", host.ns.path()))
        .args([
            BIN,
            "dhcp-renewer",
            "--state-dir",
            &dir.path("state"),
            "--max-sleep",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start the renewer")
}

/// One line of dnsmasq's lease file: (MAC, IP, host name).
type DnsmasqLease = (String, String, String);

/// dnsmasq serving 10.81.0.10-250/24 on `wire0` (router .1, DNS server .53, domain lan.test).
struct Dnsmasq {
    child: Child,
    leasefile: PathBuf,
}

impl Dnsmasq {
    fn start(wire: &Ns, dir: &Path) -> Dnsmasq {
        let works = Command::new("dnsmasq")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            works,
            "dnsmasq is not installed: the DHCP tests need Debian's dnsmasq \
             (`apt-get install --no-install-recommends dnsmasq-base`; `cargo xtask cni-test` installs it)"
        );
        wire.ip(&["addr", "add", "10.81.0.1/24", "dev", "wire0"]);
        std::fs::create_dir_all(dir).unwrap();
        let leasefile = dir.join("dnsmasq.leases");
        let pidfile = dir.join("dnsmasq.pid");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &wire.name, "dnsmasq"])
            .args([
                "--keep-in-foreground",
                "--port=0",
                "--conf-file=/dev/null",
                "--interface=wire0",
                "--bind-interfaces",
                "--dhcp-range=10.81.0.10,10.81.0.250,255.255.255.0,2m",
                "--dhcp-option=option:router,10.81.0.1",
                "--dhcp-option=option:dns-server,10.81.0.53",
                "--dhcp-option=option:domain-name,lan.test",
                "--dhcp-authoritative",
                "--no-ping",
                "--user=root",
                "--group=root",
            ])
            .arg(format!("--dhcp-leasefile={}", leasefile.display()))
            .arg(format!("--pid-file={}", pidfile.display()))
            .arg(format!(
                "--log-facility={}",
                dir.join("dnsmasq.log").display()
            ))
            .arg("--log-dhcp")
            .stdin(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        for _ in 0..100 {
            if pidfile.exists() {
                return Dnsmasq { child, leasefile };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "dnsmasq did not start: {}",
            std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default()
        );
    }

    fn leases(&self) -> Vec<DnsmasqLease> {
        let text = std::fs::read_to_string(&self.leasefile).unwrap_or_default();
        let mut v: Vec<DnsmasqLease> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 5).then(|| (f[1].to_string(), f[2].to_string(), f[3].to_string()))
            })
            .collect();
        v.sort();
        v
    }

    /// The leases once `done` holds for them (dnsmasq writes its file after handling a
    /// message), 3 s at most.
    fn leases_when(&self, done: impl Fn(&[DnsmasqLease]) -> bool) -> Vec<DnsmasqLease> {
        for _ in 0..60 {
            let l = self.leases();
            if done(&l) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.leases()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add(host: &Host, conf: &Value, id: &str, ns: &Ns, args: &str) -> crate::common::Outcome {
    Call::new("ADD")
        .container(id, &ns.path())
        .args(args)
        .stdin(conf.clone())
        .run(host)
}

fn del(host: &Host, conf: &Value, id: &str, ns: &Ns) {
    let out = Call::new("DEL")
        .container(id, &ns.path())
        .stdin(conf.clone())
        .run(host);
    assert_eq!(out.code, 0, "DEL {id}: {out:?}");
}

/// The endpoint records under the state directory (every file of `endpoints/` but locks and
/// the store's hidden directories of retired files).
fn endpoint_records(dir: &TempDir) -> Vec<String> {
    fn walk(p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".lock") {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.0.join("state").join("endpoints"), &mut out);
    out
}

/// ADD gives dnsmasq's address (its lease file and `ip -j addr` agree), the result has the
/// server's router, DNS server and domain, in 1.0.0's and 0.4.0's shapes; CHECK passes; the
/// host name comes from K8S_POD_NAME; DEL releases the lease and the same container gets the
/// same address back; GC releases stale ones.
#[test]
fn dhcp_network_against_dnsmasq() {
    root_or_skip!("dhcp_network_against_dnsmasq");
    let (host, wire) = host_and_wire("cdh");
    let dir = TempDir::new("cdh");
    let server = Dnsmasq::start(&wire, &dir.0.join("dnsmasq"));
    let conf = dhcp_config(&host, &dir, "dhnet", "1.0.0");
    let c1 = host.container("c1");

    let out = add(
        &host,
        &conf,
        "dhctr1",
        &c1,
        "IgnoreUnknown=1;K8S_POD_NAME=web-1",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let r = &out.json;
    let address = r["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(
        address.starts_with("10.81.0.") && address.ends_with("/24"),
        "{r}"
    );
    assert_eq!(r["ips"][0]["gateway"], "10.81.0.1");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert!(
        r["ips"][0].get("version").is_none(),
        "1.0.0 has no version: {r}"
    );
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.81.0.1"}])
    );
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.81.0.53"], "domain": "lan.test"})
    );
    assert_eq!(r["cniVersion"], "1.0.0");
    let mac = c1.link_mac("eth0").expect("eth0 in the container");
    assert_eq!(r["interfaces"][0]["mac"], mac.as_str());
    assert_eq!(r["interfaces"][0]["sandbox"], c1.path().as_str());
    // The oracles: the kernel and dnsmasq.
    assert_eq!(c1.addrs("eth0"), [address.as_str()]);
    assert!(c1.has_default_via("10.81.0.1"), "{:?}", c1.routes("-4"));
    let ip = address.split('/').next().unwrap().to_string();
    let leases = server.leases_when(|l| !l.is_empty());
    assert_eq!(leases, [(mac.clone(), ip.clone(), "web-1".to_string())]);
    assert_eq!(
        endpoint_records(&dir).len(),
        1,
        "{:?}",
        endpoint_records(&dir)
    );

    // CHECK against the result.
    let mut check = conf.clone();
    check["prevResult"] = out.json.clone();
    let ok = Call::new("CHECK")
        .container("dhctr1", &c1.path())
        .stdin(check.clone())
        .run(&host);
    assert_eq!(ok.code, 0, "{ok:?}");
    // A result naming another address fails CHECK.
    let mut wrong = check.clone();
    wrong["prevResult"]["ips"][0]["address"] = "10.81.0.251/24".into();
    let bad = Call::new("CHECK")
        .container("dhctr1", &c1.path())
        .stdin(wrong)
        .run(&host);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(
        bad.json["msg"].as_str().unwrap().contains("10.81.0.251"),
        "{bad:?}"
    );

    // DEL releases the lease on the server; the same container gets the same address back.
    del(&host, &conf, "dhctr1", &c1);
    assert_eq!(c1.links(), ["lo"]);
    assert!(
        endpoint_records(&dir).is_empty(),
        "{:?}",
        endpoint_records(&dir)
    );
    let leases = server.leases_when(|l| l.is_empty());
    assert!(leases.is_empty(), "DEL left {leases:?}");
    let again = add(&host, &conf, "dhctr1", &c1, "");
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json["ips"][0]["address"], address.as_str());
    assert_eq!(c1.addrs("eth0"), [address.as_str()]);

    // 0.4.0: the result's shape of that version.
    let old = dhcp_config(&host, &dir, "dhnet", "0.4.0");
    let c2 = host.container("c2");
    let out2 = add(&host, &old, "dhctr2", &c2, "");
    assert_eq!(out2.code, 0, "{out2:?}");
    assert_eq!(out2.json["cniVersion"], "0.4.0");
    assert_eq!(out2.json["ips"][0]["version"], "4");
    let address2 = out2.json["ips"][0]["address"].as_str().unwrap().to_string();
    assert_ne!(address2, address);
    assert_eq!(c2.addrs("eth0"), [address2.as_str()]);
    let leases = server.leases_when(|l| l.len() == 2);
    assert_eq!(leases.len(), 2, "{leases:?}");

    // GC (1.1.0) keeps dhctr1 and releases dhctr2: link, record, and the server's lease.
    let mut gc = dhcp_config(&host, &dir, "dhnet", "1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "dhctr1", "ifname": "eth0"}]);
    let out = Call::new("GC").stdin(gc).run(&host);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c2.links(), ["lo"]);
    assert_eq!(c1.addrs("eth0"), [address.as_str()]);
    let ip2 = address2.split('/').next().unwrap().to_string();
    let leases = server.leases_when(|l| l.len() == 1);
    assert_eq!(leases.len(), 1, "GC left {leases:?}");
    assert_eq!(
        leases[0].1, ip,
        "GC released the wrong lease: {leases:?} ({ip2} was stale)"
    );

    del(&host, &conf, "dhctr1", &c1);
    assert!(server.leases_when(|l| l.is_empty()).is_empty());
    assert!(
        endpoint_records(&dir).is_empty(),
        "{:?}",
        endpoint_records(&dir)
    );
}

/// No server answering: error 11 naming the wait, nothing left (link, record). Configs that
/// cannot go with DHCP: error 7, nothing made. underlay-ipam refuses DHCP.
#[test]
fn dhcp_refusals_and_no_server() {
    root_or_skip!("dhcp_refusals_and_no_server");
    let (host, _wire) = host_and_wire("cdn");
    let dir = TempDir::new("cdn");
    let c = host.container("c");
    let mut conf = dhcp_config(&host, &dir, "dhnone", "1.0.0");
    conf["ipam"]["tries"] = 2.into();
    conf["ipam"]["waitMs"] = 100.into();
    let out = add(&host, &conf, "dhnone1", &c, "");
    assert_eq!(out.json["code"], 11, "{out:?}");
    assert!(
        out.json["details"]
            .as_str()
            .unwrap()
            .contains("no DHCP server answered"),
        "{out:?}"
    );
    assert_eq!(c.links(), ["lo"]);
    assert!(
        endpoint_records(&dir).is_empty(),
        "{:?}",
        endpoint_records(&dir)
    );
    // Its DEL (a runtime cleans up after a failed ADD) succeeds.
    del(&host, &conf, "dhnone1", &c);

    let bad = |f: &dyn Fn(&mut Value), args: &str, what: &str| {
        let mut b = dhcp_config(&host, &dir, "dhbad", "1.0.0");
        f(&mut b);
        let out = add(&host, &b, "dhbad1", &c, args);
        assert_eq!(out.json["code"], 7, "{what}: {out:?}");
        let all = format!("{} {}", out.json["msg"], out.json["details"]);
        assert!(all.contains(what), "{what}: {all}");
        assert_eq!(c.links(), ["lo"], "{what}");
    };
    bad(&|_| {}, "IP=10.81.0.5", "cannot be given");
    bad(
        &|c| c["runtimeConfig"] = json!({"ips": ["10.81.0.5/24"]}),
        "",
        "cannot be given",
    );
    bad(
        &|c| c["ipam"]["ranges"] = json!([[{"subnet": "10.81.0.0/24"}]]),
        "",
        "`ranges`",
    );
    bad(
        &|c| c["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]),
        "",
        "`routes`",
    );
    bad(&|c| c["ipam"]["store"] = "etcd".into(), "", "`store`");
    bad(
        &|c| c["ipam"]["request"] = json!([{"option": "classless-static-routes"}]),
        "",
        "classless-static-routes",
    );
    bad(
        &|c| c["ipam"]["request"] = json!([{"skipDefault": true, "option": "routers"}]),
        "",
        "skipDefault",
    );
    bad(
        &|c| c["ipam"]["provide"] = json!([{"option": "dhcp-client-identifier", "value": "x"}]),
        "",
        "client identifier",
    );
    bad(&|c| c["ipam"]["waitMs"] = 1.into(), "", "waitMs");
    bad(&|c| c["hostAccess"] = true.into(), "", "hostAccess");
    bad(
        &|c| c["conflictDetection"] = true.into(),
        "",
        "conflictDetection",
    );
    assert!(
        endpoint_records(&dir).is_empty(),
        "{:?}",
        endpoint_records(&dir)
    );

    // underlay-ipam (under the reference macvlan) cannot serve DHCP.
    // (Installed with the renewer's systemd unit, which names the installed binary.)
    let bin = TempDir::new("cdnbin");
    let install = Command::new(BIN)
        .args([
            "install",
            bin.0.to_str().unwrap(),
            "--systemd-unit",
            &bin.path("units"),
        ])
        .output()
        .unwrap();
    assert!(install.status.success(), "{install:?}");
    let unit = std::fs::read_to_string(bin.0.join("units/underlay-dhcp-renewer.service")).unwrap();
    let exec = format!(
        "\nExecStart={} dhcp-renewer --state-dir /var/lib/underlay\n",
        bin.0.join("underlay").display()
    );
    assert!(unit.contains(&exec), "{unit}");
    assert!(!unit.contains("@BIN@"), "{unit}");
    let mut ipam_only = dhcp_config(&host, &dir, "dhipam", "1.0.0");
    ipam_only["ipam"]["type"] = "underlay-ipam".into();
    ipam_only["ipam"]["provide"] = json!([{"option": "host-name", "value": "x"}]);
    for conf in [
        ipam_only.clone(),
        dhcp_config(&host, &dir, "dhipam", "1.0.0"),
    ] {
        let out = Call::new("ADD")
            .container("dhipam1", "/proc/self/ns/net")
            .stdin(conf)
            .binary(&bin.0.join("underlay-ipam"))
            .run_here();
        assert_eq!(out.json["code"], 7, "{out:?}");
        assert!(
            out.json["msg"]
                .as_str()
                .unwrap()
                .contains("underlay-ipam cannot get addresses from DHCP"),
            "{out:?}"
        );
    }
}

/// `underlay dhcp-renewer` renews at T1 (the server sees unicast REQUESTs from the address)
/// and the endpoint keeps its address past the first lease time; with the server gone the
/// address (and default route) is removed at expiry; SIGTERM ends the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_renewer_daemon_renews_and_expires() {
    root_or_skip!("dhcp_renewer_daemon_renews_and_expires");
    let (host, wire) = host_and_wire("cdr");
    let dir = TempDir::new("cdr");
    let lease_secs = 4;
    let server = TestServer::start(
        &TestNs::of(&wire).await,
        "wire0",
        Plan {
            addr: "10.82.0.1".parse().unwrap(),
            first: "10.82.0.100".parse().unwrap(),
            lease_secs,
            t1: 1,
            t2: 3,
        },
    )
    .await;
    let mut conf = dhcp_config(&host, &dir, "dhren", "1.0.0");
    conf["ipam"]["tries"] = 1.into();
    conf["ipam"]["waitMs"] = 300.into();
    let c = host.container("c");
    let (out, host, c) = tokio::task::spawn_blocking({
        let conf = conf.clone();
        move || (add(&host, &conf, "dhren1", &c, ""), host, c)
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let address = out.json["ips"][0]["address"].as_str().unwrap().to_string();
    assert_eq!(address, "10.82.0.100/24");
    let added = Instant::now();
    server.clear_log();

    let log = dir.0.join("renewer.log");
    let mut daemon = start_renewer(&host, &dir, &log);
    // Past the first lease time (and then some): renewed, still held.
    tokio::time::sleep(Duration::from_secs(u64::from(lease_secs) + 2)).await;
    let renewals: Vec<_> = server
        .log()
        .into_iter()
        .filter(|s| s.kind == dhcproto::v4::MessageType::Request && s.unicast)
        .collect();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        renewals.len() >= 2,
        "no renewals at T1: {:?}\n{}",
        server.log(),
        text()
    );
    assert!(
        renewals
            .iter()
            .all(|s| s.ciaddr.to_string() == "10.82.0.100"),
        "{renewals:?}"
    );
    assert!(added.elapsed() > Duration::from_secs(u64::from(lease_secs)));
    assert_eq!(c.addrs("eth0"), [address.as_str()], "{}", text());
    assert!(c.has_default_via("10.82.0.1"));

    // The server goes: the address is removed at expiry, not kept past it.
    drop(server);
    let gone = Instant::now();
    let mut removed = false;
    while gone.elapsed() < Duration::from_secs(u64::from(lease_secs) + 6) {
        if c.addrs("eth0").is_empty() {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        removed,
        "the address outlived its lease: {:?}\n{}",
        c.addrs("eth0"),
        text()
    );
    assert!(
        gone.elapsed() >= Duration::from_secs(1),
        "removed before expiry"
    );
    assert!(!c.has_default_via("10.82.0.1"), "{:?}", c.routes("-4"));
    assert_eq!(c.links(), ["eth0", "lo"], "the link stays");

    // SIGTERM ends it cleanly.
    // SAFETY: kill(2) on the child's own pid.
    assert_eq!(unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) }, 0);
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = daemon.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!("the renewer did not stop on SIGTERM:\n{}", text());
    };
    assert!(status.success(), "{status:?}\n{}", text());
    let text = text();
    assert!(
        text.contains("lease of 10.82.0.100/24 from 10.82.0.1 held"),
        "{text}"
    );
    assert!(text.contains("DHCP lease lost"), "{text}");
    assert!(text.trim_end().ends_with("stopped"), "{text}");

    let (host, c) = tokio::task::spawn_blocking(move || {
        del(&host, &conf, "dhren1", &c);
        (host, c)
    })
    .await
    .unwrap();
    assert_eq!(c.links(), ["lo"]);
    drop((host, c, wire));
}

/// The renewer against ADD/DEL churn: 3 processes at a time ADD a container, hold it past T1
/// (the renewer renews it under the endpoint's lock), check its address with `ip`, DEL it.
/// The renewer logs no failure (an endpoint DEL'd during its tick is not one), renews, and
/// stops on SIGTERM; in the end no link, no record and no lease on the server is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_renewer_races_add_and_del() {
    root_or_skip!("dhcp_renewer_races_add_and_del");
    let (host, wire) = host_and_wire("cdc");
    let dir = TempDir::new("cdc");
    let server = TestServer::start(
        &TestNs::of(&wire).await,
        "wire0",
        Plan {
            addr: "10.83.0.1".parse().unwrap(),
            first: "10.83.0.100".parse().unwrap(),
            // T1 at 1 s, with room for a busy machine: a held endpoint sees a tick (every
            // second at most) past its T1 well before T2 or expiry.
            lease_secs: 6,
            t1: 1,
            t2: 4,
        },
    )
    .await;
    let mut conf = dhcp_config(&host, &dir, "dhchurn", "1.0.0");
    conf["ipam"]["tries"] = 2.into();
    conf["ipam"]["waitMs"] = 300.into();
    let log = dir.0.join("renewer.log");
    let mut daemon = start_renewer(&host, &dir, &log);
    let host = std::sync::Arc::new(host);
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (host, conf) = (host.clone(), conf.clone());
            tokio::task::spawn_blocking(move || {
                let ns = host.container(&format!("w{w}"));
                for round in 0..5 {
                    let id = format!("churn{w}r{round}");
                    let out = add(&host, &conf, &id, &ns, "");
                    assert_eq!(out.code, 0, "{id}: {out:?}");
                    let address = out.json["ips"][0]["address"].as_str().unwrap().to_string();
                    assert_eq!(ns.addrs("eth0"), [address.as_str()], "{id}");
                    // Past T1 and a tick (a renewal) at every other round; the DEL races the
                    // tick.
                    std::thread::sleep(Duration::from_millis(if round % 2 == 0 {
                        2500
                    } else {
                        300
                    }));
                    assert_eq!(
                        ns.addrs("eth0"),
                        [address.as_str()],
                        "{id} kept its address"
                    );
                    del(&host, &conf, &id, &ns);
                    assert_eq!(ns.links(), ["lo"], "{id}");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    // SAFETY: kill(2) on the child's own pid.
    assert_eq!(unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) }, 0);
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = daemon.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let Some(status) = status else {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!("the renewer did not stop on SIGTERM:\n{text}");
    };
    assert!(status.success(), "{status:?}\n{text}");
    assert!(
        text.contains(" held"),
        "no renewal during the churn:\n{text}"
    );
    assert!(
        !text.contains("cannot renew") && !text.contains("lost"),
        "the renewer failed during the churn:\n{text}"
    );
    let renewals = server
        .log()
        .into_iter()
        .filter(|s| s.kind == dhcproto::v4::MessageType::Request && s.unicast)
        .count();
    assert!(renewals >= 3, "{renewals} renewals");
    assert!(
        endpoint_records(&dir).is_empty(),
        "{:?}",
        endpoint_records(&dir)
    );
    assert!(
        server.leased().is_empty(),
        "leases left on the server: {:?}",
        server.leased()
    );
    drop(wire);
}

//! CNI host-local's on-disk layout: files written the way host-local writes them are read, kept
//! and extended; files underlay writes are the ones host-local would read.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use underlay::ipam::{HostLocalStore, Ipam, Request};
use underlay::ErrorKind;

use super::{check, ip, net, owner, TempDir};

/// Writes a lease file exactly as host-local's disk backend does (no trailing newline).
fn host_local_reserve(dir: &Path, addr: &str, id: &str, ifname: &str, range: usize) {
    std::fs::write(dir.join(addr), format!("{id}\r\n{ifname}")).unwrap();
    std::fs::write(dir.join(format!("last_reserved_ip.{range}")), addr).unwrap();
}

/// host-local's GetByID: every file whose trimmed content is `id\r\nifname`.
fn host_local_get_by_id(dir: &Path, id: &str, ifname: &str) -> Vec<String> {
    let want = format!("{id}\r\n{ifname}");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read_to_string(e.path()).unwrap_or_default();
        if data.trim() == want {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn round_trip_with_host_local_files() {
    let tmp = TempDir::new("hostlocal");
    let data_dir = tmp.path().join("networks");
    let dir = data_dir.join("mynet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lock"), "").unwrap();
    // What host-local left: two containers, dual-stack (range set 0 = v4, 1 = v6).
    host_local_reserve(&dir, "10.22.0.2", "c1", "eth0", 0);
    host_local_reserve(&dir, "fd00:22::2", "c1", "eth0", 1);
    host_local_reserve(&dir, "10.22.0.3", "c2", "net1", 0);
    host_local_reserve(&dir, "fd00:22::3", "c2", "net1", 1);

    let store = Arc::new(HostLocalStore::open(&data_dir).unwrap());
    let n = net("mynet", &["10.22.0.0/24", "fd00:22::/64"]);
    let ipam = Ipam::open_or_create(store.clone(), n.clone())
        .await
        .unwrap();
    let c1 = ipam.lookup(&owner("c1")).await.unwrap().unwrap();
    assert_eq!(c1.ips(), vec![ip("10.22.0.2"), ip("fd00:22::2")]);
    let c2 = underlay::ipam::Owner::new("c2", "net1").unwrap();
    assert_eq!(
        ipam.lookup(&c2).await.unwrap().unwrap().ips()[0],
        ip("10.22.0.3")
    );

    // underlay continues after host-local's last reserved address and writes its format.
    let c3 = ipam.allocate(&owner("c3"), &Request::any()).await.unwrap();
    assert_eq!(c3.ips(), vec![ip("10.22.0.4"), ip("fd00:22::4")]);
    assert_eq!(std::fs::read(dir.join("10.22.0.4")).unwrap(), b"c3\r\neth0");
    assert_eq!(
        std::fs::read(dir.join("last_reserved_ip.0")).unwrap(),
        b"10.22.0.4"
    );
    assert_eq!(
        std::fs::read(dir.join("last_reserved_ip.1")).unwrap(),
        b"fd00:22::4"
    );
    assert_eq!(
        host_local_get_by_id(&dir, "c3", "eth0"),
        ["10.22.0.4", "fd00:22::4"]
    );

    // A release removes host-local's files.
    ipam.release(&owner("c1")).await.unwrap().unwrap();
    assert!(!dir.join("10.22.0.2").exists() && !dir.join("fd00:22::2").exists());

    // host-local writing beside a running underlay is seen at once.
    host_local_reserve(&dir, "10.22.0.5", "c9", "eth0", 0);
    host_local_reserve(&dir, "fd00:22::5", "c9", "eth0", 1);
    assert!(ipam.lookup(&owner("c9")).await.unwrap().is_some());
    let c10 = ipam.allocate(&owner("c10"), &Request::any()).await.unwrap();
    assert_eq!(c10.ips(), vec![ip("10.22.0.6"), ip("fd00:22::6")]);
    assert_eq!(check(&ipam).await.len(), 8);

    // A fresh store object over the same directory reads back the same leases.
    let again = Ipam::open(Arc::new(HostLocalStore::open(&data_dir).unwrap()), "mynet")
        .await
        .unwrap();
    assert_eq!(again.list().await.unwrap(), ipam.list().await.unwrap());

    // Files older host-local versions wrote (container id only) are kept and reported as
    // foreign leases, not guessed, and block only their address.
    std::fs::write(dir.join("10.22.0.77"), "oldcontainer").unwrap();
    assert_eq!(again.list().await.unwrap().len(), 4);
    let foreign = again.foreign_leases().await.unwrap();
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert_eq!(foreign[0].addr, ip("10.22.0.77"));
    assert!(
        foreign[0].reason.contains("no interface name"),
        "{foreign:?}"
    );
    let e = again
        .allocate(&owner("c11"), &Request::ip(ip("10.22.0.77")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    std::fs::remove_file(dir.join("10.22.0.77")).unwrap();
    assert!(again.foreign_leases().await.unwrap().is_empty());
    assert_eq!(again.list().await.unwrap().len(), 4);
}

/// The real CNI host-local plugin (Debian's containernetworking-plugins), run as a runtime
/// runs it, on `data_dir`; its stdout (the result) or its error.
fn host_local(
    command: &str,
    data_dir: &Path,
    net: &str,
    ranges: &str,
    id: &str,
) -> Result<String, String> {
    let config = format!(
        r#"{{"cniVersion":"1.0.0","name":"{net}","type":"macvlan","ipam":{{"type":"host-local","dataDir":"{}","ranges":{ranges}}}}}"#,
        data_dir.display()
    );
    let mut child = std::process::Command::new(HOST_LOCAL)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/proc/self/ns/net")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run host-local");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

/// The reference plugin is needed: `cargo xtask cni-test` installs it; plain `cargo test` says
/// so loudly and fails rather than skip silently.
fn have_host_local(test: &str) -> bool {
    if Path::new(HOST_LOCAL).exists() {
        return true;
    }
    panic!(
        "{test}: needs CNI's host-local plugin at {HOST_LOCAL} (Debian: apt-get install \
         containernetworking-plugins; `cargo xtask cni-test` installs it)"
    );
}

/// Leases the real host-local wrote that underlay cannot take as its own (a container id
/// over 256 bytes; a lease in a subnet the network's definition leaves out, here the second
/// subnet of host-local's range set) are adopted as foreign leases: the network is created, opens and works; they are listed, never handed
/// out nor overwritten; once host-local releases them, their address is free again.
#[tokio::test]
async fn foreign_host_local_leases_block_only_their_address() {
    if !have_host_local("foreign_host_local_leases_block_only_their_address") {
        return;
    }
    let tmp = TempDir::new("hostlocal-foreign");
    let data_dir = tmp.path().join("networks");
    let long_id = "c".repeat(300);
    // One range set over two subnets: host-local hands out 10.26.0.2 and .3 (the first
    // range), then goes on into 10.26.1.0/24.
    let ranges = r#"[[{"subnet":"10.26.0.0/24","rangeStart":"10.26.0.2","rangeEnd":"10.26.0.3"},{"subnet":"10.26.1.0/24"}]]"#;
    host_local("ADD", &data_dir, "fl", ranges, &long_id).unwrap();
    host_local("ADD", &data_dir, "fl", ranges, "plain").unwrap();
    let second = host_local("ADD", &data_dir, "fl", ranges, "second").unwrap();
    assert!(
        second.contains("10.26.1."),
        "host-local went on into the second subnet: {second}"
    );
    let dir = data_dir.join("fl");
    assert_eq!(
        std::fs::read_to_string(dir.join("10.26.0.2"))
            .unwrap()
            .trim(),
        format!("{long_id}\r\neth0")
    );

    let store = Arc::new(HostLocalStore::open(&data_dir).unwrap());
    // A definition of the first subnet only: the lease in 10.26.1.0/24 lies outside it (with
    // the whole range set, `a_range_set_over_two_subnets_...`, it would be underlay's own).
    let n = net("fl", &["10.26.0.0/24"]);
    let ipam = Ipam::create(store.clone(), n.clone()).await.unwrap();
    let ipam = Ipam::open(store.clone(), "fl").await.unwrap_or(ipam);
    let foreign = ipam.foreign_leases().await.unwrap();
    let addrs: Vec<String> = foreign.iter().map(|f| f.addr.to_string()).collect();
    assert_eq!(addrs.len(), 2, "{foreign:?}");
    assert_eq!(addrs[0], "10.26.0.2", "{foreign:?}");
    assert!(addrs[1].starts_with("10.26.1."), "{foreign:?}");
    assert!(foreign[0].reason.contains("256"), "{foreign:?}");
    assert!(
        foreign[0].reason.len() < 400,
        "the reason is cut: {}",
        foreign[0].reason.len()
    );
    assert!(
        foreign[1].reason.contains("outside every pool"),
        "{foreign:?}"
    );
    assert!(foreign[0].location.ends_with("fl/10.26.0.2"), "{foreign:?}");
    // The representable lease is adopted.
    let leases = ipam.list().await.unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].owner.container_id(), "plain");

    // Never handed out: next-fit over the whole pool skips 10.26.0.2, a request for it is
    // refused naming the file.
    let e = ipam
        .allocate(&owner("want2"), &Request::ip(ip("10.26.0.2")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(
        e.to_string().contains("10.26.0.2") && e.to_string().contains("cannot"),
        "{e}"
    );
    let mut got = std::collections::HashSet::new();
    for i in 0..252 {
        match ipam
            .allocate(&owner(format!("u{i}")), &Request::any())
            .await
        {
            Ok(l) => assert!(got.insert(l.ips()[0]), "{l:?} twice"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
                break;
            }
        }
    }
    assert!(
        !got.contains(&ip("10.26.0.2")),
        "a foreign lease's address was handed out"
    );
    assert_eq!(
        got.len(),
        251,
        "every other address of the /24 (less gateway, plain's)"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("10.26.0.2"))
            .unwrap()
            .trim(),
        format!("{long_id}\r\neth0"),
        "host-local's file is untouched"
    );
    // Deleting the network is refused while foreign leases remain, naming host-local.
    let e = Ipam::delete(store.as_ref(), "fl").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");

    // host-local releases its own: the address becomes free for underlay.
    host_local("DEL", &data_dir, "fl", ranges, &long_id).unwrap();
    assert!(!dir.join("10.26.0.2").exists());
    assert_eq!(ipam.foreign_leases().await.unwrap().len(), 1);
    ipam.release(&owner("u0")).await.unwrap().unwrap();
    let l = ipam
        .allocate(&owner("want2"), &Request::ip(ip("10.26.0.2")))
        .await
        .unwrap();
    assert_eq!(l.ips(), vec![ip("10.26.0.2")]);
    // A fresh `Ipam` on the same directory sees the same.
    let again = Ipam::open(store.clone(), "fl").await.unwrap();
    assert_eq!(again.list().await.unwrap(), ipam.list().await.unwrap());
    assert_eq!(
        again.foreign_leases().await.unwrap(),
        ipam.foreign_leases().await.unwrap()
    );
}

/// The address and gateway of a host-local result.
fn host_local_ip(result: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(result).unwrap();
    (
        v["ips"][0]["address"].as_str().unwrap().to_string(),
        v["ips"][0]["gateway"].as_str().unwrap().to_string(),
    )
}

/// A host-local range set over two subnets, driven by the real host-local and by underlay in
/// turn on one dataDir: underlay adopts host-local's leases in both subnets as its own (no
/// foreign lease), both continue the other's `last_reserved_ip.0` through the first subnet
/// into the second and around, no address is handed out twice, and every address carries its
/// own subnet's prefix and gateway as host-local's result gives them.
#[tokio::test]
async fn a_range_set_over_two_subnets_is_shared_with_host_local() {
    if !have_host_local("a_range_set_over_two_subnets_is_shared_with_host_local") {
        return;
    }
    let tmp = TempDir::new("hostlocal-set");
    let data_dir = tmp.path().join("networks");
    let dir = data_dir.join("rs");
    // Usable: 10.28.0.3-.6 (range start .3), then 10.28.1.2-.6 (.1 the gateway).
    let ranges = r#"[[{"subnet":"10.28.0.0/29","rangeStart":"10.28.0.3"},{"subnet":"10.28.1.0/29","gateway":"10.28.1.6"}]]"#;
    let cursor = || std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap();
    // host-local first: three containers in the first subnet.
    let mut held: Vec<(String, String)> = Vec::new(); // (owner id, address/prefix)
    for id in ["h0", "h1", "h2"] {
        let (a, gw) = host_local_ip(&host_local("ADD", &data_dir, "rs", ranges, id).unwrap());
        assert_eq!(gw, "10.28.0.1", "{a}");
        held.push((id.into(), a));
    }
    let store = Arc::new(HostLocalStore::open(&data_dir).unwrap());
    let n = net(
        "rs",
        &["10.28.0.0/29 range=10.28.0.3-10.28.0.6 + 10.28.1.0/29 gateway=10.28.1.6"],
    );
    let ipam = Ipam::create(store.clone(), n).await.unwrap();
    assert!(ipam.foreign_leases().await.unwrap().is_empty());
    // Turn by turn: underlay, host-local, ...; each continues after the other's cursor.
    let want = [
        "10.28.0.6/29",
        "10.28.1.1/29",
        "10.28.1.2/29",
        "10.28.1.3/29",
        "10.28.1.4/29",
        "10.28.1.5/29",
    ];
    for (k, want) in want.iter().enumerate() {
        let (id, got) = if k % 2 == 0 {
            let id = format!("u{k}");
            let l = ipam.allocate(&owner(&id), &Request::any()).await.unwrap();
            let a = &l.addresses[0];
            let gw = if a.address.addr() < ip("10.28.1.0") {
                "10.28.0.1"
            } else {
                "10.28.1.6"
            };
            assert_eq!(a.gateway, Some(ip(gw)), "{l:?}");
            assert_eq!(a.pool, 0);
            (id, a.address.to_string())
        } else {
            let id = format!("hl{k}");
            let r = host_local("ADD", &data_dir, "rs", ranges, &id).unwrap();
            let (a, gw) = host_local_ip(&r);
            let g = if a.starts_with("10.28.0.") {
                "10.28.0.1"
            } else {
                "10.28.1.6"
            };
            assert_eq!(gw, g, "{r}");
            (id, a)
        };
        assert_eq!(&got, want, "turn {k} ({id})");
        assert_eq!(cursor(), got.split('/').next().unwrap(), "turn {k}");
        held.push((id, got));
    }
    // Full: both say so.
    let e = ipam
        .allocate(&owner("full"), &Request::any())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
    assert!(host_local("ADD", &data_dir, "rs", ranges, "full").is_err());
    // Every lease, host-local's in either subnet too, is underlay's own, with its prefix and
    // gateway; nothing twice.
    let again = Ipam::open(store.clone(), "rs").await.unwrap();
    assert!(again.foreign_leases().await.unwrap().is_empty());
    let map = check(&again).await;
    assert_eq!(map.len(), held.len());
    for (id, a) in &held {
        let l = again.lookup(&owner(id)).await.unwrap().unwrap();
        assert_eq!(&l.addresses[0].address.to_string(), a, "{id}");
        let want_gw = if a.starts_with("10.28.0.") {
            "10.28.0.1"
        } else {
            "10.28.1.6"
        };
        assert_eq!(l.addresses[0].gateway, Some(ip(want_gw)), "{id}");
    }
    // Releases in the first subnet: host-local's h0 (.3) and underlay's u0 (.6). Next-fit
    // goes on after the cursor (10.28.1.5), wraps around into the first subnet: .3 for
    // host-local's next, then .6 for underlay's, as host-local would.
    host_local("DEL", &data_dir, "rs", ranges, "h0").unwrap();
    again.release(&owner("u0")).await.unwrap().unwrap();
    let (a, _) = host_local_ip(&host_local("ADD", &data_dir, "rs", ranges, "h9").unwrap());
    assert_eq!(a, "10.28.0.3/29");
    let l = again.allocate(&owner("u9"), &Request::any()).await.unwrap();
    assert_eq!(l.addresses[0].address.to_string(), "10.28.0.6/29");
    assert_eq!(cursor(), "10.28.0.6");
    assert_eq!(
        host_local_get_by_id(&dir, "u9", "eth0"),
        vec!["10.28.0.6".to_string()]
    );
    // host-local releases what underlay allocated, and underlay what host-local did.
    host_local("DEL", &data_dir, "rs", ranges, "u2").unwrap();
    again.release(&owner("h9")).await.unwrap().unwrap();
    assert!(!dir.join("10.28.1.2").exists() && !dir.join("10.28.0.3").exists());
    assert_eq!(check(&again).await.len(), held.len() - 2);
}

const HL_CHILD: &str = "UNDERLAY_HOSTLOCAL_CHILD";

/// The child of `processes_and_host_local_churn_around_foreign_leases`: allocates `COUNT`
/// owners `PREFIX-i` on the host-local directory, checks right after each allocation that the
/// lease file holds its own owner (not host-local's), prints `@@ ack OWNER IP`, and releases
/// every even one (`@@ rel OWNER`).
#[test]
fn churn_child() {
    let Ok(dir) = std::env::var(HL_CHILD) else {
        return;
    };
    let prefix = std::env::var("PREFIX").unwrap();
    let count: usize = std::env::var("COUNT").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(HostLocalStore::open(&dir).unwrap());
        let ipam = Ipam::open(store, "churn").await.unwrap();
        for i in 0..count {
            let o = owner(format!("{prefix}-{i}"));
            let l = ipam.allocate(&o, &Request::any()).await.unwrap();
            let a = l.ips()[0];
            let file = Path::new(&dir).join("churn").join(a.to_string());
            let held = std::fs::read_to_string(&file).unwrap();
            assert_eq!(
                held,
                format!("{prefix}-{i}\r\neth0"),
                "{a}: another owner's file"
            );
            println!("@@ ack {o} {a}");
            if i % 2 == 0 {
                ipam.release(&o).await.unwrap().unwrap();
                println!("@@ rel {o}");
            }
        }
    });
}

/// Four processes allocating and releasing on one host-local directory while the real
/// host-local adds and deletes containers whose ids underlay cannot represent (foreign
/// leases): no address ever has two owners, no file is overwritten, and at the end the
/// directory holds exactly the leases each side still holds.
#[test]
fn processes_and_host_local_churn_around_foreign_leases() {
    if std::env::var(HL_CHILD).is_ok() || !have_host_local("processes_and_host_local_churn") {
        return;
    }
    let tmp = TempDir::new("hostlocal-churn");
    let data_dir = tmp.path().join("networks");
    let ranges = r#"[[{"subnet":"10.27.0.0/26"}]]"#;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(HostLocalStore::open(&data_dir).unwrap());
    rt.block_on(Ipam::create(store.clone(), net("churn", &["10.27.0.0/26"])))
        .unwrap();
    let children: Vec<std::process::Child> = (0..4)
        .map(|i| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "ipam::hostlocal::churn_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(HL_CHILD, &data_dir)
                .env("PREFIX", format!("p{i}"))
                .env("COUNT", "24")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    // Meanwhile host-local: ADD long-id containers, DEL every other one again.
    let mut host_local_holds: std::collections::HashMap<String, IpAddr> = Default::default();
    for k in 0..12 {
        let id = format!("{k:02}{}", "h".repeat(298));
        let out = host_local("ADD", &data_dir, "churn", ranges, &id).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let addr: underlay::IpNet = v["ips"][0]["address"].as_str().unwrap().parse().unwrap();
        host_local_holds.insert(id.clone(), addr.addr());
        if k % 2 == 1 {
            host_local("DEL", &data_dir, "churn", ranges, &id).unwrap();
            host_local_holds.remove(&id);
        }
    }
    let mut underlay_holds: std::collections::HashMap<String, IpAddr> = Default::default();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(i) = line.find("@@ ") else { continue };
            let w: Vec<&str> = line[i + 3..].split(' ').collect();
            match w.as_slice() {
                ["ack", o, a] => {
                    underlay_holds.insert(o.to_string(), a.parse().unwrap());
                }
                ["rel", o] => {
                    underlay_holds.remove(*o).unwrap();
                }
                _ => panic!("bad line from child: {line}"),
            }
        }
    }
    assert_eq!(underlay_holds.len(), 4 * 12);
    // underlay's writers took turns from load to commit (Store::lock_for_update).
    assert!(data_dir.join("churn/.underlay.update").exists());
    // The directory holds exactly both sides' live leases, each file its owner's.
    let dir = data_dir.join("churn");
    let mut files: std::collections::HashMap<IpAddr, String> = Default::default();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if let Ok(a) = e.file_name().to_string_lossy().parse::<IpAddr>() {
            files.insert(a, std::fs::read_to_string(e.path()).unwrap());
        }
    }
    assert_eq!(
        files.len(),
        underlay_holds.len() + host_local_holds.len(),
        "{files:?}"
    );
    for (o, a) in underlay_holds.iter().map(|(o, a)| (o.clone(), *a)).chain(
        host_local_holds
            .iter()
            .map(|(id, a)| (format!("{id}/eth0"), *a)),
    ) {
        let (id, ifname) = o.split_once('/').unwrap();
        assert_eq!(files.get(&a), Some(&format!("{id}\r\n{ifname}")), "{a}");
    }
    let ipam = rt.block_on(Ipam::open(store, "churn")).unwrap();
    let foreign: Vec<IpAddr> = rt
        .block_on(ipam.foreign_leases())
        .unwrap()
        .iter()
        .map(|f| f.addr)
        .collect();
    let mut want: Vec<IpAddr> = host_local_holds.values().copied().collect();
    want.sort();
    assert_eq!(foreign, want);
    assert_eq!(rt.block_on(ipam.list()).unwrap().len(), 4 * 12);
}

/// A lease file host-local removes and writes anew for another container under the same
/// address (the new file may even get the old inode number) between a load and a commit of
/// underlay's moves the version: a lookup from the cache is not answered with the old owner,
/// a stale release is refused, and the new owner's file stays. Versions go by the files'
/// handles, not by reading every lease.
#[tokio::test]
async fn a_lease_replaced_under_the_same_name_is_seen() {
    let tmp = TempDir::new("hostlocal-replaced");
    let data_dir = tmp.path().join("networks");
    let store = Arc::new(HostLocalStore::open(&data_dir).unwrap());
    let ipam = Ipam::open_or_create(store, net("repl", &["10.23.0.0/24"]))
        .await
        .unwrap();
    let dir = data_dir.join("repl");
    for round in 0..20 {
        let first = owner(format!("first{round}"));
        let lease = ipam.allocate(&first, &Request::any()).await.unwrap();
        let addr = lease.ips()[0].to_string();
        // host-local (under its lock, as underlay's commit takes it): DEL, then an ADD of
        // another container with IP= that address.
        std::fs::remove_file(dir.join(&addr)).unwrap();
        host_local_reserve(&dir, &addr, &format!("second{round}"), "eth0", 0);
        // underlay's cache still says `first` holds it: a lookup from the cache is confirmed
        // by the version, which must have moved.
        assert!(
            ipam.lookup(&first).await.unwrap().is_none(),
            "round {round}: the cache's stale owner was taken for current"
        );
        // And a release must not remove the file.
        assert!(
            ipam.release(&first).await.unwrap().is_none(),
            "round {round}: a stale release went through"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(&addr)).unwrap(),
            format!("second{round}\r\neth0")
        );
        let second = owner(format!("second{round}"));
        assert_eq!(
            ipam.lookup(&second).await.unwrap().unwrap().ips()[0].to_string(),
            addr
        );
        ipam.release(&second).await.unwrap().unwrap();
        assert!(!dir.join(&addr).exists());
    }
}

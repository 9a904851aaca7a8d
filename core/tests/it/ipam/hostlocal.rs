//! CNI host-local's on-disk layout: files written the way host-local writes them are read, kept
//! and extended; files underlay writes are the ones host-local would read.

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

    // Files older host-local versions wrote (container id only) are reported, not guessed.
    std::fs::write(dir.join("10.22.0.77"), "oldcontainer").unwrap();
    let e = again.list().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.message().contains("10.22.0.77"), "{e}");
    std::fs::remove_file(dir.join("10.22.0.77")).unwrap();
    assert_eq!(again.list().await.unwrap().len(), 4);
}

/// Adopting a host-local directory is all or nothing: a lease underlay cannot load (an owner
/// id over 256 characters, an address outside the pools given) fails the create, naming the
/// file, and leaves no `underlay.network` behind, so a retry is not "already exists" and
/// `open`/`delete` are not "corrupt"; host-local's files stay as they were.
#[tokio::test]
async fn adopting_a_directory_is_all_or_nothing() {
    let tmp = TempDir::new("hostlocal-adopt");
    let data_dir = tmp.path().join("networks");
    let store = Arc::new(HostLocalStore::open(&data_dir).unwrap());
    let long_id = "c".repeat(300);
    for (name, addr, id, what) in [
        ("longid", "10.23.0.2", long_id.as_str(), "10.23.0.2"),
        // host-local's range set spanning two subnets: a lease in the second one.
        ("twosubnets", "10.24.1.2", "c1", "10.24.1.2"),
    ] {
        let dir = data_dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        host_local_reserve(&dir, addr, id, "eth0", 0);
        let n = net(name, &["10.23.0.0/24"]);
        let n = if name == "twosubnets" {
            net(name, &["10.24.0.0/24"])
        } else {
            n
        };
        for attempt in 0..2 {
            let e = Ipam::create(store.clone(), n.clone()).await.unwrap_err();
            assert_ne!(e.kind(), ErrorKind::AlreadyExists, "attempt {attempt}: {e}");
            assert!(e.to_string().contains(what), "{e}");
            assert!(
                !dir.join("underlay.network").exists(),
                "{name}: definition left behind"
            );
        }
        assert_eq!(
            Ipam::open(store.clone(), name).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(dir.join(addr).exists(), "host-local's lease is kept");
    }
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

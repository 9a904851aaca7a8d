//! `Networks` over an etcd store: a `Networks::delete` that the store refuses changes nothing
//! (the last member cannot delete a network in which another host holds a lease, and the
//! network stays as it was, so a retry once the lease is gone succeeds: issue 17.3); a root
//! that cannot be made is named for what it is (issue 17.7).

use underlay::ipam::{Ipam, Request};
use underlay::network::{HostAccess, NetworkSpec, Networks};
use underlay::{ErrorKind, MacvlanMode};

use super::cluster::Cluster;
use super::{owner, rt, skip, store};
use crate::common::{privileged, TestNs};
use crate::network::TempDir;

#[test]
fn a_refused_delete_changes_nothing() {
    let name = "a_refused_delete_changes_nothing";
    if skip(name) || !privileged(name) {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let s1 = store(&c, "n1").await;
        let h1 = TestNs::with_veth("rd1", "ens192", "wire0").await;
        let dir = TempDir::new("etcd-refused-delete");
        let nets = Networks::with_store(&h1.handle, &dir.0, s1.clone())
            .await
            .unwrap();
        let spec = NetworkSpec::macvlan("mac_net1", "ens192", MacvlanMode::Bridge)
            .pool("172.22.16.0/24 gateway=172.22.16.1".parse().unwrap());
        let net = nets.create(spec).await.unwrap();
        let shim = net
            .enable_host_access(HostAccess::new().with_address())
            .await
            .unwrap();
        // Another host (not a member: it only opened the network) holds a lease.
        let other = Ipam::open(store(&c, "n2").await, "mac_net1").await.unwrap();
        other.allocate(&owner("x"), &Request::any()).await.unwrap();
        let etcd_before = c.ctl(&["get", "--prefix", "/underlay/ipam/"]);

        let e = nets.delete("mac_net1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
        assert!(
            e.message().contains("n2"),
            "names the host holding leases: {e}"
        );
        // Nothing changed: the network, its shim (and the shim's lease), etcd's keys.
        let kept = nets.get("mac_net1").await.unwrap();
        assert!(h1.ip_link(&shim).is_some(), "the shim was removed");
        assert_eq!(
            c.ctl(&["get", "--prefix", "/underlay/ipam/"]),
            etcd_before,
            "etcd changed"
        );
        drop(kept);

        // Once the other host's lease is gone, the retry deletes everything.
        other.release(&owner("x")).await.unwrap().unwrap();
        nets.delete("mac_net1").await.unwrap();
        assert!(h1.ip_link(&shim).is_none(), "the shim stayed");
        let e = nets.get("mac_net1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let left = c.ctl(&["get", "--prefix", "/underlay/ipam/", "--keys-only"]);
        let left: Vec<&str> = left.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(left, ["/underlay/ipam/catalog"]);
    });
}

/// A `Networks` root that cannot be made, over an etcd store, is named as the networks' state
/// directory, not as an IPAM directory (the IPAM lives in etcd).
#[test]
fn a_root_that_cannot_be_made_is_named() {
    if skip("a_root_that_cannot_be_made_is_named") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let s = store(&c, "h").await;
        let host = underlay::Handle::new().unwrap();
        let root = std::env::temp_dir()
            .join(format!("underlay-absent-{}", std::process::id()))
            .join("state");
        let e = Networks::with_store(&host, &root, s).await.unwrap_err();
        let msg = e.message();
        assert!(msg.contains("networks' state directory"), "{e}");
        assert!(msg.contains(&root.display().to_string()), "{e}");
        assert!(!msg.contains("IPAM"), "{e}");
    });
}

//! A quarantine (`Ipam::quarantine`: an address found in use on the wire) on the etcd store
//! is one host's lease that every host sees: another host's `Ipam` lists it with the MAC and
//! the time, its allocations pass it by, and it is lifted for everyone when its owner is
//! released. etcd's own contents (`etcdctl get`) are the oracle.

use underlay::ipam::{Ipam, Network, Pool, Quarantine, Request};
use underlay::ErrorKind;

use super::cluster::Cluster;
use super::{ip, owner, rt, skip, store};

#[test]
fn a_quarantine_is_seen_and_kept_by_every_host() {
    if skip("a_quarantine_is_seen_and_kept_by_every_host") {
        return;
    }
    let c = Cluster::start(1);
    rt().block_on(async {
        let pool = Pool::builder("10.78.0.0/29".parse().unwrap())
            .no_gateway()
            .build()
            .unwrap();
        let net = Network::new("quar", vec![pool]).unwrap();
        let a = Ipam::join(store(&c, "qa").await, net.clone())
            .await
            .unwrap()
            .0;
        // Host b opened the network before the quarantine: its cache must learn of it.
        let b = Ipam::join(store(&c, "qb").await, net).await.unwrap().0;
        assert!(b.quarantined().await.unwrap().is_empty());
        // Host a's container got .1, and found .1 and .3 answered by another machine.
        let c1 = owner("c1");
        assert_eq!(
            a.allocate(&c1, &Request::any()).await.unwrap().ips(),
            [ip("10.78.0.1")]
        );
        let found = [
            Quarantine {
                ip: ip("10.78.0.1"),
                mac: Some("02:00:00:00:00:0a".parse().unwrap()),
                since: 1_764_000_000,
            },
            Quarantine {
                ip: ip("10.78.0.3"),
                mac: None,
                since: 1_764_000_001,
            },
        ];
        assert_eq!(a.quarantine(&c1, &found).await.unwrap(), found);
        // etcd holds both, under the quarantine owners, claimed by host a.
        for q in &found {
            let v = c.ctl(&[
                "get",
                "--print-value-only",
                &format!("/underlay/ipam/data/quar/addr/{}", q.ip),
            ]);
            assert!(
                v.starts_with(&format!("{} host=qa", q.owner())),
                "{}: `{v}`",
                q.ip
            );
        }
        // Host b lists them with the MAC and the time.
        assert_eq!(b.quarantined().await.unwrap(), found);
        // Host b's allocations fill the pool without them (.2 .4 .5 .6).
        let mut got = Vec::new();
        for i in 0.. {
            match b.allocate(&owner(format!("b{i}")), &Request::any()).await {
                Ok(l) => got.push(l.ips()[0]),
                Err(e) if e.kind() == ErrorKind::PoolExhausted => break,
                Err(e) => panic!("{e}"),
            }
        }
        got.sort();
        assert_eq!(
            got,
            ["10.78.0.2", "10.78.0.4", "10.78.0.5", "10.78.0.6"].map(ip)
        );
        // Named, it is refused too.
        let e = b
            .allocate(&owner("want3"), &Request::ip(ip("10.78.0.3")))
            .await
            .unwrap_err();
        assert!(e.message().contains("10.78.0.3"), "{e}");
        // Released by its owner (host a: the machine left), it is lifted for host b.
        a.release(&found[1].owner()).await.unwrap().unwrap();
        assert_eq!(b.quarantined().await.unwrap(), [found[0].clone()]);
        let l = b.allocate(&owner("want3"), &Request::any()).await.unwrap();
        assert_eq!(l.ips(), [ip("10.78.0.3")]);
        let v = c.ctl(&[
            "get",
            "--print-value-only",
            "/underlay/ipam/data/quar/addr/10.78.0.3",
        ]);
        assert!(v.starts_with("want3/eth0 host=qb"), "`{v}`");
    });
}

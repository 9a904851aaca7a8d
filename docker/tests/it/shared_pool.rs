//! Two hosts' plugins on one pool (`--etcd`): the gateway and an aux address are held by each
//! host. Host 1 deletes the network (DeleteNetwork, ReleaseAddress of the gateway and the aux
//! address, ReleasePool, dockerd's order) while host 2 keeps it: host 2's containers never get
//! either address, its replayed gateway request gets the same answer, its reclaim of lost
//! answers leaves them alone; once host 2 deletes too, the store holds nothing of the pool.
//! On a local store two plugins share (always), and on a real etcd member (feature `etcd`,
//! etcd installed: `cargo xtask docker-test --etcd`), `etcdctl` the oracle.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use underlay::ipam::{Ipam, Store};

use crate::{root, rt, unique, Dockerd, NET};

const SUBNET: &str = "10.9.0.0/29";
const POOL: &str = "local/10.9.0.0/29";
const MAC_OPTION: &str = "com.docker.network.endpoint.macaddress";

fn addr(v: &Value) -> IpAddr {
    v["Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn create(d: &Dockerd) {
    let p = d
        .ok(
            "/IpamDriver.RequestPool",
            &json!({"AddressSpace": "local", "Pool": SUBNET, "SubPool": "", "V6": false}),
        )
        .await;
    assert_eq!(p["PoolID"], POOL);
    let gw = d
        .ok("/IpamDriver.RequestAddress", &json!({"PoolID": POOL, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}))
        .await;
    assert_eq!(addr(&gw).to_string(), "10.9.0.1");
    let aux = d
        .ok(
            "/IpamDriver.RequestAddress",
            &json!({"PoolID": POOL, "Address": "10.9.0.6", "Options": null}),
        )
        .await;
    assert_eq!(addr(&aux).to_string(), "10.9.0.6");
    d.ok(
        "/NetworkDriver.CreateNetwork",
        &json!({"NetworkID": NET, "Options": {"com.docker.network.generic": {"parent": crate::PARENT}},
                "IPv4Data": [{"AddressSpace": "local", "Pool": SUBNET, "Gateway": "10.9.0.1/29", "AuxAddresses": {"router": "10.9.0.6/29"}}], "IPv6Data": []}),
    )
    .await;
}

/// dockerd's `docker network rm`: DeleteNetwork, the gateway's and aux address's
/// ReleaseAddress, ReleasePool.
async fn remove(d: &Dockerd) {
    d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET}))
        .await;
    for a in ["10.9.0.1", "10.9.0.6"] {
        d.ok(
            "/IpamDriver.ReleaseAddress",
            &json!({"PoolID": POOL, "Address": a}),
        )
        .await;
    }
    d.ok("/IpamDriver.ReleasePool", &json!({"PoolID": POOL}))
        .await;
}

/// The pool's store network, if the store still defines it.
async fn pool_net(store: &Arc<dyn Store>) -> Option<String> {
    let subnet: ipnet::IpNet = SUBNET.parse().unwrap();
    store
        .networks()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.pools()[0].subnet() == subnet)
        .map(|n| n.name().to_string())
}

/// The case, on `a` and `b` (two hosts' plugins), with `oracle` the store as a third host
/// reads it.
async fn case(a: &Dockerd, b: &Dockerd, oracle: Arc<dyn Store>) {
    create(a).await;
    create(b).await;
    let name = pool_net(&oracle).await.expect("the pool is defined");
    let ipam = Ipam::open(oracle.clone(), &name).await.unwrap();
    let holders = |ipam: Ipam| async move {
        let mut v: Vec<(IpAddr, Vec<String>)> = ipam
            .holds()
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.addr, h.holders))
            .collect();
        v.sort();
        v
    };
    let both = vec![a.plugin.holder().to_string(), b.plugin.holder().to_string()];
    let mut both_sorted = both.clone();
    both_sorted.sort();
    assert_eq!(
        holders(ipam.clone()).await,
        vec![
            ("10.9.0.1".parse().unwrap(), both_sorted.clone()),
            ("10.9.0.6".parse().unwrap(), both_sorted.clone())
        ]
    );
    // A reclaim of lost answers (a plugin restarted) leaves the holds alone.
    for d in [a, b] {
        d.plugin.find_unanswered().await.unwrap();
        assert!(d.plugin.reclaim_unanswered().await.unwrap().is_empty());
    }
    // Host 1 removes the network; host 2 keeps it.
    remove(a).await;
    let only_b = vec![b.plugin.holder().to_string()];
    assert_eq!(
        holders(ipam.clone()).await,
        vec![
            ("10.9.0.1".parse().unwrap(), only_b.clone()),
            ("10.9.0.6".parse().unwrap(), only_b.clone())
        ]
    );
    // Host 2's containers fill the pool: never the gateway or the aux address.
    let mut got = Vec::new();
    for i in 0..4 {
        let r = json!({"PoolID": POOL, "Address": "", "Options": {MAC_OPTION: format!("02:42:0a:09:00:7{i}")}});
        got.push(addr(&b.ok("/IpamDriver.RequestAddress", &r).await).to_string());
    }
    got.sort();
    assert_eq!(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"]);
    let full = json!({"PoolID": POOL, "Address": "", "Options": {MAC_OPTION: "02:42:0a:09:00:79"}});
    b.refused(
        "/IpamDriver.RequestAddress",
        &full,
        axum::http::StatusCode::OK,
        "",
    )
    .await;
    let named = json!({"PoolID": POOL, "Address": "10.9.0.1", "Options": {MAC_OPTION: "02:42:0a:09:00:7a"}});
    b.refused(
        "/IpamDriver.RequestAddress",
        &named,
        axum::http::StatusCode::OK,
        "10.9.0.1",
    )
    .await;
    // dockerd restarted on host 2 replays its requests: the same answers.
    let p = b
        .ok(
            "/IpamDriver.RequestPool",
            &json!({"AddressSpace": "local", "Pool": SUBNET, "SubPool": "", "V6": false}),
        )
        .await;
    assert_eq!(p["PoolID"], POOL);
    let gw = b
        .ok("/IpamDriver.RequestAddress", &json!({"PoolID": POOL, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}))
        .await;
    assert_eq!(addr(&gw).to_string(), "10.9.0.1");
    // Host 2's containers go, then its network: nothing of the pool is left.
    for a in &got {
        b.ok(
            "/IpamDriver.ReleaseAddress",
            &json!({"PoolID": POOL, "Address": a}),
        )
        .await;
    }
    remove(b).await;
    assert_eq!(pool_net(&oracle).await, None);
}

#[test]
fn gateway_and_aux_stay_held_while_another_host_keeps_the_pool() {
    if !root("gateway_and_aux_stay_held_while_another_host_keeps_the_pool") {
        return;
    }
    rt().block_on(async {
        let shared = std::env::temp_dir().join(unique("heldpools"));
        let store: Arc<dyn Store> = Arc::new(underlay::ipam::LocalStore::open(&shared).unwrap());
        let a = Dockerd::with_holder("hlda", Some(store.clone()), Some("host1")).await;
        let b = Dockerd::with_holder("hldb", Some(store.clone()), Some("host2")).await;
        case(&a, &b, store.clone()).await;
        assert_eq!(store.networks().await.unwrap(), Vec::new());
        drop((a, b));
        let _ = std::fs::remove_dir_all(&shared);
    });
}

#[cfg(feature = "etcd")]
#[path = "../../../core/tests/it/ipam_etcd/cluster.rs"]
mod cluster;

/// The same on a real etcd member, each plugin's store stamped with its host's name;
/// `etcdctl get --prefix` shows nothing of the pool at the end.
#[cfg(feature = "etcd")]
#[test]
fn gateway_and_aux_stay_held_while_another_host_keeps_the_pool_on_etcd() {
    let name = "gateway_and_aux_stay_held_while_another_host_keeps_the_pool_on_etcd";
    if !root(name) || !cluster::available(name) {
        return;
    }
    let c = cluster::Cluster::start(1);
    rt().block_on(async {
        let connect = |host: &'static str| {
            let cfg = underlay::ipam::EtcdConfig::new(c.endpoints()).host(host);
            async move {
                Arc::new(underlay::ipam::EtcdStore::connect(cfg).await.unwrap()) as Arc<dyn Store>
            }
        };
        let a = Dockerd::with_holder("hlea", Some(connect("dk1").await), Some("dk1")).await;
        let b = Dockerd::with_holder("hleb", Some(connect("dk2").await), Some("dk2")).await;
        case(&a, &b, connect("oracle").await).await;
        let left = c.ctl(&["get", "--prefix", "/underlay/ipam/", "--keys-only"]);
        let left: Vec<&str> = left.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            left,
            ["/underlay/ipam/catalog"],
            "etcd still holds: {left:?}"
        );
    });
}

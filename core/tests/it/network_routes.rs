//! A container on several networks: the default routes each connect adds (issue 12, defect
//! 8), and the target handle a connect is given (defect 4). iproute2 is the oracle.

use underlay::network::{EndpointSpec, Network, NetworkSpec, Networks};
use underlay::{ErrorKind, MacvlanMode};

use crate::common::{ip_addrs, privileged, TestNs};
use crate::network::TempDir;

macro_rules! root_or_skip {
    ($name:expr) => {
        if !privileged($name) {
            return;
        }
    };
}

/// A host namespace with `n` parents `ens192`, `ens193`, ... (veths, up) and on each a
/// dual-stack network `gwI` with gateways: 172.22.(20+I).0/24 via .1, fd(20+I)::/64 via ::1.
async fn host_with_gateway_networks(
    tag: &str,
    n: usize,
) -> (TestNs, TempDir, Networks, Vec<Network>) {
    let h = TestNs::new(tag).await;
    for i in 0..n {
        underlay::Veth::create(&h.handle, &format!("ens{}", 192 + i), &format!("wire{i}"))
            .up()
            .peer_up()
            .execute()
            .await
            .unwrap();
    }
    let dir = TempDir::new(tag);
    let nets = Networks::open(&h.handle, &dir.0).await.unwrap();
    let mut made = Vec::new();
    for i in 0..n {
        let spec = NetworkSpec::macvlan(
            &format!("gw{i}"),
            &format!("ens{}", 192 + i),
            MacvlanMode::Bridge,
        )
        .pool(
            format!("172.22.{}.0/24 gateway=172.22.{}.1", 20 + i, 20 + i)
                .parse()
                .unwrap(),
        )
        .pool(
            format!("fd{}::/64 gateway=fd{}::1", 20 + i, 20 + i)
                .parse()
                .unwrap(),
        );
        made.push(nets.create(spec).await.unwrap());
    }
    (h, dir, nets, made)
}

/// A connect given a handle in another namespace than the one it connects is refused before
/// anything is done; it used to make the link there, record it here, and a disconnect then
/// deleted this namespace's `eth0` (another container's).
#[tokio::test]
async fn connect_refuses_a_target_in_another_namespace() {
    root_or_skip!("connect_refuses_a_target_in_another_namespace");
    let (_h, _dir, _nets, nets) = host_with_gateway_networks("tgt", 1).await;
    let net = &nets[0];
    let (a, b) = (TestNs::new("tgta").await, TestNs::new("tgtb").await);
    let c1 = net
        .connect(&a.ns, EndpointSpec::new("c1").target(&a.handle))
        .await
        .unwrap();
    let e = net
        .connect(&a.ns, EndpointSpec::new("c2").target(&b.handle))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&a.name) && msg.contains(&b.name), "{msg}");
    // Nothing made, allocated or recorded for c2; c1 untouched.
    assert!(b.ip_link("eth0").is_none());
    assert!(net.endpoint("c2", "eth0").unwrap().is_none());
    assert_eq!(net.ipam().list().await.unwrap().len(), 1);
    net.disconnect("c2", "eth0").await.unwrap();
    assert!(ip_addrs(&a, "eth0").contains(&c1.addresses[0].to_string()));
    assert_eq!(net.endpoints().unwrap().len(), 1);
    net.disconnect("c1", "eth0").await.unwrap();
}

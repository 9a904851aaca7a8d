//! The IPAM driver's choices: MAC-aware RequestAddress, aux addresses on a pool two hosts
//! share, and leases whose answer a killed plugin never wrote (kill -9 between the commit and
//! the answer), released by the next run.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{json, Value};
use underlay::ipam::{Ipam, LocalStore, Store};

use crate::{ip, network, root, rt, unique, Dockerd, NET};

const MAC_OPTION: &str = "com.docker.network.endpoint.macaddress";
const POOL: &str = "local/10.9.0.0/24";

/// A container's RequestAddress as dockerd 20.10 sends it to an IPAM requiring MACs.
fn request(address: &str, mac: &str) -> Value {
    json!({"PoolID": POOL, "Address": address, "Options": {MAC_OPTION: mac}})
}

fn addr(v: &Value) -> String {
    v["Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// The leases of the Docker pool of `subnet`, read from the state directory by a store of
/// its own (not the plugin's cache): (address, owner).
async fn leases(dir: &std::path::Path, subnet: &str) -> Vec<(IpAddr, String)> {
    let store: Arc<dyn Store> =
        Arc::new(LocalStore::open(dir.join(underlay_docker::POOLS_DIR)).unwrap());
    let subnet: ipnet::IpNet = subnet.parse().unwrap();
    for n in store.networks().await.unwrap() {
        if n.pools()[0].subnet() == subnet {
            let ipam = Ipam::open(store.clone(), n.name()).await.unwrap();
            let mut v: Vec<(IpAddr, String)> = ipam
                .list()
                .await
                .unwrap()
                .into_iter()
                .map(|l| (l.ips()[0], l.owner.to_string()))
                .collect();
            v.sort();
            return v;
        }
    }
    Vec::new()
}

/// A MAC that holds an address in a pool gets that address again (a retried start, a second
/// request of the same endpoint), with or without naming it; another address for it is
/// refused, naming the MAC; another MAC gets another address; once released, the MAC is free
/// to get any. The MAC dockerd gives reaches the link (`ip -j link`).
#[test]
fn mac_aware_request_address() {
    if !root("mac_aware_request_address") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("mac").await;
        let (_, v) = network(&d, NET, "10.9.0.0/24", json!({"parent": crate::PARENT})).await;
        assert!(v.get("Err").is_none(), "{v}");
        let caps = d.ok("/IpamDriver.GetCapabilities", &Value::Null).await;
        assert_eq!(caps["RequiresMACAddress"], true);
        let (m1, m2) = ("02:42:0a:09:00:31", "02:42:0a:09:00:32");
        let a1 = addr(&d.ok("/IpamDriver.RequestAddress", &request("", m1)).await);
        let again = addr(&d.ok("/IpamDriver.RequestAddress", &request("", m1)).await);
        assert_eq!(a1, again);
        let named = addr(&d.ok("/IpamDriver.RequestAddress", &request(&a1, m1)).await);
        assert_eq!(a1, named);
        let a2 = addr(&d.ok("/IpamDriver.RequestAddress", &request("", m2)).await);
        assert_ne!(a1, a2);
        let msg = d
            .refused(
                "/IpamDriver.RequestAddress",
                &request("10.9.0.77", m1),
                axum::http::StatusCode::OK,
                m1,
            )
            .await;
        assert!(msg.contains("one address per MAC"), "{msg}");
        // One lease per MAC (and the gateway).
        let owners: Vec<String> = leases(&d.dir, "10.9.0.0/24").await.into_iter().map(|(_, o)| o).collect();
        assert_eq!(
            owners,
            vec![
                "docker-gateway/gw".to_string(),
                "docker-mac-02420a090031/ipam".into(),
                "docker-mac-02420a090032/ipam".into()
            ]
        );
        // The MAC reaches the link.
        d.ok(
            "/NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": NET, "EndpointID": "m1", "Interface": {"Address": format!("{a1}/24"), "MacAddress": m1}}),
        )
        .await;
        let j = d
            .ok("/NetworkDriver.Join", &json!({"NetworkID": NET, "EndpointID": "m1", "SandboxKey": "/x"}))
            .await;
        let src = j["InterfaceName"]["SrcName"].as_str().unwrap();
        let link = d.links().into_iter().find(|l| l["ifname"] == src).unwrap();
        assert_eq!(link["address"], m1, "{link}");
        // The same MAC for a second container: RequestAddress gives m1's address back, the
        // endpoint on it is refused, and dockerd's rollback (ReleaseAddress) leaves m1's lease.
        let dup = addr(&d.ok("/IpamDriver.RequestAddress", &request("", m1)).await);
        assert_eq!(dup, a1);
        d.refused(
            "/NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": NET, "EndpointID": "m1b", "Interface": {"Address": format!("{dup}/24"), "MacAddress": m1}}),
            axum::http::StatusCode::OK,
            &a1,
        )
        .await;
        d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": POOL, "Address": dup}))
            .await;
        assert!(
            leases(&d.dir, "10.9.0.0/24").await.iter().any(|(ip, o)| ip.to_string() == a1 && o == "docker-mac-02420a090031/ipam"),
            "the rollback released the address m1's endpoint holds"
        );
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": "m1"}))
            .await;
        // Released: the MAC holds nothing; asked again, an address (a new lease).
        for a in [&a1, &a2] {
            d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": POOL, "Address": a}))
                .await;
        }
        assert_eq!(leases(&d.dir, "10.9.0.0/24").await.len(), 1);
        let a3 = addr(&d.ok("/IpamDriver.RequestAddress", &request("10.9.0.77", m1)).await);
        assert_eq!(a3, "10.9.0.77");
        d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": POOL, "Address": a3}))
            .await;
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": POOL, "Address": "10.9.0.1"}))
            .await;
        d.ok("/IpamDriver.ReleasePool", &json!({"PoolID": POOL})).await;
        assert_eq!(d.state_files(underlay_docker::POOLS_DIR), Vec::<String>::new());
    });
}

/// `--aux-address` on a pool two hosts share: dockerd asks for it (no options) on each host
/// creating the network; each gets it (one shared reservation, not the first host's only),
/// and no container of either host gets it.
#[test]
fn aux_address_on_a_shared_pool_reserved_for_every_host() {
    if !root("aux_address_on_a_shared_pool_reserved_for_every_host") {
        return;
    }
    rt().block_on(async {
        let shared = std::env::temp_dir().join(unique("auxpools"));
        let store: Arc<dyn Store> = Arc::new(LocalStore::open(&shared).unwrap());
        let a = Dockerd::with_pools("auxa", Some(store.clone())).await;
        let b = Dockerd::with_pools("auxb", Some(store.clone())).await;
        // 10.9.0.0/30 after the gateway and the aux address: two addresses for containers.
        let subnet = "10.9.0.0/29";
        let pool = format!("local/{subnet}");
        for d in [&a, &b] {
            let p = d
                .ok("/IpamDriver.RequestPool", &json!({"AddressSpace": "local", "Pool": subnet, "SubPool": "", "V6": false}))
                .await;
            assert_eq!(p["PoolID"], pool.as_str());
            d.ok("/IpamDriver.RequestAddress", &json!({"PoolID": pool, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}))
                .await;
            let aux = d
                .ok("/IpamDriver.RequestAddress", &json!({"PoolID": pool, "Address": "10.9.0.6", "Options": null}))
                .await;
            assert_eq!(addr(&aux), "10.9.0.6");
            d.ok(
                "/NetworkDriver.CreateNetwork",
                &json!({"NetworkID": NET, "Options": {"com.docker.network.generic": {"parent": crate::PARENT}},
                        "IPv4Data": [{"AddressSpace": "local", "Pool": subnet, "Gateway": "10.9.0.1/29", "AuxAddresses": {"router": "10.9.0.6/29"}}], "IPv6Data": []}),
            )
            .await;
        }
        // A container asking for it on either host: refused.
        for d in [&a, &b] {
            let mut r = request("10.9.0.6", "02:42:0a:09:00:41");
            r["PoolID"] = pool.clone().into();
            d.refused("/IpamDriver.RequestAddress", &r, axum::http::StatusCode::OK, "10.9.0.6")
                .await;
        }
        // Containers of both hosts fill the pool (.2 .. .5): never .1 or .6.
        let mut got = Vec::new();
        for (i, d) in [&a, &b, &a, &b].into_iter().enumerate() {
            let mut r = request("", &format!("02:42:0a:09:00:5{i}"));
            r["PoolID"] = pool.clone().into();
            got.push(addr(&d.ok("/IpamDriver.RequestAddress", &r).await));
        }
        got.sort();
        assert_eq!(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"]);
        let mut r = request("", "02:42:0a:09:00:59");
        r["PoolID"] = pool.clone().into();
        a.refused("/IpamDriver.RequestAddress", &r, axum::http::StatusCode::OK, "")
            .await;
        for d in [&a, &b] {
            d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        }
        drop((a, b));
        let _ = std::fs::remove_dir_all(&shared);
    });
}

/// kill -9 between committing a RequestAddress lease and writing the answer (the plugin's
/// test hook kills itself there): dockerd got no address, yet the lease is in the store. The
/// next run finds it at start (no endpoint holds it) and releases it after `--reclaim-after`;
/// the gateway and an endpoint's lease stay.
#[test]
fn lease_of_an_answer_lost_to_kill_9_is_released_by_the_next_run() {
    if !root("lease_of_an_answer_lost_to_kill_9_is_released_by_the_next_run") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("kill9").await;
        let (_, v) = network(&d, NET, "10.9.0.0/24", json!({"parent": crate::PARENT})).await;
        assert!(v.get("Err").is_none(), "{v}");
        // An endpoint's lease, confirmed by its CreateEndpoint.
        let kept = addr(&d.ok("/IpamDriver.RequestAddress", &request("", "02:42:0a:09:00:61")).await);
        d.ok(
            "/NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": NET, "EndpointID": "kept", "Interface": {"Address": format!("{kept}/24")}}),
        )
        .await;
        let sock = d.dir.join("plugin.sock");
        let spawn = |kill_after_lease: bool, reclaim_after: &str| {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &d.ns, env!("CARGO_BIN_EXE_underlay-docker")])
                .arg("--socket")
                .arg(&sock)
                .arg("--state")
                .arg(&d.dir)
                .args(["--reclaim-after", reclaim_after])
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if kill_after_lease {
                cmd.env("UNDERLAY_DOCKER_TEST_KILL_AFTER_LEASE", "1");
            }
            let child = cmd.spawn().unwrap();
            for _ in 0..200 {
                if sock.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            assert!(sock.exists(), "the plugin did not start");
            child
        };
        let post = |path: &str, body: &Value| {
            Command::new("curl")
                .args(["-s", "-X", "POST", "--unix-socket"])
                .arg(&sock)
                .args(["-d", &body.to_string(), &format!("http://plugin{path}")])
                .output()
                .unwrap()
        };
        let before = leases(&d.dir, "10.9.0.0/24").await;
        let mut victim = spawn(true, "60");
        let out = post("/IpamDriver.RequestAddress", &request("", "02:42:0a:09:00:62"));
        assert!(!out.status.success(), "an answer came: {out:?}");
        let status = victim.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        let after = leases(&d.dir, "10.9.0.0/24").await;
        assert_eq!(after.len(), before.len() + 1, "no lease committed: {after:?}");
        let lost = after
            .iter()
            .find(|(_, o)| o == "docker-mac-02420a090062/ipam")
            .unwrap_or_else(|| panic!("{after:?}"))
            .0;
        // The next run: found at start, released at once (--reclaim-after 0).
        let _ = std::fs::remove_file(&sock);
        let mut next = spawn(false, "0");
        let mut released = false;
        for _ in 0..100 {
            if leases(&d.dir, "10.9.0.0/24").await == before {
                released = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Still serving; then stopped (TERM) to read what it said.
        let out = post("/Plugin.Activate", &Value::Null);
        assert!(out.status.success(), "{out:?}");
        // SAFETY: kill has no preconditions; the pid is our child's.
        unsafe { libc::kill(next.id() as i32, libc::SIGTERM) };
        let _ = next.wait();
        let mut said = String::new();
        use std::io::Read;
        next.stderr.take().unwrap().read_to_string(&mut said).unwrap();
        assert!(released, "{lost} not released: {:?}\n{said}", leases(&d.dir, "10.9.0.0/24").await);
        assert!(said.contains(&lost.to_string()), "{said}");
        // The endpoint's lease and the gateway stay.
        let owners: Vec<String> = leases(&d.dir, "10.9.0.0/24").await.into_iter().map(|(_, o)| o).collect();
        assert_eq!(owners, vec!["docker-gateway/gw".to_string(), "docker-mac-02420a090061/ipam".into()]);
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": "kept"}))
            .await;
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        assert!(ip(&["netns", "list"]).status.success());
    });
}

/// Churn: a restarted plugin reclaims the unanswered leases of its earlier run while dockerd
/// retries half of those containers (their MACs asked again and answered just before, their
/// CreateEndpoint racing the reclaim) and starts new ones. Every endpoint's address keeps its pool lease (one owner, never released
/// under it), the leases asked again stay, the others go. Rounds of it, each from a fresh run.
#[test]
fn reclaim_under_churn_never_releases_a_used_address() {
    if !root("reclaim_under_churn_never_releases_a_used_address") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("churn").await;
        let (_, v) = network(&d, NET, "10.9.0.0/24", json!({"parent": crate::PARENT})).await;
        assert!(v.get("Err").is_none(), "{v}");
        let handle = underlay::Handle::for_netns(&underlay::Netns::open(&d.ns).unwrap())
            .await
            .unwrap();
        let mac = |round: usize, i: usize| format!("02:42:0a:09:{round:02x}:{i:02x}");
        for round in 0..4usize {
            // The earlier run: 16 answers lost (leases without an endpoint).
            for i in 0..16 {
                d.ok("/IpamDriver.RequestAddress", &request("", &mac(round, i)))
                    .await;
            }
            // The next run, on the same state.
            let next = Arc::new(
                underlay_docker::Plugin::open(&handle, &d.dir, None)
                    .await
                    .unwrap(),
            );
            assert_eq!(next.find_unanswered().await.unwrap(), 16);
            // dockerd retrying the even ones: their MACs asked again and answered (the lease
            // given back) before the reclaim; their CreateEndpoint races it, as do 8 new
            // containers (RequestAddress, CreateEndpoint).
            let mut answered = Vec::new();
            for i in (0..16).step_by(2) {
                let m = mac(round, i);
                let body = serde_json::to_vec(&request("", &m)).unwrap();
                let (_, a) = next.call("/IpamDriver.RequestAddress", &body).await;
                answered.push((m, Some(a["Address"].as_str().unwrap().to_string())));
            }
            answered.extend((32..40).map(|i| (mac(round, i), None)));
            let mut tasks = Vec::new();
            let reclaimer = next.clone();
            tasks.push(tokio::spawn(async move {
                reclaimer.reclaim_unanswered().await.unwrap();
                Vec::<(String, String)>::new()
            }));
            for (m, address) in answered {
                let p = next.clone();
                tasks.push(tokio::spawn(async move {
                    let address = match address {
                        Some(a) => a,
                        None => {
                            let body = serde_json::to_vec(&request("", &m)).unwrap();
                            let (_, a) = p.call("/IpamDriver.RequestAddress", &body).await;
                            a["Address"]
                                .as_str()
                                .unwrap_or_else(|| panic!("{a}"))
                                .to_string()
                        }
                    };
                    let ep = format!("ep{}", m.replace(':', ""));
                    let body = serde_json::to_vec(&json!({"NetworkID": NET, "EndpointID": ep,
                        "Interface": {"Address": address, "MacAddress": m}}))
                    .unwrap();
                    let (_, r) = p.call("/NetworkDriver.CreateEndpoint", &body).await;
                    assert!(r.get("Err").is_none(), "{r}");
                    vec![(ep, address)]
                }));
            }
            let mut started = Vec::new();
            for t in tasks {
                started.extend(t.await.unwrap());
            }
            let held = leases(&d.dir, "10.9.0.0/24").await;
            for (ep, address) in &started {
                let ip: IpAddr = address.split('/').next().unwrap().parse().unwrap();
                let m = ep.trim_start_matches("ep");
                assert!(
                    held.iter()
                        .any(|(h, o)| *h == ip && *o == format!("docker-mac-{m}/ipam")),
                    "round {round}: {ep}'s {ip} lost its lease: {held:?}"
                );
            }
            // The odd ones (never asked again) are gone; the gateway and the endpoints' stay.
            assert_eq!(held.len(), 1 + started.len(), "round {round}: {held:?}");
            // Those containers end.
            for (ep, address) in started {
                d.ok(
                    "/NetworkDriver.DeleteEndpoint",
                    &json!({"NetworkID": NET, "EndpointID": ep}),
                )
                .await;
                d.ok(
                    "/IpamDriver.ReleaseAddress",
                    &json!({"PoolID": POOL, "Address": address.split('/').next().unwrap()}),
                )
                .await;
            }
        }
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET}))
            .await;
    });
}

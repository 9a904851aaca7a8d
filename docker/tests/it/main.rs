//! The plugin's HTTP API in process: dockerd 20.10's recorded calls replayed (and mutated into
//! bad ones) against the kernel, in throwaway namespaces: a "dockerd" namespace holding the
//! parent veth, as dockerd's own would. iproute2 (`ip -j`) is the oracle for the kernel, the
//! state directory's files for what is stored.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use underlay_docker::Plugin;

/// The core tests' namespaces and oracle helpers, and their DHCP server (not copied).
#[path = "../../../core/tests/it/common.rs"]
#[allow(dead_code)]
mod common;
mod dhcp;
#[path = "../../../core/tests/it/dhcp_server.rs"]
#[allow(dead_code)]
mod dhcp_server;
mod ipam;
mod shared_pool;
mod vm;

/// dockerd 20.10.24's calls to a remote driver + IPAM (../shared/runtimes/fixtures/docker).
const CALLS: &str = include_str!("../fixtures/docker-20.10-calls.jsonl");
/// The parent the recording used.
const PARENT: &str = "hcfdkpar0";

fn root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED {test}: needs root (CAP_NET_ADMIN); CI runs it as root");
    }
    root
}

pub(crate) static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "uldt-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

/// dockerd's namespace for one test: a veth `hcfdkpar0` (up) as the parent, the plugin's state
/// in a temporary directory; both removed on drop.
struct Dockerd {
    ns: String,
    dir: std::path::PathBuf,
    plugin: Arc<Plugin>,
}

impl Dockerd {
    async fn new(tag: &str) -> Dockerd {
        Dockerd::with_pools(tag, None).await
    }

    /// As [`Dockerd::new`], the pools in `pools` (a store two "hosts" share) if given.
    async fn with_pools(tag: &str, pools: Option<Arc<dyn underlay::ipam::Store>>) -> Dockerd {
        Dockerd::with_holder(tag, pools, None).await
    }

    /// As [`Dockerd::with_pools`], the plugin holding shared reservations as `holder` (a host
    /// name of its own) if given.
    async fn with_holder(
        tag: &str,
        pools: Option<Arc<dyn underlay::ipam::Store>>,
        holder: Option<&str>,
    ) -> Dockerd {
        let ns = unique(tag);
        assert!(ip(&["netns", "add", &ns]).status.success());
        for args in [
            vec!["link", "set", "lo", "up"],
            vec![
                "link", "add", PARENT, "type", "veth", "peer", "name", "wire0",
            ],
            vec!["link", "set", PARENT, "up"],
            vec!["link", "set", "wire0", "up"],
        ] {
            let mut all = vec!["-n", ns.as_str()];
            all.extend(args);
            assert!(ip(&all).status.success(), "ip {all:?}");
        }
        let dir = std::env::temp_dir().join(unique(tag));
        let handle = underlay::Handle::for_netns(&underlay::Netns::open(&ns).unwrap())
            .await
            .unwrap();
        let mut plugin = Plugin::open(&handle, &dir, pools).await.unwrap();
        if let Some(h) = holder {
            plugin.set_holder(h);
        }
        let plugin = Arc::new(plugin);
        Dockerd { ns, dir, plugin }
    }

    /// Posts `body` to `path`; the status and the answer.
    async fn call(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let raw = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        self.plugin.call(path, &raw).await
    }

    /// Posts and expects success (200, no error key).
    async fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.call(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path} {body}: {v}");
        assert!(
            v.get("Err").is_none() && v.get("Error").is_none(),
            "{path} {body}: {v}"
        );
        v
    }

    /// Posts and expects the error of `path`'s API (key `Err` or `Error`, the other absent),
    /// whose message contains `needle`.
    async fn refused(&self, path: &str, body: &Value, status: StatusCode, needle: &str) -> String {
        let (got, v) = self.call(path, body).await;
        let (key, other) = if path.starts_with("/IpamDriver.") {
            ("Error", "Err")
        } else {
            ("Err", "Error")
        };
        assert_eq!(got, status, "{path} {body}: {v}");
        assert!(v.get(other).is_none(), "{path}: wrong error key: {v}");
        let msg = v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no {key}: {v}"))
            .to_string();
        assert!(
            msg.contains(needle),
            "{path} {body}: `{msg}` lacks `{needle}`"
        );
        msg
    }

    /// Names of the links in the namespace (`ip -j link`).
    fn links(&self) -> Vec<Value> {
        let out = ip(&["-n", &self.ns, "-d", "-j", "link", "show"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn link_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .links()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// Files under `sub` of the state directory, hidden ones and the pool of reusable
    /// endpoint files left out.
    fn state_files(&self, sub: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name == "lock" {
                    continue;
                }
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        out
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The recorded calls: (path, request, the recording driver's answer).
fn recorded() -> Vec<(String, Value, Value)> {
    CALLS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().to_string(),
                v["request"].clone(),
                v["response"].clone(),
            )
        })
        .collect()
}

/// Replaces an address (bare or with prefix length) by this plugin's answer for it.
fn map_address(slot: &mut Value, key: &str, addrs: &HashMap<String, String>) {
    if let Some(a) = slot.get(key).and_then(Value::as_str) {
        if let Some(ours) = addrs.get(a.split('/').next().unwrap()) {
            slot[key] = ours.clone().into();
        }
    }
}

/// Replays every recorded call (a dockerd session: three networks incl. --ip-range, aux
/// addresses and dual stack; containers with static and IPAM-chosen addresses; connect,
/// disconnect, stop/start, a dockerd restart; rm; network rm), with the pool ids and
/// addresses this plugin answered in place of the recorded ones, checking each answer and the
/// kernel after the prepared endpoints' calls. Nothing is left at the end.
#[test]
fn recorded_session_replays_and_leaves_nothing() {
    if !root("recorded_session_replays_and_leaves_nothing") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("replay").await;
        // Recorded pool id / address -> this plugin's.
        let mut pools: HashMap<String, String> = HashMap::new();
        let mut addrs: HashMap<String, String> = HashMap::new();
        let mut endpoints_live = 0usize;
        for (path, mut req, recorded_answer) in recorded() {
            if let Some(id) = req.get("PoolID").and_then(Value::as_str) {
                if let Some(ours) = pools.get(id) {
                    req["PoolID"] = ours.clone().into();
                }
            }
            if path == "/NetworkDriver.CreateEndpoint" {
                map_address(&mut req["Interface"], "Address", &addrs);
                map_address(&mut req["Interface"], "AddressIPv6", &addrs);
            }
            if path == "/IpamDriver.ReleaseAddress" {
                map_address(&mut req, "Address", &addrs);
            }
            let answer = d.ok(&path, &req).await;
            match path.as_str() {
                "/Plugin.Activate" => {
                    assert_eq!(answer["Implements"], json!(["NetworkDriver", "IpamDriver"]))
                }
                "/NetworkDriver.GetCapabilities" => assert_eq!(answer["Scope"], "local"),
                "/IpamDriver.GetCapabilities" => {
                    assert_eq!(answer["RequiresRequestReplay"], false)
                }
                "/IpamDriver.RequestPool" => {
                    let recorded_id = recorded_pool_id(&req);
                    assert_eq!(answer["Pool"], req["Pool"]);
                    // Asked again (a replay): the same id, success.
                    let again = d.ok(&path, &req).await;
                    assert_eq!(again["PoolID"], answer["PoolID"]);
                    pools.insert(recorded_id, answer["PoolID"].as_str().unwrap().into());
                }
                "/IpamDriver.RequestAddress" => {
                    let got = answer["Address"].as_str().unwrap().to_string();
                    let want = req["Address"].as_str().unwrap();
                    if !want.is_empty() {
                        assert_eq!(got.split('/').next().unwrap(), want, "{req}");
                    }
                    let recorded = recorded_answer["Address"].as_str().unwrap();
                    addrs.insert(recorded.split('/').next().unwrap().into(), got);
                }
                "/NetworkDriver.CreateEndpoint" => endpoints_live += 1,
                "/NetworkDriver.DeleteEndpoint" => endpoints_live -= 1,
                "/NetworkDriver.Join" => {
                    // The link Docker will move: in dockerd's namespace, macvlan on the parent,
                    // down, in underlay's endpoint group.
                    let src = answer["InterfaceName"]["SrcName"].as_str().unwrap();
                    assert_eq!(answer["InterfaceName"]["DstPrefix"], "eth");
                    let links = d.links();
                    let l = links
                        .iter()
                        .find(|l| l["ifname"] == src)
                        .unwrap_or_else(|| panic!("{src} not in {:?}", d.link_names()));
                    assert_eq!(l["link"], PARENT, "{l}");
                    assert_eq!(l["linkinfo"]["info_kind"], "macvlan", "{l}");
                    assert_eq!(l["linkinfo"]["info_data"]["mode"], "bridge", "{l}");
                    assert!(
                        !l["flags"].as_array().unwrap().contains(&json!("UP")),
                        "{l}"
                    );
                    let gw = answer["Gateway"].as_str().unwrap();
                    assert!(gw.ends_with(".1"), "{answer}");
                }
                _ => {}
            }
        }
        assert_eq!(endpoints_live, 0);
        // Docker moved no link here, so DeleteEndpoint deleted each one from this namespace.
        assert_eq!(
            d.link_names(),
            vec![PARENT.to_string(), "lo".into(), "wire0".into()]
        );
        assert_eq!(d.state_files("networks"), Vec::<String>::new());
        assert_eq!(d.state_files("endpoints"), Vec::<String>::new());
        assert_eq!(
            d.state_files(underlay_docker::POOLS_DIR),
            Vec::<String>::new()
        );
        assert_eq!(d.state_files("ipam"), Vec::<String>::new());
    });
}

/// The pool id the recording driver gave for `req` (`hcf-SPACE/POOL`).
fn recorded_pool_id(req: &Value) -> String {
    format!(
        "hcf-{}/{}",
        req["AddressSpace"].as_str().unwrap(),
        req["Pool"].as_str().unwrap()
    )
}

/// A network made as Docker makes one: pool, gateway, CreateNetwork with `generic` options.
async fn network(d: &Dockerd, id: &str, subnet: &str, generic: Value) -> (StatusCode, Value) {
    let pool = d
        .ok(
            "/IpamDriver.RequestPool",
            &json!({"AddressSpace": "local", "Pool": subnet, "SubPool": "", "Options": {}, "V6": false}),
        )
        .await;
    let pool_id = pool["PoolID"].as_str().unwrap();
    let gw = d
        .ok(
            "/IpamDriver.RequestAddress",
            &json!({"PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
        )
        .await;
    d.call(
        "/NetworkDriver.CreateNetwork",
        &json!({
            "NetworkID": id,
            "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": generic},
            "IPv4Data": [{"AddressSpace": "local", "Pool": subnet, "Gateway": gw["Address"]}],
            "IPv6Data": [],
        }),
    )
    .await
}

const NET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const EP: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// Malformed requests: 400 with a message naming the problem, in the API's own key; the plugin
/// keeps serving.
#[test]
fn malformed_requests_are_400_in_the_right_key() {
    if !root("malformed_requests_are_400_in_the_right_key") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("bad").await;
        let bad = StatusCode::BAD_REQUEST;
        // Missing fields.
        d.refused(
            "/NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": NET}),
            bad,
            "EndpointID",
        )
        .await;
        d.refused(
            "/NetworkDriver.CreateNetwork",
            &json!({"Options": {}}),
            bad,
            "NetworkID",
        )
        .await;
        d.refused(
            "/NetworkDriver.Join",
            &json!({"NetworkID": NET, "EndpointID": EP}),
            bad,
            "SandboxKey",
        )
        .await;
        d.refused(
            "/IpamDriver.RequestAddress",
            &json!({"Address": ""}),
            bad,
            "PoolID",
        )
        .await;
        d.refused(
            "/IpamDriver.ReleaseAddress",
            &json!({"PoolID": "local/10.0.0.0/24"}),
            bad,
            "Address",
        )
        .await;
        d.refused(
            "/IpamDriver.RequestPool",
            &json!({"Pool": "10.0.0.0/24"}),
            bad,
            "AddressSpace",
        )
        .await;
        // Wrong types.
        d.refused(
            "/IpamDriver.RequestPool",
            &json!({"AddressSpace": "local", "Pool": "10.0.0.0/24", "V6": "yes"}),
            bad,
            "V6",
        )
        .await;
        d.refused(
            "/NetworkDriver.CreateNetwork",
            &json!({"NetworkID": 7}),
            bad,
            "NetworkID",
        )
        .await;
        d.refused(
            "/NetworkDriver.CreateNetwork",
            &json!({"NetworkID": NET, "Options": {"com.docker.network.generic": {"parent": 1}}}),
            bad,
            "generic",
        )
        .await;
        d.refused(
            "/NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": NET, "EndpointID": EP, "Interface": "eth0"}),
            bad,
            "Interface",
        )
        .await;
        // Not JSON, no body, a JSON array.
        for body in [&b"{"[..], b"", b"[]", b"null"] {
            let (s, v) = d.plugin.call("/NetworkDriver.DeleteNetwork", body).await;
            assert_eq!(s, bad, "{v}");
            assert!(v["Err"].as_str().unwrap().contains("DeleteNetwork"), "{v}");
            let (s, v) = d.plugin.call("/IpamDriver.ReleasePool", body).await;
            assert_eq!(s, bad, "{v}");
            assert!(v["Error"].as_str().unwrap().contains("ReleasePool"), "{v}");
        }
        // An unknown call.
        let (s, v) = d
            .plugin
            .call("/NetworkDriver.AllocateNetworkX", b"{}")
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        // Still serving.
        d.ok("/Plugin.Activate", &Value::Null).await;
    });
}

/// Refusals by the library: unknown network ids, bad options, overlapping subnets, a missing
/// parent, a taken address; each a clear error in Docker's shape, leaving nothing behind.
#[test]
fn refusals_say_why_and_leave_nothing() {
    if !root("refusals_say_why_and_leave_nothing") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("refuse").await;
        let ok = StatusCode::OK;
        // Unknown network ids.
        let ep = json!({"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.9.0.5/24"}});
        d.refused("/NetworkDriver.CreateEndpoint", &ep, ok, "not one of underlay's").await;
        d.refused("/NetworkDriver.Join", &json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"}), ok, "not one of underlay's").await;
        d.refused("/NetworkDriver.EndpointOperInfo", &json!({"NetworkID": NET, "EndpointID": EP}), ok, "not one of underlay's").await;
        // Idempotent removals of what is not there.
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": EP})).await;
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        d.refused("/IpamDriver.RequestAddress", &json!({"PoolID": "local/10.77.0.0/24", "Address": ""}), ok, "unknown to underlay's IPAM").await;
        d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": "local/10.77.0.0/24", "Address": "10.77.0.3"})).await;
        d.ok("/IpamDriver.ReleasePool", &json!({"PoolID": "local/10.77.0.0/24"})).await;
        // Bad options; a parent that does not exist.
        for (generic, needle) in [
            (json!({"parent": "nosuch0"}), "nosuch0"),
            (json!({"parent": PARENT, "macvlan_mode": "sideways"}), "sideways"),
            (json!({"parent": PARENT, "ipvlan_mode": "l9"}), "l9"),
            (json!({"parent": PARENT, "underlay.bogus": "1"}), "underlay.bogus"),
            (json!({"parent": PARENT, "underlay.driver": "bridge"}), "bridge"),
            (json!({"parent": PARENT, "underlay.host_access": "yes please"}), "host_access"),
            (json!({"parent": PARENT, "com.docker.network.driver.mtu": "jumbo"}), "jumbo"),
            (json!({"parent": PARENT, "com.docker.network.driver.mtu": "9000"}), "9000"),
        ] {
            let (s, v) = network(&d, NET, "10.9.0.0/24", generic).await;
            assert_eq!(s, ok, "{v}");
            let msg = v["Err"].as_str().unwrap_or_else(|| panic!("{v}"));
            assert!(msg.contains(needle), "`{msg}` lacks `{needle}`");
            // As Docker does after a failed CreateNetwork.
            d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": "10.9.0.1"})).await;
            d.ok("/IpamDriver.ReleasePool", &json!({"PoolID": "local/10.9.0.0/24"})).await;
            assert_eq!(d.state_files("networks"), Vec::<String>::new(), "{needle}");
            assert_eq!(d.link_names(), vec![PARENT.to_string(), "lo".into(), "wire0".into()]);
        }
        // Overlapping subnets: the pool is refused by the IPAM driver.
        let (s, v) = network(&d, NET, "10.9.0.0/24", json!({"parent": PARENT})).await;
        assert_eq!(s, ok);
        assert!(v.get("Err").is_none(), "{v}");
        d.refused(
            "/IpamDriver.RequestPool",
            &json!({"AddressSpace": "local", "Pool": "10.9.0.0/23", "SubPool": "", "V6": false}),
            ok,
            "overlaps",
        )
        .await;
        // The same subnet with another --ip-range: another definition, refused.
        d.refused(
            "/IpamDriver.RequestPool",
            &json!({"AddressSpace": "local", "Pool": "10.9.0.0/24", "SubPool": "10.9.0.128/25", "V6": false}),
            ok,
            "10.9.0.0/24",
        )
        .await;
        // A taken address; a bad one; host bits; a V6 flag that disagrees; no subnet.
        // (dockerd sends each endpoint's MAC: the plugin requires it.)
        let mac = |m: &str| json!({"com.docker.network.endpoint.macaddress": m});
        d.ok("/IpamDriver.RequestAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": "10.9.0.5", "Options": mac("02:42:0a:09:00:05")})).await;
        d.refused("/IpamDriver.RequestAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": "10.9.0.5", "Options": mac("02:42:0a:09:00:06")}), ok, "10.9.0.5").await;
        d.refused("/IpamDriver.RequestAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": "10.9.1.5", "Options": mac("02:42:0a:09:00:06")}), ok, "10.9.1.5").await;
        d.refused("/IpamDriver.RequestAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": "", "Options": mac("02:42:0a:09:00:0g")}), ok, "02:42:0a:09:00:0g").await;
        d.refused("/IpamDriver.RequestAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": "ten"}), ok, "ten").await;
        d.refused("/IpamDriver.RequestPool", &json!({"AddressSpace": "local", "Pool": "10.8.0.1/24"}), ok, "host bits").await;
        d.refused("/IpamDriver.RequestPool", &json!({"AddressSpace": "local", "Pool": "10.8.0.0/24", "V6": true}), ok, "V6").await;
        d.refused("/IpamDriver.RequestPool", &json!({"AddressSpace": "local", "Pool": ""}), ok, "--subnet").await;
        // An endpoint on an address another endpoint of this host holds.
        let ep1 = json!({"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.9.0.5/24"}});
        d.ok("/NetworkDriver.CreateEndpoint", &ep1).await;
        let ep2 = json!({"NetworkID": NET, "EndpointID": NET, "Interface": {"Address": "10.9.0.5/24"}});
        d.refused("/NetworkDriver.CreateEndpoint", &ep2, ok, "10.9.0.5").await;
        d.refused("/NetworkDriver.CreateEndpoint", &json!({"NetworkID": NET, "EndpointID": "a b", "Interface": {"Address": "10.9.0.6/24"}}), ok, "a b").await;
        // The network with an endpoint cannot go.
        d.refused("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET}), ok, "active endpoints").await;
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": EP})).await;
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        // A pool with leases cannot go; once released it can.
        d.refused("/IpamDriver.ReleasePool", &json!({"PoolID": "local/10.9.0.0/24"}), ok, "release them first").await;
        for a in ["10.9.0.5", "10.9.0.1"] {
            d.ok("/IpamDriver.ReleaseAddress", &json!({"PoolID": "local/10.9.0.0/24", "Address": a})).await;
        }
        d.ok("/IpamDriver.ReleasePool", &json!({"PoolID": "local/10.9.0.0/24"})).await;
        assert_eq!(d.state_files(underlay_docker::POOLS_DIR), Vec::<String>::new());
        assert_eq!(d.link_names(), vec![PARENT.to_string(), "lo".into(), "wire0".into()]);
    });
}

/// Docker moves the prepared link into the container and the container's namespace dies with
/// it: DeleteEndpoint accepts the link gone. A link Docker moved back (on Leave) under its
/// temporary name is deleted. A link that vanished without a word is found by reconcile.
#[test]
fn moved_links_gone_or_back() {
    if !root("moved_links_gone_or_back") {
        return;
    }
    rt().block_on(async {
        let d = Dockerd::new("moved").await;
        let (_, v) = network(&d, NET, "10.9.0.0/24", json!({"parent": PARENT, "underlay.host_access": "10.9.0.2"})).await;
        assert!(v.get("Err").is_none(), "{v}");
        let mut srcs = Vec::new();
        for (i, ep) in ["e1", "e2", "e3"].iter().enumerate() {
            d.ok("/NetworkDriver.CreateEndpoint", &json!({"NetworkID": NET, "EndpointID": ep, "Interface": {"Address": format!("10.9.0.{}/24", 10 + i)}})).await;
            let j = d.ok("/NetworkDriver.Join", &json!({"NetworkID": NET, "EndpointID": ep, "SandboxKey": "/nowhere"})).await;
            srcs.push(j["InterfaceName"]["SrcName"].as_str().unwrap().to_string());
            // The shim routes to it (oracle: ip route).
            let out = ip(&["-n", &d.ns, "-j", "route", "show", &format!("10.9.0.{}", 10 + i)]);
            let routes: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(routes.as_array().map(Vec::len), Some(1), "{routes}");
        }
        // The shim has the address asked for.
        let out = ip(&["-n", &d.ns, "-j", "addr", "show"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"10.9.0.2\""));
        // As Docker: each link moved into a "container" namespace, renamed eth0.
        let containers: Vec<String> = (0..3).map(|i| unique(&format!("c{i}"))).collect();
        for (c, src) in containers.iter().zip(&srcs) {
            assert!(ip(&["netns", "add", c]).status.success());
            assert!(ip(&["-n", &d.ns, "link", "set", src, "netns", c, "name", "eth0"]).status.success());
        }
        // Reconcile now: every container is alive, nothing is gone.
        let r = d.plugin.reconcile().await.unwrap();
        assert!(r.gone_endpoints.is_empty(), "{r:?}");
        // e1: the container's namespace died with the link; DeleteEndpoint accepts it gone.
        ip(&["netns", "del", &containers[0]]);
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": "e1"})).await;
        // e2: moved back on Leave under its temporary name: DeleteEndpoint deletes it.
        assert!(ip(&["-n", &containers[1], "link", "set", "eth0", "netns", &d.ns, "name", &srcs[1]]).status.success());
        d.ok("/NetworkDriver.Leave", &json!({"NetworkID": NET, "EndpointID": "e2"})).await;
        d.ok("/NetworkDriver.DeleteEndpoint", &json!({"NetworkID": NET, "EndpointID": "e2"})).await;
        assert!(!d.link_names().contains(&srcs[1]), "{:?}", d.link_names());
        ip(&["netns", "del", &containers[1]]);
        // e3: the container died and Docker said nothing: reconcile undoes it.
        ip(&["netns", "del", &containers[2]]);
        let r = d.plugin.reconcile().await.unwrap();
        assert_eq!(r.gone_endpoints.len(), 1, "{r:?}");
        assert_eq!(r.gone_endpoints[0].container_id, "e3");
        let out = ip(&["-n", &d.ns, "-j", "route", "show", "10.9.0.12"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
        assert_eq!(d.state_files("endpoints"), Vec::<String>::new());
        d.ok("/NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET})).await;
        assert_eq!(d.link_names(), vec![PARENT.to_string(), "lo".into(), "wire0".into()]);
    });
}

/// The HTTP layer: any path posts to the plugin; answers carry the plugin API's content type.
#[test]
fn http_router_answers_with_the_plugin_content_type() {
    if !root("http_router_answers_with_the_plugin_content_type") {
        return;
    }
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    rt().block_on(async {
        let d = Dockerd::new("http").await;
        let req = axum::http::Request::post("/Plugin.Activate")
            .header("Accept", "application/vnd.docker.plugins.v1.2+json")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = d.plugin.clone().router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            underlay_docker::CONTENT_TYPE
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Implements"], json!(["NetworkDriver", "IpamDriver"]));
        let req = axum::http::Request::post("/IpamDriver.RequestPool")
            .body(axum::body::Body::from("{\"AddressSpace\": 1}"))
            .unwrap();
        let resp = d.plugin.clone().router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    });
}

//! Test helpers: throwaway namespaces and the iproute2 oracle.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use underlay::{Handle, Netns};

/// True when the kernel tests can run; otherwise says loudly why they skip.
pub(crate) fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED {test}: kernel tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); CI runs them as root");
    }
    root
}

/// A named namespace made for one test, deleted (with every link in it) on drop.
pub(crate) struct TestNs {
    pub(crate) name: String,
    pub(crate) ns: Netns,
    pub(crate) handle: Handle,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestNs {
    pub(crate) async fn new(tag: &str) -> TestNs {
        let name = format!(
            "ult-{}-{}-{}",
            tag,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns::create(&name).expect("create test namespace");
        let handle = Handle::for_netns(&ns)
            .await
            .expect("handle in test namespace");
        TestNs { name, ns, handle }
    }

    /// A namespace with a veth pair `a`/`b` inside, both up: `a` serves as a parent NIC.
    pub(crate) async fn with_veth(tag: &str, a: &str, b: &str) -> TestNs {
        let t = TestNs::new(tag).await;
        underlay::Veth::create(&t.handle, a, b)
            .up()
            .peer_up()
            .execute()
            .await
            .expect("veth");
        t
    }

    /// `ip -n NAME -d -j <args>` parsed.
    pub(crate) fn ip(&self, args: &[&str]) -> Value {
        ip_json(&self.name, args)
    }

    /// The oracle's view of one link, or None if absent.
    pub(crate) fn ip_link(&self, name: &str) -> Option<Value> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-d", "-j", "link", "show", "dev", name])
            .output()
            .expect("run ip");
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("ip json");
        v.as_array().and_then(|a| a.first().cloned())
    }

    /// Runs a command inside the namespace and returns stdout.
    pub(crate) fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete(&self.name) {
            eprintln!("cleanup of {} failed: {e}", self.name);
        }
    }
}

pub(crate) fn ip_json(ns: &str, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "-j"])
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
        return Value::Array(vec![]);
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ip {args:?}: bad JSON: {e}"))
}

/// The kernel's `info_kind` and `info_data` for a link in the oracle's JSON.
pub(crate) fn info(link: &Value) -> (&str, &Value) {
    let li = &link["linkinfo"];
    (li["info_kind"].as_str().unwrap_or(""), &li["info_data"])
}

/// The oracle's `address/prefix` list of one link (`ip -j addr show dev DEV`).
pub(crate) fn ip_addrs(t: &TestNs, dev: &str) -> Vec<String> {
    if t.ip_link(dev).is_none() {
        return Vec::new();
    }
    let v = t.ip(&["addr", "show", "dev", dev]);
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect()
}

/// Deletes the named namespaces whose name starts with `prefix` (a churn test's own).
pub(crate) fn remove_namespaces(prefix: &str) {
    for ns in underlay::Netns::list().unwrap_or_default() {
        if ns.starts_with(prefix) {
            let _ = underlay::Netns::delete(&ns);
        }
    }
}

/// A churn round's child processes, killed (-9) when dropped, also when the test fails.
pub(crate) struct Children(pub(crate) Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes the namespaces of a run (by their name's prefix) when dropped.
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_namespaces(&self.0);
    }
}

/// IPv4 addresses on `dev` in namespace `ns` (the oracle).
pub(crate) fn ipv4_of(ns: &str, dev: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-j", "-4", "addr", "show", "dev", dev])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(String::from))
        .collect()
}

//! Helpers of the `vm` test binary: throwaway namespaces and the iproute2 oracle.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// A test's result: the message says what failed.
pub(crate) type Check<T = ()> = Result<T, String>;

/// A named network namespace made for one test, deleted (with every link in it) on drop, also
/// when the test fails or panics.
pub(crate) struct TestNs {
    pub(crate) name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn describe(command: &Command, out: &Output) -> String {
    format!(
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

fn run(command: &mut Command) -> Check<Output> {
    command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))
}

fn run_ok(command: &mut Command) -> Check<Output> {
    let out = run(command)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(describe(command, &out))
    }
}

impl TestNs {
    /// `ip netns add ulvm-<tag>-<pid>-<n>`.
    pub(crate) fn new(tag: &str) -> Check<TestNs> {
        let name = format!(
            "ulvm-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = TestNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace holding a veth pair `a`/`b`, both up: `a` serves as a parent NIC.
    pub(crate) fn with_veth(tag: &str, a: &str, b: &str) -> Check<TestNs> {
        let ns = TestNs::new(tag)?;
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
        ns.ip(&["link", "set", a, "up"])?;
        ns.ip(&["link", "set", b, "up"])?;
        Ok(ns)
    }

    /// `ip -n <ns> <args>`, failing with iproute2's message.
    pub(crate) fn ip(&self, args: &[&str]) -> Check<Output> {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// `ip -n <ns> <args>`, whatever its outcome.
    pub(crate) fn try_ip(&self, args: &[&str]) -> Check<Output> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// The oracle's view of one link: `ip -d -j link show dev <name>`.
    pub(crate) fn link(&self, name: &str) -> Check<Value> {
        let out = self.ip(&["-d", "-j", "link", "show", "dev", name])?;
        let value: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("ip -j link show {name}: bad JSON: {e}"))?;
        value
            .as_array()
            .and_then(|links| links.first().cloned())
            .ok_or_else(|| format!("ip -j link show {name}: no such link in {}", self.name))
    }

    /// Runs a program inside the namespace (`ip netns exec`).
    pub(crate) fn exec(&self, program: &[&str]) -> Check<Output> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(program))
    }

    /// Whether `ping -c1 -W1 <addr>` from inside the namespace gets an answer.
    pub(crate) fn pings(&self, addr: &str) -> Check<bool> {
        Ok(self
            .exec(&["ping", "-n", "-q", "-c1", "-W1", addr])?
            .status
            .success())
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "cleanup: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("cleanup: ip netns del {}: {e}", self.name),
        }
    }
}

/// `actual` equals `expected`, or a message naming `what`.
pub(crate) fn expect_eq(what: &str, actual: &Value, expected: impl Into<Value>) -> Check {
    let expected = expected.into();
    if *actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected}, got {actual}"))
    }
}

/// Which of the features the tests need the running kernel lacks, found by trying them in a
/// throwaway namespace: `["8021q", "ipvlan"]` on a kernel without either.
pub(crate) fn missing_kernel_features() -> Check<Vec<&'static str>> {
    let ns = TestNs::with_veth("probe", "v0", "v1")?;
    let mut missing = Vec::new();
    for (feature, args) in [
        (
            "8021q",
            &[
                "link", "add", "link", "v0", "name", "v0.10", "type", "vlan", "id", "10",
            ][..],
        ),
        (
            "ipvlan",
            &[
                "link", "add", "link", "v0", "name", "ipv0", "type", "ipvlan", "mode", "l2",
            ][..],
        ),
    ] {
        if !ns.try_ip(args)?.status.success() {
            missing.push(feature);
        }
    }
    Ok(missing)
}

/// Whether this process runs as root (kernel tests need CAP_NET_ADMIN and CAP_SYS_ADMIN).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

//! Test helpers: throwaway namespaces (made and removed with iproute2), the plugin run as
//! libcni runs it, and the iproute2 oracle.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// The plugin binary cargo built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_underlay-cni");

/// True when the kernel tests can run; otherwise says loudly why they skip.
pub(crate) fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED {test}: the plugin tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); CI runs them as root");
    }
    root
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "ulc-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

/// A named namespace, deleted (with its links) on drop.
pub(crate) struct Ns {
    pub(crate) name: String,
}

impl Ns {
    pub(crate) fn new(tag: &str) -> Ns {
        let name = unique(tag);
        let out = ip(&["netns", "add", &name]);
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Ns { name }
    }

    /// The namespace's path, as runtimes pass it in CNI_NETNS.
    pub(crate) fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NAME args`, which must succeed.
    pub(crate) fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        let out = ip(&all);
        assert!(out.status.success(), "ip {all:?}: {out:?}");
    }

    fn ip_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-n", self.name.as_str(), "-j"];
        all.extend_from_slice(args);
        let out = ip(&all);
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The MAC of `dev`, None if it is absent.
    pub(crate) fn link_mac(&self, dev: &str) -> Option<String> {
        self.ip_json(&["link", "show", "dev", dev])
            .get(0)?
            .get("address")?
            .as_str()
            .map(str::to_string)
    }

    /// The names of every link.
    pub(crate) fn links(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ip_json(&["link", "show"])
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The global IPv4/IPv6 addresses of `dev` as `ADDR/LEN`.
    pub(crate) fn addrs(&self, dev: &str) -> Vec<String> {
        self.addrs_shown(&["addr", "show", "dev", dev, "scope", "global"])
    }

    /// The addresses `ip -j <args>` lists for its first link, as `ADDR/LEN`.
    fn addrs_shown(&self, args: &[&str]) -> Vec<String> {
        let v = self.ip_json(args);
        v.get(0)
            .and_then(|l| l["addr_info"].as_array())
            .map(|a| {
                // iproute2 lists addresses its filter dropped as empty objects.
                a.iter()
                    .filter_map(|i| Some(format!("{}/{}", i["local"].as_str()?, i["prefixlen"])))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The MTU of `dev`.
    pub(crate) fn mtu(&self, dev: &str) -> Option<u64> {
        self.ip_json(&["link", "show", "dev", dev])
            .get(0)?
            .get("mtu")?
            .as_u64()
    }

    /// Every address of `dev` (any scope, both families) as `ADDR/LEN`.
    pub(crate) fn all_addrs(&self, dev: &str) -> Vec<String> {
        self.addrs_shown(&["addr", "show", "dev", dev])
    }

    /// The main table's routes as `DST[ via GW]` (`default` for the default route).
    pub(crate) fn routes(&self, family: &str) -> Vec<String> {
        let v = self.ip_json(&[family, "route", "show"]);
        let mut out: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| match r["gateway"].as_str() {
                        Some(gw) => format!("{} via {gw}", r["dst"].as_str().unwrap()),
                        None => r["dst"].as_str().unwrap().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Whether the main table has a default route via `gw`.
    pub(crate) fn has_default_via(&self, gw: &str) -> bool {
        self.ip_json(&["route", "show", "default"])
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["gateway"] == gw))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The "host": a namespace whose veth end `parent` is the parent NIC the plugin uses.
pub(crate) struct Host {
    pub(crate) ns: Ns,
    pub(crate) parent: String,
}

impl Host {
    pub(crate) fn new(tag: &str) -> Host {
        let ns = Ns::new(tag);
        ns.ip(&[
            "link", "add", "par0", "type", "veth", "peer", "name", "wire0",
        ]);
        ns.ip(&["link", "set", "par0", "up"]);
        ns.ip(&["link", "set", "wire0", "up"]);
        Host {
            ns,
            parent: "par0".into(),
        }
    }

    /// A container namespace (empty but for `lo`).
    pub(crate) fn container(&self, tag: &str) -> Ns {
        Ns::new(&format!(
            "{}-{tag}",
            self.ns.name.rsplit('-').next().unwrap_or("c")
        ))
    }
}

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// `sub` under it, as a string for configs.
    pub(crate) fn path(&self, sub: &str) -> String {
        self.0.join(sub).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One plugin call: the `CNI_*` variables and stdin.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    binary: PathBuf,
    env: Vec<(&'static str, String)>,
    /// Variables beyond the `CNI_*` ones (test hooks).
    extra_env: Vec<(&'static str, String)>,
    stdin: String,
}

/// What a call printed and how it exited.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// stdout parsed (Null when empty).
    pub(crate) json: Value,
}

impl Call {
    pub(crate) fn new(command: &str) -> Call {
        Call {
            binary: PathBuf::from(BIN),
            env: vec![
                ("CNI_COMMAND", command.to_string()),
                ("CNI_IFNAME", "eth0".into()),
                ("CNI_PATH", "/opt/cni/bin".into()),
                ("CNI_ARGS", String::new()),
            ],
            stdin: String::new(),
            extra_env: Vec::new(),
        }
    }

    /// Another environment variable (a test hook).
    pub(crate) fn env(mut self, key: &'static str, value: &str) -> Call {
        self.extra_env.push((key, value.to_string()));
        self
    }

    fn set(mut self, key: &'static str, value: &str) -> Call {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_string()));
        self
    }

    pub(crate) fn command(self, c: &str) -> Call {
        self.set("CNI_COMMAND", c)
    }

    pub(crate) fn container(self, id: &str, netns: &str) -> Call {
        self.set("CNI_CONTAINERID", id).set("CNI_NETNS", netns)
    }

    pub(crate) fn ifname(self, name: &str) -> Call {
        self.set("CNI_IFNAME", name)
    }

    pub(crate) fn args(self, args: &str) -> Call {
        self.set("CNI_ARGS", args)
    }

    pub(crate) fn stdin(mut self, conf: Value) -> Call {
        self.stdin = serde_json::to_string(&conf).unwrap();
        self
    }

    pub(crate) fn stdin_raw(mut self, raw: &str) -> Call {
        self.stdin = raw.to_string();
        self
    }

    pub(crate) fn cni_path(self, path: &str) -> Call {
        self.set("CNI_PATH", path)
    }

    pub(crate) fn binary(mut self, path: &Path) -> Call {
        self.binary = path.to_path_buf();
        self
    }

    fn command_in(&self, host: Option<&Host>) -> Command {
        let mut cmd = match host {
            // The runtime's namespace: the plugin runs there, as under a runtime.
            Some(h) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", h.ns.path())).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(self.extra_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn start(&self, host: Option<&Host>) -> Child {
        use std::io::Write;
        let mut child = self.command_in(host).spawn().expect("start the plugin");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(self.stdin.as_bytes()).unwrap();
        drop(stdin);
        child
    }

    /// Runs the plugin in the host namespace `host`.
    pub(crate) fn run(&self, host: &Host) -> Outcome {
        wait(self.start(Some(host)))
    }

    /// Starts the plugin in `host` without waiting (see [`wait`]).
    pub(crate) fn spawn(&self, host: &Host) -> Child {
        self.start(Some(host))
    }

    /// Starts the plugin in the test thread's namespace without waiting (see [`wait`]).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn spawn_here(&self) -> Child {
        self.start(None)
    }

    /// Runs the plugin in the test's own namespace (calls that touch no link).
    pub(crate) fn run_here(&self) -> Outcome {
        wait(self.start(None))
    }
}

/// Waits for a plugin process and reads what it printed.
pub(crate) fn wait(child: Child) -> Outcome {
    let out = child.wait_with_output().expect("wait for the plugin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        json: if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
        },
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A namespace of [`Ns`] as the library sees it (for the DHCP test server shared with the
/// core tests, `core/tests/it/dhcp_server.rs`); the [`Ns`] owns it and deletes it.
pub(crate) struct TestNs {
    #[allow(dead_code)]
    pub(crate) name: String,
    pub(crate) ns: underlay::Netns,
    pub(crate) handle: underlay::Handle,
}

impl TestNs {
    pub(crate) async fn of(ns: &Ns) -> TestNs {
        let netns = underlay::Netns::open_path(ns.path()).expect("open the test namespace");
        let handle = underlay::Handle::for_netns(&netns)
            .await
            .expect("netlink in the test namespace");
        TestNs {
            name: ns.name.clone(),
            ns: netns,
            handle,
        }
    }
}

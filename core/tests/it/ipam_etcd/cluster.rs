//! Real etcd members for tests and benchmarks: `etcd` processes on free 127.0.0.1 ports, data
//! in a temporary directory, killed by PID (SIGKILL) on drop even when the test fails. Also used
//! by benches/ipam_etcd.rs (`#[path]`), so it depends on nothing but std and serde_json.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// True if `etcd` and `etcdctl` are installed; otherwise says loudly that the caller skips.
pub(crate) fn available(test: &str) -> bool {
    let ok = [("etcd", "--version"), ("etcdctl", "version")]
        .iter()
        .all(|(b, arg)| {
            Command::new(b)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !ok {
        eprintln!(
            "SKIPPED {test}: etcd is not installed (`apt-get install etcd-server etcd-client`, \
             or run `cargo xtask etcd-test`)"
        );
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A loopback URL on which nothing listens (for "etcd unreachable").
pub(crate) fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// One to N etcd members forming one cluster.
pub(crate) struct Cluster {
    dir: PathBuf,
    members: Vec<Member>,
    initial: String,
    token: String,
    /// A directory with `ca.pem`, `node.pem`, `node-key.pem`: clients must use TLS and a
    /// certificate signed by the CA.
    tls: Option<PathBuf>,
}

impl Cluster {
    /// Starts `n` members and waits until every one is healthy.
    pub(crate) fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None)
    }

    /// One member serving TLS only, requiring client certificates; makes the certificates
    /// with `openssl` (see [`Cluster::tls_dir`]).
    pub(crate) fn start_tls() -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "underlay-etcd-certs-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let sh = "set -e
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 \
                -subj /CN=underlay-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout node-key.pem -out node.csr \
                -subj /CN=localhost 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > ext
            openssl x509 -req -in node.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
                -out node.pem -days 1 -extfile ext 2>/dev/null";
        let ok = Command::new("sh")
            .args(["-c", sh])
            .current_dir(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl could not make the test certificates");
        Cluster::start_with(1, Some(dir))
    }

    /// The certificates of a TLS cluster.
    pub(crate) fn tls_dir(&self) -> Option<&Path> {
        self.tls.as_deref()
    }

    fn start_with(n: usize, tls: Option<PathBuf>) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "underlay-etcd-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut c = Cluster {
            dir,
            members,
            initial,
            token,
            tls,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_healthy(i);
        }
        c
    }

    /// The temporary directory (data and logs).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let data = self.dir.join(&m.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", m.name)))
            .unwrap();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let mut cmd = Command::new("etcd");
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(t.join("node.pem"))
                .arg("--key-file")
                .arg(t.join("node-key.pem"))
                .arg("--trusted-ca-file")
                .arg(t.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    fn wait_healthy(&self, i: usize) {
        let t = Instant::now();
        loop {
            if self.ctl_at(i, &["endpoint", "health"]).is_some() {
                return;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("{}.log", self.members[i].name)))
                        .unwrap_or_default();
                panic!("etcd member {i} did not become healthy in 30 s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every member's client URL.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s client URL.
    pub(crate) fn endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client)
    }

    /// `etcdctl` against member `i` (the independent oracle); stdout, or None on failure.
    pub(crate) fn ctl_at(&self, i: usize, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("etcdctl");
        if let Some(t) = &self.tls {
            cmd.arg(format!("--cacert={}", t.join("ca.pem").display()))
                .arg(format!("--cert={}", t.join("node.pem").display()))
                .arg(format!("--key={}", t.join("node-key.pem").display()));
        }
        let out = cmd
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint(i)))
            .args(["--command-timeout=3s", "--dial-timeout=1s"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `etcdctl` against the first member that answers; panics if none does.
    pub(crate) fn ctl(&self, args: &[&str]) -> String {
        (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .find_map(|i| self.ctl_at(i, args))
            .unwrap_or_else(|| panic!("etcdctl {args:?} failed on every member"))
    }

    /// The index of the current leader (waits for one, up to 30 s).
    pub(crate) fn leader(&self) -> usize {
        let t = Instant::now();
        loop {
            for i in 0..self.members.len() {
                if self.members[i].child.is_none() {
                    continue;
                }
                if let Some(s) = self.ctl_at(i, &["endpoint", "status", "-w", "json"]) {
                    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
                    let st = &v[0]["Status"];
                    let (leader, me) = (&st["leader"], &st["header"]["member_id"]);
                    if leader.as_u64().is_some_and(|l| l != 0) && leader == me {
                        return i;
                    }
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no etcd leader after 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The raft index member `i` has applied (from `endpoint status`).
    pub(crate) fn applied_index(&self, i: usize) -> Option<u64> {
        let s = self.ctl_at(i, &["endpoint", "status", "-w", "json"])?;
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        v[0]["Status"]["raftIndex"].as_u64()
    }

    /// SIGKILLs member `i` (by PID) and reaps it.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes member `i` (SIGSTOP by PID): its connections stay open, it answers nothing.
    pub(crate) fn freeze(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// Lets a frozen member `i` run again (SIGCONT).
    pub(crate) fn thaw(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.members[i].child.as_ref().expect("member runs").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// Starts member `i` again on its old data and waits until it is healthy.
    pub(crate) fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} still runs");
        self.spawn(i);
        self.wait_healthy(i);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(t) = &self.tls {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

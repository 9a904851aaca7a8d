//! `cargo xtask docker-test`: the Docker plugin (underlay-docker), in-process and under a real
//! dockerd.
//!
//! Installs docker.io and busybox-static with apt if missing (under a `policy-rc.d` that exits
//! 101, so that no service starts), then runs `cargo test -p underlay-docker --locked [args]`
//! (the plugin's HTTP API replaying recorded dockerd calls, and mutated bad ones, against the
//! kernel in throwaway namespaces), builds the plugin and, as root, runs
//! `docker/tests/e2e.sh`: dockerd 20.10 in a network namespace of its own with containers on
//! `docker network create -d underlay --ipam-driver underlay` (see the script's header); then,
//! without arguments, the in-process tests that need 8021q and ipvlan (`vm_*`: VLAN parents
//! made on demand, ipvlan endpoints) in the qemu VM, one boot ([`crate::vm_tests`]). With
//! `--etcd`, then the in-process test of two plugins on one etcd member
//! (`shared_pool::`, feature `etcd`) and `docker/tests/e2e-etcd.sh`: two dockerd hosts on one
//! etcd-backed pool (the plugin built with its `etcd` feature; etcd and protoc installed if
//! missing). `cargo xtask test` runs it with `--etcd` (about 70 s for the script here).

use std::env;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Command;

/// The Debian packages and a file each one provides.
const NEEDED: [(&str, &str); 2] = [
    ("docker.io", "/usr/sbin/dockerd"),
    ("busybox-static", "/bin/busybox"),
];

/// Installs the missing packages with apt, no service started; false if that fails.
fn install_missing() -> io::Result<bool> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(_, file)| !std::path::Path::new(file).exists())
        .map(|(p, _)| *p)
        .collect();
    // The client must be Debian's 20.10 one too (a newer one may shadow it on PATH).
    let client = std::path::Path::new("/usr/bin/docker").exists();
    if missing.is_empty() && client {
        return Ok(true);
    }
    let mut packages = missing;
    if !client && !packages.contains(&"docker.io") {
        packages.push("docker.io");
    }
    println!("docker-test: installing {}", packages.join(" "));
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists();
    if made_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    let mut ok = install()?.success();
    if !ok {
        println!("apt-get install failed; running apt-get update first");
        ok = Command::new("apt-get").arg("update").status()?.success() && install()?.success();
    }
    if made_policy {
        std::fs::remove_file(policy)?;
    }
    if !ok {
        eprintln!(
            "docker-test: could not install {}: install them by hand and run again",
            packages.join(" ")
        );
    }
    Ok(ok)
}

pub(crate) fn run(mut args: Vec<OsString>) -> io::Result<i32> {
    // `--etcd`: also two dockerd hosts on one etcd-backed pool (`cargo xtask test` asks for it).
    let etcd = args.iter().any(|a| a == "--etcd");
    args.retain(|a| a != "--etcd");
    let root = is_root();
    if root && !install_missing()? {
        return Ok(1);
    }
    // e2e.sh's DHCP network takes its addresses from dnsmasq on the wire.
    if root && !crate::etcd::install_missing("docker-test", &crate::DNSMASQ)? {
        return Ok(1);
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("==> docker plugin, in process: cargo test -p underlay-docker --locked");
    let status = Command::new(&cargo)
        .args(["test", "-p", "underlay-docker", "--locked"])
        .args(&args)
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    if !root {
        eprintln!("docker-test: not root: the dockerd end-to-end test needs root, and fails instead of skipping");
        return Ok(1);
    }
    println!("==> docker plugin, under dockerd: docker/tests/e2e.sh");
    let status = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "underlay-docker",
            "--locked",
            "--bin",
            "underlay-docker",
        ])
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    let ws = workspace_root();
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    let e2e = Command::new("bash")
        .arg(ws.join("docker/tests/e2e.sh"))
        .arg(target.join("debug/underlay-docker"))
        .status()?;
    // Arguments select in-process tests (a filter): the VM run is for the whole suite only.
    let vm = if args.is_empty() {
        crate::vm_tests::run("docker-test", &cargo, "underlay-docker", None)?
    } else {
        println!("==> docker-test: arguments given, so the VM tests (`vm_*`) are not run");
        0
    };
    if !e2e.success() {
        return Ok(e2e.code().unwrap_or(1));
    }
    if vm != 0 || !etcd {
        return Ok(vm);
    }
    println!("==> docker plugin, two dockerd hosts on one etcd pool: docker/tests/e2e-etcd.sh");
    if !crate::etcd::install_missing("docker-test --etcd", &crate::etcd::NEEDED)? {
        return Ok(1);
    }
    // The in-process test of two plugins on one etcd pool (a member of its own).
    println!("==> docker plugin, two plugins on one etcd pool, in process");
    let status = Command::new(&cargo)
        .args([
            "test",
            "-p",
            "underlay-docker",
            "--locked",
            "--features",
            "etcd",
            "--test",
            "it",
            "shared_pool::",
        ])
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    // The binary is rebuilt with the feature (the plain one's tests are done).
    let status = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "underlay-docker",
            "--locked",
            "--features",
            "etcd",
            "--bin",
            "underlay-docker",
        ])
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    let status = Command::new("bash")
        .arg(ws.join("docker/tests/e2e-etcd.sh"))
        .arg(target.join("debug/underlay-docker"))
        .status()?;
    Ok(status.code().unwrap_or(1))
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn is_root() -> bool {
    // The effective uid, from /proc (no libc call needed here).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

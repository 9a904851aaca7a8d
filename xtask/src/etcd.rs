//! `cargo xtask etcd-test`: the etcd IPAM store's tests against real etcd members.
//!
//! Installs what is missing (etcd, etcdctl, and protoc for etcd-client's build) with apt, lints
//! the workspace with every `etcd` feature on (clippy `-D warnings`), then runs
//! `cargo test -p underlay --features etcd --locked --test it ipam_etcd [args]`. The tests
//! start their own members on free 127.0.0.1 ports and stop them by PID. Then, as root, the
//! scenarios demo's etcd mode (`cargo run -p underlay-examples --features etcd --locked --bin
//! scenarios -- --etcd`): both demo hosts on one etcd-backed pool, with its own member.

use std::env;
use std::ffi::OsString;
use std::io;
use std::process::{Command, Stdio};

/// The Debian packages and a program each one provides (with an argument it answers to).
pub(crate) const NEEDED: [(&str, &str, &str); 3] = [
    ("etcd-server", "etcd", "--version"),
    ("etcd-client", "etcdctl", "version"),
    ("protobuf-compiler", "protoc", "--version"),
];

/// etcd itself, without protoc: what the Python tests need (`pip install ./py` brings its own
/// protoc from PyPI).
pub(crate) const ETCD: [(&str, &str, &str); 2] = [
    ("etcd-server", "etcd", "--version"),
    ("etcd-client", "etcdctl", "version"),
];

fn works(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn apt_install(packages: &[&str]) -> io::Result<bool> {
    let install = |pkgs: &[&str]| -> io::Result<bool> {
        Ok(Command::new("apt-get")
            .args(["install", "-y"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success())
    };
    if install(packages)? {
        return Ok(true);
    }
    println!("apt-get install failed; running apt-get update first");
    if !Command::new("apt-get").arg("update").status()?.success() {
        return Ok(false);
    }
    install(packages)
}

/// Installs with apt the packages of `needed` whose program does not run; false (having said
/// what is missing) if that fails. `task` names the caller in the messages.
pub(crate) fn install_missing(task: &str, needed: &[(&str, &str, &str)]) -> io::Result<bool> {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(_, program, arg)| !works(program, arg))
        .map(|(package, _, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    println!("{task}: installing {}", missing.join(" "));
    if apt_install(&missing)? {
        return Ok(true);
    }
    eprintln!(
        "{task}: could not install {}: install them by hand (Debian/Ubuntu package names) and \
         run again",
        missing.join(" ")
    );
    Ok(false)
}

pub(crate) fn run(args: Vec<OsString>) -> io::Result<i32> {
    if !install_missing("etcd-test", &NEEDED)? {
        return Ok(1);
    }
    let cargo: OsString = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The workspace's lint step builds without the feature: lint what it leaves out here (the
    // store, its tests and bench, the Python binding's `EtcdStore`, the demo's etcd mode).
    let features = "underlay/etcd,underlay-py/etcd,underlay-examples/etcd";
    println!("==> etcd lints: cargo clippy --workspace --all-targets --features {features}");
    let status = Command::new(&cargo)
        .args(["clippy", "--workspace", "--all-targets", "--locked"])
        .args(["--features", features, "--", "-D", "warnings"])
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    println!("==> etcd store: cargo test -p underlay --features etcd --locked --test it ipam_etcd");
    let status = Command::new(&cargo)
        .args([
            "test",
            "-p",
            "underlay",
            "--features",
            "etcd",
            "--locked",
            "--test",
            "it",
            "ipam_etcd",
        ])
        .args(args)
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    if !is_root() {
        println!(
            "==> etcd-test: SKIPPED the scenarios demo's etcd mode: it needs root (network \
             namespaces); run `cargo xtask etcd-test` as root to include it"
        );
        return Ok(0);
    }
    println!(
        "==> scenarios demo, etcd mode: cargo run -p underlay-examples --features etcd --locked \
         --bin scenarios -- --etcd"
    );
    let status = Command::new(cargo)
        .args([
            "run",
            "-p",
            "underlay-examples",
            "--features",
            "etcd",
            "--locked",
            "--bin",
            "scenarios",
            "--",
            "--etcd",
        ])
        .status()?;
    Ok(status.code().unwrap_or(1))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

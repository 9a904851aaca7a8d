//! `cargo xtask cni-test`: the CNI plugin (crate `underlay-cni`) built and run the way libcni
//! runs it, against throwaway namespaces.
//!
//! Installs Debian's `containernetworking-plugins` with apt when missing: its macvlan and
//! host-local plugins are the oracle for the result's shape and share a data directory with
//! underlay in the tests; when they cannot be installed the task fails rather than let those
//! tests skip. The plugin is built and tested with its feature `etcd` (`"store": "etcd"`, tested
//! on a real etcd), so etcd and protoc are installed too when missing ([`install_etcd`]), and
//! `dnsmasq-base` (the DHCP network tests' server). Then
//! builds the plugin and runs `cargo test -p underlay-cni --features etcd --locked [args]`.
//! Without arguments, then the plugin under real runtimes: `xtask/cni-runtimes/podman.sh`
//! (podman 4.3, CNI backend) and `containerd.sh` (containerd 1.6, `ctr run --cni`), each in
//! namespaces of its own, with podman, containerd, runc and busybox-static installed with apt
//! when missing; last, the tests that need 8021q and ipvlan (`vm_*`, ignored in a plain run)
//! in the qemu VM, one boot for all ([`run_vm_tests`]).

use std::env;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Command;

/// Where Debian puts the reference plugins.
const REFERENCE: &str = "/usr/lib/cni/macvlan";

/// Installs the reference plugins if missing; false (having said so) if that failed.
pub(crate) fn install_reference_plugins() -> io::Result<bool> {
    if Path::new(REFERENCE).exists() {
        return Ok(true);
    }
    if crate::etcd::apt_install(
        "cni-test",
        &[(
            "containernetworking-plugins",
            "the reference plugins (macvlan, host-local) the tests compare with",
        )],
    )? {
        return Ok(true);
    }
    eprintln!(
        "cni-test: could not install containernetworking-plugins: the tests that compare with \
         the reference plugins cannot run (install it with apt, or from your distribution)"
    );
    Ok(false)
}

/// The plugin's feature tested here: the etcd store.
const FEATURES: &str = "etcd";

/// Installs etcd (server and etcdctl, the tests' oracle) and protoc (the etcd client's build)
/// if missing; false (having said so) if that failed.
fn install_etcd() -> io::Result<bool> {
    let mut needed = crate::etcd::ETCD.to_vec();
    needed.push(("protobuf-compiler", "protoc", "--version"));
    crate::etcd::install_missing("cni-test", &needed)
}

pub(crate) fn run(args: Vec<OsString>) -> io::Result<i32> {
    // Without the reference plugins their comparisons could only skip: fail instead.
    if !install_reference_plugins()? || !install_etcd()? {
        return Ok(1);
    }
    // The DHCP network tests (cni/tests/it/dhcp.rs) run dnsmasq in their own namespaces.
    if !crate::etcd::install_missing("cni-test", &crate::DNSMASQ)? {
        return Ok(1);
    }
    let cargo: OsString = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("==> CNI plugin: cargo build -p underlay-cni --features {FEATURES} --locked");
    let status = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "underlay-cni",
            "--features",
            FEATURES,
            "--locked",
        ])
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    println!("==> CNI plugin tests: cargo test -p underlay-cni --features {FEATURES} --locked");
    let status = Command::new(&cargo)
        .args([
            "test",
            "-p",
            "underlay-cni",
            "--features",
            FEATURES,
            "--locked",
        ])
        .args(&args)
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    // Arguments select host tests (a filter): the VM run is for the whole suite only.
    if !args.is_empty() {
        println!("==> cni-test: arguments given, so the VM tests (`vm_*`) are not run");
        return Ok(0);
    }
    let runtimes = runtimes(&cargo)?;
    let vm = run_vm_tests(&cargo)?;
    Ok(if runtimes != 0 { runtimes } else { vm })
}

/// Runs the plugin's `vm_*` tests (VLAN parents made on demand, ipvlan) in the qemu VM: the
/// `it` test binary, `--ignored vm_`, one boot.
fn run_vm_tests(cargo: &OsString) -> io::Result<i32> {
    crate::vm_tests::run("cni-test", cargo, "underlay-cni", Some(FEATURES))
}

/// The Debian packages the runtime runs need, each with a program it provides and an argument
/// that program answers to.
const RUNTIMES: [(&str, &str, &str); 4] = [
    ("podman", "podman", "--version"),
    ("containerd", "containerd", "--version"),
    ("runc", "runc", "--version"),
    ("busybox-static", "busybox", "true"),
];

/// podman and containerd run containers on `type: underlay` networks (xtask/cni-runtimes).
fn runtimes(cargo: &OsString) -> io::Result<i32> {
    if !crate::etcd::install_missing("cni-test", &RUNTIMES)? {
        return Ok(1);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf();
    let plugin = crate::c_api::target_dir(cargo, &root)?.join("debug/underlay-cni");
    let mut failed = 0;
    for script in ["podman.sh", "containerd.sh"] {
        let path = root.join("xtask/cni-runtimes").join(script);
        println!("==> CNI plugin under a runtime: {}", path.display());
        let status = Command::new("bash").arg(&path).arg(&plugin).status()?;
        if !status.success() {
            eprintln!("cni-test: {script} failed ({status})");
            failed = status.code().unwrap_or(1);
        }
    }
    Ok(failed)
}

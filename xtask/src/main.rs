//! Automation for underlay: `cargo xtask <task>`.

use std::env;
use std::ffi::OsString;
use std::process::ExitCode;

mod c_api;
mod cni;
mod docker;
mod etcd;
mod parity;
mod python;
mod vm_tests;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test [args]              the whole suite as CI runs it: fmt check, clippy -D warnings, docs
                           -D warnings, vm-prepare, the scenarios demo, cni-test, docker-test
                           --etcd (two dockerd hosts on one etcd pool too), then
                           `cargo test --workspace --locked [args]` (the vm test binary boots
                           the VM itself when the kernel lacks 8021q/ipvlan; installs
                           dnsmasq-base with apt if missing, the DHCP tests' server)
  etcd-test [args]         the etcd IPAM store against real etcd members (installs etcd-server,
                           etcd-client and protobuf-compiler with apt if missing; clippy with
                           the etcd features first)
  cni-test [args]          the CNI plugin (underlay-cni) run as libcni runs it, in throwaway
                           namespaces (installs containernetworking-plugins with apt if
                           missing: the reference plugins are the tests' oracle), then under
                           podman and containerd (xtask/cni-runtimes; installs podman,
                           containerd, runc, busybox-static if missing)
  parity [--list]          every public Rust capability has its C and Python counterpart
                           (docs/parity.md; also a unit test of xtask)
  docker-test [--etcd] [args]
                           the Docker plugin (underlay-docker): its HTTP API in process, then
                           under a real dockerd 20.10 in its own namespace (installs docker.io
                           and busybox-static with apt if missing, no service started);
                           --etcd: then two dockerd hosts on one etcd-backed pool
  c-test [--bless] [--install PREFIX]
                           the C ABI: header up to date (--bless rewrites it), C examples and
                           tests under sanitizers; --install puts header, libraries and
                           underlay.pc under PREFIX
  py-test [args]           the Python module: fresh venv, pip install ./py, stubtest, pytest
                           (installs etcd-server and etcd-client with apt if missing)
  vm-prepare               install qemu & co. if missing, fetch and cache the guest kernel
  vm-run [--] <cmd> [args] run a command in the VM (host's / shared read-only, tmpfs overlay);
                           exits with the command's status (124 on timeout)

see docs/vm-tests.md";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let task = args.next();
    let result = match task.as_ref().and_then(|t| t.to_str()) {
        Some("test") => test(args.collect()),
        Some("etcd-test") => etcd::run(args.collect()),
        Some("cni-test") => cni::run(args.collect()),
        Some("docker-test") => docker::run(args.collect()),
        Some("c-test") => c_api::run(args.collect()),
        Some("parity") => parity::run(args.any(|a| a == "--list")),
        Some("py-test") => python::run(args.collect()),
        Some("vm-prepare") => vm_prepare(),
        Some("vm-run") => vm_run(args.collect()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(0)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(2)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(125)
        }
    }
}

/// The whole suite, as CI runs it: formatting, lints, docs, the scenarios demo, then every
/// test (unit, kernel, VM, doc). Extra arguments go to `cargo test`.
fn test(args: Vec<OsString>) -> std::io::Result<i32> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let step = |what: &str, argv: &[&str], env: &[(&str, &str)]| -> std::io::Result<bool> {
        println!("==> {what}: cargo {}", argv.join(" "));
        let status = std::process::Command::new(&cargo)
            .args(argv)
            .envs(env.iter().copied())
            .status()?;
        if !status.success() {
            eprintln!("xtask test: {what} failed ({status})");
        }
        Ok(status.success())
    };
    if !step("format", &["fmt", "--all", "--", "--check"], &[])? {
        return Ok(1);
    }
    println!("==> parity: cargo xtask parity");
    if parity::run(false)? != 0 {
        return Ok(1);
    }
    if !step(
        "lints",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )? {
        return Ok(1);
    }
    if !step(
        "docs",
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-Dwarnings")],
    )? {
        return Ok(1);
    }
    // Up front, so that apt's and the download's output come before the tests'.
    vm_prepare()?;
    if !step(
        "scenarios demo",
        &[
            "run",
            "--locked",
            "-p",
            "underlay-examples",
            "--bin",
            "scenarios",
        ],
        &[],
    )? {
        return Ok(1);
    }
    // Before the workspace's tests, which include the plugin's: its oracle is installed here.
    println!("==> CNI plugin: cargo xtask cni-test");
    let cni = cni::run(Vec::new())?;
    if cni != 0 {
        return Ok(cni);
    }
    // Before the workspace's tests too: it installs dockerd, and runs the plugin under it.
    println!("==> Docker plugin: cargo xtask docker-test --etcd");
    let docker = docker::run(vec!["--etcd".into()])?;
    if docker != 0 {
        return Ok(docker);
    }
    // The DHCP tests (core/tests/it/dhcp_dnsmasq.rs) run dnsmasq in their own namespaces;
    // `dnsmasq-base` is the program alone, without the system service.
    println!("==> DHCP tests' server: dnsmasq");
    if !etcd::install_missing("DHCP tests", &DNSMASQ)? {
        return Ok(1);
    }
    println!("==> tests: cargo test --workspace --locked");
    let status = std::process::Command::new(&cargo)
        .args(["test", "--workspace", "--locked"])
        .args(args)
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    println!("==> etcd store: cargo xtask etcd-test");
    let etcd = etcd::run(Vec::new())?;
    if etcd != 0 {
        return Ok(etcd);
    }
    println!("==> C ABI: cargo xtask c-test");
    let c = c_api::run(Vec::new())?;
    println!("==> Python: cargo xtask py-test");
    let py = python::run(Vec::new())?;
    Ok(if c != 0 { c } else { py })
}

/// The DHCP tests' server: Debian package, program, an argument it answers to.
pub(crate) const DNSMASQ: [(&str, &str, &str); 1] = [("dnsmasq-base", "dnsmasq", "--version")];

fn vm_prepare() -> std::io::Result<i32> {
    let vm = xtask::vm::prepare()?;
    println!(
        "guest kernel {} ({}) ready",
        vm.kernel_release(),
        vm.kernel_image().display()
    );
    Ok(0)
}

fn vm_run(mut args: Vec<OsString>) -> std::io::Result<i32> {
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("{USAGE}");
        return Ok(2);
    }
    let vm = xtask::vm::prepare()?;
    vm.run(xtask::vm::VmCommand::new(&args[0]).args(&args[1..]))
}

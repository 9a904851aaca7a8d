//! `cargo xtask cni-test`: the CNI plugin (crate `underlay-cni`) built and run the way libcni
//! runs it, against throwaway namespaces.
//!
//! Installs Debian's `containernetworking-plugins` with apt when missing: its macvlan and
//! host-local plugins are the oracle for the result's shape and share a data directory with
//! underlay in the tests; when they cannot be installed the task fails rather than let those
//! tests skip. Then builds the plugin and runs
//! `cargo test -p underlay-cni --locked [args]`.

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

pub(crate) fn run(args: Vec<OsString>) -> io::Result<i32> {
    // Without the reference plugins their comparisons could only skip: fail instead.
    if !install_reference_plugins()? {
        return Ok(1);
    }
    let cargo: OsString = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("==> CNI plugin: cargo build -p underlay-cni --locked");
    let status = Command::new(&cargo)
        .args(["build", "-p", "underlay-cni", "--locked"])
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    println!("==> CNI plugin tests: cargo test -p underlay-cni --locked");
    let status = Command::new(&cargo)
        .args(["test", "-p", "underlay-cni", "--locked"])
        .args(args)
        .status()?;
    Ok(status.code().unwrap_or(1))
}

//! The front-ends' `vm_*` tests (ignored in a plain run: they need 8021q and ipvlan) run in the
//! qemu VM: the crate's `it` test binary, `--ignored vm_`, one boot for all.

use std::env;
use std::ffi::OsString;
use std::io;
use std::process::Command;

/// Builds `package`'s `it` test binary (with `features`, if any) and runs its `vm_*` tests
/// in the VM; `task` names the xtask task in messages. Returns the binary's exit status.
pub(crate) fn run(
    task: &str,
    cargo: &OsString,
    package: &str,
    features: Option<&str>,
) -> io::Result<i32> {
    let mut build = Command::new(cargo);
    build.args(["test", "-p", package, "--locked"]);
    if let Some(f) = features {
        build.args(["--features", f]);
    }
    let out = build
        .args(["--test", "it", "--no-run", "--message-format=json"])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Ok(out.status.code().unwrap_or(1));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(exe) = stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(package))
        .filter(|l| l.contains("\"name\":\"it\""))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let len = l[start..].find('"')?;
            Some(l[start..start + len].to_string())
        })
    else {
        eprintln!("{task}: cargo named no executable for {package}'s `it` tests");
        return Ok(1);
    };
    println!("==> {package} VM tests (8021q, ipvlan): {exe} --ignored vm_, in the qemu VM");
    let vm = xtask::vm::prepare()?;
    vm.run(
        xtask::vm::VmCommand::new(&exe)
            .args(["--ignored", "vm_", "--test-threads=1"])
            .current_dir(env::current_dir()?)
            .timeout(std::time::Duration::from_secs(900)),
    )
}

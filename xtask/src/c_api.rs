//! `cargo xtask c-test`: the C ABI's checks.
//!
//! 1. tools: installs what is missing (`cc`/`pkg-config` with apt, `cbindgen` with
//!    `cargo install --locked`);
//! 2. header: regenerates `include/underlay.h` with cbindgen into a temporary file and fails
//!    when it differs from the committed one (`--bless` writes it instead);
//! 3. builds `underlay-ffi` and stages an install tree (`include/`, `lib/`, `lib/pkgconfig/
//!    underlay.pc`) under `<target>/c-abi/prefix` (`--install PREFIX` installs there instead of
//!    testing);
//! 4. compiles the C tests (`ffi-c/tests/c/*.c`) and the scenario examples (`examples/c/*.c`)
//!    with `-Wall -Wextra -Wpedantic -Werror` and ASan/UBSan, the examples through
//!    `pkg-config --cflags --libs underlay`;
//! 5. runs them with every sanitizer report fatal; an example that needs kernel features the
//!    host lacks (exit 77 + a "skipped" line) runs again inside the test VM when it can;
//! 6. the etcd store: builds the library again with feature `etcd`, stages it as
//!    `libunderlay_etcd` with `lib/pkgconfig/underlay-etcd.pc` (which defines `UNDERLAY_ETCD`
//!    for the header's etcd section), compiles `ffi-c/tests/c-etcd/*.c` through that and runs
//!    them under the sanitizers against an etcd member it starts (installing etcd-server,
//!    etcd-client and protobuf-compiler with apt when missing).
//!
//! Ends with `N passed, N failed` alone on a line.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CFLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-g",
    "-O1",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
];

/// Exit status of a C example that cannot run on this kernel (automake's "skipped").
const SKIP: i32 = 77;

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn record(&mut self, what: &str, ok: bool) -> bool {
        if ok {
            self.passed += 1;
            println!("ok     {what}");
        } else {
            self.failed += 1;
            println!("FAILED {what}");
        }
        ok
    }
}

/// Runs the C ABI checks; returns the exit status.
pub(crate) fn run(args: Vec<OsString>) -> io::Result<i32> {
    let mut bless = false;
    let mut install: Option<PathBuf> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--bless") => bless = true,
            Some("--install") => install = it.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: cargo xtask c-test [--bless] [--install PREFIX]");
                return Ok(2);
            }
        }
    }
    let root = workspace_root();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    ensure_tools(&cargo)?;
    // The C DHCP test runs dnsmasq in its own namespaces.
    if !crate::etcd::install_missing("c-test", &crate::DNSMASQ)? {
        return Ok(1);
    }
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };

    let version = crate_version(&cargo, &root)?;
    let header = root.join("include/underlay.h");
    let fresh = generate_header(&root, &version)?;
    if (bless || install.is_some())
        && fs::read_to_string(&header).ok().as_deref() != Some(fresh.as_str())
    {
        fs::write(&header, &fresh)?;
        println!("wrote {}", header.display());
    }
    let committed = fs::read_to_string(&header).unwrap_or_default();
    let same = committed == fresh;
    if !same {
        print_first_difference(&committed, &fresh);
        eprintln!("include/underlay.h is stale: run `cargo xtask c-test --bless` and commit it");
    }
    t.record("include/underlay.h matches cbindgen's output", same);

    let built = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--locked", "-p", "underlay-ffi"])
        .status()?
        .success();
    if !t.record("cargo build -p underlay-ffi", built) {
        return finish(t);
    }
    let target = target_dir(&cargo, &root)?;
    let prefix = match &install {
        Some(p) => p.clone(),
        None => target.join("c-abi/prefix"),
    };
    stage(&target.join("debug"), &root, &prefix, &version)?;
    if let Some(p) = install {
        if !crate::etcd::install_missing("c-test", &crate::etcd::NEEDED)?
            || !stage_etcd(&cargo, &root, &target, &p, &version)?
        {
            eprintln!("c-test: could not build the etcd library (libunderlay_etcd)");
            return Ok(1);
        }
        println!(
            "installed into {}: cc app.c $(PKG_CONFIG_PATH={}/lib/pkgconfig pkg-config --cflags --libs underlay)",
            p.display(),
            p.display()
        );
        return Ok(0);
    }

    let bin = target.join("c-abi/bin");
    fs::create_dir_all(&bin)?;
    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = pkg_config(&pc_path)?;
    t.record("pkg-config --cflags --libs underlay", pkg.is_some());
    let mut programs = Vec::new();
    for (dir, via_pkg_config) in [("ffi-c/tests/c", false), ("examples/c", true)] {
        let mut sources: Vec<PathBuf> = fs::read_dir(root.join(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "c"))
            .collect();
        sources.sort();
        for src in sources {
            let name = src.file_stem().unwrap_or_default().to_owned();
            let exe = bin.join(&name);
            let mut cc = Command::new("cc");
            cc.args(CFLAGS).arg(&src).arg("-o").arg(&exe);
            match (&pkg, via_pkg_config) {
                (Some(flags), true) => {
                    cc.args(flags.split_whitespace());
                }
                _ => {
                    let inc = prefix.join("include");
                    let lib = prefix.join("lib");
                    cc.arg(format!("-I{}", inc.display()))
                        .arg(format!("-L{}", lib.display()))
                        .arg(format!("-Wl,-rpath,{}", lib.display()))
                        .arg("-lunderlay");
                }
            }
            if !via_pkg_config {
                // The tests read shared data (tests/bad-inputs.tsv) from the checkout.
                cc.arg(format!(
                    "-DUNDERLAY_TESTS_DIR=\"{}\"",
                    root.join("tests").display()
                ));
            }
            cc.arg("-lpthread");
            let ok = cc.status()?.success();
            let how = if via_pkg_config && pkg.is_some() {
                " (pkg-config)"
            } else {
                ""
            };
            if t.record(&format!("cc {}{how}", rel(&root, &src)), ok) {
                programs.push((rel(&root, &src), exe));
            }
        }
    }

    let root_user = is_root();
    for (label, exe) in programs {
        let (code, out) = run_sanitized(&exe)?;
        let reports = sanitizer_reports(&out);
        if code == SKIP && reports == 0 {
            println!(
                "{}",
                out.lines()
                    .filter(|l| l.contains("skipped"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            if root_user && !xtask::vm::in_vm() {
                println!("       {label}: running it in the test VM instead");
                let vm_code = run_in_vm(&exe)?;
                t.record(&format!("run {label} (in the VM)"), vm_code == 0);
            } else {
                println!("SKIPPED {label}: the kernel lacks what it needs");
            }
            continue;
        }
        if reports > 0 {
            eprintln!("{label}: {reports} sanitizer report(s)");
        }
        t.record(
            &format!("run {label} under ASan/UBSan"),
            code == 0 && reports == 0,
        );
    }
    etcd_tests(&cargo, &root, &target, &prefix, &version, &bin, &mut t)?;
    if !root_user {
        println!("note: not root: the C tests skipped their kernel cases and the examples need root (CI runs as root)");
    }
    finish(t)
}

/// The etcd store's C tests: builds the library with feature `etcd`, stages it as
/// `libunderlay_etcd` with `underlay-etcd.pc`, compiles `ffi-c/tests/c-etcd/*.c` through
/// pkg-config and runs them under the sanitizers against an etcd member started here.
fn etcd_tests(
    cargo: &OsString,
    root: &Path,
    target: &Path,
    prefix: &Path,
    version: &str,
    bin: &Path,
    t: &mut Tally,
) -> io::Result<()> {
    if !crate::etcd::install_missing("c-test", &crate::etcd::NEEDED)? {
        t.record("install etcd-server, etcd-client, protobuf-compiler", false);
        return Ok(());
    }
    if !t.record(
        "cargo build -p underlay-ffi --features etcd",
        stage_etcd(cargo, root, target, prefix, version)?,
    ) {
        return Ok(());
    }
    let lib = prefix.join("lib");
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .args(["--cflags", "--libs", "underlay-etcd"])
        .output()?;
    if !t.record(
        "pkg-config --cflags --libs underlay-etcd",
        out.status.success(),
    ) {
        return Ok(());
    }
    let flags = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let member = match EtcdMember::start() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("c-test: cannot start etcd: {e}");
            t.record("start an etcd member", false);
            return Ok(());
        }
    };
    let mut sources: Vec<PathBuf> = fs::read_dir(root.join("ffi-c/tests/c-etcd"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    for src in sources {
        let exe = bin.join(src.file_stem().unwrap_or_default());
        let ok = Command::new("cc")
            .args(CFLAGS)
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .args(flags.split_whitespace())
            .arg("-lpthread")
            .status()?
            .success();
        let label = rel(root, &src);
        if !t.record(&format!("cc {label} (pkg-config underlay-etcd)"), ok) {
            continue;
        }
        let (code, text) = run_sanitized_env(&exe, &[("UNDERLAY_TEST_ETCD", &member.url)])?;
        let reports = sanitizer_reports(&text);
        t.record(
            &format!("run {label} under ASan/UBSan against etcd"),
            code == 0 && reports == 0,
        );
    }
    drop(member);
    Ok(())
}

/// Builds the library with feature `etcd` and stages it under `prefix` as
/// `lib/libunderlay_etcd.{so,a}` with `lib/pkgconfig/underlay-etcd.pc`; false when the build
/// fails.
fn stage_etcd(
    cargo: &OsString,
    root: &Path,
    target: &Path,
    prefix: &Path,
    version: &str,
) -> io::Result<bool> {
    let built = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--locked",
            "-p",
            "underlay-ffi",
            "--features",
            "etcd",
        ])
        .status()?
        .success();
    if !built {
        return Ok(false);
    }
    let lib = prefix.join("lib");
    for (from, to) in [
        ("libunderlay.so", "libunderlay_etcd.so"),
        ("libunderlay.a", "libunderlay_etcd.a"),
    ] {
        fs::copy(target.join("debug").join(from), lib.join(to))?;
    }
    let template = fs::read_to_string(root.join("ffi-c/underlay-etcd.pc.in"))?;
    fs::write(
        lib.join("pkgconfig/underlay-etcd.pc"),
        template
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@VERSION@", version),
    )?;
    Ok(true)
}

/// One etcd member on loopback with its data in a temporary directory; killed (by its own
/// pid) and removed on drop.
struct EtcdMember {
    child: std::process::Child,
    dir: PathBuf,
    url: String,
}

impl EtcdMember {
    fn start() -> io::Result<EtcdMember> {
        let port = || -> io::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (client, peer) = (port()?, port()?);
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let dir = env::temp_dir().join(format!("ulct-etcd-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let log = fs::File::create(dir.join("etcd.log"))?;
        let child = Command::new("etcd")
            .args(["--name", "m0", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("m0={peer_url}")])
            .args(["--initial-cluster-state", "new", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let member = EtcdMember { child, dir, url };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let healthy = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", member.url))
                .args(["--dial-timeout=1s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if healthy {
                return Ok(member);
            }
            if std::time::Instant::now() > deadline {
                let log = fs::read_to_string(member.dir.join("etcd.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "etcd did not become healthy within 30 s; its log:\n{log}"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn finish(t: Tally) -> io::Result<i32> {
    println!("{} passed, {} failed", t.passed, t.failed);
    Ok(if t.failed == 0 { 0 } else { 1 })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the C compiler, pkg-config and cbindgen when missing.
fn ensure_tools(cargo: &OsString) -> io::Result<()> {
    let mut apt: Vec<&str> = Vec::new();
    if !have("cc") {
        apt.push("gcc");
        apt.push("libc6-dev");
    }
    if !have("pkg-config") {
        apt.push("pkg-config");
    }
    let why: Vec<(&str, &str)> = apt
        .iter()
        .map(|p| (*p, "builds and runs the C tests and examples"))
        .collect();
    xtask::apt::install("c-test", &why)?;
    if !have("cbindgen") {
        println!("==> cargo install cbindgen --locked");
        let ok = Command::new(cargo)
            .args(["install", "cbindgen", "--locked"])
            .status()?
            .success();
        if !ok {
            return Err(io::Error::other("cannot install cbindgen"));
        }
    }
    Ok(())
}

/// The version of `underlay-ffi` (`cargo pkgid` ends in `@X.Y.Z` or `#X.Y.Z`).
fn crate_version(cargo: &OsString, root: &Path) -> io::Result<String> {
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["pkgid", "-p", "underlay-ffi"])
        .output()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    id.rsplit(['@', '#'])
        .next()
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("cannot read the version from `{id}`")))
}

pub(crate) fn target_dir(cargo: &OsString, root: &Path) -> io::Result<PathBuf> {
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"target_directory\":\"";
    let start = text
        .find(key)
        .ok_or_else(|| io::Error::other("cargo metadata has no target_directory"))?
        + key.len();
    let end = text[start..]
        .find('"')
        .ok_or_else(|| io::Error::other("cargo metadata: unterminated target_directory"))?;
    Ok(PathBuf::from(&text[start..start + end]))
}

/// cbindgen's header with the version macro filled in.
fn generate_header(root: &Path, version: &str) -> io::Result<String> {
    let tmp = env::temp_dir().join(format!("underlay-h-{}.h", std::process::id()));
    let ffi = root.join("ffi-c");
    let out = Command::new("cbindgen")
        .arg("--config")
        .arg(ffi.join("cbindgen.toml"))
        .args(["--crate", "underlay-ffi", "--quiet", "--output"])
        .arg(&tmp)
        .arg(&ffi)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "cbindgen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = fs::read_to_string(&tmp)?;
    let _ = fs::remove_file(&tmp);
    Ok(text.replace("@VERSION@", version))
}

fn print_first_difference(old: &str, new: &str) {
    for (i, (a, b)) in old.lines().zip(new.lines()).enumerate() {
        if a != b {
            eprintln!(
                "include/underlay.h:{}:\n  committed: {a}\n  generated: {b}",
                i + 1
            );
            return;
        }
    }
    eprintln!(
        "include/underlay.h: {} lines committed, {} generated",
        old.lines().count(),
        new.lines().count()
    );
}

/// An install tree: include/underlay.h, lib/libunderlay.{so,a}, lib/pkgconfig/underlay.pc.
fn stage(build: &Path, root: &Path, prefix: &Path, version: &str) -> io::Result<()> {
    let (inc, lib, pc) = (
        prefix.join("include"),
        prefix.join("lib"),
        prefix.join("lib/pkgconfig"),
    );
    for d in [&inc, &lib, &pc] {
        fs::create_dir_all(d)?;
    }
    fs::copy(root.join("include/underlay.h"), inc.join("underlay.h"))?;
    for f in ["libunderlay.so", "libunderlay.a"] {
        fs::copy(build.join(f), lib.join(f))?;
    }
    let template = fs::read_to_string(root.join("ffi-c/underlay.pc.in"))?;
    let text = template
        .replace("@PREFIX@", &prefix.display().to_string())
        .replace("@VERSION@", version);
    fs::write(pc.join("underlay.pc"), text)
}

fn pkg_config(path: &Path) -> io::Result<Option<String>> {
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", path)
        .args(["--cflags", "--libs", "underlay"])
        .output()?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

const ASAN: &str = "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86";
const UBSAN: &str = "halt_on_error=1:print_stacktrace=1:exitcode=87";

/// Runs `exe` with sanitizer reports fatal; returns its status and its combined output (also
/// echoed).
fn run_sanitized(exe: &Path) -> io::Result<(i32, String)> {
    run_sanitized_env(exe, &[])
}

/// `run_sanitized` with extra environment variables.
fn run_sanitized_env(exe: &Path, vars: &[(&str, &str)]) -> io::Result<(i32, String)> {
    let out = Command::new(exe)
        .envs(vars.iter().copied())
        .env("ASAN_OPTIONS", ASAN)
        .env("UBSAN_OPTIONS", UBSAN)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{text}");
    Ok((out.status.code().unwrap_or(1), text))
}

fn sanitizer_reports(out: &str) -> usize {
    out.lines()
        .filter(|l| {
            l.contains("ERROR: AddressSanitizer")
                || l.contains("ERROR: LeakSanitizer")
                || l.contains("runtime error:")
        })
        .count()
}

fn run_in_vm(exe: &Path) -> io::Result<i32> {
    let vm = xtask::vm::prepare()?;
    let mut cmd = xtask::vm::VmCommand::new(exe);
    cmd.env("ASAN_OPTIONS", ASAN).env("UBSAN_OPTIONS", UBSAN);
    vm.run(&cmd)
}

//! Installing Debian packages a task needs, without ever touching the user's others: the
//! packages and the reason for each are said first, apt may add but never remove
//! (`--no-remove`: apt aborts rather than remove a package to satisfy another), no service
//! starts (a `policy-rc.d` that exits 101, for the install only), and installing can be
//! refused altogether with `UNDERLAY_NO_INSTALL=1` (or [`forbid_installs`]).

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable that refuses installs: set (and not `0`), a task that misses packages fails,
/// naming them, instead of installing.
pub const NO_INSTALL: &str = "UNDERLAY_NO_INSTALL";

static FORBIDDEN: AtomicBool = AtomicBool::new(false);

/// Refuses installs for the rest of this process, as `UNDERLAY_NO_INSTALL=1` does (the
/// scenarios demo's `--no-install`).
pub fn forbid_installs() {
    FORBIDDEN.store(true, Ordering::SeqCst);
}

fn forbidden() -> bool {
    FORBIDDEN.load(Ordering::SeqCst)
        || std::env::var(NO_INSTALL).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The `apt-get` arguments that install `packages`: no recommends, never a removal.
pub fn install_args<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-q",
        "-o",
        "Dpkg::Use-Pty=0",
        "install",
        "-y",
        "--no-install-recommends",
        "--no-remove",
    ];
    args.extend_from_slice(packages);
    args
}

/// Installs `wanted` (package, why), saying what and why first, for `task` (named in the
/// messages); refused when installs are forbidden. Runs `apt-get update` once if the first
/// try fails.
pub fn install(task: &str, wanted: &[(&str, &str)]) -> io::Result<()> {
    let mut packages: Vec<&str> = wanted.iter().map(|(p, _)| *p).collect();
    packages.sort_unstable();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    let reasons: Vec<String> = wanted
        .iter()
        .map(|(p, why)| format!("  {p}: {why}"))
        .collect();
    let by_hand = format!(
        "apt-get install --no-install-recommends {}",
        packages.join(" ")
    );
    if forbidden() {
        return Err(io::Error::other(format!(
            "{task}: missing packages, and installing is refused ({NO_INSTALL} or --no-install):\n{}\n\
             install them yourself (`{by_hand}`), or allow the install",
            reasons.join("\n")
        )));
    }
    eprintln!(
        "{task}: installing with apt (nothing is removed, no service is started; \
         {NO_INSTALL}=1 refuses instead):\n{}",
        reasons.join("\n")
    );
    let _policy = NoServices::install();
    let attempt = || {
        Command::new("apt-get")
            .args(install_args(&packages))
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
    };
    if attempt()? {
        return Ok(());
    }
    eprintln!("{task}: apt-get install failed; running apt-get update and trying again");
    let _ = Command::new("apt-get").args(["-q", "update"]).status()?;
    if attempt()? {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{task}: apt-get could not install {} (it refuses when that would remove another \
         package): install them yourself (`{by_hand}`) and run again",
        packages.join(" ")
    )))
}

/// The first lines of the `policy-rc.d` this module writes (so a leftover one, from a run
/// that was killed mid-install, is recognised as ours and removed after the next install).
const POLICY: &str =
    "#!/bin/sh\n# underlay xtask: no service starts during its installs\nexit 101\n";

/// `/usr/sbin/policy-rc.d` exiting 101 (no service starts) while it lives, when there was none
/// (or only ours, left behind).
struct NoServices(Option<&'static Path>);

impl NoServices {
    fn install() -> NoServices {
        let path = Path::new("/usr/sbin/policy-rc.d");
        match std::fs::read_to_string(path) {
            Ok(text) if text == POLICY => return NoServices(Some(path)),
            Ok(_) => return NoServices(None), // the user's own: left alone
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return NoServices(None),
            Err(_) => {}
        }
        let written = std::fs::write(path, POLICY).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        });
        NoServices(written.ok().map(|()| path))
    }
}

impl Drop for NoServices {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_removes_nor_recommends() {
        let args = install_args(&["qemu-system-x86"]);
        assert!(args.contains(&"--no-remove"), "{args:?}");
        assert!(args.contains(&"--no-install-recommends"), "{args:?}");
        assert_eq!(args.last(), Some(&"qemu-system-x86"));
    }

    #[test]
    fn refused_installs_name_the_packages_and_the_way_out() {
        forbid_installs();
        let e = install("demo", &[("qemu-system-x86", "to boot the test VM")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("qemu-system-x86: to boot the test VM"), "{e}");
        assert!(
            e.contains("apt-get install --no-install-recommends qemu-system-x86"),
            "{e}"
        );
        assert!(install("demo", &[]).is_ok());
    }
}

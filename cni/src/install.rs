//! `underlay-cni install DIR [--systemd-unit UNIT_DIR]`: this binary into a CNI bin dir as
//! `underlay` and `underlay-ipam`; with `--systemd-unit`, the DHCP renewer's unit
//! (`underlay-dhcp-renewer.service`, running `DIR/underlay dhcp-renewer`) into `UNIT_DIR`.

use std::path::Path;
use std::process::ExitCode;

/// The names the plugin is installed under.
const NAMES: [&str; 2] = ["underlay", "underlay-ipam"];

/// The DHCP renewer's systemd unit; `@BIN@` becomes the installed binary.
const UNIT: &str = include_str!("../systemd/underlay-dhcp-renewer.service");
const UNIT_NAME: &str = "underlay-dhcp-renewer.service";

pub(crate) fn run(args: &[String]) -> ExitCode {
    let (dir, unit_dir) = match args {
        [dir] => (dir, None),
        [dir, flag, u] if flag == "--systemd-unit" => (dir, Some(u)),
        _ => {
            eprintln!("usage: underlay-cni install DIR [--systemd-unit UNIT_DIR]   (e.g. /opt/cni/bin /etc/systemd/system)");
            return ExitCode::from(2);
        }
    };
    let done = install(Path::new(dir)).and_then(|()| match unit_dir {
        Some(u) => install_unit(Path::new(dir), Path::new(u)),
        None => Ok(()),
    });
    match done {
        Ok(()) => {
            for n in NAMES {
                println!("installed {}", Path::new(dir).join(n).display());
            }
            if let Some(u) = unit_dir {
                println!(
                    "installed {} (start it with `systemctl daemon-reload && systemctl enable --now {UNIT_NAME}`)",
                    Path::new(u).join(UNIT_NAME).display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("underlay-cni install {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Copies the running binary to `dir/underlay`, hard-links `dir/underlay-ipam` to it; each
/// name replaced atomically (a runtime may exec the old one meanwhile).
fn install(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let me = std::env::current_exe()?;
    let tmp = dir.join(format!(".underlay.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(&me, &tmp)?;
    let main = dir.join(NAMES[0]);
    let ipam_tmp = dir.join(format!(".underlay-ipam.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&ipam_tmp);
    let done = std::fs::hard_link(&tmp, &ipam_tmp)
        .and_then(|_| std::fs::rename(&ipam_tmp, dir.join(NAMES[1])))
        .and_then(|_| std::fs::rename(&tmp, &main));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(&ipam_tmp);
    }
    done
}

/// Writes the renewer's unit into `unit_dir`, its `ExecStart` naming `bin_dir/underlay`.
fn install_unit(bin_dir: &Path, unit_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(unit_dir)?;
    let bin = std::path::absolute(bin_dir.join(NAMES[0]))?;
    let text = UNIT.replace("@BIN@", &bin.to_string_lossy());
    let tmp = unit_dir.join(format!(".{UNIT_NAME}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, unit_dir.join(UNIT_NAME)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

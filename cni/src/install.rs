//! `underlay-cni install DIR`: this binary into a CNI bin dir as `underlay` and `underlay-ipam`.

use std::path::Path;
use std::process::ExitCode;

/// The names the plugin is installed under.
const NAMES: [&str; 2] = ["underlay", "underlay-ipam"];

pub(crate) fn run(args: &[String]) -> ExitCode {
    let [dir] = args else {
        eprintln!("usage: underlay-cni install DIR   (e.g. /opt/cni/bin)");
        return ExitCode::from(2);
    };
    match install(Path::new(dir)) {
        Ok(()) => {
            for n in NAMES {
                println!("installed {}", Path::new(dir).join(n).display());
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

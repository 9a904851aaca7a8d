//! The host's side of preparing a VM: finding tools, installing missing ones with apt.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A program the runner needs on the host and the Debian package that ships it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    pub(crate) program: &'static str,
    pub(crate) package: &'static str,
    /// Why the runner needs it (said before installing).
    pub(crate) why: &'static str,
}

/// Tools needed on the host. The guest runs the host's own binaries (it mounts the host's `/`),
/// so what the tests call (`ip`, `ping`) must be installed here too.
pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        program: "qemu-system-x86_64",
        package: "qemu-system-x86",
        why: "qemu boots the test VM (Debian's kernel has the 8021q, ipvlan, dummy this kernel lacks)",
    },
    Tool {
        program: "depmod",
        package: "kmod",
        why: "depmod resolves the VM kernel's module dependencies",
    },
    Tool {
        program: "busybox",
        package: "busybox-static",
        why: "a static busybox is the VM's init and shell",
    },
    Tool {
        program: "ip",
        package: "iproute2",
        why: "the VM runs the host's `ip`",
    },
    Tool {
        program: "ping",
        package: "iputils-ping",
        why: "the VM runs the host's `ping`",
    },
];

/// Finds `program` in `PATH` and in the sbin directories (a non-login root shell may lack them).
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .iter()
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the ELF file at `path` is statically linked (has no `PT_INTERP` program header).
pub(crate) fn is_static_elf(path: &Path) -> io::Result<bool> {
    let data = fs::read(path)?;
    let not_elf = || io::Error::other(format!("{} is not a 64-bit ELF file", path.display()));
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(not_elf());
    }
    let u16_at = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[32..40].try_into().expect("8 bytes")) as usize;
    let phentsize = u16_at(54);
    let phnum = u16_at(56);
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(header) = data.get(at..at + 4) else {
            return Err(not_elf());
        };
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes(header.try_into().expect("4 bytes")) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A statically linked busybox on the host, if there is one.
pub(crate) fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .chain(find_program("busybox"))
        .find(|path| is_executable(path) && is_static_elf(path).unwrap_or(false))
}

/// Whether `tool` is usable on the host.
pub(crate) fn has(tool: &Tool) -> bool {
    match tool.program {
        "busybox" => static_busybox().is_some(),
        program => find_program(program).is_some(),
    }
}

/// A command whose output goes to our stderr, so that it never mixes with a test's stdout.
pub(crate) fn noisy(program: impl AsRef<OsStr>) -> io::Result<Command> {
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(io::stderr().as_fd().try_clone_to_owned()?));
    Ok(command)
}

/// Runs `command`, failing with a message naming `what` unless it exits with status 0.
pub(crate) fn run(command: &mut Command, what: &str) -> io::Result<()> {
    let status = command
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: cannot run {command:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: {command:?} failed with {status}"
        )))
    }
}

/// Runs `command` with its stdout captured (stderr passes through).
pub(crate) fn output(command: &mut Command, what: &str) -> io::Result<Output> {
    command.stdin(Stdio::null()).stderr(Stdio::inherit());
    let out = command
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: cannot run {command:?}: {e}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{what}: {command:?} failed with {}",
            out.status
        )))
    }
}

fn apt_get() -> io::Result<Command> {
    let mut command = noisy("apt-get")?;
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "Dpkg::Use-Pty=0"]);
    Ok(command)
}

/// Runs `apt-get <args>`; if it fails, runs `apt-get update` once and tries again (a fresh
/// machine may have no package lists, an old one stale ones).
pub(crate) fn apt_get_retrying(args: &[&str], dir: Option<&Path>, what: &str) -> io::Result<()> {
    let attempt = || {
        let mut command = apt_get()?;
        command.args(args);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        run(&mut command, what)
    };
    if attempt().is_ok() {
        return Ok(());
    }
    eprintln!("underlay-vm: {what} failed; running apt-get update and trying again");
    run(apt_get()?.arg("update"), "apt-get update")?;
    attempt()
}

/// Installs `tools`' packages on the host (see [`crate::apt::install`]: said first, nothing
/// removed, refused under `UNDERLAY_NO_INSTALL`).
pub(crate) fn apt_install(tools: &[Tool]) -> io::Result<()> {
    let wanted: Vec<(&str, &str)> = tools.iter().map(|t| (t.package, t.why)).collect();
    crate::apt::install("underlay-vm", &wanted)
}

/// Installs the packages of whichever `tools` are missing.
pub(crate) fn ensure_tools(tools: &[Tool]) -> io::Result<()> {
    let missing: Vec<Tool> = tools.iter().filter(|tool| !has(tool)).copied().collect();
    apt_install(&missing)?;
    for tool in tools {
        if !has(tool) {
            return Err(io::Error::other(format!(
                "{} is still missing after installing {}",
                tool.program, tool.package
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_elf() {
        // The test binary itself is dynamically linked on glibc targets.
        let me = env::current_exe().unwrap();
        assert!(!is_static_elf(&me).unwrap());
        assert!(is_static_elf(Path::new("/dev/null")).is_err());
    }
}

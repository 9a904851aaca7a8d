//! Running commands in a qemu VM that boots Debian's stock kernel.
//!
//! The host's kernel may lack what the tests need (8021q, ipvlan) and be unable to load
//! modules. The VM boots Debian's `linux-image-*-amd64` (fetched with apt, never installed),
//! loads the modules from a small initramfs, mounts the host's `/` read-only over 9p under a
//! tmpfs overlay, and runs the command there with the host's own binaries, in the same working
//! directory and environment. Its output streams to our stdout; its exit status is ours.
//!
//! ```no_run
//! let vm = xtask::vm::prepare()?;
//! let status = vm.run(&xtask::vm::VmCommand::new("ip").arg("-d").arg("link"))?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! See `docs/vm-tests.md` for the cache, the environment variables and timings.

mod cpio;
mod host;
mod initramfs;
mod kernel;
mod modules;
mod qemu;
mod vmlinux;

use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use qemu::{Accel, Machine, Outcome};

/// Set to `1` in the guest's environment: the command runs inside the VM.
pub const IN_VM_ENV: &str = "UNDERLAY_IN_VM";
/// Cache directory for the kernel and initramfs (default `/var/cache/underlay-vm`).
pub const CACHE_ENV: &str = kernel::CACHE_ENV;
/// Pins the kernel package (default: whatever `linux-image-amd64` depends on).
pub const KERNEL_PACKAGE_ENV: &str = kernel::PACKAGE_ENV;
/// Seconds before a run is killed and reported as exit status 124 (default 600).
pub const TIMEOUT_ENV: &str = "UNDERLAY_VM_TIMEOUT";
/// Guest memory in MiB (default 1024).
pub const MEMORY_ENV: &str = "UNDERLAY_VM_MEMORY";
/// Guest CPUs (default 1).
pub const CPUS_ENV: &str = "UNDERLAY_VM_CPUS";
/// `kvm` or `tcg` instead of the detected accelerator.
pub const ACCEL_ENV: &str = "UNDERLAY_VM_ACCEL";
/// `1`: show the kernel's boot messages, the init script's trace and the qemu command line.
pub const VERBOSE_ENV: &str = "UNDERLAY_VM_VERBOSE";

/// Exit status of a run that timed out (as `timeout(1)`).
pub const TIMEOUT_STATUS: i32 = 124;

/// Whether this process runs inside the VM.
pub fn in_vm() -> bool {
    env::var_os(IN_VM_ENV).is_some_and(|v| v == "1")
}

/// A prepared VM: a kernel and an initramfs in the cache, and the host tools to boot them.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: kernel::Kernel,
    qemu: PathBuf,
}

/// Makes sure everything a run needs is there: host tools (installed with apt when missing),
/// the kernel package downloaded and unpacked into the cache, the uncompressed kernel, the
/// initramfs. Idempotent; a few milliseconds when the cache is warm.
pub fn prepare() -> io::Result<Vm> {
    host::ensure_tools(host::TOOLS)?;
    let kernel = kernel::prepare()?;
    let qemu = host::find_program("qemu-system-x86_64")
        .ok_or_else(|| io::Error::other("qemu-system-x86_64 not found"))?;
    Ok(Vm { kernel, qemu })
}

/// A command to run in the VM, modelled on [`std::process::Command`]. By default it inherits
/// this process's environment and working directory.
#[derive(Debug, Clone)]
pub struct VmCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
}

impl VmCommand {
    /// A command running `program` (looked up in the guest's `PATH`, which is the host's).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        VmCommand {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: env::vars_os().collect(),
            cwd: None,
            timeout: None,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (names other than `[A-Za-z_][A-Za-z0-9_]*` are dropped).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        let key = key.as_ref().to_owned();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().to_owned()));
        self
    }

    /// Clears the environment (the guest still sets [`IN_VM_ENV`]).
    pub fn env_clear(&mut self) -> &mut Self {
        self.env.clear();
        self
    }

    /// Runs in `dir` (a path of the host, seen through the shared root).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Kills the VM after `timeout` (default: [`TIMEOUT_ENV`], else 600 s).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }
}

fn env_number(name: &str) -> io::Result<Option<u64>> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}={value:?} is not a number"),
            )
        }),
        _ => Ok(None),
    }
}

const RUN_FILE_PREFIX: &str = "underlay-vm-";

/// Removes the per-run initramfs on drop.
struct RunFile(PathBuf);

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Removes per-run initramfs files left by runs that were killed (their pid is gone).
fn remove_stale_run_files() {
    let Ok(entries) = fs::read_dir(env::temp_dir()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_FILE_PREFIX))
            .and_then(|n| n.strip_suffix(".cpio"))
            .and_then(|n| n.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl Vm {
    /// The guest kernel's release (`uname -r` inside).
    pub fn kernel_release(&self) -> &str {
        &self.kernel.release
    }

    /// The kernel image the VM boots.
    pub fn kernel_image(&self) -> PathBuf {
        self.kernel.image()
    }

    /// Boots the VM, runs `command` in it and returns its exit status: the command's own,
    /// [`TIMEOUT_STATUS`] on timeout, 125 when the guest could not start it. An error means the
    /// VM itself failed (qemu missing, the guest died without reporting a status).
    pub fn run(&self, command: &VmCommand) -> io::Result<i32> {
        let verbose = env::var_os(VERBOSE_ENV).is_some_and(|v| v == "1");
        let cwd = match &command.cwd {
            Some(dir) => dir.clone(),
            None => env::current_dir()?,
        };
        let mut env = command.env.clone();
        env.retain(|(k, _)| k != IN_VM_ENV);
        env.push((IN_VM_ENV.into(), "1".into()));

        let timeout = match command.timeout {
            Some(timeout) => timeout,
            None => Duration::from_secs(env_number(TIMEOUT_ENV)?.unwrap_or(600)),
        };

        static RUNS: AtomicU32 = AtomicU32::new(0);
        remove_stale_run_files();
        let initrd = RunFile(env::temp_dir().join(format!(
            "{RUN_FILE_PREFIX}{}-{}.cpio",
            process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        )));
        {
            let mut file = io::BufWriter::new(fs::File::create(&initrd.0)?);
            io::copy(&mut fs::File::open(self.kernel.initramfs())?, &mut file)?;
            initramfs::write_run(
                &mut file,
                &initramfs::RunSpec {
                    program: &command.program,
                    args: &command.args,
                    env: &env,
                    cwd: &cwd,
                    pipe: !io::stdout().is_terminal(),
                    verbose,
                    deadline_secs: timeout.as_secs() + 30,
                },
            )?;
            file.flush()?;
        }

        let accel = match env::var(ACCEL_ENV).as_deref() {
            Ok("kvm") => Accel::Kvm,
            Ok("tcg") => Accel::Tcg,
            Ok("") | Err(_) => Accel::detect(),
            Ok(other) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{ACCEL_ENV}={other:?}: expected kvm or tcg"),
                ))
            }
        };
        let mut cmdline = "console=ttyS0 panic=-1 rdinit=/init".to_string();
        if !verbose {
            cmdline.push_str(" quiet loglevel=3");
        }
        let machine = Machine {
            qemu: self.qemu.clone(),
            kernel: self.kernel.image(),
            initrd: initrd.0.clone(),
            cmdline,
            memory_mib: env_number(MEMORY_ENV)?.unwrap_or(1024) as u32,
            cpus: env_number(CPUS_ENV)?.unwrap_or(1).max(1) as u32,
            accel,
            timeout,
            verbose,
        };
        match machine.boot()? {
            Outcome::Exited(code) => Ok(code),
            Outcome::TimedOut => Ok(TIMEOUT_STATUS),
        }
    }
}

/// Re-runs this executable, with the same arguments, inside the VM (with [`IN_VM_ENV`] set) and
/// returns its exit status. For test binaries: one boot runs all their tests.
pub fn run_self_in_vm(vm: &Vm) -> io::Result<i32> {
    let exe = env::current_exe()?;
    vm.run(VmCommand::new(exe).args(env::args_os().skip(1)))
}

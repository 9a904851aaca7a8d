//! Booting the guest with qemu, streaming its console and reading the command's exit status.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::initramfs::EXIT_MARKER;

/// How the guest's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accel {
    /// Hardware virtualisation: only where the CPU shows vmx or svm.
    Kvm,
    /// qemu's emulator; the default (a `/dev/kvm` without vmx/svm does not boot Debian's kernel).
    Tcg,
}

impl Accel {
    /// KVM when `/proc/cpuinfo` shows vmx or svm and `/dev/kvm` opens, TCG otherwise.
    pub(crate) fn detect() -> Accel {
        let flags = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let hardware = flags
            .lines()
            .filter(|line| line.starts_with("flags"))
            .any(|line| line.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        let usable = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if hardware && usable {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }
}

/// One boot of the guest.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) qemu: PathBuf,
    pub(crate) kernel: PathBuf,
    pub(crate) initrd: PathBuf,
    pub(crate) cmdline: String,
    pub(crate) memory_mib: u32,
    pub(crate) cpus: u32,
    pub(crate) accel: Accel,
    pub(crate) timeout: Duration,
    pub(crate) verbose: bool,
}

/// How a boot ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The guest reported the command's exit status.
    Exited(i32),
    /// The timeout struck; qemu was killed.
    TimedOut,
}

impl Machine {
    fn command(&self) -> Command {
        let mut qemu = Command::new(&self.qemu);
        qemu.args([
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-display",
            "none",
        ])
        // Never a network: the guest reaches nothing but its own namespaces.
        .args(["-nic", "none"])
        .args(["-machine", "pc"])
        .args(match self.accel {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        })
        .arg("-m")
        .arg(self.memory_mib.to_string())
        .arg("-smp")
        .arg(self.cpus.to_string())
        .arg("-kernel")
        .arg(&self.kernel)
        .arg("-initrd")
        .arg(&self.initrd)
        .arg("-append")
        .arg(&self.cmdline)
        .args(["-chardev", "stdio,id=console,signal=off"])
        .args(["-serial", "chardev:console"])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        qemu
    }

    /// Boots, copies the console to our stdout until the guest reports the exit status, and
    /// waits for qemu to exit (killing it at the timeout).
    pub(crate) fn boot(&self) -> io::Result<Outcome> {
        let mut command = self.command();
        if self.verbose {
            eprintln!("underlay-vm: {command:?}");
        }
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", self.qemu.display()),
            )
        })?;
        let mut stdout = child.stdout.take().expect("piped");
        let verbose = self.verbose;
        let reader = thread::spawn(move || -> io::Result<Option<i32>> {
            let mut console = Console::new(verbose);
            let mut out = io::stdout();
            let mut buf = [0; 8192];
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                console.feed(&buf[..n], &mut out)?;
            }
            console.finish(&mut out)?;
            Ok(console.status)
        });

        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() >= self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                eprintln!(
                    "underlay-vm: timed out after {} s; qemu killed",
                    self.timeout.as_secs()
                );
                return Ok(Outcome::TimedOut);
            }
            thread::sleep(Duration::from_millis(20));
        };
        let reported = reader
            .join()
            .map_err(|_| io::Error::other("console reader panicked"))??;
        match reported {
            Some(code) => Ok(Outcome::Exited(code)),
            None => Err(io::Error::other(format!(
                "the VM stopped ({status}) without reporting the command's exit status; \
                 UNDERLAY_VM_VERBOSE=1 shows the kernel's messages"
            ))),
        }
    }
}

/// Copies console output through, minus the exit marker (and what follows it: the kernel's
/// power-off messages), turning `\r\n` (the kernel's own messages) into `\n`.
struct Console {
    pending: Vec<u8>,
    status: Option<i32>,
    verbose: bool,
}

impl Console {
    fn new(verbose: bool) -> Self {
        Console {
            pending: Vec::new(),
            status: None,
            verbose,
        }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut impl Write) -> io::Result<()> {
        if self.status.is_some() && !self.verbose {
            return Ok(());
        }
        self.pending.extend_from_slice(chunk);
        let mut emitted = 0;
        while let Some(nl) = self.pending[emitted..].iter().position(|&b| b == b'\n') {
            let end = emitted + nl;
            let mut line = &self.pending[emitted..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if self.status.is_none() {
                if let Some(at) = find(line, EXIT_MARKER.as_bytes()) {
                    let rest = String::from_utf8_lossy(&line[at + EXIT_MARKER.len()..]);
                    self.status = rest.trim().parse().ok();
                    if at > 0 {
                        out.write_all(&line[..at])?;
                        out.write_all(b"\n")?;
                    }
                    emitted = end + 1;
                    if !self.verbose {
                        self.pending.clear();
                        return out.flush();
                    }
                    continue;
                }
            }
            out.write_all(line)?;
            out.write_all(b"\n")?;
            emitted = end + 1;
        }
        self.pending.drain(..emitted);
        // A partial line goes out now ("test x ... " before "ok"), except from where the marker
        // starts or may start, and a possible "\r" of a "\r\n".
        let keep = match find(&self.pending, EXIT_MARKER.as_bytes()) {
            Some(at) if self.status.is_none() => self.pending.len() - at,
            _ => (1..=self.pending.len().min(EXIT_MARKER.len()))
                .rev()
                .find(|&n| {
                    let tail = &self.pending[self.pending.len() - n..];
                    EXIT_MARKER.as_bytes().starts_with(tail) || tail == b"\r"
                })
                .unwrap_or(0),
        };
        let flush_to = self.pending.len() - keep;
        out.write_all(&self.pending[..flush_to])?;
        self.pending.drain(..flush_to);
        out.flush()
    }

    fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.status.is_none() || self.verbose {
            out.write_all(&self.pending)?;
        }
        self.pending.clear();
        out.flush()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (String, Option<i32>) {
        let mut console = Console::new(false);
        let mut out = Vec::new();
        for chunk in chunks {
            console.feed(chunk, &mut out).unwrap();
        }
        console.finish(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), console.status)
    }

    #[test]
    fn marker_is_taken_out_and_what_follows_dropped() {
        let (out, status) = run(&[
            b"test a ... ",
            b"ok\nhello\r\n@@UNDERLAY-",
            b"VM-EXIT@@ 3\n[ 1.0] reboot: Power down\r\n",
        ]);
        assert_eq!(out, "test a ... ok\nhello\n");
        assert_eq!(status, Some(3));
    }

    #[test]
    fn marker_after_an_unterminated_line() {
        let (out, status) = run(&[b"no newline@@UNDERLAY-VM-EXIT@@ 0\n"]);
        assert_eq!(out, "no newline\n");
        assert_eq!(status, Some(0));
    }

    #[test]
    fn no_marker_keeps_everything() {
        let (out, status) = run(&[b"Kernel panic\r\n", b"@@UNDER"]);
        assert_eq!(out, "Kernel panic\n@@UNDER");
        assert_eq!(status, None);
    }

    #[test]
    fn partial_lines_stream_out_at_once() {
        let mut console = Console::new(false);
        let mut out = Vec::new();
        console.feed(b"test a ... ", &mut out).unwrap();
        assert_eq!(out, b"test a ... ");
        console.feed(b"x@", &mut out).unwrap();
        assert_eq!(out, b"test a ... x");
    }

    /// Whatever the read boundaries, the marker is found and nothing after it shows.
    #[test]
    fn every_split() {
        let stream: &[u8] = b"test result: ok. 3 passed; finished in 7.33s\n\n@@UNDERLAY-VM-EXIT@@ 0\n[   11.527034] reboot: Power down\r\n";
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut console = Console::new(false);
                let mut out = Vec::new();
                console.feed(&stream[..a], &mut out).unwrap();
                console.feed(&stream[a..b], &mut out).unwrap();
                console.feed(&stream[b..], &mut out).unwrap();
                console.finish(&mut out).unwrap();
                assert_eq!(console.status, Some(0), "split {a} {b}");
                assert_eq!(out, &stream[..46], "split {a} {b}");
            }
        }
    }
}

//! Network namespaces: create, open, delete, list, and run code inside one.
//!
//! Named namespaces live where iproute2 keeps them (a bind mount under `/run/netns`), so
//! `ip netns list` and `ip -n NAME` see what underlay makes and the other way round.
//! Code never calls `setns` on the caller's thread: [`Netns::run`] uses a dedicated OS thread,
//! which is what makes it safe under tokio.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// Where iproute2 keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace: a file descriptor on its nsfs inode, plus its name when it has one.
///
/// Cloning is cheap (the descriptor is shared). The namespace lives while a descriptor, a
/// process or a bind mount holds it; [`Netns::delete`] removes the bind mount of a named one.
///
/// ```
/// # if unsafe { libc::geteuid() } != 0 { return Ok(()) }
/// use underlay::Netns;
/// let name = format!("doc-{}", std::process::id());
/// let ns = Netns::create(&name)?;                  // like `ip netns add`
/// assert!(Netns::list()?.contains(&name));
/// let forwarding = ns.sysctl("net.ipv4.ip_forward")?;
/// assert_eq!(forwarding, "0");
/// Netns::delete(&name)?;                           // like `ip netns del`
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Clone)]
pub struct Netns {
    inner: Arc<Inner>,
}

struct Inner {
    fd: OwnedFd,
    /// `name` for named namespaces, a path or `pid N` otherwise; used in messages and traces.
    label: String,
    name: Option<String>,
    path: Option<PathBuf>,
    inode: u64,
}

impl Netns {
    /// Creates a named namespace the way `ip netns add NAME` does.
    ///
    /// Fails with [`ErrorKind::AlreadyExists`] when the name is taken.
    pub fn create(name: &str) -> Result<Netns> {
        Netns::create_blocking(Some(name))
    }

    /// Creates a namespace (named when `name` is given, as [`Netns::create`]; anonymous
    /// otherwise) on one of the namespace makers ([`makers`]), blocking the caller until done.
    fn create_blocking(name: Option<&str>) -> Result<Netns> {
        let path = name.map(claim_name).transpose()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let made = makers::submit(make_job(
            path.clone(),
            || Ok(()),
            move |r| {
                let _ = tx.send(r);
            },
        ))
        .and_then(|()| rx.recv().unwrap_or_else(|_| Err(maker_panicked())));
        Ok(finish_create(name, path, made)?.0)
    }

    /// Creates a namespace as [`Netns::create_blocking`] does and runs `inside` in it on the
    /// same thread (e.g. to open a socket there), without blocking the async caller. The
    /// makers are as many as CPUs: namespace creation is kernel-bound (~0.6 ms), and more at
    /// once only contend for the kernel's locks.
    pub(crate) async fn create_with_async<T: Send + 'static>(
        name: Option<&str>,
        inside: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<(Netns, T)> {
        let path = name.map(claim_name).transpose()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let made = match makers::submit(make_job(path.clone(), inside, move |r| {
            let _ = tx.send(r);
        })) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(maker_panicked())),
            Err(e) => Err(e),
        };
        finish_create(name, path, made)
    }

    /// Creates an anonymous namespace, held only by the returned value (and its clones).
    ///
    /// Cheaper than [`Netns::create`] (no mount) and gone when the last clone drops;
    /// iproute2 cannot name it.
    pub fn create_anonymous() -> Result<Netns> {
        Netns::create_blocking(None)
    }

    /// Opens a named namespace (under `/run/netns`).
    pub fn open(name: &str) -> Result<Netns> {
        let path = named_path(name)?;
        let fd = open_ns_file(&path).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "network namespace `{name}` not found: create it with `ip netns add {name}` or Netns::create"
                ))
                .with_errno(libc::ENOENT)
            } else {
                e
            }
        })?;
        Netns::from_parts(fd, name.to_string(), Some(name.to_string()), None)
    }

    /// Opens the namespace at `path` (e.g. `/proc/1234/ns/net` or a bind mount).
    pub fn open_path(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let fd = open_ns_file(path)?;
        let name = if path.parent() == Some(Path::new(NETNS_RUN_DIR)) {
            path.file_name().map(|n| n.to_string_lossy().into_owned())
        } else {
            None
        };
        let label = name.clone().unwrap_or_else(|| path.display().to_string());
        Netns::from_parts(fd, label, name, Some(path.to_path_buf()))
    }

    /// Opens the namespace of process `pid`.
    pub fn open_pid(pid: u32) -> Result<Netns> {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let fd = open_ns_file(&path).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "process {pid} not found: cannot open its network namespace"
                ))
            } else {
                e
            }
        })?;
        Netns::from_parts(fd, format!("netns of pid {pid}"), None, Some(path))
    }

    /// Takes ownership of `fd`, which must refer to a network namespace.
    pub fn from_fd(fd: OwnedFd) -> Result<Netns> {
        check_is_netns(fd.as_raw_fd(), "the given file descriptor")?;
        let ino = inode_of(fd.as_raw_fd())?;
        Netns::from_parts(fd, format!("netns fd (inode {ino})"), None, None)
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        let fd = open_ns_file(Path::new("/proc/thread-self/ns/net"))?;
        Netns::from_parts(fd, "current netns".to_string(), None, None)
    }

    /// Deletes the named namespace the way `ip netns del NAME` does: the bind mount and its file
    /// go; the namespace itself ends when no process or descriptor holds it any more (its links
    /// go with it, which is the cheapest way to delete many links at once).
    ///
    /// Blocks for the unmount: from async code use [`Netns::delete_async`], and for many
    /// namespaces [`Netns::delete_many`].
    pub fn delete(name: &str) -> Result<()> {
        delete_named(name)
    }

    /// Like [`Netns::delete`], without blocking the async caller (the unmount runs on tokio's
    /// blocking threads).
    pub async fn delete_async(name: &str) -> Result<()> {
        let name = name.to_string();
        tokio::task::spawn_blocking(move || delete_named(&name))
            .await
            .map_err(|_| Error::new(ErrorKind::Io, "deleting a network namespace panicked"))?
    }

    /// Deletes many named namespaces in one go, one after the other on one blocking thread
    /// (as `ip -batch` does): unmounts from many threads at once contend on the kernel's
    /// mount lock, so this is the fastest way to delete many. Every name is tried; the
    /// failures are reported together ([`ErrorKind::Multiple`] for more than one), each
    /// naming its namespace.
    pub async fn delete_many<I, S>(names: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_string()).collect();
        let errors = tokio::task::spawn_blocking(move || {
            names
                .iter()
                .filter_map(|n| delete_named(n).err())
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| Error::new(ErrorKind::Io, "deleting network namespaces panicked"))?;
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::multiple("deleting network namespaces", errors))
    }

    /// The names of the named namespaces (as `ip netns list`), sorted.
    pub fn list() -> Result<Vec<String>> {
        let dir = match std::fs::read_dir(NETNS_RUN_DIR) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot list {NETNS_RUN_DIR}"), e)),
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The name, for a named namespace.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// A label for messages: the name, or how it was opened.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The nsfs inode number: equal for two handles on the same namespace.
    pub fn inode(&self) -> u64 {
        self.inner.inode
    }

    /// Runs `f` inside this namespace on a new OS thread and returns its result.
    ///
    /// The calling thread never changes namespace, so this is safe from async code (it blocks
    /// the caller until `f` returns: from async code prefer [`Netns::run_async`]).
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        #[cfg(test)]
        tests::ONE_SHOT_THREADS.with(|c| c.set(c.get() + 1));
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name("underlay-netns".into())
                .spawn_scoped(s, || {
                    self.enter()?;
                    Ok(f())
                })
                .map_err(|e| Error::io("cannot spawn a thread to enter a namespace", e))?;
            handle.join().map_err(|_| self.panicked_inside())?
        })
    }

    /// Like [`Netns::run`], without blocking the async caller.
    pub async fn run_async<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.run_async_then_drop(move || (f(), ())).await
    }

    /// Like [`Netns::run_async`] for `f` returning `(result, leftover)`: the caller gets the
    /// result at once, and `leftover` is dropped afterwards on the namespace's thread (for
    /// things whose drop is slow, like a packet socket, whose close waits for an RCU grace
    /// period).
    pub(crate) async fn run_async_then_drop<F, R, D>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> (R, D) + Send + 'static,
        R: Send + 'static,
        D: 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = self.clone();
        #[cfg(test)]
        tests::ONE_SHOT_THREADS.with(|c| c.set(c.get() + 1));
        std::thread::Builder::new()
            .name("underlay-netns".into())
            .spawn(move || match ns.enter() {
                Ok(()) => {
                    let (r, leftover) = f();
                    let _ = tx.send(Ok(r));
                    drop(leftover);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| Error::io("cannot spawn a thread to enter a namespace", e))?;
        rx.await.map_err(|_| self.panicked_inside())?
    }

    /// Runs `f` inside this namespace on one of the namespace makers ([`makers`]), without
    /// blocking the async caller and without a thread of its own: for short jobs (a sysctl),
    /// not for ones whose cleanup waits (see [`Netns::run_async_then_drop`]).
    pub(crate) async fn run_pooled<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = self.clone();
        makers::submit(Box::new(move || {
            let _ = tx.send(ns.enter().map(|()| f()));
        }))?;
        rx.await.unwrap_or_else(|_| Err(self.panicked_inside()))
    }

    /// Like [`Netns::run_pooled`], blocking the caller until `f` returned.
    pub(crate) fn run_pooled_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = self.clone();
        makers::submit(Box::new(move || {
            let _ = tx.send(ns.enter().map(|()| f()));
        }))?;
        rx.recv().unwrap_or_else(|_| Err(self.panicked_inside()))
    }

    /// What a caller gets when the code it ran inside this namespace panicked.
    fn panicked_inside(&self) -> Error {
        Error::new(
            ErrorKind::Io,
            format!("code run inside {} panicked", self.label()),
        )
    }

    /// Moves the calling thread into this namespace. Only for threads underlay owns.
    pub(crate) fn enter(&self) -> Result<()> {
        // SAFETY: the fd is a valid open nsfs descriptor for the lifetime of self.
        let rc = unsafe { libc::setns(self.inner.fd.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            let kind = if err.raw_os_error() == Some(libc::EPERM) {
                ErrorKind::PermissionDenied
            } else {
                ErrorKind::Io
            };
            let mut e = Error::new(
                kind,
                format!(
                    "cannot enter {}: {}",
                    self.label(),
                    if kind == ErrorKind::PermissionDenied {
                        "needs CAP_SYS_ADMIN (run as root)"
                    } else {
                        "setns failed"
                    }
                ),
            )
            .with_source(err);
            if let Some(n) = std::io::Error::last_os_error().raw_os_error() {
                e = e.with_errno(n);
            }
            return Err(e);
        }
        Ok(())
    }

    fn from_parts(
        fd: OwnedFd,
        label: String,
        name: Option<String>,
        path: Option<PathBuf>,
    ) -> Result<Netns> {
        let inode = inode_of(fd.as_raw_fd())?;
        let path = path.or_else(|| name.as_ref().map(|n| Path::new(NETNS_RUN_DIR).join(n)));
        Ok(Netns {
            inner: Arc::new(Inner {
                fd,
                label,
                name,
                path,
                inode,
            }),
        })
    }

    /// A path that opens this namespace again while it lives (`/run/netns/NAME`, or the path
    /// or `/proc/PID/ns/net` it was opened from); `None` for anonymous ones and raw fds.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd.as_raw_fd()
    }
}

impl PartialEq for Netns {
    fn eq(&self, other: &Self) -> bool {
        self.inner.inode == other.inner.inode
    }
}

impl Eq for Netns {}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netns")
            .field("label", &self.inner.label)
            .field("inode", &self.inner.inode)
            .finish()
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.name {
            Some(n) => write!(f, "netns `{n}`"),
            None => f.write_str(&self.inner.label),
        }
    }
}

/// Where each live network namespace of this host can be opened, by nsfs inode: a path for
/// every namespace that a process is in (or one of its threads), that a process holds open, or
/// that is bind-mounted in this mount namespace. A namespace missing here is kept alive only by
/// something that cannot be named (a socket, another mount namespace's mount), if at all.
pub(crate) fn live_netns_paths() -> std::collections::HashMap<u64, PathBuf> {
    let mut found = std::collections::HashMap::new();
    each_live_netns_path(|ino, path| {
        found.entry(ino).or_insert(path);
    });
    found
}

/// Like [`live_netns_paths`], with every path found for each namespace: when one goes stale
/// (its process or descriptor went), another may still open it.
pub(crate) fn live_netns_all_paths() -> std::collections::HashMap<u64, Vec<PathBuf>> {
    let mut found: std::collections::HashMap<u64, Vec<PathBuf>> = std::collections::HashMap::new();
    each_live_netns_path(|ino, path| found.entry(ino).or_default().push(path));
    found
}

/// Calls `note` with (nsfs inode, path) for each place a live namespace can be opened from.
fn each_live_netns_path(mut note: impl FnMut(u64, PathBuf)) {
    let mut link = |link: &Path| {
        if let Some(ino) = std::fs::read_link(link)
            .ok()
            .and_then(|t| netns_inode_of_link(&t.to_string_lossy()))
        {
            note(ino, link.to_path_buf());
        }
    };
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs.filter(|p| p.file_name().to_string_lossy().parse::<u32>().is_ok()) {
        let dir = p.path();
        link(&dir.join("ns/net"));
        for t in std::fs::read_dir(dir.join("task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            link(&t.path().join("ns/net"));
        }
        for fd in std::fs::read_dir(dir.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            link(&fd.path());
        }
    }
    // Bind mounts: `ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - nsfs ...`, ROOT `net:[INODE]`.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines().filter(|l| l.contains(" - nsfs ")) {
        let mut fields = line.split(' ').skip(3);
        if let (Some(root), Some(point)) = (fields.next(), fields.next()) {
            if let Some(ino) = netns_inode_of_link(root) {
                note(ino, PathBuf::from(unescape_mountinfo(point)));
            }
        }
    }
}

/// The inode in a namespace link's target, `net:[4026531840]`.
fn netns_inode_of_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts and removes `/run/netns/NAME` (see [`Netns::delete`]).
fn delete_named(name: &str) -> Result<()> {
    let path = named_path(name)?;
    let c = cpath(&path)?;
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if !path.exists() {
            return Err(Error::not_found(format!(
                "network namespace `{name}` not found: nothing to delete"
            ))
            .with_errno(libc::ENOENT));
        }
        // EINVAL: not a mount point (a stale file): remove it all the same.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(Error::io(
                format!("cannot unmount network namespace `{name}`"),
                err,
            ));
        }
    }
    std::fs::remove_file(&path)
        .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))
}

fn named_path(name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255
    {
        return Err(Error::invalid(format!(
            "network namespace name `{}` is invalid: use 1..255 bytes without `/` or NUL, not `.` or `..`",
            crate::error::shown(name)
        )));
    }
    Ok(Path::new(NETNS_RUN_DIR).join(name))
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {} contains NUL", path.display())))
}

fn open_ns_file(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // Non-blocking: open(2) on a FIFO would otherwise wait for a writer, forever. No
    // controlling terminal either, should the path be a tty.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            Error::io(
                format!("cannot open network namespace {}", path.display()),
                e,
            )
        })?;
    // A namespace file (in /proc, or bound to a mount point) is a regular file of nsfs.
    let kind = f
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
        .file_type();
    let other = [
        (kind.is_dir(), "a directory"),
        (kind.is_fifo(), "a FIFO"),
        (kind.is_socket(), "a socket"),
        (kind.is_char_device(), "a character device"),
        (kind.is_block_device(), "a block device"),
    ]
    .into_iter()
    .find_map(|(is, what)| is.then_some(what));
    if let Some(what) = other {
        return Err(Error::invalid(format!(
            "{} is {what}, not a network namespace: give a namespace file such as \
             /proc/PID/ns/net or /run/netns/NAME",
            path.display()
        ))
        .with_errno(libc::EINVAL));
    }
    let fd: OwnedFd = f.into();
    check_is_netns(fd.as_raw_fd(), &path.display().to_string())?;
    Ok(fd)
}

/// NS_GET_NSTYPE: _IO(0xb7, 0x3).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

fn check_is_netns(fd: RawFd, what: &str) -> Result<()> {
    // SAFETY: ioctl on a valid fd with no argument.
    let t = unsafe { libc::ioctl(fd, NS_GET_NSTYPE as _) };
    if t == libc::CLONE_NEWNET {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} is not a network namespace")).with_errno(libc::EINVAL))
    }
}

fn inode_of(fd: RawFd) -> Result<u64> {
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(Error::io(
            "cannot stat a namespace descriptor",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(st.st_ino)
}

/// mount(2) with C strings made here; `None` source means "" (a propagation change).
fn mount(src: Option<&Path>, dst: &Path, flags: libc::c_ulong) -> std::io::Result<()> {
    let dst = CString::new(dst.as_os_str().as_bytes())?;
    let src = CString::new(src.map(|p| p.as_os_str().as_bytes()).unwrap_or_default())?;
    let none = CString::new("none").expect("static");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            none.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes `/run/netns` exist and be a shared mount point, as iproute2 does, so mounts under it
/// propagate to other mount namespaces.
/// [`ensure_run_dir`] once per process (each call takes the kernel's mount lock); again after
/// a failure.
fn ensure_run_dir_once() -> Result<()> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.load(std::sync::atomic::Ordering::Acquire) && Path::new(NETNS_RUN_DIR).is_dir() {
        return Ok(());
    }
    ensure_run_dir()?;
    DONE.store(true, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// An unnamed empty file in `/run/netns` (`O_TMPFILE`) whose inode every mount point of this
/// process shares, as hard links: creating a name then costs a directory entry, not an inode.
/// On filesystems without a journal (ext4 here), allocating an inode skips every inode freed
/// in the last 30 s (`recently_deleted`), so a create-and-delete churn of namespaces makes each
/// new file slower; a link allocates nothing. `None` when the trick is unavailable.
static MOUNT_POINT_TEMPLATE: std::sync::Mutex<Option<OwnedFd>> = std::sync::Mutex::new(None);

/// Creates `path` as a hard link to the template inode: `None` to fall back to a plain file
/// (no `O_TMPFILE`, no `CAP_DAC_READ_SEARCH`, link limit reached...), else the outcome
/// (`AlreadyExists` when the name is taken).
fn link_mount_point(path: &Path) -> Option<std::io::Result<()>> {
    let c = cpath(path).ok()?;
    let mut template = MOUNT_POINT_TEMPLATE
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for _ in 0..2 {
        if template.is_none() {
            let dir = CString::new(NETNS_RUN_DIR).expect("static");
            // SAFETY: valid C string; the descriptor is owned below.
            let fd = unsafe {
                libc::open(
                    dir.as_ptr(),
                    libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o444,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: fd was just opened and is ours.
            *template = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let fd = template.as_ref()?.as_raw_fd();
        let empty = CString::default();
        // SAFETY: valid descriptor and C strings.
        let rc = unsafe {
            libc::linkat(
                fd,
                empty.as_ptr(),
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        if rc == 0 {
            return Some(Ok(()));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EEXIST) => return Some(Err(err)),
            // Every link was removed (the inode can no longer be linked), or the link count
            // is at its limit: start a new template, once.
            Some(libc::ENOENT) | Some(libc::EMLINK) => *template = None,
            _ => {
                *template = None;
                return None;
            }
        }
    }
    None
}

fn ensure_run_dir() -> Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {NETNS_RUN_DIR}"), e))?;
    let shared = libc::MS_SHARED | libc::MS_REC;
    match mount(None, dir, shared) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
            return Err(permission_or_io("cannot make /run/netns a shared mount", e))
        }
        Err(_) => {}
    }
    // Not a mount point yet: bind it onto itself, then make it shared.
    mount(Some(dir), dir, libc::MS_BIND | libc::MS_REC)
        .map_err(|e| permission_or_io("cannot bind-mount /run/netns", e))?;
    mount(None, dir, shared)
        .map_err(|e| permission_or_io("cannot make /run/netns a shared mount", e))
}

fn permission_or_io(what: &str, err: std::io::Error) -> Error {
    if err.raw_os_error() == Some(libc::EPERM) {
        Error::new(
            ErrorKind::PermissionDenied,
            format!("{what}: needs CAP_SYS_ADMIN (run as root)"),
        )
        .with_errno(libc::EPERM)
    } else {
        Error::io(what, err)
    }
}

/// The job a namespace maker runs: a new namespace (bind-mounted at `path` when given), then
/// `inside` in it, the outcome handed to `answer`.
fn make_job<T: Send + 'static>(
    path: Option<PathBuf>,
    inside: impl FnOnce() -> Result<T> + Send + 'static,
    answer: impl FnOnce(Result<(OwnedFd, T)>) + Send + 'static,
) -> makers::Job {
    Box::new(move || answer(namespace_here(path.as_deref()).and_then(|fd| Ok((fd, inside()?)))))
}

fn maker_panicked() -> Error {
    Error::new(ErrorKind::Io, "namespace creation panicked")
}

/// The threads that make namespaces (for [`Netns::create`] and
/// [`crate::Handle::create_netns`]) and run short jobs inside one ([`Netns::run_pooled`]).
/// Each unshares into the new namespace (or enters the given one), does the job there, then
/// returns to the process's namespace (`setns`), ready for the next job: a thread per
/// namespace cost a clone, a stack and an exit each. A thread that cannot return ends;
/// another is started on demand.
mod makers {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::sync::{Arc, Mutex, OnceLock};

    use super::*;

    pub(super) type Job = Box<dyn FnOnce() + Send>;

    struct Pool {
        tx: Mutex<Sender<Job>>,
        rx: Arc<Mutex<Receiver<Job>>>,
        alive: Arc<AtomicUsize>,
        max: usize,
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let (tx, rx) = channel();
            Pool {
                tx: Mutex::new(tx),
                rx: Arc::new(Mutex::new(rx)),
                alive: Arc::new(AtomicUsize::new(0)),
                max: std::thread::available_parallelism().map_or(2, |n| n.get()),
            }
        })
    }

    /// Counts a thread down when it ends, however it ends.
    struct Alive(Arc<AtomicUsize>);

    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(super) fn submit(job: Job) -> Result<()> {
        let p = pool();
        if p.alive.fetch_add(1, Ordering::SeqCst) < p.max {
            let (rx, alive) = (p.rx.clone(), Alive(p.alive.clone()));
            let spawned = std::thread::Builder::new()
                .name("underlay-nsmake".into())
                .spawn(move || work(&rx, alive));
            if let Err(e) = spawned {
                p.alive.fetch_sub(1, Ordering::SeqCst);
                return Err(Error::io("cannot spawn a thread to create a namespace", e));
            }
        } else {
            p.alive.fetch_sub(1, Ordering::SeqCst);
        }
        p.tx.lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| Error::new(ErrorKind::Io, "the namespace creation threads are gone"))
    }

    fn work(rx: &Mutex<Receiver<Job>>, _alive: Alive) {
        // Home is the process's namespace (its main thread's), not that of whichever thread
        // happened to start this one (it may be inside a namespace for `Netns::run`).
        let Ok(home) = open_ns_file(Path::new("/proc/self/ns/net")) else {
            return;
        };
        loop {
            let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            // A panicking job drops its answer channel (its caller is told); the thread goes on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            // SAFETY: setns on this thread, which only ever runs these jobs.
            if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return;
            }
        }
    }
}

/// Claims `/run/netns/NAME` exclusively (so two creators never share a name).
fn claim_name(name: &str) -> Result<PathBuf> {
    let path = named_path(name)?;
    ensure_run_dir_once()?;
    let claimed = match link_mount_point(&path) {
        Some(r) => r,
        None => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map(drop),
    };
    match claimed {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("network namespace `{name}` already exists: pick another name or delete it (`ip netns del {name}`)"),
        )
        .with_errno(libc::EEXIST)),
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}

/// Turns a made namespace into a [`Netns`], or undoes the claim (mount and name) on failure.
fn finish_create<T>(
    name: Option<&str>,
    path: Option<PathBuf>,
    made: Result<(OwnedFd, T)>,
) -> Result<(Netns, T)> {
    let built = made.and_then(|(fd, t)| {
        let label = match name {
            Some(n) => n.to_string(),
            None => format!("anonymous netns {}", inode_of(fd.as_raw_fd())?),
        };
        Ok((
            Netns::from_parts(fd, label, name.map(str::to_string), None)?,
            t,
        ))
    });
    if built.is_err() {
        if let Some(path) = &path {
            if let Ok(c) = cpath(path) {
                // SAFETY: valid C string.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
            let _ = std::fs::remove_file(path);
        }
    }
    built.map_err(|e| match name {
        Some(n) => e.context(format!("cannot create network namespace `{n}`")),
        None => e,
    })
}

/// Moves this thread into a new namespace (unshare), bind-mounts it at `path` when given, and
/// returns a descriptor on it. Only a namespace maker runs it: callers' threads never change
/// namespace.
fn namespace_here(path: Option<&Path>) -> Result<OwnedFd> {
    // SAFETY: unshare affects only this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(permission_or_io(
            "cannot create a network namespace (unshare)",
            err,
        ));
    }
    let here = Path::new("/proc/thread-self/ns/net");
    let fd = open_ns_file(here)?;
    if let Some(path) = path {
        mount(Some(here), path, libc::MS_BIND).map_err(|e| {
            permission_or_io(
                &format!("cannot bind-mount the namespace at {}", path.display()),
                e,
            )
        })?;
    }
    Ok(fd)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Threads started for one job each by this thread (`run`, `run_async_then_drop`).
        pub(crate) static ONE_SHOT_THREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert_eq!(
                named_path(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
        assert!(named_path("blue").is_ok());
        assert_eq!(
            Netns::open("a/b").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn missing_namespace_is_not_found() {
        let e = Netns::open("underlay-surely-missing-ns").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("underlay-surely-missing-ns"));
    }

    #[test]
    fn current_is_a_netns() {
        let a = Netns::current().unwrap();
        let b = Netns::open_pid(std::process::id()).unwrap();
        assert_eq!(a, b);
    }
}

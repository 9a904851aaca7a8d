//! The guest kernel: Debian's stock `linux-image-*-amd64`, downloaded with apt (never installed
//! on the host), unpacked and turned into a bootable kernel plus a cached initramfs.
//!
//! Cache layout (`$UNDERLAY_VM_CACHE`, default `/var/cache/underlay-vm`):
//!
//! ```text
//! kernel-package              the resolved package name, e.g. linux-image-6.1.0-56-amd64
//! linux-image-6.1.0-56-amd64/
//!     vmlinuz                 the kernel as shipped (bzImage), the fallback
//!     vmlinux                 the same, uncompressed (ELF, PVH entry); absent if extraction failed
//!     config                  the kernel's build configuration
//!     release                 `uname -r` of the guest
//!     initramfs.cpio          busybox, modules, /init
//!     stamp                   written last: what the directory was built from
//! ```

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process;

use super::host;
use super::initramfs;
use super::modules;
use super::vmlinux;

/// Environment variable overriding the cache directory.
pub(crate) const CACHE_ENV: &str = "UNDERLAY_VM_CACHE";
/// Environment variable pinning the kernel package instead of following `linux-image-amd64`.
pub(crate) const PACKAGE_ENV: &str = "UNDERLAY_VM_KERNEL_PACKAGE";
const DEFAULT_CACHE: &str = "/var/cache/underlay-vm";
const METAPACKAGE: &str = "linux-image-amd64";
/// Bump when the layout of a prepared directory changes.
const LAYOUT_VERSION: u32 = 1;

/// A prepared kernel directory.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    pub(crate) dir: PathBuf,
    pub(crate) package: String,
    pub(crate) release: String,
}

impl Kernel {
    /// The image to boot: the uncompressed one when there is one.
    pub(crate) fn image(&self) -> PathBuf {
        let vmlinux = self.dir.join("vmlinux");
        if vmlinux.exists() {
            vmlinux
        } else {
            self.dir.join("vmlinuz")
        }
    }

    pub(crate) fn initramfs(&self) -> PathBuf {
        self.dir.join("initramfs.cpio")
    }
}

/// The cache directory.
pub(crate) fn cache_dir() -> PathBuf {
    env::var_os(CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

fn stamp_text() -> String {
    format!(
        "underlay-vm layout {LAYOUT_VERSION} initramfs {:016x}\n",
        initramfs::recipe_hash(modules::WANTED)
    )
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The prepared kernel in `cache`, if its stamp is current.
fn cached(cache: &Path, package: &str) -> Option<Kernel> {
    let dir = cache.join(package);
    if read_trimmed(&dir.join("stamp"))? != stamp_text().trim() {
        return None;
    }
    Some(Kernel {
        release: read_trimmed(&dir.join("release"))?,
        package: package.to_string(),
        dir,
    })
}

/// The package `linux-image-amd64` depends on, e.g. `linux-image-6.1.0-56-amd64`.
fn resolve_package() -> io::Result<String> {
    if let Some(package) = env::var_os(PACKAGE_ENV).filter(|v| !v.is_empty()) {
        return Ok(package.to_string_lossy().into_owned());
    }
    let lookup = || -> io::Result<Option<String>> {
        let out = host::output(
            process::Command::new("apt-cache").args(["depends", METAPACKAGE]),
            "apt-cache depends",
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Depends:"))
            .map(str::trim)
            .find(|dep| dep.starts_with("linux-image-") && !dep.starts_with('<'))
            .map(str::to_string))
    };
    if let Ok(Some(package)) = lookup() {
        return Ok(package);
    }
    // A fresh machine may have no package lists yet.
    host::run(
        host::noisy("apt-get")?.args(["-q", "update"]),
        "apt-get update",
    )?;
    lookup()?.ok_or_else(|| {
        io::Error::other(format!(
            "apt-cache depends {METAPACKAGE} names no linux-image package"
        ))
    })
}

/// Returns the prepared kernel, building it on a cache miss.
pub(crate) fn prepare() -> io::Result<Kernel> {
    let cache = cache_dir();
    let name_file = cache.join("kernel-package");
    let pinned = env::var_os(PACKAGE_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned());
    let hint = pinned.clone().or_else(|| read_trimmed(&name_file));
    if let Some(kernel) = hint.as_deref().and_then(|package| cached(&cache, package)) {
        return Ok(kernel);
    }

    fs::create_dir_all(&cache)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", cache.display())))?;
    let pinned = pinned.is_some();
    let package = match hint {
        Some(package) => package,
        None => resolve_package()?,
    };
    let kernel = match build(&cache, &package) {
        Ok(kernel) => kernel,
        // The remembered package may have left the archive (security updates bump the ABI).
        Err(e) if !pinned => {
            let fresh = resolve_package()?;
            if fresh == package {
                return Err(e);
            }
            eprintln!("underlay-vm: {package}: {e}; trying {fresh}");
            build(&cache, &fresh)?
        }
        Err(e) => return Err(e),
    };
    if !pinned {
        write_atomically(&name_file, format!("{}\n", kernel.package).as_bytes())?;
    }
    Ok(kernel)
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", process::id()));
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// Removes a work directory on drop, whether the build succeeded or not.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Downloads, unpacks and prepares `package` into `cache/package`.
fn build(cache: &Path, package: &str) -> io::Result<Kernel> {
    eprintln!(
        "underlay-vm: preparing {package} in {} (once; cached afterwards)",
        cache.display()
    );
    let work = cache.join(format!(".{package}.tmp-{}", process::id()));
    let _ = fs::remove_dir_all(&work);
    let _cleanup = TempDir(work.clone());
    let download = work.join("download");
    let root = work.join("root");
    let out = work.join("out");
    for dir in [&download, &root, &out] {
        fs::create_dir_all(dir)?;
    }

    host::apt_get_retrying(
        &["-o", "APT::Sandbox::User=root", "download", package],
        Some(&download),
        &format!("apt-get download {package}"),
    )?;
    let deb = fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| io::Error::other(format!("apt-get download {package} left no .deb")))?;
    host::run(
        process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&root),
        "unpacking the kernel package",
    )?;
    fs::remove_dir_all(&download)?;

    let (base, release) = modules_root(&root)?;
    host::run(
        host::noisy(host::find_program("depmod").unwrap_or_else(|| "depmod".into()))?
            .arg("-b")
            .arg(&base)
            .arg(&release),
        "depmod",
    )?;
    let modules_dir = base.join("lib/modules").join(&release);
    let order = modules::load_order(
        &fs::read_to_string(modules_dir.join("modules.dep"))?,
        &fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default(),
        modules::WANTED,
    )?;
    let busybox = host::static_busybox()
        .ok_or_else(|| io::Error::other("no statically linked busybox on the host"))?;
    initramfs::write_base(&out.join("initramfs.cpio"), &busybox, &modules_dir, &order)?;

    let boot = root.join("boot");
    let vmlinuz = boot.join(format!("vmlinuz-{release}"));
    fs::rename(&vmlinuz, out.join("vmlinuz"))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", vmlinuz.display())))?;
    let config = fs::read_to_string(boot.join(format!("config-{release}"))).unwrap_or_default();
    fs::write(out.join("config"), &config)?;
    if config.lines().any(|line| line == "CONFIG_PVH=y") {
        match uncompress(&out.join("vmlinuz")) {
            Ok(elf) => fs::write(out.join("vmlinux"), elf)?,
            Err(e) => eprintln!("underlay-vm: {e}; booting the compressed kernel instead"),
        }
    } else {
        eprintln!("underlay-vm: the kernel has no PVH entry; booting the compressed kernel");
    }
    fs::write(out.join("release"), format!("{release}\n"))?;
    fs::write(out.join("stamp"), stamp_text())?;

    // Another process may have prepared it meanwhile: then keep theirs (it may be booting it).
    if let Some(kernel) = cached(cache, package) {
        return Ok(kernel);
    }
    let dest = cache.join(package);
    let _ = fs::remove_dir_all(&dest);
    match fs::rename(&out, &dest) {
        Ok(()) => {}
        Err(_) if cached(cache, package).is_some() => {}
        Err(e) => return Err(e),
    }
    cached(cache, package).ok_or_else(|| io::Error::other("prepared kernel vanished"))
}

/// The directory whose `lib/modules/<release>` holds the modules (`root` or `root/usr`), and
/// the release.
fn modules_root(root: &Path) -> io::Result<(PathBuf, String)> {
    for base in [root.to_path_buf(), root.join("usr")] {
        let Ok(entries) = fs::read_dir(base.join("lib/modules")) else {
            continue;
        };
        if let Some(release) = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("kernel").is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .next()
        {
            return Ok((base, release));
        }
    }
    Err(io::Error::other(
        "the kernel package has no lib/modules/<release>/kernel",
    ))
}

fn uncompress(vmlinuz: &Path) -> io::Result<Vec<u8>> {
    let image = fs::read(vmlinuz)?;
    if let Some(tool) = vmlinux::tool_for(&image) {
        if !host::has(&tool) {
            // Without it the compressed kernel still boots, only slower.
            if let Err(e) = host::apt_install(&[tool]) {
                eprintln!("underlay-vm: {e}");
            }
        }
    }
    vmlinux::extract(&image)
}

//! A writer of `newc` cpio archives, the format the kernel unpacks into its initramfs.
//!
//! Only what an initramfs needs: directories, regular files and symlinks, all owned by root.
//! Archives may be concatenated: the kernel unpacks each one in turn, later ones adding to (or
//! replacing files of) earlier ones.

use std::io::{self, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Writes one `newc` archive; call [`Cpio::finish`] to write the trailer.
pub(crate) struct Cpio<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> Cpio<W> {
    /// Starts an archive whose inode numbers begin at `first_ino` (give concatenated archives
    /// disjoint ranges).
    pub(crate) fn new(out: W, first_ino: u32) -> Self {
        Cpio {
            out,
            next_ino: first_ino,
            written: 0,
        }
    }

    /// Adds a directory; `path` is relative (`"lib/modules"`), its parents come first.
    pub(crate) fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | perm, 2, b"", (0, 0))
    }

    /// Adds a character device node (`/dev/console` must exist before devtmpfs is mounted).
    pub(crate) fn chardev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.entry(path, S_IFCHR | perm, 1, b"", (major, minor))
    }

    /// Adds a regular file.
    pub(crate) fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | perm, 1, data, (0, 0))
    }

    /// Adds a symbolic link to `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0))
    }

    /// Writes the trailer, pads the archive to a multiple of 512 bytes and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, 1, 0, (0, 0))?;
        let pad = (512 - self.written % 512) % 512;
        self.write(&vec![0; pad as usize])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let path = path.trim_start_matches('/');
        if path.is_empty() || path.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cpio: invalid path {path:?}"),
            ));
        }
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::other(format!("cpio: {path} is larger than 4 GiB")))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(path, ino, mode, nlink, size, rdev)?;
        self.write(data)?;
        self.pad4()
    }

    fn header(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        size: u32,
        (rmajor, rminor): (u32, u32),
    ) -> io::Result<()> {
        let namesize = name.len() + 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check.
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{rmajor:08x}{rminor:08x}{namesize:08x}{:08x}",
            0, 0, 0, 0, 0, 0
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(b"\0")?;
        self.pad4()
    }

    fn pad4(&mut self) -> io::Result<()> {
        let pad = (4 - self.written % 4) % 4;
        self.write(&[0; 3][..pad as usize])
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_newc() {
        let mut cpio = Cpio::new(Vec::new(), 1);
        cpio.dir("bin", 0o755).unwrap();
        cpio.file("bin/x", 0o644, b"hello").unwrap();
        cpio.symlink("sh", "bin/x").unwrap();
        let out = cpio.finish().unwrap();
        assert_eq!(out.len() % 512, 0);
        assert!(out.starts_with(b"070701"));
        // Header (110 bytes) + "bin\0" is 114, padded to 116.
        let second = &out[116..];
        assert!(second.starts_with(b"070701"));
        assert_eq!(&second[14..22], b"000081a4"); // regular file, 0644
        assert_eq!(&second[54..62], b"00000005"); // size
        assert_eq!(&second[110..116], b"bin/x\0");
        assert_eq!(&second[116..121], b"hello");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
    }

    #[test]
    fn matches_the_cpio_tool_when_installed() {
        // The header offsets above are the whole format; a round trip through GNU cpio is a
        // stronger oracle when the tool happens to be there.
        let Ok(status) = std::process::Command::new("cpio")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
        else {
            return;
        };
        if !status.success() {
            return;
        }
        let mut cpio = Cpio::new(Vec::new(), 1);
        cpio.dir("d", 0o755).unwrap();
        cpio.file("d/f", 0o600, b"abc").unwrap();
        let out = cpio.finish().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let listing = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&listing.stdout), "d\nd/f\n");
    }
}

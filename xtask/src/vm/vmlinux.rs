//! Extracting the uncompressed kernel (`vmlinux`) from a `bzImage`, like the kernel tree's
//! `scripts/extract-vmlinux`: qemu boots an ELF kernel directly (PVH entry), which saves the
//! guest from decompressing itself under emulation.

use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::thread;

use super::host::Tool;

/// A compression format the kernel may use for its payload, and the host tool that undoes it.
struct Format {
    magic: &'static [u8],
    tool: Tool,
    args: &'static [&'static str],
}

/// Why a decompressor is installed.
const UNPACK: &str =
    "unpacks the VM kernel once, so qemu boots it without decompressing (about 3 s faster)";

const FORMATS: &[Format] = &[
    Format {
        magic: b"\xfd7zXZ\x00",
        tool: Tool {
            program: "xz",
            package: "xz-utils",
            why: UNPACK,
        },
        args: &["-dc"],
    },
    Format {
        magic: b"\x28\xb5\x2f\xfd",
        tool: Tool {
            program: "zstd",
            package: "zstd",
            why: UNPACK,
        },
        args: &["-dcq"],
    },
    Format {
        magic: b"\x1f\x8b\x08",
        tool: Tool {
            program: "gzip",
            package: "gzip",
            why: UNPACK,
        },
        args: &["-dc"],
    },
    Format {
        magic: b"BZh",
        tool: Tool {
            program: "bzip2",
            package: "bzip2",
            why: UNPACK,
        },
        args: &["-dc"],
    },
    Format {
        magic: b"\x5d\x00\x00\x00",
        tool: Tool {
            program: "xz",
            package: "xz-utils",
            why: UNPACK,
        },
        args: &["-dc", "--format=lzma"],
    },
    Format {
        magic: b"\x02\x21\x4c\x18",
        tool: Tool {
            program: "lz4",
            package: "lz4",
            why: UNPACK,
        },
        args: &["-dc"],
    },
    Format {
        magic: b"\x89LZO",
        tool: Tool {
            program: "lzop",
            package: "lzop",
            why: UNPACK,
        },
        args: &["-dc"],
    },
];

/// The compressed payload of a bzImage, located through its boot protocol header
/// (`payload_offset`/`payload_length`, boot protocol 2.08 and later).
fn payload(bzimage: &[u8]) -> Option<&[u8]> {
    if bzimage.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bzimage.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let setup_sects = match *bzimage.get(0x1f1)? {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    bzimage.get(start..start + u32_at(0x24c)?)
}

/// Candidate compressed streams: the header's payload first, then every offset where a known
/// magic occurs (what `extract-vmlinux` does).
fn candidates(bzimage: &[u8]) -> Vec<(&'static Format, &[u8])> {
    let mut found = Vec::new();
    if let Some(payload) = payload(bzimage) {
        if let Some(format) = FORMATS.iter().find(|f| payload.starts_with(f.magic)) {
            found.push((format, payload));
        }
    }
    for format in FORMATS {
        let mut at = 0;
        while let Some(pos) = find(&bzimage[at..], format.magic) {
            found.push((format, &bzimage[at + pos..]));
            at += pos + 1;
            if found.len() > 16 {
                return found;
            }
        }
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The host tool that decompresses this kernel's payload.
pub(crate) fn tool_for(bzimage: &[u8]) -> Option<Tool> {
    candidates(bzimage).first().map(|(format, _)| format.tool)
}

/// Decompresses the kernel; the result is an ELF image.
pub(crate) fn extract(bzimage: &[u8]) -> io::Result<Vec<u8>> {
    let mut errors = Vec::new();
    for (format, stream) in candidates(bzimage) {
        match decompress(format, stream) {
            // The kernel appends the uncompressed size after the stream, so tools complain about
            // trailing garbage: their status says nothing, the ELF magic does.
            Ok(out) if out.starts_with(b"\x7fELF") && out.len() > 1 << 20 => return Ok(out),
            Ok(_) => errors.push(format!("{}: not an ELF image", format.tool.program)),
            Err(e) => errors.push(format!("{}: {e}", format.tool.program)),
        }
    }
    Err(io::Error::other(format!(
        "cannot extract vmlinux from the kernel image ({})",
        if errors.is_empty() {
            "no known compression magic".to_string()
        } else {
            errors.join("; ")
        }
    )))
}

fn decompress(format: &Format, stream: &[u8]) -> io::Result<Vec<u8>> {
    let mut child = Command::new(format.tool.program)
        .args(format.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let output = thread::scope(|scope| {
        scope.spawn(move || {
            // The tool may stop reading at the end of its stream: a broken pipe is fine.
            let _ = stdin.write_all(stream);
        });
        child.wait_with_output()
    })?;
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_payload_through_the_header() {
        let mut image = vec![0u8; 4096];
        image[0x1f1] = 1; // setup_sects: protected-mode code at 1024
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&8u32.to_le_bytes());
        image[1124..1130].copy_from_slice(b"\xfd7zXZ\x00");
        assert_eq!(&payload(&image).unwrap()[..6], b"\xfd7zXZ\x00");
        assert_eq!(payload(&image).unwrap().len(), 8);
        assert_eq!(tool_for(&image).unwrap().program, "xz");
    }

    #[test]
    fn gzip_round_trip_when_gzip_is_installed() {
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(2 << 20, 7);
        let Ok(mut child) = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            return;
        };
        let mut stdin = child.stdin.take().unwrap();
        let data = elf.clone();
        let writer = thread::spawn(move || stdin.write_all(&data));
        let gz = child.wait_with_output().unwrap().stdout;
        writer.join().unwrap().unwrap();
        let mut image = b"junk".to_vec();
        image.extend_from_slice(&gz);
        image.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(extract(&image).unwrap(), elf);
    }
}

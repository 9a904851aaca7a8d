//! Per-namespace sysctls (`net.*`), written without a shell from a thread inside the namespace.

use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;
use crate::types::IfName;

/// Which interface a per-interface sysctl applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysctlIf {
    /// `all`: every interface (and, for some keys, combined with the per-interface value).
    All,
    /// `default`: interfaces created from now on.
    Default,
    /// One interface.
    Name(IfName),
}

impl SysctlIf {
    fn segment(&self) -> &str {
        match self {
            SysctlIf::All => "all",
            SysctlIf::Default => "default",
            SysctlIf::Name(n) => n.as_str(),
        }
    }
}

impl Netns {
    /// Reads a `net.*` sysctl in this namespace, e.g. `net.ipv4.ip_forward`. Use `/` as the
    /// separator for keys whose interface name has a dot: `net/ipv4/conf/ens192.10/arp_ignore`.
    pub fn sysctl(&self, key: &str) -> Result<String> {
        let path = sysctl_path(key)?;
        let p = path.clone();
        self.run(move || std::fs::read_to_string(&p))?
            .map(|s| s.trim_end().to_string())
            .map_err(|e| sysctl_io(e, key, self, "read"))
    }

    /// Writes a `net.*` sysctl in this namespace.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let (path, v) = write_args(key, value)?;
        self.run(move || std::fs::write(&path, v.as_bytes()))?
            .map_err(|e| sysctl_io(e, key, self, "write"))
    }

    /// Like [`Netns::set_sysctl`], without blocking the async caller (and without a thread of
    /// its own: it runs on a pooled thread that enters the namespace).
    pub async fn set_sysctl_async(&self, key: &str, value: &str) -> Result<()> {
        let (path, v) = write_args(key, value)?;
        self.run_pooled(move || std::fs::write(&path, v.as_bytes()))
            .await?
            .map_err(|e| sysctl_io(e, key, self, "write"))
    }

    /// IP forwarding on or off, for IPv4 and IPv6 (what a router namespace needs).
    pub fn set_forwarding(&self, v4: bool, v6: bool) -> Result<()> {
        self.set_sysctl("net/ipv4/ip_forward", if v4 { "1" } else { "0" })?;
        self.set_sysctl("net/ipv6/conf/all/forwarding", if v6 { "1" } else { "0" })
    }

    /// `arp_ignore` (0..=8) on `iface`: 1 answers ARP only for addresses on the asking interface.
    pub fn set_arp_ignore(&self, iface: &SysctlIf, value: u8) -> Result<()> {
        check_range("arp_ignore", value as i32, 0, 8)?;
        self.set_sysctl(
            &format!("net/ipv4/conf/{}/arp_ignore", iface.segment()),
            &value.to_string(),
        )
    }

    /// `arp_announce` (0..=2) on `iface`: 2 always uses the best local source address in ARP.
    pub fn set_arp_announce(&self, iface: &SysctlIf, value: u8) -> Result<()> {
        check_range("arp_announce", value as i32, 0, 2)?;
        self.set_sysctl(
            &format!("net/ipv4/conf/{}/arp_announce", iface.segment()),
            &value.to_string(),
        )
    }

    /// IPv6 `accept_dad` (0..=2) on `iface`: 0 turns duplicate address detection off.
    pub fn set_accept_dad(&self, iface: &SysctlIf, value: i32) -> Result<()> {
        check_range("accept_dad", value, -1, 2)?;
        self.set_sysctl(
            &format!("net/ipv6/conf/{}/accept_dad", iface.segment()),
            &value.to_string(),
        )
    }
}

fn check_range(what: &str, v: i32, lo: i32, hi: i32) -> Result<()> {
    if v < lo || v > hi {
        return Err(Error::invalid(format!(
            "{what} value {v} is out of range {lo}..{hi}"
        )));
    }
    Ok(())
}

fn sysctl_path(key: &str) -> Result<std::path::PathBuf> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let ok = rel.starts_with("net/")
        && rel.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
        });
    if !ok {
        return Err(Error::invalid(format!(
            "sysctl key `{key}` is invalid: only `net.*` keys, e.g. net.ipv4.ip_forward (use `/` separators when an interface name has a dot)"
        )));
    }
    Ok(std::path::Path::new("/proc/sys").join(rel))
}

/// The file to write for `key`, and `value` checked to be one non-empty line.
fn write_args(key: &str, value: &str) -> Result<(std::path::PathBuf, String)> {
    let path = sysctl_path(key)?;
    if value.contains('\n') || value.is_empty() {
        return Err(Error::invalid(format!(
            "value {value:?} for sysctl `{key}` must be one non-empty line"
        )));
    }
    Ok((path, value.to_string()))
}

fn sysctl_io(e: std::io::Error, key: &str, ns: &Netns, op: &str) -> Error {
    let base = Error::io(format!("cannot {op} sysctl `{key}` in {ns}"), e);
    match base.kind() {
        ErrorKind::NotFound => Error::not_found(format!(
            "sysctl `{key}` does not exist in {ns}: check the key and that the interface exists there"
        ))
        .with_errno(libc::ENOENT),
        ErrorKind::PermissionDenied => Error::new(
            ErrorKind::PermissionDenied,
            format!("cannot {op} sysctl `{key}` in {ns}: needs root (CAP_NET_ADMIN)"),
        )
        .with_errno(libc::EACCES),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap().to_str(),
            Some("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/ens192.10/arp_ignore")
                .unwrap()
                .to_str(),
            Some("/proc/sys/net/ipv4/conf/ens192.10/arp_ignore")
        );
        for bad in [
            "kernel.panic",
            "net..x",
            "net/../kernel/x",
            "net.ipv4.a b",
            "",
        ] {
            assert_eq!(
                sysctl_path(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn ranges() {
        assert!(check_range("arp_ignore", 9, 0, 8).is_err());
        assert!(check_range("arp_ignore", 8, 0, 8).is_ok());
    }
}

//! Owners, requests, leases and the per-address records a store keeps.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::types::IfName;

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct OwnerInner {
    container_id: String,
    ifname: IfName,
}

/// Who holds a lease: a container id and an interface name (CNI's key). Cheap to clone.
///
/// ```
/// use underlay::ipam::Owner;
/// let owner = Owner::new("4f0c2a9e", "eth0")?;
/// assert_eq!(owner.to_string(), "4f0c2a9e/eth0");
/// assert!(Owner::new("has space", "eth0").is_err());
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(Arc<OwnerInner>);

impl Owner {
    /// Longest container id accepted.
    pub const MAX_ID_LEN: usize = 256;

    /// Validates both parts: the id is 1 to 256 bytes without whitespace, control characters
    /// or `/`; the interface name is a valid [`IfName`].
    pub fn new(container_id: impl Into<String>, ifname: &str) -> Result<Owner> {
        let container_id = container_id.into();
        let why = if container_id.is_empty() {
            Some("it is empty".to_string())
        } else if container_id.len() > Self::MAX_ID_LEN {
            Some(format!("it is {} bytes long", container_id.len()))
        } else {
            container_id
                .chars()
                .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
                .map(|c| format!("it contains {c:?}"))
        };
        if let Some(why) = why {
            return Err(Error::invalid(format!(
                "container id `{}` is invalid: {why}; use 1 to {} bytes without whitespace, \
                 control characters or `/` (a Docker id, a CNI id: letters, digits, `_`, `-`, `.`)",
                shortened(&container_id),
                Self::MAX_ID_LEN
            )));
        }
        let ifname =
            IfName::new(ifname).map_err(|e| e.context(format_args!("owner {container_id}")))?;
        Ok(Owner(Arc::new(OwnerInner {
            container_id,
            ifname,
        })))
    }

    /// The container id.
    pub fn container_id(&self) -> &str {
        &self.0.container_id
    }

    /// The interface name inside the container.
    pub fn ifname(&self) -> &IfName {
        &self.0.ifname
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.container_id, self.0.ifname.as_str())
    }
}

/// `text` for a message: escaped, and cut after 64 characters.
fn shortened(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .collect();
    if text.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

/// A boot id (`/proc/sys/kernel/random/boot_id`): leases stamped with one made before the
/// last reboot are stale. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BootId(Arc<str>);

impl BootId {
    /// Where Linux publishes the current boot id.
    pub const PATH: &'static str = "/proc/sys/kernel/random/boot_id";

    /// Validates `id`: 1 to 64 bytes without whitespace or control characters.
    pub fn new(id: &str) -> Result<BootId> {
        if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid(format!(
                "boot id `{}` is invalid: use 1 to 64 bytes without whitespace",
                shortened(id)
            )));
        }
        Ok(BootId(id.into()))
    }

    /// The running kernel's boot id.
    pub fn current() -> Result<BootId> {
        let text = std::fs::read_to_string(Self::PATH).map_err(|e| {
            Error::io(
                format!(
                    "cannot read the boot id from {}: is /proc mounted?",
                    Self::PATH
                ),
                e,
            )
        })?;
        BootId::new(text.trim())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an owner asks for: any free address from each pool, or specific ones (Docker `--ip`,
/// CNI `ips`); pools without a specific address get any free one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    ips: Vec<IpAddr>,
}

impl Request {
    /// Any free address from every pool.
    pub fn any() -> Request {
        Request::default()
    }

    /// This address in its pool (any free one from the other pools).
    pub fn ip(ip: IpAddr) -> Request {
        Request { ips: vec![ip] }
    }

    /// Adds another specific address (for another pool, e.g. the IPv6 one).
    pub fn and_ip(mut self, ip: IpAddr) -> Request {
        self.ips.push(ip);
        self
    }

    /// The specific addresses asked for.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }
}

/// One address of a lease, with what the container needs to configure it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeasedAddress {
    /// The address with its subnet's prefix length, e.g. `172.22.16.10/24`.
    pub address: IpNet,
    /// The pool's gateway, if any (for the default route).
    pub gateway: Option<IpAddr>,
    /// Index of the pool in [`super::Network::pools`].
    pub pool: usize,
}

/// The addresses an owner holds in one network (one per pool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it.
    pub owner: Owner,
    /// One address per pool, in pool order.
    pub addresses: Vec<LeasedAddress>,
    /// The boot id the lease was made under, if it was stamped.
    pub boot_id: Option<BootId>,
}

impl Lease {
    /// The bare addresses.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.addresses.iter().map(|a| a.address.addr()).collect()
    }
}

/// What a store keeps per address: who holds it and under which boot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The address.
    pub addr: IpAddr,
    /// Its holder.
    pub owner: Owner,
    /// The boot id at allocation time, if stamped.
    pub boot_id: Option<BootId>,
}

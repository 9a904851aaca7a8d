//! Owners, requests, leases and the per-address records a store keeps.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::types::{IfName, MacAddr};

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
        Self::check_id(&container_id)?;
        let ifname =
            IfName::new(ifname).map_err(|e| e.context(format_args!("owner {container_id}")))?;
        Ok(Owner(Arc::new(OwnerInner {
            container_id,
            ifname,
        })))
    }

    /// [`Owner::new`] with the interface name validated already (a decoder shares one
    /// `IfName` among many owners).
    pub(crate) fn from_parts(container_id: &str, ifname: &IfName) -> Result<Owner> {
        Self::check_id(container_id)?;
        Ok(Owner(Arc::new(OwnerInner {
            container_id: container_id.to_string(),
            ifname: ifname.clone(),
        })))
    }

    fn check_id(container_id: &str) -> Result<()> {
        // Printable ASCII other than space and `/`: valid (the common case, checked bytewise).
        let plain = |b: &u8| (b'!'..=b'~').contains(b) && *b != b'/';
        let why = if container_id.is_empty() {
            Some("it is empty".to_string())
        } else if container_id.len() > Self::MAX_ID_LEN {
            Some(format!("it is {} bytes long", container_id.len()))
        } else if container_id.bytes().all(|b| plain(&b)) {
            None
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
                shortened(container_id),
                Self::MAX_ID_LEN
            )));
        }
        Ok(())
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

    /// The quarantine this lease stands for, if its owner is one ([`Quarantine::owner`]).
    pub fn quarantine(&self) -> Option<Quarantine> {
        Quarantine::from_owner(&self.owner)
    }
}

/// An address found in use on the wire by a machine the IPAM does not know (conflict
/// detection: it answered an ARP probe, or failed duplicate address detection), held in the
/// IPAM so that nobody is given it: a lease whose owner names the address, the MAC that
/// answered and when ([`Quarantine::owner`]). It shows in lease listings, survives
/// [`super::Ipam::gc`], and goes with [`super::Ipam::release`] of its owner (once the machine
/// has left), or with [`super::Ipam::release_stale`] after a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quarantine {
    /// The address.
    pub ip: IpAddr,
    /// The MAC that answered for it, when seen.
    pub mac: Option<MacAddr>,
    /// When it answered, in whole seconds since the Unix epoch.
    pub since: u64,
}

impl Quarantine {
    /// The interface name of every quarantine owner.
    pub const IFNAME: &'static str = "quarantine";
    const PREFIX: &'static str = "underlay-conflict_";

    /// The owner holding the address: container id `underlay-conflict_<mac>_<since>_<ip>`
    /// (`<mac>` is `unknown` when none was seen), interface `quarantine`.
    pub fn owner(&self) -> Owner {
        let mac = self
            .mac
            .map_or_else(|| "unknown".to_string(), |m| m.to_string());
        Owner::new(
            format!("{}{mac}_{}_{}", Self::PREFIX, self.since, self.ip),
            Self::IFNAME,
        )
        .expect("a quarantine owner is a valid owner")
    }

    /// The quarantine `owner` stands for, if it is one.
    pub fn from_owner(owner: &Owner) -> Option<Quarantine> {
        if owner.ifname().as_str() != Self::IFNAME {
            return None;
        }
        let rest = owner.container_id().strip_prefix(Self::PREFIX)?;
        let mut parts = rest.splitn(3, '_');
        let mac = match parts.next()? {
            "unknown" => None,
            m => Some(m.parse().ok()?),
        };
        let since = parts.next()?.parse().ok()?;
        let ip = parts.next()?.parse().ok()?;
        Some(Quarantine { ip, mac, since })
    }

    /// A quarantine of `ip`, answered for by `mac`, starting now.
    pub fn now(ip: IpAddr, mac: Option<MacAddr>) -> Quarantine {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Quarantine { ip, mac, since }
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

#[cfg(test)]
mod quarantine_tests {
    use super::*;

    #[test]
    fn quarantine_owner_round_trips() {
        for (ip, mac) in [("10.0.0.5", Some("02:42:ac:10:0a:65")), ("fd00::5", None)] {
            let q = Quarantine {
                ip: ip.parse().unwrap(),
                mac: mac.map(|m| m.parse().unwrap()),
                since: 1_764_000_000,
            };
            assert_eq!(Quarantine::from_owner(&q.owner()), Some(q));
        }
        assert_eq!(
            Quarantine::from_owner(&Owner::new("c1", "eth0").unwrap()),
            None
        );
        assert_eq!(
            Quarantine::from_owner(&Owner::new("underlay-conflict_x", "quarantine").unwrap()),
            None
        );
    }
}

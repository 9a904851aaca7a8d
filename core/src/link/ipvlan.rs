//! ipvlan: children that share the parent's MAC (for MAC-limited switch ports, NICs with few
//! filter slots, 802.11).

use netlink_packet_route::link::{InfoData, InfoIpVlan, InfoKind, IpVlanFlags, IpVlanMode};

use super::create::sealed::Spec;
use super::{LinkBuilder, LinkRef};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::netns::Netns;

/// ipvlan mode. The kernel keeps one mode per parent: every ipvlan on a parent shares it, and
/// creating one in another mode switches its siblings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// Switching by MAC at L2 (ARP/ND work through the parent).
    L2,
    /// Routing at L3; no broadcast or multicast.
    L3,
    /// L3 with netfilter (conntrack) on the slave's path.
    L3s,
}

/// ipvlan flag: how children on one parent reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IpvlanFlag {
    /// Children reach each other directly (default).
    #[default]
    Bridge,
    /// No traffic between children.
    Private,
    /// Traffic between children goes out through the parent.
    Vepa,
}

impl IpvlanMode {
    /// The name iproute2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }
    pub(crate) fn from_nl(m: IpVlanMode) -> Self {
        match m {
            IpVlanMode::L2 => IpvlanMode::L2,
            IpVlanMode::L3S => IpvlanMode::L3s,
            _ => IpvlanMode::L3,
        }
    }
    fn to_nl(self) -> IpVlanMode {
        match self {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        }
    }
}

impl IpvlanFlag {
    /// The name iproute2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanFlag::Bridge => "bridge",
            IpvlanFlag::Private => "private",
            IpvlanFlag::Vepa => "vepa",
        }
    }
    pub(crate) fn from_nl(f: IpVlanFlags) -> Self {
        if f.contains(IpVlanFlags::Private) {
            IpvlanFlag::Private
        } else if f.contains(IpVlanFlags::Vepa) {
            IpvlanFlag::Vepa
        } else {
            IpvlanFlag::Bridge
        }
    }
    fn to_nl(self) -> IpVlanFlags {
        match self {
            IpvlanFlag::Bridge => IpVlanFlags::empty(),
            IpvlanFlag::Private => IpVlanFlags::Private,
            IpvlanFlag::Vepa => IpVlanFlags::Vepa,
        }
    }
}

impl std::str::FromStr for IpvlanMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "l2" => Ok(IpvlanMode::L2),
            "l3" => Ok(IpvlanMode::L3),
            "l3s" => Ok(IpvlanMode::L3s),
            _ => Err(Error::invalid(format!(
                "ipvlan mode `{s}` is unknown: use l2, l3 or l3s"
            ))),
        }
    }
}

impl std::str::FromStr for IpvlanFlag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bridge" => Ok(IpvlanFlag::Bridge),
            "private" => Ok(IpvlanFlag::Private),
            "vepa" => Ok(IpvlanFlag::Vepa),
            _ => Err(Error::invalid(format!(
                "ipvlan flag `{s}` is unknown: use bridge, private or vepa"
            ))),
        }
    }
}

/// An ipvlan child of a parent link.
///
/// The kernel keeps the mode on the parent: creating an ipvlan in another mode than its
/// siblings' switches them all, including those already moved into containers (which the
/// parent's namespace cannot list). Keep one mode per parent; the network layer enforces it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::{ErrorKind, Ipvlan, IpvlanMode};
/// let (container, _) = underlay::doc_support::container().await?;
/// match Ipvlan::create(&h, "eth0", "ens192", IpvlanMode::L2).netns(&container).up().execute().await {
///     Ok(link) => assert_eq!(link.name, "eth0"),
///     Err(e) => assert_eq!(e.kind(), ErrorKind::KernelUnsupported), // no ipvlan module here
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Ipvlan {
    parent: LinkRef,
    mode: IpvlanMode,
    flag: IpvlanFlag,
}

impl Ipvlan {
    /// A builder for ipvlan `name` on `parent` in `mode` (flag bridge).
    pub fn create(
        handle: &Handle,
        name: &str,
        parent: impl Into<LinkRef>,
        mode: IpvlanMode,
    ) -> LinkBuilder<Ipvlan> {
        let spec = Ipvlan {
            parent: parent.into(),
            mode,
            flag: IpvlanFlag::Bridge,
        };
        LinkBuilder::new(handle, Some(name.to_string()), spec)
    }

    super::attach_to_netns!("ipvlan");
}

impl LinkBuilder<Ipvlan> {
    /// The flag (bridge by default).
    pub fn flag(mut self, flag: IpvlanFlag) -> Self {
        self.spec.flag = flag;
        self
    }
}

impl Spec for Ipvlan {
    fn kind_name(&self) -> &'static str {
        "ipvlan"
    }
    fn parent(&self) -> Option<&LinkRef> {
        Some(&self.parent)
    }
    fn info(
        &self,
        _parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        Ok((
            InfoKind::IpVlan,
            Some(InfoData::IpVlan(vec![
                InfoIpVlan::Mode(self.mode.to_nl()),
                InfoIpVlan::Flags(self.flag.to_nl()),
            ])),
        ))
    }
}

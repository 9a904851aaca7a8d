//! 802.1Q (and 802.1ad) VLAN sub-interfaces.

use netlink_packet_route::link::{self as nl, InfoData, InfoKind, InfoVlan};

use super::create::sealed::Spec;
use super::{Link, LinkBuilder, LinkRef};
use crate::error::Result;
use crate::handle::Handle;
use crate::netns::Netns;
use crate::types::VlanId;

/// The VLAN tag protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VlanProtocol {
    /// 802.1Q (0x8100), the usual one.
    #[default]
    Ieee8021Q,
    /// 802.1ad (0x88a8), "QinQ" service tag.
    Ieee8021Ad,
}

impl VlanProtocol {
    /// The name `ip` uses: "802.1Q" or "802.1ad".
    pub fn as_str(self) -> &'static str {
        match self {
            VlanProtocol::Ieee8021Q => "802.1Q",
            VlanProtocol::Ieee8021Ad => "802.1ad",
        }
    }
    pub(crate) fn from_nl(p: nl::VlanProtocol) -> Self {
        match p {
            nl::VlanProtocol::Ieee8021Ad => VlanProtocol::Ieee8021Ad,
            _ => VlanProtocol::Ieee8021Q,
        }
    }
    fn to_nl(self) -> nl::VlanProtocol {
        match self {
            VlanProtocol::Ieee8021Q => nl::VlanProtocol::Ieee8021Q,
            VlanProtocol::Ieee8021Ad => nl::VlanProtocol::Ieee8021Ad,
        }
    }
}

impl std::str::FromStr for VlanProtocol {
    type Err = crate::Error;
    /// "802.1Q" or "802.1ad", in any case.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(VlanProtocol::Ieee8021Q),
            "802.1ad" => Ok(VlanProtocol::Ieee8021Ad),
            _ => Err(crate::Error::invalid(format!(
                "VLAN protocol `{}`: use \"802.1Q\" or \"802.1ad\"",
                crate::Error::show_input(s)
            ))),
        }
    }
}

/// VLAN flags (`ip link ... type vlan reorder_hdr on gvrp off ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanFlags {
    /// Reorder the Ethernet header (the kernel's default: on).
    pub reorder_hdr: bool,
    /// Register the VLAN with GVRP.
    pub gvrp: bool,
    /// Register the VLAN with MVRP.
    pub mvrp: bool,
    /// Do not follow the parent's operational state.
    pub loose_binding: bool,
}

impl Default for VlanFlags {
    fn default() -> Self {
        VlanFlags {
            reorder_hdr: true,
            gvrp: false,
            mvrp: false,
            loose_binding: false,
        }
    }
}

impl VlanFlags {
    pub(crate) fn from_nl(f: nl::VlanFlags) -> Self {
        VlanFlags {
            reorder_hdr: f.contains(nl::VlanFlags::ReorderHdr),
            gvrp: f.contains(nl::VlanFlags::Gvrp),
            mvrp: f.contains(nl::VlanFlags::Mvrp),
            loose_binding: f.contains(nl::VlanFlags::LooseBinding),
        }
    }
    fn to_nl(self) -> nl::VlanFlags {
        let mut f = nl::VlanFlags::empty();
        f.set(nl::VlanFlags::ReorderHdr, self.reorder_hdr);
        f.set(nl::VlanFlags::Gvrp, self.gvrp);
        f.set(nl::VlanFlags::Mvrp, self.mvrp);
        f.set(nl::VlanFlags::LooseBinding, self.loose_binding);
        f
    }
}

/// A VLAN sub-interface: shares its parent's MAC, tags frames with its id.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::{ErrorKind, Vlan, VlanId};
/// // `ens192.10`, like `ip link add link ens192 name ens192.10 type vlan id 10`.
/// match Vlan::create(&h, "ens192", VlanId::new(10)?).up().execute().await {
///     Ok(link) => assert_eq!(link.name, "ens192.10"),
///     // "kernel has no 8021q (VLAN) support: load it with `modprobe 8021q`"
///     Err(e) => assert_eq!(e.kind(), ErrorKind::KernelUnsupported),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Vlan {
    parent: LinkRef,
    id: VlanId,
    protocol: VlanProtocol,
    flags: VlanFlags,
}

impl Vlan {
    /// A builder for VLAN `id` on `parent`, named `<parent>.<id>` unless named otherwise.
    pub fn create(handle: &Handle, parent: impl Into<LinkRef>, id: VlanId) -> LinkBuilder<Vlan> {
        let spec = Vlan {
            parent: parent.into(),
            id,
            protocol: VlanProtocol::default(),
            flags: VlanFlags::default(),
        };
        LinkBuilder::new(handle, None, spec)
    }

    super::attach_to_netns!("VLAN link");
}

impl LinkBuilder<Vlan> {
    /// Tag protocol (802.1Q by default).
    pub fn protocol(mut self, protocol: VlanProtocol) -> Self {
        self.spec.protocol = protocol;
        self
    }

    /// Flags.
    pub fn flags(mut self, flags: VlanFlags) -> Self {
        self.spec.flags = flags;
        self
    }
}

impl Spec for Vlan {
    fn kind_name(&self) -> &'static str {
        "vlan"
    }
    fn unsupported_hint(&self) -> String {
        "kernel has no 8021q (VLAN) support: load it with `modprobe 8021q`".into()
    }
    fn parent(&self) -> Option<&LinkRef> {
        Some(&self.parent)
    }
    fn default_name(&self, parent: Option<&Link>) -> Option<String> {
        parent.map(|p| format!("{}.{}", p.name, self.id))
    }
    fn info(
        &self,
        _parent: Option<&Link>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        let flags = self.flags.to_nl();
        let all = nl::VlanFlags::ReorderHdr
            | nl::VlanFlags::Gvrp
            | nl::VlanFlags::Mvrp
            | nl::VlanFlags::LooseBinding;
        Ok((
            InfoKind::Vlan,
            Some(InfoData::Vlan(vec![
                InfoVlan::Id(self.id.get()),
                InfoVlan::Protocol(self.protocol.to_nl()),
                InfoVlan::Flags((flags, all)),
            ])),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::VlanProtocol;
    use crate::ErrorKind;

    #[test]
    fn protocol_names_read_back_as_given_in_any_case() {
        for p in [VlanProtocol::Ieee8021Q, VlanProtocol::Ieee8021Ad] {
            assert_eq!(p.as_str().parse::<VlanProtocol>().unwrap(), p);
            assert_eq!(
                p.as_str().to_uppercase().parse::<VlanProtocol>().unwrap(),
                p
            );
        }
        let e = "802.1x".parse::<VlanProtocol>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("802.1x") && e.to_string().contains("802.1ad"));
    }
}

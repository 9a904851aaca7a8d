//! 802.1Q (and 802.1ad) VLAN sub-interfaces.

use netlink_packet_route::link::{
    self as nl, InfoData, InfoKind, InfoVlan, LinkAttribute, LinkInfo, LinkMessage, VlanQosMapping,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::create::sealed::Spec;
use super::{Link, LinkBuilder, LinkKind, LinkRef};
use crate::error::{Error, ErrorKind, Result};
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

/// A VLAN's 802.1p priority maps (`ip link ... type vlan ingress-qos-map FROM:TO ...
/// egress-qos-map FROM:TO ...`).
///
/// The kernel keeps a map per direction and changes only the entries given: mapping an entry
/// to 0 clears it. It reports (and [`LinkKind::Vlan`] reads back) the entries that map to
/// something other than 0, ingress in 802.1p order, egress grouped by `skb` priority modulo 16.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VlanQosMaps {
    /// Received frames: (802.1p priority 0..7 of the tag, `skb` priority given to the packet).
    pub ingress: Vec<(u32, u32)>,
    /// Sent packets: (`skb` priority, 802.1p priority 0..7 written into the tag).
    pub egress: Vec<(u32, u32)>,
}

impl VlanQosMaps {
    /// 802.1p priorities run 0..=7.
    pub const MAX_PRIORITY: u32 = 7;

    /// No entry in either direction.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }

    /// Refuses an 802.1p priority above 7 (the kernel would silently keep its low 3 bits).
    pub(crate) fn validate(&self, object: &str) -> Result<()> {
        let bad = |dir: &str, entry: String, p: u32| {
            Err(Error::invalid(format!(
                "{dir} QoS map entry {entry} of {object}: 802.1p priority {p} is out of range \
                 0..{}; give a priority from there",
                Self::MAX_PRIORITY
            )))
        };
        for &(from, to) in &self.ingress {
            if from > Self::MAX_PRIORITY {
                return bad("ingress", format!("{from}:{to}"), from);
            }
        }
        for &(from, to) in &self.egress {
            if to > Self::MAX_PRIORITY {
                return bad("egress", format!("{from}:{to}"), to);
            }
        }
        Ok(())
    }

    fn to_nl(&self, out: &mut Vec<InfoVlan>) {
        if !self.ingress.is_empty() {
            out.push(InfoVlan::IngressQos(
                self.ingress
                    .iter()
                    .map(|&(f, t)| VlanQosMapping::Mapping(f, t))
                    .collect(),
            ));
        }
        if !self.egress.is_empty() {
            out.push(InfoVlan::EgressQos(
                self.egress
                    .iter()
                    .map(|&(f, t)| VlanQosMapping::Mapping(f, t))
                    .collect(),
            ));
        }
    }

    /// The maps from the kernel's mapping lists.
    pub(crate) fn from_nl(ingress: &[VlanQosMapping], egress: &[VlanQosMapping]) -> Self {
        let pairs = |m: &[VlanQosMapping]| -> Vec<(u32, u32)> {
            m.iter()
                .filter_map(|m| match m {
                    VlanQosMapping::Mapping(f, t) => Some((*f, *t)),
                    _ => None,
                })
                .collect()
        };
        VlanQosMaps {
            ingress: pairs(ingress),
            egress: pairs(egress),
        }
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
    qos: VlanQosMaps,
}

impl Vlan {
    /// A builder for VLAN `id` on `parent`, named `<parent>.<id>` unless named otherwise.
    pub fn create(handle: &Handle, parent: impl Into<LinkRef>, id: VlanId) -> LinkBuilder<Vlan> {
        let spec = Vlan {
            parent: parent.into(),
            id,
            protocol: VlanProtocol::default(),
            flags: VlanFlags::default(),
            qos: VlanQosMaps::default(),
        };
        LinkBuilder::new(handle, None, spec)
    }

    /// Adds or changes entries of the QoS maps of the existing VLAN `link` (entries not given
    /// stay; an entry mapped to 0 is cleared), like `ip link set LINK type vlan
    /// ingress-qos-map ... egress-qos-map ...`. A link that is not a VLAN is refused.
    pub async fn set_qos(
        handle: &Handle,
        link: impl Into<LinkRef>,
        qos: &VlanQosMaps,
    ) -> Result<()> {
        let link = link.into();
        let object = format!("VLAN {link}");
        qos.validate(&object)?;
        let current = handle.link(link.clone()).await?;
        if !matches!(current.kind, LinkKind::Vlan { .. }) {
            return Err(Error::invalid(format!(
                "link {link} is a {}, not a VLAN: QoS maps belong to VLANs; name a VLAN link",
                current.kind.name()
            )));
        }
        if qos.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        qos.to_nl(&mut data);
        let mut msg = LinkMessage::default();
        msg.header.index = current.index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vlan),
            LinkInfo::Data(InfoData::Vlan(data)),
        ]));
        // A new-link request without NLM_F_CREATE changes the existing link's kind data.
        handle
            .request(RouteNetlinkMessage::NewLink(msg), 0, "change", &object)
            .await
            .map(drop)
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => handle.missing_link(&link),
                _ => e,
            })
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

    /// 802.1p priority maps, set in the create request.
    pub fn qos(mut self, qos: VlanQosMaps) -> Self {
        self.spec.qos = qos;
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
    fn validate(&self) -> Result<()> {
        self.qos.validate(&format!("the new VLAN {}", self.id))
    }
    fn info(
        &self,
        _parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        let flags = self.flags.to_nl();
        let all = nl::VlanFlags::ReorderHdr
            | nl::VlanFlags::Gvrp
            | nl::VlanFlags::Mvrp
            | nl::VlanFlags::LooseBinding;
        let mut data = vec![
            InfoVlan::Id(self.id.get()),
            InfoVlan::Protocol(self.protocol.to_nl()),
            InfoVlan::Flags((flags, all)),
        ];
        self.qos.to_nl(&mut data);
        Ok((InfoKind::Vlan, Some(InfoData::Vlan(data))))
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

//! What a link is, read back from the kernel.

use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoMacVtap, InfoVlan, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage, MacVlanFlags, State,
};

use super::bridge::BridgeInfo;
use super::ipvlan::{IpvlanFlag, IpvlanMode};
use super::macvlan::MacvlanMode;
use super::vlan::{VlanFlags, VlanProtocol, VlanQosMaps};
use super::vxlan::VxlanInfo;
use crate::types::MacAddr;

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// Interface index, unique within its namespace.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// The kind and its details.
    pub kind: LinkKind,
    /// Hardware address, for links that have one.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Operationally running (IFF_RUNNING: carrier on the lower layer).
    pub running: bool,
    /// Promiscuous mode flag (IFF_PROMISC) as set by the administrator.
    pub promisc: bool,
    /// Operational state as text (`up`, `down`, `lowerlayerdown`, `unknown`, ...).
    pub oper_state: String,
    /// Parent (lower) link index (IFLA_LINK); in another namespace when `parent_netns_id` is set.
    pub parent: Option<u32>,
    /// The parent's namespace id as seen from this link's namespace, when it lives elsewhere.
    pub parent_netns_id: Option<i32>,
    /// Master (bridge, bond) index.
    pub master: Option<u32>,
    /// Alias (IFLA_IFALIAS), a free-form label.
    pub alias: Option<String>,
    /// Link group.
    pub group: u32,
    /// The namespace this link was read from (label, for messages).
    pub netns: String,
}

/// The kind of a link and its kind-specific settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkKind {
    /// 802.1Q / 802.1ad VLAN sub-interface.
    Vlan {
        /// VLAN id.
        id: u16,
        /// Tag protocol.
        protocol: VlanProtocol,
        /// Flags.
        flags: VlanFlags,
        /// 802.1p priority maps (the entries that map to something other than 0).
        qos: VlanQosMaps,
    },
    /// macvlan.
    Macvlan {
        /// Mode.
        mode: MacvlanMode,
        /// The allowed source MACs in source mode.
        source_macs: Vec<MacAddr>,
        /// Passthru without making the parent promiscuous (`nopromisc`).
        nopromisc: bool,
    },
    /// macvtap (macvlan with a tap character device).
    Macvtap {
        /// Mode.
        mode: MacvlanMode,
        /// The allowed source MACs in source mode.
        source_macs: Vec<MacAddr>,
        /// Passthru without making the parent promiscuous (`nopromisc`).
        nopromisc: bool,
    },
    /// ipvlan.
    Ipvlan {
        /// Mode (belongs to the parent: all ipvlans on one parent share it).
        mode: IpvlanMode,
        /// Flag.
        flag: IpvlanFlag,
    },
    /// VXLAN.
    Vxlan(VxlanInfo),
    /// One end of a veth pair.
    Veth,
    /// Linux bridge.
    Bridge(BridgeInfo),
    /// dummy.
    Dummy,
    /// Any other kind the kernel named.
    Other(String),
    /// No kind (physical NIC, loopback).
    Device,
}

impl LinkKind {
    /// The kernel's kind name (`vlan`, `macvlan`, ...), empty for [`LinkKind::Device`].
    pub fn name(&self) -> &str {
        match self {
            LinkKind::Vlan { .. } => "vlan",
            LinkKind::Macvlan { .. } => "macvlan",
            LinkKind::Macvtap { .. } => "macvtap",
            LinkKind::Ipvlan { .. } => "ipvlan",
            LinkKind::Vxlan(_) => "vxlan",
            LinkKind::Veth => "veth",
            LinkKind::Bridge(_) => "bridge",
            LinkKind::Dummy => "dummy",
            LinkKind::Other(s) => s,
            LinkKind::Device => "",
        }
    }
}

impl Link {
    pub(crate) fn from_message(msg: LinkMessage, netns: &str) -> Link {
        let flags = msg.header.flags;
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: LinkKind::Device,
            mac: None,
            mtu: 0,
            up: flags.contains(LinkFlags::Up),
            running: flags.contains(LinkFlags::Running),
            promisc: flags.contains(LinkFlags::Promisc),
            oper_state: "unknown".into(),
            parent: None,
            parent_netns_id: None,
            master: None,
            alias: None,
            group: 0,
            netns: netns.to_string(),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => link.mac = MacAddr::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Link(p) => link.parent = Some(p),
                LinkAttribute::LinkNetNsId(id) => link.parent_netns_id = Some(id),
                LinkAttribute::Controller(m) => link.master = Some(m),
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::Group(g) => link.group = g,
                LinkAttribute::OperState(s) => link.oper_state = oper_state(s),
                LinkAttribute::LinkInfo(infos) => link.kind = kind_from(infos),
                _ => {}
            }
        }
        link
    }
}

fn oper_state(s: State) -> String {
    match s {
        State::Up => "up",
        State::Down => "down",
        State::LowerLayerDown => "lowerlayerdown",
        State::Dormant => "dormant",
        State::Testing => "testing",
        State::NotPresent => "notpresent",
        _ => "unknown",
    }
    .to_string()
}

fn kind_from(infos: Vec<LinkInfo>) -> LinkKind {
    let mut kind = None;
    let mut data = None;
    for info in infos {
        match info {
            LinkInfo::Kind(k) => kind = Some(k),
            LinkInfo::Data(d) => data = Some(d),
            _ => {}
        }
    }
    match (kind, data) {
        (Some(InfoKind::Vlan), Some(InfoData::Vlan(d))) => {
            let (mut id, mut protocol, mut flags) =
                (0, VlanProtocol::Ieee8021Q, VlanFlags::default());
            let (mut ingress, mut egress) = (Vec::new(), Vec::new());
            for a in d {
                match a {
                    InfoVlan::Id(i) => id = i,
                    InfoVlan::Protocol(p) => protocol = VlanProtocol::from_nl(p),
                    InfoVlan::Flags((f, _mask)) => flags = VlanFlags::from_nl(f),
                    InfoVlan::IngressQos(m) => ingress = m,
                    InfoVlan::EgressQos(m) => egress = m,
                    _ => {}
                }
            }
            LinkKind::Vlan {
                id,
                protocol,
                flags,
                qos: VlanQosMaps::from_nl(&ingress, &egress),
            }
        }
        (Some(InfoKind::MacVlan), Some(InfoData::MacVlan(d))) => {
            let mut mode = MacvlanMode::Vepa;
            let mut source_macs = Vec::new();
            let mut nopromisc = false;
            for a in d {
                match a {
                    InfoMacVlan::Mode(m) => mode = MacvlanMode::from_nl(m),
                    InfoMacVlan::Flags(f) => nopromisc = f.contains(MacVlanFlags::NoPromisc),
                    InfoMacVlan::MacAddrData(list) => {
                        source_macs.extend(list.into_iter().filter_map(|x| match x {
                            InfoMacVlan::MacAddr(m) => Some(MacAddr::new(m)),
                            _ => None,
                        }))
                    }
                    _ => {}
                }
            }
            LinkKind::Macvlan {
                mode,
                source_macs,
                nopromisc,
            }
        }
        (Some(InfoKind::MacVtap), Some(InfoData::MacVtap(d))) => {
            let mut mode = MacvlanMode::Vepa;
            let mut source_macs = Vec::new();
            let mut nopromisc = false;
            for a in d {
                match a {
                    InfoMacVtap::Mode(m) => mode = MacvlanMode::from_vtap(m),
                    InfoMacVtap::Flags(f) => nopromisc = f.contains(MacVlanFlags::NoPromisc),
                    InfoMacVtap::MacAddrData(list) => {
                        source_macs.extend(list.into_iter().filter_map(|x| match x {
                            InfoMacVtap::MacAddr(m) => Some(MacAddr::new(m)),
                            _ => None,
                        }))
                    }
                    _ => {}
                }
            }
            LinkKind::Macvtap {
                mode,
                source_macs,
                nopromisc,
            }
        }
        (Some(InfoKind::MacVlan), _) => LinkKind::Macvlan {
            mode: MacvlanMode::Vepa,
            source_macs: vec![],
            nopromisc: false,
        },
        (Some(InfoKind::IpVlan), d) => {
            let (mut mode, mut flag) = (IpvlanMode::L3, IpvlanFlag::Bridge);
            if let Some(InfoData::IpVlan(d)) = d {
                for a in d {
                    match a {
                        InfoIpVlan::Mode(m) => mode = IpvlanMode::from_nl(m),
                        InfoIpVlan::Flags(f) => flag = IpvlanFlag::from_nl(f),
                        _ => {}
                    }
                }
            }
            LinkKind::Ipvlan { mode, flag }
        }
        (Some(InfoKind::Vxlan), Some(InfoData::Vxlan(d))) => LinkKind::Vxlan(VxlanInfo::from_nl(d)),
        (Some(InfoKind::Veth), _) => LinkKind::Veth,
        (Some(InfoKind::Bridge), d) => LinkKind::Bridge(BridgeInfo::from_nl(match d {
            Some(InfoData::Bridge(b)) => b,
            _ => vec![],
        })),
        (Some(InfoKind::Dummy), _) => LinkKind::Dummy,
        (Some(InfoKind::Other(s)), _) => LinkKind::Other(s),
        (Some(k), _) => LinkKind::Other(k.to_string()),
        (None, _) => LinkKind::Device,
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} `{}` (index {}) in {}",
            if self.kind.name().is_empty() {
                "link"
            } else {
                self.kind.name()
            },
            self.name,
            self.index,
            self.netns
        )
    }
}

//! Linux bridges (for test and demo topologies: a switch inside a namespace).

use netlink_packet_route::link::{InfoBridge, InfoData, InfoKind};

use super::create::sealed::Spec;
use super::LinkBuilder;
use crate::error::Result;
use crate::handle::Handle;
use crate::netns::Netns;

/// Bridge settings as read back.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BridgeInfo {
    /// 802.1Q VLAN filtering on the bridge ports.
    pub vlan_filtering: bool,
}

impl BridgeInfo {
    pub(crate) fn from_nl(attrs: Vec<InfoBridge>) -> Self {
        let mut b = BridgeInfo::default();
        for a in attrs {
            if let InfoBridge::VlanFiltering(v) = a {
                b.vlan_filtering = v;
            }
        }
        b
    }
}

/// A Linux bridge.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::Bridge;
/// let br = Bridge::create(&h, "br0").up().execute().await?;
/// h.set_link("ens192").master(br.index).execute().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Bridge {
    vlan_filtering: Option<bool>,
}

impl Bridge {
    /// A builder for bridge `name`.
    pub fn create(handle: &Handle, name: &str) -> LinkBuilder<Bridge> {
        LinkBuilder::new(
            handle,
            Some(name.to_string()),
            Bridge {
                vlan_filtering: None,
            },
        )
    }
}

impl LinkBuilder<Bridge> {
    /// VLAN filtering on or off (left to the kernel's default, off, when not called; needs a
    /// kernel built with CONFIG_BRIDGE_VLAN_FILTERING).
    pub fn vlan_filtering(mut self, on: bool) -> Self {
        self.spec.vlan_filtering = Some(on);
        self
    }
}

impl Spec for Bridge {
    fn kind_name(&self) -> &'static str {
        "bridge"
    }
    fn info(
        &self,
        _parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        let data = self
            .vlan_filtering
            .map(|v| InfoData::Bridge(vec![InfoBridge::VlanFiltering(v)]));
        Ok((InfoKind::Bridge, data))
    }
    fn unsupported_hint(&self) -> String {
        if self.vlan_filtering.is_some() {
            "kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING): use a kernel built with it, \
             or create the bridge without vlan_filtering"
                .into()
        } else {
            "kernel has no bridge support: load it with `modprobe bridge`".into()
        }
    }
}

//! veth pairs: the cable between two namespaces (used to build test and demo topologies).

use std::os::fd::AsRawFd;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};

use super::create::sealed::Spec;
use super::LinkBuilder;
use crate::error::Result;
use crate::handle::Handle;
use crate::netns::Netns;
use crate::types::{IfName, MacAddr};

/// A veth pair: `name` in the handle's namespace (or the builder's target), `peer` in its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::Veth;
/// let (other, _) = underlay::doc_support::container().await?;
/// // `trunk0` here, `trunk1` inside `other`.
/// Veth::create(&h, "trunk0", "trunk1").peer_netns(&other).up().execute().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Veth {
    peer: String,
    peer_netns: Option<Netns>,
    peer_mac: Option<MacAddr>,
    peer_up: bool,
}

impl Veth {
    /// A builder for the pair `name` / `peer`.
    pub fn create(handle: &Handle, name: &str, peer: &str) -> LinkBuilder<Veth> {
        let spec = Veth {
            peer: peer.to_string(),
            peer_netns: None,
            peer_mac: None,
            peer_up: false,
        };
        LinkBuilder::new(handle, Some(name.to_string()), spec)
    }

    super::attach_to_netns!("veth end");
}

impl LinkBuilder<Veth> {
    /// Create the peer end directly inside `netns`.
    pub fn peer_netns(mut self, netns: &Netns) -> Self {
        self.spec.peer_netns = Some(netns.clone());
        self
    }

    /// Bring the peer end up too (a second request: the kernel cannot in the create one).
    pub fn peer_up(mut self) -> Self {
        self.spec.peer_up = true;
        self
    }

    /// The peer's MAC.
    pub fn peer_mac(mut self, mac: MacAddr) -> Self {
        self.spec.peer_mac = Some(mac);
        self
    }
}

impl Spec for Veth {
    fn kind_name(&self) -> &'static str {
        "veth"
    }
    fn validate(&self) -> Result<()> {
        IfName::new(self.peer.as_str())?;
        if let Some(mac) = self.peer_mac {
            mac.check_assignable(format_args!("veth peer `{}`", self.peer))?;
        }
        Ok(())
    }
    fn info(
        &self,
        _parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(self.peer.clone()));
        if let Some(mac) = self.peer_mac {
            peer.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        // As with iproute2, the peer stays in the caller's namespace unless given its own.
        if let Some(ns) = &self.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        Ok((InfoKind::Veth, Some(InfoData::Veth(InfoVeth::Peer(peer)))))
    }
    async fn after_create(&self, handle: &Handle, _reader: &Handle) -> Result<()> {
        // The kernel cannot open the peer inside the create request (it is not paired yet).
        if !self.peer_up {
            return Ok(());
        }
        let peer_handle = match &self.peer_netns {
            Some(ns) => Handle::for_netns(ns).await?,
            None => handle.clone(),
        };
        peer_handle
            .set_link(self.peer.as_str())
            .up()
            .execute()
            .await
    }
}

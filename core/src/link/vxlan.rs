//! VXLAN: a 24-bit overlay segment over UDP (4789) between VTEPs, for when 4094 VLANs run out.

use std::net::IpAddr;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan};

use super::create::sealed::Spec;
use super::{LinkBuilder, LinkRef};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::netns::Netns;

/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// VXLAN settings as read back.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VxlanInfo {
    /// VNI (24 bits).
    pub vni: u32,
    /// Local VTEP address.
    pub local: Option<IpAddr>,
    /// Remote VTEP (unicast) or multicast group.
    pub remote: Option<IpAddr>,
    /// UDP destination port.
    pub port: u16,
    /// Underlying device index.
    pub link: Option<u32>,
    /// MAC learning.
    pub learning: bool,
    /// TTL of the outer packets; 0 is `auto` (the route's hop limit), also when
    /// [`VxlanInfo::ttl_inherit`] is set.
    pub ttl: u8,
    /// The outer TTL is copied from the inner packet (`ttl inherit`).
    pub ttl_inherit: bool,
}

impl VxlanInfo {
    pub(crate) fn from_nl(attrs: Vec<InfoVxlan>) -> Self {
        let mut v = VxlanInfo::default();
        for a in attrs {
            match a {
                InfoVxlan::Id(id) => v.vni = id,
                InfoVxlan::Local(ip) => v.local = Some(ip.into()),
                InfoVxlan::Local6(ip) => v.local = Some(ip.into()),
                InfoVxlan::Group(ip) => v.remote = Some(ip.into()),
                InfoVxlan::Group6(ip) => v.remote = Some(ip.into()),
                InfoVxlan::Port(p) => v.port = p,
                InfoVxlan::Link(l) => v.link = Some(l),
                InfoVxlan::Learning(l) => v.learning = l,
                InfoVxlan::Ttl(t) => v.ttl = t,
                InfoVxlan::TtlInherit(on) => v.ttl_inherit = on != 0,
                InfoVxlan::TtlInheritFlag => v.ttl_inherit = true,
                _ => {}
            }
        }
        v
    }
}

/// A VXLAN link.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::{LinkKind, Vxlan};
/// h.add_address("ens192", "10.0.0.1/24".parse().unwrap()).await?;
/// let vx = Vxlan::create(&h, "vx100", 100)
///     .local("10.0.0.1".parse().unwrap())
///     .remote("10.0.0.2".parse().unwrap())
///     .device("ens192")
///     .up()
///     .execute()
///     .await?;
/// assert!(matches!(vx.kind, LinkKind::Vxlan(ref v) if v.vni == 100 && v.port == 4789));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Vxlan {
    vni: u32,
    local: Option<IpAddr>,
    remote: Option<IpAddr>,
    port: u16,
    device: Option<LinkRef>,
    learning: bool,
    ttl: Option<u8>,
    ttl_inherit: bool,
}

impl Vxlan {
    /// A builder for VXLAN `name` with `vni` (1..16777215), port 4789, learning on.
    pub fn create(handle: &Handle, name: &str, vni: u32) -> LinkBuilder<Vxlan> {
        let spec = Vxlan {
            vni,
            local: None,
            remote: None,
            port: VXLAN_PORT,
            device: None,
            learning: true,
            ttl: None,
            ttl_inherit: false,
        };
        LinkBuilder::new(handle, Some(name.to_string()), spec)
    }
}

impl LinkBuilder<Vxlan> {
    /// Local VTEP address.
    pub fn local(mut self, ip: IpAddr) -> Self {
        self.spec.local = Some(ip);
        self
    }
    /// Remote VTEP (unicast) or multicast group (multicast needs [`LinkBuilder::device`]).
    pub fn remote(mut self, ip: IpAddr) -> Self {
        self.spec.remote = Some(ip);
        self
    }
    /// UDP destination port (default 4789).
    pub fn port(mut self, port: u16) -> Self {
        self.spec.port = port;
        self
    }
    /// Underlying device.
    pub fn device(mut self, dev: impl Into<LinkRef>) -> Self {
        self.spec.device = Some(dev.into());
        self
    }
    /// MAC learning on or off.
    pub fn learning(mut self, on: bool) -> Self {
        self.spec.learning = on;
        self
    }
    /// TTL of the outer packets (1..255). Unset, it is `auto`: the route's hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.spec.ttl = Some(ttl);
        self
    }
    /// Copy the outer packets' TTL from the inner ones (`ttl inherit`); not with
    /// [`LinkBuilder::ttl`].
    pub fn ttl_inherit(mut self) -> Self {
        self.spec.ttl_inherit = true;
        self
    }
}

impl Spec for Vxlan {
    fn kind_name(&self) -> &'static str {
        "vxlan"
    }
    fn parent(&self) -> Option<&LinkRef> {
        self.device.as_ref()
    }
    fn parent_is_lower(&self) -> bool {
        false
    }
    fn validate(&self) -> Result<()> {
        if self.vni == 0 || self.vni > 0x00ff_ffff {
            return Err(Error::invalid(format!(
                "VXLAN VNI {} is out of range: use 1..16777215 (24 bits)",
                self.vni
            )));
        }
        if self.port == 0 {
            return Err(Error::invalid(
                "VXLAN destination port 0 is invalid: use 4789 (the default) or another port",
            ));
        }
        if let (Some(l), Some(r)) = (self.local, self.remote) {
            if l.is_ipv4() != r.is_ipv4() {
                return Err(Error::invalid(format!(
                    "VXLAN local {l} and remote {r} must be the same IP version"
                )));
            }
        }
        if let Some(r) = self.remote {
            if r.is_multicast() && self.device.is_none() {
                return Err(Error::invalid(format!(
                    "VXLAN multicast group {r} needs an underlying device: set .device(..)"
                )));
            }
            if r.is_unspecified() {
                return Err(Error::invalid(
                    "VXLAN remote must not be the unspecified address",
                ));
            }
        }
        if self.ttl == Some(0) {
            return Err(Error::invalid(
                "VXLAN TTL 0 is invalid: use 1..255, leave it unset for `auto` (the route's \
                 hop limit), or inherit it from the inner packets",
            ));
        }
        if let (Some(t), true) = (self.ttl, self.ttl_inherit) {
            return Err(Error::invalid(format!(
                "VXLAN TTL {t} and TTL inherit were both given: give one"
            )));
        }
        Ok(())
    }
    fn info(
        &self,
        parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        let mut a = vec![
            InfoVxlan::Id(self.vni),
            InfoVxlan::Port(self.port),
            InfoVxlan::Learning(self.learning),
        ];
        match self.local {
            Some(IpAddr::V4(ip)) => a.push(InfoVxlan::Local(ip)),
            Some(IpAddr::V6(ip)) => a.push(InfoVxlan::Local6(ip)),
            None => {}
        }
        match self.remote {
            Some(IpAddr::V4(ip)) => a.push(InfoVxlan::Group(ip)),
            Some(IpAddr::V6(ip)) => a.push(InfoVxlan::Group6(ip)),
            None => {}
        }
        if let Some(dev) = parent {
            a.push(InfoVxlan::Link(dev));
        }
        if let Some(t) = self.ttl {
            a.push(InfoVxlan::Ttl(t));
        }
        if self.ttl_inherit {
            a.push(InfoVxlan::TtlInheritFlag);
        }
        Ok((InfoKind::Vxlan, Some(InfoData::Vxlan(a))))
    }
}

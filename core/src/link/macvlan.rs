//! macvlan and macvtap: children with their own MAC on a parent NIC.

use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoMacVtap, MacVlanMacAddressMode, MacVlanMode,
    MacVtapMacAddressMode, MacVtapMode,
};

use super::create::sealed::Spec;
use super::{Link, LinkBuilder, LinkKind, LinkRef};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::netns::Netns;
use crate::types::MacAddr;

/// How macvlan children on one parent reach each other and the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    /// No traffic between children, not even through the switch.
    Private,
    /// Traffic between children goes out to the switch (needs hairpin / 802.1Qbg).
    Vepa,
    /// Children reach each other directly (the common mode, Docker's only one).
    Bridge,
    /// One child takes over the parent (e.g. for a VM); only one per parent.
    Passthru,
    /// Only frames from the listed source MACs are accepted.
    Source,
}

impl MacvlanMode {
    /// The name iproute2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }

    pub(crate) fn from_nl(m: MacVlanMode) -> Self {
        match m {
            MacVlanMode::Private => MacvlanMode::Private,
            MacVlanMode::Bridge => MacvlanMode::Bridge,
            MacVlanMode::Passthrough => MacvlanMode::Passthru,
            MacVlanMode::Source => MacvlanMode::Source,
            _ => MacvlanMode::Vepa,
        }
    }

    pub(crate) fn from_vtap(m: MacVtapMode) -> Self {
        Self::from_nl(MacVlanMode::from(u32::from(m)))
    }

    fn to_nl(self) -> MacVlanMode {
        match self {
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
            MacvlanMode::Source => MacVlanMode::Source,
        }
    }
}

impl std::str::FromStr for MacvlanMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "private" => MacvlanMode::Private,
            "vepa" => MacvlanMode::Vepa,
            "bridge" => MacvlanMode::Bridge,
            "passthru" | "passthrough" => MacvlanMode::Passthru,
            "source" => MacvlanMode::Source,
            _ => {
                return Err(Error::invalid(format!(
                    "macvlan mode `{s}` is unknown: use private, vepa, bridge, passthru or source"
                )))
            }
        })
    }
}

impl std::fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A macvlan (or, with [`Macvlan::create_tap`], a macvtap) child of a parent link.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::{Macvlan, MacvlanMode};
/// let (container, _) = underlay::doc_support::container().await?;
/// // Made directly inside the container's namespace, named, up: one request.
/// let link = Macvlan::create(&h, "eth0", "ens192", MacvlanMode::Bridge)
///     .netns(&container)
///     .up()
///     .execute()
///     .await?;
/// assert!(link.up && link.parent_netns_id.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Macvlan {
    parent: LinkRef,
    mode: MacvlanMode,
    tap: bool,
    source_macs: Vec<MacAddr>,
    nopromisc: bool,
}

impl Macvlan {
    /// The most source MACs (mode source) one create request takes. The kernel's reply that
    /// describes the link lists them all (12 bytes each) and must fit in one 64 KiB netlink
    /// message, with room for the link's other attributes (about 1.5 KiB here): more would
    /// make a link that cannot be read back.
    pub const MAX_SOURCE_MACS: usize = 5_000;

    /// A builder for macvlan `name` on `parent` in `mode`.
    pub fn create(
        handle: &Handle,
        name: &str,
        parent: impl Into<LinkRef>,
        mode: MacvlanMode,
    ) -> LinkBuilder<Macvlan> {
        Self::builder(handle, name, parent.into(), mode, false)
    }

    /// A builder for a macvtap (a macvlan with a `/dev/tapN` for a VM) on `parent`.
    pub fn create_tap(
        handle: &Handle,
        name: &str,
        parent: impl Into<LinkRef>,
        mode: MacvlanMode,
    ) -> LinkBuilder<Macvlan> {
        Self::builder(handle, name, parent.into(), mode, true)
    }

    fn builder(
        handle: &Handle,
        name: &str,
        parent: LinkRef,
        mode: MacvlanMode,
        tap: bool,
    ) -> LinkBuilder<Macvlan> {
        let spec = Macvlan {
            parent,
            mode,
            tap,
            source_macs: Vec::new(),
            nopromisc: false,
        };
        LinkBuilder::new(handle, Some(name.to_string()), spec)
    }

    super::attach_to_netns!("macvlan");
}

impl LinkBuilder<Macvlan> {
    /// In source mode: the source MACs whose frames this child accepts (at most
    /// [`Macvlan::MAX_SOURCE_MACS`]; more fail at `execute` with
    /// [`ErrorKind::InvalidArgument`]).
    pub fn source_macs(mut self, macs: impl IntoIterator<Item = MacAddr>) -> Self {
        self.spec.source_macs = macs.into_iter().collect();
        self
    }

    /// In passthru mode: do not put the parent in promiscuous mode (`nopromisc`).
    pub fn nopromisc(mut self) -> Self {
        self.spec.nopromisc = true;
        self
    }
}

impl Spec for Macvlan {
    fn kind_name(&self) -> &'static str {
        if self.tap {
            "macvtap"
        } else {
            "macvlan"
        }
    }
    fn parent(&self) -> Option<&LinkRef> {
        Some(&self.parent)
    }
    fn validate(&self) -> Result<()> {
        if !self.source_macs.is_empty() && self.mode != MacvlanMode::Source {
            return Err(Error::invalid(format!(
                "source MACs are only for macvlan mode source, not {}: drop them or use MacvlanMode::Source",
                self.mode
            )));
        }
        if self.source_macs.len() > Macvlan::MAX_SOURCE_MACS {
            return Err(Error::invalid(format!(
                "{} source MACs given, and at most {} fit in one request (the kernel's \
                 description of the link lists them all in one 64 KiB netlink message): \
                 give fewer",
                self.source_macs.len(),
                Macvlan::MAX_SOURCE_MACS
            ))
            .with_errno(libc::EMSGSIZE));
        }
        for mac in &self.source_macs {
            mac.check_assignable("a source MAC (frames come from unicast senders)")?;
        }
        if self.nopromisc && self.mode != MacvlanMode::Passthru {
            return Err(Error::invalid(
                "nopromisc applies only to macvlan mode passthru",
            ));
        }
        Ok(())
    }
    fn info(
        &self,
        _parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        if self.tap {
            return Ok((InfoKind::MacVtap, Some(InfoData::MacVtap(vtap_attrs(self)))));
        }
        let mut attrs = vec![InfoMacVlan::Mode(self.mode.to_nl())];
        if self.nopromisc {
            attrs.push(InfoMacVlan::Flags(
                netlink_packet_route::link::MacVlanFlags::NoPromisc,
            ));
        }
        if !self.source_macs.is_empty() {
            attrs.push(InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set));
            attrs.push(InfoMacVlan::MacAddrData(
                self.source_macs
                    .iter()
                    .map(|m| InfoMacVlan::MacAddr(m.octets()))
                    .collect(),
            ));
        }
        Ok((InfoKind::MacVlan, Some(InfoData::MacVlan(attrs))))
    }
    async fn refine_error(&self, handle: &Handle, parent: Option<&Link>, err: Error) -> Error {
        let Some(parent) = parent else { return err };
        if err.errno() != Some(libc::EINVAL) {
            return err;
        }
        let Ok(links) = handle.links().await else {
            return err;
        };
        let children: Vec<&Link> = links
            .iter()
            .filter(|l| l.parent == Some(parent.index) && l.parent_netns_id.is_none())
            .collect();
        let mode_of = |l: &Link| match &l.kind {
            LinkKind::Macvlan { mode, .. } | LinkKind::Macvtap { mode, .. } => Some(*mode),
            _ => None,
        };
        if let Some(pt) = children
            .iter()
            .find(|l| mode_of(l) == Some(MacvlanMode::Passthru))
        {
            return Error::new(
                ErrorKind::Conflict,
                format!(
                    "parent `{}` is taken by passthru {} `{}`: a passthru parent has exactly one child; delete it or use another parent",
                    parent.name, pt.kind.name(), pt.name
                ),
            )
            .with_errno(libc::EINVAL);
        }
        if self.mode == MacvlanMode::Passthru {
            let names: Vec<&str> = children
                .iter()
                .filter(|l| mode_of(l).is_some())
                .map(|l| l.name.as_str())
                .collect();
            if !names.is_empty() || links.iter().any(|l| l.parent == Some(parent.index)) {
                return Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "macvlan mode passthru is not allowed on parent `{}`: it already has macvlan children{}; \
                         passthru needs a parent of its own (delete them or use bridge mode)",
                        parent.name,
                        if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
                    ),
                )
                .with_errno(libc::EINVAL);
            }
        }
        err
    }
}

fn vtap_attrs(spec: &Macvlan) -> Vec<InfoMacVtap> {
    let mut attrs = vec![InfoMacVtap::Mode(MacVtapMode::from(u32::from(
        spec.mode.to_nl(),
    )))];
    if spec.nopromisc {
        attrs.push(InfoMacVtap::Flags(
            netlink_packet_route::link::MacVtapFlags::NoPromisc,
        ));
    }
    if !spec.source_macs.is_empty() {
        attrs.push(InfoMacVtap::MacAddrMode(MacVtapMacAddressMode::Set));
        attrs.push(InfoMacVtap::MacAddrData(
            spec.source_macs
                .iter()
                .map(|m| InfoMacVtap::MacAddr(m.octets()))
                .collect(),
        ));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        for m in ["private", "vepa", "bridge", "passthru", "source"] {
            assert_eq!(m.parse::<MacvlanMode>().unwrap().as_str(), m);
        }
        let e = "bridged".parse::<MacvlanMode>().unwrap_err();
        assert!(e.to_string().contains("bridged"), "{e}");
    }

    #[test]
    fn source_macs_need_source_mode() {
        let spec = Macvlan {
            parent: "x".into(),
            mode: MacvlanMode::Bridge,
            tap: false,
            source_macs: vec![MacAddr::random()],
            nopromisc: false,
        };
        assert_eq!(
            spec.validate().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}

//! Changing an existing link.

use std::os::fd::AsRawFd;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::LinkRef;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::netns::Netns;
use crate::types::{check_mtu, IfName, MacAddr};

/// Changes to one link, sent in one request by [`LinkSet::execute`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// # use underlay::{Macvlan, MacvlanMode};
/// # Macvlan::create(&h, "mv0", "ens192", MacvlanMode::Bridge).execute().await?;
/// # let (ns, _) = underlay::doc_support::container().await?;
/// h.set_link("mv0").mtu(1400).promisc(true).up().execute().await?;
/// // Move into a namespace and rename there, in one request.
/// h.set_link("mv0").netns(&ns).name("eth0").execute().await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `.execute().await`"]
pub struct LinkSet {
    handle: Handle,
    link: LinkRef,
    up: Option<bool>,
    promisc: Option<bool>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    name: Option<String>,
    alias: Option<String>,
    group: Option<u32>,
    master: Option<Option<u32>>,
    netns: Option<Netns>,
}

impl LinkSet {
    pub(crate) fn new(handle: Handle, link: LinkRef) -> Self {
        LinkSet {
            handle,
            link,
            up: None,
            promisc: None,
            mtu: None,
            mac: None,
            name: None,
            alias: None,
            group: None,
            master: None,
            netns: None,
        }
    }

    /// Set administratively up.
    pub fn up(mut self) -> Self {
        self.up = Some(true);
        self
    }

    /// Set administratively down.
    pub fn down(mut self) -> Self {
        self.up = Some(false);
        self
    }

    /// Promiscuous mode on or off (what a macvlan parent on a VM port group needs).
    pub fn promisc(mut self, on: bool) -> Self {
        self.promisc = Some(on);
        self
    }

    /// New MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// New hardware address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Rename (with [`LinkSet::netns`]: the name in the target namespace). The kernel moves the
    /// link first: if the name is taken in the target, the request fails with the link moved,
    /// under its old name, and the error says so ([`crate::Attach`] moves it back).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// New alias (empty string clears it).
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// New link group.
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// Enslave to the bridge with index `master`.
    pub fn master(mut self, master: u32) -> Self {
        self.master = Some(Some(master));
        self
    }

    /// Release from its master.
    pub fn nomaster(mut self) -> Self {
        self.master = Some(None);
        self
    }

    /// Move the link into `netns` (it goes down and loses its addresses and routes, as the
    /// kernel does on every move). Moving costs about 100x a create: prefer creating links
    /// directly in their namespace.
    pub fn netns(mut self, netns: &Netns) -> Self {
        self.netns = Some(netns.clone());
        self
    }

    /// Sends the change.
    pub async fn execute(self) -> Result<()> {
        self.link.validate()?;
        let new_name = self.name.as_deref().map(IfName::new).transpose()?;
        if let Some(mtu) = self.mtu {
            check_mtu(mtu, &format!("link {}", self.link))?;
        }
        if let Some(mac) = self.mac {
            mac.check_assignable(format_args!("link {}", self.link))?;
        }
        if let Some(a) = &self.alias {
            if a.len() > 255 {
                return Err(Error::invalid(format!(
                    "alias of link {} is {} bytes; at most 255",
                    self.link,
                    a.len()
                )));
            }
        }
        let index = match (&self.link, &new_name) {
            // A rename needs the index: the name attribute then carries the new name.
            (LinkRef::Name(_), Some(_)) => self.handle.link_index(self.link.clone()).await?,
            (LinkRef::Index(i), _) => *i,
            (LinkRef::Name(_), None) => 0,
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let mut set_flag = |flag: LinkFlags, on: Option<bool>| {
            if let Some(on) = on {
                msg.header.change_mask |= flag;
                if on {
                    msg.header.flags |= flag;
                }
            }
        };
        set_flag(LinkFlags::Up, self.up);
        set_flag(LinkFlags::Promisc, self.promisc);
        let a = &mut msg.attributes;
        match (&self.link, &new_name) {
            (_, Some(n)) => a.push(LinkAttribute::IfName(n.as_str().to_string())),
            (LinkRef::Name(n), None) => a.push(LinkAttribute::IfName(n.clone())),
            _ => {}
        }
        if let Some(m) = self.mtu {
            a.push(LinkAttribute::Mtu(m));
        }
        if let Some(mac) = self.mac {
            a.push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        if let Some(al) = &self.alias {
            a.push(LinkAttribute::IfAlias(al.clone()));
        }
        if let Some(g) = self.group {
            a.push(LinkAttribute::Group(g));
        }
        if let Some(m) = self.master {
            a.push(LinkAttribute::Controller(m.unwrap_or(0)));
        }
        if let Some(ns) = &self.netns {
            a.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        let object = format!("link {}", self.link);
        let what = if self.netns.is_some() {
            "move"
        } else {
            "change"
        };
        let sent = self
            .handle
            .request(RouteNetlinkMessage::SetLink(msg), 0, what, &object)
            .await;
        let Err(e) = sent else { return Ok(()) };
        Err(match e.kind() {
            ErrorKind::NotFound => self.handle.missing_link(&self.link),
            ErrorKind::AlreadyExists => {
                let place = self.netns.as_ref().map(|n| n.to_string());
                // The kernel moves a link before it renames it: a name taken in the target
                // fails the request with the link moved already. Say where it is.
                let moved = match &self.netns {
                    Some(ns) if index != 0 => matches!(
                        self.handle.link(index).await,
                        Err(g) if g.kind() == ErrorKind::NotFound
                    )
                    .then(|| format!(" (the kernel moved the link into {ns} before refusing the rename: it is there under its old name)")),
                    _ => None,
                };
                Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "cannot rename link {} to `{}`: the name is taken in {}; pick another name{}",
                        self.link,
                        new_name.as_ref().map(|n| n.as_str()).unwrap_or("?"),
                        place.as_deref().unwrap_or(self.handle.netns_label()),
                        moved.unwrap_or_default()
                    ),
                )
                .with_errno(libc::EEXIST)
            }
            _ => e,
        })
    }
}

//! Links: read back, change, delete and move any link; create links of each kind (one module
//! per kind, each with a builder whose `execute` sends one create request).

mod create;
mod info;
mod set;

pub mod bridge;
pub mod dummy;
pub mod ipvlan;
pub mod macvlan;
pub mod veth;
pub mod vlan;
pub mod vxlan;

use std::fmt;

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

/// `Kind::attach_to_netns`, the same for every kind that can be moved and configured.
macro_rules! attach_to_netns {
    ($what:literal) => {
        #[doc = concat!("Moves an existing ", $what, " into `netns` and configures it there (see [`crate::Attach`]).")]
        pub fn attach_to_netns(
            handle: &crate::Handle,
            link: impl Into<crate::LinkRef>,
            netns: &crate::Netns,
        ) -> crate::Attach {
            crate::Attach::new(handle, link.into(), netns)
        }
    };
}
pub(crate) use attach_to_netns;

pub use create::LinkBuilder;
pub use info::{Link, LinkKind};
pub use set::LinkSet;

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::types::IfName;

/// Names a link in one namespace: by name or by index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkRef {
    /// By interface name.
    Name(String),
    /// By interface index.
    Index(u32),
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRef::Name(n) => write!(f, "`{n}`"),
            LinkRef::Index(i) => write!(f, "index {i}"),
        }
    }
}

impl From<&str> for LinkRef {
    fn from(s: &str) -> Self {
        LinkRef::Name(s.to_string())
    }
}
impl From<String> for LinkRef {
    fn from(s: String) -> Self {
        LinkRef::Name(s)
    }
}
impl From<&String> for LinkRef {
    fn from(s: &String) -> Self {
        LinkRef::Name(s.clone())
    }
}
impl From<&IfName> for LinkRef {
    fn from(s: &IfName) -> Self {
        LinkRef::Name(s.as_str().to_string())
    }
}
impl From<IfName> for LinkRef {
    fn from(s: IfName) -> Self {
        LinkRef::Name(s.as_str().to_string())
    }
}
impl From<u32> for LinkRef {
    fn from(i: u32) -> Self {
        LinkRef::Index(i)
    }
}
impl From<&Link> for LinkRef {
    fn from(l: &Link) -> Self {
        LinkRef::Index(l.index)
    }
}

impl LinkRef {
    /// Checks a name reference is a valid interface name, and an index one that can name a
    /// link (the kernel numbers links from 1; 0 means "none" in its requests).
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            LinkRef::Name(n) => {
                IfName::new(n.as_str())?;
            }
            LinkRef::Index(0) => {
                return Err(Error::invalid(
                    "link index 0 names no link: indexes start at 1 (`ip link` shows them); \
                     give an index from there, or the link's name",
                ))
            }
            LinkRef::Index(_) => {}
        }
        Ok(())
    }

    /// A link message naming this link (by index, or by name), after validation.
    fn message(&self) -> Result<LinkMessage> {
        self.validate()?;
        let mut msg = LinkMessage::default();
        match self {
            LinkRef::Index(i) => msg.header.index = *i,
            LinkRef::Name(n) => msg.attributes.push(LinkAttribute::IfName(n.clone())),
        }
        Ok(msg)
    }
}

/// What link reads ask for: no statistics (underlay reads none). Sent in every dump, also
/// because a dump request without an extension mask makes the kernel size its buffers for
/// ordinary links and silently leave out a larger one (a macvlan listing thousands of source
/// MACs).
fn read_mask() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![netlink_packet_route::link::LinkExtentMask::SkipStats])
}

impl Handle {
    /// The link `link` in this handle's namespace.
    ///
    /// Fails with [`crate::ErrorKind::NotFound`] naming the link and the namespace.
    pub async fn link(&self, link: impl Into<LinkRef>) -> Result<Link> {
        let link = link.into();
        let mut msg = link.message()?;
        msg.attributes.push(read_mask());
        let object = format!("link {link}");
        let replies = self
            .request(RouteNetlinkMessage::GetLink(msg), 0, "get", &object)
            .await
            .map_err(|e| self.not_found_link(e, &link))?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m, self.netns_label())),
                _ => None,
            })
            .ok_or_else(|| self.missing_link(&link))
    }

    /// Every link in this handle's namespace, with typed kind details.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(read_mask());
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(msg), "list", "links")
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m, self.netns_label())),
                _ => None,
            })
            .collect())
    }

    /// The index of `link`, resolving a name with one request (an index is returned as is).
    pub async fn link_index(&self, link: impl Into<LinkRef>) -> Result<u32> {
        let link = link.into();
        link.validate()?;
        match link {
            LinkRef::Index(i) => Ok(i),
            name => Ok(self.link(name).await?.index),
        }
    }

    /// Starts changing `link`: up/down, MTU, MAC, promiscuous, name, namespace. See [`LinkSet`].
    pub fn set_link(&self, link: impl Into<LinkRef>) -> LinkSet {
        LinkSet::new(self.clone(), link.into())
    }

    /// Deletes `link`. Deleting an up link is fine (never set it down first: that costs a second
    /// synchronisation in the kernel).
    pub async fn delete_link(&self, link: impl Into<LinkRef>) -> Result<()> {
        let link = link.into();
        let msg = link.message()?;
        self.request(
            RouteNetlinkMessage::DelLink(msg),
            0,
            "delete",
            &format!("link {link}"),
        )
        .await
        .map_err(|e| self.not_found_link(e, &link))?;
        Ok(())
    }

    /// Deletes every link of link group `group` in this namespace with one request: the
    /// kernel's cheapest way to remove many links at once (one synchronisation for all).
    /// Group 0 (the default group of every link) is refused.
    pub async fn delete_link_group(&self, group: u32) -> Result<()> {
        if group == 0 {
            return Err(Error::invalid(
                "link group 0 is the default group of every link: refusing to delete them all; \
                 put the links in a group of their own first",
            ));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        match self
            .request(
                RouteNetlinkMessage::DelLink(msg),
                0,
                "delete",
                &format!("link group {group}"),
            )
            .await
        {
            // No link in the group: nothing to do.
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    pub(crate) fn missing_link(&self, link: &LinkRef) -> Error {
        Error::not_found(format!(
            "link {link} not found in {}: check the name (`ip link`)",
            self.netns_label()
        ))
        .with_errno(libc::ENODEV)
    }

    fn not_found_link(&self, e: Error, link: &LinkRef) -> Error {
        if e.kind() == crate::ErrorKind::NotFound {
            self.missing_link(link)
        } else {
            e
        }
    }
}

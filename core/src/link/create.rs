//! The one create path every link kind goes through.

use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Link, LinkRef};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::netns::Netns;
use crate::types::{check_mtu, IfName, MacAddr};

pub(crate) mod sealed {
    use super::*;

    /// What a link kind contributes to a create request. Sealed: only underlay's kinds.
    pub trait Spec: Send {
        /// Kind name for messages (`vlan`, `macvlan`, ...).
        fn kind_name(&self) -> &'static str;
        /// What to tell the user when the kernel refuses the kind as unsupported.
        fn unsupported_hint(&self) -> String {
            let k = self.kind_name();
            format!("kernel has no {k} support: load it with `modprobe {k}` (or use a kernel built with it)")
        }
        /// The parent (lower) link, if the kind has one.
        fn parent(&self) -> Option<&LinkRef> {
            None
        }
        /// The name to use when the caller gave none.
        fn default_name(&self, _parent: Option<&Link>) -> Option<String> {
            None
        }
        /// Checks the settings; runs before any request.
        fn validate(&self) -> Result<()> {
            Ok(())
        }
        /// Link info (kind and data) for the request. `parent` is the parent's index;
        /// `target` is the namespace the link is created in, when it is not the handle's.
        fn info(
            &self,
            parent: Option<u32>,
            target: Option<&Netns>,
        ) -> Result<(InfoKind, Option<InfoData>)>;
        /// Whether [`Spec::parent`] is the lower device (IFLA_LINK); `false` when it only
        /// names an underlying device carried in the kind's own data (VXLAN).
        fn parent_is_lower(&self) -> bool {
            true
        }
        /// Turns a kernel refusal into a precise error (e.g. passthru conflicts).
        /// Runs after the link exists (e.g. bring a veth peer up); on failure the link is deleted.
        fn after_create(
            &self,
            _handle: &Handle,
            _reader: &Handle,
        ) -> impl std::future::Future<Output = Result<()>> + Send {
            async { Ok(()) }
        }
        /// Turns a kernel refusal into a precise error (e.g. passthru conflicts).
        fn refine_error(
            &self,
            _handle: &Handle,
            _parent: Option<&Link>,
            err: Error,
        ) -> impl std::future::Future<Output = Error> + Send {
            async { err }
        }
    }
}

use sealed::Spec;

/// A link kind's settings ([`super::vlan::Vlan`], [`super::macvlan::Macvlan`], ...).
pub trait LinkSpec: Spec {}
impl<T: Spec> LinkSpec for T {}

/// Builds one link of kind `K` and creates it with [`LinkBuilder::execute`].
///
/// Everything is sent in one request: name, MTU, MAC, up, and the target namespace, so a link
/// for a container is made directly inside it (about 100x cheaper than create-then-move).
/// Create is exclusive: an existing name fails with [`ErrorKind::AlreadyExists`].
#[must_use = "a builder does nothing until `.execute().await`"]
pub struct LinkBuilder<K> {
    handle: Handle,
    pub(crate) spec: K,
    name: Option<String>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    up: bool,
    group: Option<u32>,
    alias: Option<String>,
    target: Option<Target>,
    master: Option<LinkRef>,
    /// The parent, already read back by the caller (saves a request on hot paths).
    parent_link: Option<Link>,
}

enum Target {
    Netns(Netns),
    Handle(Handle),
}

impl Target {
    fn netns(&self) -> Result<Netns> {
        match self {
            Target::Netns(n) => Ok(n.clone()),
            Target::Handle(h) => Ok(h.netns().clone()),
        }
    }

    async fn handle(&self) -> Result<Handle> {
        match self {
            Target::Handle(h) => Ok(h.clone()),
            Target::Netns(n) => Handle::for_netns(n).await,
        }
    }
}

impl<K: LinkSpec> LinkBuilder<K> {
    pub(crate) fn new(handle: &Handle, name: Option<String>, spec: K) -> Self {
        LinkBuilder {
            handle: handle.clone(),
            spec,
            name,
            mtu: None,
            mac: None,
            up: false,
            group: None,
            alias: None,
            target: None,
            master: None,
            parent_link: None,
        }
    }

    /// Uses `parent` as read back already instead of reading it again (it must be the link
    /// the spec names).
    pub(crate) fn parent_link(mut self, parent: Link) -> Self {
        self.parent_link = Some(parent);
        self
    }

    /// The interface name (validated at `execute`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// MTU (68..65535; not above the parent's for stacked kinds).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Hardware address (random by default).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Bring the link up in the same request.
    pub fn up(mut self) -> Self {
        self.up = true;
        self
    }

    /// Put the link into link group `group` (lets many links go with one request, see
    /// [`Handle::delete_link_group`]).
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// Set the link's alias (a free-form label, e.g. to mark who created it).
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// Enslave to a bridge (by name or index, in the namespace the link is created in).
    pub fn master(mut self, master: impl Into<LinkRef>) -> Self {
        self.master = Some(master.into());
        self
    }

    /// Create the link directly inside `netns` (the parent stays in the handle's namespace).
    pub fn netns(mut self, netns: &Netns) -> Self {
        self.target = Some(Target::Netns(netns.clone()));
        self
    }

    /// Like [`LinkBuilder::netns`] with a handle already open in the target namespace: it is
    /// used to read the new link back, saving a socket.
    pub fn target(mut self, target: &Handle) -> Self {
        self.target = Some(Target::Handle(target.clone()));
        self
    }

    /// Sends the create request and returns the new link as the kernel reports it.
    pub async fn execute(mut self) -> Result<Link> {
        let kind = self.spec.kind_name();
        self.spec.validate().map_err(|e| {
            e.context(format_args!(
                "new {kind} `{}`",
                self.name.as_deref().unwrap_or("?")
            ))
        })?;
        if let Some(mtu) = self.mtu {
            check_mtu(mtu, &format!("new {kind}"))?;
        }
        // Checked before the link exists (it is set by a second request).
        if let Some(a) = self.alias.as_ref().filter(|a| a.len() > 255) {
            return Err(Error::invalid(format!(
                "alias of the new {kind} `{}` is {} bytes; at most 255",
                self.name.as_deref().unwrap_or("?"),
                a.len()
            )));
        }
        if let Some(mac) = self.mac {
            mac.check_assignable(format_args!(
                "the new {kind} `{}`",
                self.name.as_deref().unwrap_or("?")
            ))?;
        }
        // The parent is read back only when something needs more than its index: the default
        // name, the MTU check, or a parent given by name. Given by index, the kernel checks it
        // (and a refusal is explained below, reading it then).
        let known = self.parent_link.take();
        let parent_index = match (self.spec.parent(), &known) {
            (Some(_), Some(k)) => Some(k.index),
            (Some(LinkRef::Index(i)), None) => {
                LinkRef::Index(*i)
                    .validate()
                    .map_err(|e| e.context(format_args!("parent of the new {kind}")))?;
                Some(*i)
            }
            _ => None,
        };
        let needs_parent = self.spec.parent().is_some()
            && known.is_none()
            && (parent_index.is_none()
                || self.name.is_none()
                || (self.mtu.is_some() && self.spec.parent_is_lower()));
        let parent = match (self.spec.parent(), known) {
            (Some(_), Some(known)) => Some(known),
            (Some(p), None) if needs_parent => Some(self.read_parent(p).await?),
            _ => None,
        };
        let parent_index = parent.as_ref().map(|p| p.index).or(parent_index);
        let name = match self
            .name
            .clone()
            .or_else(|| self.spec.default_name(parent.as_ref()))
        {
            Some(n) => IfName::new(n)?,
            None => return Err(Error::invalid(format!("the new {kind} needs a name"))),
        };
        if let (Some(mtu), Some(p)) = (
            self.mtu,
            parent.as_ref().filter(|_| self.spec.parent_is_lower()),
        ) {
            if mtu > p.mtu {
                return Err(Error::invalid(format!(
                    "MTU {mtu} of {kind} `{name}` is above its parent `{}`'s MTU {}: lower it or raise the parent's",
                    p.name, p.mtu
                )));
            }
        }
        let target_ns = self.target.as_ref().map(Target::netns).transpose()?;
        let (info_kind, info_data) = self.spec.info(parent_index, target_ns.as_ref())?;
        // The namespace the link lands in: where its master is looked up and it is read back.
        let reader = match &self.target {
            Some(t) => t.handle().await?,
            None => self.handle.clone(),
        };
        let master = match &self.master {
            None => None,
            Some(m) => Some(reader.link_index(m.clone()).await?),
        };

        let build = |name: &str| {
            let mut msg = LinkMessage::default();
            if self.up {
                msg.header.flags = LinkFlags::Up;
                msg.header.change_mask = LinkFlags::Up;
            }
            let a = &mut msg.attributes;
            a.push(LinkAttribute::IfName(name.to_string()));
            if let Some(p) = parent_index.filter(|_| self.spec.parent_is_lower()) {
                a.push(LinkAttribute::Link(p));
            }
            if let Some(m) = self.mtu {
                a.push(LinkAttribute::Mtu(m));
            }
            if let Some(mac) = self.mac {
                a.push(LinkAttribute::Address(mac.octets().to_vec()));
            }
            if let Some(g) = self.group {
                a.push(LinkAttribute::Group(g));
            }
            if let Some(m) = master {
                a.push(LinkAttribute::Controller(m));
            }
            if let Some(ns) = &target_ns {
                a.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
            }
            let mut info = vec![LinkInfo::Kind(info_kind.clone())];
            if let Some(d) = &info_data {
                info.push(LinkInfo::Data(d.clone()));
            }
            a.push(LinkAttribute::LinkInfo(info));
            RouteNetlinkMessage::NewLink(msg)
        };

        let where_ = match &target_ns {
            Some(ns) => ns.to_string(),
            None => self.handle.netns_label().to_string(),
        };
        let object = format!("{kind} `{name}`");
        let sent = self
            .handle
            .request(
                build(name.as_str()),
                NLM_F_CREATE | NLM_F_EXCL,
                "create",
                &object,
            )
            .await;
        match sent {
            Ok(_) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) && self.target.is_some() => {
                // Taken in the target, or (on kernels that create in the caller's namespace
                // first) on the host side: then create under a temporary name and rename inside.
                let th = &reader;
                if th.link(name.as_str()).await.is_ok() {
                    return Err(name_taken(&name, kind, &where_));
                }
                let tmp = temp_name();
                self.handle
                    .request(build(&tmp), NLM_F_CREATE | NLM_F_EXCL, "create", &object)
                    .await
                    .map_err(|e| self.unsupported(e))?;
                if let Err(e) = th
                    .set_link(tmp.as_str())
                    .name(name.as_str())
                    .execute()
                    .await
                {
                    let _ = th.delete_link(tmp.as_str()).await;
                    return Err(e.context(format!(
                        "cannot rename the new {kind} to `{name}` in {where_}"
                    )));
                }
            }
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                return Err(name_taken(&name, kind, &where_))
            }
            Err(e) => {
                let e = self.unsupported(e);
                // Not read before: read now, to say a missing parent is missing and to let
                // the kind explain its refusal.
                let parent = match (parent, self.spec.parent()) {
                    (Some(p), _) => Some(p),
                    (None, Some(p)) => match self.read_parent(p).await {
                        Ok(p) => Some(p),
                        Err(missing) if missing.kind() == ErrorKind::NotFound => {
                            return Err(missing)
                        }
                        Err(_) => None,
                    },
                    (None, None) => None,
                };
                return Err(self
                    .spec
                    .refine_error(&self.handle, parent.as_ref(), e)
                    .await);
            }
        }
        let after = async {
            if let Some(alias) = &self.alias {
                reader
                    .set_link(name.as_str())
                    .alias(alias.clone())
                    .execute()
                    .await?;
            }
            self.spec.after_create(&self.handle, &reader).await
        };
        if let Err(e) = after.await {
            let _ = reader.delete_link(name.as_str()).await;
            return Err(e);
        }
        // A link that cannot be read back is not handed out half-known: it goes.
        match reader.link(name.as_str()).await {
            Ok(link) => Ok(link),
            Err(e) => {
                let e = e.context(format_args!(
                    "the new {kind} `{name}` in {where_} could not be read back (it is not left behind)"
                ));
                match reader.delete_link(name.as_str()).await {
                    Ok(()) => Err(e),
                    Err(e2) if e2.kind() == ErrorKind::NotFound => Err(e),
                    Err(e2) => Err(Error::multiple(
                        format!("the new {kind} `{name}` in {where_} could not be read back nor deleted"),
                        vec![e, e2],
                    )),
                }
            }
        }
    }

    /// Reads the parent back, a missing one named as the new link's parent.
    async fn read_parent(&self, p: &LinkRef) -> Result<Link> {
        let kind = self.spec.kind_name();
        self.handle.link(p.clone()).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "parent {p} of the new {kind} not found in {}: check the name (`ip link`)",
                    self.handle.netns_label()
                ))
                .with_errno(libc::ENODEV)
            } else {
                e
            }
        })
    }

    fn unsupported(&self, e: Error) -> Error {
        if e.kind() != ErrorKind::KernelUnsupported {
            return e;
        }
        let errno = e.errno().unwrap_or(libc::EOPNOTSUPP);
        Error::new(ErrorKind::KernelUnsupported, self.spec.unsupported_hint())
            .with_errno(errno)
            .with_source(e)
    }
}

fn name_taken(name: &IfName, kind: &str, where_: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("cannot create {kind} `{name}`: the name is taken in {where_}; pick another name or delete the existing link"),
    )
    .with_errno(libc::EEXIST)
}

/// A name unlikely to clash, used for a moment while a link is renamed into place.
pub(crate) fn temp_name() -> String {
    let mut b = [0u8; 5];
    crate::sys::fill_random(&mut b);
    let mut s = String::from("ul");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

//! Moving an existing link into a namespace and configuring it there, all or nothing.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::AddressOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::link::{Link, LinkRef};
use crate::netns::Netns;
use crate::route::Route;
use crate::types::{check_mtu, IfName, MacAddr};

/// Moves a link into a namespace, names it, sets its addresses, brings it up and adds routes.
/// If a step after the move fails, the link goes back where it came from, under its old name
/// and state (up or down, MTU, MAC), and the error says what failed (and whether the undo
/// failed too). That includes the rename sent with the move: the kernel moves the link
/// first, so a name taken inside fails the request with the link already moved.
///
/// Obtained from `Macvlan::attach_to_netns`, `Ipvlan::attach_to_netns`, `Vlan::attach_to_netns`
/// or `Veth::attach_to_netns`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::{Macvlan, MacvlanMode};
/// # Macvlan::create(&h, "mv0", "ens192", MacvlanMode::Bridge).execute().await?;
/// let (ns, _) = underlay::doc_support::container().await?;
/// let done = Macvlan::attach_to_netns(&h, "mv0", &ns)
///     .name("eth0")
///     .address("172.16.10.101/24".parse().unwrap())
///     .gateway("172.16.10.1".parse().unwrap())
///     .execute()
///     .await?;
/// assert_eq!(done.link.name, "eth0");
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `.execute().await`"]
pub struct Attach {
    handle: Handle,
    link: LinkRef,
    netns: Netns,
    target: Option<Handle>,
    name: Option<String>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    addresses: Vec<IpNet>,
    gateways: Vec<IpAddr>,
    routes: Vec<Route>,
    nodad: bool,
}

/// What [`Attach::execute`] set up.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Attached {
    /// The link in its new namespace.
    pub link: Link,
    /// The addresses added.
    pub addresses: Vec<IpNet>,
    /// The routes added (default routes first).
    pub routes: Vec<Route>,
}

impl Attach {
    pub(crate) fn new(handle: &Handle, link: LinkRef, netns: &Netns) -> Attach {
        Attach {
            handle: handle.clone(),
            link,
            netns: netns.clone(),
            target: None,
            name: None,
            mtu: None,
            mac: None,
            addresses: Vec::new(),
            gateways: Vec::new(),
            routes: Vec::new(),
            nodad: false,
        }
    }

    /// The name inside the namespace (e.g. `eth0`); the current name by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// MTU inside.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// MAC inside.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }
    /// An address (v4 or v6) to add; may be given several times.
    pub fn address(mut self, addr: IpNet) -> Self {
        self.addresses.push(addr);
        self
    }
    /// A default route through `gateway` (one per IP version).
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        self.gateways.push(gateway);
        self
    }
    /// An extra route (its `dev` defaults to this link).
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }
    /// IPv6 addresses skip duplicate address detection (usable at once).
    pub fn nodad(mut self) -> Self {
        self.nodad = true;
        self
    }
    /// A handle already open inside the namespace (saves opening one).
    pub fn target(mut self, target: &Handle) -> Self {
        self.target = Some(target.clone());
        self
    }

    fn validate(&self) -> Result<Option<IfName>> {
        self.link.validate()?;
        if let Some(m) = self.mtu {
            check_mtu(m, &format!("link {}", self.link))?;
        }
        if let Some(mac) = self.mac {
            mac.check_assignable(format_args!("link {}", self.link))?;
        }
        for fam_v4 in [true, false] {
            if self
                .gateways
                .iter()
                .filter(|g| g.is_ipv4() == fam_v4)
                .count()
                > 1
            {
                return Err(Error::invalid(format!(
                    "link {}: more than one IPv{} default gateway; give one per IP version",
                    self.link,
                    if fam_v4 { 4 } else { 6 }
                )));
            }
        }
        for r in &self.routes {
            if r.gateway.is_none() && r.dev.is_none() {
                continue; // dev defaults to this link
            }
            r.validate()?;
        }
        self.name.as_deref().map(IfName::new).transpose()
    }

    /// Runs the steps; on failure after the move, moves the link back.
    pub async fn execute(self) -> Result<Attached> {
        let new_name = self.validate()?;
        let orig = self.handle.link(self.link.clone()).await?;
        let name = new_name
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| orig.name.clone());
        let moved = self
            .handle
            .set_link(orig.index)
            .netns(&self.netns)
            .name(name.clone())
            .execute()
            .await;
        if let Err(e) = moved {
            let e = e.context(format!(
                "cannot move link `{}` into {}",
                orig.name, self.netns
            ));
            // One request, two steps in the kernel: it moves the link, then renames it. A
            // refused rename (the name is taken inside) leaves the link moved, under its old
            // name.
            return Err(match self.moved_anyway(&orig).await {
                Some(t) => self.undo_from_inside(Some(&t), &orig.name, &orig, e).await,
                None => e,
            });
        }
        let target = match &self.target {
            Some(t) => t.clone(),
            None => match Handle::for_netns(&self.netns).await {
                Ok(t) => t,
                Err(e) => return Err(self.undo_from_inside(None, &name, &orig, e).await),
            },
        };
        match self.configure(&target, &name).await {
            Ok(done) => Ok(done),
            Err(e) => Err(self.undo_from_inside(Some(&target), &name, &orig, e).await),
        }
    }

    async fn configure(&self, t: &Handle, name: &str) -> Result<Attached> {
        let index = t.link_index(name).await?;
        if self.mtu.is_some() || self.mac.is_some() {
            let mut set = t.set_link(index);
            if let Some(m) = self.mtu {
                set = set.mtu(m);
            }
            if let Some(mac) = self.mac {
                set = set.mac(mac);
            }
            set.execute().await?;
        }
        let opts = AddressOptions {
            nodad: self.nodad,
            noprefixroute: false,
        };
        for a in &self.addresses {
            t.add_address_with(index, *a, opts).await?;
        }
        t.set_link(index).up().execute().await?;
        let mut routes: Vec<Route> = self
            .gateways
            .iter()
            .map(|g| Route::default_via(*g).dev(index))
            .collect();
        routes.extend(self.routes.iter().cloned().map(|mut r| {
            if r.dev.is_none() {
                r.dev = Some(LinkRef::Index(index));
            }
            r
        }));
        for r in &routes {
            t.add_route(r).await?;
        }
        let link = t.link(index).await?;
        Ok(Attached {
            link,
            addresses: self.addresses.clone(),
            routes,
        })
    }

    /// After a failed move request: a handle in the target if the link is there anyway (gone
    /// from here, and there under its old name with its MAC).
    async fn moved_anyway(&self, orig: &Link) -> Option<Handle> {
        match self.handle.link(orig.index).await {
            Ok(here) if here.name == orig.name => return None,
            Err(e) if e.kind() != ErrorKind::NotFound => return None,
            _ => {}
        }
        let t = match &self.target {
            Some(t) => t.clone(),
            None => Handle::for_netns(&self.netns).await.ok()?,
        };
        let there = t.link(orig.name.as_str()).await.ok()?;
        (there.mac == orig.mac).then_some(t)
    }

    /// Moves the link back under its old name and state (up, MTU, MAC); returns `err` with
    /// what happened.
    async fn undo_from_inside(
        &self,
        target: Option<&Handle>,
        name: &str,
        orig: &Link,
        err: Error,
    ) -> Error {
        let t = match target {
            Some(t) => t.clone(),
            None => match Handle::for_netns(&self.netns).await {
                Ok(t) => t,
                Err(e2) => {
                    return Error::multiple(
                        format!("attaching link `{}` failed and was not undone", orig.name),
                        vec![err, e2],
                    )
                }
            },
        };
        let back = t
            .set_link(name)
            .netns(self.handle.netns())
            .name(orig.name.clone())
            .execute()
            .await;
        let back = match back {
            Ok(()) => {
                // Moving took it down; the attach may have changed its MTU and MAC.
                let mut restore = self.handle.set_link(orig.name.as_str());
                let mut changed = false;
                if orig.up {
                    restore = restore.up();
                    changed = true;
                }
                if self.mtu.is_some_and(|m| m != orig.mtu) {
                    restore = restore.mtu(orig.mtu);
                    changed = true;
                }
                if let (Some(_), Some(mac)) = (self.mac, orig.mac) {
                    restore = restore.mac(mac);
                    changed = true;
                }
                if changed {
                    restore.execute().await
                } else {
                    Ok(())
                }
            }
            other => other,
        };
        match back {
            Ok(()) => err.context(format!(
                "attaching link `{}` to {} failed (undone: the link is back)",
                orig.name, self.netns
            )),
            Err(e2) => Error::multiple(
                format!(
                    "attaching link `{}` to {} failed and the undo failed too",
                    orig.name, self.netns
                ),
                vec![err, e2],
            ),
        }
    }
}

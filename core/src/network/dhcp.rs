//! Endpoints of DHCP networks: connect (the link, then a lease from the server, then its
//! address and default route), release on disconnect, and renewal (`Network::renew_dhcp`,
//! `Network::renew_due_dhcp`) for the process that hosts the renewer.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use super::endpoint::{
    add_default_routes, check_endpoint_key, check_step, disable_ipv6, waiting_for_mac, Announce,
    ConnectStep, Endpoint, EndpointSpec, MacPolicy,
};
use super::records::EndpointLock;
use super::spec::Driver;
use super::Network;
use crate::dhcp::client::{Client, Renewal};
use crate::dhcp::{client_id, hostname_for, DhcpConfig, DhcpLease};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::netns::Netns;

/// What one endpoint's renewal came to, from [`Network::renew_due_dhcp`].
#[derive(Debug)]
#[non_exhaustive]
pub struct DhcpRenewal {
    /// The network.
    pub network: String,
    /// The container.
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
    /// The lease held now, or why there is none (a lost lease's address was removed from the
    /// endpoint: [`ErrorKind::Timeout`] on expiry, [`ErrorKind::Conflict`] on a NAK).
    pub result: Result<DhcpLease>,
}

impl Network {
    pub(super) fn check_dhcp_spec(&self, spec: &EndpointSpec) -> Result<()> {
        if !spec.ips().is_empty() {
            return Err(Error::invalid(format!(
                "network `{}` takes its addresses from DHCP: the server chooses, a requested \
                 address ({}) cannot be given; reserve one for the container on the server",
                self.name(),
                spec.ips()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    fn dhcp_label(&self, container_id: &str, ifname: &str) -> String {
        format!(
            "network `{}`, endpoint `{container_id}`/{ifname}",
            self.name()
        )
    }

    async fn dhcp_client(
        &self,
        netns: &Netns,
        index: u32,
        mac: Option<crate::MacAddr>,
        container_id: &str,
        ifname: &str,
        hostname: Option<&str>,
    ) -> Result<Client> {
        let label = self.dhcp_label(container_id, ifname);
        let mac = mac.ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!("{label}: the link has no MAC address for DHCP"),
            )
        })?;
        Client::open(
            netns,
            index,
            mac,
            client_id(container_id, ifname),
            hostname_for(hostname.unwrap_or(container_id)),
            matches!(self.driver(), Driver::Ipvlan(..)),
            label,
        )
        .await
    }

    /// Connect on a DHCP network, under the endpoint's lock, its pending record written. With
    /// `handoff` (prepare), the link is made in the host namespace under its temporary name,
    /// up for the exchange only, and left down without the address: the runtime moves it and
    /// sets the lease's address.
    pub(super) async fn connect_dhcp(
        &self,
        netns: &Netns,
        spec: &EndpointSpec,
        cfg: DhcpConfig,
        mut pending: Endpoint,
        held: &EndpointLock,
        handoff: bool,
    ) -> Result<Endpoint> {
        let (container_id, ifname) = (spec.container_id(), spec.ifname_str());
        // The MAC is derived from the container id unless one is fixed: servers that pick
        // addresses by MAC (dnsmasq once a lease is released) and switches that bind an
        // address to a MAC (DHCP snooping) then see the same client after a reconnect.
        let derived;
        let spec = if spec.mac_policy() == MacPolicy::Random {
            derived = spec.clone().mac(MacPolicy::FromContainerId);
            &derived
        } else {
            spec
        };
        let made = async {
            // The link's MAC goes into the pending record before the link is made: with no
            // IPAM lease to tell it by, reconcile knows a link made just before a crash by it.
            pending.mac = Some(match self.driver() {
                Driver::Ipvlan(..) => self.lower_link().await?.mac.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Conflict,
                        format!("network `{}`: its parent has no MAC address", self.name()),
                    )
                })?,
                _ => match spec.mac_policy() {
                    MacPolicy::Fixed(m) => m,
                    _ => {
                        crate::MacAddr::derived_from(format!("{container_id}/{ifname}").as_bytes())
                    }
                },
            });
            self.write_endpoint(&pending, true, held)?;
            let target = match spec.target_handle() {
                Some(t) => t.clone(),
                None => Handle::for_netns(netns).await?,
            };
            let ipv6_off = !spec.keeps_ipv6() || handoff;
            let link_name = match &pending.handoff {
                Some(temp) => temp.as_str(),
                None => ifname,
            };
            let link = self
                .create_link(&target, spec, link_name, !ipv6_off)
                .await?;
            Ok::<_, Error>((target, link))
        }
        .await;
        let (target, link) = match made {
            Ok(m) => m,
            Err(e) => {
                return Err(
                    match self.remove_endpoint_file(container_id, ifname, held) {
                        Ok(()) => e,
                        Err(u) => Error::multiple(
                            format!("connecting `{container_id}` failed and its undo failed too"),
                            vec![e, u],
                        ),
                    },
                )
            }
        };
        let mut lease_held: Option<(Client, DhcpLease)> = None;
        let steps = async {
            // The link is in the pending record from now on: a crash leaves reconcile
            // something to delete.
            pending.index = link.index;
            pending.mac = link.mac;
            self.write_endpoint(&pending, true, held)?;
            if !spec.keeps_ipv6() || handoff {
                disable_ipv6(netns, &link.name).await?;
                // The MAC is the container's own: its previous life's link may hold it still.
                waiting_for_mac(|| target.set_link(link.index).up().execute()).await?;
            }
            check_step(spec, ConnectStep::CreateLink)?;
            let client = self
                .dhcp_client(
                    netns,
                    link.index,
                    link.mac,
                    container_id,
                    ifname,
                    spec.hostname_str(),
                )
                .await?;
            let lease = client.acquire(&cfg, None).await?;
            let lease = lease_held.insert((client, lease)).1.clone();
            let address = IpNet::V4(lease.address);
            let routes = if handoff {
                // The runtime sets the address (and the default route) once it moved the link.
                target.set_link(link.index).down().execute().await?;
                check_step(spec, ConnectStep::Addresses)?;
                Vec::new()
            } else {
                target.add_address(link.index, address).await?;
                check_step(spec, ConnectStep::Addresses)?;
                let gateways: Vec<IpAddr> = lease.router.map(IpAddr::V4).into_iter().collect();
                add_default_routes(&target, spec.default_route_mode(), &gateways, link.index)
                    .await?
            };
            check_step(spec, ConnectStep::Routes)?;
            if let Some(mac) = link.mac {
                let ips = vec![address.addr()];
                let sent = match spec.announce_mode() {
                    Announce::Off => Ok(()),
                    Announce::Segment => netns.announce_async(link.index, mac, ips).await,
                    // The link came up before the server gave the address, so the kernel's
                    // announcements at link up cannot carry it: the wire is told instead.
                    Announce::Wire | Announce::Kernel => self.announce_on_wire(mac, &ips).await,
                };
                if let Err(e) = sent {
                    tracing::warn!(endpoint = %container_id, error = %e, "announcing the endpoint's address failed");
                }
            }
            check_step(spec, ConnectStep::Announce)?;
            let ep = Endpoint {
                index: link.index,
                mac: link.mac,
                ifname: if handoff {
                    ifname.to_string()
                } else {
                    link.name.clone()
                },
                addresses: vec![address],
                routes,
                pending: None,
                dhcp: Some(lease),
                ..pending.clone()
            };
            self.write_endpoint(&ep, true, held)?;
            check_step(spec, ConnectStep::Record)?;
            Ok::<_, Error>(ep)
        }
        .await;
        let e = match steps {
            Ok(ep) => return Ok(ep),
            Err(e) => e,
        };
        // Undo: the lease back to the server, the link, the record.
        let mut errors = vec![e];
        if let Some((client, lease)) = &lease_held {
            if let Err(e) = client.release(lease).await {
                tracing::warn!(endpoint = %container_id, error = %e, "DHCP release after a failed connect failed: the lease expires on the server");
            }
        }
        drop(lease_held);
        match target.delete_link(link.index).await {
            Err(e) if e.kind() != ErrorKind::NotFound => errors.push(e),
            _ => {}
        }
        if errors.len() == 1 {
            if let Err(e) = self.remove_endpoint_file(container_id, ifname, held) {
                errors.push(e);
            }
        }
        Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            Error::multiple(
                format!("connecting `{container_id}` failed and its undo failed too"),
                errors,
            )
        })
    }

    /// Where DHCP endpoint `ep`'s link is now: its namespace and index. A connected endpoint's
    /// is in its namespace under the recorded index. A prepared one's ([`Network::prepare`]) is
    /// in the host namespace under its temporary name (before the runtime moved it, or after
    /// it moved it back), else in its sandbox ([`Network::set_sandbox`]), else in any other
    /// namespace of the host (a sandbox path this process cannot open): the link in
    /// underlay's group with the endpoint's MAC (on ipvlan, where links share the parent's
    /// MAC, the one carrying the lease's address). `None`: nowhere.
    pub(super) async fn dhcp_link(&self, ep: &Endpoint) -> Result<Option<(Netns, u32)>> {
        if ep.handoff.is_none() {
            return Ok(ep.locate_netns(&mut None).map(|ns| (ns, ep.index)));
        }
        if let Some(l) = ep.own_link(self.host(), self.ipam(), true).await? {
            return Ok(Some((self.host().netns().clone(), l.index)));
        }
        let Some(mac) = ep.mac else {
            return Ok(None);
        };
        let address = ep
            .dhcp
            .as_ref()
            .map(|l| l.address.addr())
            .or(ep.dhcp_previous);
        let ipvlan = matches!(self.driver(), Driver::Ipvlan(..));
        let host_inode = self.host().netns().inode();
        let in_ns = |ns: Netns| async move {
            let h = Handle::for_netns(&ns).await?;
            for l in h.links().await? {
                if l.group != super::ENDPOINT_GROUP || l.mac != Some(mac) {
                    continue;
                }
                if ipvlan {
                    let carried = h.addresses(Some(l.index.into())).await?;
                    let global: Vec<IpAddr> = carried
                        .iter()
                        .filter(|a| a.scope != "link")
                        .map(|a| a.address.addr())
                        .collect();
                    let ours = match address {
                        Some(a) => global.is_empty() || global.contains(&IpAddr::V4(a)),
                        None => global.is_empty(),
                    };
                    if !ours {
                        continue;
                    }
                }
                return Ok::<_, Error>(Some((ns, l.index)));
            }
            Ok(None)
        };
        if let Some(ns) = ep.sandbox.as_ref().and_then(|p| Netns::open_path(p).ok()) {
            if ns.inode() != host_inode {
                if let Some(found) = in_ns(ns).await? {
                    return Ok(Some(found));
                }
            }
        }
        for (inode, paths) in crate::netns::live_netns_all_paths() {
            if inode == host_inode {
                continue;
            }
            let Some(ns) = paths
                .iter()
                .filter_map(|p| Netns::open_path(p).ok())
                .find(|ns| ns.inode() == inode)
            else {
                continue;
            };
            // A namespace going away meanwhile is not the link's.
            if let Ok(Some(found)) = in_ns(ns).await {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Sends DHCPRELEASE for `ep`'s lease: from inside its namespace, on its link, and always
    /// also as a frame from the endpoint's MAC on the network's parent in the host namespace
    /// (the only way once the namespace or the link is gone, reconcile's case). No answer
    /// confirms a release, and a namespace on its way out can swallow one sent inside it; the
    /// server ignores the second copy.
    pub(super) async fn release_dhcp(&self, ep: &Endpoint) -> Result<()> {
        let Some(lease) = &ep.dhcp else {
            return Ok(());
        };
        let found = match self.dhcp_link(ep).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(network = %self.name(), endpoint = %ep.container_id, error = %e, "looking for the endpoint's link to release its DHCP lease from failed: sending it from the parent");
                None
            }
        };
        if let Some((ns, index)) = found {
            match self
                .dhcp_client(&ns, index, ep.mac, &ep.container_id, &ep.ifname, None)
                .await
            {
                // A namespace on its way out may still show the link, down (the send fails,
                // ENETDOWN), or drop the frame: the parent says it in any case, below.
                Ok(client) => match client.release(lease).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::debug!(network = %self.name(), endpoint = %ep.container_id, error = %e, "DHCP release from the endpoint's link failed: the parent sends it")
                    }
                },
                Err(e) => {
                    tracing::debug!(network = %self.name(), endpoint = %ep.container_id, error = %e, "DHCP release from the endpoint's link impossible: sending it from the parent")
                }
            }
        }
        let label = self.dhcp_label(&ep.container_id, &ep.ifname);
        let mac = ep.mac.ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!("{label}: the record has no MAC address to release its DHCP lease from"),
            )
        })?;
        let frame = crate::dhcp::client::release_frame(
            mac,
            &client_id(&ep.container_id, &ep.ifname),
            lease,
        )?;
        let lower = self.lower_link().await?;
        self.nets
            .announcer()?
            .send_frame(lower.index, &frame)
            .map_err(|e| e.context(&label))
    }

    /// Keeps endpoint `container_id`/`ifname`'s DHCP lease: renews it (unicast to its server,
    /// RENEWING) before T2, rebinds it (broadcast, REBINDING) from T2 until it expires, and
    /// updates the endpoint's record. An unanswered renewal keeps the lease as it is (call again
    /// later). A lease that expired, or that the server refused (NAK), loses its address: it is
    /// removed from the endpoint (and its default route with it) and the call fails
    /// ([`ErrorKind::Timeout`] / [`ErrorKind::Conflict`]) naming the network and the
    /// endpoint; the next call asks for a lease again (INIT-REBOOT with the lost address, then
    /// DISCOVER). The process hosting the renewer calls this at [`DhcpLease::renew_at`], or
    /// [`Network::renew_due_dhcp`] periodically. The call does not wait for T1.
    pub async fn renew_dhcp(&self, container_id: &str, ifname: &str) -> Result<DhcpLease> {
        let cfg = self.dhcp().ok_or_else(|| {
            Error::invalid(format!(
                "network `{}` takes its addresses from pools, not DHCP: there is no lease to renew",
                self.name()
            ))
        })?;
        check_endpoint_key(container_id, ifname)?;
        let held = self.lock_endpoint(container_id, ifname).await?;
        let label = self.dhcp_label(container_id, ifname);
        let mut ep = match self.endpoint(container_id, ifname)? {
            Some(ep) if ep.pending.is_none() => ep,
            _ => {
                return Err(Error::not_found(format!(
                    "{label} is not connected: connect it first"
                )))
            }
        };
        let (ns, index) = self.dhcp_link(&ep).await?.ok_or_else(|| {
            Error::not_found(format!(
                "{label}: its namespace (or its link there) is gone: disconnect it (or run reconcile)"
            ))
        })?;
        let target = Handle::for_netns(&ns).await?;
        let client = self
            .dhcp_client(&ns, index, ep.mac, container_id, ifname, None)
            .await?;
        let now = SystemTime::now();
        let Some(lease) = ep.dhcp.clone() else {
            // Lost earlier: ask again, for the previous address first.
            let got = client.acquire(&cfg, ep.dhcp_previous).await?;
            let address = IpNet::V4(got.address);
            target.add_address(index, address).await?;
            let gateways: Vec<IpAddr> = got.router.map(IpAddr::V4).into_iter().collect();
            ep.routes =
                add_default_routes(&target, super::DefaultRoute::Auto, &gateways, index).await?;
            ep.addresses = vec![address];
            ep.dhcp = Some(got.clone());
            ep.dhcp_previous = None;
            self.write_endpoint(&ep, true, &held)?;
            return Ok(got);
        };
        if lease.is_infinite() {
            return Ok(lease);
        }
        let expired = lease.expires().is_some_and(|t| now >= t);
        let outcome = if expired {
            Renewal::NoAnswer
        } else {
            let rebind = lease.rebind_at().is_some_and(|t| now >= t);
            client.renew(&lease, rebind, &cfg).await?
        };
        let lost = match outcome {
            Renewal::Ack(got) => {
                if got.address != lease.address {
                    target.add_address(index, IpNet::V4(got.address)).await?;
                    remove_address(&target, index, IpNet::V4(lease.address)).await?;
                    ep.addresses = vec![IpNet::V4(got.address)];
                }
                ep.dhcp = Some(got.clone());
                self.write_endpoint(&ep, true, &held)?;
                return Ok(got);
            }
            Renewal::NoAnswer if lease.expires().is_none_or(|t| SystemTime::now() < t) => {
                tracing::warn!(endpoint = %label, "DHCP renewal not answered: the lease holds until it expires");
                return Ok(lease);
            }
            Renewal::NoAnswer => Error::new(
                ErrorKind::Timeout,
                format!(
                    "{label}: the DHCP lease of {} expired without a renewal (no server answered): \
                     the address was removed from the endpoint; the next renewal asks for a lease again",
                    lease.address
                ),
            )
            .with_errno(libc::ETIMEDOUT),
            Renewal::Nak => Error::new(
                ErrorKind::Conflict,
                format!(
                    "{label}: the DHCP server refused to renew {} (NAK): the address was removed \
                     from the endpoint; the next renewal asks for a lease again",
                    lease.address
                ),
            ),
        };
        // Never kept past expiry or a NAK: the address (and the routes through it) go.
        remove_address(&target, index, IpNet::V4(lease.address)).await?;
        for r in std::mem::take(&mut ep.routes) {
            match target.delete_route(&r.dev(index)).await {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        ep.addresses.clear();
        ep.dhcp = None;
        ep.dhcp_previous = Some(lease.address.addr());
        self.write_endpoint(&ep, true, &held)?;
        tracing::warn!(endpoint = %label, error = %lost, "DHCP lease lost");
        Err(lost)
    }

    /// The renewer's tick: renews every endpoint of this network whose lease is due (past
    /// T1) or lost, one [`DhcpRenewal`] each (see [`Network::renew_dhcp`]). A long-running
    /// process calls it every few seconds (or sleeps until the earliest
    /// [`DhcpLease::renew_at`]).
    pub async fn renew_due_dhcp(&self) -> Result<Vec<DhcpRenewal>> {
        if self.dhcp().is_none() {
            return Ok(Vec::new());
        }
        let now = SystemTime::now();
        let due: Vec<Endpoint> = self
            .endpoints()?
            .into_iter()
            .filter(|ep| ep.pending.is_none())
            .filter(|ep| match &ep.dhcp {
                None => true,
                Some(l) => l.renew_at().is_some_and(|t| now >= t),
            })
            .collect();
        let results = futures::future::join_all(
            due.iter()
                .map(|ep| self.renew_dhcp(&ep.container_id, &ep.ifname)),
        )
        .await;
        Ok(due
            .into_iter()
            .zip(results)
            .map(|(ep, result)| DhcpRenewal {
                network: self.name().to_string(),
                container_id: ep.container_id,
                ifname: ep.ifname,
                result,
            })
            .collect())
    }
}

async fn remove_address(target: &Handle, index: u32, address: IpNet) -> Result<()> {
    match target.delete_address(index, address).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

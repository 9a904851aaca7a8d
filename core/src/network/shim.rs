//! Host access: the "shim" that lets a host talk to its own macvlan containers.
//!
//! A macvlan child never exchanges frames with its parent (the kernel delivers between a
//! parent and its children only through the wire, and the switch does not hairpin them back).
//! So the host, whose address sits on the parent, cannot reach the containers. A second
//! macvlan in bridge mode on the same parent, in the host namespace, *can* reach its sibling
//! containers directly; with host routes to the containers' addresses through it, the host's
//! packets leave via the shim. The shim needs no address of its own when the containers are
//! in the host's subnet: the source stays the parent's address, and the containers' ARP
//! replies reach the shim (whose MAC answered for that address: ARP flux). See docs/host-access.md.

use std::net::IpAddr;

use ipnet::{IpNet, IpSubnets};

use super::endpoint::host_route;
use super::spec::{Driver, ShimRecord};
use super::{short_name, Network, MARK};
use crate::addr::AddressOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::ipam::{AllocRange, Owner, Request};
use crate::link::ipvlan::Ipvlan;
use crate::link::macvlan::{Macvlan, MacvlanMode};
use crate::route::Route;

/// Which host routes go through the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ShimRoutes {
    /// One host route per endpoint address, kept current as endpoints connect and disconnect.
    #[default]
    Endpoints,
    /// One route per allocation range of the pools (Docker users' `--ip-range` recipe).
    Ranges,
}

/// Settings for [`Network::enable_host_access`].
#[derive(Clone, Debug, Default)]
pub struct HostAccess {
    name: Option<String>,
    address: bool,
    ip: Option<IpAddr>,
    routes: ShimRoutes,
}

impl HostAccess {
    /// A shim named after the network, no address, routes per endpoint.
    pub fn new() -> HostAccess {
        HostAccess::default()
    }

    /// The shim's name (e.g. `macvlan0-host`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Give the shim an address from the network's pools (reserved like an endpoint's), for
    /// containers that must see a host address in their own subnet.
    pub fn with_address(mut self) -> Self {
        self.address = true;
        self
    }

    /// Give the shim this address of the network's pools (reserved like an endpoint's: a
    /// taken address is refused), e.g. Docker's `-o underlay.host_access=IP`.
    pub fn address(mut self, ip: IpAddr) -> Self {
        self.address = true;
        self.ip = Some(ip);
        self
    }

    /// Which routes to add.
    pub fn routes(mut self, routes: ShimRoutes) -> Self {
        self.routes = routes;
        self
    }
}

/// The IPAM owner of a shim's address.
fn shim_owner(network: &str, shim: &str) -> Result<Owner> {
    Owner::new(format!("{SHIM_OWNER}{network}"), shim)
}

const SHIM_OWNER: &str = "underlay-host-access:";

/// Whether `owner` is a shim's (its lease outlives a reboot: reconcile makes the shim again).
pub(crate) fn is_shim_owner(owner: &Owner) -> bool {
    owner.container_id().starts_with(SHIM_OWNER)
}

impl Network {
    /// Creates the host-side shim on the network's parent (bridge-mode macvlan; an ipvlan in
    /// the network's mode for ipvlan networks), brings it up, optionally gives it an address
    /// from the pools, and routes the endpoints' addresses (or the pools' ranges) through it.
    /// Idempotent: returns the shim's name when host access is already on.
    pub async fn enable_host_access(&self, spec: HostAccess) -> Result<String> {
        if self.dhcp().is_some() {
            return Err(Error::invalid(format!(
                "network `{}` takes its addresses from DHCP: host access is not supported there yet",
                self.name()
            )));
        }
        if self.parent_in_endpoint_namespace() {
            return Err(Error::invalid(format!(
                "network `{}`: its parent is in each endpoint's namespace, so the host has no \
                 parent to put a shim on: reach the endpoints through that parent's own network",
                self.name()
            )));
        }
        // No connect or disconnect meanwhile: each either sees the shim and routes itself, or
        // is listed here and routed.
        let _endpoints = self.nets.record_files().lock_network(self.name()).await?;
        let _lock = self.nets.lock().await?;
        let mut record = self.current_record()?;
        if let Some(s) = &record.shim {
            return Ok(s.name.clone());
        }
        let name = match &spec.name {
            Some(n) => n.clone(),
            None => short_name("", self.name(), "-h"),
        };
        let h = self.host();
        let link = self.make_shim_link(&name).await?;
        let owner = shim_owner(self.name(), &name)?;
        let mut leased = false;
        let steps = async {
            let mut address = None;
            if spec.address {
                let request = spec.ip.map_or_else(Request::any, Request::ip);
                let lease = self.ipam.allocate(&owner, &request).await?;
                leased = true;
                for a in &lease.addresses {
                    // A host route only: the parent already routes the subnet.
                    let host = IpNet::from(a.address.addr());
                    let opts = AddressOptions {
                        nodad: true,
                        noprefixroute: true,
                    };
                    h.add_address_with(link.index, host, opts).await?;
                    address.get_or_insert(a.address);
                }
            }
            for r in self.shim_routes(spec.routes, &name)? {
                h.replace_route(&r).await?;
            }
            record.shim = Some(ShimRecord {
                name: name.clone(),
                address,
                per_endpoint: spec.routes == ShimRoutes::Endpoints,
            });
            self.nets.write_record(&record)
        }
        .await;
        if let Err(e) = steps {
            let mut errors = vec![e];
            if leased {
                if let Err(e) = self.ipam.release(&owner).await {
                    errors.push(e);
                }
            }
            if let Err(e) = h.delete_link(link.index).await {
                errors.push(e);
            }
            return Err(Error::multiple(
                format!("enabling host access on network `{}`", self.name()),
                errors,
            ));
        }
        Ok(name)
    }

    /// Creates the shim link itself (host namespace, on the network's parent, up, marked).
    pub(crate) async fn make_shim_link(&self, name: &str) -> Result<crate::link::Link> {
        let h = self.host();
        let lower = h.link_index(self.lower()).await?;
        let alias = format!("{MARK}shim net={}", self.name());
        match self.driver() {
            Driver::Macvlan(_) => {
                Macvlan::create(h, name, lower, MacvlanMode::Bridge)
                    .alias(alias)
                    .up()
                    .execute()
                    .await
            }
            Driver::Ipvlan(mode, flag) => {
                Ipvlan::create(h, name, lower, mode)
                    .flag(flag)
                    .alias(alias)
                    .up()
                    .execute()
                    .await
            }
        }
    }

    /// Recreates a missing shim with its address and routes (reconcile). The caller holds the lock.
    pub(crate) async fn restore_shim(&self, shim: &ShimRecord) -> Result<bool> {
        let h = self.host();
        if h.link(shim.name.as_str()).await.is_ok() {
            return Ok(false);
        }
        let link = self.make_shim_link(&shim.name).await?;
        if let Some(lease) = self
            .ipam
            .lookup(&shim_owner(self.name(), &shim.name)?)
            .await?
        {
            for a in &lease.addresses {
                let opts = AddressOptions {
                    nodad: true,
                    noprefixroute: true,
                };
                h.add_address_with(link.index, IpNet::from(a.address.addr()), opts)
                    .await?;
            }
        }
        let mode = if shim.per_endpoint {
            ShimRoutes::Endpoints
        } else {
            ShimRoutes::Ranges
        };
        for r in self.shim_routes(mode, &shim.name)? {
            h.replace_route(&r).await?;
        }
        Ok(true)
    }

    /// Removes the shim (its routes go with it) and releases its address. Idempotent.
    pub async fn disable_host_access(&self) -> Result<()> {
        let _endpoints = self.nets.record_files().lock_network(self.name()).await?;
        let _lock = self.nets.lock().await?;
        self.disable_host_access_locked().await
    }

    /// Removes host access as [`Network::disable_host_access`] does, but only if the network
    /// has no endpoint (a pending one, of a connect under way or one that died, counts), and
    /// tells whether it did: for a front-end that keeps the shim only while a container uses
    /// the network (the CNI plugin's last DEL). Checked and done under the network's endpoint
    /// lock: a connect either comes first and keeps the shim, or comes after and finds none
    /// (and enables it again).
    pub async fn disable_host_access_if_unused(&self) -> Result<bool> {
        let _endpoints = self.nets.record_files().lock_network(self.name()).await?;
        if !self.endpoints()?.is_empty() {
            return Ok(false);
        }
        let _lock = self.nets.lock().await?;
        if self.current_record()?.shim.is_none() {
            return Ok(false);
        }
        self.disable_host_access_locked().await?;
        Ok(true)
    }

    /// [`Network::disable_host_access`] for a caller holding the network's endpoints and the
    /// networks' lock (in that order, as every caller takes them).
    pub(crate) async fn disable_host_access_locked(&self) -> Result<()> {
        let mut record = self.current_record()?;
        let Some(shim) = record.shim.take() else {
            return Ok(());
        };
        let mut errors = Vec::new();
        match self.host().delete_link(shim.name.as_str()).await {
            Err(e) if e.kind() != ErrorKind::NotFound => errors.push(e),
            _ => {}
        }
        if let Err(e) = self
            .ipam
            .release(&shim_owner(self.name(), &shim.name)?)
            .await
        {
            errors.push(e);
        }
        if let Err(e) = self.nets.write_record(&record) {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::multiple(
                format!("disabling host access on network `{}`", self.name()),
                errors,
            ))
        }
    }

    /// The routes a shim named `shim` needs now.
    pub(crate) fn shim_routes(&self, routes: ShimRoutes, shim: &str) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        match routes {
            ShimRoutes::Endpoints => {
                for ep in self.endpoints()? {
                    out.extend(ep.addresses.iter().map(|a| host_route(a.addr(), shim)));
                }
            }
            ShimRoutes::Ranges => {
                for pool in self.pools().iter().flat_map(|p| p.segments()) {
                    if pool.ranges().is_empty() {
                        return Err(Error::invalid(format!(
                            "network `{}`: pool {} has no allocation range, and routing its whole subnet through the \
                             shim would take the host's own LAN route: give the pool a range (--ip-range) or use \
                             ShimRoutes::Endpoints",
                            self.name(),
                            pool.subnet()
                        )));
                    }
                    for r in pool.ranges() {
                        for net in range_cidrs(r) {
                            out.push(Route::new(net).dev(shim));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The shim's name when routes follow endpoints (read fresh: another process may have
    /// enabled host access since this `Network` was opened).
    pub(crate) fn shim_for_endpoints(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::metadata(self.nets.record_path(self.name()))
            .and_then(|m| Ok((m.ino(), m.modified()?)))
            .ok()?;
        let mut cache = self.shim_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, shim)) = cache.as_ref().filter(|(s, _)| *s == stamp) {
            return shim.clone();
        }
        let r = self.current_record().ok()?;
        let shim = r.shim.filter(|s| s.per_endpoint).map(|s| s.name);
        *cache = Some((stamp, shim.clone()));
        shim
    }

    pub(crate) fn current_record(&self) -> Result<super::spec::Record> {
        self.nets
            .read_record(self.name())?
            .ok_or_else(|| Error::not_found(format!("network `{}` was deleted", self.name())))
    }
}

/// The CIDR blocks covering an allocation range.
fn range_cidrs(r: &AllocRange) -> Vec<IpNet> {
    match *r {
        AllocRange::Cidr(n) => vec![n.trunc()],
        AllocRange::Span { start, end } => match (start, end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                IpSubnets::from(ipnet::Ipv4Subnets::new(a, b, 0)).collect()
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                IpSubnets::from(ipnet::Ipv6Subnets::new(a, b, 0)).collect()
            }
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_become_cidrs() {
        let r: AllocRange = "192.168.136.240-192.168.136.255".parse().unwrap();
        assert_eq!(
            range_cidrs(&r),
            vec!["192.168.136.240/28".parse::<IpNet>().unwrap()]
        );
        let r: AllocRange = "10.0.0.1-10.0.0.4".parse().unwrap();
        let got: Vec<String> = range_cidrs(&r).iter().map(|n| n.to_string()).collect();
        assert_eq!(got, ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/32"]);
    }
}

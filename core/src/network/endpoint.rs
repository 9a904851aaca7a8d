//! Endpoints: a container's interface on a network, made in one go and undone as a whole.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::records::{self, EndpointLock};
use super::{Network, ENDPOINT_GROUP};
use crate::addr::AddressOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::ipam::{self, Lease, Owner, Request};
use crate::link::ipvlan::{Ipvlan, IpvlanMode};
use crate::link::macvlan::Macvlan;
use crate::link::Link;
use crate::netns::Netns;
use crate::probe::{ConflictDetection, DadWitness, WireConflict};
use crate::route::Route;
use crate::types::MacAddr;

use super::spec::Driver;

/// Where an endpoint's MAC comes from (macvlan; an ipvlan always has its parent's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MacPolicy {
    /// A random locally administered address (the kernel's default behaviour).
    #[default]
    Random,
    /// Derived from the container id and interface name: the same after a restart, so
    /// neighbours' ARP caches and switch port security stay valid.
    FromContainerId,
    /// This address.
    Fixed(MacAddr),
}

/// Whom a new endpoint's addresses are announced to (gratuitous ARP for IPv4, unsolicited
/// neighbour advertisement for IPv6), so that a moved or reused address is learnt at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Announce {
    /// The network beyond the host: the frames leave through the parent, so switches, routers
    /// and other hosts learn at once, at the same cost however many endpoints share the parent.
    /// This host's other endpoints on the parent are not told (they resolve the address when
    /// they need it). Nothing is sent on an internal network.
    #[default]
    Wire,
    /// Everyone on the segment, this host's other endpoints included: sent from inside the
    /// endpoint (as the CNI macvlan plugin does). A bridge-mode parent hands each such
    /// broadcast to every sibling, so a connect costs O(endpoints on the parent).
    Segment,
    /// Everyone on the segment, as [`Announce::Segment`], but sent by the kernel: the link is
    /// brought up after its addresses are set, with `net.ipv4.conf.IFACE.arp_notify` (and
    /// `net.ipv6.conf.IFACE.ndisc_notify` when it keeps IPv6) on, so the kernel sends a
    /// gratuitous ARP for each IPv4 address as the link comes up and an unsolicited NA for
    /// each IPv6 address once it is usable. No packet socket in the calling process, whose
    /// close waits for an RCU grace period (about 10 ms): the cheapest mode for a short-lived
    /// process (the CNI plugin's default). The settings stay on the link, so the kernel
    /// announces again if its MAC changes. On a link without ARP (ipvlan l3, l3s) and for a
    /// prepared endpoint ([`Network::prepare`]) the wire is told instead ([`Announce::Wire`]).
    Kernel,
    /// Nothing is sent.
    Off,
}

impl std::str::FromStr for Announce {
    type Err = Error;
    /// "wire", "segment", "kernel" or "off".
    fn from_str(s: &str) -> Result<Announce> {
        match s {
            "wire" => Ok(Announce::Wire),
            "segment" => Ok(Announce::Segment),
            "kernel" => Ok(Announce::Kernel),
            "off" => Ok(Announce::Off),
            _ => Err(Error::invalid(format!(
                "announce `{}`: give \"wire\", \"segment\", \"kernel\" or \"off\"",
                Error::show_input(s)
            ))),
        }
    }
}

/// Whether a connect gives the container a default route through the network's gateway (one
/// per pool with a gateway: IPv4, IPv6), for containers on several networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DefaultRoute {
    /// Through the gateway, unless the namespace has a default route of that IP version
    /// already (another network's): then none, as Docker gives one endpoint the gateway. Two
    /// connects racing cannot both add it: the kernel refuses the second (`EEXIST`), which
    /// means "taken" too. So the first network connected carries the container's traffic;
    /// when its endpoint is disconnected, the others do not take over (use
    /// [`DefaultRoute::Metric`] for that).
    #[default]
    Auto,
    /// Always, with this metric (lower wins), as netavark does: each network its own metric,
    /// so their default routes coexist, the lowest carries the traffic and the next takes over
    /// when it goes. A default route of the same IP version and metric already there is
    /// refused ([`ErrorKind::AlreadyExists`]). On IPv6 the kernel reads metric 0 as 1024.
    Metric(u32),
    /// Never: the container reaches only the network's subnets (and what other routes give).
    None,
}

/// The steps of [`Network::connect`], for tests that inject a failure after one of them.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectStep {
    /// The address was allocated.
    Allocate,
    /// The link exists in the namespace.
    CreateLink,
    /// The addresses are set.
    Addresses,
    /// The default routes are set.
    Routes,
    /// Neighbours were told.
    Announce,
    /// The endpoint is recorded.
    Record,
    /// The host shim routes to it.
    HostRoute,
}

/// What to connect: `docker run --network NET [--ip IP] [--mac-address MAC]`.
#[derive(Clone, Debug)]
pub struct EndpointSpec {
    container_id: String,
    ifname: String,
    ips: Vec<IpAddr>,
    mac: MacPolicy,
    hostname: Option<String>,
    target: Option<Handle>,
    announce: Announce,
    keep_ipv6: bool,
    default_route: DefaultRoute,
    fail_after: Option<ConnectStep>,
    hang_after: Option<ConnectStep>,
    delete_link_after: Option<ConnectStep>,
}

impl EndpointSpec {
    /// An endpoint for `container_id`, interface `eth0`, any free address, random MAC.
    pub fn new(container_id: impl Into<String>) -> EndpointSpec {
        EndpointSpec {
            container_id: container_id.into(),
            ifname: "eth0".into(),
            ips: Vec::new(),
            mac: MacPolicy::Random,
            hostname: None,
            target: None,
            announce: Announce::Wire,
            keep_ipv6: false,
            default_route: DefaultRoute::Auto,
            fail_after: None,
            hang_after: None,
            delete_link_after: None,
        }
    }

    /// The interface name inside the namespace (default `eth0`).
    pub fn ifname(mut self, name: impl Into<String>) -> Self {
        self.ifname = name.into();
        self
    }

    /// A specific address (Docker `--ip`, `--ip6`): one per pool family at most.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip);
        self
    }

    /// How to pick the MAC. On a DHCP network the default ([`MacPolicy::Random`]) gives
    /// [`MacPolicy::FromContainerId`]'s MAC: the same client after a reconnect.
    pub fn mac(mut self, policy: MacPolicy) -> Self {
        self.mac = policy;
        self
    }

    /// On a DHCP network, the host name sent to the server (option 12; default: the
    /// container id's letters, digits and `-`, at most 63). Ignored on pooled networks.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// A handle already open in the namespace (saves opening a socket there). A handle in
    /// another namespace than the one connected is refused ([`ErrorKind::InvalidArgument`]).
    pub fn target(mut self, handle: &Handle) -> Self {
        self.target = Some(handle.clone());
        self
    }

    /// Whether to announce the addresses once the endpoint is up: on by default
    /// ([`Announce::Wire`]); `false` is [`Announce::Off`].
    pub fn announce(mut self, on: bool) -> Self {
        self.announce = if on { Announce::Wire } else { Announce::Off };
        self
    }

    /// Whom to announce the addresses to (default [`Announce::Wire`]).
    pub fn announce_to(mut self, whom: Announce) -> Self {
        self.announce = whom;
        self
    }

    /// Whether an endpoint given no IPv6 address (its network has no IPv6 pool) keeps the
    /// kernel's IPv6: a link-local address, and SLAAC addresses and routes from any router
    /// advertisement on the wire. Off by default: IPv6 is disabled on such an interface
    /// (`disable_ipv6`), as Docker does since 26.0.2 (CVE-2024-32473), so an IPv4-only
    /// container is not reachable over IPv6 unawares. Endpoints with an IPv6 address keep it.
    pub fn keep_ipv6(mut self, keep: bool) -> Self {
        self.keep_ipv6 = keep;
        self
    }

    /// Whether the container gets a default route through the network's gateway (default
    /// [`DefaultRoute::Auto`]: unless it has one already, from another network).
    pub fn default_route(mut self, mode: DefaultRoute) -> Self {
        self.default_route = mode;
        self
    }

    pub(super) fn container_id(&self) -> &str {
        &self.container_id
    }

    pub(super) fn ifname_str(&self) -> &str {
        &self.ifname
    }

    pub(super) fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    pub(super) fn target_handle(&self) -> Option<&Handle> {
        self.target.as_ref()
    }

    pub(super) fn keeps_ipv6(&self) -> bool {
        self.keep_ipv6
    }

    pub(super) fn hostname_str(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    pub(super) fn default_route_mode(&self) -> DefaultRoute {
        self.default_route
    }

    pub(super) fn mac_policy(&self) -> MacPolicy {
        self.mac
    }

    pub(super) fn announce_mode(&self) -> Announce {
        self.announce
    }

    /// Test hook: fail right after `step`, to check that everything is undone.
    #[doc(hidden)]
    pub fn fail_after(mut self, step: ConnectStep) -> Self {
        self.fail_after = Some(step);
        self
    }

    /// Test hook: delete the endpoint's link right after `step`, as another process might.
    #[doc(hidden)]
    pub fn delete_link_after(mut self, step: ConnectStep) -> Self {
        self.delete_link_after = Some(step);
        self
    }

    /// Test hook: stop (sleep) right after `step`, for crash tests that kill the process there.
    #[doc(hidden)]
    pub fn hang_after(mut self, step: ConnectStep) -> Self {
        self.hang_after = Some(step);
        self
    }
}

/// A connected endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Network name.
    pub network: String,
    /// Container id.
    pub container_id: String,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// Interface index inside the namespace.
    pub index: u32,
    /// MAC.
    pub mac: Option<MacAddr>,
    /// Addresses (with the pools' prefix lengths).
    pub addresses: Vec<IpNet>,
    /// Routes added inside: the default routes via the gateways this connect added (see
    /// [`DefaultRoute`]), no others.
    pub routes: Vec<Route>,
    /// The namespace, as a path when it has one (`/run/netns/NAME`, `/proc/PID/ns/net`).
    pub netns: Option<PathBuf>,
    pub(crate) netns_inode: u64,
    /// For an endpoint made by [`Network::prepare`]: the link's temporary name in the caller's
    /// namespace, which the runtime moves (and renames) into the container itself.
    pub handoff: Option<String>,
    /// Set while a connect is under way: the connecting process (pid, start time), so that
    /// reconcile can undo a connect whose process died midway.
    pub(crate) pending: Option<(u32, u64)>,
    /// On a DHCP network: the lease the endpoint holds (`None` once it was lost: expired or
    /// refused; [`Network::renew_dhcp`] then asks for one again).
    pub dhcp: Option<crate::DhcpLease>,
    /// On a DHCP network: the address of a lease that was lost, asked for again first
    /// (INIT-REBOOT).
    pub(crate) dhcp_previous: Option<std::net::Ipv4Addr>,
    /// For a prepared endpoint: the namespace the runtime moves the link into, as recorded by
    /// [`Network::set_sandbox`] (Docker's `SandboxKey`). A DHCP endpoint's renewals and release
    /// look for the link there (and, if that path does not open here, in every namespace of
    /// the host, by its MAC).
    pub sandbox: Option<PathBuf>,
}

impl Network {
    /// Connects a namespace: allocates the address (or takes the requested one), creates the
    /// link directly inside the namespace (named, MAC, MTU, up: one request; without an IPv6
    /// address, IPv6 is turned off before it comes up, see [`EndpointSpec::keep_ipv6`]), sets
    /// the addresses and the default routes, announces the addresses (gratuitous ARP /
    /// unsolicited NA) and records the endpoint. Any failure undoes every earlier step.
    ///
    /// Calls on one endpoint (container id and interface, from any process) run one at a
    /// time: a connect, disconnect or reconcile of it waits for the one under way (60 s at
    /// most, then [`ErrorKind::Busy`]). A connect that died midway (its record still pending)
    /// is undone by the next connect of the endpoint, or by [`super::Networks::reconcile`].
    pub async fn connect(&self, netns: &Netns, spec: EndpointSpec) -> Result<Endpoint> {
        self.connect_inner(netns, spec, false).await
    }

    /// Prepares an endpoint for a runtime that moves the link into the container itself
    /// (Docker's remote driver: `Join` names the link in `SrcName`, and dockerd moves it,
    /// renames it and sets its addresses and routes): leases the address (or the requested
    /// one) and creates the link (macvlan or ipvlan on the network's parent, MTU, MAC: down,
    /// no address) in the host namespace of [`super::Networks`] under a temporary name,
    /// [`Endpoint::handoff`]. The endpoint is recorded, locked and undone on failure as
    /// [`Network::connect`]'s is; the shim routes to it and its addresses are announced on the
    /// wire. With conflict detection its IPv4 addresses are probed first (IPv6 duplicate
    /// address detection is the runtime's: it sets the addresses). [`EndpointSpec::target`],
    /// [`Announce::Segment`] (there is no container yet: the wire is told) and the
    /// default-route and IPv6 settings (the runtime sets addresses and routes) do not apply.
    ///
    /// [`Network::disconnect`] removes it: it deletes the link if it is still (or again) in
    /// the host namespace under its temporary name, and takes it as gone otherwise (it died
    /// with the container's namespace). [`super::Networks::reconcile`] undoes a prepared
    /// endpoint whose link is in no namespace of this host any more.
    pub async fn prepare(&self, spec: EndpointSpec) -> Result<Endpoint> {
        let host = self.host().netns().clone();
        self.connect_inner(&host, spec, true).await
    }

    /// Records where the runtime moves prepared endpoint `container_id`/`ifname`'s link
    /// ([`Network::prepare`]): the namespace at `path` (Docker's `SandboxKey`, given at `Join`;
    /// it need not exist yet: Docker mounts it after `Join`). On a DHCP network the renewals
    /// ([`Network::renew_dhcp`]) and the release then find the link there, under whatever name
    /// the runtime gave it (by underlay's link group and the endpoint's MAC); when the path
    /// does not open in this process (another mount namespace) the link is looked for in
    /// every namespace of the host. Fails with [`ErrorKind::NotFound`] for an endpoint not
    /// prepared yet and [`ErrorKind::InvalidArgument`] for a connected one or a relative path.
    pub async fn set_sandbox(
        &self,
        container_id: &str,
        ifname: &str,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Endpoint> {
        let path = path.as_ref();
        if !path.is_absolute() {
            return Err(Error::invalid(format!(
                "sandbox path `{}` of endpoint `{container_id}`/{ifname}: give an absolute path",
                path.display()
            )));
        }
        check_endpoint_key(container_id, ifname)?;
        let held = self.lock_endpoint(container_id, ifname).await?;
        let mut ep = match self.endpoint(container_id, ifname)? {
            Some(ep) if ep.pending.is_none() => ep,
            _ => {
                return Err(Error::not_found(format!(
                    "endpoint `{container_id}`/{ifname} of network `{}` is not prepared: prepare it first",
                    self.name()
                )))
            }
        };
        if ep.handoff.is_none() {
            return Err(Error::invalid(format!(
                "endpoint `{container_id}`/{ifname} of network `{}` was connected into its namespace, not prepared for a runtime: it has no sandbox to record",
                self.name()
            )));
        }
        ep.sandbox = Some(path.to_path_buf());
        self.write_endpoint(&ep, true, &held)?;
        Ok(ep)
    }

    async fn connect_inner(
        &self,
        netns: &Netns,
        mut spec: EndpointSpec,
        handoff: bool,
    ) -> Result<Endpoint> {
        if handoff {
            if self.parent_in_endpoint_namespace() {
                return Err(Error::invalid(format!(
                    "network `{}`: its parent is in each endpoint's namespace, so a link cannot \
                     be prepared on the host for a runtime to move: use connect",
                    self.name()
                )));
            }
            spec.target = Some(self.host().clone());
        }
        if let Some(target) = &spec.target {
            check_target(netns, target)?;
        }
        let owner = check_endpoint_key(&spec.container_id, &spec.ifname)?;
        if self.dhcp().is_some() {
            self.check_dhcp_spec(&spec)?;
        }
        if let MacPolicy::Fixed(m) = spec.mac {
            m.check_assignable(format_args!("the endpoint of `{}`", spec.container_id))?;
        }
        // One call at a time per endpoint, from here to the last record write: a disconnect
        // or a reconcile of this container waits, and sees the record as it is now.
        let held = self.lock_endpoint(&spec.container_id, &spec.ifname).await?;
        // A network deleted since this handle was made (its records went with it).
        if !self.nets.record_path(self.name()).exists() {
            return Err(Error::not_found(format!(
                "network `{}` was deleted: open it again (Networks::get) or create it",
                self.name()
            )));
        }
        if let Some(ep) = self.endpoint(&spec.container_id, &spec.ifname)? {
            if ep.pending.is_none() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "container `{}` already has endpoint `{}` on network `{}` ({}): disconnect it first",
                        ep.container_id,
                        ep.ifname,
                        self.name(),
                        ep.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            // A connect that is over (its lock is ours) but left its pending record: its
            // process died midway. Undo what it did, then go on.
            self.disconnect_locked(&ep.container_id, &ep.ifname, true, &held)
                .await?;
        }
        let mut request = Request::any();
        for ip in &spec.ips {
            request = request.and_ip(*ip);
        }
        // A pending record before anything else: if this process dies midway, reconcile finds
        // it (its lock is free) and undoes what was done: the lease, the link.
        let pending = Endpoint {
            network: self.name().to_string(),
            container_id: spec.container_id.clone(),
            ifname: spec.ifname.clone(),
            index: 0,
            mac: None,
            addresses: Vec::new(),
            routes: Vec::new(),
            netns: netns.path().map(PathBuf::from),
            netns_inode: netns.inode(),
            handoff: handoff.then(|| handoff_name(self.name(), &spec.container_id, &spec.ifname)),
            pending: Some(crate::sys::process_identity()),
            dhcp: None,
            dhcp_previous: None,
            sandbox: None,
        };
        self.write_endpoint(&pending, false, &held)?;
        if let Some(cfg) = self.dhcp() {
            return self
                .connect_dhcp(netns, &spec, cfg, pending, &held, handoff)
                .await;
        }
        // With conflict detection, an address that answers on the wire is quarantined and
        // the connect starts over with the next free one, a few times at most.
        let mut taken: Vec<WireConflict> = Vec::new();
        loop {
            let lease = match self.ipam.allocate(&owner, &request).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = self.remove_endpoint_file(&spec.container_id, &spec.ifname, &held);
                    return Err(e);
                }
            };
            let result = async {
                check_step(&spec, ConnectStep::Allocate)?;
                if let Some(how) = self.conflict_detection() {
                    let found = self.probe_ipv4(&lease, how).await?;
                    if !found.is_empty() {
                        return Ok(Attempt::Taken(found));
                    }
                }
                self.connect_steps(netns, &spec, &lease, &held, handoff)
                    .await
            }
            .await;
            let found = match result {
                Ok(Attempt::Done(ep)) => return Ok(*ep),
                Ok(Attempt::Taken(found)) => found,
                Err(e) => {
                    let mut errors = vec![e];
                    // The record goes only with the lease: if the lease stays, so does the
                    // pending record that lets reconcile (or the next connect) release it.
                    if let Err(e) = self.ipam.release(&owner).await {
                        errors.push(e);
                    } else if let Err(e) =
                        self.remove_endpoint_file(&spec.container_id, &spec.ifname, &held)
                    {
                        errors.push(e);
                    }
                    return Err(Error::multiple(
                        format!(
                            "connecting `{}` failed and its undo failed too",
                            owner.container_id()
                        ),
                        errors,
                    ));
                }
            };
            // The lease goes and the addresses that answered are quarantined in one commit.
            let quarantines: Vec<ipam::Quarantine> = found
                .iter()
                .map(|c| ipam::Quarantine::now(c.ip, c.mac))
                .collect();
            for c in &found {
                tracing::warn!(network = %self.name(), address = %c.ip, mac = ?c.mac, endpoint = %spec.container_id, "address in use on the wire: quarantined");
            }
            if let Err(e) = self.ipam.quarantine(&owner, &quarantines).await {
                let mut errors = vec![e];
                if let Err(e) = self.ipam.release(&owner).await {
                    errors.push(e);
                } else if let Err(e) =
                    self.remove_endpoint_file(&spec.container_id, &spec.ifname, &held)
                {
                    errors.push(e);
                }
                return Err(Error::multiple(
                    format!(
                        "connecting `{}`: quarantining the addresses in use on the wire failed",
                        owner.container_id()
                    ),
                    errors,
                ));
            }
            taken.extend(found.iter().copied());
            let asked: Vec<&WireConflict> =
                found.iter().filter(|c| spec.ips.contains(&c.ip)).collect();
            if !asked.is_empty() || taken.len() >= MAX_CONFLICTS {
                self.remove_endpoint_file(&spec.container_id, &spec.ifname, &held)?;
                let list = |v: &[&WireConflict]| {
                    v.iter()
                        .map(|c| match c.mac {
                            Some(m) => format!("{} (answered by {m})", c.ip),
                            None => format!("{} (duplicate address detection failed)", c.ip),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Error::new(
                    ErrorKind::Conflict,
                    if asked.is_empty() {
                        format!(
                            "connecting `{}` to network `{}`: {} addresses in a row are in use on \
                             the wire: {}; they are quarantined (Ipam::quarantined); find the \
                             machines using the pool's addresses, or narrow the pool's range",
                            spec.container_id,
                            self.name(),
                            taken.len(),
                            list(&taken.iter().collect::<Vec<_>>())
                        )
                    } else {
                        format!(
                            "connecting `{}` to network `{}`: the requested address {} is in use on \
                             the wire, now quarantined: ask for another address, or release the \
                             quarantine (Ipam::release of its owner) once that machine is gone",
                            spec.container_id,
                            self.name(),
                            list(&asked)
                        )
                    },
                ));
            }
        }
    }

    /// Starts watching the parent for address conflicts that appear after connect: a machine
    /// on the wire using (gratuitous ARP, any ARP) or probing for an IPv4 address this
    /// network gave one of its endpoints, from a MAC other than the endpoint's. Works with
    /// or without [`NetworkSpec::conflict_detection`](super::NetworkSpec); a long-running
    /// embedder (a daemon) keeps one per network and reports what [`ConflictWatch::next`]
    /// returns. Fails on an internal network (no wire).
    pub async fn watch_conflicts(&self) -> Result<ConflictWatch> {
        if self.parent().is_none() {
            return Err(Error::invalid(format!(
                "network `{}` is internal (no parent): there is no wire to watch",
                self.name()
            )));
        }
        let lower = self.lower_link().await?;
        let listener = crate::probe::ArpListener::open(self.host().netns(), lower.index).await?;
        Ok(ConflictWatch {
            net: self.clone(),
            listener,
            owners: std::collections::HashMap::new(),
        })
    }

    /// Probes the lease's IPv4 addresses by ARP out of the parent (nothing on an internal
    /// network): those in use on the wire.
    async fn probe_ipv4(&self, lease: &Lease, how: ConflictDetection) -> Result<Vec<WireConflict>> {
        let v4: Vec<std::net::Ipv4Addr> = lease
            .ips()
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .collect();
        if v4.is_empty() || self.parent().is_none() {
            return Ok(Vec::new());
        }
        let lower = self.lower_link().await?;
        let Some(mac) = lower.mac.filter(MacAddr::is_assignable) else {
            return Ok(Vec::new());
        };
        let prober = self.nets.prober(lower.index).await;
        async { prober?.probe(mac, &v4, how).await }
            .await
            .map_err(|e| {
                e.context(format_args!(
                    "network `{}`: conflict detection",
                    self.name()
                ))
            })
    }

    async fn connect_steps(
        &self,
        netns: &Netns,
        spec: &EndpointSpec,
        lease: &Lease,
        held: &EndpointLock,
        handoff: bool,
    ) -> Result<Attempt> {
        let target = match &spec.target {
            Some(t) => t.clone(),
            None => Handle::for_netns(netns).await?,
        };
        // IPv6 goes off before the link comes up, so the kernel never starts it (link-local
        // address, duplicate detection, multicast reports) on an IPv4-only endpoint.
        let ipv6_off = !handoff
            && !spec.keep_ipv6
            && !lease.addresses.iter().any(|a| a.address.addr().is_ipv6());
        // A prepared link stays down, unaddressed, under its temporary name: the runtime
        // moves, renames, configures and brings it up.
        let temp_name =
            handoff.then(|| handoff_name(self.name(), &spec.container_id, &spec.ifname));
        let link_name = temp_name.as_deref().unwrap_or(&spec.ifname);
        // The kernel announces the addresses a link has when it comes up (arp_notify): the
        // link comes up after them. A link without ARP (ipvlan l3, l3s) tells the wire.
        let arp_less = matches!(
            self.driver(),
            Driver::Ipvlan(IpvlanMode::L3 | IpvlanMode::L3s, _)
        );
        let announce = self.announce_for(spec.announce, arp_less, handoff);
        let kernel_announce = announce == Announce::Kernel;
        let link = self
            .create_link(
                &target,
                spec,
                link_name,
                !ipv6_off && !handoff && !kernel_announce,
            )
            .await?;
        let mut ep = Endpoint {
            network: self.name().to_string(),
            container_id: spec.container_id.clone(),
            ifname: if handoff {
                spec.ifname.clone()
            } else {
                link.name.clone()
            },
            index: link.index,
            mac: link.mac,
            addresses: lease.addresses.iter().map(|a| a.address).collect(),
            routes: Vec::new(),
            netns: netns.path().map(PathBuf::from),
            netns_inode: netns.inode(),
            handoff: temp_name.clone(),
            pending: None,
            dhcp: None,
            dhcp_previous: None,
            sandbox: None,
        };
        let mut host_routes = Vec::new();
        let (target_ref, index) = (&target, link.index);
        let step = |s: ConnectStep| async move {
            check_step(spec, s)?;
            if spec.delete_link_after == Some(s) {
                target_ref.delete_link(index).await?;
            }
            Ok::<(), Error>(())
        };
        // Duplicate address detection (conflict detection on, IPv6 addresses) failed for these.
        let mut dad_failed: Vec<WireConflict> = Vec::new();
        let steps = async {
            if ipv6_off {
                disable_ipv6(netns, &link.name).await?;
                if !kernel_announce {
                    waiting_for_mac(|| target.set_link(link.index).up().execute()).await?;
                }
            }
            if kernel_announce {
                kernel_announcements(netns, &link.name, !ipv6_off).await?;
            }
            step(ConnectStep::CreateLink).await?;
            let dad = match self.conflict_detection() {
                Some(how) if !handoff && ep.addresses.iter().any(|a| a.addr().is_ipv6()) => {
                    Some(start_dad(netns, &link, how).await?)
                }
                _ => None,
            };
            for a in ep.addresses.iter().filter(|_| !handoff) {
                let opts = AddressOptions {
                    nodad: a.addr().is_ipv6() && dad.is_none(),
                    noprefixroute: false,
                };
                target.add_address_with(link.index, *a, opts).await?;
            }
            if kernel_announce {
                // Announces every address (and starts IPv6 duplicate address detection).
                waiting_for_mac(|| target.set_link(link.index).up().execute()).await?;
            }
            if let Some((witness, how)) = dad {
                dad_failed = wait_for_dad(&target, &link, &witness, how).await?;
                if !dad_failed.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "duplicate address detection failed",
                    ));
                }
            }
            step(ConnectStep::Addresses).await?;
            if !handoff {
                let gateways: Vec<IpAddr> =
                    lease.addresses.iter().filter_map(|a| a.gateway).collect();
                ep.routes =
                    add_default_routes(&target, spec.default_route, &gateways, link.index).await?;
            }
            step(ConnectStep::Routes).await?;
            if let Some(mac) = link.mac {
                let ips: Vec<IpAddr> = ep.addresses.iter().map(|a| a.addr()).collect();
                let sent = match announce {
                    // Sent by the kernel as the link came up.
                    Announce::Off | Announce::Kernel => Ok(()),
                    Announce::Segment => netns.announce_async(link.index, mac, ips).await,
                    Announce::Wire => self.announce_on_wire(mac, &ips).await,
                };
                if let Err(e) = sent {
                    tracing::warn!(endpoint = %spec.container_id, error = %e, "announcing the endpoint's addresses failed");
                }
            }
            step(ConnectStep::Announce).await?;
            self.write_endpoint(&ep, true, held)?;
            step(ConnectStep::Record).await?;
            if let Some(shim) = self.shim_for_endpoints() {
                for a in &ep.addresses {
                    let r = host_route(a.addr(), &shim);
                    self.host().replace_route(&r).await?;
                    host_routes.push(r);
                }
            }
            step(ConnectStep::HostRoute).await?;
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = steps {
            if !dad_failed.is_empty() {
                // Try again with other addresses: this link and its addresses go first.
                target.delete_link(link.index).await?;
                return Ok(Attempt::Taken(dad_failed));
            }
            // A link deleted from under the connect makes the next step fail in a misleading
            // way (an unreachable gateway, a missing device): say what happened instead.
            let gone =
                matches!(target.link(link.index).await, Err(g) if g.kind() == ErrorKind::NotFound);
            let e = if gone {
                Error::not_found(format!(
                    "the endpoint's link `{}` in {} was deleted by another process during connect \
                     (the next step then failed: {e}); nothing of the endpoint is left: connect again",
                    link.name,
                    target.netns_label()
                ))
                .with_errno(libc::ENODEV)
            } else {
                e
            };
            let mut errors = vec![e];
            for r in &host_routes {
                if let Err(e) = self.host().delete_route(r).await {
                    errors.push(e);
                }
            }
            // The record goes after the lease, in `connect`: a crash in between leaves a
            // pending record that reconcile finds, never a lease without one.
            if !gone {
                if let Err(e) = target.delete_link(link.index).await {
                    errors.push(e);
                }
            }
            let first = errors.remove(0);
            return Err(if errors.is_empty() {
                first
            } else {
                let mut all = vec![first];
                all.extend(errors);
                Error::multiple(
                    format!(
                        "connecting `{}` failed and its undo failed too",
                        spec.container_id
                    ),
                    all,
                )
            });
        }
        Ok(Attempt::Done(Box::new(ep)))
    }

    /// How an endpoint's addresses are announced, given what was `asked`: a prepared link
    /// (`handoff`) has no container yet, so the wire is told from the parent; a link without
    /// ARP (`arp_less`: ipvlan l3, l3s) cannot have the kernel announce; a parent in the
    /// endpoint's namespace is not the host's to send from, so the endpoint's link sends.
    pub(super) fn announce_for(&self, asked: Announce, arp_less: bool, handoff: bool) -> Announce {
        let asked = match asked {
            Announce::Segment | Announce::Kernel if handoff => Announce::Wire,
            Announce::Kernel if arp_less => Announce::Wire,
            a => a,
        };
        match asked {
            Announce::Wire if self.parent_in_endpoint_namespace() => Announce::Segment,
            a => a,
        }
    }

    /// Announces `ips` at `mac` out of the network's parent (nothing on an internal network).
    pub(super) async fn announce_on_wire(&self, mac: MacAddr, ips: &[IpAddr]) -> Result<()> {
        if self.parent().is_none() {
            return Ok(());
        }
        let lower = self.lower_link().await?;
        self.nets.announcer()?.send(lower.index, mac, ips)
    }

    /// The parent in the endpoint's namespace (`target`), checked against the network's MTU.
    async fn endpoint_parent(&self, target: &Handle) -> Result<Link> {
        let parent = target.link(self.lower()).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "network `{}`: parent `{}` is not in the endpoint's namespace {}: move or \
                     make it there first (the network's parent is looked up in each endpoint's \
                     namespace)",
                    self.name(),
                    self.lower(),
                    target.netns_label()
                ))
            } else {
                e.context(format!(
                    "network `{}`: reading parent `{}` in {}",
                    self.name(),
                    self.lower(),
                    target.netns_label()
                ))
            }
        })?;
        if let Some(mtu) = self.mtu().filter(|m| *m > parent.mtu) {
            return Err(Error::invalid(format!(
                "network `{}`: MTU {mtu} is above parent `{}`'s MTU {} in {}: lower the \
                 network's MTU or raise the parent's",
                self.name(),
                parent.name,
                parent.mtu,
                target.netns_label()
            )));
        }
        Ok(parent)
    }

    pub(super) async fn create_link(
        &self,
        target: &Handle,
        spec: &EndpointSpec,
        name: &str,
        up: bool,
    ) -> Result<Link> {
        waiting_for_mac(|| async {
            match self.create_link_once(target, spec, name, up).await {
                // The parent was recreated (reconcile) since it was cached: read it again, once.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.forget_lower();
                    self.create_link_once(target, spec, name, up).await
                }
                other => other,
            }
        })
        .await
    }

    async fn create_link_once(
        &self,
        target: &Handle,
        spec: &EndpointSpec,
        name: &str,
        up: bool,
    ) -> Result<Link> {
        // The link is made in place: from the host onto its parent (straight into the
        // target namespace), or, with the parent in the endpoint's namespace, in there.
        let (maker, lower, target) = if self.parent_in_endpoint_namespace() {
            (target, self.endpoint_parent(target).await?, None)
        } else {
            (self.host(), self.lower_link().await?, Some(target))
        };
        let index = lower.index;
        // The group marks the link as underlay's in the create request itself.
        match self.driver() {
            Driver::Macvlan(mode) => {
                let mut b = Macvlan::create(maker, name, index, mode)
                    .parent_link(lower)
                    .group(ENDPOINT_GROUP);
                if let Some(t) = target {
                    b = b.target(t);
                }
                if up {
                    b = b.up();
                }
                if let Some(m) = self.mtu() {
                    b = b.mtu(m);
                }
                match spec.mac {
                    MacPolicy::Random => {}
                    MacPolicy::FromContainerId => {
                        b = b.mac(MacAddr::derived_from(
                            format!("{}/{}", spec.container_id, spec.ifname).as_bytes(),
                        ))
                    }
                    MacPolicy::Fixed(m) => b = b.mac(m),
                }
                b.execute().await
            }
            Driver::Ipvlan(mode, flag) => {
                if let MacPolicy::Fixed(_) = spec.mac {
                    return Err(Error::invalid(format!(
                        "network `{}` is ipvlan: endpoints share the parent's MAC, a fixed MAC cannot be set",
                        self.name()
                    )));
                }
                let mut b = Ipvlan::create(maker, name, index, mode)
                    .flag(flag)
                    .parent_link(lower)
                    .group(ENDPOINT_GROUP);
                if let Some(t) = target {
                    b = b.target(t);
                }
                if up {
                    b = b.up();
                }
                if let Some(m) = self.mtu() {
                    b = b.mtu(m);
                }
                b.execute().await
            }
        }
    }

    /// Disconnects: removes the link from the namespace (if the namespace is still there),
    /// the host routes to it, its lease and its record. Idempotent. The record goes last, and
    /// only when the rest went: if the link cannot be deleted nothing is changed, and if the
    /// lease cannot be released the record stays, so that a retry (or reconcile) finishes.
    ///
    /// Deleting one link costs the kernel a synchronisation (~20 ms, serialised: about 50 per
    /// second whatever the concurrency). A caller about to delete the namespace should use
    /// [`Network::disconnect_for_netns_deletion`]: the namespace takes its links with it in
    /// ~0.03 ms.
    pub async fn disconnect(&self, container_id: &str, ifname: &str) -> Result<()> {
        self.disconnect_inner(container_id, ifname, true).await
    }

    /// Like [`Network::disconnect`] but leaves the link in place, for a caller that deletes the
    /// endpoint's namespace next (the link goes with it, at no cost): releases the lease, the
    /// host routes and the record.
    pub async fn disconnect_for_netns_deletion(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<()> {
        self.disconnect_inner(container_id, ifname, false).await
    }

    async fn disconnect_inner(
        &self,
        container_id: &str,
        ifname: &str,
        delete_link: bool,
    ) -> Result<()> {
        check_endpoint_key(container_id, ifname)?;
        let held = self.lock_endpoint(container_id, ifname).await?;
        self.disconnect_locked(container_id, ifname, delete_link, &held)
            .await
            .map(|_| ())
    }

    /// Disconnects under the endpoint's lock; returns the addresses given back to the pools.
    pub(crate) async fn disconnect_locked(
        &self,
        container_id: &str,
        ifname: &str,
        delete_link: bool,
        held: &EndpointLock,
    ) -> Result<Vec<IpNet>> {
        let owner = check_endpoint_key(container_id, ifname)?;
        let ep = self.endpoint(container_id, ifname)?;
        let mut errors = Vec::new();
        if let Some(ep) = &ep {
            if ep.dhcp.is_some() {
                // Given back before the link goes (a failure only delays the address's
                // return to the server's pool until the lease expires).
                if let Err(e) = self.release_dhcp(ep).await {
                    tracing::warn!(network = %self.name(), endpoint = %container_id, error = %e, "DHCP release failed: the server frees the address when the lease expires");
                }
            }
            if delete_link {
                // Kept as it is (lease and record too) when its link cannot be deleted: the
                // address is still in use.
                self.delete_endpoint_link(ep).await.map_err(|e| {
                    e.context(format!(
                        "disconnecting `{container_id}`/{ifname} from network `{}` (nothing changed)",
                        self.name()
                    ))
                })?;
            }
            if let Some(shim) = self.shim_for_endpoints() {
                for a in &ep.addresses {
                    match self.host().delete_route(&host_route(a.addr(), &shim)).await {
                        Err(e) if e.kind() != ErrorKind::NotFound => errors.push(e),
                        _ => {}
                    }
                }
            }
        }
        // With the lock held, a lease without a record is no connect's under way: a leftover.
        let released = match self.ipam.release(&owner).await {
            Ok(l) => l
                .map(|l| l.addresses.iter().map(|a| a.address).collect())
                .unwrap_or_default(),
            Err(e) => {
                errors.push(e);
                Vec::new()
            }
        };
        // The record goes last: if this process dies before, the next call finds it.
        if errors.is_empty() && ep.is_some() {
            if let Err(e) = self.remove_endpoint_file(container_id, ifname, held) {
                errors.push(e);
            }
        }
        let what = format!(
            "disconnecting `{container_id}`/{ifname} from network `{}`",
            self.name()
        );
        match errors.len() {
            0 => Ok(released),
            1 => Err(errors.remove(0).context(what)),
            _ => Err(Error::multiple(what, errors)),
        }
    }

    /// Deletes the endpoint's own link: in its namespace (if that still exists), with its
    /// index (when recorded), its name and underlay's link group, so that nothing else of the
    /// container's is ever touched.
    async fn delete_endpoint_link(&self, ep: &Endpoint) -> Result<()> {
        // A prepared endpoint's link is deleted only where it was made: in the host namespace
        // (elsewhere it is the runtime's, and goes with the container's namespace).
        let h = if ep.handoff.is_some() {
            self.host().clone()
        } else {
            let Some(ns) = ep.locate_netns(&mut None) else {
                return Ok(());
            };
            Handle::for_netns(&ns).await?
        };
        match ep.own_link(&h, &self.ipam, self.dhcp().is_some()).await? {
            Some(l) => match h.delete_link(l.index).await {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                other => other,
            },
            None => Ok(()),
        }
    }

    /// Waits for the lock of endpoint `container_id`/`ifname` of this network.
    pub(crate) async fn lock_endpoint(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<EndpointLock> {
        self.nets
            .record_files()
            .lock(
                self.name(),
                &endpoint_file_name(container_id, ifname),
                &format!(
                    "endpoint `{container_id}`/{ifname} of network `{}`",
                    self.name()
                ),
            )
            .await
    }

    /// The endpoint of `container_id`/`ifname`, if connected. An id or name that no endpoint
    /// can have fails with [`ErrorKind::InvalidArgument`] saying what is allowed.
    pub fn endpoint(&self, container_id: &str, ifname: &str) -> Result<Option<Endpoint>> {
        check_endpoint_key(container_id, ifname)?;
        self.read_endpoint_file(&endpoint_file_name(container_id, ifname))
    }

    /// The record in file `name` of this network's directory, if there.
    pub(crate) fn read_endpoint_file(&self, name: &str) -> Result<Option<Endpoint>> {
        let path = self.nets.endpoints_dir(self.name()).join(name);
        // Record files are reused: read without the endpoint's lock, a file may have been
        // retired and rewritten for another endpoint between open and read. Such a read
        // fails its seal or its identity; the path then holds the current record (or none).
        let mut why = "";
        for _ in 0..4 {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot read endpoint file {}", path.display()),
                        e,
                    ))
                }
            };
            let Some(text) = records::unseal(&bytes) else {
                why = "its seal (the last line, `end=`) is missing or does not match";
                continue;
            };
            let ep = parse_endpoint(text, self.name(), &path)?;
            if endpoint_file_name(&ep.container_id, &ep.ifname) == name {
                return Ok(Some(ep));
            }
            why = "it names another endpoint";
        }
        Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "endpoint file {} is unreadable: {why}; fix or remove it",
                path.display()
            ),
        ))
    }

    /// The names of this network's record files.
    pub(crate) fn endpoint_files(&self) -> Result<Vec<String>> {
        let mut names = records::list(&self.nets.endpoints_dir(self.name()))?;
        names.retain(|n| !n.starts_with('.'));
        Ok(names)
    }

    /// Every recorded endpoint (a record that goes away meanwhile is not listed).
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        for name in self.endpoint_files()? {
            out.extend(self.read_endpoint_file(&name)?);
        }
        out.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
        Ok(out)
    }

    fn endpoint_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.nets
            .endpoints_dir(self.name())
            .join(endpoint_file_name(container_id, ifname))
    }

    /// Writes `ep`'s record, under its lock: replacing the one there, or only if there is none
    /// (`replace` false: `EEXIST` otherwise).
    pub(super) fn write_endpoint(
        &self,
        ep: &Endpoint,
        replace: bool,
        held: &EndpointLock,
    ) -> Result<()> {
        let dir = self.nets.endpoints_dir(self.name());
        let mut text = format!(
            "# underlay endpoint v2\ncontainer={}\nifname={}\n",
            ep.container_id, ep.ifname
        );
        if let Some(p) = &ep.netns {
            text.push_str(&format!("netns={}\n", p.display()));
        }
        text.push_str(&format!("inode={}\n", ep.netns_inode));
        if let Some(h) = &ep.handoff {
            text.push_str(&format!("handoff={h}\n"));
        }
        if ep.index != 0 {
            text.push_str(&format!("index={}\n", ep.index));
        }
        if let Some((pid, start)) = ep.pending {
            text.push_str(&format!("pending={pid}:{start}\n"));
        }
        if let Some(m) = ep.mac {
            text.push_str(&format!("mac={m}\n"));
        }
        for a in &ep.addresses {
            text.push_str(&format!("address={a}\n"));
        }
        if let Some(l) = &ep.dhcp {
            text.push_str(&format!("dhcp={}\n", l.to_text()));
        }
        if let Some(p) = ep.dhcp_previous {
            text.push_str(&format!("dhcp_previous={p}\n"));
        }
        if let Some(p) = &ep.sandbox {
            text.push_str(&format!("sandbox={}\n", p.display()));
        }
        for r in &ep.routes {
            if let Some(g) = r.gateway {
                text.push_str(&format!("gateway={g}\n"));
                if let Some(m) = r.metric {
                    text.push_str(&format!("metric={m}\n"));
                }
            }
        }
        // Not fsynced: endpoints do not outlive a reboot (their namespaces do not), and an
        // atomic rename survives a process crash.
        let name = endpoint_file_name(&ep.container_id, &ep.ifname);
        let files = self.nets.record_files();
        // The directory is made on the first record (a deleted network's went with it, and
        // `connect` checked under the lock that this one still exists).
        match files.write(&dir, &name, text.as_bytes(), replace, held) {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                ipam::fsutil::mkdir(&dir)?;
                files.write(&dir, &name, text.as_bytes(), replace, held)
            }
            other => other,
        }
    }

    pub(super) fn remove_endpoint_file(
        &self,
        container_id: &str,
        ifname: &str,
        held: &EndpointLock,
    ) -> Result<()> {
        self.nets
            .record_files()
            .remove(&self.endpoint_path(container_id, ifname), held)
    }
}

impl Endpoint {
    /// The endpoint's namespace if it still exists: at its recorded path, or (when it has
    /// none, or another namespace is there now) wherever this host can still open it (`live`,
    /// from `live_netns_paths`, looked up on first need and kept for the next call).
    pub(crate) fn locate_netns(
        &self,
        live: &mut Option<std::collections::HashMap<u64, PathBuf>>,
    ) -> Option<Netns> {
        let same = |ns: Netns| (ns.inode() == self.netns_inode).then_some(ns);
        if let Some(ns) = self.netns.as_ref().and_then(|p| Netns::open_path(p).ok()) {
            if let Some(ns) = same(ns) {
                return Some(ns);
            }
        }
        let live = live.get_or_insert_with(crate::netns::live_netns_paths);
        same(Netns::open_path(live.get(&self.netns_inode)?).ok()?)
    }

    /// The endpoint's own link in its namespace (`h`): the recorded index (or, in records
    /// without one, the name), underlay's link group, and the recorded MAC. A pending record
    /// has no index yet: a link of that name is its own only if it carries no address but
    /// those leased to this endpoint in `ipam` (another network's endpoint of the container
    /// may have the name).
    pub(crate) async fn own_link(
        &self,
        h: &Handle,
        ipam: &ipam::Ipam,
        dhcp: bool,
    ) -> Result<Option<Link>> {
        let found = if let Some(name) = &self.handoff {
            // The runtime moved it away and may have moved it back (renamed to this name,
            // perhaps under another index): only this name, group and MAC are its own.
            h.link(name.as_str()).await
        } else if self.index != 0 {
            h.link(self.index).await
        } else {
            h.link(self.ifname.as_str()).await
        };
        let link = match found {
            Ok(l) if l.group == ENDPOINT_GROUP && (self.mac.is_none() || l.mac == self.mac) => l,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if self.index != 0 || self.pending.is_none() || self.handoff.is_some() {
            return Ok(Some(link));
        }
        if dhcp {
            // No IPAM lease tells a DHCP endpoint's link: its connect records the MAC before
            // making the link (checked above) and adds the address only after recording the
            // link's index, so its link is the one with that MAC and no address yet.
            if self.mac.is_none() {
                return Ok(None);
            }
            let carried = h.addresses(Some(link.index.into())).await?;
            let bare = carried.iter().all(|a| a.scope == "link");
            return Ok(bare.then_some(link));
        }
        let owner = Owner::new(self.container_id.as_str(), &self.ifname)?;
        let Some(lease) = ipam.lookup(&owner).await? else {
            // The link is made after the lease: without one, the link is another's.
            return Ok(None);
        };
        let carried = h.addresses(Some(link.index.into())).await?;
        let own = carried.iter().filter(|a| a.scope != "link").all(|a| {
            lease
                .addresses
                .iter()
                .any(|l| l.address.addr() == a.address.addr())
        });
        Ok(own.then_some(link))
    }
}

/// Adds the default routes through `gateways` out of link `index` as `mode` says, and
/// returns those it added (only they are the endpoint's: they go with its link).
pub(super) async fn add_default_routes(
    target: &Handle,
    mode: DefaultRoute,
    gateways: &[IpAddr],
    index: u32,
) -> Result<Vec<Route>> {
    if gateways.is_empty() || mode == DefaultRoute::None {
        return Ok(Vec::new());
    }
    // Auto: the IP versions with a default route already (another network's), in the main
    // table, where these go.
    let taken: Vec<bool> = if mode == DefaultRoute::Auto {
        target
            .routes(None)
            .await?
            .iter()
            .filter(|r| r.destination.prefix_len() == 0)
            .map(|r| r.destination.addr().is_ipv6())
            .collect()
    } else {
        Vec::new()
    };
    let mut added = Vec::new();
    for &gw in gateways {
        let mut r = Route::default_via(gw).dev(index);
        if let DefaultRoute::Metric(m) = mode {
            r = r.metric(m);
        } else if taken.contains(&gw.is_ipv6()) {
            continue;
        }
        match target.add_route(&r).await {
            Ok(()) => added.push(r),
            // Another network's connect added one meanwhile.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && mode == DefaultRoute::Auto => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "default route {r} in {}: one of that metric is there already (another network's?): give each network its own metric",
                        target.netns_label()
                    ),
                )
                .with_errno(libc::EEXIST))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(added)
}

/// Refuses a target handle that works in another namespace than the one being connected: the
/// link would be made there and recorded here, and a disconnect would then delete this
/// namespace's link of the same name (another container's).
fn check_target(netns: &Netns, target: &Handle) -> Result<()> {
    let theirs = target.netns();
    if theirs.inode() == netns.inode() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "the target handle works in {theirs} (namespace inode {}), not in {netns} (inode {}) that is being connected: pass a handle opened in {netns}, or none",
        theirs.inode(),
        netns.inode()
    )))
}

pub(super) fn check_step(spec: &EndpointSpec, step: ConnectStep) -> Result<()> {
    if spec.hang_after == Some(step) {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
    if spec.fail_after == Some(step) {
        return Err(Error::new(
            ErrorKind::Io,
            format!("injected failure after step {step:?}"),
        ));
    }
    Ok(())
}

/// The host route through the shim to an endpoint address.
pub(crate) fn host_route(ip: IpAddr, shim: &str) -> Route {
    Route::new(IpNet::from(ip)).dev(shim)
}

/// The temporary name of a prepared endpoint's link (see [`Network::prepare`]): `ulh` and 12
/// hex digits of a hash of network, container id and interface name, so that endpoints
/// prepared at once do not clash, and a retry of the same endpoint finds its own name.
pub(crate) fn handoff_name(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network
        .bytes()
        .chain([0])
        .chain(container_id.bytes())
        .chain([0])
        .chain(ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("ulh{:012x}", h & 0xffff_ffff_ffff)
}

/// Longest endpoint record file name: with its temporary name (`.{name}.tmp`) it stays well
/// inside `NAME_MAX` (255 bytes).
const MAX_FILE_NAME: usize = 200;

/// The record file name of `container_id`/`ifname` (both checked, see [`check_endpoint_key`]):
/// `ifname:container_id`, or, when that is longer than [`MAX_FILE_NAME`] bytes, the id's
/// first 100 characters (fewer, cut at a character boundary, if they do not fit) and a hash
/// of the whole id. A name whose interface name starts with `.` gets a leading `:` (no
/// interface name holds one), so that it is not taken for a hidden file (the lock file,
/// temporary files).
pub(super) fn endpoint_file_name(container_id: &str, ifname: &str) -> String {
    let lead = if ifname.starts_with('.') { ":" } else { "" };
    let name = format!("{lead}{ifname}:{container_id}");
    if name.len() <= MAX_FILE_NAME {
        return name;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // `~` and 16 hex digits follow the prefix.
    let room = MAX_FILE_NAME.saturating_sub(lead.len() + ifname.len() + 1 + 17);
    let mut cut = container_id
        .char_indices()
        .nth(100)
        .map_or(container_id.len(), |(i, _)| i)
        .min(room);
    while !container_id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{lead}{ifname}:{}~{h:016x}", &container_id[..cut])
}

/// Checks what names an endpoint (its record file and its lease) before it is used: the
/// container id as an IPAM owner's ([`Owner::new`]: 1 to 256 bytes of UTF-8 without
/// whitespace, control characters or `/`, so CNI's and Docker's ids all fit), the interface
/// name as an [`crate::IfName`].
pub(super) fn check_endpoint_key(container_id: &str, ifname: &str) -> Result<Owner> {
    Owner::new(container_id, ifname)
}

/// Disables IPv6 on interface `ifname` in `netns` (nothing to do on a kernel without IPv6).
/// Address conflicts on a network's wire after connect ([`Network::watch_conflicts`]).
pub struct ConflictWatch {
    net: Network,
    listener: crate::probe::ArpListener,
    /// The endpoints' IPv4 addresses and MACs, as last read from their records.
    owners: std::collections::HashMap<std::net::Ipv4Addr, (String, Option<MacAddr>)>,
}

impl std::fmt::Debug for ConflictWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConflictWatch")
            .field("network", &self.net.name())
            .finish()
    }
}

/// A conflict seen on the wire after connect: another machine using an endpoint's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConflict {
    /// The address and the MAC that used it.
    pub conflict: WireConflict,
    /// The endpoint holding the address (its container id).
    pub container_id: String,
    /// The endpoint's own MAC.
    pub endpoint_mac: Option<MacAddr>,
}

impl ConflictWatch {
    /// The next conflict, or None when `timeout` passes without one.
    pub async fn next(&mut self, timeout: std::time::Duration) -> Result<Option<EndpointConflict>> {
        let deadline = tokio::time::Instant::now() + timeout;
        while let Some((mac, sender, target, request)) = self.listener.next(deadline).await? {
            // Someone using an address, or probing for one (sender 0.0.0.0).
            let ip = if sender.is_unspecified() && request {
                target
            } else {
                sender
            };
            if ip.is_unspecified() || !self.net.pools().iter().any(|p| p.contains(IpAddr::V4(ip))) {
                continue;
            }
            let known = self.owners.get(&ip).cloned();
            let owner = match known {
                Some((_, Some(m))) if m == mac => continue,
                // Unknown address or another MAC: read the records again (endpoints change).
                _ => {
                    self.reload()?;
                    self.owners.get(&ip).cloned()
                }
            };
            if let Some((container_id, endpoint_mac)) = owner {
                if endpoint_mac != Some(mac) {
                    tracing::warn!(network = %self.net.name(), address = %ip, %mac, endpoint = %container_id, "address conflict on the wire");
                    return Ok(Some(EndpointConflict {
                        conflict: WireConflict {
                            ip: IpAddr::V4(ip),
                            mac: Some(mac),
                        },
                        container_id,
                        endpoint_mac,
                    }));
                }
            }
        }
        Ok(None)
    }

    fn reload(&mut self) -> Result<()> {
        self.owners = self
            .net
            .endpoints()?
            .into_iter()
            .flat_map(|ep| {
                let (id, mac) = (ep.container_id.clone(), ep.mac);
                ep.addresses
                    .into_iter()
                    .filter_map(move |a| match a.addr() {
                        IpAddr::V4(v4) => Some((v4, (id.clone(), mac))),
                        IpAddr::V6(_) => None,
                    })
            })
            .collect();
        Ok(())
    }
}

/// How many addresses that answer on the wire one connect quarantines before it gives up.
const MAX_CONFLICTS: usize = 8;

/// How one try of a connect ended.
enum Attempt {
    /// The endpoint is up.
    Done(Box<Endpoint>),
    /// These addresses of the lease are in use on the wire; nothing of the try is left but the
    /// lease.
    Taken(Vec<WireConflict>),
}

/// Sets the new link's duplicate address detection to `how` (as many probes, spread over
/// the same total time: the kernel has one interval; no random initial delay) and starts
/// listening for who answers.
async fn start_dad(
    netns: &Netns,
    link: &Link,
    how: ConflictDetection,
) -> Result<(DadWitness, ConflictDetection)> {
    let retrans = (how.total() / how.probes()).as_millis().max(1);
    let name = link.name.as_str();
    for (key, value) in [
        (format!("net/ipv6/conf/{name}/accept_dad"), "1".to_string()),
        (
            format!("net/ipv6/conf/{name}/dad_transmits"),
            how.probes().to_string(),
        ),
        (
            format!("net/ipv6/neigh/{name}/retrans_time_ms"),
            retrans.to_string(),
        ),
        (
            format!("net/ipv6/conf/{name}/router_solicitation_delay"),
            "0".to_string(),
        ),
    ] {
        netns
            .set_sysctl_async(&key, &value)
            .await
            .map_err(|e| e.context("setting up duplicate address detection"))?;
    }
    let witness = DadWitness::open(netns, link.index, link.mac).await?;
    Ok((witness, how))
}

/// Waits until the link's IPv6 addresses have been through duplicate address detection;
/// returns those that failed it (another node has them), with the MAC heard answering.
async fn wait_for_dad(
    target: &Handle,
    link: &Link,
    witness: &DadWitness,
    how: ConflictDetection,
) -> Result<Vec<WireConflict>> {
    let deadline = tokio::time::Instant::now() + how.total() + std::time::Duration::from_secs(2);
    loop {
        let states = target.dad_states(link.index).await?;
        let failed: Vec<std::net::Ipv6Addr> = states
            .iter()
            .filter(|(_, _, failed)| *failed)
            .filter_map(|(ip, _, _)| match ip {
                IpAddr::V6(a) if !a.is_unicast_link_local() => Some(*a),
                _ => None,
            })
            .collect();
        let tentative = states.iter().any(|(ip, tentative, failed)| {
            *tentative && !*failed && matches!(ip, IpAddr::V6(a) if !a.is_unicast_link_local())
        });
        if !tentative || tokio::time::Instant::now() >= deadline {
            if tentative {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "duplicate address detection on `{}` did not finish within {:?}: is IPv6 \
                         working in the namespace (net.ipv6.conf.{}.accept_dad)?",
                        link.name,
                        how.total() + std::time::Duration::from_secs(2),
                        link.name
                    ),
                ));
            }
            let macs = witness.heard(&failed).await?;
            return Ok(failed
                .into_iter()
                .zip(macs)
                .map(|(ip, mac)| WireConflict {
                    ip: IpAddr::V6(ip),
                    mac,
                })
                .collect());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Has the kernel announce the link's addresses: gratuitous ARP when it comes up, and with
/// `ipv6` an unsolicited NA for each IPv6 address once it is usable.
async fn kernel_announcements(netns: &Netns, ifname: &str, ipv6: bool) -> Result<()> {
    let mut keys = vec![format!("net/ipv4/conf/{ifname}/arp_notify")];
    if ipv6 {
        keys.push(format!("net/ipv6/conf/{ifname}/ndisc_notify"));
    }
    for key in keys {
        netns.set_sysctl_async(&key, "1").await.map_err(|e| {
            e.context("turning on the kernel's announcements (Announce::Kernel; Announce::Wire needs no sysctl)")
        })?;
    }
    Ok(())
}

pub(super) async fn disable_ipv6(netns: &Netns, ifname: &str) -> Result<()> {
    let key = format!("net/ipv6/conf/{ifname}/disable_ipv6");
    match netns.set_sysctl_async(&key, "1").await {
        Err(e)
            if e.kind() == ErrorKind::NotFound
                && !std::path::Path::new("/proc/sys/net/ipv6").exists() =>
        {
            Ok(())
        }
        Err(e) => Err(e.context(
            "disabling IPv6 on an endpoint without an IPv6 address (EndpointSpec::keep_ipv6(true) leaves it on)",
        )),
        Ok(()) => Ok(()),
    }
}

fn parse_endpoint(text: &str, network: &str, path: &std::path::Path) -> Result<Endpoint> {
    let corrupt = |why: &str| {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "endpoint file {} is unreadable: {why}; fix or remove it",
                path.display()
            ),
        )
    };
    let mut ep = Endpoint {
        network: network.to_string(),
        container_id: String::new(),
        ifname: String::new(),
        index: 0,
        mac: None,
        addresses: Vec::new(),
        routes: Vec::new(),
        netns: None,
        netns_inode: 0,
        handoff: None,
        pending: None,
        dhcp: None,
        dhcp_previous: None,
        sandbox: None,
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| corrupt(&format!("line `{line}` is not key=value")))?;
        match k {
            "container" => ep.container_id = v.to_string(),
            "ifname" => ep.ifname = v.to_string(),
            "handoff" => ep.handoff = Some(v.to_string()),
            "netns" => ep.netns = Some(PathBuf::from(v)),
            "inode" => ep.netns_inode = v.parse().map_err(|_| corrupt("bad inode"))?,
            "index" => ep.index = v.parse().map_err(|_| corrupt("bad index"))?,
            "mac" => ep.mac = Some(v.parse().map_err(|_| corrupt("bad mac"))?),
            "address" => ep
                .addresses
                .push(v.parse().map_err(|_| corrupt("bad address"))?),
            "gateway" => ep.routes.push(Route::default_via(
                v.parse().map_err(|_| corrupt("bad gateway"))?,
            )),
            // The metric of the route on the line before.
            "metric" => {
                let m = v.parse().map_err(|_| corrupt("bad metric"))?;
                let r = ep
                    .routes
                    .last_mut()
                    .ok_or_else(|| corrupt("metric before gateway"))?;
                r.metric = Some(m);
            }
            "dhcp" => {
                ep.dhcp = Some(crate::DhcpLease::parse(v).ok_or_else(|| corrupt("bad dhcp lease"))?)
            }
            "sandbox" => ep.sandbox = Some(PathBuf::from(v)),
            "dhcp_previous" => {
                ep.dhcp_previous = Some(v.parse().map_err(|_| corrupt("bad dhcp_previous"))?)
            }
            "pending" => {
                let (p, t) = v.split_once(':').ok_or_else(|| corrupt("bad pending"))?;
                ep.pending = Some((
                    p.parse().map_err(|_| corrupt("bad pid"))?,
                    t.parse().map_err(|_| corrupt("bad start"))?,
                ));
            }
            _ => {}
        }
    }
    if ep.container_id.is_empty() || ep.ifname.is_empty() {
        return Err(corrupt("container or ifname missing"));
    }
    Ok(ep)
}

/// Runs `op` (a create or bring-up of an endpoint's link) again while the kernel answers
/// EADDRINUSE, for up to 2 s: macvlan refuses two up links with one MAC on a parent, and a
/// link of the container's previous life (a MAC derived from its id, or fixed), in a namespace
/// the kernel is still tearing down, holds that MAC for a moment. Any other outcome, or the
/// same answer after 2 s (a live link really has the MAC), is returned.
pub(super) async fn waiting_for_mac<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut left = 40;
    loop {
        match op().await {
            Err(e) if e.errno() == Some(libc::EADDRINUSE) && left > 0 => {
                left -= 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_names() {
        assert_eq!("wire".parse::<Announce>().unwrap(), Announce::Wire);
        assert_eq!("segment".parse::<Announce>().unwrap(), Announce::Segment);
        assert_eq!("kernel".parse::<Announce>().unwrap(), Announce::Kernel);
        assert_eq!("off".parse::<Announce>().unwrap(), Announce::Off);
        let e = "loud".parse::<Announce>().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("loud"));
    }

    #[test]
    fn file_names_fit_and_never_split_a_character() {
        for unit in ["c", "é", "€", "𝄞"] {
            for n in 1..=256 / unit.len() {
                let id = unit.repeat(n);
                for ifname in ["eth0", "a-name-15-bytes", ".x"] {
                    let name = endpoint_file_name(&id, ifname);
                    assert!(name.len() <= MAX_FILE_NAME, "{unit} x {n}: {name}");
                    assert!(!name.starts_with('.') && !name.contains('/'), "{name}");
                }
            }
        }
        // Names as they always were: short ones whole, long ASCII ones cut after 100.
        assert_eq!(endpoint_file_name("c1", "eth0"), "eth0:c1");
        let long = "a".repeat(256);
        let name = endpoint_file_name(&long, "eth0");
        assert!(
            name.starts_with(&format!("eth0:{}~", "a".repeat(100))),
            "{name}"
        );
        assert_eq!(name.len(), 5 + 100 + 17);
        // Different long ids, different names.
        assert_ne!(
            endpoint_file_name(&"€".repeat(70), "eth0"),
            endpoint_file_name(&"€".repeat(71), "eth0")
        );
    }

    #[test]
    fn endpoint_keys_are_checked() {
        for (id, ifname) in [
            ("c", "i".repeat(201)),
            ("c", String::new()),
            ("c", "a/b".into()),
            ("", "eth0".into()),
            ("a\nb", "eth0".into()),
            ("a/b", "eth0".into()),
            ("a\0b", "eth0".into()),
            ("a b", "eth0".into()),
        ] {
            let e = check_endpoint_key(id, &ifname).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?} {ifname:?}");
        }
        let e = check_endpoint_key(&"x".repeat(257), "eth0").unwrap_err();
        assert!(
            e.to_string().contains("257 bytes") && e.to_string().contains("256"),
            "{e}"
        );
        check_endpoint_key(&"€".repeat(67), "eth0").unwrap();
        check_endpoint_key(&"0123456789abcdef".repeat(4), "eth0").unwrap();
        check_endpoint_key("k8s_pod-1.ns=x:y", "eth0").unwrap();
    }
}

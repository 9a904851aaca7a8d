//! Routes.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHop, RouteNextHopFlags,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::link::LinkRef;

/// The main routing table.
pub const TABLE_MAIN: u32 = 254;

/// Every table, in [`Handle::routes`] (iproute2's `table all`, the kernel's `RT_TABLE_UNSPEC`).
pub const TABLE_ALL: u32 = 0;

/// A route: what to add, or what the kernel reports.
///
/// ```
/// use underlay::Route;
/// let default = Route::default_via("172.22.16.1".parse().unwrap());
/// assert_eq!(default.destination.to_string(), "0.0.0.0/0");
/// let host = Route::new("172.22.16.240/32".parse().unwrap()).dev("macvlan0-host");
/// # let _ = host;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` / `::/0` for a default route).
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output link.
    pub dev: Option<LinkRef>,
    /// Preferred source address.
    pub source: Option<IpAddr>,
    /// Metric (priority); lower wins.
    pub metric: Option<u32>,
    /// Table (254 = main).
    pub table: u32,
    /// Scope: `link` routes need no gateway; chosen automatically when `None`.
    pub scope: Option<RouteScopeKind>,
    /// The gateway is on the link even if no address's subnet says so (`onlink`).
    pub onlink: bool,
    /// A multipath route's next hops (`nexthop via ... dev ... weight ...`); empty for a
    /// route with one gateway and/or device (`gateway`, `dev`).
    pub nexthops: Vec<NextHop>,
}

/// One next hop of a multipath route.
///
/// ```
/// use underlay::{NextHop, Route};
/// let ecmp = Route::new("10.20.0.0/16".parse().unwrap())
///     .nexthop(NextHop::via("10.1.0.1".parse().unwrap()).dev("eth0").weight(2))
///     .nexthop(NextHop::via("10.2.0.1".parse().unwrap()).dev("eth1"));
/// assert_eq!(
///     ecmp.to_string(),
///     "10.20.0.0/16 nexthop via 10.1.0.1 dev eth0 weight 2 nexthop via 10.2.0.1 dev eth1 weight 1"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NextHop {
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output link.
    pub dev: Option<LinkRef>,
    /// Its share of the traffic, 1..=256 (default 1).
    pub weight: u16,
    /// The gateway is on the link even if no address's subnet says so (`onlink`).
    pub onlink: bool,
}

impl NextHop {
    /// A next hop through `gateway`.
    pub fn via(gateway: IpAddr) -> NextHop {
        NextHop {
            gateway: Some(gateway),
            dev: None,
            weight: 1,
            onlink: false,
        }
    }

    /// A next hop straight out of `dev` (no gateway).
    pub fn dev_only(dev: impl Into<LinkRef>) -> NextHop {
        NextHop {
            gateway: None,
            dev: Some(dev.into()),
            weight: 1,
            onlink: false,
        }
    }

    /// Out of `dev`.
    pub fn dev(mut self, dev: impl Into<LinkRef>) -> NextHop {
        self.dev = Some(dev.into());
        self
    }

    /// With weight `weight` (1..=256).
    pub fn weight(mut self, weight: u16) -> NextHop {
        self.weight = weight;
        self
    }

    /// The gateway is on the link (`onlink`).
    pub fn onlink(mut self) -> NextHop {
        self.onlink = true;
        self
    }
}

impl std::fmt::Display for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nexthop")?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        write_dev(f, self.dev.as_ref())?;
        write!(f, " weight {}", self.weight)?;
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

fn write_dev(f: &mut std::fmt::Formatter<'_>, dev: Option<&LinkRef>) -> std::fmt::Result {
    match dev {
        Some(LinkRef::Name(n)) => write!(f, " dev {n}"),
        Some(LinkRef::Index(i)) => write!(f, " dev if{i}"),
        None => Ok(()),
    }
}

/// Route scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteScopeKind {
    /// Reachable through a gateway.
    Universe,
    /// Directly on the link.
    Link,
    /// On this host.
    Host,
}

impl Route {
    /// A route to `destination` (add `.via()` / `.dev()`).
    pub fn new(destination: IpNet) -> Route {
        Route {
            destination: destination.trunc(),
            gateway: None,
            dev: None,
            source: None,
            metric: None,
            table: TABLE_MAIN,
            scope: None,
            onlink: false,
            nexthops: Vec::new(),
        }
    }

    /// The default route through `gateway` (v4 or v6 by the gateway's family).
    pub fn default_via(gateway: IpAddr) -> Route {
        let dst = match gateway {
            IpAddr::V4(_) => "0.0.0.0/0".parse().expect("static"),
            IpAddr::V6(_) => "::/0".parse().expect("static"),
        };
        Route::new(dst).via(gateway)
    }

    /// Through `gateway`.
    pub fn via(mut self, gateway: IpAddr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    /// Out of `dev`.
    pub fn dev(mut self, dev: impl Into<LinkRef>) -> Route {
        self.dev = Some(dev.into());
        self
    }

    /// With preferred source `src`.
    pub fn source(mut self, src: IpAddr) -> Route {
        self.source = Some(src);
        self
    }

    /// With metric `metric`.
    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    /// In table `table`.
    pub fn table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// The gateway is on the link even if no address's subnet says so (`onlink`).
    pub fn onlink(mut self) -> Route {
        self.onlink = true;
        self
    }

    /// Adds a next hop: a route with next hops is multipath (give it no `via`/`dev` of its
    /// own).
    pub fn nexthop(mut self, hop: NextHop) -> Route {
        self.nexthops.push(hop);
        self
    }

    /// Checks the route makes sense before any request.
    pub fn validate(&self) -> Result<()> {
        let v4 = self.destination.addr().is_ipv4();
        for (what, ip) in [("gateway", self.gateway), ("source", self.source)] {
            if let Some(ip) = ip {
                if ip.is_ipv4() != v4 {
                    return Err(Error::invalid(format!(
                        "route to {}: {what} {ip} is not of the destination's IP version",
                        self.destination
                    )));
                }
            }
        }
        for hop in &self.nexthops {
            if let Some(g) = hop.gateway.filter(|g| g.is_ipv4() != v4) {
                return Err(Error::invalid(format!(
                    "route to {}: next hop {g} is not of the destination's IP version",
                    self.destination
                )));
            }
            if hop.gateway.is_none() && hop.dev.is_none() {
                return Err(Error::invalid(format!(
                    "route to {}: a next hop needs a gateway (`via`) or an output link (`dev`)",
                    self.destination
                )));
            }
            if !(1..=256).contains(&hop.weight) {
                return Err(Error::invalid(format!(
                    "route to {}: next hop weight {} is out of range: use 1..256",
                    self.destination, hop.weight
                )));
            }
        }
        if !self.nexthops.is_empty() && (self.gateway.is_some() || self.dev.is_some()) {
            return Err(Error::invalid(format!(
                "route to {}: give either next hops or one gateway/device, not both",
                self.destination
            )));
        }
        if self.gateway.is_none() && self.dev.is_none() && self.nexthops.is_empty() {
            return Err(Error::invalid(format!(
                "route to {} needs a gateway (`via`) or an output link (`dev`)",
                self.destination
            )));
        }
        if self.table == 0 {
            return Err(Error::invalid(
                "route table 0 is invalid: use 254 (main) or your own table",
            ));
        }
        Ok(())
    }
}

/// In iproute2's words and order (`ip route show`), so `ip route add` takes the text:
/// `10.7.0.0/24 via 10.1.0.1 dev eth0 table 100 scope link src 10.1.0.2 metric 7 onlink`, next
/// hops last (`nexthop via 10.1.0.1 dev eth0 weight 1 ...`). A device
/// known only by its index (as read back) is `if4`, as iproute2 writes an index it cannot name.
impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        write_dev(f, self.dev.as_ref())?;
        if self.table != TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        match self.scope {
            Some(RouteScopeKind::Link) => write!(f, " scope link")?,
            Some(RouteScopeKind::Host) => write!(f, " scope host")?,
            Some(RouteScopeKind::Universe) | None => {}
        }
        if let Some(s) = self.source {
            write!(f, " src {s}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        // Last: iproute2 reads everything after `nexthop` as next hops.
        for hop in &self.nexthops {
            write!(f, " {hop}")?;
        }
        Ok(())
    }
}

impl Handle {
    /// Adds `route`; fails with [`ErrorKind::AlreadyExists`] if it exists.
    pub async fn add_route(&self, route: &Route) -> Result<()> {
        self.route_op(route, NLM_F_CREATE | NLM_F_EXCL).await
    }

    /// Adds or replaces `route`.
    pub async fn replace_route(&self, route: &Route) -> Result<()> {
        self.route_op(route, NLM_F_CREATE | NLM_F_REPLACE).await
    }

    /// Deletes `route` (matched on destination, table, and gateway/dev/metric where given).
    pub async fn delete_route(&self, route: &Route) -> Result<()> {
        let msg = self.route_message(route, true).await?;
        self.request(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            "delete route",
            &route.to_string(),
        )
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!("route {route} not found in {}", self.netns_label()))
                    .with_errno(libc::ESRCH)
            } else {
                e
            }
        })?;
        Ok(())
    }

    /// The unicast routes of one table in this namespace, IPv4 and IPv6: the main table when
    /// `None` (as `ip route` shows), every table with [`TABLE_ALL`] (`ip route show table all`).
    pub async fn routes(&self, table: Option<u32>) -> Result<Vec<Route>> {
        let table = table.unwrap_or(TABLE_MAIN);
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let replies = self
                .dump(RouteNetlinkMessage::GetRoute(msg), "list", "routes")
                .await?;
            out.extend(replies.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(m) => parse_route(m),
                _ => None,
            }));
        }
        if table != TABLE_ALL {
            out.retain(|r| r.table == table);
        }
        Ok(out)
    }

    async fn route_op(&self, route: &Route, flags: u16) -> Result<()> {
        route.validate()?;
        let msg = self.route_message(route, false).await?;
        self.request(RouteNetlinkMessage::NewRoute(msg), flags, "add route", &route.to_string())
            .await
            .map_err(|e| match e.errno() {
                Some(libc::EEXIST) => Error::new(
                    ErrorKind::AlreadyExists,
                    format!("route {route} already exists in {}: use replace_route to change it", self.netns_label()),
                )
                .with_errno(libc::EEXIST),
                Some(libc::ENETUNREACH) => Error::invalid(format!(
                    "route {route} in {}: gateway {} is not reachable: add an address in its subnet on the link first",
                    self.netns_label(),
                    route.gateway.map(|g| g.to_string()).unwrap_or_default()
                ))
                .with_errno(libc::ENETUNREACH),
                _ => e,
            })?;
        Ok(())
    }

    async fn route_message(&self, route: &Route, delete: bool) -> Result<RouteMessage> {
        let oif = match &route.dev {
            Some(d) => Some(self.link_index(d.clone()).await?),
            None => None,
        };
        let mut hops = Vec::with_capacity(route.nexthops.len());
        for hop in &route.nexthops {
            let mut h = RouteNextHop::default();
            if let Some(d) = &hop.dev {
                h.interface_index = self.link_index(d.clone()).await?;
            }
            // The kernel keeps weight - 1 (`rtnh_hops`).
            h.hops = u8::try_from(hop.weight.saturating_sub(1)).unwrap_or(u8::MAX);
            if hop.onlink {
                h.flags |= RouteNextHopFlags::Onlink;
            }
            if let Some(g) = hop.gateway {
                h.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::from(g)));
            }
            hops.push(h);
        }
        let mut msg = RouteMessage::default();
        let header = &mut msg.header;
        header.address_family = if route.destination.addr().is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        header.destination_prefix_length = route.destination.prefix_len();
        header.table = if route.table < 256 {
            route.table as u8
        } else {
            252
        };
        if !delete {
            header.protocol = RouteProtocol::Static;
            header.kind = RouteType::Unicast;
        }
        header.scope = match route.scope {
            Some(RouteScopeKind::Link) => RouteScope::Link,
            Some(RouteScopeKind::Host) => RouteScope::Host,
            Some(RouteScopeKind::Universe) => RouteScope::Universe,
            None if delete => RouteScope::NoWhere,
            None if route.gateway.is_none()
                && route.nexthops.iter().all(|h| h.gateway.is_none()) =>
            {
                RouteScope::Link
            }
            None => RouteScope::Universe,
        };
        let a = &mut msg.attributes;
        if route.destination.prefix_len() > 0 {
            a.push(RouteAttribute::Destination(RouteAddress::from(
                route.destination.addr(),
            )));
        }
        if let Some(g) = route.gateway {
            a.push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        if let Some(i) = oif {
            a.push(RouteAttribute::Oif(i));
        }
        if let Some(s) = route.source {
            a.push(RouteAttribute::PrefSource(RouteAddress::from(s)));
        }
        if let Some(m) = route.metric {
            a.push(RouteAttribute::Priority(m));
        }
        if route.table >= 256 {
            a.push(RouteAttribute::Table(route.table));
        }
        if !hops.is_empty() {
            a.push(RouteAttribute::MultiPath(hops));
        }
        if route.onlink {
            msg.header.flags |= RouteFlags::Onlink;
        }
        Ok(msg)
    }
}

fn ip_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

fn next_hop_of(h: RouteNextHop) -> NextHop {
    NextHop {
        gateway: h.attributes.into_iter().find_map(|a| match a {
            RouteAttribute::Gateway(g) => ip_of(g),
            _ => None,
        }),
        dev: (h.interface_index != 0).then_some(LinkRef::Index(h.interface_index)),
        weight: u16::from(h.hops) + 1,
        onlink: h.flags.contains(RouteNextHopFlags::Onlink),
    }
}

fn parse_route(m: RouteMessage) -> Option<Route> {
    if m.header.kind != RouteType::Unicast {
        return None;
    }
    let v4 = m.header.address_family == AddressFamily::Inet;
    let mut dst: Option<IpAddr> = None;
    let mut r = Route::new(if v4 {
        "0.0.0.0/0".parse().ok()?
    } else {
        "::/0".parse().ok()?
    });
    r.table = u32::from(m.header.table);
    r.onlink = m.header.flags.contains(RouteFlags::Onlink);
    r.scope = Some(match m.header.scope {
        RouteScope::Link => RouteScopeKind::Link,
        RouteScope::Host => RouteScopeKind::Host,
        _ => RouteScopeKind::Universe,
    });
    for a in m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
            RouteAttribute::Oif(i) => r.dev = Some(LinkRef::Index(i)),
            RouteAttribute::PrefSource(s) => r.source = ip_of(s),
            RouteAttribute::Priority(p) => r.metric = Some(p),
            RouteAttribute::Table(t) => r.table = t,
            RouteAttribute::MultiPath(hops) => {
                r.nexthops = hops.into_iter().map(next_hop_of).collect();
            }
            _ => {}
        }
    }
    if let Some(d) = dst {
        r.destination = IpNet::new(d, m.header.destination_prefix_length).ok()?;
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Route::default_via("10.0.0.1".parse().unwrap())
            .validate()
            .is_ok());
        let mixed = Route::new("10.0.0.0/8".parse().unwrap()).via("fe80::1".parse().unwrap());
        assert_eq!(
            mixed.validate().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let nowhere = Route::new("10.0.0.0/8".parse().unwrap());
        assert!(nowhere
            .validate()
            .unwrap_err()
            .to_string()
            .contains("needs a gateway"));
        assert!(Route::new("10.0.0.0/8".parse().unwrap())
            .dev("x")
            .table(0)
            .validate()
            .is_err());
    }

    #[test]
    fn display_in_iproute2_words() {
        let r = Route::new("10.7.0.0/24".parse().unwrap())
            .via("10.1.0.1".parse().unwrap())
            .dev("eth0")
            .source("10.1.0.2".parse().unwrap())
            .metric(7)
            .table(100);
        assert_eq!(
            r.to_string(),
            "10.7.0.0/24 via 10.1.0.1 dev eth0 table 100 src 10.1.0.2 metric 7"
        );
        let mut r = Route::new("10.3.0.7/32".parse().unwrap()).dev(4);
        r.scope = Some(RouteScopeKind::Link);
        assert_eq!(r.to_string(), "10.3.0.7/32 dev if4 scope link");
        r.scope = Some(RouteScopeKind::Universe);
        assert_eq!(r.to_string(), "10.3.0.7/32 dev if4");
    }

    #[test]
    fn destination_is_truncated() {
        let r = Route::new("10.1.2.3/8".parse().unwrap());
        assert_eq!(r.destination.to_string(), "10.0.0.0/8");
        assert_eq!(
            Route::default_via("fe80::1".parse().unwrap())
                .destination
                .to_string(),
            "::/0"
        );
    }
}

//! The network driver: Docker's networks and endpoints as underlay's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use underlay::ipam::{Pool, Reserved};
use underlay::network::{EndpointSpec, HostAccess, MacPolicy, Network, NetworkSpec};
use underlay::{Error, ErrorKind};

use crate::protocol::{self, IpamData};
use crate::{answer, Answer, Failure, Plugin};

/// The record key of every endpoint's interface (Docker names it inside the container itself).
pub(crate) const ENDPOINT_IFNAME: &str = "eth0";

/// Docker's macvlan/ipvlan driver options, passed to [`NetworkSpec::from_docker`].
const DOCKER_OPTIONS: [&str; 6] = [
    "parent",
    "macvlan_mode",
    "ipvlan_mode",
    "ipvlan_flag",
    "mtu",
    "com.docker.network.driver.mtu",
];

/// underlay's own options.
const HOST_ACCESS: &str = "underlay.host_access";
const DRIVER: &str = "underlay.driver";
/// `-o underlay.dhcp=on` (or `tries=N,wait_ms=W,subnet=S`): addresses from the LAN's DHCP
/// server, with `--ipam-driver null`.
pub(crate) const DHCP: &str = "underlay.dhcp";
const OWN_OPTIONS: [&str; 3] = [HOST_ACCESS, DRIVER, DHCP];

/// The address space of Docker's null IPAM driver, and its one pool.
const NULL_SPACE: &str = "null";
const NULL_POOL: &str = "0.0.0.0/0";

/// What `-o underlay.host_access=...` asks for.
enum HostAccessOption {
    Off,
    On,
    Address(IpAddr),
}

fn host_access_option(network: &str, value: Option<&str>) -> Result<HostAccessOption, Error> {
    match value {
        None | Some("false" | "off" | "0" | "") => Ok(HostAccessOption::Off),
        Some("true" | "on" | "1") => Ok(HostAccessOption::On),
        Some(v) => v.parse().map(HostAccessOption::Address).map_err(|_| {
            Error::invalid(format!(
                "network `{network}`: option {HOST_ACCESS}=`{}` is neither on/off nor an IP address: give the host's address in the network (-o {HOST_ACCESS}=10.0.0.2) or on",
                Error::show_input(v)
            ))
        }),
    }
}

/// A Docker pool description (`CreateNetwork`'s IPv4Data/IPv6Data entry) as an underlay pool:
/// subnet, gateway, aux addresses reserved.
fn pool_of(network: &str, data: &IpamData, v6: bool) -> Result<Pool, Error> {
    let subnet: IpNet = data.pool.parse().map_err(|_| {
        Error::invalid(format!(
            "network `{network}`: pool `{}` is not a CIDR subnet",
            Error::show_input(&data.pool)
        ))
    })?;
    if matches!(subnet, IpNet::V6(_)) != v6 {
        return Err(Error::invalid(format!(
            "network `{network}`: pool {subnet} is given as {} data",
            if v6 { "IPv6" } else { "IPv4" }
        )));
    }
    let mut b = Pool::builder(subnet);
    if data.gateway.is_empty() {
        b = b.no_gateway();
    } else {
        let gw = parse_address(&data.gateway).ok_or_else(|| {
            Error::invalid(format!(
                "network `{network}`: gateway `{}` is not an address",
                Error::show_input(&data.gateway)
            ))
        })?;
        b = b.gateway(gw);
    }
    for (name, addr) in data.aux_addresses.iter().flatten() {
        let ip = parse_address(addr).ok_or_else(|| {
            Error::invalid(format!(
                "network `{network}`: aux address {}=`{}` is not an address",
                Error::show_input(name),
                Error::show_input(addr)
            ))
        })?;
        b = b.reserve(Reserved::new(name.clone(), ip)?);
    }
    b.build()
}

/// Refuses what a DHCP network (`-o underlay.dhcp`) cannot have: pools from an IPAM driver
/// (the server chooses the addresses: `--ipam-driver null`), IPv6 (no DHCPv6 yet), and
/// `--internal` (no wire, so no server).
fn check_dhcp_network(
    id: &str,
    ipv4_data: &[IpamData],
    ipv6_data: &[IpamData],
    internal: bool,
    ipv6: bool,
) -> Result<(), Error> {
    if internal {
        return Err(Error::invalid(format!(
            "network {id}: -o {DHCP} takes addresses from a DHCP server on the parent's LAN, and an --internal network has no parent: drop --internal (or {DHCP})"
        )));
    }
    if let Some(d) = ipv4_data
        .iter()
        .find(|d| d.address_space != NULL_SPACE || d.pool != NULL_POOL)
    {
        return Err(Error::invalid(format!(
            "network {id}: -o {DHCP} takes the addresses from the LAN's DHCP server, but the IPAM driver gave pool {} (address space {}): create the network with --ipam-driver null and no --subnet, --ip-range or --gateway (restrict the server's addresses with -o {DHCP}=subnet=A.B.C.D/L)",
            Error::show_input(&d.pool),
            Error::show_input(&d.address_space)
        )));
    }
    if !ipv6_data.is_empty() || ipv6 {
        return Err(Error::invalid(format!(
            "network {id}: -o {DHCP} gives IPv4 addresses only (no DHCPv6 yet): drop --ipv6"
        )));
    }
    Ok(())
}

/// `10.0.0.1/24` or `10.0.0.1`.
pub(crate) fn parse_address(s: &str) -> Option<IpAddr> {
    s.parse::<IpNet>()
        .map(|n| n.addr())
        .or_else(|_| s.parse::<IpAddr>())
        .ok()
}

impl Plugin {
    /// The network of Docker id `id`.
    async fn network(&self, id: &str) -> Result<Network, Failure> {
        self.nets.get(id).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Failure::Library(Error::not_found(format!(
                    "network {} is not one of underlay's: it was not created through this plugin, or its state directory was lost (remove and create the network again)",
                    Error::show_input(id)
                )))
            } else {
                Failure::Library(e)
            }
        })
    }

    pub(crate) async fn create_network(&self, req: protocol::CreateNetwork) -> Answer {
        let id = req.network_id.as_str();
        let opts = req.options.unwrap_or_default();
        let generic: BTreeMap<String, String> = opts.generic.unwrap_or_default();
        if let Some(k) = generic
            .keys()
            .find(|k| k.starts_with("underlay.") && !OWN_OPTIONS.contains(&k.as_str()))
        {
            return Err(Error::invalid(format!(
                "network {id}: option `{}` is unknown: underlay's options are {}",
                Error::show_input(k),
                OWN_OPTIONS.join(", ")
            ))
            .into());
        }
        // Other drivers' and the user's own keys are ignored, as Docker's macvlan does.
        let mut pairs: Vec<(&str, &str)> = generic
            .iter()
            .filter(|(k, _)| DOCKER_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let dhcp = generic
            .get(DHCP)
            .map(String::as_str)
            .filter(|v| !matches!(*v, "off" | "false" | "0"));
        let null_ipam = req
            .ipv4_data
            .iter()
            .flatten()
            .any(|d| d.address_space == NULL_SPACE);
        if let Some(how) = dhcp {
            check_dhcp_network(
                id,
                req.ipv4_data.as_deref().unwrap_or_default(),
                req.ipv6_data.as_deref().unwrap_or_default(),
                opts.internal == Some(true),
                opts.enable_ipv6 == Some(true),
            )?;
            pairs.push(("dhcp", how));
        } else if null_ipam {
            return Err(Error::invalid(format!(
                "network {id}: --ipam-driver null gives the endpoints no addresses: add -o {DHCP}=on to take them from the LAN's DHCP server, or use --ipam-driver underlay with --subnet"
            ))
            .into());
        }
        let driver = match generic.get(DRIVER).map(String::as_str) {
            Some(d @ ("macvlan" | "ipvlan")) => d,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "network {id}: {DRIVER}=`{}` is unknown: use macvlan or ipvlan",
                    Error::show_input(other)
                ))
                .into())
            }
            None if generic.contains_key("ipvlan_mode") || generic.contains_key("ipvlan_flag") => {
                "ipvlan"
            }
            None => "macvlan",
        };
        if opts.internal == Some(true) && generic.contains_key("parent") {
            return Err(Error::invalid(format!(
                "network {id}: --internal with -o parent: an internal network has no parent (underlay makes an isolated one); drop one of them"
            ))
            .into());
        }
        let host_access = host_access_option(id, generic.get(HOST_ACCESS).map(String::as_str))?;
        let mut spec = NetworkSpec::from_docker(id, driver, &pairs)?;
        if dhcp.is_none() {
            for d in req.ipv4_data.iter().flatten() {
                spec = spec.pool(pool_of(id, d, false)?);
            }
            for d in req.ipv6_data.iter().flatten() {
                spec = spec.pool(pool_of(id, d, true)?);
            }
        }
        let net = self.nets.create(spec).await?;
        let shim = match host_access {
            HostAccessOption::Off => None,
            HostAccessOption::On => Some(HostAccess::new()),
            HostAccessOption::Address(ip) => Some(HostAccess::new().address(ip)),
        };
        if let Some(shim) = shim {
            if let Err(e) = net.enable_host_access(shim).await {
                let undo = self.nets.delete(id).await.err();
                let mut all = vec![e];
                all.extend(undo);
                return Err(
                    Error::multiple(format!("network {id}: enabling host access"), all).into(),
                );
            }
        }
        answer(protocol::Empty {})
    }

    pub(crate) async fn delete_network(&self, req: protocol::NetworkRef) -> Answer {
        match self.nets.delete(&req.network_id).await {
            // Deleted earlier (a retry after a lost answer).
            Err(e) if e.kind() == ErrorKind::NotFound => answer(protocol::Empty {}),
            Err(e) => Err(e.into()),
            Ok(()) => answer(protocol::Empty {}),
        }
    }

    pub(crate) async fn create_endpoint(&self, req: protocol::CreateEndpoint) -> Answer {
        let net = self.network(&req.network_id).await?;
        let iface = req.interface.unwrap_or_default();
        if net.dhcp().is_some() {
            return self
                .create_dhcp_endpoint(&net, &req.endpoint_id, iface)
                .await;
        }
        let mut spec = EndpointSpec::new(req.endpoint_id.clone()).ifname(ENDPOINT_IFNAME);
        for (what, a) in [
            ("Address", &iface.address),
            ("AddressIPv6", &iface.address_ipv6),
        ] {
            if a.is_empty() {
                continue;
            }
            let ip = parse_address(a).ok_or_else(|| {
                Failure::BadRequest(format!(
                    "CreateEndpoint: Interface.{what} `{}` is not an address",
                    Error::show_input(a)
                ))
            })?;
            spec = spec.ip(ip);
        }
        let given = !(iface.address.is_empty() && iface.address_ipv6.is_empty());
        // dockerd gives every endpoint a MAC (the IPAM driver requires one: its own random
        // one without --mac-address); an ipvlan link has its parent's, so there it is the
        // lease's key only.
        if !iface.mac_address.is_empty() && net.driver().name() != "ipvlan" {
            let mac = iface.mac_address.parse()?;
            spec = spec.mac(MacPolicy::Fixed(mac));
        }
        let ep = net.prepare(spec).await?;
        if given {
            return answer(protocol::CreateEndpointResponse::default());
        }
        // Docker gave no address (no IPAM driver): the network's pools chose them.
        let pick = |v6: bool| {
            ep.addresses
                .iter()
                .find(|a| matches!(a, IpNet::V6(_)) == v6)
                .map(|a| a.to_string())
                .unwrap_or_default()
        };
        answer(protocol::CreateEndpointResponse {
            interface: Some(protocol::Interface {
                address: pick(false),
                address_ipv6: pick(true),
                mac_address: ep.mac.map(|m| m.to_string()).unwrap_or_default(),
            }),
        })
    }

    /// CreateEndpoint on a DHCP network: the link prepared and its lease taken from the
    /// server (on the link, in dockerd's namespace), answered as the interface's address (and
    /// MAC, unless dockerd gave one).
    async fn create_dhcp_endpoint(
        &self,
        net: &Network,
        endpoint_id: &str,
        iface: protocol::Interface,
    ) -> Answer {
        for a in [&iface.address, &iface.address_ipv6] {
            if !a.is_empty() {
                return Err(Error::invalid(format!(
                    "endpoint {} of network {}: the network takes its addresses from the LAN's DHCP server (-o {DHCP}), a static address ({}) cannot be given: drop --ip/--ip6 (reserve the address for the container's --mac-address on the DHCP server instead)",
                    Error::show_input(endpoint_id),
                    net.name(),
                    Error::show_input(a)
                ))
                .into());
            }
        }
        let mut spec = EndpointSpec::new(endpoint_id).ifname(ENDPOINT_IFNAME);
        let given_mac = !iface.mac_address.is_empty();
        if given_mac && net.driver().name() != "ipvlan" {
            spec = spec.mac(MacPolicy::Fixed(iface.mac_address.parse()?));
        }
        let ep = net.prepare(spec).await?;
        self.dhcp_wake.notify_one();
        let address = ep
            .dhcp
            .as_ref()
            .map(|l| l.address.to_string())
            .unwrap_or_default();
        answer(protocol::CreateEndpointResponse {
            interface: Some(protocol::Interface {
                address,
                address_ipv6: String::new(),
                // dockerd refuses a MAC in the answer when it gave one ("driver modified
                // interface MAC address").
                mac_address: match ep.mac {
                    Some(m) if !given_mac => m.to_string(),
                    _ => String::new(),
                },
            }),
        })
    }

    pub(crate) async fn delete_endpoint(&self, req: protocol::EndpointRef) -> Answer {
        let net = match self.nets.get(&req.network_id).await {
            Ok(n) => n,
            // The network went (its endpoints with it).
            Err(e) if e.kind() == ErrorKind::NotFound => return answer(protocol::Empty {}),
            Err(e) => return Err(e.into()),
        };
        net.disconnect(&req.endpoint_id, ENDPOINT_IFNAME).await?;
        answer(protocol::Empty {})
    }

    async fn endpoint_of(
        &self,
        network: &str,
        endpoint: &str,
    ) -> Result<(Network, underlay::network::Endpoint), Failure> {
        let net = self.network(network).await?;
        let ep = net.endpoint(endpoint, ENDPOINT_IFNAME)?.ok_or_else(|| {
            Error::not_found(format!(
                "endpoint {} of network {} is unknown: CreateEndpoint it first",
                Error::show_input(endpoint),
                Error::show_input(network)
            ))
        })?;
        Ok((net, ep))
    }

    pub(crate) async fn join(&self, req: protocol::Join) -> Answer {
        let (net, ep) = self.endpoint_of(&req.network_id, &req.endpoint_id).await?;
        let Some(src) = ep.handoff.clone() else {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "endpoint {} was connected, not prepared for Docker: DeleteEndpoint it and create it again",
                    req.endpoint_id
                ),
            )
            .into());
        };
        if net.dhcp().is_some() && !req.sandbox_key.is_empty() {
            // Where dockerd moves the link: the renewer and the release look for it there.
            net.set_sandbox(&req.endpoint_id, ENDPOINT_IFNAME, &req.sandbox_key)
                .await?;
        }
        // The gateways of the pools the endpoint has an address in (none on an internal
        // network: nothing lies beyond it); on a DHCP network the server's router.
        let gateway = |v6: bool| -> String {
            if net.parent().is_none() {
                return String::new();
            }
            if net.dhcp().is_some() {
                return match (&ep.dhcp, v6) {
                    (Some(l), false) => l.router.map(|r| r.to_string()).unwrap_or_default(),
                    _ => String::new(),
                };
            }
            net.pools()
                .iter()
                .filter(|p| p.is_ipv6() == v6)
                .filter(|p| ep.addresses.iter().any(|a| p.contains(a.addr())))
                .find_map(|p| p.gateway())
                .map(|g| g.to_string())
                .unwrap_or_default()
        };
        answer(protocol::JoinResponse {
            interface_name: protocol::InterfaceName {
                src_name: src,
                dst_prefix: "eth",
            },
            gateway: gateway(false),
            gateway_ipv6: gateway(true),
            static_routes: Vec::new(),
            disable_gateway_service: false,
        })
    }

    pub(crate) async fn endpoint_oper_info(&self, req: protocol::EndpointRef) -> Answer {
        let (net, ep) = self.endpoint_of(&req.network_id, &req.endpoint_id).await?;
        let mut value = BTreeMap::new();
        value.insert("underlay.parent".into(), net.lower().to_string());
        value.insert("underlay.driver".into(), net.driver().name().to_string());
        if let Some(h) = &ep.handoff {
            value.insert("underlay.link".into(), h.clone());
        }
        if let Some(m) = ep.mac {
            value.insert("underlay.mac".into(), m.to_string());
        }
        if let Some(l) = &ep.dhcp {
            value.insert("underlay.dhcp.address".into(), l.address.to_string());
            value.insert("underlay.dhcp.server".into(), l.server.to_string());
        }
        answer(protocol::OperInfo { value })
    }
}

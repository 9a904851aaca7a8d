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
const OWN_OPTIONS: [&str; 2] = [HOST_ACCESS, DRIVER];

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
        let pairs: Vec<(&str, &str)> = generic
            .iter()
            .filter(|(k, _)| DOCKER_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
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
        for d in req.ipv4_data.iter().flatten() {
            spec = spec.pool(pool_of(id, d, false)?);
        }
        for d in req.ipv6_data.iter().flatten() {
            spec = spec.pool(pool_of(id, d, true)?);
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
        // The gateways of the pools the endpoint has an address in (none on an internal
        // network: nothing lies beyond it).
        let gateway = |v6: bool| -> String {
            if net.parent().is_none() {
                return String::new();
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
        answer(protocol::OperInfo { value })
    }
}

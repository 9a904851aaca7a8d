//! DHCP networks (`"ipam": {"type": "dhcp"}` under `"type": "underlay"`), served in-process:
//! the library's DHCP client gets the lease on the container's own link during ADD, DEL
//! releases it (DHCPRELEASE), the `dhcp-renewer` daemon ([`crate::renewer`]) keeps it. No
//! daemon is needed to get an address, unlike the reference dhcp plugin. See docs/cni.md.

use std::net::IpAddr;

use ipnet::IpNet;
use underlay::network::{DefaultRoute, EndpointSpec, MacPolicy, Networks};
use underlay::Handle;

use crate::config::NetConf;
use crate::plugin::{
    check_endpoint, connect, gc_network, lib_error, make_dirs, open_netns, parent_status,
    prev_result, to_json, Call,
};
use crate::protocol::{code, CniError, CniResult, Dns, Interface, IpConfig, RouteConf};

/// The networks of the config's state directory, with the library's local store under it
/// (where a DHCP network's placeholder IPAM network lives): the store the renewer opens too.
pub(crate) async fn networks(conf: &NetConf) -> Result<Networks, CniError> {
    let dir = conf.state_dir();
    make_dirs(&dir)?;
    let host = Handle::new().map_err(|e| lib_error("opening netlink in the host namespace", e))?;
    Networks::open(&host, &dir)
        .await
        .map_err(|e| lib_error("opening the state directory", e))
}

/// Checks the DHCP settings, saying once that the reference plugin's socket is not used.
fn checked_spec(conf: &NetConf) -> Result<underlay::network::NetworkSpec, CniError> {
    let spec = conf.network_spec()?;
    if let Some(sock) = conf
        .ipam
        .as_ref()
        .and_then(|i| i.daemon_socket_path.as_deref())
    {
        eprintln!(
            "underlay: ipam `daemonSocketPath` ({sock}) ignored: underlay serves DHCP in-process; renewals come from `underlay dhcp-renewer`"
        );
    }
    Ok(spec)
}

pub(crate) async fn add(
    conf: &NetConf,
    call: &Call,
    version: &str,
) -> Result<Option<serde_json::Value>, CniError> {
    let spec = checked_spec(conf)?;
    let ips = conf.requested_ips(&call.args)?;
    if !ips.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "network `{}` takes its addresses from DHCP: a requested address ({}) cannot be given; reserve one for the container on the server",
                conf.name,
                ips.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mac = conf.requested_mac(&call.args)?;
    let chained = conf
        .prev_result
        .is_some()
        .then(|| prev_result(conf))
        .transpose()?;
    let netns_path = call.netns.clone().expect("ADD has CNI_NETNS");
    let netns = open_netns(&netns_path)?;
    let nets = networks(conf).await?;
    let mut ep_spec = EndpointSpec::new(call.container_id.as_str())
        .ifname(call.ifname.as_str())
        .announce_to(conf.announce()?)
        .default_route(DefaultRoute::Auto);
    if let Some(h) = conf.dhcp_hostname(&call.args) {
        ep_spec = ep_spec.hostname(h);
    }
    if let Some(m) = mac {
        ep_spec = ep_spec.mac(MacPolicy::Fixed(m));
    }
    let (_net, ep) = connect(&nets, conf, call, &spec, &ep_spec, &netns).await?;
    let lease = ep.dhcp.clone().ok_or_else(|| {
        CniError::new(
            code::INTERNAL,
            format!(
                "`{}`/{} connected without a DHCP lease (a bug)",
                call.container_id, call.ifname
            ),
        )
    })?;
    let router = lease.router.map(IpAddr::V4);
    let routes = ep
        .routes
        .iter()
        .filter(|r| r.destination.prefix_len() == 0)
        .map(|r| RouteConf {
            dst: r.destination,
            gw: r.gateway.or(router),
        })
        .collect();
    // As the reference macvlan: the config's `dns` wins over the IPAM's (here the server's).
    let dns = match &conf.dns {
        Some(d) => d.clone(),
        None => Dns {
            nameservers: lease.dns_servers.iter().map(|a| a.to_string()).collect(),
            domain: lease.domain.clone(),
            ..Dns::default()
        },
    };
    let result = CniResult {
        cni_version: String::new(),
        interfaces: vec![Interface {
            name: ep.ifname.clone(),
            mac: ep.mac.map(|m| m.to_string()).unwrap_or_default(),
            sandbox: netns_path,
        }],
        ips: vec![IpConfig {
            version: None,
            interface: Some(0),
            address: IpNet::V4(lease.address),
            gateway: router,
        }],
        routes,
        dns,
    };
    let result = match chained {
        Some(prev) => result.after(prev),
        None => result,
    };
    Ok(Some(to_json(&result.for_version(version))?))
}

/// DEL: the library's disconnect sends DHCPRELEASE before the link goes.
pub(crate) async fn del(
    conf: &NetConf,
    call: &Call,
) -> Result<Option<serde_json::Value>, CniError> {
    checked_spec(conf)?;
    crate::plugin::disconnect(&networks(conf).await?, conf, call).await?;
    Ok(None)
}

/// CHECK: the endpoint still holds its lease, for `prevResult`'s address, and the interface
/// has it (with its routes).
pub(crate) async fn check(
    conf: &NetConf,
    call: &Call,
) -> Result<Option<serde_json::Value>, CniError> {
    let spec = checked_spec(conf)?;
    let prev = prev_result(conf)?;
    let nets = networks(conf).await?;
    let net = crate::plugin::network_to_check(&nets, conf, Some(spec)).await?;
    if let Some(ep) = net
        .endpoint(&call.container_id, &call.ifname)
        .map_err(|e| lib_error("reading the endpoint", e))?
    {
        let failed = |what: String| {
            CniError::new(
                code::INTERNAL,
                format!("CHECK of `{}`/{}: {what}", call.container_id, call.ifname),
            )
        };
        let Some(lease) = &ep.dhcp else {
            return Err(failed(
                "its DHCP lease was lost (expired or refused by the server) and its address removed: is `underlay dhcp-renewer` running, and the server reachable?".into(),
            ));
        };
        if let Some(ip) = prev.ips.first() {
            if ip.address != IpNet::V4(lease.address) {
                return Err(failed(format!(
                    "the result says {}, the DHCP lease is for {}",
                    ip.address, lease.address
                )));
            }
        }
    }
    check_endpoint(conf, call, &net).await
}

pub(crate) async fn status(conf: &NetConf) -> Result<Option<serde_json::Value>, CniError> {
    checked_spec(conf)?;
    parent_status(conf).await
}

pub(crate) async fn gc(conf: &NetConf) -> Result<Option<serde_json::Value>, CniError> {
    checked_spec(conf)?;
    let nets = networks(conf).await?;
    gc_network(conf, &nets).await
}

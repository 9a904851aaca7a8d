//! The commands: protocol in, library call, protocol out. State, undo and locking are the
//! library's (`Networks`, `Network::connect`/`disconnect`, `Ipam`).

use std::net::IpAddr;
use std::sync::Arc;

use underlay::ipam::{HostLocalStore, Ipam, LocalStore, Owner, Request, Store};
use underlay::network::{
    DefaultRoute, Endpoint, EndpointSpec, MacPolicy, Network, NetworkSpec, Networks,
};
use underlay::{ErrorKind, Handle, IfName, Netns, Route};

use crate::config::{IpamConf, NetConf};
use crate::delegate;
use crate::protocol::{
    code, is_before, CniError, CniResult, Env, Interface, IpConfig, RouteConf, VersionInfo, LATEST,
    SUPPORTED_VERSIONS,
};

/// Which binary this is: the main plugin or the IPAM-only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `type: underlay`: the interface and its addresses.
    Main,
    /// `ipam.type: underlay-ipam` under another main plugin: addresses only.
    Ipam,
}

/// Runs one call: the JSON to print on success (nothing for DEL, GC), or the error.
pub(crate) fn run(
    role: Role,
    env: &Env,
    stdin: &[u8],
) -> Result<Option<serde_json::Value>, CniError> {
    let command = env
        .command
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| CniError::new(code::INVALID_ENVIRONMENT, "CNI_COMMAND is not set"))?;
    // The version first, so that every later error carries it.
    let raw: serde_json::Value =
        if command == "VERSION" && stdin.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            serde_json::from_slice(stdin).map_err(|e| {
                CniError::new(
                    code::DECODE_FAILURE,
                    "the network configuration on stdin is not JSON",
                )
                .details(e.to_string())
            })?
        };
    let version = raw
        .get("cniVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let with_version = |mut e: CniError| {
        if SUPPORTED_VERSIONS.contains(&version.as_str()) {
            e.cni_version = version.clone();
        }
        e
    };
    if command == "VERSION" {
        let answer = VersionInfo {
            cni_version: if SUPPORTED_VERSIONS.contains(&version.as_str()) {
                version.clone()
            } else {
                LATEST.to_string()
            },
            supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
        };
        return Ok(Some(to_json(&answer)?));
    }
    run_command(role, env, &command, &version, raw).map_err(with_version)
}

fn run_command(
    role: Role,
    env: &Env,
    command: &str,
    version: &str,
    raw: serde_json::Value,
) -> Result<Option<serde_json::Value>, CniError> {
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion `{version}` is not supported: use one of {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    let needs_version = |v: &str| needs_version(command, version, v);
    let raw_copy = raw.clone();
    let conf: NetConf = serde_json::from_value(raw).map_err(|e| {
        CniError::new(code::INVALID_CONFIG, "the network configuration is invalid")
            .details(e.to_string())
    })?;
    if conf.name.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "the network configuration has no `name`",
        ));
    }
    if role == Role::Main && conf.delegate().is_some() {
        return delegated(env, command, version, &conf, &raw_copy);
    }
    if role == Role::Main && conf.is_dhcp() {
        return dhcp_command(env, command, version, &conf);
    }
    match command {
        "ADD" => {
            let call = Call::from_env(env, true)?;
            match role {
                Role::Main => runtime()?.block_on(add(&conf, &call, version)),
                Role::Ipam => runtime()?.block_on(ipam_add(&conf, &call, version)),
            }
        }
        "DEL" => {
            let call = Call::from_env(env, false)?;
            match role {
                Role::Main => runtime()?.block_on(del(&conf, &call)),
                Role::Ipam => runtime()?.block_on(ipam_del(&conf, &call)),
            }
        }
        "CHECK" => {
            needs_version("0.4.0")?;
            let call = Call::from_env(env, true)?;
            match role {
                Role::Main => runtime()?.block_on(check(&conf, &call)),
                Role::Ipam => runtime()?.block_on(ipam_check(&conf, &call)),
            }
        }
        "STATUS" => {
            needs_version("1.1.0")?;
            runtime()?.block_on(status(&conf, role))
        }
        "GC" => {
            needs_version("1.1.0")?;
            match role {
                Role::Main => runtime()?.block_on(gc(&conf)),
                Role::Ipam => runtime()?.block_on(ipam_gc(&conf)),
            }
        }
        other => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_COMMAND `{other}` is unknown: ADD, DEL, CHECK, STATUS, GC or VERSION"),
        )),
    }
}

/// Error 1 when `command` came after the config's `version` (CHECK in 0.4.0, STATUS and GC
/// in 1.1.0).
fn needs_version(command: &str, version: &str, since: &str) -> Result<(), CniError> {
    if is_before(version, since) {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{command} needs cniVersion {since} or later; the config has {version}"),
        ))
    } else {
        Ok(())
    }
}

/// A command on a DHCP network (see [`crate::dhcp`]); versions already checked.
fn dhcp_command(
    env: &Env,
    command: &str,
    version: &str,
    conf: &NetConf,
) -> Result<Option<serde_json::Value>, CniError> {
    use crate::dhcp;
    let needs_version = |v: &str| needs_version(command, version, v);
    match command {
        "ADD" => runtime()?.block_on(dhcp::add(conf, &Call::from_env(env, true)?, version)),
        "DEL" => runtime()?.block_on(dhcp::del(conf, &Call::from_env(env, false)?)),
        "CHECK" => {
            needs_version("0.4.0")?;
            runtime()?.block_on(dhcp::check(conf, &Call::from_env(env, true)?))
        }
        "STATUS" => {
            needs_version("1.1.0")?;
            runtime()?.block_on(dhcp::status(conf))
        }
        "GC" => {
            needs_version("1.1.0")?;
            runtime()?.block_on(dhcp::gc(conf))
        }
        other => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_COMMAND `{other}` is unknown: ADD, DEL, CHECK, STATUS, GC or VERSION"),
        )),
    }
}

/// A command of the main plugin whose `ipam.type` is another plugin's (see [`delegate`]).
fn delegated(
    env: &Env,
    command: &str,
    version: &str,
    conf: &NetConf,
    raw: &serde_json::Value,
) -> Result<Option<serde_json::Value>, CniError> {
    let needs_version = |v: &str| needs_version(command, version, v);
    match command {
        "ADD" => delegate::add(conf, raw, &Call::from_env(env, true)?, version),
        "DEL" => delegate::del(conf, raw, &Call::from_env(env, false)?),
        "CHECK" => {
            needs_version("0.4.0")?;
            delegate::check(conf, raw, &Call::from_env(env, true)?)
        }
        "STATUS" => {
            needs_version("1.1.0")?;
            delegate::status(conf, raw)
        }
        "GC" => {
            needs_version("1.1.0")?;
            delegate::gc(conf, raw)
        }
        other => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_COMMAND `{other}` is unknown: ADD, DEL, CHECK, STATUS, GC or VERSION"),
        )),
    }
}

/// The per-container part of the environment, checked.
pub(crate) struct Call {
    pub(crate) container_id: String,
    pub(crate) ifname: String,
    pub(crate) netns: Option<String>,
    pub(crate) args: Vec<(String, String)>,
}

impl Call {
    fn from_env(env: &Env, need_netns: bool) -> Result<Call, CniError> {
        let required = |v: &Option<String>, name: &str| {
            v.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
                CniError::new(code::INVALID_ENVIRONMENT, format!("{name} is not set"))
            })
        };
        let container_id = required(&env.container_id, "CNI_CONTAINERID")?;
        let ifname = required(&env.ifname, "CNI_IFNAME")?;
        IfName::new(ifname.as_str()).map_err(|e| {
            CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("CNI_IFNAME `{ifname}` is invalid"),
            )
            .details(e.to_string())
        })?;
        Owner::new(container_id.as_str(), &ifname).map_err(|e| {
            CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("CNI_CONTAINERID `{container_id}` is invalid"),
            )
            .details(e.to_string())
        })?;
        let netns = env.netns.clone().filter(|s| !s.is_empty());
        if need_netns && netns.is_none() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                "CNI_NETNS is not set",
            ));
        }
        Ok(Call {
            container_id,
            ifname,
            netns,
            args: env.cni_args()?,
        })
    }

    fn owner(&self) -> Owner {
        Owner::new(self.container_id.as_str(), &self.ifname).expect("checked in from_env")
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CniError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CniError::new(code::INTERNAL, "cannot start the async runtime").details(e.to_string())
        })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, CniError> {
    serde_json::to_value(v).map_err(|e| {
        CniError::new(code::INTERNAL, "cannot encode the answer").details(e.to_string())
    })
}

/// The library's error as a CNI error: `msg` says what the plugin was doing, `details` holds
/// the library's message.
pub(crate) fn lib_error(doing: &str, e: underlay::Error) -> CniError {
    let code = match e.kind() {
        ErrorKind::InvalidArgument | ErrorKind::Conflict | ErrorKind::Overlap => {
            code::INVALID_CONFIG
        }
        ErrorKind::Busy | ErrorKind::Timeout => code::TRY_AGAIN_LATER,
        ErrorKind::Io | ErrorKind::Corrupt => code::IO_FAILURE,
        _ => code::INTERNAL,
    };
    CniError::new(code, format!("{doing}: {}", e.message())).details(e.to_string())
}

/// The IPAM store the config names: host-local's files in `dataDir` (default), underlay's
/// journal in the state directory (`"store": "local"`), or etcd (`"store": "etcd"`).
async fn ipam_store(conf: &NetConf, ipam: &IpamConf) -> Result<Arc<dyn Store>, CniError> {
    let store = ipam.store.as_deref().unwrap_or("host-local");
    if store != "etcd" && ipam.etcd.is_some() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("ipam: an `etcd` block with `store` `{store}`: add \"store\": \"etcd\" or remove the block"),
        ));
    }
    match store {
        "host-local" => {
            let dir = ipam.data_dir();
            make_dirs(&dir)?;
            Ok(Arc::new(HostLocalStore::open(&dir).map_err(|e| {
                lib_error("opening the IPAM data directory", e)
            })?))
        }
        "local" => {
            make_dirs(&conf.state_dir())?;
            let dir = conf.state_dir().join("ipam");
            Ok(Arc::new(
                LocalStore::open(&dir).map_err(|e| lib_error("opening the IPAM store", e))?,
            ))
        }
        "etcd" => crate::etcd::connect(ipam).await,
        other => Err(CniError::new(
            code::INVALID_CONFIG,
            format!("ipam `store` `{other}` is unknown: use \"host-local\" (default), \"local\" or \"etcd\""),
        )),
    }
}

/// The addresses the runtime asks for, each inside a range of the config (as host-local
/// demands: addresses outside the ranges may belong to others; the library, like Docker's
/// `--ip`, would take any address of the subnet).
fn requested_in_ranges(conf: &NetConf, args: &[(String, String)]) -> Result<Vec<IpAddr>, CniError> {
    let ips = conf.requested_ips(args)?;
    let pools = conf.ipam()?.pools()?;
    for ip in &ips {
        if !pools.iter().any(|p| p.in_ranges(*ip)) {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "requested IP {ip} is in none of the ranges ({}): ask for an address inside them",
                    pools
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
    }
    Ok(ips)
}

/// Creates `dir` and its parents (a fresh host has no `/var/lib/cni`).
pub(crate) fn make_dirs(dir: &std::path::Path) -> Result<(), CniError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("cannot create {}", dir.display()))
            .details(e.to_string())
    })
}

async fn networks(conf: &NetConf) -> Result<Networks, CniError> {
    let ipam = conf.ipam()?;
    let store = ipam_store(conf, ipam).await?;
    make_dirs(&conf.state_dir())?;
    let host = Handle::new().map_err(|e| lib_error("opening netlink in the host namespace", e))?;
    Networks::with_store(&host, conf.state_dir(), store)
        .await
        .map_err(|e| lib_error("opening the state directory", e))
}

/// The network, if it was ever created (DEL, CHECK, GC do not create it).
pub(crate) async fn existing_network(
    nets: &Networks,
    conf: &NetConf,
) -> Result<Option<Network>, CniError> {
    match nets.get(&conf.name).await {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(lib_error(&format!("opening network `{}`", conf.name), e)),
    }
}

pub(crate) fn open_netns(path: &str) -> Result<Netns, CniError> {
    Netns::open_path(path).map_err(|e| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("cannot open the container's namespace {path}"),
        )
        .details(e.to_string())
    })
}

/// Routes of the config that are not default routes, which the library sets itself (via each
/// pool's gateway); a default route through another gateway is refused.
fn extra_routes(conf: &NetConf, ipam: &IpamConf) -> Result<Vec<RouteConf>, CniError> {
    let spec = conf.network_spec()?;
    let mut out = Vec::new();
    for r in &ipam.routes {
        if r.dst.prefix_len() == 0 {
            let pool_gw = spec
                .pools
                .iter()
                .find(|p| p.is_ipv6() == r.dst.addr().is_ipv6())
                .and_then(|p| p.gateway());
            match (r.gw, pool_gw) {
                (_, None) => {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!("route {}: no range of that family has a gateway", r.dst),
                    ))
                }
                (Some(gw), Some(p)) if gw != p => {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!(
                            "route {} via {gw}: a default route through another address than the range's gateway ({p}) is not supported yet",
                            r.dst
                        ),
                    ))
                }
                _ => {}
            }
        } else {
            out.push(r.clone());
        }
    }
    Ok(out)
}

fn gateway_for(ips: &[IpConfig], dst_v6: bool) -> Option<IpAddr> {
    ips.iter()
        .filter(|ip| ip.address.addr().is_ipv6() == dst_v6)
        .find_map(|ip| ip.gateway)
}

/// The result's routes: the config's, as written and in its order (like host-local), less
/// the default routes the library did not set (another network of the container has one).
fn result_routes(ipam: &IpamConf, set: &[Route]) -> Vec<RouteConf> {
    let default_set = |v6: bool| {
        set.iter()
            .any(|s| s.destination.prefix_len() == 0 && s.destination.addr().is_ipv6() == v6)
    };
    ipam.routes
        .iter()
        .filter(|r| r.dst.prefix_len() != 0 || default_set(r.dst.addr().is_ipv6()))
        .cloned()
        .collect()
}

/// Defines or opens the network and connects the container (again when the network was
/// deleted by another process's last DEL in between); on failure a network on a VLAN parent
/// that nothing uses any more goes.
pub(crate) async fn connect(
    nets: &Networks,
    conf: &NetConf,
    call: &Call,
    spec: &NetworkSpec,
    ep_spec: &EndpointSpec,
    netns: &Netns,
) -> Result<(Network, Endpoint), CniError> {
    let mut ep_spec = ep_spec.clone();
    if conf.link_in_container() {
        // The config's fault, as a missing host `master` is (not a network deleted meanwhile).
        let parent = conf.parent()?;
        let inside = Handle::for_netns(netns)
            .await
            .map_err(|e| lib_error("opening netlink in the container's namespace", e))?;
        if let Err(e) = inside.link(parent).await {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "`master` `{parent}` is not in the container's namespace (`linkInContainer`): move or make it there first, or set `linkInContainer` false for a master on the host"
                ),
            )
            .details(e.to_string()));
        }
        // The connect makes the link with this handle rather than opening another.
        ep_spec = ep_spec.target(&inside);
    }
    let mut attempts = 0;
    let (net, ep) = loop {
        let net = match nets.create_or_open(spec.clone()).await {
            Ok(net) => net,
            // Half deleted by a DEL meanwhile: again.
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => {
                attempts += 1;
                continue;
            }
            Err(e) => {
                // A parent that does not exist is the config's fault.
                let missing = e.kind() == ErrorKind::NotFound;
                let mut err = lib_error(&format!("network `{}`", conf.name), e);
                if missing {
                    err.code = code::INVALID_CONFIG;
                }
                return Err(err);
            }
        };
        match net.connect(netns, ep_spec.clone()).await {
            Ok(ep) => break (net, ep),
            // The network was deleted by its last DEL between the open and the connect
            // (another ADD may have made it again since), or the link by another process:
            // open it and connect again.
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => {
                attempts += 1;
            }
            Err(e) => {
                drop(net); // its pin would keep the network
                delete_if_unused(nets, conf).await;
                return Err(lib_error(
                    &format!(
                        "connecting `{}`/{} to `{}`",
                        call.container_id, call.ifname, conf.name
                    ),
                    e,
                ));
            }
        }
    };
    Ok((net, ep))
}

/// `hostAccess`: makes the shim unless it is there (once for all processes: the library
/// checks under the network's lock) and routes the new container through it; on failure
/// disconnects the container again. Runs after the connect, so that a concurrent last DEL
/// (which removes the shim only while the network has no endpoint) cannot remove it under
/// this container.
pub(crate) async fn host_access(
    nets: &Networks,
    net: Network,
    conf: &NetConf,
    call: &Call,
) -> Result<Network, CniError> {
    let Some(settings) = conf.host_access()? else {
        return Ok(net);
    };
    let Err(e) = net.enable_host_access(settings).await else {
        return Ok(net);
    };
    let undo = net.disconnect(&call.container_id, &call.ifname).await;
    let mut err = lib_error("enabling host access (`hostAccess`)", e);
    match undo {
        Err(u) => err
            .details
            .push_str(&format!("; undoing the endpoint failed too: {u}")),
        Ok(()) => {
            drop(net); // its pin would keep the network
            delete_if_unused(nets, conf).await;
        }
    }
    Err(err)
}

/// Adds `extra` routes (through their `gw`, else the gateway of their family) to the
/// container; if that fails, disconnects it again.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn add_routes(
    nets: &Networks,
    net: Network,
    conf: &NetConf,
    call: &Call,
    netns: &Netns,
    ep: &Endpoint,
    extra: &[RouteConf],
    ips: &[IpConfig],
) -> Result<(), CniError> {
    if extra.is_empty() {
        return Ok(());
    }
    let routed = async {
        let h = Handle::for_netns(netns).await?;
        for r in extra {
            let Some(gw) = r.gw.or_else(|| gateway_for(ips, r.dst.addr().is_ipv6())) else {
                continue;
            };
            h.add_route(&Route::new(r.dst).via(gw).dev(ep.index))
                .await?;
        }
        Ok::<(), underlay::Error>(())
    }
    .await;
    if let Err(e) = routed {
        let undo = net.disconnect(&call.container_id, &call.ifname).await;
        let mut err = lib_error("adding the configured routes", e);
        match undo {
            Err(u) => err
                .details
                .push_str(&format!("; undoing the endpoint failed too: {u}")),
            Ok(()) => {
                drop(net); // its pin would keep the network
                delete_if_unused(nets, conf).await;
            }
        }
        return Err(err);
    }
    Ok(())
}

async fn add(
    conf: &NetConf,
    call: &Call,
    version: &str,
) -> Result<Option<serde_json::Value>, CniError> {
    let spec = conf.network_spec()?;
    let ipam = conf.ipam()?;
    let extra = extra_routes(conf, ipam)?;
    let ips = requested_in_ranges(conf, &call.args)?;
    let mac = conf.requested_mac(&call.args)?;
    // As the reference macvlan: the config's `dns` wins over the IPAM's (`resolvConf`).
    let dns = match &conf.dns {
        Some(d) => d.clone(),
        None => ipam.dns()?,
    };
    // Chained after another plugin: its result is kept in ours.
    let chained = conf
        .prev_result
        .is_some()
        .then(|| prev_result(conf))
        .transpose()?;
    let netns_path = call.netns.clone().expect("ADD has CNI_NETNS");
    // Before anything is made: a wrong namespace leaves nothing behind.
    let netns = open_netns(&netns_path)?;
    let nets = networks(conf).await?;
    // As host-local: a default route only where the config's routes name one; on a container
    // attached to several networks, the first network connected carries it (Docker's way).
    let default_route = if ipam.routes.iter().any(|r| r.dst.prefix_len() == 0) {
        DefaultRoute::Auto
    } else {
        DefaultRoute::None
    };
    let mut ep_spec = EndpointSpec::new(call.container_id.as_str())
        .ifname(call.ifname.as_str())
        .announce_to(conf.announce()?)
        .default_route(default_route);
    for ip in ips {
        ep_spec = ep_spec.ip(ip);
    }
    if let Some(m) = mac {
        ep_spec = ep_spec.mac(MacPolicy::Fixed(m));
    }
    let (net, ep) = connect(&nets, conf, call, &spec, &ep_spec, &netns).await?;
    let net = host_access(&nets, net, conf, call).await?;
    let ips: Vec<IpConfig> = ep
        .addresses
        .iter()
        .map(|a| IpConfig {
            version: None,
            interface: Some(0),
            address: *a,
            gateway: net.pools().iter().find_map(|p| p.gateway_of(a.addr())),
        })
        .collect();
    add_routes(&nets, net, conf, call, &netns, &ep, &extra, &ips).await?;
    let result = CniResult {
        cni_version: String::new(),
        interfaces: vec![Interface {
            name: ep.ifname.clone(),
            mac: ep.mac.map(|m| m.to_string()).unwrap_or_default(),
            sandbox: netns_path,
        }],
        routes: result_routes(ipam, &ep.routes),
        ips,
        dns,
    };
    let result = match chained {
        Some(prev) => result.after(prev),
        None => result,
    };
    Ok(Some(to_json(&result.for_version(version))?))
}

async fn del(conf: &NetConf, call: &Call) -> Result<Option<serde_json::Value>, CniError> {
    conf.ipam()?;
    disconnect(&networks(conf).await?, conf, call).await?;
    Ok(None)
}

/// DEL's part in the library: disconnects the container (nothing when the network was never
/// set up here), then deletes what its last user leaves ([`delete_if_unused`]).
pub(crate) async fn disconnect(
    nets: &Networks,
    conf: &NetConf,
    call: &Call,
) -> Result<(), CniError> {
    let Some(net) = existing_network(nets, conf).await? else {
        return Ok(()); // never added here: nothing to undo
    };
    net.disconnect(&call.container_id, &call.ifname)
        .await
        .map_err(|e| {
            lib_error(
                &format!("disconnecting `{}`/{}", call.container_id, call.ifname),
                e,
            )
        })?;
    drop(net); // its pin would keep the network
    delete_if_unused(nets, conf).await;
    Ok(())
}

/// CHECK's network: it must exist here (else `UNKNOWN_CONTAINER`) and, when `spec` is given,
/// still be defined as the config defines it.
pub(crate) async fn network_to_check(
    nets: &Networks,
    conf: &NetConf,
    spec: Option<NetworkSpec>,
) -> Result<Network, CniError> {
    let net = existing_network(nets, conf).await?.ok_or_else(|| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("network `{}` was never set up on this host", conf.name),
        )
    })?;
    if let Some(spec) = spec {
        nets.create_or_open(spec)
            .await
            .map_err(|e| lib_error(&format!("network `{}`", conf.name), e))?;
    }
    Ok(net)
}

/// With `hostAccess`: removes the shim once the network has no endpoint
/// (`Network::disable_host_access_if_unused`). On a VLAN parent made on demand (`master`
/// `<nic>.<id>`): deletes the network once nothing uses it (no endpoint, no lease), which
/// removes the VLAN with it when underlay made it (`Networks::delete_if_unused`). Other
/// networks stay defined, so that host-local's cursor goes on where it was. A failure is
/// logged: the container's own call succeeded.
pub(crate) async fn delete_if_unused(nets: &Networks, conf: &NetConf) {
    if conf.host_access().ok().flatten().is_some() {
        if let Ok(net) = nets.get(&conf.name).await {
            if let Err(e) = net.disable_host_access_if_unused().await {
                eprintln!(
                    "underlay: network `{}` has no container but its host access shim could not be removed: {e}",
                    conf.name
                );
            }
        }
    }
    let Ok(parent) = conf.parent() else { return };
    let vlan = !conf.link_in_container()
        && parent
            .rsplit_once('.')
            .is_some_and(|(nic, id)| !nic.is_empty() && id.parse::<u16>().is_ok());
    if !vlan {
        return;
    }
    match nets.delete_if_unused(&conf.name).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "underlay: network `{}` is unused but could not be deleted (its VLAN parent stays): {e}",
            conf.name
        ),
    }
}

/// The `prevResult` (CHECK: required; ADD: chained after another plugin), in any supported
/// version's shape.
pub(crate) fn prev_result(conf: &NetConf) -> Result<CniResult, CniError> {
    let prev = conf.prev_result.clone().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs `prevResult`: the runtime sent none",
        )
    })?;
    serde_json::from_value(prev).map_err(|e| {
        CniError::new(code::DECODE_FAILURE, "`prevResult` is not a CNI result")
            .details(e.to_string())
    })
}

async fn check(conf: &NetConf, call: &Call) -> Result<Option<serde_json::Value>, CniError> {
    let spec = conf.network_spec()?;
    prev_result(conf)?;
    let nets = networks(conf).await?;
    let net = network_to_check(&nets, conf, Some(spec)).await?;
    check_endpoint(conf, call, &net).await
}

/// CHECK of the container's interface: the endpoint is recorded, and in its namespace the
/// interface is the one underlay made, with `prevResult`'s MAC, addresses and routes.
pub(crate) async fn check_endpoint(
    conf: &NetConf,
    call: &Call,
    net: &Network,
) -> Result<Option<serde_json::Value>, CniError> {
    let prev = prev_result(conf)?;
    let ep = net
        .endpoint(&call.container_id, &call.ifname)
        .map_err(|e| lib_error("reading the endpoint", e))?
        .ok_or_else(|| {
            CniError::new(
                code::UNKNOWN_CONTAINER,
                format!(
                    "`{}`/{} is not attached to `{}`",
                    call.container_id, call.ifname, conf.name
                ),
            )
        })?;
    let netns = open_netns(call.netns.as_deref().expect("CHECK has CNI_NETNS"))?;
    let check_failed = |what: String| {
        CniError::new(
            code::INTERNAL,
            format!("CHECK of `{}`/{}: {what}", call.container_id, call.ifname),
        )
    };
    let h = Handle::for_netns(&netns)
        .await
        .map_err(|e| lib_error("opening the container's namespace", e))?;
    let link = h.link(call.ifname.as_str()).await.map_err(|e| {
        check_failed(format!(
            "interface {} is missing: {}",
            call.ifname,
            e.message()
        ))
    })?;
    if link.index != ep.index {
        return Err(check_failed(format!(
            "interface {} is not the one underlay made (index {} instead of {})",
            call.ifname, link.index, ep.index
        )));
    }
    let mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if let Some(i) = prev.interfaces.iter().find(|i| i.name == call.ifname) {
        if !i.mac.is_empty() && !i.mac.eq_ignore_ascii_case(&mac) {
            return Err(check_failed(format!(
                "MAC is {mac}, the result says {}",
                i.mac
            )));
        }
    }
    let have = h
        .addresses(Some(link.index.into()))
        .await
        .map_err(|e| lib_error("reading addresses", e))?;
    for ip in &prev.ips {
        if !have.iter().any(|a| a.address == ip.address) {
            return Err(check_failed(format!("address {} is missing", ip.address)));
        }
    }
    let routes = h
        .routes(None)
        .await
        .map_err(|e| lib_error("reading routes", e))?;
    for r in &prev.routes {
        let gw =
            r.gw.or_else(|| gateway_for(&prev.ips, r.dst.addr().is_ipv6()));
        if !routes
            .iter()
            .any(|k| k.destination == r.dst.trunc() && (gw.is_none() || k.gateway == gw))
        {
            return Err(check_failed(format!(
                "route {}{} is missing",
                r.dst,
                gw.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
    }
    Ok(None)
}

async fn status(conf: &NetConf, role: Role) -> Result<Option<serde_json::Value>, CniError> {
    let ipam = conf.ipam()?;
    ipam.pools()?;
    ipam_store(conf, ipam).await.map_err(|e| CniError {
        code: code::NOT_AVAILABLE,
        ..e
    })?;
    if role == Role::Main {
        parent_status(conf).await?;
    }
    Ok(None)
}

/// STATUS of the parent: 50 when it is missing (for `nic.id`, when `nic` is).
pub(crate) async fn parent_status(conf: &NetConf) -> Result<Option<serde_json::Value>, CniError> {
    {
        let parent = conf.parent()?.to_string();
        if conf.link_in_container() {
            // In each container's namespace: nothing to look at before an ADD brings one.
            return Ok(None);
        }
        let host =
            Handle::new().map_err(|e| lib_error("opening netlink in the host namespace", e))?;
        if let Err(e) = host.link(parent.as_str()).await {
            // A VLAN sub-interface is made on demand from its base: that one must exist.
            let base = parent.rsplit_once('.').map(|(b, _)| b.to_string());
            let base_ok = match &base {
                Some(b) => host.link(b.as_str()).await.is_ok(),
                None => false,
            };
            if !base_ok {
                return Err(CniError::new(
                    code::NOT_AVAILABLE,
                    format!("parent `{parent}` is missing"),
                )
                .details(e.to_string()));
            }
        }
    }
    Ok(None)
}

async fn gc(conf: &NetConf) -> Result<Option<serde_json::Value>, CniError> {
    let nets = networks(conf).await?;
    gc_network(conf, &nets).await
}

/// GC of the network's endpoints and leases not in `cni.dev/valid-attachments`.
pub(crate) async fn gc_network(
    conf: &NetConf,
    nets: &Networks,
) -> Result<Option<serde_json::Value>, CniError> {
    let Some(net) = existing_network(nets, conf).await? else {
        return Ok(None);
    };
    net.gc(&valid_owners(conf)).await.map_err(|e| CniError {
        code: code::TRY_AGAIN_LATER,
        ..lib_error("GC could not release every stale attachment", e)
    })?;
    drop(net);
    delete_if_unused(nets, conf).await;
    Ok(None)
}

/// `cni.dev/valid-attachments` as owners (entries that name no valid attachment are skipped:
/// nothing could have been made for them).
fn valid_owners(conf: &NetConf) -> Vec<Owner> {
    conf.valid_attachments
        .iter()
        .flatten()
        .filter_map(|a| Owner::new(a.container_id.as_str(), &a.ifname).ok())
        .collect()
}

/// IPAM only: the network's pools in the configured store, defined on first use.
async fn ipam_network(conf: &NetConf) -> Result<Ipam, CniError> {
    let ipam = conf.ipam()?;
    let network = underlay::ipam::Network::new(conf.name.as_str(), ipam.pools()?)
        .map_err(|e| lib_error("ipam", e))?;
    Ipam::open_or_create(ipam_store(conf, ipam).await?, network)
        .await
        .map_err(|e| lib_error(&format!("network `{}`", conf.name), e))
}

async fn ipam_add(
    conf: &NetConf,
    call: &Call,
    version: &str,
) -> Result<Option<serde_json::Value>, CniError> {
    let ipam = conf.ipam()?;
    let dns = ipam.dns()?;
    let net = ipam_network(conf).await?;
    let mut request = Request::any();
    for ip in requested_in_ranges(conf, &call.args)? {
        request = request.and_ip(ip);
    }
    let lease = net.allocate(&call.owner(), &request).await.map_err(|e| {
        lib_error(
            &format!("allocating for `{}`/{}", call.container_id, call.ifname),
            e,
        )
    })?;
    let ips: Vec<IpConfig> = lease
        .addresses
        .iter()
        .map(|a| IpConfig {
            version: None,
            interface: None,
            address: a.address,
            gateway: a.gateway,
        })
        .collect();
    let result = CniResult {
        cni_version: String::new(),
        interfaces: Vec::new(),
        routes: ipam.routes.clone(),
        ips,
        dns,
    };
    Ok(Some(to_json(&result.for_version(version))?))
}

async fn ipam_del(conf: &NetConf, call: &Call) -> Result<Option<serde_json::Value>, CniError> {
    let ipam = conf.ipam()?;
    let store = ipam_store(conf, ipam).await?;
    let net = match Ipam::open(store, &conf.name).await {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(lib_error(&format!("network `{}`", conf.name), e)),
    };
    net.release(&call.owner()).await.map_err(|e| {
        lib_error(
            &format!("releasing `{}`/{}", call.container_id, call.ifname),
            e,
        )
    })?;
    Ok(None)
}

async fn ipam_check(conf: &NetConf, call: &Call) -> Result<Option<serde_json::Value>, CniError> {
    let net = ipam_network(conf).await?;
    let lease = net
        .lookup(&call.owner())
        .await
        .map_err(|e| lib_error("looking up the lease", e))?;
    if lease.is_none() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "`{}`/{} holds no address in `{}`",
                call.container_id, call.ifname, conf.name
            ),
        ));
    }
    Ok(None)
}

async fn ipam_gc(conf: &NetConf) -> Result<Option<serde_json::Value>, CniError> {
    let net = ipam_network(conf).await?;
    net.gc(&valid_owners(conf))
        .await
        .map_err(|e| lib_error("GC", e))?;
    Ok(None)
}

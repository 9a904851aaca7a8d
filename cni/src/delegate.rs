//! An `ipam.type` served by another plugin (`dhcp`, `static`, `whereabouts`, ...), run by exec
//! as the reference plugins run theirs: found on `CNI_PATH`, the same `CNI_*` environment, the
//! network configuration on stdin, its result read back. ADD runs it first and connects the
//! container with the addresses it gave (undoing it with its DEL if anything later fails); DEL
//! disconnects, then runs its DEL; CHECK runs its CHECK, then checks the interface; GC and
//! STATUS run its GC and STATUS when it speaks 1.1.0.
//!
//! The library keeps its own record of those addresses (a lease in the state directory's
//! local store, pools made from the addresses' subnets and gateways), so that its endpoint
//! rules (one owner per address, a disconnect touching only its own link) hold as for any
//! network; the delegate stays the owner of the addresses.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use underlay::ipam::{LocalStore, Pool};
use underlay::network::{DefaultRoute, EndpointSpec, MacPolicy, Networks};
use underlay::Handle;

use crate::config::NetConf;
use crate::plugin::{
    add_routes, connect, host_access, lib_error, make_dirs, open_netns, runtime, Call,
};
use crate::protocol::{code, CniError, CniResult, Interface, IpConfig, RouteConf};

/// The delegate's binary: the first `CNI_PATH` directory that has it.
fn find(plugin: &str) -> Result<PathBuf, CniError> {
    let path = std::env::var("CNI_PATH").unwrap_or_default();
    if plugin.contains('/') {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("ipam type `{plugin}` is not a plugin name"),
        ));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "ipam plugin `{plugin}` is not in CNI_PATH ({path}): install it there or use \"underlay-ipam\""
                ),
            )
        })
}

/// Runs the delegate for `command` with `stdin`: its result (None when it printed nothing),
/// or its error object as ours.
fn exec(plugin: &str, command: &str, stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    let bin = find(plugin)?;
    let failed = |what: &str, e: std::io::Error| {
        CniError::new(
            code::IO_FAILURE,
            format!("ipam plugin `{plugin}` ({command}): cannot {what}"),
        )
        .details(e.to_string())
    };
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(&format!("run {}", bin.display()), e))?;
    let written = child
        .stdin
        .take()
        .map(|mut i| i.write_all(stdin))
        .transpose();
    let out = child
        .wait_with_output()
        .map_err(|e| failed("wait for it", e))?;
    // A plugin may answer without reading its stdin (host-local's VERSION) and be gone before
    // the write: its exit status and output tell, not the broken pipe.
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(failed("write its stdin", e))
        }
        _ => {}
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        if text.trim().is_empty() {
            return Ok(None);
        }
        return serde_json::from_str(&text).map(Some).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("ipam plugin `{plugin}` ({command}) printed no JSON"),
            )
            .details(format!("{e}: {text}"))
        });
    }
    Err(match serde_json::from_str::<CniError>(&text) {
        Ok(mut e) => {
            e.msg = format!("ipam plugin `{plugin}` ({command}): {}", e.msg);
            e
        }
        Err(_) => CniError::new(
            code::INTERNAL,
            format!("ipam plugin `{plugin}` ({command}) failed ({})", out.status),
        )
        .details(text.into_owned()),
    })
}

/// The config as the delegate gets it: the same JSON the runtime sent.
fn stdin_of(raw: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(raw).unwrap_or_default()
}

/// The networks of this config, with the library's own record of delegated addresses in the
/// state directory's local store.
async fn networks(conf: &NetConf) -> Result<Networks, CniError> {
    let root = conf.state_dir();
    make_dirs(&root)?;
    let store = LocalStore::open(root.join("ipam"))
        .map_err(|e| lib_error("opening the state directory's store", e))?;
    let host = Handle::new().map_err(|e| lib_error("opening netlink in the host namespace", e))?;
    Networks::with_store(&host, &root, Arc::new(store))
        .await
        .map_err(|e| lib_error("opening the state directory", e))
}

/// A pool per address the delegate gave: its subnet, with its gateway (else the gateway of a
/// default route of its family).
fn pools_of(result: &CniResult) -> Result<Vec<Pool>, CniError> {
    let default_gw = |v6: bool| {
        result
            .routes
            .iter()
            .find(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv6() == v6)
            .and_then(|r| r.gw)
    };
    result
        .ips
        .iter()
        .map(|ip| {
            let mut b = Pool::builder(ip.address.trunc());
            b = match ip
                .gateway
                .or_else(|| default_gw(ip.address.addr().is_ipv6()))
            {
                Some(g) => b.gateway(g),
                None => b.no_gateway(),
            };
            b.build().map_err(|e| {
                CniError::new(
                    code::INVALID_CONFIG,
                    format!("the ipam plugin's address {}: {}", ip.address, e.message()),
                )
                .details(e.to_string())
            })
        })
        .collect()
}

/// ADD: the delegate's ADD, then the interface with its addresses; the delegate's DEL if that
/// fails.
pub(crate) fn add(
    conf: &NetConf,
    raw: &serde_json::Value,
    call: &Call,
    version: &str,
) -> Result<Option<serde_json::Value>, CniError> {
    let plugin = conf.delegate().expect("delegated").to_string();
    // What can be checked before the delegate allocates.
    conf.base_spec()?;
    let mac = conf.requested_mac(&call.args)?;
    let netns_path = call.netns.clone().expect("ADD has CNI_NETNS");
    open_netns(&netns_path)?;
    let stdin = stdin_of(raw);
    let got = exec(&plugin, "ADD", &stdin)?.ok_or_else(|| {
        CniError::new(
            code::DECODE_FAILURE,
            format!("ipam plugin `{plugin}` (ADD) printed no result"),
        )
    });
    let attached = got.and_then(|got| {
        let result: CniResult = serde_json::from_value(got).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("ipam plugin `{plugin}` (ADD) printed no CNI result"),
            )
            .details(e.to_string())
        })?;
        runtime()?.block_on(attach(conf, call, version, &netns_path, mac, result))
    });
    attached.map_err(|mut e| {
        if let Err(u) = exec(&plugin, "DEL", &stdin) {
            e.details.push_str(&format!(
                "; the ipam plugin's DEL (undo) failed too: {}",
                u.msg
            ));
        }
        e
    })
}

async fn attach(
    conf: &NetConf,
    call: &Call,
    version: &str,
    netns_path: &str,
    mac: Option<underlay::MacAddr>,
    delegated: CniResult,
) -> Result<Option<serde_json::Value>, CniError> {
    let mut spec = conf.base_spec()?;
    for p in pools_of(&delegated)? {
        spec = spec.pool(p);
    }
    let chained = match &conf.prev_result {
        Some(prev) => Some(
            serde_json::from_value::<CniResult>(prev.clone()).map_err(|e| {
                CniError::new(code::DECODE_FAILURE, "`prevResult` is not a CNI result")
                    .details(e.to_string())
            })?,
        ),
        None => None,
    };
    let netns = open_netns(netns_path)?;
    let nets = networks(conf).await?;
    let has_default = delegated.routes.iter().any(|r| r.dst.prefix_len() == 0);
    let mut ep_spec = EndpointSpec::new(call.container_id.as_str())
        .ifname(call.ifname.as_str())
        .announce_to(conf.announce()?)
        .default_route(if has_default {
            DefaultRoute::Auto
        } else {
            DefaultRoute::None
        });
    for ip in &delegated.ips {
        ep_spec = ep_spec.ip(ip.address.addr());
    }
    if let Some(m) = mac {
        ep_spec = ep_spec.mac(MacPolicy::Fixed(m));
    }
    let (net, ep) = connect(&nets, conf, call, &spec, &ep_spec, &netns).await?;
    let net = host_access(&nets, net, conf, call).await?;
    let ips: Vec<IpConfig> = delegated
        .ips
        .iter()
        .map(|ip| IpConfig {
            version: None,
            interface: Some(0),
            address: ip.address,
            gateway: ip.gateway,
        })
        .collect();
    let extra: Vec<RouteConf> = delegated
        .routes
        .iter()
        .filter(|r| r.dst.prefix_len() != 0)
        .cloned()
        .collect();
    add_routes(&nets, net, conf, call, &netns, &ep, &extra, &ips).await?;
    let set_default = |v6: bool| {
        ep.routes
            .iter()
            .any(|s| s.destination.prefix_len() == 0 && s.destination.addr().is_ipv6() == v6)
    };
    let result = CniResult {
        cni_version: String::new(),
        interfaces: vec![Interface {
            name: ep.ifname.clone(),
            mac: ep.mac.map(|m| m.to_string()).unwrap_or_default(),
            sandbox: netns_path.to_string(),
        }],
        routes: delegated
            .routes
            .iter()
            .filter(|r| r.dst.prefix_len() != 0 || set_default(r.dst.addr().is_ipv6()))
            .cloned()
            .collect(),
        ips,
        // As the reference macvlan: the config's `dns` wins over the IPAM's.
        dns: conf.dns.clone().unwrap_or(delegated.dns),
    };
    let result = match chained {
        Some(prev) => result.after(prev),
        None => result,
    };
    Ok(Some(crate::plugin::to_json(&result.for_version(version))?))
}

/// DEL: disconnects (if attached here), then the delegate's DEL, which runs even when the
/// network was never set up here (an ADD that failed midway).
pub(crate) fn del(
    conf: &NetConf,
    raw: &serde_json::Value,
    call: &Call,
) -> Result<Option<serde_json::Value>, CniError> {
    let plugin = conf.delegate().expect("delegated").to_string();
    runtime()?
        .block_on(async { crate::plugin::disconnect(&networks(conf).await?, conf, call).await })?;
    exec(&plugin, "DEL", &stdin_of(raw))?;
    Ok(None)
}

/// CHECK: the delegate's CHECK, then the interface, addresses and routes of `prevResult`.
pub(crate) fn check(
    conf: &NetConf,
    raw: &serde_json::Value,
    call: &Call,
) -> Result<Option<serde_json::Value>, CniError> {
    let plugin = conf.delegate().expect("delegated").to_string();
    exec(&plugin, "CHECK", &stdin_of(raw))?;
    runtime()?.block_on(async {
        let nets = networks(conf).await?;
        let net = crate::plugin::network_to_check(&nets, conf, None).await?;
        crate::plugin::check_endpoint(conf, call, &net).await
    })
}

/// Whether the delegate speaks `version` (its VERSION answer).
fn speaks(plugin: &str, version: &str) -> Result<bool, CniError> {
    let v = exec(plugin, "VERSION", br#"{"cniVersion":"0.4.0"}"#)?.unwrap_or_default();
    Ok(v["supportedVersions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == version)))
}

/// GC: this host's endpoints not in `cni.dev/valid-attachments`, then the delegate's GC if it
/// speaks 1.1.0 (older ones have no GC: their leases go with each DEL).
pub(crate) fn gc(
    conf: &NetConf,
    raw: &serde_json::Value,
) -> Result<Option<serde_json::Value>, CniError> {
    let plugin = conf.delegate().expect("delegated").to_string();
    runtime()?.block_on(async {
        let nets = networks(conf).await?;
        crate::plugin::gc_network(conf, &nets).await
    })?;
    if speaks(&plugin, "1.1.0")? {
        exec(&plugin, "GC", &stdin_of(raw))?;
    }
    Ok(None)
}

/// STATUS: 50 when the delegate is missing or its STATUS (1.1.0) fails, or the parent is.
pub(crate) fn status(
    conf: &NetConf,
    raw: &serde_json::Value,
) -> Result<Option<serde_json::Value>, CniError> {
    let plugin = conf.delegate().expect("delegated").to_string();
    let unavailable = |e: CniError| CniError {
        code: code::NOT_AVAILABLE,
        ..e
    };
    find(&plugin).map_err(unavailable)?;
    if speaks(&plugin, "1.1.0").map_err(unavailable)? {
        exec(&plugin, "STATUS", &stdin_of(raw)).map_err(unavailable)?;
    }
    runtime()?.block_on(crate::plugin::parent_status(conf))
}

//! The network configuration a runtime sends on stdin, with the reference macvlan/ipvlan and
//! host-local plugins' keys, and its translation into the library's [`NetworkSpec`].

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use underlay::ipam::{AllocRange, Pool};
use underlay::network::{Announce, HostAccess, NetworkSpec, ShimRoutes};
use underlay::{ConflictDetection, DhcpConfig, IpvlanFlag, IpvlanMode, MacAddr, MacvlanMode};

use crate::protocol::{code, CniError, Dns, RouteConf};

/// The default state directory of networks and endpoints (the library's).
pub(crate) const DEFAULT_STATE_DIR: &str = underlay::network::DEFAULT_ROOT;

/// host-local's default `dataDir`.
pub(crate) const DEFAULT_DATA_DIR: &str = underlay::ipam::HostLocalStore::DEFAULT_DIR;

/// IPAM types served in-process: underlay's own, and host-local's (same keys, same files).
pub(crate) const IN_PROCESS_IPAM: [&str; 2] = ["underlay-ipam", "host-local"];

/// The IPAM type of DHCP networks: served in-process by the main plugin (the library's DHCP
/// client on the container's link), never by exec of the reference `dhcp` plugin.
pub(crate) const DHCP_IPAM: &str = "dhcp";

/// A network configuration (one plugin's entry of a conflist, as libcni sends it).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetConf {
    #[serde(default)]
    pub(crate) name: String,
    /// The parent NIC (the reference plugins' key).
    pub(crate) master: Option<String>,
    /// The parent NIC (underlay's and Docker's word).
    pub(crate) parent: Option<String>,
    /// macvlan: bridge (default), vepa, private, passthru, source; ipvlan: l2 (default), l3, l3s.
    pub(crate) mode: Option<String>,
    /// ipvlan: bridge (default), private, vepa.
    pub(crate) flag: Option<String>,
    pub(crate) mtu: Option<u32>,
    /// "macvlan" (default) or "ipvlan".
    pub(crate) driver: Option<String>,
    pub(crate) ipam: Option<IpamConf>,
    /// Where networks and endpoints are kept (default `/var/lib/underlay`).
    pub(crate) state_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) runtime_config: RuntimeConfig,
    #[serde(default)]
    pub(crate) args: Option<ArgsConf>,
    pub(crate) prev_result: Option<serde_json::Value>,
    /// DNS settings for the result (the reference plugins' top-level `dns`): when given, the
    /// result carries them instead of the IPAM's (`resolvConf`), as the reference macvlan does.
    pub(crate) dns: Option<Dns>,
    /// The reference plugins' `linkInContainer`: `master` is in the container's namespace,
    /// and the link is made there (the library's `parent_in_endpoint_namespace`).
    pub(crate) link_in_container: Option<bool>,
    /// Host access through the library's shim: `true`, or `{"name", "address", "routes"}`
    /// (see [`NetConf::host_access`]).
    pub(crate) host_access: Option<serde_json::Value>,
    /// Whom a new endpoint's addresses are announced to: "kernel" (default), "wire",
    /// "segment" or "off" (the library's `Announce`).
    pub(crate) announce: Option<String>,
    /// Address-conflict detection before an address is assigned (the library's
    /// `ConflictDetection`): `true` (1 probe, then 150 ms), `"rfc5227"`, or
    /// `{"probes": N, "intervalMs": I, "waitMs": W}`.
    pub(crate) conflict_detection: Option<serde_json::Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    pub(crate) valid_attachments: Option<Vec<Attachment>>,
}

/// The `ipam` block: host-local's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IpamConf {
    #[serde(rename = "type", default)]
    pub(crate) ipam_type: String,
    /// Range sets: one address from each set.
    #[serde(default)]
    pub(crate) ranges: Vec<Vec<RangeConf>>,
    /// Shorthand for one range set of one range.
    pub(crate) subnet: Option<IpNet>,
    pub(crate) range_start: Option<IpAddr>,
    pub(crate) range_end: Option<IpAddr>,
    pub(crate) gateway: Option<IpAddr>,
    #[serde(default)]
    pub(crate) routes: Vec<RouteConf>,
    /// host-local's data directory (default `/var/lib/cni/networks`).
    pub(crate) data_dir: Option<PathBuf>,
    /// A resolv.conf-style file read into the result's `dns` (host-local's key).
    pub(crate) resolv_conf: Option<PathBuf>,
    /// "host-local" (default: host-local's files in `dataDir`), "local" (underlay's journal
    /// in the state directory) or "etcd" (one pool for every node, see [`EtcdConf`]).
    pub(crate) store: Option<String>,
    /// `"store": "etcd"`: how to reach etcd.
    pub(crate) etcd: Option<EtcdConf>,
    /// dhcp: the reference dhcp plugin's daemon socket; ignored (the lease is served
    /// in-process), with a log line.
    pub(crate) daemon_socket_path: Option<String>,
    /// dhcp: options to ask the server for (the reference dhcp plugin's `request`).
    #[serde(default)]
    pub(crate) request: Vec<DhcpRequestOption>,
    /// dhcp: options to send (the reference dhcp plugin's `provide`): the host name only.
    #[serde(default)]
    pub(crate) provide: Vec<DhcpProvideOption>,
    /// dhcp: tries of each exchange (underlay's; default 4).
    pub(crate) tries: Option<u32>,
    /// dhcp: the wait for the first answer, doubled at each try (underlay's; default 1000).
    pub(crate) wait_ms: Option<u64>,
}

/// One element of the dhcp `request` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DhcpRequestOption {
    #[serde(default)]
    pub(crate) skip_default: bool,
    #[serde(default)]
    pub(crate) option: String,
}

/// One element of the dhcp `provide` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DhcpProvideOption {
    #[serde(default)]
    pub(crate) option: String,
    pub(crate) value: Option<String>,
    pub(crate) from_arg: Option<String>,
}

/// The options underlay's DHCP client asks for anyway, by the reference plugin's names and
/// by number: a `request` naming one of them is accepted.
const DHCP_REQUESTED: [(&str, &str); 7] = [
    ("subnet-mask", "1"),
    ("routers", "3"),
    ("domain-name-servers", "6"),
    ("domain-name", "15"),
    ("dhcp-lease-time", "51"),
    ("dhcp-renewal-time", "58"),
    ("dhcp-rebinding-time", "59"),
];

/// The `ipam.etcd` block (`"store": "etcd"`). Unknown keys are refused: a misspelt TLS or
/// auth key must not silently mean "none".
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) struct EtcdConf {
    /// Client URLs, `http://host:2379` (or `https://` with `caFile`).
    pub(crate) endpoints: Vec<String>,
    /// Key prefix (default `/underlay/`): every key of this IPAM lives under it.
    pub(crate) prefix: Option<String>,
    /// This node's name on its claims (default: the kernel's host name); GC releases only
    /// this node's leases.
    pub(crate) host: Option<String>,
    /// PEM CA certificate to trust (TLS).
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM client certificate and key (etcd's `--client-cert-auth`).
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    /// The name to check the server certificate against (default: the endpoint's host).
    pub(crate) tls_domain: Option<String>,
    /// etcd user (with `password` or `passwordFile`).
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// A file holding the password (trailing newline ignored), so that the config need not.
    pub(crate) password_file: Option<PathBuf>,
    /// Attach this node's claims to a node lease of this many seconds (see docs/cni.md).
    pub(crate) host_lease_seconds: Option<u64>,
    /// Node slices of this many addresses (whereabouts' idea).
    pub(crate) slice_size: Option<u32>,
    /// The longest one request may take (default 5).
    pub(crate) request_timeout_seconds: Option<u64>,
    /// How long a call keeps retrying while etcd is unavailable (default 15).
    pub(crate) retry_seconds: Option<u64>,
}

/// One range of a range set.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RangeConf {
    pub(crate) subnet: IpNet,
    pub(crate) range_start: Option<IpAddr>,
    pub(crate) range_end: Option<IpAddr>,
    pub(crate) gateway: Option<IpAddr>,
}

/// `runtimeConfig`: the capabilities this plugin reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RuntimeConfig {
    #[serde(default)]
    pub(crate) ips: Vec<String>,
    pub(crate) mac: Option<String>,
}

/// `args` (the conventions' `args.cni`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ArgsConf {
    #[serde(default)]
    pub(crate) cni: Option<CniArgsConf>,
}

/// `args.cni`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CniArgsConf {
    #[serde(default)]
    pub(crate) ips: Vec<String>,
    pub(crate) mac: Option<String>,
}

/// One element of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Attachment {
    #[serde(rename = "containerID")]
    pub(crate) container_id: String,
    pub(crate) ifname: String,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

impl NetConf {
    /// The parent: `master`, or `parent`.
    pub(crate) fn parent(&self) -> Result<&str, CniError> {
        match (&self.master, &self.parent) {
            (Some(m), Some(p)) if m != p => Err(invalid(format!(
                "`master` ({m}) and `parent` ({p}) differ: give one of them"
            ))),
            (Some(m), _) => Ok(m),
            (None, Some(p)) => Ok(p),
            (None, None) => Err(invalid(
                "no `master`: name the parent interface (e.g. \"master\": \"ens192\" or \"ens192.10\")",
            )),
        }
    }

    /// Whom the endpoint's addresses are announced to: the kernel by default (no packet
    /// socket in the plugin's process, whose close costs an RCU grace period per call).
    pub(crate) fn announce(&self) -> Result<Announce, CniError> {
        match &self.announce {
            None => Ok(Announce::Kernel),
            Some(a) => a
                .parse()
                .map_err(|e: underlay::Error| invalid(format!("`announce`: {e}"))),
        }
    }

    /// `conflictDetection` as the library's settings; None when off (absent or `false`).
    pub(crate) fn conflict_detection(&self) -> Result<Option<ConflictDetection>, CniError> {
        let bad = |what: String| {
            invalid(format!(
                "`conflictDetection` {what}: give true, \"rfc5227\" or {{\"probes\": N, \"intervalMs\": I, \"waitMs\": W}}"
            ))
        };
        match &self.conflict_detection {
            None | Some(serde_json::Value::Bool(false)) => Ok(None),
            Some(serde_json::Value::Bool(true)) => Ok(Some(ConflictDetection::default())),
            Some(serde_json::Value::String(s)) if s == "rfc5227" => {
                Ok(Some(ConflictDetection::rfc5227()))
            }
            Some(serde_json::Value::Object(o)) => {
                let d = ConflictDetection::default();
                let mut probes = d.probes();
                let mut interval = d.interval();
                let mut wait = d.wait();
                for (k, v) in o {
                    let n = v
                        .as_u64()
                        .ok_or_else(|| bad(format!("`{k}` is {v}, not a whole number")))?;
                    match k.as_str() {
                        "probes" => {
                            probes = u32::try_from(n)
                                .map_err(|_| bad(format!("`probes` {n} is too large")))?
                        }
                        "intervalMs" => interval = std::time::Duration::from_millis(n),
                        "waitMs" => wait = std::time::Duration::from_millis(n),
                        _ => return Err(bad(format!("has an unknown key `{k}`"))),
                    }
                }
                ConflictDetection::new(probes, interval, wait)
                    .map(Some)
                    .map_err(|e| invalid(format!("`conflictDetection`: {e}")))
            }
            Some(other) => Err(bad(format!("is {other}"))),
        }
    }

    /// `hostAccess` as the library's settings: `true` (a shim named after the network, no
    /// address, a host route per container), `false`/absent (none), or an object with
    /// `name`, `address` (`true`: one from the pools; or an address of the pools) and
    /// `routes` (`"endpoints"`, the default, or `"ranges"`: one route per allocation range).
    pub(crate) fn host_access(&self) -> Result<Option<HostAccess>, CniError> {
        use serde_json::Value;
        let settings = match &self.host_access {
            None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
            Some(Value::Bool(true)) => return Ok(Some(HostAccess::new())),
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(invalid(format!(
                    "`hostAccess` is {other}: give true, or {{\"address\": true | \"IP\", \"routes\": \"endpoints\" | \"ranges\", \"name\": \"shim name\"}}"
                )))
            }
        };
        let mut ha = HostAccess::new();
        for (key, value) in settings {
            ha = match (key.as_str(), value) {
                ("name", Value::String(n)) => {
                    underlay::IfName::new(n).map_err(|e| {
                        invalid(format!("`hostAccess.name` `{n}` is not an interface name"))
                            .details(e.to_string())
                    })?;
                    ha.name(n)
                }
                ("address", Value::Bool(true)) => ha.with_address(),
                ("address", Value::Bool(false)) => ha,
                ("address", Value::String(a)) => ha.address(a.parse().map_err(|_| {
                    invalid(format!(
                        "`hostAccess.address` `{a}` is not an IP address: give one of the pools' addresses, or true for any"
                    ))
                })?),
                ("routes", Value::String(r)) if r == "endpoints" => ha.routes(ShimRoutes::Endpoints),
                ("routes", Value::String(r)) if r == "ranges" => ha.routes(ShimRoutes::Ranges),
                (k @ ("name" | "address" | "routes"), v) => {
                    return Err(invalid(format!(
                        "`hostAccess.{k}` is {v}: give {}",
                        match k {
                            "name" => "an interface name",
                            "address" => "true (an address of the pools) or one of the pools' addresses",
                            _ => "\"endpoints\" (a host route per container) or \"ranges\" (one per allocation range)",
                        }
                    )))
                }
                (k, _) => {
                    return Err(invalid(format!(
                        "`hostAccess` has an unknown key `{k}`: its keys are \"name\", \"address\" and \"routes\""
                    )))
                }
            };
        }
        Ok(Some(ha))
    }

    /// The `ipam` block, which must be served in-process.
    pub(crate) fn ipam(&self) -> Result<&IpamConf, CniError> {
        let ipam = self.ipam.as_ref().ok_or_else(|| {
            invalid("no `ipam` block: add one, e.g. {\"type\": \"underlay-ipam\", \"subnet\": \"10.0.0.0/24\"}")
        })?;
        if ipam.ipam_type == DHCP_IPAM || ipam.is_dhcp_shaped() {
            return Err(invalid(
                "underlay-ipam cannot get addresses from DHCP: a lease needs the container's \
                 link (its MAC, a socket on it), which the main plugin makes only after the IPAM \
                 answered; use \"type\": \"underlay\" with \"ipam\": {\"type\": \"dhcp\"}, or \
                 the reference dhcp plugin with its daemon",
            ));
        }
        if !IN_PROCESS_IPAM.contains(&ipam.ipam_type.as_str()) {
            return Err(invalid(format!(
                "ipam type `{}` is not served in-process (only \"underlay-ipam\" and \"host-local\" are): the main plugin runs it as a delegate",
                ipam.ipam_type
            )));
        }
        Ok(ipam)
    }

    /// The `ipam.type` served by another plugin, by exec (any but underlay's and host-local's).
    pub(crate) fn delegate(&self) -> Option<&str> {
        let t = self.ipam.as_ref()?.ipam_type.as_str();
        (!t.is_empty() && !IN_PROCESS_IPAM.contains(&t) && t != DHCP_IPAM).then_some(t)
    }

    /// Whether the network's addresses come from DHCP (`"ipam": {"type": "dhcp"}`).
    pub(crate) fn is_dhcp(&self) -> bool {
        self.ipam.as_ref().is_some_and(|i| i.ipam_type == DHCP_IPAM)
    }

    /// A DHCP network's settings, refusing what cannot go with it (static addresses, ranges,
    /// routes, stores, host access, conflict detection, options the client cannot honour),
    /// each naming the key and what to do.
    pub(crate) fn dhcp_config(&self) -> Result<DhcpConfig, CniError> {
        let ipam = self
            .ipam
            .as_ref()
            .expect("a DHCP network has an ipam block");
        let refuse = |key: &str, why: &str| {
            Err(invalid(format!(
                "ipam type `dhcp`: `{key}` cannot be given: {why}"
            )))
        };
        let from_server =
            "the DHCP server chooses the addresses, the prefix and the router; remove it";
        if !ipam.ranges.is_empty() {
            return refuse("ranges", from_server);
        }
        for (key, set) in [
            ("rangeStart", ipam.range_start.is_some()),
            ("rangeEnd", ipam.range_end.is_some()),
            ("gateway", ipam.gateway.is_some()),
            ("routes", !ipam.routes.is_empty()),
        ] {
            if set {
                return refuse(key, from_server);
            }
        }
        for (key, set) in [
            ("dataDir", ipam.data_dir.is_some()),
            ("store", ipam.store.is_some()),
            ("etcd", ipam.etcd.is_some()),
        ] {
            if set {
                return refuse(
                    key,
                    "a DHCP network keeps no leases of its own (the server holds them, the endpoint's record in `stateDir` keeps its lease); remove it",
                );
            }
        }
        if ipam.resolv_conf.is_some() {
            return refuse(
                "resolvConf",
                "the DNS settings come from the server (or from the config's top-level `dns`); remove it",
            );
        }
        if self.host_access()?.is_some() {
            return Err(invalid(
                "`hostAccess` is not supported on a DHCP network yet: remove it, or use pooled addresses (\"ipam\": {\"type\": \"underlay-ipam\"})",
            ));
        }
        if self.conflict_detection()?.is_some() {
            return Err(invalid(
                "`conflictDetection` does not go with a DHCP network (the server owns the addresses): remove it",
            ));
        }
        for r in &ipam.request {
            if r.skip_default {
                return refuse(
                    "request[].skipDefault",
                    "underlay's DHCP client always asks for the subnet mask, routers, DNS servers, domain and lease times; remove it",
                );
            }
            let known = DHCP_REQUESTED
                .iter()
                .any(|(name, code)| r.option == *name || r.option == *code);
            if !known {
                return Err(invalid(format!(
                    "ipam type `dhcp`: `request` option `{}` is not supported: underlay's DHCP client uses only {} (asked for anyway); remove it",
                    r.option,
                    DHCP_REQUESTED.map(|(n, _)| n).join(", ")
                )));
            }
        }
        for p in &ipam.provide {
            match p.option.as_str() {
                "host-name" | "12" => {
                    if p.value.is_none() && p.from_arg.is_none() {
                        return refuse(
                            "provide",
                            "the `host-name` option needs a `value` or a `fromArg`",
                        );
                    }
                }
                "dhcp-client-identifier" | "61" => {
                    return refuse(
                        "provide",
                        "the client identifier is derived from the container id and interface, so that the same container gets its lease back; remove the option",
                    )
                }
                other => {
                    return Err(invalid(format!(
                        "ipam type `dhcp`: `provide` option `{other}` is not supported: only `host-name` is sent; remove it"
                    )))
                }
            }
        }
        let d = DhcpConfig::default();
        let mut cfg = DhcpConfig::new(
            ipam.tries.unwrap_or(d.tries()),
            ipam.wait_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(d.first_wait()),
        )
        .map_err(|e| {
            invalid(format!(
                "ipam type `dhcp`: `tries`/`waitMs`: {}",
                e.message()
            ))
        })?;
        match ipam.subnet {
            None => {}
            Some(IpNet::V4(n)) => cfg = cfg.subnet(n),
            Some(IpNet::V6(n)) => {
                return Err(invalid(format!(
                    "ipam type `dhcp`: `subnet` {n} is IPv6: DHCP gives IPv4 addresses; give the IPv4 subnet the server's addresses must lie in, or remove it"
                )))
            }
        }
        Ok(cfg)
    }

    /// The host name a DHCP network's endpoint sends: `provide`'s `host-name` (its `value`,
    /// or the `CNI_ARGS` argument its `fromArg` names), else `K8S_POD_NAME`; None: the
    /// library's default (the container id).
    pub(crate) fn dhcp_hostname(&self, cni_args: &[(String, String)]) -> Option<String> {
        let arg = |k: &str| {
            cni_args
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let provided = self.ipam.as_ref().and_then(|i| {
            i.provide
                .iter()
                .filter(|p| matches!(p.option.as_str(), "host-name" | "12"))
                .find_map(|p| {
                    p.value
                        .clone()
                        .or_else(|| p.from_arg.as_deref().and_then(arg))
                })
        });
        provided.or_else(|| arg("K8S_POD_NAME"))
    }

    /// The library's definition of this network.
    pub(crate) fn network_spec(&self) -> Result<NetworkSpec, CniError> {
        if self.is_dhcp() {
            return Ok(self.base_spec()?.dhcp(self.dhcp_config()?));
        }
        let mut spec = self.base_spec()?;
        for pool in self.ipam()?.pools()? {
            spec = spec.pool(pool);
        }
        Ok(spec)
    }

    /// The definition without pools (driver, mode, parent, MTU).
    pub(crate) fn base_spec(&self) -> Result<NetworkSpec, CniError> {
        let parent = self.parent()?;
        self.announce()?;
        self.host_access()?;
        if self.link_in_container() && self.host_access()?.is_some() {
            return Err(invalid(
                "`hostAccess` needs `master` in the host's namespace, but `linkInContainer` puts it in the container's: remove one of them",
            ));
        }
        let mut spec = match self.driver.as_deref().unwrap_or("macvlan") {
            "macvlan" => {
                if self.flag.is_some() {
                    return Err(invalid(
                        "`flag` is an ipvlan setting: remove it or use \"driver\": \"ipvlan\"",
                    ));
                }
                let mode = match &self.mode {
                    None => MacvlanMode::Bridge,
                    Some(m) => m.parse().map_err(|e: underlay::Error| {
                        invalid(format!("macvlan `mode` `{m}` is unknown")).details(e.to_string())
                    })?,
                };
                NetworkSpec::macvlan(&self.name, parent, mode)
            }
            "ipvlan" => {
                let mode = match &self.mode {
                    None => IpvlanMode::L2,
                    Some(m) => m.parse().map_err(|e: underlay::Error| {
                        invalid(format!("ipvlan `mode` `{m}` is unknown")).details(e.to_string())
                    })?,
                };
                let flag = match &self.flag {
                    None => IpvlanFlag::default(),
                    Some(f) => f.parse().map_err(|e: underlay::Error| {
                        invalid(format!("ipvlan `flag` `{f}` is unknown")).details(e.to_string())
                    })?,
                };
                NetworkSpec::ipvlan(&self.name, parent, mode, flag)
            }
            other => {
                return Err(invalid(format!(
                    "`driver` `{other}` is unknown: use \"macvlan\" or \"ipvlan\""
                )))
            }
        };
        if let Some(mtu) = self.mtu.filter(|m| *m != 0) {
            spec = spec.mtu(mtu);
        }
        if let Some(c) = self.conflict_detection()? {
            spec = spec.conflict_detection(c);
        }
        if self.link_in_container() {
            spec = spec.parent_in_endpoint_namespace();
        }
        Ok(spec)
    }

    /// `linkInContainer: true`.
    pub(crate) fn link_in_container(&self) -> bool {
        self.link_in_container == Some(true)
    }

    /// The addresses asked for: `runtimeConfig.ips`, `args.cni.ips`, `CNI_ARGS` `IP=` (comma
    /// separated), the first source that gives any; `ADDR/LEN` is taken as `ADDR`.
    pub(crate) fn requested_ips(
        &self,
        cni_args: &[(String, String)],
    ) -> Result<Vec<IpAddr>, CniError> {
        let from_args: Vec<String> = cni_args
            .iter()
            .filter(|(k, _)| k == "IP")
            .flat_map(|(_, v)| v.split(',').map(str::to_string))
            .collect();
        let args_cni = self.args.as_ref().and_then(|a| a.cni.as_ref());
        let list = [
            self.runtime_config.ips.clone(),
            args_cni.map(|c| c.ips.clone()).unwrap_or_default(),
            from_args,
        ]
        .into_iter()
        .find(|l| !l.is_empty())
        .unwrap_or_default();
        list.iter()
            .map(|s| {
                let s = s.trim();
                let addr = s.split_once('/').map_or(s, |(a, _)| a);
                addr.parse::<IpAddr>()
                    .map_err(|_| invalid(format!("requested IP `{s}` is not an IP address")))
            })
            .collect()
    }

    /// The MAC asked for: `runtimeConfig.mac`, `args.cni.mac`, `CNI_ARGS` `MAC=`.
    pub(crate) fn requested_mac(
        &self,
        cni_args: &[(String, String)],
    ) -> Result<Option<MacAddr>, CniError> {
        let from_args = cni_args
            .iter()
            .find(|(k, _)| k == "MAC")
            .map(|(_, v)| v.clone());
        let args_cni = self
            .args
            .as_ref()
            .and_then(|a| a.cni.as_ref())
            .and_then(|c| c.mac.clone());
        match self.runtime_config.mac.clone().or(args_cni).or(from_args) {
            None => Ok(None),
            Some(m) => m.parse().map(Some).map_err(|e: underlay::Error| {
                invalid(format!("requested MAC `{m}` is invalid")).details(e.to_string())
            }),
        }
    }

    /// The state directory.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_STATE_DIR.into())
    }
}

impl IpamConf {
    /// Whether the block carries keys of the reference dhcp plugin.
    pub(crate) fn is_dhcp_shaped(&self) -> bool {
        self.daemon_socket_path.is_some() || !self.request.is_empty() || !self.provide.is_empty()
    }

    /// The pools: one per range set (a set over several subnets is a pool of several segments).
    pub(crate) fn pools(&self) -> Result<Vec<Pool>, CniError> {
        let mut sets = self.ranges.clone();
        if let Some(subnet) = self.subnet {
            sets.push(vec![RangeConf {
                subnet,
                range_start: self.range_start,
                range_end: self.range_end,
                gateway: self.gateway,
            }]);
        } else if self.range_start.is_some() || self.range_end.is_some() || self.gateway.is_some() {
            return Err(invalid(
                "ipam: `rangeStart`, `rangeEnd` or `gateway` without `subnet`",
            ));
        }
        if sets.is_empty() {
            return Err(invalid(
                "ipam: no `ranges` and no `subnet`: give at least one subnet",
            ));
        }
        sets.iter().map(|set| pool_of_set(set)).collect()
    }

    /// The result's DNS settings from `resolvConf`, read as host-local reads it: `nameserver`
    /// lines add a server, `domain` sets the domain, `search` and `options` lines add
    /// to their lists; `#` and `;` start comments. Empty without `resolvConf`.
    pub(crate) fn dns(&self) -> Result<Dns, CniError> {
        let Some(path) = &self.resolv_conf else {
            return Ok(Dns::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(format!(
                "ipam: cannot read `resolvConf` {}: give a readable resolv.conf file",
                path.display()
            ))
            .details(e.to_string())
        })?;
        Ok(parse_resolv_conf(&text))
    }

    /// The data directory of the host-local layout.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into())
    }
}

fn pool_of_set(set: &[RangeConf]) -> Result<Pool, CniError> {
    if set.is_empty() {
        return Err(invalid("ipam: an empty range set in `ranges`"));
    }
    // Consecutive ranges of one subnet make a segment; a set over several subnets is a pool
    // of several segments, in the set's order (host-local's range set).
    let mut pool: Option<Pool> = None;
    for seg in set.chunk_by(|a, b| a.subnet == b.subnet) {
        let seg = pool_of_segment(seg)?;
        pool = Some(match pool {
            None => seg,
            Some(p) => {
                let a: Vec<_> = p.segments().iter().map(|s| s.subnet()).collect();
                let b = seg.subnet();
                p.then(seg).map_err(|e| {
                    invalid(format!(
                        "ipam: a range set over subnets {} cannot go on into {b}: {}",
                        a.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        e.message()
                    ))
                    .details(e.to_string())
                })?
            }
        });
    }
    Ok(pool.expect("a non-empty set"))
}

/// The pool of consecutive ranges of one subnet.
fn pool_of_segment(set: &[RangeConf]) -> Result<Pool, CniError> {
    let subnet = set[0].subnet;
    if subnet.addr() != subnet.network() {
        return Err(invalid(format!(
            "ipam: subnet `{subnet}` has host bits set: did you mean `{}`?",
            subnet.trunc()
        )));
    }
    let mut gateway = None;
    for r in set {
        match (gateway, r.gateway) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(format!(
                    "ipam: ranges of subnet {subnet} give two gateways ({a}, {b}): give one"
                )))
            }
            (None, g) => gateway = g,
            _ => {}
        }
    }
    let mut b = Pool::builder(subnet);
    if let Some(g) = gateway {
        b = b.gateway(g);
    }
    let whole = set
        .iter()
        .all(|r| r.range_start.is_none() && r.range_end.is_none());
    if !whole {
        for r in set {
            let start = r.range_start.unwrap_or_else(|| first_host(subnet));
            let end = r.range_end.unwrap_or_else(|| last_host(subnet));
            let range = AllocRange::span(start, end).map_err(|e| {
                invalid(format!("ipam: range {start}-{end} is invalid")).details(e.to_string())
            })?;
            b = b.range(range);
        }
    }
    b.build().map_err(|e| {
        invalid(format!("ipam: subnet {subnet}: {}", e.message())).details(e.to_string())
    })
}

/// A resolv.conf's settings as a result's `dns` (see [`IpamConf::dns`]).
fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let rest: Vec<String> = words.map(str::to_string).collect();
        match key {
            "nameserver" => dns.nameservers.extend(rest.into_iter().take(1)),
            "domain" => dns.domain = rest.into_iter().next(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

/// The subnet's first address after the network address.
fn first_host(subnet: IpNet) -> IpAddr {
    match subnet {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
    }
}

/// The subnet's last address before the broadcast (IPv4), or its last (IPv6).
fn last_host(subnet: IpNet) -> IpAddr {
    match subnet {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.broadcast()) - 1).into()),
        IpNet::V6(n) => IpAddr::V6(n.broadcast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> NetConf {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn podman_fixture_translates() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/podman-add-1.0.0.json")).unwrap();
        let mut stdin = fixture["stdin"]["delegate"].clone();
        stdin["name"] = "hcfnet".into();
        stdin["cniVersion"] = "1.0.0".into();
        stdin["type"] = "underlay".into();
        let c: NetConf = serde_json::from_value(stdin).unwrap();
        let spec = c.network_spec().unwrap();
        assert_eq!(spec.parent.as_deref(), Some("hcfpmpar0"));
        assert_eq!(spec.pools.len(), 1);
        assert_eq!(
            spec.pools[0].to_string(),
            "10.219.0.0/24 gateway=10.219.0.1 range=10.219.0.10-10.219.0.99"
        );
        let env = crate::protocol::Env {
            args: fixture["env"]["CNI_ARGS"].as_str().map(str::to_string),
            ..Default::default()
        };
        let args = env.cni_args().unwrap();
        assert_eq!(
            c.requested_ips(&args).unwrap(),
            vec!["10.219.0.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            c.requested_mac(&args).unwrap().unwrap().to_string(),
            "f6:a9:f4:44:db:73"
        );
    }

    #[test]
    fn shorthand_and_errors() {
        let c = conf(
            r#"{"cniVersion":"0.3.1","name":"n","type":"underlay","master":"eth1","mtu":1400,
            "ipam":{"type":"underlay-ipam","subnet":"10.1.0.0/16","rangeStart":"10.1.5.1"}}"#,
        );
        let spec = c.network_spec().unwrap();
        assert_eq!(spec.mtu, Some(1400));
        assert_eq!(
            spec.pools[0].to_string(),
            "10.1.0.0/16 gateway=10.1.0.1 range=10.1.5.1-10.1.255.254"
        );
        // A range set over two subnets: one pool of two segments, in the set's order, each
        // with its own gateway.
        let c = conf(
            r#"{"name":"n","master":"e","ipam":{"type":"host-local","ranges":[[
            {"subnet":"10.2.0.0/24","rangeStart":"10.2.0.10","rangeEnd":"10.2.0.11"},
            {"subnet":"10.2.0.0/24","rangeStart":"10.2.0.20","rangeEnd":"10.2.0.21"},
            {"subnet":"10.1.0.0/24","gateway":"10.1.0.254"}]]}}"#,
        );
        let spec = c.network_spec().unwrap();
        assert_eq!(spec.pools.len(), 1);
        assert_eq!(
            spec.pools[0].to_string(),
            "10.2.0.0/24 gateway=10.2.0.1 range=10.2.0.10-10.2.0.11 range=10.2.0.20-10.2.0.21 + \
             10.1.0.0/24 gateway=10.1.0.254"
        );
        for (json, what) in [
            (
                r#"{"name":"n","ipam":{"type":"host-local","subnet":"10.1.0.0/16"}}"#,
                "no `master`",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"dhcp","ranges":[[{"subnet":"10.1.0.0/24"}]]}}"#,
                "`ranges` cannot be given",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"dhcp","request":[{"option":"classless-static-routes"}]}}"#,
                "`request` option `classless-static-routes`",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"dhcp","provide":[{"option":"dhcp-client-identifier","value":"x"}]}}"#,
                "derived from the container id",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"dhcp","subnet":"fd00::/64"}}"#,
                "IPv6",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"dhcp","tries":0}}"#,
                "tries",
            ),
            (
                r#"{"name":"n","master":"e","hostAccess":true,"ipam":{"type":"dhcp"}}"#,
                "hostAccess",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"host-local","subnet":"10.1.0.1/16"}}"#,
                "host bits",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"host-local","subnet":"10.1.0.0/24","rangeStart":"10.1.0.5","rangeEnd":"10.2.0.9"}}"#,
                "outside",
            ),
            (
                r#"{"name":"n","master":"e","mode":"fast","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#,
                "mode",
            ),
            (
                r#"{"name":"n","master":"e","driver":"bridge","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#,
                "driver",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.2.0.0/24"},{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.9"}]]}}"#,
                "cannot go on into 10.1.0.0/24",
            ),
            (
                r#"{"name":"n","master":"e","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"fd00::/64"}]]}}"#,
                "mix IPv4 and IPv6",
            ),
            (r#"{"name":"n","master":"e"}"#, "no `ipam`"),
            (
                r#"{"name":"n","master":"e","linkInContainer":true,"hostAccess":true,"ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#,
                "linkInContainer",
            ),
        ] {
            let e = conf(json).network_spec().unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{json}");
            let all = format!("{} {}", e.msg, e.details);
            assert!(all.contains(what), "{json}: {all}");
        }
    }

    #[test]
    fn dhcp_settings_and_host_name() {
        let c = conf(
            r#"{"name":"n","master":"e","ipam":{"type":"dhcp","daemonSocketPath":"/run/cni/dhcp.sock",
            "subnet":"10.9.0.0/16","tries":2,"waitMs":300,
            "request":[{"option":"routers"},{"option":"6"}],
            "provide":[{"option":"host-name","fromArg":"K8S_POD_NAME"}]}}"#,
        );
        assert!(c.is_dhcp() && c.delegate().is_none());
        let spec = c.network_spec().unwrap();
        let d = spec.dhcp.unwrap();
        assert_eq!((d.tries(), d.first_wait().as_millis()), (2, 300));
        assert_eq!(d.allowed_subnet().unwrap().to_string(), "10.9.0.0/16");
        let args = vec![("K8S_POD_NAME".to_string(), "web-1".to_string())];
        assert_eq!(c.dhcp_hostname(&args).as_deref(), Some("web-1"));
        assert_eq!(c.dhcp_hostname(&[]), None);
        let fixed = conf(
            r#"{"name":"n","master":"e","ipam":{"type":"dhcp","provide":[{"option":"12","value":"db"}]}}"#,
        );
        assert_eq!(fixed.dhcp_hostname(&args).as_deref(), Some("db"));
        // underlay-ipam cannot serve it.
        let e = c.ipam().unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(
            e.msg
                .contains("underlay-ipam cannot get addresses from DHCP"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn resolv_conf_as_host_local_reads_it() {
        let dns = parse_resolv_conf(
            "# comment\nnameserver 192.0.2.53\n; other\nnameserver 2001:db8::53\ndomain example.org\n\
             search x.example\nsearch a.example b.example\noptions ndots:2\noptions edns0 rotate\nsortlist 10.0.0.0\n",
        );
        assert_eq!(dns.nameservers, ["192.0.2.53", "2001:db8::53"]);
        assert_eq!(dns.domain.as_deref(), Some("example.org"));
        assert_eq!(dns.search, ["x.example", "a.example", "b.example"]);
        assert_eq!(dns.options, ["ndots:2", "edns0", "rotate"]);
    }

    #[test]
    fn requested_ips_sources() {
        let c = conf(
            r#"{"name":"n","runtimeConfig":{"ips":["10.0.0.5/24"]},"args":{"cni":{"ips":["10.0.0.6"]}}}"#,
        );
        let args = vec![("IP".to_string(), "10.0.0.7".to_string())];
        assert_eq!(
            c.requested_ips(&args).unwrap(),
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        let c = conf(r#"{"name":"n","args":{"cni":{"ips":["10.0.0.6"]}}}"#);
        assert_eq!(
            c.requested_ips(&args).unwrap(),
            vec!["10.0.0.6".parse::<IpAddr>().unwrap()]
        );
        let c = conf(r#"{"name":"n"}"#);
        assert_eq!(
            c.requested_ips(&args).unwrap(),
            vec!["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
        let bad = vec![("IP".to_string(), "ten".to_string())];
        assert_eq!(
            c.requested_ips(&bad).unwrap_err().code,
            code::INVALID_CONFIG
        );
    }
}

//! The CNI protocol's JSON, shaped as the spec writes it (field names as in the spec): errors,
//! VERSION's answer, results of every supported version, and the environment.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The versions of the spec whose configs this plugin takes, oldest first.
pub(crate) const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version: the one errors carry when the config's cannot be read.
pub(crate) const LATEST: &str = "1.1.0";

/// The spec's error codes (section "Error").
pub(crate) mod code {
    /// Incompatible CNI version.
    pub(crate) const INCOMPATIBLE_VERSION: u32 = 1;
    /// Container unknown or does not exist.
    pub(crate) const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub(crate) const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub(crate) const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub(crate) const DECODE_FAILURE: u32 = 6;
    /// Invalid network config.
    pub(crate) const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub(crate) const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADD requests.
    pub(crate) const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (the spec reserves 100 and above): an internal failure.
    pub(crate) const INTERNAL: u32 = 999;
}

/// The spec's error object, printed on stdout with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CniError {
    #[serde(rename = "cniVersion")]
    pub(crate) cni_version: String,
    pub(crate) code: u32,
    pub(crate) msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) details: String,
}

impl CniError {
    /// An error with `code` and `msg`; the version is filled in by the caller once known.
    pub(crate) fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            cni_version: LATEST.to_string(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details (the library's full message).
    pub(crate) fn details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }
}

/// VERSION's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionInfo {
    #[serde(rename = "cniVersion")]
    pub(crate) cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub(crate) supported_versions: Vec<String>,
}

/// A result (ADD; `prevResult` of CHECK and DEL), read in any supported version's shape and
/// written in the shape of the version asked for ([`CniResult::for_version`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct CniResult {
    #[serde(rename = "cniVersion")]
    pub(crate) cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) routes: Vec<RouteConf>,
    #[serde(default)]
    pub(crate) dns: Dns,
}

/// An interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Interface {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) sandbox: String,
}

/// An address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IpConfig {
    /// "4" or "6": in results of 0.3.0 to 0.4.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interface: Option<usize>,
    pub(crate) address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<IpAddr>,
}

/// A route (of a result, and of the IPAM config's `routes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteConf {
    pub(crate) dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gw: Option<IpAddr>,
}

/// DNS settings of a result (empty: the reference plugins print `{}` too).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) options: Vec<String>,
}

impl CniResult {
    /// This result in `version`'s shape: 0.3.x and 0.4.0 give each address its `version`
    /// ("4"/"6"); 1.0.0 and later have no such field.
    pub(crate) fn for_version(mut self, version: &str) -> CniResult {
        let old = is_before(version, "1.0.0");
        for ip in &mut self.ips {
            ip.version = old.then(|| {
                if ip.address.addr().is_ipv4() {
                    "4".to_string()
                } else {
                    "6".to_string()
                }
            });
        }
        self.cni_version = version.to_string();
        self
    }
}

impl CniResult {
    /// This result after `prev`'s (chaining: a plugin before this one in the conflist made
    /// `prev`): its interfaces, addresses and routes first, this result's interface indexes
    /// moved past them; DNS from `prev` unless this result has some.
    pub(crate) fn after(self, prev: CniResult) -> CniResult {
        let shift = prev.interfaces.len();
        let mut out = prev;
        out.interfaces.extend(self.interfaces);
        out.ips.extend(self.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + shift);
            ip
        }));
        for r in self.routes {
            if !out.routes.contains(&r) {
                out.routes.push(r);
            }
        }
        if self.dns != Dns::default() {
            out.dns = self.dns;
        }
        out.cni_version = self.cni_version;
        out
    }
}

/// True if spec version `a` is older than `b` (both `X.Y.Z`).
pub(crate) fn is_before(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

/// The variables a runtime sets (section "Parameters").
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    pub(crate) command: Option<String>,
    pub(crate) container_id: Option<String>,
    pub(crate) netns: Option<String>,
    pub(crate) ifname: Option<String>,
    pub(crate) args: Option<String>,
}

impl Env {
    /// From the process environment.
    pub(crate) fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok();
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
        }
    }

    /// `CNI_ARGS` as `KEY=VALUE` pairs (`;`-separated), in order.
    pub(crate) fn cni_args(&self) -> Result<Vec<(String, String)>, CniError> {
        let mut out = Vec::new();
        for pair in self
            .args
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                CniError::new(
                    code::INVALID_ENVIRONMENT,
                    format!("CNI_ARGS: `{pair}` is not KEY=VALUE"),
                )
            })?;
            out.push((k.to_string(), v.to_string()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_shapes_per_version() {
        let r = CniResult {
            cni_version: String::new(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "f6:a9:f4:44:db:73".into(),
                sandbox: "/run/netns/netns-77964615-019e-c13f-8edb-e9efd4942c58".into(),
            }],
            ips: vec![IpConfig {
                version: None,
                interface: Some(0),
                address: "10.219.0.10/24".parse().unwrap(),
                gateway: Some("10.219.0.1".parse().unwrap()),
            }],
            routes: vec![RouteConf {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None,
            }],
            dns: Dns::default(),
        };
        let v1 = serde_json::to_value(r.clone().for_version("1.0.0")).unwrap();
        // The reference plugins' 1.0.0 answer (fixtures/podman-add-1.0.0.json).
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/podman-add-1.0.0.json")).unwrap();
        assert_eq!(v1, fixture["result"]);
        let v04 = serde_json::to_value(r.for_version("0.4.0")).unwrap();
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["cniVersion"], "0.4.0");
    }

    /// Results the reference plugins gave, as recorded under podman, containerd and libcni
    /// (tests/fixtures/): read into [`CniResult`] and written back, unchanged.
    #[test]
    fn recorded_results_round_trip() {
        let fixtures = [
            include_str!("../tests/fixtures/podman-add-1.0.0.json"),
            include_str!("../tests/fixtures/podman-capabilities-add.json"),
            include_str!("../tests/fixtures/containerd-del-empty-netns.json"),
            include_str!("../tests/fixtures/direct-check-1.0.0.json"),
        ];
        let mut seen = 0;
        for f in fixtures {
            let call: serde_json::Value = serde_json::from_str(f).unwrap();
            for r in [&call["result"], &call["stdin"]["prevResult"]] {
                if r.is_null() {
                    continue;
                }
                let parsed: CniResult = serde_json::from_value(r.clone()).unwrap();
                assert_eq!(&serde_json::to_value(&parsed).unwrap(), r);
                seen += 1;
            }
        }
        assert_eq!(seen, 4);
    }

    #[test]
    fn chained_results_keep_the_earlier_plugins() {
        let prev: CniResult = serde_json::from_value(serde_json::json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "lo0"}],
            "ips": [{"version": "4", "interface": 0, "address": "192.0.2.1/32"}],
            "dns": {"nameservers": ["192.0.2.53"]}
        }))
        .unwrap();
        let ours = CniResult {
            cni_version: String::new(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                ..Interface::default()
            }],
            ips: vec![IpConfig {
                version: None,
                interface: Some(0),
                address: "10.0.0.2/24".parse().unwrap(),
                gateway: None,
            }],
            routes: Vec::new(),
            dns: Dns::default(),
        };
        let r = serde_json::to_value(ours.after(prev).for_version("1.0.0")).unwrap();
        assert_eq!(r["interfaces"][1]["name"], "eth0");
        assert_eq!(r["ips"][1]["interface"], 1);
        assert!(r["ips"][0].get("version").is_none());
        assert_eq!(r["dns"]["nameservers"][0], "192.0.2.53");
    }

    #[test]
    fn errors_are_the_spec_object() {
        let e = CniError::new(code::INVALID_CONFIG, "bad").details("why");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"cniVersion": "1.1.0", "code": 7, "msg": "bad", "details": "why"})
        );
    }

    #[test]
    fn versions_compare() {
        assert!(is_before("0.3.1", "0.4.0"));
        assert!(is_before("0.4.0", "1.0.0"));
        assert!(!is_before("1.1.0", "1.0.0"));
    }

    #[test]
    fn cni_args_split() {
        let env = Env {
            args: Some("IgnoreUnknown=1;K8S_POD_NAME=hcfc1;IP=10.219.0.10".into()),
            ..Env::default()
        };
        let a = env.cni_args().unwrap();
        assert_eq!(a[2], ("IP".to_string(), "10.219.0.10".to_string()));
        let bad = Env {
            args: Some("IP".into()),
            ..Env::default()
        };
        assert_eq!(bad.cni_args().unwrap_err().code, code::INVALID_ENVIRONMENT);
    }
}

//! What a network is: driver, parent, MTU, pools; Docker's option vocabulary; the stored form.

use std::collections::BTreeMap;

use crate::dhcp::DhcpConfig;
use crate::error::{Error, Result};
use crate::ipam::Pool;
use crate::link::ipvlan::{IpvlanFlag, IpvlanMode};
use crate::link::macvlan::MacvlanMode;
use crate::probe::ConflictDetection;
use crate::types::{check_mtu, IfName};

/// How endpoints attach to the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// macvlan children (own MAC each).
    Macvlan(MacvlanMode),
    /// ipvlan children (the parent's MAC); the mode belongs to the parent.
    Ipvlan(IpvlanMode, IpvlanFlag),
}

impl Driver {
    /// `macvlan` or `ipvlan`.
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Macvlan(_) => "macvlan",
            Driver::Ipvlan(..) => "ipvlan",
        }
    }
}

/// A network to create: what `docker network create -d macvlan|ipvlan` takes.
///
/// ```
/// use underlay::network::NetworkSpec;
/// use underlay::MacvlanMode;
/// let spec = NetworkSpec::macvlan("mac_net10", "ens192.10", MacvlanMode::Bridge)
///     .pool("172.16.10.0/24 gateway=172.16.10.1".parse()?);
/// // The same in Docker's words:
/// let docker = NetworkSpec::from_docker("mac_net10", "macvlan", &[("parent", "ens192.10")])?
///     .pool("172.16.10.0/24 gateway=172.16.10.1".parse()?);
/// assert_eq!(spec, docker);
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Name (1..64 of letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Driver and mode.
    pub driver: Driver,
    /// The parent NIC or VLAN sub-interface (`ens192.10` is created on `ens192` if missing);
    /// `None` for an internal network (an isolated dummy parent, no outside access).
    pub parent: Option<String>,
    /// MTU of the endpoints (the parent's when unset; never above it).
    pub mtu: Option<u32>,
    /// Address pools (an IPv4 and/or an IPv6 one: one address from each per endpoint).
    pub pools: Vec<Pool>,
    /// Bring a down parent up instead of refusing.
    pub bring_parent_up: bool,
    /// Check each address on the wire before a connect assigns it (off by default; see
    /// [`ConflictDetection`]). Docker option `conflict_detection` (`on`, `rfc5227`, or
    /// `probes=N,interval_ms=I,wait_ms=W`).
    pub conflict_detection: Option<ConflictDetection>,
    /// Addresses from the LAN's DHCP server instead of pools (IPv4; see [`NetworkSpec::dhcp`]).
    /// Docker option `dhcp` (`on`, or `tries=N,wait_ms=W,subnet=S`).
    pub dhcp: Option<DhcpConfig>,
    /// The parent is looked up in each endpoint's own namespace, not the host's (the CNI
    /// plugins' `linkInContainer`; see [`NetworkSpec::parent_in_endpoint_namespace`]).
    pub parent_in_endpoint_namespace: bool,
}

impl NetworkSpec {
    /// A macvlan network on `parent`.
    pub fn macvlan(name: &str, parent: &str, mode: MacvlanMode) -> NetworkSpec {
        NetworkSpec::new(name, Driver::Macvlan(mode), Some(parent))
    }

    /// An ipvlan network on `parent`.
    pub fn ipvlan(name: &str, parent: &str, mode: IpvlanMode, flag: IpvlanFlag) -> NetworkSpec {
        NetworkSpec::new(name, Driver::Ipvlan(mode, flag), Some(parent))
    }

    /// An internal network: endpoints reach each other only (Docker's `--internal` without a
    /// parent: underlay makes a dummy parent, or a port-less bridge where the kernel has no dummy).
    pub fn internal(name: &str, driver: Driver) -> NetworkSpec {
        NetworkSpec::new(name, driver, None)
    }

    fn new(name: &str, driver: Driver, parent: Option<&str>) -> NetworkSpec {
        NetworkSpec {
            name: name.to_string(),
            driver,
            parent: parent.map(str::to_string),
            mtu: None,
            pools: Vec::new(),
            bring_parent_up: false,
            conflict_detection: None,
            dhcp: None,
            parent_in_endpoint_namespace: false,
        }
    }

    /// From Docker's words: driver `macvlan` or `ipvlan` and the options `parent`,
    /// `macvlan_mode` (default bridge), `ipvlan_mode` (default l2), `ipvlan_flag` (default
    /// bridge), `com.docker.network.driver.mtu` / `mtu`. No `parent` makes an internal network.
    pub fn from_docker(name: &str, driver: &str, options: &[(&str, &str)]) -> Result<NetworkSpec> {
        let opts: BTreeMap<&str, &str> = options.iter().copied().collect();
        let known = [
            "parent",
            "macvlan_mode",
            "ipvlan_mode",
            "ipvlan_flag",
            "mtu",
            "com.docker.network.driver.mtu",
            "conflict_detection",
            "dhcp",
        ];
        if let Some(k) = opts.keys().find(|k| !known.contains(k)) {
            return Err(Error::invalid(format!(
                "network `{name}`: driver option `{k}` is unknown: use {}",
                known.join(", ")
            )));
        }
        let driver = match driver {
            "macvlan" => {
                if opts.contains_key("ipvlan_mode") || opts.contains_key("ipvlan_flag") {
                    return Err(Error::invalid(format!(
                        "network `{name}`: ipvlan options given to the macvlan driver"
                    )));
                }
                Driver::Macvlan(
                    opts.get("macvlan_mode")
                        .map(|m| m.parse())
                        .transpose()?
                        .unwrap_or(MacvlanMode::Bridge),
                )
            }
            "ipvlan" => {
                if opts.contains_key("macvlan_mode") {
                    return Err(Error::invalid(format!(
                        "network `{name}`: macvlan_mode given to the ipvlan driver"
                    )));
                }
                Driver::Ipvlan(
                    opts.get("ipvlan_mode")
                        .map(|m| m.parse())
                        .transpose()?
                        .unwrap_or(IpvlanMode::L2),
                    opts.get("ipvlan_flag")
                        .map(|m| m.parse())
                        .transpose()?
                        .unwrap_or_default(),
                )
            }
            other => {
                return Err(Error::invalid(format!(
                    "network `{name}`: driver `{other}` is unknown: use macvlan or ipvlan"
                )))
            }
        };
        let mut spec = NetworkSpec::new(name, driver, opts.get("parent").copied());
        if let Some(m) = opts
            .get("mtu")
            .or(opts.get("com.docker.network.driver.mtu"))
        {
            spec.mtu = Some(m.parse().map_err(|_| {
                Error::invalid(format!("network `{name}`: MTU `{m}` is not a number"))
            })?);
        }
        if let Some(c) = opts.get("conflict_detection") {
            spec.conflict_detection = match *c {
                "off" | "false" | "0" => None,
                c => Some(
                    ConflictDetection::parse(c)
                        .map_err(|e| e.context(format_args!("network `{name}`")))?,
                ),
            };
        }
        if let Some(d) = opts.get("dhcp") {
            spec.dhcp = match *d {
                "off" | "false" | "0" => None,
                d => Some(
                    DhcpConfig::parse(d)
                        .map_err(|e| e.context(format_args!("network `{name}`")))?,
                ),
            };
        }
        Ok(spec)
    }

    /// Takes the endpoints' addresses from the LAN's DHCP server (IPv4) instead of pools: on
    /// connect each endpoint runs a DHCP client on its own link (its MAC as chaddr, a client
    /// identifier derived from the container id and interface name, so the same container gets
    /// the same lease back) and gets its address, prefix and default route from the server's
    /// ACK. Such a network has no pools and no host access; conflict detection does not apply
    /// (the server owns the addresses). See docs/dhcp.md.
    pub fn dhcp(mut self, how: DhcpConfig) -> NetworkSpec {
        self.dhcp = Some(how);
        self
    }

    /// Looks the parent up in each endpoint's namespace when it connects, and makes the
    /// endpoint's link there, on that parent (the CNI plugins' `linkInContainer`: a NIC or VF
    /// already moved into the container). The host has no part in such a network: its parent
    /// is never created, shared, checked against the host's other networks or removed; the
    /// network has no host access, conflict detection, DHCP or prepared endpoints (they all go
    /// through a parent on the host), and [`Announce::Wire`](super::Announce::Wire) is sent
    /// from the endpoint's link instead. Endpoints are recorded, locked, disconnected and
    /// reconciled as on any network.
    pub fn parent_in_endpoint_namespace(mut self) -> NetworkSpec {
        self.parent_in_endpoint_namespace = true;
        self
    }

    /// Turns conflict detection on with these timings ([`ConflictDetection::default`]: one
    /// probe, 150 ms).
    pub fn conflict_detection(mut self, how: ConflictDetection) -> NetworkSpec {
        self.conflict_detection = Some(how);
        self
    }

    /// Adds a pool.
    pub fn pool(mut self, pool: Pool) -> NetworkSpec {
        self.pools.push(pool);
        self
    }

    /// Sets the endpoints' MTU.
    pub fn mtu(mut self, mtu: u32) -> NetworkSpec {
        self.mtu = Some(mtu);
        self
    }

    /// Brings a down parent up instead of refusing.
    pub fn bring_parent_up(mut self) -> NetworkSpec {
        self.bring_parent_up = true;
        self
    }

    /// Checks everything that needs no kernel.
    pub(crate) fn validate(&self) -> Result<Option<IfName>> {
        if self.dhcp.is_some() {
            crate::ipam::check_name(&self.name)?;
            if !self.pools.is_empty() {
                return Err(Error::invalid(format!(
                    "network `{}` takes its addresses from DHCP: give it no pool (restrict the \
                     server's addresses with DhcpConfig::subnet instead)",
                    self.name
                )));
            }
            if self.parent.is_none() {
                return Err(Error::invalid(format!(
                    "network `{}`: DHCP needs a parent (a wire with a DHCP server on it); an \
                     internal network has none",
                    self.name
                )));
            }
            if self.conflict_detection.is_some() {
                return Err(Error::invalid(format!(
                    "network `{}`: conflict detection applies to pooled addresses; with DHCP the \
                     server owns the addresses: turn one of them off",
                    self.name
                )));
            }
        } else {
            crate::ipam::Network::new(self.name.clone(), self.pools.clone())?;
        }
        if let Some(m) = self.mtu {
            check_mtu(m, &format!("network `{}`", self.name))?;
        }
        if self.parent_in_endpoint_namespace {
            let refuse = |what: &str| {
                Err(Error::invalid(format!(
                    "network `{}`: its parent is in each endpoint's namespace, so {what}",
                    self.name
                )))
            };
            if self.parent.is_none() {
                return refuse("it needs a parent name (an internal network has none)");
            }
            if self.dhcp.is_some() {
                return refuse("DHCP (which releases through a parent on the host) does not apply: turn one of them off");
            }
            if self.conflict_detection.is_some() {
                return refuse("conflict detection (which probes through a parent on the host) does not apply: turn one of them off");
            }
            if self.bring_parent_up {
                return refuse(
                    "bringing the parent up does not apply: bring it up in the container",
                );
            }
        }
        self.parent.as_deref().map(IfName::new).transpose()
    }
}

/// The persisted part of a network (the pools live in the IPAM store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) driver: Driver,
    /// The parent as given (`None`: internal).
    pub(crate) parent: Option<String>,
    /// The link endpoints hang on: the parent, or the internal dummy/bridge.
    pub(crate) lower: String,
    pub(crate) mtu: Option<u32>,
    /// Host access, when enabled.
    pub(crate) shim: Option<ShimRecord>,
    pub(crate) conflict_detection: Option<ConflictDetection>,
    pub(crate) dhcp: Option<DhcpConfig>,
    /// `parent` is in each endpoint's namespace (stored as `endpoint_parent=`, without
    /// `parent=` or `lower=`, so that a version without it refuses the record).
    pub(crate) parent_in_endpoint: bool,
}

/// The stored host-access settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShimRecord {
    pub(crate) name: String,
    pub(crate) address: Option<ipnet::IpNet>,
    /// Route each endpoint's address (true) or the pools' allocation ranges (false).
    pub(crate) per_endpoint: bool,
}

impl Record {
    /// The parent when it is the host's (not an internal network's, nor one in each
    /// endpoint's namespace).
    pub(crate) fn host_parent(&self) -> Option<&str> {
        self.parent.as_deref().filter(|_| !self.parent_in_endpoint)
    }

    pub(crate) fn to_text(&self) -> String {
        let mut s = String::from("# underlay network v1\n");
        s.push_str(&format!("name={}\n", self.name));
        match self.driver {
            Driver::Macvlan(m) => s.push_str(&format!("driver=macvlan\nmode={}\n", m.as_str())),
            Driver::Ipvlan(m, f) => s.push_str(&format!(
                "driver=ipvlan\nmode={}\nflag={}\n",
                m.as_str(),
                f.as_str()
            )),
        }
        match &self.parent {
            Some(p) if self.parent_in_endpoint => s.push_str(&format!("endpoint_parent={p}\n")),
            Some(p) => s.push_str(&format!("parent={p}\nlower={}\n", self.lower)),
            None => s.push_str(&format!("lower={}\n", self.lower)),
        }
        if let Some(m) = self.mtu {
            s.push_str(&format!("mtu={m}\n"));
        }
        if let Some(c) = self.conflict_detection {
            s.push_str(&format!("conflict_detection={}\n", c.to_text()));
        }
        if let Some(d) = self.dhcp {
            s.push_str(&format!("dhcp={}\n", d.to_text()));
        }
        if let Some(sh) = &self.shim {
            s.push_str(&format!("shim={}\n", sh.name));
            if let Some(a) = sh.address {
                s.push_str(&format!("shim_address={a}\n"));
            }
            s.push_str(&format!(
                "shim_routes={}\n",
                if sh.per_endpoint {
                    "endpoints"
                } else {
                    "ranges"
                }
            ));
        }
        s
    }

    pub(crate) fn parse(text: &str, origin: &str) -> Result<Record> {
        let corrupt = |why: String| {
            Error::new(
                crate::ErrorKind::Corrupt,
                format!("network file {origin} is unreadable: {why}; fix or remove it"),
            )
        };
        let mut kv = BTreeMap::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| corrupt(format!("line `{line}` is not key=value")))?;
            kv.insert(k, v);
        }
        let get = |k: &str| {
            kv.get(k)
                .copied()
                .ok_or_else(|| corrupt(format!("`{k}` is missing")))
        };
        let mode = get("mode")?;
        let driver = match get("driver")? {
            "macvlan" => Driver::Macvlan(mode.parse().map_err(|e: Error| corrupt(e.to_string()))?),
            "ipvlan" => Driver::Ipvlan(
                mode.parse().map_err(|e: Error| corrupt(e.to_string()))?,
                get("flag")?
                    .parse()
                    .map_err(|e: Error| corrupt(e.to_string()))?,
            ),
            d => return Err(corrupt(format!("driver `{d}` is unknown"))),
        };
        let mtu = kv
            .get("mtu")
            .map(|m| m.parse().map_err(|_| corrupt(format!("mtu `{m}`"))))
            .transpose()?;
        let shim = match kv.get("shim") {
            None => None,
            Some(n) => Some(ShimRecord {
                name: n.to_string(),
                address: kv
                    .get("shim_address")
                    .map(|a| {
                        a.parse()
                            .map_err(|_| corrupt(format!("shim_address `{a}`")))
                    })
                    .transpose()?,
                per_endpoint: kv.get("shim_routes").copied() != Some("ranges"),
            }),
        };
        let endpoint_parent = kv.get("endpoint_parent").map(|p| p.to_string());
        if endpoint_parent.is_some() && (kv.contains_key("parent") || kv.contains_key("lower")) {
            return Err(corrupt(
                "`endpoint_parent` goes with neither `parent` nor `lower`".to_string(),
            ));
        }
        Ok(Record {
            name: get("name")?.to_string(),
            driver,
            lower: match &endpoint_parent {
                Some(p) => p.clone(),
                None => get("lower")?.to_string(),
            },
            parent_in_endpoint: endpoint_parent.is_some(),
            parent: endpoint_parent.or_else(|| kv.get("parent").map(|p| p.to_string())),
            mtu,
            shim,
            conflict_detection: kv
                .get("conflict_detection")
                .map(|c| ConflictDetection::parse(c).map_err(|e| corrupt(e.to_string())))
                .transpose()?,
            dhcp: kv
                .get("dhcp")
                .map(|c| DhcpConfig::parse(c).map_err(|e| corrupt(e.to_string())))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_options() {
        let s = NetworkSpec::from_docker(
            "n",
            "ipvlan",
            &[
                ("parent", "eth0"),
                ("ipvlan_mode", "l3"),
                ("ipvlan_flag", "private"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.driver,
            Driver::Ipvlan(IpvlanMode::L3, IpvlanFlag::Private)
        );
        let s = NetworkSpec::from_docker(
            "n",
            "macvlan",
            &[
                ("parent", "eth0"),
                ("macvlan_mode", "vepa"),
                ("mtu", "1400"),
            ],
        )
        .unwrap();
        assert_eq!(
            (s.driver, s.mtu),
            (Driver::Macvlan(MacvlanMode::Vepa), Some(1400))
        );
        assert_eq!(
            NetworkSpec::from_docker("n", "macvlan", &[])
                .unwrap()
                .parent,
            None
        );
        for (d, o) in [
            ("bridge", vec![]),
            ("macvlan", vec![("ipvlan_mode", "l2")]),
            ("macvlan", vec![("color", "red")]),
            ("macvlan", vec![("macvlan_mode", "x")]),
            ("ipvlan", vec![("mtu", "big")]),
        ] {
            assert!(NetworkSpec::from_docker("n", d, &o).is_err(), "{d} {o:?}");
        }
    }

    #[test]
    fn dhcp_option_and_refusals() {
        let on = NetworkSpec::from_docker("n", "macvlan", &[("parent", "eth0"), ("dhcp", "on")])
            .unwrap();
        assert_eq!(on.dhcp, Some(DhcpConfig::default()));
        assert!(on.validate().is_ok());
        let e = NetworkSpec::from_docker("n", "macvlan", &[("dhcp", "tries=99")]).unwrap_err();
        assert!(e.to_string().contains("network `n`"), "{e}");
        let pooled = on.clone().pool("10.0.0.0/24".parse().unwrap());
        let e = pooled.validate().unwrap_err();
        assert!(e.to_string().contains("no pool"), "{e}");
        let internal = NetworkSpec::internal("n", Driver::Macvlan(MacvlanMode::Bridge))
            .dhcp(DhcpConfig::default());
        assert!(internal
            .validate()
            .unwrap_err()
            .to_string()
            .contains("parent"));
        let probing = on.conflict_detection(ConflictDetection::default());
        assert!(probing.validate().is_err());
    }

    #[test]
    fn parent_in_endpoint_namespace_refusals() {
        let ok = NetworkSpec::macvlan("n", "eth1", MacvlanMode::Bridge)
            .parent_in_endpoint_namespace()
            .pool("10.0.0.0/24".parse().unwrap());
        assert!(ok.validate().is_ok());
        let internal = NetworkSpec::internal("n", Driver::Macvlan(MacvlanMode::Bridge))
            .parent_in_endpoint_namespace()
            .pool("10.0.0.0/24".parse().unwrap());
        let dhcp = NetworkSpec::macvlan("n", "eth1", MacvlanMode::Bridge)
            .parent_in_endpoint_namespace()
            .dhcp(DhcpConfig::default());
        let probing = ok.clone().conflict_detection(ConflictDetection::default());
        let up = ok.clone().bring_parent_up();
        for (bad, word) in [
            (internal, "parent name"),
            (dhcp, "DHCP"),
            (probing, "conflict detection"),
            (up, "bring it up in the container"),
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
            assert!(
                e.to_string().contains(word) && e.to_string().contains("network `n`"),
                "{e}"
            );
        }
    }

    #[test]
    fn conflict_detection_option() {
        let on = NetworkSpec::from_docker("n", "macvlan", &[("conflict_detection", "on")]).unwrap();
        assert_eq!(on.conflict_detection, Some(ConflictDetection::default()));
        let rfc =
            NetworkSpec::from_docker("n", "macvlan", &[("conflict_detection", "rfc5227")]).unwrap();
        assert_eq!(rfc.conflict_detection, Some(ConflictDetection::rfc5227()));
        let off =
            NetworkSpec::from_docker("n", "macvlan", &[("conflict_detection", "off")]).unwrap();
        assert_eq!(off.conflict_detection, None);
        for bad in [
            "probes=0,wait_ms=100",
            "probes=1,wait_ms=0",
            "sometimes",
            "probes=x",
        ] {
            let e = NetworkSpec::from_docker("n", "macvlan", &[("conflict_detection", bad)])
                .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains("network `n`"), "{e}");
        }
    }

    #[test]
    fn record_round_trip() {
        let r = Record {
            name: "mac_net10".into(),
            driver: Driver::Ipvlan(IpvlanMode::L3s, IpvlanFlag::Vepa),
            parent: Some("ens192.10".into()),
            lower: "ens192.10".into(),
            mtu: Some(1400),
            shim: Some(ShimRecord {
                name: "mac_net10-h".into(),
                address: Some("172.16.10.250/24".parse().unwrap()),
                per_endpoint: false,
            }),
            conflict_detection: Some(ConflictDetection::rfc5227()),
            dhcp: None,
            parent_in_endpoint: false,
        };
        assert_eq!(Record::parse(&r.to_text(), "x").unwrap(), r);
        // A parent in the endpoints' namespaces has no `parent=` or `lower=` line: a version
        // that reads those as the host's refuses the record (it needs `lower`).
        let inside = Record {
            parent: Some("eth1".into()),
            lower: "eth1".into(),
            shim: None,
            conflict_detection: None,
            parent_in_endpoint: true,
            ..r.clone()
        };
        let text = inside.to_text();
        assert!(
            !text.contains("\nparent=") && !text.contains("lower="),
            "{text}"
        );
        assert_eq!(Record::parse(&text, "x").unwrap(), inside);
        let both = format!("{text}lower=eth1\n");
        assert_eq!(
            Record::parse(&both, "x").unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
        let d = Record {
            dhcp: Some(DhcpConfig::default().subnet("10.9.0.0/16".parse().unwrap())),
            conflict_detection: None,
            ..r.clone()
        };
        assert_eq!(Record::parse(&d.to_text(), "x").unwrap(), d);
        let q = Record {
            conflict_detection: Some(
                ConflictDetection::new(
                    2,
                    std::time::Duration::from_millis(50),
                    std::time::Duration::from_millis(120),
                )
                .unwrap(),
            ),
            ..r.clone()
        };
        assert_eq!(Record::parse(&q.to_text(), "x").unwrap(), q);
        let e = Record::parse("name=x\n", "/var/lib/underlay/networks/x").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        assert!(
            e.to_string().contains("/var/lib/underlay/networks/x"),
            "{e}"
        );
    }
}

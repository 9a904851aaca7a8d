//! DHCPv4 as a network's address source: the settings ([`DhcpConfig`]), the lease an endpoint
//! holds ([`DhcpLease`], kept in its record) and the client that gets, renews and releases it
//! from inside the endpoint's namespace (`client`, over `wire`'s packet socket). The wire format
//! is `dhcproto`'s; see docs/dhcp.md.

pub(crate) mod client;
mod wire;

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;

use crate::error::{Error, ErrorKind, Result};
use crate::types::MacAddr;

/// How a DHCP network's endpoints get their addresses: the number of tries of each exchange
/// (DISCOVER, REQUEST), the wait for the first answer (doubled at each retry, RFC 2131 4.1),
/// and an optional subnet the server's addresses must lie in (an offer outside is refused).
///
/// ```
/// use underlay::DhcpConfig;
/// let c = DhcpConfig::default();
/// assert_eq!((c.tries(), c.first_wait().as_millis()), (4, 1000));
/// let quick = DhcpConfig::new(2, std::time::Duration::from_millis(200))?
///     .subnet("10.40.0.0/16".parse().unwrap());
/// assert_eq!(quick.total_wait().as_millis(), 600);
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpConfig {
    tries: u32,
    first_wait: Duration,
    subnet: Option<Ipv4Net>,
}

impl Default for DhcpConfig {
    /// 4 tries, 1 s first (1 + 2 + 4 + 8 = 15 s before a connect gives up), no subnet.
    fn default() -> Self {
        DhcpConfig {
            tries: 4,
            first_wait: Duration::from_secs(1),
            subnet: None,
        }
    }
}

impl DhcpConfig {
    /// At most this many tries.
    pub const MAX_TRIES: u32 = 10;
    /// At most this long a first wait (each retry waits twice the one before, up to 64 s).
    pub const MAX_FIRST_WAIT: Duration = Duration::from_secs(16);

    /// `tries` (1 to [`Self::MAX_TRIES`]) of each exchange, the first waiting `first_wait`
    /// (10 ms to [`Self::MAX_FIRST_WAIT`]) for an answer.
    pub fn new(tries: u32, first_wait: Duration) -> Result<DhcpConfig> {
        if tries == 0 || tries > Self::MAX_TRIES {
            return Err(Error::invalid(format!(
                "DHCP tries {tries}: give 1 to {}",
                Self::MAX_TRIES
            )));
        }
        if first_wait < Duration::from_millis(10) || first_wait > Self::MAX_FIRST_WAIT {
            return Err(Error::invalid(format!(
                "DHCP first wait {} ms: give 10 ms to {} s",
                first_wait.as_millis(),
                Self::MAX_FIRST_WAIT.as_secs()
            )));
        }
        Ok(DhcpConfig {
            tries,
            first_wait,
            subnet: None,
        })
    }

    /// Accepts only addresses inside `subnet` (an offer outside is refused).
    pub fn subnet(mut self, subnet: Ipv4Net) -> DhcpConfig {
        self.subnet = Some(subnet.trunc());
        self
    }

    /// Tries of each exchange.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The wait for the first answer.
    pub fn first_wait(&self) -> Duration {
        self.first_wait
    }

    /// The subnet addresses must lie in, if any.
    pub fn allowed_subnet(&self) -> Option<Ipv4Net> {
        self.subnet
    }

    /// The wait before one exchange gives up: the sum of its tries' waits.
    pub fn total_wait(&self) -> Duration {
        (0..self.tries).map(|i| self.wait(i)).sum()
    }

    /// The wait of try `i` (from 0): doubled each time, at most 64 s.
    pub(crate) fn wait(&self, i: u32) -> Duration {
        (self.first_wait * 2u32.saturating_pow(i)).min(Duration::from_secs(64))
    }

    /// `tries=N,wait_ms=W[,subnet=S]`, the record's and Docker's form.
    pub(crate) fn to_text(self) -> String {
        let mut s = format!(
            "tries={},wait_ms={}",
            self.tries,
            self.first_wait.as_millis()
        );
        if let Some(n) = self.subnet {
            s.push_str(&format!(",subnet={n}"));
        }
        s
    }

    /// `on` (the defaults) or `tries=N,wait_ms=W,subnet=S` (each optional).
    pub(crate) fn parse(text: &str) -> Result<DhcpConfig> {
        let bad = |why: String| {
            Error::invalid(format!(
                "DHCP setting `{}`: {why}: use `on` or `tries=N,wait_ms=W,subnet=A.B.C.D/L` (each optional)",
                crate::error::shown(text)
            ))
        };
        let mut c = DhcpConfig::default();
        if matches!(text, "on" | "true" | "1") {
            return Ok(c);
        }
        let (mut tries, mut wait) = (c.tries, c.first_wait);
        for part in text.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("`{part}` is not key=value")))?;
            match k {
                "tries" => tries = v.parse().map_err(|_| bad(format!("tries `{v}`")))?,
                "wait_ms" => {
                    wait =
                        Duration::from_millis(v.parse().map_err(|_| bad(format!("wait_ms `{v}`")))?)
                }
                "subnet" => {
                    c.subnet = Some(
                        v.parse::<Ipv4Net>()
                            .map_err(|_| bad(format!("subnet `{v}` is not an IPv4 subnet")))?
                            .trunc(),
                    )
                }
                _ => return Err(bad(format!("`{k}` is unknown"))),
            }
        }
        let checked = DhcpConfig::new(tries, wait).map_err(|e| bad(e.message().to_string()))?;
        c.tries = checked.tries;
        c.first_wait = checked.first_wait;
        Ok(c)
    }
}

/// A lease from a DHCP server, as an endpoint holds it (and its record keeps it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhcpLease {
    /// The address with the server's subnet mask.
    pub address: Ipv4Net,
    /// The server (its server identifier).
    pub server: Ipv4Addr,
    /// Where the server's answer came from on the link (the server, or a relay): unicast
    /// renewals and the release go there.
    pub server_mac: MacAddr,
    /// The first router the server gave (the default route's gateway), if any.
    pub router: Option<Ipv4Addr>,
    /// The lease time (`u32::MAX` s: infinite).
    pub lease_time: Duration,
    /// Renew (unicast to the server) after this long.
    pub t1: Duration,
    /// Rebind (broadcast) after this long.
    pub t2: Duration,
    /// When the server's ACK came.
    pub obtained: SystemTime,
    /// The DNS servers the server gave (option 6), in its order; empty when none.
    pub dns_servers: Vec<Ipv4Addr>,
    /// The DNS domain the server gave (option 15), if any.
    pub domain: Option<String>,
}

impl DhcpLease {
    /// Whether the lease never ends.
    pub fn is_infinite(&self) -> bool {
        self.lease_time.as_secs() >= u64::from(u32::MAX)
    }

    /// When the lease ends (`None`: never).
    pub fn expires(&self) -> Option<SystemTime> {
        (!self.is_infinite()).then(|| self.obtained + self.lease_time)
    }

    /// When renewal is due (`None`: never).
    pub fn renew_at(&self) -> Option<SystemTime> {
        (!self.is_infinite()).then(|| self.obtained + self.t1)
    }

    /// When rebinding is due (`None`: never).
    pub fn rebind_at(&self) -> Option<SystemTime> {
        (!self.is_infinite()).then(|| self.obtained + self.t2)
    }

    /// One record line: `address server=.. mac=.. [router=..] lease=S t1=S t2=S at=UNIX_MS
    /// [dns=A,B] [domain=D]`.
    pub(crate) fn to_text(&self) -> String {
        let mut s = format!(
            "{} server={} mac={}",
            self.address, self.server, self.server_mac
        );
        if let Some(r) = self.router {
            s.push_str(&format!(" router={r}"));
        }
        let at = self
            .obtained
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        s.push_str(&format!(
            " lease={} t1={} t2={} at={at}",
            self.lease_time.as_secs(),
            self.t1.as_secs(),
            self.t2.as_secs()
        ));
        if !self.dns_servers.is_empty() {
            let list: Vec<String> = self.dns_servers.iter().map(|a| a.to_string()).collect();
            s.push_str(&format!(" dns={}", list.join(",")));
        }
        if let Some(d) = &self.domain {
            s.push_str(&format!(" domain={d}"));
        }
        s
    }

    pub(crate) fn parse(text: &str) -> Option<DhcpLease> {
        let mut parts = text.split_whitespace();
        let address: Ipv4Net = parts.next()?.parse().ok()?;
        let (mut server, mut mac, mut router, mut lease, mut t1, mut t2, mut at) =
            (None, None, None, None, None, None, None);
        let (mut dns_servers, mut domain) = (Vec::new(), None);
        for p in parts {
            let (k, v) = p.split_once('=')?;
            match k {
                "server" => server = Some(v.parse().ok()?),
                "mac" => mac = Some(v.parse().ok()?),
                "router" => router = Some(v.parse().ok()?),
                "lease" => lease = Some(Duration::from_secs(v.parse().ok()?)),
                "t1" => t1 = Some(Duration::from_secs(v.parse().ok()?)),
                "t2" => t2 = Some(Duration::from_secs(v.parse().ok()?)),
                "at" => at = Some(UNIX_EPOCH + Duration::from_millis(v.parse().ok()?)),
                "dns" => {
                    dns_servers = v
                        .split(',')
                        .map(|a| a.parse().ok())
                        .collect::<Option<Vec<Ipv4Addr>>>()?
                }
                "domain" => domain = Some(v.to_string()),
                _ => {}
            }
        }
        Some(DhcpLease {
            address,
            server: server?,
            server_mac: mac?,
            router,
            lease_time: lease?,
            t1: t1?,
            t2: t2?,
            obtained: at?,
            dns_servers,
            domain,
        })
    }
}

/// The client identifier (option 61) of endpoint `container_id`/`ifname`: type 0 and 16 bytes
/// hashed from both, so the same container asks for (and gets) the same lease whatever its MAC.
pub(crate) fn client_id(container_id: &str, ifname: &str) -> Vec<u8> {
    let seed = format!("underlay-dhcp/{container_id}/{ifname}");
    let mut out = vec![0u8];
    for salt in [0u64, 0x9e37_79b9_7f4a_7c15] {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        out.extend_from_slice(&h.to_be_bytes());
    }
    out
}

/// The host name (option 12) sent for `name`: its letters, digits and `-`, at most 63 (a DNS
/// label); `None` when nothing is left.
pub(crate) fn hostname_for(name: &str) -> Option<String> {
    let h: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    let h = h.trim_matches('-').to_string();
    (!h.is_empty()).then_some(h)
}

/// The error of an exchange nobody answered.
/// `label` names the network and the endpoint.
pub(crate) fn no_answer(what: &str, label: &str, cfg: &DhcpConfig) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{label}: no DHCP server answered the {what} \
             ({} tries in {} ms): check that a DHCP server serves the parent's segment (and \
             that its VLAN reaches it), or raise the tries/wait (DhcpConfig)",
            cfg.tries,
            cfg.total_wait().as_millis()
        ),
    )
    .with_errno(libc::ETIMEDOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_round_trip_and_refusals() {
        let c = DhcpConfig::new(3, Duration::from_millis(250))
            .unwrap()
            .subnet("10.1.2.3/24".parse().unwrap());
        assert_eq!(c.to_text(), "tries=3,wait_ms=250,subnet=10.1.2.0/24");
        assert_eq!(DhcpConfig::parse(&c.to_text()).unwrap(), c);
        assert_eq!(DhcpConfig::parse("on").unwrap(), DhcpConfig::default());
        assert_eq!(c.total_wait(), Duration::from_millis(250 + 500 + 1000));
        for bad in ["tries=0", "wait_ms=1", "subnet=fd00::/64", "color=red", "x"] {
            let e = DhcpConfig::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn lease_text_round_trip() {
        let l = DhcpLease {
            address: "10.0.0.7/24".parse().unwrap(),
            server: "10.0.0.1".parse().unwrap(),
            server_mac: "02:00:00:00:00:01".parse().unwrap(),
            router: Some("10.0.0.254".parse().unwrap()),
            lease_time: Duration::from_secs(3600),
            t1: Duration::from_secs(1800),
            t2: Duration::from_secs(3150),
            obtained: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            dns_servers: vec!["10.0.0.53".parse().unwrap(), "10.0.0.54".parse().unwrap()],
            domain: Some("lan.example".into()),
        };
        assert_eq!(DhcpLease::parse(&l.to_text()).unwrap(), l);
        let no_router = DhcpLease {
            router: None,
            dns_servers: Vec::new(),
            domain: None,
            ..l.clone()
        };
        assert_eq!(DhcpLease::parse(&no_router.to_text()).unwrap(), no_router);
        assert!(DhcpLease::parse("10.0.0.7/24 server=10.0.0.1").is_none());
    }

    #[test]
    fn client_ids_are_stable_and_distinct() {
        let a = client_id("c1", "eth0");
        assert_eq!(a, client_id("c1", "eth0"));
        assert_eq!(a.len(), 17);
        assert_ne!(a, client_id("c1", "eth1"));
        assert_ne!(a, client_id("c2", "eth0"));
        assert_eq!(hostname_for("web_1.x"), Some("web1x".into()));
        assert_eq!(hostname_for("__"), None);
    }
}

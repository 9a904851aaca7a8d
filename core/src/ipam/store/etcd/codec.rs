//! The etcd store's key layout and value encodings (text, so `etcdctl get` shows them).
//!
//! Under the prefix `P` (default `/underlay/`):
//!
//! | key | value |
//! | --- | --- |
//! | `P ipam/catalog` | nonce of the last network create, delete, join or leave (serialises them) |
//! | `P ipam/hostlease/<host>` | the id of the host's lease (hex), attached to that lease |
//! | `P ipam/net/<name>` | the definition, [`Network::to_text`] |
//! | `P ipam/data/<name>/version` | the network's version, decimal |
//! | `P ipam/data/<name>/addr/<ip>` | `<container>/<ifname> host=<host>[ boot=<id>]` |
//! | `P ipam/data/<name>/cursor/<pool>` | the pool's next-fit cursor |
//! | `P ipam/data/<name>/log/<version, 20 digits>` | the commit that led to that version |
//! | `P ipam/data/<name>/hold/<ip>` | `<owner> <holder>...`: a shared reservation's holders |
//! | `P ipam/data/<name>/member/<host>` | `host=<host>`: the host uses the network |
//! | `P ipam/data/<name>/slice/<first ip>` | `host=<host> size=<n>`: a node slice |
//! | `P ipam/data/<name>/slicesize` | the network's one slice size, decimal |
//! | `P ipam/data/<name>/slicewrites` | the host of the last commit in slices (its revision counts) |

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{BootId, Owner, Record};
use crate::ipam::store::Change;

/// How many commits the log keeps (older ones are deleted by the commit that adds one).
pub(super) const LOG_KEEP: u64 = 1024;

/// Keys of one store (a prefix) and one network.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(super) fn catalog(&self) -> String {
        format!("{}ipam/catalog", self.prefix)
    }

    pub(super) fn host_lease(&self, host: &str) -> String {
        format!("{}ipam/hostlease/{host}", self.prefix)
    }

    pub(super) fn nets(&self) -> String {
        format!("{}ipam/net/", self.prefix)
    }

    pub(super) fn net(&self, name: &str) -> String {
        format!("{}ipam/net/{name}", self.prefix)
    }

    pub(super) fn data(&self, name: &str) -> String {
        format!("{}ipam/data/{name}/", self.prefix)
    }

    pub(super) fn version(&self, name: &str) -> String {
        format!("{}version", self.data(name))
    }

    pub(super) fn addrs(&self, name: &str) -> String {
        format!("{}addr/", self.data(name))
    }

    pub(super) fn addr(&self, name: &str, ip: IpAddr) -> String {
        format!("{}addr/{ip}", self.data(name))
    }

    pub(super) fn cursors(&self, name: &str) -> String {
        format!("{}cursor/", self.data(name))
    }

    pub(super) fn cursor(&self, name: &str, pool: usize) -> String {
        format!("{}cursor/{pool}", self.data(name))
    }

    pub(super) fn log(&self, name: &str, version: u64) -> String {
        format!("{}log/{version:020}", self.data(name))
    }

    pub(super) fn members(&self, name: &str) -> String {
        format!("{}member/", self.data(name))
    }

    pub(super) fn member(&self, name: &str, host: &str) -> String {
        format!("{}member/{host}", self.data(name))
    }

    pub(super) fn holds(&self, name: &str) -> String {
        format!("{}hold/", self.data(name))
    }

    pub(super) fn hold(&self, name: &str, ip: IpAddr) -> String {
        format!("{}hold/{ip}", self.data(name))
    }

    pub(super) fn slices(&self, name: &str) -> String {
        format!("{}slice/", self.data(name))
    }

    pub(super) fn slice(&self, name: &str, first: IpAddr) -> String {
        format!("{}slice/{first}", self.data(name))
    }

    pub(super) fn slice_size(&self, name: &str) -> String {
        format!("{}slicesize", self.data(name))
    }

    pub(super) fn slice_writes(&self, name: &str) -> String {
        format!("{}slicewrites", self.data(name))
    }

    /// The end of the log's key range (`log0`: `0` follows `/`).
    pub(super) fn log_end(&self, name: &str) -> String {
        format!("{}log0", self.data(name))
    }
}

/// The error for a value or key under the prefix that this store did not write.
pub(super) fn corrupt(key: &[u8], what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "etcd key `{}` holds something the IPAM store did not write: {what}; another tool \
             wrote under underlay's prefix: restore or delete the key (`etcdctl get/del`), or \
             give underlay a prefix of its own",
            String::from_utf8_lossy(key).escape_debug()
        ),
    )
}

pub(super) fn text<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(value).map_err(|_| corrupt(key, "the value is not UTF-8"))
}

pub(super) fn parse_version(key: &[u8], value: &[u8]) -> Result<u64> {
    text(key, value)?
        .parse()
        .map_err(|_| corrupt(key, "the version is not a decimal number"))
}

fn parse_owner(key: &[u8], s: &str) -> Result<Owner> {
    let (id, ifname) = s.split_once('/').ok_or_else(|| {
        corrupt(
            key,
            format_args!("`{s}` is not an owner (container/ifname)"),
        )
    })?;
    Owner::new(id, ifname).map_err(|e| corrupt(key, e.message()))
}

/// The value of an address key: the owner first, so a compare on the owner's prefix tells
/// whether it still holds the address.
pub(super) fn encode_record(r: &Record, host: &str) -> String {
    let mut s = format!("{} host={host}", r.owner);
    if let Some(b) = &r.boot_id {
        let _ = write!(s, " boot={b}");
    }
    s
}

/// The value range `(lo, hi)` (exclusive) that holds exactly the records of `owner`.
pub(super) fn owner_range(owner: &Owner) -> (String, String) {
    let o = owner.to_string();
    // Records are `<owner> host=...`: after the owner comes a space (0x20); `!` is 0x21.
    (o.clone(), format!("{o}!"))
}

/// A record and the host that claimed it.
pub(super) fn decode_record(key: &[u8], ip: IpAddr, value: &[u8]) -> Result<(Record, String)> {
    let s = text(key, value)?;
    let mut words = s.split(' ');
    let owner = parse_owner(key, words.next().unwrap_or(""))?;
    let mut host = None;
    let mut boot_id = None;
    for w in words {
        match w.split_once('=') {
            Some(("host", h)) if !h.is_empty() => host = Some(h.to_string()),
            Some(("boot", b)) => {
                boot_id = Some(BootId::new(b).map_err(|e| corrupt(key, e.message()))?)
            }
            _ => return Err(corrupt(key, format_args!("unknown field `{w}`"))),
        }
    }
    let host = host.ok_or_else(|| corrupt(key, "the record names no host"))?;
    Ok((
        Record {
            addr: ip,
            owner,
            boot_id,
        },
        host,
    ))
}

/// The suffix of `key` after `prefix`, or a corruption error.
pub(super) fn suffix<'a>(key: &'a [u8], prefix: &str) -> Result<&'a str> {
    let s = std::str::from_utf8(key).map_err(|_| corrupt(key, "the key is not UTF-8"))?;
    s.strip_prefix(prefix)
        .ok_or_else(|| corrupt(key, "unexpected key"))
}

fn record_line(kind: &str, r: &Record, out: &mut String) {
    let boot = r.boot_id.as_ref().map(|b| b.as_str()).unwrap_or("-");
    let _ = writeln!(out, "{kind} {} {} {boot}", r.addr, r.owner);
}

/// A log entry: the commit's nonce and its changes, one per line.
pub(super) fn encode_log(nonce: &str, changes: &[Change]) -> String {
    let mut s = format!("commit {nonce}\n");
    for c in changes {
        match c {
            Change::Claim(r) => record_line("claim", r, &mut s),
            Change::Release(r) => record_line("release", r, &mut s),
            Change::Cursor { pool, addr } => {
                let _ = writeln!(s, "cursor {pool} {addr}");
            }
        }
    }
    s
}

/// The nonce of a log entry.
pub(super) fn log_nonce<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a str> {
    text(key, value)?
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("commit "))
        .ok_or_else(|| corrupt(key, "a log entry starts with `commit NONCE`"))
}

pub(super) fn decode_log(key: &[u8], value: &[u8]) -> Result<Vec<Change>> {
    let s = text(key, value)?;
    let mut out = Vec::new();
    for line in s.lines().skip(1) {
        let w: Vec<&str> = line.split(' ').collect();
        let ip = |s: &str| -> Result<IpAddr> {
            s.parse()
                .map_err(|_| corrupt(key, format_args!("`{s}` is not an address")))
        };
        let record = |w: &[&str]| -> Result<Record> {
            Ok(Record {
                addr: ip(w[1])?,
                owner: parse_owner(key, w[2])?,
                boot_id: match w[3] {
                    "-" => None,
                    b => Some(BootId::new(b).map_err(|e| corrupt(key, e.message()))?),
                },
            })
        };
        let c = match w.as_slice() {
            ["claim", ..] if w.len() == 4 => Change::Claim(record(&w)?),
            ["release", ..] if w.len() == 4 => Change::Release(record(&w)?),
            ["cursor", pool, addr] => Change::Cursor {
                pool: pool
                    .parse()
                    .map_err(|_| corrupt(key, format_args!("bad pool index `{pool}`")))?,
                addr: ip(addr)?,
            },
            _ => return Err(corrupt(key, format_args!("bad log line `{line}`"))),
        };
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, who: &str, boot: Option<&str>) -> Record {
        Record {
            addr: ip.parse().unwrap(),
            owner: Owner::new(who, "eth0").unwrap(),
            boot_id: boot.map(|b| BootId::new(b).unwrap()),
        }
    }

    #[test]
    fn records_and_logs_round_trip() {
        let a = rec("10.0.0.2", "c1", Some("b-1"));
        let b = rec("fd00::2", "c2", None);
        for r in [&a, &b] {
            let v = encode_record(r, "h1");
            let (back, host) = decode_record(b"k", r.addr, v.as_bytes()).unwrap();
            assert_eq!((&back, host.as_str()), (r, "h1"));
            let (lo, hi) = owner_range(&r.owner);
            assert!(v.as_str() > lo.as_str() && v.as_str() < hi.as_str());
        }
        // Another owner whose name extends this one's is outside the range.
        let (lo, hi) = owner_range(&Owner::new("c", "eth0").unwrap());
        let other = encode_record(&rec("10.0.0.3", "c", None), "h").replace("c/eth0", "c/eth00");
        assert!(!(other.as_str() > lo.as_str() && other.as_str() < hi.as_str()));
        let changes = vec![
            Change::Claim(a.clone()),
            Change::Cursor {
                pool: 1,
                addr: b.addr,
            },
            Change::Release(b),
        ];
        let log = encode_log("n-1", &changes);
        assert_eq!(log_nonce(b"k", log.as_bytes()).unwrap(), "n-1");
        assert_eq!(decode_log(b"k", log.as_bytes()).unwrap(), changes);
    }

    #[test]
    fn foreign_values_are_corrupt_and_name_the_key() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        for bad in [&b"x"[..], b"c/eth0", b"c/eth0 color=red host=h", b"\xff"] {
            let e = decode_record(b"/underlay/k", ip, bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt);
            assert!(e.message().contains("/underlay/k"), "{e}");
        }
        assert!(decode_log(b"k", b"commit n\nfrob 1").is_err());
        assert!(parse_version(b"k", b"seven").is_err());
    }
}

//! The native text formats of the local store.
//!
//! `network` (written once):
//! ```text
//! underlay-ipam-network 1
//! name mac_net1
//! pool 172.22.16.0/24 gateway=172.22.16.1 reserve=exclude_host=172.22.16.21
//! end
//! ```
//! `state` (replaced on every commit):
//! ```text
//! underlay-ipam-state 1
//! version 42
//! boot 0 9de46b1e-304a-4f91-a8e3-02a03217bf44
//! cursor 0 172.22.16.12
//! lease 172.22.16.10 4f0c2a9e eth0 0
//! lease 172.22.16.11 77aa01 eth0 -
//! end 2 5f1c0e3a9b7d2c41
//! ```
//! `end` carries the number of leases and the FNV-1a 64 hash of every byte before it, so a torn
//! or edited file is detected.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{BootId, Owner, Record};
use crate::ipam::network::Network;

use super::Table;

const NETWORK_MAGIC: &str = "underlay-ipam-network 1";
const STATE_MAGIC: &str = "underlay-ipam-state 1";

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "IPAM file {} is corrupt: {what}; underlay never resets a store silently: restore \
             the file from a backup, or move the network's directory away to start it empty \
             (its leases are then forgotten)",
            path.display()
        ),
    )
}

pub(crate) fn encode_network(net: &Network) -> String {
    format!("{NETWORK_MAGIC}\n{net}end\n")
}

pub(crate) fn decode_network(data: &[u8], path: &Path) -> Result<Network> {
    let text = std::str::from_utf8(data).map_err(|_| corrupt(path, "it is not UTF-8 text"))?;
    let body = text
        .strip_prefix(NETWORK_MAGIC)
        .and_then(|t| t.strip_prefix('\n'))
        .ok_or_else(|| {
            corrupt(
                path,
                format_args!("it does not start with `{NETWORK_MAGIC}`"),
            )
        })?;
    let body = body
        .strip_suffix("end\n")
        .ok_or_else(|| corrupt(path, "it does not end with an `end` line (truncated?)"))?;
    Network::parse(body, &path.display().to_string()).map_err(|e| corrupt(path, e.message()))
}

pub(crate) fn encode_state(t: &Table) -> Vec<u8> {
    let mut s = String::with_capacity(64 + t.records.len() * 80);
    let _ = writeln!(s, "{STATE_MAGIC}\nversion {}", t.version);
    let mut boots: Vec<&BootId> = Vec::new();
    for r in t.records.values() {
        if let Some(b) = &r.boot_id {
            if !boots.contains(&b) {
                boots.push(b);
            }
        }
    }
    for (i, b) in boots.iter().enumerate() {
        let _ = writeln!(s, "boot {i} {b}");
    }
    for (i, c) in t.cursors.iter().enumerate() {
        if let Some(c) = c {
            let _ = writeln!(s, "cursor {i} {c}");
        }
    }
    for r in t.records.values() {
        let _ = write!(
            s,
            "lease {} {} {} ",
            r.addr,
            r.owner.container_id(),
            r.owner.ifname().as_str()
        );
        match &r.boot_id {
            Some(b) => {
                let i = boots.iter().position(|x| *x == b).expect("listed");
                let _ = writeln!(s, "{i}");
            }
            None => s.push_str("-\n"),
        }
    }
    let h = fnv(s.as_bytes());
    let _ = writeln!(s, "end {} {h:016x}", t.records.len());
    s.into_bytes()
}

/// The version in a state file's first lines.
pub(crate) fn decode_version(head: &[u8], path: &Path) -> Result<u64> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    if lines.next() != Some(STATE_MAGIC) {
        return Err(corrupt(
            path,
            format_args!("it does not start with `{STATE_MAGIC}`"),
        ));
    }
    lines
        .next()
        .and_then(|l| l.strip_prefix("version "))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(path, "line 2 is not `version N`"))
}

pub(crate) fn decode_state(data: &[u8], path: &Path, network: Network) -> Result<Table> {
    let text = std::str::from_utf8(data).map_err(|_| corrupt(path, "it is not UTF-8 text"))?;
    let body_end = text
        .strip_suffix('\n')
        .and_then(|t| t.rfind('\n'))
        .map(|i| i + 1)
        .ok_or_else(|| corrupt(path, "it is truncated (no final `end` line)"))?;
    let (body, end) = text.split_at(body_end);
    let mut end_words = end.trim_end().split(' ');
    let (count, hash) = match (end_words.next(), end_words.next(), end_words.next()) {
        (Some("end"), Some(c), Some(h)) => {
            (c.parse::<usize>().ok(), u64::from_str_radix(h, 16).ok())
        }
        _ => (None, None),
    };
    let (Some(count), Some(hash)) = (count, hash) else {
        return Err(corrupt(
            path,
            "it is truncated (the last line is not `end COUNT HASH`)",
        ));
    };
    if fnv(body.as_bytes()) != hash {
        return Err(corrupt(
            path,
            "its checksum does not match its content (torn or edited)",
        ));
    }
    let mut lines = body.lines().enumerate();
    if lines.next().map(|l| l.1) != Some(STATE_MAGIC) {
        return Err(corrupt(
            path,
            format_args!("it does not start with `{STATE_MAGIC}`"),
        ));
    }
    let mut t = Table::new(network);
    let mut boots: Vec<BootId> = Vec::new();
    let mut saw_version = false;
    for (n, line) in lines {
        let bad = |what: &str| corrupt(path, format_args!("line {}: {what}: `{line}`", n + 1));
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["version", v] => {
                t.version = v.parse().map_err(|_| bad("bad version"))?;
                saw_version = true;
            }
            ["boot", i, id] => {
                if i.parse::<usize>().ok() != Some(boots.len()) {
                    return Err(bad("boot ids out of order"));
                }
                boots.push(BootId::new(id).map_err(|_| bad("bad boot id"))?);
            }
            ["cursor", i, ip] => {
                let i: usize = i.parse().map_err(|_| bad("bad pool index"))?;
                let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
                let slot = t.cursors.get_mut(i).ok_or_else(|| bad("no such pool"))?;
                *slot = Some(ip);
            }
            ["lease", ip, id, ifname, boot] => {
                let addr: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
                let owner = Owner::new(*id, ifname).map_err(|_| bad("bad owner"))?;
                let boot_id = match *boot {
                    "-" => None,
                    b => Some(
                        b.parse::<usize>()
                            .ok()
                            .and_then(|i| boots.get(i).cloned())
                            .ok_or_else(|| bad("unknown boot id index"))?,
                    ),
                };
                let rec = Record {
                    addr,
                    owner,
                    boot_id,
                };
                if t.records.insert(addr, rec).is_some() {
                    return Err(bad("address leased twice"));
                }
            }
            _ => return Err(bad("unexpected line")),
        }
    }
    if !saw_version {
        return Err(corrupt(path, "it has no `version` line"));
    }
    if t.records.len() != count {
        return Err(corrupt(
            path,
            format_args!(
                "it lists {} leases but its `end` line says {count}",
                t.records.len()
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let net = Network::new("n", vec!["10.0.0.0/24".parse().unwrap()]).unwrap();
        let mut t = Table::new(net);
        let b = BootId::new("boot-a").unwrap();
        for (i, boot) in [(2, Some(b.clone())), (3, None), (4, Some(b))] {
            let addr: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            t.records.insert(
                addr,
                Record {
                    addr,
                    owner: Owner::new(format!("c{i}"), "eth0").unwrap(),
                    boot_id: boot,
                },
            );
        }
        t.cursors[0] = Some("10.0.0.4".parse().unwrap());
        t.version = 7;
        t
    }

    #[test]
    fn round_trip() {
        let t = table();
        let bytes = encode_state(&t);
        let p = Path::new("/x/state");
        let back = decode_state(&bytes, p, t.network.clone()).unwrap();
        assert_eq!(back, t);
        assert_eq!(decode_version(&bytes[..40], p).unwrap(), 7);
        let n = encode_network(&t.network);
        assert_eq!(decode_network(n.as_bytes(), p).unwrap(), t.network);
    }

    #[test]
    fn every_truncation_and_flip_is_detected() {
        let t = table();
        let bytes = encode_state(&t);
        let p = Path::new("/var/lib/underlay/ipam/n/state");
        for cut in 0..bytes.len() {
            let e = decode_state(&bytes[..cut], p, t.network.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt);
            assert!(
                e.message().contains("/var/lib/underlay/ipam/n/state"),
                "{e}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(
                decode_state(&b, p, t.network.clone()).is_err(),
                "flip at {i}"
            );
        }
        let n = encode_network(&t.network);
        for cut in 0..n.len() {
            assert!(decode_network(&n.as_bytes()[..cut], p).is_err());
        }
    }
}

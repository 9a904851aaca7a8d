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

use super::{Change, Table};

const NETWORK_MAGIC: &str = "underlay-ipam-network 1";
const STATE_MAGIC: &str = "underlay-ipam-state 1";

pub(crate) fn fnv(data: &[u8]) -> u64 {
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

const JOURNAL_MAGIC: &str = "underlay-ipam-journal 1";

/// The first line of a journal that follows a snapshot of version `base`.
pub(crate) fn encode_journal_head(base: u64) -> Vec<u8> {
    format!("{JOURNAL_MAGIC} {base}\n").into_bytes()
}

/// The base version of a journal and the length of its first line.
pub(crate) fn decode_journal_head(head: &[u8], path: &Path) -> Result<(u64, u64)> {
    let nl = head.iter().position(|b| *b == b'\n').ok_or_else(|| {
        corrupt(
            path,
            format_args!("it does not start with `{JOURNAL_MAGIC}`"),
        )
    })?;
    std::str::from_utf8(&head[..nl])
        .ok()
        .and_then(|l| l.strip_prefix(JOURNAL_MAGIC))
        .and_then(|l| l.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .map(|v| (v, nl as u64 + 1))
        .ok_or_else(|| {
            corrupt(
                path,
                format_args!("line 1 is not `{JOURNAL_MAGIC} VERSION`"),
            )
        })
}

/// Encodes one journal block: the changes that lead to `version`.
pub(crate) fn encode_block(version: u64, changes: &[Change]) -> Vec<u8> {
    let mut s = String::with_capacity(32 + changes.len() * 80);
    let _ = writeln!(s, "v {version} {}", changes.len());
    for c in changes {
        match c {
            Change::Claim(r) => {
                let _ = writeln!(
                    s,
                    "+ {} {} {} {}",
                    r.addr,
                    r.owner.container_id(),
                    r.owner.ifname().as_str(),
                    r.boot_id.as_ref().map_or("-", |b| b.as_str())
                );
            }
            Change::Release(r) => {
                let _ = writeln!(
                    s,
                    "- {} {} {}",
                    r.addr,
                    r.owner.container_id(),
                    r.owner.ifname().as_str()
                );
            }
            Change::Cursor { pool, addr } => {
                let _ = writeln!(s, "c {pool} {addr}");
            }
        }
    }
    let h = fnv(s.as_bytes());
    let _ = writeln!(s, ". {h:016x}");
    s.into_bytes()
}

/// One decoded journal block.
pub(crate) struct Block {
    pub(crate) version: u64,
    pub(crate) changes: Vec<Change>,
    /// Offset of the block in the journal, and of the byte after it.
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// Decodes the complete blocks of `data` (journal bytes starting at offset `base`). An
/// incomplete last block (a write cut short by a crash, never acknowledged) is left out; any
/// other damage is [`ErrorKind::Corrupt`].
pub(crate) fn decode_blocks(data: &[u8], base: u64, path: &Path) -> Result<Vec<Block>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    'blocks: while pos < data.len() {
        let start = pos;
        let bad = |what: &str| {
            corrupt(
                path,
                format_args!("journal block at byte {}: {what}", base + start as u64),
            )
        };
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut need = usize::MAX;
        while lines.len() < need.saturating_add(2) {
            let Some(nl) = data[pos..].iter().position(|b| *b == b'\n') else {
                break 'blocks; // torn tail
            };
            let line = &data[pos..pos + nl];
            lines.push(line);
            pos += nl + 1;
            if lines.len() > 1 && lines.len() < need.saturating_add(2) && line.starts_with(b". ") {
                return Err(bad("its change count does not match its lines"));
            }
            if lines.len() == 1 {
                let head = std::str::from_utf8(lines[0]).map_err(|_| bad("not text"))?;
                let w: Vec<&str> = head.split(' ').collect();
                need = match w.as_slice() {
                    ["v", _, n] => n.parse().map_err(|_| bad("bad header"))?,
                    _ => return Err(bad("no `v VERSION COUNT` header")),
                };
                if need > data.len() {
                    return Err(bad("impossible change count"));
                }
            }
        }
        let body_end = pos - lines.last().map_or(0, |l| l.len() + 1);
        let trailer = std::str::from_utf8(lines[lines.len() - 1]).map_err(|_| bad("not text"))?;
        let hash = trailer
            .strip_prefix(". ")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| bad("no `. HASH` trailer"))?;
        if fnv(&data[start..body_end]) != hash {
            return Err(bad("checksum mismatch"));
        }
        let text = |l: &[u8]| {
            std::str::from_utf8(l)
                .map(str::to_string)
                .map_err(|_| bad("not text"))
        };
        let head = text(lines[0])?;
        let version: u64 = head
            .split(' ')
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("bad version"))?;
        let mut changes = Vec::with_capacity(need);
        for l in &lines[1..lines.len() - 1] {
            let l = text(l)?;
            let w: Vec<&str> = l.split(' ').collect();
            let owner = |id: &str, ifn: &str| Owner::new(id, ifn).map_err(|_| bad("bad owner"));
            let addr = |a: &str| a.parse::<IpAddr>().map_err(|_| bad("bad address"));
            changes.push(match w.as_slice() {
                ["+", a, id, ifn, boot] => Change::Claim(Record {
                    addr: addr(a)?,
                    owner: owner(id, ifn)?,
                    boot_id: match *boot {
                        "-" => None,
                        b => Some(BootId::new(b).map_err(|_| bad("bad boot id"))?),
                    },
                }),
                ["-", a, id, ifn] => Change::Release(Record {
                    addr: addr(a)?,
                    owner: owner(id, ifn)?,
                    boot_id: None,
                }),
                ["c", p, a] => Change::Cursor {
                    pool: p.parse().map_err(|_| bad("bad pool index"))?,
                    addr: addr(a)?,
                },
                _ => return Err(bad("unexpected line")),
            });
        }
        out.push(Block {
            version,
            changes,
            start: base + start as u64,
            end: base + pos as u64,
        });
    }
    Ok(out)
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
        let n = encode_network(&t.network);
        assert_eq!(decode_network(n.as_bytes(), p).unwrap(), t.network);
    }

    #[test]
    fn journal_blocks() {
        let t = table();
        let recs: Vec<Record> = t.records.values().cloned().collect();
        let a = encode_block(
            8,
            &[
                Change::Claim(recs[0].clone()),
                Change::Cursor {
                    pool: 0,
                    addr: recs[0].addr,
                },
            ],
        );
        let b = encode_block(
            9,
            &[Change::Release(Record {
                boot_id: None,
                ..recs[1].clone()
            })],
        );
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let p = Path::new("/j");
        let blocks = decode_blocks(&all, 100, p).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].version, blocks[0].start, blocks[0].end),
            (8, 100, 100 + a.len() as u64)
        );
        assert_eq!(
            blocks[1].changes,
            vec![Change::Release(Record {
                boot_id: None,
                ..recs[1].clone()
            })]
        );
        // Every cut inside the last block is a torn tail: the first block survives alone.
        for cut in a.len()..all.len() {
            let got = decode_blocks(&all[..cut], 0, p).unwrap();
            assert_eq!(got.len(), 1, "cut at {cut}");
        }
        // A damaged complete block is corruption.
        for i in 0..a.len() - 1 {
            let mut bad = all.clone();
            bad[i] ^= 0x04;
            if bad[i] == b'\n' || all[i] == b'\n' {
                continue;
            }
            let e = decode_blocks(&bad, 0, p)
                .err()
                .unwrap_or_else(|| panic!("flip at {i} undetected"));
            assert_eq!(e.kind(), ErrorKind::Corrupt);
        }
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

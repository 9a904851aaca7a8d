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
use crate::types::IfName;

use super::{Change, Table};

const NETWORK_MAGIC: &str = "underlay-ipam-network 1";
pub(super) const STATE_MAGIC: &str = "underlay-ipam-state 1";

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
    // Written in address order: collected, then built into the map in one go.
    let mut leases: Vec<(IpAddr, Record)> = Vec::with_capacity(count.min(data.len() / 16));
    let mut sorted = true;
    let mut last_ifname: Option<IfName> = None;
    for (n, line) in lines {
        let bad = |what: &str| corrupt(path, format_args!("line {}: {what}: `{line}`", n + 1));
        let mut w = line.split(' ');
        match w.next() {
            Some("lease") => {
                let [ip, id, ifname, boot] = words(&mut w).ok_or_else(|| bad("unexpected line"))?;
                let addr: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
                let owner = owner_of(id, ifname, &mut last_ifname).map_err(|_| bad("bad owner"))?;
                let boot_id = match boot {
                    "-" => None,
                    b => Some(
                        b.parse::<usize>()
                            .ok()
                            .and_then(|i| boots.get(i).cloned())
                            .ok_or_else(|| bad("unknown boot id index"))?,
                    ),
                };
                if leases.last().is_some_and(|(last, _)| *last >= addr) {
                    sorted = false;
                }
                let rec = Record {
                    addr,
                    owner,
                    boot_id,
                };
                leases.push((addr, rec));
            }
            Some("version") => {
                let [v] = words(&mut w).ok_or_else(|| bad("unexpected line"))?;
                t.version = v.parse().map_err(|_| bad("bad version"))?;
                saw_version = true;
            }
            Some("boot") => {
                let [i, id] = words(&mut w).ok_or_else(|| bad("unexpected line"))?;
                if i.parse::<usize>().ok() != Some(boots.len()) {
                    return Err(bad("boot ids out of order"));
                }
                boots.push(BootId::new(id).map_err(|_| bad("bad boot id"))?);
            }
            Some("cursor") => {
                let [i, ip] = words(&mut w).ok_or_else(|| bad("unexpected line"))?;
                let i: usize = i.parse().map_err(|_| bad("bad pool index"))?;
                let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
                let slot = t.cursors.get_mut(i).ok_or_else(|| bad("no such pool"))?;
                *slot = Some(ip);
            }
            _ => return Err(bad("unexpected line")),
        }
    }
    if !saw_version {
        return Err(corrupt(path, "it has no `version` line"));
    }
    if sorted {
        t.records = leases.into_iter().collect();
    } else {
        for (addr, rec) in leases {
            if t.records.insert(addr, rec).is_some() {
                return Err(corrupt(
                    path,
                    format_args!("address {addr} is leased twice"),
                ));
            }
        }
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

/// The owner `id`/`ifname`, sharing `last` (the interface name of the previous owner decoded)
/// when the name is the same: nearly every owner's is `eth0`.
fn owner_of(id: &str, ifname: &str, last: &mut Option<IfName>) -> Result<Owner> {
    let name = match last {
        Some(n) if n.as_str() == ifname => n,
        _ => last.insert(IfName::new(ifname)?),
    };
    Owner::from_parts(id, name)
}

/// The next `N` words of `w`, and nothing after them.
fn words<'a, const N: usize>(w: &mut impl Iterator<Item = &'a str>) -> Option<[&'a str; N]> {
    let mut out = [""; N];
    for slot in &mut out {
        *slot = w.next()?;
    }
    w.next().is_none().then_some(out)
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
    // Where each change line of the current block starts and ends (reused across blocks).
    let mut spans: Vec<(usize, usize)> = Vec::new();
    // Consecutive claims nearly always carry the same boot id: share one.
    let mut last_boot: Option<BootId> = None;
    let mut last_ifname: Option<IfName> = None;
    let next_line = |from: usize| {
        data[from..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|nl| (from + nl, from + nl + 1))
    };
    'blocks: while pos < data.len() {
        let start = pos;
        let bad = |what: &str| {
            corrupt(
                path,
                format_args!("journal block at byte {}: {what}", base + start as u64),
            )
        };
        let Some((head_end, after)) = next_line(pos) else {
            break 'blocks; // torn tail
        };
        let head = std::str::from_utf8(&data[pos..head_end]).map_err(|_| bad("not text"))?;
        let mut w = head.split(' ');
        let (version, need): (u64, usize) = match (w.next(), words(&mut w)) {
            (Some("v"), Some([v, n])) => (
                v.parse().map_err(|_| bad("bad version"))?,
                n.parse().map_err(|_| bad("bad header"))?,
            ),
            _ => return Err(bad("no `v VERSION COUNT` header")),
        };
        if need > data.len() {
            return Err(bad("impossible change count"));
        }
        pos = after;
        spans.clear();
        for _ in 0..need {
            let Some((end, after)) = next_line(pos) else {
                break 'blocks; // torn tail
            };
            if data[pos..end].starts_with(b". ") {
                return Err(bad("its change count does not match its lines"));
            }
            spans.push((pos, end));
            pos = after;
        }
        let body_end = pos;
        let Some((trailer_end, after)) = next_line(pos) else {
            break 'blocks; // torn tail
        };
        pos = after;
        let trailer =
            std::str::from_utf8(&data[body_end..trailer_end]).map_err(|_| bad("not text"))?;
        let hash = trailer
            .strip_prefix(". ")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| bad("no `. HASH` trailer"))?;
        if fnv(&data[start..body_end]) != hash {
            return Err(bad("checksum mismatch"));
        }
        let mut changes = Vec::with_capacity(need);
        for &(from, to) in &spans {
            let l = std::str::from_utf8(&data[from..to]).map_err(|_| bad("not text"))?;
            let mut owner = |id: &str, ifn: &str| {
                owner_of(id, ifn, &mut last_ifname).map_err(|_| bad("bad owner"))
            };
            let addr = |a: &str| a.parse::<IpAddr>().map_err(|_| bad("bad address"));
            let mut w = l.split(' ');
            let unexpected = || bad("unexpected line");
            changes.push(match w.next() {
                Some("+") => {
                    let [a, id, ifn, boot] = words(&mut w).ok_or_else(unexpected)?;
                    let boot_id = match boot {
                        "-" => None,
                        b => match &last_boot {
                            Some(l) if l.as_str() == b => Some(l.clone()),
                            _ => {
                                let id = BootId::new(b).map_err(|_| bad("bad boot id"))?;
                                last_boot = Some(id.clone());
                                Some(id)
                            }
                        },
                    };
                    Change::Claim(Record {
                        addr: addr(a)?,
                        owner: owner(id, ifn)?,
                        boot_id,
                    })
                }
                Some("-") => {
                    let [a, id, ifn] = words(&mut w).ok_or_else(unexpected)?;
                    Change::Release(Record {
                        addr: addr(a)?,
                        owner: owner(id, ifn)?,
                        boot_id: None,
                    })
                }
                Some("c") => {
                    let [p, a] = words(&mut w).ok_or_else(unexpected)?;
                    Change::Cursor {
                        pool: p.parse().map_err(|_| bad("bad pool index"))?,
                        addr: addr(a)?,
                    }
                }
                _ => return Err(unexpected()),
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

    /// A snapshot whose leases are out of address order (not written by underlay, yet
    /// valid) loads the same; one naming an address twice is corruption.
    #[test]
    fn unsorted_and_duplicate_leases() {
        let t = table();
        let p = Path::new("/x/state");
        let reseal = |body: &str, n: usize| {
            let mut s = body.to_string();
            let h = fnv(s.as_bytes());
            s.push_str(&format!("end {n} {h:016x}\n"));
            s.into_bytes()
        };
        let text = String::from_utf8(encode_state(&t)).unwrap();
        let body = &text[..text.rfind("end ").unwrap()];
        let mut lines: Vec<&str> = body.lines().collect();
        let first = lines.iter().position(|l| l.starts_with("lease ")).unwrap();
        lines.swap(first, first + 2);
        let swapped = lines.join("\n") + "\n";
        let back = decode_state(&reseal(&swapped, 3), p, t.network.clone()).unwrap();
        assert_eq!(back, t);
        lines[first + 1] = lines[first];
        let twice = lines.join("\n") + "\n";
        let e = decode_state(&reseal(&twice, 3), p, t.network.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.message().contains("leased twice"), "{e}");
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

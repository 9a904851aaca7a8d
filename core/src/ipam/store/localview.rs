//! The local store's partial reads ([`super::Store::view`]): a short-lived process (a CNI
//! plugin call) reads the journal and looks up, in the snapshot's bytes, only the leases one
//! allocation or release needs, instead of decoding every lease.
//!
//! The snapshot's lease lines are written in address order (see [`super::stateformat`]), so an
//! address is found by binary search over the bytes and an owner by a substring search; the
//! journal's blocks since the snapshot are decoded into an overlay of the addresses they
//! changed. Anything unexpected in the snapshot's layout makes the caller fall back to the full
//! decoder, which names the damage.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{BootId, Owner, Record};
use crate::ipam::network::Network;
use crate::ipam::pool::ip_to_u128;
use crate::types::IfName;

use super::stateformat::{corrupt, fnv, Block};
use super::{Change, Snapshot, View, ViewQuery};

/// The snapshot is not laid out as this version writes it: decode it in full instead.
#[derive(Debug)]
pub(super) struct Fallback;

/// A verified snapshot file, kept as bytes.
#[derive(Debug)]
struct Snap {
    text: String,
    /// Byte range of the lease lines.
    leases: (usize, usize),
    boots: Vec<BootId>,
    version: u64,
    cursors: Vec<Option<IpAddr>>,
    /// The number of leases.
    count: usize,
}

impl Snap {
    /// Checks the checksum and reads the lines before the leases; `None` for a layout other
    /// than this version's encoder writes (or damage: the full decoder tells which).
    fn parse(data: Vec<u8>, pools: usize) -> Option<Snap> {
        let text = String::from_utf8(data).ok()?;
        let body_end = text.strip_suffix('\n')?.rfind('\n')? + 1;
        let mut end = text[body_end..].trim_end().split(' ');
        let (Some("end"), Some(count), Some(hash), None) =
            (end.next(), end.next(), end.next(), end.next())
        else {
            return None;
        };
        let count: usize = count.parse().ok()?;
        if fnv(&text.as_bytes()[..body_end]) != u64::from_str_radix(hash, 16).ok()? {
            return None;
        }
        let mut pos = 0;
        let mut version = None;
        let mut boots = Vec::new();
        let mut cursors = vec![None; pools];
        let mut first = true;
        while pos < body_end && !text[pos..].starts_with("lease ") {
            let nl = pos + text[pos..body_end].find('\n')?;
            let line = &text[pos..nl];
            pos = nl + 1;
            if std::mem::take(&mut first) {
                if line != super::stateformat::STATE_MAGIC {
                    return None;
                }
                continue;
            }
            let mut w = line.split(' ');
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("version"), Some(v), None, None) => version = Some(v.parse().ok()?),
                (Some("boot"), Some(i), Some(id), None) => {
                    if i.parse::<usize>().ok()? != boots.len() {
                        return None;
                    }
                    boots.push(BootId::new(id).ok()?);
                }
                (Some("cursor"), Some(i), Some(ip), None) => {
                    *cursors.get_mut(i.parse::<usize>().ok()?)? = Some(ip.parse().ok()?);
                }
                _ => return None,
            }
        }
        if first {
            return None;
        }
        // One line per lease (a count of newlines, far cheaper than decoding them).
        let lines = text.as_bytes()[pos..body_end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        if lines != count {
            return None;
        }
        Some(Snap {
            leases: (pos, body_end),
            boots,
            version: version?,
            cursors,
            count,
            text,
        })
    }

    /// The address of the lease line at `at`, and where the next line starts.
    fn addr_at(&self, at: usize) -> Result<(IpAddr, usize), Fallback> {
        let line = &self.text[at..self.leases.1];
        let nl = line.find('\n').ok_or(Fallback)?;
        let rest = line[..nl].strip_prefix("lease ").ok_or(Fallback)?;
        let ip = rest.split(' ').next().ok_or(Fallback)?;
        Ok((ip.parse().map_err(|_| Fallback)?, at + nl + 1))
    }

    /// The lease line at `at` decoded, and where the next line starts.
    fn record_at(
        &self,
        at: usize,
        ifname: &mut Option<IfName>,
    ) -> Result<(Record, usize), Fallback> {
        let line = &self.text[at..self.leases.1];
        let nl = line.find('\n').ok_or(Fallback)?;
        let rest = line[..nl].strip_prefix("lease ").ok_or(Fallback)?;
        let mut w = rest.split(' ');
        let (Some(ip), Some(id), Some(ifn), Some(boot), None) =
            (w.next(), w.next(), w.next(), w.next(), w.next())
        else {
            return Err(Fallback);
        };
        let ifname = match ifname {
            Some(n) if n.as_str() == ifn => n,
            _ => ifname.insert(IfName::new(ifn).map_err(|_| Fallback)?),
        };
        let boot_id = match boot {
            "-" => None,
            i => Some(
                self.boots
                    .get(i.parse::<usize>().map_err(|_| Fallback)?)
                    .ok_or(Fallback)?
                    .clone(),
            ),
        };
        let rec = Record {
            addr: ip.parse().map_err(|_| Fallback)?,
            owner: Owner::from_parts(id, ifname).map_err(|_| Fallback)?,
            boot_id,
        };
        Ok((rec, at + nl + 1))
    }

    /// Where the first lease line with an address at or after `ip` starts (the end of the
    /// leases if none): a binary search over the bytes.
    fn lower_bound(&self, ip: IpAddr) -> Result<usize, Fallback> {
        let (mut lo, mut hi) = self.leases;
        // Lines starting before `lo` hold smaller addresses; lines from `hi` on, not smaller.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = self.text.as_bytes()[lo..mid]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(lo, |i| lo + i + 1);
            let (addr, next) = self.addr_at(start)?;
            if addr < ip {
                lo = next;
            } else {
                hi = start;
            }
        }
        Ok(lo)
    }

    /// The leases from `lo` to `hi` (inclusive), in address order.
    fn range(
        &self,
        lo: IpAddr,
        hi: IpAddr,
        ifname: &mut Option<IfName>,
    ) -> Result<Vec<Record>, Fallback> {
        let mut at = self.lower_bound(lo)?;
        let mut out: Vec<Record> = Vec::new();
        while at < self.leases.1 {
            let (r, next) = self.record_at(at, ifname)?;
            if r.addr > hi {
                break;
            }
            if out.last().is_some_and(|l| l.addr >= r.addr) {
                return Err(Fallback); // not in address order
            }
            out.push(r);
            at = next;
        }
        Ok(out)
    }

    /// Every lease of `owner`: a substring search for its id and interface name, each hit
    /// decoded and compared.
    fn of_owner(
        &self,
        owner: &Owner,
        ifname: &mut Option<IfName>,
    ) -> Result<Vec<Record>, Fallback> {
        let needle = format!(" {} {} ", owner.container_id(), owner.ifname().as_str());
        let (start, end) = self.leases;
        let hay = &self.text[start..end];
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(i) = hay[from..].find(&needle) {
            let hit = from + i;
            let line = hay[..hit].rfind('\n').map_or(0, |n| n + 1);
            let (r, next) = self.record_at(start + line, ifname)?;
            if r.owner == *owner {
                out.push(r);
            }
            from = next - start;
        }
        Ok(out)
    }
}

/// A network of the local store as read by [`super::Store::view`]: the snapshot's bytes, and
/// the journal since it as an overlay.
#[derive(Debug)]
pub(super) struct Peek {
    pub(super) network: Network,
    snap: Snap,
    cursors: Vec<Option<IpAddr>>,
    /// The journal's outcome per address it touched: leased to a record, or released.
    overlay: BTreeMap<IpAddr, Option<Record>>,
    pub(super) version: u64,
    /// The journal read (its inode and base version) and where its last complete block ends.
    pub(super) ino: u64,
    pub(super) base: u64,
    pub(super) offset: u64,
    ifname: Option<IfName>,
}

impl Peek {
    /// A peek at snapshot `data` with the journal (inode `ino`, base version `base`) read to
    /// `offset` (past its head); `None` if the snapshot needs the full decoder.
    pub(super) fn new(
        network: Network,
        data: Vec<u8>,
        ino: u64,
        base: u64,
        offset: u64,
    ) -> Option<Peek> {
        let snap = Snap::parse(data, network.pools().len())?;
        Some(Peek {
            network,
            cursors: snap.cursors.clone(),
            version: snap.version,
            snap,
            overlay: BTreeMap::new(),
            ino,
            base,
            offset,
            ifname: None,
        })
    }

    /// Applies the journal's `blocks` read after `offset` (as the full reader does: blocks
    /// already in the snapshot skipped, the others in version order).
    pub(super) fn apply_blocks(&mut self, blocks: Vec<Block>, path: &Path) -> Result<()> {
        for b in blocks {
            self.offset = b.end;
            if b.version <= self.snap.version {
                continue; // already in the snapshot (a compaction was cut short)
            }
            if b.version != self.version + 1 {
                return Err(corrupt(
                    path,
                    format_args!(
                        "block at byte {} has version {} after version {}",
                        b.start, b.version, self.version
                    ),
                ));
            }
            for c in b.changes {
                match c {
                    Change::Claim(r) => {
                        self.overlay.insert(r.addr, Some(r));
                    }
                    Change::Release(r) => {
                        self.overlay.insert(r.addr, None);
                    }
                    Change::Cursor { pool, addr } => match self.cursors.get_mut(pool) {
                        Some(slot) => *slot = Some(addr),
                        None => {
                            return Err(corrupt(
                                path,
                                format_args!("block at byte {}: no pool #{pool}", b.start),
                            ))
                        }
                    },
                }
            }
            self.version = b.version;
        }
        Ok(())
    }

    /// The lease of `ip`, if any.
    fn at(&mut self, ip: IpAddr) -> Result<Option<Record>, Fallback> {
        if let Some(r) = self.overlay.get(&ip) {
            return Ok(r.clone());
        }
        let at = self.snap.lower_bound(ip)?;
        if at == self.snap.leases.1 {
            return Ok(None);
        }
        let (r, _) = self.snap.record_at(at, &mut self.ifname)?;
        Ok((r.addr == ip).then_some(r))
    }

    /// Whether any address is leased: the journal's claims, or the snapshot's leases beyond
    /// what the journal released (each checked when there are no more of them).
    pub(super) fn any_lease(&mut self) -> Result<bool, Fallback> {
        if self.overlay.values().any(Option::is_some) {
            return Ok(true);
        }
        if self.snap.count > self.overlay.len() {
            return Ok(true);
        }
        let mut at = self.snap.leases.0;
        while at < self.snap.leases.1 {
            let (ip, next) = self.snap.addr_at(at)?;
            if !self.overlay.contains_key(&ip) {
                return Ok(true);
            }
            at = next;
        }
        Ok(false)
    }

    /// Answers `q` (see [`ViewQuery`]).
    pub(super) fn view(&mut self, q: &ViewQuery) -> Result<View, Fallback> {
        let mut records: BTreeMap<IpAddr, Record> = BTreeMap::new();
        let mut known: Vec<(IpAddr, IpAddr)> = Vec::new();
        for r in self.snap.of_owner(&q.owner, &mut self.ifname)? {
            if !self.overlay.contains_key(&r.addr) {
                known.push((r.addr, r.addr));
                records.insert(r.addr, r);
            }
        }
        for r in self.overlay.values().flatten() {
            if r.owner == q.owner {
                known.push((r.addr, r.addr));
                records.insert(r.addr, r.clone());
            }
        }
        for &ip in &q.ips {
            if let Some(r) = self.at(ip)? {
                records.insert(ip, r);
            }
            known.push((ip, ip));
        }
        if q.window > 0 {
            let pools = self.network.pools().to_vec();
            for (i, pool) in pools.iter().enumerate() {
                let cursor = self.cursors[i]
                    .filter(|ip| pool.contains(*ip))
                    .map(ip_to_u128);
                let spans = pool.spans();
                let (j, from) = pool.next_fit_start(cursor);
                let window = q.window as u128 - 1;
                // Each window is the start of next-fit's order: inside one span, and the next
                // span (wrapping) only when the first window reaches the end of its own.
                let end = spans[j].1;
                let mut windows = Vec::with_capacity(2);
                if from <= end {
                    windows.push((from, from.saturating_add(window).min(end)));
                }
                if from.saturating_add(window) >= end {
                    let (next, next_end) = spans[(j + 1) % spans.len()];
                    windows.push((next, next.saturating_add(window).min(next_end)));
                }
                for (lo, hi) in windows {
                    let (lo, hi) = (pool.addr_at(lo), pool.addr_at(hi));
                    for r in self.snap.range(lo, hi, &mut self.ifname)? {
                        if !self.overlay.contains_key(&r.addr) {
                            records.insert(r.addr, r);
                        }
                    }
                    for r in self.overlay.range(lo..=hi).filter_map(|(_, r)| r.as_ref()) {
                        records.insert(r.addr, r.clone());
                    }
                    known.push((lo, hi));
                }
            }
        }
        Ok(View {
            snapshot: Snapshot {
                network: self.network.clone(),
                records: records.into_values().collect(),
                cursors: self.cursors.clone(),
                version: self.version,
                slice_writes: 0,
                foreign: Vec::new(),
            },
            known,
        })
    }

    /// Checks `changes` as a commit at this version would (each claimed address free, each
    /// released one held by that owner) and applies them to the overlay: all or none.
    pub(super) fn apply(&mut self, changes: &[Change]) -> Result<Result<(), Error>, Fallback> {
        let net = self.network.name().to_string();
        let mut staged: BTreeMap<IpAddr, Option<Record>> = BTreeMap::new();
        let mut cursors = self.cursors.clone();
        for c in changes {
            match c {
                Change::Claim(r) => {
                    let now = match staged.get(&r.addr) {
                        Some(x) => x.clone(),
                        None => self.at(r.addr)?,
                    };
                    if let Some(old) = now {
                        return Ok(Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "address {} in network `{net}` is already held by {}: reload \
                                 and retry",
                                r.addr, old.owner
                            ),
                        )));
                    }
                    staged.insert(r.addr, Some(r.clone()));
                }
                Change::Release(r) => {
                    let now = match staged.get(&r.addr) {
                        Some(x) => x.clone(),
                        None => self.at(r.addr)?,
                    };
                    if now.is_none_or(|old| old.owner != r.owner) {
                        return Ok(Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "address {} in network `{net}` is not held by {}: reload and \
                                 retry",
                                r.addr, r.owner
                            ),
                        )));
                    }
                    staged.insert(r.addr, None);
                }
                Change::Cursor { pool, addr } => match cursors.get_mut(*pool) {
                    Some(slot) => *slot = Some(*addr),
                    None => {
                        return Ok(Err(Error::invalid(format!(
                            "network `{net}` has no pool #{pool}: the change is malformed"
                        ))))
                    }
                },
            }
        }
        self.overlay.extend(staged);
        self.cursors = cursors;
        self.version += 1;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::super::{HostLocalStore, LocalStore, Store};
    use crate::error::ErrorKind;
    use crate::ipam::{Ipam, Lease, Network, Owner, Request};

    /// Calls answered from views (each from a fresh `Ipam` on a fresh store handle, as a CNI
    /// plugin's process makes them) give what a long-lived `Ipam` with the whole network gives,
    /// over two pools that fill up, wrap around and empty again, with owners whose ids look
    /// like addresses, interface names or other owners' prefixes, and a pool over two subnets
    /// whose spans are not in address order; most of them without ever loading the whole
    /// network.
    #[test]
    fn views_answer_as_the_whole_network_does() {
        // A short journal: compactions (and the full loads they take) come often.
        let viewed = compare_with_the_whole_network("local", 2500, |d| {
            let s = LocalStore::with(d.to_path_buf(), false, 4096);
            (Arc::new(s.clone()), Some(s))
        });
        assert!(
            viewed * 10 > 2500 * 7,
            "only {viewed} of 2500 processes were served by views alone"
        );
    }

    /// The same on host-local's layout, where a view is the whole network read and updated
    /// under host-local's lock in one step.
    #[test]
    fn host_local_updates_answer_as_the_whole_network_does() {
        compare_with_the_whole_network("hostlocal", 800, |d| {
            (
                Arc::new(HostLocalStore::open(d).unwrap().durable(false)),
                None,
            )
        });
    }

    /// Runs `steps` processes' calls of [`views_answer_as_the_whole_network_does`] on the
    /// stores `store` makes; returns how many processes did not load the whole network (a
    /// local store, the second of the pair, tells).
    fn compare_with_the_whole_network(
        tag: &str,
        steps: usize,
        store: impl Fn(&Path) -> (Arc<dyn Store>, Option<LocalStore>),
    ) -> usize {
        /// Removes the directory also when an assertion fails.
        struct Gone(std::path::PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = std::env::temp_dir().join(format!("ipam-view-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _gone = Gone(dir.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let net = Network::new(
            "n",
            vec![
                "10.0.0.0/24 gateway=10.0.0.1 reserve=x=10.0.0.7"
                    .parse()
                    .unwrap(),
                "fd00::/120".parse().unwrap(),
                // Two segments, the first with two ranges: spans out of address order.
                "10.9.0.0/24 range=10.9.0.100-10.9.0.199 range=10.9.0.10-10.9.0.60 + \
                 10.8.0.0/25"
                    .parse()
                    .unwrap(),
            ],
        )
        .unwrap();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let ids = |i: u64| match i % 5 {
            0 => format!("c{}", i / 5),
            1 => format!("10.0.0.{}", i / 5),
            2 => format!("c{}0", i / 5),
            3 => "eth0".to_string(),
            _ => format!("lease-{}", i / 5),
        };
        let viewed = rt.block_on(async {
            Ipam::create(store(&dir).0, net.clone()).await.unwrap();
            let reference = Ipam::in_memory(net.clone()).await.unwrap();
            let mut viewed = 0;
            let mut kinds = HashMap::new();
            for step in 0..steps {
                let (s, local) = store(&dir);
                let ipam = Ipam::open(s, "n").await.unwrap();
                reference.set_boot_id(ipam.boot_id());
                for _ in 0..=rand(2) {
                    let i = rand(640);
                    let ifname = if i % 7 == 0 { "eth1" } else { "eth0" };
                    let o = Owner::new(ids(i), ifname).unwrap();
                    let (a, b): (Result<Option<Lease>, _>, Result<Option<Lease>, _>) =
                        match rand(10) {
                            0..=6 => {
                                let r = if rand(5) == 0 {
                                    let ip = format!("10.0.0.{}", rand(256));
                                    Request::ip(ip.parse().unwrap())
                                } else {
                                    Request::any()
                                };
                                (
                                    ipam.allocate(&o, &r).await.map(Some),
                                    reference.allocate(&o, &r).await.map(Some),
                                )
                            }
                            7..=8 => (ipam.release(&o).await, reference.release(&o).await),
                            _ => (ipam.lookup(&o).await, reference.lookup(&o).await),
                        };
                    match (&a, &b) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "{tag} step {step}, {o}"),
                        (Err(a), Err(b)) => {
                            assert_eq!(a.kind(), b.kind(), "{tag} step {step}: {a} / {b}")
                        }
                        _ => panic!("{tag} step {step}, {o}: {a:?} against {b:?}"),
                    }
                    if let Err(e) = &b {
                        *kinds.entry(e.kind()).or_insert(0) += 1;
                    }
                    if matches!(&b, Err(e) if e.kind() == ErrorKind::PoolExhausted) {
                        // Empty the pools a little: next-fit then wraps around.
                        for l in reference.list().await.unwrap().into_iter().take(40) {
                            reference.release(&l.owner).await.unwrap();
                            ipam.release(&l.owner).await.unwrap();
                        }
                    }
                }
                if local.is_some_and(|l| !l.inner.has_mirror("n")) {
                    viewed += 1;
                }
            }
            // Every path was taken: answers from views and refusals, full loads after
            // compactions and when next-fit needed more than a view holds.
            for k in [
                ErrorKind::PoolExhausted,
                ErrorKind::AlreadyExists,
                ErrorKind::Conflict,
            ] {
                assert!(kinds.contains_key(&k), "{tag}: no {k:?} in {kinds:?}");
            }
            let all = Ipam::open(store(&dir).0, "n").await.unwrap();
            let leases = reference.list().await.unwrap();
            assert_eq!(all.list().await.unwrap(), leases, "{tag}");
            // Whether any lease is left, told without a full load: until the last release.
            for l in &leases {
                assert!(store(&dir).0.has_host_records("n").await.unwrap());
                let ipam = Ipam::open(store(&dir).0, "n").await.unwrap();
                assert_eq!(ipam.release(&l.owner).await.unwrap().as_ref(), Some(l));
            }
            let (s, local) = store(&dir);
            assert!(!s.has_host_records("n").await.unwrap());
            assert!(local.is_none_or(|l| !l.inner.has_mirror("n")));
            viewed
        });
        viewed
    }
}

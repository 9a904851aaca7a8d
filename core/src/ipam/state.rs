//! A network's allocation state in memory: per pool the used offsets as intervals and the
//! next-fit cursor; per address its record; per owner its addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::{Error, ErrorKind, Result};

use super::intervals::IntervalSet;
use super::lease::{BootId, Lease, LeasedAddress, Owner, Quarantine, Record, Request};
use super::network::Network;
use super::pool::{ip_to_u128, u128_to_ip, AllocRange, Pool};
use super::store::{Change, ForeignLease, Snapshot, Stamp, View};

/// FxHash (rustc's): much faster than SipHash on short keys; the keys (addresses, container
/// ids) come from the container runtime, not from untrusted peers.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        // The multiplications carry entropy upwards only: fold the high half into the low
        // bits, which pick the bucket.
        let h = self.0 ^ (self.0 >> 32);
        let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for b in chunks.remainder() {
            self.write_u64(*b as u64);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fx>>;

#[derive(Debug, Clone)]
struct PoolState {
    /// Leased and excluded offsets.
    used: IntervalSet,
    cursor: Option<u128>,
    /// This host's node slices in the pool, as sorted offset ranges (empty without slices).
    slices: Vec<(u128, u128)>,
    /// The last pick inside the slices (in memory only: the slices are this host's).
    slice_cursor: Option<u128>,
    /// No slice of the pool was left to take: pick anywhere (next-fit), as without slices.
    slices_exhausted: bool,
    /// An allocation found this host's slices of the pool full: take another one.
    wants_slice: bool,
}

/// Where an allocation's address of one pool came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Asked for by the request.
    Fixed,
    /// Next-fit over the whole pool (moves the stored cursor).
    NextFit,
    /// Inside this host's node slices.
    Slice,
}

#[derive(Debug, Clone)]
pub(crate) struct NetState {
    pub(crate) network: Arc<Network>,
    pools: Vec<PoolState>,
    records: FxMap<IpAddr, Record>,
    by_owner: FxMap<Owner, Vec<(usize, IpAddr)>>,
    /// Leases underlay cannot represent: their addresses count as used, forever.
    foreign: Vec<ForeignLease>,
    pub(crate) version: u64,
    /// The store's slice writes this state reflects ([`Stamp::slice_writes`]); `None` when
    /// unknown: the next check against the store reloads.
    pub(crate) slice_writes: Option<u64>,
    /// Whether the store gives this host node slices (allocate inside them).
    sliced: bool,
}

/// Cursors to restore with [`NetState::undo`]: per pool, the stored one and the slice one.
pub(crate) type Cursors = Vec<(Option<u128>, Option<u128>)>;

impl NetState {
    pub(crate) fn from_snapshot(snap: Snapshot, network: Arc<Network>) -> Result<NetState> {
        let name = network.name();
        let mut pools: Vec<PoolState> = network
            .pools()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut used = IntervalSet::default();
                for off in p.excluded_offsets() {
                    used.insert(*off);
                }
                let cursor = snap
                    .cursors
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|ip| p.contains(*ip))
                    .map(|ip| p.offset(ip));
                PoolState {
                    used,
                    cursor,
                    slices: Vec::new(),
                    slice_cursor: None,
                    slices_exhausted: false,
                    wants_slice: false,
                }
            })
            .collect();
        let mut records = FxMap::default();
        records.reserve(snap.records.len());
        let mut by_owner: FxMap<Owner, Vec<(usize, IpAddr)>> = FxMap::default();
        by_owner.reserve(snap.records.len());
        let mut last_pool = 0;
        for r in snap.records {
            // Records come in address order from most stores: try the last one's pool first.
            let i = match network.pools().get(last_pool) {
                Some(p) if p.contains(r.addr) => Some(last_pool),
                _ => network.pools().iter().position(|p| p.contains(r.addr)),
            };
            let Some(i) = i else {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "the store holds lease {} of {} in network `{name}`, but no pool of the \
                         network contains it: the store was edited by another tool or for \
                         another definition; release that lease by hand",
                        r.addr, r.owner
                    ),
                ));
            };
            last_pool = i;
            pools[i].used.insert(network.pools()[i].offset(r.addr));
            // Most owners hold one address per pool: no room for more until they do.
            by_owner
                .entry(r.owner.clone())
                .or_insert_with(|| Vec::with_capacity(network.pools().len()))
                .push((i, r.addr));
            records.insert(r.addr, r);
        }
        for v in by_owner.values_mut() {
            if v.len() > 1 {
                v.sort();
            }
        }
        for f in &snap.foreign {
            if let Some(i) = network.pools().iter().position(|p| p.contains(f.addr)) {
                pools[i].used.insert(network.pools()[i].offset(f.addr));
            }
        }
        Ok(NetState {
            network,
            pools,
            records,
            by_owner,
            foreign: snap.foreign,
            version: snap.version,
            slice_writes: Some(snap.slice_writes),
            sliced: false,
        })
    }

    /// The state of a view ([`View`]): every address outside what it saw counts as used, so
    /// that next-fit picks only where the view knows every lease. Serves one call: it is never
    /// kept as the cache.
    pub(crate) fn from_view(view: View, network: Arc<Network>) -> Result<NetState> {
        let mut s = NetState::from_snapshot(view.snapshot, network)?;
        for (i, pool) in s.network.pools().iter().enumerate() {
            let v6 = pool.is_ipv6();
            let mut known: Vec<(u128, u128)> = view
                .known
                .iter()
                .filter(|(lo, hi)| lo.is_ipv6() == v6 && hi.is_ipv6() == v6 && lo <= hi)
                .map(|(lo, hi)| (ip_to_u128(*lo), ip_to_u128(*hi)))
                .collect();
            known.sort_unstable();
            let used = &mut s.pools[i].used;
            let mut next = Some(0u128);
            for (lo, hi) in known {
                let Some(n) = next else { break };
                if lo > n {
                    used.insert_range(n, lo - 1);
                }
                next = hi.checked_add(1).map(|h| h.max(n));
            }
            if let Some(n) = next {
                used.insert_range(n, u128::MAX);
            }
        }
        Ok(s)
    }

    /// Whether this state is current with `stamp` (see [`Stamp`]).
    pub(crate) fn matches(&self, stamp: &Stamp) -> bool {
        self.version == stamp.version
            && self.slice_writes == Some(stamp.slice_writes)
            && stamp.leased.is_none_or(|n| n == self.records.len() as u64)
    }

    /// Sets this host's node slices (`None`: the store does not slice). Ranges outside every
    /// pool are ignored.
    pub(crate) fn set_slices(&mut self, slices: Option<Vec<AllocRange>>) {
        self.sliced = slices.is_some();
        for p in &mut self.pools {
            p.slices.clear();
        }
        for r in slices.into_iter().flatten() {
            self.add_slice(r);
        }
    }

    /// Adds one slice of this host (ignored if it lies in no pool).
    pub(crate) fn add_slice(&mut self, range: AllocRange) {
        let (lo, hi) = range.bounds();
        let v6 = matches!(
            range,
            AllocRange::Span {
                start: IpAddr::V6(_),
                ..
            } | AllocRange::Cidr(IpNet::V6(_))
        );
        let pools = self.network.pools();
        let Some(i) = pools.iter().position(|p| p.contains(u128_to_ip(lo, v6))) else {
            return;
        };
        let Some(subnet) = pools[i].subnet_of(u128_to_ip(lo, v6)) else {
            return;
        };
        let r = (lo, hi.min(ip_to_u128(subnet.broadcast())));
        let v = &mut self.pools[i].slices;
        if !v.contains(&r) {
            v.push(r);
            v.sort_unstable();
        }
    }

    /// No slice of pool `pool` is left: allocate anywhere in it from now on.
    pub(crate) fn slices_exhausted(&mut self, pool: usize) {
        if let Some(p) = self.pools.get_mut(pool) {
            p.slices_exhausted = true;
        }
    }

    /// The pools whose slices an allocation found full (and forgets that).
    pub(crate) fn take_slice_wants(&mut self) -> Vec<usize> {
        let mut v = Vec::new();
        for (i, p) in self.pools.iter_mut().enumerate() {
            if std::mem::take(&mut p.wants_slice) {
                v.push(i);
            }
        }
        v
    }

    /// Whether `ip` lies in one of this host's slices.
    pub(crate) fn in_slices(&self, ip: IpAddr) -> bool {
        let pools = self.network.pools();
        let Some(i) = pools.iter().position(|p| p.contains(ip)) else {
            return false;
        };
        let off = pools[i].offset(ip);
        let s = &self.pools[i].slices;
        let j = s.partition_point(|r| r.1 < off);
        j < s.len() && s[j].0 <= off
    }

    /// Whether `changes` are claims and releases inside this host's slices only (a commit
    /// that [`super::store::Store::commit_in_slices`] takes).
    pub(crate) fn all_in_slices(&self, changes: &[Change]) -> bool {
        self.sliced
            && changes.iter().all(|c| match c {
                Change::Claim(r) | Change::Release(r) => self.in_slices(r.addr),
                Change::Cursor { .. } => false,
            })
    }

    /// Whether any of `changes` touches an address in this host's slices.
    pub(crate) fn touches_slices(&self, changes: &[Change]) -> bool {
        self.sliced
            && changes.iter().any(|c| match c {
                Change::Claim(r) | Change::Release(r) => self.in_slices(r.addr),
                Change::Cursor { .. } => false,
            })
    }

    fn lease_of(&self, owner: &Owner, addrs: &[(usize, IpAddr)]) -> Lease {
        let pools = self.network.pools();
        Lease {
            owner: owner.clone(),
            addresses: addrs
                .iter()
                .map(|&(i, ip)| LeasedAddress {
                    address: IpNet::new(ip, pools[i].subnet_of(ip).map_or(0, |n| n.prefix_len()))
                        .expect("prefix of a valid subnet"),
                    gateway: pools[i].gateway_of(ip),
                    pool: i,
                })
                .collect(),
            boot_id: addrs
                .first()
                .and_then(|(_, ip)| self.records.get(ip))
                .and_then(|r| r.boot_id.clone()),
        }
    }

    fn claim_record(&mut self, r: Record) -> Result<()> {
        let pools = self.network.pools();
        let Some(i) = pools.iter().position(|p| p.contains(r.addr)) else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the store recorded lease {} of {} in network `{}`, outside all its pools",
                    r.addr,
                    r.owner,
                    self.network.name()
                ),
            ));
        };
        self.pools[i].used.insert(pools[i].offset(r.addr));
        let v = self.by_owner.entry(r.owner.clone()).or_default();
        v.push((i, r.addr));
        v.sort();
        self.records.insert(r.addr, r);
        Ok(())
    }

    fn drop_record(&mut self, addr: IpAddr) {
        let Some(r) = self.records.remove(&addr) else {
            return;
        };
        if let Some(v) = self.by_owner.get_mut(&r.owner) {
            v.retain(|(_, a)| *a != addr);
            if v.is_empty() {
                self.by_owner.remove(&r.owner);
            }
        }
        if let Some(p) = self.network.pools().iter().position(|p| p.contains(addr)) {
            let off = self.network.pools()[p].offset(addr);
            if !self.network.pools()[p].is_excluded_offset(off) {
                self.pools[p].used.remove(off);
            }
        }
    }

    /// The cursors, to restore with [`NetState::undo`].
    pub(crate) fn cursors(&self) -> Cursors {
        self.pools
            .iter()
            .map(|p| (p.cursor, p.slice_cursor))
            .collect()
    }

    /// Reverts `changes` made by this state's own operations.
    pub(crate) fn undo(&mut self, changes: &[Change], cursors: Cursors) -> Result<()> {
        for c in changes.iter().rev() {
            match c {
                Change::Claim(r) => self.drop_record(r.addr),
                Change::Release(r) => self.claim_record(r.clone())?,
                Change::Cursor { .. } => {}
            }
        }
        for (p, (c, s)) in self.pools.iter_mut().zip(cursors) {
            p.cursor = c;
            p.slice_cursor = s;
        }
        Ok(())
    }

    /// Applies changes another writer committed.
    pub(crate) fn apply_external(&mut self, changes: &[Change]) -> Result<()> {
        for c in changes {
            match c {
                Change::Claim(r) => {
                    self.drop_record(r.addr);
                    self.claim_record(r.clone())?;
                }
                Change::Release(r) => self.drop_record(r.addr),
                Change::Cursor { pool, addr } => {
                    if let (Some(ps), Some(p)) =
                        (self.pools.get_mut(*pool), self.network.pools().get(*pool))
                    {
                        if p.contains(*addr) {
                            ps.cursor = Some(p.offset(*addr));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, owner: &Owner) -> Option<Lease> {
        self.by_owner.get(owner).map(|a| self.lease_of(owner, a))
    }

    pub(crate) fn list(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self
            .by_owner
            .iter()
            .map(|(o, a)| self.lease_of(o, a))
            .collect();
        v.sort_by(|a, b| a.owner.cmp(&b.owner));
        v
    }

    /// The leases underlay cannot represent, by address.
    pub(crate) fn foreign(&self) -> Vec<ForeignLease> {
        let mut v = self.foreign.clone();
        v.sort_by_key(|f| f.addr);
        v
    }

    /// Number of leased addresses.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The next free offset of pool `i` after its cursor, wrapping around.
    fn next_fit(&self, i: usize) -> Option<u128> {
        let pool = &self.network.pools()[i];
        let spans = pool.spans();
        let ps = &self.pools[i];
        // host-local's range set iterator: on after the cursor, through the segments in
        // order, wrapping around.
        let (j, from) = pool.next_fit_start(ps.cursor);
        for k in 0..=spans.len() {
            let (lo, hi) = spans[(j + k) % spans.len()];
            let start = if k == 0 { from } else { lo };
            if start > hi {
                continue;
            }
            if let Some(f) = ps.used.first_free_from(start).filter(|f| *f <= hi) {
                return Some(f);
            }
        }
        None
    }

    /// The next free offset of pool `i` inside this host's slices after the last one picked
    /// there, wrapping around; `None` when they are full.
    fn pick_in_slices(&self, i: usize) -> Option<u128> {
        let spans = self.network.pools()[i].spans();
        let ps = &self.pools[i];
        // A slice lies in one segment; the spans are sorted within each segment only.
        let free_in = |lo: u128, hi: u128| -> Option<u128> {
            let mut hits: Vec<(u128, u128)> = spans
                .iter()
                .filter(|s| s.0 <= hi && s.1 >= lo)
                .map(|s| (lo.max(s.0), hi.min(s.1)))
                .collect();
            hits.sort_unstable();
            hits.into_iter()
                .find_map(|(start, end)| ps.used.first_free_from(start).filter(|f| *f <= end))
        };
        if let Some(c) = ps.slice_cursor {
            for &(lo, hi) in &ps.slices {
                if hi > c {
                    if let Some(f) = free_in(lo.max(c + 1), hi) {
                        return Some(f);
                    }
                }
            }
        }
        ps.slices.iter().find_map(|&(lo, hi)| free_in(lo, hi))
    }

    pub(crate) fn allocate(
        &mut self,
        owner: &Owner,
        req: &Request,
        boot_id: &Option<BootId>,
        changes: &mut Vec<Change>,
    ) -> Result<Lease> {
        let name = self.network.name();
        if let Some(held) = self.by_owner.get(owner) {
            if let Some(ip) = req
                .ips()
                .iter()
                .find(|ip| !held.iter().any(|h| h.1 == **ip))
            {
                let have: Vec<String> = held.iter().map(|h| h.1.to_string()).collect();
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{owner} already holds {} in network `{name}`: release it before asking \
                         for {ip}",
                        have.join(", ")
                    ),
                ));
            }
            return Ok(self.lease_of(owner, held));
        }
        let pools = self.network.pools();
        let mut picks: Vec<(Option<u128>, Pick)> = vec![(None, Pick::Fixed); pools.len()];
        for &ip in req.ips() {
            let Some(i) = pools.iter().position(|p| p.contains(ip)) else {
                let subnets: Vec<String> = pools.iter().map(|p| p.subnet().to_string()).collect();
                return Err(Error::invalid(format!(
                    "address {ip} is in no pool of network `{name}` ({}): ask for an address \
                     inside one",
                    subnets.join(", ")
                )));
            };
            let pool: &Pool = &pools[i];
            if picks[i].0.is_some() {
                return Err(Error::invalid(format!(
                    "two addresses asked for pool {} of network `{name}`: ask for one per pool",
                    pool.subnet()
                )));
            }
            if let Some(why) = pool.excluded_reason(ip) {
                return Err(Error::invalid(format!(
                    "address {ip} is {why} of pool {} in network `{name}`: ask for another",
                    pool.subnet()
                )));
            }
            if let Some(r) = self.records.get(&ip) {
                if let Some(q) = Quarantine::from_owner(&r.owner) {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "address {ip} in network `{name}` is quarantined: it answered on the \
                             wire ({}, at {} s since the epoch); ask for another, or release \
                             the quarantine (owner {}) once that machine is gone",
                            q.mac
                                .map_or("MAC not seen".to_string(), |m| format!("from {m}")),
                            q.since,
                            r.owner
                        ),
                    ));
                }
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "address {ip} in network `{name}` is already held by {}: ask for \
                         another or release it",
                        r.owner
                    ),
                ));
            }
            if let Some(f) = self.foreign.iter().find(|f| f.addr == ip) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "address {ip} in network `{name}` is held by a lease underlay cannot \
                         take as its own ({}: {}): ask for another, or release it with the \
                         tool that wrote it",
                        f.location, f.reason
                    ),
                ));
            }
            picks[i] = (Some(pool.offset(ip)), Pick::Fixed);
        }
        for i in 0..pools.len() {
            if picks[i].0.is_none() && self.sliced && !self.pools[i].slices_exhausted {
                match self.pick_in_slices(i) {
                    Some(off) => picks[i] = (Some(off), Pick::Slice),
                    None => {
                        self.pools[i].wants_slice = true;
                        return Err(Error::new(
                            ErrorKind::PoolExhausted,
                            format!(
                                "this host's node slices of pool {} in network `{name}` are \
                                 full and no new one could be taken: retry",
                                pools[i].subnet()
                            ),
                        ));
                    }
                }
            }
            if picks[i].0.is_none() {
                match self.next_fit(i) {
                    Some(off) => picks[i] = (Some(off), Pick::NextFit),
                    None => {
                        let p = &pools[i];
                        return Err(Error::new(
                            ErrorKind::PoolExhausted,
                            format!(
                                "pool {} of network `{name}` is exhausted: all {} addresses of \
                                 its ranges are in use; release leases (gc), or widen the ranges",
                                p.subnets()
                                    .iter()
                                    .map(|n| n.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" + "),
                                p.capacity()
                            ),
                        ));
                    }
                }
            }
        }
        let mut addrs = Vec::with_capacity(pools.len());
        for (i, (off, pick)) in picks.into_iter().enumerate() {
            let off = off.expect("every pool picked");
            let ip = pools[i].addr_at(off);
            self.pools[i].used.insert(off);
            let rec = Record {
                addr: ip,
                owner: owner.clone(),
                boot_id: boot_id.clone(),
            };
            changes.push(Change::Claim(rec.clone()));
            self.records.insert(ip, rec);
            match pick {
                Pick::NextFit => {
                    self.pools[i].cursor = Some(off);
                    changes.push(Change::Cursor { pool: i, addr: ip });
                }
                Pick::Slice => self.pools[i].slice_cursor = Some(off),
                Pick::Fixed => {}
            }
            addrs.push((i, ip));
        }
        let lease = self.lease_of(owner, &addrs);
        self.by_owner.insert(owner.clone(), addrs);
        Ok(lease)
    }

    pub(crate) fn release(&mut self, owner: &Owner, changes: &mut Vec<Change>) -> Option<Lease> {
        let addrs = self.by_owner.get(owner)?;
        let lease = self.lease_of(owner, addrs);
        let addrs = self.by_owner.remove(owner).expect("present");
        for (i, ip) in addrs {
            let pool = &self.network.pools()[i];
            let off = pool.offset(ip);
            if !pool.is_excluded_offset(off) {
                self.pools[i].used.remove(off);
            }
            if let Some(r) = self.records.remove(&ip) {
                changes.push(Change::Release(r));
            }
        }
        Some(lease)
    }

    /// Releases `owner`'s lease and puts each address of `found` that it held, or that is free,
    /// under its quarantine owner; an address another owner holds is left to it. Returns the
    /// quarantines made.
    pub(crate) fn quarantine(
        &mut self,
        owner: &Owner,
        found: &[Quarantine],
        boot_id: &Option<BootId>,
        changes: &mut Vec<Change>,
    ) -> Vec<Quarantine> {
        self.release(owner, changes);
        let mut made = Vec::new();
        for q in found {
            let Some(i) = self.network.pools().iter().position(|p| p.contains(q.ip)) else {
                continue;
            };
            if self.records.contains_key(&q.ip)
                || self.network.pools()[i].excluded_reason(q.ip).is_some()
            {
                continue;
            }
            let rec = Record {
                addr: q.ip,
                owner: q.owner(),
                boot_id: boot_id.clone(),
            };
            if self.claim_record(rec.clone()).is_ok() {
                changes.push(Change::Claim(rec));
                made.push(q.clone());
            }
        }
        made
    }

    /// Releases the owners for which `drop` is true, stopping (in owner order, at an owner's
    /// boundary) once `changes` holds `max_changes` or more; returns them and whether any
    /// were left for another batch.
    pub(crate) fn release_where(
        &mut self,
        mut drop: impl FnMut(&Owner, &Record) -> bool,
        max_changes: usize,
        changes: &mut Vec<Change>,
    ) -> (Vec<Lease>, bool) {
        let mut doomed: Vec<Owner> = self
            .by_owner
            .iter()
            .filter(|(o, a)| a.iter().any(|(_, ip)| drop(o, &self.records[ip])))
            .map(|(o, _)| o.clone())
            .collect();
        doomed.sort();
        let mut out = Vec::new();
        for (i, o) in doomed.iter().enumerate() {
            if i > 0 && changes.len() >= max_changes {
                return (out, true);
            }
            out.extend(self.release(o, changes));
        }
        (out, false)
    }

    /// Owners whose lease carries a boot id other than `current`.
    pub(crate) fn stale(&self, current: &BootId) -> Vec<Lease> {
        let mut v: Vec<Lease> = self
            .by_owner
            .iter()
            .filter(|(_, a)| {
                a.iter()
                    .any(|(_, ip)| matches!(&self.records[ip].boot_id, Some(b) if b != current))
            })
            .map(|(o, a)| self.lease_of(o, a))
            .collect();
        v.sort_by(|a, b| a.owner.cmp(&b.owner));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn state(pools: &[&str]) -> NetState {
        let net = Network::new("t", pools.iter().map(|p| p.parse().unwrap()).collect()).unwrap();
        let n = net.pools().len();
        let snap = Snapshot {
            network: net.clone(),
            records: vec![],
            cursors: vec![None; n],
            version: 0,
            slice_writes: 0,
            foreign: vec![],
        };
        NetState::from_snapshot(snap, Arc::new(net)).unwrap()
    }

    fn owner(i: usize) -> Owner {
        Owner::new(format!("c{i}"), "eth0").unwrap()
    }

    fn alloc(s: &mut NetState, i: usize) -> Result<IpAddr> {
        s.allocate(&owner(i), &Request::any(), &None, &mut vec![])
            .map(|l| l.ips()[0])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn order_skips_network_gateway_and_reserved() {
        let mut s = state(&["192.168.1.0/24 reserve=host=192.168.1.3"]);
        assert_eq!(alloc(&mut s, 0).unwrap(), ip("192.168.1.2"));
        assert_eq!(alloc(&mut s, 1).unwrap(), ip("192.168.1.4"));
        assert_eq!(alloc(&mut s, 2).unwrap(), ip("192.168.1.5"));
    }

    #[test]
    fn next_fit_does_not_reuse_at_once_and_wraps() {
        let mut s = state(&["10.0.0.0/29"]); // usable .2 .. .6 (.1 gateway, .7 broadcast)
        let got: Vec<IpAddr> = (0..5).map(|i| alloc(&mut s, i).unwrap()).collect();
        assert_eq!(got[0], ip("10.0.0.2"));
        assert_eq!(got[4], ip("10.0.0.6"));
        let e = alloc(&mut s, 9).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolExhausted);
        assert!(
            e.message().contains("pool 10.0.0.0/29 of network `t`"),
            "{e}"
        );
        assert!(e.message().contains("all 5 addresses"), "{e}");
        s.release(&owner(1), &mut vec![]).unwrap(); // .3
        s.release(&owner(3), &mut vec![]).unwrap(); // .5
                                                    // Cursor is at .6: wraps to the first free after it, .3 then .5.
        assert_eq!(alloc(&mut s, 10).unwrap(), ip("10.0.0.3"));
        s.release(&owner(10), &mut vec![]).unwrap(); // .3 free again, cursor at .3
        assert_eq!(alloc(&mut s, 11).unwrap(), ip("10.0.0.5"));
        assert_eq!(alloc(&mut s, 12).unwrap(), ip("10.0.0.3"));
    }

    #[test]
    fn several_ranges_in_order() {
        let mut s = state(&["10.0.0.0/24 range=10.0.0.200-10.0.0.201 range=10.0.0.10-10.0.0.11"]);
        let got: Vec<IpAddr> = (0..4).map(|i| alloc(&mut s, i).unwrap()).collect();
        let want: Vec<IpAddr> = ["10.0.0.10", "10.0.0.11", "10.0.0.200", "10.0.0.201"]
            .iter()
            .map(|a| ip(a))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            alloc(&mut s, 5).unwrap_err().kind(),
            ErrorKind::PoolExhausted
        );
    }

    #[test]
    fn a_pool_over_two_subnets_goes_on_into_the_second_and_wraps() {
        // Range set order, not address order: 10.9.0.0/29 first, then 10.1.0.0/30.
        let mut s = state(&["10.9.0.0/29 range=10.9.0.5-10.9.0.6 + 10.1.0.0/30 gateway=none"]);
        let mut ch = vec![];
        let l = s
            .allocate(&owner(0), &Request::any(), &None, &mut ch)
            .unwrap();
        assert_eq!(l.addresses[0].address.to_string(), "10.9.0.5/29");
        assert_eq!(l.addresses[0].gateway, Some(ip("10.9.0.1")));
        assert_eq!(alloc(&mut s, 1).unwrap(), ip("10.9.0.6"));
        // The first segment is full: its own prefix and gateway for the second's address.
        let l = s
            .allocate(&owner(2), &Request::any(), &None, &mut ch)
            .unwrap();
        assert_eq!(l.addresses[0].address.to_string(), "10.1.0.1/30");
        assert_eq!(l.addresses[0].gateway, None);
        assert_eq!(l.addresses[0].pool, 0);
        // One cursor per pool (host-local's `last_reserved_ip.0`), in whichever segment.
        assert!(ch.contains(&Change::Cursor {
            pool: 0,
            addr: ip("10.1.0.1")
        }));
        // A release in the first segment is not reused at once: next-fit goes on in the
        // second, then wraps around into the first.
        s.release(&owner(0), &mut vec![]).unwrap();
        assert_eq!(alloc(&mut s, 3).unwrap(), ip("10.1.0.2"));
        assert_eq!(alloc(&mut s, 4).unwrap(), ip("10.9.0.5"));
        let e = alloc(&mut s, 5).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolExhausted);
        assert!(e.message().contains("10.9.0.0/29 + 10.1.0.0/30"), "{e}");
        // A fixed address in the second segment; excluded ones of either are refused.
        s.release(&owner(3), &mut vec![]).unwrap();
        let r = Request::ip(ip("10.1.0.2"));
        assert_eq!(
            s.allocate(&owner(6), &r, &None, &mut ch).unwrap().ips()[0],
            ip("10.1.0.2")
        );
        for bad in ["10.9.0.1", "10.1.0.3", "10.1.0.0"] {
            let r = Request::ip(ip(bad));
            assert!(s.allocate(&owner(7), &r, &None, &mut ch).is_err(), "{bad}");
        }
        // A cursor outside every span (the second segment's network address) goes on in
        // that segment's next span.
        let mut s = state(&["10.9.0.0/29 + 10.1.0.0/29 range=10.1.0.4-10.1.0.5"]);
        s.apply_external(&[Change::Cursor {
            pool: 0,
            addr: ip("10.1.0.0"),
        }])
        .unwrap();
        assert_eq!(alloc(&mut s, 0).unwrap(), ip("10.1.0.4"));
        s.apply_external(&[Change::Cursor {
            pool: 0,
            addr: ip("10.1.0.6"),
        }])
        .unwrap();
        assert_eq!(alloc(&mut s, 1).unwrap(), ip("10.9.0.2"));
    }

    #[test]
    fn idempotent_and_specific() {
        let mut s = state(&["172.22.16.0/24", "fd00:16::/64"]);
        let o = owner(1);
        let mut ch = vec![];
        let req = Request::ip(ip("172.22.16.10"));
        let l = s.allocate(&o, &req, &None, &mut ch).unwrap();
        assert_eq!(l.ips(), vec![ip("172.22.16.10"), ip("fd00:16::2")]);
        assert_eq!(l.addresses[0].address.to_string(), "172.22.16.10/24");
        assert_eq!(l.addresses[1].gateway, Some(ip("fd00:16::1")));
        assert_eq!(ch.len(), 3); // two claims, one cursor (v6 only)
        let again = s.allocate(&o, &Request::any(), &None, &mut ch).unwrap();
        assert_eq!(again, l);
        assert_eq!(s.allocate(&o, &req, &None, &mut vec![]).unwrap(), l);
        let e = s
            .allocate(&o, &Request::ip(ip("172.22.16.11")), &None, &mut vec![])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = s.allocate(&owner(2), &req, &None, &mut vec![]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(e.message().contains("c1/eth0"), "{e}");
        for (bad, what) in [
            ("172.22.16.1", "the gateway"),
            ("172.22.16.255", "the broadcast address"),
            ("172.22.16.0", "the network address"),
            ("fd00:16::", "subnet-router anycast"),
            ("10.9.9.9", "no pool"),
        ] {
            let e = s
                .allocate(&owner(3), &Request::ip(ip(bad)), &None, &mut vec![])
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains(what), "{e}");
        }
        let e = s
            .allocate(
                &owner(3),
                &Request::ip(ip("172.22.16.20")).and_ip(ip("172.22.16.21")),
                &None,
                &mut vec![],
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // A failed request changed nothing.
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn huge_pools_are_cheap() {
        let mut s = state(&["10.0.0.0/8", "fd00::/64"]);
        for i in 0..1000 {
            alloc(&mut s, i).unwrap();
        }
        assert_eq!(s.len(), 2000);
    }

    #[test]
    fn undo_then_catch_up_equals_a_fresh_load() {
        let mut a = state(&["10.0.0.0/28", "fd00::/125"]);
        let mut b = a.clone();
        // `a` commits two allocations and a release; `b` computed a batch on the old state.
        let mut ext = vec![];
        for i in 0..2 {
            a.allocate(&owner(i), &Request::any(), &None, &mut ext)
                .unwrap();
        }
        a.release(&owner(0), &mut ext).unwrap();
        let cursors = b.cursors();
        let mut mine = vec![];
        b.allocate(&owner(7), &Request::any(), &None, &mut mine)
            .unwrap();
        b.undo(&mine, cursors).unwrap();
        b.apply_external(&ext).unwrap();
        assert_eq!(b.list(), a.list());
        // Both now pick the same next address.
        let x = a
            .allocate(&owner(9), &Request::any(), &None, &mut vec![])
            .unwrap();
        let y = b
            .allocate(&owner(9), &Request::any(), &None, &mut vec![])
            .unwrap();
        assert_eq!(x, y);
        assert_eq!(x.ips(), vec![ip("10.0.0.4"), ip("fd00::4")]);
    }

    #[test]
    fn slices_are_picked_in_order_wrap_and_ask_for_more() {
        let mut s = state(&["10.0.0.0/24", "fd00::/120"]);
        let span = |a: &str, b: &str| AllocRange::span(ip(a), ip(b)).unwrap();
        s.set_slices(Some(vec![
            span("10.0.0.16", "10.0.0.19"),
            span("10.0.0.0", "10.0.0.3"),
        ]));
        s.add_slice(span("fd00::10", "fd00::13"));
        s.add_slice(span("192.168.0.0", "192.168.0.3")); // in no pool: ignored
        assert!(s.in_slices(ip("10.0.0.17")) && !s.in_slices(ip("10.0.0.4")));
        // First block first (.0 network, .1 gateway excluded), v6 in its own slice.
        let mut ch = vec![];
        let l = s
            .allocate(&owner(0), &Request::any(), &None, &mut ch)
            .unwrap();
        assert_eq!(l.ips(), vec![ip("10.0.0.2"), ip("fd00::10")]);
        assert!(s.all_in_slices(&ch), "{ch:?}: no cursor move, all inside");
        let got: Vec<IpAddr> = (1..=3).map(|i| alloc(&mut s, i).unwrap()).collect();
        let want = ["10.0.0.3", "10.0.0.16", "10.0.0.17"];
        assert_eq!(got, want.iter().map(|a| ip(a)).collect::<Vec<_>>());
        // The v6 slice (4 addresses) ran out: the pool asks for a slice, nothing changed.
        let e = alloc(&mut s, 4).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolExhausted, "{e}");
        assert_eq!(s.take_slice_wants(), vec![1]);
        s.add_slice(span("fd00::20", "fd00::23"));
        assert_eq!(alloc(&mut s, 4).unwrap(), ip("10.0.0.18"));
        assert_eq!(alloc(&mut s, 5).unwrap(), ip("10.0.0.19"));
        s.release(&owner(1), &mut vec![]).unwrap(); // .3 free again
                                                    // After the cursor (.19) the slices wrap around to the freed .3.
        assert_eq!(alloc(&mut s, 6).unwrap(), ip("10.0.0.3"));
        // No slice left in the v4 pool: next-fit anywhere, with a stored cursor move.
        alloc(&mut s, 7).unwrap_err();
        assert_eq!(s.take_slice_wants(), vec![0]);
        s.slices_exhausted(0);
        let mut ch = vec![];
        let l = s
            .allocate(&owner(8), &Request::any(), &None, &mut ch)
            .unwrap();
        assert_eq!(l.ips(), vec![ip("10.0.0.4"), ip("fd00::23")]);
        assert!(!s.all_in_slices(&ch) && s.touches_slices(&ch));
        // Undo restores the slice cursor too.
        let c = s.cursors();
        let mut ch = vec![];
        s.release(&owner(5), &mut ch).unwrap();
        let before = s.cursors();
        s.undo(&ch, c.clone()).unwrap();
        assert_eq!(before, c);
    }

    #[test]
    fn gc_and_stale() {
        let mut s = state(&["10.0.0.0/24"]);
        let old = BootId::new("old").unwrap();
        let new = BootId::new("new").unwrap();
        s.allocate(&owner(1), &Request::any(), &Some(old.clone()), &mut vec![])
            .unwrap();
        s.allocate(&owner(2), &Request::any(), &Some(new.clone()), &mut vec![])
            .unwrap();
        s.allocate(&owner(3), &Request::any(), &None, &mut vec![])
            .unwrap();
        let stale = s.stale(&new);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].owner, owner(1));
        let mut ch = vec![];
        let keep: HashSet<Owner> = [owner(2)].into_iter().collect();
        let (gone, more) = s.release_where(|o, _| !keep.contains(o), usize::MAX, &mut ch);
        assert!(!more);
        assert_eq!(gone.len(), 2);
        assert_eq!(ch.len(), 2);
        assert_eq!(s.list().len(), 1);
    }
}

//! Node slices (optional, [`super::EtcdConfig::slices`]): a host reserves an aligned block of a
//! pool at once and picks its addresses inside it ([`crate::ipam::Ipam`] does, through the
//! [`crate::ipam::Store`] methods below). Claims and releases inside the host's slices commit
//! without the network's version: each compares its address key (absent, or held by the
//! releasing owner) and the slice key (still this host's), so hosts allocating at once do not
//! contend, and no address is ever owned twice whatever the slices say. See docs/ipam-etcd.md.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::Record;
use crate::ipam::network::{check_name, Network};
use crate::ipam::pool::AllocRange;
use crate::ipam::store::Change;

use super::{codec, fold, get_kvs, revision, timeout_err, EtcdStore, Failure, Pre};

/// One slice: `size` addresses from `first`, held by `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slice {
    pub(super) first: IpAddr,
    pub(super) size: u32,
    pub(super) host: String,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

impl Slice {
    fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v6 = self.first.is_ipv6();
        let start = to_u128(self.first);
        (0..u128::from(self.size)).map(move |i| from_u128(v6, start + i))
    }

    /// The block as a range of addresses.
    fn range(&self) -> AllocRange {
        let v6 = self.first.is_ipv6();
        let last = from_u128(v6, to_u128(self.first) + u128::from(self.size) - 1);
        AllocRange::Span {
            start: self.first,
            end: last,
        }
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.first.is_ipv6()
            && (to_u128(self.first)..to_u128(self.first) + u128::from(self.size))
                .contains(&to_u128(ip))
    }
}

pub(super) fn encode(host: &str, size: u32) -> String {
    format!("host={host} size={size}")
}

pub(super) fn decode(key: &[u8], first: IpAddr, value: &[u8]) -> Result<Slice> {
    let text = codec::text(key, value)?;
    let mut host = None;
    let mut size = None;
    for w in text.split(' ') {
        match w.split_once('=') {
            Some(("host", h)) if !h.is_empty() => host = Some(h.to_string()),
            Some(("size", s)) => size = s.parse::<u32>().ok().filter(|n| *n > 0),
            _ => {
                return Err(codec::corrupt(
                    key,
                    format_args!("`{w}` is not a slice field"),
                ))
            }
        }
    }
    match (host, size) {
        (Some(host), Some(size)) => Ok(Slice { first, size, host }),
        _ => Err(codec::corrupt(key, "a slice needs host= and size=")),
    }
}

/// Whether `ip` may be handed out in `net` (inside a pool's ranges, not its gateway, network,
/// broadcast or a reserved address).
fn allocatable(net: &Network, ip: IpAddr) -> bool {
    net.pools()
        .iter()
        .any(|p| p.in_ranges(ip) && p.excluded_reason(ip).is_none())
}

impl EtcdStore {
    /// Every slice of network `name`, by first address, from the slice keys `kvs`.
    fn parse_slices(
        &self,
        name: &str,
        kvs: &[etcd_client::KeyValue],
    ) -> Result<BTreeMap<IpAddr, Slice>> {
        let prefix = self.keys.slices(name);
        let mut out = BTreeMap::new();
        for kv in kvs {
            let first: IpAddr = codec::suffix(kv.key(), &prefix)?
                .parse()
                .map_err(|_| codec::corrupt(kv.key(), "the key does not end in an IP address"))?;
            out.insert(first, decode(kv.key(), first, kv.value())?);
        }
        Ok(out)
    }

    /// Every slice of network `name`, by first address.
    async fn read_slices(&self, name: &str) -> Result<BTreeMap<IpAddr, Slice>> {
        check_name(name)?;
        let p = self.keys.slices(name);
        let r = self
            .call("read the slices of a network", move |mut kv| {
                let k = p.clone();
                async move { kv.get(k, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        self.parse_slices(name, r.kvs())
    }

    /// Every slice of network `name`, grouped by the host holding it, as (first address, size).
    pub async fn slices_by_host(&self, name: &str) -> Result<BTreeMap<String, Vec<(IpAddr, u32)>>> {
        let mut out: BTreeMap<String, Vec<(IpAddr, u32)>> = BTreeMap::new();
        for s in self.read_slices(name).await?.into_values() {
            out.entry(s.host).or_default().push((s.first, s.size));
        }
        Ok(out)
    }

    fn no_slices(&self, name: &str) -> Error {
        Error::invalid(format!(
            "network `{name}`: this etcd store has no node slices: give EtcdConfig::slices a size \
             to use them"
        ))
    }

    /// This host's slices of network `name`, read from etcd (and remembered for commits).
    pub(super) async fn do_host_slices(&self, name: &str) -> Result<Option<Vec<AllocRange>>> {
        if self.slice_size.is_none() {
            return Ok(None);
        }
        let mine: Vec<Slice> = self
            .read_slices(name)
            .await?
            .into_values()
            .filter(|s| s.host == self.host)
            .collect();
        let ranges = mine.iter().map(Slice::range).collect();
        self.lock_slices().insert(name.to_string(), mine);
        Ok(Some(ranges))
    }

    /// Reserves for this host the first free aligned block of pool `pool` of network `name`
    /// that holds an allocatable address, in one transaction comparing the slice key absent
    /// and the network's slice size equal to this host's (or absent: the first slice fixes
    /// it). With [`super::EtcdConfig::host_lease`] the slice carries the host's lease.
    pub(super) async fn do_take_slice(&self, name: &str, pool: usize) -> Result<AllocRange> {
        let Some(size) = self.slice_size else {
            return Err(self.no_slices(name));
        };
        let net = self.read_network(name).await?;
        let Some(subnet) = net.pools().get(pool).map(|p| p.subnet()) else {
            return Err(Error::invalid(format!(
                "network `{name}` has no pool #{pool}: ask for a slice of one of its {} pools",
                net.pools().len()
            )));
        };
        let k = &self.keys;
        let size_key = k.slice_size(name);
        loop {
            let read = Txn::new().and_then(vec![
                TxnOp::get(k.slices(name), Some(GetOptions::new().with_prefix())),
                TxnOp::get(size_key.clone(), None),
            ]);
            let r = self.txn("read the slices of a network", read).await?;
            let ops = r.op_responses();
            let taken = self.parse_slices(name, get_kvs(&ops[0]))?;
            let size_cmp = match get_kvs(&ops[1]).first() {
                Some(kv) => {
                    let n: u32 = codec::text(kv.key(), kv.value())?
                        .parse()
                        .map_err(|_| codec::corrupt(kv.key(), "the size is not a number"))?;
                    if n != size {
                        return Err(Error::invalid(format!(
                            "network `{name}` is sliced in blocks of {n} addresses (by the host \
                             that took the first slice), this host asks for {size}: give every \
                             host of the network EtcdConfig::slices({n})"
                        )));
                    }
                    Compare::value(size_key.clone(), CompareOp::Equal, n.to_string())
                }
                None => Compare::version(size_key.clone(), CompareOp::Equal, 0),
            };
            let Some(first) = free_block(&net, pool, &taken, size) else {
                return Err(Error::new(
                    ErrorKind::PoolExhausted,
                    format!(
                        "pool {subnet} of network `{name}` has no free slice of {size} addresses \
                         left ({} taken in the network): this host allocates anywhere in the \
                         pool; free slices with gc_slices, or use smaller ones",
                        taken.len()
                    ),
                ));
            };
            let key = k.slice(name, first);
            let txn = Txn::new()
                .when(vec![
                    size_cmp,
                    Compare::version(key.clone(), CompareOp::Equal, 0),
                    Compare::version(k.version(name), CompareOp::Greater, 0),
                ])
                .and_then(vec![
                    TxnOp::put(key.clone(), encode(&self.host, size), self.lease_opts()),
                    TxnOp::put(size_key.clone(), size.to_string(), None),
                ]);
            // Repeated as it is after a lost reply: if it applied, the key shows this host.
            let r = self.txn("take a slice", txn).await?;
            let ours = r.succeeded()
                || self
                    .read_slices(name)
                    .await?
                    .get(&first)
                    .is_some_and(|s| s.host == self.host);
            if ours {
                let slice = Slice {
                    first,
                    size,
                    host: self.host.clone(),
                };
                let range = slice.range();
                let mut m = self.lock_slices();
                let v = m.entry(name.to_string()).or_default();
                if !v.iter().any(|s| s.first == first) {
                    v.push(slice);
                }
                return Ok(range);
            }
            if self.read_network(name).await.is_err() {
                return Err(self.not_found(name));
            }
            // Another host took that block meanwhile: look again.
        }
    }

    pub(super) fn lock_slices(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<Slice>>> {
        self.slices.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits claims and releases inside this host's slices without the network's version:
    /// compares each address key (absent for a claim, the owner's for a release), each slice
    /// key touched (still this host's) and the network's existence; writes the addresses and
    /// the `slicewrites` key, whose revision before and after is returned. A lost reply is
    /// resolved by sending the same transaction again (its compares make a second apply
    /// impossible) and, if refused, by reading the addresses back: the batch's outcome there
    /// means it applied.
    pub(super) async fn do_commit_in_slices(
        &self,
        name: &str,
        changes: &[Change],
    ) -> Result<Option<(u64, u64)>> {
        check_name(name)?;
        let (per_addr, cursors) = fold(name, changes)?;
        if !cursors.is_empty() || per_addr.is_empty() {
            return Err(Error::invalid(format!(
                "network `{name}`: a commit in node slices claims or releases addresses and moves \
                 no cursor: commit this batch with Store::commit"
            )));
        }
        if self.lock_slices().get(name).is_none_or(Vec::is_empty) {
            self.do_host_slices(name).await?;
        }
        let own = self.lock_slices().get(name).cloned().unwrap_or_default();
        let mut used: Vec<&Slice> = Vec::new();
        for addr in per_addr.keys() {
            let Some(s) = own.iter().find(|s| s.contains(*addr)) else {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "address {addr} of network `{name}` lies in no node slice of host `{}` \
                         (a slice was lost or given back): reload and retry",
                        self.host
                    ),
                ));
            };
            if !used.iter().any(|u| u.first == s.first) {
                used.push(s);
            }
        }
        let k = &self.keys;
        let deadline = super::deadline_after(self.retry_for);
        let mut delay = Duration::from_millis(20);
        let mut lost = false;
        loop {
            // Built per attempt: the host's lease may have been replaced meanwhile.
            let mut compares = vec![Compare::version(k.version(name), CompareOp::Greater, 0)];
            for s in &used {
                compares.push(Compare::value(
                    k.slice(name, s.first),
                    CompareOp::Equal,
                    encode(&s.host, s.size),
                ));
            }
            let mut ops = vec![TxnOp::get(k.slice_writes(name), None)];
            self.address_ops(name, &per_addr, &mut compares, &mut ops);
            ops.push(TxnOp::put(k.slice_writes(name), self.host.clone(), None));
            self.check_txn_size(name, compares.len(), ops.len())?;
            let txn = Txn::new()
                .when(compares)
                .and_then(ops)
                .or_else(vec![TxnOp::get(k.version(name), None)]);
            let last = match self.once(self.client.kv_client().txn(txn), deadline).await {
                Ok(r) if r.succeeded() => {
                    let prev = revision(get_kvs(&r.op_responses()[0]).first());
                    let now = r.header().map_or(0, |h| h.revision().unsigned_abs());
                    return Ok(Some((prev, now)));
                }
                Ok(r) => {
                    if get_kvs(&r.op_responses()[0]).is_empty() {
                        return Err(self.not_found(name));
                    }
                    if lost && self.batch_stored(name, &per_addr, deadline).await? {
                        return Ok(None); // an earlier attempt applied; only its reply was lost
                    }
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "network `{name}`: a commit in the node slices of host `{}` was \
                             refused (an address there is taken or no longer held, or a slice \
                             is no longer this host's): reload and retry",
                            self.host
                        ),
                    ));
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(m)) => m,
            };
            lost = true;
            if Instant::now() + delay > deadline {
                return Err(timeout_err(
                    &self.endpoints,
                    "commit in node slices",
                    self.retry_for,
                    &last,
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Whether every address of a folded batch is as the batch leaves it: claimed ones held
    /// with this host's record, released ones free.
    async fn batch_stored(
        &self,
        name: &str,
        per_addr: &BTreeMap<IpAddr, (Pre, Option<&Record>)>,
        deadline: Instant,
    ) -> Result<bool> {
        let gets = per_addr
            .keys()
            .map(|a| TxnOp::get(self.keys.addr(name, *a), None))
            .collect::<Vec<_>>();
        let check = Txn::new().and_then(gets);
        let r = self
            .txn_until("check a commit in node slices", check, deadline)
            .await?;
        Ok(per_addr
            .values()
            .zip(r.op_responses())
            .all(|((_, now), got)| match (now, get_kvs(&got).first()) {
                (Some(rec), Some(kv)) => {
                    kv.value() == codec::encode_record(rec, &self.host).as_bytes()
                }
                (None, None) => true,
                _ => false,
            }))
    }

    /// Deletes the slices of `host` in network `name` that hold no lease (a dead or drained
    /// host's blocks go back to the pool). Returns their first addresses. Leases inside a
    /// slice keep it; release them first (e.g. [`EtcdStore::gc_host`]).
    pub async fn gc_slices(&self, name: &str, host: &str) -> Result<Vec<IpAddr>> {
        let slices = self.read_slices(name).await?;
        let leased: Vec<IpAddr> = self
            .load_inner(name)
            .await?
            .0
            .records
            .iter()
            .map(|r| r.addr)
            .collect();
        let mut freed = Vec::new();
        for s in slices.into_values().filter(|s| s.host == host) {
            if leased.iter().any(|ip| s.contains(*ip)) {
                continue;
            }
            let key = self.keys.slice(name, s.first);
            let txn = Txn::new()
                .when(vec![Compare::value(
                    key.clone(),
                    CompareOp::Equal,
                    encode(&s.host, s.size),
                )])
                .and_then(vec![TxnOp::delete(key, None)]);
            if self.txn("delete a slice", txn).await?.succeeded() {
                freed.push(s.first);
            }
        }
        if host == self.host {
            if let Some(v) = self.lock_slices().get_mut(name) {
                v.retain(|s| !freed.contains(&s.first));
            }
        }
        Ok(freed)
    }
}

/// The first aligned block of `size` addresses in pool `pool` of `net` not overlapping a slice
/// of `taken` and holding at least one allocatable address.
fn free_block(
    net: &Network,
    pool: usize,
    taken: &BTreeMap<IpAddr, Slice>,
    size: u32,
) -> Option<IpAddr> {
    let size = u128::from(size);
    // The segments in order: a pool over several subnets is sliced in each of them.
    for subnet in net
        .pools()
        .get(pool)
        .map(|p| p.subnets())
        .unwrap_or_default()
    {
        let v6 = subnet.network().is_ipv6();
        let (lo, hi) = (to_u128(subnet.network()), to_u128(subnet.broadcast()));
        let mut start = lo;
        while start <= hi {
            let block = Slice {
                first: from_u128(v6, start),
                size: u32::try_from(size).unwrap_or(u32::MAX),
                host: String::new(),
            };
            let clash = taken.values().any(|s| {
                s.first.is_ipv6() == v6
                    && to_u128(s.first) < start + size
                    && start < to_u128(s.first) + u128::from(s.size)
            });
            if !clash && block.addrs().any(|ip| allocatable(net, ip)) {
                return Some(block.first);
            }
            start = start.checked_add(size)?;
        }
    }
    None
}

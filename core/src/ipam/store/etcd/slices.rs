//! Node slices (optional): a host reserves an aligned block of a pool at once and picks its
//! addresses inside it, so hosts stop competing for the same next address. A slice is only a
//! hint: each address is still claimed with its own key in a normal commit, so no address is
//! ever owned twice, whatever the slices say. See docs/ipam-etcd.md.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{Lease, Owner, Request};
use crate::ipam::network::{check_name, Network};
use crate::ipam::Ipam;

use super::{codec, EtcdStore};

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

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.first.is_ipv6()
            && (to_u128(self.first)..to_u128(self.first) + u128::from(self.size))
                .contains(&to_u128(ip))
    }
}

fn encode(host: &str, size: u32) -> String {
    format!("host={host} size={size}")
}

fn decode(key: &[u8], first: IpAddr, value: &[u8]) -> Result<Slice> {
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
    fn slice_key(&self, name: &str, first: IpAddr) -> String {
        format!("{}slice/{first}", self.keys.data(name))
    }

    fn slice_size_key(&self, name: &str) -> String {
        format!("{}slicesize", self.keys.data(name))
    }

    /// Every slice of network `name`, by first address.
    async fn read_slices(&self, name: &str) -> Result<BTreeMap<IpAddr, Slice>> {
        check_name(name)?;
        let prefix = format!("{}slice/", self.keys.data(name));
        let p = prefix.clone();
        let r = self
            .call("read the slices of a network", move |mut kv| {
                let k = p.clone();
                async move { kv.get(k, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut out = BTreeMap::new();
        for kv in r.kvs() {
            let first: IpAddr = codec::suffix(kv.key(), &prefix)?
                .parse()
                .map_err(|_| codec::corrupt(kv.key(), "the key does not end in an IP address"))?;
            out.insert(first, decode(kv.key(), first, kv.value())?);
        }
        Ok(out)
    }

    /// Every slice of network `name`, grouped by the host holding it, as (first address, size).
    pub async fn slices_by_host(&self, name: &str) -> Result<BTreeMap<String, Vec<(IpAddr, u32)>>> {
        let mut out: BTreeMap<String, Vec<(IpAddr, u32)>> = BTreeMap::new();
        for s in self.read_slices(name).await?.into_values() {
            out.entry(s.host).or_default().push((s.first, s.size));
        }
        Ok(out)
    }

    /// Reserves for this host the first free aligned block of `size` addresses of network
    /// `name` that holds an allocatable address. Every host of a network must use one size:
    /// the first slice fixes it (stored under `slicesize`); another size is
    /// [`ErrorKind::InvalidArgument`]. [`ErrorKind::PoolExhausted`] when no block is free.
    /// With [`super::EtcdConfig::host_lease`] the slice carries the host's lease.
    pub async fn take_slice(&self, name: &str, size: u32) -> Result<(IpAddr, u32)> {
        if size == 0 {
            return Err(Error::invalid("a slice needs at least one address"));
        }
        let net = self.load_inner(name).await?.0.network;
        loop {
            let taken = self.read_slices(name).await?;
            let size_key = self.slice_size_key(name);
            let sk = size_key.clone();
            let stored = self
                .call("read the slice size", move |mut kv| {
                    let k = sk.clone();
                    async move { kv.get(k, None).await }
                })
                .await?;
            let size_cmp = match stored.kvs().first() {
                Some(kv) => {
                    let n: u32 = codec::text(kv.key(), kv.value())?
                        .parse()
                        .map_err(|_| codec::corrupt(kv.key(), "the size is not a number"))?;
                    if n != size {
                        return Err(Error::invalid(format!(
                            "network `{name}` is sliced in blocks of {n} addresses: ask for \
                             slices of {n}"
                        )));
                    }
                    Compare::value(size_key.clone(), CompareOp::Equal, n.to_string())
                }
                None => Compare::version(size_key.clone(), CompareOp::Equal, 0),
            };
            let Some(first) = free_block(&net, &taken, size) else {
                return Err(Error::new(
                    ErrorKind::PoolExhausted,
                    format!(
                        "network `{name}` has no free slice of {size} addresses left ({} taken): \
                         release or gc slices, or allocate without slices",
                        taken.len()
                    ),
                ));
            };
            let key = self.slice_key(name, first);
            let opts = self
                .lease
                .as_ref()
                .map(|l| PutOptions::new().with_lease(l.id()));
            let txn = Txn::new()
                .when(vec![
                    size_cmp,
                    Compare::version(key.clone(), CompareOp::Equal, 0),
                    Compare::version(self.keys.version(name), CompareOp::Greater, 0),
                ])
                .and_then(vec![
                    TxnOp::put(key, encode(&self.host, size), opts),
                    TxnOp::put(size_key, size.to_string(), None),
                ]);
            // Idempotent enough to repeat: a lost reply that applied shows as our slice below.
            let r = self.txn("take a slice", txn).await?;
            if r.succeeded() {
                self.remember_slice(name, first, size);
                return Ok((first, size));
            }
            if let Some(s) = self.read_slices(name).await?.get(&first) {
                if s.host == self.host && !self.own_slices(name).iter().any(|m| m.first == first) {
                    self.remember_slice(name, first, size);
                    return Ok((first, size));
                }
            }
            // Another host took that block meanwhile: look again.
        }
    }

    fn remember_slice(&self, name: &str, first: IpAddr, size: u32) {
        let mut m = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        let v = m.entry(name.to_string()).or_default();
        if !v.iter().any(|s| s.first == first) {
            v.push(Slice {
                first,
                size,
                host: self.host.clone(),
            });
        }
    }

    fn own_slices(&self, name: &str) -> Vec<Slice> {
        let m = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        m.get(name).cloned().unwrap_or_default()
    }

    /// Allocates for `owner` in `ipam`'s network an address inside this host's slices, taking a
    /// new slice of `size` when they are full (the host's earlier slices are found in etcd
    /// the first time). The address is claimed like any other (its key, in a commit through
    /// `ipam`): the slice only decides where this host looks first.
    pub async fn allocate_in_slice(&self, ipam: &Ipam, owner: &Owner, size: u32) -> Result<Lease> {
        let name = ipam.network().name().to_string();
        if self.own_slices(&name).is_empty() {
            for s in self.read_slices(&name).await?.into_values() {
                if s.host == self.host {
                    self.remember_slice(&name, s.first, s.size);
                }
            }
        }
        let mut tried: HashSet<IpAddr> = HashSet::new();
        loop {
            let held: HashSet<IpAddr> = ipam.list().await?.iter().flat_map(|l| l.ips()).collect();
            let mut candidate = None;
            'find: for s in self.own_slices(&name) {
                for ip in s.addrs() {
                    if !held.contains(&ip)
                        && !tried.contains(&ip)
                        && allocatable(ipam.network(), ip)
                    {
                        candidate = Some(ip);
                        break 'find;
                    }
                }
            }
            let Some(ip) = candidate else {
                self.take_slice(&name, size).await?;
                continue;
            };
            match ipam.allocate(owner, &Request::ip(ip)).await {
                Ok(l) => return Ok(l),
                // Taken meanwhile (a host not using slices, or ours lost to a lease expiry).
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    tried.insert(ip);
                }
                Err(e) => return Err(e),
            }
        }
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
            let key = self.slice_key(name, s.first);
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
            let mut m = self.slices.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = m.get_mut(name) {
                v.retain(|s| !freed.contains(&s.first));
            }
        }
        Ok(freed)
    }
}

/// The first aligned block of `size` addresses in `net`'s pools not overlapping a slice of
/// `taken` and holding at least one allocatable address.
fn free_block(net: &Network, taken: &BTreeMap<IpAddr, Slice>, size: u32) -> Option<IpAddr> {
    let size = u128::from(size);
    for pool in net.pools() {
        let subnet = pool.subnet();
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

//! Where leases live: the [`Store`] trait and its implementations.
//!
//! A store keeps, per network, its definition and one [`Record`] per leased address, plus the
//! next-fit cursor of each pool, under a version number. Reads return a [`Snapshot`]; writes are
//! compare-and-swap: [`Store::commit`] applies a batch of [`Change`]s only if the network's
//! version is still the one the caller read, else fails with [`ErrorKind::Conflict`] and the
//! caller reloads and recomputes. A file store does this under a file lock; an etcd store as one
//! transaction comparing a version key (or each address key's `create_revision == 0`).
//!
//! A store shared by several hosts (etcd) adds three things, all with single-host defaults:
//! membership ([`Store::join_network`], [`Store::leave_network`]: the definition goes with the
//! last host), changes outside the version ([`Stamp`]: leases that expire, claims inside a
//! host's node slice), and node slices ([`Store::host_slices`], [`Store::take_slice`],
//! [`Store::commit_in_slices`]).

#[cfg(feature = "etcd")]
pub(crate) mod etcd;
pub(crate) mod fsutil;
pub(crate) mod holds;
pub(crate) mod hostlocal;
pub(crate) mod local;
mod localview;
mod memory;
mod stateformat;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::error::{Error, ErrorKind, Result};

use super::lease::{Owner, Record};
use super::network::Network;
use super::pool::AllocRange;

pub use holds::{Hold, Unheld};
pub use hostlocal::HostLocalStore;
pub use local::LocalStore;
pub use memory::MemoryStore;

/// The future every [`Store`] method returns (object-safe, `Send`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A network's stored state at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The definition.
    pub network: Network,
    /// Every leased address.
    pub records: Vec<Record>,
    /// Per pool (same index as [`Network::pools`]): the last address handed out by next-fit.
    pub cursors: Vec<Option<IpAddr>>,
    /// The version this snapshot was read at; pass it to [`Store::commit`].
    pub version: u64,
    /// The store's [`Stamp::slice_writes`] at the same moment (0 for stores without slices).
    pub slice_writes: u64,
    /// Leases another tool left that underlay cannot take as its own (see [`ForeignLease`]);
    /// their addresses are never handed out.
    pub foreign: Vec<ForeignLease>,
}

/// What [`Store::view`] reads: what one allocation or release by `owner` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewQuery {
    /// Every lease of this owner.
    pub owner: Owner,
    /// The leases of these addresses (the ones a request names), if leased.
    pub ips: Vec<IpAddr>,
    /// Per pool, the leases of this many addresses from where next-fit looks first (after
    /// the cursor), and of as many from the start of the span after that one: room for one
    /// next-fit pick. 0: none (a release, a lookup).
    pub window: u32,
}

/// Part of a network's state, read by [`Store::view`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The definition, cursors and version as [`Store::load`] gives them, with only some
    /// leases in `records`: all of the query's owner's, and every one inside `known`.
    pub snapshot: Snapshot,
    /// Address ranges (inclusive) inside which `snapshot.records` holds every lease;
    /// outside them (but for the owner's addresses) nothing is known.
    pub known: Vec<(IpAddr, IpAddr)>,
}

/// What [`Store::update`] runs on a view: the changes to commit (none: nothing is written).
pub type Compute = Box<dyn FnOnce(View) -> Result<Vec<Change>> + Send>;

/// A lease another tool wrote that underlay cannot represent, e.g. a CNI host-local lease file
/// whose container id is over 256 bytes, or whose address lies outside every pool of the
/// network (a host-local range set over several subnets). It blocks only its own address:
/// kept as it is, never handed out nor released by underlay, listed by
/// [`crate::Ipam::foreign_leases`]. Release it with the tool that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForeignLease {
    /// The leased address.
    pub addr: IpAddr,
    /// Where it is kept (the lease file).
    pub location: String,
    /// Why underlay cannot take it as its own.
    pub reason: String,
}

/// How current a cached network is, read in one go by [`Store::stamp`]. A cache is current if
/// its version and slice writes match and, where the store counts them, it holds as many
/// leased addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// The network's version (moved by every [`Store::commit`]).
    pub version: u64,
    /// Moved by every [`Store::commit_in_slices`] (etcd: the revision of the last one); 0 for
    /// stores without node slices.
    pub slice_writes: u64,
    /// The number of leased addresses, from a store where leases can vanish without a commit
    /// (etcd's per-host leases expire); `None` where the version alone tells.
    pub leased: Option<u64>,
}

/// How [`Store::join_network`] found the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// It was not defined: this host defined it.
    Created,
    /// It was defined identically (by another host of a shared store, or by an earlier run of
    /// this one): this host joined it.
    Existing,
}

/// What [`Store::leave_network`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// This host was the last one using the network: its definition is deleted.
    Deleted,
    /// Other hosts still use the network (their names): only this host's membership is gone.
    Kept(Vec<String>),
}

/// One step of a commit. A commit applies all its changes, in order, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Record a lease; the address must be free.
    Claim(Record),
    /// Drop a lease; the address must be held by exactly this record's owner.
    Release(Record),
    /// Move the next-fit cursor of pool `pool` to `addr`.
    Cursor {
        /// Pool index.
        pool: usize,
        /// The last address handed out.
        addr: IpAddr,
    },
}

/// Storage of networks and leases, shared by every [`super::Ipam`] on it.
///
/// Object-safe and async so that a network store (etcd) can implement it. Implementations must
/// make [`Store::commit`] atomic and linearizable per network, and [`Store::create_network`]
/// reject a network overlapping another one of the store ([`Network::check_disjoint`]).
pub trait Store: Send + Sync + fmt::Debug {
    /// Every network defined in the store.
    fn networks(&self) -> StoreFuture<'_, Vec<Network>>;

    /// Defines a network: [`ErrorKind::AlreadyExists`] if the name is taken,
    /// [`ErrorKind::Overlap`] if a pool overlaps another network's.
    fn create_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, ()>;

    /// Removes a network: [`ErrorKind::NotFound`] if absent, [`ErrorKind::Busy`] while it
    /// holds leases.
    fn delete_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()>;

    /// The network's current state ([`ErrorKind::NotFound`] if it is not defined).
    fn load<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Snapshot>;

    /// Whether [`Store::view`] answers: an [`super::Ipam`] on this store then opens with
    /// [`Store::network`] alone and serves its first calls from views, loading every lease
    /// only when a call needs them (a short-lived process, such as a CNI plugin call, never
    /// does). Default: false.
    fn serves_views(&self) -> bool {
        false
    }

    /// The network's definition ([`ErrorKind::NotFound`] if it is not defined). Default: from
    /// [`Store::load`].
    fn network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Network> {
        Box::pin(async move { Ok(self.load(name).await?.network) })
    }

    /// Reads only what `query` asks for, at the network's current version (a commit at that
    /// version succeeds if nothing changed meanwhile); `None` when the store cannot (default),
    /// or not this time (the caller then loads everything).
    fn view<'a>(&'a self, name: &'a str, query: &'a ViewQuery) -> StoreFuture<'a, Option<View>> {
        let _ = (name, query);
        Box::pin(async { Ok(None) })
    }

    /// Reads `query`'s view, runs `compute` on it and commits the changes it returns, as one
    /// step where the store can (its lock held throughout); false when the store gives no
    /// view. [`ErrorKind::Conflict`] when the state moved between the view and the commit:
    /// run it again. Default: [`Store::view`], then [`Store::commit`] at the view's version.
    fn update<'a>(
        &'a self,
        name: &'a str,
        query: &'a ViewQuery,
        compute: Compute,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let Some(view) = self.view(name, query).await? else {
                return Ok(false);
            };
            let version = view.snapshot.version;
            let changes = compute(view)?;
            if !changes.is_empty() {
                self.commit(name, version, &changes).await?;
            }
            Ok(true)
        })
    }

    /// The network's current version (cheap; tells a cache whether to reload).
    fn version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, u64>;

    /// The changes committed after `version`, in order, with the version they lead to; `None`
    /// when the store cannot tell (history compacted away, or not kept): the caller then
    /// reloads with [`Store::load`]. Lets a cache catch up without re-reading everything.
    fn changes_since<'a>(
        &'a self,
        name: &'a str,
        version: u64,
    ) -> StoreFuture<'a, Option<(Vec<Change>, u64)>> {
        let _ = (name, version);
        Box::pin(async { Ok(None) })
    }

    /// False if the store does not keep [`Record::boot_id`] (e.g. host-local's layout).
    fn keeps_boot_ids(&self) -> bool {
        true
    }

    /// Applies `changes` if the version is still `expected`; returns the new version.
    /// [`ErrorKind::Conflict`] when the version moved or a change's precondition fails.
    fn commit<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        changes: &'a [Change],
    ) -> StoreFuture<'a, u64>;

    /// Whether several hosts share this store: [`Store::join_network`] then records this host
    /// as a member and [`Store::leave_network`] removes it (to undo a join that found the
    /// network [`Joined::Existing`], leave it only on a shared store). Default: false.
    fn is_shared(&self) -> bool {
        false
    }

    /// Defines `network` for this host, or joins it when the store holds the same definition
    /// (a store shared by hosts: another host defined it); a different definition under that
    /// name is [`ErrorKind::Conflict`]. A shared store records this host as a member, in the
    /// same step, so that the definition stays until the last member leaves. Default (one
    /// host): [`Store::create_network`], taking an identical stored definition as it is.
    fn join_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, Joined> {
        Box::pin(async move {
            match self.create_network(network).await {
                Ok(()) => Ok(Joined::Created),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let stored = self.load(network.name()).await?.network;
                    if stored == *network {
                        Ok(Joined::Existing)
                    } else {
                        Err(defined_differently(network.name(), &stored, network))
                    }
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Ends this host's use of network `name`: [`ErrorKind::Busy`] while this host holds
    /// leases in it; deletes the definition if no other host uses it ([`Left::Deleted`]),
    /// else drops only this host's membership ([`Left::Kept`]). Default (one host):
    /// [`Store::delete_network`].
    fn leave_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Left> {
        Box::pin(async move {
            self.delete_network(name).await?;
            Ok(Left::Deleted)
        })
    }

    /// The most address changes one commit should carry, for a store whose commits are
    /// bounded (etcd's `--max-txn-ops`): [`super::Ipam::gc`] and
    /// [`super::Ipam::release_stale`] release in batches of about this many. Default: `None`,
    /// no bound.
    fn max_releases_per_commit(&self) -> Option<usize> {
        None
    }

    /// The longest one [`super::Ipam`] call (its store requests together) may take before it
    /// fails with [`ErrorKind::Timeout`], for a store that retries while its servers are
    /// unavailable. Default: `None`, no bound.
    fn call_limit(&self) -> Option<std::time::Duration> {
        None
    }

    /// Holds off the other [`super::Ipam`]s of this store's network (in any process) from a
    /// batch's load to its commit, where the store can: a guard, released when dropped, or
    /// `None` (default). Under many concurrent writers each batch is then computed on current
    /// state instead of being refused at commit and recomputed. Commits stay checked by
    /// version: writers that do not take it (another program on the same files) are still
    /// caught there.
    fn lock_for_update<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Box<dyn std::any::Any + Send + Sync>>> {
        let _ = name;
        Box::pin(async { Ok(None) })
    }

    /// Whether [`Store::leave_network`] would refuse now for a reason other than this host's
    /// own leases (which a caller releases first): on a shared store, this host is the last
    /// member and other hosts hold leases ([`ErrorKind::Busy`] naming them). Changes nothing;
    /// lets a caller refuse before it tears anything down. Default: `Ok`.
    fn check_leave<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        let _ = name;
        Box::pin(async { Ok(()) })
    }

    /// The leases of network `name` claimed through this host (on a shared store, the other
    /// hosts' leases are theirs to release). Default (one host): every lease.
    fn host_records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<Record>> {
        Box::pin(async move { Ok(self.load(name).await?.records) })
    }

    /// Whether [`Store::host_records`] would list any lease (a store may tell without
    /// reading them all). Default: from [`Store::host_records`].
    fn has_host_records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(!self.host_records(name).await?.is_empty()) })
    }

    /// The network's [`Stamp`], read at one point in time. Default: the version alone.
    fn stamp<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Stamp> {
        Box::pin(async move {
            Ok(Stamp {
                version: self.version(name).await?,
                ..Stamp::default()
            })
        })
    }

    /// This host's node slices in network `name`: blocks of addresses reserved for it, where
    /// [`super::Ipam`] picks its addresses and commits them with
    /// [`Store::commit_in_slices`]. `None` (the default): the store does not slice, pick
    /// anywhere.
    fn host_slices<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<AllocRange>>> {
        let _ = name;
        Box::pin(async { Ok(None) })
    }

    /// Reserves one more node slice in pool `pool` (index into [`Network::pools`]) of network
    /// `name` for this host. [`ErrorKind::PoolExhausted`] when no block of the pool is free.
    fn take_slice<'a>(&'a self, name: &'a str, pool: usize) -> StoreFuture<'a, AllocRange> {
        let _ = pool;
        Box::pin(async move { Err(no_slices(name)) })
    }

    /// Applies `changes` (claims and releases only, every address inside one of this host's
    /// slices) without comparing or moving the version: each claimed address must be free,
    /// each released one held by its owner, each slice still this host's; else
    /// [`ErrorKind::Conflict`]. Returns the [`Stamp::slice_writes`] just before and just after
    /// the commit (a cache holding the first is current with the second), or `None` when the
    /// store cannot tell (the reply was lost, yet the changes are known to be applied).
    fn commit_in_slices<'a>(
        &'a self,
        name: &'a str,
        changes: &'a [Change],
    ) -> StoreFuture<'a, Option<(u64, u64)>> {
        let _ = changes;
        Box::pin(async move { Err(no_slices(name)) })
    }

    /// Adds `holder` to the holders of the shared reservation of `record.addr` for
    /// `record.owner`, claiming the address first if it is free, atomically with respect to
    /// every allocation and every other hold and unhold: the address stays leased while any
    /// holder keeps it. [`ErrorKind::AlreadyExists`] if another owner leases the address,
    /// [`ErrorKind::Conflict`] if the owner leases another one. Returns the reservation.
    /// Default: [`ErrorKind::InvalidArgument`] (the store keeps no shared reservations).
    fn hold<'a>(
        &'a self,
        name: &'a str,
        record: &'a Record,
        holder: &'a str,
    ) -> StoreFuture<'a, Hold> {
        let _ = (record, holder);
        Box::pin(async move { Err(no_holds(name)) })
    }

    /// Removes `holder` from the holders of `owner`'s shared reservation; the last holder's
    /// unhold releases the address in the same step. An owner leasing an address with no
    /// holder left (a plain lease, or a release cut short) is released. Default: as
    /// [`Store::hold`].
    fn unhold<'a>(
        &'a self,
        name: &'a str,
        owner: &'a Owner,
        holder: &'a str,
    ) -> StoreFuture<'a, Unheld> {
        let _ = (owner, holder);
        Box::pin(async move { Err(no_holds(name)) })
    }

    /// The shared reservations of network `name`, by address. Default: none.
    fn holds<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<Hold>> {
        let _ = name;
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn no_holds(name: &str) -> Error {
    Error::invalid(format!(
        "network `{name}`: this IPAM store keeps no shared reservations (the local, \
         host-local, memory and etcd stores do): reserve the address with allocate instead"
    ))
}

fn no_slices(name: &str) -> Error {
    Error::invalid(format!(
        "network `{name}`: this IPAM store has no node slices (only the etcd store with \
         EtcdConfig::slices has): allocate without them"
    ))
}

/// The error for joining a network defined otherwise.
pub(crate) fn defined_differently(name: &str, stored: &Network, given: &Network) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "network `{name}` is defined differently in the IPAM store (by another host?):\n\
             {stored}which differs from the one given:\n{given}use the same pools, or another \
             name"
        ),
    )
}

/// A network's state as the in-process stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) network: Network,
    pub(crate) records: BTreeMap<IpAddr, Record>,
    pub(crate) cursors: Vec<Option<IpAddr>>,
    pub(crate) version: u64,
}

enum Undo {
    Claimed(IpAddr),
    Released(Record),
    Cursor(usize, Option<IpAddr>),
}

impl Table {
    pub(crate) fn new(network: Network) -> Table {
        let n = network.pools().len();
        Table {
            network,
            records: BTreeMap::new(),
            cursors: vec![None; n],
            version: 0,
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            network: self.network.clone(),
            records: self.records.values().cloned().collect(),
            cursors: self.cursors.clone(),
            version: self.version,
            slice_writes: 0,
            foreign: Vec::new(),
        }
    }

    /// Applies every change or none; bumps the version.
    pub(crate) fn apply(&mut self, changes: &[Change]) -> Result<u64> {
        let mut undo = Vec::with_capacity(changes.len());
        for c in changes {
            if let Err(e) = self.apply_one(c, &mut undo) {
                for u in undo.into_iter().rev() {
                    match u {
                        Undo::Claimed(ip) => {
                            self.records.remove(&ip);
                        }
                        Undo::Released(r) => {
                            self.records.insert(r.addr, r);
                        }
                        Undo::Cursor(p, old) => self.cursors[p] = old,
                    }
                }
                return Err(e);
            }
        }
        self.version += 1;
        Ok(self.version)
    }

    fn apply_one(&mut self, c: &Change, undo: &mut Vec<Undo>) -> Result<()> {
        let net = self.network.name();
        match c {
            Change::Claim(r) => {
                if let Some(old) = self.records.get(&r.addr) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "address {} in network `{net}` is already held by {}: reload and retry",
                            r.addr, old.owner
                        ),
                    ));
                }
                self.records.insert(r.addr, r.clone());
                undo.push(Undo::Claimed(r.addr));
            }
            Change::Release(r) => match self.records.get(&r.addr) {
                Some(old) if old.owner == r.owner => {
                    let old = self.records.remove(&r.addr).expect("present");
                    undo.push(Undo::Released(old));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "address {} in network `{net}` is not held by {}: reload and retry",
                            r.addr, r.owner
                        ),
                    ))
                }
            },
            Change::Cursor { pool, addr } => {
                let Some(slot) = self.cursors.get_mut(*pool) else {
                    return Err(Error::invalid(format!(
                        "network `{net}` has no pool #{pool}: the change is malformed"
                    )));
                };
                undo.push(Undo::Cursor(*pool, *slot));
                *slot = Some(*addr);
            }
        }
        Ok(())
    }
}

/// The [`Store`] methods of a store whose work is blocking file I/O done by `self.inner` (an
/// `Arc` of a type with the same methods, synchronous): each runs on tokio's blocking threads.
macro_rules! blocking_store_methods {
    () => {
        fn networks(&self) -> StoreFuture<'_, Vec<Network>> {
            let inner = self.inner.clone();
            Box::pin(blocking(move || inner.networks()))
        }

        fn create_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, ()> {
            let inner = self.inner.clone();
            let network = network.clone();
            Box::pin(blocking(move || inner.create(&network)))
        }

        fn delete_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
            let inner = self.inner.clone();
            let name = name.to_string();
            Box::pin(blocking(move || inner.delete(&name)))
        }

        fn load<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Snapshot> {
            let inner = self.inner.clone();
            let name = name.to_string();
            Box::pin(blocking(move || inner.load(&name)))
        }

        fn network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Network> {
            let inner = self.inner.clone();
            let name = name.to_string();
            Box::pin(blocking(move || inner.read_network(&name)))
        }

        fn version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, u64> {
            let inner = self.inner.clone();
            let name = name.to_string();
            Box::pin(blocking(move || inner.version(&name)))
        }

        fn commit<'a>(
            &'a self,
            name: &'a str,
            expected: u64,
            changes: &'a [Change],
        ) -> StoreFuture<'a, u64> {
            let inner = self.inner.clone();
            let name = name.to_string();
            let changes = changes.to_vec();
            Box::pin(blocking(move || inner.commit(&name, expected, &changes)))
        }
    };
}
pub(crate) use blocking_store_methods;

/// Runs blocking file work off the async workers (inline when there is no tokio runtime).
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt.spawn_blocking(f).await.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("an IPAM store task did not finish ({e}); retry the operation"),
            )
        })?,
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::lease::Owner;

    fn rec(ip: &str, who: &str) -> Record {
        Record {
            addr: ip.parse().unwrap(),
            owner: Owner::new(who, "eth0").unwrap(),
            boot_id: None,
        }
    }

    #[test]
    fn a_commit_applies_all_or_nothing() {
        let net = Network::new("n", vec!["10.0.0.0/24".parse().unwrap()]).unwrap();
        let mut t = Table::new(net);
        t.apply(&[Change::Claim(rec("10.0.0.2", "a"))]).unwrap();
        let before = t.clone();
        let bad = [
            Change::Claim(rec("10.0.0.3", "b")),
            Change::Cursor {
                pool: 0,
                addr: "10.0.0.3".parse().unwrap(),
            },
            Change::Release(rec("10.0.0.2", "a")),
            Change::Release(rec("10.0.0.2", "a")), // no longer held: refused
        ];
        let e = t.apply(&bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(t, before);
        let e = t
            .apply(&[Change::Release(rec("10.0.0.2", "z"))])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        let e = t
            .apply(&[Change::Cursor {
                pool: 5,
                addr: "10.0.0.3".parse().unwrap(),
            }])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(t, before);
    }
}

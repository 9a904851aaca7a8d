//! Where leases live: the [`Store`] trait and its implementations.
//!
//! A store keeps, per network, its definition and one [`Record`] per leased address, plus the
//! next-fit cursor of each pool, under a version number. Reads return a [`Snapshot`]; writes are
//! compare-and-swap: [`Store::commit`] applies a batch of [`Change`]s only if the network's
//! version is still the one the caller read, else fails with [`ErrorKind::Conflict`] and the
//! caller reloads and recomputes. A file store does this under a file lock; an etcd store as one
//! transaction comparing a version key (or each address key's `create_revision == 0`).

#[cfg(feature = "etcd")]
pub(crate) mod etcd;
pub(crate) mod fsutil;
pub(crate) mod hostlocal;
pub(crate) mod local;
mod memory;
mod stateformat;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::error::{Error, ErrorKind, Result};

use super::lease::Record;
use super::network::Network;

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

//! The in-memory store: no persistence, for tests, benchmarks and short-lived processes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};

use super::holds::{self, Entries, Hold, HoldsInMemory, Unheld};
use super::{Change, Snapshot, Store, StoreFuture, Table};
use crate::ipam::lease::{Owner, Record};
use crate::ipam::network::Network;

/// Keeps everything in memory; shared by every [`crate::ipam::Ipam`] holding the same `Arc`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use underlay::ipam::{Ipam, MemoryStore, Network};
/// let store = Arc::new(MemoryStore::new());
/// Ipam::create(store.clone(), Network::new("a", vec!["10.0.0.0/24".parse()?])?).await?;
/// let err = Ipam::create(store, Network::new("b", vec!["10.0.0.0/16".parse()?])?).await;
/// assert_eq!(err.unwrap_err().kind(), underlay::ErrorKind::Overlap);
/// # Ok::<(), underlay::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    nets: Mutex<BTreeMap<String, Table>>,
    /// The shared reservations' holders, per network ([`Store::hold`]).
    holds: tokio::sync::Mutex<BTreeMap<String, Entries>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Table>) -> Result<T>) -> Result<T> {
        // A panic elsewhere cannot leave a table half-changed (apply is all-or-nothing).
        let mut nets = self.nets.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut nets)
    }
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!(
        "network `{name}` is not defined in the in-memory store: create it first"
    ))
}

impl Store for MemoryStore {
    fn networks(&self) -> StoreFuture<'_, Vec<Network>> {
        let r = self.with(|n| Ok(n.values().map(|t| t.network.clone()).collect()));
        Box::pin(async move { r })
    }

    fn create_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, ()> {
        let r = self.with(|nets| {
            if nets.contains_key(network.name()) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "network `{}` already exists in the store: open it or delete it first",
                        network.name()
                    ),
                ));
            }
            for t in nets.values() {
                network.check_disjoint(&t.network)?;
            }
            nets.insert(network.name().to_string(), Table::new(network.clone()));
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn delete_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        let r = self.with(|nets| {
            let t = nets.get(name).ok_or_else(|| not_found(name))?;
            if !t.records.is_empty() {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!(
                        "network `{name}` still holds {} leases: release them (or gc) first",
                        t.records.len()
                    ),
                ));
            }
            nets.remove(name);
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn load<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Snapshot> {
        let r = self.with(|n| Ok(n.get(name).ok_or_else(|| not_found(name))?.snapshot()));
        Box::pin(async move { r })
    }

    fn version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, u64> {
        let r = self.with(|n| Ok(n.get(name).ok_or_else(|| not_found(name))?.version));
        Box::pin(async move { r })
    }

    fn commit<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        changes: &'a [Change],
    ) -> StoreFuture<'a, u64> {
        let r = self.with(|n| {
            let t = n.get_mut(name).ok_or_else(|| not_found(name))?;
            if t.version != expected {
                return Err(conflict(name, t.version, expected));
            }
            t.apply(changes)
        });
        Box::pin(async move { r })
    }

    fn hold<'a>(
        &'a self,
        name: &'a str,
        record: &'a Record,
        holder: &'a str,
    ) -> StoreFuture<'a, Hold> {
        Box::pin(async move {
            let mut all = self.holds.lock().await;
            let mut keeper = HoldsInMemory(all.entry(name.to_string()).or_default());
            holds::hold_with(&mut keeper, self, name, record, holder).await
        })
    }

    fn unhold<'a>(
        &'a self,
        name: &'a str,
        owner: &'a Owner,
        holder: &'a str,
    ) -> StoreFuture<'a, Unheld> {
        Box::pin(async move {
            let mut all = self.holds.lock().await;
            let mut keeper = HoldsInMemory(all.entry(name.to_string()).or_default());
            holds::unhold_with(&mut keeper, self, name, owner, holder).await
        })
    }

    fn holds<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<Hold>> {
        Box::pin(async move {
            let mut all = self.holds.lock().await;
            let mut keeper = HoldsInMemory(all.entry(name.to_string()).or_default());
            holds::holds_with(&mut keeper, self, name).await
        })
    }
}

pub(crate) fn conflict(name: &str, now: u64, expected: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "network `{name}` changed since it was read (version {now}, expected {expected}): \
             reload and retry"
        ),
    )
}

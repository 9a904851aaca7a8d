//! IP address management: pools, allocation, and the stores that keep leases.
//!
//! A [`Network`] is a name and one or more [`Pool`]s (a subnet with its gateway, allocation
//! ranges and reserved addresses). An [`Ipam`] hands out one address per pool to each
//! [`Owner`] (container id + interface name), next-fit after the last one handed out, and
//! records it in a [`Store`] before returning: [`LocalStore`] (files, the default),
//! [`HostLocalStore`] (CNI host-local's layout) or [`MemoryStore`]. See docs/ipam.md.

mod intervals;
#[allow(clippy::module_inception)]
mod ipam;
mod lease;
mod network;
mod pool;
mod state;
mod store;

pub use ipam::Ipam;
pub use lease::{BootId, Lease, LeasedAddress, Owner, Quarantine, Record, Request};
pub(crate) use network::check_name;
pub use network::Network;
pub use pool::{AllocRange, Pool, PoolBuilder, Reserved};
#[cfg(feature = "etcd")]
pub use store::etcd::{EtcdConfig, EtcdStore};
pub(crate) use store::fsutil;
pub use store::{
    Change, Compute, ForeignLease, Hold, HostLocalStore, Joined, Left, LocalStore, MemoryStore,
    Snapshot, Stamp, Store, StoreFuture, Unheld, View, ViewQuery,
};

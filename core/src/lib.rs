//! # underlay
//!
//! Puts containers and VMs straight onto the physical network: 802.1Q VLAN sub-interfaces,
//! macvlan (every mode), macvtap, ipvlan, VXLAN, veth and bridges, created directly inside
//! network namespaces with their addresses and routes, plus an IPAM that hands out addresses
//! without conflicts.
//!
//! Everything kernel-facing goes through a [`Handle`]: one netlink socket bound to one network
//! namespace, cheap to clone, with requests pipelined from many tasks at once.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod error;
pub mod ipam;
pub(crate) mod sys;
mod types;

pub use error::{Error, ErrorKind, Result};
pub use types::{IfName, MacAddr, VlanId};

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! # underlay
//!
//! Puts containers and VMs straight onto the physical network: 802.1Q VLAN sub-interfaces,
//! macvlan (every mode), macvtap, ipvlan, VXLAN, veth and bridges, created directly inside
//! network namespaces with their addresses and routes, plus an IPAM that hands out addresses
//! without conflicts.
//!
//! Everything kernel-facing goes through a [`Handle`]: one netlink socket bound to one network
//! namespace, cheap to clone, with requests pipelined from many tasks at once. [`Netns`] makes
//! and opens namespaces the way iproute2 does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
//! # let Some((_sandbox, host)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
//! use underlay::{Handle, Macvlan, MacvlanMode, Route};
//! // A "container": a fresh namespace and a netlink socket inside it.
//! let (ns, inside) = Handle::create_anonymous_netns().await?;
//! // One request: created inside the namespace, named eth0, up.
//! Macvlan::create(&host, "eth0", "ens192", MacvlanMode::Bridge)
//!     .target(&inside)
//!     .up()
//!     .execute()
//!     .await?;
//! inside.add_address("eth0", "172.16.10.101/24".parse().unwrap()).await?;
//! inside.add_route(&Route::default_via("172.16.10.1".parse().unwrap())).await?;
//! # drop(ns);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod addr;
mod attach;
pub mod dhcp;
#[doc(hidden)]
pub mod doc_support;
mod error;
mod handle;
pub mod ipam;
pub mod link;
mod netns;
pub mod network;
mod probe;
mod route;
pub(crate) mod sys;
mod sysctl;
mod types;

pub use addr::{Address, AddressOptions};
pub use attach::{Attach, Attached};
pub use dhcp::{DhcpConfig, DhcpLease};
pub use error::{Error, ErrorKind, Result};
pub use handle::Handle;
pub use ipam::Ipam;
pub use link::bridge::{Bridge, BridgeInfo};
pub use link::dummy::Dummy;
pub use link::ipvlan::{Ipvlan, IpvlanFlag, IpvlanMode};
pub use link::macvlan::{Macvlan, MacvlanMode};
pub use link::veth::Veth;
pub use link::vlan::{Vlan, VlanFlags, VlanProtocol, VlanQosMaps};
pub use link::vxlan::{Vxlan, VxlanInfo, VXLAN_PORT};
pub use link::{Link, LinkBuilder, LinkKind, LinkRef, LinkSet};
pub use netns::{Netns, NETNS_RUN_DIR};
pub use probe::{ConflictDetection, WireConflict};
pub use route::{NextHop, Route, RouteScopeKind, TABLE_ALL, TABLE_MAIN};
pub use sysctl::SysctlIf;
pub use types::{check_mtu_value, IfName, MacAddr, VlanId, MTU_RANGE};

/// The `ipnet` crate, whose networks the API takes and returns (addresses, routes, pools):
/// use it from here to get the very version underlay was built with.
pub use ipnet;
pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

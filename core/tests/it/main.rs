//! Integration tests of the `underlay` crate: one binary, one module per feature.
//! Kernel tests run as root, each in throwaway namespaces it makes; see `common`.

mod churn;
mod common;
mod create_or_open;
mod dhcp;
mod dhcp_churn;
mod dhcp_dnsmasq;
mod dhcp_server;
mod ipam;
#[cfg(feature = "etcd")]
mod ipam_etcd;
mod links;
mod netns;
mod network;
mod network_routes;
mod observability;
mod parent_in_endpoint;
mod wire;

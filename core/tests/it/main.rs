//! Integration tests of the `underlay` crate: one binary, one module per feature.
//! Kernel tests run as root, each in throwaway namespaces it makes; see `common`.

mod common;
mod ipam;
mod links;
mod network;
mod observability;

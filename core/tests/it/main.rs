//! Integration tests of the `underlay` crate: one binary, one module per feature.

mod ipam;

//! IPAM integration tests.

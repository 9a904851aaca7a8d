//! IPAM allocation benchmark (placeholder).
fn main() {}

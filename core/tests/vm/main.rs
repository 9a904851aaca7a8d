//! Kernel tests that need 8021q and ipvlan (placeholder until the VM runner lands).
fn main() {}

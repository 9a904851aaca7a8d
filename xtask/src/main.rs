//! Automation for underlay: `cargo xtask <task>`.
fn main() {}

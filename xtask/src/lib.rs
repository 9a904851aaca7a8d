//! Automation shared by `cargo xtask` and the test binaries (the VM runner).
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod apt;
pub mod vm;

//! Automation shared by `cargo xtask` and the test binaries (the VM runner).

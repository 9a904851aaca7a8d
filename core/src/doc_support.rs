//! Support for the runnable documentation examples (hidden from the docs).
//!
//! Examples run for real: as root, each gets an anonymous namespace with a veth pair
//! `ens192`/`ens192-peer` (up) standing in for a NIC, and nothing outside it is touched.
//! Without root they return early.

use crate::{Handle, Netns, Result, Veth};

/// An anonymous namespace with `ens192` up inside, and a handle there; `None` when not root.
pub async fn sandbox() -> Result<Option<(Netns, Handle)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("doc example skipped: needs root");
        return Ok(None);
    }
    let (ns, h) = Handle::create_anonymous_netns().await?;
    Veth::create(&h, "ens192", "ens192-peer")
        .up()
        .peer_up()
        .execute()
        .await?;
    Ok(Some((ns, h)))
}

/// A second empty anonymous namespace (a "container") with its handle.
pub async fn container() -> Result<(Netns, Handle)> {
    Handle::create_anonymous_netns().await
}

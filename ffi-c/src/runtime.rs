//! The one tokio runtime every blocking call runs on, created on first use.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

static RUNTIME: OnceLock<std::io::Result<Runtime>> = OnceLock::new();

/// Runs `fut` to completion on the shared multi-thread runtime (safe from many C threads at
/// once: each blocks on its own future).
pub(crate) fn block_on<F: Future>(fut: F) -> underlay::Result<F::Output> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("underlay-rt")
            .enable_all()
            .build()
    });
    match rt {
        Ok(rt) => Ok(rt.block_on(fut)),
        Err(e) => Err(underlay::Error::new(
            underlay::ErrorKind::Io,
            format!("cannot start underlay's tokio runtime: {e}"),
        )),
    }
}

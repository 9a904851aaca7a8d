//! Python bindings for underlay: the private native module `underlay._underlay`.
//!
//! Thin by design (docs/ARCHITECTURE.md): every class wraps a core type, every method calls one
//! core function. Kernel calls run with the GIL released (`Python::detach`) on one shared,
//! lazily created tokio runtime; arguments are converted to owned Rust values before, Python
//! objects are built after. The asyncio API (`underlay.aio`, pure Python) runs these same calls
//! in the event loop's executor.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::prelude::*;

mod attach;
mod conv;
mod dhcp;
mod errors;
#[cfg(feature = "etcd")]
mod etcd;
mod handle;
mod ipam;
mod links;
mod netns;
mod network;

/// The one runtime of the module, shared by every call from every thread.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("underlay-py")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime of underlay")
    })
}

/// Runs `fut` to completion on the runtime with the GIL released; maps the error.
pub(crate) fn block<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = underlay::Result<T>> + Send,
    T: Send,
{
    py.detach(|| runtime().block_on(fut)).map_err(errors::to_py)
}

/// Runs a blocking (non-async) core call with the GIL released; maps the error.
pub(crate) fn unblock<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> underlay::Result<T> + Send,
    T: Send,
{
    py.detach(|| {
        let _guard = runtime().enter();
        f()
    })
    .map_err(errors::to_py)
}

/// The native module.
#[pymodule]
fn _underlay(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VERSION", underlay::VERSION)?;
    errors::register(m)?;
    netns::register(m)?;
    handle::register(m)?;
    links::register(m)?;
    attach::register(m)?;
    ipam::register(m)?;
    network::register(m)?;
    dhcp::register(m)?;
    #[cfg(feature = "etcd")]
    etcd::register(m)?;
    Ok(())
}

//! The error table: one exception class per `underlay::ErrorKind`, all under
//! `underlay.UnderlayError` (an `OSError`).

use pyo3::create_exception;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use underlay::ErrorKind;

create_exception!(
    underlay,
    UnderlayError,
    PyOSError,
    "Base of every underlay error: an OSError whose `errno` is the kernel's (or None), whose \
     message says what failed, on which object, and what to do; `kind` and `code` name the \
     underlay error kind."
);

macro_rules! kinds {
    ($($class:ident => $kind:ident, $doc:literal;)*) => {
        $(create_exception!(underlay, $class, UnderlayError, $doc);)*

        /// The class for `kind` (the base class for a kind this module does not know yet).
        fn class_for(py: Python<'_>, kind: ErrorKind) -> Bound<'_, PyType> {
            match kind {
                $(ErrorKind::$kind => py.get_type::<$class>(),)*
                _ => py.get_type::<UnderlayError>(),
            }
        }

        /// Adds the base class and one class per kind (with `kind` and `code`) to the module.
        pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = m.py();
            let base = py.get_type::<UnderlayError>();
            base.setattr("kind", py.None())?;
            base.setattr("code", py.None())?;
            m.add("UnderlayError", base)?;
            $(
                let cls = py.get_type::<$class>();
                cls.setattr("kind", ErrorKind::$kind.as_str())?;
                cls.setattr("code", ErrorKind::$kind as u32)?;
                m.add(stringify!($class), cls)?;
            )*
            // Filled per instance by `to_py`; empty on a class raised by hand.
            py.get_type::<MultipleErrors>()
                .setattr("errors", pyo3::types::PyList::empty(py))?;
            m.add_function(wrap_pyfunction!(error_classes, m)?)?;
            Ok(())
        }

        /// Every error kind of the core, in code order, as (code, kind name, exception class).
        #[pyfunction]
        fn error_classes(py: Python<'_>) -> Vec<(u32, &'static str, Bound<'_, PyType>)> {
            ErrorKind::ALL
                .iter()
                .map(|k| (*k as u32, k.as_str(), class_for(py, *k)))
                .collect()
        }
    };
}

kinds! {
    InvalidArgument => InvalidArgument, "A value given is malformed or out of range (name, VLAN id, MAC, prefix, ...).";
    NotFound => NotFound, "The named object (link, parent, namespace, lease, network) does not exist.";
    AlreadyExists => AlreadyExists, "The name, address or object is already taken.";
    PermissionDenied => PermissionDenied, "The caller lacks CAP_NET_ADMIN / CAP_SYS_ADMIN or a file permission.";
    KernelUnsupported => KernelUnsupported, "The running kernel lacks the link kind or feature (8021q, ipvlan, ...); the message says which module to load.";
    Conflict => Conflict, "The request is valid alone but conflicts with the current state.";
    Busy => Busy, "The object is busy (device in use, lock held).";
    PoolExhausted => PoolExhausted, "An address pool has no free address left.";
    Overlap => Overlap, "A pool or subnet overlaps another one.";
    Corrupt => Corrupt, "A stored file or record is unreadable or inconsistent (never silently reset).";
    IoError => Io, "An I/O error outside netlink (files, namespace mounts, threads).";
    KernelError => Kernel, "The kernel refused the request for another reason; errno says which.";
    ProtocolError => Protocol, "A reply could not be understood, or the connection broke: netlink, or an etcd endpoint that does not speak etcd's gRPC.";
    Timeout => Timeout, "A deadline passed before the operation finished.";
    MultipleErrors => Multiple, "Several independent steps failed (teardown keeps going and reports them all); `errors` holds one exception per failure.";
}

/// The Python exception for a core error: its kind's class, the core's message, its errno;
/// a `MultipleErrors` also carries `errors`, one exception per step that failed.
pub(crate) fn to_py(e: underlay::Error) -> PyErr {
    Python::attach(|py| match exception(py, &e) {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    })
}

fn exception<'py>(py: Python<'py>, e: &underlay::Error) -> PyResult<Bound<'py, PyAny>> {
    let exc = class_for(py, e.kind()).call1((e.to_string(),))?;
    if let Some(n) = e.errno() {
        exc.setattr("errno", n)?;
    }
    if e.kind() == ErrorKind::Multiple {
        let parts = e
            .errors()
            .iter()
            .map(|x| exception(py, x))
            .collect::<PyResult<Vec<_>>>()?;
        exc.setattr("errors", parts)?;
    }
    Ok(exc)
}

/// An `InvalidArgument` raised by the binding itself (a Python value of the wrong shape).
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    to_py(underlay::Error::invalid(msg))
}

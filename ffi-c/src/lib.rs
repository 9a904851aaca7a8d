//! C ABI for underlay: opaque handles, `underlay_<type>_<verb>` functions returning an
//! [`underlay_result`], a thread-local last error. The rules are in docs/c-api.md; the header
//! `include/underlay.h` is generated from this crate by cbindgen.
//!
//! Every exported function runs inside [`support::guard`] (a panic boundary that also records
//! the last error). Blocking calls run on one lazily created tokio runtime ([`runtime`]).
#![allow(non_camel_case_types)]
// The exported functions check their pointers (NULL) and document the rest (validity) in the
// header: they are `unsafe` in spirit, `extern "C"` in form, as in rustls-ffi.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]
// A builder handed back with its error is as large as the builder: it is moved, not copied.
#![allow(clippy::result_large_err)]

pub mod address;
pub mod dhcp;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod foreign_lease;
pub mod handle;
pub mod hold;
pub mod ipam;
pub mod link;
pub mod list;
pub mod netns;
pub mod network;
pub mod pool;
pub mod result;
pub mod route;
pub(crate) mod runtime;
pub(crate) mod support;
pub mod vlan_qos;

/// The library version, e.g. `"0.1.0"` (the same as `UNDERLAY_VERSION` in the header).
#[no_mangle]
pub extern "C" fn underlay_version() -> *const std::os::raw::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

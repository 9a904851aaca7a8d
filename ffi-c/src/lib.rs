//! C ABI for underlay. The surface arrives with the C ABI issue; for now it exports the version.

/// The library version as a NUL-terminated string, e.g. `"0.1.0"`.
#[no_mangle]
pub extern "C" fn underlay_version() -> *const std::os::raw::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

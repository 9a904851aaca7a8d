//! Lists: an opaque handle with `_count`, `_get` (a pointer borrowed from the list, valid while
//! the list lives) and `_free`.

use std::ffi::CString;
use std::os::raw::c_char;

use crate::support::{free, guard_value};

/// A list of strings (namespace names, reconcile findings); free with `underlay_string_list_free`.
pub struct underlay_string_list {
    pub(crate) items: Vec<CString>,
}

/// The number of strings in `list` (0 for NULL).
#[no_mangle]
pub extern "C" fn underlay_string_list_count(list: *const underlay_string_list) -> usize {
    guard_value(0, || {
        crate::support::r(list, "list").map_or(0, |l| l.items.len())
    })
}

/// String `index` of `list`, borrowed (valid while the list lives); NULL when `list` is NULL or
/// `index` is out of range.
#[no_mangle]
pub extern "C" fn underlay_string_list_get(
    list: *const underlay_string_list,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        crate::support::r(list, "list")
            .ok()
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// Frees `list` and its strings. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_string_list_free(list: *mut underlay_string_list) {
    guard_value((), || free(list))
}

impl underlay_string_list {
    pub(crate) fn new(items: impl IntoIterator<Item = String>) -> underlay_string_list {
        underlay_string_list {
            items: items.into_iter().map(crate::support::cstring).collect(),
        }
    }
}

/// Frees a string underlay returned through a `char **` output. NULL is a no-op.
#[no_mangle]
pub extern "C" fn underlay_string_free(s: *mut c_char) {
    crate::support::guard_value((), || {
        if !s.is_null() {
            // SAFETY: `s` came from `CString::into_raw` here and is freed once.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

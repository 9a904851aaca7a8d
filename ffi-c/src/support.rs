//! The plumbing every exported function shares: the panic boundary, pointer and string checks,
//! boxing and freeing of handles.

use std::ffi::{CStr, CString};
use std::future::Future;
use std::net::IpAddr;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ipnet::IpNet;

use crate::result::{set_last, underlay_result, Failure};

pub(crate) type R<T = ()> = Result<T, Failure>;

/// Runs `f` inside the panic boundary; a failure (or a panic) is recorded as the thread's last
/// error and its code returned.
pub(crate) fn guard(f: impl FnOnce() -> R) -> underlay_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => underlay_result::Ok,
        Ok(Err(fail)) => set_last(fail),
        Err(payload) => set_last(Failure::new(underlay_result::Panic, panic_text(&payload))),
    }
}

/// For functions that return a value rather than a result (getters): a panic gives `default`.
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            set_last(Failure::new(underlay_result::Panic, panic_text(&payload)));
            default
        }
    }
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("panic inside underlay (a bug: please report it): {what}")
}

pub(crate) fn null(what: &str) -> Failure {
    Failure::new(
        underlay_result::NullParameter,
        format!("parameter `{what}` is NULL"),
    )
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn s<'a>(p: *const c_char, what: &str) -> R<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller passes a NUL-terminated string (the header's contract).
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Failure::new(
            underlay_result::InvalidUtf8,
            format!(
                "parameter `{what}` is not valid UTF-8 (byte {} of `{}`)",
                e.valid_up_to(),
                underlay::Error::show_input(&String::from_utf8_lossy(c.to_bytes()))
            ),
        )
    })
}

/// A string argument that may be NULL (documented as such in the header).
pub(crate) fn opt_s<'a>(p: *const c_char, what: &str) -> R<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        s(p, what).map(Some)
    }
}

/// A borrowed handle argument.
pub(crate) fn r<'a, T>(p: *const T, what: &str) -> R<&'a T> {
    // SAFETY: a non-NULL handle points to a live object made by this library (the header's
    // contract: handles are only used between their creation and their `_free`).
    unsafe { p.as_ref() }.ok_or_else(|| null(what))
}

/// A mutably borrowed handle argument.
pub(crate) fn m<'a, T>(p: *mut T, what: &str) -> R<&'a mut T> {
    // SAFETY: as for `r`; the caller does not use the handle from two threads at once.
    unsafe { p.as_mut() }.ok_or_else(|| null(what))
}

/// An output pointer, checked up front and written only on success.
pub(crate) struct Out<T>(*mut T);

pub(crate) fn out<T>(p: *mut T, what: &str) -> R<Out<T>> {
    if p.is_null() {
        Err(null(what))
    } else {
        Ok(Out(p))
    }
}

impl<T> Out<T> {
    pub(crate) fn set(self, v: T) {
        // SAFETY: non-NULL (checked in `out`), points to writable storage (caller's contract).
        unsafe { self.0.write(v) }
    }
}

impl<T> Out<*mut T> {
    pub(crate) fn set_box(self, v: T) {
        self.set(Box::into_raw(Box::new(v)))
    }
}

/// Frees a handle made by `Box::into_raw`; NULL is a no-op.
pub(crate) fn free<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: `p` came from `Box::into_raw` in this library and is freed once (the
        // ownership rules in docs/c-api.md).
        drop(unsafe { Box::from_raw(p) });
    }
}

/// A NUL-terminated copy of `s` (an interior NUL, impossible in kernel names, becomes `\0`).
pub(crate) fn cstring(s: impl Into<String>) -> CString {
    let s: String = s.into();
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// The pointer of an optional C string field (NULL when absent).
pub(crate) fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(underlay_result::InvalidArgument, message)
}

pub(crate) fn ip(p: *const c_char, what: &str) -> R<IpAddr> {
    let t = s(p, what)?;
    t.parse().map_err(|_| {
        invalid(format!(
            "{what} `{}` is not an IP address",
            underlay::Error::show_input(t)
        ))
    })
}

pub(crate) fn net(p: *const c_char, what: &str) -> R<IpNet> {
    let t = s(p, what)?;
    t.parse().map_err(|_| {
        invalid(format!(
            "{what} `{}` is not an address with a prefix length (e.g. 172.16.10.101/24)",
            underlay::Error::show_input(t)
        ))
    })
}

pub(crate) fn mac(p: *const c_char, what: &str) -> R<underlay::MacAddr> {
    Ok(s(p, what)?.parse()?)
}

/// Blocks on `fut` on the shared runtime and turns its error into a failure.
pub(crate) fn block<T>(fut: impl Future<Output = underlay::Result<T>>) -> R<T> {
    Ok(crate::runtime::block_on(fut)??)
}

/// An owned C string handed to the caller, freed with `underlay_string_free`.
pub(crate) fn owned_string(s: impl Into<String>) -> *mut c_char {
    cstring(s).into_raw()
}

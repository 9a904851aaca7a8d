//! Result codes and the thread-local last error.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::c_char;

use underlay::ErrorKind;

/// The result of every fallible call. `UNDERLAY_RESULT_OK` is 0; codes 1..=15 are the core's
/// error kinds with the same numbers; 100 and up are the C ABI's own. Codes are never
/// renumbered; retired ones stay reserved.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum underlay_result {
    /// Success.
    Ok = 0,
    /// A value is malformed or out of range (name, VLAN id, MAC, prefix, mode, ...).
    InvalidArgument = 1,
    /// The named object (link, parent, namespace, lease, network) does not exist.
    NotFound = 2,
    /// The name, address or object is already taken.
    AlreadyExists = 3,
    /// Missing privilege (CAP_NET_ADMIN, CAP_SYS_ADMIN) or file permission.
    PermissionDenied = 4,
    /// The running kernel lacks the link kind or feature (8021q, ipvlan, vxlan, ...).
    KernelUnsupported = 5,
    /// Valid alone but conflicts with the current state.
    Conflict = 6,
    /// The object is busy (device in use, lock held).
    Busy = 7,
    /// An address pool has no free address left.
    PoolExhausted = 8,
    /// A pool or subnet overlaps another one.
    Overlap = 9,
    /// A stored file or record is unreadable or inconsistent.
    Corrupt = 10,
    /// An I/O error outside netlink (files, namespace mounts, threads).
    Io = 11,
    /// The kernel refused the request for another reason (see the errno in the message).
    Kernel = 12,
    /// A netlink reply could not be understood, or the connection broke.
    Protocol = 13,
    /// A deadline passed before the operation finished.
    Timeout = 14,
    /// Several independent steps failed (teardown keeps going and reports them all).
    Multiple = 15,
    /// A pointer argument that must not be NULL was NULL.
    NullParameter = 100,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 101,
    /// A Rust panic was caught at the boundary (a bug in underlay: please report it).
    Panic = 102,
    /// An error kind newer than this C ABI (never returned by a build of one version).
    Unknown = 103,
}

impl underlay_result {
    /// The result code of a core error kind: the same number.
    pub fn from_kind(kind: ErrorKind) -> underlay_result {
        use underlay_result as R;
        match kind {
            ErrorKind::InvalidArgument => R::InvalidArgument,
            ErrorKind::NotFound => R::NotFound,
            ErrorKind::AlreadyExists => R::AlreadyExists,
            ErrorKind::PermissionDenied => R::PermissionDenied,
            ErrorKind::KernelUnsupported => R::KernelUnsupported,
            ErrorKind::Conflict => R::Conflict,
            ErrorKind::Busy => R::Busy,
            ErrorKind::PoolExhausted => R::PoolExhausted,
            ErrorKind::Overlap => R::Overlap,
            ErrorKind::Corrupt => R::Corrupt,
            ErrorKind::Io => R::Io,
            ErrorKind::Kernel => R::Kernel,
            ErrorKind::Protocol => R::Protocol,
            ErrorKind::Timeout => R::Timeout,
            ErrorKind::Multiple => R::Multiple,
            _ => R::Unknown,
        }
    }

    fn name(self) -> &'static str {
        use underlay_result as R;
        match self {
            R::Ok => "UNDERLAY_RESULT_OK\0",
            R::InvalidArgument => "UNDERLAY_RESULT_INVALID_ARGUMENT\0",
            R::NotFound => "UNDERLAY_RESULT_NOT_FOUND\0",
            R::AlreadyExists => "UNDERLAY_RESULT_ALREADY_EXISTS\0",
            R::PermissionDenied => "UNDERLAY_RESULT_PERMISSION_DENIED\0",
            R::KernelUnsupported => "UNDERLAY_RESULT_KERNEL_UNSUPPORTED\0",
            R::Conflict => "UNDERLAY_RESULT_CONFLICT\0",
            R::Busy => "UNDERLAY_RESULT_BUSY\0",
            R::PoolExhausted => "UNDERLAY_RESULT_POOL_EXHAUSTED\0",
            R::Overlap => "UNDERLAY_RESULT_OVERLAP\0",
            R::Corrupt => "UNDERLAY_RESULT_CORRUPT\0",
            R::Io => "UNDERLAY_RESULT_IO\0",
            R::Kernel => "UNDERLAY_RESULT_KERNEL\0",
            R::Protocol => "UNDERLAY_RESULT_PROTOCOL\0",
            R::Timeout => "UNDERLAY_RESULT_TIMEOUT\0",
            R::Multiple => "UNDERLAY_RESULT_MULTIPLE\0",
            R::NullParameter => "UNDERLAY_RESULT_NULL_PARAMETER\0",
            R::InvalidUtf8 => "UNDERLAY_RESULT_INVALID_UTF8\0",
            R::Panic => "UNDERLAY_RESULT_PANIC\0",
            R::Unknown => "UNDERLAY_RESULT_UNKNOWN\0",
        }
    }

    fn all() -> &'static [underlay_result] {
        use underlay_result as R;
        &[
            R::Ok,
            R::InvalidArgument,
            R::NotFound,
            R::AlreadyExists,
            R::PermissionDenied,
            R::KernelUnsupported,
            R::Conflict,
            R::Busy,
            R::PoolExhausted,
            R::Overlap,
            R::Corrupt,
            R::Io,
            R::Kernel,
            R::Protocol,
            R::Timeout,
            R::Multiple,
            R::NullParameter,
            R::InvalidUtf8,
            R::Panic,
            R::Unknown,
        ]
    }
}

/// A failure inside the binding: a result code and the message for the last error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: underlay_result,
    pub(crate) message: String,
    pub(crate) errno: i32,
}

impl Failure {
    pub(crate) fn new(code: underlay_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            errno: 0,
        }
    }
}

impl From<underlay::Error> for Failure {
    fn from(e: underlay::Error) -> Failure {
        Failure {
            code: underlay_result::from_kind(e.kind()),
            message: e.to_string(),
            errno: e.errno().unwrap_or(0),
        }
    }
}

struct LastError {
    code: underlay_result,
    message: CString,
    errno: i32,
}

thread_local! {
    static LAST: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

pub(crate) fn set_last(f: Failure) -> underlay_result {
    let code = f.code;
    let text = format!("{}: {}", code_str(code), f.message).replace('\0', "\\0");
    let message = CString::new(text).unwrap_or_default();
    LAST.with(|l| {
        *l.borrow_mut() = Some(LastError {
            code,
            message,
            errno: f.errno,
        })
    });
    code
}

fn code_str(code: underlay_result) -> &'static str {
    let n = code.name();
    &n[..n.len() - 1]
}

/// The message of the calling thread's last failure ("UNDERLAY_RESULT_NOT_FOUND: link `x` ...":
/// what failed, on which object, the errno, what to do), or "" if no call on this thread has
/// failed yet. Valid until the thread's next failing underlay call; do not free it.
#[no_mangle]
pub extern "C" fn underlay_last_error_message() -> *const c_char {
    LAST.with(|l| match &*l.borrow() {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    })
}

/// The result code of the calling thread's last failure (`UNDERLAY_RESULT_OK` if none yet).
#[no_mangle]
pub extern "C" fn underlay_last_error_code() -> underlay_result {
    LAST.with(|l| l.borrow().as_ref().map_or(underlay_result::Ok, |e| e.code))
}

/// The errno (positive) the kernel or OS gave for the calling thread's last failure, or 0.
#[no_mangle]
pub extern "C" fn underlay_last_error_errno() -> i32 {
    LAST.with(|l| l.borrow().as_ref().map_or(0, |e| e.errno))
}

/// The enumerator's name of `result`, e.g. "UNDERLAY_RESULT_NOT_FOUND"; "UNDERLAY_RESULT_UNKNOWN"
/// for a value that is not a result code. Static storage; do not free.
#[no_mangle]
pub extern "C" fn underlay_result_name(result: u32) -> *const c_char {
    let r = underlay_result::all()
        .iter()
        .find(|r| **r as u32 == result)
        .copied()
        .unwrap_or(underlay_result::Unknown);
    r.name().as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_own_number() {
        for kind in ErrorKind::ALL {
            let r = underlay_result::from_kind(kind);
            assert_eq!(r as u32, kind as u32, "{kind}");
            assert_ne!(r, underlay_result::Unknown);
        }
        // One-to-one: no two kinds share a code, and no kind takes OK or an FFI-only code.
        let mut seen: Vec<u32> = ErrorKind::ALL
            .iter()
            .map(|k| underlay_result::from_kind(*k) as u32)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ErrorKind::ALL.len());
        assert!(seen.iter().all(|c| (1..100).contains(c)));
    }

    #[test]
    fn names_match_the_header_spelling() {
        for r in underlay_result::all() {
            let n = r.name();
            assert!(
                n.ends_with('\0') && n.starts_with("UNDERLAY_RESULT_"),
                "{n}"
            );
        }
        for kind in ErrorKind::ALL {
            let n = underlay_result::from_kind(kind).name();
            let want = format!(
                "UNDERLAY_RESULT_{}\0",
                kind.as_str().replace('-', "_").to_uppercase()
            );
            assert_eq!(n, want);
        }
    }

    #[test]
    fn last_error_keeps_code_message_errno() {
        let e = underlay::Error::not_found("link `x` not found").with_errno(19);
        let code = set_last(Failure::from(e));
        assert_eq!(code, underlay_result::NotFound);
        assert_eq!(underlay_last_error_code(), underlay_result::NotFound);
        assert_eq!(underlay_last_error_errno(), 19);
        // SAFETY: the pointer is a NUL-terminated string owned by this thread's slot.
        let msg = unsafe { std::ffi::CStr::from_ptr(underlay_last_error_message()) };
        let msg = msg.to_str().unwrap();
        assert!(
            msg.starts_with("UNDERLAY_RESULT_NOT_FOUND: link `x` not found"),
            "{msg}"
        );
    }
}

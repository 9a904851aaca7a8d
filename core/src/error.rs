//! The one error type of underlay.
//!
//! Every fallible call returns [`Error`]: a [`ErrorKind`] to match on, a message that names the
//! object and the cure, the errno when the kernel (or the OS) gave one, and the underlying source.
//! The C ABI maps each kind to one result code and the Python module to one exception class, so
//! kinds are only ever added, never renumbered or removed.

use std::fmt;

/// What went wrong, coarsely enough to match on. Stable: bindings map each kind to one code.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorKind {
    /// A value the caller gave is malformed or out of range (name, VLAN id, MAC, prefix, ...).
    InvalidArgument = 1,
    /// The named object (link, parent, namespace, lease, network) does not exist.
    NotFound = 2,
    /// The name, address or object is already taken.
    AlreadyExists = 3,
    /// The caller lacks the privilege (CAP_NET_ADMIN, CAP_SYS_ADMIN) or file permission.
    PermissionDenied = 4,
    /// The running kernel lacks the link kind or feature (8021q, ipvlan, vxlan, ...).
    KernelUnsupported = 5,
    /// The request is valid alone but conflicts with the current state (e.g. a second macvlan
    /// on a passthru parent, mixed ipvlan modes on one parent).
    Conflict = 6,
    /// The object is busy (device in use, lock held).
    Busy = 7,
    /// An address pool has no free address left.
    PoolExhausted = 8,
    /// A pool or subnet overlaps another one.
    Overlap = 9,
    /// A stored file or record is unreadable or inconsistent; it is never silently reset.
    Corrupt = 10,
    /// An I/O error outside netlink (files, namespace mounts, threads).
    Io = 11,
    /// The kernel refused the request for another reason; the errno says which.
    Kernel = 12,
    /// A peer's reply could not be understood, or the connection broke: netlink, or an etcd
    /// endpoint that answers but does not speak etcd's gRPC.
    Protocol = 13,
    /// A deadline passed before the operation finished.
    Timeout = 14,
    /// Several independent steps failed (teardown keeps going and reports them all).
    Multiple = 15,
}

impl ErrorKind {
    /// A short stable name, e.g. `"not-found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::KernelUnsupported => "kernel-unsupported",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Busy => "busy",
            ErrorKind::PoolExhausted => "pool-exhausted",
            ErrorKind::Overlap => "overlap",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "io",
            ErrorKind::Kernel => "kernel",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Multiple => "multiple",
        }
    }

    /// Every kind, in code order (for binding tables and their tests).
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::PermissionDenied,
        ErrorKind::KernelUnsupported,
        ErrorKind::Conflict,
        ErrorKind::Busy,
        ErrorKind::PoolExhausted,
        ErrorKind::Overlap,
        ErrorKind::Corrupt,
        ErrorKind::Io,
        ErrorKind::Kernel,
        ErrorKind::Protocol,
        ErrorKind::Timeout,
        ErrorKind::Multiple,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every underlay call.
///
/// `Display` gives the full message: what failed, on which object, and what to do.
pub struct Error {
    kind: ErrorKind,
    message: String,
    errno: Option<i32>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// Further errors, for [`ErrorKind::Multiple`].
    others: Vec<Error>,
}

/// The longest message an error keeps; a longer one (an echoed input of a megabyte) loses its
/// middle, so the start (what failed) and the end (what to do) stay.
const MAX_MESSAGE: usize = 2048;
/// The same for [`ErrorKind::Multiple`], whose message joins its errors'.
const MAX_MULTIPLE_MESSAGE: usize = 16 * 1024;

/// `message` cut to at most about `max` bytes, keeping its start and its end.
fn bounded(message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let floor = |mut i: usize| {
        while !message.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head = floor(max / 2);
    let tail = floor(message.len() - max / 4);
    format!(
        "{} [... {} bytes left out ...] {}",
        &message[..head],
        tail - head,
        &message[tail..]
    )
}

/// A value the caller gave, as an error message shows it: escaped, and cut after 64
/// characters with its length said, so a huge input does not make a huge message.
pub(crate) fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        None => value.escape_debug().to_string(),
        Some((end, _)) => format!("{}... ({} bytes)", value[..end].escape_debug(), value.len()),
    }
}

/// `Result` with underlay's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message` (which should name the object and the cure).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: bounded(message.into(), MAX_MESSAGE),
            errno: None,
            source: None,
            others: Vec::new(),
        }
    }

    /// A value a caller gave, as an error message should show it: escaped, and cut after 64
    /// characters with its length said, so a huge input never makes a huge message. (Messages
    /// are bounded anyway, cut in the middle; this keeps them readable.)
    ///
    /// ```
    /// let shown = underlay::Error::show_input(&"x".repeat(1 << 20));
    /// assert!(shown.len() < 100 && shown.ends_with("(1048576 bytes)"));
    /// ```
    pub fn show_input(value: &str) -> String {
        shown(value)
    }

    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// An I/O error with its errno kept, e.g. from opening a namespace file.
    pub fn io(message: impl Into<String>, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Io,
        };
        let errno = err.raw_os_error();
        Error {
            kind,
            message: bounded(message.into(), MAX_MESSAGE),
            errno,
            source: Some(Box::new(err)),
            others: vec![],
        }
    }

    /// Several errors at once (teardown that kept going). One error is returned as itself.
    pub fn multiple(context: impl Into<String>, mut errors: Vec<Error>) -> Self {
        if errors.len() == 1 {
            return errors.pop().expect("one element");
        }
        let context = context.into();
        let joined: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let errno = errors.iter().find_map(|e| e.errno);
        Error {
            kind: ErrorKind::Multiple,
            message: bounded(
                format!("{context}: {} errors: {}", errors.len(), joined.join("; ")),
                MAX_MULTIPLE_MESSAGE,
            ),
            errno,
            source: None,
            others: errors,
        }
    }

    /// Attach the errno the kernel or OS returned (positive, e.g. `libc::EEXIST`).
    pub fn with_errno(mut self, errno: i32) -> Self {
        self.errno = Some(errno);
        self
    }

    /// Attach the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Prefix the message with more context, e.g. the step of a multi-step operation.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        let max = if self.kind == ErrorKind::Multiple {
            MAX_MULTIPLE_MESSAGE
        } else {
            MAX_MESSAGE
        };
        self.message = bounded(format!("{context}: {}", self.message), max);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The errno (positive) the kernel or OS gave, if any.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For [`ErrorKind::Multiple`]: each error that happened.
    pub fn errors(&self) -> &[Error] {
        &self.others
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(errno) = self.errno {
            if self.kind != ErrorKind::Multiple {
                write!(f, " (errno {errno}: {})", errno_text(errno))?;
            }
        }
        Ok(())
    }
}

/// The C library's text for `errno` ("No such device"), without the "(os error 19)" that
/// `std::io::Error` adds: a message says the errno once.
pub(crate) fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let suffix = format!(" (os error {errno})");
    match text.strip_suffix(&suffix) {
        Some(t) => t.to_string(),
        None => text,
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(errno) = self.errno {
            d.field("errno", &errno);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        if !self.others.is_empty() {
            d.field("errors", &self.others);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_dense() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as u32, i as u32 + 1, "{kind} moved");
        }
    }

    #[test]
    fn display_carries_errno() {
        let e = Error::new(ErrorKind::AlreadyExists, "link `eth0` exists").with_errno(libc::EEXIST);
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(e.to_string(), "link `eth0` exists (errno 17: File exists)");
    }

    #[test]
    fn huge_inputs_make_bounded_messages() {
        let huge = "é".repeat(1 << 19); // 1 MiB of two-byte characters
        let e = Error::invalid(format!("name `{huge}` is too long: use at most 15 bytes"));
        let text = e.to_string();
        assert!(text.len() < MAX_MESSAGE + 100, "{}", text.len());
        assert!(text.starts_with("name `éé"), "{text}");
        assert!(text.ends_with("use at most 15 bytes"), "{text}");
        assert!(text.contains("bytes left out"), "{text}");
        let e = e.context(&huge);
        assert!(e.to_string().len() < MAX_MESSAGE + 100);
        assert_eq!(bounded("short".into(), MAX_MESSAGE), "short");
        let s = shown(&huge);
        assert!(s.len() < 200 && s.ends_with("(1048576 bytes)"), "{s}");
        assert_eq!(shown("a\tb"), "a\\tb");
    }

    #[test]
    fn multiple_keeps_each() {
        let e = Error::multiple(
            "teardown of `x`",
            vec![Error::not_found("a"), Error::invalid("b")],
        );
        assert_eq!(e.kind(), ErrorKind::Multiple);
        assert_eq!(e.errors().len(), 2);
        assert!(e.to_string().contains("2 errors: a; b"), "{e}");
        let single = Error::multiple("x", vec![Error::not_found("only")]);
        assert_eq!(single.kind(), ErrorKind::NotFound);
    }
}

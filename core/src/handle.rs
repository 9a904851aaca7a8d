//! [`Handle`]: one rtnetlink connection bound to one network namespace.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use netlink_packet_core::{
    Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_proto::sys::{protocols::NETLINK_ROUTE, SocketAddr, TokioSocket};
use netlink_proto::{ConnectionHandle, NetlinkCodec};
use netlink_sys::Socket;

use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;

const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// How often a dump the kernel flagged as interrupted (NLM_F_DUMP_INTR) is retried.
const DUMP_RETRIES: usize = 16;
/// The largest netlink attribute: its length field is 16 bits (header included).
pub(crate) const MAX_ATTRIBUTE: usize = u16::MAX as usize;
/// Where the socket's send buffer cannot be read: the kernel's usual default
/// (`net.core.wmem_default`, 212992) less the 32 bytes it keeps.
const DEFAULT_MAX_REQUEST: usize = 212_992 - 32;

/// A netlink (rtnetlink) connection bound to one network namespace.
///
/// Cheap to clone (an `Arc`); every clone shares one socket. Requests from many tasks are
/// pipelined on it: each is sent at once with its own sequence number, and replies are routed
/// back to the task that asked. Must be created inside a tokio runtime; the connection task
/// stops when the last clone drops.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # if unsafe { libc::geteuid() } != 0 { return Ok(()) }
/// use underlay::{Handle, Netns};
/// let ns = Netns::create_anonymous()?;
/// let inside = Handle::for_netns(&ns).await?;      // a socket opened inside `ns`
/// let links = inside.links().await?;
/// assert_eq!(links.len(), 1);                      // just `lo`
/// assert_eq!(links[0].name, "lo");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionHandle<RouteNetlinkMessage>,
    netns: Netns,
    label: String,
    /// The largest request the kernel takes on this socket (its send buffer less 32 bytes):
    /// a larger one fails to send, and a failed send closes the connection for every clone.
    max_request: usize,
    task: tokio::task::JoinHandle<()>,
    /// Taken by each dump: the kernel runs one dump at a time per socket and refuses another
    /// started meanwhile (`EBUSY`), so dumps on one handle (and its clones) take turns.
    dumps: tokio::sync::Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("netns", &self.inner.label)
            .finish()
    }
}

impl Handle {
    /// A connection in the calling thread's namespace. Must be called inside a tokio runtime.
    pub fn new() -> Result<Handle> {
        let socket = open_socket()?;
        let netns = Netns::current()?;
        Handle::from_socket(socket, netns, "current netns".to_string())
    }

    /// A connection inside `netns`: the socket is opened on one of the library's namespace
    /// threads (kept across calls, no thread started per call), then driven from the runtime
    /// like any other.
    pub async fn for_netns(netns: &Netns) -> Result<Handle> {
        let socket = netns.run_pooled(open_socket).await??;
        Handle::from_socket(socket, netns.clone(), netns.to_string())
    }

    /// Creates a named namespace (as [`Netns::create`]) and a handle inside it, opening the
    /// socket on the thread that made the namespace: the cheapest way to a fresh namespace.
    pub async fn create_netns(name: &str) -> Result<(Netns, Handle)> {
        let (ns, socket) = Netns::create_with_async(Some(name), open_socket).await?;
        let label = ns.to_string();
        match Handle::from_socket(socket, ns.clone(), label) {
            Ok(h) => Ok((ns, h)),
            Err(e) => {
                let _ = Netns::delete(name);
                Err(e)
            }
        }
    }

    /// Like [`Handle::create_netns`] with an anonymous namespace (see
    /// [`Netns::create_anonymous`]).
    pub async fn create_anonymous_netns() -> Result<(Netns, Handle)> {
        let (ns, socket) = Netns::create_with_async(None, open_socket).await?;
        let label = ns.to_string();
        Ok((ns.clone(), Handle::from_socket(socket, ns, label)?))
    }

    /// Like [`Handle::for_netns`], for callers outside async code (still needs a runtime to
    /// drive the connection: call it from within `Runtime::enter`).
    pub fn for_netns_blocking(netns: &Netns) -> Result<Handle> {
        let socket = netns.run_pooled_blocking(open_socket)??;
        Handle::from_socket(socket, netns.clone(), netns.to_string())
    }

    fn from_socket(socket: Socket, netns: Netns, label: String) -> Result<Handle> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "underlay::Handle needs a tokio runtime: create it inside one",
            )
        })?;
        let _guard = runtime.enter();
        let max_request = send_buffer(&socket)
            .map_or(DEFAULT_MAX_REQUEST, |b| b.saturating_sub(32))
            .max(4096);
        // SAFETY: the fd comes from a socket we own and hand over whole.
        let tokio_socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (conn, handle, _unsolicited) = netlink_proto::from_socket_with_codec::<
            RouteNetlinkMessage,
            TokioSocket,
            NetlinkCodec,
        >(tokio_socket);
        let task = runtime.spawn(conn);
        Ok(Handle {
            inner: Arc::new(Inner {
                conn: handle,
                netns,
                label,
                max_request,
                task,
                dumps: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The namespace this handle works in.
    pub fn netns(&self) -> &Netns {
        &self.inner.netns
    }

    /// Label of the namespace for messages (`netns \`c1\``, `current netns`).
    pub fn netns_label(&self) -> &str {
        &self.inner.label
    }

    /// Sends one request that expects an ACK (or the replies of `flags`), and returns the
    /// inner replies. `what` and `object` describe the request in traces and errors.
    pub(crate) async fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &'static str,
        object: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let start = Instant::now();
        let result = self
            .request_once(msg, flags | NLM_F_REQUEST | NLM_F_ACK, what, object)
            .await;
        trace_request(what, object, &self.inner.label, start, &result);
        result.map(|(msgs, _)| msgs)
    }

    /// A dump request, retried when the kernel flags it interrupted (NLM_F_DUMP_INTR); one at
    /// a time on this socket.
    pub(crate) async fn dump(
        &self,
        msg: RouteNetlinkMessage,
        what: &'static str,
        object: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let _turn = self.inner.dumps.lock().await;
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            let result = self
                .request_once(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, what, object)
                .await;
            match result {
                Ok((_, true)) if attempt < DUMP_RETRIES => {
                    attempt += 1;
                    // Back off a little (up to ~8 ms): a burst of changes usually ends soon.
                    tokio::time::sleep(std::time::Duration::from_micros(
                        500 * attempt.min(16) as u64,
                    ))
                    .await;
                    tracing::debug!(what, object, netns = %self.inner.label, attempt, "dump interrupted, retrying");
                    continue;
                }
                Ok((_, true)) => {
                    let r = Err(Error::new(
                        ErrorKind::Busy,
                        format!("{what} {object} in {}: the dump was interrupted {DUMP_RETRIES} times by concurrent changes; retry later", self.inner.label),
                    ));
                    trace_request(what, object, &self.inner.label, start, &r);
                    return r;
                }
                other => {
                    trace_request(what, object, &self.inner.label, start, &other);
                    return other.map(|(m, _)| m);
                }
            }
        }
    }

    async fn request_once(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &'static str,
        object: &str,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        check_size(
            &msg,
            self.inner.max_request,
            what,
            object,
            &self.inner.label,
        )?;
        let subject = Subject::of(&msg);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut replies = self
            .inner
            .conn
            .request(nl, SocketAddr::new(0, 0))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Protocol,
                    format!("{what} {object}: netlink connection closed: {e}"),
                )
            })?;
        let mut out = Vec::new();
        let mut interrupted = false;
        while let Some(reply) = replies.next().await {
            if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                interrupted = true;
            }
            let reply_flags = reply.header.flags;
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(err) => {
                    if let Some(code) = err.code {
                        let errno = -code.get();
                        let extack = parse_extack(reply_flags, &err.header);
                        return Err(kernel_error(
                            subject,
                            what,
                            object,
                            &self.inner.label,
                            errno,
                            extack,
                        ));
                    }
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("{what} {object}: netlink receive buffer overrun; retry"),
                    )
                    .with_errno(libc::ENOBUFS))
                }
                _ => {}
            }
        }
        Ok((out, interrupted))
    }
}

/// Refuses a request netlink cannot carry, before it reaches the connection: an attribute
/// longer than a 16-bit length field holds (encoding it would panic inside the connection's
/// task and close the connection for every clone), or a message larger than the socket's send
/// buffer (the send fails, which closes the connection too). Nested attributes lie inside a
/// top-level one, so checking those covers them.
fn check_size(
    msg: &RouteNetlinkMessage,
    max_request: usize,
    what: &str,
    object: &str,
    netns: &str,
) -> Result<()> {
    fn largest<A: Nla>(attrs: &[A]) -> Option<(u16, usize)> {
        attrs
            .iter()
            .map(|a| (a.kind(), a.value_len() + 4))
            .max_by_key(|(_, len)| *len)
    }
    use RouteNetlinkMessage as M;
    let attr = match msg {
        M::NewLink(m) | M::DelLink(m) | M::GetLink(m) | M::SetLink(m) => largest(&m.attributes),
        M::NewAddress(m) | M::DelAddress(m) | M::GetAddress(m) => largest(&m.attributes),
        M::NewRoute(m) | M::DelRoute(m) | M::GetRoute(m) => largest(&m.attributes),
        // underlay sends no other message; the total size below still applies.
        _ => None,
    };
    let too_big = |detail: String| {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} {object} in {netns}: the request is too large for netlink: {detail}; make it smaller"),
        )
        .with_errno(libc::EMSGSIZE))
    };
    if let Some((kind, len)) = attr.filter(|(_, len)| *len > MAX_ATTRIBUTE) {
        return too_big(format!(
            "its attribute {kind} would be {len} bytes, and an attribute holds at most {MAX_ATTRIBUTE}"
        ));
    }
    let total = 16 + msg.buffer_len();
    if total > max_request {
        return too_big(format!(
            "it would be {total} bytes, and this socket sends at most {max_request}"
        ));
    }
    Ok(())
}

/// The socket's send buffer (`SO_SNDBUF`, as the kernel accounts it).
fn send_buffer(socket: &Socket) -> Option<usize> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, and a buffer of the size given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| usize::try_from(value).ok()).flatten()
}

fn trace_request<T>(what: &str, object: &str, ns: &str, start: Instant, result: &Result<T>) {
    let elapsed_us = start.elapsed().as_micros() as u64;
    match result {
        Ok(_) => tracing::debug!(what, object, netns = ns, elapsed_us, "netlink request"),
        Err(e) => tracing::debug!(
            what,
            object,
            netns = ns,
            elapsed_us,
            errno = e.errno().unwrap_or(0),
            error = %e,
            "netlink request failed"
        ),
    }
}

fn open_socket() -> Result<Socket> {
    let mut socket =
        Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("cannot open a netlink socket", e))?;
    socket
        .bind_auto()
        .map_err(|e| Error::io("cannot bind a netlink socket", e))?;
    // Best effort: richer errors and strict dump filtering where the kernel has them.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    let _ = socket.set_netlink_get_strict_chk(true);
    let _ = socket.set_rx_buf_sz(4 * 1024 * 1024);
    socket
        .set_non_blocking(true)
        .map_err(|e| Error::io("cannot make a netlink socket non-blocking", e))?;
    Ok(socket)
}

/// The kernel's extended ack message (NLMSGERR_ATTR_MSG), if any.
fn parse_extack(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let mut offset = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes(payload[0..4].try_into().ok()?) as usize;
        (len + 3) & !3
    };
    while offset + 4 <= payload.len() {
        let len = u16::from_ne_bytes(payload[offset..offset + 2].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(payload[offset + 2..offset + 4].try_into().ok()?) & 0x3fff;
        if len < 4 || offset + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let s = &payload[offset + 4..offset + len];
            let s = s.split(|b| *b == 0).next().unwrap_or(s);
            return Some(String::from_utf8_lossy(s).into_owned());
        }
        offset += (len + 3) & !3;
    }
    None
}

/// What a request is about: some errnos mean different things for different objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// A link: create, change, move, delete, get.
    Link,
    /// Anything else (addresses, routes).
    Other,
}

impl Subject {
    fn of(msg: &RouteNetlinkMessage) -> Subject {
        use RouteNetlinkMessage as M;
        match msg {
            M::NewLink(_) | M::SetLink(_) | M::DelLink(_) | M::GetLink(_) => Subject::Link,
            _ => Subject::Other,
        }
    }
}

/// Maps a kernel errno to an error naming the request, the object, the namespace and the cure.
/// Call sites refine it for errnos whose meaning depends on the request.
pub(crate) fn kernel_error(
    subject: Subject,
    what: &str,
    object: &str,
    ns: &str,
    errno: i32,
    extack: Option<String>,
) -> Error {
    // The kernel's own words when it gave some; the errno's text comes once, at the end
    // (`Error`'s display adds "(errno N: text)").
    let why = extack
        .filter(|s| !s.is_empty())
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    let (kind, cure) = match errno {
        libc::EPERM | libc::EACCES => (
            ErrorKind::PermissionDenied,
            ": needs CAP_NET_ADMIN in that namespace (run as root or grant the capability)",
        ),
        libc::EEXIST => (
            ErrorKind::AlreadyExists,
            ": pick another name, or delete the existing one",
        ),
        // On a link, the kernel's "cannot assign requested address" is about an address given
        // for it: a MAC no interface can have, or (when a VXLAN comes up) a local IP this host
        // lacks. Elsewhere it means an address that is not there.
        libc::EADDRNOTAVAIL if subject == Subject::Link => (
            ErrorKind::InvalidArgument,
            ": an address given for the link is unusable (a MAC must be unicast and non-zero; \
             a VXLAN's local IP must be on this host)",
        ),
        libc::EADDRNOTAVAIL => (
            ErrorKind::NotFound,
            ": the address is not there (`ip addr`)",
        ),
        libc::ENODEV | libc::ENOENT | libc::ESRCH => {
            (ErrorKind::NotFound, ": check the name or index (`ip link`)")
        }
        libc::EOPNOTSUPP => (
            ErrorKind::KernelUnsupported,
            ": the running kernel does not support this",
        ),
        libc::EBUSY => (
            ErrorKind::Busy,
            ": the device is in use; retry or release it first",
        ),
        libc::EINVAL | libc::ERANGE | libc::ENETUNREACH | libc::EAFNOSUPPORT => {
            (ErrorKind::InvalidArgument, "")
        }
        _ => (ErrorKind::Kernel, ""),
    };
    Error::new(kind, format!("{what} {object} in {ns} failed{why}{cure}")).with_errno(errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};

    /// Handles on an existing namespace open their socket on the library's namespace threads:
    /// no OS thread is started per handle.
    #[test]
    fn handles_on_a_namespace_start_no_thread_each() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED handles_on_a_namespace_start_no_thread_each: needs root (setns)");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ns = Netns::current().unwrap();
            let started = || crate::netns::tests::ONE_SHOT_THREADS.with(|c| c.get());
            let before = started();
            for _ in 0..20 {
                let h = Handle::for_netns(&ns).await.unwrap();
                h.links().await.unwrap();
            }
            let rt_handle = tokio::runtime::Handle::current();
            let _enter = rt_handle.enter();
            for _ in 0..5 {
                Handle::for_netns_blocking(&ns).unwrap();
            }
            assert_eq!(started() - before, 0, "threads started for 25 handles");
        });
    }

    #[test]
    fn oversized_requests_are_refused_naming_the_limit() {
        let with = |attrs: Vec<LinkAttribute>| {
            let mut m = LinkMessage::default();
            m.attributes = attrs;
            RouteNetlinkMessage::NewLink(m)
        };
        let check =
            |m: &RouteNetlinkMessage| check_size(m, 200_000, "create", "link `x`", "netns `t`");
        check(&with(vec![LinkAttribute::IfAlias("a".repeat(65_531 - 1))])).unwrap();
        let e = check(&with(vec![LinkAttribute::IfAlias("a".repeat(65_531))])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.errno(), Some(libc::EMSGSIZE));
        assert!(
            e.to_string().contains("65535") && e.to_string().contains("link `x`"),
            "{e}"
        );
        let many = (0..4)
            .map(|_| LinkAttribute::IfAlias("a".repeat(60_000)))
            .collect();
        let e = check(&with(many)).unwrap_err();
        assert!(e.to_string().contains("at most 200000"), "{e}");
    }

    #[test]
    fn extack_capped() {
        let mut p = vec![0u8; 16];
        let msg = b"Unknown device type\0";
        let len = (4 + msg.len()) as u16;
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(msg);
        assert_eq!(
            parse_extack(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(parse_extack(NLM_F_CAPPED, &p), None);
        assert_eq!(parse_extack(NLM_F_ACK_TLVS | NLM_F_CAPPED, &p[..18]), None);
    }

    #[test]
    fn errno_mapping() {
        let e = kernel_error(
            Subject::Link,
            "create link",
            "`x`",
            "netns `a`",
            libc::EPERM,
            None,
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let e = kernel_error(
            Subject::Link,
            "create link",
            "`x`",
            "netns `a`",
            libc::EEXIST,
            Some("File exists".into()),
        );
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(
            kernel_error(Subject::Other, "a", "b", "c", libc::EOPNOTSUPP, None).kind(),
            ErrorKind::KernelUnsupported
        );
        assert_eq!(
            kernel_error(Subject::Other, "a", "b", "c", 9999, None).kind(),
            ErrorKind::Kernel
        );
        // EADDRNOTAVAIL by context: an unusable address on a link, a missing one elsewhere.
        let e = kernel_error(
            Subject::Link,
            "change",
            "link `x`",
            "c",
            libc::EADDRNOTAVAIL,
            None,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("unicast"), "{e}");
        let e = kernel_error(
            Subject::Other,
            "delete address",
            "10.0.0.1/24",
            "c",
            libc::EADDRNOTAVAIL,
            None,
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

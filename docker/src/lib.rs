//! underlay's Docker plugin: a libnetwork remote network driver (`docker network create -d
//! underlay`) and IPAM driver (`--ipam-driver underlay`), served as JSON over HTTP/1.1 on a
//! Unix socket. A translator: each call's JSON is read into a serde type, turned into a call of
//! the `underlay` library, and its result (or error, in the key dockerd reads) written back.
//! See docs/docker.md.
//!
//! Who owns what: the IPAM driver owns the addresses. Each Docker pool is an IPAM network of
//! its own in the pool store (`STATE/docker-pools`, or etcd, shared by hosts), named after the
//! address space and subnet, so two hosts asking for one subnet share one pool; every
//! `RequestAddress` is a lease there, held until `ReleaseAddress`. The network driver keeps a
//! [`Networks`] in the state directory: a network per Docker network (named by its id, with
//! Docker's pools, gateway and aux addresses), and an endpoint per Docker endpoint, prepared
//! with [`underlay::network::Network::prepare`] for the address Docker got from the IPAM
//! driver. The endpoint's lease in the network's own store is a second, host-local check of
//! that address, made under the endpoint's lock: it never hands out an address, so an address
//! has one owner (the pool's lease) while each endpoint still has the records, locks and undo
//! of a connect.

#![deny(missing_docs)]

mod ipam_driver;
mod network_driver;
pub mod protocol;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use underlay::ipam::{Ipam, LocalStore, Store};
use underlay::network::{Networks, ReconcileReport};
use underlay::{Handle, Result};

/// The socket dockerd finds the plugin by (`/run/docker/plugins/NAME.sock`).
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/underlay.sock";

/// The content type of every answer (the plugin API's).
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// The pool store's directory under the state directory (without etcd).
pub const POOLS_DIR: &str = "docker-pools";

/// The plugin: both drivers over one state directory.
pub struct Plugin {
    nets: Networks,
    pools: Arc<dyn Store>,
    /// Open pools, by IPAM network name.
    ipams: Mutex<HashMap<String, Ipam>>,
    /// Report scope `global`.
    global: std::sync::atomic::AtomicBool,
    /// The call log, if asked for.
    log: Option<CallLog>,
    /// Leases of earlier runs no endpoint held at start ([`Plugin::find_unanswered`]).
    unanswered: Mutex<ipam_driver::Unanswered>,
    /// Read by a MAC's `RequestAddress`, written by [`Plugin::reclaim_unanswered`].
    reclaiming: tokio::sync::RwLock<()>,
    /// Wakes the DHCP renewer ([`Plugin::run_dhcp_renewer`]) when an endpoint with a lease
    /// is made: its T1 may come before the renewer's next tick.
    dhcp_wake: tokio::sync::Notify,
    /// This host's name as a holder of the pools' gateways and aux addresses
    /// ([`Plugin::set_holder`]).
    holder: String,
}

/// Test-only fault injection: with `UNDERLAY_DOCKER_TEST_KILL_AFTER_LEASE=1` in its
/// environment the plugin kills itself (SIGKILL, as `kill -9`) right after committing a
/// `RequestAddress` lease, before writing the answer: the crash test's deterministic kill.
mod test_hook {
    /// The variable.
    const VAR: &str = "UNDERLAY_DOCKER_TEST_KILL_AFTER_LEASE";

    pub(crate) fn after_lease_committed() {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *ON.get_or_init(|| std::env::var_os(VAR).is_some_and(|v| v == "1")) {
            // SAFETY: kill and getpid have no preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// One JSON line per call: `path`, `request`, `response` (the shape of the recorded fixtures)
/// and `micros`, the time the plugin took.
struct CallLog(Mutex<std::fs::File>);

#[derive(Serialize)]
struct CallLogLine<'a> {
    path: &'a str,
    request: serde_json::Value,
    response: &'a serde_json::Value,
    micros: u128,
}

impl CallLog {
    fn write(
        &self,
        path: &str,
        body: &[u8],
        response: &serde_json::Value,
        took: std::time::Duration,
    ) {
        use std::io::Write;
        let line = CallLogLine {
            path,
            request: serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
            response,
            micros: took.as_micros(),
        };
        if let (Ok(mut text), Ok(mut f)) = (serde_json::to_vec(&line), self.0.lock()) {
            text.push(b'\n');
            let _ = f.write_all(&text);
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("nets", &self.nets)
            .field("pools", &self.pools)
            .finish()
    }
}

/// Which API a call belongs to: its errors go in that API's key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    Network,
    Ipam,
    Plugin,
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request cannot be read (400).
    BadRequest(String),
    /// The library refused or failed.
    Library(underlay::Error),
    /// No such call (404).
    Unknown(String),
}

impl From<underlay::Error> for Failure {
    fn from(e: underlay::Error) -> Failure {
        Failure::Library(e)
    }
}

pub(crate) type Answer = std::result::Result<serde_json::Value, Failure>;

/// Serializes an answer (the protocol types cannot fail to serialize).
pub(crate) fn answer(value: impl Serialize) -> Answer {
    serde_json::to_value(value)
        .map_err(|e| Failure::BadRequest(format!("cannot encode the answer: {e}")))
}

/// Reads a request body into `T`, naming the call in the message.
pub(crate) fn read_body<T: DeserializeOwned>(
    call: &str,
    body: &[u8],
) -> std::result::Result<T, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::BadRequest(format!(
            "{call}: the request has no body: send the call's JSON object"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        Failure::BadRequest(format!(
            "{call}: the request is not what the plugin API describes{at}: {}",
            e.inner()
        ))
    })?;
    de.end().map_err(|e| {
        Failure::BadRequest(format!("{call}: trailing data after the request: {e}"))
    })?;
    Ok(value)
}

/// The kernel's host name (`localhost` if unreadable).
fn kernel_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Plugin {
    /// Opens the plugin's state under `state`: the networks and endpoints (as
    /// [`Networks::open`] keeps them, with `host`'s namespace holding the parents and the
    /// prepared links) and the pool store (`pools`, or a local store in `state/docker-pools`).
    pub async fn open(
        host: &Handle,
        state: impl AsRef<Path>,
        pools: Option<Arc<dyn Store>>,
    ) -> Result<Plugin> {
        let state = state.as_ref();
        let nets = Networks::open(host, state).await?;
        let pools = match pools {
            Some(p) => p,
            None => Arc::new(LocalStore::open(state.join(POOLS_DIR))?),
        };
        Ok(Plugin {
            nets,
            pools,
            ipams: Mutex::new(HashMap::new()),
            global: std::sync::atomic::AtomicBool::new(false),
            log: None,
            unanswered: Mutex::new(Vec::new()),
            reclaiming: tokio::sync::RwLock::new(()),
            dhcp_wake: tokio::sync::Notify::new(),
            holder: kernel_host_name(),
        })
    }

    /// Names this host as a holder of the gateways and aux addresses of shared pools (each
    /// host using a pool holds them; the last one's release frees them). Default: the
    /// kernel's host name, as the etcd store stamps its claims; give every host its own.
    pub fn set_holder(&mut self, name: impl Into<String>) {
        self.holder = name.into();
    }

    /// This host's name as a holder ([`Plugin::set_holder`]).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The networks (and their endpoints) the network driver made.
    pub fn networks(&self) -> &Networks {
        &self.nets
    }

    /// The pool store.
    pub fn pool_store(&self) -> &Arc<dyn Store> {
        &self.pools
    }

    /// The scope the network driver reports: `local`, unless [`Plugin::set_global_scope`]
    /// asked for `global` (a store shared by hosts only: swarm networks). dockerd 20.10 lets a
    /// global-scope driver's networks be created only under swarm ("This node is not a swarm
    /// manager"), so hosts sharing an etcd pool without swarm keep `local`: each host's network
    /// is its own, the pool theirs in common.
    pub fn scope(&self) -> &'static str {
        if self.global.load(std::sync::atomic::Ordering::Relaxed) {
            "global"
        } else {
            "local"
        }
    }

    /// Logs every call to `path` (appended): one JSON line each with `path`, `request`,
    /// `response` and `micros` (the plugin's time for it).
    pub fn log_calls_to(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.as_ref())
            .map_err(|e| {
                underlay::Error::io(
                    format!("cannot open the call log {}", path.as_ref().display()),
                    e,
                )
            })?;
        self.log = Some(CallLog(Mutex::new(f)));
        Ok(())
    }

    /// Reports scope `global` (for swarm). Refused unless the pool store is shared by hosts:
    /// a global network's addresses must come from one pool on every node.
    pub fn set_global_scope(&self) -> Result<()> {
        if !self.pools.is_shared() {
            return Err(underlay::Error::invalid(
                "scope global needs the pools on a store shared by the hosts: start the plugin with --etcd",
            ));
        }
        self.global
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Brings kernel and records in line after a restart ([`Networks::reconcile`]): parents,
    /// shims, endpoints whose link is gone from every namespace.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        self.nets.reconcile().await
    }

    /// The DHCP renewer's tick: renews every lease of every DHCP network (`-o underlay.dhcp`)
    /// that is due (past T1) or lost ([`underlay::network::Network::renew_due_dhcp`]), and
    /// says what failed on standard error (a lost lease's address is removed from the
    /// container by the library). Returns how long to wait before the next tick: until the
    /// earliest T1, a quarter of the time left for a lease whose renewal went unanswered, 5 s
    /// for a lost lease; between 1 s and 30 s.
    pub async fn renew_dhcp_tick(&self) -> std::time::Duration {
        use std::time::{Duration, SystemTime};
        let (floor, ceiling) = (Duration::from_secs(1), Duration::from_secs(30));
        let mut wait = ceiling;
        let nets = match self.nets.list().await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("underlay-docker: DHCP renewer: listing the networks: {e}");
                return ceiling;
            }
        };
        for net in nets.into_iter().filter(|n| n.dhcp().is_some()) {
            match net.renew_due_dhcp().await {
                Ok(done) => {
                    for r in done {
                        if let Err(e) = r.result {
                            eprintln!(
                                "underlay-docker: DHCP renewal of endpoint {} on network {}: {e}",
                                r.container_id,
                                net.name()
                            );
                        }
                    }
                }
                Err(e) => eprintln!(
                    "underlay-docker: DHCP renewer of network {}: {e}",
                    net.name()
                ),
            }
            let now = SystemTime::now();
            for ep in net.endpoints().unwrap_or_default() {
                let next = match &ep.dhcp {
                    None => Duration::from_secs(5),
                    Some(l) => match (l.renew_at(), l.expires()) {
                        (Some(t1), _) if t1 > now => t1.duration_since(now).unwrap_or_default(),
                        (Some(_), Some(end)) => end.duration_since(now).unwrap_or_default() / 4,
                        _ => ceiling,
                    },
                };
                wait = wait.min(next);
            }
        }
        wait.clamp(floor, ceiling)
    }

    /// Runs the DHCP renewer for ever: [`Plugin::renew_dhcp_tick`], then a sleep until the
    /// next one is due (cut short when a DHCP endpoint is made). The daemon spawns it beside
    /// serving.
    pub async fn run_dhcp_renewer(self: Arc<Self>) {
        loop {
            let wait = self.renew_dhcp_tick().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.dhcp_wake.notified() => {}
            }
        }
    }

    /// Answers one call: `path` as dockerd posts it (`/NetworkDriver.Join`), `body` its JSON.
    /// Returns the HTTP status and the JSON answer. Never panics on any input.
    pub async fn call(&self, path: &str, body: &[u8]) -> (StatusCode, serde_json::Value) {
        let method = path.trim_start_matches('/');
        let api = if method.starts_with("NetworkDriver.") {
            Api::Network
        } else if method.starts_with("IpamDriver.") {
            Api::Ipam
        } else {
            Api::Plugin
        };
        let outcome = self.dispatch(method, body).await;
        match outcome {
            Ok(v) => (StatusCode::OK, v),
            Err(f) => {
                let (status, msg) = match f {
                    Failure::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
                    // dockerd reads the error from the answer's key with any status; 200 keeps
                    // its message as the library wrote it.
                    Failure::Library(e) => (StatusCode::OK, e.to_string()),
                    Failure::Unknown(m) => (StatusCode::NOT_FOUND, m),
                };
                let v = match api {
                    Api::Ipam => serde_json::to_value(protocol::IpamError { error: msg }),
                    _ => serde_json::to_value(protocol::NetworkError { err: msg }),
                };
                (status, v.unwrap_or(serde_json::Value::Null))
            }
        }
    }

    async fn dispatch(&self, method: &str, body: &[u8]) -> Answer {
        match method {
            "Plugin.Activate" => answer(protocol::Activate {
                implements: vec!["NetworkDriver", "IpamDriver"],
            }),
            "NetworkDriver.GetCapabilities" => answer(protocol::NetworkCapabilities {
                scope: self.scope(),
                connectivity_scope: self.scope(),
            }),
            "NetworkDriver.CreateNetwork" => self.create_network(read_body(method, body)?).await,
            "NetworkDriver.DeleteNetwork" => self.delete_network(read_body(method, body)?).await,
            "NetworkDriver.CreateEndpoint" => self.create_endpoint(read_body(method, body)?).await,
            "NetworkDriver.DeleteEndpoint" => self.delete_endpoint(read_body(method, body)?).await,
            "NetworkDriver.EndpointOperInfo" => {
                self.endpoint_oper_info(read_body(method, body)?).await
            }
            "NetworkDriver.Join" => self.join(read_body(method, body)?).await,
            "NetworkDriver.Leave"
            | "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity" => {
                // Nothing to do on this host's side (Docker moves the link back itself), but
                // the request must be one.
                let _: protocol::EndpointRef = read_body(method, body)?;
                answer(protocol::Empty {})
            }
            "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => {
                answer(protocol::Empty {})
            }
            "IpamDriver.GetCapabilities" => answer(protocol::IpamCapabilities {
                // dockerd then sends each endpoint's MAC with its RequestAddress (its own
                // random one without --mac-address): the key of MAC-aware leases.
                requires_mac_address: true,
                requires_request_replay: false,
            }),
            "IpamDriver.GetDefaultAddressSpaces" => answer(protocol::AddressSpaces {
                local: "local",
                global: "global",
            }),
            "IpamDriver.RequestPool" => self.request_pool(read_body(method, body)?).await,
            "IpamDriver.ReleasePool" => self.release_pool(read_body(method, body)?).await,
            "IpamDriver.RequestAddress" => self.request_address(read_body(method, body)?).await,
            "IpamDriver.ReleaseAddress" => self.release_address(read_body(method, body)?).await,
            other => Err(Failure::Unknown(format!(
                "`{}` is not a call of the network or IPAM driver API",
                underlay::Error::show_input(other)
            ))),
        }
    }

    /// The HTTP router: every path posts to [`Plugin::call`].
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self)
    }

    /// Serves dockerd on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn handle(State(plugin): State<Arc<Plugin>>, uri: Uri, body: Bytes) -> Response {
    use futures::FutureExt;
    let path = uri.path().to_string();
    let started = std::time::Instant::now();
    // A bug must not take the daemon down: a panic becomes a 500 for this call only.
    let (status, value) = match std::panic::AssertUnwindSafe(plugin.call(&path, &body))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "Err": format!("{path}: internal error (a bug in underlay-docker; see its log)"), "Error": format!("{path}: internal error") }),
        ),
    };
    if let Some(log) = &plugin.log {
        log.write(&path, &body, &value, started.elapsed());
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        bytes,
    )
        .into_response()
}

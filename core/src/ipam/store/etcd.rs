//! The cluster-wide store on etcd (feature `etcd`): every host sees one definition per network
//! and one owner per address. See docs/ipam-etcd.md for the key layout and the guarantees.

mod codec;
mod holds;
mod lease;
mod members;
mod probe;
mod slices;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KvClient,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{Owner, Record};
use crate::ipam::network::{check_name, Network};

use super::{Change, Joined, Left, Snapshot, Stamp, Store, StoreFuture};
use crate::ipam::pool::AllocRange;
use codec::{corrupt, Keys, LOG_KEEP};
use lease::HostLease;

/// How to reach etcd and where to keep the IPAM's keys.
///
/// ```
/// use std::time::Duration;
/// use underlay::ipam::EtcdConfig;
/// let cfg = EtcdConfig::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
///     .prefix("/underlay/")
///     .host("node-7")
///     .request_timeout(Duration::from_secs(2))
///     .user("underlay", "secret");
/// assert_eq!(cfg.endpoints().len(), 2);
/// ```
#[derive(Clone)]
pub struct EtcdConfig {
    endpoints: Vec<String>,
    prefix: String,
    host: Option<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    retry_for: Duration,
    user: Option<(String, String)>,
    ca: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    tls_domain: Option<String>,
    max_txn_ops: usize,
    host_lease: Option<Duration>,
    slices: Option<u32>,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("host", &self.host)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_for", &self.retry_for)
            .field("user", &self.user.as_ref().map(|(u, _)| u)) // never the password
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .field("host_lease", &self.host_lease)
            .field("slices", &self.slices)
            .finish()
    }
}

impl EtcdConfig {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "/underlay/";

    /// The cluster's client URLs (`http://host:2379`, or `https://` with [`EtcdConfig::tls`]).
    /// Defaults: prefix [`EtcdConfig::DEFAULT_PREFIX`], host name from the kernel, 5 s per
    /// request, 3 s to connect, retries for 15 s.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: Self::DEFAULT_PREFIX.to_string(),
            host: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            retry_for: Duration::from_secs(15),
            user: None,
            ca: None,
            client_cert: None,
            tls_domain: None,
            max_txn_ops: 128,
            host_lease: None,
            slices: None,
        }
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Keeps every key under `prefix` (give each independent IPAM its own).
    pub fn prefix(mut self, prefix: impl Into<String>) -> EtcdConfig {
        self.prefix = prefix.into();
        self
    }

    /// The name this host stamps on its claims (default: the kernel's host name); reported by
    /// [`EtcdStore::addresses_by_host`] and used by [`EtcdStore::gc_host`].
    pub fn host(mut self, host: impl Into<String>) -> EtcdConfig {
        self.host = Some(host.into());
        self
    }

    /// The longest one request may take before it is retried.
    pub fn request_timeout(mut self, t: Duration) -> EtcdConfig {
        self.request_timeout = t;
        self
    }

    /// The longest a connection attempt to one endpoint may take.
    pub fn connect_timeout(mut self, t: Duration) -> EtcdConfig {
        self.connect_timeout = t;
        self
    }

    /// How long an operation keeps retrying while members are unavailable (a leader election
    /// takes about a second) before it fails with [`ErrorKind::Timeout`].
    pub fn retry_for(mut self, t: Duration) -> EtcdConfig {
        self.retry_for = t;
        self
    }

    /// Authenticates as `user` (etcd's `--auth` / `etcdctl user add`).
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> EtcdConfig {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// TLS, trusting the PEM CA certificate at `ca` (the endpoints must be `https://`).
    pub fn tls(mut self, ca: impl Into<PathBuf>) -> EtcdConfig {
        self.ca = Some(ca.into());
        self
    }

    /// A client certificate and its key (PEM) for etcd's `--client-cert-auth`.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> EtcdConfig {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// The name to check the server certificate against (default: the endpoint's host).
    pub fn tls_domain(mut self, domain: impl Into<String>) -> EtcdConfig {
        self.tls_domain = Some(domain.into());
        self
    }

    /// The most operations etcd takes in one transaction: its `--max-txn-ops` (default 128),
    /// which bounds a transaction's compares and its writes each. A commit writes one key per
    /// address it changes plus three, so this bounds how many addresses one batch may release;
    /// in a network sliced by some host ([`EtcdConfig::slices`]) each release is also compared
    /// twice, which halves that. The gcs commit in batches of a quarter of it. See
    /// docs/ipam-etcd.md.
    pub fn max_txn_ops(mut self, n: usize) -> EtcdConfig {
        self.max_txn_ops = n;
        self
    }

    /// Attaches this host's claims to the host's etcd lease of time to live `ttl` (whole
    /// seconds, at least etcd's minimum of about 2 s), kept alive by a background task while the
    /// store (any clone of it) lives: when the host dies, its addresses come free after `ttl`
    /// without a gc. Every process of one host name shares that one lease (joined at connect,
    /// made only when none is alive; claims never move between leases), so a short-lived
    /// process never takes the host's claims with it. Off by default.
    ///
    /// The trade-off: a host cut off from etcd (partition, stall, a stopped daemon) for longer
    /// than `ttl` loses its claims although its containers still use the addresses, and
    /// another host may then hand them out. See docs/ipam-etcd.md.
    pub fn host_lease(mut self, ttl: Duration) -> EtcdConfig {
        self.host_lease = Some(ttl);
        self
    }

    /// Gives this host node slices of `size` addresses (whereabouts' idea): it reserves an
    /// aligned block of a pool at a time, picks its addresses inside its blocks, and commits
    /// claims and releases there without comparing or moving the network's version, so hosts
    /// allocating at once do not contend. Every host of a network uses one size (the first
    /// slice fixes it). [`crate::ipam::Ipam`] (and so [`crate::network::Networks`]) uses
    /// them by itself. Off by default. See docs/ipam-etcd.md.
    pub fn slices(mut self, size: u32) -> EtcdConfig {
        self.slices = Some(size);
        self
    }

    fn validate(&self) -> Result<()> {
        if self.slices == Some(0) {
            return Err(Error::invalid(
                "a node slice needs at least one address: give EtcdConfig::slices a size of 1 \
                 or more (e.g. 16)",
            ));
        }
        if self.endpoints.is_empty() {
            return Err(Error::invalid(
                "the etcd store needs at least one endpoint, e.g. http://127.0.0.1:2379",
            ));
        }
        let ok = self.prefix.starts_with('/') && self.prefix.ends_with('/');
        if !ok {
            return Err(Error::invalid(format!(
                "etcd key prefix `{}` must start and end with `/`, e.g. `/underlay/`",
                self.prefix.escape_debug()
            )));
        }
        if self.host_lease.is_some_and(|t| t < Duration::from_secs(1)) {
            return Err(Error::invalid(
                "the etcd host lease's TTL must be at least 1 s (etcd counts whole seconds)",
            ));
        }
        if let Some(h) = &self.host {
            if h.is_empty()
                || h == holds::SHARED_HOST
                || h.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::invalid(format!(
                    "host name `{}` is invalid: give a non-empty name without whitespace (`*` \
                     marks shared reservations)",
                    h.escape_debug()
                )));
            }
        }
        Ok(())
    }

    fn options(&self) -> Result<ConnectOptions> {
        let mut o = ConnectOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(Duration::from_secs(5), self.request_timeout);
        if let Some((u, p)) = &self.user {
            o = o.with_user(u, p).with_auto_token_refresh(true);
        }
        if let Some(ca) = &self.ca {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| {
                    Error::io(format!("cannot read TLS file {} for etcd", p.display()), e)
                })
            };
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let Some((cert, key)) = &self.client_cert {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            if let Some(d) = &self.tls_domain {
                tls = tls.domain_name(d);
            }
            o = o.with_tls(tls);
        } else if self.client_cert.is_some() {
            return Err(Error::invalid(
                "a client certificate for etcd needs TLS: give the CA with EtcdConfig::tls",
            ));
        }
        Ok(o)
    }
}

/// Leases on etcd, shared by every host of a cluster: a claim is a transaction that succeeds
/// only if the address's key does not exist, so no address is ever handed out twice across
/// hosts. Networks are defined in etcd too, so all hosts use one definition.
///
/// Every commit is one transaction that compares the network's version key, checks each
/// address key (absent for a claim, held by the owner for a release), writes the changes, bumps
/// the version and appends the batch to a short log that [`Store::changes_since`] serves.
/// Unavailable members and timeouts are retried for [`EtcdConfig::retry_for`]; a commit whose
/// reply was lost is recognised by its nonce in the log, so a retry never applies a batch twice
/// nor loses one.
///
/// Hosts join a network ([`Store::join_network`]) and leave it; the definition goes with the
/// last one. With [`EtcdConfig::slices`] a host claims inside its own blocks of the pool,
/// committing there without the version ([`Store::commit_in_slices`]), and [`Store::stamp`]
/// tells every host's cache about such commits and about addresses freed by an expired
/// [`EtcdConfig::host_lease`].
///
/// ```no_run
/// # async fn f() -> underlay::Result<()> {
/// use std::sync::Arc;
/// use underlay::ipam::{EtcdConfig, EtcdStore, Ipam, Network, Owner, Request};
/// let store = EtcdStore::connect(EtcdConfig::new(["http://10.0.0.1:2379"])).await?;
/// let net = Network::new("mac_net1", vec!["172.22.16.0/24 gateway=172.22.16.1".parse()?])?;
/// let ipam = Ipam::open_or_create(Arc::new(store), net).await?;
/// let lease = ipam.allocate(&Owner::new("c1", "eth0")?, &Request::any()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    host: String,
    endpoints: String,
    request_timeout: Duration,
    retry_for: Duration,
    max_txn_ops: usize,
    lease: Option<Arc<HostLease>>,
    /// Puts endpoints that were silent at connect back into the balanced channel.
    readmit: Option<Arc<probe::Readmit>>,
    /// The size of this host's node slices ([`EtcdConfig::slices`]).
    slice_size: Option<u32>,
    /// This host's slices per network as last read or taken (see `slices`), shared by the
    /// clones; a commit in slices compares each slice key, so a stale entry only costs a retry.
    slices: Arc<std::sync::Mutex<HashMap<String, Vec<slices::Slice>>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("keys", &self.keys)
            .field("host", &self.host)
            .field("lease", &self.lease)
            .field("readmit", &self.readmit)
            .finish()
    }
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// The least time the last attempt before a deadline gets (to read a commit's outcome back).
const LAST_TRY: Duration = Duration::from_millis(100);

/// What one attempt of a request ended with.
enum Failure {
    /// Worth another try (member down, election, timeout): the request may or may not have
    /// been applied.
    Retry(String),
    /// Final.
    Fatal(Error),
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".to_string())
}

fn get_kvs(r: &TxnOpResponse) -> &[etcd_client::KeyValue] {
    match r {
        TxnOpResponse::Get(g) => g.kvs(),
        _ => &[],
    }
}

/// A key's last modification revision (0 when absent), as a [`Stamp::slice_writes`].
fn revision(kv: Option<&etcd_client::KeyValue>) -> u64 {
    kv.map_or(0, |kv| kv.mod_revision().unsigned_abs())
}

impl EtcdStore {
    /// Connects and checks that etcd answers: [`ErrorKind::Timeout`] naming the endpoints if
    /// none does within [`EtcdConfig::retry_for`], [`ErrorKind::PermissionDenied`] on wrong
    /// credentials.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        config.validate()?;
        let options = config.options()?;
        let deadline = deadline_after(config.retry_for);
        // Requests are balanced over the endpoints: leave out any that is not etcd, and for
        // now any that is silent while a member answers.
        let catalog = Keys::new(&config.prefix).catalog();
        let probed = probe::probe(
            &config.endpoints,
            &options,
            &catalog,
            config.request_timeout + config.connect_timeout,
            deadline,
        )
        .await?;
        let in_play: Vec<&str> = probed
            .usable
            .iter()
            .chain(&probed.silent)
            .map(String::as_str)
            .collect();
        let endpoints = in_play.join(",");
        // Errors name the endpoints left out as not etcd too.
        let left_out = |e: Error| match probed.not_etcd.is_empty() {
            true => e,
            false => {
                let each: Vec<String> = probed
                    .not_etcd
                    .iter()
                    .map(|(ep, m)| format!("{ep}: {m}"))
                    .collect();
                let m = format!(
                    "{} (left out as not etcd: {})",
                    e.message(),
                    each.join("; ")
                );
                Error::new(e.kind(), m)
            }
        };
        let mut delay = Duration::from_millis(20);
        let client = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                (config.request_timeout + config.connect_timeout).min(left.max(LAST_TRY)),
                Client::connect(&probed.usable, Some(options.clone())),
            )
            .await;
            let last = match attempt {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) => match classify(&e) {
                    Failure::Retry(m) => m,
                    Failure::Fatal(e) => {
                        return Err(left_out(e.context(format_args!("etcd at {endpoints}"))));
                    }
                },
                Err(_) => "the connection timed out".to_string(),
            };
            if Instant::now() + delay > deadline {
                let e = timeout_err(&endpoints, "connect", config.retry_for, &last);
                return Err(left_out(e));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        };
        let readmit = (!probed.silent.is_empty()).then(|| {
            Arc::new(probe::Readmit::start(
                client.clone(),
                options.clone(),
                catalog.clone(),
                probed.silent.clone(),
                config.request_timeout.max(Duration::from_secs(1)),
            ))
        });
        let store = EtcdStore {
            client,
            keys: Keys::new(&config.prefix),
            host: config.host.clone().unwrap_or_else(host_name),
            endpoints,
            request_timeout: config.request_timeout,
            retry_for: config.retry_for,
            max_txn_ops: config.max_txn_ops,
            lease: None,
            readmit,
            slice_size: config.slices,
            slices: Arc::default(),
        };
        // Fail now, not at the first allocation, when etcd is unreachable or refuses us; within
        // what is left of retry_for.
        store
            .call_until("connect", deadline, move |mut kv| {
                let k = catalog.clone();
                async move { kv.get(k, None).await.map(|_| ()) }
            })
            .await
            .map_err(left_out)?;
        let Some(ttl) = config.host_lease else {
            return Ok(store);
        };
        store.start_lease(ttl).await
    }

    /// Joins the host's lease (the one every process of this host name shares), or makes it
    /// when there is none alive, and starts keeping it alive. Claims made under another lease
    /// (or none) stay where they are: see lease.rs.
    async fn start_lease(mut self, ttl: Duration) -> Result<EtcdStore> {
        let secs = lease::ttl_secs(ttl);
        let key = self.keys.host_lease(&self.host);
        let (client, k) = (self.client.clone(), key.clone());
        let (id, granted) = self
            .call("join or make the host's lease", move |_| {
                let (client, k) = (client.clone(), k.clone());
                async move { lease::join_or_make(&client, &k, secs).await }
            })
            .await?;
        let ttl = Duration::from_secs(granted.max(1).unsigned_abs());
        self.lease = Some(Arc::new(HostLease::start(
            self.client.clone(),
            id,
            ttl,
            self.host.clone(),
            key,
        )));
        Ok(self)
    }

    /// The TTL of this host's lease, if its claims carry one ([`EtcdConfig::host_lease`]).
    pub fn host_lease_ttl(&self) -> Option<Duration> {
        self.lease.as_ref().map(|l| l.ttl())
    }

    /// The host name stamped on this store's claims.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs `f` until it succeeds, fails for good, or [`EtcdConfig::retry_for`] has passed.
    /// Only for requests that can be repeated safely (reads, idempotent writes).
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_until(what, deadline_after(self.retry_for), f)
            .await
    }

    /// [`EtcdStore::call`] retrying until `deadline`.
    async fn call_until<T, F, Fut>(&self, what: &str, deadline: Instant, mut f: F) -> Result<T>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut delay = Duration::from_millis(20);
        let mut tls_closed = 0;
        loop {
            let last = match self.once(f(self.client.kv_client()), deadline).await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(m)) => m,
            };
            // The member closed the TLS handshake: once may be a member going down, again and
            // again is https against a member serving plain http, which no retry heals.
            tls_closed = if last.contains("tls handshake eof") {
                tls_closed + 1
            } else {
                0
            };
            if tls_closed >= 3 {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "etcd at {}: the member closed every TLS handshake ({last}): it probably \
                         serves plain http: use http:// endpoints without TLS, or enable TLS on \
                         the members",
                        self.endpoints
                    ),
                ));
            }
            if Instant::now() + delay > deadline {
                return Err(timeout_err(&self.endpoints, what, self.retry_for, &last));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// One attempt, given `request_timeout` but no more than what is left until `deadline`
    /// (at least [`LAST_TRY`]), so that retries end by the deadline.
    async fn once<T>(
        &self,
        fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
        deadline: Instant,
    ) -> std::result::Result<T, Failure> {
        let left = deadline.saturating_duration_since(Instant::now());
        let limit = self.request_timeout.min(left.max(LAST_TRY));
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match classify(&e) {
                Failure::Fatal(e) => {
                    Failure::Fatal(e.context(format_args!("etcd at {}", self.endpoints)))
                }
                r => r,
            }),
            Err(_) => Err(Failure::Retry(format!("no answer within {limit:?}"))),
        }
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.txn_until(what, txn, deadline_after(self.retry_for))
            .await
    }

    /// [`EtcdStore::txn`] retrying until `deadline`.
    async fn txn_until(&self, what: &str, txn: Txn, deadline: Instant) -> Result<TxnResponse> {
        self.call_until(what, deadline, move |mut kv| {
            let t = txn.clone();
            async move { kv.txn(t).await }
        })
        .await
    }

    fn nonce(&self) -> String {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "{}:{}:{}:{t}",
            self.host,
            std::process::id(),
            NONCE.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The host's lease for a put, if claims carry one.
    fn lease_opts(&self) -> Option<PutOptions> {
        self.lease
            .as_ref()
            .map(|l| PutOptions::new().with_lease(l.id()))
    }

    /// The definition of network `name` alone.
    async fn read_network(&self, name: &str) -> Result<Network> {
        check_name(name)?;
        let key = self.keys.net(name);
        let r = self
            .call("read a network's definition", move |mut kv| {
                let k = key.clone();
                async move { kv.get(k, None).await }
            })
            .await?;
        let Some(kv) = r.kvs().first() else {
            return Err(self.not_found(name));
        };
        let net = self.decode_net(kv.key(), kv.value())?;
        if net.name() != name {
            return Err(corrupt(
                kv.key(),
                format_args!("it defines network `{}`", net.name()),
            ));
        }
        Ok(net)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::not_found(format!(
            "network `{name}` is not defined in the etcd store at {} (key {}): create it first",
            self.endpoints,
            self.keys.net(name)
        ))
    }

    fn decode_net(&self, key: &[u8], value: &[u8]) -> Result<Network> {
        let text = codec::text(key, value)?;
        let origin = String::from_utf8_lossy(key);
        Network::parse(text, &origin).map_err(|e| corrupt(key, e.message()))
    }

    async fn read_networks(&self) -> Result<(Vec<Network>, i64)> {
        let txn = Txn::new().and_then(vec![
            TxnOp::get(self.keys.catalog(), None),
            TxnOp::get(self.keys.nets(), Some(GetOptions::new().with_prefix())),
        ]);
        let r = self.txn("list networks", txn).await?;
        let ops = r.op_responses();
        let catalog_rev = get_kvs(&ops[0]).first().map_or(0, |kv| kv.mod_revision());
        let prefix = self.keys.nets();
        let mut nets = Vec::new();
        for kv in get_kvs(&ops[1]) {
            let name = codec::suffix(kv.key(), &prefix)?;
            let net = self.decode_net(kv.key(), kv.value())?;
            if net.name() != name {
                return Err(corrupt(
                    kv.key(),
                    format_args!("it defines network `{}`", net.name()),
                ));
            }
            nets.push(net);
        }
        Ok((nets, catalog_rev))
    }

    /// Commits a change of the catalog (create or delete a network): `Ok(true)` if it applied,
    /// `Ok(false)` if its compares failed; a lost reply is resolved by the catalog's nonce.
    async fn catalog_txn(
        &self,
        what: &str,
        compares: Vec<Compare>,
        mut ops: Vec<TxnOp>,
    ) -> Result<bool> {
        let nonce = self.nonce();
        ops.push(TxnOp::put(self.keys.catalog(), nonce.clone(), None));
        let txn = Txn::new().when(compares).and_then(ops);
        let deadline = deadline_after(self.retry_for);
        loop {
            let mut kv = self.client.kv_client();
            let last = match self.once(kv.txn(txn.clone()), deadline).await {
                Ok(r) => return Ok(r.succeeded()),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(m)) => m,
            };
            // Did it apply before the reply was lost?
            let catalog = self.keys.catalog();
            let kv = self
                .call_until(what, deadline, move |mut kv| {
                    let k = catalog.clone();
                    async move { kv.get(k, None).await }
                })
                .await?;
            if kv
                .kvs()
                .first()
                .is_some_and(|kv| kv.value() == nonce.as_bytes())
            {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Err(timeout_err(&self.endpoints, what, self.retry_for, &last));
            }
        }
    }

    async fn do_create(&self, network: &Network) -> Result<()> {
        check_name(network.name())?;
        loop {
            let (nets, catalog_rev) = self.read_networks().await?;
            if nets.iter().any(|n| n.name() == network.name()) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "network `{}` already exists in the etcd store at {}: open it or delete \
                         it first",
                        network.name(),
                        self.endpoints
                    ),
                ));
            }
            for n in &nets {
                network.check_disjoint(n)?;
            }
            let name = network.name();
            let compares = vec![Compare::mod_revision(
                self.keys.catalog(),
                CompareOp::Equal,
                catalog_rev,
            )];
            let ops = vec![
                TxnOp::put(self.keys.net(name), network.to_text(), None),
                TxnOp::put(self.keys.version(name), "0", None),
            ];
            if self.catalog_txn("create a network", compares, ops).await? {
                return Ok(());
            }
            // Another host changed the catalog meanwhile: check again.
        }
    }

    async fn do_delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        loop {
            let (nets, catalog_rev) = self.read_networks().await?;
            if !nets.iter().any(|n| n.name() == name) {
                return Err(self.not_found(name));
            }
            let compares = vec![
                Compare::mod_revision(self.keys.catalog(), CompareOp::Equal, catalog_rev),
                // No address key left (an empty range compares as version 0).
                Compare::version(self.keys.addrs(name), CompareOp::Equal, 0).with_prefix(),
            ];
            let ops = vec![
                TxnOp::delete(self.keys.net(name), None),
                TxnOp::delete(
                    self.keys.data(name),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ),
            ];
            if self.catalog_txn("delete a network", compares, ops).await? {
                return Ok(());
            }
            let held = self.load_inner(name).await?.0.records.len();
            if held > 0 {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!(
                        "network `{name}` still holds {held} leases in the etcd store: release \
                         them (or gc) first"
                    ),
                ));
            }
        }
    }

    /// The snapshot and, per address, the host that claimed it.
    async fn load_inner(&self, name: &str) -> Result<(Snapshot, HashMap<IpAddr, String>)> {
        check_name(name)?;
        let k = &self.keys;
        let txn = Txn::new().and_then(vec![
            TxnOp::get(k.net(name), None),
            TxnOp::get(k.version(name), None),
            TxnOp::get(k.addrs(name), Some(GetOptions::new().with_prefix())),
            TxnOp::get(k.cursors(name), Some(GetOptions::new().with_prefix())),
            TxnOp::get(k.slice_writes(name), None),
        ]);
        let r = self.txn("load a network", txn).await?;
        let ops = r.op_responses();
        let Some(def) = get_kvs(&ops[0]).first() else {
            return Err(self.not_found(name));
        };
        let network = self.decode_net(def.key(), def.value())?;
        if network.name() != name {
            return Err(corrupt(
                def.key(),
                format_args!("it defines network `{}`", network.name()),
            ));
        }
        let Some(v) = get_kvs(&ops[1]).first() else {
            return Err(corrupt(
                k.version(name).as_bytes(),
                "the network's version key is missing",
            ));
        };
        let version = codec::parse_version(v.key(), v.value())?;
        let addrs = k.addrs(name);
        let mut records = Vec::new();
        let mut hosts = HashMap::new();
        for kv in get_kvs(&ops[2]) {
            let ip: IpAddr = codec::suffix(kv.key(), &addrs)?
                .parse()
                .map_err(|_| corrupt(kv.key(), "the key does not end in an IP address"))?;
            let (rec, host) = codec::decode_record(kv.key(), ip, kv.value())?;
            records.push(rec);
            hosts.insert(ip, host);
        }
        let mut cursors = vec![None; network.pools().len()];
        let prefix = k.cursors(name);
        for kv in get_kvs(&ops[3]) {
            let pool: usize = codec::suffix(kv.key(), &prefix)?
                .parse()
                .map_err(|_| corrupt(kv.key(), "the key does not end in a pool index"))?;
            let ip: IpAddr = codec::text(kv.key(), kv.value())?
                .parse()
                .map_err(|_| corrupt(kv.key(), "the value is not an IP address"))?;
            match cursors.get_mut(pool) {
                Some(slot) => *slot = Some(ip),
                None => return Err(corrupt(kv.key(), "the network has no such pool")),
            }
        }
        let slice_writes = revision(get_kvs(&ops[4]).first());
        Ok((
            Snapshot {
                network,
                records,
                cursors,
                version,
                slice_writes,
                foreign: Vec::new(),
            },
            hosts,
        ))
    }

    /// The commit's transaction: compares, then the writes; and whether the released owners
    /// went uncompared (too many for one transaction; the network must then have no slices).
    fn commit_txn(
        &self,
        name: &str,
        expected: u64,
        changes: &[Change],
        nonce: &str,
    ) -> Result<(Txn, bool)> {
        let k = &self.keys;
        let next = expected + 1;
        let mut compares = vec![Compare::value(
            k.version(name),
            CompareOp::Equal,
            expected.to_string(),
        )];
        let mut ops = vec![
            TxnOp::put(k.version(name), next.to_string(), None),
            TxnOp::put(k.log(name, next), codec::encode_log(nonce, changes), None),
        ];
        if next > LOG_KEEP {
            ops.push(TxnOp::delete(k.log(name, next - LOG_KEEP), None));
        }
        let (per_addr, cursors) = fold(name, changes)?;
        self.address_ops(name, &per_addr, &mut compares, &mut ops);
        for (pool, addr) in cursors {
            ops.push(TxnOp::put(k.cursor(name, pool), addr.to_string(), None));
        }
        let unchecked = compares.len() > self.max_txn_ops;
        if unchecked {
            // Too many releases to compare each owner (two compares each). In a network no
            // host slices (no `slicesize` key), every change of an address moves the version,
            // so the version compare proves the releases right, as it did before slices: compare
            // that instead. A sliced network refuses the batch below (see `do_commit`).
            compares.truncate(1);
            compares.push(Compare::version(k.slice_size(name), CompareOp::Equal, 0));
            for (addr, (pre, _)) in &per_addr {
                if matches!(pre, Pre::Absent) {
                    compares.push(Compare::version(k.addr(name, *addr), CompareOp::Equal, 0));
                }
            }
        }
        self.check_txn_size(name, compares.len(), ops.len())?;
        let txn = Txn::new().when(compares).and_then(ops).or_else(vec![
            TxnOp::get(k.version(name), None),
            TxnOp::get(k.slice_size(name), None),
        ]);
        Ok((txn, unchecked))
    }

    /// The compares and writes of a folded batch's addresses. Every address is compared, even
    /// in a versioned commit: claims in node slices do not move the version, so the version
    /// alone no longer proves the batch's view of an address right.
    fn address_ops(
        &self,
        name: &str,
        per_addr: &BTreeMap<IpAddr, (Pre, Option<&Record>)>,
        compares: &mut Vec<Compare>,
        ops: &mut Vec<TxnOp>,
    ) {
        for (addr, (pre, now)) in per_addr {
            let key = self.keys.addr(name, *addr);
            match pre {
                Pre::Absent => compares.push(Compare::version(key.clone(), CompareOp::Equal, 0)),
                Pre::HeldBy(o) => {
                    let (lo, hi) = codec::owner_range(o);
                    compares.push(Compare::value(key.clone(), CompareOp::Greater, lo));
                    compares.push(Compare::value(key.clone(), CompareOp::Less, hi));
                }
            }
            match now {
                Some(r) => ops.push(TxnOp::put(
                    key,
                    codec::encode_record(r, &self.host),
                    self.lease_opts(),
                )),
                None => ops.push(TxnOp::delete(key, None)),
            }
        }
    }

    /// Refuses a transaction longer than etcd takes (`--max-txn-ops` bounds the compares and
    /// the writes each).
    fn check_txn_size(&self, name: &str, compares: usize, ops: usize) -> Result<()> {
        let (what, n) = if compares > ops {
            ("compares", compares)
        } else {
            ("writes", ops)
        };
        if n > self.max_txn_ops {
            return Err(Error::invalid(format!(
                "a commit to network `{name}` {what} {n} keys, more than the {} etcd takes in \
                 one transaction (a claim takes one compare, a release two): raise \
                 `--max-txn-ops` on every etcd member and EtcdConfig::max_txn_ops to match, or \
                 release in smaller batches",
                self.max_txn_ops
            )));
        }
        Ok(())
    }

    async fn do_commit(&self, name: &str, expected: u64, changes: &[Change]) -> Result<u64> {
        check_name(name)?;
        let nonce = self.nonce();
        let deadline = deadline_after(self.retry_for);
        let mut delay = Duration::from_millis(20);
        loop {
            // Built per attempt: the host's lease may have been replaced meanwhile.
            let (txn, unchecked) = self.commit_txn(name, expected, changes, &nonce)?;
            let mut kv = self.client.kv_client();
            let last = match self.once(kv.txn(txn.clone()), deadline).await {
                Ok(r) if r.succeeded() => return Ok(expected + 1),
                Ok(r) => {
                    let ops = r.op_responses();
                    return Err(match ops.first().and_then(|o| get_kvs(o).first()) {
                        None => self.not_found(name),
                        Some(kv) => {
                            let now = codec::parse_version(kv.key(), kv.value())?;
                            let sliced = !get_kvs(&ops[1]).is_empty();
                            if now != expected {
                                super::memory::conflict(name, now, expected)
                            } else if sliced && unchecked {
                                Error::invalid(format!(
                                    "a commit to network `{name}` releases more addresses than \
                                     etcd can compare in one transaction ({} compares at most, \
                                     two per release) and hosts use node slices in it, so each \
                                     release must be compared: raise `--max-txn-ops` on every \
                                     etcd member and EtcdConfig::max_txn_ops to match, or \
                                     release in smaller batches",
                                    self.max_txn_ops
                                ))
                            } else {
                                Error::new(
                                    ErrorKind::Conflict,
                                    format!(
                                        "network `{name}` in etcd disagrees with the batch (an \
                                         address is taken or no longer held): reload and retry"
                                    ),
                                )
                            }
                        }
                    });
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(m)) => m,
            };
            // The reply is lost: the transaction may have applied. Read the version and our
            // log entry back (retrying until a member answers) to know.
            let (vkey, lkey) = (self.keys.version(name), self.keys.log(name, expected + 1));
            let check = Txn::new().and_then(vec![TxnOp::get(vkey, None), TxnOp::get(lkey, None)]);
            let r = self.txn_until("check a commit", check, deadline).await?;
            let ops = r.op_responses();
            let Some(v) = get_kvs(&ops[0]).first() else {
                return Err(self.not_found(name));
            };
            let now = codec::parse_version(v.key(), v.value())?;
            if let Some(l) = get_kvs(&ops[1]).first() {
                if codec::log_nonce(l.key(), l.value())? == nonce {
                    return Ok(expected + 1); // it applied; only the reply was lost
                }
            }
            if now > expected + LOG_KEEP {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "etcd at {}: the outcome of a commit to network `{name}` is unknown (its \
                         reply was lost and {LOG_KEEP}+ commits followed): look the owners up \
                         and retry",
                        self.endpoints
                    ),
                ));
            }
            if now != expected {
                return Err(super::memory::conflict(name, now, expected));
            }
            if Instant::now() + delay > deadline {
                return Err(timeout_err(
                    &self.endpoints,
                    "commit",
                    self.retry_for,
                    &last,
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    async fn do_changes_since(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<(Vec<Change>, u64)>> {
        check_name(name)?;
        let k = &self.keys;
        let txn = Txn::new().and_then(vec![
            TxnOp::get(k.version(name), None),
            TxnOp::get(
                k.log(name, version + 1),
                Some(GetOptions::new().with_range(k.log_end(name))),
            ),
        ]);
        let r = self.txn("read the changes of a network", txn).await?;
        let ops = r.op_responses();
        let Some(v) = get_kvs(&ops[0]).first() else {
            return Err(self.not_found(name));
        };
        let now = codec::parse_version(v.key(), v.value())?;
        if now < version {
            return Ok(None);
        }
        let entries = get_kvs(&ops[1]);
        if entries.len() as u64 != now - version {
            return Ok(None); // trimmed away (or a network recreated meanwhile)
        }
        let mut changes = Vec::new();
        for (i, kv) in entries.iter().enumerate() {
            if kv.key() != k.log(name, version + 1 + i as u64).as_bytes() {
                return Ok(None);
            }
            changes.extend(codec::decode_log(kv.key(), kv.value())?);
        }
        Ok(Some((changes, now)))
    }

    async fn do_version(&self, name: &str) -> Result<u64> {
        check_name(name)?;
        let key = self.keys.version(name);
        let r = self
            .call("read a network's version", move |mut kv| {
                let k = key.clone();
                async move { kv.get(k, None).await }
            })
            .await?;
        match r.kvs().first() {
            Some(kv) => codec::parse_version(kv.key(), kv.value()),
            None => Err(self.not_found(name)),
        }
    }

    /// The version, the revision of the last commit in slices and the number of address keys,
    /// in one read: a cache compares them to see expiries and other hosts' slice commits.
    async fn do_stamp(&self, name: &str) -> Result<Stamp> {
        check_name(name)?;
        let k = &self.keys;
        let txn = Txn::new().and_then(vec![
            TxnOp::get(k.version(name), None),
            TxnOp::get(k.slice_writes(name), None),
            TxnOp::get(
                k.addrs(name),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
        ]);
        let r = self.txn("read a network's stamp", txn).await?;
        let ops = r.op_responses();
        let Some(v) = get_kvs(&ops[0]).first() else {
            return Err(self.not_found(name));
        };
        let leased = match &ops[2] {
            TxnOpResponse::Get(g) => g.count().unsigned_abs(),
            _ => 0,
        };
        Ok(Stamp {
            version: codec::parse_version(v.key(), v.value())?,
            slice_writes: revision(get_kvs(&ops[1]).first()),
            leased: Some(leased),
        })
    }

    /// The leases of network `name` claimed by this host.
    async fn do_host_records(&self, name: &str) -> Result<Vec<Record>> {
        let (snap, hosts) = self.load_inner(name).await?;
        Ok(snap
            .records
            .into_iter()
            .filter(|r| hosts.get(&r.addr) == Some(&self.host))
            .collect())
    }

    /// Every leased address of network `name`, grouped by the host that claimed it (its
    /// [`EtcdConfig::host`]).
    pub async fn addresses_by_host(&self, name: &str) -> Result<BTreeMap<String, Vec<Record>>> {
        let (snap, hosts) = self.load_inner(name).await?;
        let mut out: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in snap.records {
            let h = hosts.get(&r.addr).cloned().unwrap_or_default();
            out.entry(h).or_default().push(r);
        }
        Ok(out)
    }

    /// Releases, in network `name`, every lease claimed by host `host` whose owner is not in
    /// `valid` (each host knows only its own containers: it collects its own garbage without
    /// touching the other hosts' leases). Returns the released records.
    ///
    /// [`crate::ipam::Ipam::gc`] over this store is the cluster-wide form: it releases every
    /// lease whose owner is not in `valid`, whichever host claimed it.
    pub async fn gc_host(&self, name: &str, host: &str, valid: &[Owner]) -> Result<Vec<Record>> {
        let mut released: Vec<Record> = Vec::new();
        loop {
            let (snap, hosts) = self.load_inner(name).await?;
            let mut gone: Vec<Record> = snap
                .records
                .into_iter()
                .filter(|r| hosts.get(&r.addr).map(String::as_str) == Some(host))
                .filter(|r| !valid.contains(&r.owner))
                .collect();
            if gone.is_empty() {
                return Ok(released);
            }
            // In batches that fit one transaction, each a commit safe on its own, and each
            // releasing an owner's addresses together.
            gone.sort_by(|a, b| (&a.owner, a.addr).cmp(&(&b.owner, b.addr)));
            let mut cut = gone.len().min(self.release_batch());
            while cut < gone.len() && gone[cut].owner == gone[cut - 1].owner {
                cut += 1;
            }
            let last = cut == gone.len();
            gone.truncate(cut);
            let changes: Vec<Change> = gone.iter().cloned().map(Change::Release).collect();
            match self.do_commit(name, snap.version, &changes).await {
                Ok(_) if last => {
                    released.extend(gone);
                    return Ok(released);
                }
                Ok(_) => released.extend(gone),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) if released.is_empty() => return Err(e),
                Err(e) => {
                    return Err(e.context(format_args!(
                        "gc of host `{host}` in network `{name}` released {} leases in earlier \
                         batches, then failed; run it again to finish",
                        released.len()
                    )))
                }
            }
        }
    }

    /// How many releases one commit carries in a batched gc: a release takes two compares and
    /// a write, and in node slices a compare of its slice too, so a quarter of
    /// [`EtcdConfig::max_txn_ops`] leaves room for the rest of a group-committed batch.
    fn release_batch(&self) -> usize {
        (self.max_txn_ops / 4).max(1)
    }
}

/// What a batch expects of an address before it applies.
enum Pre {
    Absent,
    HeldBy(Owner),
}

/// Addresses changed by a batch, each with what it expects before and what it leaves (etcd
/// refuses a key twice in one transaction, and a group commit may claim and release one
/// address, or move a pool's cursor many times), and the last cursor per pool.
#[allow(clippy::type_complexity)]
fn fold<'c>(
    name: &str,
    changes: &'c [Change],
) -> Result<(
    BTreeMap<IpAddr, (Pre, Option<&'c Record>)>,
    BTreeMap<usize, IpAddr>,
)> {
    let mut per_addr: BTreeMap<IpAddr, (Pre, Option<&Record>)> = BTreeMap::new();
    let mut cursors: BTreeMap<usize, IpAddr> = BTreeMap::new();
    let refuse = |addr: IpAddr, what: &str| {
        Error::new(
            ErrorKind::Conflict,
            format!(
                "address {addr} in network `{name}` {what} earlier in the same batch: reload and \
                 retry"
            ),
        )
    };
    for c in changes {
        match c {
            Change::Claim(r) => match per_addr.get_mut(&r.addr) {
                Some((_, now @ None)) => *now = Some(r),
                Some((_, Some(_))) => return Err(refuse(r.addr, "was claimed")),
                None => {
                    per_addr.insert(r.addr, (Pre::Absent, Some(r)));
                }
            },
            Change::Release(r) => match per_addr.get_mut(&r.addr) {
                Some((_, now)) => {
                    if now.is_some_and(|h| h.owner == r.owner) {
                        *now = None;
                    } else {
                        return Err(refuse(r.addr, "is not held by its releaser"));
                    }
                }
                None => {
                    per_addr.insert(r.addr, (Pre::HeldBy(r.owner.clone()), None));
                }
            },
            Change::Cursor { pool, addr } => {
                cursors.insert(*pool, *addr);
            }
        }
    }
    Ok((per_addr, cursors))
}

/// `retry_for` from now; a window too long for the clock (a caller's "forever") ends in a
/// century instead of overflowing `Instant` (which panics).
pub(crate) fn deadline_after(retry_for: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(retry_for)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn timeout_err(endpoints: &str, what: &str, after: Duration, last: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "etcd at {endpoints} did not answer ({what}) within {after:?}; last error: {last}; \
             check that etcd runs, that the endpoints are right and that this host reaches them"
        ),
    )
}

/// Sorts an etcd-client error: retry (unavailable member, election, timeout, transport) or
/// fail for good (credentials, permissions, bad arguments).
fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        // TLS mistakes (an untrusted or misnamed certificate, a refused client certificate)
        // never heal on retry: say so at once.
        E::GRpcStatus(s) if s.message().contains("invalid peer certificate") => {
            Failure::Fatal(Error::new(
                ErrorKind::Protocol,
                format!(
                    "TLS with the etcd member failed: {}; check the CA given to the etcd store \
                     (it must have signed the members' certificates) and the name checked \
                     against their certificates (tls_domain; default: the endpoint's host)",
                    s.message()
                ),
            ))
        }
        E::GRpcStatus(s) if s.message().contains("received fatal alert") => {
            Failure::Fatal(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the etcd member refused the TLS handshake: {}; check the client \
                     certificate and key given to the etcd store (client_cert) and that the \
                     members' CA (--trusted-ca-file) signed it",
                    s.message()
                ),
            ))
        }
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown
            | Code::ResourceExhausted => Failure::Retry(format!("{:?}: {}", s.code(), s.message())),
            Code::Unauthenticated | Code::PermissionDenied => Failure::Fatal(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "etcd refused the request: {}; check the user, password and client \
                     certificate given to the etcd store, and the user's role on the prefix",
                    s.message()
                ),
            )),
            // etcd answers a wrong password or a missing user with InvalidArgument.
            // The host's lease expired between two keep-alives: a new one is being granted.
            Code::NotFound if s.message().contains("lease not found") => {
                Failure::Retry(format!("{:?}: {}", s.code(), s.message()))
            }
            Code::InvalidArgument
                if s.message().contains("authentication failed")
                    || s.message().contains("user name is empty") =>
            {
                Failure::Fatal(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "etcd refused the credentials: {}; check the user and password given \
                         to the etcd store",
                        s.message()
                    ),
                ))
            }
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => Failure::Fatal(
                Error::invalid(format!("etcd refused the request: {}", s.message())),
            ),
            // Something answers, but not in etcd's gRPC: HTTP/1.1, TLS to a plain client,
            // another protocol (h2 errors, HTTP statuses without a grpc-status), or a gRPC
            // server without etcd's KV service. Retrying cannot help.
            Code::Internal | Code::Unimplemented
                if s.code() == Code::Unimplemented
                    || s.message().starts_with("h2 protocol error")
                    || s.message().starts_with("grpc-status header missing") =>
            {
                Failure::Fatal(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the endpoint does not speak etcd's protocol (gRPC over HTTP/2): {:?}: \
                         {}; check that the URL names an etcd client port (2379 by default) and \
                         its scheme (https:// with a CA for a member serving TLS)",
                        s.code(),
                        s.message()
                    ),
                ))
            }
            _ => Failure::Fatal(Error::new(
                ErrorKind::Io,
                format!("etcd failed the request ({:?}): {}", s.code(), s.message()),
            )),
        },
        E::TransportError(t) => Failure::Retry(format!("transport: {t}")),
        E::IoError(i) => Failure::Retry(format!("I/O: {i}")),
        E::InvalidArgs(m) => {
            Failure::Fatal(Error::invalid(format!("bad etcd client settings: {m}")))
        }
        E::InvalidUri(u) => Failure::Fatal(Error::invalid(format!(
            "bad etcd endpoint ({u}): give URLs like http://127.0.0.1:2379"
        ))),
        other => Failure::Retry(other.to_string()),
    }
}

impl Store for EtcdStore {
    fn networks(&self) -> StoreFuture<'_, Vec<Network>> {
        Box::pin(async move { Ok(self.read_networks().await?.0) })
    }

    fn create_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, ()> {
        Box::pin(self.do_create(network))
    }

    fn delete_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.do_delete(name))
    }

    fn load<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Snapshot> {
        Box::pin(async move { Ok(self.load_inner(name).await?.0) })
    }

    fn version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(self.do_version(name))
    }

    fn changes_since<'a>(
        &'a self,
        name: &'a str,
        version: u64,
    ) -> StoreFuture<'a, Option<(Vec<Change>, u64)>> {
        Box::pin(self.do_changes_since(name, version))
    }

    fn commit<'a>(
        &'a self,
        name: &'a str,
        expected: u64,
        changes: &'a [Change],
    ) -> StoreFuture<'a, u64> {
        Box::pin(self.do_commit(name, expected, changes))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn max_releases_per_commit(&self) -> Option<usize> {
        Some(self.release_batch())
    }

    /// `retry_for` and a second: each request of the call ends by its own `retry_for`, and a
    /// call made of several ends within this.
    fn call_limit(&self) -> Option<Duration> {
        Some(self.retry_for + Duration::from_secs(1))
    }

    fn join_network<'a>(&'a self, network: &'a Network) -> StoreFuture<'a, Joined> {
        Box::pin(self.do_join(network))
    }

    fn leave_network<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Left> {
        Box::pin(self.do_leave(name))
    }

    fn check_leave<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.do_check_leave(name))
    }

    fn host_records<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<Record>> {
        Box::pin(self.do_host_records(name))
    }

    fn stamp<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Stamp> {
        Box::pin(self.do_stamp(name))
    }

    fn host_slices<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<AllocRange>>> {
        Box::pin(self.do_host_slices(name))
    }

    fn take_slice<'a>(&'a self, name: &'a str, pool: usize) -> StoreFuture<'a, AllocRange> {
        Box::pin(self.do_take_slice(name, pool))
    }

    fn commit_in_slices<'a>(
        &'a self,
        name: &'a str,
        changes: &'a [Change],
    ) -> StoreFuture<'a, Option<(u64, u64)>> {
        Box::pin(self.do_commit_in_slices(name, changes))
    }

    fn hold<'a>(
        &'a self,
        name: &'a str,
        record: &'a Record,
        holder: &'a str,
    ) -> StoreFuture<'a, super::Hold> {
        Box::pin(self.do_hold(name, record, holder))
    }

    fn unhold<'a>(
        &'a self,
        name: &'a str,
        owner: &'a Owner,
        holder: &'a str,
    ) -> StoreFuture<'a, super::Unheld> {
        Box::pin(self.do_unhold(name, owner, holder))
    }

    fn holds<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<super::Hold>> {
        Box::pin(self.do_holds(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_window_too_long_for_the_clock_does_not_panic() {
        let far = deadline_after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let near = deadline_after(Duration::from_secs(1));
        assert!(near <= Instant::now() + Duration::from_secs(1));
    }
}

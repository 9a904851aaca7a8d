//! `Ipam`: one network's allocator over a shared store, with group commit.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, Result};

use super::lease::{BootId, Lease, Owner, Quarantine, Record, Request};
use super::network::{check_name, Network};
use super::state::NetState;
use super::store::holds::check_holder;
use super::store::{
    Change, ForeignLease, Hold, Joined, Left, MemoryStore, Stamp, Store, Unheld, View, ViewQuery,
};

/// How many times a batch is recomputed when other writers keep moving the version.
const MAX_ATTEMPTS: u32 = 10_000;

/// How many calls of an `Ipam` on a store that serves views ([`Store::serves_views`]) are
/// answered from views before it loads the whole network and keeps it: a short-lived process
/// makes fewer, a long-lived one then has its cache.
const VIEW_CALLS: u32 = 4;

/// The addresses a view holds after the next-fit cursor (see [`ViewQuery::window`]); the
/// unit tests' pools fill it up, so that next-fit often has to load the whole network.
const VIEW_WINDOW: u32 = if cfg!(test) { 16 } else { 256 };

/// How many times a call on a view is recomputed when other writers keep moving the version,
/// before it loads the whole network instead.
const VIEW_ATTEMPTS: u32 = 50;

enum Op {
    Allocate(Owner, Request),
    Release(Owner),
    Gc(HashSet<Owner>),
    ReleaseStale,
    Quarantine(Owner, Vec<Quarantine>),
}

enum Reply {
    Lease(Lease),
    Released(Option<Lease>),
    /// Leases released, and whether more are left for another batch.
    Many(Vec<Lease>, bool),
    Quarantined(Vec<Quarantine>),
}

struct Pending {
    op: Op,
    reply: oneshot::Sender<Result<Reply>>,
}

struct Inner {
    network: Arc<Network>,
    store: Arc<dyn Store>,
    boot_id: Mutex<Option<BootId>>,
    /// Requests waiting for the next batch (group commit).
    queue: Mutex<Vec<Pending>>,
    /// The cached state; `None` after a failed commit (reloaded before the next use), or
    /// before the first load of an `Ipam` that starts with views.
    state: tokio::sync::Mutex<Option<NetState>>,
    /// Calls left to answer from views while `state` is empty (see [`VIEW_CALLS`]).
    views_left: AtomicU32,
}

/// Hands out the addresses of one network; cheap to clone, safe to share between tasks.
///
/// Every change goes to the [`Store`] before the call returns. Concurrent calls on one `Ipam`
/// are batched into one store commit (one fsync for the local store); calls from other
/// processes or other `Ipam`s on the same store are detected by the store's version and
/// recomputed.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use underlay::ipam::{Ipam, LocalStore, Network, Owner, Request};
/// # let dir = std::env::temp_dir().join(format!("ipam-doc-{}", std::process::id()));
/// let store = Arc::new(LocalStore::open(&dir)?); // default: LocalStore::DEFAULT_DIR
/// let net = Network::new("mac_net1", vec![
///     "172.22.16.0/24 gateway=172.22.16.1 reserve=exclude_host=172.22.16.21".parse()?,
/// ])?;
/// let ipam = Ipam::open_or_create(store, net).await?;
/// let c1 = Owner::new("bbox1", "eth0")?;
/// let lease = ipam.allocate(&c1, &Request::ip("172.22.16.10".parse().unwrap())).await?;
/// assert_eq!(lease.addresses[0].address.to_string(), "172.22.16.10/24");
/// let c2 = Owner::new("bbox2", "eth0")?;
/// let any = ipam.allocate(&c2, &Request::any()).await?;
/// assert_eq!(any.ips()[0].to_string(), "172.22.16.2");
/// // Asking again gives the same address.
/// assert_eq!(ipam.allocate(&c2, &Request::any()).await?, any);
/// assert_eq!(ipam.list().await?.len(), 2);
/// ipam.release(&c1).await?;
/// assert!(ipam.lookup(&c1).await?.is_none());
/// # ipam.release(&c2).await?;
/// # Ipam::delete(&*ipam.store(), "mac_net1").await?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), underlay::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Ipam {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ipam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipam")
            .field("network", &self.inner.network.name())
            .field("store", &self.inner.store)
            .finish()
    }
}

fn copy_err(e: &Error) -> Error {
    let c = Error::new(e.kind(), e.message());
    match e.errno() {
        Some(n) => c.with_errno(n),
        None => c,
    }
}

impl Ipam {
    /// Defines `network` in `store` (exclusive: [`ErrorKind::AlreadyExists`] if the name is
    /// taken, [`ErrorKind::Overlap`] if a pool overlaps another network of the store).
    pub async fn create(store: Arc<dyn Store>, network: Network) -> Result<Ipam> {
        store.create_network(&network).await?;
        Ipam::open(store, network.name()).await
    }

    /// Opens a network defined earlier ([`ErrorKind::NotFound`] if it is not). On a store
    /// that serves views ([`Store::serves_views`]) only the definition is read here, and the
    /// first calls read only what they need.
    pub async fn open(store: Arc<dyn Store>, name: &str) -> Result<Ipam> {
        check_name(name)?;
        let boot_id = if store.keeps_boot_ids() {
            BootId::current().ok()
        } else {
            None
        };
        let (network, state, views) = if store.serves_views() {
            (Arc::new(store.network(name).await?), None, VIEW_CALLS)
        } else {
            let snap = store.load(name).await?;
            let network = Arc::new(snap.network.clone());
            let mut state = NetState::from_snapshot(snap, network.clone())?;
            state.set_slices(store.host_slices(name).await?);
            (network, Some(state), 0)
        };
        Ok(Ipam {
            inner: Arc::new(Inner {
                network,
                store,
                boot_id: Mutex::new(boot_id),
                queue: Mutex::new(Vec::new()),
                state: tokio::sync::Mutex::new(state),
                views_left: AtomicU32::new(views),
            }),
        })
    }

    /// Opens `network`, defining it first if the store lacks it (the CNI way: the definition
    /// comes with every call). [`ErrorKind::Conflict`] if the store holds another definition
    /// under that name.
    pub async fn open_or_create(store: Arc<dyn Store>, network: Network) -> Result<Ipam> {
        match store.create_network(&network).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let ipam = Ipam::open(store, network.name()).await?;
        if *ipam.inner.network != network {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "network `{}` exists in the store with another definition:\n{}which differs \
                     from the one given:\n{}delete the network (after releasing its leases) or \
                     use the stored definition",
                    network.name(),
                    ipam.inner.network,
                    network
                ),
            ));
        }
        Ok(ipam)
    }

    /// Defines `network` for this host, or joins the identical definition the store holds
    /// already (on a store shared by hosts: defined by another host), and opens it. A shared
    /// store counts this host as a member until [`Ipam::leave`]. [`ErrorKind::Conflict`] if
    /// the store holds another definition under that name. See [`Store::join_network`].
    pub async fn join(store: Arc<dyn Store>, network: Network) -> Result<(Ipam, Joined)> {
        let joined = store.join_network(&network).await?;
        let ipam = Ipam::open(store, network.name()).await?;
        if *ipam.inner.network != network {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "network `{}` was redefined in the store while this host joined it: \
                     join again",
                    network.name()
                ),
            ));
        }
        Ok((ipam, joined))
    }

    /// Ends this host's use of network `name`: deletes it if no other host of the store uses
    /// it, else only this host's membership ([`ErrorKind::Busy`] while this host holds leases
    /// in it). See [`Store::leave_network`].
    pub async fn leave(store: &dyn Store, name: &str) -> Result<Left> {
        store.leave_network(name).await
    }

    /// A network in a fresh [`MemoryStore`] (nothing persists).
    pub async fn in_memory(network: Network) -> Result<Ipam> {
        Ipam::create(Arc::new(MemoryStore::new()), network).await
    }

    /// Removes a network from a store ([`ErrorKind::Busy`] while it holds leases).
    pub async fn delete(store: &dyn Store, name: &str) -> Result<()> {
        store.delete_network(name).await
    }

    /// The network's definition.
    pub fn network(&self) -> &Network {
        &self.inner.network
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// The boot id new leases are stamped with (default: the running kernel's, `None` if
    /// unreadable).
    pub fn boot_id(&self) -> Option<BootId> {
        self.lock_boot().clone()
    }

    /// Stamps new leases with `boot_id` (`None`: no stamp). Ignored by stores that keep no
    /// boot ids ([`Store::keeps_boot_ids`]).
    pub fn set_boot_id(&self, boot_id: Option<BootId>) {
        if self.inner.store.keeps_boot_ids() {
            *self.lock_boot() = boot_id;
        }
    }

    fn lock_boot(&self) -> std::sync::MutexGuard<'_, Option<BootId>> {
        self.inner.boot_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives `owner` one address from every pool: the ones `request` names, else the next free
    /// one after the last handed out (next-fit, wrapping around). Idempotent: an owner that
    /// already holds a lease gets it back ([`ErrorKind::Conflict`] if it names other addresses).
    pub async fn allocate(&self, owner: &Owner, request: &Request) -> Result<Lease> {
        match self
            .run(Op::Allocate(owner.clone(), request.clone()))
            .await?
        {
            Reply::Lease(l) => Ok(l),
            _ => unreachable!("allocate replies with a lease"),
        }
    }

    /// Releases `owner`'s lease; `None` if it held none (releasing twice is not an error).
    pub async fn release(&self, owner: &Owner) -> Result<Option<Lease>> {
        match self.run(Op::Release(owner.clone())).await? {
            Reply::Released(l) => Ok(l),
            _ => unreachable!("release replies with an optional lease"),
        }
    }

    /// Reserves `ip` for `owner` on behalf of `holder` (e.g. a host): a shared reservation,
    /// which several holders hold at once (each host using a gateway or an aux address of a
    /// pool on a shared store). The first hold leases the address to `owner`; later ones (any
    /// holder, the same holder again) add their hold and get the same answer. The address
    /// stays out of every allocation while any holder keeps it; [`Ipam::unhold`] drops one
    /// hold, the last one frees the address, atomically (on etcd in one transaction with the
    /// release). Refused: an address outside the pools or never allocatable
    /// ([`ErrorKind::InvalidArgument`]), one another owner leases ([`ErrorKind::AlreadyExists`]),
    /// an owner leasing another address ([`ErrorKind::Conflict`]).
    pub async fn hold(&self, owner: &Owner, ip: IpAddr, holder: &str) -> Result<Hold> {
        check_holder(holder)?;
        let net = &self.inner.network;
        let Some(pool) = net.pools().iter().find(|p| p.contains(ip)) else {
            return Err(Error::invalid(format!(
                "address {ip} is outside every pool of network `{}`: reserve an address of \
                 its subnets",
                net.name()
            )));
        };
        if let Some(why) = pool
            .excluded_reason(ip)
            .filter(|_| pool.gateway() != Some(ip))
        {
            return Err(Error::invalid(format!(
                "address {ip} of network `{}` is {why}, never handed out: it needs no \
                 reservation",
                net.name()
            )));
        }
        let record = Record {
            addr: ip,
            owner: owner.clone(),
            boot_id: None,
        };
        self.with_limit(self.inner.store.hold(net.name(), &record, holder))
            .await
    }

    /// Drops `holder`'s hold of `owner`'s shared reservation ([`Ipam::hold`]): other holders
    /// keep it ([`Unheld::Kept`]); the last holder's unhold releases the address
    /// ([`Unheld::Released`]). An owner leasing an address with no holder (a plain lease, or
    /// a last unhold cut short by a crash) is released; [`Unheld::NotHeld`] if `holder` held
    /// nothing of `owner`'s (unholding twice is not an error).
    pub async fn unhold(&self, owner: &Owner, holder: &str) -> Result<Unheld> {
        check_holder(holder)?;
        self.with_limit(
            self.inner
                .store
                .unhold(self.inner.network.name(), owner, holder),
        )
        .await
    }

    /// The shared reservations ([`Ipam::hold`]) with their holders, by address.
    pub async fn holds(&self) -> Result<Vec<Hold>> {
        self.with_limit(self.inner.store.holds(self.inner.network.name()))
            .await
    }

    /// Runs a store call within the store's [`Store::call_limit`].
    async fn with_limit<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match self.inner.store.call_limit() {
            Some(limit) => tokio::time::timeout(limit, f)
                .await
                .unwrap_or_else(|_| Err(self.over_limit(limit))),
            None => f.await,
        }
    }

    /// Releases `owner`'s lease and quarantines the addresses of `found` (conflict detection:
    /// they answered on the wire), in one commit, so that no other owner is given them in
    /// between. Only addresses `owner` held, or free ones, are quarantined (one owner per
    /// address: another's stays its own); returns the quarantines made.
    pub async fn quarantine(&self, owner: &Owner, found: &[Quarantine]) -> Result<Vec<Quarantine>> {
        for q in found {
            if let Some(m) = q.mac {
                m.check_assignable(format_args!("the machine answering for {}", q.ip))?;
            }
        }
        match self
            .run(Op::Quarantine(owner.clone(), found.to_vec()))
            .await?
        {
            Reply::Quarantined(q) => Ok(q),
            _ => unreachable!("quarantine replies with quarantines"),
        }
    }

    /// The quarantined addresses ([`Quarantine`]), by address.
    pub async fn quarantined(&self) -> Result<Vec<Quarantine>> {
        let mut v: Vec<Quarantine> = self
            .read(|s| s.list())
            .await?
            .iter()
            .filter_map(Lease::quarantine)
            .collect();
        v.sort_by_key(|q| q.ip);
        Ok(v)
    }

    /// Releases every lease whose owner is not in `valid` (CNI GC), quarantines
    /// ([`Quarantine`]) and shared reservations ([`Ipam::hold`]) excepted; returns them. On a store
    /// whose commits are bounded ([`Store::max_releases_per_commit`]) it commits in batches,
    /// each one safe on its own; if one fails, the earlier ones stay released (the error says
    /// how many) and running it again finishes.
    pub async fn gc(&self, valid: &[Owner]) -> Result<Vec<Lease>> {
        let mut valid: HashSet<Owner> = valid.iter().cloned().collect();
        // Shared reservations are their holders' to release.
        valid.extend(self.holds().await?.into_iter().map(|h| h.owner));
        self.release_in_batches("gc", || Op::Gc(valid.clone()))
            .await
    }

    /// Leases stamped with a boot id other than the current one: made before a reboot.
    /// Unstamped leases are never stale.
    pub async fn stale(&self) -> Result<Vec<Lease>> {
        let Some(boot) = self.boot_id() else {
            return Ok(Vec::new());
        };
        self.read(|s| s.stale(&boot)).await
    }

    /// Releases the leases [`Ipam::stale`] lists; returns them (in batches, like
    /// [`Ipam::gc`]).
    pub async fn release_stale(&self) -> Result<Vec<Lease>> {
        self.release_in_batches("release_stale", || Op::ReleaseStale)
            .await
    }

    /// Runs `op` (a gc-like release) until it leaves nothing for another batch.
    async fn release_in_batches(&self, what: &str, op: impl Fn() -> Op) -> Result<Vec<Lease>> {
        let mut out: Vec<Lease> = Vec::new();
        loop {
            match self.run(op()).await {
                Ok(Reply::Many(v, more)) => {
                    out.extend(v);
                    if !more {
                        out.sort_by(|a, b| a.owner.cmp(&b.owner));
                        return Ok(out);
                    }
                }
                Ok(_) => unreachable!("{what} replies with leases"),
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    return Err(e.context(format_args!(
                        "{what} on network `{}` released {} leases in earlier batches, then \
                         failed; run it again to finish",
                        self.inner.network.name(),
                        out.len()
                    )))
                }
            }
        }
    }

    /// `owner`'s lease, if any.
    pub async fn lookup(&self, owner: &Owner) -> Result<Option<Lease>> {
        let query = ViewQuery {
            owner: owner.clone(),
            ips: Vec::new(),
            window: 0,
        };
        if self.inner.views_left.load(Ordering::Relaxed) > 0
            && self.inner.state.lock().await.is_none()
            && self.take_view()
        {
            if let Some(state) = self.view_state(&query).await? {
                return Ok(state.lookup(owner));
            }
        }
        self.read(|s| s.lookup(owner)).await
    }

    /// Whether the next call may be answered from a view (and counts it).
    fn take_view(&self) -> bool {
        self.inner
            .views_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The state of what `query` asks for, read from the store's view ([`Store::view`]):
    /// every other address counts as used. `None` when the store gives no view.
    async fn view_state(&self, query: &ViewQuery) -> Result<Option<NetState>> {
        let name = self.inner.network.name();
        let Some(view) = self.inner.store.view(name, query).await? else {
            return Ok(None);
        };
        state_of_view(view, self.inner.network.clone()).map(Some)
    }

    /// Runs `op`, an allocation or a release, on a view of the store ([`Store::update`])
    /// instead of the whole network, while the cache is empty and views are left: what a
    /// short-lived process needs. An answer rests on a commit, or on a view read within this
    /// call. `None`: not served that way (the caller loads the whole network), e.g. when
    /// next-fit finds no free address in the part of the pool the view holds.
    async fn execute_in_view(&self, op: &Op, boot: &Option<BootId>) -> Option<Result<Reply>> {
        let (query, request) = match op {
            Op::Allocate(o, r) => (
                ViewQuery {
                    owner: o.clone(),
                    ips: r.ips().to_vec(),
                    window: VIEW_WINDOW,
                },
                Some(r.clone()),
            ),
            Op::Release(o) => (
                ViewQuery {
                    owner: o.clone(),
                    ips: Vec::new(),
                    window: 0,
                },
                None,
            ),
            _ => return None,
        };
        if !self.take_view() {
            return None;
        }
        let name = self.inner.network.name();
        for _ in 0..VIEW_ATTEMPTS {
            // The reply computed on the view (none: the store gave no view).
            let out: Arc<Mutex<Option<Result<Reply>>>> = Arc::default();
            let compute = {
                let (out, network) = (out.clone(), self.inner.network.clone());
                let (owner, request, boot) = (query.owner.clone(), request.clone(), boot.clone());
                Box::new(move |view: View| {
                    let mut changes = Vec::new();
                    let r = state_of_view(view, network).and_then(|mut state| match &request {
                        Some(req) => state
                            .allocate(&owner, req, &boot, &mut changes)
                            .map(Reply::Lease),
                        None => Ok(Reply::Released(state.release(&owner, &mut changes))),
                    });
                    if r.is_err() {
                        changes.clear();
                    }
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                    Ok(changes)
                })
            };
            match self.inner.store.update(name, &query, compute).await {
                Ok(false) => return None,
                Ok(true) => {
                    return match out.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        // Next-fit needs more of the pool than the view holds.
                        Some(Err(e)) if e.kind() == ErrorKind::PoolExhausted => None,
                        r => r,
                    };
                }
                // Another writer went first: read again.
                Err(e) if e.kind() == ErrorKind::Conflict => tokio::task::yield_now().await,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// The error for a network whose definition changed since it was opened.
    fn redefined(&self) -> Error {
        redefined(self.inner.network.name())
    }

    /// Every lease, sorted by owner.
    pub async fn list(&self) -> Result<Vec<Lease>> {
        self.read(|s| s.list()).await
    }

    /// The leases another tool left that underlay cannot take as its own (see
    /// [`ForeignLease`]), by address: each blocks its address, nothing else.
    pub async fn foreign_leases(&self) -> Result<Vec<ForeignLease>> {
        self.read(|s| s.foreign()).await
    }

    async fn load(&self) -> Result<NetState> {
        let name = self.inner.network.name();
        let snap = self.inner.store.load(name).await?;
        if snap.network != *self.inner.network {
            return Err(self.redefined());
        }
        let mut state = NetState::from_snapshot(snap, self.inner.network.clone())?;
        state.set_slices(self.inner.store.host_slices(name).await?);
        Ok(state)
    }

    /// Runs `f` on a state at least as new as the store's at call time.
    async fn read<T>(&self, f: impl FnOnce(&NetState) -> T) -> Result<T> {
        let mut slot = self.inner.state.lock().await;
        match self.inner.store.call_limit() {
            Some(limit) => match tokio::time::timeout(limit, self.confirm(&mut slot)).await {
                Ok(r) => r?,
                Err(_) => return Err(self.over_limit(limit)),
            },
            None => self.confirm(&mut slot).await?,
        }
        match &*slot {
            Some(s) => Ok(f(s)),
            None => unreachable!("state loaded by confirm"),
        }
    }

    /// Makes the cached state current with the store's [`Stamp`]: catches up through the
    /// changes since its version, or reloads when that does not make it match (addresses freed
    /// by an expiry, claims made in another host's node slices, history trimmed).
    async fn confirm(&self, slot: &mut Option<NetState>) -> Result<()> {
        let name = self.inner.network.name();
        let mut stamp: Stamp = self.inner.store.stamp(name).await?;
        for round in 0..2 {
            let Some(s) = slot.as_ref() else { break };
            if s.matches(&stamp) {
                return Ok(());
            }
            if s.version == stamp.version {
                break; // same version, yet different: only a reload tells what changed
            }
            self.catch_up(slot).await;
            match slot.as_ref() {
                Some(s) if s.matches(&stamp) => return Ok(()),
                // Caught up past the stamp (more commits meanwhile): compare with a new one.
                Some(s) if s.version != stamp.version && round == 0 => {
                    stamp = self.inner.store.stamp(name).await?;
                }
                _ => break,
            }
        }
        *slot = Some(self.load().await?);
        Ok(())
    }

    /// Brings the cached state up to the store's version from the changes since, or empties
    /// the slot (forcing a reload) when the store cannot tell them.
    async fn catch_up(&self, slot: &mut Option<NetState>) {
        let Some(state) = slot.as_mut() else {
            return;
        };
        let name = self.inner.network.name();
        match self.inner.store.changes_since(name, state.version).await {
            Ok(Some((changes, v))) => {
                // Replaying versioned commits over addresses of this host's slices may undo
                // a later commit made in the slices (their order is unknown here): the next
                // check against the store reloads.
                let touches = state.touches_slices(&changes);
                if state.apply_external(&changes).is_ok() {
                    state.version = v;
                    if touches {
                        state.slice_writes = None;
                    }
                } else {
                    *slot = None;
                }
            }
            _ => *slot = None,
        }
    }

    async fn run(&self, op: Op) -> Result<Reply> {
        // Fast path: nobody else is in: run alone, without a channel.
        if let Ok(mut slot) = self.inner.state.try_lock() {
            if self.lock_queue().is_empty() {
                let mut out = self.execute(&mut slot, &[op]).await;
                drop(slot);
                return out.pop().expect("one reply per op");
            }
            // Others are waiting: join their batch below (we hold the lock: process now).
            let (tx, rx) = oneshot::channel();
            self.lock_queue().push(Pending { op, reply: tx });
            self.drain(&mut slot).await;
            drop(slot);
            return rx.await.unwrap_or_else(|_| Err(lost()));
        }
        let (tx, mut rx) = oneshot::channel();
        self.lock_queue().push(Pending { op, reply: tx });
        // Either the current holder's next batch answers us, or we get the state and run the
        // queued requests (ours included) as one batch.
        tokio::select! {
            biased;
            r = &mut rx => return r.unwrap_or_else(|_| Err(lost())),
            mut slot = self.inner.state.lock() => {
                self.drain(&mut slot).await;
            }
        }
        rx.await.unwrap_or_else(|_| Err(lost()))
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn drain(&self, slot: &mut Option<NetState>) {
        let batch = std::mem::take(&mut *self.lock_queue());
        if batch.is_empty() {
            return;
        }
        let (ops, txs): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
        let out = self.execute(slot, &ops).await;
        for (tx, r) in txs.into_iter().zip(out) {
            let _ = tx.send(r);
        }
    }

    /// Computes `ops` on the cached state and commits their changes as one batch.
    ///
    /// An answer either rests on a commit that succeeded, or on a cache confirmed current with
    /// the store within this batch: an allocation refused because the cache holds an address
    /// or finds the pool full, an owner found to hold nothing, a lease given back as it is, a
    /// gc, are answered only after [`Ipam::confirm`] (so addresses freed by an etcd lease
    /// expiry or changed in another host's node slices are seen before "exhausted").
    ///
    /// Bounded by the store's [`Store::call_limit`]: past it every op fails with
    /// [`ErrorKind::Timeout`] (the batch's commit may or may not have applied; the cache is
    /// dropped, so the next call reloads).
    async fn execute(&self, slot: &mut Option<NetState>, ops: &[Op]) -> Vec<Result<Reply>> {
        let Some(limit) = self.inner.store.call_limit() else {
            return self.execute_unbounded(slot, ops).await;
        };
        match tokio::time::timeout(limit, self.execute_unbounded(slot, ops)).await {
            Ok(replies) => replies,
            Err(_) => {
                *slot = None;
                let e = self.over_limit(limit);
                ops.iter().map(|_| Err(copy_err(&e))).collect()
            }
        }
    }

    /// The error of a call that took longer than the store's [`Store::call_limit`].
    fn over_limit(&self, limit: std::time::Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "network `{}`: the store did not finish the call within {limit:?} (its retry \
                 limit; check that the store's servers run and that this host reaches them); \
                 a change it carried may or may not have applied: look the owner up, then retry",
                self.inner.network.name()
            ),
        )
    }

    async fn execute_unbounded(
        &self,
        slot: &mut Option<NetState>,
        ops: &[Op],
    ) -> Vec<Result<Reply>> {
        let boot = self.boot_id();
        let name = self.inner.network.name();
        let mut attempt = 0;
        let mut confirmed = false;
        let fail = |e: &Error| ops.iter().map(|_| Err(copy_err(e))).collect::<Vec<_>>();
        // Other writers of the network wait from here to the commit, where the store can
        // hold them off (host-local's layout): the batch is computed on current state
        // rather than refused and recomputed.
        let _update = match self.inner.store.lock_for_update(name).await {
            Ok(held) => held,
            Err(e) => return fail(&e),
        };
        if let ([op], None) = (ops, &slot) {
            if let Some(r) = self.execute_in_view(op, &boot).await {
                return vec![r];
            }
        }
        // The most changes a gc-like op adds to a batch (the store's bound).
        let budget = self
            .inner
            .store
            .max_releases_per_commit()
            .unwrap_or(usize::MAX);
        loop {
            if slot.is_none() {
                match self.load().await {
                    Ok(s) => *slot = Some(s),
                    Err(e) => return fail(&e),
                }
            }
            // Out of the slot while the batch is in flight: if this future is dropped before
            // the commit's outcome is known, the slot stays empty and the next call reloads.
            let Some(mut state) = slot.take() else {
                unreachable!("state loaded above")
            };
            let cursors = state.cursors();
            let mut changes: Vec<Change> = Vec::new();
            let mut cache_only = false;
            let mut replies: Vec<Result<Reply>> = Vec::with_capacity(ops.len());
            for op in ops {
                let before = changes.len();
                let r = match op {
                    Op::Allocate(o, r) => {
                        state.allocate(o, r, &boot, &mut changes).map(Reply::Lease)
                    }
                    Op::Release(o) => Ok(Reply::Released(state.release(o, &mut changes))),
                    Op::Quarantine(o, found) => Ok(Reply::Quarantined(state.quarantine(
                        o,
                        found,
                        &boot,
                        &mut changes,
                    ))),
                    Op::Gc(valid) => {
                        cache_only = true; // it needs every lease
                        let (v, more) = state.release_where(
                            |o, _| !valid.contains(o) && Quarantine::from_owner(o).is_none(),
                            budget,
                            &mut changes,
                        );
                        Ok(Reply::Many(v, more))
                    }
                    Op::ReleaseStale => {
                        cache_only = true;
                        let (v, more) = match &boot {
                            Some(b) => state.release_where(
                                |_, r| matches!(&r.boot_id, Some(x) if x != b),
                                budget,
                                &mut changes,
                            ),
                            None => (Vec::new(), false),
                        };
                        Ok(Reply::Many(v, more))
                    }
                };
                cache_only |= match &r {
                    Ok(_) => changes.len() == before,
                    Err(e) => matches!(
                        e.kind(),
                        ErrorKind::PoolExhausted | ErrorKind::AlreadyExists | ErrorKind::Conflict
                    ),
                };
                replies.push(r);
            }
            let wants = state.take_slice_wants();
            if !wants.is_empty() && attempt < MAX_ATTEMPTS {
                // This host's slices of a pool are full: take another slice, compute again.
                // None left: confirm the cache first (an address in the slices may have come
                // free meanwhile), then allocate in that pool as without slices.
                attempt += 1;
                let undone = state.undo(&changes, cursors).is_ok();
                let mut exhausted = Vec::new();
                for pool in wants {
                    match self.inner.store.take_slice(name, pool).await {
                        Ok(r) => state.add_slice(r),
                        Err(e) if e.kind() == ErrorKind::PoolExhausted => exhausted.push(pool),
                        Err(e) => {
                            if undone {
                                *slot = Some(state);
                            }
                            return fail(&e);
                        }
                    }
                }
                if !confirmed && !exhausted.is_empty() {
                    confirmed = true;
                    if undone {
                        *slot = Some(state);
                    }
                    if let Err(e) = self.confirm(slot).await {
                        return fail(&e);
                    }
                    continue;
                }
                for pool in exhausted {
                    state.slices_exhausted(pool);
                }
                if undone {
                    *slot = Some(state);
                }
                continue;
            }
            if cache_only && !confirmed {
                // Take the batch back, make sure the cache is current, compute again.
                confirmed = true;
                if state.undo(&changes, cursors).is_ok() {
                    *slot = Some(state);
                }
                if let Err(e) = self.confirm(slot).await {
                    return fail(&e);
                }
                continue;
            }
            if changes.is_empty() {
                *slot = Some(state);
                return replies;
            }
            // Claims and releases inside this host's node slices commit without the network's
            // version (no contention with other hosts); anything else through it.
            let in_slices = state.all_in_slices(&changes);
            let committed = if in_slices {
                self.inner
                    .store
                    .commit_in_slices(name, &changes)
                    .await
                    .map(|w| {
                        state.slice_writes = match (w, state.slice_writes) {
                            (Some((prev, now)), Some(mine)) if prev == mine => Some(now),
                            _ => None, // others wrote in their slices meanwhile
                        };
                    })
            } else {
                self.inner
                    .store
                    .commit(name, state.version, &changes)
                    .await
                    .map(|v| state.version = v)
            };
            match committed {
                Ok(()) => {
                    *slot = Some(state);
                    return replies;
                }
                Err(e) if e.kind() == ErrorKind::Conflict && attempt < MAX_ATTEMPTS => {
                    // Another writer went first: take back this batch, catch up, recompute.
                    attempt += 1;
                    confirmed = false;
                    let before = state.version;
                    if state.undo(&changes, cursors).is_ok() && !in_slices {
                        *slot = Some(state);
                        self.catch_up(slot).await;
                        if matches!(slot, Some(s) if s.version == before) {
                            // Refused at the same version: the cache disagrees with the store.
                            *slot = None;
                        }
                    }
                    // A commit in the slices refused: an address there was taken (by another
                    // process of this host, or a host without slices) or a slice was lost;
                    // the slot stays empty: reload, slices included.
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    // The slot stays empty: the next call reloads what the store holds.
                    let e = if e.kind() == ErrorKind::Conflict {
                        Error::new(
                            ErrorKind::Busy,
                            format!(
                                "network `{name}`: gave up after {attempt} attempts while other \
                                 writers kept changing it ({e}); retry later"
                            ),
                        )
                    } else {
                        e
                    };
                    for r in replies.iter_mut().filter(|r| r.is_ok()) {
                        *r = Err(copy_err(&e));
                    }
                    return replies;
                }
            }
        }
    }
}

/// The state of `view` ([`NetState::from_view`]), refused if the network was redefined.
fn state_of_view(view: View, network: Arc<Network>) -> Result<NetState> {
    if view.snapshot.network != *network {
        return Err(redefined(network.name()));
    }
    NetState::from_view(view, network)
}

fn redefined(name: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("network `{name}` was redefined in the store since it was opened: open it again"),
    )
}

fn lost() -> Error {
    Error::new(
        ErrorKind::Io,
        "an IPAM request was dropped before it was answered (the task running its batch was \
         cancelled): retry it; look the owner up first, it may hold a lease",
    )
}

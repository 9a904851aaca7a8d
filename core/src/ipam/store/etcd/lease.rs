//! Per-host leases (optional, [`super::EtcdConfig::host_lease`]): the host's address keys are
//! attached to one etcd lease that a background task keeps alive while the store lives; when
//! the host dies (or stalls past the TTL) etcd deletes them and the addresses come free.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use tokio::task::JoinHandle;

/// The host's lease: its id (replaced if the lease expired) and the task keeping it alive.
/// Dropped with the last clone of the store: the task stops, the lease is left to expire (it
/// is not revoked: the containers may outlive this process, and a store connecting again
/// adopts the claims before the TTL runs out).
pub(super) struct HostLease {
    id: Arc<AtomicI64>,
    ttl: Duration,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HostLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLease")
            .field("id", &self.id())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Drop for HostLease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostLease {
    /// Starts keeping lease `id` (granted with `ttl`) alive; on expiry a new one is granted.
    pub(super) fn start(client: Client, id: i64, ttl: Duration, host: String) -> HostLease {
        let id = Arc::new(AtomicI64::new(id));
        let task = tokio::spawn(keep_alive(client, id.clone(), ttl, host));
        HostLease { id, ttl, task }
    }

    /// The lease the next claims are attached to.
    pub(super) fn id(&self) -> i64 {
        self.id.load(Ordering::Acquire)
    }

    /// The lease's time to live.
    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Whole seconds, at least one (etcd's unit).
pub(super) fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis().div_ceil(1000))
        .unwrap_or(i64::MAX)
        .max(1)
}

/// Refreshes the lease three times per TTL. A failed stream is reopened; a lease found expired
/// (the host stalled or was cut off longer than the TTL: its claims are gone) is replaced by a
/// new one so that later claims work, with a warning.
async fn keep_alive(client: Client, id: Arc<AtomicI64>, ttl: Duration, host: String) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut lc = client.lease_client();
    loop {
        let current = id.load(Ordering::Acquire);
        let expired = match lc.keep_alive(current).await {
            Ok((mut keeper, mut stream)) => loop {
                if keeper.keep_alive().await.is_err() {
                    break false;
                }
                match tokio::time::timeout(period, stream.message()).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                    Ok(Ok(Some(_))) => break true,
                    _ => break false, // stream broken or slow: reopen it
                }
                tokio::time::sleep(period).await;
            },
            Err(_) => false,
        };
        if expired {
            tracing::warn!(
                host = %host,
                lease = current,
                "the etcd lease of this host expired: its claims were freed (other hosts may \
                 take those addresses); granting a new lease for later claims"
            );
            match lc.grant(ttl_secs(ttl), None).await {
                Ok(g) => id.store(g.id(), Ordering::Release),
                Err(_) => tokio::time::sleep(period).await,
            }
        } else {
            tokio::time::sleep(period.min(Duration::from_millis(500))).await;
        }
    }
}

//! Per-host leases (optional, [`super::EtcdConfig::host_lease`]): the host's address keys are
//! attached to one etcd lease per host name, shared by every process of that host and kept
//! alive by each of them while it runs; when the last one dies (or all stall past the TTL)
//! etcd deletes the keys and the addresses come free.
//!
//! The host's lease is found through the key `P ipam/hostlease/<host>`, which is attached to
//! the lease itself: it exists exactly while the lease lives. A process joins the lease the key
//! names; only when there is none (or it has expired) does it grant a new one and put the key,
//! in one transaction that compares the key's lease with the one it saw, so of two processes
//! racing exactly one makes the lease and the other joins it. Claims never move between leases:
//! a claim lives as long as the lease it was made under.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::task::JoinHandle;

/// The host's lease: its id (replaced if the lease expired) and the task keeping it alive.
/// Dropped with the last clone of the store: the task stops, the lease is left to expire (it
/// is not revoked: other processes of the host may use it, the containers may outlive this
/// process, and a process of the host connecting within the TTL joins it again).
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
    /// Starts keeping the host's lease `id` (of TTL `ttl`, named by key `key`) alive; on
    /// expiry the task joins or makes the host's next lease ([`join_or_make`]).
    pub(super) fn start(
        client: Client,
        id: i64,
        ttl: Duration,
        host: String,
        key: String,
    ) -> HostLease {
        let id = Arc::new(AtomicI64::new(id));
        let task = tokio::spawn(keep_alive(client, id.clone(), ttl, host, key));
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

/// Joins the live lease that key `key` names, or, when there is none, grants one of `secs`
/// seconds and puts the key with it (if the key's lease is still the one seen: another process
/// may have made the host's lease meanwhile, then that one is joined and the grant revoked).
/// Returns the lease and its TTL in seconds. Safe to call again after any failure: a lease
/// granted whose key was not put expires by itself, holding nothing.
pub(super) async fn join_or_make(
    client: &Client,
    key: &str,
    secs: i64,
) -> Result<(i64, i64), etcd_client::Error> {
    let (mut kv, mut lc) = (client.kv_client(), client.lease_client());
    loop {
        let seen = kv
            .get(key, None)
            .await?
            .kvs()
            .first()
            .map_or(0, |kv| kv.lease());
        if seen != 0 {
            let t = lc.time_to_live(seen, None).await?;
            if t.ttl() > 0 {
                return Ok((seen, t.granted_ttl()));
            }
            // Expired, not yet revoked: it can never be renewed; replace it.
        }
        let granted = lc.grant(secs, None).await?;
        let mine = granted.id();
        let txn = Txn::new()
            .when(vec![Compare::lease(key, CompareOp::Equal, seen)])
            .and_then(vec![TxnOp::put(
                key,
                format!("{mine:x}"),
                Some(PutOptions::new().with_lease(mine)),
            )])
            .or_else(vec![TxnOp::get(key, None)]);
        let r = kv.txn(txn).await?;
        if r.succeeded() {
            return Ok((mine, granted.ttl()));
        }
        let winner = r.op_responses().first().and_then(|o| match o {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.lease()),
            _ => None,
        });
        if winner != Some(mine) {
            // Another process made the host's lease first: join it (next round).
            let _ = lc.revoke(mine).await;
        }
    }
}

/// Refreshes the lease three times per TTL. A failed stream is reopened; a lease found expired
/// (every process of the host stalled or was cut off longer than the TTL: its claims are
/// gone) is replaced by the host's next lease so that later claims work, with a warning.
async fn keep_alive(client: Client, id: Arc<AtomicI64>, ttl: Duration, host: String, key: String) {
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
                 take those addresses); joining or granting the host's next lease for later \
                 claims"
            );
            match join_or_make(&client, &key, ttl_secs(ttl)).await {
                Ok((next, _)) => id.store(next, Ordering::Release),
                Err(_) => tokio::time::sleep(period).await,
            }
        } else {
            tokio::time::sleep(period.min(Duration::from_millis(500))).await;
        }
    }
}

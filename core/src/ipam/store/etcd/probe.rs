//! Endpoints that cannot serve: with several endpoints, `connect` asks each one alone and
//! leaves out of the balanced channel those that answer in another protocol (for good: an HTTP
//! server listed by mistake beside the members made random calls fail with `Protocol`) and
//! those that do not answer while a member did (a silent endpoint made calls wait for their
//! timeout, then fail with `Timeout`); a task asks the silent ones again and puts each back
//! once it answers.

use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};

use super::{classify, Failure};

/// How long `connect` still waits for the other endpoints' answers once one member answered.
const GRACE: Duration = Duration::from_millis(300);

/// What the endpoints answered when asked alone.
#[derive(Debug, Default)]
pub(super) struct Probed {
    /// The endpoints to balance over now.
    pub(super) usable: Vec<String>,
    /// Endpoints that did not answer while a member did: to be put back once they answer.
    pub(super) silent: Vec<String>,
    /// Endpoints that answered in another protocol than etcd's, each with what it answered.
    pub(super) not_etcd: Vec<(String, String)>,
}

/// Asks each of `endpoints` alone (when there are several). Endpoints that answer in another
/// protocol than etcd's ([`ErrorKind::Protocol`]) are left out, each named in a warning; those
/// that do not answer within `GRACE` after a member did are left out for now. When no endpoint
/// answers (by `deadline`), every endpoint but the non-etcd ones is used (members may be
/// starting). If every endpoint is not etcd, the error names each; an answer failing for good
/// otherwise (wrong credentials) is returned as it is.
pub(super) async fn probe(
    endpoints: &[String],
    options: &ConnectOptions,
    probe_key: &str,
    per_endpoint: Duration,
    deadline: Instant,
) -> Result<Probed> {
    if endpoints.len() < 2 {
        return Ok(Probed {
            usable: endpoints.to_vec(),
            ..Probed::default()
        });
    }
    let mut probes: FuturesUnordered<_> = endpoints
        .iter()
        .map(|ep| async move { (ep, ask(ep, options, probe_key, per_endpoint).await) })
        .collect();
    let mut answered: Vec<String> = Vec::new();
    let mut not_etcd: Vec<(String, String)> = Vec::new();
    let mut until = deadline;
    loop {
        let next = tokio::time::timeout_at(until.into(), probes.next()).await;
        let Ok(Some((ep, answer))) = next else {
            break; // every endpoint answered, or no more waiting
        };
        match answer {
            Ok(true) => {
                answered.push(ep.clone());
                until = until.min(Instant::now() + GRACE);
            }
            Ok(false) => {} // no answer: maybe a member down
            Err(e) if e.kind() == ErrorKind::Protocol => {
                not_etcd.push((ep.clone(), e.message().to_string()))
            }
            Err(e) => return Err(e.context(format_args!("etcd at {ep}"))),
        }
    }
    if not_etcd.len() == endpoints.len() {
        let each: Vec<String> = not_etcd
            .iter()
            .map(|(ep, m)| format!("{ep}: {m}"))
            .collect();
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "no etcd endpoint speaks etcd's protocol: {}",
                each.join("; ")
            ),
        ));
    }
    for (ep, m) in &not_etcd {
        tracing::warn!(
            endpoint = %ep,
            "left out etcd endpoint {ep}, which answers but is not etcd: {m}; fix the endpoint list"
        );
    }
    let rest = endpoints
        .iter()
        .filter(|ep| !not_etcd.iter().any(|(b, _)| b == *ep))
        .cloned();
    if answered.is_empty() {
        return Ok(Probed {
            usable: rest.collect(),
            silent: Vec::new(),
            not_etcd,
        });
    }
    let silent: Vec<String> = rest.filter(|ep| !answered.contains(ep)).collect();
    let usable = endpoints
        .iter()
        .filter(|ep| answered.contains(ep))
        .cloned()
        .collect();
    Ok(Probed {
        usable,
        silent,
        not_etcd,
    })
}

/// Asks endpoint `ep` alone: `Ok(true)` if it answered as etcd, `Ok(false)` if it did not
/// answer (in time, or the connection failed), the error if it answered with one for good.
async fn ask(ep: &str, options: &ConnectOptions, key: &str, limit: Duration) -> Result<bool> {
    let answer = tokio::time::timeout(limit, async {
        let mut c = Client::connect([ep], Some(options.clone())).await?;
        c.get(key, None).await.map(|_| ())
    })
    .await;
    match answer {
        Ok(Ok(())) => Ok(true),
        Ok(Err(e)) => match classify(&e) {
            Failure::Fatal(err) => Err(err),
            Failure::Retry(_) => Ok(false),
        },
        Err(_) => Ok(false),
    }
}

/// The task putting silent endpoints back into the balanced channel once they answer; stopped
/// with the last clone of the store.
pub(super) struct Readmit {
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Readmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readmit").finish_non_exhaustive()
    }
}

impl Drop for Readmit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Readmit {
    /// Asks each of `silent` again every `period`; adds those that answer to `client`.
    pub(super) fn start(
        client: Client,
        options: ConnectOptions,
        key: String,
        mut silent: Vec<String>,
        period: Duration,
    ) -> Readmit {
        let task = tokio::spawn(async move {
            while !silent.is_empty() {
                tokio::time::sleep(period).await;
                let mut still = Vec::new();
                for ep in silent {
                    match ask(&ep, &options, &key, period).await {
                        Ok(true) if client.add_endpoint(&ep).await.is_ok() => {
                            tracing::info!(endpoint = %ep, "etcd endpoint {ep} answers again")
                        }
                        _ => still.push(ep),
                    }
                }
                silent = still;
            }
        });
        Readmit { task }
    }
}

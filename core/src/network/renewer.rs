//! The renewer of a whole state directory: every DHCP network's due leases, for a process that
//! renews on behalf of front-ends that live one call long (the CNI plugin's `dhcp-renewer`).

use std::time::SystemTime;

use super::{DhcpRenewal, Networks};
use crate::error::{ErrorKind, Result};

impl Networks {
    /// The renewer's tick over the whole state directory: [`Network::renew_due_dhcp`] of every
    /// DHCP network it holds now (networks created since the last call included), concurrently;
    /// one [`DhcpRenewal`] per endpoint that was due (past T1) or had lost its lease. A DHCP
    /// network whose IPAM network this handle's store does not hold (made through another
    /// store) is skipped with a warning; pooled networks are not looked at. An endpoint
    /// disconnected while the tick ran is left out.
    ///
    /// [`Network::renew_due_dhcp`]: super::Network::renew_due_dhcp
    pub async fn renew_due_dhcp(&self) -> Result<Vec<DhcpRenewal>> {
        let mut nets = Vec::new();
        for r in self.records()?.into_iter().filter(|r| r.dhcp.is_some()) {
            match self.get(&r.name).await {
                Ok(n) => nets.push(n),
                Err(e) => {
                    tracing::warn!(network = %r.name, error = %e, "DHCP network skipped by the renewer: it cannot be opened")
                }
            }
        }
        let done = futures::future::join_all(nets.iter().map(|n| n.renew_due_dhcp())).await;
        let mut out = Vec::new();
        for (net, d) in nets.iter().zip(done) {
            for r in d? {
                // Disconnected between the listing and its renewal (a CNI DEL meanwhile): not
                // a failure of the renewer, and nothing to report.
                let gone = matches!(&r.result, Err(e) if e.kind() == ErrorKind::NotFound)
                    && net.endpoint(&r.container_id, &r.ifname)?.is_none();
                if !gone {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// When the next DHCP renewal of the state directory is due: the earliest T1
    /// ([`DhcpLease::renew_at`]) of its DHCP endpoints, the current time when one has lost its
    /// lease (the renewer asks again), `None` when no endpoint holds a lease that ends. A
    /// renewer sleeps until then (with a cap, so that endpoints connected meanwhile are seen).
    ///
    /// [`DhcpLease::renew_at`]: crate::DhcpLease::renew_at
    pub async fn next_dhcp_renewal(&self) -> Result<Option<SystemTime>> {
        let mut next: Option<SystemTime> = None;
        for r in self.records()?.into_iter().filter(|r| r.dhcp.is_some()) {
            let net = match self.get(&r.name).await {
                Ok(n) => n,
                Err(_) => continue, // renew_due_dhcp says why
            };
            for ep in net.endpoints()? {
                if ep.pending.is_some() {
                    continue;
                }
                let due = match &ep.dhcp {
                    None => Some(SystemTime::now()),
                    Some(l) => l.renew_at(),
                };
                if let Some(t) = due {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        Ok(next)
    }
}

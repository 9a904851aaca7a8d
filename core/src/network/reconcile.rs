//! Recovery after a reboot or a crash: make the kernel match the records, and the records match
//! the kernel, without touching anything that is not underlay's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use ipnet::IpNet;

use super::endpoint::endpoint_file_name;
use super::spec::Record;
use super::{parent, shim, Network, Networks, MARK};
use crate::error::{Error, ErrorKind, Result};
use crate::ipam::Owner;
use crate::types::IfName;

/// An endpoint whose namespace is gone, whose link is gone from its namespace (its parent was
/// deleted, or a disconnect died midway), or whose connect died midway; its link, lease and
/// record were removed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GoneEndpoint {
    /// Network.
    pub network: String,
    /// Container id.
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
    /// The addresses given back to the pools.
    pub addresses: Vec<IpNet>,
}

/// What [`Networks::reconcile`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// VLAN parents (and internal dummies) recreated.
    pub recreated_parents: Vec<String>,
    /// Host shims recreated, with their address and routes.
    pub recreated_shims: Vec<String>,
    /// Endpoints whose namespace is gone.
    pub gone_endpoints: Vec<GoneEndpoint>,
    /// Links marked as underlay's in the host namespace that no network owns, deleted.
    pub removed_links: Vec<String>,
}

impl ReconcileReport {
    /// Nothing needed doing.
    pub fn is_clean(&self) -> bool {
        self.recreated_parents.is_empty()
            && self.recreated_shims.is_empty()
            && self.gone_endpoints.is_empty()
            && self.removed_links.is_empty()
    }
}

impl Network {
    /// Undoes every endpoint of this network that is gone, each judged and undone under its
    /// lock (so never one that a connect or disconnect is changing, nor a record put there
    /// after it was judged); removes temporary files of killed writers. `live` caches where
    /// namespaces can be opened.
    async fn repair_endpoints(
        &self,
        live: &mut Option<HashMap<u64, PathBuf>>,
    ) -> Result<(Vec<GoneEndpoint>, Vec<Error>)> {
        let mut gone = Vec::new();
        let mut errors = Vec::new();
        let files = self.nets.record_files();
        // Prepared endpoints whose link is not in the host namespace: judged together, their
        // locks held, after one look through every other namespace.
        let mut handed_off = Vec::new();
        let mut judged = Vec::new();
        for name in self.endpoint_files()? {
            // Held by a call under way: that call decides.
            let Some(held) = files.try_lock(self.name(), &name)? else {
                continue;
            };
            let ep = match self.read_endpoint_file(&name) {
                Ok(Some(ep)) => ep,
                Ok(None) => continue,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if ep.handoff.is_some() && ep.pending.is_none() {
                match ep.own_link(self.host(), self.ipam(), false).await {
                    Ok(Some(_)) => {}
                    Ok(None) => handed_off.push((ep, held)),
                    Err(e) => errors.push(e),
                }
                continue;
            }
            match self.is_gone(&ep, live).await {
                Ok(true) => judged.push((ep, held)),
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
        if !handed_off.is_empty() {
            // A namespace that could not be looked into may hold any of them: judge none.
            let moved = match self.moved_links().await {
                Ok(m) => m,
                Err(e) => {
                    errors.push(e);
                    handed_off.clear();
                    Vec::new()
                }
            };
            for (ep, held) in handed_off {
                match self.handed_off_link_gone(&ep, &moved).await {
                    Ok(true) => judged.push((ep, held)),
                    Ok(false) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        for (ep, held) in judged {
            match self
                .disconnect_locked(&ep.container_id, &ep.ifname, true, &held)
                .await
            {
                Ok(released) => gone.push(self.gone(
                    ep.container_id,
                    ep.ifname,
                    if released.is_empty() {
                        ep.addresses
                    } else {
                        released
                    },
                )),
                Err(e) => errors.push(e),
            }
        }
        if let Err(e) = files.sweep(self.name(), &self.nets.endpoints_dir(self.name())) {
            errors.push(e);
        }
        Ok((gone, errors))
    }

    /// Releases the leases of an earlier boot that no endpoint uses: not a shim's (the shim is
    /// made again), and only under the endpoint's lock with no record there (a container
    /// restarted under its id after the reboot may have connected with that lease).
    async fn release_stale_leases(&self) -> Result<(Vec<GoneEndpoint>, Vec<Error>)> {
        let files = self.nets.record_files();
        let mut held = Vec::new();
        let mut stale = Vec::new();
        for l in self.ipam().stale().await? {
            if shim::is_shim_owner(&l.owner) {
                continue;
            }
            let name = endpoint_file_name(l.owner.container_id(), l.owner.ifname().as_str());
            if let Some(lock) = files.try_lock(self.name(), &name)? {
                if self.read_endpoint_file(&name)?.is_none() {
                    held.push(lock);
                    stale.push(l);
                }
            }
        }
        // At once: the releases share the IPAM's group commits.
        let released =
            futures::future::join_all(stale.iter().map(|l| self.ipam().release(&l.owner))).await;
        let mut gone = Vec::new();
        let mut errors = Vec::new();
        for (l, outcome) in stale.into_iter().zip(released) {
            match outcome {
                Ok(_) => gone.push(self.gone(
                    l.owner.container_id().to_string(),
                    l.owner.ifname().as_str().to_string(),
                    l.addresses.iter().map(|a| a.address).collect(),
                )),
                Err(e) => errors.push(e),
            }
        }
        drop(held);
        Ok((gone, errors))
    }

    /// Releases everything of this network that `valid` does not name (CNI GC): each
    /// endpoint's link, lease and record, and each lease that has no endpoint record (made by
    /// another program on this host's store, e.g. the host-local plugin on its data directory,
    /// or left by a process that died; on a store shared by hosts, etcd, only the leases this
    /// host claimed). Each is undone under its endpoint's lock; one that a
    /// connect or disconnect holds at the moment is left to that call. The host shim's lease is
    /// kept. Returns what was released; failures are reported together after the rest is done.
    pub async fn gc(&self, valid: &[Owner]) -> Result<Vec<GoneEndpoint>> {
        let keep: HashSet<(&str, &str)> = valid
            .iter()
            .map(|o| (o.container_id(), o.ifname().as_str()))
            .collect();
        let mut owners: BTreeSet<(String, String)> = self
            .endpoints()?
            .into_iter()
            .map(|ep| (ep.container_id, ep.ifname))
            .collect();
        // On a shared store (etcd), only this host's leases: the others are their hosts'.
        for r in self.ipam().store().host_records(self.name()).await? {
            if shim::is_shim_owner(&r.owner) {
                continue;
            }
            let o = (
                r.owner.container_id().to_string(),
                r.owner.ifname().as_str().to_string(),
            );
            owners.insert(o);
        }
        let files = self.nets.record_files();
        let mut gone = Vec::new();
        let mut errors = Vec::new();
        for (container_id, ifname) in owners {
            if keep.contains(&(container_id.as_str(), ifname.as_str())) {
                continue;
            }
            let name = endpoint_file_name(&container_id, &ifname);
            let Some(held) = files.try_lock(self.name(), &name)? else {
                continue; // a call on this endpoint is under way: it is that call's
            };
            match self
                .disconnect_locked(&container_id, &ifname, true, &held)
                .await
            {
                Ok(addresses) => gone.push(self.gone(container_id, ifname, addresses)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(gone)
        } else {
            Err(Error::multiple(
                format!(
                    "gc of network `{}` released {} endpoints, then failed on others; run it again to finish",
                    self.name(),
                    gone.len()
                ),
                errors,
            ))
        }
    }

    /// What the report says of an endpoint of this network that was undone.
    fn gone(&self, container_id: String, ifname: String, addresses: Vec<IpNet>) -> GoneEndpoint {
        GoneEndpoint {
            network: self.name().to_string(),
            container_id,
            ifname,
            addresses,
        }
    }

    /// Whether `ep` (read under its lock) is gone: a pending record (its connect is over, the
    /// lock being free), a namespace that no longer exists anywhere on this host, or a
    /// namespace without the endpoint's link.
    async fn is_gone(
        &self,
        ep: &super::Endpoint,
        live: &mut Option<HashMap<u64, PathBuf>>,
    ) -> Result<bool> {
        if ep.pending.is_some() {
            return Ok(true);
        }
        let Some(ns) = ep.locate_netns(live) else {
            return Ok(true);
        };
        let h = crate::handle::Handle::for_netns(&ns).await?;
        Ok(ep
            .own_link(&h, self.ipam(), self.dhcp().is_some())
            .await?
            .is_none())
    }
}

impl super::Network {
    /// Whether the link of a prepared endpoint ([`super::Network::prepare`]), read under its
    /// lock, is in no namespace of this host: not in the host namespace under its temporary
    /// name, and not among `moved` (see [`Self::moved_links`]): a link in underlay's endpoint
    /// group with the recorded MAC (for an ipvlan, whose MAC is the parent's: one carrying a
    /// recorded address, or none yet). The host is looked at again last, so a link the runtime
    /// moved back meanwhile (Docker does on `Leave`) is found.
    async fn handed_off_link_gone(
        &self,
        ep: &super::Endpoint,
        moved: &[MovedLink],
    ) -> Result<bool> {
        let ipvlan = matches!(self.driver(), super::Driver::Ipvlan(..));
        let found = moved.iter().any(|l| {
            (ep.mac.is_none() || l.mac == ep.mac)
                && (!ipvlan
                    || l.addresses.is_empty()
                    || l.addresses
                        .iter()
                        .any(|a| ep.addresses.iter().any(|e| e.addr() == *a)))
        });
        if found {
            return Ok(false);
        }
        Ok(ep
            .own_link(self.host(), self.ipam(), false)
            .await?
            .is_none())
    }

    /// The links in underlay's endpoint group in every live namespace but the host's, each
    /// namespace opened through any path that still works. Listed twice, each time with a fresh
    /// list of namespaces, so that a namespace whose path went stale (its process exited) or
    /// that a runtime made meanwhile is not missed. A namespace that opens but cannot be read
    /// (out of descriptors, say) fails the whole look: what it holds is unknown.
    async fn moved_links(&self) -> Result<Vec<MovedLink>> {
        let host_inode = self.host().netns().inode();
        let mut out = Vec::new();
        for _ in 0..2 {
            for (inode, paths) in crate::netns::live_netns_all_paths() {
                if inode == host_inode {
                    continue;
                }
                // No path opens it any more: it is gone, and its links with it.
                let Some(ns) = paths
                    .iter()
                    .filter_map(|p| crate::netns::Netns::open_path(p).ok())
                    .find(|ns| ns.inode() == inode)
                else {
                    continue;
                };
                let unreadable = |e: Error| {
                    e.context(format!(
                        "reconcile: looking for moved endpoint links in {ns} (nothing judged gone)"
                    ))
                };
                let h = crate::handle::Handle::for_netns(&ns)
                    .await
                    .map_err(unreadable)?;
                let links = h.links().await.map_err(unreadable)?;
                for l in links
                    .into_iter()
                    .filter(|l| l.group == super::ENDPOINT_GROUP)
                {
                    let addresses = h
                        .addresses(Some(l.index.into()))
                        .await
                        .map_err(unreadable)?
                        .into_iter()
                        .filter(|a| a.scope != "link")
                        .map(|a| a.address.addr())
                        .collect();
                    out.push(MovedLink {
                        mac: l.mac,
                        addresses,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// A link in underlay's endpoint group found outside the host namespace.
struct MovedLink {
    mac: Option<crate::types::MacAddr>,
    addresses: Vec<std::net::IpAddr>,
}

impl Networks {
    /// Brings kernel and records back in line: recreates missing VLAN parents and shims of the
    /// recorded networks, releases the leases of endpoints whose namespace is gone, and deletes
    /// links marked as underlay's that no network owns. Safe to run any time; changes nothing
    /// when all is in order. Keeps going past failures and reports them all.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let _lock = self.lock().await?;
        let records = self.records()?;
        let h = &self.inner.host;
        let mut report = ReconcileReport::default();
        let mut errors = Vec::new();

        // 1. Parents.
        for r in &records {
            let result = match &r.parent {
                // In each endpoint's namespace: not the host's to restore.
                Some(_) if r.parent_in_endpoint => Ok(None),
                Some(p) => {
                    let users = records
                        .iter()
                        .filter(|o| o.host_parent() == r.host_parent())
                        .count() as u32;
                    match IfName::new(p.as_str()) {
                        Ok(name) => parent::recreate(h, &name, users)
                            .await
                            .map(|l| l.map(|l| l.name)),
                        Err(e) => Err(e),
                    }
                }
                None if h.link(r.lower.as_str()).await.is_err() => self
                    .make_internal_lower(&r.name)
                    .await
                    .map(|l| Some(l.name)),
                None => Ok(None),
            };
            match result {
                Ok(Some(n)) if !report.recreated_parents.contains(&n) => {
                    report.recreated_parents.push(n)
                }
                Ok(_) => {}
                Err(e) => {
                    errors.push(e.context(format!("network `{}`: restoring its parent", r.name)))
                }
            }
        }

        // 2. Endpoints whose namespace or link is gone, then 3. shims (their routes follow
        // endpoints). Where namespaces can be opened is looked up once, if a record needs it.
        let mut live = None;
        for r in &records {
            let net = match self.get(&r.name).await {
                Ok(n) => n,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match net.repair_endpoints(&mut live).await {
                Ok((gone, errs)) => {
                    report.gone_endpoints.extend(gone);
                    errors.extend(errs);
                }
                Err(e) => errors.push(e),
            }
            // Leases from an earlier boot whose record is gone too (records are not fsynced, and
            // the namespaces died with that boot), but not a shim's (the shim is made again):
            // on a store no other host uses (elsewhere another host's boot id is no sign of
            // death).
            if !self.inner.store.is_shared() {
                match net.release_stale_leases().await {
                    Ok((gone, errs)) => {
                        report.gone_endpoints.extend(gone);
                        errors.extend(errs);
                    }
                    Err(e) => errors.push(e),
                }
            }
            if let Some(shim) = &r.shim {
                match net.restore_shim(shim).await {
                    Ok(true) => report.recreated_shims.push(shim.name.clone()),
                    Ok(false) => {}
                    Err(e) => errors
                        .push(e.context(format!("network `{}`: restoring host access", r.name))),
                }
            }
        }

        // 4. Marked links nobody owns: into one link group, then one delete for them all (one
        // kernel synchronisation instead of one per link).
        match h.links().await {
            Ok(links) => {
                let strays: Vec<_> = links
                    .into_iter()
                    .filter(|l| {
                        l.alias
                            .as_deref()
                            .is_some_and(|a| a.starts_with(MARK) && !owned(a, &l.name, &records))
                    })
                    .collect();
                let mut grouped = Vec::new();
                for l in strays {
                    match h.set_link(l.index).group(STRAY_GROUP).execute().await {
                        Ok(()) => grouped.push(l.name),
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => errors.push(e),
                    }
                }
                if !grouped.is_empty() {
                    match h.delete_link_group(STRAY_GROUP).await {
                        Ok(()) => report.removed_links.extend(grouped),
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(Error::multiple("reconcile", errors))
        }
    }
}

/// The link group stray links are gathered in before their one delete. ASCII "uldl".
const STRAY_GROUP: u32 = 0x756c_646c;

/// Whether a marked link belongs to a recorded network.
fn owned(alias: &str, name: &str, records: &[Record]) -> bool {
    let net_of = |tag: &str| {
        alias
            .strip_prefix(MARK)
            .and_then(|a| a.strip_prefix(tag))
            .and_then(|a| a.strip_prefix(" net="))
    };
    if alias.starts_with(parent::VLAN_MARK) {
        records.iter().any(|r| r.host_parent() == Some(name))
    } else if let Some(net) = net_of("shim") {
        records
            .iter()
            .any(|r| r.name == net && r.shim.as_ref().is_some_and(|s| s.name == name))
    } else if let Some(net) = net_of("internal") {
        records.iter().any(|r| r.name == net && r.lower == name)
    } else {
        // Endpoint links live in containers; anything else marked is left alone.
        true
    }
}

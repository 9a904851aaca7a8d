//! The IPAM driver: each Docker pool an IPAM network of the pool store, each address a lease.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use underlay::ipam::{
    AllocRange, Ipam, Lease, Network as IpamNetwork, Owner, Pool, Quarantine, Request,
};
use underlay::{Error, ErrorKind, MacAddr};

use crate::network_driver::parse_address;
use crate::protocol::{self, GATEWAY_REQUEST, MAC_OPTION};
use crate::{answer, Answer, Failure, Plugin};

/// The owner of a pool's gateway address (one per pool, the same on every host).
fn gateway_owner() -> Owner {
    Owner::new("docker-gateway", "gw").expect("a valid owner")
}

/// The owner of an aux address (`--aux-address`) of a pool: one per address, the same on
/// every host, so that each host sharing the pool (etcd) gets the reservation, not only the
/// first.
fn aux_owner(ip: IpAddr) -> Owner {
    Owner::new(format!("docker-aux-{ip}"), "aux").expect("a valid owner")
}

/// The owner of the address of MAC `mac` in a pool: a second request of that MAC gets the
/// same lease back (the store's allocate is idempotent per owner).
fn mac_owner(mac: MacAddr) -> Owner {
    let hex: String = mac.to_string().split(':').collect();
    Owner::new(format!("docker-mac-{hex}"), "ipam").expect("a valid owner")
}

/// Whether `owner` holds a shared reservation (a gateway or an aux address), which no
/// endpoint confirms.
fn is_reservation(owner: &Owner) -> bool {
    *owner == gateway_owner() || owner.ifname().as_str() == "aux"
}

/// What a `RequestAddress` is, by its options (dockerd's rules: the gateway is typed; with
/// `RequiresMACAddress` every endpoint's request carries its MAC, newer dockerd adds the
/// endpoint's name; an aux address is asked with no options at all).
#[derive(Debug, PartialEq, Eq)]
enum AddressKind {
    Gateway,
    Aux(IpAddr),
    Endpoint(Option<MacAddr>),
}

fn address_kind(
    req: &protocol::RequestAddress,
    wanted: Option<IpAddr>,
) -> Result<AddressKind, Failure> {
    let options = req.options.as_ref().filter(|o| !o.is_empty());
    if options
        .and_then(|o| o.get("RequestAddressType"))
        .is_some_and(|t| t == GATEWAY_REQUEST)
    {
        return Ok(AddressKind::Gateway);
    }
    match (options, wanted) {
        (None, Some(ip)) => Ok(AddressKind::Aux(ip)),
        (options, _) => {
            let mac = match options.and_then(|o| o.get(MAC_OPTION)) {
                None => None,
                Some(m) if m.is_empty() => None,
                Some(m) => Some(
                    m.parse::<MacAddr>()
                        .map_err(|e| e.context(format!("RequestAddress option {MAC_OPTION}")))?,
                ),
            };
            Ok(AddressKind::Endpoint(mac))
        }
    }
}

/// A fresh owner for one `RequestAddress` without a MAC: the lease is found again by its
/// address on `ReleaseAddress` (Docker names no endpoint when it asks).
fn address_owner() -> Owner {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let id = format!(
        "docker-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Owner::new(id, "ipam").expect("a valid owner")
}

/// The pool store's name for Docker pool `subnet` of `space`: `dk-` and a hash of both (a
/// subnet has characters a network name cannot), the same on every host.
pub(crate) fn pool_network_name(space: &str, subnet: &IpNet) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in space.bytes().chain([0]).chain(subnet.to_string().bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("dk-{h:016x}")
}

/// The pool id Docker gets: `SPACE/SUBNET`, read back by [`parse_pool_id`].
fn pool_id(space: &str, subnet: &IpNet) -> String {
    format!("{space}/{subnet}")
}

/// `SPACE/SUBNET` into its parts.
fn parse_pool_id(id: &str) -> Result<(String, IpNet), Failure> {
    let bad = || {
        Failure::Library(Error::not_found(format!(
            "pool id `{}` is not one this driver gave (SPACE/SUBNET): request the pool first",
            Error::show_input(id)
        )))
    };
    // The subnet holds one `/`: the one before it ends the address space.
    let last = id.rfind('/').ok_or_else(bad)?;
    let sep = id[..last].rfind('/').ok_or_else(bad)?;
    let subnet: IpNet = id[sep + 1..].parse().map_err(|_| bad())?;
    Ok((id[..sep].to_string(), subnet))
}

/// The first host address of `subnet` (Docker's default gateway): never the subnet's own
/// address (an IPv6 subnet's is the subnet-router anycast address).
fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    subnet.hosts().find(|ip| *ip != subnet.network())
}

impl Plugin {
    /// The open pool of `pool_id`.
    async fn pool(&self, pool_id: &str) -> Result<(Ipam, IpNet), Failure> {
        let (space, subnet) = parse_pool_id(pool_id)?;
        let name = pool_network_name(&space, &subnet);
        if let Some(i) = self.ipams.lock().ok().and_then(|m| m.get(&name).cloned()) {
            return Ok((i, subnet));
        }
        let ipam = Ipam::open(self.pools.clone(), &name).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Failure::Library(Error::not_found(format!(
                    "pool {pool_id} is unknown to underlay's IPAM: it was released, or never requested (RequestPool first)"
                )))
            } else {
                Failure::Library(e)
            }
        })?;
        if let Ok(mut m) = self.ipams.lock() {
            m.insert(name, ipam.clone());
        }
        Ok((ipam, subnet))
    }

    fn forget_pool(&self, name: &str) {
        if let Ok(mut m) = self.ipams.lock() {
            m.remove(name);
        }
    }

    pub(crate) async fn request_pool(&self, req: protocol::RequestPool) -> Answer {
        if req.pool.is_empty() {
            return Err(Error::invalid(
                "RequestPool without a subnet: underlay's IPAM picks no default pool; give the network --subnet (and --ip-range to share it with other hosts' users)",
            )
            .into());
        }
        let subnet: IpNet = req.pool.parse().map_err(|_| {
            Error::invalid(format!(
                "pool `{}` is not a CIDR subnet (10.0.0.0/24, fd00::/64)",
                Error::show_input(&req.pool)
            ))
        })?;
        if subnet.trunc() != subnet {
            return Err(Error::invalid(format!(
                "pool {subnet} has host bits set: give the subnet, {}",
                subnet.trunc()
            ))
            .into());
        }
        if matches!(subnet, IpNet::V6(_)) != req.v6 {
            return Err(Error::invalid(format!(
                "pool {subnet} is requested as {}: the V6 flag and the subnet disagree",
                if req.v6 { "IPv6" } else { "IPv4" }
            ))
            .into());
        }
        // The gateway is leased by its own RequestAddress, right after this call.
        let mut b = Pool::builder(subnet).no_gateway();
        if !req.sub_pool.is_empty() {
            let range: IpNet = req.sub_pool.parse().map_err(|_| {
                Error::invalid(format!(
                    "--ip-range `{}` is not a CIDR block",
                    Error::show_input(&req.sub_pool)
                ))
            })?;
            b = b.range(AllocRange::Cidr(range));
        }
        let pool = b.build()?;
        let name = pool_network_name(&req.address_space, &subnet);
        // The same request again (a replay, another host on a shared store) joins the pool
        // defined already: same id, success. Another definition of the subnet (another
        // --ip-range) is a conflict, an overlapping subnet an overlap: both said by the store.
        let (ipam, _) = Ipam::join(
            self.pools.clone(),
            IpamNetwork::new(name.clone(), vec![pool])?,
        )
        .await
        .map_err(|e| e.context(format!("pool {subnet} ({})", req.address_space)))?;
        if let Ok(mut m) = self.ipams.lock() {
            m.insert(name, ipam);
        }
        answer(protocol::PoolResponse {
            pool_id: pool_id(&req.address_space, &subnet),
            pool: subnet.to_string(),
            data: Default::default(),
        })
    }

    pub(crate) async fn release_pool(&self, req: protocol::ReleasePool) -> Answer {
        let (space, subnet) = parse_pool_id(&req.pool_id)?;
        let name = pool_network_name(&space, &subnet);
        // This host's holds of the gateway and aux addresses go with its use of the pool (their
        // ReleaseAddress may have been lost to a plugin restart); other hosts' stay.
        let mut others_hold = false;
        if let Ok((ipam, _)) = self.pool(&req.pool_id).await {
            for h in ipam.holds().await? {
                if h.holders.contains(&self.holder) {
                    ipam.unhold(&h.owner, &self.holder).await?;
                }
            }
            let holds = ipam.holds().await?;
            let leases = ipam.list().await?;
            others_hold = !holds.is_empty()
                && leases
                    .iter()
                    .all(|l| holds.iter().any(|h| h.owner == l.owner));
        }
        self.forget_pool(&name);
        match Ipam::leave(self.pools.as_ref(), &name).await {
            Err(e) if e.kind() == ErrorKind::NotFound => answer(protocol::Empty {}),
            // A store of one host shared by several plugins (no membership): the pool stays
            // for the other holders of its reservations.
            Err(e) if e.kind() == ErrorKind::Busy && others_hold => answer(protocol::Empty {}),
            Err(e) => Err(e
                .context(format!(
                    "releasing pool {} (addresses still leased: release them first)",
                    req.pool_id
                ))
                .into()),
            Ok(_) => answer(protocol::Empty {}),
        }
    }

    pub(crate) async fn request_address(&self, req: protocol::RequestAddress) -> Answer {
        let (ipam, subnet) = self.pool(&req.pool_id).await?;
        let wanted = if req.address.is_empty() {
            None
        } else {
            Some(parse_address(&req.address).ok_or_else(|| {
                Error::invalid(format!(
                    "address `{}` is not an IP address",
                    Error::show_input(&req.address)
                ))
            })?)
        };
        let kind = address_kind(&req, wanted)?;
        let lease = match kind {
            AddressKind::Gateway => {
                // One gateway per pool, its own owner: asked again, the same answer.
                let ip = wanted.or_else(|| first_host(&subnet)).ok_or_else(|| {
                    Error::invalid(format!("pool {subnet} has no host address for a gateway"))
                })?;
                // Held by this host: the last host to release it frees it.
                return self.reserve(&ipam, &req.pool_id, &subnet, gateway_owner(), ip).await;
            }
            AddressKind::Aux(ip) => {
                return self.reserve(&ipam, &req.pool_id, &subnet, aux_owner(ip), ip).await;
            }
            AddressKind::Endpoint(Some(mac)) => {
                let owner = mac_owner(mac);
                let request = wanted.map_or_else(Request::any, Request::ip);
                // Read-held: a reclaim of unanswered leases waits (see `reclaim_unanswered`).
                let _guard = self.reclaiming.read().await;
                let lease = ipam.allocate(&owner, &request).await.map_err(|e| {
                    if e.kind() == ErrorKind::Conflict {
                        Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "MAC {mac} holds another address in pool {} (one address per MAC and pool): disconnect the container using it first, or give another --mac-address",
                                req.pool_id
                            ),
                        )
                    } else {
                        e
                    }
                });
                if let (Ok(_), Ok(mut u)) = (&lease, self.unanswered.lock()) {
                    // Asked for again: dockerd has it now.
                    u.retain(|(_, o)| *o != owner);
                }
                lease
            }
            AddressKind::Endpoint(None) => {
                let request = wanted.map_or_else(Request::any, Request::ip);
                ipam.allocate(&address_owner(), &request).await
            }
        }
        .map_err(|e| e.context(format!("pool {}", req.pool_id)))?;
        crate::test_hook::after_lease_committed();
        let address = lease
            .addresses
            .first()
            .map(|a| a.address.to_string())
            .ok_or_else(|| Error::new(ErrorKind::Io, "the pool gave a lease without an address"))?;
        answer(protocol::AddressResponse {
            address,
            data: Default::default(),
        })
    }

    /// Holds `ip` for `owner` (the gateway, an aux address) on behalf of this host and answers
    /// it: asked again, on any host, the same answer.
    async fn reserve(
        &self,
        ipam: &Ipam,
        pool_id: &str,
        subnet: &IpNet,
        owner: Owner,
        ip: IpAddr,
    ) -> Answer {
        let hold = ipam
            .hold(&owner, ip, &self.holder)
            .await
            .map_err(|e| e.context(format!("pool {pool_id}")))?;
        crate::test_hook::after_lease_committed();
        let address = IpNet::new(hold.addr, subnet.prefix_len())
            .map_err(|_| Error::invalid(format!("{} is not in pool {subnet}", hold.addr)))?;
        answer(protocol::AddressResponse {
            address: address.to_string(),
            data: Default::default(),
        })
    }

    pub(crate) async fn release_address(&self, req: protocol::ReleaseAddress) -> Answer {
        let ip = parse_address(&req.address).ok_or_else(|| {
            Failure::BadRequest(format!(
                "ReleaseAddress: `{}` is not an IP address",
                Error::show_input(&req.address)
            ))
        })?;
        let (ipam, _) = match self.pool(&req.pool_id).await {
            Ok(p) => p,
            // The pool went: so did its leases.
            Err(Failure::Library(e)) if e.kind() == ErrorKind::NotFound => {
                return answer(protocol::Empty {})
            }
            Err(f) => return Err(f),
        };
        let holder = ipam
            .list()
            .await?
            .into_iter()
            .find(|l| l.ips().contains(&ip));
        if let Some(l) = holder {
            if is_reservation(&l.owner) {
                // A gateway or aux address: only this host's hold goes; other hosts using
                // the pool keep it (the last one's release frees it).
                ipam.unhold(&l.owner, &self.holder).await?;
                return answer(protocol::Empty {});
            }
            // An endpoint still holding the address is another container's: this release is
            // the rollback of a container refused on it (the same --mac-address twice got
            // the holder's address back). Its own release follows its DeleteEndpoint.
            if !self.endpoint_holds(&req.pool_id, ip).await? {
                ipam.release(&l.owner).await?;
            }
        }
        answer(protocol::Empty {})
    }
}

/// The leases of earlier runs that no endpoint held when the plugin started: by pool store
/// network and owner.
pub(crate) type Unanswered = Vec<(String, Owner)>;

impl Plugin {
    /// The addresses this host's endpoints, gateways and aux addresses hold, and the subnets
    /// of this host's networks.
    async fn held_addresses(&self) -> underlay::Result<(HashSet<IpAddr>, HashSet<IpNet>)> {
        let mut held = HashSet::new();
        let mut subnets = HashSet::new();
        for net in self.nets.list().await? {
            for p in net.pools() {
                subnets.insert(p.subnet());
                held.extend(p.gateway());
                held.extend(p.reserved().iter().map(|r| r.addr()));
            }
            for ep in net.endpoints()? {
                held.extend(ep.addresses.iter().map(|a| a.addr()));
            }
        }
        Ok((held, subnets))
    }

    /// Whether an endpoint of a network of this plugin's with pool `pool_id`'s subnet holds
    /// `ip`.
    async fn endpoint_holds(&self, pool_id: &str, ip: IpAddr) -> underlay::Result<bool> {
        let Ok((_, subnet)) = parse_pool_id(pool_id) else {
            return Ok(false);
        };
        for net in self.nets.list().await? {
            if !net.pools().iter().any(|p| p.subnet() == subnet) {
                continue;
            }
            if net
                .endpoints()?
                .iter()
                .any(|ep| ep.addresses.iter().any(|a| a.addr() == ip))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Finds the leases whose `RequestAddress` answer may never have reached dockerd: claimed
    /// through this host, in a pool of a network of this plugin's, held by no endpoint of it
    /// (nor gateway, aux address or quarantine). Called before serving, so each one was made
    /// by an earlier run: killed between committing the lease and writing the answer, or
    /// with dockerd's `ReleaseAddress` lost. [`Plugin::reclaim_unanswered`] releases those
    /// still unheld later. Returns how many it found.
    ///
    /// A pool used only by another driver's networks (`-d macvlan --ipam-driver underlay`)
    /// is never looked at: no endpoint of this plugin's confirms its leases.
    pub async fn find_unanswered(&self) -> underlay::Result<usize> {
        let (held, subnets) = self.held_addresses().await?;
        let mut found: Unanswered = Vec::new();
        for pn in self.pools.networks().await? {
            if !pn.pools().iter().any(|p| subnets.contains(&p.subnet())) {
                continue;
            }
            for r in self.pools.host_records(pn.name()).await? {
                if is_reservation(&r.owner)
                    || Quarantine::from_owner(&r.owner).is_some()
                    || held.contains(&r.addr)
                {
                    continue;
                }
                let entry = (pn.name().to_string(), r.owner);
                if !found.contains(&entry) {
                    found.push(entry);
                }
            }
        }
        let n = found.len();
        if let Ok(mut u) = self.unanswered.lock() {
            *u = found;
        }
        Ok(n)
    }

    /// Releases the leases [`Plugin::find_unanswered`] found that are still held by no
    /// endpoint and were not asked for again since (a MAC's request gets its lease back and
    /// takes it off the list). Call it once dockerd can no longer be retrying a call that
    /// carries such an address (its plugin client gives up after 30 s): main waits
    /// `--reclaim-after` (60 s) after start. Returns the leases released.
    pub async fn reclaim_unanswered(&self) -> underlay::Result<Vec<Lease>> {
        // Write-held: a MAC's RequestAddress (read-held) either took its lease off the list
        // before, or comes after the release and gets a fresh one.
        let _guard = self.reclaiming.write().await;
        let candidates: Unanswered = self
            .unanswered
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let (held, _) = self.held_addresses().await?;
        let mut released = Vec::new();
        for (name, owner) in candidates {
            let ipam = match Ipam::open(self.pools.clone(), &name).await {
                Ok(i) => i,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match ipam.lookup(&owner).await? {
                Some(l) if !l.ips().iter().any(|ip| held.contains(ip)) => {
                    released.extend(ipam.release(&owner).await?);
                }
                _ => {}
            }
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_kinds_by_options() {
        let req = |address: &str, options: Option<&[(&str, &str)]>| protocol::RequestAddress {
            pool_id: "local/10.0.0.0/24".into(),
            address: address.into(),
            options: options.map(|o| {
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
        };
        let kind =
            |r: &protocol::RequestAddress| address_kind(r, parse_address(&r.address)).unwrap();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let mac: MacAddr = "02:42:0a:00:00:09".parse().unwrap();
        assert_eq!(
            kind(&req("", Some(&[("RequestAddressType", GATEWAY_REQUEST)]))),
            AddressKind::Gateway
        );
        assert_eq!(kind(&req("10.0.0.9", None)), AddressKind::Aux(ip));
        assert_eq!(kind(&req("10.0.0.9", Some(&[]))), AddressKind::Aux(ip));
        assert_eq!(
            kind(&req("10.0.0.9", Some(&[(MAC_OPTION, "02:42:0a:00:00:09")]))),
            AddressKind::Endpoint(Some(mac))
        );
        assert_eq!(
            kind(&req("", Some(&[(MAC_OPTION, "02:42:0a:00:00:09")]))),
            AddressKind::Endpoint(Some(mac))
        );
        assert_eq!(kind(&req("", None)), AddressKind::Endpoint(None));
        // Newer dockerd: the endpoint's name, no MAC.
        assert_eq!(
            kind(&req(
                "10.0.0.9",
                Some(&[("com.docker.network.endpoint.name", "c1")])
            )),
            AddressKind::Endpoint(None)
        );
        let bad = req("", Some(&[(MAC_OPTION, "not-a-mac")]));
        assert!(address_kind(&bad, None).is_err());
        assert_eq!(mac_owner(mac).to_string(), "docker-mac-02420a000009/ipam");
        assert!(is_reservation(&aux_owner(ip)) && is_reservation(&gateway_owner()));
        assert!(!is_reservation(&mac_owner(mac)));
    }

    #[test]
    fn pool_ids_read_back() {
        for (space, net) in [("local", "10.1.0.0/24"), ("a/b", "fd00:218::/64")] {
            let subnet: IpNet = net.parse().unwrap();
            let (s, n) = parse_pool_id(&pool_id(space, &subnet)).unwrap();
            assert_eq!((s.as_str(), n), (space, subnet));
        }
        for bad in ["", "local", "local/10.0.0.0", "/10.0.0.0/24x"] {
            assert!(parse_pool_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            first_host(&"fd00:218::/64".parse().unwrap()),
            Some("fd00:218::1".parse().unwrap())
        );
        assert_eq!(
            first_host(&"10.1.0.0/24".parse().unwrap()),
            Some("10.1.0.1".parse().unwrap())
        );
        let a = pool_network_name("local", &"10.1.0.0/24".parse().unwrap());
        assert_eq!(a.len(), 19);
        assert_ne!(
            a,
            pool_network_name("global", &"10.1.0.0/24".parse().unwrap())
        );
    }
}

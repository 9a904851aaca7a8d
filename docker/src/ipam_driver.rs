//! The IPAM driver: each Docker pool an IPAM network of the pool store, each address a lease.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use underlay::ipam::{AllocRange, Ipam, Network as IpamNetwork, Owner, Pool, Request};
use underlay::{Error, ErrorKind};

use crate::network_driver::parse_address;
use crate::protocol::{self, GATEWAY_REQUEST};
use crate::{answer, Answer, Failure, Plugin};

/// The owner of a pool's gateway address (one per pool).
fn gateway_owner() -> Owner {
    Owner::new("docker-gateway", "gw").expect("a valid owner")
}

/// A fresh owner for one `RequestAddress`: the lease is found again by its address on
/// `ReleaseAddress` (Docker names no endpoint when it asks).
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
        self.forget_pool(&name);
        match Ipam::leave(self.pools.as_ref(), &name).await {
            Err(e) if e.kind() == ErrorKind::NotFound => answer(protocol::Empty {}),
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
        let gateway = req
            .options
            .as_ref()
            .and_then(|o| o.get("RequestAddressType"))
            .is_some_and(|t| t == GATEWAY_REQUEST);
        let lease = if gateway {
            // One gateway per pool, its own owner: asked again, the same answer.
            let owner = gateway_owner();
            let ip = wanted.or_else(|| first_host(&subnet)).ok_or_else(|| {
                Error::invalid(format!("pool {subnet} has no host address for a gateway"))
            })?;
            ipam.allocate(&owner, &Request::ip(ip)).await
        } else {
            let request = wanted.map_or_else(Request::any, Request::ip);
            ipam.allocate(&address_owner(), &request).await
        }
        .map_err(|e| e.context(format!("pool {}", req.pool_id)))?;
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
            ipam.release(&l.owner).await?;
        }
        answer(protocol::Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! IP addresses on links.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::link::LinkRef;

/// An address on a link, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Address {
    /// Index of the link holding it.
    pub index: u32,
    /// Address and prefix length.
    pub address: IpNet,
    /// Scope (`global`, `link`, `host`, ...).
    pub scope: &'static str,
    /// IPv6 duplicate address detection still running.
    pub tentative: bool,
    /// Label (IPv4).
    pub label: Option<String>,
    /// Added without duplicate address detection (`nodad`).
    pub nodad: bool,
    /// Added without its prefix route (`noprefixroute`).
    pub noprefixroute: bool,
    /// Not the link's first address in its subnet (`secondary`; IPv4).
    pub secondary: bool,
    /// Its preferred lifetime is over: kept, but not chosen as a source (`deprecated`).
    pub deprecated: bool,
    /// It has a finite lifetime, e.g. from DHCP or SLAAC (`dynamic`: not `permanent`).
    pub dynamic: bool,
    /// The other end of a point-to-point address (`peer`), when the link has one.
    pub peer: Option<IpAddr>,
    /// The broadcast address (IPv4), when set.
    pub broadcast: Option<IpAddr>,
}

/// Options for adding an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressOptions {
    /// IPv6: skip duplicate address detection (the address is usable at once).
    pub nodad: bool,
    /// Do not add the prefix route the kernel adds by default.
    pub noprefixroute: bool,
}

impl Handle {
    /// Adds `addr` (address/prefix, e.g. `172.22.16.10/24`) to `link`. Fails with
    /// [`ErrorKind::AlreadyExists`] if the link already has it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
    /// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
    /// h.add_address("ens192", "172.22.16.10/24".parse().unwrap()).await?;
    /// let addrs = h.addresses(Some("ens192".into())).await?;
    /// assert!(addrs.iter().any(|a| a.address.to_string() == "172.22.16.10/24"));
    /// # Ok(()) }
    /// ```
    pub async fn add_address(&self, link: impl Into<LinkRef>, addr: IpNet) -> Result<()> {
        self.address_op(
            link.into(),
            addr,
            AddressOptions::default(),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    /// Adds or replaces `addr` on `link` (no error when it is there already).
    pub async fn replace_address(&self, link: impl Into<LinkRef>, addr: IpNet) -> Result<()> {
        self.address_op(
            link.into(),
            addr,
            AddressOptions::default(),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
    }

    /// Adds `addr` with options (e.g. `nodad` for IPv6).
    pub async fn add_address_with(
        &self,
        link: impl Into<LinkRef>,
        addr: IpNet,
        opts: AddressOptions,
    ) -> Result<()> {
        self.address_op(link.into(), addr, opts, NLM_F_CREATE | NLM_F_EXCL)
            .await
    }

    /// Removes `addr` from `link`.
    pub async fn delete_address(&self, link: impl Into<LinkRef>, addr: IpNet) -> Result<()> {
        let link = link.into();
        let index = self.link_index(link.clone()).await?;
        let msg = address_message(index, addr, AddressOptions::default());
        self.request(
            RouteNetlinkMessage::DelAddress(msg),
            0,
            "delete address",
            &format!("{addr} on link {link}"),
        )
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "address {addr} is not on link {link} in {}",
                    self.netns_label()
                ))
                .with_errno(libc::EADDRNOTAVAIL)
            } else {
                e
            }
        })?;
        Ok(())
    }

    /// The addresses in this namespace, of one link or of all.
    pub async fn addresses(&self, link: Option<LinkRef>) -> Result<Vec<Address>> {
        let index = match link {
            Some(l) => Some(self.link_index(l).await?),
            None => None,
        };
        let mut msg = AddressMessage::default();
        if let Some(i) = index {
            msg.header.index = i;
        }
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(msg), "list", "addresses")
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(m) => parse_address(m),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Duplicate address detection on link `index`: per IPv6 address, whether it is still
    /// tentative and whether detection failed (`IFA_F_DADFAILED`: another node has it).
    pub(crate) async fn dad_states(&self, index: u32) -> Result<Vec<(IpAddr, bool, bool)>> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.family = AddressFamily::Inet6;
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(msg), "list", "addresses")
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(m) if m.header.index == index => {
                    let mut flags =
                        AddressFlags::from_bits_truncate(u32::from(m.header.flags.bits()));
                    let mut ip = None;
                    for a in m.attributes {
                        match a {
                            AddressAttribute::Address(a) => ip = Some(a),
                            AddressAttribute::Flags(f) => flags = f,
                            _ => {}
                        }
                    }
                    Some((
                        ip?,
                        flags.contains(AddressFlags::Tentative),
                        flags.contains(AddressFlags::Dadfailed),
                    ))
                }
                _ => None,
            })
            .collect())
    }

    async fn address_op(
        &self,
        link: LinkRef,
        addr: IpNet,
        opts: AddressOptions,
        flags: u16,
    ) -> Result<()> {
        check_host_address(&addr)?;
        let index = self.link_index(link.clone()).await?;
        let msg = address_message(index, addr, opts);
        let object = format!("{addr} on link {link}");
        self.request(RouteNetlinkMessage::NewAddress(msg), flags, "add address", &object)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => Error::new(
                    ErrorKind::AlreadyExists,
                    format!("address {addr} is already on link {link} in {}: nothing to add (use replace_address to update it)", self.netns_label()),
                )
                .with_errno(libc::EEXIST),
                ErrorKind::NotFound => self.missing_link(&link),
                _ => e,
            })?;
        Ok(())
    }
}

/// Refuses the network address itself where it cannot be a host address (e.g. `10.0.0.0/8`).
fn check_host_address(addr: &IpNet) -> Result<()> {
    if addr.addr().is_unspecified() || addr.addr().is_multicast() {
        return Err(Error::invalid(format!(
            "{addr} cannot be a link address: give a unicast host address such as 172.22.16.10/24"
        )));
    }
    Ok(())
}

pub(crate) fn address_message(index: u32, addr: IpNet, opts: AddressOptions) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix_len();
    msg.header.scope = if addr.addr().is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    let mut flags = AddressFlags::empty();
    if opts.nodad {
        flags |= AddressFlags::Nodad;
    }
    if opts.noprefixroute {
        flags |= AddressFlags::Noprefixroute;
    }
    match addr {
        IpNet::V4(n) => {
            msg.header.family = AddressFamily::Inet;
            msg.attributes
                .push(AddressAttribute::Local(IpAddr::V4(n.addr())));
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V4(n.addr())));
            if n.prefix_len() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(n.broadcast()));
            }
        }
        IpNet::V6(n) => {
            msg.header.family = AddressFamily::Inet6;
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V6(n.addr())));
        }
    }
    if !flags.is_empty() {
        msg.attributes.push(AddressAttribute::Flags(flags));
    }
    msg
}

fn parse_address(m: AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut label = None;
    let mut broadcast = None;
    let mut flags = AddressFlags::from_bits_truncate(u32::from(m.header.flags.bits()));
    for a in m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Label(l) => label = Some(l),
            AddressAttribute::Broadcast(b) => broadcast = Some(IpAddr::V4(b)),
            AddressAttribute::Flags(f) => flags = f,
            _ => {}
        }
    }
    let ip = local.or(address)?;
    // With both, IFA_ADDRESS is the peer's (it equals IFA_LOCAL on an ordinary address).
    let peer = local.and(address).filter(|a| Some(*a) != local);
    let net = IpNet::new(ip, m.header.prefix_len).ok()?;
    let scope = match m.header.scope {
        AddressScope::Universe => "global",
        AddressScope::Site => "site",
        AddressScope::Link => "link",
        AddressScope::Host => "host",
        AddressScope::Nowhere => "nowhere",
        _ => "other",
    };
    Some(Address {
        index: m.header.index,
        address: net,
        scope,
        tentative: flags.contains(AddressFlags::Tentative),
        label,
        nodad: flags.contains(AddressFlags::Nodad),
        noprefixroute: flags.contains(AddressFlags::Noprefixroute),
        secondary: flags.contains(AddressFlags::Secondary),
        deprecated: flags.contains(AddressFlags::Deprecated),
        dynamic: !flags.contains(AddressFlags::Permanent),
        peer,
        broadcast,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_message_has_local_and_broadcast() {
        let m = address_message(
            3,
            "172.22.16.10/24".parse().unwrap(),
            AddressOptions::default(),
        );
        assert_eq!(m.header.prefix_len, 24);
        assert!(m.attributes.contains(&AddressAttribute::Broadcast(
            "172.22.16.255".parse().unwrap()
        )));
        let m = address_message(3, "10.0.0.1/31".parse().unwrap(), AddressOptions::default());
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
    }

    #[test]
    fn bad_addresses_refused() {
        assert!(check_host_address(&"0.0.0.0/0".parse().unwrap()).is_err());
        assert!(check_host_address(&"224.0.0.1/4".parse().unwrap()).is_err());
        assert!(check_host_address(&"10.1.2.3/8".parse().unwrap()).is_ok());
    }
}

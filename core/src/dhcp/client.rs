//! The DHCPv4 client of one endpoint (RFC 2131): INIT (DISCOVER, OFFER, REQUEST, ACK),
//! INIT-REBOOT (REQUEST of the previous address, no server id), RENEWING (unicast to the
//! server), REBINDING (broadcast) and RELEASE, each exchange retransmitted with doubling waits.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use ipnet::Ipv4Net;

use super::wire::LinkSocket;
use super::{DhcpConfig, DhcpLease};
use crate::error::{Error, ErrorKind, Result};
use crate::netns::Netns;
use crate::types::MacAddr;

const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// What a renewal (or rebinding) got.
#[derive(Debug)]
pub(crate) enum Renewal {
    /// An ACK: the lease, extended (or changed).
    Ack(DhcpLease),
    /// A NAK: the address must go.
    Nak,
    /// Nobody answered.
    NoAnswer,
}

/// One endpoint's DHCP client: its socket on the endpoint's link and who it is.
pub(crate) struct Client {
    sock: LinkSocket,
    mac: MacAddr,
    client_id: Vec<u8>,
    hostname: Option<String>,
    /// Ask for broadcast answers: an ipvlan endpoint shares its parent's MAC, so a unicast
    /// frame to an address it does not hold yet cannot reach it.
    broadcast: bool,
    /// `network `N`, endpoint `C`/IF` for messages.
    label: String,
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open(
        netns: &Netns,
        ifindex: u32,
        mac: MacAddr,
        client_id: Vec<u8>,
        hostname: Option<String>,
        broadcast: bool,
        label: String,
    ) -> Result<Client> {
        let sock = LinkSocket::open(netns, ifindex)
            .await
            .map_err(|e| e.context(&label))?;
        Ok(Client {
            sock,
            mac,
            client_id,
            hostname,
            broadcast,
            label,
        })
    }

    fn message(&self, xid: u32, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let mut m = Message::new_with_id(
            xid,
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.mac.octets(),
        );
        if self.broadcast && ciaddr.is_unspecified() {
            m.set_flags(Flags::default().set_broadcast());
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ClientIdentifier(self.client_id.clone()));
        if kind != MessageType::Release {
            o.insert(DhcpOption::MaxMessageSize(1500));
            if let Some(h) = &self.hostname {
                o.insert(DhcpOption::Hostname(h.clone()));
            }
            o.insert(DhcpOption::ParameterRequestList(vec![
                OptionCode::SubnetMask,
                OptionCode::Router,
                OptionCode::DomainNameServer,
                OptionCode::DomainName,
                OptionCode::AddressLeaseTime,
                OptionCode::Renewal,
                OptionCode::Rebinding,
            ]));
        }
        m
    }

    fn send(&self, m: &Message, src: Ipv4Addr, dst: Ipv4Addr, dst_mac: [u8; 6]) -> Result<()> {
        let bytes = m.to_vec().map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("{}: cannot encode a DHCP message: {e}", self.label),
            )
        })?;
        self.sock.send(src, dst, dst_mac, &bytes)
    }

    /// Sends `m`, trying again for up to ~50 ms while the link's transmit queue is full
    /// (`ENOBUFS`: hundreds of endpoints broadcasting at once on one parent).
    async fn send_when_queue_frees(
        &self,
        m: &Message,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dst_mac: [u8; 6],
    ) -> Result<()> {
        let mut left = 10;
        loop {
            match self.send(m, src, dst, dst_mac) {
                Err(e) if queue_full(&e) && left > 0 => {
                    left -= 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                other => return other,
            }
        }
    }

    /// Sends `m` and waits for an answer `accept` takes, retransmitting per `cfg`.
    async fn exchange<T>(
        &self,
        m: &Message,
        (src, dst, dst_mac): (Ipv4Addr, Ipv4Addr, [u8; 6]),
        cfg: &DhcpConfig,
        mut accept: impl FnMut(&Message, MacAddr) -> Option<T>,
    ) -> Result<Option<T>> {
        for i in 0..cfg.tries() {
            // A full transmit queue drops the frame as the wire might: the next try resends.
            if let Err(e) = self.send_when_queue_frees(m, src, dst, dst_mac).await {
                if !queue_full(&e) {
                    return Err(e);
                }
                tracing::debug!(endpoint = %self.label, error = %e, "DHCP message dropped: queue full");
            }
            let deadline = tokio::time::Instant::now() + cfg.wait(i);
            while let Some((bytes, from)) = self.sock.recv(deadline).await? {
                let Ok(reply) = Message::from_bytes(&bytes) else {
                    tracing::debug!(endpoint = %self.label, "malformed DHCP message skipped");
                    continue;
                };
                if reply.opcode() != Opcode::BootReply
                    || reply.xid() != m.xid()
                    || reply.chaddr().get(..6) != Some(&self.mac.octets()[..])
                {
                    continue;
                }
                // A reply naming another client id is another client's (ipvlan shares a MAC).
                if let Some(DhcpOption::ClientIdentifier(id)) =
                    reply.opts().get(OptionCode::ClientIdentifier)
                {
                    if *id != self.client_id {
                        continue;
                    }
                }
                if let Some(t) = accept(&reply, from) {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    }

    /// Gets a lease: INIT-REBOOT with `previous` first when given (a NAK or no answer falls
    /// back to INIT), then DISCOVER/OFFER/REQUEST/ACK. An offer outside `cfg`'s subnet is
    /// refused; a NAK to the REQUEST starts over (twice at most).
    pub(crate) async fn acquire(
        &self,
        cfg: &DhcpConfig,
        previous: Option<Ipv4Addr>,
    ) -> Result<DhcpLease> {
        if let Some(prev) = previous {
            let mut m = self.message(fresh_xid(), MessageType::Request, Ipv4Addr::UNSPECIFIED);
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(prev));
            let got = self
                .exchange(
                    &m,
                    (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, BROADCAST_MAC),
                    cfg,
                    answer,
                )
                .await?;
            match got {
                Some(Answer::Ack(l)) if self.allowed(cfg, &l) => return Ok(l),
                Some(Answer::Nak(_)) => {
                    tracing::info!(endpoint = %self.label, address = %prev, "DHCP server refused the previous address: starting over")
                }
                _ => {}
            }
        }
        let mut refused: Vec<String> = Vec::new();
        for _round in 0..3 {
            let xid = fresh_xid();
            let discover = self.message(xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
            let offer = self
                .exchange(
                    &discover,
                    (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, BROADCAST_MAC),
                    cfg,
                    |r, _| {
                        if r.opts().msg_type() != Some(MessageType::Offer) {
                            return None;
                        }
                        let server = server_id(r)?;
                        let yiaddr = r.yiaddr();
                        if let Some(s) = cfg.allowed_subnet() {
                            if !s.contains(&yiaddr) {
                                refused.push(format!("{yiaddr} from server {server}"));
                                return None;
                            }
                        }
                        Some((server, yiaddr))
                    },
                )
                .await?;
            let Some((server, yiaddr)) = offer else {
                if !refused.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "{}: the DHCP offers were outside the network's subnet {}: {}; \
                             fix the server's range or the network's DHCP subnet",
                            self.label,
                            cfg.allowed_subnet()
                                .map(|s| s.to_string())
                                .unwrap_or_default(),
                            refused.join(", ")
                        ),
                    ));
                }
                return Err(super::no_answer("DISCOVER", &self.label, cfg));
            };
            let mut request = self.message(xid, MessageType::Request, Ipv4Addr::UNSPECIFIED);
            request
                .opts_mut()
                .insert(DhcpOption::RequestedIpAddress(yiaddr));
            request
                .opts_mut()
                .insert(DhcpOption::ServerIdentifier(server));
            let got = self
                .exchange(
                    &request,
                    (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, BROADCAST_MAC),
                    cfg,
                    |r, from| match server_id(r) {
                        Some(s) if s == server => answer(r, from),
                        _ => None,
                    },
                )
                .await?;
            match got {
                Some(Answer::Ack(l)) if self.allowed(cfg, &l) => return Ok(l),
                Some(Answer::Ack(l)) => refused.push(format!("{} from server {server}", l.address)),
                Some(Answer::Nak(_)) => {
                    tracing::info!(endpoint = %self.label, %server, "DHCP REQUEST refused (NAK): starting over")
                }
                None => return Err(super::no_answer("REQUEST", &self.label, cfg)),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "{}: the DHCP server refused (NAK) or offered out-of-subnet addresses three times in a row{}; check the server's configuration",
                self.label,
                if refused.is_empty() { String::new() } else { format!(": {}", refused.join(", ")) }
            ),
        ))
    }

    fn allowed(&self, cfg: &DhcpConfig, l: &DhcpLease) -> bool {
        cfg.allowed_subnet()
            .is_none_or(|s| s.contains(&l.address.addr()))
    }

    /// Renews `lease`: unicast to its server (RENEWING), or broadcast to any (REBINDING).
    pub(crate) async fn renew(
        &self,
        lease: &DhcpLease,
        rebind: bool,
        cfg: &DhcpConfig,
    ) -> Result<Renewal> {
        let ip = lease.address.addr();
        let m = self.message(fresh_xid(), MessageType::Request, ip);
        let to = if rebind {
            (ip, Ipv4Addr::BROADCAST, BROADCAST_MAC)
        } else {
            (ip, lease.server, lease.server_mac.octets())
        };
        let got = self.exchange(&m, to, cfg, answer).await?;
        Ok(match got {
            Some(Answer::Ack(l)) => Renewal::Ack(l),
            Some(Answer::Nak(_)) => Renewal::Nak,
            None => Renewal::NoAnswer,
        })
    }

    /// Gives `lease` back (DHCPRELEASE, unicast to its server; no answer is expected).
    pub(crate) async fn release(&self, lease: &DhcpLease) -> Result<()> {
        let ip = lease.address.addr();
        let mut m = self.message(fresh_xid(), MessageType::Release, ip);
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(lease.server));
        self.send_when_queue_frees(&m, ip, lease.server, lease.server_mac.octets())
            .await
    }
}

/// The DHCPRELEASE of `lease` held by client `mac`/`client_id` as a whole Ethernet frame from
/// `mac` to the server's MAC (IPv4, UDP 68 -> 67, from the lease's address), for a sender
/// outside the client's namespace: reconcile, once the namespace and its link are gone, puts it
/// on the network's parent.
pub(crate) fn release_frame(mac: MacAddr, client_id: &[u8], lease: &DhcpLease) -> Result<Vec<u8>> {
    let ip = lease.address.addr();
    let mut m = Message::new_with_id(
        fresh_xid(),
        ip,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac.octets(),
    );
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Release));
    o.insert(DhcpOption::ClientIdentifier(client_id.to_vec()));
    o.insert(DhcpOption::ServerIdentifier(lease.server));
    let bytes = m.to_vec().map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("cannot encode the DHCP release of {}: {e}", lease.address),
        )
    })?;
    let mut f = Vec::with_capacity(14 + 28 + bytes.len());
    f.extend_from_slice(&lease.server_mac.octets());
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&super::wire::udp_packet(
        ip,
        lease.server,
        super::wire::CLIENT_PORT,
        super::wire::SERVER_PORT,
        &bytes,
    ));
    Ok(f)
}

enum Answer {
    Ack(DhcpLease),
    Nak(()),
}

fn queue_full(e: &Error) -> bool {
    matches!(e.errno(), Some(libc::ENOBUFS) | Some(libc::EAGAIN))
}

fn fresh_xid() -> u32 {
    let mut b = [0u8; 4];
    crate::sys::fill_random(&mut b);
    u32::from_ne_bytes(b)
}

fn server_id(r: &Message) -> Option<Ipv4Addr> {
    match r.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
        _ => None,
    }
}

/// An ACK as a lease (needs a server id, an address and a lease time), or a NAK.
fn answer(r: &Message, from: MacAddr) -> Option<Answer> {
    match r.opts().msg_type()? {
        MessageType::Nak => Some(Answer::Nak(())),
        MessageType::Ack => lease_from_ack(r, from, SystemTime::now()).map(Answer::Ack),
        _ => None,
    }
}

/// `now` is kept to the millisecond, as the record keeps it.
pub(crate) fn lease_from_ack(r: &Message, from: MacAddr, now: SystemTime) -> Option<DhcpLease> {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let now = std::time::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64);
    let server = server_id(r)?;
    let address = r.yiaddr();
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
        return None;
    }
    let lease_time = match r.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => return None,
    };
    let prefix = match r.opts().get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => {
            let bits = u32::from(*m);
            // A mask must be contiguous ones.
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return None;
            }
            bits.leading_ones() as u8
        }
        // RFC 2131 lets the server leave it out: the class's (RFC 2132 recommends sending it).
        _ => match address.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        },
    };
    let router = match r.opts().get(OptionCode::Router) {
        Some(DhcpOption::Router(v)) => v.first().copied().filter(|g| !g.is_unspecified()),
        _ => None,
    };
    let dns_servers = match r.opts().get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(v)) => v
            .iter()
            .copied()
            .filter(|a| !a.is_unspecified() && !a.is_broadcast())
            .collect(),
        _ => Vec::new(),
    };
    // A name the record can keep on its line (a DNS name has no spaces or controls).
    let domain = match r.opts().get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(d)) => Some(d.trim_end_matches('\0').trim_end_matches('.'))
            .filter(|d| {
                !d.is_empty()
                    && d.len() <= 253
                    && d.bytes().all(|b| b.is_ascii_graphic() && b != b',')
            })
            .map(str::to_string),
        _ => None,
    };
    let secs = |code, default: u32| match r.opts().get(code) {
        Some(DhcpOption::Renewal(t)) | Some(DhcpOption::Rebinding(t)) => (*t).min(lease_time),
        _ => default,
    };
    let (t1, t2) = if lease_time == u32::MAX {
        (u32::MAX, u32::MAX)
    } else {
        let t1 = secs(OptionCode::Renewal, lease_time / 2);
        let t2 = secs(
            OptionCode::Rebinding,
            (u64::from(lease_time) * 7 / 8) as u32,
        );
        (t1.min(t2), t2)
    };
    Some(DhcpLease {
        address: Ipv4Net::new(address, prefix).ok()?,
        server,
        server_mac: from,
        router,
        lease_time: Duration::from_secs(lease_time.into()),
        t1: Duration::from_secs(t1.into()),
        t2: Duration::from_secs(t2.into()),
        obtained: now,
        dns_servers,
        domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::new(
            Ipv4Addr::UNSPECIFIED,
            "10.0.0.9".parse().unwrap(),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[2, 0, 0, 0, 0, 1],
        );
        m.set_opcode(Opcode::BootReply);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Ack));
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    /// The release reconcile sends from the parent: Ethernet from the client's MAC to the
    /// server's, IPv4 from the leased address, UDP 68 -> 67, a DHCPRELEASE naming the client.
    #[test]
    fn release_frames_name_the_client() {
        let server_mac = MacAddr::new([2, 0, 0, 0, 0, 0x99]);
        let full = ack(vec![
            DhcpOption::ServerIdentifier("10.0.0.1".parse().unwrap()),
            DhcpOption::AddressLeaseTime(100),
            DhcpOption::SubnetMask("255.255.255.0".parse().unwrap()),
        ]);
        let lease = lease_from_ack(&full, server_mac, SystemTime::now()).unwrap();
        let mac = MacAddr::new([2, 0, 0, 0, 0, 7]);
        let f = release_frame(mac, &[0, 1, 2], &lease).unwrap();
        assert_eq!(&f[..6], &server_mac.octets());
        assert_eq!(&f[6..12], &mac.octets());
        assert_eq!(&f[12..14], &[8, 0]);
        assert_eq!(&f[14 + 12..14 + 20], &[10, 0, 0, 9, 10, 0, 0, 1]);
        let payload = super::super::wire::udp_payload(&f[14..], 67).unwrap();
        let m = Message::from_bytes(payload).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(m.ciaddr(), "10.0.0.9".parse::<Ipv4Addr>().unwrap());
        assert_eq!(&m.chaddr()[..6], &mac.octets());
        assert_eq!(
            m.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(vec![0, 1, 2]))
        );
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier("10.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn acks_become_leases() {
        let from = MacAddr::new([2, 0, 0, 0, 0, 0x99]);
        let now = SystemTime::now();
        let full = ack(vec![
            DhcpOption::ServerIdentifier("10.0.0.1".parse().unwrap()),
            DhcpOption::AddressLeaseTime(100),
            DhcpOption::SubnetMask("255.255.255.0".parse().unwrap()),
            DhcpOption::Router(vec!["10.0.0.254".parse().unwrap()]),
            DhcpOption::DomainNameServer(vec!["10.0.0.53".parse().unwrap()]),
            DhcpOption::DomainName("lan.example".into()),
        ]);
        let l = lease_from_ack(&full, from, now).unwrap();
        assert_eq!(l.dns_servers, ["10.0.0.53".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(l.domain.as_deref(), Some("lan.example"));
        assert_eq!(l.address, "10.0.0.9/24".parse::<Ipv4Net>().unwrap());
        assert_eq!((l.t1.as_secs(), l.t2.as_secs()), (50, 87));
        assert_eq!(l.router, Some("10.0.0.254".parse().unwrap()));
        // Through the wire format and back.
        let again = Message::from_bytes(&full.to_vec().unwrap()).unwrap();
        assert_eq!(lease_from_ack(&again, from, now).unwrap(), l);
        // No lease time, no server id, or a broken mask: not a usable ACK.
        assert!(lease_from_ack(&ack(vec![DhcpOption::AddressLeaseTime(5)]), from, now).is_none());
        let holes = ack(vec![
            DhcpOption::ServerIdentifier("10.0.0.1".parse().unwrap()),
            DhcpOption::AddressLeaseTime(100),
            DhcpOption::SubnetMask("255.0.255.0".parse().unwrap()),
        ]);
        assert!(lease_from_ack(&holes, from, now).is_none());
        let infinite = ack(vec![
            DhcpOption::ServerIdentifier("10.0.0.1".parse().unwrap()),
            DhcpOption::AddressLeaseTime(u32::MAX),
        ]);
        let l = lease_from_ack(&infinite, from, now).unwrap();
        assert!(l.is_infinite() && l.expires().is_none());
        assert_eq!(l.address.prefix_len(), 8);
    }
}

//! The DHCP client's socket: a packet socket of IPv4 frames on the endpoint's link, opened
//! inside its namespace. It works before the interface has an address (the kernel drops a
//! unicast OFFER to an address it does not hold, and a UDP socket cannot send from 0.0.0.0
//! reliably), sends to a server's MAC without an ARP entry, and sees only its own link's frames.
//! The IPv4 and UDP headers around `dhcproto`'s payload are built and checked here.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::probe::LinkListener;
use crate::types::MacAddr;

pub(super) const CLIENT_PORT: u16 = 68;
pub(super) const SERVER_PORT: u16 = 67;
const ETH_P_IP: u16 = 0x0800;

/// An IPv4 packet socket bound to one link, registered with the runtime; closed off it.
pub(super) struct LinkSocket {
    listener: LinkListener,
    ifindex: u32,
}

impl LinkSocket {
    pub(super) async fn open(netns: &Netns, ifindex: u32) -> Result<LinkSocket> {
        let listener = LinkListener::open_kind(
            netns,
            ifindex,
            libc::SOCK_DGRAM,
            ETH_P_IP,
            "run the DHCP client",
        )
        .await?;
        Ok(LinkSocket { listener, ifindex })
    }

    /// Sends `payload` as a UDP datagram `src`:68 -> `dst`:67 in a frame to `dst_mac`.
    pub(super) fn send(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dst_mac: [u8; 6],
        payload: &[u8],
    ) -> Result<()> {
        let pkt = udp_packet(src, dst, CLIENT_PORT, SERVER_PORT, payload);
        let ll = link_addr(self.ifindex, dst_mac);
        let fd = self.listener.raw();
        // SAFETY: buffers valid for their lengths.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&ll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(Error::io(
                format!("cannot send a DHCP message on link {}", self.ifindex),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The next UDP payload to port 68 received before `deadline`, with the sender's MAC;
    /// `None` at the deadline. Frames of other kinds, and malformed ones, are skipped.
    pub(super) async fn recv(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<(Vec<u8>, MacAddr)>> {
        let mut buf = vec![0u8; 2048];
        while let Some((n, mac)) = self.listener.next_from(&mut buf, deadline).await? {
            if let Some(payload) = udp_payload(&buf[..n], CLIENT_PORT) {
                return Ok(Some((payload.to_vec(), mac)));
            }
        }
        Ok(None)
    }
}

fn link_addr(ifindex: u32, dst: [u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ETH_P_IP.to_be();
    ll.sll_ifindex = ifindex as i32;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&dst);
    ll
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (TTL 64, DF clear) holding one UDP datagram with its checksum.
pub(super) fn udp_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0x10]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    // The pseudo-header: addresses, protocol, UDP length.
    let mut pseudo = 0u32;
    for w in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    pseudo += 17 + udp_len as u32;
    let c = match checksum(&p[20..], pseudo) {
        0 => 0xffff,
        c => c,
    };
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// The payload of `pkt` if it is a well-formed, unfragmented IPv4 UDP datagram to `port`.
pub(super) fn udp_payload(pkt: &[u8], port: u16) -> Option<&[u8]> {
    if pkt.len() < 28 || pkt[0] >> 4 != 4 || pkt[9] != 17 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    // Fragments (more-fragments flag or an offset) are not DHCP replies we can read.
    if ihl < 20 || total > pkt.len() || total < ihl + 8 || pkt[6] & 0x3f != 0 || pkt[7] != 0 {
        return None;
    }
    let udp = &pkt[ihl..total];
    if u16::from_be_bytes([udp[2], udp[3]]) != port {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if len < 8 || len > udp.len() {
        return None;
    }
    Some(&udp[8..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_checksums_verify() {
        let p = udp_packet(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            b"hello dhcp",
        );
        assert_eq!(checksum(&p[..20], 0), 0, "IPv4 header checksum");
        assert_eq!(udp_payload(&p, 67), Some(&b"hello dhcp"[..]));
        assert_eq!(udp_payload(&p, 68), None);
        assert_eq!(udp_payload(&p[..20], 67), None);
        let mut frag = p.clone();
        frag[6] = 0x20;
        assert_eq!(udp_payload(&frag, 67), None);
        let mut bad_len = p.clone();
        bad_len[25] = 0xff;
        assert_eq!(udp_payload(&bad_len, 67), None);
    }
}

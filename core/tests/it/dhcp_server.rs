//! A small DHCPv4 server for the tests, on `dhcproto` (the wire format the library's client
//! uses, but none of its code): lease times of seconds, and knobs to go silent, refuse
//! renewals (NAK), offer an address outside the network's subnet, or put a malformed message
//! on the wire before each answer. It logs every message it receives, and whether it came
//! unicast (to its address) or broadcast.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

use crate::common::TestNs;

/// One message the server received.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Seen {
    pub(crate) kind: MessageType,
    /// Sent to the server's address (true) or broadcast.
    pub(crate) unicast: bool,
    pub(crate) ciaddr: Ipv4Addr,
    pub(crate) chaddr: [u8; 6],
    pub(crate) client_id: Option<Vec<u8>>,
    pub(crate) hostname: Option<String>,
    pub(crate) requested: Option<Ipv4Addr>,
    pub(crate) server_id: Option<Ipv4Addr>,
}

#[derive(Default)]
pub(crate) struct Knobs {
    pub(crate) silent: AtomicBool,
    pub(crate) nak_renewals: AtomicBool,
    pub(crate) garbage_first: AtomicBool,
}

pub(crate) struct TestServer {
    pub(crate) addr: Ipv4Addr,
    pub(crate) knobs: Arc<Knobs>,
    log: Arc<Mutex<Vec<Seen>>>,
    /// Client id -> address held.
    leases: Arc<Mutex<HashMap<Vec<u8>, Ipv4Addr>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) struct Plan {
    /// The server's address on `dev` (a /24).
    pub(crate) addr: Ipv4Addr,
    /// First address handed out (then the next ones).
    pub(crate) first: Ipv4Addr,
    pub(crate) lease_secs: u32,
    pub(crate) t1: u32,
    pub(crate) t2: u32,
}

impl TestServer {
    /// Starts the server on `dev` of `ns` (which gets `plan.addr/24`).
    pub(crate) async fn start(ns: &TestNs, dev: &str, plan: Plan) -> TestServer {
        ns.handle
            .add_address(dev, format!("{}/24", plan.addr).parse().unwrap())
            .await
            .unwrap();
        let addr = plan.addr;
        // Two sockets: one for unicast to the server's address, one for broadcasts.
        let (uni, bcast) = ns
            .ns
            .run(move || {
                let open = |ip: Ipv4Addr| {
                    let s = socket2_like_bind(ip);
                    s.set_broadcast(true).unwrap();
                    s.set_nonblocking(true).unwrap();
                    s
                };
                (open(addr), open(Ipv4Addr::BROADCAST))
            })
            .unwrap();
        let knobs = Arc::new(Knobs::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let leases = Arc::new(Mutex::new(HashMap::new()));
        let uni = Arc::new(tokio::net::UdpSocket::from_std(uni).unwrap());
        let bcast = tokio::net::UdpSocket::from_std(bcast).unwrap();
        let plan = Arc::new(plan);
        let mut tasks = Vec::new();
        for (sock, unicast) in [(uni.clone(), true), (Arc::new(bcast), false)] {
            let (reply, knobs, log, leases, plan) = (
                uni.clone(),
                knobs.clone(),
                log.clone(),
                leases.clone(),
                plan.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    let Ok((n, _from)) = sock.recv_from(&mut buf).await else {
                        return;
                    };
                    let Ok(m) = Message::from_bytes(&buf[..n]) else {
                        continue;
                    };
                    if let Some(answer) = serve(&m, unicast, &plan, &knobs, &log, &leases) {
                        let to = SocketAddr::from((Ipv4Addr::BROADCAST, 68));
                        if knobs.garbage_first.load(Ordering::SeqCst) {
                            let _ = reply.send_to(b"\x02\x01garbage, not DHCP", to).await;
                        }
                        let _ = reply.send_to(&answer.to_vec().unwrap(), to).await;
                    }
                }
            }));
        }
        TestServer {
            addr,
            knobs,
            log,
            leases,
            tasks,
        }
    }

    pub(crate) fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    /// The addresses the server holds leased.
    pub(crate) fn leased(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<_> = self.leases.lock().unwrap().values().copied().collect();
        v.sort();
        v
    }

    pub(crate) fn set(&self, knob: fn(&Knobs) -> &AtomicBool, on: bool) {
        knob(&self.knobs).store(on, Ordering::SeqCst);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A UDP socket on `ip`:67 with SO_REUSEADDR (the unicast and the broadcast one share the port).
fn socket2_like_bind(ip: Ipv4Addr) -> UdpSocket {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a fresh descriptor, owned by the UdpSocket at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let sock = UdpSocket::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            4,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 67u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(r, 0, "bind {ip}:67: {}", std::io::Error::last_os_error());
        sock
    }
}

fn serve(
    m: &Message,
    unicast: bool,
    plan: &Plan,
    knobs: &Knobs,
    log: &Mutex<Vec<Seen>>,
    leases: &Mutex<HashMap<Vec<u8>, Ipv4Addr>>,
) -> Option<Message> {
    if m.opcode() != Opcode::BootRequest {
        return None;
    }
    let kind = m.opts().msg_type()?;
    let client_id = match m.opts().get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(c)) => Some(c.clone()),
        _ => None,
    };
    let requested = match m.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => None,
    };
    let server_id = match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    };
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&m.chaddr()[..6]);
    log.lock().unwrap().push(Seen {
        kind,
        unicast,
        ciaddr: m.ciaddr(),
        chaddr,
        client_id: client_id.clone(),
        hostname: match m.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => Some(h.clone()),
            _ => None,
        },
        requested,
        server_id,
    });
    if knobs.silent.load(Ordering::SeqCst) {
        return None;
    }
    let key = client_id.unwrap_or_else(|| chaddr.to_vec());
    let mut leases = leases.lock().unwrap();
    let reply = |kind: MessageType, yiaddr: Ipv4Addr| {
        let mut r = Message::new_with_id(
            m.xid(),
            m.ciaddr(),
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &chaddr,
        );
        r.set_opcode(Opcode::BootReply);
        let o = r.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(plan.addr));
        if kind != MessageType::Nak {
            o.insert(DhcpOption::AddressLeaseTime(plan.lease_secs));
            o.insert(DhcpOption::Renewal(plan.t1));
            o.insert(DhcpOption::Rebinding(plan.t2));
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            o.insert(DhcpOption::Router(vec![plan.addr]));
        }
        Some(r)
    };
    let free = |leases: &HashMap<Vec<u8>, Ipv4Addr>| {
        (0u32..200)
            .map(|i| Ipv4Addr::from(u32::from(plan.first) + i))
            .find(|a| !leases.values().any(|l| l == a))
    };
    match kind {
        MessageType::Discover => {
            let a = match leases.get(&key) {
                Some(a) => *a,
                None => free(&leases)?,
            };
            reply(MessageType::Offer, a)
        }
        MessageType::Request if !m.ciaddr().is_unspecified() => {
            // RENEWING / REBINDING.
            if knobs.nak_renewals.load(Ordering::SeqCst) || leases.get(&key) != Some(&m.ciaddr()) {
                leases.remove(&key);
                return reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED);
            }
            reply(MessageType::Ack, m.ciaddr())
        }
        MessageType::Request => {
            let want = requested?;
            if server_id.is_some_and(|s| s != plan.addr) {
                return None;
            }
            let taken_by_other = leases.iter().any(|(k, a)| *a == want && *k != key);
            let in_range = want.octets()[..3] == plan.addr.octets()[..3];
            if taken_by_other || !in_range {
                return reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED);
            }
            leases.insert(key, want);
            reply(MessageType::Ack, want)
        }
        MessageType::Release => {
            if leases.get(&key) == Some(&m.ciaddr()) {
                leases.remove(&key);
            }
            None
        }
        _ => None,
    }
}

//! Pools: one subnet, its gateway, its allocation ranges and its reserved addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::{Error, ErrorKind, Result};

/// An address as a number (IPv4 in the low 32 bits).
pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `v` of the family `v6`.
pub(crate) fn u128_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// Parses an address, naming `what` in the error.
pub(crate) fn parse_ip(text: &str, what: &str) -> Result<IpAddr> {
    text.parse::<IpAddr>().map_err(|_| {
        Error::invalid(format!(
            "{what} `{}` is not an IP address: write e.g. `172.22.16.10` or `fd00::10`",
            text.escape_debug()
        ))
    })
}

/// Parses a network in CIDR notation with no host bits set, naming `what` in the error.
pub(crate) fn parse_net(text: &str, what: &str) -> Result<IpNet> {
    let net: IpNet = text.parse().map_err(|_| {
        Error::invalid(format!(
            "{what} `{}` is not a CIDR network: write e.g. `172.22.16.0/24` or `fd00::/64`",
            text.escape_debug()
        ))
    })?;
    if net.addr() != net.network() {
        return Err(Error::invalid(format!(
            "{what} `{net}` has host bits set: did you mean `{}`?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// An allocation range inside a pool's subnet.
///
/// Either a CIDR (Docker `--ip-range`) or an inclusive start-end span (CNI `rangeStart` /
/// `rangeEnd`). As text: `172.22.16.128/25` or `172.22.16.10-172.22.16.50`.
///
/// ```
/// use underlay::ipam::AllocRange;
/// let r: AllocRange = "172.22.16.10-172.22.16.50".parse()?;
/// assert_eq!(r.to_string(), "172.22.16.10-172.22.16.50");
/// assert!("172.22.16.50-172.22.16.10".parse::<AllocRange>().is_err());
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocRange {
    /// Every address of a CIDR block (Docker `--ip-range`).
    Cidr(IpNet),
    /// Every address from `start` to `end` inclusive (CNI `rangeStart`/`rangeEnd`).
    Span {
        /// First address.
        start: IpAddr,
        /// Last address (inclusive).
        end: IpAddr,
    },
}

impl AllocRange {
    /// A start-end span; `start` and `end` must be of one family and in order.
    pub fn span(start: IpAddr, end: IpAddr) -> Result<AllocRange> {
        if start.is_ipv4() != end.is_ipv4() {
            return Err(Error::invalid(format!(
                "range {start}-{end} mixes IPv4 and IPv6: give two addresses of one family"
            )));
        }
        if ip_to_u128(start) > ip_to_u128(end) {
            return Err(Error::invalid(format!(
                "range {start}-{end} ends before it starts: write the lower address first"
            )));
        }
        Ok(AllocRange::Span { start, end })
    }

    /// First and last address as numbers.
    pub(crate) fn bounds(&self) -> (u128, u128) {
        match *self {
            AllocRange::Cidr(net) => (ip_to_u128(net.network()), ip_to_u128(net.broadcast())),
            AllocRange::Span { start, end } => (ip_to_u128(start), ip_to_u128(end)),
        }
    }

    fn is_ipv4(&self) -> bool {
        match self {
            AllocRange::Cidr(net) => matches!(net, IpNet::V4(_)),
            AllocRange::Span { start, .. } => start.is_ipv4(),
        }
    }
}

impl FromStr for AllocRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<AllocRange> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            AllocRange::span(
                parse_ip(a.trim(), "range start")?,
                parse_ip(b.trim(), "range end")?,
            )
        } else if s.contains('/') {
            Ok(AllocRange::Cidr(parse_net(s, "range")?))
        } else {
            Err(Error::invalid(format!(
                "range `{}` is neither a CIDR (`172.22.16.128/25`) nor a span \
                 (`172.22.16.10-172.22.16.50`)",
                s.escape_debug()
            )))
        }
    }
}

impl fmt::Display for AllocRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocRange::Cidr(net) => write!(f, "{net}"),
            AllocRange::Span { start, end } => write!(f, "{start}-{end}"),
        }
    }
}

/// An address never handed out (Docker `--aux-address name=ip`): the host's own address, a
/// router. As text: `name=ip` or a bare `ip`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reserved {
    name: String,
    addr: IpAddr,
}

impl Reserved {
    /// A reserved address with a label (may be empty); the label has no whitespace, `=` or `,`.
    pub fn new(name: impl Into<String>, addr: IpAddr) -> Result<Reserved> {
        let name = name.into();
        if name.len() > 64
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == ',')
        {
            return Err(Error::invalid(format!(
                "reserved address name `{}` is invalid: use at most 64 letters, digits, `-`, `_`, `.`",
                name.escape_debug()
            )));
        }
        Ok(Reserved { name, addr })
    }

    /// The label, e.g. `exclude_host` (may be empty).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
}

impl FromStr for Reserved {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reserved> {
        let s = s.trim();
        match s.split_once('=') {
            Some((name, ip)) => Reserved::new(name, parse_ip(ip, "reserved address")?),
            None => Reserved::new("", parse_ip(s, "reserved address")?),
        }
    }
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}={}", self.name, self.addr)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayChoice {
    FirstUsable,
    Absent,
    At(IpAddr),
    /// A gateway and "no gateway" both given: refused at `build`.
    Contradiction(IpAddr),
}

/// Builds a [`Pool`]; see [`Pool::builder`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    subnet: IpNet,
    gateway: GatewayChoice,
    ranges: Vec<AllocRange>,
    reserved: Vec<Reserved>,
}

impl PoolBuilder {
    /// The gateway address (must be inside the subnet). Default: the first usable address.
    /// Given with [`PoolBuilder::no_gateway`] too, `build` fails: the two contradict.
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        self.gateway = match self.gateway {
            GatewayChoice::Absent | GatewayChoice::Contradiction(_) => {
                GatewayChoice::Contradiction(gateway)
            }
            _ => GatewayChoice::At(gateway),
        };
        self
    }

    /// No gateway at all (an isolated segment): the first address is then allocatable.
    /// Given with [`PoolBuilder::gateway`] too, `build` fails: the two contradict.
    pub fn no_gateway(mut self) -> Self {
        self.gateway = match self.gateway {
            GatewayChoice::At(gw) | GatewayChoice::Contradiction(gw) => {
                GatewayChoice::Contradiction(gw)
            }
            _ => GatewayChoice::Absent,
        };
        self
    }

    /// Adds an allocation range. Without any, the whole subnet is the range.
    pub fn range(mut self, range: AllocRange) -> Self {
        self.ranges.push(range);
        self
    }

    /// Reserves an address (never handed out), e.g. the host's own one.
    pub fn reserve(mut self, reserved: Reserved) -> Self {
        self.reserved.push(reserved);
        self
    }

    /// Validates everything and builds the pool.
    pub fn build(self) -> Result<Pool> {
        Pool::validate(self)
    }
}

/// Addresses to allocate from: one subnet with its gateway, allocation ranges and reserved
/// addresses, or (a CNI host-local range set over several subnets) several such segments.
///
/// For IPv4 the network, broadcast and gateway addresses are never handed out; for IPv6 the
/// subnet-router anycast address (the first one) and the gateway. An owner gets one address
/// from a pool: next-fit over the segments in order, going on into the next segment when one
/// is full, as host-local's range set iterator does; each address carries its own segment's
/// prefix length and gateway. As text (the form the store keeps):
/// `SUBNET [gateway=IP|none] [range=CIDR|START-END]... [reserve=[NAME=]IP]...`, segments
/// joined by ` + `.
///
/// ```
/// use underlay::ipam::{AllocRange, Pool, Reserved};
/// // Docker: --subnet 192.168.1.0/24 --ip-range 192.168.1.192/27 --aux-address exclude_host=192.168.1.21
/// let pool = Pool::builder("192.168.1.0/24".parse().unwrap())
///     .range("192.168.1.192/27".parse()?)
///     .reserve("exclude_host=192.168.1.21".parse()?)
///     .build()?;
/// assert_eq!(pool.gateway(), Some("192.168.1.1".parse().unwrap()));
/// assert_eq!(pool.capacity(), 32);
/// // The same pool as text.
/// let again: Pool = pool.to_string().parse()?;
/// assert_eq!(again, pool);
/// // A range set over two subnets: 10.1.0.0/30 first, then 10.2.0.0/30.
/// let set = Pool::new("10.1.0.0/30".parse().unwrap())?.then(Pool::new("10.2.0.0/30".parse().unwrap())?)?;
/// assert_eq!(set.to_string(), "10.1.0.0/30 gateway=10.1.0.1 + 10.2.0.0/30 gateway=10.2.0.1");
/// assert_eq!((set.capacity(), set.segments().len()), (2, 2));
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    segs: Vec<Segment>,
    /// Allocation spans as address numbers: per segment, in segment order, its spans sorted
    /// and disjoint.
    spans: Vec<(u128, u128)>,
    capacity: u128,
}

/// One subnet of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    subnet: IpNet,
    gateway: Option<IpAddr>,
    ranges: Vec<AllocRange>,
    reserved: Vec<Reserved>,
    /// This segment's spans: `Pool::spans[spans.0..spans.1]`.
    spans: (usize, usize),
    /// Address numbers never handed out, sorted, unique.
    excluded: Vec<u128>,
}

impl Segment {
    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == matches!(self.subnet, IpNet::V6(_)) && self.subnet.contains(&ip)
    }

    fn contains_num(&self, n: u128) -> bool {
        ip_to_u128(self.subnet.network()) <= n && n <= ip_to_u128(self.subnet.broadcast())
    }
}

impl Pool {
    /// Starts a pool on `subnet` (IPv4 /1 to /30, IPv6 /1 to /126, no host bits set).
    pub fn builder(subnet: IpNet) -> PoolBuilder {
        PoolBuilder {
            subnet,
            gateway: GatewayChoice::FirstUsable,
            ranges: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// A pool over the whole of `subnet` with the default gateway.
    pub fn new(subnet: IpNet) -> Result<Pool> {
        Pool::builder(subnet).build()
    }

    /// This pool followed by the segments of `next` (a host-local range set over several
    /// subnets): an owner still gets one address, from `next` once this pool is full. The
    /// subnets must be of one family and disjoint.
    pub fn then(self, next: Pool) -> Result<Pool> {
        if self.is_ipv6() != next.is_ipv6() {
            return Err(Error::invalid(format!(
                "pool {} and pool {} mix IPv4 and IPv6: one address comes from a pool, so give \
                 each family its own pool",
                self.subnet(),
                next.subnet()
            )));
        }
        for a in &self.segs {
            for b in &next.segs {
                if nets_overlap(a.subnet, b.subnet) {
                    return Err(Error::new(
                        ErrorKind::Overlap,
                        format!(
                            "subnets {} and {} of one pool overlap: give disjoint subnets",
                            a.subnet, b.subnet
                        ),
                    ));
                }
            }
        }
        let Pool {
            mut segs,
            mut spans,
            capacity,
        } = self;
        let shift = spans.len();
        for mut s in next.segs {
            s.spans = (s.spans.0 + shift, s.spans.1 + shift);
            segs.push(s);
        }
        spans.extend(next.spans);
        Ok(Pool {
            segs,
            spans,
            capacity: capacity.saturating_add(next.capacity),
        })
    }

    /// The segments, each a pool of one subnet, in allocation order (one for most pools).
    pub fn segments(&self) -> Vec<Pool> {
        self.segs
            .iter()
            .map(|s| Pool {
                spans: self.spans[s.spans.0..s.spans.1].to_vec(),
                capacity: segment_capacity(&self.spans[s.spans.0..s.spans.1], &s.excluded),
                segs: vec![Segment {
                    spans: (0, s.spans.1 - s.spans.0),
                    ..s.clone()
                }],
            })
            .collect()
    }

    fn validate(b: PoolBuilder) -> Result<Pool> {
        let subnet = b.subnet;
        let v6 = matches!(subnet, IpNet::V6(_));
        if subnet.addr() != subnet.network() {
            return Err(Error::invalid(format!(
                "subnet `{subnet}` has host bits set: did you mean `{}`?",
                subnet.trunc()
            )));
        }
        let (max, fam) = if v6 { (126, "IPv6") } else { (30, "IPv4") };
        if subnet.prefix_len() == 0 || subnet.prefix_len() > max {
            return Err(Error::invalid(format!(
                "subnet `{subnet}`: an {fam} pool needs a prefix length from /1 to /{max}"
            )));
        }
        let base = ip_to_u128(subnet.network());
        let last = ip_to_u128(subnet.broadcast());
        let inside = |ip: IpAddr| ip.is_ipv6() == v6 && subnet.contains(&ip);

        let gateway = match b.gateway {
            GatewayChoice::Contradiction(gw) => {
                return Err(Error::invalid(format!(
                    "subnet `{subnet}`: gateway {gw} and no gateway were both given: give one \
                     (a gateway address, or none)"
                )))
            }
            GatewayChoice::Absent => None,
            GatewayChoice::FirstUsable => Some(u128_to_ip(base + 1, v6)),
            GatewayChoice::At(gw) => {
                if !inside(gw) {
                    return Err(Error::invalid(format!(
                        "gateway {gw} is outside subnet {subnet}: give an address inside it"
                    )));
                }
                let n = ip_to_u128(gw);
                if !v6 && (n == base || n == last) {
                    return Err(Error::invalid(format!(
                        "gateway {gw} is the network or broadcast address of {subnet}: \
                         give a host address"
                    )));
                }
                Some(gw)
            }
        };

        let mut spans = Vec::with_capacity(b.ranges.len().max(1));
        for r in &b.ranges {
            let (lo, hi) = r.bounds();
            if r.is_ipv4() == v6
                || !subnet.contains(&u128_to_ip(lo, v6))
                || !subnet.contains(&u128_to_ip(hi, v6))
            {
                return Err(Error::invalid(format!(
                    "range {r} is outside subnet {subnet}: give a range inside it"
                )));
            }
            spans.push((lo, hi, *r));
        }
        if spans.is_empty() {
            spans.push((base, last, AllocRange::Cidr(subnet)));
        }
        spans.sort_by_key(|s| s.0);
        for w in spans.windows(2) {
            if w[1].0 <= w[0].1 {
                return Err(Error::new(
                    ErrorKind::Overlap,
                    format!(
                        "ranges {} and {} of pool {subnet} overlap: make them disjoint",
                        w[0].2, w[1].2
                    ),
                ));
            }
        }

        let mut excluded = Vec::with_capacity(b.reserved.len() + 3);
        excluded.push(base); // IPv4 network address, IPv6 subnet-router anycast.
        if !v6 {
            excluded.push(last);
        }
        if let Some(gw) = gateway {
            excluded.push(ip_to_u128(gw));
        }
        for r in &b.reserved {
            if !inside(r.addr) {
                return Err(Error::invalid(format!(
                    "reserved address {r} is outside subnet {subnet}: give an address inside it"
                )));
            }
            excluded.push(ip_to_u128(r.addr));
        }
        excluded.sort_unstable();
        excluded.dedup();

        let spans: Vec<(u128, u128)> = spans.into_iter().map(|(lo, hi, _)| (lo, hi)).collect();
        let capacity = segment_capacity(&spans, &excluded);
        if capacity == 0 {
            return Err(Error::invalid(format!(
                "pool {subnet} has no usable address in its ranges once the network, broadcast, \
                 gateway and reserved addresses are excluded: widen the ranges"
            )));
        }
        Ok(Pool {
            segs: vec![Segment {
                subnet,
                gateway,
                ranges: b.ranges,
                reserved: b.reserved,
                spans: (0, spans.len()),
                excluded,
            }],
            spans,
            capacity,
        })
    }

    /// The subnet (of the first segment: see [`Pool::segments`]).
    pub fn subnet(&self) -> IpNet {
        self.segs[0].subnet
    }

    /// The gateway, if any (of the first segment: see [`Pool::gateway_of`]).
    pub fn gateway(&self) -> Option<IpAddr> {
        self.segs[0].gateway
    }

    /// The allocation ranges as given (empty: the whole subnet; of the first segment).
    pub fn ranges(&self) -> &[AllocRange] {
        &self.segs[0].ranges
    }

    /// The reserved addresses (of the first segment).
    pub fn reserved(&self) -> &[Reserved] {
        &self.segs[0].reserved
    }

    /// The subnets of every segment, in order.
    pub(crate) fn subnets(&self) -> Vec<IpNet> {
        self.segs.iter().map(|s| s.subnet).collect()
    }

    /// The subnet of the segment holding `ip` (`None` outside the pool).
    pub(crate) fn subnet_of(&self, ip: IpAddr) -> Option<IpNet> {
        self.segment_of(ip).map(|s| s.subnet)
    }

    /// The gateway of the segment holding `ip` (`None` outside the pool, or without one).
    pub fn gateway_of(&self, ip: IpAddr) -> Option<IpAddr> {
        self.segment_of(ip).and_then(|s| s.gateway)
    }

    fn segment_of(&self, ip: IpAddr) -> Option<&Segment> {
        self.segs.iter().find(|s| s.contains(ip))
    }

    /// How many addresses the pool can hand out.
    pub fn capacity(&self) -> u128 {
        self.capacity
    }

    /// True for an IPv6 pool.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.segs[0].subnet, IpNet::V6(_))
    }

    /// True if `ip` is inside a subnet of the pool.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.segment_of(ip).is_some()
    }

    /// True if `ip` lies in one of the allocation ranges.
    pub fn in_ranges(&self, ip: IpAddr) -> bool {
        self.contains(ip) && self.span_index(self.offset(ip)).is_some()
    }

    /// Why `ip` (inside the pool) can never be handed out, if it cannot.
    pub fn excluded_reason(&self, ip: IpAddr) -> Option<String> {
        let seg = self.segment_of(ip)?;
        let n = ip_to_u128(ip);
        if seg.excluded.binary_search(&n).is_err() {
            return None;
        }
        if Some(ip) == seg.gateway {
            return Some("the gateway".into());
        }
        if let Some(r) = seg.reserved.iter().find(|r| r.addr == ip) {
            return Some(if r.name.is_empty() {
                "a reserved address".into()
            } else {
                format!("reserved as `{}`", r.name)
            });
        }
        let first = n == ip_to_u128(seg.subnet.network());
        Some(if first && self.is_ipv6() {
            "the subnet-router anycast address".into()
        } else if first {
            "the network address".into()
        } else {
            "the broadcast address".into()
        })
    }

    /// True if a subnet of one pool shares an address with a subnet of the other.
    pub fn overlaps(&self, other: &Pool) -> bool {
        self.segs
            .iter()
            .any(|a| other.segs.iter().any(|b| nets_overlap(a.subnet, b.subnet)))
    }

    /// The first pair of overlapping subnets of the two pools.
    pub(crate) fn overlapping(&self, other: &Pool) -> Option<(IpNet, IpNet)> {
        self.segs.iter().find_map(|a| {
            other
                .segs
                .iter()
                .find(|b| nets_overlap(a.subnet, b.subnet))
                .map(|b| (a.subnet, b.subnet))
        })
    }

    /// `ip` as a number: the allocator's offsets are address numbers, the same in every
    /// segment.
    pub(crate) fn offset(&self, ip: IpAddr) -> u128 {
        ip_to_u128(ip)
    }

    pub(crate) fn addr_at(&self, off: u128) -> IpAddr {
        u128_to_ip(off, self.is_ipv6())
    }

    /// The allocation spans in allocation order: per segment, sorted.
    pub(crate) fn spans(&self) -> &[(u128, u128)] {
        &self.spans
    }

    /// Every excluded address number, of every segment.
    pub(crate) fn excluded_offsets(&self) -> impl Iterator<Item = &u128> {
        self.segs.iter().flat_map(|s| s.excluded.iter())
    }

    pub(crate) fn is_excluded_offset(&self, off: u128) -> bool {
        self.segs
            .iter()
            .find(|s| s.contains_num(off))
            .is_some_and(|s| s.excluded.binary_search(&off).is_ok())
    }

    /// The index (into [`Pool::spans`]) of the span holding `off`.
    pub(crate) fn span_index(&self, off: u128) -> Option<usize> {
        let s = self.segs.iter().find(|s| s.contains_num(off))?;
        span_index(&self.spans[s.spans.0..s.spans.1], off).map(|j| s.spans.0 + j)
    }

    /// Where next-fit looks first after the cursor `cursor` (an offset, `None` before the
    /// first pick): the index of a span and the offset to start from in it (possibly past
    /// its end: then next-fit goes on with the following span).
    pub(crate) fn next_fit_start(&self, cursor: Option<u128>) -> (usize, u128) {
        match cursor {
            Some(c) => match self.span_index(c) {
                Some(j) => (j, c.saturating_add(1)),
                None => {
                    let j = self.span_after(c);
                    (j, self.spans[j].0)
                }
            },
            None => (0, self.spans[0].0),
        }
    }

    /// Where next-fit goes on after `off`, which lies in no span: the index of the next span
    /// of `off`'s segment, or of the following segment's first span (wrapping); 0 when `off`
    /// is outside the pool.
    pub(crate) fn span_after(&self, off: u128) -> usize {
        let Some(s) = self.segs.iter().find(|s| s.contains_num(off)) else {
            return 0;
        };
        let j = s.spans.0 + self.spans[s.spans.0..s.spans.1].partition_point(|x| x.0 <= off);
        j % self.spans.len()
    }
}

fn nets_overlap(a: IpNet, b: IpNet) -> bool {
    matches!(a, IpNet::V6(_)) == matches!(b, IpNet::V6(_))
        && (a.contains(&b.network()) || b.contains(&a.network()))
}

fn segment_capacity(spans: &[(u128, u128)], excluded: &[u128]) -> u128 {
    let mut capacity: u128 = spans.iter().map(|(lo, hi)| hi - lo + 1).sum();
    for n in excluded {
        if span_index(spans, *n).is_some() {
            capacity -= 1;
        }
    }
    capacity
}

/// The index of the span holding `off` in sorted, disjoint `spans`.
pub(crate) fn span_index(spans: &[(u128, u128)], off: u128) -> Option<usize> {
    let i = spans.partition_point(|s| s.1 < off);
    (i < spans.len() && spans[i].0 <= off).then_some(i)
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segs.iter().enumerate() {
            if i > 0 {
                write!(f, " + ")?;
            }
            write!(f, "{}", s.subnet)?;
            match s.gateway {
                Some(gw) => write!(f, " gateway={gw}")?,
                None => write!(f, " gateway=none")?,
            }
            for r in &s.ranges {
                write!(f, " range={r}")?;
            }
            for r in &s.reserved {
                write!(f, " reserve={r}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Pool {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pool> {
        let mut pool: Option<Pool> = None;
        for seg in s.split(" + ") {
            let seg = parse_segment(seg)?;
            pool = Some(match pool {
                None => seg,
                Some(p) => p.then(seg)?,
            });
        }
        pool.ok_or_else(|| Error::invalid("pool text is empty"))
    }
}

/// Parses one segment: `SUBNET [gateway=IP|none] [range=...] [reserve=...]`.
fn parse_segment(s: &str) -> Result<Pool> {
    let mut words = s.split_whitespace();
    let subnet = words.next().ok_or_else(|| {
        Error::invalid(
            "pool text is empty: write `SUBNET [gateway=IP|none] [range=...] [reserve=...]`, \
             segments joined by ` + `",
        )
    })?;
    let mut b = Pool::builder(parse_net(subnet, "subnet")?);
    for word in words {
        let (key, value) = word.split_once('=').ok_or_else(|| {
            Error::invalid(format!(
                "pool option `{}` has no `=`: write `gateway=IP`, `range=...` or `reserve=...` \
                 (and ` + ` between the segments of a pool over several subnets)",
                word.escape_debug()
            ))
        })?;
        b = match key {
            "gateway" if value == "none" => b.no_gateway(),
            "gateway" => b.gateway(parse_ip(value, "gateway")?),
            "range" => b.range(value.parse()?),
            "reserve" => b.reserve(value.parse()?),
            _ => {
                return Err(Error::invalid(format!(
                    "unknown pool option `{}`: use `gateway`, `range` or `reserve`",
                    key.escape_debug()
                )))
            }
        };
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_and_no_gateway_contradict() {
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        for b in [
            Pool::builder(net).gateway(gw).no_gateway(),
            Pool::builder(net).no_gateway().gateway(gw),
        ] {
            let e = b.build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(
                e.to_string().contains("10.0.0.1") && e.to_string().contains("no gateway"),
                "{e}"
            );
        }
        for text in [
            "10.0.0.0/24 gateway=10.0.0.1 gateway=none",
            "10.0.0.0/24 gateway=none gateway=10.0.0.1",
        ] {
            assert!(text.parse::<Pool>().is_err(), "{text}");
        }
        // Either alone, or the same choice twice, is fine.
        assert!(Pool::builder(net)
            .no_gateway()
            .no_gateway()
            .build()
            .unwrap()
            .gateway()
            .is_none());
        assert_eq!(
            Pool::builder(net).gateway(gw).build().unwrap().gateway(),
            Some(gw)
        );
    }

    fn pool(s: &str) -> Result<Pool> {
        s.parse()
    }

    fn kind(r: Result<Pool>) -> ErrorKind {
        r.expect_err("should fail").kind()
    }

    #[test]
    fn defaults_v4() {
        let p = pool("172.22.16.0/24").unwrap();
        assert_eq!(p.gateway(), Some("172.22.16.1".parse().unwrap()));
        assert_eq!(p.capacity(), 253);
        assert_eq!(p.to_string(), "172.22.16.0/24 gateway=172.22.16.1");
        let n = pool("172.22.16.0/24 gateway=none").unwrap();
        assert_eq!(n.capacity(), 254);
        assert_eq!(n.gateway(), None);
    }

    #[test]
    fn defaults_v6_and_sizes() {
        let p = pool("fd00::/64").unwrap();
        assert_eq!(p.capacity(), (1u128 << 64) - 2);
        assert_eq!(pool("10.0.0.0/8").unwrap().capacity(), (1 << 24) - 3);
        assert_eq!(pool("10.0.0.0/30").unwrap().capacity(), 1);
        assert_eq!(pool("fd00::/126").unwrap().capacity(), 2);
        assert_eq!(kind(pool("10.0.0.0/31")), ErrorKind::InvalidArgument);
        assert_eq!(kind(pool("10.0.0.0/0")), ErrorKind::InvalidArgument);
        assert_eq!(kind(pool("fd00::/127")), ErrorKind::InvalidArgument);
    }

    #[test]
    fn gateway_checks() {
        let e = pool("10.0.0.0/24 gateway=10.0.1.1").unwrap_err();
        assert!(e.message().contains("outside subnet 10.0.0.0/24"), "{e}");
        assert!(pool("10.0.0.0/24 gateway=10.0.0.255").is_err());
        assert!(pool("10.0.0.0/24 gateway=10.0.0.0").is_err());
        assert!(pool("10.0.0.0/24 gateway=fd00::1").is_err());
        let p = pool("10.0.0.0/24 gateway=10.0.0.254").unwrap();
        assert_eq!(
            p.excluded_reason("10.0.0.254".parse().unwrap()).unwrap(),
            "the gateway"
        );
        assert_eq!(p.excluded_reason("10.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn range_checks() {
        let e = pool("10.0.0.0/24 range=10.0.1.0/28").unwrap_err();
        assert!(e.message().contains("outside subnet"), "{e}");
        assert!(pool("10.0.0.0/24 range=10.0.0.200-10.0.1.5").is_err());
        assert!(pool("10.0.0.0/24 range=fd00::1-fd00::5").is_err());
        let e = pool("10.0.0.0/24 range=10.0.0.0/28 range=10.0.0.10-10.0.0.20").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap, "{e}");
        let p = pool("10.0.0.0/24 range=10.0.0.0/28 range=10.0.0.100-10.0.0.109").unwrap();
        // .0 network and .1 gateway are inside the first range.
        assert_eq!(p.capacity(), 16 - 2 + 10);
        assert!(p.in_ranges("10.0.0.105".parse().unwrap()));
        assert!(!p.in_ranges("10.0.0.50".parse().unwrap()));
        assert_eq!(
            kind(pool("10.0.0.0/24 range=10.0.0.0/31")),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn reserved_checks() {
        let p = pool("192.168.1.0/24 reserve=exclude_host=192.168.1.21").unwrap();
        assert_eq!(p.capacity(), 252);
        assert_eq!(
            p.excluded_reason("192.168.1.21".parse().unwrap()).unwrap(),
            "reserved as `exclude_host`"
        );
        let e = pool("192.168.1.0/24 reserve=host=192.168.2.21").unwrap_err();
        assert!(e.message().contains("outside subnet"), "{e}");
        assert!(pool("192.168.1.0/24 reserve=192.168.1.9").is_ok());
    }

    #[test]
    fn malformed_text() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.1/24",
            "10.0.0.0/33",
            "banana/24",
            "10.0.0.0/24 gateway",
            "10.0.0.0/24 gateway=10.0.0",
            "10.0.0.0/24 range=10.0.0.5",
            "10.0.0.0/24 range=10.0.0.9-10.0.0.5",
            "10.0.0.0/24 range=10.0.0.0/33",
            "10.0.0.0/24 reserve=a=b=c",
            "10.0.0.0/24 colour=blue",
        ] {
            let e = pool(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        }
    }

    #[test]
    fn text_round_trip() {
        let text = "fd00:1::/64 gateway=fd00:1::fffe range=fd00:1::100-fd00:1::1ff range=fd00:1::1:0/112 reserve=r=fd00:1::150";
        let p = pool(text).unwrap();
        assert_eq!(p.to_string(), text);
        assert_eq!(pool(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn segments() {
        let text = "10.2.0.0/24 gateway=10.2.0.254 range=10.2.0.10-10.2.0.19 + 10.1.0.0/29 gateway=none reserve=h=10.1.0.3";
        let p = pool(text).unwrap();
        assert_eq!(p.to_string(), text);
        assert_eq!(pool(&p.to_string()).unwrap(), p);
        assert_eq!(p.capacity(), 10 + 5);
        assert_eq!(p.subnets().len(), 2);
        let segs = p.segments();
        assert_eq!(
            segs[0].to_string(),
            "10.2.0.0/24 gateway=10.2.0.254 range=10.2.0.10-10.2.0.19"
        );
        assert_eq!(
            segs[1].to_string(),
            "10.1.0.0/29 gateway=none reserve=h=10.1.0.3"
        );
        assert_eq!((segs[0].capacity(), segs[1].capacity()), (10, 5));
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(p.gateway_of(a("10.1.0.5")), None);
        assert_eq!(p.gateway_of(a("10.2.0.5")), Some(a("10.2.0.254")));
        assert_eq!(
            p.subnet_of(a("10.1.0.5")),
            Some("10.1.0.0/29".parse().unwrap())
        );
        assert!(p.in_ranges(a("10.1.0.5")) && !p.in_ranges(a("10.2.0.5")));
        assert_eq!(p.excluded_reason(a("10.1.0.3")).unwrap(), "reserved as `h`");
        assert_eq!(
            p.excluded_reason(a("10.1.0.7")).unwrap(),
            "the broadcast address"
        );
        assert!(!p.contains(a("10.3.0.1")));
        // Overlaps with any segment.
        assert!(p.overlaps(&pool("10.1.0.0/16").unwrap()));
        assert!(!p.overlaps(&pool("10.3.0.0/16").unwrap()));
        // Segments must be disjoint and of one family.
        let e = pool("10.1.0.0/24 + 10.1.0.128/25").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap, "{e}");
        let e = pool("10.1.0.0/24 + fd00::/64").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        for bad in [
            "10.1.0.0/24 +",
            "+ 10.1.0.0/24",
            "10.1.0.0/24 + + 10.2.0.0/24",
        ] {
            assert!(pool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap() {
        let a = pool("10.0.0.0/16").unwrap();
        assert!(a.overlaps(&pool("10.0.5.0/24").unwrap()));
        assert!(pool("10.0.5.0/24").unwrap().overlaps(&a));
        assert!(!a.overlaps(&pool("10.1.0.0/16").unwrap()));
        assert!(!a.overlaps(&pool("fd00::/64").unwrap()));
    }
}

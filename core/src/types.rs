//! Validated value types: once constructed, they are valid.

use std::fmt;
use std::str::FromStr;

use crate::error::{shown, Error, Result};

/// A network interface name: 1..=15 bytes, no `/`, no `:`, no whitespace or NUL, not `.` or `..`.
///
/// ```
/// use underlay::IfName;
/// let name: IfName = "ens192.10".parse()?;
/// assert_eq!(name.as_str(), "ens192.10");
/// assert!("a-name-far-too-long".parse::<IfName>().is_err());
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(std::sync::Arc<str>);

impl IfName {
    /// The kernel's limit (IFNAMSIZ - 1).
    pub const MAX_LEN: usize = 15;

    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let bad = |why: &str| {
            Err(Error::invalid(format!(
                "interface name `{}` is invalid: {why}",
                shown(&name)
            )))
        };
        if name.is_empty() {
            return bad("it is empty; give 1 to 15 bytes");
        }
        if name.len() > Self::MAX_LEN {
            return bad(&format!(
                "it is {} bytes long; the kernel allows at most 15",
                name.len()
            ));
        }
        if name == "." || name == ".." {
            return bad("`.` and `..` are reserved");
        }
        if let Some(c) = name
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || *c == '\0' || c.is_control())
        {
            return bad(&format!(
                "it contains {:?}; use letters, digits, `.`, `-`, `_`",
                c
            ));
        }
        Ok(IfName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        IfName::new(s)
    }
}

impl TryFrom<&str> for IfName {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        IfName::new(s)
    }
}

impl TryFrom<String> for IfName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        IfName::new(s)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An 802.1Q VLAN id, 1..=4094 (0 and 4095 are reserved by the standard).
///
/// ```
/// use underlay::VlanId;
/// assert_eq!(VlanId::new(10)?.get(), 10);
/// assert!(VlanId::new(4095).is_err());
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VlanId(u16);

impl VlanId {
    /// Validates `id`.
    pub fn new(id: u16) -> Result<Self> {
        if (1..=4094).contains(&id) {
            Ok(VlanId(id))
        } else {
            Err(vlan_out_of_range(id))
        }
    }

    /// The id.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for VlanId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let n: u16 = s.trim().parse().map_err(|_| {
            Error::invalid(format!("VLAN id `{}` is not a number in 1..4094", shown(s)))
        })?;
        VlanId::new(n)
    }
}

impl TryFrom<u16> for VlanId {
    type Error = Error;
    fn try_from(id: u16) -> Result<Self> {
        VlanId::new(id)
    }
}

/// From any integer (a binding's argument, a config value): the same range and message as
/// [`VlanId::new`], for values beyond `u16` too (65536, -1).
impl TryFrom<i64> for VlanId {
    type Error = Error;
    fn try_from(id: i64) -> Result<Self> {
        match u16::try_from(id) {
            Ok(id) => VlanId::new(id),
            Err(_) => Err(vlan_out_of_range(id)),
        }
    }
}

fn vlan_out_of_range(id: impl fmt::Display) -> Error {
    Error::invalid(format!(
        "VLAN id {id} is out of range: 802.1Q ids are 1..4094 (0 and 4095 are reserved); \
         for more segments use VXLAN"
    ))
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 48-bit Ethernet MAC address.
///
/// ```
/// use underlay::MacAddr;
/// let mac: MacAddr = "02:42:ac:16:10:0a".parse()?;
/// assert!(mac.is_local() && mac.is_unicast());
/// assert_eq!(mac.to_string(), "02:42:ac:16:10:0a");
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// From six bytes.
    pub const fn new(bytes: [u8; 6]) -> Self {
        MacAddr(bytes)
    }

    /// The bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Locally administered (bit 1 of the first byte set).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Unicast (bit 0 of the first byte clear).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }

    /// Whether an interface can carry this address: unicast and not all zeros (what the
    /// kernel's `is_valid_ether_addr` asks). Multicast addresses, the broadcast address among
    /// them, and `00:00:00:00:00:00` can only be read back (e.g. from `lo`), never set.
    pub fn is_assignable(&self) -> bool {
        self.is_unicast() && self.0 != [0; 6]
    }

    /// Refuses an address no interface can carry, naming it, `what` it was for, and the cure.
    pub(crate) fn check_assignable(self, what: impl fmt::Display) -> Result<()> {
        if self.is_assignable() {
            return Ok(());
        }
        let why = if self.0 == [0xff; 6] {
            "the broadcast address"
        } else if self.0 == [0; 6] {
            "all zeros"
        } else {
            "a multicast address (the lowest bit of its first byte is set)"
        };
        Err(Error::invalid(format!(
            "MAC address {self} for {what} is {why}: an interface needs a unicast, non-zero \
             address, e.g. a locally administered one such as 02:42:ac:16:10:0a"
        )))
    }

    /// A random locally administered unicast address.
    pub fn random() -> Self {
        let mut b = [0u8; 6];
        crate::sys::fill_random(&mut b);
        Self::from_seed_bytes(b)
    }

    /// A locally administered unicast address derived stably from `seed` (e.g. a container id),
    /// so the same seed always gives the same MAC.
    pub fn derived_from(seed: &[u8]) -> Self {
        // FNV-1a 64 then a splitmix finaliser: stable across versions and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in seed {
            h ^= u64::from(*byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        let b = h.to_be_bytes();
        Self::from_seed_bytes([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    fn from_seed_bytes(mut b: [u8; 6]) -> Self {
        b[0] = (b[0] & 0xfe) | 0x02;
        MacAddr(b)
    }
}

impl FromStr for MacAddr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "MAC address `{}` is malformed: write six hex bytes like 02:42:ac:16:10:0a",
                shown(s)
            ))
        };
        let mut out = [0u8; 6];
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut n = 0;
        for part in s.split(sep) {
            // Two hex digits, nothing else: `from_str_radix` alone would take a sign (`+2`).
            if n == 6 || part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != 6 {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl TryFrom<&[u8]> for MacAddr {
    type Error = Error;
    fn try_from(b: &[u8]) -> Result<Self> {
        let arr: [u8; 6] = b
            .try_into()
            .map_err(|_| Error::invalid(format!("MAC address must be 6 bytes, got {}", b.len())))?;
        Ok(MacAddr(arr))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The link MTUs underlay accepts: the IPv4 minimum up to the netlink field's maximum.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// A link MTU, in [`MTU_RANGE`].
pub(crate) fn check_mtu(mtu: u32, object: &str) -> Result<()> {
    check_mtu_value(i64::from(mtu), object).map(|_| ())
}

/// Checks an MTU given as any integer (a binding's argument, which may be negative or beyond
/// `u32`) for `object`: the MTU when it is in [`MTU_RANGE`], else
/// [`crate::ErrorKind::InvalidArgument`] naming the value and the range, the same message
/// the builders give.
///
/// ```
/// assert_eq!(underlay::check_mtu_value(1500, "link `eth0`")?, 1500);
/// assert!(underlay::check_mtu_value(-1, "link `eth0`").unwrap_err().to_string().contains("68..65535"));
/// # Ok::<(), underlay::Error>(())
/// ```
pub fn check_mtu_value(mtu: i64, object: &str) -> Result<u32> {
    match u32::try_from(mtu) {
        Ok(m) if MTU_RANGE.contains(&m) => Ok(m),
        _ => Err(Error::invalid(format!(
            "MTU {mtu} for {object} is out of range: use 68..65535 (1500 for plain Ethernet)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn ifname_validation() {
        for ok in ["eth0", "ens192.10", "a", "x23456789012345", "mac_net-1"] {
            assert!(IfName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "x234567890123456",
            "a/b",
            "a b",
            "a\tb",
            "a:b",
            "a\0b",
            "tab\n",
        ] {
            let e = IfName::new(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            assert!(e.to_string().contains("interface name"), "{e}");
        }
        assert!(IfName::new("x234567890123456")
            .unwrap_err()
            .to_string()
            .contains("16 bytes"));
        // 15 bytes of multibyte UTF-8 is still 15 bytes.
        assert!(IfName::new("ééééééé").is_ok());
        assert!(IfName::new("éééééééé").is_err());
    }

    #[test]
    fn vlan_id_range() {
        assert!(VlanId::new(0).is_err());
        assert!(VlanId::new(1).is_ok());
        assert!(VlanId::new(4094).is_ok());
        let e = VlanId::new(4095).unwrap_err();
        assert!(e.to_string().contains("1..4094"), "{e}");
        assert_eq!("20".parse::<VlanId>().unwrap().get(), 20);
        assert!("x".parse::<VlanId>().is_err());
        assert!("70000".parse::<VlanId>().is_err());
        for bad in [65536i64, -1, 0, 4095] {
            let e = VlanId::try_from(bad).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("VLAN id {bad} is out of range")),
                "{e}"
            );
            assert!(e.to_string().contains("1..4094"), "{e}");
        }
        assert_eq!(VlanId::try_from(10i64).unwrap().get(), 10);
    }

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:42:AC:16:10:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:ac:16:10:0a");
        assert_eq!("02-42-ac-16-10-0a".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:42:ac:16:10",
            "02:42:ac:16:10:0a:0b",
            "0g:42:ac:16:10:0a",
            "2:42:ac:16:10:0a",
            "+2:42:ac:10:0a:65",
            "02:+4:ac:10:0a:65",
            "02:42:ac:10:0a:-5",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(MacAddr::try_from(&[1u8, 2, 3][..]).is_err());
    }

    #[test]
    fn mac_assignable() {
        for ok in [
            "02:42:ac:16:10:0a",
            "00:00:00:00:00:01",
            "fe:ff:ff:ff:ff:ff",
        ] {
            let m: MacAddr = ok.parse().unwrap();
            assert!(m.is_assignable(), "{ok}");
            m.check_assignable("x").unwrap();
        }
        for (bad, why) in [
            ("01:00:5e:00:00:01", "multicast"),
            ("33:33:00:00:00:01", "multicast"),
            ("00:00:00:00:00:00", "all zeros"),
            ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ] {
            let m: MacAddr = bad.parse().unwrap();
            assert!(!m.is_assignable(), "{bad}");
            let e = m.check_assignable("link `x`").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            let text = e.to_string();
            assert!(text.contains(bad) && text.contains(why), "{text}");
            assert!(text.contains("link `x`"), "{text}");
        }
    }

    #[test]
    fn mac_random_and_derived() {
        let r = MacAddr::random();
        assert!(r.is_local() && r.is_unicast());
        assert_ne!(MacAddr::random(), MacAddr::random());
        let a = MacAddr::derived_from(b"container-1");
        assert_eq!(a, MacAddr::derived_from(b"container-1"));
        assert_ne!(a, MacAddr::derived_from(b"container-2"));
        assert!(a.is_local() && a.is_unicast());
    }

    #[test]
    fn mtu_range() {
        assert!(check_mtu(1500, "x").is_ok());
        assert!(check_mtu(67, "x").is_err());
        assert!(check_mtu(65536, "x").is_err());
        for bad in [-1, 67, 65536, i64::MAX, i64::MIN] {
            let e = check_mtu_value(bad, "x").unwrap_err();
            assert!(e.to_string().contains(&format!("MTU {bad} ")), "{e}");
        }
        assert_eq!(check_mtu_value(9000, "x").unwrap(), 9000);
    }
}

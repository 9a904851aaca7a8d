//! Networks: a name and its pools (one address per pool per owner: one v4 and one v6 pool make
//! a dual-stack network).

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

use super::pool::Pool;

/// A named set of pools. Each owner gets one address from every pool, so a network with an IPv4
/// and an IPv6 pool hands out one address of each family in one call (CNI range sets).
///
/// ```
/// use underlay::ipam::{Network, Pool};
/// let net = Network::new("mac_net1", vec![
///     "172.22.16.0/24 gateway=172.22.16.1".parse()?,
///     "fd00:16::/64".parse()?,
/// ])?;
/// assert_eq!(net.pools().len(), 2);
/// assert!(Network::new("bad/name", vec![Pool::new("10.0.0.0/24".parse().unwrap())?]).is_err());
/// # Ok::<(), underlay::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    name: String,
    pools: Vec<Pool>,
}

/// Checks a network name: 1 to 64 letters, digits, `-`, `_`, `.`, not starting with `.`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "network name `{}` is invalid: use 1 to 64 letters, digits, `-`, `_`, `.`, \
             not starting with `.`",
            name.escape_debug()
        )))
    }
}

impl Network {
    /// A network named `name` with `pools` (at least one; subnets must not overlap).
    pub fn new(name: impl Into<String>, pools: Vec<Pool>) -> Result<Network> {
        let name = name.into();
        check_name(&name)?;
        if pools.is_empty() {
            return Err(Error::invalid(format!(
                "network `{name}` has no pool: give at least one subnet"
            )));
        }
        for (i, a) in pools.iter().enumerate() {
            for b in &pools[i + 1..] {
                if let Some((x, y)) = a.overlapping(b) {
                    return Err(Error::new(
                        ErrorKind::Overlap,
                        format!(
                            "pools {x} and {y} of network `{name}` overlap: give disjoint subnets"
                        ),
                    ));
                }
            }
        }
        Ok(Network { name, pools })
    }

    /// The name (also the store's key, e.g. the sub-directory of a local store).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pools, in order: addresses of a lease come in this order.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Fails with [`ErrorKind::Overlap`] if a pool of `self` overlaps a pool of `other`
    /// (Docker's "Pool overlaps with other one on this address space").
    pub fn check_disjoint(&self, other: &Network) -> Result<()> {
        for a in &self.pools {
            for b in &other.pools {
                if let Some((x, y)) = a.overlapping(b) {
                    return Err(Error::new(
                        ErrorKind::Overlap,
                        format!(
                            "pool {x} of network `{}` overlaps pool {y} of network `{}` in the same \
                             store: choose a disjoint subnet or delete `{}` first",
                            self.name,
                            other.name,
                            other.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The definition as text: a `name NAME` line and one `pool ...` line per pool.
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Parses [`Network::to_text`]'s form; `origin` (e.g. a file name) is named in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Network> {
        let mut name = None;
        let mut pools = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: Error| e.context(format_args!("{origin} line {}", i + 1));
            match line.split_once(' ') {
                Some(("name", n)) => name = Some(n.trim().to_string()),
                Some(("pool", p)) => pools.push(p.parse::<Pool>().map_err(at)?),
                _ => {
                    return Err(at(Error::invalid(format!(
                        "unexpected line `{}`: expected `name NAME` or `pool SUBNET ...`",
                        line.escape_debug()
                    ))))
                }
            }
        }
        let name = name.ok_or_else(|| {
            Error::invalid(format!(
                "{origin}: no `name NAME` line: add the network's name"
            ))
        })?;
        Network::new(name, pools).map_err(|e| e.context(origin))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "name {}", self.name)?;
        for p in &self.pools {
            writeln!(f, "pool {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(s: &str) -> Pool {
        s.parse().unwrap()
    }

    #[test]
    fn names() {
        for ok in ["mac_net1", "a", "net-10.v2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_segment_counts_for_overlaps() {
        let set = pool("10.0.0.0/24 + 10.1.0.0/24");
        let e = Network::new("n", vec![set.clone(), pool("10.1.0.128/25")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap);
        assert!(e.message().contains("10.1.0.0/24 and 10.1.0.128/25"), "{e}");
        let a = Network::new("a", vec![set]).unwrap();
        let b = Network::new("b", vec![pool("10.1.0.0/16")]).unwrap();
        let e = a.check_disjoint(&b).unwrap_err();
        assert!(
            e.message().contains("pool 10.1.0.0/24 of network `a`"),
            "{e}"
        );
        assert!(b.check_disjoint(&a).is_err());
        let c = Network::new("c", vec![pool("10.2.0.0/16")]).unwrap();
        a.check_disjoint(&c).unwrap();
        // The definition's text round-trips.
        assert_eq!(Network::parse(&a.to_text(), "t").unwrap(), a);
        assert_eq!(
            a.to_text(),
            "name a\npool 10.0.0.0/24 gateway=10.0.0.1 + 10.1.0.0/24 gateway=10.1.0.1\n"
        );
    }

    #[test]
    fn pools_must_be_disjoint() {
        let e = Network::new("n", vec![pool("10.0.0.0/16"), pool("10.0.1.0/24")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap);
        assert!(Network::new("n", vec![]).is_err());
        let a = Network::new("a", vec![pool("10.0.0.0/16"), pool("fd00::/64")]).unwrap();
        let b = Network::new("b", vec![pool("fd00::/48")]).unwrap();
        let e = a.check_disjoint(&b).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overlap);
        assert!(e.message().contains("network `b`"), "{e}");
        let c = Network::new("c", vec![pool("10.1.0.0/16")]).unwrap();
        a.check_disjoint(&c).unwrap();
    }

    #[test]
    fn text() {
        let a = Network::new(
            "a",
            vec![pool("10.0.0.0/16 range=10.0.1.0/24"), pool("fd00::/64")],
        )
        .unwrap();
        assert_eq!(Network::parse(&a.to_text(), "x").unwrap(), a);
        for bad in [
            "pool 10.0.0.0/24",
            "name a\npool 10.0.0.0/33",
            "name a\nfoo",
            "name a",
        ] {
            let e = Network::parse(bad, "file.conf").unwrap_err();
            assert!(e.message().contains("file.conf"), "{e}");
        }
    }
}

//! A set of numbers kept as disjoint, coalesced inclusive intervals: O(log n) insert, remove and
//! "first member-free number at or after x", memory proportional to the number of intervals.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    /// start -> end (inclusive); never adjacent, never overlapping.
    map: BTreeMap<u128, u128>,
}

impl IntervalSet {
    fn containing(&self, x: u128) -> Option<(u128, u128)> {
        let (&s, &e) = self.map.range(..=x).next_back()?;
        (e >= x).then_some((s, e))
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, x: u128) -> bool {
        self.containing(x).is_some()
    }

    /// Adds `x`; false if it was there.
    pub(crate) fn insert(&mut self, x: u128) -> bool {
        let left = match self.map.range(..=x).next_back() {
            Some((_, &e)) if e >= x => return false,
            Some((&s, &e)) if x > 0 && e == x - 1 => Some(s),
            _ => None,
        };
        let right = x.checked_add(1).and_then(|n| self.map.get(&n).copied());
        match (left, right) {
            (Some(s), Some(e)) => {
                self.map.remove(&(x + 1));
                self.map.insert(s, e);
            }
            (Some(s), None) => {
                self.map.insert(s, x);
            }
            (None, Some(e)) => {
                self.map.remove(&(x + 1));
                self.map.insert(x, e);
            }
            (None, None) => {
                self.map.insert(x, x);
            }
        }
        true
    }

    /// Adds every number from `lo` to `hi` (inclusive).
    pub(crate) fn insert_range(&mut self, mut lo: u128, mut hi: u128) {
        if lo > hi {
            return;
        }
        // Merge with an interval that holds or touches `lo`, then swallow every interval that
        // starts inside or right after the range.
        if let Some((&s, &e)) = self.map.range(..=lo).next_back() {
            if e.saturating_add(1) >= lo {
                lo = s;
                hi = hi.max(e);
            }
        }
        let swallowed: Vec<u128> = self
            .map
            .range(lo..=hi.saturating_add(1))
            .map(|(&s, _)| s)
            .collect();
        for s in swallowed {
            if let Some(e) = self.map.remove(&s) {
                hi = hi.max(e);
            }
        }
        self.map.insert(lo, hi);
    }

    /// Removes `x`; false if it was not there.
    pub(crate) fn remove(&mut self, x: u128) -> bool {
        let Some((s, e)) = self.containing(x) else {
            return false;
        };
        if s == x {
            self.map.remove(&s);
            if e > x {
                self.map.insert(x + 1, e);
            }
        } else {
            self.map.insert(s, x - 1);
            if e > x {
                self.map.insert(x + 1, e);
            }
        }
        true
    }

    /// The smallest number >= `x` not in the set (`None`: every one up to `u128::MAX` is).
    pub(crate) fn first_free_from(&self, x: u128) -> Option<u128> {
        match self.containing(x) {
            Some((_, e)) => e.checked_add(1),
            None => Some(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn against_a_plain_set() {
        let mut s = IntervalSet::default();
        let mut oracle = BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 64) as u128;
            if (x >> 20) & 1 == 0 {
                assert_eq!(s.insert(v), oracle.insert(v));
            } else {
                assert_eq!(s.remove(v), oracle.remove(&v));
            }
            if (x >> 50).is_multiple_of(16) {
                let lo = ((x >> 8) % 64) as u128;
                let hi = lo + ((x >> 14) % 6) as u128;
                s.insert_range(lo, hi);
                oracle.extend(lo..=hi);
            }
            let probe = ((x >> 40) % 70) as u128;
            let want = (probe..).find(|p| !oracle.contains(p)).unwrap();
            assert_eq!(s.first_free_from(probe), Some(want));
            assert_eq!(s.contains(probe), oracle.contains(&probe));
        }
        // Up to the last number.
        let mut top = IntervalSet::default();
        top.insert_range(u128::MAX - 3, u128::MAX);
        top.insert_range(5, u128::MAX - 5);
        assert_eq!(top.first_free_from(7), Some(u128::MAX - 4));
        assert_eq!(top.first_free_from(u128::MAX - 3), None);
        top.insert_range(u128::MAX - 4, u128::MAX - 4);
        assert_eq!(top.first_free_from(5), None);
        assert_eq!(top.map.len(), 1);
        // Coalesced: no two intervals touch.
        let v: Vec<_> = s.map.iter().collect();
        for w in v.windows(2) {
            assert!(*w[0].1 + 1 < *w[1].0);
        }
    }
}

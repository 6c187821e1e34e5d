//! PostgreSQL snapshot visibility of transaction ids.
//!
//! [`PgSnapshot`] is the text of `SELECT pg_current_snapshot()` (PostgreSQL 13+, 64-bit
//! `xid8` values with their epoch) recorded inside the snapshot transaction. Debezium's
//! `source.txId` is the 32-bit xid without its epoch; [`PgSnapshot::widen`] restores the
//! epoch relative to the snapshot's `xmax`, so no comparison is ever done in 32 bits (which
//! breaks at wraparound).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

const HALF: u64 = 1 << 31;
const EPOCH: u64 = 1 << 32;

/// A parsed `pg_current_snapshot()`: `xmin:xmax:xip1,xip2,...`.
///
/// A transaction `xid` is visible (committed before the snapshot) iff `xid < xmin`, or
/// `xid < xmax` and `xid` is not in `xip`.
///
/// # Example
/// ```
/// use pgsnap_kafka::xid::PgSnapshot;
/// let s: PgSnapshot = "100:105:101,103".parse().unwrap();
/// assert!(s.is_visible(99));
/// assert!(s.is_visible(102));
/// assert!(!s.is_visible(103));
/// assert!(!s.is_visible(105));
/// assert!(s.event_in_snapshot(102));
/// assert_eq!(s.to_string(), "100:105:101,103");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgSnapshot {
    xmin: u64,
    xmax: u64,
    /// Sorted, deduplicated.
    xip: Vec<u64>,
}

impl PgSnapshot {
    /// Builds a snapshot from its parts, checking `xmin ≤ xip < xmax`.
    ///
    /// # Errors
    /// When the parts are inconsistent.
    ///
    /// # Example
    /// ```
    /// use pgsnap_kafka::xid::PgSnapshot;
    /// let s = PgSnapshot::new(10, 12, vec![11]).unwrap();
    /// assert_eq!(s.to_string(), "10:12:11");
    /// assert!(PgSnapshot::new(10, 12, vec![12]).is_err());
    /// ```
    pub fn new(xmin: u64, xmax: u64, mut xip: Vec<u64>) -> Result<Self> {
        xip.sort_unstable();
        xip.dedup();
        let input = || {
            let list: Vec<String> = xip.iter().map(u64::to_string).collect();
            format!("{xmin}:{xmax}:{}", list.join(","))
        };
        if xmin > xmax {
            return Err(Error::SnapshotText {
                input: input(),
                reason: format!("xmin {xmin} is greater than xmax {xmax}"),
            });
        }
        if let Some(bad) = xip.iter().find(|&&x| x < xmin || x >= xmax) {
            return Err(Error::SnapshotText {
                input: input(),
                reason: format!("in-progress xid {bad} is outside [xmin {xmin}, xmax {xmax})"),
            });
        }
        Ok(Self { xmin, xmax, xip })
    }

    /// The oldest transaction still running at the snapshot (64-bit).
    ///
    /// ```
    /// # use pgsnap_kafka::xid::PgSnapshot;
    /// assert_eq!("7:9:8".parse::<PgSnapshot>().unwrap().xmin(), 7);
    /// ```
    pub fn xmin(&self) -> u64 {
        self.xmin
    }

    /// One past the newest completed transaction at the snapshot (64-bit).
    ///
    /// ```
    /// # use pgsnap_kafka::xid::PgSnapshot;
    /// assert_eq!("7:9:8".parse::<PgSnapshot>().unwrap().xmax(), 9);
    /// ```
    pub fn xmax(&self) -> u64 {
        self.xmax
    }

    /// The transactions in progress at the snapshot, sorted.
    ///
    /// ```
    /// # use pgsnap_kafka::xid::PgSnapshot;
    /// assert_eq!("7:12:9,8".parse::<PgSnapshot>().unwrap().xip(), &[8, 9]);
    /// ```
    pub fn xip(&self) -> &[u64] {
        &self.xip
    }

    /// Widens a 32-bit xid (Debezium's `source.txId`) to 64 bits: the epoch is the one that
    /// puts the result within 2^31 of `xmax` (in `(xmax − 2^31, xmax + 2^31]`), as PostgreSQL
    /// never has live xids further apart than that.
    ///
    /// # Example
    /// ```
    /// use pgsnap_kafka::xid::PgSnapshot;
    /// let xmax = (1u64 << 32) + 5;
    /// let s = PgSnapshot::new(xmax, xmax, vec![]).unwrap();
    /// assert_eq!(s.widen(4_294_967_290), 4_294_967_290); // epoch 0, just before wraparound
    /// assert_eq!(s.widen(3), (1u64 << 32) + 3); // epoch 1
    /// ```
    pub fn widen(&self, xid32: u32) -> u64 {
        let epoch = self.xmax >> 32;
        let candidate = (epoch << 32) | u64::from(xid32);
        if candidate > self.xmax && candidate - self.xmax > HALF {
            // Too far ahead: it belongs to the previous epoch (if there is one).
            candidate.checked_sub(EPOCH).filter(|_| epoch > 0).unwrap_or(candidate)
        } else if candidate < self.xmax && self.xmax - candidate >= HALF {
            // Too far behind: it belongs to the next epoch.
            candidate + EPOCH
        } else {
            candidate
        }
    }

    /// Whether the transaction `xid` (64-bit) had committed when the snapshot was taken,
    /// i.e. its effects are in the snapshot.
    ///
    /// ```
    /// # use pgsnap_kafka::xid::PgSnapshot;
    /// let s: PgSnapshot = "5:8:6".parse().unwrap();
    /// assert_eq!((4..9).map(|x| s.is_visible(x)).collect::<Vec<_>>(),
    ///            [true, true, false, true, false]);
    /// ```
    pub fn is_visible(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && self.xip.binary_search(&xid).is_err())
    }

    /// Whether a Debezium event with this 32-bit `txId` belongs to a transaction contained
    /// in the snapshot: `is_visible(widen(txid32))`.
    ///
    /// ```
    /// # use pgsnap_kafka::xid::PgSnapshot;
    /// let s: PgSnapshot = "4294967290:4294967300:4294967295".parse().unwrap();
    /// assert!(s.event_in_snapshot(4_294_967_289)); // epoch 0, below xmin
    /// assert!(!s.event_in_snapshot(4_294_967_295)); // in progress
    /// assert!(s.event_in_snapshot(2)); // 2^32 + 2 after wraparound, committed
    /// assert!(!s.event_in_snapshot(4)); // 2^32 + 4 = xmax: after the snapshot
    /// ```
    pub fn event_in_snapshot(&self, txid32: u32) -> bool {
        self.is_visible(self.widen(txid32))
    }

    /// Whether a raw Debezium `txId` is in the snapshot. Streaming events carry the 32-bit
    /// xid, which is widened; a value above `u32::MAX` (Debezium's own snapshot records,
    /// which use `txid_current()`) is already 64-bit and used as is.
    ///
    /// ```
    /// # use pgsnap_kafka::xid::PgSnapshot;
    /// let s: PgSnapshot = "4294967300:4294967310:".parse().unwrap();
    /// assert!(s.raw_txid_in_snapshot(4_294_967_299));
    /// assert!(!s.raw_txid_in_snapshot(4_294_967_310));
    /// assert!(s.raw_txid_in_snapshot(3)); // widened to 2^32 + 3
    /// ```
    pub fn raw_txid_in_snapshot(&self, raw: u64) -> bool {
        match u32::try_from(raw) {
            Ok(x) => self.event_in_snapshot(x),
            Err(_) => self.is_visible(raw),
        }
    }
}

impl FromStr for PgSnapshot {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| Error::SnapshotText { input: s.to_owned(), reason };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("it is empty".into()));
        }
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() != 3 {
            return Err(err(format!("it has {} `:`-separated fields, not 3", parts.len())));
        }
        let num = |what: &str, v: &str| {
            v.trim().parse::<u64>().map_err(|e| err(format!("{what} {v:?} is not an xid8: {e}")))
        };
        let xmin = num("xmin", parts[0])?;
        let xmax = num("xmax", parts[1])?;
        let mut xip = Vec::new();
        if !parts[2].trim().is_empty() {
            for v in parts[2].split(',') {
                xip.push(num("in-progress xid", v)?);
            }
        }
        Self::new(xmin, xmax, xip).map_err(|e| match e {
            Error::SnapshotText { reason, .. } => err(reason),
            other => other,
        })
    }
}

impl fmt::Display for PgSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, x) in self.xip.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(s: &str) -> PgSnapshot {
        s.parse().unwrap()
    }

    #[test]
    fn parses_forms() {
        let s = snap("750:750:");
        assert_eq!((s.xmin(), s.xmax(), s.xip()), (750, 750, &[][..]));
        let s = snap(" 100:110:105,101,105 \n");
        assert_eq!(s.xip(), &[101, 105]);
        assert_eq!(s.to_string(), "100:110:101,105");
        let big = snap("18446744073709551000:18446744073709551615:");
        assert_eq!(big.xmax(), u64::MAX);
    }

    #[test]
    fn parse_errors_are_typed_and_explain() {
        for (input, needle) in [
            ("", "empty"),
            ("1:2", "2 `:`-separated fields"),
            ("1:2:3:4", "4 `:`-separated fields"),
            ("a:2:", "xmin \"a\""),
            ("1:-2:", "xmax \"-2\""),
            ("1:5:2,,3", "in-progress xid \"\""),
            ("5:4:", "xmin 5 is greater than xmax 4"),
            ("5:9:4", "in-progress xid 4 is outside"),
            ("5:9:9", "in-progress xid 9 is outside"),
            ("1:18446744073709551616:", "xmax"),
        ] {
            let e = input.parse::<PgSnapshot>().unwrap_err();
            assert!(matches!(&e, Error::SnapshotText { input: i, .. } if i == input), "{e:?}");
            assert!(e.to_string().contains(needle), "{input:?}: {e}");
            assert!(e.to_string().contains("pg_current_snapshot()"));
        }
    }

    #[test]
    fn visibility_rules() {
        let s = snap("100:110:100,104,109");
        let visible: Vec<u64> = (95..115).filter(|&x| s.is_visible(x)).collect();
        assert_eq!(visible, [95, 96, 97, 98, 99, 101, 102, 103, 105, 106, 107, 108]);
        // Empty xip, xmin == xmax: everything before is visible, nothing from xmax on.
        let s = snap("42:42:");
        assert!(s.is_visible(41));
        assert!(!s.is_visible(42));
        assert!(!s.is_visible(u64::MAX));
    }

    #[test]
    fn widen_same_epoch() {
        let s = snap("1000:1000:");
        assert_eq!(s.widen(999), 999);
        assert_eq!(s.widen(1000), 1000);
        assert_eq!(s.widen(5000), 5000);
        assert_eq!(s.widen(0), 0);
        // In epoch 0 there is no earlier epoch: a far-ahead xid stays in epoch 0.
        assert_eq!(s.widen(u32::MAX), u64::from(u32::MAX));
    }

    #[test]
    fn widen_around_wraparound() {
        let e1 = 1u64 << 32;
        let s = PgSnapshot::new(e1 + 5, e1 + 5, vec![]).unwrap();
        assert_eq!(s.widen(4_294_967_290), 4_294_967_290, "epoch 0");
        assert_eq!(s.widen(3), e1 + 3, "epoch 1");
        assert_eq!(s.widen(5), e1 + 5);
        assert_eq!(s.widen(100), e1 + 100);
        assert!(s.event_in_snapshot(4_294_967_290));
        assert!(s.event_in_snapshot(3));
        assert!(!s.event_in_snapshot(5));
        assert!(!s.event_in_snapshot(100));
        // A naive 32-bit compare would call 4294967290 "after" xmax's low half (5).
        assert!(4_294_967_290u32 > (s.xmax() as u32));

        // xmax just before the wrap: small xids are the next epoch (after the snapshot).
        let s = PgSnapshot::new(4_294_967_200, 4_294_967_290, vec![4_294_967_250]).unwrap();
        assert_eq!(s.widen(3), e1 + 3);
        assert!(!s.event_in_snapshot(3));
        assert!(s.event_in_snapshot(4_294_967_210));
        assert!(!s.event_in_snapshot(4_294_967_250));
        assert!(!s.event_in_snapshot(4_294_967_295));

        // Boundaries of the 2^31 window around xmax = 2^32 + 2^31 + 10 (epoch 1).
        let xmax = e1 + HALF + 10;
        let s = PgSnapshot::new(xmax, xmax, vec![]).unwrap();
        let low32 = (xmax - HALF) as u32; // exactly 2^31 behind: next epoch (window is open)
        assert_eq!(s.widen(low32 + 1), xmax - HALF + 1);
        assert_eq!(s.widen(low32), xmax + HALF);
        assert_eq!(s.widen((xmax + HALF) as u32), xmax + HALF);
    }

    #[test]
    fn widen_high_epochs() {
        let xmax = (7u64 << 32) + 10;
        let s = PgSnapshot::new(xmax - 20, xmax, vec![xmax - 3]).unwrap();
        assert_eq!(s.widen(u32::MAX - 5), (7u64 << 32) - 6);
        assert_eq!(s.widen(9), (7u64 << 32) + 9);
        assert!(s.event_in_snapshot(9));
        assert!(!s.event_in_snapshot(7));
        assert!(!s.event_in_snapshot(10));
        assert!(s.event_in_snapshot(u32::MAX - 5));
    }

    #[test]
    fn raw_txid_uses_64_bit_values_as_is() {
        let s = snap("4294967400:4294967500:4294967450");
        assert!(s.raw_txid_in_snapshot(4_294_967_399));
        assert!(!s.raw_txid_in_snapshot(4_294_967_450));
        assert!(!s.raw_txid_in_snapshot(4_294_967_500));
        assert!(s.raw_txid_in_snapshot(150)); // 2^32 + 150: in [xmin, xmax), not in xip
        assert!(!s.raw_txid_in_snapshot(300)); // 2^32 + 300 ≥ xmax
    }
}

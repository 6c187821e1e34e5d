//! PostgreSQL log sequence numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PostgreSQL write-ahead-log position, printed as `X/Y` like PostgreSQL's `pg_lsn`.
///
/// # Example
/// ```
/// use pgsnap_core::Lsn;
/// let lsn: Lsn = "16/B374D848".parse().unwrap();
/// assert_eq!(u64::from(lsn), 0x16_B374_D848);
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The error returned when text is not an `X/Y` LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hexadecimal numbers separated by '/', like 16/B374D848")]
pub struct ParseLsnError(String);

impl FromStr for Lsn {
    type Err = ParseLsnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError(s.to_owned());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let valid =
            |p: &str| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid(hi) || !valid(lo) {
            return Err(err());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((hi << 32) | lo))
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(v: Lsn) -> Self {
        v.0
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        for s in ["0/0", "0/16B3748", "FFFFFFFF/FFFFFFFF", "1/0"] {
            assert_eq!(s.parse::<Lsn>().unwrap().to_string(), s);
        }
        assert!("0/1".parse::<Lsn>().unwrap() < "1/0".parse::<Lsn>().unwrap());
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "/", "1/", "/1", "x/1", "1/2/3", "123456789/0", "-1/0", "+1/0"] {
            assert!(s.parse::<Lsn>().is_err(), "{s}");
        }
    }

    #[test]
    fn serde_as_text() {
        let v = serde_json::to_string(&Lsn(0x1_0000_00FF)).unwrap();
        assert_eq!(v, "\"1/FF\"");
        assert_eq!(serde_json::from_str::<Lsn>(&v).unwrap(), Lsn(0x1_0000_00FF));
    }
}

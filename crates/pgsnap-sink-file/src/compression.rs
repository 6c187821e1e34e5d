//! How chunk files are compressed.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How chunk files are compressed.
///
/// Parsed from `none`, `zstd`, `zstd:<level>`, `gzip` or `gzip:<level>`; [`Display`](fmt::Display) prints
/// the same form with the level, so it round-trips. [`as_str`](Compression::as_str) is the
/// label recorded in the manifest, without the level (a resume may change the level, not the
/// codec).
///
/// # Example
/// ```
/// use pgsnap_sink_file::Compression;
/// let c: Compression = "zstd:19".parse()?;
/// assert_eq!(c, Compression::Zstd { level: 19 });
/// assert_eq!(c.as_str(), "zstd");
/// assert_eq!(c.to_string(), "zstd:19");
/// assert_eq!("gzip".parse::<Compression>()?, Compression::Gzip { level: 6 });
/// assert_eq!(Compression::default(), Compression::None);
/// assert!("lz4".parse::<Compression>().is_err());
/// # Ok::<(), pgsnap_sink_file::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Plain files.
    #[default]
    None,
    /// Zstandard frames (with content checksum), extension `.zst`.
    Zstd {
        /// Compression level ([`Compression::ZSTD_DEFAULT_LEVEL`] unless given).
        level: i32,
    },
    /// Gzip, extension `.gz`.
    Gzip {
        /// Compression level 0 to 9 ([`Compression::GZIP_DEFAULT_LEVEL`] unless given).
        level: u32,
    },
}

impl Compression {
    /// The zstd level used when none is given.
    pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
    /// The gzip level used when none is given.
    pub const GZIP_DEFAULT_LEVEL: u32 = 6;

    /// The manifest label: `none`, `zstd` or `gzip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd { .. } => "zstd",
            Self::Gzip { .. } => "gzip",
        }
    }

    /// The file name suffix added after the format's extension: ``, `.zst` or `.gz`.
    ///
    /// # Example
    /// ```
    /// use pgsnap_sink_file::Compression;
    /// assert_eq!(Compression::Gzip { level: 1 }.extension(), ".gz");
    /// assert_eq!(Compression::None.extension(), "");
    /// ```
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Zstd { .. } => ".zst",
            Self::Gzip { .. } => ".gz",
        }
    }

    /// Checks the level against the codec's range.
    ///
    /// # Errors
    /// [`Error::InvalidLevel`].
    pub(crate) fn validate(self) -> Result<Self, Error> {
        match self {
            Self::None => Ok(self),
            Self::Zstd { level } => {
                let range = zstd::compression_level_range();
                if range.contains(&level) {
                    Ok(self)
                } else {
                    Err(Error::InvalidLevel {
                        codec: "zstd",
                        level: i64::from(level),
                        range: i64::from(*range.start())..=i64::from(*range.end()),
                    })
                }
            }
            Self::Gzip { level } => {
                if level <= 9 {
                    Ok(self)
                } else {
                    Err(Error::InvalidLevel {
                        codec: "gzip",
                        level: i64::from(level),
                        range: 0..=9,
                    })
                }
            }
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Zstd { level } => write!(f, "zstd:{level}"),
            Self::Gzip { level } => write!(f, "gzip:{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || Error::UnknownCompression(s.to_owned());
        let (codec, level) = match s.split_once(':') {
            Some((c, l)) => (c, Some(l)),
            None => (s, None),
        };
        let c = match (codec, level) {
            ("none", None) => Self::None,
            ("zstd", None) => Self::Zstd { level: Self::ZSTD_DEFAULT_LEVEL },
            ("zstd", Some(l)) => Self::Zstd { level: l.parse().map_err(|_| unknown())? },
            ("gzip", None) => Self::Gzip { level: Self::GZIP_DEFAULT_LEVEL },
            ("gzip", Some(l)) => Self::Gzip { level: l.parse().map_err(|_| unknown())? },
            _ => return Err(unknown()),
        };
        c.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["none", "zstd:3", "zstd:19", "zstd:-5", "gzip:6", "gzip:0", "gzip:9"] {
            let c: Compression = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_specs() {
        for s in ["", "ZSTD", "zstd:", "zstd:x", "zstd:23", "gzip:10", "gzip:-1", "none:1", "lz4"] {
            assert!(s.parse::<Compression>().is_err(), "{s:?} parsed");
        }
        let e = "gzip:10".parse::<Compression>().unwrap_err();
        assert_eq!(e.to_string(), "gzip level 10 is out of range 0..=9");
    }
}

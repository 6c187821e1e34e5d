//! Checking a chunk file a resumed run finds recorded as done: [`VerifyMode`] and the check.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use pgsnap_core::manifest::ManifestChunk;
use pgsnap_core::{ChunkInspector, DataFormat};

use crate::error::{Error, Result};
use crate::read::open_chunk;

/// How [`chunk_intact`](pgsnap_core::Sink::chunk_intact) checks a chunk a resumed run finds
/// recorded as done.
///
/// In both modes a missing file, or a file at another path than this sink would write,
/// means "not intact" (the chunk is copied again), never an error.
///
/// # Example
/// ```
/// use pgsnap_sink_file::VerifyMode;
/// assert_eq!(VerifyMode::default(), VerifyMode::Size);
/// assert_eq!("checksum".parse::<VerifyMode>()?, VerifyMode::Checksum);
/// assert_eq!(VerifyMode::Checksum.to_string(), "checksum");
/// # Ok::<(), pgsnap_sink_file::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VerifyMode {
    /// The file exists and its size equals the recorded `stored_bytes`. Cheap (one `stat`);
    /// misses corruption that keeps the size.
    #[default]
    Size,
    /// As `Size`, then the file is decompressed and its length, row count and XXH3 checksum
    /// are compared with the record. Reads every byte.
    Checksum,
}

impl VerifyMode {
    /// `size` or `checksum`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Checksum => "checksum",
        }
    }
}

impl fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VerifyMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "size" => Ok(Self::Size),
            "checksum" => Ok(Self::Checksum),
            other => Err(Error::UnknownVerifyMode(other.to_owned())),
        }
    }
}

/// Whether the file at `path` matches `record`; `Ok(false)` for missing or damaged files.
pub(crate) fn verify_file(
    path: &Path,
    verify: VerifyMode,
    format: DataFormat,
    record: &ManifestChunk,
) -> Result<bool> {
    let missing =
        |e: &io::Error| matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if missing(&e) => return Ok(false),
        Err(e) => return Err(Error::io("cannot stat", path, e)),
    };
    if !meta.is_file() || meta.len() != record.stored_bytes {
        return Ok(false);
    }
    if verify == VerifyMode::Size {
        return Ok(true);
    }
    let Some(want) = record.checksum.as_deref() else {
        return Ok(false);
    };
    let mut reader = match open_chunk(path) {
        Ok(r) => r,
        Err(e) if missing(&e) => return Ok(false),
        Err(e) if e.raw_os_error().is_some() => return Err(Error::io("cannot read", path, e)),
        Err(_) => return Ok(false),
    };
    let mut inspector = ChunkInspector::new(format);
    let mut buf = vec![0; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => inspector.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // An OS error is a problem reading; anything else is the decoder finding damage.
            Err(e) if e.raw_os_error().is_some() => {
                return Err(Error::io("cannot read", path, e));
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "chunk file is damaged");
                return Ok(false);
            }
        }
    }
    let got = inspector.finish();
    Ok(got.bytes == record.bytes && got.rows == record.rows && got.checksum == want)
}

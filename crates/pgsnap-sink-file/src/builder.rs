//! Configuration of a [`FileSink`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pgsnap_core::DataFormat;

use crate::layout::is_temp_file_name;
use crate::{Compression, Error, FileSink, Result};

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

/// Builds a [`FileSink`].
///
/// Defaults: COPY text, no compression, fsync on, [`VerifyMode::Size`].
///
/// # Example
/// ```
/// use pgsnap_core::{DataFormat, Sink};
/// use pgsnap_sink_file::{Compression, FileSinkBuilder, VerifyMode};
/// let dir = tempfile::tempdir().unwrap();
/// let sink = FileSinkBuilder::new(dir.path().join("out"))
///     .with_format(DataFormat::Csv)
///     .with_compression("zstd:9".parse()?)
///     .with_fsync(false)
///     .with_verify_on_resume(VerifyMode::Checksum)
///     .build()?;
/// assert_eq!(sink.description().compression, "zstd");
/// assert!(dir.path().join("out").is_dir());
/// # Ok::<(), pgsnap_sink_file::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct FileSinkBuilder {
    out: PathBuf,
    format: DataFormat,
    compression: Compression,
    fsync: bool,
    verify: VerifyMode,
}

impl FileSinkBuilder {
    /// A builder writing under the output directory `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            format: DataFormat::Text,
            compression: Compression::None,
            fsync: true,
            verify: VerifyMode::Size,
        }
    }

    /// The content format asked of the source and stored: COPY text (default) or CSV.
    pub fn with_format(mut self, format: DataFormat) -> Self {
        self.format = format;
        self
    }

    /// How files are compressed (default none).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Whether each file and its directory are fsynced before a chunk is reported done
    /// (default true). Without it a power failure may lose chunks the manifest records as
    /// done; a resume with [`VerifyMode::Checksum`] finds them.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// How a resumed run checks chunks recorded as done (default [`VerifyMode::Size`]).
    pub fn with_verify_on_resume(mut self, verify: VerifyMode) -> Self {
        self.verify = verify;
        self
    }

    /// Creates the output directory if missing, removes temporary files a crash left in
    /// its table directories, and returns the sink.
    ///
    /// Only one sink may write to an output directory at a time: `build` takes an advisory
    /// lock on the directory (`flock`, no extra file), held until the sink and all its clones
    /// are dropped, before it cleans up.
    ///
    /// # Errors
    /// [`Error::InvalidLevel`] for a compression level out of range; [`Error::Busy`] when
    /// another sink holds the directory; [`Error::Io`] when the directory cannot be created,
    /// locked or cleaned.
    pub fn build(self) -> Result<FileSink> {
        let compression = self.compression.validate()?;
        std::fs::create_dir_all(&self.out)
            .map_err(|e| Error::io("cannot create output directory", &self.out, e))?;
        // One writer per directory: an advisory lock on the directory itself (no extra file),
        // held as long as the sink (or a clone) lives, and taken before the clean-up below so
        // it never removes a running writer's temporary files.
        let lock = std::fs::File::open(&self.out)
            .map_err(|e| Error::io("cannot open output directory", &self.out, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Busy(self.out)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock output directory", &self.out, e));
            }
        }
        remove_stale_temp_files(&self.out)?;
        Ok(FileSink {
            _lock: std::sync::Arc::new(lock),
            out: self.out,
            format: self.format,
            compression,
            fsync: self.fsync,
            verify: self.verify,
        })
    }
}

/// Removes `<out>/<dir>/.<name>.tmp-<uuid>` files left by an interrupted write.
fn remove_stale_temp_files(out: &Path) -> Result<()> {
    let entries = std::fs::read_dir(out).map_err(|e| Error::io("cannot list", out, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", out, e))?;
        // `file_type` does not follow symlinks: a link to elsewhere is not ours to clean.
        let is_dir =
            entry.file_type().map_err(|e| Error::io("cannot stat", entry.path(), e))?.is_dir();
        if !is_dir {
            continue;
        }
        let dir = entry.path();
        let files = match std::fs::read_dir(&dir) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("cannot list", dir, e)),
        };
        for f in files {
            let f = f.map_err(|e| Error::io("cannot list", &dir, e))?;
            let name = f.file_name();
            if !name.to_str().is_some_and(is_temp_file_name) {
                continue;
            }
            let path = f.path();
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted run");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove stale temporary file", path, e)),
            }
        }
    }
    Ok(())
}

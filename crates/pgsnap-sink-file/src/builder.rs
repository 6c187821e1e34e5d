//! Configuration of a [`FileSink`].

use std::path::{Path, PathBuf};

use pgsnap_core::DataFormat;

use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::layout::is_temp_file_name;
use crate::sink::{FileSink, SinkConfig};
use crate::verify::VerifyMode;

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
    config: SinkConfig,
}

impl FileSinkBuilder {
    /// A builder writing under the output directory `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            config: SinkConfig {
                out: out.into(),
                format: DataFormat::Text,
                compression: Compression::None,
                fsync: true,
                verify: VerifyMode::Size,
            },
        }
    }

    /// The content format asked of the source and stored: COPY text (default) or CSV.
    pub fn with_format(mut self, format: DataFormat) -> Self {
        self.config.format = format;
        self
    }

    /// How files are compressed (default none).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Whether each file and its directory are made durable before a manifest records the
    /// chunk as done (default true; see [`FileSink`](crate::FileSink) for when). Without it a power failure may lose chunks the manifest records as
    /// done; a resume with [`VerifyMode::Checksum`] finds them.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.config.fsync = fsync;
        self
    }

    /// How a resumed run checks chunks recorded as done (default [`VerifyMode::Size`]).
    pub fn with_verify_on_resume(mut self, verify: VerifyMode) -> Self {
        self.config.verify = verify;
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
    pub fn build(mut self) -> Result<FileSink> {
        self.config.compression = self.config.compression.validate()?;
        let out = &self.config.out;
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io("cannot create output directory", out, e))?;
        // One writer per directory: an advisory lock on the directory itself (no extra file),
        // held as long as the sink (or a clone) lives, and taken before the clean-up below so
        // it never removes a running writer's temporary files.
        let lock = std::fs::File::open(out)
            .map_err(|e| Error::io("cannot open output directory", out, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Busy(self.config.out)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock output directory", out, e));
            }
        }
        remove_stale_temp_files(out)?;
        Ok(FileSink::new(self.config, lock))
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

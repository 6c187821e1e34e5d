//! The blocking side of a chunk write: encode, write a temp file, fsync, rename.
//!
//! Small chunk files are not fsynced one by one: two fsyncs (file and directory) cost more
//! than writing a small chunk (measured: 6,000 chunks of about 1 kB in as many directories,
//! see BENCHMARKS.md). They are listed in [`Deferred`] instead and made durable together,
//! before the manifest lists them, by [`Deferred::sync`]: on Linux 5.8 or later one
//! `syncfs(2)`, which writes back every file and directory of the file system and, since
//! 5.8, reports a write-back error that happened since the output directory was opened;
//! elsewhere (and where `syncfs` is refused) an fsync of each file and directory.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::compression::Compression;
use crate::error::Error;
use crate::error::reclassify;
use crate::layout::temp_file_name;

/// Size of the buffer in front of the file.
pub(crate) const FILE_BUFFER: usize = 1 << 20;

/// Chunk files stored in fewer bytes than this are made durable at the next checkpoint
/// ([`Deferred`]) rather than before their write returns; larger ones are fsynced at once,
/// their write-back overlapping the next chunk's read.
pub(crate) const DEFER_BELOW: u64 = 1 << 20;

/// Chunk files and directories written but not yet made durable.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    files: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl Deferred {
    /// Files listed.
    #[cfg(test)]
    pub(crate) fn files_len(&self) -> usize {
        self.files.len()
    }

    /// Makes every listed file and directory durable; the list is empty afterwards.
    ///
    /// # Errors
    /// An fsync failing ([`Error::Io`], classified by [`reclassify`]).
    pub(crate) fn sync(&mut self, out: &File, out_path: &Path) -> pgsnap_core::Result<()> {
        if self.files.is_empty() && self.dirs.is_empty() {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        if syncfs_reports_errors() {
            match rustix::fs::syncfs(out) {
                Ok(()) => {
                    self.files.clear();
                    self.dirs.clear();
                    return Ok(());
                }
                // Refused (not an I/O error): sync file by file below.
                Err(e) if e != rustix::io::Errno::IO => {
                    tracing::debug!(error = %e, "syncfs refused; syncing file by file");
                }
                Err(e) => {
                    return Err(Error::io(
                        "cannot write back the file system of",
                        out_path,
                        io::Error::from(e),
                    )
                    .into());
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (out, out_path);
        for f in &self.files {
            File::open(f)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("cannot fsync", f, e))?;
        }
        for d in &self.dirs {
            pgsnap_core::checkpoint::sync_dir(d)
                .map_err(|e| reclassify(e, "cannot fsync directory", d.clone()))?;
        }
        self.files.clear();
        self.dirs.clear();
        Ok(())
    }
}

/// What the async side sends to the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The next piece of content, with its share of the in-flight byte budget (released
    /// once written).
    Data(Bytes, tokio::sync::OwnedSemaphorePermit),
    /// The stream ended cleanly: commit the file. Without it, a closed channel means abort.
    Finish,
}

/// Whether `syncfs(2)` reports write-back errors: Linux 5.8 and later (before, it
/// always succeeded, so only per-file fsyncs could tell).
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static REPORTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REPORTS.get_or_init(|| {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        kernel_at_least(&release, (5, 8))
    })
}

/// Whether a kernel release string (`6.1.0-18-amd64`) is at least `min`.
#[cfg(any(target_os = "linux", test))]
fn kernel_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

/// One chunk file to write.
#[derive(Debug)]
pub(crate) struct WriteJob {
    pub(crate) out: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) file_name: String,
    pub(crate) compression: Compression,
    pub(crate) fsync: bool,
    /// Where a small chunk file (and a new table directory) is listed instead of being
    /// fsynced (with fsync on).
    pub(crate) deferred: std::sync::Arc<std::sync::Mutex<Deferred>>,
}

/// Deletes the temporary file unless disarmed (on error, abort, or panic).
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    "cannot remove temporary file; the next run removes it"
                ),
            }
        }
    }
}

enum Encoder {
    Plain(BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Encoder {
    fn new(file: File, compression: Compression) -> io::Result<Self> {
        let w = BufWriter::with_capacity(FILE_BUFFER, file);
        Ok(match compression {
            Compression::None => Self::Plain(w),
            Compression::Zstd { level } => {
                let mut e = zstd::stream::write::Encoder::new(w, level)?;
                e.include_checksum(true)?;
                Self::Zstd(e)
            }
            Compression::Gzip { level } => {
                Self::Gzip(flate2::write::GzEncoder::new(w, flate2::Compression::new(level)))
            }
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(buf),
            Self::Zstd(w) => w.write_all(buf),
            Self::Gzip(w) => w.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<File> {
        let w = match self {
            Self::Plain(w) => w,
            Self::Zstd(e) => e.finish()?,
            Self::Gzip(e) => e.finish()?,
        };
        w.into_inner().map_err(io::IntoInnerError::into_error)
    }
}

impl WriteJob {
    /// Writes the chunk from `rx`; returns the stored size.
    pub(crate) fn run(self, mut rx: mpsc::Receiver<Msg>) -> pgsnap_core::Result<u64> {
        let final_path = self.dir.join(&self.file_name);
        let tmp_path = self.dir.join(temp_file_name(&self.file_name));
        let file = self.create_temp(&tmp_path)?;
        let mut tmp = TempFile { path: tmp_path, armed: true };
        let write_err = |e| Error::io("cannot write", &tmp.path, e);
        let mut enc = Encoder::new(file, self.compression).map_err(write_err)?;
        loop {
            match rx.blocking_recv() {
                Some(Msg::Data(b, _permit)) => enc.write_all(&b).map_err(write_err)?,
                Some(Msg::Finish) => break,
                // The stream failed or the write was cancelled: `tmp` is removed on return.
                None => return Err(pgsnap_core::Error::cancelled()),
            }
        }
        drop(rx);
        let file = enc.finish().map_err(write_err)?;
        let stored = file.metadata().map_err(|e| Error::io("cannot stat", &tmp.path, e))?.len();
        let defer = self.fsync && stored < DEFER_BELOW;
        if self.fsync && !defer {
            file.sync_all().map_err(|e| Error::io("cannot fsync", &tmp.path, e))?;
        }
        drop(file);
        std::fs::rename(&tmp.path, &final_path)
            .map_err(|e| Error::io("cannot rename a temporary file onto", &final_path, e))?;
        tmp.armed = false;
        if defer {
            let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
            d.files.push(final_path);
            d.dirs.insert(self.dir.clone());
        } else if self.fsync {
            pgsnap_core::checkpoint::sync_dir(&self.dir)
                .map_err(|e| reclassify(e, "cannot fsync directory", self.dir.clone()))?;
        }
        Ok(stored)
    }

    /// Creates the temporary file, creating the table directory on first use.
    fn create_temp(&self, tmp_path: &Path) -> pgsnap_core::Result<File> {
        let open = || OpenOptions::new().write(true).create_new(true).open(tmp_path);
        match open() {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)
                    .map_err(|e| Error::io("cannot create directory", &self.dir, e))?;
                // The new directory's entry is made durable at the next checkpoint, before
                // the manifest lists any chunk in it.
                if self.fsync {
                    let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
                    d.dirs.insert(self.out.clone());
                }
                open().map_err(|e| Error::io("cannot create", tmp_path, e).into())
            }
            Err(e) => Err(Error::io("cannot create", tmp_path, e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.18.44-fc-v1252", (5, 8)));
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(kernel_at_least("5.10.0-28-amd64", (5, 8)));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!kernel_at_least("4.19.0", (5, 8)));
        assert!(!kernel_at_least("garbage", (5, 8)));
    }
}

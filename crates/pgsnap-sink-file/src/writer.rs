//! The blocking side of a chunk write: encode, write a temp file, fsync, rename.
//!
//! Small chunk files are not fsynced one by one: two fsyncs (file and directory) cost more
//! than writing a small chunk (measured: 6,000 chunks of about 1 kB in as many directories,
//! see BENCHMARKS.md). They are listed in [`Deferred`] instead and made durable together,
//! before the manifest lists them, by [`Deferred::sync`]: on Linux one `syncfs(2)` (one
//! journal commit for all of them), then an fsync of each file and directory, which finds
//! them clean and costs little, but reports a write-back error of that file reliably.

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
    pub(crate) fn sync(&mut self, out: &File) -> pgsnap_core::Result<()> {
        if self.files.is_empty() && self.dirs.is_empty() {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::fs::syncfs(out) {
            tracing::debug!(error = %e, "syncfs failed; syncing file by file");
        }
        #[cfg(not(target_os = "linux"))]
        let _ = out;
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

/// One chunk file to write.
#[derive(Debug)]
pub(crate) struct WriteJob {
    pub(crate) out: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) file_name: String,
    pub(crate) compression: Compression,
    pub(crate) fsync: bool,
    /// Where a small chunk file is listed instead of being fsynced (with fsync on).
    pub(crate) deferred: Option<std::sync::Arc<std::sync::Mutex<Deferred>>>,
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
        let deferred = self.deferred.as_ref().filter(|_| self.fsync && stored < DEFER_BELOW);
        if self.fsync && deferred.is_none() {
            file.sync_all().map_err(|e| Error::io("cannot fsync", &tmp.path, e))?;
        }
        drop(file);
        std::fs::rename(&tmp.path, &final_path)
            .map_err(|e| Error::io("cannot rename a temporary file onto", &final_path, e))?;
        tmp.armed = false;
        if let Some(d) = deferred {
            let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
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
                // Make the new directory's entry durable: at the next checkpoint with
                // deferral (before the manifest lists any chunk in it), else now.
                if let Some(d) = self.deferred.as_ref().filter(|_| self.fsync) {
                    d.lock().unwrap_or_else(|e| e.into_inner()).dirs.insert(self.out.clone());
                } else if self.fsync {
                    pgsnap_core::checkpoint::sync_dir(&self.out)
                        .map_err(|e| reclassify(e, "cannot fsync directory", self.out.clone()))?;
                }
                open().map_err(|e| Error::io("cannot create", tmp_path, e).into())
            }
            Err(e) => Err(Error::io("cannot create", tmp_path, e).into()),
        }
    }
}

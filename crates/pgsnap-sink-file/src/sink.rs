//! The [`FileSink`] and its [`Sink`] implementation.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pgsnap_core::manifest::ManifestChunk;
use pgsnap_core::{
    Chunk, ChunkInspector, ChunkReceipt, ChunkStream, DataFormat, Sink, SinkDescription,
};
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use crate::error::BACKEND;
use crate::writer::{Msg, WriteJob};
use crate::{Compression, Error, VerifyMode, chunk_file_name, open_chunk, table_dir_name};

/// Buffers in flight between the async side and the writer thread (the byte budget below
/// is what really bounds memory).
const CHANNEL_CAPACITY: usize = 64;
/// Content bytes handed to the writer thread but not yet written, per chunk being written:
/// memory stays bounded by `jobs` times this, whatever the sizes of the buffers arriving.
const IN_FLIGHT_BYTES: usize = 4 << 20;
/// Small pieces (COPY sends one row per message) are gathered into buffers of this size
/// before they cross to the writer thread.
const BATCH_BYTES: usize = 64 * 1024;

/// A [`Sink`] writing one file per chunk under a directory per table.
///
/// Layout: `<out>/<table dir>/<chunk id>.<copy|csv>[.zst|.gz]`, see [`table_dir_name`] and
/// [`chunk_file_name`]. The path returned in the receipt, and recorded in the manifest, is
/// relative to `<out>` with `/` separators.
///
/// # Contract
/// - A chunk file appears under its final name only complete (and, with fsync on, durable):
///   it is written to `.<final name>.tmp-<uuid>` in the same directory, fsynced, renamed
///   over the final name and the directory fsynced. On any failure, or when the write is
///   cancelled, the temporary file is removed and nothing else changes; a rewrite replaces
///   the previous file atomically.
/// - Memory stays bounded: content streams through a channel of 8 buffers to a blocking
///   thread that compresses and writes it.
/// - Errors of the input stream are returned unchanged; I/O errors are classified as
///   described at [`Error::Io`].
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> pgsnap_core::Result<()> {
/// use pgsnap_core::{DataFormat, MemorySource, Sink, Source};
/// use pgsnap_sink_file::{Compression, FileSinkBuilder};
///
/// let (source, manifest) = MemorySource::example(1, 3);
/// let chunk = manifest.tables[0].chunk(&manifest.tables[0].chunks[0]);
/// let out = tempfile::tempdir().unwrap();
/// let sink = FileSinkBuilder::new(out.path())
///     .with_compression(Compression::Gzip { level: 6 })
///     .build()?;
/// let receipt = sink.write_chunk(&chunk, source.read_chunk(&chunk, DataFormat::Text).await?, &Default::default()).await?;
/// assert_eq!(receipt.path.as_deref(), Some("public.t/00000.copy.gz"));
/// assert_eq!(sink.chunk_path(&chunk), out.path().join("public.t/00000.copy.gz"));
/// let content = pgsnap_sink_file::read_chunk_file(sink.chunk_path(&chunk)).unwrap();
/// assert_eq!(content, b"0\trow 0\n1\trow 1\n2\trow 2\n");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileSink {
    /// The output directory, opened and locked for the sink's lifetime.
    pub(crate) _lock: std::sync::Arc<std::fs::File>,
    pub(crate) out: PathBuf,
    pub(crate) format: DataFormat,
    pub(crate) compression: Compression,
    pub(crate) fsync: bool,
    pub(crate) verify: VerifyMode,
}

impl FileSink {
    /// The output directory.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// The content format stored.
    pub fn format(&self) -> DataFormat {
        self.format
    }

    /// The compression of chunk files.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// How a resumed run checks chunks recorded as done.
    pub fn verify_mode(&self) -> VerifyMode {
        self.verify
    }

    /// Whether files and directories are fsynced.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// A chunk's file path relative to the output directory, as recorded in the manifest:
    /// `<table dir>/<file name>`.
    pub fn relative_path(&self, chunk: &Chunk) -> String {
        format!(
            "{}/{}",
            table_dir_name(&chunk.table),
            chunk_file_name(chunk.id, self.format, self.compression)
        )
    }

    /// A chunk's file path.
    pub fn chunk_path(&self, chunk: &Chunk) -> PathBuf {
        self.out.join(table_dir_name(&chunk.table)).join(chunk_file_name(
            chunk.id,
            self.format,
            self.compression,
        ))
    }
}

/// Why forwarding the stream stopped.
enum Forwarded {
    /// The stream ended; everything was sent.
    Complete,
    /// The writer thread stopped (it failed); its result says why.
    WriterGone,
    /// The stream yielded an error.
    StreamFailed(pgsnap_core::Error),
}

/// Sends the stream's content to the writer, gathering small pieces into larger buffers.
async fn forward(data: &mut ChunkStream, tx: &mpsc::Sender<Msg>) -> Forwarded {
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    let send = |out: Bytes| {
        let budget = Arc::clone(&budget);
        async move {
            let n = out.len().clamp(1, IN_FLIGHT_BYTES) as u32;
            let Ok(permit) = budget.acquire_many_owned(n).await else { return false };
            tx.send(Msg::Data(out, permit)).await.is_ok()
        }
    };
    let mut batch = BytesMut::new();
    while let Some(item) = data.next().await {
        let buf = match item {
            Ok(b) => b,
            Err(e) => return Forwarded::StreamFailed(e),
        };
        let out: Bytes = if batch.is_empty() && buf.len() >= BATCH_BYTES {
            buf
        } else {
            batch.extend_from_slice(&buf);
            if batch.len() < BATCH_BYTES {
                continue;
            }
            batch.split().freeze()
        };
        if !send(out).await {
            return Forwarded::WriterGone;
        }
    }
    if !batch.is_empty() && !send(batch.freeze()).await {
        return Forwarded::WriterGone;
    }
    if tx.send(Msg::Finish).await.is_err() {
        return Forwarded::WriterGone;
    }
    Forwarded::Complete
}

fn join_error(e: tokio::task::JoinError, what: &str) -> pgsnap_core::Error {
    if e.is_cancelled() {
        pgsnap_core::Error::cancelled()
    } else {
        pgsnap_core::Error::new(pgsnap_core::ErrorKind::Unexpected, format!("{what} panicked: {e}"))
            .with_backend(BACKEND)
    }
}

#[async_trait]
impl Sink for FileSink {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn description(&self) -> SinkDescription {
        SinkDescription::new(self.format).with_compression(self.compression.as_str())
    }

    async fn write_chunk(
        &self,
        chunk: &Chunk,
        mut data: ChunkStream,
        _ctx: &pgsnap_core::WriteContext,
    ) -> pgsnap_core::Result<ChunkReceipt> {
        let dir_name = table_dir_name(&chunk.table);
        let file_name = chunk_file_name(chunk.id, self.format, self.compression);
        let relative = format!("{dir_name}/{file_name}");
        let job = WriteJob {
            out: self.out.clone(),
            dir: self.out.join(&dir_name),
            file_name,
            compression: self.compression,
            fsync: self.fsync,
        };
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        // If this future is dropped, `tx` goes with it and the job removes its temp file.
        let writer = tokio::task::spawn_blocking(move || job.run(rx));
        let forwarded = forward(&mut data, &tx).await;
        drop(tx);
        let written = writer.await.map_err(|e| join_error(e, "file writer"));
        match forwarded {
            // The job saw the channel close without `Finish` and removed its temp file.
            Forwarded::StreamFailed(e) => Err(e),
            Forwarded::Complete => Ok(ChunkReceipt::new(Some(relative), written??)),
            Forwarded::WriterGone => match written? {
                Err(e) => Err(e),
                Ok(_) => Err(pgsnap_core::Error::new(
                    pgsnap_core::ErrorKind::Unexpected,
                    "file writer stopped before the end of the chunk",
                )
                .with_backend(BACKEND)),
            },
        }
    }

    async fn chunk_intact(
        &self,
        chunk: &Chunk,
        record: &ManifestChunk,
    ) -> pgsnap_core::Result<bool> {
        let relative = self.relative_path(chunk);
        if record.path.as_deref() != Some(relative.as_str()) {
            tracing::debug!(chunk = %chunk.label(), recorded = ?record.path, expected = %relative,
                "chunk recorded at another path than this sink writes");
            return Ok(false);
        }
        let path = self.out.join(&relative);
        let (verify, format, record) = (self.verify, self.format, record.clone());
        tokio::task::spawn_blocking(move || verify_file(&path, verify, format, &record))
            .await
            .map_err(|e| join_error(e, "chunk verification"))?
            .map_err(Into::into)
    }
}

/// Whether the file at `path` matches `record`; `Ok(false)` for missing or damaged files.
fn verify_file(
    path: &Path,
    verify: VerifyMode,
    format: DataFormat,
    record: &ManifestChunk,
) -> Result<bool, Error> {
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

//! The [`FileSink`] and its [`Sink`] implementation.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pgsnap_core::manifest::ManifestChunk;
use pgsnap_core::{Chunk, ChunkReceipt, ChunkStream, DataFormat, Sink, SinkDescription};
use tokio::sync::{Semaphore, mpsc};

use crate::compression::Compression;
use crate::error::BACKEND;
use crate::layout::{chunk_file_name, table_dir_name};
use crate::verify::{VerifyMode, verify_file};
use crate::writer::{Msg, WriteJob};

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
/// - A chunk file appears under its final name only complete: it is written to
///   `.<final name>.tmp-<uuid>` in the same directory and renamed over the final name. On
///   any failure, or when the write is cancelled, the temporary file is removed and nothing
///   else changes; a rewrite replaces the previous file atomically.
/// - With fsync on, a chunk is durable (file and directory entry) before the manifest lists
///   it: a file of 1 MiB or more is fsynced before the rename and its directory after it;
///   smaller files are made durable together by [`Sink::make_durable`], which the
///   coordinator calls before every manifest save: on Linux 5.8+ one `syncfs`, elsewhere an
///   fsync per file and directory (per-file fsyncs cost more than writing small chunks;
///   see the `writer` module).
/// - Memory stays bounded: content streams through a channel of 8 buffers to a blocking
///   thread that compresses and writes it.
/// - Errors of the input stream are returned unchanged; I/O errors are classified as
///   described at [`Error::Io`](crate::Error::Io).
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
    _lock: Arc<File>,
    config: SinkConfig,
    /// Small chunk files written since the last [`Sink::make_durable`].
    deferred: Arc<std::sync::Mutex<crate::writer::Deferred>>,
}

/// What a [`FileSink`] is configured with (the builder fills it in and checks it).
#[derive(Debug, Clone)]
pub(crate) struct SinkConfig {
    /// The output directory.
    pub(crate) out: PathBuf,
    /// The content format asked of the source and stored.
    pub(crate) format: DataFormat,
    /// How chunk files are compressed (level already validated by the builder).
    pub(crate) compression: Compression,
    /// Whether files and directories are fsynced.
    pub(crate) fsync: bool,
    /// How a resumed run checks chunks recorded as done.
    pub(crate) verify: VerifyMode,
}

impl FileSink {
    /// A sink writing under `config.out`, whose directory `lock` is open and locked (held
    /// until the sink and all its clones are dropped).
    pub(crate) fn new(config: SinkConfig, lock: File) -> Self {
        Self { _lock: Arc::new(lock), config, deferred: Arc::default() }
    }

    /// The output directory.
    pub fn out_dir(&self) -> &Path {
        &self.config.out
    }

    /// The content format stored.
    pub fn format(&self) -> DataFormat {
        self.config.format
    }

    /// The compression of chunk files.
    pub fn compression(&self) -> Compression {
        self.config.compression
    }

    /// How a resumed run checks chunks recorded as done.
    pub fn verify_mode(&self) -> VerifyMode {
        self.config.verify
    }

    /// Whether files and directories are fsynced.
    pub fn fsync(&self) -> bool {
        self.config.fsync
    }

    /// A chunk's file path relative to the output directory, as recorded in the manifest:
    /// `<table dir>/<file name>`.
    pub fn relative_path(&self, chunk: &Chunk) -> String {
        format!(
            "{}/{}",
            table_dir_name(&chunk.table),
            chunk_file_name(chunk.id, self.config.format, self.config.compression)
        )
    }

    /// A chunk's file path.
    pub fn chunk_path(&self, chunk: &Chunk) -> PathBuf {
        self.config.out.join(table_dir_name(&chunk.table)).join(chunk_file_name(
            chunk.id,
            self.config.format,
            self.config.compression,
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
        SinkDescription::new(self.config.format).with_compression(self.config.compression.as_str())
    }

    async fn write_chunk(
        &self,
        chunk: &Chunk,
        mut data: ChunkStream,
        _ctx: &pgsnap_core::WriteContext,
    ) -> pgsnap_core::Result<ChunkReceipt> {
        let dir_name = table_dir_name(&chunk.table);
        let file_name = chunk_file_name(chunk.id, self.config.format, self.config.compression);
        let relative = format!("{dir_name}/{file_name}");
        let job = WriteJob {
            out: self.config.out.clone(),
            dir: self.config.out.join(&dir_name),
            file_name,
            compression: self.config.compression,
            fsync: self.config.fsync,
            deferred: Arc::clone(&self.deferred),
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

    async fn make_durable(&self) -> pgsnap_core::Result<()> {
        if !self.config.fsync {
            return Ok(());
        }
        let (deferred, out) = (Arc::clone(&self.deferred), Arc::clone(&self._lock));
        let out_path = self.config.out.clone();
        tokio::task::spawn_blocking(move || {
            // Taken out first: writers go on listing files while these are synced.
            let mut taken =
                std::mem::take(&mut *deferred.lock().unwrap_or_else(|e| e.into_inner()));
            taken.sync(&out, &out_path)
        })
        .await
        .map_err(|e| join_error(e, "fsync of chunk files"))?
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
        let path = self.config.out.join(&relative);
        let (verify, format, record) = (self.config.verify, self.config.format, record.clone());
        tokio::task::spawn_blocking(move || verify_file(&path, verify, format, &record))
            .await
            .map_err(|e| join_error(e, "chunk verification"))?
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgsnap_core::{MemorySource, Source};

    fn deferred(sink: &FileSink) -> usize {
        sink.deferred.lock().unwrap().files_len()
    }

    #[tokio::test]
    async fn small_chunks_are_made_durable_at_the_checkpoint_large_ones_at_once() {
        let out = tempfile::tempdir().unwrap();
        let sink = crate::FileSinkBuilder::new(out.path()).build().unwrap();
        let (source, manifest) = MemorySource::example(2, 3);
        let t = &manifest.tables[0];
        let small = t.chunk(&t.chunks[0]);
        let data = source.read_chunk(&small, DataFormat::Text).await.unwrap();
        sink.write_chunk(&small, data, &Default::default()).await.unwrap();
        assert_eq!(deferred(&sink), 1);
        sink.make_durable().await.unwrap();
        assert_eq!(deferred(&sink), 0);
        // A chunk of 2 MiB is fsynced before its write returns.
        let large = t.chunk(&t.chunks[1]);
        let rows: ChunkStream = Box::pin(futures::stream::iter((0..2048).map(|_| {
            Ok(Bytes::from(vec![b'x'; 1023].into_iter().chain([b'\n']).collect::<Vec<u8>>()))
        })));
        sink.write_chunk(&large, rows, &Default::default()).await.unwrap();
        assert_eq!(deferred(&sink), 0);
        // Without fsync nothing is listed.
        let out2 = tempfile::tempdir().unwrap();
        let nosync = crate::FileSinkBuilder::new(out2.path()).with_fsync(false).build().unwrap();
        let data = source.read_chunk(&small, DataFormat::Text).await.unwrap();
        nosync.write_chunk(&small, data, &Default::default()).await.unwrap();
        assert_eq!(deferred(&nosync), 0);
    }
}

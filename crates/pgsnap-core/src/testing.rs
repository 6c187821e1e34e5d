//! The `Sink` conformance suite and fault-injecting wrappers (feature `testing`).
//!
//! Every sink runs the same suite: call [`sink_conformance`] from a test with your sink and a
//! [`SinkProbe`] that reads back what the sink stored.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use pgsnap_core::testing::{memory_sink_under_test, sink_conformance};
//! sink_conformance(|| async { memory_sink_under_test() }).await;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::memory::MemorySource;
use crate::{
    Chunk, ChunkId, ChunkReceipt, ChunkStream, Coordinator, CoordinatorOptions, DataFormat, Error,
    ErrorKind, Manifest, MemoryCheckpointStore, MemorySink, Result, RunStatus, Sink,
    SinkDescription, Source, WriteContext,
};

/// Reads back what one sink stored, for the conformance suite.
#[async_trait]
pub trait SinkProbe: Send + Sync {
    /// The content stored for a chunk (uncompressed, in the sink's input format), or `None`
    /// when the chunk is not stored.
    async fn read_back(&self, chunk: &Chunk) -> Option<Bytes>;
    /// How many stored copies of the chunk exist (must be 0 or 1).
    async fn copies(&self, chunk: &Chunk) -> usize {
        usize::from(self.read_back(chunk).await.is_some())
    }
}

/// A sink under test and the probe that reads it back.
pub type SinkUnderTest = (Arc<dyn Sink>, Box<dyn SinkProbe>);

/// A probe for [`MemorySink`].
#[derive(Debug)]
pub struct MemoryProbe(pub Arc<MemorySink>);

#[async_trait]
impl SinkProbe for MemoryProbe {
    async fn read_back(&self, chunk: &Chunk) -> Option<Bytes> {
        self.0.get(&chunk.table, chunk.id)
    }
}

/// A fresh [`MemorySink`] and its probe.
pub fn memory_sink_under_test() -> SinkUnderTest {
    let sink = Arc::new(MemorySink::new());
    (Arc::clone(&sink) as Arc<dyn Sink>, Box::new(MemoryProbe(sink)))
}

/// Runs the whole suite. `make` builds a fresh, empty sink and its probe for each case.
///
/// # Panics
/// On the first case the sink fails, naming the case.
pub async fn sink_conformance<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = SinkUnderTest>,
{
    let (s, p) = make().await;
    write_and_read_back(s, p.as_ref()).await;
    let (s, p) = make().await;
    empty_chunk(s, p.as_ref()).await;
    let (s, p) = make().await;
    same_chunk_twice_is_stored_once(s, p.as_ref()).await;
    let (s, p) = make().await;
    concurrent_chunks(s, p.as_ref()).await;
    let (s, p) = make().await;
    transient_source_error_is_retried(s, p.as_ref()).await;
    let (s, p) = make().await;
    transient_sink_error_is_retried(s, p.as_ref()).await;
    let (s, p) = make().await;
    failed_chunk_is_never_done(s, p.as_ref()).await;
}

fn rows(prefix: &str, n: usize) -> Bytes {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("{i}\t{prefix} \\t tab\\nnewline \\\\ é {i}\n"));
    }
    Bytes::from(s)
}

async fn run(
    sink: Arc<dyn Sink>,
    source: Arc<dyn Source>,
    manifest: Manifest,
    jobs: usize,
) -> crate::RunReport {
    Coordinator::new(source, sink, Arc::new(MemoryCheckpointStore::new()))
        .with_options(
            CoordinatorOptions::default()
                .with_jobs(jobs)
                .with_retry_backoff(std::time::Duration::from_millis(1)),
        )
        .run(manifest)
        .await
        .expect("coordinator run")
}

fn manifest_for(
    sink: &dyn Sink,
    source: &MemorySource,
    chunks: u32,
    rows_per_chunk: usize,
    tag: &str,
) -> Manifest {
    let (_, mut manifest) = MemorySource::example(chunks, 1);
    manifest.format = sink.description().input_format;
    manifest.compression = sink.description().compression;
    let t = manifest.tables[0].schema.name.clone();
    for c in 0..chunks {
        source.insert(t.clone(), ChunkId(c), rows(&format!("{tag}{c}"), rows_per_chunk));
    }
    manifest
}

/// Chunks written through the coordinator read back byte-exactly.
pub async fn write_and_read_back(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 3, 1000, "a");
    let report = run(Arc::clone(&sink), Arc::new(source.clone()), manifest, 2).await;
    assert_eq!(report.status, RunStatus::Ok, "write_and_read_back: {:?}", report.fatal);
    for t in &report.manifest.tables {
        for c in &t.chunks {
            let chunk = t.chunk(c);
            let want = source.content(&chunk.table, chunk.id).unwrap();
            let got = probe.read_back(&chunk).await;
            assert_eq!(got.as_ref(), Some(&want), "write_and_read_back: {} differs", chunk.label());
            assert_eq!(c.rows, 1000, "write_and_read_back: row count of {}", chunk.label());
            assert_eq!(c.bytes, want.len() as u64);
        }
    }
}

/// An empty chunk is stored as empty and reported done with zero rows.
pub async fn empty_chunk(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 1, 0, "e");
    let report = run(Arc::clone(&sink), Arc::new(source), manifest, 1).await;
    assert_eq!(report.status, RunStatus::Ok, "empty_chunk: {:?}", report.fatal);
    let t = &report.manifest.tables[0];
    assert!(t.chunks[0].done && t.chunks[0].rows == 0, "empty_chunk: not done with 0 rows");
    let got = probe.read_back(&t.chunk(&t.chunks[0])).await;
    assert!(got.is_none_or(|b| b.is_empty()), "empty_chunk: stored non-empty content");
}

/// Writing a chunk again stores it once: with the last content for sinks that replace, the
/// first for sinks that keep it ([`Rewrite`](crate::Rewrite)).
pub async fn same_chunk_twice_is_stored_once(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 1, 10, "first");
    let schemas: Vec<_> = manifest.tables.iter().map(|t| t.schema.clone()).collect();
    sink.prepare(&crate::PrepareContext::new(&schemas, &manifest.run_id, false))
        .await
        .expect("same_chunk_twice: prepare");
    let t = &manifest.tables[0];
    let chunk = t.chunk(&t.chunks[0]);
    sink.write_chunk(
        &chunk,
        source.read_chunk(&chunk, DataFormat::Text).await.unwrap(),
        &WriteContext::default(),
    )
    .await
    .expect("first write");
    let first = source.content(&chunk.table, chunk.id);
    source.insert(chunk.table.clone(), chunk.id, rows("second", 10));
    sink.write_chunk(
        &chunk,
        source.read_chunk(&chunk, DataFormat::Text).await.unwrap(),
        &WriteContext::default(),
    )
    .await
    .expect("second write");
    assert_eq!(probe.copies(&chunk).await, 1, "same_chunk_twice: stored more than once");
    match sink.description().rewrite {
        crate::Rewrite::KeepsFirst => assert_eq!(
            probe.read_back(&chunk).await,
            first,
            "same_chunk_twice: the first write's content must stay"
        ),
        _ => assert_eq!(
            probe.read_back(&chunk).await,
            source.content(&chunk.table, chunk.id),
            "same_chunk_twice: the second write's content must win"
        ),
    }
}

/// Many chunks written at once all arrive intact.
pub async fn concurrent_chunks(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 32, 200, "c");
    let report = run(Arc::clone(&sink), Arc::new(source.clone()), manifest, 8).await;
    assert_eq!(report.status, RunStatus::Ok, "concurrent_chunks: {:?}", report.fatal);
    for t in &report.manifest.tables {
        for c in &t.chunks {
            let chunk = t.chunk(c);
            assert_eq!(
                probe.read_back(&chunk).await,
                source.content(&chunk.table, chunk.id),
                "concurrent_chunks: {} differs",
                chunk.label()
            );
        }
    }
}

/// A source failing transiently mid-chunk is retried; the chunk ends up stored once, whole.
pub async fn transient_source_error_is_retried(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 2, 500, "t");
    let faulty = FaultySource::new(source.clone(), 2, true);
    let report = run(Arc::clone(&sink), Arc::new(faulty.clone()), manifest, 2).await;
    assert_eq!(report.status, RunStatus::Ok, "transient_error: {:?}", report.fatal);
    assert!(faulty.attempts() >= 4, "transient_error: the faults were not injected");
    for t in &report.manifest.tables {
        for c in &t.chunks {
            let chunk = t.chunk(c);
            assert_eq!(c.attempts, 3, "transient_error: attempts of {}", chunk.label());
            assert_eq!(
                probe.copies(&chunk).await,
                1,
                "transient_error: copies of {}",
                chunk.label()
            );
            assert_eq!(
                probe.read_back(&chunk).await,
                source.content(&chunk.table, chunk.id),
                "transient_error: {} differs after retry",
                chunk.label()
            );
        }
    }
}

/// A sink failing transiently is retried by the coordinator; the chunk is stored once.
pub async fn transient_sink_error_is_retried(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 2, 300, "s");
    let faulty: Arc<dyn Sink> = Arc::new(FaultySink::new(Arc::clone(&sink), 2));
    let report = run(faulty, Arc::new(source.clone()), manifest, 2).await;
    assert_eq!(report.status, RunStatus::Ok, "transient_sink_error: {:?}", report.fatal);
    for t in &report.manifest.tables {
        for c in &t.chunks {
            let chunk = t.chunk(c);
            assert_eq!(
                probe.copies(&chunk).await,
                1,
                "transient_sink_error: copies of {}",
                chunk.label()
            );
            assert_eq!(
                probe.read_back(&chunk).await,
                source.content(&chunk.table, chunk.id),
                "transient_sink_error: {} differs after retry",
                chunk.label()
            );
        }
    }
}

/// A chunk whose source fails for good is never reported done and never stored.
pub async fn failed_chunk_is_never_done(sink: Arc<dyn Sink>, probe: &dyn SinkProbe) {
    let source = MemorySource::new();
    let manifest = manifest_for(sink.as_ref(), &source, 1, 500, "f");
    let faulty = FaultySource::new(source.clone(), u32::MAX, false);
    let report = run(Arc::clone(&sink), Arc::new(faulty), manifest, 1).await;
    assert_eq!(report.status, RunStatus::Failed, "failed_chunk: run should fail");
    let t = &report.manifest.tables[0];
    assert!(!t.chunks[0].done, "failed_chunk: reported done");
    assert!(t.error.is_some(), "failed_chunk: the table error is not recorded");
    let got = probe.read_back(&t.chunk(&t.chunks[0])).await;
    assert!(got.is_none(), "failed_chunk: partial content is visible");
}

/// Wraps a source so its streams fail halfway for the first `failures` attempts of every chunk.
#[derive(Debug, Clone)]
pub struct FaultySource<S> {
    inner: S,
    failures: u32,
    transient: bool,
    attempts: Arc<AtomicU32>,
    seen: Arc<std::sync::Mutex<std::collections::HashMap<(crate::TableName, ChunkId), u32>>>,
}

impl<S: Source> FaultySource<S> {
    /// Fails the first `failures` reads of each chunk halfway through, with a transient or a
    /// permanent error.
    pub fn new(inner: S, failures: u32, transient: bool) -> Self {
        Self { inner, failures, transient, attempts: Arc::default(), seen: Arc::default() }
    }

    /// Reads started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<S: Source> Source for FaultySource<S> {
    fn name(&self) -> &'static str {
        "faulty"
    }

    async fn read_chunk(&self, chunk: &Chunk, format: DataFormat) -> Result<ChunkStream> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let n = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry((chunk.table.clone(), chunk.id)).or_default();
            *n += 1;
            *n
        };
        let inner = self.inner.read_chunk(chunk, format).await?;
        if n > self.failures {
            return Ok(inner);
        }
        let transient = self.transient;
        // Pass about half of the pieces, then fail.
        let all: Vec<Result<Bytes>> = inner.collect().await;
        let keep = all.len() / 2;
        let err = move || {
            let source: crate::BoxError = "injected fault: connection reset mid-chunk".into();
            let e = Error::from_backend(ErrorKind::Source, "faulty", source);
            if transient { e.set_temporary() } else { e }
        };
        let items = all.into_iter().take(keep).chain(std::iter::once(Err(err())));
        Ok(futures::stream::iter(items).boxed())
    }
}

/// Wraps a sink so its first `failures` writes fail transiently after consuming part of the
/// chunk (to test the coordinator's retries against sinks).
#[derive(Debug)]
pub struct FaultySink<S> {
    inner: S,
    failures: AtomicU32,
}

impl<S: Sink> FaultySink<S> {
    /// Fails the first `failures` writes.
    pub fn new(inner: S, failures: u32) -> Self {
        Self { inner, failures: AtomicU32::new(failures) }
    }
}

#[async_trait]
impl<S: Sink> Sink for FaultySink<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn description(&self) -> SinkDescription {
        self.inner.description()
    }
    async fn prepare(&self, ctx: &crate::PrepareContext<'_>) -> Result<()> {
        self.inner.prepare(ctx).await
    }
    fn identity(&self) -> Option<String> {
        self.inner.identity()
    }
    async fn make_durable(&self) -> Result<()> {
        self.inner.make_durable().await
    }
    async fn chunk_intact(
        &self,
        chunk: &Chunk,
        record: &crate::manifest::ManifestChunk,
    ) -> Result<bool> {
        self.inner.chunk_intact(chunk, record).await
    }
    async fn write_chunk(
        &self,
        chunk: &Chunk,
        mut data: ChunkStream,
        ctx: &WriteContext,
    ) -> Result<ChunkReceipt> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            let mut buf = BytesMut::new();
            if let Some(b) = data.next().await {
                buf.extend_from_slice(&b?);
            }
            return Err(Error::from_backend(ErrorKind::Sink, "faulty-sink", "injected sink fault")
                .set_temporary());
        }
        self.inner.write_chunk(chunk, data, ctx).await
    }
}

//! The `Sink` trait: where chunks are written.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::manifest::ManifestChunk;
use crate::retry::{RetryBudget, RetryPolicy};
use crate::{Chunk, ChunkStream, DataFormat, LoadReceipt, Result};

/// What a sink is, for the manifest and for the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkDescription {
    /// The format the sink wants chunk content in (the source produces it).
    pub input_format: DataFormat,
    /// How the sink stores content (`none`, `zstd`, `gzip`, or a sink-specific word).
    pub compression: String,
    /// What writing a chunk that is already stored does.
    pub rewrite: Rewrite,
}

/// What a sink does when a chunk it already stored is written again (a retry, or a resumed
/// run). Under one snapshot a chunk's content is the same on every read, so both keep the
/// chunk stored exactly once; they differ only when the content changed (a resume under a
/// new snapshot, when the run allows a snapshot change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rewrite {
    /// The new write replaces the stored chunk (files: an atomic rename).
    Replaces,
    /// The first complete write is kept and later ones are skipped (databases loading under
    /// a per-chunk idempotency label, e.g. StarRocks Stream Load).
    KeepsFirst,
}

impl SinkDescription {
    /// A description with the given input format, no compression, and rewrites that replace.
    pub fn new(input_format: DataFormat) -> Self {
        Self { input_format, compression: "none".into(), rewrite: Rewrite::Replaces }
    }

    /// Sets what rewriting a stored chunk does.
    pub fn with_rewrite(mut self, rewrite: Rewrite) -> Self {
        self.rewrite = rewrite;
        self
    }

    /// Sets the compression label.
    pub fn with_compression(mut self, compression: impl Into<String>) -> Self {
        self.compression = compression.into();
        self
    }
}

/// Where a written chunk ended up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ChunkReceipt {
    /// The location, relative to the sink's root (a file path, a load label, ...).
    pub path: Option<String>,
    /// Bytes as stored (after compression).
    pub stored_bytes: u64,
    /// What a loading sink (a database) reported for this chunk; recorded in the manifest.
    pub load: Option<LoadReceipt>,
}

impl ChunkReceipt {
    /// A receipt for content stored at `path` taking `stored_bytes`.
    pub fn new(path: Option<String>, stored_bytes: u64) -> Self {
        Self { path, stored_bytes, load: None }
    }

    /// Adds what the target database reported about the load(s) of this chunk.
    pub fn with_load(mut self, load: LoadReceipt) -> Self {
        self.load = Some(load);
        self
    }
}

/// What [`Sink::prepare`] is told about the run it prepares for.
///
/// ```
/// use pgsnap_core::PrepareContext;
/// let ctx = PrepareContext::new(&[], "5f0c-run", false);
/// assert!(!ctx.resume);
/// assert_eq!(ctx.run_id, "5f0c-run");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PrepareContext<'a> {
    /// The tables the run copies.
    pub tables: &'a [crate::TableSchema],
    /// The run's id (kept across resumes; a sink may name its loads after it).
    pub run_id: &'a str,
    /// Whether this continues an interrupted run (rules for new runs only, such as refusing
    /// a target that already holds rows, must not apply).
    pub resume: bool,
}

impl<'a> PrepareContext<'a> {
    /// A context for `tables` of run `run_id`.
    pub fn new(tables: &'a [crate::TableSchema], run_id: &'a str, resume: bool) -> Self {
        Self { tables, run_id, resume }
    }
}

/// What [`Sink::write_chunk`] is told about the write it does.
///
/// ```
/// use pgsnap_core::{RetryPolicy, WriteContext};
/// let ctx = WriteContext::new(RetryPolicy::default().with_max_attempts(1).budget());
/// assert_eq!(ctx.retry().policy().max_attempts(), 1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriteContext {
    retry: RetryBudget,
}

impl WriteContext {
    /// A context whose sink-side retries take attempts from `retry`, the chunk's budget.
    pub fn new(retry: RetryBudget) -> Self {
        Self { retry }
    }

    /// The chunk's retry budget. A sink retries a request on its own only when it can
    /// replay it without the chunk's data (a load refused before its body was sent, a
    /// commit, a status poll): [`RetryBudget::begin`] for each such retry, after waiting
    /// what [`RetryBudget::next_delay`] says. Anything else it returns, temporary when a
    /// new attempt may succeed, and the coordinator re-reads the chunk.
    pub fn retry(&self) -> &RetryBudget {
        &self.retry
    }
}

impl Default for WriteContext {
    /// A context with a fresh budget of the default [`RetryPolicy`].
    fn default() -> Self {
        Self::new(RetryPolicy::default().budget())
    }
}

/// A destination for chunks.
///
/// # Lifecycle
/// [`prepare`](Sink::prepare) is called once, before any chunk (the coordinator calls it at
/// the start of every run, fresh or resumed); then [`write_chunk`](Sink::write_chunk) for
/// each chunk. [`identity`](Sink::identity) names what the sink writes; a run's manifest
/// records it and a resume must find the same.
///
/// # Contract
/// - Delivery is at-least-once: `write_chunk` may be called again for a chunk that was
///   written before (a retry, or a resumed run), concurrently with other chunks. The result
///   must be the chunk stored once, never twice: with the last write's content, or the first
///   complete write's, as [`SinkDescription::rewrite`] declares.
/// - `write_chunk` consumes `data` to the end before returning `Ok`. If `data` yields an
///   error, or the sink fails, nothing of this chunk may become visible as complete, and
///   the error from `data` is returned unchanged (the coordinator classifies it).
/// - A failure the run cannot get past (no space, no permission on the output) has the kind
///   [`ErrorKind::SinkUnavailable`](crate::ErrorKind::SinkUnavailable); one a new attempt
///   may fix is [temporary](crate::Error::set_temporary). Retries inside the sink take
///   their attempts from [`WriteContext::retry`], the chunk's one budget.
/// - Implementations must be safe for concurrent use.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// A short backend name for messages, e.g. `files`.
    fn name(&self) -> &'static str;

    /// The format wanted and how content is stored.
    fn description(&self) -> SinkDescription;

    /// Writes one chunk, consuming `data` completely.
    ///
    /// # Errors
    /// As described in the contract.
    async fn write_chunk(
        &self,
        chunk: &Chunk,
        data: ChunkStream,
        ctx: &WriteContext,
    ) -> Result<ChunkReceipt>;

    /// Whether a chunk the manifest records as done is still intact, so a resumed run may
    /// skip it. The default trusts the record.
    async fn chunk_intact(&self, chunk: &Chunk, record: &ManifestChunk) -> Result<bool> {
        let _ = (chunk, record);
        Ok(true)
    }

    /// Prepares the targets before any chunk (create or check tables, refuse what a new run
    /// must not write into, ...). Called once per run; must be idempotent (a resume, or a
    /// caller that prepared already, calls it again). The default does nothing.
    ///
    /// # Errors
    /// Whatever makes the run impossible; the coordinator then copies nothing.
    async fn prepare(&self, ctx: &PrepareContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Makes every chunk this sink has returned `Ok` for durable. The coordinator calls it
    /// before each manifest save, so a chunk the manifest lists as done is durable; a sink
    /// may thus defer the cost of durability (fsync) for small chunks and pay it once per
    /// checkpoint. The default does nothing: `write_chunk` returns only once the chunk is
    /// durable.
    ///
    /// # Errors
    /// Durability cannot be had (an I/O error): the coordinator then does not save the
    /// manifest and the run fails.
    async fn make_durable(&self) -> Result<()> {
        Ok(())
    }

    /// The identity of what this sink writes where (layout, format, targets, label scheme),
    /// when it is not already in the manifest's `format` and `compression`: recorded in the
    /// manifest's `sink` field, and a resume must present the same. The default is `None`.
    fn identity(&self) -> Option<String> {
        None
    }
}

#[async_trait]
impl<T: Sink + ?Sized> Sink for std::sync::Arc<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn description(&self) -> SinkDescription {
        (**self).description()
    }
    async fn write_chunk(
        &self,
        chunk: &Chunk,
        data: ChunkStream,
        ctx: &WriteContext,
    ) -> Result<ChunkReceipt> {
        (**self).write_chunk(chunk, data, ctx).await
    }
    async fn chunk_intact(&self, chunk: &Chunk, record: &ManifestChunk) -> Result<bool> {
        (**self).chunk_intact(chunk, record).await
    }
    async fn prepare(&self, ctx: &PrepareContext<'_>) -> Result<()> {
        (**self).prepare(ctx).await
    }
    async fn make_durable(&self) -> Result<()> {
        (**self).make_durable().await
    }
    fn identity(&self) -> Option<String> {
        (**self).identity()
    }
}

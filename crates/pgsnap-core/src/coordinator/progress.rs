//! Progress events and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Chunk, ChunkStats, TableName};

/// Something that happened during a run, delivered to the progress handler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A chunk attempt started.
    ChunkStarted {
        /// The chunk.
        chunk: Chunk,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A chunk is durably written and recorded.
    ChunkDone {
        /// The chunk.
        chunk: Chunk,
        /// Its rows, bytes and checksum.
        stats: ChunkStats,
    },
    /// A chunk attempt failed transiently and will be retried.
    ChunkRetry {
        /// The chunk.
        chunk: Chunk,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// A chunk failed for good; its table is marked failed.
    ChunkFailed {
        /// The chunk.
        chunk: Chunk,
        /// Why.
        error: String,
    },
    /// Periodic totals.
    Tick(ProgressSnapshot),
}

/// Totals at one moment of a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProgressSnapshot {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Content bytes streamed so far (including chunks in flight).
    pub bytes: u64,
    /// Rows in finished chunks.
    pub rows: u64,
    /// Finished chunks, including ones done by an earlier run.
    pub chunks_done: u64,
    /// All chunks.
    pub chunks_total: u64,
    /// Estimated source bytes of finished chunks.
    pub estimated_done: u64,
    /// Estimated source bytes of all chunks.
    pub estimated_total: u64,
    /// Content bytes per second over this run.
    pub throughput: f64,
    /// Estimated time to completion, once something finished.
    pub eta: Option<Duration>,
    /// Per table.
    pub tables: Vec<TableProgress>,
}

/// Per-table totals.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableProgress {
    /// The table.
    pub table: TableName,
    /// Content bytes streamed (including chunks in flight).
    pub bytes: u64,
    /// Rows in finished chunks.
    pub rows: u64,
    /// Finished chunks.
    pub chunks_done: u64,
    /// All chunks.
    pub chunks_total: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes: AtomicU64,
    pub(crate) rows: AtomicU64,
    pub(crate) chunks_done: AtomicU64,
    pub(crate) estimated_done: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Tracker {
    pub(crate) started: Instant,
    pub(crate) total: Counters,
    pub(crate) tables: Vec<(TableName, Counters, u64)>,
    pub(crate) chunks_total: u64,
    pub(crate) estimated_total: u64,
    /// Estimated bytes already done when this run started (resume), excluded from the rate.
    pub(crate) estimated_before: u64,
}

impl Tracker {
    pub(crate) fn snapshot(&self) -> ProgressSnapshot {
        let elapsed = self.started.elapsed();
        let bytes = self.total.bytes.load(Ordering::Relaxed);
        let estimated_done = self.total.estimated_done.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(1e-3);
        let done_now = estimated_done.saturating_sub(self.estimated_before);
        let eta = (done_now > 0).then(|| {
            let rate = done_now as f64 / secs;
            Duration::from_secs_f64(
                self.estimated_total.saturating_sub(estimated_done) as f64 / rate,
            )
        });
        ProgressSnapshot {
            elapsed,
            bytes,
            rows: self.total.rows.load(Ordering::Relaxed),
            chunks_done: self.total.chunks_done.load(Ordering::Relaxed),
            chunks_total: self.chunks_total,
            estimated_done,
            estimated_total: self.estimated_total,
            throughput: bytes as f64 / secs,
            eta,
            tables: self
                .tables
                .iter()
                .map(|(t, c, total)| TableProgress {
                    table: t.clone(),
                    bytes: c.bytes.load(Ordering::Relaxed),
                    rows: c.rows.load(Ordering::Relaxed),
                    chunks_done: c.chunks_done.load(Ordering::Relaxed),
                    chunks_total: *total,
                })
                .collect(),
        }
    }
}

/// A progress callback. It runs on the coordinator's tasks: keep it short and non-blocking.
pub type ProgressHandler = Arc<dyn Fn(&ProgressEvent) + Send + Sync>;

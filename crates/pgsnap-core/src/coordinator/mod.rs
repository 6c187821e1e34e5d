//! Runs a planned snapshot: bounded parallelism, retries, per-table fault isolation,
//! progress, cancellation and resume.

mod progress;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use progress::{Counters, Tracker};
pub use progress::{ProgressEvent, ProgressHandler, ProgressSnapshot, TableProgress};

use crate::manifest::{ChunkSnapshot, Manifest, RunStatus, TableStatus};
use crate::retry::RetryPolicy;
use crate::sink::WriteContext;
use crate::{
    CheckpointStore, Chunk, ChunkInspector, ChunkStats, ChunkStream, DataFormat, Error, ErrorKind,
    Result, Sink, Source, TableName,
};

/// How a run is executed. Plan-shaping options live in [`PlanOptions`](crate::PlanOptions).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use pgsnap_core::CoordinatorOptions;
/// let o = CoordinatorOptions::default().with_jobs(4).with_max_attempts(5)
///     .with_throttle(Some(50_000_000)).with_progress_interval(Duration::from_millis(500));
/// assert_eq!(o.jobs(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct CoordinatorOptions {
    jobs: usize,
    retry: RetryPolicy,
    throttle: Option<u64>,
    progress_interval: Duration,
    chunk_snapshot: Option<ChunkSnapshot>,
    checkpoint_interval: Duration,
    resume: bool,
}

impl Default for CoordinatorOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            retry: RetryPolicy::default(),
            throttle: None,
            progress_interval: Duration::from_secs(1),
            chunk_snapshot: None,
            checkpoint_interval: Duration::from_secs(1),
            resume: false,
        }
    }
}

impl CoordinatorOptions {
    /// Chunks read from the source at once (at least 1); as many more may be finishing in
    /// the sink (a file's fsync and rename) meanwhile, so the source does not wait for them.
    /// Default 4.
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
    /// How chunks are retried: one budget per chunk, shared with the sink's own retries.
    /// Default [`RetryPolicy::default`] (3 attempts, backoff from 500 ms).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Attempts per chunk for temporary errors (at least 1), the sink's own retries
    /// included. Default 3.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.retry = self.retry.with_max_attempts(n);
        self
    }
    /// The cap of the first backoff between attempts (full jitter below it); doubles each
    /// time, up to 30 s. Default 500 ms.
    pub fn with_retry_backoff(mut self, d: Duration) -> Self {
        self.retry = self.retry.with_initial_backoff(d);
        self
    }
    /// Limits the content read rate over all jobs, in bytes per second. Default unlimited.
    pub fn with_throttle(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.throttle = bytes_per_sec.filter(|&b| b > 0);
        self
    }
    /// How often [`ProgressEvent::Tick`] is sent. Default 1 s.
    pub fn with_progress_interval(mut self, d: Duration) -> Self {
        self.progress_interval = d.max(Duration::from_millis(10));
        self
    }
    /// Records this snapshot on every chunk copied by this run, because it differs from the
    /// manifest's (a resume with a new snapshot).
    pub fn with_chunk_snapshot(mut self, s: Option<ChunkSnapshot>) -> Self {
        self.chunk_snapshot = s;
        self
    }
    /// Saves the manifest at most this often while chunks finish (always at the end and when
    /// a table fails). A chunk finished but not yet recorded when the process dies is simply
    /// copied again by a resume, so this trades a little redone work for not rewriting a
    /// large manifest after every chunk. Zero saves after every chunk. Default 1 s.
    pub fn with_checkpoint_interval(mut self, d: Duration) -> Self {
        self.checkpoint_interval = d;
        self
    }
    /// Whether the run continues an interrupted one (told to [`Sink::prepare`]). Default
    /// `false`.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
    /// The number of parallel jobs.
    pub fn jobs(&self) -> usize {
        self.jobs
    }
}

/// Outcome of one table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableReport {
    /// The table.
    pub table: TableName,
    /// Its state.
    pub status: TableStatus,
    /// Rows copied (all done chunks, including earlier runs').
    pub rows: u64,
    /// Uncompressed content bytes.
    pub bytes: u64,
    /// Done chunks.
    pub chunks_done: usize,
    /// All chunks.
    pub chunks_total: usize,
    /// Why it failed.
    pub error: Option<String>,
}

/// Outcome of a run.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunReport {
    /// Overall state.
    pub status: RunStatus,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// Rows in all done chunks.
    pub rows: u64,
    /// Uncompressed bytes in all done chunks.
    pub bytes: u64,
    /// Chunks copied by this run (not skipped as already done).
    pub chunks_copied: usize,
    /// Per table, in manifest order.
    pub tables: Vec<TableReport>,
    /// The error that stopped the run, if any.
    pub fatal: Option<Error>,
    /// The final manifest.
    pub manifest: Manifest,
}

/// Runs a manifest's pending chunks from a [`Source`] into a [`Sink`], recording progress in
/// a [`CheckpointStore`].
///
/// # Example
/// See `pgsnap_core::testing` and the `snapshot_to_files` example; a minimal in-memory run:
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> pgsnap_core::Result<()> {
/// use std::sync::Arc;
/// use pgsnap_core::{Coordinator, MemoryCheckpointStore, MemorySink, RunStatus};
/// let (source, manifest) = pgsnap_core::memory::MemorySource::example(3, 10);
/// let sink = Arc::new(MemorySink::new());
/// let report = Coordinator::new(Arc::new(source), sink.clone(), Arc::new(MemoryCheckpointStore::new()))
///     .run(manifest).await?;
/// assert_eq!(report.status, RunStatus::Ok);
/// assert_eq!(report.rows, 30);
/// # Ok(()) }
/// ```
pub struct Coordinator {
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
    options: CoordinatorOptions,
    progress: Option<ProgressHandler>,
    cancel: CancellationToken,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("source", &self.source)
            .field("sink", &self.sink)
            .field("store", &self.store)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

struct Shared {
    manifest: Mutex<Manifest>,
    failed_tables: StdMutex<HashSet<usize>>,
    fatal: StdMutex<Option<Error>>,
    tracker: Tracker,
    throttle: Option<Throttle>,
    format: DataFormat,
    copied: std::sync::atomic::AtomicUsize,
    /// `jobs` permits: chunks streaming from the source at once.
    read_slots: Arc<tokio::sync::Semaphore>,
    /// Serializes saves, and remembers when the last one happened.
    last_save: Mutex<Instant>,
}

impl Coordinator {
    /// A coordinator with default options.
    pub fn new(
        source: Arc<dyn Source>,
        sink: Arc<dyn Sink>,
        store: Arc<dyn CheckpointStore>,
    ) -> Self {
        Self {
            source,
            sink,
            store,
            options: CoordinatorOptions::default(),
            progress: None,
            cancel: CancellationToken::new(),
        }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: CoordinatorOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the progress handler.
    pub fn with_progress(mut self, handler: ProgressHandler) -> Self {
        self.progress = Some(handler);
        self
    }

    /// A token that cancels the run when cancelled; chunks in flight are abandoned (not
    /// recorded), so a resume redoes them.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Uses `token` (e.g. a job's or a service's shutdown token) to cancel the run.
    pub fn with_cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    /// Copies every chunk of `manifest` that is not done (or whose stored content the sink no
    /// longer finds intact), saving the manifest after each one.
    ///
    /// Calls [`Sink::prepare`] first, so no chunk reaches an unprepared sink.
    ///
    /// # Errors
    /// When the run cannot start: the sink's preparation fails, or the manifest cannot be
    /// saved at the start. Failures during the run are in the report: per table in
    /// [`TableReport::error`], run-ending ones in [`RunReport::fatal`].
    pub async fn run(&self, mut manifest: Manifest) -> Result<RunReport> {
        let started = Instant::now();
        let schemas: Vec<_> = manifest.tables.iter().map(|t| t.schema.clone()).collect();
        self.sink
            .prepare(&crate::PrepareContext::new(&schemas, &manifest.run_id, self.options.resume))
            .await?;
        let format = self.sink.description().input_format;
        if manifest.format != format {
            return Err(Error::config(format!(
                "the manifest records format {} but the sink wants {}",
                manifest.format.as_str(),
                format.as_str()
            )));
        }
        // Decide what to copy: pending chunks, and done chunks whose content is gone.
        let mut todo = Vec::new();
        let mut estimated_before = 0;
        for (ti, table) in manifest.tables.iter_mut().enumerate() {
            if table.status == TableStatus::Failed {
                table.status = TableStatus::Pending;
                table.error = None;
            }
            for ci in 0..table.chunks.len() {
                let chunk = table.chunk(&table.chunks[ci]);
                if table.chunks[ci].done {
                    if self.sink.chunk_intact(&chunk, &table.chunks[ci]).await? {
                        estimated_before += table.chunks[ci].estimated_bytes;
                        continue;
                    }
                    tracing::warn!(chunk = %chunk.label(), "chunk recorded as done is missing or damaged; copying it again");
                    table.chunks[ci].done = false;
                }
                todo.push((ti, ci, chunk));
            }
            if table.chunks.iter().all(|c| c.done) {
                table.status = TableStatus::Ok;
            } else {
                table.status = TableStatus::Pending;
            }
        }
        manifest.status = RunStatus::Running;
        self.store.save(&manifest).await?;
        // Largest first, so one big chunk does not start last and run alone.
        todo.sort_by_key(|t| std::cmp::Reverse(t.2.estimated_bytes));

        let tracker = Tracker {
            started,
            total: Counters::default(),
            tables: manifest
                .tables
                .iter()
                .map(|t| {
                    let c = Counters::default();
                    c.rows.store(t.rows(), Ordering::Relaxed);
                    c.bytes.store(t.bytes(), Ordering::Relaxed);
                    c.chunks_done.store(t.chunks_done() as u64, Ordering::Relaxed);
                    (t.schema.name.clone(), c, t.chunks.len() as u64)
                })
                .collect(),
            chunks_total: manifest.tables.iter().map(|t| t.chunks.len() as u64).sum(),
            estimated_total: manifest
                .tables
                .iter()
                .flat_map(|t| &t.chunks)
                .map(|c| c.estimated_bytes)
                .sum(),
            estimated_before,
        };
        tracker.total.rows.store(manifest.rows(), Ordering::Relaxed);
        tracker.total.bytes.store(manifest.bytes(), Ordering::Relaxed);
        tracker
            .total
            .chunks_done
            .store(manifest.tables.iter().map(|t| t.chunks_done() as u64).sum(), Ordering::Relaxed);
        tracker.total.estimated_done.store(estimated_before, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            manifest: Mutex::new(manifest),
            failed_tables: StdMutex::new(HashSet::new()),
            fatal: StdMutex::new(None),
            tracker,
            throttle: self.options.throttle.map(Throttle::new),
            format,
            copied: Default::default(),
            last_save: Mutex::new(Instant::now()),
            read_slots: Arc::new(tokio::sync::Semaphore::new(self.options.jobs)),
        });

        let ticker = self.progress.clone().map(|p| {
            let shared = Arc::clone(&shared);
            let interval = self.options.progress_interval;
            let stop = self.cancel.child_token();
            let handle_stop = stop.clone();
            let handle = tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => p(&ProgressEvent::Tick(shared.tracker.snapshot())),
                    }
                }
            });
            (handle, handle_stop)
        });

        futures::stream::iter(todo)
            .map(|(ti, ci, chunk)| self.run_chunk(&shared, ti, ci, chunk))
            // Twice the jobs: up to `jobs` chunks read from the source (read slots) while as
            // many more finish in the sink.
            .buffer_unordered(self.options.jobs * 2)
            .collect::<()>()
            .await;

        if let Some((handle, stop)) = ticker {
            stop.cancel();
            let _ = handle.await;
        }
        if let Some(p) = &self.progress {
            p(&ProgressEvent::Tick(shared.tracker.snapshot()));
        }

        let mut fatal = shared.fatal.lock().unwrap_or_else(|e| e.into_inner()).take();
        if fatal.is_none() && self.cancel.is_cancelled() {
            // Cancelled from outside (Ctrl-C): chunks in flight were abandoned, not recorded.
            fatal = Some(Error::cancelled());
        }
        let mut manifest = shared.manifest.lock().await.clone();
        let any_ok = manifest.tables.iter().any(|t| t.status == TableStatus::Ok);
        let all_ok = manifest.tables.iter().all(|t| t.status == TableStatus::Ok);
        manifest.status = if fatal.is_some() {
            RunStatus::Failed
        } else if all_ok {
            RunStatus::Ok
        } else if any_ok {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        };
        let save = match self.sink.make_durable().await {
            Ok(()) => self.store.save(&manifest).await,
            Err(e) => Err(e),
        };
        let fatal = match (fatal, save) {
            (Some(f), _) => Some(f),
            (None, Err(e)) => Some(e),
            (None, Ok(())) => None,
        };
        let tables = manifest
            .tables
            .iter()
            .map(|t| TableReport {
                table: t.schema.name.clone(),
                status: t.status,
                rows: t.rows(),
                bytes: t.bytes(),
                chunks_done: t.chunks_done(),
                chunks_total: t.chunks.len(),
                error: t.error.clone(),
            })
            .collect();
        Ok(RunReport {
            status: manifest.status,
            elapsed: started.elapsed(),
            rows: manifest.rows(),
            bytes: manifest.bytes(),
            chunks_copied: shared.copied.load(Ordering::Relaxed),
            tables,
            fatal,
            manifest,
        })
    }

    async fn run_chunk(&self, shared: &Arc<Shared>, ti: usize, ci: usize, chunk: Chunk) {
        let skip = || {
            self.cancel.is_cancelled()
                || shared.failed_tables.lock().unwrap_or_else(|e| e.into_inner()).contains(&ti)
        };
        // One budget per chunk: the sink's own retries take their attempts from it too.
        let budget = self.options.retry.budget();
        let ctx = WriteContext::new(budget.clone());
        let result = loop {
            if skip() {
                return;
            }
            let attempt = budget.begin();
            self.emit(ProgressEvent::ChunkStarted { chunk: chunk.clone(), attempt });
            let streamed = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let outcome = tokio::select! {
                r = self.attempt(shared, ti, &chunk, &streamed, &ctx) => r,
                _ = self.cancel.cancelled() => Err(Error::cancelled()),
            };
            match outcome {
                Ok(ok) => break Ok(ok),
                Err(e) => {
                    // Forget the bytes this attempt streamed.
                    let n = streamed.load(Ordering::Relaxed);
                    shared.tracker.total.bytes.fetch_sub(n, Ordering::Relaxed);
                    shared.tracker.tables[ti].1.bytes.fetch_sub(n, Ordering::Relaxed);
                    if let Some(wait) = budget.retry_after(&e) {
                        let attempt = budget.attempts();
                        tracing::warn!(chunk = %chunk.label(), attempt, error = %e, "transient failure; retrying");
                        self.emit(ProgressEvent::ChunkRetry {
                            chunk: chunk.clone(),
                            attempt,
                            error: e.to_string(),
                        });
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = self.cancel.cancelled() => return,
                        }
                        continue;
                    }
                    break Err(budget.give_up(e));
                }
            }
        };
        match result {
            Ok((stats, receipt)) => {
                let mut m = shared.manifest.lock().await;
                let table = &mut m.tables[ti];
                let rec = &mut table.chunks[ci];
                rec.done = true;
                rec.rows = stats.rows;
                rec.bytes = stats.bytes;
                rec.checksum = Some(stats.checksum.clone());
                rec.path = receipt.path;
                rec.stored_bytes = receipt.stored_bytes;
                rec.load = receipt.load;
                rec.snapshot = self.options.chunk_snapshot.clone();
                rec.attempts = budget.attempts();
                if table.chunks.iter().all(|c| c.done) && table.status != TableStatus::Failed {
                    table.status = TableStatus::Ok;
                }
                drop(m);
                if let Err(e) = self.checkpoint(shared, false).await {
                    // The chunk is written but not recorded: a resume copies it again.
                    self.fail_run(shared, e);
                    return;
                }
                let t = &shared.tracker;
                for c in [&t.total, &t.tables[ti].1] {
                    c.rows.fetch_add(stats.rows, Ordering::Relaxed);
                    c.chunks_done.fetch_add(1, Ordering::Relaxed);
                }
                t.total.estimated_done.fetch_add(chunk.estimated_bytes, Ordering::Relaxed);
                shared.copied.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(chunk = %chunk.label(), rows = stats.rows, bytes = stats.bytes, "chunk done");
                self.emit(ProgressEvent::ChunkDone { chunk, stats });
            }
            Err(e) if e.kind() == ErrorKind::Cancelled => {}
            Err(e) if e.is_fatal() => {
                self.emit(ProgressEvent::ChunkFailed {
                    chunk: chunk.clone(),
                    error: e.to_string(),
                });
                self.fail_run(shared, e);
            }
            Err(e) => {
                let msg = format!("chunk {}: {}", chunk.id, error_chain(&e));
                tracing::error!(table = %chunk.table, error = %msg, "table failed");
                self.emit(ProgressEvent::ChunkFailed { chunk: chunk.clone(), error: msg.clone() });
                shared.failed_tables.lock().unwrap_or_else(|e| e.into_inner()).insert(ti);
                let mut m = shared.manifest.lock().await;
                let table = &mut m.tables[ti];
                table.status = TableStatus::Failed;
                table.error.get_or_insert(msg);
                drop(m);
                if let Err(e) = self.checkpoint(shared, true).await {
                    self.fail_run(shared, e);
                }
            }
        }
    }

    /// Saves the manifest if `force` or the checkpoint interval has passed. Saves are
    /// serialized and each takes its copy under the save lock, so a newer state is never
    /// overwritten by an older one.
    ///
    /// A periodic save does not wait for one in progress: the chunk that would have waited
    /// is in the next save (the last one is forced), and meanwhile the other chunks finish
    /// instead of queueing behind the sink's durability work and the manifest's fsync.
    async fn checkpoint(&self, shared: &Shared, force: bool) -> Result<()> {
        let mut last = if force {
            shared.last_save.lock().await
        } else {
            match shared.last_save.try_lock() {
                Ok(last) => last,
                Err(_) => return Ok(()),
            }
        };
        if !force && last.elapsed() < self.options.checkpoint_interval {
            return Ok(());
        }
        // The copy first, then durability: every chunk the copy lists as done was written
        // before it was listed, so the sink makes it durable before the save.
        let snapshot = shared.manifest.lock().await.clone();
        self.sink.make_durable().await?;
        self.store.save(&snapshot).await?;
        *last = Instant::now();
        Ok(())
    }

    fn fail_run(&self, shared: &Shared, e: Error) {
        tracing::error!(error = %error_chain(&e), "run stopped");
        let mut f = shared.fatal.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert(e);
        self.cancel.cancel();
    }

    async fn attempt(
        &self,
        shared: &Arc<Shared>,
        ti: usize,
        chunk: &Chunk,
        streamed: &Arc<std::sync::atomic::AtomicU64>,
        ctx: &WriteContext,
    ) -> Result<(ChunkStats, crate::ChunkReceipt)> {
        // A read slot is held while the source streams; the sink's finishing work (fsync,
        // rename, a load's final answer) runs outside it, so the next chunk's read starts at
        // once and the source never idles behind a sink's commit.
        let slot =
            Arc::clone(&shared.read_slots).acquire_owned().await.map_err(|_| Error::cancelled())?;
        let data = self.source.read_chunk(chunk, shared.format).await?;
        let result: Arc<StdMutex<Option<ChunkStats>>> = Arc::default();
        let wrapped =
            inspect(data, Arc::clone(shared), ti, Arc::clone(streamed), Arc::clone(&result), slot);
        let receipt = self.sink.write_chunk(chunk, wrapped, ctx).await?;
        let stats = result.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "sink returned success for {} before reading the chunk to its end (a bug in \
                     the sink)",
                    chunk.label()
                ),
            )
            .with_backend(self.sink.name())
        })?;
        Ok((stats, receipt))
    }
}

/// Wraps a chunk stream: counts, checksums, throttles and reports bytes as they pass.
fn inspect(
    data: ChunkStream,
    shared: Arc<Shared>,
    ti: usize,
    streamed: Arc<std::sync::atomic::AtomicU64>,
    result: Arc<StdMutex<Option<ChunkStats>>>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> ChunkStream {
    let inspector = ChunkInspector::new(shared.format);
    // The read slot lives in the state: released when the stream ends, fails or is dropped.
    let state = (data, inspector, shared, result, streamed, slot);
    futures::stream::try_unfold(
        state,
        move |(mut data, mut insp, shared, result, streamed, slot)| async move {
            match data.try_next().await? {
                Some(buf) => {
                    if let Some(t) = &shared.throttle {
                        t.take(buf.len() as u64).await;
                    }
                    insp.update(&buf);
                    let n = buf.len() as u64;
                    streamed.fetch_add(n, Ordering::Relaxed);
                    shared.tracker.total.bytes.fetch_add(n, Ordering::Relaxed);
                    shared.tracker.tables[ti].1.bytes.fetch_add(n, Ordering::Relaxed);
                    Ok(Some((buf, (data, insp, shared, result, streamed, slot))))
                }
                None => {
                    drop(slot);
                    *result.lock().unwrap_or_else(|e| e.into_inner()) = Some(insp.finish());
                    Ok(None)
                }
            }
        },
    )
    .boxed()
}

/// A rate limiter shared by all jobs: each buffer reserves its slot of time.
#[derive(Debug)]
struct Throttle {
    bytes_per_sec: u64,
    next: StdMutex<Instant>,
}

impl Throttle {
    fn new(bytes_per_sec: u64) -> Self {
        Self { bytes_per_sec, next: StdMutex::new(Instant::now()) }
    }

    async fn take(&self, n: u64) {
        let wait_until = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // Allow a burst of up to 100 ms of budget, no more.
            let start = (*next).max(now.checked_sub(Duration::from_millis(100)).unwrap_or(now));
            *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
            start
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

/// An error and its sources, joined with `: `, for reports.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

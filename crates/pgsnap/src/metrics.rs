//! Prometheus metrics of the jobs (feature `metrics`): a [`Metrics`] handle the jobs update
//! from the structures their reports are made of, and a small `/metrics` server.
//!
//! One source of truth: the copy metrics come from the run's manifest each time the
//! coordinator saves it (the same manifest the JSON report is built from) and from the
//! coordinator's [`ProgressEvent`]s (the progress bar's numbers); the StarRocks load metrics
//! from the load receipts the manifest records; the CDC metrics from each status check's
//! report (`StatusReport`). Nothing is counted apart.
//!
//! Layering: this module imports nothing else of the crate; the jobs call it.
//!
//! Cardinality is bounded: labels name tables, topics, partitions, slots and Routine Loads,
//! never chunks, and no label carries a secret (no connection string, user or password).
//!
//! Metrics cost nothing when no [`Metrics`] is given: the jobs skip every update.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pgsnap::RunControl;
//! use pgsnap::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! // Served by the job itself while it runs (port 0 picks a free port)...
//! let control = RunControl::new().with_metrics_addr("127.0.0.1:0".parse()?);
//! // ...or by you, for as long as you like, with the same handle given to the jobs.
//! let server = metrics.serve("127.0.0.1:0".parse()?).await?;
//! let control = RunControl::new().with_metrics(metrics.clone());
//! assert_eq!(metrics.addr(), Some(server.addr()));
//! // No series until a job reports (a run's tables appear when it starts).
//! assert_eq!(metrics.encode(), "");
//! # drop(control); Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pgsnap_core::{CheckpointStore, Manifest, ProgressEvent, ProgressSnapshot, TableName};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type FloatGauge = Gauge<f64, AtomicU64>;
/// No labels (an empty label set encodes as no braces).
type NoLabels = Vec<(String, String)>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableStatusLabels {
    table: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    table: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    slot: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    table: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoutineLoadLabels {
    table: String,
    routine_load: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoutineLoadStateLabels {
    table: String,
    routine_load: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableVerdictLabels {
    table: String,
    verdict: String,
}

/// The states of `pgsnap_run_state`.
const RUN_STATES: [&str; 5] = ["running", "complete", "partial", "failed", "cancelled"];
/// The table states of `pgsnap_table_status`.
const TABLE_STATES: [&str; 3] = ["pending", "ok", "failed"];
/// The states of `pgsnap_routine_load_state`: StarRocks' own, `OTHER` for another text (a
/// RUNNING job's substate), `MISSING` when StarRocks knows no such job.
pub(crate) const ROUTINE_LOAD_STATES: [&str; 7] =
    ["RUNNING", "NEED_SCHEDULE", "PAUSED", "STOPPED", "CANCELLED", "OTHER", "MISSING"];
/// The verdicts of `pgsnap_status_verdict` and `pgsnap_table_verdict`.
const VERDICTS: [&str; 4] = ["caught_up", "lagging", "paused", "failed"];

/// The metric families; every one is registered in [`Metrics`]' own registry and, on
/// request, in a caller's.
#[derive(Debug, Clone, Default)]
struct Families {
    // Copy progress, per table.
    copied_rows: Family<TableLabels, Counter>,
    copied_bytes: Family<TableLabels, Counter>,
    streamed_bytes: Family<TableLabels, Gauge>,
    estimated_bytes: Family<TableLabels, Gauge>,
    estimated_done_bytes: Family<TableLabels, Gauge>,
    chunks: Family<TableLabels, Gauge>,
    chunks_done: Family<TableLabels, Gauge>,
    chunks_failed: Family<TableLabels, Counter>,
    chunk_retries: Family<TableLabels, Counter>,
    table_status: Family<TableStatusLabels, Gauge>,
    loaded_rows: Family<TargetLabels, Counter>,
    filtered_rows: Family<TargetLabels, Counter>,
    // The run.
    eta_seconds: Family<NoLabels, FloatGauge>,
    throughput: Family<NoLabels, FloatGauge>,
    elapsed_seconds: Family<NoLabels, FloatGauge>,
    run_state: Family<StateLabels, Gauge>,
    xmin_age: Family<NoLabels, Gauge>,
    slot_lag_bytes: Family<SlotLabels, Gauge>,
    // CDC (status).
    high_watermark: Family<PartitionLabels, Gauge>,
    consumed_offset: Family<PartitionLabels, Gauge>,
    lag_offsets: Family<PartitionLabels, Gauge>,
    routine_load_state: Family<RoutineLoadStateLabels, Gauge>,
    routine_load_loaded_rows: Family<RoutineLoadLabels, Counter>,
    routine_load_filtered_rows: Family<RoutineLoadLabels, Counter>,
    table_verdict: Family<TableVerdictLabels, Gauge>,
    status_verdict: Family<VerdictLabels, Gauge>,
    caught_up_for_cutover: Family<NoLabels, Gauge>,
    status_checks: Family<NoLabels, Counter>,
}

impl Families {
    /// Registers every family in `r` (counters get their `_total` from the encoder).
    fn register(&self, r: &mut Registry) {
        let f = self.clone();
        r.register(
            "pgsnap_copied_rows",
            "Rows copied from the snapshot: the rows of the table's finished chunks (the report's rows)",
            f.copied_rows,
        );
        r.register(
            "pgsnap_copied_bytes",
            "Content bytes (COPY text) of the table's finished chunks (the report's bytes)",
            f.copied_bytes,
        );
        r.register(
            "pgsnap_streamed_bytes",
            "Content bytes streamed from the table so far, chunks in flight included (drops when an attempt is abandoned)",
            f.streamed_bytes,
        );
        r.register(
            "pgsnap_estimated_bytes",
            "The planner's estimate of the table's source bytes (heap plus TOAST)",
            f.estimated_bytes,
        );
        r.register(
            "pgsnap_estimated_done_bytes",
            "Estimated source bytes of the table's finished chunks",
            f.estimated_done_bytes,
        );
        r.register("pgsnap_chunks", "The table's chunks", f.chunks);
        r.register("pgsnap_chunks_done", "The table's finished chunks", f.chunks_done);
        r.register(
            "pgsnap_chunks_failed",
            "Chunks that failed for good (their table is marked failed)",
            f.chunks_failed,
        );
        r.register(
            "pgsnap_chunk_retries",
            "Attempts beyond the first over the table's chunks (the report's retries)",
            f.chunk_retries,
        );
        r.register(
            "pgsnap_table_status",
            "1 for the table's state (pending, ok, failed), 0 for the others",
            f.table_status,
        );
        r.register(
            "pgsnap_starrocks_loaded_rows",
            "Rows StarRocks reported loaded into the target (Stream Load receipts of finished chunks)",
            f.loaded_rows,
        );
        r.register(
            "pgsnap_starrocks_filtered_rows",
            "Rows StarRocks reported filtered for the target",
            f.filtered_rows,
        );
        r.register(
            "pgsnap_eta_seconds",
            "Estimated seconds until the copy is complete (absent until a chunk finished)",
            f.eta_seconds,
        );
        r.register(
            "pgsnap_throughput_bytes_per_second",
            "Content bytes streamed per second over this run",
            f.throughput,
        );
        r.register("pgsnap_elapsed_seconds", "Wall time of this run", f.elapsed_seconds);
        r.register(
            "pgsnap_run_state",
            "1 for the copy's state (running, complete, partial, failed, cancelled), 0 for the others",
            f.run_state,
        );
        r.register(
            "pgsnap_snapshot_xmin_age_transactions",
            "Transactions since the snapshot's xmin (age(backend_xmin)): what holding it costs in vacuum",
            f.xmin_age,
        );
        r.register(
            "pgsnap_slot_lag_bytes",
            "WAL bytes between the slot's confirmed_flush_lsn and the current WAL insert position",
            f.slot_lag_bytes,
        );
        r.register(
            "pgsnap_kafka_high_watermark_offset",
            "The partition's high watermark (read_committed: the last stable offset)",
            f.high_watermark,
        );
        r.register(
            "pgsnap_routine_load_consumed_offset",
            "The last offset the Routine Load consumed in the partition",
            f.consumed_offset,
        );
        r.register(
            "pgsnap_routine_load_lag_offsets",
            "Offsets of the partition the Routine Load has still to consume (high watermark - next)",
            f.lag_offsets,
        );
        r.register(
            "pgsnap_routine_load_state",
            "1 for the Routine Load's state, 0 for the others",
            f.routine_load_state,
        );
        r.register(
            "pgsnap_routine_load_loaded_rows",
            "Rows the Routine Load loaded (Statistic.loadedRows)",
            f.routine_load_loaded_rows,
        );
        r.register(
            "pgsnap_routine_load_filtered_rows",
            "Rows the Routine Load filtered (Statistic.errorRows)",
            f.routine_load_filtered_rows,
        );
        r.register(
            "pgsnap_table_verdict",
            "1 for the table's CDC verdict (caught_up, lagging, paused, failed), 0 for the others",
            f.table_verdict,
        );
        r.register(
            "pgsnap_status_verdict",
            "1 for the handoff's overall verdict (caught_up, lagging, paused, failed), 0 for the others",
            f.status_verdict,
        );
        r.register(
            "pgsnap_caught_up_for_cutover",
            "1 when the last status check found the migration caught up for cutover",
            f.caught_up_for_cutover,
        );
        r.register("pgsnap_status_checks", "Status checks done", f.status_checks);
    }
}

struct Inner {
    families: Families,
    registry: Registry,
    addr: Mutex<Option<SocketAddr>>,
    /// Source table → StarRocks target, for the load metrics' `target` label.
    targets: Mutex<HashMap<String, String>>,
}

/// The Prometheus metrics of pgsnap's jobs: a cheap handle (clones share the metrics) the
/// jobs update ([`RunControl::with_metrics`](crate::RunControl::with_metrics),
/// `StatusJob::with_metrics`), exposed by
/// [`serve`](Self::serve) or registered in your own registry ([`register`](Self::register)).
///
/// The README lists every metric (name, type, labels, meaning).
///
/// ```
/// use pgsnap::metrics::Metrics;
/// let mut yours = prometheus_client::registry::Registry::default();
/// let metrics = Metrics::new();
/// metrics.register(&mut yours);
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &yours).unwrap();
/// assert_eq!(text, "# EOF\n"); // the series appear as the jobs report
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("addr", &self.addr()).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A table's label value: `schema.name`, unquoted.
fn table_label(t: &TableName) -> String {
    format!("{}.{}", t.schema, t.name)
}

fn table(t: &TableName) -> TableLabels {
    TableLabels { table: table_label(t) }
}

fn no_labels() -> NoLabels {
    Vec::new()
}

/// Sets a counter to `v` if that is more (values within a run only grow; the manifest and
/// the progress events may report the same growth in either order).
fn raise(c: &Counter, v: u64) {
    c.inner().fetch_max(v, Ordering::Relaxed);
}

/// Sets a gauge to `v` if that is more.
fn raise_gauge(g: &Gauge, v: i64) {
    let a: &AtomicI64 = g.inner();
    a.fetch_max(v, Ordering::Relaxed);
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Sets the gauges of an enumeration: 1 for `current`, 0 for every other state.
fn one_of<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + fmt::Debug + Send + Sync + 'static>(
    family: &Family<L, Gauge>,
    states: &[&str],
    current: &str,
    labels: impl Fn(&str) -> L,
) {
    for s in states {
        family.get_or_create(&labels(s)).set(i64::from(*s == current));
    }
}

impl Metrics {
    /// Fresh metrics, in a registry of their own.
    pub fn new() -> Self {
        let families = Families::default();
        let mut registry = Registry::default();
        families.register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                families,
                registry,
                addr: Mutex::new(None),
                targets: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Registers every metric in `registry` too (your service's), so they are exposed with
    /// yours; the jobs keep updating them through this handle.
    pub fn register(&self, registry: &mut Registry) {
        self.inner.families.register(registry);
    }

    /// The metrics in the Prometheus text format (version 0.0.4), as `/metrics` serves them.
    ///
    /// ```
    /// let text = pgsnap::metrics::Metrics::new().encode();
    /// assert!(text.is_empty()); // no job has reported yet
    /// ```
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }

    /// The address [`serve`](Self::serve) bound last (the actual port when asked for port 0).
    pub fn addr(&self) -> Option<SocketAddr> {
        *self.inner.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves these metrics on `http://<addr>/metrics` (Prometheus text format) until the
    /// returned server is dropped. Port 0 picks a free port: [`MetricsServer::addr`] and
    /// [`addr`](Self::addr) tell which. Needs a tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// [`BindError`] naming the address when it cannot be listened on (in use, not local,
    /// not permitted).
    pub async fn serve(&self, addr: SocketAddr) -> Result<MetricsServer, BindError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        let local = listener.local_addr().map_err(|source| BindError { addr, source })?;
        *self.inner.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(local);
        let metrics = self.clone();
        let task = tokio::spawn(async move {
            // Connections end with the server: dropping the set aborts them.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::debug!("metrics server: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let metrics = metrics.clone();
                while connections.try_join_next().is_some() {}
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let response = metrics.respond(&req);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                    {
                        tracing::debug!("metrics server: connection: {e}");
                    }
                });
            }
        });
        Ok(MetricsServer { addr: local, task })
    }

    fn respond<B>(
        &self,
        req: &hyper::Request<B>,
    ) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
        use hyper::{Method, StatusCode, header};
        let (status, content_type, body) = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/metrics") => (
                StatusCode::OK,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                self.encode(),
            ),
            (&Method::GET | &Method::HEAD, "/") => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "pgsnap: Prometheus metrics on /metrics\n".to_owned(),
            ),
            _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n".to_owned()),
        };
        let mut response = hyper::Response::new(http_body_util::Full::new(body.into()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
        response
    }

    // ---- Updates (the jobs call these) ----

    /// The StarRocks target of each source table (the `target` label of the load metrics).
    #[cfg(feature = "starrocks")]
    pub(crate) fn set_targets(&self, targets: impl IntoIterator<Item = (TableName, String)>) {
        let mut map = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner());
        map.extend(targets.into_iter().map(|(t, target)| (table_label(&t), target)));
    }

    /// A run starts with `manifest` (fresh or resumed): every table's series from it.
    pub(crate) fn start_run(&self, manifest: &Manifest) {
        let f = &self.inner.families;
        for t in &manifest.tables {
            let l = table(&t.schema.name);
            // A new run of a table: its counters start from the manifest.
            f.copied_rows.get_or_create(&l).inner().store(t.rows(), Ordering::Relaxed);
            f.copied_bytes.get_or_create(&l).inner().store(t.bytes(), Ordering::Relaxed);
            f.chunk_retries.get_or_create(&l).inner().store(0, Ordering::Relaxed);
            f.chunks_done.get_or_create(&l).set(0);
            f.chunks_failed.get_or_create(&l).inner().store(0, Ordering::Relaxed);
            f.streamed_bytes.get_or_create(&l).set(clamp(t.bytes()));
        }
        f.eta_seconds.remove(&no_labels());
        self.set_run_state("running");
        self.observe_manifest(manifest);
    }

    /// The manifest as the coordinator saved it (at most every second, and at the end): the
    /// numbers of the JSON report.
    pub(crate) fn observe_manifest(&self, manifest: &Manifest) {
        let f = &self.inner.families;
        let targets = self.inner.targets.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for t in &manifest.tables {
            let l = table(&t.schema.name);
            raise(&f.copied_rows.get_or_create(&l), t.rows());
            raise(&f.copied_bytes.get_or_create(&l), t.bytes());
            let retries: u64 =
                t.chunks.iter().map(|c| u64::from(c.attempts.saturating_sub(1))).sum();
            raise(&f.chunk_retries.get_or_create(&l), retries);
            f.chunks.get_or_create(&l).set(clamp(t.chunks.len() as u64));
            raise_gauge(&f.chunks_done.get_or_create(&l), clamp(t.chunks_done() as u64));
            let _ = f.chunks_failed.get_or_create(&l);
            f.estimated_bytes.get_or_create(&l).set(clamp(t.estimated_bytes));
            let estimated_done: u64 =
                t.chunks.iter().filter(|c| c.done).map(|c| c.estimated_bytes).sum();
            f.estimated_done_bytes.get_or_create(&l).set(clamp(estimated_done));
            one_of(&f.table_status, &TABLE_STATES, t.status.as_str(), |s| TableStatusLabels {
                table: l.table.clone(),
                status: s.to_owned(),
            });
            let receipts: Vec<_> = t.chunks.iter().filter_map(|c| c.load.as_ref()).collect();
            if let Some(target) = targets.get(&l.table) {
                let tl = TargetLabels { table: l.table.clone(), target: target.clone() };
                let loaded = receipts.iter().map(|r| r.rows_loaded).sum();
                let filtered = receipts.iter().map(|r| r.rows_filtered).sum();
                raise(&f.loaded_rows.get_or_create(&tl), loaded);
                raise(&f.filtered_rows.get_or_create(&tl), filtered);
            }
        }
    }

    /// A progress event of the coordinator.
    pub(crate) fn observe_event(&self, event: &ProgressEvent) {
        let f = &self.inner.families;
        match event {
            ProgressEvent::ChunkFailed { chunk, .. } => {
                f.chunks_failed.get_or_create(&table(&chunk.table)).inc();
            }
            ProgressEvent::Tick(snapshot) => self.observe_tick(snapshot),
            _ => {}
        }
    }

    fn observe_tick(&self, s: &ProgressSnapshot) {
        let f = &self.inner.families;
        for t in &s.tables {
            let l = table(&t.table);
            raise(&f.copied_rows.get_or_create(&l), t.rows);
            raise_gauge(&f.chunks_done.get_or_create(&l), clamp(t.chunks_done));
            f.chunks.get_or_create(&l).set(clamp(t.chunks_total));
            f.streamed_bytes.get_or_create(&l).set(clamp(t.bytes));
        }
        match s.eta {
            Some(eta) => {
                f.eta_seconds.get_or_create(&no_labels()).set(eta.as_secs_f64());
            }
            None if s.chunks_done >= s.chunks_total => {
                f.eta_seconds.get_or_create(&no_labels()).set(0.0);
            }
            None => {}
        }
        f.throughput.get_or_create(&no_labels()).set(s.throughput);
        f.elapsed_seconds.get_or_create(&no_labels()).set(s.elapsed.as_secs_f64());
    }

    /// How the copy ended: `complete`, `partial`, `failed` or `cancelled`.
    pub(crate) fn set_run_state(&self, state: &str) {
        let f = &self.inner.families;
        one_of(&f.run_state, &RUN_STATES, state, |s| StateLabels { state: s.to_owned() });
        if state != "running" {
            f.eta_seconds.get_or_create(&no_labels()).set(0.0);
        }
    }

    /// The snapshot's xmin age.
    pub(crate) fn observe_xmin_age(&self, age: i64) {
        self.inner.families.xmin_age.get_or_create(&no_labels()).set(age);
    }

    /// A slot's lag behind the current WAL.
    pub(crate) fn observe_slot_lag(&self, slot: &str, bytes: u64) {
        self.inner
            .families
            .slot_lag_bytes
            .get_or_create(&SlotLabels { slot: slot.to_owned() })
            .set(clamp(bytes));
    }

    /// One partition of a status check: its high watermark, the consumed offset and the lag
    /// (each only when known).
    pub(crate) fn observe_partition(
        &self,
        table: &str,
        topic: &str,
        partition: i32,
        (high_watermark, consumed, lag): (Option<i64>, Option<i64>, Option<i64>),
    ) {
        let f = &self.inner.families;
        let l = PartitionLabels {
            table: table.to_owned(),
            topic: topic.to_owned(),
            partition: partition.to_string(),
        };
        if let Some(v) = high_watermark {
            f.high_watermark.get_or_create(&l).set(v);
        }
        if let Some(v) = consumed {
            f.consumed_offset.get_or_create(&l).set(v);
        }
        if let Some(v) = lag {
            f.lag_offsets.get_or_create(&l).set(v);
        }
    }

    /// A Routine Load of a status check: its state (one of [`ROUTINE_LOAD_STATES`]) and
    /// `Statistic`'s loaded and filtered rows.
    pub(crate) fn observe_routine_load(
        &self,
        table: &str,
        name: &str,
        state: &str,
        (loaded, filtered): (u64, u64),
    ) {
        let f = &self.inner.families;
        one_of(&f.routine_load_state, &ROUTINE_LOAD_STATES, state, |s| RoutineLoadStateLabels {
            table: table.to_owned(),
            routine_load: name.to_owned(),
            state: s.to_owned(),
        });
        let l = RoutineLoadLabels { table: table.to_owned(), routine_load: name.to_owned() };
        f.routine_load_loaded_rows.get_or_create(&l).inner().store(loaded, Ordering::Relaxed);
        f.routine_load_filtered_rows.get_or_create(&l).inner().store(filtered, Ordering::Relaxed);
    }

    /// A table's verdict (one of [`VERDICTS`]) in a status check.
    pub(crate) fn observe_table_verdict(&self, table: &str, verdict: &str) {
        let f = &self.inner.families;
        one_of(&f.table_verdict, &VERDICTS, verdict, |v| TableVerdictLabels {
            table: table.to_owned(),
            verdict: v.to_owned(),
        });
    }

    /// A status check's overall verdict and whether it is caught up for cutover; counts the
    /// check.
    pub(crate) fn observe_check(&self, verdict: &str, caught_up_for_cutover: bool) {
        let f = &self.inner.families;
        one_of(&f.status_verdict, &VERDICTS, verdict, |v| VerdictLabels { verdict: v.to_owned() });
        f.caught_up_for_cutover.get_or_create(&no_labels()).set(i64::from(caught_up_for_cutover));
        f.status_checks.get_or_create(&no_labels()).inc();
    }
}

/// The `/metrics` server of [`Metrics::serve`]: it stops (with its connections) when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (the actual port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The metrics address cannot be listened on.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let metrics = pgsnap::metrics::Metrics::new();
/// let first = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let e = metrics.serve(first.addr()).await.unwrap_err();
/// assert_eq!(e.addr, first.addr());
/// assert!(e.to_string().contains(&first.addr().to_string()));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("cannot serve Prometheus metrics on {addr}: {source}")]
#[non_exhaustive]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why (address in use, not permitted, ...).
    #[source]
    pub source: std::io::Error,
}

/// A checkpoint store that shows every manifest it saves to the metrics: the copy metrics
/// come from the very manifest the report is built from.
#[derive(Debug)]
pub(crate) struct ObservedStore {
    pub(crate) inner: Arc<dyn CheckpointStore>,
    pub(crate) metrics: Metrics,
}

#[async_trait::async_trait]
impl CheckpointStore for ObservedStore {
    async fn load(&self) -> pgsnap_core::Result<Option<Manifest>> {
        self.inner.load().await
    }

    async fn save(&self, manifest: &Manifest) -> pgsnap_core::Result<()> {
        self.inner.save(manifest).await?;
        self.metrics.observe_manifest(manifest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        let (_, manifest) = pgsnap_core::memory::MemorySource::example(3, 10);
        m.start_run(&manifest);
        m.observe_xmin_age(5);
        m.observe_slot_lag("s", 7);
        let text = m.encode();
        let types: Vec<_> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        assert!(types.len() > 10, "{text}");
        assert!(text.contains("pgsnap_copied_rows_total{table=\"public.t\"} "), "{text}");
        for line in types {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(name.starts_with("pgsnap_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} {kind}");
        }
    }

    #[test]
    fn enumerations_have_one_state_set() {
        let m = Metrics::new();
        m.set_run_state("running");
        m.set_run_state("complete");
        let text = m.encode();
        assert!(text.contains("pgsnap_run_state{state=\"complete\"} 1"), "{text}");
        assert!(text.contains("pgsnap_run_state{state=\"running\"} 0"), "{text}");
        assert!(text.contains("pgsnap_eta_seconds 0"), "{text}");
    }
}

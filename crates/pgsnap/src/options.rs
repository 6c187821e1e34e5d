//! What every snapshot job takes: the source and snapshot options, and run control.

use std::time::Duration;

use pgsnap_core::{CancellationToken, PlanOptions, ProgressHandler, SnapshotMode};
use pgsnap_source::SplitBy;
use pgsnap_source::conninfo::Connection;

use crate::error::{ConfigError, JobError, Result};

/// The PostgreSQL source of a snapshot job and how its snapshot is taken, selected, split
/// and copied.
///
/// ```
/// use pgsnap::{Connection, SnapshotOptions};
/// let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"))
///     .with_jobs(8)
///     .with_include(["public.orders*"])
///     .with_slot("pgsnap_sales");
/// assert_eq!(options.jobs, 8);
/// assert_eq!(options.chunk_size, 64_000_000);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotOptions {
    /// The source database.
    pub connection: Connection,
    /// Parallel jobs (worker connections), at least 1. Default 4.
    pub jobs: usize,
    /// Source bytes (heap plus TOAST estimate) per chunk. Default 64 MB.
    pub chunk_size: u64,
    /// How tables are split. Default [`SplitBy::Auto`].
    pub split_by: SplitBy,
    /// Tables to copy (psql pattern rules); empty copies every table.
    pub include: Vec<String>,
    /// Tables to leave out (psql pattern rules).
    pub exclude: Vec<String>,
    /// How the snapshot is taken. Default [`SnapshotMode::Slot`].
    pub snapshot_mode: SnapshotMode,
    /// The snapshot to import in [`SnapshotMode::External`].
    pub external_snapshot: Option<String>,
    /// A permanent slot for a CDC handoff (default: a temporary slot).
    pub slot: Option<String>,
    /// A publication to create for the selected tables (`publish_via_partition_root`).
    pub publication: Option<String>,
    /// On resume of a run in slot mode with a permanent slot: copy the remaining chunks
    /// under a new snapshot (CDC replay from the slot converges for primary-key tables).
    pub allow_snapshot_change: bool,
    /// The read rate limit in bytes per second, if any.
    pub throttle: Option<u64>,
    /// Attempts per chunk for transient failures. Default 3.
    pub max_attempts: u32,
    /// How long slot creation may wait behind older transactions. Default 300 s.
    pub slot_timeout: Duration,
    /// How long to wait for each table lock. Default 60 s.
    pub lock_timeout: Duration,
}

impl SnapshotOptions {
    /// The defaults for a source.
    pub fn new(connection: impl Into<Connection>) -> Self {
        Self {
            connection: connection.into(),
            jobs: 4,
            chunk_size: 64_000_000,
            split_by: SplitBy::Auto,
            include: Vec::new(),
            exclude: Vec::new(),
            snapshot_mode: SnapshotMode::Slot,
            external_snapshot: None,
            slot: None,
            publication: None,
            allow_snapshot_change: false,
            throttle: None,
            max_attempts: 3,
            slot_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// Checks that the options fit together for a new run (a resume takes the snapshot from
    /// the interrupted run).
    ///
    /// ```
    /// use pgsnap::{ConfigError, Connection, SnapshotMode, SnapshotOptions};
    /// let o = SnapshotOptions::new(Connection::new("dbname=app"))
    ///     .with_snapshot_mode(SnapshotMode::External);
    /// assert_eq!(o.validate(), Err(ConfigError::ExternalSnapshotNeedsName));
    /// ```
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.jobs == 0 {
            return Err(ConfigError::NoJobs);
        }
        if self.chunk_size == 0 {
            return Err(ConfigError::ZeroChunkSize);
        }
        match (self.snapshot_mode, &self.external_snapshot, &self.slot) {
            (SnapshotMode::External, None, _) => Err(ConfigError::ExternalSnapshotNeedsName),
            (mode, Some(_), _) if mode != SnapshotMode::External => {
                Err(ConfigError::SnapshotNameNeedsExternalMode(mode))
            }
            (mode, _, Some(_)) if mode != SnapshotMode::Slot => {
                Err(ConfigError::SlotNeedsSlotMode(mode))
            }
            _ => Ok(()),
        }
    }

    /// Sets [`jobs`](Self::jobs) (at least 1).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Sets [`chunk_size`](Self::chunk_size).
    pub fn with_chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Sets [`split_by`](Self::split_by).
    pub fn with_split_by(mut self, split_by: SplitBy) -> Self {
        self.split_by = split_by;
        self
    }

    /// Sets the include patterns.
    pub fn with_include(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.include = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the exclude patterns.
    pub fn with_exclude(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.exclude = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how the snapshot is taken.
    pub fn with_snapshot_mode(mut self, mode: SnapshotMode) -> Self {
        self.snapshot_mode = mode;
        self
    }

    /// Imports this snapshot ([`SnapshotMode::External`]).
    pub fn with_external_snapshot(mut self, name: impl Into<String>) -> Self {
        self.snapshot_mode = SnapshotMode::External;
        self.external_snapshot = Some(name.into());
        self
    }

    /// Uses a permanent slot of this name.
    pub fn with_slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = Some(slot.into());
        self
    }

    /// Creates this publication for the selected tables.
    pub fn with_publication(mut self, publication: impl Into<String>) -> Self {
        self.publication = Some(publication.into());
        self
    }

    /// Sets [`allow_snapshot_change`](Self::allow_snapshot_change).
    pub fn with_allow_snapshot_change(mut self, allow: bool) -> Self {
        self.allow_snapshot_change = allow;
        self
    }

    /// Limits the read rate (bytes per second).
    pub fn with_throttle(mut self, bytes_per_second: Option<u64>) -> Self {
        self.throttle = bytes_per_second;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets [`slot_timeout`](Self::slot_timeout).
    pub fn with_slot_timeout(mut self, d: Duration) -> Self {
        self.slot_timeout = d;
        self
    }

    /// Sets [`lock_timeout`](Self::lock_timeout).
    pub fn with_lock_timeout(mut self, d: Duration) -> Self {
        self.lock_timeout = d;
        self
    }

    /// The options that shape the plan: a resume must use the same.
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            split_by: self.split_by,
            chunk_size: self.chunk_size,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

/// How a caller watches and stops a running job: a progress handler and a cancellation
/// token (a service's shutdown, or a command's SIGINT/SIGTERM handler). Cancelling stops the
/// run within seconds: chunks in flight are abandoned (never recorded as done), the manifest
/// records what is done, the snapshot is closed; a resume then completes the run.
///
/// ```
/// use pgsnap::RunControl;
/// let control = RunControl::new();
/// let token = control.cancellation_token();
/// token.cancel(); // e.g. from a shutdown hook
/// assert!(control.is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct RunControl {
    pub(crate) progress: Option<ProgressHandler>,
    pub(crate) cancel: CancellationToken,
    pub(crate) health_interval: Option<Duration>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::Metrics>,
    /// Where the job serves them (boxed: a run control lives in every job's future).
    #[cfg(feature = "metrics")]
    pub(crate) metrics_addr: Option<Box<std::net::SocketAddr>>,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("progress", &self.progress.is_some())
            .field("cancelled", &self.cancel.is_cancelled())
            .field("metrics", &self.metrics_addr())
            .finish_non_exhaustive()
    }
}

impl RunControl {
    /// No progress handler, a fresh cancellation token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Receives the coordinator's progress events.
    pub fn with_progress(mut self, handler: ProgressHandler) -> Self {
        self.progress = Some(handler);
        self
    }

    /// Cancels the run when `token` is cancelled.
    pub fn with_cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// How often the cost of holding the snapshot (xmin age, slot WAL) is checked and warned
    /// about in the logs. Default 30 s.
    pub fn with_health_interval(mut self, every: Duration) -> Self {
        self.health_interval = Some(every);
        self
    }

    /// Updates `metrics` while the job runs (copy progress, ETA, retries, StarRocks loads,
    /// the snapshot's xmin age and slot lag), whoever serves them: [`Metrics::serve`]
    /// (for as long as you keep the server), your own registry
    /// ([`Metrics::register`]), or the job ([`with_metrics_addr`](Self::with_metrics_addr)).
    ///
    /// [`Metrics::serve`]: crate::metrics::Metrics::serve
    /// [`Metrics::register`]: crate::metrics::Metrics::register
    ///
    /// ```
    /// use pgsnap::RunControl;
    /// use pgsnap::metrics::Metrics;
    /// let control = RunControl::new().with_metrics(Metrics::new());
    /// assert!(control.metrics().is_some());
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves the run's metrics (those of [`with_metrics`](Self::with_metrics), or fresh
    /// ones) on `http://<addr>/metrics` while the job runs: bound before any work starts
    /// ([`JobError::Metrics`] when the address cannot be listened on), stopped when the job
    /// returns. Port 0 picks a free port; the report's `metrics_addr` names the one bound.
    ///
    /// ```
    /// use pgsnap::RunControl;
    /// let control = RunControl::new().with_metrics_addr("127.0.0.1:9187".parse().unwrap());
    /// assert!(control.metrics().is_some());
    /// assert_eq!(control.metrics_addr(), None); // bound when a job runs
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_metrics_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics.get_or_insert_with(crate::metrics::Metrics::new);
        self.metrics_addr = Some(Box::new(addr));
        self
    }

    /// The metrics the jobs update, if any.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_ref()
    }

    /// The address the metrics are served on, once bound (by the job or by
    /// [`Metrics::serve`](crate::metrics::Metrics::serve)); `None` without metrics.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        #[cfg(feature = "metrics")]
        return self.metrics.as_ref().and_then(crate::metrics::Metrics::addr);
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// Binds the metrics server of [`with_metrics_addr`](Self::with_metrics_addr), if one
    /// was asked for: the job holds the returned guard while it runs.
    pub(crate) async fn serve_metrics(&self) -> Result<MetricsGuard> {
        #[cfg(feature = "metrics")]
        if let (Some(m), Some(addr)) = (&self.metrics, &self.metrics_addr) {
            let server = m.serve(**addr).await?;
            tracing::info!(addr = %server.addr(), "serving Prometheus metrics on http://{}/metrics", server.addr());
            return Ok(MetricsGuard { _server: Some(server) });
        }
        Ok(MetricsGuard {
            #[cfg(feature = "metrics")]
            _server: None,
        })
    }

    /// The token that cancels the run.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Runs a step before (or after) the copy, giving up with [`JobError::Cancelled`] as soon
    /// as the run is cancelled (the step's future is dropped).
    pub(crate) async fn guard<T>(&self, step: impl Future<Output = Result<T>>) -> Result<T> {
        if self.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        tokio::select! {
            r = step => r,
            _ = self.cancel.cancelled() => Err(JobError::Cancelled),
        }
    }
}

/// Keeps a job's metrics server up while the job runs (nothing without the `metrics`
/// feature or a metrics address).
#[derive(Debug)]
pub(crate) struct MetricsGuard {
    #[cfg(feature = "metrics")]
    _server: Option<crate::metrics::MetricsServer>,
}

//! How far the CDC after a handoff has come: per table the Routine Load's state and its
//! per-partition progress against the Kafka high watermarks, the replication slot and the
//! Debezium connector, a verdict, and whether the migration is caught up for cutover.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgsnap_core::manifest::{HandoffState, RoutineLoadRecord};
use pgsnap_core::{CheckpointStore, Lsn, ManifestStore};
use pgsnap_kafka::KafkaClientConfig;
use pgsnap_kafka::connect::ConnectClient;
use pgsnap_kafka::kafka::{KafkaLog, KafkaLogOptions, KafkaLogs};
use pgsnap_sink_starrocks::mapping::quote_sr_ident;
use pgsnap_sink_starrocks::routine_load::{RoutineLoadInfo, RoutineLoadState};
use pgsnap_sink_starrocks::{StarRocksSink, StarRocksSinkBuilder};
use pgsnap_source::conninfo::Connection;
use pgsnap_source::position::{SlotPosition, WalProbe};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ErrorKind, JobError, Result};
use crate::report::REPORT_VERSION;

/// The cutover LSN T of [`StatusJob::with_cutover`]: the WAL position read after the
/// application stopped writing. Caught up for cutover means (a) T is known, (b) the
/// connector's processed position is at or past T, and (c) every Routine Load has consumed
/// through the high watermarks read after (b).
///
/// ```
/// use pgsnap::Cutover;
/// assert_eq!(Cutover::default(), Cutover::None);
/// let t = Cutover::Lsn("0/16B3748".parse().unwrap());
/// assert_ne!(t, Cutover::TakeNow);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Cutover {
    /// No cutover: the verdict is about the Routine Loads (and the connector) only.
    #[default]
    None,
    /// T was read by the caller after writes stopped.
    Lsn(Lsn),
    /// The job reads T itself (the end of the WAL, `pg_current_wal_insert_lsn()`: unlike
    /// `pg_current_wal_lsn()` it is past every commit even under `synchronous_commit = off`)
    /// when it starts: the caller asserts that the application has stopped writing
    /// **before** the job runs.
    TakeNow,
    /// T as a [`TakeNow`](Cutover::TakeNow) job read it ([`StatusJob::take_cutover`]): every
    /// later check of the job is against the same T.
    Taken(Lsn),
}

/// The verdict on a table, or on the whole handoff.
///
/// ```
/// use pgsnap::StatusVerdict;
/// assert_eq!(serde_json::to_string(&StatusVerdict::CaughtUp).unwrap(), "\"caught_up\"");
/// assert!(StatusVerdict::Paused.is_final());
/// assert!(!StatusVerdict::Lagging.is_final());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StatusVerdict {
    /// Every partition is consumed through its high watermark (with a cutover LSN: and the
    /// connector's position is at or past it).
    CaughtUp,
    /// Running, with records still to consume (or the connector behind the cutover LSN).
    Lagging,
    /// A Routine Load is PAUSED: waiting cannot fix it.
    Paused,
    /// A Routine Load is STOPPED, CANCELLED or missing, a topic is missing, the slot's WAL is
    /// lost, or the connector failed: waiting cannot fix it.
    Failed,
}

impl StatusVerdict {
    /// `caught_up`, `lagging`, `paused` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusVerdict::CaughtUp => "caught_up",
            StatusVerdict::Lagging => "lagging",
            StatusVerdict::Paused => "paused",
            StatusVerdict::Failed => "failed",
        }
    }

    /// Paused or failed: polling longer cannot change it.
    pub fn is_final(self) -> bool {
        matches!(self, StatusVerdict::Paused | StatusVerdict::Failed)
    }
}

impl std::fmt::Display for StatusVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Watches a handoff recorded in a state directory: `pgsnap status`.
///
/// The state is the handoff's `manifest.json` with its `handoff` field (brokers, the
/// StarRocks database, the connector, and the Routine Loads a handoff created). Each check
/// reads, in this order: the cutover LSN (with [`Cutover::TakeNow`], once), the slot's
/// `confirmed_flush_lsn` and the connector's state and offsets (with Kafka Connect), then per
/// table the topic's high watermarks and after them `SHOW ALL ROUTINE LOAD` (so progress is
/// never compared with an older watermark).
///
/// A partition's lag is `HW − next`, where `next` is the job's `Progress` + 1 (StarRocks
/// shows the last consumed offset; its own lag column reads 1 when caught up). A lag above 0
/// may consist of transaction markers, aborted or compacted records only, which no consumer
/// ever receives: the partition is then caught up, which one `read_committed` read from
/// `next` checks.
///
/// # Example
/// ```no_run
/// # async fn f() -> Result<(), pgsnap::JobError> {
/// use std::time::Duration;
/// use pgsnap::starrocks::StarRocksSinkBuilder;
/// use pgsnap::{Connection, Cutover, StatusJob};
///
/// let job = StatusJob::new(
///     "/data/handoff",
///     Connection::new("host=db1 dbname=sales user=app"),
///     StarRocksSinkBuilder::new("http://fe1:8030", "").with_user("root"),
/// )
/// .with_cutover(Cutover::TakeNow);
/// let (report, timed_out) = job
///     .until_caught_up(Duration::from_secs(600), Duration::from_secs(2), |r| {
///         eprintln!("{}", r.lag_summary());
///     })
///     .await?;
/// assert!(report.caught_up_for_cutover() || timed_out || report.verdict.is_final());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StatusJob {
    state: PathBuf,
    source: Connection,
    starrocks: StarRocksSinkBuilder,
    kafka_config: KafkaClientConfig,
    kafka_timeout: Duration,
    brokers: Option<String>,
    connect: Option<ConnectClient>,
    connector: Option<String>,
    slot: Option<String>,
    cutover: Cutover,
    /// Kafka consumers by topic, kept across the checks of one job (and its clones).
    logs: Arc<Mutex<HashMap<String, KafkaLogs>>>,
    /// The metrics every check updates, and where to serve them.
    #[cfg(feature = "metrics")]
    metrics: Option<Arc<StatusMetrics>>,
}

/// The metrics of a [`StatusJob`]: updated by every check; the server once bound is shared
/// by the job's clones, so a watch keeps one address.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct StatusMetrics {
    metrics: crate::metrics::Metrics,
    addr: Option<std::net::SocketAddr>,
    server: tokio::sync::Mutex<Option<crate::metrics::MetricsServer>>,
}

impl StatusJob {
    /// A status of the handoff recorded in `state`, reading the slot through `source` and the
    /// Routine Loads through `starrocks` (its FE and credentials; an empty database means the
    /// one the handoff recorded).
    pub fn new(
        state: impl Into<PathBuf>,
        source: impl Into<Connection>,
        starrocks: StarRocksSinkBuilder,
    ) -> Self {
        Self {
            state: state.into(),
            source: source.into(),
            starrocks,
            kafka_config: KafkaClientConfig::new(),
            kafka_timeout: Duration::from_secs(30),
            brokers: None,
            connect: None,
            connector: None,
            slot: None,
            cutover: Cutover::None,
            logs: Arc::default(),
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Updates `metrics` from every check's report: per partition the high watermark, the
    /// consumed offset and the lag; each Routine Load's state and rows; the table and overall
    /// verdicts; caught up for cutover; the slot's lag behind the current WAL.
    ///
    /// ```
    /// use pgsnap::metrics::Metrics;
    /// use pgsnap::starrocks::StarRocksSinkBuilder;
    /// use pgsnap::{Connection, StatusJob};
    /// let metrics = Metrics::new();
    /// let job = StatusJob::new("/data/handoff", Connection::new("host=db1"),
    ///     StarRocksSinkBuilder::new("http://fe1:8030", ""))
    ///     .with_metrics(metrics.clone());
    /// # drop(job);
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        let addr = self.metrics.as_ref().and_then(|m| m.addr);
        self.metrics = Some(Arc::new(StatusMetrics { metrics, addr, server: Default::default() }));
        self
    }

    /// Serves the metrics (those of [`with_metrics`](Self::with_metrics), or fresh ones) on
    /// `http://<addr>/metrics`, bound by [`serve_metrics`](Self::serve_metrics) or the first
    /// check and kept by the job and its clones (a watch's checks share one server). Port 0
    /// picks a free port; the reports' `metrics_addr` names the one bound.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_metrics_addr(mut self, addr: std::net::SocketAddr) -> Self {
        let metrics = self.metrics.as_ref().map(|m| m.metrics.clone()).unwrap_or_default();
        self.metrics =
            Some(Arc::new(StatusMetrics { metrics, addr: Some(addr), server: Default::default() }));
        self
    }

    /// Binds the server of [`with_metrics_addr`](Self::with_metrics_addr) now, if it is not
    /// yet: call it before the first check so that a bad address fails before any work.
    /// Returns the bound address (`None` without a metrics address).
    ///
    /// # Errors
    /// [`JobError::Metrics`] naming the address when it cannot be listened on.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub async fn serve_metrics(&self) -> Result<Option<std::net::SocketAddr>> {
        let Some(m) = &self.metrics else { return Ok(None) };
        let Some(addr) = m.addr else { return Ok(None) };
        let mut server = m.server.lock().await;
        if let Some(s) = server.as_ref() {
            return Ok(Some(s.addr()));
        }
        let bound = m.metrics.serve(addr).await?;
        let local = bound.addr();
        tracing::info!(addr = %local, "serving Prometheus metrics on http://{local}/metrics");
        *server = Some(bound);
        Ok(Some(local))
    }

    /// Where the metrics are served, once bound.
    fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        #[cfg(feature = "metrics")]
        return self.metrics.as_ref().and_then(|m| m.metrics.addr());
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// Shows a check's report to the metrics (and names their address in it).
    fn observed(&self, mut report: StatusReport) -> StatusReport {
        report.metrics_addr = self.metrics_addr();
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            observe(&m.metrics, &report);
        }
        report
    }

    /// The librdkafka settings (TLS, SASL, ...) of the Kafka clients the job opens.
    pub fn with_kafka_config(mut self, config: KafkaClientConfig) -> Self {
        self.kafka_config = config;
        self
    }

    /// How long one Kafka request may take (default 30 s).
    pub fn with_kafka_timeout(mut self, timeout: Duration) -> Self {
        self.kafka_timeout = timeout;
        self
    }

    /// Kafka bootstrap servers instead of the ones the handoff recorded.
    pub fn with_brokers(mut self, brokers: impl Into<String>) -> Self {
        self.brokers = Some(brokers.into());
        self
    }

    /// Kafka Connect: the connector's state and its processed position (`lsn_proc` of its
    /// stored offsets), which then decides (b) of the cutover rule instead of the slot.
    pub fn with_connect(mut self, client: ConnectClient) -> Self {
        self.connect = Some(client);
        self
    }

    /// The connector's name instead of the one the handoff recorded.
    pub fn with_connector(mut self, name: impl Into<String>) -> Self {
        self.connector = Some(name.into());
        self
    }

    /// The replication slot to report instead of the snapshot's permanent slot (in running
    /// mode the connector streams from a slot of its own).
    pub fn with_slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = Some(slot.into());
        self
    }

    /// The cutover LSN (default [`Cutover::None`]).
    pub fn with_cutover(mut self, cutover: Cutover) -> Self {
        self.cutover = cutover;
        self
    }

    /// One check.
    ///
    /// # Errors
    /// [`JobError::NoHandoff`] (usage) when the state directory records no handoff with
    /// Routine Loads; connection failures to PostgreSQL, StarRocks, Kafka or Kafka Connect
    /// (kind [`ErrorKind::Preflight`]); bad settings (kind [`ErrorKind::Usage`]).
    pub async fn run(&self) -> Result<StatusReport> {
        #[cfg(feature = "metrics")]
        self.serve_metrics().await?;
        let ctx = self.context().await?;
        let cutover = self.cutover_lsn().await?;
        self.check(&ctx, cutover).await
    }

    /// Checks every `interval` until the verdict is `caught_up` (with a cutover: caught up
    /// for cutover), `paused` or `failed` (waiting cannot fix those), or `timeout` has passed;
    /// calls `on_each` with every report. Returns the last report and whether the time ran
    /// out. With [`Cutover::TakeNow`] T is read once, before the first check.
    ///
    /// # Errors
    /// As [`run`](Self::run); an error in any check ends the polling.
    pub async fn until_caught_up(
        &self,
        timeout: Duration,
        interval: Duration,
        mut on_each: impl FnMut(&StatusReport),
    ) -> Result<(StatusReport, bool)> {
        #[cfg(feature = "metrics")]
        self.serve_metrics().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let ctx = self.context().await?;
        let cutover = self.cutover_lsn().await?;
        loop {
            let report = self.check(&ctx, cutover).await?;
            on_each(&report);
            if report.verdict != StatusVerdict::Lagging {
                return Ok((report, false));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok((report, true));
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
    }

    /// The job with [`Cutover::TakeNow`] replaced by T read now ([`Cutover::Taken`]), so that
    /// repeated [`run`](Self::run)s (a watch) check against one cutover point; any other
    /// cutover is kept.
    ///
    /// # Errors
    /// PostgreSQL cannot be reached.
    pub async fn take_cutover(mut self) -> Result<Self> {
        if self.cutover == Cutover::TakeNow
            && let Some((t, _)) = self.cutover_lsn().await?
        {
            self.cutover = Cutover::Taken(t);
        }
        Ok(self)
    }

    /// T, read now when asked to ([`Cutover::TakeNow`]).
    async fn cutover_lsn(&self) -> Result<Option<(Lsn, bool)>> {
        match self.cutover {
            Cutover::None => Ok(None),
            Cutover::Lsn(t) => Ok(Some((t, false))),
            Cutover::Taken(t) => Ok(Some((t, true))),
            Cutover::TakeNow => {
                let probe = WalProbe::connect(self.source.clone()).await?;
                Ok(Some((probe.current_wal_lsn().await?, true)))
            }
        }
    }

    /// What every check needs: the recorded handoff, the StarRocks client, the names.
    async fn context(&self) -> Result<Context> {
        let no_handoff = |reason: String| JobError::NoHandoff { dir: self.state.clone(), reason };
        let store = ManifestStore::new(&self.state);
        let Some(manifest) = store.load().await? else {
            return Err(no_handoff(format!(
                "no {} there: point it at the state directory of a handoff",
                pgsnap_core::MANIFEST_FILE
            )));
        };
        let Some(handoff) = manifest.handoff.clone() else {
            return Err(no_handoff(
                "the manifest records no handoff: run the handoff with its Routine Loads \
                 created (pgsnap handoff --create-routine-loads) first"
                    .into(),
            ));
        };
        if handoff.routine_loads.is_empty() {
            return Err(no_handoff(
                "the handoff recorded no Routine Load (none was created): run the handoff \
                 with its Routine Loads created (pgsnap handoff --create-routine-loads)"
                    .into(),
            ));
        }
        let mut builder = self.starrocks.clone();
        if builder.database().is_empty() {
            if handoff.database.is_empty() {
                return Err(no_handoff(
                    "the handoff recorded no StarRocks database: give it".into(),
                ));
            }
            builder = builder.with_database(handoff.database.clone());
        }
        let starrocks = builder.with_run_id("status").build()?;
        let brokers = self.brokers.clone().unwrap_or_else(|| handoff.brokers.clone());
        if brokers.is_empty() {
            return Err(no_handoff("the handoff recorded no Kafka brokers: give them".into()));
        }
        let connector = match &self.connect {
            None => None,
            Some(_) => match self.connector.clone().or_else(|| handoff.connector.clone()) {
                Some(name) => Some(name),
                None => {
                    return Err(no_handoff(
                        "Kafka Connect is given, but the handoff recorded no connector: name it"
                            .into(),
                    ));
                }
            },
        };
        // The snapshot's slot, unless it was temporary (running and time modes: the
        // connector's own slot is another one).
        let slot = self.slot.clone().or_else(|| {
            (manifest.snapshot.slot_temporary != Some(true))
                .then(|| manifest.snapshot.slot.clone())
                .flatten()
        });
        // Tables the snapshot copied that no Routine Load continues: no CDC reaches them.
        let unrecorded = manifest
            .tables
            .iter()
            .map(|t| format!("{}.{}", t.schema.name.schema, t.schema.name.name))
            .filter(|source| !handoff.routine_loads.iter().any(|r| &r.source == source))
            .collect();
        Ok(Context { handoff, starrocks, brokers, connector, slot, unrecorded })
    }

    /// One check against `ctx`, with the cutover LSN T (and whether the job took it).
    async fn check(&self, ctx: &Context, cutover: Option<(Lsn, bool)>) -> Result<StatusReport> {
        let mut reasons = Vec::new();
        let mut warnings = Vec::new();
        // (b) first: the slot and the connector.
        let probe = WalProbe::connect(self.source.clone()).await?;
        let checked_at = probe.server_time().await?;
        let slot = match &ctx.slot {
            Some(name) => {
                let position = probe.slot(name).await?;
                let wal = probe.current_wal_lsn().await?;
                Some(SlotReport::of(name, position, wal))
            }
            None => None,
        };
        drop(probe);
        let connector = match (&self.connect, &ctx.connector) {
            (Some(client), Some(name)) => Some(connector_report(client, name).await?),
            _ => None,
        };
        let cutover = cutover.map(|(lsn, taken)| {
            CutoverCheck::new(lsn, taken, slot.as_ref(), connector.as_ref(), self.connect.is_some())
        });

        // (c): per table, the watermarks, then the job.
        let mut tables = Vec::with_capacity(ctx.handoff.routine_loads.len());
        for record in &ctx.handoff.routine_loads {
            tables.push(self.table(ctx, record).await?);
        }
        for source in &ctx.unrecorded {
            let mut t = StatusTable::without_job(source);
            t.verdict = StatusVerdict::Failed;
            t.reasons.push(
                "the snapshot copied this table, but the handoff created no Routine Load for it \
                 (its topic did not exist, or its columns cannot be carried exactly: see the \
                 handoff's warnings): no change after the snapshot reaches StarRocks"
                    .to_owned(),
            );
            tables.push(t);
        }

        let mut verdict = tables.iter().map(|t| t.verdict).max().unwrap_or(StatusVerdict::CaughtUp);
        for t in &tables {
            reasons.extend(t.reasons.iter().map(|r| format!("{}: {r}", t.source)));
            warnings.extend(t.warnings.iter().map(|w| format!("{}: {w}", t.source)));
        }
        if let Some(s) = &slot {
            if !s.exists {
                warnings.push(format!("replication slot {:?} does not exist", s.name));
            }
            if s.wal_status.as_deref() == Some("lost") {
                reasons.push(format!(
                    "replication slot {:?} lost WAL it needs (wal_status lost): the connector \
                     cannot continue from it; re-snapshot with a new handoff",
                    s.name
                ));
                verdict = verdict.max(StatusVerdict::Failed);
            }
        }
        if let Some(problem) = connector.as_ref().and_then(ConnectorReport::failure) {
            reasons.push(problem);
            verdict = verdict.max(StatusVerdict::Failed);
        }
        if let Some(c) = &cutover {
            if let Some(r) = &c.reason {
                reasons.push(r.clone());
            }
            if !c.reached {
                verdict = verdict.max(StatusVerdict::Lagging);
            }
        }
        let caught_up_for_cutover = cutover.as_ref().is_some_and(|c| c.reached)
            && tables.iter().all(|t| t.verdict == StatusVerdict::CaughtUp)
            && verdict == StatusVerdict::CaughtUp;
        Ok(self.observed(StatusReport {
            report_version: REPORT_VERSION,
            state: self.state.clone(),
            checked_at,
            database: ctx.starrocks.database().to_owned(),
            brokers: ctx.brokers.clone(),
            tables,
            slot,
            connector,
            cutover_lsn: cutover.as_ref().map(|c| c.lsn),
            cutover,
            caught_up_for_cutover,
            verdict,
            reasons,
            warnings,
            metrics_addr: None,
        }))
    }

    /// The Kafka logs of `topic` (opened once per job).
    async fn logs(&self, brokers: &str, topic: &str) -> pgsnap_kafka::Result<KafkaLogs> {
        if let Some(logs) = self.logs.lock().unwrap_or_else(|e| e.into_inner()).get(topic) {
            return Ok(logs.clone());
        }
        let options = KafkaLogOptions {
            request_timeout: self.kafka_timeout,
            client_config: self.kafka_config.clone(),
        };
        let logs = KafkaLogs::open_with(brokers, topic, &options).await?;
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).insert(topic.to_owned(), logs.clone());
        Ok(logs)
    }

    /// One table: the topic's watermarks, then its Routine Load.
    async fn table(&self, ctx: &Context, record: &RoutineLoadRecord) -> Result<StatusTable> {
        let mut t = StatusTable::new(&record.source, &record.table, &record.topic, &record.name);
        let logs = match self.logs(&ctx.brokers, &record.topic).await {
            Ok(logs) => logs,
            Err(pgsnap_kafka::Error::NoSuchTopic { .. }) => {
                t.verdict = StatusVerdict::Failed;
                t.reasons.push(format!("topic {} does not exist on {}", record.topic, ctx.brokers));
                return Ok(t);
            }
            Err(e) => return Err(kafka_error(format!("opening topic {}", record.topic), e)),
        };
        let mut marks = BTreeMap::new();
        for log in logs.logs() {
            let m = log.watermarks().await.map_err(|e| {
                kafka_error(
                    format!("reading the watermarks of {}[{}]", record.topic, log.partition()),
                    e,
                )
            })?;
            marks.insert(log.partition(), m);
        }

        let Some(info) = pick_job(ctx.starrocks.show_routine_loads(&record.name).await?, record)
        else {
            t.verdict = StatusVerdict::Failed;
            t.reasons.push(format!(
                "no Routine Load named {} in StarRocks database {}: create it from the \
                 definition the handoff recorded",
                record.name,
                ctx.starrocks.database()
            ));
            return Ok(t);
        };
        let rl = &mut t.routine_load;
        rl.id = Some(info.id.clone());
        rl.state = Some(info.state.as_str().to_owned());
        rl.reason = info.reason.clone();
        rl.rows_loaded = info.loaded_rows;
        rl.rows_filtered = info.error_rows;
        rl.rows_unselected = info.unselected_rows;
        t.error_urls = info.error_log_urls.clone();

        // Partitions: those the job consumes; Kafka's others are not loaded at all.
        let next = info.next_offsets();
        let mut unconsumed = false;
        for (p, (low, high)) in
            marks.iter().filter(|(p, _)| !next.contains_key(p) && !record.offsets.contains_key(p))
        {
            let what = format!(
                "partition {p} of {} is not consumed by the Routine Load (the topic gained \
                 partitions after the job was created; StarRocks does not add them to a job \
                 with explicit partitions)",
                record.topic
            );
            if high > low {
                unconsumed = true;
                t.reasons.push(format!("{what}: its records never reach StarRocks"));
            } else {
                t.warnings.push(format!("{what}; it is empty so far"));
            }
        }
        let mut partitions: Vec<i32> = next.keys().copied().collect();
        partitions.extend(record.offsets.keys().filter(|p| !next.contains_key(p)));
        partitions.sort_unstable();
        for p in partitions {
            let job_next = next.get(&p).copied().flatten();
            let Some(&(low, high)) = marks.get(&p) else {
                t.reasons.push(format!("partition {p} does not exist in topic {}", record.topic));
                t.routine_load.partitions.push(PartitionReport::unknown(p, job_next));
                continue;
            };
            let part = match job_next {
                Some(n) => {
                    let log = logs.partition(p);
                    if n < low {
                        unconsumed = true;
                    }
                    partition_report(p, n, low, high, log, &mut t.reasons).await?
                }
                None => {
                    t.reasons.push(format!(
                        "partition {p}: the job has not resolved its start yet (Progress {})",
                        info.progress.get(&p).map_or("absent", String::as_str)
                    ));
                    PartitionReport {
                        high_watermark: Some(high),
                        ..PartitionReport::unknown(p, None)
                    }
                }
            };
            t.routine_load.partitions.push(part);
        }

        let behind = t.routine_load.partitions.iter().any(|p| !p.caught_up);
        t.verdict = match &info.state {
            RoutineLoadState::Paused => StatusVerdict::Paused,
            s if s.is_final() => StatusVerdict::Failed,
            _ if unconsumed => StatusVerdict::Failed,
            _ if behind => StatusVerdict::Lagging,
            _ => StatusVerdict::CaughtUp,
        };
        match t.verdict {
            StatusVerdict::Paused => {
                t.reasons.push(format!(
                    "Routine Load {} is PAUSED{}",
                    record.name,
                    info.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                ));
                t.remedy = Some(remedy(ctx.starrocks.database(), record, &info));
            }
            StatusVerdict::Failed => t.reasons.push(format!(
                "Routine Load {} is {}{}: it never runs again; create it anew from the offsets \
                 the handoff recorded, or re-snapshot the table",
                record.name,
                info.state.as_str(),
                info.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            )),
            _ => {}
        }
        if info.error_rows > 0 && t.verdict != StatusVerdict::Paused {
            t.warnings.push(format!(
                "{} row(s) were filtered (skipped) by the Routine Load; see the error URLs",
                info.error_rows
            ));
        }
        Ok(t)
    }
}

/// Shows one check's report to the metrics: its numbers, nothing counted apart.
#[cfg(feature = "metrics")]
fn observe(m: &crate::metrics::Metrics, report: &StatusReport) {
    for t in &report.tables {
        for p in &t.routine_load.partitions {
            m.observe_partition(
                &t.source,
                &t.topic,
                p.partition,
                (p.high_watermark, p.consumed, p.lag),
            );
        }
        let rl = &t.routine_load;
        if !rl.name.is_empty() {
            let state = match rl.state.as_deref().map(RoutineLoadState::parse) {
                None => "MISSING",
                Some(RoutineLoadState::Running) => "RUNNING",
                Some(RoutineLoadState::NeedSchedule) => "NEED_SCHEDULE",
                Some(RoutineLoadState::Paused) => "PAUSED",
                Some(RoutineLoadState::Stopped) => "STOPPED",
                Some(RoutineLoadState::Cancelled) => "CANCELLED",
                Some(_) => "OTHER",
            };
            m.observe_routine_load(&t.source, &rl.name, state, (rl.rows_loaded, rl.rows_filtered));
        }
        m.observe_table_verdict(&t.source, t.verdict.as_str());
    }
    if let Some(slot) = &report.slot
        && let Some(lag) = slot.lag_bytes
    {
        m.observe_slot_lag(&slot.name, lag);
    }
    m.observe_check(report.verdict.as_str(), report.caught_up_for_cutover);
}

/// The recorded handoff and the clients of one job.
struct Context {
    handoff: HandoffState,
    starrocks: StarRocksSink,
    brokers: String,
    connector: Option<String>,
    slot: Option<String>,
    /// Tables of the snapshot without a recorded Routine Load (`schema.table`).
    unrecorded: Vec<String>,
}

fn kafka_error(context: String, e: pgsnap_kafka::Error) -> JobError {
    let message = e.to_string();
    JobError::Kafka { context, message, kind: ErrorKind::of_core(&e.into()) }
}

/// The job of `record` among `SHOW ALL ROUTINE LOAD`'s rows (oldest first): the recorded id,
/// else the newest that can still run, else the newest.
fn pick_job(mut rows: Vec<RoutineLoadInfo>, record: &RoutineLoadRecord) -> Option<RoutineLoadInfo> {
    // The handoff's own job while it can run; a job created by hand in its place (as the
    // remedy of a STOPPED one says) once it cannot; the newest otherwise.
    if let Some(id) = &record.job_id
        && let Some(i) = rows.iter().position(|r| &r.id == id && !r.state.is_final())
    {
        return Some(rows.swap_remove(i));
    }
    if let Some(i) = rows.iter().rposition(|r| !r.state.is_final()) {
        return Some(rows.swap_remove(i));
    }
    if let Some(id) = &record.job_id
        && let Some(i) = rows.iter().position(|r| &r.id == id)
    {
        return Some(rows.swap_remove(i));
    }
    rows.pop()
}

/// One partition whose job consumes `next` next.
async fn partition_report(
    partition: i32,
    next: i64,
    low: i64,
    high: i64,
    log: Option<&KafkaLog>,
    reasons: &mut Vec<String>,
) -> Result<PartitionReport> {
    let lag = high - next;
    let mut report = PartitionReport {
        partition,
        high_watermark: Some(high),
        consumed: (next > 0).then_some(next - 1),
        next: Some(next),
        lag: Some(lag.max(0)),
        caught_up: lag <= 0,
        gap: false,
    };
    // Progress is read after the high watermark: with writers running the job may be past
    // it, which is consumed through it.
    if lag <= 0 {
        return Ok(report);
    }
    if next < low {
        reasons.push(format!(
            "partition {partition}: records {next}..{low} were deleted (retention) before the \
             job consumed them: those changes never reach StarRocks; re-snapshot the table"
        ));
        return Ok(report);
    }
    // HW − next > 0: a read_committed read says whether a consumable record lies there.
    let Some(log) = log else { return Ok(report) };
    let records = log.read_from(next, 1).await.map_err(|e| {
        kafka_error(format!("reading {}[{partition}] from offset {next}", log.topic()), e)
    })?;
    match records.first() {
        Some(r) if r.offset < high => {
            reasons.push(format!("partition {partition}: {lag} offset(s) to consume"));
        }
        _ => {
            report.caught_up = true;
            report.gap = true;
        }
    }
    Ok(report)
}

/// What to do about a PAUSED job.
fn remedy(database: &str, record: &RoutineLoadRecord, info: &RoutineLoadInfo) -> String {
    let job = format!("{}.{}", quote_sr_ident(database), quote_sr_ident(&record.name));
    if info.error_rows == 0 {
        return format!(
            "fix what the reason names, then RESUME ROUTINE LOAD FOR {job}; (the job continues \
             from its progress)"
        );
    }
    let reset = if record.offsets.is_empty() {
        format!("ALTER ROUTINE LOAD FOR {job} FROM KAFKA (...) to the handoff's offsets")
    } else {
        let parts: Vec<String> = record.offsets.keys().map(i32::to_string).collect();
        let offsets: Vec<String> = record.offsets.values().map(i64::to_string).collect();
        format!(
            "ALTER ROUTINE LOAD FOR {job} FROM KAFKA (\"kafka_partitions\" = \"{}\", \
             \"kafka_offsets\" = \"{}\"); RESUME ROUTINE LOAD FOR {job};",
            parts.join(","),
            offsets.join(",")
        )
    };
    format!(
        "{} row(s) were filtered: they were skipped in the committed batch, and RESUME will not \
         bring them back. Fix the mapping (the target table's column types, or the connector's \
         encodings), then reset the job to the offsets the handoff recorded: {reset} On a \
         Primary Key table the replay converges. Or re-snapshot the table.",
        info.error_rows
    )
}

/// What Kafka Connect says about the connector.
async fn connector_report(client: &ConnectClient, name: &str) -> Result<ConnectorReport> {
    let err = |what: &str, e: pgsnap_kafka::Error| {
        kafka_error(format!("reading connector {name:?}'s {what} from Kafka Connect"), e)
    };
    let mut report = ConnectorReport {
        name: name.to_owned(),
        url: client.url().to_owned(),
        exists: false,
        state: None,
        tasks: Vec::new(),
        lsn_proc: None,
        lsn_commit: None,
        error: None,
    };
    let Some(status) = client.connector_status(name).await.map_err(|e| err("status", e))? else {
        return Ok(report);
    };
    report.exists = true;
    report.state = status["connector"]["state"].as_str().map(str::to_owned);
    report.tasks = status["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| TaskReport {
            id: t["id"].as_i64().unwrap_or(-1),
            state: t["state"].as_str().unwrap_or_default().to_owned(),
            trace: t["trace"].as_str().map(|s| s.lines().next().unwrap_or_default().to_owned()),
        })
        .collect();
    let lsn = |v: &Value| v.as_u64().or_else(|| v.as_str()?.parse().ok()).map(Lsn);
    match client.stored_offsets(name).await.map_err(|e| err("offsets", e))? {
        Some(Value::Array(entries)) => {
            for e in &entries {
                let offset = &e["offset"];
                report.lsn_proc = report.lsn_proc.max(lsn(&offset["lsn_proc"]));
                report.lsn_commit = report.lsn_commit.max(lsn(&offset["lsn_commit"]));
            }
            if report.lsn_proc.is_none() {
                report.error = Some(
                    "Kafka Connect lists no lsn_proc for the connector (no offset committed \
                     yet)"
                        .into(),
                );
            }
        }
        _ => {
            report.error = Some(
                "Kafka Connect lists no offsets for the connector (a worker older than Kafka \
                 3.6?)"
                    .into(),
            )
        }
    }
    Ok(report)
}

/// The report of one check ([`StatusJob::run`]).
///
/// Its JSON (a contract; fields are only ever added): `report_version`, `state`,
/// `checked_at` (the PostgreSQL server's clock, UTC), `database`, `brokers`, `tables[]`
/// ([`StatusTable`]: `source`, `target`, `topic`, `routine_load` {`name`, `id`, `state`,
/// `reason`, `partitions` [{`partition`, `high_watermark`, `consumed`, `next`, `lag`,
/// `caught_up`, `gap`}], `rows_loaded`, `rows_filtered`, `rows_unselected`}, `verdict`,
/// `remedy`, `error_urls`, `reasons`, `warnings`), `slot` ({`name`, `exists`,
/// `confirmed_flush_lsn`, `wal_status`, `active`, `wal_lsn`, `lag_bytes`} or `null`), `connector` ({`name`, `url`,
/// `exists`, `state`, `tasks`, `lsn_proc`, `lsn_commit`, `error`} or `null`), `cutover_lsn`
/// (or `null`), `cutover` ({`lsn`, `taken`, `position`, `position_from`, `reached`,
/// `reason`} or `null`), `caught_up_for_cutover`, `verdict`, `reasons`, `warnings`, and
/// `metrics_addr` when the metrics are served. LSNs are
/// `X/Y` strings.
///
/// ```no_run
/// # async fn f(job: pgsnap::StatusJob) -> Result<(), pgsnap::JobError> {
/// let report = job.run().await?;
/// let json = serde_json::to_value(&report).unwrap();
/// for t in json["tables"].as_array().unwrap() {
///     println!("{} {}", t["source"], t["verdict"]);
/// }
/// if report.caught_up_for_cutover() {
///     println!("cut over now");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// The state directory.
    pub state: PathBuf,
    /// When the check began, by the PostgreSQL server's clock (UTC).
    pub checked_at: String,
    /// The StarRocks database of the Routine Loads.
    pub database: String,
    /// The Kafka bootstrap servers read.
    pub brokers: String,
    /// Per Routine Load the handoff recorded.
    pub tables: Vec<StatusTable>,
    /// The replication slot (`None` without one: a temporary snapshot slot and no slot
    /// named).
    pub slot: Option<SlotReport>,
    /// The Debezium connector (`None` without Kafka Connect).
    pub connector: Option<ConnectorReport>,
    /// The cutover LSN T.
    pub cutover_lsn: Option<Lsn>,
    /// The cutover rule's (b): the connector's position against T.
    pub cutover: Option<CutoverCheck>,
    /// See [`caught_up_for_cutover`](Self::caught_up_for_cutover).
    pub caught_up_for_cutover: bool,
    /// The worst table verdict, raised to `failed` for a lost slot or a failed connector and
    /// to `lagging` while the connector has not reached T.
    pub verdict: StatusVerdict,
    /// Why the verdict is not `caught_up`, each prefixed with its table where it has one.
    pub reasons: Vec<String>,
    /// What deserves a look without changing the verdict.
    pub warnings: Vec<String>,
    /// Where the metrics are served (`metrics_addr`, only when they are).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "display_addr")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

fn display_addr<S: serde::Serializer>(
    addr: &Option<std::net::SocketAddr>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match addr {
        Some(a) => s.collect_str(a),
        None => s.serialize_none(),
    }
}

impl StatusReport {
    /// Caught up for cutover: (a) a cutover LSN T is known, (b) the connector's processed
    /// position (Kafka Connect's `lsn_proc`, else the slot's `confirmed_flush_lsn`) is at or
    /// past T, and (c) every Routine Load has consumed through the high watermarks read after
    /// (b).
    pub fn caught_up_for_cutover(&self) -> bool {
        self.caught_up_for_cutover
    }

    /// A short JSON summary: `{"verdict", "caught_up_for_cutover", "cutover_lsn", "tables":
    /// [{"source", "verdict", "lag"}]}`, where `lag` is the sum of the offsets still to
    /// consume over the partitions not caught up (`null` when one is unknown).
    pub fn lag_summary(&self) -> Value {
        let tables: Vec<Value> = self
            .tables
            .iter()
            .map(|t| {
                let lag: Option<i64> =
                    t.routine_load.partitions.iter().filter(|p| !p.caught_up).map(|p| p.lag).sum();
                json!({"source": t.source, "verdict": t.verdict, "lag": lag})
            })
            .collect();
        json!({
            "verdict": self.verdict,
            "caught_up_for_cutover": self.caught_up_for_cutover,
            "cutover_lsn": self.cutover_lsn,
            "tables": tables,
        })
    }
}

/// One table of a [`StatusReport`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatusTable {
    /// The PostgreSQL table (`schema.table`).
    pub source: String,
    /// The StarRocks table.
    pub target: String,
    /// The Debezium topic.
    pub topic: String,
    /// Its Routine Load.
    pub routine_load: RoutineLoadReport,
    /// `caught_up`, `lagging`, `paused` or `failed`.
    pub verdict: StatusVerdict,
    /// What to do, for a paused job.
    pub remedy: Option<String>,
    /// Where StarRocks describes the filtered rows (`ErrorLogUrls`).
    pub error_urls: Vec<String>,
    /// Why the table is not caught up.
    pub reasons: Vec<String>,
    /// What deserves a look.
    pub warnings: Vec<String>,
}

impl StatusTable {
    /// A table caught up so far, its job not read yet.
    fn new(source: &str, target: &str, topic: &str, job: &str) -> Self {
        StatusTable {
            source: source.to_owned(),
            target: target.to_owned(),
            topic: topic.to_owned(),
            routine_load: RoutineLoadReport {
                name: job.to_owned(),
                id: None,
                state: None,
                reason: None,
                partitions: Vec::new(),
                rows_loaded: 0,
                rows_filtered: 0,
                rows_unselected: 0,
            },
            verdict: StatusVerdict::CaughtUp,
            remedy: None,
            error_urls: Vec::new(),
            reasons: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A table of the snapshot with no recorded Routine Load.
    fn without_job(source: &str) -> Self {
        StatusTable::new(source, "", "", "")
    }
}

/// A Routine Load in a [`StatusTable`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RoutineLoadReport {
    /// The job's name.
    pub name: String,
    /// StarRocks' job id (`None` when StarRocks knows no such job).
    pub id: Option<String>,
    /// `State` as StarRocks shows it (`None` when StarRocks knows no such job).
    pub state: Option<String>,
    /// `ReasonOfStateChanged`.
    pub reason: Option<String>,
    /// Per partition the job consumes.
    pub partitions: Vec<PartitionReport>,
    /// `Statistic.loadedRows`.
    pub rows_loaded: u64,
    /// `Statistic.errorRows`: rows filtered (skipped).
    pub rows_filtered: u64,
    /// `Statistic.unselectedRows`.
    pub rows_unselected: u64,
}

/// One partition of a [`RoutineLoadReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PartitionReport {
    /// The partition.
    pub partition: i32,
    /// Its high watermark (under `read_committed`, the last stable offset).
    pub high_watermark: Option<i64>,
    /// The last offset the job consumed, as `Progress` shows it (`None` before the first).
    pub consumed: Option<i64>,
    /// The next offset the job consumes.
    pub next: Option<i64>,
    /// `high_watermark − next` (at least 0; `None` when either is unknown).
    pub lag: Option<i64>,
    /// No consumable record lies between `next` and the high watermark.
    pub caught_up: bool,
    /// Caught up although `lag` > 0: the offsets left hold only transaction markers,
    /// aborted or compacted records.
    pub gap: bool,
}

impl PartitionReport {
    fn unknown(partition: i32, next: Option<i64>) -> Self {
        PartitionReport {
            partition,
            high_watermark: None,
            consumed: next.filter(|n| *n > 0).map(|n| n - 1),
            next,
            lag: None,
            caught_up: false,
            gap: false,
        }
    }
}

/// The replication slot in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SlotReport {
    /// The slot's name.
    pub name: String,
    /// Whether it exists.
    pub exists: bool,
    /// `confirmed_flush_lsn`.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `wal_status` (`lost`: the connector cannot continue from it).
    pub wal_status: Option<String>,
    /// Whether a consumer is connected.
    pub active: bool,
    /// The current WAL insert position when the slot was read
    /// (`pg_current_wal_insert_lsn()`).
    pub wal_lsn: Option<Lsn>,
    /// WAL bytes from `confirmed_flush_lsn` to [`wal_lsn`](Self::wal_lsn): how far the
    /// slot's consumer is behind (`None` when either is unknown).
    pub lag_bytes: Option<u64>,
}

impl SlotReport {
    fn of(name: &str, slot: Option<SlotPosition>, wal: Lsn) -> Self {
        match slot {
            Some(s) => SlotReport {
                name: s.name,
                exists: true,
                lag_bytes: s.confirmed_flush_lsn.map(|f| wal.0.saturating_sub(f.0)),
                confirmed_flush_lsn: s.confirmed_flush_lsn,
                wal_status: s.wal_status,
                active: s.active,
                wal_lsn: Some(wal),
            },
            None => SlotReport {
                name: name.to_owned(),
                exists: false,
                confirmed_flush_lsn: None,
                wal_status: None,
                active: false,
                wal_lsn: Some(wal),
                lag_bytes: None,
            },
        }
    }
}

/// The Debezium connector in a [`StatusReport`], from Kafka Connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConnectorReport {
    /// The connector's name.
    pub name: String,
    /// The Kafka Connect URL.
    pub url: String,
    /// Whether Kafka Connect knows it.
    pub exists: bool,
    /// The connector's state (`RUNNING`, `PAUSED`, `STOPPED`, `FAILED`, `UNASSIGNED`).
    pub state: Option<String>,
    /// Its tasks.
    pub tasks: Vec<TaskReport>,
    /// The processed position: the highest `lsn_proc` of its stored offsets.
    pub lsn_proc: Option<Lsn>,
    /// The highest `lsn_commit` of its stored offsets.
    pub lsn_commit: Option<Lsn>,
    /// What could not be read.
    pub error: Option<String>,
}

impl ConnectorReport {
    /// Why the connector cannot carry changes, if it cannot.
    fn failure(&self) -> Option<String> {
        if !self.exists {
            return Some(format!(
                "connector {:?} does not exist at {}: no changes reach Kafka",
                self.name, self.url
            ));
        }
        if self.state.as_deref() == Some("FAILED") {
            return Some(format!("connector {:?} is FAILED", self.name));
        }
        self.tasks.iter().find(|t| t.state == "FAILED").map(|t| {
            format!(
                "connector {:?}: task {} is FAILED{}",
                self.name,
                t.id,
                t.trace.as_deref().map(|s| format!(" ({s})")).unwrap_or_default()
            )
        })
    }
}

/// One task of a [`ConnectorReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskReport {
    /// The task id.
    pub id: i64,
    /// Its state.
    pub state: String,
    /// The first line of its error trace, when it failed.
    pub trace: Option<String>,
}

/// The cutover rule's (b) in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CutoverCheck {
    /// T.
    pub lsn: Lsn,
    /// Whether the job read T itself ([`Cutover::TakeNow`]).
    pub taken: bool,
    /// The connector's position compared with T.
    pub position: Option<Lsn>,
    /// Where it comes from: `connector` (Kafka Connect's `lsn_proc`) or `slot`
    /// (`confirmed_flush_lsn`); `None` when neither is known.
    pub position_from: Option<&'static str>,
    /// `position ≥ T`.
    pub reached: bool,
    /// Why not.
    pub reason: Option<String>,
}

impl CutoverCheck {
    fn new(
        lsn: Lsn,
        taken: bool,
        slot: Option<&SlotReport>,
        connector: Option<&ConnectorReport>,
        connect_given: bool,
    ) -> Self {
        let (position, from) = match (connector.and_then(|c| c.lsn_proc), slot) {
            (Some(p), _) => (Some(p), Some("connector")),
            (None, Some(s)) if s.confirmed_flush_lsn.is_some() => {
                (s.confirmed_flush_lsn, Some("slot"))
            }
            _ => (None, None),
        };
        let reached = position.is_some_and(|p| p >= lsn);
        const QUIET: &str = "on a quiet database it may stay behind forever unless Debezium \
                             emits heartbeats (heartbeat.interval.ms with heartbeat.action.query)";
        let reason = match (reached, position, from) {
            (true, _, _) => None,
            (false, Some(p), Some("connector")) => Some(format!(
                "the connector's processed position (lsn_proc {p}) has not reached the cutover \
                 LSN {lsn}; {QUIET}"
            )),
            (false, Some(p), _) => Some(format!(
                "the slot's confirmed_flush_lsn {p} has not reached the cutover LSN {lsn}; \
                 {QUIET}{}",
                if connect_given {
                    ""
                } else {
                    "; with Kafka Connect the connector's processed position (lsn_proc) is \
                     used instead"
                }
            )),
            (false, None, _) => Some(format!(
                "nothing tells whether the connector has reached the cutover LSN {lsn}: {}",
                match slot {
                    Some(s) if !s.exists => format!("slot {:?} does not exist, and ", s.name),
                    _ => String::new(),
                } + if connect_given {
                    "Kafka Connect lists no lsn_proc for the connector"
                } else {
                    "no slot is known (name the connector's slot) and no Kafka Connect is given"
                }
            )),
        };
        CutoverCheck { lsn, taken, position, position_from: from, reached, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(lsn: Option<u64>) -> SlotReport {
        SlotReport {
            name: "s".into(),
            exists: true,
            confirmed_flush_lsn: lsn.map(Lsn),
            wal_status: Some("reserved".into()),
            active: true,
            wal_lsn: Some(Lsn(100)),
            lag_bytes: lsn.map(|l| 100 - l),
        }
    }

    /// A report with one lagging table.
    fn example() -> StatusReport {
        StatusReport {
            report_version: REPORT_VERSION,
            state: "/data/handoff".into(),
            checked_at: "2025-01-01T00:00:00.000Z".into(),
            database: "sales".into(),
            brokers: "kafka1:9092".into(),
            tables: vec![StatusTable {
                source: "public.orders".into(),
                target: "orders".into(),
                topic: "pg.public.orders".into(),
                routine_load: RoutineLoadReport {
                    name: "pgsnap_orders".into(),
                    id: Some("10001".into()),
                    state: Some("RUNNING".into()),
                    reason: None,
                    partitions: vec![PartitionReport {
                        partition: 0,
                        high_watermark: Some(44),
                        consumed: Some(41),
                        next: Some(42),
                        lag: Some(2),
                        caught_up: false,
                        gap: false,
                    }],
                    rows_loaded: 40,
                    rows_filtered: 0,
                    rows_unselected: 0,
                },
                verdict: StatusVerdict::Lagging,
                remedy: None,
                error_urls: Vec::new(),
                reasons: vec!["partition 0: 2 offset(s) to consume".into()],
                warnings: Vec::new(),
            }],
            slot: Some(slot(Some(7))),
            connector: None,
            cutover_lsn: None,
            cutover: None,
            caught_up_for_cutover: false,
            verdict: StatusVerdict::Lagging,
            reasons: vec!["public.orders: partition 0: 2 offset(s) to consume".into()],
            warnings: Vec::new(),
            metrics_addr: None,
        }
    }

    /// The metrics of a check are the numbers of its JSON report.
    #[cfg(feature = "metrics")]
    #[test]
    fn the_metrics_are_the_reports_numbers() {
        let report = example();
        let json = serde_json::to_value(&report).unwrap();
        assert!(json.get("metrics_addr").is_none(), "only when served");
        assert_eq!(
            (&json["slot"]["lag_bytes"], &json["slot"]["wal_lsn"]),
            (&json!(93), &json!("0/64"))
        );
        let m = crate::metrics::Metrics::new();
        observe(&m, &report);
        let text = m.encode();
        let p = r#"table="public.orders",topic="pg.public.orders",partition="0""#;
        for line in [
            format!("pgsnap_kafka_high_watermark_offset{{{p}}} 44"),
            format!("pgsnap_routine_load_consumed_offset{{{p}}} 41"),
            format!("pgsnap_routine_load_lag_offsets{{{p}}} 2"),
            r#"pgsnap_routine_load_state{table="public.orders",routine_load="pgsnap_orders",state="RUNNING"} 1"#.into(),
            r#"pgsnap_routine_load_state{table="public.orders",routine_load="pgsnap_orders",state="PAUSED"} 0"#.into(),
            r#"pgsnap_routine_load_loaded_rows_total{table="public.orders",routine_load="pgsnap_orders"} 40"#.into(),
            r#"pgsnap_table_verdict{table="public.orders",verdict="lagging"} 1"#.into(),
            r#"pgsnap_status_verdict{verdict="lagging"} 1"#.into(),
            r#"pgsnap_status_verdict{verdict="caught_up"} 0"#.into(),
            "pgsnap_caught_up_for_cutover 0".into(),
            r#"pgsnap_slot_lag_bytes{slot="s"} 93"#.into(),
            "pgsnap_status_checks_total 1".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn the_json_names_are_the_contract() {
        let report = example();
        let json = serde_json::to_value(&report).unwrap();
        let p = &json["tables"][0]["routine_load"]["partitions"][0];
        assert_eq!(
            (&p["partition"], &p["high_watermark"], &p["consumed"], &p["lag"], &p["caught_up"]),
            (&json!(0), &json!(44), &json!(41), &json!(2), &json!(false))
        );
        assert_eq!(json["tables"][0]["verdict"], "lagging");
        assert_eq!(json["slot"]["confirmed_flush_lsn"], "0/7");
        assert_eq!((&json["cutover_lsn"], &json["connector"]), (&Value::Null, &Value::Null));
        assert!(!report.caught_up_for_cutover());
        let summary = report.lag_summary();
        assert_eq!(summary["tables"][0]["lag"], 2);
        assert_eq!(summary["verdict"], "lagging");
    }

    #[test]
    fn the_cutover_position_comes_from_the_connector_else_the_slot() {
        let c = CutoverCheck::new(Lsn(100), false, Some(&slot(Some(100))), None, false);
        assert!(c.reached && c.position_from == Some("slot") && c.reason.is_none());
        let c = CutoverCheck::new(Lsn(100), true, Some(&slot(Some(99))), None, false);
        assert!(!c.reached);
        let r = c.reason.unwrap();
        assert!(r.contains("heartbeat") && r.contains("Kafka Connect"), "{r}");
        let connector = ConnectorReport {
            name: "c".into(),
            url: "http://connect:8083".into(),
            exists: true,
            state: Some("RUNNING".into()),
            tasks: Vec::new(),
            lsn_proc: Some(Lsn(101)),
            lsn_commit: Some(Lsn(90)),
            error: None,
        };
        let c = CutoverCheck::new(Lsn(100), false, Some(&slot(Some(1))), Some(&connector), true);
        assert!(c.reached && c.position_from == Some("connector"));
        let c = CutoverCheck::new(Lsn(100), false, None, None, false);
        assert!(!c.reached && c.reason.unwrap().contains("no slot is known"));
    }

    #[test]
    fn a_live_recorded_id_wins_then_the_newest_job_that_can_run() {
        let row = |id: &str, state: &str| {
            RoutineLoadInfo::from_columns(&[("Id", id), ("Name", "j"), ("State", state)]).unwrap()
        };
        let mut record = RoutineLoadRecord::new("j", "public.t", "t", "pg.public.t");
        let rows = || vec![row("1", "STOPPED"), row("2", "RUNNING"), row("3", "CANCELLED")];
        assert_eq!(pick_job(rows(), &record).unwrap().id, "2");
        // The recorded job was cancelled and replaced by hand: the replacement is watched.
        record.job_id = Some("3".into());
        assert_eq!(pick_job(rows(), &record).unwrap().id, "2");
        // Nothing can run: the recorded job, with its state.
        let dead = vec![row("1", "STOPPED"), row("3", "CANCELLED")];
        assert_eq!(pick_job(dead, &record).unwrap().id, "3");
        record.job_id = Some("2".into());
        assert_eq!(pick_job(rows(), &record).unwrap().id, "2");
        assert!(pick_job(Vec::new(), &record).is_none());
    }

    #[test]
    fn the_remedy_resets_to_the_recorded_offsets() {
        let mut record = RoutineLoadRecord::new("pgsnap_t", "public.t", "t", "pg.public.t");
        record.offsets.insert(0, 5);
        record.offsets.insert(1, 7);
        let info = RoutineLoadInfo::from_columns(&[
            ("Id", "1"),
            ("Name", "pgsnap_t"),
            ("State", "PAUSED"),
            ("Statistic", r#"{"errorRows":2}"#),
        ])
        .unwrap();
        let r = remedy("sales", &record, &info);
        assert!(r.contains("RESUME will not bring them back"), "{r}");
        assert!(
            r.contains(
                r#"ALTER ROUTINE LOAD FOR `sales`.`pgsnap_t` FROM KAFKA ("kafka_partitions" = "0,1", "kafka_offsets" = "5,7")"#
            ),
            "{r}"
        );
        assert!(r.contains("Primary Key") && r.contains("re-snapshot"), "{r}");
    }
}

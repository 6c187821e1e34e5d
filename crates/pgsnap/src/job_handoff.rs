//! The snapshot → CDC handoff job: a consistent snapshot (to files or loaded into StarRocks),
//! the exact Kafka offsets where the Debezium change log continues, the StarRocks Routine
//! Loads that start there, and the Debezium connector config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::{
    CheckpointStore, DataFormat, HandoffState, Lsn, ManifestStore, OffsetMap, OffsetResolver,
    PrepareContext, RoutineLoadRecord, RunStatus, Sink, SnapshotMode, TableName,
};
use pgsnap_kafka::connect::ConnectClient;
use pgsnap_kafka::render::routine_load::{RoutineLoadFile, routine_load_kafka};
use pgsnap_kafka::render::{
    ColumnMapping, DebeziumConfig, PgConnection, RenderedColumn, RoutineLoadSpec,
    render_debezium_config, render_routine_load,
};
use pgsnap_kafka::resolve::{ConnectorPosition, connector_position};
use pgsnap_kafka::resolver::{HandoffMode as ResolverMode, KafkaOffsetResolver};
use pgsnap_kafka::{KafkaClientConfig, topic_name};
use pgsnap_sink_file::{Compression, FileSinkBuilder};
use pgsnap_sink_starrocks::StarRocksSinkBuilder;
use pgsnap_sink_starrocks::mapping::KeyModel;
use pgsnap_sink_starrocks::parity::{
    CdcColumn, DebeziumEncoding, StarRocksVersion, caveats, cdc_columns,
};
use pgsnap_source::handoff::{HandoffPreflight, handoff_preflight_selected};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ConfigError, ErrorKind, JobError, Result};
use crate::job_migrate::{check_starrocks, table_loads, unverified_tables};
use crate::options::{RunControl, SnapshotOptions};
use crate::report::{Outcome, RunSummary};
use crate::routine_loads::{RoutineLoadJob, create_all, definition_hash, names_taken};
use crate::run::{self, Layout};

/// The default `database.password` of the rendered Debezium config: a Kafka Connect
/// config-provider placeholder, never the password itself.
pub const DEFAULT_PASSWORD_PLACEHOLDER: &str = "${file:/etc/pgsnap/pg.properties:password}";

/// How the Debezium change log relates to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandoffMode {
    /// pgsnap creates the publication and a permanent slot whose exported snapshot is
    /// copied; Debezium starts on that slot afterwards (exact, recommended). The answer is
    /// the topics' high watermarks read before anything else.
    SlotFirst,
    /// Debezium already streams from its own slot; the snapshot comes from a temporary slot
    /// and the answer, per partition, is the first event whose transaction the snapshot
    /// does not see.
    Running,
    /// Like `Running`, starting the search from the broker's time index at the snapshot
    /// time minus `skew`.
    Time {
        /// Clock skew margin.
        skew: Duration,
    },
}

impl HandoffMode {
    /// `slot-first`, `running` or `time`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffMode::SlotFirst => "slot-first",
            HandoffMode::Running => "running",
            HandoffMode::Time { .. } => "time",
        }
    }
}

/// The snapshot → CDC handoff.
///
/// Sequence: the handoff preflight (tables without a primary key, TOAST risk; refused when
/// [`strict`](Self::with_strict)); the topics' high watermarks (slot-first: before the slot
/// exists); the snapshot into files in `out`, or loaded into StarRocks
/// ([`with_starrocks`](Self::with_starrocks); `out` is then the run's state); the offsets;
/// in running/time mode with Kafka Connect, a wait until the connector has committed past
/// the snapshot's consistent point; the Routine Loads (mapped by the parity table of
/// [`pgsnap_sink_starrocks::parity`] for the StarRocks version and the connector's
/// encodings) and, in slot-first mode, the Debezium connector config, submitted to Kafka
/// Connect when a client is given.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), pgsnap::JobError> {
/// use pgsnap::starrocks::parity::StarRocksVersion;
/// use pgsnap::{Connection, HandoffJob, RunControl, SnapshotOptions};
///
/// let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"));
/// let report = HandoffJob::new(options, "/data/handoff", "kafka1:9092", "pg")
///     .with_starrocks_version(StarRocksVersion::new(3, 4, 2))
///     .run(&RunControl::new())
///     .await?;
/// for sql in &report.routine_load {
///     println!("{sql}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HandoffJob {
    options: SnapshotOptions,
    out: PathBuf,
    brokers: String,
    topic_prefix: String,
    mode: HandoffMode,
    format: DataFormat,
    compression: Compression,
    starrocks: Option<StarRocksSinkBuilder>,
    load_starrocks: bool,
    connect: Option<ConnectClient>,
    connector: Option<String>,
    connector_wait: Duration,
    password_placeholder: String,
    connector_name: Option<String>,
    database_hostname: Option<String>,
    strict: bool,
    starrocks_version: Option<StarRocksVersion>,
    debezium_config: Option<BTreeMap<String, String>>,
    kafka_config: KafkaClientConfig,
    create_routine_loads: bool,
    allow_no_deletes: bool,
}

impl HandoffJob {
    /// A slot-first handoff writing files into `out`, reading topics
    /// `<topic_prefix>.<schema>.<table>` on `brokers` (`host:port[,host:port...]`).
    pub fn new(
        options: SnapshotOptions,
        out: impl Into<PathBuf>,
        brokers: impl Into<String>,
        topic_prefix: impl Into<String>,
    ) -> Self {
        Self {
            options,
            out: out.into(),
            brokers: brokers.into(),
            topic_prefix: topic_prefix.into(),
            mode: HandoffMode::SlotFirst,
            format: DataFormat::Text,
            compression: Compression::None,
            starrocks: None,
            load_starrocks: false,
            connect: None,
            connector: None,
            connector_wait: Duration::from_secs(60),
            password_placeholder: DEFAULT_PASSWORD_PLACEHOLDER.into(),
            connector_name: None,
            database_hostname: None,
            strict: false,
            starrocks_version: None,
            debezium_config: None,
            kafka_config: KafkaClientConfig::new(),
            create_routine_loads: false,
            allow_no_deletes: false,
        }
    }

    /// How the change log relates to the snapshot. Default [`HandoffMode::SlotFirst`].
    pub fn with_mode(mut self, mode: HandoffMode) -> Self {
        self.mode = mode;
        self
    }

    /// The chunk files' format and compression (file output). Default COPY text,
    /// uncompressed.
    pub fn with_files(mut self, format: DataFormat, compression: Compression) -> Self {
        self.format = format;
        self.compression = compression;
        self
    }

    /// Loads the snapshot into StarRocks with `starrocks` instead of writing files (`out`
    /// keeps the run's state); its database is also the Routine Loads' (an empty one: the
    /// PostgreSQL database's name).
    pub fn with_starrocks(mut self, starrocks: StarRocksSinkBuilder) -> Self {
        self.starrocks = Some(starrocks);
        self.load_starrocks = true;
        self
    }

    /// Without loading StarRocks: the mapping (target names, column types, body format) and
    /// database the Routine Loads are rendered for (an empty one: the PostgreSQL database's
    /// name). Default: the default mapping into a database named like the PostgreSQL
    /// database.
    pub fn with_routine_load_target(mut self, starrocks: StarRocksSinkBuilder) -> Self {
        self.starrocks = Some(starrocks);
        self.load_starrocks = false;
        self
    }

    /// The StarRocks version to render for when StarRocks is not loaded (loading reads it
    /// from the FE). Without a version no Routine Load is rendered.
    pub fn with_starrocks_version(mut self, version: StarRocksVersion) -> Self {
        self.starrocks_version = Some(version);
        self
    }

    /// Running/time mode: the running connector's config (see
    /// [`parse_connector_config`](pgsnap_kafka::render::debezium::parse_connector_config)),
    /// to render the Routine Loads for its encodings.
    pub fn with_debezium_config(mut self, config: BTreeMap<String, String>) -> Self {
        self.debezium_config = Some(config);
        self
    }

    /// Kafka Connect (`http://` or `https://`; TLS roots and basic auth are the client's:
    /// [`ConnectClient::with_ca_file`], [`ConnectClient::with_basic_auth`]). Slot-first: the
    /// connector is submitted once the snapshot and the offsets are complete; before the
    /// snapshot the worker is asked once (`GET /`), and an untrusted certificate, refused
    /// credentials or a redirect refuse the run
    /// ([`JobError::Refused`](crate::JobError::Refused)), while a worker that does not answer
    /// is only a warning. Running/time with [`with_connector`](Self::with_connector): the
    /// running connector's config and committed position are read from it.
    pub fn with_connect(mut self, client: ConnectClient) -> Self {
        self.connect = Some(client);
        self
    }

    /// Running/time mode: the running connector's name.
    pub fn with_connector(mut self, name: impl Into<String>) -> Self {
        self.connector = Some(name.into());
        self
    }

    /// How long to wait for the running connector to commit past the snapshot's consistent
    /// point (polled every second). Default 60 s.
    pub fn with_connector_wait(mut self, wait: Duration) -> Self {
        self.connector_wait = wait;
        self
    }

    /// `database.password` of the rendered config: a config-provider placeholder.
    pub fn with_password_placeholder(mut self, placeholder: impl Into<String>) -> Self {
        self.password_placeholder = placeholder.into();
        self
    }

    /// The rendered connector's name (default `pgsnap-<db>-<snapshot time>`).
    pub fn with_connector_name(mut self, name: impl Into<String>) -> Self {
        self.connector_name = Some(name.into());
        self
    }

    /// `database.hostname` as Kafka Connect reaches PostgreSQL (default: the source's host).
    pub fn with_database_hostname(mut self, host: impl Into<String>) -> Self {
        self.database_hostname = Some(host.into());
        self
    }

    /// The librdkafka settings (TLS, SASL, ...) of every Kafka client the job opens (the
    /// watermark capture, the offset resolution), carried into the Routine Loads by
    /// [`KAFKA_PROPERTIES`](pgsnap_kafka::render::routine_load::KAFKA_PROPERTIES), secrets as
    /// placeholders. The report's `kafka_config` shows them, secrets as `"***"`. Default:
    /// none (plaintext). Checked before anything runs.
    pub fn with_kafka_config(mut self, config: KafkaClientConfig) -> Self {
        self.kafka_config = config;
        self
    }

    /// Creates the rendered Routine Loads through the FE once the snapshot is loaded and the
    /// offsets are resolved (needs [`with_starrocks`](Self::with_starrocks)), secrets
    /// substituted only in the text sent. The manifest's `handoff` records each job (name,
    /// definition hash, offsets, StarRocks' job id). A job name that StarRocks already knows
    /// is refused before the snapshot copies anything.
    ///
    /// Run again on the state of a complete handoff, the job copies nothing: it renders each
    /// job again, refuses a definition whose hash differs from the recorded one, reports the
    /// jobs it created as `already_there`, creates those still missing, and refuses (naming
    /// both) a job of that name it did not create or that was STOPPED/CANCELLED. Default off.
    pub fn with_create_routine_loads(mut self, create: bool) -> Self {
        self.create_routine_loads = create;
        self
    }

    /// Lets [`with_create_routine_loads`](Self::with_create_routine_loads) create jobs for
    /// Duplicate Key targets, which cannot apply deletes (a deleted row stays, an update adds
    /// a row). Default off: such tables are refused before the snapshot copies anything.
    pub fn with_allow_no_deletes(mut self, allow: bool) -> Self {
        self.allow_no_deletes = allow;
        self
    }

    /// Refuses what cannot be kept exact: tables without a primary key or at TOAST risk,
    /// columns no Routine Load carries exactly, connector settings that block, a running
    /// connector that does not pass the snapshot; and a run without a StarRocks version or
    /// the running connector's config.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    fn validate(&self) -> Result<()> {
        let running = self.mode != HandoffMode::SlotFirst;
        let mode = self.mode.as_str();
        let bad = |e: ConfigError| Err(JobError::Config(e));
        match (running, &self.connect, &self.connector) {
            (_, None, Some(_)) => return bad(ConfigError::ConnectorWithoutConnect),
            (false, Some(_), Some(_)) => return bad(ConfigError::ConnectorInSlotFirst),
            (true, Some(_), None) => return bad(ConfigError::ConnectWithoutConnector { mode }),
            _ => {}
        }
        if self.options.snapshot_mode != SnapshotMode::Slot {
            return bad(ConfigError::HandoffNeedsSlotMode(self.options.snapshot_mode));
        }
        self.options.validate().map_err(JobError::Config)?;
        if self.brokers.trim().is_empty() || self.topic_prefix.trim().is_empty() {
            return bad(ConfigError::EmptyKafka);
        }
        if let Err(e) = self.kafka_config.validate() {
            return bad(ConfigError::KafkaClient(e.to_string()));
        }
        if let Some(v) = self.starrocks_version {
            v.check_supported()
                .map_err(|e| JobError::Config(ConfigError::StarRocksVersion(e.to_string())))?;
        }
        if !running && self.debezium_config.is_some() {
            return bad(ConfigError::DebeziumConfigInSlotFirst);
        }
        if self.create_routine_loads && !self.load_starrocks {
            return bad(ConfigError::CreateRoutineLoadsWithoutStarRocks);
        }
        if self.strict && self.starrocks_version.is_none() && !self.load_starrocks {
            return bad(ConfigError::NoStarRocksVersion);
        }
        if self.strict
            && running
            && self.debezium_config.is_none()
            && !(self.connect.is_some() && self.connector.is_some())
        {
            return bad(ConfigError::UnknownEncodings { mode });
        }
        if running && self.options.slot.is_some() {
            return bad(ConfigError::SlotWhileRunning { mode });
        }
        Ok(())
    }

    /// Runs the handoff.
    ///
    /// # Errors
    /// Before the snapshot: invalid options; `out` not empty or in use; StarRocks, Kafka or
    /// PostgreSQL unreachable; preflight refusals under [`strict`](Self::with_strict);
    /// topics' watermarks unreadable. Failures during the snapshot, the offset resolution and
    /// the connector submission are in the report.
    pub async fn run(&self, control: &RunControl) -> Result<HandoffReport> {
        self.validate()?;
        let _metrics = control.serve_metrics().await?;
        // The whole sequence is a large future: boxed once here, not by every caller.
        let mut report = Box::pin(self.run_boxed(control)).await?;
        report.run.metrics_addr = control.metrics_addr();
        Ok(report)
    }

    async fn run_boxed(&self, control: &RunControl) -> Result<HandoffReport> {
        self.validate()?;
        let tgt = target(&self.options)?;
        let mut options = self.options.clone();
        if self.mode == HandoffMode::SlotFirst {
            let slot =
                options.slot.clone().unwrap_or_else(|| sanitize(&format!("pgsnap_{}", tgt.dbname)));
            options.publication.get_or_insert_with(|| slot.clone());
            options.slot = Some(slot);
        }
        let mapper = match self.starrocks.clone() {
            Some(b) if b.database().is_empty() => b.with_database(tgt.dbname.clone()),
            Some(b) => b,
            None => StarRocksSinkBuilder::new("", tgt.dbname.clone()),
        };

        // What the Routine Load rendering needs, checked before anything runs.
        let mut warnings: Vec<String> = Vec::new();
        let mut version = self.starrocks_version;
        if version.is_none() && !self.load_starrocks {
            warnings.push(
                "no StarRocks version is known, so no Routine Load is rendered (its properties \
                 depend on the version): give the version, or load StarRocks"
                    .into(),
            );
        }
        let mut encoding = match (self.mode, &self.debezium_config) {
            (HandoffMode::SlotFirst, _) => Some(DebeziumEncoding::pgsnap()),
            (_, Some(config)) => Some(DebeziumEncoding::from_connector_config(config)),
            (_, None) if self.connect.is_some() && self.connector.is_some() => None,
            (_, None) => {
                warnings.push(format!(
                    "mode {}: the running connector's encodings are unknown, so no Routine Load \
                     is rendered: give its config (a file, or Kafka Connect and its name)",
                    self.mode.as_str()
                ));
                None
            }
        };

        // The output directory must be usable before a snapshot (or a slot) is taken. With
        // StarRocks it is the run's state (locked for the run).
        let _lock = if self.load_starrocks { Some(run::lock_dir(&self.out)?) } else { None };
        let layout = if self.load_starrocks {
            Layout {
                format: DataFormat::Text,
                compression: "none".into(),
                sink: Some(mapper.identity()),
            }
        } else {
            Layout {
                format: self.format,
                compression: self.compression.as_str().to_owned(),
                sink: None,
            }
        };
        let store = ManifestStore::new(&self.out);
        // The state of a complete handoff, run again to create its Routine Loads: nothing is
        // copied again.
        let rerun = match self.create_routine_loads {
            true => match store.load().await? {
                Some(m) if m.handoff.is_some() && m.status == RunStatus::Ok => Some(m),
                _ => None,
            },
            false => None,
        };
        if rerun.is_none() {
            run::previous_run(&store, false, false, &options, &layout).await?;
        }
        let file_sink = if self.load_starrocks || rerun.is_some() {
            None
        } else {
            let sink = FileSinkBuilder::new(&self.out)
                .with_format(self.format)
                .with_compression(self.compression)
                .build()?;
            Some(Arc::new(sink))
        };
        if rerun.is_none() {
            run::remove_stale_manifest_temp_files(&self.out);
        }
        // StarRocks before any snapshot (or slot) is taken for a target we cannot load; the
        // Routine Load is rendered for the version the FE reports.
        if self.load_starrocks {
            let probe = control.guard(check_starrocks(&mapper)).await?;
            let read = control.guard(async { Ok(probe.server_version().await) }).await?;
            version = fe_version(read, version, &mut warnings)?;
        }
        // Running/time: the connector's own settings decide its encodings.
        if let (None, Some(client), Some(name)) = (&encoding, &self.connect, &self.connector) {
            match control.guard(async { Ok(client.connector_config(name).await) }).await? {
                Ok(Some(config)) => {
                    encoding = Some(DebeziumEncoding::from_connector_config(&config))
                }
                Ok(None) => {
                    return Err(refused(format!(
                        "connector {name:?} does not exist at {}",
                        client.url()
                    )));
                }
                Err(e) => {
                    return Err(refused(format!("reading connector {name:?}'s config: {e}")));
                }
            }
        }
        // Slot-first: the connector is submitted after the snapshot, but a certificate,
        // credentials or a URL the worker refuses will not fix themselves: refused now,
        // before any slot is taken. A worker that is only unreachable is a warning.
        if let (HandoffMode::SlotFirst, Some(client)) = (self.mode, &self.connect) {
            use pgsnap_kafka::Error as K;
            match control.guard(async { Ok(client.worker_version().await) }).await? {
                Ok(version) => {
                    tracing::info!(url = client.url(), version = ?version, "Kafka Connect answers");
                }
                Err(
                    e @ (K::ConnectTls { .. } | K::ConnectAuth { .. } | K::ConnectRedirect { .. }),
                ) => {
                    return Err(refused(format!(
                        "checking Kafka Connect before the snapshot: {e}"
                    )));
                }
                Err(e) => warnings.push(format!(
                    "Kafka Connect did not answer before the snapshot ({e}); the connector is \
                     submitted after it"
                )),
            }
        }
        if let Some(e) = &encoding {
            warnings.extend(e.warnings.iter().map(|w| format!("Debezium connector: {w}")));
            if !e.blockers.is_empty() && self.strict {
                return Err(refused_strict(format!(
                    "the Debezium connector config cannot be mapped exactly: {}",
                    e.blockers.join("; ")
                )));
            }
        }

        if let Some(manifest) = rerun {
            return self.rerun(manifest, &mapper, version, encoding.as_ref(), warnings).await;
        }

        // Preflight: keys, replica identity, TOAST risk of the tables the snapshot selects.
        let preflight = control
            .guard(async {
                Ok(handoff_preflight_selected(
                    options.connection.clone(),
                    &options.include,
                    &options.exclude,
                )
                .await?)
            })
            .await?;
        for t in &preflight.tables {
            for problem in &t.problems {
                warnings.push(format!("{}: {problem}", t.table));
            }
        }
        if self.strict {
            let errors = preflight.strict_errors();
            if !errors.is_empty() {
                return Err(refused_strict(format!(
                    "{} table(s) cannot be handed off exactly:\n  {}",
                    preflight.tables.iter().filter(|t| !t.is_exact()).count(),
                    errors.join("\n  ")
                )));
            }
        }
        let topics: Vec<String> = preflight
            .tables
            .iter()
            .map(|t| topic_name(&self.topic_prefix, &t.table.schema, &t.table.name))
            .collect();

        // Slot-first: the high watermarks before anything else (before the slot exists, so
        // before any connector could write post-snapshot records). Other modes: which topics
        // exist (a missing one cannot be resolved).
        let captured = control
            .guard(async {
                KafkaOffsetResolver::capture_high_watermarks_with(
                    &self.brokers,
                    &topics,
                    &self.kafka_config,
                )
                .await
                .map_err(|e| JobError::Kafka {
                    context: "reading the topics' high watermarks".into(),
                    message: e.to_string(),
                    kind: ErrorKind::of_core(&e.into()),
                })
            })
            .await?;
        let existing: Vec<String> =
            topics.iter().filter(|t| captured.0.contains_key(*t)).cloned().collect();
        for t in topics.iter().filter(|t| !captured.0.contains_key(*t)) {
            warnings.push(match self.mode {
                HandoffMode::SlotFirst => format!(
                    "topic {t} does not exist yet: every partition starts at offset 0, but the number of partitions is unknown, so no Routine Load is rendered for it; create the topic before starting the connector and rerun, or write the job by hand with offset 0 on every partition"
                ),
                _ => format!("topic {t} does not exist: no offsets can be resolved for it"),
            });
        }

        // The snapshot.
        let opened = run::open_run_cancellable(&options, None, false, &layout, control).await?;
        let sr_sink = if self.load_starrocks {
            match mapper.clone().with_run_id(opened.manifest.run_id.clone()).build() {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    run::abandon(&options, &opened).await;
                    return Err(e.into());
                }
            }
        } else {
            None
        };
        // StarRocks: the tables prepared now (the coordinator's own preparation finds them
        // ready), so the Routine Load is mapped against the tables the snapshot loads.
        if let Some(s) = &sr_sink {
            let schemas: Vec<_> = opened.manifest.tables.iter().map(|t| t.schema.clone()).collect();
            let ctx = PrepareContext::new(&schemas, &opened.manifest.run_id, false);
            if let Err(e) = control.guard(async { Ok(s.prepare(&ctx).await?) }).await {
                run::abandon(&options, &opened).await;
                return Err(e);
            }
        }
        // The parity table per table, before any row is copied.
        let cdc = cdc_plans(
            &opened.manifest,
            sr_sink.as_deref(),
            &mapper,
            encoding.as_ref(),
            &mut warnings,
        );
        if self.strict && encoding.is_some() {
            let refused: Vec<String> = cdc
                .iter()
                .filter_map(|(name, p)| p.columns.as_ref().err().map(|e| format!("{name}: {e}")))
                .collect();
            if !refused.is_empty() {
                run::abandon(&options, &opened).await;
                return Err(refused_strict(format!(
                    "no exact Routine Load for:\n  {}",
                    refused.join("\n  ")
                )));
            }
        }
        // Routine Loads to create: Duplicate Key targets refused (they cannot apply deletes),
        // and every job name must be free, before any row is copied.
        if let (true, Some(s)) = (self.create_routine_loads, &sr_sink) {
            let duplicate: Vec<String> = cdc
                .iter()
                .filter(|(_, p)| p.key_model == KeyModel::Duplicate)
                .map(|(name, p)| format!("{name} -> {}", p.table))
                .collect();
            if !duplicate.is_empty() && !self.allow_no_deletes {
                run::abandon(&options, &opened).await;
                return Err(refused(format!(
                    "Duplicate Key targets cannot apply deletes (a deleted row stays, an update \
                     adds a row), so no Routine Load is created for them: {}; give the tables a \
                     primary key, or allow it (HandoffJob::with_allow_no_deletes)",
                    duplicate.join(", ")
                )));
            }
            if !duplicate.is_empty() {
                warnings.push(format!(
                    "Routine Loads into Duplicate Key targets apply no deletes and append updates \
                     as new rows: {}",
                    duplicate.join(", ")
                ));
            }
            if let Ok(k) = routine_load_kafka(&self.kafka_config, mapper.database())
                && !k.files.is_empty()
            {
                run::abandon(&options, &opened).await;
                let names: Vec<&str> = k.files.iter().map(|f| f.setting.as_str()).collect();
                return Err(refused(format!(
                    "the Routine Loads name certificate files ({}) as FILE:<name>, which \
                     StarRocks must hold before a job naming them is created; pgsnap does not \
                     run CREATE FILE (it needs a URL the FE can fetch): run the handoff \
                     without creating the jobs, register the files (routine_load_files), then \
                     create the jobs from the report",
                    names.join(", ")
                )));
            }
            let planned: Vec<RoutineLoadRecord> = cdc
                .iter()
                .map(|(name, p)| {
                    let topic = topic_name(&self.topic_prefix, &name.schema, &name.name);
                    RoutineLoadRecord::new(job_name(&p.table), source_name(name), &p.table, topic)
                })
                .collect();
            match control.guard(async { Ok(names_taken(s, &planned).await) }).await {
                Ok(Ok(taken)) if taken.is_empty() => {}
                Ok(Ok(taken)) => {
                    run::abandon(&options, &opened).await;
                    return Err(refused(taken.join("\n  ")));
                }
                Ok(Err(e)) => {
                    run::abandon(&options, &opened).await;
                    return Err(refused(format!("reading the Routine Loads of StarRocks: {e}")));
                }
                Err(e) => {
                    run::abandon(&options, &opened).await;
                    return Err(e);
                }
            }
        }
        let sink: Arc<dyn Sink> = match (&sr_sink, file_sink) {
            (Some(s), _) => Arc::clone(s) as Arc<dyn Sink>,
            (None, Some(f)) => f,
            (None, None) => unreachable!("a file sink is built without StarRocks"),
        };
        #[cfg(feature = "metrics")]
        if let (Some(m), Some(s)) = (control.metrics(), &sr_sink) {
            m.set_targets(
                opened
                    .manifest
                    .tables
                    .iter()
                    .map(|t| (t.schema.name.clone(), s.target_name(&t.schema.name))),
            );
        }
        let report = match run::drive(&options, control, &opened, sink, Arc::new(store)).await {
            Ok(r) => r,
            Err(e) => {
                run::abandon(&options, &opened).await;
                return Err(e);
            }
        };
        warnings.extend(opened.source.warnings().iter().cloned());
        let manifest = report.manifest;
        let unverified = if sr_sink.is_some() { unverified_tables(&manifest) } else { Vec::new() };
        warnings.extend(unverified.iter().cloned());
        let loads = match &sr_sink {
            Some(s) => table_loads(s, &manifest, &BTreeMap::new(), &mut warnings),
            None => BTreeMap::new(),
        };
        let snapshot_ok = report.fatal.is_none() && manifest.status == RunStatus::Ok;

        // The offsets.
        let mut fatal = report.fatal;
        let mut offsets = OffsetMap::default();
        if snapshot_ok && !existing.is_empty() {
            let mode = match self.mode {
                HandoffMode::SlotFirst => ResolverMode::SlotFirst { recorded: captured },
                HandoffMode::Running => ResolverMode::Running,
                HandoffMode::Time { skew } => ResolverMode::Time { skew },
            };
            let resolver = KafkaOffsetResolver::new(self.brokers.clone(), mode)
                .with_client_config(self.kafka_config.clone());
            match control
                .guard(async { Ok(resolver.resolve(&manifest.snapshot, &existing).await) })
                .await
            {
                Ok(Ok(o)) => offsets = o,
                Ok(Err(e)) => fatal = Some(e),
                Err(_) => fatal = Some(pgsnap_core::Error::cancelled()),
            }
            if let Some(r) = resolver.last_resolution() {
                warnings.extend(r.partitions.iter().flat_map(|p| p.warnings.iter().cloned()));
            }
        } else if !snapshot_ok {
            warnings.push("the snapshot is incomplete: no offsets resolved".into());
        }
        // Running/time: the answer is final only once the connector has committed past C.
        let mut connect_report = Value::Null;
        let mut not_passed = false;
        if self.mode != HandoffMode::SlotFirst {
            match (&self.connect, &self.connector) {
                (Some(client), Some(name)) if snapshot_ok && fatal.is_none() => {
                    let (report, warning) = wait_for_connector(
                        client,
                        name,
                        manifest.snapshot.lsn,
                        self.connector_wait,
                        control,
                    )
                    .await;
                    connect_report = report;
                    if let Some(w) = warning {
                        not_passed = true;
                        warnings.push(w);
                    }
                }
                (Some(client), Some(name)) => {
                    connect_report = json!({ "url": client.url(), "connector": name, "passed": false, "error": "the snapshot or the offsets are incomplete" });
                }
                _ => warnings.push(format!(
                    "mode {}: the connector's committed position was not checked against the snapshot's consistent point {} (give Kafka Connect and the connector to check it); unless the connector has passed it, the answer may replay events already in the snapshot",
                    self.mode.as_str(),
                    manifest.snapshot.lsn.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
                )),
            }
        }

        // Routine Load per table, and the Debezium config.
        let brokers: Vec<String> = broker_list(&self.brokers);
        let mut routine_load = Vec::new();
        let mut records = Vec::new();
        let mut tables = BTreeMap::new();
        for t in &manifest.tables {
            let (schema, name) = (&t.schema.name.schema, &t.schema.name.name);
            let topic = topic_name(&self.topic_prefix, schema, name);
            let Some(plan) = cdc.get(&t.schema.name) else { continue };
            let mut entry = HandoffTable {
                topic: topic.clone(),
                starrocks_table: plan.table.clone(),
                routine_load_columns: None,
                load: loads.get(&t.schema.name).cloned(),
            };
            let rendered = match (offsets.0.get(&topic), &encoding, version) {
                (Some(parts), Some(e), Some(v)) => Some(self.render(
                    &t.schema.name,
                    plan,
                    &topic,
                    parts,
                    e,
                    v,
                    &brokers,
                    mapper.database(),
                )),
                _ => None,
            };
            match rendered {
                Some(Ok((sql, columns, w))) => {
                    warnings.extend(w);
                    entry.routine_load_columns = Some(columns);
                    let mut record = RoutineLoadRecord::new(
                        job_name(&plan.table),
                        source_name(&t.schema.name),
                        &plan.table,
                        &topic,
                    );
                    record.offsets = offsets.0.get(&topic).cloned().unwrap_or_default();
                    record.definition_hash = definition_hash(&sql);
                    record.definition = sql.clone();
                    records.push(record);
                    routine_load.push(sql);
                }
                Some(Err(w)) => warnings.push(w),
                None => {}
            }
            tables.insert(t.schema.name.clone(), entry);
        }
        // The Kafka client settings of the Routine Loads: the same for every table, so their
        // files, placeholders and warnings are reported once.
        let mut routine_load_files = Vec::new();
        let mut routine_load_placeholders = BTreeMap::new();
        if !routine_load.is_empty()
            && let Ok(k) = routine_load_kafka(&self.kafka_config, mapper.database())
        {
            warnings.extend(k.warnings);
            routine_load_files = k.files;
            routine_load_placeholders = k.placeholders;
        }
        if let Some(v) =
            version.filter(|v| !routine_load.is_empty() && !v.accepts_pause_on_fatal_parse_error())
        {
            warnings.push(format!(
                "StarRocks {v} has no pause_on_fatal_parse_error (3.3.12+, 3.4.2+): a message that \
                 is not JSON stops a job's progress instead of pausing it (watch SHOW ROUTINE LOAD)"
            ));
        }
        let debezium = if self.mode == HandoffMode::SlotFirst {
            self.debezium_config(&options, &tgt, &manifest, &mut warnings)
        } else {
            Value::Null
        };

        // The handoff's state: recorded in the manifest (what `status` and a rerun read), and
        // the Routine Loads created when asked.
        let mut manifest = manifest;
        let mut routine_load_jobs: Vec<RoutineLoadJob> =
            records.iter().map(RoutineLoadJob::rendered).collect();
        let mut jobs_failed = false;
        if snapshot_ok && fatal.is_none() {
            let mut state = HandoffState::new(self.brokers.clone(), mapper.database());
            state.topics = topics.clone();
            state.connector = match self.mode {
                HandoffMode::SlotFirst => debezium["name"].as_str().map(str::to_owned),
                _ => self.connector.clone(),
            };
            state.routine_loads = records;
            let store = ManifestStore::new(&self.out);
            if self.create_routine_loads {
                // Every table must continue with CDC: a table without a job would be silently
                // left behind.
                for t in &manifest.tables {
                    let source = source_name(&t.schema.name);
                    if !state.routine_loads.iter().any(|r| r.source == source) {
                        jobs_failed = true;
                        warnings.push(format!(
                            "{source}: no Routine Load was rendered, so none is created and no \
                             change after the snapshot reaches its StarRocks table (see the \
                             warnings above for why)"
                        ));
                    }
                }
            }
            let create = match (self.create_routine_loads, &sr_sink) {
                (true, Some(_)) if not_passed => {
                    jobs_failed = true;
                    warnings.push(
                        "no Routine Load was created: the connector has not passed the \
                         snapshot's consistent point, so the offsets may not be final; rerun \
                         with the same options once it has"
                            .into(),
                    );
                    None
                }
                (true, Some(s)) => Some(s),
                _ => None,
            };
            if let Some(s) = create {
                // Recorded first (no job ids yet): a crash between the CREATEs and the final
                // save leaves a state a rerun can compare with.
                manifest.handoff = Some(state.clone());
                if let Err(e) = store.save(&manifest).await {
                    warnings.push(format!("recording the handoff before creating its jobs: {e}"));
                }
                let secrets = crate::routine_loads::secrets(&self.kafka_config, mapper.database());
                routine_load_jobs = create_all(s, &mut state, &secrets).await;
                for j in routine_load_jobs.iter().filter(|j| j.error.is_some()) {
                    jobs_failed = true;
                    warnings.push(format!(
                        "Routine Load {} not created: {}",
                        j.name,
                        j.error.as_deref().unwrap_or_default()
                    ));
                }
            }
            manifest.handoff = Some(state);
            if let Err(e) = store.save(&manifest).await {
                jobs_failed |= self.create_routine_loads;
                warnings.push(format!(
                    "the handoff's state (its Routine Loads and their job ids) was not recorded \
                     in the manifest: {e}"
                ));
            }
        } else if self.create_routine_loads {
            warnings.push(
                "the snapshot or the offsets are incomplete: no Routine Load was created".into(),
            );
        }

        // Submit the connector only after a complete snapshot with its offsets: it starts
        // streaming from the slot at once.
        let mut connect_failed = false;
        if let (Some(client), HandoffMode::SlotFirst) = (&self.connect, self.mode) {
            if fatal.is_none() && snapshot_ok && !debezium.is_null() {
                match client.submit(&debezium).await {
                    Ok(c) => {
                        tracing::info!(connector = %c.name, url = client.url(), "connector submitted");
                        connect_report = json!({ "url": client.url(), "submitted": true, "name": c.name, "http_status": c.status });
                    }
                    Err(e) => {
                        connect_failed = true;
                        warnings.push(format!("the connector was not submitted: {e}"));
                        connect_report = json!({ "url": client.url(), "submitted": false, "error": e.to_string() });
                    }
                }
            } else {
                connect_report = json!({ "url": client.url(), "submitted": false, "error": "the snapshot or the offsets are incomplete" });
            }
        }

        Ok(HandoffReport {
            run: RunSummary::new(manifest, report.elapsed, fatal, warnings, unverified.is_empty()),
            out: self.out.clone(),
            mode: self.mode,
            topics,
            offsets,
            routine_load,
            starrocks_version: version.map(|v| v.to_string()),
            debezium,
            preflight,
            connect: connect_report,
            kafka_config: self.kafka_config.redacted(),
            routine_load_files,
            routine_load_placeholders,
            routine_load_jobs,
            tables,
            refused: connect_failed || (not_passed && self.strict),
            jobs_failed,
        })
    }

    /// Run again on the state of a complete handoff (`manifest`) with
    /// [`with_create_routine_loads`](Self::with_create_routine_loads): renders each recorded
    /// job again for the tables StarRocks holds, refuses a definition other than the recorded
    /// one, then creates what is missing ([`create_all`]). Copies nothing.
    async fn rerun(
        &self,
        mut manifest: pgsnap_core::Manifest,
        mapper: &StarRocksSinkBuilder,
        version: Option<StarRocksVersion>,
        encoding: Option<&DebeziumEncoding>,
        mut warnings: Vec<String>,
    ) -> Result<HandoffReport> {
        let started = std::time::Instant::now();
        let Some(mut state) = manifest.handoff.take() else {
            unreachable!("a rerun is only chosen for a manifest with a handoff")
        };
        if state.database != mapper.database() {
            return Err(refused(format!(
                "the handoff in {} recorded its Routine Loads in StarRocks database {:?}; this \
                 run names {:?}",
                self.out.display(),
                state.database,
                mapper.database()
            )));
        }
        let (Some(encoding), Some(version)) = (encoding, version) else {
            return Err(refused(
                "the Routine Loads cannot be rendered again to compare them with the recorded \
                 ones: the StarRocks version or the connector's encodings are unknown",
            ));
        };
        // The tables as the first run left them (rows and all).
        let sink = mapper
            .clone()
            .with_run_id(manifest.run_id.clone())
            .with_allow_existing_rows(true)
            .with_create_tables(false)
            .build()?;
        let schemas: Vec<_> = manifest.tables.iter().map(|t| t.schema.clone()).collect();
        let ctx = PrepareContext::new(&schemas, &manifest.run_id, false);
        sink.prepare(&ctx).await.map_err(|e| {
            refused(format!("the StarRocks tables of the handoff cannot be read again: {e}"))
        })?;
        let cdc = cdc_plans(&manifest, Some(&sink), mapper, Some(encoding), &mut warnings);
        let brokers: Vec<String> = broker_list(&self.brokers);
        let mut differ = Vec::new();
        let mut tables = BTreeMap::new();
        for r in &state.routine_loads {
            let Some(t) = manifest.tables.iter().find(|t| source_name(&t.schema.name) == r.source)
            else {
                differ.push(format!("{}: table {} is not in the manifest", r.name, r.source));
                continue;
            };
            let name = &t.schema.name;
            let Some(plan) = cdc.get(name) else { continue };
            match self.render(
                name,
                plan,
                &r.topic,
                &r.offsets,
                encoding,
                version,
                &brokers,
                mapper.database(),
            ) {
                Ok((sql, columns, w)) => {
                    warnings.extend(w);
                    let hash = definition_hash(&sql);
                    if hash != r.definition_hash {
                        differ.push(format!(
                            "{}: this run renders definition {hash}, the handoff recorded {} \
                             (other options than the handoff's: table mapping, column types, \
                             brokers, Kafka settings, StarRocks version?)",
                            r.name, r.definition_hash
                        ));
                    }
                    tables.insert(
                        name.clone(),
                        HandoffTable {
                            topic: r.topic.clone(),
                            starrocks_table: plan.table.clone(),
                            routine_load_columns: Some(columns),
                            load: None,
                        },
                    );
                }
                Err(w) => differ.push(w),
            }
        }
        if !differ.is_empty() {
            return Err(refused(format!(
                "the Routine Loads of the handoff in {} cannot be created as recorded:\n  {}",
                self.out.display(),
                differ.join("\n  ")
            )));
        }
        let secrets = crate::routine_loads::secrets(&self.kafka_config, mapper.database());
        let routine_load_jobs = create_all(&sink, &mut state, &secrets).await;
        let mut jobs_failed = false;
        for j in routine_load_jobs.iter().filter(|j| j.error.is_some()) {
            jobs_failed = true;
            warnings.push(format!(
                "Routine Load {} not created: {}",
                j.name,
                j.error.as_deref().unwrap_or_default()
            ));
        }
        let mut offsets = OffsetMap::default();
        for r in &state.routine_loads {
            for (p, o) in &r.offsets {
                offsets.insert(r.topic.clone(), *p, *o);
            }
        }
        let routine_load = state.routine_loads.iter().map(|r| r.definition.clone()).collect();
        let topics = state.topics.clone();
        let (files, placeholders) = match routine_load_kafka(&self.kafka_config, mapper.database())
        {
            Ok(k) => (k.files, k.placeholders),
            Err(_) => Default::default(),
        };
        manifest.handoff = Some(state);
        ManifestStore::new(&self.out).save(&manifest).await?;
        Ok(HandoffReport {
            run: RunSummary::new(manifest, started.elapsed(), None, warnings, true),
            out: self.out.clone(),
            mode: self.mode,
            topics,
            offsets,
            routine_load,
            starrocks_version: Some(version.to_string()),
            debezium: Value::Null,
            preflight: HandoffPreflight::default(),
            connect: Value::Null,
            kafka_config: self.kafka_config.redacted(),
            routine_load_files: files,
            routine_load_placeholders: placeholders,
            routine_load_jobs,
            tables,
            refused: false,
            jobs_failed,
        })
    }

    /// One table's Routine Load: the statement, where each column comes from, warnings; or
    /// why none is rendered.
    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        name: &TableName,
        plan: &CdcPlan,
        topic: &str,
        parts: &BTreeMap<i32, i64>,
        encoding: &DebeziumEncoding,
        version: StarRocksVersion,
        brokers: &[String],
        database: &str,
    ) -> std::result::Result<Rendered, String> {
        let columns =
            plan.columns.as_ref().map_err(|r| format!("{name}: no Routine Load rendered: {r}"))?;
        let mappings: Vec<ColumnMapping> = columns.iter().map(column_mapping).collect();
        let keys: Vec<String> =
            columns.iter().filter(|c| c.key).map(|c| c.column.clone()).collect();
        let spec = RoutineLoadSpec::new(
            database,
            &plan.table,
            job_name(&plan.table),
            topic,
            brokers.to_vec(),
            mappings,
            keys,
            parts.clone(),
        )
        .with_primary_key_table(plan.key_model == KeyModel::Primary)
        .with_schemas_enabled(encoding.schemas_enabled)
        .with_pause_on_fatal_parse_error(version.accepts_pause_on_fatal_parse_error())
        .with_kafka_config(self.kafka_config.clone());
        let r = render_routine_load(&spec)
            .map_err(|e| format!("{name}: no Routine Load rendered: {e}"))?;
        let warnings = r.warnings.iter().map(|w| format!("{name}: {w}")).collect();
        Ok((r.sql, r.columns, warnings))
    }

    /// The Kafka Connect payload for Debezium on the slot this run created.
    fn debezium_config(
        &self,
        options: &SnapshotOptions,
        tgt: &Target,
        manifest: &pgsnap_core::Manifest,
        warnings: &mut Vec<String>,
    ) -> Value {
        let (Some(slot), Some(publication)) = (&options.slot, &options.publication) else {
            return Value::Null;
        };
        let host = match (&self.database_hostname, &tgt.host) {
            (Some(h), _) | (None, Some(h)) => h.clone(),
            (None, None) => {
                warnings.push(
                    "the source connects over a Unix socket: give the host Kafka Connect reaches PostgreSQL at (database.hostname is \"localhost\")"
                        .into(),
                );
                "localhost".into()
            }
        };
        let stamp: String =
            manifest.snapshot.taken_at.chars().filter(char::is_ascii_digit).take(14).collect();
        let cfg = DebeziumConfig {
            name: self
                .connector_name
                .clone()
                .unwrap_or_else(|| format!("pgsnap-{}-{stamp}", sanitize(&tgt.dbname))),
            topic_prefix: self.topic_prefix.clone(),
            database: PgConnection {
                host,
                port: tgt.port,
                dbname: tgt.dbname.clone(),
                user: tgt.user.clone(),
            },
            password_placeholder: self.password_placeholder.clone(),
            slot: slot.clone(),
            publication: publication.clone(),
            tables: manifest
                .tables
                .iter()
                .map(|t| (t.schema.name.schema.clone(), t.schema.name.name.clone()))
                .collect(),
            properties: DebeziumEncoding::pgsnap()
                .connector_properties()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        match render_debezium_config(&cfg) {
            Ok(v) => v,
            Err(e) => {
                warnings.push(format!("no Debezium config rendered: {e}"));
                Value::Null
            }
        }
    }
}

/// The StarRocks version to render for, from what the FE answered to `current_version()`
/// (`given`: the caller's, if any; a difference is a warning, the FE wins).
fn fe_version(
    read: std::result::Result<String, pgsnap_sink_starrocks::Error>,
    given: Option<StarRocksVersion>,
    warnings: &mut Vec<String>,
) -> Result<Option<StarRocksVersion>> {
    let text = match read {
        Ok(text) => text,
        // No SQL through the FE: the given version, if any.
        Err(pgsnap_sink_starrocks::Error::Config(_)) => {
            if given.is_none() {
                warnings.push(
                    "the StarRocks version cannot be read without SQL through the FE: give it to \
                     render the Routine Load"
                        .into(),
                );
            }
            return Ok(given);
        }
        Err(e) => return Err(refused(format!("reading the StarRocks version: {e}"))),
    };
    let v: StarRocksVersion =
        text.parse().map_err(|e| refused(format!("the FE's current_version(): {e}")))?;
    v.check_supported().map_err(|e| refused(e.to_string()))?;
    if let Some(given) = given.filter(|g| *g != v) {
        warnings.push(format!(
            "the StarRocks version given ({given}) differs from the FE's {v}: rendering for {v}"
        ));
    }
    Ok(Some(v))
}

/// A rendered Routine Load: the statement, where each column comes from, warnings.
type Rendered = (String, Vec<(String, RenderedColumn)>, Vec<String>);

/// `host:port,host:port` as a list, blanks dropped.
fn broker_list(brokers: &str) -> Vec<String> {
    brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
}

/// The Routine Load job of StarRocks table `table`: `pgsnap_<table>`, sanitised.
fn job_name(table: &str) -> String {
    sanitize(&format!("pgsnap_{table}"))
}

/// `schema.table`, unquoted (the manifest's `handoff.routine_loads[].source`).
fn source_name(t: &TableName) -> String {
    format!("{}.{}", t.schema, t.name)
}

/// A refusal of something the job checked.
fn refused(reason: impl Into<String>) -> JobError {
    JobError::Refused { reason: reason.into(), strict: false }
}

/// A refusal of strict mode.
fn refused_strict(reason: impl Into<String>) -> JobError {
    JobError::Refused { reason: reason.into(), strict: true }
}

/// Per table, how Routine Load fills its StarRocks table: mapped against the prepared target
/// (`sink`, when StarRocks is loaded) or `mapper`'s mapping, for `encoding`.
fn cdc_plans(
    manifest: &pgsnap_core::Manifest,
    sink: Option<&pgsnap_sink_starrocks::StarRocksSink>,
    mapper: &StarRocksSinkBuilder,
    encoding: Option<&DebeziumEncoding>,
    warnings: &mut Vec<String>,
) -> BTreeMap<TableName, CdcPlan> {
    let mut cdc = BTreeMap::new();
    for t in &manifest.tables {
        let mapped = match sink {
            Some(s) => s
                .target(&t.schema.name)
                .map(|a| (*a).clone())
                .ok_or_else(|| "not prepared".to_owned()),
            None => mapper.map_table(&t.schema).map_err(|e| e.to_string()),
        };
        let plan = match mapped {
            Ok(target) => {
                warnings.extend(
                    caveats(&target).into_iter().map(|c| format!("{}: {c}", t.schema.name)),
                );
                let columns = match encoding {
                    Some(e) => cdc_columns(&target, e).map_err(|e| e.to_string()),
                    None => Err("the connector's encodings are unknown".to_owned()),
                };
                CdcPlan { table: target.name.clone(), key_model: target.key_model, columns }
            }
            Err(e) => CdcPlan {
                table: mapper.target_name(&t.schema.name),
                key_model: KeyModel::Duplicate,
                columns: Err(e),
            },
        };
        cdc.insert(t.schema.name.clone(), plan);
    }
    cdc
}

/// A parity decision turned into the renderer's column.
fn column_mapping(c: &CdcColumn) -> ColumnMapping {
    let m = ColumnMapping::new(&c.column, &c.field);
    match &c.conversion {
        Some(expr) => m.with_conversion(expr),
        None => m,
    }
}

/// Per table: the StarRocks table, its key model, and how Routine Load fills its columns
/// (or why it cannot).
#[derive(Debug)]
struct CdcPlan {
    table: String,
    key_model: KeyModel,
    columns: std::result::Result<Vec<CdcColumn>, String>,
}

/// What the connection says about the database (for defaults and the Debezium config).
struct Target {
    dbname: String,
    host: Option<String>,
    port: u16,
    user: String,
}

fn target(options: &SnapshotOptions) -> Result<Target> {
    use tokio_postgres::config::Host;
    let spec = options
        .connection
        .resolve()
        .map_err(|e| JobError::Source(pgsnap_source::Error::ConnInfo(e)))?;
    let c = &spec.config;
    let user = c.get_user().unwrap_or_default().to_owned();
    Ok(Target {
        dbname: c.get_dbname().map(str::to_owned).unwrap_or_else(|| user.clone()),
        host: c.get_hosts().iter().find_map(|h| match h {
            Host::Tcp(s) => Some(s.clone()),
            Host::Unix(_) => None,
        }),
        port: c.get_ports().first().copied().unwrap_or(5432),
        user,
    })
}

/// A PostgreSQL identifier from `s`: lowercase `[a-z0-9_]`, at most 63 bytes.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    out.truncate(63);
    out
}

/// Polls the running connector's stored offsets (every second, up to `wait`) until its
/// committed `lsn_commit` reaches the snapshot's consistent point `c`. Returns the report's
/// `connect` object and, unless it passed, the warning that the answer may replay events
/// already in the snapshot.
async fn wait_for_connector(
    client: &ConnectClient,
    name: &str,
    c: Option<Lsn>,
    wait: Duration,
    control: &RunControl,
) -> (Value, Option<String>) {
    let report = |passed: bool, lsn_commit: Option<Lsn>, error: Option<&str>| {
        json!({
            "url": client.url(),
            "connector": name,
            "passed": passed,
            "lsn_commit": lsn_commit.map(|l| l.to_string()),
            "consistent_point": c.map(|l| l.to_string()),
            "error": error,
        })
    };
    let Some(c) = c else {
        let e = "the snapshot has no consistent point (LSN): the connector's position cannot be checked";
        return (
            report(false, None, Some(e)),
            Some(format!("{e}; the answer may replay events already in the snapshot")),
        );
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // The connector's committed position: the highest lsn_commit of its stored offsets.
        let (position, error) = match client.stored_offsets(name).await {
            Ok(Some(Value::Array(entries))) => {
                let mut best =
                    ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: c };
                let mut error = None;
                for e in &entries {
                    match connector_position(e.get("offset").unwrap_or(&Value::Null), c) {
                        Ok(p @ ConnectorPosition::Passed { .. }) => best = p,
                        Ok(p @ ConnectorPosition::NotPassed { lsn_commit: Some(_), .. })
                            if !matches!(best, ConnectorPosition::Passed { .. }) =>
                        {
                            best = p
                        }
                        Ok(_) => {}
                        Err(err) => error = Some(err.to_string()),
                    }
                }
                (best, error)
            }
            Ok(_) => (
                ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: c },
                Some(format!(
                    "Kafka Connect lists no offsets for connector {name:?} (unknown connector, or a worker older than Kafka 3.6)"
                )),
            ),
            Err(e) => (
                ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: c },
                Some(e.to_string()),
            ),
        };
        let lsn_commit = match position {
            ConnectorPosition::Passed { lsn_commit } => {
                tracing::info!(connector = name, %lsn_commit, consistent_point = %c, "the connector has passed the snapshot");
                return (report(true, Some(lsn_commit), None), None);
            }
            ConnectorPosition::NotPassed { lsn_commit, .. } => lsn_commit,
        };
        if tokio::time::Instant::now() + Duration::from_secs(1) > deadline {
            let mut w = format!("connector {name:?}: ");
            w.push_str(&position.warning().unwrap_or_default());
            if let Some(e) = &error {
                w.push_str(&format!(" (last check: {e})"));
            }
            return (report(false, lsn_commit, error.as_deref()), Some(w));
        }
        tracing::info!(connector = name, consistent_point = %c, "waiting for the connector to commit past the snapshot");
        if control
            .guard(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(())
            })
            .await
            .is_err()
        {
            return (
                report(false, lsn_commit, Some("cancelled")),
                Some(format!("connector {name:?}: the wait was cancelled")),
            );
        }
    }
}

/// One table of a handoff.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandoffTable {
    /// Its Debezium topic.
    pub topic: String,
    /// The StarRocks table the Routine Load continues.
    pub starrocks_table: String,
    /// Where each StarRocks column comes from (`None`: no Routine Load was rendered).
    pub routine_load_columns: Option<Vec<(String, RenderedColumn)>>,
    /// With StarRocks output: the snapshot's load.
    pub load: Option<crate::job_migrate::TableLoad>,
}

/// What [`HandoffJob::run`] reports. Its JSON is the snapshot report plus `out`, `mode`,
/// `topics`, `offsets` (topic → partition as a string → offset), `routine_load`,
/// `starrocks_version`, `debezium`, `preflight`, `connect`, `kafka_config` (key → value, or
/// `"***"` for a secret), `routine_load_files` (`{setting, path, name, url_placeholder,
/// sql}`), `routine_load_placeholders` (placeholder → setting); per table `topic`,
/// `starrocks_table`, `replica_identity`, `toast_at_risk`, `problems`,
/// `routine_load_columns` (and with StarRocks output `target`, `rows_loaded`,
/// `rows_filtered`, `loads`).
#[derive(Debug)]
#[non_exhaustive]
pub struct HandoffReport {
    /// The snapshot run.
    pub run: RunSummary,
    /// The output (or state) directory.
    pub out: PathBuf,
    /// The mode.
    pub mode: HandoffMode,
    /// The topics of the selected tables.
    pub topics: Vec<String>,
    /// The resolved offsets: where each topic's partitions continue the snapshot.
    pub offsets: OffsetMap,
    /// The `CREATE ROUTINE LOAD` statements.
    pub routine_load: Vec<String>,
    /// The StarRocks version rendered for.
    pub starrocks_version: Option<String>,
    /// The Debezium connector's Kafka Connect payload (slot-first), else `null`.
    pub debezium: Value,
    /// The handoff preflight.
    pub preflight: HandoffPreflight,
    /// What Kafka Connect said (`null` without a client).
    pub connect: Value,
    /// The Kafka client settings the job used ([`HandoffJob::with_kafka_config`]), each
    /// secret's value `"***"`: JSON `kafka_config` (`{}` when none).
    pub kafka_config: BTreeMap<String, String>,
    /// The `CREATE FILE` statements (and the client paths) of the certificate files the
    /// Routine Loads name as `FILE:<name>`: run them before [`routine_load`](Self::routine_load).
    /// JSON `routine_load_files`.
    pub routine_load_files: Vec<RoutineLoadFile>,
    /// Each placeholder in the Routine Load and `CREATE FILE` statements → the Kafka client
    /// setting whose value (a secret, or a file's download URL) replaces it when the
    /// statements are executed. JSON `routine_load_placeholders`.
    pub routine_load_placeholders: BTreeMap<String, String>,
    /// Each rendered Routine Load and what became of it: `created`, `already_there` (a rerun
    /// found the job it created), `not_created` (only rendered, or refused: `error`). JSON
    /// `routine_load_jobs`.
    pub routine_load_jobs: Vec<RoutineLoadJob>,
    /// Per source table.
    pub tables: BTreeMap<TableName, HandoffTable>,
    refused: bool,
    jobs_failed: bool,
}

impl HandoffReport {
    /// How the job ended: the run's outcome, except that a connector submission that failed
    /// (slot-first) or, when strict, a running connector that did not pass the snapshot make
    /// a complete run a failed preflight, and a Routine Load that was to be created and was
    /// not a failed sink.
    pub fn outcome(&self) -> Outcome {
        match self.run.outcome() {
            Outcome::Complete if self.refused => Outcome::Failed(ErrorKind::Preflight),
            Outcome::Complete if self.jobs_failed => Outcome::Failed(ErrorKind::Sink),
            o => o,
        }
    }

    /// The JSON report.
    pub fn to_json(&self) -> Value {
        let extra = json!({
            "out": self.out,
            "mode": self.mode.as_str(),
            "topics": self.topics,
            "offsets": self.offsets,
            "routine_load": self.routine_load,
            "starrocks_version": self.starrocks_version,
            "debezium": self.debezium,
            "preflight": self.preflight,
            "connect": self.connect,
            "kafka_config": self.kafka_config,
            "routine_load_files": self.routine_load_files,
            "routine_load_placeholders": self.routine_load_placeholders,
            "routine_load_jobs": self.routine_load_jobs,
        });
        self.run.json(extra, |t| {
            let entry = self.tables.get(&t.schema.name);
            let p = self.preflight.table(&t.schema.name);
            let mut v = json!({
                "topic": entry.map(|e| e.topic.clone()).unwrap_or_default(),
                "starrocks_table": entry.map(|e| e.starrocks_table.clone()).unwrap_or_default(),
                "replica_identity": p.map(|p| p.replica_identity.to_string()),
                "toast_at_risk": p.map(|p| p.toast_at_risk.clone()).unwrap_or_default(),
                "problems": p.map(|p| p.problems.clone()).unwrap_or_default(),
                "routine_load_columns": entry.and_then(|e| e.routine_load_columns.as_ref()).map(|cols| {
                    cols.iter()
                        .map(|(c, r)| (c.clone(), json!(r)))
                        .collect::<serde_json::Map<String, Value>>()
                }),
            });
            if let (Some(load), Some(o)) = (entry.and_then(|e| e.load.as_ref()), v.as_object_mut())
                && let Ok(Value::Object(fields)) = serde_json::to_value(load)
            {
                o.extend(fields);
            }
            v
        })
    }
}

impl Serialize for HandoffReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod connect_tests {
    use pgsnap_kafka::connect::ConnectClient;
    use pgsnap_test_support::TestCerts;
    use pgsnap_test_support::connect::{ConnectDouble, State};
    use pgsnap_test_support::https_front::{FrontOptions, HttpsFront};

    use super::HandoffJob;
    use crate::{Connection, JobError, RunControl, SnapshotOptions};

    /// A slot-first handoff whose Kafka Connect refuses the credentials (or is not trusted)
    /// is refused before the snapshot: nothing of PostgreSQL or Kafka is touched (neither
    /// listens here).
    #[tokio::test]
    async fn slot_first_refuses_a_connect_it_cannot_use_before_the_snapshot() {
        let certs = TestCerts::generate(&["127.0.0.1"]);
        let double = ConnectDouble::start(State::default()).await;
        let auth = Some(("pgsnap".to_owned(), "right-pw".to_owned()));
        let options = FrontOptions { basic_auth: auth, ..FrontOptions::default() };
        let front = HttpsFront::start(&double.url, &certs, options).await;
        let dir = tempfile::tempdir().unwrap();
        let job = |client: ConnectClient| {
            let source = Connection::new("host=127.0.0.1 port=1 dbname=app user=app");
            HandoffJob::new(
                SnapshotOptions::new(source),
                dir.path().join("out"),
                "127.0.0.1:1",
                "pg",
            )
            .with_connect(client)
        };
        let trusted =
            || ConnectClient::new(&front.url).unwrap().with_ca_file(&certs.ca_cert).unwrap();

        let run =
            job(trusted().with_basic_auth("pgsnap", "wrong-pw")).run(&RunControl::new()).await;
        let Err(JobError::Refused { reason, strict: false }) = run else { panic!("{run:?}") };
        assert!(
            reason.starts_with("checking Kafka Connect before the snapshot")
                && reason.contains("refused the credentials of user \"pgsnap\""),
            "{reason}"
        );
        assert!(!reason.contains("wrong-pw"), "{reason}");

        let untrusted =
            ConnectClient::new(&front.url).unwrap().with_basic_auth("pgsnap", "right-pw");
        let run = job(untrusted).run(&RunControl::new()).await;
        let Err(e @ JobError::Refused { .. }) = run else { panic!("{run:?}") };
        assert!(e.to_string().contains("certificate was not trusted"), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::Preflight);
        assert!(double.requests().is_empty(), "{:?}", double.requests());
    }
}

//! Why a job could not run, and what kind of failure that is.

use std::path::PathBuf;

use pgsnap_core::{Lsn, SnapshotMode, TableName};
use serde::Serialize;

/// What kind of failure stopped a job. A command maps it to its exit code (the `pgsnap`
/// command: `Usage` 2, `Preflight` 3, `SnapshotLost` 4, `Sink` 5, `Failed` 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job's configuration, or the state it was pointed at, cannot be used.
    Usage,
    /// A check before any data was written failed: connection, privileges, server settings,
    /// the target's tables, a refusal of what cannot be kept exact.
    Preflight,
    /// The snapshot is lost or cannot be imported.
    SnapshotLost,
    /// The output cannot be written.
    Sink,
    /// The run finished, but tables failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// The job ran out of its time limit.
    Timeout,
}

impl ErrorKind {
    /// The kind of a core error, from what failed ([`pgsnap_core::ErrorKind`]): a
    /// backend's failure before the run has a report is a failed preflight.
    pub fn of_core(e: &pgsnap_core::Error) -> ErrorKind {
        use pgsnap_core::ErrorKind as K;
        match e.kind() {
            K::Config | K::Manifest | K::ResumeMismatch => ErrorKind::Usage,
            K::Preflight | K::Source | K::Sink | K::TargetSchema | K::Offsets | K::Unexpected => {
                ErrorKind::Preflight
            }
            K::SnapshotLost => ErrorKind::SnapshotLost,
            K::SinkUnavailable | K::Io => ErrorKind::Sink,
            K::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::Failed,
        }
    }

    /// The kind of a PostgreSQL source error.
    pub fn of_source(e: &pgsnap_source::Error) -> ErrorKind {
        use pgsnap_source::Error as E;
        match e {
            E::ConnInfo(_) | E::Pattern(_) | E::Config(_) => ErrorKind::Usage,
            E::SnapshotLost { .. } => ErrorKind::SnapshotLost,
            _ => ErrorKind::Preflight,
        }
    }
}

/// Why an interrupted run cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeRefusal {
    /// The run's snapshot ended with the interrupted process.
    SnapshotEnded {
        /// How the snapshot was taken.
        mode: SnapshotMode,
        /// Its name.
        snapshot: String,
        /// The run used a permanent slot: the remaining chunks could be copied under a new
        /// snapshot ([`SnapshotOptions::allow_snapshot_change`](crate::SnapshotOptions)).
        permanent_slot: bool,
        /// A snapshot change was asked for, but the run did not use a permanent slot.
        change_refused: bool,
    },
    /// A new snapshot was allowed, but the run's permanent slot no longer exists, so CDC
    /// cannot replay from its consistent point.
    SlotGone {
        /// The slot.
        slot: String,
        /// Its consistent point.
        consistent_point: Option<Lsn>,
    },
    /// A table of the interrupted run no longer exists or is no longer selected.
    TableGone {
        /// The table.
        table: TableName,
    },
}

impl std::fmt::Display for ResumeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeRefusal::SnapshotEnded { mode, snapshot, permanent_slot, change_refused } => {
                write!(
                    f,
                    "the run's {mode}-mode snapshot {snapshot:?} ended with the interrupted process."
                )?;
                if *permanent_slot {
                    write!(
                        f,
                        " Its permanent slot allows copying the remaining chunks under a new \
                         snapshot (allow a snapshot change; CDC replay from the slot converges \
                         for primary-key tables)."
                    )?;
                } else if *change_refused {
                    write!(
                        f,
                        " A snapshot change needs a run in slot mode with a permanent slot."
                    )?;
                }
                write!(f, " Start a new run.")
            }
            ResumeRefusal::SlotGone { slot, consistent_point } => write!(
                f,
                "replication slot {slot:?} of the interrupted run no longer exists, so CDC cannot \
                 replay from its consistent point {}; start a new run",
                consistent_point.map(|l| l.to_string()).unwrap_or_default()
            ),
            ResumeRefusal::TableGone { table } => write!(
                f,
                "table {table} of the interrupted run no longer exists or is no longer selected"
            ),
        }
    }
}

/// Job options that do not fit together (found before anything runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No parallel jobs.
    #[error("the number of parallel jobs must be at least 1")]
    NoJobs,
    /// A chunk size of zero.
    #[error("the chunk size must be more than 0 bytes")]
    ZeroChunkSize,
    /// The external snapshot mode without a snapshot name.
    #[error(
        "the external snapshot mode needs the name of a snapshot exported and held open by \
         another session"
    )]
    ExternalSnapshotNeedsName,
    /// A snapshot name in another snapshot mode than external.
    #[error("an external snapshot name is given, but the snapshot mode is {0}, not external")]
    SnapshotNameNeedsExternalMode(SnapshotMode),
    /// A permanent slot in another snapshot mode than slot.
    #[error("a permanent slot is given, but the snapshot mode is {0}, not slot")]
    SlotNeedsSlotMode(SnapshotMode),
    /// The Kafka brokers or the topic prefix are empty.
    #[error("the Kafka brokers and the topic prefix must not be empty")]
    EmptyKafka,
    /// A Kafka client setting that is refused (a key pgsnap sets itself, an unsupported SASL
    /// mechanism, ...): the message names the key, never the value.
    #[error("{0}")]
    KafkaClient(String),
    /// A handoff with a snapshot that is not exported by a replication slot.
    #[error(
        "snapshot mode {0}: a handoff needs a snapshot exported by a replication slot (slot \
         mode); a pg_export_snapshot() snapshot is not a clean prefix of the change stream"
    )]
    HandoffNeedsSlotMode(SnapshotMode),
    /// A running connector is named without a Kafka Connect client.
    #[error("a running connector is named, but no Kafka Connect client is given to read it")]
    ConnectorWithoutConnect,
    /// A running connector is named in slot-first mode.
    #[error(
        "a running connector is named in slot-first mode, which submits a new connector (name \
         that one with the connector name instead)"
    )]
    ConnectorInSlotFirst,
    /// Kafka Connect in running/time mode without the running connector's name.
    #[error(
        "Kafka Connect in {mode} mode: Debezium already runs; name the running connector so its \
         committed position can be checked against the snapshot"
    )]
    ConnectWithoutConnector {
        /// The handoff mode.
        mode: &'static str,
    },
    /// A permanent slot in running/time mode.
    #[error(
        "a permanent slot in {mode} mode: the snapshot must come from a temporary slot \
         (Debezium already runs on its own)"
    )]
    SlotWhileRunning {
        /// The handoff mode.
        mode: &'static str,
    },
    /// A running connector's config in slot-first mode.
    #[error(
        "a running connector's config describes a running connector (running or time mode); \
         slot-first renders the connector config itself"
    )]
    DebeziumConfigInSlotFirst,
    /// A StarRocks version outside the supported range.
    #[error("StarRocks version: {0}")]
    StarRocksVersion(String),
    /// Strict, and no StarRocks version is known.
    #[error(
        "strict: no StarRocks version is known, so no Routine Load would be rendered (its \
         properties depend on the version): give the version, or load StarRocks"
    )]
    NoStarRocksVersion,
    /// Creating the Routine Loads needs the snapshot loaded into StarRocks (its FE runs the
    /// statements).
    #[error(
        "creating the Routine Loads needs StarRocks loaded by the handoff (with its SQL port): \
         the jobs are created through the FE once the snapshot is loaded"
    )]
    CreateRoutineLoadsWithoutStarRocks,
    /// Strict, and the running connector's encodings are unknown.
    #[error(
        "strict: mode {mode}: the running connector's encodings are unknown, so no Routine Load \
         would be rendered: give its config, or Kafka Connect and the connector's name"
    )]
    UnknownEncodings {
        /// The handoff mode.
        mode: &'static str,
    },
}

/// What a verification could not compare ([`JobError::Verify`]): the table, and where known
/// the row's key and the column.
///
/// ```
/// use pgsnap::VerifyFailure;
/// let f = VerifyFailure::new("public.t", Some("7".into()), Some("price".into()), "NaN in a DECIMAL");
/// assert_eq!(f.to_string(), r#"verify public.t key (7) column "price": NaN in a DECIMAL"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "verify {table}{}{}: {message}",
    key.as_ref().map(|k| format!(" key ({k})")).unwrap_or_default(),
    column.as_ref().map(|c| format!(" column {c:?}")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct VerifyFailure {
    /// The PostgreSQL table.
    pub table: String,
    /// The row's key values, if known.
    pub key: Option<String>,
    /// The column, if one is at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl VerifyFailure {
    /// A failure in `table`, at `key` and `column` where known.
    pub fn new(
        table: impl Into<String>,
        key: Option<String>,
        column: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { table: table.into(), key, column, message: message.into() }
    }
}

/// Why a job could not run (or stopped before it had a report to give).
///
/// Messages say what failed and what to do in library terms; a command-line front adds its
/// own flag names ([`JobError::kind`] decides its exit code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job's options do not fit together.
    #[error("invalid job configuration: {0}")]
    Config(ConfigError),
    /// A new run was pointed at a directory that holds another run's files.
    #[error(
        "{} is not empty: resume the run there, or choose an empty directory",
        dir.display()
    )]
    DirectoryNotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A resume was asked for, but no run is recorded there.
    #[error("nothing to resume: {} does not exist; start a new run", manifest.display())]
    NothingToResume {
        /// The manifest looked for.
        manifest: PathBuf,
    },
    /// A status was asked of a directory that records no handoff to watch.
    #[error("{}: {reason}", dir.display())]
    NoHandoff {
        /// The state directory.
        dir: PathBuf,
        /// What is missing and what to do.
        reason: String,
    },
    /// Another running job holds the directory.
    #[error("{} is in use by another running pgsnap", dir.display())]
    DirectoryInUse {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory cannot be created, read or locked.
    #[error("{}: {source}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The interrupted run cannot be resumed.
    #[error("cannot resume: {0}")]
    CannotResume(ResumeRefusal),
    /// The PostgreSQL side: connection, preflight, snapshot.
    #[error(transparent)]
    Source(#[from] pgsnap_source::Error),
    /// The run machinery: manifest, sink, coordinator.
    #[error(transparent)]
    Core(#[from] pgsnap_core::Error),
    /// The file output.
    #[cfg(feature = "files")]
    #[error(transparent)]
    Files(#[from] pgsnap_sink_file::Error),
    /// StarRocks.
    #[cfg(feature = "starrocks")]
    #[error(transparent)]
    StarRocks(#[from] pgsnap_sink_starrocks::Error),
    /// Kafka or Kafka Connect.
    #[cfg(feature = "kafka")]
    #[error("{context}: {message}")]
    Kafka {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
        /// Its kind.
        kind: ErrorKind,
    },
    /// A verification found something it cannot compare: a PostgreSQL value the snapshot
    /// could not have loaded, a NULL or unmapped key column.
    #[error("{0}")]
    Verify(Box<VerifyFailure>),
    /// The job did not finish within its time limit.
    #[error("gave up after {} s (the time limit)", after.as_secs_f64())]
    Timeout {
        /// The limit.
        after: std::time::Duration,
    },
    /// The metrics address cannot be listened on (in use, not permitted): nothing was done.
    #[cfg(feature = "metrics")]
    #[error(transparent)]
    Metrics(#[from] crate::metrics::BindError),
    /// The job was cancelled before its copy started, or while it waited after it (the
    /// report of a run cancelled mid-copy says so instead: [`Outcome::Cancelled`](crate::Outcome)).
    #[error("cancelled")]
    Cancelled,
    /// A check refused what cannot be done exactly (tables at risk, columns no Routine Load
    /// carries exactly, ...), or a dependency the job checked (StarRocks' version, a running
    /// connector) does not qualify.
    #[error("{reason}")]
    Refused {
        /// What was refused and what to do.
        reason: String,
        /// Whether the refusal comes from the job's strict mode (without it, the job would
        /// have run and warned).
        strict: bool,
    },
}

impl JobError {
    /// What kind of failure this is.
    ///
    /// ```
    /// use pgsnap::{ErrorKind, JobError};
    /// let e = JobError::DirectoryNotEmpty { dir: "/data/snap".into() };
    /// assert_eq!(e.kind(), ErrorKind::Usage);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            JobError::Config(_)
            | JobError::DirectoryNotEmpty { .. }
            | JobError::NothingToResume { .. }
            | JobError::NoHandoff { .. }
            | JobError::DirectoryInUse { .. } => ErrorKind::Usage,
            JobError::Directory { .. } => ErrorKind::Sink,
            #[cfg(feature = "metrics")]
            JobError::Metrics(_) => ErrorKind::Usage,
            JobError::CannotResume(ResumeRefusal::TableGone { .. }) => ErrorKind::Preflight,
            JobError::CannotResume(_) => ErrorKind::SnapshotLost,
            JobError::Source(e) => ErrorKind::of_source(e),
            JobError::Core(e) => ErrorKind::of_core(e),
            #[cfg(feature = "files")]
            JobError::Files(e) => match e {
                pgsnap_sink_file::Error::Io { .. } => ErrorKind::Sink,
                _ => ErrorKind::Usage,
            },
            #[cfg(feature = "starrocks")]
            JobError::StarRocks(e) => starrocks_kind(e),
            #[cfg(feature = "kafka")]
            JobError::Kafka { kind, .. } => *kind,
            JobError::Refused { .. } => ErrorKind::Preflight,
            JobError::Verify(_) => ErrorKind::Failed,
            JobError::Timeout { .. } => ErrorKind::Timeout,
            JobError::Cancelled => ErrorKind::Cancelled,
        }
    }
}

/// StarRocks errors before loading: bad configuration is a usage error, anything else a
/// failed preflight.
#[cfg(feature = "starrocks")]
fn starrocks_kind(e: &pgsnap_sink_starrocks::Error) -> ErrorKind {
    match e {
        pgsnap_sink_starrocks::Error::Config(_) => ErrorKind::Usage,
        _ => ErrorKind::Preflight,
    }
}

/// `Result` with [`JobError`].
pub type Result<T, E = JobError> = std::result::Result<T, E>;

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "files")]
mod job_files;
#[cfg(feature = "kafka")]
mod job_handoff;
#[cfg(feature = "starrocks")]
mod job_migrate;
mod job_snapshot;
#[cfg(feature = "kafka")]
mod job_status;
#[cfg(feature = "starrocks")]
mod job_verify;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod options;
mod report;
#[cfg(feature = "kafka")]
mod routine_loads;
mod run;

/// The run machinery: types, the `Source` / `Sink` traits, the manifest, the coordinator.
pub use pgsnap_core as core;
/// Kafka: offsets, Debezium and Routine Load rendering, Kafka Connect.
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub use pgsnap_kafka as kafka;
/// The file sink.
#[cfg(feature = "files")]
#[cfg_attr(docsrs, doc(cfg(feature = "files")))]
pub use pgsnap_sink_file as files;
/// The StarRocks sink: Stream Load, type mapping, FE SQL, the CDC parity table.
#[cfg(feature = "starrocks")]
#[cfg_attr(docsrs, doc(cfg(feature = "starrocks")))]
pub use pgsnap_sink_starrocks as starrocks;
/// PostgreSQL: connections, the snapshot, the catalog, chunk planning, COPY.
pub use pgsnap_source as postgres;

pub use error::{ConfigError, ErrorKind, JobError, Result, ResumeRefusal, VerifyFailure};
#[cfg(feature = "files")]
#[cfg_attr(docsrs, doc(cfg(feature = "files")))]
pub use job_files::{FilesJob, FilesReport, Plan};
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub use job_handoff::{
    DEFAULT_PASSWORD_PLACEHOLDER, HandoffJob, HandoffMode, HandoffReport, HandoffTable,
};
#[cfg(feature = "starrocks")]
#[cfg_attr(docsrs, doc(cfg(feature = "starrocks")))]
pub use job_migrate::{MigrateJob, MigrateReport, TableLoad};
pub use job_snapshot::SnapshotJob;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub use job_status::{
    ConnectorReport, Cutover, CutoverCheck, PartitionReport, RoutineLoadReport, SlotReport,
    StatusJob, StatusReport, StatusTable, StatusVerdict, TaskReport,
};
#[cfg(feature = "starrocks")]
#[cfg_attr(docsrs, doc(cfg(feature = "starrocks")))]
pub use job_verify::{
    CutoverEvidence, DEFAULT_RANGE_ROWS, DEFAULT_SAMPLE_RANGES, Difference, DifferenceCounts,
    DifferenceKind, MAX_LISTED_DIFFERENCES, TableVerify, VerifyJob, VerifyMode, VerifyReport,
    VerifyVerdict,
};
pub use options::{RunControl, SnapshotOptions};
pub use pgsnap_core::{CancellationToken, DataFormat, SnapshotMode};
pub use pgsnap_source::conninfo::Connection;
pub use pgsnap_source::{SplitBy, drop_slot};
pub use report::{
    Outcome, REPORT_VERSION, ResumeHint, RunSummary, TEXT_TABLE_LINES, TableLine, human_bytes,
    summarise_tables,
};
#[cfg(feature = "kafka")]
pub use routine_loads::RoutineLoadJob;

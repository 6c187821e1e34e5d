#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod checkpoint;
pub mod coordinator;
pub mod error;
pub mod manifest;
pub mod memory;
pub mod offset;
pub mod retry;
pub mod sink;
pub mod source;
pub mod stats;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod types;

pub use checkpoint::{CheckpointStore, MANIFEST_FILE, ManifestStore, MemoryCheckpointStore};
pub use coordinator::{
    Coordinator, CoordinatorOptions, ProgressEvent, ProgressHandler, ProgressSnapshot, RunReport,
    TableProgress, TableReport, error_chain,
};
pub use error::{BoxError, Error, ErrorKind, ErrorStatus, Result};
pub use manifest::{
    ChunkSnapshot, HandoffState, Manifest, ManifestChunk, ManifestHeader, ManifestTable,
    PlanOptions, RoutineLoadRecord, RunStatus, SplitBy, TablePlan, TableStatus,
};
pub use memory::{MemorySink, MemorySource};
pub use offset::{OffsetMap, OffsetResolver};
pub use retry::{RetryBudget, RetryPolicy};
pub use sink::{ChunkReceipt, PrepareContext, Rewrite, Sink, SinkDescription, WriteContext};
pub use source::{ChunkStream, Source};
pub use stats::{CHECKSUM_ALGORITHM, ChunkInspector, ChunkStats};
/// The token that cancels a run (`tokio_util`'s), re-exported so callers need no extra dependency.
pub use tokio_util::sync::CancellationToken;
pub use types::chunk::{Chunk, ChunkId, ChunkRange, DataFormat, LoadReceipt};
pub use types::lsn::{Lsn, ParseLsnError};
pub use types::snapshot::{SnapshotInfo, SnapshotMode, SourceInfo};
pub use types::table::{Column, TableKind, TableName, TableSchema, TypeKind, quote_ident};

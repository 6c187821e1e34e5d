//! The run manifest: the public record of a snapshot run, and the state a resume trusts.
//!
//! It is written as `manifest.json` (see [`ManifestStore`](crate::ManifestStore)), replaced
//! atomically as chunks finish (see
//! [`CoordinatorOptions::with_checkpoint_interval`](crate::CoordinatorOptions::with_checkpoint_interval)).
//! Its fields are a public contract, versioned by
//! [`MANIFEST_VERSION`]; fields are only ever added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Chunk, ChunkId, ChunkRange, DataFormat, SnapshotInfo, SourceInfo, TableName, TableSchema,
};

/// The manifest format version written by this crate.
pub const MANIFEST_VERSION: u32 = 1;

/// Overall state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Chunks remain to be copied (a run in progress, or one that was interrupted).
    Running,
    /// Every chunk of every table is done.
    Ok,
    /// The run ended with some tables failed; the others are complete.
    Partial,
    /// The run ended without completing any table, or stopped on a fatal error.
    Failed,
}

impl RunStatus {
    /// The lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }
}

/// State of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TableStatus {
    /// Chunks remain.
    Pending,
    /// Every chunk is done.
    Ok,
    /// A chunk failed; see `error`.
    Failed,
}

impl TableStatus {
    /// The lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// The options that shape a run's plan; a resume must use the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlanOptions {
    /// How tables were split.
    pub split_by: SplitBy,
    /// Target source bytes per chunk.
    pub chunk_size: u64,
    /// Include patterns, as given.
    pub include: Vec<String>,
    /// Exclude patterns, as given.
    pub exclude: Vec<String>,
}

/// How tables are split into chunks (recorded in the manifest's plan options as `auto`,
/// `ctid` or `pk`).
///
/// ```
/// use pgsnap_core::SplitBy;
/// assert_eq!("ctid".parse::<SplitBy>(), Ok(SplitBy::Ctid));
/// assert_eq!(serde_json::to_string(&SplitBy::Pk).unwrap(), "\"pk\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SplitBy {
    /// ctid ranges on PostgreSQL 14 and later (TID range scans), integer primary-key ranges
    /// before, one chunk per relation when neither applies.
    #[default]
    Auto,
    /// Heap block ranges (`ctid >= '(a,0)' AND ctid < '(b,0)'`).
    Ctid,
    /// Ranges of a single-column integer primary key; tables without one fall back to `auto`.
    Pk,
}

impl SplitBy {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Ctid => "ctid",
            Self::Pk => "pk",
        }
    }
}

impl std::fmt::Display for SplitBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SplitBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "ctid" => Ok(Self::Ctid),
            "pk" => Ok(Self::Pk),
            o => Err(format!("unknown split {o:?}: expected auto, ctid or pk")),
        }
    }
}

/// The snapshot a chunk was copied under, recorded only when it differs from the run's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSnapshot {
    /// The exported snapshot name.
    pub name: String,
    /// `pg_current_snapshot()` of that snapshot.
    pub pg_snapshot: String,
    /// When that snapshot was taken (server clock).
    pub taken_at: String,
}

/// One chunk in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestChunk {
    /// Number within the table.
    pub id: ChunkId,
    /// The relation read (a partition leaf for partitioned tables).
    pub relation: TableName,
    /// The rows covered.
    pub range: ChunkRange,
    /// Where the content is, relative to the output directory (set once done).
    pub path: Option<String>,
    /// Rows in the chunk (valid once done).
    pub rows: u64,
    /// Bytes of uncompressed content (valid once done).
    pub bytes: u64,
    /// Checksum of the uncompressed content (see `checksum_algorithm`), once done.
    pub checksum: Option<String>,
    /// Bytes as stored (after compression), once done.
    pub stored_bytes: u64,
    /// Planned source bytes.
    pub estimated_bytes: u64,
    /// Whether the chunk is durably written and complete.
    pub done: bool,
    /// The snapshot this chunk was copied under, when not the run's own.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshot: Option<ChunkSnapshot>,
    /// What a loading sink's target reported for this chunk (absent for file output).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub load: Option<crate::LoadReceipt>,
    /// Attempts the chunk took in the run that copied it (0 in manifests written before
    /// pgsnap recorded it).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One table in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTable {
    /// Name, kind, columns, generated columns and primary key.
    #[serde(flatten)]
    pub schema: TableSchema,
    /// Partition leaves read for a partitioned table (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<TableName>,
    /// Planned source bytes (heap plus TOAST).
    pub estimated_bytes: u64,
    /// Table state.
    pub status: TableStatus,
    /// Why the table failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// The chunks, by id.
    pub chunks: Vec<ManifestChunk>,
}

impl ManifestTable {
    /// The chunk as a unit of work.
    pub fn chunk(&self, c: &ManifestChunk) -> Chunk {
        Chunk {
            table: self.schema.name.clone(),
            relation: c.relation.clone(),
            id: c.id,
            range: c.range.clone(),
            columns: self.schema.columns.iter().map(|c| c.name.clone()).collect(),
            estimated_bytes: c.estimated_bytes,
        }
    }

    /// Rows in done chunks.
    pub fn rows(&self) -> u64 {
        self.chunks.iter().filter(|c| c.done).map(|c| c.rows).sum()
    }

    /// Uncompressed bytes in done chunks.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().filter(|c| c.done).map(|c| c.bytes).sum()
    }

    /// Number of done chunks.
    pub fn chunks_done(&self) -> usize {
        self.chunks.iter().filter(|c| c.done).count()
    }
}

/// A planned table: the input of [`Manifest::new`].
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table's shape.
    pub schema: TableSchema,
    /// Partition leaves read (partitioned tables).
    pub partitions: Vec<TableName>,
    /// Planned source bytes.
    pub estimated_bytes: u64,
    /// The chunks, ids 0..n.
    pub chunks: Vec<Chunk>,
}

/// The whole manifest (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] of the writer.
    pub version: u32,
    /// The writing tool and version, e.g. `pgsnap 0.1.0`.
    pub tool: String,
    /// A UUID naming this run; kept across resumes.
    pub run_id: String,
    /// Overall state.
    pub status: RunStatus,
    /// The snapshot copied.
    pub snapshot: SnapshotInfo,
    /// The source cluster.
    pub source: SourceInfo,
    /// Content format of the chunk files.
    pub format: DataFormat,
    /// Compression of the chunk files.
    pub compression: String,
    /// What the sink writes where, when its format and compression do not say it all
    /// ([`Sink::identity`](crate::Sink::identity), e.g. a StarRocks sink's database, label
    /// scheme and body layout); absent for file output. A resume must present the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// Session settings pinned on every connection.
    pub session: BTreeMap<String, String>,
    /// Checksum algorithm of `chunks[].checksum`.
    pub checksum_algorithm: String,
    /// The options the plan was made with.
    pub options: PlanOptions,
    /// The selected tables.
    pub tables: Vec<ManifestTable>,
    /// The CDC handoff that continues this snapshot, once a handoff job recorded it: the
    /// Kafka side, the connector and the Routine Loads it created. Absent for a plain
    /// snapshot (and in manifests written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<HandoffState>,
}

/// The CDC handoff recorded in a manifest ([`Manifest::handoff`]): what `pgsnap status`
/// watches and what a rerun of the handoff compares with (never with `SHOW ROUTINE LOAD`,
/// whose progress moves).
///
/// ```
/// use pgsnap_core::manifest::{HandoffState, RoutineLoadRecord};
/// let mut state = HandoffState::new("kafka1:9092", "sales");
/// state.topics.push("pg.public.orders".into());
/// let mut job = RoutineLoadRecord::new("pgsnap_orders", "public.orders", "orders", "pg.public.orders");
/// job.offsets.insert(0, 42);
/// state.routine_loads.push(job);
/// let json = serde_json::to_value(&state).unwrap();
/// assert_eq!(json["routine_loads"][0]["offsets"]["0"], 42);
/// assert_eq!(serde_json::from_value::<HandoffState>(json).unwrap(), state);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HandoffState {
    /// Kafka bootstrap servers (`host:port[,host:port...]`).
    pub brokers: String,
    /// The StarRocks database of the Routine Loads (empty when none is rendered).
    #[serde(default)]
    pub database: String,
    /// The Debezium topics, one per table.
    pub topics: Vec<String>,
    /// The Debezium connector's name: the one rendered (slot-first) or the running one.
    #[serde(default)]
    pub connector: Option<String>,
    /// The Routine Loads the handoff created (or rendered, `job_id` then absent), one per
    /// table.
    #[serde(default)]
    pub routine_loads: Vec<RoutineLoadRecord>,
}

impl HandoffState {
    /// A state for `brokers` and the StarRocks `database`, with no topic, connector or job.
    pub fn new(brokers: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            database: database.into(),
            topics: Vec::new(),
            connector: None,
            routine_loads: Vec::new(),
        }
    }
}

/// One Routine Load of a [`HandoffState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoutineLoadRecord {
    /// The job's name (unique in its database).
    pub name: String,
    /// The PostgreSQL table it continues (`schema.table`).
    #[serde(default)]
    pub source: String,
    /// The StarRocks table it loads.
    pub table: String,
    /// The Kafka topic it consumes.
    pub topic: String,
    /// The offsets it starts at, per partition (`kafka_offsets`).
    pub offsets: BTreeMap<i32, i64>,
    /// SHA-256 (hex) of the rendered `CREATE ROUTINE LOAD` statement, secrets as
    /// placeholders: a rerun that renders another definition is refused.
    pub definition_hash: String,
    /// The rendered statement, secrets as placeholders (what a rerun creates when the job is
    /// missing).
    #[serde(default)]
    pub definition: String,
    /// StarRocks' job id (`SHOW ROUTINE LOAD`'s `Id`), once created.
    #[serde(default)]
    pub job_id: Option<String>,
}

impl RoutineLoadRecord {
    /// A record of job `name` continuing `source` into `table` from `topic`, with no offsets,
    /// definition or id yet.
    pub fn new(
        name: impl Into<String>,
        source: impl Into<String>,
        table: impl Into<String>,
        topic: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
            table: table.into(),
            topic: topic.into(),
            offsets: BTreeMap::new(),
            definition_hash: String::new(),
            definition: String::new(),
            job_id: None,
        }
    }
}

/// The fixed parts of a new manifest, besides the tables.
#[derive(Debug, Clone)]
pub struct ManifestHeader {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// The source.
    pub source: SourceInfo,
    /// Chunk content format.
    pub format: DataFormat,
    /// Compression label.
    pub compression: String,
    /// The sink's identity ([`Manifest::sink`]).
    pub sink: Option<String>,
    /// Pinned session settings.
    pub session: BTreeMap<String, String>,
    /// Plan options.
    pub options: PlanOptions,
}

impl Manifest {
    /// A new manifest for a fresh run, every chunk pending.
    pub fn new(header: ManifestHeader, tables: Vec<TablePlan>) -> Self {
        let tables = tables
            .into_iter()
            .map(|t| ManifestTable {
                chunks: t
                    .chunks
                    .iter()
                    .map(|c| ManifestChunk {
                        id: c.id,
                        relation: c.relation.clone(),
                        range: c.range.clone(),
                        path: None,
                        rows: 0,
                        bytes: 0,
                        checksum: None,
                        stored_bytes: 0,
                        estimated_bytes: c.estimated_bytes,
                        done: false,
                        snapshot: None,
                        load: None,
                        attempts: 0,
                    })
                    .collect(),
                status: if t.chunks.is_empty() { TableStatus::Ok } else { TableStatus::Pending },
                schema: t.schema,
                partitions: t.partitions,
                estimated_bytes: t.estimated_bytes,
                error: None,
            })
            .collect();
        Self {
            version: MANIFEST_VERSION,
            tool: concat!("pgsnap ", env!("CARGO_PKG_VERSION")).to_owned(),
            run_id: uuid::Uuid::new_v4().to_string(),
            status: RunStatus::Running,
            snapshot: header.snapshot,
            source: header.source,
            format: header.format,
            compression: header.compression,
            sink: header.sink,
            session: header.session,
            checksum_algorithm: crate::stats::CHECKSUM_ALGORITHM.to_owned(),
            options: header.options,
            tables,
            handoff: None,
        }
    }

    /// Finds a table by name.
    pub fn table(&self, name: &TableName) -> Option<&ManifestTable> {
        self.tables.iter().find(|t| &t.schema.name == name)
    }

    /// Rows in done chunks of all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(ManifestTable::rows).sum()
    }

    /// Uncompressed bytes in done chunks of all tables.
    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(ManifestTable::bytes).sum()
    }

    /// Checks that a resumed run asks for the same work as this manifest records, naming
    /// the first difference. `sink` is the sink's [identity](crate::Sink::identity). A
    /// manifest written before the `sink` field existed recorded a StarRocks sink's identity
    /// as its `compression`: it is accepted when that equals `sink`.
    ///
    /// # Errors
    /// [`ErrorKind::ResumeMismatch`](crate::ErrorKind::ResumeMismatch) naming the option
    /// ([`Error::context`](crate::Error::context) `option`, `was`, `now`);
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a manifest from a newer pgsnap.
    pub fn check_resume(
        &self,
        options: &PlanOptions,
        format: DataFormat,
        compression: &str,
        sink: Option<&str>,
    ) -> crate::Result<()> {
        let mismatch = |option: &'static str, was: String, now: String| {
            Err(crate::Error::resume_mismatch(option, was, now))
        };
        if self.version > MANIFEST_VERSION {
            return Err(crate::Error::config(format!(
                "the manifest was written by a newer pgsnap (manifest version {}, this build reads up to {MANIFEST_VERSION})",
                self.version
            )));
        }
        if self.options.split_by != options.split_by {
            return mismatch(
                "split_by",
                self.options.split_by.to_string(),
                options.split_by.to_string(),
            );
        }
        if self.options.chunk_size != options.chunk_size {
            return mismatch(
                "chunk_size",
                self.options.chunk_size.to_string(),
                options.chunk_size.to_string(),
            );
        }
        if self.options.include != options.include {
            return mismatch(
                "include",
                format!("{:?}", self.options.include),
                format!("{:?}", options.include),
            );
        }
        if self.options.exclude != options.exclude {
            return mismatch(
                "exclude",
                format!("{:?}", self.options.exclude),
                format!("{:?}", options.exclude),
            );
        }
        if self.format != format {
            return mismatch("format", self.format.as_str().into(), format.as_str().into());
        }
        let legacy = self.sink.is_none() && sink.is_some_and(|s| s == self.compression);
        if legacy {
            return Ok(());
        }
        if self.compression != compression {
            return mismatch("compression", self.compression.clone(), compression.into());
        }
        if self.sink.as_deref() != sink {
            let show = |s: Option<&str>| s.unwrap_or("none").to_owned();
            return mismatch("sink", show(self.sink.as_deref()), show(sink));
        }
        Ok(())
    }
}

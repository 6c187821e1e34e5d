//! Chunks: the unit of parallel work, retry and resume.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::table::{TableName, quote_ident};

/// A chunk's number within its (reported) table, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkId(pub u32);

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:05}", self.0)
    }
}

/// The rows of a relation that one chunk covers.
///
/// Ranges are half-open (`start` inclusive, `end` exclusive); `None` is unbounded, so the first
/// and last ranges of a table are open-ended and rows added after planning cannot fall between
/// chunks.
///
/// # Example
/// ```
/// use pgsnap_core::ChunkRange;
/// let r = ChunkRange::Ctid { start_block: Some(128), end_block: None };
/// assert_eq!(r.predicate().unwrap(), "ctid >= '(128,0)'::tid");
/// assert_eq!(ChunkRange::All.predicate(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChunkRange {
    /// The whole relation.
    All,
    /// Heap blocks `[start_block, end_block)` (TID range scan on PostgreSQL 14 and later).
    Ctid {
        /// First block, inclusive; `None` from the start.
        start_block: Option<u32>,
        /// End block, exclusive; `None` to the end.
        end_block: Option<u32>,
    },
    /// Values `[start, end)` of a single-column integer primary key.
    Pk {
        /// The key column.
        column: String,
        /// Lower bound, inclusive; `None` from the smallest value.
        start: Option<i64>,
        /// Upper bound, exclusive; `None` to the largest value.
        end: Option<i64>,
    },
}

impl ChunkRange {
    /// The SQL `WHERE` predicate selecting this range, or `None` for the whole relation.
    pub fn predicate(&self) -> Option<String> {
        let mut parts = Vec::new();
        match self {
            Self::All => {}
            Self::Ctid { start_block, end_block } => {
                if let Some(s) = start_block {
                    parts.push(format!("ctid >= '({s},0)'::tid"));
                }
                if let Some(e) = end_block {
                    parts.push(format!("ctid < '({e},0)'::tid"));
                }
            }
            Self::Pk { column, start, end } => {
                let c = quote_ident(column);
                if let Some(s) = start {
                    parts.push(format!("{c} >= {s}"));
                }
                if let Some(e) = end {
                    parts.push(format!("{c} < {e}"));
                }
            }
        }
        if parts.is_empty() { None } else { Some(parts.join(" AND ")) }
    }
}

impl fmt::Display for ChunkRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.predicate() {
            Some(p) => f.write_str(&p),
            None => f.write_str("all rows"),
        }
    }
}

/// The wire format of chunk content, as `COPY ... TO STDOUT` produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataFormat {
    /// PostgreSQL COPY text format (tab-separated, `\N` for NULL, backslash escapes).
    #[default]
    Text,
    /// COPY CSV format (comma-separated, empty unquoted field for NULL, `"` quoting).
    Csv,
}

impl DataFormat {
    /// The lower-case name used in flags and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Csv => "csv",
        }
    }
}

impl FromStr for DataFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "csv" => Ok(Self::Csv),
            other => Err(format!("unknown format {other:?}: expected text or csv")),
        }
    }
}

/// One unit of work: a range of one relation, reported under a (possibly parent) table.
///
/// A chunk is self-describing: a [`Source`](crate::Source) can read it from the snapshot with
/// nothing else, which is what makes retries and resume possible.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chunk {
    /// The table the chunk is reported under (the parent of a partition leaf).
    pub table: TableName,
    /// The relation actually read (`FROM ONLY relation`): the table itself or a partition leaf.
    pub relation: TableName,
    /// The chunk's number within `table`.
    pub id: ChunkId,
    /// The rows covered.
    pub range: ChunkRange,
    /// The column names selected, in output order.
    pub columns: Arc<[String]>,
    /// Planned source bytes (heap plus TOAST estimate), used for scheduling and ETA.
    pub estimated_bytes: u64,
}

impl Chunk {
    /// A short human-readable label, e.g. `"public"."t" chunk 00003`.
    pub fn label(&self) -> String {
        format!("{} chunk {}", self.table, self.id)
    }
}

/// What a loading sink's target reported for one chunk: rows it accepted and filtered, and
/// the loads (with their idempotency labels) that carried the chunk.
///
/// # Example
/// ```
/// use pgsnap_core::LoadReceipt;
/// let r = LoadReceipt::new(10, 0, vec!["pgsnap-run-t-00001-0".into()]);
/// assert_eq!(r.loads(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoadReceipt {
    /// Rows the target reported as loaded.
    pub rows_loaded: u64,
    /// Rows the target reported as filtered out (rejected).
    pub rows_filtered: u64,
    /// The labels of the loads that carried the chunk, in order.
    pub labels: Vec<String>,
}

impl LoadReceipt {
    /// A receipt from the target's counters and the loads' labels.
    pub fn new(rows_loaded: u64, rows_filtered: u64, labels: Vec<String>) -> Self {
        Self { rows_loaded, rows_filtered, labels }
    }

    /// How many loads carried the chunk.
    pub fn loads(&self) -> usize {
        self.labels.len()
    }
}

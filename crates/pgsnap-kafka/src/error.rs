//! Typed errors of the CDC handoff: envelope parsing, snapshot parsing and offset resolution.
//!
//! Every error names what is wrong and, where it helps, what to do. [`ResolveError`] converts
//! into [`pgsnap_core::Error`] (as a `kafka` backend error) for the `OffsetResolver` trait.

use pgsnap_core::BoxError;

/// A Kafka record value that is not a Debezium PostgreSQL change event (or transaction
/// metadata record) this crate understands.
///
/// # Example
/// ```
/// use pgsnap_kafka::envelope::parse_value;
/// use pgsnap_kafka::EnvelopeError;
/// let err = parse_value(Some(br#"{"hello":"world"}"#)).unwrap_err();
/// assert!(matches!(err, EnvelopeError::Missing { ref field } if field == "op"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes are not JSON at all (wrong converter: Avro, Protobuf, string?).
    #[error(
        "record value is not JSON ({0}); pgsnap expects Debezium events written with the \
         Kafka Connect JsonConverter"
    )]
    NotJson(#[source] serde_json::Error),
    /// The JSON is not an object.
    #[error("not a Debezium change event: the value is a JSON {found}, not an object")]
    NotAnObject {
        /// The JSON type found (`array`, `string`, ...).
        found: &'static str,
    },
    /// A field every Debezium change event has is missing.
    #[error(
        "not a Debezium change event: field `{field}` is missing (is this topic written by the \
         Debezium PostgreSQL connector with the JsonConverter?)"
    )]
    Missing {
        /// The JSON path of the missing field, e.g. `payload.source`.
        field: String,
    },
    /// A field is present but has the wrong type or an unknown value.
    #[error("Debezium change event: field `{field}` is invalid: {reason}")]
    Invalid {
        /// The JSON path of the field, e.g. `source.sequence`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A `pg_current_snapshot()` text (`xmin:xmax:xip,...`) that cannot be parsed.
///
/// # Example
/// ```
/// use pgsnap_kafka::xid::PgSnapshot;
/// let err = "10:5:".parse::<PgSnapshot>().unwrap_err();
/// assert!(err.to_string().contains("xmin 10 is greater than xmax 5"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid pg_current_snapshot() text {input:?}: {reason} (expected `xmin:xmax:xip1,xip2,...` \
     as returned by SELECT pg_current_snapshot() on PostgreSQL 13+)"
)]
pub struct SnapshotParseError {
    /// The text that was parsed.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Offset resolution failed for a topic partition.
///
/// # Example
/// ```
/// use pgsnap_kafka::ResolveError;
/// let e = ResolveError::NotASuffix {
///     topic: "pg.public.t".into(), partition: 2, offset: 17, answer: 15,
///     reason: "offset 17 is visible in the snapshot".into(),
/// };
/// assert!(e.to_string().contains("pg.public.t[2]"));
/// let core: pgsnap_core::Error = e.into();
/// assert!(core.to_string().contains("kafka"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// Reading the partition failed.
    #[error("{topic}[{partition}]: reading the partition failed: {source}")]
    Log {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The reader's error.
        #[source]
        source: BoxError,
    },
    /// A record value could not be classified because it is not a Debezium event.
    #[error("{topic}[{partition}] offset {offset}: {source}")]
    Envelope {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// Why the value is not understood.
        #[source]
        source: EnvelopeError,
    },
    /// A change event has no `txId` (incremental-snapshot records), so its visibility in the
    /// snapshot cannot be decided.
    #[error(
        "{topic}[{partition}] offset {offset}: change event has no source.txId (an incremental \
         snapshot record?); its position relative to the snapshot cannot be decided. Use the \
         slot-first mode, or start at a time lower bound and rely on primary-key upserts"
    )]
    NoTxId {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
    },
    /// The events invisible in the snapshot do not form a clean suffix of the partition.
    #[error(
        "{topic}[{partition}]: the log is not a clean prefix/suffix split at offset {answer}: \
         {reason} (offset {offset}). Restart duplicates or a snapshot that is not a slot \
         snapshot break the order; use the time mode (a timestamp lower bound and a forward \
         scan) and rely on primary-key upserts"
    )]
    NotASuffix {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset of the record that violates the split.
        offset: i64,
        /// The boundary the binary search found.
        answer: i64,
        /// What was seen.
        reason: String,
    },
    /// The resolved (or recorded) offset is below the partition's low watermark: events
    /// after the snapshot were deleted by retention.
    #[error(
        "{topic}[{partition}]: offset {offset} is below the low watermark {low}: events after \
         the snapshot are gone (retention or deletion); take a new snapshot"
    )]
    Retention {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset that should be replayed from.
        offset: i64,
        /// The partition's current low watermark.
        low: i64,
    },
    /// A recorded offset is above the partition's high watermark (wrong cluster, topic
    /// re-created?).
    #[error(
        "{topic}[{partition}]: recorded offset {offset} is above the high watermark {high}; \
         was the topic deleted and re-created, or is this another cluster?"
    )]
    BeyondEnd {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The recorded offset.
        offset: i64,
        /// The partition's current high watermark.
        high: i64,
    },
    /// A forward scan read more records than allowed without finding its answer.
    #[error(
        "{topic}[{partition}]: scanned {scanned} records from offset {from} without an answer \
         (limit {limit}); raise the scan limit or use a later time lower bound"
    )]
    ScanLimit {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Where the scan started.
        from: i64,
        /// Records scanned.
        scanned: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The recorded `pg_current_snapshot()` text is unusable.
    #[error(transparent)]
    Snapshot(#[from] SnapshotParseError),
    /// The Kafka Connect offset value is not understood.
    #[error("Kafka Connect offset value: {0}")]
    ConnectOffset(String),
}

impl From<ResolveError> for pgsnap_core::Error {
    fn from(e: ResolveError) -> Self {
        pgsnap_core::Error::from_backend(pgsnap_core::ErrorKind::Offsets, "kafka", e)
    }
}

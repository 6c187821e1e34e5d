//! The crate's one error type, [`Error`], and the one place that decides which failures are
//! worth retrying (its conversion into [`pgsnap_core::Error`]).
//!
//! Every variant names what is wrong and the culprit (topic, partition, offset, connector,
//! field) and, where it helps, what to do. The variants fall into groups, by the part of the
//! crate that returns them:
//!
//! - record values that are not Debezium events ([`envelope`](crate::envelope)):
//!   [`NotJson`](Error::NotJson), [`NotAnObject`](Error::NotAnObject),
//!   [`MissingField`](Error::MissingField), [`InvalidField`](Error::InvalidField);
//! - a `pg_current_snapshot()` text that cannot be parsed ([`xid`](crate::xid)):
//!   [`SnapshotText`](Error::SnapshotText);
//! - offset resolution ([`resolve`](crate::resolve), and the resolver of feature
//!   `rdkafka`): [`Log`](Error::Log), [`Envelope`](Error::Envelope),
//!   [`NoTxId`](Error::NoTxId), [`NotASuffix`](Error::NotASuffix),
//!   [`Retention`](Error::Retention), [`BeyondEnd`](Error::BeyondEnd),
//!   [`ScanLimit`](Error::ScanLimit), [`ConnectOffset`](Error::ConnectOffset),
//!   [`TakenAt`](Error::TakenAt);
//! - the Kafka client (module `kafka`, feature `rdkafka`): `KafkaClient`, `KafkaMetadata`,
//!   `KafkaConnection` (TLS, SASL or transport, see [`ConnectionFailure`]),
//!   [`NoSuchTopic`](Error::NoSuchTopic), `KafkaRequest`, `KafkaRead`,
//!   [`KafkaReadTimeout`](Error::KafkaReadTimeout), [`InvalidOffset`](Error::InvalidOffset),
//!   [`BlockingTask`](Error::BlockingTask);
//! - Kafka client settings ([`client_config`](crate::client_config), and librdkafka
//!   refusing one when a client is created): [`KafkaConfig`](Error::KafkaConfig);
//! - the renderers ([`render`](crate::render)): [`NoPartitions`](Error::NoPartitions),
//!   [`NegativeOffset`](Error::NegativeOffset),
//!   [`NegativePartition`](Error::NegativePartition), [`Empty`](Error::Empty),
//!   [`UnsupportedColumnName`](Error::UnsupportedColumnName),
//!   [`BadColumn`](Error::BadColumn), [`InvalidValue`](Error::InvalidValue),
//!   [`ConnectorConfig`](Error::ConnectorConfig);
//! - the Kafka Connect client ([`connect`](crate::connect)):
//!   [`ConnectUrl`](Error::ConnectUrl), [`ConnectPayload`](Error::ConnectPayload),
//!   [`ConnectIo`](Error::ConnectIo), [`ConnectTimeout`](Error::ConnectTimeout),
//!   [`ConnectResponse`](Error::ConnectResponse), [`ConnectStatus`](Error::ConnectStatus),
//!   [`ConnectorExists`](Error::ConnectorExists), [`OffsetsStored`](Error::OffsetsStored),
//!   [`ConnectConflict`](Error::ConnectConflict), [`ConnectCaFile`](Error::ConnectCaFile),
//!   [`ConnectTls`](Error::ConnectTls), [`ConnectAuth`](Error::ConnectAuth),
//!   [`ConnectRedirect`](Error::ConnectRedirect).
//!
//! [`Error`] converts into [`pgsnap_core::Error`] (backend `kafka`) for the `OffsetResolver`
//! trait and the jobs: broker and worker I/O that may go away by itself (transport errors,
//! timeouts, broker not available, all brokers down, connection refused; see
//! [`Error::is_temporary`]) becomes a temporary [`Offsets`](pgsnap_core::ErrorKind::Offsets)
//! error, invalid input and configuration [`Config`](pgsnap_core::ErrorKind::Config), the rest
//! a permanent [`Offsets`](pgsnap_core::ErrorKind::Offsets) error. The converted error keeps this one as its
//! source (except `Config`, which is a message).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::BoxError;

/// The backend name of the [`pgsnap_core::Error`] values converted from [`Error`].
pub(crate) const BACKEND: &str = "kafka";

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate. See the [module docs](self) for the groups
/// and for how it converts into [`pgsnap_core::Error`].
///
/// # Example
/// ```
/// use pgsnap_kafka::Error;
/// let e = Error::NotASuffix {
///     topic: "pg.public.t".into(), partition: 2, offset: 17, answer: 15,
///     reason: "offset 17 is visible in the snapshot".into(),
/// };
/// assert!(e.to_string().contains("pg.public.t[2]"));
/// assert!(!e.is_temporary());
/// let core: pgsnap_core::Error = e.into();
/// assert!(core.to_string().starts_with("kafka: "));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Record values (envelope) ----
    /// A record value is not JSON at all (wrong converter: Avro, Protobuf, string?).
    #[error(
        "record value is not JSON ({0}); pgsnap expects Debezium events written with the \
         Kafka Connect JsonConverter"
    )]
    NotJson(#[source] serde_json::Error),
    /// A record value's JSON is not an object.
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
    MissingField {
        /// The JSON path of the missing field, e.g. `payload.source`.
        field: String,
    },
    /// A field of a change event is present but has the wrong type or an unknown value.
    #[error("Debezium change event: field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The JSON path of the field, e.g. `source.sequence`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    // ---- Snapshot text (xid) ----
    /// A `pg_current_snapshot()` text (`xmin:xmax:xip,...`) that cannot be parsed.
    #[error(
        "invalid pg_current_snapshot() text {input:?}: {reason} (expected \
         `xmin:xmax:xip1,xip2,...` as returned by SELECT pg_current_snapshot() on PostgreSQL 13+)"
    )]
    SnapshotText {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    // ---- Offset resolution ----
    /// Reading a partition through a [`PartitionLog`](crate::resolve::PartitionLog) failed.
    #[error("{topic}[{partition}]: reading the partition failed: {source}")]
    Log {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The reader's error (an [`Error`] for this crate's Kafka client).
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
        /// Why the value is not understood: [`NotJson`](Error::NotJson),
        /// [`NotAnObject`](Error::NotAnObject), [`MissingField`](Error::MissingField) or
        /// [`InvalidField`](Error::InvalidField).
        #[source]
        source: Box<Error>,
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
    /// The Kafka Connect offset value of a connector is not understood.
    #[error("Kafka Connect offset value: {0}")]
    ConnectOffset(String),
    /// The snapshot's `taken_at` is not the UTC time the time mode needs.
    #[error("snapshot taken_at {taken_at:?} is not a UTC time like 2026-01-01T00:00:00Z")]
    TakenAt {
        /// The recorded `taken_at`.
        taken_at: String,
    },

    // ---- Kafka client (rdkafka) ----
    /// librdkafka refused the client configuration.
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    #[error("kafka {brokers}: creating the consumer: {source}")]
    KafkaClient {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// librdkafka's error (boxed: it is large).
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A topic's metadata could not be read.
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    #[error("kafka {brokers}: reading the metadata of topic {topic}: {source}")]
    KafkaMetadata {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// librdkafka's error (boxed: it is large).
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A request failed after librdkafka reported that it could not connect to a broker:
    /// the TLS handshake failed (an untrusted certificate, a plaintext listener), the SASL
    /// login was refused, or the connection broke. `reason` is librdkafka's own account,
    /// which names the broker (`ssl://host:port/id: SSL handshake failed: ...`) and never
    /// holds a password.
    ///
    /// A TLS or login failure is returned as soon as librdkafka reports it (waiting does not
    /// fix a certificate or a password) and is permanent; a broken connection is temporary.
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    #[error("kafka {brokers}: {what}: {reason} ({})", failure.hint())]
    KafkaConnection {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// What was asked (`reading the metadata of topic pg.public.t`, ...).
        what: String,
        /// What kind of failure librdkafka reported.
        failure: ConnectionFailure,
        /// librdkafka's account of it, naming the broker.
        reason: String,
    },
    /// The topic does not exist (or has no partitions).
    #[error("kafka {brokers}: topic {topic} does not exist{detail}")]
    NoSuchTopic {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// The broker's error code, if it sent one (`: ...`), else empty.
        detail: String,
    },
    /// A request about one partition (watermarks, time lookup) failed.
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    #[error("kafka {brokers}: {topic}[{partition}]: {what}: {source}")]
    KafkaRequest {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// What was asked (`fetching watermarks`, `offsets_for_times at 1700000000000`, ...).
        what: String,
        /// librdkafka's error (boxed: it is large).
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// Reading records from an offset failed.
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    #[error("kafka {brokers}: {topic}[{partition}]: reading from offset {offset}: {source}")]
    KafkaRead {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The offset the read started at.
        offset: i64,
        /// librdkafka's error (boxed: it is large).
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A read got fewer records than the high watermark promised within the timeout.
    #[error(
        "kafka {brokers}: {topic}[{partition}]: reading from offset {offset} timed out after \
         {waited:?} with {got} records (next offset {next}, high watermark {high})"
    )]
    KafkaReadTimeout {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The offset the read started at.
        offset: i64,
        /// Records received.
        got: usize,
        /// The next offset expected.
        next: i64,
        /// The high watermark read before the read.
        high: i64,
        /// How long the read waited.
        waited: Duration,
    },
    /// A negative offset was asked for.
    #[error("kafka {brokers}: {topic}[{partition}]: invalid offset {offset}")]
    InvalidOffset {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The offset.
        offset: i64,
    },
    /// The blocking task running a librdkafka call panicked or was cancelled.
    #[error("kafka {brokers}: {topic}[{partition}]: the blocking Kafka call failed: {source}")]
    BlockingTask {
        /// Bootstrap servers.
        brokers: Arc<str>,
        /// Topic.
        topic: Arc<str>,
        /// Partition (-1 while listing a topic's partitions).
        partition: i32,
        /// Tokio's error.
        #[source]
        source: tokio::task::JoinError,
    },

    // ---- Kafka client settings ----
    /// A Kafka client setting that pgsnap refuses ([`KafkaClientConfig::validate`]) or that
    /// librdkafka rejected when a client was created, or a settings file that cannot be read.
    /// Names the key, the file and the line when known; never holds a value.
    ///
    /// [`KafkaClientConfig::validate`]: crate::KafkaClientConfig::validate
    #[error("{}", kafka_config_message(key.as_deref(), file.as_deref(), *line, reason))]
    KafkaConfig {
        /// The setting's key, when one setting is at fault.
        key: Option<String>,
        /// The properties file it was read from.
        file: Option<PathBuf>,
        /// The line of the file (1-based).
        line: Option<usize>,
        /// What is wrong, and what to do.
        reason: String,
    },

    // ---- Renderers ----
    /// The offset map for a topic has no partitions.
    #[error(
        "topic {topic:?}: no partitions given; a Routine Load job needs an explicit offset for every partition"
    )]
    NoPartitions {
        /// The Kafka topic.
        topic: String,
    },
    /// A partition's offset is negative (`-1` = `OFFSET_END`, `-2` = `OFFSET_BEGINNING` in
    /// StarRocks; neither is an exact position).
    #[error(
        "topic {topic:?} partition {partition}: offset {offset} is not an exact position (must be >= 0)"
    )]
    NegativeOffset {
        /// The Kafka topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The refused offset.
        offset: i64,
    },
    /// A partition number is negative.
    #[error("topic {topic:?}: partition {partition} is negative")]
    NegativePartition {
        /// The Kafka topic.
        topic: String,
        /// The refused partition number.
        partition: i32,
    },
    /// A required field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A column name cannot be written as a dot-notation JSON path segment
    /// (`$.payload.after.<name>`). Only `[A-Za-z_][A-Za-z0-9_]*` is rendered: bracket
    /// notation (`$.after['a.b']`) is not supported by our evaluator and its support in
    /// StarRocks `jsonpaths` is unverified, so such names are refused.
    #[error(
        "column {column:?} cannot be used as a JSON path segment (only [A-Za-z_][A-Za-z0-9_]* is supported)"
    )]
    UnsupportedColumnName {
        /// The refused column name.
        column: String,
    },
    /// A column name appears twice, or a key column is not among the columns.
    #[error("column {column:?}: {reason}")]
    BadColumn {
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value contains a character that the target format cannot carry safely.
    #[error("{field} {value:?}: {reason}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// The refused value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A Debezium connector config that cannot be read (neither a JSON object of settings nor
    /// Java properties).
    #[error("cannot read the Debezium connector config: {0}")]
    ConnectorConfig(String),

    // ---- Kafka Connect client ----
    /// The worker URL is not `http[s]://host[:port][/path]` (or the HTTP client cannot be
    /// set up for it).
    #[error("Kafka Connect URL {url:?}: {reason}")]
    ConnectUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload is not `{"name": "…", "config": {…}}`.
    #[error("Kafka Connect payload for {url}: {reason}")]
    ConnectPayload {
        /// Worker URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting to the worker, sending or receiving failed.
    #[error("Kafka Connect {url}: {method} {path}: {source}")]
    ConnectIo {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A request took longer than the client's timeout.
    #[error("Kafka Connect {url}: {method} {path}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The answer is not an HTTP response the client understands, or not the JSON expected.
    #[error("Kafka Connect {url}: {method} {path}: bad response: {reason}")]
    ConnectResponse {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The worker answered with an unexpected status.
    #[error("Kafka Connect {url}: {method} {path}: HTTP {status}: {message}")]
    ConnectStatus {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Connect's `message` (or the body's start), secrets redacted.
        message: String,
    },
    /// Refused: a connector with this name exists on the worker.
    #[error(
        "Kafka Connect {url}: refusing to submit connector {connector:?}: a connector with this \
         name already exists{offsets}; pick a new connector name (or delete the existing \
         connector and its offsets)",
        offsets = match stored_offsets {
            Some(n) => format!(" ({n} stored offsets)"),
            None => String::new(),
        }
    )]
    ConnectorExists {
        /// Worker URL.
        url: String,
        /// The connector name.
        connector: String,
        /// How many stored offsets `GET /connectors/{name}/offsets` listed, when it answered.
        stored_offsets: Option<usize>,
    },
    /// Refused: Connect has stored offsets for this name; a connector of that name would
    /// resume from them instead of starting from pgsnap's slot.
    #[error(
        "Kafka Connect {url}: refusing to submit connector {connector:?}: Connect has {count} \
         stored offsets for this name, so the connector would resume from them instead of the \
         snapshot's slot; pick a new connector name, or delete the offsets (stop the \
         connector, DELETE /connectors/{connector}/offsets)"
    )]
    OffsetsStored {
        /// Worker URL.
        url: String,
        /// The connector name.
        connector: String,
        /// Number of stored source partitions with an offset.
        count: usize,
    },
    /// `POST /connectors` answered 409: the name was taken meanwhile, or the worker group is
    /// rebalancing.
    #[error(
        "Kafka Connect {url}: creating connector {connector:?} conflicted (HTTP 409): {message}; \
         if the name is taken pick a new one, if the workers are rebalancing retry later"
    )]
    ConnectConflict {
        /// Worker URL.
        url: String,
        /// The connector name.
        connector: String,
        /// Connect's message, secrets redacted.
        message: String,
    },
    /// The CA file for an `https://` worker cannot be used.
    #[error("Kafka Connect CA file {}: {reason}", path.display())]
    ConnectCaFile {
        /// The file given.
        path: std::path::PathBuf,
        /// What is wrong with it (unreadable, not PEM, no certificate).
        reason: String,
    },
    /// The TLS handshake with an `https://` worker failed: most often its certificate is not
    /// trusted (no CA of the CA file, nor a web PKI root, signed it). Not temporary.
    #[error("Kafka Connect {url}: {method} {path}: TLS handshake failed: {reason}")]
    ConnectTls {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// What failed and what to do.
        reason: String,
        /// rustls' error.
        #[source]
        source: BoxError,
    },
    /// The worker refused the request's credentials (HTTP 401), or the user is not allowed
    /// (HTTP 403). Never carries the password. Not temporary.
    #[error(
        "Kafka Connect {url}: {method} {path}: HTTP {status}: {refusal}; check the user and the \
         password (ConnectClient::with_basic_auth) [{message}]",
        refusal = auth_refusal(*status, user.as_deref())
    )]
    ConnectAuth {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// The basic-auth user sent, if any.
        user: Option<String>,
        /// Connect's message (or the body's start), secrets redacted.
        message: String,
    },
    /// The worker answered with a redirect, which the client refuses to follow (it could
    /// carry the credentials to another host).
    #[error(
        "Kafka Connect {url}: {method} {path}: HTTP {status} redirect to {} refused: the client \
         follows no redirects; give the URL it points to",
        location.as_deref().unwrap_or("(no Location header)")
    )]
    ConnectRedirect {
        /// Worker URL.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status (3xx).
        status: u16,
        /// The `Location` header (a password in it removed), if any.
        location: Option<String>,
    },
}

/// What a 401 or 403 means, naming the user.
fn auth_refusal(status: u16, user: Option<&str>) -> String {
    match (status, user) {
        (401, Some(u)) => format!("the worker refused the credentials of user {u:?}"),
        (_, Some(u)) => {
            format!("the worker refused user {u:?} (credentials refused or not allowed)")
        }
        (401, None) => "the worker requires credentials and none were given".into(),
        (_, None) => "the worker refused the request without credentials".into(),
    }
}

/// What kind of broker connection failure librdkafka reported
/// ([`Error::KafkaConnection`]).
///
/// ```
/// use pgsnap_kafka::ConnectionFailure;
/// let f = ConnectionFailure::of("ssl://k:9093/bootstrap: SSL handshake failed: certificate verify failed");
/// assert_eq!(f, Some(ConnectionFailure::Tls));
/// assert!(f.unwrap().is_permanent());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionFailure {
    /// The TLS handshake failed: the broker's certificate is not trusted
    /// (`ssl.ca.location`), the client's is refused, or the listener does not speak TLS.
    Tls,
    /// The SASL handshake or login failed: mechanism, user name or password.
    Authentication,
    /// The client and the listener disagree on the protocol (a plaintext client on a TLS or
    /// SASL listener).
    Protocol,
    /// The connection was refused, reset or timed out.
    Transport,
}

impl ConnectionFailure {
    /// The kind of failure a librdkafka log or error line tells of, `None` when it tells of
    /// none.
    pub fn of(reason: &str) -> Option<ConnectionFailure> {
        let lower = reason.to_ascii_lowercase();
        if lower.contains("ssl handshake failed") || lower.contains("certificate verify failed") {
            Some(ConnectionFailure::Tls)
        } else if lower.contains("sasl")
            && (lower.contains("authentication failed")
                || lower.contains("handshake failed")
                || lower.contains("mechanism"))
        {
            Some(ConnectionFailure::Authentication)
        } else if lower.contains("security.protocol") {
            Some(ConnectionFailure::Protocol)
        } else if lower.contains("connect to ")
            || lower.contains("connection refused")
            || lower.contains("disconnected")
            || lower.contains("timed out")
        {
            Some(ConnectionFailure::Transport)
        } else {
            None
        }
    }

    /// Whether waiting cannot help: a certificate or a password does not fix itself.
    pub fn is_permanent(self) -> bool {
        matches!(self, ConnectionFailure::Tls | ConnectionFailure::Authentication)
    }

    /// What to check, in words (part of [`Error::KafkaConnection`]'s message).
    pub fn hint(self) -> &'static str {
        match self {
            ConnectionFailure::Tls => {
                "check the Kafka client settings security.protocol and ssl.ca.location: the CA \
                 file must hold the CA that signed the broker's certificate"
            }
            ConnectionFailure::Authentication => {
                "check the Kafka client settings sasl.mechanism, sasl.username and sasl.password"
            }
            ConnectionFailure::Protocol => {
                "check the Kafka client setting security.protocol against the broker's listener"
            }
            ConnectionFailure::Transport => "is the broker up and reachable at this address?",
        }
    }
}

impl Error {
    /// Whether the failure is broker or worker I/O that may go away by itself, so retrying
    /// the same operation may succeed: transport errors, timeouts, broker or partition
    /// leader not available, all brokers down, connection refused or reset. Converted into
    /// a temporary [`pgsnap_core::Error`].
    ///
    /// Every [`ConnectIo`](Error::ConnectIo) and [`ConnectTimeout`](Error::ConnectTimeout)
    /// is temporary (but not [`ConnectTls`](Error::ConnectTls),
    /// [`ConnectAuth`](Error::ConnectAuth) or [`ConnectRedirect`](Error::ConnectRedirect):
    /// a certificate, credentials or a URL do not fix themselves), as are [`KafkaReadTimeout`](Error::KafkaReadTimeout) and the
    /// librdkafka errors of the transport kind; a [`Log`](Error::Log) is temporary when its
    /// source is (this crate's error or an [`std::io::Error`]).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use pgsnap_kafka::Error;
    /// let e = Error::ConnectTimeout {
    ///     url: "http://connect:8083".into(), method: "GET", path: "/connectors/c".into(),
    ///     timeout: Duration::from_secs(30),
    /// };
    /// assert!(e.is_temporary());
    /// assert!(pgsnap_core::Error::from(e).is_temporary());
    /// ```
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::ConnectIo { .. }
            | Self::ConnectTimeout { .. }
            | Self::KafkaReadTimeout { .. } => true,
            #[cfg(feature = "rdkafka")]
            Self::KafkaMetadata { source, .. }
            | Self::KafkaRequest { source, .. }
            | Self::KafkaRead { source, .. } => is_transport(source),
            #[cfg(feature = "rdkafka")]
            Self::KafkaConnection { failure, .. } => !failure.is_permanent(),
            Self::Log { source, .. } => {
                if let Some(e) = source.downcast_ref::<Error>() {
                    e.is_temporary()
                } else {
                    source.is::<std::io::Error>()
                }
            }
            _ => false,
        }
    }

    /// Whether the failure is invalid input or configuration (converted into
    /// [`pgsnap_core::ErrorKind::Config`]).
    fn is_config(&self) -> bool {
        #[cfg(feature = "rdkafka")]
        if let Self::KafkaClient { .. } = self {
            return true;
        }
        matches!(
            self,
            Self::TakenAt { .. }
                | Self::KafkaConfig { .. }
                | Self::NoPartitions { .. }
                | Self::NegativeOffset { .. }
                | Self::NegativePartition { .. }
                | Self::Empty { .. }
                | Self::UnsupportedColumnName { .. }
                | Self::BadColumn { .. }
                | Self::InvalidValue { .. }
                | Self::ConnectorConfig(_)
                | Self::ConnectUrl { .. }
                | Self::ConnectPayload { .. }
                | Self::ConnectCaFile { .. }
        )
    }
}

/// The message of [`Error::KafkaConfig`]: the setting or the file, where, why.
fn kafka_config_message(
    key: Option<&str>,
    file: Option<&Path>,
    line: Option<usize>,
    reason: &str,
) -> String {
    let at = match (file, line) {
        (Some(f), Some(l)) => format!("{} line {l}", f.display()),
        (Some(f), None) => f.display().to_string(),
        (None, Some(l)) => format!("line {l}"),
        (None, None) => String::new(),
    };
    match (key, at.is_empty()) {
        (Some(k), true) => format!("Kafka client setting {k:?}: {reason}"),
        (Some(k), false) => format!("Kafka client setting {k:?} ({at}): {reason}"),
        (None, true) => format!("Kafka client settings: {reason}"),
        (None, false) if file.is_some() => format!("Kafka client settings file {at}: {reason}"),
        (None, false) => format!("Kafka client settings, {at}: {reason}"),
    }
}

/// librdkafka's transport-kind errors: the broker may be back on the next try.
#[cfg(feature = "rdkafka")]
fn is_transport(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::BrokerTransportFailure
                | C::Resolve
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::TimedOutQueue
                | C::RequestTimedOut
                | C::BrokerNotAvailable
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NetworkException
        )
    )
}

/// The one place that decides how this crate's failures look to pgsnap: temporary broker
/// I/O is temporary, invalid input and configuration is [`Config`](pgsnap_core::ErrorKind::Config),
/// everything an [`Offsets`](pgsnap_core::ErrorKind::Offsets) error otherwise.
impl From<Error> for pgsnap_core::Error {
    fn from(e: Error) -> Self {
        use pgsnap_core::ErrorKind;
        if e.is_temporary() {
            pgsnap_core::Error::from_backend(ErrorKind::Offsets, BACKEND, e).set_temporary()
        } else if e.is_config() {
            pgsnap_core::Error::config(e.to_string())
        } else {
            pgsnap_core::Error::from_backend(ErrorKind::Offsets, BACKEND, e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> Error {
        Error::ConnectIo {
            url: "http://connect:8083".into(),
            method: "GET",
            path: "/connectors/c".into(),
            source: kind.into(),
        }
    }

    #[test]
    fn librdkafka_failure_lines_are_classified() {
        use ConnectionFailure as F;
        // Lines as librdkafka 2.12 logs them (seen in the TLS tests against tansu + stunnel).
        for (line, want) in [
            (
                "ssl://127.0.0.1:42703/bootstrap: SSL handshake failed: error:0A000086:SSL \
                 routines::certificate verify failed: broker certificate could not be verified",
                Some(F::Tls),
            ),
            (
                "sasl_ssl://127.0.0.1:42871/bootstrap: SASL authentication error: SASL SCRAM \
                 authentication failed: broker responded with unknown-user",
                Some(F::Authentication),
            ),
            (
                "sasl_ssl://k:9093/bootstrap: SASL PLAIN mechanism handshake failed: Broker: \
                 Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-256",
                Some(F::Authentication),
            ),
            (
                "k:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by \
                 incorrect security.protocol configuration (connecting to a SSL listener?)",
                Some(F::Protocol),
            ),
            (
                "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused",
                Some(F::Transport),
            ),
            ("1/1 brokers are down", None),
        ] {
            assert_eq!(F::of(line), want, "{line}");
        }
        assert!(F::Tls.is_permanent() && F::Authentication.is_permanent());
        assert!(!F::Protocol.is_permanent() && !F::Transport.is_permanent());
    }

    #[test]
    fn broker_io_is_temporary() {
        assert!(io(std::io::ErrorKind::ConnectionRefused).is_temporary());
        let timeout = Error::KafkaReadTimeout {
            brokers: "k:9092".into(),
            topic: "pg.public.t".into(),
            partition: 0,
            offset: 5,
            got: 1,
            next: 6,
            high: 9,
            waited: Duration::from_secs(30),
        };
        assert!(timeout.is_temporary());
        let log = |source: BoxError| Error::Log { topic: "t".into(), partition: 0, source };
        assert!(log(Box::new(timeout)).is_temporary());
        assert!(log(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut))).is_temporary());
        assert!(!log("no such partition".into()).is_temporary());
        let core = pgsnap_core::Error::from(io(std::io::ErrorKind::ConnectionReset));
        assert!(core.is_temporary(), "{core:?}");
        assert!(core.to_string().starts_with("kafka: transient failure: Kafka Connect"), "{core}");
    }

    #[cfg(feature = "rdkafka")]
    #[test]
    fn librdkafka_transport_errors_are_temporary() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode as C;
        let request = |source| Error::KafkaRequest {
            brokers: "k:9092".into(),
            topic: "pg.public.t".into(),
            partition: 0,
            what: "fetching watermarks".into(),
            source: Box::new(source),
        };
        for code in [C::AllBrokersDown, C::BrokerTransportFailure, C::OperationTimedOut] {
            assert!(request(KafkaError::MetadataFetch(code)).is_temporary(), "{code:?}");
        }
        let unknown = request(KafkaError::OffsetFetch(C::UnknownPartition));
        assert!(!unknown.is_temporary());
        let core = pgsnap_core::Error::from(unknown);
        assert_eq!((core.kind(), core.backend()), (pgsnap_core::ErrorKind::Offsets, Some("kafka")));
        assert!(!core.is_temporary());
    }

    #[test]
    fn invalid_input_is_config_and_the_rest_backend() {
        let e = Error::ConnectUrl { url: "ftp://x".into(), reason: "expected http://".into() };
        let core = pgsnap_core::Error::from(e);
        assert_eq!(core.kind(), pgsnap_core::ErrorKind::Config);
        assert!(core.to_string().contains("ftp://x"), "{core}");
        let e = Error::Retention { topic: "t".into(), partition: 1, offset: 3, low: 7 };
        let core = pgsnap_core::Error::from(e);
        assert_eq!((core.kind(), core.backend()), (pgsnap_core::ErrorKind::Offsets, Some("kafka")));
        let e = Error::OffsetsStored { url: "u".into(), connector: "c".into(), count: 1 };
        assert!(!e.is_temporary() && !e.is_config());
    }

    #[test]
    fn connect_tls_auth_and_redirects_are_permanent() {
        let (url, path) = ("https://connect:8443".to_owned(), "/connectors/c".to_owned());
        let tls = Error::ConnectTls {
            url: url.clone(),
            method: "GET",
            path: path.clone(),
            reason: "the server's certificate was not trusted".into(),
            source: "invalid peer certificate: UnknownIssuer".into(),
        };
        let auth = Error::ConnectAuth {
            url: url.clone(),
            method: "GET",
            path: path.clone(),
            status: 401,
            user: Some("alice".into()),
            message: "Unauthorized".into(),
        };
        assert!(auth.to_string().contains("refused the credentials of user \"alice\""), "{auth}");
        let redirect = Error::ConnectRedirect {
            url,
            method: "GET",
            path,
            status: 307,
            location: Some("https://elsewhere/".into()),
        };
        assert!(redirect.to_string().contains("307 redirect to https://elsewhere/"), "{redirect}");
        for e in [tls, auth, redirect] {
            assert!(!e.is_temporary() && !e.is_config(), "{e}");
            let core = pgsnap_core::Error::from(e);
            assert!(!core.is_temporary(), "{core}");
            assert_eq!(core.kind(), pgsnap_core::ErrorKind::Offsets);
        }
        let ca = Error::ConnectCaFile { path: "/x/ca.pem".into(), reason: "no certificate".into() };
        assert_eq!(pgsnap_core::Error::from(ca).kind(), pgsnap_core::ErrorKind::Config);
    }
}

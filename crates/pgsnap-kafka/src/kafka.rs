//! Reading Kafka topic partitions as logs: watermarks, reads at an offset, time lookups.
//!
//! [`KafkaLog`] is one partition of one topic, read through an rdkafka [`BaseConsumer`].
//! Every librdkafka call blocks, so each runs in [`tokio::task::spawn_blocking`]. The
//! consumer never joins a group and never commits: `group.id` is a throwaway name,
//! `enable.auto.commit=false`, and partitions are assigned explicitly at the offset a read
//! starts from. `isolation.level=read_committed`, so records of aborted transactions are not
//! returned and the high watermark is the last stable offset.
//!
//! [`KafkaLogs::open`] enumerates a topic's partitions from the broker's metadata; all logs
//! of one [`KafkaLogs`] share one consumer (reads of different partitions are serialised,
//! watermark and time lookups are not).
//!
//! [`KafkaLog`] implements [`PartitionLog`], the resolver's view of a partition.
//!
//! TLS, SASL and any other librdkafka setting come from
//! [`KafkaLogOptions::client_config`] ([`KafkaClientConfig`]), set before pgsnap's own
//! settings; a setting librdkafka refuses is an [`Error::KafkaConfig`] naming the key.
//!
//! Every error names the brokers, topic, partition and offset involved.
//!
//! librdkafka reports a broker it cannot connect to (TLS handshake, SASL login, refused
//! connection) only in its log and error callbacks, while the request itself just times out.
//! The consumer's context (`Observer`) records those reports (delivered when the consumer
//! is polled, which a failed request does), and requests run in slices
//! (1 s, 2 s, 4 s, ... up to the request timeout): after a slice that timed out, a TLS or
//! login failure reported since the request began ends it at once as an
//! [`Error::KafkaConnection`] carrying librdkafka's account (which names the broker); any
//! other failure still waits for the whole timeout and is then reported with the last
//! account.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::client_config::KafkaClientConfig;
use crate::error::{ConnectionFailure, Error, Result};
use crate::resolve::PartitionLog;

/// How long one broker request (metadata, watermarks, time lookup) may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::resolve::LogRecord;

/// Options of [`KafkaLogs::open_with`] / [`KafkaLog::open_with`].
///
/// ```
/// use pgsnap_kafka::KafkaClientConfig;
/// use pgsnap_kafka::kafka::KafkaLogOptions;
///
/// let options = KafkaLogOptions {
///     client_config: KafkaClientConfig::new().with_setting("security.protocol", "SSL"),
///     ..Default::default()
/// };
/// assert!(format!("{options:?}").contains("SSL"));
/// ```
#[derive(Debug, Clone)]
pub struct KafkaLogOptions {
    /// Timeout of one broker request (metadata, watermarks, time lookup), and how long a
    /// read may wait for records the high watermark promised.
    pub request_timeout: Duration,
    /// The user's librdkafka settings (`security.protocol`, `ssl.*`, `sasl.*`, ...), set
    /// before pgsnap's own; the keys pgsnap sets itself are refused
    /// ([`KafkaClientConfig::validate`]).
    pub client_config: KafkaClientConfig,
}

impl Default for KafkaLogOptions {
    fn default() -> Self {
        KafkaLogOptions {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            client_config: KafkaClientConfig::new(),
        }
    }
}

/// The consumer's context: forwards librdkafka's log lines to `tracing` (target
/// `librdkafka`) and keeps the last broker connection failure they tell of.
#[derive(Default)]
struct Observer {
    last_failure: Mutex<Option<(Instant, ConnectionFailure, String)>>,
}

impl Observer {
    fn record(&self, line: &str) {
        if let Some(failure) = ConnectionFailure::of(line) {
            *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), failure, line.to_owned()));
        }
    }

    /// The last failure reported at or after `since`.
    fn failure_since(&self, since: Instant) -> Option<(ConnectionFailure, String)> {
        let last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((at, failure, reason)) if *at >= since => Some((*failure, reason.clone())),
            _ => None,
        }
    }
}

impl ClientContext for Observer {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                self.record(log_message);
                tracing::error!(target: "librdkafka", "{fac} {log_message}");
            }
            RDKafkaLogLevel::Warning => {
                self.record(log_message);
                tracing::warn!(target: "librdkafka", "{fac} {log_message}");
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac} {log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac} {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.record(reason);
        tracing::warn!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ConsumerContext for Observer {}

/// State shared by the logs of one consumer.
struct Shared {
    brokers: Arc<str>,
    timeout: Duration,
    consumer: BaseConsumer<Observer>,
    /// Held while a read assigns and polls (one assignment at a time).
    read_lock: Mutex<()>,
}

/// One partition of one topic, read as a log. Cheap to clone (clones share the consumer
/// and the counters).
#[derive(Clone)]
pub struct KafkaLog {
    shared: Arc<Shared>,
    topic: Arc<str>,
    partition: i32,
    reads: Arc<AtomicU64>,
    records_read: Arc<AtomicU64>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.shared.brokers)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("reads", &self.reads())
            .finish()
    }
}

/// All partitions of one topic, as [`KafkaLog`]s sharing one consumer.
#[derive(Debug, Clone)]
pub struct KafkaLogs {
    topic: String,
    logs: Vec<KafkaLog>,
}

impl KafkaLogs {
    /// Opens every partition of `topic` on `brokers` (`host:port,...`), with default options.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaClient`], [`Error::KafkaMetadata`], or
    /// [`Error::NoSuchTopic`] when the topic does not exist; with options,
    /// [`Error::KafkaConfig`] for a client setting pgsnap or librdkafka refuses.
    pub async fn open(brokers: &str, topic: &str) -> Result<KafkaLogs> {
        KafkaLogs::open_with(brokers, topic, &KafkaLogOptions::default()).await
    }

    /// As [`KafkaLogs::open`], with options.
    ///
    /// # Errors
    ///
    /// As [`KafkaLogs::open`].
    pub async fn open_with(
        brokers: &str,
        topic: &str,
        options: &KafkaLogOptions,
    ) -> Result<KafkaLogs> {
        let shared = Arc::new(Shared::new(brokers, options)?);
        let partitions = {
            let shared = Arc::clone(&shared);
            let owned = topic.to_owned();
            tokio::task::spawn_blocking(move || shared.partitions(&owned)).await.map_err(
                |source| Error::BlockingTask {
                    brokers: Arc::from(brokers),
                    topic: Arc::from(topic),
                    partition: -1,
                    source,
                },
            )??
        };
        let topic_arc: Arc<str> = Arc::from(topic);
        let logs = partitions
            .into_iter()
            .map(|partition| KafkaLog::new(Arc::clone(&shared), Arc::clone(&topic_arc), partition))
            .collect();
        Ok(KafkaLogs { topic: topic.to_owned(), logs })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partitions' logs, in partition order.
    pub fn logs(&self) -> &[KafkaLog] {
        &self.logs
    }

    /// The log of `partition`, if the topic has it.
    pub fn partition(&self, partition: i32) -> Option<&KafkaLog> {
        self.logs.iter().find(|l| l.partition == partition)
    }

    /// Reads of all partitions so far (see [`KafkaLog::reads`]).
    pub fn reads(&self) -> u64 {
        self.logs.iter().map(KafkaLog::reads).sum()
    }
}

impl KafkaLog {
    /// Opens one partition (not checked against the metadata; a missing partition shows
    /// in the first request), with default options.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaClient`] when librdkafka cannot create the client; with options,
    /// [`Error::KafkaConfig`] for a client setting pgsnap or librdkafka refuses.
    pub fn open(brokers: &str, topic: &str, partition: i32) -> Result<KafkaLog> {
        KafkaLog::open_with(brokers, topic, partition, &KafkaLogOptions::default())
    }

    /// As [`KafkaLog::open`], with options.
    ///
    /// # Errors
    ///
    /// As [`KafkaLog::open`].
    pub fn open_with(
        brokers: &str,
        topic: &str,
        partition: i32,
        options: &KafkaLogOptions,
    ) -> Result<KafkaLog> {
        let shared = Arc::new(Shared::new(brokers, options)?);
        Ok(KafkaLog::new(shared, Arc::from(topic), partition))
    }

    fn new(shared: Arc<Shared>, topic: Arc<str>, partition: i32) -> KafkaLog {
        KafkaLog {
            shared,
            topic,
            partition,
            reads: Arc::new(AtomicU64::new(0)),
            records_read: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.shared.brokers
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// How many times [`KafkaLog::read_from`] asked the broker for records (reads at or
    /// past the high watermark answer empty without asking and are not counted).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// How many records [`KafkaLog::read_from`] returned in total.
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    /// The partition's `(low, high)` watermarks: the first offset still stored and the
    /// offset the next record will get (the last stable offset under `read_committed`).
    ///
    /// # Errors
    ///
    /// [`Error::KafkaRequest`] when the broker does not answer.
    pub async fn watermarks(&self) -> Result<(i64, i64)> {
        let this = self.clone();
        self.blocking(move || this.watermarks_blocking()).await?
    }

    /// Up to `max` records from `offset` on, in offset order. Empty when `offset` is at or
    /// past the high watermark (read before the records) or `max` is 0. Offsets may have
    /// gaps (compaction, transaction markers, aborted records).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOffset`] for a negative offset, [`Error::KafkaRead`] when
    /// the broker reports an error (e.g. the offset is below the low watermark), and
    /// [`Error::KafkaReadTimeout`] when records below the high watermark do not arrive
    /// within the request timeout.
    pub async fn read_from(&self, offset: i64, max: usize) -> Result<Vec<LogRecord>> {
        if offset < 0 {
            return Err(Error::InvalidOffset {
                brokers: Arc::clone(&self.shared.brokers),
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                offset,
            });
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let this = self.clone();
        self.blocking(move || this.read_blocking(offset, max)).await?
    }

    /// The first offset whose record timestamp is at or after `ts_ms` (milliseconds since
    /// the epoch), or `None` when no such record exists (librdkafka answers end / -1). A
    /// caller that needs an offset then uses the high watermark it read *before* this call.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaRequest`] when the broker does not answer or answers an error.
    pub async fn offset_for_time(&self, ts_ms: i64) -> Result<Option<i64>> {
        let this = self.clone();
        self.blocking(move || this.offset_for_time_blocking(ts_ms)).await?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f).await.map_err(|source| Error::BlockingTask {
            brokers: Arc::clone(&self.shared.brokers),
            topic: Arc::clone(&self.topic),
            partition: self.partition,
            source,
        })
    }

    fn partition_error(&self, what: impl Into<String>, source: KafkaError) -> Error {
        Error::KafkaRequest {
            brokers: Arc::clone(&self.shared.brokers),
            topic: Arc::clone(&self.topic),
            partition: self.partition,
            what: what.into(),
            source: Box::new(source),
        }
    }

    fn read_error(&self, offset: i64, source: KafkaError) -> Error {
        Error::KafkaRead {
            brokers: Arc::clone(&self.shared.brokers),
            topic: Arc::clone(&self.topic),
            partition: self.partition,
            offset,
            source: Box::new(source),
        }
    }

    fn watermarks_blocking(&self) -> Result<(i64, i64)> {
        let what = "fetching watermarks";
        self.shared.request(
            || format!("{}[{}]: {what}", self.topic, self.partition),
            |timeout| self.shared.consumer.fetch_watermarks(&self.topic, self.partition, timeout),
            |e| self.partition_error(what, e),
        )
    }

    fn offset_for_time_blocking(&self, ts_ms: i64) -> Result<Option<i64>> {
        let what = || format!("offsets_for_times at {ts_ms} ms");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(ts_ms))
            .map_err(|e| self.partition_error(what(), e))?;
        let answer = self.shared.request(
            || format!("{}[{}]: {}", self.topic, self.partition, what()),
            |timeout| self.shared.consumer.offsets_for_times(tpl.clone(), timeout),
            |e| self.partition_error(what(), e),
        )?;
        let elem = answer.find_partition(&self.topic, self.partition).ok_or_else(|| {
            self.partition_error(
                what(),
                KafkaError::OffsetFetch(rdkafka::types::RDKafkaErrorCode::UnknownPartition),
            )
        })?;
        elem.error().map_err(|e| self.partition_error(what(), e))?;
        match elem.offset() {
            Offset::Offset(n) if n >= 0 => Ok(Some(n)),
            Offset::End | Offset::Invalid => Ok(None),
            Offset::OffsetTail(_) | Offset::Offset(_) | Offset::Beginning | Offset::Stored => {
                Err(self.partition_error(
                    what(),
                    KafkaError::OffsetFetch(rdkafka::types::RDKafkaErrorCode::InvalidArgument),
                ))
            }
        }
    }

    fn read_blocking(&self, offset: i64, max: usize) -> Result<Vec<LogRecord>> {
        let (_, high) = self.watermarks_blocking()?;
        if offset >= high {
            return Ok(Vec::new());
        }
        // The last offset this read must reach (records may stop earlier at a gap at the
        // end: transaction markers, aborted records; partition EOF ends the read then).
        let want_last = high.min(offset.saturating_add(max as i64)) - 1;
        let consumer = &self.shared.consumer;
        let _guard = self.shared.read_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
            .map_err(|e| self.read_error(offset, e))?;
        consumer.assign(&tpl).map_err(|e| self.read_error(offset, e))?;
        let result = self.poll_records(offset, max, want_last, high);
        let _ = consumer.unassign();
        if let Ok(records) = &result {
            self.records_read.fetch_add(records.len() as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_records(
        &self,
        offset: i64,
        max: usize,
        want_last: i64,
        high: i64,
    ) -> Result<Vec<LogRecord>> {
        let started = Instant::now();
        let mut records = Vec::new();
        let mut next = offset;
        loop {
            let waited = started.elapsed();
            if waited > self.shared.timeout {
                return Err(Error::KafkaReadTimeout {
                    brokers: Arc::clone(&self.shared.brokers),
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset,
                    got: records.len(),
                    next,
                    high,
                    waited,
                });
            }
            match self.shared.consumer.poll(Duration::from_millis(100)) {
                None => {
                    let what = || {
                        format!("{}[{}]: reading from offset {offset}", self.topic, self.partition)
                    };
                    if let Some(e) = self.shared.permanent_failure_since(started, what) {
                        return Err(e);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) if p == self.partition => {
                    return Ok(records);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => return Err(self.read_error(offset, e)),
                Some(Ok(msg)) => {
                    // Leftovers of another assignment, or records before the start.
                    if msg.topic() != &*self.topic
                        || msg.partition() != self.partition
                        || msg.offset() < next
                    {
                        continue;
                    }
                    next = msg.offset() + 1;
                    records.push(LogRecord {
                        offset: msg.offset(),
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                        timestamp_ms: msg.timestamp().to_millis(),
                    });
                    if records.len() >= max || msg.offset() >= want_last {
                        return Ok(records);
                    }
                }
            }
        }
    }
}

/// The resolver's view of a partition; errors are this crate's [`Error`]s, boxed.
#[async_trait::async_trait]
impl PartitionLog for KafkaLog {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn partition(&self) -> i32 {
        self.partition
    }

    async fn watermarks(&self) -> Result<(i64, i64), pgsnap_core::BoxError> {
        Ok(KafkaLog::watermarks(self).await?)
    }

    async fn read_from(
        &self,
        offset: i64,
        max: usize,
    ) -> Result<Vec<LogRecord>, pgsnap_core::BoxError> {
        Ok(KafkaLog::read_from(self, offset, max).await?)
    }
}

impl Shared {
    fn new(brokers: &str, options: &KafkaLogOptions) -> Result<Shared> {
        // The user's settings first, then pgsnap's own (which the user's may not name).
        let mut config = ClientConfig::new();
        options.client_config.apply_to(&mut config)?;
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("pgsnap-reader-{}", throwaway_suffix()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "error")
            .set("allow.auto.create.topics", "false")
            // A fetch the broker holds at the end of the partition delays the next read's
            // fetch (one in flight per broker): keep that wait short. Reads are short-lived.
            .set("fetch.wait.max.ms", "20");
        let consumer: BaseConsumer<Observer> =
            config.create_with_context(Observer::default()).map_err(|source| match source {
                // A key or value librdkafka does not accept: the user's setting (pgsnap's own are
                // valid), named, its value hidden when it is a secret.
                KafkaError::ClientConfig(_, description, key, value) => {
                    KafkaClientConfig::refusal(&key, &value, &description)
                }
                source => {
                    Error::KafkaClient { brokers: Arc::from(brokers), source: Box::new(source) }
                }
            })?;
        Ok(Shared {
            brokers: Arc::from(brokers),
            timeout: options.request_timeout,
            consumer,
            read_lock: Mutex::new(()),
        })
    }

    /// Runs the broker request `call` in slices of 1 s, 2 s, 4 s, ... until it answers or the
    /// request timeout has passed (the module docs say why). A slice that timed out after
    /// librdkafka reported a TLS or login failure ends the request with that failure; at the
    /// end of the timeout, or when librdkafka answers that it could not reach a broker, a
    /// reported connection failure replaces librdkafka's bare error code. Every other error
    /// is `wrap`ped at once. `what` describes the request.
    fn request<T>(
        &self,
        what: impl FnOnce() -> String,
        mut call: impl FnMut(Duration) -> KafkaResult<T>,
        wrap: impl FnOnce(KafkaError) -> Error,
    ) -> Result<T> {
        let started = Instant::now();
        let mut slice = Duration::from_secs(1);
        loop {
            let remaining = self.timeout.saturating_sub(started.elapsed());
            let error = match call(slice.min(remaining).max(Duration::from_millis(1))) {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let timed_out = is_timeout(&error);
            let transport = is_broker_failure(&error);
            if !timed_out && !transport {
                return Err(wrap(error));
            }
            self.serve_events();
            let failure = self.consumer.context().failure_since(started);
            let out_of_time = !timed_out || started.elapsed() >= self.timeout;
            match failure {
                Some((failure, reason)) if failure.is_permanent() || out_of_time => {
                    return Err(Error::KafkaConnection {
                        brokers: Arc::clone(&self.brokers),
                        what: what(),
                        failure,
                        reason,
                    });
                }
                _ if out_of_time => return Err(wrap(error)),
                _ => slice = slice.saturating_mul(2),
            }
        }
    }

    /// Lets librdkafka deliver its queued log lines and errors to the `Observer`: rdkafka
    /// routes them through the consumer's queue, which only a poll serves. A read in progress
    /// polls (and holds the read lock) anyway; otherwise nothing is assigned, so the poll
    /// returns no record.
    fn serve_events(&self) {
        match self.read_lock.try_lock() {
            Ok(_guard) => {
                for _ in 0..1000 {
                    if self.consumer.poll(Duration::ZERO).is_none() {
                        break;
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }

    /// A TLS or login failure librdkafka reported at or after `since`, as an error.
    fn permanent_failure_since(
        &self,
        since: Instant,
        what: impl FnOnce() -> String,
    ) -> Option<Error> {
        match self.consumer.context().failure_since(since) {
            Some((failure, reason)) if failure.is_permanent() => Some(Error::KafkaConnection {
                brokers: Arc::clone(&self.brokers),
                what: what(),
                failure,
                reason,
            }),
            _ => None,
        }
    }

    /// The topic's partition ids, sorted.
    fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let metadata = self.request(
            || format!("reading the metadata of topic {topic}"),
            |timeout| self.consumer.fetch_metadata(Some(topic), timeout),
            |source| Error::KafkaMetadata {
                brokers: Arc::clone(&self.brokers),
                topic: Arc::from(topic),
                source: Box::new(source),
            },
        )?;
        let no_such = |detail: String| Error::NoSuchTopic {
            brokers: Arc::clone(&self.brokers),
            topic: Arc::from(topic),
            detail,
        };
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(no_such(String::new()));
        };
        if let Some(err) = t.error() {
            return Err(no_such(format!(": {}", rdkafka::types::RDKafkaErrorCode::from(err))));
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        if ids.is_empty() {
            return Err(no_such(": it has no partitions".to_owned()));
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

/// librdkafka's answer to a request that got no answer in time.
fn is_timeout(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::OperationTimedOut | C::TimedOutQueue | C::RequestTimedOut)
    )
}

/// librdkafka's answer when it could not reach a broker.
fn is_broker_failure(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::Authentication
                | C::SaslAuthenticationFailed
                | C::SSL
        )
    )
}

/// A group id suffix unique enough for a consumer that never joins its group.
fn throwaway_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(config: KafkaClientConfig) -> KafkaLogOptions {
        KafkaLogOptions { client_config: config, ..Default::default() }
    }

    #[test]
    fn settings_librdkafka_or_pgsnap_refuse_are_config_errors_naming_the_key() {
        for (key, value) in [
            ("no.such.setting", "1"),
            ("security.protocol", "carrier-pigeon"),
            ("group.id", "mine"),
            ("sasl.mechanism", "GSSAPI"),
        ] {
            let config = KafkaClientConfig::new().with_setting(key, value);
            let err = KafkaLog::open_with("127.0.0.1:1", "t", 0, &options(config)).unwrap_err();
            assert!(
                matches!(&err, Error::KafkaConfig { key: Some(k), .. } if k == key),
                "{key}: {err:?}"
            );
            assert!(err.to_string().contains(key), "{err}");
            let core = pgsnap_core::Error::from(err);
            assert_eq!(core.kind(), pgsnap_core::ErrorKind::Config, "{core}");
            assert!(!core.is_temporary());
        }
        // Accepted settings reach librdkafka (a plaintext client ignores the SASL ones).
        let fine = KafkaClientConfig::new()
            .with_setting("client.id", "pgsnap-unit")
            .with_setting("sasl.username", "u")
            .with_setting("sasl.password", "p");
        let log = KafkaLog::open_with("127.0.0.1:1", "t", 0, &options(fine)).unwrap();
        assert_eq!(log.brokers(), "127.0.0.1:1");
    }
}

//! Offset resolution over a partition reader: the first Kafka offset, per partition, whose
//! Debezium event is not contained in a pgsnap snapshot.
//!
//! Three modes (see `debezium-handoff.md` §0 and §3):
//! - **slot-first** ([`capture_high_watermarks`] before the connector starts, then
//!   [`slot_first`]): every record Debezium writes on pgsnap's slot is after the snapshot,
//!   so the answer is the high watermark captured before the connector started.
//! - **running** ([`resolve_running`], [`resolve_partition_running`]): the snapshot comes
//!   from a TEMPORARY slot with an exported snapshot, so the transactions visible in it are
//!   exactly those committed before its consistent point, and (Debezium emitting in commit
//!   order) the invisible events form a suffix of each partition. A binary search on "first
//!   event whose `txId` is invisible" finds the boundary in O(log N) reads; a bounded scan
//!   on both sides confirms it, and a violation is [`Error::NotASuffix`].
//! - **time** ([`resolve_partition_time`]): a lower bound from `offsets_for_times` (taken
//!   after reading the high watermark; "no record" means that high watermark, never -1),
//!   then a forward scan to the first invisible event.
//!
//! Tombstones and transaction-metadata records carry no `txId`; they take the class of the
//! change event before them (a tombstone follows its delete), so the answer is always the
//! offset of an invisible change event, or the high watermark. Events without `txId`
//! (incremental snapshots) cannot be placed and are an error ([`Error::NoTxId`]).
//!
//! Before trusting the running mode, check with [`connector_position`] that the connector
//! has committed past the snapshot's consistent point; otherwise pre-snapshot transactions
//! may still be on their way and the answer may replay events already in the snapshot.

use std::fmt::Debug;
use std::future::Future;

use async_trait::async_trait;
use pgsnap_core::{BoxError, Lsn, OffsetMap};
use serde_json::Value;

use crate::envelope::{Event, Origin, parse_value};
use crate::error::{Error, Result};
use crate::xid::PgSnapshot;

/// One Kafka record as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRecord {
    /// The record's offset.
    pub offset: i64,
    /// The key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// The value bytes; `None` for tombstones.
    pub value: Option<Vec<u8>>,
    /// The record timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
}

/// Read access to one topic partition. Implemented on Kafka by the rdkafka reader and in
/// memory by tests. Object safe.
///
/// # Example
/// ```
/// use pgsnap_kafka::resolve::{LogRecord, PartitionLog};
/// use pgsnap_core::BoxError;
/// #[derive(Debug)]
/// struct Empty;
/// #[async_trait::async_trait]
/// impl PartitionLog for Empty {
///     fn topic(&self) -> &str { "pg.public.t" }
///     fn partition(&self) -> i32 { 0 }
///     async fn watermarks(&self) -> Result<(i64, i64), BoxError> { Ok((0, 0)) }
///     async fn read_from(&self, _: i64, _: usize) -> Result<Vec<LogRecord>, BoxError> {
///         Ok(vec![])
///     }
/// }
/// let _: &dyn PartitionLog = &Empty;
/// ```
#[async_trait]
pub trait PartitionLog: Send + Sync + Debug {
    /// The topic, for messages.
    fn topic(&self) -> &str;

    /// The partition, for messages.
    fn partition(&self) -> i32;

    /// `(low, high)`: the first retained offset and one past the last (the next offset to be
    /// written, or the last stable offset under `read_committed`).
    async fn watermarks(&self) -> Result<(i64, i64), BoxError>;

    /// Up to `max` records with offset ≥ `offset`, in offset order (offsets need not be
    /// dense). An empty answer means there is nothing at or after `offset` (yet).
    async fn read_from(&self, offset: i64, max: usize) -> Result<Vec<LogRecord>, BoxError>;
}

/// Tuning of the reads.
///
/// ```
/// use pgsnap_kafka::resolve::ScanOptions;
/// let o = ScanOptions { confirm_window: 10, ..ScanOptions::default() };
/// assert_eq!(o.batch, 500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// Records asked for per read.
    pub batch: usize,
    /// Running mode: how many records before (by offset distance) and after the boundary are
    /// checked to be visible and invisible respectively.
    pub confirm_window: usize,
    /// Time mode: the most records a forward scan may read before giving up.
    pub max_scan: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { batch: 500, confirm_window: 1000, max_scan: 10_000_000 }
    }
}

/// The answer for one partition, with the work it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResolution {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The first offset to consume after the snapshot.
    pub offset: i64,
    /// Low watermark when resolving.
    pub low: i64,
    /// High watermark when resolving.
    pub high: i64,
    /// `read_from` calls made.
    pub reads: u64,
    /// Records returned by those calls.
    pub records_read: u64,
    /// Things the caller should report (the answer stands, but may be imprecise).
    pub warnings: Vec<String>,
}

/// The answers for several partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// topic → partition → offset.
    pub offsets: OffsetMap,
    /// Per partition details, in the order resolved.
    pub partitions: Vec<PartitionResolution>,
}

impl Resolution {
    /// Adds one partition's answer.
    ///
    /// ```
    /// use pgsnap_kafka::resolve::{PartitionResolution, Resolution};
    /// let mut r = Resolution::default();
    /// r.push(PartitionResolution { topic: "t".into(), partition: 1, offset: 5, low: 0,
    ///     high: 9, reads: 0, records_read: 0, warnings: vec![] });
    /// assert_eq!(r.offsets.get("t", 1), Some(5));
    /// assert_eq!(r.total_reads(), 0);
    /// ```
    pub fn push(&mut self, p: PartitionResolution) {
        self.offsets.insert(p.topic.clone(), p.partition, p.offset);
        self.partitions.push(p);
    }

    /// Total `read_from` calls over all partitions.
    pub fn total_reads(&self) -> u64 {
        self.partitions.iter().map(|p| p.reads).sum()
    }
}

/// Reads the high watermark of every partition: call this before starting the connector in
/// the slot-first design.
///
/// # Errors
/// [`Error::Log`] when a partition cannot be read.
///
/// # Example
/// See [`slot_first`].
pub async fn capture_high_watermarks(logs: &[&dyn PartitionLog]) -> Result<OffsetMap> {
    let mut map = OffsetMap::default();
    for log in logs {
        let (_, high) = watermarks(*log).await?;
        map.insert(log.topic(), log.partition(), high);
    }
    Ok(map)
}

/// Slot-first mode: the answer is the high watermark recorded by
/// [`capture_high_watermarks`] before the connector started. A partition missing from the
/// record (topic created by the connector afterwards) starts at 0. Each answer is checked
/// against the current watermarks.
///
/// # Errors
/// [`Error::Retention`] when records after the recorded offset were deleted,
/// [`Error::BeyondEnd`] when the recorded offset is past the end (topic re-created?),
/// [`Error::Log`] when a partition cannot be read.
///
/// # Example
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use pgsnap_kafka::resolve::{capture_high_watermarks, slot_first, LogRecord, PartitionLog};
/// # use pgsnap_core::BoxError;
/// # #[derive(Debug)] struct Fixed(i64, i64);
/// # #[async_trait::async_trait] impl PartitionLog for Fixed {
/// #   fn topic(&self) -> &str { "pg.public.t" } fn partition(&self) -> i32 { 0 }
/// #   async fn watermarks(&self) -> Result<(i64, i64), BoxError> { Ok((self.0, self.1)) }
/// #   async fn read_from(&self, _: i64, _: usize) -> Result<Vec<LogRecord>, BoxError> { Ok(vec![]) }
/// # }
/// let before = capture_high_watermarks(&[&Fixed(0, 40)]).await.unwrap();
/// // ... pgsnap snapshot, then Debezium starts on the slot and writes 10 records ...
/// let r = slot_first(&before, &[&Fixed(0, 50)]).await.unwrap();
/// assert_eq!(r.offsets.get("pg.public.t", 0), Some(40));
/// # });
/// ```
pub async fn slot_first(recorded: &OffsetMap, logs: &[&dyn PartitionLog]) -> Result<Resolution> {
    let mut out = Resolution::default();
    for log in logs {
        let (low, high) = watermarks(*log).await?;
        let mut warnings = Vec::new();
        let offset = match recorded.get(log.topic(), log.partition()) {
            Some(o) => o,
            None => {
                warnings.push(format!(
                    "{}[{}] has no recorded high watermark: assuming it was created after the \
                     snapshot, starting at 0",
                    log.topic(),
                    log.partition()
                ));
                0
            }
        };
        if offset < low {
            return Err(Error::Retention {
                topic: log.topic().into(),
                partition: log.partition(),
                offset,
                low,
            });
        }
        if offset > high {
            return Err(Error::BeyondEnd {
                topic: log.topic().into(),
                partition: log.partition(),
                offset,
                high,
            });
        }
        out.push(PartitionResolution {
            topic: log.topic().into(),
            partition: log.partition(),
            offset,
            low,
            high,
            reads: 0,
            records_read: 0,
            warnings,
        });
    }
    Ok(out)
}

/// Running mode over several partitions (see [`resolve_partition_running`]).
///
/// # Errors
/// As [`resolve_partition_running`], for the first partition that fails.
pub async fn resolve_running(
    logs: &[&dyn PartitionLog],
    snapshot: &PgSnapshot,
    opts: &ScanOptions,
) -> Result<Resolution> {
    let mut out = Resolution::default();
    for log in logs {
        out.push(resolve_partition_running(*log, snapshot, opts).await?);
    }
    Ok(out)
}

/// Running mode for one partition: the offset of the first change event whose transaction
/// is not visible in `snapshot` (or the high watermark when there is none), found by binary
/// search in O(log N) reads, then confirmed: the records in the `confirm_window` offsets
/// before the answer must all be visible, and the next `confirm_window` records from the
/// answer on must all be invisible.
///
/// An empty partition answers its high watermark; a partition whose events are all
/// invisible answers its low watermark (with a warning when that is not 0: if retention
/// deleted post-snapshot events they are lost).
///
/// # Errors
/// [`Error::NotASuffix`] when the confirmation fails (restart duplicates, a snapshot
/// that is not a slot snapshot), [`Error::NoTxId`] for incremental-snapshot events,
/// [`Error::Envelope`] for values that are not Debezium events,
/// [`Error::Log`] when reading fails.
///
/// # Example
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use pgsnap_kafka::resolve::{resolve_partition_running, LogRecord, PartitionLog, ScanOptions};
/// use pgsnap_kafka::PgSnapshot;
/// # use pgsnap_core::BoxError;
/// #[derive(Debug)]
/// struct Mem(Vec<LogRecord>);
/// #[async_trait::async_trait]
/// impl PartitionLog for Mem {
///     fn topic(&self) -> &str { "pg.public.t" }
///     fn partition(&self) -> i32 { 0 }
///     async fn watermarks(&self) -> Result<(i64, i64), BoxError> {
///         Ok((0, self.0.last().map_or(0, |r| r.offset + 1)))
///     }
///     async fn read_from(&self, o: i64, max: usize) -> Result<Vec<LogRecord>, BoxError> {
///         Ok(self.0.iter().filter(|r| r.offset >= o).take(max).cloned().collect())
///     }
/// }
/// let ev = |offset, tx: u32| LogRecord { offset, value: Some(format!(
///     r#"{{"op":"c","after":{{}},"source":{{"txId":{tx},"snapshot":"false"}}}}"#).into_bytes()),
///     ..LogRecord::default() };
/// let log = Mem(vec![ev(0, 100), ev(1, 102), ev(2, 101), ev(3, 103)]);
/// let snap: PgSnapshot = "101:103:101".parse().unwrap(); // 100, 102 visible
/// let r = resolve_partition_running(&log, &snap, &ScanOptions::default()).await.unwrap();
/// assert_eq!(r.offset, 2);
/// # });
/// ```
pub async fn resolve_partition_running(
    log: &dyn PartitionLog,
    snapshot: &PgSnapshot,
    opts: &ScanOptions,
) -> Result<PartitionResolution> {
    let mut r = Reader::new(log, snapshot, opts);
    let (low, high) = watermarks(log).await?;
    let mut warnings = Vec::new();
    if low >= high {
        return Ok(r.finish(high, low, high, warnings));
    }
    // Invariant: every classified record in [low, lo) before the boundary is visible; the
    // first invisible classified record at or after `hi` is `best` (or none: `high`).
    let (mut lo, mut hi, mut best) = (low, high, high);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match r.first_classified(mid, hi).await? {
            Some((off, true)) => lo = off + 1,
            Some((off, false)) => {
                hi = mid;
                best = off;
            }
            None => hi = mid,
        }
    }
    // Confirm: visible before, invisible after.
    let before_from = best.saturating_sub(opts.confirm_window as i64).max(low);
    r.check_range(before_from, best, usize::MAX, true, best).await?;
    if best < high {
        r.check_range(best, high, opts.confirm_window, false, best).await?;
    }
    if best == low && low > 0 {
        warnings.push(format!(
            "{}[{}]: every retained event is after the snapshot and the low watermark is {low}; \
             if retention deleted earlier post-snapshot events, they are lost",
            log.topic(),
            log.partition()
        ));
    }
    Ok(r.finish(best, low, high, warnings))
}

/// Time mode for one partition: reads the watermarks, then calls `lookup` (the partition's
/// `offsets_for_times` answer for the server clock before the snapshot minus a skew
/// margin); `None` or a negative offset means "no such record" and becomes the high
/// watermark read **before** the lookup, never -1. From that lower bound it scans forward
/// to the first change event not visible in `snapshot` (or the high watermark).
///
/// Unlike the running mode it does not require the invisible events to be a suffix: events
/// after the answer may be visible (restart duplicates, `pg_export_snapshot()` snapshots),
/// and replaying them relies on primary-key upserts.
///
/// # Errors
/// [`Error::ScanLimit`] when more than `max_scan` records are read,
/// [`Error::NoTxId`], [`Error::Envelope`], [`Error::Log`] as in the
/// running mode.
///
/// # Example
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use pgsnap_kafka::resolve::{resolve_partition_time, LogRecord, PartitionLog, ScanOptions};
/// use pgsnap_kafka::PgSnapshot;
/// # use pgsnap_core::BoxError;
/// # #[derive(Debug)] struct Mem(Vec<LogRecord>);
/// # #[async_trait::async_trait] impl PartitionLog for Mem {
/// #   fn topic(&self) -> &str { "t" } fn partition(&self) -> i32 { 0 }
/// #   async fn watermarks(&self) -> Result<(i64, i64), BoxError> { Ok((0, 3)) }
/// #   async fn read_from(&self, o: i64, m: usize) -> Result<Vec<LogRecord>, BoxError> {
/// #     Ok(self.0.iter().filter(|r| r.offset >= o).take(m).cloned().collect()) }
/// # }
/// let ev = |offset, tx: u32| LogRecord { offset, value: Some(format!(
///     r#"{{"op":"u","source":{{"txId":{tx}}}}}"#).into_bytes()), ..LogRecord::default() };
/// let log = Mem(vec![ev(0, 5), ev(1, 9), ev(2, 6)]);
/// let snap: PgSnapshot = "7:7:".parse().unwrap();
/// let opts = ScanOptions::default();
/// let r = resolve_partition_time(&log, &snap, &opts, || async { Ok(Some(0)) }).await.unwrap();
/// assert_eq!(r.offset, 1);
/// // The lookup found nothing: the high watermark read before it.
/// let r = resolve_partition_time(&log, &snap, &opts, || async { Ok(None) }).await.unwrap();
/// assert_eq!(r.offset, 3);
/// # });
/// ```
pub async fn resolve_partition_time<F, Fut>(
    log: &dyn PartitionLog,
    snapshot: &PgSnapshot,
    opts: &ScanOptions,
    lookup: F,
) -> Result<PartitionResolution>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<Option<i64>, BoxError>> + Send,
{
    let mut r = Reader::new(log, snapshot, opts);
    let (low, high) = watermarks(log).await?;
    let found = lookup().await.map_err(|source| r.log_err(source))?;
    let mut warnings = Vec::new();
    let from = match found {
        Some(o) if o >= 0 => o.clamp(low, high),
        _ => high,
    };
    if from >= high {
        return Ok(r.finish(high, low, high, warnings));
    }
    let mut at = from;
    let mut first_class = None;
    let answer = loop {
        if r.records_read > opts.max_scan {
            return Err(Error::ScanLimit {
                topic: log.topic().into(),
                partition: log.partition(),
                from,
                scanned: r.records_read,
                limit: opts.max_scan,
            });
        }
        let batch = r.read(at, opts.batch).await?;
        let Some(last) = batch.last().map(|x| x.offset) else { break high };
        let mut done = None;
        for rec in batch.iter().filter(|x| x.offset >= at && x.offset < high) {
            if let Some(visible) = r.classify(rec)? {
                first_class.get_or_insert(visible);
                if !visible {
                    done = Some(rec.offset);
                    break;
                }
            }
        }
        if let Some(o) = done {
            break o;
        }
        if last + 1 >= high {
            break high;
        }
        at = last.max(at) + 1;
    };
    if from > low && first_class == Some(false) {
        warnings.push(format!(
            "{}[{}]: the first event at the time lower bound {from} is already after the \
             snapshot; the lower bound may be too late (raise the clock-skew margin)",
            log.topic(),
            log.partition()
        ));
    }
    Ok(r.finish(answer, low, high, warnings))
}

/// Where the connector stands relative to the snapshot's consistent point C, from its
/// Kafka Connect offset value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorPosition {
    /// `lsn_commit ≥ C`: every transaction that committed before C has been emitted.
    Passed {
        /// The connector's committed `lsn_commit`.
        lsn_commit: Lsn,
    },
    /// The connector has not (yet) committed past C.
    NotPassed {
        /// The connector's committed `lsn_commit`, if it has one.
        lsn_commit: Option<Lsn>,
        /// The snapshot's consistent point.
        consistent_point: Lsn,
    },
}

impl ConnectorPosition {
    /// The warning to report, if any.
    ///
    /// ```
    /// use pgsnap_kafka::resolve::ConnectorPosition;
    /// use pgsnap_core::Lsn;
    /// assert!(ConnectorPosition::Passed { lsn_commit: Lsn(9) }.warning().is_none());
    /// let w = ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: Lsn(9) };
    /// assert!(w.warning().unwrap().contains("may replay"));
    /// ```
    pub fn warning(&self) -> Option<String> {
        match self {
            Self::Passed { .. } => None,
            Self::NotPassed { lsn_commit, consistent_point } => Some(format!(
                "the connector's committed position ({}) has not reached the snapshot's \
                 consistent point {consistent_point}: transactions committed before the snapshot \
                 may still arrive after the resolved offsets, so the answer may replay events \
                 already in the snapshot; wait for the connector to commit past it and resolve \
                 again",
                lsn_commit.map_or_else(|| "none".to_owned(), |l| format!("lsn_commit {l}"))
            )),
        }
    }
}

/// Checks a Debezium PostgreSQL connector's Kafka Connect offset value (the JSON stored in
/// the offsets topic, e.g. `{"lsn_proc":…,"lsn_commit":…,"lsn":…,"txId":…}`) against the
/// snapshot's consistent point: passed iff `lsn_commit ≥ C`. A `null` value (no offset
/// stored) or one without `lsn_commit` has not passed.
///
/// # Errors
/// [`Error::ConnectOffset`] when the value is not an object or `lsn_commit` is not
/// an integer.
///
/// # Example
/// ```
/// use pgsnap_kafka::resolve::{connector_position, ConnectorPosition};
/// use pgsnap_core::Lsn;
/// let v = serde_json::json!({"lsn_proc":37051152,"messageType":"INSERT",
///     "lsn_commit":36989040,"lsn":37051152,"txId":1007,"ts_usec":1767208115470483u64});
/// assert_eq!(connector_position(&v, Lsn(36989040)).unwrap(),
///            ConnectorPosition::Passed { lsn_commit: Lsn(36989040) });
/// assert!(connector_position(&v, Lsn(36989041)).unwrap().warning().is_some());
/// ```
pub fn connector_position(
    offset_value: &Value,
    consistent_point: Lsn,
) -> Result<ConnectorPosition> {
    let obj = match offset_value {
        Value::Null => {
            return Ok(ConnectorPosition::NotPassed { lsn_commit: None, consistent_point });
        }
        Value::Object(o) => o,
        other => {
            return Err(Error::ConnectOffset(format!(
                "expected a JSON object like {{\"lsn_commit\":…}}, found {other}"
            )));
        }
    };
    let lsn_commit = match obj.get("lsn_commit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Lsn(v.as_u64().or_else(|| v.as_str()?.parse().ok()).ok_or_else(|| {
            Error::ConnectOffset(format!("lsn_commit {v} is not an unsigned integer"))
        })?)),
    };
    Ok(match lsn_commit {
        Some(l) if l.0 >= consistent_point.0 => ConnectorPosition::Passed { lsn_commit: l },
        _ => ConnectorPosition::NotPassed { lsn_commit, consistent_point },
    })
}

async fn watermarks(log: &dyn PartitionLog) -> Result<(i64, i64)> {
    log.watermarks().await.map_err(|source| Error::Log {
        topic: log.topic().into(),
        partition: log.partition(),
        source,
    })
}

/// Reads and classifies records of one partition, counting the work.
struct Reader<'a> {
    log: &'a dyn PartitionLog,
    snapshot: &'a PgSnapshot,
    batch: usize,
    reads: u64,
    records_read: u64,
}

impl<'a> Reader<'a> {
    fn new(log: &'a dyn PartitionLog, snapshot: &'a PgSnapshot, opts: &ScanOptions) -> Self {
        Self { log, snapshot, batch: opts.batch.max(1), reads: 0, records_read: 0 }
    }

    fn log_err(&self, source: BoxError) -> Error {
        Error::Log { topic: self.log.topic().into(), partition: self.log.partition(), source }
    }

    async fn read(&mut self, offset: i64, max: usize) -> Result<Vec<LogRecord>> {
        self.reads += 1;
        let recs = self.log.read_from(offset, max.max(1)).await.map_err(|e| self.log_err(e))?;
        self.records_read += recs.len() as u64;
        Ok(recs)
    }

    /// `Some(true)` visible, `Some(false)` invisible, `None` neutral (tombstone,
    /// transaction metadata).
    fn classify(&self, rec: &LogRecord) -> Result<Option<bool>> {
        let event = parse_value(rec.value.as_deref()).map_err(|source| Error::Envelope {
            topic: self.log.topic().into(),
            partition: self.log.partition(),
            offset: rec.offset,
            source: Box::new(source),
        })?;
        match event {
            Event::Tombstone | Event::Transaction(_) => Ok(None),
            Event::Change(e) => match e.origin() {
                Origin::Transaction { tx_id } => {
                    Ok(Some(self.snapshot.raw_txid_in_snapshot(tx_id)))
                }
                Origin::IncrementalSnapshot => Err(Error::NoTxId {
                    topic: self.log.topic().into(),
                    partition: self.log.partition(),
                    offset: rec.offset,
                }),
            },
        }
    }

    /// The first classified record in `[from, until)`: `(offset, visible)`.
    async fn first_classified(&mut self, from: i64, until: i64) -> Result<Option<(i64, bool)>> {
        let mut at = from;
        // A probe needs one change event: start small (most records are change events) and
        // grow only past runs of tombstones and transaction records.
        let mut want = self.batch.min(8);
        while at < until {
            let batch = self.read(at, want).await?;
            want = (want * 4).min(self.batch);
            let Some(last) = batch.last().map(|x| x.offset) else { return Ok(None) };
            for rec in batch.iter().filter(|x| x.offset >= at) {
                if rec.offset >= until {
                    return Ok(None);
                }
                if let Some(v) = self.classify(rec)? {
                    return Ok(Some((rec.offset, v)));
                }
            }
            at = last.max(at) + 1;
        }
        Ok(None)
    }

    /// Checks that the classified records in `[from, until)`, at most `max_records` of them,
    /// all have visibility `visible`.
    async fn check_range(
        &mut self,
        from: i64,
        until: i64,
        max_records: usize,
        visible: bool,
        answer: i64,
    ) -> Result<()> {
        let (mut at, mut seen) = (from, 0usize);
        while at < until && seen < max_records {
            let want = self.batch.min(max_records - seen);
            let batch = self.read(at, want).await?;
            let Some(last) = batch.last().map(|x| x.offset) else { return Ok(()) };
            for rec in batch.iter().filter(|x| x.offset >= at) {
                if rec.offset >= until || seen >= max_records {
                    return Ok(());
                }
                seen += 1;
                if let Some(v) = self.classify(rec)?
                    && v != visible
                {
                    return Err(Error::NotASuffix {
                        topic: self.log.topic().into(),
                        partition: self.log.partition(),
                        offset: rec.offset,
                        answer,
                        reason: if visible {
                            "an event before the boundary belongs to a transaction that is not \
                             in the snapshot"
                                .into()
                        } else {
                            "an event after the boundary belongs to a transaction that is \
                             already in the snapshot"
                                .into()
                        },
                    });
                }
            }
            at = last.max(at) + 1;
        }
        Ok(())
    }

    fn finish(
        self,
        offset: i64,
        low: i64,
        high: i64,
        warnings: Vec<String>,
    ) -> PartitionResolution {
        PartitionResolution {
            topic: self.log.topic().into(),
            partition: self.log.partition(),
            offset,
            low,
            high,
            reads: self.reads,
            records_read: self.records_read,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests;

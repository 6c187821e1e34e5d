//! Unit tests of the resolution modes over an in-memory partition.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// An in-memory partition: records sorted by offset (not dense); `high` may be below the
/// last record to model records that arrive after the watermarks are read.
#[derive(Debug)]
struct MemLog {
    topic: String,
    partition: i32,
    records: Vec<LogRecord>,
    low: i64,
    high: i64,
    reads: AtomicU64,
    fail: bool,
}

impl MemLog {
    fn new(partition: i32, records: Vec<LogRecord>) -> Self {
        let low = records.first().map_or(0, |r| r.offset);
        let high = records.last().map_or(0, |r| r.offset + 1);
        Self {
            topic: "pg.public.items".into(),
            partition,
            records,
            low,
            high,
            reads: AtomicU64::new(0),
            fail: false,
        }
    }
}

#[async_trait]
impl PartitionLog for MemLog {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    async fn watermarks(&self) -> Result<(i64, i64), BoxError> {
        if self.fail {
            return Err("broker down".into());
        }
        Ok((self.low, self.high))
    }
    async fn read_from(&self, offset: i64, max: usize) -> Result<Vec<LogRecord>, BoxError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let i = self.records.partition_point(|r| r.offset < offset);
        Ok(self.records[i..].iter().take(max).cloned().collect())
    }
}

fn ev(offset: i64, tx: u32) -> LogRecord {
    LogRecord {
        offset,
        key: Some(format!("{{\"id\":{offset}}}").into_bytes()),
        value: Some(
            format!(
                r#"{{"before":null,"after":{{"id":{offset}}},"source":{{"version":"3.6.3.Final","connector":"postgresql","name":"pg","snapshot":"false","schema":"public","table":"items","txId":{tx},"lsn":{}}},"op":"c","ts_ms":1}}"#,
                1000 + offset
            )
            .into_bytes(),
        ),
        timestamp_ms: Some(offset),
    }
}

fn tombstone(offset: i64) -> LogRecord {
    LogRecord { offset, key: Some(b"{\"id\":1}".to_vec()), value: None, timestamp_ms: None }
}

fn raw(offset: i64, value: &str) -> LogRecord {
    LogRecord { offset, value: Some(value.as_bytes().to_vec()), ..LogRecord::default() }
}

fn snap(s: &str) -> PgSnapshot {
    s.parse().unwrap()
}

fn opts() -> ScanOptions {
    ScanOptions::default()
}

async fn running(log: &MemLog, s: &PgSnapshot) -> Result<PartitionResolution> {
    resolve_partition_running(log, s, &opts()).await
}

#[tokio::test]
async fn empty_partition_answers_high_watermark() {
    let mut log = MemLog::new(0, vec![]);
    (log.low, log.high) = (7, 7);
    let r = running(&log, &snap("10:10:")).await.unwrap();
    assert_eq!((r.offset, r.reads), (7, 0));
}

#[tokio::test]
async fn entirely_visible_answers_high_watermark() {
    let log = MemLog::new(0, (0..50).map(|i| ev(i * 2, 100 + i as u32)).collect());
    let r = running(&log, &snap("1000:1000:")).await.unwrap();
    assert_eq!(r.offset, 99); // last offset 98 + 1
    assert!(r.warnings.is_empty());
}

#[tokio::test]
async fn entirely_invisible_answers_low_watermark() {
    let log = MemLog::new(0, (5..50).map(|i| ev(i, 2000 + i as u32)).collect());
    let r = running(&log, &snap("1000:1000:")).await.unwrap();
    assert_eq!(r.offset, 5);
    assert_eq!(r.warnings.len(), 1, "low > 0: retention may have deleted events");
    let log = MemLog::new(0, (0..50).map(|i| ev(i, 2000 + i as u32)).collect());
    let r = running(&log, &snap("1000:1000:")).await.unwrap();
    assert_eq!((r.offset, r.warnings.len()), (0, 0));
}

#[tokio::test]
async fn sparse_offsets_tombstones_and_transaction_records() {
    // Commit order: 100, 102 visible (101 in progress at the snapshot), then 101, 103.
    let s = snap("101:103:101");
    let begin =
        r#"{"status":"BEGIN","id":"101:5","ts_ms":1,"event_count":null,"data_collections":null}"#;
    let records = vec![
        ev(0, 100),
        ev(3, 100),
        tombstone(4),
        ev(9, 102),
        tombstone(10), // follows a visible delete: belongs before the boundary
        raw(12, begin),
        ev(15, 101), // first invisible
        tombstone(16),
        ev(20, 103),
        ev(21, 101),
    ];
    let log = MemLog::new(0, records);
    for batch in [1, 2, 500] {
        let o = ScanOptions { batch, ..opts() };
        let r = resolve_partition_running(&log, &s, &o).await.unwrap();
        assert_eq!(r.offset, 15, "batch {batch}");
    }
    // Starting at a gap or a tombstone lands on the same answer.
    let r = resolve_partition_time(&log, &s, &opts(), || async { Ok(Some(11)) }).await.unwrap();
    assert_eq!(r.offset, 15);
}

#[tokio::test]
async fn trailing_neutral_records_after_last_visible() {
    let log = MemLog::new(0, vec![ev(0, 5), ev(1, 6), tombstone(2), tombstone(5)]);
    let r = running(&log, &snap("10:10:")).await.unwrap();
    assert_eq!(r.offset, 6, "no invisible event: the high watermark");
}

#[tokio::test]
async fn hundred_thousand_records_take_logarithmic_reads() {
    const N: i64 = 100_000;
    let boundary_tx = 500_000u32;
    // Every third offset is skipped; every 10th record is a tombstone.
    let records: Vec<LogRecord> = (0..N)
        .map(|i| {
            let off = i + i / 2;
            if i % 10 == 9 { tombstone(off) } else { ev(off, 400_000 + i as u32) }
        })
        .collect();
    let high = records.last().unwrap().offset + 1;
    let log = MemLog::new(3, records);
    for first_invisible in [0u32, 1, 12_345, 50_000, 99_998, 100_000] {
        let xmax = u64::from(boundary_tx - 100_000 + first_invisible);
        let s = PgSnapshot::new(xmax, xmax, vec![]).unwrap();
        log.reads.store(0, Ordering::Relaxed);
        let r = running(&log, &s).await.unwrap();
        let i = i64::from(first_invisible);
        // The first non-tombstone record at index ≥ i.
        let expect = (i..N).find(|j| j % 10 != 9).map_or(high, |j| j + j / 2);
        assert_eq!(r.offset, expect, "first invisible index {i}");
        assert_eq!(r.reads, log.reads.load(Ordering::Relaxed));
        // log2(150k) ≈ 17.2 probes, plus ≤ 3 + 2 confirmation reads of 500 records.
        assert!(r.reads <= 24, "{} reads for 100k records", r.reads);
    }
}

#[tokio::test]
async fn wraparound_xids_are_widened_not_compared_in_32_bits() {
    let e1 = 1u64 << 32;
    // xmax = 2^32 + 5: xids 4294967290.. (epoch 0) and 0..4 (epoch 1) are committed.
    let s = PgSnapshot::new(e1 + 2, e1 + 5, vec![e1 + 2]).unwrap();
    let log = MemLog::new(
        0,
        vec![
            ev(0, 4_294_967_290),
            ev(1, 4_294_967_295),
            ev(2, 1),
            ev(3, 4),
            ev(4, 2), // in progress at the snapshot: commits after C
            ev(5, 5),
            ev(6, 4_294_967), // small 32-bit value: 2^32 + 4294967, far after
        ],
    );
    let r = running(&log, &s).await.unwrap();
    assert_eq!(r.offset, 4);
}

#[tokio::test]
async fn not_a_suffix_is_reported_with_the_offset() {
    // A restart duplicate: visible transaction 100 replayed after invisible ones.
    let mut recs: Vec<LogRecord> = (0..20).map(|i| ev(i, 100)).collect();
    recs.extend((20..40).map(|i| ev(i, 300)));
    recs.push(ev(40, 100));
    recs.extend((41..60).map(|i| ev(i, 300)));
    let log = MemLog::new(1, recs);
    let e = running(&log, &snap("200:200:")).await.unwrap_err();
    match &e {
        Error::NotASuffix { topic, partition, offset, answer, .. } => {
            assert_eq!(
                (topic.as_str(), *partition, *offset, *answer),
                ("pg.public.items", 1, 40, 20)
            );
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("pg.public.items[1]") && msg.contains("time mode"), "{msg}");
    // The time mode accepts it: the first invisible event from the lower bound.
    let r = resolve_partition_time(&log, &snap("200:200:"), &opts(), || async { Ok(Some(0)) })
        .await
        .unwrap();
    assert_eq!(r.offset, 20);

    // An invisible event before the boundary is caught by the backward confirmation
    // (the binary search may skip it).
    let mut recs: Vec<LogRecord> = (0..100).map(|i| ev(i, 100)).collect();
    recs[3] = ev(3, 300);
    recs.extend((100..200).map(|i| ev(i, 300)));
    let log = MemLog::new(0, recs);
    match running(&log, &snap("200:200:")).await.unwrap_err() {
        Error::NotASuffix { offset, answer, .. } => assert_eq!((offset, answer), (3, 100)),
        other => panic!("{other:?}"),
    }
    // Outside the confirmation window it is not seen (bounded scan).
    let o = ScanOptions { confirm_window: 50, ..opts() };
    let r = resolve_partition_running(&log, &snap("200:200:"), &o).await.unwrap();
    assert_eq!(r.offset, 100);
}

#[tokio::test]
async fn incremental_snapshot_events_are_an_error() {
    let inc =
        r#"{"op":"r","after":{"id":1},"source":{"snapshot":"incremental","txId":null,"lsn":null}}"#;
    let log = MemLog::new(2, vec![ev(0, 5), raw(1, inc), ev(2, 50)]);
    let e = running(&log, &snap("10:10:")).await.unwrap_err();
    assert!(matches!(e, Error::NoTxId { partition: 2, offset: 1, .. }), "{e:?}");
    assert!(e.to_string().contains("incremental"));
}

#[tokio::test]
async fn non_debezium_values_name_the_offset() {
    let log = MemLog::new(0, vec![ev(0, 5), raw(1, r#"{"id":1}"#), ev(2, 50)]);
    let e = running(&log, &snap("10:10:")).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Envelope { offset: 1, .. }), "{msg}");
    assert!(msg.contains("offset 1") && msg.contains("`op` is missing"), "{msg}");
}

#[tokio::test]
async fn read_errors_name_topic_and_partition() {
    let mut log = MemLog::new(4, vec![ev(0, 5)]);
    log.fail = true;
    let e = running(&log, &snap("10:10:")).await.unwrap_err();
    assert!(e.to_string().starts_with("pg.public.items[4]: reading the partition failed"), "{e}");
    assert!(capture_high_watermarks(&[&log]).await.is_err());
}

#[tokio::test]
async fn time_mode_lookup_without_record_uses_high_read_before() {
    let mut log = MemLog::new(0, (0..10).map(|i| ev(i, 100 + i as u32)).collect());
    log.high = 6; // records 6.. arrive after the watermarks were read
    let s = snap("1000:1000:");
    for found in [None, Some(-1), Some(-1001)] {
        let r = resolve_partition_time(&log, &s, &opts(), move || async move { Ok(found) })
            .await
            .unwrap();
        assert_eq!((r.offset, r.reads), (6, 0), "{found:?}");
    }
    // A lower bound past the end is clamped to the high watermark, never beyond.
    let r = resolve_partition_time(&log, &s, &opts(), || async { Ok(Some(99)) }).await.unwrap();
    assert_eq!(r.offset, 6);
    // The scan stops at the high watermark read before: invisible records beyond it are
    // not the answer.
    let s = snap("107:107:");
    let r = resolve_partition_time(&log, &s, &opts(), || async { Ok(Some(2)) }).await.unwrap();
    assert_eq!(r.offset, 6);
    let s = snap("104:104:");
    let r = resolve_partition_time(&log, &s, &opts(), || async { Ok(Some(2)) }).await.unwrap();
    assert_eq!((r.offset, r.warnings.len()), (4, 0));
    // Lookup failures name the partition.
    let e = resolve_partition_time(&log, &s, &opts(), || async { Err("timeout".into()) })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("pg.public.items[0]"), "{e}");
}

#[tokio::test]
async fn time_mode_warns_when_lower_bound_is_too_late() {
    let log = MemLog::new(0, (0..10).map(|i| ev(i, 100 + i as u32)).collect());
    let r = resolve_partition_time(&log, &snap("103:103:"), &opts(), || async { Ok(Some(5)) })
        .await
        .unwrap();
    assert_eq!(r.offset, 5);
    assert!(r.warnings[0].contains("too late"), "{:?}", r.warnings);
}

#[tokio::test]
async fn time_mode_scan_limit() {
    let log = MemLog::new(0, (0..1000).map(|i| ev(i, 100)).collect());
    let o = ScanOptions { batch: 100, max_scan: 250, ..opts() };
    let e = resolve_partition_time(&log, &snap("1000:1000:"), &o, || async { Ok(Some(0)) })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ScanLimit { from: 0, limit: 250, .. }), "{e:?}");
}

#[tokio::test]
async fn running_over_partitions_builds_offset_map() {
    let s = snap("150:150:");
    let a = MemLog::new(0, (0..100).map(|i| ev(i, 100 + i as u32)).collect());
    let b = MemLog::new(1, vec![]);
    let c = MemLog::new(2, (0..10).map(|i| ev(i, 10)).collect());
    let r = resolve_running(&[&a, &b, &c], &s, &opts()).await.unwrap();
    let json = serde_json::to_string(&r.offsets).unwrap();
    assert_eq!(json, r#"{"pg.public.items":{"0":50,"1":0,"2":10}}"#);
    assert_eq!(r.partitions.len(), 3);
    assert!(r.total_reads() > 0);
}

#[tokio::test]
async fn slot_first_uses_recorded_high_watermarks() {
    let mut a = MemLog::new(0, (0..40).map(|i| ev(i, 100)).collect());
    let b = MemLog::new(1, vec![]);
    let recorded = capture_high_watermarks(&[&a, &b]).await.unwrap();
    assert_eq!(serde_json::to_string(&recorded).unwrap(), r#"{"pg.public.items":{"0":40,"1":0}}"#);
    a.high = 55;
    let mut other = MemLog::new(0, vec![]);
    other.topic = "pg.public.new_table".into();
    let r = slot_first(&recorded, &[&a, &b, &other]).await.unwrap();
    assert_eq!(r.offsets.get("pg.public.items", 0), Some(40));
    assert_eq!(r.offsets.get("pg.public.items", 1), Some(0));
    assert_eq!(r.offsets.get("pg.public.new_table", 0), Some(0));
    assert_eq!(r.partitions[2].warnings.len(), 1);
    assert_eq!(r.total_reads(), 0);

    a.low = 41;
    let e = slot_first(&recorded, &[&a]).await.unwrap_err();
    assert!(matches!(e, Error::Retention { offset: 40, low: 41, .. }), "{e:?}");
    assert!(e.to_string().contains("take a new snapshot"));
    a.low = 0;
    a.high = 30;
    let e = slot_first(&recorded, &[&a]).await.unwrap_err();
    assert!(matches!(e, Error::BeyondEnd { offset: 40, high: 30, .. }), "{e:?}");
}

#[test]
fn connector_position_checks_lsn_commit() {
    let c = Lsn(36_989_040);
    let v = serde_json::json!({"lsn_proc":37051152,"messageType":"INSERT","lsn_commit":36989040,"lsn":37051152,"txId":1007,"ts_usec":1767208115470483u64});
    assert_eq!(connector_position(&v, c).unwrap(), ConnectorPosition::Passed { lsn_commit: c });
    assert!(connector_position(&v, Lsn(c.0 - 1)).unwrap().warning().is_none());
    let later = Lsn(c.0 + 1);
    let p = connector_position(&v, later).unwrap();
    assert_eq!(p, ConnectorPosition::NotPassed { lsn_commit: Some(c), consistent_point: later });
    assert!(p.warning().unwrap().contains(&later.to_string()));
    // No offsets stored, or no lsn_commit yet.
    for v in [Value::Null, serde_json::json!({"lsn": 5})] {
        assert!(matches!(
            connector_position(&v, c).unwrap(),
            ConnectorPosition::NotPassed { lsn_commit: None, .. }
        ));
    }
    assert!(connector_position(&serde_json::json!({"lsn_commit":"36989041"}), later).is_ok());
    assert!(connector_position(&serde_json::json!([1]), c).is_err());
    assert!(connector_position(&serde_json::json!({"lsn_commit":-3}), c).is_err());
}

//! `KafkaOffsetResolver` against a real broker (tansu): Debezium-shaped change events (the
//! 3.x envelope of `shared/specs/environment.md`, schemas disabled) keyed by primary key over
//! 3 partitions, with transactions committed before and after a snapshot, interleaved the
//! way Debezium emits them (commit order; a transaction open across the snapshot point
//! commits after it).
//!
//! These are recorded-shape events produced by the test, not a running Debezium: the
//! end-to-end proof with real Debezium (issue #4) is not written yet.

use std::collections::BTreeMap;

use pgsnap_core::{OffsetResolver, SnapshotInfo, SnapshotMode};
use pgsnap_kafka::resolver::{HandoffMode, KafkaOffsetResolver};
use pgsnap_test_support::kafka::{OneByOneProducer, Record, Tansu};

fn event(id: u32, tx: u32, lsn: u64, op: &str) -> String {
    let row = format!(r#"{{"id":{id},"v":"r{id}"}}"#);
    let (before, after) = if op == "d" { (row, "null".into()) } else { ("null".into(), row) };
    format!(
        r#"{{"before":{before},"after":{after},"source":{{"version":"3.6.3.Final","connector":"postgresql","name":"pg","ts_ms":1764000000000,"snapshot":"false","db":"app","sequence":"[null,\"{lsn}\"]","schema":"public","table":"items","txId":{tx},"lsn":{lsn},"xmin":null}},"op":"{op}","ts_ms":1764000000100}}"#
    )
}

/// Produces `event(id, tx, lsn, op)` keyed by `{"id":id}`; returns (partition, offset).
async fn send_event(
    producer: &OneByOneProducer,
    topic: &str,
    id: u32,
    tx: u32,
    lsn: u64,
    op: &str,
) -> (i32, i64) {
    let value = event(id, tx, lsn, op);
    let key = format!(r#"{{"id":{id}}}"#);
    producer
        .send(
            topic,
            Record {
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                ..Record::default()
            },
        )
        .await
}

fn snapshot(pg_snapshot: &str) -> SnapshotInfo {
    SnapshotInfo {
        mode: SnapshotMode::Slot,
        name: "00000003-00000002-1".into(),
        lsn: None,
        slot: None,
        slot_temporary: Some(true),
        pg_snapshot: pg_snapshot.into(),
        taken_at: "2026-01-01T00:00:00.000000Z".into(),
    }
}

/// Transactions 700..=719, three rows each; 705 and 712 were open across the snapshot point,
/// so `pg_current_snapshot()` is `705:716:705,712` and they commit after 715. In the log
/// (commit order) the invisible transactions are exactly a suffix per partition: the answer
/// is each partition's first event of 705, 712 or 716..=719.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_mode_finds_the_first_invisible_event_per_partition() {
    let broker = Tansu::start();
    let topic = "pg.public.items";
    broker.create_topic(topic, 3);
    let producer = broker.producer();
    let commit_order: Vec<u32> =
        (700..=704).chain(706..=711).chain(713..=715).chain([705, 712]).chain(716..=719).collect();
    let visible = |tx: u32| tx < 716 && tx != 705 && tx != 712;
    // Each transaction touches 3 rows (ids spread over the partitions by key hash).
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    let mut lsn = 1_000_000u64;
    for (n, tx) in commit_order.iter().enumerate() {
        for k in 0..3u32 {
            let id = n as u32 * 3 + k;
            lsn += 100;
            let op = if k == 2 && n % 4 == 0 { "d" } else { "c" };
            let (p, offset) = send_event(&producer, topic, id, *tx, lsn, op).await;
            if !visible(*tx) {
                expected.entry(p).or_insert(offset);
            }
        }
    }
    let resolver = KafkaOffsetResolver::new(broker.bootstrap(), HandoffMode::Running);
    let got = resolver.resolve(&snapshot("705:716:705,712"), &[topic.to_owned()]).await.unwrap();
    let detail = resolver.last_resolution().unwrap();
    for p in &detail.partitions {
        let want = expected.get(&p.partition).copied().unwrap_or(p.high);
        assert_eq!(p.offset, want, "partition {}: {p:?}", p.partition);
        assert_eq!(got.get(topic, p.partition), Some(want));
    }
    assert_eq!(detail.partitions.len(), 3);
    assert!(detail.total_reads() > 0);
}

/// Slot-first: the high watermarks captured before the connector starts are the answer,
/// whatever is written afterwards; a topic that did not exist yet starts at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_first_answers_the_captured_high_watermarks() {
    let broker = Tansu::start();
    let topic = "pg.public.orders";
    broker.create_topic(topic, 2);
    let producer = broker.producer();
    for i in 0..10u32 {
        send_event(&producer, topic, i, 600 + i, 10_000 + u64::from(i), "c").await;
    }
    let topics = vec![topic.to_owned(), "pg.public.not_yet".to_owned()];
    let recorded =
        KafkaOffsetResolver::capture_high_watermarks(&broker.bootstrap(), &topics).await.unwrap();
    let before: Vec<i64> = (0..2).map(|p| recorded.get(topic, p).unwrap()).collect();
    assert_eq!(before.iter().sum::<i64>(), 10);
    assert!(!recorded.0.contains_key("pg.public.not_yet"));
    // The connector starts and writes more.
    for i in 10..20u32 {
        send_event(&producer, topic, i, 700 + i, 20_000 + u64::from(i), "c").await;
    }
    let resolver =
        KafkaOffsetResolver::new(broker.bootstrap(), HandoffMode::SlotFirst { recorded });
    let got = resolver.resolve(&snapshot("1:1:"), &[topic.to_owned()]).await.unwrap();
    for p in 0..2 {
        assert_eq!(got.get(topic, p), Some(before[p as usize]));
    }
}

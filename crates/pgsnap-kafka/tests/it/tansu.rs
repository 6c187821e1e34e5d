//! `pgsnap_kafka::kafka` against a real broker: tansu 0.6 (memory storage) from
//! `bash scripts/setup.sh --kafka`, started by `pgsnap_test_support::kafka::Tansu`.
//!
//! tansu 0.6 differs from Apache Kafka in two ways these tests run into (see
//! `shared/specs/environment.md`):
//!
//! 1. Its high watermark is wrong after a produce batch of several records, so every record
//!    here is produced in a batch of its own (`OneByOneProducer`). On real Kafka batching
//!    changes nothing below.
//! 2. `ListOffsets` by timestamp (`offsets_for_times`) compares the broker's *append time*,
//!    not the record's CreateTime, and answers offset 0 instead of "end" (-1) for a time
//!    after the last record. Where that changes an expectation, [`on_tansu`] names both:
//!    the value asserted (tansu) and the value Apache Kafka answers. The code under test
//!    is written for Kafka: it maps "end" to `None`, and callers fall back to the high
//!    watermark they read before the lookup.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgsnap_kafka::Error;
use pgsnap_kafka::kafka::{KafkaLog, KafkaLogs};
use pgsnap_kafka::resolve::PartitionLog;
use pgsnap_test_support::kafka::{Record, Tansu};

/// Records produced by [`three_partition_topic`].
const RECORDS: usize = 200;
/// CreateTime of record `i` is `CREATE_TIME_BASE + i * 1000` ms (September 2020): far
/// before the broker's append time, so CreateTime and append-time lookups disagree.
const CREATE_TIME_BASE: i64 = 1_600_000_000_000;

/// The value asserted on tansu 0.6; `_kafka` is what Apache Kafka answers for the same
/// request (kept next to it so the difference is explicit and reviewable).
fn on_tansu<T>(tansu: T, _kafka: T) -> T {
    tansu
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:03}").into_bytes()
}

fn value(i: usize) -> Option<Vec<u8>> {
    // Every 50th record is a tombstone.
    (i % 50 != 49).then(|| format!("{{\"id\":{i}}}").into_bytes())
}

/// What was produced to one partition, in offset order: `(offset, record index)`.
type Produced = BTreeMap<i32, Vec<(i64, usize)>>;

/// A topic with 3 partitions and 200 keyed records, each in a batch of its own. The first
/// 100 are appended before `mid_ms` (broker wall clock), the rest after it.
struct Fixture {
    broker: Tansu,
    topic: String,
    produced: Produced,
    before_ms: i64,
    mid_ms: i64,
    after_ms: i64,
}

async fn three_partition_topic(topic: &str) -> Fixture {
    let broker = Tansu::start();
    broker.create_topic(topic, 3);
    let producer = broker.producer();
    let before_ms = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut produced = Produced::new();
    let mut mid_ms = 0;
    for i in 0..RECORDS {
        if i == RECORDS / 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            mid_ms = now_ms();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let k = key(i);
        let v = value(i);
        let (partition, offset) = producer
            .send(
                topic,
                Record {
                    key: Some(&k),
                    value: v.as_deref(),
                    timestamp_ms: Some(CREATE_TIME_BASE + i as i64 * 1000),
                    ..Record::default()
                },
            )
            .await;
        produced.entry(partition).or_default().push((offset, i));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after_ms = now_ms();
    Fixture { broker, topic: topic.to_owned(), produced, before_ms, mid_ms, after_ms }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_and_reads_match_what_was_produced() {
    let fx = three_partition_topic("pgsnap.public.items").await;
    // Keyed records spread over all 3 partitions, each with contiguous offsets from 0.
    assert_eq!(fx.produced.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    for recs in fx.produced.values() {
        let offsets: Vec<i64> = recs.iter().map(|r| r.0).collect();
        assert_eq!(offsets, (0..recs.len() as i64).collect::<Vec<_>>());
    }

    let logs = KafkaLogs::open(&fx.broker.bootstrap(), &fx.topic).await.expect("open topic");
    assert_eq!(logs.topic(), fx.topic);
    assert_eq!(logs.logs().iter().map(KafkaLog::partition).collect::<Vec<_>>(), vec![0, 1, 2]);

    for log in logs.logs() {
        let recs = &fx.produced[&log.partition()];
        let n = recs.len() as i64;
        assert_eq!(log.watermarks().await.expect("watermarks"), (0, n), "{log:?}");

        // Everything, in order, with keys, values (tombstones as None) and CreateTimes.
        let all = log.read_from(0, 10_000).await.expect("read all");
        assert_eq!(all.len(), recs.len());
        for (got, &(offset, i)) in all.iter().zip(recs) {
            assert_eq!(got.offset, offset);
            assert_eq!(got.key.as_deref(), Some(&key(i)[..]));
            assert_eq!(got.value, value(i));
            assert_eq!(got.timestamp_ms, Some(CREATE_TIME_BASE + i as i64 * 1000));
        }

        // A window in the middle.
        let mid = n / 2;
        let window = log.read_from(mid, 5).await.expect("read middle");
        assert_eq!(
            window.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (mid..mid + 5).collect::<Vec<_>>()
        );
        assert_eq!(window[0].key.as_deref(), Some(&key(recs[mid as usize].1)[..]));

        // The last record, a read crossing the end, at the end, past the end, max = 0.
        let last = log.read_from(n - 1, 1).await.expect("read last");
        assert_eq!(last.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![n - 1]);
        let tail = log.read_from(n - 3, 100).await.expect("read tail");
        assert_eq!(tail.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![n - 3, n - 2, n - 1]);
        assert!(log.read_from(n, 10).await.expect("read at high").is_empty());
        assert!(log.read_from(n + 7, 10).await.expect("read past high").is_empty());
        assert!(log.read_from(0, 0).await.expect("read none").is_empty());

        // Going backwards after a read works (each read re-assigns).
        let first = log.read_from(0, 1).await.expect("read first again");
        assert_eq!(first[0].offset, 0);

        // Reads that asked the broker: all, middle, last, tail, first again.
        assert_eq!(log.reads(), 5, "{log:?}");
        assert_eq!(log.records_read(), n as u64 + 5 + 1 + 3 + 1);

        let err = log.read_from(-1, 1).await.expect_err("negative offset");
        assert!(matches!(err, Error::InvalidOffset { offset: -1, .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&fx.topic) && text.contains(&format!("[{}]", log.partition())),
            "{text}"
        );
    }
    assert_eq!(logs.reads(), 15);

    // The same through the resolver's trait object.
    let log: &dyn PartitionLog = logs.partition(1).expect("partition 1");
    let n = fx.produced[&1].len() as i64;
    assert_eq!(log.watermarks().await.expect("watermarks"), (0, n));
    let got = log.read_from(n - 2, 10).await.expect("read");
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![n - 2, n - 1]);
    assert!(log.read_from(n, 10).await.expect("read at end").is_empty());
    assert!(logs.partition(3).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times() {
    let fx = three_partition_topic("pgsnap.public.times").await;
    let logs = KafkaLogs::open(&fx.broker.bootstrap(), &fx.topic).await.expect("open topic");
    for log in logs.logs() {
        let recs = &fx.produced[&log.partition()];
        let first_after_mid = recs.iter().find(|r| r.1 >= RECORDS / 2).expect("second half").0;
        // The first record whose CreateTime is >= record 150's.
        let create_150 = CREATE_TIME_BASE + 150 * 1000;
        let first_from_150 = recs.iter().find(|r| r.1 >= 150).expect("records >= 150").0;

        // Before everything: the first record, on both.
        assert_eq!(log.offset_for_time(0).await.unwrap(), Some(0));
        assert_eq!(log.offset_for_time(CREATE_TIME_BASE - 1).await.unwrap(), Some(0));

        // A CreateTime in the middle: Kafka finds the record by its CreateTime; tansu
        // compares append times (all later than 2020), so it answers the first record.
        assert_eq!(
            log.offset_for_time(create_150).await.unwrap(),
            on_tansu(Some(0), Some(first_from_150))
        );

        // The wall clock before producing: every append time is later (tansu: first
        // record); every CreateTime is earlier (Kafka: no record, i.e. end).
        assert_eq!(log.offset_for_time(fx.before_ms).await.unwrap(), on_tansu(Some(0), None));

        // The wall clock between the halves: tansu finds the first record appended after
        // it; Kafka, comparing CreateTimes of 2020, finds none.
        assert_eq!(
            log.offset_for_time(fx.mid_ms).await.unwrap(),
            on_tansu(Some(first_after_mid), None)
        );

        // After the last record: Kafka answers end (-1 → None); tansu answers 0.
        assert_eq!(log.offset_for_time(fx.after_ms).await.unwrap(), on_tansu(Some(0), None));
        assert_eq!(
            log.offset_for_time(fx.after_ms + 3_600_000).await.unwrap(),
            on_tansu(Some(0), None)
        );
    }
    // Time lookups are not reads.
    assert_eq!(logs.reads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_partition_and_errors_name_the_topic() {
    let broker = Tansu::start();
    broker.create_topic("pgsnap.public.empty", 2);
    let logs = KafkaLogs::open(&broker.bootstrap(), "pgsnap.public.empty").await.expect("open");
    assert_eq!(logs.logs().len(), 2);
    for log in logs.logs() {
        assert_eq!(log.watermarks().await.unwrap(), (0, 0));
        assert!(log.read_from(0, 10).await.unwrap().is_empty());
        assert_eq!(log.reads(), 0);
    }

    // A broker that is not there: the error names brokers, topic and partition.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let log = KafkaLog::open_with(
        &dead,
        "pgsnap.public.gone",
        4,
        &pgsnap_kafka::kafka::KafkaLogOptions {
            request_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .expect("client");
    let err = log.watermarks().await.expect_err("no broker");
    let text = err.to_string();
    assert!(text.contains(&dead) && text.contains("pgsnap.public.gone[4]"), "{text}");
}

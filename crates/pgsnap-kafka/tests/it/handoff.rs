//! The acceptance test of the CDC handoff, with real peers: PostgreSQL 15, real Debezium
//! 3.6 (embedded, forwarding to tansu one record per batch), the tansu broker, pgsnap's
//! source and the `KafkaOffsetResolver`.
//!
//! Under concurrent writers (inserts, updates, deletes; a transaction held open across the
//! snapshot point (in progress when the slot reached its consistent point); a partitioned table published through its root; a TOASTed column; topics
//! with 3 partitions keyed by primary key): the snapshot plus every Debezium event from the
//! resolved offsets, applied in order by primary key, equals the final tables exactly. The
//! events read from the resolved offsets are exactly those whose transactions the snapshot
//! does not see, and starting one offset later on a partition loses data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use pgsnap_core::{
    Coordinator, CoordinatorOptions, DataFormat, Manifest, ManifestHeader, MemoryCheckpointStore,
    MemorySink, OffsetMap, OffsetResolver, PlanOptions, RunStatus, SnapshotInfo, SnapshotMode,
    TableName,
};
use pgsnap_kafka::PgSnapshot;
use pgsnap_kafka::envelope::{Event, Op, parse_value};
use pgsnap_kafka::kafka::KafkaLogs;
use pgsnap_kafka::resolve::LogRecord;
use pgsnap_kafka::resolver::{HandoffMode, KafkaOffsetResolver};
use pgsnap_source::{PgSource, PgSourceBuilder, SplitBy};
use pgsnap_test_support::debezium::{Debezium, DebeziumOptions};
use pgsnap_test_support::kafka::Tansu;
use pgsnap_test_support::{shared_cluster, unique_db};
use serde_json::Value;

const TABLES: [(&str, &str); 2] = [("public", "t"), ("public", "p")];
const KEYS: [&[&str]; 2] = [&["id"], &["id", "k"]];
const COLUMNS: [&[&str]; 2] = [&["id", "n", "v", "big"], &["id", "k", "n", "v"]];
const MARKER_ID: i64 = 9_999_999;

fn setup(db: &str) {
    shared_cluster().psql(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, v text, big text);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
         ALTER TABLE t REPLICA IDENTITY FULL;
         INSERT INTO t SELECT g, 0, 'v' || g, repeat(md5(g::text), 100) FROM generate_series(1, 1500) g;
         CREATE TABLE p (id int, k int, n int NOT NULL, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
         CREATE TABLE p0 PARTITION OF p FOR VALUES IN (0);
         CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
         INSERT INTO p SELECT g, g % 2, 0, 'w' || g FROM generate_series(1, 1500) g;
         ANALYZE;",
    );
}

/// Sessions changing both tables in short transactions until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicI64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    async fn start(db: &str, n: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicI64::new(0));
        let next_id = Arc::new(AtomicI64::new(100_000));
        let mut tasks = Vec::new();
        for w in 0..n {
            let client = shared_cluster().connect(db).await;
            let (stop, ops, next_id) = (Arc::clone(&stop), Arc::clone(&ops), Arc::clone(&next_id));
            tasks.push(tokio::spawn(async move {
                let mut rnd = pgsnap_test_support::xorshift(w as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let id = 1 + rnd(1500) as i64;
                    // Writers 0 and 1 only run transactions that insert new rows and stay
                    // open 300 ms, so one that changes rows is nearly always in progress
                    // when the slot reaches its consistent point.
                    if w < 2 {
                        let sql = format!(
                            "BEGIN; INSERT INTO t VALUES ({0}, 2, 'slow', NULL); SELECT pg_sleep(0.3); \
                             INSERT INTO p VALUES ({0}, 0, 2, 'slow'); COMMIT",
                            next_id.fetch_add(1, Ordering::Relaxed)
                        );
                        if client.batch_execute(&sql).await.is_ok() {
                            ops.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let sql = match rnd(7) {
                        0 => format!(
                            "INSERT INTO t VALUES ({0}, 1, 'new', repeat(md5('{0}'), 100))",
                            next_id.fetch_add(1, Ordering::Relaxed)
                        ),
                        1 => format!("DELETE FROM t WHERE id = {id}"),
                        2 => format!("UPDATE t SET big = repeat(md5(random()::text), 100), n = n + 1 WHERE id = {id}"),
                        3 => format!(
                            "INSERT INTO p VALUES ({0}, {1}, 1, 'new') ON CONFLICT DO NOTHING",
                            next_id.fetch_add(1, Ordering::Relaxed),
                            rnd(2)
                        ),
                        4 => format!("DELETE FROM p WHERE id = {id}"),
                        5 => format!("UPDATE p SET n = n + 1, v = 'u' || n WHERE id = {id}"),
                        // A transaction that stays open a while: some of them are in
                        // progress at the snapshot point and commit after it.
                        _ => format!(
                            "BEGIN; UPDATE t SET n = n + 1, v = 'x' || n WHERE id = {id}; SELECT pg_sleep(0.1); UPDATE p SET n = n + 1 WHERE id = {id}; COMMIT"
                        ),
                    };
                    if client.batch_execute(&sql).await.is_ok() {
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        Writers { stop, ops, tasks }
    }

    async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.ops.load(Ordering::Relaxed)
    }
}

/// Takes a pgsnap snapshot of both tables into memory: rows by primary key, as COPY text.
async fn snapshot(source: &Arc<PgSource>) -> (SnapshotInfo, Vec<BTreeMap<String, String>>) {
    let plans = source.plan(SplitBy::Auto, 64 << 10, 2).await.expect("plan");
    let manifest = Manifest::new(
        ManifestHeader {
            snapshot: source.snapshot_info().clone(),
            source: source.source_info().clone(),
            format: DataFormat::Text,
            compression: "none".into(),
            sink: None,
            session: source.session().clone(),
            options: PlanOptions::default(),
        },
        plans,
    );
    let sink = Arc::new(MemorySink::new());
    let report = Coordinator::new(
        Arc::clone(source) as Arc<dyn pgsnap_core::Source>,
        Arc::clone(&sink) as Arc<dyn pgsnap_core::Sink>,
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_options(CoordinatorOptions::default().with_jobs(2))
    .run(manifest)
    .await
    .expect("snapshot run");
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.tables);
    let rows = TABLES
        .iter()
        .enumerate()
        .map(|(i, (s, t))| {
            let text = sink.table_content(&TableName::new(*s, *t));
            rows_by_key(&String::from_utf8_lossy(&text), KEYS[i].len())
        })
        .collect();
    (source.snapshot_info().clone(), rows)
}

/// COPY text lines by their first `nkeys` fields.
fn rows_by_key(text: &str, nkeys: usize) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| (l.split('\t').take(nkeys).collect::<Vec<_>>().join("\t"), l.to_owned()))
        .collect()
}

/// The final contents of both tables, as COPY text by key.
fn final_rows(db: &str) -> Vec<BTreeMap<String, String>> {
    TABLES
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            let cols = COLUMNS[i].join(", ");
            let out =
                shared_cluster().psql(db, &format!("COPY (SELECT {cols} FROM {t}) TO STDOUT"));
            rows_by_key(&out, KEYS[i].len())
        })
        .collect()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "\\N".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies one Debezium event to `rows` (table `i`); returns the event's txId.
fn apply(rows: &mut BTreeMap<String, String>, i: usize, record: &LogRecord) -> Option<u64> {
    let event = match parse_value(record.value.as_deref()).expect("a Debezium event") {
        Event::Change(e) => e,
        _ => return None,
    };
    let key_of =
        |img: &Value| KEYS[i].iter().map(|k| cell(&img[*k])).collect::<Vec<_>>().join("\t");
    match event.op {
        Op::Create | Op::Update | Op::Read => {
            let after = event.after.as_ref().expect("after");
            let line = COLUMNS[i].iter().map(|c| cell(&after[*c])).collect::<Vec<_>>().join("\t");
            assert!(
                !line.contains("__debezium_unavailable_value"),
                "an unchanged TOAST value arrived as a placeholder: REPLICA IDENTITY FULL missing?"
            );
            rows.insert(key_of(after), line);
        }
        Op::Delete => {
            let before = event.before.as_ref().expect("before (replica identity)");
            rows.remove(&key_of(before));
        }
        other => panic!("unexpected op {other:?}"),
    }
    event.source.tx_id
}

fn topic(prefix: &str, i: usize) -> String {
    pgsnap_kafka::topic_name(prefix, TABLES[i].0, TABLES[i].1)
}

/// Waits until the marker row's event is in table t's topic (Debezium has forwarded every
/// transaction committed before it).
async fn wait_for_marker(broker: &Tansu, prefix: &str) {
    let started = Instant::now();
    loop {
        let logs = KafkaLogs::open(&broker.bootstrap(), &topic(prefix, 0)).await.expect("open");
        for log in logs.logs() {
            let (_, high) = log.watermarks().await.expect("watermarks");
            if high > 0 {
                let last = log.read_from(high - 1, 1).await.expect("read");
                if last.iter().any(|r| {
                    r.value.as_deref().is_some_and(|v| {
                        String::from_utf8_lossy(v).contains(&format!("\"id\":{MARKER_ID}"))
                    })
                }) {
                    return;
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(90), "Debezium did not forward the marker");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads every record of `topic` partition by partition: (partition, records).
async fn read_all(broker: &Tansu, topic: &str) -> BTreeMap<i32, Vec<LogRecord>> {
    let logs = KafkaLogs::open(&broker.bootstrap(), topic).await.expect("open");
    let mut out = BTreeMap::new();
    for log in logs.logs() {
        let (low, high) = log.watermarks().await.expect("watermarks");
        let mut recs = Vec::new();
        let mut at = low;
        while at < high {
            let batch = log.read_from(at, 1000).await.expect("read");
            let Some(last) = batch.last() else { break };
            at = last.offset + 1;
            recs.extend(batch);
        }
        out.insert(log.partition(), recs);
    }
    out
}

/// Snapshot + events from `offsets` (skipping `skip` = (table, partition) first record).
fn replay(
    snap_rows: &[BTreeMap<String, String>],
    events: &[BTreeMap<i32, Vec<LogRecord>>],
    offsets: &OffsetMap,
    prefix: &str,
    skip: Option<(usize, i32)>,
) -> Vec<BTreeMap<String, String>> {
    let mut rows = snap_rows.to_vec();
    for (i, parts) in events.iter().enumerate() {
        for (p, recs) in parts {
            let from = offsets.get(&topic(prefix, i), *p).unwrap_or(0);
            let mut first = true;
            for r in recs.iter().filter(|r| r.offset >= from) {
                if first && skip == Some((i, *p)) {
                    first = false;
                    continue;
                }
                first = false;
                apply(&mut rows[i], i, r);
            }
        }
    }
    rows
}

/// Checks exactness, the visibility split at the answer, and that one offset later loses
/// data.
fn check(
    mode: &str,
    snap: &SnapshotInfo,
    snap_rows: &[BTreeMap<String, String>],
    events: &[BTreeMap<i32, Vec<LogRecord>>],
    offsets: &OffsetMap,
    prefix: &str,
    final_state: &[BTreeMap<String, String>],
) {
    let replayed = replay(snap_rows, events, offsets, prefix, None);
    for i in 0..TABLES.len() {
        let (got, want) = (&replayed[i], &final_state[i]);
        let wrong: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(*v)).take(3).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(3).collect();
        assert!(
            wrong.is_empty() && extra.is_empty() && got.len() == want.len(),
            "{mode}: table {} differs after replay: {} vs {} rows; wrong {wrong:?}; extra {extra:?}",
            TABLES[i].1,
            got.len(),
            want.len()
        );
    }
    // Exactly the invisible transactions from the answer on, the visible ones before it.
    let pg: PgSnapshot = snap.pg_snapshot.parse().expect("pg_snapshot");
    let (mut after, mut spanning) = (0, 0);
    for (i, parts) in events.iter().enumerate() {
        for (p, recs) in parts {
            let from = offsets.get(&topic(prefix, i), *p).unwrap_or(0);
            for r in recs {
                let Ok(Event::Change(e)) = parse_value(r.value.as_deref()) else { continue };
                let tx = e.source.tx_id.expect("txId") as u32;
                let visible = pg.event_in_snapshot(tx);
                if pg.xip().contains(&pg.widen(tx)) {
                    spanning += 1;
                }
                if r.offset >= from {
                    after += 1;
                    assert!(
                        !visible,
                        "{mode}: {}[{p}]@{} (tx {tx}) is in the snapshot but replayed",
                        topic(prefix, i),
                        r.offset
                    );
                } else {
                    assert!(
                        visible,
                        "{mode}: {}[{p}]@{} (tx {tx}) is not in the snapshot but skipped",
                        topic(prefix, i),
                        r.offset
                    );
                }
            }
        }
    }
    assert!(after > 0, "{mode}: no event after the snapshot: the writers did not run");
    assert!(
        spanning > 0,
        "{mode}: no transaction was in progress at the snapshot point (xip {:?}): the test did not \
         exercise transactions open across it",
        pg.xip()
    );
    // One offset later on some partition loses data.
    let mut lost = false;
    for (i, parts) in events.iter().enumerate() {
        for p in parts.keys() {
            if replay(snap_rows, events, offsets, prefix, Some((i, *p))) != final_state {
                lost = true;
            }
        }
    }
    assert!(lost, "{mode}: starting one offset later lost nothing: the test cannot fail");
}

fn debezium_options(
    db: &str,
    slot: &str,
    publication: &str,
    prefix: &str,
    broker: &Tansu,
) -> DebeziumOptions {
    let mut o =
        DebeziumOptions::new(shared_cluster(), db, slot, publication, prefix, &broker.bootstrap());
    for (s, t) in TABLES {
        o = o.with_table(format!("{s}.{t}"));
    }
    o
}

fn create_topics(broker: &Tansu, prefix: &str) {
    for i in 0..TABLES.len() {
        broker.create_topic(&topic(prefix, i), 3);
    }
}

/// Slot-first: pgsnap creates the publication and a permanent slot with the exported
/// snapshot; Debezium then streams from that slot with `snapshot.mode=no_data`; the answer
/// is the high watermarks captured before it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slot_first_handoff_is_exact_under_concurrent_writes() {
    let db = unique_db("k_handoff_slot");
    setup(&db);
    let broker = Tansu::start();
    let prefix = "sf";
    create_topics(&broker, prefix);
    let topics: Vec<String> = (0..TABLES.len()).map(|i| topic(prefix, i)).collect();
    let writers = Writers::start(&db, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorded =
        KafkaOffsetResolver::capture_high_watermarks(&broker.bootstrap(), &topics).await.unwrap();
    let slot = format!("pgsnap_{db}");
    let publication = format!("pgsnap_{db}_pub");
    let source = Arc::new(
        PgSourceBuilder::new(shared_cluster().conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Slot)
            .with_slot(Some(slot.clone()))
            .with_publication(Some(publication.clone()))
            .open()
            .await
            .expect("open with a permanent slot"),
    );
    let (snap, snap_rows) = snapshot(&source).await;
    source.close().await.unwrap();
    let dbz = Debezium::start(debezium_options(&db, &slot, &publication, prefix, &broker));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ops = writers.stop().await;
    shared_cluster().psql(&db, &format!("INSERT INTO t VALUES ({MARKER_ID}, 0, 'marker', NULL)"));
    wait_for_marker(&broker, prefix).await;
    drop(dbz);
    let final_state = final_rows(&db);
    let resolver =
        KafkaOffsetResolver::new(broker.bootstrap(), HandoffMode::SlotFirst { recorded });
    let offsets = resolver.resolve(&snap, &topics).await.unwrap();
    let mut events = Vec::new();
    for t in &topics {
        events.push(read_all(&broker, t).await);
    }
    eprintln!(
        "slot-first: {ops} writer operations; offsets {}",
        serde_json::to_string(&offsets).unwrap()
    );
    check("slot-first", &snap, &snap_rows, &events, &offsets, prefix, &final_state);
    shared_cluster().psql(&db, &format!("SELECT pg_drop_replication_slot('{slot}')"));
}

/// Running: Debezium already streams from its own slot; pgsnap takes its snapshot from a
/// temporary slot; the resolver finds, per partition, the first event whose transaction the
/// snapshot does not see.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_handoff_is_exact_under_concurrent_writes() {
    let db = unique_db("k_handoff_run");
    setup(&db);
    let broker = Tansu::start();
    let prefix = "rn";
    create_topics(&broker, prefix);
    let topics: Vec<String> = (0..TABLES.len()).map(|i| topic(prefix, i)).collect();
    let slot = format!("dbz_{db}");
    let publication = format!("dbz_{db}_pub");
    shared_cluster().psql(
        &db,
        &format!(
            "CREATE PUBLICATION {publication} FOR TABLE t, p WITH (publish_via_partition_root = true);
             SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');"
        ),
    );
    let dbz = Debezium::start(debezium_options(&db, &slot, &publication, prefix, &broker));
    let writers = Writers::start(&db, 5).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let source = Arc::new(
        PgSourceBuilder::new(shared_cluster().conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Slot)
            .open()
            .await
            .expect("open with a temporary slot"),
    );
    let (snap, snap_rows) = snapshot(&source).await;
    source.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ops = writers.stop().await;
    shared_cluster().psql(&db, &format!("INSERT INTO t VALUES ({MARKER_ID}, 0, 'marker', NULL)"));
    wait_for_marker(&broker, prefix).await;
    drop(dbz);
    let final_state = final_rows(&db);
    let resolver = KafkaOffsetResolver::new(broker.bootstrap(), HandoffMode::Running);
    let offsets = resolver.resolve(&snap, &topics).await.unwrap();
    let mut events = Vec::new();
    for t in &topics {
        events.push(read_all(&broker, t).await);
    }
    let reads = resolver.last_resolution().unwrap().total_reads();
    eprintln!(
        "running: {ops} writer operations; offsets {}; {reads} broker reads",
        serde_json::to_string(&offsets).unwrap()
    );
    // Debezium ran before the snapshot, so its topics also hold events the snapshot has:
    // the answer is inside the log, not at its start.
    let skipped: usize = events
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.iter().map(move |(p, recs)| (i, *p, recs)))
        .map(|(i, p, recs)| {
            let from = offsets.get(&topic(prefix, i), p).unwrap_or(0);
            recs.iter().filter(|r| r.offset < from).count()
        })
        .sum();
    assert!(skipped > 0, "no pre-snapshot event in the log: the running mode was not exercised");
    check("running", &snap, &snap_rows, &events, &offsets, prefix, &final_state);
    shared_cluster().psql(&db, &format!("SELECT pg_drop_replication_slot('{slot}')"));
}

//! The status job against a real PostgreSQL (a permanent slot), tansu (Debezium-shaped
//! events, one committed transaction) and the StarRocks double's Routine Load: lagging →
//! caught up, a commit marker that is no lag, a job paused by a filtered row, the cutover
//! rule, and the JSON contract.
//!
//! The state is what `handoff --create-routine-loads` records: a snapshot's manifest (a
//! `FilesJob` with a permanent slot) plus a `handoff` field, and the Routine Load created on
//! the double from the statement `render_routine_load` renders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pgsnap::core::manifest::{HandoffState, RoutineLoadRecord};
use pgsnap::core::{CheckpointStore, Lsn, ManifestStore};
use pgsnap::kafka::connect::ConnectClient;
use pgsnap::kafka::render::{RoutineLoadSpec, render_routine_load};
use pgsnap::starrocks::StarRocksSinkBuilder;
use pgsnap::{
    Connection, Cutover, ErrorKind, FilesJob, JobError, RunControl, StatusJob, StatusReport,
    StatusVerdict,
};
use pgsnap_test_support::connect::{ConnectDouble, State};
use pgsnap_test_support::kafka::{Record, Tansu, send_in_transaction};
use pgsnap_test_support::shared_cluster;
use pgsnap_test_support::starrocks::{KeysType, StarRocksDouble, StarRocksOptions, table_def};
use serde_json::{Value, json};

use crate::support::*;

const DATABASE: &str = "sales";
const JOB: &str = "pgsnap_big";

/// A handoff's state: the database and its permanent slot (dropped on drop), the manifest
/// with a `handoff`, tansu with the table's topic, the double with the target table.
pub(crate) struct Fixture {
    pub(crate) db: String,
    slot: String,
    state: tempfile::TempDir,
    pub(crate) kafka: Tansu,
    pub(crate) sr: StarRocksDouble,
    pub(crate) topic: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = shared_cluster().try_psql(
            &self.db,
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = '{}'",
                self.slot
            ),
        );
    }
}

impl Fixture {
    /// `partitions` partitions; the double commits a Routine Load batch after `batch` of
    /// silence.
    pub(crate) async fn new(prefix: &str, partitions: u32, batch: Duration) -> Fixture {
        let db = db_with_rows(prefix, 10);
        let slot = format!("st_{}", &db[db.len() - 12..]);
        let state = tempfile::tempdir().unwrap();
        let report = FilesJob::new(options(&db).with_slot(&slot), state.path().join("out"))
            .run(&RunControl::new())
            .await
            .unwrap();
        assert_eq!(report.run.outcome(), pgsnap::Outcome::Complete);
        let kafka = Tansu::start();
        let topic = format!("{prefix}.public.big");
        kafka.create_topic(&topic, partitions);
        let sr = StarRocksDouble::start(
            StarRocksOptions::default().with_routine_load_batch_interval(batch),
        )
        .await;
        sr.create_table(
            DATABASE,
            table_def(
                "big",
                KeysType::Primary,
                &["id"],
                &[("id", "INT", false), ("v", "VARCHAR(200)", true)],
            ),
        );
        Fixture { db, slot, state, kafka, sr, topic }
    }

    pub(crate) fn dir(&self) -> PathBuf {
        self.state.path().join("out")
    }

    pub(crate) fn sink_builder(&self) -> StarRocksSinkBuilder {
        StarRocksSinkBuilder::new(self.sr.fe_url(), "")
            .with_fe_sql(self.sr.mysql_addr().to_string())
    }

    /// Creates the Routine Load at `offsets` on the double and records it (and the
    /// connector's name) in the manifest, as a handoff that creates its Routine Loads does.
    pub(crate) async fn create_routine_load(&self, offsets: BTreeMap<i32, i64>) {
        let spec = RoutineLoadSpec::new(
            DATABASE,
            "big",
            JOB,
            &self.topic,
            [self.kafka.bootstrap()],
            ["id", "v"],
            ["id"],
            offsets.clone(),
        );
        let sql = render_routine_load(&spec).unwrap().sql;
        let sink = self.sink_builder().with_database(DATABASE).with_run_id("t").build().unwrap();
        sink.create_routine_load(JOB, &sql, &[]).await.unwrap();
        let mut record = RoutineLoadRecord::new(JOB, "public.big", "big", &self.topic);
        record.offsets = offsets;
        record.definition = sql;
        record.job_id = sink.show_routine_loads(JOB).await.unwrap().last().map(|j| j.id.clone());
        let mut handoff = HandoffState::new(self.kafka.bootstrap(), DATABASE);
        handoff.topics.push(self.topic.clone());
        handoff.connector = Some("pgsnap-dbz".into());
        handoff.routine_loads.push(record);
        let store = ManifestStore::new(self.dir());
        let mut manifest = store.load().await.unwrap().unwrap();
        manifest.handoff = Some(handoff);
        store.save(&manifest).await.unwrap();
    }

    pub(crate) fn job(&self) -> StatusJob {
        StatusJob::new(
            self.dir(),
            Connection::new(shared_cluster().conninfo(&self.db)),
            self.sink_builder(),
        )
    }

    /// Debezium-shaped change events (schemas disabled) on `partition`.
    pub(crate) async fn produce(&self, partition: i32, events: &[String]) {
        let producer = self.kafka.producer();
        for e in events {
            let record = Record {
                partition: Some(partition),
                value: Some(e.as_bytes()),
                ..Record::default()
            };
            producer.send(&self.topic, record).await;
        }
    }

    pub(crate) fn current_wal_lsn(&self) -> Lsn {
        sql(&self.db, "SELECT pg_current_wal_insert_lsn()").parse().unwrap()
    }
}

/// An insert event of `big` as Debezium writes it (`value.converter.schemas.enable=false`).
pub(crate) fn insert(id: Value, v: &str) -> String {
    json!({"before": null, "after": {"id": id, "v": v}, "op": "c",
           "source": {"connector": "postgresql", "schema": "public", "table": "big", "txId": 700}})
    .to_string()
}

/// The names of `pgsnap status --json` that other tools read (issue #12 §2).
fn assert_contract(json: &Value) {
    for key in ["tables", "slot", "connector", "cutover_lsn", "verdict"] {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
    let t = &json["tables"][0];
    for key in ["source", "target", "routine_load", "verdict"] {
        assert!(t.get(key).is_some(), "no tables[].{key} in {t}");
    }
    let rl = &t["routine_load"];
    for key in ["name", "state", "reason", "partitions", "rows_loaded", "rows_filtered"] {
        assert!(rl.get(key).is_some(), "no routine_load.{key} in {rl}");
    }
    for p in rl["partitions"].as_array().unwrap() {
        for key in ["partition", "high_watermark", "consumed", "lag", "caught_up"] {
            assert!(p.get(key).is_some(), "no partitions[].{key} in {p}");
        }
    }
    if !json["slot"].is_null() {
        for key in ["name", "confirmed_flush_lsn", "wal_status"] {
            assert!(json["slot"].get(key).is_some(), "no slot.{key} in {json}");
        }
    }
    let verdicts = ["caught_up", "lagging", "paused", "failed"];
    assert!(verdicts.contains(&json["verdict"].as_str().unwrap()), "{json}");
    assert!(verdicts.contains(&t["verdict"].as_str().unwrap()), "{t}");
}

fn partition(r: &StatusReport, p: i32) -> Value {
    let json = serde_json::to_value(r).unwrap();
    json["tables"][0]["routine_load"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["partition"] == p)
        .cloned()
        .unwrap_or_else(|| panic!("no partition {p} in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_job_catches_up_and_a_commit_marker_is_no_lag() {
    // The double commits a batch after 3 s without new records: the first check, right
    // after the records are written, sees them unconsumed.
    let fx = Fixture::new("stlag", 2, Duration::from_secs(3)).await;
    fx.produce(0, &[insert(json!(1), "a"), insert(json!(2), "b"), insert(json!(3), "c")]).await;
    // Partition 1: one committed transaction of two records (offsets 0, 1; the commit marker
    // takes offset 2, so the high watermark is 3 once it is consumed through offset 1).
    let offsets = send_in_transaction(
        &fx.kafka.bootstrap(),
        &fx.topic,
        1,
        &[insert(json!(4), "d").as_bytes(), insert(json!(5), "e").as_bytes()],
        true,
    )
    .await;
    assert_eq!(offsets, [0, 1]);
    fx.create_routine_load(BTreeMap::from([(0, 0), (1, 0)])).await;

    let job = fx.job();
    let first = job.run().await.unwrap();
    assert_eq!(first.verdict, StatusVerdict::Lagging, "{first:#?}");
    assert_eq!(first.tables[0].verdict, StatusVerdict::Lagging);
    let p0 = partition(&first, 0);
    assert_eq!(
        (&p0["consumed"], &p0["high_watermark"], &p0["lag"]),
        (&json!(null), &json!(3), &json!(3))
    );
    assert_eq!(p0["caught_up"], false);
    assert!(
        first.reasons.iter().any(|r| r.contains("public.big: partition 0: 3 offset(s)")),
        "{:?}",
        first.reasons
    );
    assert_contract(&serde_json::to_value(&first).unwrap());

    let mut seen = Vec::new();
    let (last, timed_out) = job
        .until_caught_up(Duration::from_secs(60), Duration::from_millis(200), |r| {
            seen.push(r.verdict)
        })
        .await
        .unwrap();
    assert!(!timed_out);
    assert_eq!(last.verdict, StatusVerdict::CaughtUp, "{last:#?}");
    assert_eq!(seen.last(), Some(&StatusVerdict::CaughtUp));
    assert!(!last.caught_up_for_cutover(), "no cutover LSN was given");
    let p0 = partition(&last, 0);
    assert_eq!(
        (&p0["consumed"], &p0["lag"], &p0["caught_up"]),
        (&json!(2), &json!(0), &json!(true))
    );
    // HW − (Progress + 1) = 3 − 2 = 1: the commit marker, which no consumer receives.
    let p1 = partition(&last, 1);
    assert_eq!((&p1["consumed"], &p1["high_watermark"]), (&json!(1), &json!(3)), "{p1}");
    assert_eq!((&p1["lag"], &p1["caught_up"], &p1["gap"]), (&json!(1), &json!(true), &json!(true)));
    let t = &last.tables[0];
    assert_eq!((t.routine_load.rows_loaded, t.routine_load.rows_filtered), (5, 0));
    assert_eq!(t.routine_load.state.as_deref(), Some("RUNNING"));
    assert_eq!(fx.sr.rows(DATABASE, "big").len(), 5);

    let json = serde_json::to_value(&last).unwrap();
    assert_contract(&json);
    assert_eq!(json["slot"]["name"], fx.slot.as_str());
    assert!(json["slot"]["confirmed_flush_lsn"].as_str().unwrap().contains('/'), "{json}");
    assert_eq!(json["slot"]["wal_status"], "reserved");
    assert_eq!((&json["connector"], &json["cutover_lsn"]), (&Value::Null, &Value::Null));
    assert_eq!(
        last.lag_summary()["tables"][0],
        json!({"source": "public.big", "verdict": "caught_up", "lag": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_paused_by_a_filtered_row_is_paused_with_the_remedy() {
    let fx = Fixture::new("stpause", 1, Duration::from_millis(100)).await;
    fx.produce(0, &[insert(json!(1), "a"), insert(json!("not a number"), "b")]).await;
    fx.create_routine_load(BTreeMap::from([(0, 0)])).await;
    fx.sr
        .wait_routine_load(DATABASE, JOB, &BTreeMap::from([(0, 2)]), Duration::from_secs(30))
        .await;

    // Waiting cannot fix a paused job: the polling ends at once, not at the timeout.
    let started = std::time::Instant::now();
    let (report, timed_out) = fx
        .job()
        .until_caught_up(Duration::from_secs(3), Duration::from_millis(200), |_| {})
        .await
        .unwrap();
    assert!(!timed_out && started.elapsed() < Duration::from_secs(3));
    assert_eq!(report.verdict, StatusVerdict::Paused, "{report:#?}");
    let t = &report.tables[0];
    assert_eq!(t.verdict, StatusVerdict::Paused);
    assert_eq!(t.routine_load.state.as_deref(), Some("PAUSED"));
    assert_eq!((t.routine_load.rows_loaded, t.routine_load.rows_filtered), (1, 1));
    assert!(t.routine_load.reason.as_deref().unwrap().contains("errCode = 102"), "{t:#?}");
    assert!(!t.error_urls.is_empty(), "{t:#?}");
    let remedy = t.remedy.as_deref().unwrap();
    assert!(remedy.contains("skipped in the committed batch"), "{remedy}");
    assert!(remedy.contains("RESUME will not bring them back"), "{remedy}");
    assert!(
        remedy.contains(&format!(
            "ALTER ROUTINE LOAD FOR `{DATABASE}`.`{JOB}` FROM KAFKA (\"kafka_partitions\" = \"0\", \"kafka_offsets\" = \"0\")"
        )),
        "{remedy}"
    );
    assert!(remedy.contains("Primary Key") && remedy.contains("re-snapshot"), "{remedy}");
    assert!(report.reasons.iter().any(|r| r.contains("PAUSED")), "{:?}", report.reasons);
    // The batch was committed: the paused job's progress is past both records.
    let p0 = partition(&report, 0);
    assert_eq!((&p0["consumed"], &p0["lag"]), (&json!(1), &json!(0)));
    assert_contract(&serde_json::to_value(&report).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_for_cutover_needs_the_connector_at_the_cutover_lsn() {
    let fx = Fixture::new("stcut", 1, Duration::from_millis(100)).await;
    fx.produce(0, &[insert(json!(1), "a")]).await;
    fx.create_routine_load(BTreeMap::from([(0, 0)])).await;
    fx.sr
        .wait_routine_load(DATABASE, JOB, &BTreeMap::from([(0, 1)]), Duration::from_secs(30))
        .await;
    // Writes after the slot's consistent point: the WAL moves past confirmed_flush_lsn.
    sql(&fx.db, "INSERT INTO big VALUES (1001, 'after'); UPDATE big SET v = 'x' WHERE id = 1");
    let t = fx.current_wal_lsn();

    // (b) by the slot: confirmed_flush_lsn is still the snapshot's consistent point.
    let behind = fx.job().with_cutover(Cutover::Lsn(t)).run().await.unwrap();
    assert_eq!(behind.tables[0].verdict, StatusVerdict::CaughtUp, "{behind:#?}");
    assert!(!behind.caught_up_for_cutover(), "{behind:#?}");
    assert_eq!(behind.verdict, StatusVerdict::Lagging);
    let cutover = behind.cutover.as_ref().unwrap();
    assert_eq!(
        (cutover.position_from, cutover.reached, cutover.taken),
        (Some("slot"), false, false)
    );
    let reason = cutover.reason.as_deref().unwrap();
    assert!(reason.contains("confirmed_flush_lsn") && reason.contains("heartbeat"), "{reason}");
    let json = serde_json::to_value(&behind).unwrap();
    assert_eq!(json["cutover_lsn"], t.to_string());
    assert_eq!(json["caught_up_for_cutover"], false);
    assert_contract(&json);

    // The consumer confirms past T (what Debezium's offset commit does). PostgreSQL advances
    // a slot only up to the flushed WAL, which other tests' writes on the shared cluster may
    // keep behind T for a moment: advance until it is there.
    let started = std::time::Instant::now();
    loop {
        let at = sql(
            &fx.db,
            &format!(
                "SELECT end_lsn >= '{t}'::pg_lsn FROM pg_replication_slot_advance('{}', '{t}')",
                fx.slot
            ),
        );
        if at == "t" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the slot stays before {t}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let reached = fx.job().with_cutover(Cutover::Lsn(t)).run().await.unwrap();
    assert!(reached.caught_up_for_cutover(), "{reached:#?}");
    assert_eq!(reached.verdict, StatusVerdict::CaughtUp);
    assert!(reached.slot.as_ref().unwrap().confirmed_flush_lsn.unwrap() >= t);
    assert_eq!(reached.lag_summary()["caught_up_for_cutover"], true);

    // --writes-stopped: the job reads T itself, at or after every write so far.
    let before = fx.current_wal_lsn();
    let taken = fx.job().with_cutover(Cutover::TakeNow).run().await.unwrap();
    let c = taken.cutover.as_ref().unwrap();
    assert!(c.taken && c.lsn >= before, "{c:?}");
    // A watch takes T once: later checks use the same T while the WAL moves on.
    let watched = fx.job().with_cutover(Cutover::TakeNow).take_cutover().await.unwrap();
    let first = watched.run().await.unwrap();
    sql(&fx.db, "CREATE TABLE status_wal_moves (id int); DROP TABLE status_wal_moves;");
    let second = watched.run().await.unwrap();
    assert_eq!(first.cutover_lsn, second.cutover_lsn);
    assert!(second.cutover.as_ref().unwrap().taken);

    // (b) by the connector's processed position (Kafka Connect's lsn_proc), not the slot.
    let connect = ConnectDouble::start(State::default()).await;
    {
        let mut st = connect.state.lock().unwrap();
        st.connectors.insert(
            "pgsnap-dbz".into(),
            json!({"connector.class": "io.debezium.connector.postgresql.PostgresConnector"}),
        );
        st.offsets.insert(
            "pgsnap-dbz".into(),
            vec![json!({"partition": {"server": "stcut"}, "offset": {"lsn_proc": t.0 - 1, "lsn_commit": t.0 - 1, "lsn": t.0 - 1}})],
        );
    }
    let with_connect = || {
        fx.job()
            .with_connect(ConnectClient::new(&connect.url).unwrap())
            .with_cutover(Cutover::Lsn(t))
    };
    let r = with_connect().run().await.unwrap();
    assert!(!r.caught_up_for_cutover(), "the slot is past T, the connector is not: {r:#?}");
    let c = r.cutover.as_ref().unwrap();
    assert_eq!((c.position_from, c.position), (Some("connector"), Some(Lsn(t.0 - 1))));
    let connector = r.connector.as_ref().unwrap();
    assert_eq!(
        (connector.name.as_str(), connector.state.as_deref()),
        ("pgsnap-dbz", Some("RUNNING"))
    );
    connect.state.lock().unwrap().offsets.insert(
        "pgsnap-dbz".into(),
        vec![json!({"partition": {"server": "stcut"}, "offset": {"lsn_proc": t.0, "lsn_commit": t.0, "lsn": t.0}})],
    );
    let r = with_connect().run().await.unwrap();
    assert!(r.caught_up_for_cutover(), "{r:#?}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["connector"]["lsn_proc"], t.to_string());
    assert_contract(&json);
    // A failed connector carries nothing more: failed, whatever the offsets say.
    connect.state.lock().unwrap().states.insert("pgsnap-dbz".into(), "FAILED".into());
    let r = with_connect().run().await.unwrap();
    assert_eq!(r.verdict, StatusVerdict::Failed);
    assert!(!r.caught_up_for_cutover());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_without_a_handoff_is_a_usage_error() {
    let db = db_with_rows("stnone", 10);
    let dir = tempfile::tempdir().unwrap();
    FilesJob::new(options(&db), dir.path().join("out")).run(&RunControl::new()).await.unwrap();
    let job = |d: PathBuf| {
        StatusJob::new(
            d,
            Connection::new(shared_cluster().conninfo(&db)),
            StarRocksSinkBuilder::new("http://127.0.0.1:1", ""),
        )
    };
    let e = job(dir.path().join("out")).run().await.unwrap_err();
    assert!(matches!(e, JobError::NoHandoff { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.to_string().contains("--create-routine-loads"), "{e}");
    let e = job(dir.path().join("nothing")).run().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.to_string().contains("manifest.json"), "{e}");
}

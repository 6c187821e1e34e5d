//! The `status` example (or `pgsnap status` with `PGSNAP_FRONT=cli`) as a black box: exit
//! codes (2 without a handoff, 1 lagging for one check, 6 when `--until-caught-up` times
//! out, 1 at once for a paused job), the remedy on stderr, `--json` and `--watch --json`
//! (NDJSON), and `--watch --metrics-addr` serving each check's numbers while it runs. The state is built as `handoff --create-routine-loads` leaves it: a snapshot's
//! manifest with a `handoff` field, and the Routine Load created on the StarRocks double.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgsnap::core::manifest::{HandoffState, RoutineLoadRecord};
use pgsnap::core::{CheckpointStore, ManifestStore};
use pgsnap::kafka::render::{RoutineLoadSpec, render_routine_load};
use pgsnap::starrocks::StarRocksSinkBuilder;
use pgsnap::{Connection, FilesJob, RunControl, SnapshotOptions};
use pgsnap_test_support::kafka::{Record, Tansu};
use pgsnap_test_support::starrocks::{KeysType, StarRocksDouble, StarRocksOptions, table_def};
use pgsnap_test_support::unique_db;
use serde_json::{Value, json};

use crate::support::*;

const STATUS: &str = "status";
const DATABASE: &str = "sales";
const JOB: &str = "pgsnap_big";

/// A handoff's state with one Routine Load consuming `messages` (one partition).
struct Fixture {
    db: String,
    state: tempfile::TempDir,
    _kafka: Tansu,
    sr: StarRocksDouble,
}

impl Fixture {
    async fn new(prefix: &str, messages: &[String]) -> Fixture {
        let db = unique_db(prefix);
        sql(&db, "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big VALUES (1, 'a')");
        let state = tempfile::tempdir().unwrap();
        let options = SnapshotOptions::new(Connection::new(source(&db)));
        FilesJob::new(options, state.path().join("out")).run(&RunControl::new()).await.unwrap();
        let kafka = Tansu::start();
        let topic = format!("{prefix}.public.big");
        kafka.create_topic(&topic, 1);
        let producer = kafka.producer();
        for m in messages {
            let record =
                Record { partition: Some(0), value: Some(m.as_bytes()), ..Record::default() };
            producer.send(&topic, record).await;
        }
        let sr = StarRocksDouble::start(
            StarRocksOptions::default()
                .with_routine_load_batch_interval(Duration::from_millis(100)),
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
        let offsets = BTreeMap::from([(0, 0)]);
        let spec = RoutineLoadSpec::new(
            DATABASE,
            "big",
            JOB,
            &topic,
            [kafka.bootstrap()],
            ["id", "v"],
            ["id"],
            offsets.clone(),
        );
        let statement = render_routine_load(&spec).unwrap().sql;
        let sink = StarRocksSinkBuilder::new(sr.fe_url(), DATABASE)
            .with_fe_sql(sr.mysql_addr().to_string())
            .with_run_id("t")
            .build()
            .unwrap();
        sink.create_routine_load(JOB, &statement, &[]).await.unwrap();
        let mut record = RoutineLoadRecord::new(JOB, "public.big", "big", &topic);
        record.offsets = offsets;
        record.definition = statement;
        let mut handoff = HandoffState::new(kafka.bootstrap(), DATABASE);
        handoff.topics.push(topic);
        handoff.routine_loads.push(record);
        let store = ManifestStore::new(state.path().join("out"));
        let mut manifest = store.load().await.unwrap().unwrap();
        manifest.handoff = Some(handoff);
        store.save(&manifest).await.unwrap();
        Fixture { db, state, _kafka: kafka, sr }
    }

    fn out(&self) -> PathBuf {
        self.state.path().join("out")
    }

    /// `status` with the fixture's connection flags and `extra`, run to its end off the
    /// runtime (the double answers on it meanwhile).
    async fn status(&self, extra: &[&str]) -> Output {
        status_of(
            &self.out(),
            &self.db,
            &self.sr.fe_url(),
            &self.sr.mysql_addr().to_string(),
            extra,
        )
        .await
    }
}

async fn status_of(out: &Path, db: &str, fe: &str, fe_sql: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["--state", arg(out), "--source", &source(db), "--fe", fe]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--fe-sql".to_owned(), fe_sql.to_owned()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run_example(STATUS, &argv)
    })
    .await
    .unwrap()
}

fn insert(id: Value) -> String {
    json!({"before": null, "after": {"id": id, "v": "x"}, "op": "c"}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exit_codes_remedy_and_ndjson() {
    // A state without a handoff: usage, saying what to run.
    let db = unique_db("stcli_none");
    sql(&db, "CREATE TABLE big (id int PRIMARY KEY)");
    let plain = tempfile::tempdir().unwrap();
    FilesJob::new(SnapshotOptions::new(Connection::new(source(&db))), plain.path().join("out"))
        .run(&RunControl::new())
        .await
        .unwrap();
    let out =
        status_of(&plain.path().join("out"), &db, "http://127.0.0.1:1", "127.0.0.1:1", &[]).await;
    out.expect_code(2);
    assert!(out.stderr.contains("--create-routine-loads"), "{}", out.stderr);

    // A message that is not JSON fails its batch (nothing of it is applied) and stalls the job
    // (no pause_on_fatal_parse_error): it stays RUNNING and never gets past it, so it lags
    // for good.
    let stuck = Fixture::new("stclistuck", &[insert(json!(1)), "not json".into()]).await;
    let one = stuck.status(&["--json"]).await;
    one.expect_code(6);
    let report = one.json();
    assert_eq!(report["verdict"], "lagging", "{report}");
    let t = &report["tables"][0];
    assert_eq!((&t["source"], &t["target"]), (&json!("public.big"), &json!("big")));
    assert_eq!(t["routine_load"]["state"], "RUNNING");
    let p = &t["routine_load"]["partitions"][0];
    assert_eq!(
        (&p["partition"], &p["consumed"], &p["high_watermark"]),
        (&json!(0), &Value::Null, &json!(2))
    );
    assert_eq!((&p["lag"], &p["caught_up"]), (&json!(2), &json!(false)));
    assert_eq!((&report["connector"], &report["cutover_lsn"]), (&Value::Null, &Value::Null));
    assert!(report.get("slot").is_some(), "{report}");

    let timed_out = stuck.status(&["--until-caught-up", "--timeout", "2"]).await;
    timed_out.expect_code(6);
    assert!(timed_out.stderr.contains("--timeout"), "{}", timed_out.stderr);
    assert!(
        timed_out.stderr.contains("partition 0: 2 offset(s) to consume"),
        "{}",
        timed_out.stderr
    );

    let watched =
        stuck.status(&["--watch", "1", "--json", "--until-caught-up", "--timeout", "3"]).await;
    watched.expect_code(6);
    let lines: Vec<Value> = watched
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(lines.len() >= 2, "one object per check:\n{}", watched.stdout);
    assert!(lines.iter().all(|l| l["verdict"] == "lagging"), "{}", watched.stdout);

    // The same watch with --metrics-addr serves what each check saw while it runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let scraper = tokio::task::spawn_blocking(move || {
        scrape_until(&addr, "pgsnap_status_verdict{verdict=\"lagging\"} 1")
    });
    let served = stuck
        .status(&[
            "--watch",
            "1",
            "--json",
            "--until-caught-up",
            "--timeout",
            "4",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .await;
    served.expect_code(6);
    let text = scraper.await.unwrap();
    for series in [
        "pgsnap_status_verdict{verdict=\"lagging\"} 1",
        "pgsnap_caught_up_for_cutover 0",
        "pgsnap_kafka_high_watermark_offset{table=\"public.big\",topic=\"stclistuck.public.big\",partition=\"0\"} 2",
        "pgsnap_routine_load_lag_offsets{table=\"public.big\",topic=\"stclistuck.public.big\",partition=\"0\"} 2",
        "pgsnap_routine_load_state{table=\"public.big\",routine_load=\"pgsnap_big\",state=\"RUNNING\"} 1",
    ] {
        assert!(text.contains(series), "{series} not in the scrape:\n{text}");
    }

    // A filtered row pauses the job after its batch: exit 1 at once, with the remedy.
    let paused = Fixture::new("stclipause", &[insert(json!(1)), insert(json!("x"))]).await;
    paused
        .sr
        .wait_routine_load(DATABASE, JOB, &BTreeMap::from([(0, 2)]), Duration::from_secs(30))
        .await;
    let out = paused.status(&["--until-caught-up", "--timeout", "30"]).await;
    out.expect_code(1);
    for text in [
        "PAUSED",
        "skipped in the committed batch",
        "RESUME will not bring them back",
        "ALTER ROUTINE LOAD FOR `sales`.`pgsnap_big` FROM KAFKA",
        "re-snapshot",
        "error log: ",
    ] {
        assert!(out.stderr.contains(text), "no {text:?} in:\n{}", out.stderr);
    }
}

/// GETs `http://addr/metrics` until the answer holds `needle` (the command binds the address
/// before its first check, and fills the metrics from that check), for up to 30 s.
fn scrape_until(addr: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok((_, body)) = pgsnap_test_support::prometheus::http_get(addr, "/metrics") {
            if body.contains(needle) {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {needle} at http://{addr}/metrics within 30 s; last answer:\n{last}");
}

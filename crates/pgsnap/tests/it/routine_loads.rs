//! Routine Loads created by the handoff (`with_create_routine_loads`) in the StarRocks double,
//! consuming real tansu: the manifest's `handoff` record, a rerun that finds its jobs, the
//! refusal of a STOPPED job and of a name another job holds, and of Duplicate Key targets.

use mysql_async::prelude::Queryable;
use pgsnap::starrocks::StarRocksSinkBuilder;
use pgsnap::{ErrorKind, HandoffJob, JobError, Outcome, RunControl};
use pgsnap_test_support::kafka::Tansu;
use pgsnap_test_support::starrocks::{StarRocksDouble, StarRocksOptions};

use crate::support::*;

const DB: &str = "rl";

async fn double() -> StarRocksDouble {
    let d = StarRocksDouble::start(StarRocksOptions::default()).await;
    d.create_database(DB);
    d
}

fn starrocks(d: &StarRocksDouble) -> StarRocksSinkBuilder {
    StarRocksSinkBuilder::new(d.fe_url(), DB)
        .with_user(d.options().user.clone())
        .with_password(d.options().password.clone())
        .with_fe_sql(d.mysql_addr().to_string())
        .with_create_tables(true)
}

/// Runs `statement` on the double's FE.
async fn fe(d: &StarRocksDouble, statement: &str) {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(d.mysql_addr().ip().to_string())
        .tcp_port(d.mysql_addr().port())
        .user(Some(d.options().user.clone()))
        .pass(Some(d.options().password.clone()))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
    conn.query_drop(statement).await.unwrap();
    conn.disconnect().await.unwrap();
}

fn drop_slot(db: &str, slot: &str) {
    sql(
        db,
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = '{slot}'; DROP PUBLICATION IF EXISTS \"{slot}\";"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_loads_are_created_recorded_and_found_again_by_a_rerun() {
    let d = double().await;
    let kafka = Tansu::start();
    let db = db_with_rows("lib_rl_create", 2_000);
    let prefix = format!("rl{}", &db[db.len() - 12..]);
    let topic = format!("{prefix}.public.big");
    kafka.create_topic(&topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let slot = format!("rl_{}", &db[db.len() - 12..]);
    let job = || {
        HandoffJob::new(options(&db).with_slot(&slot), &state, kafka.bootstrap(), &prefix)
            .with_starrocks(starrocks(&d))
            .with_create_routine_loads(true)
    };

    let report = job().run(&RunControl::new()).await.unwrap();
    assert_eq!(report.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    let created = &report.routine_load_jobs;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!((created[0].name.as_str(), created[0].status), ("pgsnap_big", "created"));
    let id = created[0].job_id.clone().expect("a job id");
    let jobs = d.routine_loads();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].name.as_str(), jobs[0].id.to_string()), ("pgsnap_big", id.clone()));
    // The manifest records the handoff.
    let m = manifest(&state).unwrap();
    let h = &m["handoff"];
    assert_eq!(h["brokers"], kafka.bootstrap());
    assert_eq!(h["database"], DB);
    assert_eq!(h["topics"], serde_json::json!([topic]));
    assert_eq!(h["connector"], report.debezium["name"]);
    let rl = &h["routine_loads"][0];
    assert_eq!(rl["name"], "pgsnap_big");
    assert_eq!(rl["source"], "public.big");
    assert_eq!(rl["table"], "big");
    assert_eq!(rl["topic"], topic.as_str());
    assert_eq!(rl["offsets"], serde_json::json!({"0": 0, "1": 0}));
    assert_eq!(rl["job_id"], id.as_str());
    assert_eq!(rl["definition_hash"].as_str().unwrap().len(), 64);
    assert_eq!(rl["definition"], report.routine_load[0].as_str());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["routine_load_jobs"][0]["status"], "created");
    // The Debezium config sets heartbeats (a quiet database otherwise never moves the slot).
    assert_eq!(report.debezium["config"]["heartbeat.interval.ms"], "10000");

    // A rerun copies nothing and finds the job it created.
    let again = job().run(&RunControl::new()).await.unwrap();
    assert_eq!(again.outcome(), Outcome::Complete, "{:?}", again.run.warnings);
    assert_eq!(again.routine_load_jobs[0].status, "already_there");
    assert_eq!(again.routine_load_jobs[0].job_id.as_deref(), Some(id.as_str()));
    assert_eq!(again.run.manifest.run_id, report.run.manifest.run_id);
    assert_eq!(d.routine_loads().len(), 1);
    assert_eq!(d.rows(DB, "big").len(), 2_000);

    // A rerun that renders another definition (here: other Kafka settings) is refused with
    // both hashes named.
    let recorded = rl["definition_hash"].as_str().unwrap().to_owned();
    let other_settings =
        pgsnap::kafka::KafkaClientConfig::new().with_setting("security.protocol", "plaintext");
    let err = job().with_kafka_config(other_settings).run(&RunControl::new()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, JobError::Refused { .. }), "{err:?}");
    assert!(text.contains(&recorded) && text.contains("pgsnap_big"), "{text}");

    // A STOPPED job is never replaced: the rerun names it.
    fe(&d, &format!("STOP ROUTINE LOAD FOR {DB}.pgsnap_big")).await;
    let stopped = job().run(&RunControl::new()).await.unwrap();
    assert_eq!(stopped.outcome(), Outcome::Failed(ErrorKind::Sink));
    let error = stopped.routine_load_jobs[0].error.clone().unwrap();
    assert!(error.contains("STOPPED") && error.contains(&format!("id {id}")), "{error}");
    assert_eq!(d.routine_loads().len(), 1);

    // A new handoff whose job name another job holds (here the STOPPED one) is refused before
    // it copies anything.
    let other = dir.path().join("other");
    let slot2 = format!("r2_{}", &db[db.len() - 12..]);
    let err = HandoffJob::new(options(&db).with_slot(&slot2), &other, kafka.bootstrap(), &prefix)
        .with_starrocks(starrocks(&d).with_allow_existing_rows(true))
        .with_create_routine_loads(true)
        .run(&RunControl::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, JobError::Refused { .. }), "{err:?}");
    assert!(text.contains("pgsnap_big") && text.contains(&format!("id {id}")), "{text}");
    assert_eq!(
        sql(&db, &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot2}'")),
        "0"
    );
    assert_eq!(d.rows(DB, "big").len(), 2_000);
    drop_slot(&db, &slot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_key_targets_are_refused_unless_allowed() {
    let d = double().await;
    let kafka = Tansu::start();
    let db = db_with_rows("lib_rl_dup", 500);
    sql(&db, "ALTER TABLE big DROP CONSTRAINT big_pkey; ALTER TABLE big REPLICA IDENTITY FULL");
    let prefix = format!("rd{}", &db[db.len() - 12..]);
    kafka.create_topic(&format!("{prefix}.public.big"), 1);
    let dir = tempfile::tempdir().unwrap();
    let slot = format!("rd_{}", &db[db.len() - 12..]);
    let job = |state: &str| {
        HandoffJob::new(
            options(&db).with_slot(&slot),
            dir.path().join(state),
            kafka.bootstrap(),
            &prefix,
        )
        .with_starrocks(starrocks(&d))
        .with_create_routine_loads(true)
    };
    let err = job("one").run(&RunControl::new()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Duplicate Key") && text.contains("with_allow_no_deletes"), "{text}");
    assert_eq!(d.routine_loads().len(), 0);
    assert_eq!(
        sql(&db, &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")),
        "0"
    );

    let report = job("two").with_allow_no_deletes(true).run(&RunControl::new()).await.unwrap();
    assert_eq!(report.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    assert_eq!(report.routine_load_jobs[0].status, "created");
    assert!(
        report.run.warnings.iter().any(|w| w.contains("apply no deletes")),
        "{:?}",
        report.run.warnings
    );
    drop_slot(&db, &slot);
}

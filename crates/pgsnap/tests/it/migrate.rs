//! The StarRocks job against the StarRocks test double: accounting, the refusal of an
//! occupied Duplicate Key target (dropping the slot the run created), and the resume of a
//! run whose manifest predates the sink identity field.

use pgsnap::starrocks::StarRocksSinkBuilder;
use pgsnap::{CancellationToken, ErrorKind, MigrateJob, Outcome, RunControl};
use pgsnap_test_support::starrocks::{StarRocksDouble, StarRocksOptions};

use crate::support::*;

const DB: &str = "analytics";

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

/// A database whose table has no primary key (a Duplicate Key target).
fn db_without_key(prefix: &str, rows: u64) -> String {
    let db = db_with_rows(prefix, rows);
    sql(&db, "ALTER TABLE big DROP CONSTRAINT big_pkey; ALTER TABLE big REPLICA IDENTITY FULL");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_loads_every_row_and_accounts_for_it() {
    let d = double().await;
    let db = db_with_rows("lib_migrate", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let job = MigrateJob::new(options(&db), starrocks(&d))
        .with_state_dir(dir.path().join("state"))
        .with_verify_count(true);
    let report = job.run(&RunControl::new()).await.unwrap();
    assert_eq!(report.run.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    let load = report.tables.values().next().unwrap();
    assert_eq!((load.target.as_str(), load.rows_loaded, load.count), ("big", 20_000, Some(20_000)));
    assert_eq!(d.rows(DB, "big").len(), 20_000);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["report_version"], 1);
    assert_eq!(json["database"], DB);
    assert_eq!(json["run_id"], report.run.manifest.run_id.as_str());
    assert_eq!(json["tables"][0]["rows_loaded"], 20_000);
    // The manifest records the sink's identity in its own field.
    let m = manifest(&dir.path().join("state")).unwrap();
    assert!(m["sink"].as_str().is_some_and(|s| s.starts_with("starrocks ")), "{}", m["sink"]);
    assert_eq!(m["compression"], "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occupied_duplicate_key_target_refuses_a_new_run_and_drops_its_slot() {
    let d = double().await;
    let db = db_without_key("lib_occupied", 3_000);
    let dir = tempfile::tempdir().unwrap();
    let first = MigrateJob::new(options(&db), starrocks(&d))
        .with_state_dir(dir.path().join("one"))
        .run(&RunControl::new())
        .await
        .unwrap();
    assert_eq!(first.run.outcome(), Outcome::Complete);

    let slot = format!("s_{}", &db[db.len() - 12..]);
    let e = MigrateJob::new(options(&db).with_slot(&slot).with_publication(&slot), starrocks(&d))
        .with_state_dir(dir.path().join("two"))
        .run(&RunControl::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Preflight, "{e:?}");
    let text = pgsnap::core::error_chain(&e);
    assert!(
        text.contains("big (3000 rows)") && text.contains("with_allow_existing_rows"),
        "{text}"
    );
    // The slot and publication this run created are gone; StarRocks kept its rows.
    assert_eq!(
        sql(&db, &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")),
        "0"
    );
    assert_eq!(sql(&db, "SELECT count(*) FROM pg_publication"), "0");
    assert_eq!(d.rows(DB, "big").len(), 3_000);
}

/// A run interrupted under a held snapshot whose manifest has the layout of an older pgsnap
/// (the StarRocks identity in `compression`, no `sink`) resumes, and loads every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_from_before_the_sink_field_resumes_exactly_once() {
    let d = double().await;
    let db = db_without_key("lib_legacy", 40_000);
    let held = HeldSnapshot::export(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let options = options(&db).with_external_snapshot(&held.name).with_throttle(Some(1_000_000));
    let job = MigrateJob::new(options.clone(), starrocks(&d)).with_state_dir(&state);

    let token = CancellationToken::new();
    let watcher = cancel_at_first_done_chunk(state.clone(), token.clone());
    let cut = job.run(&RunControl::new().with_cancellation_token(token)).await.unwrap();
    watcher.await.unwrap();
    assert_eq!(cut.run.outcome(), Outcome::Cancelled);

    // Rewrite the manifest as an older pgsnap wrote it.
    let path = state.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let identity = m["sink"].take();
    m.as_object_mut().unwrap().remove("sink");
    m["compression"] = identity;
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();

    let resumed = job.with_resume(true).run(&RunControl::new()).await.unwrap();
    assert_eq!(resumed.run.outcome(), Outcome::Complete, "{:?}", resumed.run.warnings);
    let mut ids: Vec<String> =
        d.rows(DB, "big").into_iter().map(|r| format!("{:?}", r[0])).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40_000, "every row once");
    assert_eq!(d.rows(DB, "big").len(), 40_000, "no row twice");
    drop(held);
}

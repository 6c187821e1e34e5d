//! A table that fails mid-run while the others complete: exit 1, status "partial".
//!
//! What preflight cannot catch: DDL that arrives mid-run. The leader holds ACCESS SHARE on
//! every table for the whole run, so a `TRUNCATE` of one table queues behind it (and cannot
//! move rows under the snapshot). Workers take their own ACCESS SHARE lock `NOWAIT` before
//! copying a table, and a lock request conflicting with a *queued* ACCESS EXCLUSIVE request
//! fails at once: the chunk fails with "could not obtain lock", its retries fail the same way,
//! and the table is reported failed; the others go on.

use std::time::Duration;

use pgsnap_test_support::{shared_cluster, unique_db};

use crate::support::*;

#[test]
fn ddl_queued_mid_run_fails_that_table_only() {
    let db = unique_db("x_failing_table");
    create_big_table(&db, "big", 50_000);
    sql(
        &db,
        "CREATE TABLE victim (id int PRIMARY KEY, v text); \
         INSERT INTO victim SELECT g, 'v' || g FROM generate_series(1, 100) g; \
         CREATE TABLE other (id int); INSERT INTO other VALUES (1); ANALYZE;",
    );
    let src = source(&db);
    let (_tmp, out) = out_dir();
    // One job, throttled: the big table's chunks come first (largest first) and take a
    // couple of seconds, so the TRUNCATE is queued before a worker reaches `victim`.
    let proc = spawn(&job_args(
        &src,
        &out,
        "1",
        "256kB",
        &["--throttle", "2MB", "--max-attempts", "2", "--snapshot-mode", "export"],
    ));
    wait_until("the run to start", Duration::from_secs(30), || try_manifest(&out).is_some());
    let m = manifest(&out);
    assert_eq!(table(&m, "public", "victim")["chunks"][0]["done"], false, "too late: {m:#}");
    let truncate = {
        let db = db.clone();
        std::thread::spawn(move || shared_cluster().try_psql(&db, "TRUNCATE victim"))
    };
    wait_until("TRUNCATE to queue behind the run's lock", Duration::from_secs(10), || {
        sql(
            &db,
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'public.victim'::regclass",
        ) == "1"
    });
    let r = proc.wait(RUN_TIMEOUT);
    r.expect_code(1);
    let report = r.json();
    assert_eq!(report["status"], "partial", "{report:#}");
    let victim = table(&report, "public", "victim");
    assert_eq!(victim["status"], "failed");
    let err = victim["error"].as_str().expect("a failed table names its error");
    assert!(err.contains("victim") && err.contains("lock"), "{err}");
    assert_eq!(victim["rows"], 0);
    for (name, rows) in [("big", 50_000), ("other", 1)] {
        let t = table(&report, "public", name);
        assert_eq!(t["status"], "ok", "{t}");
        assert!(t["error"].is_null());
        assert_eq!(t["rows"], rows);
    }
    // The manifest says the same, and the complete tables check out.
    let m = manifest(&out);
    assert_eq!(m["status"], "partial");
    assert_eq!(table(&m, "public", "victim")["status"], "failed");
    assert!(table(&m, "public", "victim")["error"].as_str().is_some_and(|e| e.contains("lock")));
    let content = verify_chunks(&out, &m);
    assert_eq!(sorted_lines(&content["public.big"]).len(), 50_000);
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    // The run released its locks when it ended: the TRUNCATE went through.
    truncate.join().unwrap().expect("TRUNCATE after the run");
    assert_eq!(sql(&db, "SELECT count(*) FROM victim"), "0");
    // Export mode: the snapshot ended with the run, so the failed table cannot be finished
    // consistently; --resume says so.
    let r = run(&job_args(&src, &out, "1", "256kB", &["--snapshot-mode", "export", "--resume"]));
    r.expect_code(4);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("snapshot"), "{}", r.stderr);
}

/// The snapshot's holder ends mid-run and the workers' connections are cut: the retries
/// cannot import the snapshot again, so the run stops with exit 4 and status "failed"; the
/// chunks recorded as done are intact and nothing half-written is left.
#[test]
fn snapshot_lost_mid_run_stops_with_exit_4() {
    let db = unique_db("x_lost_mid_run");
    create_big_table(&db, "big", 40_000);
    let mut held = HeldSnapshot::export(&db);
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let mut proc = spawn(&job_args(
        &src,
        &out,
        "2",
        "128kB",
        &["--throttle", "1MB", "--snapshot-mode", "external", "--snapshot", &held.name],
    ));
    wait_until("a chunk to be recorded", Duration::from_secs(30), || {
        try_manifest(&out).is_some_and(|m| done_chunks(&m) >= 1)
    });
    assert!(proc.running(), "the run ended too early: make it slower");
    held.release();
    // Cut every session of the run (workers mid-COPY or idle in the pool, and the leader):
    // the retries must import the snapshot again, and cannot.
    sql(
        &db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
              WHERE datname = '{db}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ),
    );
    let r = proc.wait(Duration::from_secs(60));
    r.expect_code(4);
    let report = r.json();
    assert_eq!(report["status"], "failed");
    assert!(
        report["error"].as_str().is_some_and(|e| e.contains("snapshot")),
        "the report says the snapshot is lost: {report}"
    );
    let m = manifest(&out);
    assert!(done_chunks(&m) < all_chunks(&m));
    // Every chunk recorded as done checks out (size, bytes, checksum); no temp file remains.
    verify_chunks(&out, &m);
    assert!(files_under(&out).iter().all(|f| !f.contains(".tmp-")), "{:?}", files_under(&out));
}

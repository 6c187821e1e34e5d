//! The files job and the snapshot job with a sink of the caller's: runs, concurrent jobs in
//! one process, cancellation and resume, the typed resume refusals.

use std::sync::Arc;

use pgsnap::core::{MemorySink, SnapshotMode};
use pgsnap::{
    CancellationToken, ConfigError, ErrorKind, FilesJob, JobError, Outcome, ResumeRefusal,
    RunControl, SnapshotJob,
};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_files_job_reports_a_complete_run_as_json() {
    let db = db_with_rows("lib_files", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap");
    let report = FilesJob::new(options(&db), &out).run(&RunControl::new()).await.unwrap();
    assert_eq!(report.run.outcome(), Outcome::Complete);
    assert_eq!(report.run.manifest.rows(), 20_000);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["report_version"], 1);
    assert_eq!(json["status"], "ok");
    assert_eq!(json["out"], out.to_str().unwrap());
    assert_eq!(json["rows"], 20_000);
    assert!(json["tables"][0]["chunks"].as_u64().unwrap() > 1, "{json}");
    assert_eq!(rows_written(&out).len(), 20_000);
    // The temporary slot went with the run.
    assert_eq!(
        sql(&db, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
        "0"
    );
    // A plan copies nothing and creates no slot.
    let plan = FilesJob::new(options(&db), dir.path().join("plan")).plan().await.unwrap();
    assert_eq!(plan.to_json()["report_version"], 1);
    assert!(!dir.path().join("plan").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_jobs_run_concurrently_in_one_process() {
    let (a, b) = (db_with_rows("lib_two_a", 15_000), db_with_rows("lib_two_b", 7_000));
    let dir = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    let control = RunControl::new();
    let (job_a, job_b) = (FilesJob::new(options(&a), &out_a), FilesJob::new(options(&b), &out_b));
    let (ra, rb) = tokio::join!(job_a.run(&control), job_b.run(&control));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.run.outcome(), rb.run.outcome()), (Outcome::Complete, Outcome::Complete));
    assert_eq!(rows_written(&out_a).len(), 15_000);
    assert_eq!(rows_written(&out_b).len(), 7_000);
    assert_ne!(ra.run.manifest.run_id, rb.run.manifest.run_id);
}

/// A run cancelled through its token mid-copy reports `Cancelled` and keeps what is done;
/// a resume completes it, equal to an uninterrupted run under the same snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_resumes_to_what_an_uninterrupted_run_writes() {
    let db = db_with_rows("lib_cancel", 40_000);
    let held = HeldSnapshot::export(&db).await;
    // Rows the snapshot must not see.
    sql(&db, "INSERT INTO big SELECT g, 'late' FROM generate_series(40001, 41000) g");
    let dir = tempfile::tempdir().unwrap();
    let options = options(&db).with_external_snapshot(&held.name);

    let whole = dir.path().join("whole");
    let r = FilesJob::new(options.clone(), &whole).run(&RunControl::new()).await.unwrap();
    assert_eq!(r.run.outcome(), Outcome::Complete);

    let out = dir.path().join("cut");
    let job = FilesJob::new(options.clone().with_throttle(Some(1_000_000)), &out);
    let cut = cancel_after_first_chunk(&job).await;
    assert_eq!(cut.run.outcome(), Outcome::Cancelled);
    let done = done_chunks(&manifest(&out).unwrap());
    assert!(done >= 1 && done < cut.run.manifest.tables[0].chunks.len(), "{done} chunks done");

    let resumed = FilesJob::new(options, &out).with_resume(true).run(&RunControl::new()).await;
    assert_eq!(resumed.unwrap().run.outcome(), Outcome::Complete);
    let (got, want) = (rows_written(&out), rows_written(&whole));
    assert_eq!(got.len(), 40_000);
    assert!(got == want, "the resumed run differs from the uninterrupted one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_rules_are_typed_errors() {
    let db = db_with_rows("lib_rules", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap");

    // Options that do not fit together: refused before anything is touched.
    let bad = FilesJob::new(options(&db).with_snapshot_mode(SnapshotMode::External), &out);
    let e = bad.run(&RunControl::new()).await.unwrap_err();
    assert!(matches!(e, JobError::Config(ConfigError::ExternalSnapshotNeedsName)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Usage);
    // Nothing to resume.
    let e = FilesJob::new(options(&db), &out)
        .with_resume(true)
        .run(&RunControl::new())
        .await
        .unwrap_err();
    assert!(matches!(e, JobError::NothingToResume { .. }), "{e:?}");

    // A run in slot mode with a temporary slot, cancelled: its snapshot ended with it.
    let cut =
        cancel_after_first_chunk(&FilesJob::new(options(&db).with_throttle(Some(1_000_000)), &out))
            .await;
    assert_eq!(cut.run.outcome(), Outcome::Cancelled);
    let e = FilesJob::new(options(&db).with_throttle(Some(1_000_000)), &out)
        .with_resume(true)
        .run(&RunControl::new())
        .await
        .unwrap_err();
    assert!(matches!(e, JobError::CannotResume(ResumeRefusal::SnapshotEnded { .. })), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::SnapshotLost);
    // Other plan options than the run's: named.
    let e = FilesJob::new(options(&db).with_chunk_size(1_000_000), &out)
        .with_resume(true)
        .run(&RunControl::new())
        .await
        .unwrap_err();
    match &e {
        JobError::Core(c) if c.kind() == pgsnap::core::ErrorKind::ResumeMismatch => {
            assert_eq!(c.context("option"), Some("chunk_size"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Usage);
    // A new run into the used directory.
    let e = FilesJob::new(options(&db), &out).run(&RunControl::new()).await.unwrap_err();
    assert!(matches!(e, JobError::DirectoryNotEmpty { .. }), "{e:?}");
    // A token cancelled before the run: nothing is opened.
    let token = CancellationToken::new();
    token.cancel();
    let e = FilesJob::new(options(&db), dir.path().join("never"))
        .run(&RunControl::new().with_cancellation_token(token))
        .await
        .unwrap_err();
    assert!(matches!(e, JobError::Cancelled), "{e:?}");
    assert_eq!(
        sql(&db, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
        "0"
    );
}

/// Runs `job`, cancelling it once its manifest records a done chunk.
async fn cancel_after_first_chunk(job: &FilesJob) -> pgsnap::FilesReport {
    let token = CancellationToken::new();
    let control = RunControl::new().with_cancellation_token(token.clone());
    let watcher = cancel_at_first_done_chunk(job.out().to_path_buf(), token);
    let report = job.run(&control).await.expect("the run starts");
    watcher.await.unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_job_runs_any_sink() {
    let db = db_with_rows("lib_memory", 5_000);
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let run = SnapshotJob::new(options(&db), dir.path().join("state"))
        .run(Arc::clone(&sink) as Arc<dyn pgsnap::core::Sink>, &RunControl::new())
        .await
        .unwrap();
    assert_eq!(run.outcome(), Outcome::Complete);
    assert_eq!(run.manifest.rows(), 5_000);
    assert_eq!(run.to_json()["report_version"], 1);
    let table = &run.manifest.tables[0].schema.name;
    let stored = sink.table_content(table);
    assert_eq!(stored.iter().filter(|b| **b == b'\n').count(), 5_000);
}

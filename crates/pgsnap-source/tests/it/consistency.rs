//! Consistency under concurrent writers, in each snapshot mode: the chunk files equal `COPY`
//! under the run's snapshot although the table changes while it is copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pgsnap_core::{DataFormat, SnapshotMode};
use pgsnap_source::{PgSourceBuilder, SplitBy};
use pgsnap_test_support::{PgCluster, shared_cluster, unique_db};
use tokio::task::JoinHandle;

use crate::common::{copy_out, exec, pinned_connection, run_to_files, verify_run};

const ROWS: i64 = 20_000;

/// Background writers: each loops over transactions that update, insert and delete random
/// rows of `acct`; some stay open a while (across the snapshot point), some roll back.
struct Writers {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<u64>>,
}

impl Writers {
    async fn start(cluster: &'static PgCluster, db: &str, n: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..n {
            let client = cluster.connect(db).await;
            let (stop, commits) = (Arc::clone(&stop), Arc::clone(&commits));
            tasks.push(tokio::spawn(async move {
                // xorshift: deterministic per writer, no dependency.
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w + 1);
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut ids: Vec<i64> =
                        (0..8).map(|_| (next() % ROWS as u64) as i64 + 1).collect();
                    ids.sort_unstable();
                    let del = (next() % ROWS as u64) as i64 + 1;
                    let hold = next() % 5 == 0;
                    let rollback = next() % 10 == 0;
                    let sql = format!(
                        "BEGIN;
                         UPDATE acct SET balance = balance + 1, pad = md5(random()::text) WHERE id IN ({});
                         INSERT INTO acct (balance, pad) SELECT {w}, repeat('n', 40) FROM generate_series(1, 3);
                         DELETE FROM acct WHERE id = {del};",
                        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
                    );
                    let r = async {
                        client.batch_execute(&sql).await?;
                        if hold {
                            tokio::time::sleep(Duration::from_millis(150)).await;
                        }
                        client.batch_execute(if rollback { "ROLLBACK" } else { "COMMIT" }).await
                    }
                    .await;
                    match r {
                        Ok(()) if !rollback => {
                            commits.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(()) => {}
                        // Deadlocks between writers are expected now and then.
                        Err(_) => {
                            errors += 1;
                            let _ = client.batch_execute("ROLLBACK").await;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                errors
            }));
        }
        Self { stop, commits, tasks }
    }

    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Waits until `n` more transactions have committed.
    async fn wait_for(&self, n: u64) {
        let target = self.commits() + n;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.commits() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "writers stalled at {}",
                self.commits()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let errors = t.await.unwrap();
            assert!(errors < 1000, "writers failed {errors} times");
        }
    }
}

async fn consistent_under_writers(mode: SnapshotMode, split: SplitBy) {
    let cluster = shared_cluster();
    let db = unique_db(&format!("writers_{mode}"));
    exec(
        cluster,
        &db,
        &format!(
            "CREATE TABLE acct (id bigserial PRIMARY KEY, balance int NOT NULL, pad text);
             INSERT INTO acct (balance, pad) SELECT 0, md5(g::text) || md5(g::text) FROM generate_series(1, {ROWS}) g;
             ANALYZE acct;"
        ),
    )
    .await;
    let writers = Writers::start(cluster, &db, 3).await;
    writers.wait_for(10).await;

    // External mode: this test's own session exports and holds the snapshot.
    let holder = if mode == SnapshotMode::External {
        let c = cluster.connect(&db).await;
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.unwrap();
        let name: String = c.query_one("SELECT pg_export_snapshot()", &[]).await.unwrap().get(0);
        Some((c, name))
    } else {
        None
    };
    let source = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(mode)
            .with_external_snapshot(holder.as_ref().map(|h| h.1.clone()))
            .open()
            .await
            .expect("open"),
    );
    // The table moves on before and while the chunks are read.
    writers.wait_for(20).await;
    let before_copy = writers.commits();
    let run = run_to_files(&source, split, 64_000, 4, DataFormat::Text).await;
    let during_copy = writers.commits() - before_copy;
    let t = run.table("public", "acct");
    assert!(t.chunks.len() > 10, "only {} chunks", t.chunks.len());

    let expected = verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
    // The test has teeth: the table as it is now differs from the snapshot, so chunks read
    // outside the snapshot would not have matched.
    let now = copy_out(&pinned_connection(cluster, &db).await, "COPY acct TO STDOUT").await;
    assert_ne!(now, expected[0], "the writers changed nothing");

    writers.stop().await;
    source.close().await.unwrap();
    if let Some((c, _)) = holder {
        c.batch_execute("COMMIT").await.unwrap();
    }
    eprintln!(
        "{mode}: {} chunks, {} rows, {during_copy} commits during the copy",
        t.chunks.len(),
        t.chunks.iter().map(|c| c.rows).sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_concurrent_writers_slot_mode() {
    consistent_under_writers(SnapshotMode::Slot, SplitBy::Ctid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_concurrent_writers_export_mode() {
    consistent_under_writers(SnapshotMode::Export, SplitBy::Pk).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_under_concurrent_writers_external_mode() {
    consistent_under_writers(SnapshotMode::External, SplitBy::Ctid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_workers_are_replaced_under_the_same_snapshot() {
    let cluster = shared_cluster();
    let db = unique_db("killed_workers");
    exec(
        cluster,
        &db,
        &format!(
            "CREATE TABLE acct (id bigserial PRIMARY KEY, balance int NOT NULL, pad text);
             INSERT INTO acct (balance, pad) SELECT 0, md5(g::text) || md5(g::text) FROM generate_series(1, {ROWS}) g;"
        ),
    )
    .await;
    let writers = Writers::start(cluster, &db, 2).await;
    let source = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .open()
            .await
            .unwrap(),
    );
    writers.wait_for(10).await;
    // Kill two worker connections (their last statement is a chunk's COPY) while the run
    // goes on; the leader and the snapshot holder are left alone.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, db) = (Arc::clone(&stop), db.clone());
        let c = cluster.connect(&db).await;
        tokio::spawn(async move {
            let mut kills = 0;
            while kills < 2 && !stop.load(Ordering::Relaxed) {
                let n = c
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                          WHERE datname = $1 AND pid <> pg_backend_pid() AND query ~ '^(LOCK .*; )?COPY .* TO STDOUT' LIMIT 1",
                        &[&db],
                    )
                    .await
                    .unwrap()
                    .len();
                kills += n;
                tokio::time::sleep(Duration::from_millis(if n > 0 { 150 } else { 2 })).await;
            }
            kills
        })
    };
    let retries = Arc::new(AtomicU64::new(0));
    let progress: pgsnap_core::ProgressHandler = {
        let retries = Arc::clone(&retries);
        Arc::new(move |e: &pgsnap_core::ProgressEvent| {
            if matches!(e, pgsnap_core::ProgressEvent::ChunkRetry { .. }) {
                retries.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let options = pgsnap_core::CoordinatorOptions::default()
        .with_jobs(3)
        .with_max_attempts(3)
        .with_retry_backoff(Duration::from_millis(20))
        // Slow enough (about 2 s) that the kills land while chunks are being read.
        .with_throttle(Some(1_000_000));
    let run = crate::common::run_to_files_with(
        &source,
        SplitBy::Ctid,
        64_000,
        options,
        DataFormat::Text,
        Some(progress),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let kills = killer.await.unwrap();
    assert!(kills >= 1, "no worker was killed during the run");
    verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
    writers.stop().await;
    source.close().await.unwrap();
    eprintln!("killed {kills} workers, {} chunk retries", retries.load(Ordering::Relaxed));
}

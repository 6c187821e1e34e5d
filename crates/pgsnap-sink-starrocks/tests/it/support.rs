//! Shared helpers: a StarRocks test double with a database, a sink pointed at it, and a full
//! run from a real PostgreSQL database through the coordinator into the double.

use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::{
    Coordinator, CoordinatorOptions, DataFormat, Manifest, ManifestHeader, MemoryCheckpointStore,
    PlanOptions, RunReport, SnapshotMode,
};
use pgsnap_sink_starrocks::{StarRocksSink, StarRocksSinkBuilder};
use pgsnap_source::{PgSourceBuilder, SplitBy};
use pgsnap_test_support::starrocks::{Cell, StarRocksDouble, StarRocksOptions};
use pgsnap_test_support::{shared_cluster, unique_db};

/// The database every test loads into.
pub(crate) const DB: &str = "sr_db";

/// A double with [`DB`] created.
pub(crate) async fn double() -> StarRocksDouble {
    double_with(StarRocksOptions::default()).await
}

/// A double with these options and [`DB`] created.
pub(crate) async fn double_with(options: StarRocksOptions) -> StarRocksDouble {
    let d = StarRocksDouble::start(options).await;
    d.create_database(DB);
    d
}

/// A sink configuration for `d` with fast retries (the run id comes from the run it is
/// prepared for).
pub(crate) fn builder(d: &StarRocksDouble) -> StarRocksSinkBuilder {
    StarRocksSinkBuilder::new(d.fe_url(), DB)
        .with_user(d.options().user.clone())
        .with_password(d.options().password.clone())
        .with_fe_sql(d.mysql_addr().to_string())
        .with_create_tables(true)
        .with_label_wait(Duration::from_secs(10))
}

/// A fresh database on the shared cluster with `setup` run in it.
pub(crate) fn pg_db(prefix: &str, setup: &str) -> String {
    let db = unique_db(prefix);
    shared_cluster().psql(&db, setup);
    db
}

/// Snapshots every table of `db` (export mode), prepares `sink` and runs the coordinator.
pub(crate) async fn load(
    db: &str,
    sink: &Arc<StarRocksSink>,
    chunk_size: u64,
    jobs: usize,
) -> RunReport {
    let source = Arc::new(
        PgSourceBuilder::new(shared_cluster().conninfo(db))
            .with_snapshot_mode(SnapshotMode::Export)
            .open()
            .await
            .expect("open source"),
    );
    let plans = source.plan(SplitBy::Auto, chunk_size, jobs).await.expect("plan");
    let manifest = Manifest::new(
        ManifestHeader {
            snapshot: source.snapshot_info().clone(),
            source: source.source_info().clone(),
            format: DataFormat::Text,
            compression: "none".into(),
            sink: None,
            session: source.session().clone(),
            options: PlanOptions {
                split_by: pgsnap_core::SplitBy::Auto,
                chunk_size,
                include: vec![],
                exclude: vec![],
            },
        },
        plans,
    );
    let report = Coordinator::new(
        Arc::clone(&source) as Arc<dyn pgsnap_core::Source>,
        Arc::clone(sink) as Arc<dyn pgsnap_core::Sink>,
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_options(
        CoordinatorOptions::default().with_jobs(jobs).with_retry_backoff(Duration::from_millis(10)),
    )
    .run(manifest)
    .await
    .expect("coordinator");
    source.close().await.expect("close");
    report
}

/// The rows of a table in the double, sorted, each cell rendered (`NULL` for SQL NULL).
pub(crate) fn sorted_rows(d: &StarRocksDouble, table: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> =
        d.rows(DB, table).into_iter().map(|r| r.into_iter().map(render).collect()).collect();
    rows.sort();
    rows
}

fn render(c: Cell) -> String {
    c.unwrap_or_else(|| "NULL".to_owned())
}

//! Databases, held snapshots and manifests for the job tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgsnap::{CancellationToken, Connection, SnapshotOptions};
use pgsnap_test_support::{shared_cluster, unique_db};
use serde_json::Value;

/// A fresh database with `big(id int primary key, v text)` holding `rows` rows.
pub(crate) fn db_with_rows(prefix: &str, rows: u64) -> String {
    let db = unique_db(prefix);
    shared_cluster().psql(
        &db,
        &format!(
            "CREATE TABLE big (id int PRIMARY KEY, v text); \
             INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, {rows}) g; \
             ANALYZE big;"
        ),
    );
    db
}

/// Options for `db` of the shared cluster: a fully specified connection (nothing read
/// from the environment), two jobs, small chunks.
pub(crate) fn options(db: &str) -> SnapshotOptions {
    SnapshotOptions::new(Connection::new(shared_cluster().conninfo(db)))
        .with_jobs(2)
        .with_chunk_size(256_000)
}

/// `SELECT ...` on `db` (psql `-At` output).
pub(crate) fn sql(db: &str, sql: &str) -> String {
    shared_cluster().psql(db, sql)
}

/// A snapshot exported and held open by this test until dropped.
pub(crate) struct HeldSnapshot {
    pub(crate) name: String,
    _client: tokio_postgres::Client,
}

impl HeldSnapshot {
    pub(crate) async fn export(db: &str) -> HeldSnapshot {
        let (client, name) = shared_cluster().hold_snapshot(db).await;
        HeldSnapshot { name, _client: client }
    }
}

/// `<dir>/manifest.json`, if there is a complete one.
pub(crate) fn manifest(dir: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).ok()?).ok()
}

/// Done chunks of a manifest.
pub(crate) fn done_chunks(m: &Value) -> usize {
    m["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["chunks"].as_array().into_iter().flatten())
        .filter(|c| c["done"] == true)
        .count()
}

/// The rows of every chunk file of a files run, sorted.
pub(crate) fn rows_written(dir: &Path) -> Vec<String> {
    let m = manifest(dir).expect("manifest");
    let mut rows = Vec::new();
    for t in m["tables"].as_array().expect("tables") {
        for c in t["chunks"].as_array().expect("chunks") {
            let path = dir.join(c["path"].as_str().expect("path"));
            let text = std::fs::read_to_string(&path).expect("chunk file");
            rows.extend(text.lines().map(str::to_owned));
        }
    }
    rows.sort();
    rows
}

/// Cancels `token` once the manifest in `dir` records a done chunk.
pub(crate) fn cancel_at_first_done_chunk(
    dir: PathBuf,
    token: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while manifest(&dir).is_none_or(|m| done_chunks(&m) == 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        token.cancel();
    })
}

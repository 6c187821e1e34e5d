//! Shared helpers: a full copy (PgSource + Coordinator + FileSink) and the oracle that
//! checks chunk files against `COPY` under the same snapshot.
//!
//! The oracle is independent of the code under test: its own tokio-postgres connection, the
//! pinned settings applied from [`PINNED_SETTINGS`] by hand, the snapshot imported with
//! plain SQL, and `COPY <table> TO STDOUT` (or `COPY (SELECT <columns> FROM <table>)` for a
//! partitioned table), compared with the chunk files read back from disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use pgsnap_core::{
    CheckpointStore, Coordinator, CoordinatorOptions, DataFormat, Manifest, ManifestHeader,
    ManifestStore, ManifestTable, PlanOptions, ProgressHandler, RunReport, RunStatus, TableKind,
    TableName,
};
use pgsnap_sink_file::FileSinkBuilder;
use pgsnap_source::session::PINNED_SETTINGS;
use pgsnap_source::{PgSource, SplitBy};
use pgsnap_test_support::PgCluster;
use tokio_postgres::Client;

/// Runs `sql` on a fresh connection as the superuser (simple query protocol, so several
/// statements are fine).
pub(crate) async fn exec(cluster: &PgCluster, db: &str, sql: &str) {
    let c = cluster.connect(db).await;
    c.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", err_text(&e)));
}

/// A server error's message (tokio-postgres' `Display` only says "db error").
pub(crate) fn err_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// A name unique within this test process and across runs, for roles, slots and
/// publications (cluster-wide objects on the shared cluster).
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), nanos)
}

/// A connection with the pinned settings applied, outside any transaction.
pub(crate) async fn pinned_connection(cluster: &PgCluster, db: &str) -> Client {
    let c = cluster.connect(db).await;
    let sql: String = PINNED_SETTINGS.iter().map(|(k, v)| format!("SET {k} = '{v}';")).collect();
    c.batch_execute(&sql).await.unwrap();
    c
}

/// A pinned connection inside a `REPEATABLE READ, READ ONLY` transaction that imported
/// `snapshot`.
pub(crate) async fn import_snapshot(cluster: &PgCluster, db: &str, snapshot: &str) -> Client {
    let c = pinned_connection(cluster, db).await;
    c.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "''")
    ))
    .await
    .unwrap_or_else(|e| panic!("the oracle cannot import snapshot {snapshot:?}: {}", err_text(&e)));
    c
}

/// Everything `sql` (a `COPY ... TO STDOUT`) prints.
pub(crate) async fn copy_out(client: &Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", err_text(&e)));
    let parts: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    parts.concat()
}

/// The oracle statement for a table, as the issue defines it.
pub(crate) fn oracle_sql(table: &ManifestTable, format: DataFormat) -> String {
    let mut q = if table.schema.kind == TableKind::Partitioned {
        format!("COPY (SELECT {} FROM {}) TO STDOUT", table.schema.select_list(), table.schema.name)
    } else {
        format!("COPY {} TO STDOUT", table.schema.name)
    };
    if format == DataFormat::Csv {
        q.push_str(" WITH (FORMAT csv)");
    }
    q
}

/// A finished copy into a temporary directory.
pub(crate) struct Run {
    /// Keeps the output directory alive.
    pub(crate) dir: tempfile::TempDir,
    pub(crate) report: RunReport,
    /// The manifest as stored in `<out>/manifest.json`.
    pub(crate) manifest: Manifest,
    /// The same, as JSON, for checks of the public field names.
    pub(crate) json: serde_json::Value,
}

impl Run {
    pub(crate) fn out(&self) -> &Path {
        self.dir.path()
    }

    /// The manifest table named `schema.name`.
    pub(crate) fn table(&self, schema: &str, name: &str) -> &ManifestTable {
        let n = TableName::new(schema, name);
        self.manifest.table(&n).unwrap_or_else(|| {
            panic!(
                "{n} is not in the manifest; it has {:?}",
                self.manifest.tables.iter().map(|t| t.schema.name.to_string()).collect::<Vec<_>>()
            )
        })
    }

    /// The uncompressed content of each chunk file of a table, in chunk order.
    pub(crate) fn chunk_contents(&self, table: &ManifestTable) -> Vec<Vec<u8>> {
        table
            .chunks
            .iter()
            .map(|c| {
                assert!(c.done, "{} chunk {} is not done", table.schema.name, c.id);
                let rel = c.path.as_deref().expect("a done chunk has a path");
                let path: PathBuf = self.out().join(rel);
                pgsnap_sink_file::read_chunk_file(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            })
            .collect()
    }
}

/// Plans and copies every selected table with `jobs` parallel jobs into a new temporary
/// directory, and asserts the run completed.
pub(crate) async fn run_to_files(
    source: &Arc<PgSource>,
    split: SplitBy,
    chunk_size: u64,
    jobs: usize,
    format: DataFormat,
) -> Run {
    let options = CoordinatorOptions::default()
        .with_jobs(jobs)
        .with_retry_backoff(Duration::from_millis(50))
        .with_progress_interval(Duration::from_millis(100));
    run_to_files_with(source, split, chunk_size, options, format, None).await
}

/// [`run_to_files`] with explicit coordinator options and progress handler.
pub(crate) async fn run_to_files_with(
    source: &Arc<PgSource>,
    split: SplitBy,
    chunk_size: u64,
    options: CoordinatorOptions,
    format: DataFormat,
    progress: Option<ProgressHandler>,
) -> Run {
    let plans = source.plan(split, chunk_size, options.jobs()).await.expect("plan");
    let manifest = Manifest::new(
        ManifestHeader {
            snapshot: source.snapshot_info().clone(),
            source: source.source_info().clone(),
            format,
            compression: "none".into(),
            sink: None,
            session: source.session().clone(),
            options: PlanOptions { split_by: split, chunk_size, include: vec![], exclude: vec![] },
        },
        plans,
    );
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(
        FileSinkBuilder::new(dir.path()).with_format(format).with_fsync(false).build().unwrap(),
    );
    let store = Arc::new(ManifestStore::new(dir.path()));
    let mut coordinator = Coordinator::new(
        Arc::clone(source) as Arc<dyn pgsnap_core::Source>,
        sink,
        Arc::clone(&store) as Arc<dyn CheckpointStore>,
    )
    .with_options(options);
    if let Some(p) = progress {
        coordinator = coordinator.with_progress(p);
    }
    let report = coordinator.run(manifest).await.expect("coordinator run");
    let failures: Vec<_> =
        report.tables.iter().filter_map(|t| t.error.as_ref().map(|e| (&t.table, e))).collect();
    assert!(
        report.fatal.is_none() && report.status == RunStatus::Ok,
        "run did not complete: status {:?}, fatal {:?}, failed tables {failures:#?}",
        report.status,
        report.fatal
    );
    let manifest = store.load().await.unwrap().expect("manifest.json written");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    Run { dir, report, manifest, json }
}

/// Checks every table of the run against the oracle, which imports `snapshot` (held by the
/// source, or by the caller in external mode).
///
/// Returns the oracle's output per table (same order as the manifest).
pub(crate) async fn verify_run(
    cluster: &PgCluster,
    db: &str,
    snapshot: &str,
    run: &Run,
) -> Vec<Vec<u8>> {
    let oracle = import_snapshot(cluster, db, snapshot).await;
    let seen: String =
        oracle.query_one("SELECT pg_current_snapshot()::text", &[]).await.unwrap().get(0);
    assert_eq!(
        seen, run.manifest.snapshot.pg_snapshot,
        "the oracle's imported snapshot is not the one the manifest records"
    );
    let mut out = Vec::new();
    for table in &run.manifest.tables {
        let expected = copy_out(&oracle, &oracle_sql(table, run.manifest.format)).await;
        let chunks = run.chunk_contents(table);
        let label = table.schema.name.to_string();
        if run.manifest.format == DataFormat::Text {
            assert_same_rows(&label, &expected, &chunks);
            let rows: u64 = table.chunks.iter().map(|c| c.rows).sum();
            assert_eq!(
                rows,
                count_lines(&expected) as u64,
                "{label}: manifest row counts differ from COPY"
            );
        } else {
            // CSV values may span lines: only whole-table comparisons are exact. Row counts
            // come from the text format.
            if chunks.len() == 1 {
                assert_bytes_eq(&label, &expected, &chunks[0]);
            }
            let text = copy_out(&oracle, &oracle_sql(table, DataFormat::Text)).await;
            let rows: u64 = table.chunks.iter().map(|c| c.rows).sum();
            assert_eq!(rows, count_lines(&text) as u64, "{label}: manifest row counts differ");
        }
        let bytes: u64 = table.chunks.iter().map(|c| c.bytes).sum();
        assert_eq!(
            bytes,
            chunks.iter().map(|c| c.len() as u64).sum::<u64>(),
            "{label}: manifest bytes differ from the files"
        );
        out.push(expected);
    }
    oracle.batch_execute("COMMIT").await.unwrap();
    out
}

fn count_lines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// Splits COPY text into lines (each row is one line; embedded newlines are escaped).
fn lines(label: &str, b: &[u8]) -> Vec<Vec<u8>> {
    if b.is_empty() {
        return vec![];
    }
    assert_eq!(b.last(), Some(&b'\n'), "{label}: content does not end with a newline");
    b[..b.len() - 1].split(|&c| c == b'\n').map(<[u8]>::to_vec).collect()
}

fn assert_bytes_eq(label: &str, expected: &[u8], got: &[u8]) {
    if expected != got {
        let at = expected.iter().zip(got).position(|(a, b)| a != b).unwrap_or(expected.len());
        let from = at.saturating_sub(80);
        panic!(
            "{label}: chunk file differs from COPY at byte {at} (lengths {} vs {}):\n  COPY: {:?}\n  file: {:?}",
            expected.len(),
            got.len(),
            String::from_utf8_lossy(&expected[from..(at + 80).min(expected.len())]),
            String::from_utf8_lossy(&got[from.min(got.len())..(at + 80).min(got.len())]),
        );
    }
}

/// The chunks, taken together, hold exactly the lines of `expected` (as a multiset, since
/// chunks are ordered differently than one COPY); a single chunk must be byte-identical.
pub(crate) fn assert_same_rows(label: &str, expected: &[u8], chunks: &[Vec<u8>]) {
    if chunks.len() == 1 {
        assert_bytes_eq(label, expected, &chunks[0]);
        return;
    }
    let mut want = lines(label, expected);
    let mut got: Vec<Vec<u8>> = chunks.iter().flat_map(|c| lines(label, c)).collect();
    want.sort_unstable();
    got.sort_unstable();
    if want != got {
        let (missing, extra) = diff_sorted(&want, &got);
        let show = |v: &[Vec<u8>]| {
            v.iter().take(5).map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>()
        };
        panic!(
            "{label}: chunks hold {} rows, COPY {} rows; {} rows missing from the chunks (e.g. {:?}), {} extra or duplicated (e.g. {:?})",
            got.len(),
            want.len(),
            missing.len(),
            show(&missing),
            extra.len(),
            show(&extra)
        );
    }
}

/// Multiset difference of two sorted lists: (in `want` only, in `got` only).
fn diff_sorted(want: &[Vec<u8>], got: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut i, mut j) = (0, 0);
    let (mut missing, mut extra) = (vec![], vec![]);
    while i < want.len() || j < got.len() {
        match (want.get(i), got.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                missing.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                extra.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                missing.push(a.clone());
                i += 1;
            }
            (None, Some(b)) => {
                extra.push(b.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (missing, extra)
}

/// Whether a replication slot of that name exists.
pub(crate) async fn slot_exists(client: &Client, slot: &str) -> bool {
    client
        .query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()
        .is_some()
}

/// Whether a publication of that name exists in the connected database.
pub(crate) async fn publication_exists(client: &Client, name: &str) -> bool {
    client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

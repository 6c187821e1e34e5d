//! Faults injected into the StarRocks test double: each ends with every row loaded exactly
//! once (into a Duplicate Key table, where a second load of a chunk would show as extra
//! rows), and a rerun under the same run id loads nothing again.

use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::{
    Coordinator, CoordinatorOptions, Manifest, MemoryCheckpointStore, MemorySource, RunReport,
    RunStatus,
};
use pgsnap_sink_starrocks::StarRocksSink;
use pgsnap_test_support::starrocks::{
    DuplicateLabelStyle, Fault, KeysType, StarRocksDouble, StarRocksOptions, TxnState, table_def,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

pub(crate) const CHUNKS: u32 = 8;
pub(crate) const ROWS: u32 = 500;

/// The example table `public.t (id int, v text)` as a Duplicate Key table in the double.
pub(crate) fn create_duplicate_table(d: &StarRocksDouble) {
    d.create_table(
        DB,
        table_def(
            "t",
            KeysType::Duplicate,
            &["id"],
            &[("id", "INT", false), ("v", "VARCHAR(1048576)", true)],
        ),
    );
}

pub(crate) async fn run(
    sink: &Arc<StarRocksSink>,
    source: &MemorySource,
    manifest: Manifest,
) -> RunReport {
    run_from(sink, Arc::new(source.clone()), manifest).await
}

/// [`run`] as a resume of `manifest`'s run (rules for new runs, such as the refusal of an
/// occupied Duplicate Key table, do not apply).
pub(crate) async fn rerun(
    sink: &Arc<StarRocksSink>,
    source: &MemorySource,
    manifest: Manifest,
) -> RunReport {
    coordinator(sink, Arc::new(source.clone()), true).run(manifest).await.expect("coordinator")
}

/// Runs the coordinator (3 jobs, 4 attempts per chunk) from `source` into `sink` (which it
/// prepares first).
pub(crate) async fn run_from(
    sink: &Arc<StarRocksSink>,
    source: Arc<dyn pgsnap_core::Source>,
    manifest: Manifest,
) -> RunReport {
    coordinator(sink, source, false).run(manifest).await.expect("coordinator")
}

fn coordinator(
    sink: &Arc<StarRocksSink>,
    source: Arc<dyn pgsnap_core::Source>,
    resume: bool,
) -> Coordinator {
    Coordinator::new(
        source,
        Arc::clone(sink) as Arc<dyn pgsnap_core::Sink>,
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_options(
        CoordinatorOptions::default()
            .with_jobs(3)
            .with_max_attempts(4)
            .with_retry_backoff(Duration::from_millis(10))
            .with_resume(resume),
    )
}

/// Every id 0..CHUNKS*ROWS exactly once.
pub(crate) fn assert_exactly_once(d: &StarRocksDouble, what: &str) {
    let mut ids: Vec<u64> =
        d.rows(DB, "t").iter().map(|r| r[0].as_deref().unwrap().parse().unwrap()).collect();
    ids.sort_unstable();
    let expected: Vec<u64> = (0..u64::from(CHUNKS * ROWS)).collect();
    if ids != expected {
        let dupes = ids.windows(2).filter(|w| w[0] == w[1]).count();
        panic!("{what}: {} rows stored, {dupes} doubled, expected {}", ids.len(), expected.len());
    }
}

async fn survives(fault: Fault, times: usize) {
    let d = double().await;
    create_duplicate_table(&d);
    let sink = Arc::new(builder(&d).with_create_tables(false).build().unwrap());
    let (source, manifest) = MemorySource::example(CHUNKS, ROWS);
    d.inject(fault.clone(), times);
    let report = run(&sink, &source, manifest).await;
    assert_eq!(report.status, RunStatus::Ok, "{fault:?}: {:?} {:?}", report.fatal, report.tables);
    assert_eq!(d.pending_faults(), 0, "{fault:?} was not injected");
    // Publish Timeout: the rows become visible a little later.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_exactly_once(&d, &format!("{fault:?}"));
    assert_eq!(d.fe_body_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_be() {
    survives(Fault::Busy, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fe_server_error() {
    survives(Fault::ServerError, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_mid_body() {
    survives(Fault::ResetMidBody { after_bytes: 100 }, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_after_commit() {
    survives(Fault::DropAfterCommit, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_timeout() {
    survives(Fault::PublishTimeout { visible_after: Duration::from_millis(200) }, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers() {
    survives(Fault::Slow { delay: Duration::from_millis(300) }, 3).await;
}

/// `too many filtered rows` is a data error: the table fails with the ErrorURL named, the
/// load is not retried, nothing of it is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_filtered_rows_fails_the_table_with_the_error_url() {
    let d = double().await;
    create_duplicate_table(&d);
    let sink = Arc::new(builder(&d).build().unwrap());
    let (source, manifest) = MemorySource::example(1, 10);
    d.inject(Fault::TooManyFiltered, 1);
    let report = run(&sink, &source, manifest).await;
    assert_ne!(report.status, RunStatus::Ok);
    let err = report.manifest.tables[0].error.clone().unwrap();
    assert!(err.contains("too many filtered rows") && err.contains("_load_error_log"), "{err}");
    assert_eq!(d.loads().len(), 1, "a data error is not retried: {:?}", d.loads());
    assert!(d.rows(DB, "t").is_empty());
}

/// A second run with the same run id (a resume whose manifest lost track of done chunks)
/// loads nothing twice, with either duplicate-label answer.
async fn rerun_loads_nothing_twice(style: DuplicateLabelStyle) {
    let d = double_with(StarRocksOptions::default().with_duplicate_label_style(style)).await;
    create_duplicate_table(&d);
    let b = builder(&d);
    let sink = Arc::new(b.clone().build().unwrap());
    let (source, manifest) = MemorySource::example(CHUNKS, ROWS);
    let first = run(&sink, &source, manifest.clone()).await;
    assert_eq!(first.status, RunStatus::Ok);
    let again = Arc::new(b.build().unwrap());
    let second = rerun(&again, &source, manifest).await;
    assert_eq!(second.status, RunStatus::Ok, "{style:?}: {:?}", second.tables);
    assert_exactly_once(&d, &format!("{style:?}"));
    let loaded: u64 = second.manifest.tables[0]
        .chunks
        .iter()
        .filter_map(|c| c.load.as_ref())
        .map(|l| l.rows_loaded)
        .sum();
    assert_eq!(loaded, u64::from(CHUNKS * ROWS), "skipped parts still count as loaded");
    let committed = d.loads().iter().filter(|l| l.status == "Success").count();
    assert_eq!(committed, CHUNKS as usize, "{style:?}: {:?}", d.loads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_with_label_already_exists() {
    rerun_loads_nothing_twice(DuplicateLabelStyle::AlreadyExists).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_with_fail_has_already_been_used() {
    rerun_loads_nothing_twice(DuplicateLabelStyle::FailHasBeenUsed).await;
}

/// A chunk split into several loads (parts) loads each part once; a retry after a failure
/// in a later part skips the parts already loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_split_deterministically_and_skip_on_retry() {
    let d = double().await;
    create_duplicate_table(&d);
    let sink = Arc::new(builder(&d).with_max_load_bytes(2000).build().unwrap());
    let (source, manifest) = MemorySource::example(CHUNKS, ROWS);
    // Reset the 5th load mid-body: its chunk is retried, its earlier parts are skipped.
    d.inject(Fault::ResetMidBody { after_bytes: 500 }, 1);
    let report = run(&sink, &source, manifest).await;
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.tables);
    assert_exactly_once(&d, "parts");
    let labels: Vec<_> = report.manifest.tables[0]
        .chunks
        .iter()
        .flat_map(|c| c.load.clone().unwrap().labels)
        .collect();
    assert!(labels.len() > CHUNKS as usize * 3, "chunks were split into parts: {labels:?}");
    for l in &labels {
        assert_eq!(d.txn_state(DB, l), Some(TxnState::Visible), "{l}");
    }
}

/// A label held by an earlier load that is still running (here a transaction begun through
/// the transaction interface): the sink polls `get_load_state` and, once that load is
/// aborted, loads under the same label; had it committed, the sink would skip the part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_label_is_polled_until_it_settles() {
    for commit_first in [false, true] {
        let d = double().await;
        create_duplicate_table(&d);
        let (source, manifest) = MemorySource::example(1, 10);
        let sink = Arc::new(builder(&d).with_run_id(&manifest.run_id).build().unwrap());
        let t = &manifest.tables[0];
        let chunk = t.chunk(&t.chunks[0]);
        let label = format!("{}0", sink.chunk_label_prefix(&chunk).unwrap());
        let begun = txn_call_url(&d.fe_url(), "begin", &label, None).await;
        assert!(begun.contains("\"OK\""), "{begun}");
        if commit_first {
            // Load the same rows under the held label, then commit them.
            let body = (0..10).map(|i| format!("{i}\trow {i}\n")).collect::<String>();
            load_in_txn(&d, &label, &body).await;
        }
        let settle = {
            let d_fe = d.fe_url();
            let label = label.clone();
            let op = if commit_first { "commit" } else { "rollback" };
            let d2 = DoubleRef(d_fe);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                d2.call(op, &label).await
            })
        };
        let report = run(&sink, &source, manifest).await;
        let settled = settle.await.unwrap();
        assert!(settled.contains("\"OK\""), "{settled}");
        assert_eq!(report.status, RunStatus::Ok, "{:?}", report.tables);
        let ids: Vec<_> = d.rows(DB, "t").iter().map(|r| r[0].clone().unwrap()).collect();
        assert_eq!(ids.len(), 10, "commit_first={commit_first}: rows exactly once: {ids:?}");
        let answers: Vec<_> = d.loads().iter().map(|l| l.status.clone()).collect();
        assert!(
            answers.iter().any(|s| s.contains("Label Already Exists")),
            "the held label was seen: {answers:?}"
        );
    }
}

/// A handle to call the transaction interface from a spawned task (the double itself stays
/// with the test).
struct DoubleRef(String);

impl DoubleRef {
    async fn call(&self, op: &str, label: &str) -> String {
        txn_call_url(&self.0, op, label, None).await
    }
}

pub(crate) async fn load_in_txn(d: &StarRocksDouble, label: &str, body: &str) {
    let answer = txn_call_url(&d.fe_url(), "load", label, Some(body)).await;
    assert!(answer.contains("\"OK\""), "{answer}");
    let answer = txn_call_url(&d.fe_url(), "prepare", label, None).await;
    assert!(answer.contains("\"OK\""), "{answer}");
}

pub(crate) async fn txn_call_url(fe: &str, op: &str, label: &str, body: Option<&str>) -> String {
    let mut url = format!("{fe}/api/transaction/{op}");
    let body = body.unwrap_or("");
    let extra =
        if body.is_empty() { String::new() } else { "format: csv\r\ncolumns: id,v\r\n".into() };
    for _ in 0..3 {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        let req = format!(
            "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic cm9vdDo=\r\nlabel: {label}\r\ndb: {DB}\r\ntable: t\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        let (head, rest) = resp.split_once("\r\n\r\n").unwrap();
        if head.starts_with("HTTP/1.1 307") {
            url =
                head.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().trim().to_owned();
            continue;
        }
        return rest.to_owned();
    }
    panic!("too many redirects");
}

/// COPY data cut short (the last row has no newline) never commits a short part: the load
/// is aborted before its body ends, and nothing of the chunk is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_cut_short_commits_nothing() {
    let d = double().await;
    create_duplicate_table(&d);
    let sink = Arc::new(builder(&d).build().unwrap());
    let (source, manifest) = MemorySource::example(1, 1);
    let t = &manifest.tables[0];
    let chunk = t.chunk(&t.chunks[0]);
    source.insert(chunk.table.clone(), chunk.id, "1\tone\n2\ttw");
    let schemas: Vec<_> = manifest.tables.iter().map(|t| t.schema.clone()).collect();
    let ctx = pgsnap_core::PrepareContext::new(&schemas, &manifest.run_id, false);
    pgsnap_core::Sink::prepare(sink.as_ref(), &ctx).await.unwrap();
    let data = pgsnap_core::Source::read_chunk(&source, &chunk, pgsnap_core::DataFormat::Text)
        .await
        .unwrap();
    let err = pgsnap_core::Sink::write_chunk(sink.as_ref(), &chunk, data, &Default::default())
        .await
        .unwrap_err();
    assert!(pgsnap_core::error_chain(&err).contains("cut short"), "{err:?}");
    assert!(d.rows(DB, "t").is_empty(), "a short part was committed: {:?}", d.rows(DB, "t"));
    assert!(d.loads().iter().all(|l| l.status != "Success"), "{:?}", d.loads());
}

/// The sink's own retries (a load the BE refuses before its body) and the coordinator's
/// share one budget per chunk: a chunk refused for ever gets exactly `max_attempts` loads in
/// all (not the sink's retries inside each of the coordinator's attempts), and its table
/// fails naming the attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_and_coordinator_share_one_budget_per_chunk() {
    let d = double().await;
    create_duplicate_table(&d);
    let sink = Arc::new(builder(&d).with_create_tables(false).build().unwrap());
    let (source, manifest) = MemorySource::example(1, ROWS);
    d.inject(Fault::Busy, 100);
    let report = run(&sink, &source, manifest).await;
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.tables);
    assert_eq!(100 - d.pending_faults(), 4, "loads tried: with_max_attempts(4) in all");
    let error = report.tables[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("gave up after 4 attempts"), "{error}");
    assert!(d.rows(DB, "t").is_empty());
}

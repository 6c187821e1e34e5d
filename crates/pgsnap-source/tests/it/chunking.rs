//! Tables split into many chunks reassemble exactly; planning accounts for TOAST.

use std::sync::Arc;

use pgsnap_core::{ChunkRange, DataFormat, ManifestTable, SnapshotMode};
use pgsnap_source::{PgSourceBuilder, SplitBy};
use pgsnap_test_support::{shared_cluster, unique_db};

use crate::common::{exec, run_to_files, verify_run};

const SETUP: &str = "
CREATE TABLE big (id bigint PRIMARY KEY, payload text, n numeric, ts timestamptz);
INSERT INTO big SELECT g, md5(g::text) || repeat('x', g % 64), g / 7.0, '2020-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 20000) g;
-- Holes, and keys below and above the dense range.
DELETE FROM big WHERE id % 97 = 0;
INSERT INTO big VALUES (-50, 'negative', 0, NULL), (20100, 'past the end', 0, NULL);
-- Mostly TOAST: a small heap, large out-of-line values (random hex does not compress).
CREATE TABLE toasty (id int PRIMARY KEY, blob text);
INSERT INTO toasty SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 100) i)
  FROM generate_series(1, 2000) g;
-- Partitioned with an integer key; one leaf orders its columns differently.
CREATE TABLE pbig (id int PRIMARY KEY, v text, w int) PARTITION BY RANGE (id);
CREATE TABLE pbig_lo PARTITION OF pbig FOR VALUES FROM (MINVALUE) TO (10000);
CREATE TABLE pbig_hi (w int, v text, id int NOT NULL);
ALTER TABLE pbig ATTACH PARTITION pbig_hi FOR VALUES FROM (10000) TO (MAXVALUE);
INSERT INTO pbig SELECT g, repeat('p', 50) || g, -g FROM generate_series(1, 20000) g;
ANALYZE;
";

/// Asserts a table was split by `split` into more than `min` chunks with open-ended first
/// and last ranges (per relation), returning the number of chunks.
fn assert_split(t: &ManifestTable, split: SplitBy, min: usize) -> usize {
    let n = t.chunks.len();
    assert!(n > min, "{}: only {n} chunks by {split}", t.schema.name);
    let first = &t.chunks[0].range;
    let last = &t.chunks[n - 1].range;
    match split {
        SplitBy::Pk => {
            assert!(matches!(first, ChunkRange::Pk { start: None, end: Some(_), .. }), "{first:?}");
            assert!(matches!(last, ChunkRange::Pk { start: Some(_), end: None, .. }), "{last:?}");
            for c in &t.chunks[1..n - 1] {
                assert!(matches!(c.range, ChunkRange::Pk { start: Some(_), end: Some(_), .. }));
            }
        }
        _ => {
            assert!(
                matches!(first, ChunkRange::Ctid { start_block: None, end_block: Some(_) }),
                "{first:?}"
            );
            assert!(
                matches!(last, ChunkRange::Ctid { start_block: Some(_), end_block: None }),
                "{last:?}"
            );
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn many_chunks_reassemble_exactly_by_ctid_and_by_pk() {
    let cluster = shared_cluster();
    let db = unique_db("chunks");
    exec(cluster, &db, SETUP).await;
    for split in [SplitBy::Ctid, SplitBy::Pk] {
        let source = Arc::new(
            PgSourceBuilder::new(cluster.conninfo(&db))
                .with_snapshot_mode(SnapshotMode::Export)
                .open()
                .await
                .unwrap(),
        );
        let run = run_to_files(&source, split, 64_000, 4, DataFormat::Text).await;
        let out = verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
        let big = assert_split(run.table("public", "big"), split, 5);
        let toasty = assert_split(run.table("public", "toasty"), split, 5);
        let pbig = run.table("public", "pbig");
        assert!(pbig.chunks.len() > 5, "pbig: {} chunks", pbig.chunks.len());
        for leaf in &pbig.partitions {
            let ranges: Vec<&ChunkRange> =
                pbig.chunks.iter().filter(|c| &c.relation == leaf).map(|c| &c.range).collect();
            assert!(ranges.len() > 2, "{leaf}: {ranges:?}");
            let pk = ranges.iter().all(|r| matches!(r, ChunkRange::Pk { .. }));
            let ctid = ranges.iter().all(|r| matches!(r, ChunkRange::Ctid { .. }));
            assert!(if split == SplitBy::Pk { pk } else { ctid }, "{leaf}: {ranges:?}");
        }
        assert_eq!(run.report.chunks_copied, big + toasty + pbig.chunks.len());
        // Exact row counts (the multiset comparison checked the content).
        let rows = |t: &str| run.table("public", t).chunks.iter().map(|c| c.rows).sum::<u64>();
        assert_eq!(rows("big"), 20000 - 206 + 2);
        assert_eq!(rows("pbig"), 20000);
        assert_eq!(rows("toasty"), 2000);
        assert_eq!(
            out.iter().map(|o| o.iter().filter(|&&c| c == b'\n').count()).sum::<usize>(),
            41796
        );
        // The split is meaningful: every chunk of `big` holds rows.
        assert!(run.table("public", "big").chunks.iter().all(|c| c.rows > 0));
        source.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn toast_counts_when_sizing_chunks() {
    let cluster = shared_cluster();
    let db = unique_db("toast_plan");
    exec(cluster, &db, SETUP).await;
    let source = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .with_include(vec!["toasty".into()])
            .open()
            .await
            .unwrap(),
    );
    let rel = &source.tables()[0].relations[0];
    let chunk_size = 1_000_000;
    assert!(
        rel.heap_bytes > 8192 && rel.heap_bytes < chunk_size / 2,
        "fixture: the heap ({} bytes) must span blocks yet fit one chunk",
        rel.heap_bytes
    );
    assert!(rel.toast_bytes > 5 * chunk_size, "fixture: TOAST is only {} bytes", rel.toast_bytes);
    for split in [SplitBy::Ctid, SplitBy::Pk] {
        let plans = source.plan(split, chunk_size, 1).await.unwrap();
        let chunks = &plans[0].chunks;
        // The heap alone would be one chunk.
        assert!(
            chunks.len() >= 4,
            "{split}: {} chunks for {} heap + {} TOAST bytes at {chunk_size} per chunk",
            chunks.len(),
            rel.heap_bytes,
            rel.toast_bytes
        );
        let estimated: u64 = chunks.iter().map(|c| c.estimated_bytes).sum();
        assert!(
            estimated >= (rel.heap_bytes + rel.toast_bytes) * 9 / 10,
            "{split}: estimates ({estimated}) ignore TOAST"
        );
    }
    let run = run_to_files(&source, SplitBy::Ctid, chunk_size, 2, DataFormat::Text).await;
    verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
    source.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn skewed_keys_split_by_statistics() {
    let cluster = shared_cluster();
    let db = unique_db("skewed");
    exec(
        cluster,
        &db,
        "CREATE TABLE skewed (id bigint PRIMARY KEY, payload text);
         INSERT INTO skewed SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
         INSERT INTO skewed SELECT 1000000000000000 + g * 7919, 'outlier' FROM generate_series(1, 5) g;
         ANALYZE skewed;",
    )
    .await;
    let source = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .open()
            .await
            .unwrap(),
    );
    let run = run_to_files(&source, SplitBy::Pk, 64_000, 4, DataFormat::Text).await;
    verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
    let t = run.table("public", "skewed");
    let n = assert_split(t, SplitBy::Pk, 5);
    let rows: Vec<u64> = t.chunks.iter().map(|c| c.rows).collect();
    assert_eq!(rows.iter().sum::<u64>(), 20005);
    let avg = 20005 / n as u64;
    assert!(
        rows.iter().all(|&r| r <= 3 * avg),
        "{n} chunks, average {avg} rows, but {rows:?}: {:?}",
        t.chunks.iter().map(|c| &c.range).collect::<Vec<_>>()
    );
    source.close().await.unwrap();
}

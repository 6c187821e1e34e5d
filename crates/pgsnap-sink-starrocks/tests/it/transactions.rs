//! The transaction-interface load mode (`with_transactions(true)`): one transaction per
//! chunk, visible only once committed whole; lingering transactions of the same run rolled
//! back on resume; committed chunks skipped.

use std::sync::Arc;

use pgsnap_core::testing::{FaultySource, sink_conformance};
use pgsnap_core::{DataFormat, MemorySource, RunStatus, Sink, Source};
use pgsnap_sink_starrocks::{LoadFormat, StarRocksSink, StarRocksSinkBuilder};
use pgsnap_test_support::starrocks::{
    DuplicateLabelStyle, StarRocksDouble, StarRocksOptions, TxnState,
};

use crate::faults::{
    CHUNKS, ROWS, assert_exactly_once, create_duplicate_table, load_in_txn, rerun, run, run_from,
    txn_call_url,
};
use crate::support::*;

/// A transaction-mode sink configuration for `d` loading into the existing table `t`.
fn txn_builder(d: &StarRocksDouble) -> StarRocksSinkBuilder {
    builder(d).with_create_tables(false).with_transactions(true)
}

/// The states of every transaction whose label is `label`, in begin order.
fn txn_states(d: &StarRocksDouble, label: &str) -> Vec<TxnState> {
    let cat = d.catalog().lock();
    cat.databases[DB].txns.values().filter(|t| t.label == label).map(|t| t.state).collect()
}

/// How many transactions in the double are in `state`.
fn count_in_state(d: &StarRocksDouble, state: TxnState) -> usize {
    let cat = d.catalog().lock();
    cat.databases[DB].txns.values().filter(|t| t.state == state).count()
}

/// Requests to the FE's HTTP port for this transaction operation.
fn fe_calls(d: &StarRocksDouble, op: &str) -> usize {
    let path = format!("/api/transaction/{op}");
    d.fe_requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_with_transactions() {
    sink_conformance(|| crate::conformance::make_with(true)).await;
}

/// A chunk split into several loads whose source fails after some of them: nothing of it is
/// visible (the transaction is rolled back) and the source's error comes back unchanged;
/// the retry commits the chunk whole, under one label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_in_parts_becomes_visible_only_when_committed_whole() {
    let d = double().await;
    create_duplicate_table(&d);
    let (source, manifest) = MemorySource::example(1, ROWS);
    let sink =
        txn_builder(&d).with_max_load_bytes(1000).with_run_id(&manifest.run_id).build().unwrap();
    sink.prepare_tables(&[manifest.tables[0].schema.clone()]).await.unwrap();
    let faulty = FaultySource::new(source, 1, true);
    let t = &manifest.tables[0];
    let chunk = t.chunk(&t.chunks[0]);
    let label = format!("{}t", sink.chunk_label_prefix(&chunk).unwrap());

    let data = faulty.read_chunk(&chunk, DataFormat::Text).await.unwrap();
    let err = sink.write_chunk(&chunk, data, &Default::default()).await.unwrap_err();
    assert!(
        err.is_temporary() && err.backend() == Some("faulty"),
        "the source's error, unchanged: {err:?}"
    );
    let parts = fe_calls(&d, "load");
    assert!(parts >= 2, "several parts were loaded before the source failed: {parts}");
    assert!(d.rows(DB, "t").is_empty(), "nothing of the chunk is visible");
    assert_eq!(txn_states(&d, &label), [TxnState::Aborted], "rolled back");
    assert_eq!(fe_calls(&d, "prepare") + fe_calls(&d, "commit"), 0);

    let data = faulty.read_chunk(&chunk, DataFormat::Text).await.unwrap();
    let receipt = sink.write_chunk(&chunk, data, &Default::default()).await.unwrap();
    let load = receipt.load.unwrap();
    assert_eq!((load.rows_loaded, load.rows_filtered), (u64::from(ROWS), 0));
    assert_eq!(load.labels, std::slice::from_ref(&label), "one transaction, one label");
    assert!(fe_calls(&d, "load") >= parts * 2, "the retry sent every part again");
    assert_eq!(txn_states(&d, &label), [TxnState::Aborted, TxnState::Visible]);
    let mut ids: Vec<u32> =
        d.rows(DB, "t").iter().map(|r| r[0].as_deref().unwrap().parse().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..ROWS).collect::<Vec<_>>(), "every row exactly once");
    assert_eq!(d.fe_body_bytes(), 0, "no body byte may reach the FE");
    assert!(d.loads().is_empty(), "no Stream Load was used");
}

/// The same through the coordinator, every chunk's first read failing halfway, through the
/// FE and straight to the BE: every row exactly once, one committed transaction per chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sources_are_retried_into_exactly_one_transaction_per_chunk() {
    for straight_to_be in [false, true] {
        let d = double().await;
        create_duplicate_table(&d);
        let mut b = txn_builder(&d).with_max_load_bytes(1000);
        if straight_to_be {
            b = b.with_be_urls([d.be_url()]);
        }
        let sink = Arc::new(b.build().unwrap());
        let (source, manifest) = MemorySource::example(CHUNKS, ROWS);
        let faulty = FaultySource::new(source, 1, true);
        let report = run_from(&sink, Arc::new(faulty.clone()), manifest).await;
        assert_eq!(report.status, RunStatus::Ok, "{:?}", report.tables);
        assert_eq!(faulty.attempts(), CHUNKS * 2, "each chunk failed once, then loaded");
        assert_exactly_once(&d, &format!("straight_to_be={straight_to_be}"));
        assert_eq!(count_in_state(&d, TxnState::Visible), CHUNKS as usize);
        assert_eq!(count_in_state(&d, TxnState::Aborted), CHUNKS as usize, "rolled back");
        for c in &report.manifest.tables[0].chunks {
            assert_eq!(c.load.as_ref().unwrap().labels.len(), 1);
        }
        if straight_to_be {
            assert_eq!(fe_calls(&d, "begin") + fe_calls(&d, "load"), 0, "begin and load on the BE");
            assert!(fe_calls(&d, "commit") >= CHUNKS as usize, "commit through the FE");
        }
        assert_eq!(d.fe_body_bytes(), 0);
    }
}

/// A transaction of this run left open with a chunk's label (begun and loaded, maybe
/// prepared, never committed: a killed process) is rolled back, and the chunk is loaded
/// exactly once; the lingering transaction's rows never appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_transaction_is_rolled_back_and_the_chunk_loaded_once() {
    let cases = [
        (false, DuplicateLabelStyle::AlreadyExists),
        (true, DuplicateLabelStyle::AlreadyExists),
        (true, DuplicateLabelStyle::FailHasBeenUsed),
    ];
    for (prepared, style) in cases {
        let what = format!("prepared={prepared} {style:?}");
        let d = double_with(StarRocksOptions::default().with_duplicate_label_style(style)).await;
        create_duplicate_table(&d);
        let (source, manifest) = MemorySource::example(CHUNKS, ROWS);
        let sink = Arc::new(txn_builder(&d).with_run_id(&manifest.run_id).build().unwrap());
        let t = &manifest.tables[0];
        let label = format!("{}t", sink.chunk_label_prefix(&t.chunk(&t.chunks[0])).unwrap());
        let begun = txn_call_url(&d.fe_url(), "begin", &label, None).await;
        assert!(begun.contains("\"OK\""), "{begun}");
        // Rows that are not the chunk's: they would show if the transaction were committed.
        let body = (0..5).map(|i| format!("{}\tlingering\n", 1_000_000 + i)).collect::<String>();
        if prepared {
            load_in_txn(&d, &label, &body).await;
        } else {
            let answer = txn_call_url(&d.fe_url(), "load", &label, Some(&body)).await;
            assert!(answer.contains("\"OK\""), "{answer}");
        }
        let fe_body_before = d.fe_body_bytes();
        let report = run(&sink, &source, manifest).await;
        assert_eq!(report.status, RunStatus::Ok, "{what}: {:?}", report.tables);
        assert_exactly_once(&d, &what);
        assert_eq!(txn_states(&d, &label), [TxnState::Aborted, TxnState::Visible], "{what}");
        assert_eq!(d.fe_body_bytes(), fe_body_before, "{what}: no body byte to the FE");
    }
}

/// A second run with the same run id finds every chunk's transaction committed: the chunks
/// are skipped (their rows counted as loaded), nothing is loaded or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_chunk_is_skipped_with_its_rows_counted() {
    for style in [DuplicateLabelStyle::AlreadyExists, DuplicateLabelStyle::FailHasBeenUsed] {
        let d = double_with(StarRocksOptions::default().with_duplicate_label_style(style)).await;
        create_duplicate_table(&d);
        let b = txn_builder(&d);
        let (source, manifest) = MemorySource::example(CHUNKS, ROWS);
        let first = run(&Arc::new(b.clone().build().unwrap()), &source, manifest.clone()).await;
        assert_eq!(first.status, RunStatus::Ok, "{style:?}: {:?}", first.tables);
        let loads_before = fe_calls(&d, "load");
        let again: Arc<StarRocksSink> = Arc::new(b.build().unwrap());
        let second = rerun(&again, &source, manifest).await;
        assert_eq!(second.status, RunStatus::Ok, "{style:?}: {:?}", second.tables);
        assert_exactly_once(&d, &format!("{style:?}"));
        assert_eq!(fe_calls(&d, "load"), loads_before, "{style:?}: nothing loaded again");
        assert_eq!(count_in_state(&d, TxnState::Visible), CHUNKS as usize);
        for c in &second.manifest.tables[0].chunks {
            let load = c.load.as_ref().unwrap();
            assert_eq!(load.rows_loaded, u64::from(ROWS), "{style:?}: skipped rows count");
            assert_eq!(load.labels.len(), 1);
        }
        assert_eq!(d.fe_body_bytes(), 0);
    }
}

/// Every type arrives value-exact through the transaction interface too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_exactly_in_transactions() {
    crate::types::every_type_arrives_exactly(LoadFormat::Json, true).await;
}

//! The shared Sink conformance suite, run against the StarRocks sink loading into the
//! StarRocks test double.
//!
//! The probe reads back what each chunk's loads applied (the double keeps the rows of every
//! visible load, by label) and renders them as COPY text again, so the suite compares bytes.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pgsnap_core::testing::{SinkProbe, SinkUnderTest, sink_conformance};
use pgsnap_core::{Chunk, MemorySource, Sink};
use pgsnap_sink_starrocks::StarRocksSink;
use pgsnap_test_support::starrocks::{StarRocksDouble, StarRocksOptions, TxnState};

use crate::support::*;

struct Probe {
    double: StarRocksDouble,
    sink: Arc<StarRocksSink>,
}

/// COPY text escaping of one value.
fn copy_escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

impl Probe {
    /// Visible loads of `chunk`, by part.
    fn labels(&self, chunk: &Chunk) -> Vec<String> {
        let Some(prefix) = self.sink.chunk_label_prefix(chunk) else {
            return Vec::new();
        };
        let cat = self.double.catalog().lock();
        let mut labels: Vec<String> = cat
            .databases
            .get(DB)
            .map(|d| {
                d.txns
                    .values()
                    .filter(|t| t.state == TxnState::Visible && t.label.starts_with(&prefix))
                    .map(|t| t.label.clone())
                    .collect()
            })
            .unwrap_or_default();
        labels.sort_by_key(|l| l.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()));
        labels
    }
}

#[async_trait]
impl SinkProbe for Probe {
    async fn read_back(&self, chunk: &Chunk) -> Option<Bytes> {
        let labels = self.labels(chunk);
        if labels.is_empty() {
            return None;
        }
        let mut out = String::new();
        for l in labels {
            for row in self.double.applied_rows(DB, &l).unwrap_or_default() {
                for (i, cell) in row.iter().enumerate() {
                    if i > 0 {
                        out.push('\t');
                    }
                    match cell {
                        None => out.push_str("\\N"),
                        Some(v) => copy_escape(v, &mut out),
                    }
                }
                out.push('\n');
            }
        }
        Some(Bytes::from(out))
    }

    async fn copies(&self, chunk: &Chunk) -> usize {
        // Each part has one label (with transactions the chunk has one, ending in `-t`); more
        // than one visible load of part 0 or of the transaction would be a copy.
        self.labels(chunk).iter().filter(|l| l.ends_with("-0") || l.ends_with("-t")).count()
    }
}

/// A fresh double and sink (loading with the transaction interface when `transactions`),
/// with the example table prepared, and the probe reading it back.
pub(crate) async fn make_with(transactions: bool) -> SinkUnderTest {
    let double = double_with(StarRocksOptions::default().with_keep_load_rows(true)).await;
    let sink = Arc::new(builder(&double).with_transactions(transactions).build().unwrap());
    let (_, manifest) = MemorySource::example(1, 1);
    let schemas: Vec<_> = manifest.tables.iter().map(|t| t.schema.clone()).collect();
    sink.prepare_tables(&schemas).await.expect("prepare");
    let probe = Probe { double, sink: Arc::clone(&sink) };
    (sink as Arc<dyn Sink>, Box::new(probe))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starrocks_sink_passes_the_conformance_suite() {
    sink_conformance(|| make_with(false)).await;
}

//! Hot in-process paths: the per-byte work on every chunk (row counting + checksum), and the
//! coordinator's overhead per chunk with in-memory source and sink.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pgsnap_core::{
    ChunkInspector, Coordinator, CoordinatorOptions, DataFormat, MemoryCheckpointStore, MemorySink,
    MemorySource,
};

fn copy_text(rows: usize) -> Vec<u8> {
    let mut s = String::with_capacity(rows * 100);
    for i in 0..rows {
        s.push_str(&format!(
            "{i}\t{}\t{}\tcustomer name {i}\t2026-11-25 10:{:02}:00+00\t\\N\t{{\"k\": {i}}}\n",
            i % 1000,
            i as f64 * 1.25,
            i % 60
        ));
    }
    s.into_bytes()
}

fn inspector(c: &mut Criterion) {
    let data = copy_text(200_000);
    let mut g = c.benchmark_group("inspector");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    for format in [DataFormat::Text, DataFormat::Csv] {
        g.bench_function(format.as_str(), |b| {
            b.iter(|| {
                let mut i = ChunkInspector::new(format);
                for piece in data.chunks(64 * 1024) {
                    i.update(piece);
                }
                i.finish()
            })
        });
    }
    g.finish();
}

fn coordinator(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut g = c.benchmark_group("coordinator");
    g.sample_size(10);
    g.throughput(Throughput::Elements(256));
    g.bench_function("256 chunks x 100 rows, memory to memory, 4 jobs", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (source, manifest) = MemorySource::example(256, 100);
                Coordinator::new(
                    Arc::new(source),
                    Arc::new(MemorySink::new()),
                    Arc::new(MemoryCheckpointStore::new()),
                )
                .with_options(CoordinatorOptions::default().with_jobs(4))
                .run(manifest)
                .await
                .unwrap()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, inspector, coordinator);
criterion_main!(benches);

//! Throughput of the file sink: ~64 MiB of COPY text, one row per stream item (as
//! PostgreSQL sends COPY data), written through `FileSink` from memory.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use pgsnap_core::{Chunk, ChunkId, ChunkRange, ChunkStream, Sink, TableName};
use pgsnap_sink_file::{Compression, FileSinkBuilder};

const TARGET: usize = 64 << 20;

/// Rows resembling an orders table: ids, timestamps, numerics, text with escapes, NULLs.
fn copy_text() -> (Bytes, Vec<(usize, usize)>) {
    let mut s = String::with_capacity(TARGET + 512);
    let mut rows = Vec::new();
    let mut i: u64 = 0;
    while s.len() < TARGET {
        let start = s.len();
        let customer = (i * 7919) % 100_003;
        let note = match i % 5 {
            0 => "\\N".to_owned(),
            1 => format!("gift wrap\\tplease, call {customer}"),
            2 => "line one\\nline two".to_owned(),
            3 => format!("café order #{i} für Grüße"),
            _ => "standard".to_owned(),
        };
        s.push_str(&format!(
            "{i}\t{customer}\t2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\t{}.{:02}\t{}\t{note}\n",
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60,
            (i * 7) % 60,
            (i * 31337) % 1_000_000,
            (i * 37) % 10_000,
            i % 100,
            if i.is_multiple_of(3) { "shipped" } else { "pending" },
        ));
        rows.push((start, s.len()));
        i += 1;
    }
    (Bytes::from(s), rows)
}

fn stream(data: &Bytes, rows: &[(usize, usize)]) -> ChunkStream {
    let items: Vec<pgsnap_core::Result<Bytes>> =
        rows.iter().map(|&(a, b)| Ok(data.slice(a..b))).collect();
    futures::stream::iter(items).boxed()
}

fn bench(c: &mut Criterion) {
    let (data, rows) = copy_text();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let table = TableName::new("public", "orders");
    let chunk = Chunk {
        table: table.clone(),
        relation: table,
        id: ChunkId(0),
        range: ChunkRange::All,
        columns: vec!["id".to_owned()].into(),
        estimated_bytes: data.len() as u64,
    };
    let dir = tempfile::tempdir().unwrap();

    let mut g = c.benchmark_group("file_sink");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(data.len() as u64));
    for (name, compression, fsync) in [
        ("none", Compression::None, true),
        ("none_nofsync", Compression::None, false),
        ("zstd3", Compression::Zstd { level: 3 }, true),
        ("gzip6", Compression::Gzip { level: 6 }, true),
    ] {
        let sink = FileSinkBuilder::new(dir.path().join(name))
            .with_compression(compression)
            .with_fsync(fsync)
            .build()
            .unwrap();
        let mut ratio = None;
        g.bench_function(name, |b| {
            b.iter_batched(
                || stream(&data, &rows),
                |s| {
                    let r = rt.block_on(sink.write_chunk(&chunk, s, &Default::default())).unwrap();
                    ratio = Some(r.stored_bytes as f64 / data.len() as f64);
                },
                BatchSize::PerIteration,
            )
        });
        if let Some(r) = ratio {
            println!("{name}: stored/raw = {r:.3}");
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

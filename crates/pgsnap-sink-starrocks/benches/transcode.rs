//! Throughput of the COPY text → Stream Load body transcoder, in bytes of COPY input per
//! second, for CSV and JSON bodies on two row shapes:
//! - `pgbench_accounts`: `int, int, int, character(84)` (blank-padded filler);
//! - `mixed`: `bigint, text` (with occasional escapes), `timestamptz`, `numeric(12,2)`,
//!   `boolean`, `uuid`.
//!
//! Each iteration transcodes ~2 MiB of input (one source buffer) into one body.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pgsnap_core::{Column, TableKind, TableName, TableSchema};
use pgsnap_sink_starrocks::mapping::{LoadFormat, MappingOptions, TargetTable, map_table};
use pgsnap_sink_starrocks::transcode::Transcoder;

const TARGET: usize = 2 << 20;

fn schema(cols: &[(&str, &str)], pk: &[&str]) -> TableSchema {
    TableSchema {
        name: TableName::new("public", "bench"),
        kind: TableKind::Table,
        columns: cols.iter().map(|(n, t)| Column::new(*n, *t, true)).collect(),
        generated_columns: vec![],
        primary_key: pk.iter().map(|s| (*s).into()).collect(),
    }
}

fn pgbench_accounts() -> (TableSchema, Vec<u8>) {
    let s = schema(
        &[
            ("aid", "integer"),
            ("bid", "integer"),
            ("abalance", "integer"),
            ("filler", "character(84)"),
        ],
        &["aid"],
    );
    let filler = " ".repeat(84);
    let mut input = Vec::with_capacity(TARGET + 200);
    let mut i = 1u64;
    while input.len() < TARGET {
        let balance = (i as i64 * 7919 % 20_001) - 10_000;
        input.extend_from_slice(
            format!("{i}\t{}\t{balance}\t{filler}\n", i / 100_000 + 1).as_bytes(),
        );
        i += 1;
    }
    (s, input)
}

fn mixed() -> (TableSchema, Vec<u8>) {
    let s = schema(
        &[
            ("id", "bigint"),
            ("note", "text"),
            ("created_at", "timestamp with time zone"),
            ("amount", "numeric(12,2)"),
            ("active", "boolean"),
            ("ref", "uuid"),
        ],
        &["id"],
    );
    let mut input = Vec::with_capacity(TARGET + 300);
    let mut i = 1u64;
    while input.len() < TARGET {
        let note = match i % 20 {
            0 => "\\N".to_owned(),
            7 => format!("gift wrap\\tplease, call {}", i * 31),
            13 => "C:\\\\path\\\\to \"file\"".to_owned(),
            _ => format!("order {i} for customer {}", i * 7919 % 100_003),
        };
        input.extend_from_slice(
            format!(
                "{i}\t{note}\t2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\t{}.{:02}\t{}\t\
                 {:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}\n",
                i % 12 + 1,
                i % 28 + 1,
                i % 24,
                i % 60,
                (i * 7) % 60,
                (i * 31337) % 1_000_000,
                (i * 37) % 100_000,
                i % 100,
                if i.is_multiple_of(3) { 't' } else { 'f' },
                i.wrapping_mul(2_654_435_761) & 0xffff_ffff,
                i & 0xffff,
                i & 0xfff,
                (i >> 3) & 0xfff,
                i.wrapping_mul(0x9e37_79b9_7f4a) & 0xffff_ffff_ffff,
            )
            .as_bytes(),
        );
        i += 1;
    }
    (s, input)
}

fn run(c: &mut Criterion, name: &str, table: &TargetTable, input: &[u8]) {
    let mut group = c.benchmark_group("transcode");
    group.throughput(Throughput::Bytes(input.len() as u64));
    let mut out = BytesMut::with_capacity(input.len() * 2);
    group.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            let mut tc = Transcoder::new(table);
            tc.begin(&mut out);
            tc.push(black_box(input), &mut out).expect("transcodes");
            tc.finish_body(&mut out);
            tc.finish().expect("complete rows");
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    for (shape, (schema, input)) in [("pgbench_accounts", pgbench_accounts()), ("mixed", mixed())] {
        for format in [LoadFormat::Csv, LoadFormat::Json] {
            let table = map_table(&schema, "bench", &MappingOptions::new().with_format(format))
                .expect("maps");
            run(c, &format!("{shape}/{format}"), &table, &input);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

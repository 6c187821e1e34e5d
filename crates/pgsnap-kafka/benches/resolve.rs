//! Benchmark of CDC handoff offset resolution (issue #4): a topic with 8 partitions × N
//! Debezium change events, the snapshot boundary at a random offset per partition.
//!
//! Two parts, both printing a table of broker reads (`PartitionResolution::reads`, i.e.
//! `PartitionLog::read_from` calls) against `ceil(log2 N)`, and the time taken:
//!
//! 1. **In memory** (always runs): a synthetic partition that builds each record when it is
//!    read, so N can be large (up to 10 000 000 per partition) at no memory cost. It measures
//!    the resolver's own work and read count, no network.
//! 2. **tansu** (runs under `cargo bench`, skipped with a message when the `tansu` binary is
//!    missing; install it with `bash scripts/setup.sh --kafka`): the same events produced to a
//!    real broker (tansu 0.6, memory storage) **one record per produce batch** (tansu 0.6
//!    miscounts the high watermark of multi-record batches), with one producer per
//!    partition running concurrently, for N in {1 000, 10 000, `PGSNAP_BENCH_N`} (default
//!    100 000). Then `resolve_running` over the 8 partitions is timed, and the slot-first
//!    answer (`capture_high_watermarks` + `slot_first`, watermark requests only).
//!
//! ```text
//! cargo bench -p pgsnap-kafka --bench resolve                       # both parts
//! PGSNAP_BENCH_N=20000 cargo bench -p pgsnap-kafka --bench resolve  # smaller broker run
//! PGSNAP_BENCH_READ_TIMEOUT=300 cargo bench -p pgsnap-kafka --bench resolve # per-read timeout, s (default 120)
//! PGSNAP_BENCH_TANSU=0 cargo bench -p pgsnap-kafka --bench resolve  # in memory only
//! ```
//!
//! Without `--bench` (e.g. `cargo test --benches`), only a small in-memory run is made.
//!
//! Event `txId`s increase with the offset inside each partition (Debezium writes in commit
//! order), and the snapshot is `X:X:` with X chosen so that partition p's first invisible
//! event is at its random boundary b_p: txId(p, o) = X + o − b_p. Every answer is checked
//! against b_p.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pgsnap_core::BoxError;
use pgsnap_kafka::PgSnapshot;
use pgsnap_kafka::kafka::{KafkaLogOptions, KafkaLogs};
use pgsnap_kafka::resolve::{
    LogRecord, PartitionLog, Resolution, ScanOptions, capture_high_watermarks, resolve_running,
    slot_first,
};
use pgsnap_test_support::kafka::{Record, Tansu};

/// Partitions per topic.
const PARTITIONS: i32 = 8;
/// The snapshot's xmin = xmax: events with txId < X are visible.
const X: u64 = 100_000_000;
/// Default N per partition for the broker run.
const DEFAULT_N: u64 = 100_000;

/// A Debezium PostgreSQL change event (3.x envelope, schemas disabled), as written by the
/// connector with the JsonConverter; the same shape as `tests/it/resolver.rs`.
fn event(id: u64, tx: u64, lsn: u64) -> String {
    format!(
        r#"{{"before":null,"after":{{"id":{id},"v":"r{id}"}},"source":{{"version":"3.6.3.Final","connector":"postgresql","name":"pg","ts_ms":1764000000000,"snapshot":"false","db":"app","sequence":"[null,\"{lsn}\"]","schema":"public","table":"items","txId":{tx},"lsn":{lsn},"xmin":null}},"op":"c","ts_ms":1764000000100}}"#
    )
}

fn tx_of(offset: u64, boundary: u64) -> u64 {
    X + offset - boundary
}

/// xorshift64*: reproducible "random" boundaries without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A boundary in `1..n` (at least one visible and one invisible event).
    fn boundary(&mut self, n: u64) -> u64 {
        1 + self.next() % (n - 1).max(1)
    }
}

/// An in-memory partition of `n` events whose records are built when read.
#[derive(Debug)]
struct SynthLog {
    topic: String,
    partition: i32,
    n: u64,
    boundary: u64,
    reads: AtomicU64,
}

#[async_trait]
impl PartitionLog for SynthLog {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn partition(&self) -> i32 {
        self.partition
    }

    async fn watermarks(&self) -> Result<(i64, i64), BoxError> {
        Ok((0, self.n as i64))
    }

    async fn read_from(&self, offset: i64, max: usize) -> Result<Vec<LogRecord>, BoxError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let from = offset.max(0) as u64;
        let until = self.n.min(from.saturating_add(max as u64));
        Ok((from..until)
            .map(|o| LogRecord {
                offset: o as i64,
                key: Some(format!(r#"{{"id":{o}}}"#).into_bytes()),
                value: Some(event(o, tx_of(o, self.boundary), 1_000_000 + o * 100).into_bytes()),
                timestamp_ms: None,
            })
            .collect())
    }
}

fn ceil_log2(n: u64) -> u32 {
    if n <= 1 { 0 } else { 64 - (n - 1).leading_zeros() }
}

/// One table row: N, reads per partition (min..max and mean), the log, records, time.
fn row(n: u64, r: &Resolution, took: Duration, extra: &str) -> String {
    let reads: Vec<u64> = r.partitions.iter().map(|p| p.reads).collect();
    let (min, max) = (reads.iter().min().unwrap_or(&0), reads.iter().max().unwrap_or(&0));
    let mean = reads.iter().sum::<u64>() as f64 / reads.len().max(1) as f64;
    let records: u64 = r.partitions.iter().map(|p| p.records_read).sum();
    format!(
        "| {n:>10} | {:>5} | {min:>2}..{max:<2} ({mean:>4.1}) | {:>2} | {records:>7} | {:>10.2?} | {:>10.2?} |{extra}",
        r.total_reads(),
        ceil_log2(n),
        took,
        took / r.partitions.len().max(1) as u32,
    )
}

const HEADER: &str =
    "|          N | reads | per partition | ⌈log2 N⌉ | records | 8 partitions | per partition |";
const RULE: &str = "|---:|---:|---:|---:|---:|---:|---:|";

fn check(r: &Resolution, boundaries: &[u64]) {
    for p in &r.partitions {
        let want = boundaries[p.partition as usize] as i64;
        assert_eq!(p.offset, want, "partition {}: {p:?}", p.partition);
    }
}

async fn in_memory(sizes: &[u64], opts: &ScanOptions) {
    println!(
        "\n## In memory: resolve_running, {PARTITIONS} partitions × N (ScanOptions {opts:?})\n"
    );
    println!("{HEADER}");
    println!("{RULE}");
    let snap: PgSnapshot = format!("{X}:{X}:").parse().expect("snapshot");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for &n in sizes {
        let logs: Vec<SynthLog> = (0..PARTITIONS)
            .map(|p| SynthLog {
                topic: format!("bench.mem.n{n}"),
                partition: p,
                n,
                boundary: rng.boundary(n),
                reads: AtomicU64::new(0),
            })
            .collect();
        let boundaries: Vec<u64> = logs.iter().map(|l| l.boundary).collect();
        let refs: Vec<&dyn PartitionLog> = logs.iter().map(|l| l as &dyn PartitionLog).collect();
        let started = Instant::now();
        let r = resolve_running(&refs, &snap, opts).await.expect("resolve in memory");
        let took = started.elapsed();
        check(&r, &boundaries);
        let counted: u64 = logs.iter().map(|l| l.reads.load(Ordering::Relaxed)).sum();
        assert_eq!(counted, r.total_reads());
        println!("{}", row(n, &r, took, ""));
    }
}

/// The tansu binary, or why not (without printing a panic).
fn tansu_available() -> Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = std::panic::catch_unwind(Tansu::bin);
    std::panic::set_hook(hook);
    found.map(|_| ()).map_err(|e| {
        e.downcast_ref::<String>().cloned().unwrap_or_else(|| "tansu binary not found".into())
    })
}

/// Produces `n` events to each of the 8 partitions of `topic`, one record per batch, one
/// producer task per partition. Returns the boundaries and the time taken.
async fn produce(broker: &Tansu, topic: &str, n: u64, rng: &mut Rng) -> (Vec<u64>, Duration) {
    broker.create_topic(topic, PARTITIONS as u32);
    let boundaries: Vec<u64> = (0..PARTITIONS).map(|_| rng.boundary(n)).collect();
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let producer = broker.producer();
        let topic = topic.to_owned();
        let boundary = boundaries[p as usize];
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            for o in 0..n {
                let id = p as u64 * n + o;
                let key = format!(r#"{{"id":{id}}}"#);
                let value = event(id, tx_of(o, boundary), 1_000_000 + o * 100);
                let (got_p, got_o) = producer
                    .send(
                        &topic,
                        Record {
                            partition: Some(p),
                            key: Some(key.as_bytes()),
                            value: Some(value.as_bytes()),
                            ..Record::default()
                        },
                    )
                    .await;
                assert_eq!((got_p, got_o), (p, o as i64), "one record per batch, in order");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let total = n * PARTITIONS as u64;
    let progress = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let d = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprintln!("  produced {d}/{total} ({:.0} records/s)", d as f64 / secs);
            }
        })
    };
    for t in tasks {
        t.await.expect("producer task");
    }
    progress.abort();
    (boundaries, started.elapsed())
}

async fn on_tansu(sizes: &[u64], opts: &ScanOptions) {
    if let Err(why) = tansu_available() {
        println!("\n## tansu: SKIPPED: {why}");
        return;
    }
    let broker = Tansu::start();
    let snap: PgSnapshot = format!("{X}:{X}:").parse().expect("snapshot");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut resolved = Vec::new();
    let mut slot = Vec::new();
    let mut probes = Vec::new();
    let read_timeout = Duration::from_secs(
        std::env::var("PGSNAP_BENCH_READ_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(120),
    );
    println!(
        "\n## tansu 0.6 (memory storage), {PARTITIONS} partitions × N, one record per batch\n"
    );
    println!("| N | records | produce time | records/s ({PARTITIONS} producers) |");
    println!("|---:|---:|---:|---:|");
    for &n in sizes {
        let topic = format!("bench.pg.public.items.n{n}");
        let (boundaries, took) = produce(&broker, &topic, n, &mut rng).await;
        let total = n * PARTITIONS as u64;
        println!("| {n} | {total} | {took:.1?} | {:.0} |", total as f64 / took.as_secs_f64());
        let options = KafkaLogOptions { request_timeout: read_timeout, ..Default::default() };
        let logs =
            KafkaLogs::open_with(&broker.bootstrap(), &topic, &options).await.expect("open topic");
        let refs: Vec<&dyn PartitionLog> =
            logs.logs().iter().map(|l| l as &dyn PartitionLog).collect();

        // The latency of one read (1 record) by depth, on partition 0.
        let log0 = &logs.logs()[0];
        let mut probe = Vec::new();
        for at in [0, n as i64 / 2, n as i64 - 1] {
            let started = Instant::now();
            let got = log0.read_from(at, 1).await;
            probe.push((at, started.elapsed(), got.map(|r| r.len()).map_err(|e| e.to_string())));
        }
        probes.push((n, probe));
        let reads_before = logs.reads();

        let started = Instant::now();
        match resolve_running(&refs, &snap, opts).await {
            Ok(r) => {
                let t_running = started.elapsed();
                check(&r, &boundaries);
                // The broker reads the KafkaLogs counted agree with the resolver's count.
                assert_eq!(logs.reads() - reads_before, r.total_reads());
                resolved.push((n, Ok(r), t_running));
            }
            Err(e) => resolved.push((n, Err(e.to_string()), started.elapsed())),
        }

        let started = Instant::now();
        let recorded = capture_high_watermarks(&refs).await.expect("watermarks");
        let t_capture = started.elapsed();
        let started = Instant::now();
        let s = slot_first(&recorded, &refs).await.expect("slot-first");
        let t_slot = started.elapsed();
        for p in &s.partitions {
            assert_eq!(p.offset, n as i64);
        }
        slot.push((n, t_capture, t_slot, s.total_reads()));
    }
    println!("\n### resolve_running on tansu (ScanOptions {opts:?})\n");
    println!("{HEADER}");
    println!("{RULE}");
    for (n, r, took) in &resolved {
        match r {
            Ok(r) => println!("{}", row(*n, r, *took, "")),
            Err(e) => println!("| {n:>10} | FAILED after {took:.1?}: {e} |"),
        }
    }
    println!(
        "\n### One read of 1 record on partition 0, by offset (read timeout {read_timeout:?})\n"
    );
    println!("| N | offset | time | records |");
    println!("|---:|---:|---:|---:|");
    for (n, probe) in &probes {
        for (at, took, got) in probe {
            match got {
                Ok(k) => println!("| {n} | {at} | {took:.2?} | {k} |"),
                Err(e) => println!("| {n} | {at} | {took:.2?} | error: {e} |"),
            }
        }
    }
    println!("\n### slot-first on tansu (watermark requests only)\n");
    println!(
        "| N | capture_high_watermarks (8 partitions) | slot_first check (8 partitions) | reads |"
    );
    println!("|---:|---:|---:|---:|");
    for (n, capture, check, reads) in &slot {
        println!("| {n} | {capture:.2?} | {check:.2?} | {reads} |");
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let opts = ScanOptions::default();
    rt.block_on(async {
        if !bench {
            in_memory(&[1_000, 10_000], &opts).await;
            println!("\n(not run with --bench: the tansu part is skipped)");
            return;
        }
        in_memory(&[1_000, 10_000, 100_000, 1_000_000, 10_000_000], &opts).await;
        if std::env::var("PGSNAP_BENCH_TANSU").is_ok_and(|v| v == "0") {
            println!("\n## tansu: SKIPPED (PGSNAP_BENCH_TANSU=0)");
            return;
        }
        let n = match std::env::var("PGSNAP_BENCH_N") {
            Ok(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
                panic!("PGSNAP_BENCH_N={v:?} is not a number of messages per partition")
            }),
            Err(_) => DEFAULT_N,
        };
        assert!(n >= 2, "PGSNAP_BENCH_N must be at least 2");
        let mut sizes: Vec<u64> = [1_000, 10_000, n].into_iter().filter(|&s| s <= n).collect();
        sizes.dedup();
        on_tansu(&sizes, &opts).await;
    });
}

//! Shared plumbing of the pgsnap examples: the contract every example follows.
//!
//! - progress (a bar on a terminal, log lines otherwise) and logs go to **stderr**;
//! - with `--json`, **stdout** is one JSON object and nothing else;
//! - exit codes: [`EXIT_OK`] 0 everything complete, [`EXIT_PARTIAL`] 1 finished with failed
//!   tables (listed), [`EXIT_USAGE`] 2 usage error, [`EXIT_PREFLIGHT`] 3 preflight or
//!   connection error, [`EXIT_SNAPSHOT`] 4 snapshot lost or not importable, [`EXIT_SINK`] 5
//!   non-retryable sink error.
#![deny(missing_docs)]

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgsnap_core::{ProgressEvent, ProgressHandler};

pub mod run;
pub mod starrocks;

/// Everything complete.
pub const EXIT_OK: i32 = 0;
/// Finished, but some tables failed (listed in the report).
pub const EXIT_PARTIAL: i32 = 1;
/// Usage error (bad flags or arguments).
pub const EXIT_USAGE: i32 = 2;
/// Preflight or connection error.
pub const EXIT_PREFLIGHT: i32 = 3;
/// Snapshot lost or not importable.
pub const EXIT_SNAPSHOT: i32 = 4;
/// Non-retryable sink error.
pub const EXIT_SINK: i32 = 5;

/// The exit code for a core error.
pub fn exit_code(e: &pgsnap_core::Error) -> i32 {
    use pgsnap_core::Error as E;
    match e.root() {
        E::Config(_) | E::Manifest { .. } => EXIT_USAGE,
        E::Preflight(_) => EXIT_PREFLIGHT,
        E::SnapshotLost { .. } => EXIT_SNAPSHOT,
        E::SinkFatal { .. } | E::Io { .. } => EXIT_SINK,
        E::Transient { .. } | E::Backend { .. } => EXIT_PREFLIGHT,
        _ => EXIT_PARTIAL,
    }
}

/// The exit code for a source error.
pub fn source_exit_code(e: &pgsnap_source::Error) -> i32 {
    use pgsnap_source::Error as E;
    match e {
        E::ConnInfo(_) | E::Pattern(_) | E::Config(_) => EXIT_USAGE,
        E::SnapshotLost { .. } => EXIT_SNAPSHOT,
        _ => EXIT_PREFLIGHT,
    }
}

/// Logs to stderr; `RUST_LOG` overrides the level (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Prints a fatal message to stderr and exits.
pub fn die(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(code)
}

/// Human-readable bytes (`1.5 GB`, powers of 10).
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[i]) }
}

/// A progress handler: a bar when stderr is a terminal, a log line every `every` otherwise.
pub fn progress_handler(every: Duration) -> ProgressHandler {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Arc::new(move |e: &ProgressEvent| {
            if let ProgressEvent::Tick(s) = e {
                bar.set_length(s.chunks_total);
                bar.set_position(s.chunks_done);
                bar.set_message(format!(
                    "{} at {}/s, ETA {}",
                    human_bytes(s.bytes),
                    human_bytes(s.throughput as u64),
                    s.eta.map(|d| format!("{}s", d.as_secs())).unwrap_or_else(|| "?".into())
                ));
                if s.chunks_done == s.chunks_total {
                    bar.finish_and_clear();
                }
            }
        })
    } else {
        let last = Mutex::new(Instant::now());
        Arc::new(move |e: &ProgressEvent| match e {
            ProgressEvent::Tick(s) => {
                let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
                if l.elapsed() >= every {
                    *l = Instant::now();
                    tracing::info!(
                        chunks = format!("{}/{}", s.chunks_done, s.chunks_total),
                        bytes = %human_bytes(s.bytes),
                        rate = format!("{}/s", human_bytes(s.throughput as u64)),
                        eta_s = s.eta.map(|d| d.as_secs()),
                        "progress"
                    );
                }
            }
            ProgressEvent::ChunkRetry { chunk, attempt, error } => {
                tracing::warn!(chunk = %chunk.label(), attempt, %error, "retrying chunk");
            }
            _ => {}
        })
    }
}

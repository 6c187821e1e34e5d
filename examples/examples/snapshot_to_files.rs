//! The main job: a consistent, parallel, resumable snapshot of PostgreSQL into files.
//!
//! ```text
//! cargo run --release --example snapshot_to_files -- --source "host=... dbname=..." --out ./snap
//! ```
//!
//! Writes `<out>/manifest.json` plus one file per chunk under a directory per table (see the
//! README's "Manifest" section). Follows the examples' contract: progress and logs on stderr,
//! `--json` prints one JSON object on stdout, exit codes 0/1/2/3/4/5 (see `pgsnap_examples`).
//!
//! Which exit code, in this job:
//! - 0: every chunk of every table is done (also `--plan`, and `--resume` of a run that is
//!   already complete and whose files check out: that needs no snapshot).
//! - 1: the run finished but some tables failed (`status: "partial"`, or `"failed"` when no
//!   table completed); each failed table has an `error`. Fix the cause; `--resume` can finish
//!   them only while the snapshot outlives the run (an external one still held, or a
//!   permanent slot with `--allow-snapshot-change`), otherwise start a new run.
//! - 2: bad flags or values; `--out` not empty without `--resume`; `--resume` without a
//!   manifest, or with other `--split-by`, `--chunk-size`, `--include`, `--exclude`,
//!   `--compress` or format than the interrupted run; an unreadable manifest; `--out` in use
//!   by another running pgsnap (the file sink locks the directory).
//! - 3: cannot connect, or a preflight check failed (wal_level, privileges, no free slot,
//!   `--include` matching nothing, row-level security, a table lock not granted, ...).
//! - 4: the snapshot is lost or not importable: a bad `--snapshot`, or `--resume` after the
//!   process holding the run's snapshot ended (slot mode with a temporary slot, export mode,
//!   or an external snapshot whose holder ended), unless `--allow-snapshot-change` applies.
//! - 5: the output cannot be written: `--out` cannot be created or read (a path under a
//!   regular file, no permission, read-only file system), checked before any snapshot is
//!   taken; or a chunk file or the manifest cannot be written mid-run (disk full, ...).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pgsnap_core::{DataFormat, Manifest, ManifestStore, RunStatus, TableStatus};
use pgsnap_examples::run::{
    SnapshotArgs, drive, file_sink, open_run, outcome, previous_run, report_json, resume_hint,
    snapshot_summary,
};
use pgsnap_examples::*;
use pgsnap_sink_file::Compression;
use serde_json::json;

/// Consistent parallel snapshot of PostgreSQL to files.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    snap: SnapshotArgs,
    /// Output directory (created; must be empty unless --resume).
    #[arg(long)]
    out: PathBuf,
    /// Chunk file compression: none, zstd, gzip (zstd:LEVEL, gzip:LEVEL).
    #[arg(long, default_value = "none")]
    compress: Compression,
    /// Chunk file format: text (COPY text) or csv.
    #[arg(long, default_value = "text")]
    format: DataFormat,
    /// Continue an interrupted run in the same --out directory.
    #[arg(long)]
    resume: bool,
    /// Print the plan with estimates and copy nothing.
    #[arg(long)]
    plan: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    init_logging();
    let args = Args::parse();
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let store = ManifestStore::new(&args.out);
    // Refuse to mix runs: a non-empty --out needs --resume, and --resume needs a manifest.
    // An --out that cannot be read (a path under a regular file, no permission) is a sink
    // error (exit 5), found here before any snapshot is taken.
    let previous = previous_run(
        &store,
        "--out",
        args.resume,
        args.plan,
        &args.snap.plan_options(),
        args.format,
        args.compress.as_str(),
    )
    .await;

    // The output directory must be usable before a snapshot (or a slot) is taken for
    // nothing. --plan writes nothing, so it creates nothing either.
    let sink = if args.plan {
        None
    } else {
        Some(Arc::new(file_sink(&args.out, args.format, args.compress)))
    };

    // A finished run whose files all check out needs no snapshot: report it as it is, so a
    // script may rerun --resume safely after a success.
    if let (Some(m), Some(sink)) = (&previous, &sink)
        && m.status == RunStatus::Ok
        && all_chunks_intact(m, sink.as_ref()).await
    {
        tracing::info!("the run in {} is already complete", args.out.display());
        return report(&args, m, Duration::ZERO, None, Vec::new());
    }

    let opened =
        open_run(&args.snap, previous, args.plan, args.format, args.compress.as_str()).await;
    let Some(sink) = sink else {
        let _ = opened.source.close().await;
        print_plan(&opened.manifest, args.json);
        return EXIT_OK;
    };
    let source = Arc::clone(&opened.source);
    let outcome = drive(&args.snap, opened, sink, store).await;
    report(
        &args,
        &outcome.manifest,
        outcome.elapsed,
        outcome.fatal.as_ref(),
        source.warnings().to_vec(),
    )
}

/// Prints the report (one JSON object on stdout with --json, text on stderr otherwise) and
/// returns the exit code.
fn report(
    args: &Args,
    manifest: &Manifest,
    elapsed: Duration,
    fatal: Option<&pgsnap_core::Error>,
    mut warnings: Vec<String>,
) -> i32 {
    let (code, status) = outcome(manifest, fatal, true, &mut warnings);
    if args.json {
        let out = report_json(
            manifest,
            status,
            elapsed,
            fatal,
            &warnings,
            json!({ "out": args.out }),
            |_| json!({}),
        );
        println!("{out}");
    } else {
        eprintln!(
            "\n{status}: {} rows, {} in {:.1}s into {} ({})",
            manifest.rows(),
            human_bytes(manifest.bytes()),
            elapsed.as_secs_f64(),
            args.out.display(),
            snapshot_summary(&manifest.snapshot),
        );
        for t in &manifest.tables {
            eprintln!(
                "  {:<40} {:<7} {:>10} rows {:>10} {:>4}/{} chunks{}",
                t.schema.name.to_string(),
                t.status.as_str(),
                t.rows(),
                human_bytes(t.bytes()),
                t.chunks_done(),
                t.chunks.len(),
                t.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
            );
        }
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        if manifest.tables.iter().any(|t| t.status != TableStatus::Ok) {
            eprintln!("some tables are incomplete: {}", resume_hint(&manifest.snapshot));
        }
    }
    code
}

/// Whether every chunk of a finished run is still on disk as recorded.
async fn all_chunks_intact(m: &Manifest, sink: &dyn pgsnap_core::Sink) -> bool {
    for t in &m.tables {
        for c in &t.chunks {
            if !c.done || !matches!(sink.chunk_intact(&t.chunk(c), c).await, Ok(true)) {
                return false;
            }
        }
    }
    true
}

fn print_plan(m: &Manifest, json: bool) {
    if json {
        let tables: Vec<_> = m
            .tables
            .iter()
            .map(|t| {
                json!({
                    "schema": t.schema.name.schema,
                    "name": t.schema.name.name,
                    "kind": t.schema.kind,
                    "estimated_bytes": t.estimated_bytes,
                    "chunks": t.chunks.iter().map(|c| json!({
                        "id": c.id, "relation": c.relation, "range": c.range, "estimated_bytes": c.estimated_bytes,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", json!({ "status": "plan", "options": m.options, "tables": tables }));
        return;
    }
    let total: u64 = m.tables.iter().map(|t| t.estimated_bytes).sum();
    let chunks: usize = m.tables.iter().map(|t| t.chunks.len()).sum();
    eprintln!(
        "plan: {} tables, {chunks} chunks, about {} of source data (split by {})",
        m.tables.len(),
        human_bytes(total),
        m.options.split_by
    );
    for t in &m.tables {
        eprintln!(
            "  {:<40} {:>10} {:>5} chunks",
            t.schema.name.to_string(),
            human_bytes(t.estimated_bytes),
            t.chunks.len()
        );
        for c in &t.chunks {
            eprintln!(
                "      {} {} {} (~{})",
                c.id,
                c.relation,
                c.range,
                human_bytes(c.estimated_bytes)
            );
        }
    }
}

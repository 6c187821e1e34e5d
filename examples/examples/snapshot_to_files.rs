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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pgsnap_core::{
    CheckpointStore, Coordinator, CoordinatorOptions, DataFormat, Manifest, ManifestHeader,
    ManifestStore, PlanOptions, RunStatus, SnapshotMode, TableStatus,
};
use pgsnap_examples::*;
use pgsnap_sink_file::{Compression, FileSinkBuilder};
use pgsnap_source::{PgSourceBuilder, SplitBy, parse_size};
use serde_json::json;

/// Consistent parallel snapshot of PostgreSQL to files.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// libpq connection string or postgresql:// URL; unset parts come from PG* variables and ~/.pgpass.
    #[arg(long, default_value = "")]
    source: String,
    /// Output directory (created; must be empty unless --resume).
    #[arg(long)]
    out: PathBuf,
    /// Parallel jobs (worker connections), at least 1.
    #[arg(long, default_value_t = 4, value_parser = parse_jobs)]
    jobs: usize,
    /// Source bytes (heap plus TOAST estimate) per chunk: MB = 10^6, MiB = 2^20.
    #[arg(long, default_value = "64MB", value_parser = parse_size)]
    chunk_size: u64,
    /// How tables are split: auto (ctid on PostgreSQL 14+, else integer primary key), ctid, pk.
    #[arg(long, default_value = "auto")]
    split_by: SplitBy,
    /// Tables to copy (psql pattern rules); repeatable. Default: every table.
    #[arg(long)]
    include: Vec<String>,
    /// Tables to leave out (psql pattern rules); repeatable.
    #[arg(long)]
    exclude: Vec<String>,
    /// slot (logical replication slot with exported snapshot), export (pg_export_snapshot), external (--snapshot).
    #[arg(long, default_value = "slot")]
    snapshot_mode: SnapshotMode,
    /// The snapshot to import with --snapshot-mode external.
    #[arg(long)]
    snapshot: Option<String>,
    /// A permanent slot name for a CDC handoff (default: a temporary slot).
    #[arg(long)]
    slot: Option<String>,
    /// Create this publication for the selected tables (publish_via_partition_root = true).
    #[arg(long)]
    publication: Option<String>,
    /// Chunk file compression: none, zstd, gzip (zstd:LEVEL, gzip:LEVEL).
    #[arg(long, default_value = "none")]
    compress: Compression,
    /// Chunk file format: text (COPY text) or csv.
    #[arg(long, default_value = "text")]
    format: DataFormat,
    /// Continue an interrupted run in the same --out directory.
    #[arg(long)]
    resume: bool,
    /// On --resume in slot mode with a permanent slot: copy the remaining chunks under a new snapshot.
    #[arg(long)]
    allow_snapshot_change: bool,
    /// Print the plan with estimates and copy nothing.
    #[arg(long)]
    plan: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Limit the read rate (e.g. 50MB per second).
    #[arg(long, value_parser = parse_size)]
    throttle: Option<u64>,
    /// Attempts per chunk for transient failures.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// How long slot creation may wait behind older transactions, in seconds.
    #[arg(long, default_value_t = 300)]
    slot_timeout: u64,
    /// How long to wait for each table lock, in seconds.
    #[arg(long, default_value_t = 60)]
    lock_timeout: u64,
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of jobs: use a whole number of at least 1")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    init_logging();
    let args = Args::parse();
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let store = ManifestStore::new(&args.out);
    let options = PlanOptions {
        split_by: args.split_by.to_string(),
        chunk_size: args.chunk_size,
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    // Refuse to mix runs: a non-empty --out needs --resume, and --resume needs a manifest.
    // An --out that cannot be read (a path under a regular file, no permission) is a sink
    // error (exit 5), found here before any snapshot is taken.
    let previous = match store.load().await {
        Ok(m) => m,
        Err(e) => die(exit_code(&e), e),
    };
    if args.resume {
        let Some(m) = &previous else {
            die(
                EXIT_USAGE,
                format!(
                    "--resume: no {} found; start a new run without --resume",
                    store.path().display()
                ),
            )
        };
        if let Err(e) = m.check_resume(&options, args.format, args.compress.as_str()) {
            die(exit_code(&e), e);
        }
    } else if !args.plan && out_has_files(&args.out) {
        die(
            EXIT_USAGE,
            format!(
                "--out {} is not empty: pass --resume to continue the run there, or choose an empty directory",
                args.out.display()
            ),
        );
    }

    // The output directory must be usable before a snapshot (or a slot) is taken for
    // nothing. --plan writes nothing, so it creates nothing either.
    let sink = if args.plan {
        None
    } else {
        match FileSinkBuilder::new(&args.out)
            .with_format(args.format)
            .with_compression(args.compress)
            .build()
        {
            Ok(s) => {
                remove_stale_manifest_temp_files(&args.out);
                Some(Arc::new(s))
            }
            Err(e @ pgsnap_sink_file::Error::Io { .. }) => die(EXIT_SINK, e),
            Err(e) => die(EXIT_USAGE, e),
        }
    };

    // A finished run whose files all check out needs no snapshot: report it as it is, so a
    // script may rerun --resume safely after a success.
    if let (Some(m), Some(sink), true) = (&previous, &sink, args.resume)
        && m.status == RunStatus::Ok
        && all_chunks_intact(m, sink.as_ref()).await
    {
        tracing::info!("the run in {} is already complete", args.out.display());
        return report(&args, m, Duration::ZERO, None, Vec::new());
    }

    // Which snapshot to use.
    let (mode, external) = match (&previous, args.resume) {
        (Some(m), true) => match (m.snapshot.mode, args.snapshot_mode, &args.snapshot) {
            (_, SnapshotMode::External, Some(name)) => (SnapshotMode::External, Some(name.clone())),
            (SnapshotMode::External, _, _) => {
                (SnapshotMode::External, Some(m.snapshot.name.clone()))
            }
            (SnapshotMode::Slot, _, _)
                if args.allow_snapshot_change && m.snapshot.slot_temporary == Some(false) =>
            {
                tracing::warn!(
                    "resuming under a new snapshot: CDC replay from slot {:?} converges only for tables with a primary key",
                    m.snapshot.slot
                );
                (SnapshotMode::Export, None)
            }
            (mode, _, _) => die(
                EXIT_SNAPSHOT,
                format!(
                    "cannot resume: the run's {mode}-mode snapshot {:?} ended with the interrupted process.{} Start a new run in a new --out directory.",
                    m.snapshot.name,
                    if mode == SnapshotMode::Slot && m.snapshot.slot_temporary == Some(false) {
                        " Pass --allow-snapshot-change to copy the remaining chunks under a new snapshot (CDC replay from the permanent slot converges for primary-key tables)."
                    } else if args.allow_snapshot_change {
                        " --allow-snapshot-change needs a run in slot mode with a permanent --slot."
                    } else {
                        ""
                    }
                ),
            ),
        },
        // --plan copies nothing: never create a slot for it.
        _ if args.plan && args.snapshot_mode == SnapshotMode::Slot => (SnapshotMode::Export, None),
        _ => (args.snapshot_mode, args.snapshot.clone()),
    };
    let slot = if args.resume || args.plan { None } else { args.slot.clone() };
    let source = PgSourceBuilder::new(args.source.clone())
        .with_snapshot_mode(mode)
        .with_slot(slot)
        .with_external_snapshot(external)
        .with_publication(if args.resume || args.plan { None } else { args.publication.clone() })
        .with_include(args.include.clone())
        .with_exclude(args.exclude.clone())
        .with_slot_timeout(Duration::from_secs(args.slot_timeout))
        .with_lock_timeout(Duration::from_secs(args.lock_timeout))
        .open()
        .await;
    let source = match source {
        Ok(s) => Arc::new(s),
        Err(e) => die(source_exit_code(&e), pgsnap_core::error_chain(&e)),
    };
    for w in source.warnings() {
        tracing::warn!("{w}");
    }

    let mut chunk_snapshot = None;
    let manifest = match previous.filter(|_| args.resume) {
        Some(m) => {
            match pgsnap_source::check_resume(&m, &source, args.allow_snapshot_change) {
                Ok(cs) => chunk_snapshot = cs,
                Err(e) => {
                    let _ = source.close().await;
                    die(source_exit_code(&e), e)
                }
            }
            // A new snapshot is only sound while the permanent slot still holds the handoff.
            if let (Some(_), Some(slot)) = (&chunk_snapshot, &m.snapshot.slot) {
                match source.slot_exists(slot).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = source.close().await;
                        die(
                            EXIT_SNAPSHOT,
                            format!(
                                "cannot resume with a new snapshot: replication slot {slot:?} of the interrupted run no longer exists, so CDC cannot replay from its consistent point {}; start a new run",
                                m.snapshot.lsn.map(|l| l.to_string()).unwrap_or_default()
                            ),
                        )
                    }
                    Err(e) => {
                        let _ = source.close().await;
                        die(source_exit_code(&e), e)
                    }
                }
            }
            let selected: Vec<_> = source.tables().iter().map(|t| &t.schema.name).collect();
            if let Some(missing) = m.tables.iter().find(|t| !selected.contains(&&t.schema.name)) {
                let _ = source.close().await;
                die(
                    EXIT_PREFLIGHT,
                    format!(
                        "table {} of the interrupted run no longer exists or is no longer selected",
                        missing.schema.name
                    ),
                );
            }
            m
        }
        None => {
            let plans = match source.plan(args.split_by, args.chunk_size, args.jobs).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = source.close().await;
                    die(source_exit_code(&e), e)
                }
            };
            Manifest::new(
                ManifestHeader {
                    snapshot: source.snapshot_info().clone(),
                    source: source.source_info().clone(),
                    format: args.format,
                    compression: args.compress.as_str().to_owned(),
                    session: source.session().clone(),
                    options,
                },
                plans,
            )
        }
    };

    let Some(sink) = sink else {
        let _ = source.close().await;
        print_plan(&manifest, args.json);
        return EXIT_OK;
    };
    let coordinator = Coordinator::new(
        Arc::clone(&source) as Arc<dyn pgsnap_core::Source>,
        sink,
        Arc::new(store),
    )
    .with_options(
        CoordinatorOptions::default()
            .with_jobs(args.jobs)
            .with_max_attempts(args.max_attempts)
            .with_throttle(args.throttle)
            .with_chunk_snapshot(chunk_snapshot),
    )
    .with_progress(progress_handler(Duration::from_secs(5)));
    // Ctrl-C cancels cleanly: chunks in flight are not recorded, so --resume redoes them.
    let cancel = coordinator.cancellation_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupted: stopping; rerun with --resume to continue");
            cancel.cancel();
        }
    });
    // Watch what holding the snapshot costs.
    let monitor = {
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if let Ok(h) = source.health().await {
                    for w in h.warnings {
                        tracing::warn!("{w}");
                    }
                }
            }
        })
    };
    let outcome = coordinator.run(manifest).await;
    monitor.abort();
    if let Err(e) = source.close().await {
        tracing::warn!("closing the snapshot: {e}");
    }
    let outcome = match outcome {
        Ok(r) => r,
        Err(e) => die(exit_code(&e), e),
    };
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
    let code = match (fatal, manifest.status) {
        (Some(e), _) => exit_code(e),
        (None, RunStatus::Ok) => EXIT_OK,
        (None, _) => EXIT_PARTIAL,
    };
    let status = match (manifest.status, fatal) {
        (_, Some(_)) | (RunStatus::Failed, _) => "failed",
        (RunStatus::Ok, None) => "ok",
        _ => "partial",
    };
    if let Some(e) = fatal {
        warnings.push(format!("run stopped: {}", pgsnap_core::error_chain(e)));
    }
    if args.json {
        let tables: Vec<_> = manifest
            .tables
            .iter()
            .map(|t| {
                json!({
                    "schema": t.schema.name.schema,
                    "name": t.schema.name.name,
                    "status": t.status.as_str(),
                    "rows": t.rows(),
                    "bytes": t.bytes(),
                    "chunks": t.chunks.len(),
                    "chunks_done": t.chunks_done(),
                    "error": t.error,
                })
            })
            .collect();
        let out = json!({
            "status": status,
            "out": args.out,
            "snapshot": manifest.snapshot,
            "elapsed_s": elapsed.as_secs_f64(),
            "rows": manifest.rows(),
            "bytes": manifest.bytes(),
            "tables": tables,
            "error": fatal.map(|e| pgsnap_core::error_chain(e)),
            "warnings": warnings,
        });
        println!("{out}");
    } else {
        let s = &manifest.snapshot;
        eprintln!(
            "\n{status}: {} rows, {} in {:.1}s into {} (snapshot {} mode {}{}{})",
            manifest.rows(),
            human_bytes(manifest.bytes()),
            elapsed.as_secs_f64(),
            args.out.display(),
            s.name,
            s.mode,
            s.lsn.map(|l| format!(", handoff LSN {l}")).unwrap_or_default(),
            s.slot.as_ref().map(|sl| format!(", slot {sl}")).unwrap_or_default(),
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

/// What an incomplete run can do next: only a snapshot that outlives this process (an
/// external one whose holder is still open) or a permanent slot lets --resume continue.
fn resume_hint(s: &pgsnap_core::SnapshotInfo) -> &'static str {
    match (s.mode, s.slot_temporary) {
        (SnapshotMode::External, _) => {
            "fix the cause and rerun with --resume while the session holding the snapshot stays open"
        }
        (SnapshotMode::Slot, Some(false)) => {
            "fix the cause and rerun with --resume --allow-snapshot-change (the remaining chunks are copied under a new snapshot; CDC replay from the slot converges for primary-key tables)"
        }
        _ => {
            "the snapshot ended with this run, so --resume cannot finish them consistently: fix the cause and start a new run in a new --out directory"
        }
    }
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

/// Whether `out` holds anything besides a manifest temp file a killed run left behind.
fn out_has_files(out: &Path) -> bool {
    std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| !e.file_name().to_str().is_some_and(is_manifest_temp_file_name))
        })
        .unwrap_or(false)
}

/// `.manifest.json.tmp-<id>`: the temp name `ManifestStore` writes before its rename (`<id>`
/// is a UUID in hex; older builds used the process id).
fn is_manifest_temp_file_name(name: &str) -> bool {
    name.strip_prefix(".manifest.json.tmp-")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
}

/// Removes manifest temp files a killed run left in `out` (the sink cleans its own chunk
/// temp files in the table directories). Only one run may use an output directory at a time.
fn remove_stale_manifest_temp_files(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.filter_map(Result::ok) {
        if e.file_name().to_str().is_some_and(is_manifest_temp_file_name) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(path = %e.path().display(), "removed a manifest temp file left by an interrupted run")
                }
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a stale manifest temp file")
                }
            }
        }
    }
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

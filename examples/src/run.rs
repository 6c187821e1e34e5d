//! What every snapshot job shares: the snapshot and selection flags, choosing and opening
//! the snapshot (fresh or resumed), driving the coordinator, and the resume rules.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::{
    CheckpointStore, ChunkSnapshot, Coordinator, CoordinatorOptions, DataFormat, Manifest,
    ManifestHeader, ManifestStore, PlanOptions, RunReport, Sink, SnapshotInfo, SnapshotMode,
};
use pgsnap_source::{PgSource, PgSourceBuilder, SplitBy, parse_size};

use crate::{
    EXIT_PREFLIGHT, EXIT_SNAPSHOT, EXIT_USAGE, die, exit_code, progress_handler, source_exit_code,
};

/// The snapshot, selection and tuning flags shared by the snapshot jobs.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// libpq connection string or postgresql:// URL; unset parts come from PG* variables and ~/.pgpass.
    #[arg(long, default_value = "")]
    pub source: String,
    /// Parallel jobs (worker connections), at least 1.
    #[arg(long, default_value_t = 4, value_parser = parse_jobs)]
    pub jobs: usize,
    /// Source bytes (heap plus TOAST estimate) per chunk: MB = 10^6, MiB = 2^20.
    #[arg(long, default_value = "64MB", value_parser = parse_size)]
    pub chunk_size: u64,
    /// How tables are split: auto (ctid on PostgreSQL 14+, else integer primary key), ctid, pk.
    #[arg(long, default_value = "auto")]
    pub split_by: SplitBy,
    /// Tables to copy (psql pattern rules); repeatable. Default: every table.
    #[arg(long)]
    pub include: Vec<String>,
    /// Tables to leave out (psql pattern rules); repeatable.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// slot (logical replication slot with exported snapshot), export (pg_export_snapshot), external (--snapshot).
    #[arg(long, default_value = "slot")]
    pub snapshot_mode: SnapshotMode,
    /// The snapshot to import with --snapshot-mode external.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// A permanent slot name for a CDC handoff (default: a temporary slot).
    #[arg(long)]
    pub slot: Option<String>,
    /// Create this publication for the selected tables (publish_via_partition_root = true).
    #[arg(long)]
    pub publication: Option<String>,
    /// On --resume in slot mode with a permanent slot: copy the remaining chunks under a new snapshot.
    #[arg(long)]
    pub allow_snapshot_change: bool,
    /// Limit the read rate (e.g. 50MB per second).
    #[arg(long, value_parser = parse_size)]
    pub throttle: Option<u64>,
    /// Attempts per chunk for transient failures.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// How long slot creation may wait behind older transactions, in seconds.
    #[arg(long, default_value_t = 300)]
    pub slot_timeout: u64,
    /// How long to wait for each table lock, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of jobs: use a whole number of at least 1")),
    }
}

impl SnapshotArgs {
    /// The options that shape the plan (a resume must use the same).
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            split_by: self.split_by.to_string(),
            chunk_size: self.chunk_size,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

/// An opened snapshot and the manifest to run: fresh (planned now) or the interrupted run's.
#[derive(Debug)]
pub struct OpenedRun {
    /// The source, holding the snapshot.
    pub source: Arc<PgSource>,
    /// The manifest to run.
    pub manifest: Manifest,
    /// Set when a resume copies the remaining chunks under a new snapshot.
    pub chunk_snapshot: Option<ChunkSnapshot>,
}

/// Chooses the snapshot (the run's own on resume, see the resume rules in the examples'
/// docs), opens the source and plans a fresh run, or checks that the interrupted run's
/// tables are still there. Exits with the documented code on any failure.
///
/// `plan_only` never creates a slot or publication.
pub async fn open_run(
    args: &SnapshotArgs,
    previous: Option<Manifest>,
    plan_only: bool,
    format: DataFormat,
    compression: &str,
) -> OpenedRun {
    let resume = previous.is_some();
    let (mode, external) = match &previous {
        Some(m) => match (m.snapshot.mode, args.snapshot_mode, &args.snapshot) {
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
                    "cannot resume: the run's {mode}-mode snapshot {:?} ended with the interrupted process.{} Start a new run.",
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
        None if plan_only && args.snapshot_mode == SnapshotMode::Slot => {
            (SnapshotMode::Export, None)
        }
        None => (args.snapshot_mode, args.snapshot.clone()),
    };
    let fresh = !resume && !plan_only;
    let source = PgSourceBuilder::new(args.source.clone())
        .with_snapshot_mode(mode)
        .with_slot(if fresh { args.slot.clone() } else { None })
        .with_external_snapshot(external)
        .with_publication(if fresh { args.publication.clone() } else { None })
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
    let manifest = match previous {
        Some(m) => {
            match pgsnap_source::check_resume(&m, &source, args.allow_snapshot_change) {
                Ok(cs) => chunk_snapshot = cs,
                Err(e) => close_and_die(&source, source_exit_code(&e), e).await,
            }
            // A new snapshot is only sound while the permanent slot still holds the handoff.
            if let (Some(_), Some(slot)) = (&chunk_snapshot, &m.snapshot.slot) {
                match source.slot_exists(slot).await {
                    Ok(true) => {}
                    Ok(false) => {
                        close_and_die(
                            &source,
                            EXIT_SNAPSHOT,
                            format!(
                                "cannot resume with a new snapshot: replication slot {slot:?} of the interrupted run no longer exists, so CDC cannot replay from its consistent point {}; start a new run",
                                m.snapshot.lsn.map(|l| l.to_string()).unwrap_or_default()
                            ),
                        )
                        .await
                    }
                    Err(e) => close_and_die(&source, source_exit_code(&e), e).await,
                }
            }
            let selected: Vec<_> = source.tables().iter().map(|t| &t.schema.name).collect();
            if let Some(missing) = m.tables.iter().find(|t| !selected.contains(&&t.schema.name)) {
                close_and_die(
                    &source,
                    EXIT_PREFLIGHT,
                    format!(
                        "table {} of the interrupted run no longer exists or is no longer selected",
                        missing.schema.name
                    ),
                )
                .await;
            }
            m
        }
        None => {
            let plans = match source.plan(args.split_by, args.chunk_size, args.jobs).await {
                Ok(p) => p,
                Err(e) => close_and_die(&source, source_exit_code(&e), e).await,
            };
            Manifest::new(
                ManifestHeader {
                    snapshot: source.snapshot_info().clone(),
                    source: source.source_info().clone(),
                    format,
                    compression: compression.to_owned(),
                    session: source.session().clone(),
                    options: args.plan_options(),
                },
                plans,
            )
        }
    };
    OpenedRun { source, manifest, chunk_snapshot }
}

/// Closes the snapshot (dropping a temporary slot) and exits with `code`.
pub async fn close_and_die(source: &PgSource, code: i32, msg: impl std::fmt::Display) -> ! {
    if let Err(e) = source.close().await {
        tracing::warn!("closing the snapshot: {e}");
    }
    die(code, msg)
}

/// Runs the coordinator over `run` into `sink`, with Ctrl-C cancelling cleanly and the cost
/// of holding the snapshot watched; closes the snapshot at the end. Exits with the
/// documented code when the run cannot start.
pub async fn drive(
    args: &SnapshotArgs,
    run: OpenedRun,
    sink: Arc<dyn Sink>,
    store: ManifestStore,
) -> RunReport {
    let OpenedRun { source, manifest, chunk_snapshot } = run;
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
    match outcome {
        Ok(r) => r,
        Err(e) => die(exit_code(&e), e),
    }
}

/// What an incomplete run can do next: only a snapshot that outlives this process (an
/// external one whose holder is still open) or a permanent slot lets --resume continue.
pub fn resume_hint(s: &SnapshotInfo) -> &'static str {
    match (s.mode, s.slot_temporary) {
        (SnapshotMode::External, _) => {
            "fix the cause and rerun with --resume while the session holding the snapshot stays open"
        }
        (SnapshotMode::Slot, Some(false)) => {
            "fix the cause and rerun with --resume --allow-snapshot-change (the remaining chunks are copied under a new snapshot; CDC replay from the slot converges for primary-key tables)"
        }
        _ => {
            "the snapshot ended with this run, so --resume cannot finish them consistently: fix the cause and start a new run"
        }
    }
}

/// Loads the manifest in `dir` and applies the rules shared by the jobs: without `--resume`
/// the directory must hold nothing (but a stale manifest temp file), with it a manifest made
/// with the same options must exist. Returns the manifest to resume, if any. Exits with the
/// documented code otherwise.
pub async fn previous_run(
    store: &ManifestStore,
    flag: &str,
    resume: bool,
    plan_only: bool,
    options: &PlanOptions,
    format: DataFormat,
    compression: &str,
) -> Option<Manifest> {
    let previous = match store.load().await {
        Ok(m) => m,
        Err(e) => die(exit_code(&e), e),
    };
    if resume {
        let Some(m) = &previous else {
            die(
                EXIT_USAGE,
                format!(
                    "--resume: no {} found; start a new run without --resume",
                    store.path().display()
                ),
            )
        };
        if let Err(e) = m.check_resume(options, format, compression) {
            die(exit_code(&e), e);
        }
        previous
    } else {
        let manifest_path = store.path();
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        if !plan_only && dir_has_files(dir) {
            die(
                EXIT_USAGE,
                format!(
                    "{flag} {} is not empty: pass --resume to continue the run there, or choose an empty directory",
                    dir.display()
                ),
            );
        }
        None
    }
}

/// Whether `dir` holds anything besides a manifest temp file a killed run left behind.
pub fn dir_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
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

/// Removes manifest temp files a killed run left in `dir`. Only one run may use a directory
/// at a time (the caller holds its lock).
pub fn remove_stale_manifest_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
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

/// The `--json` report fields every snapshot job prints; a job adds its own with
/// `extra` (e.g. `out`, or `state` and `database`) and per table with `table_extra`.
pub fn report_json(
    manifest: &Manifest,
    status: &str,
    elapsed: Duration,
    fatal: Option<&pgsnap_core::Error>,
    warnings: &[String],
    extra: serde_json::Value,
    table_extra: impl Fn(&pgsnap_core::ManifestTable) -> serde_json::Value,
) -> serde_json::Value {
    let tables: Vec<_> = manifest
        .tables
        .iter()
        .map(|t| {
            let mut v = serde_json::json!({
                "schema": t.schema.name.schema,
                "name": t.schema.name.name,
                "status": t.status.as_str(),
                "rows": t.rows(),
                "bytes": t.bytes(),
                "chunks": t.chunks.len(),
                "chunks_done": t.chunks_done(),
                "error": t.error,
            });
            merge(&mut v, table_extra(t));
            v
        })
        .collect();
    let mut out = serde_json::json!({ "status": status });
    merge(&mut out, extra);
    merge(
        &mut out,
        serde_json::json!({
            "snapshot": manifest.snapshot,
            "elapsed_s": elapsed.as_secs_f64(),
            "rows": manifest.rows(),
            "bytes": manifest.bytes(),
            "tables": tables,
            "error": fatal.map(|e| pgsnap_core::error_chain(e)),
            "warnings": warnings,
        }),
    );
    out
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// `snapshot <name> mode <mode>[, handoff LSN <lsn>][, slot <slot>]`, for text reports.
pub fn snapshot_summary(s: &SnapshotInfo) -> String {
    format!(
        "snapshot {} mode {}{}{}",
        s.name,
        s.mode,
        s.lsn.map(|l| format!(", handoff LSN {l}")).unwrap_or_default(),
        s.slot.as_ref().map(|sl| format!(", slot {sl}")).unwrap_or_default(),
    )
}

/// The exit code and report status of a finished run: `complete` is whether the job's own
/// checks passed too (every table verified); a fatal error decides the code.
pub fn outcome(
    manifest: &Manifest,
    fatal: Option<&pgsnap_core::Error>,
    complete: bool,
    warnings: &mut Vec<String>,
) -> (i32, &'static str) {
    let ok = manifest.status == pgsnap_core::RunStatus::Ok && complete;
    let code = match fatal {
        Some(e) => exit_code(e),
        None if ok => crate::EXIT_OK,
        None => crate::EXIT_PARTIAL,
    };
    let status = match (manifest.status, fatal) {
        (_, Some(_)) | (pgsnap_core::RunStatus::Failed, _) => "failed",
        _ if ok => "ok",
        _ => "partial",
    };
    if let Some(e) = fatal {
        warnings.push(format!("run stopped: {}", pgsnap_core::error_chain(e)));
    }
    (code, status)
}

/// The file sink writing into `out` (with stale manifest temp files removed), built before
/// any snapshot (or slot) is taken. Exits 5 when `out` cannot be used, 2 on bad options.
pub fn file_sink(
    out: &Path,
    format: DataFormat,
    compress: pgsnap_sink_file::Compression,
) -> pgsnap_sink_file::FileSink {
    match pgsnap_sink_file::FileSinkBuilder::new(out)
        .with_format(format)
        .with_compression(compress)
        .build()
    {
        Ok(s) => {
            remove_stale_manifest_temp_files(out);
            s
        }
        Err(e @ pgsnap_sink_file::Error::Io { .. }) => die(crate::EXIT_SINK, e),
        Err(e) => die(EXIT_USAGE, e),
    }
}

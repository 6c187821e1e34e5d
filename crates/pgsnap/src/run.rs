//! The steps every snapshot job shares: the resume rules, choosing and opening the snapshot
//! (fresh or the interrupted run's), driving the coordinator with the snapshot's health
//! watched, and the state directory.
//!
//! # Resume rules
//! - A new run needs a directory without another run's files (a manifest temp file a killed
//!   run left is not counted); a resume needs the run's manifest there, made with the same
//!   plan options, format, compression and sink identity.
//! - A resume continues under the run's own snapshot: an external one (still held by its
//!   session, or another name given explicitly), or, with
//!   [`SnapshotOptions::allow_snapshot_change`], a new snapshot when the run used a
//!   permanent slot that still exists (CDC replay from the slot's consistent point converges
//!   for primary-key tables). Any other snapshot ended with the interrupted process.
//! - Every table of the interrupted run must still be selected.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::{
    CheckpointStore, ChunkSnapshot, Coordinator, CoordinatorOptions, DataFormat, Manifest,
    ManifestHeader, ManifestStore, RunReport, Sink, SnapshotMode,
};
use pgsnap_source::{PgSource, PgSourceBuilder};

use crate::error::{JobError, Result, ResumeRefusal};
use crate::options::{RunControl, SnapshotOptions};

/// An opened snapshot and the manifest to run: fresh (planned now) or the interrupted run's.
#[derive(Debug)]
pub(crate) struct OpenedRun {
    /// The source, holding the snapshot.
    pub(crate) source: Arc<PgSource>,
    /// The manifest to run.
    pub(crate) manifest: Manifest,
    /// Set when a resume copies the remaining chunks under a new snapshot.
    pub(crate) chunk_snapshot: Option<ChunkSnapshot>,
    /// Whether this continues an interrupted run.
    pub(crate) resume: bool,
}

/// What the manifest records besides the plan options: the chunk format, the compression
/// word and the sink's identity.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) format: DataFormat,
    pub(crate) compression: String,
    pub(crate) sink: Option<String>,
}

/// Loads the manifest in `store`'s directory and applies the rules for new runs and resumes
/// (see the module docs). Returns the manifest to resume, if any.
pub(crate) async fn previous_run(
    store: &ManifestStore,
    resume: bool,
    plan_only: bool,
    options: &SnapshotOptions,
    layout: &Layout,
) -> Result<Option<Manifest>> {
    let previous = store.load().await?;
    if resume {
        let Some(m) = &previous else {
            return Err(JobError::NothingToResume { manifest: store.path().to_path_buf() });
        };
        m.check_resume(
            &options.plan_options(),
            layout.format,
            &layout.compression,
            layout.sink.as_deref(),
        )?;
        Ok(previous)
    } else {
        let manifest_path = store.path();
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        if !plan_only && dir_has_files(dir) {
            return Err(JobError::DirectoryNotEmpty { dir: dir.to_path_buf() });
        }
        Ok(None)
    }
}

/// [`open_run`], given up when `control` is cancelled (slot creation may wait long behind
/// older transactions). A permanent slot whose creation had completed when the opening was
/// given up stays: the warning names it.
pub(crate) async fn open_run_cancellable(
    options: &SnapshotOptions,
    previous: Option<Manifest>,
    plan_only: bool,
    layout: &Layout,
    control: &RunControl,
) -> Result<OpenedRun> {
    let fresh_slot = (previous.is_none() && !plan_only).then_some(options.slot.as_ref()).flatten();
    let opened = control.guard(Box::pin(open_run(options, previous, plan_only, layout))).await;
    if let (Err(JobError::Cancelled), Some(slot)) = (&opened, fresh_slot) {
        tracing::warn!(
            slot,
            "cancelled while opening the snapshot: if the permanent slot was created, drop it (pgsnap drop-slot) unless something uses it"
        );
    }
    opened
}

/// Chooses the snapshot (the run's own on resume, see the module docs), opens the source
/// and plans a fresh run, or checks that the interrupted run's tables are still there.
/// `plan_only` never creates a slot or publication. On error nothing is left open.
pub(crate) async fn open_run(
    options: &SnapshotOptions,
    previous: Option<Manifest>,
    plan_only: bool,
    layout: &Layout,
) -> Result<OpenedRun> {
    let resume = previous.is_some();
    if !resume {
        options.validate().map_err(JobError::Config)?;
    }
    let (mode, external) = match &previous {
        Some(m) => match (m.snapshot.mode, options.snapshot_mode, &options.external_snapshot) {
            (_, SnapshotMode::External, Some(name)) => (SnapshotMode::External, Some(name.clone())),
            (SnapshotMode::External, _, _) => {
                (SnapshotMode::External, Some(m.snapshot.name.clone()))
            }
            (SnapshotMode::Slot, _, _)
                if options.allow_snapshot_change && m.snapshot.slot_temporary == Some(false) =>
            {
                tracing::warn!(
                    "resuming under a new snapshot: CDC replay from slot {:?} converges only for tables with a primary key",
                    m.snapshot.slot
                );
                (SnapshotMode::Export, None)
            }
            (mode, _, _) => {
                let permanent_slot =
                    mode == SnapshotMode::Slot && m.snapshot.slot_temporary == Some(false);
                return Err(JobError::CannotResume(ResumeRefusal::SnapshotEnded {
                    mode,
                    snapshot: m.snapshot.name.clone(),
                    permanent_slot,
                    change_refused: !permanent_slot && options.allow_snapshot_change,
                }));
            }
        },
        // A plan copies nothing: never create a slot for it.
        None if plan_only && options.snapshot_mode == SnapshotMode::Slot => {
            (SnapshotMode::Export, None)
        }
        None => (options.snapshot_mode, options.external_snapshot.clone()),
    };
    let fresh = !resume && !plan_only;
    let source = PgSourceBuilder::new(options.connection.clone())
        .with_snapshot_mode(mode)
        .with_slot(if fresh { options.slot.clone() } else { None })
        .with_external_snapshot(external)
        .with_publication(if fresh { options.publication.clone() } else { None })
        .with_include(options.include.clone())
        .with_exclude(options.exclude.clone())
        .with_slot_timeout(options.slot_timeout)
        .with_lock_timeout(options.lock_timeout)
        .open()
        .await?;
    let source = Arc::new(source);
    for w in source.warnings() {
        tracing::warn!("{w}");
    }
    let checked = match previous {
        Some(m) => check_previous(options, &source, m).await,
        None => match source.plan(options.split_by, options.chunk_size, options.jobs).await {
            Ok(plans) => Ok((
                Manifest::new(
                    ManifestHeader {
                        snapshot: source.snapshot_info().clone(),
                        source: source.source_info().clone(),
                        format: layout.format,
                        compression: layout.compression.clone(),
                        sink: layout.sink.clone(),
                        session: source.session().clone(),
                        options: options.plan_options(),
                    },
                    plans,
                ),
                None,
            )),
            Err(e) => Err(e.into()),
        },
    };
    match checked {
        Ok((manifest, chunk_snapshot)) => {
            Ok(OpenedRun { source, manifest, chunk_snapshot, resume })
        }
        Err(e) => {
            close(&source).await;
            Err(e)
        }
    }
}

/// The resume checks that need the open source: the snapshot's identity, the slot of a
/// snapshot change, the tables.
async fn check_previous(
    options: &SnapshotOptions,
    source: &PgSource,
    m: Manifest,
) -> Result<(Manifest, Option<ChunkSnapshot>)> {
    let chunk_snapshot = pgsnap_source::check_resume(&m, source, options.allow_snapshot_change)?;
    // A new snapshot is only sound while the permanent slot still holds the handoff.
    if let (Some(_), Some(slot)) = (&chunk_snapshot, &m.snapshot.slot)
        && !source.slot_exists(slot).await?
    {
        return Err(JobError::CannotResume(ResumeRefusal::SlotGone {
            slot: slot.clone(),
            consistent_point: m.snapshot.lsn,
        }));
    }
    let selected: Vec<_> = source.tables().iter().map(|t| &t.schema.name).collect();
    if let Some(missing) = m.tables.iter().find(|t| !selected.contains(&&t.schema.name)) {
        return Err(JobError::CannotResume(ResumeRefusal::TableGone {
            table: missing.schema.name.clone(),
        }));
    }
    Ok((m, chunk_snapshot))
}

/// Closes the snapshot (dropping a temporary slot), logging a failure.
pub(crate) async fn close(source: &PgSource) {
    if let Err(e) = source.close().await {
        tracing::warn!("closing the snapshot: {e}");
    }
}

/// Gives up before anything was copied: closes the snapshot and, when this run created a
/// permanent slot (a fresh run with a slot), drops it and its publication, so a failed
/// preflight leaves no slot holding WAL.
pub(crate) async fn abandon(options: &SnapshotOptions, opened: &OpenedRun) {
    close(&opened.source).await;
    if let (false, Some(slot)) = (opened.resume, &options.slot) {
        match pgsnap_source::drop_slot(
            options.connection.clone(),
            slot,
            options.publication.as_deref(),
        )
        .await
        {
            Ok(()) => tracing::info!(slot, "dropped the slot this run created"),
            Err(e) => tracing::warn!(slot, "cannot drop the slot this run created: {e}"),
        }
    }
}

/// Runs the coordinator over `run` into `sink` (which the coordinator prepares first),
/// cancelled by `control`'s token, with the cost of holding the snapshot watched; closes
/// the snapshot at the end. `Err` when the run could not start (the sink's preparation
/// failed, the manifest could not be saved): the caller decides what to clean up, the
/// snapshot is still open then.
pub(crate) async fn drive(
    options: &SnapshotOptions,
    control: &RunControl,
    run: &OpenedRun,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
) -> Result<RunReport> {
    #[cfg(feature = "metrics")]
    let (store, _metrics_monitor) = match &control.metrics {
        Some(m) => {
            m.start_run(&run.manifest);
            let store: Arc<dyn CheckpointStore> =
                Arc::new(crate::metrics::ObservedStore { inner: store, metrics: m.clone() });
            (store, Some(AbortOnDrop(metrics_monitor(run, m.clone()))))
        }
        None => (store, None),
    };
    let coordinator =
        Coordinator::new(Arc::clone(&run.source) as Arc<dyn pgsnap_core::Source>, sink, store)
            .with_options(
                CoordinatorOptions::default()
                    .with_jobs(options.jobs)
                    .with_max_attempts(options.max_attempts)
                    .with_throttle(options.throttle)
                    .with_chunk_snapshot(run.chunk_snapshot.clone())
                    .with_resume(run.resume),
            )
            .with_cancellation_token(control.cancellation_token());
    let coordinator = match progress_handler(control) {
        Some(p) => coordinator.with_progress(p),
        None => coordinator,
    };
    // Watch what holding the snapshot costs.
    let every = control.health_interval.unwrap_or(Duration::from_secs(30));
    let monitor = {
        let source = Arc::clone(&run.source);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Ok(h) = source.health().await {
                    for w in h.warnings {
                        tracing::warn!("{w}");
                    }
                }
            }
        })
    };
    let outcome = coordinator.run(run.manifest.clone()).await;
    monitor.abort();
    #[cfg(feature = "metrics")]
    if let Some(m) = &control.metrics {
        m.set_run_state(match &outcome {
            Ok(r) => match (&r.fatal, r.status) {
                (Some(e), _) if e.kind() == pgsnap_core::ErrorKind::Cancelled => "cancelled",
                (Some(_), _) | (None, pgsnap_core::RunStatus::Failed) => "failed",
                (None, pgsnap_core::RunStatus::Ok) => "complete",
                (None, _) => "partial",
            },
            Err(_) => "failed",
        });
    }
    if outcome.is_ok() {
        close(&run.source).await;
    }
    Ok(outcome?)
}

/// The caller's progress handler, with the metrics' updates in front of it when the run has
/// metrics.
fn progress_handler(control: &RunControl) -> Option<pgsnap_core::ProgressHandler> {
    #[cfg(feature = "metrics")]
    if let Some(m) = control.metrics.clone() {
        let user = control.progress.clone();
        return Some(Arc::new(move |e: &pgsnap_core::ProgressEvent| {
            m.observe_event(e);
            if let Some(p) = &user {
                p(e);
            }
        }));
    }
    control.progress.clone()
}

/// Aborts a task when dropped.
#[cfg(feature = "metrics")]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

#[cfg(feature = "metrics")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the metrics' snapshot health (xmin age, slot lag) is read during a run.
#[cfg(feature = "metrics")]
const METRICS_HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Reads the snapshot's xmin age and its slot's lag behind the current WAL into `metrics`
/// while the run lasts (on the snapshot's own connection: no connection more).
#[cfg(feature = "metrics")]
fn metrics_monitor(
    run: &OpenedRun,
    metrics: crate::metrics::Metrics,
) -> tokio::task::JoinHandle<()> {
    let source = Arc::clone(&run.source);
    let slot = run.manifest.snapshot.slot.clone();
    tokio::spawn(async move {
        loop {
            if let Ok(h) = source.health().await {
                if let Some(age) = h.xmin_age {
                    metrics.observe_xmin_age(age);
                }
                if let (Some(slot), Some(lag)) = (&slot, h.slot_lag_bytes) {
                    metrics.observe_slot_lag(slot, u64::try_from(lag).unwrap_or(0));
                }
            }
            tokio::time::sleep(METRICS_HEALTH_INTERVAL).await;
        }
    })
}

/// Whether `dir` holds anything besides a manifest temp file a killed run left behind.
pub(crate) fn dir_has_files(dir: &Path) -> bool {
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
pub(crate) fn remove_stale_manifest_temp_files(dir: &Path) {
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

/// Creates the state directory `dir` and locks it for the whole run (one run per state
/// directory). Keep the returned file open while the run lasts.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let failed = |source| JobError::Directory { dir: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let f = File::open(dir).map_err(failed)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(JobError::DirectoryInUse { dir: dir.to_path_buf() })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

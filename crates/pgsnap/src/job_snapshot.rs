//! The snapshot job with any [`Sink`](pgsnap_core::Sink).

use std::path::PathBuf;
use std::sync::Arc;

use pgsnap_core::{ManifestStore, Sink};

use crate::error::Result;
use crate::options::{RunControl, SnapshotOptions};
use crate::report::RunSummary;
use crate::run::{self, Layout};

/// The snapshot job with any [`Sink`]: the state (the manifest) kept in `state`, the resume
/// rules of the files job, the sink prepared by the coordinator before any chunk.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), pgsnap::JobError> {
/// use std::sync::Arc;
/// use pgsnap::core::MemorySink;
/// use pgsnap::{Connection, RunControl, SnapshotJob, SnapshotOptions};
///
/// let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"));
/// let sink = Arc::new(MemorySink::new());
/// let run = SnapshotJob::new(options, "/var/lib/pgsnap/run1").run(sink, &RunControl::new()).await?;
/// println!("{} rows", run.manifest.rows());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotJob {
    options: SnapshotOptions,
    state: PathBuf,
    resume: bool,
}

impl SnapshotJob {
    /// A new run keeping its manifest in `state`.
    pub fn new(options: SnapshotOptions, state: impl Into<PathBuf>) -> Self {
        Self { options, state: state.into(), resume: false }
    }

    /// Continues the interrupted run recorded in `state`.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Runs the snapshot into `sink`. The state directory is locked for the run.
    ///
    /// # Errors
    /// As the files job's `run`; the sink's preparation failing (nothing is copied; a permanent
    /// slot this run created is dropped).
    pub async fn run(&self, sink: Arc<dyn Sink>, control: &RunControl) -> Result<RunSummary> {
        if !self.resume {
            self.options.validate().map_err(crate::JobError::Config)?;
        }
        let _metrics = control.serve_metrics().await?;
        let _lock = run::lock_dir(&self.state)?;
        let description = sink.description();
        let layout = Layout {
            format: description.input_format,
            compression: description.compression.clone(),
            sink: sink.identity(),
        };
        let store = ManifestStore::new(&self.state);
        let previous =
            run::previous_run(&store, self.resume, false, &self.options, &layout).await?;
        run::remove_stale_manifest_temp_files(&self.state);
        let opened =
            run::open_run_cancellable(&self.options, previous, false, &layout, control).await?;
        let report = match run::drive(&self.options, control, &opened, sink, Arc::new(store)).await
        {
            Ok(r) => r,
            Err(e) => {
                run::abandon(&self.options, &opened).await;
                return Err(e);
            }
        };
        Ok(RunSummary::new(
            report.manifest,
            report.elapsed,
            report.fatal,
            opened.source.warnings().to_vec(),
            true,
        )
        .with_metrics_addr(control.metrics_addr()))
    }
}

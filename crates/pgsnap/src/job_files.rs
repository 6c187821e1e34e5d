//! The files job: a consistent, parallel, resumable snapshot into a directory of chunk files
//! plus `manifest.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgsnap_core::{DataFormat, Manifest, ManifestStore, RunStatus, Sink};
use pgsnap_sink_file::{Compression, FileSinkBuilder};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::options::{RunControl, SnapshotOptions};
use crate::report::{REPORT_VERSION, RunSummary};
use crate::run::{self, Layout};

/// A snapshot into chunk files: `<out>/manifest.json` plus one file per chunk under a
/// directory per table (COPY text or CSV, optionally zstd or gzip), resumable after a crash.
///
/// A new run needs an empty (or missing) `out`; [`with_resume`](Self::with_resume)
/// continues the run recorded there (see the resume rules of [`SnapshotOptions`]). A resumed
/// run that is already complete, with every chunk file intact, needs no snapshot: it is
/// reported as it is.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), pgsnap::JobError> {
/// use pgsnap::{Connection, FilesJob, Outcome, RunControl, SnapshotOptions};
///
/// let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"));
/// let report = FilesJob::new(options, "/data/snap").run(&RunControl::new()).await?;
/// assert_eq!(report.run.outcome(), Outcome::Complete);
/// println!("{}", serde_json::to_string(&report).unwrap());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FilesJob {
    options: SnapshotOptions,
    out: PathBuf,
    format: DataFormat,
    compression: Compression,
    resume: bool,
}

impl FilesJob {
    /// A job writing into `out`: COPY text, uncompressed, a new run.
    pub fn new(options: SnapshotOptions, out: impl Into<PathBuf>) -> Self {
        Self {
            options,
            out: out.into(),
            format: DataFormat::Text,
            compression: Compression::None,
            resume: false,
        }
    }

    /// The chunk file format. Default COPY text.
    pub fn with_format(mut self, format: DataFormat) -> Self {
        self.format = format;
        self
    }

    /// The chunk file compression. Default none.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Continues the interrupted run recorded in `out`.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// The output directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    fn layout(&self) -> Layout {
        Layout {
            format: self.format,
            compression: self.compression.as_str().to_owned(),
            sink: None,
        }
    }

    /// Plans the run and copies nothing (no slot or publication is created).
    ///
    /// # Errors
    /// As [`run`](Self::run), before any copy.
    pub async fn plan(&self) -> Result<Plan> {
        let layout = self.layout();
        let opened = run::open_run(&self.options, None, true, &layout).await?;
        run::close(&opened.source).await;
        Ok(Plan { manifest: opened.manifest })
    }

    /// Runs (or resumes) the snapshot to its end, cancelled by `control`.
    ///
    /// # Errors
    /// Before the run: [`JobError::DirectoryNotEmpty`](crate::JobError::DirectoryNotEmpty)
    /// for a new run into a used directory, [`JobError::NothingToResume`](crate::JobError::NothingToResume),
    /// a resume with other options ([`pgsnap_core::ErrorKind::ResumeMismatch`]), the directory in
    /// use or not writable, connection and preflight failures, a snapshot that cannot be
    /// resumed. Failures during the run are in the report (tables, [`RunSummary::fatal`]).
    pub async fn run(&self, control: &RunControl) -> Result<FilesReport> {
        if !self.resume {
            self.options.validate().map_err(crate::JobError::Config)?;
        }
        let _metrics = control.serve_metrics().await?;
        let layout = self.layout();
        let store = ManifestStore::new(&self.out);
        let previous =
            run::previous_run(&store, self.resume, false, &self.options, &layout).await?;
        // The output directory must be usable before a snapshot (or a slot) is taken.
        let sink = FileSinkBuilder::new(&self.out)
            .with_format(self.format)
            .with_compression(self.compression)
            .build()?;
        run::remove_stale_manifest_temp_files(&self.out);
        // A finished run whose files all check out needs no snapshot.
        if let Some(m) = &previous
            && m.status == RunStatus::Ok
            && all_chunks_intact(m, &sink).await
        {
            tracing::info!("the run in {} is already complete", self.out.display());
            return Ok(FilesReport {
                run: RunSummary::new(m.clone(), Duration::ZERO, None, Vec::new(), true)
                    .with_metrics_addr(control.metrics_addr()),
                out: self.out.clone(),
            });
        }
        let opened =
            run::open_run_cancellable(&self.options, previous, false, &layout, control).await?;
        let report = match run::drive(
            &self.options,
            control,
            &opened,
            Arc::new(sink),
            Arc::new(store),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                run::close(&opened.source).await;
                return Err(e);
            }
        };
        Ok(FilesReport {
            run: RunSummary::new(
                report.manifest,
                report.elapsed,
                report.fatal,
                opened.source.warnings().to_vec(),
                true,
            )
            .with_metrics_addr(control.metrics_addr()),
            out: self.out.clone(),
        })
    }
}

/// Whether every chunk of a finished run is still stored as recorded.
async fn all_chunks_intact(m: &Manifest, sink: &dyn Sink) -> bool {
    for t in &m.tables {
        for c in &t.chunks {
            if !c.done || !matches!(sink.chunk_intact(&t.chunk(c), c).await, Ok(true)) {
                return false;
            }
        }
    }
    true
}

/// What [`FilesJob::run`] reports. Its JSON is the snapshot report plus `out`.
#[derive(Debug)]
#[non_exhaustive]
pub struct FilesReport {
    /// The run.
    pub run: RunSummary,
    /// The output directory.
    pub out: PathBuf,
}

impl FilesReport {
    /// The JSON report (see [`RunSummary`]'s fields, plus `out`).
    pub fn to_json(&self) -> Value {
        self.run.json(json!({ "out": self.out }), |_| json!({}))
    }
}

impl Serialize for FilesReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A plan: the tables and chunks a run would copy, with estimates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// The planned manifest (every chunk pending).
    pub manifest: Manifest,
}

impl Plan {
    /// `{"report_version", "status": "plan", "options", "tables": [{schema, name, kind,
    /// estimated_bytes, chunks: [{id, relation, range, estimated_bytes}]}]}`.
    pub fn to_json(&self) -> Value {
        let tables: Vec<_> = self
            .manifest
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
        json!({
            "report_version": REPORT_VERSION,
            "status": "plan",
            "options": self.manifest.options,
            "tables": tables,
        })
    }
}

impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

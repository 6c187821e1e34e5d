//! The StarRocks job: a consistent, parallel, resumable snapshot of PostgreSQL loaded into
//! StarRocks with Stream Load, every chunk exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgsnap_core::{DataFormat, Manifest, ManifestStore, ManifestTable, TableName, TableStatus};
use pgsnap_sink_starrocks::{StarRocksSink, StarRocksSinkBuilder};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::options::{RunControl, SnapshotOptions};
use crate::report::RunSummary;
use crate::run::{self, Layout};

/// Loads a consistent snapshot into StarRocks: each chunk read from the snapshot, transcoded
/// on the fly and sent with Stream Load under the label
/// `<prefix>-<run id>-<table>-<chunk>-<part>`, so a retry or a resume never loads a chunk
/// twice.
///
/// What the job guarantees:
/// - the **state directory** (the manifest, no data; default
///   [`default_state_dir`](Self::default_state_dir)) is locked for the run;
/// - **StarRocks is checked before any snapshot** (or slot) is taken: the FE, the
///   credentials, the database;
/// - the sink **prepares the tables** (created or checked) before any row is read, and a
///   **new run into a Duplicate Key table that already holds rows is refused** (unless
///   [`StarRocksSinkBuilder::with_allow_existing_rows`]); when that fails, a permanent slot
///   (and publication) the run created is dropped;
/// - a resume needs the same sink identity ([`StarRocksSinkBuilder::identity`]: database,
///   labels, body layout, table and column mappings);
/// - **accounting**: a table is complete only when the rows read equal the rows StarRocks
///   reported loaded plus filtered; optionally `SELECT COUNT(*)` is compared too.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), pgsnap::JobError> {
/// use pgsnap::starrocks::StarRocksSinkBuilder;
/// use pgsnap::{Connection, MigrateJob, RunControl, SnapshotOptions};
///
/// let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"));
/// let starrocks = StarRocksSinkBuilder::new("http://fe1:8030", "analytics")
///     .with_user("loader")
///     .with_password(std::env::var("STARROCKS_PASSWORD").unwrap_or_default())
///     .with_create_tables(true);
/// let report = MigrateJob::new(options, starrocks).run(&RunControl::new()).await?;
/// for (table, load) in &report.tables {
///     println!("{table} → {}: {} rows", load.target, load.rows_loaded);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MigrateJob {
    options: SnapshotOptions,
    starrocks: StarRocksSinkBuilder,
    state: Option<PathBuf>,
    resume: bool,
    verify_count: bool,
}

impl MigrateJob {
    /// A new run loading with `starrocks` (its run id comes from the manifest).
    pub fn new(options: SnapshotOptions, starrocks: StarRocksSinkBuilder) -> Self {
        Self { options, starrocks, state: None, resume: false, verify_count: false }
    }

    /// Keeps the run's state in `dir` instead of [`default_state_dir`](Self::default_state_dir).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state = Some(dir.into());
        self
    }

    /// Continues the interrupted run recorded in the state directory.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// After loading, compares `SELECT COUNT(*)` of each completed target with the rows
    /// loaded (a difference is a warning: rows already there, or upserts of equal keys).
    pub fn with_verify_count(mut self, verify: bool) -> Self {
        self.verify_count = verify;
        self
    }

    /// `./pgsnap-state/starrocks-<fe host>-<fe port>-<database>`, with anything but
    /// `[A-Za-z0-9._-]` replaced by `_`.
    ///
    /// ```
    /// use pgsnap::MigrateJob;
    /// use pgsnap::starrocks::StarRocksSinkBuilder;
    /// let b = StarRocksSinkBuilder::new("http://fe1:8030", "analytics");
    /// assert_eq!(
    ///     MigrateJob::default_state_dir(&b),
    ///     std::path::Path::new("pgsnap-state/starrocks-fe1-8030-analytics")
    /// );
    /// ```
    pub fn default_state_dir(starrocks: &StarRocksSinkBuilder) -> PathBuf {
        let first = starrocks.fe_urls().first().cloned().unwrap_or_default();
        let fe = first.split_once("://").map(|x| x.1).unwrap_or(&first);
        let fe = fe.split('/').next().unwrap_or(fe).replace(':', "-");
        let name: String = format!("starrocks-{fe}-{}", starrocks.database())
            .chars()
            .map(
                |c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' },
            )
            .collect();
        PathBuf::from("pgsnap-state").join(name)
    }

    /// The state directory this job uses.
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| Self::default_state_dir(&self.starrocks))
    }

    /// Runs (or resumes) the migration to its end, cancelled by `control`.
    ///
    /// # Errors
    /// Before any row is loaded: the state directory in use, not empty (new run) or without a
    /// run (resume), a resume with other options or another sink identity; StarRocks
    /// unreachable, credentials, database; PostgreSQL connection and preflight; the tables'
    /// preparation (missing tables, mismatching ones, occupied Duplicate Key targets, types
    /// that cannot be mapped). Failures during the run are in the report.
    pub async fn run(&self, control: &RunControl) -> Result<MigrateReport> {
        if !self.resume {
            self.options.validate().map_err(crate::JobError::Config)?;
        }
        let _metrics = control.serve_metrics().await?;
        let state = self.state_dir();
        let _lock = run::lock_dir(&state)?;
        let store = ManifestStore::new(&state);
        let layout = Layout {
            format: DataFormat::Text,
            compression: "none".into(),
            sink: Some(self.starrocks.identity()),
        };
        let previous =
            run::previous_run(&store, self.resume, false, &self.options, &layout).await?;
        run::remove_stale_manifest_temp_files(&state);

        // StarRocks first: no snapshot (or slot) is taken for a target we cannot load.
        control.guard(check_starrocks(&self.starrocks)).await?;

        let opened =
            run::open_run_cancellable(&self.options, previous, false, &layout, control).await?;
        let sink = match self.starrocks.clone().with_run_id(opened.manifest.run_id.clone()).build()
        {
            Ok(s) => Arc::new(s),
            Err(e) => {
                run::abandon(&self.options, &opened).await;
                return Err(e.into());
            }
        };
        #[cfg(feature = "metrics")]
        if let Some(m) = control.metrics() {
            m.set_targets(
                opened
                    .manifest
                    .tables
                    .iter()
                    .map(|t| (t.schema.name.clone(), sink.target_name(&t.schema.name))),
            );
        }
        let report = match run::drive(
            &self.options,
            control,
            &opened,
            Arc::clone(&sink) as Arc<dyn pgsnap_core::Sink>,
            Arc::new(store),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                run::abandon(&self.options, &opened).await;
                return Err(e);
            }
        };
        let counts = if self.verify_count {
            verify_counts(&sink, &report.manifest).await
        } else {
            BTreeMap::new()
        };
        let mut warnings = opened.source.warnings().to_vec();
        let tables = table_loads(&sink, &report.manifest, &counts, &mut warnings);
        let unverified = unverified_tables(&report.manifest);
        warnings.extend(unverified.iter().cloned());
        Ok(MigrateReport {
            run: RunSummary::new(
                report.manifest,
                report.elapsed,
                report.fatal,
                warnings,
                unverified.is_empty(),
            )
            .with_metrics_addr(control.metrics_addr()),
            state,
            database: self.starrocks.database().to_owned(),
            tables,
        })
    }
}

/// Checks the FE, the credentials and the database before anything else; returns the
/// probe sink that checked them (for further questions, never for loading).
pub(crate) async fn check_starrocks(b: &StarRocksSinkBuilder) -> Result<StarRocksSink> {
    let probe = b.clone().with_run_id("preflight").build()?;
    probe.check_connection().await?;
    Ok(probe)
}

/// `SELECT COUNT(*)` per target table (only for tables whose load completed), over one
/// connection in a few batched statements.
async fn verify_counts(
    sink: &StarRocksSink,
    m: &Manifest,
) -> BTreeMap<TableName, std::result::Result<u64, String>> {
    let done: Vec<(&TableName, String)> = m
        .tables
        .iter()
        .filter(|t| t.status == TableStatus::Ok)
        .map(|t| (&t.schema.name, sink.target_name(&t.schema.name)))
        .collect();
    let targets: Vec<&str> = done.iter().map(|(_, target)| target.as_str()).collect();
    match sink.count_rows_many(&targets).await {
        Ok(counts) => done
            .iter()
            .zip(counts)
            .map(|((table, _), n)| ((*table).clone(), n.map_err(|e| e.to_string())))
            .collect(),
        // The FE could not be logged in to: every count failed the same way.
        Err(e) => done.iter().map(|(table, _)| ((*table).clone(), Err(e.to_string()))).collect(),
    }
}

/// One table's load into StarRocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TableLoad {
    /// The StarRocks table.
    pub target: String,
    /// Rows StarRocks reported loaded (all done chunks).
    pub rows_loaded: u64,
    /// Rows StarRocks reported filtered.
    pub rows_filtered: u64,
    /// Stream Loads (or transaction loads) that carried them.
    pub loads: usize,
    /// `SELECT COUNT(*)` of the target after the run, when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Per-table load totals from the manifest's chunk records: (rows loaded, rows filtered,
/// loads).
pub(crate) fn load_totals(t: &ManifestTable) -> (u64, u64, usize) {
    t.chunks
        .iter()
        .filter_map(|c| c.load.as_ref())
        .fold((0, 0, 0), |(l, f, n), r| (l + r.rows_loaded, f + r.rows_filtered, n + r.loads()))
}

/// Every table's load, with a warning for a `COUNT(*)` that differs or failed.
pub(crate) fn table_loads(
    sink: &StarRocksSink,
    manifest: &Manifest,
    counts: &BTreeMap<TableName, std::result::Result<u64, String>>,
    warnings: &mut Vec<String>,
) -> BTreeMap<TableName, TableLoad> {
    let mut out = BTreeMap::new();
    for t in &manifest.tables {
        let (loaded, filtered, loads) = load_totals(t);
        let target = sink.target_name(&t.schema.name);
        let count = match counts.get(&t.schema.name) {
            Some(Ok(n)) => {
                if *n != loaded {
                    warnings.push(format!(
                        "{}: SELECT COUNT(*) of {target} is {n}, {loaded} rows were loaded (rows already there, or upserts of equal keys)",
                        t.schema.name
                    ));
                }
                Some(*n)
            }
            Some(Err(e)) => {
                warnings.push(format!("{}: COUNT(*) failed: {e}", t.schema.name));
                None
            }
            None => None,
        };
        out.insert(
            t.schema.name.clone(),
            TableLoad { target, rows_loaded: loaded, rows_filtered: filtered, loads, count },
        );
    }
    out
}

/// The completed tables whose rows read differ from StarRocks' loaded plus filtered rows.
pub(crate) fn unverified_tables(manifest: &Manifest) -> Vec<String> {
    manifest
        .tables
        .iter()
        .filter(|t| t.status == TableStatus::Ok)
        .filter_map(|t| {
            let (loaded, filtered, _) = load_totals(t);
            (loaded + filtered != t.rows()).then(|| {
                format!(
                    "{}: {} rows read but StarRocks reported {loaded} loaded and {filtered} filtered",
                    t.schema.name,
                    t.rows()
                )
            })
        })
        .collect()
}

/// What [`MigrateJob::run`] reports. Its JSON is the snapshot report plus `state`,
/// `database`, `run_id`, and per table `target`, `rows_loaded`, `rows_filtered`, `loads`
/// (and `count` when verified).
#[derive(Debug)]
#[non_exhaustive]
pub struct MigrateReport {
    /// The run.
    pub run: RunSummary,
    /// The state directory.
    pub state: PathBuf,
    /// The StarRocks database.
    pub database: String,
    /// Per source table, its load.
    pub tables: BTreeMap<TableName, TableLoad>,
}

impl MigrateReport {
    /// The state directory.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The JSON report.
    pub fn to_json(&self) -> Value {
        self.run.json(
            json!({ "state": self.state, "database": self.database, "run_id": self.run.manifest.run_id }),
            |t| match self.tables.get(&t.schema.name) {
                Some(load) => serde_json::to_value(load).unwrap_or(Value::Null),
                None => json!({}),
            },
        )
    }
}

impl Serialize for MigrateReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

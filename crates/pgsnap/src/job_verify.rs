//! The verify job: compares each PostgreSQL table with its StarRocks target, row by row, as
//! typed cells.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pgsnap_core::{CheckpointStore, ManifestStore, TableName, TableSchema, quote_ident};
use pgsnap_sink_starrocks::StarRocksSinkBuilder;
use pgsnap_sink_starrocks::cells::{self, CellText};
use pgsnap_sink_starrocks::mapping::{KeyModel, SrType, TargetColumn, TargetTable};
use pgsnap_sink_starrocks::read::{KeyRange, TableReader};
use pgsnap_source::conninfo::Connection;
use pgsnap_source::pattern::quote_literal;
use serde::Serialize;
use serde_json::Value;

use crate::error::{JobError, Result};
use crate::options::RunControl;
use crate::report::REPORT_VERSION;

/// Key ranges compared by default in [`VerifyMode::Sample`] (besides the first and the last).
pub const DEFAULT_SAMPLE_RANGES: usize = 16;
/// Rows per key range (and per read, in [`VerifyMode::Full`]) by default.
pub const DEFAULT_RANGE_ROWS: usize = 1000;
/// Differences listed per kind (missing, extra, different) and table.
pub const MAX_LISTED_DIFFERENCES: usize = 20;

/// How much of each table [`VerifyJob`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
#[non_exhaustive]
pub enum VerifyMode {
    /// `ranges` key ranges of `rows` rows spread evenly across the key space, plus the first
    /// and the last range (which also catch StarRocks rows before the first and after the last
    /// PostgreSQL key). Rows of StarRocks between the ranges are not looked at. Each range
    /// is found in PostgreSQL by its row position (`ORDER BY <key> OFFSET n LIMIT 1`: an
    /// index scan of n keys where an index has the key's order, a sort of the table
    /// otherwise, e.g. for text keys under a non-C collation).
    Sample {
        /// Ranges between the first and the last.
        ranges: usize,
        /// Rows per range.
        rows: usize,
    },
    /// Every row, read in ranges of [`VerifyJob::with_range_rows`] rows.
    Full,
}

impl VerifyMode {
    /// `Sample` with [`DEFAULT_SAMPLE_RANGES`] ranges of [`DEFAULT_RANGE_ROWS`] rows.
    ///
    /// ```
    /// use pgsnap::VerifyMode;
    /// assert_eq!(VerifyMode::sample(), VerifyMode::Sample { ranges: 16, rows: 1000 });
    /// ```
    pub fn sample() -> Self {
        VerifyMode::Sample { ranges: DEFAULT_SAMPLE_RANGES, rows: DEFAULT_RANGE_ROWS }
    }

    fn name(self) -> &'static str {
        match self {
            VerifyMode::Sample { .. } => "sample",
            VerifyMode::Full => "full",
        }
    }
}

/// What the caller knows about the CDC leg (Debezium → Kafka → Routine Load) when it asks for
/// a verification: a result can only be final once StarRocks has caught up with PostgreSQL.
/// The `status` job supplies it; `detail` is what it saw (lags per table, offsets), copied
/// into the report.
///
/// ```
/// use pgsnap::CutoverEvidence;
/// let e = CutoverEvidence::new(false, serde_json::json!({"lag": {"orders": 42}}));
/// assert!(!e.caught_up);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CutoverEvidence {
    /// Whether every table's Routine Load has consumed everything PostgreSQL wrote (ready
    /// for cutover).
    pub caught_up: bool,
    /// What was seen (lags, offsets), as the status job reports it.
    pub detail: Value,
}

impl CutoverEvidence {
    /// Evidence: `caught_up`, with what was seen.
    pub fn new(caught_up: bool, detail: Value) -> Self {
        Self { caught_up, detail }
    }
}

/// The verdict of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerifyVerdict {
    /// Every compared table is equal, and CDC has caught up.
    Equal,
    /// Some table differs (listed).
    Different,
    /// No difference was found, but the result is not final: there is no evidence that CDC
    /// has caught up ([`VerifyReport::not_final`] says why).
    NotFinal,
}

impl VerifyVerdict {
    /// `equal`, `different` or `not_final`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyVerdict::Equal => "equal",
            VerifyVerdict::Different => "different",
            VerifyVerdict::NotFinal => "not_final",
        }
    }
}

/// What kind of difference a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DifferenceKind {
    /// In PostgreSQL, not in StarRocks.
    Missing,
    /// In StarRocks, not in PostgreSQL.
    Extra,
    /// In both, with different values in `columns`.
    Different,
}

/// One row that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Difference {
    /// The row's key: `{column: value}` with the PostgreSQL key columns and their values as
    /// text (PostgreSQL's for missing and different rows, StarRocks' for extra ones). For a
    /// table without a key: every column.
    pub key: Value,
    /// Missing, extra or different.
    pub kind: DifferenceKind,
    /// The StarRocks columns whose values differ (`different` only).
    pub columns: Vec<String>,
}

/// How many rows differ, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DifferenceCounts {
    /// Rows missing in StarRocks.
    pub missing: u64,
    /// Rows only in StarRocks.
    pub extra: u64,
    /// Rows with different values.
    pub different: u64,
}

impl DifferenceCounts {
    fn total(&self) -> u64 {
        self.missing + self.extra + self.different
    }
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableVerify {
    /// The PostgreSQL table, `schema.name` (unquoted).
    pub source: String,
    /// The StarRocks table (`database.table`).
    pub target: String,
    /// `SELECT count(*)` in PostgreSQL (under the job's snapshot).
    pub rows_source: u64,
    /// `SELECT COUNT(*)` in StarRocks.
    pub rows_target: u64,
    /// PostgreSQL rows compared with StarRocks (all of them in full mode).
    pub compared: u64,
    /// `full`, `sample`, `multiset` (a table without a key, small enough to compare whole)
    /// or `count`.
    pub mode: &'static str,
    /// Key ranges read.
    pub ranges: u64,
    /// The first [`MAX_LISTED_DIFFERENCES`] differences of each kind.
    pub differences: Vec<Difference>,
    /// All differences found, by kind.
    pub difference_counts: DifferenceCounts,
    /// Why the rows were not compared (only the counts were), if they were not.
    pub not_compared: Option<String>,
    /// Whether the table is equal as far as it was compared (counts and rows).
    pub equal: bool,
    /// Seconds spent on the table.
    pub elapsed_s: f64,
    /// PostgreSQL rows compared per second.
    pub rows_per_second: f64,
}

/// What [`VerifyJob::run`] reports. Its JSON: `report_version`, `verdict` (`equal`,
/// `different`, `not_final`), `mode`, `database`, `not_final` (why, when not final),
/// `cutover` (the evidence given: `caught_up`, `detail` with the lag seen), `snapshot` (the
/// PostgreSQL snapshot read), `tables` (each: `source`, `target`, `rows_source`,
/// `rows_target`, `compared`, `mode`, `ranges`, `differences` [{`key`, `kind`, `columns`}],
/// `difference_counts`, `not_compared`, `equal`, `elapsed_s`, `rows_per_second`),
/// `elapsed_s`, `warnings`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// The verdict.
    pub verdict: VerifyVerdict,
    /// The mode.
    #[serde(flatten)]
    pub mode: VerifyMode,
    /// The StarRocks database.
    pub database: String,
    /// Why the verdict is not final (with [`VerifyVerdict::NotFinal`]).
    pub not_final: Option<String>,
    /// The cutover evidence given to the job, if any (its `detail` is the lag it saw).
    pub cutover: Option<CutoverEvidence>,
    /// The PostgreSQL snapshot all tables were read under (`pg_current_snapshot()`).
    pub snapshot: String,
    /// Per table, in selection order.
    pub tables: Vec<TableVerify>,
    /// Wall time of the job.
    pub elapsed_s: f64,
    /// Everything worth a look.
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// The JSON report.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Compares each PostgreSQL table with its StarRocks target: row counts, then the rows, as
/// typed cells per the parity table (numbers numerically, datetimes as UTC instants, JSON
/// semantically, text byte for byte, see [`pgsnap_sink_starrocks::cells`]).
///
/// - Both sides are read in **bounded key ranges in the same order**: PostgreSQL ordered by
///   the key's StarRocks representation (`COLLATE "C"` for text keys, the text of keys kept as
///   `VARCHAR` such as `numeric` or `uuid`), StarRocks with `WHERE <key range> ORDER BY <key>
///   LIMIT n` ([`pgsnap_sink_starrocks::read`]), never a whole-table sort. Memory is bounded
///   by the range size, whatever the table size.
/// - PostgreSQL is read under **one snapshot** (a `REPEATABLE READ`, read-only transaction),
///   on one connection.
/// - Tables without a primary key: the counts, plus a multiset comparison when both sides
///   hold at most one range of rows; otherwise `not_compared` says why.
/// - Without [`CutoverEvidence`] that CDC has caught up, a result that would be
///   [`VerifyVerdict::Equal`] is [`VerifyVerdict::NotFinal`]: StarRocks may still be behind.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), pgsnap::JobError> {
/// use pgsnap::starrocks::StarRocksSinkBuilder;
/// use pgsnap::{Connection, RunControl, VerifyJob, VerifyMode};
///
/// let starrocks = StarRocksSinkBuilder::new("http://fe1:8030", "analytics").with_user("loader");
/// let report = VerifyJob::new(Connection::new("host=db1 dbname=sales"), starrocks)
///     .with_mode(VerifyMode::Full)
///     .run(&RunControl::new())
///     .await?;
/// println!("{}", report.verdict.as_str());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct VerifyJob {
    source: Connection,
    starrocks: StarRocksSinkBuilder,
    include: Vec<String>,
    exclude: Vec<String>,
    state: Option<PathBuf>,
    mode: VerifyMode,
    range_rows: usize,
    cutover: Option<CutoverEvidence>,
    #[cfg(feature = "kafka")]
    status: Option<Box<crate::job_status::StatusJob>>,
    timeout: Option<Duration>,
}

impl VerifyJob {
    /// Compares the tables of `source` with their targets as `starrocks` maps them (target
    /// names, column types): every table, [`VerifyMode::sample`], no cutover evidence.
    pub fn new(source: impl Into<Connection>, starrocks: StarRocksSinkBuilder) -> Self {
        Self {
            source: source.into(),
            starrocks,
            include: Vec::new(),
            exclude: Vec::new(),
            state: None,
            mode: VerifyMode::sample(),
            range_rows: DEFAULT_RANGE_ROWS,
            cutover: None,
            #[cfg(feature = "kafka")]
            status: None,
            timeout: None,
        }
    }

    /// Tables to compare (psql pattern rules, as the snapshot jobs select them).
    pub fn with_include(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.include = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Tables to leave out (psql pattern rules).
    pub fn with_exclude(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.exclude = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Compares the tables of the run recorded in `dir` (its `manifest.json`: the tables and
    /// columns as they were copied) instead of selecting them.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state = Some(dir.into());
        self
    }

    /// How much to compare.
    pub fn with_mode(mut self, mode: VerifyMode) -> Self {
        self.mode = mode;
        self
    }

    /// Rows per read in [`VerifyMode::Full`] (at least 1). Default [`DEFAULT_RANGE_ROWS`].
    pub fn with_range_rows(mut self, rows: usize) -> Self {
        self.range_rows = rows.max(1);
        self
    }

    /// What the caller knows about CDC; `None` (the default) makes an equal result
    /// [`VerifyVerdict::NotFinal`].
    pub fn with_cutover(mut self, evidence: Option<CutoverEvidence>) -> Self {
        self.cutover = evidence;
        self
    }

    /// Checks CDC with `status` (normally on the same state directory, with a cutover point)
    /// before anything is read, and takes its verdict as the evidence: the result is final
    /// only when the status is caught up for cutover
    /// ([`StatusReport::caught_up_for_cutover`](crate::StatusReport::caught_up_for_cutover));
    /// otherwise the report says what lag it saw
    /// ([`StatusReport::lag_summary`](crate::StatusReport::lag_summary)). A state whose
    /// handoff recorded no Routine Load gives no evidence (a warning says so). Replaces
    /// [`with_cutover`](Self::with_cutover).
    #[cfg(feature = "kafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
    pub fn with_status(mut self, status: crate::job_status::StatusJob) -> Self {
        self.status = Some(Box::new(status));
        self
    }

    /// Gives up after `timeout` ([`JobError::Timeout`]).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the comparison, cancelled by `control`.
    ///
    /// # Errors
    /// The manifest of the state directory cannot be read; PostgreSQL or StarRocks cannot be
    /// reached or read ([`JobError::Source`], [`JobError::StarRocks`]); a table cannot be
    /// mapped; a PostgreSQL value the snapshot could not have loaded
    /// ([`JobError::Verify`], naming the table, key and column); cancellation; the timeout.
    pub async fn run(&self, control: &RunControl) -> Result<VerifyReport> {
        let work = control.guard(self.verify());
        match self.timeout {
            Some(t) => {
                tokio::time::timeout(t, work).await.map_err(|_| JobError::Timeout { after: t })?
            }
            None => work.await,
        }
    }

    async fn verify(&self) -> Result<VerifyReport> {
        let started = Instant::now();
        let mut warnings = Vec::new();
        // CDC first: the rows read afterwards are at least as new as what it saw.
        #[allow(unused_mut)]
        let mut cutover = self.cutover.clone();
        #[cfg(feature = "kafka")]
        if let Some(status) = &self.status {
            match status.run().await {
                Ok(r) => {
                    cutover = Some(CutoverEvidence::new(r.caught_up_for_cutover(), r.lag_summary()))
                }
                Err(JobError::NoHandoff { .. }) => {
                    cutover = None;
                    warnings.push(
                        "the state records no handoff, so there is no CDC status to tell \
                         whether StarRocks may still change"
                            .to_owned(),
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let probe = crate::job_migrate::check_starrocks(&self.starrocks).await?;
        let mut reader = probe.table_reader().await?;
        let mut pg = Pg::open(&self.source).await?;
        let schemas = match &self.state {
            Some(dir) => {
                let store = ManifestStore::new(dir);
                let Some(m) = store.load().await? else {
                    return Err(JobError::NothingToResume { manifest: store.path() });
                };
                if let Some(identity) = &m.sink
                    && *identity != self.starrocks.identity()
                {
                    warnings.push(format!(
                        "the StarRocks options differ from the run's ({identity}); tables are \
                         mapped with the options given"
                    ));
                }
                m.tables.into_iter().map(|t| t.schema).collect()
            }
            None => pg.select(&self.include, &self.exclude).await?,
        };
        let mut tables = Vec::with_capacity(schemas.len());
        for schema in &schemas {
            let target = self.starrocks.map_table(schema)?;
            let t = self.table(&mut pg, &mut reader, schema, &target).await?;
            tables.push(t);
        }
        let snapshot = pg.snapshot.clone();
        pg.close().await;
        reader.close().await;

        let differs = tables.iter().any(|t| !t.equal);
        for t in tables.iter().filter(|t| t.not_compared.is_some() && t.equal) {
            warnings.push(format!(
                "{}: only the counts were compared: {}",
                t.source,
                t.not_compared.as_deref().unwrap_or_default()
            ));
        }
        let not_final = match &cutover {
            Some(e) if e.caught_up => None,
            Some(e) if e.detail.get("cutover_lsn").is_some_and(Value::is_null) => Some(format!(
                "no cutover point was given, so CDC cannot be caught up for cutover (status seen: \
                 {}): stop the writes and give the cutover point (Cutover::TakeNow or \
                 Cutover::Lsn); StarRocks may still change",
                e.detail
            )),
            Some(e) => Some(format!(
                "CDC has not caught up for cutover (status seen: {}): StarRocks may still change",
                e.detail
            )),
            None => Some(
                "no evidence that CDC has caught up was given (a status check supplies it): \
                 StarRocks may still change"
                    .to_owned(),
            ),
        };
        // A count says nothing of the rows: such a table cannot make the result equal.
        let counted: Vec<&str> = tables
            .iter()
            .filter(|t| t.equal && t.not_compared.is_some())
            .map(|t| t.source.as_str())
            .collect();
        let not_final = match (not_final, counted.is_empty()) {
            (n, true) => n,
            (n, false) => Some(format!(
                "{}only the counts of {} were compared",
                n.map(|n| format!("{n}; ")).unwrap_or_default(),
                counted.join(", ")
            )),
        };
        let verdict = if differs {
            VerifyVerdict::Different
        } else if not_final.is_some() {
            VerifyVerdict::NotFinal
        } else {
            VerifyVerdict::Equal
        };
        Ok(VerifyReport {
            report_version: REPORT_VERSION,
            verdict,
            mode: self.mode,
            database: self.starrocks.database().to_owned(),
            not_final: if verdict == VerifyVerdict::NotFinal { not_final } else { None },
            cutover,
            snapshot,
            tables,
            elapsed_s: started.elapsed().as_secs_f64(),
            warnings,
        })
    }

    /// Compares one table.
    async fn table(
        &self,
        pg: &mut Pg,
        reader: &mut TableReader,
        schema: &TableSchema,
        target: &TargetTable,
    ) -> Result<TableVerify> {
        let started = Instant::now();
        let mut out = TableVerify {
            source: format!("{}.{}", schema.name.schema, schema.name.name),
            target: format!("{}.{}", reader.database(), target.name),
            rows_source: 0,
            rows_target: 0,
            compared: 0,
            mode: self.mode.name(),
            ranges: 0,
            differences: Vec::new(),
            difference_counts: DifferenceCounts::default(),
            not_compared: None,
            equal: true,
            elapsed_s: 0.0,
            rows_per_second: 0.0,
        };
        out.rows_source = pg.count(&schema.name).await?;
        let Some(columns) = reader.columns(&target.name).await? else {
            out.not_compared = Some(format!("StarRocks table {} does not exist", out.target));
            out.mode = "count";
            out.equal = false;
            return Ok(finish(out, started));
        };
        let missing: Vec<&str> = target
            .columns
            .iter()
            .filter(|c| !columns.iter().any(|n| n.eq_ignore_ascii_case(&c.name)))
            .map(|c| c.name.as_str())
            .collect();
        out.rows_target = reader.count(&target.name).await?;
        if !missing.is_empty() {
            out.not_compared =
                Some(format!("StarRocks lacks the column(s) {}", missing.join(", ")));
            out.mode = "count";
            out.equal = false;
            return Ok(finish(out, started));
        }
        let keyed = target.key_model == KeyModel::Primary && !schema.primary_key.is_empty();
        let rows = match self.mode {
            VerifyMode::Sample { rows, .. } => rows.max(1),
            VerifyMode::Full => self.range_rows,
        };
        let mut diffs = Diffs::default();
        if keyed {
            let ctx = TableCtx::new(schema, target)?;
            let intervals = self.intervals(out.rows_source, rows);
            for (a, b) in intervals {
                out.ranges += 1;
                out.compared += self
                    .interval(pg, reader, &ctx, (a, b), out.rows_source, rows, &mut diffs)
                    .await?;
            }
        } else if out.rows_source as usize <= rows && out.rows_target as usize <= rows {
            out.mode = "multiset";
            out.ranges = 1;
            out.compared = multiset(pg, reader, schema, target, rows, &mut diffs).await?;
        } else {
            out.mode = "count";
            out.not_compared = Some(format!(
                "no primary key: the rows cannot be read in key ranges, and the table holds more \
                 than one range ({rows} rows) to compare as a multiset"
            ));
        }
        out.difference_counts = diffs.counts;
        out.differences = diffs.listed();
        out.equal = out.rows_source == out.rows_target && out.difference_counts.total() == 0;
        Ok(finish(out, started))
    }

    /// The row-position intervals `[a, b)` to compare for a table of `n` rows: everything in
    /// full mode; in sample mode the first and last `rows` rows and `ranges` ranges spread
    /// between them, overlapping ones merged.
    fn intervals(&self, n: u64, rows: usize) -> Vec<(u64, u64)> {
        let rows = rows as u64;
        let VerifyMode::Sample { ranges, .. } = self.mode else { return vec![(0, n)] };
        let mut starts = vec![0, n.saturating_sub(rows)];
        for i in 1..=ranges as u64 {
            starts.push(n * i / (ranges as u64 + 1));
        }
        starts.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for s in starts {
            let e = (s + rows).min(n);
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        if out.is_empty() {
            out.push((0, 0));
        }
        out
    }

    /// Compares the rows at positions `[a, b)` (in key order) of a table of `n` rows, in
    /// reads of `rows` rows; returns the PostgreSQL rows compared.
    #[allow(clippy::too_many_arguments)]
    async fn interval(
        &self,
        pg: &mut Pg,
        reader: &mut TableReader,
        ctx: &TableCtx<'_>,
        (a, b): (u64, u64),
        n: u64,
        rows: usize,
        diffs: &mut Diffs,
    ) -> Result<u64> {
        let mut lower: Option<(PgKey, bool)> =
            if a == 0 { None } else { Some((pg.key_at(ctx, a).await?, true)) };
        let mut remaining = b - a;
        let mut compared = 0;
        loop {
            let limit = (remaining as usize).min(rows);
            let page = pg.page(ctx, lower.as_ref(), limit).await?;
            remaining = remaining.saturating_sub(page.len() as u64);
            compared += page.len() as u64;
            let to_end = b >= n && (remaining == 0 || page.len() < limit);
            let through = if to_end { None } else { page.last().map(|r| r.key.sr.clone()) };
            if page.is_empty() && !to_end {
                break;
            }
            let last = page.last().map(|r| r.key.clone());
            let mut range = match &lower {
                None => KeyRange::all(),
                Some((k, true)) => KeyRange::starting_at(k.sr.clone()),
                Some((k, false)) => KeyRange::after(k.sr.clone()),
            };
            range.through = through;
            compare_range(reader, ctx, page, range, rows, diffs).await?;
            match last {
                Some(k) if !to_end && remaining > 0 => lower = Some((k, false)),
                _ => break,
            }
        }
        Ok(compared)
    }
}

fn finish(mut t: TableVerify, started: Instant) -> TableVerify {
    t.elapsed_s = started.elapsed().as_secs_f64();
    t.rows_per_second = if t.elapsed_s > 0.0 { t.compared as f64 / t.elapsed_s } else { 0.0 };
    t
}

/// The differences of one table: counts, and the first ones of each kind.
#[derive(Debug, Default)]
struct Diffs {
    counts: DifferenceCounts,
    missing: Vec<Difference>,
    extra: Vec<Difference>,
    different: Vec<Difference>,
}

impl Diffs {
    fn add(&mut self, key: Value, kind: DifferenceKind, columns: Vec<String>) {
        let (count, list) = match kind {
            DifferenceKind::Missing => (&mut self.counts.missing, &mut self.missing),
            DifferenceKind::Extra => (&mut self.counts.extra, &mut self.extra),
            DifferenceKind::Different => (&mut self.counts.different, &mut self.different),
        };
        *count += 1;
        if list.len() < MAX_LISTED_DIFFERENCES {
            list.push(Difference { key, kind, columns });
        }
    }

    fn listed(&mut self) -> Vec<Difference> {
        let mut out = std::mem::take(&mut self.missing);
        out.append(&mut self.extra);
        out.append(&mut self.different);
        out
    }
}

/// What reading one table needs: its mapping, and its key on both sides.
struct TableCtx<'a> {
    schema: &'a TableSchema,
    target: &'a TargetTable,
    /// Target positions of the key columns, in key order.
    key_pos: Vec<usize>,
    /// `ORDER BY` / comparison expressions of the key columns in PostgreSQL.
    pg_exprs: Vec<String>,
}

impl<'a> TableCtx<'a> {
    fn new(schema: &'a TableSchema, target: &'a TargetTable) -> Result<Self> {
        let mut key_pos = Vec::new();
        let mut pg_exprs = Vec::new();
        for k in &target.key {
            let Some(pos) = target.columns.iter().position(|c| c.name.eq_ignore_ascii_case(k))
            else {
                return Err(verify_error(
                    &schema.name,
                    None,
                    Some(k),
                    "the key column is not mapped",
                ));
            };
            key_pos.push(pos);
            pg_exprs.push(pg_key_expr(&target.columns[pos]));
        }
        Ok(Self { schema, target, key_pos, pg_exprs })
    }

    fn key_types(&self) -> Vec<&SrType> {
        self.key_pos.iter().map(|&p| &self.target.columns[p].sr_type).collect()
    }

    /// The key as the report shows it: `{column: text}` with PostgreSQL's column names.
    fn key_json(&self, texts: &[Vec<u8>]) -> Value {
        let mut m = serde_json::Map::new();
        for (&p, t) in self.key_pos.iter().zip(texts) {
            m.insert(
                self.target.columns[p].source_name.clone(),
                Value::String(String::from_utf8_lossy(t).into_owned()),
            );
        }
        Value::Object(m)
    }

    /// A map key for the key cells (canonical per type, so `1`/`true` or `.5`/`.500000` match).
    fn canonical_key(&self, cells: &[Vec<u8>]) -> Vec<Vec<u8>> {
        self.key_types().iter().zip(cells).map(|(ty, c)| cells::canonical_cell(ty, c)).collect()
    }
}

/// The PostgreSQL expression ordered and compared for a key column: the order of its StarRocks
/// representation. Text keys byte-wise (`COLLATE "C"`); other keys StarRocks holds as
/// `VARCHAR` (numeric, uuid, ...) by their text; integers, dates, timestamps and booleans as
/// they are (the same order on both sides).
fn pg_key_expr(c: &TargetColumn) -> String {
    let q = quote_ident(&c.source_name);
    if !matches!(c.sr_type, SrType::Varchar(_)) {
        return q;
    }
    let t = c.pg_type.as_str();
    let textual = t == "text"
        || t == "name"
        || t == "bpchar"
        || t.starts_with("character varying")
        || t.starts_with("character(")
        || t == "character";
    if textual { format!("{q} COLLATE \"C\"") } else { format!("({q})::text COLLATE \"C\"") }
}

/// A key of a PostgreSQL row: its text in PostgreSQL (for literals) and in StarRocks.
#[derive(Debug, Clone)]
struct PgKey {
    /// PostgreSQL's text of each key column (COPY escapes undone).
    pg: Vec<String>,
    /// The StarRocks cell text of each key column.
    sr: Vec<Vec<u8>>,
}

/// One PostgreSQL row: its key and the cells the snapshot would have loaded.
struct PgRow {
    key: PgKey,
    cells: Vec<CellText>,
}

/// The PostgreSQL side: one connection, one `REPEATABLE READ` read-only transaction.
struct Pg {
    client: tokio_postgres::Client,
    snapshot: String,
}

impl Pg {
    async fn open(connection: &Connection) -> Result<Self> {
        let spec = connection.resolve().map_err(pgsnap_source::Error::from)?;
        let tls = spec.make_tls().map_err(pgsnap_source::Error::from)?;
        let (client, conn) =
            spec.config.connect(tls).await.map_err(|e| pgsnap_source::Error::Connect {
                target: format!(
                    "{} database {:?} user {:?}",
                    connection_hosts(&spec.config),
                    spec.config.get_dbname().unwrap_or(""),
                    spec.config.get_user().unwrap_or("")
                ),
                source: Box::new(e),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "verify: connection ended with an error");
            }
        });
        let mut setup: Vec<String> = pgsnap_source::session::PINNED_SETTINGS
            .iter()
            .map(|(k, v)| format!("SET {k} = '{v}';"))
            .collect();
        setup.push("SET statement_timeout = 0;".into());
        // The transaction waits while StarRocks is read: a server or role default must not end it.
        setup.push("SET idle_in_transaction_session_timeout = 0;".into());
        setup.push("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;".into());
        client
            .batch_execute(&setup.join(" "))
            .await
            .map_err(|e| pg_error("cannot start the read-only snapshot transaction", e))?;
        let row = client
            .query_one("SELECT pg_current_snapshot()::text", &[])
            .await
            .map_err(|e| pg_error("cannot read the snapshot", e))?;
        Ok(Self { client, snapshot: row.get(0) })
    }

    async fn select(&mut self, include: &[String], exclude: &[String]) -> Result<Vec<TableSchema>> {
        let selected = pgsnap_source::catalog::select(&self.client, include, exclude).await?;
        let described = pgsnap_source::catalog::describe(&self.client, &selected).await?;
        Ok(described.into_iter().map(|t| t.schema).collect())
    }

    async fn count(&mut self, table: &TableName) -> Result<u64> {
        let row = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}", table.quoted()), &[])
            .await
            .map_err(|e| pg_error(&format!("cannot count the rows of {table}"), e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// The COPY text rows of a query (bounded by its `LIMIT`).
    async fn copy(&mut self, what: &str, query: &str) -> Result<Vec<Vec<u8>>> {
        let sql = format!("COPY ({query}) TO STDOUT");
        let stream = self.client.copy_out(&sql).await.map_err(|e| pg_error(what, e))?;
        let mut stream = std::pin::pin!(stream);
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk.map_err(|e| pg_error(what, e))?);
        }
        Ok(data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
    }

    /// The key of the row at `position` (0-based, in key order).
    async fn key_at(&mut self, ctx: &TableCtx<'_>, position: u64) -> Result<PgKey> {
        let order = ctx.pg_exprs.join(", ");
        let query = format!(
            "SELECT {} FROM {} ORDER BY {order} OFFSET {position} LIMIT 1",
            ctx.schema.select_list(),
            ctx.schema.name.quoted()
        );
        let rows = self
            .copy(&format!("cannot read the key at row {position} of {}", ctx.schema.name), &query)
            .await?;
        let Some(line) = rows.first() else {
            return Err(verify_error(
                &ctx.schema.name,
                None,
                None,
                &format!("no row at position {position}"),
            ));
        };
        Ok(row_of(ctx, line, position + 1)?.key)
    }

    /// Up to `limit` rows after (or from) `lower`, in key order.
    async fn page(
        &mut self,
        ctx: &TableCtx<'_>,
        lower: Option<&(PgKey, bool)>,
        limit: usize,
    ) -> Result<Vec<PgRow>> {
        let mut query =
            format!("SELECT {} FROM {}", ctx.schema.select_list(), ctx.schema.name.quoted());
        if let Some((key, inclusive)) = lower {
            query.push_str(" WHERE ");
            query.push_str(&pg_after(&ctx.pg_exprs, &key.pg, *inclusive));
        }
        query.push_str(&format!(" ORDER BY {} LIMIT {limit}", ctx.pg_exprs.join(", ")));
        let lines =
            self.copy(&format!("cannot read the rows of {}", ctx.schema.name), &query).await?;
        lines.iter().enumerate().map(|(i, l)| row_of(ctx, l, i as u64 + 1)).collect()
    }

    async fn close(self) {
        let _ = self.client.batch_execute("COMMIT").await;
    }
}

fn connection_hosts(c: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    c.get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn pg_error(context: &str, source: tokio_postgres::Error) -> JobError {
    JobError::Source(pgsnap_source::Error::Postgres { context: context.to_owned(), source })
}

fn verify_error(
    table: &TableName,
    key: Option<String>,
    column: Option<&str>,
    message: &str,
) -> JobError {
    JobError::Verify(Box::new(crate::error::VerifyFailure::new(
        format!("{}.{}", table.schema, table.name),
        key,
        column.map(str::to_owned),
        message,
    )))
}

/// `(e1, …, en) > (v1, …, vn)` (or `>=`) expanded lexicographically, with literals.
fn pg_after(exprs: &[String], values: &[String], inclusive: bool) -> String {
    let lits: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
    let mut terms = Vec::new();
    for i in 0..exprs.len() {
        let mut parts: Vec<String> =
            (0..i).map(|j| format!("{} = {}", exprs[j], lits[j])).collect();
        let op = if i + 1 == exprs.len() && inclusive { ">=" } else { ">" };
        parts.push(format!("{} {op} {}", exprs[i], lits[i]));
        terms.push(format!("({})", parts.join(" AND ")));
    }
    format!("({})", terms.join(" OR "))
}

/// A PostgreSQL COPY row as the cells the snapshot would load, with its key.
fn row_of(ctx: &TableCtx<'_>, line: &[u8], row: u64) -> Result<PgRow> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    let mut pg_key = Vec::new();
    for &p in &ctx.key_pos {
        let c = &ctx.target.columns[p];
        let raw = fields.get(c.source_index).copied().unwrap_or_default();
        let text = pgsnap_sink_starrocks::transcode::copy_field_text(raw)
            .map_err(|m| verify_error(&ctx.schema.name, None, Some(&c.source_name), &m))?;
        pg_key.push(String::from_utf8_lossy(&text).into_owned());
    }
    let cells = cells::expected_row(ctx.target, line, row).map_err(|e| {
        verify_error(
            &ctx.schema.name,
            Some(pg_key.join(", ")),
            e.column.as_deref(),
            &format!("a value the snapshot could not have loaded: {e}"),
        )
    })?;
    let mut sr = Vec::new();
    for (&p, k) in ctx.key_pos.iter().zip(&pg_key) {
        match &cells[p] {
            Some(v) => sr.push(v.clone()),
            None => {
                return Err(verify_error(
                    &ctx.schema.name,
                    Some(k.clone()),
                    Some(&ctx.target.columns[p].source_name),
                    "a key column is NULL",
                ));
            }
        }
    }
    Ok(PgRow { key: PgKey { pg: pg_key, sr }, cells })
}

/// Compares PostgreSQL rows (one page, in key order) with StarRocks' rows of `range`, read in
/// pages of `rows`.
async fn compare_range(
    reader: &mut TableReader,
    ctx: &TableCtx<'_>,
    page: Vec<PgRow>,
    mut range: KeyRange,
    rows: usize,
    diffs: &mut Diffs,
) -> Result<()> {
    let mut expected: HashMap<Vec<Vec<u8>>, PgRow> = HashMap::with_capacity(page.len());
    let mut order = Vec::with_capacity(page.len());
    for r in page {
        let k = ctx.canonical_key(&r.key.sr);
        order.push(k.clone());
        expected.insert(k, r);
    }
    loop {
        let got = reader.read_range(ctx.target, &range, rows).await?;
        let n = got.len();
        let mut last_key = None;
        for cells in got {
            let key_cells: Vec<Vec<u8>> =
                ctx.key_pos.iter().map(|&p| cells[p].clone().unwrap_or_default()).collect();
            match expected.remove(&ctx.canonical_key(&key_cells)) {
                Some(pg_row) => {
                    let cols = cells::differing_columns(ctx.target, &pg_row.cells, &cells);
                    if !cols.is_empty() {
                        diffs.add(pg_json_key(ctx, &pg_row.key), DifferenceKind::Different, cols);
                    }
                }
                None => diffs.add(ctx.key_json(&key_cells), DifferenceKind::Extra, Vec::new()),
            }
            last_key = Some(key_cells);
        }
        match last_key {
            Some(k) if n >= rows => range.from = Some((k, false)),
            _ => break,
        }
    }
    for k in order {
        if let Some(r) = expected.remove(&k) {
            diffs.add(pg_json_key(ctx, &r.key), DifferenceKind::Missing, Vec::new());
        }
    }
    Ok(())
}

/// A PostgreSQL row's key for the report: `{column: PostgreSQL's text}`.
fn pg_json_key(ctx: &TableCtx<'_>, key: &PgKey) -> Value {
    let mut m = serde_json::Map::new();
    for (&p, t) in ctx.key_pos.iter().zip(&key.pg) {
        m.insert(ctx.target.columns[p].source_name.clone(), Value::String(t.clone()));
    }
    Value::Object(m)
}

/// Compares a table without a key whose rows fit one range as multisets of rows; returns the
/// PostgreSQL rows compared.
async fn multiset(
    pg: &mut Pg,
    reader: &mut TableReader,
    schema: &TableSchema,
    target: &TargetTable,
    rows: usize,
    diffs: &mut Diffs,
) -> Result<u64> {
    let canonical = |cells: &[CellText]| -> Vec<CellText> {
        target
            .columns
            .iter()
            .zip(cells)
            .map(|(c, v)| v.as_ref().map(|t| cells::canonical_cell(&c.sr_type, t)))
            .collect()
    };
    let query =
        format!("SELECT {} FROM {} LIMIT {}", schema.select_list(), schema.name.quoted(), rows + 1);
    let lines = pg.copy(&format!("cannot read the rows of {}", schema.name), &query).await?;
    // Canonical row → (PostgreSQL rows minus StarRocks rows, the first row seen).
    let mut counts: BTreeMap<Vec<CellText>, (i64, Vec<CellText>)> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let cells = cells::expected_row(target, line, i as u64 + 1).map_err(|e| {
            verify_error(
                &schema.name,
                None,
                e.column.as_deref(),
                &format!("a value the snapshot could not have loaded: {e}"),
            )
        })?;
        counts.entry(canonical(&cells)).or_insert((0, cells)).0 += 1;
    }
    for cells in reader.read_some(target, rows + 1).await? {
        counts.entry(canonical(&cells)).or_insert((0, cells)).0 -= 1;
    }
    let row_json = |cells: &[CellText]| -> Value {
        let mut m = serde_json::Map::new();
        for (c, v) in target.columns.iter().zip(cells) {
            m.insert(
                c.source_name.clone(),
                v.as_ref().map_or(Value::Null, |t| {
                    Value::String(String::from_utf8_lossy(t).into_owned())
                }),
            );
        }
        Value::Object(m)
    };
    for (n, cells) in counts.values() {
        let kind = if *n > 0 { DifferenceKind::Missing } else { DifferenceKind::Extra };
        for _ in 0..n.unsigned_abs() {
            diffs.add(row_json(cells), kind, Vec::new());
        }
    }
    Ok(lines.len() as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sample_intervals_cover_first_and_last_and_merge() {
        let job = |mode| {
            VerifyJob::new(Connection::new(""), StarRocksSinkBuilder::new("http://fe:8030", "d"))
                .with_mode(mode)
        };
        let s = job(VerifyMode::Sample { ranges: 2, rows: 10 });
        assert_eq!(s.intervals(1000, 10), [(0, 10), (333, 343), (666, 676), (990, 1000)]);
        assert_eq!(s.intervals(25, 10), [(0, 25)]);
        assert_eq!(s.intervals(0, 10), [(0, 0)]);
        assert_eq!(job(VerifyMode::Full).intervals(1000, 10), [(0, 1000)]);
    }

    #[test]
    fn pg_bounds_expand_lexicographically() {
        let e = ["\"a\"".to_owned(), "\"b\" COLLATE \"C\"".to_owned()];
        assert_eq!(
            pg_after(&e, &["1".into(), "it's".into()], true),
            "((\"a\" > '1') OR (\"a\" = '1' AND \"b\" COLLATE \"C\" >= 'it''s'))"
        );
        assert_eq!(pg_after(&e[..1], &[r"x\y".into()], false), r#"(("a" > E'x\\y'))"#);
    }

    #[test]
    fn report_json_keeps_the_contract_names() {
        let r = VerifyReport {
            report_version: REPORT_VERSION,
            verdict: VerifyVerdict::NotFinal,
            mode: VerifyMode::Full,
            database: "d".into(),
            not_final: Some("why".into()),
            cutover: None,
            snapshot: "1:1:".into(),
            tables: vec![TableVerify {
                source: "public.t".into(),
                target: "d.t".into(),
                rows_source: 1,
                rows_target: 1,
                compared: 1,
                mode: "full",
                ranges: 1,
                differences: vec![Difference {
                    key: json!({"id": "1"}),
                    kind: DifferenceKind::Different,
                    columns: vec!["v".into()],
                }],
                difference_counts: DifferenceCounts::default(),
                not_compared: None,
                equal: false,
                elapsed_s: 0.0,
                rows_per_second: 0.0,
            }],
            elapsed_s: 0.0,
            warnings: vec![],
        };
        let j = r.to_json();
        assert_eq!(j["verdict"], "not_final");
        assert_eq!(j["mode"], "full");
        let t = &j["tables"][0];
        for k in ["source", "target", "rows_source", "rows_target", "compared", "differences"] {
            assert!(t.get(k).is_some(), "{k}");
        }
        assert_eq!(
            t["differences"][0],
            json!({"key": {"id": "1"}, "kind": "different", "columns": ["v"]})
        );
    }
}

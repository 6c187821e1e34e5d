//! **Routine Load** from Kafka (JSON) in the StarRocks **test double**: the statements over the
//! MySQL front, a job runner that consumes real Kafka partitions (rdkafka), and a pure evaluator
//! ([`RoutineLoadDef::parse`] + [`RoutineLoadDef::map_message`]) that other crates' unit tests
//! can use without Kafka.
//!
//! It follows `/work/shared/specs/routine-load-parity.md` (§N below) and
//! `/work/shared/specs/starrocks.md` §4, plus facts the lead sourced from StarRocks' code. The
//! governing rules: the double never accepts a statement StarRocks would reject, it refuses
//! what it does not model with a message starting with `test double:`, and **where StarRocks'
//! handling of a bad value is unconfirmed, the double takes the worst case** (the value
//! silently becomes NULL or is truncated, or the job stalls), so that no test passes because the
//! double is kinder than StarRocks.
//!
//! # Statements (MySQL front)
//!
//! - `CREATE ROUTINE LOAD [db.]job ON table COLUMNS (...) PROPERTIES (...) FROM KAFKA (...)`
//!   in the shape pgsnap renders: `COLUMNS` lists, in `jsonpaths` order, one name per jsonpath
//!   (a table column's name maps it *directly*, any other name is a *temp* column), then
//!   `col = <expr>` items (derived columns; `__op` = 0 upsert / 1 delete on Primary Key tables).
//!   Checked: the database and table exist; the job name is unused in the database by a job
//!   that is not STOPPED/CANCELLED (`Name <job> already used in db <db>`); unknown job
//!   properties fail with StarRocks' `<name> is invalid property` (and
//!   `pause_on_fatal_parse_error` exists only from 3.3.12 / 3.4.2 / 3.5.0, see
//!   [`StarRocksVersion::has_pause_on_fatal_parse_error`]); `format` must be `json` and
//!   `jsonpaths` given, with as many paths as source names; `kafka_partitions` and
//!   `kafka_offsets` have equally many entries (`Partitions number should be equals to offsets
//!   number`), offsets are non-negative integers, `OFFSET_BEGINNING` or `OFFSET_END`; every NOT
//!   NULL column is mapped; `__op` only on Primary Key tables; every function and operator
//!   outside the modelled subset is refused by name (`test double: function upper is not
//!   modelled`).
//! - `PAUSE ROUTINE LOAD FOR [db.]job`, `RESUME ROUTINE LOAD FOR [db.]job`,
//!   `STOP ROUTINE LOAD FOR [db.]job` (an unknown job: `There is no job named <job> in db <db>.
//!   Include history? false`).
//! - `SHOW [ALL] ROUTINE LOAD [FOR [db.]job] [FROM db]`: the columns of spec §6 in order (Id,
//!   Name, CreateTime, PauseTime, EndTime, DbName, TableName, State, DataSourceType,
//!   CurrentTaskNum, JobProperties, DataSourceProperties, CustomProperties, Statistic, Progress,
//!   TimestampProgress, ReasonOfStateChanged, ErrorLogUrls, TrackingSQL, OtherMsg,
//!   LatestSourcePosition), JSON text in the JSON-valued columns. Without `ALL`, STOPPED and
//!   CANCELLED jobs are hidden.
//!
//! # Expressions
//!
//! Backtick (or bare) identifiers naming source slots, single-quoted string literals, integer
//! literals, `NULL`, `coalesce`, `if`, `concat`, `parse_json`, `json_query(json, '$.a[0]')`,
//! `=`, `IS [NOT] NULL`, `AND`, `OR`, parentheses. Semantics (sourced): source slots used by
//! expressions are VARCHAR; `parse_json` is `parse_json_or_string`; `json_query` gives SQL NULL
//! for a missing path and JSON `null` for a null leaf; `concat` is NULL if any argument is;
//! `if` treats a NULL condition as false; comparisons with NULL are NULL.
//!
//! # One message → one row
//!
//! The message value (the key is ignored): empty or a tombstone → no row, the offset advances;
//! not a JSON object → a *fatal parse error* for the task (see below). Otherwise each jsonpath
//! is evaluated (missing or JSON null → NULL):
//!
//! - **direct columns** convert as StarRocks' JSON scanner does (§1; native for TINYINT–BIGINT,
//!   FLOAT, DOUBLE, BOOLEAN, CHAR, VARCHAR, JSON, ARRAY; through VARCHAR and CAST for DATE,
//!   DATETIME, DECIMAL, LARGEINT). A failed conversion is NULL; with `strict_mode=true` a
//!   non-null source that converts to NULL **filters the row**. A failed ARRAY element is a
//!   NULL element and never filters;
//! - **temp columns** are VARCHAR: a string unescaped, a number as written, a boolean `1`/`0`,
//!   an object or array minified;
//! - **derived columns** evaluate their expression and CAST the result to the column type; a
//!   failed CAST is NULL silently (never filtered by strict mode), an over-length VARCHAR
//!   **filters the row**;
//! - NULL in a NOT NULL column **filters the row**, in any mode (also for `__op` = 1 rows).
//!
//! Cells use the same canonical text as Stream Load ([`super::Cell`]), FLOAT/DOUBLE
//! `NaN`, `Infinity`, `-Infinity` included.
//!
//! # Jobs
//!
//! One thread per job assigns the listed partitions at the job's offsets (no consumer group,
//! no commits to Kafka) and consumes in **batches**: it polls until no message came for
//! [`StarRocksOptions::routine_load_batch_interval`](super::StarRocksOptions) (default 100 ms),
//! for at most ten intervals or 100000 messages. Each batch maps every message, then applies
//! the rows atomically in message order (Primary Key tables upsert by key, `__op` = 1 deletes;
//! Duplicate Key tables append) and advances the per-partition progress past every message of
//! the batch, including filtered ones and tombstones.
//!
//! - Filtered rows count toward `max_error_number` (default 0) in StarRocks' error window
//!   (`10 × max_batch_rows` rows, reset when the job pauses). When the window's error rows
//!   exceed it (or their ratio exceeds `max_filter_ratio`), the job goes PAUSED **after** the
//!   batch was committed without those rows, with `ErrorReason{errCode = 102, msg='current
//!   error rows is more than max error num'}`. The filtered rows' reasons go to an error log
//!   served by the BE's `/api/_load_error_log?file=` (ErrorLogUrls) and to
//!   [`RoutineLoadStatus::errors`].
//! - A fatal parse error fails the whole task: nothing of the batch is applied and progress
//!   does not move. With `pause_on_fatal_parse_error=true` the job goes PAUSED
//!   (`errCode = 104`); otherwise the same offsets are retried after one batch interval, again
//!   and again (the job is stuck, as in StarRocks).
//! - States: NEED_SCHEDULE (created or resumed) → RUNNING (consuming) → PAUSED (errors or
//!   `PAUSE`) → `RESUME` → NEED_SCHEDULE, continuing from Progress; `STOP` → STOPPED
//!   (terminal); a dropped table or database → CANCELLED. The threads stop when the
//!   [`StarRocksDouble`](super::StarRocksDouble) is dropped.
//! - Progress (SHOW) is the last consumed offset per partition (next − 1) as a string,
//!   `OFFSET_ZERO` when nothing was consumed from offset 0; `OFFSET_BEGINNING`/`OFFSET_END` are
//!   resolved to offsets (`fetch_watermarks`) when the job first starts. LatestSourcePosition
//!   is the high watermark, refreshed about every 200 ms.
//!
//! # Worst-case choices for unconfirmed behaviour
//!
//! - Numbers (integers, floats, decimals) are never trimmed of whitespace; `NaN` must be the
//!   whole rest of the text; a finite-looking float that overflows `f64` fails.
//! - `CAST(varchar AS INT/BIGINT/LARGEINT)` of `1.5` or `1e3` is NULL (also LARGEINT from a
//!   JSON number with a fraction); DATE/DATETIME from numbers or compact texts (`20240102`) is
//!   NULL; a digit right after the date or the seconds makes the value NULL; other trailing
//!   text after a valid date/time is silently dropped (§2, D).
//! - CAST of an expression result to BOOLEAN uses the JSON scanner's string rule.
//! - `__op` evaluating to NULL is an **upsert**, silently; a value other than 0/1 filters the
//!   row (`test double:`).
//! - A message that starts with `{` but is not one valid JSON object (bad JSON, trailing
//!   documents), a top-level array, or non-UTF-8 bytes: a fatal parse error, like a message
//!   that does not start with `{` (`illegal json started with <c>`).
//! - Duplicate keys in a message: the last one wins.
//! - The errCode of a parse-error pause (104), of a manual pause (100) and the exact
//!   ReasonOfStateChanged texts, the keys of JobProperties/DataSourceProperties, and
//!   Statistic's rates are approximations.
//!
//! # Not emulated
//!
//! - CSV Routine Load, Avro / schema registry, `json_root`, `strip_outer_array=true`, JSON
//!   Routine Load without `jsonpaths`, jsonpaths other than `$.a.b`, `WHERE`, `PARTITION`,
//!   `COLUMNS TERMINATED BY`, `partial_update=true`, `partial_update_mode`,
//!   `merge_condition`, `envelope`, VARBINARY columns, ARRAY results of expressions: refused.
//! - Expressions beyond the subset above (other functions, arithmetic, `->`, `CASE`, `NOT`,
//!   casts between JSON and other types, mixed-type comparisons), expressions that refer to a
//!   directly mapped table column (which would turn its slot into VARCHAR) or to another
//!   derived column, `__op` mapped directly from a jsonpath: refused.
//! - `kafka_partitions` must be given (no "all partitions"); CREATE does not check that the
//!   topic or partitions exist (the job pauses when a partition is missing);
//!   `property.group.id`/`client.id`/`kafka_default_offsets` are the only custom properties
//!   (the first two are ignored), no security settings.
//! - `ALTER ROUTINE LOAD`, `SHOW ROUTINE LOAD TASK`, `WHERE`/`ORDER BY`/`LIMIT` in SHOW,
//!   `information_schema.routine_load_jobs`, `information_schema.loads` entries, transactions
//!   and labels for the tasks (no [`Txn`](super::Txn) is recorded).
//! - Concurrency: one consumer per job (`desired_concurrent_number` is validated, not used);
//!   `max_batch_interval`, `task_consume_second`, `task_timeout_second`, `timezone` are
//!   validated and ignored (no modelled function depends on the timezone), the batch boundaries
//!   come from the double's own interval.
//! - The offset-lag column, `partitionLagTime`, the UNSTABLE sub-state, task scheduling
//!   delays, FE/BE failures.

mod expr;
mod job;
mod scanner;
mod sql;

use std::collections::BTreeMap;

use super::catalog::{Cell, ColumnDef, KeysType, PendingRow, SrType, TableDef};
use super::ddl::{ER_NOT_SUPPORTED_YET, SqlError};
use super::json::{self, JV};
use super::value;
use expr::{Expr, Ty, Val};

pub(crate) use job::{Manager, execute};
pub(crate) use sql::{RlStatement, parse_statement};

/// A StarRocks release number, e.g. `3.4.2`: it decides which Routine Load properties exist
/// and what `current_version()` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StarRocksVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl StarRocksVersion {
    /// Parses `3.4.2` (a `-<hash>` or ` <hash>` suffix is ignored); `None` otherwise.
    pub fn parse(text: &str) -> Option<StarRocksVersion> {
        let core = text.trim().split(['-', ' ']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let v = StarRocksVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }

    /// Whether `pause_on_fatal_parse_error` is a known job property: since v3.3.12 on the 3.3
    /// line, v3.4.2 on the 3.4 line, and in every 3.5+ / 4.x release (sourced).
    pub fn has_pause_on_fatal_parse_error(&self) -> bool {
        match (self.major, self.minor) {
            (3, 3) => self.patch >= 12,
            (3, 4) => self.patch >= 2,
            (3, m) => m >= 5,
            (m, _) => m >= 4,
        }
    }

    /// What `SELECT current_version()` prints: `<version>-<7 hex digits>` (e.g.
    /// `3.5.6-3ba6b8d`; the hex digits are derived from the version).
    pub fn current_version(&self) -> String {
        use sha1::{Digest, Sha1};
        let digest = Sha1::digest(self.to_string().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{self}-{}", &hex[..7])
    }
}

impl std::fmt::Display for StarRocksVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Default for StarRocksVersion {
    /// `3.4.2`, the first 3.4 release with `pause_on_fatal_parse_error`.
    fn default() -> Self {
        StarRocksVersion { major: 3, minor: 4, patch: 2 }
    }
}

/// A start offset of `kafka_offsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaOffset {
    /// A non-negative offset (inclusive).
    Offset(i64),
    /// `OFFSET_BEGINNING`.
    Beginning,
    /// `OFFSET_END`.
    End,
}

/// One item of the `COLUMNS` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnItem {
    /// A name filled from the jsonpath at the same position among the sources.
    Source(String),
    /// `name = expr`.
    Derived(String, Expr),
}

impl ColumnItem {
    fn name(&self) -> &str {
        match self {
            ColumnItem::Source(n) | ColumnItem::Derived(n, _) => n,
        }
    }
}

/// A parsed `CREATE ROUTINE LOAD` statement (the job definition), usable without a double:
/// [`RoutineLoadDef::map_message`] maps one Kafka message onto a table as the double's jobs
/// do (see the [module doc](self)).
///
/// # Example
///
/// ```
/// use pgsnap_test_support::starrocks::routine_load::{MessageOutcome, RoutineLoadDef};
/// use pgsnap_test_support::starrocks::{KeysType, table_def};
///
/// let def = RoutineLoadDef::parse(
///     r#"CREATE ROUTINE LOAD db.j ON t
///        COLUMNS (`op`, `k`, `id` = `k`, `__op` = if(`op` = 'd', 1, 0))
///        PROPERTIES ("format" = "json", "jsonpaths" = "[\"$.op\",\"$.after.id\"]")
///        FROM KAFKA ("kafka_broker_list" = "127.0.0.1:9092", "kafka_topic" = "t",
///                    "kafka_partitions" = "0", "kafka_offsets" = "0")"#,
/// )
/// .unwrap();
/// let table = table_def("t", KeysType::Primary, &["id"], &[("id", "BIGINT", false)]);
/// let out = def.map_message(&table, Some(br#"{"op":"c","after":{"id":7}}"#)).unwrap();
/// let MessageOutcome::Row(row) = out else { panic!("{out:?}") };
/// assert_eq!(row.cells, vec![Some("7".to_owned())]);
/// assert!(!row.delete);
/// ```
#[derive(Debug, Clone)]
pub struct RoutineLoadDef {
    sql: String,
    db: Option<String>,
    name: String,
    table: String,
    items: Vec<ColumnItem>,
    columns_text: String,
    jsonpaths: Vec<String>,
    paths: Vec<Vec<String>>,
    strict_mode: bool,
    timezone: Option<String>,
    max_error_number: u64,
    max_filter_ratio: f64,
    max_batch_rows: u64,
    pause_on_fatal_parse_error: bool,
    job_properties: BTreeMap<String, String>,
    broker_list: String,
    topic: String,
    partitions: Vec<i32>,
    offsets: Vec<KafkaOffset>,
    custom_properties: BTreeMap<String, String>,
}

/// What one Kafka message becomes.
#[derive(Debug, Clone)]
pub enum MessageOutcome {
    /// A row to apply (`delete` for `__op` = 1).
    Row(PendingRow),
    /// The row is filtered (counted as an error row), with the reason.
    Filtered(String),
    /// No row (an empty value or a tombstone); the offset still advances.
    NoRow,
    /// The message is not a JSON object: the task fails (see the [module doc](self)).
    ParseError(String),
}

/// A definition bound to a table: what each source and derived item fills.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    columns: Vec<ColumnDef>,
    /// Per source item (jsonpath order): its path and, for a direct column, its index.
    sources: Vec<(Vec<String>, Option<usize>)>,
    /// Derived items: the column index (`None` for `__op`) and the resolved expression.
    derived: Vec<(Option<usize>, Expr)>,
    strict: bool,
}

impl RoutineLoadDef {
    /// Parses a `CREATE ROUTINE LOAD` statement as the double would with its default version
    /// (3.4.2); see [`RoutineLoadDef::parse_for_version`].
    ///
    /// # Errors
    ///
    /// The error message the double's MySQL front would send (StarRocks' text, or one starting
    /// with `test double:` for what is not modelled).
    pub fn parse(sql: &str) -> Result<RoutineLoadDef, String> {
        Self::parse_for_version(sql, &StarRocksVersion::default())
    }

    /// Parses a `CREATE ROUTINE LOAD` statement with the job properties of `version`.
    ///
    /// # Errors
    ///
    /// As [`RoutineLoadDef::parse`]; e.g. `pause_on_fatal_parse_error is invalid property`
    /// before 3.3.12.
    pub fn parse_for_version(
        sql: &str,
        version: &StarRocksVersion,
    ) -> Result<RoutineLoadDef, String> {
        match parse_statement(sql, version).map_err(|e| e.message)? {
            RlStatement::Create(def) => Ok(*def),
            _ => Err("not a CREATE ROUTINE LOAD statement".into()),
        }
    }

    /// The statement text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The database, if the job name was qualified.
    pub fn db(&self) -> Option<&str> {
        self.db.as_deref()
    }

    /// The job name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The target table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The `jsonpaths`, as given.
    pub fn jsonpaths(&self) -> &[String] {
        &self.jsonpaths
    }

    /// `strict_mode` (default false).
    pub fn strict_mode(&self) -> bool {
        self.strict_mode
    }

    /// `max_error_number` (default 0).
    pub fn max_error_number(&self) -> u64 {
        self.max_error_number
    }

    /// `pause_on_fatal_parse_error` (default false).
    pub fn pause_on_fatal_parse_error(&self) -> bool {
        self.pause_on_fatal_parse_error
    }

    /// `kafka_broker_list`.
    pub fn broker_list(&self) -> &str {
        &self.broker_list
    }

    /// `kafka_topic`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// `kafka_partitions`, in order.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// The start offset of each partition (same order as [`RoutineLoadDef::partitions`]).
    pub fn offsets(&self) -> &[KafkaOffset] {
        &self.offsets
    }

    /// Checks the definition against `table` as CREATE does (mapping, types, NOT NULL columns,
    /// `__op`).
    ///
    /// # Errors
    ///
    /// The error message of the refused CREATE.
    pub fn check_table(&self, table: &TableDef) -> Result<(), String> {
        self.bind(table).map(|_| ())
    }

    /// Maps one message value (`None` = tombstone) onto `table`, with the statement's strict
    /// mode, as a running job would.
    ///
    /// # Errors
    ///
    /// When the definition does not fit the table ([`RoutineLoadDef::check_table`]).
    pub fn map_message(
        &self,
        table: &TableDef,
        value: Option<&[u8]>,
    ) -> Result<MessageOutcome, String> {
        Ok(self.bind(table)?.map(value))
    }

    /// Binds the items to the table's columns.
    pub(crate) fn bind(&self, table: &TableDef) -> Result<Bound, String> {
        let find =
            |name: &str| table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
        let primary = table.keys_type == KeysType::Primary;
        let sources_items: Vec<&str> = self
            .items
            .iter()
            .filter_map(|i| if let ColumnItem::Source(n) = i { Some(n.as_str()) } else { None })
            .collect();
        let mut sources = Vec::new();
        let mut mapped = vec![false; table.columns.len()];
        for (name, path) in sources_items.iter().zip(&self.paths) {
            if name.eq_ignore_ascii_case("__op") {
                return Err("test double: __op mapped directly from a jsonpath is not modelled; \
                            use `__op` = <expression>"
                    .into());
            }
            let idx = find(name);
            if let Some(i) = idx {
                check_loadable(&table.columns[i])?;
                mapped[i] = true;
            }
            sources.push((path.clone(), idx));
        }
        let mut derived = Vec::new();
        for item in &self.items {
            let ColumnItem::Derived(name, e) = item else { continue };
            let resolve = |n: &str| -> Result<usize, String> {
                match sources_items.iter().position(|s| s.eq_ignore_ascii_case(n)) {
                    Some(i) if sources[i].1.is_some() => Err(format!(
                        "test double: the table column '{n}' is mapped directly and used in an \
                         expression (its slot would become VARCHAR); not modelled"
                    )),
                    Some(i) => Ok(i),
                    None if self.items.iter().any(|it| it.name().eq_ignore_ascii_case(n)) => {
                        Err(format!(
                            "test double: an expression referring to the derived column '{n}' \
                             is not modelled"
                        ))
                    }
                    None => Err(format!("Unknown column '{n}' in COLUMNS")),
                }
            };
            let resolved = e.resolve(&resolve)?;
            let ty = e.ty().map_err(|e| e.message)?;
            let target = if name.eq_ignore_ascii_case("__op") {
                if !primary {
                    return Err(format!(
                        "test double: __op is only modelled for Primary Key tables; '{}' is not one",
                        table.name
                    ));
                }
                if !matches!(ty, Ty::Int | Ty::Bool | Ty::Varchar | Ty::Null) {
                    return Err(format!("test double: __op of type {ty:?} is not modelled"));
                }
                None
            } else {
                let Some(i) = find(name) else {
                    return Err(format!(
                        "Unknown column '{name}' in table '{}' (COLUMNS)",
                        table.name
                    ));
                };
                let col = &table.columns[i];
                check_loadable(col)?;
                check_cast(ty, &col.ty).map_err(|what| {
                    format!(
                        "test double: casting a {what} expression to {} (column '{}') is not \
                         modelled",
                        col.type_text, col.name
                    )
                })?;
                mapped[i] = true;
                Some(i)
            };
            derived.push((target, resolved));
        }
        for (col, m) in table.columns.iter().zip(&mapped) {
            if !m && !col.nullable {
                return Err(format!(
                    "test double: NOT NULL column '{}' is not mapped in COLUMNS (column defaults \
                     are not modelled)",
                    col.name
                ));
            }
        }
        Ok(Bound { columns: table.columns.clone(), sources, derived, strict: self.strict_mode })
    }
}

/// Refuses column types the double cannot load.
fn check_loadable(col: &ColumnDef) -> Result<(), String> {
    if col.ty == SrType::Varbinary {
        return Err(format!(
            "test double: Routine Load into the VARBINARY column '{}' is not modelled",
            col.name
        ));
    }
    Ok(())
}

/// Which expression results the double casts into which column types; `Err` names the
/// result type.
fn check_cast(ty: Ty, col: &SrType) -> Result<(), &'static str> {
    let integer = *col == SrType::Boolean || value::int_range(col).is_some();
    let ok = match ty {
        Ty::Null => true,
        Ty::Varchar => !matches!(col, SrType::Array(_) | SrType::Varbinary),
        Ty::Int => {
            integer
                || matches!(
                    col,
                    SrType::Float
                        | SrType::Double
                        | SrType::Decimal(..)
                        | SrType::Char(_)
                        | SrType::Varchar(_)
                )
        }
        Ty::Bool => integer,
        Ty::Json => *col == SrType::Json,
    };
    if ok { Ok(()) } else { Err(ty.name()) }
}

/// CASTs an expression result to a column type: `Ok(None)` is NULL (a failed CAST, silently),
/// `Err` filters the row (an over-length VARCHAR). A BIGINT casts as its decimal text does
/// (the same value for every column type [`check_cast`] lets through).
fn cast_result(ty: &SrType, v: Val) -> Result<Cell, String> {
    let text = match v {
        Val::Null => return Ok(None),
        // Only into BOOLEAN and integer columns (`check_cast`): 1 or 0.
        Val::Bool(b) => return Ok(Some(if b { "1" } else { "0" }.to_owned())),
        Val::Json(j) => return Ok(Some(value::json_cell(&j))),
        Val::Str(s) => s,
        Val::Int(i) => i.to_string(),
    };
    match value::cast_varchar(ty, &text) {
        Ok(c) => Ok(Some(c)),
        Err(value::CastError::Null(_)) => Ok(None),
        Err(value::CastError::Filter(m)) => Err(m),
    }
}

/// A [`SqlError`] for what the double refuses because it does not model it (1235).
fn not_modelled(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(ER_NOT_SUPPORTED_YET, format!("test double: {what} is not modelled"))
}

impl Bound {
    /// Maps one message value (see the module doc).
    pub(crate) fn map(&self, value: Option<&[u8]>) -> MessageOutcome {
        let bytes = match value {
            Some(b) if !b.is_empty() => b,
            _ => return MessageOutcome::NoRow,
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return MessageOutcome::ParseError(
                "test double: the message is not valid UTF-8 (treated as a fatal parse error)"
                    .into(),
            );
        };
        match text.trim_start().chars().next() {
            None => return MessageOutcome::NoRow,
            Some('{') => {}
            Some('[') => {
                return MessageOutcome::ParseError(
                    "test double: a JSON array message (strip_outer_array=false) is treated as a \
                     fatal parse error"
                        .into(),
                );
            }
            Some(c) => return MessageOutcome::ParseError(format!("illegal json started with {c}")),
        }
        let doc = match json::parse_json(text) {
            Ok(d) => d,
            Err(e) => {
                return MessageOutcome::ParseError(format!(
                    "test double: the message is not one valid JSON object ({e}); treated as a \
                     fatal parse error"
                ));
            }
        };
        let mut cells: Vec<Cell> = vec![None; self.columns.len()];
        let mut slots: Vec<Option<String>> = Vec::with_capacity(self.sources.len());
        for (path, target) in &self.sources {
            let j = doc.navigate(path).filter(|j| !matches!(j.v, JV::Null));
            match (target, j) {
                (_, None) => slots.push(None),
                (None, Some(j)) => slots.push(Some(scanner::varchar_text(j))),
                (Some(idx), Some(j)) => {
                    slots.push(None);
                    let col = &self.columns[*idx];
                    match scanner::convert(&col.ty, j) {
                        Ok(c) => cells[*idx] = Some(c),
                        Err(e) if self.strict => {
                            return MessageOutcome::Filtered(format!(
                                "column '{}' ({}): value {}: {e} (strict mode filters a non-null \
                                 value that converts to NULL)",
                                col.name, col.type_text, j.raw
                            ));
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        let mut delete = false;
        for (target, e) in &self.derived {
            let v = e.eval(&slots);
            match target {
                None => {
                    delete = match &v {
                        Val::Null => false,
                        Val::Int(0) | Val::Bool(false) => false,
                        Val::Int(1) | Val::Bool(true) => true,
                        Val::Str(s) if s == "0" || s == "1" => s == "1",
                        other => {
                            return MessageOutcome::Filtered(format!(
                                "test double: __op must be 0 or 1, got {other:?}"
                            ));
                        }
                    }
                }
                Some(idx) => {
                    let col = &self.columns[*idx];
                    match cast_result(&col.ty, v) {
                        Ok(c) => cells[*idx] = c,
                        Err(e) => {
                            return MessageOutcome::Filtered(format!(
                                "column '{}' ({}): {e}",
                                col.name, col.type_text
                            ));
                        }
                    }
                }
            }
        }
        for (cell, col) in cells.iter().zip(&self.columns) {
            if cell.is_none() && !col.nullable {
                return MessageOutcome::Filtered(format!(
                    "NULL value in non-nullable column '{}'",
                    col.name
                ));
            }
        }
        MessageOutcome::Row(PendingRow { cells, delete })
    }
}

/// The state of a Routine Load job (spec §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutineLoadState {
    /// Created or resumed, not consuming yet.
    #[default]
    NeedSchedule,
    /// Consuming.
    Running,
    /// Paused (errors, or `PAUSE`); `RESUME` continues.
    Paused,
    /// Stopped (terminal).
    Stopped,
    /// Cancelled (terminal: its table or database was dropped).
    Cancelled,
}

impl RoutineLoadState {
    /// The name SHOW ROUTINE LOAD prints.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutineLoadState::NeedSchedule => "NEED_SCHEDULE",
            RoutineLoadState::Running => "RUNNING",
            RoutineLoadState::Paused => "PAUSED",
            RoutineLoadState::Stopped => "STOPPED",
            RoutineLoadState::Cancelled => "CANCELLED",
        }
    }

    /// STOPPED or CANCELLED.
    pub fn is_final(self) -> bool {
        matches!(self, RoutineLoadState::Stopped | RoutineLoadState::Cancelled)
    }
}

/// A snapshot of a Routine Load job (see [`StarRocksDouble::routine_load`](super::StarRocksDouble::routine_load)).
#[derive(Debug, Clone)]
pub struct RoutineLoadStatus {
    /// The job id.
    pub id: i64,
    /// The database.
    pub db: String,
    /// The job name.
    pub name: String,
    /// The table.
    pub table: String,
    /// The state.
    pub state: RoutineLoadState,
    /// ReasonOfStateChanged (`ErrorReason{errCode = 102, msg='...'}`), if any.
    pub reason: Option<String>,
    /// The next offset to consume per partition (once resolved; before the job first ran,
    /// `-2` stands for OFFSET_BEGINNING and `-1` for OFFSET_END).
    pub progress: BTreeMap<i32, i64>,
    /// The high watermark last seen per partition (LatestSourcePosition).
    pub latest_source_position: BTreeMap<i32, i64>,
    /// Rows applied.
    pub loaded_rows: u64,
    /// Rows filtered (errorRows).
    pub filtered_rows: u64,
    /// loaded + filtered.
    pub total_rows: u64,
    /// Bytes of message values consumed by committed tasks.
    pub received_bytes: u64,
    /// Committed tasks (batches with at least one message).
    pub committed_tasks: u64,
    /// Failed tasks (fatal parse errors).
    pub aborted_tasks: u64,
    /// The reason of every filtered row and every fatal parse error, in order.
    pub errors: Vec<String>,
    /// The error logs of batches with filtered rows (BE `/api/_load_error_log?file=` URLs).
    pub error_log_urls: Vec<String>,
    /// The last task failure or consumer problem (OtherMsg).
    pub other_msg: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |s: &str| StarRocksVersion::parse(s).unwrap();
        assert!(!v("3.3.11").has_pause_on_fatal_parse_error());
        assert!(v("3.3.12").has_pause_on_fatal_parse_error());
        assert!(!v("3.4.1").has_pause_on_fatal_parse_error());
        assert!(v("3.4.2").has_pause_on_fatal_parse_error());
        assert!(v("3.5.0").has_pause_on_fatal_parse_error());
        assert!(v("4.0.0").has_pause_on_fatal_parse_error());
        assert!(!v("3.2.15").has_pause_on_fatal_parse_error());
        assert_eq!(v("3.5.6-3ba6b8d"), v("3.5.6"));
        assert_eq!(v("2.1.2 0782ad7"), v("2.1.2"));
        assert!(StarRocksVersion::parse("3.4").is_none());
        let cv = v("3.4.2").current_version();
        assert!(cv.starts_with("3.4.2-") && cv.len() == 13, "{cv}");
    }
}

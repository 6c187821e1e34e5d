//! A StarRocks **TEST DOUBLE** (not StarRocks, and not for production): an in-process fake of
//! the parts of a StarRocks cluster that pgsnap's StarRocks sink talks to, following the
//! sourced spec `/work/shared/specs/starrocks.md` (§N below refers to it).
//!
//! [`StarRocksDouble::start`] binds three listeners on `127.0.0.1` (port 0 each):
//!
//! - **FE HTTP** ([`StarRocksDouble::fe_url`], like port 8030, §1.1 and §5.1):
//!   `PUT /api/{db}/{table}/_stream_load` checks Basic auth first (401 with
//!   `WWW-Authenticate: Basic realm=""` and a RestBaseResult body), then for HTTP/1.1 the
//!   mandatory `Expect: 100-continue` (200, `Connection: close`, `There is no 100-continue
//!   header`), then answers `307 Temporary Redirect` to the BE with an empty body and
//!   `Connection: close`. It never sends `100 Continue` and never reads the body; body bytes
//!   that reach it anyway are counted ([`StarRocksDouble::fe_body_bytes`]).
//!   `GET /api/{db}/get_load_state?label=` (§1.4) answers from the label store. The
//!   transaction interface `/api/transaction/{begin,load,prepare,commit,rollback}` (§2.2)
//!   redirects to the BE, except commit/rollback of a transaction the FE already owns.
//! - **BE HTTP** ([`StarRocksDouble::be_url`], like port 8040, §1.1 step 6–8 and §5.2): does
//!   every check (auth, size limits, format, timeout, begin with its database/table/label
//!   checks, the other headers) *before* `100 Continue`; on error it answers HTTP 200 with the
//!   §1.3 JSON and never sends `100 Continue` (and closes the connection if a body was
//!   announced, so that a body sent anyway is not taken for the next request). Then it reads
//!   the body (`Content-Length` or chunked; a length mismatch fails with `receive body don't
//!   equal with body bytes`), parses CSV or JSON, converts every value to the column type,
//!   applies `max_filter_ratio`, commits and answers with the §1.3 JSON (exact key order,
//!   4-space pretty printing). `GET /api/_load_error_log?file=` serves the error log of
//!   filtered rows. The transaction interface (§2) is served here too.
//! - **MySQL protocol** ([`StarRocksDouble::mysql_addr`], like port 9030): the front in
//!   `mysql.rs` (DDL, `information_schema`, `current_version()` of
//!   [`StarRocksOptions::version`]), sharing the same [`Catalog`], and **Routine Load** from
//!   Kafka (JSON): `CREATE`/`PAUSE`/`RESUME`/`STOP`/`SHOW ROUTINE LOAD`, with a consumer
//!   thread per job; see [`routine_load`] for what it does and does not emulate, and
//!   [`RoutineLoadDef`] for the pure evaluator other crates' unit tests can use.
//!
//! Labels (§1.4, §5.3) are unique per database among non-aborted transactions, with states
//! PREPARE → (PREPARED) → COMMITTED → VISIBLE, or ABORTED (which frees the label). Both
//! versions of the duplicate-label answer are available ([`DuplicateLabelStyle`]). Faults
//! can be injected ([`Fault`], [`StarRocksDouble::inject`]).
//!
//! Rows are stored as canonical text cells ([`Cell`]), the same on every path (Stream Load
//! CSV and JSON, Routine Load). Each sourced StarRocks conversion rule is implemented once, in
//! the private `value` module (`string_to_float`, `string_to_decimal`, the DATE/DATETIME
//! parser, `parse_json_or_string`, ...); Stream Load (`load.rs`) adds the extra strictness
//! listed below on top, Routine Load (`routine_load/`) follows the rules as sourced and takes
//! the worst case where they are not. The governing rule: **the double never accepts what
//! real StarRocks would reject**; where StarRocks' behaviour is unconfirmed the Stream Load
//! path rejects (or filters the row) with a message that starts with `test double:`.
//!
//! # Stream Load: sourced rules
//!
//! - FLOAT/DOUBLE (CSV, or a JSON string) use `string_to_float`: `NaN`/`nan` and any `inf…`
//!   prefix (`inf`, `Infinity`), with a sign, are stored as NaN/±infinity (canonical text
//!   `NaN`, `Infinity`, `-Infinity`).
//! - CSV into a JSON column is `parse_json_or_string`: text starting with `{`, `[` or `"` is
//!   parsed (invalid: filtered), anything else becomes a JSON *string* (`123` → `"123"`). A
//!   JSON body copies the value natively (`123` stays a number; objects are stored with sorted
//!   keys; a top-level `null` is SQL NULL).
//! - The JSON string `"\N"` into a string column is the text `\N` (the JSON scanner has no
//!   NULL check; only an unenclosed CSV `\N` is NULL).
//!
//! # Deliberately stricter than StarRocks (Stream Load)
//!
//! - `strict_mode=false`: StarRocks turns a failed conversion into NULL (§5.5); the double
//!   filters such rows in both modes.
//! - A `DECIMAL(p,s)` value with more than `s` non-zero fraction digits, which StarRocks
//!   rounds half-up (sourced), and exponent notation for DECIMAL: filtered.
//! - An enclosed `"\N"` in CSV, ARRAY values in CSV or as JSON strings, any VARBINARY value,
//!   blank CSV lines: filtered. An ARRAY element that fails conversion filters the row
//!   (StarRocks' JSON scanner makes it a NULL element, which Routine Load follows).
//! - DATE accepts only `YYYY-MM-DD`, DATETIME only `YYYY-MM-DD HH:MM:SS[.f{1,6}]` (one space
//!   as separator, valid time; StarRocks also takes `T`, `Z`, offsets, more fraction digits
//!   and a date-only fallback, which Routine Load follows); integers only plain decimal
//!   digits; JSON numbers with a fraction or an exponent for integer columns are filtered
//!   (StarRocks truncates); JSON numbers/booleans/objects for string, date and datetime
//!   columns are filtered.
//! - After a `Publish Timeout` the rows are applied only when the transaction turns VISIBLE
//!   (as in StarRocks); a later commit on the same table publishes earlier COMMITTED ones
//!   first (versions are published in order).
//! - Labels must match `^[-\w]{1,128}$` (whether Stream Load enforces it is UNCONFIRMED).
//! - `timeout` must be 1–259200; `max_filter_ratio` a number in 0–1 (StarRocks uses `strtod`).
//! - An empty body fails the load; a JSON body that does not parse, an array body without
//!   `strip_outer_array: true`, or a missing `json_root` fail the load.
//! - Stored canonical text: BOOLEAN `1`/`0`; DECIMAL with exactly `s` fraction digits;
//!   DATETIME `YYYY-MM-DD HH:MM:SS`, plus `.ffffff` (6 digits) only when the fraction is
//!   non-zero; FLOAT/DOUBLE in Rust's shortest round-trip form, `NaN`, `Infinity`,
//!   `-Infinity` (StarRocks may print differently); JSON as `serde_json` prints the value
//!   (keys sorted; a JSON *string* stays a string, `"123"` ≠ `123`, and JSON `null` is the
//!   text `null`, distinct from SQL NULL); ARRAY as JSON text of the converted elements
//!   (numbers and booleans bare, other scalars as JSON strings, `null`).
//!
//! # Not covered
//!
//! - Merge commit (`enable_merge_commit`), partial updates (`partial_update: true`),
//!   `merge_condition`, `where`, expressions in `columns` other than `__op = <column>` /
//!   `__op = <constant>`, unused source columns in `columns`, column defaults,
//!   `partitions`/`temporary_partitions`, `negative`, `envelope: debezium`: all rejected with
//!   a `test double:` message.
//! - The `escape` CSV header (semantics unconfirmed): rejected.
//! - Compression other than gzip and zstd (`bzip2`, `lz4`, `lz4_frame`, `deflate`): rejected.
//!   The `compression`/`Content-Encoding` header is only accepted for JSON.
//! - `timezone` is accepted and ignored: DATETIME is stored as sent. `load_mem_limit`,
//!   `load_dop`, `warehouse`, `log_rejected_record_num` are accepted and ignored.
//! - Real BE selection (one BE, no round-robin), shared-data mode, leader/follower FEs
//!   (`get_load_state` is answered directly), TLS, privileges other than the one user.
//! - Tablet versions ("Too many versions"), memory limits, `label_keep_max_second` expiry.
//! - The BE HTTP concurrency limit (only through [`Fault::Busy`]); the FE's "No backend
//!   alive."; the `list` transaction endpoint; multi-table transactions.
//! - The transaction interface's timeouts are checked lazily on each request (there is no
//!   30 s cleaner thread); the idle grace is [`StarRocksOptions::txn_idle_grace`].
//! - SQL on the MySQL front beyond the shapes listed in [`mysql`]: `IN` lists only on
//!   `information_schema` (not over stored rows), `UNION ALL` only of `COUNT(*)` selects (no
//!   `UNION` distinct), no statement-length or plan-size limits, and the rows of a `UNION ALL`
//!   always come in branch order (StarRocks promises none); all else is answered with a
//!   `test double:` message.

pub mod catalog;
mod ddl;
pub mod mysql;
pub mod routine_load;

mod be;
mod fe;
mod http;
mod json;
mod load;
mod txn;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use catalog::{
    Catalog, CatalogState, Cell, ColumnDef, Database, KeysType, PendingRow, SrType, TableDef, Txn,
    TxnState,
};
pub use routine_load::{
    KafkaOffset, MessageOutcome, RoutineLoadDef, RoutineLoadState, RoutineLoadStatus,
    StarRocksVersion,
};

/// How the double answers a Stream Load whose label is held by a non-aborted transaction
/// (spec §1.4, "Version caveat").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicateLabelStyle {
    /// ≤3.2 style: `"Status": "Label Already Exists"` with `"ExistingJobStatus"` `RUNNING`
    /// (PREPARE/PREPARED) or `FINISHED` (COMMITTED/VISIBLE), message
    /// `Label [<l>] has already been used.`
    #[default]
    AlreadyExists,
    /// Issue #57982 style (newer builds): `"Status": "Fail"`, no `ExistingJobStatus`, message
    /// `Label [<l>] has already been used.`
    FailHasBeenUsed,
}

/// Options of a [`StarRocksDouble`].
#[derive(Debug, Clone)]
pub struct StarRocksOptions {
    /// The one user (default `root`).
    pub user: String,
    /// Its password (default empty).
    pub password: String,
    /// The duplicate-label answer.
    pub duplicate_label_style: DuplicateLabelStyle,
    /// The host the FE puts in its `Location` redirects and the BE in `ErrorURL`
    /// (default `127.0.0.1`).
    pub fe_redirect_host: String,
    /// BE `streaming_load_max_mb` in bytes (default 10240 MB).
    pub max_body_bytes: u64,
    /// BE `streaming_load_max_batch_size_mb` in bytes: the JSON cap without
    /// `ignore_json_size` (default 100 MB).
    pub max_json_bytes: u64,
    /// How long the FE keeps reading after it answered, to count body bytes that a client
    /// wrongly sends to it; also how long the BE keeps discarding input after it closed its
    /// side of a connection, so that the client reads the answer rather than a reset
    /// (default 100 ms).
    pub fe_drain_window: Duration,
    /// The grace the transaction interface adds to `idle_transaction_timeout` (StarRocks'
    /// cleaner adds 30 s; default 30 s).
    pub txn_idle_grace: Duration,
    /// Keep the rows each visible load applied (default off), for
    /// [`StarRocksDouble::applied_rows`].
    pub keep_load_rows: bool,
    /// The StarRocks release the double plays (default 3.4.2): `current_version()` prints it
    /// and the Routine Load job properties follow it
    /// ([`StarRocksVersion::has_pause_on_fatal_parse_error`]).
    pub version: StarRocksVersion,
    /// How long a Routine Load job waits for more messages before it applies a batch
    /// (default 100 ms; see [`routine_load`]).
    pub routine_load_batch_interval: Duration,
}

impl Default for StarRocksOptions {
    fn default() -> Self {
        StarRocksOptions {
            user: "root".into(),
            password: String::new(),
            duplicate_label_style: DuplicateLabelStyle::default(),
            fe_redirect_host: "127.0.0.1".into(),
            max_body_bytes: 10_240 * 1024 * 1024,
            max_json_bytes: 100 * 1024 * 1024,
            fe_drain_window: Duration::from_millis(100),
            txn_idle_grace: Duration::from_secs(30),
            keep_load_rows: false,
            version: StarRocksVersion::default(),
            routine_load_batch_interval: Duration::from_millis(100),
        }
    }
}

impl StarRocksOptions {
    /// Sets the StarRocks release the double plays, e.g. `"3.3.11"` (see
    /// [`StarRocksOptions::version`]).
    ///
    /// # Panics
    ///
    /// If `version` is not `major.minor.patch`.
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = StarRocksVersion::parse(version)
            .unwrap_or_else(|| panic!("test double: not a StarRocks version: {version:?}"));
        self
    }

    /// Sets how long a Routine Load job waits for more messages before it applies a batch.
    pub fn with_routine_load_batch_interval(mut self, interval: Duration) -> Self {
        self.routine_load_batch_interval = interval;
        self
    }

    /// Sets the user and password.
    pub fn with_user(mut self, user: &str, password: &str) -> Self {
        self.user = user.into();
        self.password = password.into();
        self
    }

    /// Sets the duplicate-label answer.
    pub fn with_duplicate_label_style(mut self, style: DuplicateLabelStyle) -> Self {
        self.duplicate_label_style = style;
        self
    }

    /// Sets the host used in redirects and error URLs.
    pub fn with_fe_redirect_host(mut self, host: &str) -> Self {
        self.fe_redirect_host = host.into();
        self
    }

    /// Sets the body size limit (`streaming_load_max_mb`, in bytes).
    pub fn with_max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets the JSON size cap (`streaming_load_max_batch_size_mb`, in bytes).
    pub fn with_max_json_bytes(mut self, bytes: u64) -> Self {
        self.max_json_bytes = bytes;
        self
    }

    /// Keeps the rows of every visible load, for [`StarRocksDouble::applied_rows`].
    pub fn with_keep_load_rows(mut self, keep: bool) -> Self {
        self.keep_load_rows = keep;
        self
    }

    /// Sets the transaction interface's idle grace.
    pub fn with_txn_idle_grace(mut self, grace: Duration) -> Self {
        self.txn_idle_grace = grace;
        self
    }
}

/// A fault to inject into the next Stream Load requests (see [`StarRocksDouble::inject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The BE answers `Fail` / `Stream Load exceed http cuncurrent limit 100, please try again
    /// later` before `100 Continue` (§1.1 step 6).
    Busy,
    /// The FE answers `503 Service Unavailable` (consumed by Stream Load requests reaching the
    /// FE, not the BE).
    ServerError,
    /// The BE closes the connection after reading `after_bytes` body bytes; nothing is
    /// committed (the transaction is aborted, freeing the label).
    ResetMidBody {
        /// Body bytes read before the connection is closed.
        after_bytes: u64,
    },
    /// The BE commits (the rows become VISIBLE), then closes the connection without answering
    /// (§5.4: tests the retry-with-the-same-label path).
    DropAfterCommit,
    /// The commit answers `Publish Timeout`: the transaction is COMMITTED and becomes VISIBLE
    /// (its rows applied) only after `visible_after` (§1.3).
    PublishTimeout {
        /// Delay until the transaction becomes VISIBLE.
        visible_after: Duration,
    },
    /// The load fails with `too many filtered rows` and an `ErrorURL`, even for good data.
    TooManyFiltered,
    /// The BE sleeps `delay` before its final answer.
    Slow {
        /// The delay.
        delay: Duration,
    },
    /// Begin fails with `unknown table "<db>.<table>"`.
    UnknownTable,
}

/// Restricts an injected fault to matching requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultFilter {
    /// Only requests with this label.
    pub label: Option<String>,
    /// Only requests for this table (compared case-insensitively).
    pub table: Option<String>,
}

impl FaultFilter {
    fn matches(&self, table: &str, label: Option<&str>) -> bool {
        self.table.as_deref().is_none_or(|t| t.eq_ignore_ascii_case(table))
            && self.label.as_deref().is_none_or(|l| label == Some(l))
    }
}

#[derive(Debug)]
struct FaultEntry {
    fault: Fault,
    remaining: usize,
    filter: FaultFilter,
}

/// Where a fault is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultSite {
    Fe,
    Be,
}

/// One Stream Load attempt that reached the BE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRecord {
    /// The label (generated when the request had none).
    pub label: String,
    /// The database from the path.
    pub db: String,
    /// The table from the path.
    pub table: String,
    /// The transaction id, `-1` when begin failed.
    pub txn_id: i64,
    /// The `Status` of the answer (`Success`, `Fail`, `Label Already Exists`,
    /// `Publish Timeout`); for attempts that got no answer, a description starting with
    /// `no response:`.
    pub status: String,
    /// The `Message` of the answer (or why there was none).
    pub message: String,
    /// Whether the BE sent `100 Continue`.
    pub sent_continue: bool,
    /// Body bytes the BE received.
    pub body_bytes: u64,
    /// `NumberLoadedRows`.
    pub loaded_rows: u64,
    /// `NumberFilteredRows`.
    pub filtered_rows: u64,
    /// The fault injected into this attempt, if any.
    pub fault: Option<Fault>,
}

/// One request to the FE's HTTP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeRequest {
    /// The method.
    pub method: String,
    /// The path (without query).
    pub path: String,
    /// The HTTP status the FE answered.
    pub status: u16,
    /// Body bytes that reached the FE (it must not receive any for a Stream Load).
    pub body_bytes: u64,
}

/// The double's own state (besides the catalog).
#[derive(Debug, Default)]
pub(crate) struct DoubleState {
    faults: Vec<FaultEntry>,
    pub(crate) loads: Vec<LoadRecord>,
    pub(crate) fe_requests: Vec<FeRequest>,
    pub(crate) fe_body_bytes: u64,
    pub(crate) error_logs: BTreeMap<String, String>,
    next_error_log: u64,
    /// Transaction-interface bookkeeping, by txn id.
    pub(crate) txn_extra: HashMap<i64, txn::TxnExtra>,
    clock_offset: Duration,
}

/// What the servers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) catalog: Catalog,
    pub(crate) options: StarRocksOptions,
    pub(crate) be_addr: SocketAddr,
    state: Mutex<DoubleState>,
    tasks: Mutex<JoinSet<()>>,
    /// The Routine Load jobs (lock order: catalog, then a job's status; never the reverse).
    pub(crate) routine_loads: routine_load::Manager,
}

impl Shared {
    /// Locks the double's state. Lock order: catalog first, then state; never the reverse.
    pub(crate) fn state(&self) -> MutexGuard<'_, DoubleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with both locks (catalog, then state).
    pub(crate) fn with_both<R>(
        &self,
        f: impl FnOnce(&mut CatalogState, &mut DoubleState) -> R,
    ) -> R {
        let mut cat = self.catalog.lock();
        let mut st = self.state();
        f(&mut cat, &mut st)
    }

    /// Spawns a task that is aborted when the double is dropped.
    /// Accepts connections on `listener` until the double is dropped, one `handle` task each
    /// (the FE's and the BE's accept loops).
    pub(crate) async fn accept_loop<F, Fut>(self: Arc<Self>, listener: TcpListener, handle: F)
    where
        F: Fn(http::Conn, Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            self.spawn(handle(http::Conn::new(stream, peer), Arc::clone(&self)));
        }
    }

    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// The double's clock (real time plus [`StarRocksDouble::advance_clock`]).
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.state().clock_offset
    }

    /// Takes one use of the first matching injected fault for `site`.
    pub(crate) fn take_fault(
        &self,
        site: FaultSite,
        table: &str,
        label: Option<&str>,
    ) -> Option<Fault> {
        let mut st = self.state();
        let entry = st.faults.iter_mut().find(|e| {
            e.remaining > 0
                && (e.fault == Fault::ServerError) == (site == FaultSite::Fe)
                && e.filter.matches(table, label)
        })?;
        entry.remaining -= 1;
        let fault = entry.fault.clone();
        st.faults.retain(|e| e.remaining > 0);
        Some(fault)
    }

    /// Stores an error log and returns its `ErrorURL`.
    pub(crate) fn add_error_log(&self, txn_id: i64, lines: &[String]) -> String {
        let mut st = self.state();
        st.next_error_log += 1;
        let file = format!("error_log_{}_{}", txn_id.max(0), st.next_error_log);
        let mut text = lines.join("\n");
        text.push('\n');
        st.error_logs.insert(file.clone(), text);
        format!(
            "http://{}:{}/api/_load_error_log?file={file}",
            self.options.fe_redirect_host,
            self.be_addr.port()
        )
    }

    /// Records a BE Stream Load attempt.
    pub(crate) fn record_load(&self, record: LoadRecord) {
        self.state().loads.push(record);
    }
}

/// A running StarRocks test double (see the module doc). Dropping it stops its servers.
#[derive(Debug)]
pub struct StarRocksDouble {
    shared: Arc<Shared>,
    fe_addr: SocketAddr,
    be_addr: SocketAddr,
    mysql_addr: SocketAddr,
}

impl Drop for StarRocksDouble {
    fn drop(&mut self) {
        self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()).abort_all();
        self.shared.routine_loads.shutdown();
    }
}

impl StarRocksDouble {
    /// Starts the FE, BE and MySQL listeners on `127.0.0.1` (free ports). Must run inside a
    /// tokio runtime.
    pub async fn start(options: StarRocksOptions) -> StarRocksDouble {
        let fe = TcpListener::bind("127.0.0.1:0").await.expect("bind FE port");
        let be = TcpListener::bind("127.0.0.1:0").await.expect("bind BE port");
        let my = TcpListener::bind("127.0.0.1:0").await.expect("bind MySQL port");
        let fe_addr = fe.local_addr().expect("FE address");
        let be_addr = be.local_addr().expect("BE address");
        let mysql_addr = my.local_addr().expect("MySQL address");
        let catalog = Catalog::default();
        catalog.lock().keep_txn_rows = options.keep_load_rows;
        let shared = Arc::new(Shared {
            catalog,
            options,
            be_addr,
            state: Mutex::new(DoubleState::default()),
            tasks: Mutex::new(JoinSet::new()),
            routine_loads: routine_load::Manager::default(),
        });
        shared.spawn(fe::serve(fe, Arc::clone(&shared)));
        shared.spawn(be::serve(be, Arc::clone(&shared)));
        shared.spawn(mysql::serve_double(my, Arc::clone(&shared)));
        StarRocksDouble { shared, fe_addr, be_addr, mysql_addr }
    }

    /// Starts a double with default options (user `root`, empty password).
    pub async fn start_default() -> StarRocksDouble {
        Self::start(StarRocksOptions::default()).await
    }

    /// The options it runs with.
    pub fn options(&self) -> &StarRocksOptions {
        &self.shared.options
    }

    /// The FE HTTP base URL, e.g. `http://127.0.0.1:41234`.
    pub fn fe_url(&self) -> String {
        format!("http://{}", self.fe_addr)
    }

    /// The BE HTTP base URL.
    pub fn be_url(&self) -> String {
        format!("http://{}", self.be_addr)
    }

    /// The FE HTTP address.
    pub fn fe_addr(&self) -> SocketAddr {
        self.fe_addr
    }

    /// The BE HTTP address.
    pub fn be_addr(&self) -> SocketAddr {
        self.be_addr
    }

    /// The MySQL-protocol address.
    pub fn mysql_addr(&self) -> SocketAddr {
        self.mysql_addr
    }

    /// The shared catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.shared.catalog
    }

    /// Creates a database (no-op if it exists).
    pub fn create_database(&self, name: &str) {
        self.shared.catalog.create_database(name);
    }

    /// Creates (or replaces) a table without DDL, creating the database if needed. Build the
    /// definition with [`table_def`].
    pub fn create_table(&self, db: &str, table: TableDef) {
        let mut cat = self.shared.catalog.lock();
        let database = cat.databases.entry(db.to_owned()).or_default();
        database.tables.insert(table.name.to_lowercase(), table);
    }

    /// The visible rows of a table, in stored order (Primary Key upserts replace in place,
    /// new keys are appended). Panics if the table does not exist.
    pub fn rows(&self, db: &str, table: &str) -> Vec<Vec<Cell>> {
        let cat = self.shared.catalog.lock();
        let t = cat
            .databases
            .get(db)
            .and_then(|d| d.tables.get(&table.to_lowercase()))
            .unwrap_or_else(|| panic!("test double: no table {db}.{table}"));
        t.rows.clone()
    }

    /// Changes one cell of the stored row whose key columns hold `key` (their canonical
    /// texts, in key order), directly, as if someone had written to StarRocks behind the
    /// migration's back (drift, for `verify` tests). Returns whether a row was changed.
    /// Panics if the table or the column does not exist.
    pub fn update_cell(
        &self,
        db: &str,
        table: &str,
        key: &[&str],
        column: &str,
        value: Cell,
    ) -> bool {
        self.with_table(db, table, |t| {
            let col = column_index(t, column);
            match key_row(t, key) {
                Some(r) => {
                    t.rows[r][col] = value;
                    true
                }
                None => false,
            }
        })
    }

    /// Deletes the stored row whose key columns hold `key` directly (drift); returns whether
    /// one was deleted. Panics if the table does not exist.
    pub fn delete_row(&self, db: &str, table: &str, key: &[&str]) -> bool {
        self.with_table(db, table, |t| match key_row(t, key) {
            Some(r) => {
                t.rows.remove(r);
                true
            }
            None => false,
        })
    }

    /// Appends a row of canonical cells (table column order) directly, without any load or
    /// key check (drift). Panics if the table does not exist or the row has the wrong width.
    pub fn insert_row(&self, db: &str, table: &str, cells: Vec<Cell>) {
        self.with_table(db, table, |t| {
            assert_eq!(cells.len(), t.columns.len(), "test double: row width of {}", t.name);
            t.rows.push(cells);
        });
    }

    fn with_table<R>(&self, db: &str, table: &str, f: impl FnOnce(&mut TableDef) -> R) -> R {
        let mut cat = self.shared.catalog.lock();
        let t = cat
            .databases
            .get_mut(db)
            .and_then(|d| d.tables.get_mut(&table.to_lowercase()))
            .unwrap_or_else(|| panic!("test double: no table {db}.{table}"));
        f(t)
    }

    /// Every Stream Load attempt that reached the BE, in order.
    pub fn loads(&self) -> Vec<LoadRecord> {
        self.shared.state().loads.clone()
    }

    /// Every request to the FE's HTTP port, in order.
    pub fn fe_requests(&self) -> Vec<FeRequest> {
        self.shared.state().fe_requests.clone()
    }

    /// Total body bytes that ever reached the FE (a correct client sends none).
    pub fn fe_body_bytes(&self) -> u64 {
        self.shared.state().fe_body_bytes
    }

    /// The rows the visible load with `label` applied, in load order (needs
    /// [`StarRocksOptions::with_keep_load_rows`]; empty otherwise); `None` when no visible
    /// load has that label.
    pub fn applied_rows(&self, db: &str, label: &str) -> Option<Vec<Vec<Cell>>> {
        let cat = self.shared.catalog.lock();
        let txn = cat
            .databases
            .get(db)?
            .txns
            .values()
            .find(|t| t.label == label && t.state == TxnState::Visible)?;
        Some(txn.applied_rows.iter().map(|r| r.cells.clone()).collect())
    }

    /// The state of the transaction holding `label` in `db` (the non-aborted one, else the
    /// latest aborted one), as `get_load_state` reports it; `None` for an unknown label.
    pub fn txn_state(&self, db: &str, label: &str) -> Option<TxnState> {
        let now = self.shared.now();
        self.shared.with_both(|cat, st| {
            txn::sweep(cat, st, &self.shared.options, now);
            txn::find_label(cat, db, label).map(|t| t.state)
        })
    }

    /// Injects `fault` into the next `times` Stream Load requests that reach the BE
    /// ([`Fault::ServerError`]: that reach the FE). Faults are consumed in injection order,
    /// at most one per request.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.inject_filtered(fault, times, FaultFilter::default());
    }

    /// Like [`StarRocksDouble::inject`], only for requests matching `filter`.
    pub fn inject_filtered(&self, fault: Fault, times: usize, filter: FaultFilter) {
        if times > 0 {
            self.shared.state().faults.push(FaultEntry { fault, remaining: times, filter });
        }
    }

    /// How many injected fault uses are left.
    pub fn pending_faults(&self) -> usize {
        self.shared.state().faults.iter().map(|e| e.remaining).sum()
    }

    /// Removes all injected faults.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// The error log stored under `file` (the `file=` of an `ErrorURL`).
    pub fn error_log(&self, file: &str) -> Option<String> {
        self.shared.state().error_logs.get(file).cloned()
    }

    /// The latest Routine Load job named `name` in `db` (STOPPED/CANCELLED ones included).
    pub fn routine_load(&self, db: &str, name: &str) -> Option<RoutineLoadStatus> {
        self.shared.routine_loads.status(db, name)
    }

    /// Every Routine Load job, in creation order.
    pub fn routine_loads(&self) -> Vec<RoutineLoadStatus> {
        self.shared.routine_loads.all_statuses()
    }

    /// Waits until the job `db`.`name` consumed every partition of `targets` up to the given
    /// *next* offset (its [`RoutineLoadStatus::progress`] is at least the target), or left
    /// NEED_SCHEDULE/RUNNING (e.g. PAUSED), or `timeout` passed; returns its status then.
    ///
    /// # Panics
    ///
    /// If there is no such job.
    pub async fn wait_routine_load(
        &self,
        db: &str,
        name: &str,
        targets: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> RoutineLoadStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self
                .routine_load(db, name)
                .unwrap_or_else(|| panic!("test double: no routine load job {db}.{name}"));
            let reached =
                targets.iter().all(|(p, t)| status.progress.get(p).is_some_and(|n| n >= t));
            let active =
                matches!(status.state, RoutineLoadState::NeedSchedule | RoutineLoadState::Running);
            if reached || !active || Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Moves the double's clock forward (transaction-interface timeouts only).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.state().clock_offset += by;
    }
}

/// Builds a [`TableDef`] for [`StarRocksDouble::create_table`]: `columns` are
/// `(name, type text, nullable)`, the type text as in DDL (`BIGINT`, `DECIMAL(12,2)`,
/// `VARCHAR(40)`, `ARRAY<INT>`). Panics on type text the double does not understand.
pub fn table_def(
    name: &str,
    keys_type: KeysType,
    key_columns: &[&str],
    columns: &[(&str, &str, bool)],
) -> TableDef {
    let columns: Vec<ColumnDef> = columns
        .iter()
        .map(|(n, ty, nullable)| ColumnDef {
            name: (*n).to_owned(),
            ty: catalog::parse_sr_type(ty)
                .unwrap_or_else(|| panic!("test double: cannot parse column type {ty:?}")),
            type_text: (*ty).to_owned(),
            nullable: *nullable,
        })
        .collect();
    let cols_sql: Vec<String> = columns
        .iter()
        .map(|c| {
            format!("`{}` {} {}", c.name, c.type_text, if c.nullable { "NULL" } else { "NOT NULL" })
        })
        .collect();
    let keys_sql = key_columns.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    let model = match keys_type {
        KeysType::Primary => "PRIMARY KEY",
        KeysType::Duplicate => "DUPLICATE KEY",
    };
    let ddl = format!(
        "CREATE TABLE `{name}` ({}) {model}({keys_sql}) DISTRIBUTED BY HASH({keys_sql})",
        cols_sql.join(", ")
    );
    TableDef {
        name: name.to_owned(),
        columns,
        keys_type,
        key_columns: key_columns.iter().map(|k| (*k).to_owned()).collect(),
        ddl,
        rows: Vec::new(),
    }
}

/// The position of `column` (case-insensitive) in `t`; panics if it does not exist.
fn column_index(t: &TableDef, column: &str) -> usize {
    t.columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(column))
        .unwrap_or_else(|| panic!("test double: no column {column} in {}", t.name))
}

/// The stored row whose key columns hold `key` (canonical texts, in key order).
fn key_row(t: &TableDef, key: &[&str]) -> Option<usize> {
    let cols: Vec<usize> = t.key_columns.iter().map(|k| column_index(t, k)).collect();
    assert_eq!(cols.len(), key.len(), "test double: {} has {} key columns", t.name, cols.len());
    t.rows.iter().position(|row| cols.iter().zip(key).all(|(&i, k)| row[i].as_deref() == Some(*k)))
}

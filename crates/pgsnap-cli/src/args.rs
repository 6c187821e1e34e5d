//! The flags of the pgsnap commands, defined once: the `pgsnap` subcommands and the
//! examples parse these, and each turns into its job's builder here.
//!
//! The fields' doc comments are the commands' `--help` text, written for a terminal.
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls)]

use std::time::Duration;

use pgsnap::{Connection, SnapshotMode, SnapshotOptions, SplitBy};

/// Why the flags cannot make a job (exit 2); the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `--source`: the PostgreSQL connection of every command.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// libpq connection string or postgresql:// URL; unset parts come from PG* variables
    /// (PGPASSWORD, ...) and ~/.pgpass.
    #[arg(
        long,
        env = "PGSNAP_SOURCE",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub source: String,
}

impl SourceArgs {
    /// The connection: `--source`, with PG* variables and ~/.pgpass for what it leaves unset.
    pub fn connection(&self) -> Connection {
        Connection::from_environment(self.source.clone())
    }
}

/// The snapshot, selection and tuning flags shared by the snapshot commands.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub source: SourceArgs,
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
    /// Attempts per chunk for transient failures, in all: re-reads of the chunk and the
    /// sink's own retries (e.g. a StarRocks load refused before its body) share them.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// How long slot creation may wait behind older transactions, in seconds.
    #[arg(long, default_value_t = 300)]
    pub slot_timeout: u64,
    /// How long to wait for each table lock, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lock_timeout: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub metrics: MetricsArgs,
}

/// `--metrics-addr`: Prometheus metrics while a long-running command runs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on http://HOST:PORT/metrics while the command runs (port 0:
    /// any free port; the log and the --json report name the one bound). Off by default.
    #[cfg(feature = "metrics")]
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl MetricsArgs {
    /// `control` serving the metrics on `--metrics-addr`, if given.
    ///
    /// ```
    /// use clap::Parser;
    /// use pgsnap_cli::args::SnapshotCmd;
    /// let args = SnapshotCmd::parse_from(["snapshot", "--out", "x", "--metrics-addr", "127.0.0.1:0"]);
    /// let control = args.snap.metrics.control(pgsnap::RunControl::new());
    /// assert!(control.metrics().is_some());
    /// ```
    pub fn control(&self, control: pgsnap::RunControl) -> pgsnap::RunControl {
        #[cfg(feature = "metrics")]
        if let Some(addr) = self.metrics_addr {
            return control.with_metrics_addr(addr);
        }
        control
    }
}

/// Parses `--metrics-addr`: `IP:PORT`, or `HOST:PORT` resolved now (its first address).
#[cfg(feature = "metrics")]
fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = |why: String| {
        format!("{s:?} is not HOST:PORT ({why}); e.g. 127.0.0.1:9187, or port 0 for any free port")
    };
    s.to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("it resolves to no address".into()))
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of jobs: use a whole number of at least 1")),
    }
}

/// Parses a size flag such as `--chunk-size`: `64MB` (10^6), `64MiB` (2^20), `1GB`, `512kB`,
/// `1000` (bytes).
///
/// # Example
/// ```
/// use pgsnap_cli::args::parse_size;
/// assert_eq!(parse_size("64MB").unwrap(), 64_000_000);
/// assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
/// assert!(parse_size("64 parsecs").is_err());
/// ```
///
/// # Errors
/// A message naming the accepted units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number and a unit like 64MB or 64MiB")
    })?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" | "k" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1_048_576.0,
        "GiB" => 1_073_741_824.0,
        "TiB" => 1_099_511_627_776.0,
        u => {
            return Err(format!(
                "invalid size unit {u:?} in {s:?}: use B, kB, MB, GB, TB (powers of 10) or KiB, MiB, GiB, TiB (powers of 2)"
            ));
        }
    };
    let v = (n * mult).round();
    if !(1.0..=1e18).contains(&v) {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(v as u64)
}

impl SnapshotArgs {
    /// The job options these flags describe.
    pub fn options(&self) -> SnapshotOptions {
        let mut o = SnapshotOptions::new(self.source.connection())
            .with_jobs(self.jobs)
            .with_chunk_size(self.chunk_size)
            .with_split_by(self.split_by)
            .with_include(self.include.clone())
            .with_exclude(self.exclude.clone())
            .with_snapshot_mode(self.snapshot_mode)
            .with_allow_snapshot_change(self.allow_snapshot_change)
            .with_throttle(self.throttle)
            .with_max_attempts(self.max_attempts)
            .with_slot_timeout(Duration::from_secs(self.slot_timeout))
            .with_lock_timeout(Duration::from_secs(self.lock_timeout));
        // Not `with_external_snapshot`, which also picks the external mode: a name given in
        // another mode is refused by the job, as the flags' contract says.
        o.external_snapshot = self.snapshot.clone();
        if let Some(s) = &self.slot {
            o = o.with_slot(s.clone());
        }
        if let Some(p) = &self.publication {
            o = o.with_publication(p.clone());
        }
        o
    }
}

/// The chunk files' flags (`--compress`, `--format`).
#[cfg(feature = "files")]
#[derive(Debug, Clone, clap::Args)]
pub struct FilesArgs {
    /// Chunk file compression: none, zstd, gzip (zstd:LEVEL, gzip:LEVEL).
    #[arg(long, default_value = "none")]
    pub compress: pgsnap::files::Compression,
    /// Chunk file format: text (COPY text) or csv.
    #[arg(long, default_value = "text")]
    pub format: pgsnap::DataFormat,
}

/// `pgsnap snapshot`: a consistent, parallel, resumable snapshot of PostgreSQL into files.
#[cfg(feature = "files")]
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "Consistent parallel snapshot of PostgreSQL to files.")]
pub struct SnapshotCmd {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub snap: SnapshotArgs,
    /// Output directory (created; must be empty unless --resume).
    #[arg(long)]
    pub out: std::path::PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub files: FilesArgs,
    /// Continue an interrupted run in the same --out directory.
    #[arg(long)]
    pub resume: bool,
    /// Print the plan with estimates and copy nothing.
    #[arg(long)]
    pub plan: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "files")]
impl SnapshotCmd {
    /// The files job these flags describe.
    pub fn job(&self) -> pgsnap::FilesJob {
        pgsnap::FilesJob::new(self.snap.options(), &self.out)
            .with_format(self.files.format)
            .with_compression(self.files.compress)
            .with_resume(self.resume)
    }
}

/// `pgsnap drop-slot`: drops a permanent replication slot (and optionally its publication)
/// once nothing needs it.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "Drop a pgsnap replication slot and its publication.")]
pub struct DropSlotCmd {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub source: SourceArgs,
    /// The slot to drop (nothing happens if it does not exist).
    #[arg(long)]
    pub slot: String,
    /// A publication to drop as well.
    #[arg(long)]
    pub publication: Option<String>,
    /// Print `{"dropped": {"slot": ..., "publication": ...}}` on stdout.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "starrocks")]
pub use self::starrocks::{MigrateCmd, StarRocksArgs, VERIFY_HELP, VerifyCmd};

#[cfg(feature = "starrocks")]
mod starrocks {
    use std::path::PathBuf;
    use std::time::Duration;

    use pgsnap::core::TableName;
    use pgsnap::starrocks::{LoadFormat, StarRocksSinkBuilder, Unrepresentable};

    use super::{SnapshotArgs, UsageError};

    /// The StarRocks flags. `--fe` and `--database` are optional here; `pgsnap migrate`
    /// requires them.
    #[derive(Debug, Clone, clap::Args)]
    pub struct StarRocksArgs {
        /// StarRocks FE HTTP address, e.g. http://fe1:8030 (repeatable: loads start at each in turn).
        #[arg(long)]
        pub fe: Vec<String>,
        /// Send loads straight to these BE HTTP addresses (repeatable), skipping the FE redirect.
        #[arg(long)]
        pub be: Vec<String>,
        /// The FE's MySQL-protocol address for DDL and checks (default: the first FE's host, port 9030).
        #[arg(long)]
        pub fe_sql: Option<String>,
        /// StarRocks user.
        #[arg(long, default_value = "root")]
        pub user: String,
        /// Name of the environment variable that holds the password (default: empty password).
        #[arg(long)]
        pub password_env: Option<String>,
        /// StarRocks database (must exist).
        #[arg(long)]
        pub database: Option<String>,
        /// Create missing tables (Primary Key tables for sources with a primary key).
        #[arg(long)]
        pub create_tables: bool,
        /// Body format: csv (streamed by StarRocks; refuses a text value that is exactly `\N`) or json (carries arrays, and text that is exactly `\N`).
        #[arg(id = "load_format", long = "format", value_name = "FORMAT", default_value = "csv")]
        pub format: LoadFormat,
        /// Types StarRocks cannot hold exactly (interval, time, unbounded numeric, bytea, ...): varchar (keep PostgreSQL's text) or error.
        #[arg(long, default_value = "varchar")]
        pub unrepresentable: Unrepresentable,
        /// Load SCHEMA.TABLE into TARGET instead of the default name (public.t -> t, s.t -> s_t); repeatable.
        #[arg(long, value_name = "SCHEMA.TABLE=TARGET", value_parser = parse_table_map)]
        pub table_map: Vec<(TableName, String)>,
        /// Force a column's StarRocks type, e.g. public.t.price=VARCHAR(64); repeatable.
        #[arg(long, value_name = "SCHEMA.TABLE.COLUMN=TYPE", value_parser = parse_column_type)]
        pub column_type: Vec<(TableName, String, String)>,
        /// Fraction of rows StarRocks may reject per load (0 = none).
        #[arg(long, default_value_t = 0.0)]
        pub max_filter_ratio: f64,
        /// StarRocks strict_mode (a value that does not convert fails instead of becoming NULL).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        pub strict_mode: bool,
        /// Label prefix (1-32 of A-Z a-z 0-9 _ -).
        #[arg(long, default_value = "pgsnap")]
        pub label_prefix: String,
        /// Split a chunk into several loads past this many body bytes (default 96MiB json, 4GiB csv).
        #[arg(long, value_parser = super::parse_size)]
        pub max_load_bytes: Option<u64>,
        /// Loads in flight at once.
        #[arg(long, default_value_t = 8)]
        pub max_concurrent_loads: usize,
        /// Stream Load timeout in seconds.
        #[arg(long, default_value_t = 600)]
        pub load_timeout: u64,
        /// replication_num of created tables (default: StarRocks' own default).
        #[arg(long)]
        pub replication_num: Option<u32>,
        /// PEM file of CA certificates to trust for https FE/BE addresses.
        #[arg(long)]
        pub ca_file: Option<PathBuf>,
        /// Allow an https FE to redirect to a plain-http BE (the password then travels in clear).
        #[arg(long)]
        pub allow_insecure_redirect: bool,
        /// Load into existing Duplicate Key tables that already hold rows (they would keep both).
        #[arg(long)]
        pub allow_existing_rows: bool,
        /// Load each chunk as one transaction (Stream Load transaction interface): a chunk split
        /// into several loads becomes visible at once, and row counts are checked before commit.
        #[arg(long)]
        pub transactions: bool,
        /// With --transactions: seconds a chunk's whole transaction may take.
        #[arg(long, default_value_t = 3600)]
        pub transaction_timeout: u64,
    }

    fn parse_table_map(s: &str) -> Result<(TableName, String), String> {
        let (t, target) = s.split_once('=').ok_or("expected SCHEMA.TABLE=TARGET")?;
        let (schema, name) = t.split_once('.').ok_or("expected SCHEMA.TABLE=TARGET")?;
        if target.is_empty() {
            return Err("empty TARGET".into());
        }
        Ok((TableName::new(schema, name), target.to_owned()))
    }

    fn parse_column_type(s: &str) -> Result<(TableName, String, String), String> {
        let (c, ty) = s.split_once('=').ok_or("expected SCHEMA.TABLE.COLUMN=TYPE")?;
        let (schema, rest) = c.split_once('.').ok_or("expected SCHEMA.TABLE.COLUMN=TYPE")?;
        let (name, column) = rest.rsplit_once('.').ok_or("expected SCHEMA.TABLE.COLUMN=TYPE")?;
        Ok((TableName::new(schema, name), column.to_owned(), ty.to_owned()))
    }

    impl StarRocksArgs {
        /// Whether StarRocks is loaded at all (`--fe` given).
        pub fn enabled(&self) -> bool {
            !self.fe.is_empty()
        }

        /// The settings that decide how tables are mapped (target names, body format, policy
        /// for unrepresentable types, column types), without credentials.
        pub fn mapping_builder(&self) -> StarRocksSinkBuilder {
            let mut b = StarRocksSinkBuilder::new(
                self.fe.first().cloned().unwrap_or_default(),
                self.database.clone().unwrap_or_default(),
            )
            .with_format(self.format)
            .with_unrepresentable(self.unrepresentable);
            for (t, target) in &self.table_map {
                b = b.with_table_mapping(t.clone(), target.clone());
            }
            for (t, c, ty) in &self.column_type {
                b = b.with_column_type(t.clone(), c.clone(), ty.clone());
            }
            b
        }

        /// The sink's configuration (the run id comes from the job).
        ///
        /// # Errors
        /// `--password-env` names an unset variable.
        pub fn sink_builder(&self) -> Result<StarRocksSinkBuilder, UsageError> {
            let password = match &self.password_env {
                Some(var) => std::env::var(var).map_err(|_| {
                    UsageError(format!(
                        "--password-env {var}: the environment variable {var} is not set"
                    ))
                })?,
                None => String::new(),
            };
            let mut b = self
                .mapping_builder()
                .with_user(self.user.clone())
                .with_password(password)
                .with_max_filter_ratio(self.max_filter_ratio)
                .with_strict_mode(self.strict_mode)
                .with_label_prefix(self.label_prefix.clone())
                .with_max_concurrent_loads(self.max_concurrent_loads)
                .with_load_timeout(Duration::from_secs(self.load_timeout))
                .with_allow_insecure_redirect(self.allow_insecure_redirect)
                .with_allow_existing_rows(self.allow_existing_rows)
                .with_create_tables(self.create_tables)
                .with_transactions(self.transactions)
                .with_transaction_timeout(Duration::from_secs(self.transaction_timeout));
            for fe in self.fe.iter().skip(1) {
                b = b.with_fe_url(fe.clone());
            }
            if !self.be.is_empty() {
                b = b.with_be_urls(self.be.clone());
            }
            if let Some(a) = &self.fe_sql {
                b = b.with_fe_sql(a.clone());
            }
            if let Some(n) = self.max_load_bytes {
                b = b.with_max_load_bytes(n);
            }
            if let Some(n) = self.replication_num {
                b = b.with_table_property("replication_num", n.to_string());
            }
            if let Some(p) = &self.ca_file {
                b = b.with_ca_file(p.clone());
            }
            Ok(b)
        }
    }

    /// `pgsnap migrate`: a consistent, parallel, resumable snapshot of PostgreSQL loaded into
    /// StarRocks with Stream Load, every chunk exactly once.
    #[derive(Debug, Clone, clap::Parser)]
    #[command(
        version,
        about = "Consistent parallel snapshot of PostgreSQL loaded into StarRocks (Stream Load, exactly once).",
        mut_arg("fe", |a| a.required(true)),
        mut_arg("database", |a| a.required(true))
    )]
    pub struct MigrateCmd {
        #[command(flatten)]
        #[allow(missing_docs)]
        pub snap: SnapshotArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        pub sr: StarRocksArgs,
        /// Directory for the run's state (manifest, no data); default ./pgsnap-state/starrocks-<fe host>-<port>-<database>.
        #[arg(long)]
        pub state: Option<PathBuf>,
        /// Continue the interrupted run recorded in --state.
        #[arg(long)]
        pub resume: bool,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        pub json: bool,
        /// After loading, compare SELECT COUNT(*) of each target table with the rows read.
        #[arg(long)]
        pub verify_count: bool,
    }

    impl MigrateCmd {
        /// The StarRocks job these flags describe.
        ///
        /// # Errors
        /// `--password-env` names an unset variable.
        pub fn job(&self) -> Result<pgsnap::MigrateJob, UsageError> {
            let mut job = pgsnap::MigrateJob::new(self.snap.options(), self.sr.sink_builder()?)
                .with_resume(self.resume)
                .with_verify_count(self.verify_count);
            if let Some(state) = &self.state {
                job = job.with_state_dir(state);
            }
            Ok(job)
        }
    }

    /// What `pgsnap verify --help` adds: verdicts, exit codes, sampling.
    pub const VERIFY_HELP: &str = "\
Verdicts and exit codes:
  0 equal: every compared table is equal, and CDC has caught up
  1 different: the report lists the tables, keys and columns (first 20 of each kind)
  6 not_final: nothing differs, but CDC is not caught up for cutover (with --state of a
    handoff it is checked first, as pgsnap status checks it: give --cutover-lsn T, read
    with pg_current_wal_insert_lsn() after the writes stopped, or --writes-stopped), or
    there is no CDC to check (no --state), or a table was compared by its count only, or
    --timeout passed
  2 usage, 3 PostgreSQL or StarRocks unreachable

Sampling: --sample K compares K key ranges of --rows R rows spread across each table's key
space plus the first and the last range (defaults: K = 16, R = 1000); --full compares
every row, in reads of R rows. Tables without a primary key: counts, plus a multiset
comparison when each side holds at most R rows; otherwise not_compared says why.";

    /// `pgsnap verify`: compares each PostgreSQL table with its StarRocks target (counts,
    /// then the rows as typed cells), reading both in bounded key ranges, PostgreSQL under one
    /// snapshot.
    #[derive(Debug, Clone, clap::Parser)]
    #[command(
        version,
        about = "Compare PostgreSQL tables with their StarRocks targets, row by row (typed, in bounded key ranges).",
        after_help = VERIFY_HELP,
        mut_arg("fe", |a| a.required(true)),
        mut_arg("database", |a| a.required(true))
    )]
    pub struct VerifyCmd {
        #[command(flatten)]
        #[allow(missing_docs)]
        pub source: super::SourceArgs,
        /// Tables to compare (psql pattern rules); repeatable. Default: every table (or the
        /// tables of --state).
        #[arg(long)]
        pub include: Vec<String>,
        /// Tables to leave out (psql pattern rules); repeatable.
        #[arg(long)]
        pub exclude: Vec<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        pub sr: StarRocksArgs,
        /// Compare the tables of the migration recorded in this state directory (its manifest),
        /// as they were copied.
        #[arg(long)]
        pub state: Option<PathBuf>,
        /// Compare K key ranges of --rows rows spread across each table's key space, plus the
        /// first and the last range.
        #[arg(long, value_name = "K", default_value_t = pgsnap::DEFAULT_SAMPLE_RANGES)]
        pub sample: usize,
        /// Rows per key range (and per read with --full).
        #[arg(long, value_name = "R", default_value_t = pgsnap::DEFAULT_RANGE_ROWS, value_parser = parse_rows)]
        pub rows: usize,
        /// Compare every row instead of a sample.
        #[arg(long, conflicts_with = "sample")]
        pub full: bool,
        /// Give up after this many seconds (exit 6).
        #[arg(long, value_name = "SECONDS")]
        pub timeout: Option<u64>,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        pub json: bool,
        /// With --state of a handoff: CDC is checked as `pgsnap status` checks it (these flags
        /// as there) before anything is read, and an equal result is final only when it is
        /// caught up for cutover (give --cutover-lsn or --writes-stopped).
        #[cfg(feature = "kafka")]
        #[command(flatten)]
        pub cdc: super::status::CdcArgs,
    }

    fn parse_rows(s: &str) -> Result<usize, String> {
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("{s:?} is not a number of rows: use a whole number of at least 1")),
        }
    }

    impl VerifyCmd {
        /// The verify job these flags describe. With `--state` (and the `kafka` feature) it
        /// checks CDC first with the status job of the same state and the CDC flags
        /// ([`pgsnap::VerifyJob::with_status`]); without, no evidence is passed, so a
        /// verification that finds no difference is `not_final` (exit 6).
        ///
        /// # Errors
        /// `--password-env` names an unset variable; CDC flags without `--state`; a bad
        /// CDC flag ([`CdcArgs::apply`](crate::args::CdcArgs::apply)).
        pub fn job(&self) -> Result<pgsnap::VerifyJob, UsageError> {
            let mode = if self.full {
                pgsnap::VerifyMode::Full
            } else {
                pgsnap::VerifyMode::Sample { ranges: self.sample, rows: self.rows }
            };
            let mut job = pgsnap::VerifyJob::new(self.source.connection(), self.sr.sink_builder()?)
                .with_include(self.include.clone())
                .with_exclude(self.exclude.clone())
                .with_mode(mode)
                .with_range_rows(self.rows)
                .with_timeout(self.timeout.map(Duration::from_secs))
                .with_cutover(None);
            if let Some(state) = &self.state {
                job = job.with_state_dir(state);
            }
            #[cfg(feature = "kafka")]
            match &self.state {
                Some(state) => {
                    let status = pgsnap::StatusJob::new(
                        state,
                        self.source.connection(),
                        self.sr.sink_builder()?,
                    );
                    job = job.with_status(self.cdc.apply(status)?);
                }
                None if self.cdc.any() => {
                    return Err(UsageError(
                        "the CDC flags (--brokers, --kafka-config, --connect-url, --slot, \
                         --cutover-lsn, --writes-stopped) need --state: the handoff's state \
                         says what to check"
                            .into(),
                    ));
                }
                None => {}
            }
            Ok(job)
        }
    }

    #[cfg(test)]
    mod verify_tests {
        use clap::Parser;

        use super::VerifyCmd;

        fn parse(extra: &[&str]) -> Result<VerifyCmd, clap::Error> {
            let base =
                ["verify", "--source", "dbname=app", "--fe", "http://fe:8030", "--database", "d"];
            VerifyCmd::try_parse_from(base.iter().chain(extra))
        }

        #[test]
        fn defaults_and_modes() {
            let cmd = parse(&[]).unwrap();
            assert_eq!((cmd.sample, cmd.rows, cmd.full), (16, 1000, false));
            let job = format!("{:?}", cmd.job().unwrap());
            assert!(job.contains("Sample { ranges: 16, rows: 1000 }"), "{job}");
            let job = format!("{:?}", parse(&["--full", "--rows", "50"]).unwrap().job().unwrap());
            assert!(job.contains("mode: Full") && job.contains("range_rows: 50"), "{job}");
            assert_eq!(parse(&["--full", "--sample", "3"]).unwrap_err().exit_code(), 2);
            assert_eq!(parse(&["--rows", "0"]).unwrap_err().exit_code(), 2);
            let mut help = Vec::new();
            <VerifyCmd as clap::CommandFactory>::command().write_long_help(&mut help).unwrap();
            let help = String::from_utf8(help).unwrap();
            assert!(help.contains("[default: 16]") && help.contains("[default: 1000]"), "{help}");
            assert!(help.contains("not_final"), "{help}");
        }
    }
}

#[cfg(feature = "kafka")]
pub use self::handoff::{HandoffCmd, Mode};

#[cfg(feature = "kafka")]
mod status;
#[cfg(feature = "kafka")]
pub use self::status::{
    CdcArgs, DEFAULT_POLL_INTERVAL, StatusCmd, connect_client, kafka_client_config,
};

#[cfg(feature = "kafka")]
mod handoff {
    use std::path::PathBuf;
    use std::time::Duration;

    use pgsnap::kafka::KafkaClientConfig;
    use pgsnap::kafka::connect::ConnectClient;
    use pgsnap::kafka::render::debezium::parse_connector_config;
    use pgsnap::starrocks::parity::StarRocksVersion;
    use pgsnap::{DEFAULT_PASSWORD_PLACEHOLDER, HandoffJob, HandoffMode};

    use super::{SnapshotArgs, StarRocksArgs, UsageError};

    /// `--mode`: how the Debezium change log relates to the snapshot.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    pub enum Mode {
        /// pgsnap creates the slot; Debezium starts on it afterwards (exact, recommended).
        SlotFirst,
        /// Debezium already runs on its own slot.
        Running,
        /// Like running, with a lower bound from the broker's time index.
        Time,
    }

    /// `pgsnap handoff`: snapshot to files (or StarRocks), then the exact Kafka offsets where
    /// the Debezium change log continues, the Routine Load statements and the connector config.
    #[derive(Debug, Clone, clap::Parser)]
    #[command(
        version,
        about = "Snapshot to files (or StarRocks) and hand off to a Debezium change log in Kafka at exact offsets.",
        mut_arg("load_format", |a| a.long("load-format")),
        mut_arg("database", |a| a.alias("starrocks-database").help(
            "StarRocks database: loaded with --fe (must exist), and the Routine Load jobs' (default: the PostgreSQL database name)"
        ))
    )]
    pub struct HandoffCmd {
        #[command(flatten)]
        #[allow(missing_docs)]
        pub snap: SnapshotArgs,
        /// StarRocks: with --fe the snapshot is loaded into StarRocks instead of files;
        /// --database is also the database of the Routine Load jobs.
        #[command(flatten)]
        pub sr: StarRocksArgs,
        /// Output directory (created; must be empty): the chunk files and manifest, or with --fe
        /// the run's state (manifest, no data).
        #[arg(long)]
        pub out: PathBuf,
        /// Kafka bootstrap brokers, host:port[,host:port...].
        #[arg(long)]
        pub brokers: String,
        /// Debezium `topic.prefix`: topics are <prefix>.<schema>.<table>.
        #[arg(long)]
        pub topic_prefix: String,
        /// slot-first (pgsnap creates the slot for Debezium), running (Debezium already runs), time.
        #[arg(long, value_enum, default_value = "slot-first")]
        pub mode: Mode,
        /// Kafka Connect REST URL. slot-first: submit the connector after the snapshot (refused
        /// when the name exists or has stored offsets). running/time (with --connector): check that
        /// the running connector has committed past the snapshot's consistent point.
        #[arg(long)]
        pub connect_url: Option<String>,
        /// CA certificates (PEM) to trust for an https:// --connect-url, besides the public
        /// root CAs: the CA that signed the Kafka Connect worker's certificate.
        #[arg(long, value_name = "PATH", requires = "connect_url")]
        pub connect_ca_file: Option<PathBuf>,
        /// Kafka Connect basic-auth user (its password: --connect-password-env).
        #[arg(long, value_name = "USER", requires_all = ["connect_url", "connect_password_env"])]
        pub connect_user: Option<String>,
        /// Name of the environment variable that holds the --connect-user password (there is no
        /// password flag: a command line is visible to other users of the machine).
        #[arg(long, value_name = "VAR", requires = "connect_user")]
        pub connect_password_env: Option<String>,
        /// --mode running/time with --connect-url: the running Debezium connector's name.
        #[arg(long)]
        pub connector: Option<String>,
        /// With --connector: seconds to wait for the connector to commit past the snapshot's
        /// consistent point (polled every second).
        #[arg(long, default_value_t = 60)]
        pub connector_wait: u64,
        /// `database.password` in the Debezium config: a config-provider placeholder.
        #[arg(long, default_value = DEFAULT_PASSWORD_PLACEHOLDER)]
        pub password_placeholder: String,
        /// Debezium connector name (default: pgsnap-<db>-<snapshot time>); must be new to Connect.
        #[arg(long)]
        pub connector_name: Option<String>,
        /// `database.hostname` as Kafka Connect reaches PostgreSQL (default: the --source host).
        #[arg(long)]
        pub database_hostname: Option<String>,
        /// Clock skew margin for --mode time, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        pub skew_ms: u64,
        /// StarRocks version to render the Routine Load for (e.g. 3.4.2) when --fe is not given
        /// (with --fe the FE's current_version() is used). Supported: 3.1.0 to 4.x.
        #[arg(long)]
        pub starrocks_version: Option<String>,
        /// --mode running/time: the running Debezium connector's config (Java properties, or the
        /// JSON of Kafka Connect), to render the Routine Load for its encodings; or give
        /// --connect-url and --connector to read it from Kafka Connect.
        #[arg(long)]
        pub debezium_config: Option<PathBuf>,
        /// A librdkafka setting for every Kafka client of the handoff and for the Routine Loads,
        /// e.g. security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, sasl.username=NAME,
        /// ssl.ca.location=/etc/kafka/ca.pem; repeatable, overrides --kafka-config-file. Never a
        /// secret: a command line is visible to other users of the machine, so secrets
        /// (sasl.password, ssl.key.password, ...) are refused here: put them in
        /// --kafka-config-file.
        #[arg(long, value_name = "KEY=VALUE")]
        pub kafka_config: Vec<String>,
        /// Java properties file of librdkafka settings (like the Kafka tools' --command-config),
        /// the place for secrets (sasl.password, ssl.key.password): keep it readable by you
        /// only. The report shows secrets as "***"; the Routine Loads hold ${KAFKA_<KEY>}
        /// placeholders instead. Refused: the keys pgsnap sets itself (bootstrap.servers,
        /// group.id, ...) and SASL GSSAPI and OAUTHBEARER.
        #[arg(long, value_name = "PATH")]
        pub kafka_config_file: Option<PathBuf>,
        /// Refuse tables that cannot be kept exact (no primary key, TOAST risk, columns no Routine
        /// Load maps exactly): exit 3; and refuse to start without what the Routine Load needs
        /// (a StarRocks version, the connector's config): exit 2.
        #[arg(long)]
        pub strict: bool,
        /// Create the rendered Routine Loads through the FE once the snapshot is loaded and the
        /// offsets are resolved (needs the StarRocks flags), secrets substituted only in the
        /// text sent. The manifest's `handoff` records each job (name, definition hash, offsets,
        /// job id). Rerun on a complete handoff's --state, it copies nothing: jobs it created
        /// are reported `already_there`, missing ones are created, and another definition, or
        /// another or STOPPED/CANCELLED job holding a name, is refused with both named.
        #[arg(long)]
        pub create_routine_loads: bool,
        /// With --create-routine-loads: also create jobs for Duplicate Key targets, which
        /// cannot apply deletes (refused otherwise, before anything is copied).
        #[arg(long, requires = "create_routine_loads")]
        pub allow_no_deletes: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        pub files: super::FilesArgs,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        pub json: bool,
    }

    impl HandoffCmd {
        /// The Kafka client settings of `--kafka-config-file`, then `--kafka-config` over them.
        ///
        /// # Errors
        /// An unreadable or malformed file (the message names the file and line), a flag that
        /// is not `KEY=VALUE` or names a secret, a refused setting (named by its key; values
        /// are never shown).
        pub fn kafka_client_config(&self) -> Result<KafkaClientConfig, UsageError> {
            super::kafka_client_config(self.kafka_config_file.as_deref(), &self.kafka_config)
        }
    }

    impl HandoffCmd {
        /// The handoff mode.
        pub fn mode(&self) -> HandoffMode {
            match self.mode {
                Mode::SlotFirst => HandoffMode::SlotFirst,
                Mode::Running => HandoffMode::Running,
                Mode::Time => HandoffMode::Time { skew: Duration::from_millis(self.skew_ms) },
            }
        }

        /// The handoff job these flags describe.
        ///
        /// # Errors
        /// A bad `--connect-url` or `--starrocks-version`, an unreadable `--debezium-config` or
        /// `--connect-ca-file`, `--password-env` or `--connect-password-env` naming an unset
        /// variable; a bad `--kafka-config` or `--kafka-config-file`
        /// ([`kafka_client_config`](Self::kafka_client_config)).
        pub fn job(&self) -> Result<HandoffJob, UsageError> {
            let mut job =
                HandoffJob::new(self.snap.options(), &self.out, &self.brokers, &self.topic_prefix)
                    .with_mode(self.mode())
                    .with_files(self.files.format, self.files.compress)
                    .with_connector_wait(Duration::from_secs(self.connector_wait))
                    .with_password_placeholder(self.password_placeholder.clone())
                    .with_strict(self.strict)
                    .with_create_routine_loads(self.create_routine_loads)
                    .with_allow_no_deletes(self.allow_no_deletes);
            job = if self.sr.enabled() {
                job.with_starrocks(self.sr.sink_builder()?)
            } else {
                job.with_routine_load_target(self.sr.mapping_builder())
            };
            if let Some(url) = &self.connect_url {
                job = job.with_connect(self.connect_client(url)?);
            }
            if let Some(name) = &self.connector {
                job = job.with_connector(name.clone());
            }
            if let Some(name) = &self.connector_name {
                job = job.with_connector_name(name.clone());
            }
            if let Some(host) = &self.database_hostname {
                job = job.with_database_hostname(host.clone());
            }
            if let Some(v) = &self.starrocks_version {
                let v: StarRocksVersion =
                    v.parse().map_err(|e| UsageError(format!("--starrocks-version: {e}")))?;
                job = job.with_starrocks_version(v);
            }
            if let Some(path) = &self.debezium_config {
                let bad = |e: &dyn std::fmt::Display| {
                    UsageError(format!("--debezium-config {}: {e}", path.display()))
                };
                let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
                let config = parse_connector_config(&text).map_err(|e| bad(&e))?;
                job = job.with_debezium_config(config);
            }
            job = job.with_kafka_config(self.kafka_client_config()?);
            Ok(job)
        }

        /// The Kafka Connect client of `--connect-url` (`url`), `--connect-ca-file`,
        /// `--connect-user` and `--connect-password-env`.
        fn connect_client(&self, url: &str) -> Result<ConnectClient, UsageError> {
            super::connect_client(
                url,
                self.connect_ca_file.as_deref(),
                self.connect_user.as_deref(),
                self.connect_password_env.as_deref(),
            )
        }
    }

    #[cfg(test)]
    mod connect_tests {
        use clap::Parser;

        use super::HandoffCmd;

        fn parse(extra: &[&str]) -> Result<HandoffCmd, clap::Error> {
            let base = ["handoff", "--source", "host=db dbname=app", "--out", "/nonexistent/out"];
            let rest = ["--brokers", "k:9092", "--topic-prefix", "pg"];
            HandoffCmd::try_parse_from(base.iter().chain(&rest).chain(extra))
        }

        #[test]
        fn connect_credentials_come_from_the_environment() {
            // PATH is set wherever tests run: it stands for the password variable.
            let password = std::env::var("PATH").unwrap();
            let cmd = parse(&[
                "--connect-url",
                "https://connect:8443",
                "--connect-user",
                "pgsnap",
                "--connect-password-env",
                "PATH",
            ])
            .unwrap();
            let job = format!("{:?}", cmd.job().unwrap());
            assert!(job.contains("https://connect:8443") && job.contains("pgsnap"), "{job}");
            assert!(!job.contains(&password), "{job}");

            let unset = "PGSNAP_TEST_UNSET_CONNECT_PASSWORD_7Q";
            let cmd = parse(&[
                "--connect-url",
                "https://connect:8443",
                "--connect-user",
                "pgsnap",
                "--connect-password-env",
                unset,
            ])
            .unwrap();
            let e = cmd.job().unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "--connect-password-env {unset}: the environment variable {unset} is not set"
                )
            );
        }

        #[test]
        fn connect_flags_need_their_companions() {
            // A user without the password variable, the variable without a user, either or a
            // CA file without --connect-url: clap's usage errors (exit 2).
            for flags in [
                &["--connect-url", "https://c:8443", "--connect-user", "u"][..],
                &["--connect-url", "https://c:8443", "--connect-password-env", "V"],
                &["--connect-user", "u", "--connect-password-env", "V"],
                &["--connect-ca-file", "/x/ca.pem"],
            ] {
                let e = parse(flags).map(|_| ()).unwrap_err();
                assert_eq!(e.exit_code(), 2, "{flags:?}: {e}");
            }
        }

        #[test]
        fn a_bad_ca_file_or_url_is_a_usage_error_naming_it() {
            let cmd = parse(&[
                "--connect-url",
                "https://connect:8443",
                "--connect-ca-file",
                "/nonexistent/connect-ca.pem",
            ])
            .unwrap();
            let e = cmd.job().unwrap_err().to_string();
            assert!(
                e.starts_with("--connect-ca-file: ") && e.contains("/nonexistent/connect-ca.pem"),
                "{e}"
            );
            let cmd = parse(&["--connect-url", "https://u:s3cret@connect:8443"]).unwrap();
            let e = cmd.job().unwrap_err().to_string();
            assert!(e.starts_with("--connect-url: ") && !e.contains("s3cret"), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5MB").unwrap(), 1_500_000);
        assert_eq!(parse_size("64kB").unwrap(), 64_000);
        assert!(parse_size("").is_err());
        assert!(parse_size("0MB").is_err());
    }
}

#[cfg(all(test, feature = "kafka"))]
mod kafka_config_tests {
    use clap::Parser;

    use super::HandoffCmd;

    /// A fresh directory for one test's files.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pgsnap-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn parse(extra: &[&str]) -> HandoffCmd {
        let base = ["handoff", "--source", "host=db dbname=app", "--out", "/nonexistent/out"];
        let rest = ["--brokers", "k:9092", "--topic-prefix", "pg"];
        HandoffCmd::try_parse_from(base.iter().chain(&rest).chain(extra)).expect("flags")
    }

    #[test]
    fn the_file_first_then_the_flags() {
        let dir = scratch("kcfg-file");
        let file = dir.join("client.properties");
        std::fs::write(
            &file,
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=file\n\
             sasl.password=hunter2\n",
        )
        .unwrap();
        let cmd = parse(&[
            "--kafka-config-file",
            file.to_str().unwrap(),
            "--kafka-config",
            "sasl.username=flag",
            "--kafka-config",
            "sasl.mechanism=SCRAM-SHA-256",
        ]);
        let config = cmd.kafka_client_config().unwrap();
        assert_eq!(config.get("sasl.username"), Some("flag"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.redacted()["sasl.password"], "***");
        cmd.job().expect("job");
        std::fs::remove_dir_all(&dir).unwrap();
        // No flags: no settings.
        assert!(parse(&[]).kafka_client_config().unwrap().is_empty());
    }

    #[test]
    fn secrets_and_refusals_never_echo_values() {
        for (flag, named) in [
            ("sasl.password=hunter2", "sasl.password"),
            ("ssl.key.password=hunter2", "ssl.key.password"),
            ("group.id=hunter2", "group.id"),
            ("sasl.mechanism=GSSAPI", "GSSAPI"),
            ("hunter2", "KEY=VALUE"),
        ] {
            let e = parse(&["--kafka-config", flag]).kafka_client_config().unwrap_err().0;
            assert!(e.starts_with("--kafka-config"), "{e}");
            assert!(e.contains(named) && !e.contains("hunter2"), "{e}");
        }
        let dir = scratch("kcfg-bad");
        let file = dir.join("bad.properties");
        std::fs::write(&file, "security.protocol=SSL\nbootstrap.servers=hunter2:9092\n").unwrap();
        let e = parse(&["--kafka-config-file", file.to_str().unwrap()])
            .kafka_client_config()
            .unwrap_err()
            .0;
        assert!(e.contains("bad.properties line 2") && e.contains("bootstrap.servers"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e =
            parse(&["--kafka-config-file", "/nonexistent/client.properties"]).job().unwrap_err().0;
        assert!(e.contains("--kafka-config-file") && e.contains("/nonexistent/client.properties"));
    }
}

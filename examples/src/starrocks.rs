//! What the StarRocks jobs share (`migrate_to_starrocks`, and `handoff` with `--fe`): the
//! StarRocks flags, the sink built from them, the state directory's lock, the preflight
//! (connection, target tables, occupied Duplicate Key tables) and the per-table load report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgsnap_core::{Manifest, ManifestTable, TableName, TableStatus};
use pgsnap_sink_starrocks::parity::StarRocksVersion;
use pgsnap_sink_starrocks::{
    Error as SrError, LoadFormat, StarRocksSink, StarRocksSinkBuilder, Unrepresentable,
};
use serde_json::{Value, json};

use crate::run::{OpenedRun, SnapshotArgs};
use crate::{EXIT_PREFLIGHT, EXIT_SINK, EXIT_USAGE, die};

/// The StarRocks flags. `--fe` and `--database` are optional here; a job that always loads
/// StarRocks makes them required (`Command::mut_arg`).
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
    /// Body format: csv (streamed by StarRocks) or json (carries arrays and `\N` strings).
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
    #[arg(long, value_parser = pgsnap_source::parse_size)]
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

    /// The StarRocks database (empty when unset).
    pub fn database(&self) -> &str {
        self.database.as_deref().unwrap_or_default()
    }

    /// Every option that decides where rows go, their labels and the body bytes (and so the
    /// part boundaries), in a readable form: a resume must match it exactly.
    pub fn load_layout(&self) -> String {
        let mut maps: Vec<String> =
            self.table_map.iter().map(|(t, target)| format!("{t}={target}")).collect();
        maps.sort();
        let mut types: Vec<String> =
            self.column_type.iter().map(|(t, c, ty)| format!("{t}.{c}={ty}")).collect();
        types.sort();
        format!(
            "starrocks format={} transactions={} max_load_bytes={} database={} label_prefix={} unrepresentable={} table_map=[{}] column_type=[{}]",
            self.format,
            self.transactions,
            self.max_load_bytes.map(|n| n.to_string()).unwrap_or_else(|| "default".into()),
            self.database(),
            self.label_prefix,
            self.unrepresentable,
            maps.join(","),
            types.join(","),
        )
    }

    /// The settings that decide how tables are mapped (target names, body format, policy for
    /// unrepresentable types, column types), without credentials: what the Routine Load of a
    /// handoff is rendered against when StarRocks is not loaded.
    pub fn mapping_builder(&self) -> StarRocksSinkBuilder {
        let mut b = StarRocksSinkBuilder::new(
            self.fe.first().cloned().unwrap_or_default(),
            self.database().to_owned(),
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

    /// The sink's configuration without the run id (that comes from the manifest). Exits 2
    /// when `--password-env` names an unset variable.
    pub fn sink_builder(&self) -> StarRocksSinkBuilder {
        let password = match &self.password_env {
            Some(var) => match std::env::var(var) {
                Ok(p) => p,
                Err(_) => die(
                    EXIT_USAGE,
                    format!("--password-env {var}: the environment variable {var} is not set"),
                ),
            },
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
            .with_create_tables(self.create_tables)
            .with_transactions(self.transactions)
            .with_transaction_timeout(Duration::from_secs(self.transaction_timeout));
        for fe in &self.fe[1..] {
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
        b
    }

    /// `./pgsnap-state/starrocks-<host>-<port>-<database>`, with anything but
    /// `[A-Za-z0-9._-]` replaced by `_`.
    pub fn default_state_dir(&self) -> PathBuf {
        let fe = self.fe[0].split_once("://").map(|x| x.1).unwrap_or(&self.fe[0]);
        let fe = fe.split('/').next().unwrap_or(fe).replace(':', "-");
        let name: String = format!("starrocks-{fe}-{}", self.database())
            .chars()
            .map(
                |c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' },
            )
            .collect();
        PathBuf::from("pgsnap-state").join(name)
    }
}

/// The exit code for a StarRocks error found before loading.
pub fn preflight_code(e: &SrError) -> i32 {
    match e {
        SrError::Config(_) => EXIT_USAGE,
        _ => EXIT_PREFLIGHT,
    }
}

/// Creates the state directory `dir` (named by `flag` in messages) and locks it for the
/// whole run: one run per state. Keep the returned file open while the run lasts.
pub fn lock_state(dir: &Path, flag: &str) -> std::fs::File {
    if let Err(e) = std::fs::create_dir_all(dir) {
        die(EXIT_SINK, format!("{flag} {}: cannot create it: {e}", dir.display()));
    }
    match std::fs::File::open(dir).map(|f| f.try_lock().map(|()| f)) {
        Ok(Ok(f)) => f,
        Ok(Err(std::fs::TryLockError::WouldBlock)) => {
            die(EXIT_USAGE, format!("{flag} {} is in use by another running pgsnap", dir.display()))
        }
        Ok(Err(std::fs::TryLockError::Error(e))) | Err(e) => {
            die(EXIT_SINK, format!("{flag} {}: cannot lock it: {e}", dir.display()))
        }
    }
}

/// StarRocks before any snapshot (or slot) is taken: builds a probe sink and checks the
/// connection, the credentials and the database. Exits with the preflight code on failure.
pub async fn check_connection(builder: &StarRocksSinkBuilder) {
    match builder.clone().with_run_id("preflight").build() {
        Ok(probe) => {
            if let Err(e) = probe.check_connection().await {
                die(preflight_code(&e), e)
            }
        }
        Err(e) => die(preflight_code(&e), e),
    }
}

/// The StarRocks version the FE reports (`SELECT current_version()`), checked against the
/// supported range. `Ok(None)` when SQL through the FE is disabled; exits 3 when it cannot be
/// read or is not supported.
pub async fn server_version(builder: &StarRocksSinkBuilder) -> Option<StarRocksVersion> {
    let probe = match builder.clone().with_run_id("preflight").build() {
        Ok(p) => p,
        Err(e) => die(preflight_code(&e), e),
    };
    let text = match probe.server_version().await {
        Ok(t) => t,
        Err(SrError::Config(_)) => return None,
        Err(e) => die(EXIT_PREFLIGHT, format!("reading the StarRocks version: {e}")),
    };
    let version: StarRocksVersion = match text.parse() {
        Ok(v) => v,
        Err(e) => die(EXIT_PREFLIGHT, format!("the FE's current_version(): {e}")),
    };
    if let Err(e) = version.check_supported() {
        die(EXIT_PREFLIGHT, e);
    }
    Some(version)
}

/// Gives up before anything was loaded: closes the snapshot and, when this run created a
/// permanent slot (`created_slot`), drops it (and the publication), so a failed StarRocks
/// preflight leaves no slot holding WAL. Then exits with `code`.
pub async fn abandon(
    snap: &SnapshotArgs,
    created_slot: bool,
    opened: &OpenedRun,
    code: i32,
    msg: impl std::fmt::Display,
) -> ! {
    if let Err(e) = opened.source.close().await {
        tracing::warn!("closing the snapshot: {e}");
    }
    if let (true, Some(slot)) = (created_slot, &snap.slot) {
        match pgsnap_source::drop_slot(&snap.source, slot, snap.publication.as_deref()).await {
            Ok(()) => tracing::info!(slot, "dropped the slot this run created"),
            Err(e) => tracing::warn!(slot, "cannot drop the slot this run created: {e}"),
        }
    }
    die(code, msg)
}

/// Builds the sink for the opened run and prepares its target tables (created with
/// `--create-tables`, checked otherwise). A new run (`fresh`) into a Duplicate Key table
/// that already holds rows is refused unless `--allow-existing-rows`. On any failure the run
/// is abandoned (see [`abandon`]; `fresh` says whether the slot is this run's).
pub async fn build_and_prepare(
    builder: StarRocksSinkBuilder,
    args: &StarRocksArgs,
    snap: &SnapshotArgs,
    opened: &OpenedRun,
    fresh: bool,
) -> StarRocksSink {
    let sink = match builder.with_run_id(opened.manifest.run_id.clone()).build() {
        Ok(s) => s,
        Err(e) => abandon(snap, fresh, opened, preflight_code(&e), e).await,
    };
    let schemas: Vec<_> = opened.manifest.tables.iter().map(|t| t.schema.clone()).collect();
    let prepared = match sink.prepare(&schemas).await {
        Ok(p) => p,
        Err(e) => abandon(snap, fresh, opened, preflight_code(&e), e).await,
    };
    // A new run into a Duplicate Key table that already holds rows would add a second copy
    // of anything loaded before (a new run has new labels); refuse unless asked.
    let occupied: Vec<String> = prepared
        .iter()
        .filter(|_| fresh && !args.allow_existing_rows)
        .filter_map(|p| {
            p.existing
                .filter(|e| e.rows > 0 && !e.primary_key)
                .map(|e| format!("{} ({} rows)", p.target.name, e.rows))
        })
        .collect();
    if !occupied.is_empty() {
        abandon(
            snap,
            fresh,
            opened,
            EXIT_PREFLIGHT,
            format!(
                "StarRocks Duplicate Key tables already hold rows: {}; a new run would add its rows next to them. Empty them (TRUNCATE TABLE), resume the run that loaded them with --resume, or pass --allow-existing-rows",
                occupied.join(", ")
            ),
        )
        .await
    }
    for p in prepared {
        if let Some(e) = p.existing.filter(|e| e.rows > 0 && fresh) {
            tracing::warn!(
                table = %p.source,
                target = %p.target.name,
                rows = e.rows,
                "the target already holds rows{}",
                if e.primary_key { "; rows with equal keys are replaced" } else { "" }
            );
        }
        let varchar: Vec<_> = p
            .target
            .columns
            .iter()
            .filter_map(|c| c.note.as_ref().map(|n| format!("{}: {n}", c.name)))
            .collect();
        tracing::info!(
            table = %p.source,
            target = %p.target.name,
            created = p.created,
            "{}",
            if varchar.is_empty() { String::new() } else { varchar.join("; ") }
        );
    }
    sink
}

/// Per-table load totals from the manifest's chunk records: (rows loaded, rows filtered,
/// loads).
pub fn load_totals(t: &ManifestTable) -> (u64, u64, usize) {
    t.chunks
        .iter()
        .filter_map(|c| c.load.as_ref())
        .fold((0, 0, 0), |(l, f, n), r| (l + r.rows_loaded, f + r.rows_filtered, n + r.loads()))
}

/// The completed tables whose rows read differ from StarRocks' loaded plus filtered rows.
pub fn unverified_tables(manifest: &Manifest) -> Vec<String> {
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

/// A table's StarRocks fields of the JSON report: `target`, `rows_loaded`, `rows_filtered`,
/// `loads`.
pub fn table_report(sink: &StarRocksSink, t: &ManifestTable) -> Value {
    let (loaded, filtered, loads) = load_totals(t);
    json!({
        "target": sink.target_name(&t.schema.name),
        "rows_loaded": loaded,
        "rows_filtered": filtered,
        "loads": loads,
    })
}

/// A table's line of the text report: source, target, status, rows read, loaded, filtered,
/// loads and the error.
pub fn table_line(sink: &StarRocksSink, t: &ManifestTable) -> String {
    let (loaded, filtered, loads) = load_totals(t);
    format!(
        "  {:<32} -> {:<24} {:<7} {:>10} read {:>10} loaded {:>6} filtered {:>5} loads{}",
        t.schema.name.to_string(),
        sink.target_name(&t.schema.name),
        t.status.as_str(),
        t.rows(),
        loaded,
        filtered,
        loads,
        t.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
    )
}

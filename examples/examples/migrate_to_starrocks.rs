//! The StarRocks job: a consistent, parallel, resumable snapshot of PostgreSQL loaded into
//! StarRocks with Stream Load, every chunk exactly once.
//!
//! ```text
//! STARROCKS_PASSWORD=... cargo run --release --example migrate_to_starrocks -- \
//!     --source "host=... dbname=..." --fe http://fe1:8030 --user loader \
//!     --password-env STARROCKS_PASSWORD --database analytics --create-tables
//! ```
//!
//! Each chunk is read from the snapshot, transcoded to CSV or JSON on the fly and sent with
//! one Stream Load whose label is `<prefix>-<run id>-<table>-<chunk>-<part>`; the run id
//! is kept in the run's state directory, so a retry or a `--resume` never loads a chunk
//! twice (StarRocks refuses a label it has already committed).
//!
//! State: `--state DIR` keeps the run's manifest (no data). Default:
//! `./pgsnap-state/starrocks-<fe host>-<fe port>-<database>`; the report names it.
//! `--resume` continues the run recorded there, with the same options: those that decide
//! the target, the labels and the body bytes (`--database`, `--label-prefix`, `--format`,
//! `--max-load-bytes`, `--transactions`, `--unrepresentable`, `--table-map`, `--column-type`)
//! are recorded and checked, because a different one would move part boundaries or labels.
//!
//! `--transactions` loads each chunk as one transaction of StarRocks' Stream Load
//! transaction interface (begin, a load per part, prepare, row-count check, commit), so a
//! chunk split into several loads becomes visible at once; a transaction of this run left
//! prepared by a killed process is rolled back on resume.
//!
//! Follows the examples' contract: progress and logs on stderr, `--json` prints one JSON
//! object on stdout (the snapshot report plus, per table, `target`, `rows_loaded`,
//! `rows_filtered`, `loads`), exit codes:
//! - 0: every table fully loaded (rows loaded + filtered = rows read from the snapshot).
//! - 1: the run finished but some tables failed (e.g. StarRocks rejected rows: the error
//!   names the table, the label and StarRocks' ErrorURL; or a value that cannot be carried
//!   exactly, naming the column).
//! - 2: bad flags; `--password-env` names an unset variable; `--state` not empty without
//!   `--resume`, or `--resume` with other options; `--state` in use by another run.
//! - 3: PostgreSQL or StarRocks preflight: cannot connect (to PostgreSQL or the FE), wrong
//!   password, unknown database, missing table without `--create-tables`, an existing table
//!   that does not match, a type that cannot be mapped under `--unrepresentable error`,
//!   two tables mapped to one target, a new run into a Duplicate Key table that already
//!   holds rows (without `--allow-existing-rows`). Checked before any row is loaded.
//! - 4: the snapshot is lost or not importable (as in `snapshot_to_files`).
//! - 5: StarRocks cannot be loaded mid-run for every table: an HTTPS FE redirecting to
//!   plain HTTP (refused unless `--allow-insecure-redirect`), credentials revoked, the
//!   database dropped, or the state directory cannot be written.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pgsnap_core::{DataFormat, Manifest, ManifestStore, TableName, TableStatus};
use pgsnap_examples::run::{
    SnapshotArgs, drive, open_run, outcome, previous_run, remove_stale_manifest_temp_files,
    report_json, resume_hint, snapshot_summary,
};
use pgsnap_examples::*;
use pgsnap_sink_starrocks::{
    Error as SrError, LoadFormat, StarRocksSink, StarRocksSinkBuilder, Unrepresentable,
};
use serde_json::json;

/// Consistent parallel snapshot of PostgreSQL loaded into StarRocks (Stream Load, exactly once).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    snap: SnapshotArgs,
    /// StarRocks FE HTTP address, e.g. http://fe1:8030 (repeatable: loads start at each in turn).
    #[arg(long, required = true)]
    fe: Vec<String>,
    /// Send loads straight to these BE HTTP addresses (repeatable), skipping the FE redirect.
    #[arg(long)]
    be: Vec<String>,
    /// The FE's MySQL-protocol address for DDL and checks (default: the first FE's host, port 9030).
    #[arg(long)]
    fe_sql: Option<String>,
    /// StarRocks user.
    #[arg(long, default_value = "root")]
    user: String,
    /// Name of the environment variable that holds the password (default: empty password).
    #[arg(long)]
    password_env: Option<String>,
    /// StarRocks database (must exist).
    #[arg(long)]
    database: String,
    /// Create missing tables (Primary Key tables for sources with a primary key).
    #[arg(long)]
    create_tables: bool,
    /// Body format: csv (streamed by StarRocks) or json (carries arrays and `\N` strings).
    #[arg(long, default_value = "csv")]
    format: LoadFormat,
    /// Types StarRocks cannot hold exactly (interval, time, unbounded numeric, bytea, ...): varchar (keep PostgreSQL's text) or error.
    #[arg(long, default_value = "varchar")]
    unrepresentable: Unrepresentable,
    /// Load SCHEMA.TABLE into TARGET instead of the default name (public.t -> t, s.t -> s_t); repeatable.
    #[arg(long, value_name = "SCHEMA.TABLE=TARGET", value_parser = parse_table_map)]
    table_map: Vec<(TableName, String)>,
    /// Force a column's StarRocks type, e.g. public.t.price=VARCHAR(64); repeatable.
    #[arg(long, value_name = "SCHEMA.TABLE.COLUMN=TYPE", value_parser = parse_column_type)]
    column_type: Vec<(TableName, String, String)>,
    /// Directory for the run's state (manifest, no data); default ./pgsnap-state/starrocks-<fe host>-<port>-<database>.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Continue the interrupted run recorded in --state.
    #[arg(long)]
    resume: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Fraction of rows StarRocks may reject per load (0 = none).
    #[arg(long, default_value_t = 0.0)]
    max_filter_ratio: f64,
    /// StarRocks strict_mode (a value that does not convert fails instead of becoming NULL).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    strict_mode: bool,
    /// Label prefix (1-32 of A-Z a-z 0-9 _ -).
    #[arg(long, default_value = "pgsnap")]
    label_prefix: String,
    /// Split a chunk into several loads past this many body bytes (default 96MiB json, 4GiB csv).
    #[arg(long, value_parser = pgsnap_source::parse_size)]
    max_load_bytes: Option<u64>,
    /// Loads in flight at once.
    #[arg(long, default_value_t = 8)]
    max_concurrent_loads: usize,
    /// Stream Load timeout in seconds.
    #[arg(long, default_value_t = 600)]
    load_timeout: u64,
    /// replication_num of created tables (default: StarRocks' own default).
    #[arg(long)]
    replication_num: Option<u32>,
    /// PEM file of CA certificates to trust for https FE/BE addresses.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Allow an https FE to redirect to a plain-http BE (the password then travels in clear).
    #[arg(long)]
    allow_insecure_redirect: bool,
    /// After loading, compare SELECT COUNT(*) of each target table with the rows read.
    #[arg(long)]
    verify_count: bool,
    /// Load into existing Duplicate Key tables that already hold rows (they would keep both).
    #[arg(long)]
    allow_existing_rows: bool,
    /// Load each chunk as one transaction (Stream Load transaction interface): a chunk split
    /// into several loads becomes visible at once, and row counts are checked before commit.
    #[arg(long)]
    transactions: bool,
    /// With --transactions: seconds a chunk's whole transaction may take.
    #[arg(long, default_value_t = 3600)]
    transaction_timeout: u64,
}

/// Every option that decides where rows go, their labels and the body bytes (and so the
/// part boundaries), in a readable form: a resume must match it exactly.
fn load_layout(args: &Args) -> String {
    let mut maps: Vec<String> =
        args.table_map.iter().map(|(t, target)| format!("{t}={target}")).collect();
    maps.sort();
    let mut types: Vec<String> =
        args.column_type.iter().map(|(t, c, ty)| format!("{t}.{c}={ty}")).collect();
    types.sort();
    format!(
        "starrocks format={} transactions={} max_load_bytes={} database={} label_prefix={} unrepresentable={} table_map=[{}] column_type=[{}]",
        args.format,
        args.transactions,
        args.max_load_bytes.map(|n| n.to_string()).unwrap_or_else(|| "default".into()),
        args.database,
        args.label_prefix,
        args.unrepresentable,
        maps.join(","),
        types.join(","),
    )
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    init_logging();
    let args = Args::parse();
    std::process::exit(run(args).await);
}

/// The sink's configuration without the run id (that comes from the manifest).
fn sink_builder(args: &Args) -> StarRocksSinkBuilder {
    let password = match &args.password_env {
        Some(var) => match std::env::var(var) {
            Ok(p) => p,
            Err(_) => die(
                EXIT_USAGE,
                format!("--password-env {var}: the environment variable {var} is not set"),
            ),
        },
        None => String::new(),
    };
    let mut b = StarRocksSinkBuilder::new(args.fe[0].clone(), args.database.clone())
        .with_user(args.user.clone())
        .with_password(password)
        .with_format(args.format)
        .with_unrepresentable(args.unrepresentable)
        .with_max_filter_ratio(args.max_filter_ratio)
        .with_strict_mode(args.strict_mode)
        .with_label_prefix(args.label_prefix.clone())
        .with_max_concurrent_loads(args.max_concurrent_loads)
        .with_load_timeout(Duration::from_secs(args.load_timeout))
        .with_allow_insecure_redirect(args.allow_insecure_redirect)
        .with_create_tables(args.create_tables)
        .with_transactions(args.transactions)
        .with_transaction_timeout(Duration::from_secs(args.transaction_timeout));
    for fe in &args.fe[1..] {
        b = b.with_fe_url(fe.clone());
    }
    if !args.be.is_empty() {
        b = b.with_be_urls(args.be.clone());
    }
    if let Some(a) = &args.fe_sql {
        b = b.with_fe_sql(a.clone());
    }
    if let Some(n) = args.max_load_bytes {
        b = b.with_max_load_bytes(n);
    }
    if let Some(n) = args.replication_num {
        b = b.with_table_property("replication_num", n.to_string());
    }
    if let Some(p) = &args.ca_file {
        b = b.with_ca_file(p.clone());
    }
    for (t, target) in &args.table_map {
        b = b.with_table_mapping(t.clone(), target.clone());
    }
    for (t, c, ty) in &args.column_type {
        b = b.with_column_type(t.clone(), c.clone(), ty.clone());
    }
    b
}

/// The exit code for a StarRocks error found before loading.
fn preflight_code(e: &SrError) -> i32 {
    match e {
        SrError::Config(_) => EXIT_USAGE,
        _ => EXIT_PREFLIGHT,
    }
}

/// `./pgsnap-state/starrocks-<host>-<port>-<database>`, with anything but `[A-Za-z0-9._-]`
/// replaced by `_`.
fn default_state_dir(args: &Args) -> PathBuf {
    let fe = args.fe[0].split_once("://").map(|x| x.1).unwrap_or(&args.fe[0]);
    let fe = fe.split('/').next().unwrap_or(fe).replace(':', "-");
    let name: String = format!("starrocks-{fe}-{}", args.database)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    PathBuf::from("pgsnap-state").join(name)
}

async fn run(args: Args) -> i32 {
    let state = args.state.clone().unwrap_or_else(|| default_state_dir(&args));
    // The state directory: created, and locked for the whole run (one run per state).
    if let Err(e) = std::fs::create_dir_all(&state) {
        die(EXIT_SINK, format!("--state {}: cannot create it: {e}", state.display()));
    }
    let _lock = match std::fs::File::open(&state).map(|f| f.try_lock().map(|()| f)) {
        Ok(Ok(f)) => f,
        Ok(Err(std::fs::TryLockError::WouldBlock)) => die(
            EXIT_USAGE,
            format!("--state {} is in use by another running pgsnap", state.display()),
        ),
        Ok(Err(std::fs::TryLockError::Error(e))) | Err(e) => {
            die(EXIT_SINK, format!("--state {}: cannot lock it: {e}", state.display()))
        }
    };
    let store = ManifestStore::new(&state);
    let builder = sink_builder(&args);
    // Recorded as the manifest's `compression` word: a resume must load into the same place
    // with the same labels and the same part boundaries, so every option that decides the
    // target, the labels or the body bytes must match the interrupted run's.
    let layout = load_layout(&args);
    let previous = previous_run(
        &store,
        "--state",
        args.resume,
        false,
        &args.snap.plan_options(),
        DataFormat::Text,
        &layout,
    )
    .await;
    remove_stale_manifest_temp_files(&state);

    // StarRocks first: no snapshot (or slot) is taken for a target we cannot load.
    match builder.clone().with_run_id("preflight").build() {
        Ok(probe) => {
            if let Err(e) = probe.check_connection().await {
                die(preflight_code(&e), e)
            }
        }
        Err(e) => die(preflight_code(&e), e),
    }

    let opened = open_run(&args.snap, previous, false, DataFormat::Text, &layout).await;
    let sink = match builder.with_run_id(opened.manifest.run_id.clone()).build() {
        Ok(s) => Arc::new(s),
        Err(e) => abandon(&args, &opened, preflight_code(&e), e).await,
    };
    let schemas: Vec<_> = opened.manifest.tables.iter().map(|t| t.schema.clone()).collect();
    let fresh = !args.resume;
    match sink.prepare(&schemas).await {
        Ok(prepared) => {
            // A new run into a Duplicate Key table that already holds rows would add a second
            // copy of anything loaded before (a new run has new labels); refuse unless asked.
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
                    &args,
                    &opened,
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
        }
        Err(e) => abandon(&args, &opened, preflight_code(&e), e).await,
    }
    let source = Arc::clone(&opened.source);
    let outcome =
        drive(&args.snap, opened, Arc::clone(&sink) as Arc<dyn pgsnap_core::Sink>, store).await;
    let mut warnings = source.warnings().to_vec();
    let counts = if args.verify_count {
        verify_counts(&sink, &outcome.manifest).await
    } else {
        Default::default()
    };
    report(
        &args,
        &state,
        &sink,
        &outcome.manifest,
        outcome.elapsed,
        outcome.fatal.as_ref(),
        &counts,
        &mut warnings,
    )
}

/// Gives up before anything was loaded: closes the snapshot and, on a new run, drops the
/// permanent slot (and publication) it created, so a failed StarRocks preflight leaves no
/// slot holding WAL. Then exits with `code`.
async fn abandon(
    args: &Args,
    opened: &pgsnap_examples::run::OpenedRun,
    code: i32,
    msg: impl std::fmt::Display,
) -> ! {
    if let Err(e) = opened.source.close().await {
        tracing::warn!("closing the snapshot: {e}");
    }
    if let (false, Some(slot)) = (args.resume, &args.snap.slot) {
        match pgsnap_source::drop_slot(&args.snap.source, slot, args.snap.publication.as_deref())
            .await
        {
            Ok(()) => tracing::info!(slot, "dropped the slot this run created"),
            Err(e) => tracing::warn!(slot, "cannot drop the slot this run created: {e}"),
        }
    }
    die(code, msg)
}

/// `SELECT COUNT(*)` per target table (only for tables whose load completed).
async fn verify_counts(
    sink: &StarRocksSink,
    m: &Manifest,
) -> std::collections::BTreeMap<TableName, Result<u64, String>> {
    let mut out = std::collections::BTreeMap::new();
    for t in m.tables.iter().filter(|t| t.status == TableStatus::Ok) {
        let target = sink.target_name(&t.schema.name);
        out.insert(
            t.schema.name.clone(),
            sink.count_rows(&target).await.map_err(|e| e.to_string()),
        );
    }
    out
}

/// Per-table load totals from the manifest's chunk records.
fn load_totals(t: &pgsnap_core::ManifestTable) -> (u64, u64, usize) {
    t.chunks
        .iter()
        .filter_map(|c| c.load.as_ref())
        .fold((0, 0, 0), |(l, f, n), r| (l + r.rows_loaded, f + r.rows_filtered, n + r.loads()))
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    state: &std::path::Path,
    sink: &StarRocksSink,
    manifest: &Manifest,
    elapsed: Duration,
    fatal: Option<&pgsnap_core::Error>,
    counts: &std::collections::BTreeMap<TableName, Result<u64, String>>,
    warnings: &mut Vec<String>,
) -> i32 {
    // Verification: every row read from the snapshot was loaded or (within the allowed
    // ratio) filtered; with --verify-count, the target holds at least that many rows.
    let mut unverified = Vec::new();
    for t in &manifest.tables {
        if t.status != TableStatus::Ok {
            continue;
        }
        let (loaded, filtered, _) = load_totals(t);
        if loaded + filtered != t.rows() {
            unverified.push(format!(
                "{}: {} rows read but StarRocks reported {loaded} loaded and {filtered} filtered",
                t.schema.name,
                t.rows()
            ));
        }
        match counts.get(&t.schema.name) {
            Some(Ok(n)) if *n != loaded => warnings.push(format!(
                "{}: SELECT COUNT(*) of {} is {n}, {loaded} rows were loaded (rows already there, or upserts of equal keys)",
                t.schema.name,
                sink.target_name(&t.schema.name)
            )),
            Some(Err(e)) => warnings.push(format!("{}: COUNT(*) failed: {e}", t.schema.name)),
            _ => {}
        }
    }
    warnings.extend(unverified.iter().cloned());
    let (code, status) = outcome(manifest, fatal, unverified.is_empty(), warnings);
    if args.json {
        let out = report_json(
            manifest,
            status,
            elapsed,
            fatal,
            warnings,
            json!({ "state": state, "database": args.database, "run_id": manifest.run_id }),
            |t| {
                let (loaded, filtered, loads) = load_totals(t);
                let mut v = json!({
                    "target": sink.target_name(&t.schema.name),
                    "rows_loaded": loaded,
                    "rows_filtered": filtered,
                    "loads": loads,
                });
                if let Some(Ok(n)) = counts.get(&t.schema.name) {
                    v["count"] = json!(n);
                }
                v
            },
        );
        println!("{out}");
    } else {
        eprintln!(
            "\n{status}: {} rows, {} in {:.1}s into StarRocks database {} (state {}, {})",
            manifest.rows(),
            human_bytes(manifest.bytes()),
            elapsed.as_secs_f64(),
            args.database,
            state.display(),
            snapshot_summary(&manifest.snapshot),
        );
        for t in &manifest.tables {
            let (loaded, filtered, loads) = load_totals(t);
            eprintln!(
                "  {:<32} -> {:<24} {:<7} {:>10} read {:>10} loaded {:>6} filtered {:>5} loads{}",
                t.schema.name.to_string(),
                sink.target_name(&t.schema.name),
                t.status.as_str(),
                t.rows(),
                loaded,
                filtered,
                loads,
                t.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
            );
        }
        for w in warnings.iter() {
            eprintln!("warning: {w}");
        }
        if manifest.tables.iter().any(|t| t.status != TableStatus::Ok) {
            eprintln!("some tables are incomplete: {}", resume_hint(&manifest.snapshot));
        }
    }
    code
}

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

use clap::{CommandFactory, FromArgMatches, Parser};
use pgsnap_core::{DataFormat, Manifest, ManifestStore, TableName, TableStatus};
use pgsnap_examples::run::{
    SnapshotArgs, drive, open_run, outcome, previous_run, remove_stale_manifest_temp_files,
    report_json, resume_hint, snapshot_summary,
};
use pgsnap_examples::starrocks::{
    StarRocksArgs, build_and_prepare, check_connection, load_totals, lock_state, table_line,
    table_report, unverified_tables,
};
use pgsnap_examples::*;
use pgsnap_sink_starrocks::StarRocksSink;
use serde_json::json;

/// Consistent parallel snapshot of PostgreSQL loaded into StarRocks (Stream Load, exactly once).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    snap: SnapshotArgs,
    #[command(flatten)]
    sr: StarRocksArgs,
    /// Directory for the run's state (manifest, no data); default ./pgsnap-state/starrocks-<fe host>-<port>-<database>.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Continue the interrupted run recorded in --state.
    #[arg(long)]
    resume: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// After loading, compare SELECT COUNT(*) of each target table with the rows read.
    #[arg(long)]
    verify_count: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    init_logging();
    // This job always loads StarRocks: --fe and --database are required.
    let matches = Args::command()
        .mut_arg("fe", |a| a.required(true))
        .mut_arg("database", |a| a.required(true))
        .get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let state = args.state.clone().unwrap_or_else(|| args.sr.default_state_dir());
    // The state directory: created, and locked for the whole run (one run per state).
    let _lock = lock_state(&state, "--state");
    let store = ManifestStore::new(&state);
    let builder = args.sr.sink_builder();
    // Recorded as the manifest's `compression` word: a resume must load into the same place
    // with the same labels and the same part boundaries, so every option that decides the
    // target, the labels or the body bytes must match the interrupted run's.
    let layout = args.sr.load_layout();
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
    check_connection(&builder).await;

    let opened = open_run(&args.snap, previous, false, DataFormat::Text, &layout).await;
    let sink =
        Arc::new(build_and_prepare(builder, &args.sr, &args.snap, &opened, !args.resume).await);
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
    let unverified = unverified_tables(manifest);
    for t in manifest.tables.iter().filter(|t| t.status == TableStatus::Ok) {
        let (loaded, _, _) = load_totals(t);
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
            json!({ "state": state, "database": args.sr.database(), "run_id": manifest.run_id }),
            |t| {
                let mut v = table_report(sink, t);
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
            args.sr.database(),
            state.display(),
            snapshot_summary(&manifest.snapshot),
        );
        for t in &manifest.tables {
            eprintln!("{}", table_line(sink, t));
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

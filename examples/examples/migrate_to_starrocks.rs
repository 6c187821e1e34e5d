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
//! The same as `pgsnap migrate`: the flags are `pgsnap_cli::args::MigrateCmd`, the job is
//! [`pgsnap::MigrateJob`]. In a service, the job alone is enough:
//!
//! ```no_run
//! # async fn f() -> Result<(), pgsnap::JobError> {
//! use pgsnap::starrocks::StarRocksSinkBuilder;
//! use pgsnap::{Connection, MigrateJob, RunControl, SnapshotOptions};
//! let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"));
//! let starrocks = StarRocksSinkBuilder::new("http://fe1:8030", "analytics")
//!     .with_user("loader")
//!     .with_password(std::env::var("STARROCKS_PASSWORD").unwrap_or_default())
//!     .with_create_tables(true);
//! let report = MigrateJob::new(options, starrocks).run(&RunControl::new()).await?;
//! println!("{}", serde_json::to_string(&report).unwrap());
//! # Ok(()) }
//! ```
//!
//! Progress and logs on stderr, `--json` prints one JSON object on stdout (the snapshot
//! report plus `state`, `database`, `run_id` and, per table, `target`, `rows_loaded`,
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
//! - 130 / 143: stopped by SIGINT / SIGTERM; what is done is kept, `--resume` continues.

use clap::Parser;
use pgsnap_cli::args::MigrateCmd;
use pgsnap_cli::interrupt::Interrupts;
use pgsnap_cli::output::{self, Front};

#[tokio::main]
async fn main() {
    output::init_logging();
    let args = MigrateCmd::parse();
    let interrupts = Interrupts::install();
    let code = match args.job() {
        Err(e) => output::usage(&e),
        Ok(job) => {
            let control = args.snap.metrics.control(output::with_progress(interrupts.control()));
            match job.run(&control).await {
                Ok(report) => output::migrate(&report, args.json, interrupts.exit_code()),
                Err(e) => output::fail(&e, Front::Migrate, interrupts.exit_code()),
            }
        }
    };
    std::process::exit(code);
}

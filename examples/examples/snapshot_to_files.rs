//! The main job: a consistent, parallel, resumable snapshot of PostgreSQL into files.
//!
//! ```text
//! cargo run --release --example snapshot_to_files -- --source "host=... dbname=..." --out ./snap
//! ```
//!
//! The same as `pgsnap snapshot`: the flags are `pgsnap_cli::args::SnapshotCmd`, the job is
//! [`pgsnap::FilesJob`], the report and exit codes come from `pgsnap_cli::output`. Copy this
//! file to run the job from your own binary; in a service, the job alone is enough:
//!
//! ```no_run
//! # async fn f() -> Result<(), pgsnap::JobError> {
//! use pgsnap::{Connection, FilesJob, RunControl, SnapshotOptions};
//! let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app")).with_jobs(8);
//! let report = FilesJob::new(options, "/data/snap").run(&RunControl::new()).await?;
//! println!("{}", serde_json::to_string(&report).unwrap());
//! # Ok(()) }
//! ```
//!
//! Writes `<out>/manifest.json` plus one file per chunk under a directory per table (see the
//! README's "Manifest" section). Progress and logs on stderr, `--json` prints one JSON object
//! on stdout. Exit codes:
//! - 0: every chunk of every table is done (also `--plan`, and `--resume` of a run that is
//!   already complete and whose files check out: that needs no snapshot).
//! - 1: the run finished but some tables failed (`status: "partial"`, or `"failed"` when no
//!   table completed); each failed table has an `error`. `--resume` can finish them only
//!   while the snapshot outlives the run (an external one still held, or a permanent slot
//!   with `--allow-snapshot-change`), otherwise start a new run.
//! - 2: bad flags or values; `--out` not empty without `--resume`; `--resume` without a
//!   manifest, or with other `--split-by`, `--chunk-size`, `--include`, `--exclude`,
//!   `--compress` or format than the interrupted run; an unreadable manifest; `--out` in use
//!   by another running pgsnap.
//! - 3: cannot connect, or a preflight check failed (wal_level, privileges, no free slot,
//!   `--include` matching nothing, row-level security, a table lock not granted, ...).
//! - 4: the snapshot is lost or not importable: a bad `--snapshot`, or `--resume` after the
//!   process holding the run's snapshot ended, unless `--allow-snapshot-change` applies.
//! - 5: the output cannot be written (checked before any snapshot is taken, or mid-run).
//! - 130 / 143: stopped by SIGINT / SIGTERM; what is done is kept, `--resume` continues.

use clap::Parser;
use pgsnap_cli::args::SnapshotCmd;
use pgsnap_cli::interrupt::Interrupts;
use pgsnap_cli::output::{self, Front};

#[tokio::main]
async fn main() {
    output::init_logging();
    let args = SnapshotCmd::parse();
    let interrupts = Interrupts::install();
    let job = args.job();
    let code = if args.plan {
        match job.plan().await {
            Ok(plan) => output::plan(&plan, args.json),
            Err(e) => output::fail(&e, Front::Snapshot, None),
        }
    } else {
        let control = args.snap.metrics.control(output::with_progress(interrupts.control()));
        match job.run(&control).await {
            Ok(report) => output::files(&report, args.json, interrupts.exit_code()),
            Err(e) => output::fail(&e, Front::Snapshot, interrupts.exit_code()),
        }
    };
    std::process::exit(code);
}

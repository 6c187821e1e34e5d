//! After a handoff: how far the CDC has come, per table and overall, and whether it is caught
//! up for cutover.
//!
//! ```text
//! cargo run --release --example status -- --state ./handoff-state --source "host=db dbname=app" \
//!     --fe http://fe:8030 [--password-env VAR] [--connect-url URL] \
//!     [--cutover-lsn X/Y | --writes-stopped] [--until-caught-up [--timeout SECS]] \
//!     [--watch SECS] [--json]
//! ```
//!
//! The same as `pgsnap status`: the flags are `pgsnap_cli::args::StatusCmd`, the job is
//! [`pgsnap::StatusJob`]. In a service, the job alone is enough:
//!
//! ```no_run
//! # async fn f() -> Result<(), pgsnap::JobError> {
//! use std::time::Duration;
//! use pgsnap::starrocks::StarRocksSinkBuilder;
//! use pgsnap::{Connection, Cutover, StatusJob};
//! let job = StatusJob::new(
//!     "/data/handoff",
//!     Connection::new("host=db1 dbname=sales user=app"),
//!     StarRocksSinkBuilder::new("http://fe1:8030", ""),
//! )
//! .with_cutover(Cutover::TakeNow);
//! let (report, timed_out) =
//!     job.until_caught_up(Duration::from_secs(600), Duration::from_secs(2), |_| {}).await?;
//! println!("{} (timed out: {timed_out})", report.lag_summary());
//! # Ok(()) }
//! ```
//!
//! # What it reads
//! The state directory's `manifest.json` and its `handoff` (brokers, the StarRocks database,
//! the connector, the Routine Loads `handoff --create-routine-loads` created, with the
//! offsets they started at). Per table: the topic's high watermarks, then `SHOW ALL ROUTINE
//! LOAD` (state, reason, progress, statistics, error URLs). The slot's
//! `confirmed_flush_lsn` (the handoff's permanent slot, or `--slot`); with `--connect-url`
//! the connector's state and `lsn_proc`.
//!
//! # Verdicts and exit codes
//! `caught_up` (exit 0), `lagging` (exit 6: not final; `--until-caught-up` keeps checking
//! and exits 6 when `--timeout` passes), `paused` and `failed` (exit 1 at once: waiting
//! cannot fix them). A job paused after filtered rows gets the remedy: the rows were skipped
//! in the committed batch and RESUME will not bring them back; fix the mapping and reset the
//! job to the recorded offsets with the printed `ALTER ROUTINE LOAD`, or re-snapshot the
//! table. 2 usage (a state without Routine Loads included), 3 a server unreachable.
//!
//! # Output
//! Text on stderr (`--watch`: redrawn in place on a terminal); `--json`: one object on stdout
//! (`tables[]` with `source`, `target`, `routine_load` {`name`, `state`, `reason`,
//! `partitions` [{`partition`, `high_watermark`, `consumed`, `lag`, `caught_up`}],
//! `rows_loaded`, `rows_filtered`}, `verdict`; `slot`, `connector`, `cutover_lsn`,
//! `caught_up_for_cutover`, `verdict`); with `--watch --json` one object per line (NDJSON).

use clap::Parser;
use pgsnap_cli::args::StatusCmd;
use pgsnap_cli::interrupt::Interrupts;
use pgsnap_cli::output;

#[tokio::main]
async fn main() {
    output::init_logging();
    let args = StatusCmd::parse();
    let interrupts = Interrupts::install();
    let code = match args.job() {
        Err(e) => output::usage(&e),
        Ok(job) => {
            let cancel = interrupts.control().cancellation_token();
            output::run_status(&job, &args, cancel, || interrupts.exit_code()).await
        }
    };
    std::process::exit(code);
}

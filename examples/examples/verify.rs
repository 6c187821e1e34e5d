//! The verify job: compares each PostgreSQL table with its StarRocks target, row counts then
//! the rows, as typed cells (numbers numerically, datetimes as UTC instants, JSON
//! semantically, text byte for byte).
//!
//! ```text
//! STARROCKS_PASSWORD=... cargo run --release --example verify -- \
//!     --source "host=... dbname=..." --fe http://fe1:8030 --user loader \
//!     --password-env STARROCKS_PASSWORD --database analytics --full --json
//! ```
//!
//! Both sides are read in bounded key ranges in the same order (PostgreSQL under one
//! snapshot, ordered by the key's StarRocks representation; StarRocks with `WHERE <range>
//! ORDER BY <key> LIMIT n`), so memory is bounded whatever the table size. `--sample K`
//! (default 16) compares K ranges of `--rows R` (default 1000) rows spread across each key
//! space, plus the first and last; `--full` compares everything. `--state DIR` takes the
//! tables of a migration's manifest.
//!
//! The same as `pgsnap verify`: the flags are `pgsnap_cli::args::VerifyCmd`, the job is
//! [`pgsnap::VerifyJob`]. No CDC status is read yet, so data that verifies equal is reported
//! `not_final` (exit 6); a service that knows CDC caught up passes
//! [`pgsnap::CutoverEvidence`]:
//!
//! ```no_run
//! # async fn f() -> Result<(), pgsnap::JobError> {
//! use pgsnap::starrocks::StarRocksSinkBuilder;
//! use pgsnap::{Connection, CutoverEvidence, RunControl, VerifyJob, VerifyMode};
//! let starrocks = StarRocksSinkBuilder::new("http://fe1:8030", "analytics").with_user("loader");
//! let report = VerifyJob::new(Connection::new("host=db1 dbname=sales"), starrocks)
//!     .with_mode(VerifyMode::Full)
//!     .with_cutover(Some(CutoverEvidence::new(true, serde_json::json!({"lag": 0}))))
//!     .run(&RunControl::new())
//!     .await?;
//! println!("{}", report.to_json());
//! # Ok(()) }
//! ```
//!
//! stdout with `--json`: one JSON object with `verdict` (`equal`, `different`, `not_final`)
//! and `tables[]` (`source`, `target`, `rows_source`, `rows_target`, `compared`,
//! `differences` [{`key`, `kind`, `columns`}], ...). Exit codes: 0 equal, 1 different,
//! 2 usage, 3 PostgreSQL or StarRocks unreachable, 6 not final or `--timeout`.

use clap::Parser;
use pgsnap_cli::args::VerifyCmd;
use pgsnap_cli::interrupt::Interrupts;
use pgsnap_cli::output::{self, Front};

#[tokio::main]
async fn main() {
    output::init_logging();
    let args = VerifyCmd::parse();
    let interrupts = Interrupts::install();
    let code = match args.job() {
        Err(e) => output::usage(&e),
        Ok(job) => match job.run(&interrupts.control()).await {
            Ok(report) => output::verify(&report, args.json),
            Err(e) => output::fail(&e, Front::Verify, interrupts.exit_code()),
        },
    };
    std::process::exit(code);
}

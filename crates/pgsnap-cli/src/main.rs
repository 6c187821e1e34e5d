//! `pgsnap`: consistent parallel PostgreSQL snapshots into files or StarRocks, and the
//! handoff to Debezium CDC at exact offsets. Each subcommand is one job of the `pgsnap`
//! library; see `pgsnap <command> --help`.

use clap::{Parser, Subcommand};
use pgsnap_cli::args::DropSlotCmd;
use pgsnap_cli::interrupt::Interrupts;
use pgsnap_cli::output::{self, Front};

const AFTER_HELP: &str = "\
Environment:
  PGSNAP_SOURCE        the --source connection (libpq string or postgresql:// URL)
  PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE, ...
                       fill in what --source leaves unset, as libpq does (~/.pgpass too)
  --password-env NAME  names the variable that holds the StarRocks password
  RUST_LOG             log level on stderr (default info)

Exit codes:
  0 complete, 1 finished with failed tables, 2 usage, 3 preflight or connection,
  4 snapshot lost, 5 non-retryable sink error, 6 timeout or not final (status, verify),
  130 stopped by SIGINT, 143 stopped by SIGTERM
  (a stopped run keeps what is done: rerun with --resume)
  status: 0 caught up, 1 paused or failed, 2 usage, 3 unreachable,
  6 lagging (one check, or --until-caught-up when --timeout passed)
  verify: 0 equal, 1 different, 2 usage, 3 unreachable, 6 not final or timed out";

/// Zero-gap PostgreSQL -> StarRocks migrations: consistent parallel snapshots, exact-once
/// loading, and the handoff to Debezium CDC at exact offsets.
#[derive(Debug, Parser)]
#[command(name = "pgsnap", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consistent parallel snapshot of PostgreSQL into files (resumable).
    #[cfg(feature = "files")]
    #[command(after_help = AFTER_HELP)]
    Snapshot(pgsnap_cli::args::SnapshotCmd),
    /// Snapshot loaded into StarRocks with Stream Load, every chunk exactly once.
    #[cfg(feature = "starrocks")]
    #[command(after_help = AFTER_HELP)]
    Migrate(Box<pgsnap_cli::args::MigrateCmd>),
    /// Snapshot, then the exact Kafka offsets, Routine Load statements and Debezium config
    /// that continue it with CDC.
    #[cfg(feature = "kafka")]
    #[command(after_help = AFTER_HELP)]
    Handoff(Box<pgsnap_cli::args::HandoffCmd>),
    /// How far the CDC after a handoff has come: per table the Routine Load against Kafka's
    /// high watermarks, the slot, the connector, a verdict, and the cutover rule.
    #[cfg(feature = "kafka")]
    #[command(after_help = AFTER_HELP)]
    Status(Box<pgsnap_cli::args::StatusCmd>),
    /// Compare PostgreSQL tables with their StarRocks targets, row by row (typed, in bounded
    /// key ranges).
    #[cfg(feature = "starrocks")]
    #[command(after_help = format!("{}\n\n{AFTER_HELP}", pgsnap_cli::args::VERIFY_HELP))]
    Verify(Box<pgsnap_cli::args::VerifyCmd>),
    /// Drop a permanent replication slot (and its publication) once nothing needs it.
    #[command(after_help = AFTER_HELP)]
    DropSlot(DropSlotCmd),
}

#[tokio::main]
async fn main() {
    output::init_logging();
    let cli = Cli::parse();
    let interrupts = Interrupts::install();
    let code = match cli.command {
        #[cfg(feature = "files")]
        Command::Snapshot(args) => snapshot(args, &interrupts).await,
        #[cfg(feature = "starrocks")]
        Command::Migrate(args) => migrate(*args, &interrupts).await,
        #[cfg(feature = "kafka")]
        Command::Handoff(args) => handoff(*args, &interrupts).await,
        #[cfg(feature = "kafka")]
        Command::Status(args) => status(*args, &interrupts).await,
        #[cfg(feature = "starrocks")]
        Command::Verify(args) => Box::pin(verify(*args, &interrupts)).await,
        Command::DropSlot(args) => drop_slot(args).await,
    };
    std::process::exit(code);
}

#[cfg(feature = "files")]
async fn snapshot(args: pgsnap_cli::args::SnapshotCmd, interrupts: &Interrupts) -> i32 {
    let job = args.job();
    if args.plan {
        return match job.plan().await {
            Ok(plan) => output::plan(&plan, args.json),
            Err(e) => output::fail(&e, Front::Snapshot, None),
        };
    }
    let control = args.snap.metrics.control(output::with_progress(interrupts.control()));
    match job.run(&control).await {
        Ok(report) => output::files(&report, args.json, interrupts.exit_code()),
        Err(e) => output::fail(&e, Front::Snapshot, interrupts.exit_code()),
    }
}

#[cfg(feature = "starrocks")]
async fn migrate(args: pgsnap_cli::args::MigrateCmd, interrupts: &Interrupts) -> i32 {
    let job = match args.job() {
        Ok(job) => job,
        Err(e) => return output::usage(&e),
    };
    let control = args.snap.metrics.control(output::with_progress(interrupts.control()));
    match job.run(&control).await {
        Ok(report) => output::migrate(&report, args.json, interrupts.exit_code()),
        Err(e) => output::fail(&e, Front::Migrate, interrupts.exit_code()),
    }
}

#[cfg(feature = "kafka")]
async fn handoff(args: pgsnap_cli::args::HandoffCmd, interrupts: &Interrupts) -> i32 {
    let job = match args.job() {
        Ok(job) => job,
        Err(e) => return output::usage(&e),
    };
    let control = args.snap.metrics.control(output::with_progress(interrupts.control()));
    match job.run(&control).await {
        Ok(report) => output::handoff(&report, args.json, interrupts.exit_code()),
        Err(e) => output::fail(&e, Front::Handoff, interrupts.exit_code()),
    }
}

#[cfg(feature = "kafka")]
async fn status(args: pgsnap_cli::args::StatusCmd, interrupts: &Interrupts) -> i32 {
    let job = match args.job() {
        Ok(job) => job,
        Err(e) => return output::usage(&e),
    };
    let cancel = interrupts.control().cancellation_token();
    output::run_status(&job, &args, cancel, || interrupts.exit_code()).await
}

#[cfg(feature = "starrocks")]
async fn verify(args: pgsnap_cli::args::VerifyCmd, interrupts: &Interrupts) -> i32 {
    let job = match args.job() {
        Ok(job) => job,
        Err(e) => return output::usage(&e),
    };
    match job.run(&interrupts.control()).await {
        Ok(report) => output::verify(&report, args.json),
        Err(e) => output::fail(&e, Front::Verify, interrupts.exit_code()),
    }
}

async fn drop_slot(args: DropSlotCmd) -> i32 {
    let dropped =
        pgsnap::drop_slot(args.source.connection(), &args.slot, args.publication.as_deref()).await;
    output::drop_slot(&args, dropped)
}

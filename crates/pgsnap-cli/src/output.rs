//! What the commands print: the report (one JSON object on stdout with `--json`, text on
//! stderr otherwise), and errors on stderr in the command's own words (its flag names).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// (A build with drop-slot only prints no report.)
#[cfg_attr(not(any(feature = "files", feature = "starrocks")), allow(unused_imports))]
use pgsnap::core::{ManifestTable, ProgressEvent, ProgressHandler, SnapshotInfo, TableStatus};
#[cfg_attr(not(any(feature = "files", feature = "starrocks")), allow(unused_imports))]
use pgsnap::{ConfigError, JobError, Outcome, ResumeHint, ResumeRefusal, RunControl, RunSummary};
#[cfg_attr(not(any(feature = "files", feature = "starrocks")), allow(unused_imports))]
use serde_json::Value;

#[cfg_attr(not(any(feature = "files", feature = "starrocks")), allow(unused_imports))]
use crate::exit::{EXIT_OK, code_of_kind, code_of_outcome};

#[cfg(feature = "kafka")]
mod status;
#[cfg(feature = "kafka")]
pub use status::{StatusPrinter, run_status, status_lines};

/// Which command is reporting (decides the flag names in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Front {
    /// `pgsnap snapshot` (`--out`).
    Snapshot,
    /// `pgsnap migrate` (`--state`).
    Migrate,
    /// `pgsnap handoff` (`--out`, no resume).
    Handoff,
    /// `pgsnap status` (`--state`).
    Status,
    /// `pgsnap verify` (`--state`, read only).
    Verify,
}

impl Front {
    fn dir_flag(self) -> &'static str {
        match self {
            Front::Migrate | Front::Status | Front::Verify => "--state",
            _ => "--out",
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the level (default `info`). For `main` only.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// `control` with progress on stderr: a bar on a terminal, a log line every 5 s otherwise.
pub fn with_progress(control: RunControl) -> RunControl {
    control.with_progress(progress_handler(Duration::from_secs(5)))
}

/// Human-readable bytes (`1.5 GB`, powers of 10).
///
/// ```
/// assert_eq!(pgsnap_cli::output::human_bytes(1_500_000_000), "1.5 GB");
/// ```
pub fn human_bytes(n: u64) -> String {
    pgsnap::human_bytes(n)
}

/// Prints a text report's table entries on stderr, summarised beyond a screenful
/// ([`pgsnap::summarise_tables`]; `--json` keeps every table).
#[cfg_attr(not(any(feature = "files", feature = "starrocks")), allow(dead_code))]
fn print_tables(lines: Vec<pgsnap::TableLine>) {
    for l in pgsnap::summarise_tables(lines, pgsnap::TEXT_TABLE_LINES) {
        eprintln!("{l}");
    }
}

/// A run's table as a summarisable entry: ok when its status is.
#[cfg(any(feature = "files", feature = "starrocks"))]
fn run_table(t: &ManifestTable, text: String) -> pgsnap::TableLine {
    pgsnap::TableLine::new(text, t.status == TableStatus::Ok, t.rows()).with_bytes(t.bytes())
}

/// A progress handler: a bar when stderr is a terminal, a log line every `every` otherwise.
pub fn progress_handler(every: Duration) -> ProgressHandler {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Arc::new(move |e: &ProgressEvent| {
            if let ProgressEvent::Tick(s) = e {
                bar.set_length(s.chunks_total);
                bar.set_position(s.chunks_done);
                bar.set_message(format!(
                    "{} at {}/s, ETA {}",
                    human_bytes(s.bytes),
                    human_bytes(s.throughput as u64),
                    s.eta.map(|d| format!("{}s", d.as_secs())).unwrap_or_else(|| "?".into())
                ));
                if s.chunks_done == s.chunks_total {
                    bar.finish_and_clear();
                }
            }
        })
    } else {
        let last = Mutex::new(Instant::now());
        Arc::new(move |e: &ProgressEvent| match e {
            ProgressEvent::Tick(s) => {
                let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
                if l.elapsed() >= every {
                    *l = Instant::now();
                    tracing::info!(
                        chunks = format!("{}/{}", s.chunks_done, s.chunks_total),
                        bytes = %human_bytes(s.bytes),
                        rate = format!("{}/s", human_bytes(s.throughput as u64)),
                        eta_s = s.eta.map(|d| d.as_secs()),
                        "progress"
                    );
                }
            }
            ProgressEvent::ChunkRetry { chunk, attempt, error } => {
                tracing::warn!(chunk = %chunk.label(), attempt, %error, "retrying chunk");
            }
            _ => {}
        })
    }
}

/// Prints `error: <message>` (and hints) for a job that could not run; returns the exit code.
pub fn fail(e: &JobError, front: Front, signal: Option<i32>) -> i32 {
    eprintln!("error: {}", in_flags(&error_message(e, front)));
    for h in hints(e) {
        eprintln!("hint: {h}");
    }
    code_of_kind(e.kind(), signal)
}

/// Prints `error: <message>` for flags that cannot make a job; returns 2.
pub fn usage(e: &crate::args::UsageError) -> i32 {
    eprintln!("error: {e}");
    crate::exit::EXIT_USAGE
}

/// A job error in the command's words.
pub fn error_message(e: &JobError, front: Front) -> String {
    let dir = front.dir_flag();
    match e {
        JobError::Config(c) => config_message(c),
        JobError::DirectoryNotEmpty { dir: d } if front == Front::Handoff => {
            format!("{dir} {} is not empty: choose an empty directory", d.display())
        }
        JobError::DirectoryNotEmpty { dir: d } => format!(
            "{dir} {} is not empty: pass --resume to continue the run there, or choose an empty directory",
            d.display()
        ),
        JobError::NothingToResume { manifest } => {
            format!("--resume: no {} found; start a new run without --resume", manifest.display())
        }
        JobError::NoHandoff { dir: d, reason } => format!("{dir} {}: {reason}", d.display()),
        JobError::DirectoryInUse { dir: d } => {
            format!("{dir} {} is in use by another running pgsnap", d.display())
        }
        JobError::Directory { dir: d, source } => format!("{dir} {}: {source}", d.display()),
        #[cfg(feature = "metrics")]
        JobError::Metrics(b) => format!(
            "--metrics-addr {}: cannot listen there ({}): choose a free port, or port 0 for any",
            b.addr, b.source
        ),
        JobError::CannotResume(r) => resume_message(r),
        JobError::Refused { reason, strict: true } => format!("--strict: {reason}"),
        JobError::Core(c) if c.kind() == pgsnap::core::ErrorKind::ResumeMismatch => {
            match (c.context("option"), c.context("was"), c.context("now")) {
                (Some(option), Some(was), Some(now)) => mismatch_message(option, was, now),
                _ => pgsnap::core::error_chain(e),
            }
        }
        _ => pgsnap::core::error_chain(e),
    }
}

fn config_message(c: &ConfigError) -> String {
    match c {
        ConfigError::NoJobs => "--jobs must be at least 1".into(),
        ConfigError::ZeroChunkSize => "--chunk-size must be more than 0 bytes".into(),
        ConfigError::ExternalSnapshotNeedsName => "--snapshot-mode external needs --snapshot NAME (a snapshot exported and held open by another session)".into(),
        ConfigError::SnapshotNameNeedsExternalMode(_) => {
            "--snapshot NAME needs --snapshot-mode external".into()
        }
        ConfigError::SlotNeedsSlotMode(_) => "--slot only applies to --snapshot-mode slot".into(),
        ConfigError::EmptyKafka => "--brokers and --topic-prefix must not be empty".into(),
        ConfigError::KafkaClient(e) => format!("--kafka-config / --kafka-config-file: {e}"),
        ConfigError::HandoffNeedsSlotMode(mode) => format!(
            "--snapshot-mode {mode}: a handoff needs a snapshot exported by a replication slot (--snapshot-mode slot); a pg_export_snapshot() snapshot is not a clean prefix of the change stream"
        ),
        ConfigError::ConnectorWithoutConnect => "--connector needs --connect-url".into(),
        ConfigError::ConnectorInSlotFirst => "--connector names a running connector (--mode running or time); slot-first submits a new one (--connector-name)".into(),
        ConfigError::ConnectWithoutConnector { mode } => format!(
            "--connect-url with --mode {mode}: Debezium already runs; name it with --connector NAME so its committed position can be checked against the snapshot"
        ),
        ConfigError::SlotWhileRunning { mode } => format!(
            "--slot with --mode {mode}: the snapshot must come from a temporary slot (Debezium already runs on its own)"
        ),
        ConfigError::DebeziumConfigInSlotFirst => "--debezium-config describes a running connector (--mode running or time); slot-first renders the connector config itself".into(),
        ConfigError::StarRocksVersion(e) => format!("--starrocks-version: {e}"),
        ConfigError::CreateRoutineLoadsWithoutStarRocks => "--create-routine-loads needs the StarRocks flags (--fe ..., with the SQL port): the jobs are created through the FE once the snapshot is loaded".into(),
        ConfigError::NoStarRocksVersion => "--strict: no StarRocks version is known, so no Routine Load would be rendered (its properties depend on the version): pass --starrocks-version, or the StarRocks flags (--fe ...)".into(),
        ConfigError::UnknownEncodings { mode } => format!(
            "--strict: --mode {mode}: the running connector's encodings are unknown, so no Routine Load would be rendered: pass --debezium-config FILE, or --connect-url and --connector"
        ),
        other => other.to_string(),
    }
}

fn resume_message(r: &ResumeRefusal) -> String {
    match r {
        ResumeRefusal::SnapshotEnded { mode, snapshot, permanent_slot, change_refused } => format!(
            "cannot resume: the run's {mode}-mode snapshot {snapshot:?} ended with the interrupted process.{} Start a new run.",
            if *permanent_slot {
                " Pass --allow-snapshot-change to copy the remaining chunks under a new snapshot (CDC replay from the permanent slot converges for primary-key tables)."
            } else if *change_refused {
                " --allow-snapshot-change needs a run in slot mode with a permanent --slot."
            } else {
                ""
            }
        ),
        ResumeRefusal::SlotGone { slot, consistent_point } => format!(
            "cannot resume with a new snapshot: replication slot {slot:?} of the interrupted run no longer exists, so CDC cannot replay from its consistent point {}; start a new run",
            consistent_point.map(|l| l.to_string()).unwrap_or_default()
        ),
        other => format!("cannot resume: {other}"),
    }
}

fn mismatch_message(option: &str, was: &str, now: &str) -> String {
    let flag = match option {
        "split_by" => "--split-by",
        "chunk_size" => "--chunk-size",
        "include" => "--include",
        "exclude" => "--exclude",
        "format" => "--format",
        "compression" => "--compress",
        "sink" => {
            return format!(
                "--resume with other StarRocks options than the interrupted run (--database, --label-prefix, --format, --max-load-bytes, --transactions, --unrepresentable, --table-map, --column-type must match): it used \"{was}\", this run asks for \"{now}\"; rerun with the original flags, or start a new run with another --state"
            );
        }
        other => other,
    };
    format!(
        "--resume with another {flag} than the interrupted run (it used {was}, this run asks for {now}): rerun with the original flags, or start a new run elsewhere"
    )
}

/// The library calls that library messages name, and this command's flags for them.
const API_FLAGS: &[(&str, &str)] = &[
    ("ConnectClient::with_ca_file", "--connect-ca-file"),
    ("ConnectClient::with_basic_auth", "--connect-user, --connect-password-env"),
    ("HandoffJob::with_allow_no_deletes", "--allow-no-deletes"),
    ("(Cutover::TakeNow or Cutover::Lsn)", "(--writes-stopped or --cutover-lsn)"),
];

/// `text` (an error or a warning of the library) with the API calls it names replaced by
/// this command's flags: the library does not know the command that runs it.
pub fn in_flags(text: &str) -> String {
    API_FLAGS.iter().fold(text.to_owned(), |t, (api, flags)| t.replace(api, flags))
}

/// Flag hints for errors whose library message names the API: what to pass to this command.
fn hints(e: &JobError) -> Vec<String> {
    let mut out = Vec::new();
    #[cfg(feature = "starrocks")]
    {
        use pgsnap::starrocks::Error as Sr;
        use pgsnap::starrocks::mapping::MappingError;
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cur {
            match c.downcast_ref::<Sr>() {
                Some(Sr::UnknownTable { .. }) => {
                    out.push("pass --create-tables to create missing tables".into())
                }
                Some(Sr::OccupiedTargets { .. }) => out.push(
                    "empty them, resume the run that loaded them with --resume, or pass --allow-existing-rows"
                        .into(),
                ),
                Some(Sr::TargetCollision { .. }) => {
                    out.push("map one of them to another name with --table-map".into())
                }
                _ => {}
            }
            if let Some(MappingError::UnsupportedType { .. }) = c.downcast_ref::<MappingError>() {
                out.push(
                    "override the column's type with --column-type SCHEMA.TABLE.COLUMN=VARCHAR(n), or keep PostgreSQL's text with --unrepresentable varchar"
                        .into(),
                );
            }
            cur = c.source();
        }
    }
    let _ = e;
    out.dedup();
    out
}

/// `snapshot <name> mode <mode>[, handoff LSN <lsn>][, slot <slot>]`, for text reports.
pub fn snapshot_summary(s: &SnapshotInfo) -> String {
    format!(
        "snapshot {} mode {}{}{}",
        s.name,
        s.mode,
        s.lsn.map(|l| format!(", handoff LSN {l}")).unwrap_or_default(),
        s.slot.as_ref().map(|sl| format!(", slot {sl}")).unwrap_or_default(),
    )
}

/// What an incomplete run can do next, in this command's flags.
pub fn resume_hint(s: &SnapshotInfo) -> &'static str {
    match ResumeHint::for_snapshot(s) {
        ResumeHint::WhileSnapshotHeld => {
            "fix the cause and rerun with --resume while the session holding the snapshot stays open"
        }
        ResumeHint::WithSnapshotChange => {
            "fix the cause and rerun with --resume --allow-snapshot-change (the remaining chunks are copied under a new snapshot; CDC replay from the slot converges for primary-key tables)"
        }
        _ => {
            "the snapshot ended with this run, so --resume cannot finish them consistently: fix the cause and start a new run"
        }
    }
}

#[cfg(any(feature = "files", feature = "starrocks"))]
/// Prints `json` on stdout when `as_json`, else calls `text`; returns the exit code of
/// `outcome`.
fn emit(
    as_json: bool,
    json: Value,
    text: impl FnOnce(),
    outcome: Outcome,
    signal: Option<i32>,
) -> i32 {
    if as_json {
        println!("{json}");
    } else {
        text();
    }
    code_of_outcome(outcome, signal)
}

#[cfg(any(feature = "files", feature = "starrocks"))]
/// The text report's tail: warnings, and what to do about incomplete tables.
fn text_tail(run: &RunSummary) {
    for w in &run.warnings {
        eprintln!("warning: {}", in_flags(w));
    }
    if run.manifest.tables.iter().any(|t| t.status != TableStatus::Ok) {
        eprintln!("some tables are incomplete: {}", resume_hint(&run.manifest.snapshot));
    }
}

/// The text report's first line: `<status>: <rows> rows, <bytes> in <s>s into <into> (<snapshot>)`.
#[cfg(any(feature = "files", feature = "starrocks"))]
fn headline(run: &RunSummary, into: std::fmt::Arguments<'_>) {
    eprintln!(
        "\n{}: {} rows, {} in {:.1}s into {into} ({})",
        run.status(),
        run.manifest.rows(),
        human_bytes(run.manifest.bytes()),
        run.elapsed.as_secs_f64(),
        snapshot_summary(&run.manifest.snapshot),
    );
}

#[cfg(feature = "files")]
fn table_line(t: &ManifestTable) -> String {
    format!(
        "  {:<40} {:<7} {:>10} rows {:>10} {:>4}/{} chunks{}",
        t.schema.name.to_string(),
        t.status.as_str(),
        t.rows(),
        human_bytes(t.bytes()),
        t.chunks_done(),
        t.chunks.len(),
        t.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
    )
}

/// Prints a files job's report; returns the exit code.
#[cfg(feature = "files")]
pub fn files(report: &pgsnap::FilesReport, as_json: bool, signal: Option<i32>) -> i32 {
    let run = &report.run;
    let text = || {
        headline(run, format_args!("{}", report.out.display()));
        print_tables(run.manifest.tables.iter().map(|t| run_table(t, table_line(t))).collect());
        text_tail(run);
    };
    emit(as_json, report.to_json(), text, run.outcome(), signal)
}

/// Prints a plan; returns 0.
#[cfg(feature = "files")]
pub fn plan(plan: &pgsnap::Plan, as_json: bool) -> i32 {
    if as_json {
        println!("{}", plan.to_json());
        return EXIT_OK;
    }
    let m = &plan.manifest;
    let total: u64 = m.tables.iter().map(|t| t.estimated_bytes).sum();
    let chunks: usize = m.tables.iter().map(|t| t.chunks.len()).sum();
    eprintln!(
        "plan: {} tables, {chunks} chunks, about {} of source data (split by {})",
        m.tables.len(),
        human_bytes(total),
        m.options.split_by
    );
    let entries = m.tables.iter().map(|t| {
        let mut text = format!(
            "  {:<40} {:>10} {:>5} chunks",
            t.schema.name.to_string(),
            human_bytes(t.estimated_bytes),
            t.chunks.len()
        );
        for c in &t.chunks {
            text.push_str(&format!(
                "\n      {} {} {} (~{})",
                c.id,
                c.relation,
                c.range,
                human_bytes(c.estimated_bytes)
            ));
        }
        // A plan has no rows yet: ranked by estimated bytes.
        pgsnap::TableLine::new(text, true, 0).with_bytes(t.estimated_bytes)
    });
    print_tables(entries.collect());
    EXIT_OK
}

/// A table's line in a StarRocks text report.
#[cfg(feature = "starrocks")]
fn load_line(t: &ManifestTable, load: Option<&pgsnap::TableLoad>) -> String {
    let (target, loaded, filtered, loads) = match load {
        Some(l) => (l.target.as_str(), l.rows_loaded, l.rows_filtered, l.loads),
        None => ("?", 0, 0, 0),
    };
    format!(
        "  {:<32} -> {:<24} {:<7} {:>10} read {:>10} loaded {:>6} filtered {:>5} loads{}",
        t.schema.name.to_string(),
        target,
        t.status.as_str(),
        t.rows(),
        loaded,
        filtered,
        loads,
        t.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
    )
}

/// Prints a StarRocks job's report; returns the exit code.
#[cfg(feature = "starrocks")]
pub fn migrate(report: &pgsnap::MigrateReport, as_json: bool, signal: Option<i32>) -> i32 {
    let run = &report.run;
    let text = || {
        headline(
            run,
            format_args!(
                "StarRocks database {} (state {})",
                report.database,
                report.state.display()
            ),
        );
        print_tables(
            run.manifest
                .tables
                .iter()
                .map(|t| run_table(t, load_line(t, report.tables.get(&t.schema.name))))
                .collect(),
        );
        text_tail(run);
    };
    emit(as_json, report.to_json(), text, run.outcome(), signal)
}

/// Prints a handoff's report; returns the exit code.
#[cfg(feature = "kafka")]
pub fn handoff(report: &pgsnap::HandoffReport, as_json: bool, signal: Option<i32>) -> i32 {
    let run = &report.run;
    let text = || {
        headline(run, format_args!("{}", report.out.display()));
        if report.tables.values().any(|t| t.load.is_some()) {
            eprintln!("StarRocks:");
            print_tables(
                run.manifest
                    .tables
                    .iter()
                    .map(|t| {
                        let load = report.tables.get(&t.schema.name).and_then(|h| h.load.as_ref());
                        run_table(t, load_line(t, load))
                    })
                    .collect(),
            );
        }
        eprintln!("\noffsets (mode {}):", report.mode.as_str());
        for (topic, parts) in &report.offsets.0 {
            let p: Vec<String> = parts.iter().map(|(p, o)| format!("{p}:{o}")).collect();
            eprintln!("  {topic}  {}", p.join(" "));
        }
        if !report.routine_load_files.is_empty() {
            eprintln!(
                "\nfiles the Routine Loads read (serve each file at the URL its placeholder stands for, then run these first):"
            );
            for f in &report.routine_load_files {
                eprintln!("-- {} = {}\n{}", f.setting, f.path, f.sql);
            }
        }
        let created = report.routine_load_jobs.iter().any(|j| j.status != "not_created");
        if created || report.routine_load_jobs.iter().any(|j| j.error.is_some()) {
            eprintln!("\nRoutine Loads:");
            let jobs = report.routine_load_jobs.iter().map(|j| {
                let id = j.job_id.as_deref().map(|i| format!(" (id {i})")).unwrap_or_default();
                let error = j.error.as_deref().map(|e| format!(": {}", in_flags(e)));
                let text = format!(
                    "  {} -> {}{id}: {}{}",
                    j.name,
                    j.table,
                    j.status,
                    error.unwrap_or_default()
                );
                pgsnap::TableLine::new(text, j.error.is_none(), 0)
            });
            print_tables(jobs.collect());
        } else {
            for sql in &report.routine_load {
                eprintln!("\n{sql}");
            }
        }
        if !report.debezium.is_null() {
            eprintln!(
                "\nDebezium connector (POST to Kafka Connect /connectors once this job is done):\n{}",
                serde_json::to_string_pretty(&report.debezium).unwrap_or_default()
            );
        }
        text_tail(run);
    };
    emit(as_json, report.to_json(), text, report.outcome(), signal)
}

/// Prints a verification's report (`--json`: one JSON object on stdout; otherwise text on
/// stderr); returns its exit code (0 equal, 1 different, 6 not final).
#[cfg(feature = "starrocks")]
pub fn verify(report: &pgsnap::VerifyReport, as_json: bool) -> i32 {
    if as_json {
        println!("{}", report.to_json());
    } else {
        eprintln!(
            "\n{}: {} tables of StarRocks database {} compared with PostgreSQL (mode {}, snapshot {}) in {:.1}s",
            report.verdict.as_str(),
            report.tables.len(),
            report.database,
            match report.mode {
                pgsnap::VerifyMode::Full => "full".to_owned(),
                pgsnap::VerifyMode::Sample { ranges, rows } => format!("sample {ranges}x{rows}"),
                _ => "?".to_owned(),
            },
            report.snapshot,
            report.elapsed_s,
        );
        let entries = report.tables.iter().map(|t| {
            let c = &t.difference_counts;
            let mut text = format!(
                "  {:<32} -> {:<28} {:<9} {:>10} rows {:>10} in StarRocks {:>10} compared  {} missing, {} extra, {} different{}",
                t.source,
                t.target,
                if t.equal { "equal" } else { "DIFFERENT" },
                t.rows_source,
                t.rows_target,
                t.compared,
                c.missing,
                c.extra,
                c.different,
                t.not_compared
                    .as_ref()
                    .map(|w| format!("  (not compared: {w})"))
                    .unwrap_or_default()
            );
            for d in &t.differences {
                let kind = serde_json::to_value(d.kind).unwrap_or_default();
                text.push_str(&format!(
                    "\n      {} {}{}",
                    kind.as_str().unwrap_or("?"),
                    d.key,
                    if d.columns.is_empty() {
                        String::new()
                    } else {
                        format!(" columns {}", d.columns.join(", "))
                    }
                ));
            }
            pgsnap::TableLine::new(text, t.equal && t.not_compared.is_none(), t.rows_source)
        });
        print_tables(entries.collect());
        if let Some(why) = &report.not_final {
            eprintln!("not final: {}", in_flags(why));
        }
        for w in &report.warnings {
            eprintln!("warning: {}", in_flags(w));
        }
    }
    crate::exit::code_of_verdict(report.verdict)
}

/// Prints what `drop-slot` did (`{"dropped": {"slot", "publication"}}` with `--json`);
/// returns the exit code (2 bad connection settings, 3 cannot connect or the slot is in use).
pub fn drop_slot(
    args: &crate::args::DropSlotCmd,
    dropped: Result<(), pgsnap::postgres::Error>,
) -> i32 {
    if let Err(e) = dropped {
        eprintln!("error: {}", pgsnap::core::error_chain(&e));
        return code_of_kind(pgsnap::ErrorKind::of_source(&e), None);
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"report_version": pgsnap::REPORT_VERSION, "dropped": {"slot": args.slot, "publication": args.publication}})
        );
    } else {
        eprintln!(
            "dropped slot {:?}{}",
            args.slot,
            args.publication
                .as_ref()
                .map(|p| format!(" and publication {p:?}"))
                .unwrap_or_default()
        );
    }
    EXIT_OK
}

#[cfg(all(test, feature = "kafka"))]
mod tests {
    use super::*;

    /// Every API name of [`API_FLAGS`] is one a library message really uses: a renamed call
    /// would otherwise leave the command's users reading Rust.
    #[test]
    fn library_messages_name_the_calls_the_command_translates() {
        use pgsnap::kafka::Error;
        let auth = Error::ConnectAuth {
            url: "https://connect:8083".into(),
            method: "GET",
            path: "/".into(),
            status: 401,
            user: Some("u".into()),
            message: String::new(),
        };
        let in_url = pgsnap::kafka::connect::ConnectClient::new("https://u:p@connect:8083")
            .map(|_| ())
            .unwrap_err();
        // `ConnectClient::with_ca_file` is named by TLS refusals, which need a handshake:
        // pgsnap-kafka's connect tests assert it (`a_wrong_ca_...`).
        let messages = [auth.to_string(), in_url.to_string()];
        for m in &messages {
            assert!(m.contains(API_FLAGS[1].0), "{m}");
        }
        assert_eq!(API_FLAGS[0].0, "ConnectClient::with_ca_file");
        let text = in_flags(&messages[0]);
        assert!(text.contains("--connect-user, --connect-password-env"), "{text}");
        assert!(!text.contains("ConnectClient"), "{text}");
    }
}

//! Snapshot → CDC handoff: a consistent parallel snapshot to files (or loaded into
//! StarRocks), then the exact Kafka offsets where the Debezium change log continues, the
//! StarRocks Routine Load statements that start there, and the Debezium connector config.
//!
//! ```text
//! cargo run --release --example handoff -- --source "host=db dbname=app" --out ./snap \
//!     --brokers kafka:9092 --topic-prefix pg [--mode slot-first|running|time] [--json]
//! ```
//!
//! # StarRocks
//! With `--fe` (and the other StarRocks flags of `migrate_to_starrocks`: `--user`,
//! `--password-env`, `--database`, `--create-tables`, `--table-map`, ...; its body
//! `--format` is `--load-format` here) the snapshot is loaded into StarRocks with Stream
//! Load instead of written to files: `--out` is then the run's state (manifest, no data,
//! locked for the run), StarRocks is checked before any snapshot is taken and its tables are
//! prepared before any row is read (a failure drops the slot this run created; exit 3).
//! `--database` (alias `--starrocks-database`; default: the PostgreSQL database name) is also
//! the database of the Routine Load jobs, which target the tables the snapshot was loaded
//! into (`--table-map` included). The report's tables add `target`, `rows_loaded`,
//! `rows_filtered`, `loads`; a table whose rows read differ from loaded plus filtered makes
//! the run exit 1.
//!
//! # Modes
//! - `slot-first` (default, exact): pgsnap creates the publication and a **permanent** slot
//!   (`--slot`, default `pgsnap_<db>`; `--publication`, default the slot name) whose exported
//!   snapshot is copied. The high watermarks of the topics `<prefix>.<schema>.<table>` are
//!   read *before anything else*; Debezium, started afterwards on that slot with
//!   `snapshot.mode=no_data`, only writes post-snapshot records, so those watermarks are the
//!   answer. Start the connector with the printed config once this job is done.
//! - `running`: Debezium already runs on its own slot. The snapshot comes from a TEMPORARY
//!   slot (`--slot` is refused); per partition the answer is the first event whose
//!   transaction is invisible in the snapshot. The connector must have passed the snapshot's
//!   consistent point C before this answer is final: with `--connect-url URL --connector
//!   NAME` the job reads the connector's stored offsets (`GET /connectors/NAME/offsets`,
//!   Kafka 3.6+) every second for up to `--connector-wait` seconds (default 60) until its
//!   `lsn_commit` reaches C; if it never does, `warnings` says the answer may replay events
//!   already in the snapshot (exit 0, or 3 with `--strict`). Without `--connect-url` the
//!   position is not checked and `warnings` says so.
//! - `time`: like `running`, but the search starts from the broker's time index at the
//!   snapshot time minus `--skew-ms`.
//!
//! # Preflight
//! Before anything, the selected tables are checked (`pgsnap_source::handoff`): tables
//! without a primary key cannot be kept exact, and tables whose `REPLICA IDENTITY` is not
//! `FULL` and that have TOASTable non-key columns would receive
//! `__debezium_unavailable_value` for unchanged large values. They are listed in the report
//! (`warnings`, `preflight`) with the fix; `--strict` refuses them (exit 3).
//!
//! # Output
//! Progress and text on stderr; with `--json` one object on stdout: the snapshot job's
//! fields (`status`, `out`, `snapshot`, `tables`, `rows`, `bytes`, `warnings`, `error`, ...)
//! plus `mode`, `topics`, `offsets` (topic → partition as a string → offset), `routine_load`
//! (statements), `debezium` (`{name, config}`, the Kafka Connect payload; `null` outside
//! slot-first), `preflight` and `connect` (`null` without `--connect-url`; in running/time
//! mode `{url, connector, passed, lsn_commit, consistent_point, error}`).
//!
//! # Exit codes
//! 0 done; 1 the snapshot finished with failed tables (or, with StarRocks, rows not
//! accounted for); 2 usage (bad flags, `--out` not empty or in use, a bad `--connect-url`,
//! `--connect-url` in running/time mode without `--connector`, `--connector` in slot-first,
//! `--password-env` unset); 3 preflight or connection failure (PostgreSQL, Kafka or
//! StarRocks, `--strict` refusals, offsets that cannot be resolved, Kafka Connect refusing or
//! failing the submission, with `--strict` a running connector that has not passed the
//! snapshot); 4 snapshot lost; 5 output not writable.
//!
//! With `--connect-url` in slot-first mode the connector is submitted through
//! `pgsnap_kafka::connect` once the snapshot and the offsets are complete; the JSON report
//! then has `connect` (`{url, submitted, name, http_status}` or `{url, submitted: false,
//! error}`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use pgsnap_core::{
    DataFormat, Manifest, ManifestStore, OffsetMap, OffsetResolver, Sink, SnapshotMode,
};
use pgsnap_examples::run::{
    SnapshotArgs, drive, file_sink, open_run, outcome, previous_run,
    remove_stale_manifest_temp_files, report_json, snapshot_summary,
};
use pgsnap_examples::starrocks::{
    StarRocksArgs, build_and_prepare, check_connection, lock_state, table_line, table_report,
    unverified_tables,
};
use pgsnap_examples::*;
use pgsnap_kafka::connect::ConnectClient;
use pgsnap_kafka::render::{
    DebeziumConfig, PgConnection, RoutineLoadSpec, render_debezium_config, render_routine_load,
};
use pgsnap_kafka::resolve::{ConnectorPosition, connector_position};
use pgsnap_kafka::resolver::{HandoffMode, KafkaOffsetResolver};
use pgsnap_sink_file::Compression;
use pgsnap_source::handoff::{HandoffPreflight, handoff_preflight_selected};
use serde_json::{Value, json};

/// The default `database.password` of the Debezium config: a Kafka config-provider
/// placeholder, never the password itself.
const DEFAULT_PASSWORD_PLACEHOLDER: &str = "${file:/etc/pgsnap/pg.properties:password}";

/// How the Debezium change log relates to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// pgsnap creates the slot; Debezium starts on it afterwards (exact, recommended).
    SlotFirst,
    /// Debezium already runs on its own slot.
    Running,
    /// Like running, with a lower bound from the broker's time index.
    Time,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::SlotFirst => "slot-first",
            Mode::Running => "running",
            Mode::Time => "time",
        }
    }
}

/// Snapshot to files and hand off to a Debezium change log in Kafka at exact offsets.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    snap: SnapshotArgs,
    /// StarRocks: with --fe the snapshot is loaded into StarRocks instead of files;
    /// --database is also the database of the Routine Load jobs.
    #[command(flatten)]
    sr: StarRocksArgs,
    /// Output directory (created; must be empty): the chunk files and manifest, or with --fe
    /// the run's state (manifest, no data).
    #[arg(long)]
    out: PathBuf,
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(long)]
    brokers: String,
    /// Debezium `topic.prefix`: topics are <prefix>.<schema>.<table>.
    #[arg(long)]
    topic_prefix: String,
    /// slot-first (pgsnap creates the slot for Debezium), running (Debezium already runs), time.
    #[arg(long, value_enum, default_value = "slot-first")]
    mode: Mode,
    /// Kafka Connect REST URL. slot-first: submit the connector after the snapshot (refused
    /// when the name exists or has stored offsets). running/time (with --connector): check that
    /// the running connector has committed past the snapshot's consistent point.
    #[arg(long)]
    connect_url: Option<String>,
    /// --mode running/time with --connect-url: the running Debezium connector's name.
    #[arg(long)]
    connector: Option<String>,
    /// With --connector: seconds to wait for the connector to commit past the snapshot's
    /// consistent point (polled every second).
    #[arg(long, default_value_t = 60)]
    connector_wait: u64,
    /// `database.password` in the Debezium config: a config-provider placeholder.
    #[arg(long, default_value = DEFAULT_PASSWORD_PLACEHOLDER)]
    password_placeholder: String,
    /// Debezium connector name (default: pgsnap-<db>-<snapshot time>); must be new to Connect.
    #[arg(long)]
    connector_name: Option<String>,
    /// `database.hostname` as Kafka Connect reaches PostgreSQL (default: the --source host).
    #[arg(long)]
    database_hostname: Option<String>,
    /// Clock skew margin for --mode time, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    skew_ms: u64,
    /// Refuse tables that cannot be kept exact (no primary key, TOAST risk): exit 3.
    #[arg(long)]
    strict: bool,
    /// Chunk file compression: none, zstd, gzip (zstd:LEVEL, gzip:LEVEL).
    #[arg(long, default_value = "none")]
    compress: Compression,
    /// Chunk file format: text (COPY text) or csv.
    #[arg(long, default_value = "text")]
    format: DataFormat,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    init_logging();
    // The StarRocks flags of migrate_to_starrocks, optional here; the StarRocks body format
    // is --load-format (--format is the chunk files' format), and --database keeps the
    // earlier --starrocks-database as an alias.
    let matches = Args::command()
        .mut_arg("load_format", |a| a.long("load-format"))
        .mut_arg("database", |a| {
            a.alias("starrocks-database").help(
                "StarRocks database: loaded with --fe (must exist), and the Routine Load jobs' (default: the PostgreSQL database name)",
            )
        })
        .get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    std::process::exit(run(args).await);
}

/// What the connection string says about the database (for defaults and the Debezium config).
struct Target {
    dbname: String,
    host: Option<String>,
    port: u16,
    user: String,
}

fn target(conninfo: &str) -> Target {
    use tokio_postgres::config::Host;
    let spec = match pgsnap_source::conninfo::resolve(conninfo) {
        Ok(s) => s,
        Err(e) => die(EXIT_USAGE, e),
    };
    let c = &spec.config;
    let user = c.get_user().unwrap_or_default().to_owned();
    Target {
        dbname: c.get_dbname().map(str::to_owned).unwrap_or_else(|| user.clone()),
        host: c.get_hosts().iter().find_map(|h| match h {
            Host::Tcp(s) => Some(s.clone()),
            Host::Unix(_) => None,
        }),
        port: c.get_ports().first().copied().unwrap_or(5432),
        user,
    }
}

/// A PostgreSQL identifier from `s`: lowercase `[a-z0-9_]`, at most 63 bytes.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    out.truncate(63);
    out
}

/// The default StarRocks table for a PostgreSQL table: `public.t` → `t`, `s.t` → `s_t`.
fn target_table(schema: &str, name: &str) -> String {
    if schema == "public" { name.to_owned() } else { format!("{schema}_{name}") }
}

fn topic_of(prefix: &str, schema: &str, name: &str) -> String {
    format!("{prefix}.{schema}.{name}")
}

async fn run(mut args: Args) -> i32 {
    // Flags first: nothing is touched before they all make sense.
    let connect = match (&args.connect_url, args.mode, &args.connector) {
        (None, _, None) => None,
        (None, _, Some(_)) => die(EXIT_USAGE, "--connector needs --connect-url"),
        (Some(_), Mode::SlotFirst, Some(_)) => die(
            EXIT_USAGE,
            "--connector names a running connector (--mode running or time); slot-first submits a new one (--connector-name)",
        ),
        (Some(_), Mode::Running | Mode::Time, None) => die(
            EXIT_USAGE,
            format!(
                "--connect-url with --mode {}: Debezium already runs; name it with --connector NAME so its committed position can be checked against the snapshot",
                args.mode.as_str()
            ),
        ),
        (Some(url), _, _) => match ConnectClient::new(url) {
            Ok(c) => Some(c),
            Err(e) => die(EXIT_USAGE, e),
        },
    };
    if args.snap.snapshot_mode != SnapshotMode::Slot {
        die(
            EXIT_USAGE,
            format!(
                "--snapshot-mode {}: a handoff needs a snapshot exported by a replication slot (--snapshot-mode slot); a pg_export_snapshot() snapshot is not a clean prefix of the change stream",
                args.snap.snapshot_mode
            ),
        );
    }
    if args.brokers.trim().is_empty() || args.topic_prefix.trim().is_empty() {
        die(EXIT_USAGE, "--brokers and --topic-prefix must not be empty");
    }
    let tgt = target(&args.snap.source);
    args.sr.database.get_or_insert_with(|| tgt.dbname.clone());
    match args.mode {
        Mode::SlotFirst => {
            let slot = args
                .snap
                .slot
                .clone()
                .unwrap_or_else(|| sanitize(&format!("pgsnap_{}", tgt.dbname)));
            args.snap.publication.get_or_insert_with(|| slot.clone());
            args.snap.slot = Some(slot);
        }
        Mode::Running | Mode::Time => {
            if args.snap.slot.is_some() {
                die(
                    EXIT_USAGE,
                    format!(
                        "--slot with --mode {}: the snapshot must come from a temporary slot (Debezium already runs on its own)",
                        args.mode.as_str()
                    ),
                );
            }
        }
    }

    // The output directory must be usable before a snapshot (or a slot) is taken for nothing.
    // With StarRocks it is the run's state (locked for the run), recorded with the options
    // that decide targets, labels and body bytes, as in migrate_to_starrocks.
    let _lock = args.sr.enabled().then(|| lock_state(&args.out, "--out"));
    let (format, layout) = if args.sr.enabled() {
        (DataFormat::Text, args.sr.load_layout())
    } else {
        (args.format, args.compress.as_str().to_owned())
    };
    let store = ManifestStore::new(&args.out);
    let _ = previous_run(&store, "--out", false, false, &args.snap.plan_options(), format, &layout)
        .await;
    let file_sink = if args.sr.enabled() {
        remove_stale_manifest_temp_files(&args.out);
        None
    } else {
        Some(Arc::new(file_sink(&args.out, args.format, args.compress)))
    };
    // StarRocks before any snapshot (or slot) is taken for a target we cannot load.
    let sr_builder = args.sr.enabled().then(|| args.sr.sink_builder());
    if let Some(b) = &sr_builder {
        check_connection(b).await;
    }

    // Preflight: keys, replica identity, TOAST risk of the tables the snapshot will select.
    let preflight =
        match handoff_preflight_selected(&args.snap.source, &args.snap.include, &args.snap.exclude)
            .await
        {
            Ok(p) => p,
            Err(e) => die(source_exit_code(&e), pgsnap_core::error_chain(&e)),
        };
    let mut warnings = preflight_warnings(&preflight);
    if args.strict {
        let errors = preflight.strict_errors();
        if !errors.is_empty() {
            die(
                EXIT_PREFLIGHT,
                format!(
                    "--strict: {} table(s) cannot be handed off exactly:\n  {}",
                    preflight.tables.iter().filter(|t| !t.is_exact()).count(),
                    errors.join("\n  ")
                ),
            );
        }
    }
    let topics: Vec<String> = preflight
        .tables
        .iter()
        .map(|t| topic_of(&args.topic_prefix, &t.table.schema, &t.table.name))
        .collect();

    // Slot-first: the high watermarks before anything else (before the slot exists, so
    // before any connector could write post-snapshot records). Other modes: which topics
    // exist (a missing one cannot be resolved).
    let captured = match KafkaOffsetResolver::capture_high_watermarks(&args.brokers, &topics).await
    {
        Ok(m) => m,
        Err(e) => die(exit_code(&e), format!("reading the topics' high watermarks: {e}")),
    };
    let existing: Vec<String> =
        topics.iter().filter(|t| captured.0.contains_key(*t)).cloned().collect();
    for t in topics.iter().filter(|t| !captured.0.contains_key(*t)) {
        warnings.push(match args.mode {
            Mode::SlotFirst => format!(
                "topic {t} does not exist yet: every partition starts at offset 0, but the number of partitions is unknown, so no Routine Load is rendered for it; create the topic before starting the connector and rerun, or write the job by hand with offset 0 on every partition"
            ),
            _ => format!("topic {t} does not exist: no offsets can be resolved for it"),
        });
    }

    // The snapshot.
    let opened = open_run(&args.snap, None, false, format, &layout).await;
    let sr_sink = match sr_builder {
        Some(b) => Some(Arc::new(build_and_prepare(b, &args.sr, &args.snap, &opened, true).await)),
        None => None,
    };
    let sink: Arc<dyn Sink> = match (&sr_sink, file_sink) {
        (Some(s), _) => Arc::clone(s) as Arc<dyn Sink>,
        (None, Some(f)) => f,
        (None, None) => unreachable!("a file sink is built without --fe"),
    };
    let source = Arc::clone(&opened.source);
    let report = drive(&args.snap, opened, sink, store).await;
    warnings.extend(source.warnings().iter().cloned());
    let manifest = report.manifest;
    // StarRocks: every row read was loaded or (within the allowed ratio) filtered.
    let unverified = if sr_sink.is_some() { unverified_tables(&manifest) } else { Vec::new() };
    warnings.extend(unverified.iter().cloned());
    let snapshot_ok = report.fatal.is_none() && manifest.status == pgsnap_core::RunStatus::Ok;

    // The offsets.
    let mut fatal = report.fatal;
    let mut offsets = OffsetMap::default();
    if snapshot_ok && !existing.is_empty() {
        let mode = match args.mode {
            Mode::SlotFirst => HandoffMode::SlotFirst { recorded: captured.clone() },
            Mode::Running => HandoffMode::Running,
            Mode::Time => HandoffMode::Time { skew: Duration::from_millis(args.skew_ms) },
        };
        let resolver = KafkaOffsetResolver::new(args.brokers.clone(), mode);
        match resolver.resolve(&manifest.snapshot, &existing).await {
            Ok(o) => offsets = o,
            Err(e) => fatal = Some(e),
        }
        if let Some(r) = resolver.last_resolution() {
            warnings.extend(r.partitions.iter().flat_map(|p| p.warnings.iter().cloned()));
        }
    } else if !snapshot_ok {
        warnings.push("the snapshot is incomplete: no offsets resolved".into());
    }
    // Running/time: the answer is final only once the connector has committed past C.
    let mut connect_report = Value::Null;
    let mut not_passed = false;
    if args.mode != Mode::SlotFirst {
        match (&connect, &args.connector) {
            (Some(client), Some(name)) if snapshot_ok && fatal.is_none() => {
                let (report, warning) = wait_for_connector(
                    client,
                    name,
                    manifest.snapshot.lsn,
                    Duration::from_secs(args.connector_wait),
                )
                .await;
                connect_report = report;
                if let Some(w) = warning {
                    not_passed = true;
                    warnings.push(w);
                }
            }
            (Some(client), Some(name)) => {
                connect_report = json!({ "url": client.url(), "connector": name, "passed": false, "error": "the snapshot or the offsets are incomplete" });
            }
            _ => warnings.push(format!(
                "--mode {}: the connector's committed position was not checked against the snapshot's consistent point {} (pass --connect-url and --connector to check it); unless the connector has passed it, the answer may replay events already in the snapshot",
                args.mode.as_str(),
                manifest.snapshot.lsn.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
            )),
        }
    }

    // Routine Load per table, and the Debezium config.
    let sr_db = args.sr.database().to_owned();
    let brokers: Vec<String> = args
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect();
    let mut routine_load = Vec::new();
    let mut targets = BTreeMap::new();
    for t in &manifest.tables {
        let (schema, name) = (&t.schema.name.schema, &t.schema.name.name);
        let topic = topic_of(&args.topic_prefix, schema, name);
        // The table the snapshot was loaded into, so the Routine Load continues it.
        let table = match &sr_sink {
            Some(s) => s.target_name(&t.schema.name),
            None => target_table(schema, name),
        };
        targets.insert(t.schema.name.clone(), (topic.clone(), table.clone()));
        let Some(parts) = offsets.0.get(&topic) else { continue };
        let columns: Vec<String> = t.schema.columns.iter().map(|c| c.name.clone()).collect();
        // Debezium encodes temporal values (io.debezium.time.*: days or microseconds since
        // the epoch, or ISO strings); the rendered mapping passes them through unconverted.
        let temporal: Vec<String> = t
            .schema
            .columns
            .iter()
            .filter(|c| {
                ["date", "time", "timestamp", "interval"].iter().any(|p| c.type_name.starts_with(p))
            })
            .map(|c| format!("{} ({})", c.name, c.type_name))
            .collect();
        if !temporal.is_empty() {
            warnings.push(format!(
                "{}: the Routine Load maps {} as Debezium encodes them (epoch days/microseconds or \
                 ISO text), unconverted and untested against StarRocks: add a COLUMNS conversion \
                 before creating the job",
                t.schema.name,
                temporal.join(", ")
            ));
        }
        let spec = RoutineLoadSpec::new(
            &sr_db,
            &table,
            sanitize(&format!("pgsnap_{table}")),
            &topic,
            brokers.clone(),
            columns,
            t.schema.primary_key.clone(),
            parts.clone(),
        )
        .with_primary_key_table(!t.schema.primary_key.is_empty());
        match render_routine_load(&spec) {
            Ok(r) => {
                warnings.extend(r.warnings.iter().map(|w| format!("{}: {w}", t.schema.name)));
                routine_load.push(r.sql);
            }
            Err(e) => warnings.push(format!("{}: no Routine Load rendered: {e}", t.schema.name)),
        }
    }
    let debezium = if args.mode == Mode::SlotFirst {
        debezium_config(&args, &tgt, &manifest, &mut warnings)
    } else {
        Value::Null
    };

    // Submit the connector only after a complete snapshot with its offsets: it starts
    // streaming from the slot at once.
    let mut connect_failed = false;
    if let (Some(client), Mode::SlotFirst) = (&connect, args.mode) {
        if fatal.is_none() && snapshot_ok && !debezium.is_null() {
            match client.submit(&debezium).await {
                Ok(c) => {
                    tracing::info!(connector = %c.name, url = client.url(), "connector submitted");
                    connect_report = json!({ "url": client.url(), "submitted": true, "name": c.name, "http_status": c.status });
                }
                Err(e) => {
                    connect_failed = true;
                    warnings.push(format!("the connector was not submitted: {e}"));
                    connect_report =
                        json!({ "url": client.url(), "submitted": false, "error": e.to_string() });
                }
            }
        } else {
            connect_report = json!({ "url": client.url(), "submitted": false, "error": "the snapshot or the offsets are incomplete" });
        }
    }

    let (mut code, status) =
        outcome(&manifest, fatal.as_ref(), unverified.is_empty(), &mut warnings);
    if (connect_failed || (not_passed && args.strict)) && code == EXIT_OK {
        code = EXIT_PREFLIGHT;
    }
    if args.json {
        let pre = &preflight;
        let out = report_json(
            &manifest,
            status,
            report.elapsed,
            fatal.as_ref(),
            &warnings,
            json!({
                "out": args.out,
                "mode": args.mode.as_str(),
                "topics": topics,
                "offsets": offsets,
                "routine_load": routine_load,
                "debezium": debezium,
                "preflight": preflight,
                "connect": connect_report,
            }),
            |t| {
                let (topic, target) = targets.get(&t.schema.name).cloned().unwrap_or_default();
                let p = pre.table(&t.schema.name);
                let mut v = json!({
                    "topic": topic,
                    "starrocks_table": target,
                    "replica_identity": p.map(|p| p.replica_identity.to_string()),
                    "toast_at_risk": p.map(|p| p.toast_at_risk.clone()).unwrap_or_default(),
                    "problems": p.map(|p| p.problems.clone()).unwrap_or_default(),
                });
                if let (Some(s), Some(o)) = (&sr_sink, v.as_object_mut())
                    && let Value::Object(fields) = table_report(s, t)
                {
                    o.extend(fields);
                }
                v
            },
        );
        println!("{out}");
    } else {
        eprintln!(
            "\n{status}: {} rows, {} in {:.1}s into {} ({})",
            manifest.rows(),
            human_bytes(manifest.bytes()),
            report.elapsed.as_secs_f64(),
            args.out.display(),
            snapshot_summary(&manifest.snapshot),
        );
        if let Some(s) = &sr_sink {
            eprintln!("StarRocks database {sr_db}:");
            for t in &manifest.tables {
                eprintln!("{}", table_line(s, t));
            }
        }
        eprintln!("\noffsets (mode {}):", args.mode.as_str());
        for (topic, parts) in &offsets.0 {
            let p: Vec<String> = parts.iter().map(|(p, o)| format!("{p}:{o}")).collect();
            eprintln!("  {topic}  {}", p.join(" "));
        }
        for sql in &routine_load {
            eprintln!("\n{sql}");
        }
        if !debezium.is_null() {
            eprintln!(
                "\nDebezium connector (POST to Kafka Connect /connectors once this job is done):\n{}",
                serde_json::to_string_pretty(&debezium).unwrap_or_default()
            );
        }
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    code
}

/// Polls the running connector's stored offsets (every second, up to `wait`) until its
/// committed `lsn_commit` reaches the snapshot's consistent point `c`. Returns the report's
/// `connect` object and, unless it passed, the warning that the answer may replay events
/// already in the snapshot.
async fn wait_for_connector(
    client: &ConnectClient,
    name: &str,
    c: Option<pgsnap_core::Lsn>,
    wait: Duration,
) -> (Value, Option<String>) {
    let report = |passed: bool, lsn_commit: Option<pgsnap_core::Lsn>, error: Option<&str>| {
        json!({
            "url": client.url(),
            "connector": name,
            "passed": passed,
            "lsn_commit": lsn_commit.map(|l| l.to_string()),
            "consistent_point": c.map(|l| l.to_string()),
            "error": error,
        })
    };
    let Some(c) = c else {
        let e = "the snapshot has no consistent point (LSN): the connector's position cannot be checked";
        return (
            report(false, None, Some(e)),
            Some(format!("{e}; the answer may replay events already in the snapshot")),
        );
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // The connector's committed position: the highest lsn_commit of its stored offsets.
        let (position, error) = match client.stored_offsets(name).await {
            Ok(Some(Value::Array(entries))) => {
                let mut best =
                    ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: c };
                let mut error = None;
                for e in &entries {
                    match connector_position(e.get("offset").unwrap_or(&Value::Null), c) {
                        Ok(p @ ConnectorPosition::Passed { .. }) => best = p,
                        Ok(p @ ConnectorPosition::NotPassed { lsn_commit: Some(_), .. })
                            if !matches!(best, ConnectorPosition::Passed { .. }) =>
                        {
                            best = p
                        }
                        Ok(_) => {}
                        Err(err) => error = Some(err.to_string()),
                    }
                }
                (best, error)
            }
            Ok(_) => (
                ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: c },
                Some(format!(
                    "Kafka Connect lists no offsets for connector {name:?} (unknown connector, or a worker older than Kafka 3.6)"
                )),
            ),
            Err(e) => (
                ConnectorPosition::NotPassed { lsn_commit: None, consistent_point: c },
                Some(e.to_string()),
            ),
        };
        let lsn_commit = match position {
            ConnectorPosition::Passed { lsn_commit } => {
                tracing::info!(connector = name, %lsn_commit, consistent_point = %c, "the connector has passed the snapshot");
                return (report(true, Some(lsn_commit), None), None);
            }
            ConnectorPosition::NotPassed { lsn_commit, .. } => lsn_commit,
        };
        if tokio::time::Instant::now() + Duration::from_secs(1) > deadline {
            let mut w = format!("connector {name:?}: ");
            w.push_str(&position.warning().unwrap_or_default());
            if let Some(e) = &error {
                w.push_str(&format!(" (last check: {e})"));
            }
            return (report(false, lsn_commit, error.as_deref()), Some(w));
        }
        tracing::info!(connector = name, consistent_point = %c, "waiting for the connector to commit past the snapshot");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Report lines for tables that cannot be kept exact.
fn preflight_warnings(p: &HandoffPreflight) -> Vec<String> {
    let mut out = Vec::new();
    for t in &p.tables {
        for problem in &t.problems {
            out.push(format!("{}: {problem}", t.table));
        }
    }
    out
}

/// The Kafka Connect payload for Debezium on the slot this run created.
fn debezium_config(
    args: &Args,
    tgt: &Target,
    manifest: &Manifest,
    warnings: &mut Vec<String>,
) -> Value {
    let (Some(slot), Some(publication)) = (&args.snap.slot, &args.snap.publication) else {
        return Value::Null;
    };
    let host = match (&args.database_hostname, &tgt.host) {
        (Some(h), _) | (None, Some(h)) => h.clone(),
        (None, None) => {
            warnings.push(
                "--source connects over a Unix socket: set --database-hostname to the host Kafka Connect reaches PostgreSQL at (database.hostname is \"localhost\")"
                    .into(),
            );
            "localhost".into()
        }
    };
    let stamp: String =
        manifest.snapshot.taken_at.chars().filter(char::is_ascii_digit).take(14).collect();
    let cfg = DebeziumConfig {
        name: args
            .connector_name
            .clone()
            .unwrap_or_else(|| format!("pgsnap-{}-{stamp}", sanitize(&tgt.dbname))),
        topic_prefix: args.topic_prefix.clone(),
        database: PgConnection {
            host,
            port: tgt.port,
            dbname: tgt.dbname.clone(),
            user: tgt.user.clone(),
        },
        password_placeholder: args.password_placeholder.clone(),
        slot: slot.clone(),
        publication: publication.clone(),
        tables: manifest
            .tables
            .iter()
            .map(|t| (t.schema.name.schema.clone(), t.schema.name.name.clone()))
            .collect(),
        schemas_enabled: false,
    };
    match render_debezium_config(&cfg) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!("no Debezium config rendered: {e}"));
            Value::Null
        }
    }
}

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
//! # The Routine Load: exact cells or a refused column
//! Each table's `CREATE ROUTINE LOAD` maps Debezium's encoding of every column so that
//! StarRocks writes the same cell the snapshot wrote (the parity table of
//! `pgsnap_sink_starrocks::parity`): direct `jsonpaths` wherever StarRocks converts the value
//! exactly (`strict_mode=true`, `max_error_number=0`: a value it cannot convert pauses the
//! job), an expression only for `json`/`jsonb` and the keys. A column no mapping carries
//! exactly is refused: the table gets no Routine Load and `warnings` names the column, the
//! reason and the fix (`--strict`: exit 3 before any row is copied).
//!
//! What the rendering depends on:
//! - **The StarRocks version**: read from the FE (`current_version()`) with `--fe`, else
//!   `--starrocks-version`. Supported: 3.1.0 to 4.x (another version: exit 2, or 3 when the
//!   FE reports it). Without either no Routine Load is rendered (`routine_load` is empty,
//!   `warnings` says to pass `--starrocks-version`; `--strict`: exit 2 before anything runs).
//! - **The connector's encodings**: slot-first renders the connector config itself, with
//!   every encoding the Routine Load relies on (`time.precision.mode=isostring`,
//!   `decimal.handling.mode=string`, ...). In running and time modes the connector is the
//!   user's: its config comes from `--connect-url URL --connector NAME`
//!   (`GET /connectors/NAME/config`) or `--debezium-config FILE` (Java properties or JSON);
//!   columns its encodings cannot carry are refused. With neither, the offsets are resolved
//!   but no Routine Load is rendered (`--strict`: exit 2 up front).
//!
//! # Output
//! Progress and text on stderr; with `--json` one object on stdout: the snapshot job's
//! fields (`status`, `out`, `snapshot`, `tables`, `rows`, `bytes`, `warnings`, `error`, ...)
//! plus `mode`, `topics`, `offsets` (topic → partition as a string → offset), `routine_load`
//! (statements), `starrocks_version` (the version rendered for, or `null`), `debezium`
//! (`{name, config}`, the Kafka Connect payload; `null` outside slot-first), `preflight` and
//! `connect` (`null` without `--connect-url`; in running/time mode `{url, connector, passed,
//! lsn_commit, consistent_point, error}`). Each table adds `routine_load_columns`: StarRocks
//! column → `{"path": jsonpath, "expression": null or the COLUMNS expression}` (`null` when
//! no Routine Load was rendered for the table).
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
    StarRocksArgs, abandon, build_and_prepare, check_connection, lock_state, server_version,
    table_line, table_report, unverified_tables,
};
use pgsnap_examples::*;
use pgsnap_kafka::connect::ConnectClient;
use pgsnap_kafka::render::debezium::parse_connector_config;
use pgsnap_kafka::render::{
    ColumnMapping, DebeziumConfig, PgConnection, RenderedColumn, RoutineLoadSpec,
    render_debezium_config, render_routine_load,
};
use pgsnap_kafka::resolve::{ConnectorPosition, connector_position};
use pgsnap_kafka::resolver::{HandoffMode, KafkaOffsetResolver};
use pgsnap_sink_file::Compression;
use pgsnap_sink_starrocks::mapping::KeyModel;
use pgsnap_sink_starrocks::parity::{
    CdcColumn, DebeziumEncoding, StarRocksVersion, caveats, cdc_columns,
};
use pgsnap_source::handoff::{HandoffPreflight, handoff_preflight_selected};
use serde_json::{Value, json};

/// The default `database.password` of the Debezium config: a Kafka config-provider
/// placeholder, never the password itself.
const DEFAULT_PASSWORD_PLACEHOLDER: &str = "${file:/etc/pgsnap/pg.properties:password}";

/// Per table: the StarRocks table, its key model, and how Routine Load fills its columns (or
/// why it cannot).
type CdcPlan = (String, KeyModel, Result<Vec<CdcColumn>, String>);

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
    /// StarRocks version to render the Routine Load for (e.g. 3.4.2) when --fe is not given
    /// (with --fe the FE's current_version() is used). Supported: 3.1.0 to 4.x.
    #[arg(long)]
    starrocks_version: Option<String>,
    /// --mode running/time: the running Debezium connector's config (Java properties, or the
    /// JSON of Kafka Connect), to render the Routine Load for its encodings; or give
    /// --connect-url and --connector to read it from Kafka Connect.
    #[arg(long)]
    debezium_config: Option<PathBuf>,
    /// Refuse tables that cannot be kept exact (no primary key, TOAST risk, columns no Routine
    /// Load maps exactly): exit 3; and refuse to start without what the Routine Load needs
    /// (a StarRocks version, the connector's config): exit 2.
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
    // What the Routine Load rendering needs, checked before anything runs.
    let mut warnings: Vec<String> = Vec::new();
    let mut version: Option<StarRocksVersion> = args.starrocks_version.as_deref().map(|v| {
        let v: StarRocksVersion =
            v.parse().unwrap_or_else(|e| die(EXIT_USAGE, format!("--starrocks-version: {e}")));
        if let Err(e) = v.check_supported() {
            die(EXIT_USAGE, format!("--starrocks-version: {e}"));
        }
        v
    });
    if version.is_none() && !args.sr.enabled() {
        let why = "no StarRocks version is known, so no Routine Load is rendered (its \
                   properties depend on the version): pass --starrocks-version, or the \
                   StarRocks flags (--fe ...)";
        if args.strict {
            die(EXIT_USAGE, format!("--strict: {why}"));
        }
        warnings.push(why.into());
    }
    let mut encoding: Option<DebeziumEncoding> = match (args.mode, &args.debezium_config) {
        (Mode::SlotFirst, Some(_)) => die(
            EXIT_USAGE,
            "--debezium-config describes a running connector (--mode running or time); slot-first renders the connector config itself",
        ),
        (Mode::SlotFirst, None) => Some(DebeziumEncoding::pgsnap()),
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
                die(EXIT_USAGE, format!("--debezium-config {}: {e}", path.display()))
            });
            let config = parse_connector_config(&text).unwrap_or_else(|e| {
                die(EXIT_USAGE, format!("--debezium-config {}: {e}", path.display()))
            });
            Some(DebeziumEncoding::from_connector_config(&config))
        }
        (_, None) if connect.is_some() && args.connector.is_some() => None,
        (_, None) => {
            let why = format!(
                "--mode {}: the running connector's encodings are unknown, so no Routine Load \
                 is rendered: pass --debezium-config FILE, or --connect-url and --connector",
                args.mode.as_str()
            );
            if args.strict {
                die(EXIT_USAGE, format!("--strict: {why}"));
            }
            warnings.push(why);
            None
        }
    };
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
        if let Some(v) = server_version(b).await {
            if version.is_some_and(|given| given != v) {
                warnings.push(format!(
                    "--starrocks-version {} differs from the FE's {v}: rendering for {v}",
                    version.map(|x| x.to_string()).unwrap_or_default()
                ));
            }
            version = Some(v);
        } else if version.is_none() {
            warnings.push(
                "the StarRocks version cannot be read without SQL through the FE: pass \
                 --starrocks-version to render the Routine Load"
                    .into(),
            );
        }
    }
    // Running/time: the connector's own settings decide its encodings.
    if let (None, Some(client), Some(name)) = (&encoding, &connect, &args.connector) {
        match client.connector_config(name).await {
            Ok(Some(config)) => encoding = Some(DebeziumEncoding::from_connector_config(&config)),
            Ok(None) => die(
                EXIT_PREFLIGHT,
                format!("connector {name:?} does not exist at {}", client.url()),
            ),
            Err(e) => die(EXIT_PREFLIGHT, format!("reading connector {name:?}'s config: {e}")),
        }
    }
    if let Some(e) = &encoding {
        warnings.extend(e.warnings.iter().map(|w| format!("Debezium connector: {w}")));
        if !e.blockers.is_empty() && args.strict {
            die(
                EXIT_PREFLIGHT,
                format!(
                    "--strict: the Debezium connector config cannot be mapped exactly: {}",
                    e.blockers.join("; ")
                ),
            );
        }
    }

    // Preflight: keys, replica identity, TOAST risk of the tables the snapshot will select.
    let preflight =
        match handoff_preflight_selected(&args.snap.source, &args.snap.include, &args.snap.exclude)
            .await
        {
            Ok(p) => p,
            Err(e) => die(source_exit_code(&e), pgsnap_core::error_chain(&e)),
        };
    warnings.extend(preflight_warnings(&preflight));
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
    let sr_sink = match &sr_builder {
        Some(b) => {
            Some(Arc::new(build_and_prepare(b.clone(), &args.sr, &args.snap, &opened, true).await))
        }
        None => None,
    };
    // The parity table per table, before any row is copied: with --strict a column no
    // Routine Load carries exactly stops the run here.
    let mapper = match &sr_builder {
        Some(b) => b.clone(),
        None => args.sr.mapping_builder(),
    };
    let mut cdc: BTreeMap<pgsnap_core::TableName, CdcPlan> = BTreeMap::new();
    for t in &opened.manifest.tables {
        let mapped = match &sr_sink {
            Some(s) => s
                .target(&t.schema.name)
                .map(|a| (*a).clone())
                .ok_or_else(|| "not prepared".to_owned()),
            None => mapper.map_table(&t.schema).map_err(|e| e.to_string()),
        };
        let entry = match mapped {
            Ok(target) => {
                warnings.extend(
                    caveats(&target).into_iter().map(|c| format!("{}: {c}", t.schema.name)),
                );
                let columns = match &encoding {
                    Some(e) => cdc_columns(&target, e).map_err(|e| e.to_string()),
                    None => Err("the connector's encodings are unknown".to_owned()),
                };
                (target.name.clone(), target.key_model, columns)
            }
            Err(e) => (mapper.target_name(&t.schema.name), KeyModel::Duplicate, Err(e)),
        };
        cdc.insert(t.schema.name.clone(), entry);
    }
    if args.strict {
        let refused: Vec<String> = cdc
            .iter()
            .filter_map(|(name, (_, _, r))| r.as_ref().err().map(|e| format!("{name}: {e}")))
            .collect();
        if !refused.is_empty() && encoding.is_some() {
            abandon(
                &args.snap,
                true,
                &opened,
                EXIT_PREFLIGHT,
                format!("--strict: no exact Routine Load for:\n  {}", refused.join("\n  ")),
            )
            .await;
        }
    }
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
    let mut rl_columns: BTreeMap<pgsnap_core::TableName, Vec<(String, RenderedColumn)>> =
        BTreeMap::new();
    for t in &manifest.tables {
        let (schema, name) = (&t.schema.name.schema, &t.schema.name.name);
        let topic = topic_of(&args.topic_prefix, schema, name);
        // The table the snapshot was loaded into, so the Routine Load continues it.
        let Some((table, key_model, columns)) = cdc.get(&t.schema.name) else { continue };
        targets.insert(t.schema.name.clone(), (topic.clone(), table.clone()));
        let Some(parts) = offsets.0.get(&topic) else { continue };
        let (Some(e), Some(v)) = (&encoding, version) else { continue };
        let columns = match columns {
            Ok(c) => c,
            Err(reason) => {
                warnings.push(format!("{}: no Routine Load rendered: {reason}", t.schema.name));
                continue;
            }
        };
        let mappings: Vec<ColumnMapping> = columns
            .iter()
            .map(|c| {
                let m = ColumnMapping::new(&c.column, &c.field);
                match &c.conversion {
                    Some(expr) => m.with_conversion(expr),
                    None => m,
                }
            })
            .collect();
        let keys: Vec<String> =
            columns.iter().filter(|c| c.key).map(|c| c.column.clone()).collect();
        let spec = RoutineLoadSpec::new(
            &sr_db,
            table,
            sanitize(&format!("pgsnap_{table}")),
            &topic,
            brokers.clone(),
            mappings,
            keys,
            parts.clone(),
        )
        .with_primary_key_table(*key_model == KeyModel::Primary)
        .with_schemas_enabled(e.schemas_enabled)
        .with_pause_on_fatal_parse_error(v.accepts_pause_on_fatal_parse_error());
        match render_routine_load(&spec) {
            Ok(r) => {
                warnings.extend(r.warnings.iter().map(|w| format!("{}: {w}", t.schema.name)));
                rl_columns.insert(t.schema.name.clone(), r.columns);
                routine_load.push(r.sql);
            }
            Err(e) => warnings.push(format!("{}: no Routine Load rendered: {e}", t.schema.name)),
        }
    }
    if let Some(v) =
        version.filter(|v| !routine_load.is_empty() && !v.accepts_pause_on_fatal_parse_error())
    {
        warnings.push(format!(
            "StarRocks {v} has no pause_on_fatal_parse_error (3.3.12+, 3.4.2+): a message that \
             is not JSON stops a job's progress instead of pausing it (watch SHOW ROUTINE LOAD)"
        ));
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
                "starrocks_version": version.map(|v| v.to_string()),
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
                    "routine_load_columns": rl_columns.get(&t.schema.name).map(|cols| {
                        cols.iter()
                            .map(|(c, r)| (c.clone(), json!(r)))
                            .collect::<serde_json::Map<String, Value>>()
                    }),
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
        properties: DebeziumEncoding::pgsnap()
            .connector_properties()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    match render_debezium_config(&cfg) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!("no Debezium config rendered: {e}"));
            Value::Null
        }
    }
}

//! Snapshot → CDC handoff: a consistent parallel snapshot to files (or loaded into
//! StarRocks), then the exact Kafka offsets where the Debezium change log continues, the
//! StarRocks Routine Load statements that start there, and the Debezium connector config.
//!
//! ```text
//! cargo run --release --example handoff -- --source "host=db dbname=app" --out ./snap \
//!     --brokers kafka:9092 --topic-prefix pg [--mode slot-first|running|time] [--json]
//! ```
//!
//! The same as `pgsnap handoff`: the flags are `pgsnap_cli::args::HandoffCmd`, the job is
//! [`pgsnap::HandoffJob`]. In a service, the job alone is enough:
//!
//! ```no_run
//! # async fn f() -> Result<(), pgsnap::JobError> {
//! use pgsnap::starrocks::parity::StarRocksVersion;
//! use pgsnap::{Connection, HandoffJob, RunControl, SnapshotOptions};
//! let options = SnapshotOptions::new(Connection::new("host=db1 dbname=sales user=app"));
//! let report = HandoffJob::new(options, "/data/handoff", "kafka1:9092", "pg")
//!     .with_starrocks_version(StarRocksVersion::new(3, 4, 2))
//!     .run(&RunControl::new())
//!     .await?;
//! println!("{}", serde_json::to_string(&report).unwrap());
//! # Ok(()) }
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
//! # Kafka client settings (TLS, SASL)
//! `--kafka-config-file PATH` (Java properties) and `--kafka-config KEY=VALUE` (repeatable,
//! over the file; secrets refused: put them in the file) are librdkafka settings for every
//! Kafka client of the job (`pgsnap::kafka::KafkaClientConfig`, `HandoffJob::with_kafka_config`)
//! and for the Routine Loads: `property.*` entries, secrets as `${KAFKA_<KEY>}` placeholders,
//! certificate files as `FILE:<name>` with their `CREATE FILE` statements. The keys pgsnap
//! sets itself and SASL `GSSAPI`/`OAUTHBEARER` are refused (exit 2).
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
//! lsn_commit, consistent_point, error}`), `kafka_config` (the Kafka client settings, secrets
//! `"***"`), `routine_load_files` (`CREATE FILE` statements to run before the Routine Loads)
//! and `routine_load_placeholders` (placeholder → the setting that replaces it). Each table adds `routine_load_columns`: StarRocks
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
//! snapshot); 4 snapshot lost; 5 non-retryable sink error.
//!
//! With `--connect-url` in slot-first mode the connector is submitted through
//! `pgsnap_kafka::connect` once the snapshot and the offsets are complete; the JSON report
//! then has `connect` (`{url, submitted, name, http_status}` or `{url, submitted: false,
//! error}`).

use clap::Parser;
use pgsnap_cli::args::HandoffCmd;
use pgsnap_cli::interrupt::Interrupts;
use pgsnap_cli::output::{self, Front};

#[tokio::main]
async fn main() {
    output::init_logging();
    let args = HandoffCmd::parse();
    let interrupts = Interrupts::install();
    let code = match args.job() {
        Err(e) => output::usage(&e),
        Ok(job) => {
            let control = args.snap.metrics.control(output::with_progress(interrupts.control()));
            match job.run(&control).await {
                Ok(report) => output::handoff(&report, args.json, interrupts.exit_code()),
                Err(e) => output::fail(&e, Front::Handoff, interrupts.exit_code()),
            }
        }
    };
    std::process::exit(code);
}

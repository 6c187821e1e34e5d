//! The `handoff` example against a real PostgreSQL and a tansu broker: slot-first mode's
//! report, offsets, Routine Load statements and Debezium config (to files, and loading the
//! StarRocks test double); `--strict` refusals; running mode's connector check against the
//! Kafka Connect REST test double.
//!
//! tansu note: the test producer sends one record per batch (tansu 0.6 miscounts the high
//! watermark of multi-record batches); with that, the expectations here are the same as on
//! real Kafka.

use pgsnap_test_support::kafka::{Record, Tansu};
use pgsnap_test_support::unique_db;
use serde_json::Value;

use std::path::Path;

use crate::support::{
    Output, PASSWORD, PASSWORD_VAR, SR_DB, Sr, arg, example_command, out_dir, run_cmd, run_example,
    runtime, source, sql,
};

const HANDOFF: &str = "handoff";

const TABLES: &str = "
CREATE TABLE public.plain (id int PRIMARY KEY, n int);
CREATE TABLE public.docs (id int PRIMARY KEY, body text);
INSERT INTO public.plain SELECT g, g * 2 FROM generate_series(1, 200) g;
INSERT INTO public.docs SELECT g, repeat('x', g) FROM generate_series(1, 50) g;
";

/// Creates the topics with 3 partitions and writes `2 + partition` records to each
/// partition, one record per batch. Returns nothing: the example must read the same
/// watermarks back.
fn seed_topics(kafka: &Tansu, topics: &[&str]) {
    for t in topics {
        kafka.create_topic(t, 3);
    }
    let producer = kafka.producer();
    runtime().block_on(async {
        for t in topics {
            for p in 0..3 {
                for i in 0..(2 + p) {
                    let v = format!("{{\"seed\":{i}}}");
                    producer
                        .send(
                            t,
                            Record {
                                partition: Some(p),
                                key: Some(b"k"),
                                value: Some(v.as_bytes()),
                                timestamp_ms: None,
                            },
                        )
                        .await;
                }
            }
        }
    });
}

/// `--source`, `--out`, `--brokers`, `--topic-prefix` and then `rest`.
fn handoff_args<'a>(
    src: &'a str,
    out: &'a Path,
    brokers: &'a str,
    prefix: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut v =
        vec!["--source", src, "--out", arg(out), "--brokers", brokers, "--topic-prefix", prefix];
    v.extend_from_slice(rest);
    v
}

/// Runs `handoff` with [`handoff_args`].
fn run_handoff(src: &str, out: &Path, brokers: &str, prefix: &str, rest: &[&str]) -> Output {
    run_example(HANDOFF, &handoff_args(src, out, brokers, prefix, rest))
}

fn drop_slot(db: &str, slot: &str, publication: &str) {
    sql(
        db,
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}'; DROP PUBLICATION IF EXISTS \"{publication}\";"
        ),
    );
}

/// Whether the permanent `slot` exists; then drops it and `publication`.
fn take_down_slot(db: &str, slot: &str, publication: &str) -> bool {
    let exists = sql(
        db,
        &format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT temporary"
        ),
    );
    drop_slot(db, slot, publication);
    exists == "1"
}

#[test]
fn slot_first_reports_offsets_routine_load_and_debezium_config() {
    let kafka = Tansu::start();
    let db = unique_db("handoff");
    sql(&db, TABLES);
    let prefix = "hp";
    let topics = ["hp.public.plain", "hp.public.docs"];
    seed_topics(&kafka, &topics);
    let slot = format!("{db}_slot");
    let publication = format!("{db}_pub");
    let (tmp, out) = out_dir();
    let src = source(&db);
    let brokers = kafka.bootstrap();
    // Kafka client settings: a file with the secret (a plaintext broker ignores SASL
    // settings), a flag over it.
    let kafka_file = tmp.path().join("client.properties");
    std::fs::write(
        &kafka_file,
        "# pgsnap's Kafka clients\nclient.id=from-file\nsasl.username=loader\n\
         sasl.password=hunter2-cli\n",
    )
    .unwrap();
    let run = run_handoff(
        &src,
        &out,
        &brokers,
        prefix,
        &[
            "--slot",
            &slot,
            "--publication",
            &publication,
            "--json",
            "--jobs",
            "2",
            "--starrocks-version",
            "3.3.11",
            "--kafka-config-file",
            kafka_file.to_str().unwrap(),
            "--kafka-config",
            "client.id=hp-handoff",
            "--kafka-config",
            "security.protocol=plaintext",
        ],
    );
    // Whatever happens next, the permanent slot must not outlive the test.
    let existed = take_down_slot(&db, &slot, &publication);
    run.expect_code(0);
    assert!(existed, "the permanent slot exists after the run");
    let doc = run.json();

    for field in [
        "status",
        "out",
        "snapshot",
        "tables",
        "offsets",
        "routine_load",
        "debezium",
        "warnings",
        "preflight",
        "mode",
        "starrocks_version",
    ] {
        assert!(doc.get(field).is_some(), "missing {field}: {doc}");
    }
    assert_eq!(doc["starrocks_version"], "3.3.11");
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["mode"], "slot-first");
    assert_eq!(doc["snapshot"]["slot"], slot.as_str());
    assert_eq!(doc["snapshot"]["slot_temporary"], false);
    assert_eq!(doc["tables"].as_array().unwrap().len(), 2);
    assert!(out.join("manifest.json").is_file());
    // The effective Kafka settings, the flag over the file, the secret redacted and nowhere
    // in the output.
    assert_eq!(
        doc["kafka_config"],
        serde_json::json!({
            "client.id": "hp-handoff",
            "sasl.password": "***",
            "sasl.username": "loader",
            "security.protocol": "plaintext",
        })
    );
    assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"));
    assert_eq!(doc["routine_load_placeholders"]["${KAFKA_SASL_PASSWORD}"], "sasl.password");

    // Offsets: every partition of both topics, equal to the high watermarks written above
    // (2, 3, 4 records on partitions 0, 1, 2), as string partition keys.
    for t in topics {
        let parts =
            doc["offsets"][t].as_object().unwrap_or_else(|| panic!("no offsets for {t}: {doc}"));
        let got: Vec<(String, i64)> =
            parts.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap())).collect();
        assert_eq!(got, [("0".to_owned(), 2), ("1".to_owned(), 3), ("2".to_owned(), 4)], "{t}");
    }

    // Routine Load: one per table, explicit offsets equal to the captured ones, never
    // OFFSET_END or -1.
    let rl: Vec<&str> =
        doc["routine_load"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(rl.len(), 2, "{rl:#?}");
    for (t, table) in [(topics[0], "`plain`"), (topics[1], "`docs`")] {
        let stmt = rl
            .iter()
            .find(|s| s.contains(t))
            .unwrap_or_else(|| panic!("no statement for {t}: {rl:#?}"));
        assert!(stmt.contains("CREATE ROUTINE LOAD"), "{stmt}");
        assert!(stmt.contains(table), "{stmt}");
        assert!(stmt.contains("\"kafka_partitions\" = \"0,1,2\""), "{stmt}");
        assert!(stmt.contains("\"kafka_offsets\" = \"2,3,4\""), "{stmt}");
        assert!(!stmt.contains("OFFSET_END") && !stmt.contains("OFFSET_BEGINNING"), "{stmt}");
        assert!(stmt.contains("\"strict_mode\" = \"true\""), "{stmt}");
        assert!(stmt.contains("\"timezone\" = \"UTC\""), "{stmt}");
        assert!(stmt.contains("\"max_error_number\" = \"0\""), "{stmt}");
        // 3.3.11 rejects properties it does not know.
        assert!(!stmt.contains("pause_on_fatal_parse_error"), "{stmt}");
        // The client settings StarRocks' consumer needs, the secret a placeholder.
        assert!(stmt.contains(r#""property.security.protocol" = "plaintext""#), "{stmt}");
        assert!(stmt.contains(r#""property.sasl.password" = "${KAFKA_SASL_PASSWORD}""#));
    }
    // Per table, where each column comes from: keys by expression, the rest direct.
    let plain = doc["tables"].as_array().unwrap().iter().find(|t| t["name"] == "plain").unwrap();
    assert_eq!(
        plain["routine_load_columns"],
        serde_json::json!({
            "id": {"path": "$.after.id", "expression": "coalesce(`__dbz_a_id`, `__dbz_b_id`)"},
            "n": {"path": "$.after.n", "expression": null},
        })
    );

    // Debezium: the created slot and publication, no_data, no password in clear.
    let dbz = &doc["debezium"];
    assert!(dbz["name"].as_str().is_some_and(|n| !n.is_empty()), "{dbz}");
    let cfg = &dbz["config"];
    assert_eq!(cfg["slot.name"], slot.as_str());
    assert_eq!(cfg["publication.name"], publication.as_str());
    assert_eq!(cfg["snapshot.mode"], "no_data");
    assert_eq!(cfg["publication.autocreate.mode"], "disabled");
    assert_eq!(cfg["topic.prefix"], prefix);
    assert_eq!(cfg["database.password"], "${file:/etc/pgsnap/pg.properties:password}");
    assert_eq!(cfg["database.dbname"], db.as_str());
    // Every encoding the Routine Load relies on.
    for (k, v) in [
        ("time.precision.mode", "isostring"),
        ("decimal.handling.mode", "string"),
        ("interval.handling.mode", "string"),
        ("binary.handling.mode", "hex"),
        ("tombstones.on.delete", "false"),
        ("value.converter.schemas.enable", "false"),
        ("value.converter.replace.null.with.default", "false"),
    ] {
        assert_eq!(cfg[k], v, "{k}");
    }

    // The TOAST risk of `docs` is reported (not refused without --strict).
    let warnings: Vec<&str> =
        doc["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        warnings.iter().any(|w| w.contains("\"docs\"") && w.contains("REPLICA IDENTITY FULL")),
        "{warnings:#?}"
    );
    assert!(!warnings.iter().any(|w| w.contains("\"plain\"")), "{warnings:#?}");
    let docs = doc["tables"].as_array().unwrap().iter().find(|t| t["name"] == "docs").unwrap();
    assert_eq!(docs["toast_at_risk"], serde_json::json!(["body"]));
    assert_eq!(docs["topic"], topics[1]);
}

#[test]
fn slot_first_with_starrocks_loads_the_snapshot_and_continues_the_same_tables() {
    let kafka = Tansu::start();
    let sr = Sr::start();
    let db = unique_db("handoff_sr");
    sql(&db, TABLES);
    let prefix = "hsr";
    let topics = ["hsr.public.plain", "hsr.public.docs"];
    seed_topics(&kafka, &topics);
    let slot = format!("{db}_slot");
    let (_tmp, out) = out_dir();
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let sr_args = sr.args();
    let mut rest = vec![
        "--slot",
        &slot,
        "--json",
        "--jobs",
        "2",
        "--create-tables",
        // A mapped name: the Routine Load must continue the table the sink loaded.
        "--table-map",
        "public.plain=plain_sr",
    ];
    rest.extend(sr_args.iter().map(String::as_str));
    let mut cmd = example_command(HANDOFF, &handoff_args(&src, &out, &brokers, prefix, &rest));
    cmd.env(PASSWORD_VAR, PASSWORD);
    let run = run_cmd(cmd);
    let existed = take_down_slot(&db, &slot, &slot);
    run.expect_code(0);
    assert!(existed, "the permanent slot exists after the run");
    let doc = run.json();
    assert_eq!(doc["status"], "ok", "{doc}");
    assert_eq!(doc["mode"], "slot-first");
    for field in ["offsets", "routine_load", "debezium"] {
        assert!(!doc[field].is_null(), "missing {field}: {doc}");
    }

    // The state in --out: the manifest, no data files.
    assert!(out.join("manifest.json").is_file());
    let data: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.json")
        .collect();
    assert!(data.is_empty(), "no data files in --out: {data:?}");

    // StarRocks holds exactly PostgreSQL's rows; the report has the load fields.
    assert_eq!(
        sr.rows("plain_sr", &["id", "n"]),
        sr.pg_rows(&db, "SELECT id::text, n::text FROM public.plain")
    );
    assert_eq!(
        sr.rows("docs", &["id", "body"]),
        sr.pg_rows(&db, "SELECT id::text, body FROM public.docs")
    );
    for (name, target, rows) in [("plain", "plain_sr", 200), ("docs", "docs", 50)] {
        let t = doc["tables"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap();
        assert_eq!(t["target"], target, "{t}");
        assert_eq!(t["starrocks_table"], target, "{t}");
        assert_eq!(t["rows_loaded"], rows, "{t}");
        assert_eq!(t["rows_filtered"], 0, "{t}");
        assert!(t["loads"].as_u64().is_some_and(|n| n >= 1), "{t}");
    }

    // Offsets as captured; the Routine Load jobs continue the loaded tables in SR_DB.
    for t in topics {
        let parts = doc["offsets"][t].as_object().unwrap_or_else(|| panic!("{t}: {doc}"));
        assert_eq!(parts.len(), 3, "{t}");
    }
    let rl: Vec<&str> =
        doc["routine_load"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(rl.len(), 2, "{rl:#?}");
    for (topic, table) in [(topics[0], "plain_sr"), (topics[1], "docs")] {
        let stmt = rl.iter().find(|s| s.contains(topic)).unwrap();
        assert!(stmt.starts_with(&format!("CREATE ROUTINE LOAD `{SR_DB}`.")), "{stmt}");
        assert!(stmt.contains(&format!(" ON `{table}`\n")), "{stmt}");
        assert!(stmt.contains("\"kafka_offsets\" = \"2,3,4\""), "{stmt}");
    }
    assert_eq!(doc["debezium"]["config"]["slot.name"], slot.as_str());
}

#[test]
fn strict_refuses_a_table_at_toast_risk() {
    let kafka = Tansu::start();
    let db = unique_db("handoff_strict");
    sql(&db, TABLES);
    let (_tmp, out) = out_dir();
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let run = run_handoff(
        &src,
        &out,
        &brokers,
        "hs",
        &["--strict", "--json", "--starrocks-version", "3.4.2"],
    );
    run.expect_code(3);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("\"public\".\"docs\""), "{}", run.stderr);
    assert!(
        run.stderr.contains("ALTER TABLE \"public\".\"docs\" REPLICA IDENTITY FULL"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("\"public\".\"plain\""), "{}", run.stderr);
    // Refused before anything: no slot, no publication.
    assert_eq!(
        sql(&db, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
        "0"
    );
    assert_eq!(sql(&db, "SELECT count(*) FROM pg_publication"), "0");

    // After the fix, --strict needs the StarRocks version the Routine Load is rendered for:
    // exit 2 before anything runs.
    sql(&db, "ALTER TABLE public.docs REPLICA IDENTITY FULL");
    let (_tmp2, out2) = out_dir();
    let run = run_handoff(&src, &out2, &brokers, "hs", &["--strict", "--json"]);
    run.expect_code(2);
    assert!(run.stderr.contains("--starrocks-version"), "{}", run.stderr);
    let run =
        run_handoff(&src, &out2, &brokers, "hs", &["--strict", "--starrocks-version", "3.0.9"]);
    run.expect_code(2);
    assert!(run.stderr.contains("3.1.0 to 4.x"), "{}", run.stderr);
    assert_eq!(sql(&db, "SELECT count(*) FROM pg_publication"), "0");
    // With it, --strict passes (default slot pgsnap_<db>, dropped afterwards).
    let run = run_handoff(
        &src,
        &out2,
        &brokers,
        "hs",
        &["--strict", "--json", "--starrocks-version", "4.0.1"],
    );
    let slot = format!("pgsnap_{}", db.to_lowercase());
    let slot: String =
        slot.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(63).collect();
    drop_slot(&db, &slot, &slot);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["snapshot"]["slot"], slot.as_str());
    // Topics that do not exist yet: no offsets, no Routine Load, a warning.
    assert_eq!(doc["offsets"], serde_json::json!({}));
    assert_eq!(doc["routine_load"], serde_json::json!([]));
    assert!(doc["warnings"].to_string().contains("does not exist yet"), "{}", doc["warnings"]);
    assert_eq!(doc["debezium"]["config"]["publication.name"], slot.as_str());
}

#[test]
fn connect_url_in_running_mode_needs_a_connector_and_a_failed_submission_exits_3() {
    let kafka = Tansu::start();
    let db = unique_db("handoff_connect");
    sql(
        &db,
        "CREATE TABLE public.t (id int PRIMARY KEY, n int); INSERT INTO public.t VALUES (1, 1);",
    );
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let (_tmp, out) = out_dir();
    let run = run_handoff(
        &src,
        &out,
        &brokers,
        "hc",
        &["--mode", "running", "--connect-url", "http://127.0.0.1:1", "--json"],
    );
    run.expect_code(2);
    assert!(run.stderr.contains("--connect-url"), "{}", run.stderr);
    assert!(run.stderr.contains("--connector"), "{}", run.stderr);

    // Nothing listens on port 1: the snapshot completes, the submission fails, exit 3, and
    // the report says the connector was not submitted.
    let slot = format!("{db}_s");
    let run = run_handoff(
        &src,
        &out,
        &brokers,
        "hc",
        &["--slot", &slot, "--connect-url", "http://127.0.0.1:1", "--json"],
    );
    drop_slot(&db, &slot, &slot);
    run.expect_code(3);
    let doc = run.json();
    assert_eq!(doc["connect"]["submitted"], false, "{doc}");
    assert!(doc["connect"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{doc}");
    assert!(!doc["debezium"].is_null(), "{doc}");
}

#[test]
fn running_mode_checks_the_connector_position_through_connect() {
    use pgsnap_test_support::connect::{ConnectDouble, State};

    let kafka = Tansu::start();
    let db = unique_db("handoff_running");
    sql(
        &db,
        "CREATE TABLE public.t (id int PRIMARY KEY, n int); INSERT INTO public.t SELECT g, g FROM generate_series(1, 20) g;",
    );
    kafka.create_topic("hr.public.t", 1);
    // The running connector, with a committed position far past any snapshot.
    let offset = |lsn_commit: u64| {
        vec![serde_json::json!({
            "partition": {"server": "hr"},
            "offset": {"lsn_commit": lsn_commit, "lsn": lsn_commit, "txId": 1000},
        })]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut state = State::default();
    state.connectors.insert(
        "dbz".into(),
        serde_json::json!({
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "value.converter.replace.null.with.default": "false",
        }),
    );
    state.offsets.insert("dbz".into(), offset(u64::MAX / 2));
    let connect = rt.block_on(ConnectDouble::start(state));
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let run = |extra: &[&str]| {
        let (_tmp, out) = out_dir();
        let mut rest = vec![
            "--mode",
            "running",
            "--connect-url",
            &connect.url,
            "--connector",
            "dbz",
            "--json",
            "--starrocks-version",
            "3.4.2",
        ];
        rest.extend_from_slice(extra);
        run_handoff(&src, &out, &brokers, "hr", &rest)
    };

    // Passed: no warning about replays, the report says so.
    let r = run(&[]);
    r.expect_code(0);
    let doc = r.json();
    assert_eq!(doc["connect"]["passed"], true, "{doc}");
    assert_eq!(doc["connect"]["connector"], "dbz", "{doc}");
    assert!(doc["snapshot"]["lsn"].is_string() || doc["snapshot"]["lsn"].is_number(), "{doc}");
    assert!(!doc["warnings"].to_string().contains("may replay"), "{}", doc["warnings"]);
    assert!(doc["offsets"]["hr.public.t"].is_object(), "{doc}");

    // Not passed within --connector-wait: a warning, exit 0; with --strict, exit 3.
    connect.state.lock().unwrap().offsets.insert("dbz".into(), offset(1));
    let r = run(&["--connector-wait", "1"]);
    r.expect_code(0);
    let doc = r.json();
    assert_eq!(doc["connect"]["passed"], false, "{doc}");
    assert_eq!(doc["connect"]["lsn_commit"], "0/1", "{doc}");
    assert!(doc["warnings"].to_string().contains("may replay"), "{}", doc["warnings"]);
    let r = run(&["--connector-wait", "1", "--strict"]);
    r.expect_code(3);
    assert_eq!(r.json()["connect"]["passed"], false);
    assert!(
        connect.requests().iter().any(|q| q == "GET /connectors/dbz/offsets"),
        "{:?}",
        connect.requests()
    );
    // The Routine Load is rendered for the running connector's config, read from Connect.
    assert!(
        connect.requests().iter().any(|q| q == "GET /connectors/dbz/config"),
        "{:?}",
        connect.requests()
    );
    assert_eq!(doc["routine_load"].as_array().map(Vec::len), Some(1), "{doc}");
    drop(connect);
}

/// In running mode the Routine Load follows the user's connector config (`--debezium-config`):
/// a column its encodings cannot carry exactly is refused by name (no Routine Load for the
/// table, a warning with the fix; `--strict`: exit 3 before any row is copied). Without the
/// config nothing is rendered (`--strict`: exit 2 up front); slot-first takes no config.
#[test]
fn running_mode_renders_for_the_connector_config_or_refuses_columns() {
    let kafka = Tansu::start();
    let db = unique_db("handoff_dbzcfg");
    sql(
        &db,
        "CREATE TABLE public.t (id int PRIMARY KEY, d date, n int); INSERT INTO public.t VALUES (1, '2024-01-02', 1);",
    );
    kafka.create_topic("hd.public.t", 1);
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("connector.properties");
    // A connector left at Debezium's default time.precision.mode (adaptive: epoch days).
    std::fs::write(
        &cfg,
        "connector.class=io.debezium.connector.postgresql.PostgresConnector\n\
         value.converter=org.apache.kafka.connect.json.JsonConverter\n\
         value.converter.schemas.enable=false\n\
         value.converter.replace.null.with.default=false\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let (_tmp, out) = out_dir();
        let mut rest = vec!["--mode", "running", "--json", "--starrocks-version", "3.5.0"];
        rest.extend_from_slice(extra);
        run_handoff(&src, &out, &brokers, "hd", &rest)
    };
    let r = run(&["--debezium-config", arg(&cfg)]);
    r.expect_code(0);
    let doc = r.json();
    assert_eq!(doc["routine_load"], serde_json::json!([]), "{doc}");
    let w = doc["warnings"].to_string();
    assert!(w.contains("column \\\"d\\\"") && w.contains("time.precision.mode=isostring"), "{w}");
    assert!(doc["tables"][0]["routine_load_columns"].is_null(), "{doc}");
    let r = run(&["--debezium-config", arg(&cfg), "--strict"]);
    r.expect_code(3);
    assert!(r.stderr.contains("column \"d\"") && r.stderr.contains("isostring"), "{}", r.stderr);

    // With isostring the same table maps: d directly.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("time.precision.mode=isostring\n");
    std::fs::write(&cfg, text).unwrap();
    let r = run(&["--debezium-config", arg(&cfg)]);
    r.expect_code(0);
    let doc = r.json();
    assert_eq!(doc["routine_load"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(
        doc["tables"][0]["routine_load_columns"]["d"],
        serde_json::json!({"path": "$.after.d", "expression": null})
    );

    // No config: offsets, but no Routine Load; --strict refuses up front.
    let r = run(&[]);
    r.expect_code(0);
    let doc = r.json();
    assert_eq!(doc["routine_load"], serde_json::json!([]));
    assert!(doc["offsets"]["hd.public.t"].is_object(), "{doc}");
    assert!(
        doc["warnings"].to_string().contains("the running connector's encodings are unknown"),
        "{}",
        doc["warnings"]
    );
    run(&["--strict"]).expect_code(2);
    // Slot-first renders the connector config itself.
    let (_tmp, out) = out_dir();
    run_handoff(&src, &out, &brokers, "hd", &["--debezium-config", arg(&cfg)]).expect_code(2);

    // Slot-first with --strict: a column no Routine Load carries exactly stops the run before
    // any row is copied, and the slot the run created is dropped.
    sql(
        &db,
        "CREATE TABLE public.r (id int PRIMARY KEY, span tstzrange); ALTER TABLE public.r REPLICA IDENTITY FULL;",
    );
    let slot = format!("{db}_strict");
    let (_tmp, out) = out_dir();
    let r = run_handoff(
        &src,
        &out,
        &brokers,
        "hd",
        &["--strict", "--starrocks-version", "3.4.2", "--slot", &slot, "--include", "public.r"],
    );
    r.expect_code(3);
    assert!(r.stderr.contains("column \"span\"") && r.stderr.contains("tstzrange"), "{}", r.stderr);
    assert_eq!(
        sql(&db, &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")),
        "0",
        "the slot this run created is dropped"
    );
}

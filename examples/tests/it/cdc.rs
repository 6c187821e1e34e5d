//! The CDC leg end to end, with real parts: PostgreSQL 15, real Debezium 3.6.3 (embedded,
//! forwarding to tansu), the tansu broker, pgsnap's `handoff` binary loading the snapshot into
//! the StarRocks test double, and the double's Routine Load consuming the topics from the
//! resolved offsets with the rendered statements.
//!
//! - `slot_first_csv_*` and `running_json_*`: concurrent writers insert, update and delete rows
//!   of every type group across the snapshot point; once the double has consumed up to the
//!   high watermarks, every table the Routine Load continues equals a fresh snapshot of the
//!   final database (loaded by `migrate_to_starrocks`, value-exact against PostgreSQL), cell
//!   by cell, and no job paused. The same runs hold the **parity** check: rows of edge values
//!   loaded by the snapshot, and their twins inserted after it (so they arrive through CDC),
//!   have identical cells, column by column.
//! - `parity_bites`: a deliberately wrong mapping (a timestamp passed through as Debezium's
//!   default encoding sends it, as pgsnap's Routine Load did before) makes the comparison fail
//!   naming exactly those cells.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use pgsnap_kafka::resolver::KafkaOffsetResolver;
use pgsnap_kafka::topic_name;
use pgsnap_sink_starrocks::parity::DebeziumEncoding;
use pgsnap_test_support::debezium::{Debezium, DebeziumOptions};
use pgsnap_test_support::kafka::Tansu;
use pgsnap_test_support::starrocks::{Cell, RoutineLoadState};
use pgsnap_test_support::{shared_cluster, unique_db};
use serde_json::Value;

use crate::support::{
    MIGRATE_TO_STARROCKS, PASSWORD, PASSWORD_VAR, SR_DB, Sr, USER, arg, example_command, out_dir,
    run_cmd, source, sql, strings,
};

/// Tables of every type group. `arrays` needs JSON bodies (CSV keeps arrays as text, which no
/// Routine Load writes alike); `tsarr` is always refused (timestamp array elements).
const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE nums (id int PRIMARY KEY, i2 smallint, i4 int, i8 bigint, b boolean, r real,
    d double precision, n numeric(12,3), nu numeric, m money, def int DEFAULT 42);
CREATE TABLE texts (id int PRIMARY KEY, t text, v varchar(10), c char(5), u uuid, e mood,
    ip inet, net cidr, mac macaddr, bya bytea, rng int4range, big text);
ALTER TABLE texts ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE times (id int PRIMARY KEY, dt date, ts0 timestamp(0), ts3 timestamp(3),
    ts6 timestamp, tz timestamptz, tz3 timestamptz(3), tm time, tm3 time(3), ttz timetz,
    iv interval);
CREATE TABLE docs (id int PRIMARY KEY, j json, jb jsonb);
CREATE TABLE arrays (id int PRIMARY KEY, ai int[], at text[], ab boolean[],
    af double precision[], ar real[]);
CREATE TABLE tsarr (id int PRIMARY KEY, ats timestamp[]);
ALTER TABLE nums REPLICA IDENTITY FULL;
ALTER TABLE texts REPLICA IDENTITY FULL;
ALTER TABLE times REPLICA IDENTITY FULL;
ALTER TABLE docs REPLICA IDENTITY FULL;
ALTER TABLE arrays REPLICA IDENTITY FULL;
ALTER TABLE tsarr REPLICA IDENTITY FULL;
"#;

const TABLES: [&str; 6] = ["nums", "texts", "times", "docs", "arrays", "tsarr"];

/// Seed rows per table, which the writers update and delete.
const SEED: i64 = 120;
/// Edge rows (ids `EDGE + g`), untouched by the writers; their twins get `TWIN + g`.
const EDGE: i64 = 1_000_000;
const TWIN: i64 = 2_000_000;
/// New rows the writers insert start here.
const NEW: i64 = 100_000;
/// The marker row written last: once the double holds it, Debezium has sent everything.
const MARKER: i64 = 9_999_999;

/// The column list and value expressions of `table` for the integer SQL expression `g`
/// (every CASE branch is hit by g = 0..13). `json_scalars`: top-level JSON numbers and
/// booleans (CSV snapshots refuse them).
fn values(table: &str, g: &str, json_scalars: bool) -> (&'static str, String) {
    match table {
        "nums" => (
            "i2, i4, i8, b, r, d, n, nu, m, def",
            format!(
                "(({g} * 7919) % 65536 - 32768)::smallint,
                 (({g}::bigint * 104729) % 4294967296 - 2147483648)::int,
                 (({g}::numeric * 112000000000003) % 9000000000000000000 * (1 - 2 * ({g} % 2)))::bigint,
                 CASE WHEN {g} % 7 = 0 THEN NULL ELSE {g} % 3 = 0 END,
                 CASE {g} % 11 WHEN 0 THEN 'NaN'::real WHEN 1 THEN 'Infinity'::real
                     WHEN 2 THEN '-Infinity'::real WHEN 3 THEN '1e38'::real
                     WHEN 4 THEN '-0'::real ELSE ({g} / 7.0)::real END,
                 CASE {g} % 13 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-Infinity'::float8
                     WHEN 2 THEN '1.7976931348623157e308'::float8 WHEN 3 THEN '5e-324'::float8
                     ELSE ({g} * 1.0e-5 + 1.0 / ({g} + 1))::float8 END,
                 ((({g} % 1000) - 500) * 1.234567)::numeric(12,3),
                 CASE {g} % 9 WHEN 0 THEN 'NaN'::numeric WHEN 1 THEN 'Infinity'::numeric
                     WHEN 2 THEN '-Infinity'::numeric WHEN 3 THEN 1e-20
                     ELSE ({g}::numeric ^ 3 / 7) END,
                 CASE {g} % 5 WHEN 0 THEN '-92233720368547758.08'::money
                     WHEN 1 THEN '92233720368547758.07'::money
                     ELSE ((({g} % 2000) - 1000) * 12.34)::money END,
                 CASE WHEN {g} % 4 = 0 THEN NULL ELSE {g} END"
            ),
        ),
        "texts" => (
            "t, v, c, u, e, ip, net, mac, bya, rng, big",
            format!(
                "CASE {g} % 6 WHEN 0 THEN '' WHEN 1 THEN NULL
                     WHEN 2 THEN E'tab\\there\\nnew \"q\" \\\\ back, \\u00e9 \\u65e5 ' || {g}
                     ELSE md5({g}::text) END,
                 left(md5({g}::text), 1 + {g} % 10),
                 left(md5(({g} + 1)::text), {g} % 5),
                 md5({g}::text)::uuid,
                 (ARRAY['sad', 'ok', 'happy'])[1 + {g} % 3]::mood,
                 ('10.' || ({g} % 256) || '.' || (({g} / 256) % 256) || '.7/24')::inet,
                 ('10.' || ({g} % 256) || '.0.0/16')::cidr,
                 ('08:00:2b:' || lpad(to_hex({g} % 256), 2, '0') || ':'
                     || lpad(to_hex(({g} / 256) % 256), 2, '0') || ':01')::macaddr,
                 CASE WHEN {g} % 5 = 0 THEN ''::bytea ELSE decode(md5({g}::text), 'hex') END,
                 int4range({g} % 1000, {g} % 1000 + 10),
                 repeat(md5({g}::text), 100)"
            ),
        ),
        "times" => (
            "dt, ts0, ts3, ts6, tz, tz3, tm, tm3, ttz, iv",
            format!(
                "CASE {g} % 7 WHEN 0 THEN date '0001-01-01' WHEN 1 THEN date '9999-12-31'
                     ELSE date '1901-01-01' + ({g} * 37) % 73000 END,
                 timestamp '1950-01-01' + {g} * interval '1 day 1 hour 1 min 1.4 sec',
                 timestamp '1969-12-31 23:59:59' + {g} * interval '1.234567 sec',
                 CASE {g} % 7 WHEN 0 THEN timestamp '0001-01-01 00:00:00'
                     WHEN 1 THEN timestamp '9999-12-31 23:59:59.999999'
                     ELSE timestamp '1969-12-31 23:59:58' + {g} * interval '12345.678901 sec' END,
                 timestamptz '2038-01-19 03:14:07+00' - {g} * interval '1 day 0.000001 sec',
                 timestamptz '2000-01-01 00:00:00+05:30' + {g} * interval '0.001 sec',
                 time '00:00' + {g} * interval '37.123456 sec',
                 time '23:59:59.999' - {g} * interval '0.5 sec',
                 ((time '00:30' + {g} * interval '61.25 sec')::text
                     || (ARRAY['+05:30', '-08', '+00'])[1 + {g} % 3])::timetz,
                 CASE {g} % 5 WHEN 0 THEN {g} * interval '1 mon 2 days 3.5 sec'
                     WHEN 1 THEN -{g} * interval '1 year 1 sec'
                     WHEN 2 THEN interval '1 day' - interval '1.003691 sec' - ({g} / 5) * interval '1 sec'
                     WHEN 3 THEN interval '0'
                     ELSE make_interval(hours => {g} * 30, secs => 59.999999) END"
            ),
        ),
        "docs" => (
            "j, jb",
            format!(
                "CASE {g} % 4 WHEN 0 THEN ('{{\"b\": ' || {g} || ', \"a\": [1, \"x\\\"y\"], \"n\": null}}')::json
                     WHEN 1 THEN '[1, 2.5, \"s\", {{}}]'::json
                     WHEN 2 THEN ('\"str ' || {g} || ' \\u00e9\"')::json
                     ELSE {json_scalar_j} END,
                 CASE {g} % 3 WHEN 0 THEN ('{{\"\\u00fc\": \"\\u00e9\", \"k\": ' || {g} || ', \"z\": [true, null]}}')::jsonb
                     WHEN 1 THEN '\"plain\"'::jsonb
                     ELSE {json_scalar_jb} END",
                json_scalar_j = if json_scalars {
                    format!("({g} * -1.5e3)::text::json")
                } else {
                    "'{\"nested\": {\"deep\": [[]]}}'::json".to_owned()
                },
                json_scalar_jb = if json_scalars {
                    format!("(({g} % 2 = 0)::text)::jsonb")
                } else {
                    "'[]'::jsonb".to_owned()
                },
            ),
        ),
        "arrays" => (
            "ai, at, ab, af, ar",
            format!(
                "ARRAY[{g}, NULL, -{g}],
                 ARRAY['a' || {g}, NULL, 'x\"y,z{{}}', ''],
                 ARRAY[{g} % 2 = 0, NULL],
                 ARRAY[{g} / 3.0, 'NaN', '-Infinity']::float8[],
                 ARRAY[({g} / 7.0)::real, 'Infinity'::real]"
            ),
        ),
        "tsarr" => ("ats", format!("ARRAY[timestamp '2000-01-01' + {g} * interval '1 sec']")),
        "bite" => (
            "ts, note",
            format!("timestamp '1969-12-31 23:00:00' + {g} * interval '1 hour 0.5 sec', 'n' || {g}"),
        ),
        other => unreachable!("{other}"),
    }
}

fn insert(table: &str, id: i64, json_scalars: bool) -> String {
    let (cols, vals) = values(table, &id.to_string(), json_scalars);
    format!("INSERT INTO {table} (id, {cols}) VALUES ({id}, {vals}) ON CONFLICT (id) DO NOTHING")
}

fn update(table: &str, id: i64, g: i64, json_scalars: bool) -> String {
    let (cols, vals) = values(table, &g.to_string(), json_scalars);
    format!("UPDATE {table} SET ({cols}) = ROW({vals}) WHERE id = {id}")
}

fn setup(db: &str, json_scalars: bool) {
    let mut s = String::from(SCHEMA);
    for t in TABLES {
        let (cols, vals) = values(t, "g", json_scalars);
        s.push_str(&format!(
            "INSERT INTO {t} (id, {cols}) SELECT g, {vals} FROM generate_series(1, {SEED}) g;\n\
             INSERT INTO {t} (id, {cols}) SELECT {EDGE} + g, {vals} FROM generate_series(0, 13) g;\n"
        ));
    }
    s.push_str("ANALYZE;");
    sql(db, &s);
}

/// Sessions inserting, updating and deleting rows of every table, some in transactions held
/// open across the snapshot point, until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
}

impl Writers {
    fn start(
        db: &str,
        sessions: usize,
        tables: &'static [&'static str],
        json_scalars: bool,
    ) -> Writers {
        let rt = crate::support::runtime();
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(NEW as u64));
        let mut tasks = Vec::new();
        for w in 0..sessions {
            let client = rt.block_on(shared_cluster().connect(db));
            let (stop, ops, next) = (Arc::clone(&stop), Arc::clone(&ops), Arc::clone(&next));
            tasks.push(rt.spawn(async move {
                let mut rnd = pgsnap_test_support::xorshift(w as u64 + 7);
                while !stop.load(Ordering::Relaxed) {
                    let table = tables[rnd(tables.len() as u64) as usize];
                    let id = 1 + rnd(SEED as u64) as i64;
                    let g = rnd(5000) as i64;
                    let one = match rnd(4) {
                        0 => {
                            insert(table, next.fetch_add(1, Ordering::Relaxed) as i64, json_scalars)
                        }
                        1 => format!("DELETE FROM {table} WHERE id = {id}"),
                        _ => update(table, id, g, json_scalars),
                    };
                    // Every fourth statement runs in a transaction held open a while, with a
                    // second table's change: some are in progress at the snapshot point.
                    let stmt = if rnd(4) == 0 {
                        let other = tables[rnd(tables.len() as u64) as usize];
                        format!(
                            "BEGIN; {one}; SELECT pg_sleep(0.15); {}; COMMIT",
                            update(other, 1 + rnd(SEED as u64) as i64, g + 1, json_scalars)
                        )
                    } else {
                        one
                    };
                    match client.batch_execute(&stmt).await {
                        Ok(()) => {
                            ops.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let _ = client.batch_execute("ROLLBACK").await;
                            panic!("writer statement failed: {e}\n{stmt}");
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
        }
        Writers { stop, ops, tasks, rt }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            self.rt.block_on(t).expect("writer task");
        }
        self.ops.load(Ordering::Relaxed)
    }
}

/// One table's cells in the double: column names, and rows by their first (key) cell.
type Cells = (Vec<String>, BTreeMap<String, Vec<Cell>>);

fn cells(sr: &Sr, db: &str, table: &str) -> Cells {
    let names: Vec<String> = {
        let cat = sr.double.catalog().lock();
        let t = cat.databases[db]
            .tables
            .get(table)
            .unwrap_or_else(|| panic!("no StarRocks table {db}.{table}"));
        t.columns.iter().map(|c| c.name.clone()).collect()
    };
    let rows =
        sr.double.rows(db, table).into_iter().map(|r| (r[0].clone().expect("a key"), r)).collect();
    (names, rows)
}

fn show(c: &Cell) -> String {
    c.as_deref().map_or("NULL".to_owned(), |s| format!("{s:?}"))
}

/// Every difference between `got` (the CDC-continued table) and `want` (a fresh snapshot),
/// one line per cell or missing row, naming table, key and column.
fn diff(table: &str, got: &Cells, want: &Cells) -> Vec<String> {
    assert_eq!(got.0, want.0, "{table}: the same columns");
    let mut out = Vec::new();
    for (key, w) in &want.1 {
        match got.1.get(key) {
            None => out.push(format!("{table} id={key}: missing (snapshot has it)")),
            Some(g) => {
                for (i, name) in want.0.iter().enumerate() {
                    if g[i] != w[i] {
                        out.push(format!(
                            "{table} id={key} column {name}: cdc {} snapshot {}",
                            show(&g[i]),
                            show(&w[i])
                        ));
                    }
                }
            }
        }
    }
    for key in got.1.keys().filter(|k| !want.1.contains_key(*k)) {
        out.push(format!("{table} id={key}: extra (the snapshot does not have it)"));
    }
    out
}

/// Parity: each edge row (loaded by the snapshot) and its twin (inserted after it, loaded by
/// Routine Load) have identical cells in every column but the key.
fn twin_diff(table: &str, c: &Cells) -> Vec<String> {
    let mut out = Vec::new();
    for g in 0..=13 {
        let (edge, twin) = ((EDGE + g).to_string(), (TWIN + g).to_string());
        let (Some(a), Some(b)) = (c.1.get(&edge), c.1.get(&twin)) else {
            out.push(format!("{table}: edge row {edge} or its twin {twin} is missing"));
            continue;
        };
        for (i, name) in c.0.iter().enumerate().skip(1) {
            if a[i] != b[i] {
                out.push(format!(
                    "{table} column {name}: snapshot (id {edge}) {} vs cdc (id {twin}) {}",
                    show(&a[i]),
                    show(&b[i])
                ));
            }
        }
    }
    out
}

/// Runs `handoff` with the StarRocks flags of `sr`, then `rest`; returns its JSON report.
fn handoff(sr: &Sr, src: &str, out: &Path, brokers: &str, prefix: &str, rest: &[&str]) -> Value {
    let mut args = strings(&[
        "--source",
        src,
        "--out",
        arg(out),
        "--brokers",
        brokers,
        "--topic-prefix",
        prefix,
        "--json",
        "--jobs",
        "2",
        "--create-tables",
    ]);
    args.extend(sr.args());
    args.extend(strings(rest));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = example_command("handoff", &argv);
    cmd.env(PASSWORD_VAR, PASSWORD);
    let run = run_cmd(cmd);
    run.expect_code(0);
    run.json()
}

/// `migrate_to_starrocks` of the final database into `database` of the double, JSON bodies.
fn oracle(sr: &Sr, src: &str, database: &str) {
    sr.double.create_database(database);
    let (_tmp, state) = out_dir();
    let mut args = sr.job_args(src, &state, &["--create-tables", "--format", "json"]);
    let at = args.iter().position(|a| a == "--database").unwrap();
    args[at + 1] = database.to_owned();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = example_command(MIGRATE_TO_STARROCKS, &argv);
    cmd.env(PASSWORD_VAR, PASSWORD);
    run_cmd(cmd).expect_code(0);
}

/// Creates the rendered Routine Load jobs through the double's MySQL front.
fn create_routine_loads(sr: &Sr, statements: &[String]) {
    let rt = crate::support::runtime();
    rt.block_on(async {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(sr.double.mysql_addr().ip().to_string())
            .tcp_port(sr.double.mysql_addr().port())
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .prefer_socket(false)
            .stmt_cache_size(0);
        let mut conn = mysql_async::Conn::new(opts).await.expect("mysql front");
        for s in statements {
            conn.query_drop(s).await.unwrap_or_else(|e| panic!("{e}\n{s}"));
        }
        let _ = conn.disconnect().await;
    });
}

/// Debezium's properties from the rendered Kafka Connect config (its own connection and name
/// aside: the embedded engine reaches the test cluster directly).
fn rendered_properties(config: &Value) -> Vec<(String, String)> {
    config
        .as_object()
        .expect("a config object")
        .iter()
        .filter(|(k, _)| !k.starts_with("database.") && *k != "name")
        .map(|(k, v)| (k.clone(), v.as_str().expect("string settings").to_owned()))
        .collect()
}

/// Waits until the marker row reached every continued table, then until every job consumed
/// its topic up to the high watermark; asserts no job paused.
fn catch_up(sr: &Sr, brokers: &str, prefix: &str, continued: &[String], dbz: &Debezium) {
    let started = Instant::now();
    for t in continued {
        loop {
            if cells(sr, SR_DB, t).1.contains_key(&MARKER.to_string()) {
                break;
            }
            if let Some(j) =
                sr.double.routine_loads().iter().find(|j| j.state == RoutineLoadState::Paused)
            {
                panic!("job {} paused: {:?} {:?}", j.name, j.reason, j.errors);
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the marker did not reach {t}; jobs: {:#?}\n--- Debezium ---\n{}",
                sr.double.routine_loads(),
                dbz.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let rt = crate::support::runtime();
    let topics: Vec<String> = continued.iter().map(|t| topic_name(prefix, "public", t)).collect();
    let hw = rt.block_on(KafkaOffsetResolver::capture_high_watermarks(brokers, &topics)).unwrap();
    for job in sr.double.routine_loads() {
        let topic = topic_name(prefix, "public", &job.table);
        let Some(targets) = hw.0.get(&topic) else { continue };
        let status = rt.block_on(sr.double.wait_routine_load(
            SR_DB,
            &job.name,
            targets,
            Duration::from_secs(60),
        ));
        assert!(
            matches!(status.state, RoutineLoadState::Running | RoutineLoadState::NeedSchedule),
            "job {} is {:?}: {:?} {:?}",
            job.name,
            status.state,
            status.reason,
            status.errors
        );
        assert_eq!(status.filtered_rows, 0, "{}: {:?}", job.name, status.errors);
        for (p, t) in targets {
            assert!(status.progress.get(p).is_some_and(|n| n >= t), "{}: {status:?}", job.name);
        }
    }
}

/// The tables that got a Routine Load, from the report (`routine_load_columns` not null), and
/// the warnings of the refused ones.
fn continued_tables(doc: &Value) -> (Vec<String>, Vec<String>) {
    let mut continued = Vec::new();
    for t in doc["tables"].as_array().unwrap() {
        if !t["routine_load_columns"].is_null() {
            continued.push(t["name"].as_str().unwrap().to_owned());
        }
    }
    let warnings = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    (continued, warnings)
}

/// After the snapshot: the twins of the edge rows (so they arrive through CDC).
fn insert_twins(db: &str, tables: &[String]) {
    let mut s = String::new();
    for t in tables {
        let (cols, _) = values(t, "0", false);
        s.push_str(&format!(
            "INSERT INTO {t} (id, {cols}) SELECT id + {shift}, {cols} FROM {t} \
             WHERE id BETWEEN {EDGE} AND {last};\n",
            shift = TWIN - EDGE,
            last = EDGE + 13
        ));
    }
    sql(db, &s);
}

/// The marker rows, in one transaction after everything else.
fn insert_markers(db: &str, tables: &[&str]) {
    let s: String =
        tables.iter().map(|t| format!("INSERT INTO {t} (id) VALUES ({MARKER});")).collect();
    sql(db, &format!("BEGIN; {s} COMMIT;"));
}

/// Compares every continued table with the fresh snapshot and checks the twins; panics with
/// every differing cell.
fn assert_exact(sr: &Sr, continued: &[String], oracle_db: &str) {
    let mut problems = Vec::new();
    for t in continued {
        let got = cells(sr, SR_DB, t);
        let want = cells(sr, oracle_db, t);
        assert!(want.1.len() > 100, "{t}: the final table has rows");
        problems.extend(diff(t, &got, &want));
        problems.extend(twin_diff(t, &got));
    }
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}

/// One end-to-end run's parts.
struct Cdc<'a> {
    sr: &'a Sr,
    db: &'a str,
    src: &'a str,
    brokers: &'a str,
    prefix: &'a str,
}

impl Cdc<'_> {
    /// After the handoff (`doc`) with the connector running: creates the rendered Routine
    /// Loads, inserts the twins, lets the writers go on a while, stops them, waits until the
    /// double consumed everything, and checks every continued table against a fresh snapshot
    /// (into `oracle_db`) and the twins against their edge rows.
    fn finish(
        &self,
        doc: &Value,
        continued: &[String],
        writers: Writers,
        dbz: Debezium,
        oracle_db: &str,
    ) -> Debezium {
        let statements: Vec<String> = doc["routine_load"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        create_routine_loads(self.sr, &statements);
        insert_twins(self.db, continued);
        std::thread::sleep(Duration::from_millis(1500));
        let ops = writers.stop();
        assert!(ops > 50, "the writers changed rows: {ops}");
        insert_markers(self.db, &TABLES);
        catch_up(self.sr, self.brokers, self.prefix, continued, &dbz);
        oracle(self.sr, self.src, oracle_db);
        assert_exact(self.sr, continued, oracle_db);
        dbz
    }
}

/// Stops the connector and drops its `slot` in `db`.
fn stop_connector(mut dbz: Debezium, db: &str, slot: &str) {
    dbz.stop();
    sql(db, &format!("SELECT pg_drop_replication_slot('{slot}')"));
}

fn topics_of(prefix: &str) -> Vec<String> {
    TABLES.iter().map(|t| topic_name(prefix, "public", t)).collect()
}

/// Slot-first, CSV bodies: pgsnap creates the slot, Debezium starts on it from the rendered
/// connector config after the snapshot.
#[test]
fn slot_first_csv_cdc_equals_a_fresh_snapshot() {
    let kafka = Tansu::start();
    let sr = Sr::start();
    let db = unique_db("cdc_sf");
    setup(&db, false);
    let prefix = "csf";
    for t in topics_of(prefix) {
        kafka.create_topic(&t, 3);
    }
    let slot = format!("{db}_slot");
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let writers = Writers::start(&db, 3, &TABLES, false);
    std::thread::sleep(Duration::from_millis(300));
    let (_tmp, out) = out_dir();
    let doc =
        handoff(&sr, &src, &out, &brokers, prefix, &["--slot", &slot, "--load-format", "csv"]);
    let (continued, warnings) = continued_tables(&doc);
    assert_eq!(continued, ["docs", "nums", "texts", "times"], "{warnings:#?}");
    // Arrays in CSV bodies are text, and timestamp arrays are refused in any body: named.
    for (table, column) in [("arrays", "ai"), ("tsarr", "ats")] {
        assert!(
            warnings.iter().any(|w| w.contains(&format!("\"{table}\""))
                && w.contains(&format!("column \"{column}\""))),
            "{table}.{column} refused: {warnings:#?}"
        );
    }
    assert_eq!(doc["starrocks_version"], "3.4.2");

    // The connector from the rendered config, on the slot the snapshot came from.
    let mut opts = DebeziumOptions::new(shared_cluster(), &db, &slot, &slot, prefix, &brokers);
    for (k, v) in rendered_properties(&doc["debezium"]["config"]) {
        opts = opts.with_property(k, v);
    }
    let dbz = Debezium::start(opts);
    let cdc = Cdc { sr: &sr, db: &db, src: &src, brokers: &brokers, prefix };
    let dbz = cdc.finish(&doc, &continued, writers, dbz, "oracle_sf");

    // A value the snapshot refuses (a timestamp at infinity) pauses the job when it comes
    // through CDC: the row is filtered, never loaded with a NULL.
    sql(&db, "INSERT INTO times (id, ts6) VALUES (8888888, 'infinity')");
    let started = Instant::now();
    let job = loop {
        let job = sr.double.routine_load(SR_DB, "pgsnap_times").expect("the times job");
        if job.state == RoutineLoadState::Paused {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not paused: {job:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(job.filtered_rows, 1, "{job:?}");
    assert!(job.errors.iter().any(|e| e.contains("ts6")), "{job:?}");
    assert!(!cells(&sr, SR_DB, "times").1.contains_key("8888888"));
    stop_connector(dbz, &db, &slot);
}

/// Running mode, JSON bodies: Debezium already streams (its own slot, pgsnap's encodings set by
/// the user); the Routine Load is rendered for its config (`--debezium-config`).
#[test]
fn running_json_cdc_equals_a_fresh_snapshot() {
    let kafka = Tansu::start();
    let sr = Sr::start();
    let db = unique_db("cdc_run");
    setup(&db, true);
    let prefix = "crun";
    for t in topics_of(prefix) {
        kafka.create_topic(&t, 3);
    }
    let brokers = kafka.bootstrap();
    let slot = format!("{db}_dbz");
    sql(
        &db,
        &format!(
            "CREATE PUBLICATION {slot} FOR TABLE {}; SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');",
            TABLES.join(", ")
        ),
    );
    // The user's connector, with the encodings the parity table needs.
    let mut props: Vec<(String, String)> = DebeziumEncoding::pgsnap()
        .connector_properties()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    props.push((
        "connector.class".into(),
        "io.debezium.connector.postgresql.PostgresConnector".into(),
    ));
    let mut opts = DebeziumOptions::new(shared_cluster(), &db, &slot, &slot, prefix, &brokers);
    for (k, v) in &props {
        opts = opts.with_property(k, v);
    }
    let dbz = Debezium::start(opts);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg_file = cfg_dir.path().join("debezium.properties");
    let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&cfg_file, text).unwrap();

    let writers = Writers::start(&db, 3, &TABLES, true);
    std::thread::sleep(Duration::from_millis(500));
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let doc = handoff(
        &sr,
        &src,
        &out,
        &brokers,
        prefix,
        &["--mode", "running", "--debezium-config", arg(&cfg_file), "--load-format", "json"],
    );
    let (continued, warnings) = continued_tables(&doc);
    assert_eq!(continued, ["arrays", "docs", "nums", "texts", "times"], "{warnings:#?}");
    assert!(warnings.iter().any(|w| w.contains("\"tsarr\"") && w.contains("column \"ats\"")));
    let cdc = Cdc { sr: &sr, db: &db, src: &src, brokers: &brokers, prefix };
    let dbz = cdc.finish(&doc, &continued, writers, dbz, "oracle_run");
    stop_connector(dbz, &db, &slot);
}

/// A deliberately wrong mapping must make the comparison fail, naming exactly the cells it
/// got wrong: the connector left at Debezium's default `time.precision.mode` (epoch
/// microseconds) and the timestamp passed through into the DATETIME column without strict
/// mode, as pgsnap's Routine Load did before the parity table.
#[test]
fn parity_bites() {
    let kafka = Tansu::start();
    let sr = Sr::start();
    let db = unique_db("cdc_bite");
    let (cols, vals) = values("bite", "g", false);
    sql(
        &db,
        &format!(
            "CREATE TABLE bite (id int PRIMARY KEY, ts timestamp, note text);
             INSERT INTO bite (id, {cols}) SELECT {EDGE} + g, {vals} FROM generate_series(0, 13) g;"
        ),
    );
    let prefix = "cbite";
    kafka.create_topic("cbite.public.bite", 3);
    let slot = format!("{db}_slot");
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let (_tmp, out) = out_dir();
    let doc = handoff(&sr, &src, &out, &brokers, prefix, &["--slot", &slot]);
    let stmt = doc["routine_load"][0].as_str().unwrap();
    assert!(stmt.contains("`ts`, `note`"), "ts and note are mapped directly: {stmt}");
    // The wrong mapping: no strict mode, and a connector that sends epoch microseconds.
    let wrong = stmt.replace(r#""strict_mode" = "true""#, r#""strict_mode" = "false""#);
    assert_ne!(wrong, stmt);
    let mut opts = DebeziumOptions::new(shared_cluster(), &db, &slot, &slot, prefix, &brokers);
    for (k, v) in rendered_properties(&doc["debezium"]["config"]) {
        if k != "time.precision.mode" {
            opts = opts.with_property(k, v);
        }
    }
    let dbz = Debezium::start(opts);
    create_routine_loads(&sr, &[wrong]);
    let continued = vec!["bite".to_owned()];
    insert_twins(&db, &continued);
    insert_markers(&db, &["bite"]);
    catch_up(&sr, &brokers, prefix, &continued, &dbz);
    let named = twin_diff("bite", &cells(&sr, SR_DB, "bite"));
    stop_connector(dbz, &db, &slot);
    // Exactly the 14 timestamp cells, nothing else.
    assert_eq!(named.len(), 14, "{named:#?}");
    assert!(named.iter().all(|n| n.starts_with("bite column ts: ")), "{named:#?}");
}

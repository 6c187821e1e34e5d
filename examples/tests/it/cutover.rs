//! The whole migration as a black box (the scenario of `scripts/demo-cdc.sh`), with real
//! parts: PostgreSQL 15 with writers running, tansu, real Debezium 3.6.3 on the handoff's slot
//! with the rendered connector config, and the StarRocks double running the Routine Loads the
//! handoff created.
//!
//! `handoff --create-routine-loads` → `status` while CDC catches up → Debezium stopped, a
//! last write, writes stopped, T read → `status --cutover-lsn T` is not caught up for cutover
//! (exit 6) → Debezium again → `status --cutover-lsn T --until-caught-up` (exit 0) →
//! `verify --full --cutover-lsn T` (exit 0, `equal`). Then: a row changed in the double makes `verify` name exactly that
//! table and key (exit 1); a rerun of the handoff reports its jobs `already_there`; a row
//! that cannot be loaded pauses its job, and `status` says `paused` with the reason and the
//! remedy, and `--until-caught-up` fails at once (exit 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgsnap_test_support::debezium::{Debezium, DebeziumOptions};
use pgsnap_test_support::kafka::Tansu;
use pgsnap_test_support::{shared_cluster, unique_db};
use serde_json::Value;

use crate::support::{
    PASSWORD, PASSWORD_VAR, SR_DB, Sr, arg, example_command, out_dir, run_cmd, source, sql, strings,
};

const SCHEMA: &str = "
CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2),
    status text, items jsonb, placed timestamp);
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com'
  FROM generate_series(1, 300) g;
INSERT INTO orders SELECT g, 1 + g % 300, (g % 9973) / 100.0, 'placed',
    jsonb_build_object('sku', 'S' || (g % 50), 'qty', 1 + g % 4),
    timestamp '2026-01-01' + g * interval '1 minute'
  FROM generate_series(1, 3000) g;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE customers REPLICA IDENTITY FULL;
";

/// Inserts, updates and deletes in a loop until stopped; counts its transactions.
struct Writers {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writers {
    fn start(db: &str) -> Writers {
        let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, d, db) = (Arc::clone(&stop), Arc::clone(&done), db.to_owned());
        let thread = std::thread::spawn(move || {
            let mut i: u64 = 0;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                sql(
                    &db,
                    &format!(
                        "INSERT INTO orders VALUES ({n}, {c}, {i} % 500, 'placed', '{{\"sku\": \"W{i}\"}}', now()::timestamp(3));
                         UPDATE orders SET status = 'shipped', amount = amount + 1 WHERE id = {u};
                         DELETE FROM orders WHERE id = {x};
                         UPDATE customers SET email = 'new{i}@example.com' WHERE id = {c};",
                        n = 100_000 + i,
                        c = 1 + i % 300,
                        u = 1 + (i * 7919) % 3000,
                        x = 1 + (i * 104_729) % 3000,
                    ),
                );
                d.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Writers { stop, done, thread: Some(thread) }
    }

    /// Stops the writers; returns how many transactions they committed.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the writer thread");
        }
        self.done.load(Ordering::SeqCst)
    }
}

/// Runs the example `name` (or its `pgsnap` subcommand) with `args` and the StarRocks
/// password; returns the exit code and the JSON on stdout (`Null` when there is none).
fn run(name: &str, args: &[String]) -> (Option<i32>, Value, String) {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = example_command(name, &argv);
    cmd.env(PASSWORD_VAR, PASSWORD);
    let out = run_cmd(cmd);
    let json = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    (out.code, json, out.stderr.clone())
}

#[test]
fn a_whole_migration_hands_off_catches_up_and_verifies_equal() {
    let kafka = Tansu::start();
    let sr = Sr::start();
    let db = unique_db("cutover");
    sql(&db, SCHEMA);
    let prefix = "cut";
    for t in ["orders", "customers"] {
        kafka.create_topic(&format!("{prefix}.public.{t}"), 2);
    }
    let slot = format!("{db}_slot");
    let _slot_guard = SlotGuard { db: db.clone(), slot: slot.clone() };
    let src = source(&db);
    let brokers = kafka.bootstrap();
    let writers = Writers::start(&db);
    std::thread::sleep(Duration::from_millis(300));

    // 1. The handoff creates the Routine Loads.
    let (_tmp, state) = out_dir();
    let mut handoff_args = strings(&[
        "--source",
        &src,
        "--out",
        arg(&state),
        "--brokers",
        &brokers,
        "--topic-prefix",
        prefix,
        "--slot",
        &slot,
        "--json",
        "--jobs",
        "2",
        "--create-tables",
        "--create-routine-loads",
    ]);
    handoff_args.extend(sr.args());
    let (code, doc, stderr) = run("handoff", &handoff_args);
    assert_eq!(code, Some(0), "{stderr}");
    let jobs = doc["routine_load_jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "created" && j["job_id"].is_string()), "{jobs:?}");

    // 2. Debezium on the handoff's slot, with the rendered config.
    let config = doc["debezium"]["config"].as_object().unwrap().clone();
    let dbz_options = || {
        let mut opts = DebeziumOptions::new(shared_cluster(), &db, &slot, &slot, prefix, &brokers);
        for (k, v) in config.iter().filter(|(k, _)| !k.starts_with("database.") && *k != "name") {
            opts = opts.with_property(k.clone(), v.as_str().unwrap().to_owned());
        }
        opts
    };
    let mut dbz = Debezium::start(dbz_options());

    let mut status_args = strings(&["--source", &src, "--state", arg(&state), "--json"]);
    status_args.extend(sr.args());
    // 3. Status while the writers run: a verdict per table, lagging or caught up.
    std::thread::sleep(Duration::from_secs(2));
    let (code, s, stderr) = run("status", &status_args);
    assert!(matches!(code, Some(0) | Some(6)), "{code:?} {stderr}");
    assert_eq!(s["tables"].as_array().map(Vec::len), Some(2), "{s}");
    for t in s["tables"].as_array().unwrap() {
        assert!(["caught_up", "lagging"].contains(&t["verdict"].as_str().unwrap()), "{t}");
    }

    // 4. The gate holds: Debezium stops, the application writes once more and stops; T is
    // read after that write, and status is not caught up for cutover (the connector has not
    // processed T), whatever the Routine Loads say.
    let committed = writers.stop();
    assert!(committed > 10, "the writers committed {committed} transactions");
    // Debezium is stopped once it is idle (its forwarded count stays put and every Routine
    // Load is caught up); an interrupted batch is sent again by the next connector.
    let mut until_loaded = status_args.clone();
    until_loaded.extend(strings(&["--until-caught-up", "--timeout", "50"]));
    let started = Instant::now();
    let mut last = (dbz.forwarded(), Instant::now());
    while last.1.elapsed() < Duration::from_secs(3) {
        assert!(started.elapsed() < Duration::from_secs(120), "Debezium never went idle");
        std::thread::sleep(Duration::from_millis(200));
        if dbz.forwarded() != last.0 {
            last = (dbz.forwarded(), Instant::now());
        }
    }
    let (code, s, stderr) = run("status", &until_loaded);
    assert_eq!(code, Some(0), "{s}\n{stderr}");
    dbz.stop_interrupting();
    // T is read inside the last write's transaction: the shared cluster's other databases keep
    // writing WAL, which this connector's slot never confirms (see the README's status
    // section), so T must not lie past this database's last commit.
    let t = sql(
        &db,
        "BEGIN; INSERT INTO orders VALUES (8888888, 1, 1.00, 'last', '{}', '2026-06-01'); \
         SELECT pg_current_wal_insert_lsn(); COMMIT;",
    );
    let t = t
        .lines()
        .find(|l| l.contains('/'))
        .unwrap_or_else(|| panic!("no LSN in {t:?}"))
        .trim()
        .to_owned();
    let mut at_t = status_args.clone();
    at_t.extend(strings(&["--cutover-lsn", &t]));
    let (code, s, stderr) = run("status", &at_t);
    assert_eq!(code, Some(6), "{s}\n{stderr}");
    assert_eq!(s["caught_up_for_cutover"], false, "{s}");
    assert_eq!(s["verdict"], "lagging", "{s}");

    // Debezium again, on the same slot (it continues from the slot's position): caught up
    // for cutover at T.
    let mut dbz = Debezium::start(dbz_options());
    let started = Instant::now();
    let mut until = at_t.clone();
    until.extend(strings(&["--until-caught-up", "--timeout", "50"]));
    let (code, s, stderr) = run("status", &until);
    assert_eq!(code, Some(0), "{s}\n{stderr}");
    assert_eq!(s["verdict"], "caught_up", "{s}");
    assert_eq!(s["caught_up_for_cutover"], true, "{s}");
    eprintln!("caught up for cutover {:?} after Debezium restarted", started.elapsed());

    // 5. Verify: equal, and final (at the same cutover point: the shared cluster's WAL moves
    // on with other tests' writes, so a new one would wait for the next heartbeat).
    let mut verify_args = sr.job_args(&src, &state, &["--full", "--cutover-lsn", &t]);
    verify_args.retain(|a| a != "--create-tables");
    let (code, v, stderr) = run("verify", &verify_args);
    assert_eq!(code, Some(0), "{v}\n{stderr}");
    assert_eq!(v["verdict"], "equal", "{v}");
    let rows: u64 =
        v["tables"].as_array().unwrap().iter().map(|t| t["rows_source"].as_u64().unwrap()).sum();
    assert!(rows > 3000, "{v}");

    // A row changed in StarRocks behind pgsnap's back: exactly that table and key.
    let key = sql(&db, "SELECT min(id) FROM orders");
    assert!(sr.double.update_cell(
        SR_DB,
        "orders",
        &[key.as_str()],
        "status",
        Some("tampered".into())
    ));
    let (code, v, stderr) = run("verify", &verify_args);
    assert_eq!(code, Some(1), "{v}\n{stderr}");
    assert_eq!(v["verdict"], "different");
    let different: Vec<&Value> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["differences"].as_array().is_some_and(|d| !d.is_empty()))
        .collect();
    assert_eq!(different.len(), 1, "{v}");
    assert_eq!(different[0]["source"], "public.orders", "{v}");
    assert_eq!(
        different[0]["differences"],
        serde_json::json!([{"key": {"id": key}, "kind": "different", "columns": ["status"]}])
    );

    // A rerun of the handoff finds the jobs it created.
    let (code, again, stderr) = run("handoff", &handoff_args);
    assert_eq!(code, Some(0), "{stderr}");
    let jobs = again["routine_load_jobs"].as_array().unwrap();
    assert!(jobs.iter().all(|j| j["status"] == "already_there"), "{jobs:?}");

    // A row that cannot be loaded pauses its job: status says so, with the reason and the
    // remedy, and --until-caught-up fails at once.
    sql(&db, "INSERT INTO orders (id, customer, placed) VALUES (9999999, 1, 'infinity')");
    let started = Instant::now();
    let s = loop {
        let (code, s, _) = run("status", &status_args);
        if s["verdict"] == "paused" {
            assert_eq!(code, Some(1), "{s}");
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not paused: {s}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let orders =
        s["tables"].as_array().unwrap().iter().find(|t| t["source"] == "public.orders").unwrap();
    assert_eq!(orders["verdict"], "paused", "{orders}");
    assert!(orders["routine_load"]["reason"].is_string(), "{orders}");
    assert!(orders["routine_load"]["rows_filtered"].as_u64() >= Some(1), "{orders}");
    let started = Instant::now();
    let mut until = status_args.clone();
    until.extend(strings(&["--until-caught-up", "--timeout", "50"]));
    let (code, s, stderr) = run("status", &until);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let orders =
        s["tables"].as_array().unwrap().iter().find(|t| t["source"] == "public.orders").unwrap();
    let remedy = orders["remedy"].as_str().unwrap_or_default();
    assert!(
        remedy.contains("ALTER ROUTINE LOAD") && remedy.contains("RESUME will not bring them back"),
        "{orders}"
    );

    dbz.stop_interrupting();
}

/// Drops the test's replication slot when the test ends, passed or failed (a slot left on the
/// shared cluster would hold its WAL).
struct SlotGuard {
    db: String,
    slot: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            sql(
                &self.db,
                &format!(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                     WHERE slot_name = '{0}' AND active_pid IS NOT NULL; \
                     SELECT pg_sleep(0.2); \
                     SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE slot_name = '{0}'",
                    self.slot
                ),
            )
        });
    }
}

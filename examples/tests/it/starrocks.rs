//! `migrate_to_starrocks` as a black box, loading the in-process StarRocks test double
//! (`pgsnap_test_support::starrocks`): the `--json` report and the state directory, the exit
//! codes with their messages, and kill -9 then `--resume` without a row loaded twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pgsnap_test_support::starrocks::{Cell, Fault, FaultFilter, KeysType, table_def};
use pgsnap_test_support::unique_db;
use serde_json::Value;

use crate::support::*;

/// A command running `migrate_to_starrocks` with `args`, the password variable set to
/// `password` (unset for `None`).
fn migrate(args: &[String], password: Option<&str>) -> Command {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = example_command(MIGRATE_TO_STARROCKS, &refs);
    cmd.env_remove(PASSWORD_VAR);
    if let Some(p) = password {
        cmd.env(PASSWORD_VAR, p);
    }
    cmd
}

/// Runs `migrate_to_starrocks` with the right password.
#[track_caller]
fn run_migrate(args: &[String]) -> Output {
    run_cmd(migrate(args, Some(PASSWORD)))
}

/// An error exit: the code, stdout empty even with --json (the error is on stderr), and
/// stderr mentions every one of `needles`.
#[track_caller]
fn expect_error(r: &Output, code: i32, needles: &[&str]) {
    r.expect_code(code);
    assert_eq!(r.stdout, "", "stdout holds nothing on an error exit\nstderr: {}", r.stderr);
    for needle in needles {
        assert!(r.stderr.contains(needle), "stderr does not mention {needle:?}:\n{}", r.stderr);
    }
}

/// Replication slots of `db` (a failed run must leave none: its temporary slot goes with it).
#[track_caller]
fn expect_no_slots(db: &str) {
    wait_until("no replication slot left", Duration::from_secs(10), || {
        sql(db, &format!("SELECT count(*) FROM pg_replication_slots WHERE database = '{db}'"))
            == "0"
    });
}

/// `SELECT count(*)` of a PostgreSQL table.
fn pg_count(db: &str, table: &str) -> u64 {
    sql(db, &format!("SELECT count(*) FROM {table}")).parse().unwrap()
}

/// The labels of a manifest's done chunks of every table.
fn done_labels(m: &Value) -> BTreeSet<String> {
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["chunks"].as_array().unwrap().clone())
        .filter(|c| c["done"] == true)
        .flat_map(|c| c["load"]["labels"].as_array().cloned().unwrap_or_default())
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

/// A database with the shapes the StarRocks contract talks about: a table with a primary key
/// split into several chunks, one without (with duplicate rows), a partitioned table with two
/// partitions, and hostile text (tabs, newlines, CR, quotes, commas, backslashes, NULL next to
/// the empty string, unicode) in each.
fn contract_db() -> String {
    let db = unique_db("x_sr_contract");
    sql(
        &db,
        r#"CREATE TABLE orders (id int PRIMARY KEY, note text, qty bigint);
         INSERT INTO orders SELECT g, 'order ' || g || ' ' || md5(g::text), g * 7 FROM generate_series(1, 6000) g;
         INSERT INTO orders VALUES
             (-1, E'tab\there', NULL), (-2, E'new\nline', 0), (-3, E'cr\r\nlf', -9223372036854775808),
             (-4, '', 1), (-5, NULL, 2), (-6, 'quote " and, comma', 3), (-7, E'back\\slash \\N', 4),
             (-8, 'ünïcødé ✓ 日本語 🦀', 5), (-9, '  padded  ', 6), (-10, '"', 7), (-11, E'\\', 8);
         CREATE TABLE events (kind text, payload text);
         INSERT INTO events VALUES ('a', 'x'), ('a', 'x'), ('b', NULL), ('b', ''), ('c', E'\t'),
             (NULL, 'no kind'), ('', ''), ('d', E'multi\nline\ttext');
         CREATE TABLE parted (id int NOT NULL, region text NOT NULL, note text) PARTITION BY LIST (region);
         CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
         CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
         INSERT INTO parted SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'p' || g FROM generate_series(1, 400) g;
         INSERT INTO parted VALUES (1000, 'eu', E'x\ty'), (1001, 'us', NULL), (1002, 'us', '');
         VACUUM ANALYZE;"#,
    );
    db
}

/// The contract on a good run: exit 0; stdout is one JSON object with `status`, `snapshot`,
/// `state`, `database`, `run_id` and per table `status`, `rows`, `chunks`, `chunks_done`,
/// `target`, `rows_loaded`, `rows_filtered`, `loads`; every row read was loaded (rows_loaded
/// = rows = PostgreSQL's count); a partitioned table loads into one target named after its
/// parent; StarRocks holds exactly PostgreSQL's rows (hostile text intact, NULL apart from
/// the empty string, duplicates kept); no body byte reached the FE; every label carries the
/// run id; the state directory holds the manifest and nothing else; a second run into the
/// same `--state` without `--resume` is refused (exit 2) and loads nothing.
#[test]
fn contract_report_rows_and_state() {
    let db = contract_db();
    let sr = Sr::start();
    let src = source(&db);
    let (_tmp, state) = out_dir();
    let args =
        sr.job_args(&src, &state, &["--create-tables", "--jobs", "2", "--chunk-size", "64kB"]);
    let r = run_migrate(&args);
    r.expect_code(0);
    let report = r.json();
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["state"], arg(&state));
    assert_eq!(report["database"], SR_DB);
    assert!(report["error"].is_null(), "{report:#}");
    let s = &report["snapshot"];
    assert!(s["name"].as_str().is_some_and(|n| !n.is_empty()), "snapshot.name: {s}");
    assert_eq!(s["mode"], "slot", "{s}");
    let run_id = report["run_id"].as_str().expect("run_id").to_owned();
    assert_eq!(run_id.len(), 36, "a UUID: {run_id}");

    assert_eq!(table_names(&report), ["public.events", "public.orders", "public.parted"]);
    for t in report["tables"].as_array().unwrap() {
        for k in [
            "schema",
            "name",
            "status",
            "rows",
            "chunks",
            "chunks_done",
            "target",
            "rows_loaded",
            "rows_filtered",
            "loads",
        ] {
            assert!(t.get(k).is_some(), "report table without {k}: {t}");
        }
        let name = t["name"].as_str().unwrap();
        assert_eq!(t["status"], "ok", "{t}");
        assert!(t["error"].is_null(), "{t}");
        assert_eq!(t["target"], name, "public.{name} loads into {name}");
        let rows = pg_count(&db, name);
        assert_eq!(t["rows"].as_u64(), Some(rows), "{t}");
        assert_eq!(t["rows_loaded"].as_u64(), Some(rows), "{t}");
        assert_eq!(t["rows_filtered"].as_u64(), Some(0), "{t}");
        assert_eq!(t["chunks_done"], t["chunks"], "{t}");
        // One load per chunk with rows (none for an empty chunk); each committed once.
        let committed: Vec<_> =
            sr.committed().into_iter().filter(|l| l.table.eq_ignore_ascii_case(name)).collect();
        assert_eq!(t["loads"].as_u64(), Some(committed.len() as u64), "{t}");
        assert!(committed.len() as u64 <= t["chunks"].as_u64().unwrap(), "{t}");
        assert_eq!(committed.iter().map(|l| l.loaded_rows).sum::<u64>(), rows, "{t}");
    }
    let orders = table(&report, "public", "orders");
    assert!(orders["chunks"].as_u64().unwrap() > 2, "orders is split: {orders}");

    // One target per source table; the partitions load into their parent's.
    assert_eq!(sr.tables(), BTreeSet::from(["events".into(), "orders".into(), "parted".into()]));
    let parted_report = table(&report, "public", "parted");
    assert!(parted_report["chunks"].as_u64().unwrap() >= 2, "both partitions read");

    // Exactly PostgreSQL's rows, value for value.
    for (t, cols, query) in [
        ("orders", &["id", "note", "qty"][..], "SELECT id::text, note, qty::text FROM orders"),
        ("events", &["kind", "payload"][..], "SELECT kind, payload FROM events"),
        ("parted", &["id", "region", "note"][..], "SELECT id::text, region, note FROM parted"),
    ] {
        let got = sr.rows(t, cols);
        let want = sr.pg_rows(&db, query);
        assert_eq!(got.len(), want.len(), "rows of {t}");
        assert!(got == want, "{t}: StarRocks rows differ from PostgreSQL's");
    }
    let events = sr.rows("events", &["kind", "payload"]);
    assert!(events.contains(&vec![Some("b".into()), None]), "NULL stays NULL: {events:?}");
    assert!(events.contains(&vec![Some("b".into()), Some(String::new())]), "'' stays ''");

    assert_eq!(sr.double.fe_body_bytes(), 0, "a body byte reached the FE");
    let prefix = format!("pgsnap-{run_id}-");
    for l in sr.double.loads() {
        assert!(l.label.starts_with(&prefix), "label {} is not of run {run_id}", l.label);
        assert_eq!(l.db, SR_DB);
    }

    // The state: the manifest (the same run, every chunk done with its labels), no data.
    assert_eq!(files_under(&state), ["manifest.json"]);
    let m = manifest(&state);
    assert_eq!(m["run_id"], run_id.as_str());
    assert_eq!(m["snapshot"], report["snapshot"]);
    assert_eq!(done_chunks(&m), all_chunks(&m));
    let labels: BTreeSet<String> = sr.committed().into_iter().map(|l| l.label).collect();
    assert_eq!(done_labels(&m), labels, "the manifest records every committed label");
    let loads_before = sr.double.loads().len();

    // Again into the same state without --resume: refused, nothing loaded, state untouched.
    let r = run_migrate(&args);
    expect_error(&r, 2, &["--state", "not empty", "--resume"]);
    assert_eq!(sr.double.loads().len(), loads_before, "a refused run loaded something");
    assert_eq!(manifest(&state), m);

    // --resume with an option that changes the labels: refused, naming the option.
    let mut other_prefix = args.clone();
    other_prefix.extend(strings(&["--resume", "--label-prefix", "other"]));
    let r = run_migrate(&other_prefix);
    expect_error(&r, 2, &["--resume", "label_prefix=other"]);

    // A new run (new state) into targets that already hold the rows: the Duplicate Key
    // table (`events` has no primary key) would get a second copy, so it is refused before
    // anything is loaded (and its slot dropped); Primary Key tables alone only get a warning.
    let (_tmp2, state2) = out_dir();
    let fresh = with_flag(&args, "--state", arg(&state2));
    let r = run_migrate(&fresh);
    expect_error(&r, 3, &["events", "--allow-existing-rows"]);
    assert_eq!(sr.double.loads().len(), loads_before, "a refused run loaded something");
    expect_no_slots(&db);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Replaces the value of `flag` in `args`.
fn with_flag(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut v = args.to_vec();
    let i = v.iter().position(|a| a == flag).unwrap_or_else(|| panic!("no {flag} in {v:?}"));
    v[i + 1] = value.to_owned();
    v
}

/// Exit codes 2 and 3 before any row is loaded, and 1 when StarRocks or the sink refuses
/// rows of some tables: a missing password variable (2), a wrong password, an unknown
/// database, an unreachable FE HTTP or MySQL address, a missing table without
/// `--create-tables`, a type that cannot be mapped under `--unrepresentable error` (3), each
/// naming the culprit on stderr and leaving no load, table or slot behind; then rows
/// StarRocks filters (an `ErrorURL` that serves the error log) and a NaN a DECIMAL cannot
/// hold (naming the column) fail their tables only (exit 1): the other table is loaded.
#[test]
fn exit_codes_name_the_culprit() {
    let db = unique_db("x_sr_errors");
    sql(
        &db,
        "CREATE TABLE good (id int PRIMARY KEY, v text);
         INSERT INTO good SELECT g, 'g' || g FROM generate_series(1, 500) g;
         CREATE TABLE price (id int PRIMARY KEY, amount numeric(10,2));
         INSERT INTO price VALUES (1, 1.50), (2, 'NaN'), (3, NULL);
         CREATE TABLE iv (id int, wait_span interval);
         INSERT INTO iv VALUES (1, '1 day 02:03:04'), (2, NULL), (3, '-5 mons');
         ANALYZE;",
    );
    let sr = Sr::start();
    let src = source(&db);
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut state = || {
        n += 1;
        tmp.path().join(format!("state{n}")).to_str().unwrap().to_owned()
    };
    let base = |state: String| -> Vec<String> {
        let mut v = sr.args();
        v.extend(strings(&["--source", &src, "--json", "--state", &state]));
        v
    };

    // 2: the password variable is not set.
    let r = run_cmd(migrate(&base(state()), None));
    expect_error(&r, 2, &[PASSWORD_VAR]);
    // 3: a wrong password.
    let r = run_cmd(migrate(&base(state()), Some("not-the-password")));
    expect_error(&r, 3, &[&format!("user \"{USER}\"")]);
    // 3: an unknown database.
    let r = run_migrate(&with_flag(&base(state()), "--database", "nosuchdb"));
    expect_error(&r, 3, &["nosuchdb", "does not exist"]);
    // 3: nothing listens at the FE's HTTP address, or at its MySQL address.
    let port = closed_port();
    let r = run_migrate(&with_flag(&base(state()), "--fe", &format!("http://127.0.0.1:{port}")));
    expect_error(&r, 3, &[&format!("127.0.0.1:{port}")]);
    let port = closed_port();
    let r = run_migrate(&with_flag(&base(state()), "--fe-sql", &format!("127.0.0.1:{port}")));
    expect_error(&r, 3, &[&format!("127.0.0.1:{port}")]);
    // 3: a target table is missing and --create-tables is not given. With a permanent
    // --slot (and publication) for a handoff, the failed preflight drops what it created.
    let mut args = base(state());
    args.extend(strings(&[
        "--slot",
        "x_sr_errors_slot",
        "--publication",
        "x_sr_errors_pub",
        "--include",
        "good",
    ]));
    let r = run_migrate(&args);
    expect_error(&r, 3, &[SR_DB, "--create-tables"]);
    expect_no_slots(&db);
    assert_eq!(sql(&db, "SELECT count(*) FROM pg_publication"), "0", "publication left behind");
    let r = run_migrate(&base(state()));
    expect_error(&r, 3, &[SR_DB, "--create-tables"]);
    assert!(
        ["good", "price", "iv"].iter().any(|t| r.stderr.contains(&format!("{SR_DB}.{t}"))),
        "the missing table is named: {}",
        r.stderr
    );
    // 3: an interval column under --unrepresentable error (checked before any table is made).
    let mut args = base(state());
    args.extend(strings(&["--create-tables", "--unrepresentable", "error"]));
    let r = run_migrate(&args);
    expect_error(&r, 3, &["wait_span", "interval"]);
    assert!(sr.tables().is_empty(), "a preflight failure created {:?}", sr.tables());
    assert!(sr.double.loads().is_empty(), "a preflight failure loaded {:?}", sr.double.loads());
    assert_eq!(sr.double.fe_body_bytes(), 0);
    expect_no_slots(&db);

    // 1: StarRocks filters the rows of `good` (an injected `too many filtered rows`), the
    // sink refuses the NaN of `price`; `iv` loads (its interval as PostgreSQL's text).
    sr.double.inject_filtered(
        Fault::TooManyFiltered,
        1,
        FaultFilter { table: Some("good".into()), ..FaultFilter::default() },
    );
    let mut args = base(state());
    args.push("--create-tables".into());
    let r = run_migrate(&args);
    r.expect_code(1);
    let report = r.json();
    assert_eq!(report["status"], "partial", "{report:#}");
    let good = table(&report, "public", "good");
    assert_eq!(good["status"], "failed", "{good}");
    let err = good["error"].as_str().expect("an error for good");
    assert!(err.contains("too many filtered rows") && err.contains("good"), "{err}");
    let file = err
        .split("_load_error_log?file=")
        .nth(1)
        .map(|s| s.split(|c: char| c.is_whitespace() || c == ')' || c == ';').next().unwrap())
        .unwrap_or_else(|| panic!("no ErrorURL in {err}"));
    assert!(sr.double.error_log(file).is_some(), "the ErrorURL serves no error log: {file}");
    assert!(r.stderr.contains("_load_error_log?file="), "stderr names the ErrorURL");
    let price = table(&report, "public", "price");
    assert_eq!(price["status"], "failed", "{price}");
    let err = price["error"].as_str().expect("an error for price");
    assert!(err.contains("\"amount\"") && err.contains("NaN"), "the column is named: {err}");
    assert!(r.stderr.contains("\"amount\""), "stderr names the column");
    let iv = table(&report, "public", "iv");
    assert_eq!(iv["status"], "ok", "{iv}");
    assert_eq!(iv["rows_loaded"].as_u64(), Some(3));
    // Intervals in Debezium's ISO form (the CDC leg's canonical form, pgsnap_sink_starrocks::canonical).
    assert_eq!(
        sr.rows("iv", &["id", "wait_span"]),
        vec![
            vec![Some("1".to_owned()), Some("P0Y0M1DT2H3M4S".to_owned())],
            vec![Some("2".to_owned()), None],
            vec![Some("3".to_owned()), Some("P0Y-5M0DT0H0M0S".to_owned())],
        ]
    );
    // The NaN comes after a good row in the one chunk of `price`: the load is aborted, not
    // committed with the rows before it.
    assert_eq!(sr.rows("price", &["id"]), Vec::<Vec<Cell>>::new(), "a failed chunk left rows");
    expect_no_slots(&db);
}

/// Starts the job and kills it with SIGKILL once `cond` holds for its manifest in `state`.
/// Returns the manifest after the kill, and checks the run was not complete.
fn kill_when(cmd: Command, state: &Path, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let (m, lived) = kill9_when(spawn_cmd(cmd), state, what, cond);
    eprintln!(
        "kill point {what}: killed after {lived:?} with {} of {} chunks done",
        done_chunks(&m),
        all_chunks(&m)
    );
    m
}

/// The key property: an external snapshot held by this test, writers changing the table all
/// along, kill -9 mid-run, then `--resume` to the end (exit 0). StarRocks then holds exactly
/// what `COPY` prints under the held snapshot — into a Duplicate Key table, which would keep
/// a chunk loaded twice — no label committed twice, every label of the first run's id, no
/// chunk recorded as done before the kill sent again, and a chunk committed but not yet
/// recorded at the kill sent again under its label and refused as already loaded.
#[test]
fn kill_9_and_resume_loads_every_row_once() {
    let db = unique_db("x_sr_kill");
    let rows = 100_000;
    create_big_table(&db, "big", rows);
    let writers = Writers::start(&db, "big", 2, rows as i64);
    wait_until("writers", Duration::from_secs(10), || writers.ops() > 50);
    let held = HeldSnapshot::export(&db);

    let sr = Sr::start();
    sr.double.create_table(
        SR_DB,
        table_def(
            "big",
            KeysType::Duplicate,
            &["id"],
            &[
                ("id", "INT", false),
                ("v", "VARCHAR(1048576)", false),
                ("n", "VARCHAR(1048576)", true),
            ],
        ),
    );
    let src = source(&db);
    let (_tmp, state) = out_dir();
    let mut args = sr.job_args(
        &src,
        &state,
        &[
            "--jobs",
            "2",
            "--chunk-size",
            "256kB",
            "--throttle",
            "2MB",
            "--snapshot-mode",
            "external",
            "--snapshot",
            &held.name,
        ],
    );

    // Killed once StarRocks has committed a chunk the manifest does not record yet (it is
    // saved at most once a second): the resume sends that chunk again, under the same label,
    // and StarRocks' label check must keep it from loading twice.
    let unrecorded = |m: &Value| -> BTreeSet<String> {
        let done = done_labels(m);
        sr.committed().into_iter().map(|l| l.label).filter(|l| !done.contains(l)).collect()
    };
    let first = kill_when(
        migrate(&args, Some(PASSWORD)),
        &state,
        "a committed chunk not recorded yet",
        |m| done_chunks(m) >= 1 && !unrecorded(m).is_empty(),
    );
    let run_id = first["run_id"].as_str().expect("run_id").to_owned();
    let done_before = done_labels(&first);
    assert!(!done_before.is_empty());
    // (Empty only if a manifest save slipped in between the check and the kill.)
    let unrecorded_at_kill = unrecorded(&first);
    if unrecorded_at_kill.is_empty() {
        eprintln!("note: every committed chunk was recorded by the time of the kill");
    }
    let loads_at_kill = sr.double.loads().len();

    args.push("--resume".into());
    let r = run_migrate(&args);
    r.expect_code(0);
    let report = r.json();
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["run_id"], run_id.as_str(), "the resumed run keeps the run id");
    let ops = writers.stop();
    assert!(ops > 100, "the writers barely ran ({ops} statements)");

    // Exactly the rows of the held snapshot, each once.
    let want = {
        let mut v = copy_lines(&db, "big", Some(&held.name));
        v.sort();
        v
    };
    let got: Vec<String> = sr
        .rows("big", &["id", "v", "n"])
        .into_iter()
        .map(|r| r.into_iter().map(|c| c.expect("no NULL in big")).collect::<Vec<_>>().join("\t"))
        .collect();
    assert_eq!(got.len(), want.len(), "rows in StarRocks vs COPY under the held snapshot");
    assert!(got == want, "StarRocks rows differ from COPY under the held snapshot");
    let mut current = copy_lines(&db, "big", None);
    current.sort();
    assert!(current != want, "the writers changed nothing: the snapshot was not tested");
    let big = table(&report, "public", "big");
    assert_eq!(big["rows"].as_u64(), Some(want.len() as u64), "{big}");
    assert_eq!(big["rows_loaded"].as_u64(), Some(want.len() as u64), "{big}");

    // No label committed twice; every label is of the first run's id.
    let loads = sr.double.loads();
    let mut per_label: BTreeMap<&str, usize> = BTreeMap::new();
    for l in loads.iter().filter(|l| l.status == "Success" || l.status == "Publish Timeout") {
        *per_label.entry(&l.label).or_default() += 1;
    }
    let twice: Vec<_> = per_label.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "labels committed more than once: {twice:?}");
    let committed_rows: u64 = loads
        .iter()
        .filter(|l| l.status == "Success" || l.status == "Publish Timeout")
        .map(|l| l.loaded_rows)
        .sum();
    assert_eq!(committed_rows, want.len() as u64);
    let prefix = format!("pgsnap-{run_id}-");
    for l in &loads {
        assert!(l.label.starts_with(&prefix), "label {} is not of run {run_id}", l.label);
    }
    // Chunks recorded as done before the kill were not sent again; chunks committed but not
    // recorded were, under their label, which StarRocks answered as already loaded.
    let resumed = &loads[loads_at_kill..];
    for l in resumed {
        assert!(!done_before.contains(&l.label), "chunk {} was done, yet sent again", l.label);
    }
    for label in &unrecorded_at_kill {
        let again: Vec<_> = resumed.iter().filter(|l| &l.label == label).collect();
        assert!(!again.is_empty(), "unrecorded chunk {label} was not sent again");
        assert!(
            again.iter().all(|l| l.status != "Success" && l.status != "Publish Timeout"),
            "unrecorded chunk {label} was committed again: {again:?}"
        );
    }
    let m = manifest(&state);
    assert_eq!(m["run_id"], run_id.as_str());
    assert_eq!(done_chunks(&m), all_chunks(&m));
    assert_eq!(all_chunks(&m), all_chunks(&first), "the plan did not change");
    assert_eq!(files_under(&state), ["manifest.json"]);
    assert_eq!(sr.double.fe_body_bytes(), 0);
    drop(held);
}

/// `--transactions`: every chunk is one committed transaction (label `…-t`), the rows arrive
/// exactly, and a resume in the other mode is refused (labels would not match).
#[test]
fn transactions_mode_loads_and_keeps_its_mode_on_resume() {
    let db = unique_db("x_sr_txn");
    sql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, repeat('x', g % 50) FROM generate_series(1, 3000) g; ANALYZE;",
    );
    let sr = Sr::start();
    let src = source(&db);
    let (_tmp, state) = out_dir();
    let args = sr.job_args(
        &src,
        &state,
        &["--create-tables", "--transactions", "--chunk-size", "32kB", "--max-load-bytes", "8kB"],
    );
    let r = run_migrate(&args);
    r.expect_code(0);
    let report = r.json();
    let t = table(&report, "public", "t");
    assert_eq!(t["rows_loaded"].as_u64(), Some(3000), "{t}");
    assert_eq!(t["loads"].as_u64(), t["chunks"].as_u64(), "one transaction per chunk: {t}");
    assert!(sr.committed().is_empty(), "no plain Stream Load: {:?}", sr.committed());
    let visible: Vec<String> = {
        let cat = sr.double.catalog().lock();
        cat.databases[SR_DB]
            .txns
            .values()
            .filter(|x| x.state == pgsnap_test_support::starrocks::TxnState::Visible)
            .map(|x| x.label.clone())
            .collect()
    };
    assert_eq!(visible.len() as u64, t["chunks"].as_u64().unwrap(), "{visible:?}");
    assert!(visible.iter().all(|l| l.ends_with("-t")), "{visible:?}");
    assert_eq!(
        sr.rows("t", &["id", "v"]),
        sr.pg_rows(&db, "SELECT id::text, v FROM t ORDER BY id"),
        "rows differ"
    );
    let without: Vec<String> = args.iter().filter(|a| *a != "--transactions").cloned().collect();
    let mut resume = without;
    resume.push("--resume".into());
    let r = run_migrate(&resume);
    expect_error(&r, 2, &["--resume", "transactions=false"]);
}

//! `verify` as a black box after `migrate_to_starrocks` into the StarRocks test double: the
//! `--json` contract (`verdict`, `tables[]` with `source`, `target`, `rows_source`,
//! `rows_target`, `compared`, `differences` [{`key`, `kind`, `columns`}]), exit 6 for equal
//! data without CDC evidence, exit 1 naming exactly the table and key changed behind the
//! migration's back, and the usage and connection exits.

use pgsnap_test_support::unique_db;
use serde_json::{Value, json};

use crate::support::*;

fn run_verify(args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = example_command(VERIFY, &refs);
    cmd.env(PASSWORD_VAR, PASSWORD);
    run_cmd(cmd)
}

/// A new database of the shared cluster set up with `setup`.
fn unique_db_with(prefix: &str, setup: &str) -> String {
    let db = unique_db(prefix);
    sql(&db, setup);
    db
}

fn table<'a>(report: &'a Value, source: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == source)
        .unwrap_or_else(|| panic!("no table {source} in {report:#}"))
}

#[test]
fn verify_after_a_migration_then_after_drift() {
    let db = unique_db_with(
        "x_verify",
        r#"CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2), at timestamptz,
             doc jsonb, ok boolean, ratio double precision);
         INSERT INTO items SELECT g, 'item ' || g || ' ✓', g * 1.5, TIMESTAMPTZ '2024-01-01 00:00:00+03' + g * INTERVAL '1 hour',
             jsonb_build_object('g', g, 'tags', ARRAY['a', 'b']), g % 2 = 0, CASE WHEN g = 3 THEN 'NaN' ELSE g / 3.0 END
           FROM generate_series(1, 500) g;
         CREATE TABLE notes (body text);
         INSERT INTO notes VALUES ('x'), ('y'), ('x');
         ANALYZE;"#,
    );
    let sr = Sr::start();
    let src = source(&db);
    let (_tmp, state) = out_dir();
    let migrate_args = sr.job_args(&src, &state, &["--create-tables"]);
    let refs: Vec<&str> = migrate_args.iter().map(String::as_str).collect();
    let mut migrate = example_command(MIGRATE_TO_STARROCKS, &refs);
    migrate.env(PASSWORD_VAR, PASSWORD);
    run_cmd(migrate).expect_code(0);

    // Equal data, but no CDC evidence: not_final, exit 6, no difference.
    let args = sr.job_args(&src, &state, &["--full", "--rows", "64"]);
    let r = run_verify(&args);
    r.expect_code(6);
    let report = r.json();
    assert_eq!(report["verdict"], "not_final", "{report:#}");
    let items = table(&report, "public.items");
    assert_eq!(items["target"], format!("{SR_DB}.items"));
    assert_eq!(
        (items["rows_source"].as_u64(), items["rows_target"].as_u64()),
        (Some(500), Some(500))
    );
    assert_eq!(items["compared"], 500);
    assert_eq!(items["differences"], json!([]));
    let notes = table(&report, "public.notes");
    assert_eq!((notes["mode"].as_str(), notes["compared"].as_u64()), (Some("multiset"), Some(3)));

    // A row changed directly in StarRocks: exactly that table and key, the column named.
    assert!(sr.double.update_cell(SR_DB, "items", &["321"], "name", Some("tampered".into())));
    let r = run_verify(&args);
    r.expect_code(1);
    let report = r.json();
    assert_eq!(report["verdict"], "different");
    let different: Vec<&Value> =
        report["tables"].as_array().unwrap().iter().filter(|t| t["equal"] == false).collect();
    assert_eq!(different.len(), 1, "{report:#}");
    assert_eq!(different[0]["source"], "public.items");
    assert_eq!(
        different[0]["differences"],
        json!([{"key": {"id": "321"}, "kind": "different", "columns": ["name"]}])
    );

    // The default sample reads the first and the last ranges: the change at the last key is
    // found without --full; text on stderr names it too.
    assert!(sr.double.update_cell(SR_DB, "items", &["321"], "name", Some("item 321 ✓".into())));
    assert!(sr.double.update_cell(SR_DB, "items", &["500"], "ok", Some("0".into())));
    let mut text_args = sr.args();
    text_args.extend(["--source".to_owned(), src.clone(), "--rows".into(), "20".into()]);
    let r = run_verify(&text_args);
    r.expect_code(1);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("different {\"id\":\"500\"} columns ok"), "{}", r.stderr);
}

#[test]
fn verify_usage_and_unreachable_starrocks() {
    let db = unique_db_with("x_verify_exit", "CREATE TABLE t (id int PRIMARY KEY);");
    let sr = Sr::start();
    let src = source(&db);
    let mut args = sr.args();
    args.extend(["--source".to_owned(), src.clone(), "--rows".into(), "0".into()]);
    run_verify(&args).expect_code(2);
    let args: Vec<String> = [
        "--source",
        &src,
        "--fe",
        "http://127.0.0.1:9",
        "--fe-sql",
        "127.0.0.1:9",
        "--database",
        SR_DB,
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let r = run_verify(&args);
    r.expect_code(3);
    assert_eq!(r.stdout, "");
}

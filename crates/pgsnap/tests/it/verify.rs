//! The verify job against a real PostgreSQL and the StarRocks test double: a migrated table
//! of many types verifies equal (not final without cutover evidence), and drift written
//! straight into the double is reported by table, key, kind and column.

use pgsnap::starrocks::{LoadFormat, StarRocksSinkBuilder};
use pgsnap::{
    Connection, CutoverEvidence, DifferenceKind, MigrateJob, Outcome, RunControl, TableVerify,
    VerifyJob, VerifyMode, VerifyReport, VerifyVerdict,
};
use pgsnap_test_support::starrocks::{StarRocksDouble, StarRocksOptions};
use pgsnap_test_support::{shared_cluster, unique_db};
use serde_json::json;

use crate::support::*;

const DB: &str = "verified";

const TYPES: &str = r#"
CREATE TABLE all_types (
    id int PRIMARY KEY,
    i2 smallint, i8 bigint, b boolean, n numeric(20,6), nu numeric, f4 real, f8 double precision,
    t text, vc varchar(10), c char(3), d date, ts timestamp(3), tstz timestamptz,
    js json, jb jsonb, u uuid, by bytea, iv interval, ia int[], ta text[]
);
INSERT INTO all_types (id) VALUES (1);
INSERT INTO all_types VALUES (2, -32768, 9223372036854775807, true, 12345678901234.123456, 'NaN',
    1.5, 1234.5, E'tab\there\nnewline \\ back "quote" , comma \u00e9 \u65e5\u672c', '', 'ab',
    '2024-02-29', '2024-01-01 12:34:56.789', '2024-06-01 12:00:00+02',
    '{"z": [1, "x\"y"], "a": 2.50}', '{"b": null, "a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '\x00ff', '1 day 02:00:00', '{1,NULL,3}', '{"a b","c\"d",NULL}');
INSERT INTO all_types (id, t, vc, n, b, f4, f8) VALUES (3, '', NULL, 1.5, false, 'NaN', 'NaN');
INSERT INTO all_types (id, f8, nu, t) VALUES (4, '-Infinity', 'Infinity', '🦀 ünïcødé');
INSERT INTO all_types SELECT g, g, g * 1000, g % 2 = 0, g / 7.0, g, g / 3.0, g / 9.0, 'row ' || g,
    'v' || g, 'c', DATE '2020-01-01' + g, TIMESTAMP '2020-01-01' + g * INTERVAL '1 minute',
    TIMESTAMPTZ '2020-01-01 00:00:00+05' + g * INTERVAL '1 second', json_build_object('g', g),
    jsonb_build_object('g', g, 'h', ARRAY[g]), gen_random_uuid(), int4send(g), g * INTERVAL '1 hour',
    ARRAY[g, g + 1], ARRAY['x' || g] FROM generate_series(5, 300) g;
ANALYZE;
"#;

async fn double() -> StarRocksDouble {
    let d = StarRocksDouble::start(StarRocksOptions::default()).await;
    d.create_database(DB);
    d
}

fn starrocks(d: &StarRocksDouble) -> StarRocksSinkBuilder {
    StarRocksSinkBuilder::new(d.fe_url(), DB)
        .with_user(d.options().user.clone())
        .with_password(d.options().password.clone())
        .with_fe_sql(d.mysql_addr().to_string())
        .with_create_tables(true)
        .with_format(LoadFormat::Json)
}

/// A new database of the shared cluster set up with `setup`, migrated into the double.
async fn migrated(prefix: &str, setup: &str, d: &StarRocksDouble) -> String {
    let db = unique_db(prefix);
    shared_cluster().psql(&db, setup);
    let dir = tempfile::tempdir().unwrap();
    let report = MigrateJob::new(options(&db), starrocks(d))
        .with_state_dir(dir.path().join("state"))
        .run(&RunControl::new())
        .await
        .unwrap();
    assert_eq!(report.run.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    db
}

fn verify(db: &str, d: &StarRocksDouble) -> VerifyJob {
    VerifyJob::new(Connection::new(shared_cluster().conninfo(db)), starrocks(d))
}

async fn run(job: VerifyJob) -> VerifyReport {
    job.run(&RunControl::new()).await.unwrap()
}

fn table<'a>(r: &'a VerifyReport, name: &str) -> &'a TableVerify {
    r.tables.iter().find(|t| t.target == format!("{DB}.{name}")).unwrap_or_else(|| {
        panic!("no table {name} in {}", serde_json::to_string_pretty(r).unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_a_migration_of_many_types_is_equal_and_drift_is_named() {
    let d = double().await;
    let db = migrated("lib_verify_types", TYPES, &d).await;

    // Without evidence that CDC caught up: no difference, but not final.
    let r = run(verify(&db, &d).with_mode(VerifyMode::Full).with_range_rows(7)).await;
    let t = table(&r, "all_types");
    assert_eq!(r.verdict, VerifyVerdict::NotFinal, "{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(r.not_final.as_deref().is_some_and(|w| w.contains("caught up")), "{:?}", r.not_final);
    assert_eq!((t.rows_source, t.rows_target, t.compared), (300, 300, 300));
    assert!(t.differences.is_empty() && t.equal && t.not_compared.is_none(), "{t:?}");
    assert!(t.ranges == 1 && t.mode == "full");

    // With evidence: equal; not caught up: not final, the lag seen in the report.
    let caught_up = CutoverEvidence::new(true, json!({"lag": 0}));
    let r = run(verify(&db, &d).with_mode(VerifyMode::Full).with_cutover(Some(caught_up))).await;
    assert_eq!(r.verdict, VerifyVerdict::Equal);
    let lagging = CutoverEvidence::new(false, json!({"lag": {"all_types": 42}}));
    let r = run(verify(&db, &d).with_mode(VerifyMode::Full).with_cutover(Some(lagging))).await;
    assert_eq!(r.verdict, VerifyVerdict::NotFinal);
    let j = r.to_json();
    assert_eq!(j["cutover"]["detail"]["lag"]["all_types"], 42);
    assert!(j["not_final"].as_str().unwrap().contains("42"), "{j}");

    // Drift straight into StarRocks: a changed value, a deleted row, an added row.
    assert!(d.update_cell(DB, "all_types", &["2"], "jb", Some(r#"{"a":1,"b":false}"#.into())));
    assert!(d.update_cell(DB, "all_types", &["150"], "n", Some("21.430000".into())));
    assert!(d.delete_row(DB, "all_types", &["77"]));
    let mut extra = vec![None; 21];
    extra[0] = Some("1000".to_owned());
    d.insert_row(DB, "all_types", extra);
    let r = run(verify(&db, &d).with_mode(VerifyMode::Full).with_range_rows(50)).await;
    assert_eq!(r.verdict, VerifyVerdict::Different);
    let t = table(&r, "all_types");
    assert_eq!((t.rows_source, t.rows_target), (300, 300));
    let found: Vec<_> =
        t.differences.iter().map(|d| (d.kind, d.key.clone(), d.columns.clone())).collect();
    assert_eq!(
        found,
        [
            (DifferenceKind::Missing, json!({"id": "77"}), vec![]),
            (DifferenceKind::Extra, json!({"id": "1000"}), vec![]),
            (DifferenceKind::Different, json!({"id": "2"}), vec!["jb".to_owned()]),
            (DifferenceKind::Different, json!({"id": "150"}), vec!["n".to_owned()]),
        ]
    );
    let j = r.to_json();
    assert_eq!(j["verdict"], "different");
    assert_eq!(
        j["tables"][0]["differences"][0],
        json!({"key": {"id": "77"}, "kind": "missing", "columns": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_mode_reads_the_first_and_last_ranges_and_tables_without_a_key_by_count() {
    let d = double().await;
    let db = migrated(
        "lib_verify_sample",
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
         CREATE TABLE small_log (kind text, n numeric(6,2));
         INSERT INTO small_log VALUES ('a', 1.5), ('a', 1.5), ('b', NULL), (NULL, 2);
         CREATE TABLE big_log (kind text);
         INSERT INTO big_log SELECT 'k' || g FROM generate_series(1, 40) g;
         ANALYZE;",
        &d,
    )
    .await;
    // Drift at the first and last keys and in the middle, which two spread ranges of 10 rows
    // (at rows 667 and 1334) never read.
    assert!(d.update_cell(DB, "big", &["1"], "v", Some("first".into())));
    assert!(d.update_cell(DB, "big", &["2000"], "v", Some("last".into())));
    assert!(d.update_cell(DB, "big", &["1000"], "v", Some("middle".into())));
    d.insert_row(DB, "big", vec![Some("5000".into()), Some("beyond".into())]);
    d.insert_row(DB, "small_log", vec![Some("a".into()), Some("1.50".into())]);
    let r = run(verify(&db, &d).with_mode(VerifyMode::Sample { ranges: 2, rows: 10 })).await;
    assert_eq!(r.verdict, VerifyVerdict::Different);
    let big = table(&r, "big");
    assert_eq!((big.mode, big.ranges, big.compared), ("sample", 4, 40));
    let keys: Vec<_> = big.differences.iter().map(|d| (d.kind, d.key["id"].clone())).collect();
    assert_eq!(
        keys,
        [
            (DifferenceKind::Extra, json!("5000")),
            (DifferenceKind::Different, json!("1")),
            (DifferenceKind::Different, json!("2000")),
        ]
    );
    // No key, one range: a multiset of rows (the third ('a', 1.5) is extra).
    let small = table(&r, "small_log");
    assert_eq!((small.mode, small.rows_source, small.rows_target), ("multiset", 4, 5));
    assert_eq!(small.differences.len(), 1);
    assert_eq!(small.differences[0].kind, DifferenceKind::Extra);
    assert_eq!(small.differences[0].key, json!({"kind": "a", "n": "1.50"}));
    // No key, more than a range: counted only, and why.
    let log = table(&r, "big_log");
    assert_eq!((log.mode, log.rows_source, log.rows_target), ("count", 40, 40));
    assert!(log.not_compared.as_deref().is_some_and(|w| w.contains("no primary key")), "{log:?}");
    assert!(log.equal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_composite_keys_are_read_in_the_same_order_on_both_sides() {
    let d = double().await;
    let db = migrated(
        "lib_verify_keys",
        r#"CREATE TABLE words (w text PRIMARY KEY, n int);
         INSERT INTO words VALUES ('b', 1), ('B', 2), ('a', 3), ('Z', 4), ('é', 5), ('ab', 6),
             ('a b', 7), ('', 8), (E'tab\there', 9), ('it''s', 10), (E'back\\slash', 11), ('🦀', 12);
         CREATE TABLE pairs (region text, id bigint, amount numeric(8,2), PRIMARY KEY (region, id));
         INSERT INTO pairs SELECT CASE g % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'EU' ELSE 'us' END, g, g / 4.0
             FROM generate_series(1, 50) g;
         CREATE TABLE amounts (k numeric(6,1) PRIMARY KEY, v text);
         INSERT INTO amounts VALUES (10.5, 'x'), (9.5, 'y'), (-1, 'z'), (100, 'w');
         ANALYZE;"#,
        &d,
    )
    .await;
    let r = run(verify(&db, &d).with_mode(VerifyMode::Full).with_range_rows(3)).await;
    assert_eq!(r.verdict, VerifyVerdict::NotFinal, "{}", serde_json::to_string_pretty(&r).unwrap());
    for (name, rows) in [("words", 12), ("pairs", 50), ("amounts", 4)] {
        let t = table(&r, name);
        assert!(t.equal && t.compared == rows, "{t:?}");
    }
    assert!(d.update_cell(DB, "pairs", &["EU", "4"], "amount", None));
    assert!(d.update_cell(DB, "words", &["it's"], "n", Some("99".into())));
    let r = run(verify(&db, &d).with_mode(VerifyMode::Full).with_range_rows(4)).await;
    let pairs = table(&r, "pairs");
    assert_eq!(pairs.differences.len(), 1);
    assert_eq!(pairs.differences[0].key, json!({"region": "EU", "id": "4"}));
    assert_eq!(pairs.differences[0].columns, ["amount"]);
    let words = table(&r, "words");
    assert_eq!(words.differences[0].key, json!({"w": "it's"}));
}

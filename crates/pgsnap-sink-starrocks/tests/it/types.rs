//! Every type of the snapshot issue's list arrives value-exact in the StarRocks test double,
//! in both body formats, or fails with the documented typed error naming the column.

use std::sync::Arc;

use pgsnap_core::RunStatus;
use pgsnap_sink_starrocks::{LoadFormat, Unrepresentable};

use crate::support::*;

const SETUP: &str = r#"
CREATE TABLE all_types (
    id int PRIMARY KEY,
    i2 smallint, i8 bigint, b boolean, n numeric(20,6), nu numeric, f4 real, f8 double precision,
    t text, vc varchar(10), c char(3), d date, ts timestamp(3), tstz timestamptz,
    js json, jb jsonb, u uuid, by bytea, iv interval, tm time, ia int[], ta text[],
    m money, ttz timetz, ip inet
);
INSERT INTO all_types (id) VALUES (1);
INSERT INTO all_types VALUES (2, -32768, 9223372036854775807, true, 12345678901234.123456, 'NaN',
    1.5, 1234.5, E'tab\there\nnewline \\ back "quote" , comma \u00e9 \u65e5\u672c', '', 'ab',
    '2024-02-29', '2024-01-01 12:34:56.789', '2024-06-01 12:00:00+02',
    '{"a": [1, "x\"y"]}', '{"b": null, "a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '\x00ff', '1 day 02:00:00', '12:34:56', '{1,NULL,3}', '{"a b","c\"d",NULL}',
    '$1,234.56', '04:05:06.5+02', '192.168.0.1/24');
INSERT INTO all_types (id, t, vc, n, b) VALUES (3, '', NULL, 1.5, false);
INSERT INTO all_types (id, t) VALUES (4, '"starts with a quote');
INSERT INTO all_types (id, f4, f8, nu, iv, m) VALUES
    (5, 'NaN', '-Infinity', 'Infinity', '-1 years -2 mons +3 days -04:05:06.5', '-$0.50');
"#;

fn expected(format: LoadFormat) -> Vec<Vec<String>> {
    let arrays = |json: [&str; 2], text: [&str; 2]| match format {
        LoadFormat::Json => json.map(str::to_owned),
        _ => text.map(str::to_owned),
    };
    let [ia, ta] =
        arrays(["[1,null,3]", r#"["a b","c\"d",null]"#], ["{1,NULL,3}", r#"{"a b","c\"d",NULL}"#]);
    let null = |n: usize| vec!["NULL".to_owned(); n];
    let row = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut r1 = vec!["1".to_owned()];
    r1.extend(null(24));
    let mut r2 = row(&[
        "2",
        "-32768",
        "9223372036854775807",
        "1",
        "12345678901234.123456",
        // Debezium's names for numeric's special values (the CDC leg's canonical form).
        "NAN",
        "1.5",
        "1234.5",
        "tab\there\nnewline \\ back \"quote\" , comma \u{e9} \u{65e5}\u{672c}",
        "",
        "ab ",
        "2024-02-29",
        "2024-01-01 12:34:56.789000",
        "2024-06-01 10:00:00",
        r#"{"a":[1,"x\"y"]}"#,
        r#"{"a":1,"b":null}"#,
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        // bytea, interval and time in Debezium's forms (crate::canonical).
        "00ff",
        "P0Y0M1DT2H0M0S",
        "12:34:56Z",
    ]);
    r2.push(ia);
    r2.push(ta);
    r2.extend(row(&["1234.56", "02:05:06.5Z", "192.168.0.1/24"]));
    // id, i2, i8, b, n, nu, f4, f8, t, vc, ...
    let mut r3 = row(&["3", "NULL", "NULL", "0", "1.500000", "NULL", "NULL", "NULL", "", "NULL"]);
    r3.extend(null(15));
    let mut r4 = row(&["4", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"]);
    r4.push("\"starts with a quote".to_owned());
    r4.extend(null(16));
    // id, i2, i8, b, n, nu, f4, f8, ..., iv (18), ..., m (22)
    let mut r5 =
        row(&["5", "NULL", "NULL", "NULL", "NULL", "POSITIVE_INFINITY", "NaN", "-Infinity"]);
    r5.extend(null(10));
    r5.push("P-1Y-2M3DT-4H-5M-6.5S".to_owned());
    r5.extend(null(3));
    r5.extend(row(&["-0.50", "NULL", "NULL"]));
    let mut rows = vec![r1, r2, r3, r4, r5];
    rows.sort();
    rows
}

/// Loads the table of every type in `format` (through the transaction interface when
/// `transactions`) and compares every value.
pub(crate) async fn every_type_arrives_exactly(format: LoadFormat, transactions: bool) {
    let db = pg_db("sr_types", SETUP);
    let d = double().await;
    let sink =
        Arc::new(builder(&d).with_format(format).with_transactions(transactions).build().unwrap());
    let report = load(&db, &sink, 1 << 20, 2).await;
    assert_eq!(report.status, RunStatus::Ok, "{:?} {:?}", report.fatal, report.tables);
    let got = sorted_rows(&d, "all_types");
    assert_eq!(got, expected(format), "format {format}");
    assert_eq!(d.fe_body_bytes(), 0, "no body byte may reach the FE");
    let m = &report.manifest.tables[0];
    let loaded: u64 = m.chunks.iter().filter_map(|c| c.load.as_ref()).map(|l| l.rows_loaded).sum();
    assert_eq!(loaded, 5);
    let commits = d.fe_requests().iter().filter(|r| r.path == "/api/transaction/commit").count();
    if transactions {
        assert!(commits > 0 && d.loads().is_empty(), "loaded in transactions, not Stream Load");
    } else {
        assert_eq!(commits, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_exactly_as_json() {
    every_type_arrives_exactly(LoadFormat::Json, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_exactly_as_csv() {
    every_type_arrives_exactly(LoadFormat::Csv, false).await;
}

/// A text value that is exactly `\N` cannot be told from NULL in CSV (an unenclosed `\N` is
/// NULL; whether StarRocks reads an enclosed `"\N"` as NULL is unconfirmed): a typed error
/// names the column and the table fails with nothing of it visible. JSON bodies carry it as
/// text (StarRocks' JSON scanner has no NULL string).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backslash_n_string_is_refused_in_csv_and_text_in_json() {
    let db = pg_db(
        "sr_bsn",
        r"CREATE TABLE t (id int PRIMARY KEY, s text); INSERT INTO t VALUES (1, E'\\N'), (2, NULL);",
    );
    let d = double().await;
    let sink = Arc::new(builder(&d).with_format(LoadFormat::Csv).build().unwrap());
    let report = load(&db, &sink, 1 << 20, 1).await;
    assert_ne!(report.status, RunStatus::Ok);
    let err = report.manifest.tables[0].error.clone().unwrap_or_default();
    assert!(err.contains("column \"s\""), "error names the column: {err}");
    assert!(err.contains("LoadFormat::Json"), "and the fix: {err}");
    assert!(d.rows(DB, "t").is_empty(), "nothing visible from the failed chunk");

    let d = double().await;
    let sink = Arc::new(builder(&d).with_format(LoadFormat::Json).build().unwrap());
    let report = load(&db, &sink, 1 << 20, 1).await;
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.tables);
    assert_eq!(
        sorted_rows(&d, "t"),
        vec![vec!["1".to_owned(), "\\N".to_owned()], vec!["2".to_owned(), "NULL".to_owned()]]
    );
}

/// Under `Unrepresentable::Error`, a type StarRocks cannot hold exactly fails `prepare`
/// with a typed error naming the table and column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrepresentable_types_can_be_refused() {
    let db = pg_db("sr_unrep", "CREATE TABLE t (id int PRIMARY KEY, iv interval);");
    let d = double().await;
    let sink = builder(&d).with_unrepresentable(Unrepresentable::Error).build().unwrap();
    let source =
        pgsnap_source::PgSourceBuilder::new(pgsnap_test_support::shared_cluster().conninfo(&db))
            .with_snapshot_mode(pgsnap_core::SnapshotMode::Export)
            .open()
            .await
            .unwrap();
    let schemas: Vec<_> = source.tables().iter().map(|t| t.schema.clone()).collect();
    let err = sink.prepare_tables(&schemas).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, pgsnap_sink_starrocks::Error::Mapping(_)), "{err:?}");
    assert!(msg.contains("iv") && msg.contains("interval"), "{msg}");
    source.close().await.unwrap();
}

/// A value that the chosen StarRocks type cannot hold (NaN in a bounded numeric) fails the
/// table with a typed error naming the column; the other tables load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_in_a_decimal_column_fails_its_table_only() {
    let db = pg_db(
        "sr_nan",
        "CREATE TABLE bad (id int PRIMARY KEY, price numeric(10,2)); INSERT INTO bad VALUES (1, 1.25), (2, 'NaN');
         CREATE TABLE good (id int PRIMARY KEY); INSERT INTO good SELECT generate_series(1, 10);",
    );
    let d = double().await;
    let sink = Arc::new(builder(&d).build().unwrap());
    let report = load(&db, &sink, 1 << 20, 2).await;
    assert_eq!(report.status, RunStatus::Partial);
    let bad = report.manifest.tables.iter().find(|t| t.schema.name.name == "bad").unwrap();
    let err = bad.error.clone().unwrap();
    assert!(err.contains("price"), "{err}");
    assert_eq!(d.rows(DB, "good").len(), 10);
    assert!(d.rows(DB, "bad").is_empty());
}

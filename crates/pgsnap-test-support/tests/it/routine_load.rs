//! Routine Load in the StarRocks test double: the pure evaluator (every conversion rule and
//! worst-case choice), the statements over `mysql_async`, and jobs against a real tansu broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::starrocks_mysql::server_error;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use pgsnap_test_support::kafka::{Record, Tansu};
use pgsnap_test_support::starrocks::{
    KeysType, MessageOutcome, RoutineLoadDef, RoutineLoadState, StarRocksDouble, StarRocksOptions,
    StarRocksVersion, TableDef, table_def,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A `CREATE ROUTINE LOAD` of the shape pgsnap renders, with `columns`, `jsonpaths` and extra
/// job properties (`"k" = "v"` lines).
fn statement(columns: &str, paths: &[&str], props: &[(&str, &str)]) -> String {
    let paths = serde_json::to_string(paths).unwrap();
    let mut all = vec![
        ("format".to_owned(), "json".to_owned()),
        ("strip_outer_array".to_owned(), "false".to_owned()),
        ("jsonpaths".to_owned(), paths),
    ];
    for (k, v) in props {
        all.retain(|(key, _)| key != k);
        all.push(((*k).to_owned(), (*v).to_owned()));
    }
    let props = all
        .iter()
        .map(|(k, v)| format!("  \"{k}\" = \"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "CREATE ROUTINE LOAD `db`.`job` ON `t`\nCOLUMNS ({columns})\nPROPERTIES (\n{props}\n)\n\
         FROM KAFKA (\n  \"kafka_broker_list\" = \"127.0.0.1:9\",\n  \"kafka_topic\" = \"t\",\n  \
         \"kafka_partitions\" = \"0\",\n  \"kafka_offsets\" = \"0\"\n);"
    )
}

fn parse(sql: &str) -> RoutineLoadDef {
    RoutineLoadDef::parse(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

fn parse_err(sql: &str) -> String {
    match RoutineLoadDef::parse(sql) {
        Ok(_) => panic!("accepted:\n{sql}"),
        Err(e) => e,
    }
}

/// What one message became, compactly: `Row(cells)` (NULL as `None`), `Filtered(reason)`, ...
#[derive(Debug, PartialEq)]
enum Out {
    Row(Vec<Option<String>>, bool),
    Filtered(String),
    NoRow,
    ParseError(String),
}

fn map(def: &RoutineLoadDef, table: &TableDef, value: Option<&str>) -> Out {
    match def.map_message(table, value.map(str::as_bytes)).unwrap() {
        MessageOutcome::Row(r) => Out::Row(r.cells, r.delete),
        MessageOutcome::Filtered(r) => Out::Filtered(r),
        MessageOutcome::NoRow => Out::NoRow,
        MessageOutcome::ParseError(e) => Out::ParseError(e),
    }
}

/// The outcome of `{"v": <json>}` mapped directly into a nullable column `v` of type `ty`:
/// `Ok(cell)` or `Err(filter reason)`.
fn direct(ty: &str, json: &str, strict: bool) -> Result<Option<String>, String> {
    let table = table_def("t", KeysType::Duplicate, &[], &[("v", ty, true)]);
    let strict = if strict { "true" } else { "false" };
    let def = parse(&statement("`v`", &["$.v"], &[("strict_mode", strict)]));
    match map(&def, &table, Some(&format!("{{\"v\": {json}}}"))) {
        Out::Row(cells, false) => Ok(cells[0].clone()),
        Out::Filtered(r) => Err(r),
        other => panic!("{ty} {json}: {other:?}"),
    }
}

/// A value the JSON scanner converts (same in both modes).
fn converts(ty: &str, json: &str, want: &str) {
    for strict in [false, true] {
        assert_eq!(
            direct(ty, json, strict),
            Ok(Some(want.to_owned())),
            "{ty} {json} strict={strict}"
        );
    }
}

/// A value whose conversion fails: NULL without strict mode, the row filtered with it.
fn fails(ty: &str, json: &str) {
    assert_eq!(direct(ty, json, false), Ok(None), "{ty} {json} non-strict");
    let reason = direct(ty, json, true).expect_err(&format!("{ty} {json} strict"));
    assert!(reason.contains("strict mode"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// The JSON scanner (direct columns)

#[test]
fn integers_from_the_json_scanner() {
    converts("INT", "42", "42");
    converts("INT", "4.7", "4"); // checked static_cast truncates
    converts("INT", "-4.7", "-4");
    converts("INT", "1e3", "1000");
    converts("INT", r#""42""#, "42"); // string_to_int
    converts("INT", r#""4.5""#, "4"); // then string_to_float and a cast
    converts("TINYINT", "-128", "-128");
    fails("TINYINT", "128");
    fails("INT", "99999999999");
    fails("BIGINT", "12345678901234567890");
    fails("INT", "true"); // Numeric type is required
    fails("INT", r#"{"a": 1}"#);
    fails("INT", r#""abc""#);
    fails("INT", r#"" 42""#); // worst case: no trimming
    fails("INT", r#""NaN""#);
    // LARGEINT goes through VARCHAR and CAST: only plain integers (worst case for 1.5).
    converts(
        "LARGEINT",
        "170141183460469231731687303715884105727",
        "170141183460469231731687303715884105727",
    );
    fails("LARGEINT", "1.5");
}

#[test]
fn floats_from_the_json_scanner() {
    converts("DOUBLE", "1.5", "1.5");
    converts("DOUBLE", "1.0E10", "10000000000");
    converts("DOUBLE", r#""NaN""#, "NaN");
    converts("DOUBLE", r#""nan""#, "NaN");
    converts("DOUBLE", r#""Infinity""#, "Infinity");
    converts("DOUBLE", r#""-Infinity""#, "-Infinity");
    converts("FLOAT", r#""inf""#, "Infinity");
    converts("FLOAT", "0.1", "0.1");
    fails("FLOAT", "1e39");
    fails("DOUBLE", "1e400");
    fails("DOUBLE", "true");
    fails("DOUBLE", r#""nanx""#);
}

#[test]
fn booleans_from_the_json_scanner() {
    converts("BOOLEAN", "true", "1");
    converts("BOOLEAN", "false", "0");
    converts("BOOLEAN", "0.5", "1");
    converts("BOOLEAN", "0", "0");
    converts("BOOLEAN", r#""7""#, "1");
    converts("BOOLEAN", r#""FALSE""#, "0");
    fails("BOOLEAN", r#""t""#); // PostgreSQL's t/f fail
    fails("BOOLEAN", "[1]");
}

#[test]
fn strings_from_the_json_scanner() {
    converts("VARCHAR(20)", r#""\\N""#, "\\N"); // no NULL check in the JSON scanner
    converts("VARCHAR(20)", "1.0E10", "1.0E10"); // the token as written
    converts("VARCHAR(20)", "-0", "-0");
    converts("VARCHAR(20)", "true", "1");
    converts("VARCHAR(40)", r#"{ "b" : 1, "a": "x\u00e9" }"#, r#"{"b":1,"a":"x\u00e9"}"#);
    converts("CHAR(10)", r#"[1, "a b"]"#, r#"[1,"a b"]"#);
    converts("VARCHAR(4)", r#""\u00e9\u00e9""#, "\u{e9}\u{e9}");
    fails("VARCHAR(3)", r#""\u00e9\u00e9""#); // 4 bytes
    fails("VARCHAR(3)", "12345");
}

#[test]
fn json_columns_keep_the_json_type() {
    converts("JSON", r#""123""#, r#""123""#); // a JSON string stays a string scalar
    converts("JSON", "123", "123");
    converts("JSON", r#""{\"a\":1}""#, r#""{\"a\":1}""#); // not parsed
    converts("JSON", r#"{"b": [true, null], "a": 1.5}"#, r#"{"a":1.5,"b":[true,null]}"#);
    assert_eq!(direct("JSON", "null", true), Ok(None)); // a top-level null is SQL NULL
}

#[test]
fn arrays_null_their_bad_elements_without_filtering() {
    for strict in [false, true] {
        assert_eq!(
            direct("ARRAY<INT>", r#"[1, "2", 99999999999, "x", null, 2.9]"#, strict),
            Ok(Some("[1,2,null,null,null,2]".to_owned())),
            "strict={strict}"
        );
    }
    converts(
        "ARRAY<DATETIME>",
        r#"["2024-01-02T03:04:05Z", "infinity"]"#,
        r#"["2024-01-02 03:04:05",null]"#,
    );
    converts("ARRAY<DECIMAL(4,1)>", r#"[1, "2.55", "NaN"]"#, "[1.0,2.6,null]");
    converts("ARRAY<ARRAY<INT>>", "[[1], [], null]", "[[1],[],null]");
    fails("ARRAY<INT>", r#""[1]""#); // needs a JSON array
}

#[test]
fn datetimes_through_varchar_and_cast() {
    converts("DATETIME", r#""2024-01-02T03:04:05.123456Z""#, "2024-01-02 03:04:05.123456");
    converts("DATETIME", r#""2024-01-02 03:04:05""#, "2024-01-02 03:04:05");
    converts("DATETIME", r#""2024-01-02T03:04:05.5""#, "2024-01-02 03:04:05.500000");
    converts("DATETIME", r#""2024-01-02T03:04:05.1234567Z""#, "2024-01-02 03:04:05.123456");
    converts("DATETIME", r#""2024-01-02T03:04:05+02:00""#, "2024-01-02 03:04:05"); // no shift
    converts("DATETIME", r#""2024-01-02T25:00:00""#, "2024-01-02 00:00:00"); // bad time: date only
    converts("DATETIME", r#""2024-01-02""#, "2024-01-02 00:00:00");
    converts("DATE", r#""2017-09-15Z""#, "2017-09-15");
    converts("DATE", r#""2024-01-02T10:00:00Z""#, "2024-01-02");
    for bad in [
        r#""infinity""#,
        r#""-infinity""#,
        r#""-0098-01-01Z""#,
        r#""+10000-01-01Z""#,
        r#""+294247-01-10T04:00:25.2Z""#,
        r#""2023-02-29""#,
        "20240102", // worst case: compact forms and numbers are NULL
        "19723",
        "true",
    ] {
        fails("DATETIME", bad);
        fails("DATE", bad);
    }
}

#[test]
fn decimals_through_varchar_and_cast() {
    converts("DECIMAL(5,2)", "1.235", "1.24"); // rounded half-up
    converts("DECIMAL(5,2)", "-1.235", "-1.24"); // away from zero
    converts("DECIMAL(5,2)", r#""1.5e2""#, "150.00");
    converts("DECIMAL(5,2)", "1.0E1", "10.00");
    converts("DECIMAL(5,2)", "-0.001", "0.00");
    fails("DECIMAL(5,2)", "1234");
    fails("DECIMAL(5,2)", "999.999");
    fails("DECIMAL(5,2)", r#""NaN""#);
    fails("DECIMAL(5,2)", r#""Infinity""#);
    converts("DECIMAL(5,2)", "true", "1.00"); // through VARCHAR: a boolean reads as 1
}

// ---------------------------------------------------------------------------------------------
// Temp columns, expressions, the rendered shape

#[test]
fn temp_columns_are_varchar() {
    let table = table_def("t", KeysType::Duplicate, &[], &[("v", "VARCHAR(100)", true)]);
    let def = parse(&statement("`tmp`, `v` = `tmp`", &["$.x"], &[]));
    for (json, want) in [
        (r#""a\"b""#, Some("a\"b")),
        ("1.0E10", Some("1.0E10")),
        ("false", Some("0")),
        (r#"{ "z": [1, 2], "a": "\u00e9" }"#, Some(r#"{"z":[1,2],"a":"\u00e9"}"#)),
        ("null", None),
    ] {
        let got = map(&def, &table, Some(&format!("{{\"x\": {json}}}")));
        assert_eq!(got, Out::Row(vec![want.map(str::to_owned)], false), "{json}");
    }
    assert_eq!(map(&def, &table, Some("{}")), Out::Row(vec![None], false));
}

#[test]
fn derived_columns_cast_silently_but_filter_over_length_and_not_null() {
    let table = table_def(
        "t",
        KeysType::Primary,
        &["id"],
        &[("id", "BIGINT", false), ("s", "VARCHAR(3)", true), ("d", "DATETIME", true)],
    );
    let def = parse(&statement(
        "`a`, `b`, `c`, `id` = `a`, `s` = `b`, `d` = `c`",
        &["$.a", "$.b", "$.c"],
        &[("strict_mode", "true")],
    ));
    // A failed CAST of an expression result is NULL, even in strict mode.
    assert_eq!(
        map(&def, &table, Some(r#"{"a": "1", "b": "xy", "c": "infinity"}"#)),
        Out::Row(vec![Some("1".into()), Some("xy".into()), None], false)
    );
    // CAST(varchar AS DOUBLE)-style rules: `1.5` into BIGINT is NULL, so the key is NULL.
    let Out::Filtered(r) = map(&def, &table, Some(r#"{"a": 1.5}"#)) else { panic!() };
    assert_eq!(r, "NULL value in non-nullable column 'id'");
    // Over-length VARCHAR from an expression filters, in any mode.
    let Out::Filtered(r) = map(&def, &table, Some(r#"{"a": 1, "b": "long"}"#)) else { panic!() };
    assert!(r.contains("4 bytes exceed the column length 3"), "{r}");
    let lenient = parse(&statement(
        "`a`, `b`, `id` = `a`, `s` = `b`",
        &["$.a", "$.b"],
        &[("strict_mode", "false")],
    ));
    assert!(matches!(map(&lenient, &table, Some(r#"{"a": 1, "b": "long"}"#)), Out::Filtered(_)));
}

/// The exact statement pgsnap renders (see the brief), with schemas.enable on or off.
fn pgsnap_statement(payload: bool, strict: bool) -> String {
    let p = if payload { "$.payload." } else { "$." };
    let paths = ["op", "before.id", "after.id", "after.name", "after.ts", "after.doc"]
        .iter()
        .map(|s| format!("\\\"{p}{s}\\\""))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"CREATE ROUTINE LOAD `db`.`job_name` ON `t`
COLUMNS (`__dbz_op`, `__dbz_b_id`, `__dbz_a_id`, `name`, `ts`, `__dbz_a_doc`, `id` = if((`__dbz_a_doc` IS NULL OR json_query(parse_json(concat('{{"v":', `__dbz_a_doc`, '}}')), '$.v') IS NOT NULL), coalesce(`__dbz_a_id`, `__dbz_b_id`), NULL), `doc` = json_query(parse_json(concat('{{"v":', `__dbz_a_doc`, '}}')), '$.v'), `__op` = if(`__dbz_op` = 'd', 1, 0))
PROPERTIES (
  "format" = "json",
  "strip_outer_array" = "false",
  "jsonpaths" = "[{paths}]",
  "strict_mode" = "{strict}",
  "timezone" = "UTC",
  "max_error_number" = "0",
  "pause_on_fatal_parse_error" = "true",
  "desired_concurrent_number" = "1"
)
FROM KAFKA (
  "kafka_broker_list" = "127.0.0.1:9092",
  "kafka_topic" = "pg.public.t",
  "kafka_partitions" = "0,1,2",
  "kafka_offsets" = "12,0,7"
);"#
    )
}

fn pgsnap_table() -> TableDef {
    table_def(
        "t",
        KeysType::Primary,
        &["id"],
        &[
            ("id", "BIGINT", false),
            ("name", "VARCHAR(20)", true),
            ("ts", "DATETIME", true),
            ("doc", "JSON", true),
        ],
    )
}

fn cells(c: &[Option<&str>]) -> Vec<Option<String>> {
    c.iter().map(|c| c.map(str::to_owned)).collect()
}

#[test]
fn the_rendered_debezium_mapping() {
    let table = pgsnap_table();
    let def = parse(&pgsnap_statement(false, true));
    assert_eq!(def.partitions(), &[0, 1, 2]);
    assert!(def.strict_mode() && def.pause_on_fatal_parse_error());
    let m = |v: &str| map(&def, &table, Some(v));
    let after = |doc: &str| {
        format!(
            r#"{{"op":"c","before":null,"after":{{"id":1,"name":"a","ts":"2024-01-02T03:04:05.5Z","doc":{doc}}}}}"#
        )
    };
    let row = |doc: Option<&str>| {
        Out::Row(cells(&[Some("1"), Some("a"), Some("2024-01-02 03:04:05.500000"), doc]), false)
    };
    assert_eq!(m(&after(r#""{\"y\": 1, \"x\": [2]}""#)), row(Some(r#"{"x":[2],"y":1}"#)));
    // A JSON document that is a number is a JSON number here (the CSV snapshot path stores
    // the JSON string "123": parse_json_or_string).
    assert_eq!(m(&after(r#""123""#)), row(Some("123")));
    assert_eq!(m(&after(r#""\"s\"""#)), row(Some(r#""s""#)));
    // A JSON null document is JSON null, not SQL NULL.
    assert_eq!(m(&after(r#""null""#)), row(Some("null")));
    assert_eq!(m(&after("null")), row(None));
    // An invalid document makes the key NULL: filtered whatever strict_mode says.
    assert_eq!(
        m(&after(r#""{bad""#)),
        Out::Filtered("NULL value in non-nullable column 'id'".into())
    );
    // Deletes take the key from `before`.
    assert_eq!(
        m(r#"{"op":"d","before":{"id":1,"name":null},"after":null}"#),
        Out::Row(cells(&[Some("1"), None, None, None]), true)
    );
    // A missing op is an upsert (if(NULL = 'd', 1, 0) = 0).
    assert_eq!(m(r#"{"after":{"id":2}}"#), Out::Row(cells(&[Some("2"), None, None, None]), false));
    // A direct DATETIME that does not parse: strict mode filters the row ...
    let bad_ts = r#"{"op":"u","after":{"id":3,"ts":"infinity"}}"#;
    let Out::Filtered(r) = m(bad_ts) else { panic!() };
    assert!(r.contains("column 'ts' (DATETIME)") && r.contains("\"infinity\""), "{r}");
    // ... and without it the value is NULL.
    let lenient = parse(&pgsnap_statement(false, false));
    assert_eq!(
        map(&lenient, &table, Some(bad_ts)),
        Out::Row(cells(&[Some("3"), None, None, None]), false)
    );
    // A key that does not cast to BIGINT is NULL: filtered.
    assert!(matches!(m(r#"{"op":"c","after":{"id":"x1"}}"#), Out::Filtered(_)));
    // Over-length direct VARCHAR: strict filters, lenient NULLs.
    let long = r#"{"op":"c","after":{"id":4,"name":"abcdefghijklmnopqrstuvwxyz"}}"#;
    assert!(matches!(m(long), Out::Filtered(_)));
    assert_eq!(
        map(&lenient, &table, Some(long)),
        Out::Row(cells(&[Some("4"), None, None, None]), false)
    );
    // Tombstones and empty values: no row.
    assert_eq!(map(&def, &table, None), Out::NoRow);
    assert_eq!(m(""), Out::NoRow);
    // Not JSON: a fatal parse error.
    assert_eq!(m("hello"), Out::ParseError("illegal json started with h".into()));
    assert!(matches!(m("[1]"), Out::ParseError(e) if e.starts_with("test double:")));
    assert!(matches!(m("{\"op\":"), Out::ParseError(e) if e.starts_with("test double:")));
    assert!(matches!(m("{} {}"), Out::ParseError(_)));
    // With schemas.enable=true the paths start with $.payload.
    let wrapped = parse(&pgsnap_statement(true, true));
    assert_eq!(
        map(&wrapped, &table, Some(r#"{"schema":{},"payload":{"op":"r","after":{"id":5}}}"#)),
        Out::Row(cells(&[Some("5"), None, None, None]), false)
    );
}

#[test]
fn op_worst_cases() {
    let table = table_def("t", KeysType::Primary, &["id"], &[("id", "INT", false)]);
    let def = parse(&statement("`k`, `o`, `id` = `k`, `__op` = `o`", &["$.k", "$.o"], &[]));
    // A NULL __op is an upsert, silently.
    assert_eq!(map(&def, &table, Some(r#"{"k":1}"#)), Out::Row(cells(&[Some("1")]), false));
    assert_eq!(map(&def, &table, Some(r#"{"k":1,"o":1}"#)), Out::Row(cells(&[Some("1")]), true));
    let Out::Filtered(r) = map(&def, &table, Some(r#"{"k":1,"o":"x"}"#)) else { panic!() };
    assert!(r.starts_with("test double: __op"), "{r}");
}

// ---------------------------------------------------------------------------------------------
// Statement errors (pure)

#[test]
fn statement_errors() {
    let ok = statement("`v`", &["$.v"], &[]);
    parse(&ok);
    let cases: &[(String, &str)] = &[
        (statement("`v`", &["$.v"], &[("max_errors", "1")]), "max_errors is invalid property"),
        (statement("`v`", &["$.v"], &[("format", "csv")]), "test double: CSV Routine Load"),
        (
            statement("`v`", &["$.v"], &[("partial_update", "true")]),
            "test double: partial_update=true is not modelled",
        ),
        (
            statement("`v`", &["$.v"], &[("strip_outer_array", "true")]),
            "test double: strip_outer_array=true",
        ),
        (
            statement("`v`", &["$.v"], &[("strict_mode", "yes")]),
            "strict_mode must be true or false",
        ),
        (
            statement("`v`", &["$.v"], &[("max_batch_rows", "10")]),
            "max_batch_rows should >= 200000",
        ),
        (statement("`v`", &["$.v", "$.w"], &[]), "test double: jsonpaths has 2 paths"),
        (statement("`v`", &["$['v']"], &[]), "test double: the jsonpath"),
        (
            statement("`a`, `v` = upper(`a`)", &["$.a"], &[]),
            "test double: function upper is not modelled",
        ),
        (statement("`a`, `v` = `a` || 'x'", &["$.a"], &[]), "test double: operator ||"),
        (
            statement("`a`, `v` = if(`a`, 1, 0)", &["$.a"], &[]),
            "test double: if() with a VARCHAR condition",
        ),
        (statement("`a`, `a` = `a`", &["$.a"], &[]), "Duplicate column: a"),
    ];
    for (sql, want) in cases {
        let e = parse_err(sql);
        assert!(e.contains(want), "want {want:?}, got {e:?}\n{sql}");
    }
    let offsets = |partitions: &str, offsets: &str| {
        ok.replace(
            "\"kafka_partitions\" = \"0\"",
            &format!("\"kafka_partitions\" = \"{partitions}\""),
        )
        .replace("\"kafka_offsets\" = \"0\"", &format!("\"kafka_offsets\" = \"{offsets}\""))
    };
    let def = parse(&offsets("0, 1,2", "OFFSET_BEGINNING,offset_end, 5"));
    use pgsnap_test_support::starrocks::KafkaOffset;
    assert_eq!(def.offsets(), &[KafkaOffset::Beginning, KafkaOffset::End, KafkaOffset::Offset(5)]);
    assert!(
        parse_err(&offsets("0,1", "0"))
            .contains("Partitions number should be equals to offsets number")
    );
    assert!(parse_err(&offsets("0", "-1")).contains("Invalid kafka offset '-1'"));
    assert!(parse_err(&offsets("0", "abc")).contains("Invalid kafka offset 'abc'"));
    assert!(parse_err(&offsets("0", "2024-01-01 00:00:00")).contains("Invalid kafka offset"));
    assert!(
        parse_err(&ok.replace("kafka_topic", "kafka_topics"))
            .contains("kafka_topics is invalid kafka property")
    );
}

#[test]
fn pause_on_fatal_parse_error_depends_on_the_version() {
    let sql = statement("`v`", &["$.v"], &[("pause_on_fatal_parse_error", "true")]);
    for (version, accepted) in [
        ("3.2.15", false),
        ("3.3.11", false),
        ("3.3.12", true),
        ("3.4.1", false),
        ("3.4.2", true),
        ("3.5.0", true),
        ("4.0.1", true),
    ] {
        let v = StarRocksVersion::parse(version).unwrap();
        match RoutineLoadDef::parse_for_version(&sql, &v) {
            Ok(def) => assert!(accepted && def.pause_on_fatal_parse_error(), "{version}"),
            Err(e) => {
                assert!(!accepted, "{version}: {e}");
                assert!(e.contains("pause_on_fatal_parse_error is invalid property"), "{e}");
            }
        }
    }
}

#[test]
fn mapping_errors_against_the_table() {
    let pk = table_def(
        "t",
        KeysType::Primary,
        &["id"],
        &[("id", "INT", false), ("v", "VARCHAR(5)", true)],
    );
    let dup = table_def("t", KeysType::Duplicate, &[], &[("v", "VARCHAR(5)", true)]);
    let bin = table_def("t", KeysType::Duplicate, &[], &[("v", "VARBINARY", true)]);
    let check = |table: &TableDef, columns: &str, paths: &[&str]| {
        parse(&statement(columns, paths, &[])).check_table(table).unwrap_err()
    };
    for (table, columns, paths, want) in [
        (&pk, "`v`", &["$.v"][..], "test double: NOT NULL column 'id' is not mapped"),
        (
            &dup,
            "`o`, `v` = `o`, `__op` = 0",
            &["$.o"][..],
            "test double: __op is only modelled for Primary Key tables",
        ),
        (&pk, "`a`, `x` = `a`", &["$.a"][..], "Unknown column 'x' in table 't'"),
        (&pk, "`id`, `v` = `id`", &["$.i"][..], "mapped directly and used in an expression"),
        (&pk, "`id`, `v` = `nope`", &["$.i"][..], "Unknown column 'nope'"),
        (&pk, "`a`, `id` = `a`, `v` = `id`", &["$.a"][..], "referring to the derived column 'id'"),
        (&pk, "`id`, `__op`", &["$.i", "$.o"][..], "__op mapped directly"),
        (
            &pk,
            "`id`, `a`, `v` = parse_json(`a`)",
            &["$.i", "$.a"][..],
            "casting a JSON expression to VARCHAR(5)",
        ),
        (&bin, "`v`", &["$.v"][..], "VARBINARY"),
    ] {
        let e = check(table, columns, paths);
        assert!(e.contains(want), "{columns}: want {want:?}, got {e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Over the MySQL front

fn opts(double: &StarRocksDouble, db: Option<&str>) -> OptsBuilder {
    super::starrocks_mysql::opts(double.mysql_addr().port(), "root", "", db)
}

/// SHOW ROUTINE LOAD as maps of column → value.
async fn show(conn: &mut Conn, sql: &str) -> Vec<BTreeMap<String, Option<String>>> {
    let rows: Vec<Row> = conn.query(sql).await.unwrap();
    rows.into_iter()
        .map(|r| {
            let names: Vec<String> =
                r.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
            names
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, r.get::<Option<String>, _>(i).unwrap()))
                .collect()
        })
        .collect()
}

fn json_col(row: &BTreeMap<String, Option<String>>, col: &str) -> serde_json::Value {
    serde_json::from_str(row[col].as_deref().unwrap()).unwrap()
}

async fn double_with_table(options: StarRocksOptions) -> StarRocksDouble {
    let double = StarRocksDouble::start(options).await;
    double.create_table("db", pgsnap_table());
    double
}

#[tokio::test]
async fn statements_over_mysql() {
    let double = double_with_table(StarRocksOptions::default()).await;
    let mut conn = Conn::new(opts(&double, Some("db"))).await.unwrap();
    let version: String = conn.query_first("SELECT current_version()").await.unwrap().unwrap();
    assert!(version.starts_with("3.4.2-") && version.len() == 13, "{version}");

    // A broker nobody listens on: the job never gets past resolving its partitions.
    let sql = pgsnap_statement(false, true).replace("127.0.0.1:9092", "127.0.0.1:9");
    conn.query_drop(&sql).await.unwrap();
    let (code, msg) = server_error(conn.query_drop(&sql).await);
    assert_eq!(
        (code, msg.as_str()),
        (1064, "Getting analyzing error. Detail message: Name job_name already used in db db.")
    );

    let rows = show(&mut conn, "SHOW ROUTINE LOAD").await;
    assert_eq!(rows.len(), 1);
    let names: Vec<&str> = rows[0].keys().map(String::as_str).collect();
    let mut want = vec![
        "Id",
        "Name",
        "CreateTime",
        "PauseTime",
        "EndTime",
        "DbName",
        "TableName",
        "State",
        "DataSourceType",
        "CurrentTaskNum",
        "JobProperties",
        "DataSourceProperties",
        "CustomProperties",
        "Statistic",
        "Progress",
        "TimestampProgress",
        "ReasonOfStateChanged",
        "ErrorLogUrls",
        "TrackingSQL",
        "OtherMsg",
        "LatestSourcePosition",
    ];
    want.sort();
    assert_eq!(names, want);
    let r = &rows[0];
    assert_eq!(r["Name"].as_deref(), Some("job_name"));
    assert_eq!(r["DbName"].as_deref(), Some("db"));
    assert_eq!(r["TableName"].as_deref(), Some("t"));
    assert_eq!(r["DataSourceType"].as_deref(), Some("KAFKA"));
    assert_eq!(r["State"].as_deref(), Some("NEED_SCHEDULE"));
    assert_eq!(r["PauseTime"], None);
    assert_eq!(
        json_col(r, "Progress"),
        serde_json::json!({"0": "11", "1": "OFFSET_ZERO", "2": "6"})
    );
    assert_eq!(json_col(r, "Statistic")["loadedRows"], 0);
    assert_eq!(json_col(r, "DataSourceProperties")["topic"], "pg.public.t");
    assert_eq!(json_col(r, "JobProperties")["strict_mode"], "true");

    // The column order of the result set itself.
    let raw: Vec<Row> = conn.query("SHOW ROUTINE LOAD FOR db.job_name").await.unwrap();
    let order: Vec<String> =
        raw[0].columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
    assert_eq!(order[0], "Id");
    assert_eq!(order[7], "State");
    assert_eq!(order[14], "Progress");
    assert_eq!(order[20], "LatestSourcePosition");

    conn.query_drop("PAUSE ROUTINE LOAD FOR job_name").await.unwrap();
    let s = double.routine_load("db", "job_name").unwrap();
    assert_eq!(s.state, RoutineLoadState::Paused);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .starts_with("ErrorReason{errCode = 100, msg='User root pauses")
    );
    let r = &show(&mut conn, "SHOW ROUTINE LOAD FOR job_name").await[0];
    assert_eq!(r["State"].as_deref(), Some("PAUSED"));
    assert!(r["PauseTime"].is_some());
    conn.query_drop("RESUME ROUTINE LOAD FOR `db`.`job_name`").await.unwrap();
    assert_eq!(
        double.routine_load("db", "job_name").unwrap().state,
        RoutineLoadState::NeedSchedule
    );
    conn.query_drop("STOP ROUTINE LOAD FOR job_name").await.unwrap();
    assert_eq!(double.routine_load("db", "job_name").unwrap().state, RoutineLoadState::Stopped);
    assert!(show(&mut conn, "SHOW ROUTINE LOAD").await.is_empty());
    let all = show(&mut conn, "SHOW ALL ROUTINE LOAD FROM db").await;
    assert_eq!(all[0]["State"].as_deref(), Some("STOPPED"));
    assert!(all[0]["EndTime"].is_some());
    let (_, msg) = server_error(conn.query_drop("PAUSE ROUTINE LOAD FOR job_name").await);
    assert!(
        msg.contains("There is no job named job_name in db db. Include history? false"),
        "{msg}"
    );
    let (_, msg) = server_error(conn.query_drop("SHOW ROUTINE LOAD FOR nope").await);
    assert!(msg.contains("There is no job named nope in db db"), "{msg}");
    // The name is free again once the job is STOPPED.
    conn.query_drop(&sql).await.unwrap();
    assert_eq!(double.routine_loads().len(), 2);

    for (sql, want) in [
        (sql.replace("ON `t`", "ON `nope`"), "Unknown table 'nope'"),
        (sql.replace("`db`.`job_name`", "`nodb`.`j2`"), "Unknown database 'nodb'"),
        (
            sql.replace("`job_name`", "`j3`")
                .replace("\"max_error_number\"", "\"max_error_numbr\""),
            "max_error_numbr is invalid property",
        ),
        (
            sql.replace("`job_name`", "`j4`").replace("coalesce(", "ifnull("),
            "test double: function ifnull is not modelled",
        ),
        (
            sql.replace("`job_name`", "`j5`").replace("\"12,0,7\"", "\"12,0\""),
            "Partitions number should be equals to offsets number",
        ),
    ] {
        let (_, msg) = server_error(conn.query_drop(&sql).await);
        assert!(msg.contains(want), "want {want:?}, got {msg:?}");
    }
    drop(conn);
    let t = Instant::now();
    drop(double);
    assert!(t.elapsed() < Duration::from_secs(5), "dropping took {:?}", t.elapsed());
}

#[tokio::test]
async fn versions_over_mysql() {
    let sql = pgsnap_statement(false, true).replace("127.0.0.1:9092", "127.0.0.1:9");
    for (version, accepted) in
        [("3.3.11", false), ("3.3.12", true), ("3.4.1", false), ("3.5.0", true)]
    {
        let double = double_with_table(StarRocksOptions::default().with_version(version)).await;
        let mut conn = Conn::new(opts(&double, Some("db"))).await.unwrap();
        let cv: String = conn.query_first("SELECT current_version()").await.unwrap().unwrap();
        assert!(cv.starts_with(&format!("{version}-")), "{cv}");
        let result = conn.query_drop(&sql).await;
        if accepted {
            result.unwrap();
        } else {
            let (code, msg) = server_error(result);
            assert_eq!(code, 1064);
            assert!(msg.contains("pause_on_fatal_parse_error is invalid property"), "{msg}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs against a real broker

fn event(op: &str, id: i64, name: &str, ts: &str) -> String {
    let row = format!(r#"{{"id":{id},"name":"{name}","ts":"{ts}","doc":null}}"#);
    match op {
        "d" => format!(r#"{{"op":"d","before":{row},"after":null}}"#),
        _ => format!(r#"{{"op":"{op}","before":null,"after":{row}}}"#),
    }
}

async fn send(
    producer: &pgsnap_test_support::kafka::OneByOneProducer,
    topic: &str,
    p: i32,
    v: Option<&str>,
) -> i64 {
    let (partition, offset) = producer
        .send(
            topic,
            Record { partition: Some(p), value: v.map(str::as_bytes), ..Record::default() },
        )
        .await;
    assert_eq!(partition, p);
    offset
}

fn sorted_rows(double: &StarRocksDouble) -> Vec<Vec<Option<String>>> {
    let mut rows = double.rows("db", "t");
    rows.sort_by_key(|r| r[0].as_deref().and_then(|s| s.parse::<i64>().ok()));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_consume_pause_resume_and_stop() {
    let broker = Tansu::start();
    broker.create_topic("pg.public.t", 3);
    let producer = broker.producer();
    let topic = "pg.public.t";
    let double = double_with_table(StarRocksOptions::default()).await;
    let t0 = "2024-01-02T03:04:05Z";

    // Partition 0 starts at offset 1: its first event is never loaded.
    send(&producer, topic, 0, Some(&event("c", 100, "skipped", t0))).await;
    send(&producer, topic, 0, Some(&event("c", 1, "a", t0))).await;
    send(&producer, topic, 1, Some(&event("c", 2, "b", t0))).await;
    send(&producer, topic, 1, Some(&event("u", 2, "b2", "2024-01-02 03:04:05.25"))).await;
    send(&producer, topic, 2, Some(&event("c", 3, "c", t0))).await;
    send(&producer, topic, 2, None).await; // a tombstone
    send(&producer, topic, 2, Some(&event("d", 3, "c", t0))).await;

    let sql = pgsnap_statement(false, true)
        .replace("127.0.0.1:9092", &broker.bootstrap())
        .replace("\"12,0,7\"", "\"1,0,OFFSET_BEGINNING\"");
    let mut conn = Conn::new(opts(&double, Some("db"))).await.unwrap();
    conn.query_drop(&sql).await.unwrap();
    let wait = |targets: &[(i32, i64)]| {
        let targets: BTreeMap<i32, i64> = targets.iter().copied().collect();
        let double = &double;
        async move {
            double.wait_routine_load("db", "job_name", &targets, Duration::from_secs(10)).await
        }
    };
    let s = wait(&[(0, 2), (1, 2), (2, 3)]).await;
    assert_eq!(s.state, RoutineLoadState::Running, "{s:?}");
    assert_eq!(s.progress, BTreeMap::from([(0, 2), (1, 2), (2, 3)]));
    assert_eq!((s.loaded_rows, s.filtered_rows), (5, 0));
    assert_eq!(
        sorted_rows(&double),
        vec![
            cells(&[Some("1"), Some("a"), Some("2024-01-02 03:04:05"), None]),
            cells(&[Some("2"), Some("b2"), Some("2024-01-02 03:04:05.250000"), None]),
        ]
    );
    // SHOW: Progress is the last consumed offset, LatestSourcePosition the high watermark.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = &show(&mut conn, "SHOW ROUTINE LOAD FOR job_name").await[0];
    assert_eq!(r["State"].as_deref(), Some("RUNNING"));
    assert_eq!(r["CurrentTaskNum"].as_deref(), Some("1"));
    assert_eq!(json_col(r, "Progress"), serde_json::json!({"0": "1", "1": "1", "2": "2"}));
    assert_eq!(
        json_col(r, "LatestSourcePosition"),
        serde_json::json!({"0": "2", "1": "2", "2": "3"})
    );
    assert_eq!(json_col(r, "Statistic")["loadedRows"], 5);
    assert_eq!(json_col(r, "Statistic")["errorRows"], 0);

    // A direct DATETIME "infinity" (strict mode): the row is filtered, the job PAUSEs after
    // the batch was committed without it, and Progress moves past it.
    let good = send(&producer, topic, 1, Some(&event("c", 4, "d", t0))).await;
    let bad = send(&producer, topic, 1, Some(&event("c", 5, "e", "infinity"))).await;
    assert_eq!((good, bad), (2, 3));
    let s = wait(&[(1, 4)]).await;
    assert_eq!(s.state, RoutineLoadState::Paused, "{s:?}");
    assert_eq!(s.progress[&1], 4);
    assert_eq!(s.filtered_rows, 1);
    assert!(s.reason.as_deref().unwrap().starts_with("ErrorReason{errCode = 102, msg='"), "{s:?}");
    assert!(s.errors[0].contains("column 'ts' (DATETIME)"), "{:?}", s.errors);
    let ids: Vec<String> = sorted_rows(&double).iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "4"]);
    let url = s.error_log_urls.last().unwrap();
    let log = double.error_log(url.split("file=").nth(1).unwrap()).unwrap();
    assert!(log.contains("infinity"), "{log}");
    let r = &show(&mut conn, "SHOW ROUTINE LOAD FOR job_name").await[0];
    assert_eq!(r["ErrorLogUrls"].as_deref(), Some(url.as_str()));
    assert_eq!(json_col(r, "Progress")["1"], "3");

    // While PAUSED nothing is consumed; RESUME continues from Progress.
    send(&producer, topic, 0, Some(&event("c", 6, "f", t0))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(double.routine_load("db", "job_name").unwrap().progress[&0], 2);
    conn.query_drop("RESUME ROUTINE LOAD FOR job_name").await.unwrap();
    let s = wait(&[(0, 3)]).await;
    assert_eq!((s.state, s.progress[&0], s.loaded_rows), (RoutineLoadState::Running, 3, 7));

    // A non-JSON message with pause_on_fatal_parse_error: the task fails, nothing of its
    // batch is applied, the job PAUSEs and Progress does not move past it.
    conn.query_drop("PAUSE ROUTINE LOAD FOR job_name").await.unwrap();
    let before = send(&producer, topic, 2, Some(&event("c", 7, "g", t0))).await;
    let garbage = send(&producer, topic, 2, Some("not json")).await;
    send(&producer, topic, 2, Some(&event("c", 8, "h", t0))).await;
    conn.query_drop("RESUME ROUTINE LOAD FOR job_name").await.unwrap();
    let s = wait(&[(2, garbage + 2)]).await;
    assert_eq!(s.state, RoutineLoadState::Paused, "{s:?}");
    assert!(s.reason.as_deref().unwrap().contains("illegal json started with n"), "{s:?}");
    assert!(s.aborted_tasks >= 1);
    assert!(s.progress[&2] <= garbage, "{s:?}");
    let ids: Vec<String> = sorted_rows(&double).iter().map(|r| r[0].clone().unwrap()).collect();
    assert!(!ids.contains(&"8".to_owned()));
    assert_eq!(ids.contains(&"7".to_owned()), s.progress[&2] > before, "{ids:?} {s:?}");
    // RESUME retries the same offset and pauses again.
    conn.query_drop("RESUME ROUTINE LOAD FOR job_name").await.unwrap();
    let s2 = wait(&[(2, garbage + 2)]).await;
    assert_eq!(s2.state, RoutineLoadState::Paused);
    assert!(s2.aborted_tasks > s.aborted_tasks);
    assert_eq!(s2.progress[&2], s.progress[&2]);

    conn.query_drop("STOP ROUTINE LOAD FOR job_name").await.unwrap();
    assert_eq!(double.routine_load("db", "job_name").unwrap().state, RoutineLoadState::Stopped);
    drop(conn);
    drop(double);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pause_on_fatal_parse_error_the_job_is_stuck() {
    let broker = Tansu::start();
    broker.create_topic("stuck", 1);
    let producer = broker.producer();
    let double = double_with_table(StarRocksOptions::default().with_version("3.3.11")).await;
    send(&producer, "stuck", 0, Some(&event("c", 1, "a", "2024-01-01 00:00:00"))).await;
    let garbage = send(&producer, "stuck", 0, Some("{\"op\":")).await;
    send(&producer, "stuck", 0, Some(&event("c", 2, "b", "2024-01-01 00:00:00"))).await;
    let sql = pgsnap_statement(false, true)
        .replace("  \"pause_on_fatal_parse_error\" = \"true\",\n", "")
        .replace("127.0.0.1:9092", &broker.bootstrap())
        .replace("pg.public.t", "stuck")
        .replace("\"0,1,2\"", "\"0\"")
        .replace("\"12,0,7\"", "\"OFFSET_BEGINNING\"");
    let mut conn = Conn::new(opts(&double, Some("db"))).await.unwrap();
    conn.query_drop(&sql).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = double.routine_load("db", "job_name").unwrap();
        if s.aborted_tasks >= 3 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s.state, RoutineLoadState::Running, "{s:?}");
    assert!(s.aborted_tasks >= 3, "{s:?}");
    assert!(s.progress[&0] <= garbage, "{s:?}");
    assert!(!sorted_rows(&double).iter().any(|r| r[0].as_deref() == Some("2")));
    assert!(s.other_msg.contains("test double: the message is not one valid JSON object"), "{s:?}");
}

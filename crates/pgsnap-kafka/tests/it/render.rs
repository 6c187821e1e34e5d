//! The rendered `CREATE ROUTINE LOAD` statements, run through the StarRocks test double's
//! Routine Load evaluator (`RoutineLoadDef`: jsonpaths, COLUMNS expressions, the JSON
//! scanner's conversions, strict mode) on the verbatim Debezium PostgreSQL events of
//! `debezium-handoff.md` §6, with and without `{"schema","payload"}` envelopes.

use std::collections::BTreeMap;

use pgsnap_kafka::render::{ColumnMapping, RoutineLoadSpec, render_routine_load};
use pgsnap_test_support::starrocks::{
    Cell, KeysType, MessageOutcome, RoutineLoadDef, TableDef, table_def,
};
use serde_json::{Value, json};

// Verbatim from debezium-handoff.md §6 (apache/flink
// debezium-postgres-data-schema-exclude.txt, Debezium 1.2.1, REPLICA IDENTITY FULL).
const UPDATE: &str = r#"{"before":{"id":106,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0},"after":{"id":106,"name":"hammer","description":"18oz carpenter hammer","weight":1.0},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010889629,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":602,"lsn":34131104,"xmin":null},"op":"u","ts_ms":1596010890411,"transaction":null}"#;
const INSERT: &str = r#"{"before":null,"after":{"id":110,"name":"jacket","description":"water resistent white wind breaker","weight":0.2},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010946488,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":604,"lsn":34132560,"xmin":null},"op":"c","ts_ms":1596010946870,"transaction":null}"#;
const DELETE: &str = r#"{"before":{"id":111,"name":"scooter","description":"Big 2-wheel scooter ","weight":5.17},"after":null,"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010988168,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":608,"lsn":34133800,"xmin":null},"op":"d","ts_ms":1596010988596,"transaction":null}"#;
// First line of apache/flink debezium-postgres-data-schema-include.txt (verbatim): a
// snapshot read (`op` = "r") wrapped in {"schema","payload"}.
const READ_WITH_SCHEMA: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":true,"field":"description"},{"type":"double","optional":true,"field":"weight"}],"optional":true,"name":"fullfillment.inventory.products.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":true,"field":"description"},{"type":"double","optional":true,"field":"weight"}],"optional":true,"name":"fullfillment.inventory.products.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"field":"transaction"}],"optional":false,"name":"fullfillment.inventory.products.Envelope"},"payload":{"before":null,"after":{"id":101,"name":"scooter","description":"Small 2-wheel scooter","weight":3.14},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596001099434,"snapshot":"true","db":"postgres","schema":"inventory","table":"products","txId":601,"lsn":34078720,"xmin":null},"op":"r","ts_ms":1596001099434,"transaction":null}}"#;

fn spec(schemas: bool, pk: bool) -> RoutineLoadSpec {
    RoutineLoadSpec::new(
        "inventory",
        "products",
        "products_cdc",
        "fullfillment.inventory.products",
        ["k:9092"],
        ["id", "name", "description", "weight"],
        if pk { vec!["id"] } else { vec![] },
        BTreeMap::from([(0, 0)]),
    )
    .with_schemas_enabled(schemas)
    .with_primary_key_table(pk)
}

fn products(pk: bool) -> TableDef {
    let (keys, model) =
        if pk { (&["id"][..], KeysType::Primary) } else { (&[][..], KeysType::Duplicate) };
    table_def(
        "products",
        model,
        keys,
        &[
            ("id", "INT", !pk),
            ("name", "VARCHAR(255)", true),
            ("description", "VARCHAR(512)", true),
            ("weight", "DOUBLE", true),
        ],
    )
}

/// Wraps a bare payload as the JSON converter does with `schemas.enable=true`, using the
/// real envelope schema of the same table.
fn wrap(payload: &str) -> String {
    let read: Value = serde_json::from_str(READ_WITH_SCHEMA).unwrap();
    json!({ "schema": read["schema"].clone(), "payload": serde_json::from_str::<Value>(payload).unwrap() })
        .to_string()
}

/// The row the mapping makes of `event`: (delete?, cells).
fn row(def: &RoutineLoadDef, table: &TableDef, event: &str) -> (bool, Vec<Cell>) {
    match def.map_message(table, Some(event.as_bytes())).unwrap() {
        MessageOutcome::Row(r) => (r.delete, r.cells),
        other => panic!("{other:?}"),
    }
}

fn cells(v: &[Option<&str>]) -> Vec<Cell> {
    v.iter().map(|c| c.map(str::to_owned)).collect()
}

#[test]
fn fixtures_with_and_without_schemas() {
    for schemas in [false, true] {
        let sql = render_routine_load(&spec(schemas, true)).unwrap().sql;
        let def = RoutineLoadDef::parse(&sql).unwrap();
        let table = products(true);
        let ev = |s: &str| if schemas { wrap(s) } else { s.to_owned() };

        assert_eq!(
            row(&def, &table, &ev(INSERT)),
            (
                false,
                cells(&[
                    Some("110"),
                    Some("jacket"),
                    Some("water resistent white wind breaker"),
                    Some("0.2")
                ])
            )
        );
        let (delete, r) = row(&def, &table, &ev(UPDATE));
        assert!(!delete, "an update is an upsert of after");
        assert_eq!(r[0].as_deref(), Some("106"));
        assert_eq!(r[2].as_deref(), Some("18oz carpenter hammer"));
        let (delete, r) = row(&def, &table, &ev(DELETE));
        assert!(delete, "delete");
        assert_eq!(r[0].as_deref(), Some("111"), "the key comes from before");
        assert_eq!(r[1], None);

        // The wrong envelope shape yields no key: the row is filtered (NOT NULL key), so the
        // job would pause instead of loading it.
        let wrong = if schemas { INSERT.to_owned() } else { wrap(INSERT) };
        assert!(
            matches!(
                def.map_message(&table, Some(wrong.as_bytes())).unwrap(),
                MessageOutcome::Filtered(_)
            ),
            "schemas={schemas}"
        );
    }
}

#[test]
fn snapshot_read_with_schema_is_an_upsert() {
    let def = RoutineLoadDef::parse(&render_routine_load(&spec(true, true)).unwrap().sql).unwrap();
    let (delete, r) = row(&def, &products(true), READ_WITH_SCHEMA);
    assert!(!delete);
    assert_eq!(r[0].as_deref(), Some("101"));
    assert_eq!(r[1].as_deref(), Some("scooter"));
}

#[test]
fn a_delete_without_a_key_image_is_filtered() {
    // A delete under REPLICA IDENTITY NOTHING has before = null: the key is NULL, StarRocks
    // filters the row (key columns are NOT NULL) and the job pauses.
    let def = RoutineLoadDef::parse(&render_routine_load(&spec(false, true)).unwrap().sql).unwrap();
    let out = def
        .map_message(&products(true), Some(br#"{"before":null,"after":null,"op":"d"}"#))
        .unwrap();
    assert!(matches!(out, MessageOutcome::Filtered(_)), "{out:?}");
}

#[test]
fn duplicate_key_mapping_loads_after_only() {
    let def =
        RoutineLoadDef::parse(&render_routine_load(&spec(false, false)).unwrap().sql).unwrap();
    let table = products(false);
    let (delete, r) = row(&def, &table, UPDATE);
    assert!(!delete);
    assert_eq!(r[2].as_deref(), Some("18oz carpenter hammer"));
    let (_, r) = row(&def, &table, DELETE);
    assert!(r.iter().all(Option::is_none), "a delete loads NULLs: {r:?}");
}

/// The json/jsonb conversion: exact for every top-level JSON value, and a value it cannot
/// convert nulls the key (so the row is filtered) instead of loading NULL.
#[test]
fn the_json_conversion_is_exact_and_guarded() {
    let spec = RoutineLoadSpec::new(
        "db",
        "docs",
        "docs_cdc",
        "pg.public.docs",
        ["k:9092"],
        [
            ColumnMapping::new("id", "id"),
            ColumnMapping::new("doc", "doc")
                .with_conversion(pgsnap_sink_starrocks::parity::JSON_CONVERSION),
        ],
        ["id"],
        BTreeMap::from([(0, 0)]),
    );
    let def = RoutineLoadDef::parse(&render_routine_load(&spec).unwrap().sql).unwrap();
    let table = table_def(
        "docs",
        KeysType::Primary,
        &["id"],
        &[("id", "INT", false), ("doc", "JSON", true)],
    );
    let event =
        |doc: Value| json!({"before": null, "after": {"id": 1, "doc": doc}, "op": "c"}).to_string();
    for (text, stored) in [
        (r#"{"b": 1, "a": [1, "x"]}"#, r#"{"a":[1,"x"],"b":1}"#),
        ("[1, 2]", "[1,2]"),
        ("123", "123"),
        ("true", "true"),
        ("null", "null"),
        (r#""str""#, r#""str""#),
    ] {
        let (_, r) = row(&def, &table, &event(Value::String(text.into())));
        assert_eq!(r[1].as_deref(), Some(stored), "{text}");
    }
    let (_, r) = row(&def, &table, &event(Value::Null));
    assert_eq!(r[1], None, "SQL NULL stays NULL");
    let out =
        def.map_message(&table, Some(event(Value::String("{bad".into())).as_bytes())).unwrap();
    assert!(matches!(out, MessageOutcome::Filtered(_)), "malformed JSON is filtered: {out:?}");
}

/// One malformed value per expression column (the key's `coalesce`, the `json` conversion)
/// and per kind of direct column, sent through real Kafka (tansu) to the double's Routine
/// Load running pgsnap's rendered statement: each PAUSES the job with the batch committed
/// without the bad row, never loads a NULL in its place; `RESUME` continues after it. A
/// message that is not JSON pauses without moving the progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_pause_the_job() {
    use std::time::Duration;

    use mysql_async::prelude::Queryable;
    use pgsnap_core::{Column, TableKind, TableName, TableSchema};
    use pgsnap_sink_starrocks::mapping::{LoadFormat, MappingOptions, map_table};
    use pgsnap_sink_starrocks::parity::{DebeziumEncoding, cdc_columns};
    use pgsnap_test_support::kafka::{Record, Tansu};
    use pgsnap_test_support::starrocks::{RoutineLoadState, StarRocksDouble, StarRocksOptions};

    let kafka = Tansu::start();
    let topic = "pm.public.t";
    kafka.create_topic(topic, 1);
    let sr = StarRocksDouble::start(StarRocksOptions::default()).await;
    sr.create_database("db");
    let schema = TableSchema {
        name: TableName::new("public", "t"),
        kind: TableKind::Table,
        columns: vec![
            Column::new("id", "integer", false),
            Column::new("doc", "jsonb", true),
            Column::new("ts", "timestamp without time zone", true),
        ],
        generated_columns: vec![],
        primary_key: vec!["id".into()],
    };
    let target =
        map_table(&schema, "t", &MappingOptions::new().with_format(LoadFormat::Json)).unwrap();
    let columns = cdc_columns(&target, &DebeziumEncoding::pgsnap()).unwrap();
    let mappings: Vec<ColumnMapping> = columns
        .iter()
        .map(|c| {
            let m = ColumnMapping::new(&c.column, &c.field);
            match &c.conversion {
                Some(e) => m.with_conversion(e),
                None => m,
            }
        })
        .collect();
    let spec = RoutineLoadSpec::new(
        "db",
        "t",
        "t_cdc",
        topic,
        [kafka.bootstrap()],
        mappings,
        ["id"],
        BTreeMap::from([(0, 0)]),
    )
    .with_pause_on_fatal_parse_error(true);
    let sql = render_routine_load(&spec).unwrap().sql;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(sr.mysql_addr().ip().to_string())
        .tcp_port(sr.mysql_addr().port())
        .user(Some("root"))
        .pass(Some(""))
        .prefer_socket(false)
        .stmt_cache_size(0);
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
    conn.query_drop(target.create_table_sql("db", &[("replication_num", "1")])).await.unwrap();
    conn.query_drop(&sql).await.unwrap();

    let producer = kafka.producer();
    let send = |v: String| {
        let producer = &producer;
        async move {
            producer
                .send(
                    topic,
                    Record {
                        partition: Some(0),
                        key: None,
                        value: Some(v.as_bytes()),
                        timestamp_ms: None,
                    },
                )
                .await
        }
    };
    let event = |after: Value| json!({"before": null, "after": after, "op": "c"}).to_string();
    let ids = |sr: &StarRocksDouble| -> Vec<String> {
        let mut ids: Vec<String> =
            sr.rows("db", "t").into_iter().map(|r| r[0].clone().unwrap()).collect();
        ids.sort();
        ids
    };
    let wait_paused = |sr: &StarRocksDouble, next: i64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = sr.routine_load("db", "t_cdc").unwrap();
            if s.state == RoutineLoadState::Paused {
                assert_eq!(s.progress.get(&0), Some(&next), "{s:?}");
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "not paused: {s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A good row, then a key the INT column cannot take (the key expression's NULL).
    send(event(json!({"id": 1, "doc": "{\"a\": 1}", "ts": "2024-01-01T00:00:00Z"}))).await;
    send(event(json!({"id": "x1", "doc": null, "ts": null}))).await;
    let s = wait_paused(&sr, 2);
    assert!(s.reason.as_deref().unwrap_or("").contains("102"), "{s:?}");
    assert_eq!(ids(&sr), ["1"], "the batch is committed without the bad row");
    // The json conversion's NULL on text that is not JSON.
    conn.query_drop("RESUME ROUTINE LOAD FOR db.t_cdc").await.unwrap();
    send(event(json!({"id": 3, "doc": "[1]", "ts": null}))).await;
    send(event(json!({"id": 4, "doc": "{bad", "ts": null}))).await;
    wait_paused(&sr, 4);
    assert_eq!(ids(&sr), ["1", "3"]);
    // A direct DATETIME that does not parse (strict mode).
    conn.query_drop("RESUME ROUTINE LOAD FOR db.t_cdc").await.unwrap();
    send(event(json!({"id": 5, "doc": null, "ts": "infinity"}))).await;
    wait_paused(&sr, 5);
    assert_eq!(ids(&sr), ["1", "3"]);
    // Not JSON: the task fails, the progress stays.
    conn.query_drop("RESUME ROUTINE LOAD FOR db.t_cdc").await.unwrap();
    send("not json".to_owned()).await;
    wait_paused(&sr, 5);
    let rows = sr.rows("db", "t");
    assert!(rows.iter().all(|r| r[0].is_some()), "no NULL row was loaded: {rows:?}");
    let _ = conn.disconnect().await;
}

//! The preflight's SQL does not grow with the table count: the statements the sink sends
//! through the FE's MySQL port for 1 table and for 300, counted by the double.

use pgsnap_core::{MemorySource, TableName, TableSchema};
use pgsnap_sink_starrocks::Error;
use pgsnap_test_support::starrocks::StarRocksDouble;

use crate::support::*;

/// `n` copies of the example table, `public.t0` … `public.t{n-1}`.
fn schemas(n: usize) -> Vec<TableSchema> {
    let (_, m) = MemorySource::example(1, 1);
    let base = m.tables[0].schema.clone();
    (0..n)
        .map(|i| {
            let mut s = base.clone();
            s.name = TableName::new("public", format!("t{i}"));
            s
        })
        .collect()
}

fn statements(d: &StarRocksDouble) -> Vec<String> {
    d.catalog().lock().statements.clone()
}

/// Creates the `n` tables (a first preparation), puts `i % 3` rows into table `i`, then
/// prepares again and returns the statements that second preparation sent.
async fn preflight_statements(n: usize) -> Vec<String> {
    let d = double().await;
    let tables = schemas(n);
    builder(&d).build().unwrap().prepare_tables(&tables).await.expect("create");
    for i in 0..n {
        for r in 0..i % 3 {
            d.insert_row(DB, &format!("t{i}"), vec![Some(r.to_string()), Some("x".into())]);
        }
    }
    let before = statements(&d).len();
    let sink = builder(&d).with_create_tables(false).build().unwrap();
    let prepared = sink.prepare_tables(&tables).await.expect("prepare");
    assert_eq!(prepared.len(), n);
    for (i, p) in prepared.iter().enumerate() {
        assert_eq!(p.target.name, format!("t{i}"));
        assert!(!p.created);
        let existing = p.existing.expect("existing");
        assert_eq!(existing.rows, (i % 3) as u64, "t{i}");
        assert!(existing.primary_key);
    }
    statements(&d)[before..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_statements_do_not_grow_with_the_table_count() {
    let one = preflight_statements(1).await;
    let many = preflight_statements(300).await;
    eprintln!("1 table: {} statements: {one:#?}", one.len());
    eprintln!("300 tables: {} statements", many.len());
    // One `information_schema.columns` statement either way (1,000 names per statement); the
    // counts are one `UNION ALL` per 200 tables, so 300 tables take one statement more.
    let columns =
        |s: &[String]| s.iter().filter(|q| q.contains("information_schema.columns")).count();
    let counts = |s: &[String]| s.iter().filter(|q| q.contains("COUNT(*)")).count();
    assert_eq!((columns(&one), columns(&many)), (1, 1));
    assert_eq!((counts(&one), counts(&many)), (1, 2));
    assert_eq!(many.len(), one.len() + 1, "{many:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_rows_many_answers_in_order_and_names_a_missing_table() {
    let d = double().await;
    let tables = schemas(250);
    let sink = builder(&d).build().unwrap();
    sink.prepare_tables(&tables).await.expect("create");
    d.insert_row(DB, "t7", vec![Some("1".into()), None]);
    d.insert_row(DB, "t210", vec![Some("1".into()), None]);
    d.insert_row(DB, "t210", vec![Some("2".into()), None]);
    let names: Vec<String> = (0..250).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let before = statements(&d).len();
    let counts = sink.count_rows_many(&names).await.unwrap();
    let sent = &statements(&d)[before..];
    assert_eq!(sent.iter().filter(|q| q.contains("COUNT(*)")).count(), 2, "{sent:#?}");
    let counts: Vec<u64> = counts.into_iter().map(Result::unwrap).collect();
    assert_eq!(counts.len(), 250);
    assert_eq!((counts[7], counts[210], counts[0], counts[249]), (1, 2, 0, 0));

    // A missing table fails its batch; its tables are then counted one by one, so the error
    // is that table's own and the others still count.
    let mut with_missing = names.clone();
    with_missing.insert(3, "gone");
    let counts = sink.count_rows_many(&with_missing).await.unwrap();
    assert_eq!(counts.len(), 251);
    let err = counts[3].as_ref().unwrap_err();
    assert!(matches!(err, Error::Sql { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{DB}.gone")), "{err}");
    assert_eq!(*counts[8].as_ref().unwrap(), 1);
    assert_eq!(*counts[211].as_ref().unwrap(), 2);
    assert!(sink.count_rows_many(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_among_many_tables_names_its_table() {
    let d = double().await;
    let tables = schemas(40);
    builder(&d).build().unwrap().prepare_tables(&tables).await.expect("create");
    // Replace t17 with a table whose `v` is too short.
    recreate_t17_short(&d);
    let err = builder(&d).with_create_tables(false).build().unwrap().prepare_tables(&tables).await;
    let err = err.unwrap_err();
    assert!(
        matches!(err, Error::SchemaMismatch { ref table, ref source_table, .. }
            if table == "t17" && source_table == "\"public\".\"t17\""),
        "{err:?}"
    );
    // Without t17 at all, and without creating: the missing table is named.
    d.catalog().lock().databases.get_mut(DB).unwrap().tables.remove("t17");
    let err = builder(&d).with_create_tables(false).build().unwrap().prepare_tables(&tables).await;
    let err = err.unwrap_err();
    assert!(matches!(err, Error::UnknownTable { ref table, .. } if table == "t17"), "{err:?}");
}

fn recreate_t17_short(d: &StarRocksDouble) {
    use pgsnap_test_support::starrocks::{KeysType, table_def};
    d.catalog().lock().databases.get_mut(DB).unwrap().tables.remove("t17");
    d.create_table(
        DB,
        table_def(
            "t17",
            KeysType::Primary,
            &["id"],
            &[("id", "INT", false), ("v", "VARCHAR(3)", true)],
        ),
    );
}

/// The handoff's preflight reads every Routine Load of the database in one statement
/// (`SHOW ALL ROUTINE LOAD FROM db`), STOPPED jobs included, instead of one per job name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_all_routine_loads_lists_every_job_in_one_statement() {
    let d = double().await;
    let sink = builder(&d).build().unwrap();
    sink.prepare_tables(&schemas(2)).await.expect("create");
    assert!(sink.show_all_routine_loads().await.unwrap().is_empty());
    for (job, table) in [("j0", "t0"), ("j1", "t1")] {
        let statement = format!(
            "CREATE ROUTINE LOAD {DB}.{job} ON {table} COLUMNS(id, v) PROPERTIES (\"format\" = \
             \"json\", \"jsonpaths\" = \"[\\\"$.id\\\",\\\"$.v\\\"]\") FROM KAFKA \
             (\"kafka_broker_list\" = \"127.0.0.1:1\", \"kafka_topic\" = \"topic_{job}\", \"kafka_partitions\" = \"0\", \
             \"kafka_offsets\" = \"0\")"
        );
        sink.create_routine_load(job, &statement, &[]).await.expect(job);
    }
    let mut sql = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(d.mysql_addr().ip().to_string())
            .tcp_port(d.mysql_addr().port())
            .user(Some(d.options().user.clone()))
            .pass(Some(d.options().password.clone()))
            .prefer_socket(false),
    )
    .await
    .unwrap();
    mysql_async::prelude::Queryable::query_drop(&mut sql, format!("STOP ROUTINE LOAD FOR {DB}.j0"))
        .await
        .unwrap();
    sql.disconnect().await.unwrap();

    let before = statements(&d).len();
    let jobs = sink.show_all_routine_loads().await.unwrap();
    let sent = &statements(&d)[before..];
    assert_eq!(sent.iter().filter(|q| q.contains("ROUTINE LOAD")).count(), 1, "{sent:#?}");
    let names: Vec<(&str, &str)> =
        jobs.iter().map(|j| (j.name.as_str(), j.table.as_str())).collect();
    assert_eq!(names, [("j0", "t0"), ("j1", "t1")]);
    assert!(jobs[0].state.is_final(), "{:?}", jobs[0].state);
    assert!(!jobs[1].state.is_final(), "{:?}", jobs[1].state);
}

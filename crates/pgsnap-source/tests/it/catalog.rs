//! Table selection and hostile identifiers.

use std::sync::Arc;

use pgsnap_core::{ChunkRange, DataFormat, SnapshotMode, TableKind, TableName};
use pgsnap_source::{Error, PgSourceBuilder, SplitBy};
use pgsnap_test_support::{shared_cluster, unique_db};

use crate::common::{exec, run_to_files, verify_run};

const SCHEMA: &str = "Sch \"ema\"; DROP TABLE x; --";
const TABLE: &str = "Ta ble\"; DROP TABLE x; -- ÄÖ/.%";

fn hostile_sql() -> String {
    r#"
CREATE TABLE public.x (id int);
CREATE SCHEMA "Sch ""ema""; DROP TABLE x; --";
CREATE TABLE "Sch ""ema""; DROP TABLE x; --"."Ta ble""; DROP TABLE x; -- ÄÖ/.%" (
  "I""d" int PRIMARY KEY,
  "col ""quoted"" ; DROP TABLE x; --" text,
  "ünï cödé 日本" text,
  "UPPER" int,
  "select" text,
  "tab<TAB>and<NL>newline" text,
  "a,b" int
);
INSERT INTO "Sch ""ema""; DROP TABLE x; --"."Ta ble""; DROP TABLE x; -- ÄÖ/.%"
  SELECT g, 'v' || g, 'ü' || g, -g, repeat('s', g % 50), E'\t' || g, g % 3 FROM generate_series(1, 3000) g;
CREATE SCHEMA "UPPER";
CREATE TABLE "UPPER"."MiXeD" ("Key" int, "Région" text, v text, PRIMARY KEY ("Key", "Région")) PARTITION BY LIST ("Région");
CREATE TABLE "UPPER"."Leaf ""one""" PARTITION OF "UPPER"."MiXeD" FOR VALUES IN ('Ä');
CREATE TABLE "UPPER"."leaf; DELETE FROM x" PARTITION OF "UPPER"."MiXeD" DEFAULT;
INSERT INTO "UPPER"."MiXeD" SELECT g, CASE WHEN g % 2 = 0 THEN 'Ä' ELSE 'b' END, 'v' || g FROM generate_series(1, 500) g;
INSERT INTO public.x VALUES (1);
"#
    .replace("<TAB>", "\t")
    .replace("<NL>", "\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_identifiers_are_quoted_everywhere() {
    let cluster = shared_cluster();
    let db = unique_db("hostile");
    exec(cluster, &db, &hostile_sql()).await;
    for split in [SplitBy::Pk, SplitBy::Ctid] {
        let source = Arc::new(
            PgSourceBuilder::new(cluster.conninfo(&db))
                .with_snapshot_mode(SnapshotMode::Export)
                .open()
                .await
                .expect("open"),
        );
        let run = run_to_files(&source, split, 16_000, 3, DataFormat::Text).await;
        verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
        let names: Vec<TableName> =
            run.manifest.tables.iter().map(|t| t.schema.name.clone()).collect();
        assert_eq!(
            names,
            [
                TableName::new(SCHEMA, TABLE),
                TableName::new("UPPER", "MiXeD"),
                TableName::new("public", "x")
            ]
        );
        let hostile = run.table(SCHEMA, TABLE);
        assert!(hostile.chunks.len() > 3, "{split}: {} chunks", hostile.chunks.len());
        let want_pk = split == SplitBy::Pk;
        for c in &hostile.chunks {
            assert_eq!(matches!(c.range, ChunkRange::Pk { .. }), want_pk, "{:?}", c.range);
        }
        assert_eq!(hostile.schema.primary_key, ["I\"d"]);
        let mixed = run.table("UPPER", "MiXeD");
        assert_eq!(mixed.schema.kind, TableKind::Partitioned);
        assert_eq!(mixed.partitions.len(), 2);
        source.close().await.unwrap();
    }
    // Nothing was executed from a name.
    assert_eq!(cluster.psql(&db, "SELECT count(*) FROM public.x"), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn patterns_select_the_right_tables() {
    let cluster = shared_cluster();
    let db = unique_db("patterns");
    exec(cluster, &db, &hostile_sql()).await;
    exec(
        cluster,
        &db,
        "CREATE SCHEMA other; CREATE TABLE other.x (v int); INSERT INTO other.x VALUES (1), (2);
         CREATE TABLE public.\"X\" (v int);",
    )
    .await;
    let select = |include: Vec<&str>, exclude: Vec<&str>| {
        let conninfo = cluster.conninfo(&db);
        let include: Vec<String> = include.into_iter().map(str::to_owned).collect();
        let exclude: Vec<String> = exclude.into_iter().map(str::to_owned).collect();
        async move {
            let s = PgSourceBuilder::new(conninfo)
                .with_snapshot_mode(SnapshotMode::Export)
                .with_include(include)
                .with_exclude(exclude)
                .open()
                .await?;
            let tables: Vec<(TableName, TableKind)> =
                s.tables().iter().map(|t| (t.schema.name.clone(), t.schema.kind)).collect();
            s.close().await?;
            Ok::<_, Error>(tables)
        }
    };
    let t = |s: &str, n: &str, k| (TableName::new(s, n), k);
    use TableKind::*;

    // The hostile table by its quoted name (psql rules: "" is a literal quote).
    let got = select(
        vec![r#""Sch ""ema""; DROP TABLE x; --"."Ta ble""; DROP TABLE x; -- ÄÖ/.%""#],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(got, [t(SCHEMA, TABLE, Table)]);
    // Unqualified: every schema; unquoted names fold to lower case.
    assert_eq!(
        select(vec!["X"], vec![]).await.unwrap(),
        [t("other", "x", Table), t("public", "x", Table)]
    );
    assert_eq!(select(vec!["\"X\""], vec![]).await.unwrap(), [t("public", "X", Table)]);
    // A leaf on its own is a partition; with its parent selected it folds into the parent.
    assert_eq!(
        select(vec![r#""UPPER"."Leaf ""one""""#], vec![]).await.unwrap(),
        [t("UPPER", "Leaf \"one\"", Partition)]
    );
    assert_eq!(
        select(vec![r#""UPPER".*"#], vec![]).await.unwrap(),
        [t("UPPER", "MiXeD", Partitioned)]
    );
    // Excluding one leaf of a selected partitioned table would silently drop rows: refused.
    let err =
        select(vec![r#""UPPER".*"#], vec![r#""UPPER"."leaf; DELETE FROM x""#]).await.unwrap_err();
    assert!(matches!(err, Error::Config(ref m) if m.contains("partition")), "{err:?}");
    // Exclude wins over include.
    assert_eq!(select(vec!["*.x"], vec!["other.*"]).await.unwrap(), [t("public", "x", Table)]);
    assert_eq!(cluster.psql(&db, "SELECT count(*) FROM public.x"), "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_selected_alone_matches_its_own_copy() {
    let cluster = shared_cluster();
    let db = unique_db("leaf_alone");
    exec(cluster, &db, &hostile_sql()).await;
    let source = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .with_include(vec![r#""UPPER"."Leaf ""one""""#.into()])
            .open()
            .await
            .unwrap(),
    );
    let run = run_to_files(&source, SplitBy::Auto, 1_000_000, 2, DataFormat::Text).await;
    let out = verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
    assert_eq!(out[0].iter().filter(|&&c| c == b'\n').count(), 250);
    assert_eq!(run.json["tables"][0]["kind"], "partition");
    source.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_the_snapshot_cannot_cover_are_refused_not_skipped() {
    let cluster = shared_cluster();
    let db = unique_db("foreign_part");
    exec(
        cluster,
        &db,
        "CREATE FOREIGN DATA WRAPPER dummy_fdw; CREATE SERVER remote FOREIGN DATA WRAPPER dummy_fdw;
         CREATE TABLE mixed (id int, v text) PARTITION BY RANGE (id);
         CREATE TABLE mixed_local PARTITION OF mixed FOR VALUES FROM (0) TO (100);
         CREATE FOREIGN TABLE \"mixed Remote\" PARTITION OF mixed FOR VALUES FROM (100) TO (200) SERVER remote;
         INSERT INTO mixed VALUES (1, 'a');
         CREATE TABLE plain (id int);",
    )
    .await;
    let open = |include: &str| {
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .with_include(vec![include.to_owned()])
            .open()
    };
    match open("mixed").await {
        Err(Error::Preflight(m)) => {
            assert!(
                m.contains("\"public\".\"mixed Remote\"") && m.contains("\"public\".\"mixed\""),
                "{m}"
            )
        }
        Err(e) => panic!("expected a preflight error, got {e:?}"),
        Ok(s) => panic!(
            "opened, would copy {:?} and skip the foreign partition",
            s.tables()[0].relations
        ),
    }
    // Its local partition alone, or other tables, are fine.
    let s = open("mixed_local").await.unwrap();
    s.close().await.unwrap();
    let s = open("plain").await.unwrap();
    s.close().await.unwrap();
}

/// Everything a run does before its first chunk (slot, catalog, preflight, locks, plan) and
/// the handoff preflight, over a proxy that counts round trips: the count is the same for
/// one table as for a thousand (10 of them partitioned into 10 partitions each).
#[tokio::test(flavor = "multi_thread")]
async fn catalog_round_trips_do_not_grow_with_the_number_of_tables() {
    use pgsnap_test_support::roundtrips::RoundTripProxy;
    let cluster = shared_cluster();
    let proxy = RoundTripProxy::start(cluster.port()).await;
    let mut counts = Vec::new();
    for tables in [1, 1000] {
        let db = unique_db(&format!("roundtrips_{tables}"));
        let mut ddl = format!(
            "DO $$ BEGIN FOR i IN 1..{tables} LOOP \
               EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v text)', 't' || i); \
               EXECUTE format('INSERT INTO %I SELECT g, g::text FROM generate_series(1, 5) g', 't' || i); \
             END LOOP; END $$;"
        );
        if tables > 1 {
            ddl.push_str(
                "DO $$ BEGIN FOR i IN 1..10 LOOP \
                   EXECUTE format('CREATE TABLE %I (id int, v text, PRIMARY KEY (id)) PARTITION BY RANGE (id)', 'p' || i); \
                   FOR j IN 0..9 LOOP \
                     EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)', 'p' || i || '_' || j, 'p' || i, j * 10, j * 10 + 10); \
                   END LOOP; \
                   EXECUTE format('DROP TABLE %I', 't' || i); \
                 END LOOP; END $$; ANALYZE;",
            );
        }
        exec(cluster, &db, &ddl).await;
        let conninfo = format!("host=127.0.0.1 port={} user=postgres dbname={db}", proxy.port());
        proxy.reset();
        let source = PgSourceBuilder::new(conninfo.clone()).open().await.unwrap();
        let plans = source.plan(SplitBy::Pk, 64 << 20, 2).await.unwrap();
        assert_eq!(plans.len(), tables);
        source.close().await.unwrap();
        let pre =
            pgsnap_source::handoff::handoff_preflight_selected(conninfo, &[], &[]).await.unwrap();
        assert_eq!(pre.tables.len(), tables);
        counts.push(proxy.round_trips());
    }
    assert_eq!(counts[0], counts[1], "round trips for 1 and for 1,000 tables: {counts:?}");
}

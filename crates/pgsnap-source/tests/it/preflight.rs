//! Preflight failures: typed errors that name the culprit and leave nothing behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsnap_core::{DataFormat, SnapshotMode};
use pgsnap_source::{Error, PgSource, PgSourceBuilder, SplitBy};
use pgsnap_test_support::{ClusterOptions, PgCluster, shared_cluster, unique_db};

use crate::common::{exec, publication_exists, run_to_files, slot_exists, unique_name, verify_run};

/// Opens with a bound, so a hang is a failure and not a stuck test run.
async fn open(b: PgSourceBuilder) -> Result<PgSource, Error> {
    tokio::time::timeout(Duration::from_secs(60), b.open()).await.expect("open() hung")
}

fn preflight_message(r: Result<PgSource, Error>) -> String {
    match r {
        Err(Error::Preflight(m)) => m,
        Err(e) => panic!("expected Error::Preflight, got {e:?}"),
        Ok(s) => panic!("expected a preflight failure, the source opened: {s:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_level_replica_refuses_slot_mode_only() {
    let cluster = PgCluster::start_with(ClusterOptions::default().with_wal_level_logical(false));
    cluster.psql("postgres", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let msg = preflight_message(open(PgSourceBuilder::new(cluster.conninfo("postgres"))).await);
    assert!(msg.contains("wal_level") && msg.contains("replica"), "{msg}");
    // Export mode needs no logical decoding.
    let s = open(
        PgSourceBuilder::new(cluster.conninfo("postgres")).with_snapshot_mode(SnapshotMode::Export),
    )
    .await
    .unwrap();
    assert_eq!(s.tables().len(), 1);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn user_without_replication_privilege_refuses_slot_mode() {
    let cluster = shared_cluster();
    let db = unique_db("norepl");
    let role = unique_name("norepl");
    exec(
        cluster,
        &db,
        &format!("CREATE ROLE {role} LOGIN; CREATE TABLE t (id int); GRANT SELECT ON t TO {role};"),
    )
    .await;
    let conninfo = format!("{} user={role}", cluster.conninfo(&db));
    let msg = preflight_message(open(PgSourceBuilder::new(conninfo.clone())).await);
    assert!(msg.contains("REPLICATION"), "{msg}");
    let s = open(PgSourceBuilder::new(conninfo).with_snapshot_mode(SnapshotMode::Export))
        .await
        .unwrap();
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_name_taken_is_named() {
    let cluster = shared_cluster();
    let db = unique_db("slot_taken");
    let slot = unique_name("taken");
    let c = cluster.connect(&db).await;
    c.batch_execute("CREATE TABLE t (id int)").await.unwrap();
    c.batch_execute(&format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"))
        .await
        .unwrap();
    let msg = preflight_message(
        open(PgSourceBuilder::new(cluster.conninfo(&db)).with_slot(Some(slot.clone()))).await,
    );
    assert!(msg.contains(&slot) && msg.contains("already exists"), "{msg}");
    // Names the server would reject (or fold) are refused up front.
    for bad in ["Upper", "with-dash", "", &"x".repeat(64)] {
        let r =
            open(PgSourceBuilder::new(cluster.conninfo(&db)).with_slot(Some(bad.to_owned()))).await;
        assert!(matches!(r, Err(Error::Config(ref m)) if m.contains("slot name")), "{bad}: {r:?}");
    }
    assert!(slot_exists(&c, &slot).await, "the existing slot must be left alone");
    c.batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn external_snapshot_that_does_not_exist_is_lost() {
    let cluster = shared_cluster();
    let db = unique_db("ext_missing");
    exec(cluster, &db, "CREATE TABLE t (id int)").await;
    let external = |name: &str| {
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::External)
            .with_external_snapshot(Some(name.to_owned()))
    };
    // Never existed.
    match open(external("00000003-000000FF-1")).await {
        Err(Error::SnapshotLost { snapshot, .. }) => assert_eq!(snapshot, "00000003-000000FF-1"),
        other => panic!("expected SnapshotLost, got {other:?}"),
    }
    // Existed, but its exporting transaction ended.
    let c = cluster.connect(&db).await;
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let name: String = c.query_one("SELECT pg_export_snapshot()", &[]).await.unwrap().get(0);
    let s = open(external(&name)).await.expect("importable while held");
    s.close().await.unwrap();
    c.batch_execute("COMMIT").await.unwrap();
    match open(external(&name)).await {
        Err(e @ Error::SnapshotLost { .. }) => {
            let core: pgsnap_core::Error = e.into();
            assert_eq!(core.kind(), pgsnap_core::ErrorKind::SnapshotLost);
        }
        other => panic!("expected SnapshotLost, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn include_pattern_matching_nothing_is_table_not_found() {
    let cluster = shared_cluster();
    let db = unique_db("not_found");
    exec(cluster, &db, "CREATE TABLE t (id int PRIMARY KEY)").await;
    let c = cluster.connect(&db).await;
    // With a publication the patterns are checked before anything is created; without
    // one, inside the snapshot, after the permanent slot was created.
    for with_publication in [true, false] {
        let slot = unique_name("notfound");
        let publication = unique_name("pub_notfound");
        let msg = preflight_message(
            open(
                PgSourceBuilder::new(cluster.conninfo(&db))
                    .with_include(vec!["t".into(), "public.nosuch*".into()])
                    .with_slot(Some(slot.clone()))
                    .with_publication(with_publication.then(|| publication.clone())),
            )
            .await,
        );
        assert!(msg.contains("table not found") && msg.contains("public.nosuch*"), "{msg}");
        // A failed open leaves neither a permanent slot nor a publication behind.
        assert!(!slot_exists(&c, &slot).await, "slot {slot} left behind");
        assert!(!publication_exists(&c, &publication).await, "publication left behind");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row_level_security_that_would_filter_rows_is_refused() {
    let cluster = shared_cluster();
    let db = unique_db("rls");
    let reader = unique_name("reader");
    let owner = unique_name("owner");
    exec(
        cluster,
        &db,
        &format!(
            "CREATE ROLE {reader} LOGIN; CREATE ROLE {owner} LOGIN;
             CREATE TABLE open_t (id int); INSERT INTO open_t VALUES (1);
             CREATE TABLE \"Secret T\" (id int, tenant text); INSERT INTO \"Secret T\" VALUES (1, 'a'), (2, 'b');
             ALTER TABLE \"Secret T\" ENABLE ROW LEVEL SECURITY;
             CREATE POLICY only_a ON \"Secret T\" USING (tenant = 'a');
             CREATE TABLE forced (id int, tenant text); INSERT INTO forced VALUES (1, 'a'), (2, 'b');
             ALTER TABLE forced OWNER TO {owner};
             ALTER TABLE forced ENABLE ROW LEVEL SECURITY; ALTER TABLE forced FORCE ROW LEVEL SECURITY;
             CREATE POLICY only_a ON forced USING (tenant = 'a');
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader};
             CREATE TABLE \"Hidden\" (id int);
             CREATE TABLE hidden_parted (id int) PARTITION BY RANGE (id);
             CREATE TABLE hidden_leaf PARTITION OF hidden_parted FOR VALUES FROM (0) TO (10);
             GRANT SELECT ON hidden_parted TO {reader};"
        ),
    )
    .await;
    let as_role = |role: &str, include: &str| {
        PgSourceBuilder::new(format!("{} user={role}", cluster.conninfo(&db)))
            .with_snapshot_mode(SnapshotMode::Export)
            .with_include(include.split(',').map(str::to_owned).collect())
    };
    // A non-owner without BYPASSRLS.
    let msg = preflight_message(open(as_role(&reader, "open_t,\"Secret T\"")).await);
    assert!(msg.contains("row-level security") && msg.contains("\"public\".\"Secret T\""), "{msg}");
    assert!(!msg.contains("open_t"), "{msg}");
    // No SELECT privilege (on the table, or on a partition, which is read directly).
    let msg = preflight_message(open(as_role(&reader, "\"Hidden\"")).await);
    assert!(msg.contains("SELECT privilege") && msg.contains("\"public\".\"Hidden\""), "{msg}");
    let msg = preflight_message(open(as_role(&reader, "hidden_parted")).await);
    assert!(msg.contains("SELECT privilege") && msg.contains("hidden_"), "{msg}");
    // Tables without row-level security are fine for the same user.
    let s = open(as_role(&reader, "open_t")).await.unwrap();
    s.close().await.unwrap();
    // The owner of a table that forces row-level security on its owner too.
    let msg = preflight_message(open(as_role(&owner, "forced")).await);
    assert!(msg.contains("row-level security") && msg.contains("\"public\".\"forced\""), "{msg}");
    // A superuser reads everything.
    let s = Arc::new(
        open(
            PgSourceBuilder::new(cluster.conninfo(&db))
                .with_snapshot_mode(SnapshotMode::Export)
                .with_include(vec!["\"Secret T\"".into(), "forced".into()]),
        )
        .await
        .unwrap(),
    );
    let run = run_to_files(&s, SplitBy::Auto, 1_000_000, 2, DataFormat::Text).await;
    let out = verify_run(cluster, &db, &s.snapshot_info().name, &run).await;
    assert_eq!(out, [b"1\ta\n2\tb\n".to_vec(), b"1\ta\n2\tb\n".to_vec()]);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn publication_refuses_tables_without_replica_identity() {
    let cluster = shared_cluster();
    let db = unique_db("pub_ident");
    let publication = unique_name("pub");
    exec(
        cluster,
        &db,
        "CREATE TABLE with_pk (id int PRIMARY KEY);
         CREATE TABLE \"No Key\" (v int);
         CREATE TABLE full_ident (v int); ALTER TABLE full_ident REPLICA IDENTITY FULL;
         CREATE TABLE parted (id int, v int) PARTITION BY RANGE (id);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
         CREATE TABLE inh_parent (id int PRIMARY KEY);
         CREATE TABLE inh_child (note text) INHERITS (inh_parent);",
    )
    .await;
    let builder = |include: Vec<&str>| {
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_snapshot_mode(SnapshotMode::Export)
            .with_publication(Some(publication.clone()))
            .with_include(include.into_iter().map(str::to_owned).collect())
    };
    let msg = preflight_message(open(builder(vec![])).await);
    assert!(msg.contains("\"public\".\"No Key\""), "{msg}");
    assert!(msg.contains("\"public\".\"inh_child\""), "{msg}");
    assert!(msg.contains("\"public\".\"parted_1\""), "{msg}");
    assert!(msg.contains("REPLICA IDENTITY FULL"), "{msg}");
    assert!(!msg.contains("with_pk") && !msg.contains("full_ident"), "{msg}");
    let c = cluster.connect(&db).await;
    assert!(!publication_exists(&c, &publication).await);

    // Tables with a key or a full replica identity are published via the partition root;
    // an inheritance parent without its (key-less, unselected) child.
    let s = open(builder(vec!["with_pk", "full_ident", "inh_parent"])).await.unwrap();
    let row = c
        .query_one(
            "SELECT pubviaroot, (SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_publication_tables t WHERE t.pubname = p.pubname)
               FROM pg_publication p WHERE pubname = $1",
            &[&publication],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Vec<String>>(1), ["full_ident", "inh_parent", "with_pk"]);
    s.close().await.unwrap();
    pgsnap_source::drop_slot(&cluster.conninfo(&db), "no_such_slot", Some(&publication))
        .await
        .unwrap();
    assert!(!publication_exists(&c, &publication).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_creation_blocked_by_an_open_transaction_times_out_cleanly() {
    // A private cluster: the open transaction would hold up slot creation in other tests.
    let cluster = PgCluster::start_with(
        ClusterOptions::default()
            .with_extra_conf("max_prepared_transactions = 2")
            .with_extra_conf("max_replication_slots = 2"),
    );
    cluster.psql("postgres", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let blocker = cluster.connect("postgres").await;
    blocker.batch_execute("BEGIN; INSERT INTO t VALUES (2)").await.unwrap();
    let pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let check = cluster.connect("postgres").await;
    for temporary in [false, true] {
        let slot = if temporary { None } else { Some("blocked_slot".to_owned()) };
        let started = Instant::now();
        let msg = preflight_message(
            open(
                PgSourceBuilder::new(cluster.conninfo("postgres"))
                    .with_slot(slot)
                    .with_publication(Some("blocked_pub".into()))
                    .with_slot_timeout(Duration::from_millis(1500)),
            )
            .await,
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "{took:?}");
        assert!(msg.contains(&format!("pid {pid}")), "the blocker is not named: {msg}");
        let slots: i64 =
            check.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.unwrap().get(0);
        assert_eq!(slots, 0, "temporary {temporary}: a slot was left behind");
        assert!(!publication_exists(&check, "blocked_pub").await, "publication left behind");
    }
    // A prepared transaction blocks too, and is named.
    blocker.batch_execute("COMMIT").await.unwrap();
    blocker
        .batch_execute("BEGIN; INSERT INTO t VALUES (3); PREPARE TRANSACTION 'pgsnap test gid'")
        .await
        .unwrap();
    let msg = preflight_message(
        open(
            PgSourceBuilder::new(cluster.conninfo("postgres"))
                .with_slot_timeout(Duration::from_millis(1000)),
        )
        .await,
    );
    assert!(msg.contains("\"pgsnap test gid\"") && msg.contains("COMMIT PREPARED"), "{msg}");
    blocker.batch_execute("COMMIT PREPARED 'pgsnap test gid'").await.unwrap();
    // Once the transactions end the same slot name works: nothing half-made is in the way.
    let s = open(
        PgSourceBuilder::new(cluster.conninfo("postgres"))
            .with_slot(Some("blocked_slot".into()))
            .with_slot_timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    s.close().await.unwrap();
    // No free slot: one is taken by "blocked_slot", the other by someone else.
    check
        .batch_execute("SELECT pg_create_logical_replication_slot('other_slot', 'pgoutput')")
        .await
        .unwrap();
    let msg = preflight_message(open(PgSourceBuilder::new(cluster.conninfo("postgres"))).await);
    assert!(
        msg.contains("no free replication slot") && msg.contains("max_replication_slots"),
        "{msg}"
    );
    pgsnap_source::drop_slot(&cluster.conninfo("postgres"), "blocked_slot", None).await.unwrap();
    assert!(!slot_exists(&check, "blocked_slot").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_names_the_table() {
    // A private cluster: the ACCESS EXCLUSIVE lock takes an xid, which would hold up slot
    // creation in other tests.
    let cluster = PgCluster::start();
    cluster.psql(
        "postgres",
        "CREATE TABLE free (id int); CREATE TABLE \"Busy T\" (id int);
         CREATE TABLE parted (id int) PARTITION BY RANGE (id);
         CREATE TABLE parted_leaf PARTITION OF parted FOR VALUES FROM (0) TO (10);",
    );
    let locker = cluster.connect("postgres").await;
    let builder = || {
        PgSourceBuilder::new(cluster.conninfo("postgres"))
            .with_snapshot_mode(SnapshotMode::Export)
            .with_lock_timeout(Duration::from_millis(500))
    };
    for (lock, name) in [
        ("LOCK TABLE \"Busy T\" IN ACCESS EXCLUSIVE MODE", "\"public\".\"Busy T\""),
        ("LOCK TABLE parted_leaf IN ACCESS EXCLUSIVE MODE", "\"public\".\"parted"),
    ] {
        locker.batch_execute(&format!("BEGIN; {lock}")).await.unwrap();
        let msg = preflight_message(open(builder()).await);
        assert!(msg.contains(name) && msg.contains("lock"), "{msg}");
        assert!(!msg.contains("free"), "{msg}");
        // The session in the way, found in pg_locks (the tables are locked in one batch).
        let pid: i32 = locker.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        assert!(
            msg.contains(&format!("session pid {pid}"))
                && msg.contains("holds an ACCESS EXCLUSIVE lock"),
            "{msg}"
        );
        locker.batch_execute("ROLLBACK").await.unwrap();
    }
    // A DDL queued behind a reader is in the way too: pgsnap's lock would queue behind it.
    let reader = cluster.connect("postgres").await;
    reader.batch_execute("BEGIN; LOCK TABLE free IN ACCESS SHARE MODE").await.unwrap();
    let ddl_pid: i32 = locker.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let ddl = tokio::spawn(async move {
        locker
            .batch_execute(
                "SET application_name = 'migration tool'; BEGIN; ALTER TABLE free ADD COLUMN x int",
            )
            .await
            .map(|_| locker)
    });
    while cluster.psql(
        "postgres",
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'",
    ) != "1"
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let msg = preflight_message(open(builder()).await);
    assert!(
        msg.contains("\"public\".\"free\"")
            && msg.contains(&format!("session pid {ddl_pid}"))
            && msg.contains("application \"migration tool\"")
            && msg.contains("waits for (queued ahead of pgsnap)"),
        "{msg}"
    );
    reader.batch_execute("ROLLBACK").await.unwrap();
    let locker = ddl.await.unwrap().unwrap();
    locker.batch_execute("ROLLBACK").await.unwrap();
    // A DDL lock on a table that is not selected is no obstacle.
    locker.batch_execute("BEGIN; LOCK TABLE \"Busy T\" IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let s = open(builder().with_exclude(vec!["\"Busy T\"".into()])).await.unwrap();
    assert_eq!(s.tables().len(), 2);
    s.close().await.unwrap();
    locker.batch_execute("ROLLBACK").await.unwrap();
}

//! Holding the snapshot (slots), the manifest's snapshot fields, and the resume check.

use std::sync::Arc;

use pgsnap_core::{DataFormat, SnapshotMode};
use pgsnap_source::session::PINNED_SETTINGS;
use pgsnap_source::{Error, PgSourceBuilder, SplitBy, check_resume, drop_slot};
use pgsnap_test_support::{shared_cluster, unique_db};
use tokio_postgres::Client;

use crate::common::{exec, publication_exists, run_to_files, slot_exists, unique_name, verify_run};

/// The server clock in the format of `taken_at`.
async fn server_clock(c: &Client) -> String {
    c.query_one(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// `X/Y` with upper-case hex, as PostgreSQL prints an LSN.
fn is_lsn(s: &str) -> bool {
    let hex = |p: &str| {
        !p.is_empty()
            && p.len() <= 8
            && p.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    };
    s.split_once('/').is_some_and(|(a, b)| hex(a) && hex(b))
}

/// `xmin:xmax:xip,...` with xmin <= every xip < xmax, xmin <= xmax.
fn is_pg_snapshot(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [xmin, xmax, xip] = parts[..] else { return false };
    let (Ok(xmin), Ok(xmax)) = (xmin.parse::<u64>(), xmax.parse::<u64>()) else { return false };
    xmin <= xmax
        && (xip.is_empty()
            || xip.split(',').all(|x| x.parse::<u64>().is_ok_and(|x| x >= xmin && x < xmax)))
}

/// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1)))
        && b[b.len() - 1] == b'Z'
}

#[test]
fn format_checks_reject_garbage() {
    assert!(is_lsn("0/16B3748") && !is_lsn("0/16b3748") && !is_lsn("16B3748"));
    assert!(is_pg_snapshot("750:760:751,755") && is_pg_snapshot("7:7:"));
    assert!(!is_pg_snapshot("760:750:") && !is_pg_snapshot("7:9:6") && !is_pg_snapshot("7:9"));
    assert!(
        is_rfc3339_utc("2026-11-25T10:00:00.000123Z") && is_rfc3339_utc("2026-11-25T10:00:00Z")
    );
    assert!(!is_rfc3339_utc("2026-11-25 10:00:00Z") && !is_rfc3339_utc("2026-11-25T10:00:00+00"));
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_slot_is_gone_after_close() {
    let cluster = shared_cluster();
    let db = unique_db("temp_slot");
    exec(cluster, &db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    let c = cluster.connect(&db).await;
    let source = PgSourceBuilder::new(cluster.conninfo(&db)).open().await.unwrap();
    let info = source.snapshot_info().clone();
    assert_eq!(info.mode, SnapshotMode::Slot);
    assert_eq!(info.slot_temporary, Some(true));
    let slot = info.slot.clone().expect("slot mode records the slot");
    let row = c
        .query_one(
            "SELECT temporary, active, confirmed_flush_lsn::text, plugin::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    assert_eq!(
        Some(row.get::<_, String>(2)),
        info.lsn.map(|l| l.to_string()),
        "lsn is the consistent point"
    );
    assert_eq!(row.get::<_, String>(3), "pgoutput");
    assert!(source.warnings().is_empty(), "{:?}", source.warnings());
    source.close().await.unwrap();
    assert!(!slot_exists(&c, &slot).await, "temporary slot {slot} still exists after close()");
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_slot_stays_until_drop_slot() {
    let cluster = shared_cluster();
    let db = unique_db("perm_slot");
    let slot = unique_name("perm");
    let publication = unique_name("perm_pub");
    exec(cluster, &db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    let c = cluster.connect(&db).await;
    let source = PgSourceBuilder::new(cluster.conninfo(&db))
        .with_slot(Some(slot.clone()))
        .with_publication(Some(publication.clone()))
        .open()
        .await
        .unwrap();
    assert_eq!(source.snapshot_info().slot.as_deref(), Some(slot.as_str()));
    assert_eq!(source.snapshot_info().slot_temporary, Some(false));
    assert!(
        source.warnings().iter().any(|w| w.contains(&slot) && w.contains("WAL")),
        "{:?}",
        source.warnings()
    );
    let health = source.health().await.unwrap();
    assert_eq!(health.slot_wal_status.as_deref(), Some("reserved"));
    assert!(health.xmin_age.is_some());
    assert!(publication_exists(&c, &publication).await);
    source.close().await.unwrap();

    let row = c
        .query_one("SELECT temporary FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .expect("the permanent slot stays after close()");
    assert!(!row.get::<_, bool>(0));
    assert!(publication_exists(&c, &publication).await);
    drop_slot(&cluster.conninfo(&db), &slot, Some(&publication)).await.unwrap();
    assert!(!slot_exists(&c, &slot).await);
    assert!(!publication_exists(&c, &publication).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_records_the_snapshot_in_every_mode() {
    let cluster = shared_cluster();
    let db = unique_db("manifest_fields");
    exec(
        cluster,
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    )
    .await;
    let c = cluster.connect(&db).await;
    let sysid: String = c
        .query_one("SELECT system_identifier::text FROM pg_control_system()", &[])
        .await
        .unwrap()
        .get(0);
    for mode in [SnapshotMode::Slot, SnapshotMode::Export, SnapshotMode::External] {
        let holder = cluster.connect(&db).await;
        holder.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
        let external: String =
            holder.query_one("SELECT pg_export_snapshot()", &[]).await.unwrap().get(0);
        let before = server_clock(&c).await;
        let source = Arc::new(
            PgSourceBuilder::new(cluster.conninfo(&db))
                .with_snapshot_mode(mode)
                .with_external_snapshot((mode == SnapshotMode::External).then(|| external.clone()))
                .open()
                .await
                .unwrap(),
        );
        let after = server_clock(&c).await;
        let run = run_to_files(&source, SplitBy::Auto, 1_000_000, 1, DataFormat::Text).await;
        verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
        let s = &run.json["snapshot"];
        assert_eq!(s["mode"], mode.as_str());
        let name = s["name"].as_str().unwrap();
        assert!(!name.is_empty());
        if mode == SnapshotMode::External {
            assert_eq!(name, external);
        }
        match mode {
            SnapshotMode::Slot => {
                assert!(is_lsn(s["lsn"].as_str().unwrap()), "{s}");
                assert!(s["slot"].as_str().is_some_and(|x| !x.is_empty()), "{s}");
            }
            _ => {
                assert!(s.get("lsn").is_none(), "{mode}: {s}");
                assert!(s.get("slot").is_none(), "{mode}: {s}");
            }
        }
        let pg_snapshot = s["pg_snapshot"].as_str().unwrap();
        assert!(is_pg_snapshot(pg_snapshot), "{pg_snapshot}");
        let taken_at = s["taken_at"].as_str().unwrap();
        assert!(is_rfc3339_utc(taken_at), "{taken_at}");
        assert!(
            before.as_str() <= taken_at && taken_at <= after.as_str(),
            "{before} {taken_at} {after}"
        );

        let src = &run.json["source"];
        assert_eq!(src["system_identifier"], sysid.as_str());
        assert_eq!(src["database"], db.as_str());
        assert!(src["server_version"].as_str().is_some_and(|v| v.starts_with("15")));
        let session = run.json["session"].as_object().unwrap();
        for (k, v) in PINNED_SETTINGS {
            let got = session[*k].as_str().unwrap();
            assert!(got == *v || got.starts_with(&format!("{v},")), "{k} = {got}, pinned {v}");
        }
        assert_eq!(run.json["format"], "text");
        assert_eq!(run.json["compression"], "none");
        assert!(run.json["version"].as_u64().is_some());
        assert!(run.json["checksum_algorithm"].as_str().is_some());
        let chunk = &run.json["tables"][0]["chunks"][0];
        assert_eq!(chunk["rows"], 2);
        assert_eq!(chunk["done"], true);
        assert!(chunk.get("snapshot").is_none(), "{chunk}");
        source.close().await.unwrap();
        holder.batch_execute("COMMIT").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_refuses_another_snapshot_unless_allowed_with_a_permanent_slot() {
    let cluster = shared_cluster();
    let db = unique_db("resume_check");
    let slot = unique_name("resume");
    exec(cluster, &db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    let first = Arc::new(
        PgSourceBuilder::new(cluster.conninfo(&db))
            .with_slot(Some(slot.clone()))
            .open()
            .await
            .unwrap(),
    );
    let run = run_to_files(&first, SplitBy::Auto, 1_000_000, 1, DataFormat::Text).await;
    let manifest = run.manifest.clone();
    // The same source sees the same snapshot.
    assert!(check_resume(&manifest, &first, false).unwrap().is_none());
    first.close().await.unwrap();

    exec(cluster, &db, "INSERT INTO t VALUES (2)").await;
    let second = PgSourceBuilder::new(cluster.conninfo(&db))
        .with_snapshot_mode(SnapshotMode::Export)
        .open()
        .await
        .unwrap();
    assert_ne!(second.snapshot_info().pg_snapshot, manifest.snapshot.pg_snapshot);
    match check_resume(&manifest, &second, false) {
        Err(Error::SnapshotLost { reason, .. }) => {
            assert!(reason.contains("allow a snapshot change (allow_snapshot_change"), "{reason}")
        }
        other => panic!("expected SnapshotLost, got {other:?}"),
    }
    let cs = check_resume(&manifest, &second, true).unwrap().expect("a new chunk snapshot");
    assert_eq!(cs.pg_snapshot, second.snapshot_info().pg_snapshot);
    assert_eq!(cs.name, second.snapshot_info().name);

    // Only a permanent slot may change snapshots.
    let mut temporary = manifest.clone();
    temporary.snapshot.slot_temporary = Some(true);
    let mut export = manifest.clone();
    export.snapshot.mode = SnapshotMode::Export;
    export.snapshot.slot = None;
    export.snapshot.slot_temporary = None;
    for m in [&temporary, &export] {
        for allow in [false, true] {
            assert!(
                matches!(check_resume(m, &second, allow), Err(Error::SnapshotLost { .. })),
                "{:?} allow {allow}",
                m.snapshot
            );
        }
    }
    // Another cluster is never a resume.
    let mut other = manifest.clone();
    other.source.system_identifier = "1".into();
    assert!(matches!(check_resume(&other, &second, true), Err(Error::Preflight(_))));
    second.close().await.unwrap();
    drop_slot(&cluster.conninfo(&db), &slot, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn server_idle_timeouts_do_not_end_the_snapshot() {
    let cluster = shared_cluster();
    let db = unique_db("idle_timeouts");
    exec(
        cluster,
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)",
    )
    .await;
    exec(
        cluster,
        &db,
        &format!(
            "ALTER DATABASE \"{db}\" SET idle_session_timeout = '200ms';
             ALTER DATABASE \"{db}\" SET idle_in_transaction_session_timeout = '200ms';"
        ),
    )
    .await;
    for mode in [SnapshotMode::Slot, SnapshotMode::Export] {
        let source = Arc::new(
            PgSourceBuilder::new(cluster.conninfo(&db))
                .with_snapshot_mode(mode)
                .open()
                .await
                .unwrap(),
        );
        // Every connection of the source sits idle well past the server's timeouts.
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let run = run_to_files(&source, SplitBy::Auto, 1_000_000, 2, DataFormat::Text).await;
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        verify_run(cluster, &db, &source.snapshot_info().name, &run).await;
        source.close().await.unwrap();
    }
}

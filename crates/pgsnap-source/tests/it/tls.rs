//! TLS and SCRAM end to end: a cluster whose `pg_hba.conf` admits the copying role only over
//! TLS with a password, so a complete run proves that the replication connection, the
//! leader (tokio-postgres with rustls) and the worker connections (our own protocol client)
//! all negotiate TLS and SCRAM.

use std::sync::Arc;

use pgsnap_core::{DataFormat, SnapshotMode};
use pgsnap_source::{Error, PgSourceBuilder, SplitBy};
use pgsnap_test_support::{ClusterOptions, PgCluster, TestCerts};

use crate::common::{exec, run_to_files, verify_run};

const ROLE: &str = "tls_copier";
const PASSWORD: &str = "Tls-S3cret-9f2c";

/// A cluster with `ssl = on` where [`ROLE`] may connect only with `hostssl` and
/// `scram-sha-256` (the superuser keeps the default trust entries, for set-up and the
/// oracle).
fn tls_cluster(certs: &TestCerts) -> PgCluster {
    let mut opts = ClusterOptions::default()
        .with_tls(certs)
        .with_extra_conf("password_encryption = 'scram-sha-256'");
    for line in [
        format!("hostssl all {ROLE} 127.0.0.1/32 scram-sha-256"),
        format!("hostssl replication {ROLE} 127.0.0.1/32 scram-sha-256"),
        format!("host all {ROLE} all reject"),
        format!("host replication {ROLE} all reject"),
        format!("local all {ROLE} reject"),
        format!("local replication {ROLE} reject"),
    ] {
        opts = opts.with_hba_prepend(line);
    }
    PgCluster::start_with(opts)
}

fn conninfo(cluster: &PgCluster, db: &str, tls: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={ROLE} password={PASSWORD} dbname={db} {tls}",
        cluster.port()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_mode_over_tls_and_scram() {
    let certs = TestCerts::generate(&["127.0.0.1", "localhost"]);
    let cluster = tls_cluster(&certs);
    let db = cluster.unique_db("tls");
    exec(
        &cluster,
        &db,
        &format!(
            "CREATE ROLE {ROLE} LOGIN REPLICATION PASSWORD '{PASSWORD}';
             CREATE TABLE items (id bigint PRIMARY KEY, payload text);
             INSERT INTO items SELECT g, md5(g::text) || repeat('t', g % 50) FROM generate_series(1, 20000) g;
             CREATE TABLE tags (id int PRIMARY KEY, name text);
             INSERT INTO tags SELECT g, 'tag ' || g FROM generate_series(1, 500) g;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE};
             ANALYZE;"
        ),
    )
    .await;
    let ca = &certs.ca_cert;
    for tls in
        ["sslmode=require".to_owned(), format!("sslmode=verify-full sslrootcert={}", ca.display())]
    {
        let builder = PgSourceBuilder::new(conninfo(&cluster, &db, &tls))
            .with_snapshot_mode(SnapshotMode::Slot);
        let debug = format!("{builder:?}");
        assert!(!debug.contains(PASSWORD), "{debug}");
        let source = Arc::new(builder.open().await.unwrap_or_else(|e| panic!("{tls}: {e}")));
        assert!(source.snapshot_info().slot.is_some() && source.snapshot_info().lsn.is_some());
        assert!(!format!("{:?}", source.conn_spec()).contains(PASSWORD));
        for split in [SplitBy::Ctid, SplitBy::Pk] {
            let run = run_to_files(&source, split, 64_000, 2, DataFormat::Text).await;
            verify_run(&cluster, &db, &source.snapshot_info().name, &run).await;
            // Every session of the role (replication connection, leader, idle workers) is
            // encrypted; hba would have refused them otherwise, this says so directly.
            let sessions: Vec<bool> = cluster
                .connect("postgres")
                .await
                .query(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1",
                    &[&ROLE],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert!(sessions.len() >= 3 && sessions.iter().all(|s| *s), "{tls}: {sessions:?}");
            let items = run.table("public", "items");
            assert!(items.chunks.len() >= 4, "{tls} {split}: {} chunks", items.chunks.len());
        }
        source.close().await.unwrap();
    }

    // verify-full checks the name: the certificate is for 127.0.0.1 and localhost only.
    let wrong_name = format!(
        "host=pgsnap.invalid hostaddr=127.0.0.1 port={} user={ROLE} password={PASSWORD} dbname={db} sslmode=verify-full sslrootcert={}",
        cluster.port(),
        ca.display()
    );
    let err = PgSourceBuilder::new(wrong_name).open().await.unwrap_err();
    assert_refused(&err);

    // The server only admits the role over TLS; without it, a connection error (exit class
    // 3), and neither it nor a wrong password's shows the password.
    let err =
        PgSourceBuilder::new(conninfo(&cluster, &db, "sslmode=disable")).open().await.unwrap_err();
    assert_refused(&err);
    assert!(
        format!("{err:#?}").contains("pg_hba.conf") || err.to_string().contains("pg_hba.conf"),
        "{err:#?}"
    );
    let wrong = conninfo(&cluster, &db, "sslmode=require").replace(PASSWORD, "not-the-password");
    let err = PgSourceBuilder::new(wrong).open().await.unwrap_err();
    assert_refused(&err);
}

/// A connection or preflight error (exit class 3 of the examples: not a usage or snapshot
/// error) that does not reveal the password, in its message, chain or `Debug`.
fn assert_refused(err: &Error) {
    assert!(matches!(err, Error::Connect { .. } | Error::Preflight(_)), "{err:?}");
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    for t in texts {
        assert!(!t.contains(PASSWORD), "the password leaks: {t}");
    }
}

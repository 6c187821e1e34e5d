//! `pgsnap_source::replication` against a real throwaway PostgreSQL 15.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsnap_source::replication::{ReplicationConnection, ReplicationError};
use pgsnap_test_support::{ClusterOptions, PgCluster, TestCerts};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

/// A password that must never show up in error messages.
const SECRET: &str = "Sekr1t-pa55word-XYZ";

/// Roles with password authentication, prepended to the trust rules of `pg_hba.conf`.
const HBA: [&str; 3] = [
    "host all scram_user 127.0.0.1/32 scram-sha-256",
    "host all md5_user 127.0.0.1/32 md5",
    "host all pw_user 127.0.0.1/32 password",
];

/// A private PostgreSQL cluster (trust auth except the roles in [`HBA`]), with TLS from
/// `certs` if given; stopped and deleted on drop.
fn start(certs: Option<&TestCerts>) -> PgCluster {
    let mut opts = ClusterOptions::default();
    for line in HBA {
        opts = opts.with_hba_prepend(line);
    }
    if let Some(certs) = certs {
        opts = opts.with_tls(certs);
    }
    PgCluster::start_with(opts)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A config for `user` over TCP on 127.0.0.1, database `postgres`, without TLS.
fn tcp_config(cluster: &PgCluster, user: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(cluster.host())
        .port(cluster.port())
        .user(user)
        .dbname("postgres")
        .ssl_mode(SslMode::Disable)
        .connect_timeout(Duration::from_secs(10));
    config
}

async fn repl(cluster: &PgCluster) -> ReplicationConnection {
    ReplicationConnection::connect(&tcp_config(cluster, "postgres"), None).await.unwrap()
}

fn tls_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Parses `X/Y` (hex halves) into a 64-bit LSN.
fn parse_lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap_or_else(|| panic!("not an LSN: {text}"));
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

async fn slot_exists(client: &tokio_postgres::Client, name: &str) -> bool {
    let row = client
        .query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", &[&name])
        .await
        .unwrap();
    row.get::<_, i64>(0) == 1
}

/// Waits until backend `pid` shows `wait_event` (for example `PgSleep`/`transactionid`).
async fn wait_for(client: &tokio_postgres::Client, pid: i32, wait_event: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = client
            .query_one(
                "SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap();
        if row.get::<_, String>(0) == wait_event {
            return;
        }
        assert!(Instant::now() < deadline, "backend {pid} never waited on {wait_event}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn db_code(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

#[tokio::test]
async fn connect_identify_and_query() {
    let cluster = start(None);
    let mut conn = repl(&cluster).await;
    assert!(conn.backend_pid() > 0);
    assert!(conn.server_version_num() >= 150_000, "{}", conn.server_version_num());
    assert_eq!(conn.parameter("server_encoding"), Some("UTF8"));
    assert_eq!(conn.parameter("client_encoding"), Some("UTF8"));
    assert_eq!(conn.parameter("application_name"), Some("pgsnap"));
    assert!(!format!("{conn:?}").is_empty());

    let id = conn.identify_system().await.unwrap();
    assert_eq!(id.timeline, 1);
    assert_eq!(id.dbname.as_deref(), Some("postgres"));
    assert!(parse_lsn(&id.xlogpos) > 0);
    assert!(id.system_id.parse::<u64>().is_ok(), "{}", id.system_id);

    let rows = conn.simple_query("SHOW wal_level").await.unwrap();
    assert_eq!(rows.columns, ["wal_level"]);
    assert_eq!(rows.value(0, "wal_level"), Some("logical"));

    // SQL works on replication=database connections; NULLs and several statements.
    let rows = conn.simple_query("SELECT 1; SELECT 'a' AS x, NULL::text AS y").await.unwrap();
    assert_eq!(rows.columns, ["x", "y"]);
    assert_eq!(rows.rows, [vec![Some("a".to_owned()), None]]);
    assert_eq!(rows.command_tag.as_deref(), Some("SELECT 1"));
    let rows = conn
        .simple_query("SELECT pid FROM pg_stat_replication WHERE application_name = 'pgsnap'")
        .await
        .unwrap();
    assert_eq!(rows.value(0, "pid"), Some(conn.backend_pid().to_string().as_str()));

    // A failed statement leaves the connection usable.
    let err = conn.simple_query("SELECT * FROM missing").await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"), "{err}");

    // A command whose future is dropped is drained before the next one.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(50), conn.simple_query("SELECT pg_sleep(0.5)"))
            .await;
    assert!(abandoned.is_err());
    let rows = conn.simple_query("SELECT 42 AS answer").await.unwrap();
    assert_eq!(rows.value(0, "answer"), Some("42"));
    conn.close().await.unwrap();

    // A terminated backend reports its FATAL error, then the connection is closed.
    let mut conn = repl(&cluster).await;
    let pid = conn.backend_pid();
    let client = cluster.connect("postgres").await;
    let (slept, _) = tokio::join!(conn.simple_query("SELECT pg_sleep(30)"), async {
        wait_for(&client, pid, "PgSleep").await;
        client.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap()
    });
    assert_eq!(slept.unwrap_err().sqlstate(), Some("57P01"));
    let err = conn.identify_system().await.unwrap_err();
    assert!(matches!(err, ReplicationError::Closed), "{err:?}");
}

#[test]
fn types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<ReplicationConnection>();
    send_sync::<pgsnap_source::replication::CancelHandle>();
    send_sync::<ReplicationError>();
    let config = tokio_postgres::Config::new();
    send(&ReplicationConnection::connect(&config, None));
    let handle: Option<pgsnap_source::replication::CancelHandle> = None;
    if let Some(handle) = &handle {
        send(&handle.cancel());
    }
    let mut conn: Option<ReplicationConnection> = None;
    if let Some(conn) = &mut conn {
        send(&conn.create_logical_slot("x", true));
    }
    if let Some(conn) = &mut conn {
        send(&conn.simple_query("x"));
    }
    if let Some(conn) = conn {
        send(&conn.close());
    }
}

#[tokio::test]
async fn unix_socket_and_host_fallback() {
    let cluster = start(None);

    let mut config_unix = tokio_postgres::Config::new();
    config_unix
        .host_path(cluster.socket_dir())
        .port(cluster.port())
        .user("postgres")
        .application_name("pgsnap-test");
    let mut conn = ReplicationConnection::connect(&config_unix, None).await.unwrap();
    // Without dbname, the database defaults to the user name.
    assert_eq!(conn.identify_system().await.unwrap().dbname.as_deref(), Some("postgres"));
    assert_eq!(conn.parameter("application_name"), Some("pgsnap-test"));
    conn.close().await.unwrap();

    // The first host refuses connections; the second works.
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(free_port())
        .host("127.0.0.1")
        .port(cluster.port())
        .user("postgres")
        .dbname("postgres");
    let conn = ReplicationConnection::connect(&config, None).await.unwrap();
    conn.close().await.unwrap();

    // Only a refusing host: an I/O error naming it.
    let dead = free_port();
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(dead).user("postgres");
    let err = ReplicationConnection::connect(&config, None).await.unwrap_err();
    assert!(matches!(err, ReplicationError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{dead}")), "{err}");
}

#[tokio::test]
async fn temporary_slot_exports_importable_snapshot() {
    let cluster = start(None);
    let client = cluster.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2);")
        .await
        .unwrap();

    let mut conn = repl(&cluster).await;
    let slot = conn.create_logical_slot("snap_slot", true).await.unwrap();
    assert_eq!(slot.slot_name, "snap_slot");
    assert_eq!(slot.output_plugin.as_deref(), Some("pgoutput"));
    assert!(parse_lsn(&slot.consistent_point) > 0);
    let snapshot = slot.snapshot_name.clone().expect("exported snapshot");

    // Committed after the snapshot: invisible to importers.
    client.batch_execute("INSERT INTO items VALUES (3)").await.unwrap();

    // Several workers import the snapshot while the replication connection stays idle.
    for _ in 0..2 {
        let (mut worker, connection) =
            tcp_config(&cluster, "postgres").connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        let tx = worker
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .unwrap();
        tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'")).await.unwrap();
        let n: i64 = tx.query_one("SELECT count(*) FROM items", &[]).await.unwrap().get(0);
        assert_eq!(n, 2);
        tx.commit().await.unwrap();
    }
    let temporary: bool = client
        .query_one("SELECT temporary FROM pg_replication_slots WHERE slot_name = 'snap_slot'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(temporary);

    // Any further command on the replication connection ends the snapshot.
    conn.identify_system().await.unwrap();
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let err =
        client.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'")).await.unwrap_err();
    assert_eq!(db_code(&err), Some("22023"), "{err}");
    client.batch_execute("ROLLBACK").await.unwrap();

    // The temporary slot goes away with the connection.
    conn.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slot_exists(&client, "snap_slot").await {
        assert!(Instant::now() < deadline, "temporary slot outlived its connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn permanent_slot_create_duplicate_drop() {
    let cluster = start(None);
    let client = cluster.connect("postgres").await;
    let mut conn = repl(&cluster).await;

    let slot = conn.create_logical_slot("perm_slot", false).await.unwrap();
    assert_eq!(slot.slot_name, "perm_slot");
    assert!(slot.snapshot_name.is_some());

    let mut other = repl(&cluster).await;
    let err = other.create_logical_slot("perm_slot", false).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42710"), "{err}");
    assert!(matches!(err, ReplicationError::Server { .. }));
    assert!(err.to_string().contains("already exists"), "{err}");
    // An odd name is quoted, so the server itself rejects it.
    let err = other.create_logical_slot("Bad \"name\"; x", true).await.unwrap_err();
    assert!(err.sqlstate().is_some(), "{err}");
    // Still usable after errors.
    other.identify_system().await.unwrap();
    other.close().await.unwrap();

    conn.close().await.unwrap();
    assert!(slot_exists(&client, "perm_slot").await);

    let mut conn = repl(&cluster).await;
    conn.drop_slot("perm_slot", true).await.unwrap();
    assert!(!slot_exists(&client, "perm_slot").await);
    let err = conn.drop_slot("perm_slot", false).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42704"), "{err}");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn password_authentication() {
    let cluster = start(None);
    let client = cluster.connect("postgres").await;
    client
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE scram_user LOGIN REPLICATION PASSWORD '{SECRET}';
             CREATE ROLE pw_user LOGIN REPLICATION PASSWORD '{SECRET}';
             SET password_encryption = 'md5';
             CREATE ROLE md5_user LOGIN REPLICATION PASSWORD '{SECRET}';"
        ))
        .await
        .unwrap();
    let stored: String = client
        .query_one("SELECT rolpassword FROM pg_authid WHERE rolname = 'md5_user'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("md5"), "md5 not stored as md5");

    for user in ["scram_user", "md5_user", "pw_user"] {
        let mut config = tcp_config(&cluster, user);
        config.password(SECRET);
        let mut conn = ReplicationConnection::connect(&config, None)
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        let rows = conn.simple_query("SELECT current_user AS u").await.unwrap();
        assert_eq!(rows.value(0, "u"), Some(user));
        assert!(!format!("{conn:?}").contains(SECRET));
        assert!(!format!("{:?}", conn.cancel_handle()).contains(SECRET));
        conn.close().await.unwrap();

        let mut config = tcp_config(&cluster, user);
        config.password("wrong-password");
        let err = ReplicationConnection::connect(&config, None).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("28P01"), "{user}: {err}");
        assert!(!err.to_string().contains("wrong-password"), "{err}");
        assert!(!format!("{err:?}").contains("wrong-password"), "{err:?}");

        let err =
            ReplicationConnection::connect(&tcp_config(&cluster, user), None).await.unwrap_err();
        match &err {
            ReplicationError::Auth { message } => assert_eq!(
                message,
                &format!(
                    "password required for user {user} (set PGPASSWORD, ~/.pgpass or \
                     password= in the conninfo)"
                )
            ),
            other => panic!("{user}: expected Auth, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn cancel_waiting_slot_creation() {
    let cluster = start(None);
    let blocker = cluster.connect("postgres").await;
    let observer = cluster.connect("postgres").await;
    // An open transaction with an xid makes slot creation wait for it.
    blocker.batch_execute("BEGIN; SELECT txid_current();").await.unwrap();

    let mut conn = repl(&cluster).await;
    let pid = conn.backend_pid();
    let handle = conn.cancel_handle();
    let canceller = async {
        // Slot creation waits for the blocker's xid.
        wait_for(&observer, pid, "transactionid").await;
        handle.cancel().await
    };
    let (created, cancelled) =
        tokio::join!(conn.create_logical_slot("cancel_me", false), canceller);
    cancelled.unwrap();
    let err = created.unwrap_err();
    assert_eq!(err.sqlstate(), Some("57014"), "{err}");
    assert!(!slot_exists(&observer, "cancel_me").await);

    // The connection survives the cancelled command.
    conn.identify_system().await.unwrap();
    // Cancelling while idle is harmless.
    conn.cancel_handle().cancel().await.unwrap();
    blocker.batch_execute("COMMIT").await.unwrap();
    let slot = conn.create_logical_slot("cancel_me", true).await.unwrap();
    assert_eq!(slot.slot_name, "cancel_me");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn tls_modes() {
    let certs = TestCerts::generate(&["127.0.0.1", "localhost"]);
    let cluster = start(Some(&certs));
    let tls = tls_config(&certs.ca_cert);
    let ssl_in_use = "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    let mut config = tcp_config(&cluster, "postgres");
    config.ssl_mode(SslMode::Require);
    let mut conn = ReplicationConnection::connect(&config, Some(Arc::clone(&tls))).await.unwrap();
    let rows = conn.simple_query(ssl_in_use).await.unwrap();
    assert_eq!(rows.value(0, "ssl"), Some("true"));
    // Cancel over TLS.
    let handle = conn.cancel_handle();
    let pid = conn.backend_pid();
    let observer = cluster.connect("postgres").await;
    let (slept, cancelled) = tokio::join!(conn.simple_query("SELECT pg_sleep(30)"), async {
        wait_for(&observer, pid, "PgSleep").await;
        handle.cancel().await
    });
    cancelled.unwrap();
    assert_eq!(slept.unwrap_err().sqlstate(), Some("57014"));
    conn.close().await.unwrap();

    // The server name is checked: "localhost" is in the certificate, this is not.
    let mut bad_name = tokio_postgres::Config::new();
    bad_name
        .host("pgsnap.invalid")
        .hostaddr("127.0.0.1".parse().unwrap())
        .port(cluster.port())
        .user("postgres")
        .ssl_mode(SslMode::Require);
    let err = ReplicationConnection::connect(&bad_name, Some(Arc::clone(&tls))).await.unwrap_err();
    assert!(matches!(err, ReplicationError::Tls { .. }), "{err:?}");

    // require without a TLS configuration fails; prefer without one is plain.
    let mut config = tcp_config(&cluster, "postgres");
    config.ssl_mode(SslMode::Require);
    let err = ReplicationConnection::connect(&config, None).await.unwrap_err();
    assert!(matches!(err, ReplicationError::Tls { .. }), "{err:?}");
    config.ssl_mode(SslMode::Prefer);
    let mut conn = ReplicationConnection::connect(&config, None).await.unwrap();
    let rows = conn.simple_query(ssl_in_use).await.unwrap();
    assert_eq!(rows.value(0, "ssl"), Some("false"));
    conn.close().await.unwrap();

    // A server without TLS: require fails, prefer falls back to plain.
    let plain = start(None);
    let mut config = tcp_config(&plain, "postgres");
    config.ssl_mode(SslMode::Require);
    let err = ReplicationConnection::connect(&config, Some(Arc::clone(&tls))).await.unwrap_err();
    assert!(matches!(err, ReplicationError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("does not support TLS"), "{err}");
    config.ssl_mode(SslMode::Prefer);
    let mut conn = ReplicationConnection::connect(&config, Some(tls)).await.unwrap();
    conn.identify_system().await.unwrap();
    conn.close().await.unwrap();
}

//! libpq `sslmode` semantics against live servers: a connection resolved by
//! `conninfo::resolve_with_env` and connected through `ConnSpec::make_tls` (tokio-postgres
//! with pgsnap's rustls connector), to a plain cluster and to one with TLS.

use std::error::Error as _;

use pgsnap_source::conninfo::resolve_with_env;
use pgsnap_source::tls::{TlsMode, client_config, make_tls_connect};
use pgsnap_test_support::{ClusterOptions, PgCluster, TestCerts};
use tokio_postgres::tls::MakeTlsConnect;

fn certs() -> TestCerts {
    TestCerts::generate(&["localhost", "127.0.0.1"])
}

/// Connection options for the superuser on `pg`, followed by `extra`.
fn conninfo(pg: &PgCluster, extra: &str) -> String {
    format!("port={} user=postgres dbname=postgres connect_timeout=20 {extra}", pg.port())
}

/// Connects through [`ConnSpec::make_tls`](pgsnap_source::conninfo::ConnSpec::make_tls)
/// and reports whether the session is encrypted, or the error chain.
async fn connect(conninfo: &str) -> Result<bool, String> {
    let spec = resolve_with_env(conninfo, &|_| None).map_err(|e| e.to_string())?;
    let tls = spec.make_tls().map_err(|e| e.to_string())?;
    let (client, connection) = spec.config.connect(tls).await.map_err(|e| {
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    })?;
    let task = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let _ = task.await;
    Ok(row.get(0))
}

#[tokio::test]
async fn plain_server_prefer_falls_back_and_require_fails() {
    let pg = PgCluster::start();

    let encrypted = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=prefer")).await.unwrap();
    assert!(!encrypted);

    let err = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=require")).await.unwrap_err();
    assert!(err.contains("server does not support TLS"), "{err}");

    let err = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=verify-full")).await.unwrap_err();
    assert!(err.contains("server does not support TLS"), "{err}");

    let encrypted = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=disable")).await.unwrap();
    assert!(!encrypted);

    // Unix sockets never use TLS (libpq), even with sslmode=require, and
    // the empty server name tokio-postgres passes for them is no error.
    let socket = format!("host={} sslmode=require", pg.socket_dir().display());
    assert!(!connect(&conninfo(&pg, &socket)).await.unwrap());
}

#[tokio::test]
async fn tls_server_modes() {
    let certs = certs();
    let pg = PgCluster::start_with(ClusterOptions::default().with_tls(&certs));
    let ca = certs.ca_cert.display().to_string();
    let other = certs.other_ca_cert.display().to_string();
    let ok = |s: Result<bool, String>, what: &str| {
        assert_eq!(s.as_ref().map_err(String::as_str), Ok(&true), "{what}");
    };

    ok(connect(&conninfo(&pg, "host=127.0.0.1 sslmode=prefer")).await, "prefer");
    ok(connect(&conninfo(&pg, "host=127.0.0.1 sslmode=require")).await, "require");
    ok(
        connect(&conninfo(&pg, &format!("host=localhost sslmode=verify-full sslrootcert={ca}")))
            .await,
        "verify-full by name",
    );
    ok(
        connect(&conninfo(&pg, &format!("host=127.0.0.1 sslmode=verify-full sslrootcert={ca}")))
            .await,
        "verify-full by IP",
    );

    // The certificate does not name `wrong.invalid`: only verify-full cares.
    let wrong = |mode: &str, root: &str| {
        conninfo(
            &pg,
            &format!("host=wrong.invalid hostaddr=127.0.0.1 sslmode={mode} sslrootcert={root}"),
        )
    };
    ok(connect(&wrong("verify-ca", &ca)).await, "verify-ca, other name");
    ok(connect(&wrong("require", &ca)).await, "require with root, other name");
    let err = connect(&wrong("verify-full", &ca)).await.unwrap_err();
    assert!(err.contains("error performing TLS handshake"), "{err}");
    assert!(err.to_lowercase().contains("not valid for name"), "{err}");

    // A root that did not sign the server certificate fails every
    // verifying mode, including require (libpq's root.crt rule).
    for mode in ["verify-ca", "verify-full", "require"] {
        let s = conninfo(&pg, &format!("host=localhost sslmode={mode} sslrootcert={other}"));
        let err = connect(&s).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{mode}: {err}");
    }

    // verify-full without a root file uses the public roots, which do
    // not know the test CA.
    let err = connect(&conninfo(&pg, "host=localhost sslmode=verify-full")).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // A hand-made connection over a plain TcpStream (as the replication
    // connection does) with `connect_raw`.
    let mut make =
        make_tls_connect(client_config(TlsMode::VerifyFull, Some(&certs.ca_cert)).unwrap());
    let connector =
        MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(&mut make, "localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", pg.port())).await.unwrap();
    let mut config: tokio_postgres::Config = "user=postgres dbname=postgres".parse().unwrap();
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, connection) = config.connect_raw(tcp, connector).await.unwrap();
    let task = tokio::spawn(connection);
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    drop(client);
    let _ = task.await;

    // sslmode=disable still connects in the clear.
    assert!(!connect(&conninfo(&pg, "host=127.0.0.1 sslmode=disable")).await.unwrap());
}

//! Bad input and hostile peers: typed errors that name the culprit.

use std::sync::Arc;

use pgsnap_core::{MemorySource, TableName};
use pgsnap_sink_starrocks::{Error, StarRocksSinkBuilder};
use pgsnap_test_support::TestCerts;
use pgsnap_test_support::starrocks::{KeysType, StarRocksOptions, table_def};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn example_schema() -> Vec<pgsnap_core::TableSchema> {
    let (_, m) = MemorySource::example(1, 1);
    m.tables.iter().map(|t| t.schema.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_fe_names_the_address() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sink = StarRocksSinkBuilder::new(format!("http://127.0.0.1:{port}"), DB)
        .with_run_id("r")
        .build()
        .unwrap();
    let err = sink.check_connection().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error_over_http_and_sql() {
    let d = double_with(StarRocksOptions::default().with_user("loader", "right")).await;
    let b = builder(&d).with_user("loader").with_password("wrong");
    let err = b.clone().build().unwrap().check_connection().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("loader") && !err.to_string().contains("wrong"), "{err}");
    // SQL alone (HTTP probe passes with the right password, SQL user differs): also Auth.
    let err = b.build().unwrap().prepare_tables(&example_schema()).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_named() {
    let d = double().await;
    let sink = StarRocksSinkBuilder::new(d.fe_url(), "nope")
        .with_fe_sql(d.mysql_addr().to_string())
        .with_run_id("r")
        .build()
        .unwrap();
    let err = sink.check_connection().await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownDatabase { ref database, .. } if database == "nope"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_without_create_tables_is_named() {
    let d = double().await;
    let sink = builder(&d).with_create_tables(false).build().unwrap();
    let err = sink.prepare_tables(&example_schema()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownTable { ref table, .. } if table == "t"), "{err:?}");
    assert!(err.to_string().contains("with_create_tables"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_mismatch_names_the_columns() {
    let d = double().await;
    // `v` is too short and `id` has the wrong type.
    d.create_table(
        DB,
        table_def(
            "t",
            KeysType::Primary,
            &["id"],
            &[("ID", "DATE", false), ("v", "VARCHAR(10)", true), ("extra", "INT", true)],
        ),
    );
    let err = builder(&d).build().unwrap().prepare_tables(&example_schema()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err:?}");
    assert!(msg.contains("\"v\"") && msg.contains("\"ID\" is date"), "{msg}");
    assert!(!msg.contains("is missing"), "column names match case-insensitively: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tables_onto_one_target_are_refused() {
    let d = double().await;
    let mut schemas = example_schema();
    let mut other = schemas[0].clone();
    other.name = TableName::new("public", "u");
    schemas.push(other);
    let sink = builder(&d).with_table_mapping(TableName::new("public", "u"), "t").build().unwrap();
    let err = sink.prepare_tables(&schemas).await.unwrap_err();
    assert!(matches!(err, Error::TargetCollision { .. }), "{err:?}");
    assert!(err.to_string().contains("\"public\".\"u\""), "{err}");
}

/// An HTTPS "FE" that redirects to the plain-HTTP BE, as StarRocks' FE always does: the sink
/// refuses to follow (the password would travel in clear) and nothing reaches the BE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_http_redirect_is_refused() {
    let d = double().await;
    create_plain_table(&d);
    let certs = TestCerts::generate(&["localhost"]);
    let tls = tls_acceptor(&certs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let be = d.be_url();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            let be = be.clone();
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else { return };
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = s.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&got);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {be}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    // Point the sink at the HTTPS front (the builder took the double's http FE first).
    let sink = Arc::new(
        StarRocksSinkBuilder::new(format!("https://localhost:{port}"), DB)
            .with_run_id("r")
            .with_ca_file(&certs.ca_cert)
            .without_sql()
            .build()
            .unwrap(),
    );
    let (source, manifest) = MemorySource::example(1, 10);
    sink.prepare_tables(&manifest.tables.iter().map(|t| t.schema.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    let t = &manifest.tables[0];
    let chunk = t.chunk(&t.chunks[0]);
    let data = pgsnap_core::Source::read_chunk(&source, &chunk, pgsnap_core::DataFormat::Text)
        .await
        .unwrap();
    let err = pgsnap_core::Sink::write_chunk(sink.as_ref(), &chunk, data, &Default::default())
        .await
        .unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    let msg = pgsnap_core::error_chain(&err);
    assert!(msg.contains("plain HTTP") && msg.contains(&d.be_url()), "{msg}");
    assert!(d.loads().is_empty(), "nothing may reach the BE: {:?}", d.loads());
    // Allowed explicitly, it loads.
    let allowed = StarRocksSinkBuilder::new(format!("https://localhost:{port}"), DB)
        .with_run_id("r")
        .with_ca_file(&certs.ca_cert)
        .with_allow_insecure_redirect(true)
        .without_sql()
        .build()
        .unwrap();
    allowed
        .prepare_tables(&manifest.tables.iter().map(|t| t.schema.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    let data = pgsnap_core::Source::read_chunk(&source, &chunk, pgsnap_core::DataFormat::Text)
        .await
        .unwrap();
    pgsnap_core::Sink::write_chunk(&allowed, &chunk, data, &Default::default()).await.unwrap();
    assert_eq!(d.rows(DB, "t").len(), 10);
}

fn create_plain_table(d: &pgsnap_test_support::starrocks::StarRocksDouble) {
    d.create_table(
        DB,
        table_def(
            "t",
            KeysType::Primary,
            &["id"],
            &[("id", "INT", false), ("v", "VARCHAR(1048576)", true)],
        ),
    );
}

fn tls_acceptor(certs: &TestCerts) -> tokio_rustls::TlsAcceptor {
    let certs_pem = std::fs::read(&certs.server_cert).unwrap();
    let key_pem = std::fs::read(&certs.server_key).unwrap();
    let chain: Vec<_> =
        CertificateDer::pem_slice_iter(&certs_pem).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

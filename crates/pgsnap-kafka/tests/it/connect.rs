//! `pgsnap_kafka::connect::ConnectClient` against the Kafka Connect REST **test double**
//! [`pgsnap_test_support::connect::ConnectDouble`] (see its module doc for what it serves):
//! over plain `http://`, and over `https://` through
//! [`pgsnap_test_support::https_front::HttpsFront`] (TLS with a CA the test makes, basic
//! authentication, a redirect).

use std::time::Duration;

use pgsnap_kafka::Error;
use pgsnap_kafka::connect::ConnectClient;
use pgsnap_kafka::render::{DebeziumConfig, PgConnection, render_debezium_config};
use pgsnap_test_support::TestCerts;
use pgsnap_test_support::connect::{ConnectDouble, State};
use pgsnap_test_support::https_front::{FrontOptions, HttpsFront};
use serde_json::{Value, json};

const PASSWORD: &str = "${file:/secrets/pg.properties:password}";

fn payload(name: &str) -> Value {
    render_debezium_config(&DebeziumConfig {
        name: name.into(),
        topic_prefix: "pg".into(),
        database: PgConnection {
            host: "db".into(),
            port: 5432,
            dbname: "app".into(),
            user: "cdc".into(),
        },
        password_placeholder: PASSWORD.into(),
        slot: "pgsnap_slot".into(),
        publication: "pgsnap_pub".into(),
        tables: vec![("public".into(), "orders".into())],
        properties: vec![],
    })
    .unwrap()
}

fn debezium_offset() -> Value {
    json!({
        "partition": {"server": "pg"},
        "offset": {"lsn_proc": 37051152, "messageType": "INSERT", "lsn_commit": 36989040,
                   "lsn": 37051152, "txId": 1007, "ts_usec": 1767208115470483u64}
    })
}

#[tokio::test]
async fn fresh_name_is_created() {
    let double = ConnectDouble::start(State::default()).await;
    let client = ConnectClient::new(&double.url).unwrap();
    let name = "pgsnap app/1";
    assert_eq!(client.connector(name).await.unwrap(), None);
    assert_eq!(client.stored_offsets(name).await.unwrap(), None);

    let created = client.submit(&payload(name)).await.unwrap();
    assert_eq!(created.status, 201);
    assert_eq!(created.name, name);
    assert_eq!(created.connector_type.as_deref(), Some("source"));
    assert_eq!(created.config["snapshot.mode"], "no_data");
    // The answer's config is redacted; what was sent is the placeholder itself.
    assert_eq!(created.config["database.password"], "<redacted>");
    assert!(!format!("{created:?} {created}").contains(PASSWORD));
    assert_eq!(double.last_post(), Some(payload(name)));
    assert_eq!(
        double.requests(),
        vec![
            "GET /connectors/pgsnap%20app%2F1",
            "GET /connectors/pgsnap%20app%2F1/offsets",
            "GET /connectors/pgsnap%20app%2F1",
            "GET /connectors/pgsnap%20app%2F1/offsets",
            "POST /connectors",
        ]
    );

    // It exists now: GET shows it (redacted), offsets are listed (none yet), and a second
    // submit is refused.
    let info = client.connector(name).await.unwrap().unwrap();
    assert_eq!(info["config"]["database.password"], "<redacted>");
    assert_eq!(client.stored_offsets(name).await.unwrap(), Some(json!([])));
    let err = client.submit(&payload(name)).await.unwrap_err();
    assert!(matches!(err, Error::ConnectorExists { stored_offsets: Some(0), .. }), "{err}");
}

#[tokio::test]
async fn existing_connector_is_refused() {
    let mut state = State::default();
    state.connectors.insert("pgsnap-app-1".into(), payload("pgsnap-app-1")["config"].clone());
    let double = ConnectDouble::start(state).await;
    let client = ConnectClient::new(&format!("{}/", double.url)).unwrap();
    let err = client.submit(&payload("pgsnap-app-1")).await.unwrap_err();
    let Error::ConnectorExists { ref url, ref connector, stored_offsets } = err else {
        panic!("{err}")
    };
    assert_eq!(
        (url.as_str(), connector.as_str(), stored_offsets),
        (&*double.url, "pgsnap-app-1", Some(0))
    );
    let text = err.to_string();
    assert!(
        text.contains(&double.url)
            && text.contains("\"pgsnap-app-1\"")
            && text.contains("pick a new connector name"),
        "{text}"
    );
    assert!(!format!("{err:?}").contains(PASSWORD));
    // Nothing was posted.
    assert!(double.requests().iter().all(|r| !r.starts_with("POST")), "{:?}", double.requests());
    assert_eq!(double.last_post(), None);
}

#[tokio::test]
async fn stored_offsets_are_refused() {
    let mut state = State::default();
    state.connectors.insert("pgsnap-app-2".into(), payload("pgsnap-app-2")["config"].clone());
    state.offsets.insert("pgsnap-app-2".into(), vec![debezium_offset()]);
    let double = ConnectDouble::start(state).await;
    let client = ConnectClient::new(&double.url).unwrap();

    assert_eq!(
        client.stored_offsets("pgsnap-app-2").await.unwrap(),
        Some(json!([debezium_offset()]))
    );
    let err = client.submit(&payload("pgsnap-app-2")).await.unwrap_err();
    assert!(
        matches!(err, Error::OffsetsStored { count: 1, ref connector, .. } if connector == "pgsnap-app-2"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("1 stored offsets")
            && text.contains("pick a new connector name")
            && text.contains("DELETE /connectors/pgsnap-app-2/offsets"),
        "{text}"
    );
    assert_eq!(double.last_post(), None);
}

#[tokio::test]
async fn conflict_on_create_and_transport_errors_are_typed() {
    let state = State { created_meanwhile: vec!["pgsnap-app-3".into()], ..State::default() };
    let double = ConnectDouble::start(state).await;
    let client = ConnectClient::new(&double.url).unwrap();
    let err = client.submit(&payload("pgsnap-app-3")).await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectConflict { ref message, .. } if message == "Connector pgsnap-app-3 already exists"),
        "{err}"
    );

    // Not a connector payload.
    let err = client.submit(&json!({"config": {}})).await.unwrap_err();
    assert!(matches!(err, Error::ConnectPayload { .. }), "{err}");

    // Nobody listening: the error names the URL and the request.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = ConnectClient::new(&dead).unwrap().submit(&payload("x")).await.unwrap_err();
    assert!(matches!(err, Error::ConnectIo { .. }), "{err}");
    assert!(
        err.to_string().contains(&dead) && err.to_string().contains("GET /connectors/x"),
        "{err}"
    );
}

// ---- HTTPS and authentication ----

const USER: &str = "pgsnap-connect";
const CONNECT_PASSWORD: &str = "connect-pw-0f3a9";

/// A Connect double behind an HTTPS front with a certificate for 127.0.0.1 signed by the
/// test's CA, asking for `USER`/`CONNECT_PASSWORD`.
async fn https_connect(redirect_to: Option<&str>) -> (TestCerts, ConnectDouble, HttpsFront) {
    let certs = TestCerts::generate(&["127.0.0.1"]);
    let double = ConnectDouble::start(State::default()).await;
    let options = FrontOptions {
        basic_auth: Some((USER.into(), CONNECT_PASSWORD.into())),
        redirect_to: redirect_to.map(str::to_owned),
    };
    let front = HttpsFront::start(&double.url, &certs, options).await;
    (certs, double, front)
}

/// No secret in an error's text or `Debug`.
fn assert_no_secret(e: &Error) {
    let text = format!("{e} {e:?}");
    for secret in [CONNECT_PASSWORD, "wrong-pw-77", PASSWORD] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn https_with_the_ca_and_the_password_works() {
    let (certs, double, front) = https_connect(None).await;
    let client = ConnectClient::new(&front.url)
        .unwrap()
        .with_ca_file(&certs.ca_cert)
        .unwrap()
        .with_basic_auth(USER, CONNECT_PASSWORD);
    assert!(!format!("{client:?}").contains(CONNECT_PASSWORD), "{client:?}");
    assert_eq!(client.ca_file(), Some(certs.ca_cert.as_path()));
    // The double answers 404 on `/`: reachable, trusted, authorized, no version.
    assert_eq!(client.worker_version().await.unwrap(), None);

    let name = "pgsnap-https-1";
    let created = client.submit(&payload(name)).await.unwrap();
    assert_eq!((created.status, created.name.as_str()), (201, name));
    assert_eq!(double.last_post(), Some(payload(name)));
    assert_eq!(
        double.requests(),
        vec![
            "GET /",
            "GET /connectors/pgsnap-https-1",
            "GET /connectors/pgsnap-https-1/offsets",
            "POST /connectors",
        ]
    );
    // The connector exists now: the same refusal as over http.
    let err = client.submit(&payload(name)).await.unwrap_err();
    assert!(matches!(err, Error::ConnectorExists { .. }), "{err}");
    assert_eq!(front.handshake_failures(), 0);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_not_trusted() {
    let (certs, double, front) = https_connect(None).await;
    // The CA file holds a CA that did not sign the server's certificate.
    let client = ConnectClient::new(&front.url)
        .unwrap()
        .with_ca_file(&certs.other_ca_cert)
        .unwrap()
        .with_basic_auth(USER, CONNECT_PASSWORD);
    let err = client.submit(&payload("pgsnap-https-2")).await.unwrap_err();
    let Error::ConnectTls { ref url, method, ref path, .. } = err else { panic!("{err:?}") };
    assert_eq!(
        (url.as_str(), method, path.as_str()),
        (&*front.url, "GET", "/connectors/pgsnap-https-2")
    );
    let text = err.to_string();
    assert!(
        text.contains(&front.url)
            && text.contains("certificate was not trusted")
            && text.contains("UnknownIssuer")
            && text.contains(&certs.other_ca_cert.display().to_string())
            && text.contains("ConnectClient::with_ca_file"),
        "{text}"
    );
    assert!(!err.is_temporary());
    assert_no_secret(&err);
    assert!(!pgsnap_core::Error::from(err).is_temporary());

    // Without a CA file only the public roots are trusted: the same refusal, saying to give one.
    let client = ConnectClient::new(&front.url).unwrap().with_basic_auth(USER, CONNECT_PASSWORD);
    let err = client.worker_version().await.unwrap_err();
    assert!(matches!(err, Error::ConnectTls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("not trusted")
            && text.contains("no public root CA")
            && text.contains("ConnectClient::with_ca_file"),
        "{text}"
    );
    assert_no_secret(&err);
    // Nothing got past the handshake.
    assert!(front.requests().is_empty(), "{:?}", front.requests());
    assert!(double.requests().is_empty(), "{:?}", double.requests());
    // Both handshakes failed on the server's side too (counted once the alert arrives).
    for _ in 0..100 {
        if front.handshake_failures() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(front.handshake_failures(), 2);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let (certs, _double, front) = https_connect(None).await;
    // The certificate lists 127.0.0.1 only.
    let url = front.url.replace("127.0.0.1", "localhost");
    let client = ConnectClient::new(&url).unwrap().with_ca_file(&certs.ca_cert).unwrap();
    let err = client.worker_version().await.unwrap_err();
    assert!(matches!(err, Error::ConnectTls { .. }), "{err:?}");
    assert!(err.to_string().contains("not valid for the host"), "{err}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_name_without_the_password() {
    let (certs, double, front) = https_connect(None).await;
    let client = ConnectClient::new(&front.url)
        .unwrap()
        .with_ca_file(&certs.ca_cert)
        .unwrap()
        .with_basic_auth(USER, "wrong-pw-77");
    let err = client.submit(&payload("pgsnap-https-3")).await.unwrap_err();
    let Error::ConnectAuth { status, ref user, ref path, .. } = err else { panic!("{err:?}") };
    assert_eq!(
        (status, user.as_deref(), path.as_str()),
        (401, Some(USER), "/connectors/pgsnap-https-3")
    );
    let text = err.to_string();
    assert!(
        text.contains(&front.url)
            && text.contains("HTTP 401")
            && text.contains(&format!("refused the credentials of user \"{USER}\""))
            && text.contains("ConnectClient::with_basic_auth"),
        "{text}"
    );
    assert!(!err.is_temporary());
    assert_no_secret(&err);

    // No credentials at all: 401 too, saying none were given.
    let client = ConnectClient::new(&front.url).unwrap().with_ca_file(&certs.ca_cert).unwrap();
    let err = client.worker_version().await.unwrap_err();
    assert!(matches!(err, Error::ConnectAuth { user: None, status: 401, .. }), "{err:?}");
    assert!(err.to_string().contains("requires credentials and none were given"), "{err}");
    // The front saw the requests; none reached Connect, nothing was posted.
    assert_eq!(front.requests().len(), 2, "{:?}", front.requests());
    assert!(double.requests().is_empty(), "{:?}", double.requests());
}

#[tokio::test]
async fn a_redirect_is_refused() {
    let (certs, double, front) = https_connect(Some("https://elsewhere.invalid:8443")).await;
    let client = ConnectClient::new(&front.url)
        .unwrap()
        .with_ca_file(&certs.ca_cert)
        .unwrap()
        .with_basic_auth(USER, CONNECT_PASSWORD);
    let err = client.submit(&payload("pgsnap-https-4")).await.unwrap_err();
    let Error::ConnectRedirect { status, ref location, .. } = err else { panic!("{err:?}") };
    assert_eq!(status, 307);
    assert_eq!(
        location.as_deref(),
        Some("https://elsewhere.invalid:8443/connectors/pgsnap-https-4")
    );
    assert!(err.to_string().contains("follows no redirects"), "{err}");
    assert!(!err.is_temporary());
    assert_no_secret(&err);
    // One request, not followed; nothing reached Connect.
    assert_eq!(front.requests(), vec!["GET /connectors/pgsnap-https-4"]);
    assert!(double.requests().is_empty());
}

#[tokio::test]
async fn a_silent_worker_times_out_as_a_temporary_error() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let client = ConnectClient::new(&url).unwrap().with_timeout(Duration::from_millis(300));
    let err = client.connector("c").await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectTimeout { timeout, .. } if timeout == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.is_temporary());
    hold.abort();
}

#[tokio::test]
async fn basic_auth_over_plain_http_is_sent() {
    // The plain double ignores credentials; the client still works over http with them.
    let double = ConnectDouble::start(State::default()).await;
    let client = ConnectClient::new(&double.url).unwrap().with_basic_auth(USER, CONNECT_PASSWORD);
    assert_eq!(client.connector("none").await.unwrap(), None);
    assert_eq!(double.requests(), vec!["GET /connectors/none"]);
}

//! `pgsnap_kafka::connect::ConnectClient` against the Kafka Connect REST **test double**
//! [`pgsnap_test_support::connect::ConnectDouble`] (see its module doc for what it serves).

use pgsnap_kafka::Error;
use pgsnap_kafka::connect::ConnectClient;
use pgsnap_kafka::render::{DebeziumConfig, PgConnection, render_debezium_config};
use pgsnap_test_support::connect::{ConnectDouble, State};
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

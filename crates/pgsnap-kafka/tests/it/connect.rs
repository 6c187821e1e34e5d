//! `pgsnap_kafka::connect::ConnectClient` against a Kafka Connect REST **test double**.
//!
//! `ConnectDouble` is not Kafka Connect: it is a tiny HTTP/1.1 server implementing only the
//! three endpoints the client uses, with the response shapes of the Kafka Connect REST API
//! ("Connect REST Interface", <https://kafka.apache.org/documentation/#connect_rest>,
//! <https://docs.confluent.io/platform/current/connect/references/restapi.html>; KIP-875 for
//! the offsets endpoint):
//!
//! - `GET /connectors/{name}` → 200 `{"name","config","tasks","type"}`, or 404
//!   `{"error_code":404,"message":"Connector {name} not found"}`;
//! - `GET /connectors/{name}/offsets` → 200 `{"offsets":[{"partition":{…},"offset":{…}}]}`
//!   (sent with `Transfer-Encoding: chunked`, as Jetty may), or the same 404 for an unknown
//!   connector (as Kafka 3.6+ does);
//! - `POST /connectors` → 201 `{"name","config","tasks":[],"type":"source"}`, or 409
//!   `{"error_code":409,"message":"Connector {name} already exists"}`.
//!
//! Anything else answers 404. It records every request line and the last POST body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pgsnap_kafka::connect::{ConnectClient, ConnectError};
use pgsnap_kafka::render::{DebeziumConfig, PgConnection, render_debezium_config};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "${file:/secrets/pg.properties:password}";

#[derive(Debug, Default)]
struct State {
    /// name → config.
    connectors: HashMap<String, Value>,
    /// name → stored offsets (`[{"partition", "offset"}]`).
    offsets: HashMap<String, Vec<Value>>,
    /// Names that GET does not show but POST conflicts on (a connector created meanwhile).
    created_meanwhile: Vec<String>,
    /// `METHOD path` of every request.
    requests: Vec<String>,
    /// Body of the last POST.
    last_post: Option<Value>,
}

/// The Kafka Connect REST test double (see the module doc).
#[derive(Debug, Clone)]
struct ConnectDouble {
    url: String,
    state: Arc<Mutex<State>>,
}

impl ConnectDouble {
    async fn start(state: State) -> ConnectDouble {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(state));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let st = Arc::clone(&shared);
                tokio::spawn(async move { serve(sock, st).await });
            }
        });
        ConnectDouble { url, state }
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    fn last_post(&self) -> Option<Value> {
        self.state.lock().unwrap().last_post.clone()
    }
}

fn not_found(name: &str) -> (u16, Value) {
    (404, json!({"error_code": 404, "message": format!("Connector {name} not found")}))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (method, path, body) = loop {
        let n = sock.read(&mut chunk).await.unwrap();
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(&buf).unwrap() {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| std::str::from_utf8(h.value).unwrap().parse::<usize>().unwrap());
            if buf.len() >= head + len {
                break (
                    req.method.unwrap().to_owned(),
                    req.path.unwrap().to_owned(),
                    buf[head..head + len].to_vec(),
                );
            }
        }
    };
    let segments: Vec<String> =
        path.trim_start_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut chunked = false;
    let (status, answer) = {
        let mut st = state.lock().unwrap();
        st.requests.push(format!("{method} {path}"));
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["connectors", name]) => match st.connectors.get(*name) {
                Some(config) => (
                    200,
                    json!({"name": name, "config": config, "tasks": [{"connector": name, "task": 0}], "type": "source"}),
                ),
                None => not_found(name),
            },
            ("GET", ["connectors", name, "offsets"]) => {
                chunked = true;
                if st.connectors.contains_key(*name) {
                    let offsets = st.offsets.get(*name).cloned().unwrap_or_default();
                    (200, json!({ "offsets": offsets }))
                } else {
                    not_found(name)
                }
            }
            ("POST", ["connectors"]) => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                st.last_post = Some(v.clone());
                let name = v["name"].as_str().unwrap().to_owned();
                if st.connectors.contains_key(&name) || st.created_meanwhile.contains(&name) {
                    (
                        409,
                        json!({"error_code": 409, "message": format!("Connector {name} already exists")}),
                    )
                } else {
                    st.connectors.insert(name.clone(), v["config"].clone());
                    (
                        201,
                        json!({"name": name, "config": v["config"], "tasks": [], "type": "source"}),
                    )
                }
            }
            _ => (404, json!({"error_code": 404, "message": "HTTP 404 Not Found"})),
        }
    };
    let body = answer.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        _ => "Conflict",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n");
    if chunked {
        out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        let (a, b) = body.split_at(body.len() / 2);
        for part in [a, b] {
            out.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
        }
        out.push_str("0\r\n\r\n");
    } else {
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    }
    let _ = sock.write_all(out.as_bytes()).await;
    let _ = sock.shutdown().await;
}

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
        schemas_enabled: false,
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
    assert!(matches!(err, ConnectError::ConnectorExists { stored_offsets: Some(0), .. }), "{err}");
}

#[tokio::test]
async fn existing_connector_is_refused() {
    let mut state = State::default();
    state.connectors.insert("pgsnap-app-1".into(), payload("pgsnap-app-1")["config"].clone());
    let double = ConnectDouble::start(state).await;
    let client = ConnectClient::new(&format!("{}/", double.url)).unwrap();
    let err = client.submit(&payload("pgsnap-app-1")).await.unwrap_err();
    let ConnectError::ConnectorExists { ref url, ref connector, stored_offsets } = err else {
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
        matches!(err, ConnectError::OffsetsStored { count: 1, ref connector, .. } if connector == "pgsnap-app-2"),
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
        matches!(err, ConnectError::Conflict { ref message, .. } if message == "Connector pgsnap-app-3 already exists"),
        "{err}"
    );

    // Not a connector payload.
    let err = client.submit(&json!({"config": {}})).await.unwrap_err();
    assert!(matches!(err, ConnectError::InvalidPayload { .. }), "{err}");

    // Nobody listening: the error names the URL and the request.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = ConnectClient::new(&dead).unwrap().submit(&payload("x")).await.unwrap_err();
    assert!(matches!(err, ConnectError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(&dead) && err.to_string().contains("GET /connectors/x"),
        "{err}"
    );
}

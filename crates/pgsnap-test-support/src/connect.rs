//! A Kafka Connect REST **test double** for `pgsnap_kafka::connect::ConnectClient`.
//!
//! [`ConnectDouble`] is not Kafka Connect: it is a tiny HTTP/1.1 server implementing only the
//! endpoints the client uses, with the response shapes of the Kafka Connect REST API
//! ("Connect REST Interface", <https://kafka.apache.org/documentation/#connect_rest>,
//! <https://docs.confluent.io/platform/current/connect/references/restapi.html>; KIP-875 for
//! the offsets endpoint):
//!
//! - `GET /connectors/{name}` → 200 `{"name","config","tasks","type"}`, or 404
//!   `{"error_code":404,"message":"Connector {name} not found"}`;
//! - `GET /connectors/{name}/config` → 200 with the config object, or the same 404;
//! - `GET /connectors/{name}/status` → 200 `{"name","connector":{"state","worker_id"},
//!   "tasks":[{"id":0,"state","worker_id"}],"type":"source"}` with the state of
//!   [`State::states`] (default `RUNNING`), or the same 404;
//! - `GET /connectors/{name}/offsets` → 200 `{"offsets":[{"partition":{…},"offset":{…}}]}`
//!   (sent with `Transfer-Encoding: chunked`, as Jetty may), or the same 404 for an unknown
//!   connector (as Kafka 3.6+ does);
//! - `POST /connectors` → 201 `{"name","config","tasks":[],"type":"source"}`, or 409
//!   `{"error_code":409,"message":"Connector {name} already exists"}`.
//!
//! Anything else answers 404. It records every request line and the last POST body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the double holds and records; give it to [`ConnectDouble::start`].
#[derive(Debug, Default)]
pub struct State {
    /// name → config.
    pub connectors: HashMap<String, Value>,
    /// name → stored offsets (`[{"partition", "offset"}]`).
    pub offsets: HashMap<String, Vec<Value>>,
    /// name → the connector's (and its task's) state in `GET /connectors/{name}/status`
    /// (absent: `RUNNING`).
    pub states: HashMap<String, String>,
    /// Names that GET does not show but POST conflicts on (a connector created meanwhile).
    pub created_meanwhile: Vec<String>,
    /// `METHOD path` of every request.
    pub requests: Vec<String>,
    /// Body of the last POST.
    pub last_post: Option<Value>,
}

/// The Kafka Connect REST test double (see the module doc).
#[derive(Debug, Clone)]
pub struct ConnectDouble {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The shared state (change it while the double runs).
    pub state: Arc<Mutex<State>>,
}

impl ConnectDouble {
    /// Listens on a free port of 127.0.0.1 (on the current tokio runtime).
    pub async fn start(state: State) -> ConnectDouble {
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

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The body of the last POST.
    pub fn last_post(&self) -> Option<Value> {
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
            ("GET", ["connectors", name, "config"]) => match st.connectors.get(*name) {
                Some(config) => (200, config.clone()),
                None => not_found(name),
            },
            ("GET", ["connectors", name, "status"]) => match st.connectors.get(*name) {
                Some(_) => {
                    let state = st.states.get(*name).map_or("RUNNING", String::as_str);
                    let worker = "127.0.0.1:8083";
                    (
                        200,
                        json!({"name": name, "connector": {"state": state, "worker_id": worker},
                               "tasks": [{"id": 0, "state": state, "worker_id": worker}],
                               "type": "source"}),
                    )
                }
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

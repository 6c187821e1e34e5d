//! A small Kafka Connect REST client: submits the Debezium connector payload rendered by
//! [`render_debezium_config`](crate::render::render_debezium_config), and refuses when the
//! connector name is already taken or has stored offsets.
//!
//! Why refuse: Kafka Connect keys a source connector's stored offsets by its name (the
//! offsets-topic key is `["<name>", {"server": "<topic.prefix>"}]`). In the slot-first
//! design the connector must start from pgsnap's slot with no stored offsets; a name that
//! already has offsets would resume from them instead and the handoff would not be exact.
//!
//! Endpoints used (Kafka Connect REST API, "Connect REST Interface",
//! <https://kafka.apache.org/documentation/#connect_rest> and
//! <https://docs.confluent.io/platform/current/connect/references/restapi.html>):
//!
//! - `GET /connectors/{name}`: 200 with `{"name","config","tasks","type"}` when the connector
//!   exists, 404 with `{"error_code":404,"message":"Connector {name} not found"}` otherwise;
//! - `GET /connectors/{name}/offsets` (KIP-875, Kafka 3.6+):
//!   `{"offsets":[{"partition":{…},"offset":{…}}]}`; 404 for an unknown connector (and on
//!   workers older than 3.6, which do not have the endpoint);
//! - `POST /connectors` with `{"name","config"}`: 201 with `{"name","config","tasks","type"}`;
//!   409 when a connector of that name exists (or while the worker group rebalances).
//!
//! Errors use Connect's standard error body `{"error_code": …, "message": …}`.
//!
//! **What the check cannot see.** Offsets stay in the offsets topic when a connector is
//! deleted, but `GET /connectors/{name}/offsets` only answers for an existing connector. So
//! a name that belonged to a *deleted* connector passes [`ConnectClient::submit`]'s check and
//! the new connector resumes from the old offsets. Use a name that was never used (the
//! renderer's doc suggests a date or run id in it), or reset the old offsets before deleting
//! (`DELETE /connectors/{name}/offsets` on a stopped connector, Kafka 3.6+).
//!
//! The client speaks plain HTTP/1.1 (`http://` only, one connection per request,
//! `Connection: close`) over tokio, parsing responses with `httparse`; TLS and
//! authentication are not supported. It never logs or returns the connector config's
//! secrets: `*password*` config values are replaced by `<redacted>` in
//! [`CreatedConnector::config`], in errors, and by [`redact`].

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// How long one request may take by default (connect, send, read).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body accepted.
const MAX_RESPONSE: usize = 16 << 20;
/// What replaces secret values.
pub const REDACTED: &str = "<redacted>";

/// The connector Kafka Connect created (`POST /connectors` answer), secrets redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedConnector {
    /// The HTTP status (201).
    pub status: u16,
    /// The connector name.
    pub name: String,
    /// The config as Connect stored it, with `*password*` values replaced by `<redacted>`.
    pub config: Map<String, Value>,
    /// The tasks (`[{"connector": …, "task": 0}]`; often empty right after creation).
    pub tasks: Vec<Value>,
    /// `source` or `sink`, when the worker says.
    pub connector_type: Option<String>,
}

/// A Kafka Connect worker's REST API.
///
/// # Example
/// ```no_run
/// # async fn demo(payload: serde_json::Value) -> pgsnap_kafka::Result<()> {
/// use pgsnap_kafka::connect::ConnectClient;
/// let client = ConnectClient::new("http://connect:8083")?;
/// // Refuses when the name exists or has stored offsets.
/// let created = client.submit(&payload).await?;
/// println!("created {} ({} tasks)", created.name, created.tasks.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectClient {
    url: String,
    host: String,
    port: u16,
    base_path: String,
    timeout: Duration,
}

/// A parsed HTTP response.
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl ConnectClient {
    /// A client for the worker at `url` (`http://host[:port][/path]`, port 80 by default; a
    /// path prefix is kept for workers behind a proxy).
    ///
    /// # Errors
    /// [`Error::ConnectUrl`] for anything else (`https://` included: TLS is not
    /// supported).
    ///
    /// ```
    /// use pgsnap_kafka::connect::ConnectClient;
    /// assert_eq!(ConnectClient::new("http://connect:8083/").unwrap().url(), "http://connect:8083");
    /// assert!(ConnectClient::new("https://connect:8083").is_err());
    /// assert!(ConnectClient::new("connect:8083").is_err());
    /// ```
    pub fn new(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::ConnectUrl { url: url.into(), reason: reason.into() };
        let trimmed = url.trim_end_matches('/');
        let Some(rest) = trimmed.strip_prefix("http://") else {
            return Err(if trimmed.starts_with("https://") {
                bad("https is not supported by this client; use http:// (or a local proxy)")
            } else {
                bad("expected http://host[:port][/path]")
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("a query or fragment is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            (&v6[..end], v6[end + 1..].strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("bad port"))?,
        };
        Ok(Self {
            url: trimmed.to_owned(),
            host: host.to_owned(),
            port,
            base_path: path.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The worker URL (without a trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /connectors/{name}`: the connector's info (`{"name","config","tasks","type"}`,
    /// secrets redacted), or `None` when Connect answers 404 (no such connector).
    ///
    /// # Errors
    /// Transport errors, other statuses ([`Error::ConnectStatus`]), non-JSON bodies.
    pub async fn connector(&self, name: &str) -> Result<Option<Value>> {
        let path = format!("/connectors/{}", encode_segment(name));
        let resp = self.request("GET", &path, None).await?;
        match resp.status {
            200 => Ok(Some(redact(&self.json("GET", &path, &resp.body)?))),
            404 => Ok(None),
            status => Err(self.status_error("GET", &path, status, &resp.body, &[])),
        }
    }

    /// `GET /connectors/{name}/config`: the connector's settings as strings (secrets redacted),
    /// or `None` when Connect answers 404 (no such connector).
    ///
    /// # Errors
    /// Transport errors, other statuses, a body that is not a JSON object.
    pub async fn connector_config(
        &self,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        let path = format!("/connectors/{}/config", encode_segment(name));
        let resp = self.request("GET", &path, None).await?;
        match resp.status {
            200 => {
                let v = redact(&self.json("GET", &path, &resp.body)?);
                let Value::Object(map) = v else {
                    return Err(Error::ConnectResponse {
                        url: self.url.clone(),
                        method: "GET",
                        path,
                        reason: "expected a JSON object of settings".into(),
                    });
                };
                Ok(Some(
                    map.into_iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => (k, s),
                            other => (k, other.to_string()),
                        })
                        .collect(),
                ))
            }
            404 => Ok(None),
            status => Err(self.status_error("GET", &path, status, &resp.body, &[])),
        }
    }

    /// `GET /connectors/{name}/offsets` (KIP-875, Kafka 3.6+): the `offsets` array Connect
    /// lists for the connector (`[{"partition": {…}, "offset": {…}}]`, empty when none are
    /// stored), or `None` when Connect answers 404.
    ///
    /// A 404 means the connector does not exist (Connect only lists offsets of existing
    /// connectors; offsets left by a deleted connector of the same name are not visible
    /// here), or that the worker predates Kafka 3.6.
    ///
    /// # Errors
    /// Transport errors, other statuses, a body without an `offsets` array.
    pub async fn stored_offsets(&self, name: &str) -> Result<Option<Value>> {
        let path = format!("/connectors/{}/offsets", encode_segment(name));
        let resp = self.request("GET", &path, None).await?;
        match resp.status {
            200 => {
                let mut v = self.json("GET", &path, &resp.body)?;
                match v.get_mut("offsets").map(Value::take) {
                    Some(offsets @ Value::Array(_)) => Ok(Some(offsets)),
                    _ => Err(Error::ConnectResponse {
                        url: self.url.clone(),
                        method: "GET",
                        path,
                        reason: "expected {\"offsets\": [...]}".into(),
                    }),
                }
            }
            404 => Ok(None),
            status => Err(self.status_error("GET", &path, status, &resp.body, &[])),
        }
    }

    /// Submits `payload` (`{"name": …, "config": {…}}`, as rendered by
    /// [`render_debezium_config`](crate::render::render_debezium_config)) with
    /// `POST /connectors`, after checking that the name is free:
    ///
    /// 1. `GET /connectors/{name}`: a connector of that name exists →
    ///    [`Error::OffsetsStored`] if `GET /connectors/{name}/offsets` lists offsets,
    ///    else [`Error::ConnectorExists`];
    /// 2. `GET /connectors/{name}/offsets` lists offsets (a worker that reports offsets for an
    ///    unknown name) → [`Error::OffsetsStored`];
    /// 3. `POST /connectors`: 201 → the [`CreatedConnector`]; 409 →
    ///    [`Error::ConnectConflict`].
    ///
    /// See the module doc for what the check cannot see (offsets of a deleted connector).
    ///
    /// # Errors
    /// The refusals above, [`Error::ConnectPayload`], transport and status errors.
    /// No error carries the config's password.
    pub async fn submit(&self, payload: &Value) -> Result<CreatedConnector> {
        let name = payload
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| self.invalid_payload("no \"name\" string"))?
            .to_owned();
        if !payload.get("config").is_some_and(Value::is_object) {
            return Err(self.invalid_payload("no \"config\" object"));
        }
        let secrets = secret_values(payload);
        let offsets_count = |v: &Option<Value>| v.as_ref().and_then(Value::as_array).map(Vec::len);

        if self.connector(&name).await?.is_some() {
            let count = offsets_count(&self.stored_offsets(&name).await?);
            return Err(match count {
                Some(n) if n > 0 => {
                    Error::OffsetsStored { url: self.url.clone(), connector: name, count: n }
                }
                _ => Error::ConnectorExists {
                    url: self.url.clone(),
                    connector: name,
                    stored_offsets: count,
                },
            });
        }
        if let Some(n) = offsets_count(&self.stored_offsets(&name).await?).filter(|&n| n > 0) {
            return Err(Error::OffsetsStored { url: self.url.clone(), connector: name, count: n });
        }

        let body = serde_json::to_vec(payload).map_err(|e| self.invalid_payload(&e.to_string()))?;
        let path = "/connectors".to_owned();
        let resp = self.request("POST", &path, Some(&body)).await?;
        match resp.status {
            200 | 201 => {
                let v = redact(&self.json("POST", &path, &resp.body)?);
                let bad = |reason: &str| Error::ConnectResponse {
                    url: self.url.clone(),
                    method: "POST",
                    path: path.clone(),
                    reason: reason.into(),
                };
                Ok(CreatedConnector {
                    status: resp.status,
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("no \"name\" in the answer"))?
                        .to_owned(),
                    config: v.get("config").and_then(Value::as_object).cloned().unwrap_or_default(),
                    tasks: v.get("tasks").and_then(Value::as_array).cloned().unwrap_or_default(),
                    connector_type: v.get("type").and_then(Value::as_str).map(str::to_owned),
                })
            }
            409 => Err(Error::ConnectConflict {
                url: self.url.clone(),
                connector: name,
                message: error_message(&resp.body, &secrets),
            }),
            status => Err(self.status_error("POST", &path, status, &resp.body, &secrets)),
        }
    }

    fn invalid_payload(&self, reason: &str) -> Error {
        Error::ConnectPayload { url: self.url.clone(), reason: reason.into() }
    }

    fn json(&self, method: &'static str, path: &str, body: &[u8]) -> Result<Value> {
        serde_json::from_slice(body).map_err(|e| Error::ConnectResponse {
            url: self.url.clone(),
            method,
            path: path.into(),
            reason: format!("body is not JSON: {e}"),
        })
    }

    fn status_error(
        &self,
        method: &'static str,
        path: &str,
        status: u16,
        body: &[u8],
        secrets: &[String],
    ) -> Error {
        Error::ConnectStatus {
            url: self.url.clone(),
            method,
            path: path.into(),
            status,
            message: error_message(body, secrets),
        }
    }

    /// One HTTP/1.1 exchange on a fresh connection, within the timeout.
    async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        match tokio::time::timeout(self.timeout, self.exchange(method, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(Error::ConnectTimeout {
                url: self.url.clone(),
                method,
                path: path.into(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let io =
            |source| Error::ConnectIo { url: self.url.clone(), method, path: path.into(), source };
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\n\
             User-Agent: pgsnap\r\nConnection: close\r\n",
            self.base_path
        );
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(io)?;
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        if let Some(b) = body {
            stream.write_all(b).await.map_err(io)?;
        }
        stream.flush().await.map_err(io)?;
        let mut raw = Vec::new();
        (&mut stream).take(MAX_RESPONSE as u64 + 1).read_to_end(&mut raw).await.map_err(io)?;
        let bad = |reason: String| Error::ConnectResponse {
            url: self.url.clone(),
            method,
            path: path.into(),
            reason,
        };
        if raw.len() > MAX_RESPONSE {
            return Err(bad(format!("response larger than {MAX_RESPONSE} bytes")));
        }
        parse_response(&raw).map_err(bad)
    }
}

/// Parses a complete HTTP/1.1 response (the connection was read to its end).
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(format!("connection closed after {} bytes, inside the headers", raw.len()));
        }
        Err(e) => return Err(format!("not an HTTP response: {e}")),
    };
    let status = resp.code.ok_or("no status code")?;
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let rest = &raw[head_len..];
    let body = if header("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad Content-Length {len:?}"))?;
        if rest.len() < len {
            return Err(format!("body is {} bytes, Content-Length says {len}", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers ignored).
fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end =
            rest.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size line")?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size line")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// What a path segment escapes: everything but RFC 3986 unreserved characters (ASCII
/// letters, digits, `-`, `.`, `_`, `~`).
const SEGMENT_ESCAPED: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT_ESCAPED).to_string()
}

fn is_secret_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// A copy of a connector payload or info (`{"name", "config": {…}, …}`, or a bare config
/// map) with every config value whose key contains `password` (such as
/// `database.password`) replaced by `<redacted>`.
///
/// ```
/// use pgsnap_kafka::connect::redact;
/// let v = serde_json::json!({"name": "c", "config": {"database.password": "${file:/s:pw}", "a": "b"}});
/// let r = redact(&v);
/// assert_eq!(r["config"]["database.password"], "<redacted>");
/// assert_eq!(r["config"]["a"], "b");
/// ```
pub fn redact(value: &Value) -> Value {
    fn redact_map(map: &Map<String, Value>) -> Map<String, Value> {
        map.iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) { Value::String(REDACTED.into()) } else { v.clone() };
                (k.clone(), v)
            })
            .collect()
    }
    match value {
        Value::Object(obj) => match obj.get("config") {
            Some(Value::Object(config)) => {
                let mut out = obj.clone();
                out.insert("config".into(), Value::Object(redact_map(config)));
                Value::Object(out)
            }
            _ => Value::Object(redact_map(obj)),
        },
        other => other.clone(),
    }
}

/// The payload's secret values (non-empty strings under `*password*` config keys).
fn secret_values(payload: &Value) -> Vec<String> {
    payload
        .get("config")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| is_secret_key(k))
        .filter_map(|(_, v)| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
        .collect()
}

/// Connect's error `message` (or the start of the body), with `secrets` redacted.
fn error_message(body: &[u8], secrets: &[String]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => v.to_string(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let mut text: String = text.trim().chars().take(1000).collect();
    for s in secrets {
        text = text.replace(s.as_str(), REDACTED);
    }
    if text.is_empty() { "(empty body)".into() } else { text }
}

impl fmt::Display for CreatedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connector {} created (HTTP {}, type {}, {} tasks)",
            self.name,
            self.status,
            self.connector_type.as_deref().unwrap_or("?"),
            self.tasks.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = ConnectClient::new("http://[::1]:8083/proxy/").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.base_path.as_str()), ("::1", 8083, "/proxy"));
        let c = ConnectClient::new("http://connect").unwrap();
        assert_eq!((c.port, c.base_path.as_str()), (80, ""));
        for bad in
            ["http://", "http://h:0", "http://h:x", "http://u:p@h:1", "ftp://h", "http://h/?a"]
        {
            let e = ConnectClient::new(bad).unwrap_err();
            assert!(matches!(e, Error::ConnectUrl { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn responses_with_length_chunked_and_close() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n2\r\n\":\r\n2\r\n1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{\"a\":1}"[..]));
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nbye").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"bye"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("pgsnap-app_1.x~"), "pgsnap-app_1.x~");
        assert_eq!(encode_segment("a b/c?ü"), "a%20b%2Fc%3F%C3%BC");
        assert_eq!(
            encode_segment("x%2F{}#&+=:@!*'()"),
            "x%252F%7B%7D%23%26%2B%3D%3A%40%21%2A%27%28%29"
        );
        // Every ASCII byte: exactly the unreserved characters stay as they are.
        for b in 1u8..0x80 {
            let c = char::from(b).to_string();
            let kept = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            let want = if kept { c.clone() } else { format!("%{b:02X}") };
            assert_eq!(encode_segment(&c), want, "byte {b:#04x}");
        }
    }

    #[test]
    fn error_messages_redact_secrets() {
        let body =
            br#"{"error_code":400,"message":"bad value ${file:/s:pw} for database.password"}"#;
        let m = error_message(body, &["${file:/s:pw}".into()]);
        assert_eq!(m, "bad value <redacted> for database.password");
        assert_eq!(error_message(b"", &[]), "(empty body)");
    }
}

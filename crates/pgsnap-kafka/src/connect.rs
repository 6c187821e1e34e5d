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
//! - `GET /`: 200 with `{"version","commit","kafka_cluster_id"}` (the worker's version; used
//!   as a check of the URL, TLS and credentials);
//! - `GET /connectors/{name}`: 200 with `{"name","config","tasks","type"}` when the connector
//!   exists, 404 with `{"error_code":404,"message":"Connector {name} not found"}` otherwise;
//! - `GET /connectors/{name}/status`: 200 with `{"name","connector":{"state",…},"tasks":[…]}`
//!   (what `pgsnap status` shows), 404 for an unknown connector;
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
//! # HTTP, TLS and authentication
//!
//! The client is [`reqwest`] 0.13 (hyper underneath), a maintained HTTP client, rather than
//! a hand-written one: HTTPS, authentication, redirect policy and timeouts are its settings,
//! not code of ours. Its TLS is rustls, so nothing links OpenSSL and the TLS stack is the one
//! the other pgsnap clients use (rustls on the `ring` provider, as in `pgsnap-source` and
//! `pgsnap-sink-starrocks`). reqwest is built without a crypto provider of its own
//! (feature `rustls-no-provider`; its default would add `aws-lc-rs`, a second C crypto
//! library) and handed a rustls configuration whose roots are the web PKI roots of
//! `webpki-roots` (Mozilla's list) plus the certificates of [`ConnectClient::with_ca_file`];
//! the system's certificate store is not read.
//!
//! - `http://` and `https://` URLs; HTTP/1.1, one connection per request, no proxy (the
//!   `*_PROXY` variables are ignored).
//! - Basic authentication with [`ConnectClient::with_basic_auth`] (what Kafka Connect's
//!   `BasicAuthSecurityRestExtension` checks). The password is sent in the `Authorization`
//!   header only: it never appears in `Debug` output, errors or logs.
//! - Redirects are refused, not followed (a redirect could send the credentials to another
//!   host): a 3xx answer is [`Error::ConnectRedirect`], naming its `Location`.
//! - Timeouts: connecting (TCP and TLS) within [`CONNECT_TIMEOUT`] (10 s), each whole
//!   request within [`DEFAULT_TIMEOUT`] (30 s; [`ConnectClient::with_timeout`]).
//! - A certificate the client does not trust is [`Error::ConnectTls`], credentials the worker
//!   refuses (401, 403) [`Error::ConnectAuth`]; neither is temporary
//!   ([`Error::is_temporary`]), unlike I/O errors and timeouts.
//!
//! The client never logs or returns the connector config's secrets either: `*password*`
//! config values are replaced by `<redacted>` in [`CreatedConnector::config`], in errors,
//! and by [`redact`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, LOCATION};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// How long one request may take by default (connecting, sending, reading the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting (TCP and the TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body accepted.
const MAX_RESPONSE: usize = 16 << 20;
/// What replaces secret values.
pub const REDACTED: &str = "<redacted>";
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("pgsnap-kafka/", env!("CARGO_PKG_VERSION"));

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

/// A Kafka Connect worker's REST API, over `http://` or `https://`.
///
/// `Debug` shows the URL, the user and the CA file, never the password.
///
/// # Example
/// ```no_run
/// # async fn demo(payload: serde_json::Value) -> pgsnap_kafka::Result<()> {
/// use pgsnap_kafka::connect::ConnectClient;
/// let password = std::env::var("CONNECT_PASSWORD").unwrap_or_default();
/// let client = ConnectClient::new("https://connect:8443")?
///     .with_ca_file("/etc/pgsnap/connect-ca.pem")?
///     .with_basic_auth("pgsnap", password);
/// // Refuses when the name exists or has stored offsets.
/// let created = client.submit(&payload).await?;
/// println!("created {} ({} tasks)", created.name, created.tasks.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConnectClient {
    /// The URL as given, without trailing slashes: the prefix of every request URL.
    url: String,
    timeout: Duration,
    auth: Option<BasicAuth>,
    ca_file: Option<PathBuf>,
    http: reqwest::Client,
}

/// Basic-auth credentials; the password is kept out of `Debug`.
#[derive(Clone)]
struct BasicAuth {
    user: String,
    password: String,
}

impl fmt::Debug for ConnectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectClient")
            .field("url", &self.url)
            .field("user", &self.user())
            .field("password", &self.auth.as_ref().map(|_| REDACTED))
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A response: status and body.
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl ConnectClient {
    /// A client for the worker at `url` (`http[s]://host[:port][/path]`; port 80 or 443 by
    /// default; a path prefix is kept for workers behind a proxy). HTTPS trusts the web PKI
    /// roots; add a private CA with [`with_ca_file`](Self::with_ca_file).
    ///
    /// # Errors
    /// [`Error::ConnectUrl`] for anything else (credentials in the URL included: use
    /// [`with_basic_auth`](Self::with_basic_auth)).
    ///
    /// ```
    /// use pgsnap_kafka::connect::ConnectClient;
    /// assert_eq!(ConnectClient::new("http://connect:8083/").unwrap().url(), "http://connect:8083");
    /// assert_eq!(ConnectClient::new("https://connect:8443").unwrap().url(), "https://connect:8443");
    /// assert!(ConnectClient::new("connect:8083").is_err());
    /// assert!(ConnectClient::new("https://user:secret@connect:8443").is_err());
    /// ```
    pub fn new(url: &str) -> Result<Self> {
        let trimmed = url.trim_end_matches('/');
        check_url(trimmed)?;
        let http = http_client(web_pki_roots()).map_err(|reason| Error::ConnectUrl {
            url: trimmed.to_owned(),
            reason: format!("cannot set up the HTTP client: {reason}"),
        })?;
        Ok(Self {
            url: trimmed.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            auth: None,
            ca_file: None,
            http,
        })
    }

    /// Sets the per-request timeout: connecting, sending and reading the whole answer
    /// (default [`DEFAULT_TIMEOUT`]; connecting alone is also bounded by
    /// [`CONNECT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` (one or more `CERTIFICATE`
    /// blocks), in addition to the web PKI roots, for an `https://` worker whose certificate
    /// a private CA signed. A second call replaces the first file.
    ///
    /// # Errors
    /// [`Error::ConnectCaFile`], naming the file: it cannot be read, is not PEM, holds no
    /// certificate, or one is unusable as a root.
    pub fn with_ca_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::ConnectCaFile { path: path.to_owned(), reason };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut roots = web_pki_roots();
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("invalid PEM: {e}")))?;
            roots.add(cert).map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
        }
        self.http = http_client(roots).map_err(bad)?;
        self.ca_file = Some(path.to_owned());
        Ok(self)
    }

    /// Authenticates every request with HTTP basic authentication (Kafka Connect's
    /// `BasicAuthSecurityRestExtension`). The password is sent in the `Authorization` header
    /// only; it never appears in `Debug` output, errors or logs. Over `http://` it crosses
    /// the network in clear (a warning is logged): prefer `https://`.
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        let user = user.into();
        if self.url.starts_with("http://") {
            tracing::warn!(
                url = %self.url,
                user = %user,
                "Kafka Connect: basic authentication over plain http sends the password in clear; prefer https"
            );
        }
        self.auth = Some(BasicAuth { user, password: password.into() });
        self
    }

    /// The worker URL (without a trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The basic-auth user, if any.
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.user.as_str())
    }

    /// The CA file given to [`with_ca_file`](Self::with_ca_file), if any.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// `GET /`: the worker's version (Connect answers `{"version", "commit",
    /// "kafka_cluster_id"}`), or `None` when the answer is 404 (a proxy that only passes
    /// `/connectors`) or has no `version`. A cheap check of the URL, TLS and the credentials
    /// before anything depends on them.
    ///
    /// # Errors
    /// Transport, TLS ([`Error::ConnectTls`]) and authentication ([`Error::ConnectAuth`])
    /// errors, a redirect, other statuses.
    pub async fn worker_version(&self) -> Result<Option<String>> {
        let path = "/";
        let resp = self.request("GET", path, None).await?;
        match resp.status {
            200..=299 => Ok(serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_owned))),
            404 => Ok(None),
            status => Err(self.status_error("GET", path, status, &resp.body, &[])),
        }
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

    /// `GET /connectors/{name}/status`: the connector's state and its tasks'
    /// (`{"name", "connector": {"state", "worker_id"}, "tasks": [{"id", "state",
    /// "worker_id", "trace"?}], "type"}`; states `RUNNING`, `PAUSED`, `STOPPED`, `FAILED`,
    /// `UNASSIGNED`, `RESTARTING`), or `None` when Connect answers 404 (no such connector).
    ///
    /// # Errors
    /// Transport errors, other statuses ([`Error::ConnectStatus`]), non-JSON bodies.
    pub async fn connector_status(&self, name: &str) -> Result<Option<Value>> {
        let path = format!("/connectors/{}/status", encode_segment(name));
        let resp = self.request("GET", &path, None).await?;
        match resp.status {
            200 => Ok(Some(self.json("GET", &path, &resp.body)?)),
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

        let path = "/connectors".to_owned();
        let resp = self.request("POST", &path, Some(payload)).await?;
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
                message: self.error_message(&resp.body, &secrets),
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
            message: self.error_message(body, secrets),
        }
    }

    /// One request, within the timeout. A redirect is refused, and 401/403 are
    /// [`Error::ConnectAuth`]; every other status is the caller's to judge.
    async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response> {
        let target = format!("{}{path}", self.url);
        let mut req = match body {
            Some(b) => self.http.post(&target).json(b),
            None => self.http.get(&target),
        };
        req = req.header(ACCEPT, "application/json").timeout(self.timeout);
        if let Some(a) = &self.auth {
            req = req.basic_auth(&a.user, Some(&a.password));
        }
        let mut resp = req.send().await.map_err(|e| self.transport_error(method, path, e))?;
        let status = resp.status().as_u16();
        tracing::debug!(url = %self.url, method, path, status, "Kafka Connect answered");
        if (300..400).contains(&status) {
            let location = resp.headers().get(LOCATION).map(|v| {
                without_password(&String::from_utf8_lossy(v.as_bytes())).chars().take(500).collect()
            });
            return Err(Error::ConnectRedirect {
                url: self.url.clone(),
                method,
                path: path.into(),
                status,
                location,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| self.transport_error(method, path, e))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(Error::ConnectResponse {
                    url: self.url.clone(),
                    method,
                    path: path.into(),
                    reason: format!("response larger than {MAX_RESPONSE} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status == 401 || status == 403 {
            return Err(Error::ConnectAuth {
                url: self.url.clone(),
                method,
                path: path.into(),
                status,
                user: self.user().map(str::to_owned),
                message: self.error_message(&body, &[]),
            });
        }
        Ok(Response { status, body })
    }

    /// What a failed request becomes: [`Error::ConnectTls`] when rustls refused the
    /// handshake, [`Error::ConnectTimeout`], else [`Error::ConnectIo`] (the kind of the
    /// innermost I/O error, the reqwest error as its source).
    fn transport_error(&self, method: &'static str, path: &str, e: reqwest::Error) -> Error {
        if let Some(tls) = find_tls_error(&e) {
            return Error::ConnectTls {
                url: self.url.clone(),
                method,
                path: path.into(),
                reason: self.tls_reason(tls),
                source: Box::new(tls.clone()),
            };
        }
        if e.is_timeout() {
            let timeout =
                if e.is_connect() { self.timeout.min(CONNECT_TIMEOUT) } else { self.timeout };
            return Error::ConnectTimeout {
                url: self.url.clone(),
                method,
                path: path.into(),
                timeout,
            };
        }
        let kind = innermost_io_kind(&e).unwrap_or(std::io::ErrorKind::Other);
        Error::ConnectIo {
            url: self.url.clone(),
            method,
            path: path.into(),
            source: std::io::Error::new(kind, Transport::new(e)),
        }
    }

    /// Why rustls refused the handshake, and what to do, in words.
    fn tls_reason(&self, e: &rustls::Error) -> String {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not valid for the host of {} ({e}); use a host name \
                 (or address) the certificate lists",
                self.url
            ),
            rustls::Error::InvalidCertificate(
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. },
            ) => format!("the server's certificate is expired or not yet valid ({e})"),
            rustls::Error::InvalidCertificate(_) => match &self.ca_file {
                Some(file) => format!(
                    "the server's certificate was not trusted ({e}): neither a CA in {} nor a \
                     public root CA signed it; check the CA file (ConnectClient::with_ca_file)",
                    file.display()
                ),
                None => format!(
                    "the server's certificate was not trusted ({e}): no public root CA signed \
                     it; give the CA certificate that did as a PEM file \
                     (ConnectClient::with_ca_file)"
                ),
            },
            other => format!("{other} (is the worker serving HTTPS at this address?)"),
        }
    }

    /// Connect's error message for `body`, with `secrets` and the password redacted.
    fn error_message(&self, body: &[u8], secrets: &[String]) -> String {
        let mut all = secrets.to_vec();
        if let Some(a) = self.auth.as_ref().filter(|a| !a.password.is_empty()) {
            all.push(a.password.clone());
        }
        error_message(body, &all)
    }
}

/// Checks a worker URL (without trailing slashes): `http` or `https`, a host, a port other
/// than 0, no credentials, query or fragment.
fn check_url(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url);
    // The URL in errors, without a password.
    let shown = match &parsed {
        Ok(u) if u.password().is_some() => without_password(url),
        _ => url.to_owned(),
    };
    let bad = |reason: &str| Error::ConnectUrl { url: shown.clone(), reason: reason.into() };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad("expected http://host[:port][/path] or https://host[:port][/path]"));
    }
    let parsed = parsed.map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("credentials in the URL are not supported; give them as basic auth \
             (ConnectClient::with_basic_auth)"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if parsed.port() == Some(0) {
        return Err(bad("bad port"));
    }
    Ok(())
}

/// `url` with the password of its user info (if any) removed; unparseable text as it is.
fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The web PKI roots (Mozilla's list, from `webpki-roots`).
fn web_pki_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// The reqwest client: rustls on ring with `roots`, no redirects, no proxy, a connect
/// timeout, one connection per request.
fn http_client(roots: rustls::RootCertStore) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| e.to_string())
}

/// The rustls error somewhere in `e`'s sources (I/O errors hide theirs: `get_ref` reaches it).
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cur = match c.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner),
            None => c.source(),
        };
    }
    None
}

/// The kind of the innermost I/O error among `e`'s sources.
fn innermost_io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut kind = None;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = c.source();
    }
    kind
}

/// A reqwest error as the source of an I/O error: shown as its causes (reqwest's own
/// message only repeats the URL), with the reqwest error as the next source.
#[derive(Debug)]
struct Transport {
    summary: String,
    source: reqwest::Error,
}

impl Transport {
    fn new(source: reqwest::Error) -> Self {
        let mut summary = String::new();
        let mut cur = std::error::Error::source(&source);
        while let Some(c) = cur {
            let text = c.to_string();
            if !summary.contains(&text) {
                if !summary.is_empty() {
                    summary.push_str(": ");
                }
                summary.push_str(&text);
            }
            cur = c.source();
        }
        if summary.is_empty() {
            summary = source.to_string();
        }
        Self { summary, source }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

impl std::error::Error for Transport {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
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
        assert_eq!(c.url(), "http://[::1]:8083/proxy");
        let c = ConnectClient::new("https://connect").unwrap();
        assert_eq!((c.url(), c.user(), c.ca_file()), ("https://connect", None, None));
        for bad in [
            "http://",
            "http://h:0",
            "http://h:x",
            "http://u@h:1",
            "ftp://h",
            "http://h/?a",
            "http://h/#f",
            "connect:8083",
        ] {
            let e = ConnectClient::new(bad).unwrap_err();
            assert!(matches!(e, Error::ConnectUrl { .. }), "{bad}: {e}");
        }
        // A password in the URL is refused without being repeated.
        let e = ConnectClient::new("https://u:s3cret@h:1").unwrap_err();
        assert!(matches!(e, Error::ConnectUrl { .. }), "{e}");
        assert!(!format!("{e} {e:?}").contains("s3cret"), "{e:?}");
        assert!(e.to_string().contains("basic auth"), "{e}");
    }

    #[test]
    fn debug_hides_the_password() {
        let c =
            ConnectClient::new("https://connect:8443").unwrap().with_basic_auth("alice", "pw-1");
        let text = format!("{c:?}");
        assert!(text.contains("alice") && text.contains(REDACTED), "{text}");
        assert!(!text.contains("pw-1"), "{text}");
        assert_eq!(c.user(), Some("alice"));
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("pgsnap-connect-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let client = || ConnectClient::new("https://connect:8443").unwrap();
        let missing = dir.join("missing.pem");
        let e = client().with_ca_file(&missing).unwrap_err();
        assert!(matches!(e, Error::ConnectCaFile { ref path, .. } if *path == missing), "{e}");
        assert!(e.to_string().contains("missing.pem") && e.to_string().contains("cannot read"));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let e = client().with_ca_file(&empty).unwrap_err();
        assert!(e.to_string().contains("empty.pem") && e.to_string().contains("no PEM"), "{e}");
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap();
        let e = client().with_ca_file(&broken).unwrap_err();
        assert!(e.to_string().contains("broken.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn locations_lose_their_password() {
        assert_eq!(without_password("https://u:pw@h:1/x"), "https://u@h:1/x");
        assert_eq!(without_password("/relative"), "/relative");
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

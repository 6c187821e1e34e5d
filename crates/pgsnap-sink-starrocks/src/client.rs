//! The Stream Load client: where requests go (the FEs and BEs, in turn), who sends them
//! (`Authorization`), over what (plain TCP or TLS), under which labels, how a request
//! refused before any body byte is retried, and the label-state polling (`get_load_state`).
//!
//! It builds on the HTTP/1.1 client ([`crate::http`]) and knows nothing of chunks, bodies or
//! transactions: the load paths (`load`, `txn_load`) build on it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pgsnap_core::RetryBudget;

use crate::error::{Error, Result};
use crate::http::{self, BodyFraming, Conn, Endpoint};
use crate::label::Labeler;
use crate::response::{self, LoadResult};

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 4;

/// What [`encode`] leaves as it is: the unreserved characters of RFC 3986 (ASCII letters,
/// digits, `-`, `_`, `.`, `~`). Every other byte, UTF-8 bytes included, becomes `%XX`.
const PATH_SEGMENT: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a path segment or query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

/// The sink's own retries of one chunk's requests, taken from the chunk's one
/// [`RetryBudget`] (the coordinator's attempts and these share it).
///
/// The sink retries on its own only what it can replay without the chunk's data: a load
/// refused before its body was sent (busy BE, connection refused, FE unavailable), a
/// transaction's begin, prepare or commit. A failure after data was sent is returned as
/// temporary; the coordinator re-reads the chunk from the snapshot and loads it again under
/// the same label.
#[derive(Debug)]
pub(crate) struct Retries<'a> {
    budget: &'a RetryBudget,
}

impl<'a> Retries<'a> {
    pub(crate) fn new(budget: &'a RetryBudget) -> Self {
        Self { budget }
    }

    /// After a `retryable` failure: waits the backoff and counts a new attempt, or returns
    /// `false` when the chunk's budget is spent (or the failure is not retryable).
    pub(crate) async fn back_off(&self, retryable: bool) -> bool {
        match self.budget.next_delay(retryable) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                self.budget.begin();
                true
            }
            None => false,
        }
    }
}

/// A password that never appears in `Debug` output or logs.
#[derive(Clone, Default)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<redacted>" })
    }
}

/// What a [`StreamLoadClient`] is made from (checked by the builder).
#[derive(Debug)]
pub(crate) struct ClientConfig {
    /// The FEs, in the order they are tried.
    pub(crate) fes: Vec<Endpoint>,
    /// BEs that take loads directly (skipping the FE redirect); may be empty.
    pub(crate) bes: Vec<Endpoint>,
    /// For `https://` endpoints.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// The database loaded into.
    pub(crate) database: String,
    pub(crate) user: String,
    pub(crate) password: Secret,
    /// The label prefix (for the probe label; the labeler has it too).
    pub(crate) label_prefix: String,
    /// Set when the run id is known at build time, else later ([`StreamLoadClient::labeler_for_run`]).
    pub(crate) labeler: Option<Labeler>,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    /// Whether an HTTPS endpoint may redirect to plain HTTP.
    pub(crate) allow_insecure_redirect: bool,
    /// How long to poll `get_load_state` for an earlier load holding a label.
    pub(crate) label_wait: Duration,
}

/// How [`StreamLoadClient::open_request`] sends a request.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// Names the request in errors ("Stream Load request").
    pub(crate) what: &'a str,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) framing: BodyFraming,
    pub(crate) expect_continue: bool,
    /// How long to wait for the first answer.
    pub(crate) wait: Duration,
}

/// What the first answer to a request said.
pub(crate) enum Opened {
    /// `100 Continue`: send the body on this connection.
    Continue(Conn),
    /// A final answer before any body byte.
    Answer(LoadResult),
}

/// What became of the load holding a label.
pub(crate) enum LabelFate {
    /// COMMITTED or VISIBLE: the data is in.
    Loaded,
    /// ABORTED or unknown: the label is free again.
    Free,
}

/// Talks Stream Load to one StarRocks cluster: endpoints, auth, TLS, labels, retries of
/// requests refused before their body, and label states. `Debug` never shows the password.
pub(crate) struct StreamLoadClient {
    fes: Vec<Endpoint>,
    bes: Vec<Endpoint>,
    tls: Option<Arc<rustls::ClientConfig>>,
    database: String,
    user: String,
    /// `Basic …`: holds the password.
    auth_header: String,
    label_prefix: String,
    /// Set at build with a run id, else once the run is known.
    labeler: OnceLock<Labeler>,
    next_endpoint: AtomicUsize,
    connect_timeout: Duration,
    io_timeout: Duration,
    allow_insecure_redirect: bool,
    label_wait: Duration,
}

impl fmt::Debug for StreamLoadClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamLoadClient")
            .field("fe", &self.fes)
            .field("be", &self.bes)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl StreamLoadClient {
    pub(crate) fn new(config: ClientConfig) -> Self {
        use base64::Engine as _;
        let auth_header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", config.user, config.password.0))
        );
        Self {
            fes: config.fes,
            bes: config.bes,
            tls: config.tls,
            database: config.database,
            user: config.user,
            auth_header,
            label_prefix: config.label_prefix,
            labeler: config.labeler.map(OnceLock::from).unwrap_or_default(),
            next_endpoint: AtomicUsize::new(0),
            connect_timeout: config.connect_timeout,
            io_timeout: config.io_timeout,
            allow_insecure_redirect: config.allow_insecure_redirect,
            label_wait: config.label_wait,
        }
    }

    /// The FEs.
    pub(crate) fn fes(&self) -> &[Endpoint] {
        &self.fes
    }

    /// The configured BEs (empty when loads go through the FEs).
    pub(crate) fn bes(&self) -> &[Endpoint] {
        &self.bes
    }

    /// The database loaded into.
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// The StarRocks user.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// The longest wait for progress on an open connection.
    pub(crate) fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// The labeler, when the run id is known.
    pub(crate) fn labels(&self) -> Option<&Labeler> {
        self.labeler.get()
    }

    /// The labeler, once the run id is known.
    pub(crate) fn labeler(&self) -> Result<&Labeler> {
        self.labeler.get().ok_or_else(|| {
            Error::Config(
                "the sink has no run id: build it with the manifest's run id, or prepare it for the run first"
                    .into(),
            )
        })
    }

    /// The labeler: the one set at build, else one for `run_id`, made now (the first call
    /// decides). The caller checks that its run id is `run_id`.
    pub(crate) fn labeler_for_run(&self, run_id: &str) -> Result<&Labeler> {
        match self.labeler.get() {
            Some(l) => Ok(l),
            None => {
                let l = Labeler::new(&self.label_prefix, run_id).map_err(Error::Config)?;
                Ok(self.labeler.get_or_init(|| l))
            }
        }
    }

    /// The `Authorization` header, kept on every redirect.
    pub(crate) fn auth(&self) -> Vec<(String, String)> {
        vec![("Authorization".to_owned(), self.auth_header.clone())]
    }

    /// The next FE, round-robin.
    pub(crate) fn pick_fe(&self) -> &Endpoint {
        self.pick(&self.fes)
    }

    /// The next configured BE, round-robin; `None` when none is configured.
    pub(crate) fn pick_be(&self) -> Option<&Endpoint> {
        if self.bes.is_empty() { None } else { Some(self.pick(&self.bes)) }
    }

    /// Round-robin over a list of endpoints.
    fn pick<'a>(&self, list: &'a [Endpoint]) -> &'a Endpoint {
        let i = self.next_endpoint.fetch_add(1, Ordering::Relaxed);
        &list[i % list.len()]
    }

    /// The path of a Stream Load into `table` of the database.
    pub(crate) fn stream_load_path(&self, table: &str) -> String {
        format!("/api/{}/{}/_stream_load", encode(&self.database), encode(table))
    }

    /// Connects to `endpoint` with the configured timeouts and TLS.
    async fn connect(&self, endpoint: &Endpoint) -> Result<Conn> {
        http::connect(endpoint, self.tls.as_ref(), self.connect_timeout, self.io_timeout).await
    }

    /// Follows a redirect, refusing HTTPS → HTTP unless allowed.
    fn follow(&self, from: &Endpoint, head: &http::Head) -> Result<(Endpoint, String)> {
        let location = head.header("location").ok_or_else(|| Error::Protocol {
            address: from.to_string(),
            message: format!("HTTP {} without a Location", head.status),
        })?;
        let (to, path) = Endpoint::parse_location(location).map_err(|m| Error::Protocol {
            address: from.to_string(),
            message: format!("bad redirect: {m}"),
        })?;
        if from.https && !to.https && !self.allow_insecure_redirect {
            return Err(Error::InsecureRedirect { from: from.to_string(), to: to.to_string() });
        }
        Ok((to, path))
    }

    /// Sends a request head to `endpoint`, following redirects by hand (keeping every header,
    /// `Authorization` included), and returns the first answer: `100 Continue` (send the body
    /// on this connection) or a final JSON answer. No body byte is sent here: a redirect comes
    /// before any, and its connection is dropped.
    pub(crate) async fn open_request(
        &self,
        mut endpoint: Endpoint,
        mut path: String,
        request: &Request<'_>,
    ) -> Result<Opened> {
        let what = request.what;
        for _ in 0..MAX_REDIRECTS {
            let mut conn = self.connect(&endpoint).await?;
            conn.send_head(
                request.method,
                &path,
                request.headers,
                request.framing,
                request.expect_continue,
            )
            .await?;
            let head = conn.read_head(request.wait).await?;
            match head.status {
                100 => return Ok(Opened::Continue(conn)),
                301 | 302 | 307 | 308 => {
                    // The connection is dropped without a body byte (the FE closes it anyway).
                    (endpoint, path) = self.follow(&endpoint, &head)?;
                }
                401 | 403 => {
                    let body = conn.read_body(&head).await.unwrap_or_default();
                    return Err(Error::Auth {
                        user: self.user.clone(),
                        message: response::rest_message(&body),
                    });
                }
                200 => {
                    let body = conn.read_body(&head).await?;
                    return LoadResult::parse(&body).map(Opened::Answer).ok_or_else(|| {
                        Error::Protocol {
                            address: endpoint.to_string(),
                            message: format!(
                                "unexpected answer: {}",
                                response::rest_message(&body)
                            ),
                        }
                    });
                }
                s if s >= 500 => {
                    return Err(Error::Io {
                        address: endpoint.to_string(),
                        what: format!("{what} answered HTTP {s}"),
                        source: std::io::Error::other("server error"),
                    });
                }
                s => {
                    let body = conn.read_body(&head).await.unwrap_or_default();
                    return Err(Error::Protocol {
                        address: endpoint.to_string(),
                        message: format!(
                            "{what} answered HTTP {s}: {}",
                            response::rest_message(&body)
                        ),
                    });
                }
            }
        }
        Err(Error::Protocol { address: endpoint.to_string(), message: "too many redirects".into() })
    }

    /// Polls `get_load_state` until the label's transaction settles (spec §1.4: 0,1,…,5 s
    /// sleeps, as the Flink SDK), for at most the policy's label wait.
    pub(crate) async fn wait_for_label(&self, label: &str) -> Result<LabelFate> {
        let started = Instant::now();
        let mut n = 0u64;
        loop {
            let state = self.get_load_state(label).await?;
            match state.as_str() {
                "VISIBLE" | "COMMITTED" => return Ok(LabelFate::Loaded),
                "ABORTED" | "UNKNOWN" => return Ok(LabelFate::Free),
                _ => {}
            }
            if started.elapsed() >= self.label_wait {
                return Err(Error::LabelBusy {
                    label: label.to_owned(),
                    state,
                    waited_s: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_secs(n.min(5))).await;
            n += 1;
        }
    }

    /// Asks the FE for the state of a label no load uses: proves the HTTP port answers and
    /// accepts the credentials.
    pub(crate) async fn probe(&self) -> Result<()> {
        let label = format!("{}-probe", self.label_prefix);
        self.get_load_state(&label).await.map(drop)
    }

    /// The state of a label (`get_load_state`, upper-cased: `PREPARE`, `PREPARED`,
    /// `COMMITTED`, `VISIBLE`, `ABORTED`, `UNKNOWN`).
    pub(crate) async fn get_load_state(&self, label: &str) -> Result<String> {
        let mut endpoint = self.pick_fe().clone();
        let mut path =
            format!("/api/{}/get_load_state?label={}", encode(&self.database), encode(label));
        for _ in 0..MAX_REDIRECTS {
            let mut conn = self.connect(&endpoint).await?;
            conn.send_head("GET", &path, &self.auth(), BodyFraming::Empty, false).await?;
            let head = conn.read_head(self.io_timeout).await?;
            let body = conn.read_body(&head).await?;
            match head.status {
                200 => {
                    if let Some(state) = response::load_state(&body) {
                        return Ok(state);
                    }
                    let message = response::rest_message(&body);
                    let lower = message.to_ascii_lowercase();
                    return Err(if lower.contains("unknown database") {
                        Error::UnknownDatabase { database: self.database.clone(), message }
                    } else if lower.contains("access denied") {
                        Error::Auth { user: self.user.clone(), message }
                    } else {
                        Error::Protocol {
                            address: endpoint.to_string(),
                            message: format!("get_load_state: {message}"),
                        }
                    });
                }
                301 | 302 | 307 | 308 => {
                    (endpoint, path) = self.follow(&endpoint, &head)?;
                }
                401 => {
                    return Err(Error::Auth {
                        user: self.user.clone(),
                        message: response::rest_message(&body),
                    });
                }
                s => {
                    return Err(Error::Protocol {
                        address: endpoint.to_string(),
                        message: format!(
                            "get_load_state answered HTTP {s}: {}",
                            response::rest_message(&body)
                        ),
                    });
                }
            }
        }
        Err(Error::Protocol { address: endpoint.to_string(), message: "too many redirects".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoder before the `percent-encoding` crate, kept to pin the output byte for byte.
    fn encode_by_hand(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[test]
    fn encode_path_segments() {
        assert_eq!(encode("my db/ü"), "my%20db%2F%C3%BC");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(encode("public.Order Items"), "public.Order%20Items");
        assert_eq!(encode("?#&=%+:@!*'()[]"), "%3F%23%26%3D%25%2B%3A%40%21%2A%27%28%29%5B%5D");
        assert_eq!(encode(""), "");
        // Every ASCII character, a few multi-byte ones, and controls: as the hand-written
        // encoder had them.
        let mut all: String = (0u8..=127).map(char::from).collect();
        all.push_str("ßé日本🎉\u{7f}\u{80}\u{ff}");
        assert_eq!(encode(&all), encode_by_hand(&all));
    }

    #[tokio::test]
    async fn retries_take_attempts_from_the_chunks_budget() {
        let budget = pgsnap_core::RetryPolicy::default()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::ZERO)
            .budget();
        budget.begin(); // the coordinator's first attempt
        let r = Retries::new(&budget);
        assert!(!r.back_off(false).await, "a failure that is not retryable is not retried");
        assert!(r.back_off(true).await);
        assert!(r.back_off(true).await);
        assert!(!r.back_off(true).await, "three attempts in all");
        assert_eq!(budget.attempts(), 3);
    }

    #[test]
    fn debug_hides_the_password() {
        let c = StreamLoadClient::new(ClientConfig {
            fes: vec![Endpoint::parse("http://fe:8030").unwrap()],
            bes: Vec::new(),
            tls: None,
            database: "db".into(),
            user: "u".into(),
            password: Secret("hunter2".into()),
            label_prefix: "pgsnap".into(),
            labeler: None,
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            allow_insecure_redirect: false,
            label_wait: Duration::from_secs(60),
        });
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2") && !debug.contains(&c.auth_header), "{debug}");
        assert_eq!(format!("{:?}", Secret("x".into())), "<redacted>");
    }
}

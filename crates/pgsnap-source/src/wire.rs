//! pgsnap's own client for the PostgreSQL frontend/backend protocol.
//!
//! One connection type, [`Connection`], serves two kinds of session:
//!
//! * the replication session (`replication=database`) behind
//!   `replication::ReplicationConnection`, which tokio-postgres cannot open;
//! * the worker sessions that import the snapshot and stream `COPY ... TO STDOUT` (module
//!   `copy`). tokio-postgres hands COPY data on as one `Bytes` per row (the server sends one
//!   `CopyData` message per row) and reads the socket 8 KiB at a time; here
//!   [`Connection::poll_copy_out`] reads the socket in large pieces and gathers the rows'
//!   payloads into large buffers, with no allocation per row.
//!
//! Both are built on [`postgres_protocol`]: TCP or Unix socket, TLS (rustls), trust,
//! cleartext, MD5 and SCRAM-SHA-256 authentication, simple queries, cancel requests. The
//! rest of the crate (catalog, locks, the leader session) uses tokio-postgres.
//!
//! # Why hand-written, and when to revisit
//!
//! - **Replication mode.** `CREATE_REPLICATION_SLOT ... LOGICAL pgoutput (SNAPSHOT 'export')`
//!   (`EXPORT_SNAPSHOT` before PostgreSQL 15) is a walsender command: it runs only on a
//!   connection started with `replication=database`. tokio-postgres 0.7 has no such startup
//!   parameter (its `Config` parser rejects `replication` as an unknown option). Upstream:
//!   <https://github.com/rust-postgres/rust-postgres/issues/116> ("Streaming replication
//!   protocol", open since 2015); the attempt to add a replication mode to `Config`,
//!   <https://github.com/rust-postgres/rust-postgres/pull/752>, was closed unmerged, and
//!   <https://github.com/rust-postgres/rust-postgres/pull/1182> (a start on it) is still
//!   open. Revisit when a tokio-postgres release can open a `replication=database`
//!   connection.
//! - **COPY throughput.** Measured with `benches/e2e.sh` (pgbench scale 50, 508 MB of COPY
//!   text, 2 jobs, client and server on the same 2 cores; `BENCHMARKS.md`, "How it got
//!   there", and commit `5b0424f`): the whole run took 1.45 s with tokio-postgres'
//!   `copy_out` stream (single-threaded runtime) and 1.12 s with this reader, against
//!   1.03-1.04 s for two raw `psql` COPYs. Revisit if tokio-postgres gains large socket
//!   reads or a way to take COPY data in bigger pieces than one `Bytes` per row; re-run
//!   `benches/e2e.sh` with its `copy_out` before switching the workers back.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::{self, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::{Host, SslMode, SslNegotiation};

use crate::conninfo::{DEFAULT_APPLICATION_NAME, DEFAULT_PORT};

/// Size of the read buffer reserved before each socket read, outside COPY.
const READ_CHUNK: usize = 8 * 1024;
/// Free space reserved in the read buffer before each socket read during COPY: one read
/// takes whatever the socket holds, up to this much.
pub(crate) const COPY_READ_BYTES: usize = 1024 * 1024;
/// COPY payload is handed on in buffers of this size, or after [`COPY_FLUSH_AFTER`] when the
/// server sends too little to fill one.
pub(crate) const COPY_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// How long gathered rows may wait for more while the socket is quiet.
pub(crate) const COPY_FLUSH_AFTER: Duration = Duration::from_millis(100);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of pgsnap's own protocol client: the replication connection and the worker
/// connections (snapshot import, `COPY`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// Reading from or writing to the server failed.
    #[error("I/O error on {endpoint}: {source}")]
    Io {
        /// The server (`host:port` or Unix socket path) the error happened on.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// TLS could not be set up (server refused it while required, or the handshake failed).
    #[error("TLS error on {endpoint}: {source}")]
    Tls {
        /// The server (`host:port`) the error happened on.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The server sent something this client did not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Authentication could not be attempted or completed on the client side
    /// (unsupported method, missing password, bad SCRAM exchange). Never contains the
    /// password. A wrong password is reported by the server as
    /// [`ReplicationError::Server`] with SQLSTATE `28P01`.
    #[error("authentication failed: {message}")]
    Auth {
        /// What went wrong.
        message: String,
    },
    /// The server answered with an `ErrorResponse`.
    #[error(
        "{message} (SQLSTATE {code}){}{}",
        suffix("detail", detail.as_deref()),
        suffix("hint", hint.as_deref())
    )]
    Server {
        /// The SQLSTATE code, for example `42710`.
        code: String,
        /// The primary error message.
        message: String,
        /// The optional detail message.
        detail: Option<String>,
        /// The optional hint.
        hint: Option<String>,
    },
    /// Connecting (or sending a cancel request) took longer than `connect_timeout`.
    #[error("timed out connecting to the server")]
    Timeout,
    /// The server closed the connection, or an earlier failure left it unusable.
    #[error("connection closed")]
    Closed,
    /// The connection configuration cannot be used (no host, no user, unsupported option).
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn suffix(label: &str, value: Option<&str>) -> String {
    value.map(|v| format!("; {label}: {v}")).unwrap_or_default()
}

impl ReplicationError {
    /// The SQLSTATE code if the server reported this error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn io(endpoint: &Endpoint, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            return Self::Closed;
        }
        Self::Io { endpoint: endpoint.to_string(), source }
    }

    pub(crate) fn from_fields(mut fields: backend::ErrorFields<'_>) -> Self {
        let mut code = String::new();
        let mut message = String::new();
        let mut detail = None;
        let mut hint = None;
        loop {
            match fields.next() {
                Ok(Some(field)) => {
                    let value = || String::from_utf8_lossy(field.value_bytes()).into_owned();
                    match field.type_() {
                        b'C' => code = value(),
                        b'M' => message = value(),
                        b'D' => detail = Some(value()),
                        b'H' => hint = Some(value()),
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(e) => return Self::Protocol(format!("malformed ErrorResponse: {e}")),
            }
        }
        Self::Server { code, message, detail, hint }
    }
}

/// Rows returned by a simple query (`ReplicationConnection::simple_query`), all values in
/// text format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimpleRows {
    /// Column names of the last statement that returned rows.
    pub columns: Vec<String>,
    /// Rows of the last statement that returned rows; `None` is SQL `NULL`.
    pub rows: Vec<Vec<Option<String>>>,
    /// The command tag of the last statement (for example `SELECT 1`).
    pub command_tag: Option<String>,
}

impl SimpleRows {
    /// The index of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The value of column `name` in row `row` (`None` if absent or `NULL`).
    pub fn value(&self, row: usize, name: &str) -> Option<&str> {
        let idx = self.column(name)?;
        self.rows.get(row)?.get(idx)?.as_deref()
    }
}

/// Which kind of session a [`Connection`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionKind {
    /// `replication=database`: replication commands and simple SQL.
    Replication,
    /// A normal session (a worker that streams COPY).
    Normal,
}

impl SessionKind {
    /// How error messages name this kind of connection.
    fn noun(self) -> &'static str {
        match self {
            Self::Replication => "replication connections",
            Self::Normal => "pgsnap's worker connections",
        }
    }
}

/// Where a connection goes: one resolved TCP address or one Unix socket.
#[derive(Clone)]
pub(crate) enum Endpoint {
    Tcp {
        /// The host name as configured, used for TLS server name and messages.
        host: String,
        addr: SocketAddr,
    },
    Unix {
        path: PathBuf,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, addr } => {
                if host.parse::<IpAddr>().is_ok() {
                    write!(f, "{addr}")
                } else {
                    write!(f, "{host}:{} ({})", addr.port(), addr.ip())
                }
            }
            Self::Unix { path } => write!(f, "{}", path.display()),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Byte stream to the server.
trait PgStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> PgStream for T {}

/// How TLS is negotiated for one attempt.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TlsPolicy {
    Off,
    Prefer,
    Require,
}

/// Where the connection is in the request/response cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `ReadyForQuery` received, nothing in flight.
    Idle,
    /// A command was sent; its `ReadyForQuery` has not been read yet (for example
    /// because the caller dropped the future). The next command drains it first.
    Busy,
    /// The stream is in an unknown state (I/O error, protocol error, interrupted write).
    Broken,
}
/// A connection to PostgreSQL speaking the frontend/backend protocol itself.
///
/// Commands run one at a time (`&mut self`). If a command's future is dropped before it
/// completes (or a COPY is abandoned half-read), the next command first reads and discards
/// the rest of its response.
pub(crate) struct Connection {
    stream: Box<dyn PgStream>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    endpoint: Endpoint,
    kind: SessionKind,
    /// TLS configuration if this connection uses TLS (reused by cancel requests).
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Option<Duration>,
    process_id: i32,
    secret_key: i32,
    parameters: HashMap<String, String>,
    server_version_num: u32,
    state: State,
    /// The COPY TO STDOUT being read, between `CopyOutResponse` and `ReadyForQuery`.
    copy: Option<Box<CopyOut>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug("Connection", f)
    }
}

impl Connection {
    /// `Debug` output under the name of a wrapping type.
    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("backend_pid", &self.process_id)
            .field("server_version_num", &self.server_version_num)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The reading state of a `COPY ... TO STDOUT`.
#[derive(Debug, Default)]
struct CopyOut {
    /// Bytes of the current `CopyData` payload still to come (its header is consumed).
    pending: usize,
    /// Payload gathered for the next buffer handed on.
    out: BytesMut,
    /// An `ErrorResponse`, returned once its `ReadyForQuery` (or the close) follows.
    error: Option<ReplicationError>,
    /// `ReadyForQuery` was read: the last buffer (if any) is being handed on.
    finished: bool,
    /// When `out`, not yet full, is handed on anyway if the socket stays quiet.
    flush_due: Option<tokio::time::Instant>,
    /// Wakes the stream at `flush_due` (kept across buffers).
    flush_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl CopyOut {
    /// Takes the gathered rows as one buffer, leaving `out` empty.
    fn take_batch(&mut self) -> Bytes {
        self.flush_due = None;
        if self.out.len() >= self.out.capacity() / 2 {
            // The next buffer is allocated when rows arrive.
            std::mem::take(&mut self.out).freeze()
        } else {
            // A partial buffer (end of the COPY, a quiet socket) is copied out, so that a
            // few rows do not pin a large allocation downstream; `out` keeps it for more.
            let rows = Bytes::copy_from_slice(&self.out);
            self.out.clear();
            rows
        }
    }

    /// Whether `out` has waited long enough for more rows (asked when the socket has
    /// nothing to read); if not, the timer wakes the task when it has.
    fn flush_is_due(&mut self, cx: &mut Context<'_>) -> bool {
        let due =
            *self.flush_due.get_or_insert_with(|| tokio::time::Instant::now() + COPY_FLUSH_AFTER);
        let timer = self.flush_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

/// Sends cancel requests for a connection's running command.
///
/// Cheap to clone and usable from any task while the connection runs a command.
#[derive(Clone)]
pub struct CancelHandle {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Option<Duration>,
    process_id: i32,
    secret_key: i32,
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("backend_pid", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl CancelHandle {
    /// Asks the server to cancel the command the connection is running.
    ///
    /// Opens a new socket to the same server (with TLS if the connection used it),
    /// sends a `CancelRequest` and waits for the server to close the socket. As with
    /// libpq, success only means the request was delivered: if nothing is running,
    /// nothing happens; if it works, the command fails with SQLSTATE `57014`.
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Io`], [`ReplicationError::Tls`] or
    /// [`ReplicationError::Timeout`] (after `connect_timeout`) if the request could not
    /// be delivered.
    pub async fn cancel(&self) -> Result<(), ReplicationError> {
        with_timeout(self.connect_timeout, self.cancel_inner()).await
    }

    async fn cancel_inner(&self) -> Result<(), ReplicationError> {
        let policy = if self.tls.is_some() { TlsPolicy::Prefer } else { TlsPolicy::Off };
        let mut stream = open_stream(&self.endpoint, self.tls.as_ref(), policy).await?.0;
        let mut buf = BytesMut::new();
        frontend::cancel_request(self.process_id, self.secret_key, &mut buf);
        let endpoint = &self.endpoint;
        stream.write_all(&buf).await.map_err(|e| ReplicationError::io(endpoint, e))?;
        stream.flush().await.map_err(|e| ReplicationError::io(endpoint, e))?;
        // The server closes the socket once it has processed the request.
        let mut sink = [0u8; 64];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // A reset after the request was written still means it was delivered.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(ReplicationError::io(endpoint, e)),
            }
        }
    }
}

async fn with_timeout<T>(
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<T, ReplicationError>>,
) -> Result<T, ReplicationError> {
    match timeout {
        Some(t) if !t.is_zero() => {
            tokio::time::timeout(t, fut).await.unwrap_or(Err(ReplicationError::Timeout))
        }
        _ => fut.await,
    }
}

/// Opens a socket to `endpoint` and negotiates TLS according to `policy`.
/// Returns the stream and whether TLS is in use.
async fn open_stream(
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
    policy: TlsPolicy,
) -> Result<(Box<dyn PgStream>, bool), ReplicationError> {
    match endpoint {
        Endpoint::Unix { path } => {
            // Like libpq, never use TLS over Unix sockets.
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| ReplicationError::io(endpoint, e))?;
            Ok((Box::new(stream), false))
        }
        Endpoint::Tcp { host, addr } => {
            let mut stream =
                TcpStream::connect(addr).await.map_err(|e| ReplicationError::io(endpoint, e))?;
            stream.set_nodelay(true).map_err(|e| ReplicationError::io(endpoint, e))?;
            // Like libpq (keepalives=1 by default): a dead peer behind a NAT or firewall is
            // noticed instead of a COPY waiting forever.
            socket2::SockRef::from(&stream)
                .set_keepalive(true)
                .map_err(|e| ReplicationError::io(endpoint, e))?;
            let Some(tls) = tls.filter(|_| policy != TlsPolicy::Off) else {
                if policy == TlsPolicy::Require {
                    return Err(ReplicationError::Tls {
                        endpoint: endpoint.to_string(),
                        source: "sslmode=require but no TLS configuration was given".into(),
                    });
                }
                return Ok((Box::new(stream), false));
            };
            let mut buf = BytesMut::new();
            frontend::ssl_request(&mut buf);
            stream.write_all(&buf).await.map_err(|e| ReplicationError::io(endpoint, e))?;
            // Read exactly one byte, straight from the socket, so that nothing sent
            // before the handshake can be mistaken for encrypted data.
            let answer = stream.read_u8().await.map_err(|e| ReplicationError::io(endpoint, e))?;
            match answer {
                b'S' => {
                    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| ReplicationError::Tls {
                            endpoint: endpoint.to_string(),
                            source: Box::new(e),
                        })?;
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
                    let stream = connector.connect(server_name, stream).await.map_err(|e| {
                        ReplicationError::Tls {
                            endpoint: endpoint.to_string(),
                            source: Box::new(e),
                        }
                    })?;
                    Ok((Box::new(stream), true))
                }
                b'N' if policy == TlsPolicy::Prefer => Ok((Box::new(stream), false)),
                b'N' => Err(ReplicationError::Tls {
                    endpoint: endpoint.to_string(),
                    source: "the server does not support TLS, but sslmode=require".into(),
                }),
                other => Err(ReplicationError::Protocol(format!(
                    "unexpected answer {other:#04x} to SSLRequest from {endpoint}"
                ))),
            }
        }
    }
}

/// Lists the endpoints to try, in order, following tokio-postgres' host/hostaddr/port rules.
async fn candidates(config: &tokio_postgres::Config) -> Result<Vec<Endpoint>, ReplicationError> {
    let hosts = config.get_hosts();
    let hostaddrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let count = hosts.len().max(hostaddrs.len());
    if count == 0 {
        return Err(ReplicationError::Config("no host given (set host= or PGHOST)".to_owned()));
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(ReplicationError::Config(format!(
            "{} ports given for {count} hosts",
            ports.len()
        )));
    }
    let mut out = Vec::new();
    let mut last_err = None;
    for i in 0..count {
        let port = match ports {
            [] => DEFAULT_PORT,
            [p] => *p,
            many => many[i],
        };
        let host = hosts.get(i);
        if let Some(ip) = hostaddrs.get(i) {
            let name = match host {
                Some(Host::Tcp(name)) => name.clone(),
                _ => ip.to_string(),
            };
            out.push(Endpoint::Tcp { host: name, addr: SocketAddr::new(*ip, port) });
            continue;
        }
        match host {
            Some(Host::Tcp(name)) => match tokio::net::lookup_host((name.as_str(), port)).await {
                Ok(addrs) => {
                    out.extend(addrs.map(|addr| Endpoint::Tcp { host: name.clone(), addr }))
                }
                Err(source) => {
                    tracing::debug!(host = %name, error = %source, "cannot resolve host");
                    last_err =
                        Some(ReplicationError::Io { endpoint: format!("{name}:{port}"), source });
                }
            },
            Some(Host::Unix(dir)) => {
                out.push(Endpoint::Unix { path: dir.join(format!(".s.PGSQL.{port}")) })
            }
            None => {}
        }
    }
    match (out.is_empty(), last_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// Parses `server_version` (`15.4 (Debian …)`, `16beta1`, `9.6.3`) into the
/// `server_version_num` form (`150004`, `160000`, `90603`).
fn parse_server_version(version: &str) -> Option<u32> {
    let numeric: String = version.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = numeric.split('.').filter(|p| !p.is_empty());
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().map_or(Ok(0), str::parse).ok()?;
    if major >= 10 {
        Some(major * 10_000 + minor)
    } else {
        let patch: u32 = parts.next().map_or(Ok(0), str::parse).ok()?;
        Some(major * 10_000 + minor * 100 + patch)
    }
}

impl Connection {
    /// Connects a session of `kind`.
    ///
    /// Uses the (already env/pgpass-resolved) configuration's hosts (TCP names,
    /// `hostaddr`s and Unix socket directories, trying each in order until one works),
    /// ports, user, password, dbname (default: the user), application_name (default
    /// `pgsnap`), options, connect_timeout (per attempt, covering connect, TLS and
    /// authentication) and ssl_mode. TLS is used with `sslmode=prefer`/`require` when
    /// `tls` is given; `require` without `tls` fails, and Unix sockets never use TLS.
    /// The TLS server name is the configured host name.
    ///
    /// # Errors
    ///
    /// The error of the last host tried; `ReplicationConnection::connect` lists them.
    pub(crate) async fn connect(
        config: &tokio_postgres::Config,
        tls: Option<Arc<rustls::ClientConfig>>,
        kind: SessionKind,
    ) -> Result<Self, ReplicationError> {
        if config.get_ssl_negotiation() != SslNegotiation::Postgres {
            return Err(ReplicationError::Config(
                "only sslnegotiation=postgres is supported".to_owned(),
            ));
        }
        if config.get_channel_binding() == tokio_postgres::config::ChannelBinding::Require {
            return Err(ReplicationError::Config(format!(
                "channel_binding=require is not supported by {}",
                kind.noun()
            )));
        }
        if config.get_user().is_none() {
            return Err(ReplicationError::Config("no user given".to_owned()));
        }
        let policy = match config.get_ssl_mode() {
            SslMode::Disable => TlsPolicy::Off,
            SslMode::Prefer => TlsPolicy::Prefer,
            // Require, and any stricter future mode.
            _ => TlsPolicy::Require,
        };
        let timeout = config.get_connect_timeout().copied();
        let mut last_err = None;
        for endpoint in candidates(config).await? {
            let mut result = with_timeout(
                timeout,
                Self::connect_to(&endpoint, config, tls.as_ref(), policy, kind),
            )
            .await;
            if policy == TlsPolicy::Prefer && matches!(result, Err(ReplicationError::Tls { .. })) {
                tracing::debug!(%endpoint, "TLS failed with sslmode=prefer, retrying without");
                result = with_timeout(
                    timeout,
                    Self::connect_to(&endpoint, config, None, TlsPolicy::Off, kind),
                )
                .await;
            }
            match result {
                Ok(mut conn) => {
                    conn.connect_timeout = timeout;
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, ?kind, "connection attempt failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(ReplicationError::Closed))
    }

    async fn connect_to(
        endpoint: &Endpoint,
        config: &tokio_postgres::Config,
        tls: Option<&Arc<rustls::ClientConfig>>,
        policy: TlsPolicy,
        kind: SessionKind,
    ) -> Result<Self, ReplicationError> {
        let user = config
            .get_user()
            .ok_or_else(|| ReplicationError::Config("no user given".to_owned()))?;
        let (stream, tls_used) = open_stream(endpoint, tls, policy).await?;
        let mut conn = Self {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            endpoint: endpoint.clone(),
            kind,
            tls: tls.filter(|_| tls_used).cloned(),
            connect_timeout: None,
            process_id: 0,
            secret_key: 0,
            parameters: HashMap::new(),
            server_version_num: 0,
            state: State::Broken,
            copy: None,
        };

        let mut params = vec![("user", user), ("database", config.get_dbname().unwrap_or(user))];
        if kind == SessionKind::Replication {
            params.push(("replication", "database"));
        }
        params.extend([
            ("application_name", config.get_application_name().unwrap_or(DEFAULT_APPLICATION_NAME)),
            ("client_encoding", "UTF8"),
        ]);
        if let Some(options) = config.get_options() {
            params.push(("options", options));
        }
        frontend::startup_message(params, &mut conn.write_buf)
            .map_err(|e| ReplicationError::Config(format!("invalid startup parameter: {e}")))?;
        conn.flush().await?;

        conn.authenticate(user, config.get_password()).await?;

        loop {
            match conn.read_message().await? {
                Message::ParameterStatus(body) => conn.store_parameter(&body)?,
                Message::BackendKeyData(body) => {
                    conn.process_id = body.process_id();
                    conn.secret_key = body.secret_key();
                }
                Message::ReadyForQuery(_) => break,
                Message::ErrorResponse(body) => {
                    return Err(ReplicationError::from_fields(body.fields()));
                }
                Message::NoticeResponse(body) => log_notice(&body),
                other => return Err(unexpected("after authentication", &other)),
            }
        }
        conn.server_version_num = conn
            .parameters
            .get("server_version")
            .and_then(|v| parse_server_version(v))
            .unwrap_or(0);
        conn.state = State::Idle;
        Ok(conn)
    }

    async fn authenticate(
        &mut self,
        user: &str,
        password: Option<&[u8]>,
    ) -> Result<(), ReplicationError> {
        let need_password = || {
            password.ok_or_else(|| ReplicationError::Auth {
                message: format!(
                    "password required for user {user} (set PGPASSWORD, ~/.pgpass or \
                     password= in the conninfo)"
                ),
            })
        };
        let bad_password =
            |e: io::Error| ReplicationError::Auth { message: format!("cannot send password: {e}") };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read_message().await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(need_password()?, &mut self.write_buf)
                        .map_err(bad_password)?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(user.as_bytes(), need_password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(bad_password)?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = Vec::new();
                    let mut iter = body.mechanisms();
                    while let Some(m) = iter.next().map_err(|e| {
                        ReplicationError::Protocol(format!("malformed SASL mechanism list: {e}"))
                    })? {
                        mechanisms.push(m.to_owned());
                    }
                    if !mechanisms.iter().any(|m| m == sasl::SCRAM_SHA_256) {
                        return Err(ReplicationError::Auth {
                            message: format!(
                                "unsupported SASL mechanisms offered by the server: {}",
                                mechanisms.join(", ")
                            ),
                        });
                    }
                    // No channel binding: announce that the client does not support it
                    // ("n"), which the server accepts even when it offers -PLUS.
                    let state = ScramSha256::new(need_password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        state.message(),
                        &mut self.write_buf,
                    )
                    .map_err(bad_password)?;
                    scram = Some(state);
                    self.flush().await?;
                }
                Message::AuthenticationSaslContinue(body) => {
                    let state = scram.as_mut().ok_or_else(|| {
                        ReplicationError::Protocol("SASL continue without SASL start".to_owned())
                    })?;
                    state.update(body.data()).map_err(|e| ReplicationError::Auth {
                        message: format!("SCRAM exchange failed: {e}"),
                    })?;
                    frontend::sasl_response(state.message(), &mut self.write_buf)
                        .map_err(bad_password)?;
                    self.flush().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let state = scram.as_mut().ok_or_else(|| {
                        ReplicationError::Protocol("SASL final without SASL start".to_owned())
                    })?;
                    state.finish(body.data()).map_err(|e| ReplicationError::Auth {
                        message: format!("SCRAM server signature check failed: {e}"),
                    })?;
                }
                Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGss
                | Message::AuthenticationGssContinue(_)
                | Message::AuthenticationSspi => {
                    return Err(ReplicationError::Auth {
                        message: format!(
                            "the server asks for an unsupported authentication method for user \
                             {user} (supported: trust, password, md5, scram-sha-256)"
                        ),
                    });
                }
                Message::ErrorResponse(body) => {
                    return Err(ReplicationError::from_fields(body.fields()));
                }
                Message::NoticeResponse(body) => log_notice(&body),
                other => return Err(unexpected("during authentication", &other)),
            }
        }
    }

    /// A handle that cancels this connection's running command from another task.
    pub(crate) fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            endpoint: self.endpoint.clone(),
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            process_id: self.process_id,
            secret_key: self.secret_key,
        }
    }

    /// The process id of the backend (or walsender) serving this connection.
    pub(crate) fn backend_pid(&self) -> i32 {
        self.process_id
    }

    /// The server version in `server_version_num` form (`150004` for 15.4), parsed from
    /// the `server_version` parameter; `0` if it could not be parsed.
    pub(crate) fn server_version_num(&self) -> u32 {
        self.server_version_num
    }

    /// A parameter reported by the server (`ParameterStatus`), such as `server_version`,
    /// `server_encoding` or `TimeZone`.
    pub(crate) fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// Whether the connection can take no further command (an I/O or protocol error, an
    /// interrupted write, or the server closed it).
    pub(crate) fn is_broken(&self) -> bool {
        self.state == State::Broken
    }

    /// Runs `sql` with the simple query protocol and returns its rows as text.
    ///
    /// If `sql` holds several statements, the rows of the last one that returned rows are
    /// kept. The data of a `COPY ... TO STDOUT` is discarded (use [`Self::copy_out`]);
    /// `COPY FROM STDIN` is refused; `START_REPLICATION` breaks the connection.
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Server`] for a failed statement (the connection stays
    /// usable), [`ReplicationError::Protocol`], [`ReplicationError::Io`] or
    /// [`ReplicationError::Closed`] (the connection is then unusable).
    pub(crate) async fn simple_query(&mut self, sql: &str) -> Result<SimpleRows, ReplicationError> {
        self.send_query(sql).await?;

        let mut result = SimpleRows::default();
        let mut current_columns: Option<Vec<String>> = None;
        let mut current_rows = Vec::new();
        let mut error = None;
        loop {
            let message = self.read_reply(&mut error).await?;
            match message {
                Message::RowDescription(body) => {
                    let mut fields = body.fields();
                    let mut names = Vec::new();
                    while let Some(field) = fields.next().map_err(|e| {
                        self.protocol_failure(format!("malformed RowDescription: {e}"))
                    })? {
                        names.push(field.name().to_owned());
                    }
                    current_columns = Some(names);
                    current_rows = Vec::new();
                }
                Message::DataRow(body) => {
                    let row = self.decode_row(&body)?;
                    current_rows.push(row);
                }
                Message::CommandComplete(body) => {
                    let tag = body.tag().map_err(|e| {
                        self.protocol_failure(format!("malformed CommandComplete: {e}"))
                    })?;
                    result.command_tag = Some(tag.to_owned());
                    if let Some(columns) = current_columns.take() {
                        result.columns = columns;
                        result.rows = std::mem::take(&mut current_rows);
                    }
                }
                Message::EmptyQueryResponse => result.command_tag = None,
                Message::ErrorResponse(body) => {
                    error = Some(ReplicationError::from_fields(body.fields()));
                }
                Message::NoticeResponse(body) => log_notice(&body),
                Message::ParameterStatus(body) => self.store_parameter(&body)?,
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(result),
                    };
                }
                Message::CopyInResponse(_) => {
                    frontend::copy_fail(
                        &format!("COPY FROM STDIN is not supported on {}", self.kind.noun()),
                        &mut self.write_buf,
                    )
                    .map_err(|e| self.protocol_failure(e.to_string()))?;
                    self.flush().await?;
                }
                // COPY TO STDOUT: discard the data.
                Message::CopyOutResponse(_) | Message::CopyData(_) | Message::CopyDone => {}
                Message::NotificationResponse(_) => {}
                other => {
                    let e = unexpected("in reply to a query", &other);
                    self.state = State::Broken;
                    return Err(e);
                }
            }
        }
    }

    /// Reads the next message of a reply. When the server closes the connection after an
    /// ErrorResponse (a FATAL error, for example from `pg_terminate_backend`), that error is
    /// returned rather than a bare `Closed`.
    async fn read_reply(
        &mut self,
        error: &mut Option<ReplicationError>,
    ) -> Result<Message, ReplicationError> {
        match self.read_message().await {
            Err(ReplicationError::Closed) if error.is_some() => {
                Err(error.take().unwrap_or(ReplicationError::Closed))
            }
            other => other,
        }
    }

    /// Sends a simple Query once the connection is idle; the reply is read by the caller.
    async fn send_query(&mut self, sql: &str) -> Result<(), ReplicationError> {
        self.make_ready().await?;
        frontend::query(sql, &mut self.write_buf)
            .map_err(|e| ReplicationError::Protocol(format!("cannot send query: {e}")))?;
        self.state = State::Busy;
        self.flush().await
    }

    /// Sends `sql`, one `COPY ... TO STDOUT` statement, and waits for its `CopyOutResponse`;
    /// read the data with [`Self::poll_copy_out`].
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Server`] if the statement fails before sending data (the
    /// connection stays usable); [`ReplicationError::Protocol`] (for example if `sql` is no
    /// COPY TO STDOUT), [`ReplicationError::Io`] or [`ReplicationError::Closed`] (the
    /// connection is then unusable).
    pub(crate) async fn copy_out(&mut self, sql: &str) -> Result<(), ReplicationError> {
        self.send_query(sql).await?;
        let mut error = None;
        loop {
            let message = self.read_reply(&mut error).await?;
            match message {
                Message::CopyOutResponse(_) if error.is_none() => {
                    self.copy = Some(Box::default());
                    return Ok(());
                }
                // A statement sent before the COPY in the same query string (a lock) is done.
                Message::CommandComplete(_) if error.is_none() => {}
                Message::ErrorResponse(body) => {
                    error = Some(ReplicationError::from_fields(body.fields()));
                }
                Message::NoticeResponse(body) => log_notice(&body),
                Message::ParameterStatus(body) => self.store_parameter(&body)?,
                Message::NotificationResponse(_) => {}
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    return Err(error.unwrap_or_else(|| {
                        ReplicationError::Protocol("the statement sent no COPY data".to_owned())
                    }));
                }
                other => {
                    return Err(self.protocol_failure(
                        unexpected("in reply to COPY TO STDOUT", &other).to_string(),
                    ));
                }
            }
        }
    }

    /// Reads the COPY started by [`Self::copy_out`]: the next buffer of rows (the payloads
    /// of consecutive `CopyData` messages, concatenated), or `None` once the command has
    /// completed (`CopyDone`, `CommandComplete`, `ReadyForQuery`: the connection is idle
    /// again).
    ///
    /// The socket is read in pieces of up to [`COPY_READ_BYTES`]. A buffer is handed on
    /// when it holds `batch` bytes, at the end, or when the socket has had nothing to read
    /// for [`COPY_FLUSH_AFTER`]. Memory stays bounded: while a full buffer waits to be
    /// taken, the socket is not read (TCP backpressure slows the server down).
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Server`] if the command fails midway (returned after its
    /// `ReadyForQuery`, or after the close that follows a FATAL error; rows gathered but
    /// not yet handed on are dropped); [`ReplicationError::Protocol`],
    /// [`ReplicationError::Io`] or [`ReplicationError::Closed`] (the connection is then
    /// unusable).
    pub(crate) fn poll_copy_out(
        &mut self,
        cx: &mut Context<'_>,
        batch: usize,
    ) -> Poll<Result<Option<Bytes>, ReplicationError>> {
        loop {
            let Some(copy) = self.copy.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            if copy.finished {
                let rows = (!copy.out.is_empty()).then(|| copy.take_batch());
                self.copy = None;
                return Poll::Ready(Ok(rows));
            }
            let message = match split_copy_data(
                &mut self.read_buf,
                &mut copy.pending,
                &mut copy.out,
                batch,
            ) {
                Ok(Parsed::Full) if copy.error.is_none() => {
                    return Poll::Ready(Ok(Some(copy.take_batch())));
                }
                // After an error nothing more is handed on (and no data should come).
                Ok(Parsed::Full) => {
                    copy.out.clear();
                    continue;
                }
                Ok(Parsed::Message(message)) => message,
                Ok(Parsed::NeedData) => {
                    self.read_buf.reserve(COPY_READ_BYTES);
                    // `read_buf` is a one-step future: dropping it when pending loses nothing.
                    let read = std::pin::pin!(self.stream.read_buf(&mut self.read_buf)).poll(cx);
                    match read {
                        Poll::Ready(Ok(n)) if n > 0 => continue,
                        Poll::Pending => {
                            // Rows wait for more to fill the buffer: every buffer costs
                            // the consumer a hand-off, so large ones are much cheaper.
                            // Only when the socket stays quiet are they handed on early.
                            if copy.out.is_empty() || copy.error.is_some() || !copy.flush_is_due(cx)
                            {
                                return Poll::Pending;
                            }
                            return Poll::Ready(Ok(Some(copy.take_batch())));
                        }
                        Poll::Ready(Ok(_)) => {
                            // A FATAL error (for example pg_terminate_backend) precedes the close.
                            let e = copy.error.take().unwrap_or(ReplicationError::Closed);
                            return Poll::Ready(Err(self.abandon_copy(e)));
                        }
                        Poll::Ready(Err(e)) => {
                            let e = ReplicationError::io(&self.endpoint, e);
                            return Poll::Ready(Err(self.abandon_copy(e)));
                        }
                    }
                }
                Err(e) => return Poll::Ready(Err(self.abandon_copy(e))),
            };
            match message {
                Message::CopyDone | Message::CommandComplete(_) => {}
                Message::ErrorResponse(body) => {
                    copy.out.clear();
                    copy.error = Some(ReplicationError::from_fields(body.fields()));
                }
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    if let Some(e) = copy.error.take() {
                        self.copy = None;
                        return Poll::Ready(Err(e));
                    }
                    copy.finished = true;
                }
                Message::NoticeResponse(body) => log_notice(&body),
                Message::ParameterStatus(body) => {
                    if let Err(e) = self.store_parameter(&body) {
                        return Poll::Ready(Err(self.abandon_copy(e)));
                    }
                }
                Message::NotificationResponse(_) => {}
                other => {
                    let e = unexpected("during COPY TO STDOUT", &other);
                    return Poll::Ready(Err(self.abandon_copy(e)));
                }
            }
        }
    }

    /// Ends a COPY that failed so that the connection can no longer be used.
    fn abandon_copy(&mut self, e: ReplicationError) -> ReplicationError {
        self.state = State::Broken;
        self.copy = None;
        e
    }

    /// Sends `Terminate` without waiting, as a connection is dropped (best effort): the
    /// server then ends the session quietly instead of logging an unexpected EOF. The
    /// connection is unusable afterwards.
    pub(crate) fn terminate_now(&mut self) {
        if self.state == State::Broken {
            return;
        }
        self.state = State::Broken;
        let mut message = BytesMut::new();
        frontend::terminate(&mut message);
        // A socket with room in its send buffer (the usual case) takes the 5 bytes at once.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut stream = Pin::new(&mut self.stream);
        if let Poll::Ready(Ok(n)) = stream.as_mut().poll_write(&mut cx, &message)
            && n == message.len()
        {
            let _ = stream.poll_flush(&mut cx);
        }
    }

    /// Sends `Terminate`, waits (up to 10 s) until the server closes the connection, and
    /// closes the socket.
    ///
    /// Ends the exported snapshot and drops temporary slots: the server closes its end only
    /// after its exit cleanup, so once this returns a temporary slot is gone from
    /// `pg_replication_slots`.
    ///
    /// # Errors
    ///
    /// I/O errors while saying goodbye (the connection is closed either way).
    pub(crate) async fn close(mut self) -> Result<(), ReplicationError> {
        if self.state == State::Broken {
            return Ok(());
        }
        frontend::terminate(&mut self.write_buf);
        self.flush().await?;
        // The server sends nothing more (at most a TLS close_notify): read to the end.
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            let mut sink = [0u8; 1024];
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::debug!(endpoint = %self.endpoint, kind = ?self.kind, "the server did not close the connection within 10 s");
        }
        // A failed shutdown changes nothing.
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// Finishes a command whose future was dropped, or fails if the stream is broken.
    async fn make_ready(&mut self) -> Result<(), ReplicationError> {
        match self.state {
            State::Idle => Ok(()),
            State::Broken => Err(ReplicationError::Closed),
            State::Busy => {
                tracing::debug!("draining the reply of an abandoned command");
                // A COPY abandoned inside a CopyData message: skip the rest of its payload
                // (its header is consumed, so the buffer does not start at a message).
                loop {
                    let pending = self.copy.as_ref().map_or(0, |c| c.pending);
                    if pending == 0 {
                        break;
                    }
                    if self.read_buf.is_empty() {
                        self.fill_read_buf(READ_CHUNK).await?;
                        continue;
                    }
                    let n = pending.min(self.read_buf.len());
                    self.read_buf.advance(n);
                    if let Some(copy) = &mut self.copy {
                        copy.pending -= n;
                    }
                }
                self.copy = None;
                loop {
                    match self.read_message().await? {
                        Message::ReadyForQuery(_) => {
                            self.state = State::Idle;
                            return Ok(());
                        }
                        Message::ParameterStatus(body) => self.store_parameter(&body)?,
                        Message::CopyInResponse(_) => {
                            frontend::copy_fail("abandoned", &mut self.write_buf)
                                .map_err(|e| self.protocol_failure(e.to_string()))?;
                            self.flush().await?;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn decode_row(
        &mut self,
        body: &backend::DataRowBody,
    ) -> Result<Vec<Option<String>>, ReplicationError> {
        let buf = body.buffer();
        let mut ranges = body.ranges();
        let mut row = Vec::new();
        loop {
            match ranges.next() {
                Ok(Some(range)) => row.push(match range {
                    None => None,
                    Some(r) => Some(
                        std::str::from_utf8(&buf[r])
                            .map_err(|e| self.protocol_failure(format!("value is not UTF-8: {e}")))?
                            .to_owned(),
                    ),
                }),
                Ok(None) => return Ok(row),
                Err(e) => return Err(self.protocol_failure(format!("malformed DataRow: {e}"))),
            }
        }
    }

    fn store_parameter(
        &mut self,
        body: &backend::ParameterStatusBody,
    ) -> Result<(), ReplicationError> {
        let (name, value) = match (body.name(), body.value()) {
            (Ok(n), Ok(v)) => (n.to_owned(), v.to_owned()),
            _ => return Err(self.protocol_failure("malformed ParameterStatus".to_owned())),
        };
        self.parameters.insert(name, value);
        Ok(())
    }

    /// Marks the connection broken and builds a protocol error.
    fn protocol_failure(&mut self, message: String) -> ReplicationError {
        self.state = State::Broken;
        ReplicationError::Protocol(message)
    }

    /// Writes the pending output. The connection counts as broken while a write is
    /// under way, so a write interrupted by a dropped future is never resumed.
    async fn flush(&mut self) -> Result<(), ReplicationError> {
        let previous = self.state;
        self.state = State::Broken;
        let result = async {
            self.stream.write_all(&self.write_buf).await?;
            self.stream.flush().await
        }
        .await;
        self.write_buf.clear();
        match result {
            Ok(()) => {
                self.state = previous;
                Ok(())
            }
            Err(e) => Err(ReplicationError::io(&self.endpoint, e)),
        }
    }

    /// Reads the next backend message (cancel-safe: partial messages stay buffered).
    async fn read_message(&mut self) -> Result<Message, ReplicationError> {
        loop {
            match Message::parse(&mut self.read_buf) {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(e) => {
                    return Err(self.protocol_failure(format!("cannot parse server message: {e}")));
                }
            }
            self.fill_read_buf(READ_CHUNK).await?;
        }
    }

    /// Reads from the socket into the read buffer (at most `reserve` bytes at a time).
    async fn fill_read_buf(&mut self, reserve: usize) -> Result<(), ReplicationError> {
        self.read_buf.reserve(reserve);
        match self.stream.read_buf(&mut self.read_buf).await {
            Ok(0) => {
                self.state = State::Broken;
                Err(ReplicationError::Closed)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.state = State::Broken;
                Err(ReplicationError::io(&self.endpoint, e))
            }
        }
    }
}

fn log_notice(body: &backend::NoticeResponseBody) {
    if let ReplicationError::Server { code, message, .. } =
        ReplicationError::from_fields(body.fields())
    {
        tracing::debug!(%code, %message, "notice from the replication connection");
    }
}

fn unexpected(when: &str, message: &Message) -> ReplicationError {
    let name = match message {
        Message::AuthenticationOk => "AuthenticationOk",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::BindComplete => "BindComplete",
        Message::CloseComplete => "CloseComplete",
        Message::CommandComplete(_) => "CommandComplete",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::DataRow(_) => "DataRow",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::NoData => "NoData",
        Message::ParameterDescription(_) => "ParameterDescription",
        Message::ParseComplete => "ParseComplete",
        Message::PortalSuspended => "PortalSuspended",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::RowDescription(_) => "RowDescription",
        _ => "message",
    };
    ReplicationError::Protocol(format!("unexpected {name} {when}"))
}

/// What [`split_copy_data`] stopped at.
pub(crate) enum Parsed {
    /// The input holds no complete `CopyData` header or other message any more.
    NeedData,
    /// The output holds `batch` bytes: hand it on before parsing further.
    Full,
    /// A complete message other than `CopyData`, taken off the input.
    Message(Message),
}

/// Moves `CopyData` payloads from `input` (raw server messages) to the end of `out`, until
/// `out` holds `batch` bytes, the input runs out, or another message comes.
///
/// `pending` is the part of the current `CopyData` payload not yet moved: frames may be
/// split anywhere across reads, and a large frame is moved piecemeal (never buffered
/// whole). Per row this costs one header check and one copy; no allocation.
///
/// # Errors
///
/// [`ReplicationError::Protocol`] for a malformed message.
pub(crate) fn split_copy_data(
    input: &mut BytesMut,
    pending: &mut usize,
    out: &mut BytesMut,
    batch: usize,
) -> Result<Parsed, ReplicationError> {
    if out.capacity() < batch {
        out.reserve(batch - out.len());
    }
    let data: &[u8] = input;
    let mut pos = 0;
    let mut other_message = false;
    let stop = loop {
        if *pending > 0 {
            let room = batch.saturating_sub(out.len());
            let n = (*pending).min(data.len() - pos).min(room);
            if n == 0 {
                break if room == 0 { Parsed::Full } else { Parsed::NeedData };
            }
            out.extend_from_slice(&data[pos..pos + n]);
            pos += n;
            *pending -= n;
            continue;
        }
        if out.len() >= batch {
            break Parsed::Full;
        }
        let rest = &data[pos..];
        if rest.len() < 5 {
            break Parsed::NeedData;
        }
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len < 4 {
            return Err(ReplicationError::Protocol(format!(
                "invalid message length {len} (message type {:#04x})",
                rest[0]
            )));
        }
        if rest[0] != b'd' {
            // Another message: parsed whole below, once the input starts with it.
            other_message = true;
            break Parsed::NeedData;
        }
        pos += 5;
        *pending = len - 4;
    };
    input.advance(pos);
    if !other_message {
        return Ok(stop);
    }
    match Message::parse(input) {
        Ok(Some(message)) => Ok(Parsed::Message(message)),
        // Incomplete: `parse` reserved room for the rest.
        Ok(None) => Ok(Parsed::NeedData),
        Err(e) => Err(ReplicationError::Protocol(format!("cannot parse server message: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::DuplexStream;

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("15.4 (Debian 15.4-1.pgdg120+1)"), Some(150_004));
        assert_eq!(parse_server_version("16beta1"), Some(160_000));
        assert_eq!(parse_server_version("17.0"), Some(170_000));
        assert_eq!(parse_server_version("9.6.3"), Some(90_603));
        assert_eq!(parse_server_version("devel"), None);
    }

    /// A backend message: type byte, length, body.
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn copy_data(payload: &[u8]) -> Vec<u8> {
        msg(b'd', payload)
    }

    /// An ErrorResponse (`E`) or NoticeResponse (`N`) with severity, SQLSTATE and message.
    fn report(tag: u8, severity: &str, code: &str, message: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (field, value) in [(b'S', severity), (b'C', code), (b'M', message)] {
            body.push(field);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        msg(tag, &body)
    }

    fn copy_out_response() -> Vec<u8> {
        msg(b'H', &[0, 0, 1, 0, 0])
    }

    /// CopyDone, CommandComplete, ReadyForQuery (in a transaction).
    fn copy_end(rows: usize) -> Vec<u8> {
        let mut m = msg(b'c', &[]);
        m.extend(msg(b'C', format!("COPY {rows}\0").as_bytes()));
        m.extend(msg(b'Z', b"T"));
        m
    }

    /// Rows of assorted sizes, including empty payloads and one larger than the test batches.
    fn rows() -> Vec<Vec<u8>> {
        let mut rows: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("{i}\trow {i}\t{}\n", "x".repeat(i * 3)).into_bytes())
            .collect();
        rows.insert(3, Vec::new());
        rows.insert(7, Vec::new());
        rows.push(vec![b'z'; 300]);
        rows.push(Vec::new());
        rows
    }

    fn tag(m: &Message) -> char {
        match m {
            Message::NoticeResponse(_) => 'N',
            Message::ErrorResponse(_) => 'E',
            Message::ParameterStatus(_) => 'S',
            Message::CopyDone => 'c',
            Message::CommandComplete(_) => 'C',
            Message::ReadyForQuery(_) => 'Z',
            _ => '?',
        }
    }

    /// Feeds `pieces` one after the other to the parser; returns the payload it handed on
    /// (checking every full buffer has exactly `batch` bytes) and the other messages' types.
    fn parse_pieces(pieces: &[&[u8]], batch: usize) -> (Vec<u8>, String) {
        let (mut input, mut pending, mut out) = (BytesMut::new(), 0, BytesMut::new());
        let (mut data, mut messages) = (Vec::new(), String::new());
        for piece in pieces {
            input.extend_from_slice(piece);
            loop {
                match split_copy_data(&mut input, &mut pending, &mut out, batch).unwrap() {
                    Parsed::NeedData => break,
                    Parsed::Full => {
                        assert_eq!(out.len(), batch);
                        data.extend_from_slice(&out.split());
                    }
                    Parsed::Message(m) => {
                        assert_eq!(pending, 0, "a message inside a CopyData payload");
                        messages.push(tag(&m));
                    }
                }
            }
        }
        assert!(input.is_empty(), "{} bytes left unparsed", input.len());
        data.extend_from_slice(&out);
        (data, messages)
    }

    /// The server's bytes for `rows` with a notice and a parameter change among them.
    fn stream_with_interruptions(rows: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if i == 5 {
                wire.extend(report(b'N', "NOTICE", "01000", "a notice"));
            }
            if i == 9 {
                wire.extend(msg(b'S', b"TimeZone\0UTC\0"));
            }
            wire.extend(copy_data(row));
        }
        wire.extend(copy_end(rows.len()));
        wire
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        let rows = rows();
        let expected: Vec<u8> = rows.concat();
        let wire = stream_with_interruptions(&rows);
        for batch in [1, 7, 64, 1 << 20] {
            for cut in 0..=wire.len() {
                let (data, messages) = parse_pieces(&[&wire[..cut], &wire[cut..]], batch);
                assert_eq!(data, expected, "cut at {cut}, batch {batch}");
                assert_eq!(messages, "NScCZ", "cut at {cut}, batch {batch}");
            }
            // And one byte at a time.
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            let (data, messages) = parse_pieces(&bytes, batch);
            assert_eq!(data, expected, "byte by byte, batch {batch}");
            assert_eq!(messages, "NScCZ");
        }
    }

    #[test]
    fn zero_length_payloads_only() {
        let mut wire = Vec::new();
        for _ in 0..5 {
            wire.extend(copy_data(b""));
        }
        wire.extend(copy_end(5));
        let (data, messages) = parse_pieces(&[&wire], 4);
        assert!(data.is_empty());
        assert_eq!(messages, "cCZ");
    }

    #[test]
    fn error_response_mid_stream_is_a_message() {
        let mut wire = copy_data(b"1\ta\n");
        wire.extend(report(b'E', "FATAL", "57P01", "terminating connection"));
        let (data, messages) = parse_pieces(&[&wire[..7], &wire[7..]], 1 << 10);
        assert_eq!(data, b"1\ta\n");
        assert_eq!(messages, "E");
    }

    #[test]
    fn bad_message_length_is_a_protocol_error() {
        let mut input = BytesMut::from(&b"d\0\0\0\x02xx"[..]);
        let (mut pending, mut out) = (0, BytesMut::new());
        let err = split_copy_data(&mut input, &mut pending, &mut out, 64).err().unwrap();
        assert!(matches!(err, ReplicationError::Protocol(_)), "{err:?}");
    }

    /// A connection over an in-memory pipe, as if started up already; the other end plays
    /// the server.
    fn pipe() -> (Connection, DuplexStream) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let conn = Connection {
            stream: Box::new(client),
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            endpoint: Endpoint::Unix { path: PathBuf::from("/test") },
            kind: SessionKind::Normal,
            tls: None,
            connect_timeout: None,
            process_id: 1,
            secret_key: 2,
            parameters: HashMap::new(),
            server_version_num: 150_000,
            state: State::Idle,
            copy: None,
        };
        (conn, server)
    }

    /// Reads the client's next message (type byte and body) from the server end.
    async fn client_message(server: &mut DuplexStream) -> (u8, Vec<u8>) {
        let tag = server.read_u8().await.unwrap();
        let len = server.read_u32().await.unwrap() as usize;
        let mut body = vec![0; len - 4];
        server.read_exact(&mut body).await.unwrap();
        (tag, body)
    }

    /// Reads the COPY to its end or first error.
    async fn read_copy(
        conn: &mut Connection,
        batch: usize,
    ) -> (Vec<Bytes>, Result<(), ReplicationError>) {
        let mut buffers = Vec::new();
        loop {
            match poll_fn(|cx| conn.poll_copy_out(cx, batch)).await {
                Ok(Some(b)) => {
                    assert!(!b.is_empty());
                    buffers.push(b);
                }
                Ok(None) => return (buffers, Ok(())),
                Err(e) => return (buffers, Err(e)),
            }
        }
    }

    #[tokio::test]
    async fn copy_out_reads_rows_in_large_buffers_and_ends_idle() {
        let rows = rows();
        let (mut conn, mut server) = pipe();
        let wire = stream_with_interruptions(&rows);
        let server_side = async {
            let (tag, body) = client_message(&mut server).await;
            assert_eq!((tag, body.as_slice()), (b'Q', &b"COPY t TO STDOUT\0"[..]));
            server.write_all(&copy_out_response()).await.unwrap();
            // In small odd pieces, as a socket may deliver them.
            for piece in wire.chunks(13) {
                server.write_all(piece).await.unwrap();
            }
            server
        };
        let client_side = async {
            conn.copy_out("COPY t TO STDOUT").await.unwrap();
            read_copy(&mut conn, 1 << 20).await
        };
        let (mut server, (buffers, result)) = tokio::join!(server_side, client_side);
        result.unwrap();
        assert_eq!(buffers.concat(), rows.concat());
        assert_eq!(conn.state, State::Idle);
        assert_eq!(conn.parameter("TimeZone"), Some("UTC"));
        // The connection takes the next command.
        let next = async {
            let (tag, _) = client_message(&mut server).await;
            assert_eq!(tag, b'Q');
            server.write_all(&msg(b'C', b"SET\0")).await.unwrap();
            server.write_all(&msg(b'Z', b"T")).await.unwrap();
        };
        let (_, rows) = tokio::join!(next, conn.simple_query("SET x = 1"));
        assert_eq!(rows.unwrap().command_tag.as_deref(), Some("SET"));
    }

    #[tokio::test]
    async fn full_buffers_have_the_batch_size() {
        let rows = rows();
        let (mut conn, mut server) = pipe();
        let mut wire = copy_out_response();
        wire.extend(rows.iter().flat_map(|r| copy_data(r)));
        wire.extend(copy_end(rows.len()));
        server.write_all(&wire).await.unwrap();
        conn.copy_out("COPY t TO STDOUT").await.unwrap();
        let (buffers, result) = read_copy(&mut conn, 100).await;
        result.unwrap();
        let (last, full) = buffers.split_last().unwrap();
        assert!(full.iter().all(|b| b.len() == 100));
        assert!(last.len() <= 100);
        assert_eq!(buffers.concat(), rows.concat());
    }

    #[tokio::test]
    async fn error_mid_copy_is_returned_after_ready_for_query() {
        let (mut conn, mut server) = pipe();
        let mut wire = copy_out_response();
        wire.extend(copy_data(b"1\ta\n"));
        wire.extend(report(b'E', "ERROR", "57014", "canceling statement due to user request"));
        wire.extend(msg(b'Z', b"E"));
        server.write_all(&wire).await.unwrap();
        conn.copy_out("COPY t TO STDOUT").await.unwrap();
        let (buffers, result) = read_copy(&mut conn, 1 << 20).await;
        let err = result.unwrap_err();
        assert_eq!(err.sqlstate(), Some("57014"), "{err}");
        // Rows gathered before the error are not handed on.
        assert!(buffers.is_empty(), "{buffers:?}");
        // The connection is in sync (its transaction aborted: the caller drops it).
        assert_eq!(conn.state, State::Idle);
        assert!(!conn.is_broken());
    }

    #[tokio::test]
    async fn fatal_error_then_close_keeps_the_sqlstate() {
        let (mut conn, mut server) = pipe();
        let mut wire = copy_out_response();
        wire.extend(copy_data(b"1\ta\n"));
        wire.extend(report(
            b'E',
            "FATAL",
            "57P01",
            "terminating connection due to administrator command",
        ));
        server.write_all(&wire).await.unwrap();
        conn.copy_out("COPY t TO STDOUT").await.unwrap();
        drop(server);
        let (_, result) = read_copy(&mut conn, 1 << 20).await;
        assert_eq!(result.unwrap_err().sqlstate(), Some("57P01"));
        assert!(conn.is_broken());
    }

    #[tokio::test]
    async fn connection_lost_mid_frame_is_closed() {
        let (mut conn, mut server) = pipe();
        let mut wire = copy_out_response();
        wire.extend(copy_data(b"1\tabcdef\n"));
        server.write_all(&wire[..wire.len() - 3]).await.unwrap();
        conn.copy_out("COPY t TO STDOUT").await.unwrap();
        drop(server);
        let (_, result) = read_copy(&mut conn, 1 << 20).await;
        assert!(matches!(result, Err(ReplicationError::Closed)), "{result:?}");
        assert!(conn.is_broken());
    }

    #[tokio::test]
    async fn error_before_copy_leaves_the_connection_usable() {
        let (mut conn, mut server) = pipe();
        let mut wire = report(b'E', "ERROR", "42P01", "relation \"t\" does not exist");
        wire.extend(msg(b'Z', b"E"));
        server.write_all(&wire).await.unwrap();
        let err = conn.copy_out("COPY t TO STDOUT").await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42P01"));
        assert_eq!(conn.state, State::Idle);
    }

    #[tokio::test]
    async fn quiet_socket_hands_on_a_partial_buffer_after_the_flush_delay() {
        let (mut conn, mut server) = pipe();
        let mut wire = copy_out_response();
        wire.extend(copy_data(b"1\ta\n"));
        server.write_all(&wire).await.unwrap();
        conn.copy_out("COPY t TO STDOUT").await.unwrap();
        let started = std::time::Instant::now();
        let first = poll_fn(|cx| conn.poll_copy_out(cx, 1 << 20)).await.unwrap().unwrap();
        assert_eq!(&first[..], b"1\ta\n");
        assert!(started.elapsed() >= COPY_FLUSH_AFTER - Duration::from_millis(5));
        server.write_all(&copy_data(b"2\tb\n")).await.unwrap();
        server.write_all(&copy_end(2)).await.unwrap();
        let (rest, result) = read_copy(&mut conn, 1 << 20).await;
        result.unwrap();
        assert_eq!(rest.concat(), b"2\tb\n");
    }

    #[tokio::test]
    async fn abandoned_copy_is_drained_before_the_next_command() {
        let (mut conn, mut server) = pipe();
        let mut wire = copy_out_response();
        wire.extend(copy_data(&[b'x'; 50]));
        wire.extend(copy_data(&[b'y'; 5000]));
        server.write_all(&wire[..wire.len() - 2000]).await.unwrap();
        conn.copy_out("COPY t TO STDOUT").await.unwrap();
        // Read part of it (the batch fills inside the second frame), then give up.
        let first = poll_fn(|cx| conn.poll_copy_out(cx, 1000)).await.unwrap().unwrap();
        assert_eq!(first.len(), 1000);
        assert!(conn.copy.as_ref().is_some_and(|c| c.pending > 0));
        let rest = async {
            let mut tail = wire[wire.len() - 2000..].to_vec();
            tail.extend(copy_end(2));
            server.write_all(&tail).await.unwrap();
            let (tag, _) = client_message(&mut server).await;
            assert_eq!(tag, b'Q');
            server.write_all(&msg(b'C', b"SET\0")).await.unwrap();
            server.write_all(&msg(b'Z', b"T")).await.unwrap();
        };
        let (_, rows) = tokio::join!(rest, conn.simple_query("SET x = 1"));
        assert_eq!(rows.unwrap().command_tag.as_deref(), Some("SET"));
        assert!(conn.copy.is_none());
    }

    #[tokio::test]
    async fn terminate_now_sends_terminate() {
        let (mut conn, mut server) = pipe();
        conn.terminate_now();
        assert!(conn.is_broken());
        assert_eq!(client_message(&mut server).await, (b'X', vec![]));
    }

    #[test]
    fn server_error_display() {
        let e = ReplicationError::Server {
            code: "42710".to_owned(),
            message: "replication slot \"s\" already exists".to_owned(),
            detail: None,
            hint: Some("drop it".to_owned()),
        };
        assert_eq!(e.sqlstate(), Some("42710"));
        assert_eq!(
            e.to_string(),
            "replication slot \"s\" already exists (SQLSTATE 42710); hint: drop it"
        );
    }
}

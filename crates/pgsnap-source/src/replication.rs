//! A minimal PostgreSQL replication-protocol connection (`replication=database`).
//!
//! tokio-postgres cannot open walsender connections, so this module speaks the
//! frontend/backend protocol itself, on top of [`postgres_protocol`]. It supports what
//! pgsnap needs to take a consistent snapshot:
//!
//! * connecting over TCP or a Unix socket, optionally with TLS (rustls),
//! * trust, cleartext, MD5 and SCRAM-SHA-256 authentication,
//! * `CREATE_REPLICATION_SLOT … LOGICAL pgoutput` with an exported snapshot,
//!   `IDENTIFY_SYSTEM`, `DROP_REPLICATION_SLOT` and simple queries,
//! * cancelling a running command from another task ([`CancelHandle`]).
//!
//! Streaming (`START_REPLICATION`) is not supported.
//!
//! # Exported snapshots
//!
//! The snapshot exported by [`ReplicationConnection::create_logical_slot`] lives only
//! while the connection stays open **and idle**: the next command sent on it, even
//! [`ReplicationConnection::identify_system`], ends the snapshot, and later
//! `SET TRANSACTION SNAPSHOT` calls fail with `invalid snapshot identifier`. Keep the
//! connection untouched until every worker has imported the snapshot.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::{self, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::{Host, SslMode, SslNegotiation};

/// Application name sent when the configuration does not set one.
const DEFAULT_APPLICATION_NAME: &str = "pgsnap";
/// Port used when the configuration does not set one.
const DEFAULT_PORT: u16 = 5432;
/// Size of the read buffer reserved before each socket read.
const READ_CHUNK: usize = 8 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the replication connection.
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

    fn io(endpoint: &Endpoint, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            return Self::Closed;
        }
        Self::Io { endpoint: endpoint.to_string(), source }
    }

    fn from_fields(mut fields: backend::ErrorFields<'_>) -> Self {
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

/// Where a connection goes: one resolved TCP address or one Unix socket.
#[derive(Clone)]
enum Endpoint {
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

/// A replication-protocol (`replication=database`) connection to PostgreSQL.
///
/// Commands run one at a time (`&mut self`). If a command's future is dropped before
/// it completes, the next command first reads and discards the rest of its response.
///
/// See the [module documentation](self) for how exported snapshots behave.
pub struct ReplicationConnection {
    stream: Box<dyn PgStream>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    endpoint: Endpoint,
    /// TLS configuration if this connection uses TLS (reused by cancel requests).
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Option<Duration>,
    process_id: i32,
    secret_key: i32,
    parameters: HashMap<String, String>,
    server_version_num: u32,
    state: State,
}

impl fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationConnection")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("backend_pid", &self.process_id)
            .field("server_version_num", &self.server_version_num)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The result of [`ReplicationConnection::create_logical_slot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    /// The slot name as reported by the server.
    pub slot_name: String,
    /// The LSN from which the slot streams changes, as the server sent it (`X/Y`).
    pub consistent_point: String,
    /// The exported snapshot, importable with `SET TRANSACTION SNAPSHOT` while the
    /// connection stays open and idle.
    pub snapshot_name: Option<String>,
    /// The output plugin (`pgoutput`).
    pub output_plugin: Option<String>,
}

/// The result of [`ReplicationConnection::identify_system`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's system identifier (a 64-bit number, kept as the server's text).
    pub system_id: String,
    /// The current timeline.
    pub timeline: u32,
    /// The current WAL flush location, as the server sent it (`X/Y`).
    pub xlogpos: String,
    /// The database connected to (`None` for physical replication connections).
    pub dbname: Option<String>,
}

/// Rows returned by [`ReplicationConnection::simple_query`], all values in text format.
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

/// Sends cancel requests for a [`ReplicationConnection`]'s running command.
///
/// Obtained from [`ReplicationConnection::cancel_handle`]; cheap to clone and usable
/// from any task while the connection runs a command.
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

/// Quotes an identifier for the replication grammar (`"name"`, `"` doubled).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl ReplicationConnection {
    /// Connects with `replication=database`.
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
    /// The error of the last host tried: [`ReplicationError::Io`],
    /// [`ReplicationError::Tls`], [`ReplicationError::Timeout`],
    /// [`ReplicationError::Auth`] (for example no password given when the server asks
    /// for one), [`ReplicationError::Server`] (for example `28P01` for a wrong
    /// password), or [`ReplicationError::Config`].
    pub async fn connect(
        config: &tokio_postgres::Config,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, ReplicationError> {
        if config.get_ssl_negotiation() != SslNegotiation::Postgres {
            return Err(ReplicationError::Config(
                "only sslnegotiation=postgres is supported".to_owned(),
            ));
        }
        if config.get_channel_binding() == tokio_postgres::config::ChannelBinding::Require {
            return Err(ReplicationError::Config(
                "channel_binding=require is not supported by replication connections".to_owned(),
            ));
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
            let mut result =
                with_timeout(timeout, Self::connect_to(&endpoint, config, tls.as_ref(), policy))
                    .await;
            if policy == TlsPolicy::Prefer && matches!(result, Err(ReplicationError::Tls { .. })) {
                tracing::debug!(%endpoint, "TLS failed with sslmode=prefer, retrying without");
                result = with_timeout(
                    timeout,
                    Self::connect_to(&endpoint, config, None, TlsPolicy::Off),
                )
                .await;
            }
            match result {
                Ok(mut conn) => {
                    conn.connect_timeout = timeout;
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, "replication connection attempt failed");
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
            tls: tls.filter(|_| tls_used).cloned(),
            connect_timeout: None,
            process_id: 0,
            secret_key: 0,
            parameters: HashMap::new(),
            server_version_num: 0,
            state: State::Broken,
        };

        let mut params = vec![
            ("user", user),
            ("database", config.get_dbname().unwrap_or(user)),
            ("replication", "database"),
            ("application_name", config.get_application_name().unwrap_or(DEFAULT_APPLICATION_NAME)),
            ("client_encoding", "UTF8"),
        ];
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
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            endpoint: self.endpoint.clone(),
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            process_id: self.process_id,
            secret_key: self.secret_key,
        }
    }

    /// The process id of the walsender serving this connection.
    pub fn backend_pid(&self) -> i32 {
        self.process_id
    }

    /// The server version in `server_version_num` form (`150004` for 15.4), parsed from
    /// the `server_version` parameter; `0` if it could not be parsed.
    pub fn server_version_num(&self) -> u32 {
        self.server_version_num
    }

    /// A parameter reported by the server (`ParameterStatus`), such as `server_version`,
    /// `server_encoding` or `TimeZone`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// Creates a logical replication slot using `pgoutput` and exports a snapshot.
    ///
    /// Sends `CREATE_REPLICATION_SLOT "name" [TEMPORARY] LOGICAL pgoutput (SNAPSHOT
    /// 'export')` (or the `EXPORT_SNAPSHOT` form before PostgreSQL 15). A temporary slot
    /// is dropped when the connection ends.
    ///
    /// The server waits for all transactions that have an xid assigned to finish before
    /// it answers; use [`CancelHandle::cancel`] to give up.
    ///
    /// # Contract
    ///
    /// The returned snapshot stays importable only while this connection is open and
    /// idle: send no further command on it (not even [`Self::identify_system`]) until
    /// every worker has run `SET TRANSACTION SNAPSHOT`.
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Server`], for example `42710` if the slot exists, `57014` if
    /// cancelled; I/O and protocol errors.
    pub async fn create_logical_slot(
        &mut self,
        name: &str,
        temporary: bool,
    ) -> Result<CreatedSlot, ReplicationError> {
        let temporary = if temporary { " TEMPORARY" } else { "" };
        let snapshot = if self.server_version_num >= 150_000 {
            "(SNAPSHOT 'export')"
        } else {
            "EXPORT_SNAPSHOT"
        };
        let sql = format!(
            "CREATE_REPLICATION_SLOT {}{temporary} LOGICAL pgoutput {snapshot}",
            quote_ident(name)
        );
        let rows = self.simple_query(&sql).await?;
        let required = |col: &str| {
            rows.value(0, col).map(str::to_owned).ok_or_else(|| {
                ReplicationError::Protocol(format!("CREATE_REPLICATION_SLOT returned no {col}"))
            })
        };
        Ok(CreatedSlot {
            slot_name: required("slot_name")?,
            consistent_point: required("consistent_point")?,
            snapshot_name: rows.value(0, "snapshot_name").map(str::to_owned),
            output_plugin: rows.value(0, "output_plugin").map(str::to_owned),
        })
    }

    /// Runs `IDENTIFY_SYSTEM`.
    ///
    /// Sending this (or any command) after [`Self::create_logical_slot`] ends the
    /// exported snapshot.
    ///
    /// # Errors
    ///
    /// Server, I/O and protocol errors.
    pub async fn identify_system(&mut self) -> Result<SystemIdentity, ReplicationError> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let required = |col: &str| {
            rows.value(0, col).ok_or_else(|| {
                ReplicationError::Protocol(format!("IDENTIFY_SYSTEM returned no {col}"))
            })
        };
        let timeline = required("timeline")?;
        Ok(SystemIdentity {
            system_id: required("systemid")?.to_owned(),
            timeline: timeline.parse().map_err(|_| {
                ReplicationError::Protocol(format!("IDENTIFY_SYSTEM timeline {timeline:?}"))
            })?,
            xlogpos: required("xlogpos")?.to_owned(),
            dbname: rows.value(0, "dbname").map(str::to_owned),
        })
    }

    /// Runs `DROP_REPLICATION_SLOT "name" [WAIT]`.
    ///
    /// Without `wait`, dropping a slot that another connection is using fails
    /// (SQLSTATE `55006`); with `wait`, the command waits until it is released.
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Server`], for example `42704` if the slot does not exist;
    /// I/O and protocol errors.
    pub async fn drop_slot(&mut self, name: &str, wait: bool) -> Result<(), ReplicationError> {
        let wait = if wait { " WAIT" } else { "" };
        self.simple_query(&format!("DROP_REPLICATION_SLOT {}{wait}", quote_ident(name))).await?;
        Ok(())
    }

    /// Runs `sql` with the simple query protocol and returns its rows as text.
    ///
    /// Works for replication commands (`SHOW`, `TIMELINE_HISTORY`, …) and, on a
    /// `replication=database` connection, plain SQL. If `sql` holds several
    /// statements, the rows of the last one that returned rows are kept. Commands that
    /// start COPY are not supported (`START_REPLICATION` breaks the connection).
    ///
    /// # Errors
    ///
    /// [`ReplicationError::Server`] for a failed statement (the connection stays
    /// usable), [`ReplicationError::Protocol`], [`ReplicationError::Io`] or
    /// [`ReplicationError::Closed`] (the connection is then unusable).
    pub async fn simple_query(&mut self, sql: &str) -> Result<SimpleRows, ReplicationError> {
        self.make_ready().await?;
        frontend::query(sql, &mut self.write_buf)
            .map_err(|e| ReplicationError::Protocol(format!("cannot send query: {e}")))?;
        self.state = State::Busy;
        self.flush().await?;

        let mut result = SimpleRows::default();
        let mut current_columns: Option<Vec<String>> = None;
        let mut current_rows = Vec::new();
        let mut error = None;
        loop {
            let message = match self.read_message().await {
                Ok(message) => message,
                // A FATAL error (for example pg_terminate_backend) precedes the close.
                Err(ReplicationError::Closed) if error.is_some() => {
                    return Err(error.unwrap_or(ReplicationError::Closed));
                }
                Err(e) => return Err(e),
            };
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
                        "COPY FROM STDIN is not supported on replication connections",
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
    pub async fn close(mut self) -> Result<(), ReplicationError> {
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
            tracing::debug!(endpoint = %self.endpoint, "the server did not close the replication connection within 10 s");
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
            self.read_buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.read_buf).await {
                Ok(0) => {
                    self.state = State::Broken;
                    return Err(ReplicationError::Closed);
                }
                Ok(_) => {}
                Err(e) => {
                    self.state = State::Broken;
                    return Err(ReplicationError::io(&self.endpoint, e));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("15.4 (Debian 15.4-1.pgdg120+1)"), Some(150_004));
        assert_eq!(parse_server_version("16beta1"), Some(160_000));
        assert_eq!(parse_server_version("17.0"), Some(170_000));
        assert_eq!(parse_server_version("9.6.3"), Some(90_603));
        assert_eq!(parse_server_version("devel"), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("slot"), "\"slot\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
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

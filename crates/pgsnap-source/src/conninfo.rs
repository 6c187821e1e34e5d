//! libpq-compatible resolution of a connection string into a
//! [`tokio_postgres::Config`] plus TLS settings.
//!
//! [`resolve`] accepts what `psql` accepts: libpq `key=value` pairs
//! (`host=db1 dbname=app`) or a `postgresql://` / `postgres://` URL, and an
//! empty string (everything from the environment). Parsing is done by
//! tokio-postgres' own [`Config::from_str`](std::str::FromStr); this module
//! only adds what tokio-postgres does not know:
//!
//! - `sslmode=verify-ca` / `verify-full` (tokio-postgres rejects them) and
//!   `sslrootcert`; both are taken out before parsing and returned in
//!   [`ConnSpec::tls`] / [`ConnSpec::sslrootcert`]. `sslmode=allow` is
//!   treated as `prefer`.
//! - `passfile`, the conninfo spelling of `PGPASSFILE`.
//! - The libpq environment variables, used for every setting the connection
//!   string leaves unset (the connection string always wins):
//!
//! | variable            | setting              | default when neither is set                         |
//! |---------------------|----------------------|-----------------------------------------------------|
//! | `PGHOST`            | `host`               | `/var/run/postgresql` if that directory exists, else `localhost` |
//! | `PGHOSTADDR`        | `hostaddr`           | none                                                |
//! | `PGPORT`            | `port`               | `5432`                                              |
//! | `PGUSER`            | `user`               | the OS user name (`$USER`, else `whoami`)           |
//! | `PGDATABASE`        | `dbname`             | the user name                                       |
//! | `PGPASSWORD`        | `password`           | looked up in the password file                      |
//! | `PGPASSFILE`        | `passfile`           | `~/.pgpass`                                         |
//! | `PGSSLMODE`         | `sslmode`            | `prefer`                                            |
//! | `PGSSLROOTCERT`     | `sslrootcert`        | `~/.postgresql/root.crt` if it exists (for `require` and stronger) |
//! | `PGAPPNAME`         | `application_name`   | `pgsnap`                                            |
//! | `PGCONNECT_TIMEOUT` | `connect_timeout`    | none (wait indefinitely)                            |
//! | `PGOPTIONS`         | `options`            | none                                                |
//!
//! A host (in `host` or `PGHOST`) that starts with `/` is a Unix socket
//! directory. As in libpq, TLS is never attempted over Unix sockets.
//!
//! # Password file
//!
//! When no password is set, the password file (`passfile`, `PGPASSFILE` or
//! `~/.pgpass`) is searched with libpq's rules: each line is
//! `hostname:port:database:username:password`; a field that is exactly `*`
//! matches anything; `\:` and `\\` stand for `:` and `\`; lines starting with
//! `#` are comments; the first matching line wins; the host name `localhost`
//! also matches Unix socket connections. Every host of a multi-host string
//! is tried in order with its own port, and the first host with a matching
//! line supplies the password (tokio-postgres has one password for all
//! hosts). As libpq does, a file readable or writable by group or others
//! (`chmod 0600` fixes it) is ignored with a warning.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = pgsnap_source::conninfo::resolve("postgresql://app@db1/sales?sslmode=verify-full")?;
//! let (client, connection) = spec.config.connect(spec.make_tls()?).await?;
//! tokio::spawn(connection);
//! # drop(client); Ok(()) }
//! ```

use std::borrow::Cow;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio_postgres::config::{Host, SslMode};

pub use crate::tls::TlsMode;
use crate::tls::{self, MakeTls, TlsError};

/// The default Unix socket directory of Debian/Ubuntu builds of libpq.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
/// The port used when neither the connection nor the environment sets one (libpq's).
pub(crate) const DEFAULT_PORT: u16 = 5432;
/// The `application_name` sent when neither the connection nor the environment sets one.
pub(crate) const DEFAULT_APPLICATION_NAME: &str = "pgsnap";
/// What [`redacted`] writes in place of a password.
const MASK: &str = "********";
/// Appended to syntax errors.
const EXPECTED: &str = "expected libpq key=value pairs or a postgresql:// URL";

/// A resolved connection: the tokio-postgres configuration (with everything
/// the environment supplies filled in) and the TLS settings tokio-postgres
/// cannot hold.
///
/// `Debug` does not show the password (tokio-postgres' `Config` prints it as
/// `_`).
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// The connection settings. Its `ssl_mode` is already set from
    /// [`tls`](Self::tls): `disable` → `Disable`, `prefer` → `Prefer`, the
    /// others → `Require` (and `Disable` when every host is a Unix socket).
    pub config: tokio_postgres::Config,
    /// The libpq `sslmode`.
    pub tls: TlsMode,
    /// The root certificates (PEM) to verify the server with, if any.
    pub sslrootcert: Option<PathBuf>,
}

impl ConnSpec {
    /// Builds the TLS connector for this connection, to pass to
    /// [`tokio_postgres::Config::connect`].
    ///
    /// # Errors
    ///
    /// See [`tls::client_config`].
    pub fn make_tls(&self) -> Result<MakeTls, TlsError> {
        let cfg = tls::client_config(self.tls, self.sslrootcert.as_deref())?;
        Ok(tls::make_tls_connect(cfg))
    }
}

/// Why a connection string (or the environment) could not be resolved.
///
/// Messages never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    /// The connection string does not parse.
    #[error("invalid connection string: {reason}; {EXPECTED}")]
    Syntax {
        /// What is wrong (no values are quoted, so no password can leak).
        reason: String,
    },
    /// A libpq environment variable has an unusable value.
    #[error("invalid environment variable {var}: {reason}")]
    Env {
        /// The variable, such as `PGPORT`.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The settings parse but do not make sense together.
    #[error("invalid connection settings: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// No user name was given and the OS user could not be found.
    #[error(
        "could not determine the user name: set user= in the connection string or PGUSER \
         in the environment"
    )]
    NoUser,
}

/// Resolves a libpq connection string, filling unset settings from the
/// libpq environment variables of this process, the password file and the
/// libpq defaults.
///
/// See the [module documentation](self) for the rules.
///
/// # Errors
///
/// [`ConnInfoError`] when the string does not parse, an environment
/// variable is invalid, or no user name can be determined.
///
/// # Example
///
/// ```no_run
/// let spec = pgsnap_source::conninfo::resolve("host=db1 dbname=sales sslmode=verify-full")?;
/// assert_eq!(spec.tls, pgsnap_source::conninfo::TlsMode::VerifyFull);
/// # Ok::<(), pgsnap_source::conninfo::ConnInfoError>(())
/// ```
pub fn resolve(conninfo: &str) -> Result<ConnSpec, ConnInfoError> {
    resolve_with_env(conninfo, &|name| std::env::var(name).ok())
}

/// A PostgreSQL connection to open: libpq connection text (`key=value` pairs or a
/// `postgresql://` URL) and whether the parts it leaves unset may come from the process
/// environment (the `PG*` variables, `~/.pgpass`, `~/.postgresql/root.crt`), as libpq does.
///
/// A library user passes a fully specified connection and leaves the environment alone
/// ([`Connection::new`]); a command-line tool asks for libpq's behaviour
/// ([`Connection::from_environment`]). `Debug` masks passwords.
///
/// ```
/// use pgsnap_source::conninfo::Connection;
/// let c = Connection::new("host=db1 dbname=sales user=app password=s3cret");
/// assert!(!c.uses_environment());
/// assert!(!format!("{c:?}").contains("s3cret"));
/// let spec = c.resolve()?;
/// assert_eq!(spec.config.get_dbname(), Some("sales"));
/// assert!(Connection::from_environment("dbname=sales").uses_environment());
/// # Ok::<(), pgsnap_source::conninfo::ConnInfoError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    conninfo: String,
    environment: bool,
}

impl Connection {
    /// `conninfo` alone: unset parts take libpq's built-in defaults (the OS user name, the
    /// default socket directory), never the process environment.
    pub fn new(conninfo: impl Into<String>) -> Self {
        Self { conninfo: conninfo.into(), environment: false }
    }

    /// `conninfo` completed from the process environment, as libpq does.
    pub fn from_environment(conninfo: impl Into<String>) -> Self {
        Self { conninfo: conninfo.into(), environment: true }
    }

    /// Whether unset parts come from the process environment.
    pub fn uses_environment(&self) -> bool {
        self.environment
    }

    /// The connection text as given (may hold a password: do not log it; see [`redacted`]).
    pub fn conninfo(&self) -> &str {
        &self.conninfo
    }

    /// Resolves the connection (see [`resolve`]; without the environment unless asked for).
    ///
    /// # Errors
    /// As [`resolve`].
    pub fn resolve(&self) -> Result<ConnSpec, ConnInfoError> {
        if self.environment {
            resolve(&self.conninfo)
        } else {
            resolve_with_env(&self.conninfo, &|_| None)
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("conninfo", &redacted(&self.conninfo))
            .field("environment", &self.environment)
            .finish()
    }
}

impl From<&str> for Connection {
    fn from(s: &str) -> Self {
        Connection::new(s)
    }
}

impl From<String> for Connection {
    fn from(s: String) -> Self {
        Connection::new(s)
    }
}

impl From<&String> for Connection {
    fn from(s: &String) -> Self {
        Connection::new(s.clone())
    }
}

impl From<&Connection> for Connection {
    fn from(c: &Connection) -> Self {
        c.clone()
    }
}

/// [`resolve`] with the environment given as a function, so it can be
/// tested (or driven by a configuration file) without touching the process
/// environment.
///
/// `env("HOME")` locates `~/.pgpass` and `~/.postgresql/root.crt`, and
/// `env("USER")` is the default user name (before falling back to running
/// `whoami`). Empty values count as unset, as in libpq.
///
/// # Errors
///
/// As [`resolve`].
pub fn resolve_with_env(
    conninfo: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnSpec, ConnInfoError> {
    let default_socket_dir = Path::new(DEFAULT_SOCKET_DIR);
    let sys = System {
        env,
        os_user: &whoami,
        default_socket_dir: default_socket_dir.is_dir().then_some(default_socket_dir),
    };
    resolve_impl(conninfo, &sys)
}

/// Returns `conninfo` with passwords masked, for logging.
///
/// Masks `password=...` pairs, the password of a URL
/// (`postgresql://user:secret@host`) and `password=` URL parameters. A
/// string that does not parse and mentions a password is replaced whole.
///
/// # Example
///
/// ```
/// use pgsnap_source::conninfo::redacted;
///
/// assert_eq!(redacted("host=db password='s3cr et'"), "host=db password=********");
/// assert_eq!(redacted("postgresql://app:s3cret@db/sales"), "postgresql://app:********@db/sales");
/// ```
pub fn redacted(conninfo: &str) -> String {
    if let Some(rest) = url_body(conninfo) {
        let prefix = &conninfo[..conninfo.len() - rest.len()];
        return format!("{prefix}{}", redact_url_body(rest));
    }
    match kv_tokens(conninfo) {
        Ok(tokens) => {
            let mut out = String::with_capacity(conninfo.len());
            let mut pos = 0;
            for tok in tokens.iter().filter(|t| t.key == "password") {
                out.push_str(&conninfo[pos..tok.value_span.0]);
                out.push_str(MASK);
                pos = tok.value_span.1;
            }
            out.push_str(&conninfo[pos..]);
            out
        }
        Err(_) if conninfo.contains("password") => {
            "<unparsable connection string with a password; redacted>".to_owned()
        }
        Err(_) => conninfo.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/// What resolution may ask of the outside world (swappable in tests).
struct System<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    os_user: &'a dyn Fn() -> Option<String>,
    default_socket_dir: Option<&'a Path>,
}

impl System<'_> {
    /// An environment variable, with empty values counting as unset.
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }
}

/// The OS user name from `whoami`, the fallback when `$USER` is unset.
fn whoami() -> Option<String> {
    let out = std::process::Command::new("whoami").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let name = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// The settings taken out of the connection string before tokio-postgres
/// parses the rest.
#[derive(Default)]
struct Extracted {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    passfile: Option<String>,
}

impl Extracted {
    fn take(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "passfile" => &mut self.passfile,
            _ => return false,
        };
        // As in libpq, the last occurrence wins.
        *slot = Some(value);
        true
    }
}

fn resolve_impl(conninfo: &str, sys: &System<'_>) -> Result<ConnSpec, ConnInfoError> {
    let ext = extract(conninfo)?;
    let mut config = tokio_postgres::Config::from_str(&ext.rest).map_err(|e| {
        // tokio-postgres' messages name options, never values; its Display
        // is only "invalid connection string", the detail is the source.
        let reason =
            std::error::Error::source(&e).map(ToString::to_string).unwrap_or_else(|| e.to_string());
        ConnInfoError::Syntax { reason }
    })?;

    fill_hosts(&mut config, sys)?;
    fill_ports(&mut config, sys)?;
    check_counts(&config)?;

    if config.get_user().is_none() {
        let user = sys
            .var("PGUSER")
            .or_else(|| sys.var("USER"))
            .or_else(sys.os_user)
            .ok_or(ConnInfoError::NoUser)?;
        config.user(user);
    }
    if config.get_dbname().is_none() {
        let db = sys
            .var("PGDATABASE")
            .unwrap_or_else(|| config.get_user().unwrap_or_default().to_owned());
        config.dbname(db);
    }
    if config.get_options().is_none()
        && let Some(options) = sys.var("PGOPTIONS")
    {
        config.options(options);
    }
    if config.get_application_name().is_none() {
        let name = sys.var("PGAPPNAME").unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned());
        config.application_name(name);
    }
    if config.get_connect_timeout().is_none()
        && let Some(raw) = sys.var("PGCONNECT_TIMEOUT")
    {
        let secs: i64 = raw.trim().parse().map_err(|_| ConnInfoError::Env {
            var: "PGCONNECT_TIMEOUT",
            reason: format!("`{raw}` is not a whole number of seconds"),
        })?;
        // libpq: zero or negative means wait indefinitely.
        if secs > 0 {
            config.connect_timeout(std::time::Duration::from_secs(secs.unsigned_abs()));
        }
    }

    let (tls, sslrootcert) = resolve_tls(&ext, sys)?;
    let all_unix = config.get_hostaddrs().is_empty()
        && config.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
    // libpq never attempts TLS over a Unix socket, whatever the sslmode.
    config.ssl_mode(if all_unix { SslMode::Disable } else { tls.ssl_mode() });

    if config.get_password().is_none_or(<[u8]>::is_empty) {
        if let Some(password) = sys.var("PGPASSWORD") {
            config.password(password);
        } else if let Some(password) = password_from_file(&config, &ext, sys) {
            config.password(password);
        }
    }

    Ok(ConnSpec { config, tls, sslrootcert })
}

/// Fills `host` / `hostaddr` from `PGHOST` / `PGHOSTADDR` and the default.
fn fill_hosts(config: &mut tokio_postgres::Config, sys: &System<'_>) -> Result<(), ConnInfoError> {
    let default_host = || match sys.default_socket_dir {
        Some(dir) => dir.to_string_lossy().into_owned(),
        None => "localhost".to_owned(),
    };
    if config.get_hosts().is_empty()
        && let Some(hosts) = sys.var("PGHOST")
    {
        for host in hosts.split(',') {
            // An empty entry in a list means the default host (libpq).
            if host.is_empty() {
                config.host(default_host());
            } else {
                config.host(host);
            }
        }
    }
    if config.get_hostaddrs().is_empty()
        && let Some(addrs) = sys.var("PGHOSTADDR")
    {
        for addr in addrs.split(',') {
            let ip: IpAddr = addr.trim().parse().map_err(|_| ConnInfoError::Env {
                var: "PGHOSTADDR",
                reason: format!("`{addr}` is not an IP address"),
            })?;
            config.hostaddr(ip);
        }
    }
    if config.get_hosts().is_empty() {
        if config.get_hostaddrs().is_empty() {
            config.host(default_host());
        } else {
            // No host name: the addresses stand in for it, for the TLS
            // server name and the password file, as in libpq.
            let addrs: Vec<IpAddr> = config.get_hostaddrs().to_vec();
            for addr in addrs {
                config.host(addr.to_string());
            }
        }
    }
    Ok(())
}

/// Fills `port` from `PGPORT` or the default.
fn fill_ports(config: &mut tokio_postgres::Config, sys: &System<'_>) -> Result<(), ConnInfoError> {
    if !config.get_ports().is_empty() {
        return Ok(());
    }
    match sys.var("PGPORT") {
        Some(ports) => {
            for port in ports.split(',') {
                let port = if port.is_empty() {
                    DEFAULT_PORT
                } else {
                    port.trim().parse().map_err(|_| ConnInfoError::Env {
                        var: "PGPORT",
                        reason: format!("`{port}` is not a port number"),
                    })?
                };
                config.port(port);
            }
        }
        None => {
            config.port(DEFAULT_PORT);
        }
    }
    Ok(())
}

/// Checks that hosts, addresses and ports line up (libpq's checks).
fn check_counts(config: &tokio_postgres::Config) -> Result<(), ConnInfoError> {
    let hosts = config.get_hosts().len();
    let addrs = config.get_hostaddrs().len();
    if addrs != 0 && hosts != addrs {
        return Err(ConnInfoError::Invalid {
            reason: format!("{hosts} host names but {addrs} hostaddr values"),
        });
    }
    let ports = config.get_ports().len();
    if ports > 1 && ports != hosts {
        return Err(ConnInfoError::Invalid {
            reason: format!("{hosts} hosts but {ports} ports; give one port or one per host"),
        });
    }
    Ok(())
}

/// Resolves `sslmode` and `sslrootcert` from the string, the environment and
/// libpq's defaults.
fn resolve_tls(
    ext: &Extracted,
    sys: &System<'_>,
) -> Result<(TlsMode, Option<PathBuf>), ConnInfoError> {
    let rootcert =
        ext.sslrootcert.clone().filter(|s| !s.is_empty()).or_else(|| sys.var("PGSSLROOTCERT"));
    let system_roots = rootcert.as_deref() == Some("system");

    let mode = match (&ext.sslmode, sys.var("PGSSLMODE")) {
        (Some(mode), _) => Some(
            mode.parse::<TlsMode>()
                .map_err(|e| ConnInfoError::Invalid { reason: e.to_string() })?,
        ),
        (None, Some(mode)) => Some(
            mode.parse::<TlsMode>()
                .map_err(|e| ConnInfoError::Env { var: "PGSSLMODE", reason: e.to_string() })?,
        ),
        (None, None) => None,
    };

    if system_roots {
        // PostgreSQL 16: `sslrootcert=system` uses the system's trusted
        // roots (here: the bundled Mozilla roots) and implies verify-full.
        return match mode {
            None | Some(TlsMode::VerifyFull) => Ok((TlsMode::VerifyFull, None)),
            Some(weak) => Err(ConnInfoError::Invalid {
                reason: format!(
                    "sslmode={weak} may not be used with sslrootcert=system (use verify-full)"
                ),
            }),
        };
    }

    let mode = mode.unwrap_or_default();
    let rootcert = match rootcert {
        Some(path) => Some(PathBuf::from(path)),
        // libpq's default `~/.postgresql/root.crt`, when it exists. libpq
        // would also use it for `prefer`, but then retries without TLS if
        // verification fails, which tokio-postgres cannot; so only the modes
        // that insist on TLS pick it up implicitly.
        None if mode != TlsMode::Disable && mode != TlsMode::Prefer => sys
            .var("HOME")
            .map(|home| Path::new(&home).join(".postgresql").join("root.crt"))
            .filter(|p| p.is_file()),
        None => None,
    };
    Ok((mode, rootcert))
}

// ---------------------------------------------------------------------------
// Password file
// ---------------------------------------------------------------------------

/// Looks the password up in the password file for each host in order.
fn password_from_file(
    config: &tokio_postgres::Config,
    ext: &Extracted,
    sys: &System<'_>,
) -> Option<String> {
    let path = ext
        .passfile
        .clone()
        .filter(|p| !p.is_empty())
        .or_else(|| sys.var("PGPASSFILE"))
        .map(PathBuf::from)
        .or_else(|| sys.var("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let contents = read_password_file(&path)?;

    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    let ports = config.get_ports();
    config.get_hosts().iter().enumerate().find_map(|(i, host)| {
        let host = match host {
            Host::Tcp(name) => name.as_str(),
            // libpq matches socket connections as `localhost`.
            Host::Unix(_) => "localhost",
        };
        let port =
            ports.get(i).or_else(|| ports.first()).copied().unwrap_or(DEFAULT_PORT).to_string();
        pgpass_lookup(&contents, host, &port, db, user)
    })
}

/// Reads the password file, or `None` (with a warning where libpq warns)
/// when it is missing, not a plain file, or too open.
fn read_password_file(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!(path = %path.display(), "password file is not a plain file; ignoring it");
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "password file has group or world access; permissions should be u=rw (0600) \
                 or less; ignoring it"
            );
            return None;
        }
    }
    match fs::read_to_string(path) {
        Ok(contents) => Some(contents),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not read password file; ignoring it");
            None
        }
    }
}

/// One field of a password file line, unescaped.
struct PgpassField {
    text: String,
    /// The field was exactly an unescaped `*`.
    wildcard: bool,
}

impl PgpassField {
    fn matches(&self, value: &str) -> bool {
        self.wildcard || self.text == value
    }
}

/// Splits a password file line at unescaped `:`, resolving `\` escapes.
fn pgpass_fields(line: &str) -> Vec<PgpassField> {
    let mut fields = Vec::with_capacity(5);
    let mut text = String::new();
    let mut raw_len = 0;
    let mut escaped = false;
    let mut chars = line.chars();
    let finish = |text: &mut String, raw_len: &mut usize, escaped: &mut bool| {
        let field = PgpassField {
            wildcard: !*escaped && *raw_len == 1 && text == "*",
            text: std::mem::take(text),
        };
        *raw_len = 0;
        *escaped = false;
        field
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    text.push(next);
                    raw_len += 2;
                    escaped = true;
                }
                // A trailing backslash is taken literally (libpq).
                None => {
                    text.push('\\');
                    raw_len += 1;
                }
            },
            ':' => fields.push(finish(&mut text, &mut raw_len, &mut escaped)),
            c => {
                text.push(c);
                raw_len += 1;
            }
        }
    }
    fields.push(finish(&mut text, &mut raw_len, &mut escaped));
    fields
}

/// Finds the password for a connection in password file contents; the
/// first matching line wins.
fn pgpass_lookup(contents: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    contents
        .split('\n')
        .map(|line| line.trim_end_matches(['\r', '\n']))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let fields = pgpass_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let wanted = [host, port, db, user];
            fields
                .iter()
                .zip(wanted)
                .all(|(field, value)| field.matches(value))
                // The password ends at the next unescaped `:` (libpq).
                .then(|| fields[4].text.clone())
        })
}

// ---------------------------------------------------------------------------
// Pre-extraction of the keys tokio-postgres does not accept
// ---------------------------------------------------------------------------

/// The part after `postgresql://` / `postgres://`, if `s` is a URL (the same
/// prefixes tokio-postgres accepts).
fn url_body(s: &str) -> Option<&str> {
    s.strip_prefix("postgresql://").or_else(|| s.strip_prefix("postgres://"))
}

/// Takes `sslmode`, `sslrootcert` and `passfile` out of the string.
fn extract(conninfo: &str) -> Result<Extracted, ConnInfoError> {
    let mut ext = Extracted::default();
    if let Some(body) = url_body(conninfo) {
        let prefix_len = conninfo.len() - body.len();
        let Some(q) = url_query_start(body) else {
            ext.rest = conninfo.to_owned();
            return Ok(ext);
        };
        let mut kept = Vec::new();
        for param in body[q + 1..].split('&') {
            if let Some((key, value)) = param.split_once('=') {
                let key = percent_decode(key)?;
                let value = percent_decode(value)?;
                if ext.take(&key, value) {
                    continue;
                }
            }
            kept.push(param);
        }
        ext.rest = conninfo[..prefix_len + q].to_owned();
        if !kept.is_empty() {
            ext.rest.push('?');
            ext.rest.push_str(&kept.join("&"));
        }
    } else {
        let tokens = kv_tokens(conninfo)?;
        let mut pos = 0;
        for tok in tokens {
            if ext.take(tok.key, tok.value) {
                ext.rest.push_str(&conninfo[pos..tok.span.0]);
                pos = tok.span.1;
            }
        }
        ext.rest.push_str(&conninfo[pos..]);
    }
    Ok(ext)
}

/// Where the query string of a URL body starts: the first `?` after the
/// credentials (tokio-postgres takes the credentials up to the first `@`).
fn url_query_start(body: &str) -> Option<usize> {
    let after_creds = body.find('@').map_or(0, |i| i + 1);
    body[after_creds..].find('?').map(|i| after_creds + i)
}

/// Percent-decodes a URL component (no `+` to space, like tokio-postgres). A `%` not
/// followed by two hex digits is kept as it is.
fn percent_decode(s: &str) -> Result<String, ConnInfoError> {
    percent_encoding::percent_decode_str(s).decode_utf8().map(Cow::into_owned).map_err(|_| {
        ConnInfoError::Syntax {
            reason: "a URL parameter is not valid UTF-8 after percent-decoding".to_owned(),
        }
    })
}

/// One `key=value` pair of a libpq key/value string.
struct KvToken<'a> {
    key: &'a str,
    /// The value with quotes and escapes resolved.
    value: String,
    /// Byte range of the whole pair, `key` to end of value.
    span: (usize, usize),
    /// Byte range of the value as written (with its quotes).
    value_span: (usize, usize),
}

/// Splits a key/value string into pairs with exactly tokio-postgres' (and
/// libpq's) lexical rules: whitespace-separated `key = value`, values either
/// bare (ending at whitespace) or single-quoted, `\` escaping the next
/// character in both. Errors name byte offsets, never text, so a password
/// cannot leak into them.
fn kv_tokens(s: &str) -> Result<Vec<KvToken<'_>>, ConnInfoError> {
    let syntax = |reason: String| ConnInfoError::Syntax { reason };
    let mut tokens = Vec::new();
    let mut it = s.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(key_start, _)) = it.peek() else {
            break;
        };
        let mut key_end = s.len();
        while let Some(&(i, c)) = it.peek() {
            if c.is_whitespace() || c == '=' {
                key_end = i;
                break;
            }
            it.next();
        }
        let key = &s[key_start..key_end];
        if key.is_empty() {
            return Err(syntax(format!("missing keyword before `=` at byte {key_start}")));
        }
        skip_ws(&mut it);
        match it.next() {
            Some((_, '=')) => {}
            Some((i, _)) => {
                return Err(syntax(format!(
                    "expected `=` after the keyword ending at byte {key_end}, at byte {i}"
                )));
            }
            None => {
                return Err(syntax(format!(
                    "missing `=` and value after the keyword ending at byte {key_end}"
                )));
            }
        }
        skip_ws(&mut it);
        let value_start = it.peek().map_or(s.len(), |&(i, _)| i);
        let mut value = String::new();
        let value_end;
        if it.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match it.next() {
                    Some((i, '\'')) => {
                        value_end = i + 1;
                        break;
                    }
                    Some((_, '\\')) => {
                        if let Some((_, c)) = it.next() {
                            value.push(c);
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(syntax(format!(
                            "unterminated quoted value starting at byte {value_start}"
                        )));
                    }
                }
            }
        } else {
            let mut end = s.len();
            while let Some(&(i, c)) = it.peek() {
                if c.is_whitespace() {
                    end = i;
                    break;
                }
                it.next();
                if c == '\\' {
                    if let Some((_, c2)) = it.next() {
                        value.push(c2);
                    }
                } else {
                    value.push(c);
                }
            }
            // An escape at the very end consumed the last char; `end` is
            // right whenever we stopped at whitespace, else it is s.len().
            value_end = end;
            if value.is_empty() {
                return Err(syntax(format!(
                    "missing value after `=` for the keyword ending at byte {key_end}"
                )));
            }
        }
        tokens.push(KvToken {
            key,
            value,
            span: (key_start, value_end),
            value_span: (value_start, value_end),
        });
    }
    Ok(tokens)
}

/// Masks the password in a URL body (the part after `scheme://`).
///
/// Errs on the side of masking too much: the credentials are taken to end
/// at the last `@`, so a password with a raw `@` or `/` is still masked.
fn redact_url_body(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let rest = match body.rfind('@') {
        Some(at) => {
            let creds = &body[..at];
            match creds.find(':') {
                Some(colon) => {
                    out.push_str(&creds[..=colon]);
                    out.push_str(MASK);
                }
                None => out.push_str(creds),
            }
            out.push('@');
            &body[at + 1..]
        }
        None => body,
    };
    let Some(q) = rest.find('?') else {
        out.push_str(rest);
        return out;
    };
    out.push_str(&rest[..=q]);
    let params: Vec<String> = rest[q + 1..]
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if percent_decode(key).is_ok_and(|k| k == "password") => {
                format!("{key}={MASK}")
            }
            _ => param.to_owned(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;
    use tempfile::TempDir;

    /// Resolves with exactly the given environment, no default socket dir
    /// and no OS user.
    fn resolve_env(conninfo: &str, vars: &[(&str, &str)]) -> Result<ConnSpec, ConnInfoError> {
        resolve_sys(conninfo, vars, None)
    }

    fn resolve_sys(
        conninfo: &str,
        vars: &[(&str, &str)],
        socket_dir: Option<&Path>,
    ) -> Result<ConnSpec, ConnInfoError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let env = move |k: &str| map.get(k).cloned();
        let sys = System { env: &env, os_user: &|| None, default_socket_dir: socket_dir };
        resolve_impl(conninfo, &sys)
    }

    fn tcp_hosts(spec: &ConnSpec) -> Vec<String> {
        spec.config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => format!("unix:{}", p.display()),
            })
            .collect()
    }

    fn password(spec: &ConnSpec) -> Option<String> {
        spec.config.get_password().map(|p| String::from_utf8(p.to_vec()).unwrap())
    }

    const U: (&str, &str) = ("USER", "osuser");

    #[test]
    fn empty_string_uses_defaults() {
        let spec = resolve_env("", &[U]).unwrap();
        assert_eq!(tcp_hosts(&spec), ["localhost"]);
        assert_eq!(spec.config.get_ports(), [5432]);
        assert_eq!(spec.config.get_user(), Some("osuser"));
        assert_eq!(spec.config.get_dbname(), Some("osuser"));
        assert_eq!(spec.config.get_application_name(), Some("pgsnap"));
        assert_eq!(spec.config.get_password(), None);
        assert_eq!(spec.config.get_options(), None);
        assert_eq!(spec.config.get_connect_timeout(), None);
        assert_eq!(spec.tls, TlsMode::Prefer);
        assert_eq!(spec.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(spec.sslrootcert, None);
    }

    #[test]
    fn default_host_is_the_socket_dir_when_it_exists() {
        let dir = TempDir::new().unwrap();
        let spec = resolve_sys("", &[U], Some(dir.path())).unwrap();
        assert_eq!(spec.config.get_hosts(), [Host::Unix(dir.path().to_path_buf())]);
        // No TLS over Unix sockets, as in libpq.
        assert_eq!(spec.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(spec.tls, TlsMode::Prefer);
    }

    #[test]
    fn env_fills_every_unset_setting() {
        let spec = resolve_env(
            "",
            &[
                ("PGHOST", "db1,db2"),
                ("PGHOSTADDR", "10.0.0.1,10.0.0.2"),
                ("PGPORT", "6000,6001"),
                ("PGUSER", "envuser"),
                ("PGDATABASE", "envdb"),
                ("PGPASSWORD", "envpw"),
                ("PGSSLMODE", "require"),
                ("PGAPPNAME", "envapp"),
                ("PGCONNECT_TIMEOUT", "7"),
                ("PGOPTIONS", "-c search_path=x"),
                U,
            ],
        )
        .unwrap();
        assert_eq!(tcp_hosts(&spec), ["db1", "db2"]);
        let addrs: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(spec.config.get_hostaddrs(), addrs.as_slice());
        assert_eq!(spec.config.get_ports(), [6000, 6001]);
        assert_eq!(spec.config.get_user(), Some("envuser"));
        assert_eq!(spec.config.get_dbname(), Some("envdb"));
        assert_eq!(password(&spec).as_deref(), Some("envpw"));
        assert_eq!(spec.tls, TlsMode::Require);
        assert_eq!(spec.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(spec.config.get_application_name(), Some("envapp"));
        assert_eq!(spec.config.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(spec.config.get_options(), Some("-c search_path=x"));
    }

    #[test]
    fn conninfo_wins_over_env() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "disable"),
            ("PGSSLROOTCERT", "/env/root.crt"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGOPTIONS", "-c a=b"),
            U,
        ];
        let kv = "host=h port=1 user=u dbname=d password=p sslmode=verify-ca \
                  sslrootcert=/kv/root.crt application_name=a connect_timeout=3 options='-c x=y'";
        let url = "postgresql://u:p@h:1/d?sslmode=verify-ca&sslrootcert=%2Fkv%2Froot.crt\
                   &application_name=a&connect_timeout=3&options=-c%20x%3Dy";
        for s in [kv, url] {
            let spec = resolve_env(s, &env).unwrap();
            assert_eq!(tcp_hosts(&spec), ["h"], "{s}");
            assert_eq!(spec.config.get_ports(), [1]);
            assert_eq!(spec.config.get_user(), Some("u"));
            assert_eq!(spec.config.get_dbname(), Some("d"));
            assert_eq!(password(&spec).as_deref(), Some("p"));
            assert_eq!(spec.tls, TlsMode::VerifyCa);
            assert_eq!(spec.config.get_ssl_mode(), SslMode::Require);
            assert_eq!(spec.sslrootcert.as_deref(), Some(Path::new("/kv/root.crt")));
            assert_eq!(spec.config.get_application_name(), Some("a"));
            assert_eq!(spec.config.get_connect_timeout(), Some(&Duration::from_secs(3)));
            assert_eq!(spec.config.get_options(), Some("-c x=y"));
        }
    }

    #[test]
    fn user_defaults_and_dbname_follows_user() {
        let spec = resolve_env("user=alice", &[U]).unwrap();
        assert_eq!(spec.config.get_dbname(), Some("alice"));
        let spec = resolve_env("", &[("PGUSER", "bob"), U]).unwrap();
        assert_eq!(spec.config.get_user(), Some("bob"));
        assert_eq!(spec.config.get_dbname(), Some("bob"));
        // Empty values count as unset.
        let spec = resolve_env("", &[("PGUSER", ""), U]).unwrap();
        assert_eq!(spec.config.get_user(), Some("osuser"));
        let err = resolve_env("", &[]).unwrap_err();
        assert!(matches!(err, ConnInfoError::NoUser), "{err}");
        assert!(err.to_string().contains("PGUSER"));
    }

    #[test]
    fn os_user_fallback_is_used_without_user_env() {
        let env = |_: &str| None;
        let sys =
            System { env: &env, os_user: &|| Some("fromos".to_owned()), default_socket_dir: None };
        let spec = resolve_impl("", &sys).unwrap();
        assert_eq!(spec.config.get_user(), Some("fromos"));
    }

    #[test]
    fn real_resolve_with_env_runs_whoami() {
        // Only the closure's variables are visible; the user comes from the OS.
        let spec = resolve_with_env("host=h", &|_| None).unwrap();
        assert!(!spec.config.get_user().unwrap().is_empty());
    }

    #[test]
    fn url_and_kv_forms_agree() {
        let kv = resolve_env("host=db1,db2 port=5433,5434 user=app dbname=sales", &[U]).unwrap();
        let url = resolve_env("postgresql://app@db1:5433,db2:5434/sales", &[U]).unwrap();
        let url2 = resolve_env("postgres://app@db1:5433,db2:5434/sales", &[U]).unwrap();
        for spec in [&kv, &url, &url2] {
            assert_eq!(tcp_hosts(spec), ["db1", "db2"]);
            assert_eq!(spec.config.get_ports(), [5433, 5434]);
            assert_eq!(spec.config.get_user(), Some("app"));
            assert_eq!(spec.config.get_dbname(), Some("sales"));
        }
    }

    #[test]
    fn socket_directories() {
        let spec = resolve_env("host=/tmp/sock", &[U]).unwrap();
        assert_eq!(spec.config.get_hosts(), [Host::Unix("/tmp/sock".into())]);
        let spec = resolve_env("postgresql://%2Ftmp%2Fsock/db", &[U]).unwrap();
        assert_eq!(spec.config.get_hosts(), [Host::Unix("/tmp/sock".into())]);
        let spec = resolve_env("postgresql:///db?host=/tmp/sock", &[U]).unwrap();
        assert_eq!(spec.config.get_hosts(), [Host::Unix("/tmp/sock".into())]);
        let spec = resolve_env("sslmode=require", &[("PGHOST", "/run/pg,/tmp/other"), U]).unwrap();
        assert_eq!(
            spec.config.get_hosts(),
            [Host::Unix("/run/pg".into()), Host::Unix("/tmp/other".into())]
        );
        assert_eq!(spec.tls, TlsMode::Require);
        assert_eq!(spec.config.get_ssl_mode(), SslMode::Disable);
        // A mix of socket and TCP hosts keeps TLS for the TCP ones.
        let spec = resolve_env("host=/run/pg,db1 sslmode=require", &[U]).unwrap();
        assert_eq!(spec.config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn empty_pghost_entry_is_the_default_host() {
        let spec = resolve_env("", &[("PGHOST", "db1,"), U]).unwrap();
        assert_eq!(tcp_hosts(&spec), ["db1", "localhost"]);
    }

    #[test]
    fn hostaddr_without_host_stands_in_for_host() {
        let spec = resolve_env("hostaddr=127.0.0.1", &[U]).unwrap();
        assert_eq!(tcp_hosts(&spec), ["127.0.0.1"]);
        let spec = resolve_env("", &[("PGHOSTADDR", "::1"), U]).unwrap();
        assert_eq!(tcp_hosts(&spec), ["::1"]);
        // Host from the string, address from the environment, like libpq.
        let spec = resolve_env("host=db1", &[("PGHOSTADDR", "127.0.0.2"), U]).unwrap();
        assert_eq!(tcp_hosts(&spec), ["db1"]);
        assert_eq!(spec.config.get_hostaddrs(), ["127.0.0.2".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn sslmode_and_sslrootcert_extraction() {
        let cases = [
            ("sslmode=verify-full", TlsMode::VerifyFull, SslMode::Require),
            ("sslmode = 'verify-ca'", TlsMode::VerifyCa, SslMode::Require),
            ("sslmode=require", TlsMode::Require, SslMode::Require),
            ("sslmode=prefer", TlsMode::Prefer, SslMode::Prefer),
            ("sslmode=allow", TlsMode::Prefer, SslMode::Prefer),
            ("sslmode=disable", TlsMode::Disable, SslMode::Disable),
            ("sslmode=disable sslmode=verify-full", TlsMode::VerifyFull, SslMode::Require),
            ("postgresql://h/db?sslmode=verify-full", TlsMode::VerifyFull, SslMode::Require),
            ("postgresql://h/db?sslmode=verify%2Dca", TlsMode::VerifyCa, SslMode::Require),
            ("postgresql://h?sslmode=disable", TlsMode::Disable, SslMode::Disable),
        ];
        for (s, tls, ssl) in cases {
            let conninfo =
                if s.starts_with("postgresql:") { s.to_owned() } else { format!("host=h {s}") };
            let spec = resolve_env(&conninfo, &[U]).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((spec.tls, spec.config.get_ssl_mode()), (tls, ssl), "{s}");
        }

        let spec = resolve_env(
            "host=h sslrootcert='/path with/space.crt' sslmode=verify-full dbname=x",
            &[U],
        )
        .unwrap();
        assert_eq!(spec.sslrootcert.as_deref(), Some(Path::new("/path with/space.crt")));
        assert_eq!(spec.config.get_dbname(), Some("x"));

        let spec = resolve_env(
            "postgresql://u@h/db?sslrootcert=%2Fa%2Fb.crt&sslmode=verify-full&application_name=z",
            &[U],
        )
        .unwrap();
        assert_eq!(spec.sslrootcert.as_deref(), Some(Path::new("/a/b.crt")));
        assert_eq!(spec.tls, TlsMode::VerifyFull);
        assert_eq!(spec.config.get_application_name(), Some("z"));

        let spec = resolve_env(
            "host=h",
            &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", "/env.crt"), U],
        )
        .unwrap();
        assert_eq!(spec.tls, TlsMode::VerifyFull);
        assert_eq!(spec.sslrootcert.as_deref(), Some(Path::new("/env.crt")));
    }

    #[test]
    fn sslrootcert_system_implies_verify_full() {
        let spec = resolve_env("host=h sslrootcert=system", &[U]).unwrap();
        assert_eq!(spec.tls, TlsMode::VerifyFull);
        assert_eq!(spec.sslrootcert, None);
        let err = resolve_env("host=h sslrootcert=system sslmode=require", &[U]).unwrap_err();
        assert!(err.to_string().contains("sslrootcert=system"), "{err}");
    }

    #[test]
    fn default_root_crt_is_used_for_require_but_not_prefer() {
        let home = TempDir::new().unwrap();
        let dir = home.path().join(".postgresql");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("root.crt"), "x").unwrap();
        let h = home.path().to_str().unwrap();
        let spec = resolve_env("host=h sslmode=require", &[("HOME", h), U]).unwrap();
        assert_eq!(spec.sslrootcert, Some(dir.join("root.crt")));
        let spec = resolve_env("host=h", &[("HOME", h), U]).unwrap();
        assert_eq!(spec.sslrootcert, None);
        let spec =
            resolve_env("host=h sslrootcert=/x.crt sslmode=require", &[("HOME", h), U]).unwrap();
        assert_eq!(spec.sslrootcert.as_deref(), Some(Path::new("/x.crt")));
    }

    #[test]
    fn invalid_sslmode_is_reported() {
        let err = resolve_env("host=h sslmode=sometimes", &[U]).unwrap_err();
        assert!(err.to_string().contains("invalid sslmode `sometimes`"), "{err}");
        let err = resolve_env("host=h", &[("PGSSLMODE", "nope"), U]).unwrap_err();
        assert!(matches!(err, ConnInfoError::Env { var: "PGSSLMODE", .. }), "{err}");
    }

    #[test]
    fn invalid_env_values_are_reported() {
        let err = resolve_env("", &[("PGPORT", "fivefour"), U]).unwrap_err();
        assert!(err.to_string().contains("PGPORT"), "{err}");
        let err = resolve_env("", &[("PGHOSTADDR", "db.example"), U]).unwrap_err();
        assert!(err.to_string().contains("PGHOSTADDR"), "{err}");
        let err = resolve_env("", &[("PGCONNECT_TIMEOUT", "soon"), U]).unwrap_err();
        assert!(err.to_string().contains("PGCONNECT_TIMEOUT"), "{err}");
        // Zero or negative means no timeout.
        let spec = resolve_env("", &[("PGCONNECT_TIMEOUT", "0"), U]).unwrap();
        assert_eq!(spec.config.get_connect_timeout(), None);
    }

    #[test]
    fn mismatched_counts_are_rejected() {
        let err = resolve_env("host=a,b,c port=1,2", &[U]).unwrap_err();
        assert!(err.to_string().contains("3 hosts but 2 ports"), "{err}");
        let err = resolve_env("host=a,b hostaddr=127.0.0.1", &[U]).unwrap_err();
        assert!(err.to_string().contains("hostaddr"), "{err}");
    }

    #[test]
    fn invalid_strings_never_show_the_password() {
        let secret = "Hunter2Secret";
        let cases = [
            format!("password={secret} host"),
            format!("password={secret} host="),
            format!("password='{secret}"),
            format!("password={secret} hots=db"),
            format!("password={secret} port=notaport"),
            format!("password={secret} {secret}"),
            format!("password={secret} ={secret}"),
            format!("password={secret} sslmode=bogus"),
            format!("postgresql://u:{secret}@h:notaport/db"),
            format!("postgresql://u:{secret}@h/db?bogus=1"),
            format!("postgresql://u:{secret}@h/db?port"),
            format!("postgresql://u:{secret}@h/db?sslrootcert=%FF"),
        ];
        for s in &cases {
            let err = resolve_env(s, &[U]).expect_err(s);
            let msg = err.to_string();
            let dbg = format!("{err:?}");
            assert!(!msg.contains(secret) && !dbg.contains(secret), "{s}: {msg}");
            assert!(!msg.contains("Hunter"), "{s}: {msg}");
            if matches!(err, ConnInfoError::Syntax { .. }) {
                assert!(msg.starts_with("invalid connection string: "), "{msg}");
                assert!(msg.ends_with(EXPECTED), "{msg}");
            }
        }
        let err = resolve_env(&format!("password={secret} hots=db"), &[U]).unwrap_err();
        assert!(err.to_string().contains("unknown option `hots`"), "{err}");
    }

    #[test]
    fn debug_redacts_the_password() {
        let spec = resolve_env("host=h password=TopSecret99", &[U]).unwrap();
        let dbg = format!("{spec:?}");
        assert!(!dbg.contains("TopSecret99"), "{dbg}");
        assert!(dbg.contains("password"), "{dbg}");
        assert_eq!(password(&spec).as_deref(), Some("TopSecret99"));
    }

    #[test]
    fn kv_quoting_and_escapes_are_preserved_after_extraction() {
        let spec = resolve_env(
            r"sslmode=require password='it\'s a \\ pw' user=a\ b options='-c x=1'",
            &[U],
        )
        .unwrap();
        assert_eq!(password(&spec).as_deref(), Some(r"it's a \ pw"));
        assert_eq!(spec.config.get_user(), Some("a b"));
        assert_eq!(spec.config.get_options(), Some("-c x=1"));
    }

    // --- password file ---

    fn write_pgpass(dir: &TempDir, contents: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("pgpass");
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn pw_with_file(conninfo: &str, file: &Path, extra: &[(&str, &str)]) -> Option<String> {
        let f = file.to_str().unwrap();
        let mut vars = vec![("PGPASSFILE", f), U];
        vars.extend_from_slice(extra);
        password(&resolve_env(conninfo, &vars).unwrap())
    }

    #[test]
    fn pgpass_lookup_rules() {
        let file = "\
# comment line: db1:5432:*:*:nope
db1:5432:sales:app:exact
*:5432:sales:app:anyhost
db2:*:*:*:wild\\:pw\\\\x
db\\:3:5432:*:*:escaped-host
db4:5432:*:*:first
db4:5432:*:*:second
localhost:5432:*:*:local\r
short:5432:x:y
empty:5432:*:*:
trail:5432:*:*:pw:ignored
";
        assert_eq!(pgpass_lookup(file, "db1", "5432", "sales", "app").as_deref(), Some("exact"));
        assert_eq!(pgpass_lookup(file, "dbX", "5432", "sales", "app").as_deref(), Some("anyhost"));
        assert_eq!(pgpass_lookup(file, "db1", "5433", "sales", "app"), None);
        assert_eq!(pgpass_lookup(file, "db2", "1", "d", "u").as_deref(), Some("wild:pw\\x"));
        assert_eq!(pgpass_lookup(file, "db:3", "5432", "d", "u").as_deref(), Some("escaped-host"));
        assert_eq!(pgpass_lookup(file, "db4", "5432", "d", "u").as_deref(), Some("first"));
        assert_eq!(pgpass_lookup(file, "localhost", "5432", "d", "u").as_deref(), Some("local"));
        assert_eq!(pgpass_lookup(file, "short", "5432", "x", "y"), None);
        assert_eq!(pgpass_lookup(file, "empty", "5432", "x", "y").as_deref(), Some(""));
        assert_eq!(pgpass_lookup(file, "trail", "5432", "x", "y").as_deref(), Some("pw"));
        // A commented-out line never matches.
        assert_eq!(pgpass_lookup("#db1:5432:*:*:x", "#db1", "5432", "a", "b"), None);
        // `\*` is a literal star, not a wildcard.
        let star = "\\*:5432:*:*:lit\n";
        assert_eq!(pgpass_lookup(star, "db", "5432", "a", "b"), None);
        assert_eq!(pgpass_lookup(star, "*", "5432", "a", "b").as_deref(), Some("lit"));
        // `**` is not a wildcard either.
        assert_eq!(pgpass_lookup("**:5432:*:*:x", "db", "5432", "a", "b"), None);
    }

    #[test]
    fn pgpass_is_used_only_without_a_password() {
        let dir = TempDir::new().unwrap();
        let file = write_pgpass(&dir, "*:*:*:*:frompgpass\n", 0o600);
        assert_eq!(pw_with_file("host=h", &file, &[]).as_deref(), Some("frompgpass"));
        assert_eq!(pw_with_file("host=h password=given", &file, &[]).as_deref(), Some("given"));
        assert_eq!(
            pw_with_file("host=h", &file, &[("PGPASSWORD", "envpw")]).as_deref(),
            Some("envpw")
        );
    }

    #[test]
    fn pgpass_matches_resolved_user_db_and_port() {
        let dir = TempDir::new().unwrap();
        let file =
            write_pgpass(&dir, "h:6000:envdb:envuser:one\nh:5432:osuser:osuser:two\n", 0o600);
        let env = [("PGPORT", "6000"), ("PGUSER", "envuser"), ("PGDATABASE", "envdb")];
        assert_eq!(pw_with_file("host=h", &file, &env).as_deref(), Some("one"));
        assert_eq!(pw_with_file("host=h", &file, &[]).as_deref(), Some("two"));
    }

    #[test]
    fn pgpass_localhost_matches_unix_sockets() {
        let dir = TempDir::new().unwrap();
        let file = write_pgpass(&dir, "localhost:5432:*:*:sockpw\n", 0o600);
        assert_eq!(pw_with_file("host=/run/pg", &file, &[]).as_deref(), Some("sockpw"));
        assert_eq!(pw_with_file("host=localhost", &file, &[]).as_deref(), Some("sockpw"));
        assert_eq!(pw_with_file("host=127.0.0.1", &file, &[]), None);
    }

    #[test]
    fn pgpass_multi_host_uses_each_port() {
        let dir = TempDir::new().unwrap();
        let file = write_pgpass(&dir, "b:6001:*:*:bpw\na:6001:*:*:wrongport\n", 0o600);
        assert_eq!(pw_with_file("host=a,b port=6000,6001", &file, &[]).as_deref(), Some("bpw"));
        assert_eq!(
            pw_with_file("postgresql://a:6000,b:6001/db", &file, &[]).as_deref(),
            Some("bpw")
        );
        // One port applies to every host.
        assert_eq!(pw_with_file("host=x,a port=6001", &file, &[]).as_deref(), Some("wrongport"));
    }

    #[test]
    fn pgpass_with_group_or_world_access_is_ignored() {
        let dir = TempDir::new().unwrap();
        for (mode, expect) in
            [(0o600, Some("pw")), (0o400, Some("pw")), (0o640, None), (0o604, None), (0o660, None)]
        {
            let file = write_pgpass(&dir, "*:*:*:*:pw\n", mode);
            assert_eq!(pw_with_file("host=h", &file, &[]).as_deref(), expect, "{mode:o}");
        }
    }

    #[test]
    fn pgpass_location() {
        let home = TempDir::new().unwrap();
        let file = home.path().join(".pgpass");
        fs::write(&file, "*:*:*:*:homepw\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let h = home.path().to_str().unwrap();
        let spec = resolve_env("host=h", &[("HOME", h), U]).unwrap();
        assert_eq!(password(&spec).as_deref(), Some("homepw"));

        let other = TempDir::new().unwrap();
        let alt = write_pgpass(&other, "*:*:*:*:altpw\n", 0o600);
        let alt = alt.to_str().unwrap();
        let kv = format!("host=h passfile='{alt}'");
        let spec = resolve_env(&kv, &[("HOME", h), U]).unwrap();
        assert_eq!(password(&spec).as_deref(), Some("altpw"));
        let spec = resolve_env("host=h", &[("HOME", h), ("PGPASSFILE", alt), U]).unwrap();
        assert_eq!(password(&spec).as_deref(), Some("altpw"));
        // A missing file is silently skipped.
        let spec = resolve_env("host=h", &[("PGPASSFILE", "/nonexistent/pgpass"), U]).unwrap();
        assert_eq!(spec.config.get_password(), None);
        // A directory is not a password file.
        let spec =
            resolve_env("host=h", &[("PGPASSFILE", other.path().to_str().unwrap()), U]).unwrap();
        assert_eq!(spec.config.get_password(), None);
    }

    // --- redaction ---

    #[test]
    fn redacted_masks_passwords() {
        let cases = [
            ("host=db password=secret", "host=db password=********"),
            ("password='s e c' host=db", "password=******** host=db"),
            ("password = x\\ y user=u", "password = ******** user=u"),
            ("host=db user=u", "host=db user=u"),
            ("", ""),
            ("postgresql://u:secret@db/x", "postgresql://u:********@db/x"),
            ("postgres://u@db/x", "postgres://u@db/x"),
            ("postgresql://db/x", "postgresql://db/x"),
            ("postgresql://u:p@ss/w@rd@db/x", "postgresql://u:********@db/x"),
            (
                "postgresql://db/x?password=secret&sslmode=require",
                "postgresql://db/x?password=********&sslmode=require",
            ),
            (
                "postgresql://u:a@db/x?user=v&password=b",
                "postgresql://u:********@db/x?user=v&password=********",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redacted(input), want, "{input}");
        }
        let bad = redacted("password='unterminated secret");
        assert!(!bad.contains("secret"), "{bad}");
        assert_eq!(redacted("host= "), "host= ");
    }

    #[test]
    fn conn_spec_make_tls_follows_the_mode() {
        let env = |_: &str| None;
        let spec = resolve_with_env("host=h user=u sslmode=disable", &env).unwrap();
        assert!(!spec.make_tls().unwrap().is_enabled());
        let spec = resolve_with_env("host=h user=u sslmode=verify-full", &env).unwrap();
        assert!(spec.make_tls().unwrap().is_enabled());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%2fc").unwrap(), "a/b/c");
        assert_eq!(percent_decode("100%").unwrap(), "100%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert!(percent_decode("%FF").is_err());
        assert_eq!(percent_decode("%4").unwrap(), "%4");
        assert_eq!(percent_decode("%%41").unwrap(), "%A");
        assert_eq!(percent_decode("a+b").unwrap(), "a+b");
    }
}

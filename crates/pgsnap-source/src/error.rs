//! Errors of the PostgreSQL source, and how they map onto `pgsnap_core::Error`.

use pgsnap_core::BoxError;

use crate::replication::ReplicationError;

/// A failure of the PostgreSQL source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string or settings are invalid.
    #[error(transparent)]
    ConnInfo(#[from] crate::conninfo::ConnInfoError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A table pattern is invalid.
    #[error(transparent)]
    Pattern(#[from] crate::pattern::PatternError),
    /// Connecting failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The server, without credentials.
        target: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A check before copying failed; the message says what and how to fix it.
    #[error("{0}")]
    Preflight(String),
    /// A statement failed.
    #[error("{context}: {source}")]
    Postgres {
        /// What was being done.
        context: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A connection of pgsnap's own protocol client failed: the replication connection, or
    /// a worker connection (snapshot import, `LOCK ... NOWAIT`, `COPY`).
    #[error("{context}: {source}")]
    Replication {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: ReplicationError,
    },
    /// The snapshot cannot be imported (its holder ended), or is not the recorded one.
    #[error("snapshot {snapshot:?} is not importable: {reason}")]
    SnapshotLost {
        /// The snapshot name.
        snapshot: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Invalid options.
    #[error("{0}")]
    Config(String),
}

/// `Result` with the source's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn pg(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Postgres { context: context.into(), source }
    }

    /// The SQLSTATE of the server error behind this one, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Postgres { source, .. } => source.code().map(|c| c.code()),
            Self::Replication { source, .. } => source.sqlstate(),
            _ => None,
        }
    }

    /// Whether the failure may pass on retry (lost connection, lock not available, server
    /// starting or shutting down, too many connections).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Postgres { source, .. } => {
                source.is_closed()
                    || source.code().is_none_or(|_| source.as_db_error().is_none())
                    || source.code().is_some_and(|c| transient_sqlstate(c.code()))
            }
            Self::Connect { .. } => true,
            Self::Replication { source, .. } => match source {
                ReplicationError::Io { .. }
                | ReplicationError::Closed
                | ReplicationError::Timeout => true,
                ReplicationError::Server { code, .. } => transient_sqlstate(code),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Server errors that may pass on retry: lock not available (`NOWAIT`), the backend
/// terminated (administrator, crash, shutdown), the server starting up, too many
/// connections, connection failures (class 08), serialization failure and deadlock.
fn transient_sqlstate(code: &str) -> bool {
    matches!(code, "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01")
        || code.starts_with("08")
}

impl From<Error> for pgsnap_core::Error {
    fn from(e: Error) -> Self {
        use pgsnap_core::ErrorKind;
        const B: &str = "postgres";
        match e {
            Error::SnapshotLost { snapshot, reason } => {
                pgsnap_core::Error::snapshot_lost(snapshot, reason)
            }
            Error::Preflight(m) => pgsnap_core::Error::preflight(m),
            Error::ConnInfo(_) | Error::Pattern(_) | Error::Config(_) | Error::Tls(_) => {
                pgsnap_core::Error::config(e.to_string())
            }
            e if e.is_transient() => {
                pgsnap_core::Error::from_backend(ErrorKind::Source, B, e).set_temporary()
            }
            e => pgsnap_core::Error::from_backend(ErrorKind::Source, B, e),
        }
    }
}

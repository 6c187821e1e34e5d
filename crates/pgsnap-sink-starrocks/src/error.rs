//! Errors of the StarRocks sink, and how they map onto [`pgsnap_core::Error`].

use std::io;

use pgsnap_core::ErrorKind;

use crate::mapping::MappingError;
use crate::transcode::TranscodeError;

/// A failure of the StarRocks sink. Every variant names the thing at fault (address, table,
/// label, column) and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error("invalid StarRocks configuration: {0}")]
    Config(String),
    /// A TCP connection could not be made (address wrong, StarRocks down, firewall).
    #[error("cannot connect to {address}: {source} (is StarRocks running and reachable there?)")]
    Connect {
        /// The address tried.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error(
        "TLS with {address} failed: {source} (check the certificate, or give the CA with a CA file)"
    )]
    Tls {
        /// The address tried.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a connection failed (reset, timeout).
    #[error("{address}: {what}: {source}")]
    Io {
        /// The peer.
        address: String,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The peer did not speak the HTTP we expect.
    #[error("{address}: {message}")]
    Protocol {
        /// The peer.
        address: String,
        /// What was wrong.
        message: String,
    },
    /// StarRocks refused the user or password.
    #[error("StarRocks refused user {user:?}: {message} (check the user and the password)")]
    Auth {
        /// The user.
        user: String,
        /// StarRocks' message.
        message: String,
    },
    /// The database does not exist.
    #[error(
        "StarRocks database {database:?} does not exist: {message} (create it first: CREATE DATABASE `{database}`)"
    )]
    UnknownDatabase {
        /// The database.
        database: String,
        /// StarRocks' message.
        message: String,
    },
    /// StarRocks refused a Routine Load statement. The message never holds a secret that was
    /// substituted into the statement.
    #[error("Routine Load {database}.{job}: StarRocks refused it: {message}")]
    RoutineLoad {
        /// The job's name.
        job: String,
        /// Its database.
        database: String,
        /// StarRocks' message, secrets redacted.
        message: String,
    },
    /// The target table does not exist.
    #[error(
        "StarRocks table {database}.{table} does not exist: {message} (create it, or let pgsnap create it: with_create_tables(true))"
    )]
    UnknownTable {
        /// The database.
        database: String,
        /// The table.
        table: String,
        /// StarRocks' message.
        message: String,
    },
    /// A redirect would leave HTTPS for plain HTTP, sending the password in clear.
    #[error(
        "{from} redirected to {to}, which is plain HTTP: the password would travel in clear. Configure the BE load addresses with https, or allow it explicitly (allow_insecure_redirect)"
    )]
    InsecureRedirect {
        /// The HTTPS address that redirected.
        from: String,
        /// The plain-HTTP target.
        to: String,
    },
    /// StarRocks rejected rows of a load (`too many filtered rows`): a data problem, not
    /// retried.
    #[error("StarRocks rejected rows of {table} (label {label}): {message}; {filtered} of {total} rows filtered; see {}", error_url.as_deref().unwrap_or("the BE log (no ErrorURL given)"))]
    RowsRejected {
        /// The target table.
        table: String,
        /// The load's label.
        label: String,
        /// StarRocks' message.
        message: String,
        /// Rows filtered.
        filtered: u64,
        /// Rows in the load.
        total: u64,
        /// Where StarRocks keeps the rejected rows and why.
        error_url: Option<String>,
    },
    /// A load failed in a way that a retry with the same label may fix.
    #[error("Stream Load of {table} (label {label}) failed: {status}: {message}")]
    LoadFailed {
        /// The target table.
        table: String,
        /// The label.
        label: String,
        /// The `Status` StarRocks answered.
        status: String,
        /// StarRocks' message.
        message: String,
    },
    /// A load failed in a way that retrying cannot fix.
    #[error("Stream Load of {table} (label {label}) refused: {message}")]
    LoadRefused {
        /// The target table.
        table: String,
        /// The label.
        label: String,
        /// StarRocks' message.
        message: String,
    },
    /// The label's earlier load is still running after waiting for it.
    #[error(
        "label {label} is still {state} after {waited_s} s; the earlier load holding it has not finished (retry later)"
    )]
    LabelBusy {
        /// The label.
        label: String,
        /// The last state seen.
        state: String,
        /// Seconds waited.
        waited_s: u64,
    },
    /// StarRocks counted a different number of rows than were sent: the body encoding and
    /// StarRocks' parser disagree, so the run stops. With Stream Load the load is committed
    /// under its label (a resume would skip the label): the table must be emptied before a
    /// new run. With the transaction interface the transaction was rolled back
    /// (`committed` is false): nothing of the chunk is in the table.
    #[error(
        "Stream Load of {table} (label {label}): StarRocks counted {counted} rows, pgsnap sent {sent}; {} (and report this as a pgsnap bug)",
        if *committed {
            format!("the load is committed, so {table} holds wrong data: empty it and start a new run")
        } else {
            "the transaction was rolled back, nothing of it is in the table".to_owned()
        }
    )]
    RowCountMismatch {
        /// The target table.
        table: String,
        /// The label.
        label: String,
        /// Rows StarRocks counted (`NumberTotalRows`).
        counted: u64,
        /// Rows sent.
        sent: u64,
        /// Whether the load was committed (Stream Load) or rolled back (transactions).
        committed: bool,
    },
    /// Two source tables would load into one StarRocks table.
    #[error(
        "{first} and {second} would both load into StarRocks table {target:?}; map one of them to another name (with_table_mapping)"
    )]
    TargetCollision {
        /// One source table.
        first: String,
        /// The other.
        second: String,
        /// The shared target.
        target: String,
    },
    /// A new run would load into Duplicate Key tables that already hold rows.
    #[error(
        "StarRocks Duplicate Key tables already hold rows: {}; a new run would add its rows \
         next to them. Empty them (TRUNCATE TABLE), resume the run that loaded them, or allow \
         existing rows (StarRocksSinkBuilder::with_allow_existing_rows)",
        tables.join(", ")
    )]
    OccupiedTargets {
        /// Each table with its row count, e.g. `orders (120 rows)`.
        tables: Vec<String>,
    },
    /// A PostgreSQL type or table cannot be mapped.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A value cannot be carried exactly.
    #[error("{table} chunk {chunk}: {source}")]
    Transcode {
        /// The source table.
        table: String,
        /// The chunk.
        chunk: u32,
        /// Which value and why.
        #[source]
        source: TranscodeError,
    },
    /// An existing StarRocks table does not fit the source table.
    #[error("StarRocks table {database}.{table} does not match {source_table}: {}", problems.join("; "))]
    SchemaMismatch {
        /// The database.
        database: String,
        /// The StarRocks table.
        table: String,
        /// The PostgreSQL table.
        source_table: String,
        /// Each difference, with the column named.
        problems: Vec<String>,
    },
    /// A statement through the FE's MySQL protocol failed.
    #[error("StarRocks FE SQL ({what}) failed: {source}")]
    Sql {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: mysql_async::Error,
    },
}

impl Error {
    /// A value of `chunk` that cannot be carried.
    pub(crate) fn transcode(chunk: &pgsnap_core::Chunk, source: TranscodeError) -> Self {
        Error::Transcode { table: chunk.table.to_string(), chunk: chunk.id.0, source }
    }

    /// Whether retrying the same load (same label) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Io { .. } | Error::LoadFailed { .. } => true,
            Error::LabelBusy { .. } => true,
            Error::Sql { source, .. } => matches!(source, mysql_async::Error::Io(_)),
            _ => false,
        }
    }

    /// Whether no table can succeed after this error (credentials, database, configuration).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::RowCountMismatch { .. }
                | Error::Auth { .. }
                | Error::UnknownDatabase { .. }
                | Error::InsecureRedirect { .. }
                | Error::Tls { .. }
        )
    }
}

/// The one mapping onto [`pgsnap_core::Error`]: what failed ([`ErrorKind`]) and whether a
/// new attempt may help (temporary).
impl From<Error> for pgsnap_core::Error {
    fn from(e: Error) -> Self {
        const BACKEND: &str = "starrocks";
        let kind = match &e {
            Error::Config(_) => ErrorKind::Config,
            _ if e.is_retryable() => ErrorKind::Sink,
            _ if e.is_fatal() => ErrorKind::SinkUnavailable,
            Error::UnknownTable { .. }
            | Error::SchemaMismatch { .. }
            | Error::TargetCollision { .. }
            | Error::OccupiedTargets { .. }
            | Error::Mapping(_) => ErrorKind::TargetSchema,
            _ => ErrorKind::Sink,
        };
        let temporary = e.is_retryable();
        let core = pgsnap_core::Error::from_backend(kind, BACKEND, e);
        if temporary { core.set_temporary() } else { core }
    }
}

/// A failure while preparing the targets is a failed preflight (nothing was loaded), unless
/// the sink's configuration is wrong or the run was cancelled.
pub(crate) fn preflight(e: pgsnap_core::Error) -> pgsnap_core::Error {
    match e.kind() {
        ErrorKind::Config | ErrorKind::Cancelled => e,
        _ => e.with_kind(ErrorKind::Preflight),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = Error::LoadFailed {
            table: "t".into(),
            label: "l".into(),
            status: "Fail".into(),
            message: "x".into(),
        };
        assert!(pgsnap_core::Error::from(e).is_temporary());
        let e = Error::Auth { user: "u".into(), message: "denied".into() };
        assert!(pgsnap_core::Error::from(e).is_fatal());
        let e = Error::RowsRejected {
            table: "t".into(),
            label: "l".into(),
            message: "too many filtered rows".into(),
            filtered: 1,
            total: 2,
            error_url: Some("http://be/err".into()),
        };
        assert!(e.to_string().contains("http://be/err"));
        let core = pgsnap_core::Error::from(e);
        assert!(!core.is_temporary() && !core.is_fatal());
        assert_eq!(core.kind(), ErrorKind::Sink);
    }
}

//! A minimal PostgreSQL replication-protocol connection (`replication=database`).
//!
//! tokio-postgres cannot open walsender connections, so this runs on pgsnap's own client
//! for the frontend/backend protocol (built on [`postgres_protocol`]; see the crate's
//! layering). It supports what pgsnap needs to take a consistent snapshot:
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

use std::fmt;
use std::sync::Arc;

use crate::wire::{Connection, SessionKind};

/// Obtained from [`ReplicationConnection::cancel_handle`].
pub use crate::wire::CancelHandle;
pub use crate::wire::{ReplicationError, SimpleRows};

/// A replication-protocol (`replication=database`) connection to PostgreSQL.
///
/// Commands run one at a time (`&mut self`). If a command's future is dropped before
/// it completes, the next command first reads and discards the rest of its response.
///
/// See the [module documentation](self) for how exported snapshots behave.
pub struct ReplicationConnection {
    conn: Connection,
}

impl fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.fmt_debug("ReplicationConnection", f)
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
        Ok(Self { conn: Connection::connect(config, tls, SessionKind::Replication).await? })
    }

    /// A handle that cancels this connection's running command from another task.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.conn.cancel_handle()
    }

    /// The process id of the walsender serving this connection.
    pub fn backend_pid(&self) -> i32 {
        self.conn.backend_pid()
    }

    /// The server version in `server_version_num` form (`150004` for 15.4), parsed from
    /// the `server_version` parameter; `0` if it could not be parsed.
    pub fn server_version_num(&self) -> u32 {
        self.conn.server_version_num()
    }

    /// A parameter reported by the server (`ParameterStatus`), such as `server_version`,
    /// `server_encoding` or `TimeZone`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.conn.parameter(name)
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
        let snapshot = if self.server_version_num() >= 150_000 {
            "(SNAPSHOT 'export')"
        } else {
            "EXPORT_SNAPSHOT"
        };
        let sql = format!(
            "CREATE_REPLICATION_SLOT {}{temporary} LOGICAL pgoutput {snapshot}",
            pgsnap_core::quote_ident(name)
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
        self.simple_query(&format!(
            "DROP_REPLICATION_SLOT {}{wait}",
            pgsnap_core::quote_ident(name)
        ))
        .await?;
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
        self.conn.simple_query(sql).await
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
    pub async fn close(self) -> Result<(), ReplicationError> {
        self.conn.close().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(pgsnap_core::quote_ident("slot"), "\"slot\"");
        assert_eq!(pgsnap_core::quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

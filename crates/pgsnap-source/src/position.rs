//! Where the write-ahead log and a replication slot stand: the end of the WAL and a slot's
//! `confirmed_flush_lsn` (what `pgsnap status` compares a cutover LSN with).
//!
//! A slot's `confirmed_flush_lsn` is the position its consumer (Debezium) has confirmed;
//! Debezium confirms on each Kafka Connect offset commit. On a quiet database it may stay
//! behind the end of the WAL forever unless the connector emits heartbeats
//! (`heartbeat.interval.ms` with `heartbeat.action.query`), since nothing it consumes moves
//! it past the last commit record.

use pgsnap_core::Lsn;
use serde::Serialize;

use crate::conninfo::Connection;
use crate::error::{Error, Result};

/// One row of `pg_replication_slots`; its JSON is `{"name", "confirmed_flush_lsn" ("X/Y" or
/// null), "wal_status", "active"}`.
///
/// ```no_run
/// # async fn f(probe: pgsnap_source::position::WalProbe) -> pgsnap_source::Result<()> {
/// if let Some(slot) = probe.slot("pgsnap_app").await? {
///     assert_eq!(slot.name, "pgsnap_app");
///     println!("{}", serde_json::to_string(&slot).unwrap());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SlotPosition {
    /// `slot_name`.
    pub name: String,
    /// `confirmed_flush_lsn` (NULL for a physical slot).
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `wal_status`: `reserved`, `extended`, `unreserved` or `lost` (a lost slot cannot be
    /// streamed from again).
    pub wal_status: Option<String>,
    /// Whether a consumer is connected to it.
    pub active: bool,
}

/// A connection for reading WAL positions; one per check.
///
/// # Example
/// ```no_run
/// # async fn f() -> pgsnap_source::Result<()> {
/// use pgsnap_source::conninfo::Connection;
/// use pgsnap_source::position::WalProbe;
/// let probe = WalProbe::connect(Connection::new("host=db1 dbname=app")).await?;
/// let now = probe.current_wal_lsn().await?;
/// if let Some(slot) = probe.slot("pgsnap_app").await? {
///     println!("{} at {:?}, WAL at {now}", slot.name, slot.confirmed_flush_lsn);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WalProbe {
    client: tokio_postgres::Client,
}

impl WalProbe {
    /// Opens a connection.
    ///
    /// # Errors
    /// [`Error::ConnInfo`] for bad connection settings, [`Error::Connect`] when the server
    /// cannot be reached or refuses the login.
    pub async fn connect(connection: impl Into<Connection>) -> Result<Self> {
        let spec = connection.into().resolve()?;
        Ok(Self { client: crate::client::connect(&spec).await? })
    }

    /// Where the server's WAL ends now (on a primary): `pg_current_wal_insert_lsn()`, at or
    /// past the commit record of every transaction committed so far. (`pg_current_wal_lsn()`,
    /// the write position, can be behind the last commits under `synchronous_commit = off`
    /// until the WAL writer catches up, so a cutover LSN read with it could precede them.)
    ///
    /// # Errors
    /// [`Error::Postgres`] when the query fails (e.g. on a standby).
    pub async fn current_wal_lsn(&self) -> Result<Lsn> {
        let row = self
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(|e| Error::pg("cannot read pg_current_wal_insert_lsn()", e))?;
        parse_lsn(row.get(0))
    }

    /// The server's clock (`clock_timestamp()`), UTC, as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    ///
    /// # Errors
    /// [`Error::Postgres`] when the query fails.
    pub async fn server_time(&self) -> Result<String> {
        let row = self
            .client
            .query_one(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                &[],
            )
            .await
            .map_err(|e| Error::pg("cannot read clock_timestamp()", e))?;
        Ok(row.get(0))
    }

    /// The slot named `name`, or `None` when there is none.
    ///
    /// # Errors
    /// [`Error::Postgres`] when the query fails.
    pub async fn slot(&self, name: &str) -> Result<Option<SlotPosition>> {
        let row = self
            .client
            .query_opt(
                "SELECT slot_name::text, confirmed_flush_lsn::text, wal_status, active \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read replication slot {name:?}"), e))?;
        let Some(row) = row else { return Ok(None) };
        let confirmed: Option<String> = row.get(1);
        Ok(Some(SlotPosition {
            name: row.get(0),
            confirmed_flush_lsn: confirmed.as_deref().map(parse_lsn).transpose()?,
            wal_status: row.get(2),
            active: row.get(3),
        }))
    }
}

fn parse_lsn(text: &str) -> Result<Lsn> {
    text.parse().map_err(|e| {
        Error::Preflight(format!("the server answered an LSN pgsnap cannot read: {e}"))
    })
}

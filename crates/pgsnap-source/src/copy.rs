//! Worker connections that import the snapshot and stream `COPY ... TO STDOUT`.
//!
//! Workers speak the protocol themselves ([`crate::wire`]): the server sends one `CopyData`
//! message per row, and a worker reads the socket in large pieces and hands the rows on in
//! large buffers, with no work per row beyond one header check and one copy.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use tokio_postgres::config::{ChannelBinding, SslNegotiation};

use crate::conninfo::ConnSpec;
use crate::error::{Error, Result};
use crate::replication::ReplicationError;
use crate::wire::{COPY_BATCH_BYTES, Connection, SessionKind};
use pgsnap_core::{Chunk, DataFormat, TableName, quote_ident};

/// A connection inside the imported snapshot, with the relations it has locked.
#[derive(Debug)]
pub(crate) struct Worker {
    conn: Connection,
    locked: HashSet<TableName>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Ends the session without the server logging an unexpected EOF.
        self.conn.terminate_now();
    }
}

/// Idle workers, reused across chunks (one snapshot import per connection).
#[derive(Debug)]
pub(crate) struct Pool {
    spec: ConnSpec,
    snapshot: String,
    idle: Mutex<Vec<Worker>>,
}

/// Refuses connection settings the workers' protocol client does not implement, before any
/// snapshot is taken.
///
/// # Errors
/// [`Error::Config`] for `channel_binding=require` or `sslnegotiation=direct`.
pub(crate) fn check_spec(spec: &ConnSpec) -> Result<()> {
    if spec.config.get_channel_binding() == ChannelBinding::Require {
        return Err(Error::Config(
            "channel_binding=require is not supported: pgsnap's worker connections do not implement SCRAM channel binding; use channel_binding=prefer with sslmode=verify-full".into(),
        ));
    }
    if spec.config.get_ssl_negotiation() != SslNegotiation::Postgres {
        return Err(Error::Config(
            "sslnegotiation=direct is not supported; use sslnegotiation=postgres".into(),
        ));
    }
    Ok(())
}

impl Pool {
    pub(crate) fn new(spec: ConnSpec, snapshot: String) -> Self {
        Self { spec, snapshot, idle: Mutex::new(Vec::new()) }
    }

    async fn checkout(&self) -> Result<Worker> {
        if let Some(w) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
            && !w.conn.is_broken()
        {
            return Ok(w);
        }
        let tls = crate::tls::client_config(self.spec.tls, self.spec.sslrootcert.as_deref())?;
        let mut conn = Connection::connect(&self.spec.config, tls, SessionKind::Normal)
            .await
            .map_err(|e| match e {
                ReplicationError::Config(m) => Error::Config(m),
                e => Error::Connect {
                    target: crate::client::target(&self.spec.config),
                    source: Box::new(e),
                },
            })?;
        crate::snapshot::import_into(&mut conn, &self.snapshot).await?;
        Ok(Worker { conn, locked: HashSet::new() })
    }

    fn checkin(&self, w: Worker) {
        if !w.conn.is_broken() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        }
    }

    /// Drops idle workers (ends their transactions).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The `COPY` statement for a chunk.
///
/// A whole relation (one chunk, as for every small table) is read with
/// `COPY <relation> (<columns>) TO STDOUT`, which reads the relation's own rows only (as
/// `FROM ONLY`) without planning a query: cheaper per chunk on the server, and no lock on
/// the relation's indexes. A range is read with `COPY (SELECT <columns> FROM ONLY
/// <relation> WHERE <range>) TO STDOUT`. Both print the same rows in the same format.
pub(crate) fn copy_sql(chunk: &Chunk, format: DataFormat) -> String {
    let cols = chunk.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let mut q = match chunk.range.predicate() {
        None if cols.is_empty() => format!("COPY {} TO STDOUT", chunk.relation.quoted()),
        None => format!("COPY {} ({cols}) TO STDOUT", chunk.relation.quoted()),
        Some(p) => {
            format!(
                "COPY (SELECT {cols} FROM ONLY {} WHERE {p}) TO STDOUT",
                chunk.relation.quoted()
            )
        }
    };
    if format == DataFormat::Csv {
        q.push_str(" WITH (FORMAT csv)");
    }
    q
}

/// Starts reading a chunk on an idle worker (a new one if none is idle).
///
/// # Errors
/// Connecting or importing the snapshot failing, the relation's `NOWAIT` lock not being
/// granted (transient), the `COPY` failing to start.
pub(crate) async fn read(
    pool: &Arc<Pool>,
    chunk: &Chunk,
    format: DataFormat,
) -> Result<CopyStream> {
    let mut worker = pool.checkout().await?;
    let label = chunk.label();
    // Second guard behind the leader's locks: never wait behind a queued DDL. The lock is
    // sent with the COPY in one query string, so a chunk costs one round trip.
    let lock = !worker.locked.contains(&chunk.relation);
    let sql = if lock {
        format!(
            "LOCK TABLE ONLY {} IN ACCESS SHARE MODE NOWAIT; {}",
            chunk.relation.quoted(),
            copy_sql(chunk, format)
        )
    } else {
        copy_sql(chunk, format)
    };
    worker.conn.copy_out(&sql).await.map_err(|e| {
        let context = if lock && e.sqlstate() == Some("55P03") {
            format!("cannot lock {} (NOWAIT) for {label}", chunk.relation)
        } else {
            format!("COPY of {label} failed")
        };
        Error::Replication { context, source: e }
    })?;
    if lock {
        worker.locked.insert(chunk.relation.clone());
    }
    Ok(CopyStream { worker: Some(worker), pool: Arc::clone(pool), label })
}

/// A chunk's COPY output, in buffers of up to [`COPY_BATCH_BYTES`]. Returns its connection
/// to the pool when read to the end; a stream dropped early, or failed, closes its
/// connection (its transaction is mid-COPY or aborted).
#[derive(Debug)]
pub(crate) struct CopyStream {
    /// `None` once the stream has ended or failed.
    worker: Option<Worker>,
    pool: Arc<Pool>,
    label: String,
}

impl Stream for CopyStream {
    type Item = pgsnap_core::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(worker) = this.worker.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(worker.conn.poll_copy_out(cx, COPY_BATCH_BYTES)) {
            Ok(Some(rows)) => Poll::Ready(Some(Ok(rows))),
            Ok(None) => {
                if let Some(w) = this.worker.take() {
                    this.pool.checkin(w);
                }
                Poll::Ready(None)
            }
            Err(e) => {
                this.worker = None;
                let err = Error::Replication {
                    context: format!("COPY of {} failed", this.label),
                    source: e,
                };
                Poll::Ready(Some(Err(err.into())))
            }
        }
    }
}

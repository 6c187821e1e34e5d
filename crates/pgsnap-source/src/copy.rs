//! Worker connections that import the snapshot and stream `COPY ... TO STDOUT`.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio_postgres::{Client, CopyOutStream};

use crate::conninfo::ConnSpec;
use crate::error::{Error, Result};
use pgsnap_core::{Chunk, DataFormat, TableName, quote_ident};

/// A connection inside the imported snapshot, with the relations it has locked.
#[derive(Debug)]
pub(crate) struct Worker {
    client: Client,
    locked: HashSet<TableName>,
}

/// Idle workers, reused across chunks (one snapshot import per connection).
#[derive(Debug)]
pub(crate) struct Pool {
    spec: ConnSpec,
    snapshot: String,
    idle: Mutex<Vec<Worker>>,
}

impl Pool {
    pub(crate) fn new(spec: ConnSpec, snapshot: String) -> Self {
        Self { spec, snapshot, idle: Mutex::new(Vec::new()) }
    }

    async fn checkout(&self) -> Result<Worker> {
        if let Some(w) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            if !w.client.is_closed() {
                return Ok(w);
            }
        }
        let client = crate::connect(&self.spec).await?;
        crate::snapshot::import(&client, &self.snapshot).await?;
        Ok(Worker { client, locked: HashSet::new() })
    }

    fn checkin(&self, w: Worker) {
        if !w.client.is_closed() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        }
    }

    /// Drops idle workers (ends their transactions).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The `COPY` statement for a chunk.
pub(crate) fn copy_sql(chunk: &Chunk, format: DataFormat) -> String {
    let cols = chunk.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let cols = if cols.is_empty() { String::new() } else { cols };
    let mut q = format!("COPY (SELECT {cols} FROM ONLY {}", chunk.relation.quoted());
    if let Some(p) = chunk.range.predicate() {
        q.push_str(" WHERE ");
        q.push_str(&p);
    }
    q.push_str(") TO STDOUT");
    if format == DataFormat::Csv {
        q.push_str(" WITH (FORMAT csv)");
    }
    q
}

pub(crate) async fn read(
    pool: &Arc<Pool>,
    chunk: &Chunk,
    format: DataFormat,
) -> Result<CopyStream> {
    let mut worker = pool.checkout().await?;
    if !worker.locked.contains(&chunk.relation) {
        // Second guard behind the leader's locks: never wait behind a queued DDL.
        worker
            .client
            .batch_execute(&format!(
                "LOCK TABLE ONLY {} IN ACCESS SHARE MODE NOWAIT",
                chunk.relation.quoted()
            ))
            .await
            .map_err(|e| {
                Error::pg(
                    format!("cannot lock {} (NOWAIT) for {}", chunk.relation, chunk.label()),
                    e,
                )
            })?;
        worker.locked.insert(chunk.relation.clone());
    }
    let sql = copy_sql(chunk, format);
    let inner = worker
        .client
        .copy_out(sql.as_str())
        .await
        .map_err(|e| Error::pg(format!("COPY of {} failed", chunk.label()), e))?;
    Ok(CopyStream {
        inner: Box::pin(inner),
        worker: Some(worker),
        pool: Arc::clone(pool),
        label: chunk.label(),
        batch: BytesMut::new(),
        finished: false,
    })
}

/// A chunk's COPY output. Returns its connection to the pool when read to the end; a stream
/// dropped early closes its connection (it is mid-COPY).
pub(crate) struct CopyStream {
    inner: Pin<Box<CopyOutStream>>,
    worker: Option<Worker>,
    pool: Arc<Pool>,
    label: String,
    /// Rows gathered into one buffer: the server sends one message per row, and handing
    /// each row on separately costs more than copying it once.
    batch: BytesMut,
    finished: bool,
}

/// Rows are handed on in buffers of about this size (or sooner when the server is slower).
const BATCH_BYTES: usize = 64 * 1024;

impl CopyStream {
    fn take_batch(&mut self) -> Option<pgsnap_core::Result<Bytes>> {
        (!self.batch.is_empty()).then(|| Ok(self.batch.split().freeze()))
    }
}

impl Stream for CopyStream {
    type Item = pgsnap_core::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    if this.batch.is_empty() && b.len() >= BATCH_BYTES {
                        return Poll::Ready(Some(Ok(b)));
                    }
                    this.batch.extend_from_slice(&b);
                    if this.batch.len() >= BATCH_BYTES {
                        return Poll::Ready(this.take_batch());
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // Rows gathered so far are not handed on: the chunk failed.
                    this.batch.clear();
                    this.finished = true;
                    this.worker = None;
                    let err = Error::pg(format!("COPY of {} failed", this.label), e);
                    return Poll::Ready(Some(Err(err.into())));
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    if let Some(w) = this.worker.take() {
                        this.pool.checkin(w);
                    }
                    return Poll::Ready(this.take_batch());
                }
                Poll::Pending => {
                    return match this.take_batch() {
                        Some(b) => Poll::Ready(Some(b)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

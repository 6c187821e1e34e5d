//! One chunk through the Stream Load transaction interface (spec §2), when
//! [`StarRocksSinkBuilder::with_transactions`](crate::StarRocksSinkBuilder::with_transactions)
//! is on: one transaction per chunk, so a chunk split into several loads becomes visible
//! atomically.
//!
//! Requests, all with `label` (the chunk's transaction label, `…-<chunk>-t`), `db`, `table` and `timeout`:
//! 1. `begin`, to the FE (following its `307` to the BE that will own the transaction) or
//!    straight to a configured BE. A label held by a committed transaction means the chunk
//!    is loaded: its input is only counted. A label held by an open transaction (one of this
//!    run, left behind by a killed process) is rolled back, then begin is tried again.
//! 2. `load` once per part (parts split as with Stream Load), on the same node: the head goes
//!    with `Expect: 100-continue`, so the FE's `307` comes before any body byte, and the body
//!    is streamed to the BE only, with chunked transfer encoding (the BE accepts it, spec
//!    §2.1; memory stays bounded by the 1 MiB write buffer). Every `load` carries the same
//!    `max_filter_ratio`, `strict_mode`, `timeout` and format headers.
//! 3. `prepare`, on the same node; `NumberTotalRows` must equal the rows sent, else the
//!    transaction is rolled back and the run stops ([`Error::RowCountMismatch`]).
//! 4. `commit`, to the FE (it owns a PREPARED transaction, spec §2.2). When its answer is
//!    lost or not `OK`, `get_load_state` decides: COMMITTED or VISIBLE is done.
//!
//! Any failure after begin and before the commit took rolls the transaction back (best
//! effort: a transaction left behind is rolled back by the next attempt's begin, or aborted
//! by StarRocks' timeout) and returns the error: the source's unchanged, StarRocks' classified
//! as with Stream Load.
//!
//! A load path, like `load` (whose pieces it reuses): it takes the Stream Load client and the
//! load options ([`Loader`]), never the sink.

use pgsnap_core::{Chunk, ChunkReceipt, LoadReceipt};

use crate::client::{LabelFate, Opened, Request, Retries};
use crate::error::{Error, Result};
use crate::http::{BodyFraming, Endpoint};
use crate::load::{self, Input, Loader, Out, PumpError};
use crate::mapping::TargetTable;
use crate::response::LoadResult;
use crate::transcode::Transcoder;

/// Rounds of a rollback refused with `TXN_IN_PROCESSING` (a request on the transaction is
/// still being handled, e.g. the BE has not yet noticed a dropped load).
const ROLLBACK_ROUNDS: u32 = 4;

/// One transaction: its label and where its requests go.
struct Txn {
    label: String,
    /// Where begin, load and prepare go: a configured BE (the transaction lives on the BE
    /// that began it), else an FE, which redirects them to that BE.
    node: Endpoint,
    /// The FE for commit and rollback: it owns a PREPARED transaction and redirects for one
    /// still in PREPARE.
    fe: Endpoint,
}

impl Txn {
    /// Picks the endpoints once, so every request of the transaction reaches the FE that
    /// knows which BE holds it (or that BE).
    fn new(loader: Loader<'_>, label: &str) -> Self {
        let fe = loader.client.pick_fe().clone();
        let node = loader.client.pick_be().unwrap_or(&fe).clone();
        Self { label: label.to_owned(), node, fe }
    }
}

/// What begin found.
enum Begun {
    /// A new transaction in PREPARE.
    Open(Txn),
    /// The label's transaction is committed: the chunk is loaded.
    Loaded,
}

/// What holds a label that begin refused as used.
enum Holder {
    /// A COMMITTED or VISIBLE transaction: the chunk is in.
    Committed,
    /// A transaction in PREPARE or PREPARED: one of this run's, left open.
    Open,
    /// Nothing any more (ABORTED or unknown): begin again.
    Gone,
}

/// Loads one non-empty chunk (see `StarRocksSink::write_chunk`) as one transaction.
pub(crate) async fn load_chunk(
    loader: Loader<'_>,
    target: &TargetTable,
    chunk: &Chunk,
    mut input: Input,
    mut tc: Transcoder,
) -> pgsnap_core::Result<ChunkReceipt> {
    let label = loader.client.labeler()?.txn_label(&chunk.table, chunk.id);
    let txn = match begin(loader, target, &label).await? {
        Begun::Open(txn) => txn,
        Begun::Loaded => {
            // Count the chunk's rows: they are in StarRocks under this label.
            let mut discarded = 0;
            while input.has_more().await? {
                load::pump(loader, chunk, &mut input, &mut tc, Out::Discard, &mut discarded)
                    .await?;
            }
            tc.finish().map_err(|e| Error::transcode(chunk, e))?;
            tracing::info!(
                label,
                rows = tc.rows(),
                "chunk already committed under its label; skipped"
            );
            let receipt = LoadReceipt::new(tc.rows(), 0, vec![label.clone()]);
            return Ok(ChunkReceipt::new(Some(label), 0).with_load(receipt));
        }
    };
    let mut stored = 0u64;
    match load_and_commit(loader, target, chunk, &txn, &mut input, &mut tc, &mut stored).await {
        Ok(prepared) => {
            tracing::debug!(
                table = %chunk.table, chunk = chunk.id.0, label, rows = tc.rows(),
                loaded = prepared.loaded_rows, "chunk committed"
            );
            let receipt =
                LoadReceipt::new(prepared.loaded_rows, prepared.filtered_rows, vec![label.clone()]);
            Ok(ChunkReceipt::new(Some(label), stored).with_load(receipt))
        }
        Err(e) => {
            // A failed load's connection is closed by now. The BE it was begun on holds the
            // transaction while in PREPARE; the FE once PREPARED.
            rollback(loader, target, &txn, &[&txn.node, &txn.fe]).await;
            Err(e.into())
        }
    }
}

/// Loads every part into the open transaction, prepares it, checks the row count and
/// commits. Returns prepare's answer (its row counters).
async fn load_and_commit(
    loader: Loader<'_>,
    target: &TargetTable,
    chunk: &Chunk,
    txn: &Txn,
    input: &mut Input,
    tc: &mut Transcoder,
    stored: &mut u64,
) -> std::result::Result<LoadResult, PumpError> {
    let mut part = 0u32;
    loop {
        let rows_before = tc.rows();
        load_part(loader, target, chunk, txn, input, tc, stored).await?;
        tracing::debug!(label = %txn.label, part, rows = tc.rows() - rows_before, "part sent");
        if !input.has_more().await.map_err(PumpError::Source)? {
            break;
        }
        part += 1;
    }
    tc.finish().map_err(|e| PumpError::Sink(Error::transcode(chunk, e)))?;
    let prepared = call(loader, target, txn, &txn.node, "prepare").await?;
    if !is_ok(&prepared) {
        return Err(failure(loader, target, &txn.label, "prepare", &prepared).into());
    }
    let sent = tc.rows();
    if prepared.total_rows != sent {
        return Err(Error::RowCountMismatch {
            table: target.name.clone(),
            label: txn.label.clone(),
            counted: prepared.total_rows,
            sent,
            committed: false,
        }
        .into());
    }
    commit(loader, target, txn).await?;
    Ok(prepared)
}

/// Begins the chunk's transaction, retrying refusals that may pass; settles a label held by
/// an earlier transaction (committed: the chunk is loaded; open: rolled back, then begin
/// again).
async fn begin(loader: Loader<'_>, target: &TargetTable, label: &str) -> Result<Begun> {
    let retries = Retries::new(loader.retry);
    loop {
        let txn = Txn::new(loader, label);
        let answer = match call(loader, target, &txn, &txn.node, "begin").await {
            Ok(a) => a,
            Err(e) => {
                if retries.back_off(e.is_retryable()).await {
                    tracing::warn!(label, error = %e, "transaction not begun; retried");
                    continue;
                }
                return Err(e);
            }
        };
        if is_ok(&answer) {
            return Ok(Begun::Open(txn));
        }
        let held = is_label_used(&answer);
        if held {
            match holder(loader, label, &answer).await? {
                Holder::Committed => return Ok(Begun::Loaded),
                Holder::Open => {
                    tracing::warn!(
                        label,
                        "a transaction of this run holding the chunk's label was left open \
                         (an earlier attempt stopped before its commit); rolling it back"
                    );
                    // Which BE holds it is unknown: the FE knows (or owns it when
                    // PREPARED), else every configured BE is asked.
                    let mut to = vec![&txn.fe];
                    to.extend(loader.client.bes());
                    rollback(loader, target, &txn, &to).await;
                    // "Not found" answers do not prove it gone (the FE may still hold it):
                    // wait until StarRocks reports the label aborted or free.
                    if let LabelFate::Loaded = loader.client.wait_for_label(label).await? {
                        return Ok(Begun::Loaded);
                    }
                }
                Holder::Gone => {}
            }
        } else {
            load::classify_failure(loader, target, label, &answer)?;
        }
        if !retries.back_off(true).await {
            return Err(if held {
                Error::LabelBusy {
                    label: label.to_owned(),
                    state: format!("held ({}: {})", answer.status, answer.message),
                    waited_s: 0,
                }
            } else {
                failure(loader, target, label, "begin", &answer)
            });
        }
    }
}

/// Whether begin was refused because a non-aborted transaction holds the label: the
/// transaction interface's `LABEL_ALREADY_EXISTS`, or a newer build's "has already been
/// used" failure (spec §1.4).
fn is_label_used(answer: &LoadResult) -> bool {
    answer.status.eq_ignore_ascii_case("LABEL_ALREADY_EXISTS")
        || answer.status.eq_ignore_ascii_case("Label Already Exists")
        || answer.message.contains("has already been used")
}

/// What holds a used label: `ExistingJobStatus` when given (`FINISHED` = committed;
/// `RUNNING`, or `""` from the BE holding it in PREPARE = open), else `get_load_state`.
async fn holder(loader: Loader<'_>, label: &str, answer: &LoadResult) -> Result<Holder> {
    match answer.existing_job_status.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("FINISHED") => return Ok(Holder::Committed),
        Some(s) if s.is_empty() || s.eq_ignore_ascii_case("RUNNING") => return Ok(Holder::Open),
        _ => {}
    }
    Ok(match loader.client.get_load_state(label).await?.as_str() {
        "COMMITTED" | "VISIBLE" => Holder::Committed,
        "ABORTED" | "UNKNOWN" => Holder::Gone,
        _ => Holder::Open,
    })
}

/// Loads one part into the transaction: opens the `load` request (retrying refusals that
/// come before the body), streams the part and checks the answer.
async fn load_part(
    loader: Loader<'_>,
    target: &TargetTable,
    chunk: &Chunk,
    txn: &Txn,
    input: &mut Input,
    tc: &mut Transcoder,
    stored: &mut u64,
) -> std::result::Result<(), PumpError> {
    let headers = headers(loader, target, &txn.label, true);
    let request = Request {
        method: "PUT",
        what: "transaction load",
        headers: &headers,
        framing: BodyFraming::Chunked,
        expect_continue: true,
        wait: loader.options.continue_timeout,
    };
    let retries = Retries::new(loader.retry);
    loop {
        let path = "/api/transaction/load".to_owned();
        let conn = match loader.client.open_request(txn.node.clone(), path, &request).await {
            Ok(Opened::Continue(conn)) => conn,
            Ok(Opened::Answer(answer)) => {
                // Refused before the body: a concurrent request may still hold the
                // transaction; anything else failed it.
                if answer.status.eq_ignore_ascii_case("TXN_IN_PROCESSING")
                    && retries.back_off(true).await
                {
                    continue;
                }
                return Err(failure(loader, target, &txn.label, "load", &answer).into());
            }
            Err(e) => {
                // Nothing of this part was sent: send it again.
                if retries.back_off(e.is_retryable()).await {
                    tracing::warn!(label = %txn.label, error = %e, "transaction load not started; retried");
                    continue;
                }
                return Err(e.into());
            }
        };
        let answer = load::stream_part(loader, chunk, input, tc, conn, stored).await?;
        if answer.complete && is_ok(&answer.result) {
            return Ok(());
        }
        return Err(failure(loader, target, &txn.label, "load", &answer.result).into());
    }
}

/// Commits a PREPARED transaction through the FE. When the answer is lost or not `OK`, the
/// label's state decides: COMMITTED or VISIBLE is done, still PREPARED is committed again.
async fn commit(loader: Loader<'_>, target: &TargetTable, txn: &Txn) -> Result<()> {
    let retries = Retries::new(loader.retry);
    loop {
        let answer = call(loader, target, txn, &txn.fe, "commit").await;
        if answer.as_ref().is_ok_and(is_ok) {
            return Ok(());
        }
        let state = loader.client.get_load_state(&txn.label).await;
        match state.as_deref() {
            Ok("COMMITTED" | "VISIBLE") => {
                tracing::info!(label = %txn.label, "commit answer lost or not OK, yet committed");
                return Ok(());
            }
            Ok("PREPARED") if retries.back_off(true).await => {
                tracing::warn!(label = %txn.label, "commit did not take; committed again");
            }
            _ => {
                return Err(match answer {
                    Ok(a) => failure(loader, target, &txn.label, "commit", &a),
                    Err(e) => e,
                });
            }
        }
    }
}

/// Rolls a transaction back, best effort: asks each endpoint in turn until one rolls it
/// back or the transaction is gone, for a few rounds while it is busy. A failure is only
/// logged: the next begin with this label rolls back what is left, and StarRocks aborts a
/// transaction when its `timeout` passes.
async fn rollback(loader: Loader<'_>, target: &TargetTable, txn: &Txn, order: &[&Endpoint]) {
    // Best effort, within one deadline: a rollback must never hold back the error that
    // caused it (a source error is returned unchanged, and promptly).
    let deadline = loader.client.io_timeout().min(std::time::Duration::from_secs(30));
    if tokio::time::timeout(deadline, rollback_all(loader, target, txn, order)).await.is_err() {
        tracing::warn!(label = %txn.label, "rollback did not finish in {deadline:?}; StarRocks aborts the transaction at its timeout");
    }
}

async fn rollback_all(loader: Loader<'_>, target: &TargetTable, txn: &Txn, order: &[&Endpoint]) {
    let mut targets: Vec<&Endpoint> = Vec::with_capacity(order.len());
    for e in order {
        if !targets.contains(e) {
            targets.push(e);
        }
    }
    let mut last = String::new();
    for round in 0..ROLLBACK_ROUNDS {
        let mut busy = false;
        let mut not_found = 0;
        for to in &targets {
            match call(loader, target, txn, to, "rollback").await {
                Ok(a) if is_ok(&a) => {
                    tracing::debug!(label = %txn.label, message = %a.message, "rolled back");
                    return;
                }
                Ok(a) => {
                    if a.status.eq_ignore_ascii_case("TXN_NOT_EXISTS") {
                        not_found += 1;
                    }
                    busy |= a.status.eq_ignore_ascii_case("TXN_IN_PROCESSING");
                    last = format!("{}: {}", a.status, a.message);
                }
                Err(e) => last = e.to_string(),
            }
        }
        if not_found == targets.len() {
            // Neither the FE nor the BE holds it: aborted already (a failed load or
            // prepare rolls the transaction back on its own).
            return;
        }
        if !busy {
            break;
        }
        tokio::time::sleep(loader.retry.policy().backoff(round + 1)).await;
    }
    tracing::warn!(
        label = %txn.label, error = %last,
        "rolling back the transaction failed; the next attempt rolls it back, or StarRocks \
         aborts it when its timeout passes"
    );
}

/// Sends a body-less transaction request (`begin`, `prepare`, `commit`, `rollback`) to
/// `to`, following redirects, and returns its answer.
async fn call(
    loader: Loader<'_>,
    target: &TargetTable,
    txn: &Txn,
    to: &Endpoint,
    op: &str,
) -> Result<LoadResult> {
    let headers = headers(loader, target, &txn.label, false);
    let what = format!("transaction {op}");
    let request = Request {
        method: "POST",
        what: &what,
        headers: &headers,
        framing: BodyFraming::Empty,
        expect_continue: false,
        wait: match op {
            // prepare waits for the data to be written, commit for it to be published.
            "prepare" | "commit" => loader.options.load_timeout + loader.client.io_timeout(),
            _ => loader.client.io_timeout(),
        },
    };
    let path = format!("/api/transaction/{op}");
    match loader.client.open_request(to.clone(), path, &request).await? {
        Opened::Answer(answer) => Ok(answer),
        Opened::Continue(_) => Err(Error::Protocol {
            address: to.to_string(),
            message: format!("{what}: unexpected 100 Continue to a request without a body"),
        }),
    }
}

/// The headers of a transaction request: `label`, `db`, `table` on every one (as the Flink
/// SDK sends them); `load` adds the load parameters and format headers (identical on every
/// `load`, spec §2.1), the others `timeout`.
fn headers(
    loader: Loader<'_>,
    target: &TargetTable,
    label: &str,
    load_params: bool,
) -> Vec<(String, String)> {
    let mut h = loader.client.auth();
    h.push(("label".into(), label.to_owned()));
    h.push(("db".into(), loader.client.database().to_owned()));
    h.push(("table".into(), target.name.clone()));
    if load_params {
        h.extend(load::load_params(loader, target));
    } else {
        // On begin: the whole transaction (every part, the reads from PostgreSQL between
        // them, prepare) must finish within it.
        h.push(("timeout".into(), loader.options.transaction_timeout.as_secs().to_string()));
    }
    h
}

fn is_ok(answer: &LoadResult) -> bool {
    answer.status.eq_ignore_ascii_case("OK")
}

/// The error for a transaction request StarRocks answered with a failure: a data,
/// configuration or permission error when the message says so, else a failure that a retry
/// of the chunk (same label) may fix.
fn failure(
    loader: Loader<'_>,
    target: &TargetTable,
    label: &str,
    op: &str,
    answer: &LoadResult,
) -> Error {
    if let Err(e) = load::classify_failure(loader, target, label, answer) {
        return e;
    }
    Error::LoadFailed {
        table: target.name.clone(),
        label: label.to_owned(),
        status: answer.status.clone(),
        message: format!("transaction {op}: {}", answer.message),
    }
}

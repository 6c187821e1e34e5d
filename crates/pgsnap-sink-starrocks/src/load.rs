//! One chunk through Stream Load: one load per part under the part's label, the body
//! transcoded and streamed after `100 Continue`, and the status recipe of spec §1.4.
//!
//! A load path: it takes the Stream Load client ([`StreamLoadClient`]: endpoints, auth,
//! labels, retries, label states) and the [`LoadOptions`], never the sink. The transaction
//! path (`txn_load`) builds on the pieces here ([`Input`], [`pump`], [`stream_part`],
//! [`classify_failure`], [`load_params`]).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pgsnap_core::{Chunk, ChunkReceipt, ChunkStream, LoadReceipt, RetryBudget};

use crate::client::{LabelFate, Opened, Request, Retries, StreamLoadClient};
use crate::error::{Error, Result};
use crate::http::{BodyFraming, Conn};
use crate::mapping::{LoadFormat, TargetTable};
use crate::response::{self, LoadResult};
use crate::transcode::Transcoder;

/// Body bytes buffered before they are written to the connection.
const FLUSH_BYTES: usize = 1 << 20;

/// How loads are made, the same for every chunk (set by the builder).
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    /// The body format (decides the default part size).
    pub(crate) format: LoadFormat,
    /// The part size; `None` for the format's default.
    pub(crate) max_load_bytes: Option<u64>,
    /// How long to wait for the BE's `100 Continue`.
    pub(crate) continue_timeout: Duration,
    /// The Stream Load `timeout` header.
    pub(crate) load_timeout: Duration,
    /// The `timeout` sent on a transaction's `begin`.
    pub(crate) transaction_timeout: Duration,
    pub(crate) max_filter_ratio: f64,
    pub(crate) strict_mode: bool,
}

/// What a load path works with: the Stream Load client and the load options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loader<'a> {
    pub(crate) client: &'a StreamLoadClient,
    pub(crate) options: &'a LoadOptions,
    /// The chunk's retry budget, shared with the coordinator.
    pub(crate) retry: &'a RetryBudget,
}

/// The chunk's COPY text, with what was read but not yet transcoded.
pub(crate) struct Input {
    stream: ChunkStream,
    pending: Bytes,
    ended: bool,
}

impl Input {
    pub(crate) fn new(stream: ChunkStream) -> Self {
        Self { stream, pending: Bytes::new(), ended: false }
    }

    /// Whether more input exists (reads ahead one buffer when needed).
    pub(crate) async fn has_more(&mut self) -> pgsnap_core::Result<bool> {
        while self.pending.is_empty() && !self.ended {
            match self.stream.next().await {
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => return Err(e),
                None => self.ended = true,
            }
        }
        Ok(!self.pending.is_empty())
    }
}

/// Where a part's transcoded body goes.
pub(crate) enum Out<'a> {
    /// To the BE.
    Conn(&'a mut Conn),
    /// Nowhere: the part is already loaded; only its rows are counted, to find where the
    /// next part starts.
    Discard,
}

/// A failure while pumping a body: from the source (returned unchanged) or the sink.
pub(crate) enum PumpError {
    Source(pgsnap_core::Error),
    Sink(Error),
}

impl From<Error> for PumpError {
    fn from(e: Error) -> Self {
        PumpError::Sink(e)
    }
}

impl From<PumpError> for pgsnap_core::Error {
    fn from(e: PumpError) -> Self {
        match e {
            PumpError::Source(e) => e,
            PumpError::Sink(e) => e.into(),
        }
    }
}

/// How a part ended.
struct PartOutcome {
    loaded: u64,
    filtered: u64,
}

/// Loads one non-empty chunk (see `StarRocksSink::write_chunk`), one Stream Load per part.
pub(crate) async fn load_chunk(
    loader: Loader<'_>,
    target: &TargetTable,
    chunk: &Chunk,
    mut input: Input,
    mut tc: Transcoder,
) -> pgsnap_core::Result<ChunkReceipt> {
    let mut receipt = LoadReceipt::default();
    let mut part = 0u32;
    let mut stored = 0u64;
    loop {
        let label = loader.client.labeler()?.label(&chunk.table, chunk.id, part);
        let rows_before = tc.rows();
        let outcome =
            load_part(loader, target, chunk, &label, &mut input, &mut tc, &mut stored).await?;
        tracing::debug!(
            table = %chunk.table, chunk = chunk.id.0, part, label = %label,
            rows = tc.rows() - rows_before, loaded = outcome.loaded, "part loaded"
        );
        receipt.rows_loaded += outcome.loaded;
        receipt.rows_filtered += outcome.filtered;
        receipt.labels.push(label);
        if !input.has_more().await? {
            break;
        }
        part += 1;
    }
    tc.finish().map_err(|e| Error::transcode(chunk, e))?;
    let first = receipt.labels.first().cloned();
    Ok(ChunkReceipt::new(first, stored).with_load(receipt))
}

fn max_part_bytes(loader: Loader<'_>) -> u64 {
    loader.options.max_load_bytes.unwrap_or(match loader.options.format {
        LoadFormat::Json => 96 << 20,
        _ => 4 << 30,
    })
}

/// Loads one part: opens the load (retrying refusals that come before the body), streams
/// the body, and applies the status recipe.
async fn load_part(
    loader: Loader<'_>,
    target: &TargetTable,
    chunk: &Chunk,
    label: &str,
    input: &mut Input,
    tc: &mut Transcoder,
    stored: &mut u64,
) -> pgsnap_core::Result<PartOutcome> {
    let retries = Retries::new(loader.retry);
    loop {
        let opened = match open_load(loader, target, label).await {
            Ok(o) => o,
            Err(e) => {
                if retries.back_off(e.is_retryable()).await {
                    tracing::warn!(label, error = %e, "load not started; retried");
                    continue;
                }
                return Err(e.into());
            }
        };
        match opened {
            Opened::Continue(conn) => {
                let answer = match stream_part(loader, chunk, input, tc, conn, stored).await {
                    Ok(a) => a,
                    Err(PumpError::Source(e)) => return Err(e),
                    Err(PumpError::Sink(e)) => return Err(e.into()),
                };
                if !answer.complete {
                    classify_failure(loader, target, label, &answer.result)?;
                    return Err(Error::LoadFailed {
                        table: target.name.clone(),
                        label: label.to_owned(),
                        status: answer.result.status,
                        message: answer.result.message,
                    }
                    .into());
                }
                return finish_sent(loader, target, label, answer.result, answer.rows)
                    .await
                    .map_err(Into::into);
            }
            Opened::Answer(result) => match early_answer(loader, target, label, &result).await? {
                Early::AlreadyLoaded => {
                    // Skip this part's rows; they are in StarRocks under this label.
                    let rows_before = tc.rows();
                    match pump(loader, chunk, input, tc, Out::Discard, stored).await {
                        Ok(()) => {}
                        Err(PumpError::Source(e)) => return Err(e),
                        Err(PumpError::Sink(e)) => return Err(e.into()),
                    }
                    let rows = tc.rows() - rows_before;
                    tracing::info!(label, rows, "part already loaded under its label; skipped");
                    return Ok(PartOutcome { loaded: rows, filtered: 0 });
                }
                Early::Retry => {
                    if !retries.back_off(true).await {
                        return Err(Error::LoadFailed {
                            table: target.name.clone(),
                            label: label.to_owned(),
                            status: result.status.clone(),
                            message: result.message.clone(),
                        }
                        .into());
                    }
                }
                Early::RetryNow => {
                    // The earlier load holding the label was aborted: load again, but never
                    // spin if StarRocks keeps answering "label used" for a free label.
                    if !retries.back_off(true).await {
                        return Err(Error::LabelBusy {
                            label: label.to_owned(),
                            state: "reported free, yet refused as used".into(),
                            waited_s: 0,
                        }
                        .into());
                    }
                }
            },
        }
    }
}

/// The answer to a part whose body was streamed.
pub(crate) struct PartAnswer {
    /// What the BE answered.
    pub(crate) result: LoadResult,
    /// Rows in the part's body.
    pub(crate) rows: u64,
    /// `false` when the BE answered and closed before the body was complete (a refused
    /// load; `result` says why).
    pub(crate) complete: bool,
}

/// Streams one part's body on a connection that got `100 Continue`, then reads the answer.
pub(crate) async fn stream_part(
    loader: Loader<'_>,
    chunk: &Chunk,
    input: &mut Input,
    tc: &mut Transcoder,
    mut conn: Conn,
    stored: &mut u64,
) -> std::result::Result<PartAnswer, PumpError> {
    let rows_before = tc.rows();
    match pump(loader, chunk, input, tc, Out::Conn(&mut conn), stored).await {
        Ok(()) => {}
        Err(PumpError::Sink(e @ Error::Io { .. })) => {
            // The BE may have answered and closed mid-body (a refused load): its answer
            // says why, where the write error only says "reset".
            let answer =
                tokio::time::timeout(Duration::from_secs(2), read_final(loader, &mut conn)).await;
            if let Ok(Ok(result)) = answer {
                return Ok(PartAnswer { result, rows: tc.rows() - rows_before, complete: false });
            }
            return Err(e.into());
        }
        Err(e) => return Err(e),
    }
    let rows = tc.rows() - rows_before;
    let result = read_final(loader, &mut conn).await?;
    Ok(PartAnswer { result, rows, complete: true })
}

/// Reads the final answer of a load (skipping interim 1xx answers) and parses its JSON.
/// A gateway's 5xx is transient (the label makes a retry safe).
async fn read_final(loader: Loader<'_>, conn: &mut Conn) -> Result<LoadResult> {
    let wait = loader.options.load_timeout + loader.client.io_timeout();
    let head = loop {
        let head = conn.read_head(wait).await?;
        if !(100..200).contains(&head.status) {
            break head;
        }
    };
    let body = conn.read_body(&head).await?;
    if head.status >= 500 {
        return Err(Error::Io {
            address: conn.endpoint().to_string(),
            what: format!("Stream Load answered HTTP {}", head.status),
            source: std::io::Error::other(response::rest_message(&body)),
        });
    }
    LoadResult::parse(&body).ok_or_else(|| Error::Protocol {
        address: conn.endpoint().to_string(),
        message: format!(
            "HTTP {} with an unexpected body: {}",
            head.status,
            response::rest_message(&body)
        ),
    })
}

enum Early {
    AlreadyLoaded,
    Retry,
    RetryNow,
}

fn is_label_used(result: &LoadResult) -> bool {
    result.status.eq_ignore_ascii_case("Label Already Exists")
        || (result.status.eq_ignore_ascii_case("Fail")
            && result.message.contains("has already been used"))
}

/// Interprets an answer that came before the body was sent.
async fn early_answer(
    loader: Loader<'_>,
    target: &TargetTable,
    label: &str,
    result: &LoadResult,
) -> Result<Early> {
    if is_label_used(result) {
        if result.existing_job_status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("FINISHED"))
        {
            return Ok(Early::AlreadyLoaded);
        }
        return match loader.client.wait_for_label(label).await? {
            LabelFate::Loaded => Ok(Early::AlreadyLoaded),
            LabelFate::Free => Ok(Early::RetryNow),
        };
    }
    classify_failure(loader, target, label, result)?;
    Ok(Early::Retry)
}

/// Maps a failed result to an error, or `Ok(())` when retrying with the same label may help.
pub(crate) fn classify_failure(
    loader: Loader<'_>,
    target: &TargetTable,
    label: &str,
    result: &LoadResult,
) -> Result<()> {
    let msg = &result.message;
    let lower = msg.to_ascii_lowercase();
    if lower.contains("too many filtered rows") {
        return Err(Error::RowsRejected {
            table: target.name.clone(),
            label: label.to_owned(),
            message: msg.clone(),
            filtered: result.filtered_rows,
            total: result.total_rows,
            error_url: result.error_url.clone(),
        });
    }
    if lower.contains("aborted by timeout") || lower.contains("aborted by idle timeout") {
        // Retrying the same chunk with the same timeout would end the same way.
        return Err(Error::LoadRefused {
            table: target.name.clone(),
            label: label.to_owned(),
            message: format!(
                "{msg} (raise the load/transaction timeout, or use a smaller chunk size)"
            ),
        });
    }
    if lower.contains("unknown database")
        || (lower.contains("database[") && lower.contains("does not exist"))
    {
        return Err(Error::UnknownDatabase {
            database: loader.client.database().to_owned(),
            message: msg.clone(),
        });
    }
    if lower.contains("unknown table") {
        return Err(Error::UnknownTable {
            database: loader.client.database().to_owned(),
            table: target.name.clone(),
            message: msg.clone(),
        });
    }
    if lower.contains("privilege") {
        // "Access denied; you need (at least one of) the INSERT privilege(s)": this table only.
        return Err(Error::LoadRefused {
            table: target.name.clone(),
            label: label.to_owned(),
            message: format!("{msg} (grant INSERT on the table to {:?})", loader.client.user()),
        });
    }
    if lower.contains("access denied")
        || lower.contains("no valid basic authorization")
        || lower.contains("need auth information")
    {
        return Err(Error::Auth { user: loader.client.user().to_owned(), message: msg.clone() });
    }
    if lower.contains("no 100-continue header")
        || lower.contains("invalid timeout format")
        || lower.contains("invalid strict mode")
        || lower.contains("unknown data format")
        || lower.contains("exceed limit")
        || lower.contains("not supported")
    {
        return Err(Error::LoadRefused {
            table: target.name.clone(),
            label: label.to_owned(),
            message: msg.clone(),
        });
    }
    Ok(())
}

/// Applies the recipe to the answer of a load whose body was sent.
async fn finish_sent(
    loader: Loader<'_>,
    target: &TargetTable,
    label: &str,
    result: LoadResult,
    sent: u64,
) -> Result<PartOutcome> {
    let status = result.status.as_str();
    if status.eq_ignore_ascii_case("Success") || status.eq_ignore_ascii_case("Publish Timeout") {
        let counted = result.total_rows;
        if counted != sent {
            return Err(Error::RowCountMismatch {
                table: target.name.clone(),
                label: label.to_owned(),
                counted,
                sent,
                committed: true,
            });
        }
        if status.eq_ignore_ascii_case("Publish Timeout") {
            tracing::info!(label, "Publish Timeout: committed, visible shortly");
        }
        return Ok(PartOutcome { loaded: result.loaded_rows, filtered: result.filtered_rows });
    }
    if is_label_used(&result) {
        return match loader.client.wait_for_label(label).await? {
            LabelFate::Loaded => Ok(PartOutcome { loaded: sent, filtered: 0 }),
            LabelFate::Free => Err(Error::LoadFailed {
                table: target.name.clone(),
                label: label.to_owned(),
                status: result.status.clone(),
                message: "the earlier load holding the label was aborted; loading again".into(),
            }),
        };
    }
    classify_failure(loader, target, label, &result)?;
    Err(Error::LoadFailed {
        table: target.name.clone(),
        label: label.to_owned(),
        status: result.status,
        message: result.message,
    })
}

/// The headers of a Stream Load request.
fn load_headers(loader: Loader<'_>, target: &TargetTable, label: &str) -> Vec<(String, String)> {
    let mut h = loader.client.auth();
    h.push(("label".into(), label.to_owned()));
    h.extend(load_params(loader, target));
    h
}

/// The load parameters and format headers of a load (the same on every load of a table):
/// `timeout`, `max_filter_ratio`, `strict_mode` and the transcoder's format headers.
pub(crate) fn load_params(loader: Loader<'_>, target: &TargetTable) -> Vec<(String, String)> {
    let mut h = Vec::new();
    h.push(("timeout".into(), loader.options.load_timeout.as_secs().to_string()));
    h.push(("max_filter_ratio".into(), loader.options.max_filter_ratio.to_string()));
    h.push(("strict_mode".into(), loader.options.strict_mode.to_string()));
    for (k, v) in Transcoder::new(target).headers() {
        h.push((k.to_owned(), v));
    }
    if target.format == LoadFormat::Json {
        // A part stops after the row that reaches the part size, so one large row can take
        // it past StarRocks' 100 MB JSON cap; the Flink connector sends this header too.
        h.push(("ignore_json_size".into(), "true".into()));
    }
    h
}

/// Sends the request head (to the FE, following its 307 to a BE, or straight to a BE) and
/// waits for `100 Continue` or a final answer. No body byte is sent here.
async fn open_load(loader: Loader<'_>, target: &TargetTable, label: &str) -> Result<Opened> {
    let headers = load_headers(loader, target, label);
    let path = loader.client.stream_load_path(&target.name);
    let endpoint = match loader.client.pick_be() {
        Some(be) => be.clone(),
        None => loader.client.pick_fe().clone(),
    };
    let request = Request {
        method: "PUT",
        what: "Stream Load request",
        headers: &headers,
        framing: BodyFraming::Chunked,
        expect_continue: true,
        wait: loader.options.continue_timeout,
    };
    loader.client.open_request(endpoint, path, &request).await
}

/// Transcodes input into one part's body until the part is full or the input ends.
pub(crate) async fn pump(
    loader: Loader<'_>,
    chunk: &Chunk,
    input: &mut Input,
    tc: &mut Transcoder,
    mut out: Out<'_>,
    stored: &mut u64,
) -> std::result::Result<(), PumpError> {
    let limit = usize::try_from(max_part_bytes(loader)).unwrap_or(usize::MAX);
    let mut buf = BytesMut::with_capacity(FLUSH_BYTES + (64 << 10));
    let mut sent = 0u64;
    tc.begin(&mut buf);
    loop {
        if !input.has_more().await.map_err(PumpError::Source)? {
            break;
        }
        // At most FLUSH_BYTES of input at a time, so the buffer stays bounded.
        let take = input.pending.len().min(FLUSH_BYTES);
        let slice = input.pending.slice(..take);
        let pushed = tc
            .push_limited(&slice, &mut buf, limit)
            .map_err(|e| PumpError::Sink(Error::transcode(chunk, e)))?;
        bytes::Buf::advance(&mut input.pending, pushed.consumed);
        if buf.len() >= FLUSH_BYTES || pushed.body_full {
            sent += buf.len() as u64;
            if let Out::Conn(conn) = &mut out {
                conn.write_chunk(&buf).await?;
            }
            buf.clear();
        }
        if pushed.body_full {
            break;
        }
    }
    if !input.has_more().await.map_err(PumpError::Source)? {
        // The input ended: a partial last row means the data was cut short. Fail before the
        // body is closed, so StarRocks aborts this part instead of committing it short.
        tc.finish().map_err(|e| PumpError::Sink(Error::transcode(chunk, e)))?;
    }
    tc.finish_body(&mut buf);
    sent += buf.len() as u64;
    if let Out::Conn(conn) = &mut out {
        conn.write_chunk(&buf).await?;
        conn.finish_body().await?;
        *stored += sent;
    }
    Ok(())
}

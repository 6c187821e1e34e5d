//! One chunk through Stream Load: labels, the FE→BE redirect, `100 Continue`, streaming the
//! transcoded body, and the status recipe of spec §1.4.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pgsnap_core::{Chunk, ChunkReceipt, ChunkStream, LoadReceipt};

use crate::error::{Error, Result};
use crate::http::{self, BodyFraming, Conn, Endpoint};
use crate::mapping::{LoadFormat, TargetTable};
use crate::response::{self, LoadResult};
use crate::sink::StarRocksSink;
use crate::transcode::Transcoder;

/// Body bytes buffered before they are written to the connection.
const FLUSH_BYTES: usize = 1 << 20;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 4;

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

/// How a part ended.
struct PartOutcome {
    loaded: u64,
    filtered: u64,
}

/// What the first answer to a request said.
pub(crate) enum Opened {
    /// `100 Continue`: send the body on this connection.
    Continue(Conn),
    /// A final answer before any body byte.
    Answer(LoadResult),
}

/// Loads one non-empty chunk (see `StarRocksSink::write_chunk`), one Stream Load per part.
pub(crate) async fn load_chunk(
    sink: &StarRocksSink,
    target: &TargetTable,
    chunk: &Chunk,
    mut input: Input,
    mut tc: Transcoder,
) -> pgsnap_core::Result<ChunkReceipt> {
    let mut receipt = LoadReceipt::default();
    let mut part = 0u32;
    let mut stored = 0u64;
    loop {
        let label = sink.labeler()?.label(&chunk.table, chunk.id, part);
        let rows_before = tc.rows();
        let outcome =
            load_part(sink, target, chunk, &label, &mut input, &mut tc, &mut stored).await?;
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

fn max_part_bytes(sink: &StarRocksSink) -> u64 {
    sink.config.max_load_bytes.unwrap_or(match sink.config.format {
        LoadFormat::Json => 96 << 20,
        _ => 4 << 30,
    })
}

/// Loads one part: opens the load (retrying refusals that come before the body), streams
/// the body, and applies the status recipe.
async fn load_part(
    sink: &StarRocksSink,
    target: &TargetTable,
    chunk: &Chunk,
    label: &str,
    input: &mut Input,
    tc: &mut Transcoder,
    stored: &mut u64,
) -> pgsnap_core::Result<PartOutcome> {
    let mut attempt = 0u32;
    loop {
        let opened = match open_load(sink, target, label).await {
            Ok(o) => o,
            Err(e) if e.is_retryable() && attempt < sink.config.retry.max_retries() => {
                tracing::warn!(label, error = %e, "load not started; retrying");
                tokio::time::sleep(sink.config.retry.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match opened {
            Opened::Continue(conn) => {
                let answer = match stream_part(sink, chunk, input, tc, conn, stored).await {
                    Ok(a) => a,
                    Err(PumpError::Source(e)) => return Err(e),
                    Err(PumpError::Sink(e)) => return Err(e.into()),
                };
                if !answer.complete {
                    classify_failure(sink, target, label, &answer.result)?;
                    return Err(Error::LoadFailed {
                        table: target.name.clone(),
                        label: label.to_owned(),
                        status: answer.result.status,
                        message: answer.result.message,
                    }
                    .into());
                }
                return finish_sent(sink, target, label, answer.result, answer.rows)
                    .await
                    .map_err(Into::into);
            }
            Opened::Answer(result) => match early_answer(sink, target, label, &result).await? {
                Early::AlreadyLoaded => {
                    // Skip this part's rows; they are in StarRocks under this label.
                    let rows_before = tc.rows();
                    match pump(sink, chunk, input, tc, Out::Discard, stored).await {
                        Ok(()) => {}
                        Err(PumpError::Source(e)) => return Err(e),
                        Err(PumpError::Sink(e)) => return Err(e.into()),
                    }
                    let rows = tc.rows() - rows_before;
                    tracing::info!(label, rows, "part already loaded under its label; skipped");
                    return Ok(PartOutcome { loaded: rows, filtered: 0 });
                }
                Early::Retry => {
                    if attempt >= sink.config.retry.max_retries() {
                        return Err(Error::LoadFailed {
                            table: target.name.clone(),
                            label: label.to_owned(),
                            status: result.status.clone(),
                            message: result.message.clone(),
                        }
                        .into());
                    }
                    tokio::time::sleep(sink.config.retry.backoff(attempt)).await;
                    attempt += 1;
                }
                Early::RetryNow => {
                    // The earlier load holding the label was aborted: load again, but never
                    // spin if StarRocks keeps answering "label used" for a free label.
                    if attempt >= sink.config.retry.max_retries() {
                        return Err(Error::LabelBusy {
                            label: label.to_owned(),
                            state: "reported free, yet refused as used".into(),
                            waited_s: 0,
                        }
                        .into());
                    }
                    tokio::time::sleep(sink.config.retry.backoff(attempt)).await;
                    attempt += 1;
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
    sink: &StarRocksSink,
    chunk: &Chunk,
    input: &mut Input,
    tc: &mut Transcoder,
    mut conn: Conn,
    stored: &mut u64,
) -> std::result::Result<PartAnswer, PumpError> {
    let rows_before = tc.rows();
    match pump(sink, chunk, input, tc, Out::Conn(&mut conn), stored).await {
        Ok(()) => {}
        Err(PumpError::Sink(e @ Error::Io { .. })) => {
            // The BE may have answered and closed mid-body (a refused load): its answer
            // says why, where the write error only says "reset".
            let answer =
                tokio::time::timeout(Duration::from_secs(2), read_final(sink, &mut conn)).await;
            if let Ok(Ok(result)) = answer {
                return Ok(PartAnswer { result, rows: tc.rows() - rows_before, complete: false });
            }
            return Err(e.into());
        }
        Err(e) => return Err(e),
    }
    let rows = tc.rows() - rows_before;
    let result = read_final(sink, &mut conn).await?;
    Ok(PartAnswer { result, rows, complete: true })
}

/// Reads the final answer of a load (skipping interim 1xx answers) and parses its JSON.
/// A gateway's 5xx is transient (the label makes a retry safe).
async fn read_final(sink: &StarRocksSink, conn: &mut Conn) -> Result<LoadResult> {
    let wait = sink.config.load_timeout + sink.config.io_timeout;
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
    sink: &StarRocksSink,
    target: &TargetTable,
    label: &str,
    result: &LoadResult,
) -> Result<Early> {
    if is_label_used(result) {
        if result.existing_job_status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("FINISHED"))
        {
            return Ok(Early::AlreadyLoaded);
        }
        return match wait_for_label(sink, label).await? {
            LabelFate::Loaded => Ok(Early::AlreadyLoaded),
            LabelFate::Free => Ok(Early::RetryNow),
        };
    }
    classify_failure(sink, target, label, result)?;
    Ok(Early::Retry)
}

/// Maps a failed result to an error, or `Ok(())` when retrying with the same label may help.
pub(crate) fn classify_failure(
    sink: &StarRocksSink,
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
            database: sink.config.database.clone(),
            message: msg.clone(),
        });
    }
    if lower.contains("unknown table") {
        return Err(Error::UnknownTable {
            database: sink.config.database.clone(),
            table: target.name.clone(),
            message: msg.clone(),
        });
    }
    if lower.contains("privilege") {
        // "Access denied; you need (at least one of) the INSERT privilege(s)": this table only.
        return Err(Error::LoadRefused {
            table: target.name.clone(),
            label: label.to_owned(),
            message: format!("{msg} (grant INSERT on the table to {:?})", sink.config.user),
        });
    }
    if lower.contains("access denied")
        || lower.contains("no valid basic authorization")
        || lower.contains("need auth information")
    {
        return Err(Error::Auth { user: sink.config.user.clone(), message: msg.clone() });
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
    sink: &StarRocksSink,
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
        return match wait_for_label(sink, label).await? {
            LabelFate::Loaded => Ok(PartOutcome { loaded: sent, filtered: 0 }),
            LabelFate::Free => Err(Error::LoadFailed {
                table: target.name.clone(),
                label: label.to_owned(),
                status: result.status.clone(),
                message: "the earlier load holding the label was aborted; loading again".into(),
            }),
        };
    }
    classify_failure(sink, target, label, &result)?;
    Err(Error::LoadFailed {
        table: target.name.clone(),
        label: label.to_owned(),
        status: result.status,
        message: result.message,
    })
}

pub(crate) enum LabelFate {
    /// COMMITTED or VISIBLE: the data is in.
    Loaded,
    /// ABORTED or unknown: the label is free again.
    Free,
}

/// Polls `get_load_state` until the label's transaction settles (spec §1.4: 0,1,…,5 s
/// sleeps, as the Flink SDK).
pub(crate) async fn wait_for_label(sink: &StarRocksSink, label: &str) -> Result<LabelFate> {
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        let state = get_load_state(sink, label).await?;
        match state.as_str() {
            "VISIBLE" | "COMMITTED" => return Ok(LabelFate::Loaded),
            "ABORTED" | "UNKNOWN" => return Ok(LabelFate::Free),
            _ => {}
        }
        if started.elapsed() >= sink.config.retry.label_wait() {
            return Err(Error::LabelBusy {
                label: label.to_owned(),
                state,
                waited_s: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_secs(n.min(5))).await;
        n += 1;
    }
}

/// Asks the FE for the state of a label no load uses: proves the HTTP port answers and
/// accepts the credentials.
pub(crate) async fn probe_label_state(sink: &StarRocksSink) -> Result<()> {
    let label = format!("{}-probe", sink.config.label_prefix);
    get_load_state(sink, &label).await.map(drop)
}

pub(crate) async fn get_load_state(sink: &StarRocksSink, label: &str) -> Result<String> {
    let mut endpoint = pick(sink, &sink.fes).clone();
    let mut path =
        format!("/api/{}/get_load_state?label={}", encode(&sink.config.database), encode(label));
    for _ in 0..MAX_REDIRECTS {
        let mut conn = connect(sink, &endpoint).await?;
        conn.send_head("GET", &path, &auth(sink), BodyFraming::Empty, false).await?;
        let head = conn.read_head(sink.config.io_timeout).await?;
        let body = conn.read_body(&head).await?;
        match head.status {
            200 => {
                if let Some(state) = response::load_state(&body) {
                    return Ok(state);
                }
                let message = response::rest_message(&body);
                let lower = message.to_ascii_lowercase();
                return Err(if lower.contains("unknown database") {
                    Error::UnknownDatabase { database: sink.config.database.clone(), message }
                } else if lower.contains("access denied") {
                    Error::Auth { user: sink.config.user.clone(), message }
                } else {
                    Error::Protocol {
                        address: endpoint.to_string(),
                        message: format!("get_load_state: {message}"),
                    }
                });
            }
            301 | 302 | 307 | 308 => {
                (endpoint, path) = follow(sink, &endpoint, &head)?;
            }
            401 => {
                return Err(Error::Auth {
                    user: sink.config.user.clone(),
                    message: response::rest_message(&body),
                });
            }
            s => {
                return Err(Error::Protocol {
                    address: endpoint.to_string(),
                    message: format!(
                        "get_load_state answered HTTP {s}: {}",
                        response::rest_message(&body)
                    ),
                });
            }
        }
    }
    Err(Error::Protocol { address: endpoint.to_string(), message: "too many redirects".into() })
}

async fn connect(sink: &StarRocksSink, endpoint: &Endpoint) -> Result<Conn> {
    http::connect(endpoint, sink.tls.as_ref(), sink.config.connect_timeout, sink.config.io_timeout)
        .await
}

pub(crate) fn auth(sink: &StarRocksSink) -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), sink.auth_header.clone())]
}

/// Round-robin over a list of endpoints.
pub(crate) fn pick<'a>(sink: &StarRocksSink, list: &'a [Endpoint]) -> &'a Endpoint {
    let i = sink.next_endpoint.fetch_add(1, Ordering::Relaxed);
    &list[i % list.len()]
}

/// Follows a redirect, refusing HTTPS → HTTP unless allowed.
fn follow(sink: &StarRocksSink, from: &Endpoint, head: &http::Head) -> Result<(Endpoint, String)> {
    let location = head.header("location").ok_or_else(|| Error::Protocol {
        address: from.to_string(),
        message: format!("HTTP {} without a Location", head.status),
    })?;
    let (to, path) = Endpoint::parse_location(location).map_err(|m| Error::Protocol {
        address: from.to_string(),
        message: format!("bad redirect: {m}"),
    })?;
    if from.https && !to.https && !sink.config.allow_insecure_redirect {
        return Err(Error::InsecureRedirect { from: from.to_string(), to: to.to_string() });
    }
    Ok((to, path))
}

/// The headers of a Stream Load request.
fn load_headers(sink: &StarRocksSink, target: &TargetTable, label: &str) -> Vec<(String, String)> {
    let mut h = auth(sink);
    h.push(("label".into(), label.to_owned()));
    h.extend(load_params(sink, target));
    h
}

/// The load parameters and format headers of a load (the same on every load of a table):
/// `timeout`, `max_filter_ratio`, `strict_mode` and the transcoder's format headers.
pub(crate) fn load_params(sink: &StarRocksSink, target: &TargetTable) -> Vec<(String, String)> {
    let mut h = Vec::new();
    h.push(("timeout".into(), sink.config.load_timeout.as_secs().to_string()));
    h.push(("max_filter_ratio".into(), sink.config.max_filter_ratio.to_string()));
    h.push(("strict_mode".into(), sink.config.strict_mode.to_string()));
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
async fn open_load(sink: &StarRocksSink, target: &TargetTable, label: &str) -> Result<Opened> {
    let headers = load_headers(sink, target, label);
    let path =
        format!("/api/{}/{}/_stream_load", encode(&sink.config.database), encode(&target.name));
    let list = if sink.bes.is_empty() { &sink.fes } else { &sink.bes };
    let endpoint = pick(sink, list).clone();
    let request = Request {
        method: "PUT",
        what: "Stream Load request",
        headers: &headers,
        framing: BodyFraming::Chunked,
        expect_continue: true,
        wait: sink.config.continue_timeout,
    };
    open_request(sink, endpoint, path, &request).await
}

/// How [`open_request`] sends a request.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// Names the request in errors ("Stream Load request").
    pub(crate) what: &'a str,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) framing: BodyFraming,
    pub(crate) expect_continue: bool,
    /// How long to wait for the first answer.
    pub(crate) wait: Duration,
}

/// Sends a request head to `endpoint`, following redirects by hand (keeping every header,
/// `Authorization` included), and returns the first answer: `100 Continue` (send the body
/// on this connection) or a final JSON answer. No body byte is sent here: a redirect comes
/// before any, and its connection is dropped.
pub(crate) async fn open_request(
    sink: &StarRocksSink,
    mut endpoint: Endpoint,
    mut path: String,
    request: &Request<'_>,
) -> Result<Opened> {
    let what = request.what;
    for _ in 0..MAX_REDIRECTS {
        let mut conn = connect(sink, &endpoint).await?;
        conn.send_head(
            request.method,
            &path,
            request.headers,
            request.framing,
            request.expect_continue,
        )
        .await?;
        let head = conn.read_head(request.wait).await?;
        match head.status {
            100 => return Ok(Opened::Continue(conn)),
            301 | 302 | 307 | 308 => {
                // The connection is dropped without a body byte (the FE closes it anyway).
                (endpoint, path) = follow(sink, &endpoint, &head)?;
            }
            401 | 403 => {
                let body = conn.read_body(&head).await.unwrap_or_default();
                return Err(Error::Auth {
                    user: sink.config.user.clone(),
                    message: response::rest_message(&body),
                });
            }
            200 => {
                let body = conn.read_body(&head).await?;
                return LoadResult::parse(&body).map(Opened::Answer).ok_or_else(|| {
                    Error::Protocol {
                        address: endpoint.to_string(),
                        message: format!("unexpected answer: {}", response::rest_message(&body)),
                    }
                });
            }
            s if s >= 500 => {
                return Err(Error::Io {
                    address: endpoint.to_string(),
                    what: format!("{what} answered HTTP {s}"),
                    source: std::io::Error::other("server error"),
                });
            }
            s => {
                let body = conn.read_body(&head).await.unwrap_or_default();
                return Err(Error::Protocol {
                    address: endpoint.to_string(),
                    message: format!("{what} answered HTTP {s}: {}", response::rest_message(&body)),
                });
            }
        }
    }
    Err(Error::Protocol { address: endpoint.to_string(), message: "too many redirects".into() })
}

/// Transcodes input into one part's body until the part is full or the input ends.
pub(crate) async fn pump(
    sink: &StarRocksSink,
    chunk: &Chunk,
    input: &mut Input,
    tc: &mut Transcoder,
    mut out: Out<'_>,
    stored: &mut u64,
) -> std::result::Result<(), PumpError> {
    let limit = usize::try_from(max_part_bytes(sink)).unwrap_or(usize::MAX);
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

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_path_segments() {
        assert_eq!(encode("my db/ü"), "my%20db%2F%C3%BC");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
    }
}

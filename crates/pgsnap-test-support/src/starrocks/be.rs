//! The BE HTTP server of the test double: Stream Load (spec §1.1 steps 6–8, §5.2), the error
//! log endpoint, and the transaction interface (§2, in `txn.rs`).

use std::sync::Arc;

use tokio::net::TcpListener;

use super::catalog::TxnState;
use super::http::{BodyError, BodyKind, Conn, Request, url_decode};
use super::load::{self, Format, LoadParams, Plan};
use super::txn::{self, BeginError, Next};
use super::{DuplicateLabelStyle, Fault, FaultSite, LoadRecord, Shared};

/// A writer for rapidjson-`PrettyWriter`-style objects: one key per line, 4-space indent,
/// `"key": value` (§1.3).
#[derive(Debug)]
pub(crate) struct PrettyJson {
    out: String,
    first: bool,
}

impl PrettyJson {
    pub(crate) fn new() -> Self {
        PrettyJson { out: "{".to_owned(), first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push_str("\n    ");
        self.out.push_str(&serde_json::Value::String(key.to_owned()).to_string());
        self.out.push_str(": ");
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(&serde_json::Value::String(value.to_owned()).to_string());
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        self.out.push_str(&value.to_string());
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("\n}");
        self.out
    }
}

/// The Stream Load result (`StreamLoadContext::to_json`, §1.3).
#[derive(Debug, Clone)]
struct LoadResult {
    txn_id: i64,
    label: String,
    status: &'static str,
    existing: Option<&'static str>,
    message: String,
    total: u64,
    loaded: u64,
    filtered: u64,
    load_bytes: u64,
    load_time_ms: u64,
    error_url: Option<String>,
}

impl LoadResult {
    fn new(label: &str) -> Self {
        LoadResult {
            txn_id: -1,
            label: label.to_owned(),
            status: "Fail",
            existing: None,
            message: String::new(),
            total: 0,
            loaded: 0,
            filtered: 0,
            load_bytes: 0,
            load_time_ms: 0,
            error_url: None,
        }
    }

    /// Key order exactly as §1.3: TxnId, Label, Status, [ExistingJobStatus], Message, counters,
    /// timings, [ErrorURL].
    fn to_json(&self) -> String {
        let mut w = PrettyJson::new();
        w.int("TxnId", self.txn_id);
        w.str("Label", &self.label);
        w.str("Status", self.status);
        if let Some(e) = self.existing {
            w.str("ExistingJobStatus", e);
        }
        w.str("Message", &self.message);
        w.int("NumberTotalRows", self.total as i64);
        w.int("NumberLoadedRows", self.loaded as i64);
        w.int("NumberFilteredRows", self.filtered as i64);
        w.int("NumberUnselectedRows", 0);
        w.int("LoadBytes", self.load_bytes as i64);
        w.int("LoadTimeMs", self.load_time_ms as i64);
        w.int("BeginTxnTimeMs", 0);
        w.int("StreamLoadPlanTimeMs", 0);
        w.int("ReadDataTimeMs", 0);
        w.int("WriteDataTimeMs", 0);
        w.int("CommitAndPublishTimeMs", 0);
        if let Some(url) = &self.error_url {
            w.str("ErrorURL", url);
        }
        w.finish()
    }
}

/// Accepts BE connections until the double is dropped.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    shared.accept_loop(listener, handle_conn).await;
}

async fn handle_conn(mut conn: Conn, shared: Arc<Shared>) {
    loop {
        let Some(req) = conn.next_request().await else { return };
        let next = route(&mut conn, &req, &shared).await;
        if next == Next::Abort {
            return;
        }
        if next == Next::Close || req.wants_close() {
            conn.shutdown().await;
            conn.drain_for(shared.options.fe_drain_window).await;
            return;
        }
    }
}

async fn route(conn: &mut Conn, req: &Request, shared: &Arc<Shared>) -> Next {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let pending_body = !matches!(req.body_kind(), Ok(BodyKind::Empty));
    match (req.method.as_str(), segments.as_slice()) {
        ("PUT", ["api", db, table, "_stream_load"]) => {
            stream_load(conn, req, url_decode(db), url_decode(table), shared).await
        }
        ("GET", ["api", "_load_error_log"]) => {
            let file = req.query_param("file").unwrap_or_default();
            let log = shared.state().error_logs.get(&file).cloned();
            let (status, reason, body) = match log {
                Some(text) => (200, "OK", text),
                None => (404, "Not Found", "Not Found".to_owned()),
            };
            let headers = [("Content-Type", "text/plain; charset=UTF-8".to_owned())];
            match conn.send_response(status, reason, &headers, body.as_bytes(), false).await {
                Ok(()) => Next::KeepAlive,
                Err(_) => Next::Close,
            }
        }
        ("POST" | "PUT", ["api", "transaction", op]) => txn::be_handle(conn, req, op, shared).await,
        _ => {
            // An unknown BE path: 404 `Not Found` (§1.1 step 8, src EHS).
            let _ = conn.send_response(404, "Not Found", &[], b"Not Found", pending_body).await;
            if pending_body { Next::Close } else { Next::KeepAlive }
        }
    }
}

/// Writes the result; `close` when the connection must not be reused.
async fn respond(conn: &mut Conn, result: &LoadResult, close: bool) -> Next {
    let body = result.to_json();
    let headers = [("Content-Type", "text/plain; charset=UTF-8".to_owned())];
    if conn.send_response(200, "OK", &headers, body.as_bytes(), close).await.is_err() || close {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

/// One BE Stream Load (§1.1 steps 6–8).
async fn stream_load(
    conn: &mut Conn,
    req: &Request,
    db: String,
    table: String,
    shared: &Arc<Shared>,
) -> Next {
    let started = std::time::Instant::now();
    let opts = &shared.options;
    let label_header = req.header_nonempty("label").map(str::to_owned);
    let label = label_header.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let fault = shared.take_fault(FaultSite::Be, &table, label_header.as_deref());
    let mut result = LoadResult::new(&label);
    let mut record = LoadRecord {
        label: label.clone(),
        db: db.clone(),
        table: table.clone(),
        txn_id: -1,
        status: String::new(),
        message: String::new(),
        sent_continue: false,
        body_bytes: 0,
        loaded_rows: 0,
        filtered_rows: 0,
        fault: fault.clone(),
    };
    let body_kind = match req.body_kind() {
        Ok(k) => k,
        Err(e) => {
            result.message = format!("test double: {e}");
            return finish(conn, shared, result, record, true).await;
        }
    };
    // A body announced but not read: close after the answer, so a body the client sends
    // anyway is not taken for the next request.
    let pending_body = body_kind != BodyKind::Empty;

    // 1. `on_header` checks before begin (src SL `on_header` / `_on_header`).
    let pre = (|| -> Result<(Format, load::Compression, (String, String)), String> {
        if fault == Some(Fault::Busy) {
            return Err(
                "Stream Load exceed http cuncurrent limit 100, please try again later".into()
            );
        }
        let auth = req.basic_auth().ok_or("no valid Basic authorization")?;
        let content_length = req.content_length();
        if let Some(n) = content_length.filter(|n| *n > opts.max_body_bytes) {
            return Err(format!(
                "body size {n} exceed limit: {}, id={}, job_id=-1, txn_id=-1, label={label}. You \
                 can increase the limit by setting streaming_load_max_mb in be.conf.",
                opts.max_body_bytes,
                uuid::Uuid::new_v4().simple()
            ));
        }
        let format_header = req.header_nonempty("format");
        let (format, compression) = load::parse_format(format_header)?;
        let ignore_json_size =
            req.header_nonempty("ignore_json_size").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if format == Format::Json
            && format_header.is_some()
            && !ignore_json_size
            && let Some(n) = content_length.filter(|n| *n > opts.max_json_bytes)
        {
            {
                return Err(format!(
                    "The size of this batch exceed the max size [{}]  of json type data  data [ \
                     {n} ]. Set ignore_json_size to skip the check, although it may lead huge \
                     memory consuming.",
                    opts.max_json_bytes
                ));
            }
        }
        load::parse_timeout(req.header_nonempty("timeout"))?;
        Ok((format, compression, auth))
    })();
    let (format, compression, (user, password)) = match pre {
        Ok(p) => p,
        Err(msg) => {
            result.message = msg;
            return finish(conn, shared, result, record, pending_body).await;
        }
    };

    // 2. begin (the FE's checks: password, database, table, label; §1.4).
    let begun = (|| -> Result<i64, (Option<TxnState>, String)> {
        if user != opts.user || password != opts.password {
            return Err((None, format!("Access denied for {user}@{}", conn.peer.ip())));
        }
        if !txn::label_ok(&label) {
            return Err((
                None,
                format!(
                    "test double: label '{label}' does not match ^[-\\w]{{1,128}}$ (whether \
                     StarRocks enforces it for Stream Load is unconfirmed)"
                ),
            ));
        }
        if fault == Some(Fault::UnknownTable) {
            return Err((None, format!("unknown table \"{db}.{table}\"")));
        }
        let mut cat = shared.catalog.lock();
        txn::begin(&mut cat, &db, &table, &label).map_err(|e| match e {
            BeginError::Analysis(m) => (None, m),
            BeginError::LabelUsed(state) => (Some(state), txn::label_used_message(&label)),
        })
    })();
    let txn_id = match begun {
        Ok(id) => id,
        Err((label_state, msg)) => {
            if let Some(state) = label_state
                && opts.duplicate_label_style == DuplicateLabelStyle::AlreadyExists
            {
                result.status = "Label Already Exists";
                result.existing = Some(txn::existing_job_status(state));
            }
            result.message = msg;
            return finish(conn, shared, result, record, pending_body).await;
        }
    };
    result.txn_id = txn_id;
    record.txn_id = txn_id;

    // 3. The remaining header checks and the plan (`_process_put`; the txn is rolled back on
    //    failure).
    let table_def = {
        let cat = shared.catalog.lock();
        cat.databases.get(&db).and_then(|d| d.tables.get(&table.to_lowercase())).cloned()
    };
    let plan = LoadParams::from_request(req, format, compression).and_then(|params| {
        let table_def = table_def.ok_or_else(|| format!("unknown table \"{db}.{table}\""))?;
        Plan::new(&table_def, &params)
    });
    let plan = match plan {
        Ok(p) => p,
        Err(msg) => {
            txn::abort(&mut shared.catalog.lock(), &db, txn_id);
            result.message = msg;
            return finish(conn, shared, result, record, pending_body).await;
        }
    };

    // 4. Only now `100 Continue` (and only when asked for).
    if req.expects_continue() {
        if conn.send_continue().await.is_err() {
            txn::abort(&mut shared.catalog.lock(), &db, txn_id);
            record.status = "no response: connection lost before the body".into();
            shared.record_load(record);
            return Next::Close;
        }
        record.sent_continue = true;
    }

    // 5. The body.
    let stop_after = match fault {
        Some(Fault::ResetMidBody { after_bytes }) => Some(after_bytes),
        _ => None,
    };
    let body = match conn.read_body(body_kind, opts.max_body_bytes, stop_after).await {
        Ok(b) => b,
        Err(e) => {
            txn::abort(&mut shared.catalog.lock(), &db, txn_id);
            let message = match e {
                BodyError::Stopped { received } => {
                    record.body_bytes = received;
                    record.status = "no response: connection reset (injected)".into();
                    record.message = format!("closed after {received} body bytes");
                    shared.record_load(record);
                    return Next::Abort;
                }
                BodyError::Short { received } => {
                    result.load_bytes = received;
                    "receive body don't equal with body bytes".to_owned()
                }
                BodyError::TooLarge { received } => format!(
                    "body size {received} exceed limit: {}, label={label}. You can increase the \
                     limit by setting streaming_load_max_mb in be.conf.",
                    opts.max_body_bytes
                ),
                BodyError::Malformed(m) => format!("test double: malformed chunked body: {m}"),
                BodyError::Io(e) => format!("test double: reading the body failed: {e}"),
            };
            record.body_bytes = result.load_bytes;
            result.message = message;
            return finish(conn, shared, result, record, true).await;
        }
    };
    result.load_bytes = body.len() as u64;
    record.body_bytes = body.len() as u64;
    if matches!(body_kind, BodyKind::Length(_)) && conn.has_trailing_garbage() {
        // The client sent more than its Content-Length.
        txn::abort(&mut shared.catalog.lock(), &db, txn_id);
        result.message = "receive body don't equal with body bytes".into();
        return finish(conn, shared, result, record, true).await;
    }
    let close_after = req.wants_close();

    // 6. Parse, filter, commit.
    let parsed = load::decompress(compression_of(&plan), body)
        .and_then(|d| load::parse_body(&plan, &d, false));
    let parsed = match parsed {
        Ok(p) => p,
        Err(msg) => {
            txn::abort(&mut shared.catalog.lock(), &db, txn_id);
            result.message = msg;
            slow(&fault).await;
            return finish(conn, shared, result, record, close_after).await;
        }
    };
    result.total = parsed.total();
    result.filtered = parsed.filtered.len() as u64;
    result.loaded = parsed.rows.len() as u64;
    let mut log_lines: Vec<String> =
        parsed.filtered.iter().map(|f| format!("Error: {}. Row: {}", f.reason, f.raw)).collect();
    if fault == Some(Fault::TooManyFiltered) {
        log_lines.insert(0, "test double: injected fault TooManyFiltered".into());
        result.filtered = result.total;
        result.loaded = 0;
    }
    if !log_lines.is_empty() {
        result.error_url = Some(shared.add_error_log(txn_id, &log_lines));
    }
    let too_many = fault == Some(Fault::TooManyFiltered)
        || (result.filtered > 0
            && result.filtered as f64 / result.total as f64 > plan.params().max_filter_ratio);
    if too_many {
        txn::abort(&mut shared.catalog.lock(), &db, txn_id);
        result.message = "too many filtered rows".into();
        slow(&fault).await;
        return finish(conn, shared, result, record, close_after).await;
    }
    {
        let mut cat = shared.catalog.lock();
        if let Some(t) = cat.databases.get_mut(&db).and_then(|d| d.txns.get_mut(&txn_id)) {
            t.total_rows = result.total;
            t.filtered_rows = result.filtered;
            t.load_bytes = result.load_bytes;
            t.pending_rows = parsed.rows;
        }
    }
    let visible_after = match fault {
        Some(Fault::PublishTimeout { visible_after }) => Some(visible_after),
        _ => None,
    };
    txn::commit(shared, &db, txn_id, visible_after);
    if visible_after.is_some() {
        result.status = "Publish Timeout";
        result.message = "transaction commit successfully, BUT data will be visible later".into();
    } else {
        result.status = "Success";
        result.message = "OK".into();
    }
    if fault == Some(Fault::DropAfterCommit) {
        record.status = format!("no response: dropped after commit ({})", result.status);
        record.message = result.message.clone();
        record.loaded_rows = result.loaded;
        record.filtered_rows = result.filtered;
        shared.record_load(record);
        return Next::Abort;
    }
    slow(&fault).await;
    result.load_time_ms = started.elapsed().as_millis() as u64;
    finish(conn, shared, result, record, close_after).await
}

fn compression_of(plan: &Plan) -> load::Compression {
    plan.params().compression
}

async fn slow(fault: &Option<Fault>) {
    if let Some(Fault::Slow { delay }) = fault {
        tokio::time::sleep(*delay).await;
    }
}

/// Records the attempt and sends the answer.
async fn finish(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    result: LoadResult,
    mut record: LoadRecord,
    close: bool,
) -> Next {
    record.status = result.status.to_owned();
    record.message = result.message.clone();
    record.loaded_rows = result.loaded;
    record.filtered_rows = result.filtered;
    if record.body_bytes == 0 {
        record.body_bytes = result.load_bytes;
    }
    shared.record_load(record);
    respond(conn, &result, close).await
}

//! Load transactions: begin / abort / commit / visible for Stream Load, and the Stream Load
//! transaction interface (spec §2: `/api/transaction/{begin,load,prepare,commit,rollback}`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::{CatalogState, Cell, KeysType, PendingRow, TableDef, Txn, TxnState};
use super::http::{BodyError, BodyKind, Conn, Request};
use super::load::{self, LoadParams, Plan};
use super::{DoubleState, DuplicateLabelStyle, Shared, StarRocksOptions};

/// Whether to keep the connection after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close the connection gracefully (FIN, then read and discard what still arrives for a
    /// moment, so that the client can read the answer instead of getting a reset).
    Close,
    /// Drop the connection at once (fault injection: no answer).
    Abort,
}

/// Transaction-interface bookkeeping for one transaction.
#[derive(Debug, Clone)]
pub(crate) struct TxnExtra {
    db: String,
    table: String,
    /// Still in the BE's stream-context manager (between begin and prepare/commit/rollback).
    in_be_ctx: bool,
    timeout: Duration,
    idle_timeout: Option<Duration>,
    prepared_timeout: Duration,
    begin_at: Instant,
    last_active: Instant,
    prepared_at: Option<Instant>,
    in_processing: bool,
    has_data: bool,
    /// The format headers of the first `load` (every `load` must repeat them, §2.1).
    load_headers: Option<Vec<(String, String)>>,
    plan: Option<Plan>,
    error_lines: Vec<String>,
    /// Why it was aborted, if it was.
    abort_reason: Option<String>,
}

/// Why a begin failed.
#[derive(Debug)]
pub(crate) enum BeginError {
    /// `unknown database, database=<db>` / `unknown table "<db>.<tbl>"` and the like.
    Analysis(String),
    /// The label is held by a non-aborted transaction in that state.
    LabelUsed(TxnState),
}

/// The transaction holding `label` in `db`: the non-aborted one, else the latest aborted one.
pub(crate) fn find_label<'a>(cat: &'a CatalogState, db: &str, label: &str) -> Option<&'a Txn> {
    let database = cat.databases.get(db)?;
    database.active_txn(label).or_else(|| database.txns.values().rev().find(|t| t.label == label))
}

/// `Label [<l>] has already been used.` (spec §1.3).
pub(crate) fn label_used_message(label: &str) -> String {
    format!("Label [{label}] has already been used.")
}

/// `RUNNING` for PREPARE/PREPARED, `FINISHED` for COMMITTED/VISIBLE (spec §1.3, src LAUE).
pub(crate) fn existing_job_status(state: TxnState) -> &'static str {
    match state {
        TxnState::Committed | TxnState::Visible => "FINISHED",
        _ => "RUNNING",
    }
}

/// Whether a label matches `^[-\w]{1,128}$` (spec §1.2; enforcement by Stream Load is
/// UNCONFIRMED, so the double enforces it).
pub(crate) fn label_ok(label: &str) -> bool {
    (1..=128).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Begins a transaction in PREPARE (the FE side of begin, §1.4).
pub(crate) fn begin(
    cat: &mut CatalogState,
    db: &str,
    table: &str,
    label: &str,
) -> Result<i64, BeginError> {
    let Some(database) = cat.databases.get(db) else {
        return Err(BeginError::Analysis(format!("unknown database, database={db}")));
    };
    if !database.tables.contains_key(&table.to_lowercase()) {
        return Err(BeginError::Analysis(format!("unknown table \"{db}.{table}\"")));
    }
    if let Some(t) = database.active_txn(label) {
        return Err(BeginError::LabelUsed(t.state));
    }
    let id = cat.alloc_txn_id();
    let database = cat.databases.get_mut(db).expect("checked above");
    database.txns.insert(
        id,
        Txn {
            id,
            label: label.to_owned(),
            table: table.to_owned(),
            state: TxnState::Prepare,
            pending_rows: Vec::new(),
            applied_rows: Vec::new(),
            total_rows: 0,
            filtered_rows: 0,
            load_bytes: 0,
        },
    );
    Ok(id)
}

fn txn_mut<'a>(cat: &'a mut CatalogState, db: &str, id: i64) -> Option<&'a mut Txn> {
    cat.databases.get_mut(db)?.txns.get_mut(&id)
}

/// Aborts a transaction (frees its label); its pending rows are dropped.
pub(crate) fn abort(cat: &mut CatalogState, db: &str, id: i64) {
    if let Some(t) = txn_mut(cat, db, id)
        && matches!(t.state, TxnState::Prepare | TxnState::Prepared)
    {
        t.state = TxnState::Aborted;
        t.pending_rows.clear();
    }
}

/// Applies rows to a table: Primary Key tables upsert by key (`delete` rows remove their key),
/// other tables append.
pub(crate) fn apply_rows(table: &mut TableDef, rows: Vec<PendingRow>) {
    match table.keys_type {
        KeysType::Duplicate => table.rows.extend(rows.into_iter().map(|r| r.cells)),
        KeysType::Primary => {
            let mut key_idx: Vec<usize> = table
                .key_columns
                .iter()
                .filter_map(|k| table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(k)))
                .collect();
            if key_idx.is_empty() {
                key_idx.push(0);
            }
            let key_of = |cells: &[Cell]| -> Vec<Cell> {
                key_idx.iter().map(|i| cells.get(*i).cloned().flatten()).collect()
            };
            let mut stored: Vec<Option<Vec<Cell>>> =
                std::mem::take(&mut table.rows).into_iter().map(Some).collect();
            let mut index: HashMap<Vec<Cell>, usize> = HashMap::new();
            for (i, row) in stored.iter().enumerate() {
                if let Some(r) = row {
                    index.insert(key_of(r), i);
                }
            }
            for row in rows {
                let key = key_of(&row.cells);
                if row.delete {
                    if let Some(i) = index.remove(&key) {
                        stored[i] = None;
                    }
                } else if let Some(&i) = index.get(&key) {
                    stored[i] = Some(row.cells);
                } else {
                    index.insert(key, stored.len());
                    stored.push(Some(row.cells));
                }
            }
            table.rows = stored.into_iter().flatten().collect();
        }
    }
}

/// Makes a COMMITTED transaction VISIBLE: applies its rows, after those of earlier COMMITTED
/// transactions on the same table (publish is version-ordered).
pub(crate) fn make_visible(cat: &mut CatalogState, db: &str, id: i64) {
    let keep = cat.keep_txn_rows;
    let Some(database) = cat.databases.get_mut(db) else { return };
    let Some(target) = database.txns.get(&id) else { return };
    if target.state != TxnState::Committed {
        return;
    }
    let table_key = target.table.to_lowercase();
    let ids: Vec<i64> = database
        .txns
        .values()
        .filter(|t| {
            t.state == TxnState::Committed && t.id <= id && t.table.to_lowercase() == table_key
        })
        .map(|t| t.id)
        .collect();
    for tid in ids {
        let t = database.txns.get_mut(&tid).expect("listed above");
        t.state = TxnState::Visible;
        let rows = std::mem::take(&mut t.pending_rows);
        if keep {
            t.applied_rows = rows.clone();
        }
        if let Some(table) = database.tables.get_mut(&table_key) {
            apply_rows(table, rows);
        }
    }
}

/// Commits: COMMITTED and then VISIBLE at once, or (with `visible_after`) VISIBLE later.
pub(crate) fn commit(shared: &Arc<Shared>, db: &str, id: i64, visible_after: Option<Duration>) {
    {
        let mut cat = shared.catalog.lock();
        if let Some(t) = txn_mut(&mut cat, db, id) {
            t.state = TxnState::Committed;
        }
        if visible_after.is_none() {
            make_visible(&mut cat, db, id);
        }
    }
    if let Some(delay) = visible_after {
        let shared2 = Arc::clone(shared);
        let db = db.to_owned();
        shared.spawn(async move {
            tokio::time::sleep(delay).await;
            make_visible(&mut shared2.catalog.lock(), &db, id);
        });
    }
}

/// Aborts transaction-interface transactions whose timeouts passed (§2.3 "Timeouts"; checked
/// lazily instead of by a 30 s cleaner).
pub(crate) fn sweep(
    cat: &mut CatalogState,
    st: &mut DoubleState,
    options: &StarRocksOptions,
    now: Instant,
) {
    for (id, extra) in st.txn_extra.iter_mut() {
        let Some(t) = txn_mut(cat, &extra.db, *id) else { continue };
        let reason = match t.state {
            TxnState::Prepare if extra.in_processing => None,
            TxnState::Prepare if now.duration_since(extra.begin_at) > extra.timeout => Some(
                format!("transaction is aborted by timeout {} seconds.", extra.timeout.as_secs()),
            ),
            TxnState::Prepare => extra.idle_timeout.and_then(|idle| {
                (now.duration_since(extra.last_active) > idle + options.txn_idle_grace).then(|| {
                    format!("transaction is aborted by idle timeout {} seconds.", idle.as_secs())
                })
            }),
            TxnState::Prepared => extra.prepared_at.and_then(|at| {
                (now.duration_since(at) > extra.prepared_timeout).then(|| {
                    format!(
                        "transaction is aborted by prepared timeout {} seconds.",
                        extra.prepared_timeout.as_secs()
                    )
                })
            }),
            _ => None,
        };
        if let Some(reason) = reason {
            t.state = TxnState::Aborted;
            t.pending_rows.clear();
            extra.in_be_ctx = false;
            extra.abort_reason = Some(reason);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses.

/// A BE transaction-interface answer (`to_resp_json`, §2.3), pretty-printed with 4 spaces.
#[derive(Debug)]
struct BeReply {
    status: &'static str,
    label: String,
    existing: Option<String>,
    message: String,
    /// Per-op fields on OK, in order.
    fields: Vec<(&'static str, i64)>,
    error_url: Option<String>,
}

impl BeReply {
    fn err(status: &'static str, label: &str, message: impl Into<String>) -> BeReply {
        BeReply {
            status,
            label: label.to_owned(),
            existing: None,
            message: message.into(),
            fields: Vec::new(),
            error_url: None,
        }
    }

    fn ok(label: &str, fields: Vec<(&'static str, i64)>) -> BeReply {
        BeReply { fields, ..BeReply::err("OK", label, "") }
    }

    fn to_json(&self) -> String {
        let mut w = super::be::PrettyJson::new();
        w.str("Status", self.status);
        if self.status == "LABEL_ALREADY_EXISTS" {
            w.str("ExistingJobStatus", self.existing.as_deref().unwrap_or(""));
        } else if self.status == "TXN_IN_PROCESSING" {
            w.str("Label", &self.label);
        }
        w.str("Message", &self.message);
        if self.status == "OK" {
            w.str("Label", &self.label);
            for (k, v) in &self.fields {
                w.int(k, *v);
            }
        }
        if let Some(url) = &self.error_url {
            w.str("ErrorURL", url);
        }
        w.finish()
    }
}

async fn send_be(conn: &mut Conn, reply: &BeReply, close: bool) -> Next {
    let body = reply.to_json();
    let headers = [("Content-Type", "text/plain; charset=UTF-8".to_owned())];
    if conn.send_response(200, "OK", &headers, body.as_bytes(), close).await.is_err() || close {
        return Next::Close;
    }
    Next::KeepAlive
}

/// An FE `TransactionResult` (Gson pretty-printed HashMap: 2-space indent, §2.3).
pub(crate) fn fe_txn_result(
    status: &str,
    message: &str,
    label: &str,
    txn_id: Option<i64>,
) -> String {
    let mut s = format!(
        "{{\n  \"Status\": {},\n  \"Message\": {},\n  \"Label\": {}",
        json_str(status),
        json_str(message),
        json_str(label)
    );
    if let Some(id) = txn_id {
        s.push_str(&format!(",\n  \"TxnId\": {id}"));
    }
    s.push_str("\n}");
    s
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------------------------
// FE side: commit/rollback of transactions the FE owns (§2.2).

/// Handles `commit`/`rollback` on the FE when the label's transaction is not in PREPARE (the
/// BE owns those): PREPARED, COMMITTED, VISIBLE or ABORTED. `None`: redirect to the BE.
pub(crate) fn fe_commit_or_rollback(
    shared: &Arc<Shared>,
    db: &str,
    label: &str,
    op: &str,
) -> Option<String> {
    let now = shared.now();
    let (reply, make_visible_id) = shared.with_both(|cat, st| {
        sweep(cat, st, &shared.options, now);
        let t = find_label(cat, db, label)?;
        let (id, state) = (t.id, t.state);
        if state == TxnState::Prepare {
            return None;
        }
        let class = "class com.starrocks.common.StarRocksException: ";
        let result = match (op, state) {
            ("commit", TxnState::Prepared) => {
                if let Some(t) = txn_mut(cat, db, id) {
                    t.state = TxnState::Committed;
                }
                (fe_txn_result("OK", "", label, Some(id)), Some(id))
            }
            ("commit", TxnState::Committed | TxnState::Visible) => (
                fe_txn_result(
                    "OK",
                    &format!("Transaction {id} has already committed, label is {label}"),
                    label,
                    Some(id),
                ),
                None,
            ),
            ("commit", _) => (
                fe_txn_result(
                    "FAILED",
                    &format!("{class}Can not commit ABORTED transaction {id}, label is {label}"),
                    label,
                    Some(id),
                ),
                None,
            ),
            (_, TxnState::Prepared) => {
                if let Some(t) = txn_mut(cat, db, id) {
                    t.state = TxnState::Aborted;
                    t.pending_rows.clear();
                }
                if let Some(e) = st.txn_extra.get_mut(&id) {
                    e.abort_reason = Some("transaction is aborted by user.".into());
                }
                (fe_txn_result("OK", "", label, Some(id)), None)
            }
            (_, TxnState::Aborted) => (
                fe_txn_result(
                    "OK",
                    &format!("Transaction {id} has already aborted, label is {label}"),
                    label,
                    Some(id),
                ),
                None,
            ),
            (_, s) => (
                fe_txn_result(
                    "FAILED",
                    &format!(
                        "{class}Can not abort {} transaction {id}, label is {label}",
                        s.as_str()
                    ),
                    label,
                    Some(id),
                ),
                None,
            ),
        };
        Some(result)
    })?;
    if let Some(id) = make_visible_id {
        make_visible(&mut shared.catalog.lock(), db, id);
    }
    Some(reply)
}

// ---------------------------------------------------------------------------------------------
// BE side.

/// The headers that must be identical on every `load` of one transaction (§2.1).
const FORMAT_HEADERS: &[&str] = &[
    "format",
    "columns",
    "column_separator",
    "row_delimiter",
    "enclose",
    "escape",
    "skip_header",
    "trim_space",
    "strict_mode",
    "max_filter_ratio",
    "jsonpaths",
    "json_root",
    "strip_outer_array",
    "ignore_json_size",
    "compression",
    "content-encoding",
    "partial_update",
    "where",
];

fn format_headers(req: &Request) -> Vec<(String, String)> {
    FORMAT_HEADERS
        .iter()
        .filter_map(|h| req.header_nonempty(h).map(|v| ((*h).to_owned(), v.to_owned())))
        .collect()
}

/// The BE's transaction in its stream-context manager with this label (any database).
fn be_ctx(cat: &CatalogState, st: &DoubleState, label: &str) -> Option<(i64, String)> {
    st.txn_extra.iter().find_map(|(id, e)| {
        let t = cat.databases.get(&e.db)?.txns.get(id)?;
        (e.in_be_ctx && t.label == label && t.state == TxnState::Prepare)
            .then(|| (*id, e.db.clone()))
    })
}

fn parse_secs(v: Option<&str>) -> Result<Option<u32>, String> {
    match v {
        None => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err("Invalid timeout format".into()),
        },
    }
}

/// Serves `/api/transaction/{op}` on the BE.
pub(crate) async fn be_handle(
    conn: &mut Conn,
    req: &Request,
    op: &str,
    shared: &Arc<Shared>,
) -> Next {
    let body_kind = req.body_kind().unwrap_or(BodyKind::Empty);
    let pending_body = body_kind != BodyKind::Empty;
    let label = req.header_nonempty("label").unwrap_or("").to_owned();
    let db = req.header_nonempty("db").unwrap_or("").to_owned();
    if label.is_empty() {
        return send_be(conn, &BeReply::err("INVALID_ARGUMENT", "", "empty label"), pending_body)
            .await;
    }
    if db.is_empty() {
        return send_be(
            conn,
            &BeReply::err("INVALID_ARGUMENT", &label, "No database selected."),
            pending_body,
        )
        .await;
    }
    let now = shared.now();
    shared.with_both(|cat, st| sweep(cat, st, &shared.options, now));
    match op {
        "begin" => {
            let reply = be_begin(req, &label, &db, shared, conn.peer.ip().to_string());
            send_be(conn, &reply, pending_body).await
        }
        "load" => be_load(conn, req, &label, &db, body_kind, shared).await,
        "prepare" | "commit" => {
            let reply = be_finish(&label, &db, req, op == "prepare", shared);
            send_be(conn, &reply, pending_body).await
        }
        "rollback" => {
            let reply = shared.with_both(|cat, st| {
                let Some((id, txn_db)) = be_ctx(cat, st, &label) else {
                    return BeReply::err(
                        "TXN_NOT_EXISTS",
                        &label,
                        format!("transaction with label {label} not exists"),
                    );
                };
                if txn_db != db {
                    return BeReply::err(
                        "INVALID_ARGUMENT",
                        &label,
                        format!("Request database {db} not equal transaction database {txn_db}"),
                    );
                }
                if st.txn_extra.get(&id).is_some_and(|e| e.in_processing) {
                    return BeReply::err(
                        "TXN_IN_PROCESSING",
                        &label,
                        "Transaction is in processing",
                    );
                }
                abort(cat, &db, id);
                if let Some(e) = st.txn_extra.get_mut(&id) {
                    e.in_be_ctx = false;
                    e.abort_reason = Some("transaction is aborted by user.".into());
                }
                BeReply::ok(&label, Vec::new())
            });
            send_be(conn, &reply, pending_body).await
        }
        _ => {
            let _ = conn.send_response(404, "Not Found", &[], b"Not Found", true).await;
            Next::Close
        }
    }
}

fn be_begin(req: &Request, label: &str, db: &str, shared: &Arc<Shared>, ip: String) -> BeReply {
    let table = req.header_nonempty("table").unwrap_or("").to_owned();
    let timeout = match parse_secs(req.header_nonempty("timeout")) {
        Ok(t) => t.unwrap_or(load::DEFAULT_TIMEOUT_SECS),
        Err(e) => return BeReply::err("INVALID_ARGUMENT", label, e),
    };
    let idle = match parse_secs(req.header_nonempty("idle_transaction_timeout")) {
        Ok(t) => t,
        Err(e) => return BeReply::err("INVALID_ARGUMENT", label, e),
    };
    let prepared_timeout = match parse_secs(req.header_nonempty("prepared_timeout")) {
        Ok(t) => t.unwrap_or(86_400),
        Err(e) => return BeReply::err("INVALID_ARGUMENT", label, e),
    };
    let Some((user, password)) = req.basic_auth() else {
        return BeReply::err("INTERNAL_ERROR", label, "no valid Basic authorization");
    };
    if user != shared.options.user || password != shared.options.password {
        return BeReply::err("ANALYSIS_ERROR", label, format!("Access denied for {user}@{ip}"));
    }
    if !label_ok(label) {
        return BeReply::err(
            "ANALYSIS_ERROR",
            label,
            format!("test double: label '{label}' does not match ^[-\\w]{{1,128}}$"),
        );
    }
    if table.is_empty() {
        return BeReply::err(
            "INVALID_ARGUMENT",
            label,
            "test double: the table header is required for begin",
        );
    }
    let now = shared.now();
    shared.with_both(|cat, st| {
        if be_ctx(cat, st, label).is_some() {
            // TM begin_transaction: the label is in the BE's context manager.
            return BeReply {
                existing: Some(String::new()),
                ..BeReply::err("LABEL_ALREADY_EXISTS", label, "")
            };
        }
        match begin(cat, db, &table, label) {
            Ok(id) => {
                st.txn_extra.insert(
                    id,
                    TxnExtra {
                        db: db.to_owned(),
                        table: table.clone(),
                        in_be_ctx: true,
                        timeout: Duration::from_secs(timeout.into()),
                        idle_timeout: idle
                            .filter(|s| *s > 0)
                            .map(|s| Duration::from_secs(s.into())),
                        prepared_timeout: Duration::from_secs(prepared_timeout.into()),
                        begin_at: now,
                        last_active: now,
                        prepared_at: None,
                        in_processing: false,
                        has_data: false,
                        load_headers: None,
                        plan: None,
                        error_lines: Vec::new(),
                        abort_reason: None,
                    },
                );
                BeReply::ok(label, vec![("TxnId", id), ("BeginTxnTimeMs", 0)])
            }
            Err(BeginError::Analysis(m)) => BeReply::err("ANALYSIS_ERROR", label, m),
            Err(BeginError::LabelUsed(state)) => match shared.options.duplicate_label_style {
                DuplicateLabelStyle::AlreadyExists => BeReply {
                    existing: Some(existing_job_status(state).to_owned()),
                    ..BeReply::err("LABEL_ALREADY_EXISTS", label, label_used_message(label))
                },
                DuplicateLabelStyle::FailHasBeenUsed => {
                    BeReply::err("ANALYSIS_ERROR", label, label_used_message(label))
                }
            },
        }
    })
}

/// Rolls back a transaction after a failed begin/load/prepare (§2.3: auto-rollback).
fn rollback_after_error(shared: &Arc<Shared>, db: &str, id: i64, reason: &str) {
    shared.with_both(|cat, st| {
        abort(cat, db, id);
        if let Some(e) = st.txn_extra.get_mut(&id) {
            e.in_be_ctx = false;
            e.in_processing = false;
            e.abort_reason = Some(reason.to_owned());
        }
    });
}

#[allow(clippy::result_large_err)] // a test double: clarity over a boxed error
async fn be_load(
    conn: &mut Conn,
    req: &Request,
    label: &str,
    db: &str,
    body_kind: BodyKind,
    shared: &Arc<Shared>,
) -> Next {
    let pending_body = body_kind != BodyKind::Empty;
    let table_header = req.header_nonempty("table").map(str::to_owned);
    let headers = format_headers(req);
    // Claim the transaction (TXN_IN_PROCESSING for a concurrent request).
    let claimed = shared.with_both(|cat, st| {
        let Some((id, txn_db)) = be_ctx(cat, st, label) else {
            return Err(BeReply::err(
                "TXN_NOT_EXISTS",
                label,
                format!("Transaction with label {label} not exists"),
            ));
        };
        if txn_db != db {
            return Err(BeReply::err(
                "INVALID_ARGUMENT",
                label,
                format!("Request database {db} not equal transaction database {txn_db}"),
            ));
        }
        let extra = st.txn_extra.get_mut(&id).expect("be_ctx found it");
        if let Some(t) = &table_header
            && !t.eq_ignore_ascii_case(&extra.table)
        {
            return Err(BeReply::err(
                "INVALID_ARGUMENT",
                label,
                format!("Request table {t} not equal transaction table {}", extra.table),
            ));
        }
        if extra.in_processing {
            return Err(BeReply::err("TXN_IN_PROCESSING", label, "Transaction is in processing"));
        }
        extra.in_processing = true;
        let table =
            cat.databases.get(db).and_then(|d| d.tables.get(&extra.table.to_lowercase())).cloned();
        Ok((id, extra.load_headers.clone(), extra.plan.clone(), table))
    });
    let (id, first_headers, plan, table) = match claimed {
        Ok(c) => c,
        Err(reply) => return send_be(conn, &reply, pending_body).await,
    };
    let fail = |status: &'static str, msg: String| (status, msg);
    // Validate before 100 Continue.
    let prepared: Result<Plan, (&'static str, String)> = (|| {
        if let Some(first) = &first_headers
            && *first != headers
        {
            return Err(fail(
                "INVALID_ARGUMENT",
                "test double: the format headers of a transaction load differ from the first \
                 load's (they must be identical, §2.1)"
                    .into(),
            ));
        }
        if let Some(plan) = plan {
            return Ok(plan);
        }
        let (format, compression) = load::parse_format(req.header_nonempty("format"))
            .map_err(|e| fail("INVALID_ARGUMENT", e))?;
        let params = LoadParams::from_request(req, format, compression)
            .map_err(|e| fail("INVALID_ARGUMENT", e))?;
        let table = table.ok_or_else(|| fail("ANALYSIS_ERROR", "unknown table".into()))?;
        Plan::new(&table, &params).map_err(|e| fail("ANALYSIS_ERROR", e))
    })();
    let plan = match prepared {
        Ok(p) => p,
        Err((status, msg)) => {
            rollback_after_error(shared, db, id, &msg);
            return send_be(conn, &BeReply::err(status, label, msg), pending_body).await;
        }
    };
    if req.expects_continue() && conn.send_continue().await.is_err() {
        rollback_after_error(shared, db, id, "connection lost");
        return Next::Close;
    }
    let body = match conn.read_body(body_kind, shared.options.max_body_bytes, None).await {
        Ok(b) => b,
        Err(e) => {
            let msg = match e {
                BodyError::Short { .. } => "receive body don't equal with body bytes".to_owned(),
                BodyError::TooLarge { received } => {
                    format!("body size {received} exceed limit: {}", shared.options.max_body_bytes)
                }
                other => format!("test double: cannot read the body: {other:?}"),
            };
            rollback_after_error(shared, db, id, &msg);
            return send_be(conn, &BeReply::err("INTERNAL_ERROR", label, msg), true).await;
        }
    };
    let load_bytes = body.len() as u64;
    let parsed = load::decompress(plan.params().compression, body)
        .and_then(|data| load::parse_body(&plan, &data, true));
    let parsed = match parsed {
        Ok(p) => p,
        Err(msg) => {
            rollback_after_error(shared, db, id, &msg);
            let close = req.wants_close();
            return send_be(conn, &BeReply::err("INTERNAL_ERROR", label, msg), close).await;
        }
    };
    let now = shared.now();
    let total_bytes = shared.with_both(|cat, st| {
        let extra = st.txn_extra.get_mut(&id).expect("claimed");
        extra.in_processing = false;
        extra.has_data = true;
        extra.last_active = now;
        extra.load_headers.get_or_insert(headers);
        extra.plan.get_or_insert(plan);
        for f in &parsed.filtered {
            extra.error_lines.push(format!("Error: {}. Row: {}", f.reason, f.raw));
        }
        let t = txn_mut(cat, db, id).expect("claimed");
        t.total_rows += parsed.total();
        t.filtered_rows += parsed.filtered.len() as u64;
        t.load_bytes += load_bytes;
        t.pending_rows.extend(parsed.rows);
        t.load_bytes
    });
    let reply = BeReply::ok(
        label,
        vec![
            ("TxnId", id),
            ("LoadBytes", total_bytes as i64),
            ("StreamLoadPlanTimeMs", 0),
            ("ReceivedDataTimeMs", 0),
        ],
    );
    send_be(conn, &reply, req.wants_close()).await
}

#[allow(clippy::result_large_err)] // a test double: clarity over a boxed error
fn be_finish(label: &str, db: &str, req: &Request, prepare: bool, shared: &Arc<Shared>) -> BeReply {
    let _ = req;
    let checked = shared.with_both(|cat, st| {
        let Some((id, txn_db)) = be_ctx(cat, st, label) else {
            return Err(BeReply::err(
                "TXN_NOT_EXISTS",
                label,
                format!("transaction with label {label} not exists"),
            ));
        };
        if txn_db != db {
            return Err(BeReply::err(
                "INVALID_ARGUMENT",
                label,
                format!("Request database {db} not equal transaction database {txn_db}"),
            ));
        }
        let extra = st.txn_extra.get(&id).expect("be_ctx found it");
        if extra.in_processing {
            return Err(BeReply::err("TXN_IN_PROCESSING", label, "Transaction is in processing"));
        }
        let t = cat.databases.get(db).and_then(|d| d.txns.get(&id)).expect("be_ctx found it");
        let ratio = extra.plan.as_ref().map_or(0.0, |p| p.params().max_filter_ratio);
        Ok((
            id,
            extra.has_data,
            t.total_rows,
            t.filtered_rows,
            t.load_bytes,
            ratio,
            extra.error_lines.clone(),
        ))
    });
    let (id, has_data, total, filtered, bytes, ratio, error_lines) = match checked {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    if !has_data {
        let msg = format!("transaction txn_id={id}, label={label} hasn't send any data yet");
        rollback_after_error(shared, db, id, &msg);
        return BeReply::err("INTERNAL_ERROR", label, msg);
    }
    let error_url = (filtered > 0).then(|| shared.add_error_log(id, &error_lines));
    if filtered > 0 && filtered as f64 / total as f64 > ratio {
        rollback_after_error(shared, db, id, "too many filtered rows");
        return BeReply {
            error_url,
            ..BeReply::err("INTERNAL_ERROR", label, "too many filtered rows")
        };
    }
    let now = shared.now();
    shared.with_both(|cat, st| {
        if let Some(e) = st.txn_extra.get_mut(&id) {
            e.in_be_ctx = false;
            if prepare {
                e.prepared_at = Some(now);
            }
        }
        if let Some(t) = txn_mut(cat, db, id) {
            t.state = if prepare { TxnState::Prepared } else { TxnState::Committed };
        }
        if !prepare {
            make_visible(cat, db, id);
        }
    });
    let loaded = total - filtered;
    BeReply {
        error_url,
        ..BeReply::ok(
            label,
            vec![
                ("TxnId", id),
                ("NumberTotalRows", total as i64),
                ("NumberLoadedRows", loaded as i64),
                ("NumberFilteredRows", filtered as i64),
                ("NumberUnselectedRows", 0),
                ("LoadBytes", bytes as i64),
                ("LoadTimeMs", 0),
                ("StreamLoadPlanTimeMs", 0),
                ("ReceivedDataTimeMs", 0),
                ("WriteDataTimeMs", 0),
                ("CommitAndPublishTimeMs", 0),
            ],
        )
    }
}

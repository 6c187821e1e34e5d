//! The FE HTTP server of the test double (spec §1.1 steps 2–4, §1.4, §2.2, §5.1).

use std::sync::Arc;

use tokio::net::TcpListener;

use super::http::{BodyKind, Conn, Request};
use super::txn::{self, Next};
use super::{Fault, FaultSite, FeRequest, Shared};

/// Accepts FE connections until the double is dropped.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    shared.accept_loop(listener, handle_conn).await;
}

async fn handle_conn(mut conn: Conn, shared: Arc<Shared>) {
    loop {
        let Some(req) = conn.next_request().await else { return };
        let next = route(&mut conn, &req, &shared).await;
        if next != Next::KeepAlive || req.wants_close() {
            conn.shutdown().await;
            return;
        }
    }
}

/// `{"status":"FAILED","code":"1","msg":m,"message":m}` (Gson output of RestBaseResult,
/// §1.1 step 2).
fn rest_failed(msg: &str) -> String {
    serde_json::json!({"status": "FAILED", "code": "1", "msg": msg, "message": msg}).to_string()
}

/// Checks Basic auth as `RestBaseAction` does: `Err(message)` for a 401.
fn check_auth(req: &Request, shared: &Shared, conn: &Conn) -> Result<(), String> {
    if req.header("authorization").is_none() {
        return Err("Need auth information.".into());
    }
    match req.basic_auth() {
        Some((u, p)) if u == shared.options.user && p == shared.options.password => Ok(()),
        Some((u, _)) => Err(format!("Access denied for {u}@{}", conn.peer.ip())),
        None => Err("Need auth information.".into()),
    }
}

/// Sends an answer that closes the connection, then counts whatever body bytes the client
/// still sends for a moment (they must never reach the FE), and logs the request.
async fn answer_and_drain(
    conn: &mut Conn,
    shared: &Shared,
    req: &Request,
    status: u16,
    reason: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Next {
    let _ = conn.send_response(status, reason, headers, body, true).await;
    let received = conn.drain_for(shared.options.fe_drain_window).await;
    let mut st = shared.state();
    st.fe_body_bytes += received;
    st.fe_requests.push(FeRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        status,
        body_bytes: received,
    });
    Next::Close
}

/// Sends an answer on a request without a pending body (keep-alive unless asked otherwise).
async fn answer(
    conn: &mut Conn,
    shared: &Shared,
    req: &Request,
    status: u16,
    reason: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Next {
    if !matches!(req.body_kind(), Ok(BodyKind::Empty)) {
        return answer_and_drain(conn, shared, req, status, reason, headers, body).await;
    }
    shared.state().fe_requests.push(FeRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        status,
        body_bytes: 0,
    });
    match conn.send_response(status, reason, headers, body, false).await {
        Ok(()) => Next::KeepAlive,
        Err(_) => Next::Close,
    }
}

fn json_headers() -> [(&'static str, String); 1] {
    [("Content-Type", "application/json".to_owned())]
}

fn redirect_location(shared: &Shared, req: &Request) -> String {
    let mut location =
        format!("http://{}:{}{}", shared.options.fe_redirect_host, shared.be_addr.port(), req.path);
    if let Some(q) = &req.query {
        location.push('?');
        location.push_str(q);
    }
    location
}

async fn route(conn: &mut Conn, req: &Request, shared: &Arc<Shared>) -> Next {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("PUT", ["api", _db, table, "_stream_load"]) => {
            let table = super::http::url_decode(table);
            stream_load(conn, req, &table, shared).await
        }
        ("GET", ["api", db, "get_load_state"]) => {
            let db = super::http::url_decode(db);
            get_load_state(conn, req, &db, shared).await
        }
        ("POST" | "PUT", ["api", "transaction", op]) => transaction(conn, req, op, shared).await,
        _ => answer(conn, shared, req, 404, "Not Found", &[], b"Not Found").await,
    }
}

/// §1.1 steps 2–4: auth, then `Expect`, then 307 to the BE. Never `100 Continue`, never the
/// body.
async fn stream_load(conn: &mut Conn, req: &Request, table: &str, shared: &Arc<Shared>) -> Next {
    let label = req.header_nonempty("label");
    if shared.take_fault(FaultSite::Fe, table, label) == Some(Fault::ServerError) {
        let body = b"Service Unavailable";
        return answer_and_drain(conn, shared, req, 503, "Service Unavailable", &[], body).await;
    }
    if let Err(msg) = check_auth(req, shared, conn) {
        let headers = [
            ("WWW-Authenticate", "Basic realm=\"\"".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        let body = rest_failed(&msg);
        return answer_and_drain(conn, shared, req, 401, "Unauthorized", &headers, body.as_bytes())
            .await;
    }
    if req.minor_version >= 1 && !req.expects_continue() {
        // Issue #52998 shows these exact bytes.
        let body = r#"{"Status": "FAILED", "Message": "class com.starrocks.common.DdlException: There is no 100-continue header"}"#;
        return answer_and_drain(conn, shared, req, 200, "OK", &json_headers(), body.as_bytes())
            .await;
    }
    let headers = [("Location", redirect_location(shared, req))];
    answer_and_drain(conn, shared, req, 307, "Temporary Redirect", &headers, b"").await
}

/// §1.4: `GET /api/{db}/get_load_state?label=<l>`.
async fn get_load_state(conn: &mut Conn, req: &Request, db: &str, shared: &Arc<Shared>) -> Next {
    if let Err(msg) = check_auth(req, shared, conn) {
        let headers = [
            ("WWW-Authenticate", "Basic realm=\"\"".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        let body = rest_failed(&msg);
        return answer(conn, shared, req, 401, "Unauthorized", &headers, body.as_bytes()).await;
    }
    let label = req.query_param("label").unwrap_or_default();
    let now = shared.now();
    let body = shared.with_both(|cat, st| {
        txn::sweep(cat, st, &shared.options, now);
        if label.is_empty() {
            return rest_failed("No label selected.");
        }
        if !cat.databases.contains_key(db) {
            return rest_failed(&format!("unknown database, database={db}"));
        }
        let state = txn::find_label(cat, db, &label).map_or("UNKNOWN", |t| t.state.as_str());
        serde_json::json!({
            "status": "OK", "code": "0", "msg": "Success", "message": "OK", "state": state
        })
        .to_string()
    });
    answer(conn, shared, req, 200, "OK", &json_headers(), body.as_bytes()).await
}

/// §2.2: begin/load/prepare redirect to the BE; commit/rollback of a transaction the FE owns
/// (not in PREPARE) are answered here, the others redirect.
async fn transaction(conn: &mut Conn, req: &Request, op: &str, shared: &Arc<Shared>) -> Next {
    if !matches!(op, "begin" | "load" | "prepare" | "commit" | "rollback") {
        return answer(conn, shared, req, 404, "Not Found", &[], b"Not Found").await;
    }
    if let Err(msg) = check_auth(req, shared, conn) {
        let headers = [
            ("WWW-Authenticate", "Basic realm=\"\"".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        let body = rest_failed(&msg);
        return answer(conn, shared, req, 401, "Unauthorized", &headers, body.as_bytes()).await;
    }
    let label = req.header_nonempty("label").unwrap_or("");
    let db = req.header_nonempty("db").unwrap_or("");
    let failed = |m: &str| txn::fe_txn_result("FAILED", m, label, None);
    if label.is_empty() {
        let body = failed("Empty label.");
        return answer(conn, shared, req, 200, "OK", &json_headers(), body.as_bytes()).await;
    }
    if db.is_empty() {
        let body = failed("No database selected.");
        return answer(conn, shared, req, 200, "OK", &json_headers(), body.as_bytes()).await;
    }
    if matches!(op, "commit" | "rollback")
        && let Some(body) = txn::fe_commit_or_rollback(shared, db, label, op)
    {
        return answer(conn, shared, req, 200, "OK", &json_headers(), body.as_bytes()).await;
    }
    let headers = [("Location", redirect_location(shared, req))];
    answer_and_drain(conn, shared, req, 307, "Temporary Redirect", &headers, b"").await
}

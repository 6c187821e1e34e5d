//! Tests of the StarRocks test double over raw TCP with hand-written HTTP, one behaviour of
//! `/work/shared/specs/starrocks.md` at a time.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use pgsnap_test_support::starrocks::{
    DuplicateLabelStyle, Fault, FaultFilter, KeysType, StarRocksDouble, StarRocksOptions, TxnState,
    table_def,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `Authorization` for `root` with an empty password.
const ROOT: &str = "Basic cm9vdDo=";

/// A parsed HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A raw HTTP client connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client { stream: TcpStream::connect(addr).await.unwrap(), buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response (head, then a Content-Length body).
    async fn response(&mut self) -> Resp {
        loop {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..pos].to_vec()).unwrap();
                self.buf.drain(..pos + 4);
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                let mut resp = Resp { status, head, body: Vec::new() };
                let len: usize = resp.header("content-length").map_or(0, |v| v.parse().unwrap());
                while self.buf.len() < len {
                    assert!(self.fill().await > 0, "EOF inside a body");
                }
                resp.body = self.buf.drain(..len).collect();
                return resp;
            }
            assert!(self.fill().await > 0, "EOF before a response; got {:?}", self.buf);
        }
    }

    /// Whether the server closed the connection (EOF with nothing more).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await == 0
    }
}

/// A request head (`Host` and the given headers).
fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: starrocks\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// A Stream Load as a correct client does it: probe the FE (`Expect`, no body) for the 307,
/// then PUT to the BE with `Expect: 100-continue` and send the body only after `100 Continue`.
/// Returns the BE's final answer.
async fn stream_load(
    double: &StarRocksDouble,
    db: &str,
    table: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let path = format!("/api/{db}/{table}/_stream_load");
    let len = body.len().to_string();
    let mut all =
        vec![("Authorization", ROOT), ("Expect", "100-continue"), ("Content-Length", len.as_str())];
    all.extend_from_slice(headers);
    let mut fe = Client::connect(double.fe_addr()).await;
    fe.send(head("PUT", &path, &all).as_bytes()).await;
    let redirect = fe.response().await;
    drop(fe);
    assert_eq!(redirect.status, 307, "{}", redirect.text());
    let location = redirect.header("location").unwrap();
    let rest = location.strip_prefix("http://").unwrap();
    let (host_port, target) = rest.split_at(rest.find('/').unwrap());
    assert_eq!(host_port, double.be_addr().to_string());
    let mut be = Client::connect(double.be_addr()).await;
    be.send(head("PUT", target, &all).as_bytes()).await;
    let first = be.response().await;
    if first.status != 100 {
        return first;
    }
    be.send(body).await;
    be.response().await
}

async fn sl_json(
    double: &StarRocksDouble,
    table: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Value {
    let resp = stream_load(double, "db1", table, headers, body.as_bytes()).await;
    assert_eq!(resp.status, 200);
    resp.json()
}

/// A double with `db1.t` (Primary Key: id BIGINT, name VARCHAR(10), score DECIMAL(6,2)) and
/// `db1.d` (Duplicate: id INT, v VARCHAR(20)).
async fn double_with(options: StarRocksOptions) -> StarRocksDouble {
    let double = StarRocksDouble::start(options).await;
    double.create_table(
        "db1",
        table_def(
            "t",
            KeysType::Primary,
            &["id"],
            &[
                ("id", "BIGINT", false),
                ("name", "VARCHAR(10)", true),
                ("score", "DECIMAL(6,2)", true),
            ],
        ),
    );
    double.create_table(
        "db1",
        table_def(
            "d",
            KeysType::Duplicate,
            &["id"],
            &[("id", "INT", true), ("v", "VARCHAR(20)", true)],
        ),
    );
    double
}

async fn double() -> StarRocksDouble {
    double_with(StarRocksOptions::default()).await
}

fn cells(row: &[&str]) -> Vec<Option<String>> {
    row.iter().map(|c| if *c == "NULL" { None } else { Some((*c).to_owned()) }).collect()
}

fn rows(v: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    v.iter().map(|r| cells(r)).collect()
}

// ---------------------------------------------------------------------------------------------
// FE (§1.1 steps 2–4, §5.1)

#[tokio::test]
async fn fe_auth_comes_first_with_401_and_rest_base_result() {
    let double = double_with(StarRocksOptions::default().with_user("u", "secret")).await;
    for (auth, msg) in [
        (None, "Need auth information.".to_owned()),
        (Some("Basic dTp3cm9uZw=="), "Access denied for u@127.0.0.1".to_owned()), // u:wrong
    ] {
        let mut c = Client::connect(double.fe_addr()).await;
        let mut headers = vec![("Content-Length", "0")]; // no Expect: auth is checked first
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        c.send(head("PUT", "/api/db1/t/_stream_load", &headers).as_bytes()).await;
        let r = c.response().await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Basic realm=\"\""));
        assert_eq!(
            r.json(),
            serde_json::json!({"status": "FAILED", "code": "1", "msg": msg, "message": msg})
        );
    }
}

#[tokio::test]
async fn fe_requires_expect_on_http11_but_not_on_http10() {
    let double = double().await;
    let mut c = Client::connect(double.fe_addr()).await;
    c.send(
        head("PUT", "/api/db1/t/_stream_load", &[("Authorization", ROOT), ("Content-Length", "0")])
            .as_bytes(),
    )
    .await;
    let r = c.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(
        r.text(),
        r#"{"Status": "FAILED", "Message": "class com.starrocks.common.DdlException: There is no 100-continue header"}"#
    );
    assert!(c.closed().await);

    let mut c = Client::connect(double.fe_addr()).await;
    c.send(b"PUT /api/db1/t/_stream_load HTTP/1.0\r\nAuthorization: Basic cm9vdDo=\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(c.response().await.status, 307);
}

#[tokio::test]
async fn fe_redirects_to_the_be_without_reading_the_body() {
    let double = double().await;
    let mut c = Client::connect(double.fe_addr()).await;
    c.send(
        head(
            "PUT",
            "/api/db1/t/_stream_load?x=1&y=two",
            &[("Authorization", ROOT), ("Expect", "100-continue"), ("Content-Length", "5")],
        )
        .as_bytes(),
    )
    .await;
    let r = c.response().await;
    assert_eq!(r.status, 307, "never 100 Continue");
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://127.0.0.1:{}/api/db1/t/_stream_load?x=1&y=two", double.be_addr().port())
    );
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(r.header("content-length").as_deref(), Some("0"));
    assert!(r.body.is_empty());
    assert!(c.closed().await);
    assert_eq!(double.fe_body_bytes(), 0);

    // A client that sends its body to the FE anyway: counted.
    let mut c = Client::connect(double.fe_addr()).await;
    let mut req = head(
        "PUT",
        "/api/db1/t/_stream_load",
        &[("Authorization", ROOT), ("Expect", "100-continue"), ("Content-Length", "5")],
    )
    .into_bytes();
    req.extend_from_slice(b"1\ta\n2");
    c.send(&req).await;
    assert_eq!(c.response().await.status, 307);
    assert!(c.closed().await);
    assert_eq!(double.fe_body_bytes(), 5);
    let fe = double.fe_requests();
    assert_eq!(fe.len(), 2);
    assert_eq!((fe[1].status, fe[1].body_bytes), (307, 5));
    assert!(double.loads().is_empty(), "nothing reached the BE");

    // Only PUT is registered; unknown paths are 404.
    let mut c = Client::connect(double.fe_addr()).await;
    c.send(head("POST", "/api/db1/t/_stream_load", &[("Authorization", ROOT)]).as_bytes()).await;
    assert_eq!(c.response().await.status, 404);
    c.send(head("GET", "/nothing", &[]).as_bytes()).await;
    assert_eq!(c.response().await.status, 404);
}

// ---------------------------------------------------------------------------------------------
// BE (§1.1 steps 6–8, §1.3, §5.2)

#[tokio::test]
async fn successful_csv_load_has_the_exact_result_json() {
    let double = double().await;
    let resp = stream_load(
        &double,
        "db1",
        "t",
        &[("label", "l1"), ("column_separator", ",")],
        b"1,alice,1.5\n2,bob,\\N\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    let txn_id = resp.json()["TxnId"].as_i64().unwrap();
    let expected = format!(
        "{{\n    \"TxnId\": {txn_id},\n    \"Label\": \"l1\",\n    \"Status\": \"Success\",\n    \
         \"Message\": \"OK\",\n    \"NumberTotalRows\": 2,\n    \"NumberLoadedRows\": 2,\n    \
         \"NumberFilteredRows\": 0,\n    \"NumberUnselectedRows\": 0,\n    \"LoadBytes\": 21,\n    \
         \"LoadTimeMs\": LT,\n    \"BeginTxnTimeMs\": 0,\n    \"StreamLoadPlanTimeMs\": 0,\n    \
         \"ReadDataTimeMs\": 0,\n    \"WriteDataTimeMs\": 0,\n    \"CommitAndPublishTimeMs\": 0\n}}"
    );
    let lt = resp.json()["LoadTimeMs"].to_string();
    assert_eq!(text, expected.replace("LT", &lt));
    assert_eq!(double.rows("db1", "t"), rows(&[&["1", "alice", "1.50"], &["2", "bob", "NULL"]]));
    assert_eq!(double.txn_state("db1", "l1"), Some(TxnState::Visible));
    let loads = double.loads();
    assert_eq!(loads.len(), 1);
    assert_eq!(
        (loads[0].status.as_str(), loads[0].body_bytes, loads[0].sent_continue),
        ("Success", 21, true)
    );
    assert_eq!(double.fe_body_bytes(), 0);
}

/// Sends a BE request with `Expect` and asserts the answer comes without `100 Continue` and
/// the connection is closed even if the client then sends its body.
async fn be_rejects_before_continue(
    double: &StarRocksDouble,
    target: &str,
    headers: &[(&str, &str)],
) -> Value {
    let mut all = vec![("Expect", "100-continue"), ("Content-Length", "4")];
    all.extend_from_slice(headers);
    let mut c = Client::connect(double.be_addr()).await;
    c.send(head("PUT", target, &all).as_bytes()).await;
    let r = c.response().await;
    assert_eq!(r.status, 200, "an error, not 100 Continue");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    c.send(b"1,a\n").await; // the body anyway: not taken for a request
    assert!(c.closed().await);
    r.json()
}

/// (path, headers, expected message prefix)
type HeaderCase<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn be_validates_everything_before_100_continue() {
    let double = double().await;
    let path = "/api/db1/t/_stream_load";
    let cases: Vec<HeaderCase<'_>> = vec![
        (path.into(), vec![], "no valid Basic authorization"),
        (
            path.into(),
            vec![("Authorization", ROOT), ("format", "parquet")],
            "unknown data format, format=parquet",
        ),
        (path.into(), vec![("Authorization", ROOT), ("timeout", "abc")], "Invalid timeout format"),
        (path.into(), vec![("Authorization", ROOT), ("timeout", "0")], "Invalid timeout format"),
        (
            path.into(),
            vec![("Authorization", ROOT), ("timeout", "259201")],
            "Invalid timeout format",
        ),
        (
            "/api/nodb/t/_stream_load".into(),
            vec![("Authorization", ROOT)],
            "unknown database, database=nodb",
        ),
        (
            "/api/db1/nope/_stream_load".into(),
            vec![("Authorization", ROOT)],
            "unknown table \"db1.nope\"",
        ),
        (
            path.into(),
            vec![("Authorization", "Basic cm9vdDp4")],
            "Access denied for root@127.0.0.1",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("strict_mode", "yes")],
            "Invalid strict mode format. Must be bool type",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("partial_update", "maybe")],
            "Invalid partial update flag format. Must be bool type",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("skip_header", "-1")],
            "skip_header must be equal or greater than 0",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("partitions", "p1"), ("temporary_partitions", "p2")],
            "Can not specify both partitions and temporary partitions",
        ),
        (
            path.into(),
            vec![
                ("Authorization", ROOT),
                ("format", "json"),
                ("compression", "gzip"),
                ("Content-Encoding", "gzip"),
            ],
            "Only one of http header content-encoding and compression can be set",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("escape", "\\")],
            "test double: the escape header is not modelled",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("where", "id > 1")],
            "test double: the where header",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("columns", "id,name,score=score*2")],
            "test double: expressions in the columns header",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("label", "bad label!")],
            "test double: label 'bad label!'",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("max_filter_ratio", "2")],
            "test double: max_filter_ratio",
        ),
        (
            path.into(),
            vec![("Authorization", ROOT), ("format", "lz4")],
            "test double: compressed CSV format 'lz4'",
        ),
    ];
    for (target, headers, want) in cases {
        let v = be_rejects_before_continue(&double, &target, &headers).await;
        assert_eq!(v["Status"], "Fail", "{headers:?}: {v}");
        let msg = v["Message"].as_str().unwrap();
        assert!(msg.starts_with(want), "{headers:?}: {msg}");
    }
    // A client that sends its body right behind the head still gets the answer, and the
    // connection is closed (the body is not taken for a request).
    let mut c = Client::connect(double.be_addr()).await;
    let h = [("Authorization", ROOT), ("Expect", "100-continue"), ("Content-Length", "4")];
    let mut req = head("PUT", "/api/db1/nope/_stream_load", &h).into_bytes();
    req.extend_from_slice(b"1,a\n");
    c.send(&req).await;
    let r = c.response().await;
    assert_eq!(r.json()["Message"], "unknown table \"db1.nope\"");
    assert!(c.closed().await);

    // Errors after begin roll the transaction back: the label is free again.
    assert!(double.rows("db1", "t").is_empty());
    let v = be_rejects_before_continue(
        &double,
        path,
        &[("Authorization", ROOT), ("label", "again"), ("strict_mode", "x")],
    )
    .await;
    assert!(v["TxnId"].as_i64().unwrap() > 0, "strict_mode is checked after begin");
    assert_eq!(double.txn_state("db1", "again"), Some(TxnState::Aborted));
    let v =
        sl_json(&double, "t", &[("label", "again"), ("column_separator", ",")], "1,a,1\n").await;
    assert_eq!(v["Status"], "Success");
}

#[tokio::test]
async fn body_size_limits_are_checked_against_content_length() {
    let double =
        double_with(StarRocksOptions::default().with_max_body_bytes(10).with_max_json_bytes(3))
            .await;
    let mut c = Client::connect(double.be_addr()).await;
    c.send(
        head(
            "PUT",
            "/api/db1/t/_stream_load",
            &[("Authorization", ROOT), ("Expect", "100-continue"), ("Content-Length", "11")],
        )
        .as_bytes(),
    )
    .await;
    let v = c.response().await.json();
    let msg = v["Message"].as_str().unwrap();
    assert!(
        msg.starts_with("body size 11 exceed limit: 10,")
            && msg.ends_with("streaming_load_max_mb in be.conf."),
        "{msg}"
    );

    let v = be_rejects_before_continue(
        &double,
        "/api/db1/t/_stream_load",
        &[("Authorization", ROOT), ("format", "json")],
    )
    .await;
    let msg = v["Message"].as_str().unwrap();
    assert!(msg.starts_with("The size of this batch exceed the max size [3]"), "{msg}");

    let v =
        sl_json(&double, "t", &[("format", "json"), ("ignore_json_size", "true")], r#"{"id":1}"#)
            .await;
    assert_eq!(v["Status"], "Success", "{v}");

    // Chunked bodies are limited while reading.
    let mut c = Client::connect(double.be_addr()).await;
    c.send(
        head(
            "PUT",
            "/api/db1/d/_stream_load",
            &[("Authorization", ROOT), ("Transfer-Encoding", "chunked")],
        )
        .as_bytes(),
    )
    .await;
    c.send(b"c\r\n1\tabcdefghi\n\r\n0\r\n\r\n").await;
    let v = c.response().await.json();
    assert!(v["Message"].as_str().unwrap().starts_with("body size 12 exceed limit: 10"), "{v}");
}

#[tokio::test]
async fn chunked_bodies_keep_alive_and_length_mismatch() {
    let double = double().await;
    let target = "/api/db1/d/_stream_load";
    let mut c = Client::connect(double.be_addr()).await;
    // Chunked, no Expect: the body follows the head at once.
    let mut req = head(
        "PUT",
        target,
        &[("Authorization", ROOT), ("Transfer-Encoding", "chunked"), ("label", "c1")],
    )
    .into_bytes();
    req.extend_from_slice(b"4\r\n1\tab\r\n5;ext=1\r\n\n2\tcd\r\n0\r\nX-Trailer: 1\r\n\r\n");
    c.send(&req).await;
    let v = c.response().await.json();
    assert_eq!(
        (v["Status"].as_str(), v["NumberLoadedRows"].as_i64()),
        (Some("Success"), Some(2)),
        "{v}"
    );
    // Keep-alive: a second load on the same connection.
    let mut req =
        head("PUT", target, &[("Authorization", ROOT), ("Content-Length", "5"), ("label", "c2")])
            .into_bytes();
    req.extend_from_slice(b"3\tef\n");
    c.send(&req).await;
    assert_eq!(c.response().await.json()["Status"], "Success");
    assert_eq!(double.rows("db1", "d"), rows(&[&["1", "ab"], &["2", "cd"], &["3", "ef"]]));

    // Fewer bytes than Content-Length (the client stops sending).
    let mut c = Client::connect(double.be_addr()).await;
    let mut req = head(
        "PUT",
        target,
        &[("Authorization", ROOT), ("Content-Length", "10"), ("label", "short")],
    )
    .into_bytes();
    req.extend_from_slice(b"4\tgh\n");
    c.send(&req).await;
    c.stream.shutdown().await.unwrap();
    let v = c.response().await.json();
    assert_eq!(
        (v["Status"].as_str(), v["Message"].as_str()),
        (Some("Fail"), Some("receive body don't equal with body bytes"))
    );
    // More bytes than Content-Length.
    let mut c = Client::connect(double.be_addr()).await;
    let mut req =
        head("PUT", target, &[("Authorization", ROOT), ("Content-Length", "5"), ("label", "long")])
            .into_bytes();
    req.extend_from_slice(b"4\tgh\n5\tij\n");
    c.send(&req).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v = c.response().await.json();
    assert_eq!(v["Message"], "receive body don't equal with body bytes");
    assert_eq!(double.rows("db1", "d").len(), 3);
    assert_eq!(double.txn_state("db1", "long"), Some(TxnState::Aborted));

    // Unknown BE path.
    let mut c = Client::connect(double.be_addr()).await;
    c.send(head("GET", "/api/nothing", &[]).as_bytes()).await;
    assert_eq!(c.response().await.status, 404);
}

// ---------------------------------------------------------------------------------------------
// Labels (§1.4, §5.3)

#[tokio::test]
async fn duplicate_label_already_exists_style() {
    let double = double().await;
    let h = [("label", "dup"), ("column_separator", ",")];
    assert_eq!(sl_json(&double, "t", &h, "1,a,1\n").await["Status"], "Success");
    let v = sl_json(&double, "t", &h, "2,b,2\n").await;
    assert_eq!(v["Status"], "Label Already Exists");
    assert_eq!(v["ExistingJobStatus"], "FINISHED");
    assert_eq!(v["Message"], "Label [dup] has already been used.");
    assert_eq!(v["TxnId"], -1);
    let text = stream_load(&double, "db1", "t", &h, b"2,b,2\n").await.text();
    let order: Vec<usize> = ["\"Status\"", "\"ExistingJobStatus\"", "\"Message\""]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(double.rows("db1", "t").len(), 1);

    // RUNNING while the holder is not finished (a transaction-interface txn in PREPARE).
    let mut c = Client::connect(double.be_addr()).await;
    c.send(
        head(
            "POST",
            "/api/transaction/begin",
            &[("Authorization", ROOT), ("label", "run"), ("db", "db1"), ("table", "t")],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.response().await.json()["Status"], "OK");
    let v = sl_json(&double, "t", &[("label", "run")], "1\ta\t1\n").await;
    assert_eq!(
        (v["Status"].as_str(), v["ExistingJobStatus"].as_str()),
        (Some("Label Already Exists"), Some("RUNNING"))
    );
    // Labels are per database.
    double
        .create_table("db2", table_def("t", KeysType::Duplicate, &["id"], &[("id", "INT", true)]));
    let resp = stream_load(&double, "db2", "t", &[("label", "dup")], b"5\n").await;
    assert_eq!(resp.json()["Status"], "Success");
}

#[tokio::test]
async fn duplicate_label_fail_has_been_used_style() {
    let double = double_with(
        StarRocksOptions::default()
            .with_duplicate_label_style(DuplicateLabelStyle::FailHasBeenUsed),
    )
    .await;
    let h = [("label", "dup"), ("column_separator", ",")];
    assert_eq!(sl_json(&double, "t", &h, "1,a,1\n").await["Status"], "Success");
    let v = sl_json(&double, "t", &h, "2,b,2\n").await;
    assert_eq!(v["Status"], "Fail");
    assert!(v.get("ExistingJobStatus").is_none());
    assert!(v["Message"].as_str().unwrap().contains("has already been used"));
}

#[tokio::test]
async fn get_load_state_and_publish_timeout() {
    let double = double().await;
    double.inject(Fault::PublishTimeout { visible_after: Duration::from_millis(300) }, 1);
    let v = sl_json(&double, "t", &[("label", "pt"), ("column_separator", ",")], "1,a,1\n").await;
    assert_eq!(v["Status"], "Publish Timeout");
    assert!(double.rows("db1", "t").is_empty(), "not visible yet");

    let state = |label: &str| {
        let label = label.to_owned();
        let addr = double.fe_addr();
        async move {
            let mut c = Client::connect(addr).await;
            c.send(
                head(
                    "GET",
                    &format!("/api/db1/get_load_state?label={label}"),
                    &[("Authorization", ROOT)],
                )
                .as_bytes(),
            )
            .await;
            let r = c.response().await;
            assert_eq!(r.status, 200);
            r.json()
        }
    };
    let v = state("pt").await;
    assert_eq!(
        v,
        serde_json::json!({"status":"OK","code":"0","msg":"Success","message":"OK","state":"COMMITTED"})
    );
    // The label is held (FINISHED) while COMMITTED.
    let v = sl_json(&double, "t", &[("label", "pt")], "1\ta\t1\n").await;
    assert_eq!(v["ExistingJobStatus"], "FINISHED");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(state("pt").await["state"], "VISIBLE");
    assert_eq!(double.rows("db1", "t"), rows(&[&["1", "a", "1.00"]]));
    assert_eq!(state("never").await["state"], "UNKNOWN");

    // A later commit on the same table publishes the earlier COMMITTED one first.
    double.inject(Fault::PublishTimeout { visible_after: Duration::from_secs(60) }, 1);
    assert_eq!(
        sl_json(&double, "t", &[("label", "p2"), ("column_separator", ",")], "1,old,1\n").await["Status"],
        "Publish Timeout"
    );
    assert_eq!(
        sl_json(&double, "t", &[("label", "p3"), ("column_separator", ",")], "1,new,1\n").await["Status"],
        "Success"
    );
    assert_eq!(double.txn_state("db1", "p2"), Some(TxnState::Visible));
    assert_eq!(double.rows("db1", "t"), rows(&[&["1", "new", "1.00"]]));
}

// ---------------------------------------------------------------------------------------------
// Filtering (§1.2 max_filter_ratio, §5.4)

#[tokio::test]
async fn filtered_rows_ratio_error_url_and_error_log() {
    let double = double().await;
    let body = "1,ok,1\n2,much too long a name,2\nx,bad,3\n4,fine\n";
    let v = sl_json(&double, "t", &[("label", "f1"), ("column_separator", ",")], body).await;
    assert_eq!(v["Status"], "Fail");
    assert_eq!(v["Message"], "too many filtered rows");
    assert_eq!(
        (v["NumberTotalRows"].as_i64(), v["NumberFilteredRows"].as_i64()),
        (Some(4), Some(3))
    );
    let url = v["ErrorURL"].as_str().unwrap();
    let prefix =
        format!("http://127.0.0.1:{}/api/_load_error_log?file=error_log_", double.be_addr().port());
    assert!(url.starts_with(&prefix), "{url}");
    assert!(double.rows("db1", "t").is_empty());
    assert_eq!(double.txn_state("db1", "f1"), Some(TxnState::Aborted));

    let mut c = Client::connect(double.be_addr()).await;
    c.send(head("GET", &url[url.find("/api").unwrap()..], &[]).as_bytes()).await;
    let log = c.response().await.text();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("exceed the column length 10") && lines[0].contains("much too long"),
        "{log}"
    );
    assert!(lines[1].contains("not a valid BIGINT"), "{log}");
    assert!(
        lines[2].contains("Value count does not match column count. Expect 3, but got 2"),
        "{log}"
    );

    // Same label, generous ratio: Success with the good row, ErrorURL still present.
    let v = sl_json(
        &double,
        "t",
        &[("label", "f1"), ("column_separator", ","), ("max_filter_ratio", "0.8")],
        body,
    )
    .await;
    assert_eq!(v["Status"], "Success");
    assert_eq!(v["NumberLoadedRows"], 1);
    assert!(v["ErrorURL"].is_string());
    assert_eq!(double.rows("db1", "t"), rows(&[&["1", "ok", "1.00"]]));

    // strict_mode=false does not turn failed conversions into NULL in the double.
    let v =
        sl_json(&double, "t", &[("column_separator", ","), ("strict_mode", "false")], "x,a,1\n")
            .await;
    assert_eq!(v["NumberFilteredRows"], 1);
}

// ---------------------------------------------------------------------------------------------
// CSV (§5.5)

#[tokio::test]
async fn csv_parsing_rules() {
    let double = double().await;
    double.create_table(
        "db1",
        table_def(
            "s",
            KeysType::Duplicate,
            &["a"],
            &[("a", "VARCHAR(20)", true), ("b", "VARCHAR(20)", true), ("c", "INT", true)],
        ),
    );
    let h = [("column_separator", ","), ("enclose", "\""), ("max_filter_ratio", "1")];
    let body = "\"x,\"\"y\"\"\",,1\n\\N,\"\",2\n\"multi\nline\",plain,3\n\"\\N\",a,4\n";
    let v = sl_json(&double, "s", &h, body).await;
    assert_eq!(
        (v["NumberLoadedRows"].as_i64(), v["NumberFilteredRows"].as_i64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(
        double.rows("db1", "s"),
        rows(&[&["x,\"y\"", "", "1"], &["NULL", "", "2"], &["multi\nline", "plain", "3"]])
    );
    let url = v["ErrorURL"].as_str().unwrap();
    let file = url.split("file=").nth(1).unwrap();
    assert!(double.error_log(file).unwrap().contains("test double: enclosed \\N is unconfirmed"));

    // Hex separators, multi-byte delimiter, skip_header, trim_space, columns order.
    let double = self::double().await;
    double.create_table(
        "db1",
        table_def(
            "s",
            KeysType::Duplicate,
            &["a"],
            &[("a", "VARCHAR(20)", true), ("b", "VARCHAR(20)", true), ("c", "INT", true)],
        ),
    );
    let h = [
        ("column_separator", "\\x01"),
        ("row_delimiter", "\\x0D0A"),
        ("skip_header", "1"),
        ("trim_space", "true"),
        ("columns", "`c`, b ,a"),
    ];
    let v = sl_json(&double, "s", &h, "header\r\n 7 \x01 y \x01x\r\n8\x01\x01\\N\r\n").await;
    assert_eq!(v["Status"], "Success", "{v}");
    assert_eq!(double.rows("db1", "s"), rows(&[&["x", "y", "7"], &["NULL", "", "8"]]));

    // A blank line is refused (StarRocks skips it).
    let v = sl_json(&double, "s", &[("column_separator", ",")], "a,b,1\n\nc,d,2\n").await;
    assert_eq!(v["NumberFilteredRows"], 1);
    assert_eq!(v["Status"], "Fail");
    // A body without the final delimiter still has its last row.
    let v = sl_json(&double, "s", &[("column_separator", ",")], "a,b,1\nc,d,2").await;
    assert_eq!(v["NumberLoadedRows"], 2);
}

#[tokio::test]
async fn primary_key_upsert_and_delete_with_op() {
    let double = double().await;
    let h = [("column_separator", ",")];
    sl_json(&double, "t", &h, "1,a,1\n2,b,2\n3,c,3\n").await;
    let v = sl_json(
        &double,
        "t",
        &[("column_separator", ","), ("columns", "id,name,score,__op")],
        "2,B,2.5,0\n3,\\N,\\N,1\n4,d,4,0\n",
    )
    .await;
    assert_eq!(v["Status"], "Success", "{v}");
    assert_eq!(
        double.rows("db1", "t"),
        rows(&[&["1", "a", "1.00"], &["2", "B", "2.50"], &["4", "d", "4.00"]])
    );
    // __op = <column> and a constant __op.
    let v = sl_json(
        &double,
        "t",
        &[("column_separator", ","), ("columns", "id,name,score,tmp,__op=tmp")],
        "5,e,5,0\n1,x,1,1\n",
    )
    .await;
    assert_eq!(v["Status"], "Success", "{v}");
    let v = sl_json(&double, "t", &[("columns", "id,__op='delete'")], "4\n").await;
    assert_eq!(v["Status"], "Success", "{v}");
    assert_eq!(double.rows("db1", "t"), rows(&[&["2", "B", "2.50"], &["5", "e", "5.00"]]));
    // Duplicate tables append; __op is refused for them.
    sl_json(&double, "d", &[], "1\ta\n1\ta\n").await;
    assert_eq!(double.rows("db1", "d").len(), 2);
    let v = sl_json(&double, "d", &[("columns", "id,v,__op")], "1\ta\t0\n").await;
    assert!(
        v["Message"].as_str().unwrap().starts_with("test double: __op is only modelled"),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// JSON (§5.6) and types

#[tokio::test]
async fn json_loads() {
    let double = double().await;
    let h = [("format", "json"), ("strip_outer_array", "true")];
    let body = r#"[{"ID": 1, "Name": "a", "score": "1.5", "extra": true},
                   {"id": 2, "name": null, "score": 2},
                   {"id": 3, "__op": 0},
                   {"name": "no id"}]"#;
    let v = sl_json(&double, "t", &[h[0], h[1], ("max_filter_ratio", "0.5")], body).await;
    assert_eq!(
        (v["NumberLoadedRows"].as_i64(), v["NumberFilteredRows"].as_i64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(
        double.rows("db1", "t"),
        rows(&[&["1", "a", "1.50"], &["2", "NULL", "2.00"], &["3", "NULL", "NULL"]])
    );
    // __op key deletes; a single object without strip_outer_array.
    let v = sl_json(&double, "t", &[("format", "json")], r#"{"id": 2, "__op": 1}"#).await;
    assert_eq!(v["Status"], "Success", "{v}");
    assert_eq!(double.rows("db1", "t").len(), 2);
    // An array without strip_outer_array, and bad JSON, fail the load.
    let v = sl_json(&double, "t", &[("format", "json")], r#"[{"id": 9}]"#).await;
    assert!(v["Message"].as_str().unwrap().starts_with("test double:"), "{v}");
    let v = sl_json(&double, "t", &[("format", "json")], r#"{"id": 9"#).await;
    assert_eq!(v["Status"], "Fail");
    // jsonpaths + columns, json_root.
    let h = [
        ("format", "json"),
        ("jsonpaths", r#"["$.k", "$.inner.n"]"#),
        ("columns", "id,name"),
        ("json_root", "$.data"),
        ("strip_outer_array", "true"),
    ];
    let v = sl_json(&double, "t", &h, r#"{"data": [{"k": 10, "inner": {"n": "ten"}}]}"#).await;
    assert_eq!(v["Status"], "Success", "{v}");
    assert!(double.rows("db1", "t").contains(&cells(&["10", "ten", "NULL"])));
}

/// A load straight to the BE (no FE, no `Expect`): the body follows the head.
async fn be_load(
    double: &StarRocksDouble,
    table: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Value {
    let len = body.len().to_string();
    let mut all = vec![("Authorization", ROOT), ("Content-Length", len.as_str())];
    all.extend_from_slice(headers);
    let mut c = Client::connect(double.be_addr()).await;
    let mut req = head("PUT", &format!("/api/db1/{table}/_stream_load"), &all).into_bytes();
    req.extend_from_slice(body);
    c.send(&req).await;
    c.response().await.json()
}

/// Loads one value into a one-column table of type `ty`: the stored cell, or the error log.
async fn convert(
    double: &StarRocksDouble,
    ty: &str,
    json: bool,
    value: &str,
) -> Result<Option<String>, String> {
    let name = format!("c{}", double.loads().len());
    double.create_table("db1", table_def(&name, KeysType::Duplicate, &[], &[("v", ty, true)]));
    let v = if json {
        be_load(double, &name, &[("format", "json")], format!("{{\"v\": {value}}}").as_bytes())
            .await
    } else {
        be_load(double, &name, &[], format!("{value}\n").as_bytes()).await
    };
    if v["Status"] == "Success" {
        let rows = double.rows("db1", &name);
        assert_eq!(rows.len(), 1);
        return Ok(rows[0][0].clone());
    }
    let url = v["ErrorURL"].as_str().unwrap_or_else(|| panic!("{v}"));
    Err(double.error_log(url.split("file=").nth(1).unwrap()).unwrap())
}

type Case<'a> = (&'a str, &'a str, Result<Option<&'a str>, &'a str>);

async fn check_cases(double: &StarRocksDouble, json: bool, cases: &[Case<'_>]) {
    for (ty, value, want) in cases {
        let got = convert(double, ty, json, value).await;
        match (want, &got) {
            (Ok(w), Ok(g)) => assert_eq!(w.map(str::to_owned), *g, "{ty} {value}"),
            (Err(w), Err(log)) => assert!(log.contains(w), "{ty} {value}: {log}"),
            _ => panic!("{ty} {value}: want {want:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn type_conversions_from_csv() {
    let double = double().await;
    let cases: &[Case<'_>] = &[
        ("BOOLEAN", "TRUE", Ok(Some("1"))),
        ("BOOLEAN", "false", Ok(Some("0"))),
        ("BOOLEAN", "7", Ok(Some("1"))),
        ("BOOLEAN", "0", Ok(Some("0"))),
        ("BOOLEAN", "yes", Err("not a valid BOOLEAN")),
        ("TINYINT", "-128", Ok(Some("-128"))),
        ("TINYINT", "128", Err("out of range for TINYINT")),
        ("SMALLINT", "+007", Ok(Some("7"))),
        ("INT", "2147483648", Err("out of range for INT")),
        ("INT", "1.0", Err("not a valid INT")),
        ("BIGINT", "-9223372036854775808", Ok(Some("-9223372036854775808"))),
        (
            "LARGEINT",
            "170141183460469231731687303715884105727",
            Ok(Some("170141183460469231731687303715884105727")),
        ),
        ("DOUBLE", "1e3", Ok(Some("1000"))),
        // `string_to_float` (sourced): NaN and any `inf...` prefix, with a sign.
        ("DOUBLE", "NaN", Ok(Some("NaN"))),
        ("DOUBLE", "inf", Ok(Some("Infinity"))),
        ("FLOAT", "-Infinity", Ok(Some("-Infinity"))),
        ("DOUBLE", "nanx", Err("not a valid DOUBLE")),
        ("DOUBLE", " 1", Err("not a valid DOUBLE")),
        ("FLOAT", "1e39", Err("out of range for FLOAT")),
        ("DECIMAL(5,2)", "123.4", Ok(Some("123.40"))),
        ("DECIMAL(5,2)", "-0.001", Err("test double: DECIMAL(5,2) would round")),
        ("DECIMAL(5,2)", "1.2300", Ok(Some("1.23"))),
        ("DECIMAL(5,2)", "1234", Err("out of range for DECIMAL(5,2)")),
        ("DATE", "2024-02-29", Ok(Some("2024-02-29"))),
        ("DATE", "2023-02-29", Err("not a valid DATE")),
        ("DATE", "2024-2-3", Err("not a valid DATE")),
        ("DATETIME", "2024-01-02 03:04:05", Ok(Some("2024-01-02 03:04:05"))),
        ("DATETIME", "2024-01-02 03:04:05.120", Ok(Some("2024-01-02 03:04:05.120000"))),
        ("DATETIME", "2024-01-02 03:04:05.000000", Ok(Some("2024-01-02 03:04:05"))),
        ("DATETIME", "2024-01-02T03:04:05", Err("not a valid DATETIME")),
        ("DATETIME", "2024-01-02 24:00:00", Err("not a valid DATETIME")),
        ("VARCHAR(3)", "\u{e9}\u{e9}", Err("4 bytes exceed the column length 3")),
        ("CHAR(4)", "\u{e9}\u{e9}", Ok(Some("\u{e9}\u{e9}"))),
        ("JSON", r#"{"b": 1, "a": null}"#, Ok(Some(r#"{"a":null,"b":1}"#))),
        ("JSON", "{bad", Err("not valid JSON")),
        // CSV into JSON is `parse_json_or_string` (sourced): a scalar becomes a JSON string.
        ("JSON", "123", Ok(Some(r#""123""#))),
        ("JSON", "null", Ok(Some(r#""null""#))),
        ("ARRAY<INT>", "[1,2]", Err("test double: ARRAY values in CSV")),
        ("VARBINARY", "abc", Err("test double: the wire encoding of VARBINARY")),
    ];
    check_cases(&double, false, cases).await;
    // NULL into NOT NULL.
    let v = be_load(&double, "t", &[("column_separator", ",")], b"\\N,a,1\n").await;
    assert_eq!(v["NumberFilteredRows"], 1);
    let file = v["ErrorURL"].as_str().unwrap().split("file=").nth(1).unwrap().to_owned();
    let log = double.error_log(&file).unwrap();
    assert!(log.contains("NULL value in non-nullable column 'id'"), "{log}");
}

#[tokio::test]
async fn type_conversions_from_json() {
    let double = double().await;
    let cases: &[Case<'_>] = &[
        ("BOOLEAN", "true", Ok(Some("1"))),
        ("BOOLEAN", "1", Ok(Some("1"))),
        ("INT", r#""42""#, Ok(Some("42"))),
        ("INT", "4.0", Err("test double: a JSON number with a fraction")),
        ("DECIMAL(20,3)", "12345678901234567.125", Ok(Some("12345678901234567.125"))),
        ("DECIMAL(5,2)", "1e2", Err("test double: exponent notation")),
        ("DECIMAL(6,2)", "123.456000", Err("test double: DECIMAL(6,2) would round")),
        ("VARCHAR(10)", "12", Err("test double: a JSON number for this column type")),
        // The JSON scanner has no NULL check for the string "\N" (sourced).
        ("VARCHAR(10)", r#""\\N""#, Ok(Some("\\N"))),
        ("DOUBLE", r#""NaN""#, Ok(Some("NaN"))),
        ("DOUBLE", r#""-Infinity""#, Ok(Some("-Infinity"))),
        ("JSON", "123", Ok(Some("123"))),
        ("DATETIME", r#""2024-01-02 03:04:05.5""#, Ok(Some("2024-01-02 03:04:05.500000"))),
        ("JSON", r#""text""#, Ok(Some(r#""text""#))),
        ("JSON", r#"[3, {"y": 1, "x": 2}]"#, Ok(Some(r#"[3,{"x":2,"y":1}]"#))),
        ("JSON", "null", Ok(None)),
        ("ARRAY<VARCHAR(5)>", r#"["a", null]"#, Ok(Some(r#"["a",null]"#))),
        ("ARRAY<DECIMAL(4,1)>", r#"[1, "2.5"]"#, Ok(Some("[1.0,2.5]"))),
        ("ARRAY<ARRAY<INT>>", "[[1], []]", Ok(Some("[[1],[]]"))),
        ("ARRAY<INT>", "[1, 99999999999]", Err("out of range for INT")),
        ("ARRAY<INT>", r#""[1]""#, Err("test double: only a JSON array")),
        ("VARBINARY", r#""abc""#, Err("test double: the wire encoding of VARBINARY")),
    ];
    check_cases(&double, true, cases).await;
}

// ---------------------------------------------------------------------------------------------
// Compression (§1.2)

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn compressed_bodies() {
    let double = double().await;
    let v = be_load(&double, "d", &[("format", "gzip")], &gzip(b"1\tgz\n")).await;
    assert_eq!(v["Status"], "Success", "{v}");
    let body = gzip(br#"{"id": 2, "v": "js"}"#);
    let v = be_load(&double, "d", &[("format", "json"), ("compression", "gzip")], &body).await;
    assert_eq!(v["Status"], "Success", "{v}");
    let body = gzip(br#"{"id": 3}"#);
    let v = be_load(&double, "d", &[("format", "json"), ("Content-Encoding", "gzip")], &body).await;
    assert_eq!(v["Status"], "Success", "{v}");
    assert_eq!(double.rows("db1", "d"), rows(&[&["1", "gz"], &["2", "js"], &["3", "NULL"]]));
    let v = be_load(&double, "d", &[("format", "gzip")], b"not gzip").await;
    assert!(v["Message"].as_str().unwrap().starts_with("test double: gzip body"), "{v}");
    let v = be_load(&double, "d", &[("format", "json"), ("compression", "lz4_frame")], b"x").await;
    assert!(v["Message"].as_str().unwrap().starts_with("test double: compression 'lz4_frame'"));
}

// ---------------------------------------------------------------------------------------------
// Fault injection (§5.4)

#[tokio::test]
async fn faults_busy_unknown_table_too_many_filtered_server_error() {
    let double = double().await;
    let sep = ("column_separator", ",");

    double.inject(Fault::Busy, 1);
    let v = sl_json(&double, "t", &[("label", "busy"), sep], "1,a,1\n").await;
    assert_eq!(
        v["Message"],
        "Stream Load exceed http cuncurrent limit 100, please try again later"
    );
    assert!(!double.loads().last().unwrap().sent_continue);
    assert_eq!(double.loads().last().unwrap().fault, Some(Fault::Busy));

    double.inject(Fault::UnknownTable, 1);
    let v = sl_json(&double, "t", &[sep], "1,a,1\n").await;
    assert_eq!(v["Message"], "unknown table \"db1.t\"");

    double.inject(Fault::TooManyFiltered, 1);
    let v = sl_json(&double, "t", &[("label", "tmf"), sep], "1,a,1\n").await;
    assert_eq!(v["Status"], "Fail");
    assert_eq!(v["Message"], "too many filtered rows");
    assert!(v["ErrorURL"].is_string());
    assert_eq!(double.txn_state("db1", "tmf"), Some(TxnState::Aborted));

    double.inject(Fault::ServerError, 1);
    let mut c = Client::connect(double.fe_addr()).await;
    let h = [("Authorization", ROOT), ("Expect", "100-continue"), ("Content-Length", "1")];
    c.send(head("PUT", "/api/db1/t/_stream_load", &h).as_bytes()).await;
    assert_eq!(c.response().await.status, 503);
    assert_eq!(double.pending_faults(), 0);
    assert!(double.rows("db1", "t").is_empty());
}

#[tokio::test]
async fn faults_reset_drop_slow_and_filters() {
    let double = double().await;
    let sep = ("column_separator", ",");

    // ResetMidBody: the BE closes after 3 body bytes, nothing committed, label free.
    double.inject(Fault::ResetMidBody { after_bytes: 3 }, 1);
    let mut c = Client::connect(double.be_addr()).await;
    let h = [
        ("Authorization", ROOT),
        ("Expect", "100-continue"),
        ("Content-Length", "6"),
        ("label", "rst"),
        sep,
    ];
    c.send(head("PUT", "/api/db1/t/_stream_load", &h).as_bytes()).await;
    assert_eq!(c.response().await.status, 100);
    let _ = c.stream.write_all(b"1,a,1\n").await;
    assert!(c.closed().await);
    let rec = double.loads().last().unwrap().clone();
    assert!(rec.status.starts_with("no response:"), "{rec:?}");
    assert_eq!(rec.body_bytes, 3);
    assert_eq!(double.txn_state("db1", "rst"), Some(TxnState::Aborted));
    assert!(double.rows("db1", "t").is_empty());

    // DropAfterCommit: committed and visible, but no answer; the retry with the same label
    // learns FINISHED.
    double.inject(Fault::DropAfterCommit, 1);
    let mut c = Client::connect(double.be_addr()).await;
    let h = [("Authorization", ROOT), ("Content-Length", "6"), ("label", "drop"), sep];
    let mut req = head("PUT", "/api/db1/t/_stream_load", &h).into_bytes();
    req.extend_from_slice(b"1,a,1\n");
    c.send(&req).await;
    assert!(c.closed().await, "no response");
    assert_eq!(double.txn_state("db1", "drop"), Some(TxnState::Visible));
    assert_eq!(double.rows("db1", "t").len(), 1);
    let v = sl_json(&double, "t", &[("label", "drop"), sep], "1,a,1\n").await;
    assert_eq!(v["ExistingJobStatus"], "FINISHED");

    // Slow, restricted to label "slow".
    let filter = FaultFilter { label: Some("slow".into()), table: None };
    double.inject_filtered(Fault::Slow { delay: Duration::from_millis(300) }, 1, filter);
    let t = std::time::Instant::now();
    assert_eq!(
        sl_json(&double, "t", &[("label", "fast"), sep], "2,b,2\n").await["Status"],
        "Success"
    );
    assert!(t.elapsed() < Duration::from_millis(300));
    assert_eq!(double.pending_faults(), 1);
    assert_eq!(
        sl_json(&double, "t", &[("label", "slow"), sep], "3,c,3\n").await["Status"],
        "Success"
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(double.pending_faults(), 0);
    // A table filter.
    let filter = FaultFilter { label: None, table: Some("D".into()) };
    double.inject_filtered(Fault::Busy, 1, filter);
    assert_eq!(sl_json(&double, "t", &[sep], "4,d,4\n").await["Status"], "Success");
    assert_eq!(sl_json(&double, "d", &[], "4\td\n").await["Status"], "Fail");
    double.inject(Fault::Busy, 5);
    double.clear_faults();
    assert_eq!(double.pending_faults(), 0);
    assert_eq!(double.fe_body_bytes(), 0);
}

// ---------------------------------------------------------------------------------------------
// Transaction interface (§2)

/// One transaction-interface call, through the FE (following its 307) or straight to the BE.
async fn txn_call(
    double: &StarRocksDouble,
    via_fe: bool,
    op: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Value {
    let len = body.len().to_string();
    let mut all = vec![("Authorization", ROOT), ("table", "d"), ("Content-Length", len.as_str())];
    if !headers.iter().any(|(n, _)| *n == "db") {
        all.push(("db", "db1"));
    }
    all.extend_from_slice(headers);
    let target = format!("/api/transaction/{op}");
    if via_fe {
        let mut c = Client::connect(double.fe_addr()).await;
        c.send(head("POST", &target, &all).as_bytes()).await;
        let r = c.response().await;
        if r.status != 307 {
            assert_eq!(r.status, 200);
            return r.json();
        }
        assert!(r.header("location").unwrap().ends_with(&target));
    }
    let mut c = Client::connect(double.be_addr()).await;
    let mut req = head("POST", &target, &all).into_bytes();
    req.extend_from_slice(body);
    c.send(&req).await;
    let r = c.response().await;
    assert_eq!(r.status, 200);
    r.json()
}

#[tokio::test]
async fn transaction_interface_begin_load_prepare_commit() {
    let double = double().await;
    let l = [("label", "tx1")];
    let v = txn_call(&double, true, "begin", &l, b"").await;
    assert_eq!(v["Status"], "OK", "{v}");
    let first_id = v["TxnId"].as_i64().unwrap();
    let v = txn_call(&double, true, "begin", &l, b"").await;
    assert_eq!(v["Status"], "LABEL_ALREADY_EXISTS");
    assert_eq!(v["ExistingJobStatus"], "");
    assert_eq!(double.txn_state("db1", "tx1"), Some(TxnState::Prepare));
    let v = txn_call(&double, true, "load", &l, b"1\ta\n").await;
    assert_eq!(v["Status"], "OK", "{v}");
    assert_eq!(v["LoadBytes"], 4);
    let v = txn_call(&double, true, "load", &l, b"2\tb\n3\tc").await;
    assert!(v["Message"].as_str().unwrap().contains("must end with the row delimiter"), "{v}");
    assert_eq!(double.txn_state("db1", "tx1"), Some(TxnState::Aborted), "errors roll back");

    // Format headers may not change between loads.
    let l = [("label", "tx2")];
    txn_call(&double, true, "begin", &l, b"").await;
    txn_call(&double, true, "load", &l, b"1\ta\n").await;
    let v = txn_call(&double, true, "load", &l, b"2\tb\n").await;
    assert_eq!(v["LoadBytes"], 8, "cumulative");
    let v = txn_call(&double, true, "load", &[l[0], ("format", "json")], b"{}").await;
    assert_eq!(v["Status"], "INVALID_ARGUMENT", "{v}");
    assert_eq!(double.txn_state("db1", "tx2"), Some(TxnState::Aborted));

    // Through to PREPARED; commit is then answered by the FE itself.
    let l = [("label", "tx3")];
    txn_call(&double, true, "begin", &l, b"").await;
    let v = txn_call(&double, true, "prepare", &[("label", "nope")], b"").await;
    assert_eq!(v["Status"], "TXN_NOT_EXISTS");
    assert_eq!(v["Message"], "transaction with label nope not exists");
    txn_call(&double, true, "load", &l, b"1\ta\n2\tb\n").await;
    let v = txn_call(&double, true, "prepare", &l, b"").await;
    assert_eq!(v["Status"], "OK", "{v}");
    assert_eq!(v["NumberLoadedRows"], 2);
    assert!(v.get("CommitAndPublishTimeMs").is_some());
    assert_eq!(double.txn_state("db1", "tx3"), Some(TxnState::Prepared));
    assert!(double.rows("db1", "d").is_empty());
    let v = txn_call(&double, true, "commit", &l, b"").await;
    assert_eq!(v["Status"], "OK", "{v}");
    assert_eq!(v["TxnId"].as_i64().unwrap(), first_id + 2);
    assert_eq!(double.rows("db1", "d"), rows(&[&["1", "a"], &["2", "b"]]));
    let v = txn_call(&double, true, "commit", &l, b"").await;
    assert_eq!(v["Status"], "OK");
    assert!(v["Message"].as_str().unwrap().contains("has already committed"), "{v}");
    let v = txn_call(&double, true, "rollback", &l, b"").await;
    assert_eq!(v["Status"], "FAILED", "{v}");
}

#[tokio::test]
async fn transaction_interface_errors_and_rollback() {
    let double = double().await;
    // No data: prepare fails and rolls back; rollback afterwards is idempotent.
    let l = [("label", "tx4")];
    txn_call(&double, true, "begin", &l, b"").await;
    let v = txn_call(&double, true, "prepare", &l, b"").await;
    assert!(v["Message"].as_str().unwrap().contains("hasn't send any data yet"), "{v}");
    assert_eq!(double.txn_state("db1", "tx4"), Some(TxnState::Aborted));
    let v = txn_call(&double, true, "rollback", &l, b"").await;
    assert_eq!(v["Status"], "OK");
    assert!(v["Message"].as_str().unwrap().contains("has already aborted"), "{v}");
    let v = txn_call(&double, true, "commit", &l, b"").await;
    assert_eq!(v["Status"], "FAILED", "{v}");

    // Commit from PREPARE straight on the BE; rollback on the BE.
    let l = [("label", "tx5")];
    txn_call(&double, false, "begin", &l, b"").await;
    txn_call(&double, false, "load", &l, b"5\te\n").await;
    let v = txn_call(&double, true, "commit", &l, b"").await;
    assert_eq!(v["Status"], "OK", "{v}");
    assert_eq!(double.rows("db1", "d").len(), 1);
    let l = [("label", "tx6")];
    txn_call(&double, false, "begin", &l, b"").await;
    assert_eq!(txn_call(&double, false, "rollback", &l, b"").await["Status"], "OK");
    assert_eq!(double.txn_state("db1", "tx6"), Some(TxnState::Aborted));
    // A label held by a finished transaction: LABEL_ALREADY_EXISTS + FINISHED.
    let v = txn_call(&double, false, "begin", &[("label", "tx5")], b"").await;
    assert_eq!(v["Status"], "LABEL_ALREADY_EXISTS");
    assert_eq!(v["ExistingJobStatus"], "FINISHED");
    // Another database than the transaction's.
    txn_call(&double, false, "begin", &[("label", "tx7")], b"").await;
    double.create_database("db2");
    let v = txn_call(&double, false, "load", &[("label", "tx7"), ("db", "db2")], b"1\ta\n").await;
    assert_eq!(v["Status"], "INVALID_ARGUMENT", "{v}");
    // Missing label / db on the FE.
    let v = txn_call(&double, true, "begin", &[("label", "")], b"").await;
    assert_eq!(
        (v["Status"].as_str(), v["Message"].as_str()),
        (Some("FAILED"), Some("Empty label."))
    );
}

#[tokio::test]
async fn transaction_timeouts_and_in_processing() {
    let double = double_with(StarRocksOptions::default().with_txn_idle_grace(Duration::ZERO)).await;
    txn_call(&double, false, "begin", &[("label", "to"), ("timeout", "10")], b"").await;
    double.advance_clock(Duration::from_secs(11));
    assert_eq!(double.txn_state("db1", "to"), Some(TxnState::Aborted));
    let v = txn_call(&double, false, "load", &[("label", "to")], b"1\ta\n").await;
    assert_eq!(v["Status"], "TXN_NOT_EXISTS");

    let idle = [("label", "idle"), ("idle_transaction_timeout", "5")];
    txn_call(&double, false, "begin", &idle, b"").await;
    txn_call(&double, false, "load", &[("label", "idle")], b"1\ta\n").await;
    double.advance_clock(Duration::from_secs(4));
    assert_eq!(double.txn_state("db1", "idle"), Some(TxnState::Prepare));
    double.advance_clock(Duration::from_secs(2));
    assert_eq!(double.txn_state("db1", "idle"), Some(TxnState::Aborted));

    // A load waiting for its body holds the transaction: TXN_IN_PROCESSING.
    txn_call(&double, false, "begin", &[("label", "busy")], b"").await;
    let mut c = Client::connect(double.be_addr()).await;
    let h = [
        ("Authorization", ROOT),
        ("db", "db1"),
        ("table", "d"),
        ("label", "busy"),
        ("Expect", "100-continue"),
        ("Content-Length", "4"),
    ];
    c.send(head("POST", "/api/transaction/load", &h).as_bytes()).await;
    assert_eq!(c.response().await.status, 100);
    let v = txn_call(&double, false, "commit", &[("label", "busy")], b"").await;
    assert_eq!(v["Status"], "TXN_IN_PROCESSING", "{v}");
    assert_eq!(v["Label"], "busy");
    c.send(b"1\ta\n").await;
    assert_eq!(c.response().await.json()["Status"], "OK");
    let v = txn_call(&double, false, "commit", &[("label", "busy")], b"").await;
    assert_eq!(v["Status"], "OK", "{v}");
}

#[tokio::test]
async fn drop_stops_the_servers() {
    let double = double().await;
    let (fe, be) = (double.fe_addr(), double.be_addr());
    let mut idle = Client::connect(be).await;
    drop(double);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(fe).await.is_err());
    assert!(TcpStream::connect(be).await.is_err());
    assert!(idle.closed().await, "open connections are closed too");
}

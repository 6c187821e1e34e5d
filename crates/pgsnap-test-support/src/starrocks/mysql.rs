//! The MySQL-protocol front (the FE "query port", 9030) of the StarRocks **test double**.
//!
//! **For tests only.** This is not StarRocks: it speaks just enough of the MySQL protocol
//! (via `opensrv-mysql`) and of StarRocks' SQL for the pgsnap sink and its tests, over the
//! shared [`Catalog`]. Anything it does not model is answered with an error whose message
//! starts with `test double:`, so a test fails loudly instead of passing by accident.
//!
//! # Connection
//!
//! - Handshake: server version `8.0.33` (what StarRocks 3.4+ reports; 3.3 and older report
//!   `5.1.0`; the double follows [`StarRocksOptions::version`](super::StarRocksOptions::version)),
//!   `mysql_native_password` with a fresh 20-byte scramble per connection, no TLS.
//! - Only the configured user and password are accepted (an empty password means "no
//!   password"). Anything else gets error 1045 (SQLSTATE 28000)
//!   `Access denied for user '<user>'@'<client ip>' (using password: YES|NO)`.
//! - A database named at connect time, or by `COM_INIT_DB` / `USE`, must exist: otherwise
//!   error 1049 `Unknown database '<db>'`.
//! - Prepared statements are refused (error 1295); use text queries (`mysql_async`'s
//!   `query*` methods, not `exec*`).
//!
//! # What `mysql_async` 0.37 sends on connect
//!
//! After the handshake, `Conn::new` runs `read_settings`:
//! `SELECT @@max_allowed_packet,@@wait_timeout,@@socket` (the `@@socket` item only while
//! `prefer_socket` is on, which is its default on Unix). StarRocks has no `socket` variable
//! and answers that query with an error, so **against StarRocks (and this double) a
//! `mysql_async` client must set `prefer_socket(false)`** (URL `?prefer_socket=false`), or
//! set `max_allowed_packet`/`wait_timeout` in its options so nothing is queried. It sends
//! nothing else unless `init`/`setup` statements are configured; a pooled connection is
//! reset with `COM_RESET_CONNECTION`, which the protocol layer answers with OK.
//!
//! # Statements
//!
//! Keywords are case-insensitive; see the private `ddl` module for the
//! lexical rules.
//!
//! - `SELECT @@var, ...` over a small table of session variables (`max_allowed_packet`
//!   33554432, `wait_timeout` 28800, `version`, `version_comment`, `autocommit`,
//!   `lower_case_table_names` 0, `sql_mode`, `time_zone`, character sets, ...); an unknown
//!   variable gives StarRocks' error 1064 `Getting analyzing error. Detail message: Unknown
//!   system variable '<name>'.`. Also `SELECT version()`, `current_version()` (the configured
//!   release as `<version>-<7 hex digits>`, e.g. `3.4.2-…`), `database()`, `connection_id()`,
//!   `user()`, and literals (`SELECT 1`).
//! - `SET [SESSION] var = value, ...` and `SET NAMES ...` for the same variables.
//! - `SELECT <cols> FROM information_schema.{schemata|tables|columns} [WHERE c = 'v' | c IN
//!   ('v', ...) [AND ...]] [ORDER BY c [ASC|DESC], ...]` (an empty `IN ()` is a syntax
//!   error, as in StarRocks), e.g. the sink's
//!   `SELECT SCHEMA_NAME FROM information_schema.schemata WHERE SCHEMA_NAME = '<db>'`,
//!   `SELECT TABLE_NAME FROM information_schema.tables WHERE TABLE_SCHEMA = '<db>'` and
//!   `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY FROM
//!   information_schema.columns WHERE TABLE_SCHEMA = '<db>' AND TABLE_NAME IN ('<t1>',
//!   '<t2>', ...) ORDER BY TABLE_NAME, ORDINAL_POSITION`. Comparisons are exact
//!   (case-sensitive), as StarRocks' are.
//!   `DATA_TYPE`/`COLUMN_TYPE` come from [`SrType::information_schema_shapes`];
//!   `IS_NULLABLE` is `YES`/`NO` from the column's nullability; `COLUMN_KEY` is `PRI` (Primary
//!   Key table) or `DUP` (Duplicate Key table) for key columns and empty otherwise, as FE
//!   `FrontendServiceImpl.setColumnDesc` computes it (`KeysType.name().substring(0, 3)`).
//!   Caveat: the BE scanner versions of `schema_columns_scanner.cpp` read for this double
//!   hard-code `IS_NULLABLE = 'NO'`, so a sink should not rely on `IS_NULLABLE` from a real
//!   server. Modelled columns — schemata: `CATALOG_NAME, SCHEMA_NAME,
//!   DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, SQL_PATH`; tables: `TABLE_CATALOG,
//!   TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, TABLE_COMMENT`; columns:
//!   `TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT,
//!   IS_NULLABLE, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, COLUMN_TYPE, COLUMN_KEY, EXTRA`.
//!   Only the catalog's databases are listed (not `information_schema`, `sys`, ...).
//! - `SELECT COUNT(*) FROM [db.]t`: the number of stored rows; the select list may also hold
//!   integer and string literals (`SELECT 0 AS i, COUNT(*) AS n FROM db.t`), and such
//!   selects may be joined with `UNION ALL` (one row per branch, in branch order, though
//!   StarRocks promises no order; the first branch names the columns). Branches with
//!   different numbers of columns get `Operands have unequal number of columns` (the
//!   analyzer's wording in the StarRocks/Doris sources read; the exact text of current
//!   releases is not checked), and one unknown table fails the whole statement. **Not
//!   modelled:** `UNION` (distinct), `UNION ALL` of anything but such counts, `WHERE` on a
//!   count.
//! - `SELECT <columns> FROM [db.]t [WHERE <condition>] [ORDER BY c [ASC|DESC], ...]
//!   [LIMIT n]` over the stored rows (what a reader of target tables, such as pgsnap's
//!   `verify`, sends). The condition is comparisons `column <op> literal` (`=`, `<>`, `!=`,
//!   `<`, `<=`, `>`, `>=`; literals: numbers with an optional `-`, strings, `TRUE`, `FALSE`,
//!   `NULL`) combined with `AND`, `OR` and parentheses. Comparisons are typed, as StarRocks
//!   compares the column's values: integers, BOOLEAN and DECIMAL exactly as numbers, FLOAT
//!   and DOUBLE as doubles, DATE and DATETIME chronologically, CHAR/VARCHAR byte for byte; a
//!   NULL cell (or a `NULL` literal) never satisfies a comparison. `ORDER BY` sorts the same
//!   way, NULLs first when ascending. Result columns are typed `BIGINT` for integer columns
//!   and `VARCHAR` otherwise, with the stored canonical text.
//!   **Not modelled** (answered `test double: ... not modelled`): `SELECT *`, expressions and
//!   functions in the select list or the condition, `IN` (on stored rows; it is modelled
//!   on `information_schema`), `BETWEEN`, `LIKE`, `IS [NOT] NULL`,
//!   `NOT`, row-value comparisons `(a, b) > (x, y)`, comparisons or ordering on JSON, ARRAY
//!   and VARBINARY columns, `GROUP BY`, joins, `OFFSET`, and literal forms the lexer does not
//!   know (exponents, hex). Implicit casts of a literal of another type (a number against a
//!   VARCHAR column is compared as text).
//! - `CREATE DATABASE [IF NOT EXISTS] db`, `DROP DATABASE [IF EXISTS] db [FORCE]`,
//!   `CREATE TABLE ...` (parsed and validated by the private `ddl` module),
//!   `DROP TABLE [IF EXISTS] [db.]t [FORCE]`, `USE db`. Every such DDL statement that parses
//!   is appended, as received, to
//!   [`CatalogState::ddl_log`](super::catalog::CatalogState::ddl_log) before it runs.
//! - `CREATE ROUTINE LOAD`, `PAUSE`/`RESUME`/`STOP ROUTINE LOAD FOR`, `SHOW [ALL] ROUTINE
//!   LOAD`: see [`super::routine_load`] (only when the front belongs to a
//!   [`StarRocksDouble`](super::StarRocksDouble); not logged in `ddl_log`).
//!
//! Every statement received (`COM_QUERY`, as sent, connect-time queries included) is appended
//! to [`CatalogState::statements`](super::catalog::CatalogState::statements), so a test can
//! count what a client sent.
//!
//! Table names are case-sensitive (StarRocks' default `lower_case_table_names = 0`), but the
//! catalog keys tables by lower-cased name, so two tables whose names differ only in case
//! cannot coexist in the double (`test double: ... not modelled`). Column names are matched
//! case-insensitively.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use opensrv_mysql::{
    AsyncMysqlIntermediary, AsyncMysqlShim, Column, ColumnFlags, ColumnType, ErrorKind, InitWriter,
    OkResponse, ParamParser, QueryResultWriter, StatementMetaWriter,
};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};

use super::Shared;
use super::catalog::{Catalog, CatalogState, Cell, KeysType, SrType, TableDef};
use super::ddl::{
    self, CmpOp, Cond, InfoQuery, Literal, RowQuery, SelectExpr, SqlError, Statement,
};
use super::routine_load::{self, StarRocksVersion};

/// The server version in the handshake and `@@version` of StarRocks 3.4+ (`5.1.0` before).
fn server_version(version: &StarRocksVersion) -> &'static str {
    if (version.major, version.minor) >= (3, 4) { "8.0.33" } else { "5.1.0" }
}

const ER_ACCESS_DENIED_ERROR: u16 = 1045;
const ER_TABLE_EXISTS_ERROR: u16 = 1050;
const ER_BAD_TABLE_ERROR: u16 = 1051;
const ER_DB_CREATE_EXISTS: u16 = 1007;
const ER_DB_DROP_EXISTS: u16 = 1008;
const ER_UNSUPPORTED_PS: u16 = 1295;

/// Serves the MySQL-protocol front of the StarRocks test double on `listener`: one task per
/// connection, all sharing `catalog`. Only `user` with `password` may log in (an empty
/// `password` means none). Runs until the task is aborted.
///
/// This front alone has no Routine Load (the statements fail with a `test double:` message)
/// and plays StarRocks 3.4.2; a [`StarRocksDouble`](super::StarRocksDouble) serves the full
/// front.
pub async fn serve(listener: TcpListener, catalog: Catalog, user: String, password: String) {
    serve_inner(listener, catalog, user, password, None).await;
}

/// Serves the front of a whole double (Routine Load, its version).
pub(crate) async fn serve_double(listener: TcpListener, shared: Arc<Shared>) {
    let (catalog, user, password) =
        (shared.catalog.clone(), shared.options.user.clone(), shared.options.password.clone());
    serve_inner(listener, catalog, user, password, Some(shared)).await;
}

async fn serve_inner(
    listener: TcpListener,
    catalog: Catalog,
    user: String,
    password: String,
    double: Option<Arc<Shared>>,
) {
    let auth = Arc::new(Credentials { user, password });
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(handle_connection(
                    stream,
                    peer,
                    catalog.clone(),
                    Arc::clone(&auth),
                    double.clone(),
                ));
            }
            // E.g. out of file descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[derive(Debug)]
struct Credentials {
    user: String,
    password: String,
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    catalog: Catalog,
    auth: Arc<Credentials>,
    double: Option<Arc<Shared>>,
) {
    static NEXT_CONNECTION_ID: AtomicU32 = AtomicU32::new(1);
    let _ = stream.set_nodelay(true);
    let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let auth_failure = Arc::new(Mutex::new(None));
    let version = double.as_ref().map(|d| d.options.version).unwrap_or_default();
    let session = Session {
        id,
        salt: make_salt(id),
        peer,
        catalog,
        auth,
        auth_failure: Arc::clone(&auth_failure),
        user: Mutex::new(String::new()),
        current_db: None,
        vars: default_variables(&version),
        version,
        double,
    };
    let (reader, writer) = stream.into_split();
    let writer = AuthErrorRewriter::new(writer, auth_failure);
    // Errors here are client disconnects or protocol errors: the connection just ends.
    let _ = AsyncMysqlIntermediary::run_on(session, reader, writer).await;
}

/// A 20-byte scramble of printable characters other than `$` (as opensrv expects).
fn make_salt(id: u32) -> [u8; 20] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(id) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    let mut salt = [0u8; 20];
    for b in &mut salt {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = 0x21 + (x % 94) as u8;
        if *b == b'$' {
            *b = b'%';
        }
    }
    salt
}

/// `mysql_native_password`: `SHA1(password) XOR SHA1(salt + SHA1(SHA1(password)))`.
fn native_password_scramble(salt: &[u8], password: &str) -> [u8; 20] {
    let h1: [u8; 20] = Sha1::digest(password.as_bytes()).into();
    let h2: [u8; 20] = Sha1::digest(h1).into();
    let mut hasher = Sha1::new();
    hasher.update(salt);
    hasher.update(h2);
    let h3: [u8; 20] = hasher.finalize().into();
    let mut out = [0u8; 20];
    for i in 0..20 {
        out[i] = h1[i] ^ h3[i];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Access-denied rewriting

/// Wraps the connection's write half so that a failed login is reported as MySQL error 1045
/// with a MySQL/StarRocks-style message. (`opensrv-mysql` reports a failed
/// `authenticate` with its own code and text; once the session records a failure, this
/// writer swallows what opensrv writes and sends our error packet, with opensrv's sequence
/// number, instead.)
struct AuthErrorRewriter<W> {
    inner: W,
    failure: Arc<Mutex<Option<String>>>,
    swallowed: Vec<u8>,
    replacement: Vec<u8>,
    written: usize,
    replaced: bool,
}

impl<W> AuthErrorRewriter<W> {
    fn new(inner: W, failure: Arc<Mutex<Option<String>>>) -> Self {
        AuthErrorRewriter {
            inner,
            failure,
            swallowed: Vec::new(),
            replacement: Vec::new(),
            written: 0,
            replaced: false,
        }
    }

    fn failed(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AuthErrorRewriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replaced || this.failed().is_some() {
            this.swallowed.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replaced
            && this.swallowed.len() >= 4
            && let Some(message) = this.failed()
        {
            let seq = this.swallowed[3];
            let mut payload = vec![0xff];
            payload.extend_from_slice(&ER_ACCESS_DENIED_ERROR.to_le_bytes());
            payload.extend_from_slice(b"#28000");
            payload.extend_from_slice(message.as_bytes());
            let len = (payload.len() as u32).to_le_bytes();
            this.replacement = vec![len[0], len[1], len[2], seq];
            this.replacement.extend_from_slice(&payload);
            this.replaced = true;
        }
        while this.written < this.replacement.len() {
            let n = std::task::ready!(
                Pin::new(&mut this.inner).poll_write(cx, &this.replacement[this.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.written += n;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// Session

/// One client connection.
struct Session {
    id: u32,
    salt: [u8; 20],
    peer: SocketAddr,
    catalog: Catalog,
    auth: Arc<Credentials>,
    /// Set by `authenticate` on failure: the 1045 message.
    auth_failure: Arc<Mutex<Option<String>>>,
    /// The logged-in user.
    user: Mutex<String>,
    current_db: Option<String>,
    /// Session variables: lower-cased name → value.
    vars: Vec<(String, Value)>,
    /// The StarRocks release played.
    version: StarRocksVersion,
    /// The whole double (Routine Load), unless this front runs alone.
    double: Option<Arc<Shared>>,
}

/// A session variable's value.
#[derive(Debug, Clone)]
enum Value {
    Int(i64),
    Str(String),
}

fn default_variables(version: &StarRocksVersion) -> Vec<(String, Value)> {
    use Value::{Int, Str};
    let s = |v: &str| Str(v.to_owned());
    vec![
        ("max_allowed_packet".into(), Int(33_554_432)),
        ("wait_timeout".into(), Int(28_800)),
        ("interactive_timeout".into(), Int(3_600)),
        ("net_read_timeout".into(), Int(60)),
        ("net_write_timeout".into(), Int(60)),
        ("query_timeout".into(), Int(300)),
        ("autocommit".into(), Int(1)),
        ("auto_increment_increment".into(), Int(1)),
        ("lower_case_table_names".into(), Int(0)),
        ("version".into(), s(server_version(version))),
        ("version_comment".into(), Str(format!("StarRocks version {}", version.current_version()))),
        ("sql_mode".into(), s("ONLY_FULL_GROUP_BY")),
        ("time_zone".into(), s("UTC")),
        ("system_time_zone".into(), s("UTC")),
        ("character_set_client".into(), s("utf8")),
        ("character_set_connection".into(), s("utf8")),
        ("character_set_results".into(), s("utf8")),
        ("character_set_server".into(), s("utf8")),
        ("collation_connection".into(), s("utf8_general_ci")),
        ("collation_server".into(), s("utf8_general_ci")),
        ("transaction_isolation".into(), s("REPEATABLE-READ")),
        ("tx_isolation".into(), s("REPEATABLE-READ")),
        ("init_connect".into(), s("")),
        ("license".into(), s("Apache License 2.0")),
    ]
}

/// What to send back for a statement.
enum Response {
    Ok,
    Rows { columns: Vec<(String, ColumnType)>, rows: Vec<Vec<Cell>> },
}

const VARCHAR: ColumnType = ColumnType::MYSQL_TYPE_VAR_STRING;
const BIGINT: ColumnType = ColumnType::MYSQL_TYPE_LONGLONG;

impl Session {
    fn log(&self, sql: &str) {
        if std::env::var_os("PGSNAP_STARROCKS_DOUBLE_LOG").is_some() {
            eprintln!("starrocks test double mysql[{}]: {sql}", self.id);
        }
    }

    fn user(&self) -> String {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn var(&self, name: &str) -> Option<&Value> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn unknown_variable(name: &str) -> SqlError {
        SqlError::analysis(format!("Unknown system variable '{name}'"))
    }

    /// The database a possibly unqualified name refers to.
    fn resolve_db(&self, db: Option<&str>) -> Result<String, SqlError> {
        match db.or(self.current_db.as_deref()) {
            Some(db) => Ok(db.to_owned()),
            None => Err(SqlError::no_database()),
        }
    }

    fn execute(&mut self, sql: &str) -> Result<Response, SqlError> {
        let stmt = ddl::parse_statement(sql)?;
        if stmt.is_ddl() {
            self.catalog.lock().ddl_log.push(sql.to_owned());
        }
        match stmt {
            Statement::SelectExprs(items) => {
                let mut columns = Vec::new();
                let mut row = Vec::new();
                for item in items {
                    let (ty, cell) = match &item.expr {
                        SelectExpr::Variable(name) => match self.var(name) {
                            Some(Value::Int(v)) => (BIGINT, Some(v.to_string())),
                            Some(Value::Str(v)) => (VARCHAR, Some(v.clone())),
                            None => return Err(Self::unknown_variable(name)),
                        },
                        SelectExpr::Function(name) => match name.as_str() {
                            "version" => (VARCHAR, Some(server_version(&self.version).to_owned())),
                            "current_version" => (VARCHAR, Some(self.version.current_version())),
                            "database" | "schema" => (VARCHAR, self.current_db.clone()),
                            "connection_id" => (BIGINT, Some(self.id.to_string())),
                            "user" | "current_user" | "session_user" => {
                                (VARCHAR, Some(format!("'{}'@'{}'", self.user(), self.peer.ip())))
                            }
                            other => {
                                return Err(SqlError::new(
                                    ddl::ER_NOT_SUPPORTED_YET,
                                    format!("test double: function {other}() not modelled"),
                                ));
                            }
                        },
                        SelectExpr::Integer(n) => (BIGINT, Some(n.clone())),
                        SelectExpr::Str(s) => (VARCHAR, Some(s.clone())),
                    };
                    columns.push((item.header, ty));
                    row.push(cell);
                }
                Ok(Response::Rows { columns, rows: vec![row] })
            }
            Statement::Set(assignments) => {
                for (name, value) in assignments {
                    if name == "names" {
                        for var in [
                            "character_set_client",
                            "character_set_connection",
                            "character_set_results",
                        ] {
                            self.set_var(var, Value::Str(value.clone()));
                        }
                        continue;
                    }
                    let new = match self.var(&name) {
                        Some(Value::Int(_)) => match value.parse::<i64>() {
                            Ok(v) => Value::Int(v),
                            Err(_) => match value.to_ascii_uppercase().as_str() {
                                "ON" | "TRUE" => Value::Int(1),
                                "OFF" | "FALSE" => Value::Int(0),
                                _ => {
                                    return Err(SqlError::analysis(format!(
                                        "Incorrect argument type to variable '{name}'"
                                    )));
                                }
                            },
                        },
                        Some(Value::Str(_)) => Value::Str(value),
                        None => return Err(Self::unknown_variable(&name)),
                    };
                    self.set_var(&name, new);
                }
                Ok(Response::Ok)
            }
            Statement::RoutineLoad(text) => {
                let Some(double) = &self.double else {
                    return Err(SqlError::new(
                        ddl::ER_NOT_SUPPORTED_YET,
                        "test double: Routine Load needs a StarRocksDouble (this MySQL front runs \
                         alone)",
                    ));
                };
                match routine_load::execute(double, self.current_db.as_deref(), &text)? {
                    None => Ok(Response::Ok),
                    Some((names, rows)) => Ok(Response::Rows {
                        columns: names.into_iter().map(|n| (n.to_owned(), VARCHAR)).collect(),
                        rows,
                    }),
                }
            }
            Statement::Use(db) => {
                if !self.catalog.lock().databases.contains_key(&db) {
                    return Err(SqlError::unknown_database(&db));
                }
                self.current_db = Some(db);
                Ok(Response::Ok)
            }
            Statement::InfoSchema(query) => {
                let state = self.catalog.lock();
                info_schema(&state, &query)
            }
            Statement::SelectCounts(branches) => {
                // Every table is resolved before anything is answered: one unknown table fails
                // the whole statement, as StarRocks' analyzer does.
                let state = self.catalog.lock();
                let mut rows = Vec::with_capacity(branches.len());
                for b in &branches {
                    let db = self.resolve_db(b.db.as_deref())?;
                    let Some(database) = state.databases.get(&db) else {
                        return Err(SqlError::unknown_database(&db));
                    };
                    let Some(t) = database.table(&b.table) else {
                        return Err(SqlError::analysis(format!(
                            "Unknown table '{db}.{}'",
                            b.table
                        )));
                    };
                    rows.push(
                        b.items
                            .iter()
                            .map(|(_, item)| match item {
                                None => Some(t.rows.len().to_string()),
                                Some(SelectExpr::Integer(n) | SelectExpr::Str(n)) => {
                                    Some(n.clone())
                                }
                                Some(_) => None,
                            })
                            .collect(),
                    );
                }
                // The first branch names and types the result columns.
                let columns = branches[0]
                    .items
                    .iter()
                    .map(|(header, item)| {
                        let ty = match item {
                            None | Some(SelectExpr::Integer(_)) => BIGINT,
                            Some(_) => VARCHAR,
                        };
                        (header.clone(), ty)
                    })
                    .collect();
                Ok(Response::Rows { columns, rows })
            }
            Statement::SelectRows(query) => {
                let db = self.resolve_db(query.db.as_deref())?;
                let state = self.catalog.lock();
                let Some(database) = state.databases.get(&db) else {
                    return Err(SqlError::unknown_database(&db));
                };
                let Some(t) = database.table(&query.table) else {
                    return Err(SqlError::analysis(format!(
                        "Unknown table '{db}.{}'",
                        query.table
                    )));
                };
                select_rows(t, &query)
            }
            Statement::CreateDatabase { name, if_not_exists } => {
                let mut state = self.catalog.lock();
                if state.databases.contains_key(&name) {
                    if if_not_exists {
                        return Ok(Response::Ok);
                    }
                    return Err(SqlError::new(
                        ER_DB_CREATE_EXISTS,
                        format!("Can't create database '{name}'; database exists"),
                    ));
                }
                state.databases.insert(name, Default::default());
                Ok(Response::Ok)
            }
            Statement::DropDatabase { name, if_exists } => {
                let mut state = self.catalog.lock();
                if state.databases.remove(&name).is_none() && !if_exists {
                    return Err(SqlError::new(
                        ER_DB_DROP_EXISTS,
                        format!("Can't drop database '{name}'; database doesn't exist"),
                    ));
                }
                drop(state);
                if self.current_db.as_deref() == Some(name.as_str()) {
                    self.current_db = None;
                }
                Ok(Response::Ok)
            }
            Statement::CreateTable(create) => {
                let db = self.resolve_db(create.db.as_deref())?;
                let mut state = self.catalog.lock();
                let Some(database) = state.databases.get_mut(&db) else {
                    return Err(SqlError::unknown_database(&db));
                };
                let key = create.name.to_lowercase();
                if let Some(existing) = database.tables.get(&key) {
                    if existing.name != create.name {
                        return Err(SqlError::new(
                            ddl::ER_NOT_SUPPORTED_YET,
                            format!(
                                "test double: tables whose names differ only in case ('{}' and \
                                 '{}') not modelled",
                                existing.name, create.name
                            ),
                        ));
                    }
                    if create.if_not_exists {
                        return Ok(Response::Ok);
                    }
                    return Err(SqlError::new(
                        ER_TABLE_EXISTS_ERROR,
                        format!("Table '{}' already exists", create.name),
                    ));
                }
                database.tables.insert(key, create.to_table_def(sql));
                Ok(Response::Ok)
            }
            Statement::DropTable { db, table, if_exists } => {
                let db = self.resolve_db(db.as_deref())?;
                let mut state = self.catalog.lock();
                let Some(database) = state.databases.get_mut(&db) else {
                    return Err(SqlError::unknown_database(&db));
                };
                let key = table.to_lowercase();
                if database.tables.get(&key).is_some_and(|t| t.name == table) {
                    database.tables.remove(&key);
                } else if !if_exists {
                    return Err(SqlError::new(
                        ER_BAD_TABLE_ERROR,
                        format!("Unknown table '{table}'"),
                    ));
                }
                Ok(Response::Ok)
            }
        }
    }

    fn set_var(&mut self, name: &str, value: Value) {
        if let Some(slot) = self.vars.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
        }
    }
}

/// Answers an `information_schema` query from the catalog.
fn info_schema(state: &CatalogState, query: &InfoQuery) -> Result<Response, SqlError> {
    let s = |v: &str| Some(v.to_owned());
    let (all_columns, rows): (&[(&str, ColumnType)], Vec<Vec<Cell>>) = match query.table.as_str() {
        "schemata" => (
            &[
                ("CATALOG_NAME", VARCHAR),
                ("SCHEMA_NAME", VARCHAR),
                ("DEFAULT_CHARACTER_SET_NAME", VARCHAR),
                ("DEFAULT_COLLATION_NAME", VARCHAR),
                ("SQL_PATH", VARCHAR),
            ],
            state
                .databases
                .keys()
                .map(|db| vec![s("def"), s(db), s("utf8"), s("utf8_general_ci"), None])
                .collect(),
        ),
        "tables" => (
            &[
                ("TABLE_CATALOG", VARCHAR),
                ("TABLE_SCHEMA", VARCHAR),
                ("TABLE_NAME", VARCHAR),
                ("TABLE_TYPE", VARCHAR),
                ("ENGINE", VARCHAR),
                ("TABLE_ROWS", BIGINT),
                ("TABLE_COMMENT", VARCHAR),
            ],
            state
                .databases
                .iter()
                .flat_map(|(db, d)| {
                    d.tables.values().map(move |t| {
                        vec![
                            s("def"),
                            s(db),
                            s(&t.name),
                            s("BASE TABLE"),
                            s("StarRocks"),
                            Some(t.rows.len().to_string()),
                            s(""),
                        ]
                    })
                })
                .collect(),
        ),
        "columns" => (
            &[
                ("TABLE_CATALOG", VARCHAR),
                ("TABLE_SCHEMA", VARCHAR),
                ("TABLE_NAME", VARCHAR),
                ("COLUMN_NAME", VARCHAR),
                ("ORDINAL_POSITION", BIGINT),
                ("COLUMN_DEFAULT", VARCHAR),
                ("IS_NULLABLE", VARCHAR),
                ("DATA_TYPE", VARCHAR),
                ("CHARACTER_MAXIMUM_LENGTH", BIGINT),
                ("COLUMN_TYPE", VARCHAR),
                ("COLUMN_KEY", VARCHAR),
                ("EXTRA", VARCHAR),
            ],
            state
                .databases
                .iter()
                .flat_map(|(db, d)| {
                    d.tables.values().flat_map(move |t| {
                        let key_tag = match t.keys_type {
                            KeysType::Primary => "PRI",
                            KeysType::Duplicate => "DUP",
                        };
                        t.columns.iter().enumerate().map(move |(i, c)| {
                            let (data_type, column_type) = c.ty.information_schema_shapes();
                            let is_key =
                                t.key_columns.iter().any(|k| k.eq_ignore_ascii_case(&c.name));
                            let max_len = match c.ty {
                                SrType::Char(n) | SrType::Varchar(n) => Some(n.to_string()),
                                _ => None,
                            };
                            vec![
                                None, // TABLE_CATALOG: NULL, as the BE scanner fills it
                                s(db),
                                s(&t.name),
                                s(&c.name),
                                Some((i + 1).to_string()),
                                None,
                                s(if c.nullable { "YES" } else { "NO" }),
                                Some(data_type),
                                max_len,
                                Some(column_type),
                                s(if is_key { key_tag } else { "" }),
                                s(""),
                            ]
                        })
                    })
                })
                .collect(),
        ),
        other => {
            return Err(SqlError::new(
                ddl::ER_NOT_SUPPORTED_YET,
                format!("test double: information_schema.{other} not modelled"),
            ));
        }
    };

    let index = |name: &str| -> Result<usize, SqlError> {
        all_columns.iter().position(|(c, _)| *c == name).ok_or_else(|| {
            SqlError::new(
                ddl::ER_NOT_SUPPORTED_YET,
                format!("test double: information_schema.{}.{name} not modelled", query.table),
            )
        })
    };

    let filters = query
        .filters
        .iter()
        .map(|(c, v)| Ok((index(c)?, v)))
        .collect::<Result<Vec<_>, SqlError>>()?;
    let mut rows: Vec<Vec<Cell>> = rows
        .into_iter()
        .filter(|row| {
            filters.iter().all(|(i, values)| {
                row[*i].as_deref().is_some_and(|cell| values.iter().any(|v| v == cell))
            })
        })
        .collect();

    for (col, desc) in query.order_by.iter().rev() {
        let i = index(col)?;
        let numeric = all_columns[i].1 == BIGINT;
        rows.sort_by(|a, b| {
            let ord = if numeric {
                let n = |c: &Cell| c.as_deref().and_then(|v| v.parse::<i64>().ok());
                n(&a[i]).cmp(&n(&b[i]))
            } else {
                a[i].cmp(&b[i])
            };
            if *desc { ord.reverse() } else { ord }
        });
    }

    let selected: Vec<usize> = match &query.columns {
        None => (0..all_columns.len()).collect(),
        Some(cols) => cols.iter().map(|c| index(c)).collect::<Result<_, _>>()?,
    };
    Ok(Response::Rows {
        columns: selected
            .iter()
            .map(|&i| (all_columns[i].0.to_owned(), all_columns[i].1))
            .collect(),
        rows: rows
            .into_iter()
            .map(|row| selected.iter().map(|&i| row[i].clone()).collect())
            .collect(),
    })
}

/// Answers `SELECT <columns> FROM t [WHERE ...] [ORDER BY ...] [LIMIT n]` from a table's
/// stored rows, comparing typed (see the module docs).
fn select_rows(t: &TableDef, q: &RowQuery) -> Result<Response, SqlError> {
    let index = |name: &str| -> Result<usize, SqlError> {
        t.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| SqlError::analysis(format!("Column '{name}' cannot be resolved")))
    };
    let selected: Vec<usize> = q.columns.iter().map(|c| index(c)).collect::<Result<_, _>>()?;
    let order: Vec<(usize, bool)> =
        q.order_by.iter().map(|(c, d)| Ok((index(c)?, *d))).collect::<Result<_, SqlError>>()?;
    for (i, _) in &order {
        if matches!(t.columns[*i].ty, SrType::Json | SrType::Array(_) | SrType::Varbinary) {
            return Err(SqlError::not_modelled(format!(
                "ORDER BY a {:?} column",
                t.columns[*i].ty
            )));
        }
    }
    let mut rows: Vec<&Vec<Cell>> = Vec::new();
    for row in &t.rows {
        let keep = match &q.filter {
            None => true,
            Some(cond) => eval_cond(t, row, cond, &index)?,
        };
        if keep {
            rows.push(row);
        }
    }
    let mut failure = None;
    rows.sort_by(|a, b| {
        for &(i, desc) in &order {
            let ord = match (&a[i], &b[i]) {
                (None, None) => Some(std::cmp::Ordering::Equal),
                // NULLs first in ascending order (StarRocks' default), last in descending.
                (None, Some(_)) => Some(std::cmp::Ordering::Less),
                (Some(_), None) => Some(std::cmp::Ordering::Greater),
                (Some(x), Some(y)) => cmp_typed(&t.columns[i].ty, x, &Literal::Str(y.clone())),
            };
            let Some(ord) = ord else {
                failure = Some(i);
                return std::cmp::Ordering::Equal;
            };
            let ord = if desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    if let Some(i) = failure {
        return Err(SqlError::not_modelled(format!(
            "ORDER BY column {} whose stored values do not compare",
            t.columns[i].name
        )));
    }
    let limit = q.limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    Ok(Response::Rows {
        columns: selected
            .iter()
            .map(|&i| {
                let c = &t.columns[i];
                let ty = match c.ty {
                    SrType::TinyInt | SrType::SmallInt | SrType::Int | SrType::BigInt => BIGINT,
                    _ => VARCHAR,
                };
                (c.name.clone(), ty)
            })
            .collect(),
        rows: rows
            .into_iter()
            .take(limit)
            .map(|row| selected.iter().map(|&i| row[i].clone()).collect())
            .collect(),
    })
}

/// Whether `cond` holds for `row` (a comparison with NULL, or of a NULL cell, is false).
fn eval_cond(
    t: &TableDef,
    row: &[Cell],
    cond: &Cond,
    index: &dyn Fn(&str) -> Result<usize, SqlError>,
) -> Result<bool, SqlError> {
    Ok(match cond {
        Cond::And(parts) => {
            for p in parts {
                if !eval_cond(t, row, p, index)? {
                    return Ok(false);
                }
            }
            true
        }
        Cond::Or(parts) => {
            for p in parts {
                if eval_cond(t, row, p, index)? {
                    return Ok(true);
                }
            }
            false
        }
        Cond::Cmp { column, op, value } => {
            let i = index(column)?;
            let Some(cell) = &row[i] else { return Ok(false) };
            if *value == Literal::Null {
                return Ok(false);
            }
            let ty = &t.columns[i].ty;
            let Some(ord) = cmp_typed(ty, cell, value) else {
                return Err(SqlError::not_modelled(format!(
                    "comparing the {ty:?} column {column} with {value:?}"
                )));
            };
            use std::cmp::Ordering::{Equal, Greater, Less};
            match op {
                CmpOp::Eq => ord == Equal,
                CmpOp::Ne => ord != Equal,
                CmpOp::Lt => ord == Less,
                CmpOp::Le => ord != Greater,
                CmpOp::Gt => ord == Greater,
                CmpOp::Ge => ord != Less,
            }
        }
    })
}

/// Compares a stored cell of type `ty` with a literal as StarRocks compares the column's
/// values: integers and decimals numerically (exactly), floats as doubles, dates and
/// datetimes chronologically, strings byte for byte. `None` where the double does not model
/// the comparison (JSON, ARRAY, VARBINARY, a literal that is not of the type).
fn cmp_typed(ty: &SrType, cell: &str, lit: &Literal) -> Option<std::cmp::Ordering> {
    let text = match lit {
        Literal::Number(n) | Literal::Str(n) => n.clone(),
        Literal::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Literal::Null => return None,
    };
    match ty {
        SrType::Boolean
        | SrType::TinyInt
        | SrType::SmallInt
        | SrType::Int
        | SrType::BigInt
        | SrType::LargeInt
        | SrType::Decimal(..) => cmp_decimal(cell, &text),
        SrType::Float | SrType::Double => {
            let a = super::value::string_to_float(cell)?;
            let b = super::value::string_to_float(&text)?;
            a.partial_cmp(&b)
        }
        SrType::Date | SrType::DateTime => {
            let a = super::value::parse_timestamp(cell)?;
            let b = super::value::parse_timestamp(&text)?;
            Some(a.sort_key().cmp(&b.sort_key()))
        }
        SrType::Char(_) | SrType::Varchar(_) => Some(cell.as_bytes().cmp(text.as_bytes())),
        _ => None,
    }
}

/// Compares two decimal texts (`[+-]digits[.digits]`) exactly.
fn cmp_decimal(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn parts(s: &str) -> Option<(bool, String, String)> {
        let (neg, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let zero = int.is_empty() && frac.is_empty();
        Some((neg && !zero, int, frac))
    }
    let (an, ai, af) = parts(a)?;
    let (bn, bi, bf) = parts(b)?;
    let magnitude = ai.len().cmp(&bi.len()).then_with(|| ai.cmp(&bi)).then_with(|| af.cmp(&bf));
    Some(match (an, bn) {
        (false, true) => std::cmp::Ordering::Greater,
        (true, false) => std::cmp::Ordering::Less,
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
    })
}

async fn write_error<W: AsyncWrite + Send + Unpin>(
    results: QueryResultWriter<'_, W>,
    err: &SqlError,
) -> io::Result<()> {
    results.error(ErrorKind::from(err.code), err.message.as_bytes()).await
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin> AsyncMysqlShim<W> for Session {
    type Error = io::Error;

    fn version(&self) -> String {
        server_version(&self.version).to_owned()
    }

    fn connect_id(&self) -> u32 {
        self.id
    }

    fn salt(&self) -> [u8; 20] {
        self.salt
    }

    async fn authenticate(
        &self,
        _auth_plugin: &str,
        username: &[u8],
        salt: &[u8],
        auth_data: &[u8],
    ) -> bool {
        let username = String::from_utf8_lossy(username).into_owned();
        let password_ok = if self.auth.password.is_empty() {
            auth_data.is_empty()
        } else {
            auth_data == native_password_scramble(salt, &self.auth.password)
        };
        if username == self.auth.user && password_ok {
            *self.user.lock().unwrap_or_else(|e| e.into_inner()) = username;
            return true;
        }
        let message = format!(
            "Access denied for user '{username}'@'{}' (using password: {})",
            self.peer.ip(),
            if auth_data.is_empty() { "NO" } else { "YES" }
        );
        *self.auth_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        false
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a str,
        info: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        self.log(&format!("PREPARE {query}"));
        info.error(
            ErrorKind::from(ER_UNSUPPORTED_PS),
            b"test double: prepared statements not modelled; use text queries".as_slice(),
        )
        .await
    }

    async fn on_execute<'a>(
        &'a mut self,
        _id: u32,
        _params: ParamParser<'a>,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        results
            .error(
                ErrorKind::from(ER_UNSUPPORTED_PS),
                b"test double: prepared statements not modelled; use text queries".as_slice(),
            )
            .await
    }

    async fn on_close<'a>(&'a mut self, _stmt: u32)
    where
        W: 'async_trait,
    {
    }

    async fn on_query<'a>(
        &'a mut self,
        query: &'a str,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        self.log(query);
        self.catalog.lock().statements.push(query.to_owned());
        match self.execute(query) {
            Err(err) => write_error(results, &err).await,
            Ok(Response::Ok) => results.completed(OkResponse::default()).await,
            Ok(Response::Rows { columns, rows }) => {
                let columns: Vec<Column> = columns
                    .into_iter()
                    .map(|(name, coltype)| Column {
                        table: String::new(),
                        column: name,
                        coltype,
                        colflags: ColumnFlags::empty(),
                    })
                    .collect();
                let mut w = results.start(&columns).await?;
                for row in rows {
                    for cell in &row {
                        w.write_col(cell.as_deref())?;
                    }
                    w.end_row().await?;
                }
                w.finish().await
            }
        }
    }

    async fn on_init<'a>(&'a mut self, db: &'a str, writer: InitWriter<'a, W>) -> io::Result<()> {
        self.log(&format!("COM_INIT_DB {db}"));
        let exists = self.catalog.lock().databases.contains_key(db);
        if exists {
            self.current_db = Some(db.to_owned());
            writer.ok().await
        } else {
            writer
                .error(
                    ErrorKind::from(ddl::ER_BAD_DB_ERROR),
                    format!("Unknown database '{db}'").as_bytes(),
                )
                .await
        }
    }
}

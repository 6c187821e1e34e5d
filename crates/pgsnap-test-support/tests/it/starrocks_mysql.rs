//! The MySQL-protocol front of the StarRocks test double, driven by `mysql_async`.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error, OptsBuilder, Row};
use pgsnap_test_support::starrocks::catalog::{Catalog, KeysType, SrType};
use pgsnap_test_support::starrocks::mysql::serve;
use tokio::net::TcpListener;

/// A running front: its port and catalog (with a database `db1`).
struct Front {
    port: u16,
    catalog: Catalog,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(user: &str, password: &str) -> Front {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let catalog = Catalog::default();
    catalog.create_database("db1");
    let task = tokio::spawn(serve(listener, catalog.clone(), user.to_owned(), password.to_owned()));
    Front { port, catalog, task }
}

/// Connection options for the front on `port` (also used by the Routine Load tests).
pub(crate) fn opts(port: u16, user: &str, password: &str, db: Option<&str>) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .db_name(db)
        // StarRocks has no @@socket: see the module docs of `starrocks::mysql`.
        .prefer_socket(false)
}

async fn connect(front: &Front, db: Option<&str>) -> Conn {
    Conn::new(opts(front.port, "root", "secret", db)).await.unwrap()
}

/// The server error (code, message) of a failed call.
pub(crate) fn server_error<T: std::fmt::Debug>(result: Result<T, Error>) -> (u16, String) {
    match result {
        Err(Error::Server(e)) => (e.code, e.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

const SINK_DDL: &str = "CREATE TABLE IF NOT EXISTS `db1`.`orders` (
  `id` BIGINT NOT NULL COMMENT 'pg: bigint',
  `region` VARCHAR(48) NOT NULL COMMENT 'pg: character varying(16)',
  `name` VARCHAR(400) NULL COMMENT 'pg: character varying(100), it\\'s'
)
PRIMARY KEY(`id`, `region`)
DISTRIBUTED BY HASH(`id`)
PROPERTIES (\"replication_num\" = \"1\")";

#[tokio::test]
async fn connect_and_session_statements() {
    let front = start("root", "secret").await;
    let mut conn = connect(&front, None).await;
    let row: Row = conn
        .query_first("SELECT @@version, version(), @@max_allowed_packet, @@session.wait_timeout, 1")
        .await
        .unwrap()
        .unwrap();
    let (version, version_fn, packet, wait, one): (String, String, u64, u64, i64) =
        mysql_async::from_row(row);
    assert_eq!((version.as_str(), version_fn.as_str()), ("8.0.33", "8.0.33"));
    assert_eq!((packet, wait, one), (33_554_432, 28_800, 1));

    conn.query_drop("SET NAMES utf8mb4").await.unwrap();
    conn.query_drop("set session query_timeout = 600, autocommit = 1").await.unwrap();
    let timeout: Option<i64> = conn.query_first("select @@query_timeout").await.unwrap();
    assert_eq!(timeout, Some(600));
    let db: Option<Option<String>> = conn.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(db, Some(None));
    conn.query_drop("USE db1").await.unwrap();
    let db: Option<String> = conn.query_first("SELECT database()").await.unwrap();
    assert_eq!(db.as_deref(), Some("db1"));

    let (code, message) = server_error(conn.query_drop("SELECT @@no_such_var").await);
    assert_eq!(code, 1064);
    assert!(message.contains("Unknown system variable 'no_such_var'"), "{message}");
    conn.ping().await.unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_async_default_socket_probe_fails_like_starrocks() {
    let front = start("root", "secret").await;
    let opts = opts(front.port, "root", "secret", None).prefer_socket(true);
    let (code, message) = server_error(Conn::new(opts).await);
    assert_eq!(code, 1064);
    assert!(message.contains("Unknown system variable 'socket'"), "{message}");
}

#[tokio::test]
async fn authentication() {
    let front = start("root", "secret").await;
    let (code, message) = server_error(Conn::new(opts(front.port, "root", "wrong", None)).await);
    assert_eq!(code, 1045);
    assert_eq!(message, "Access denied for user 'root'@'127.0.0.1' (using password: YES)");
    let (code, message) = server_error(Conn::new(opts(front.port, "bob", "secret", None)).await);
    assert_eq!(code, 1045);
    assert!(message.starts_with("Access denied for user 'bob'@"), "{message}");
    let (code, message) = server_error(Conn::new(opts(front.port, "root", "", None)).await);
    assert_eq!(code, 1045);
    assert!(message.ends_with("(using password: NO)"), "{message}");
    // The right password still works after failures.
    connect(&front, Some("db1")).await.disconnect().await.unwrap();

    let open = start("root", "").await;
    let mut conn = Conn::new(opts(open.port, "root", "", None)).await.unwrap();
    conn.query_drop("SELECT 1").await.unwrap();
    let (code, message) = server_error(Conn::new(opts(open.port, "root", "x", None)).await);
    assert_eq!(code, 1045);
    assert!(message.ends_with("(using password: YES)"), "{message}");
}

#[tokio::test]
async fn unknown_database() {
    let front = start("root", "secret").await;
    let (code, message) =
        server_error(Conn::new(opts(front.port, "root", "secret", Some("nope"))).await);
    assert_eq!((code, message.as_str()), (1049, "Unknown database 'nope'"));
    let mut conn = connect(&front, Some("db1")).await;
    let (code, message) = server_error(conn.query_drop("USE nope").await);
    assert_eq!((code, message.as_str()), (1049, "Unknown database 'nope'"));
    let (code, _) = server_error(conn.query_drop("use `nope`").await);
    assert_eq!(code, 1049);
}

#[tokio::test]
async fn sink_statements() {
    let front = start("root", "secret").await;
    let mut conn = connect(&front, None).await;

    let schema = "SELECT SCHEMA_NAME FROM information_schema.schemata WHERE SCHEMA_NAME = 'db1'";
    assert_eq!(conn.query::<String, _>(schema).await.unwrap(), ["db1"]);
    let missing = "SELECT SCHEMA_NAME FROM information_schema.schemata WHERE SCHEMA_NAME = 'db2'";
    assert!(conn.query::<String, _>(missing).await.unwrap().is_empty());
    conn.query_drop("CREATE DATABASE IF NOT EXISTS `db2`").await.unwrap();
    conn.query_drop("CREATE DATABASE IF NOT EXISTS `db2`").await.unwrap();
    assert_eq!(conn.query::<String, _>(missing).await.unwrap(), ["db2"]);
    let (code, _) = server_error(conn.query_drop("CREATE DATABASE db2").await);
    assert_eq!(code, 1007);

    conn.query_drop(SINK_DDL).await.unwrap();
    conn.query_drop(SINK_DDL).await.unwrap(); // IF NOT EXISTS: no-op
    {
        let state = front.catalog.lock();
        let table = &state.databases["db1"].tables["orders"];
        assert_eq!(table.keys_type, KeysType::Primary);
        assert_eq!(table.key_columns, ["id", "region"]);
        assert_eq!(table.ddl, SINK_DDL);
        assert_eq!(table.columns[2].ty, SrType::Varchar(400));
        assert_eq!(state.ddl_log.iter().filter(|s| *s == SINK_DDL).count(), 2);
    }
    let (code, message) =
        server_error(conn.query_drop(SINK_DDL.replace(" IF NOT EXISTS", "")).await);
    assert_eq!((code, message.as_str()), (1050, "Table 'orders' already exists"));

    let tables = conn
        .query::<String, _>(
            "SELECT TABLE_NAME FROM information_schema.tables WHERE TABLE_SCHEMA = 'db1'",
        )
        .await
        .unwrap();
    assert_eq!(tables, ["orders"]);

    let columns: Vec<(String, String, String, String, String)> = conn
        .query(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY \
             FROM information_schema.columns \
             WHERE TABLE_SCHEMA = 'db1' AND TABLE_NAME = 'orders' ORDER BY ORDINAL_POSITION",
        )
        .await
        .unwrap();
    let row = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned(), e.to_owned())
    };
    assert_eq!(
        columns,
        [
            row("id", "bigint", "bigint(20)", "NO", "PRI"),
            row("region", "varchar", "varchar(48)", "NO", "PRI"),
            row("name", "varchar", "varchar(400)", "YES", ""),
        ]
    );

    let count: Option<i64> = conn.query_first("SELECT COUNT(*) FROM `db1`.`orders`").await.unwrap();
    assert_eq!(count, Some(0));
    front.catalog.lock().databases.get_mut("db1").unwrap().tables.get_mut("orders").unwrap().rows =
        vec![vec![Some("1".into()), Some("eu".into()), None]; 3];
    let count: Option<i64> = conn.query_first("select count(*) from db1.orders;").await.unwrap();
    assert_eq!(count, Some(3));
    let (code, _) = server_error(conn.query_drop("SELECT COUNT(*) FROM orders").await);
    assert_eq!(code, 1046, "no database selected");

    conn.query_drop("DROP TABLE IF EXISTS `db1`.`orders`").await.unwrap();
    conn.query_drop("DROP TABLE IF EXISTS `db1`.`orders`").await.unwrap();
    assert!(front.catalog.lock().databases["db1"].tables.is_empty());
    let (code, _) = server_error(conn.query_drop("DROP TABLE `db1`.`orders`").await);
    assert_eq!(code, 1051);
    let (code, _) = server_error(conn.query_drop(SINK_DDL.replace("`db1`", "`nodb`")).await);
    assert_eq!(code, 1049);
}

#[tokio::test]
async fn information_schema_type_shapes() {
    let front = start("root", "secret").await;
    let mut conn = connect(&front, Some("db1")).await;
    conn.query_drop(
        "create table `All Types` (
           k date not null, b boolean, ti tinyint, si smallint, i int(11), bi bigint,
           li largeint, f float, d double, dec decimal(12, 2), dt datetime, c char(10),
           v varchar(30), s string, j json, vb varbinary, a array<int>,
           aa array<array<decimal(10,2)>>
         ) duplicate key(k) distributed by random buckets 4",
    )
    .await
    .unwrap();
    let rows: Vec<(String, String, String, String, String)> = conn
        .query(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY FROM \
             information_schema.columns WHERE TABLE_NAME = 'All Types' ORDER BY ORDINAL_POSITION",
        )
        .await
        .unwrap();
    let got: Vec<String> =
        rows.iter().map(|(n, d, c, nl, k)| format!("{n}|{d}|{c}|{nl}|{k}")).collect();
    assert_eq!(
        got,
        [
            "k|date|date|NO|DUP",
            "b|tinyint|tinyint(1)|YES|",
            "ti|tinyint|tinyint(4)|YES|",
            "si|smallint|smallint(6)|YES|",
            "i|int|int(11)|YES|",
            "bi|bigint|bigint(20)|YES|",
            "li|bigint unsigned|bigint(20) unsigned|YES|",
            "f|float|float|YES|",
            "d|double|double|YES|",
            "dec|decimal|decimal(12,2)|YES|",
            "dt|datetime|datetime|YES|",
            "c|char|char(10)|YES|",
            "v|varchar|varchar(30)|YES|",
            "s|varchar|varchar(65533)|YES|",
            "j|json|json|YES|",
            "vb|varbinary|varbinary|YES|",
            "a|array|array<int(11)>|YES|",
            "aa|array|array<array<decimal(10, 2)>>|YES|",
        ]
    );

    // Table names are case-sensitive.
    let none: Vec<String> = conn
        .query("SELECT COLUMN_NAME FROM information_schema.columns WHERE TABLE_NAME = 'all types'")
        .await
        .unwrap();
    assert!(none.is_empty());
    let (code, _) = server_error(conn.query_drop("SELECT COUNT(*) FROM `all types`").await);
    assert_eq!(code, 1064);
    let (code, message) = server_error(conn.query_drop("CREATE TABLE `all types` (k INT)").await);
    assert_eq!(code, 1235);
    assert!(message.starts_with("test double:"), "{message}");

    // No key clause: StarRocks' default sort key.
    conn.query_drop("CREATE TABLE plain (a INT, b VARCHAR(10), c INT)").await.unwrap();
    let keys: Vec<(String, String)> = conn
        .query("SELECT COLUMN_NAME, COLUMN_KEY FROM information_schema.columns WHERE TABLE_NAME = 'plain'")
        .await
        .unwrap();
    let keys: Vec<String> = keys.into_iter().map(|(n, k)| format!("{n}:{k}")).collect();
    assert_eq!(keys, ["a:DUP", "b:DUP", "c:"]);
}

#[tokio::test]
async fn create_table_validation() {
    let front = start("root", "secret").await;
    let mut conn = connect(&front, Some("db1")).await;
    for (ddl, code, needle) in [
        (
            "CREATE TABLE t (k DECIMAL(10,2) NOT NULL, v INT) PRIMARY KEY(k)",
            1064,
            "primary key column 'k'",
        ),
        ("CREATE TABLE t (k DOUBLE NOT NULL) PRIMARY KEY(k)", 1064, "primary key"),
        ("CREATE TABLE t (k JSON NOT NULL) PRIMARY KEY(k)", 1064, "primary key"),
        ("CREATE TABLE t (k CHAR(3) NOT NULL) PRIMARY KEY(k)", 1064, "primary key"),
        ("CREATE TABLE t (v INT, k INT NOT NULL) PRIMARY KEY(k)", 1064, "ordered prefix"),
        ("CREATE TABLE t (k INT NULL) PRIMARY KEY(k)", 1064, "cannot be nullable"),
        (
            "CREATE TABLE t (k INT, v INT) PRIMARY KEY(k) DISTRIBUTED BY HASH(v)",
            1064,
            "not key column",
        ),
        (
            "CREATE TABLE t (k INT) PRIMARY KEY(k) DISTRIBUTED BY RANDOM",
            1064,
            "Random distribution",
        ),
        ("CREATE TABLE t (k INT, K BIGINT)", 1060, "Duplicate column name 'K'"),
        ("CREATE TABLE t (a INT, b INT) DUPLICATE KEY(b)", 1064, "ordered prefix"),
        ("CREATE TABLE t (a DOUBLE, b INT) DUPLICATE KEY(a)", 1064, "Float or double"),
        ("CREATE TABLE t (a INT) DISTRIBUTED BY HASH(z)", 1064, "Distribution column[z]"),
        ("CREATE TABLE t (a DECIMAL(39,1))", 1064, "precision"),
        ("CREATE TABLE t (a VARCHAR(1048577))", 1064, "Varchar size"),
        ("CREATE TABLE t (a CHAR(256))", 1064, "Char size"),
        ("CREATE TABLE t (a INT) BUCKETS", 1064, "syntax"),
        ("CREATE TABLE t (a INT DEFAULT '1')", 1235, "test double: column DEFAULT"),
        ("CREATE TABLE t (a MAP<INT,INT>)", 1235, "test double: type MAP"),
        ("CREATE TABLE t (a INT) PARTITION BY RANGE(a) ()", 1235, "test double: PARTITION BY"),
        (
            "CREATE TABLE t (a INT) PROPERTIES (\"replication_num\" = \"x\")",
            1064,
            "Replication num",
        ),
        (
            "INSERT INTO t VALUES (1)",
            1235,
            "test double: unsupported statement: INSERT INTO t VALUES (1)",
        ),
        ("SELECT * FROM t", 1235, "test double: unsupported statement"),
        (
            "SELECT COMMENT FROM information_schema.columns",
            1235,
            "test double: information_schema.columns.COMMENT",
        ),
    ] {
        let (got_code, message) = server_error(conn.query_drop(ddl).await);
        assert_eq!(got_code, code, "{ddl}: {message}");
        assert!(message.contains(needle), "{ddl}: {message}");
    }
    assert!(front.catalog.lock().databases["db1"].tables.is_empty());

    // Accepted variants.
    for ddl in [
        "CREATE TABLE a1 (k INT NOT NULL, v JSON) PRIMARY KEY(k) DISTRIBUTED BY HASH(k) BUCKETS 8",
        "CREATE TABLE a2 (k STRING, d DATETIME, v ARRAY<VARCHAR(10)>) PRIMARY KEY(k, d)",
        "CREATE TABLE a3 (`a``b` INT COMMENT \"x\\\"y\", c DOUBLE) DUPLICATE KEY(`a``b`) \
         DISTRIBUTED BY HASH(`a``b`) PROPERTIES ('replication_num' = '1', \"compression\" = \"LZ4\")",
        "create table if not exists db1.a4 (k largeint not null) engine=olap primary key(k) comment 't'",
    ] {
        conn.query_drop(ddl).await.unwrap_or_else(|e| panic!("{ddl}: {e}"));
    }
    let state = front.catalog.lock();
    let a2 = &state.databases["db1"].tables["a2"];
    assert!(a2.columns.iter().take(2).all(|c| !c.nullable), "PK columns default to NOT NULL");
    assert_eq!(state.databases["db1"].tables["a3"].key_columns, ["a`b"]);
}

#[tokio::test]
async fn prepared_statements_are_refused() {
    let front = start("root", "secret").await;
    let mut conn = connect(&front, None).await;
    let (code, message) = server_error(conn.exec_drop("SELECT ?", (1,)).await);
    assert_eq!(code, 1295);
    assert!(message.starts_with("test double:"), "{message}");
    conn.query_drop("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn pooled_connections_are_reset_and_reused() {
    let front = start("root", "secret").await;
    let pool = mysql_async::Pool::new(opts(front.port, "root", "secret", Some("db1")));
    for _ in 0..3 {
        let mut conn = pool.get_conn().await.unwrap();
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
    }
    pool.disconnect().await.unwrap();
}

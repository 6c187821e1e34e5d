//! The test double's catalog: databases, tables, stored rows and the label store.
//!
//! Shared by the HTTP side (`fe.rs`/`be.rs`, Stream Load and the transaction interface)
//! and the MySQL-protocol front (`mysql.rs`). Everything lives behind one mutex; the
//! double is for tests, not for speed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A StarRocks column type, as the double understands it (parsed from DDL type text such
/// as `DECIMAL(12,2)`, `VARCHAR(400)`, `ARRAY<INT>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrType {
    /// `BOOLEAN`
    Boolean,
    /// `TINYINT`
    TinyInt,
    /// `SMALLINT`
    SmallInt,
    /// `INT`
    Int,
    /// `BIGINT`
    BigInt,
    /// `LARGEINT`
    LargeInt,
    /// `FLOAT`
    Float,
    /// `DOUBLE`
    Double,
    /// `DECIMAL(p,s)`
    Decimal(u8, u8),
    /// `DATE`
    Date,
    /// `DATETIME`
    DateTime,
    /// `CHAR(n)`, n in bytes
    Char(u32),
    /// `VARCHAR(n)`, n in bytes (`STRING` is `VARCHAR(65533)`)
    Varchar(u32),
    /// `JSON`
    Json,
    /// `VARBINARY` (its CSV/JSON wire encoding is unconfirmed: the double refuses loads into it)
    Varbinary,
    /// `ARRAY<T>`
    Array(Box<SrType>),
}

/// One column of a table in the double.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// The name as created (StarRocks matches column names case-insensitively).
    pub name: String,
    /// The type.
    pub ty: SrType,
    /// The type as written in the DDL, for `information_schema.columns.COLUMN_TYPE`.
    pub type_text: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

/// The table's key model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysType {
    /// `PRIMARY KEY(...)`: a load with an existing key replaces the row (upsert); `__op = 1` deletes.
    Primary,
    /// `DUPLICATE KEY(...)` or no key clause: every loaded row is kept.
    Duplicate,
}

/// A stored cell: `None` is SQL NULL; otherwise the value as StarRocks would print it in a
/// `SELECT` (canonical text: DECIMAL with exactly `s` fraction digits, DATETIME as
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, BOOLEAN as `1`/`0`, JSON normalised by serde_json,
/// ARRAY as a JSON array text).
pub type Cell = Option<String>;

/// One table of the double.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The name as created.
    pub name: String,
    /// The columns, in table order.
    pub columns: Vec<ColumnDef>,
    /// The key model.
    pub keys_type: KeysType,
    /// Key column names (the primary key, or the duplicate sort key), in order.
    pub key_columns: Vec<String>,
    /// The DDL statement that created the table, as received.
    pub ddl: String,
    /// Stored rows, each in table column order. For Primary Key tables, at most one row per key.
    pub rows: Vec<Vec<Cell>>,
}

/// The state of a load transaction, as StarRocks names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Begun, data may still arrive.
    Prepare,
    /// Prepared (transaction interface), waiting for commit.
    Prepared,
    /// Committed, not yet visible (after a `Publish Timeout`).
    Committed,
    /// Visible.
    Visible,
    /// Aborted; its label may be used again.
    Aborted,
}

impl TxnState {
    /// The name `get_load_state` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnState::Prepare => "PREPARE",
            TxnState::Prepared => "PREPARED",
            TxnState::Committed => "COMMITTED",
            TxnState::Visible => "VISIBLE",
            TxnState::Aborted => "ABORTED",
        }
    }
}

/// One load transaction (a Stream Load, or a transaction-interface transaction).
#[derive(Debug, Clone)]
pub struct Txn {
    /// The transaction id.
    pub id: i64,
    /// The label.
    pub label: String,
    /// The target table (name as in the request).
    pub table: String,
    /// The state.
    pub state: TxnState,
    /// Rows received and accepted so far (applied to the table at commit/visible).
    pub pending_rows: Vec<PendingRow>,
    /// The rows this transaction applied when it became visible, kept only when
    /// [`CatalogState::keep_txn_rows`] is set.
    pub applied_rows: Vec<PendingRow>,
    /// Counters for the response.
    pub total_rows: u64,
    /// Rows filtered (bad values, wrong column count).
    pub filtered_rows: u64,
    /// Bytes received.
    pub load_bytes: u64,
}

/// A row waiting for its transaction to commit, with its `__op` (0 upsert, 1 delete).
#[derive(Debug, Clone)]
pub struct PendingRow {
    /// The cells, in table column order.
    pub cells: Vec<Cell>,
    /// `true` for `__op = 1` (delete by key, Primary Key tables only).
    pub delete: bool,
}

/// One database: tables by lower-cased name, and its label store.
#[derive(Debug, Clone, Default)]
pub struct Database {
    /// Tables by lower-cased name.
    pub tables: BTreeMap<String, TableDef>,
    /// Every transaction ever begun in this database, by id (labels conflict only with
    /// non-aborted ones).
    pub txns: BTreeMap<i64, Txn>,
}

impl Database {
    /// The table named exactly `name`: tables are keyed by lower-cased name, but names are
    /// case-sensitive (StarRocks' `lower_case_table_names = 0`).
    pub(crate) fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(&name.to_lowercase()).filter(|t| t.name == name)
    }

    /// [`Database::table`], mutably.
    pub(crate) fn table_mut(&mut self, name: &str) -> Option<&mut TableDef> {
        self.tables.get_mut(&name.to_lowercase()).filter(|t| t.name == name)
    }

    /// The non-aborted transaction holding `label`, if any.
    pub fn active_txn(&self, label: &str) -> Option<&Txn> {
        self.txns.values().find(|t| t.label == label && t.state != TxnState::Aborted)
    }
}

/// The whole catalog. Cheap to clone (an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    inner: Arc<Mutex<CatalogState>>,
}

/// The catalog's contents.
#[derive(Debug, Default)]
pub struct CatalogState {
    /// Databases by name (database names are case-sensitive in StarRocks).
    pub databases: BTreeMap<String, Database>,
    /// The next transaction id.
    pub next_txn_id: i64,
    /// Every DDL statement received through the MySQL front, in order.
    pub ddl_log: Vec<String>,
    /// Every statement received through the MySQL front (`COM_QUERY`), in order, as sent:
    /// for tests that count the statements a client issues.
    pub statements: Vec<String>,
    /// Keep each visible transaction's rows in [`Txn::applied_rows`] (for tests that check
    /// what one load carried; off by default to save memory).
    pub keep_txn_rows: bool,
}

impl Catalog {
    /// Locks the catalog. Never hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, CatalogState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a database if it does not exist.
    pub fn create_database(&self, name: &str) {
        self.lock().databases.entry(name.to_owned()).or_default();
    }
}

impl CatalogState {
    /// Allocates a transaction id.
    pub fn alloc_txn_id(&mut self) -> i64 {
        self.next_txn_id += 1;
        1000 + self.next_txn_id
    }
}

/// Parses a StarRocks column type as written in DDL (`BIGINT`, `DECIMAL(12,2)`,
/// `VARCHAR(400)`, `STRING`, `ARRAY<INT>`, ...), with StarRocks' range checks; `None` for
/// text the double does not understand or StarRocks would reject.
pub fn parse_sr_type(text: &str) -> Option<SrType> {
    super::ddl::parse_type_text(text).ok()
}

impl SrType {
    /// `(DATA_TYPE, COLUMN_TYPE)` as StarRocks reports this type in
    /// `information_schema.columns`.
    ///
    /// | Type | DATA_TYPE | COLUMN_TYPE |
    /// |---|---|---|
    /// | BOOLEAN | `tinyint` | `tinyint(1)` |
    /// | TINYINT | `tinyint` | `tinyint(4)` |
    /// | SMALLINT | `smallint` | `smallint(6)` |
    /// | INT | `int` | `int(11)` |
    /// | BIGINT | `bigint` | `bigint(20)` |
    /// | LARGEINT | `bigint unsigned` | `bigint(20) unsigned` |
    /// | FLOAT / DOUBLE | `float` / `double` | `float` / `double` |
    /// | DECIMAL(p,s) | `decimal` | `decimal(p,s)` |
    /// | DATE / DATETIME | `date` / `datetime` | `date` / `datetime` |
    /// | CHAR(n) | `char` | `char(n)` |
    /// | VARCHAR(n), STRING | `varchar` | `varchar(n)`, `varchar(65533)` |
    /// | JSON | `json` | `json` |
    /// | VARBINARY | `varbinary` | `varbinary` |
    /// | ARRAY\<T\> | `array` | `array<`FE SQL of T`>`, e.g. `array<int(11)>`, `array<boolean>`, `array<decimal(10, 2)>` |
    ///
    /// Sources (StarRocks/starrocks): the scalar rows are BE
    /// `be/src/exec/schema_scanner/schema_columns_scanner.cpp`
    /// (`SchemaColumnsScanner::to_mysql_data_type_string` and `type_to_string`), which fill
    /// `information_schema.columns`; FE `ScalarType.toMysqlDataTypeString` /
    /// `toMysqlColumnTypeString` (`fe/.../type/ScalarType.java`, "the same as BE
    /// schema_columns_scanner.cpp") agree except that FE prints decimals as `decimal(p, s)`
    /// with a space. The BE switch has no VARBINARY or ARRAY case (it prints `unknown`); the
    /// rows for those follow FE (`ScalarType.toSql` prints `varbinary`, `ArrayType.toMysqlDataTypeString`
    /// is `array` and its COLUMN_TYPE is `toSql()`, `array<int(11)>` in FE's `TypeTest`), which
    /// `FrontendServiceImpl.setColumnDesc` sends as `TColumnDesc.dataType`/`columnTypeStr`.
    /// A sink should compare these strings leniently (ignore spaces and case).
    pub fn information_schema_shapes(&self) -> (String, String) {
        let (data_type, column_type) = match self {
            SrType::Boolean => ("tinyint", "tinyint(1)".to_owned()),
            SrType::TinyInt => ("tinyint", "tinyint(4)".to_owned()),
            SrType::SmallInt => ("smallint", "smallint(6)".to_owned()),
            SrType::Int => ("int", "int(11)".to_owned()),
            SrType::BigInt => ("bigint", "bigint(20)".to_owned()),
            SrType::LargeInt => ("bigint unsigned", "bigint(20) unsigned".to_owned()),
            SrType::Float => ("float", "float".to_owned()),
            SrType::Double => ("double", "double".to_owned()),
            SrType::Decimal(p, s) => ("decimal", format!("decimal({p},{s})")),
            SrType::Date => ("date", "date".to_owned()),
            SrType::DateTime => ("datetime", "datetime".to_owned()),
            SrType::Char(n) => ("char", format!("char({n})")),
            SrType::Varchar(n) => ("varchar", format!("varchar({n})")),
            SrType::Json => ("json", "json".to_owned()),
            SrType::Varbinary => ("varbinary", "varbinary".to_owned()),
            SrType::Array(item) => ("array", format!("array<{}>", item.fe_sql())),
        };
        (data_type.to_owned(), column_type)
    }

    /// The type as StarRocks FE prints it in SQL (`ScalarType.toSql`, `ArrayType.toSql`):
    /// used for ARRAY element types in `COLUMN_TYPE`.
    fn fe_sql(&self) -> String {
        match self {
            SrType::Boolean => "boolean".to_owned(),
            SrType::TinyInt => "tinyint(4)".to_owned(),
            SrType::SmallInt => "smallint(6)".to_owned(),
            SrType::Int => "int(11)".to_owned(),
            SrType::BigInt => "bigint(20)".to_owned(),
            SrType::LargeInt => "largeint(40)".to_owned(),
            SrType::Float => "float".to_owned(),
            SrType::Double => "double".to_owned(),
            SrType::Decimal(p, s) => format!("decimal({p}, {s})"),
            SrType::Date => "date".to_owned(),
            SrType::DateTime => "datetime".to_owned(),
            SrType::Char(n) => format!("char({n})"),
            SrType::Varchar(n) => format!("varchar({n})"),
            SrType::Json => "json".to_owned(),
            SrType::Varbinary => "varbinary".to_owned(),
            SrType::Array(item) => format!("array<{}>", item.fe_sql()),
        }
    }

    /// Whether StarRocks accepts the type for a Primary Key table's key column: BOOLEAN,
    /// TINYINT, SMALLINT, INT, BIGINT, LARGEINT, VARCHAR/STRING, DATE, DATETIME.
    pub fn allowed_in_primary_key(&self) -> bool {
        matches!(
            self,
            SrType::Boolean
                | SrType::TinyInt
                | SrType::SmallInt
                | SrType::Int
                | SrType::BigInt
                | SrType::LargeInt
                | SrType::Varchar(_)
                | SrType::Date
                | SrType::DateTime
        )
    }
}

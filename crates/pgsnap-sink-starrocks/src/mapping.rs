//! PostgreSQL → StarRocks column types, the target table model, and `CREATE TABLE` text.
//!
//! [`map_table`] turns a copied table's [`TableSchema`] into a [`TargetTable`]: the StarRocks
//! name, type, nullability and key role of every column, plus how the
//! [transcoder](crate::transcode) turns the column's `COPY` text into the Stream Load body.
//! [`TargetTable::create_table_sql`] prints the matching DDL.
//!
//! # Type mapping
//!
//! Every value must arrive in StarRocks **exactly** as PostgreSQL holds it, and in the same
//! cell whether the snapshot or the CDC leg (Routine Load reading Debezium's events) writes it:
//! [`crate::parity`] holds the table of both paths side by side. A type StarRocks cannot hold
//! exactly is *unrepresentable*: under [`Unrepresentable::Varchar`] (the default) its column
//! becomes a `VARCHAR` holding its text (PostgreSQL's, or for a few types Debezium's canonical
//! form, [`crate::canonical`]), under [`Unrepresentable::Error`] [`map_table`] fails and names
//! the column.
//!
//! | PostgreSQL (`format_type()`) | StarRocks | value sent |
//! |---|---|---|
//! | `smallint` / `integer` / `bigint` | `SMALLINT` / `INT` / `BIGINT` | digits as printed |
//! | `real` / `double precision` | `FLOAT` / `DOUBLE` | PostgreSQL's shortest exact text (`extra_float_digits=3`); `NaN`, `Infinity`, `-Infinity` as they are (JSON strings in JSON bodies), which StarRocks' `string_to_float` reads |
//! | `numeric(p,s)`, p ≤ 38 | `DECIMAL(p,s)` | digits as printed; `NaN`/`Infinity` rejected per value |
//! | `numeric`, `numeric(p,s)` with p > 38 | unrepresentable: `VARCHAR(1048576)` | PostgreSQL text, the special values as `NAN`, `POSITIVE_INFINITY`, `NEGATIVE_INFINITY` (Debezium's names) |
//! | `money` | `DECIMAL(19,2)` | a plain decimal (`$1,234.56` → `1234.56`); money printed in another form than Debezium reads exactly is rejected per value |
//! | `boolean` | `BOOLEAN` | `true` / `false` |
//! | `date` | `DATE` | `YYYY-MM-DD`; BC, `infinity` and years > 9999 rejected per value |
//! | `timestamp[(p)] without time zone` | `DATETIME` | `YYYY-MM-DD HH:MM:SS[.ffffff]`; same checks |
//! | `timestamp[(p)] with time zone` | `DATETIME` (UTC) | the session prints UTC with a `+00` suffix, which is stripped; any other offset is an error |
//! | `text`, `character varying` | `VARCHAR(1048576)` | the text |
//! | `character varying(n)` | `VARCHAR(min(4n, 1048576))` | the text (StarRocks lengths are bytes: 4 per character) |
//! | `character(n)` | `VARCHAR(min(4n, 1048576))` | PostgreSQL's blank-padded text |
//! | `uuid` | `VARCHAR(36)` | canonical text |
//! | `json`, `jsonb` | `JSON` | the document as printed; CSV bodies reject top-level numbers, booleans and `null` (StarRocks would store them as JSON strings), JSON bodies reject a top-level `null` (it would be SQL NULL) |
//! | `bytea` | unrepresentable: `VARCHAR(1048576)` | lowercase hex without PostgreSQL's `\x` (Debezium's `binary.handling.mode=hex`; VARBINARY's CSV/JSON wire form is unconfirmed, so it is never used) |
//! | `interval` | unrepresentable: `VARCHAR(1048576)` | Debezium's `P{y}Y{m}M{d}DT{h}H{mi}M{s}S` ([`crate::canonical::interval_iso`]) |
//! | `time[(p)]`, `time[(p)] with time zone` | unrepresentable: `VARCHAR(1048576)` | `HH:MM:SS[.f]Z`, `timetz` shifted to UTC; `24:00:00` rejected per value |
//! | arrays of `boolean`, `smallint`, `integer`, `bigint`, `real`, `double precision`, `numeric(p,s)` (p ≤ 38), `text`, `character varying[(n)]`, `date`, `timestamp[ with time zone]`, with [`LoadFormat::Json`] | `ARRAY<element type>` | a JSON array (one dimension, default lower bound; others are rejected per value) |
//! | any array with [`LoadFormat::Csv`] (array text in CSV is unconfirmed), arrays of other types | unrepresentable: `VARCHAR(1048576)` | PostgreSQL array text `{1,2,NULL}` |
//! | `inet`, `cidr`, `macaddr`, `bit`, `xml`, ranges, enums, domains, composite and any other type | unrepresentable: `VARCHAR(1048576)` | PostgreSQL text |
//!
//! `VARCHAR` lengths are checked per value: a longer value fails the chunk with
//! [`TranscodeErrorKind::TooLong`](crate::transcode::TranscodeErrorKind::TooLong) instead of
//! being cut by StarRocks.
//!
//! **Overrides.** [`MappingOptions::with_column_type`] forces a StarRocks type on a column when
//! the transcoder can produce it exactly: `VARCHAR(n)` for any column (the value is
//! PostgreSQL's text, length checked); `JSON` for `json`/`jsonb`; an integer, `DOUBLE` or
//! `DECIMAL` at least as wide as the integer column; `FLOAT`/`DOUBLE` for `real`, `DOUBLE`
//! for `double precision`; `DECIMAL(p,s)` for any `numeric` or `money` (each value is checked
//! to fit, so an unbounded `numeric` can be loaded as `DECIMAL(38,9)` when its values allow
//! it);
//! `DATE` for `date`, `DATETIME` for timestamps, `BOOLEAN` for `boolean`; `ARRAY<…>` of those
//! for arrays (JSON only). Anything else is [`MappingError::InvalidOverride`].
//!
//! # Keys
//!
//! With a primary key the table is a StarRocks **Primary Key** table: the key columns come first
//! in key order, `NOT NULL`, then the other columns in source order, all `NULL`: a Routine
//! Load delete carries no values for them (whether StarRocks checks `NOT NULL` on delete rows
//! is unconfirmed). StarRocks key columns may be
//! `BOOLEAN`, `SMALLINT`, `INT`, `BIGINT`, `LARGEINT`, `VARCHAR`, `DATE` or `DATETIME`: a
//! `numeric(p,s)` key becomes `VARCHAR(p+2)` holding PostgreSQL's text (the Flink CDC rule),
//! `character(n)` keys are already `VARCHAR`; `FLOAT`, `DOUBLE`, `JSON` and `ARRAY` keys are
//! [`MappingError::InvalidKeyColumn`]. StarRocks also caps an encoded key at 128 bytes by
//! default (`primary_key_limit_size`, unconfirmed in source); that is not checked here.
//!
//! Without a primary key the table is a **Duplicate Key** table in source order, keyed on its
//! first column when that column's type could be a key, else with no key clause.
//!
//! # Names
//!
//! StarRocks' FE accepts (source `fe/fe-core/src/main/java/com/starrocks/common/FeNameFormat.java`
//! in `StarRocks/starrocks`): table names matching `^[^\0]{1,1024}$`, column names matching
//! `^[^\0=<>!\*]{1,1024}$` and not starting with `__starrocks_shadow_` or `__doris_shadow_`,
//! database names matching `^[a-zA-Z]\w{0,255}$|^_[a-zA-Z0-9]\w{0,254}$`. The documentation
//! ("System limits") is stricter, letters, digits and `_` only; names outside that set rely on
//! the source rule above. On top of it pgsnap rejects control characters in table and column
//! names (column names travel in the Stream Load `columns` HTTP header) and the column name
//! `__op` (Stream Load reads it as the upsert/delete flag). Column names are case-insensitive
//! in StarRocks, so two columns differing only in case are rejected. Rename with
//! [`MappingOptions::with_column_name`] or choose another target table name.
//!
//! # DDL
//!
//! [`TargetTable::create_table_sql`] needs StarRocks ≥ 3.1 (`DISTRIBUTED BY RANDOM` for
//! Duplicate Key tables, and no `BUCKETS` clause).
//!
//! # Example
//!
//! ```
//! use pgsnap_core::{Column, TableKind, TableName, TableSchema};
//! use pgsnap_sink_starrocks::mapping::{map_table, KeyModel, MappingOptions};
//!
//! let col = |name: &str, ty: &str, nullable| Column::new(name, ty, nullable);
//! let schema = TableSchema {
//!     name: TableName::new("public", "t"),
//!     kind: TableKind::Table,
//!     columns: vec![col("name", "character varying(100)", true), col("id", "bigint", false)],
//!     generated_columns: vec![],
//!     primary_key: vec!["id".into()],
//! };
//! let table = map_table(&schema, "t", &MappingOptions::default())?;
//! assert_eq!(table.key_model, KeyModel::Primary);
//! assert_eq!(
//!     table.create_table_sql("db", &[("replication_num", "1")]),
//!     "CREATE TABLE IF NOT EXISTS `db`.`t` (\n  \
//!      `id` BIGINT NOT NULL COMMENT 'pg: bigint',\n  \
//!      `name` VARCHAR(400) NULL COMMENT 'pg: character varying(100)'\n)\n\
//!      PRIMARY KEY(`id`)\nDISTRIBUTED BY HASH(`id`)\nPROPERTIES (\"replication_num\" = \"1\")"
//! );
//! # Ok::<(), pgsnap_sink_starrocks::mapping::MappingError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use pgsnap_core::{TableSchema, TypeKind};

/// The longest StarRocks `VARCHAR`, in bytes (StarRocks 2.1 and later).
pub const MAX_VARCHAR_LEN: u32 = 1_048_576;

/// The Stream Load body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LoadFormat {
    /// Tab-separated, `"`-enclosed CSV (`format: csv`). Streamed by the BE; cannot carry arrays
    /// or a text value that is exactly `\N`.
    #[default]
    Csv,
    /// A JSON array of objects (`format: json`, `strip_outer_array: true`). Buffered whole by
    /// the BE; carries `ARRAY` columns.
    Json,
}

impl LoadFormat {
    /// The Stream Load `format` header value: `csv` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadFormat::Csv => "csv",
            LoadFormat::Json => "json",
        }
    }
}

impl fmt::Display for LoadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LoadFormat {
    type Err = ParseEnumError;

    /// Parses `csv` or `json`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(LoadFormat::Csv),
            "json" => Ok(LoadFormat::Json),
            _ => {
                Err(ParseEnumError { what: "load format", value: s.into(), expected: "csv, json" })
            }
        }
    }
}

/// What to do with a column whose PostgreSQL type StarRocks cannot hold exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Unrepresentable {
    /// Load it into a `VARCHAR` holding PostgreSQL's text output (the default).
    #[default]
    Varchar,
    /// Fail the mapping with [`MappingError::UnsupportedType`].
    Error,
}

impl fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unrepresentable::Varchar => "varchar",
            Unrepresentable::Error => "error",
        })
    }
}

impl FromStr for Unrepresentable {
    type Err = ParseEnumError;

    /// Parses `varchar` or `error`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "varchar" => Ok(Unrepresentable::Varchar),
            "error" => Ok(Unrepresentable::Error),
            _ => Err(ParseEnumError {
                what: "unrepresentable-type policy",
                value: s.into(),
                expected: "varchar, error",
            }),
        }
    }
}

/// A string that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct ParseEnumError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

/// How [`map_table`] maps columns.
///
/// # Example
/// ```
/// use pgsnap_sink_starrocks::mapping::{LoadFormat, MappingOptions, Unrepresentable};
/// let options = MappingOptions::new()
///     .with_format(LoadFormat::Json)
///     .with_unrepresentable(Unrepresentable::Error)
///     .with_column_type("amount", "DECIMAL(38,9)")
///     .with_column_name("Order Date", "order_date");
/// assert_eq!(options.column_overrides["amount"], "DECIMAL(38,9)");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MappingOptions {
    /// The body format the table is loaded with (arrays need [`LoadFormat::Json`]).
    pub format: LoadFormat,
    /// The policy for types StarRocks cannot hold exactly.
    pub unrepresentable: Unrepresentable,
    /// PostgreSQL column name → StarRocks type text (e.g. `VARCHAR(100)`), forcing that type.
    pub column_overrides: BTreeMap<String, String>,
    /// PostgreSQL column name → StarRocks column name (default: the same name).
    pub column_names: BTreeMap<String, String>,
}

impl MappingOptions {
    /// The defaults: CSV, unrepresentable types as `VARCHAR`, no overrides, no renames.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the body format.
    pub fn with_format(mut self, format: LoadFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the policy for unrepresentable types.
    pub fn with_unrepresentable(mut self, policy: Unrepresentable) -> Self {
        self.unrepresentable = policy;
        self
    }

    /// Forces the StarRocks type of PostgreSQL column `column` (e.g. `"VARCHAR(100)"`,
    /// `"DECIMAL(38,9)"`); checked by [`map_table`].
    pub fn with_column_type(
        mut self,
        column: impl Into<String>,
        sr_type: impl Into<String>,
    ) -> Self {
        self.column_overrides.insert(column.into(), sr_type.into());
        self
    }

    /// Names PostgreSQL column `column` `sr_name` in StarRocks.
    pub fn with_column_name(
        mut self,
        column: impl Into<String>,
        sr_name: impl Into<String>,
    ) -> Self {
        self.column_names.insert(column.into(), sr_name.into());
        self
    }
}

/// A StarRocks column type; `Display` prints its DDL text.
///
/// # Example
/// ```
/// use pgsnap_sink_starrocks::mapping::SrType;
/// let t: SrType = "array<decimal(12, 2)>".parse().unwrap();
/// assert_eq!(t, SrType::Array(Box::new(SrType::Decimal { precision: 12, scale: 2 })));
/// assert_eq!(t.to_string(), "ARRAY<DECIMAL(12,2)>");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrType {
    /// `BOOLEAN`.
    Boolean,
    /// `SMALLINT` (16 bits).
    SmallInt,
    /// `INT` (32 bits).
    Int,
    /// `BIGINT` (64 bits).
    BigInt,
    /// `LARGEINT` (128 bits).
    LargeInt,
    /// `FLOAT` (32-bit IEEE).
    Float,
    /// `DOUBLE` (64-bit IEEE).
    Double,
    /// `DECIMAL(precision, scale)`, precision 1–38, scale ≤ precision.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `DATE`.
    Date,
    /// `DATETIME` (microseconds).
    DateTime,
    /// `VARCHAR(n)`, n in bytes, 1 to [`MAX_VARCHAR_LEN`].
    Varchar(u32),
    /// `JSON`.
    Json,
    /// `ARRAY<element>`.
    Array(Box<SrType>),
}

impl SrType {
    /// Whether StarRocks accepts this type in a key column (Primary Key and Duplicate Key
    /// tables): `BOOLEAN`, integers, `VARCHAR`, `DATE`, `DATETIME`.
    pub fn can_be_key(&self) -> bool {
        matches!(
            self,
            SrType::Boolean
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

impl fmt::Display for SrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrType::Boolean => f.write_str("BOOLEAN"),
            SrType::SmallInt => f.write_str("SMALLINT"),
            SrType::Int => f.write_str("INT"),
            SrType::BigInt => f.write_str("BIGINT"),
            SrType::LargeInt => f.write_str("LARGEINT"),
            SrType::Float => f.write_str("FLOAT"),
            SrType::Double => f.write_str("DOUBLE"),
            SrType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            SrType::Date => f.write_str("DATE"),
            SrType::DateTime => f.write_str("DATETIME"),
            SrType::Varchar(n) => write!(f, "VARCHAR({n})"),
            SrType::Json => f.write_str("JSON"),
            SrType::Array(e) => write!(f, "ARRAY<{e}>"),
        }
    }
}

/// A StarRocks type text [`SrType`] cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot use StarRocks type {text:?}: {reason}")]
pub struct ParseSrTypeError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for SrType {
    type Err = ParseSrTypeError;

    /// Parses StarRocks type text, case-insensitively, ignoring whitespace: `BOOLEAN`/`BOOL`,
    /// `SMALLINT`, `INT`/`INTEGER`, `BIGINT`, `LARGEINT`, `FLOAT`, `DOUBLE`,
    /// `DECIMAL(p[,s])`, `DATE`, `DATETIME`, `VARCHAR(n)`, `JSON`, `ARRAY<type>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String =
            s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        parse_sr_type(&compact).map_err(|reason| ParseSrTypeError { text: s.into(), reason })
    }
}

fn parse_sr_type(t: &str) -> Result<SrType, String> {
    let simple = match t {
        "BOOLEAN" | "BOOL" => Some(SrType::Boolean),
        "SMALLINT" => Some(SrType::SmallInt),
        "INT" | "INTEGER" => Some(SrType::Int),
        "BIGINT" => Some(SrType::BigInt),
        "LARGEINT" => Some(SrType::LargeInt),
        "FLOAT" => Some(SrType::Float),
        "DOUBLE" => Some(SrType::Double),
        "DATE" => Some(SrType::Date),
        "DATETIME" => Some(SrType::DateTime),
        "JSON" => Some(SrType::Json),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    if let Some(inner) = t.strip_prefix("ARRAY<").and_then(|r| r.strip_suffix('>')) {
        return Ok(SrType::Array(Box::new(parse_sr_type(inner)?)));
    }
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>().map_err(|_| format!("{s:?} is not a length or precision"))
    };
    if let Some(args) = t.strip_prefix("VARCHAR(").and_then(|r| r.strip_suffix(')')) {
        let n = number(args)?;
        if n == 0 || n > MAX_VARCHAR_LEN {
            return Err(format!("VARCHAR length must be 1 to {MAX_VARCHAR_LEN} bytes"));
        }
        return Ok(SrType::Varchar(n));
    }
    if t == "VARCHAR" {
        return Err("give VARCHAR a length in bytes, e.g. VARCHAR(1048576)".into());
    }
    if let Some(args) = t.strip_prefix("DECIMAL(").and_then(|r| r.strip_suffix(')')) {
        let (p, s) = match args.split_once(',') {
            Some((p, s)) => (number(p)?, number(s)?),
            None => (number(args)?, 0),
        };
        if !(1..=38).contains(&p) || s > p {
            return Err("DECIMAL needs 1 ≤ precision ≤ 38 and scale ≤ precision".into());
        }
        return Ok(SrType::Decimal { precision: p as u8, scale: s as u8 });
    }
    Err("not a StarRocks type pgsnap can load (BOOLEAN, SMALLINT, INT, BIGINT, LARGEINT, FLOAT, \
         DOUBLE, DECIMAL(p,s), DATE, DATETIME, VARCHAR(n), JSON, ARRAY<…>)"
        .into())
}

/// How the transcoder checks and writes one value (not an array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// An integer, copied verbatim (syntax checked).
    Int,
    /// A float; `single` = `real` (sent as a JSON string so StarRocks parses it as a float).
    Float { single: bool },
    /// A decimal that fits the target by construction (syntax checked, `NaN` rejected).
    Decimal,
    /// A decimal whose digits are checked against `DECIMAL(precision, scale)`.
    DecimalChecked { precision: u8, scale: u8 },
    /// `t`/`f` → `true`/`false`.
    Bool,
    /// An ISO date, checked to be StarRocks-representable.
    Date,
    /// An ISO timestamp; `tz`: strip the `+00` suffix first.
    DateTime { tz: bool },
    /// Text, at most `limit` bytes once unescaped.
    Text { limit: u32 },
    /// Text in a canonical form ([`crate::canonical`]), at most `limit` bytes.
    Form { form: TextForm, limit: u32 },
    /// PostgreSQL `money` text as a plain decimal checked against `DECIMAL(precision, scale)`.
    Money { precision: u8, scale: u8 },
}

/// The canonical text forms of [`crate::canonical`] (Debezium's, where Routine Load cannot
/// reproduce PostgreSQL's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextForm {
    /// `numeric`: PostgreSQL's text, special values in Debezium's names.
    Numeric,
    /// `bytea`: lowercase hex without `\x`.
    Bytea,
    /// `money`: a plain decimal.
    Money,
    /// `interval`: Debezium's ISO 8601 form.
    Interval,
    /// `time`: `HH:MM:SS[.f]Z`.
    Time,
    /// `timetz`: UTC `HH:MM:SS[.f]Z`.
    TimeTz,
}

/// How the transcoder turns one column's `COPY` text into the target form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// One value.
    Scalar(Scalar),
    /// A `json`/`jsonb` document into a `JSON` column (raw in JSON bodies, a string in CSV).
    Json,
    /// A one-dimensional PostgreSQL array literal → JSON array (JSON bodies only).
    Array(Scalar),
}

/// One column of the target table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetColumn {
    /// The StarRocks column name.
    pub name: String,
    /// The PostgreSQL column name.
    pub source_name: String,
    /// Position of the column in the source rows (`COPY` order), 0-based.
    pub source_index: usize,
    /// The PostgreSQL type as `format_type()` prints it.
    pub pg_type: String,
    /// The StarRocks type.
    pub sr_type: SrType,
    /// Whether the column is `NULL` in the DDL: primary-key columns are `NOT NULL`, every
    /// other column is `NULL` whatever its PostgreSQL constraint, because a Routine Load delete
    /// carries no values for them (whether StarRocks checks `NOT NULL` on delete rows is
    /// unconfirmed).
    pub nullable: bool,
    /// Why the type is not the obvious one, e.g. `interval kept as PostgreSQL text`.
    pub note: Option<String>,
    pub(crate) encoding: Encoding,
    /// The PostgreSQL type, parsed (for [`crate::parity`]).
    pub(crate) pg: PgType,
}

/// The StarRocks table model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyModel {
    /// A Primary Key table (the source has a primary key): loads upsert by key.
    Primary,
    /// A Duplicate Key table (no primary key): loads append.
    Duplicate,
}

/// The StarRocks table a PostgreSQL table is loaded into.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetTable {
    /// The StarRocks table name.
    pub name: String,
    /// The PostgreSQL table, quoted and qualified (for messages).
    pub source: String,
    /// The columns in target order: key columns first in key order (Primary Key tables), then
    /// the others in source order.
    pub columns: Vec<TargetColumn>,
    /// Primary Key or Duplicate Key.
    pub key_model: KeyModel,
    /// The key columns' StarRocks names (empty: Duplicate Key table without a key clause).
    pub key: Vec<String>,
    /// The body format the table was mapped for.
    pub format: LoadFormat,
}

impl TargetTable {
    /// The position in the source rows of target column `target_index`.
    ///
    /// # Panics
    /// If `target_index` is out of range.
    pub fn source_position(&self, target_index: usize) -> usize {
        self.columns[target_index].source_index
    }

    /// The target position of source column `source_index`, if it is loaded.
    pub fn target_position(&self, source_index: usize) -> Option<usize> {
        self.columns.iter().position(|c| c.source_index == source_index)
    }

    /// The column named `name` in StarRocks (case-insensitive, as StarRocks compares).
    pub fn column(&self, name: &str) -> Option<&TargetColumn> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The column list in target order, each quoted with [`quote_sr_ident`], comma-separated
    /// (the Stream Load `columns` header).
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| quote_sr_ident(&c.name)).collect::<Vec<_>>().join(",")
    }

    /// The `CREATE TABLE IF NOT EXISTS` statement for this table in `database` (StarRocks ≥ 3.1).
    ///
    /// `properties` go into a `PROPERTIES (...)` clause, omitted when empty. The text has this
    /// exact shape (tests and the StarRocks test double parse it):
    ///
    /// ```text
    /// CREATE TABLE IF NOT EXISTS `db`.`t` (
    ///   `id` BIGINT NOT NULL COMMENT 'pg: bigint',
    ///   `name` VARCHAR(400) NULL COMMENT 'pg: character varying(100)'
    /// )
    /// PRIMARY KEY(`id`)
    /// DISTRIBUTED BY HASH(`id`)
    /// PROPERTIES ("replication_num" = "1")
    /// ```
    ///
    /// Duplicate Key tables get `DUPLICATE KEY(`first`)` (when the first column can be a key)
    /// and `DISTRIBUTED BY RANDOM`.
    pub fn create_table_sql<K, V>(&self, database: &str, properties: &[(K, V)]) -> String
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS {}.{} (\n",
            quote_sr_ident(database),
            quote_sr_ident(&self.name)
        );
        let defs: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "  {} {} {} COMMENT {}",
                    quote_sr_ident(&c.name),
                    c.sr_type,
                    if c.nullable { "NULL" } else { "NOT NULL" },
                    quote_sr_string(&format!("pg: {}", c.pg_type))
                )
            })
            .collect();
        sql.push_str(&defs.join(",\n"));
        sql.push_str("\n)\n");
        let key_list = self.key.iter().map(|k| quote_sr_ident(k)).collect::<Vec<_>>().join(", ");
        match self.key_model {
            KeyModel::Primary => {
                sql.push_str(&format!("PRIMARY KEY({key_list})\n"));
                sql.push_str(&format!("DISTRIBUTED BY HASH({key_list})"));
            }
            KeyModel::Duplicate => {
                if !self.key.is_empty() {
                    sql.push_str(&format!("DUPLICATE KEY({key_list})\n"));
                }
                sql.push_str("DISTRIBUTED BY RANDOM");
            }
        }
        if !properties.is_empty() {
            let props = properties
                .iter()
                .map(|(k, v)| {
                    format!("{} = {}", quote_property(k.as_ref()), quote_property(v.as_ref()))
                })
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!("\nPROPERTIES ({props})"));
        }
        sql
    }
}

/// Quotes a StarRocks identifier: wrapped in backticks, embedded backticks doubled.
///
/// # Example
/// ```
/// use pgsnap_sink_starrocks::mapping::quote_sr_ident;
/// assert_eq!(quote_sr_ident("a`b"), "`a``b`");
/// ```
pub fn quote_sr_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// `'text'` with `\` and `'` backslash-escaped (a StarRocks SQL string literal).
fn quote_sr_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `"text"` with `\` and `"` backslash-escaped (a PROPERTIES key or value).
fn quote_property(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Why a table cannot be mapped. Every message names the table and column and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// A type StarRocks cannot hold exactly, under [`Unrepresentable::Error`].
    #[error(
        "table {table}, column {column:?}: PostgreSQL type {pg_type} cannot be loaded into \
         StarRocks exactly ({reason}); keep it as PostgreSQL text with \
         with_column_type({column:?}, \"VARCHAR({MAX_VARCHAR_LEN})\") or the \
         Unrepresentable::Varchar policy"
    )]
    UnsupportedType {
        /// The PostgreSQL table.
        table: String,
        /// The PostgreSQL column.
        column: String,
        /// Its PostgreSQL type.
        pg_type: String,
        /// Why StarRocks cannot hold it.
        reason: String,
    },
    /// A primary-key column whose StarRocks type cannot be a key.
    #[error(
        "table {table}, primary-key column {column:?}: StarRocks type {sr_type} cannot be a key \
         column (keys may be BOOLEAN, integers, VARCHAR, DATE or DATETIME); override its type, \
         e.g. with_column_type({column:?}, \"VARCHAR(64)\"), or load the table without its \
         primary key"
    )]
    InvalidKeyColumn {
        /// The PostgreSQL table.
        table: String,
        /// The PostgreSQL column.
        column: String,
        /// The StarRocks type it would get.
        sr_type: String,
    },
    /// A primary-key column that is not among the copied columns.
    #[error(
        "table {table}: primary-key column {column:?} is not among the copied columns \
         (generated or dropped?); load the table without a key or fix the schema"
    )]
    MissingKeyColumn {
        /// The PostgreSQL table.
        table: String,
        /// The key column.
        column: String,
    },
    /// A column type override that cannot be honoured.
    #[error(
        "table {table}, column {column:?}: cannot use StarRocks type {override_type:?}: \
         {reason}; VARCHAR(n) always works"
    )]
    InvalidOverride {
        /// The PostgreSQL table.
        table: String,
        /// The PostgreSQL column.
        column: String,
        /// The override text.
        override_type: String,
        /// Why it is refused (naming the PostgreSQL type).
        reason: String,
    },
    /// An override or rename for a column the table does not have.
    #[error(
        "table {table}: {what} names column {column:?}, which the table does not have \
         (PostgreSQL column names are case-sensitive)"
    )]
    UnknownColumn {
        /// The PostgreSQL table.
        table: String,
        /// The name given.
        column: String,
        /// `column type override` or `column rename`.
        what: &'static str,
    },
    /// A StarRocks table, column or database name StarRocks would refuse.
    #[error(
        "table {table}: StarRocks {what} name {name:?} is invalid: {reason}; {}",
        name_hint(what)
    )]
    InvalidName {
        /// The PostgreSQL table (or the database name for database errors).
        table: String,
        /// `table`, `column` or `database`.
        what: &'static str,
        /// The refused name.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// Two columns whose StarRocks names differ only in case (StarRocks column names are
    /// case-insensitive).
    #[error(
        "table {table}: columns {first:?} and {second:?} would both be named {name:?} in \
         StarRocks, whose column names are case-insensitive; rename one with a column mapping \
         (MappingOptions::with_column_name)"
    )]
    DuplicateColumn {
        /// The PostgreSQL table.
        table: String,
        /// The first PostgreSQL column.
        first: String,
        /// The second PostgreSQL column.
        second: String,
        /// The clashing StarRocks name.
        name: String,
    },
    /// A table without copied columns, which StarRocks cannot create.
    #[error("table {table} has no columns to load; exclude it from the migration")]
    NoColumns {
        /// The PostgreSQL table.
        table: String,
    },
}

fn name_hint(what: &str) -> &'static str {
    match what {
        "column" => "rename the column with a column mapping (MappingOptions::with_column_name)",
        "table" => "map the table to another StarRocks name (a table mapping)",
        _ => "choose another target database",
    }
}

/// A PostgreSQL type as `format_type()` prints it, reduced to what the mapping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(p,s)` (s may be negative or above p since PostgreSQL 15) or unbounded.
    Numeric(Option<(i32, i32)>),
    Text,
    Varchar(Option<u32>),
    Bpchar(Option<u32>),
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Jsonb,
    Uuid,
    Bytea,
    Money,
    /// `time[(p)] without time zone`.
    Time,
    /// `time[(p)] with time zone`.
    TimeTz,
    /// `interval` with any fields or precision.
    Interval,
    /// An enum type (by `pg_type.typtype`).
    Enum,
    /// A type that PostgreSQL and Debezium print as the same text: `inet`, `cidr`, `macaddr`,
    /// `macaddr8`, `xml`, and the ranges `int4range`, `int8range`, `numrange`, `daterange`,
    /// `tsrange`.
    PlainText,
    Array(Box<PgType>),
    /// Anything else (kept as text).
    Other,
}

/// The parsed type of a column (its `format_type()` text and `typtype`).
fn column_pg_type(col: &pgsnap_core::Column) -> PgType {
    match col.type_kind {
        // Built-in ranges are recognised by name (a user-defined range is `Other`).
        TypeKind::Base | TypeKind::Range => parse_pg_type(&col.type_name),
        TypeKind::Enum => PgType::Enum,
        _ => PgType::Other,
    }
}

fn parse_pg_type(s: &str) -> PgType {
    let s = s.trim();
    if let Some(elem) = s.strip_suffix("[]") {
        return match parse_pg_type(elem) {
            PgType::Array(_) => PgType::Other,
            e => PgType::Array(Box::new(e)),
        };
    }
    match s {
        "boolean" => return PgType::Bool,
        "smallint" => return PgType::Int2,
        "integer" => return PgType::Int4,
        "bigint" => return PgType::Int8,
        "real" => return PgType::Float4,
        "double precision" => return PgType::Float8,
        "numeric" => return PgType::Numeric(None),
        "text" => return PgType::Text,
        "character varying" => return PgType::Varchar(None),
        "bpchar" => return PgType::Bpchar(None),
        "date" => return PgType::Date,
        "timestamp without time zone" => return PgType::Timestamp,
        "timestamp with time zone" => return PgType::TimestampTz,
        "json" => return PgType::Json,
        "jsonb" => return PgType::Jsonb,
        "uuid" => return PgType::Uuid,
        "bytea" => return PgType::Bytea,
        "money" => return PgType::Money,
        "time without time zone" => return PgType::Time,
        "time with time zone" => return PgType::TimeTz,
        "inet" | "cidr" | "macaddr" | "macaddr8" | "xml" | "int4range" | "int8range"
        | "numrange" | "daterange" | "tsrange" => return PgType::PlainText,
        _ => {}
    }
    if s == "interval" || s.starts_with("interval(") || s.starts_with("interval ") {
        return PgType::Interval;
    }
    let args = |prefix: &str, suffix: &str| -> Option<String> {
        s.strip_prefix(prefix)?.strip_suffix(suffix).map(str::to_owned)
    };
    if let Some(a) = args("numeric(", ")") {
        let parsed = match a.split_once(',') {
            Some((p, sc)) => p.trim().parse().ok().zip(sc.trim().parse().ok()),
            None => a.trim().parse().ok().map(|p| (p, 0)),
        };
        return parsed.map_or(PgType::Other, |ps| PgType::Numeric(Some(ps)));
    }
    if let Some(a) = args("character varying(", ")") {
        return a.trim().parse().map_or(PgType::Other, |n| PgType::Varchar(Some(n)));
    }
    if let Some(a) = args("character(", ")") {
        return a.trim().parse().map_or(PgType::Other, |n| PgType::Bpchar(Some(n)));
    }
    if let Some(a) = args("timestamp(", ") without time zone") {
        return if a.trim().parse::<u8>().is_ok() { PgType::Timestamp } else { PgType::Other };
    }
    if let Some(a) = args("timestamp(", ") with time zone") {
        return if a.trim().parse::<u8>().is_ok() { PgType::TimestampTz } else { PgType::Other };
    }
    if let Some(a) = args("time(", ") without time zone") {
        return if a.trim().parse::<u8>().is_ok() { PgType::Time } else { PgType::Other };
    }
    if let Some(a) = args("time(", ") with time zone") {
        return if a.trim().parse::<u8>().is_ok() { PgType::TimeTz } else { PgType::Other };
    }
    PgType::Other
}

/// The `DECIMAL(P,S)` holding every value of `numeric(p,s)`, if P ≤ 38.
fn decimal_for(p: i32, s: i32) -> Option<(u8, u8)> {
    let int_digits = (p - s).max(0);
    let scale = s.max(0);
    let precision = int_digits + scale;
    (1..=38).contains(&precision).then_some((precision as u8, scale as u8))
}

/// The StarRocks length for `n` characters.
fn chars_to_bytes(n: u32) -> u32 {
    n.saturating_mul(4).clamp(1, MAX_VARCHAR_LEN)
}

/// A natural mapping: the StarRocks type, or why the PostgreSQL type is unrepresentable.
fn natural_type(pg: &PgType, format: LoadFormat) -> Result<SrType, String> {
    Ok(match pg {
        PgType::Bool => SrType::Boolean,
        PgType::Int2 => SrType::SmallInt,
        PgType::Int4 => SrType::Int,
        PgType::Int8 => SrType::BigInt,
        PgType::Float4 => SrType::Float,
        PgType::Float8 => SrType::Double,
        PgType::Numeric(Some((p, s))) => match decimal_for(*p, *s) {
            Some((precision, scale)) => SrType::Decimal { precision, scale },
            None => return Err("StarRocks DECIMAL holds at most 38 digits".into()),
        },
        PgType::Numeric(None) => {
            return Err(
                "numeric without a precision can exceed StarRocks DECIMAL's 38 digits".into()
            );
        }
        PgType::Text | PgType::Varchar(None) | PgType::Bpchar(None) => {
            SrType::Varchar(MAX_VARCHAR_LEN)
        }
        PgType::Varchar(Some(n)) | PgType::Bpchar(Some(n)) => SrType::Varchar(chars_to_bytes(*n)),
        PgType::Date => SrType::Date,
        PgType::Timestamp | PgType::TimestampTz => SrType::DateTime,
        PgType::Json | PgType::Jsonb => SrType::Json,
        PgType::Uuid => SrType::Varchar(36),
        PgType::Money => SrType::Decimal { precision: 19, scale: 2 },
        PgType::Bytea => {
            return Err("the CSV/JSON wire form of StarRocks VARBINARY is unconfirmed".into());
        }
        PgType::Time | PgType::TimeTz => return Err("StarRocks has no TIME type".into()),
        PgType::Interval => return Err("StarRocks has no INTERVAL type".into()),
        PgType::Array(elem) => {
            if format != LoadFormat::Json {
                return Err("arrays can only be sent as JSON arrays in JSON bodies \
                            (LoadFormat::Json); their CSV form is unconfirmed"
                    .into());
            }
            let ok = matches!(
                **elem,
                PgType::Bool
                    | PgType::Int2
                    | PgType::Int4
                    | PgType::Int8
                    | PgType::Float4
                    | PgType::Float8
                    | PgType::Numeric(Some(_))
                    | PgType::Text
                    | PgType::Varchar(_)
                    | PgType::Date
                    | PgType::Timestamp
                    | PgType::TimestampTz
            );
            if !ok {
                return Err("StarRocks ARRAY of this element type is not supported".into());
            }
            SrType::Array(Box::new(natural_type(elem, format)?))
        }
        PgType::Enum | PgType::PlainText | PgType::Other => {
            return Err("StarRocks has no type holding it exactly".into());
        }
    })
}

/// The text a `VARCHAR(limit)` column holds for `pg`: PostgreSQL's text, or for the types of
/// [`TextForm`] the canonical form.
fn text_encoding(pg: &PgType, limit: u32) -> Encoding {
    let form = match pg {
        PgType::Numeric(_) => TextForm::Numeric,
        PgType::Bytea => TextForm::Bytea,
        PgType::Money => TextForm::Money,
        PgType::Interval => TextForm::Interval,
        PgType::Time => TextForm::Time,
        PgType::TimeTz => TextForm::TimeTz,
        _ => return Encoding::Scalar(Scalar::Text { limit }),
    };
    Encoding::Scalar(Scalar::Form { form, limit })
}

/// How to produce `sr` exactly from `pg`'s text, or why that is impossible.
fn encoding_for(pg: &PgType, sr: &SrType, format: LoadFormat) -> Result<Encoding, String> {
    if let SrType::Varchar(n) = sr {
        return Ok(text_encoding(pg, *n));
    }
    match (pg, sr) {
        (PgType::Json | PgType::Jsonb, SrType::Json) => return Ok(Encoding::Json),
        (_, SrType::Json) => {
            return Err("only json and jsonb text is a JSON document".into());
        }
        (PgType::Array(pe), SrType::Array(se)) => {
            if format != LoadFormat::Json {
                return Err(
                    "ARRAY columns need JSON bodies (LoadFormat::Json; array CSV form is unconfirmed)"
                        .into()
                );
            }
            return match encoding_for(pe, se, format)? {
                Encoding::Scalar(s) => Ok(Encoding::Array(s)),
                _ => Err("ARRAY elements must be scalars".into()),
            };
        }
        (_, SrType::Array(_)) => return Err("only a PostgreSQL array can fill an ARRAY".into()),
        _ => {}
    }
    let int_digits = |pg: &PgType| match pg {
        PgType::Int2 => Some(5),
        PgType::Int4 => Some(10),
        PgType::Int8 => Some(19),
        _ => None,
    };
    let scalar = match (pg, sr) {
        (PgType::Bool, SrType::Boolean) => Scalar::Bool,
        (PgType::Int2, SrType::SmallInt | SrType::Int | SrType::BigInt | SrType::LargeInt)
        | (PgType::Int4, SrType::Int | SrType::BigInt | SrType::LargeInt)
        | (PgType::Int8, SrType::BigInt | SrType::LargeInt)
        | (PgType::Int2, SrType::Float)
        | (PgType::Int2 | PgType::Int4, SrType::Double) => Scalar::Int,
        (PgType::Int2 | PgType::Int4 | PgType::Int8, SrType::Decimal { precision, scale }) => {
            if i32::from(precision - scale) >= int_digits(pg).unwrap_or(0) {
                Scalar::Int
            } else {
                return Err(format!(
                    "DECIMAL needs at least {} digits before the point",
                    int_digits(pg).unwrap_or(0)
                ));
            }
        }
        (PgType::Float4, SrType::Float) => Scalar::Float { single: true },
        (PgType::Float4 | PgType::Float8, SrType::Double) => Scalar::Float { single: false },
        (PgType::Numeric(bounds), SrType::Decimal { precision, scale }) => {
            let wide_enough = bounds
                .and_then(|(p, s)| decimal_for(p, s))
                .is_some_and(|(p, s)| s <= *scale && p - s <= precision - scale);
            if wide_enough {
                Scalar::Decimal
            } else {
                Scalar::DecimalChecked { precision: *precision, scale: *scale }
            }
        }
        (PgType::Money, SrType::Decimal { precision, scale }) => {
            Scalar::Money { precision: *precision, scale: *scale }
        }
        (PgType::Date, SrType::Date) => Scalar::Date,
        (PgType::Timestamp, SrType::DateTime) => Scalar::DateTime { tz: false },
        (PgType::TimestampTz, SrType::DateTime) => Scalar::DateTime { tz: true },
        _ => {
            return Err(
                "the StarRocks type cannot hold every value of the PostgreSQL type exactly \
                        (allowed: VARCHAR(n); JSON for json/jsonb; wider integers, DOUBLE or \
                        DECIMAL for integers; FLOAT/DOUBLE for real; DOUBLE for double \
                        precision; DECIMAL for numeric and money; DATE for date; DATETIME for \
                        timestamps; \
                        BOOLEAN for boolean; ARRAY of those for arrays)"
                    .into(),
            );
        }
    };
    Ok(Encoding::Scalar(scalar))
}

/// Checks a StarRocks table name against `FeNameFormat.TABLE_NAME_REGEX` (`^[^\0]{1,1024}$`)
/// plus pgsnap's rule against control characters.
fn check_table_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len == 0 || len > 1024 {
        return Err("it must be 1 to 1024 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    Ok(())
}

/// Checks a StarRocks column name against `FeNameFormat.COLUMN_NAME_REGEX`
/// (`^[^\0=<>!\*]{1,1024}$`), the shadow-column prefixes, control characters and `__op`.
fn check_column_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len == 0 || len > 1024 {
        return Err("it must be 1 to 1024 characters".into());
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '=' | '<' | '>' | '!' | '*')) {
        return Err(format!("StarRocks column names cannot contain {c:?}"));
    }
    if name.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    if name.starts_with("__starrocks_shadow_") || name.starts_with("__doris_shadow_") {
        return Err("StarRocks reserves the __starrocks_shadow_/__doris_shadow_ prefixes".into());
    }
    if name.eq_ignore_ascii_case("__op") {
        return Err("Stream Load reads a column named __op as the upsert/delete flag".into());
    }
    Ok(())
}

/// Checks a StarRocks database name against `FeNameFormat.DB_NAME_REGEX`
/// (`^[a-zA-Z]\w{0,255}$|^_[a-zA-Z0-9]\w{0,254}$`).
///
/// # Example
/// ```
/// use pgsnap_sink_starrocks::mapping::check_database_name;
/// assert!(check_database_name("analytics_2024").is_ok());
/// assert!(check_database_name("my-db").is_err());
/// ```
pub fn check_database_name(name: &str) -> Result<(), MappingError> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => name.len() <= 256 && chars.all(word),
        Some('_') => {
            matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
                && name.len() <= 256
                && chars.all(word)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(MappingError::InvalidName {
            table: name.into(),
            what: "database",
            name: name.into(),
            reason: "database names are a letter (or _ and a letter or digit) followed by at \
                     most 255 letters, digits or _"
                .into(),
        })
    }
}

/// Maps `schema` to the StarRocks table `target_name`.
///
/// See the [module documentation](self) for the rules. Fails on a type StarRocks cannot hold
/// under [`Unrepresentable::Error`], an invalid override, key column or name.
pub fn map_table(
    schema: &TableSchema,
    target_name: &str,
    options: &MappingOptions,
) -> Result<TargetTable, MappingError> {
    let table = schema.name.to_string();
    if schema.columns.is_empty() {
        return Err(MappingError::NoColumns { table });
    }
    if let Err(reason) = check_table_name(target_name) {
        return Err(MappingError::InvalidName {
            table: table.clone(),
            what: "table",
            name: target_name.into(),
            reason,
        });
    }
    for (map, what) in [
        (&options.column_overrides, "column type override"),
        (&options.column_names, "column rename"),
    ] {
        if let Some(unknown) = map.keys().find(|k| !schema.columns.iter().any(|c| &c.name == *k)) {
            return Err(MappingError::UnknownColumn { table, column: unknown.clone(), what });
        }
    }

    let key_set: Vec<&str> = schema.primary_key.iter().map(String::as_str).collect();
    let mut columns = Vec::with_capacity(schema.columns.len());
    for (index, col) in schema.columns.iter().enumerate() {
        let is_key = key_set.contains(&col.name.as_str());
        columns.push(map_column(&table, index, col, is_key, options)?);
    }

    // Case-insensitive clashes (StarRocks column names are case-insensitive).
    for (i, a) in columns.iter().enumerate() {
        if let Some(b) =
            columns[..i].iter().find(|b| b.name.to_lowercase() == a.name.to_lowercase())
        {
            return Err(MappingError::DuplicateColumn {
                table,
                first: b.source_name.clone(),
                second: a.source_name.clone(),
                name: a.name.clone(),
            });
        }
    }

    let (key_model, columns, key) = if schema.primary_key.is_empty() {
        let key =
            if columns[0].sr_type.can_be_key() { vec![columns[0].name.clone()] } else { vec![] };
        (KeyModel::Duplicate, columns, key)
    } else {
        let mut ordered = Vec::with_capacity(columns.len());
        let mut rest: Vec<Option<TargetColumn>> = columns.into_iter().map(Some).collect();
        for k in &schema.primary_key {
            let Some(i) = schema.columns.iter().position(|c| &c.name == k) else {
                return Err(MappingError::MissingKeyColumn { table, column: k.clone() });
            };
            if let Some(c) = rest[i].take() {
                ordered.push(c);
            }
        }
        ordered.extend(rest.into_iter().flatten());
        let key =
            ordered[..key_set.len().min(ordered.len())].iter().map(|c| c.name.clone()).collect();
        (KeyModel::Primary, ordered, key)
    };

    Ok(TargetTable {
        name: target_name.into(),
        source: table,
        columns,
        key_model,
        key,
        format: options.format,
    })
}

fn map_column(
    table: &str,
    index: usize,
    col: &pgsnap_core::Column,
    is_key: bool,
    options: &MappingOptions,
) -> Result<TargetColumn, MappingError> {
    let name = options.column_names.get(&col.name).cloned().unwrap_or_else(|| col.name.clone());
    if let Err(reason) = check_column_name(&name) {
        return Err(MappingError::InvalidName {
            table: table.into(),
            what: "column",
            name,
            reason,
        });
    }
    let pg = column_pg_type(col);
    let mut note = None;
    let (mut sr_type, mut encoding, overridden) =
        if let Some(text) = options.column_overrides.get(&col.name) {
            let invalid = |reason: String| MappingError::InvalidOverride {
                table: table.into(),
                column: col.name.clone(),
                override_type: text.clone(),
                reason: format!("PostgreSQL {}: {reason}", col.type_name),
            };
            let sr: SrType = text.parse().map_err(|e: ParseSrTypeError| invalid(e.reason))?;
            let enc = encoding_for(&pg, &sr, options.format).map_err(invalid)?;
            if matches!(enc, Encoding::Scalar(Scalar::DecimalChecked { .. })) {
                note = Some(format!("each value is checked to fit {sr}"));
            }
            (sr, enc, true)
        } else {
            match natural_type(&pg, options.format) {
                Ok(sr) => {
                    let enc = encoding_for(&pg, &sr, options.format)
                        .expect("every natural mapping has an encoding");
                    match pg {
                        PgType::TimestampTz => note = Some("normalised to UTC".into()),
                        PgType::Money => note = Some("as a plain decimal".into()),
                        PgType::Bpchar(_) => note = Some("keeps PostgreSQL's blank padding".into()),
                        _ => {}
                    }
                    (sr, enc, false)
                }
                Err(reason) => match options.unrepresentable {
                    Unrepresentable::Error => {
                        return Err(MappingError::UnsupportedType {
                            table: table.into(),
                            column: col.name.clone(),
                            pg_type: col.type_name.clone(),
                            reason,
                        });
                    }
                    Unrepresentable::Varchar => {
                        let encoding = text_encoding(&pg, MAX_VARCHAR_LEN);
                        let kept = match encoding {
                            Encoding::Scalar(Scalar::Form { .. }) => "Debezium's text",
                            _ => "PostgreSQL text",
                        };
                        note = Some(format!("{} kept as {kept}: {reason}", col.type_name));
                        (SrType::Varchar(MAX_VARCHAR_LEN), encoding, false)
                    }
                },
            }
        };

    if is_key && !sr_type.can_be_key() {
        match (&sr_type, overridden) {
            (SrType::Decimal { precision, .. }, false) => {
                let len = u32::from(*precision) + 2;
                note = Some(format!(
                    "primary-key {} stored as VARCHAR({len}) (StarRocks keys cannot be DECIMAL)",
                    col.type_name
                ));
                sr_type = SrType::Varchar(len);
                encoding = text_encoding(&pg, len);
            }
            _ => {
                return Err(MappingError::InvalidKeyColumn {
                    table: table.into(),
                    column: col.name.clone(),
                    sr_type: sr_type.to_string(),
                });
            }
        }
    }

    Ok(TargetColumn {
        name,
        source_name: col.name.clone(),
        source_index: index,
        pg_type: col.type_name.clone(),
        sr_type,
        nullable: !is_key,
        note,
        encoding,
        pg,
    })
}

#[cfg(test)]
mod tests {
    use pgsnap_core::{Column, TableKind, TableName};

    use super::*;

    fn schema(cols: &[(&str, &str)], pk: &[&str]) -> TableSchema {
        TableSchema {
            name: TableName::new("public", "t"),
            kind: TableKind::Table,
            columns: cols.iter().map(|(n, t)| Column::new(*n, *t, true)).collect(),
            generated_columns: vec![],
            primary_key: pk.iter().map(|s| (*s).into()).collect(),
        }
    }

    fn one(ty: &str, options: &MappingOptions) -> Result<TargetColumn, MappingError> {
        map_table(&schema(&[("c", ty)], &[]), "t", options).map(|t| t.columns[0].clone())
    }

    fn sr(ty: &str) -> String {
        one(ty, &MappingOptions::default()).unwrap().sr_type.to_string()
    }

    fn sr_json(ty: &str) -> String {
        one(ty, &MappingOptions::new().with_format(LoadFormat::Json)).unwrap().sr_type.to_string()
    }

    #[test]
    fn natural_types() {
        let cases = [
            ("smallint", "SMALLINT"),
            ("integer", "INT"),
            ("bigint", "BIGINT"),
            ("real", "FLOAT"),
            ("double precision", "DOUBLE"),
            ("boolean", "BOOLEAN"),
            ("date", "DATE"),
            ("timestamp without time zone", "DATETIME"),
            ("timestamp(3) without time zone", "DATETIME"),
            ("timestamp with time zone", "DATETIME"),
            ("timestamp(0) with time zone", "DATETIME"),
            ("numeric(12,2)", "DECIMAL(12,2)"),
            ("numeric(38,0)", "DECIMAL(38,0)"),
            ("numeric(5,-2)", "DECIMAL(7,0)"),
            ("numeric(2,5)", "DECIMAL(5,5)"),
            ("numeric(39,2)", "VARCHAR(1048576)"),
            ("numeric", "VARCHAR(1048576)"),
            ("text", "VARCHAR(1048576)"),
            ("character varying(100)", "VARCHAR(400)"),
            ("character varying", "VARCHAR(1048576)"),
            ("character varying(10485760)", "VARCHAR(1048576)"),
            ("character(3)", "VARCHAR(12)"),
            ("bpchar", "VARCHAR(1048576)"),
            ("uuid", "VARCHAR(36)"),
            ("json", "JSON"),
            ("jsonb", "JSON"),
            ("bytea", "VARCHAR(1048576)"),
            ("interval", "VARCHAR(1048576)"),
            ("time without time zone", "VARCHAR(1048576)"),
            ("time with time zone", "VARCHAR(1048576)"),
            ("money", "DECIMAL(19,2)"),
            ("inet", "VARCHAR(1048576)"),
            ("mood", "VARCHAR(1048576)"),
            ("\"char\"", "VARCHAR(1048576)"),
            ("integer[]", "VARCHAR(1048576)"),
        ];
        for (pg, want) in cases {
            assert_eq!(sr(pg), want, "{pg}");
        }
    }

    #[test]
    fn arrays_need_json() {
        assert_eq!(sr_json("integer[]"), "ARRAY<INT>");
        assert_eq!(sr_json("text[]"), "ARRAY<VARCHAR(1048576)>");
        assert_eq!(sr_json("character varying(5)[]"), "ARRAY<VARCHAR(20)>");
        assert_eq!(sr_json("numeric(10,2)[]"), "ARRAY<DECIMAL(10,2)>");
        assert_eq!(sr_json("timestamp without time zone[]"), "ARRAY<DATETIME>");
        assert_eq!(sr_json("uuid[]"), "VARCHAR(1048576)");
        assert_eq!(sr_json("numeric[]"), "VARCHAR(1048576)");
        assert_eq!(sr_json("jsonb[]"), "VARCHAR(1048576)");
        let c = one("integer[]", &MappingOptions::default()).unwrap();
        assert!(c.note.unwrap().contains("JSON bodies (LoadFormat::Json)"));
    }

    #[test]
    fn error_policy_names_table_column_and_fix() {
        let options = MappingOptions::new().with_unrepresentable(Unrepresentable::Error);
        let err = one("interval", &options).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"public\".\"t\""), "{msg}");
        assert!(msg.contains("\"c\""), "{msg}");
        assert!(msg.contains("with_column_type(\"c\""), "{msg}");
        assert!(msg.contains("Unrepresentable::Varchar"), "{msg}");
        let msg = one("integer[]", &options).unwrap_err().to_string();
        assert!(msg.contains("JSON bodies (LoadFormat::Json)"), "{msg}");
        // Representable types still map.
        assert_eq!(one("bigint", &options).unwrap().sr_type, SrType::BigInt);
    }

    #[test]
    fn overrides() {
        let ok = |pg: &str, t: &str| {
            let o = MappingOptions::new().with_format(LoadFormat::Json).with_column_type("c", t);
            one(pg, &o).map(|c| (c.sr_type.to_string(), c.encoding))
        };
        assert_eq!(ok("interval", "varchar(100)").unwrap().0, "VARCHAR(100)");
        assert_eq!(ok("bigint", "VARCHAR(20)").unwrap().0, "VARCHAR(20)");
        assert_eq!(ok("jsonb", "json").unwrap().1, Encoding::Json);
        assert_eq!(
            ok("numeric", "DECIMAL(38, 9)").unwrap().1,
            Encoding::Scalar(Scalar::DecimalChecked { precision: 38, scale: 9 })
        );
        assert_eq!(
            ok("numeric(10,2)", "DECIMAL(12,4)").unwrap().1,
            Encoding::Scalar(Scalar::Decimal)
        );
        assert_eq!(
            ok("numeric(10,2)", "DECIMAL(10,1)").unwrap().1,
            Encoding::Scalar(Scalar::DecimalChecked { precision: 10, scale: 1 })
        );
        assert_eq!(ok("integer", "BIGINT").unwrap().0, "BIGINT");
        assert_eq!(ok("integer", "DOUBLE").unwrap().0, "DOUBLE");
        assert_eq!(ok("integer", "DECIMAL(10,0)").unwrap().0, "DECIMAL(10,0)");
        assert_eq!(ok("real", "DOUBLE").unwrap().0, "DOUBLE");
        assert_eq!(ok("integer[]", "ARRAY<BIGINT>").unwrap().1, Encoding::Array(Scalar::Int));
        for (pg, t) in [
            ("text", "JSON"),
            ("bigint", "INT"),
            ("bigint", "DOUBLE"),
            ("integer", "DECIMAL(9,0)"),
            ("double precision", "FLOAT"),
            ("text", "DATE"),
            ("integer", "ARRAY<INT>"),
            ("integer", "VARCHAR"),
            ("integer", "VARCHAR(0)"),
            ("integer", "STRING"),
            ("numeric", "DECIMAL(39,2)"),
        ] {
            let err = ok(pg, t).unwrap_err();
            assert!(matches!(err, MappingError::InvalidOverride { .. }), "{pg} {t}: {err}");
            assert!(err.to_string().contains("\"c\""), "{err}");
        }
        // CSV cannot carry an ARRAY override.
        let o = MappingOptions::new().with_column_type("c", "ARRAY<INT>");
        assert!(one("integer[]", &o).is_err());
    }

    #[test]
    fn unknown_override_column_is_an_error() {
        let o = MappingOptions::new().with_column_type("nope", "INT");
        let err = map_table(&schema(&[("c", "integer")], &[]), "t", &o).unwrap_err();
        assert!(matches!(err, MappingError::UnknownColumn { .. }), "{err}");
    }

    #[test]
    fn primary_key_order_and_types() {
        let s = schema(
            &[("a", "text"), ("k2", "numeric(12,2)"), ("b", "jsonb"), ("k1", "character(3)")],
            &["k1", "k2"],
        );
        let t = map_table(&s, "t", &MappingOptions::default()).unwrap();
        assert_eq!(t.key_model, KeyModel::Primary);
        assert_eq!(t.key, vec!["k1", "k2"]);
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["k1", "k2", "a", "b"]);
        assert_eq!(t.columns[0].sr_type, SrType::Varchar(12));
        assert_eq!(t.columns[1].sr_type, SrType::Varchar(14));
        assert!(!t.columns[0].nullable && !t.columns[1].nullable && t.columns[2].nullable);
        assert_eq!(t.source_position(0), 3);
        assert_eq!(t.source_position(1), 1);
        assert_eq!(t.target_position(0), Some(2));
        assert_eq!(t.column("K1").unwrap().source_name, "k1");
    }

    #[test]
    fn bad_key_columns() {
        for ty in ["double precision", "real", "jsonb"] {
            let s = schema(&[("k", ty), ("v", "text")], &["k"]);
            let err = map_table(&s, "t", &MappingOptions::default()).unwrap_err();
            assert!(matches!(err, MappingError::InvalidKeyColumn { .. }), "{ty}");
            assert!(err.to_string().contains("\"k\""));
        }
        // An override fixes it.
        let s = schema(&[("k", "double precision")], &["k"]);
        let o = MappingOptions::new().with_column_type("k", "VARCHAR(64)");
        assert_eq!(map_table(&s, "t", &o).unwrap().columns[0].sr_type, SrType::Varchar(64));
        // An explicit DECIMAL override on a key is refused, not silently changed.
        let s = schema(&[("k", "numeric(10,2)")], &["k"]);
        let o = MappingOptions::new().with_column_type("k", "DECIMAL(12,2)");
        assert!(map_table(&s, "t", &o).is_err());
        let s = schema(&[("v", "text")], &["missing"]);
        assert!(matches!(
            map_table(&s, "t", &MappingOptions::default()),
            Err(MappingError::MissingKeyColumn { .. })
        ));
    }

    #[test]
    fn ddl_primary() {
        let s = schema(&[("id", "bigint"), ("name", "character varying(100)")], &["id"]);
        let mut s2 = s.clone();
        s2.columns[0].nullable = false;
        let t = map_table(&s2, "t", &MappingOptions::default()).unwrap();
        assert_eq!(
            t.create_table_sql("db", &[("replication_num", "1")]),
            "CREATE TABLE IF NOT EXISTS `db`.`t` (\n  `id` BIGINT NOT NULL COMMENT 'pg: bigint',\n  \
             `name` VARCHAR(400) NULL COMMENT 'pg: character varying(100)'\n)\nPRIMARY KEY(`id`)\n\
             DISTRIBUTED BY HASH(`id`)\nPROPERTIES (\"replication_num\" = \"1\")"
        );
        let s = schema(&[("a", "integer"), ("b", "text")], &["b", "a"]);
        let t = map_table(&s, "t", &MappingOptions::default()).unwrap();
        let sql = t.create_table_sql::<&str, &str>("db", &[]);
        assert!(sql.ends_with("PRIMARY KEY(`b`, `a`)\nDISTRIBUTED BY HASH(`b`, `a`)"), "{sql}");
    }

    #[test]
    fn ddl_duplicate_and_quoting() {
        let s = schema(&[("we`ird", "text"), ("it's", "mood\\x")], &[]);
        let t = map_table(&s, "my table", &MappingOptions::default()).unwrap();
        assert_eq!(t.key, vec!["we`ird"]);
        assert_eq!(
            t.create_table_sql("db", &[("a\"b", "c\\d"), ("x", "y")]),
            "CREATE TABLE IF NOT EXISTS `db`.`my table` (\n  `we``ird` VARCHAR(1048576) NULL \
             COMMENT 'pg: text',\n  `it's` VARCHAR(1048576) NULL COMMENT 'pg: mood\\\\x'\n)\n\
             DUPLICATE KEY(`we``ird`)\nDISTRIBUTED BY RANDOM\n\
             PROPERTIES (\"a\\\"b\" = \"c\\\\d\", \"x\" = \"y\")"
        );
        assert_eq!(quote_sr_string("it's"), "'it\\'s'");
        let s = schema(&[("j", "jsonb"), ("b", "text")], &[]);
        let t = map_table(&s, "t", &MappingOptions::default()).unwrap();
        assert!(t.key.is_empty());
        assert_eq!(
            t.create_table_sql::<&str, &str>("db", &[]),
            "CREATE TABLE IF NOT EXISTS `db`.`t` (\n  `j` JSON NULL COMMENT 'pg: jsonb',\n  \
             `b` VARCHAR(1048576) NULL COMMENT 'pg: text'\n)\nDISTRIBUTED BY RANDOM"
        );
        assert_eq!(t.column_list(), "`j`,`b`");
    }

    #[test]
    fn names() {
        let opts = MappingOptions::default();
        for bad in ["a=b", "x*", "__op", "__OP", "__starrocks_shadow_x", "tab\there", ""] {
            let err = map_table(&schema(&[(bad, "text")], &[]), "t", &opts).unwrap_err();
            assert!(matches!(err, MappingError::InvalidName { what: "column", .. }), "{bad}");
            assert!(err.to_string().contains("with_column_name"), "{err}");
        }
        // A rename fixes it.
        let o = MappingOptions::new().with_column_name("a=b", "a_eq_b");
        let t = map_table(&schema(&[("a=b", "text")], &[]), "t", &o).unwrap();
        assert_eq!(t.columns[0].name, "a_eq_b");
        assert_eq!(t.columns[0].source_name, "a=b");
        // Unicode and spaces are fine by the FE source rule.
        assert!(map_table(&schema(&[("Grüße Spalte", "text")], &[]), "tä b", &opts).is_ok());
        for bad in ["", "a\0b", "new\nline"] {
            let err = map_table(&schema(&[("c", "text")], &[]), bad, &opts).unwrap_err();
            assert!(matches!(err, MappingError::InvalidName { what: "table", .. }), "{bad:?}");
        }
        let long = "x".repeat(1025);
        assert!(map_table(&schema(&[("c", "text")], &[]), &long, &opts).is_err());
        let err =
            map_table(&schema(&[("Id", "text"), ("id", "text")], &[]), "t", &opts).unwrap_err();
        assert!(matches!(err, MappingError::DuplicateColumn { .. }), "{err}");
        assert!(check_database_name("_1db").is_ok());
        assert!(check_database_name("1db").is_err());
        assert!(check_database_name("__db").is_err());
        assert!(check_database_name("").is_err());
    }

    #[test]
    fn enums_parse_and_print() {
        assert_eq!("JSON".parse::<LoadFormat>().unwrap(), LoadFormat::Json);
        assert_eq!(LoadFormat::Csv.to_string(), "csv");
        assert!("xml".parse::<LoadFormat>().is_err());
        assert_eq!("Error".parse::<Unrepresentable>().unwrap(), Unrepresentable::Error);
        assert_eq!(Unrepresentable::Varchar.to_string(), "varchar");
        for t in ["BOOLEAN", "SMALLINT", "INT", "BIGINT", "LARGEINT", "FLOAT", "DOUBLE", "DATE"] {
            assert_eq!(t.parse::<SrType>().unwrap().to_string(), t);
        }
        assert_eq!("decimal(9)".parse::<SrType>().unwrap().to_string(), "DECIMAL(9,0)");
        assert!("DECIMAL(3,4)".parse::<SrType>().is_err());
        assert!("ARRAY<FOO>".parse::<SrType>().is_err());
    }

    #[test]
    fn no_columns() {
        let err = map_table(&schema(&[], &[]), "t", &MappingOptions::default()).unwrap_err();
        assert!(matches!(err, MappingError::NoColumns { .. }));
    }
}

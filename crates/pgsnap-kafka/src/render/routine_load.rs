//! StarRocks `CREATE ROUTINE LOAD` for one table fed by one Debezium topic.
//!
//! The raw Debezium JSON envelope is mapped with `jsonpaths` and a `COLUMNS` clause:
//!
//! - temporary columns `__dbz_op` (`$.payload.op`), `__dbz_b_<k>` (`$.payload.before.<k>`)
//!   for each key column and `__dbz_a_<c>` (`$.payload.after.<c>`) for each column;
//! - `<k> = coalesce(__dbz_a_<k>, __dbz_b_<k>)` for key columns (a delete has
//!   `after = null`, so its key comes from `before`), `<c> = __dbz_a_<c>` for the others;
//! - on Primary Key tables `__op = if(__dbz_op = 'd', 1, 0)` (1 = delete, 0 = upsert).
//!
//! Without `schemas.enable` the `payload.` segment is dropped (`$.op`, `$.after.<c>`).
//!
//! Duplicate Key tables (no primary key) cannot apply deletes: only `after` is mapped, and
//! [`RenderedRoutineLoad::warnings`] says so. A delete event then loads as a row of `NULL`s
//! (or is rejected by `NOT NULL` columns, which stops the job since `max_error_number` is 0).
//!
//! Start positions are always explicit: `kafka_partitions` and `kafka_offsets` list every
//! partition of the offset map with a non-negative offset. `OFFSET_END`, `OFFSET_BEGINNING`
//! and `-1`/`-2` are never rendered; negative values are refused with
//! [`RenderError::NegativeOffset`].

use std::collections::{BTreeMap, BTreeSet};

use super::{RenderError, quote_ident, string_literal};

/// Prefix of the temporary (non-table) columns in the `COLUMNS` clause. Target columns
/// starting with it are refused.
pub const TEMP_PREFIX: &str = "__dbz_";

/// Properties that the renderer sets itself and that [`RoutineLoadSpec::properties`] may not
/// override.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "format",
    "strip_outer_array",
    "jsonpaths",
    "json_root",
    "envelope",
    "max_error_number",
    "max_filter_ratio",
];

/// Everything needed to render one `CREATE ROUTINE LOAD` statement.
///
/// ```
/// use std::collections::BTreeMap;
/// use pgsnap_kafka::render::RoutineLoadSpec;
///
/// let spec = RoutineLoadSpec::new(
///     "db", "orders", "orders_cdc", "pg.public.orders",
///     ["k:9092"], ["id", "amount"], ["id"],
///     BTreeMap::from([(0, 1234), (1, 980)]),
/// )
/// .with_property("desired_concurrent_number", "3");
/// assert!(spec.primary_key_table);
/// assert!(!spec.schemas_enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutineLoadSpec {
    /// StarRocks database of the target table (and of the job).
    pub database: String,
    /// StarRocks target table.
    pub table: String,
    /// Routine Load job name (unique per database).
    pub job_name: String,
    /// Kafka topic (one topic per job).
    pub topic: String,
    /// Kafka bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Target column names, which are also the PostgreSQL column names in the Debezium
    /// `before`/`after` images. Primary key columns first is conventional, not required.
    pub columns: Vec<String>,
    /// Primary key columns (a subset of `columns`); their values come from `after`, or from
    /// `before` for deletes. Required for Primary Key tables.
    pub key_columns: Vec<String>,
    /// `true` (default) for a StarRocks Primary Key table: `__op` is mapped and deletes are
    /// applied. `false` for a Duplicate Key table: deletes cannot be applied.
    pub primary_key_table: bool,
    /// Whether the Debezium JSON converter writes `{"schema","payload"}` envelopes
    /// (`value.converter.schemas.enable=true`); adds the `payload.` path segment.
    pub schemas_enabled: bool,
    /// Start offset (inclusive) per Kafka partition, as resolved for the handoff.
    pub offsets: BTreeMap<i32, i64>,
    /// Further job properties (`desired_concurrent_number`, `max_batch_interval`, …), rendered
    /// as string literals after the fixed ones. Keys in [`RESERVED_PROPERTIES`] are refused.
    pub properties: BTreeMap<String, String>,
}

impl RoutineLoadSpec {
    /// A spec for a Primary Key table, `schemas.enable=false`, no extra properties.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        database: impl Into<String>,
        table: impl Into<String>,
        job_name: impl Into<String>,
        topic: impl Into<String>,
        brokers: impl IntoIterator<Item = impl Into<String>>,
        columns: impl IntoIterator<Item = impl Into<String>>,
        key_columns: impl IntoIterator<Item = impl Into<String>>,
        offsets: BTreeMap<i32, i64>,
    ) -> Self {
        Self {
            database: database.into(),
            table: table.into(),
            job_name: job_name.into(),
            topic: topic.into(),
            brokers: brokers.into_iter().map(Into::into).collect(),
            columns: columns.into_iter().map(Into::into).collect(),
            key_columns: key_columns.into_iter().map(Into::into).collect(),
            primary_key_table: true,
            schemas_enabled: false,
            offsets,
            properties: BTreeMap::new(),
        }
    }

    /// Set one extra job property (e.g. `desired_concurrent_number`).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use pgsnap_kafka::render::RoutineLoadSpec;
    /// let spec = RoutineLoadSpec::new("d", "t", "j", "p.s.t", ["k:9092"], ["id"], ["id"],
    ///     BTreeMap::from([(0, 0)]))
    ///     .with_property("max_batch_interval", "10");
    /// assert_eq!(spec.properties["max_batch_interval"], "10");
    /// ```
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Set [`schemas_enabled`](Self::schemas_enabled).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use pgsnap_kafka::render::RoutineLoadSpec;
    /// let spec = RoutineLoadSpec::new("d", "t", "j", "p.s.t", ["k:9092"], ["id"], ["id"],
    ///     BTreeMap::from([(0, 0)])).with_schemas_enabled(true);
    /// assert!(spec.schemas_enabled);
    /// ```
    pub fn with_schemas_enabled(mut self, enabled: bool) -> Self {
        self.schemas_enabled = enabled;
        self
    }

    /// Set [`primary_key_table`](Self::primary_key_table).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use pgsnap_kafka::render::RoutineLoadSpec;
    /// let spec = RoutineLoadSpec::new("d", "t", "j", "p.s.t", ["k:9092"], ["id"], Vec::<String>::new(),
    ///     BTreeMap::from([(0, 0)])).with_primary_key_table(false);
    /// assert!(!spec.primary_key_table);
    /// ```
    pub fn with_primary_key_table(mut self, primary_key_table: bool) -> Self {
        self.primary_key_table = primary_key_table;
        self
    }
}

/// A rendered statement and what it cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedRoutineLoad {
    /// The `CREATE ROUTINE LOAD …;` statement.
    pub sql: String,
    /// Caveats for the report (e.g. deletes not applied on a Duplicate Key table).
    pub warnings: Vec<String>,
}

fn is_path_safe(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_plain(field: &'static str, value: &str) -> Result<(), RenderError> {
    if value.is_empty() {
        return Err(RenderError::Empty { field });
    }
    if value.chars().any(char::is_control) {
        return Err(RenderError::InvalidValue {
            field,
            value: value.to_owned(),
            reason: "contains a control character",
        });
    }
    Ok(())
}

fn validate(spec: &RoutineLoadSpec) -> Result<(), RenderError> {
    check_plain("database", &spec.database)?;
    check_plain("table", &spec.table)?;
    check_plain("job_name", &spec.job_name)?;
    check_plain("topic", &spec.topic)?;
    if spec.brokers.is_empty() {
        return Err(RenderError::Empty { field: "brokers" });
    }
    for b in &spec.brokers {
        check_plain("broker", b)?;
        if b.contains(',') || b.trim() != b {
            return Err(RenderError::InvalidValue {
                field: "broker",
                value: b.clone(),
                reason: "must be a single host:port without commas or surrounding spaces",
            });
        }
    }
    if spec.columns.is_empty() {
        return Err(RenderError::Empty { field: "columns" });
    }
    let mut seen = BTreeSet::new();
    for c in &spec.columns {
        if !is_path_safe(c) {
            return Err(RenderError::UnsupportedColumnName { column: c.clone() });
        }
        if c.starts_with(TEMP_PREFIX) || c == "__op" {
            return Err(RenderError::BadColumn {
                column: c.clone(),
                reason: "collides with the renderer's temporary columns (__dbz_*) or __op",
            });
        }
        if !seen.insert(c.as_str()) {
            return Err(RenderError::BadColumn { column: c.clone(), reason: "listed twice" });
        }
    }
    let mut seen_keys = BTreeSet::new();
    for k in &spec.key_columns {
        if !seen.contains(k.as_str()) {
            return Err(RenderError::BadColumn {
                column: k.clone(),
                reason: "key column is not among the columns",
            });
        }
        if !seen_keys.insert(k.as_str()) {
            return Err(RenderError::BadColumn {
                column: k.clone(),
                reason: "key column listed twice",
            });
        }
    }
    if spec.primary_key_table && spec.key_columns.is_empty() {
        return Err(RenderError::Empty { field: "key_columns (required for a Primary Key table)" });
    }
    if spec.offsets.is_empty() {
        return Err(RenderError::NoPartitions { topic: spec.topic.clone() });
    }
    for (&partition, &offset) in &spec.offsets {
        if partition < 0 {
            return Err(RenderError::NegativePartition { topic: spec.topic.clone(), partition });
        }
        if offset < 0 {
            return Err(RenderError::NegativeOffset {
                topic: spec.topic.clone(),
                partition,
                offset,
            });
        }
    }
    for (k, v) in &spec.properties {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Err(RenderError::InvalidValue {
                field: "property key",
                value: k.clone(),
                reason: "only [A-Za-z0-9_.] is allowed",
            });
        }
        if RESERVED_PROPERTIES.contains(&k.as_str()) || k.starts_with("kafka_") {
            return Err(RenderError::InvalidValue {
                field: "property key",
                value: k.clone(),
                reason: "set by the renderer; cannot be overridden",
            });
        }
        if v.chars().any(char::is_control) {
            return Err(RenderError::InvalidValue {
                field: "property value",
                value: v.clone(),
                reason: "contains a control character",
            });
        }
    }
    Ok(())
}

/// Render `CREATE ROUTINE LOAD` for `spec`.
///
/// ```
/// use std::collections::BTreeMap;
/// use pgsnap_kafka::render::{render_routine_load, RoutineLoadSpec};
///
/// let spec = RoutineLoadSpec::new(
///     "db", "orders", "orders_cdc", "pg.public.orders",
///     ["k:9092"], ["id", "amount"], ["id"],
///     BTreeMap::from([(0, 1234), (1, 980), (2, 1102)]),
/// );
/// let out = render_routine_load(&spec).unwrap();
/// assert!(out.sql.contains(r#""kafka_offsets" = "1234,980,1102""#));
/// assert!(out.sql.contains("`__op` = if(`__dbz_op` = 'd', 1, 0)"));
/// assert!(out.warnings.is_empty());
///
/// // A negative offset (OFFSET_END / OFFSET_BEGINNING) is refused.
/// let bad = RoutineLoadSpec { offsets: BTreeMap::from([(0, -1)]), ..spec };
/// assert!(render_routine_load(&bad).is_err());
/// ```
pub fn render_routine_load(spec: &RoutineLoadSpec) -> Result<RenderedRoutineLoad, RenderError> {
    validate(spec)?;
    let root = if spec.schemas_enabled { "$.payload" } else { "$" };
    let mut warnings = Vec::new();

    // Source (temporary) columns, in jsonpaths order.
    let mut paths: Vec<String> = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let op_col = format!("{TEMP_PREFIX}op");
    let b = |c: &str| format!("{TEMP_PREFIX}b_{c}");
    let a = |c: &str| format!("{TEMP_PREFIX}a_{c}");
    let key_set: BTreeSet<&str> = spec.key_columns.iter().map(String::as_str).collect();
    let pk = spec.primary_key_table;

    if pk {
        paths.push(format!("{root}.op"));
        items.push(quote_ident(&op_col));
        for k in &spec.key_columns {
            paths.push(format!("{root}.before.{k}"));
            items.push(quote_ident(&b(k)));
        }
    }
    for c in &spec.columns {
        paths.push(format!("{root}.after.{c}"));
        items.push(quote_ident(&a(c)));
    }
    // Derived target columns.
    for c in &spec.columns {
        let expr = if pk && key_set.contains(c.as_str()) {
            format!("coalesce({}, {})", quote_ident(&a(c)), quote_ident(&b(c)))
        } else {
            quote_ident(&a(c))
        };
        items.push(format!("{} = {}", quote_ident(c), expr));
    }
    if pk {
        items.push(format!("{} = if({} = 'd', 1, 0)", quote_ident("__op"), quote_ident(&op_col)));
    } else {
        warnings.push(format!(
            "{}.{}: not a Primary Key table; Debezium deletes cannot be applied (a delete \
             event loads as a row of NULLs or fails NOT NULL columns), so this table is not \
             kept exact",
            spec.database, spec.table
        ));
    }

    let jsonpaths = serde_json::to_string(&paths).expect("serializing a Vec<String> cannot fail");
    let mut props: Vec<(String, String)> = vec![
        ("format".into(), "json".into()),
        ("strip_outer_array".into(), "false".into()),
        ("jsonpaths".into(), jsonpaths),
        ("max_error_number".into(), "0".into()),
        ("max_filter_ratio".into(), "0".into()),
    ];
    props.extend(spec.properties.iter().map(|(k, v)| (k.clone(), v.clone())));

    let partitions: Vec<String> = spec.offsets.keys().map(i32::to_string).collect();
    let offsets: Vec<String> = spec.offsets.values().map(i64::to_string).collect();
    let kafka: Vec<(String, String)> = vec![
        ("kafka_broker_list".into(), spec.brokers.join(",")),
        ("kafka_topic".into(), spec.topic.clone()),
        ("kafka_partitions".into(), partitions.join(",")),
        ("kafka_offsets".into(), offsets.join(",")),
    ];

    let kv = |list: &[(String, String)]| {
        list.iter()
            .map(|(k, v)| format!("  {} = {}", string_literal(k), string_literal(v)))
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let sql = format!(
        "CREATE ROUTINE LOAD {}.{} ON {}\nCOLUMNS ({})\nPROPERTIES (\n{}\n)\nFROM KAFKA (\n{}\n);",
        quote_ident(&spec.database),
        quote_ident(&spec.job_name),
        quote_ident(&spec.table),
        items.join(", "),
        kv(&props),
        kv(&kafka),
    );
    Ok(RenderedRoutineLoad { sql, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RoutineLoadSpec {
        RoutineLoadSpec::new(
            "db",
            "orders",
            "orders_cdc",
            "pg.public.orders",
            ["k1:9092", "k2:9092"],
            ["id", "amount"],
            ["id"],
            BTreeMap::from([(0, 1234), (1, 0), (2, 1102)]),
        )
        .with_property("desired_concurrent_number", "3")
    }

    #[test]
    fn exact_sql_for_one_table() {
        let out = render_routine_load(&spec()).unwrap();
        let expected = r#"CREATE ROUTINE LOAD `db`.`orders_cdc` ON `orders`
COLUMNS (`__dbz_op`, `__dbz_b_id`, `__dbz_a_id`, `__dbz_a_amount`, `id` = coalesce(`__dbz_a_id`, `__dbz_b_id`), `amount` = `__dbz_a_amount`, `__op` = if(`__dbz_op` = 'd', 1, 0))
PROPERTIES (
  "format" = "json",
  "strip_outer_array" = "false",
  "jsonpaths" = "[\"$.op\",\"$.before.id\",\"$.after.id\",\"$.after.amount\"]",
  "max_error_number" = "0",
  "max_filter_ratio" = "0",
  "desired_concurrent_number" = "3"
)
FROM KAFKA (
  "kafka_broker_list" = "k1:9092,k2:9092",
  "kafka_topic" = "pg.public.orders",
  "kafka_partitions" = "0,1,2",
  "kafka_offsets" = "1234,0,1102"
);"#;
        assert_eq!(out.sql, expected);
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn schemas_enabled_adds_payload() {
        let out = render_routine_load(&spec().with_schemas_enabled(true)).unwrap();
        assert!(out.sql.contains(
            r#""[\"$.payload.op\",\"$.payload.before.id\",\"$.payload.after.id\",\"$.payload.after.amount\"]""#
        ));
    }

    #[test]
    fn never_offset_end_or_negative() {
        for offsets in [BTreeMap::from([(0, 0)]), BTreeMap::from([(0, 1), (3, 0), (7, i64::MAX)])] {
            let out = render_routine_load(&RoutineLoadSpec { offsets, ..spec() }).unwrap();
            let upper = out.sql.to_uppercase();
            assert!(!upper.contains("OFFSET_END"));
            assert!(!upper.contains("OFFSET_BEGINNING"));
            assert!(!upper.contains("KAFKA_DEFAULT_OFFSETS"));
            let offsets_line = out.sql.lines().find(|l| l.contains("\"kafka_offsets\"")).unwrap();
            assert!(!offsets_line.contains('-'), "{offsets_line}");
        }
        for bad in [-1, -2, i64::MIN] {
            let err = render_routine_load(&RoutineLoadSpec {
                offsets: BTreeMap::from([(0, 5), (4, bad)]),
                ..spec()
            })
            .unwrap_err();
            assert_eq!(
                err,
                RenderError::NegativeOffset {
                    topic: "pg.public.orders".into(),
                    partition: 4,
                    offset: bad
                }
            );
            assert!(err.to_string().contains("partition 4"));
        }
    }

    #[test]
    fn refusals() {
        let err = render_routine_load(&RoutineLoadSpec { offsets: BTreeMap::new(), ..spec() })
            .unwrap_err();
        assert_eq!(err, RenderError::NoPartitions { topic: "pg.public.orders".into() });
        let err =
            render_routine_load(&RoutineLoadSpec { offsets: BTreeMap::from([(-1, 3)]), ..spec() })
                .unwrap_err();
        assert!(matches!(err, RenderError::NegativePartition { partition: -1, .. }));
        for col in ["a.b", "a'b", "a\"b", "", "1a", "a b", "ä"] {
            let err = render_routine_load(&RoutineLoadSpec {
                columns: vec!["id".into(), col.into()],
                ..spec()
            })
            .unwrap_err();
            assert!(matches!(err, RenderError::UnsupportedColumnName { .. }), "{col:?}: {err:?}");
        }
        for col in ["__op", "__dbz_a_id"] {
            let err = render_routine_load(&RoutineLoadSpec {
                columns: vec!["id".into(), col.into()],
                ..spec()
            })
            .unwrap_err();
            assert!(matches!(err, RenderError::BadColumn { .. }), "{err:?}");
        }
        let err =
            render_routine_load(&RoutineLoadSpec { key_columns: vec!["nope".into()], ..spec() })
                .unwrap_err();
        assert!(matches!(err, RenderError::BadColumn { .. }));
        let err =
            render_routine_load(&RoutineLoadSpec { key_columns: vec![], ..spec() }).unwrap_err();
        assert!(matches!(err, RenderError::Empty { .. }));
        for key in ["jsonpaths", "format", "kafka_offsets", "a\"b"] {
            let err = render_routine_load(&spec().with_property(key, "x")).unwrap_err();
            assert!(matches!(err, RenderError::InvalidValue { .. }), "{key}");
        }
        let err =
            render_routine_load(&RoutineLoadSpec { brokers: vec!["a:1,b:2".into()], ..spec() })
                .unwrap_err();
        assert!(matches!(err, RenderError::InvalidValue { .. }));
    }

    #[test]
    fn identifiers_and_values_are_quoted() {
        let out = render_routine_load(
            &RoutineLoadSpec {
                database: "d`b".into(),
                table: "t\"x".into(),
                job_name: "j`".into(),
                topic: "we\"ird\\topic".into(),
                ..spec()
            }
            .with_property("timezone", "A\"\\B"),
        )
        .unwrap();
        assert!(out.sql.starts_with("CREATE ROUTINE LOAD `d``b`.`j``` ON `t\"x`\n"));
        assert!(out.sql.contains(r#""kafka_topic" = "we\"ird\\topic""#));
        assert!(out.sql.contains(r#""timezone" = "A\"\\B""#));
    }

    #[test]
    fn duplicate_key_table_warns_and_has_no_op() {
        let out = render_routine_load(
            &RoutineLoadSpec { key_columns: vec![], ..spec() }.with_primary_key_table(false),
        )
        .unwrap();
        assert!(!out.sql.contains("__op"));
        assert!(!out.sql.contains("before"));
        assert!(out.sql.contains(
            "COLUMNS (`__dbz_a_id`, `__dbz_a_amount`, `id` = `__dbz_a_id`, `amount` = `__dbz_a_amount`)"
        ));
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].contains("deletes cannot be applied"));
    }
}

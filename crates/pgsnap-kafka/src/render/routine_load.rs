//! StarRocks `CREATE ROUTINE LOAD` for one table fed by one Debezium topic.
//!
//! The raw Debezium JSON envelope is mapped with `jsonpaths` and a `COLUMNS` clause, one
//! jsonpath per source column:
//!
//! - a **direct** column: `$.after.<field>` straight into the table column (no expression), so
//!   `strict_mode` filters a value StarRocks cannot convert instead of loading NULL;
//! - on Primary Key tables, each **key column** reads temporary columns `__dbz_a_<k>`
//!   (`$.after.<k>`) and `__dbz_b_<k>` (`$.before.<k>`): `<k> = coalesce(__dbz_a_<k>,
//!   __dbz_b_<k>)`, because a delete has `after = null`;
//! - a column with a **conversion** ([`ColumnMapping::conversion`], e.g. `json`/`jsonb`) reads
//!   `__dbz_a_<c>` and is `<c> = <conversion>`. Strict mode does not check expression results,
//!   so the first key column's expression also checks every conversion:
//!   `if((__dbz_a_<c> IS NULL OR <conversion> IS NOT NULL) AND …, coalesce(…), NULL)`. A value
//!   a conversion turns into NULL makes the key NULL, StarRocks filters the row (key columns
//!   are `NOT NULL`) and the job pauses (`max_error_number` 0) instead of loading NULL;
//! - `__dbz_op` (`$.op`) and `__op = if(__dbz_op = 'd', 1, 0)` on Primary Key tables (1 =
//!   delete, 0 = upsert).
//!
//! With `schemas.enable` the paths start with `$.payload.`. Which columns need a conversion is
//! decided by the parity table (`pgsnap_sink_starrocks::parity`), not here.
//!
//! Properties: `format=json`, `strip_outer_array=false`, the `jsonpaths`, `strict_mode=true`,
//! `timezone=UTC`, `max_error_number=0`, and `pause_on_fatal_parse_error=true` when the spec
//! says the StarRocks version accepts it (3.3.12+, 3.4.2+; older versions reject unknown
//! properties), then the spec's own [`properties`](RoutineLoadSpec::properties).
//!
//! Duplicate Key tables (no primary key) cannot apply deletes: only `after` is mapped, and
//! [`RenderedRoutineLoad::warnings`] says so. Conversions need a key to guard them and are
//! refused there.
//!
//! Start positions are always explicit: `kafka_partitions` and `kafka_offsets` list every
//! partition of the offset map with a non-negative offset. `OFFSET_END`, `OFFSET_BEGINNING`
//! and `-1`/`-2` are never rendered; negative values are refused with
//! [`Error::NegativeOffset`].
//!
//! # Kafka client settings: TLS and SASL
//!
//! The spec's [`kafka_config`](RoutineLoadSpec::kafka_config) (the same
//! [`KafkaClientConfig`] pgsnap's own clients use) becomes `"property.<key>" = "<value>"`
//! entries after `kafka_offsets` in `FROM KAFKA`, following one table, [`KAFKA_PROPERTIES`]
//! (printed with its sources in the [crate docs](crate#production-kafka-tls-and-sasl)):
//!
//! - a plain setting is copied (`security.protocol`, `sasl.mechanism`, `sasl.username`,
//!   `ssl.endpoint.identification.algorithm`);
//! - a secret (`sasl.password`, `ssl.key.password`) is rendered as a placeholder,
//!   `${KAFKA_<KEY>}` ([`secret_placeholder`]: `${KAFKA_SASL_PASSWORD}`), never the value:
//!   whatever executes the statement substitutes it then, and only then;
//! - a certificate or key file (`ssl.ca.location`, `ssl.certificate.location`,
//!   `ssl.key.location`) is rendered as `FILE:<name>`: StarRocks reads such files from those
//!   registered with `CREATE FILE "<name>" IN <db> PROPERTIES ("url" = ..., "catalog" =
//!   "kafka")`, not from paths on the client. The name is derived from the path
//!   ([`file_name`]), and [`RoutineLoadKafka::files`] holds the `CREATE FILE` statements to
//!   run first, their URL a placeholder too (`${KAFKA_SSL_CA_LOCATION_URL}`: an
//!   unauthenticated HTTP URL the FE downloads the file from once). `ssl.ca.location=probe`
//!   (librdkafka's "find the system's CA store") is copied as is.
//!
//! A setting the table does not list is not rendered, and [`RoutineLoadKafka::warnings`]
//! names it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::client_config::KafkaClientConfig;
use crate::error::{Error, Result};

/// Prefix of the temporary (non-table) columns in the `COLUMNS` clause. Target columns
/// starting with it are refused.
pub const TEMP_PREFIX: &str = "__dbz_";

/// The placeholder for the source value in a [`ColumnMapping::conversion`].
pub const VALUE_PLACEHOLDER: &str = "{v}";

/// Properties that the renderer sets itself and that [`RoutineLoadSpec::properties`] may not
/// override.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "format",
    "strip_outer_array",
    "jsonpaths",
    "json_root",
    "envelope",
    "strict_mode",
    "timezone",
    "max_error_number",
    "max_filter_ratio",
    "pause_on_fatal_parse_error",
];

/// How a Kafka client setting's value is rendered into its Routine Load property (a row of
/// [`KAFKA_PROPERTIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PropertyValue {
    /// The value, as is.
    Copied,
    /// A secret: the placeholder `${KAFKA_<KEY>}` ([`secret_placeholder`]), never the value.
    Secret,
    /// A file on the client: `FILE:<name>` of the file registered with `CREATE FILE`
    /// ([`file_name`], [`RoutineLoadFile`]).
    File,
}

/// One row of [`KAFKA_PROPERTIES`]: a librdkafka client setting and the Routine Load
/// property that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaProperty {
    /// The librdkafka key in [`KafkaClientConfig`].
    pub setting: &'static str,
    /// The `FROM KAFKA` property of `CREATE ROUTINE LOAD`.
    pub property: &'static str,
    /// How the value is rendered.
    pub value: PropertyValue,
}

const fn row(setting: &'static str, property: &'static str, value: PropertyValue) -> KafkaProperty {
    KafkaProperty { setting, property, value }
}

/// Which Kafka client settings the rendered Routine Load carries, and how: the one table
/// (printed with its sources in the [crate docs](crate#production-kafka-tls-and-sasl)).
/// Every property name is from StarRocks' `CREATE ROUTINE LOAD` documentation; a setting
/// not listed here is not rendered and the rendering warns
/// ([`RoutineLoadKafka::warnings`]).
///
/// ```
/// use pgsnap_kafka::render::routine_load::{KAFKA_PROPERTIES, PropertyValue};
/// let password = KAFKA_PROPERTIES.iter().find(|p| p.setting == "sasl.password").unwrap();
/// assert_eq!(password.property, "property.sasl.password");
/// assert_eq!(password.value, PropertyValue::Secret);
/// ```
pub const KAFKA_PROPERTIES: &[KafkaProperty] = &[
    row("security.protocol", "property.security.protocol", PropertyValue::Copied),
    row("sasl.mechanism", "property.sasl.mechanism", PropertyValue::Copied),
    row("sasl.mechanisms", "property.sasl.mechanism", PropertyValue::Copied),
    row("sasl.username", "property.sasl.username", PropertyValue::Copied),
    row("sasl.password", "property.sasl.password", PropertyValue::Secret),
    row("ssl.ca.location", "property.ssl.ca.location", PropertyValue::File),
    row("ssl.certificate.location", "property.ssl.certificate.location", PropertyValue::File),
    row("ssl.key.location", "property.ssl.key.location", PropertyValue::File),
    row("ssl.key.password", "property.ssl.key.password", PropertyValue::Secret),
    row(
        "ssl.endpoint.identification.algorithm",
        "property.ssl.endpoint.identification.algorithm",
        PropertyValue::Copied,
    ),
];

/// The `catalog` StarRocks looks up a Routine Load's `FILE:<name>` in.
pub const FILE_CATALOG: &str = "kafka";

/// The placeholder a rendered statement holds instead of the value of `setting`:
/// `${KAFKA_<SETTING>}`, the setting upper-cased with every character other than `A-Z0-9`
/// as `_` (the `${NAME}` of a shell or `envsubst`).
///
/// ```
/// use pgsnap_kafka::render::routine_load::secret_placeholder;
/// assert_eq!(secret_placeholder("sasl.password"), "${KAFKA_SASL_PASSWORD}");
/// assert_eq!(secret_placeholder("ssl.key.password"), "${KAFKA_SSL_KEY_PASSWORD}");
/// ```
pub fn secret_placeholder(setting: &str) -> String {
    format!("${{KAFKA_{}}}", env_name(setting))
}

fn env_name(setting: &str) -> String {
    setting
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// The StarRocks file name of a client-side file: `pgsnap_<hash>_<file name>`, where the
/// hash (8 hex digits, FNV-1a of the whole path) keeps two files of the same name apart and
/// the file name keeps `[A-Za-z0-9_.-]` (anything else becomes `_`). The same path always
/// gives the same name.
///
/// ```
/// use pgsnap_kafka::render::routine_load::file_name;
/// let name = file_name("/etc/kafka/ca.pem");
/// assert!(name.starts_with("pgsnap_") && name.ends_with("_ca.pem"), "{name}");
/// assert_eq!(name, file_name("/etc/kafka/ca.pem"));
/// assert_ne!(name, file_name("/etc/other/ca.pem"));
/// ```
pub fn file_name(path: &str) -> String {
    // FNV-1a, 64 bits, folded to 32: stable across Rust versions and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let base = path.rsplit(['/', '\\']).find(|s| !s.is_empty()).unwrap_or("file");
    let base: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' })
        .collect();
    format!("pgsnap_{:08x}_{base}", (h ^ (h >> 32)) as u32)
}

/// A client-side file a Routine Load names as `FILE:<name>`: register it with [`sql`](Self::sql)
/// before the `CREATE ROUTINE LOAD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoutineLoadFile {
    /// The client setting that names it (`ssl.ca.location`, ...).
    pub setting: String,
    /// Its path on the client.
    pub path: String,
    /// Its StarRocks name ([`file_name`]).
    pub name: String,
    /// The placeholder of its download URL in [`sql`](Self::sql): an unauthenticated HTTP(S)
    /// URL the FE fetches the file from once (StarRocks keeps the file; the URL is not needed
    /// afterwards).
    pub url_placeholder: String,
    /// `CREATE FILE "<name>" IN <database> PROPERTIES ("url" = "<placeholder>", "catalog" =
    /// "kafka");`
    pub sql: String,
}

/// The Kafka client settings as Routine Load `FROM KAFKA` properties ([`KAFKA_PROPERTIES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoutineLoadKafka {
    /// `("property.<key>", value)` in the table's order; secrets and file URLs as
    /// placeholders.
    pub properties: Vec<(String, String)>,
    /// The files to register first, one per distinct path.
    pub files: Vec<RoutineLoadFile>,
    /// Every placeholder in [`properties`](Self::properties) and the files' statements → the
    /// client setting whose value (for a file: whose file's URL) replaces it.
    pub placeholders: BTreeMap<String, String>,
    /// The settings not carried (no row in the table), by name; and, when there are
    /// placeholders, what to substitute.
    pub warnings: Vec<String>,
}

/// Maps `config` into Routine Load properties for a job in `database` (the database of the
/// `CREATE FILE` statements). Never copies a secret.
///
/// ```
/// use pgsnap_kafka::KafkaClientConfig;
/// use pgsnap_kafka::render::routine_load::routine_load_kafka;
///
/// let config = KafkaClientConfig::new()
///     .with_setting("security.protocol", "SASL_SSL")
///     .with_setting("sasl.mechanism", "SCRAM-SHA-512")
///     .with_setting("sasl.username", "loader")
///     .with_setting("sasl.password", "s3cr3t")
///     .with_setting("ssl.ca.location", "/etc/kafka/ca.pem")
///     .with_setting("client.id", "pgsnap");
/// let k = routine_load_kafka(&config, "shop")?;
/// assert!(k.properties.contains(&(
///     "property.sasl.password".to_owned(), "${KAFKA_SASL_PASSWORD}".to_owned()
/// )));
/// let ca = &k.files[0];
/// assert!(k.properties.contains(&(
///     "property.ssl.ca.location".to_owned(), format!("FILE:{}", ca.name)
/// )));
/// assert!(ca.sql.starts_with(&format!("CREATE FILE \"{}\" IN `shop`", ca.name)));
/// assert!(k.warnings.iter().any(|w| w.contains("client.id")));
/// assert!(!format!("{k:?}").contains("s3cr3t"));
/// # Ok::<(), pgsnap_kafka::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::KafkaConfig`] when `config` does not [validate](KafkaClientConfig::validate).
pub fn routine_load_kafka(config: &KafkaClientConfig, database: &str) -> Result<RoutineLoadKafka> {
    config.validate()?;
    let mut out = RoutineLoadKafka::default();
    for row in KAFKA_PROPERTIES {
        let Some(value) = config.get(row.setting) else { continue };
        let rendered = match row.value {
            PropertyValue::Copied => value.to_owned(),
            PropertyValue::File if value.trim() == "probe" => value.to_owned(),
            PropertyValue::Secret => {
                let p = secret_placeholder(row.setting);
                out.placeholders.insert(p.clone(), row.setting.to_owned());
                p
            }
            PropertyValue::File => {
                let name = file_name(value);
                if !out.files.iter().any(|f| f.name == name) {
                    let url_placeholder = format!("${{KAFKA_{}_URL}}", env_name(row.setting));
                    out.placeholders.insert(url_placeholder.clone(), row.setting.to_owned());
                    let sql = format!(
                        "CREATE FILE {} IN {} PROPERTIES ({} = {}, {} = {});",
                        string_literal(&name),
                        quote_ident(database),
                        string_literal("url"),
                        string_literal(&url_placeholder),
                        string_literal("catalog"),
                        string_literal(FILE_CATALOG),
                    );
                    out.files.push(RoutineLoadFile {
                        setting: row.setting.to_owned(),
                        path: value.to_owned(),
                        name: name.clone(),
                        url_placeholder,
                        sql,
                    });
                }
                format!("FILE:{name}")
            }
        };
        out.properties.push((row.property.to_owned(), rendered));
    }
    for (key, _) in config.iter() {
        if !KAFKA_PROPERTIES.iter().any(|r| r.setting == key) {
            out.warnings.push(format!(
                "Kafka client setting {key} has no Routine Load counterpart in pgsnap's table                  (pgsnap_kafka::render::routine_load::KAFKA_PROPERTIES), so the Routine Loads                  do not carry it; if StarRocks' consumer needs it too, add                  \"property.{key}\" to their FROM KAFKA clause by hand (StarRocks passes                  property.* settings to librdkafka)"
            ));
        }
    }
    if !out.placeholders.is_empty() {
        let list: Vec<String> =
            out.placeholders.iter().map(|(p, s)| format!("{p} ({s})")).collect();
        out.warnings.push(format!(
            "the Routine Load statements hold placeholders, never secrets: {}; substitute them              when executing the statements, and run the CREATE FILE statements first",
            list.join(", ")
        ));
    }
    Ok(out)
}

/// How one target column is filled.
///
/// ```
/// use pgsnap_kafka::render::ColumnMapping;
/// let direct: ColumnMapping = "amount".into();
/// assert_eq!(direct.field, "amount");
/// let doc = ColumnMapping::new("doc", "Doc").with_conversion("parse_json({v})");
/// assert_eq!(doc.conversion.as_deref(), Some("parse_json({v})"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnMapping {
    /// The StarRocks column.
    pub column: String,
    /// The field in Debezium's `after`/`before` images (the PostgreSQL column name).
    pub field: String,
    /// An expression over the source value ([`VALUE_PLACEHOLDER`] stands for it), or `None`
    /// to map the field directly.
    pub conversion: Option<String>,
}

impl ColumnMapping {
    /// A direct mapping of `field` into `column`.
    pub fn new(column: impl Into<String>, field: impl Into<String>) -> Self {
        Self { column: column.into(), field: field.into(), conversion: None }
    }

    /// Sets the conversion expression (with [`VALUE_PLACEHOLDER`]).
    pub fn with_conversion(mut self, expression: impl Into<String>) -> Self {
        self.conversion = Some(expression.into());
        self
    }
}

impl From<&str> for ColumnMapping {
    fn from(name: &str) -> Self {
        ColumnMapping::new(name, name)
    }
}

impl From<String> for ColumnMapping {
    fn from(name: String) -> Self {
        ColumnMapping::new(name.clone(), name)
    }
}

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
    /// The target columns and how each is filled.
    pub columns: Vec<ColumnMapping>,
    /// Primary key columns (target names, a subset of `columns`); their values come from
    /// `after`, or from `before` for deletes. Required for Primary Key tables.
    pub key_columns: Vec<String>,
    /// `true` (default) for a StarRocks Primary Key table: `__op` is mapped and deletes are
    /// applied. `false` for a Duplicate Key table: deletes cannot be applied.
    pub primary_key_table: bool,
    /// Whether the Debezium JSON converter writes `{"schema","payload"}` envelopes
    /// (`value.converter.schemas.enable=true`); adds the `payload.` path segment.
    pub schemas_enabled: bool,
    /// Render `pause_on_fatal_parse_error=true` (only StarRocks 3.3.12+, 3.4.2+ accept it).
    pub pause_on_fatal_parse_error: bool,
    /// Start offset (inclusive) per Kafka partition, as resolved for the handoff.
    pub offsets: BTreeMap<i32, i64>,
    /// Further job properties (`desired_concurrent_number`, `max_batch_interval`, …), rendered
    /// as string literals after the fixed ones. Keys in [`RESERVED_PROPERTIES`] are refused.
    pub properties: BTreeMap<String, String>,
    /// The Kafka client settings (TLS, SASL) the job's consumer needs, rendered as
    /// `property.*` entries by [`KAFKA_PROPERTIES`] (see the [module docs](self)). Default:
    /// none.
    pub kafka_config: KafkaClientConfig,
}

impl RoutineLoadSpec {
    /// A spec for a Primary Key table, `schemas.enable=false`, no extra properties, without
    /// `pause_on_fatal_parse_error`. `columns` are names mapped directly, or
    /// [`ColumnMapping`]s.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        database: impl Into<String>,
        table: impl Into<String>,
        job_name: impl Into<String>,
        topic: impl Into<String>,
        brokers: impl IntoIterator<Item = impl Into<String>>,
        columns: impl IntoIterator<Item = impl Into<ColumnMapping>>,
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
            pause_on_fatal_parse_error: false,
            offsets,
            properties: BTreeMap::new(),
            kafka_config: KafkaClientConfig::new(),
        }
    }

    /// Set [`kafka_config`](Self::kafka_config).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use pgsnap_kafka::render::{render_routine_load, RoutineLoadSpec};
    /// use pgsnap_kafka::KafkaClientConfig;
    /// let tls = KafkaClientConfig::new()
    ///     .with_setting("security.protocol", "SASL_SSL")
    ///     .with_setting("sasl.mechanism", "PLAIN")
    ///     .with_setting("sasl.password", "s3cr3t");
    /// let spec = RoutineLoadSpec::new("d", "t", "j", "p.s.t", ["k:9093"], ["id"], ["id"],
    ///     BTreeMap::from([(0, 0)])).with_kafka_config(tls);
    /// let sql = render_routine_load(&spec).unwrap().sql;
    /// assert!(sql.contains(r#""property.security.protocol" = "SASL_SSL""#));
    /// assert!(sql.contains(r#""property.sasl.password" = "${KAFKA_SASL_PASSWORD}""#));
    /// assert!(!sql.contains("s3cr3t"));
    /// ```
    pub fn with_kafka_config(mut self, config: KafkaClientConfig) -> Self {
        self.kafka_config = config;
        self
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

    /// Set [`pause_on_fatal_parse_error`](Self::pause_on_fatal_parse_error).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use pgsnap_kafka::render::{render_routine_load, RoutineLoadSpec};
    /// let spec = RoutineLoadSpec::new("d", "t", "j", "p.s.t", ["k:9092"], ["id"], ["id"],
    ///     BTreeMap::from([(0, 0)])).with_pause_on_fatal_parse_error(true);
    /// let sql = render_routine_load(&spec).unwrap().sql;
    /// assert!(sql.contains(r#""pause_on_fatal_parse_error" = "true""#));
    /// ```
    pub fn with_pause_on_fatal_parse_error(mut self, pause: bool) -> Self {
        self.pause_on_fatal_parse_error = pause;
        self
    }
}

/// Where one target column's value comes from in a rendered statement (for reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedColumn {
    /// The jsonpath read (`$.after.<field>`; a key column also reads `$.before.<field>`).
    pub path: String,
    /// The `COLUMNS` expression that computes the column, or `None` when the path goes
    /// straight into it.
    pub expression: Option<String>,
}

/// A rendered statement and what it cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedRoutineLoad {
    /// The `CREATE ROUTINE LOAD …;` statement.
    pub sql: String,
    /// Per target column (in spec order): its path and expression.
    pub columns: Vec<(String, RenderedColumn)>,
    /// Caveats for the report (e.g. deletes not applied on a Duplicate Key table).
    pub warnings: Vec<String>,
    /// The Kafka client settings as rendered (`property.*` entries), the files to register
    /// first, the placeholders, and the settings not carried. The same for every table of
    /// one config: its warnings are not repeated in [`warnings`](Self::warnings).
    pub kafka: RoutineLoadKafka,
}

fn is_path_safe(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_plain(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Empty { field });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidValue {
            field,
            value: value.to_owned(),
            reason: "contains a control character",
        });
    }
    Ok(())
}

fn validate(spec: &RoutineLoadSpec) -> Result<()> {
    check_plain("database", &spec.database)?;
    check_plain("table", &spec.table)?;
    check_plain("job_name", &spec.job_name)?;
    check_plain("topic", &spec.topic)?;
    if spec.brokers.is_empty() {
        return Err(Error::Empty { field: "brokers" });
    }
    for b in &spec.brokers {
        check_plain("broker", b)?;
        if b.contains(',') || b.trim() != b {
            return Err(Error::InvalidValue {
                field: "broker",
                value: b.clone(),
                reason: "must be a single host:port without commas or surrounding spaces",
            });
        }
    }
    if spec.columns.is_empty() {
        return Err(Error::Empty { field: "columns" });
    }
    let mut seen = BTreeSet::new();
    for c in &spec.columns {
        check_plain("column", &c.column)?;
        if !is_path_safe(&c.field) {
            return Err(Error::UnsupportedColumnName { column: c.field.clone() });
        }
        let lower = c.column.to_ascii_lowercase();
        if lower.starts_with(TEMP_PREFIX) || lower == "__op" {
            return Err(Error::BadColumn {
                column: c.column.clone(),
                reason: "collides with the renderer's temporary columns (__dbz_*) or __op",
            });
        }
        if !seen.insert(lower) {
            return Err(Error::BadColumn { column: c.column.clone(), reason: "listed twice" });
        }
        if let Some(conv) = &c.conversion {
            if !conv.contains(VALUE_PLACEHOLDER) {
                return Err(Error::BadColumn {
                    column: c.column.clone(),
                    reason: "its conversion does not use the value ({v})",
                });
            }
            if !spec.primary_key_table {
                return Err(Error::BadColumn {
                    column: c.column.clone(),
                    reason: "a conversion needs a Primary Key table, whose key guards it \
                             (strict mode does not check expressions)",
                });
            }
        }
    }
    let mut seen_keys = BTreeSet::new();
    for k in &spec.key_columns {
        let Some(col) = spec.columns.iter().find(|c| &c.column == k) else {
            return Err(Error::BadColumn {
                column: k.clone(),
                reason: "key column is not among the columns",
            });
        };
        if col.conversion.is_some() {
            return Err(Error::BadColumn {
                column: k.clone(),
                reason: "a key column cannot have a conversion",
            });
        }
        if !seen_keys.insert(k.as_str()) {
            return Err(Error::BadColumn { column: k.clone(), reason: "key column listed twice" });
        }
    }
    if spec.primary_key_table && spec.key_columns.is_empty() {
        return Err(Error::Empty { field: "key_columns (required for a Primary Key table)" });
    }
    if spec.offsets.is_empty() {
        return Err(Error::NoPartitions { topic: spec.topic.clone() });
    }
    for (&partition, &offset) in &spec.offsets {
        if partition < 0 {
            return Err(Error::NegativePartition { topic: spec.topic.clone(), partition });
        }
        if offset < 0 {
            return Err(Error::NegativeOffset { topic: spec.topic.clone(), partition, offset });
        }
    }
    for (k, v) in &spec.properties {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Err(Error::InvalidValue {
                field: "property key",
                value: k.clone(),
                reason: "only [A-Za-z0-9_.] is allowed",
            });
        }
        if RESERVED_PROPERTIES.contains(&k.as_str()) || k.starts_with("kafka_") {
            return Err(Error::InvalidValue {
                field: "property key",
                value: k.clone(),
                reason: "set by the renderer; cannot be overridden",
            });
        }
        if v.chars().any(char::is_control) {
            return Err(Error::InvalidValue {
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
/// assert!(out.sql.contains(r#""strict_mode" = "true""#));
/// assert_eq!(out.columns[1].1.path, "$.after.amount");
/// assert!(out.columns[1].1.expression.is_none(), "amount is mapped directly");
/// assert!(out.warnings.is_empty());
///
/// // A negative offset (OFFSET_END / OFFSET_BEGINNING) is refused.
/// let bad = RoutineLoadSpec { offsets: BTreeMap::from([(0, -1)]), ..spec };
/// assert!(render_routine_load(&bad).is_err());
/// ```
pub fn render_routine_load(spec: &RoutineLoadSpec) -> Result<RenderedRoutineLoad> {
    validate(spec)?;
    let kafka_settings = routine_load_kafka(&spec.kafka_config, &spec.database)?;
    let root = if spec.schemas_enabled { "$.payload" } else { "$" };
    let mut warnings = Vec::new();

    // Source columns (jsonpath order): `sources`; each target column's path and expression
    // (the derived columns are those with one): `report`.
    let mut paths: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut report: Vec<(String, RenderedColumn)> = Vec::new();
    let op_col = format!("{TEMP_PREFIX}op");
    let b = |c: &str| quote_ident(&format!("{TEMP_PREFIX}b_{c}"));
    let a = |c: &str| quote_ident(&format!("{TEMP_PREFIX}a_{c}"));
    let key_set: BTreeSet<&str> = spec.key_columns.iter().map(String::as_str).collect();
    let pk = spec.primary_key_table;

    if pk {
        paths.push(format!("{root}.op"));
        sources.push(quote_ident(&op_col));
        for k in &spec.key_columns {
            let field = &spec.columns.iter().find(|c| &c.column == k).expect("validated").field;
            paths.push(format!("{root}.before.{field}"));
            sources.push(b(k));
        }
    }
    // The conversions' checks, guarded by the first key column.
    let mut guards: Vec<String> = Vec::new();
    for c in &spec.columns {
        let after = format!("{root}.after.{}", c.field);
        paths.push(after.clone());
        let (expression, source) = if pk && key_set.contains(c.column.as_str()) {
            (Some(format!("coalesce({}, {})", a(&c.column), b(&c.column))), a(&c.column))
        } else if let Some(conv) = &c.conversion {
            let value = conv.replace(VALUE_PLACEHOLDER, &a(&c.column));
            guards.push(format!("({} IS NULL OR {value} IS NOT NULL)", a(&c.column)));
            (Some(value), a(&c.column))
        } else {
            (None, quote_ident(&c.column))
        };
        sources.push(source);
        report.push((c.column.clone(), RenderedColumn { path: after, expression }));
    }
    if let (Some(first_key), false) = (spec.key_columns.first(), guards.is_empty()) {
        let (_, r) = report.iter_mut().find(|(name, _)| name == first_key).expect("validated");
        r.expression =
            r.expression.take().map(|e| format!("if({}, {e}, NULL)", guards.join(" AND ")));
    }
    let mut items: Vec<String> = sources;
    items.extend(
        report.iter().filter_map(|(c, r)| {
            r.expression.as_ref().map(|e| format!("{} = {e}", quote_ident(c)))
        }),
    );
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
        ("strict_mode".into(), "true".into()),
        ("timezone".into(), "UTC".into()),
        ("max_error_number".into(), "0".into()),
    ];
    if spec.pause_on_fatal_parse_error {
        props.push(("pause_on_fatal_parse_error".into(), "true".into()));
    }
    props.extend(spec.properties.iter().map(|(k, v)| (k.clone(), v.clone())));

    let partitions: Vec<String> = spec.offsets.keys().map(i32::to_string).collect();
    let offsets: Vec<String> = spec.offsets.values().map(i64::to_string).collect();
    let kafka: Vec<(String, String)> = vec![
        ("kafka_broker_list".into(), spec.brokers.join(",")),
        ("kafka_topic".into(), spec.topic.clone()),
        ("kafka_partitions".into(), partitions.join(",")),
        ("kafka_offsets".into(), offsets.join(",")),
    ];
    let kafka: Vec<(String, String)> =
        kafka.into_iter().chain(kafka_settings.properties.iter().cloned()).collect();

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
    Ok(RenderedRoutineLoad { sql, columns: report, warnings, kafka: kafka_settings })
}

/// Quote a StarRocks identifier with backticks, doubling embedded backticks.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A StarRocks (MySQL-style) double-quoted string literal, with backslash escapes.
fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
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
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(string_literal("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
    }

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
COLUMNS (`__dbz_op`, `__dbz_b_id`, `__dbz_a_id`, `amount`, `id` = coalesce(`__dbz_a_id`, `__dbz_b_id`), `__op` = if(`__dbz_op` = 'd', 1, 0))
PROPERTIES (
  "format" = "json",
  "strip_outer_array" = "false",
  "jsonpaths" = "[\"$.op\",\"$.before.id\",\"$.after.id\",\"$.after.amount\"]",
  "strict_mode" = "true",
  "timezone" = "UTC",
  "max_error_number" = "0",
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
        assert_eq!(
            out.columns,
            vec![
                (
                    "id".to_owned(),
                    RenderedColumn {
                        path: "$.after.id".into(),
                        expression: Some("coalesce(`__dbz_a_id`, `__dbz_b_id`)".into())
                    }
                ),
                (
                    "amount".to_owned(),
                    RenderedColumn { path: "$.after.amount".into(), expression: None }
                ),
            ]
        );
    }

    #[test]
    fn conversions_are_guarded_by_the_first_key() {
        let mut s = spec();
        s.columns.push(ColumnMapping::new("doc", "Doc").with_conversion("parse_json({v})"));
        s.key_columns = vec!["id".into()];
        let out = render_routine_load(&s.clone().with_pause_on_fatal_parse_error(true)).unwrap();
        assert!(
            out.sql.contains(
                "`id` = if((`__dbz_a_doc` IS NULL OR parse_json(`__dbz_a_doc`) IS NOT NULL), \
             coalesce(`__dbz_a_id`, `__dbz_b_id`), NULL), `doc` = parse_json(`__dbz_a_doc`)"
            ),
            "{}",
            out.sql
        );
        assert!(out.sql.contains(r#"\"$.after.Doc\""#), "the field name is the path: {}", out.sql);
        assert!(out.sql.contains(r#""pause_on_fatal_parse_error" = "true""#));
        assert_eq!(out.columns[2].1.expression.as_deref(), Some("parse_json(`__dbz_a_doc`)"));
        // No key to guard a conversion: refused.
        let mut dup = s.clone().with_primary_key_table(false);
        dup.key_columns.clear();
        assert!(matches!(render_routine_load(&dup), Err(Error::BadColumn { .. })));
        // A conversion that ignores the value is a mistake.
        let mut bad = spec();
        bad.columns[1] = ColumnMapping::new("amount", "amount").with_conversion("1");
        assert!(matches!(render_routine_load(&bad), Err(Error::BadColumn { .. })));
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
            assert!(
                matches!(
                    &err,
                    Error::NegativeOffset { topic, partition: 4, offset }
                        if topic == "pg.public.orders" && *offset == bad
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains("partition 4"));
        }
    }

    #[test]
    fn refusals() {
        let err = render_routine_load(&RoutineLoadSpec { offsets: BTreeMap::new(), ..spec() })
            .unwrap_err();
        assert!(
            matches!(&err, Error::NoPartitions { topic } if topic == "pg.public.orders"),
            "{err:?}"
        );
        let err =
            render_routine_load(&RoutineLoadSpec { offsets: BTreeMap::from([(-1, 3)]), ..spec() })
                .unwrap_err();
        assert!(matches!(err, Error::NegativePartition { partition: -1, .. }));
        for col in ["a.b", "a'b", "a\"b", "", "1a", "a b", "ä"] {
            let err = render_routine_load(&RoutineLoadSpec {
                columns: vec!["id".into(), col.into()],
                ..spec()
            })
            .unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedColumnName { .. } | Error::Empty { .. }),
                "{col:?}: {err:?}"
            );
        }
        for col in ["__op", "__dbz_a_id"] {
            let err = render_routine_load(&RoutineLoadSpec {
                columns: vec!["id".into(), col.into()],
                ..spec()
            })
            .unwrap_err();
            assert!(matches!(err, Error::BadColumn { .. }), "{err:?}");
        }
        let err =
            render_routine_load(&RoutineLoadSpec { key_columns: vec!["nope".into()], ..spec() })
                .unwrap_err();
        assert!(matches!(err, Error::BadColumn { .. }));
        let err =
            render_routine_load(&RoutineLoadSpec { key_columns: vec![], ..spec() }).unwrap_err();
        assert!(matches!(err, Error::Empty { .. }));
        for key in ["jsonpaths", "format", "kafka_offsets", "a\"b", "strict_mode", "timezone"] {
            let err = render_routine_load(&spec().with_property(key, "x")).unwrap_err();
            assert!(matches!(err, Error::InvalidValue { .. }), "{key}");
        }
        let err =
            render_routine_load(&RoutineLoadSpec { brokers: vec!["a:1,b:2".into()], ..spec() })
                .unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }));
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
            .with_property("task_timeout_second", "A\"\\B"),
        )
        .unwrap();
        assert!(out.sql.starts_with("CREATE ROUTINE LOAD `d``b`.`j``` ON `t\"x`\n"));
        assert!(out.sql.contains(r#""kafka_topic" = "we\"ird\\topic""#));
        assert!(out.sql.contains(r#""task_timeout_second" = "A\"\\B""#));
    }

    fn tls_sasl() -> KafkaClientConfig {
        KafkaClientConfig::from_properties(
            "security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.username=loader\n\
             sasl.password=hunter2-sasl\n\
             ssl.ca.location=/etc/kafka/ca.pem\n\
             ssl.certificate.location=/etc/kafka/client.pem\n\
             ssl.key.location=/etc/kafka/client.key\n\
             ssl.key.password=hunter2-key\n\
             ssl.keystore.password=hunter2-ks\n\
             socket.timeout.ms=10000\n",
        )
        .unwrap()
    }

    #[test]
    fn client_settings_become_properties_with_placeholders_and_files() {
        let out = render_routine_load(&spec().with_kafka_config(tls_sasl())).unwrap();
        let ca = file_name("/etc/kafka/ca.pem");
        let cert = file_name("/etc/kafka/client.pem");
        let key = file_name("/etc/kafka/client.key");
        let expected_tail = format!(
            r#"FROM KAFKA (
  "kafka_broker_list" = "k1:9092,k2:9092",
  "kafka_topic" = "pg.public.orders",
  "kafka_partitions" = "0,1,2",
  "kafka_offsets" = "1234,0,1102",
  "property.security.protocol" = "SASL_SSL",
  "property.sasl.mechanism" = "SCRAM-SHA-512",
  "property.sasl.username" = "loader",
  "property.sasl.password" = "${{KAFKA_SASL_PASSWORD}}",
  "property.ssl.ca.location" = "FILE:{ca}",
  "property.ssl.certificate.location" = "FILE:{cert}",
  "property.ssl.key.location" = "FILE:{key}",
  "property.ssl.key.password" = "${{KAFKA_SSL_KEY_PASSWORD}}"
);"#
        );
        assert!(out.sql.ends_with(&expected_tail), "{}", out.sql);
        assert!(!out.sql.contains("hunter2"), "{}", out.sql);
        assert!(!format!("{out:?}").contains("hunter2"));
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let k = &out.kafka;
        assert_eq!(
            k.files.iter().map(|f| f.sql.as_str()).collect::<Vec<_>>(),
            vec![
                format!(
                    r#"CREATE FILE "{ca}" IN `db` PROPERTIES ("url" = "${{KAFKA_SSL_CA_LOCATION_URL}}", "catalog" = "kafka");"#
                ),
                format!(
                    r#"CREATE FILE "{cert}" IN `db` PROPERTIES ("url" = "${{KAFKA_SSL_CERTIFICATE_LOCATION_URL}}", "catalog" = "kafka");"#
                ),
                format!(
                    r#"CREATE FILE "{key}" IN `db` PROPERTIES ("url" = "${{KAFKA_SSL_KEY_LOCATION_URL}}", "catalog" = "kafka");"#
                ),
            ]
        );
        assert_eq!(k.files[0].path, "/etc/kafka/ca.pem");
        assert_eq!(k.placeholders["${KAFKA_SASL_PASSWORD}"], "sasl.password");
        assert_eq!(k.placeholders["${KAFKA_SSL_CA_LOCATION_URL}"], "ssl.ca.location");
        assert_eq!(k.placeholders.len(), 5);
        // Settings without a counterpart are named (a secret by its key only).
        let unmapped: Vec<&String> =
            k.warnings.iter().filter(|w| w.contains("no Routine Load counterpart")).collect();
        assert_eq!(unmapped.len(), 2, "{:?}", k.warnings);
        assert!(unmapped.iter().any(|w| w.contains("ssl.keystore.password")));
        assert!(unmapped.iter().any(|w| w.contains("socket.timeout.ms")));
        assert!(k.warnings.iter().any(|w| w.contains("${KAFKA_SASL_PASSWORD} (sasl.password)")));
        assert!(!k.warnings.iter().any(|w| w.contains("hunter2")));
    }

    #[test]
    fn no_client_settings_render_nothing_extra() {
        let out = render_routine_load(&spec()).unwrap();
        assert!(!out.sql.contains("property."));
        assert_eq!(out.kafka, RoutineLoadKafka::default());
    }

    #[test]
    fn file_names_are_stable_and_safe() {
        assert_eq!(file_name("/etc/kafka/ca.pem"), file_name("/etc/kafka/ca.pem"));
        assert_ne!(file_name("/a/ca.pem"), file_name("/b/ca.pem"));
        let odd = file_name("C:\\certs\\my ca\"x.pem");
        assert!(odd.ends_with("_my_ca_x.pem"), "{odd}");
        assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{odd}");
        // FNV-1a is fixed: the name of a path never changes between releases.
        assert_eq!(file_name("/etc/kafka/ca.pem"), file_name(&String::from("/etc/kafka/ca.pem")));
        assert_eq!(
            file_name(""),
            format!("pgsnap_{:08x}_file", {
                let h: u64 = 0xcbf2_9ce4_8422_2325;
                (h ^ (h >> 32)) as u32
            })
        );
    }

    #[test]
    fn probe_ca_and_aliases() {
        let config = KafkaClientConfig::new()
            .with_setting("security.protocol", "SSL")
            .with_setting("ssl.ca.location", "probe")
            .with_setting("sasl.mechanisms", "PLAIN")
            .with_setting("ssl.endpoint.identification.algorithm", "none");
        let k = routine_load_kafka(&config, "db").unwrap();
        assert!(k.files.is_empty());
        assert!(k.properties.contains(&("property.ssl.ca.location".into(), "probe".into())));
        assert!(k.properties.contains(&("property.sasl.mechanism".into(), "PLAIN".into())));
        assert!(
            k.properties.contains(&(
                "property.ssl.endpoint.identification.algorithm".into(),
                "none".into()
            ))
        );
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        // A refused setting is refused here too.
        let bad = KafkaClientConfig::new().with_setting("sasl.mechanism", "GSSAPI");
        let err = render_routine_load(&spec().with_kafka_config(bad)).unwrap_err();
        assert!(matches!(err, Error::KafkaConfig { .. }), "{err:?}");
    }

    #[test]
    fn the_crate_docs_print_the_table() {
        let readme = include_str!("../../README.md");
        for row in KAFKA_PROPERTIES {
            let kind = match row.value {
                PropertyValue::Copied => "the value",
                PropertyValue::Secret => "placeholder",
                PropertyValue::File => "`FILE:",
            };
            let line = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` | `{}` |", row.setting, row.property)))
                .unwrap_or_else(|| panic!("README has no row for {}", row.setting));
            assert!(line.contains(kind), "{line}");
        }
    }

    #[test]
    fn duplicate_key_table_warns_and_has_no_op() {
        let out = render_routine_load(
            &RoutineLoadSpec { key_columns: vec![], ..spec() }.with_primary_key_table(false),
        )
        .unwrap();
        assert!(!out.sql.contains("__op"));
        assert!(!out.sql.contains("before"));
        assert!(out.sql.contains("COLUMNS (`id`, `amount`)\n"), "{}", out.sql);
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].contains("deletes cannot be applied"));
    }
}

//! The parity table: for every PostgreSQL type the snapshot path maps, how Routine Load turns
//! Debezium's encoding of a value into **the same StarRocks cell** the snapshot wrote, or why
//! the column is refused.
//!
//! A table is filled twice: first by Stream Load from the snapshot ([`crate::transcode`]),
//! then by Routine Load from Debezium's change events in Kafka. After the handoff a cell must be
//! identical whichever path wrote it. Routine Load runs no code of ours, so each row of the
//! table below is a decision about both paths together: the Debezium setting that encodes the
//! value, the StarRocks column type, what the snapshot sends, and how Routine Load maps the
//! Debezium value. [`cdc_columns`] applies it to a [`TargetTable`]; the renderer in
//! `pgsnap-kafka` turns its answer into `CREATE ROUTINE LOAD`.
//!
//! Sources: StarRocks' JSON scanner and casts (`be/src/exec/json_scanner.cpp`,
//! `be/src/formats/json/*.cpp`, `be/src/types/{timestamp_value,date_value,json_value}.cpp`,
//! `be/src/exec/file_scanner.cpp`), Debezium 3.6's value converters
//! (`PostgresValueConverter.java`, `io/debezium/time/*`), Kafka's `JsonConverter`; collected in
//! `shared/specs/routine-load-parity.md` and the notes of issue #8.
//!
//! # The rules
//!
//! - **Direct wherever StarRocks converts Debezium's encoding exactly**: the Debezium field goes
//!   through a `jsonpath` straight into the column, no expression. Then `strict_mode=true`
//!   protects the column: a non-null value StarRocks cannot convert filters the row, and with
//!   `max_error_number=0` the job pauses instead of loading NULL.
//! - **An expression only where it cannot turn a bad input into a plausible value**, and never
//!   where its NULL could go unnoticed: every expression column's value is also checked in the
//!   first key column's expression, which yields NULL (a `NOT NULL` key, so the row is filtered
//!   and the job pauses) when an expression column turned a non-null input into NULL.
//! - **One canonical form per value**: PostgreSQL's text where Routine Load can reproduce it,
//!   Debezium's where it cannot ([`crate::canonical`]). The snapshot path sends that form; the
//!   file sink still writes COPY text.
//! - **Refused, not guessed**: a column whose Debezium encoding StarRocks cannot turn into the
//!   snapshot's cell is a [`Refusal`] naming the column, the reason and the fix.
//!
//! # The table
//!
//! With the connector settings pgsnap renders ([`DebeziumEncoding::pgsnap`]:
//! `time.precision.mode=isostring`, `decimal.handling.mode=string`,
//! `interval.handling.mode=string`, `binary.handling.mode=hex`,
//! `value.converter.replace.null.with.default=false`, `tombstones.on.delete=false`, JSON without
//! schemas). "Direct" is a `jsonpath` into the column.
//!
//! | PostgreSQL | StarRocks | snapshot sends | Debezium sends | Routine Load |
//! |---|---|---|---|---|
//! | `smallint`, `integer`, `bigint` | `SMALLINT`, `INT`, `BIGINT` | digits | JSON number | direct |
//! | `boolean` | `BOOLEAN` | `true` / `false` | JSON `true` / `false` | direct |
//! | `real` | `FLOAT` | shortest text (`extra_float_digits=3`); `NaN`, `Infinity`, `-Infinity` as text (CSV) or JSON strings | JSON number (`Float.toString`); `"NaN"`, `"Infinity"`, `"-Infinity"` (Jackson quotes non-finite numbers) | direct (`string_to_float` reads the specials) |
//! | `double precision` | `DOUBLE` | as `real` | JSON number (`Double.toString`, reads back as the same double); specials as strings | direct |
//! | `numeric(p,s)`, p ≤ 38 | `DECIMAL(p,s)` | digits; `NaN`/`±Infinity` refused | string with scale s | direct; `"NAN"`, `"POSITIVE_INFINITY"` do not convert, so strict mode filters the row and the job pauses |
//! | `numeric`, `numeric(p,s)` with p > 38 | `VARCHAR(1048576)` | PostgreSQL text; `NAN`, `POSITIVE_INFINITY`, `NEGATIVE_INFINITY` for the specials | `toPlainString()` (PostgreSQL's text and scale), the same names for the specials | direct |
//! | `numeric` primary key | `VARCHAR(p+2)` | as above | as above | key: `coalesce(after, before)` |
//! | `money` | `DECIMAL(19,2)` | plain decimal (`$1,234.56` → `1234.56`); other `lc_monetary` forms refused | string `1234.56` | direct |
//! | `text`, `varchar(n)`, `char(n)` | `VARCHAR(1048576)`, `VARCHAR(4n)` | the text (`char(n)` blank-padded); a text exactly `\N` is refused in CSV bodies | string (padded) | direct |
//! | `uuid` | `VARCHAR(36)` | canonical text | string | direct |
//! | `date` | `DATE` | `YYYY-MM-DD`; BC, `±infinity`, years > 9999 refused | `YYYY-MM-DDZ`; BC `-0098-…Z`, > 9999 `+10000-…Z`, `infinity` `-5877611-06-21Z` | direct; signed years do not parse, so strict mode filters them and the job pauses |
//! | `timestamp(p)`, p = 0..6 | `DATETIME` | `YYYY-MM-DD HH:MM:SS[.ffffff]`; same refusals | `YYYY-MM-DDTHH:MM:SS[.f]Z` (trailing zeros stripped); `infinity` `+294247-…Z` | direct (`T` and `Z` accepted, no zone conversion) |
//! | `timestamp(p) with time zone` | `DATETIME` (UTC) | the UTC wall clock | `ZonedTimestamp`, UTC, `…Z` (all precision modes); `"infinity"` | direct |
//! | `time(p)` | `VARCHAR(1048576)` | `HH:MM:SS[.f]Z`; `24:00:00` refused | the same (`IsoTime`) | direct |
//! | `time(p) with time zone` | `VARCHAR(1048576)` | shifted to UTC, `HH:MM:SS[.f]Z`; `24:00:00` refused | the same (`ZonedTime`) | direct |
//! | `interval` | `VARCHAR(1048576)` | `P{y}Y{m}M{d}DT{h}H{mi}M{s}S`, Debezium's double arithmetic reproduced | the same (`Interval.toIsoString`) | direct |
//! | `json`, `jsonb` | `JSON` | JSON bodies: the document (a top-level `null` refused); CSV: objects, arrays, strings (other top-level scalars refused: CSV reads them as JSON strings) | string (PostgreSQL's text) | `json_query(parse_json(concat('{"v":', v, '}')), '$.v')`, exact for every top-level value; checked by the key guard; refused on Duplicate Key tables |
//! | `bytea` | `VARCHAR(1048576)` | lowercase hex without `\x` | the same (`binary.handling.mode=hex`) | direct |
//! | `inet`, `cidr`, `macaddr`, `macaddr8`, `xml`, `int4range`, `int8range`, `numrange`, `daterange`, `tsrange` | `VARCHAR(1048576)` | PostgreSQL text | string, PostgreSQL's text | direct |
//! | enums | `VARCHAR(1048576)` | the label | string | direct |
//! | arrays of `smallint`, `integer`, `bigint`, `boolean`, `real`, `double precision`, `text`, `varchar` (JSON bodies) | `ARRAY<…>` | JSON array | JSON array of the element encodings | direct |
//! | arrays of `date`, `timestamp`, `timestamptz`, `numeric` | `ARRAY<…>` | JSON array | JSON array | **refused**: StarRocks turns an element it cannot convert into a NULL element even in strict mode, and Debezium reads timestamp elements through the JVM's time zone |
//! | any array as `VARCHAR` (CSV bodies, overrides) | `VARCHAR` | PostgreSQL's array text `{…}` | a JSON array, stored as its minified JSON text | **refused** |
//! | NULL vs empty string | | `\N` vs an empty field; `null` vs `""` | `null` vs `""` | direct |
//! | `tstzrange` and other types, domains, composites, `hstore`, `bit`, geometric types | `VARCHAR` | PostgreSQL text | an unknown, structured or session-dependent form | **refused** |
//!
//! Overrides ([`MappingOptions::with_column_type`](crate::mapping::MappingOptions::with_column_type))
//! follow the same table: integers as `VARCHAR` or `DECIMAL`, `json`/`jsonb` as `VARCHAR`
//! (direct, exact text) and wider `DECIMAL`s for `numeric` are direct. Refused: `real` as
//! `DOUBLE` (Java before 19 may print other digits than PostgreSQL's shortest text, which would
//! be another double), a `DECIMAL` narrower than the `numeric` (StarRocks rounds extra digits
//! half-up where the snapshot refuses them), and booleans, floats, dates and timestamps as
//! `VARCHAR` (Debezium's text differs from PostgreSQL's).
//!
//! # Expression columns and when they yield NULL
//!
//! - **Primary-key columns** `k = coalesce(after.k, before.k)` (a delete has no `after`): NULL
//!   only when both are NULL (a delete without a key image, `REPLICA IDENTITY NOTHING`) or the
//!   text does not convert to the key type. Key columns are `NOT NULL`, so StarRocks filters the
//!   row (whatever `strict_mode` says) and the job pauses.
//! - **`json`/`jsonb`**: NULL when the column is NULL (correct), when the text is not JSON
//!   (PostgreSQL never sends that) or nested deeper than StarRocks'
//!   `json_parse_max_nesting_depth`. The first key column's expression is wrapped in
//!   `if(<every expression column is NULL or converted>, coalesce(…), NULL)`, so such a row is
//!   filtered and the job pauses.
//! - **`__op`** = `if(op = 'd', 1, 0)` (Primary Key tables only; not a column).
//!
//! # Connector settings pgsnap does not choose (running and time modes)
//!
//! [`DebeziumEncoding::from_connector_config`] reads the user's connector config; columns its
//! settings cannot carry exactly are refused: `time.precision.mode` other than `isostring`
//! (Debezium ≥ 3.1) refuses `date`, `timestamp` and `time` (epoch numbers need expressions that
//! turn infinity sentinels into NULL or plausible dates); `decimal.handling.mode` other than
//! `string` refuses `numeric` and `money` (base64 or doubles); `interval.handling.mode=numeric`
//! refuses `interval` (30.4375-day months); `binary.handling.mode` other than `hex` refuses
//! `bytea`. A config with `transforms`, custom `converters`, `column.mask.*` or
//! `column.truncate.*`, skipped `c`/`u`/`d` operations, a value converter other than
//! `JsonConverter`, or without `value.converter.replace.null.with.default=false` (the converter
//! would replace a NULL by the column's default) blocks every table.
//!
//! # Known gaps
//!
//! - `time '24:00:00'` (and `timetz`): the snapshot refuses it; through CDC Debezium 3.6 sends
//!   `00:00:00Z`, the start of the day (fixed for `timetz` in Debezium 3.7).
//! - `money` needs an `lc_monetary` that prints one leading currency character, `,` thousands
//!   and a `.` fraction (`C`, `en_US`): the snapshot refuses other forms, Debezium misreads
//!   some of them.
//! - JSON numbers beyond a double's precision are rounded by StarRocks on both paths alike;
//!   `json` (not `jsonb`) documents with duplicate keys are unconfirmed.
//! - The `interval` text assumes the server's `IntervalStyle` is `postgres` (the default) for the
//!   walsender that feeds Debezium.
//!
//! # Example
//!
//! ```
//! use pgsnap_core::{Column, TableKind, TableName, TableSchema};
//! use pgsnap_sink_starrocks::mapping::{map_table, LoadFormat, MappingOptions};
//! use pgsnap_sink_starrocks::parity::{cdc_columns, DebeziumEncoding};
//!
//! let schema = TableSchema {
//!     name: TableName::new("public", "t"),
//!     kind: TableKind::Table,
//!     columns: vec![
//!         Column::new("id", "bigint", false),
//!         Column::new("at", "timestamp without time zone", true),
//!         Column::new("doc", "jsonb", true),
//!     ],
//!     generated_columns: vec![],
//!     primary_key: vec!["id".into()],
//! };
//! let table = map_table(&schema, "t", &MappingOptions::new().with_format(LoadFormat::Json))?;
//! let columns = cdc_columns(&table, &DebeziumEncoding::pgsnap())?;
//! assert!(columns[0].key && columns[0].conversion.is_none());
//! assert!(columns[1].conversion.is_none()); // timestamps: direct
//! assert!(columns[2].conversion.as_deref().unwrap().starts_with("json_query(parse_json("));
//!
//! // A connector left at Debezium's encoding defaults sends epoch microseconds: refused.
//! let config = [
//!     ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
//!     ("value.converter.schemas.enable", "false"),
//!     ("value.converter.replace.null.with.default", "false"),
//! ];
//! let config = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
//! let defaults = DebeziumEncoding::from_connector_config(&config);
//! let err = cdc_columns(&table, &defaults).unwrap_err();
//! assert!(err.to_string().contains("time.precision.mode"));
//! // Without replace.null.with.default=false nothing can be mapped.
//! let bare = DebeziumEncoding::from_connector_config(&Default::default());
//! assert!(cdc_columns(&table, &bare).unwrap_err().to_string().contains("replace.null"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::mapping::{
    Encoding, KeyModel, PgType, Scalar, SrType, TargetColumn, TargetTable, TextForm,
};

/// The expression that turns Debezium's `json`/`jsonb` string into the JSON value: wrapping the
/// text in an object makes `parse_json` parse every top-level value (on its own it stores
/// numbers, booleans and `null` as JSON strings), and `json_query` takes it back out, keeping a
/// JSON `null` a JSON null. `{v}` stands for the source column.
pub const JSON_CONVERSION: &str = "json_query(parse_json(concat('{\"v\":', {v}, '}')), '$.v')";

/// The Debezium settings that decide how values are encoded in the change events.
///
/// # Example
/// ```
/// use std::collections::BTreeMap;
/// use pgsnap_sink_starrocks::parity::DebeziumEncoding;
///
/// let rendered: BTreeMap<String, String> = DebeziumEncoding::pgsnap()
///     .connector_properties()
///     .into_iter()
///     .map(|(k, v)| (k.to_owned(), v))
///     .collect();
/// assert_eq!(rendered["time.precision.mode"], "isostring");
/// // Reading the rendered settings back gives the same encoding, with nothing blocking.
/// let read = DebeziumEncoding::from_connector_config(&rendered);
/// assert_eq!(read, DebeziumEncoding::pgsnap());
/// assert!(read.blockers.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DebeziumEncoding {
    /// `time.precision.mode` (Debezium's default `adaptive`).
    pub time_precision_mode: String,
    /// `decimal.handling.mode` (default `precise`).
    pub decimal_handling_mode: String,
    /// `interval.handling.mode` (default `numeric`).
    pub interval_handling_mode: String,
    /// `binary.handling.mode` (default `bytes`).
    pub binary_handling_mode: String,
    /// `value.converter.schemas.enable`: the JSON converter wraps each event in
    /// `{"schema","payload"}` (JsonConverter's default `true`).
    pub schemas_enabled: bool,
    /// `value.converter.replace.null.with.default` (Kafka ≥ 3.5, default `true`): a NULL in a
    /// column with a default is sent as the default.
    pub replace_null_with_default: bool,
    /// `tombstones.on.delete` (default `true`).
    pub tombstones_on_delete: bool,
    /// Settings that make every table's events unmappable (transforms, masks, another converter,
    /// skipped operations, ...), each with its fix.
    pub blockers: Vec<String>,
    /// Assumptions made about settings the config leaves to the Connect worker.
    pub warnings: Vec<String>,
}

impl DebeziumEncoding {
    /// The settings of the connector config pgsnap renders (slot-first): every encoding the
    /// parity table relies on.
    pub fn pgsnap() -> Self {
        DebeziumEncoding {
            time_precision_mode: "isostring".into(),
            decimal_handling_mode: "string".into(),
            interval_handling_mode: "string".into(),
            binary_handling_mode: "hex".into(),
            schemas_enabled: false,
            replace_null_with_default: false,
            tombstones_on_delete: false,
            blockers: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// These settings as Kafka Connect connector properties (for the rendered connector
    /// config): the four encoding modes, `tombstones.on.delete`, and the key and value
    /// converters (`JsonConverter`, `schemas.enable`, `replace.null.with.default`).
    pub fn connector_properties(&self) -> Vec<(&'static str, String)> {
        let converter = "org.apache.kafka.connect.json.JsonConverter".to_owned();
        vec![
            ("time.precision.mode", self.time_precision_mode.clone()),
            ("decimal.handling.mode", self.decimal_handling_mode.clone()),
            ("interval.handling.mode", self.interval_handling_mode.clone()),
            ("binary.handling.mode", self.binary_handling_mode.clone()),
            ("tombstones.on.delete", self.tombstones_on_delete.to_string()),
            ("key.converter", converter.clone()),
            ("key.converter.schemas.enable", self.schemas_enabled.to_string()),
            ("value.converter", converter),
            ("value.converter.schemas.enable", self.schemas_enabled.to_string()),
            (
                "value.converter.replace.null.with.default",
                self.replace_null_with_default.to_string(),
            ),
        ]
    }

    /// The encoding of a connector whose config is `config` (the `config` object of Kafka
    /// Connect, or the properties of an embedded engine), with Debezium's and Kafka's defaults
    /// for missing keys. Settings that block every table are listed in
    /// [`blockers`](Self::blockers).
    pub fn from_connector_config(config: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| config.get(k).map(|v| v.trim().to_owned());
        let mode = |k: &str, default: &str| get(k).unwrap_or_else(|| default.into()).to_lowercase();
        let flag = |k: &str, default: bool| match get(k).map(|v| v.to_lowercase()) {
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            _ => default,
        };
        let mut blockers = Vec::new();
        let mut warnings = Vec::new();
        match get("value.converter") {
            Some(c) if c == "org.apache.kafka.connect.json.JsonConverter" => {}
            Some(c) => blockers.push(format!(
                "value.converter is {c}: Routine Load reads Debezium's JSON \
                 (org.apache.kafka.connect.json.JsonConverter)"
            )),
            None => warnings.push(
                "the connector config sets no value.converter: the worker's default is assumed \
                 to be JsonConverter"
                    .into(),
            ),
        }
        if get("value.converter.schemas.enable").is_none() {
            warnings.push(
                "the connector config does not set value.converter.schemas.enable: JsonConverter's \
                 default (true, {\"schema\",\"payload\"} envelopes) is assumed"
                    .into(),
            );
        }
        let replace_null_with_default = flag("value.converter.replace.null.with.default", true);
        if replace_null_with_default {
            blockers.push(
                "value.converter.replace.null.with.default is not false: Kafka's JsonConverter \
                 (3.5+) sends a NULL in a column with a default as the default; set \
                 value.converter.replace.null.with.default=false on the connector"
                    .into(),
            );
        }
        if get("transforms").is_some_and(|t| !t.is_empty()) {
            blockers.push(
                "transforms are set: single message transforms change the Debezium envelope the \
                 Routine Load maps; remove them"
                    .into(),
            );
        }
        if get("converters").is_some_and(|t| !t.is_empty()) {
            blockers.push(
                "custom converters are set: they change column encodings pgsnap cannot see; \
                 remove them"
                    .into(),
            );
        }
        if let Some(k) = config
            .keys()
            .find(|k| k.starts_with("column.mask.") || k.starts_with("column.truncate."))
        {
            blockers.push(format!("{k} masks or truncates column values; remove it"));
        }
        if let Some(ops) = get("skipped.operations") {
            let skipped: Vec<&str> = ops.split(',').map(str::trim).collect();
            if let Some(op) = skipped.iter().find(|o| matches!(**o, "c" | "u" | "d")) {
                blockers.push(format!(
                    "skipped.operations includes {op:?}: those changes never reach Kafka; \
                     skip only \"t\" (the default)"
                ));
            }
        }
        DebeziumEncoding {
            time_precision_mode: mode("time.precision.mode", "adaptive"),
            decimal_handling_mode: mode("decimal.handling.mode", "precise"),
            interval_handling_mode: mode("interval.handling.mode", "numeric"),
            binary_handling_mode: mode("binary.handling.mode", "bytes"),
            schemas_enabled: flag("value.converter.schemas.enable", true),
            replace_null_with_default,
            tombstones_on_delete: flag("tombstones.on.delete", true),
            blockers,
            warnings,
        }
    }
}

/// A StarRocks version, as `SELECT current_version()` prints it (`3.5.6-3ba6b8d`, older
/// `2.1.2 0782ad7`) or as given by hand (`3.3.12`).
///
/// The rendering supports **StarRocks 3.1.0 to 4.x** (`CREATE TABLE` without buckets and
/// `DISTRIBUTED BY RANDOM` need 3.1); `pause_on_fatal_parse_error` is rendered from 3.3.12 in
/// the 3.3 line, 3.4.2 in the 3.4 line, and every later release (older ones reject unknown
/// properties).
///
/// ```
/// use pgsnap_sink_starrocks::parity::StarRocksVersion;
/// let v: StarRocksVersion = "3.4.2-7c0eb22".parse().unwrap();
/// assert!(v.accepts_pause_on_fatal_parse_error());
/// assert!(!"3.4.1".parse::<StarRocksVersion>().unwrap().accepts_pause_on_fatal_parse_error());
/// assert!("3.0.9".parse::<StarRocksVersion>().unwrap().check_supported().is_err());
/// assert_eq!(v.to_string(), "3.4.2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StarRocksVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// The supported StarRocks versions, as the error messages name them.
pub const SUPPORTED_VERSIONS: &str = "3.1.0 to 4.x";

impl StarRocksVersion {
    /// A version.
    pub fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }

    /// `Ok` when the version is in [`SUPPORTED_VERSIONS`].
    ///
    /// # Errors
    /// [`ParityError::UnsupportedVersion`] naming the version and the range.
    pub fn check_supported(&self) -> Result<(), ParityError> {
        let ok = (self.major == 3 && self.minor >= 1) || self.major == 4;
        if ok { Ok(()) } else { Err(ParityError::UnsupportedVersion { version: self.to_string() }) }
    }

    /// Whether `CREATE ROUTINE LOAD` accepts `pause_on_fatal_parse_error` (3.3.12+, 3.4.2+,
    /// 3.5 and later).
    pub fn accepts_pause_on_fatal_parse_error(&self) -> bool {
        match (self.major, self.minor) {
            (3, 3) => self.patch >= 12,
            (3, 4) => self.patch >= 2,
            (3, m) => m >= 5,
            (major, _) => major > 3,
        }
    }
}

impl fmt::Display for StarRocksVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Text that is not a StarRocks version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a StarRocks version (expected MAJOR.MINOR.PATCH, e.g. 3.4.2)")]
pub struct ParseVersionError(String);

impl FromStr for StarRocksVersion {
    type Err = ParseVersionError;

    /// Reads `MAJOR.MINOR.PATCH` at the start (an optional `v`), ignoring what follows a `-`,
    /// a space or any other character (`3.5.6-3ba6b8d`, `2.1.2 0782ad7`, `4.1.0-rc01`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let nums: Vec<&str> = t[..end].split('.').collect();
        let err = || ParseVersionError(s.to_owned());
        if nums.len() != 3 {
            return Err(err());
        }
        let n = |x: &str| x.parse::<u32>().map_err(|_| err());
        Ok(StarRocksVersion { major: n(nums[0])?, minor: n(nums[1])?, patch: n(nums[2])? })
    }
}

/// How Routine Load fills one target column from Debezium's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CdcColumn {
    /// The StarRocks column.
    pub column: String,
    /// The Debezium field (the PostgreSQL column name) in `after` / `before`.
    pub field: String,
    /// A primary-key column (filled from `after`, or `before` for deletes).
    pub key: bool,
    /// An expression applied to the field's value (`{v}` stands for it), or `None` for a
    /// direct mapping.
    pub conversion: Option<String>,
}

/// A column Routine Load cannot fill with the snapshot's cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Refusal {
    /// The PostgreSQL column.
    pub column: String,
    /// Its PostgreSQL type.
    pub pg_type: String,
    /// Its StarRocks type.
    pub sr_type: String,
    /// Why Routine Load would write another cell.
    pub reason: String,
    /// What to do.
    pub fix: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column {:?} ({} as StarRocks {}): {}; {}",
            self.column, self.pg_type, self.sr_type, self.reason, self.fix
        )
    }
}

/// Why no Routine Load can be rendered for a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParityError {
    /// Columns whose Debezium encoding StarRocks cannot turn into the snapshot's cell.
    #[error("table {table}: Routine Load would not write the snapshot's cells: {}", list(refusals))]
    Refused {
        /// The PostgreSQL table.
        table: String,
        /// One entry per column.
        refusals: Vec<Refusal>,
    },
    /// Connector settings that block every table.
    #[error("the Debezium connector config cannot be mapped exactly: {}", blockers.join("; "))]
    Connector {
        /// What blocks, each with its fix.
        blockers: Vec<String>,
    },
    /// A StarRocks version outside [`SUPPORTED_VERSIONS`].
    #[error(
        "StarRocks {version} is not supported for Routine Load rendering (supported: \
         {SUPPORTED_VERSIONS})"
    )]
    UnsupportedVersion {
        /// The version.
        version: String,
    },
}

fn list(refusals: &[Refusal]) -> String {
    refusals.iter().map(Refusal::to_string).collect::<Vec<_>>().join("; ")
}

/// How Routine Load fills every column of `table` from events encoded as `encoding` says, in
/// target column order.
///
/// # Errors
/// [`ParityError::Connector`] when the connector settings block every table;
/// [`ParityError::Refused`] listing every column the parity table refuses.
pub fn cdc_columns(
    table: &TargetTable,
    encoding: &DebeziumEncoding,
) -> Result<Vec<CdcColumn>, ParityError> {
    if !encoding.blockers.is_empty() {
        return Err(ParityError::Connector { blockers: encoding.blockers.clone() });
    }
    let mut out = Vec::with_capacity(table.columns.len());
    let mut refusals = Vec::new();
    for c in &table.columns {
        let key = table.key_model == KeyModel::Primary && table.key.contains(&c.name);
        match decide(c, encoding, table.key_model) {
            Ok(conversion) => out.push(CdcColumn {
                column: c.name.clone(),
                field: c.source_name.clone(),
                key,
                conversion,
            }),
            Err((reason, fix)) => refusals.push(Refusal {
                column: c.source_name.clone(),
                pg_type: c.pg_type.clone(),
                sr_type: c.sr_type.to_string(),
                reason,
                fix,
            }),
        }
    }
    if refusals.is_empty() {
        Ok(out)
    } else {
        Err(ParityError::Refused { table: table.source.clone(), refusals })
    }
}

type Decision = Result<Option<String>, (String, String)>;

/// Direct when `ok`, else refused: the connector's `setting` is `actual`, which `why`; the fix
/// sets it to `value`.
fn needs(ok: bool, setting: &str, value: &str, actual: &str, why: &str) -> Decision {
    if ok {
        return Ok(None);
    }
    Err((
        format!("the connector's {setting}={actual} {why}"),
        format!("set {setting}={value} on the connector"),
    ))
}

fn as_text_fix(c: &TargetColumn) -> String {
    format!(
        "no mapping of column {:?} writes the same cell on both paths: exclude the table from \
         the handoff or change the column's type in PostgreSQL",
        c.source_name
    )
}

/// The parity table for one column: `Ok(None)` direct, `Ok(Some(expr))` an expression,
/// `Err((reason, fix))` refused.
fn decide(c: &TargetColumn, e: &DebeziumEncoding, model: KeyModel) -> Decision {
    let time = |what: &str| {
        needs(
            e.time_precision_mode == "isostring",
            "time.precision.mode",
            "isostring",
            &e.time_precision_mode,
            &format!(
                "sends {what} as epoch numbers, which only an expression can convert, and that \
                 expression turns Debezium's infinity sentinels into NULL or dates (isostring \
                 needs Debezium 3.1 or later)"
            ),
        )
    };
    let decimal = |what: &str| {
        needs(
            e.decimal_handling_mode == "string",
            "decimal.handling.mode",
            "string",
            &e.decimal_handling_mode,
            &format!("sends {what} as base64 bytes or doubles"),
        )
    };
    // `timestamptz`/`timetz`: `ZonedTimestamp`/`ZonedTime` strings in every mode but
    // `structured`.
    let zoned = || {
        needs(
            e.time_precision_mode != "structured",
            "time.precision.mode",
            "isostring",
            "structured",
            "sends zoned values as structs",
        )
    };
    // The StarRocks type of the value, or of an array's elements.
    let value_type = match &c.sr_type {
        SrType::Array(t) => &**t,
        t => t,
    };
    match (c.encoding, &c.pg) {
        (Encoding::Scalar(Scalar::Int | Scalar::Bool), _) => Ok(None),
        (Encoding::Scalar(Scalar::Float { .. }), PgType::Float4)
            if *value_type == SrType::Double =>
        {
            Err((
                "Debezium prints real with Java's Float.toString, whose digits (before Java 19) \
                 need not be PostgreSQL's shortest text, and as DOUBLE other digits are another \
                 number"
                    .into(),
                "keep real as FLOAT (the default mapping)".into(),
            ))
        }
        (Encoding::Scalar(Scalar::Float { .. }), _) => Ok(None),
        (Encoding::Scalar(Scalar::Decimal), _) => decimal("numeric"),
        (Encoding::Scalar(Scalar::DecimalChecked { .. }), _) => Err((
            "the DECIMAL is narrower than the numeric: StarRocks rounds extra digits half-up \
             where the snapshot refuses them"
                .into(),
            "map the column to a DECIMAL that holds every value of its numeric(p,s), or to \
             VARCHAR"
                .into(),
        )),
        (Encoding::Scalar(Scalar::Money { .. }), _) => decimal("money"),
        (Encoding::Scalar(Scalar::Date), _) => time("dates"),
        (Encoding::Scalar(Scalar::DateTime { tz: false }), _) => time("timestamps"),
        (Encoding::Scalar(Scalar::DateTime { tz: true }), _) => zoned(),
        (Encoding::Scalar(Scalar::Form { form, .. }), _) => match form {
            TextForm::Numeric => decimal("numeric"),
            TextForm::Money => decimal("money"),
            TextForm::Time => time("times"),
            TextForm::TimeTz => zoned(),
            TextForm::Bytea => needs(
                e.binary_handling_mode == "hex",
                "binary.handling.mode",
                "hex",
                &e.binary_handling_mode,
                "sends bytea in another form than the snapshot's lowercase hex",
            ),
            TextForm::Interval => needs(
                e.interval_handling_mode == "string",
                "interval.handling.mode",
                "string",
                &e.interval_handling_mode,
                "sends intervals as microseconds with 30.4375-day months (lossy)",
            ),
        },
        (Encoding::Scalar(Scalar::Text { .. }), pg) => match pg {
            PgType::Text
            | PgType::Varchar(_)
            | PgType::Bpchar(_)
            | PgType::Uuid
            | PgType::Enum
            | PgType::PlainText
            | PgType::Json
            | PgType::Jsonb
            | PgType::Int2
            | PgType::Int4
            | PgType::Int8 => Ok(None),
            PgType::Bool | PgType::Float4 | PgType::Float8 => Err((
                "Debezium sends it as a JSON boolean or number, which StarRocks writes into a \
                 VARCHAR as 1/0 or Java's number text, not PostgreSQL's text"
                    .into(),
                "map it to its natural StarRocks type".into(),
            )),
            PgType::Date | PgType::Timestamp | PgType::TimestampTz => Err((
                "Debezium's ISO text (T separator, Z suffix) differs from PostgreSQL's".into(),
                "map it to DATE or DATETIME (the default mapping)".into(),
            )),
            PgType::Array(elem) => Err((
                "Debezium sends a JSON array, which a VARCHAR stores as minified JSON text, not \
                 PostgreSQL's array literal"
                    .into(),
                if array_element_ok(elem) {
                    "load with JSON bodies (LoadFormat::Json), which map arrays to ARRAY \
                     columns"
                        .into()
                } else {
                    as_text_fix(c)
                },
            )),
            _ => Err((
                "pgsnap does not know Debezium's encoding of this type (domains, composites, \
                 tstzrange, hstore, bit, geometric and extension types are structured, \
                 session-dependent or not sent at all)"
                    .into(),
                as_text_fix(c),
            )),
        },
        (Encoding::Json, _) => match model {
            KeyModel::Primary => Ok(Some(JSON_CONVERSION.into())),
            _ => Err((
                "json needs an expression, whose NULL on a bad value only a primary key can turn \
                 into a filtered row"
                    .into(),
                format!(
                    "give the table a primary key, or keep the document as text with a column \
                     type override (with_column_type) of VARCHAR(1048576) for column {:?}",
                    c.source_name
                ),
            )),
        },
        (Encoding::Array(elem), PgType::Array(pg_elem)) => match (elem, &**pg_elem) {
            (Scalar::Int | Scalar::Bool | Scalar::Text { .. }, _) => Ok(None),
            (Scalar::Float { .. }, PgType::Float4) if *value_type == SrType::Double => Err((
                "real elements as DOUBLE may change digits (Java's Float.toString)".into(),
                "keep real[] as ARRAY<FLOAT>".into(),
            )),
            (Scalar::Float { .. }, _) => Ok(None),
            _ => Err((
                "StarRocks turns an array element it cannot convert (infinity, BC, NaN) into a \
                 NULL element even in strict mode, and Debezium reads timestamp elements through \
                 the JVM's time zone"
                    .into(),
                as_text_fix(c),
            )),
        },
        (Encoding::Array(_), _) => Err(("not an array".into(), as_text_fix(c))),
    }
}

/// Whether an `ARRAY` of this element type is mapped directly (elements that cannot fail to
/// convert: integers, booleans, floats, text).
fn array_element_ok(elem: &PgType) -> bool {
    matches!(
        elem,
        PgType::Int2
            | PgType::Int4
            | PgType::Int8
            | PgType::Bool
            | PgType::Float4
            | PgType::Float8
            | PgType::Text
            | PgType::Varchar(_)
    )
}

/// The known gaps of the parity table that concern `table`'s columns (see "Known gaps" in the
/// [module documentation](self)), one line each, for a report: values no mapping can carry
/// alike through both paths, which the snapshot refuses and CDC may change.
///
/// ```
/// use pgsnap_core::{Column, TableKind, TableName, TableSchema};
/// use pgsnap_sink_starrocks::mapping::{map_table, MappingOptions};
/// use pgsnap_sink_starrocks::parity::caveats;
/// let schema = TableSchema {
///     name: TableName::new("public", "t"),
///     kind: TableKind::Table,
///     columns: vec![Column::new("id", "integer", false), Column::new("at", "time without time zone", true)],
///     generated_columns: vec![],
///     primary_key: vec!["id".into()],
/// };
/// let table = map_table(&schema, "t", &MappingOptions::new())?;
/// assert!(caveats(&table)[0].contains("24:00:00"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn caveats(table: &TargetTable) -> Vec<String> {
    let mut out = Vec::new();
    for c in &table.columns {
        let text = match (&c.pg, c.encoding) {
            (PgType::Time | PgType::TimeTz, _) => Some(
                "a value of 24:00:00 is refused by the snapshot, but through CDC Debezium 3.6 \
                 sends it as 00:00:00Z (the start of the day); check with \
                 WHERE col = '24:00:00'",
            ),
            (PgType::Money, _) => Some(
                "money must print as lc_monetary=C does ($1,234.56): the snapshot refuses other \
                 forms, and Debezium misreads some of them",
            ),
            (_, Encoding::Json) => Some(
                "JSON numbers beyond a double's precision are rounded by StarRocks (on both \
                 paths alike)",
            ),
            _ => None,
        };
        if let Some(t) = text {
            out.push(format!("column {:?} ({}): {t}", c.source_name, c.pg_type));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use pgsnap_core::{Column, TableKind, TableName, TableSchema, TypeKind};

    use super::*;
    use crate::mapping::{LoadFormat, MappingOptions, map_table};

    fn table(cols: &[(&str, &str)], pk: &[&str], format: LoadFormat) -> TargetTable {
        let schema = TableSchema {
            name: TableName::new("public", "t"),
            kind: TableKind::Table,
            columns: cols
                .iter()
                .map(|(n, t)| {
                    let c = Column::new(*n, *t, true);
                    if *t == "mood" { c.with_type_kind(TypeKind::Enum) } else { c }
                })
                .collect(),
            generated_columns: vec![],
            primary_key: pk.iter().map(|s| (*s).to_owned()).collect(),
        };
        map_table(&schema, "t", &MappingOptions::new().with_format(format)).unwrap()
    }

    const EVERY_TYPE: &[(&str, &str)] = &[
        ("id", "bigint"),
        ("i2", "smallint"),
        ("i4", "integer"),
        ("b", "boolean"),
        ("r", "real"),
        ("d", "double precision"),
        ("n", "numeric(12,3)"),
        ("nu", "numeric"),
        ("m", "money"),
        ("t", "text"),
        ("v", "character varying(10)"),
        ("c", "character(3)"),
        ("dt", "date"),
        ("ts0", "timestamp(0) without time zone"),
        ("ts", "timestamp without time zone"),
        ("tz", "timestamp with time zone"),
        ("tm", "time without time zone"),
        ("ttz", "time with time zone"),
        ("iv", "interval"),
        ("j", "json"),
        ("jb", "jsonb"),
        ("u", "uuid"),
        ("by", "bytea"),
        ("ip", "inet"),
        ("e", "mood"),
        ("ai", "integer[]"),
        ("at", "text[]"),
    ];

    #[test]
    fn every_mapped_type_has_a_rule() {
        let t = table(EVERY_TYPE, &["id"], LoadFormat::Json);
        let cols = cdc_columns(&t, &DebeziumEncoding::pgsnap()).unwrap();
        assert_eq!(cols.len(), EVERY_TYPE.len());
        for c in &cols {
            let expected_expr = matches!(c.column.as_str(), "j" | "jb");
            assert_eq!(c.conversion.is_some(), expected_expr, "{}", c.column);
            assert_eq!(c.key, c.column == "id");
        }
    }

    #[test]
    fn refusals_name_column_reason_and_fix() {
        let t = table(
            &[("id", "integer"), ("ats", "timestamp without time zone[]"), ("h", "hstore")],
            &["id"],
            LoadFormat::Json,
        );
        let err = cdc_columns(&t, &DebeziumEncoding::pgsnap()).unwrap_err();
        let ParityError::Refused { refusals, .. } = &err else { panic!("{err}") };
        let cols: Vec<&str> = refusals.iter().map(|r| r.column.as_str()).collect();
        assert_eq!(cols, ["ats", "h"]);
        assert!(err.to_string().contains("NULL element"), "{err}");
        // In CSV bodies a timestamp array is text: JSON bodies would not help it.
        let csv = table(
            &[("id", "integer"), ("ats", "timestamp without time zone[]")],
            &["id"],
            LoadFormat::Csv,
        );
        let err = cdc_columns(&csv, &DebeziumEncoding::pgsnap()).unwrap_err().to_string();
        assert!(
            err.contains("exclude the table from the handoff") && !err.contains("LoadFormat::Json"),
            "{err}"
        );
        // CSV bodies keep arrays as text: refused with the JSON-body fix.
        let csv = table(&[("id", "integer"), ("a", "integer[]")], &["id"], LoadFormat::Csv);
        let err = cdc_columns(&csv, &DebeziumEncoding::pgsnap()).unwrap_err();
        assert!(err.to_string().contains("load with JSON bodies (LoadFormat::Json)"), "{err}");
    }

    #[test]
    fn json_needs_a_primary_key() {
        let t = table(&[("a", "integer"), ("j", "jsonb")], &[], LoadFormat::Json);
        let err = cdc_columns(&t, &DebeziumEncoding::pgsnap()).unwrap_err();
        assert!(
            err.to_string().contains(
                "column type override (with_column_type) of VARCHAR(1048576) for column \"j\""
            ),
            "{err}"
        );
    }

    #[test]
    fn user_connector_settings() {
        let config = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            let mut m: BTreeMap<String, String> = [
                ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
                ("value.converter.schemas.enable", "false"),
                ("value.converter.replace.null.with.default", "false"),
            ]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
            m.extend(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())));
            m
        };
        let t = table(EVERY_TYPE, &["id"], LoadFormat::Json);
        // Debezium's defaults: temporal, numeric, money, interval and bytea columns refused.
        let err =
            cdc_columns(&t, &DebeziumEncoding::from_connector_config(&config(&[]))).unwrap_err();
        let ParityError::Refused { refusals, .. } = &err else { panic!("{err}") };
        let cols: Vec<&str> = refusals.iter().map(|r| r.column.as_str()).collect();
        assert_eq!(cols, ["n", "nu", "m", "dt", "ts0", "ts", "tm", "iv", "by"]);
        // With pgsnap's settings everything maps.
        let ok = config(&[
            ("time.precision.mode", "isostring"),
            ("decimal.handling.mode", "string"),
            ("interval.handling.mode", "string"),
            ("binary.handling.mode", "hex"),
        ]);
        let enc = DebeziumEncoding::from_connector_config(&ok);
        assert!(!enc.schemas_enabled && enc.warnings.is_empty());
        cdc_columns(&t, &enc).unwrap();
        // Blockers.
        for (k, v) in [
            ("transforms", "unwrap"),
            ("column.mask.with.8.chars", "public.t.t"),
            ("skipped.operations", "t,d"),
            ("value.converter", "io.confluent.connect.avro.AvroConverter"),
            ("value.converter.replace.null.with.default", "true"),
        ] {
            let mut c = ok.clone();
            c.insert(k.into(), v.into());
            let err = cdc_columns(&t, &DebeziumEncoding::from_connector_config(&c)).unwrap_err();
            assert!(matches!(err, ParityError::Connector { .. }), "{k}: {err}");
        }
        let mut c = ok.clone();
        c.remove("value.converter.replace.null.with.default");
        assert!(!DebeziumEncoding::from_connector_config(&c).blockers.is_empty());
    }

    #[test]
    fn versions() {
        for (text, ok, pause) in [
            ("3.1.0", true, false),
            ("3.3.11-abcdef0", true, false),
            ("3.3.12-abcdef0", true, true),
            ("3.4.1", true, false),
            ("3.4.2", true, true),
            ("3.5.0 0782ad7", true, true),
            ("4.1.0-rc01-7c0eb22", true, true),
            ("3.0.9", false, false),
            ("5.0.0", false, true),
            ("2.5.22", false, false),
        ] {
            let v: StarRocksVersion = text.parse().unwrap();
            assert_eq!(v.check_supported().is_ok(), ok, "{text}");
            assert_eq!(v.accepts_pause_on_fatal_parse_error(), pause, "{text}");
        }
        for bad in ["", "3.4", "x.y.z", "MAIN-RELEASE 03baf49"] {
            assert!(bad.parse::<StarRocksVersion>().is_err(), "{bad}");
        }
        let err = "3.0.1".parse::<StarRocksVersion>().unwrap().check_supported().unwrap_err();
        assert!(err.to_string().contains("3.1.0 to 4.x"));
    }
}

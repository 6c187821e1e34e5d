//! Renderers for the CDC handoff: StarRocks `CREATE ROUTINE LOAD` statements that start at
//! the resolved Kafka offsets, and the Debezium PostgreSQL connector config for the
//! slot-first design.
//!
//! - [`routine_load`]: one `CREATE ROUTINE LOAD` per table, with explicit
//!   `kafka_partitions`/`kafka_offsets` (never `OFFSET_END`/`OFFSET_BEGINNING`/`-1`), the raw
//!   Debezium JSON envelope mapped with `jsonpaths` (directly into the columns wherever
//!   possible) and a `COLUMNS` clause for keys, conversions and `__op`, `strict_mode=true`,
//!   `timezone=UTC`, `max_error_number=0`.
//! - [`debezium`]: the Kafka Connect payload (`{"name":…,"config":{…}}`) for the
//!   Debezium PostgreSQL connector running on a slot that pgsnap created, with the value
//!   encodings the Routine Load relies on; and [`debezium::parse_connector_config`] for a
//!   user's own connector config.
//!
//! Which columns are direct and which need a conversion is the parity table of
//! `pgsnap_sink_starrocks::parity`; these renderers only print its decisions.
//!
//! # What is tested and what is not
//!
//! Unit tests here check the exact SQL, that no statement contains `OFFSET_END`,
//! `OFFSET_BEGINNING` or a negative offset, and the typed refusals. The integration tests
//! (`tests/it/render.rs`) run the rendered statements through the StarRocks test double's
//! Routine Load evaluator on the verbatim Debezium events of `debezium-handoff.md` §6, and the
//! end-to-end tests of the handoff run them on real Debezium output. None of this has run on a
//! real StarRocks (not installable here): the double follows the sourced specs and is stricter
//! where they are unconfirmed.

pub mod debezium;
pub mod routine_load;

pub use debezium::{DebeziumConfig, PgConnection, render_debezium_config};
pub use routine_load::{
    ColumnMapping, RenderedColumn, RenderedRoutineLoad, RoutineLoadSpec, render_routine_load,
};

/// Why a renderer refused its input. Every variant names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The offset map for a topic has no partitions.
    #[error(
        "topic {topic:?}: no partitions given; a Routine Load job needs an explicit offset for every partition"
    )]
    NoPartitions {
        /// The Kafka topic.
        topic: String,
    },
    /// A partition number or offset is negative (`-1` = `OFFSET_END`, `-2` =
    /// `OFFSET_BEGINNING` in StarRocks; neither is an exact position).
    #[error(
        "topic {topic:?} partition {partition}: offset {offset} is not an exact position (must be >= 0)"
    )]
    NegativeOffset {
        /// The Kafka topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The refused offset.
        offset: i64,
    },
    /// A partition number is negative.
    #[error("topic {topic:?}: partition {partition} is negative")]
    NegativePartition {
        /// The Kafka topic.
        topic: String,
        /// The refused partition number.
        partition: i32,
    },
    /// A required field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A column name cannot be written as a dot-notation JSON path segment
    /// (`$.payload.after.<name>`). Only `[A-Za-z_][A-Za-z0-9_]*` is rendered: bracket
    /// notation (`$.after['a.b']`) is not supported by our evaluator and its support in
    /// StarRocks `jsonpaths` is unverified, so such names are refused.
    #[error(
        "column {column:?} cannot be used as a JSON path segment (only [A-Za-z_][A-Za-z0-9_]* is supported)"
    )]
    UnsupportedColumnName {
        /// The refused column name.
        column: String,
    },
    /// A column name appears twice, or a key column is not among the columns.
    #[error("column {column:?}: {reason}")]
    BadColumn {
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value contains a character that the target format cannot carry safely.
    #[error("{field} {value:?}: {reason}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// The refused value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
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
}

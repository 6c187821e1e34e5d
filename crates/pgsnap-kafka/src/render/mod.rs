//! Renderers for the CDC handoff: StarRocks `CREATE ROUTINE LOAD` statements that start at
//! the resolved Kafka offsets, and the Debezium PostgreSQL connector config for the
//! slot-first design.
//!
//! - [`routine_load`]: one `CREATE ROUTINE LOAD` per table, with explicit
//!   `kafka_partitions`/`kafka_offsets` (never `OFFSET_END`/`OFFSET_BEGINNING`/`-1`), the raw
//!   Debezium JSON envelope mapped with `jsonpaths` and a `COLUMNS` clause, and `__op` (0 =
//!   upsert, 1 = delete) on Primary Key tables.
//! - [`eval`]: a small evaluator of exactly the `jsonpaths`/`COLUMNS` subset that
//!   [`routine_load`] renders. It parses the *rendered SQL text* and applies it to a Debezium
//!   event, so tests check the mapping that would be sent, not a second copy of it.
//! - [`debezium`]: the Kafka Connect payload (`{"name":…,"config":{…}}`) for the
//!   Debezium PostgreSQL connector running on a slot that pgsnap created.
//!
//! # What is tested and what is not
//!
//! Tested here (unit tests in these modules): the exact SQL text for one table; that no
//! rendered statement contains `OFFSET_END`, `OFFSET_BEGINNING` or a negative offset; the
//! typed refusals; and the rendered mapping, evaluated by [`eval`] on the verbatim Debezium
//! PostgreSQL events of `debezium-handoff.md` §6 (insert, update, delete), both bare
//! (`schemas.enable=false`) and wrapped in `{"schema","payload"}`.
//!
//! **Not tested against a real StarRocks.** The `COLUMNS` expressions (`coalesce`, `if`)
//! and the `jsonpaths` are evaluated by our own evaluator, which implements the semantics we
//! expect from StarRocks (SQL `NULL` for a missing path or a JSON `null`; `coalesce` returns
//! the first non-`NULL` argument; `if(op = 'd', 1, 0)`). Whether StarRocks parses the
//! statement, accepts every property, and evaluates the expressions the same way has not been
//! run. Also unverified: whether rows with `__op = 1` must satisfy `NOT NULL` on non-key
//! columns (make value columns nullable), how Routine Load treats null (tombstone) messages
//! (the Debezium config therefore sets `tombstones.on.delete=false`), and Debezium's temporal
//! encodings (epoch days / micros), which are loaded as-is with no conversion.
//!
//! The Debezium config is rendered in full; the Kafka Connect REST client that submits it and
//! refuses when stored offsets exist for the connector name is **not written yet**.

pub mod debezium;
pub mod eval;
pub mod routine_load;

pub use debezium::{DebeziumConfig, PgConnection, render_debezium_config};
pub use routine_load::{RenderedRoutineLoad, RoutineLoadSpec, render_routine_load};

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

//! Renderers for the CDC handoff: StarRocks `CREATE ROUTINE LOAD` statements that start at
//! the resolved Kafka offsets, and the Debezium PostgreSQL connector config for the
//! slot-first design.
//!
//! - [`routine_load`]: one `CREATE ROUTINE LOAD` per table, with explicit
//!   `kafka_partitions`/`kafka_offsets` (never `OFFSET_END`/`OFFSET_BEGINNING`/`-1`), the raw
//!   Debezium JSON envelope mapped with `jsonpaths` (directly into the columns wherever
//!   possible) and a `COLUMNS` clause for keys, conversions and `__op`, `strict_mode=true`,
//!   `timezone=UTC`, `max_error_number=0`; the Kafka client settings (TLS, SASL) as
//!   `property.*` entries, secrets as placeholders, certificate files as `FILE:<name>` with
//!   their `CREATE FILE` statements.
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

pub use debezium::{DebeziumConfig, PgConnection, render_debezium_config, topic_name};
pub use routine_load::{
    ColumnMapping, RenderedColumn, RenderedRoutineLoad, RoutineLoadFile, RoutineLoadKafka,
    RoutineLoadSpec, render_routine_load,
};

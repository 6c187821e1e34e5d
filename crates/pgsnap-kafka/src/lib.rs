//! CDC handoff for pgsnap: where a Debezium change log in Kafka continues after a pgsnap
//! snapshot, and the configs that start consuming it there.
//!
//! - [`envelope`]: Debezium PostgreSQL change events (JSON, with or without schemas),
//!   tombstones, transaction-metadata records.
//! - [`xid`]: `pg_current_snapshot()` parsing and 64-bit visibility of Debezium's 32-bit
//!   `txId`.
//! - [`resolve`]: the offset resolution modes (slot-first, running, time) over any
//!   [`resolve::PartitionLog`], and the "connector has passed C" check.
//! - [`render`]: Routine Load statements and the Debezium connector config.
//! - [`kafka`]: topic partitions read through rdkafka ([`kafka::KafkaLog`], a
//!   [`resolve::PartitionLog`]): watermarks, reads at an offset, `offsets_for_times`.
//! - [`connect`]: a small Kafka Connect REST client that submits the Debezium connector and
//!   refuses names that exist or have stored offsets.
//!
//! **Work in progress (issue #4).**
#![deny(missing_docs)]

pub mod connect;
pub mod envelope;
pub mod error;
pub mod kafka;
pub mod render;
pub mod resolve;
pub mod resolver;
pub mod xid;

pub use error::{EnvelopeError, ResolveError, SnapshotParseError};
pub use xid::PgSnapshot;

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
//! - [`kafka`] (feature `rdkafka`): topic partitions read through rdkafka
//!   ([`kafka::KafkaLog`], a [`resolve::PartitionLog`]): watermarks, reads at an offset,
//!   `offsets_for_times`.
//! - [`resolver`] (feature `rdkafka`): [`resolver::KafkaOffsetResolver`], the
//!   [`pgsnap_core::OffsetResolver`] on Kafka topics, in the three handoff modes.
//! - [`connect`]: a small Kafka Connect REST client that submits the Debezium connector and
//!   refuses names that exist or have stored offsets.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rdkafka` | yes | the Kafka client: [`kafka`] ([`kafka::KafkaLogs`], [`kafka::KafkaLog`]) and [`resolver`] ([`resolver::KafkaOffsetResolver`]); compiles librdkafka (`rdkafka-sys`) |
//!
//! Without `rdkafka` (`default-features = false`) the pure parts ([`envelope`], [`xid`],
//! [`resolve`], [`render`], [`connect`], [`error`]) build with no C dependency; implement
//! [`resolve::PartitionLog`] over your own Kafka client to resolve offsets.
//!
//! **Work in progress (issue #4).**
//!
// Without `rdkafka` the gated items do not exist: their links lead to the feature table.
#![cfg_attr(not(feature = "rdkafka"), doc = "[`kafka`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`kafka::KafkaLog`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`kafka::KafkaLogs`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`resolver`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`resolver::KafkaOffsetResolver`]: self#features")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connect;
pub mod envelope;
pub mod error;
#[cfg(feature = "rdkafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
pub mod kafka;
pub mod render;
pub mod resolve;
#[cfg(feature = "rdkafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
pub mod resolver;
pub mod xid;

pub use error::{EnvelopeError, ResolveError, SnapshotParseError};
pub use xid::PgSnapshot;

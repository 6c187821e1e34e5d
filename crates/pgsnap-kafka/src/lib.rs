// Without `rdkafka` the gated items do not exist: their links lead to the feature table.
#![cfg_attr(not(feature = "rdkafka"), doc = "[`kafka`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`kafka::KafkaLog`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`kafka::KafkaLogs`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`resolver`]: self#features")]
#![cfg_attr(not(feature = "rdkafka"), doc = "[`resolver::KafkaOffsetResolver`]: self#features")]
#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`envelope`]: Debezium PostgreSQL change events (JSON, with or without schemas),
//!   tombstones, transaction-metadata records.
//! - [`xid`]: `pg_current_snapshot()` parsing and 64-bit visibility of Debezium's 32-bit
//!   `txId`.
//! - [`resolve`]: the offset resolution modes (slot-first, running, time) over any
//!   [`resolve::PartitionLog`], and the "connector has passed C" check.
//! - [`client_config`]: [`KafkaClientConfig`], the librdkafka settings (TLS, SASL, ...) of
//!   every Kafka client pgsnap opens and of the rendered Routine Load, secrets redacted.
//! - [`kafka`] (feature `rdkafka`): topic partitions read through rdkafka
//!   ([`kafka::KafkaLog`], a [`resolve::PartitionLog`]): watermarks, reads at an offset,
//!   `offsets_for_times`.
//! - [`resolver`] (feature `rdkafka`): [`resolver::KafkaOffsetResolver`], the
//!   [`pgsnap_core::OffsetResolver`] on Kafka topics, in the three handoff modes.
//! - [`render`]: Routine Load statements, the Debezium connector config, topic names.
//! - [`connect`]: a small Kafka Connect REST client that submits the Debezium connector and
//!   refuses names that exist or have stored offsets.
//! - [`error`]: the crate's one [`Error`] and its conversion into [`pgsnap_core::Error`].
//!
//! # Layering
//!
//! Modules import one way, each only from those before it (and all from [`error`]):
//!
//! ```text
//! error ← envelope, xid ← resolve ← kafka (rdkafka client) ← resolver
//! error ← client_config ← kafka, render (routine_load)
//! error ← render (debezium, routine_load)
//! error ← connect
//! ```
//!
//! `resolve` defines [`resolve::PartitionLog`] and knows no Kafka client; `kafka` implements
//! it over rdkafka; `resolver` puts both behind `pgsnap_core::OffsetResolver`. The renderers
//! and the Kafka Connect client are leaves: they take plain values (offsets, columns, a
//! payload) and import nothing else of the crate, except that the Routine Load renderer
//! takes the [`KafkaClientConfig`] it maps into `property.*` entries.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client_config;
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

pub use client_config::KafkaClientConfig;
pub use error::{ConnectionFailure, Error, Result};
pub use render::topic_name;
pub use xid::PgSnapshot;

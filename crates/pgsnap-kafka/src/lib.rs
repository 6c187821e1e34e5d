//! Kafka `OffsetResolver` for pgsnap's CDC handoff: maps a snapshot to per-partition offsets
//! of Debezium topics, and renders Routine Load and Debezium configuration.
//!
//! **Not implemented yet** (issue #4). This crate exists so the workspace layout is final;
//! it has no public items.
#![deny(missing_docs)]

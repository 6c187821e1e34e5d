//! StarRocks sink for pgsnap: Stream Load over HTTP with idempotent labels, and FE SQL over
//! the MySQL protocol.
//!
//! **Not implemented yet** (issue #3). This crate exists so the workspace layout is final;
//! it has no public items.
#![deny(missing_docs)]

#![doc = include_str!("../README.md")]
//!
//! # Layering
//!
//! Lowest layer first; a module imports only from modules to its left (the leaves
//! [`pattern`] and [`session`] import nothing and are used anywhere):
//!
//! [`tls`] ← [`conninfo`] ← `wire` (pgsnap's own PostgreSQL protocol client) ←
//! [`replication`] ← `error` ← `client` (tokio-postgres sessions) ← [`catalog`] ← [`plan`] ←
//! `snapshot` ← `copy` ← `source` ([`PgSource`], [`PgSourceBuilder`]). [`handoff`] stands
//! beside `source`, on `catalog` and `client`; [`position`] (WAL and slot positions) on
//! `conninfo`, `error` and `client`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod catalog;
mod client;
pub mod conninfo;
mod copy;
mod error;
pub mod handoff;
pub mod pattern;
pub mod plan;
pub mod position;
pub mod replication;
pub mod session;
mod snapshot;
mod source;
pub mod tls;
mod wire;

pub use error::{Error, Result};
pub use plan::SplitBy;
pub use source::{
    MIN_SERVER_VERSION, PgSource, PgSourceBuilder, SnapshotHealth, check_resume, drop_slot,
};

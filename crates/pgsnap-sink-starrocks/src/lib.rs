#![doc = include_str!("../README.md")]
//!
//! # How a chunk is loaded
//! - Each chunk of the snapshot (PostgreSQL `COPY` text) is transcoded on the fly into a
//!   CSV or JSON body ([`transcode`]) and sent with one Stream Load
//!   (`PUT /api/{db}/{table}/_stream_load`), streamed with chunked transfer encoding, so
//!   memory stays bounded by a 1 MiB buffer per load whatever the chunk size. A chunk whose
//!   body would pass [`StarRocksSinkBuilder::with_max_load_bytes`] is split into parts at
//!   row boundaries, deterministically (same snapshot, same rows, same order, same parts).
//! - The request goes to an FE with `Expect: 100-continue`; the FE's `307` is followed by
//!   hand, keeping `Authorization`, and the body goes only to the BE, after its
//!   `100 Continue`. No body byte ever reaches the FE. An HTTPS FE redirecting to plain HTTP
//!   is refused unless allowed (the password would travel in clear).
//! - Every load carries a deterministic label `<prefix>-<run id>-<table>-<chunk>-<part>`.
//!   The run id is the manifest's, so a retry or a resumed run reuses the label, and
//!   StarRocks' label check turns a second load of the same part into "already loaded".
//! - Status recipe (StarRocks' Stream Load, as the Flink connector handles it):
//!   `Success` / `Publish Timeout` → done; `Label Already Exists` with `FINISHED` → done,
//!   with `RUNNING` → poll `get_load_state`; `Fail` saying the label "has already been
//!   used" (newer releases) → poll; `too many filtered rows` → a data error naming the
//!   `ErrorURL`, not retried; any other `Fail` → retried with the same label.
//! - Optionally ([`StarRocksSinkBuilder::with_transactions`]) each chunk is one transaction
//!   of the Stream Load transaction interface (begin, a load per part, prepare, commit),
//!   so a chunk split into parts becomes visible atomically; a failure rolls it back.
//!
//! # Layering
//!
//! Lowest layer first; a module imports only from the layers to its left:
//!
//! `http` (the HTTP/1.1 client: `Expect: 100-continue`, TLS) ← `client` (the Stream Load
//! client: endpoints, auth, TLS config, labels, the per-request retry (from the chunk's
//! [`RetryBudget`](pgsnap_core::RetryBudget)),
//! label-state polling) ← the load paths `load` (one Stream Load per part) and `txn_load`
//! (one transaction per chunk, on `load`'s pieces), which take the client and the load
//! options, never the sink ← `sink` ([`StarRocksSink`]) ← `builder`
//! ([`StarRocksSinkBuilder`], which builds the client, the load options and the sink).
//! [`routine_load`] adds the sink's Routine Load statements (create, `SHOW ROUTINE LOAD`) on
//! top of `sink`.
//!
//! Beside them, with no I/O: [`mapping`] (PostgreSQL → StarRocks types) ← [`transcode`]
//! (COPY text → CSV/JSON bodies, in the [`canonical`] forms), used by the load paths;
//! [`parity`] (snapshot vs CDC cells) builds on `mapping`; [`cells`] (typed comparison of
//! StarRocks cells with the values the snapshot sends) on `transcode`. `fe_sql` (DDL, checks
//! and reads over the FE's MySQL port) serves [`read`] (target rows in bounded key ranges)
//! and the sink. `label` and `response` (leaves) and `error` (which
//! wraps `mapping`'s and `transcode`'s errors) are used by any layer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod builder;
pub mod canonical;
pub mod cells;
mod client;
mod error;
mod fe_sql;
mod http;
mod label;
mod load;
pub mod mapping;
pub mod parity;
pub mod read;
mod response;
pub mod routine_load;
mod sink;
pub mod transcode;
mod txn_load;

pub use builder::StarRocksSinkBuilder;
pub use error::{Error, Result};
pub use label::{MAX_LABEL_LEN, MAX_PREFIX_LEN};
pub use mapping::{LoadFormat, TargetTable, Unrepresentable};
pub use sink::{ExistingTable, PreparedTable, StarRocksSink};

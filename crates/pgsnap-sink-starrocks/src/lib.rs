//! StarRocks sink for pgsnap: Stream Load over HTTP with idempotent labels, exact
//! PostgreSQL → StarRocks type mapping, and DDL over the FE's MySQL protocol.
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
//! # Example
//! ```no_run
//! # async fn demo(tables: Vec<pgsnap_core::TableSchema>) -> Result<(), Box<dyn std::error::Error>> {
//! use pgsnap_sink_starrocks::{LoadFormat, StarRocksSinkBuilder};
//!
//! let sink = StarRocksSinkBuilder::new("http://fe1:8030", "analytics")
//!     .with_user("loader")
//!     .with_password(std::env::var("STARROCKS_PASSWORD")?)
//!     .with_format(LoadFormat::Json)
//!     .with_create_tables(true)
//!     .build()?;
//! // What the targets will be, checked (or created) ahead of a run:
//! for t in sink.prepare_tables(&tables).await? {
//!     println!("{} -> {}", t.source, t.target.name);
//! }
//! // Then hand `Arc::new(sink)` to the pgsnap_core::Coordinator as its Sink: it calls
//! // `Sink::prepare` before any chunk, which prepares the tables, takes the run's id for the
//! // labels and refuses a new run into a Duplicate Key table that already holds rows. (The
//! // `pgsnap` crate's MigrateJob does all of it, with the resume rules.)
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod builder;
pub mod canonical;
mod error;
mod fe_sql;
mod http;
mod label;
mod load;
pub mod mapping;
pub mod parity;
mod response;
mod sink;
pub mod transcode;
mod txn_load;

pub use builder::{RetryPolicy, StarRocksSinkBuilder};
pub use error::{Error, Result};
pub use label::{MAX_LABEL_LEN, MAX_PREFIX_LEN};
pub use mapping::{LoadFormat, TargetTable, Unrepresentable};
pub use sink::{ExistingTable, PreparedTable, StarRocksSink};

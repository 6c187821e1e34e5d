#![doc = include_str!("../README.md")]
//!
//! # Layering
//!
//! Modules import one way, each only from those before it:
//!
//! ```text
//! error ← compression ← layout ← writer ─┐
//!           read ← verify ───────────────┴─ sink ← builder
//! ```
//!
//! `layout` (directory and file names) and `compression` know nothing of writing; `writer`
//! (the blocking side: encode, temp file, fsync, rename) and `verify` (the resume check, over
//! `read`) know nothing of the sink; the sink owns its configuration (`SinkConfig`) and never
//! sees the builder, which checks the configuration, locks and cleans the directory, and
//! hands both to the sink.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod compression;
mod error;
mod layout;
mod read;
mod sink;
mod verify;
mod writer;

pub use builder::FileSinkBuilder;
pub use compression::Compression;
pub use error::{Error, Result};
pub use layout::{MAX_TABLE_DIR_LEN, chunk_file_name, table_dir_name};
pub use read::{open_chunk, read_chunk_file};
pub use sink::FileSink;
pub use verify::VerifyMode;

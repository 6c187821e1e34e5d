#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod compression;
mod error;
mod layout;
mod read;
mod sink;
mod writer;

pub use builder::{FileSinkBuilder, VerifyMode};
pub use compression::Compression;
pub use error::{Error, Result};
pub use layout::{MAX_TABLE_DIR_LEN, chunk_file_name, table_dir_name};
pub use read::{open_chunk, read_chunk_file};
pub use sink::FileSink;

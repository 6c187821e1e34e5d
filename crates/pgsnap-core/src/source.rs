//! The `Source` trait: something that can stream a chunk out of a consistent snapshot.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{Chunk, DataFormat, Result};

/// A stream of a chunk's content, in the requested [`DataFormat`], as it arrives.
///
/// It can be consumed once. To retry, ask the [`Source`] for the chunk again: the snapshot is
/// still open, so the second read returns the same rows.
pub type ChunkStream = BoxStream<'static, Result<Bytes>>;

/// A consistent snapshot that chunks can be read from, concurrently.
///
/// # Contract
/// - Every `read_chunk` of the same chunk returns the same rows, in the same order, for as
///   long as the snapshot lives; different chunks never share a row.
/// - Reads of different chunks may run concurrently (the coordinator runs up to `jobs`).
/// - When the snapshot cannot be imported any more, reads fail with
///   an error of kind [`ErrorKind::SnapshotLost`](crate::ErrorKind::SnapshotLost); failures
///   a new attempt may fix (connection lost) are [temporary](crate::Error::set_temporary).
/// - The returned stream holds whatever it needs (a connection) and releases it on drop.
#[async_trait]
pub trait Source: Send + Sync + Debug {
    /// A short backend name for messages, e.g. `postgres`.
    fn name(&self) -> &'static str;

    /// Starts streaming the chunk's rows in `format`.
    ///
    /// # Errors
    /// Connection, permission, lock or snapshot failures, classified as described above.
    async fn read_chunk(&self, chunk: &Chunk, format: DataFormat) -> Result<ChunkStream>;
}
